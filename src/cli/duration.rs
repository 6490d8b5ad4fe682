//! Go's duration format, as the seed's `--invite-ttl` documents it: a sequence of decimal
//! numbers, each with an optional fraction and a unit — `ns`, `us` (`µs`), `ms`, `s`, `m`,
//! `h` — such as `300ms`, `1.5h` or `2h45m`. One extension: `d` for 24 hours.

use std::time::Duration;

const UNITS: [(&str, f64); 9] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

#[derive(Debug, thiserror::Error)]
#[error(
    "\"{0}\" is not a duration; write it like 15m, 1h30m, 1.5h, 90s or 300ms (units ns, us, ms, s, m, h, d)"
)]
pub struct DurationError(String);

/// Parses a Go duration; a negative or zero one is refused (nothing here can use it).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        // The longest unit that matches ("ms" before "m").
        let (unit, scale) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
            .ok_or_else(bad)?;
        seconds += value * scale;
        rest = &after[unit.len()..];
    }
    if seconds <= 0.0 {
        return Err(bad());
    }
    // `try_`: a sum of 2^64 seconds or more (`18446744073709551616s`) does not fit a Duration;
    // less than a nanosecond (`.1ns`) rounds to zero.
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

/// Whole seconds, rounded up (an API that counts seconds never gets less than asked).
pub fn parse_seconds(text: &str) -> Result<i64, DurationError> {
    let duration = parse(text)?;
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i64::try_from(seconds).map_err(|_| DurationError(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        for (text, millis) in [
            ("15m", 900_000),
            ("1h30m", 5_400_000),
            ("90s", 90_000),
            ("1.5h", 5_400_000),
            ("300ms", 300),
            ("2h45m0.5s", 9_900_500),
            (".5s", 500),
            ("1d", 86_400_000),
            ("+10s", 10_000),
            ("1500us", 1),
        ] {
            assert_eq!(parse(text).unwrap().as_millis(), millis, "{text}");
        }
        assert_eq!(parse_seconds("300ms").unwrap(), 1);
        assert_eq!(parse_seconds("1.5h").unwrap(), 5400);
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "15",
            "m",
            "1x",
            "0s",
            "-5m",
            "1..5h",
            ".h",
            "1h 30m",
            "1e3s",
            "5mm",
            "h1",
            // Under a nanosecond, or too long for a Duration: refused, not a panic.
            ".1ns",
            "18446744073709551616s",
            "213503982334602d",
            &format!("{}s", "9".repeat(400)),
            "99999999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
