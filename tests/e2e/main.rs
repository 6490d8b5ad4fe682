//! End-to-end tests: the real `agent-vault` binary, a real SQLite file in a temporary home,
//! real HTTP between CLI and server.

// Test code panics on purpose when something is off.
#![allow(clippy::unwrap_used)]

mod accounts;
mod agents;
mod api;
mod broker;
mod browser;
mod ceilings;
mod cli_input;
mod compose;
mod email;
mod hardening;
mod harness;
mod hostile;
mod install;
mod lifecycle;
mod listeners;
mod management;
mod migrate_db;
mod nginx;
mod permissions;
mod postgres;
mod proposals;
mod protocols;
mod ratelimits;
mod replicas;
mod sandbox;
mod surface;
#[path = "../../src/store/testpg.rs"]
mod testpg;
mod upstream;
mod web;
