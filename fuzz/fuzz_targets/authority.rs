//! A CONNECT target, a `host[:port]` and an address URL: any text parses or is refused without
//! a panic, and what parses has canonical forms that parse back to the same target.
#![no_main]

use agent_vault::target::{Scheme, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for parsed in [
        Target::connect(text),
        Target::from_authority(Scheme::Https, text),
        Target::from_authority(Scheme::Http, text),
        Target::from_url(text),
    ]
    .into_iter()
    .flatten()
    {
        let again = Target::from_authority(parsed.scheme(), parsed.authority())
            .expect("a target's authority parses");
        assert_eq!(again, parsed);
        let connect = Target::connect(parsed.host_port()).expect("host:port parses");
        assert_eq!(
            (connect.host(), connect.port()),
            (parsed.host(), parsed.port())
        );
        let url = format!("{}://{}/", parsed.scheme().as_str(), parsed.authority());
        assert_eq!(Target::from_url(&url).expect("its URL parses"), parsed);
        assert!(parsed.uri("/").is_ok());
    }
});
