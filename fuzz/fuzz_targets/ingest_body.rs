//! Any request body, read as NDJSON and as a JSON array: parsing and validation must return
//! events or a line-and-field error, never panic.
#![no_main]

use goodhart_core::Micros;
use goodhart_core::usage::{IngestPolicy, Source};
use goodhart_server::ingest::parse_events;
use libfuzzer_sys::fuzz_target;

const POLICY: IngestPolicy = IngestPolicy { store_content: true, source: Source::Api };

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for ndjson in [true, false] {
            let _ = parse_events(text, ndjson, POLICY, Micros(1_800_000_000_000_000));
        }
    }
});
