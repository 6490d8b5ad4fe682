//! A services document (YAML from `vault service set -f`, JSON from the API): any text is
//! read or refused without a panic; what is read validates, writes back to YAML that reads
//! the same, and matches requests without a panic.
#![no_main]

use agent_vault::services::{Service, normalize_and_validate, parse_yaml, select_index, to_yaml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, u16, &str)| {
    let (document, host, port, path) = input;
    let mut read: Vec<Vec<Service>> = Vec::new();
    if let Ok(services) = parse_yaml(document) {
        let yaml = to_yaml("fuzz", &services).expect("read services write back");
        assert_eq!(
            parse_yaml(&yaml).expect("written services read back"),
            services
        );
        read.push(services);
    }
    if let Ok(mut services) = serde_json::from_str::<Vec<Service>>(document)
        && normalize_and_validate(&mut services).is_ok()
    {
        read.push(services);
    }
    for services in read {
        if let Some(index) = select_index(&services, host, port, path) {
            assert!(index < services.len());
        }
    }
});
