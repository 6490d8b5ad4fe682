//! Zeroizing secret types with redacted `Debug`, and the system random source.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Fills an array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source does not fail on Linux once booted; without it no key can be
    // made safely, so stopping is the only correct answer.
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut bytes).expect("operating system random source unavailable");
    bytes
}

/// A 256-bit symmetric key (the DEK or a KEK). Wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl Key {
    pub fn generate() -> Self {
        Self(random_bytes())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).ok()?);
        Self::from_slice(&bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(redacted)")
    }
}

/// A secret text (password, credential value, raw token). Wiped on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SecretString::from("SENTINEL-7c1f");
        let key = Key::from_bytes([0xab; 32]);
        assert!(!format!("{secret:?}").contains("SENTINEL"));
        assert!(!format!("{key:?}").contains("abab"));
    }

    #[test]
    fn key_hex_round_trips() {
        let key = Key::generate();
        let back = Key::from_hex(&key.to_hex()).unwrap();
        assert_eq!(key.as_bytes(), back.as_bytes());
        assert!(Key::from_hex("abcd").is_none());
    }
}
