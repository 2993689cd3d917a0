//! RFC 9457 problem documents (`application/problem+json`) for the `/v1` APIs: a stable `code`,
//! the offending `field`, a human `detail`. The one mapping from [`ServiceError`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sip_settings_core::ServiceError;

/// A problem reply.
pub fn problem(status: StatusCode, code: &str, detail: &str, field: Option<&str>) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
        "field": field,
    });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Maps a service error to its problem reply. 5xx details are logged, not shown.
pub fn from_error(err: &ServiceError) -> Response {
    match err {
        ServiceError::Invalid { field, .. } => problem(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            &err.to_string(),
            Some(field),
        ),
        ServiceError::NotFound(m) => problem(StatusCode::NOT_FOUND, "not_found", m, None),
        ServiceError::Conflict(m) => problem(StatusCode::CONFLICT, "conflict", m, None),
        ServiceError::Unauthenticated(m) => {
            problem(StatusCode::UNAUTHORIZED, "unauthenticated", m, None)
        }
        ServiceError::Forbidden(m) => problem(StatusCode::FORBIDDEN, "forbidden", m, None),
        ServiceError::Unavailable(detail) => {
            tracing::warn!(%detail, "store unavailable");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is temporarily unavailable, try again",
                None,
            )
        }
        ServiceError::Throttled { wait_seconds, .. } => crate::reply::retry_after(
            problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &err.to_string(),
                None,
            ),
            *wait_seconds,
        ),
        other => {
            tracing::error!(error = ?other, "internal error");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                None,
            )
        }
    }
}
