//! `/v1/me/routing/explain`: what would happen to a call to this account (tag `routing`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use sip_settings_core::calls::parse_time;
use sip_settings_core::routing::CallState;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::ReadErrors;
use crate::v1::error::{ApiResult, invalid};
use crate::v1::explain::{self, Explanation};
use crate::v1::extract::{bool_param, query};

/// The `dialled` parameter: a user part or number, 1 to 128 characters of
/// `A-Za-z0-9+_.!~*'()&=$,-` (what the document's pattern says), lowercased.
fn dialled(input: &str) -> Result<String, crate::v1::error::ApiError> {
    let ok = (1..=128).contains(&input.len())
        && input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+_.!~*'()&=$,-".contains(c));
    if ok {
        Ok(input.to_ascii_lowercase())
    } else {
        Err(invalid(
            "dialled",
            format!(
                "'{}' is not an own user part or number (1 to 128 of A-Z a-z 0-9 + _ . ! ~ * ' ( ) & = $ , -)",
                sip_settings_core::ids::printable(input)
            ),
        ))
    }
}

/// What would happen to a call to this account: the decision of the core routing function over
/// the stored settings, with the path of rules consulted and the time zone used.
#[utoipa::path(get, path = "/v1/me/routing/explain", tag = "routing",
    params(
        ("caller" = String, Query, example = "sip:bob@example.com", description = "Caller: a SIP URI (parameters ignored), `user@host`, a `tel:` number (in the own domain), or `anonymous`"),
        ("at" = Option<String>, Query, format = DateTime, description = "When the call arrives (RFC 3339, default now)"),
        ("registered" = Option<bool>, Query, description = "Whether a device is registered (default true)"),
        ("busy" = Option<bool>, Query, description = "Whether the account is busy (default false)"),
        ("dialled" = Option<String>, Query, example = "+31201234567",
        pattern = "^[A-Za-z0-9+_.!~*'()&=$,-]{1,128}$", description = "Which own address was dialled, for forwarding rules with a called set: the user part of the account's address or an alias, or an ENUM number (default: not known, which no called set holds for)")),
    responses((status = 200, description = "The decision", body = Explanation,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn explain_route(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query(
        raw.as_deref(),
        &["caller", "at", "registered", "busy", "dialled"],
    )?;
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
        dialled: match q.get("dialled") {
            Some(d) => Some(dialled(d)?),
            None => None,
        },
    };
    let view = explain::explain(&state.services, &me.account, &call).await?;
    Ok(etag::read(&headers, &view))
}
