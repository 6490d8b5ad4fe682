//! Network guard: every upstream dial the broker makes on an agent's behalf goes through here,
//! so an agent cannot use the broker to reach internal services or cloud metadata endpoints
//! (server-side request forgery).
//!
//! A dial resolves the name once, checks every resolved address against a [`NetworkPolicy`],
//! and connects to the checked address itself, so DNS rebinding between check and connect is
//! impossible. Cloud metadata endpoints are always refused; other special-purpose ranges only
//! with the operator's opt-in. IPv6 addresses carrying an IPv4 address (mapped, NAT64, 6to4,
//! …) are judged by the IPv4 address they lead to. Refusals name a range category, never the
//! addresses a name resolved to.
//!
//! This module depends only on [`crate::target`] (the parsed host it dials).

mod cidr;
mod dial;
mod policy;
mod ranges;

pub use cidr::{Cidr, CidrError};
pub use dial::{GuardError, connect, resolve_checked};
pub use policy::{ALLOW_PRIVATE_ENV, ALLOWLIST_ENV, Blocked, NetworkPolicy};
pub use ranges::Category;
