//! Any body posted to the OTLP receiver, as each signal in each encoding: decoding and reading
//! usage from it must give events, rejections or an error, never panic.
#![no_main]

use goodhart_core::Micros;
use goodhart_server::otlp::usage::Defaults;
use goodhart_server::otlp::{Encoding, SignalKind, read_export};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let defaults = Defaults { team: Some("fuzz".into()), store_content: true };
    for kind in [SignalKind::Logs, SignalKind::Metrics, SignalKind::Traces] {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let _ = read_export(kind, encoding, data, &defaults, Micros(1_800_000_000_000_000));
        }
    }
});
