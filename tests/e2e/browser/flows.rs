//! An owner runs an instance from the browser alone: first run, a vault, a service from the
//! catalog and one by hand, a credential (never in the page source afterwards), an agent
//! invited from the Agents page that redeems its invite over HTTP and proxies a request, the
//! request on the Logs page, the agent's proposal approved on the Proposals tab, Manage
//! instance with the retention lock, a form posted without its CSRF token refused, and the
//! pages at phone width.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use super::{Browser, run};
use crate::harness::{OWNER_EMAIL, OWNER_PASSWORD, TestHome, http};
use crate::upstream::Upstream;

const SENTINEL: &str = "browser-credential-SENTINEL-5f2a";

#[test]
fn an_owner_runs_the_instance_from_a_browser() {
    let upstream = Upstream::start();
    let home = TestHome::new();
    let ca_file = upstream.ca_file.display().to_string();
    let server = home.start_server(
        &[],
        "",
        &[
            ("SSL_CERT_FILE", ca_file.as_str()),
            ("AGENT_VAULT_NETWORK_ALLOWLIST", "127.0.0.0/8"),
            ("AGENT_VAULT_LOGS_RETENTION_LOCK", "true"),
        ],
    );
    let base = server.url.clone();
    run(async move {
        let b = Browser::start().await;

        // First run: the owner account.
        b.goto(&base).await;
        assert_eq!(b.path().await, "/setup");
        b.shot("01-first-run").await;
        b.fill("email", OWNER_EMAIL).await;
        b.fill("password", OWNER_PASSWORD).await;
        b.fill("confirm", OWNER_PASSWORD).await;
        b.press("Create the owner account").await;
        assert_eq!(b.path().await, "/vaults");
        assert!(
            b.notice().await.contains("Owner account"),
            "{}",
            b.notice().await
        );

        // A vault.
        b.fill("name", "payments").await;
        b.press("Create vault").await;
        assert_eq!(b.path().await, "/vaults/payments/services");
        assert_eq!(b.heading().await, "Vault payments");

        // A service from the catalog.
        b.select("template", "openai").await;
        b.press("Use this template").await;
        b.shot("03-service-from-catalog").await;
        b.press("Save service").await;
        let notice = b.notice().await;
        assert!(
            notice.contains("api.openai.com") && notice.contains("OPENAI_API_KEY"),
            "{notice}"
        );

        // A service by hand for the test upstream.
        b.goto(&format!("{base}/vaults/payments/services/new"))
            .await;
        b.fill("host", &format!("127.0.0.1:{}/echo", upstream.https_port))
            .await;
        b.fill("name", "echo").await;
        b.select("auth_type", "bearer").await;
        b.fill("token", "ECHO_TOKEN").await;
        b.press("Save service").await;
        assert!(
            b.notice().await.contains("Set ECHO_TOKEN"),
            "{}",
            b.notice().await
        );
        b.shot("04-services").await;
        // Disable, enable and edit it from the list.
        let echo = format!("127.0.0.1:{}/echo", upstream.https_port);
        b.follow(&format!(
            "form[action='/vaults/payments/services/toggle']:has(input[value='{echo}']) button"
        ))
        .await;
        assert!(
            b.notice().await.contains("disabled"),
            "{}",
            b.notice().await
        );
        b.follow(&format!(
            "form[action='/vaults/payments/services/toggle']:has(input[value='{echo}']) button"
        ))
        .await;
        assert!(b.notice().await.contains("enabled"), "{}", b.notice().await);
        b.follow(&format!(
            "a[href*='edit?service='][href*='{}']",
            upstream.https_port
        ))
        .await;
        assert_eq!(
            b.client
                .find(Locator::Id("token"))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .as_deref(),
            Some("ECHO_TOKEN"),
            "the edit form shows the service"
        );
        b.fill("description", "The test upstream").await;
        b.press("Save service").await;
        assert!(b.source().await.contains("The test upstream"));

        // A credential: its value is never in the page source afterwards.
        b.press("Credentials").await;
        b.fill("key", "ECHO_TOKEN").await;
        b.fill("value", SENTINEL).await;
        b.press("Save credential").await;
        assert!(
            b.notice().await.contains("ECHO_TOKEN saved"),
            "{}",
            b.notice().await
        );
        let source = b.source().await;
        assert!(source.contains("ECHO_TOKEN"), "{source}");
        assert!(
            !source.contains(SENTINEL),
            "a value is never rendered unasked"
        );
        b.shot("05-credentials").await;
        // Revealed on request only, on its own page.
        b.follow("form[action='/vaults/payments/credentials/reveal'] button")
            .await;
        assert!(
            b.source().await.contains(SENTINEL),
            "the reveal shows the value"
        );
        b.goto(&format!("{base}/vaults/payments/credentials")).await;
        assert!(!b.source().await.contains(SENTINEL));

        // Invite an agent: the prompt, with the redeem command, and a copy button.
        b.goto(&format!("{base}/agents")).await;
        b.fill("agent-name", "bot").await;
        b.select("vault-0", "").await; // default
        b.select("vault-1", "proxy").await; // payments
        b.press("Create invite").await;
        let prompt = b
            .client
            .find(Locator::Id("agent-prompt"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let copy = b
            .client
            .find(Locator::Css("button[data-copy='agent-prompt']"))
            .await
            .unwrap();
        assert!(
            copy.is_displayed().await.unwrap(),
            "the script shows the copy button"
        );
        b.shot("06-agent-invite").await;
        let redeem_url = prompt
            .lines()
            .find_map(|l| l.trim().strip_prefix("curl -sS -X POST "))
            .unwrap_or_else(|| panic!("no redeem command in:\n{prompt}"))
            .to_owned();
        assert!(prompt.contains("payments (proxy)"), "{prompt}");

        // The agent redeems over plain HTTP and proxies a request.
        let (agent_token, echo) = tokio::task::spawn_blocking({
            let base = base.clone();
            let port = upstream.https_port;
            move || {
                let redeemed: Value = http().post(&redeem_url).send().unwrap().json().unwrap();
                let token = redeemed["agent_token"].as_str().unwrap().to_owned();
                let echo: Value = http()
                    .get(format!("{base}/proxy/127.0.0.1:{port}/echo/hello"))
                    .bearer_auth(&token)
                    .header("X-Vault", "payments")
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                (token, echo)
            }
        })
        .await
        .unwrap();
        // The upstream echoes the credential it got; the broker scrubs it on the way back (the
        // marker stands exactly for the service's value).
        assert_eq!(
            echo["headers"]["authorization"],
            json!(["Bearer [agent-vault:redacted]"]),
            "{echo}"
        );
        assert!(!echo.to_string().contains(SENTINEL), "{echo}");

        // The request on the Logs page, with the agent's name; filters narrow it.
        b.goto(&format!("{base}/vaults/payments/logs")).await;
        let logs = b.source().await;
        assert!(
            logs.contains("/echo/hello") && logs.contains("agent bot"),
            "{logs}"
        );
        assert!(!logs.contains(SENTINEL));
        b.shot("07-logs").await;
        b.fill("host", "no-such-host").await;
        b.press("Filter").await;
        assert!(!b.source().await.contains("/echo/hello"));
        assert!(b.path().await.ends_with("/logs"));
        // The live tail picks up a new request without reloading.
        b.goto(&format!("{base}/vaults/payments/logs")).await;
        b.click("#live-tail").await;
        tokio::task::spawn_blocking({
            let base = base.clone();
            let token = agent_token.clone();
            let port = upstream.https_port;
            move || {
                http()
                    .get(format!("{base}/proxy/127.0.0.1:{port}/echo/tailed"))
                    .bearer_auth(&token)
                    .header("X-Vault", "payments")
                    .send()
                    .unwrap();
            }
        })
        .await
        .unwrap();
        let mut tailed = false;
        for _ in 0..100 {
            if b.source().await.contains("/echo/tailed") {
                tailed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(tailed, "the live tail shows the new request");
        b.click("#live-tail").await;

        // The agent files a proposal; the owner approves it on the Proposals tab.
        let filed: Value = tokio::task::spawn_blocking({
            let base = base.clone();
            let token = agent_token.clone();
            move || {
                http()
                    .post(format!("{base}/v1/proposals"))
                    .bearer_auth(&token)
                    .header("X-Vault", "payments")
                    .json(&json!({
                        "credentials": [{ "key": "REPORTS_KEY", "description": "Read-only reports key" }],
                        "user_message": "I need the reports API key to pull this month's numbers.",
                    }))
                    .send()
                    .unwrap()
                    .json()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert_eq!(filed["number"], 1, "{filed}");
        b.goto(&format!("{base}/vaults")).await;
        assert!(b.source().await.contains("1 pending proposal"));
        b.shot("02-vaults").await;
        b.press("1 pending proposal").await;
        b.shot("08-proposals").await;
        b.press("#1").await;
        b.fill("value_REPORTS_KEY", "reports-secret").await;
        b.shot("09-proposal-review").await;
        b.press("Approve and apply").await;
        let done = b.source().await;
        assert!(
            done.contains("approved by owner@example.com and applied"),
            "{done}"
        );
        assert!(!done.contains("reports-secret"));

        // Members and settings.
        b.goto(&format!("{base}/vaults/payments/members")).await;
        let members = b.source().await;
        assert!(
            members.contains(OWNER_EMAIL) && members.contains("bot"),
            "{members}"
        );
        b.shot("10-members").await;
        b.goto(&format!("{base}/vaults/payments/settings")).await;
        b.shot("11-settings").await;

        // Manage instance: retention is pinned by the environment, so read-only.
        b.goto(&format!("{base}/manage")).await;
        let manage = b.source().await;
        assert!(
            manage.contains("Read-only") && manage.contains("AGENT_VAULT_LOGS_RETENTION_LOCK"),
            "{manage}"
        );
        assert!(
            !manage.contains("name=\"max_age_hours\""),
            "no retention form when locked"
        );
        b.shot("12-manage").await;

        // Rate limits are not pinned here: the owner picks a profile and it applies at once.
        b.select("rl-profile", "strict").await;
        b.press("Save profile").await;
        assert!(
            b.notice().await.contains("Rate-limit profile saved"),
            "{}",
            b.notice().await
        );
        let manage = b.source().await;
        assert!(
            manage.contains("Profile <strong>strict</strong> (set here)"),
            "{manage}"
        );

        // A form posted without its CSRF token is refused, and changes nothing.
        b.goto(&format!("{base}/vaults")).await;
        b.client
            .execute(
                "document.querySelector(\"form[action='/vaults'] input[name='csrf']\").remove()",
                vec![],
            )
            .await
            .unwrap();
        b.fill("name", "forged").await;
        b.press("Create vault").await;
        assert_eq!(b.heading().await, "Form refused");
        b.goto(&format!("{base}/vaults")).await;
        assert!(!b.source().await.contains("forged"), "nothing was created");

        b.goto(&format!("{base}/account")).await;
        b.shot("13-account").await;
        b.goto(&format!("{base}/agents")).await;
        let agents = b.source().await;
        assert!(
            agents.contains("bot") && agents.contains("payments (proxy)"),
            "{agents}"
        );
        b.shot("17-agents").await;

        // Invite a person with vault access from Manage instance; they accept in the browser.
        b.goto(&format!("{base}/manage")).await;
        b.fill("invite-email", "carol@example.com").await;
        b.select("invite-vault-1", "member").await; // payments
        b.press("Create invite link").await;
        let link = b
            .client
            .find(Locator::Id("invite-link"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            link.starts_with(&format!("{base}/invite/av_uinv_")),
            "{link}"
        );
        b.shot("18-invite-created").await;
        b.goto(&link).await;
        assert!(b.source().await.contains("carol@example.com"));
        b.shot("19-invite-accept").await;
        b.fill("password", "carol-password-1").await;
        b.press("Accept the invite").await;
        assert_eq!(b.heading().await, "Invite accepted");
        b.press("Open your vaults").await;
        let carol = b.source().await;
        assert!(
            carol.contains("carol@example.com") && carol.contains("payments"),
            "signed in as carol, a member of payments: {carol}"
        );
        assert!(!carol.contains("Manage instance"), "carol is no owner");

        // Phone width.
        b.resize(390, 844).await;
        b.goto(&format!("{base}/vaults/payments/services")).await;
        b.shot("14-phone-services").await;
        b.goto(&format!("{base}/vaults/payments/logs")).await;
        b.shot("15-phone-logs").await;
        b.resize(1280, 1000).await;

        // Sign out ends the session on the server.
        b.press("Sign out").await;
        assert_eq!(b.path().await, "/login");
        b.shot("16-login").await;
        b.goto(&format!("{base}/vaults")).await;
        assert_eq!(b.path().await, "/login", "signed out");
        b.close().await;
    });
}
