//! Money and calls (tag `admin billing`): an account's prepaid balance (show, set, top up,
//! history), the rate table (list, look up, import a CSV) and call records (import a CSV).
//! Twins of `balance show|set|topup`, `rates list|lookup|import` and `calls import`; the CSV
//! imports read the same format with the same parsers (`core::import`) and check every line
//! before anything is written.

use axum::body::Body;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use sip_settings_core::calls::NewCall;
use sip_settings_core::import::{parse_calls_csv, parse_rates_csv};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::{AccountId, E164, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, account_of};
use crate::v1::error::{ApiError, ApiResult, invalid, not_found};
use crate::v1::extract::{JsonBody, PathParam, bool_param, number_param, query};
use crate::v1::view::time;

/// Largest CSV body of an import: 1 MiB.
pub const MAX_CSV_BYTES: usize = 1024 * 1024;

/// A CSV request body (UTF-8 text) of at most [`MAX_CSV_BYTES`]; the `Content-Type` is not
/// looked at.
#[derive(Debug)]
pub struct CsvBody(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let body: Body = request.into_body();
        match Limited::new(body, MAX_CSV_BYTES).collect().await {
            Ok(c) => Ok(Self(c.to_bytes().to_vec())),
            Err(_) => Err(ApiError::BodyTooLarge {
                limit: MAX_CSV_BYTES,
            }),
        }
    }
}

/// An open prepaid call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminOpenCallView {
    /// SIP Call-ID.
    pub call_id: String,
    /// The dialled number.
    pub destination: String,
    /// When the session opened (RFC 3339).
    pub started_at: String,
    /// Seconds granted.
    pub max_session_time: u32,
    /// Balance held while open, decimal string.
    pub reserved: String,
}

/// An account's balance (`balance show`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminBalanceView {
    /// `user@domain`.
    pub account: String,
    /// Whether the account is prepaid.
    pub prepaid: bool,
    /// The balance, an exact decimal string with four decimals.
    pub balance: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Open prepaid calls.
    pub open_calls: Vec<AdminOpenCallView>,
}

/// A balance change: the amount and an optional history description.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBalanceBody {
    /// The new balance: a decimal with at most 12 whole digits and 4 decimals.
    #[schema(pattern = "^-?[0-9]{1,12}(\\.[0-9]{1,4})?$")]
    pub amount: String,
    /// History description (at most 200 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
}

/// A top-up: a positive amount and an optional history description.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopupBody {
    /// The amount to add: a decimal greater than 0 with at most 12 whole digits and 4
    /// decimals.
    #[schema(
        pattern = "^([1-9][0-9]{0,11}(\\.[0-9]{1,4})?|0?\\.(000[1-9]|00[1-9][0-9]?|0[1-9][0-9]{0,2}|[1-9][0-9]{0,3}))$"
    )]
    pub amount: String,
    /// History description (at most 200 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
}

/// One change of a balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminHistoryEntryView {
    /// Sequence number.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
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

/// A balance history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminHistoryView {
    /// The entries.
    pub entries: Vec<AdminHistoryEntryView>,
}

/// A rate of the table.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateView {
    /// Digits the destination starts with.
    pub prefix: String,
    /// What it is.
    pub description: String,
    /// Charged once for an answered call, decimal string.
    pub connect_fee: String,
    /// Per minute of billed time, decimal string.
    pub rate_per_minute: String,
    /// Billing increment in seconds.
    pub increment_seconds: u32,
    /// Minimum billed seconds of an answered call.
    pub minimum_seconds: u32,
}

impl RateView {
    fn of(r: &Rate) -> Self {
        Self {
            prefix: r.prefix.clone(),
            description: r.description.clone(),
            connect_fee: r.connect_fee.to_string(),
            rate_per_minute: r.rate_per_minute.to_string(),
            increment_seconds: r.increment_seconds,
            minimum_seconds: r.minimum_seconds,
        }
    }
}

/// The rate table, by prefix.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatesView {
    /// The rates.
    pub rates: Vec<RateView>,
}

