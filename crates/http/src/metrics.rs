//! Request metrics of the HTTPS door: how many requests each door and route answered with each
//! status, and how long they took. Rendered by the ops listener (`crate::ops`) beside the
//! process's other metrics. Here too each request's access line is logged ([`ACCESS`]).
//!
//! Every request passes here, so the hot path allocates nothing: a route is a `&'static str`
//! (an action name) or the route's path template as axum already holds it (`Arc<str>`), and
//! the series live in one small map under one short lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Version};
use axum::middleware::Next;
use axum::response::Response;
use sip_settings_core::metrics::{Histogram, escape_value, header};

use crate::legacy::actions::Action;
use crate::serve::{Peer, PeerCertificate};

/// Requests answered, by door, route and status.
pub const REQUESTS: &str = "sip_settings_http_requests_total";
/// Their latency.
pub const DURATION: &str = "sip_settings_http_request_duration_seconds";

/// The tracing target of the access lines: one per request at INFO, with the fields `door`,
/// `route` (the action or the route's path template — never the query, which may hold a
/// password), `method`, `status`, `duration_ms`, `addr` (the client's address and port),
/// `serial` (the client certificate's serial, `-` without one) and `version`. Off with
/// `RUST_LOG=info,access=off`.
pub const ACCESS: &str = "access";

/// A route label: an action's name, a path template, or a fixed word.
#[derive(Debug, Clone, Eq)]
enum Route {
    Static(&'static str),
    Template(Arc<str>),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Template(s) => s,
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// One door and route: its statuses' counts and its latency histogram.
#[derive(Debug, Default)]
struct Series {
    statuses: HashMap<u16, u64>,
    latency: Histogram,
}

type Table = Mutex<HashMap<(&'static str, Route), Series>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::default)
}

/// The door and route of a request, from sets that do not grow with the requests: a legacy
/// action only if it is one of the known names, a `/v1` or web route by its path template.
fn door_and_route(request: &Request) -> (&'static str, Route) {
    let path = request.uri().path();
    if path == "/settings.phtml" || path == "/settings" {
        let known = |a: &str| {
            Action::NAMES
                .iter()
                .find(|(name, _)| *name == a)
                .map_or(Route::Static("unknown"), |(name, _)| Route::Static(name))
        };
        let route = match request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("action=")))
        {
            // Encoded (rare): decoded as the handler decodes it.
            Some(a) if a.contains(['%', '+']) => {
                let decoded: String = form_urlencoded::parse(a.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                known(&decoded)
            }
            Some(a) => known(a),
            None => Route::Static("none"),
        };
        return ("settings", route);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(Route::Static("unmatched"), |m| {
            Route::Template(Arc::from(m.as_str()))
        });
    let door = if path.starts_with("/v1/service/") {
        "service"
    } else if path.starts_with("/v1/") || path == "/v1" {
        "v1"
    } else {
        "web"
    };
    (door, route)
}

/// Counts and times every request.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let key = door_and_route(&request);
    // What only the access line needs is taken only when it is logged (benchmarks and busy
    // servers run with `access=off`).
    let logged = tracing::enabled!(target: ACCESS, tracing::Level::INFO).then(|| {
        (
            request.method().clone(),
            request.version(),
            request.extensions().get::<Peer>().cloned(),
        )
    });
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Some((method, version, peer)) = logged {
        access_line(&key, &method, version, status, elapsed, peer.as_ref());
    }
    let mut table = table().lock().unwrap_or_else(|p| p.into_inner());
    let series = match table.get_mut(&key) {
        Some(series) => series,
        None => table.entry(key).or_default(),
    };
    *series.statuses.entry(status).or_insert(0) += 1;
    series.latency.observe(elapsed);
    response
}

/// Logs a request's access line (target [`ACCESS`]; the caller checked that it is enabled).
fn access_line(
    (door, route): &(&'static str, Route),
    method: &Method,
    version: Version,
    status: u16,
    elapsed: Duration,
    peer: Option<&Peer>,
) {
    let serial = match peer.and_then(|p| p.certificate.as_deref()) {
        Some(PeerCertificate::Read { serial, .. }) => serial.to_string(),
        Some(PeerCertificate::Unreadable) => "unreadable".to_owned(),
        None => "-".to_owned(),
    };
    let addr = peer.map_or_else(|| "-".to_owned(), |p| p.addr.to_string());
    tracing::info!(
        target: ACCESS,
        door,
        route = route.as_str(),
        method = method.as_str(),
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        addr,
        serial,
        version = ?version,
        "request"
    );
}

/// The request metrics in the Prometheus text format.
pub fn render() -> String {
    let table = table().lock().unwrap_or_else(|p| p.into_inner());
    let mut keys: Vec<&(&'static str, Route)> = table.keys().collect();
    keys.sort_by(|a, b| (a.0, a.1.as_str()).cmp(&(b.0, b.1.as_str())));
    let mut out = String::new();
    header(
        &mut out,
        REQUESTS,
        "HTTPS requests answered, by door (settings, v1, service, web), route (the action or \
         the route's path template) and status.",
        "counter",
    );
    for key in &keys {
        let (door, route) = (key.0, escape_value(key.1.as_str()));
        if let Some(series) = table.get(*key) {
            let mut statuses: Vec<(&u16, &u64)> = series.statuses.iter().collect();
            statuses.sort();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "{REQUESTS}{{door=\"{door}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }
    header(
        &mut out,
        DURATION,
        "Time from a request's head to its response's head, by door and route.",
        "histogram",
    );
    for key in &keys {
        if let Some(series) = table.get(*key) {
            let labels = format!(
                "door=\"{}\",route=\"{}\"",
                key.0,
                escape_value(key.1.as_str())
            );
            series.latency.render(DURATION, &labels, &mut out);
        }
    }
    out
}
