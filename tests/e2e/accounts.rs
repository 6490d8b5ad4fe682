//! Accounts through the CLI and the API: owner bootstrap, verification, login, password
//! change, deletion, and the API's error shape.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Server, TestHome, http};

fn register(home: &TestHome, server: &Server, email: &str, password: &str) -> crate::harness::Run {
    home.register(server, email, password)
}

fn me_status(server: &Server, token: &str) -> u16 {
    http()
        .get(format!("{}/v1/auth/me", server.url))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn later_users_verify_with_a_code_the_owner_can_read() {
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    register(&owner, &server, "owner@example.com", "owner-password").ok();

    let bob = TestHome::new();
    let run = register(&bob, &server, "bob@example.com", "bob-password").ok();
    assert!(
        run.stdout.contains("auth verify --email bob@example.com"),
        "{run}"
    );
    assert!(
        !bob.state().join("session.json").exists(),
        "not logged in before verifying"
    );

    bob.login(&server, "bob@example.com", "bob-password")
        .fails_with("not verified");
    bob.login(&server, "bob@example.com", "wrong-password")
        .fails_with("invalid email or password");

    let info = owner
        .run(&["owner", "user", "info", "bob@example.com"])
        .ok();
    assert!(info.stdout.contains("Status:   pending"), "{info}");
    let code = info
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Verification code: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("owner sees the code")
        .to_owned();
    assert_eq!(code.len(), 6);

    bob.verify(&server, "bob@example.com", "000000x", "bob-password")
        .fails_with("invalid or expired verification code");
    bob.verify(&server, "bob@example.com", &code, "bob-password")
        .ok();
    let whoami = bob.run(&["account", "whoami"]).ok();
    assert!(
        whoami.stdout.contains("bob@example.com") && whoami.stdout.contains("Role:     member")
    );
    // A member sees only themselves.
    bob.run(&["owner", "user", "info", "owner@example.com"])
        .fails_with("only the instance owner");
    bob.run(&["owner", "user", "info"]).ok();
}

#[test]
fn registration_squatting_does_not_take_over_the_account() {
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    register(&owner, &server, "owner@example.com", "owner-password").ok();
    // An attacker registers the victim's address first, as often as a registration makes a
    // code (so the victim's own registration makes none), then the victim registers.
    let attacker = TestHome::new();
    for _ in 0..3 {
        register(
            &attacker,
            &server,
            "victim@example.com",
            "attacker-password",
        )
        .ok();
    }
    let victim = TestHome::new();
    register(&victim, &server, "victim@example.com", "victim-password").ok();
    // Every code went to the victim's address (here the owner relays one): the code proves
    // the address, and the account takes the password given with it.
    let code = owner.verification_code("victim@example.com");
    victim
        .verify(&server, "victim@example.com", &code, "victim-password")
        .ok();
    // The account carries the victim's password, not the attacker's.
    attacker
        .login(&server, "victim@example.com", "attacker-password")
        .fails_with("invalid email or password");
    victim
        .login(&server, "victim@example.com", "victim-password")
        .ok();
}

#[test]
fn an_invite_link_does_not_take_over_a_registration_waiting_for_its_code() {
    use crate::api::Api;
    use serde_json::json;
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    register(&owner, &server, "owner@example.com", "owner-password").ok();
    let api = Api::new(&server.url);
    let owner_token = owner.session_token();
    let eve = api.add_user(&owner_token, "eve@example.com", json!([]));
    // Carol registers; before she verifies, Eve invites her address and accepts the link.
    register(
        &TestHome::new(),
        &server,
        "carol@example.com",
        "carol-password",
    )
    .ok();
    let invite = api.ok(
        "POST",
        "/v1/users/invites",
        Some(&eve),
        Some(json!({"email": "carol@example.com"})),
    );
    let token = invite["invite_link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let accept = |password: &str| {
        api.call(
            "POST",
            &format!("/v1/invites/{token}/accept"),
            None,
            Some(json!({"password": password})),
        )
    };
    let (status, body) = accept("eve-chosen-password");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("auth verify"),
        "{body}"
    );
    // Carol's code still works, with her password; then the invite is hers to accept.
    let code = owner.verification_code("carol@example.com");
    let carol = TestHome::new();
    carol
        .verify(&server, "carol@example.com", &code, "carol-password")
        .ok();
    assert_eq!(accept("eve-chosen-password").0, 401);
    assert_eq!(accept("carol-password").0, 200);
    carol
        .login(&server, "carol@example.com", "carol-password")
        .ok();
    // Wrong guesses void a registration's codes; the invite still does not take it over.
    register(
        &TestHome::new(),
        &server,
        "dave@example.com",
        "dave-password",
    )
    .ok();
    for _ in 0..6 {
        let (status, _) = api.call(
            "POST",
            "/v1/auth/verify",
            None,
            Some(json!({"email": "dave@example.com", "code": "000000", "password": "eve-chosen-password"})),
        );
        assert_ne!(status, 200);
    }
    let invite = api.ok(
        "POST",
        "/v1/users/invites",
        Some(&eve),
        Some(json!({"email": "dave@example.com"})),
    );
    let link = invite["invite_link"].as_str().unwrap();
    let (status, body) = api.call(
        "POST",
        &format!("/v1/invites/{}/accept", link.rsplit('/').next().unwrap()),
        None,
        Some(json!({"password": "eve-chosen-password"})),
    );
    assert_eq!(status, 409, "{body}");
}

