//! Bearer tokens and one-time codes.
//!
//! Tokens are 256 bits from the OS CSPRNG, hex-encoded behind a type prefix (`av_sess_…`) so
//! a leaked token is recognisable. Only their SHA-256 is stored: the entropy makes a slow
//! hash unnecessary, and a database read never yields a usable token.

use sha2::{Digest, Sha256};

use super::{SecretString, random_bytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's login session or a vault-scoped session.
    Session,
    /// An instance-level agent token.
    Agent,
    UserInvite,
    AgentInvite,
    Approval,
    /// The key that renews a leased session (held by `vault run`, never by the agent).
    Lease,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Session => "av_sess_",
            Self::Agent => "av_agt_",
            Self::UserInvite => "av_uinv_",
            Self::AgentInvite => "av_ainv_",
            Self::Approval => "av_appr_",
            Self::Lease => "av_lease_",
        }
    }
}

/// A freshly minted token: the raw value (shown once) and the hash to store.
#[derive(Debug)]
pub struct NewToken {
    pub raw: SecretString,
    pub hash: String,
}

pub fn mint_token(kind: TokenKind) -> NewToken {
    let raw = SecretString::new(format!(
        "{}{}",
        kind.prefix(),
        hex::encode(random_bytes::<32>())
    ));
    let hash = hash_token(raw.expose());
    NewToken { raw, hash }
}

/// SHA-256 of a raw token, hex-encoded: the only form a token is stored in.
pub fn hash_token(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// A uniformly distributed 6-digit code (rejection sampling avoids modulo bias).
pub fn six_digit_code() -> SecretString {
    loop {
        let n = u32::from_le_bytes(random_bytes());
        // 4_294_000_000 is the largest multiple of 1_000_000 below 2^32.
        if n < 4_294_000_000 {
            return SecretString::new(format!("{:06}", n % 1_000_000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = mint_token(TokenKind::Session);
        let b = mint_token(TokenKind::Session);
        assert!(a.raw.expose().starts_with("av_sess_"));
        assert_eq!(a.raw.expose().len(), "av_sess_".len() + 64);
        assert_ne!(a.raw, b.raw);
        assert_eq!(a.hash, hash_token(a.raw.expose()));
        assert!(!a.hash.contains(a.raw.expose()));
    }

    #[test]
    fn codes_have_six_digits() {
        for _ in 0..100 {
            let code = six_digit_code();
            assert_eq!(code.expose().len(), 6);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
