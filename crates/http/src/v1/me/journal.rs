//! `/v1/me/journal`: the audit trail of the account's changes (tag `journal`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::ReadErrors;
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::{number_param, query};
use crate::v1::view::time;

/// One change to the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalEntryView {
    /// Sequence number (cursor).
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Through which door: `settings.phtml`, `v1`, `web`, `cli`, `service`.
    pub door: String,
    /// Who: `certificate <serial>`, `login <user@domain>`, `operator <name>`, `service <name>`.
    pub actor: String,
    /// From which address.
    pub source: Option<String>,
    /// What changed (`diversions.FUNC`, `privacy`, `alias`, …).
    pub resource: String,
    /// The value before.
    pub old: Option<String>,
    /// The value after.
    pub new: Option<String>,
}

/// The journal (`GET /v1/me/journal`), newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalView {
    /// The entries of this page.
    pub entries: Vec<JournalEntryView>,
    /// `before` for the next (older) page, or `null`.
    pub next: Option<i64>,
}

/// The audit trail of every change to the account, newest first.
#[utoipa::path(get, path = "/v1/me/journal", tag = "journal",
    params(("before" = Option<i64>, Query, description = "Entries older than this cursor (`next`)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)")),
    responses((status = 200, description = "Journal", body = JournalView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn journal(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query(raw.as_deref(), &["before", "limit"])?;
    let limit_n = number_param(&q, "limit", 1..=200, 50)?;
    let before = match q.get("before") {
        None => None,
        Some(v) => Some(
            sip_settings_core::ids::whole_number::<i64>(v)
                .ok_or_else(|| invalid("before", "must be a whole number (a next cursor)"))?,
        ),
    };
    let entries = state
        .services
        .journal_entries(&me.account, before, limit_n)
        .await?;
    let next = if entries.len() == limit_n as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    let view = JournalView {
        entries: entries
            .iter()
            .map(|e| JournalEntryView {
                id: e.id,
                at: time(e.entry.at),
                door: e.entry.door.clone(),
                actor: e.entry.actor.clone(),
                source: e.entry.source.clone(),
                resource: e.entry.resource.clone(),
                old: e.entry.old.clone(),
                new: e.entry.new.clone(),
            })
            .collect(),
        next,
    };
    Ok(etag::read(&headers, &view))
}
