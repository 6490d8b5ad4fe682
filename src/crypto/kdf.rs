//! Argon2id: password hashes (PHC strings carrying their own parameters) and the KEK that
//! wraps the DEK under the master password.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use super::{CryptoError, Key, random_bytes};

/// Argon2id cost parameters, stored beside every hash and wrapped key they produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    /// Cheap parameters, only reachable from debug builds (see [`Self::for_new_secrets`]).
    #[cfg(debug_assertions)]
    const TEST_ONLY: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Parameters for a hash or key made now. Debug builds honour
    /// `AGENT_VAULT_INSECURE_TEST_KDF=1` so the test suite can create many accounts quickly;
    /// release builds always use [`Self::RECOMMENDED`]. Existing hashes keep the parameters
    /// they were made with.
    pub fn for_new_secrets() -> Self {
        #[cfg(debug_assertions)]
        if std::env::var_os("AGENT_VAULT_INSECURE_TEST_KDF").is_some_and(|v| v == "1") {
            return Self::TEST_ONLY;
        }
        Self::RECOMMENDED
    }

    fn hasher(&self) -> Result<Argon2<'static>, CryptoError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

// Never ship weaker defaults than RFC 9106's second recommendation.
const _: () = assert!(
    KdfParams::RECOMMENDED.memory_kib >= 65536
        && KdfParams::RECOMMENDED.iterations >= 3
        && KdfParams::RECOMMENDED.parallelism >= 4
);

/// Derives a 256-bit key from a password (the KEK).
pub fn derive_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Key, CryptoError> {
    let mut out = [0u8; 32];
    params
        .hasher()?
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let key = Key::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}

/// Hashes a login password into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(password: &str, params: KdfParams) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    params
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Kdf(e.to_string()))
}

/// Checks a password against a PHC string, using the parameters stored in it.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Spends the time of one password check, so an unknown email answers as slowly as a known
/// one and response timing does not reveal which accounts exist.
pub fn waste_password_check(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password("agent-vault-timing-equaliser", KdfParams::for_new_secrets())
            .unwrap_or_default()
    });
    let _ = verify_password(password, dummy);
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
    fn new_secrets_use_the_recommended_parameters() {
        if std::env::var_os("AGENT_VAULT_INSECURE_TEST_KDF").is_none() {
            assert_eq!(KdfParams::for_new_secrets(), KdfParams::RECOMMENDED);
        }
    }

    #[test]
    fn password_hash_carries_its_parameters() {
        let phc = hash_password("correct horse", FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn derived_keys_depend_on_password_and_salt() {
        let a = derive_key(b"pw", b"0123456789abcdef", FAST).unwrap();
        let b = derive_key(b"pw", b"0123456789abcdef", FAST).unwrap();
        let c = derive_key(b"pw2", b"0123456789abcdef", FAST).unwrap();
        let d = derive_key(b"pw", b"fedcba9876543210", FAST).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_ne!(a.as_bytes(), d.as_bytes());
    }
}
