//! A `/v1` handler's refusals and failures: [`ApiError`], usable with `?`, rendered as a
//! problem document in one place ([`ApiError`]'s `IntoResponse`). A [`ServiceError`] is
//! answered as [`crate::status::classify`] says, like at every other door.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sip_settings_core::ServiceError;
use sip_settings_core::calls::PrepaidRefusal;

use crate::problem::problem;
use crate::status::classify;

/// Why a `/v1` request is refused or failed.
#[derive(Debug)]
pub enum ApiError {
    /// What the service layer refused or failed with.
    Service(ServiceError),
    /// The caller's request budget is spent: `429 rate_limited` with `Retry-After`.
    RateLimited {
        /// Whole seconds until a request is accepted again.
        wait_seconds: u64,
    },
    /// `If-Match` does not name the current representation: `412 precondition_failed`, with the
    /// current `ETag` when the resource exists.
    Precondition {
        /// The current entity tag; `None` when the resource does not exist.
        current_etag: Option<String>,
    },
    /// The body is over its route's limit ([`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES) but for batches):
    /// `413 body_too_large`.
    BodyTooLarge {
        /// The route's limit, in bytes.
        limit: usize,
    },
    /// The body is not a JSON object: `400 invalid_json`, naming no field.
    BadJson {
        /// What is wrong, for a human.
        detail: String,
    },
    /// A field of the body is missing, unknown or mistyped: `400 invalid_field`.
    BadField {
        /// The field (a path such as `groups[1]` for nested values).
        field: String,
        /// What is wrong, for a human.
        detail: String,
    },
    /// The path exists but not with this method: `405 method_not_allowed` (the router adds
    /// the `Allow` header).
    MethodNotAllowed {
        /// The method asked.
        method: Method,
        /// The path asked.
        path: String,
    },
    /// The path names no resource: `404 not_found`.
    NoSuchPath {
        /// The path asked.
        path: String,
    },
    /// A prepaid session the balance, the rates or the account's settings refuse.
    Prepaid(PrepaidRefusal),
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Service(e) => {
                let c = classify(&e);
                let mut r = problem(c.status(), c.code.as_str(), &c.detail, c.field);
                if let Some(wait) = c.retry_after {
                    set_retry_after(&mut r, wait);
                }
                if let Some(cause) = c.cause {
                    cause.attach(&mut r);
                }
                r
            }
            Self::RateLimited { wait_seconds } => {
                let mut r = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    &format!("too many requests, try again in {wait_seconds} s"),
                    None,
                );
                set_retry_after(&mut r, wait_seconds);
                r
            }
            Self::Precondition { current_etag } => {
                let detail = match &current_etag {
                    Some(_) => {
                        "If-Match does not name the current ETag: the resource changed since it \
                         was read; read it again and retry"
                    }
                    None => "If-Match was sent but the resource does not exist",
                };
                let mut r = problem(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    detail,
                    Some("If-Match"),
                );
                if let Some(v) = current_etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
                    r.headers_mut().insert(header::ETAG, v);
                }
                r
            }
            Self::BodyTooLarge { limit } => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the request body must be at most {limit} bytes of JSON"),
                None,
            ),
            Self::BadJson { detail } => {
                problem(StatusCode::BAD_REQUEST, "invalid_json", &detail, None)
            }
            Self::BadField { field, detail } => problem(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                &detail,
                Some(&field),
            ),
            Self::MethodNotAllowed { method, path } => problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!(
                    "{method} is not a method of {} (the Allow header lists its methods)",
                    sip_settings_core::ids::printable(&path)
                ),
                None,
            ),
            Self::NoSuchPath { path } => problem(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "{} is not a resource of this API (/v1/openapi.json lists them)",
                    sip_settings_core::ids::printable(&path)
                ),
                None,
            ),
            Self::Prepaid(r) => {
                let status = match r {
                    PrepaidRefusal::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
                    PrepaidRefusal::NoRate => StatusCode::UNPROCESSABLE_ENTITY,
                    PrepaidRefusal::TooManySessions | PrepaidRefusal::NotPrepaid => {
                        StatusCode::CONFLICT
                    }
                };
                problem(status, r.code(), r.message(), None)
            }
        }
    }
}

fn set_retry_after(response: &mut Response, wait_seconds: u64) {
    if let Ok(v) = HeaderValue::from_str(&wait_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// What a `/v1` handler returns.
pub type ApiResult = Result<Response, ApiError>;

/// A `400` naming `field`.
pub fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::from(ServiceError::invalid(field, reason))
}

/// A `404`.
pub fn not_found(detail: impl Into<String>) -> ApiError {
    ApiError::from(ServiceError::NotFound(detail.into()))
}

/// The reply when a `/v1` path exists but not with this method: `405` as a problem document
/// naming the method (axum adds the `Allow` header listing the methods the path has).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}

/// The reply for a path under `/v1` that names no resource: `404` as a problem document, like
/// every other `/v1` refusal (the paths outside `/v1` keep the action endpoint's status object).
pub async fn no_such_path(uri: Uri) -> ApiError {
    ApiError::NoSuchPath {
        path: uri.path().to_owned(),
    }
}
