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

/// The longest time a setting in seconds may name: a year. Beyond it no one means it, and a
/// deadline that far ahead would not fit the clock (adding it panics).
pub const MAX_SETTING_SECS: u64 = 365 * 24 * 3600;

/// A setting's whole seconds: above 0 (or 0 too, when `zero_ok`) and at most
/// [`MAX_SETTING_SECS`]; `None` for anything else.
pub fn setting_secs(text: &str, zero_ok: bool) -> Option<std::time::Duration> {
    let secs = text.trim().parse::<u64>().ok()?;
    ((secs > 0 || zero_ok) && secs <= MAX_SETTING_SECS)
        .then(|| std::time::Duration::from_secs(secs))
}

/// The setting `name` in seconds, from `text` (unset or blank: `default`); a value
/// [`setting_secs`] refuses is named in `warnings` and `default` used.
pub fn setting_secs_or(
    name: &str,
    text: Option<&str>,
    zero_ok: bool,
    default: std::time::Duration,
    warnings: &mut Vec<String>,
) -> std::time::Duration {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return default;
    };
    setting_secs(text, zero_ok).unwrap_or_else(|| {
        warnings.push(format!(
            "{name}={} is not a whole number of seconds from {} to {MAX_SETTING_SECS}; using {}",
            excerpt(text, 32),
            u8::from(!zero_ok),
            default.as_secs()
        ));
        default
    })
}

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
    fn seconds_settings_stop_at_a_year() {
        assert_eq!(
            setting_secs(" 30 ", false),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(setting_secs("0", false), None);
        assert_eq!(setting_secs("0", true), Some(std::time::Duration::ZERO));
        assert!(setting_secs("31536000", false).is_some());
        for bad in ["31536001", "18446744073709551615", "-1", "1.5", "30s"] {
            assert_eq!(setting_secs(bad, true), None, "{bad}");
        }
    }

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
