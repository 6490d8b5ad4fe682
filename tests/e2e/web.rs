//! The web UI over plain HTTP (curl with a cookie jar): the headers every page carries, the
//! session cookie's flags and its server-side end, CSRF on every form, escaping, and the
//! same permission rules as the JSON API. (`browser` drives the same pages in Chromium.)

use crate::harness::{Cli, CurlBrowser, OWNER_EMAIL, OWNER_PASSWORD, TestHome, http};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn pages_are_framed_by_strict_headers_and_a_session_cookie() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let url = &server.url;
    let browser = CurlBrowser::new();

    let (status, headers, page) = browser.get_with_headers(&format!("{url}/setup"));
    assert_eq!(status, 200, "{page}");
    let csp = header(&headers, "content-security-policy").join(" ");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline"),
        "no inline script or style: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&headers, "x-frame-options"), ["DENY"]);
    assert_eq!(header(&headers, "cache-control"), ["no-store"]);
    assert_eq!(header(&headers, "referrer-policy"), ["no-referrer"]);
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "nothing inline"
    );
    let (_, api_headers, _) = browser.get_with_headers(&format!("{url}/v1/status"));
    let api_csp = header(&api_headers, "content-security-policy").join(" ");
    assert!(!api_csp.contains("unsafe-inline"), "{api_csp}");

    // The owner account from the first-run form: a session cookie, HttpOnly and Lax.
    let dump = tempfile::tempdir().unwrap();
    let headers_file = dump.path().join("h");
    let csrf = crate::harness::csrf_of(&page).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-o", "/dev/null", "-D"])
        .arg(&headers_file)
        .args(["-b", &format!("av_csrf={csrf}")])
        .args(["--data-urlencode", &format!("csrf={csrf}")])
        .args(["--data-urlencode", &format!("email={OWNER_EMAIL}")])
        .args(["--data-urlencode", &format!("password={OWNER_PASSWORD}")])
        .args(["--data-urlencode", &format!("confirm={OWNER_PASSWORD}")])
        .arg(format!("{url}/setup"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let raw = std::fs::read_to_string(&headers_file).unwrap();
    let session = raw
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: av_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie:\n{raw}"));
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        session.contains("Max-Age=43200"),
        "a working day: {session}"
    );
    assert!(!session.contains("Secure"), "plain http here: {session}");
    let token = session
        .split_once('=')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The cookie is not a credential for the JSON API (no cross-site use of it there).
    let api = http()
        .get(format!("{url}/v1/vaults"))
        .header("Cookie", format!("av_session={token}"))
        .send()
        .unwrap();
    assert_eq!(api.status(), 401);

    // Signed in with that cookie; signing out ends the session on the server, so the old
    // cookie value no longer works anywhere.
    let vaults = || {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
            ])
            .args(["-b", &format!("av_session={token}")])
            .arg(format!("{url}/vaults"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(vaults().starts_with("200"), "signed in");
    let bearer = http()
        .get(format!("{url}/v1/vaults"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(bearer.status(), 200, "the same login token, as a bearer");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-b", &format!("av_session={token}")])
        .args([
            "--data-urlencode",
            &format!("csrf={}", derive_csrf_from_page(url, &token)),
        ])
        .arg(format!("{url}/logout"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "303");
    let after = vaults();
    assert!(
        after.starts_with("303") && after.contains("/login"),
        "{after}"
    );
    let bearer = http()
        .get(format!("{url}/v1/vaults"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(bearer.status(), 401, "the session is gone on the server");
}

/// The CSRF token a signed-in page carries for `token`'s session.
fn derive_csrf_from_page(url: &str, token: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-b",
            &format!("av_session={token}"),
        ])
        .arg(format!("{url}/account"))
        .output()
        .unwrap();
    crate::harness::csrf_of(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

#[test]
fn cookies_are_secure_behind_https_and_forms_need_their_token() {
    let home = TestHome::new();
    let server = home.start_server(
        &[],
        "",
        &[("AGENT_VAULT_ADDR", "https://vault.example.com")],
    );
    // Links say https://vault.example.com (a TLS proxy in front); the test talks to the port.
    let url = server.api_url.clone();
    assert_eq!(server.url, "https://vault.example.com");
    let browser = CurlBrowser::new();
    let (_, headers, _) = browser.get_with_headers(&format!("{url}/login"));
    let cookies = header(&headers, "set-cookie").join("\n");
    assert!(
        cookies.contains("av_csrf=") && cookies.contains("Secure"),
        "{cookies}"
    );
    // Every state-changing route refuses a form without its token, before doing anything.
    for path in [
        "/setup",
        "/login",
        "/register",
        "/verify",
        "/vaults",
        "/logout",
        "/agents/invite",
        "/manage/access",
        "/invite/av_uinv_SENTINELinvite42",
    ] {
        let (status, page) =
            browser.post_without_csrf(&format!("{url}{path}"), &[("email", "x@example.com")]);
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("Form refused"), "{path}: {page}");
    }
    // And with a wrong one.
    let (status, _) = browser.post_without_csrf(
        &format!("{url}/setup"),
        &[("csrf", "not-the-token"), ("email", "x@example.com")],
    );
    assert_eq!(status, 403);
    let (_, setup) = browser.get(&format!("{url}/setup"));
    assert!(
        setup.contains("No account exists yet"),
        "nothing was created by the refused forms"
    );
    // The refusals are logged, but never the token an invite link carries.
    let (_, log) = server.stop_with("TERM");
    assert!(log.contains("/invite/av_uinv_…"), "{log}");
    assert!(!log.contains("SENTINELinvite42"), "{log}");
}

#[test]
fn pages_follow_the_api_rules_and_escape_what_they_show() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let owner = Cli::owner(home, &server);
    owner
        .run(&[
            "vault",
            "service",
            "add",
            "--host",
            "api.example.com",
            "--auth-type",
            "bearer",
            "--token-key",
            "API_TOKEN",
            "--description",
            "<script>alert(1)</script>",
        ])
        .ok();
    let bob = owner.add_person("bob@example.com", &["default:member"], "bob-password");
    drop(bob);

    let browser = CurlBrowser::new();
    browser.get(&format!("{}/login", server.url));
    let (status, _) = browser.post(
        &format!("{}/login", server.url),
        &[("email", "bob@example.com"), ("password", "bob-password")],
    );
    assert_eq!(status, 303);
    let (status, services) = browser.get(&format!("{}/vaults/default/services", server.url));
    assert_eq!(status, 200, "{services}");
    assert!(
        services.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{services}"
    );
    assert!(!services.contains("<script>alert"), "{services}");
    assert!(
        services.contains("needs the admin role"),
        "members see no service forms"
    );

    // A member posting the admin-only form anyway gets the API's refusal.
    let (status, _) = browser.post(
        &format!("{}/vaults/default/services", server.url),
        &[
            ("host", "evil.example.com"),
            ("auth_type", "passthrough"),
            ("enabled", "on"),
        ],
    );
    assert_eq!(status, 303);
    let (_, after) = browser.get(&format!("{}/vaults/default/services", server.url));
    assert!(after.contains("needs the admin role on vault"), "{after}");
    assert!(!after.contains("evil.example.com"), "{after}");
    // Owner-only pages are refused to a member.
    let (status, manage) = browser.get(&format!("{}/manage", server.url));
    assert_eq!(status, 403, "{manage}");
    // A member may set a credential, and its value never comes back in a page.
    browser.get(&format!("{}/vaults/default/credentials", server.url));
    let (status, _) = browser.post(
        &format!("{}/vaults/default/credentials", server.url),
        &[("key", "API_TOKEN"), ("value", "web-SENTINEL-value")],
    );
    assert_eq!(status, 303);
    let (_, credentials) = browser.get(&format!("{}/vaults/default/credentials", server.url));
    assert!(credentials.contains("API_TOKEN saved"), "{credentials}");
    assert!(!credentials.contains("web-SENTINEL-value"));
    assert_eq!(
        owner
            .run(&["vault", "credential", "get", "API_TOKEN"])
            .ok()
            .stdout,
        "web-SENTINEL-value"
    );
}
