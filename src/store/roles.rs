//! Instance roles (owner, member) and vault roles (proxy < member < admin).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceRole {
    Owner,
    Member,
}

/// Vault roles, ordered by privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultRole {
    Proxy,
    Member,
    Admin,
}

impl InstanceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }
}

impl VaultRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for InstanceRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            other => Err(format!(
                "unknown instance role \"{other}\" (expected owner or member)"
            )),
        }
    }
}

impl FromStr for VaultRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "proxy" => Ok(Self::Proxy),
            "member" => Ok(Self::Member),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown vault role \"{other}\" (expected proxy, member or admin)"
            )),
        }
    }
}

impl fmt::Display for InstanceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for VaultRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a role column; the schema's CHECK constraints make other values impossible.
pub(crate) fn column<T: FromStr<Err = String>>(value: String) -> super::db::Result<T> {
    value
        .parse()
        .map_err(|e: String| super::db::Error::invalid(0, e))
}
