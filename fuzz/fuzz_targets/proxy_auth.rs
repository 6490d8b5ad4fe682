//! `Proxy-Authorization` (forward proxy) and `Authorization` + `X-Vault` (explicit endpoint):
//! any header bytes are read or refused without a panic.
#![no_main]

use agent_vault::broker::proxy_auth::{from_api_headers, from_proxy_headers};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (authorization, vault) = input;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(header::PROXY_AUTHORIZATION, value.clone());
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(vault) {
        headers.insert("x-vault", value);
    }
    let _ = from_proxy_headers(&headers);
    let _ = from_api_headers(&headers);
});
