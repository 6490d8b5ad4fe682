//! `agent-vault migrate-db`: an SQLite instance with vaults, credentials, services, agents,
//! proposals and request logs, copied into an empty PostgreSQL database and served from there
//! with every credential injected as before.

use serde_json::Value;

use crate::broker::{Rig, each_auth_type_injected};
use crate::harness::{TestHome, http};
use crate::postgres::{MASTER, rig_with_master};

#[test]
fn an_sqlite_instance_moves_to_postgres_and_serves_as_before() {
    // The instance on SQLite, with something in every table that matters.
    let home = TestHome::on_sqlite();
    let rig = rig_with_master(home);
    each_auth_type_injected(&rig);
    rig.home.run(&["vault", "create", "second"]).ok();
    rig.home
        .run(&[
            "vault",
            "credential",
            "set",
            "--vault",
            "second",
            "OTHER=SENTINEL-other-55",
        ])
        .ok();
    let invite = rig
        .home
        .run(&["agent", "invite", "bot", "--vault", "default:proxy"])
        .ok();
    let redeem_url = invite
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("curl -sS -X POST "))
        .unwrap_or_else(|| panic!("no redeem command in:\n{invite}"))
        .to_owned();
    let redeemed: Value = http().post(&redeem_url).send().unwrap().json().unwrap();
    let agent_token = redeemed["agent_token"].as_str().unwrap().to_owned();
    let agent_proxies = |rig: &Rig| {
        crate::replicas::through_as(
            rig.mitm,
            &format!("{agent_token}:default"),
            &rig.ca,
            &rig.https("/bearer"),
        )
        .0
    };
    assert_eq!(agent_proxies(&rig), 200);
    rig.home
        .run(&[
            "vault",
            "proposal",
            "create",
            "--credential",
            "WANTED_KEY",
            "-m",
            "please",
        ])
        .ok();
    let logs_before = rig.home.run(&["vault", "logs", "--json"]).ok().stdout;
    let Rig {
        home,
        server,
        upstream,
        mitm,
        token,
        ca,
    } = rig;

    let url = crate::testpg::fresh_database_url();
    // The server must be stopped first.
    home.run(&["migrate-db", "--to", &url])
        .fails_with("server is running");
    let api = server.url.rsplit(':').next().unwrap().to_owned();
    drop(server);
    home.run(&["migrate-db", "--to", "mysql://x"])
        .fails_with("PostgreSQL URL");

    let dry = home.run(&["migrate-db", "--to", &url, "--dry-run"]).ok();
    assert!(dry.stdout.contains("credentials"), "{dry}");
    assert!(dry.stdout.contains("Nothing was written"), "{dry}");
    crate::testpg::server()
        .psql_count(
            &url,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .map(|n| assert_eq!(n, 0, "--dry-run wrote to the target"))
        .unwrap();

    let done = home.run(&["migrate-db", "--to", &url]).ok();
    assert!(done.stdout.contains("Copied"), "{done}");
    // A second run finds the target no longer empty.
    home.run(&["migrate-db", "--to", &url])
        .fails_with("not empty");

    // Served from PostgreSQL: move the SQLite file aside so nothing can read it.
    std::fs::rename(
        home.state().join("agent-vault.db"),
        home.state().join("moved-away.db"),
    )
    .unwrap();
    let home = home.with_database(&url);
    let bundle = home.path().join("upstream-cas.pem");
    let server = home.start_server(
        &["--port", &api, "--mitm-port", &mitm.to_string()],
        "",
        &[
            ("SSL_CERT_FILE", bundle.to_str().unwrap()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
            ("AGENT_VAULT_MASTER_PASSWORD", MASTER),
        ],
    );
    let rig = Rig {
        home,
        server,
        upstream,
        mitm,
        token,
        ca,
    };
    // The old token, the old CA (the fetched root still verifies), every credential.
    each_auth_type_injected(&rig);
    let other = rig
        .home
        .run(&["vault", "credential", "get", "--vault", "second", "OTHER"])
        .ok();
    assert_eq!(other.stdout.trim(), "SENTINEL-other-55");
    // The agent's own token still proxies.
    assert_eq!(agent_proxies(&rig), 200);
    let proposals = rig.home.run(&["vault", "proposal", "list"]).ok().stdout;
    assert!(
        proposals.contains("please") || proposals.contains("WANTED_KEY"),
        "{proposals}"
    );
    let logs_after = rig.home.run(&["vault", "logs", "--json"]).ok().stdout;
    let count = |text: &str| {
        serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(Vec::len)
                    .or_else(|| v["requests"].as_array().map(Vec::len))
            })
            .unwrap_or(0)
    };
    assert!(
        count(&logs_after) >= count(&logs_before) && count(&logs_before) > 0,
        "{logs_before}\n{logs_after}"
    );
}
