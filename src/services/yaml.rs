//! The YAML services file: `services: [...]`, with an optional top-level `vault:` that is
//! written for the reader's benefit and ignored when read.
//!
//! Errors carry a position: syntax and type errors their line and column, rule violations
//! the line of the offending service and its path (`services[1].auth.type`). Messages are
//! rendered without source snippets, so a line of the file (which might hold a pasted
//! secret) is never echoed back.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_saphyr::{DefaultMessageFormatter, MessageFormatter, Spanned};

use super::de::RawService;
use super::{Service, ServiceError, validate};

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a services document: a mapping with a `services:` list"
)]
struct Document {
    #[allow(dead_code)]
    vault: Option<IgnoredAny>,
    services: Option<Vec<Spanned<RawService>>>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    vault: &'a str,
    services: &'a [Service],
}

/// Reads and validates a services document.
pub fn parse_yaml(text: &str) -> Result<Vec<Service>, ServiceError> {
    let blank = text
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'));
    if blank {
        return Err(ServiceError::invalid(
            None,
            "the services file is empty; it needs a `services:` list, e.g. \
             services: [{host: api.example.com, auth: {type: bearer, token: API_TOKEN}}]",
        ));
    }
    let document: Document = serde_saphyr::from_str(text).map_err(|err| {
        // The likeliest shape mistake: a bare list without the `services:` key.
        if serde_saphyr::from_str::<Vec<IgnoredAny>>(text).is_ok() {
            return ServiceError::Syntax {
                line: 1,
                column: 1,
                message: "the document is a bare list; put it under a `services:` key".into(),
            };
        }
        syntax_error(err)
    })?;
    let Some(raw) = document.services else {
        return Err(ServiceError::invalid(
            None,
            "services: missing; the file needs a `services:` list (write `services: []` for none)",
        ));
    };
    let mut lines = Vec::with_capacity(raw.len());
    let mut services = Vec::with_capacity(raw.len());
    for (index, item) in raw.into_iter().enumerate() {
        let line = item.referenced.line();
        let service = item
            .value
            .into_service(&format!("services[{index}]"))
            .map_err(|message| ServiceError::Invalid {
                index: Some(index),
                line,
                message,
            })?;
        lines.push(line);
        services.push(service);
    }
    validate(&services).map_err(|err| match err {
        ServiceError::Invalid {
            index: Some(index),
            message,
            ..
        } => ServiceError::Invalid {
            index: Some(index),
            line: lines.get(index).copied().unwrap_or(0),
            message,
        },
        other => other,
    })?;
    Ok(services)
}

/// Writes `services` as a document that [`parse_yaml`] reads back unchanged (for a list that
/// is valid and normalised, as every list it returns is).
pub fn to_yaml(vault: &str, services: &[Service]) -> Result<String, ServiceError> {
    // Indented list items, the way people write them by hand.
    let options = serde_saphyr::ser_options! { compact_list_indent: false };
    serde_saphyr::to_string_with_options(&DocumentOut { vault, services }, options)
        .map_err(|e| ServiceError::Encode(e.to_string()))
}

fn syntax_error(err: serde_saphyr::Error) -> ServiceError {
    let (line, column) = err
        .location()
        .map_or((0, 0), |location| (location.line(), location.column()));
    // Control characters would let a crafted file rewrite the terminal.
    let message = describe(err.without_snippet())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    ServiceError::Syntax {
        line,
        column,
        message,
    }
}

