//! The documentation types of the OpenAPI document that no handler builds: the problem
//! document and the error answers each kind of route lists. Imported by the resources, imports
//! none of them.

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// An RFC 9457 problem document (`application/problem+json`), as every `/v1` error is.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documentation of crate::problem's JSON
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    /// The HTTP reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// Stable machine-readable code: `invalid_field`, `invalid_json`, `not_found`, `conflict`,
    /// `precondition_failed`, `unauthenticated`, `forbidden`, `rate_limited`, `body_too_large`,
    /// `unavailable`, `internal`.
    code: String,
    /// What is wrong, for a human.
    detail: String,
    /// The offending field or parameter, when there is one.
    field: Option<String>,
}

/// Answers of the `/v1/me` reads besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ReadErrors {
    /// `If-None-Match` named the current ETag.
    #[response(status = 304)]
    NotModified,
    /// A parameter is malformed (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a valid subscriber certificate (unknown, revoked, expired, or not a subscriber's).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource (of this account).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Too many requests (`Retry-After` says when to try again).
    #[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    TooManyRequests(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}

/// Answers of the `/v1/me` writes besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum WriteErrors {
    /// The body or a parameter is malformed or not allowed (`field` names it); nothing changed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a valid subscriber certificate.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource (of this account).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The change conflicts with existing data (taken, duplicate, at a limit).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` did not name the current ETag; nothing changed.
    #[response(status = 412, content_type = "application/problem+json", headers(("ETag" = String, description = "The current entity tag")))]
    PreconditionFailed(Problem),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Too many requests.
    #[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    TooManyRequests(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}

/// Answers of the service routes besides success.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum ServiceErrors {
    /// The body or a path parameter is malformed: `invalid_field` with `field` naming the
    /// offending field or parameter, or `invalid_json` (no `field`) for a body that is not a JSON
    /// object.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No client certificate.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// Not a service certificate.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The callee is not a local account, alias or number.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The database is temporarily unavailable.
    #[response(status = 503, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds")))]
    Unavailable(Problem),
}
