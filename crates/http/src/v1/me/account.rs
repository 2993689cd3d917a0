//! `/v1/me`: the account's profile (tag `account`).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sip_settings_core::account::{
    AccountUpdate, check_no_answer_timeout, parse_language, parse_name,
};
use sip_settings_core::{AccountId, E164, Email, ServiceError, Services, TimeZone};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::ApiResult;
use crate::v1::extract::{JsonBody, nullable};
use crate::v1::view::time;
use crate::v1::write::change_view;

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
            email: crate::v1::extract::clearable(&self.email, |s| Email::parse_for("email", s))?,
            timezone: self
                .timezone
                .as_deref()
                .map(|s| TimeZone::parse_for("timezone", s))
                .transpose()?,
            mobile: crate::v1::extract::clearable(&self.mobile, |s| E164::parse_for("mobile", s))?,
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
pub(super) async fn get_account(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
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
pub(super) async fn patch_account(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<AccountPatch>,
) -> ApiResult {
    let update = patch.parse()?;
    change_view(&state, &me, &headers, account_view, async |s, id| {
        s.update_account(id, &update).await
    })
    .await
}
