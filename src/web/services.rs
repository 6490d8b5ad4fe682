//! A vault's Services tab: the list (enable, disable, edit, delete), and the form that adds a
//! service from the catalog or by hand, with every auth type and substitutions. The form is
//! turned into the same JSON a `POST /v1/vaults/{v}/services` carries, so it is read and
//! validated by the one service reader, with the same messages. The rules are
//! [`crate::ops::services`]'.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::layout::{action_button, badge, csrf, table};
use super::proposals::service_text;
use super::session::Web;
use super::vaults::{Tab, vault_page};
use crate::ops::{OpError, services};
use crate::services::{Auth, DEFAULT_API_KEY_HEADER, Service, Surface, template, templates};

/// `GET /vaults/{vault}/services`.
pub async fn list(web: Web, Path(vault): Path<String>) -> Response {
    let caller = signed_in!(web);
    let (access, all) = match services::list(&web.state, &caller, &vault).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Services, Err(e)),
    };
    let admin = access.require(crate::store::VaultRole::Admin).is_ok();
    let base = format!("/vaults/{vault}/services");
    let body = html! {
        p.muted { "A service says which host gets which credential, and how. Agents send requests through the broker; it attaches the credential on the way out." }
        @if all.is_empty() {
            p { "No services yet." }
        } @else {
            (table("Services", &["Service", "State", ""], html! {
                @for s in &all {
                    @let matcher = s.matcher();
                    tr {
                        td { (service_text(s)) }
                        td { (badge(if s.enabled { "enabled" } else { "disabled" })) }
                        td {
                            @if admin {
                                div.actions {
                                    a.button.secondary.small href={ (base) "/edit?service=" (urlencode(&matcher)) } { "Edit" }
                                    (action_button(&web, &format!("{base}/toggle"), if s.enabled { "Disable" } else { "Enable" },
                                        &[("service", &matcher), ("enabled", if s.enabled { "false" } else { "true" })], None, false))
                                    (action_button(&web, &format!("{base}/delete"), "Delete", &[("service", &matcher)],
                                        Some(&format!("Delete the service for {matcher}?")), true))
                                }
                            }
                        }
                    }
                }
            }))
        }
        @if admin {
            section.panel aria-labelledby="add" {
                h2 #add { "Add a service" }
                form.row method="get" action={ (base) "/new" } {
                    label for="template" { "From the catalog"
                        select #template name="template" {
                            @for t in templates() {
                                option value=(t.id) { (t.name) " — " (t.service.matcher()) }
                            }
                        }
                    }
                    button type="submit" { "Use this template" }
                }
                p { a href={ (base) "/new" } { "Or describe one by hand" } }
            }
        } @else {
            p.muted { "Adding or changing services needs the admin role on this vault. Agents can propose services; members review proposals." }
        }
    };
    vault_page(web, &vault, Some(&access), Tab::Services, Ok(body))
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// What the form shows: a service's fields as text.
#[derive(Default, Deserialize)]
pub struct ServiceForm {
    #[serde(default)]
    original: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    auth_type: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    header: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    headers: String,
    #[serde(default)]
    substitutions: String,
}

