//! The ops listener (`serve --ops-listen ADDR:PORT`): plain HTTP, no client certificate, for
//! the provider's monitoring only — keep it on a private address.
//!
//! * `GET /healthz`: `200 ok` while the process serves.
//! * `GET /readyz`: `200 ready` when the store answers a query that reaches the database (not
//!   a cached read) and every migration of this build is applied, `503` with the reason otherwise — also while
//!   the server drains on its way out, so that a load balancer sends new clients elsewhere.
//! * `GET /metrics`: every metric of the process in the Prometheus text format
//!   (`sip_settings_core::metrics`), with the build's version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sip_settings_core::metrics;
use sip_settings_core::service::Services;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The content type of the text exposition format.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the ops routes read.
#[derive(Clone)]
struct Ops {
    services: Services,
    draining: Arc<AtomicBool>,
}

/// Binds `at` and serves the ops routes in a task of their own; the bound address and task.
/// `draining` is set when the server stops.
pub async fn start(
    at: SocketAddr,
    services: Services,
    draining: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(at).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render))
        .with_state(Ops { services, draining });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the ops listener stopped");
        }
    });
    Ok((addr, task))
}

/// `/readyz`: a read of the journal, which no store keeps in memory, so it asks the database.
async fn ready(axum::extract::State(ops): axum::extract::State<Ops>) -> impl IntoResponse {
    if ops.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: stopping\n".to_owned(),
        );
    }
    match ops.services.store().pending_migrations().await {
        Ok(pending) if pending.is_empty() => (StatusCode::OK, "ready\n".to_owned()),
        Ok(pending) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the database schema is behind this build; migrations not applied: {} \
                 (run `sip-settings migrate`, or serve without --no-migrate)\n",
                pending.join(", ")
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store does not answer: {e}\n"),
        ),
    }
}

/// `/metrics`: the HTTPS door's requests, the process's counters, the store's figures, the
/// prepaid sessions open (a count the database answers: every server's sessions), the build.
async fn render(axum::extract::State(ops): axum::extract::State<Ops>) -> impl IntoResponse {
    let store = ops.services.store();
    let build = format!(
        "# HELP sip_settings_build_info The running build; always 1.\n\
         # TYPE sip_settings_build_info gauge\n\
         sip_settings_build_info{{version=\"{}\"}} 1\n",
        metrics::escape_value(env!("CARGO_PKG_VERSION"))
    );
    let mut text = crate::metrics::render();
    text.push_str(&metrics::global().render());
    store.render_metrics(&mut text);
    // Left out when the database does not answer: a scrape must not fail with the store.
    if let Ok(open) = store.open_prepaid_session_count().await {
        metrics::family(
            &mut text,
            "sip_settings_prepaid_sessions_open",
            "Prepaid sessions open now in the database (all servers').",
            "gauge",
            &[("", open)],
        );
    }
    text.push_str(&build);
    ([(header::CONTENT_TYPE, METRICS_TYPE)], text)
}
