//! A `/v1` handler's refusals: [`ApiError`] (a problem reply usable with `?`) and the common
//! ones.

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sip_settings_core::ServiceError;

use crate::problem::{from_error, problem};

/// A refusal or failure of a `/v1` handler, already rendered as a problem document.
#[derive(Debug)]
pub struct ApiError(pub Box<Response>);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(Box::new(from_error(&e)))
    }
}

impl ApiError {
    /// Wraps a rendered reply.
    pub fn from_response(r: Response) -> Self {
        Self(Box::new(r))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        *self.0
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
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!(
            "{method} is not a method of {} (the Allow header lists its methods)",
            sip_settings_core::ids::printable(uri.path())
        ),
        None,
    )
}

/// The reply for a path under `/v1` that names no resource: `404` as a problem document, like
/// every other `/v1` refusal (the paths outside `/v1` keep the action endpoint's status object).
pub async fn no_such_path(uri: Uri) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "{} is not a resource of this API (/v1/openapi.json lists them)",
            sip_settings_core::ids::printable(uri.path())
        ),
        None,
    )
}
