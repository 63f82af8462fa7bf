//! Any body, read as each of the providers' report pages (Anthropic's usage and cost reports,
//! OpenAI's usage and costs) and the coding agents' analytics (a Claude Code usage report page,
//! Copilot's report links and NDJSON file): no panic, and a page that reads is consistent —
//! every line is in one of the page's buckets and every bucket ends after it starts; every
//! activity line is of the day asked for.
#![no_main]

use goodhart_core::provider_reports::{
    Bucket, Page, anthropic_cost_page, anthropic_usage_page, openai_cost_page, openai_usage_page,
};
use goodhart_core::Micros;
use goodhart_core::agent_analytics::{claude_code_page, copilot_report_links, copilot_users_file};
use libfuzzer_sys::fuzz_target;

fn check<T>(page: &Page<T>, bucket: impl Fn(&T) -> Bucket) {
    assert!(page.buckets.iter().all(|b| b.end > b.start));
    assert!(page.lines.iter().all(|line| page.buckets.contains(&bucket(line))));
}

fuzz_target!(|body: &[u8]| {
    if let Ok(page) = anthropic_usage_page(body) {
        check(&page, |l| l.bucket);
    }
    if let Ok(page) = openai_usage_page(body) {
        check(&page, |l| l.bucket);
        assert!(page.lines.iter().all(|l| l.requests.is_some()));
    }
    if let Ok(page) = anthropic_cost_page(body) {
        check(&page, |l| l.bucket);
    }
    if let Ok(page) = openai_cost_page(body) {
        check(&page, |l| l.bucket);
    }
    // 2026-01-05T00:00:00Z.
    let day = Micros(1_767_571_200_000_000);
    if let Ok(page) = claude_code_page(body, day) {
        assert!(page.lines.iter().all(|l| l.day == day));
    }
    if let Ok(lines) = copilot_users_file(body, day) {
        assert!(lines.iter().all(|l| l.day == day));
    }
    if let Ok(links) = copilot_report_links(body, day) {
        assert_eq!(links.day, day);
    }
});
