//! The server on PostgreSQL (`AGENT_VAULT_DATABASE_URL`) rather than its SQLite file: a
//! representative slice of the suite on a real PostgreSQL the harness starts (the whole suite
//! runs there with `AGENT_VAULT_TEST_DATABASE=postgres`).

use serde_json::Value;

use crate::broker::{BEARER, Rig, each_auth_type_injected, header};
use crate::harness::{TestHome, http};
use crate::upstream::Upstream;

pub const MASTER: &str = "pg-master-password";

/// A broker rig with a master password in `home` (on whichever database the home names).
pub fn rig_with_master(home: TestHome) -> Rig {
    let upstream = Upstream::start();
    let mitm = crate::harness::free_port();
    let bundle = home.path().join("upstream-cas.pem");
    std::fs::copy(&upstream.ca_file, &bundle).unwrap();
    // A fixed API port, so a restarted server is the one the CLI logged in to.
    let api = crate::harness::free_port();
    let server = home.start_server(
        &["--port", &api.to_string(), "--mitm-port", &mitm.to_string()],
        "",
        &[
            ("SSL_CERT_FILE", bundle.to_str().unwrap()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
            ("AGENT_VAULT_MASTER_PASSWORD", MASTER),
        ],
    );
    Rig::on_server(home, server, mitm, upstream)
}

#[test]
fn data_lives_in_postgres_not_in_the_home() {
    let rig = rig_with_master(TestHome::on_postgres());
    each_auth_type_injected(&rig);

    let health: Value = http()
        .get(format!("{}/health", rig.server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["database"]["engine"], "postgres", "{health}");
    assert_eq!(health["database"]["reachable"], true, "{health}");
    let state = rig.home.state();
    assert!(
        !state.join("agent-vault.db").exists(),
        "a PostgreSQL server must not create the SQLite file"
    );

    // Metrics: the owner's token only; the proxied requests, cache and pool are counted.
    let url = format!("{}/metrics", rig.server.url);
    assert_eq!(http().get(&url).send().unwrap().status(), 401);
    let metrics = http()
        .get(&url)
        .bearer_auth(rig.home.session_token())
        .send()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().unwrap();
    for needle in [
        "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"2xx\",error=\"\"}",
        "agent_vault_proxied_request_duration_seconds_bucket",
        "agent_vault_broker_cache_lookups_total{cache=\"snapshot\",result=\"hit\"}",
        "agent_vault_process_start_time_seconds",
        "agent_vault_request_log_dropped_records_total 0\n",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let pool: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("agent_vault_db_pool_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pool gauge in:\n{text}"));
    assert!(pool >= 1.0, "{text}");
    assert!(!text.contains(BEARER), "a credential in the metrics");

    // The request log went to PostgreSQL too.
    let logs = rig.home.run(&["vault", "logs", "--json"]).ok().stdout;
    assert!(logs.contains("/bearer"), "{logs}");
}

#[test]
fn restart_unlocks_the_same_database_and_refuses_a_wrong_password() {
    let Rig {
        home,
        server,
        upstream,
        mitm,
        token,
        ca,
    } = rig_with_master(TestHome::on_postgres());
    drop(server);

    let wrong = home.try_start_server(
        &["--mitm-port", &mitm.to_string()],
        "",
        &[("AGENT_VAULT_MASTER_PASSWORD", "not-the-password")],
    );
    assert!(wrong.is_err(), "a wrong master password must not unlock");
    let Err(bad_age) = home.try_start_server(
        &["--mitm-port", &mitm.to_string()],
        "",
        &[
            ("AGENT_VAULT_MASTER_PASSWORD", MASTER),
            ("AGENT_VAULT_CACHE_MAX_AGE", "30s"),
        ],
    ) else {
        panic!("a cache age that is not whole seconds must stop the start");
    };
    assert!(
        bad_age.stderr.contains("AGENT_VAULT_CACHE_MAX_AGE"),
        "{bad_age}"
    );

    let bundle = home.path().join("upstream-cas.pem");
    let server = home.start_server(
        &["--mitm-port", &mitm.to_string()],
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
    // The token minted before the restart, the CA and the sealed credential all came back
    // from PostgreSQL.
    let echo = rig.echo(&[], "/bearer");
    assert_eq!(
        header(&echo, "authorization"),
        vec![format!("Bearer {BEARER}")]
    );

    // The database goes away: /health says so with 503, for the load balancer.
    let url = rig.home.database_url.clone().unwrap();
    let name = url.rsplit('/').next().unwrap();
    crate::testpg::server()
        .psql("postgres", &format!("DROP DATABASE {name} WITH (FORCE)"))
        .unwrap();
    let health = http()
        .get(format!("{}/health", rig.server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().unwrap();
    assert_eq!(body["database"]["reachable"], false, "{body}");
}

/// A PEM CA that signed nothing the test servers hold.
fn stranger_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let path = dir.join("stranger-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

#[test]
fn tls_to_postgres_verified_against_its_ca_and_every_connection_encrypted() {
    let pg = crate::testpg::tls_server();
    let ca = pg.ca_file.clone().unwrap();
    let db = pg.fresh_database();
    let url = format!("{db}?sslmode=verify-full&sslrootcert={}", ca.display());
    let rig = rig_with_master(TestHome::on_database(&url));
    each_auth_type_injected(&rig);

    // The pool's connections and the LISTEN one: all encrypted, none plain.
    let encrypted = |ssl: bool| {
        pg.psql_count(
            &db,
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND {}s.ssl",
                if ssl { "" } else { "NOT " }
            ),
        )
        .unwrap()
    };
    let listening = pg
        .psql_count(
            &db,
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND s.ssl AND a.query LIKE 'LISTEN%'",
        )
        .unwrap();
    assert!(
        encrypted(true) >= 2,
        "the broker's connections are not encrypted"
    );
    assert_eq!(encrypted(false), 0, "a broker connection is in the clear");
    assert_eq!(listening, 1, "the LISTEN connection is not encrypted");

    // A CA that did not sign the server's certificate: the start is refused, saying why.
    let stranger = stranger_ca(rig.home.path());
    let wrong = TestHome::on_database(&format!(
        "{db}?sslmode=verify-full&sslrootcert={}",
        stranger.display()
    ));
    let Err(refused) = wrong.try_start_server(&[], "", &[("AGENT_VAULT_MASTER_PASSWORD", MASTER)])
    else {
        panic!("a server certificate from an unknown CA must stop the start");
    };
    assert!(
        refused.stderr.contains("not signed by a trusted CA")
            && refused.stderr.contains("sslrootcert"),
        "{refused}"
    );

    drop(rig);

    // A name the certificate does not hold (dialled at 127.0.0.1 through `hostaddr`):
    // verify-full refuses it, naming the fix; verify-ca compares no name and accepts it.
    // `migrate-db` (same connector) copies a fresh SQLite instance over verify-ca.
    let elsewhere = |mode: &str| {
        format!(
            "{}?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            pg.fresh_database().replace("127.0.0.1", "db.invalid"),
            ca.display()
        )
    };
    let source = rig_with_master(TestHome::on_sqlite());
    let Rig { home, server, .. } = source;
    drop(server);
    let full = home
        .run(&["migrate-db", "--to", &elsewhere("verify-full")])
        .fails_with("does not name the host");
    assert!(full.stderr.contains("verify-ca"), "{full}");
    let copied = home
        .run(&["migrate-db", "--to", &elsewhere("verify-ca")])
        .ok();
    assert!(copied.stdout.contains("Copied"), "{copied}");
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start() {
    // sslmode=require against a server without TLS.
    let plain = crate::testpg::fresh_database_url();
    let home = TestHome::on_database(&format!("{plain}?sslmode=require"));
    let Err(refused) = home.try_start_server(&[], "", &[]) else {
        panic!("sslmode=require must refuse a server without TLS");
    };
    assert!(
        refused.stderr.contains("does not offer TLS") && refused.stderr.contains("sslmode"),
        "{refused}"
    );

    // An unknown mode and an unreadable CA file: named, with the fix, before any connection.
    for (query, needle) in [
        ("sslmode=verify", "sslmode=verify is not a mode"),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "sslrootcert=/nonexistent/ca.pem cannot be read",
        ),
    ] {
        let home = TestHome::on_database(&format!("{plain}?{query}"));
        let Err(refused) = home.try_start_server(&[], "", &[]) else {
            panic!("{query} must stop the start");
        };
        assert!(refused.stderr.contains(needle), "{query}: {refused}");
    }
}
