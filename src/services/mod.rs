//! Services: the rules that say which upstream host gets which credential, and how.
//!
//! A vault holds a list of services. Each names a host pattern (optionally a port and a path
//! prefix) and an [`Auth`] method whose fields are credential *keys* (`STRIPE_KEY`), never
//! credential values: the broker looks the value up in the vault when it injects it. This
//! module owns the model, its JSON/YAML form, validation, request matching and the built-in
//! catalog; it does no I/O.
//!
//! Security stance: a service is a grant, so reading is strict. Unknown fields are errors
//! (a typo must not silently drop a restriction), host patterns cannot be broader than one
//! registrable domain, headers that control framing or the broker itself cannot be set, and
//! literal header text cannot carry control characters. Error messages quote what the user
//! wrote, except for strings that look like a pasted credential value.

mod catalog;
mod de;
mod matching;
mod template;
mod validate;
mod yaml;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use catalog::{Template, template, templates};
pub use matching::{select, select_index};
pub use template::{Segment, parse_template};
pub use validate::{
    normalize_and_validate, validate, validate_credential_key, wildcard_on_shared_suffix,
};
pub use yaml::{parse_yaml, to_yaml};

/// One rule: requests to `host[:port][path]` get `auth` injected.
///
/// Field order is the serialised order, so YAML entries read `- host: …` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "de::RawService")]
pub struct Service {
    /// Lower-case exact host (`api.stripe.com`), IPv4 address, or wildcard `*.example.com`.
    pub host: String,
    /// `None` matches any port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Path prefix starting with `/`, matched on segment boundaries; `None` matches any path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Optional display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled service still matches; the broker refuses its traffic (403 service_disabled).
    pub enabled: bool,
    pub auth: Auth,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub substitutions: Vec<Substitution>,
    /// Replace this service's credential values in responses with a marker (default true),
    /// so an upstream that reflects a request cannot hand the secret to the agent.
    #[serde(skip_serializing_if = "is_true")]
    pub scrub_responses: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// How the credential is attached. Every `String` field except `header` and `prefix` names a
/// credential key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", try_from = "de::RawAuth")]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(<username>:<password>)`.
    Basic { username: String, password: String },
    /// `<header>: <prefix><key>`.
    ApiKey {
        key: String,
        header: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// Header name → template such as `Token {{ API_KEY }}`.
    Custom { headers: BTreeMap<String, String> },
    /// No credential: the host is allow-listed and the client's own headers are forwarded.
    Passthrough,
}

/// Replace `placeholder` with the value of credential `key` wherever it appears in the chosen
/// parts of the request (for APIs that take the credential in the path or the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "de::RawSubstitution")]
pub struct Substitution {
    pub placeholder: String,
    pub key: String,
    #[serde(rename = "in")]
    pub surfaces: Vec<Surface>,
}

/// A part of the request a substitution applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    Header,
    Path,
    Query,
    Body,
    /// Client-to-server text messages of a WebSocket (opt-in only).
    Ws,
}

impl Surface {
    /// Every surface of an HTTP request (`ws` is opt-in and not among them).
    pub const ALL: [Surface; 4] = [Self::Header, Self::Path, Self::Query, Self::Body];
    /// Where a substitution applies when its `in` is omitted: where an API's own design puts
    /// a credential in a URL (Telegram's `/bot<token>/`, a `?key=`). Headers and bodies must
    /// be listed — there the agent could place the value anywhere, a message it stores and
    /// reads back included.
    pub const DEFAULT: [Surface; 2] = [Self::Path, Self::Query];
}

impl Auth {
    /// The `type` name used in YAML and JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bearer { .. } => "bearer",
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api-key",
            Self::Custom { .. } => "custom",
            Self::Passthrough => "passthrough",
        }
    }
}

/// The header `api-key` auth uses when none is given.
pub const DEFAULT_API_KEY_HEADER: &str = "Authorization";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The text is not a readable services document: YAML syntax, a wrong type, an unknown
    /// field. Line and column are 1-based; 0 means unknown.
    #[error("{}{message}", at(*.line, *.column))]
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
    /// A service breaks a rule. The message starts with the position (`services[1].auth`);
    /// `index` is that service, and `line` its line in a YAML document (0 when unknown).
    #[error("{}{message}", at(*.line, 0))]
    Invalid {
        index: Option<usize>,
        line: u64,
        message: String,
    },
    /// Serialising failed (a bug rather than a user error).
    #[error("cannot write services as YAML: {0}")]
    Encode(String),
}

impl ServiceError {
    pub(crate) fn invalid(index: Option<usize>, message: impl Into<String>) -> Self {
        Self::Invalid {
            index,
            line: 0,
            message: message.into(),
        }
    }
}

fn at(line: u64, column: u64) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (line, 0) => format!("line {line}: "),
        (line, column) => format!("line {line}, column {column}: "),
    }
}
