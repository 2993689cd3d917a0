//! The service API under `/v1/service/` for SIP proxies and call control (service
//! certificates only): routing questions, recording calls, running prepaid sessions and
//! recording registrations. JSON in and out; errors are problem documents. [`client`] is what
//! the resources share (the service certificate, the body reader); they import nothing else of
//! each other.

pub mod calls;
pub mod client;
pub mod prepaid;
pub mod registrations;
pub mod route;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The service routes (documented in `/v1/openapi.json`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(route::route))
        .routes(routes!(calls::record_call))
        .routes(routes!(calls::record_calls))
        .routes(routes!(prepaid::open_session))
        .routes(routes!(prepaid::close_session))
        .routes(routes!(registrations::register))
}
