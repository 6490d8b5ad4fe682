//! The permissions matrix (docs/permissions.md), enforced by the server: every action is
//! tried with every role, and must succeed exactly for the roles the matrix allows.
//!
//! Roles: an instance owner who is not a member of the vault; vault admin, vault member
//! (both instance members); a vault-scoped proxy token; an instance member outside the vault.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::api::Api;
use crate::harness::TestHome;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
    Proxy,
    Outsider,
}

const ROLES: [Role; 5] = [
    Role::Owner,
    Role::Admin,
    Role::Member,
    Role::Proxy,
    Role::Outsider,
];

struct Users {
    owner: String,
    admin: String,
    member: String,
    outsider: String,
}

/// A fresh vault for one attempt, so destructive actions never affect the next one.
struct World<'a> {
    api: &'a Api,
    users: &'a Users,
    vault: String,
    proxy: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl<'a> World<'a> {
    fn new(api: &'a Api, users: &'a Users) -> Self {
        let vault = format!("team-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        api.ok(
            "POST",
            "/v1/vaults",
            Some(&users.admin),
            Some(json!({ "name": vault })),
        );
        api.ok(
            "POST",
            &format!("/v1/vaults/{vault}/users"),
            Some(&users.admin),
            Some(json!({ "email": "member@example.com", "role": "member" })),
        );
        api.ok(
            "POST",
            &format!("/v1/vaults/{vault}/credentials"),
            Some(&users.admin),
            Some(json!({ "credentials": { "API_KEY": "value-1" } })),
        );
        api.ok(
            "PUT",
            &format!("/v1/vaults/{vault}/services"),
            Some(&users.admin),
            Some(json!({ "services": [{ "host": "api.stripe.com", "auth": { "type": "bearer", "token": "API_KEY" } }] })),
        );
        let proxy = api.ok(
            "POST",
            "/v1/sessions",
            Some(&users.admin),
            Some(json!({ "vault": vault, "role": "proxy" })),
        )["token"]
            .as_str()
            .unwrap()
            .to_owned();
        // Proposal #1, filed by the proxy token (as an agent would), for the review rows.
        api.ok(
            "POST",
            "/v1/proposals",
            Some(&proxy),
            Some(json!({ "credentials": [{ "key": "PROPOSED_KEY" }] })),
        );
        Self {
            api,
            users,
            vault,
            proxy,
        }
    }

    fn token(&self, role: Role) -> &str {
        match role {
            Role::Owner => &self.users.owner,
            Role::Admin => &self.users.admin,
            Role::Member => &self.users.member,
            Role::Proxy => &self.proxy,
            Role::Outsider => &self.users.outsider,
        }
    }

    fn call(&self, role: Role, method: &str, path: &str, body: Option<Value>) -> u16 {
        let path = path.replace("{v}", &self.vault);
        self.api.call(method, &path, Some(self.token(role)), body).0
    }
}

type Attempt = fn(&World, Role) -> u16;

