//! RFC 9457 problem documents (`application/problem+json`) for the `/v1` APIs: a stable `code`,
//! the offending `field`, a human `detail`. [`Problem`] is both the body every refusal is
//! serialized from and its schema in the OpenAPI document; [`crate::v1::error::ApiError`] says
//! which refusal gets which.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document (`application/problem+json`), as every `/v1` error is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine-readable code: `invalid_field`, `invalid_json`, `not_found`, `conflict`,
    /// `precondition_failed`, `unauthenticated`, `forbidden`, `rate_limited`, `body_too_large`,
    /// `unavailable`, `internal`.
    pub code: String,
    /// What is wrong, for a human.
    pub detail: String,
    /// The offending field or parameter, when there is one.
    pub field: Option<String>,
}

/// A problem reply. `503` and `429` carry `Retry-After: 1` (a `429` of a known wait sets it
/// again, to that wait).
pub fn problem(status: StatusCode, code: &str, detail: &str, field: Option<&str>) -> Response {
    let body = Problem {
        kind: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        code: code.to_owned(),
        detail: detail.to_owned(),
        field: field.map(str::to_owned),
    };
    let mut response = (status, Json(body)).into_response();
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
