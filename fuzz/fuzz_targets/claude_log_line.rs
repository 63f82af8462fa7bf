//! Any lines of a Claude Code session log or a Codex rollout: reading them must give a call,
//! nothing, or a reason, never panic; and a call read twice counts once.
#![no_main]

use goodhart_core::agent_logs::{Calls, ClaudeCodeLog, CodexLog, LogReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let readers: [&mut dyn LogReader; 2] = [&mut ClaudeCodeLog, &mut CodexLog::default()];
        for reader in readers {
            let mut calls = Calls::default();
            for line in text.lines() {
                if let Ok(Some(call)) = reader.line(line) {
                    calls.add(call.clone());
                    calls.add(call);
                }
            }
            let kept = calls.len();
            assert_eq!(calls.into_sorted().len(), kept);
        }
    }
});
