//! Flags and settings read from people: any text is read or refused without a panic.
#![no_main]

use agent_vault::server::MitmPort;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(duration) = agent_vault::cli::duration::parse(text) {
        assert!(!duration.is_zero());
    }
    let _ = agent_vault::cli::duration::parse_seconds(text);
    if let Ok(window) = agent_vault::limits::config::parse_window(text) {
        assert!((1..=86_400).contains(&window.as_secs()));
    }
    let _ = agent_vault::ceilings::setting_secs(text, true);
    let _ = agent_vault::mail::message::parse_address(text);
    let _ = agent_vault::ops::proposals::parse_number(text);
    let _ = MitmPort::parse(text);
});
