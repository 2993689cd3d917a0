//! `/v1/me/prepaid`, `/v1/me/balance-history`, `/v1/me/usage/{month}`: the prepaid balance
//! and what was spent (tag `calls`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Serialize;
use sip_settings_core::billing_service::{month_bounds, parse_month};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::ReadErrors;
use crate::v1::error::ApiResult;
use crate::v1::extract::{PathParam, number_param, query};
use crate::v1::view::{local, time};

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
pub(super) async fn get_prepaid(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
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
pub(super) async fn get_balance_history(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
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
pub(super) async fn get_usage(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let month = path;
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
