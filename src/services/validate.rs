//! The rules a service list must follow, checked before anything is stored or matched.
//!
//! Every message starts with the position (`services[2].auth.token`) and ends with the fix.
//! Checks run on the canonical form (lower-case host, trimmed path), so a list that was never
//! normalised is judged exactly as it would be after [`Service::normalize`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::template::{Segment, parse_template};
use super::{Auth, Service, ServiceError, Substitution};

/// Longest credential key accepted.
const MAX_KEY_LEN: usize = 128;
/// Shortest substitution placeholder: shorter ones could occur in a request by accident.
const MIN_PLACEHOLDER_LEN: usize = 8;
const MAX_PATH_LEN: usize = 1024;
const MAX_NAME_LEN: usize = 200;
const MAX_DESCRIPTION_LEN: usize = 2000;

/// Headers the broker sets itself, or that change how the message is framed or routed.
/// `X-Vault-*` is refused as a prefix: the broker owns that namespace.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "proxy-authorization",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "x-vault",
];

const AUTH_TYPES: &str = "bearer, basic, api-key, custom, passthrough";

/// Domains under which anyone can get a host of their own (tenants, apps, pages): a wildcard
/// right under one matches hosts other people run. Not the whole public suffix list, the
/// ones API services live under.
const SHARED_SUFFIXES: [&str; 16] = [
    "atlassian.net",
    "amazonaws.com",
    "appspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "fly.dev",
    "github.io",
    "herokuapp.com",
    "netlify.app",
    "ngrok-free.app",
    "ngrok.io",
    "onrender.com",
    "pages.dev",
    "supabase.co",
    "vercel.app",
    "workers.dev",
];

/// The shared suffix a wildcard host sits right under (`*.atlassian.net` → `atlassian.net`):
/// the service would hand its credential to sites anyone can set up there.
pub fn wildcard_on_shared_suffix(host: &str) -> Option<&'static str> {
    let name = host.strip_prefix("*.")?;
    SHARED_SUFFIXES
        .into_iter()
        .find(|suffix| name.eq_ignore_ascii_case(suffix))
}

/// Checks a credential key: `^[A-Z][A-Z0-9_]*$`, at most 128 characters. The error is a
/// sentence without a position, for the caller to prefix.
pub fn validate_credential_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if well_formed && key.len() <= MAX_KEY_LEN {
        return Ok(());
    }
    if key.is_empty() {
        return Err("credential key is empty; use UPPER_SNAKE_CASE such as API_KEY".into());
    }
    if looks_like_secret(key) {
        return Err(
            "this looks like a credential value, not a credential key; store the value with \
             `agent-vault vault credential set KEY=...` and write its KEY here"
                .into(),
        );
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "credential key is longer than {MAX_KEY_LEN} characters; use a shorter UPPER_SNAKE_CASE name"
        ));
    }
    Err(format!(
        "{key:?} is not a credential key; use UPPER_SNAKE_CASE such as {}",
        suggest_key(key)
    ))
}

/// A best-effort guess that a user pasted a credential where a name belongs, so error
/// messages do not repeat it.
pub(crate) fn looks_like_secret(value: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "pk_",
        "rk_",
        "ghp_",
        "gho_",
        "ghs_",
        "ghu_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "AKIA",
    ];
    let has = |f: fn(&char) -> bool| value.chars().any(|c| f(&c));
    let digit = has(char::is_ascii_digit);
    (value.len() >= 12 && PREFIXES.iter().any(|p| value.starts_with(p)))
        || (value.len() >= 32 && digit)
        || (value.len() >= 16
            && digit
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_uppercase))
}

/// `value` in quotes, or a note that it is withheld because it looks like a credential.
pub(crate) fn show(value: &str) -> String {
    if looks_like_secret(value) {
        "a value that looks like a credential (not shown)".into()
    } else {
        format!("{value:?}")
    }
}

fn suggest_key(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_');
    match out.chars().next() {
        None => "API_KEY".into(),
        Some(c) if c.is_ascii_digit() => format!("KEY_{out}"),
        Some(_) => out.chars().take(MAX_KEY_LEN).collect(),
    }
}

