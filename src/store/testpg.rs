//! A throwaway PostgreSQL server for tests (std only: the e2e harness includes this file too).
//!
//! One server per test binary, started on first use from Debian's `postgresql` package
//! (`initdb` + `postgres` from /usr/lib/postgresql/*/bin) in a temporary directory, on its own
//! loopback port, without durability (fsync off: tests need speed, not crash safety). Each test
//! gets a database of its own. A watchdog shell stops the server and removes the directory when
//! the test process ends however it ends (panic, abort, kill), since statics never drop.
//! PostgreSQL refuses to run as root, so under root (CI) the server runs as `nobody`.
//!
//! A second server, [`tls_server`], runs with `ssl=on` and a certificate for `127.0.0.1` and
//! `localhost` signed by a CA minted for the run (rcgen), whose PEM is at
//! [`TestPostgres::ca_file`].

#![allow(dead_code, clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct TestPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    next_db: AtomicUsize,
    /// The CA that signed the server's certificate (PEM), when it serves TLS.
    pub ca_file: Option<PathBuf>,
}

static SERVER: OnceLock<TestPostgres> = OnceLock::new();
static TLS_SERVER: OnceLock<TestPostgres> = OnceLock::new();

/// The binary's server, started on first use. Panics with what to install when PostgreSQL is
/// missing: these tests are part of the suite, not optional.
pub fn server() -> &'static TestPostgres {
    SERVER.get_or_init(|| TestPostgres::start(false).unwrap_or_else(|e| panic!("{e}")))
}

/// The binary's TLS server (`ssl=on`, a certificate from a throwaway CA), started on first use.
pub fn tls_server() -> &'static TestPostgres {
    TLS_SERVER.get_or_init(|| TestPostgres::start(true).unwrap_or_else(|e| panic!("{e}")))
}

/// Writes a throwaway CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and
/// localhost (`server.crt`, `server.key`) into `dir`.
fn mint_tls(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let err = |e: rcgen::Error| format!("cannot mint the test PostgreSQL certificate: {e}");
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "agent-vault test PostgreSQL CA");
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(2);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(err)?;
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(2);
    let leaf = leaf.signed_by(&key, &issuer).map_err(err)?;
    let write = |name: &str, body: String, mode: u32| -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
    };
    write("ca.pem", ca_cert.pem(), 0o644)?;
    write("server.crt", leaf.pem(), 0o644)?;
    // PostgreSQL refuses a key others may read.
    write("server.key", key.serialize_pem(), 0o600)?;
    if is_root() {
        run(
            Command::new("chown")
                .arg("nobody:nogroup")
                .arg(dir.join("server.crt"))
                .arg(dir.join("server.key")),
            "chown of the test PostgreSQL key",
        )?;
    }
    Ok(())
}

/// A URL to a new, empty database on the binary's server.
pub fn fresh_database_url() -> String {
    server().fresh_database()
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL tests need Debian's `postgresql` package (initdb and postgres under \
         /usr/lib/postgresql/*/bin): apt-get install postgresql (.ci/run installs it)"
            .to_owned()
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `cmd` as it must run: as `nobody` when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        cmd.arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl TestPostgres {
    fn start(tls: bool) -> Result<Self, String> {
        let bin = bin_dir()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("agent-vault-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if is_root() {
            run(
                Command::new("chown").arg("nobody:nogroup").arg(&dir),
                "chown of the PostgreSQL test directory",
            )?;
        }
        let data = dir.join("data");
        let port = free_port();
        // The watchdog first, so even a failed initdb leaves nothing behind.
        let script = format!(
            r#"
            trap '' INT
            while kill -0 {parent} 2>/dev/null; do
              if [ -s '{dir}/postmaster.started' ] && ! kill -0 "$(cat '{dir}/postmaster.started')" 2>/dev/null; then break; fi
              sleep 0.3
            done
            if [ -s '{dir}/postmaster.started' ]; then
              pid=$(cat '{dir}/postmaster.started'); kill -QUIT "$pid" 2>/dev/null
              for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            fi
            rm -rf '{dir}'
            "#,
            parent = std::process::id(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;

        run(
            as_server_user(&bin.join("initdb"))
                .current_dir(&dir)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]),
            "initdb",
        )?;
        let mut ssl_args = Vec::new();
        if tls {
            mint_tls(&dir)?;
            for (name, value) in [
                ("ssl", "on".to_owned()),
                (
                    "ssl_cert_file",
                    dir.join("server.crt").display().to_string(),
                ),
                ("ssl_key_file", dir.join("server.key").display().to_string()),
            ] {
                ssl_args.push("-c".to_owned());
                ssl_args.push(format!("{name}={value}"));
            }
        }
        let log = std::fs::File::create(dir.join("postgres.log"))
            .map_err(|e| format!("cannot create the PostgreSQL log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = as_server_user(&bin.join("postgres"))
            .current_dir(&dir)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=400",
                "-c",
                "shared_buffers=16MB",
            ])
            .args(&ssl_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        // setpriv execs, so this is the postmaster's pid.
        std::fs::write(dir.join("postmaster.started"), child.id().to_string())
            .map_err(|e| e.to_string())?;
        let server = Self {
            port,
            ca_file: tls.then(|| dir.join("ca.pem")),
            dir,
            bin,
            next_db: AtomicUsize::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if server.psql("postgres", "SELECT 1").is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(server.dir.join("postgres.log")).unwrap_or_default();
                return Err(format!("the test PostgreSQL did not come up: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one SQL command through `psql` as the superuser.
    pub fn psql(&self, database: &str, sql: &str) -> Result<(), String> {
        run(
            Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                ])
                .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]),
            "psql",
        )
    }

    /// The single number `sql` returns, run on the database at `url` (one of ours).
    pub fn psql_count(&self, url: &str, sql: &str) -> Result<i64, String> {
        let database = url.rsplit('/').next().unwrap_or("postgres");
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("psql: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// A new, empty database: its URL.
    pub fn fresh_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} STRATEGY FILE_COPY"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}