/// (action, attempt, roles allowed).
fn matrix() -> Vec<(&'static str, Attempt, &'static [Role])> {
    use Role::*;
    vec![
        (
            "vault: show",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}", None),
            &[Owner, Admin, Member, Proxy],
        ),
        (
            "vault: rename",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/rename",
                    Some(json!({"name": format!("{}-renamed", w.vault)})),
                )
            },
            &[Owner, Admin],
        ),
        (
            "vault: delete",
            |w, r| w.call(r, "DELETE", "/v1/vaults/{v}", None),
            &[Owner, Admin],
        ),
        (
            "vault: join as owner",
            |w, r| w.call(r, "POST", "/v1/vaults/{v}/join", None),
            &[Owner],
        ),
        (
            "credentials: list keys",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/credentials", None),
            &[Admin, Member, Proxy],
        ),
        (
            "credentials: reveal all",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/credentials?reveal=true", None),
            &[Admin, Member],
        ),
        (
            "credentials: get one",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/credentials/API_KEY", None),
            &[Admin, Member],
        ),
        (
            "credentials: set",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/credentials",
                    Some(json!({"credentials": {"NEW_KEY": "x"}})),
                )
            },
            &[Admin, Member],
        ),
        (
            "credentials: delete",
            |w, r| {
                w.call(
                    r,
                    "DELETE",
                    "/v1/vaults/{v}/credentials",
                    Some(json!({"keys": ["API_KEY"]})),
                )
            },
            &[Admin, Member],
        ),
        (
            "vault users: list",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/users", None),
            &[Admin, Member, Proxy],
        ),
        (
            "vault users: add",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/users",
                    Some(json!({"email": "outsider@example.com", "role": "member"})),
                )
            },
            &[Admin],
        ),
        (
            "vault users: set role",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/users/member@example.com/role",
                    Some(json!({"role": "admin"})),
                )
            },
            &[Admin],
        ),
        (
            "vault users: remove",
            |w, r| w.call(r, "DELETE", "/v1/vaults/{v}/users/member@example.com", None),
            &[Admin],
        ),
        (
            "tokens: mint proxy token",
            |w, r| w.call(r, "POST", "/v1/sessions", Some(json!({"vault": w.vault}))),
            &[Admin, Member],
        ),
        (
            "proposals: list",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/proposals", None),
            &[Admin, Member, Proxy],
        ),
        (
            "proposals: show",
            |w, r| w.call(r, "GET", "/v1/vaults/{v}/proposals/1", None),
            &[Admin, Member, Proxy],
        ),
        (
            "proposals: file",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/proposals",
                    Some(json!({"vault": w.vault, "credentials": [{"key": "NEW_KEY"}]})),
                )
            },
            &[Admin, Member, Proxy],
        ),
        (
            "proposals: approve",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/proposals/1/approve",
                    Some(json!({"credentials": {"PROPOSED_KEY": "x"}})),
                )
            },
            &[Admin, Member],
        ),
        (
            "proposals: reject",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/vaults/{v}/proposals/1/reject",
                    Some(json!({"reason": "no"})),
                )
            },
            &[Admin, Member],
        ),
        (
            "users: list",
            |w, r| w.call(r, "GET", "/v1/users", None),
            &[Owner, Admin, Member, Outsider],
        ),
        (
            "users: invite",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/users/invites",
                    Some(json!({"email": format!("new-{}@example.com", w.vault)})),
                )
            },
            &[Owner, Admin, Member, Outsider],
        ),
        (
            "users: invite into vault",
            |w, r| {
                w.call(r, "POST", "/v1/users/invites", Some(json!({"email": format!("into-{}@example.com", w.vault), "vaults": [{"vault": w.vault, "role": "member"}]})))
            },
            &[Owner, Admin],
        ),
        (
            "owner: list users",
            |w, r| w.call(r, "GET", "/v1/admin/users", None),
            &[Owner],
        ),
        (
            "owner: user info of another",
            |w, r| w.call(r, "GET", "/v1/admin/users/extra@example.com", None),
            &[Owner],
        ),
        (
            "owner: set user role",
            |w, r| {
                w.call(
                    r,
                    "POST",
                    "/v1/admin/users/extra@example.com/role",
                    Some(json!({"role": "member"})),
                )
            },
            &[Owner],
        ),
        (
            "owner: list vaults",
            |w, r| w.call(r, "GET", "/v1/admin/vaults", None),
            &[Owner],
        ),
        (
            "owner: delete vault",
            |w, r| w.call(r, "DELETE", "/v1/admin/vaults/{v}", None),
            &[Owner],
        ),
        (
            "owner: read settings",
            |w, r| w.call(r, "GET", "/v1/admin/settings", None),
            &[Owner],
        ),
        (
            "owner: change settings",
            |w, r| {
                w.call(
                    r,
                    "PUT",
                    "/v1/admin/settings",
                    Some(json!({"invite_only": false})),
                )
            },
            &[Owner],
        ),
        (
            "owner: email status",
            |w, r| w.call(r, "GET", "/v1/admin/email", None),
            &[Owner],
        ),
    ]
}

