//! AES-256-GCM with a random 96-bit nonce and associated data.
//!
//! Layout of a sealed value: `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
//! associated data names the row a ciphertext belongs to (for example
//! `credential/<vault id>/<key>`), so the same bytes copied into another row do not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{CryptoError, Key, random_bytes};

const NONCE_LEN: usize = 12;

pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    let nonce: [u8; NONCE_LEN] = random_bytes();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = Key::generate();
        let sealed = seal(&key, b"row-1", b"secret").unwrap();
        assert_eq!(open(&key, b"row-1", &sealed).unwrap().as_slice(), b"secret");
        assert!(
            open(&key, b"row-2", &sealed).is_err(),
            "other row must not open"
        );
        assert!(
            open(&Key::generate(), b"row-1", &sealed).is_err(),
            "other key"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"row-1", &tampered).is_err(), "tampered");
        assert!(open(&key, b"row-1", &sealed[..10]).is_err(), "truncated");
    }

    #[test]
    fn nonces_differ() {
        let key = Key::generate();
        assert_ne!(
            seal(&key, b"", b"x").unwrap(),
            seal(&key, b"", b"x").unwrap()
        );
    }
}
