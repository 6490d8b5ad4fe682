//! The management surface through the CLI, as an operator scripts it: vaults, credentials,
//! members, invites, owner administration — with the refusals that must happen.

use std::process::Command;

use crate::harness::{Cli, TestHome};

#[test]
fn vaults_and_credentials_walk() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);

    owner.run(&["vault", "create", "payments"]).ok();
    owner
        .run(&["vault", "create", "Bad_Name"])
        .fails_with("not a valid vault name");
    owner
        .run(&["vault", "create", "payments"])
        .fails_with("already exists");
    let list = owner.run(&["vault", "list"]).ok();
    assert!(
        list.stdout.contains("default") && list.stdout.contains("payments"),
        "{list}"
    );

    // Resolution: flag > env > agent-vault.json (here or above) > active vault > default.
    assert_eq!(
        owner.run(&["vault", "current"]).ok().stdout.trim(),
        "default"
    );
    owner.run(&["vault", "use", "payments"]).ok();
    owner
        .run(&["vault", "use", "ghost"])
        .fails_with("does not exist");
    assert_eq!(
        owner.run(&["vault", "current"]).ok().stdout.trim(),
        "payments"
    );
    let project = owner.home.path().join("project");
    let nested = project.join("src/deep");
    std::fs::create_dir_all(&nested).unwrap();
    // A symlink in the file's place (a cloned repository could carry one) is not written
    // through.
    let elsewhere = owner.home.path().join("elsewhere.json");
    std::os::unix::fs::symlink(&elsewhere, project.join("agent-vault.json")).unwrap();
    owner
        .run_in(&project, &["vault", "init", "--vault", "default"], &[])
        .fails_with("is a symlink");
    assert!(!elsewhere.exists());
    std::fs::remove_file(project.join("agent-vault.json")).unwrap();
    owner
        .run_in(&project, &["vault", "init", "--vault", "default"], &[])
        .ok();
    let bound = std::fs::read_to_string(project.join("agent-vault.json")).unwrap();
    assert!(bound.contains("\"vault\": \"default\""), "{bound}");
    assert_eq!(
        owner
            .run_in(&nested, &["vault", "current"], &[])
            .ok()
            .stdout
            .trim(),
        "default"
    );
    let env = [("AGENT_VAULT_VAULT", "payments")];
    assert_eq!(
        owner
            .run_in(&nested, &["vault", "current"], &env)
            .ok()
            .stdout
            .trim(),
        "payments"
    );
    assert_eq!(
        owner
            .run_in(&nested, &["vault", "current", "--vault", "x"], &env)
            .ok()
            .stdout
            .trim(),
        "x"
    );
    owner
        .run(&["vault", "credential", "list", "--vault", "ghost"])
        .fails_with("does not exist");

    // Credentials in the active vault (payments): atomic set, pipe-friendly get.
    owner
        .run(&[
            "vault",
            "credential",
            "set",
            "A_KEY=one",
            "B_KEY=two=with=equals",
        ])
        .ok();
    let get = owner.run(&["vault", "creds", "get", "B_KEY"]).ok();
    assert_eq!(
        get.stdout, "two=with=equals",
        "value alone, no newline when piped"
    );
    owner
        .run(&["vault", "creds", "set", "GOOD_KEY=1", "bad-key=2"])
        .fails_with("is not a credential key");
    owner
        .run(&["vault", "creds", "get", "GOOD_KEY"])
        .fails_with("not set");
    owner
        .run(&["vault", "creds", "set", "=x"])
        .fails_with("has no key");
    owner
        .home
        .run_with(&["vault", "creds", "set", "PIPED_KEY"], "from-stdin\n", &[])
        .ok();
    assert_eq!(
        owner
            .run(&["vault", "creds", "get", "PIPED_KEY"])
            .ok()
            .stdout,
        "from-stdin"
    );
    let keys = owner.run(&["vault", "creds", "list"]).ok();
    assert!(
        keys.stdout.contains("A_KEY") && !keys.stdout.contains("one"),
        "{keys}"
    );
    let revealed = owner.run(&["vault", "creds", "list", "--reveal"]).ok();
    assert!(
        revealed.stdout.contains("A_KEY") && revealed.stdout.contains("one"),
        "{revealed}"
    );
    owner
        .run(&["vault", "creds", "delete", "A_KEY", "MISSING_KEY"])
        .fails_with("MISSING_KEY");
    owner.run(&["vault", "creds", "get", "A_KEY"]).ok();
    owner.run(&["vault", "creds", "delete", "A_KEY"]).ok();
    owner
        .run(&["vault", "creds", "get", "A_KEY"])
        .fails_with("not set");
    // The default vault is untouched by all this.
    let default_keys = owner
        .run(&["vault", "creds", "list", "--vault", "default"])
        .ok();
    assert!(
        default_keys.stdout.contains("No credentials"),
        "{default_keys}"
    );

    // Rename follows the active vault; the default vault is fixed.
    owner.run(&["vault", "rename", "payments", "billing"]).ok();
    assert_eq!(
        owner.run(&["vault", "current"]).ok().stdout.trim(),
        "billing"
    );
    owner
        .run(&["vault", "rename", "default", "other"])
        .fails_with("default vault cannot be renamed");
    owner
        .run(&["vault", "delete", "default", "--yes"])
        .fails_with("default vault cannot be deleted");
    owner
        .run(&["vault", "delete", "billing"])
        .fails_with("--yes");
    owner.run(&["vault", "delete", "billing", "--yes"]).ok();
    assert_eq!(
        owner.run(&["vault", "current"]).ok().stdout.trim(),
        "default"
    );
    let token = owner.run(&["vault", "token", "--vault", "default"]).ok();
    assert!(
        token.stdout.starts_with("av_sess_") && !token.stdout.ends_with('\n'),
        "{token}"
    );
    owner
        .run(&["vault", "token", "--ttl", "10"])
        .fails_with("out of range");
}

