//! An incremental parser for a JSON array streamed element by element.
//!
//! The Gemini API's `models/{model}:streamGenerateContent` without `?alt=sse` answers
//! `application/json`: one JSON array whose elements are `GenerateContentResponse` objects
//! (`candidates`, `usageMetadata`, `modelVersion`, `responseId`), written as the model
//! generates them, with whitespace and line breaks (CRLF or LF) between the elements, e.g.
//! `[{…}\r\n,{…}\r\n,{…}]`. The array only closes when generation ends, so a reader that waits
//! for the whole body meters nothing until then; this parser yields each element as soon as
//! its closing brace arrives. An error during the stream arrives as one more element,
//! `{"error": {"code", "message", "status"}}`. Google's own reader of this framing (the
//! REST transports of the generated Python clients, `google.api_core._rest_streaming_base`)
//! works the same way: it tracks the nesting level, whether it is inside a string and whether
//! the previous character was a backslash, and hands out each object closing at level 1; it
//! refuses a body that does not start with `[`. Google's JavaScript SDK (`@google/generative-ai`,
//! `processStream` and its `responseLineRE`) asks for `alt=sse` instead and reads `data:` lines
//! (see [`crate::sse`]); developers reading the default framing by hand report the same array of
//! partial responses (discuss.google.dev, "streamGenerateContent method of gemini REST APIs
//! giving multiple json objects").
//!
//! Streams arrive in arbitrary chunks: the parser owns its buffer, scans bytes (so a UTF-8
//! character split across chunks is whole again by the time its element is yielded), and
//! treats "need more bytes" as the normal state, not an error. Each element is yielded as an
//! [`SseEvent`] with no event name and the element's JSON text as `data`, so the gateway's
//! stream tap reads both framings the same way. It is not a validator: brackets are counted,
//! not matched, and a malformed element is yielded for its reader to refuse.
//!
//! - A leading UTF-8 BOM and whitespace before `[` are skipped; whitespace and commas between
//!   elements are skipped; anything after the closing `]` is ignored ([`JsonArrayParser::closed`]
//!   says the `]` arrived, the end of the stream as far as the API is concerned).
//! - Top-level strings, numbers and literals are elements too (a number or literal ends at the
//!   whitespace, comma or `]` after it).
//! - A body that does not start with `[` (a proxy answering a plain `{"error": …}` with 200, or
//!   an HTML page) is one element: an object is yielded when its closing brace arrives and
//!   anything after it is ignored; anything else is yielded whole, trimmed, by
//!   [`JsonArrayParser::finish`].
//! - An element longer than 16 MiB is dropped (nothing is yielded for it) and the parser skips
//!   to its end without buffering it: real elements are far shorter, and memory stays bounded.
//! - A stream cut mid-element yields nothing for that element, and
//!   [`JsonArrayParser::complete`] stays false.

use crate::sse::SseEvent;

#[derive(Debug, Default)]
pub struct JsonArrayParser {
    /// The bytes of the element being read (empty while it is being skipped).
    buffer: Vec<u8>,
    /// How many bytes of a leading BOM have arrived before the body started.
    bom: usize,
    state: State,
    /// Whether the body is an array (false until its `[` arrives, and for a single element).
    array: bool,
    /// Open brackets and braces in the element being read.
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The element being read is over the limit: scan to its end, keep nothing.
    oversized: bool,
    closed: bool,
    complete: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first byte after the BOM and whitespace.
    #[default]
    Start,
    /// Inside the array, between elements.
    Between,
    /// Inside an object or array element.
    Nested,
    /// Inside a top-level string element.
    Text,
    /// Inside a top-level number or literal element.
    Scalar,
    /// A body that is not an array and does not start with `{`: kept whole until `finish`.
    Whole,
    /// After the top-level value, or after `finish`: every byte is ignored.
    Ended,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Elements longer than this are dropped (a safety bound: real elements are far shorter).
const MAX_ELEMENT_BYTES: usize = 16 * 1024 * 1024;

impl JsonArrayParser {
    pub fn new() -> JsonArrayParser {
        JsonArrayParser::default()
    }

