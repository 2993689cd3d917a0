//! The journal (tag `admin journal`): one account's changes and those of every account of a
//! domain, deleted accounts included, newest first, paged like `/v1/me/journal`. Twin of
//! `journal USER@DOMAIN`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Serialize;
use sip_settings_core::journal::JournalEntry;
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, account_of, domain_of};
use crate::v1::error::{ApiError, ApiResult, invalid};
use crate::v1::extract::{PathParam, number_param, query};
use crate::v1::view::time;

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminJournalEntryView {
    /// Sequence number (cursor).
    pub id: i64,
    /// Whose account changed (`user@domain`).
    pub account: String,
    /// When (RFC 3339).
    pub at: String,
    /// Through which door: `settings.phtml`, `v1`, `web`, `cli`, `service`, `admin`.
    pub door: String,
    /// Who: `certificate <serial>`, `login <user@domain>`, `operator <name>`,
    /// `service <name>`, `admin <name> (serial <serial>)`.
    pub actor: String,
    /// From which address.
    pub source: Option<String>,
    /// What changed (`account.first_name`, `password`, `alias`, …).
    pub resource: String,
    /// The value before (secrets appear only as `changed`).
    pub old: Option<String>,
    /// The value after.
    pub new: Option<String>,
}

/// A page of the journal, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminJournalView {
    /// The entries of this page.
    pub entries: Vec<AdminJournalEntryView>,
    /// `before` for the next (older) page, or `null`.
    pub next: Option<i64>,
}

/// The paging parameters `before` and `limit`.
fn paging(raw: Option<&str>) -> Result<(Option<i64>, u32), ApiError> {
    let q = query(raw, &["before", "limit"])?;
    let limit = number_param(&q, "limit", 1..=200, 50)?;
    let before = match q.get("before") {
        None => None,
        Some(v) => Some(
            sip_settings_core::ids::whole_number::<i64>(v)
                .ok_or_else(|| invalid("before", "must be a whole number (a next cursor)"))?,
        ),
    };
    Ok((before, limit))
}

fn page(entries: &[JournalEntry], limit: u32) -> AdminJournalView {
    let next = if entries.len() == limit as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    AdminJournalView {
        entries: entries
            .iter()
            .map(|e| AdminJournalEntryView {
                id: e.id,
                account: e.entry.account.to_string(),
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
    }
}

/// One account's journal (a deleted account's too), newest first.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/journal", tag = "admin journal",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("before" = Option<i64>, Query, minimum = 0, description = "Entries older than this cursor (`next`)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)")),
    responses((status = 200, description = "Journal", body = AdminJournalView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_account_journal(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let id = account_of(&path)?;
    let (before, limit) = paging(raw.as_deref())?;
    let entries = admin
        .services(&state)
        .journal_entries(&id, before, limit)
        .await?;
    Ok(etag::read(&headers, &page(&entries, limit)))
}

/// The journal of every account of a domain (deleted ones too), newest first.
#[utoipa::path(get, path = "/v1/admin/domains/{domain}/journal", tag = "admin journal",
    params(("domain" = String, Path, description = "The domain", max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("before" = Option<i64>, Query, minimum = 0, description = "Entries older than this cursor (`next`)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)")),
    responses((status = 200, description = "Journal", body = AdminJournalView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_domain_journal(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let domain = domain_of(&path)?;
    let (before, limit) = paging(raw.as_deref())?;
    let entries = admin
        .services(&state)
        .domain_journal_entries(&domain, before, limit)
        .await?;
    Ok(etag::read(&headers, &page(&entries, limit)))
}
