//! Cost of metering a streamed response: SSE parsing plus usage extraction, per stream, fed in
//! network-sized chunks (what the gateway will do on every streamed call).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use goodhart_core::providers::{StreamTap, WireProtocol};
use goodhart_core::sse::SseParser;

/// An Anthropic stream of `words` text deltas, in the provider's event sequence.
fn anthropic_stream(words: usize) -> Vec<u8> {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":1200,\"cache_read_input_tokens\":8000,\"output_tokens\":1}}}\n\n",
    );
    for i in 0..words {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"
        ));
    }
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":350}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

fn stream_tap(c: &mut Criterion) {
    let stream = anthropic_stream(350);
    let mut group = c.benchmark_group("stream tap");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("anthropic, 350 deltas, 1 KiB chunks", |b| {
        b.iter(|| {
            let (mut parser, mut tap, mut events) =
                (SseParser::new(), StreamTap::new(WireProtocol::Anthropic), Vec::new());
            for chunk in black_box(&stream).chunks(1024) {
                parser.push(chunk, &mut events);
                events.drain(..).for_each(|e| tap.observe(&e));
            }
            parser.finish(&mut events);
            events.iter().for_each(|e| tap.observe(e));
            tap.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, stream_tap);
criterion_main!(benches);
