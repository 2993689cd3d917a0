//! An account's reject rules, persistent accept rules and phonebook, as the operator sets them
//! (tag `admin rules`). Twins of `reject add|remove|list`, `accept add|remove|list` and
//! `phonebook add|remove|list`; the texts are parsed by the same core parsers as the CLI's.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::account::parse_name;
use sip_settings_core::settings::{
    AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, parse_contact_uri,
    parse_phonebook_groups,
};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, account_of};
use crate::v1::error::{ApiError, ApiResult, invalid};
use crate::v1::extract::{JsonBody, PathParam, query};

/// An account's reject patterns.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminRejectRulesView {
    /// Patterns such as `sip:%0900@%` (`%` matches anything).
    pub patterns: Vec<String>,
}

/// A reject pattern to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminRejectBody {
    /// The pattern, e.g. `sip:%0900@%` or `sip:spam@example.net` (`%` matches anything).
    #[schema(min_length = 1, max_length = 255)]
    pub pattern: String,
}

/// One persistent accept rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAcceptRuleView {
    /// Days mask: Mon=1 … Sun=64 (127 every day, 31 weekdays, 96 weekend).
    pub days: String,
    /// Window start, `HH:MM` in the account's time zone.
    pub start: String,
    /// Window end, `HH:MM` (before `start`: crosses midnight).
    pub stop: String,
    /// Groups accepted in the window: `everybody`, `nobody` or phonebook groups.
    pub groups: Vec<String>,
}

/// An account's persistent accept rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAcceptRulesView {
    /// One rule per days mask.
    pub rules: Vec<AdminAcceptRuleView>,
}

/// The rule for a days mask (`PUT`; it adds or replaces).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAcceptRuleBody {
    /// Window start, `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Window end, `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub stop: String,
    /// Groups accepted: `everybody`, `nobody`, or phonebook groups (as in `/v1/me`).
    pub groups: Vec<String>,
}

/// A phonebook entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPhonebookEntry {
    /// The contact's SIP address.
    #[schema(min_length = 1, max_length = 255)]
    pub uri: String,
    /// Display name (at most 64 characters).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub name: String,
    /// Its groups (named groups, not `everybody`/`nobody`); at least one.
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

/// An account's phonebook.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPhonebookView {
    /// The entries.
    pub entries: Vec<AdminPhonebookEntry>,
}

fn names(groups: &[Group]) -> Vec<String> {
    groups.iter().map(|g| g.name().to_owned()).collect()
}

/// The query parameter `name`, required.
fn required(raw: Option<&str>, name: &str) -> Result<String, ApiError> {
    let q = query(raw, &[name])?;
    q.get(name)
        .map(str::to_owned)
        .ok_or_else(|| invalid(name, "is required"))
}

/// An account's reject patterns. Twin of `reject list`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/reject-rules", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Reject rules", body = AdminRejectRulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_reject_rules(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let s = admin.services(&state);
    s.account(&id).await?;
    let patterns = s
        .reject_patterns(&id)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(etag::read(&headers, &AdminRejectRulesView { patterns }))
}

/// Adds a reject pattern (409 if the account has it). Twin of `reject add`.
#[utoipa::path(post, path = "/v1/admin/accounts/{account}/reject-rules", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = AdminRejectBody, content_type = "application/json"),
    responses((status = 201, description = "Added: the pattern as stored", body = AdminRejectRulesView), AdminWriteErrors))]
pub(super) async fn admin_add_reject(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<AdminRejectBody>,
) -> ApiResult {
    let id = account_of(&path)?;
    let pattern = RejectPattern::parse(&b.pattern)?;
    admin.services(&state).add_reject(&id, &pattern).await?;
    Ok(etag::reply(
        StatusCode::CREATED,
        &AdminRejectRulesView {
            patterns: vec![pattern.to_string()],
        },
    ))
}

/// Removes a reject pattern (404 if the account has none such). Twin of `reject remove`.
#[utoipa::path(delete, path = "/v1/admin/accounts/{account}/reject-rules", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("pattern" = String, Query, min_length = 1, max_length = 255, description = "The pattern to remove")),
    responses((status = 204, description = "Removed"), AdminWriteErrors))]
