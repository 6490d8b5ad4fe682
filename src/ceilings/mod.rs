//! Resource ceilings: bounds that keep one process healthy under bursts and abuse, whatever
//! the rate limits allow. Password hashing runs in a few slots sized to the machine
//! ([`hashing`]); request bodies buffered for substitution share one byte budget
//! ([`body_budget`]); wrong verification codes spend a per-address budget that refills with time
//! ([`guesses`]); text taken from a request is echoed back only as a short [`excerpt`].
//!
//! Stance: a ceiling refuses the excess quickly (`429`/`503` with `Retry-After`) instead of
//! queueing without bound; every table keyed by caller input is bounded.

pub mod body_budget;
pub mod guesses;
pub mod hashing;

use std::borrow::Cow;

/// Longest piece of caller input an error message repeats.
pub const ECHO_CHARS: usize = 64;

/// `text` as an error message may repeat it: at most `max` characters, and when cut, marked
/// with how long the whole was, so a megabyte of input never comes back whole.
pub fn excerpt(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes in all)", &text[..cut], text.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_long_text_is_cut_on_a_char_boundary() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("abcde", 5), "abcde");
        let long = "é".repeat(100_000);
        let cut = excerpt(&long, 10);
        assert!(cut.starts_with(&"é".repeat(10)), "{cut}");
        assert!(cut.ends_with("(200000 bytes in all)"), "{cut}");
        assert!(cut.len() < 60);
    }
}
