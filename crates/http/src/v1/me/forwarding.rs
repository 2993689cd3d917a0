//! `/v1/me/diversions`: call forwarding per condition (tag `forwarding`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::account::check_no_answer_timeout;
use sip_settings_core::sip::Condition;
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, invalid, not_found};
use crate::v1::extract::{JsonBody, PathParam, nullable};
use crate::v1::write::change_view;

/// Call forwarding per condition (`GET /v1/me/diversions`). Targets are shown without the
/// `sip:` prefix (a `sips:` target keeps its scheme), or `<voice-mailbox>` / `<mobile-number>`;
/// `null` when the condition does not forward.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiversionsView {
    /// All calls.
    #[serde(rename = "FUNC")]
    pub func: Option<String>,
    /// When no device is registered.
    #[serde(rename = "FNOL")]
    pub fnol: Option<String>,
    /// When busy.
    #[serde(rename = "FBUS")]
    pub fbus: Option<String>,
    /// When nobody answers within `no_answer_timeout` seconds.
    #[serde(rename = "FNOA")]
    pub fnoa: Option<String>,
    /// When the accept rules or DND refuse the caller.
    #[serde(rename = "FUNV")]
    pub funv: Option<String>,
    /// Seconds a call rings before `FNOA` applies.
    pub no_answer_timeout: u32,
    /// Present and true when the account's forwarding rules (`/v1/me/forwarding-rules`) say
    /// more than these five conditions: then each condition shows its first simple rule.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rules: bool,
}

async fn diversions_view(s: &Services, id: &AccountId) -> Result<DiversionsView, ServiceError> {
    let account = s.account(id).await?;
    let forwarding = s.forwarding_of(id).await?;
    let d = forwarding.diversions();
    let get = |c| d.get(&c).map(|t| t.shown());
    Ok(DiversionsView {
        func: get(Condition::Unconditional),
        fnol: get(Condition::NotOnline),
        fbus: get(Condition::Busy),
        fnoa: get(Condition::NoAnswer),
        funv: get(Condition::NotAvailable),
        no_answer_timeout: account.profile.no_answer_timeout,
        rules: forwarding.richer(),
    })
}

/// All forwarding at once (`PUT /v1/me/diversions`): a condition that is absent, `null` or `""`
/// is cleared. `no_answer_timeout`, when present, is set too.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiversionsPut {
    /// Target for all calls.
    #[serde(rename = "FUNC", default)]
    pub func: Option<String>,
    /// Target when not online.
    #[serde(rename = "FNOL", default)]
    pub fnol: Option<String>,
    /// Target when busy.
    #[serde(rename = "FBUS", default)]
    pub fbus: Option<String>,
    /// Target on no answer.
    #[serde(rename = "FNOA", default)]
    pub fnoa: Option<String>,
    /// Target when not available.
    #[serde(rename = "FUNV", default)]
    pub funv: Option<String>,
    /// Seconds a call rings before `FNOA` applies (5–900).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 900)]
    pub no_answer_timeout: Option<u32>,
}

/// Some forwarding (`PATCH /v1/me/diversions`): an absent condition stays; `null` or `""`
/// clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiversionsPatch {
    /// Target for all calls.
    #[serde(rename = "FUNC", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub func: Option<Option<String>>,
    /// Target when not online.
    #[serde(rename = "FNOL", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub fnol: Option<Option<String>>,
    /// Target when busy.
    #[serde(rename = "FBUS", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub fbus: Option<Option<String>>,
    /// Target on no answer.
    #[serde(rename = "FNOA", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub fnoa: Option<Option<String>>,
    /// Target when not available.
    #[serde(rename = "FUNV", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub funv: Option<Option<String>>,
    /// Seconds a call rings before `FNOA` applies (5–900).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 900)]
    pub no_answer_timeout: Option<u32>,
}

/// Sets forwarding (validated all first by `set_diversions`, written in one transaction), then
/// the timeout (checked before anything is written).
async fn write_diversions(
    s: &Services,
    id: &AccountId,
    params: &[(Condition, String)],
    timeout: Option<u32>,
) -> Result<(), ServiceError> {
    let timeout = timeout.map(check_no_answer_timeout).transpose()?;
    s.set_diversions(id, params).await?;
    if let Some(t) = timeout {
        s.set_no_answer_timeout(id, t).await?;
    }
    Ok(())
}

/// Call forwarding per condition.
#[utoipa::path(get, path = "/v1/me/diversions", tag = "forwarding",
    responses((status = 200, description = "Forwarding", body = DiversionsView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &diversions_view(&state.services, &me.account).await?,
    ))
}

