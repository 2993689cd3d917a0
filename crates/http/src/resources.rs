//! The resource API for subscribers under `/v1/me/`: JSON in and out, problem documents for
//! errors, an `ETag` on every representation and `If-Match` on every write (see [`crate::etag`]),
//! rate limits per certificate and address on every route. Every handler calls the same `core`
//! service functions as the action endpoint; changes go through [`Subscriber::services`], so the
//! journal records them as made through the `v1` door.
//!
//! The routes are registered from the annotated handlers ([`routes`]), so the OpenAPI document
//! (`/v1/openapi.json`, [`crate::openapi`]) cannot drift from them.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sip_settings_core::account::{
    Account, AccountUpdate, check_no_answer_timeout, parse_language, parse_name,
};
use sip_settings_core::billing_service::{month_bounds, parse_month};
use sip_settings_core::calls::{CallRecord, Direction, parse_time};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::routing::CallState;
use sip_settings_core::settings::{
    AcceptRule, AcceptRules, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern,
    VoicemailDelivery, parse_contact_uri, parse_phonebook_groups,
};
use sip_settings_core::sip::{Condition, SipUri};
use sip_settings_core::{AccountId, E164, Email, Serial, ServiceError, Services, TimeZone};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::etag;
use crate::explain::{self, Explanation};
use crate::identity::Subscriber;
use crate::openapi::{ReadErrors, WriteErrors};
use crate::problem::problem;
use crate::ratelimit::Kind;
use crate::v1::{
    ApiError, ApiResult, bool_param, invalid, json_body, not_found, nullable, number_param,
    path_param, query,
};

/// The `/v1/me` routes, each registered from its annotated handler.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_account, patch_account))
        .routes(routes!(get_diversions, put_diversions, patch_diversions))
        .routes(routes!(get_diversion, put_diversion, delete_diversion))
        .routes(routes!(get_accept_rules))
        .routes(routes!(
            get_temporary_rule,
            put_temporary_rule,
            delete_temporary_rule
        ))
        .routes(routes!(
            get_accept_rule,
            put_accept_rule,
            delete_accept_rule
        ))
        .routes(routes!(get_reject_rules, post_reject_rule))
        .routes(routes!(get_reject_rule, delete_reject_rule))
        .routes(routes!(get_dnd, put_dnd, delete_dnd))
        .routes(routes!(get_privacy, put_privacy))
        .routes(routes!(get_aliases, post_alias))
        .routes(routes!(get_alias, delete_alias))
        .routes(routes!(get_enum))
        .routes(routes!(get_calls))
        .routes(routes!(get_prepaid))
        .routes(routes!(get_devices))
        .routes(routes!(get_balance_history))
        .routes(routes!(get_usage))
        .routes(routes!(
            get_voicemail,
            put_voicemail,
            patch_voicemail,
            delete_voicemail
        ))
        .routes(routes!(get_phonebook, post_phonebook_entry))
        .routes(routes!(
            get_phonebook_entry,
            put_phonebook_entry,
            delete_phonebook_entry
        ))
        .routes(routes!(list_certificates, issue_certificate))
        .routes(routes!(get_certificate, revoke_certificate))
        .routes(routes!(journal))
        .routes(routes!(explain_route))
}

/// Takes one token of the subscriber's `kind` budget (per certificate and per address); over the
/// limit the reply is `429` with `Retry-After`.
pub fn limited(state: &AppState, me: &Subscriber, kind: Kind) -> Result<(), Box<Response>> {
    state
        .limiter
        .check(
            Some(&me.serial),
            me.addr.ip(),
            kind,
            state.services.clock().now(),
        )
        .map_err(|wait| {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("too many requests, try again in {wait} s"),
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Box::new(r)
        })
}

fn limit(state: &AppState, me: &Subscriber, kind: Kind) -> Result<(), ApiError> {
    limited(state, me, kind).map_err(ApiError)
}

/// The write of a resource read as one view: under the account's write lock the current view
/// must match `If-Match` (412 otherwise), then `change` runs, and the reply is the new view
/// with its ETag.
async fn change_view<V: Serialize, R>(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    view: impl AsyncFn(&Services, &AccountId) -> Result<V, ServiceError>,
    change: impl AsyncFnOnce(&Services, &AccountId) -> Result<R, ServiceError>,
) -> ApiResult {
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    etag::check(headers, Some(&view(&s, &me.account).await?))?;
    change(&s, &me.account).await?;
    s.commit().await?;
    Ok(etag::reply(StatusCode::OK, &view(&s, &me.account).await?))
}

/// The removal of one item of a collection: under the account's write lock the item must exist
/// (404 naming `what` otherwise) and match `If-Match` (412), then `remove` runs: 204.
async fn remove_item<V: Serialize, R>(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    what: String,
    current: impl AsyncFnOnce(&Services, &AccountId) -> Result<Option<V>, ServiceError>,
    remove: impl AsyncFnOnce(&Services, &AccountId) -> Result<R, ServiceError>,
) -> ApiResult {
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    let Some(current) = current(&s, &me.account).await? else {
        return Err(not_found(format!("no {what}")));
    };
    etag::check(headers, Some(&current))?;
    remove(&s, &me.account).await?;
    s.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn local(account: &Account, t: DateTime<Utc>) -> String {
    crate::objects::local_time(account, t)
}

fn created(location: &str, value: &impl Serialize) -> Response {
    let mut r = etag::reply(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

// ===== /v1/me =====================================================================================

/// The account (`GET /v1/me`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// `user@domain`.
    pub address: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Notification e-mail address.
    pub email: Option<String>,
    /// IANA time zone in which accept rules are evaluated and times are shown.
    pub timezone: String,
    /// Mobile number (`+E164`), the `<mobile-number>` forwarding target.
    pub mobile: Option<String>,
    /// Caller id on calls to the PSTN (set by the operator).
    pub pstn_caller_id: Option<String>,
    /// Language tag.
    pub language: String,
    /// Seconds a call rings before `FNOA` applies (5–900).
    pub no_answer_timeout: u32,
    /// Quick-dial prefix (set by the operator).
    pub quick_dial: Option<String>,
    /// Caller-id privacy on outgoing calls.
    pub privacy: bool,
    /// Whether Do Not Disturb is in force now.
    pub dnd: bool,
    /// Whether calls are paid from a prepaid balance (set by the operator).
    pub prepaid: bool,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

async fn account_view(s: &Services, id: &AccountId) -> Result<AccountView, ServiceError> {
    let a = s.account(id).await?;
    let dnd = s.dnd_active(id).await?;
    let p = &a.profile;
    Ok(AccountView {
        address: a.id.to_string(),
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        email: p.email.as_ref().map(ToString::to_string),
        timezone: p.timezone.name().to_owned(),
        mobile: p.mobile.as_ref().map(ToString::to_string),
        pstn_caller_id: p.pstn_caller_id.as_ref().map(ToString::to_string),
        language: p.language.clone(),
        no_answer_timeout: p.no_answer_timeout,
        quick_dial: p.quick_dial.clone(),
        privacy: a.privacy,
        dnd,
        prepaid: a.prepaid,
        created_at: time(a.created_at),
    })
}

/// A change of the account (`PATCH /v1/me`): absent fields stay; `email` and `mobile` are
/// cleared with `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// Given name (at most 64 characters).
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name (at most 64 characters).
    #[serde(default)]
    pub last_name: Option<String>,
    /// Notification e-mail; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// IANA time zone such as `Europe/Amsterdam`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Mobile number `+E164`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    /// Language tag (`en`, `nl`, `pt-BR`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2}|-[A-Za-z0-9]{4})?$")]
    pub language: Option<String>,
    /// Seconds a call rings before `FNOA` applies (5–900).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 900)]
    pub no_answer_timeout: Option<u32>,
}

/// A clearable field: absent stays, `null` or `""` clears, else parsed.
fn clearable<T>(
    v: &Option<Option<String>>,
    parse: impl Fn(&str) -> Result<T, ServiceError>,
) -> Result<Option<Option<T>>, ServiceError> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(s)) if s.trim().is_empty() => Ok(Some(None)),
        Some(Some(s)) => parse(s).map(|x| Some(Some(x))),
    }
}

