//! Any body, read as each of the providers' report pages (Anthropic's usage and cost reports,
//! OpenAI's usage and costs): no panic, and a page that reads is consistent — every line is in
//! one of the page's buckets and every bucket ends after it starts.
#![no_main]

use goodhart_core::provider_reports::{
    Bucket, Page, anthropic_cost_page, anthropic_usage_page, openai_cost_page, openai_usage_page,
};
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
});