/// Canonical path prefix: a trailing `*` or `/*` is dropped (prefixes always match on segment
/// boundaries) and trailing slashes are trimmed, except for `/` itself.
pub(crate) fn normalize_path(path: &str) -> String {
    let trimmed = path.strip_suffix('*').unwrap_or(path);
    if trimmed.is_empty() && !path.is_empty() {
        return "/".into();
    }
    let trimmed = trimmed.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') {
        "/".into()
    } else {
        trimmed.into()
    }
}

/// The path prefix rules, applied to the canonical form.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    let canonical = normalize_path(path);
    if !canonical.starts_with('/') {
        return Err(format!(
            "{path:?} is not a path prefix; it must start with \"/\" (e.g. \"/v1\")"
        ));
    }
    if canonical.len() > MAX_PATH_LEN {
        return Err(format!("path is longer than {MAX_PATH_LEN} characters"));
    }
    if canonical.contains(['?', '#']) {
        return Err(format!(
            "{path:?} contains a query or fragment (\"?\" or \"#\"); a path prefix matches the path only, so drop them"
        ));
    }
    if canonical.contains('*') {
        return Err(format!(
            "{path:?} has a \"*\" inside it; only a trailing \"/*\" is allowed, and prefixes match every sub-path anyway"
        ));
    }
    if canonical
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{path:?} contains spaces or control characters; percent-encode them"
        ));
    }
    if canonical.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!(
            "{path:?} contains a \".\" or \"..\" segment; write the path as the server sees it (e.g. \"/v1/users\")"
        ));
    }
    Ok(())
}