#[test]
fn invited_member_sees_only_their_vaults() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner.run(&["vault", "create", "secret-ops"]).ok();
    owner
        .run(&[
            "vault",
            "creds",
            "set",
            "SHARED_KEY=shared-value",
            "--vault",
            "default",
        ])
        .ok();

    let link = owner.invite("bob@example.com", &["default:member"]);
    let pending = owner
        .run(&["vault", "user", "list", "--vault", "default"])
        .ok();
    assert!(
        pending.stdout.contains("bob@example.com") && pending.stdout.contains("pending"),
        "{pending}"
    );
    let invites = owner
        .run(&["user", "invite", "list", "--status", "pending"])
        .ok();
    assert!(invites.stdout.contains("bob@example.com"), "{invites}");

    let bob = owner.accept(&link, "bob-password-1");
    let vaults = bob.run(&["vault", "list"]).ok();
    assert!(
        vaults.stdout.contains("default") && !vaults.stdout.contains("secret-ops"),
        "{vaults}"
    );
    assert_eq!(
        bob.run(&["vault", "creds", "get", "SHARED_KEY"])
            .ok()
            .stdout,
        "shared-value"
    );
    bob.run(&["vault", "delete", "default", "--yes"])
        .fails_with("needs the admin role");
    bob.run(&["vault", "creds", "list", "--vault", "secret-ops"])
        .fails_with("not a member");
    bob.run(&["vault", "delete", "secret-ops", "--yes"])
        .fails_with("not a member");
    bob.run(&[
        "vault",
        "user",
        "add",
        "owner@example.com",
        "--vault",
        "default",
    ])
    .fails_with("admin role");
    bob.run(&["owner", "user", "list"])
        .fails_with("only an instance owner");
    bob.run(&["owner", "config", "get"])
        .fails_with("only an instance owner");
    TestHome::new()
        .accept_invite(&link, "again-password")
        .fails_with("this invite is accepted");

    let members = owner
        .run(&["vault", "user", "list", "--vault", "default"])
        .ok();
    assert!(
        members.stdout.contains("bob@example.com    member  active"),
        "{members}"
    );
    owner
        .run(&[
            "vault",
            "user",
            "set-role",
            "bob@example.com",
            "--role",
            "admin",
            "--vault",
            "default",
        ])
        .ok();
    owner
        .run(&[
            "vault",
            "user",
            "set-role",
            "bob@example.com",
            "--role",
            "proxy",
            "--vault",
            "default",
        ])
        .fails_with("proxy role is for agents");
    owner
        .run(&[
            "vault",
            "user",
            "remove",
            "bob@example.com",
            "--vault",
            "default",
        ])
        .ok();
    bob.run(&["vault", "creds", "get", "SHARED_KEY"])
        .fails_with("not a member");
    owner
        .run(&[
            "vault",
            "user",
            "add",
            "bob@example.com",
            "--vault",
            "secret-ops",
            "--role",
            "member",
        ])
        .ok();
    owner
        .run(&[
            "vault",
            "user",
            "add",
            "bob@example.com",
            "--vault",
            "secret-ops",
        ])
        .fails_with("already a member");
    owner
        .run(&[
            "vault",
            "user",
            "add",
            "nobody@example.com",
            "--vault",
            "secret-ops",
        ])
        .fails_with("invite them");
    assert!(
        bob.run(&["vault", "list"])
            .ok()
            .stdout
            .contains("secret-ops")
    );
}

