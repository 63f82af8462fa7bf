//! An incremental Server-Sent Events parser.
//!
//! Streams arrive in arbitrary chunks: the parser owns its buffer, yields each event once its
//! terminating blank line has arrived, and treats "need more bytes" as the normal state, not
//! an error. It follows the WHATWG event-stream rules: lines end in LF, CRLF or CR (a CR at
//! the end of a chunk waits for the next byte), `data` lines are joined with LF, comments are
//! ignored, one space after the colon is dropped, and a leading BOM is skipped.
//!
//! Memory is bounded whatever the stream sends: a line longer than [`MAX_LINE_BYTES`] is
//! skipped to its end, and an event whose data grows past [`MAX_EVENT_BYTES`] is dropped
//! (counted by [`SseParser::dropped`]) — a provider's gigantic or endless event costs a bounded
//! buffer, not the process.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (absent means "message").
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    started: bool,
    /// What of the coming bytes belongs to an overlong line being skipped.
    skipping: Skip,
    /// The current event's data went past [`MAX_EVENT_BYTES`]: it will not be dispatched.
    oversized: bool,
    dropped: u64,
}

/// The rest of a line over [`MAX_LINE_BYTES`], skipped up to and including its end (which
/// does not count as a blank line: the event is only dropped, not ended).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Skip {
    #[default]
    Nothing,
    /// Bytes up to the next line end.
    Line,
    /// A LF right away: the skipped line ended in a CR at the end of a chunk.
    LineFeed,
}

