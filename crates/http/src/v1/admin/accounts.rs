//! `/v1/admin/accounts`: create, read, change, delete and list accounts, and set their SIP
//! password (tag `admin accounts`). Twins of `account add`, `show`, `set`, `delete`, `list` and
//! `passwd`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::account::{
    Account, AccountUpdate, check_no_answer_timeout, parse_language, parse_name,
};
use sip_settings_core::{
    AccountId, Domain, E164, Email, Password, ServiceError, Services, TimeZone,
};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, account_of};
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::{JsonBody, PathParam, nullable, number_param, query};
use crate::v1::view::{created, encode_segment, time};

/// An account as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAccountView {
    /// `user@domain`.
    pub address: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Notification e-mail address.
    pub email: Option<String>,
    /// IANA time zone.
    pub timezone: String,
    /// Mobile number (`+E164`).
    pub mobile: Option<String>,
    /// Caller id on calls to the PSTN (`+E164`).
    pub pstn_caller_id: Option<String>,
    /// Language tag.
    pub language: String,
    /// Seconds a call rings before `FNOA` applies (5–900).
    pub no_answer_timeout: u32,
    /// Quick-dial prefix.
    pub quick_dial: Option<String>,
    /// Caller-id privacy on outgoing calls.
    pub privacy: bool,
    /// Whether calls are paid from a prepaid balance.
    pub prepaid: bool,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

impl AdminAccountView {
    fn of(a: &Account) -> Self {
        let p = &a.profile;
        Self {
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
            prepaid: a.prepaid,
            created_at: time(a.created_at),
        }
    }
}

async fn account_view(s: &Services, id: &AccountId) -> Result<AdminAccountView, ServiceError> {
    Ok(AdminAccountView::of(&s.account(id).await?))
}

/// A page of accounts (`GET /v1/admin/accounts`), by address.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPageView {
    /// The accounts of this page.
    pub accounts: Vec<AdminAccountView>,
    /// `after` for the next page, or `null` when this is the last.
    pub next: Option<String>,
}

/// The profile fields of `account add` and `account set`. Absent fields stay (or take their
/// defaults on creation); `email`, `mobile` and `pstn_caller_id` are cleared with `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAccountPatch {
    /// Given name (at most 64 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub first_name: Option<String>,
    /// Family name (at most 64 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub last_name: Option<String>,
    /// Notification e-mail; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = "^[\\x21-\\x3F\\x41-\\x7E]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub email: Option<Option<String>>,
    /// IANA time zone such as `Europe/Amsterdam`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")]
    pub timezone: Option<String>,
    /// Mobile number `+E164`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub mobile: Option<Option<String>>,
    /// Caller id for PSTN calls `+E164`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub pstn_caller_id: Option<Option<String>>,
    /// Language tag (`en`, `nl`, `pt-BR`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2}|-[A-Za-z0-9]{4})?$")]
    pub language: Option<String>,
    /// Seconds a call rings before `FNOA` applies (5–900).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 900)]
    pub no_answer_timeout: Option<u32>,
    /// Whether calls are paid from a prepaid balance.
    #[serde(default)]
    pub prepaid: Option<bool>,
}

impl AdminAccountPatch {
    /// The update, parsed with the same core parsers as `account set`.
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
            pstn_caller_id: crate::v1::extract::clearable(&self.pstn_caller_id, |s| {
                E164::parse_for("pstn_caller_id", s)
            })?,
            language: self
                .language
                .as_deref()
                .map(|s| parse_language(s).map_err(|e| e.renamed("language")))
                .transpose()?,
            no_answer_timeout: self
                .no_answer_timeout
                .map(check_no_answer_timeout)
                .transpose()?,
            prepaid: self.prepaid,
        })
    }
}

/// A new account (`POST /v1/admin/accounts`): its address, SIP password and profile fields
/// (absent ones take their defaults; `prepaid` is `false` unless given).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountCreate {
    /// `user@domain`; the domain must be served here.
    #[schema(
        max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub address: String,
    /// The SIP password: 8–128 characters, no control characters (write only, never shown).
    #[schema(
        write_only,
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub password: String,
    /// Given name (at most 64 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub first_name: Option<String>,
    /// Family name (at most 64 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub last_name: Option<String>,
    /// Notification e-mail; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = "^[\\x21-\\x3F\\x41-\\x7E]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub email: Option<Option<String>>,
    /// IANA time zone such as `Europe/Amsterdam`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")]
    pub timezone: Option<String>,
    /// Mobile number `+E164`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub mobile: Option<Option<String>>,
    /// Caller id for PSTN calls `+E164`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub pstn_caller_id: Option<Option<String>>,
    /// Language tag (`en`, `nl`, `pt-BR`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2}|-[A-Za-z0-9]{4})?$")]
    pub language: Option<String>,
    /// Seconds a call rings before `FNOA` applies (5–900).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 900)]
    pub no_answer_timeout: Option<u32>,
    /// Whether calls are paid from a prepaid balance.
    #[serde(default)]
    pub prepaid: Option<bool>,
}

impl std::fmt::Debug for AccountCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCreate")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl AccountCreate {
    /// The profile fields, as a change of the default profile.
    fn profile(self) -> AdminAccountPatch {
        AdminAccountPatch {
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            timezone: self.timezone,
            mobile: self.mobile,
            pstn_caller_id: self.pstn_caller_id,
            language: self.language,
            no_answer_timeout: self.no_answer_timeout,
            prepaid: self.prepaid,
        }
    }
}