#[test]
fn invite_revocation_by_suffix() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let first = owner.invite("c1@example.com", &[]);
    owner.invite("c2@example.com", &[]);
    owner
        .run(&["user", "invite", "c1@example.com"])
        .fails_with("already pending");
    // Give both pending invites suffixes sharing their last 8 characters.
    let store =
        agent_vault::store::Store::open(&owner.home.state().join("agent-vault.db")).unwrap();
    store
        .write(|tx| {
            tx.execute("UPDATE user_invites SET token_suffix = 'aaaa00000000' WHERE email = 'c1@example.com'", ())?;
            tx.execute("UPDATE user_invites SET token_suffix = 'bbbb00000000' WHERE email = 'c2@example.com'", ())?;
            Ok(())
        })
        .unwrap();
    owner
        .run(&["user", "invite", "revoke", "1234"])
        .fails_with("at least the last 8");
    owner
        .run(&["user", "invite", "revoke", "00000000"])
        .fails_with("matches 2 pending invites");
    owner
        .run(&["user", "invite", "revoke", "ffffffff"])
        .fails_with("no pending invite");
    owner
        .run(&["user", "invite", "revoke", "aaaa00000000"])
        .ok();
    let list = owner.run(&["user", "invite", "list"]).ok();
    assert!(list.stdout.contains("revoked"), "{list}");
    // A revoked invite cannot be accepted.
    let other = TestHome::new();
    other
        .accept_invite(&first, "password-123")
        .fails_with("revoked");
}

#[test]
fn an_invite_expires_after_its_week_and_frees_its_address() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let stale_link = owner.invite("bob@example.com", &["default:member"]);
    // The week passes for this invite.
    let store =
        agent_vault::store::Store::open(&owner.home.state().join("agent-vault.db")).unwrap();
    store
        .write(|tx| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let changed = tx.execute(
                "UPDATE user_invites SET expires_at = ?1 WHERE email = 'bob@example.com'",
                [now - 1],
            )?;
            assert_eq!(changed, 1);
            Ok(())
        })
        .unwrap();

    let expired = owner
        .run(&["user", "invite", "list", "--status", "expired"])
        .ok();
    assert!(expired.stdout.contains("bob@example.com"), "{expired}");
    let pending = owner
        .run(&["user", "invite", "list", "--status", "pending"])
        .ok();
    assert!(!pending.stdout.contains("bob@example.com"), "{pending}");
    let members = owner
        .run(&["vault", "user", "list", "--vault", "default"])
        .ok();
    assert!(!members.stdout.contains("bob@example.com"), "{members}");
    TestHome::new()
        .accept_invite(&stale_link, "bob-password-1")
        .fails_with("this invite is expired; ask for a new one");

    // The address is free for a new invite, which works; the old link stays dead.
    let bob = owner.add_person("bob@example.com", &["default:member"], "bob-password-1");
    bob.run(&["vault", "creds", "list", "--vault", "default"])
        .ok();
    TestHome::new()
        .accept_invite(&stale_link, "bob-password-2")
        .fails_with("this invite is expired");
}

#[test]
fn an_account_made_after_its_invite_accepts_it_only_with_its_password() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner.run(&["vault", "create", "ops"]).ok();
    let link = owner.invite("bob@example.com", &["ops:member"]);
    // Bob signs up on his own before he opens the link.
    TestHome::new().register_verified(&server, &owner.home, "bob@example.com", "bob-own-password");

    // Whoever else holds the link (the inviter sees it too) cannot set a password with it.
    TestHome::new()
        .accept_invite(&link, "a-password-of-my-choosing")
        .fails_with(
            "bob@example.com already has an account; give its current password to accept the invite",
        );
    let pending = owner
        .run(&["user", "invite", "list", "--status", "pending"])
        .ok();
    assert!(pending.stdout.contains("bob@example.com"), "{pending}");
    TestHome::new()
        .login(&server, "bob@example.com", "a-password-of-my-choosing")
        .fails_with("invalid email or password");

    // Bob's own password accepts it, and he joins the invite's vault.
    let bob = owner.accept(&link, "bob-own-password");
    let whoami = bob.run(&["account", "whoami"]).ok();
    assert!(whoami.stdout.contains("bob@example.com"), "{whoami}");
    bob.run(&["vault", "creds", "list", "--vault", "ops"]).ok();
}

