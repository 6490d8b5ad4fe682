//! Reading services from JSON or YAML: serde fills lenient raw shapes, then a conversion turns
//! each shape problem into a message that names the field and the fix.
//!
//! Serde's own enum errors ("unknown variant", "missing field") say neither where the problem
//! is nor what to write instead, so auth types are read as plain strings and checked here.
//! Unknown fields are still refused by serde, which reports where they are. The joined host
//! form (`api.example.com:8443/v1/*`) is split here, and hosts and paths are canonicalised.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};

use super::validate::{missing_auth_type, needs, normalize_path, unknown_auth_type};
use super::{Auth, DEFAULT_API_KEY_HEADER, Service, Substitution, Surface};

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a service: a mapping with host and auth"
)]
pub(crate) struct RawService {
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    auth: Option<RawAuth>,
    substitutions: Option<Vec<RawSubstitution>>,
    scrub_responses: Option<bool>,
}

/// Every field of every auth type; [`RawAuth::into_auth`] checks which belong to the type.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an auth mapping such as {type: bearer, token: API_TOKEN}"
)]
pub(crate) struct RawAuth {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(alias = "token_key")]
    token: Option<String>,
    #[serde(alias = "username_key")]
    username: Option<String>,
    #[serde(alias = "password_key")]
    password: Option<String>,
    #[serde(alias = "api_key_key")]
    key: Option<String>,
    header: Option<String>,
    prefix: Option<String>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a substitution: a mapping with placeholder, key and optionally in"
)]
pub(crate) struct RawSubstitution {
    placeholder: Option<String>,
    key: Option<String>,
    #[serde(rename = "in")]
    surfaces: Option<SurfaceList>,
}

/// `in:` takes a list of surfaces, or a single one for convenience.
struct SurfaceList(Vec<Surface>);

impl<'de> Deserialize<'de> for SurfaceList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = SurfaceList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a surface (header, path, query, body, ws) or a list of them")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<SurfaceList, E> {
                Surface::deserialize(value.into_deserializer()).map(|s| SurfaceList(vec![s]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SurfaceList, A::Error> {
                let mut surfaces = Vec::new();
                while let Some(surface) = seq.next_element()? {
                    surfaces.push(surface);
                }
                Ok(SurfaceList(surfaces))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// `parent.field`, or `field` at the top level.
fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.into()
    } else {
        format!("{parent}.{field}")
    }
}

impl RawService {
    /// Converts into a canonical [`Service`]. `at` is the service's position
    /// (`services[1]`), or empty when it stands alone.
    pub(crate) fn into_service(self, at: &str) -> Result<Service, String> {
        let Some(raw_host) = self.host else {
            return Err(format!(
                "{}: missing; name the upstream host, e.g. host: api.example.com",
                join(at, "host")
            ));
        };
        let Some(auth) = self.auth else {
            return Err(format!(
                "{}: missing; say how to authenticate, e.g. auth: {{type: bearer, token: API_TOKEN}}, or auth: {{type: passthrough}} for no credential",
                join(at, "auth")
            ));
        };
        let (host, inline_port, inline_path) =
            split_joined(&raw_host).map_err(|e| format!("{}: {e}", join(at, "host")))?;
        let port = merge(inline_port, self.port, &raw_host, || join(at, "port"))?;
        let path = merge(inline_path, self.path, &raw_host, || join(at, "path"))?;
        let substitutions = self
            .substitutions
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(j, raw)| raw.into_substitution(&join(at, &format!("substitutions[{j}]"))))
            .collect::<Result<_, _>>()?;
        let mut service = Service {
            host,
            port,
            path,
            name: self.name,
            description: self.description,
            enabled: self.enabled.unwrap_or(true),
            auth: auth.into_auth(&join(at, "auth"))?,
            substitutions,
            scrub_responses: self.scrub_responses.unwrap_or(true),
        };
        service.normalize();
        Ok(service)
    }
}

