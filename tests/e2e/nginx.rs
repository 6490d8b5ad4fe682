//! A real nginx (Debian's `nginx-light`) as an upstream, started by the test on loopback
//! ports with a certificate minted at test time: one TLS port speaking HTTP/2 and HTTP/1.1
//! (ALPN), one TLS port speaking HTTP/1.1 only. `/echo` answers with what nginx saw (protocol,
//! `Host`, `Authorization`, `x-api-key`) as JSON; `/1k` is a static 1 KiB file (benchmarks).
//! The benchmark also runs a second nginx as a reverse proxy in front of the first.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::upstream::TestCert;

pub struct Nginx {
    pub ip: String,
    /// TLS, `http2` on: ALPN offers h2 and http/1.1.
    pub h2_port: u16,
    /// TLS, HTTP/1.1 only.
    pub h1_port: u16,
    /// PEM of the CA that signed nginx's certificate.
    pub ca_file: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

/// The nginx binary, or `None` when it is not installed (`.ci/run` installs `nginx-light`).
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ECHO: &str = r#"'{"proto":"$server_protocol","host":"$host","http_host":"$http_host","authorization":"$http_authorization","x_api_key":"$http_x_api_key","te":"$http_te"}'"#;

impl Nginx {
    pub fn start(ip: &str, workers: u32) -> Self {
        Self::launch(ip, workers, "", |d| {
            format!(
                "location = /echo {{ default_type application/json; return 200 {ECHO}; }}
    location / {{ root {d}/www; }}"
            )
        })
    }

    /// nginx as a TLS-terminating reverse proxy in front of `upstream`'s HTTP/1.1 port, adding
    /// `header` to every request: the work of a credential broker without its checks (the
    /// benchmark's reference). nginx speaks HTTP/1.1 to upstreams; it keeps those connections
    /// and reuses their TLS sessions.
    #[allow(dead_code)]
    pub fn reverse_proxy(ip: &str, workers: u32, upstream: &Nginx, header: (&str, &str)) -> Self {
        let (bundle, (name, value)) = (upstream.ca_file.display(), header);
        let upstreams = format!(
            "upstream origin {{ server {}:{}; keepalive 64; keepalive_requests 10000000; }}",
            upstream.ip, upstream.h1_port
        );
        Self::launch(ip, workers, &upstreams, |_| {
            format!(
                r#"location / {{
      proxy_pass https://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header {name} "{value}";
      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {bundle};
      proxy_ssl_name localhost;
    }}"#
            )
        })
    }

    /// Starts nginx with two TLS servers (one offering h2) whose `location`s `locations` makes
    /// from nginx's directory; `extra` goes in the `http` block.
    fn launch(ip: &str, workers: u32, extra: &str, locations: impl Fn(&str) -> String) -> Self {
        let bin =
            binary().expect("nginx is not installed; `apt-get install nginx-light` (.ci/run does)");
        let dir = tempfile::tempdir().unwrap();
        // Workers may run as an unprivileged user: they need to read the static files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let cert = TestCert::mint();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), &cert.ca_pem).unwrap();
        std::fs::write(path("leaf.pem"), &cert.leaf_pem).unwrap();
        std::fs::write(path("leaf.key"), &cert.key_pem).unwrap();
        std::fs::create_dir(path("www")).unwrap();
        std::fs::write(path("www/1k"), vec![b'a'; 1024]).unwrap();
        let (h2_port, h1_port) = (free_port(ip), free_port(ip));
        let d = dir.path().display().to_string();
        let locations = locations(&d);
        let server = |listen: &str| {
            format!(
                r#"
  server {{
    listen {listen};
    ssl_certificate {d}/leaf.pem;
    ssl_certificate_key {d}/leaf.key;
    ssl_session_cache shared:SSL:10m;
    {locations}
  }}"#
            )
        };
        let config = format!(
            r#"
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fastcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  {extra}
  {h2}
  {h1}
}}
"#,
            h2 = server(&format!("{ip}:{h2_port} ssl http2")),
            h1 = server(&format!("{ip}:{h1_port} ssl")),
        );
        std::fs::write(path("nginx.conf"), config).unwrap();
        let child = Command::new(bin)
            .args(["-p", &d, "-c"])
            .arg(path("nginx.conf"))
            .args(["-e"])
            .arg(path("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let nginx = Self {
            ip: ip.to_owned(),
            h2_port,
            h1_port,
            ca_file: path("ca.pem"),
            child,
            dir,
        };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.h2_port, self.h1_port] {
            while std::net::TcpStream::connect((self.ip.as_str(), port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx did not start: {}",
                    self.error_log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The directory nginx serves files from (the benchmark adds its own).
    #[allow(dead_code)]
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// The worker processes (children of the master), for the benchmark's CPU accounting.
    #[allow(dead_code)]
    pub fn worker_pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// nginx's error log, for assertion messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown; the master stops its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