#[test]
fn owner_administration() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let bob = owner.accept(&owner.invite("bob@example.com", &[]), "bob-password-1");
    bob.run(&["vault", "create", "bobs"]).ok();

    let users = owner.run(&["owner", "user", "list"]).ok();
    assert!(
        users.stdout.contains("bob@example.com") && users.stdout.contains("active"),
        "{users}"
    );
    owner
        .run(&[
            "owner",
            "user",
            "set-role",
            "owner@example.com",
            "--role",
            "member",
        ])
        .fails_with("last owner");
    owner
        .run(&["owner", "user", "remove", "owner@example.com"])
        .fails_with("last owner");
    owner
        .run(&[
            "owner",
            "user",
            "set-role",
            "bob@example.com",
            "--role",
            "owner",
        ])
        .ok();
    bob.run(&["owner", "vault", "list"]).ok();
    owner
        .run(&[
            "owner",
            "user",
            "set-role",
            "bob@example.com",
            "--role",
            "member",
        ])
        .ok();

    let vaults = owner.run(&["owner", "vault", "list"]).ok();
    assert!(
        vaults.stdout.contains("bobs") && vaults.stdout.contains("default (default)"),
        "{vaults}"
    );
    owner
        .run(&["vault", "creds", "list", "--vault", "bobs"])
        .fails_with("owner vault join bobs");
    owner.run(&["owner", "vault", "join", "bobs"]).ok();
    owner
        .run(&["owner", "vault", "join", "bobs"])
        .fails_with("already a member");
    owner
        .run(&["vault", "creds", "list", "--vault", "bobs"])
        .ok();
    owner
        .run(&["owner", "vault", "delete", "default"])
        .fails_with("cannot be deleted");
    owner.run(&["owner", "vault", "delete", "bobs"]).ok();

    owner
        .run(&["owner", "config", "set"])
        .fails_with("nothing to change");
    owner
        .run(&[
            "owner",
            "config",
            "set",
            "--allowed-domains",
            "example.com, corp.io",
        ])
        .ok();
    let config = owner.run(&["owner", "config", "get"]).ok();
    assert!(config.stdout.contains("example.com, corp.io"), "{config}");
    owner
        .run(&["user", "invite", "x@other.org"])
        .fails_with("only accepts addresses at");
    let stranger = TestHome::new();
    stranger
        .run_with(
            &[
                "auth",
                "register",
                "--address",
                &server.url,
                "--email",
                "s@other.org",
                "--password-stdin",
            ],
            "password-123\n",
            &[],
        )
        .fails_with("restricted");
    owner
        .run(&[
            "owner",
            "config",
            "set",
            "--invite-only",
            "true",
            "--allowed-domains",
            "",
        ])
        .ok();
    stranger
        .run_with(
            &[
                "auth",
                "register",
                "--address",
                &server.url,
                "--email",
                "s@other.org",
                "--password-stdin",
            ],
            "password-123\n",
            &[],
        )
        .fails_with("invite-only");

    owner
        .run(&["owner", "user", "remove", "bob@example.com"])
        .ok();
    bob.run(&["account", "whoami"])
        .fails_with("invalid or has expired");
}

#[test]
fn owner_reset_wipes_only_its_own_instance() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner.run(&["vault", "creds", "set", "KEY=value"]).ok();
    let bob = owner.accept(&owner.invite("bob@example.com", &[]), "bob-password-1");
    bob.run(&["owner", "reset", "--yes"])
        .fails_with("only an instance owner");

    // Logged in to this server from a home that holds another instance's data: refused.
    let elsewhere = TestHome::new();
    drop(elsewhere.start_server(&[], "", &[]));
    elsewhere
        .login(&server, "owner@example.com", "owner-password")
        .ok();
    elsewhere
        .run(&["owner", "reset", "--yes"])
        .fails_with("does not keep its data");
    assert!(elsewhere.state().join("agent-vault.db").exists());

    owner.run(&["owner", "reset"]).fails_with("--yes");
    let reset = owner.run(&["owner", "reset", "--yes"]).ok();
    assert!(reset.stdout.contains("Instance reset"), "{reset}");
    let (status, _) = server.wait_exit();
    assert!(status.success());
    assert!(!owner.home.state().exists(), "data directory wiped");
    let fresh = owner.home.start_server(&[], "", &[]);
    let status: serde_json::Value = crate::harness::http()
        .get(format!("{}/v1/status", fresh.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["needs_first_user"], true);
}

