//! The seed CLI reference is the contract: every command exists with its flags.

use crate::harness::TestHome;

/// Each command of the seed with the flags its help must show.
pub const SURFACE: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "--host",
            "--port",
            "--detach",
            "-d",
            "--password-stdin",
            "--mitm-port",
            "--log-level",
        ],
    ),
    ("server stop", &[]),
    ("ca fetch", &["--output", "-o", "--address"]),
    (
        "auth register",
        &["--address", "--email", "--password-stdin"],
    ),
    ("auth login", &["--address", "--email", "--password-stdin"]),
    ("account whoami", &[]),
    ("account change-password", &["--password-stdin"]),
    ("account delete", &[]),
    ("vault create", &[]),
    ("vault list", &[]),
    ("vault delete", &["--yes"]),
    ("vault rename", &[]),
    ("vault use", &[]),
    ("vault current", &[]),
    ("vault init", &["--vault"]),
    ("vault discover", &["--json"]),
    (
        "vault run",
        &[
            "--address",
            "--role",
            "--ttl",
            "--no-mitm",
            "--sandbox",
            "--image",
            "--mount",
            "--keep",
            "--no-firewall",
            "--home-volume-shared",
        ],
    ),
    ("vault token", &["--address", "--role", "--ttl"]),
    ("vault user add", &["--vault", "--role"]),
    ("vault user list", &["--vault"]),
    ("vault user remove", &["--vault"]),
    ("vault user set-role", &["--vault", "--role"]),
    ("user list", &[]),
    ("user invite", &["--role", "--vault"]),
    ("user invite list", &["--status"]),
    ("user invite revoke", &[]),
    ("vault service list", &["--vault"]),
    ("vault service set", &["--vault", "-f"]),
    (
        "vault service add",
        &[
            "--vault",
            "-f",
            "--host",
            "--description",
            "--auth-type",
            "--token-key",
            "--username-key",
            "--password-key",
            "--api-key-key",
            "--api-key-header",
            "--api-key-prefix",
            "--disabled",
        ],
    ),
    ("vault service enable", &["--vault"]),
    ("vault service disable", &["--vault"]),
    ("vault service remove", &["--vault", "--yes"]),
    ("vault service clear", &["--vault", "--yes"]),
    ("vault credential list", &["--vault", "--reveal"]),
    ("vault credential get", &["--vault"]),
    ("vault credential set", &["--vault"]),
    ("vault credential delete", &["--vault"]),
    ("vault creds list", &["--vault", "--reveal"]),
    ("vault creds get", &["--vault"]),
    ("vault creds set", &["--vault"]),
    ("vault creds delete", &["--vault"]),
    ("vault proposal list", &["--vault", "--status"]),
    ("vault proposal show", &["--vault"]),
    (
        "vault proposal create",
        &[
            "--vault",
            "--file",
            "-f",
            "--host",
            "--description",
            "--auth-type",
            "--token-key",
            "--username-key",
            "--password-key",
            "--api-key-key",
            "--api-key-header",
            "--api-key-prefix",
            "--credential",
            "--message",
            "-m",
            "--user-message",
            "--json",
        ],
    ),
    ("vault proposal approve", &["--vault", "--yes"]),
    ("vault proposal reject", &["--vault", "--reason"]),
    ("vault proposal review", &["--vault"]),
    (
        "agent invite",
        &[
            "--role",
            "--vault",
            "--invite-ttl",
            "--address",
            "--token-only",
        ],
    ),
    ("agent invite list", &["--status"]),
    ("agent invite revoke", &[]),
    ("agent list", &[]),
    ("agent info", &[]),
    ("agent delete", &[]),
    ("agent rotate", &[]),
    ("agent rename", &[]),
    ("agent set-role", &["--role"]),
    ("vault agent list", &["--vault"]),
    ("vault agent add", &["--vault", "--role"]),
    ("vault agent remove", &["--vault"]),
    ("vault agent set-role", &["--vault", "--role"]),
    ("owner user list", &[]),
    ("owner user info", &[]),
    ("owner user remove", &[]),
    ("owner user set-role", &["--role"]),
    ("owner vault list", &[]),
    ("owner vault join", &[]),
    ("owner vault delete", &[]),
    ("owner config get", &[]),
    ("owner config set", &["--invite-only", "--allowed-domains"]),
    ("master-password set", &[]),
    ("master-password change", &[]),
    ("master-password remove", &[]),
    ("catalog", &["--json", "--address"]),
    ("owner email test", &["--to", "--address"]),
    ("owner reset", &["--yes"]),
    ("version", &[]),
];