/// A port or path may be given inline in `host` or as its own field, not both.
fn merge<T>(
    inline: Option<T>,
    field: Option<T>,
    raw_host: &str,
    at: impl Fn() -> String,
) -> Result<Option<T>, String> {
    match (inline, field) {
        (Some(_), Some(_)) => Err(format!(
            "{}: given both inline in host ({raw_host:?}) and as its own field; keep one",
            at()
        )),
        (inline, field) => Ok(inline.or(field)),
    }
}

type Joined = (String, Option<u16>, Option<String>);

/// Splits `host[:port][/path]`. Forms validation will refuse anyway (a scheme, IPv6) are
/// returned whole so the host check can explain them.
fn split_joined(raw: &str) -> Result<Joined, String> {
    if raw.contains("://") || raw.starts_with('[') || raw.matches(':').count() > 1 {
        return Ok((raw.into(), None, None));
    }
    let (authority, path) = match raw.find('/') {
        Some(slash) => (&raw[..slash], Some(normalize_path(&raw[slash..]))),
        None => (raw, None),
    };
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| {
                format!("{raw:?} has an invalid port {port:?}; use a number from 1 to 65535")
            })?;
            (host, Some(port))
        }
        None => (authority, None),
    };
    Ok((host.into(), port, path))
}

const AUTH_FIELDS: [&str; 7] = [
    "token", "username", "password", "key", "header", "prefix", "headers",
];

impl RawAuth {
    pub(crate) fn into_auth(self, at: &str) -> Result<Auth, String> {
        let Some(kind) = self.kind.as_deref() else {
            return Err(format!("{}: {}", join(at, "type"), missing_auth_type()));
        };
        let allowed: &[&str] = match kind {
            "bearer" => &["token"],
            "basic" => &["username", "password"],
            "api-key" => &["key", "header", "prefix"],
            "custom" => &["headers"],
            "passthrough" => &[],
            other => {
                return Err(format!(
                    "{}: {}",
                    join(at, "type"),
                    unknown_auth_type(other)
                ));
            }
        };
        let present = [
            self.token.is_some(),
            self.username.is_some(),
            self.password.is_some(),
            self.key.is_some(),
            self.header.is_some(),
            self.prefix.is_some(),
            self.headers.is_some(),
        ];
        for (field, present) in AUTH_FIELDS.iter().zip(present) {
            if present && !allowed.contains(field) {
                let takes = if allowed.is_empty() {
                    "no other fields".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(format!(
                    "{}: {kind} auth has no {field:?} field (it takes {takes})",
                    join(at, field)
                ));
            }
        }
        fn required<T>(value: Option<T>, at: &str, kind: &str, field: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("{at}: {}", needs(kind, field)))
        }
        Ok(match kind {
            "bearer" => Auth::Bearer {
                token: required(self.token, at, kind, "token")?,
            },
            "basic" => Auth::Basic {
                username: required(self.username, at, kind, "username")?,
                password: required(self.password, at, kind, "password")?,
            },
            "api-key" => Auth::ApiKey {
                key: required(self.key, at, kind, "key")?,
                header: self.header.unwrap_or_else(|| DEFAULT_API_KEY_HEADER.into()),
                prefix: self.prefix,
            },
            "custom" => Auth::Custom {
                headers: required(self.headers, at, kind, "headers")?,
            },
            _ => Auth::Passthrough,
        })
    }
}

impl RawSubstitution {
    fn into_substitution(self, at: &str) -> Result<Substitution, String> {
        let placeholder = self.placeholder.ok_or_else(|| {
            format!(
                "{}: missing; choose a distinctive marker the agent writes instead of the credential, e.g. \"__stripe_key__\"",
                join(at, "placeholder")
            )
        })?;
        let key = self.key.ok_or_else(|| {
            format!(
                "{}: missing; name the credential key whose value replaces the placeholder",
                join(at, "key")
            )
        })?;
        let surfaces = match self.surfaces {
            Some(SurfaceList(surfaces)) => surfaces,
            None => Surface::DEFAULT.to_vec(),
        };
        Ok(Substitution {
            placeholder,
            key,
            surfaces,
        })
    }
}

