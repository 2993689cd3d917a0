//! `/v1/me/accept-rules`: who may call when, and the temporary rule (tag `accept rules`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sip_settings_core::calls::parse_time;
use sip_settings_core::settings::{AcceptRule, AcceptRules, ClockTime, DaysMask, Group};
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, not_found};
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::view::{created, time};
use crate::v1::write::{change_view, remove_item};

/// A persistent accept rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptRuleView {
    /// Days mask: Mon=1 … Sun=64 (31 weekdays, 96 weekend, 127 every day).
    pub days: u8,
    /// Window start `HH:MM` in the account's time zone.
    pub start: String,
    /// Window end `HH:MM` (before `start`: the window crosses midnight).
    pub stop: String,
    /// Who is accepted in the window: `everybody`, `nobody` or phonebook groups.
    pub groups: Vec<String>,
}

/// The temporary rule (DND is the temporary rule `nobody`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TemporaryRuleView {
    /// Whether a temporary rule is in force now.
    pub active: bool,
    /// Who is accepted while it is in force (empty when none).
    pub groups: Vec<String>,
    /// When it lapses by itself (RFC 3339), or `null` (until removed, or none).
    pub until: Option<String>,
    /// Whole minutes left, rounded up, or `null` without an end.
    pub remaining_minutes: Option<i64>,
}

/// The accept rules (`GET /v1/me/accept-rules`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptRulesView {
    /// Persistent rules, by days mask.
    pub persistent: Vec<AcceptRuleView>,
    /// The temporary rule, overriding the persistent ones while active.
    pub temporary: TemporaryRuleView,
    /// The phonebook groups rules can name.
    pub phonebook_groups: Vec<String>,
}

fn names(groups: &[Group]) -> Vec<String> {
    groups.iter().map(|g| g.name().to_owned()).collect()
}

fn rule_view(r: &AcceptRule) -> AcceptRuleView {
    AcceptRuleView {
        days: r.days.value(),
        start: r.start.to_string(),
        stop: r.stop.to_string(),
        groups: names(&r.groups),
    }
}

fn temporary_view(rules: &AcceptRules, now: DateTime<Utc>) -> TemporaryRuleView {
    match rules.active_temporary(now) {
        Some(t) => TemporaryRuleView {
            active: true,
            groups: names(&t.groups),
            until: t.until.map(time),
            remaining_minutes: t.remaining_minutes(now),
        },
        None => TemporaryRuleView {
            active: false,
            groups: vec![],
            until: None,
            remaining_minutes: None,
        },
    }
}

async fn accept_view(s: &Services, id: &AccountId) -> Result<AcceptRulesView, ServiceError> {
    s.account(id).await?;
    let rules = s.accept_rules(id).await?;
    let mut persistent: Vec<AcceptRuleView> = rules.persistent.iter().map(rule_view).collect();
    persistent.sort_by_key(|r| r.days);
    Ok(AcceptRulesView {
        persistent,
        temporary: temporary_view(&rules, s.clock().now()),
        phonebook_groups: s.phonebook_groups(id).await?,
    })
}

/// A persistent accept rule (`PUT /v1/me/accept-rules/{days}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRuleBody {
    /// Window start `HH:MM` (00:00–23:59).
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Window end `HH:MM`; equal to `start` means the whole day.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub stop: String,
    /// `["everybody"]`, `["nobody"]` or phonebook groups.
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

/// The temporary rule (`PUT /v1/me/accept-rules/temporary`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporaryRuleBody {
    /// Who is accepted: `["everybody"]`, `["nobody"]` (DND) or phonebook groups.
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
    /// When it lapses (RFC 3339, in the future, at most a week ahead); absent or `null`: until
    /// removed.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

fn days_of(path: String) -> Result<DaysMask, ApiError> {
    let raw = path;
    Ok(DaysMask::parse(&raw)?)
}

async fn rule_of(
    s: &Services,
    id: &AccountId,
    days: DaysMask,
) -> Result<Option<AcceptRuleView>, ServiceError> {
    Ok(s.accept_rules(id)
        .await?
        .persistent
        .iter()
        .find(|r| r.days == days)
        .map(rule_view))
}