/// What a rates import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatesImportView {
    /// Rates added or updated.
    pub imported: u64,
    /// Whether the whole table was replaced.
    pub replaced: bool,
}

/// What a calls import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallsImportView {
    /// Calls recorded now.
    pub imported: usize,
    /// Calls of the file that were recorded before (same Call-ID and tags).
    pub already_recorded: usize,
}

async fn balance_view(s: &Services, id: &AccountId) -> Result<AdminBalanceView, ServiceError> {
    let account = s.account(id).await?;
    let (balance, sessions) = s.prepaid(id).await?;
    Ok(AdminBalanceView {
        account: id.to_string(),
        prepaid: account.prepaid,
        balance: balance.to_string(),
        currency: s.config().currency.clone(),
        open_calls: sessions
            .iter()
            .map(|x| AdminOpenCallView {
                call_id: x.call_id.clone(),
                destination: x.destination.to_string(),
                started_at: time(x.opened_at),
                max_session_time: x.max_session_time,
                reserved: x.reserved.to_string(),
            })
            .collect(),
    })
}

/// An account's balance and open prepaid calls. Twin of `balance show`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/balance", tag = "admin billing",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Balance", body = AdminBalanceView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_get_balance(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    Ok(etag::read(
        &headers,
        &balance_view(&admin.services(&state), &id).await?,
    ))
}

/// Sets an account's balance. Twin of `balance set`.
#[utoipa::path(put, path = "/v1/admin/accounts/{account}/balance", tag = "admin billing",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = SetBalanceBody, content_type = "application/json"),
    responses((status = 200, description = "The new balance", body = AdminBalanceView), AdminWriteErrors))]
pub(super) async fn admin_set_balance(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<SetBalanceBody>,
) -> ApiResult {
    let id = account_of(&path)?;
    let amount = Money::parse_for("amount", &b.amount)?;
    let s = admin.services(&state);
    s.set_balance(&id, amount, b.description.as_deref().unwrap_or_default())
        .await?;
    Ok(etag::reply(StatusCode::OK, &balance_view(&s, &id).await?))
}

/// Adds a positive amount to an account's balance. Twin of `balance topup`.
#[utoipa::path(post, path = "/v1/admin/accounts/{account}/balance/topups", tag = "admin billing",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = TopupBody, content_type = "application/json"),
    responses((status = 200, description = "The new balance", body = AdminBalanceView), AdminWriteErrors))]
pub(super) async fn admin_topup(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<TopupBody>,
) -> ApiResult {
    let id = account_of(&path)?;
    let amount = Money::parse_for("amount", &b.amount)?;
    let s = admin.services(&state);
    s.topup(&id, amount, b.description.as_deref().unwrap_or_default())
        .await?;
    Ok(etag::reply(StatusCode::OK, &balance_view(&s, &id).await?))
}