#[test]
fn services_walk() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    let dir = owner.home.path().to_owned();

    let added = owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "api.stripe.com",
            "--auth-type",
            "bearer",
            "--token-key",
            "STRIPE_KEY",
        ])
        .ok();
    assert!(
        added.stderr.contains("no value yet for STRIPE_KEY"),
        "{added}"
    );
    assert!(!added.stderr.contains("other people run"), "{added}");
    // A wildcard right under a shared suffix is saved, with a warning naming the risk.
    let shared = owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "*.atlassian.net",
            "--auth-type",
            "bearer",
            "--token-key",
            "JIRA_TOKEN",
        ])
        .ok();
    assert!(
        shared
            .stderr
            .contains("*.atlassian.net matches every host under atlassian.net"),
        "{shared}"
    );
    owner
        .run(&["vault", "service", "remove", "*.atlassian.net", "--yes"])
        .ok();
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "api.example.com",
            "--auth-type",
            "api-key",
            "--api-key-key",
            "EX_KEY",
            "--api-key-header",
            "x-api-key",
            "--api-key-prefix",
            "Key ",
            "--description",
            "Example",
            "--disabled",
        ])
        .ok();
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "open.example.com",
            "--auth-type",
            "passthrough",
        ])
        .ok();
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "basic.example.com",
            "--auth-type",
            "basic",
            "--username-key",
            "U_KEY",
            "--password-key",
            "P_KEY",
        ])
        .ok();
    // Upsert by host: the same host again replaces, not duplicates.
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "api.stripe.com",
            "--auth-type",
            "bearer",
            "--token-key",
            "STRIPE_LIVE_KEY",
        ])
        .ok();
    let list = owner.run(&["vault", "service", "list"]).ok();
    assert_eq!(list.stdout.matches("api.stripe.com").count(), 1, "{list}");
    assert!(
        list.stdout.contains("STRIPE_LIVE_KEY") && list.stdout.contains("prefix: \"Key \""),
        "{list}"
    );
    assert!(list.stdout.contains("enabled: false"), "{list}");

    // Refusals with precise messages.
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "a.example.com",
            "--auth-type",
            "bearer",
        ])
        .fails_with("--token-key is required");
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "a.example.com",
            "--auth-type",
            "oauth",
        ])
        .fails_with("unknown auth type \"oauth\"");
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "https://a.example.com",
            "--auth-type",
            "passthrough",
        ])
        .fails_with("drop the scheme");
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "*.com",
            "--auth-type",
            "passthrough",
        ])
        .fails_with("*.com");
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "a.example.com",
            "--auth-type",
            "passthrough",
            "--token-key",
            "K",
        ])
        .fails_with("does not apply to passthrough");
    // Every credential flag that does not belong to the chosen type is refused, by name.
    for (kind, extra, flag) in [
        (
            "passthrough",
            &["--api-key-header", "X-Key"][..],
            "--api-key-header",
        ),
        (
            "passthrough",
            &["--api-key-prefix", "Key "],
            "--api-key-prefix",
        ),
        (
            "bearer",
            &["--token-key", "K", "--api-key-header", "X-Key"],
            "--api-key-header",
        ),
        (
            "bearer",
            &["--token-key", "K", "--username-key", "U"],
            "--username-key",
        ),
        (
            "basic",
            &[
                "--username-key",
                "U",
                "--password-key",
                "P",
                "--api-key-prefix",
                "B ",
            ],
            "--api-key-prefix",
        ),
        (
            "api-key",
            &["--api-key-key", "K", "--token-key", "T"],
            "--token-key",
        ),
    ] {
        let mut args = vec![
            "vault",
            "service",
            "add",
            "--host",
            "b.example.com",
            "--auth-type",
            kind,
        ];
        args.extend_from_slice(extra);
        owner
            .run(&args)
            .fails_with(&format!("{flag} does not apply to {kind} auth"));
        let mut proposal = vec![
            "vault",
            "proposal",
            "create",
            "--host",
            "b.example.com",
            "--auth-type",
            kind,
        ];
        proposal.extend_from_slice(extra);
        owner
            .run(&proposal)
            .fails_with(&format!("{flag} does not apply to {kind} auth"));
    }
    let listed = owner.run(&["vault", "service", "list"]).ok();
    assert!(
        !listed.stdout.contains("b.example.com"),
        "a refused service was saved: {listed}"
    );
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "a.example.com",
            "--auth-type",
            "bearer",
            "--token-key",
            "lower",
        ])
        .fails_with("UPPER_SNAKE_CASE");
    owner
        .run(&["vault", "service", "set"])
        .fails_with("-f FILE");

    // YAML: malformed documents name line and column; set -f replaces everything.
    std::fs::write(
        dir.join("bad.yaml"),
        "services:\n  - host: a.example.com\n    auth:\n      type: bearer\n     token: X\n",
    )
    .unwrap();
    owner
        .run(&["vault", "service", "set", "-f", "bad.yaml"])
        .fails_with("line 5");
    std::fs::write(
        dir.join("typo.yaml"),
        "services:\n  - host: a.example.com\n    auth: {type: basic, username: U_KEY, pasword: P_KEY}\n",
    )
    .unwrap();
    owner
        .run(&["vault", "service", "set", "-f", "typo.yaml"])
        .fails_with("unknown field `pasword`");
    owner
        .run(&["vault", "service", "set", "-f", "missing.yaml"])
        .fails_with("cannot read missing.yaml");
    let before = owner.run(&["vault", "service", "list"]).ok().stdout;
    assert!(
        before.contains("api.stripe.com"),
        "failed sets changed nothing"
    );
    std::fs::write(
        dir.join("services.yaml"),
        "vault: ignored\nservices:\n  - host: api.github.com\n    auth:\n      type: bearer\n      token: GITHUB_TOKEN\n  - host: api.github.com\n    path: /graphql\n    auth:\n      type: custom\n      headers:\n        X-Token: \"token {{ GITHUB_TOKEN }}\"\n",
    )
    .unwrap();
    owner
        .run(&["vault", "service", "set", "-f", "services.yaml"])
        .ok();
    let list = owner.run(&["vault", "service", "list"]).ok();
    assert!(
        !list.stdout.contains("api.stripe.com") && list.stdout.contains("/graphql"),
        "{list}"
    );
    assert!(list.stdout.starts_with("vault: default"), "{list}");
    // The listing reads back as input, unchanged.
    std::fs::write(dir.join("roundtrip.yaml"), &list.stdout).unwrap();
    owner
        .run(&["vault", "service", "set", "-f", "roundtrip.yaml"])
        .ok();
    assert_eq!(
        owner.run(&["vault", "service", "list"]).ok().stdout,
        list.stdout
    );
    // add -f upserts without dropping the others.
    std::fs::write(
        dir.join("two.yaml"),
        "services:\n  - host: api.openai.com/v1\n    auth: {type: bearer, token: OPENAI_API_KEY}\n  - host: api.openai.com/v2\n    auth: {type: bearer, token: OPENAI_API_KEY}\n",
    )
    .unwrap();
    owner
        .run(&["vault", "service", "add", "-f", "two.yaml"])
        .ok();
    let list = owner.run(&["vault", "service", "list"]).ok();
    assert!(
        list.stdout.contains("path: /v2") && list.stdout.contains("/graphql"),
        "{list}"
    );

    // Enable/disable are idempotent; a bare host shared by several services is ambiguous,
    // while a host naming one service exactly is not.
    owner
        .run(&["vault", "service", "disable", "api.openai.com"])
        .fails_with("matches 2 services");
    owner
        .run(&["vault", "service", "disable", "api.openai.com/v1"])
        .ok();
    owner
        .run(&["vault", "service", "disable", "api.openai.com/v1"])
        .ok();
    owner
        .run(&["vault", "service", "enable", "api.openai.com/v1"])
        .ok();
    owner
        .run(&["vault", "service", "disable", "api.github.com"])
        .ok();
    let list = owner.run(&["vault", "service", "list"]).ok();
    assert_eq!(list.stdout.matches("enabled: false").count(), 1, "{list}");
    owner
        .run(&["vault", "service", "remove", "nope.example.com", "--yes"])
        .fails_with("has no service");
    owner
        .run(&["vault", "service", "remove", "api.openai.com/v2"])
        .fails_with("--yes");
    owner
        .run(&["vault", "service", "remove", "api.openai.com/v2", "--yes"])
        .ok();
    owner
        .run(&["vault", "service", "clear"])
        .fails_with("--yes");
    owner.run(&["vault", "service", "clear", "--yes"]).ok();
    assert!(
        !owner
            .run(&["vault", "service", "list"])
            .ok()
            .stdout
            .contains("host:")
    );

    // The catalog needs no login.
    let anonymous = TestHome::new();
    let catalog = anonymous.run(&["catalog", "--address", &server.url]).ok();
    assert!(
        catalog.stdout.contains("api.anthropic.com") && catalog.stdout.contains("stripe"),
        "{catalog}"
    );
    let json = anonymous
        .run(&["catalog", "--json", "--address", &server.url])
        .ok();
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(parsed["services"].as_array().unwrap().len() >= 25);
}