/// Lines longer than this are skipped (a safety bound: real SSE lines are far shorter).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Events whose data is longer than this are dropped.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Events dropped for being longer than [`MAX_EVENT_BYTES`], or for holding a line
    /// longer than [`MAX_LINE_BYTES`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Feeds a chunk and appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let chunk = self.skip(chunk);
        self.buffer.extend_from_slice(chunk);
        if !self.started {
            if self.buffer.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buffer) {
                return;
            }
            if self.buffer.starts_with(b"\xEF\xBB\xBF") {
                self.buffer.drain(..3);
            }
            self.started = true;
        }
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            match self.buffer[i] {
                b'\n' => {
                    self.line(start, i, out);
                    start = i + 1;
                }
                b'\r' => {
                    if i + 1 == self.buffer.len() {
                        break; // A CR ending the chunk may be the first half of CRLF.
                    }
                    self.line(start, i, out);
                    if self.buffer[i + 1] == b'\n' {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        self.buffer.drain(..start);
        if self.buffer.len() > MAX_LINE_BYTES {
            // No line end in sight: the line is skipped to its end, and its event with it.
            self.buffer.clear();
            self.skipping = Skip::Line;
            self.oversize();
        }
    }

    /// What of `chunk` is left once the rest of an overlong line (and its line end) is skipped.
    fn skip<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        match self.skipping {
            Skip::Nothing => chunk,
            Skip::LineFeed if chunk.is_empty() => chunk,
            Skip::LineFeed => {
                self.skipping = Skip::Nothing;
                chunk.strip_prefix(b"\n").unwrap_or(chunk)
            }
            Skip::Line => match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => &[],
                Some(end) if chunk[end] == b'\n' => {
                    self.skipping = Skip::Nothing;
                    &chunk[end + 1..]
                }
                Some(end) => {
                    self.skipping = Skip::LineFeed;
                    self.skip(&chunk[end + 1..])
                }
            },
        }
    }

    /// The current event is too big to keep: its data so far is freed, and it is dropped.
    fn oversize(&mut self) {
        self.oversized = true;
        self.has_data = true;
        self.data = String::new();
    }

    /// Ends the stream: a final event without its blank line is still dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buffer.is_empty() {
            let end = if self.buffer.last() == Some(&b'\r') {
                self.buffer.len() - 1
            } else {
                self.buffer.len()
            };
            self.line(0, end, out);
            self.buffer.clear();
        }
        self.dispatch(out);
    }

    fn line(&mut self, start: usize, end: usize, out: &mut Vec<SseEvent>) {
        if start == end {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(&self.buffer[start..end]);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" if self.oversized => {}
            "data" if self.data.len() + usize::from(self.has_data) + value.len() > MAX_EVENT_BYTES => self.oversize(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter for metering
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.oversized {
            self.dropped += 1;
            self.oversized = false;
        } else if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        parser.finish(&mut out);
        out
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn fields_comments_and_line_endings() {
        let stream = b"\xEF\xBB\xBF: keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:x\rdata: y\r\rid: 3\nretry: 10\n\nevent: ping\n\n";
        assert_eq!(
            parse_all(&[stream]),
            vec![event(Some("message_start"), "{\"a\":1}"), event(None, "x\ny")],
            "an event with no data is not dispatched"
        );
    }

    #[test]
    fn a_final_event_without_blank_line_still_counts() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![event(None, "[DONE]")]);
    }

    /// Feeds `chunks`, checking after each that the parser holds no more than its bounds.
    fn parse_bounded(chunks: &[&[u8]]) -> (Vec<SseEvent>, u64) {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
            assert!(parser.buffer.len() <= MAX_LINE_BYTES + chunk.len());
            assert!(parser.data.len() <= MAX_EVENT_BYTES);
        }
        parser.finish(&mut out);
        (out, parser.dropped())
    }

    #[test]
    fn an_overlong_line_drops_its_event_only_however_its_end_is_cut() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        for ending in [&b"\n"[..], b"\r\n", b"\r"] {
            for split_ending in [false, true] {
                let mut chunks: Vec<&[u8]> = vec![b"data: first\n\nevent: big\ndata: "];
                chunks.extend(long.chunks(1 << 20));
                let (cr, lf) = ending.split_at(1);
                if split_ending {
                    chunks.extend([cr, lf]);
                } else {
                    chunks.push(ending);
                }
                chunks.push(b"data: more of the big one\n\ndata: last\n\n");
                let (events, dropped) = parse_bounded(&chunks);
                assert_eq!(
                    events,
                    vec![event(None, "first"), event(None, "last")],
                    "ending {ending:?}, split {split_ending}"
                );
                assert_eq!(dropped, 1);
            }
        }
    }

    #[test]
    fn an_event_whose_data_lines_add_up_past_the_bound_is_dropped() {
        let line = format!("data: {}\n", "y".repeat(1 << 20));
        let mut stream = String::from("data: first\n\n");
        for _ in 0..(MAX_EVENT_BYTES >> 20) + 2 {
            stream.push_str(&line);
        }
        stream.push_str("\ndata: last\n\n");
        let (events, dropped) = parse_bounded(&[stream.as_bytes()]);
        assert_eq!(events, vec![event(None, "first"), event(None, "last")]);
        assert_eq!(dropped, 1);
        // Just within the bound is kept whole.
        let within = format!("data: {}\n\n", "z".repeat(MAX_EVENT_BYTES));
        let (events, dropped) = parse_bounded(&[within.as_bytes()]);
        assert_eq!((events[0].data.len(), dropped), (MAX_EVENT_BYTES, 0));
    }

    proptest! {
        /// Any split of any stream gives the same events as the whole stream.
        #[test]
        fn chunking_never_changes_the_events(
            lines in prop::collection::vec(("(event|data|id|:c|data)", "[ -~]{0,12}", prop::sample::select(vec!["\n", "\r\n", "\r"])), 0..30),
            cuts in prop::collection::vec(0usize..400, 0..8),
        ) {
            let mut stream = Vec::new();
            for (field, value, ending) in &lines {
                stream.extend_from_slice(format!("{field}: {value}{ending}").as_bytes());
                if value.len() % 3 == 0 {
                    stream.extend_from_slice(ending.as_bytes());
                }
            }
            let whole = parse_all(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            prop_assert_eq!(parse_all(&chunks), whole);
        }
    }
}