impl TryFrom<RawService> for Service {
    type Error = String;
    fn try_from(raw: RawService) -> Result<Self, String> {
        raw.into_service("")
    }
}

impl TryFrom<RawAuth> for Auth {
    type Error = String;
    fn try_from(raw: RawAuth) -> Result<Self, String> {
        raw.into_auth("auth")
    }
}

impl TryFrom<RawSubstitution> for Substitution {
    type Error = String;
    fn try_from(raw: RawSubstitution) -> Result<Self, String> {
        raw.into_substitution("substitution")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn from_json(value: serde_json::Value) -> Result<Service, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn json_round_trip_with_defaults() {
        let service = from_json(json!({
            "host": "API.Example.com",
            "auth": {"type": "api-key", "key": "K"}
        }))
        .unwrap();
        assert_eq!(service.host, "api.example.com");
        assert!(service.enabled);
        assert_eq!(
            service.auth,
            Auth::ApiKey {
                key: "K".into(),
                header: "Authorization".into(),
                prefix: None
            }
        );
        let value = serde_json::to_value(&service).unwrap();
        assert_eq!(
            value,
            json!({
                "host": "api.example.com",
                "enabled": true,
                "auth": {"type": "api-key", "key": "K", "header": "Authorization"}
            })
        );
        assert_eq!(from_json(value).unwrap(), service);
    }

    #[test]
    fn aliases_are_accepted() {
        let bearer =
            from_json(json!({"host": "a.io", "auth": {"type": "bearer", "token_key": "T"}}));
        assert_eq!(bearer.unwrap().auth, Auth::Bearer { token: "T".into() });
        let basic = from_json(json!({"host": "a.io", "auth": {
            "type": "basic", "username_key": "U", "password_key": "P"}}));
        assert_eq!(
            basic.unwrap().auth,
            Auth::Basic {
                username: "U".into(),
                password: "P".into()
            }
        );
        let api_key = from_json(json!({"host": "a.io", "auth": {
            "type": "api-key", "api_key_key": "K", "header": "x-api-key", "prefix": "Key "}}));
        assert_eq!(
            api_key.unwrap().auth,
            Auth::ApiKey {
                key: "K".into(),
                header: "x-api-key".into(),
                prefix: Some("Key ".into())
            }
        );
    }

    #[test]
    fn joined_host_form_is_split() {
        let service = from_json(
            json!({"host": "api.example.com:8443/v1/*", "auth": {"type": "passthrough"}}),
        )
        .unwrap();
        assert_eq!(service.host, "api.example.com");
        assert_eq!(service.port, Some(8443));
        assert_eq!(service.path.as_deref(), Some("/v1"));
        assert_eq!(service.matcher(), "api.example.com:8443/v1");
        let value = serde_json::to_value(&service).unwrap();
        assert_eq!(value["host"], "api.example.com");
        assert_eq!(value["port"], 8443);
        assert_eq!(value["path"], "/v1");

        let path_only =
            from_json(json!({"host": "api.example.com/v2", "auth": {"type": "passthrough"}}))
                .unwrap();
        assert_eq!(
            (path_only.port, path_only.path.as_deref()),
            (None, Some("/v2"))
        );
        let port_only =
            from_json(json!({"host": "10.0.0.1:80", "auth": {"type": "passthrough"}})).unwrap();
        assert_eq!(
            (port_only.host.as_str(), port_only.port),
            ("10.0.0.1", Some(80))
        );
    }

    #[test]
    fn joined_host_conflicts_and_bad_ports() {
        let err =
            from_json(json!({"host": "a.io:8443", "port": 8443, "auth": {"type": "passthrough"}}))
                .unwrap_err();
        assert!(
            err.starts_with("port: given both inline in host (\"a.io:8443\")"),
            "{err}"
        );
        let err =
            from_json(json!({"host": "a.io/v1", "path": "/v1", "auth": {"type": "passthrough"}}))
                .unwrap_err();
        assert!(err.starts_with("path: given both"), "{err}");
        let err =
            from_json(json!({"host": "a.io:http", "auth": {"type": "passthrough"}})).unwrap_err();
        assert!(err.contains("invalid port \"http\""), "{err}");
        let err =
            from_json(json!({"host": "a.io:70000", "auth": {"type": "passthrough"}})).unwrap_err();
        assert!(err.contains("invalid port \"70000\""), "{err}");
        // Left whole for the host check to explain.
        assert_eq!(
            split_joined("https://a.io/x").unwrap(),
            ("https://a.io/x".into(), None, None)
        );
    }

    #[test]
    fn auth_shape_errors_are_explained() {
        let cases = [
            (
                json!({"type": "oauth"}),
                "auth.type: unknown auth type \"oauth\" (expected bearer, basic, api-key, custom, passthrough)",
            ),
            (json!({"token": "T"}), "auth.type: missing (expected bearer"),
            (
                json!({"type": "bearer"}),
                "auth: bearer auth needs \"token\", the credential key that holds the token",
            ),
            (
                json!({"type": "basic", "username": "U"}),
                "auth: basic auth needs \"password\"",
            ),
            (
                json!({"type": "api-key"}),
                "auth: api-key auth needs \"key\"",
            ),
            (
                json!({"type": "custom"}),
                "auth: custom auth needs \"headers\"",
            ),
            (
                json!({"type": "bearer", "token": "T", "header": "X"}),
                "auth.header: bearer auth has no \"header\" field (it takes token)",
            ),
            (
                json!({"type": "passthrough", "token": "T"}),
                "it takes no other fields",
            ),
            (
                json!({"type": "bearer", "tokne": "T"}),
                "unknown field `tokne`",
            ),
        ];
        for (auth, expected) in cases {
            let err = from_json(json!({"host": "a.io", "auth": auth})).unwrap_err();
            assert!(
                err.starts_with(expected) || err.contains(expected),
                "{expected}: {err}"
            );
        }
    }

    #[test]
    fn missing_host_or_auth_and_unknown_fields() {
        let err = from_json(json!({"auth": {"type": "passthrough"}})).unwrap_err();
        assert!(err.starts_with("host: missing"), "{err}");
        let err = from_json(json!({"host": "a.io"})).unwrap_err();
        assert!(err.starts_with("auth: missing"), "{err}");
        let err = from_json(json!({"host": "a.io", "auth": {"type": "passthrough"}, "hots": 1}))
            .unwrap_err();
        assert!(err.contains("unknown field `hots`"), "{err}");
    }

    #[test]
    fn substitutions_default_to_the_path_and_the_query() {
        let service = from_json(json!({"host": "a.io", "auth": {"type": "passthrough"},
        "substitutions": [
            {"placeholder": "__token__x", "key": "K"},
            {"placeholder": "__other__x", "key": "K", "in": "path"},
            {"placeholder": "__third__x", "key": "K", "in": ["query", "query", "body"]}
        ]}))
        .unwrap();
        assert_eq!(service.substitutions[0].surfaces, Surface::DEFAULT);
        assert_eq!(service.substitutions[1].surfaces, [Surface::Path]);
        assert_eq!(
            service.substitutions[2].surfaces,
            [Surface::Query, Surface::Body]
        );
        let value = serde_json::to_value(&service.substitutions[1]).unwrap();
        assert_eq!(
            value,
            json!({"placeholder": "__other__x", "key": "K", "in": ["path"]})
        );

        let err = from_json(json!({"host": "a.io", "auth": {"type": "passthrough"},
            "substitutions": [{"key": "K"}]}))
        .unwrap_err();
        assert!(
            err.starts_with("substitutions[0].placeholder: missing"),
            "{err}"
        );
        let err = from_json(json!({"host": "a.io", "auth": {"type": "passthrough"},
            "substitutions": [{"placeholder": "__token__x", "key": "K", "in": ["cookie"]}]}))
        .unwrap_err();
        assert!(err.contains("unknown variant `cookie`"), "{err}");
    }
}