#[test]
fn invite_link_works_in_a_browser() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner.run(&["vault", "create", "web"]).ok();
    let link = owner.invite("carol@example.com", &["web:admin"]);
    let browser = crate::harness::CurlBrowser::new();
    let (status, page) = browser.get(&link);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("carol@example.com")
            && page.contains("web</strong> (admin)")
            && page.contains("<form"),
        "{page}"
    );
    let (status, refused) = browser.post_without_csrf(&link, &[("password", "carol-password-1")]);
    assert_eq!(
        status, 403,
        "a form without its CSRF token is refused: {refused}"
    );
    let (_, short) = browser.post(&link, &[("password", "short")]);
    assert!(short.contains("at least 8"), "{short}");
    browser.get(&link);
    let (status, done) = browser.post(&link, &[("password", "carol-password-1")]);
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Invite accepted"), "{done}");
    assert!(!done.contains("carol-password-1"), "{done}");
    let carol = TestHome::new();
    carol
        .login(&server, "carol@example.com", "carol-password-1")
        .ok();
    assert!(carol.run(&["vault", "list"]).ok().stdout.contains("web"));
    // The browser is signed in as carol now; a used link says so.
    assert!(
        browser.get(&link).1.contains("accepted"),
        "a used link says so"
    );
    assert!(
        browser
            .get(&format!("{}/invite/av_uinv_nope", server.url))
            .1
            .contains("not valid")
    );
}

