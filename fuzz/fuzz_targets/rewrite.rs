//! Placeholder substitution: for any request target, body, media type and credential
//! values, rewriting ends without a panic, keeps to the growth it is allowed, and a value
//! adds no path segment, query parameter or form field.
#![no_main]

use std::convert::Infallible;

use agent_vault::broker::ResolvedSubstitution;
use agent_vault::broker::rewrite::{rewrite_path_and_query, rewrite_text};
use agent_vault::crypto::SecretString;
use agent_vault::services::Surface;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    path_and_query: &'a str,
    body: &'a [u8],
    content_type: Option<&'a str>,
    /// (placeholder seed, value, surfaces as bits)
    substitutions: Vec<(&'a [u8], &'a str, u8)>,
}

/// A placeholder as validation lets one through: 8 or more of `[A-Za-z0-9_.-]`.
fn placeholder(seed: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcXYZ019_.-";
    let mut text: String = seed
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    while text.len() < 8 {
        text.push('_');
    }
    text
}

fn counts(text: &str, of: &[char]) -> Vec<usize> {
    of.iter().map(|c| text.matches(*c).count()).collect()
}

fuzz_target!(|input: Input| {
    let mut substitutions: Vec<ResolvedSubstitution> = Vec::new();
    for (seed, value, bits) in input.substitutions {
        let placeholder = placeholder(seed);
        // Validation refuses placeholders that contain one another.
        if substitutions
            .iter()
            .any(|s| s.placeholder.contains(&placeholder) || placeholder.contains(&s.placeholder))
        {
            continue;
        }
        let surfaces = [
            Surface::Header,
            Surface::Path,
            Surface::Query,
            Surface::Body,
            Surface::Ws,
        ]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, s)| s)
        .collect();
        substitutions.push(ResolvedSubstitution {
            placeholder,
            value: SecretString::from(value),
            surfaces,
        });
    }

    if let Ok(rewritten) = rewrite_path_and_query(input.path_and_query, &substitutions) {
        let split = |t: &str| {
            let (path, query) = t.split_once('?').unwrap_or((t, ""));
            (
                counts(path, &['/', '?', '#']),
                counts(query, &['&', '=', '#']),
            )
        };
        assert_eq!(
            split(&rewritten),
            split(input.path_and_query),
            "{rewritten}"
        );
        if input
            .path_and_query
            .parse::<http::uri::PathAndQuery>()
            .is_ok()
        {
            assert!(
                rewritten.parse::<http::uri::PathAndQuery>().is_ok(),
                "{rewritten}"
            );
        }
    }

    const ROOM: usize = 1 << 20;
    let room = |len: usize| if len > ROOM { Err(()) } else { Ok(()) };
    if let Ok(body) = rewrite_text(
        Surface::Body,
        input.body,
        input.content_type,
        &substitutions,
        room,
    ) {
        assert!(body.len() <= ROOM.max(input.body.len()));
        let form = input.content_type.is_some_and(|c| {
            c.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if form
            && let (Ok(before), Ok(after)) =
                (std::str::from_utf8(input.body), std::str::from_utf8(&body))
        {
            assert_eq!(
                counts(after, &['&', '=']),
                counts(before, &['&', '=']),
                "{after}"
            );
        }
    }
    let _: Result<Vec<u8>, Infallible> = rewrite_text(
        Surface::Ws,
        input.body,
        Some("application/json"),
        &substitutions,
        |_| Ok(()),
    );
});