#[test]
fn every_seed_command_exists_with_its_flags() {
    let home = TestHome::new();
    let mut problems = Vec::new();
    for (command, flags) in SURFACE {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let run = home.run(&args);
        let text = format!("{}{}", run.stdout, run.stderr);
        if !run.status.success() || !text.to_lowercase().contains("usage") {
            problems.push(format!("{command}: --help failed"));
            continue;
        }
        let tokens: Vec<&str> = text
            .split_whitespace()
            .map(|t| t.trim_matches(|c| ",[]=<>".contains(c)))
            .collect();
        for flag in *flags {
            if !tokens.contains(flag) {
                problems.push(format!("{command}: help lacks {flag}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn version_prints_the_crate_version_commit_and_build_date() {
    let run = TestHome::new().run(&["version"]).ok();
    assert!(
        run.stdout
            .starts_with(&format!("agent-vault {}", env!("CARGO_PKG_VERSION")))
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    if !head.is_empty() {
        assert!(run.stdout.contains(&format!("commit:  {head}")), "{run}");
    }
    let today = chrono::Utc::now().date_naive().to_string();
    let built = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("built:"))
        .unwrap_or_else(|| panic!("{run}"))
        .trim()
        .to_owned();
    assert!(
        built.len() == 10 && built <= today,
        "build date {built} (today {today})"
    );
}

/// The (method, path) pairs the first column of `docs/api.md`'s tables names, each
/// `{parameter}` written `{}`. A cell may list several (`` `GET`/`PUT /a` ``, `` `GET /a`,
/// `POST …/b` ``, where `…` stands for the previous path up to where the rest takes over),
/// with optional parts in brackets (`/a[/{b}]`, `[?status=]`).
fn documented_routes() -> std::collections::BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let mut routes = std::collections::BTreeSet::new();
    for row in doc.lines().filter_map(|l| l.strip_prefix("| `")) {
        let cell = row.split(" | ").next().unwrap_or_default();
        let (mut methods, mut previous) = (Vec::new(), String::new());
        // Backticked spans: the odd pieces between backticks.
        for span in format!("`{cell}").split('`').skip(1).step_by(2) {
            let Some((method, path)) = span.split_once(' ') else {
                methods.push(span.to_owned());
                continue;
            };
            methods.push(method.to_owned());
            let mut path = crate::hostile::unnamed(&path.replace("\\|", "|"));
            if let Some(at) = path.find("[?") {
                let end = path[at..].find(']').map_or(path.len(), |e| at + e + 1);
                path.replace_range(at..end, "");
            }
            if let Some(rest) = path.strip_prefix('…') {
                let first = rest.split('/').nth(1).unwrap_or_default();
                let at = previous
                    .rfind(&format!("/{first}"))
                    .unwrap_or(previous.len());
                path = format!("{}{rest}", &previous[..at]);
            }
            let mut variants = vec![path.clone()];
            if let (Some(open), Some(close)) = (path.find('['), path.find(']')) {
                let (before, optional, after) =
                    (&path[..open], &path[open + 1..close], &path[close + 1..]);
                variants = vec![
                    format!("{before}{after}"),
                    format!("{before}{optional}{after}"),
                ];
            }
            for variant in &variants {
                for method in &methods {
                    routes.insert((method.clone(), variant.clone()));
                }
            }
            previous = variants.pop().unwrap_or_default();
            methods.clear();
        }
    }
    routes
}

/// docs/api.md stays the whole reference: it names every route the API router declares, and
/// only routes the server has.
#[test]
fn the_api_reference_lists_every_route() {
    let api = crate::hostile::declared_routes("src/api/mod.rs");
    let web = crate::hostile::declared_routes("src/web/mod.rs");
    let documented = documented_routes();
    let missing: Vec<_> = api.difference(&documented).collect();
    let unknown: Vec<_> = documented
        .iter()
        .filter(|route| !api.contains(*route) && !web.contains(*route))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/api.md lacks {missing:?}; it names routes the server does not have: {unknown:?}"
    );
    assert!(documented.len() > 60, "{documented:?}");
}
