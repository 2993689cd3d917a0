//! The subscriber's request budget: every `/v1/me` handler takes one token of its kind first.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::AppState;
use crate::identity::Subscriber;
use crate::problem::problem;
use crate::ratelimit::Kind;
use crate::v1::error::ApiError;

/// Takes one token of the subscriber's `kind` budget (per certificate and per address); over the
/// limit the reply is `429` with `Retry-After`.
pub fn limited(state: &AppState, me: &Subscriber, kind: Kind) -> Result<(), Box<Response>> {
    state
        .limiter
        .check(
            Some(&me.serial),
            me.addr.ip(),
            kind,
            state.services.clock().now(),
        )
        .map_err(|wait| {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("too many requests, try again in {wait} s"),
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Box::new(r)
        })
}

/// [`limited`], as an [`ApiError`].
pub fn limit(state: &AppState, me: &Subscriber, kind: Kind) -> Result<(), ApiError> {
    limited(state, me, kind).map_err(ApiError)
}