impl ServiceForm {
    fn from_service(service: &Service, original: bool) -> Self {
        let mut form = Self {
            original: if original {
                service.matcher()
            } else {
                String::new()
            },
            host: service.matcher(),
            name: service.name.clone().unwrap_or_default(),
            description: service.description.clone().unwrap_or_default(),
            enabled: service.enabled.then(|| "on".to_owned()),
            auth_type: service.auth.type_name().to_owned(),
            ..Self::default()
        };
        match &service.auth {
            Auth::Bearer { token } => form.token = token.clone(),
            Auth::Basic { username, password } => {
                form.username = username.clone();
                form.password = password.clone();
            }
            Auth::ApiKey {
                key,
                header,
                prefix,
            } => {
                form.key = key.clone();
                form.header = header.clone();
                form.prefix = prefix.clone().unwrap_or_default();
            }
            Auth::Custom { headers } => {
                form.headers = headers
                    .iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            Auth::Passthrough => {}
        }
        form.substitutions = service
            .substitutions
            .iter()
            .map(|s| {
                let surfaces: Vec<&str> = s
                    .surfaces
                    .iter()
                    .map(|x| match x {
                        Surface::Header => "header",
                        Surface::Path => "path",
                        Surface::Query => "query",
                        Surface::Body => "body",
                        Surface::Ws => "ws",
                    })
                    .collect();
                format!("{} {} {}", s.placeholder, s.key, surfaces.join(","))
            })
            .collect::<Vec<_>>()
            .join("\n");
        form
    }

    /// The JSON a service is read from; shape problems are left to the service reader.
    fn to_json(&self) -> Result<Value, OpError> {
        let mut service = Map::new();
        let text = |v: &str| Value::String(v.trim().to_owned());
        service.insert("host".into(), text(&self.host));
        if !self.name.trim().is_empty() {
            service.insert("name".into(), text(&self.name));
        }
        if !self.description.trim().is_empty() {
            service.insert("description".into(), text(&self.description));
        }
        service.insert("enabled".into(), json!(self.enabled.is_some()));
        let mut auth = Map::new();
        auth.insert("type".into(), text(&self.auth_type));
        match self.auth_type.as_str() {
            "bearer" => {
                auth.insert("token".into(), text(&self.token));
            }
            "basic" => {
                auth.insert("username".into(), text(&self.username));
                auth.insert("password".into(), text(&self.password));
            }
            "api-key" => {
                auth.insert("key".into(), text(&self.key));
                if !self.header.trim().is_empty() {
                    auth.insert("header".into(), text(&self.header));
                }
                if !self.prefix.is_empty() {
                    // A prefix keeps its spaces: "Bot " differs from "Bot".
                    auth.insert("prefix".into(), Value::String(self.prefix.clone()));
                }
            }
            "custom" => {
                let mut headers = BTreeMap::new();
                for (i, line) in self.headers.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let (name, template) = line.split_once(':').ok_or_else(|| {
                        OpError::invalid(format!(
                            "header line {}: write it as Name: template, for example X-Token: {{{{ API_KEY }}}}",
                            i + 1
                        ))
                    })?;
                    headers.insert(name.trim().to_owned(), template.trim().to_owned());
                }
                auth.insert("headers".into(), json!(headers));
            }
            _ => {}
        }
        service.insert("auth".into(), Value::Object(auth));
        let mut substitutions = Vec::new();
        for (i, line) in self.substitutions.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                [placeholder, key] => {
                    substitutions.push(json!({ "placeholder": placeholder, "key": key }))
                }
                [placeholder, key, surfaces] => {
                    let surfaces: Vec<&str> =
                        surfaces.split(',').filter(|s| !s.is_empty()).collect();
                    substitutions
                        .push(json!({ "placeholder": placeholder, "key": key, "in": surfaces }));
                }
                _ => {
                    return Err(OpError::invalid(format!(
                        "substitution line {}: write placeholder KEY [header,path,query,body]",
                        i + 1
                    )));
                }
            }
        }
        if !substitutions.is_empty() {
            service.insert("substitutions".into(), Value::Array(substitutions));
        }
        Ok(Value::Object(service))
    }
}

