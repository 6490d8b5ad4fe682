//! Cryptography: the data encryption key (DEK), the key-encryption key derived from the
//! master password (KEK), AES-256-GCM sealing with associated data, password hashing, tokens.
//!
//! Stance: every ciphertext is bound to the row it belongs to through its associated data, so
//! a ciphertext moved to another row fails to open. Keys, passwords and tokens live in
//! zeroizing types whose `Debug` output is redacted; nothing here logs.

mod aead;
mod kdf;
mod keyring;
mod secret;
mod token;

pub use aead::{open, seal};
pub use kdf::{KdfParams, derive_key, hash_password, verify_password, waste_password_check};
pub use keyring::{KeyRecord, Protection, UnlockError};
pub use secret::{Key, SecretString, random_bytes};
pub use token::{NewToken, TokenKind, hash_token, mint_token, six_digit_code};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed: the data was tampered with, moved, or sealed under another key")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("invalid key-derivation parameters: {0}")]
    Kdf(String),
}
