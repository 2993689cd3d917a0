//! Replies of the compatibility endpoint: the status object
//! `{"success": bool, "error_message": text}`, with a [`ServiceError`] answered as
//! [`crate::status::classify`] says. 5xx bodies say nothing; the cause is logged by
//! [`crate::status::log_causes`].

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sip_settings_core::ServiceError;

use crate::status::{Cause, Code, classify};

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

/// The prefix of every refusal's text at the action endpoint (the seed's clients look for it).
/// Added here only: no service error's text carries it, nor do `/v1` and the web page show it.
pub const PREFIX: &str = "Error: ";

/// Maps a service error to its status object reply: the status of [`classify`], the text with
/// [`PREFIX`] (a 503 keeps the endpoint's own words), the cause of a 5xx attached for
/// [`crate::status::log_causes`].
pub fn service_error(err: &ServiceError) -> Response {
    let c = classify(err);
    let text = match c.code {
        Code::Unavailable => format!("{PREFIX}service temporarily unavailable, try again"),
        Code::InvalidField
        | Code::NotFound
        | Code::Conflict
        | Code::Unauthenticated
        | Code::Forbidden
        | Code::RateLimited
        | Code::Internal => format!("{PREFIX}{}", c.detail),
    };
    let mut response = failure(c.status(), text);
    if let Some(wait) = c.retry_after {
        response = retry_after(response, wait);
    }
    if let Some(cause) = c.cause {
        cause.attach(&mut response);
    }
    response
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
    let mut response = failure(StatusCode::INTERNAL_SERVER_ERROR, "Error: internal error");
    Cause::new("handler panicked", detail).attach(&mut response);
    response
}

/// A file download: its `Content-Type`, `Content-Disposition: attachment; filename="NAME"`
/// (quoted: the names hold `@`, which a bare token may not, RFC 6266) and never cached. Used by
/// the action endpoint and the web page alike.
pub fn attachment(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let name: String = filename
        .chars()
        .filter(|c| !matches!(c, '"' | '\\'))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
