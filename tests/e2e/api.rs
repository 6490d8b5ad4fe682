//! A small JSON client for tests that talk to the API directly.

use serde_json::{Value, json};

use crate::harness::http;

pub struct Api {
    pub url: String,
}

impl Api {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when there is none).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = http().request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`Self::call`] but panics unless the answer is a success.
    pub fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (status, reply) = self.call(method, path, token, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} → {status}: {reply}"
        );
        reply
    }

    /// Registers the first account (the owner) and returns its token.
    pub fn register_owner(&self, email: &str) -> String {
        let reply = self.ok(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({ "email": email, "password": "password-1" })),
        );
        reply["token"].as_str().unwrap().to_owned()
    }

    /// Invites `email` (optionally into vaults) as the owner and accepts; returns its token.
    pub fn add_user(&self, owner: &str, email: &str, vaults: Value) -> String {
        let invite = self.ok(
            "POST",
            "/v1/users/invites",
            Some(owner),
            Some(json!({ "email": email, "vaults": vaults })),
        );
        let link = invite["invite_link"].as_str().unwrap();
        let token = link.rsplit('/').next().unwrap();
        let reply = self.ok(
            "POST",
            &format!("/v1/invites/{token}/accept"),
            None,
            Some(json!({ "password": "password-1" })),
        );
        reply["token"].as_str().unwrap().to_owned()
    }
}