/// Replaces all forwarding: absent conditions are cleared.
#[utoipa::path(put, path = "/v1/me/diversions", tag = "forwarding",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DiversionsPut, content_type = "application/json"),
    responses((status = 200, description = "The new forwarding", body = DiversionsView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<DiversionsPut>,
) -> ApiResult {
    let params: Vec<(Condition, String)> = [
        (Condition::Unconditional, b.func),
        (Condition::NotOnline, b.fnol),
        (Condition::Busy, b.fbus),
        (Condition::NoAnswer, b.fnoa),
        (Condition::NotAvailable, b.funv),
    ]
    .into_iter()
    .map(|(c, v)| (c, v.unwrap_or_default()))
    .collect();
    change_view(&state, &me, &headers, diversions_view, async |s, id| {
        write_diversions(s, id, &params, b.no_answer_timeout).await
    })
    .await
}

/// Changes the conditions sent; the others stay.
#[utoipa::path(patch, path = "/v1/me/diversions", tag = "forwarding",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DiversionsPatch, content_type = "application/json"),
    responses((status = 200, description = "The new forwarding", body = DiversionsView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn patch_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<DiversionsPatch>,
) -> ApiResult {
    let params: Vec<(Condition, String)> = [
        (Condition::Unconditional, b.func),
        (Condition::NotOnline, b.fnol),
        (Condition::Busy, b.fbus),
        (Condition::NoAnswer, b.fnoa),
        (Condition::NotAvailable, b.funv),
    ]
    .into_iter()
    .filter_map(|(c, v)| v.map(|v| (c, v.unwrap_or_default())))
    .collect();
    change_view(&state, &me, &headers, diversions_view, async |s, id| {
        write_diversions(s, id, &params, b.no_answer_timeout).await
    })
    .await
}

/// One forwarding condition (`GET /v1/me/diversions/{condition}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiversionView {
    /// `FUNC`, `FNOL`, `FBUS`, `FNOA` or `FUNV`.
    pub condition: String,
    /// The target as object D shows it, or `null` when not set.
    pub target: Option<String>,
    /// The RFC 5806 `Diversion` reason a forward for this condition carries.
    pub reason: String,
}

/// A forwarding target (`PUT /v1/me/diversions/{condition}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiversionBody {
    /// A `sip:`/`sips:` URI, `user@host`, a user of the own domain, a phone number,
    /// `<voice-mailbox>` or `<mobile-number>`; `""` or `null` clears. Required.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, required = true)]
    pub target: Option<Option<String>>,
}

fn condition_of(path: String) -> Result<Condition, ApiError> {
    let raw = path;
    Condition::from_code(&raw.to_ascii_uppercase()).ok_or_else(|| {
        not_found(format!(
            "no forwarding condition {}; use FUNC, FNOL, FBUS, FNOA or FUNV",
            sip_settings_core::ids::printable(&raw)
        ))
    })
}

async fn diversion_view(
    s: &Services,
    id: &AccountId,
    c: Condition,
) -> Result<DiversionView, ServiceError> {
    let d = s.diversions(id).await?;
    Ok(DiversionView {
        condition: c.code().to_owned(),
        target: d.get(&c).map(|t| t.shown()),
        reason: c.diversion_reason().to_owned(),
    })
}

/// One forwarding condition.
#[utoipa::path(get, path = "/v1/me/diversions/{condition}", tag = "forwarding",
    params(("condition" = String, Path, description = "FUNC, FNOL, FBUS, FNOA or FUNV", pattern = "^(FUNC|FNOL|FBUS|FNOA|FUNV)$")),
    responses((status = 200, description = "The condition", body = DiversionView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let c = condition_of(path)?;
    Ok(etag::read(
        &headers,
        &diversion_view(&state.services, &me.account, c).await?,
    ))
}

async fn set_one_diversion(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    c: Condition,
    target: String,
) -> ApiResult {
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    etag::check(headers, Some(&diversion_view(&s, &me.account, c).await?))?;
    s.set_diversions(&me.account, &[(c, target)]).await?;
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &diversion_view(&s, &me.account, c).await?,
    ))
}

/// Sets (or with an empty target clears) one forwarding condition.
#[utoipa::path(put, path = "/v1/me/diversions/{condition}", tag = "forwarding",
    params(("condition" = String, Path, description = "FUNC, FNOL, FBUS, FNOA or FUNV", pattern = "^(FUNC|FNOL|FBUS|FNOA|FUNV)$"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DiversionBody, content_type = "application/json"),
    responses((status = 200, description = "The condition", body = DiversionView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<DiversionBody>,
) -> ApiResult {
    let c = condition_of(path)?;
    let Some(target) = b.target else {
        return Err(invalid(
            "target",
            "is required (null or \"\" clears the condition)",
        ));
    };
    set_one_diversion(&state, &me, &headers, c, target.unwrap_or_default()).await
}

/// Clears one forwarding condition.
#[utoipa::path(delete, path = "/v1/me/diversions/{condition}", tag = "forwarding",
    params(("condition" = String, Path, description = "FUNC, FNOL, FBUS, FNOA or FUNV", pattern = "^(FUNC|FNOL|FBUS|FNOA|FUNV)$"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "The cleared condition", body = DiversionView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn delete_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let c = condition_of(path)?;
    set_one_diversion(&state, &me, &headers, c, String::new()).await
}
