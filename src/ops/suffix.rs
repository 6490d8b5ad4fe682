//! Naming a pending invite by the end of its token (`… revoke <last 8+ characters>`), as
//! only the hash and the last characters of a token are stored.

use super::OpError;
use crate::crypto::hash_token;
use crate::store::invites::SUFFIX_LEN;

/// Shortest token suffix accepted.
const MIN_SUFFIX: usize = 8;

pub struct SuffixQuery {
    /// The whole token was given: match its hash exactly.
    pub full_hash: Option<String>,
    tail: String,
    shown: String,
}

impl SuffixQuery {
    /// Reads what the user gave; `prefix` is the token type (`av_uinv_`), `list` the command
    /// that shows suffixes.
    pub fn parse(given: &str, prefix: &str, list: &str) -> Result<Self, OpError> {
        let given = given.trim().trim_start_matches('…');
        // Tokens are ASCII; anything else is not one, and would make the byte cut below
        // land inside a character.
        if !given.is_ascii() {
            return Err(OpError::invalid(format!(
                "\"{given}\" is not part of an invite token: tokens are letters, digits and _ (see `{list}`)"
            )));
        }
        if given.len() < MIN_SUFFIX {
            return Err(OpError::invalid(format!(
                "give at least the last {MIN_SUFFIX} characters of the invite token (see `{list}`)"
            )));
        }
        Ok(Self {
            full_hash: given.starts_with(prefix).then(|| hash_token(given)),
            tail: given[given.len().saturating_sub(SUFFIX_LEN)..].to_owned(),
            shown: given.to_owned(),
        })
    }

    pub fn matches(&self, stored_suffix: &str) -> bool {
        stored_suffix.ends_with(&self.tail)
    }

    /// The single candidate, or an error naming none or all of them.
    pub fn pick<T>(
        &self,
        mut candidates: Vec<T>,
        label: impl Fn(&T) -> &str,
        list: &str,
    ) -> Result<T, OpError> {
        match candidates.len() {
            0 => Err(OpError::not_found(format!(
                "no pending invite of yours ends with \"{}\"; see `{list}`",
                self.shown
            ))),
            1 => Ok(candidates.remove(0)),
            n => Err(OpError::conflict(format!(
                "\"{}\" matches {n} pending invites ({}); give more characters of the token",
                self.shown,
                candidates.iter().map(&label).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "agent-vault user invite list";

    #[test]
    fn a_suffix_keeps_the_last_characters_and_a_whole_token_its_hash() {
        let query = SuffixQuery::parse("…0123456789abcdef", "av_uinv_", LIST).unwrap();
        assert!(query.full_hash.is_none());
        assert!(query.matches("456789abcdef"));
        assert!(!query.matches("456789abcdee"));
        let whole = SuffixQuery::parse("av_uinv_0123456789abcdef", "av_uinv_", LIST).unwrap();
        assert_eq!(
            whole.full_hash.as_deref(),
            Some(hash_token("av_uinv_0123456789abcdef").as_str())
        );
    }

    #[test]
    fn short_or_non_ascii_input_is_refused_not_cut() {
        for given in [
            "1234567",
            "ééééééa",
            "0123456789aé",
            "ab\u{10FFFF}defghijklm",
        ] {
            let refused = SuffixQuery::parse(given, "av_uinv_", LIST).err();
            assert!(refused.is_some(), "{given:?} was accepted");
        }
    }
}
