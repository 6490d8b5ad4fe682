//! Deciding what to do with one request: which service matches, which credentials it needs,
//! and the exact headers and substitutions to apply. Pure: works on an in-memory snapshot.

use base64::Engine;
use http::{HeaderName, HeaderValue};
use serde_json::json;

use super::{BrokerError, UnmatchedPolicy, VaultSnapshot};
use crate::crypto::SecretString;
use std::collections::HashMap;
use std::sync::Arc;

use crate::services::{Auth, Segment, Service, Surface, parse_template, select_index};

/// A substitution with its credential value, ready to apply.
#[derive(Clone)]
pub struct ResolvedSubstitution {
    pub placeholder: String,
    pub value: SecretString,
    pub surfaces: Vec<Surface>,
}

/// What the broker will do to a request for one service. Built once per service when a
/// vault's snapshot is loaded, so a request does no formatting, lookup or copying of
/// credentials: it takes a reference-counted plan.
#[derive(Default)]
pub struct Plan {
    /// Headers to set, replacing whatever the client sent under the same name.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    pub substitutions: Vec<ResolvedSubstitution>,
    /// Replaces the service's credential values in the response, unless it opted out.
    pub scrubber: Option<Arc<super::scrub::Scrubber>>,
    /// The request carries vault credentials (injected or substituted).
    pub uses_credentials: bool,
}

impl Plan {
    pub fn wants(&self, surface: Surface) -> bool {
        self.substitutions
            .iter()
            .any(|s| s.surfaces.contains(&surface))
    }
}

/// A service's plan as prepared with its snapshot: refusals that do not depend on the
/// request are decided here too.
pub struct Prepared {
    /// The service (its `host[:port][path]`) and the credential keys it needs: what the
    /// request log records, also when the plan is refused (what an operator must fix).
    pub service: Arc<str>,
    pub credential_keys: Arc<[String]>,
    credentialed: bool,
    plan: Result<Arc<Plan>, BrokerError>,
}

fn sensitive(value: &str, key: &str) -> Result<HeaderValue, BrokerError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        BrokerError::credential(
            "credential_invalid",
            format!("credential {key} contains characters that cannot go in an HTTP header (such as a line break)"),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn header_name(name: &str) -> Result<HeaderName, BrokerError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        BrokerError::internal(format!("the service names an invalid header \"{name}\""))
    })
}

/// Prepares `service`'s plan in vault `vault_name` with the vault's `credentials`.
pub fn prepare(
    vault_name: &str,
    service: &Service,
    credentials: &HashMap<String, SecretString>,
    scrubber: Option<Arc<super::scrub::Scrubber>>,
) -> Prepared {
    let keys: Vec<String> = service
        .credential_keys()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let credentialed = !keys.is_empty();
    let plan = (|| -> Result<Arc<Plan>, BrokerError> {
        if !service.enabled {
            return Err(BrokerError::forbidden(
                "service_disabled",
                format!(
                    "the service {} of vault \"{vault_name}\" is disabled; a vault admin can enable it with `agent-vault vault service enable {}`",
                    service.matcher(),
                    service.matcher()
                ),
            ));
        }
        let value = |key: &str| {
            credentials.get(key).ok_or_else(|| {
                BrokerError::credential(
                    "credential_not_found",
                    format!(
                        "vault \"{vault_name}\" has no credential {key}, which the service {} needs; set it with `agent-vault vault credential set {key}`",
                        service.matcher()
                    ),
                )
            })
        };
        let set_headers = auth_headers(service, &value)?;
        let substitutions = service
            .substitutions
            .iter()
            .map(|s| {
                Ok(ResolvedSubstitution {
                    placeholder: s.placeholder.clone(),
                    value: value(&s.key)?.clone(),
                    surfaces: s.surfaces.clone(),
                })
            })
            .collect::<Result<_, BrokerError>>()?;
        Ok(Arc::new(Plan {
            uses_credentials: credentialed,
            set_headers,
            substitutions,
            scrubber,
        }))
    })();
    Prepared {
        service: service.matcher().into(),
        credential_keys: keys.into(),
        credentialed,
        plan,
    }
}

/// Decides how to handle a request to `host:port` + `path` in the snapshot's vault. The
/// matched service comes back beside the decision, refused or not, for the request log.
pub fn plan<'a>(
    snapshot: &'a VaultSnapshot,
    host: &str,
    port: u16,
    path: &str,
    https: bool,
) -> (Option<&'a Prepared>, Result<Arc<Plan>, BrokerError>) {
    let selected = select_index(&snapshot.services, host, port, path);
    let prepared = selected.and_then(|i| snapshot.plans.get(i));
    (prepared, decide(snapshot, prepared, host, https))
}

fn decide(
    snapshot: &VaultSnapshot,
    prepared: Option<&Prepared>,
    host: &str,
    https: bool,
) -> Result<Arc<Plan>, BrokerError> {
    let Some(prepared) = prepared else {
        return match snapshot.policy {
            UnmatchedPolicy::Forward => Ok(snapshot.unmatched.clone()),
            UnmatchedPolicy::Deny => Err(BrokerError::forbidden(
                "forbidden",
                format!(
                    "{host} is not a service of vault \"{}\", which refuses other hosts",
                    snapshot.vault_name
                ),
            )
            .with_hint(json!({
                "proposal": format!(
                    "ask for access: agent-vault vault proposal create --host {host} --auth-type <type> -m \"why\""
                ),
            }))),
        };
    };
    // A disabled service is refused first, whatever the scheme.
    if let Err(err) = &prepared.plan
        && err.code == "service_disabled"
    {
        return Err(err.clone());
    }
    if prepared.credentialed && !https {
        return Err(BrokerError::forbidden(
            "insecure_upstream",
            format!("refusing to send a credential to {host} over plain HTTP; use https://"),
        ));
    }
    prepared.plan.clone()
}