/// The accept rules: persistent rules per days mask and the temporary rule.
#[utoipa::path(get, path = "/v1/me/accept-rules", tag = "accept rules",
    responses((status = 200, description = "Accept rules", body = AcceptRulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_accept_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &accept_view(&state.services, &me.account).await?,
    ))
}

/// One persistent accept rule.
#[utoipa::path(get, path = "/v1/me/accept-rules/{days}", tag = "accept rules",
    params(("days" = u8, Path, minimum = 1, maximum = 127, description = "Days mask 1–127")),
    responses((status = 200, description = "The rule", body = AcceptRuleView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let days = days_of(path)?;
    match rule_of(&state.services, &me.account, days).await? {
        Some(r) => Ok(etag::read(&headers, &r)),
        None => Err(not_found(format!("no accept rule for days {days}"))),
    }
}

/// Creates (201) or replaces (200) the persistent accept rule of a days mask.
#[utoipa::path(put, path = "/v1/me/accept-rules/{days}", tag = "accept rules",
    params(("days" = u8, Path, minimum = 1, maximum = 127, description = "Days mask 1–127"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = AcceptRuleBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = AcceptRuleView,
            headers(("ETag" = String, description = "Entity tag of the new representation"))),
        (status = 201, description = "Created", body = AcceptRuleView,
            headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The rule"))),
        WriteErrors))]
pub(super) async fn put_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<AcceptRuleBody>,
) -> ApiResult {
    let days = days_of(path)?;
    let rule = AcceptRule {
        days,
        start: ClockTime::parse_for("start", &b.start)?,
        stop: ClockTime::parse_for("stop", &b.stop)?,
        groups: Group::parse_each(&b.groups)?,
    };
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, rule_of(&s, &me.account, days).await?.as_ref())?;
    let replaced = s.put_accept_rule(&me.account, &rule).await?;
    s.commit().await?;
    let view = rule_view(&rule);
    Ok(if replaced {
        etag::reply(StatusCode::OK, &view)
    } else {
        created(&format!("/v1/me/accept-rules/{days}"), &view)
    })
}

/// Removes the persistent accept rule of a days mask.
#[utoipa::path(delete, path = "/v1/me/accept-rules/{days}", tag = "accept rules",
    params(("days" = u8, Path, minimum = 1, maximum = 127, description = "Days mask 1–127"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
pub(super) async fn delete_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let days = days_of(path)?;
    remove_item(
        &state,
        &me,
        &headers,
        format!("accept rule for days {days}"),
        async |s, id| rule_of(s, id, days).await,
        async |s, id| s.remove_accept_rule(id, days).await,
    )
    .await
}

async fn temporary_of(s: &Services, id: &AccountId) -> Result<TemporaryRuleView, ServiceError> {
    s.account(id).await?;
    Ok(temporary_view(&s.accept_rules(id).await?, s.clock().now()))
}

/// The temporary rule (inactive when there is none).
#[utoipa::path(get, path = "/v1/me/accept-rules/temporary", tag = "accept rules",
    responses((status = 200, description = "The temporary rule", body = TemporaryRuleView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &temporary_of(&state.services, &me.account).await?,
    ))
}

/// Sets the temporary rule: accept only `groups` until `until` (or until removed).
#[utoipa::path(put, path = "/v1/me/accept-rules/temporary", tag = "accept rules",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = TemporaryRuleBody, content_type = "application/json"),
    responses((status = 200, description = "The temporary rule", body = TemporaryRuleView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<TemporaryRuleBody>,
) -> ApiResult {
    let groups = Group::parse_each(&b.groups)?;
    let until = b
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?;
    change_view(&state, &me, &headers, temporary_of, async |s, id| {
        s.set_temporary_rule(id, groups, until).await
    })
    .await
}

/// Removes the temporary rule, whatever its groups (a DND too).
#[utoipa::path(delete, path = "/v1/me/accept-rules/temporary", tag = "accept rules",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "The (now inactive) temporary rule", body = TemporaryRuleView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn delete_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    change_view(&state, &me, &headers, temporary_of, async |s, id| {
        s.clear_temporary_rule(id).await
    })
    .await
}
