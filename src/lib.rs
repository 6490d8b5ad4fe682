//! agent-vault: a credential broker and sandbox orchestrator for AI agents.
//!
//! Agents never hold credentials. The server keeps them encrypted in vaults; agents send their
//! HTTP(S) traffic through the broker, which attaches the real credential on the way out.
//! One binary is both the server and its CLI.
//!
//! # Module map
//!
//! Lower layers never import upper ones:
//!
//! ```text
//! ceilings → text → roots → target → netguard → paths → metrics → crypto → services → store → ca → broker → limits → proxy → mail → ops → api | web → server → cli → main
//! ```
//!
//! | module   | owns |
//! |----------|------|
//! | [`ceilings`] | resource ceilings: password-hashing slots, the substitution body budget, verification-guess budgets, short echoes of input |
//! | [`text`]   | characters that make text show as something it is not: bidi controls, spoofable addresses (UTS #39) |
//! | [`roots`]  | trusted TLS roots for our own clients: the system bundle plus `SSL_CERT_FILE` / `SSL_CERT_DIR` |
//! | [`target`] | where a proxied request goes (scheme, host, port), parsed once; the one host-name validator |
//! | [`netguard`] | SSRF guard for upstream dials: deny policy, checked resolution, dialing the checked address |
//! | [`paths`]  | the `~/.agent-vault/` layout and its permissions |
//! | [`crypto`] | DEK/KEK, Argon2id, AES-256-GCM with associated data, tokens, zeroizing secrets |
//! | [`services`] | service rules: model, validation, YAML form, request matching, catalog |
//! | [`metrics`] | Prometheus counters, histograms and gauges (one registry), rendered for `GET /metrics` |
//! | [`store`]  | SQLite or PostgreSQL behind one connection type, versioned migrations, one file per aggregate |
//! | [`ca`]     | the MITM root CA (key sealed under the DEK) and cached per-host leaf certificates |
//! | [`broker`] | the data path's policy core: proxy auth, vault snapshots, injection plan, request log |
//! | [`limits`] | rate limits: tiers AUTH, PROXY, AUTHED, GLOBAL; profiles, env knobs and owner overrides; bounded per-key budgets; the `429` answer |
//! | [`proxy`]  | the data-path listeners (forward proxy / MITM, explicit endpoint) and the upstream client |
//! | [`mail`]   | email: SMTP settings, message building (codes, invites, proposal notices), a background queue with retries and delivery status |
//! | [`ops`]    | the management operations: permission checks and store writes, shared by `api` and `web` |
//! | [`api`]    | the management HTTP API (axum): JSON in/out, one error shape; a thin adapter over `ops` |
//! | [`web`]    | the browser UI at `/`: server-rendered pages, session cookie, CSRF, Google sign-in; a thin adapter over `ops` |
//! | [`sandbox`] | `vault run` environments; container mode: Docker API, images, firewall helper, relay, mounts, cleanup |
//! | [`server`] | server lifecycle: unlock, pid file, detach, listeners, graceful shutdown |
//! | [`cli`]    | the clap command tree, API client, output and prompts |
//!
//! Security stance: no credential value, password or token reaches a log line, an error
//! message or a panic; secrets live in zeroizing types and are redacted in `Debug`.

pub mod api;
pub mod broker;
pub mod ca;
pub mod ceilings;
pub mod cli;
pub mod crypto;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod netguard;
pub mod ops;
pub mod paths;
pub mod proxy;
pub mod roots;
pub mod sandbox;
pub mod server;
pub mod services;
pub mod store;
pub mod target;
pub mod text;
pub mod web;

/// The version printed by `agent-vault version` and sent by the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
