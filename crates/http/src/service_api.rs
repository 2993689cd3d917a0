//! The service API under `/v1/service/` for SIP proxies and call control (service
//! certificates only): recording calls and running prepaid sessions. JSON in and out; errors
//! are problem documents.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sip_settings_core::calls::{CallInput, OpenOutcome, PrepaidRefusal, PrepaidSession};
use sip_settings_core::{Identity, ServiceError};

use crate::identity::identify;
use crate::problem::{from_error, problem};
use crate::serve::Peer;
use crate::{AppState, MAX_BODY_BYTES};

/// A request made with a valid service certificate.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    /// The certificate holder's name.
    pub name: String,
    /// The client's address.
    pub addr: Option<std::net::SocketAddr>,
}

impl ServiceClient {
    /// The services acting for this client (its changes are journaled as the service door).
    pub fn services(&self, state: &AppState) -> sip_settings_core::Services {
        state
            .services
            .with_origin(sip_settings_core::journal::Origin {
                door: sip_settings_core::journal::Door::ServiceApi,
                actor: format!("service {}", self.name),
                source: self.addr.map(|a| a.ip().to_string()),
            })
    }
}

impl FromRequestParts<AppState> for ServiceClient {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match identify(&state.services, parts.extensions.get::<Peer>()).await {
            Ok(Identity::Service { name, .. }) => Ok(Self {
                name,
                addr: parts.extensions.get::<Peer>().map(|p| p.addr),
            }),
            Ok(_) => Err(problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the service API takes service certificates only",
                None,
            )),
            Err(e) => Err(from_error(&e)),
        }
    }
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`] into `T`, with a problem reply naming what
/// is wrong.
pub async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, Response> {
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the request body must be at most {MAX_BODY_BYTES} bytes of JSON"),
                None,
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            &format!("the body is not the expected JSON: {e}"),
            None,
        )
    })
}

/// The service routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/service/calls", post(record_call))
        .route("/v1/service/prepaid/sessions", post(open_session))
        .route(
            "/v1/service/prepaid/sessions/{call_id}/close",
            post(close_session),
        )
}

async fn record_call(State(state): State<AppState>, client: ServiceClient, body: Body) -> Response {
    let input: CallInput = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match client.services(&state).record_call(&input).await {
        Ok(true) => (
            StatusCode::CREATED,
            Json(json!({"recorded": true, "call_id": input.call_id})),
        )
            .into_response(),
        Ok(false) => (
            StatusCode::OK,
            Json(json!({"recorded": false, "replay": true, "call_id": input.call_id})),
        )
            .into_response(),
        Err(e) => from_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
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

async fn open_session(
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    duration: i64,
    #[serde(default)]
    from_tag: String,
    #[serde(default)]
    to_tag: String,
    #[serde(default)]
    media: Vec<String>,
    #[serde(default)]
    proxy_ip: String,
}

async fn close_session(
    State(state): State<AppState>,
    client: ServiceClient,
    Path(call_id): Path<String>,
    body: Body,
) -> Response {
    let input: CloseBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result: Result<PrepaidSession, ServiceError> = client
        .services(&state)
        .close_prepaid(
            &call_id,
            input.duration,
            &input.from_tag,
            &input.to_tag,
            &input.media,
            &input.proxy_ip,
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
