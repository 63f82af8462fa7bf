//! Token estimates for calls whose provider never reported usage (the upstream omitted it, the
//! stream broke, or the client went away first).
//!
//! Counts come from a real BPE tokenizer, OpenAI's `o200k_base` (exact for GPT-4o and later
//! OpenAI models; for other providers' models an approximation, typically within 10–20 %).
//! The tokenizer's tables are loaded on first use only, so a gateway that never needs an
//! estimate never pays their memory.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

fn tokenizer() -> &'static CoreBPE {
    static TOKENIZER: OnceLock<CoreBPE> = OnceLock::new();
    #[expect(
        clippy::expect_used,
        reason = "the tables are embedded in the binary, and every estimate test loads them"
    )]
    let tokenizer =
        TOKENIZER.get_or_init(|| tiktoken_rs::o200k_base().expect("the embedded o200k_base tables are valid"));
    tokenizer
}

/// Tokens in `text` under `o200k_base`.
pub fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer().encode_ordinary(text).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_reference_tokenizer() {
        assert_eq!(count_tokens(""), 0);
        // "Hello world" is two tokens in o200k_base, as in OpenAI's tiktoken.
        assert_eq!(count_tokens("Hello world"), 2);
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(100);
        let n = count_tokens(&long);
        assert!((900..=1100).contains(&n), "{n}");
    }
}