/// The host pattern rules. Accepts any letter case; matching is case-insensitive.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing; name the upstream host, e.g. \"api.example.com\"".into());
    }
    if let Some((_, rest)) = host.split_once("://") {
        let rest = rest.trim_end_matches('/');
        return Err(format!(
            "{host:?} is not a host pattern; drop the scheme (use {rest:?})"
        ));
    }
    if host.starts_with('[') || host.matches(':').count() > 1 {
        return Err(format!(
            "{host:?}: IPv6 addresses are not supported; use a host name or an IPv4 address"
        ));
    }
    if host.contains('/') {
        return Err(format!(
            "{host:?} contains a path; put the path prefix in \"path\""
        ));
    }
    if host.contains(':') {
        return Err(format!(
            "{host:?} contains a port; put the port in \"port\""
        ));
    }
    if !host.is_ascii() {
        return Err(format!(
            "{host:?} is not ASCII; write internationalised names in their punycode (xn--) form"
        ));
    }
    if host.len() > 253 {
        return Err("host is longer than 253 characters".into());
    }
    let lower = host.to_ascii_lowercase();
    if lower == "*" {
        return Err(
            "\"*\" would match every host; name the host, or use a wildcard such as \"*.example.com\""
                .into(),
        );
    }
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if wildcard && name.split('.').count() < 2 {
        return Err(format!(
            "{host:?} is too broad; a wildcard needs at least two labels after \"*.\" (e.g. \"*.example.com\")"
        ));
    }
    if host.ends_with('.') {
        return Err(format!(
            "{host:?} ends with a dot; drop it (use {:?})",
            host.trim_end_matches('.')
        ));
    }
    if name.contains('*') {
        return Err(format!(
            "{host:?}: only a leading \"*.\" label may be a wildcard (e.g. \"*.example.com\")"
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        check_label(host, label)?;
    }
    let numeric_tld = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if wildcard && numeric_tld {
        return Err(format!(
            "{host:?}: wildcards apply to DNS names, not IP addresses"
        ));
    }
    if !wildcard && numeric_tld && name.parse::<Ipv4Addr>().is_err() {
        return Err(format!("{host:?} is not a valid IPv4 address"));
    }
    Ok(())
}

fn check_label(host: &str, label: &str) -> Result<(), String> {
    // The rules are `target::valid_label`'s; the branches below only explain a refusal.
    if crate::target::valid_label(label) {
        return Ok(());
    }
    if label.is_empty() {
        return Err(format!("{host:?} has an empty label (\"..\")"));
    }
    if label.len() > 63 {
        return Err(format!("{host:?} has a label longer than 63 characters"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("{host:?}: a label cannot start or end with \"-\""));
    }
    Err(format!(
        "{host:?} is not a host name; labels use letters, digits, \"-\" and \"_\" only"
    ))
}

/// Header names: an HTTP token, and not one the broker owns or that breaks framing.
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name is empty".into());
    }
    if !is_token(name) {
        return Err(format!(
            "{name:?} is not a valid header name; use letters, digits and \"-\" (e.g. \"X-Api-Key\")"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-vault-") {
        return Err(format!(
            "{name:?} cannot be set by a service: the broker owns it or it controls message framing"
        ));
    }
    Ok(())
}

/// An HTTP token (RFC 9110): the characters a header name may use.
fn is_token(name: &str) -> bool {
    const PUNCTUATION: &str = "!#$%&'*+-.^_`|~";
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || PUNCTUATION.contains(c))
}

/// Literal header text (an api-key prefix): no control characters, which could inject lines.
fn check_header_text(text: &str) -> Result<(), String> {
    if crate::text::misleads_display(text, false) {
        return Err(
            "cannot contain control characters (such as a newline) or text-direction controls"
                .into(),
        );
    }
    Ok(())
}

impl Service {
    /// Rewrites the service into canonical form: lower-case host, canonical path prefix,
    /// substitution surfaces without repeats. Run [`validate`] afterwards.
    pub fn normalize(&mut self) {
        self.host.make_ascii_lowercase();
        if let Some(path) = &mut self.path {
            *path = normalize_path(path);
        }
        for substitution in &mut self.substitutions {
            let mut seen = BTreeSet::new();
            substitution.surfaces.retain(|s| seen.insert(*s));
        }
    }

    /// Every credential key the service needs: from its auth and its substitutions.
    /// Malformed custom templates contribute nothing (validation reports them).
    pub fn credential_keys(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        match &self.auth {
            Auth::Bearer { token } => {
                keys.insert(token.as_str());
            }
            Auth::Basic { username, password } => {
                keys.insert(username.as_str());
                keys.insert(password.as_str());
            }
            Auth::ApiKey { key, .. } => {
                keys.insert(key.as_str());
            }
            Auth::Custom { headers } => {
                for template in headers.values() {
                    for segment in parse_template(template).unwrap_or_default() {
                        if let Segment::Reference(key) = segment {
                            keys.insert(key);
                        }
                    }
                }
            }
            Auth::Passthrough => {}
        }
        keys.extend(self.substitutions.iter().map(|s| s.key.as_str()));
        keys
    }

    /// The joined display form `host[:port][path]`, e.g. `api.example.com:8443/v1`.
    pub fn matcher(&self) -> String {
        let mut out = self.host.clone();
        if let Some(port) = self.port {
            out.push_str(&format!(":{port}"));
        }
        if let Some(path) = &self.path {
            out.push_str(path);
        }
        out
    }

    /// What two services must not share: host, port and path in canonical form. A path of
    /// `/` matches every path, so it counts as no path.
    fn identity(&self) -> (String, Option<u16>, Option<String>) {
        let path = self
            .path
            .as_deref()
            .map(normalize_path)
            .filter(|p| p != "/");
        (self.host.to_ascii_lowercase(), self.port, path)
    }
}

/// Normalises every service in place, then validates the list.
pub fn normalize_and_validate(services: &mut [Service]) -> Result<(), ServiceError> {
    for service in services.iter_mut() {
        service.normalize();
    }
    validate(services)
}

/// Checks every rule for every service, then that no two services claim the same host, port
/// and path. Stops at the first problem.
pub fn validate(services: &[Service]) -> Result<(), ServiceError> {
    let mut seen: BTreeMap<(String, Option<u16>, Option<String>), usize> = BTreeMap::new();
    for (index, service) in services.iter().enumerate() {
        let at = format!("services[{index}]");
        check_service(service, &at).map_err(|m| ServiceError::invalid(Some(index), m))?;
        if let Some(first) = seen.insert(service.identity(), index) {
            return Err(ServiceError::invalid(
                Some(index),
                format!(
                    "{at}: same host, port and path as services[{first}] ({}); merge them or make one more specific",
                    service.matcher()
                ),
            ));
        }
    }
    Ok(())
}

/// One service's rules; the error message starts with its position `at`.
fn check_service(service: &Service, at: &str) -> Result<(), String> {
    check_host(&service.host).map_err(|e| format!("{at}.host: {e}"))?;
    if service.port == Some(0) {
        return Err(format!(
            "{at}.port: 0 is not a port; use 1-65535, or omit port to match any port"
        ));
    }
    if let Some(path) = &service.path {
        check_path(path).map_err(|e| format!("{at}.path: {e}"))?;
    }
    if let Some(name) = &service.name
        && (name.len() > MAX_NAME_LEN || crate::text::misleads_display(name, false))
    {
        return Err(format!(
            "{at}.name: use one line of plain text (no control or text-direction characters) of at most {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(description) = &service.description {
        if description.len() > MAX_DESCRIPTION_LEN {
            return Err(format!(
                "{at}.description: longer than {MAX_DESCRIPTION_LEN} characters; shorten it"
            ));
        }
        // An agent proposes descriptions; an escape sequence in one could rewrite the
        // terminal of whoever lists the services later.
        if crate::text::misleads_display(description, true) {
            return Err(format!(
                "{at}.description: holds a control character (such as an escape or a text-direction override); use plain text"
            ));
        }
    }
    check_auth(&service.auth, &format!("{at}.auth"))?;
    check_substitutions(&service.substitutions, at)
}

/// A required credential-key field: empty counts as missing.
fn check_key_field(value: &str, at: &str, field: &str, missing: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{at}: {missing}"));
    }
    validate_credential_key(value).map_err(|e| format!("{at}.{field}: {e}"))
}

fn check_auth(auth: &Auth, at: &str) -> Result<(), String> {
    match auth {
        Auth::Bearer { token } => check_key_field(token, at, "token", &needs("bearer", "token")),
        Auth::Basic { username, password } => {
            check_key_field(username, at, "username", &needs("basic", "username"))?;
            check_key_field(password, at, "password", &needs("basic", "password"))
        }
        Auth::ApiKey {
            key,
            header,
            prefix,
        } => {
            check_key_field(key, at, "key", &needs("api-key", "key"))?;
            check_header_name(header).map_err(|e| format!("{at}.header: {e}"))?;
            if let Some(prefix) = prefix {
                check_header_text(prefix).map_err(|e| format!("{at}.prefix: {e}"))?;
            }
            Ok(())
        }
        Auth::Custom { headers } => check_custom_headers(headers, at),
        Auth::Passthrough => Ok(()),
    }
}

/// The "missing field" sentence for an auth type, shared with reading.
pub(crate) fn needs(auth_type: &str, field: &str) -> String {
    let holds = match field {
        "token" => "the credential key that holds the token",
        "username" => "the credential key that holds the username",
        "password" => "the credential key that holds the password",
        "key" => "the credential key that holds the API key",
        "headers" => "a map of header name to template, e.g. X-Api-Key: \"{{ API_KEY }}\"",
        _ => "",
    };
    format!("{auth_type} auth needs {field:?}, {holds}")
}

pub(crate) fn unknown_auth_type(value: &str) -> String {
    let squashed: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let hint = ["bearer", "basic", "api-key", "custom", "passthrough"]
        .into_iter()
        .find(|t| t.replace('-', "") == squashed)
        .map(|t| format!("; did you mean {t:?}?"))
        .unwrap_or_default();
    format!(
        "unknown auth type {} (expected {AUTH_TYPES}){hint}",
        show(value)
    )
}

pub(crate) fn missing_auth_type() -> String {
    format!("missing (expected {AUTH_TYPES})")
}

fn check_custom_headers(headers: &BTreeMap<String, String>, at: &str) -> Result<(), String> {
    if headers.is_empty() {
        return Err(format!("{at}: {}", needs("custom", "headers")));
    }
    let mut lower_names: BTreeMap<String, &str> = BTreeMap::new();
    let mut references = 0;
    for (name, template) in headers {
        let here = if is_token(name) {
            format!("{at}.headers.{name}")
        } else {
            format!("{at}.headers[{name:?}]")
        };
        check_header_name(name).map_err(|e| format!("{here}: {e}"))?;
        if let Some(other) = lower_names.insert(name.to_ascii_lowercase(), name) {
            return Err(format!(
                "{at}.headers: {other:?} and {name:?} name the same header (header names ignore case); keep one"
            ));
        }
        let segments = parse_template(template).map_err(|e| format!("{here}: {e}"))?;
        references += segments
            .iter()
            .filter(|s| matches!(s, Segment::Reference(_)))
            .count();
    }
    if references == 0 {
        return Err(format!(
            "{at}.headers: custom auth needs at least one {{{{ KEY }}}} credential reference, e.g. \"Token {{{{ API_KEY }}}}\" (for no credential use type: passthrough)"
        ));
    }
    Ok(())
}

fn check_substitutions(substitutions: &[Substitution], at: &str) -> Result<(), String> {
    for (j, substitution) in substitutions.iter().enumerate() {
        let here = format!("{at}.substitutions[{j}]");
        let placeholder = &substitution.placeholder;
        check_placeholder(placeholder).map_err(|e| format!("{here}.placeholder: {e}"))?;
        for (k, earlier) in substitutions[..j].iter().enumerate() {
            let earlier = &earlier.placeholder;
            if earlier == placeholder {
                return Err(format!(
                    "{here}.placeholder: {} is also used by substitutions[{k}]; placeholders must be unique within a service",
                    show(placeholder)
                ));
            }
            if earlier.contains(placeholder.as_str()) || placeholder.contains(earlier.as_str()) {
                return Err(format!(
                    "{here}.placeholder: {} overlaps the placeholder of substitutions[{k}]; one contains the other, so the result would depend on order; rename one",
                    show(placeholder)
                ));
            }
        }
        check_key_field(
            &substitution.key,
            &here,
            "key",
            "a substitution needs \"key\", the credential key whose value replaces the placeholder",
        )?;
        if substitution.surfaces.is_empty() {
            return Err(format!(
                "{here}.in: empty; list where to substitute (header, path, query, body, ws), or omit \"in\" for the path and the query"
            ));
        }
    }
    Ok(())
}

fn check_placeholder(placeholder: &str) -> Result<(), String> {
    if placeholder.is_empty() {
        return Err(
            "missing; choose a distinctive marker the agent writes instead of the credential, e.g. \"__stripe_key__\""
                .into(),
        );
    }
    if !placeholder
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "{} may only contain letters, digits, \"_\", \"-\" and \".\"",
            show(placeholder)
        ));
    }
    if placeholder.len() < MIN_PLACEHOLDER_LEN {
        return Err(format!(
            "{} is too short; use at least {MIN_PLACEHOLDER_LEN} characters so it cannot occur in a request by accident (e.g. \"__stripe_key__\")",
            show(placeholder)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{DEFAULT_API_KEY_HEADER, Surface};

    #[test]
    fn wildcards_on_shared_suffixes_are_named() {
        assert_eq!(
            wildcard_on_shared_suffix("*.atlassian.net"),
            Some("atlassian.net")
        );
        assert_eq!(
            wildcard_on_shared_suffix("*.HerokuApp.com"),
            Some("herokuapp.com")
        );
        assert_eq!(wildcard_on_shared_suffix("acme.atlassian.net"), None);
        assert_eq!(wildcard_on_shared_suffix("*.acme.atlassian.net"), None);
        assert_eq!(wildcard_on_shared_suffix("*.example.com"), None);
    }

    fn bearer(host: &str) -> Service {
        Service {
            host: host.into(),
            port: None,
            path: None,
            name: None,
            description: None,
            enabled: true,
            auth: Auth::Bearer {
                token: "API_TOKEN".into(),
            },
            substitutions: vec![],
            scrub_responses: true,
        }
    }

    fn with_auth(auth: Auth) -> Service {
        Service {
            auth,
            ..bearer("api.example.com")
        }
    }

    fn error(services: &[Service]) -> String {
        validate(services).unwrap_err().to_string()
    }

    fn substitution(placeholder: &str, key: &str) -> Substitution {
        Substitution {
            placeholder: placeholder.into(),
            key: key.into(),
            surfaces: Surface::ALL.to_vec(),
        }
    }

    #[test]
    fn a_description_is_plain_text() {
        let described = |text: &str| Service {
            description: Some(text.into()),
            ..bearer("api.example.com")
        };
        assert!(validate(&[described("Line one\n\tline two")]).is_ok());
        let err = error(&[described("looks fine\u{1b}[1A\u{1b}[2K")]);
        assert!(
            err.contains("description: holds a control character"),
            "{err}"
        );
    }

    #[test]
    fn credential_keys_are_upper_snake_case() {
        for good in ["A", "STRIPE_KEY", "K2", "A_B_C_1", &"K".repeat(128)] {
            assert!(validate_credential_key(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "_A", "1A", "A-B", "A B", "Ä", &"K".repeat(129)] {
            assert!(validate_credential_key(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_credential_key("stripe-key").unwrap_err(),
            "\"stripe-key\" is not a credential key; use UPPER_SNAKE_CASE such as STRIPE_KEY"
        );
        assert!(
            validate_credential_key("9lives")
                .unwrap_err()
                .contains("KEY_9LIVES")
        );
    }

    #[test]
    fn pasted_secrets_are_not_repeated() {
        let secret = "sk-live-4eC39HqLyjWDarjtT1zdp7dc";
        let err = validate_credential_key(secret).unwrap_err();
        assert!(!err.contains(secret), "{err}");
        assert!(err.contains("looks like a credential value"), "{err}");
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(!validate_credential_key(hex).unwrap_err().contains(hex));
    }

    #[test]
    fn valid_services_pass() {
        let mut api_key = with_auth(Auth::ApiKey {
            key: "K".into(),
            header: "x-api-key".into(),
            prefix: Some("Token token=".into()),
        });
        api_key.host = "*.example.org".into();
        let mut custom = with_auth(Auth::Custom {
            headers: BTreeMap::from([("X-Token".into(), "Token {{ API_KEY }}".into())]),
        });
        custom.host = "10.0.0.1".into();
        custom.port = Some(8443);
        custom.path = Some("/v1/".into());
        let mut pass = with_auth(Auth::Passthrough);
        pass.host = "localhost".into();
        pass.substitutions = vec![substitution("__bot_token__", "BOT_TOKEN")];
        let services = [bearer("API.Example.com"), api_key, custom, pass];
        validate(&services).unwrap();
    }

    #[test]
    fn host_rules() {
        let cases = [
            (
                "https://api.x.com",
                "services[0].host: \"https://api.x.com\" is not a host pattern; drop the scheme (use \"api.x.com\")",
            ),
            ("", "services[0].host: missing"),
            ("*", "would match every host"),
            ("*.com", "too broad"),
            ("*.", "too broad"),
            ("*.com.", "ends with a dot"),
            ("a.*.com", "only a leading"),
            ("*foo.example.com", "only a leading"),
            ("api.example.com.", "ends with a dot"),
            ("api..example.com", "empty label"),
            ("api.exa mple.com", "not a host name"),
            ("-api.example.com", "cannot start or end"),
            ("[::1]", "IPv6"),
            ("1.2.3.256", "not a valid IPv4"),
            ("*.1.2.3", "not IP addresses"),
            ("api.example.com:443", "put the port in \"port\""),
            ("api.example.com/v1", "put the path prefix in \"path\""),
            ("bücher.de", "punycode"),
        ];
        for (host, expected) in cases {
            let err = error(&[bearer(host)]);
            assert!(err.contains(expected), "{host}: {err}");
        }
        for host in [
            "*.example.com",
            "*.a.b.example.com",
            "127.0.0.1",
            "my_host.internal",
        ] {
            validate(&[bearer(host)]).unwrap();
        }
    }

    #[test]
    fn port_zero_is_refused() {
        let mut service = bearer("api.example.com");
        service.port = Some(0);
        assert!(error(&[service]).starts_with("services[0].port: 0 is not a port"));
    }

    #[test]
    fn path_rules_and_normalisation() {
        assert_eq!(normalize_path("/v1/"), "/v1");
        assert_eq!(normalize_path("/v1/*"), "/v1");
        assert_eq!(normalize_path("/v1*"), "/v1");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/*"), "/");
        assert_eq!(normalize_path("*"), "/");
        assert_eq!(normalize_path("//"), "/");
        for (path, expected) in [
            ("v1", "must start with \"/\""),
            ("", "must start with \"/\""),
            ("/v1?x=1", "query or fragment"),
            ("/v1#top", "query or fragment"),
            ("/v1/../admin", "\"..\" segment"),
            ("/a/*/b", "only a trailing"),
            ("/a b", "percent-encode"),
        ] {
            let mut service = bearer("api.example.com");
            service.path = Some(path.into());
            let err = error(&[service]);
            assert!(err.starts_with("services[0].path: "), "{err}");
            assert!(err.contains(expected), "{path}: {err}");
        }
        let mut service = bearer("api.example.com");
        service.path = Some("/a..b".into());
        validate(&[service]).unwrap();
    }

    #[test]
    fn normalize_rewrites_in_place() {
        let mut service = bearer("API.Example.COM");
        service.path = Some("/v1/*".into());
        service.substitutions = vec![Substitution {
            surfaces: vec![Surface::Path, Surface::Path, Surface::Body],
            ..substitution("__placeholder__", "K")
        }];
        let mut services = [service];
        normalize_and_validate(&mut services).unwrap();
        assert_eq!(services[0].host, "api.example.com");
        assert_eq!(services[0].path.as_deref(), Some("/v1"));
        assert_eq!(
            services[0].substitutions[0].surfaces,
            [Surface::Path, Surface::Body]
        );
        assert_eq!(services[0].matcher(), "api.example.com/v1");
    }

    #[test]
    fn auth_fields_must_be_credential_keys() {
        let err = error(&[bearer("a.example.com"), bearer("b.example.com"), {
            with_auth(Auth::Bearer {
                token: "stripe-key".into(),
            })
        }]);
        assert_eq!(
            err,
            "services[2].auth.token: \"stripe-key\" is not a credential key; use UPPER_SNAKE_CASE such as STRIPE_KEY"
        );
        let err = error(&[with_auth(Auth::Bearer { token: "".into() })]);
        assert_eq!(
            err,
            "services[0].auth: bearer auth needs \"token\", the credential key that holds the token"
        );
        let err = error(&[with_auth(Auth::Basic {
            username: "USER".into(),
            password: "pw".into(),
        })]);
        assert!(
            err.starts_with("services[0].auth.password: \"pw\""),
            "{err}"
        );
        let err = error(&[with_auth(Auth::ApiKey {
            key: "".into(),
            header: DEFAULT_API_KEY_HEADER.into(),
            prefix: None,
        })]);
        assert!(err.contains("api-key auth needs \"key\""), "{err}");
    }

    #[test]
    fn header_rules() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "CONNECTION",
            "Proxy-Authorization",
            "Proxy-Connection",
            "Upgrade",
            "TE",
            "Trailer",
            "Keep-Alive",
            "X-Vault",
            "x-vault-token",
        ] {
            let err = error(&[with_auth(Auth::ApiKey {
                key: "K".into(),
                header: name.into(),
                prefix: None,
            })]);
            assert!(err.starts_with("services[0].auth.header: "), "{err}");
            assert!(err.contains("cannot be set by a service"), "{name}: {err}");
        }
        for name in ["X Api", "X:Api", "", "Ä"] {
            let err = error(&[with_auth(Auth::ApiKey {
                key: "K".into(),
                header: name.into(),
                prefix: None,
            })]);
            assert!(err.contains("header name"), "{name}: {err}");
        }
        let err = error(&[with_auth(Auth::ApiKey {
            key: "K".into(),
            header: "X-Api-Key".into(),
            prefix: Some("Bearer\r\nX-Evil: 1".into()),
        })]);
        assert!(err.starts_with("services[0].auth.prefix: "), "{err}");
    }

    #[test]
    fn custom_header_rules() {
        let custom = |pairs: &[(&str, &str)]| {
            with_auth(Auth::Custom {
                headers: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        };
        validate(&[custom(&[("X-Id", "static"), ("X-Key", "{{KEY}}")])]).unwrap();
        for (pairs, expected) in [
            (vec![], "custom auth needs \"headers\""),
            (vec![("X-Id", "static")], "at least one {{ KEY }}"),
            (
                vec![("X-Key", "{{ KEY ")],
                "services[0].auth.headers.X-Key: template has a \"{{\"",
            ),
            (vec![("X-Key", "KEY }}")], "no opening"),
            (vec![("X-Key", "{{ key }}")], "UPPER_SNAKE_CASE"),
            (
                vec![("Host", "{{ KEY }}")],
                "services[0].auth.headers.Host: ",
            ),
            (
                vec![("X Key", "{{ KEY }}")],
                "services[0].auth.headers[\"X Key\"]",
            ),
            (
                vec![("X-Key", "{{ KEY }}"), ("x-key", "{{ KEY }}")],
                "name the same header",
            ),
        ] {
            let err = error(&[custom(&pairs)]);
            assert!(err.contains(expected), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn substitution_rules() {
        let with = |subs: Vec<Substitution>| {
            let mut service = with_auth(Auth::Passthrough);
            service.substitutions = subs;
            service
        };
        validate(&[with(vec![
            substitution("__token_a__", "A"),
            substitution("__token_b__", "B"),
        ])])
        .unwrap();
        let empty_in = Substitution {
            surfaces: vec![],
            ..substitution("__token_a__", "A")
        };
        for (subs, expected) in [
            (vec![substitution("short", "A")], "too short"),
            (vec![substitution("__bad token__", "A")], "may only contain"),
            (vec![substitution("", "A")], "placeholder: missing"),
            (
                vec![
                    substitution("__token_a__", "A"),
                    substitution("__token_a__", "B"),
                ],
                "services[0].substitutions[1].placeholder: \"__token_a__\" is also used by substitutions[0]",
            ),
            (
                vec![
                    substitution("__token__", "A"),
                    substitution("__token__x", "B"),
                ],
                "overlaps",
            ),
            (
                vec![substitution("__token_a__", "a")],
                "substitutions[0].key: \"a\"",
            ),
            (vec![substitution("__token_a__", "")], "needs \"key\""),
            (vec![empty_in], "substitutions[0].in: empty"),
        ] {
            let err = error(&[with(subs)]);
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn duplicates_name_both_indexes() {
        let mut a = bearer("API.example.com");
        a.path = Some("/v1".into());
        let mut b = bearer("api.example.com");
        b.path = Some("/v1/".into());
        let err = validate(&[bearer("other.example.com"), a.clone(), b]).unwrap_err();
        assert!(matches!(err, ServiceError::Invalid { index: Some(2), .. }));
        assert!(
            err.to_string()
                .starts_with("services[2]: same host, port and path as services[1]"),
            "{err}"
        );
        // A different port or path is a different service; "/" is the same as no path.
        let mut c = a.clone();
        c.port = Some(8443);
        validate(&[a.clone(), c]).unwrap();
        let mut root = bearer("x.example.com");
        root.path = Some("/".into());
        assert!(validate(&[bearer("x.example.com"), root]).is_err());
    }

    #[test]
    fn credential_keys_collects_every_reference() {
        let mut service = with_auth(Auth::Custom {
            headers: BTreeMap::from([
                ("X-A".into(), "{{ A }}:{{ B }}".into()),
                ("X-B".into(), "{{ A }}".into()),
            ]),
        });
        service.substitutions = vec![substitution("__placeholder__", "C")];
        assert_eq!(
            service.credential_keys().into_iter().collect::<Vec<_>>(),
            ["A", "B", "C"]
        );
        let basic = with_auth(Auth::Basic {
            username: "U".into(),
            password: "P".into(),
        });
        assert_eq!(basic.credential_keys().len(), 2);
        assert!(with_auth(Auth::Passthrough).credential_keys().is_empty());
    }

    #[test]
    fn unknown_auth_type_hints() {
        assert_eq!(
            unknown_auth_type("oauth"),
            "unknown auth type \"oauth\" (expected bearer, basic, api-key, custom, passthrough)"
        );
        assert!(unknown_auth_type("api_key").ends_with("did you mean \"api-key\"?"));
    }
}