/// The parser's message, reworded where it is terse about the fix in this schema.
fn describe(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    // An error met inside an alias's expansion comes wrapped with the alias's place.
    let mut inner = err;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    match inner {
        // `port` is the only integer field.
        E::InvalidScalar { ty: "u16", .. } => "expected a port number from 1 to 65535".into(),
        E::InvalidScalar { ty: "boolean", .. } | E::InvalidBooleanStrict { .. } => {
            "expected true or false".into()
        }
        E::UnknownAnchor { .. } => "a value starting with \"*\" is a YAML alias; quote it \
             (e.g. host: \"*.example.com\")"
            .into(),
        E::DuplicateMappingKey { key: Some(key), .. } => {
            format!("{key:?} is given twice in this mapping; keep one")
        }
        E::Unexpected {
            expected: "mapping start",
            ..
        } => {
            "expected a mapping of fields here (e.g. auth: {type: bearer, token: API_TOKEN})".into()
        }
        E::Unexpected {
            expected: "sequence start",
            ..
        } => "expected a list here; start each item with \"- \"".into(),
        E::Budget { .. } => "the document is too large or too deeply nested once its aliases \
             (`*name`) are expanded; a services file needs neither"
            .into(),
        _ => DefaultMessageFormatter.format_message(err).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::services::{Auth, Substitution, Surface};

    const SAMPLE: &str = r#"vault: default
services:
  - host: api.stripe.com
    name: Stripe
    auth:
      type: bearer
      token: STRIPE_KEY
  - host: "*.example.com:8443/v1/*"
    description: Internal APIs
    enabled: false
    auth: {type: api-key, key: EXAMPLE_KEY, header: x-api-key, prefix: "Key "}
  - host: api.telegram.org
    auth:
      type: passthrough
    substitutions:
      - placeholder: __telegram_bot_token__
        key: TELEGRAM_BOT_TOKEN
        in: [path]
  - host: 10.0.0.1
    port: 9000
    path: /hooks/
    auth:
      type: custom
      headers:
        X-Token: "Token {{ HOOK_TOKEN }}"
        X-Client: agent-vault
    substitutions:
      - {placeholder: __hook_secret__, key: HOOK_SECRET, in: body}
  - host: auth.example.net
    auth: {type: basic, username_key: NET_USER, password_key: NET_PASS}
"#;

    #[test]
    fn parses_every_form() {
        let services = parse_yaml(SAMPLE).unwrap();
        assert_eq!(services.len(), 5);
        assert_eq!(services[0].name.as_deref(), Some("Stripe"));
        assert_eq!(
            services[0].auth,
            Auth::Bearer {
                token: "STRIPE_KEY".into()
            }
        );
        assert_eq!(services[1].host, "*.example.com");
        assert_eq!(services[1].port, Some(8443));
        assert_eq!(services[1].path.as_deref(), Some("/v1"));
        assert!(!services[1].enabled);
        assert_eq!(
            services[2].substitutions,
            [Substitution {
                placeholder: "__telegram_bot_token__".into(),
                key: "TELEGRAM_BOT_TOKEN".into(),
                surfaces: vec![Surface::Path],
            }]
        );
        assert_eq!(services[3].path.as_deref(), Some("/hooks"));
        assert_eq!(
            services[3].auth,
            Auth::Custom {
                headers: BTreeMap::from([
                    ("X-Client".into(), "agent-vault".into()),
                    ("X-Token".into(), "Token {{ HOOK_TOKEN }}".into()),
                ])
            }
        );
        assert_eq!(services[3].substitutions[0].surfaces, [Surface::Body]);
        assert_eq!(
            services[4].auth,
            Auth::Basic {
                username: "NET_USER".into(),
                password: "NET_PASS".into()
            }
        );
    }

    #[test]
    fn round_trips() {
        let services = parse_yaml(SAMPLE).unwrap();
        let text = to_yaml("default", &services).unwrap();
        assert!(
            text.starts_with("vault: default\nservices:\n  - host: api.stripe.com\n"),
            "{text}"
        );
        assert_eq!(parse_yaml(&text).unwrap(), services);
        // Stable: writing the re-read list gives the same text.
        assert_eq!(
            to_yaml("default", &parse_yaml(&text).unwrap()).unwrap(),
            text
        );
        let empty = to_yaml("v", &[]).unwrap();
        assert_eq!(parse_yaml(&empty).unwrap(), vec![]);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let text =
            "services:\n  - host: api.example.com\n    auth:\n      type: bearer\n     token: X\n";
        let err = parse_yaml(text).unwrap_err();
        let ServiceError::Syntax { line, column, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(*line >= 4 && *column > 0, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("line {line}, column {column}: "))
        );

        let text = "services:\n  - host: api.example.com\n    port: eighty\n    auth: {type: passthrough}\n";
        let err = parse_yaml(text).unwrap_err();
        assert!(err.to_string().starts_with("line 3, column 11: "), "{err}");

        let text = "services:\n  - host: api.example.com\n    auth: {type: bearer, tokne: X}\n";
        let err = parse_yaml(text).unwrap_err().to_string();
        assert!(err.starts_with("line 3, column "), "{err}");
        assert!(err.contains("tokne"), "{err}");
    }

    #[test]
    fn an_alias_bomb_is_refused_with_a_readable_reason() {
        let mut text = String::from("vault:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
        }
        text.push_str("services: *a9\n");
        let err = parse_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("too large or too deeply nested"), "{err}");
    }

    #[test]
    fn rule_errors_name_the_line_and_position() {
        let text = "services:\n  - host: a.example.com\n    auth: {type: passthrough}\n  - host: b.example.com\n    auth:\n      type: oauth\n";
        let err = parse_yaml(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: services[1].auth.type: unknown auth type \"oauth\" (expected bearer, basic, api-key, custom, passthrough)"
        );
        let text = "services:\n  - host: \"https://api.x.com\"\n    auth: {type: passthrough}\n";
        assert_eq!(
            parse_yaml(text).unwrap_err().to_string(),
            "line 2: services[0].host: \"https://api.x.com\" is not a host pattern; drop the scheme (use \"api.x.com\")"
        );
        let text = "services:\n  - host: a.example.com\n    auth: {type: passthrough}\n  - host: A.example.com/\n    auth: {type: passthrough}\n";
        let err = parse_yaml(text).unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Invalid {
                    index: Some(1),
                    line: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("services[1]: same host, port and path as services[0]")
        );
    }

    #[test]
    fn document_shape_errors() {
        for text in ["", "  \n\n", "# only a comment\n"] {
            let err = parse_yaml(text).unwrap_err().to_string();
            assert!(err.starts_with("the services file is empty"), "{err}");
        }
        let err = parse_yaml("vault: x\n").unwrap_err().to_string();
        assert!(err.starts_with("services: missing"), "{err}");
        let err = parse_yaml("- host: a.example.com\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bare list; put it under a `services:` key"),
            "{err}"
        );
        let err = parse_yaml("services: []\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
        assert_eq!(
            parse_yaml("vault: {any: thing}\nservices: []\n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn terse_parser_messages_are_reworded() {
        let cases = [
            (
                "services:\n  - host: *.example.com\n    auth: {type: passthrough}\n",
                "line 2, column 11: a value starting with \"*\" is a YAML alias; quote it",
            ),
            (
                "services:\n  - host: a.example.com\n    port: 70000\n    auth: {type: passthrough}\n",
                "line 3, column 11: expected a port number from 1 to 65535",
            ),
            (
                "services:\n  - host: a.example.com\n    enabled: maybe\n    auth: {type: passthrough}\n",
                "line 3, column 14: expected true or false",
            ),
            (
                "services:\n  - host: a.example.com\n    auth: bearer\n",
                "line 3, column 11: expected a mapping of fields here",
            ),
            (
                "services:\n  host: a.example.com\n",
                "line 2, column 3: expected a list here",
            ),
            (
                "services:\n  - host: a.example.com\n    auth: {type: custom, headers: {X-A: \"{{ A }}\", X-A: \"{{ B }}\"}}\n",
                "\"X-A\" is given twice in this mapping; keep one",
            ),
            ("services: [\n", "line 1, column 11: unclosed bracket '['"),
        ];
        for (text, expected) in cases {
            let err = parse_yaml(text).unwrap_err();
            assert!(matches!(err, ServiceError::Syntax { .. }), "{err:?}");
            let err = err.to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
