//! Any body, read as a Bedrock AWS event stream: no panic, and the events (and whether a frame
//! could not be read) do not depend on how the body was split into chunks.
#![no_main]

use goodhart_core::event_stream::EventStreamParser;
use goodhart_core::sse::SseEvent;
use libfuzzer_sys::fuzz_target;

fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
    let mut parser = EventStreamParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut out);
    }
    parser.finish(&mut out);
    (out, parser.broken())
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split points; the rest is the body.
    let (seed, body) = data.split_at(data.len().min(2));
    let whole = parse(&[body]);
    let step = 1 + usize::from(seed.first().copied().unwrap_or(0)) % 16;
    let first = usize::from(seed.get(1).copied().unwrap_or(0)) % (body.len() + 1);
    let (head, tail) = body.split_at(first);
    assert_eq!(parse(&[head, tail]), whole, "split at {first}");
    let mut chunks = vec![head];
    chunks.extend(tail.chunks(step));
    assert_eq!(parse(&chunks), whole, "split at {first}, then every {step} bytes");
});