#[test]
fn every_action_with_every_role() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let api = Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    let users = Users {
        admin: api.add_user(&owner, "admin@example.com", json!([])),
        member: api.add_user(&owner, "member@example.com", json!([])),
        outsider: api.add_user(&owner, "outsider@example.com", json!([])),
        owner,
    };
    api.add_user(&users.owner, "extra@example.com", json!([]));
    // An agent the vault's admin invited, so may add to the vault.
    let invite = api.ok(
        "POST",
        "/v1/agents/invites",
        Some(&users.admin),
        Some(json!({"name": "helper"})),
    );
    let token = invite["token"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("/v1/agent-invites/{token}/redeem"),
        None,
        None,
    );
    let mut wrong = Vec::new();
    for (action, attempt, allowed) in matrix() {
        for role in ROLES {
            let world = World::new(&api, &users);
            let status = attempt(&world, role);
            let expected = allowed.contains(&role);
            // An outsider is told a vault it has no part in does not exist (404), as a
            // missing one is; everyone else who may not act gets 403.
            let refusal = if role == Role::Outsider { 404 } else { 403 };
            let ok = if expected {
                (200..300).contains(&status)
            } else {
                status == refusal || (role == Role::Outsider && status == 403)
            };
            if !ok {
                let want = if expected {
                    "success".to_owned()
                } else {
                    refusal.to_string()
                };
                wrong.push(format!("{action} as {role:?}: got {status}, want {want}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "permission matrix violations:\n{}",
        wrong.join("\n")
    );
    // Word for word: a vault the outsider has no part in, and one that does not exist.
    let answer = |vault: &str| {
        let (status, body) = api.call(
            "GET",
            &format!("/v1/vaults/{vault}/credentials"),
            Some(&users.outsider),
            None,
        );
        (status, body.to_string().replace(vault, "<vault>"))
    };
    assert_eq!(answer("default"), answer("no-such-vault"));
    // Also when the outsider names the vault in an invite.
    for path in ["/v1/users/invites", "/v1/agents/invites"] {
        let invite = |vault: &str| {
            let body = serde_json::json!({
                "email": "someone@example.com",
                "name": "someone",
                "vaults": [{"vault": vault, "role": "member"}],
            });
            let (status, body) = api.call("POST", path, Some(&users.outsider), Some(body));
            (status, body.to_string().replace(vault, "<vault>"))
        };
        let existing = invite("default");
        assert_eq!(existing.0, 404, "{path}: {existing:?}");
        assert_eq!(existing, invite("no-such-vault"), "{path}");
    }
}

#[test]
fn the_last_admin_and_the_last_owner_are_kept() {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let api = Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    let (status, body) = api.call(
        "POST",
        "/v1/admin/users/owner@example.com/role",
        Some(&owner),
        Some(json!({"role": "member"})),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("last owner"));
    let (status, _) = api.call(
        "DELETE",
        "/v1/admin/users/owner@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(status, 409);
    let (status, body) = api.call(
        "DELETE",
        "/v1/vaults/default/users/owner@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("last admin"));
    let (status, _) = api.call(
        "POST",
        "/v1/vaults/default/users/owner@example.com/role",
        Some(&owner),
        Some(json!({"role": "member"})),
    );
    assert_eq!(status, 409);
    // With a second owner, the first may step down.
    api.add_user(&owner, "second@example.com", json!([]));
    api.ok(
        "POST",
        "/v1/admin/users/second@example.com/role",
        Some(&owner),
        Some(json!({"role": "owner"})),
    );
    api.ok(
        "POST",
        "/v1/admin/users/owner@example.com/role",
        Some(&owner),
        Some(json!({"role": "member"})),
    );
}

/// Redeems an agent invite by its token: the status and the reply.
fn redeem_agent_invite(api: &Api, token: &str) -> (u16, Value) {
    let path = format!("/v1/agent-invites/{token}/redeem");
    api.call("POST", &path, None, None)
}

/// A server with its owner and X, admin of the vault "default" (and nothing more): the API,
/// both tokens, and what keeps the server running.
fn admin_x() -> (Api, String, String, (crate::harness::Server, TestHome)) {
    let home = TestHome::new();
    let server = home.start_server(&[], "", &[]);
    let api = Api::new(&server.url);
    let owner = api.register_owner("owner@example.com");
    let x = api.add_user(
        &owner,
        "x@example.com",
        json!([{"vault": "default", "role": "admin"}]),
    );
    (api, owner, x, (server, home))
}

/// A vault token never outlives, nor outranks, the grant it was minted under: demoting its
/// minter ends the tokens above the new role, removing them ends the rest — for people and
/// agents alike.
#[test]
fn vault_tokens_end_with_the_grant_they_were_minted_under() {
    let (api, owner, x, _running) = admin_x();
    let mint = |role: &str| {
        let reply = api.ok(
            "POST",
            "/v1/sessions",
            Some(&x),
            Some(json!({"vault": "default", "role": role})),
        );
        reply["token"].as_str().unwrap().to_owned()
    };
    let (admin, member) = (mint("admin"), mint("member"));
    let reveal = |token: &str| {
        api.call(
            "GET",
            "/v1/vaults/default/credentials?reveal=true",
            Some(token),
            None,
        )
        .0
    };
    assert_eq!((reveal(&admin), reveal(&member)), (200, 200));
    api.ok(
        "POST",
        "/v1/vaults/default/users/x@example.com/role",
        Some(&owner),
        Some(json!({"role": "member"})),
    );
    assert_eq!(
        reveal(&admin),
        401,
        "the admin token outlived the admin grant"
    );
    assert_eq!(reveal(&member), 200, "a token within the new role stays");
    api.ok(
        "DELETE",
        "/v1/vaults/default/users/x@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(
        reveal(&member),
        401,
        "a token outlived its minter's removal"
    );
    // X's own login stays (only the vault grant went).
    let (status, _) = api.call("GET", "/v1/vaults", Some(&x), None);
    assert_eq!(status, 200);
}

/// An agent is its inviter's tool: lowering, removing or deleting the person lowers or
/// removes the agents they invited, so whoever holds an agent's token keeps nothing the
/// person lost (nor can use it to add them back).
#[test]
fn agents_lose_what_their_inviter_loses() {
    let (api, owner, x, _running) = admin_x();
    let agent = |inviter: &str, name: &str, vault: &str| {
        let invite = api.ok(
            "POST",
            "/v1/agents/invites",
            Some(inviter),
            Some(json!({"name": name, "vaults": [{"vault": vault, "role": "admin"}]})),
        );
        let token = invite["token"].as_str().unwrap();
        let redeemed = api.ok(
            "POST",
            &format!("/v1/agent-invites/{token}/redeem"),
            None,
            None,
        );
        redeemed["agent_token"].as_str().unwrap().to_owned()
    };
    let reveal = |token: &str, vault: &str| {
        let path = format!("/v1/vaults/{vault}/credentials?reveal=true");
        api.call("GET", &path, Some(token), None).0
    };
    let add_x_as_admin = |token: &str| {
        let body = json!({"email": "x@example.com", "role": "admin"});
        api.call("POST", "/v1/vaults/default/users", Some(token), Some(body))
            .0
    };
    let set_x = |role: &str| {
        api.ok(
            "POST",
            "/v1/vaults/default/users/x@example.com/role",
            Some(&owner),
            Some(json!({"role": role})),
        );
    };
    let bot = agent(&x, "xbot", "default");
    assert_eq!(reveal(&bot, "default"), 200);

    set_x("member");
    assert_eq!(reveal(&bot, "default"), 200, "a member still reads values");
    assert_eq!(add_x_as_admin(&bot), 403, "the agent kept admin");
    api.ok(
        "DELETE",
        "/v1/vaults/default/users/x@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(reveal(&bot, "default"), 404, "the agent kept the vault");
    assert_eq!(add_x_as_admin(&bot), 404);

    // Deleting the person ends their agents' grants and tokens.
    api.ok(
        "POST",
        "/v1/vaults/default/users",
        Some(&owner),
        Some(json!({"email": "x@example.com", "role": "admin"})),
    );
    let second = agent(&x, "xbot2", "default");
    assert_eq!(reveal(&second, "default"), 200);
    api.ok(
        "DELETE",
        "/v1/admin/users/x@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(api.call("GET", "/v1/vaults", Some(&second), None).0, 401);

    // A vault whose only admins are a person and their agent keeps both: refused, unchanged.
    let z = api.add_user(&owner, "z@example.com", json!([]));
    api.ok("POST", "/v1/vaults", Some(&z), Some(json!({"name": "zv"})));
    let zbot = agent(&z, "zbot", "zv");
    let (status, body) = api.call(
        "DELETE",
        "/v1/admin/users/z@example.com",
        Some(&owner),
        None,
    );
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("zbot") && message.contains("\"zv\""),
        "{message}"
    );
    assert_eq!(reveal(&zbot, "zv"), 200, "a refusal changes nothing");
    assert_eq!(api.call("GET", "/v1/vaults", Some(&z), None).0, 200);

    // An owner agent of a person demoted from owner is an owner no more: its token cannot
    // make the person owner again.
    let set_role = |token: &str, role: &str| {
        api.call(
            "POST",
            "/v1/admin/users/z@example.com/role",
            Some(token),
            Some(json!({"role": role})),
        )
        .0
    };
    assert_eq!(set_role(&owner, "owner"), 200);
    let invite = api.ok(
        "POST",
        "/v1/agents/invites",
        Some(&z),
        Some(json!({"name": "zowner", "role": "owner"})),
    );
    let token = invite["token"].as_str().unwrap();
    let redeemed = api.ok(
        "POST",
        &format!("/v1/agent-invites/{token}/redeem"),
        None,
        None,
    );
    let zowner = redeemed["agent_token"].as_str().unwrap().to_owned();
    assert_eq!(set_role(&owner, "member"), 200);
    assert_eq!(set_role(&zowner, "owner"), 403, "the agent stayed an owner");
    let shown = api.ok("GET", "/v1/agents/zowner", Some(&owner), None);
    assert_eq!(shown["role"], "member", "{shown}");
}

/// Runs `attack` from three threads until a little after `demote` has answered, so that some
/// attacks are in flight while the attacker loses the right they use.
fn race_against(demote: impl FnOnce(), attack: impl Fn() + Sync) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let demoted = AtomicBool::new(false);
    std::thread::scope(|threads| {
        for _ in 0..3 {
            threads.spawn(|| {
                let mut after = 0;
                while after < 5 {
                    attack();
                    if demoted.load(Ordering::SeqCst) {
                        after += 1;
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        demote();
        demoted.store(true, Ordering::SeqCst);
    });
}

/// The role `email` holds in a listing of users (`{"users": [{email, role}, …]}`).
fn role_in(listing: &serde_json::Value, email: &str) -> Option<serde_json::Value> {
    listing["users"]
        .as_array()?
        .iter()
        .find(|u| u["email"] == email)
        .map(|u| u["role"].clone())
}

/// An owner's right is checked again inside the write it allows: requests already in flight
/// from a demoted person (re-promoting their agent) or from their owner agent (re-promoting
/// them) cannot make either an owner again.
#[test]
fn a_demotion_wins_over_owner_requests_already_in_flight() {
    let (api, owner, _x, _running) = admin_x();
    let z = api.add_user(&owner, "z@example.com", json!([]));
    let role_of_z = |token: &str, role: &str| {
        api.call(
            "POST",
            "/v1/admin/users/z@example.com/role",
            Some(token),
            Some(json!({"role": role})),
        )
        .0
    };
    for round in 0..4 {
        assert_eq!(role_of_z(&owner, "owner"), 200);
        let invite = api.ok(
            "POST",
            "/v1/agents/invites",
            Some(&z),
            Some(json!({"name": format!("zowner{round}"), "role": "owner"})),
        );
        let token = invite["token"].as_str().unwrap();
        let path = format!("/v1/agent-invites/{token}/redeem");
        let agent = api.ok("POST", &path, None, None)["agent_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent_path = format!("/v1/agents/zowner{round}/role");
        let promote_agent = || {
            let body = json!({"role": "owner"});
            api.call("POST", &agent_path, Some(&z), Some(body))
        };
        race_against(
            || assert_eq!(role_of_z(&owner, "member"), 200),
            || {
                role_of_z(&agent, "owner");
                promote_agent();
            },
        );
        let users = api.ok("GET", "/v1/admin/users", Some(&owner), None);
        let z_role = role_in(&users, "z@example.com");
        assert_eq!(z_role, Some(json!("member")), "round {round}: {users}");
        let shown = api.ok(
            "GET",
            &format!("/v1/agents/zowner{round}"),
            Some(&owner),
            None,
        );
        assert_eq!(shown["role"], "member", "round {round}: {shown}");
    }
}

/// The same for a vault's admins: a lowered admin's requests already in flight cannot raise
/// them back.
#[test]
fn a_vault_demotion_wins_over_admin_requests_already_in_flight() {
    let (api, owner, x, _running) = admin_x();
    let role_of_x = |token: &str, role: &str| {
        api.call(
            "POST",
            "/v1/vaults/default/users/x@example.com/role",
            Some(token),
            Some(json!({"role": role})),
        )
        .0
    };
    for round in 0..4 {
        assert_eq!(role_of_x(&owner, "admin"), 200);
        race_against(
            || assert_eq!(role_of_x(&owner, "member"), 200),
            || {
                role_of_x(&x, "admin");
            },
        );
        let members = api.ok("GET", "/v1/vaults/default/users", Some(&owner), None);
        let x_role = role_in(&members, "x@example.com");
        assert_eq!(x_role, Some(json!("member")), "round {round}: {members}");
    }
}

/// Tokens minted by requests in flight while their minter is removed end with the grant too.
#[test]
fn tokens_minted_during_a_removal_do_not_outlive_it() {
    let (api, owner, x, _running) = admin_x();
    for round in 0..3 {
        if round > 0 {
            let body = json!({"email": "x@example.com", "role": "admin"});
            api.ok("POST", "/v1/vaults/default/users", Some(&owner), Some(body));
        }
        let minted = std::sync::Mutex::new(Vec::new());
        race_against(
            || {
                let path = "/v1/vaults/default/users/x@example.com";
                api.ok("DELETE", path, Some(&owner), None);
            },
            || {
                let body = json!({"vault": "default", "role": "admin"});
                let (status, reply) = api.call("POST", "/v1/sessions", Some(&x), Some(body));
                if status == 201 {
                    let token = reply["token"].as_str().unwrap().to_owned();
                    minted.lock().unwrap().push(token);
                }
            },
        );
        let minted = minted.into_inner().unwrap();
        assert!(
            !minted.is_empty(),
            "round {round}: nothing minted before the removal"
        );
        for token in minted {
            let (status, _) = api.call(
                "GET",
                "/v1/vaults/default/credentials?reveal=true",
                Some(&token),
                None,
            );
            assert_eq!(status, 401, "round {round}: a token outlived the removal");
        }
    }
}

/// An invite hands out only what its creator may still give: one made by a vault admin who
/// has since lost the vault, or by a person since removed, is refused when used.
#[test]
fn invites_are_checked_again_when_used() {
    let (api, owner, x, _running) = admin_x();
    let invite = |name: &str| {
        let reply = api.ok(
            "POST",
            "/v1/agents/invites",
            Some(&x),
            Some(json!({"name": name, "vaults": [{"vault": "default", "role": "admin"}]})),
        );
        reply["token"].as_str().unwrap().to_owned()
    };
    let (kept, stale) = (invite("kept"), invite("backdoor"));
    let redeem = |token: &str| redeem_agent_invite(&api, token);
    assert_eq!(redeem(&kept).0, 200, "the control redeems while X is admin");
    api.ok(
        "POST",
        "/v1/vaults/default/users/x@example.com/role",
        Some(&owner),
        Some(json!({"role": "member"})),
    );
    let (status, body) = redeem(&stale);
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "invite_stale", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("vault \"default\""),
        "{body}"
    );
    // Still pending, not spent: once X is admin again it works.
    api.ok(
        "POST",
        "/v1/vaults/default/users/x@example.com/role",
        Some(&owner),
        Some(json!({"role": "admin"})),
    );
    assert_eq!(redeem(&stale).0, 200, "a refused invite stays pending");
    let user_invite = api.ok(
        "POST",
        "/v1/users/invites",
        Some(&x),
        Some(json!({"email": "y@example.com", "vaults": [{"vault": "default", "role": "member"}]})),
    );
    let link = user_invite["invite_link"].as_str().unwrap().to_owned();
    api.ok(
        "DELETE",
        "/v1/admin/users/x@example.com",
        Some(&owner),
        None,
    );
    let token = link.rsplit('/').next().unwrap();
    let (status, body) = api.call(
        "POST",
        &format!("/v1/invites/{token}/accept"),
        None,
        Some(json!({"password": "password-1"})),
    );
    assert_eq!(status, 410, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("was removed"),
        "{body}"
    );
}

/// Rotating hands the agent's token, and every vault role it holds, to whoever redeems it. An
/// owner may rotate someone else's agent only where they visibly hold those roles (checked
/// when the invite is made and again when it is redeemed), and the agent is theirs after: its
/// roles follow their rights from then on, demotion included.
#[test]
fn rotating_someone_else_s_agent_takes_it_over_only_where_the_owner_is_seen() {
    let (api, owner, x, _running) = admin_x();
    // The rotator: an owner, demoted at the end.
    let o2 = api.add_user(&owner, "o2@example.com", json!([]));
    let set_o2 = |role: &str| {
        let path = "/v1/admin/users/o2@example.com/role";
        api.ok("POST", path, Some(&owner), Some(json!({"role": role})));
    };
    set_o2("owner");
    api.ok("POST", "/v1/vaults", Some(&x), Some(json!({"name": "xv"})));
    api.ok(
        "POST",
        "/v1/vaults/xv/credentials",
        Some(&x),
        Some(json!({"credentials": {"KEY": "x-only"}})),
    );
    let invite = api.ok(
        "POST",
        "/v1/agents/invites",
        Some(&x),
        Some(json!({"name": "xbot", "vaults": [{"vault": "xv", "role": "member"}]})),
    );
    let redeem = |token: &str| redeem_agent_invite(&api, token);
    assert_eq!(redeem(invite["token"].as_str().unwrap()).0, 200);
    let rotate = || api.call("POST", "/v1/agents/xbot/rotate", Some(&o2), None);
    let reveal = |token: &str| {
        let path = "/v1/vaults/xv/credentials?reveal=true";
        api.call("GET", path, Some(token), None).0
    };

    let (status, body) = rotate();
    assert_eq!(status, 403, "an owner with no part in xv: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"xv\" (member)") && message.contains("owner vault join"),
        "{message}"
    );

    api.ok("POST", "/v1/vaults/xv/join", Some(&o2), None);
    let (status, rotation) = rotate();
    assert_eq!(status, 201, "a member of xv may: {rotation}");
    let token = rotation["token"].as_str().unwrap();
    let leave = || {
        api.ok(
            "DELETE",
            "/v1/vaults/xv/users/o2@example.com",
            Some(&x),
            None,
        )
    };
    leave();
    let (status, body) = redeem(token);
    assert_eq!(status, 410, "left xv before redeeming: {body}");
    assert_eq!(body["error"], "invite_stale", "{body}");

    api.ok("POST", "/v1/vaults/xv/join", Some(&o2), None);
    let (status, redeemed) = redeem(token);
    assert_eq!(status, 200, "a refused rotation stays pending: {redeemed}");
    let taken = redeemed["agent_token"].as_str().unwrap().to_owned();
    assert_eq!(reveal(&taken), 200);
    let shown = api.ok("GET", "/v1/agents/xbot", Some(&owner), None);
    assert_eq!(shown["created_by"], "o2@example.com", "{shown}");
    // Demoted and out of xv, the rotator takes the agent out with them (the agent had been
    // x's, whose rights it no longer follows).
    set_o2("member");
    assert_eq!(reveal(&taken), 200, "o2 is still in xv");
    leave();
    assert_eq!(reveal(&taken), 404, "the agent left xv with o2");
}

/// An agent invite hands its maker the agent's token: an owner puts an agent only into a
/// vault where they hold its role themselves (at invite and again at redemption), so an
/// owner's access to a vault's secrets is always a membership its people see.
#[test]
fn an_owner_invites_an_agent_only_into_vaults_they_are_seen_in() {
    let (api, owner, x, _running) = admin_x();
    api.ok("POST", "/v1/vaults", Some(&x), Some(json!({"name": "xv"})));
    let invite = || {
        let body = json!({"name": "obot", "vaults": [{"vault": "xv", "role": "member"}]});
        api.call("POST", "/v1/agents/invites", Some(&owner), Some(body))
    };
    let (status, body) = invite();
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("owner vault join xv"),
        "{body}"
    );
    api.ok("POST", "/v1/vaults/xv/join", Some(&owner), None);
    let (status, made) = invite();
    assert_eq!(status, 201, "{made}");
    api.ok(
        "DELETE",
        "/v1/vaults/xv/users/owner@example.com",
        Some(&x),
        None,
    );
    let (status, body) = redeem_agent_invite(&api, made["token"].as_str().unwrap());
    assert_eq!(status, 410, "left xv before it was redeemed: {body}");
    assert_eq!(body["error"], "invite_stale", "{body}");
}

/// A vault's admins decide who is in it, and an agent's manager where it goes: an admin
/// cannot pull someone else's agent into their vault (it would become the agent's default,
/// with its traffic in that vault's log); the agent's inviter or an owner can.
#[test]
fn an_agent_goes_only_where_its_manager_puts_it() {
    let (api, owner, x, _running) = admin_x();
    let invite = api.ok(
        "POST",
        "/v1/agents/invites",
        Some(&owner),
        Some(json!({"name": "theirs"})),
    );
    let token = invite["token"].as_str().unwrap();
    api.ok(
        "POST",
        &format!("/v1/agent-invites/{token}/redeem"),
        None,
        None,
    );
    let add = |who: &str| {
        api.call(
            "POST",
            "/v1/vaults/default/agents",
            Some(who),
            Some(json!({"name": "theirs", "role": "proxy"})),
        )
    };
    let (status, body) = add(&x);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("whoever invited"),
        "{body}"
    );
    let (status, body) = add(&owner);
    assert!((200..300).contains(&status), "{status}: {body}");
}
