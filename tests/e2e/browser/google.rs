//! "Sign in with Google" against a local OpenID provider the test starts (its own keys and
//! discovery document): the first account made this way is the owner; an unverified address
//! is refused; a callback the browser did not start is refused; invite-only is respected for
//! new accounts; the client secret never reaches the page, the server's output or its
//! environment.

use fantoccini::Locator;

use super::provider::{CLIENT_ID, CLIENT_SECRET, Provider};
use super::{Browser, run};
use crate::harness::{Server, TestHome};

/// "Sign in with Google", then the provider's page: the address, verified or not.
async fn through_provider(b: &Browser, issuer: &str, email: &str, verified: bool) {
    b.press("Sign in with Google").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(issuer),
        "the browser is at the provider"
    );
    b.fill("provider-email", email).await;
    if !verified {
        b.click("#provider-verified").await;
    }
    b.follow("#provider-continue").await;
}

/// A server with Google sign-in against `provider`, and `more` environment.
fn start_with_google(home: &TestHome, provider: &Provider, more: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("AGENT_VAULT_OAUTH_GOOGLE_CLIENT_ID", CLIENT_ID),
        ("AGENT_VAULT_OAUTH_GOOGLE_CLIENT_SECRET", CLIENT_SECRET),
        ("AGENT_VAULT_OAUTH_GOOGLE_ISSUER", provider.issuer.as_str()),
    ];
    env.extend_from_slice(more);
    home.start_server(&[], "", &env)
}

#[test]
fn google_sign_in_against_a_local_provider() {
    let provider = Provider::start();
    let home = TestHome::new();
    let server = start_with_google(&home, &provider, &[("AGENT_VAULT_RATELIMIT_LOCK", "true")]);
    // The secret went to the server through its hand-off pipe (the sign-ins below need it),
    // not left in the environment it runs with.
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    assert!(!crate::harness::contains(&environ, CLIENT_SECRET));
    let base = server.url.clone();
    let issuer = provider.issuer.clone();
    run(async move {
        let b = Browser::start().await;
        let sign_in =
            |email: &'static str, verified: bool| through_provider(&b, &issuer, email, verified);

        // No account yet: the first-run page offers Google too; that account is the owner.
        b.goto(&base).await;
        assert_eq!(b.path().await, "/setup");
        sign_in("gina@example.com", true).await;
        assert_eq!(b.path().await, "/vaults");
        assert!(b.notice().await.contains("Signed in as gina@example.com"));
        let page = b.source().await;
        assert!(
            page.contains("Manage instance"),
            "the first account is the owner"
        );
        assert!(!page.contains(CLIENT_SECRET));
        b.shot("20-google-owner").await;

        // Sign out and in again: the same account.
        b.press("Sign out").await;
        b.shot("21-login-with-google").await;
        sign_in("gina@example.com", true).await;
        assert_eq!(b.path().await, "/vaults");

        // The owner makes the instance invite-only from Manage instance.
        b.goto(&format!("{base}/manage")).await;
        b.click("input[name='invite_only']").await;
        b.press("Save").await;
        assert!(
            b.notice().await.contains("invite-only"),
            "{}",
            b.notice().await
        );
        // Retention is not pinned here: the owner changes it.
        b.fill("max-age", "48").await;
        b.press("Save retention").await;
        assert!(
            b.notice().await.contains("Retention saved"),
            "{}",
            b.notice().await
        );
        let manage = b.source().await;
        assert!(manage.contains("48 hours"));
        // The environment pins the rate limits: shown, but no profile picker.
        assert!(
            manage.contains("AGENT_VAULT_RATELIMIT_LOCK") && !manage.contains("id=\"rl-profile\""),
            "{manage}"
        );
        b.press("Sign out").await;

        // A new address is refused while the instance is invite-only.
        sign_in("newbie@example.com", true).await;
        assert!(
            b.source().await.contains("invite-only"),
            "{}",
            b.source().await
        );

        // An address the provider did not verify is refused.
        b.goto(&format!("{base}/login")).await;
        sign_in("gina@example.com", false).await;
        let refused = b.source().await;
        assert!(refused.contains("has not verified"), "{refused}");
        b.goto(&format!("{base}/vaults")).await;
        assert_eq!(b.path().await, "/login", "not signed in");

        // A callback this browser did not start (no sealed flow cookie, forged state).
        b.goto(&format!(
            "{base}/auth/google/callback?code=forged&state=forged"
        ))
        .await;
        assert!(
            b.source().await.contains("not started in this browser"),
            "{}",
            b.source().await
        );
        let heading = b
            .client
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(heading, "Google sign-in");
        b.close().await;
    });
    let (accepted, refused) = provider.exchanges();
    assert_eq!(
        accepted, 4,
        "four code exchanges reached the provider's token endpoint"
    );
    assert_eq!(
        refused, 0,
        "none was refused: PKCE, redirect URI and client secret matched"
    );
    let (_, output) = server.stop_with("TERM");
    assert!(
        !output.contains(CLIENT_SECRET),
        "the secret never reaches the server's output"
    );
}

/// An account made through an invite link has the password whoever held the link chose (the
/// inviter sees the link too). When the address's owner proves it with Google, that password
/// and its sessions end: the account is theirs alone.
#[test]
fn google_takes_an_invite_made_account_from_whoever_held_the_link() {
    let provider = Provider::start();
    let home = TestHome::new();
    let server = start_with_google(&home, &provider, &[]);
    let api = crate::api::Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    // The inviter accepts the invite themselves, choosing the password.
    let held = api.add_user(&owner, "cfo@example.com", serde_json::json!([]));
    let login = |password: &str| {
        api.call(
            "POST",
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"email": "cfo@example.com", "password": password})),
        )
        .0
    };
    assert_eq!(login("password-1"), 200, "the link holder's password works");
    let (base, issuer) = (server.url.clone(), provider.issuer.clone());
    run(async move {
        let b = Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        through_provider(&b, &issuer, "cfo@example.com", true).await;
        assert_eq!(b.path().await, "/vaults");
        b.close().await;
    });
    assert_eq!(
        login("password-1"),
        401,
        "the link holder's password still opens it"
    );
    let (status, _) = api.call("GET", "/v1/vaults", Some(&held), None);
    assert_eq!(status, 401, "the link holder's session outlived the proof");
    // The inviter's own account is untouched.
    let (status, _) = api.call("GET", "/v1/vaults", Some(&owner), None);
    assert_eq!(status, 200);
}