pub(super) async fn admin_remove_reject(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let id = account_of(&path)?;
    let pattern = RejectPattern::parse(&required(raw.as_deref(), "pattern")?)?;
    admin.services(&state).remove_reject(&id, &pattern).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An account's persistent accept rules. Twin of `accept list`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/accept-rules", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Accept rules", body = AdminAcceptRulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_accept_rules(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let s = admin.services(&state);
    s.account(&id).await?;
    let rules = s
        .accept_rules(&id)
        .await?
        .persistent
        .iter()
        .map(|r| AdminAcceptRuleView {
            days: r.days.to_string(),
            start: r.start.to_string(),
            stop: r.stop.to_string(),
            groups: names(&r.groups),
        })
        .collect();
    Ok(etag::read(&headers, &AdminAcceptRulesView { rules }))
}

/// Adds or replaces the accept rule of a days mask. Twin of `accept add`.
#[utoipa::path(put, path = "/v1/admin/accounts/{account}/accept-rules/{days}", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("days" = u32, Path, minimum = 1, maximum = 127, description = "Days mask: Mon=1 … Sun=64")),
    request_body(content = AdminAcceptRuleBody, content_type = "application/json"),
    responses((status = 200, description = "The rule", body = AdminAcceptRuleView), AdminWriteErrors))]
pub(super) async fn admin_put_accept_rule(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam((account, days)): PathParam<(String, String)>,
    JsonBody(b): JsonBody<AdminAcceptRuleBody>,
) -> ApiResult {
    let id = account_of(&account)?;
    let rule = AcceptRule {
        days: DaysMask::parse(&days)?,
        start: ClockTime::parse_for("start", &b.start)?,
        stop: ClockTime::parse_for("stop", &b.stop)?,
        groups: Group::parse_each(&b.groups)?,
    };
    admin.services(&state).put_accept_rule(&id, &rule).await?;
    Ok(etag::reply(
        StatusCode::OK,
        &AdminAcceptRuleView {
            days: rule.days.to_string(),
            start: rule.start.to_string(),
            stop: rule.stop.to_string(),
            groups: names(&rule.groups),
        },
    ))
}

/// Removes the accept rule of a days mask. Twin of `accept remove`.
#[utoipa::path(delete, path = "/v1/admin/accounts/{account}/accept-rules/{days}", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("days" = u32, Path, minimum = 1, maximum = 127, description = "Days mask: Mon=1 … Sun=64")),
    responses((status = 204, description = "Removed"), AdminWriteErrors))]
pub(super) async fn admin_remove_accept_rule(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam((account, days)): PathParam<(String, String)>,
) -> ApiResult {
    let id = account_of(&account)?;
    let days = DaysMask::parse(&days)?;
    admin.services(&state).remove_accept_rule(&id, days).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An account's phonebook. Twin of `phonebook list`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/phonebook", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Phonebook", body = AdminPhonebookView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_phonebook(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let s = admin.services(&state);
    s.account(&id).await?;
    let entries = s
        .phonebook(&id)
        .await?
        .into_iter()
        .map(|e| AdminPhonebookEntry {
            uri: e.uri.to_string(),
            name: e.name,
            groups: e.groups,
        })
        .collect();
    Ok(etag::read(&headers, &AdminPhonebookView { entries }))
}

/// Adds or replaces a phonebook entry (by its URI). Twin of `phonebook add`.
#[utoipa::path(post, path = "/v1/admin/accounts/{account}/phonebook", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = AdminPhonebookEntry, content_type = "application/json"),
    responses((status = 200, description = "The entry", body = AdminPhonebookEntry), AdminWriteErrors))]
pub(super) async fn admin_put_phonebook_entry(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<AdminPhonebookEntry>,
) -> ApiResult {
    let id = account_of(&path)?;
    let entry = PhonebookEntry {
        uri: parse_contact_uri(&b.uri)?,
        name: parse_name("name", &b.name)?,
        groups: parse_phonebook_groups(&b.groups)?,
    };
    admin
        .services(&state)
        .put_phonebook_entry(&id, &entry)
        .await?;
    Ok(etag::reply(
        StatusCode::OK,
        &AdminPhonebookEntry {
            uri: entry.uri.to_string(),
            name: entry.name,
            groups: entry.groups,
        },
    ))
}

/// Removes a phonebook entry. Twin of `phonebook remove`.
#[utoipa::path(delete, path = "/v1/admin/accounts/{account}/phonebook", tag = "admin rules",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("uri" = String, Query, min_length = 1, max_length = 255, description = "The contact's SIP address")),
    responses((status = 204, description = "Removed"), AdminWriteErrors))]
pub(super) async fn admin_remove_phonebook_entry(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let id = account_of(&path)?;
    let uri = parse_contact_uri(&required(raw.as_deref(), "uri")?)?;
    admin
        .services(&state)
        .remove_phonebook_entry(&id, &uri)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
