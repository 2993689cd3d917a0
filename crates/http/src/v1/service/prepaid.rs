//! `/v1/service/prepaid/sessions`: prepaid sessions opened and closed by call control.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::ServiceError;
use sip_settings_core::calls::{CloseInput, OpenOutcome, PrepaidSession};
use utoipa::ToSchema;

use crate::AppState;
use crate::v1::doc::{Problem, ServiceErrors};
use crate::v1::error::{ApiError, ApiResult};
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::service::client::ServiceClient;
use crate::v1::view::time;

/// The rate a session is charged at.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateAnswer {
    /// Matched prefix.
    pub prefix: String,
    /// Description.
    pub description: String,
    /// Connect fee, decimal string.
    pub connect_fee: String,
    /// Per minute, decimal string.
    pub rate_per_minute: String,
    /// Billing increment, seconds.
    pub increment_seconds: u32,
    /// Minimum billed seconds.
    pub minimum_seconds: u32,
}

/// An open prepaid session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// Call-ID.
    pub call_id: String,
    /// The paying account.
    pub account: String,
    /// The dialled number.
    pub destination: String,
    /// Seconds granted.
    pub max_session_time: u32,
    /// Balance held, decimal string.
    pub reserved: String,
    /// The rate.
    pub rate: RateAnswer,
    /// When it opened, RFC 3339.
    pub opened_at: String,
}

impl SessionAnswer {
    fn of(s: &PrepaidSession) -> Self {
        Self {
            call_id: s.call_id.clone(),
            account: s.account.to_string(),
            destination: s.destination.to_string(),
            max_session_time: s.max_session_time,
            reserved: s.reserved.to_string(),
            rate: RateAnswer {
                prefix: s.rate.prefix.clone(),
                description: s.rate.description.clone(),
                connect_fee: s.rate.connect_fee.to_string(),
                rate_per_minute: s.rate.rate_per_minute.to_string(),
                increment_seconds: s.rate.increment_seconds,
                minimum_seconds: s.rate.minimum_seconds,
            },
            opened_at: time(s.opened_at),
        }
    }
}

/// A settled session.
#[derive(Debug, Serialize, ToSchema)]
pub struct CloseAnswer {
    /// Call-ID.
    pub call_id: String,
    /// Seconds billed for.
    pub duration: u32,
    /// Price, decimal string.
    pub price: String,
    /// Balance after, decimal string.
    pub balance: String,
}

/// What to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    account: String,
    destination: String,
    call_id: String,
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
    JsonBody(input): JsonBody<OpenBody>,
) -> ApiResult {
    let outcome = client
        .services(&state)
        .open_prepaid(&input.account, &input.destination, &input.call_id)
        .await?;
    let (status, session) = match outcome {
        OpenOutcome::Opened(session) => (StatusCode::CREATED, session),
        OpenOutcome::AlreadyOpen(session) => (StatusCode::OK, session),
        OpenOutcome::Refused(r) => return Err(ApiError::Prepaid(r)),
    };
    Ok((status, Json(SessionAnswer::of(&session))).into_response())
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
    PathParam(call_id): PathParam<String>,
    JsonBody(input): JsonBody<CloseBody>,
) -> ApiResult {
    let session = client
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
        .await?;
    let Some(closed) = &session.closed else {
        return Err(ServiceError::Internal("session not closed".to_owned()).into());
    };
    Ok(Json(CloseAnswer {
        call_id: session.call_id.clone(),
        duration: closed.duration,
        price: closed.price.to_string(),
        balance: closed.balance.to_string(),
    })
    .into_response())
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