    /// Feeds a chunk and appends every element it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        let mut chunk = chunk;
        if self.state == State::Start && self.bom < BOM.len() {
            let matched = chunk.iter().zip(&BOM[self.bom..]).take_while(|(a, b)| a == b).count();
            if self.bom + matched == BOM.len() || matched == chunk.len() {
                self.bom += matched;
                chunk = &chunk[matched..];
            } else {
                // Not a BOM after all: the bytes taken for one are the body's first bytes.
                let taken = self.bom;
                self.bom = BOM.len();
                self.scan(&BOM[..taken], out);
            }
        }
        if self.bom == BOM.len() || !chunk.is_empty() {
            self.scan(chunk, out);
        }
    }

    /// Ends the stream. An element still incomplete is dropped (a cut stream is not made whole
    /// by guessing), and a body that is not an array nor an object is yielded now.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.state == State::Start && (1..BOM.len()).contains(&self.bom) {
            let taken = self.bom;
            self.bom = BOM.len();
            self.scan(&BOM[..taken], out);
        }
        if self.state == State::Whole {
            self.complete = true;
            self.emit(out);
        }
        self.buffer = Vec::new();
        self.state = State::Ended;
    }

    /// Whether the top-level value has ended: the array's `]` (or a non-array body's closing
    /// brace) has arrived. Later bytes are ignored, so a caller may treat this as the end of
    /// the stream.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Whether the body arrived whole: closed, or (after `finish`) a body that is neither an
    /// array nor an object. False for a stream cut before its `]`, mid-element or empty.
    pub fn complete(&self) -> bool {
        self.complete
    }

    fn scan(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        // Where the current element's bytes start in this chunk.
        let mut from = 0;
        let mut i = 0;
        while i < chunk.len() {
            let byte = chunk[i];
            match self.state {
                State::Start | State::Between => {
                    from = i;
                    match byte {
                        b' ' | b'\t' | b'\r' | b'\n' => {}
                        b',' if self.array => {}
                        b'[' if self.state == State::Start => {
                            self.array = true;
                            self.state = State::Between;
                        }
                        b']' if self.array => self.end_of_body(),
                        b'{' | b'[' => {
                            self.depth = 1;
                            self.state = State::Nested;
                        }
                        b'"' if self.array => {
                            self.in_string = true;
                            self.state = State::Text;
                        }
                        _ if self.array => self.state = State::Scalar,
                        _ => self.state = State::Whole,
                    }
                }
                State::Nested => {
                    if self.in_string {
                        self.string_byte(byte);
                    } else {
                        match byte {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    self.take(&chunk[from..=i], out);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                State::Text => {
                    self.string_byte(byte);
                    if !self.in_string {
                        self.take(&chunk[from..=i], out);
                    }
                }
                State::Scalar => {
                    if matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | b',' | b']') {
                        self.take(&chunk[from..i], out);
                        continue; // The delimiter is read again between elements.
                    }
                }
                State::Whole => {}
                State::Ended => return,
            }
            i += 1;
        }
        if matches!(self.state, State::Nested | State::Text | State::Scalar | State::Whole) {
            self.keep(&chunk[from..]);
        }
    }

    fn string_byte(&mut self, byte: u8) {
        if self.escaped {
            self.escaped = false;
        } else if byte == b'\\' {
            self.escaped = true;
        } else if byte == b'"' {
            self.in_string = false;
        }
    }

    /// Buffers part of the current element, or starts skipping it once it is over the limit.
    fn keep(&mut self, bytes: &[u8]) {
        if self.oversized {
            return;
        }
        if self.buffer.len() + bytes.len() > MAX_ELEMENT_BYTES {
            self.oversized = true;
            self.buffer = Vec::new();
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Ends the current element with its last bytes and yields it.
    fn take(&mut self, last: &[u8], out: &mut Vec<SseEvent>) {
        self.keep(last);
        self.emit(out);
        if self.array {
            self.state = State::Between;
        } else {
            self.end_of_body();
        }
    }

    fn emit(&mut self, out: &mut Vec<SseEvent>) {
        if !self.oversized {
            let data = String::from_utf8_lossy(&self.buffer).trim().to_owned();
            if !data.is_empty() {
                out.push(SseEvent { event: None, data });
            }
        }
        self.buffer.clear();
        self.oversized = false;
    }

    fn end_of_body(&mut self) {
        self.closed = true;
        self.complete = true;
        self.state = State::Ended;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        parse(chunks).0
    }

    fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool, bool) {
        let mut parser = JsonArrayParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        let closed = parser.closed();
        parser.finish(&mut out);
        (out, closed, parser.complete())
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events
            .iter()
            .inspect(|e| assert_eq!(e.event, None))
            .map(|e| e.data.as_str())
            .collect()
    }

    /// The whole stream, every two-chunk split of it, and one byte at a time.
    fn every_split(stream: &[u8]) -> Vec<SseEvent> {
        let whole = parse_all(&[stream]);
        for cut in 0..=stream.len() {
            assert_eq!(parse_all(&[&stream[..cut], &stream[cut..]]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole, "one byte at a time");
        whole
    }

    const FIRST: &str = r#"{"candidates": [{"content": {"parts": [{"text": "The sky"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},"modelVersion": "gemini-2.5-flash","responseId": "abc123"}"#;
    const SECOND: &str = r#"{"candidates": [{"content": {"parts": [{"text": " is blue: \"Rayleigh\" [scattering], {light}, ünïcødé ☀️"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.5-flash","responseId": "abc123"}"#;
    const THIRD: &str = r#"{"candidates": [{"content": {"parts": [{"text": "."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 1290,"candidatesTokenCount": 12,"totalTokenCount": 1502,"cachedContentTokenCount": 1024,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 1290}],"cacheTokensDetails": [{"modality": "TEXT","tokenCount": 1024}],"thoughtsTokenCount": 200},"modelVersion": "gemini-2.5-flash","responseId": "abc123"}"#;

    fn gemini_stream() -> String {
        format!("[{FIRST}\r\n,{SECOND}\r\n,{THIRD}]")
    }

    #[test]
    fn a_gemini_stream_gives_the_same_elements_at_every_split() {
        let stream = gemini_stream();
        let events = every_split(stream.as_bytes());
        assert_eq!(data(&events), vec![FIRST, SECOND, THIRD]);
        let last: Value = serde_json::from_str(&events[2].data).unwrap();
        assert_eq!(last["usageMetadata"]["cachedContentTokenCount"], 1024);
        assert_eq!(last["usageMetadata"]["thoughtsTokenCount"], 200);
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        let (_, closed, complete) = parse(&[stream.as_bytes()]);
        assert!(closed && complete);
    }

    #[test]
    fn an_element_is_yielded_when_its_brace_arrives_not_at_the_next_comma() {
        let mut parser = JsonArrayParser::new();
        let mut out = Vec::new();
        parser.push(b"[{\"a\":1}", &mut out);
        assert_eq!(data(&out), vec!["{\"a\":1}"]);
        parser.push(b"\n,{\"b\":", &mut out);
        assert_eq!(out.len(), 1);
        parser.push(b"2}", &mut out);
        assert_eq!(data(&out), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert!(!parser.closed());
        parser.push(b"]", &mut out);
        assert!(parser.closed());
    }

    #[test]
    fn strings_hold_brackets_escapes_and_utf8() {
        let element = r#"{"t":"] } , [ { \" \\ \\\" \u00e9\ud83d\ude00 é😀 \n","u":["]"],"v":"\\"}"#;
        let quote = r#"{"q":"\"}]","r":"\\"}"#;
        let stream = format!("[{element},{quote},{element}]");
        let events = every_split(stream.as_bytes());
        assert_eq!(data(&events), vec![element, quote, element]);
        let value: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(value["t"], "] } , [ { \" \\ \\\" é😀 é😀 \n");
        assert_eq!(value["v"], "\\");
        let value: Value = serde_json::from_str(&events[1].data).unwrap();
        assert_eq!(value["q"], "\"}]");
    }

    #[test]
    fn bom_whitespace_and_crlf_are_skipped() {
        let stream = b"\xEF\xBB\xBF \r\n[\r\n  {\"a\": 1}\r\n,\r\n  {\"b\": 2}\r\n]\r\n";
        let events = every_split(stream);
        assert_eq!(data(&events), vec!["{\"a\": 1}", "{\"b\": 2}"]);
        assert_eq!(parse_all(&[b"\xEF\xBB", b"\xBF[{}]"]).len(), 1);
    }

    #[test]
    fn bytes_that_only_start_like_a_bom_are_the_body() {
        assert_eq!(
            parse_all(&[b"\xEF", b"x"]),
            vec![SseEvent {
                event: None,
                data: "\u{FFFD}x".to_owned()
            }]
        );
        assert_eq!(data(&parse_all(&[b"\xEF\xBB"])), vec!["\u{FFFD}"]);
    }

    #[test]
    fn an_empty_array_yields_nothing_and_is_complete() {
        for stream in [&b"[]"[..], b" [ \r\n ] ", b"\xEF\xBB\xBF[]"] {
            let (events, closed, complete) = parse(&[stream]);
            assert!(events.is_empty() && closed && complete);
        }
    }

    #[test]
    fn an_empty_body_yields_nothing_and_is_not_complete() {
        let (events, closed, complete) = parse(&[b" \r\n"]);
        assert!(events.is_empty() && !closed && !complete);
    }

    #[test]
    fn a_body_that_is_not_an_array_is_one_element() {
        let error = r#"{"error": {"code": 429, "message": "Resource [exhausted]", "status": "RESOURCE_EXHAUSTED"}}"#;
        let mut parser = JsonArrayParser::new();
        let mut out = Vec::new();
        parser.push(format!("\n{error}").as_bytes(), &mut out);
        assert_eq!(data(&out), vec![error], "yielded when its brace arrives");
        assert!(parser.closed());
        parser.push(b"\n{\"more\":1}", &mut out);
        parser.finish(&mut out);
        assert_eq!(out.len(), 1, "what follows is ignored");
        assert!(parser.complete());
        assert_eq!(data(&every_split(format!("{error}\n").as_bytes())), vec![error]);

        let page = "<html>\r\n<body>Bad Gateway</body>\r\n</html>\r\n";
        let (events, closed, complete) = parse(&[page.as_bytes()]);
        assert_eq!(data(&events), vec![page.trim()], "yielded whole at finish");
        assert!(!closed && complete);
        assert_eq!(data(&every_split(b"  42 ")), vec!["42"]);
    }

    #[test]
    fn a_truncated_stream_yields_whole_elements_only() {
        let stream = gemini_stream();
        let cut = &stream.as_bytes()[..stream.len() - 20];
        let (events, closed, complete) = parse(&[cut]);
        assert_eq!(data(&events), vec![FIRST, SECOND]);
        assert!(!closed && !complete);

        let (events, closed, complete) = parse(&[b"[{\"a\":1},"]);
        assert_eq!(data(&events), vec!["{\"a\":1}"]);
        assert!(!closed && !complete, "cut between elements");

        let (events, _, complete) = parse(&[b"{\"error\": {\"code\": 5"]);
        assert!(events.is_empty() && !complete, "a cut non-array object");
    }

    #[test]
    fn garbage_after_the_array_is_ignored() {
        let stream = b"[{\"a\":1}]\r\n{\"b\":2}],[garbage\"";
        let events = every_split(stream);
        assert_eq!(data(&events), vec!["{\"a\":1}"]);
        let (_, closed, complete) = parse(&[stream]);
        assert!(closed && complete);
    }

    #[test]
    fn an_error_mid_stream_is_an_element() {
        let error = r#"{"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}"#;
        let stream = format!("[{FIRST}\r\n,{error}\r\n]");
        assert_eq!(data(&every_split(stream.as_bytes())), vec![FIRST, error]);
    }

    #[test]
    fn scalars_and_arrays_are_elements_too() {
        let stream = b"[1, \"a,]\\\"\" ,true,null,-2.5e3 , [1,[2]],{}]";
        let events = every_split(stream);
        assert_eq!(
            data(&events),
            vec!["1", "\"a,]\\\"\"", "true", "null", "-2.5e3", "[1,[2]]", "{}"]
        );
        let (events, closed, complete) = parse(&[b"[1"]);
        assert!(
            events.is_empty() && !closed && !complete,
            "a number cut at the end may be partial"
        );
    }

    #[test]
    fn an_element_over_the_limit_is_dropped_and_skipped() {
        let mut parser = JsonArrayParser::new();
        let mut out = Vec::new();
        parser.push(b"[{\"a\":1},{\"big\":\"", &mut out);
        let filler = vec![b'x'; 1024 * 1024];
        for _ in 0..17 {
            parser.push(&filler, &mut out);
            assert!(parser.buffer.len() <= MAX_ELEMENT_BYTES);
        }
        parser.push(b"] } ,\"},{\"b\":2}]", &mut out);
        parser.finish(&mut out);
        assert_eq!(data(&out), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert!(parser.complete());

        let mut exact = b"{\"t\":\"".to_vec();
        exact.resize(MAX_ELEMENT_BYTES - 2, b'y');
        exact.extend_from_slice(b"\"}");
        assert_eq!(exact.len(), MAX_ELEMENT_BYTES);
        let stream = [b"[".as_slice(), &exact, b"]"].concat();
        assert_eq!(
            parse_all(&[&stream]).len(),
            1,
            "an element of exactly the limit is kept"
        );
    }

    #[test]
    fn pushing_after_finish_does_nothing() {
        let mut parser = JsonArrayParser::new();
        let mut out = Vec::new();
        parser.push(b"[{\"a\":", &mut out);
        parser.finish(&mut out);
        parser.push(b"1}]", &mut out);
        parser.finish(&mut out);
        assert!(out.is_empty() && !parser.complete());
    }

    /// Writes `value` as JSON with whitespace from `gaps` around every token.
    fn write_spaced(value: &Value, gaps: &mut impl Iterator<Item = &'static str>, out: &mut String) {
        let gap =
            |gaps: &mut dyn Iterator<Item = &'static str>, out: &mut String| out.push_str(gaps.next().unwrap_or(""));
        match value {
            Value::Array(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        gap(gaps, out);
                        out.push(',');
                    }
                    gap(gaps, out);
                    write_spaced(item, gaps, out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (n, (key, item)) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    gap(gaps, out);
                    out.push_str(&Value::String(key.clone()).to_string());
                    gap(gaps, out);
                    out.push(':');
                    gap(gaps, out);
                    write_spaced(item, gaps, out);
                    gap(gaps, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[\\[\\]{},:\"\\\\ é😀a-z\\x00-\\x1f]{0,12}"]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(text(), value(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn split<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.sort();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        chunks
    }

    proptest! {
        /// Any array of objects, spaced any way and split anywhere, gives its objects back.
        #[test]
        fn any_split_of_any_array_gives_back_its_elements(
            objects in prop::collection::vec(object(), 0..6),
            gaps in prop::collection::vec(prop::sample::select(vec!["", " ", "\r\n", "\n", "\t", " \r\n  "]), 1..40),
            bom in any::<bool>(),
            cuts in prop::collection::vec(0usize..4000, 0..12),
        ) {
            let mut gaps = gaps.into_iter().cycle();
            let mut stream = if bom { "\u{FEFF}".to_owned() } else { String::new() };
            stream.push_str(gaps.next().unwrap_or(""));
            write_spaced(&Value::Array(objects.clone()), &mut gaps, &mut stream);
            stream.push_str("\r\n");
            let (events, closed, complete) = parse(&split(stream.as_bytes(), &cuts));
            let parsed: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
            prop_assert_eq!(parsed, objects);
            prop_assert!(closed && complete);
        }

        /// Any bytes, split anywhere: no panic, and the same elements as the whole input.
        #[test]
        fn any_bytes_split_anywhere_give_the_same_elements(
            bytes in prop_oneof![
                any::<Vec<u8>>(),
                prop::collection::vec(prop::sample::select(b"[]{},\"\\ \r\nab1\xEF\xBB\xBF".to_vec()), 0..200),
            ],
            cuts in prop::collection::vec(0usize..400, 0..10),
        ) {
            prop_assert_eq!(parse(&split(&bytes, &cuts)), parse(&[&bytes]));
        }
    }
}