impl AccountPatch {
    fn parse(&self) -> Result<AccountUpdate, ServiceError> {
        Ok(AccountUpdate {
            first_name: self
                .first_name
                .as_deref()
                .map(|s| parse_name("first_name", s))
                .transpose()?,
            last_name: self
                .last_name
                .as_deref()
                .map(|s| parse_name("last_name", s))
                .transpose()?,
            email: clearable(&self.email, |s| Email::parse_for("email", s))?,
            timezone: self
                .timezone
                .as_deref()
                .map(|s| TimeZone::parse_for("timezone", s))
                .transpose()?,
            mobile: clearable(&self.mobile, |s| E164::parse_for("mobile", s))?,
            pstn_caller_id: None,
            language: self
                .language
                .as_deref()
                .map(|s| parse_language(s).map_err(|e| e.renamed("language")))
                .transpose()?,
            no_answer_timeout: self
                .no_answer_timeout
                .map(check_no_answer_timeout)
                .transpose()?,
            prepaid: None,
        })
    }
}

/// The account.
#[utoipa::path(get, path = "/v1/me", tag = "account",
    responses((status = 200, description = "The account", body = AccountView,
        headers(("ETag" = String, description = "Strong entity tag of this representation"))), ReadErrors))]
async fn get_account(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &account_view(&state.services, &me.account).await?,
    ))
}