#[test]
fn adding_an_account_made_from_someone_elses_invite_link_says_its_address_is_unproven() {
    use crate::api::Api;
    use serde_json::json;
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    let api = Api::new(&server.url);
    let owner_token = api.register_owner("owner@example.com");
    // Anyone signed in may invite any address and is shown the link: Eve accepts her own.
    let eve = api.add_user(&owner_token, "eve@example.com", json!([]));
    api.add_user(&eve, "bob@example.com", json!([]));
    let added = api.ok(
        "POST",
        "/v1/vaults/default/users",
        Some(&owner_token),
        Some(json!({"email": "bob@example.com", "role": "member"})),
    );
    let caution = added["caution"].as_str().unwrap_or_default();
    assert!(
        caution.contains("eve@example.com") && caution.contains("proves nothing"),
        "{added}"
    );
    // An account made from the adder's own invite carries no caution.
    api.add_user(&owner_token, "dan@example.com", json!([]));
    let added = api.ok(
        "POST",
        "/v1/vaults/default/users",
        Some(&owner_token),
        Some(json!({"email": "dan@example.com", "role": "member"})),
    );
    assert!(added.get("caution").is_none(), "{added}");
    // One address however its accents were typed: a decomposed `é` is the same account.
    api.add_user(&owner_token, "ren\u{e9}e@example.com", json!([]));
    let (status, body) = api.call(
        "POST",
        "/v1/users/invites",
        Some(&eve),
        Some(json!({"email": "rene\u{301}e@example.com"})),
    );
    assert_eq!(status, 409, "{body}");
}

#[test]
fn one_person_has_at_most_twenty_pending_user_invites_and_fifty_a_day() {
    use crate::api::Api;
    use serde_json::json;
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let api = Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    let member = api.add_user(&owner, "member@example.com", json!([]));
    let invite = |token: &str, n: usize| {
        let body = json!({"email": format!("person{n}@example.com")});
        api.call("POST", "/v1/users/invites", Some(token), Some(body))
    };
    for n in 0..20 {
        assert_eq!(invite(&member, n).0, 201, "invite {n}");
    }
    let (status, body) = invite(&member, 20);
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_pending")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("revoke"),
        "{body}"
    );
    // Owners are not bound; a revoked invite frees a slot.
    assert_eq!(invite(&owner, 21).0, 201);
    let revoke_one = || {
        let listed = api.ok(
            "GET",
            "/v1/users/invites?status=pending",
            Some(&member),
            None,
        );
        let suffix = listed["invites"][0]["token_suffix"]
            .as_str()
            .unwrap()
            .to_owned();
        api.ok(
            "DELETE",
            &format!("/v1/users/invites/{suffix}"),
            Some(&member),
            None,
        );
    };
    revoke_one();
    assert_eq!(invite(&member, 22).0, 201);

    // Revoking and inviting again emails again: at most 50 a day (21 made so far).
    for n in 23..52 {
        revoke_one();
        assert_eq!(invite(&member, n).0, 201, "invite {n}");
    }
    revoke_one();
    let (status, body) = invite(&member, 52);
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_invites")),
        "{body}"
    );
    assert_eq!(invite(&owner, 53).0, 201, "owners are not bound");
}

#[test]
fn an_invite_accepted_by_an_existing_account_never_lowers_its_role() {
    use crate::api::Api;
    use serde_json::json;
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    register(&owner, &server, "owner@example.com", "owner-password").ok();
    let api = Api::new(&server.url);
    let owner_token = owner.session_token();
    // An invite into "default" as member waits while Yan registers and is made admin there.
    let invite = api.ok(
        "POST",
        "/v1/users/invites",
        Some(&owner_token),
        Some(
            json!({"email": "yan@example.com", "vaults": [{"vault": "default", "role": "member"}]}),
        ),
    );
    let link = invite["invite_link"].as_str().unwrap().to_owned();
    TestHome::new().register_verified(&server, &owner, "yan@example.com", "yan-password");
    api.ok(
        "POST",
        "/v1/vaults/default/users",
        Some(&owner_token),
        Some(json!({"email": "yan@example.com", "role": "admin"})),
    );
    let yan = TestHome::new();
    yan.accept_invite(&link, "yan-password").ok();
    let members = api.ok("GET", "/v1/vaults/default/users", Some(&owner_token), None);
    let yan_role = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "yan@example.com" && m["status"] == "active")
        .map(|m| m["role"].clone());
    assert_eq!(yan_role, Some(json!("admin")), "{members}");
}

