//! Replies of the compatibility endpoint: the status object
//! `{"success": bool, "error_message": text}` and the one mapping from [`ServiceError`] to an
//! HTTP status. 5xx bodies say nothing; the cause is logged.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sip_settings_core::ServiceError;

/// The seed's status object.
#[derive(Debug, Serialize)]
pub struct StatusObject {
    /// Whether the change was made.
    pub success: bool,
    /// The human text (for successes too; the key name is historical).
    pub error_message: String,
}

/// A successful change with its text.
pub fn success(text: impl Into<String>) -> Response {
    Json(StatusObject {
        success: true,
        error_message: text.into(),
    })
    .into_response()
}

/// A refusal with a status code and text.
pub fn failure(status: StatusCode, text: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(StatusObject {
            success: false,
            error_message: text.into(),
        }),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `429` with the seconds to wait in `Retry-After`.
pub fn too_many(wait_seconds: u64) -> Response {
    retry_after(
        failure(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Error: too many requests, try again in {wait_seconds} s"),
        ),
        wait_seconds,
    )
}

/// Sets `Retry-After` to `wait_seconds`.
pub fn retry_after(mut response: Response, wait_seconds: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&wait_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Maps a service error to its status object reply.
pub fn service_error(err: &ServiceError) -> Response {
    match err {
        ServiceError::Invalid { .. } => failure(StatusCode::BAD_REQUEST, format!("Error: {err}")),
        ServiceError::NotFound(m) => failure(StatusCode::NOT_FOUND, format!("Error: {m}")),
        ServiceError::Conflict(m) => failure(StatusCode::CONFLICT, format!("Error: {m}")),
        ServiceError::Unauthenticated(m) => failure(StatusCode::UNAUTHORIZED, m.clone()),
        ServiceError::Forbidden(m) => failure(StatusCode::FORBIDDEN, m.clone()),
        ServiceError::Unavailable(detail) => {
            tracing::warn!(%detail, "store unavailable");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Error: service temporarily unavailable, try again",
            )
        }
        ServiceError::Throttled { wait_seconds, .. } => retry_after(
            failure(StatusCode::TOO_MANY_REQUESTS, format!("Error: {err}")),
            *wait_seconds,
        ),
        ServiceError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            failure(StatusCode::INTERNAL_SERVER_ERROR, "Error: internal error")
        }
        _ => {
            tracing::error!(error = %err, "unmapped error");
            failure(StatusCode::INTERNAL_SERVER_ERROR, "Error: internal error")
        }
    }
}

/// Any path that is not served.
pub async fn not_found() -> Response {
    failure(StatusCode::NOT_FOUND, "Error: not found")
}

/// The reply when a handler panicked (a bug): a bare 500, the panic logged.
pub fn panic_reply(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(%detail, "handler panicked");
    failure(StatusCode::INTERNAL_SERVER_ERROR, "Error: internal error")
}