fn service_form(
    web: &Web,
    vault: &str,
    form: &ServiceForm,
    heading: &str,
    note: Option<&str>,
) -> Markup {
    let types = [
        ("bearer", "Bearer token (Authorization: Bearer …)"),
        ("api-key", "API key in a header"),
        ("basic", "Basic auth (username and password)"),
        ("custom", "Custom headers from templates"),
        (
            "passthrough",
            "Passthrough (allow the host, attach nothing)",
        ),
    ];
    let auth = if form.auth_type.is_empty() {
        "bearer"
    } else {
        form.auth_type.as_str()
    };
    html! {
        h2 { (heading) }
        @if let Some(note) = note { p.muted { (note) } }
        form.stack method="post" action={ "/vaults/" (vault) "/services" } {
            (csrf(web))
            input type="hidden" name="original" value=(form.original);
            label for="host" { "Host"
                span.hint { "Exact host, or *.example.com for its subdomains; optionally :port and a /path prefix, e.g. api.example.com/v1" }
            }
            input #host type="text" name="host" value=(form.host) required autocomplete="off" spellcheck="false";
            label for="name" { "Name " span.hint { "Optional." } }
            input #name type="text" name="name" value=(form.name) autocomplete="off";
            label for="description" { "Description " span.hint { "Optional." } }
            input #description type="text" name="description" value=(form.description) autocomplete="off";
            label.check { input type="checkbox" name="enabled" checked[form.enabled.is_some() || form.original.is_empty() && form.host.is_empty()]; "Enabled" }
            label for="auth_type" { "Authentication" }
            select #auth_type name="auth_type" {
                @for (value, label) in types {
                    option value=(value) selected[value == auth] { (label) }
                }
            }
            p.hint { "Fields below name credential keys (UPPER_SNAKE_CASE), never values: set the values under Credentials." }
            fieldset.auth-fields data-auth="bearer" {
                legend { "Bearer token" }
                label for="token" { "Credential key" }
                input #token type="text" name="token" value=(form.token) placeholder="API_TOKEN" autocomplete="off" spellcheck="false";
            }
            fieldset.auth-fields data-auth="api-key" {
                legend { "API key" }
                label for="key" { "Credential key" }
                input #key type="text" name="key" value=(form.key) placeholder="API_KEY" autocomplete="off" spellcheck="false";
                label for="header" { "Header " span.hint { "Default: " (DEFAULT_API_KEY_HEADER) } }
                input #header type="text" name="header" value=(form.header) autocomplete="off" spellcheck="false";
                label for="prefix" { "Prefix " span.hint { "Text before the key, e.g. \"Bot \"; optional." } }
                input #prefix type="text" name="prefix" value=(form.prefix) autocomplete="off" spellcheck="false";
            }
            fieldset.auth-fields data-auth="basic" {
                legend { "Basic auth" }
                label for="username" { "Username credential key" }
                input #username type="text" name="username" value=(form.username) autocomplete="off" spellcheck="false";
                label for="password" { "Password credential key" }
                input #password type="text" name="password" value=(form.password) autocomplete="off" spellcheck="false";
            }
            fieldset.auth-fields data-auth="custom" {
                legend { "Custom headers" }
                label for="headers" { "One per line: Name: template " span.hint { "e.g. X-Token: Token {{ API_KEY }}" } }
                textarea #headers name="headers" spellcheck="false" { (form.headers) }
            }
            label for="substitutions" { "Substitutions "
                span.hint { "Optional, one per line: placeholder KEY [header,path,query,body]. The broker replaces the placeholder with the credential where it appears." }
            }
            textarea #substitutions name="substitutions" spellcheck="false" { (form.substitutions) }
            div.actions {
                button type="submit" { "Save service" }
                a.button.secondary href={ "/vaults/" (vault) "/services" } { "Cancel" }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct TemplateQuery {
    #[serde(default)]
    template: Option<String>,
}

/// `GET /vaults/{vault}/services/new[?template=]`.
pub async fn new_form(
    web: Web,
    Path(vault): Path<String>,
    Query(query): Query<TemplateQuery>,
) -> Response {
    let caller = signed_in!(web);
    let access = match services::list(&web.state, &caller, &vault).await {
        Ok((access, _)) => access,
        Err(e) => return vault_page(web, &vault, None, Tab::Services, Err(e)),
    };
    let chosen = query.template.as_deref().and_then(template);
    let (form, heading, note) = match &chosen {
        Some(t) => (
            ServiceForm::from_service(&t.service, false),
            format!("Add {}", t.name),
            Some(format!(
                "{}. It uses {}: store the value under Credentials.",
                t.description.trim_end_matches('.'),
                t.suggested_credential_keys.join(" and ")
            )),
        ),
        None => (ServiceForm::default(), "Add a service".to_owned(), None),
    };
    let body = service_form(&web, &vault, &form, &heading, note.as_deref());
    vault_page(web, &vault, Some(&access), Tab::Services, Ok(body))
}

#[derive(Deserialize)]
pub struct ServiceQuery {
    service: String,
}

/// `GET /vaults/{vault}/services/edit?service=<matcher>`.
pub async fn edit_form(
    web: Web,
    Path(vault): Path<String>,
    Query(query): Query<ServiceQuery>,
) -> Response {
    let caller = signed_in!(web);
    let (access, all) = match services::list(&web.state, &caller, &vault).await {
        Ok(found) => found,
        Err(e) => return vault_page(web, &vault, None, Tab::Services, Err(e)),
    };
    let body = services::find(&all, &query.service, &vault).map(|service| {
        let form = ServiceForm::from_service(service, true);
        service_form(
            &web,
            &vault,
            &form,
            &format!("Edit {}", service.matcher()),
            None,
        )
    });
    vault_page(web, &vault, Some(&access), Tab::Services, body)
}

/// `POST /vaults/{vault}/services`: add, or replace the service named by `original`.
pub async fn save(web: Web, Path(vault): Path<String>, Form(form): Form<ServiceForm>) -> Response {
    let caller = signed_in!(web);
    let back = format!("/vaults/{vault}/services");
    let json = match form.to_json() {
        Ok(json) => json,
        Err(e) => return web.finish(&back, Err(e)),
    };
    let written = if form.original.is_empty() {
        services::upsert(&web.state, &caller, &vault, vec![json]).await
    } else {
        services::edit(&web.state, &caller, &vault, &form.original, json).await
    };
    let outcome = written.map(|w| {
        let mut text = format!("Saved {}.", w.upserted.join(", "));
        if !w.missing_credentials.is_empty() {
            text.push_str(&format!(
                " Set {} under Credentials: the service needs {}.",
                w.missing_credentials.join(", "),
                if w.missing_credentials.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
        }
        text
    });
    web.finish(&back, outcome)
}

#[derive(Deserialize)]
pub struct ToggleForm {
    service: String,
    enabled: bool,
}

/// `POST /vaults/{vault}/services/toggle`.
pub async fn toggle(web: Web, Path(vault): Path<String>, Form(form): Form<ToggleForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = services::set_enabled(&web.state, &caller, &vault, &form.service, form.enabled)
        .await
        .map(|(_, matcher)| {
            format!(
                "{matcher} {}.",
                if form.enabled { "enabled" } else { "disabled" }
            )
        });
    web.finish(&format!("/vaults/{vault}/services"), outcome)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    service: String,
}

/// `POST /vaults/{vault}/services/delete`.
pub async fn delete(web: Web, Path(vault): Path<String>, Form(form): Form<DeleteForm>) -> Response {
    let caller = signed_in!(web);
    let outcome = services::remove(&web.state, &caller, &vault, &form.service)
        .await
        .map(|(_, matcher, _)| format!("Deleted the service for {matcher}."));
    web.finish(&format!("/vaults/{vault}/services"), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_template_round_trips_through_the_form() {
        for t in templates() {
            let form = ServiceForm::from_service(&t.service, false);
            let json = form.to_json().unwrap();
            let parsed = services::parse_services(vec![json]).unwrap();
            assert_eq!(parsed[0], t.service, "{}", t.id);
        }
    }

    #[test]
    fn form_lines_become_headers_and_substitutions() {
        let form = ServiceForm {
            host: "api.example.com/v1".into(),
            enabled: Some("on".into()),
            auth_type: "custom".into(),
            headers: "X-Token: Token {{ API_KEY }}\n\n".into(),
            substitutions: "__api_key__ API_KEY path,query\n".into(),
            ..ServiceForm::default()
        };
        let service = services::parse_services(vec![form.to_json().unwrap()])
            .unwrap()
            .remove(0);
        assert_eq!(service.path.as_deref(), Some("/v1"));
        assert_eq!(
            service.substitutions[0].surfaces,
            vec![Surface::Path, Surface::Query]
        );
        let bad = ServiceForm {
            auth_type: "custom".into(),
            headers: "no colon".into(),
            ..ServiceForm::default()
        };
        assert!(bad.to_json().is_err());
    }
}