/// `vault service set` without `-f` on a terminal: the builder asks for the services, then
/// for each credential value the vault does not hold yet, without echo.
#[test]
fn the_interactive_builder_asks_for_missing_credentials() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner
        .run(&["vault", "credential", "set", "HELD=already-here"])
        .ok();
    let typed = "SENTINEL-typed-7d21";
    let steps = serde_json::json!([
        ["Host (", "api.example.com"],
        ["Auth type", "bearer"],
        ["holding the token", "HELD"],
        ["Host (", "basic.example.com"],
        ["Auth type", "basic"],
        ["holding the username", "NEW_USER"],
        ["holding the password", "NEW_PASS"],
        ["Host (", ""],
        ["Replace the vault's services", "y"],
        ["NEW_PASS: ", typed],
        ["NEW_USER: ", ""],
    ]);
    let cli = owner.home.command(&[]);
    let mut drive = Command::new("python3");
    drive
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/tools/pty_drive.py"
        ))
        .arg(serde_json::json!([crate::harness::BIN, "vault", "service", "set"]).to_string())
        .arg(steps.to_string())
        .env_clear()
        .envs(cli.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(owner.home.path());
    let run = crate::harness::run_command(drive, "");
    assert!(run.status.success(), "{run}");
    assert!(
        !run.stdout.contains("HELD:"),
        "asked for a value the vault holds: {run}"
    );
    assert!(!run.stdout.contains(typed), "the value was echoed: {run}");
    assert!(
        run.stdout.contains("Set NEW_PASS") && run.stdout.contains("NEW_USER"),
        "{run}"
    );
    let value = owner.run(&["vault", "credential", "get", "NEW_PASS"]).ok();
    assert_eq!(value.stdout, typed);
    owner
        .run(&["vault", "credential", "get", "NEW_USER"])
        .fails_with("NEW_USER");
    let listed = owner.run(&["vault", "service", "list"]).ok();
    assert!(listed.stdout.contains("basic.example.com"), "{listed}");
}
