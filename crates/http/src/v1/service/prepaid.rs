//! `/v1/service/prepaid/sessions`: prepaid sessions opened and closed by call control.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sip_settings_core::ServiceError;
use sip_settings_core::calls::{CloseInput, OpenOutcome, PrepaidRefusal, PrepaidSession};
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::{from_error, problem};
use crate::v1::doc::{Problem, ServiceErrors};
use crate::v1::extract::path_param;
use crate::v1::service::client::{ServiceClient, json_body};

/// The rate a session is charged at.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct RateAnswer {
    /// Matched prefix.
    prefix: String,
    /// Description.
    description: String,
    /// Connect fee, decimal string.
    connect_fee: String,
    /// Per minute, decimal string.
    rate_per_minute: String,
    /// Billing increment, seconds.
    increment_seconds: u32,
    /// Minimum billed seconds.
    minimum_seconds: u32,
}

/// An open prepaid session.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct SessionAnswer {
    /// Call-ID.
    call_id: String,
    /// The paying account.
    account: String,
    /// The dialled number.
    destination: String,
    /// Seconds granted.
    max_session_time: u32,
    /// Balance held, decimal string.
    reserved: String,
    /// The rate.
    rate: RateAnswer,
    /// When it opened, RFC 3339.
    opened_at: String,
}

/// A settled session.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct CloseAnswer {
    /// Call-ID.
    call_id: String,
    /// Seconds billed for.
    duration: u32,
    /// Price, decimal string.
    price: String,
    /// Balance after, decimal string.
    balance: String,
}

/// What to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    account: String,
    destination: String,
    call_id: String,
}

fn session_json(s: &PrepaidSession) -> serde_json::Value {
    json!({
        "call_id": s.call_id,
        "account": s.account.to_string(),
        "destination": s.destination.to_string(),
        "max_session_time": s.max_session_time,
        "reserved": s.reserved.to_string(),
        "rate": {
            "prefix": s.rate.prefix,
            "description": s.rate.description,
            "connect_fee": s.rate.connect_fee.to_string(),
            "rate_per_minute": s.rate.rate_per_minute.to_string(),
            "increment_seconds": s.rate.increment_seconds,
            "minimum_seconds": s.rate.minimum_seconds,
        },
        "opened_at": s.opened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn refusal_status(r: PrepaidRefusal) -> StatusCode {
    match r {
        PrepaidRefusal::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
        PrepaidRefusal::NoRate => StatusCode::UNPROCESSABLE_ENTITY,
        PrepaidRefusal::TooManySessions | PrepaidRefusal::NotPrepaid => StatusCode::CONFLICT,
    }
}

/// Opens a prepaid session: the time the balance (less open reservations) pays, reserved.
#[utoipa::path(post, path = "/v1/service/prepaid/sessions", tag = "service",
    request_body(content = OpenBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Opened", body = SessionAnswer),
        (status = 200, description = "Already open: the session as it is", body = SessionAnswer),
        (status = 402, description = "insufficient_balance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "too_many_sessions, not_prepaid, or a closed Call-ID", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "no_rate", body = Problem, content_type = "application/problem+json"),
        ServiceErrors
    ))]
pub(super) async fn open_session(
    State(state): State<AppState>,
    client: ServiceClient,
    body: Body,
) -> Response {
    let input: OpenBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match client
        .services(&state)
        .open_prepaid(&input.account, &input.destination, &input.call_id)
        .await
    {
        Ok(OpenOutcome::Opened(session)) => {
            (StatusCode::CREATED, Json(session_json(&session))).into_response()
        }
        Ok(OpenOutcome::AlreadyOpen(session)) => {
            (StatusCode::OK, Json(session_json(&session))).into_response()
        }
        Ok(OpenOutcome::Refused(r)) => problem(refusal_status(r), r.code(), r.message(), None),
        Err(e) => from_error(&e),
    }
}

/// How a session ended. The optional fields may be absent or `null` (none), as in a call record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// Seconds talked.
    duration: i64,
    /// From tag.
    from_tag: Option<String>,
    /// To tag.
    to_tag: Option<String>,
    /// Media types, e.g. `["audio"]`.
    media: Option<Vec<String>>,
    /// Address of the proxy.
    proxy_ip: Option<String>,
    /// The call's final SIP status (default 200). A call that was never answered is closed
    /// with duration 0 and its failure status (e.g. 486, 487): free, the reservation freed.
    #[schema(value_type = Option<i64>)]
    status: Option<i64>,
}

/// Closes a prepaid session: price, debit, history, call record, in one transaction; a repeated
/// close answers the first result.
#[utoipa::path(post, path = "/v1/service/prepaid/sessions/{call_id}/close", tag = "service",
    params(("call_id" = String, Path, description = "The session's Call-ID")),
    request_body(content = CloseBody, content_type = "application/json"),
    responses((status = 200, description = "Settled", body = CloseAnswer), ServiceErrors))]
pub(super) async fn close_session(
    State(state): State<AppState>,
    client: ServiceClient,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    let call_id = match path_param(path, "call_id") {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let input: CloseBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result: Result<PrepaidSession, ServiceError> = client
        .services(&state)
        .close_prepaid(
            &call_id,
            &CloseInput {
                duration: input.duration,
                from_tag: input.from_tag.unwrap_or_default(),
                to_tag: input.to_tag.unwrap_or_default(),
                media: input.media.unwrap_or_default(),
                proxy_ip: input.proxy_ip.unwrap_or_default(),
                status: input.status,
            },
        )
        .await;
    match result {
        Ok(session) => match &session.closed {
            Some(s) => Json(json!({
                "call_id": session.call_id,
                "duration": s.duration,
                "price": s.price.to_string(),
                "balance": s.balance.to_string(),
            }))
            .into_response(),
            None => from_error(&ServiceError::Internal("session not closed".to_owned())),
        },
        Err(e) => from_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use crate::v1::testing::{TestApp, assert_problem};

    /// A Call-ID in the path that is not UTF-8 is refused as every other malformed parameter is:
    /// a problem document naming it. Before: axum's plain-text rejection, no `field`.
    #[tokio::test]
    async fn a_malformed_call_id_in_the_path_is_a_problem_naming_it() {
        let t = TestApp::new().await;
        let r = t
            .send(
                &t.service,
                Method::POST,
                "/v1/service/prepaid/sessions/%FF/close",
                Some(r#"{"duration": 0}"#),
            )
            .await;
        assert_problem(&r, 400, "invalid_field", Some("call_id"));
    }
}