/// Changes profile fields of the account.
#[utoipa::path(patch, path = "/v1/me", tag = "account",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = AccountPatch, content_type = "application/json"),
    responses((status = 200, description = "The changed account", body = AccountView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn patch_account(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let patch: AccountPatch = json_body(body).await?;
    let update = patch.parse()?;
    change_view(&state, &me, &headers, account_view, async |s, id| {
        s.update_account(id, &update).await
    })
    .await
}

// ===== diversions =================================================================================

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
}

async fn diversions_view(s: &Services, id: &AccountId) -> Result<DiversionsView, ServiceError> {
    let account = s.account(id).await?;
    let d = s.diversions(id).await?;
    let get = |c| d.get(&c).map(|t| t.shown());
    Ok(DiversionsView {
        func: get(Condition::Unconditional),
        fnol: get(Condition::NotOnline),
        fbus: get(Condition::Busy),
        fnoa: get(Condition::NoAnswer),
        funv: get(Condition::NotAvailable),
        no_answer_timeout: account.profile.no_answer_timeout,
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
async fn get_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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
async fn put_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: DiversionsPut = json_body(body).await?;
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
async fn patch_diversions(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: DiversionsPatch = json_body(body).await?;
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

fn condition_of(path: Result<Path<String>, PathRejection>) -> Result<Condition, ApiError> {
    let raw = path_param(path, "condition")?;
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
async fn get_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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
async fn put_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let c = condition_of(path)?;
    let b: DiversionBody = json_body(body).await?;
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
async fn delete_diversion(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let c = condition_of(path)?;
    set_one_diversion(&state, &me, &headers, c, String::new()).await
}

// ===== accept rules ===============================================================================

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

fn parse_groups(list: &[String]) -> Result<Vec<Group>, ServiceError> {
    let mut groups = Vec::new();
    for (i, g) in list.iter().enumerate() {
        let group = Group::parse(g).map_err(|e| e.renamed(&format!("groups[{i}]")))?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Group::check_list(groups)
}

fn days_of(path: Result<Path<String>, PathRejection>) -> Result<DaysMask, ApiError> {
    let raw = path_param(path, "days")?;
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
async fn get_accept_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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
async fn get_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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
async fn put_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let days = days_of(path)?;
    let b: AcceptRuleBody = json_body(body).await?;
    let rule = AcceptRule {
        days,
        start: ClockTime::parse_for("start", &b.start)?,
        stop: ClockTime::parse_for("stop", &b.stop)?,
        groups: parse_groups(&b.groups)?,
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
async fn delete_accept_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
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
async fn get_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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
async fn put_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: TemporaryRuleBody = json_body(body).await?;
    let groups = parse_groups(&b.groups)?;
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
async fn delete_temporary_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    change_view(&state, &me, &headers, temporary_of, async |s, id| {
        s.clear_temporary_rule(id).await
    })
    .await
}

// ===== reject rules ===============================================================================

/// The reject rules (`GET /v1/me/reject-rules`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectRulesView {
    /// Patterns `sip:user@domain` where `%` matches any run of characters, sorted.
    pub patterns: Vec<String>,
}

/// One reject rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRuleView {
    /// The pattern, e.g. `sip:%0900@%` or `sip:spam@example.net`, or `anonymous` (refuses
    /// anonymous callers with 433).
    #[schema(pattern = "^[Ss][Ii][Pp]:[^@]+@.+$", max_length = 255)]
    pub pattern: String,
}

async fn reject_view(s: &Services, id: &AccountId) -> Result<RejectRulesView, ServiceError> {
    s.account(id).await?;
    let mut patterns: Vec<String> = s
        .reject_patterns(id)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    patterns.sort();
    Ok(RejectRulesView { patterns })
}

async fn reject_of(
    s: &Services,
    id: &AccountId,
    pattern: &RejectPattern,
) -> Result<Option<RejectRuleView>, ServiceError> {
    Ok(s.reject_patterns(id)
        .await?
        .iter()
        .find(|p| *p == pattern)
        .map(|p| RejectRuleView {
            pattern: p.to_string(),
        }))
}

fn pattern_of(path: Result<Path<String>, PathRejection>) -> Result<RejectPattern, ApiError> {
    Ok(RejectPattern::parse(&path_param(path, "pattern")?)?)
}

/// The reject rules.
#[utoipa::path(get, path = "/v1/me/reject-rules", tag = "reject rules",
    responses((status = 200, description = "Reject rules", body = RejectRulesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_reject_rules(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &reject_view(&state.services, &me.account).await?,
    ))
}

/// Adds a reject rule (409 if it exists).
#[utoipa::path(post, path = "/v1/me/reject-rules", tag = "reject rules",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = RejectRuleView, content_type = "application/json"),
    responses((status = 201, description = "Added", body = RejectRuleView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The rule"))), WriteErrors))]
async fn post_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: RejectRuleView = json_body(body).await?;
    let pattern = RejectPattern::parse(&b.pattern)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&reject_view(&s, &me.account).await?))?;
    s.add_reject(&me.account, &pattern).await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/reject-rules/{}", encode_segment(pattern.as_str())),
        &RejectRuleView {
            pattern: pattern.to_string(),
        },
    ))
}

/// One reject rule (the pattern percent-encoded in the path: `%` is `%25`).
#[utoipa::path(get, path = "/v1/me/reject-rules/{pattern}", tag = "reject rules",
    params(("pattern" = String, Path, description = "The pattern, percent-encoded")),
    responses((status = 200, description = "The rule", body = RejectRuleView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let pattern = pattern_of(path)?;
    match reject_of(&state.services, &me.account, &pattern).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no reject rule {pattern}"))),
    }
}

/// Removes a reject rule.
#[utoipa::path(delete, path = "/v1/me/reject-rules/{pattern}", tag = "reject rules",
    params(("pattern" = String, Path, description = "The pattern, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
async fn delete_reject_rule(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let pattern = pattern_of(path)?;
    remove_item(
        &state,
        &me,
        &headers,
        format!("reject rule {pattern}"),
        async |s, id| reject_of(s, id, &pattern).await,
        async |s, id| s.remove_reject(id, &pattern).await,
    )
    .await
}

// ===== DND, privacy ===============================================================================

/// Do Not Disturb (`GET /v1/me/dnd`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DndView {
    /// Whether DND is in force now.
    pub on: bool,
    /// When it ends by itself (RFC 3339), or `null` (until turned off, or off).
    pub until: Option<String>,
    /// Whole minutes left, rounded up, or `null`.
    pub remaining_minutes: Option<i64>,
}

/// Turns DND on or off (`PUT /v1/me/dnd`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DndBody {
    /// `true` (default) turns DND on, `false` off.
    #[serde(default)]
    pub on: Option<bool>,
    /// End time (RFC 3339, in the future, at most a week ahead).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Minutes (1–10080) instead of `until`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    pub duration: Option<u32>,
}

async fn dnd_view(s: &Services, id: &AccountId) -> Result<DndView, ServiceError> {
    s.account(id).await?;
    let rules = s.accept_rules(id).await?;
    let now = s.clock().now();
    Ok(match rules.active_temporary(now).filter(|t| t.is_dnd()) {
        Some(t) => DndView {
            on: true,
            until: t.until.map(time),
            remaining_minutes: t.remaining_minutes(now),
        },
        None => DndView {
            on: false,
            until: None,
            remaining_minutes: None,
        },
    })
}

/// Whether DND is on.
#[utoipa::path(get, path = "/v1/me/dnd", tag = "dnd",
    responses((status = 200, description = "DND", body = DndView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_dnd(State(state): State<AppState>, me: Subscriber, headers: HeaderMap) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &dnd_view(&state.services, &me.account).await?,
    ))
}

/// Turns DND on (until `until`, for `duration` minutes, or until turned off) or off
/// (`{"on": false}`). DND never changes the persistent accept rules.
#[utoipa::path(put, path = "/v1/me/dnd", tag = "dnd",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DndBody, content_type = "application/json"),
    responses((status = 200, description = "DND", body = DndView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn put_dnd(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: DndBody = json_body(body).await?;
    let on = b.on.unwrap_or(true);
    if !on && (b.until.is_some() || b.duration.is_some()) {
        let field = if b.until.is_some() {
            "until"
        } else {
            "duration"
        };
        return Err(invalid(field, "cannot be given when on is false"));
    }
    if b.until.is_some() && b.duration.is_some() {
        return Err(invalid("duration", "cannot be given together with until"));
    }
    let until = b
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?;
    let minutes = b.duration.map(|d| d.to_string());
    change_view(&state, &me, &headers, dnd_view, async |s, id| {
        if !on {
            s.dnd_off(id).await.map(drop)
        } else if let Some(u) = until {
            s.set_temporary_rule(id, vec![Group::Nobody], Some(u))
                .await
                .map(drop)
        } else {
            s.dnd_on(id, minutes.as_deref()).await.map(drop)
        }
    })
    .await
}

/// Turns DND off (a temporary rule of other groups stays).
#[utoipa::path(delete, path = "/v1/me/dnd", tag = "dnd",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "DND (now off)", body = DndView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn delete_dnd(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    change_view(&state, &me, &headers, dnd_view, async |s, id| {
        s.dnd_off(id).await
    })
    .await
}

/// Caller-id privacy (`GET`/`PUT /v1/me/privacy`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyView {
    /// Whether the caller id is hidden on outgoing calls.
    pub on: bool,
}

async fn privacy_view(s: &Services, id: &AccountId) -> Result<PrivacyView, ServiceError> {
    Ok(PrivacyView {
        on: s.account(id).await?.privacy,
    })
}

/// Whether caller-id privacy is on.
#[utoipa::path(get, path = "/v1/me/privacy", tag = "privacy",
    responses((status = 200, description = "Privacy", body = PrivacyView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_privacy(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &privacy_view(&state.services, &me.account).await?,
    ))
}

