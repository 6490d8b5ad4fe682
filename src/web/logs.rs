//! A vault's Logs tab: the request log with filters (host, status, time), paging towards
//! older rows, and a live tail the script polls (`/logs/tail`, JSON, same filters and
//! rules). The rules are [`crate::ops::vault_settings::logs`]'.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::auth::capitalized;
use super::layout::{table_with_id, when_short};
use super::session::Web;
use super::vaults::{Tab, vault_page};
use crate::ops::vault_settings::{self, LogPage, parse_status};
use crate::ops::{Caller, OpError};
use crate::store::now;
use crate::store::request_log::{Query as LogQuery, Row};
use crate::text::for_display;

const PAGE_SIZE: u32 = 50;
const PERIODS: [(&str, &str, i64); 5] = [
    ("15m", "Last 15 minutes", 15 * 60),
    ("1h", "Last hour", 3600),
    ("24h", "Last 24 hours", 24 * 3600),
    ("7d", "Last 7 days", 7 * 24 * 3600),
    ("all", "Any time", 0),
];

#[derive(Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    after: Option<i64>,
}

impl Filters {
    fn query(&self) -> Result<LogQuery, OpError> {
        let status = match &self.status {
            Some(text) => parse_status(text)?,
            None => None,
        };
        let since = PERIODS
            .iter()
            .find(|(id, _, _)| Some(*id) == self.period.as_deref())
            .and_then(|(_, _, secs)| (*secs > 0).then(|| now() - secs));
        Ok(LogQuery {
            limit: PAGE_SIZE,
            host: self
                .host
                .as_deref()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            status,
            since,
            until: None,
            before_id: self.before,
            after_id: self.after,
        })
    }

    /// The filters as a query string (no paging), for links and the tail.
    fn encode(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(h) = self.host.as_deref().filter(|h| !h.trim().is_empty()) {
            pairs.push(("host", h.to_owned()));
        }
        if let Some(s) = self.status.as_deref().filter(|s| !s.trim().is_empty()) {
            pairs.push(("status", s.to_owned()));
        }
        if let Some(p) = &self.period {
            pairs.push(("period", p.clone()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

fn actor(page: &LogPage, row: &Row) -> String {
    match (row.actor_type.as_deref(), row.actor_id.as_deref()) {
        (Some(kind), Some(id)) => match page.actors.get(id) {
            Some(name) if kind == "agent" => format!("agent {name}"),
            Some(name) => name.clone(),
            None => format!("removed {kind}"),
        },
        (Some("scoped"), _) => "vault token".to_owned(),
        (Some(kind), None) => kind.to_owned(),
        _ => String::new(),
    }
}

fn note(row: &Row) -> String {
    let mut parts = Vec::new();
    if let Some(code) = &row.error_code {
        parts.push(code.clone());
    }
    if !row.credential_keys.is_empty() {
        parts.push(format!("used {}", row.credential_keys.join(", ")));
    }
    parts.join("; ")
}

fn rows(page: &LogPage) -> Markup {
    html! {
        @for row in &page.rows {
            tr {
                td.nowrap { (when_short(row.created_at)) }
                td.nowrap { (actor(page, row)) }
                td { (row.method) " " span.mono { (for_display(&row.host)) (for_display(&row.path)) } }
                td { (row.service.as_deref().unwrap_or("")) }
                td class={ "num status-" (row.status / 100) } { (row.status) }
                td.num { (row.duration_ms) " ms" }
                td { (note(row)) }
            }
        }
    }
}

async fn load(
    web: &Web,
    caller: &Caller,
    vault: &str,
    filters: &Filters,
) -> Result<LogPage, OpError> {
    vault_settings::logs(&web.state, caller, vault, filters.query()?).await
}

/// `GET /vaults/{vault}/logs[?host=&status=&period=&before=]`.
pub async fn page(web: Web, Path(vault): Path<String>, Query(filters): Query<Filters>) -> Response {
    let caller = signed_in!(web);
    let page = match load(&web, &caller, &vault, &filters).await {
        Ok(page) => page,
        Err(e) => return vault_page(web, &vault, None, Tab::Logs, Err(e)),
    };
    let base = format!("/vaults/{vault}/logs");
    let encoded = filters.encode();
    let newest = page.rows.first().map_or(0, |r| r.id);
    let oldest = page.rows.last().map(|r| r.id);
    let period = filters.period.as_deref().unwrap_or("all");
    let body = html! {
        form.row method="get" action=(base) aria-label="Filters" {
            label for="host" { "Host contains" input #host type="search" name="host" value=(filters.host.as_deref().unwrap_or("")); }
            label for="status" { "Status"
                input #status type="text" name="status" value=(filters.status.as_deref().unwrap_or("")) placeholder="404, 5xx or 0" aria-describedby="status-hint";
            }
            label for="period" { "Time"
                select #period name="period" {
                    @for (id, label, _) in PERIODS { option value=(id) selected[id == period] { (label) } }
                }
            }
            button.secondary type="submit" { "Filter" }
        }
        p.hint #status-hint { "Status: a code such as 404, a class such as 5xx, or 0 for requests that got no answer." }
        div.actions {
            @if filters.before.is_none() {
                button.secondary #live-tail type="button" hidden aria-pressed="false"
                    data-source={ (base) "/tail?" (encoded) } data-newest=(newest) { "Start live tail" }
            } @else {
                a href={ (base) "?" (encoded) } { "Back to the newest" }
            }
            span #tail-status.muted role="status" {}
        }
        @if page.rows.is_empty() {
            p.muted { "No requests match. Requests the broker handles for this vault appear here." }
        }
        (table_with_id("Request log", &["Time (UTC)", "Who", "Request", "Service", "Status", "Took", "Note"],
            Some("log-rows"), rows(&page)))
        @if let (Some(oldest), true) = (oldest, page.rows.len() as u32 == PAGE_SIZE) {
            p { a href={ (base) "?" (encoded) @if !encoded.is_empty() { "&" } "before=" (oldest) } { "Older requests" } }
        }
    };
    vault_page(web, &vault, None, Tab::Logs, Ok(body))
}

/// `GET /vaults/{vault}/logs/tail?after=N[&filters]`: rows newer than N, as JSON for the
/// script (signed-in members only; the same operation as the page).
pub async fn tail(web: Web, Path(vault): Path<String>, Query(filters): Query<Filters>) -> Response {
    let Some(caller) = web.viewer.clone() else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "signed out" })),
        )
            .into_response();
    };
    match load(&web, &caller, &vault, &filters).await {
        Ok(page) => {
            let requests: Vec<_> = page
                .rows
                .iter()
                .map(|row| {
                    json!({
                        "id": row.id,
                        "time": when_short(row.created_at),
                        "actor": actor(&page, row),
                        "method": row.method,
                        "host": row.host,
                        "path": row.path,
                        "service": row.service,
                        "status": row.status,
                        "duration_ms": row.duration_ms,
                        "note": note(row),
                    })
                })
                .collect();
            axum::Json(json!({ "requests": requests })).into_response()
        }
        Err(e) => (
            e.status,
            axum::Json(json!({ "error": capitalized(&e.message) })),
        )
            .into_response(),
    }
}
