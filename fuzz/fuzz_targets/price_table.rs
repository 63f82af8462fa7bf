//! Any price table or configuration file, and any model name: errors, never panics.
#![no_main]

use goodhart_core::pricing::{PriceTable, name_candidates};
use goodhart_server::config::RawConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = name_candidates(text);
        let _ = RawConfig::from_toml(text);
        if let Ok(table) = PriceTable::parse(text) {
            for model in table.models() {
                let _ = table.cost_of(None, &model.model, &Default::default());
            }
        }
    }
});