/// Turns caller-id privacy on or off.
#[utoipa::path(put, path = "/v1/me/privacy", tag = "privacy",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = PrivacyView, content_type = "application/json"),
    responses((status = 200, description = "Privacy", body = PrivacyView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn put_privacy(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: PrivacyView = json_body(body).await?;
    change_view(&state, &me, &headers, privacy_view, async |s, id| {
        s.set_privacy(id, b.on).await
    })
    .await
}

// ===== aliases, ENUM ==============================================================================

/// The aliases of the account (`GET /v1/me/aliases`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasesView {
    /// `alias@domain`, sorted.
    pub aliases: Vec<String>,
    /// How many aliases an account may have.
    pub limit: u32,
}

/// One alias.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasView {
    /// `alias@domain`.
    pub alias: String,
}

/// A new alias (`POST /v1/me/aliases`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    /// The user part: `[a-z0-9][a-z0-9._-]{0,63}` (lower-cased); the alias is
    /// `username@<own domain>`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub username: String,
}

async fn aliases_view(s: &Services, id: &AccountId) -> Result<AliasesView, ServiceError> {
    s.account(id).await?;
    let mut aliases: Vec<String> = s
        .aliases(id)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    aliases.sort();
    Ok(AliasesView {
        aliases,
        limit: s.config().alias_limit,
    })
}

/// The alias named in the path: `name@domain`, or a bare `name` in the own domain.
fn alias_of(
    me: &Subscriber,
    path: Result<Path<String>, PathRejection>,
) -> Result<AccountId, ApiError> {
    let raw = path_param(path, "alias")?;
    let full = if raw.contains('@') {
        raw
    } else {
        format!("{raw}@{}", me.account.domain())
    };
    Ok(AccountId::parse_for("alias", &full)?)
}

async fn alias_view(
    s: &Services,
    id: &AccountId,
    alias: &AccountId,
) -> Result<Option<AliasView>, ServiceError> {
    Ok(s.aliases(id)
        .await?
        .iter()
        .find(|a| *a == alias)
        .map(|a| AliasView {
            alias: a.to_string(),
        }))
}

/// The aliases of the account.
#[utoipa::path(get, path = "/v1/me/aliases", tag = "aliases",
    responses((status = 200, description = "Aliases", body = AliasesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_aliases(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &aliases_view(&state.services, &me.account).await?,
    ))
}

/// Adds `username@<own domain>` as an alias (409 if taken or at the limit).
#[utoipa::path(post, path = "/v1/me/aliases", tag = "aliases",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = AliasBody, content_type = "application/json"),
    responses((status = 201, description = "Added", body = AliasView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The alias"))), WriteErrors))]
async fn post_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: AliasBody = json_body(body).await?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&aliases_view(&s, &me.account).await?))?;
    let alias = s.add_own_alias(&me.account, &b.username).await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/aliases/{}", encode_segment(&alias.to_string())),
        &AliasView {
            alias: alias.to_string(),
        },
    ))
}

/// One alias of the account.
#[utoipa::path(get, path = "/v1/me/aliases/{alias}", tag = "aliases",
    params(("alias" = String, Path, description = "`alias@domain` or the bare user part")),
    responses((status = 200, description = "The alias", body = AliasView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let alias = alias_of(&me, path)?;
    match alias_view(&state.services, &me.account, &alias).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("{} has no alias {alias}", me.account))),
    }
}

