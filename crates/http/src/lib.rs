//! The HTTP side of sip-settings.
//!
//! * [`serve`] owns the TLS accept loop: handshakes run concurrently with a timeout, the peer's
//!   client certificate is put into each request's extensions, and hyper serves HTTP/1.1 and
//!   HTTP/2 on the connection.
//! * [`router`] builds the axum [`Router`]: the compatibility action endpoint
//!   (`/settings.phtml`, `/settings`) and the fallbacks.
//! * [`identity`] turns the presented certificate into an [`sip_settings_core::Identity`],
//!   checked against the store on every request.
//! * [`status`] maps every [`sip_settings_core::ServiceError`] to its status and stable code,
//!   once, for every door; its [`status::log_causes`] layer logs a 5xx's cause, once.
//!
//! Handlers are thin: extract, call one [`sip_settings_core::Services`] function, map the result.

pub mod etag;
pub mod fuzzing;
pub mod head_check;
pub mod identity;
pub mod legacy;
pub mod metrics;
pub mod ops;
pub mod params;
pub mod problem;
pub mod ratelimit;
#[cfg(test)]
mod router_tests;
pub mod serve;
pub mod slots;
pub mod status;
pub mod tls;
pub mod v1;
pub mod web;

use axum::Router;
use axum::routing::any;
use sip_settings_core::Services;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service layer.
    pub services: Services,
    /// Request rate limits of subscriber requests.
    pub limiter: std::sync::Arc<ratelimit::RateLimiter>,
    /// The web page's signing key and login throttle.
    pub web: std::sync::Arc<web::WebState>,
    /// HTTP Digest nonces of `settings.phtml`, signed with the web page's key.
    pub digest: std::sync::Arc<sip_settings_core::digest::Nonces>,
}

impl AppState {
    /// State with the given rate limits (`None`: unlimited).
    pub fn new(services: Services, limits: Option<ratelimit::RateLimits>) -> Self {
        Self {
            services,
            limiter: std::sync::Arc::new(ratelimit::RateLimiter::new(limits)),
            web: std::sync::Arc::new(web::WebState::new(web::WebKey::random())),
            digest: std::sync::Arc::new(sip_settings_core::digest::Nonces::new(rand::random::<
                [u8; 32],
            >())),
        }
    }

    /// The same state signing web sessions with `key` (the data directory's `web.key`), so
    /// that every server sharing the data directory accepts the others' sessions.
    pub fn with_web_key(mut self, key: [u8; 32]) -> Self {
        self.web = std::sync::Arc::new(web::WebState::new(web::WebKey::new(key)));
        self.digest = std::sync::Arc::new(sip_settings_core::digest::Nonces::new(key));
        self
    }
}

/// Largest request body the action endpoint reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Runs a request's handler in its own task, to its end. Without it, a client that gives up
/// (a proxy's HTTP client timing out, a dropped connection) drops the handler's future
/// wherever it waits, and a write dropped between its `BEGIN` and the `Transaction` that would
/// roll it back leaves SQLite's writer connection inside a transaction: every later write then
/// failed with "begin_with at non-zero transaction depth", and what ran on that connection was
/// not durable. A handler that runs to its end commits or rolls back; the client that left just
/// does not hear the answer (the proxy feeds are idempotent, so a resend is safe). A panic in
/// the task is raised again here, for the panic layer.
async fn to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => legacy::reply::failure(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Error: the server is stopping",
        ),
    }
}

/// A request's `User-Agent`, when it is readable text.
pub(crate) fn user_agent(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/settings.phtml", any(legacy::actions::handle))
        .route("/settings", any(legacy::actions::handle))
        .merge(v1::routes())
        .merge(web::routes())
        .fallback(legacy::reply::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(to_completion))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            legacy::reply::panic_reply,
        ))
        .layer(axum::middleware::from_fn(status::log_causes))
        .layer(axum::middleware::from_fn(metrics::track))
}