#[test]
fn change_password_ends_every_session() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    register(&home, &server, "owner@example.com", "owner-password").ok();
    let first = home.session_token();
    let other = TestHome::new();
    other
        .login(&server, "owner@example.com", "owner-password")
        .ok();
    let second = other.session_token();

    home.run_with(
        &["account", "change-password", "--password-stdin"],
        "wrong-current\nnew-password-1\n",
        &[],
    )
    .fails_with("current password is incorrect");
    home.run_with(
        &["account", "change-password", "--password-stdin"],
        "owner-password\nshort\n",
        &[],
    )
    .fails_with("at least 8");
    home.run_with(
        &["account", "change-password", "--password-stdin"],
        "owner-password\nnew-password-1\n",
        &[],
    )
    .ok();
    let third = home.session_token();
    assert_eq!(me_status(&server, &first), 401);
    assert_eq!(me_status(&server, &second), 401);
    assert_eq!(me_status(&server, &third), 200);
    home.run(&["account", "whoami"]).ok();
    other
        .login(&server, "owner@example.com", "new-password-1")
        .ok();
}

#[test]
fn account_delete_refuses_owners_and_removes_members() {
    let owner = TestHome::new();
    let server = owner.start_server(&[], "", &[]);
    register(&owner, &server, "owner@example.com", "owner-password").ok();
    owner
        .run(&["account", "delete", "--yes"])
        .fails_with("owners cannot delete their own account");
    owner.run(&["account", "delete"]).fails_with("--yes");

    let member = TestHome::new();
    member.register_verified(&server, &owner, "m@example.com", "member-password");
    let token = member.session_token();
    // The only admin of a vault stays until someone else is admin there.
    member.run(&["vault", "create", "mine"]).ok();
    member
        .run(&["account", "delete", "--yes"])
        .fails_with("last admin of vault \"mine\"");
    owner
        .run(&["owner", "user", "remove", "m@example.com"])
        .fails_with("last admin of vault \"mine\"");
    owner.run(&["owner", "vault", "join", "mine"]).ok();
    member.run(&["account", "delete", "--yes"]).ok();
    assert!(!member.state().join("session.json").exists());
    assert_eq!(me_status(&server, &token), 401);
    owner
        .run(&["owner", "user", "info", "m@example.com"])
        .fails_with("no user");
}