/// Removes one of the account's own aliases (another account's alias is 404).
#[utoipa::path(delete, path = "/v1/me/aliases/{alias}", tag = "aliases",
    params(("alias" = String, Path, description = "`alias@domain` or the bare user part"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
async fn delete_alias(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let alias = alias_of(&me, path)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    let current = alias_view(&s, &me.account, &alias).await?;
    if current.is_some() {
        etag::check(&headers, current.as_ref())?;
    }
    s.remove_own_alias(&me.account, &alias).await?;
    s.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The ENUM numbers of the account (`GET /v1/me/enum`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EnumView {
    /// `+E164` numbers mapped to the account by the operator, sorted.
    pub numbers: Vec<String>,
}

/// The ENUM numbers mapped to the account.
#[utoipa::path(get, path = "/v1/me/enum", tag = "aliases",
    responses((status = 200, description = "ENUM numbers", body = EnumView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_enum(State(state): State<AppState>, me: Subscriber, headers: HeaderMap) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let mut numbers: Vec<String> = state
        .services
        .enum_numbers(&me.account)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    numbers.sort();
    Ok(etag::read(&headers, &EnumView { numbers }))
}

// ===== calls, prepaid, history, usage =============================================================

/// One call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    /// SIP Call-ID.
    pub call_id: String,
    /// `placed` or `received`.
    pub direction: String,
    /// The other party's SIP URI.
    pub remote_party: String,
    /// Caller SIP URI.
    pub caller: String,
    /// Callee SIP URI.
    pub callee: String,
    /// Start (RFC 3339, UTC).
    pub start: String,
    /// Stop (RFC 3339, UTC).
    pub stop: String,
    /// Start in the account's time zone, `YYYY-MM-DD HH:MM:SS`.
    pub start_local: String,
    /// The account's time zone.
    pub timezone: String,
    /// Seconds.
    pub duration: u32,
    /// SIP final status.
    pub status: u16,
    /// Price (decimal string) of a placed, rated call.
    pub price: Option<String>,
    /// Media types.
    pub media: Vec<String>,
    /// From tag.
    pub from_tag: String,
    /// To tag.
    pub to_tag: String,
    /// Address of the proxy.
    pub proxy_ip: String,
}

/// A page of calls (`GET /v1/me/calls`), newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallsPage {
    /// The calls of this page.
    pub calls: Vec<CallView>,
    /// Cursor of the next (older) page, or `null` on the last page.
    pub next: Option<String>,
}

/// Most calls per direction one request considers (the store lists newest first from a start
/// time; pages beyond this many newer calls cannot be reached).
const CALLS_WINDOW: u32 = 10_000;

type CallKey = (DateTime<Utc>, u8, String);

fn call_key(dir: Direction, c: &CallRecord) -> CallKey {
    let d = match dir {
        Direction::Placed => 0,
        Direction::Received => 1,
    };
    (c.start, d, c.call_id.clone())
}

fn encode_cursor(key: &CallKey) -> String {
    hex::encode(format!("{}|{}|{}", key.0.timestamp_micros(), key.1, key.2))
}

fn decode_cursor(raw: &str) -> Result<CallKey, ApiError> {
    let bad = || {
        invalid(
            "cursor",
            "is not a cursor returned as next by this resource",
        )
    };
    let bytes = hex::decode(raw.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let call_id = parts.next().ok_or_else(bad)?.to_owned();
    let start = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    if d > 1 {
        return Err(bad());
    }
    Ok((start, d, call_id))
}

fn call_view(account: &Account, dir: Direction, c: &CallRecord) -> CallView {
    let placed = dir == Direction::Placed;
    CallView {
        call_id: c.call_id.clone(),
        direction: dir.as_str().to_owned(),
        remote_party: if placed { &c.callee } else { &c.caller }.to_string(),
        caller: c.caller.to_string(),
        callee: c.callee.to_string(),
        start: time(c.start),
        stop: time(c.stop),
        start_local: local(account, c.start),
        timezone: account.profile.timezone.name().to_owned(),
        duration: c.duration,
        status: c.status,
        price: if placed {
            c.price.map(|p| p.to_string())
        } else {
            None
        },
        media: c.media.clone(),
        from_tag: c.from_tag.clone(),
        to_tag: c.to_tag.clone(),
        proxy_ip: c.proxy_ip.clone(),
    }
}

/// Completed calls, newest first, with cursor pagination and time filters.
#[utoipa::path(get, path = "/v1/me/calls", tag = "calls",
    params(
        ("direction" = Option<String>, Query, description = "`placed` or `received` (default both)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Calls that started at or after this time (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Calls that started before this time (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next` of the previous page")),
    responses((status = 200, description = "A page of calls", body = CallsPage,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_calls(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let q = query(
        raw.as_deref(),
        &["direction", "from", "to", "limit", "cursor"],
    )?;
    let directions: &[Direction] = match q.get("direction") {
        None | Some("") => &[Direction::Placed, Direction::Received],
        Some("placed") => &[Direction::Placed],
        Some("received") => &[Direction::Received],
        Some(_) => return Err(invalid("direction", "must be placed or received")),
    };
    let from = match q.get("from") {
        Some(v) => parse_time("from", v)?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    let to = q.get("to").map(|v| parse_time("to", v)).transpose()?;
    let page = number_param(&q, "limit", 1..=500, 50)? as usize;
    let cursor = q.get("cursor").map(decode_cursor).transpose()?;
    let s = &state.services;
    let account = s.account(&me.account).await?;
    let mut all: Vec<(CallKey, CallView)> = Vec::new();
    for &dir in directions {
        for c in s
            .store()
            .list_calls(&me.account, dir, from, CALLS_WINDOW)
            .await
            .map_err(ServiceError::from)?
        {
            let key = call_key(dir, &c);
            if to.is_some_and(|t| c.start >= t) || cursor.as_ref().is_some_and(|k| key >= *k) {
                continue;
            }
            all.push((key, call_view(&account, dir, &c)));
        }
    }
    all.sort_by(|a, b| b.0.cmp(&a.0));
    let next = if all.len() > page {
        all.get(page - 1).map(|(k, _)| encode_cursor(k))
    } else {
        None
    };
    all.truncate(page);
    let calls = all.into_iter().map(|(_, v)| v).collect();
    Ok(etag::read(&headers, &CallsPage { calls, next }))
}

/// An active prepaid call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveCallView {
    /// SIP Call-ID.
    pub call_id: String,
    /// The dialled number.
    pub destination: String,
    /// When the session opened (RFC 3339).
    pub started_at: String,
    /// Seconds granted.
    pub max_session_time: u32,
    /// Seconds since it opened.
    pub elapsed: i64,
}

/// The prepaid balance (`GET /v1/me/prepaid`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PrepaidView {
    /// Whether the account is prepaid.
    pub prepaid: bool,
    /// The balance, an exact decimal string with four decimals (`"0.0000"` when postpaid).
    pub balance: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Open prepaid sessions.
    pub active_calls: Vec<ActiveCallView>,
}

/// The prepaid balance and active prepaid calls.
#[utoipa::path(get, path = "/v1/me/prepaid", tag = "calls",
    responses((status = 200, description = "Prepaid", body = PrepaidView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_prepaid(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let s = &state.services;
    let account = s.account(&me.account).await?;
    let (balance, sessions) = s.prepaid(&me.account).await?;
    let now = s.clock().now();
    let view = if account.prepaid {
        PrepaidView {
            prepaid: true,
            balance: balance.to_string(),
            currency: s.config().currency.clone(),
            active_calls: sessions
                .iter()
                .map(|x| ActiveCallView {
                    call_id: x.call_id.clone(),
                    destination: x.destination.to_string(),
                    started_at: time(x.opened_at),
                    max_session_time: x.max_session_time,
                    elapsed: (now - x.opened_at).num_seconds().max(0),
                })
                .collect(),
        }
    } else {
        PrepaidView {
            prepaid: false,
            balance: sip_settings_core::money::Money::ZERO.to_string(),
            currency: s.config().currency.clone(),
            active_calls: vec![],
        }
    };
    Ok(etag::read(&headers, &view))
}

/// A registered device, as the proxy's registrar reported it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// The Contact URI calls reach it at.
    pub contact: String,
    /// Its User-Agent.
    pub user_agent: String,
    /// Transport (`udp`, `tcp`, `tls`, `ws`, `wss`, `sctp`).
    pub transport: String,
    /// The address its REGISTER came from (`ip:port`).
    pub source: String,
    /// Last registered (RFC 3339).
    pub registered_at: String,
    /// Lapses unless refreshed (RFC 3339).
    pub expires_at: String,
    /// Seconds left.
    pub expires_in: i64,
}

impl DeviceView {
    /// The view of `device` at `now`.
    pub fn of(device: &sip_settings_core::devices::Device, now: DateTime<Utc>) -> Self {
        Self {
            contact: device.contact.clone(),
            user_agent: device.user_agent.clone(),
            transport: device.transport.clone(),
            source: device.source.clone(),
            registered_at: time(device.registered_at),
            expires_at: time(device.expires_at),
            expires_in: device.expires_in(now),
        }
    }
}

/// The registered devices, most recently registered first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesView {
    /// The devices whose registration has not lapsed.
    pub devices: Vec<DeviceView>,
}

/// The devices registered for the account (fed by the proxy's registrar; lapsed ones are not
/// shown).
#[utoipa::path(get, path = "/v1/me/devices", tag = "calls",
    responses((status = 200, description = "Devices", body = DevicesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_devices(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let s = &state.services;
    let now = s.clock().now();
    let view = DevicesView {
        devices: s
            .devices(&me.account)
            .await?
            .iter()
            .map(|d| DeviceView::of(d, now))
            .collect(),
    };
    Ok(etag::read(&headers, &view))
}

/// One change of the balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryView {
    /// Sequence number.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// When, in the account's time zone.
    pub at_local: String,
    /// `topup`, `debit`, `set`, `refund`.
    pub action: String,
    /// What it was.
    pub description: String,
    /// The change, signed decimal string.
    pub value: String,
    /// The balance after it, decimal string.
    pub balance: String,
    /// The call's Call-ID for call debits.
    pub session: Option<String>,
}

/// The balance history (`GET /v1/me/balance-history`), newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceHistoryView {
    /// The entries.
    pub entries: Vec<HistoryEntryView>,
}

/// The history of the prepaid balance, newest first.
#[utoipa::path(get, path = "/v1/me/balance-history", tag = "calls",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most entries (default 200)")),
    responses((status = 200, description = "Balance history", body = BalanceHistoryView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_balance_history(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let q = query(raw.as_deref(), &["limit"])?;
    let n = number_param(&q, "limit", 1..=1000, 200)?;
    let s = &state.services;
    let account = s.account(&me.account).await?;
    let entries = s
        .balance_history(&me.account, n)
        .await?
        .iter()
        .map(|h| HistoryEntryView {
            id: h.id,
            at: time(h.at),
            at_local: local(&account, h.at),
            action: h.action.clone(),
            description: h.description.clone(),
            value: h.value.signed(),
            balance: h.balance.to_string(),
            session: h.session.clone(),
        })
        .collect();
    Ok(etag::read(&headers, &BalanceHistoryView { entries }))
}

/// Usage of a month (`GET /v1/me/usage/{month}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// `YYYY-MM`.
    pub month: String,
    /// The account's time zone, in which the month is counted.
    pub timezone: String,
    /// Start of the month (RFC 3339, UTC).
    pub from: String,
    /// Start of the next month (RFC 3339, UTC).
    pub to: String,
    /// Placed calls.
    pub calls: u64,
    /// Their total duration, seconds.
    pub duration: u64,
    /// Their total price, decimal string.
    pub price: String,
}

/// Placed calls, duration and price of a calendar month in the account's time zone.
#[utoipa::path(get, path = "/v1/me/usage/{month}", tag = "calls",
    params(("month" = String, Path, description = "YYYY-MM", pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")),
    responses((status = 200, description = "Usage", body = UsageView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_usage(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let month = path_param(path, "month")?;
    let first = parse_month(&month)?;
    let s = &state.services;
    let account = s.account(&me.account).await?;
    let tz = account.profile.timezone;
    let (from, to) = month_bounds(first, tz)?;
    let (month, usage) = s.monthly_usage(&me.account, Some(&month)).await?;
    Ok(etag::read(
        &headers,
        &UsageView {
            month,
            timezone: tz.name().to_owned(),
            from: time(from),
            to: time(to),
            calls: usage.calls,
            duration: usage.duration,
            price: usage.price.to_string(),
        },
    ))
}

// ===== voicemail ==================================================================================

/// The voice mailbox (`GET /v1/me/voicemail`). The PIN is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailView {
    /// Whether a mailbox was ever set up.
    pub configured: bool,
    /// Whether the mailbox answers calls.
    pub enabled: bool,
    /// The mailbox (the account's address).
    pub mailbox: String,
    /// `email` or `email_and_store`.
    pub delivery: String,
    /// The mailbox's own notification address, or `null` (the account's e-mail is used).
    pub email: Option<String>,
    /// The address notifications go to now.
    pub notification_email: Option<String>,
    /// Whether a PIN is set.
    pub pin_set: bool,
}

/// Voicemail settings (`PUT`: `enabled` required; `PATCH`: all optional). Absent fields keep
/// their values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoicemailBody {
    /// `true` enables (creating the mailbox if needed), `false` disables (settings are kept).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `email` or `email_and_store`.
    #[serde(default)]
    #[schema(pattern = "^(email|email_and_store)$")]
    pub delivery: Option<String>,
    /// Notification address.
    #[serde(default)]
    pub email: Option<String>,
    /// New PIN, 4–10 digits (write only).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{4,10}$", write_only)]
    pub pin: Option<String>,
}

async fn voicemail_view(s: &Services, id: &AccountId) -> Result<VoicemailView, ServiceError> {
    let account = s.account(id).await?;
    let v = s.voicemail(id).await?;
    let own = v
        .as_ref()
        .and_then(|v| v.email.as_ref())
        .map(ToString::to_string);
    Ok(VoicemailView {
        configured: v.is_some(),
        enabled: v.as_ref().is_some_and(|v| v.enabled),
        mailbox: account.id.to_string(),
        delivery: v
            .as_ref()
            .map_or(VoicemailDelivery::Email, |v| v.delivery)
            .as_str()
            .to_owned(),
        email: own.clone(),
        notification_email: own.or(account.profile.email.as_ref().map(ToString::to_string)),
        pin_set: v.as_ref().is_some_and(|v| v.pin_hash.is_some()),
    })
}

async fn write_voicemail(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    b: VoicemailBody,
) -> ApiResult {
    let delivery = b
        .delivery
        .as_deref()
        .map(VoicemailDelivery::parse)
        .transpose()?;
    let email = b
        .email
        .as_deref()
        .map(|e| Email::parse_for("email", e))
        .transpose()?;
    if let Some(pin) = b.pin.as_deref() {
        // Checked before anything is written (the service hashes it again when it writes).
        sip_settings_core::settings::hash_pin(pin)?;
    }
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    let current = voicemail_view(&s, &me.account).await?;
    etag::check(headers, Some(&current))?;
    let changes = delivery.is_some() || email.is_some() || b.pin.is_some();
    match b.enabled {
        Some(false) if changes => {
            let field = if delivery.is_some() {
                "delivery"
            } else if email.is_some() {
                "email"
            } else {
                "pin"
            };
            return Err(invalid(
                field,
                "can only be changed while enabling the mailbox (enabled: true)",
            ));
        }
        Some(false) => s.disable_voicemail(&me.account).await?,
        Some(true) => {
            s.enable_voicemail(&me.account, delivery, b.pin.as_deref(), email)
                .await?;
        }
        None if !changes => {}
        None if current.enabled => {
            s.enable_voicemail(&me.account, delivery, b.pin.as_deref(), email)
                .await?;
        }
        None => {
            return Err(ApiError::from(ServiceError::Conflict(
                "the voice mailbox is disabled; send enabled: true to change its settings"
                    .to_owned(),
            )));
        }
    }
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &voicemail_view(&s, &me.account).await?,
    ))
}

/// Voicemail settings.
#[utoipa::path(get, path = "/v1/me/voicemail", tag = "voicemail",
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &voicemail_view(&state.services, &me.account).await?,
    ))
}

/// Sets voicemail: `enabled` is required.
#[utoipa::path(put, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = VoicemailBody, content_type = "application/json"),
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn put_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: VoicemailBody = json_body(body).await?;
    if b.enabled.is_none() {
        return Err(invalid("enabled", "is required (true or false)"));
    }
    write_voicemail(&state, &me, &headers, b).await
}

/// Changes voicemail settings; absent fields stay.
#[utoipa::path(patch, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = VoicemailBody, content_type = "application/json"),
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn patch_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: VoicemailBody = json_body(body).await?;
    write_voicemail(&state, &me, &headers, b).await
}

/// Disables the voice mailbox (its settings are kept; 404 without one).
#[utoipa::path(delete, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "Voicemail (now disabled)", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn delete_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    change_view(&state, &me, &headers, voicemail_view, async |s, id| {
        s.disable_voicemail(id).await
    })
    .await
}

