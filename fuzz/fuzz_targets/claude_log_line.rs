//! Any line of a Claude Code session log: reading it must give a response, nothing, or a
//! reason, never panic; and a response read twice counts once.
#![no_main]

use goodhart_core::agent_logs::{Responses, parse_claude_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut responses = Responses::default();
        for line in text.lines() {
            if let Ok(Some(response)) = parse_claude_line(line) {
                responses.add(response.clone());
                responses.add(response);
            }
        }
        let kept = responses.len();
        assert_eq!(responses.into_sorted().len(), kept);
    }
});
