//! Privacy-preserving fingerprints of prompts and outputs.
//!
//! Waste detection needs to know that two prompts are near-identical or that an output is
//! filler, not what they say. A 64-bit SimHash of the normalised text's word shingles keeps
//! the first (near-identical texts differ in few bits, and the text cannot be recovered); the
//! deflate ratio of the output keeps the second (filler compresses extremely well).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// What is kept of a call's text when its content is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprints {
    pub prompt_simhash: Option<u64>,
    pub completion_simhash: Option<u64>,
    /// Deflated size of the completion as a permille of its size (lower = more repetitive).
    pub completion_compress_permille: Option<u32>,
    pub prompt_chars: Option<u64>,
    pub completion_chars: Option<u64>,
}

impl Fingerprints {
    pub fn of(prompt: Option<&str>, completion: Option<&str>) -> Fingerprints {
        Fingerprints {
            prompt_simhash: prompt.map(simhash),
            completion_simhash: completion.map(simhash),
            completion_compress_permille: completion.map(compress_permille),
            prompt_chars: prompt.map(|p| p.chars().count() as u64),
            completion_chars: completion.map(|c| c.chars().count() as u64),
        }
    }
}

/// Lowercased words of letters and digits, with every run of digits replaced by `0`, so that
/// "attempt 41" and "attempt 42" normalise alike.
pub fn normalised_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for_each_normalised_word(text, |word| words.push(word.to_owned()));
    words
}

/// Calls `f` with each of [`normalised_words`] in turn, written into one reused buffer: the
/// gateway fingerprints every call's prompt inline, and prompts run to hundreds of kilobytes.
fn for_each_normalised_word(text: &str, mut f: impl FnMut(&str)) {
    let mut out = String::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        out.clear();
        let mut in_digits = false;
        if word.is_ascii() {
            // The same as below, a byte at a time (most text is ASCII).
            for b in word.bytes() {
                if b.is_ascii_digit() {
                    if !in_digits {
                        out.push('0');
                    }
                    in_digits = true;
                } else {
                    out.push(char::from(b.to_ascii_lowercase()));
                    in_digits = false;
                }
            }
            f(&out);
            continue;
        }
        for c in word.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('0');
                }
                in_digits = true;
            } else {
                out.push(c);
                in_digits = false;
            }
        }
        f(&out);
    }
}

/// 64-bit SimHash over word unigrams and bigrams (`"first second"`) of the normalised text.
pub fn simhash(text: &str) -> u64 {
    let mut votes = Votes::default();
    let (mut previous, mut pair) = (String::new(), String::new());
    let mut first = true;
    for_each_normalised_word(text, |word| {
        votes.add(xxh3_64(word.as_bytes()));
        if !first {
            pair.clear();
            pair.push_str(&previous);
            pair.push(' ');
            pair.push_str(word);
            votes.add(xxh3_64(pair.as_bytes()));
        }
        previous.clear();
        previous.push_str(word);
        first = false;
    });
    votes.majority()
}

/// SimHash's vote: for each of the 64 bits, how many of the hashes added have it set, kept as
/// bit planes (plane `j` holds bit `j` of all 64 counts) so that adding a hash is a ripple of
/// word-wide carries — a couple of operations on average — instead of 64 separate additions.
struct Votes {
    planes: [u64; 64],
    hashes: u64,
}

impl Default for Votes {
    fn default() -> Votes {
        Votes {
            planes: [0; 64],
            hashes: 0,
        }
    }
}

impl Votes {
    fn add(&mut self, hash: u64) {
        let mut carry = hash;
        for plane in &mut self.planes {
            if carry == 0 {
                break;
            }
            let sum = *plane ^ carry;
            carry &= *plane;
            *plane = sum;
        }
        self.hashes += 1;
    }

    /// The bits set in more than half of the hashes.
    fn majority(&self) -> u64 {
        // No count exceeds the number of hashes: the planes above its bit length are empty.
        let planes = &self.planes[..(64 - self.hashes.leading_zeros()) as usize];
        (0..64).fold(0u64, |acc, bit| {
            let set =
                (planes.iter().enumerate()).fold(0u128, |count, (j, plane)| count | u128::from(plane >> bit & 1) << j);
            if 2 * set > u128::from(self.hashes) {
                acc | 1 << bit
            } else {
                acc
            }
        })
    }
}

/// How many of the 64 bits two SimHashes share (64 = identical fingerprints).
pub fn simhash_similarity(a: u64, b: u64) -> u32 {
    64 - (a ^ b).count_ones()
}

/// Deflated size as a permille of the original size (1000 for empty text).
pub fn compress_permille(text: &str) -> u32 {
    if text.is_empty() {
        return 1000;
    }
    // A compressor's tables are large: reuse one per thread instead of zeroing new ones for
    // every call (the gateway fingerprints every response).
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<(flate2::Compress, Vec<u8>)> =
            std::cell::RefCell::new((flate2::Compress::new(flate2::Compression::fast(), false), Vec::new()));
    }
    let input = text.as_bytes();
    let compressed = COMPRESSOR.with_borrow_mut(|(compressor, output)| {
        compressor.reset();
        output.clear();
        output.reserve(input.len() + input.len() / 8 + 64);
        match compressor.compress_vec(input, output, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) => output.len(),
            _ => input.len(),
        }
    });
    ((compressed as u64 * 1000) / input.len() as u64).min(1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SimHash as first written (a String per word, a `format!` per bigram): the reference the
    /// allocation-free one must match bit for bit, or stored fingerprints would stop comparing.
    fn reference_simhash(text: &str) -> u64 {
        let words = normalised_words(text);
        let mut weights = [0i64; 64];
        let mut add = |hash: u64| {
            for (bit, weight) in weights.iter_mut().enumerate() {
                *weight += if hash >> bit & 1 == 1 { 1 } else { -1 };
            }
        };
        for word in &words {
            add(xxh3_64(word.as_bytes()));
        }
        for pair in words.windows(2) {
            add(xxh3_64(format!("{} {}", pair[0], pair[1]).as_bytes()));
        }
        weights
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0)
            .fold(0u64, |acc, (bit, _)| acc | 1 << bit)
    }

    proptest! {
        #[test]
        fn simhash_is_the_reference_bit_for_bit(text in "(\\PC|[ 0-9a-zA-Z.,-]){0,300}") {
            prop_assert_eq!(simhash(&text), reference_simhash(&text));
        }
    }

    #[test]
    fn near_identical_prompts_share_most_bits() {
        let a = simhash("Please refactor the payment module, attempt 41, and report back.");
        let b = simhash("please refactor the payment module attempt 42 and report back");
        let unrelated = simhash("Write a haiku about autumn leaves falling on a quiet pond.");
        assert_eq!(a, b, "case, punctuation and numbers are normalised away");
        assert!(simhash_similarity(a, unrelated) < 54);
    }

    #[test]
    fn filler_compresses_far_better_than_prose() {
        let filler = "lorem ipsum ".repeat(400);
        let prose = "The quick brown fox jumps over the lazy dog while seven wizards quietly \
                     judge boxing matches; meanwhile, a sphinx of black quartz reviews my vow.";
        assert!(compress_permille(&filler) < 50);
        assert!(compress_permille(prose) > 500);
    }

    #[test]
    fn no_text_no_fingerprint() {
        assert_eq!(Fingerprints::of(None, None), Fingerprints::default());
    }
}