// ===== phonebook ==================================================================================

/// A phonebook entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhonebookEntryView {
    /// The contact's SIP URI.
    pub uri: String,
    /// Display name.
    pub name: String,
    /// Phonebook groups (accept rules name them).
    pub groups: Vec<String>,
}

/// The phonebook (`GET /v1/me/phonebook`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PhonebookView {
    /// Entries, by URI.
    pub entries: Vec<PhonebookEntryView>,
    /// All groups used, sorted.
    pub groups: Vec<String>,
}

/// A new entry (`POST /v1/me/phonebook`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhonebookPost {
    /// `sip:user@host` or `user@host`.
    pub uri: String,
    /// Display name (at most 64 characters).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub name: Option<String>,
    /// At least one named group (`[a-z0-9][a-z0-9_.-]{0,31}`).
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

/// An entry (`PUT /v1/me/phonebook/{uri}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhonebookPut {
    /// Display name (at most 64 characters).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub name: Option<String>,
    /// At least one named group.
    #[schema(min_items = 1)]
    pub groups: Vec<String>,
}

fn entry_view(e: &PhonebookEntry) -> PhonebookEntryView {
    PhonebookEntryView {
        uri: e.uri.to_string(),
        name: e.name.clone(),
        groups: e.groups.clone(),
    }
}