fn auth_headers<'a>(
    service: &Service,
    value: &impl Fn(&str) -> Result<&'a SecretString, BrokerError>,
) -> Result<Vec<(HeaderName, HeaderValue)>, BrokerError> {
    let authorization = http::header::AUTHORIZATION;
    Ok(match &service.auth {
        Auth::Bearer { token } => {
            let text = SecretString::new(format!("Bearer {}", value(token)?.expose()));
            vec![(authorization, sensitive(text.expose(), token)?)]
        }
        Auth::Basic { username, password } => {
            let pair = SecretString::new(format!(
                "{}:{}",
                value(username)?.expose(),
                value(password)?.expose()
            ));
            let text = SecretString::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.expose())
            ));
            vec![(authorization, sensitive(text.expose(), username)?)]
        }
        Auth::ApiKey {
            key,
            header,
            prefix,
        } => {
            let text = SecretString::new(format!(
                "{}{}",
                prefix.as_deref().unwrap_or(""),
                value(key)?.expose()
            ));
            vec![(header_name(header)?, sensitive(text.expose(), key)?)]
        }
        Auth::Custom { headers } => headers
            .iter()
            .map(|(name, template)| {
                let mut text = String::new();
                let mut keys = Vec::new();
                for segment in parse_template(template).map_err(BrokerError::internal)? {
                    match segment {
                        Segment::Literal(literal) => text.push_str(literal),
                        Segment::Reference(key) => {
                            text.push_str(value(key)?.expose());
                            keys.push(key);
                        }
                    }
                }
                let text = SecretString::new(text);
                Ok((
                    header_name(name)?,
                    sensitive(text.expose(), &keys.join(", "))?,
                ))
            })
            .collect::<Result<_, BrokerError>>()?,
        Auth::Passthrough => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn snapshot(yaml: &str, policy: UnmatchedPolicy) -> VaultSnapshot {
        let credentials = [
            ("TOKEN", "tok-1"),
            ("USER", "u"),
            ("PASS", "p"),
            ("KEY", "k-9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretString::from(v)))
        .collect::<HashMap<_, _>>();
        VaultSnapshot::new(
            "v".into(),
            "default".into(),
            crate::services::parse_yaml(yaml).unwrap(),
            credentials,
            policy,
        )
    }

    const SERVICES: &str = r#"
services:
  - host: "*.example.com"
    auth: {type: bearer, token: TOKEN}
  - host: api.example.com
    auth: {type: basic, username: USER, password: PASS}
  - host: keyed.example.org
    auth: {type: api-key, key: KEY, header: x-api-key, prefix: "Key "}
  - host: custom.example.org
    auth: {type: custom, headers: {X-Auth: "id={{ USER }};k={{ KEY }}"}}
  - host: off.example.org
    enabled: false
    auth: {type: passthrough}
  - host: missing.example.org
    auth: {type: bearer, token: NOT_SET}
"#;

    fn header(plan: &Plan, name: &str) -> String {
        let (_, value) = plan.set_headers.iter().find(|(n, _)| n == name).unwrap();
        value.to_str().unwrap().to_owned()
    }

    #[test]
    fn auth_types_become_headers_and_exact_beats_wildcard() {
        let s = snapshot(SERVICES, UnmatchedPolicy::Forward);
        let exact = plan(&s, "api.example.com", 443, "/", true).1.unwrap();
        assert_eq!(header(&exact, "authorization"), "Basic dTpw");
        let wild = plan(&s, "other.example.com", 443, "/", true).1.unwrap();
        assert_eq!(header(&wild, "authorization"), "Bearer tok-1");
        let (matched, _) = plan(&s, "other.example.com", 443, "/", true);
        assert_eq!(&*matched.unwrap().credential_keys, ["TOKEN"]);
        let keyed = plan(&s, "KEYED.example.org", 443, "/", true).1.unwrap();
        assert_eq!(header(&keyed, "x-api-key"), "Key k-9");
        let custom = plan(&s, "custom.example.org", 443, "/", true).1.unwrap();
        assert_eq!(header(&custom, "x-auth"), "id=u;k=k-9");
        assert!(custom.set_headers.iter().all(|(_, v)| v.is_sensitive()));
    }

    #[test]
    fn refusals() {
        let s = snapshot(SERVICES, UnmatchedPolicy::Forward);
        assert_eq!(
            plan(&s, "off.example.org", 443, "/", true)
                .1
                .err()
                .unwrap()
                .code,
            "service_disabled"
        );
        let (matched, missing) = plan(&s, "missing.example.org", 443, "/", true);
        let matched = matched.expect("a refused plan still names its service");
        assert_eq!(&*matched.service, "missing.example.org");
        assert!(!matched.credential_keys.is_empty());
        let missing = missing.err().unwrap();
        assert_eq!(
            (missing.status.as_u16(), missing.code),
            (502, "credential_not_found")
        );
        assert_eq!(
            plan(&s, "api.example.com", 80, "/", false)
                .1
                .err()
                .unwrap()
                .code,
            "insecure_upstream"
        );
        let (matched, open) = plan(&s, "elsewhere.net", 443, "/", true);
        assert!(matched.is_none() && open.unwrap().set_headers.is_empty());
        let denying = snapshot(SERVICES, UnmatchedPolicy::Deny);
        let denied = plan(&denying, "elsewhere.net", 443, "/", true)
            .1
            .err()
            .unwrap();
        assert_eq!((denied.status.as_u16(), denied.code), (403, "forbidden"));
        assert!(denied.hint.is_some());
    }
}
