//! Request metrics of the HTTPS door: how many requests each door and route answered with each
//! status, and how long they took (`sip_settings_core::metrics`, rendered by the ops listener).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use sip_settings_core::metrics;

use crate::legacy::actions::Action;

/// Requests answered, by door, route and status.
pub const REQUESTS: &str = "sip_settings_http_requests_total";
const REQUESTS_HELP: &str = "HTTPS requests answered, by door (settings, v1, service, web), \
                             route (the action or the route's path template) and status.";
const REQUESTS_LABELS: &[&str] = &["door", "route", "status"];
/// Their latency.
pub const DURATION: &str = "sip_settings_http_request_duration_seconds";
const DURATION_HELP: &str = "Time from a request's head to its response's head, by door and route.";
const DURATION_LABELS: &[&str] = &["door", "route"];

/// The door and route of a request, from sets that do not grow with the requests: a legacy
/// action only if it is one of the known names, a `/v1` or web route by its path template.
fn door_and_route(request: &Request) -> (&'static str, String) {
    let path = request.uri().path();
    if path == "/settings.phtml" || path == "/settings" {
        let action = request.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "action")
                .map(|(_, v)| v.into_owned())
        });
        let route = match action {
            Some(a) if Action::NAMES.iter().any(|(name, _)| *name == a) => a,
            Some(_) => "unknown".to_owned(),
            None => "none".to_owned(),
        };
        return ("settings", route);
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
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
    let (door, route) = door_and_route(&request);
    let response = next.run(request).await;
    let registry = metrics::global();
    let status = response.status();
    registry.add(
        REQUESTS,
        REQUESTS_HELP,
        REQUESTS_LABELS,
        &[door, &route, status.as_str()],
        1,
    );
    registry.observe(
        DURATION,
        DURATION_HELP,
        DURATION_LABELS,
        &[door, &route],
        started.elapsed(),
    );
    response
}