async fn phonebook_view(s: &Services, id: &AccountId) -> Result<PhonebookView, ServiceError> {
    s.account(id).await?;
    let mut entries: Vec<PhonebookEntryView> =
        s.phonebook(id).await?.iter().map(entry_view).collect();
    entries.sort_by(|a, b| a.uri.cmp(&b.uri));
    Ok(PhonebookView {
        entries,
        groups: s.phonebook_groups(id).await?,
    })
}

async fn entry_of(
    s: &Services,
    id: &AccountId,
    uri: &SipUri,
) -> Result<Option<PhonebookEntryView>, ServiceError> {
    Ok(s.phonebook(id)
        .await?
        .iter()
        .find(|e| &e.uri == uri)
        .map(entry_view))
}

fn make_entry(
    uri: SipUri,
    name: Option<&str>,
    groups: &[String],
) -> Result<PhonebookEntry, ServiceError> {
    Ok(PhonebookEntry {
        uri,
        name: parse_name("name", name.unwrap_or_default())?,
        groups: parse_phonebook_groups(groups).map_err(|e| e.renamed("groups"))?,
    })
}

fn contact_of(path: Result<Path<String>, PathRejection>) -> Result<SipUri, ApiError> {
    let raw = path_param(path, "uri")?;
    Ok(parse_contact_uri(&raw)?)
}

/// The phonebook.
#[utoipa::path(get, path = "/v1/me/phonebook", tag = "phonebook",
    responses((status = 200, description = "Phonebook", body = PhonebookView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_phonebook(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &phonebook_view(&state.services, &me.account).await?,
    ))
}

/// Adds an entry (409 if the URI is listed already; use PUT on the entry to replace it).
#[utoipa::path(post, path = "/v1/me/phonebook", tag = "phonebook",
    params(("If-Match" = Option<String>, Header, description = "ETag of the phonebook read before; 412 if stale")),
    request_body(content = PhonebookPost, content_type = "application/json"),
    responses((status = 201, description = "Added", body = PhonebookEntryView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The entry"))), WriteErrors))]
async fn post_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: PhonebookPost = json_body(body).await?;
    let entry = make_entry(parse_contact_uri(&b.uri)?, b.name.as_deref(), &b.groups)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&phonebook_view(&s, &me.account).await?))?;
    if entry_of(&s, &me.account, &entry.uri).await?.is_some() {
        return Err(ApiError::from(ServiceError::Conflict(format!(
            "uri {} is in the phonebook already",
            entry.uri
        ))));
    }
    s.put_phonebook_entry(&me.account, &entry).await?;
    s.commit().await?;
    Ok(created(
        &format!(
            "/v1/me/phonebook/{}",
            encode_segment(&entry.uri.to_string())
        ),
        &entry_view(&entry),
    ))
}

/// One phonebook entry.
#[utoipa::path(get, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI (`sip:user@host` or `user@host`), percent-encoded")),
    responses((status = 200, description = "The entry", body = PhonebookEntryView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let uri = contact_of(path)?;
    match entry_of(&state.services, &me.account, &uri).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no phonebook entry {uri}"))),
    }
}

/// Creates (201) or replaces (200) a phonebook entry.
#[utoipa::path(put, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = PhonebookPut, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = PhonebookEntryView,
            headers(("ETag" = String, description = "Entity tag of the new representation"))),
        (status = 201, description = "Created", body = PhonebookEntryView,
            headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The entry"))),
        WriteErrors))]
async fn put_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let uri = contact_of(path)?;
    let b: PhonebookPut = json_body(body).await?;
    let entry = make_entry(uri, b.name.as_deref(), &b.groups)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    let current = entry_of(&s, &me.account, &entry.uri).await?;
    etag::check(&headers, current.as_ref())?;
    s.put_phonebook_entry(&me.account, &entry).await?;
    s.commit().await?;
    Ok(if current.is_some() {
        etag::reply(StatusCode::OK, &entry_view(&entry))
    } else {
        created(
            &format!(
                "/v1/me/phonebook/{}",
                encode_segment(&entry.uri.to_string())
            ),
            &entry_view(&entry),
        )
    })
}

