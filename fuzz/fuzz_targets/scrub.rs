//! Response scrubbing: whatever the secrets and however a body is cut into chunks, the scan
//! ends without a panic, a binary body keeps its length, and no secret gets through.
#![no_main]

use std::sync::Arc;

use agent_vault::broker::scrub::{BodyScrub, MARKER, Scrubber};
use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secrets: Vec<&'a str>,
    basic: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    cuts: Vec<u16>,
}

fn streamed(mut scan: BodyScrub, body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        out.extend_from_slice(&scan.push(Bytes::copy_from_slice(&body[from..cut])));
        from = cut;
    }
    out.extend_from_slice(&scan.finish());
    out
}

fuzz_target!(|input: Input| {
    let Some(scrubber) = Scrubber::new(input.secrets.iter().copied(), input.basic.iter().copied())
    else {
        return;
    };
    let scrubber = Arc::new(scrubber);
    let body = input.body;
    let mut cuts: Vec<usize> = input
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let text = streamed(BodyScrub::new(scrubber.clone()), body, &cuts);
    let binary = streamed(BodyScrub::same_length(scrubber.clone()), body, &cuts);
    assert_eq!(binary.len(), body.len());
    let whole = scrubber.replace(body);
    // A secret sharing no byte with the marker (or the binary filler's `*`) can only show in
    // the output where the scan missed it: the output is the body's unmatched runs between
    // markers.
    let apart = |secret: &str| {
        secret.len() >= agent_vault::broker::scrub::MIN_LEN
            && !secret
                .bytes()
                .any(|b| b == b'*' || MARKER.as_bytes().contains(&b))
    };
    for secret in input.secrets.iter().copied().filter(|s| apart(s)) {
        let found = |haystack: &[u8]| memmem(haystack, secret.as_bytes());
        assert!(!found(&text), "streamed text scan let {secret:?} through");
        assert!(
            !found(&binary),
            "streamed binary scan let {secret:?} through"
        );
        if let Some(whole) = &whole {
            assert!(!found(whole), "whole-body scan let {secret:?} through");
        } else {
            assert!(
                !found(body),
                "the whole-body scan found nothing, yet {secret:?} is there"
            );
        }
    }
});

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