/// An account's balance history, newest first. Twin of the history lines of `balance show`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/balance/history", tag = "admin billing",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most entries (default 200)")),
    responses((status = 200, description = "Balance history", body = AdminHistoryView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_balance_history(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let id = account_of(&path)?;
    let q = query(raw.as_deref(), &["limit"])?;
    let n = number_param(&q, "limit", 1..=1000, 200)?;
    let entries = admin
        .services(&state)
        .balance_history(&id, n)
        .await?
        .iter()
        .map(|h| AdminHistoryEntryView {
            id: h.id,
            at: time(h.at),
            action: h.action.clone(),
            description: h.description.clone(),
            value: h.value.signed(),
            balance: h.balance.to_string(),
            session: h.session.clone(),
        })
        .collect();
    Ok(etag::read(&headers, &AdminHistoryView { entries }))
}

/// The rate table. Twin of `rates list`.
#[utoipa::path(get, path = "/v1/admin/rates", tag = "admin billing",
    responses((status = 200, description = "Rates", body = RatesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_rates(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
) -> ApiResult {
    let rates = admin
        .services(&state)
        .rates()
        .await?
        .iter()
        .map(RateView::of)
        .collect();
    Ok(etag::read(&headers, &RatesView { rates }))
}

/// Imports a rates CSV (`prefix,description,connect_fee,rate_per_minute,increment_seconds,
/// minimum_seconds` with that header line): every line is checked first and a malformed one
/// imports nothing (400 naming `body` and the lines). Twin of `rates import [--replace]`.
#[utoipa::path(post, path = "/v1/admin/rates", tag = "admin billing",
    params(("replace" = Option<bool>, Query, description = "Replace the whole table instead of adding/updating by prefix")),
    request_body(content = String, content_type = "text/csv",
        description = "The CSV, UTF-8, with its header line; at most 1 MiB"),
    responses((status = 200, description = "Imported", body = RatesImportView), AdminWriteErrors))]
pub(super) async fn admin_import_rates(
    State(state): State<AppState>,
    admin: AdminClient,
    RawQuery(raw): RawQuery,
    CsvBody(csv): CsvBody,
) -> ApiResult {
    let q = query(raw.as_deref(), &["replace"])?;
    let replace = bool_param(&q, "replace", false)?;
    let rates = parse_rates_csv(&csv, "the body").map_err(|e| invalid("body", e.0))?;
    let imported = admin.services(&state).import_rates(&rates, replace).await?;
    tracing::info!(actor = %admin.actor(), imported, replace, "rates imported through the operator API");
    Ok(etag::reply(
        StatusCode::OK,
        &RatesImportView {
            imported,
            replaced: replace,
        },
    ))
}

/// The rate a number is charged at (longest prefix; 404 when none matches). Twin of
/// `rates lookup`.
#[utoipa::path(get, path = "/v1/admin/rates/{number}", tag = "admin billing",
    params(("number" = String, Path, description = "`+E164`", pattern = "^\\+[1-9][0-9]{1,14}$")),
    responses((status = 200, description = "The rate", body = RateView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_lookup_rate(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let number = E164::parse_for("number", &path)?;
    match admin.services(&state).lookup_rate(&number).await? {
        Some(r) => Ok(etag::read(&headers, &RateView::of(&r))),
        None => Err(not_found(format!("no rate matches {number}"))),
    }
}

/// Imports a CSV of finished calls (`call_id,from_tag,to_tag,caller,callee,start,stop,duration,
/// status,media,proxy_ip,price` with that header line, media separated by spaces): every line
/// is checked first and a malformed one imports nothing (400 naming `body` and the lines);
/// calls recorded before are counted, not recorded twice. Twin of `calls import`.
#[utoipa::path(post, path = "/v1/admin/calls", tag = "admin billing",
    request_body(content = String, content_type = "text/csv",
        description = "The CSV, UTF-8, with its header line; at most 1 MiB"),
    responses((status = 200, description = "Imported", body = CallsImportView), AdminWriteErrors))]
pub(super) async fn admin_import_calls(
    State(state): State<AppState>,
    admin: AdminClient,
    CsvBody(csv): CsvBody,
) -> ApiResult {
    let s = admin.services(&state);
    let mut calls: Vec<NewCall> = Vec::new();
    let mut errors = Vec::new();
    for (line, input) in parse_calls_csv(&csv, "the body").map_err(|e| invalid("body", e.0))? {
        let prepared = match input {
            Ok(i) => s.prepare_call(&i).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok(c) => calls.push(c),
            Err(ServiceError::Invalid { field, reason }) => {
                errors.push(format!("line {line}: {field} {reason}"));
            }
            Err(other) => return Err(other.into()),
        }
    }
    if !errors.is_empty() {
        return Err(invalid(
            "body",
            format!("nothing imported: {}", errors.join("; ")),
        ));
    }
    let imported = s.record_calls(&calls).await?;
    tracing::info!(actor = %admin.actor(), imported, "calls imported through the operator API");
    Ok(etag::reply(
        StatusCode::OK,
        &CallsImportView {
            imported,
            already_recorded: calls.len().saturating_sub(imported),
        },
    ))
}
