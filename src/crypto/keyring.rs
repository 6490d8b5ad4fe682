//! The master-key record: how the DEK is kept at rest.
//!
//! With a master password the DEK is wrapped (AES-256-GCM) under a KEK derived by Argon2id;
//! the salt and parameters are stored beside it. Without one (passwordless mode) the DEK is
//! stored as is and protected only by file permissions. Changing the password re-wraps the
//! DEK; no credential is re-encrypted. A check value sealed under the DEK lets a process that
//! receives a DEK (the detached server) prove it is the right one.

use super::{CryptoError, KdfParams, Key, SecretString, derive_key, open, random_bytes, seal};

const WRAP_AAD: &[u8] = b"agent-vault/master-key/dek";
const CHECK_AAD: &[u8] = b"agent-vault/master-key/check";
const CHECK_PLAINTEXT: &[u8] = b"agent-vault";

/// How the DEK is stored.
#[derive(Debug, Clone)]
pub enum Protection {
    /// Passwordless mode: the DEK itself.
    Plain(Key),
    /// Wrapped under an Argon2id-derived KEK.
    Wrapped {
        salt: [u8; 16],
        params: KdfParams,
        wrapped_dek: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub protection: Protection,
    pub check: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("this instance is protected by a master password, and none was given")]
    PasswordRequired,
    #[error("wrong master password")]
    WrongPassword,
    #[error("the stored master key is damaged: {0}")]
    Damaged(CryptoError),
}

impl KeyRecord {
    /// First start: a fresh random DEK, protected by `password` when given.
    pub fn create(
        password: Option<&SecretString>,
        params: KdfParams,
    ) -> Result<(Self, Key), CryptoError> {
        let dek = Key::generate();
        let record = Self::protect(&dek, password, params)?;
        Ok((record, dek))
    }

    /// A record for an existing DEK (used by `master-password set | change | remove`).
    pub fn protect(
        dek: &Key,
        password: Option<&SecretString>,
        params: KdfParams,
    ) -> Result<Self, CryptoError> {
        let protection = match password {
            None => Protection::Plain(dek.clone()),
            Some(password) => {
                let salt: [u8; 16] = random_bytes();
                let kek = derive_key(password.expose().as_bytes(), &salt, params)?;
                Protection::Wrapped {
                    salt,
                    params,
                    wrapped_dek: seal(&kek, WRAP_AAD, dek.as_bytes())?,
                }
            }
        };
        Ok(Self {
            protection,
            check: seal(dek, CHECK_AAD, CHECK_PLAINTEXT)?,
        })
    }

    pub fn has_password(&self) -> bool {
        matches!(self.protection, Protection::Wrapped { .. })
    }

    /// Recovers the DEK. In passwordless mode a given password is not needed (the caller
    /// decides whether to warn about it).
    pub fn unlock(&self, password: Option<&SecretString>) -> Result<Key, UnlockError> {
        let dek = match &self.protection {
            Protection::Plain(dek) => dek.clone(),
            Protection::Wrapped {
                salt,
                params,
                wrapped_dek,
            } => {
                let password = password.ok_or(UnlockError::PasswordRequired)?;
                let kek = derive_key(password.expose().as_bytes(), salt, *params)
                    .map_err(UnlockError::Damaged)?;
                let bytes =
                    open(&kek, WRAP_AAD, wrapped_dek).map_err(|_| UnlockError::WrongPassword)?;
                Key::from_slice(&bytes).ok_or(UnlockError::Damaged(CryptoError::Open))?
            }
        };
        if !self.verifies(&dek) {
            return Err(UnlockError::Damaged(CryptoError::Open));
        }
        Ok(dek)
    }

    /// Whether `dek` is the key this record protects.
    pub fn verifies(&self, dek: &Key) -> bool {
        open(dek, CHECK_AAD, &self.check).is_ok_and(|p| p.as_slice() == CHECK_PLAINTEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn password_mode_unlocks_only_with_the_password() {
        let pw = SecretString::from("master-1");
        let (record, dek) = KeyRecord::create(Some(&pw), FAST).unwrap();
        assert!(record.has_password());
        assert_eq!(record.unlock(Some(&pw)).unwrap().as_bytes(), dek.as_bytes());
        assert!(matches!(
            record.unlock(Some(&SecretString::from("nope"))),
            Err(UnlockError::WrongPassword)
        ));
        assert!(matches!(
            record.unlock(None),
            Err(UnlockError::PasswordRequired)
        ));
    }

    #[test]
    fn rewrapping_keeps_the_same_dek() {
        let old = SecretString::from("old");
        let new = SecretString::from("new");
        let (record, dek) = KeyRecord::create(Some(&old), FAST).unwrap();
        let unlocked = record.unlock(Some(&old)).unwrap();
        let changed = KeyRecord::protect(&unlocked, Some(&new), FAST).unwrap();
        assert_eq!(
            changed.unlock(Some(&new)).unwrap().as_bytes(),
            dek.as_bytes()
        );
        assert!(changed.unlock(Some(&old)).is_err());
        let removed = KeyRecord::protect(&unlocked, None, FAST).unwrap();
        assert!(!removed.has_password());
        assert_eq!(removed.unlock(None).unwrap().as_bytes(), dek.as_bytes());
    }

    #[test]
    fn check_value_identifies_the_dek() {
        let (record, dek) = KeyRecord::create(None, FAST).unwrap();
        assert!(record.verifies(&dek));
        assert!(!record.verifies(&Key::generate()));
    }
}
