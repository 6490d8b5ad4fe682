//! Custom-header templates: literal text with `{{ KEY }}` credential references.
//!
//! There is no escaping: a `{{` or `}}` that is not part of a reference is an error rather
//! than literal text, so a typo cannot turn a reference into a string sent upstream as is.

use super::validate::validate_credential_key;

/// One piece of a parsed template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Literal(&'a str),
    /// A credential key, without braces or spaces.
    Reference(&'a str),
}

/// Splits `template` into literal text and credential references. The error says what is
/// wrong with the template, without a position prefix.
pub fn parse_template(template: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let literal = &rest[..open];
        check_literal(literal)?;
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(
                "template has a \"{{\" with no closing \"}}\"; write references as {{ KEY }}"
                    .into(),
            );
        };
        let key = after[..close].trim_matches(' ');
        if key.is_empty() {
            return Err("template has an empty reference; put a credential key inside the braces, e.g. {{ API_KEY }}".into());
        }
        validate_credential_key(key)?;
        segments.push(Segment::Reference(key));
        rest = &after[close + 2..];
    }
    check_literal(rest)?;
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest));
    }
    Ok(segments)
}

fn check_literal(literal: &str) -> Result<(), String> {
    if literal.contains("}}") {
        return Err(
            "template has a \"}}\" with no opening \"{{\"; write references as {{ KEY }}".into(),
        );
    }
    // CR/LF would let a template inject extra header lines; no control character belongs in
    // a header value.
    if literal.chars().any(|c| c.is_control()) {
        return Err(
            "header templates cannot contain control characters (such as a newline)".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_with_or_without_spaces() {
        assert_eq!(
            parse_template("Token {{ API_KEY }} and {{B}}").unwrap(),
            vec![
                Segment::Literal("Token "),
                Segment::Reference("API_KEY"),
                Segment::Literal(" and "),
                Segment::Reference("B"),
            ]
        );
        assert_eq!(
            parse_template("plain").unwrap(),
            vec![Segment::Literal("plain")]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
        // Single braces are ordinary text.
        assert_eq!(
            parse_template("{x}").unwrap(),
            vec![Segment::Literal("{x}")]
        );
    }

    #[test]
    fn refuses_malformed_templates() {
        let err = parse_template("Token {{ API_KEY").unwrap_err();
        assert!(err.contains("no closing"), "{err}");
        let err = parse_template("Token API_KEY }}").unwrap_err();
        assert!(err.contains("no opening"), "{err}");
        let err = parse_template("{{ }}").unwrap_err();
        assert!(err.contains("empty reference"), "{err}");
        let err = parse_template("{{ api_key }}").unwrap_err();
        assert!(err.contains("UPPER_SNAKE_CASE"), "{err}");
        let err = parse_template("{{ A B }}").unwrap_err();
        assert!(err.contains("not a credential key"), "{err}");
        let err = parse_template("x\r\nEvil: 1 {{ A }}").unwrap_err();
        assert!(err.contains("control characters"), "{err}");
    }
}