/// Removes a phonebook entry.
#[utoipa::path(delete, path = "/v1/me/phonebook/{uri}", tag = "phonebook",
    params(("uri" = String, Path, description = "The contact's URI, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 204, description = "Removed"), WriteErrors))]
async fn delete_phonebook_entry(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let uri = contact_of(path)?;
    remove_item(
        &state,
        &me,
        &headers,
        format!("phonebook entry {uri}"),
        async |s, id| entry_of(s, id, &uri).await,
        async |s, id| s.remove_phonebook_entry(id, &uri).await,
    )
    .await
}

// ===== certificates ===============================================================================

/// A certificate of the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Serial, hex.
    pub serial: String,
    /// Subject common name.
    pub subject: String,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint_sha256: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// When it was revoked (RFC 3339), or `null`.
    pub revoked_at: Option<String>,
    /// Whether this request was made with it.
    pub current: bool,
}

/// The certificates of the account (`GET /v1/me/certificates`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificatesView {
    /// Every certificate issued for the account, revoked ones too.
    pub certificates: Vec<CertificateView>,
}

/// A certificate signing request (`POST /v1/me/certificates`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrBody {
    /// PKCS#10 CSR, PEM. Only its public key is used: the subject is always the account.
    pub csr: String,
    /// Lifetime in days (1–3650, default the service's).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
}

/// A certificate issued from a CSR.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedView {
    /// The record.
    pub certificate: CertificateView,
    /// The certificate, PEM (the key stayed with the client).
    pub pem: String,
}

fn certificate_view(c: &CertRecord, current: &Serial) -> CertificateView {
    CertificateView {
        serial: c.serial.to_string(),
        subject: c.subject.clone(),
        fingerprint_sha256: c.fingerprint.clone(),
        not_before: time(c.not_before),
        not_after: time(c.not_after),
        issued_at: time(c.issued_at),
        revoked_at: c.revoked_at.map(time),
        current: &c.serial == current,
    }
}

async fn own_certificate(
    s: &Services,
    me: &Subscriber,
    serial: &Serial,
) -> Result<Option<CertificateView>, ServiceError> {
    Ok(s.list_certificates(Some(&me.account))
        .await?
        .iter()
        .find(|c| &c.serial == serial)
        .map(|c| certificate_view(c, &me.serial)))
}

/// Refuses a CSR that the CA could not read, as a `400` naming `csr` (the CA reports it as an
/// internal error). The same parser the CA uses.
fn check_csr(pem: &str) -> Result<(), ApiError> {
    if pem.len() > 16 * 1024 {
        return Err(invalid("csr", "is larger than 16 KiB"));
    }
    rcgen::CertificateSigningRequestParams::from_pem(pem)
        .map(|_| ())
        .map_err(|e| {
            invalid(
                "csr",
                format!("is not a valid PEM certificate signing request ({e})"),
            )
        })
}

fn serial_of(path: Result<Path<String>, PathRejection>) -> Result<Serial, ApiError> {
    Ok(Serial::parse(&path_param(path, "serial")?).map_err(|e| e.renamed("serial"))?)
}

async fn certificates_view(
    s: &Services,
    me: &Subscriber,
) -> Result<CertificatesView, ServiceError> {
    Ok(CertificatesView {
        certificates: s
            .list_certificates(Some(&me.account))
            .await?
            .iter()
            .map(|c| certificate_view(c, &me.serial))
            .collect(),
    })
}

/// The account's own certificates.
#[utoipa::path(get, path = "/v1/me/certificates", tag = "certificates",
    responses((status = 200, description = "Certificates", body = CertificatesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn list_certificates(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    Ok(etag::read(
        &headers,
        &certificates_view(&state.services, &me).await?,
    ))
}

/// Issues a certificate for the public key of a CSR (the key never leaves the client).
#[utoipa::path(post, path = "/v1/me/certificates", tag = "certificates",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = CsrBody, content_type = "application/json"),
    responses((status = 201, description = "Issued", body = IssuedView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The certificate"))), WriteErrors))]
async fn issue_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let b: CsrBody = json_body(body).await?;
    check_csr(&b.csr)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&certificates_view(&s, &me).await?))?;
    let (record, pem) = s.issue_from_csr(&me.account, &b.csr, b.days).await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/certificates/{}", record.serial),
        &IssuedView {
            certificate: certificate_view(&record, &me.serial),
            pem,
        },
    ))
}

/// One of the account's own certificates (another account's serial is 404).
#[utoipa::path(get, path = "/v1/me/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial, hex (colons allowed)")),
    responses((status = 200, description = "The certificate", body = CertificateView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn get_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let serial = serial_of(path)?;
    match own_certificate(&state.services, &me, &serial).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no certificate with serial {serial}"))),
    }
}

/// Revokes one of the account's own certificates (another account's serial is 404).
#[utoipa::path(delete, path = "/v1/me/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial, hex (colons allowed)"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "The revoked certificate", body = CertificateView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
async fn revoke_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    limit(&state, &me, Kind::Write)?;
    let serial = serial_of(path)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    if let Some(current) = own_certificate(&s, &me, &serial).await? {
        etag::check(&headers, Some(&current))?;
    }
    let record = s.revoke_own_certificate(&me.account, &serial).await?;
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &certificate_view(&record, &me.serial),
    ))
}

// ===== journal ====================================================================================

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
async fn journal(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
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

// ===== routing explain ============================================================================

/// What would happen to a call to this account: the decision of the core routing function over
/// the stored settings, with the path of rules consulted and the time zone used.
#[utoipa::path(get, path = "/v1/me/routing/explain", tag = "routing",
    params(
        ("caller" = String, Query, example = "sip:bob@example.com", description = "Caller: a SIP URI (parameters ignored), `user@host`, a `tel:` number (in the own domain), or `anonymous`"),
        ("at" = Option<String>, Query, format = DateTime, description = "When the call arrives (RFC 3339, default now)"),
        ("registered" = Option<bool>, Query, description = "Whether a device is registered (default true)"),
        ("busy" = Option<bool>, Query, description = "Whether the account is busy (default false)")),
    responses((status = 200, description = "The decision", body = Explanation,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
async fn explain_route(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    limit(&state, &me, Kind::Read)?;
    let q = query(raw.as_deref(), &["caller", "at", "registered", "busy"])?;
    let caller = match q.get("caller") {
        Some(c) if !c.trim().is_empty() => {
            sip_settings_core::sip::parse_caller("caller", c, me.account.domain())?
        }
        _ => return Err(invalid("caller", "is required (a SIP URI or anonymous)")),
    };
    let at = match q.get("at") {
        Some(v) => parse_time("at", v)?,
        None => state.services.clock().now(),
    };
    let call = CallState {
        caller,
        registered: bool_param(&q, "registered", true)?,
        busy: bool_param(&q, "busy", false)?,
        at,
    };
    let view = explain::explain(&state.services, &me.account, &call).await?;
    Ok(etag::read(&headers, &view))
}