#[test]
fn cli_login_is_private_and_bound_to_its_server() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    register(&home, &server, "owner@example.com", "owner-password").ok();
    let mode = std::fs::metadata(home.state().join("session.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // The saved token is never sent to another server: nothing even connects to it.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    stranger.set_nonblocking(true).unwrap();
    let elsewhere = format!("http://127.0.0.1:{}", stranger.local_addr().unwrap().port());
    home.run(&["account", "whoami", "--address", &elsewhere])
        .fails_with(&format!("not logged in to {elsewhere}"));
    assert!(
        stranger.accept().is_err(),
        "the CLI connected to another server"
    );

    // One login per server; --address picks the server and its login.
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let by_name = format!("http://localhost:{port}");
    home.run(&["account", "whoami", "--address", &by_name])
        .fails_with("not logged in to");
    let second_home = TestHome::new();
    let second = second_home.start_server(&[], "", &[]);
    register(&home, &second, "other@example.com", "other-password").ok();
    let me = home.run(&["account", "whoami"]).ok();
    assert!(
        me.stdout.contains("other@example.com"),
        "the last login is current: {me}"
    );
    let first = home
        .run(&["account", "whoami", "--address", &server.url])
        .ok();
    assert!(first.stdout.contains("owner@example.com"), "{first}");
    home.run_with(
        &[
            "auth",
            "login",
            "--address",
            &by_name,
            "--email",
            "owner@example.com",
            "--password-stdin",
        ],
        "owner-password\n",
        &[],
    )
    .ok();
    let named = home.run(&["account", "whoami", "--address", &by_name]).ok();
    assert!(named.stdout.contains("owner@example.com"), "{named}");

    // Logging out of one server keeps the others.
    home.run(&["auth", "logout", "--address", &second.url]).ok();
    home.run(&["account", "whoami", "--address", &second.url])
        .fails_with("not logged in to");
    home.run(&["account", "whoami", "--address", &server.url])
        .ok();
    home.run(&["auth", "logout", "--address", &server.url]).ok();
    home.run(&["auth", "logout", "--address", &by_name]).ok();
    home.run(&["account", "whoami"]).fails_with("not logged in");
    assert!(!home.state().join("session.json").exists());
}

#[test]
fn register_and_login_input_errors() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    // Before any account exists, login says how to start.
    home.login(&server, "a@example.com", "whatever-pass")
        .fails_with("auth register");
    home.run_with(
        &[
            "auth",
            "register",
            "--address",
            &server.url,
            "--email",
            "",
            "--password-stdin",
        ],
        "password-1\n",
        &[],
    )
    .fails_with("email is empty");
    home.run_with(
        &[
            "auth",
            "register",
            "--address",
            &server.url,
            "--email",
            "not-an-email",
            "--password-stdin",
        ],
        "password-1\n",
        &[],
    )
    .fails_with("not a valid email");
    // The server applies the same rule: a display-name or bracketed form of an address would
    // be a second account for one mailbox.
    for email in ["<a@example.com>", "a@example_host.com"] {
        let refused = http()
            .post(format!("{}/v1/auth/register", server.url))
            .json(&serde_json::json!({"email": email, "password": "password-1"}))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 400, "{email}");
        let body = refused.text().unwrap();
        assert!(body.contains("not a valid email"), "{email}: {body}");
    }
    // Nor may an address print like another's: invisible characters, lookalike letters.
    for (email, named) in [
        ("a\u{200B}@example.com", "print like another address"),
        ("\u{0430}@example.com", "print like another address"),
        ("\u{1D41A}@example.com", "print like another address"),
    ] {
        let refused = http()
            .post(format!("{}/v1/auth/register", server.url))
            .json(&serde_json::json!({"email": email, "password": "password-1"}))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 400, "{email}");
        let body = refused.text().unwrap();
        assert!(body.contains(named), "{email}: {body}");
    }
    home.run_with(
        &[
            "auth",
            "register",
            "--address",
            &server.url,
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        "short\n",
        &[],
    )
    .fails_with("at least 8 characters");
    home.run(&[
        "auth",
        "register",
        "--address",
        &server.url,
        "--password-stdin",
    ])
    .fails_with("--email is required");
    // Nothing listens there (a fixed port such as 9 may be in use on a developer's machine).
    let nowhere = format!("http://127.0.0.1:{}", crate::harness::free_port());
    home.run(&[
        "auth",
        "login",
        "--address",
        &nowhere,
        "--email",
        "a@example.com",
        "--password-stdin",
    ])
    .fails_with("password");
    home.run_with(
        &[
            "auth",
            "login",
            "--address",
            &nowhere,
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        "password-1\n",
        &[],
    )
    .fails_with("cannot reach the agent-vault server");
    // Nothing above created an account or a login.
    assert!(!home.state().join("session.json").exists());
    let status: serde_json::Value = http()
        .get(format!("{}/v1/status", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["needs_first_user"], true);
}

#[test]
fn api_errors_share_one_shape_and_never_echo_secrets() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let client = http();
    let check = |response: reqwest::blocking::Response, status: u16, code: &str| {
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body: serde_json::Value = response.json().unwrap();
        assert_eq!(body["error"], code, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(!message.is_empty());
        assert!(!message.contains("SENTINEL"), "{message}");
        body
    };
    check(
        client
            .get(format!("{}/v1/nope", server.url))
            .send()
            .unwrap(),
        404,
        "not_found",
    );
    check(
        client
            .get(format!("{}/v1/auth/me", server.url))
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    check(
        client
            .get(format!("{}/v1/auth/me", server.url))
            .bearer_auth("av_sess_bogus")
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    check(
        client
            .post(format!("{}/v1/auth/register", server.url))
            .body(r#"{"email":"a@b.co","password":["SENTINEL-x"]}"#)
            .send()
            .unwrap(),
        400,
        "invalid_request",
    );
    check(
        client
            .post(format!("{}/v1/auth/register", server.url))
            .body("{not json")
            .send()
            .unwrap(),
        400,
        "invalid_request",
    );
    check(
        client
            .delete(format!("{}/health", server.url))
            .send()
            .unwrap(),
        405,
        "method_not_allowed",
    );
    // Last: the server closes the connection after refusing an oversized body unread.
    check(
        client
            .post(format!("{}/v1/auth/login", server.url))
            .body(vec![b'x'; 2 * 1024 * 1024])
            .send()
            .unwrap(),
        413,
        "payload_too_large",
    );
}
