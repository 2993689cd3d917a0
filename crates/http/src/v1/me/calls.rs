//! `/v1/me/calls`: the account's calls, a page at a time (tag `calls`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sip_settings_core::ServiceError;
use sip_settings_core::account::Account;
use sip_settings_core::calls::{CallRecord, Direction, parse_time};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::ReadErrors;
use crate::v1::error::{ApiError, ApiResult, invalid};
use crate::v1::extract::{number_param, query};
use crate::v1::view::{local, time};

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
pub(super) async fn get_calls(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query(
        raw.as_deref(),
        &["direction", "from", "to", "limit", "cursor"],
    )?;
    let directions: &[Direction] = match q.get("direction") {
        None => &[Direction::Placed, Direction::Received],
        Some("placed") => &[Direction::Placed],
        Some("received") => &[Direction::Received],
        Some(_) => {
            return Err(invalid(
                "direction",
                "must be placed or received (leave it out for both)",
            ));
        }
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
