//! Any body, read as Gemini's streamed JSON array: no panic, and the elements (and whether the
//! array closed) do not depend on how the body was split into chunks.
#![no_main]

use goodhart_core::json_stream::JsonArrayParser;
use goodhart_core::sse::SseEvent;
use libfuzzer_sys::fuzz_target;

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