/// A new SIP password (`PUT /v1/admin/accounts/{account}/password`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The SIP password: 8–128 characters, no control characters (write only, never shown).
    #[schema(
        write_only,
        min_length = 8,
        max_length = 128,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub password: String,
}

impl std::fmt::Debug for PasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordBody").finish_non_exhaustive()
    }
}

/// What deleting an account did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    /// The deleted account.
    pub address: String,
    /// How many of its certificates were revoked with it.
    pub revoked_certificates: u64,
}

/// One page of the accounts, by address, optionally of one domain and matching a search text.
/// Twin of `account list`.
#[utoipa::path(get, path = "/v1/admin/accounts", tag = "admin accounts",
    params(
        ("domain" = Option<String>, Query, description = "Only this domain's accounts",
            max_length = 253,
            pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("q" = Option<String>, Query, max_length = 200, description = "Only accounts whose address, first name, last name or \
            \"first last\" contains this text, ignoring case and surrounding white space"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page: accounts after this address",
            max_length = 253,
            pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)")),
    responses((status = 200, description = "Accounts", body = AccountPageView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_accounts(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query(raw.as_deref(), &["domain", "q", "after", "limit"])?;
    let limit = number_param(&q, "limit", 1..=1000, 100)?;
    let domain = q.get("domain").map(Domain::parse).transpose()?;
    let after = q
        .get("after")
        .map(|a| AccountId::parse_for("after", a))
        .transpose()?;
    let text = q.get("q");
    if text.is_some_and(|t| t.chars().count() > 200) {
        return Err(invalid("q", "must be at most 200 characters"));
    }
    let (accounts, next) = admin
        .services(&state)
        .account_page(domain.as_ref(), text, after.as_ref(), limit)
        .await?;
    let view = AccountPageView {
        accounts: accounts.iter().map(AdminAccountView::of).collect(),
        next: next.map(|n| n.to_string()),
    };
    Ok(etag::read(&headers, &view))
}

/// Creates an account (404 when its domain is not served, 409 when it exists). Twin of
/// `account add`.
#[utoipa::path(post, path = "/v1/admin/accounts", tag = "admin accounts",
    request_body(content = AccountCreate, content_type = "application/json"),
    responses((status = 201, description = "Created", body = AdminAccountView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The account"))), AdminWriteErrors))]
pub(super) async fn admin_add_account(
    State(state): State<AppState>,
    admin: AdminClient,
    JsonBody(b): JsonBody<AccountCreate>,
) -> ApiResult {
    let id = AccountId::parse_for("address", &b.address)?;
    let password = Password::parse_for("password", &b.password)?;
    let mut update = b.profile().parse()?;
    update.prepaid = Some(update.prepaid.unwrap_or(false));
    let account = admin
        .services(&state)
        .add_account(&id, &password, &update)
        .await?;
    Ok(created(
        &format!(
            "/v1/admin/accounts/{}",
            encode_segment(&account.id.to_string())
        ),
        &AdminAccountView::of(&account),
    ))
}

/// One account. Twin of `account show`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}", tag = "admin accounts",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "The account", body = AdminAccountView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_get_account(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    Ok(etag::read(
        &headers,
        &account_view(&admin.services(&state), &id).await?,
    ))
}

/// Changes profile fields and the prepaid flag; absent fields stay. Twin of `account set`.
#[utoipa::path(patch, path = "/v1/admin/accounts/{account}", tag = "admin accounts",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = AdminAccountPatch, content_type = "application/json"),
    responses((status = 200, description = "The changed account", body = AdminAccountView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), AdminWriteErrors))]
pub(super) async fn admin_patch_account(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(patch): JsonBody<AdminAccountPatch>,
) -> ApiResult {
    let id = account_of(&path)?;
    let update = patch.parse()?;
    let s = admin.services(&state);
    let s = s.hold(&id).await?;
    etag::check(&headers, Some(&account_view(&s, &id).await?))?;
    s.update_account(&id, &update).await?;
    s.commit().await?;
    Ok(etag::reply(StatusCode::OK, &account_view(&s, &id).await?))
}

/// Deletes an account and revokes its certificates (its journal stays). Twin of
/// `account delete`.
#[utoipa::path(delete, path = "/v1/admin/accounts/{account}", tag = "admin accounts",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "ETag of the account read before; 412 if stale")),
    responses((status = 200, description = "Deleted", body = DeletedView), AdminWriteErrors))]
pub(super) async fn admin_delete_account(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let s = admin.services(&state);
    if headers.contains_key(axum::http::header::IF_MATCH) {
        // Checked before the deletion, outside its transaction: a change between the two is
        // deleted with the account.
        etag::check(&headers, Some(&account_view(&s, &id).await?))?;
    }
    let revoked = s.delete_account(&id).await?;
    Ok(etag::reply(
        StatusCode::OK,
        &DeletedView {
            address: id.to_string(),
            revoked_certificates: revoked,
        },
    ))
}

/// Sets a new SIP password (its digests change at once; the password is never shown or
/// logged, the journal says only `changed`). Twin of `account passwd`.
#[utoipa::path(put, path = "/v1/admin/accounts/{account}/password", tag = "admin accounts",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = PasswordBody, content_type = "application/json"),
    responses((status = 204, description = "Changed"), AdminWriteErrors))]
pub(super) async fn admin_set_password(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<PasswordBody>,
) -> ApiResult {
    let id = account_of(&path)?;
    let password = Password::parse_for("password", &b.password)?;
    admin.services(&state).set_password(&id, &password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
