//! The resource API for subscribers under `/v1/me/`. JSON in and out, problem documents for
//! errors, the same `core` service functions as the action endpoint.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::SecondsFormat;
use serde_json::json;
use sip_settings_core::Serial;
use sip_settings_core::cert::CertRecord;

use crate::AppState;
use crate::identity::Subscriber;
use crate::problem::{from_error, problem};
use crate::ratelimit::Kind;

/// The `/v1/me` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/certificates", get(list_certificates))
        .route("/v1/me/certificates/{serial}", delete(revoke_certificate))
        .route("/v1/me/journal", get(journal))
}

fn limited(state: &AppState, me: &Subscriber, kind: Kind) -> Result<(), Box<Response>> {
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
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            Box::new(r)
        })
}

fn certificate_json(c: &CertRecord, current: &Serial) -> serde_json::Value {
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "serial": c.serial.to_string(),
        "subject": c.subject,
        "fingerprint_sha256": c.fingerprint,
        "not_before": time(c.not_before),
        "not_after": time(c.not_after),
        "issued_at": time(c.issued_at),
        "revoked_at": c.revoked_at.map(time),
        "current": &c.serial == current,
    })
}

async fn list_certificates(State(state): State<AppState>, me: Subscriber) -> Response {
    if let Err(r) = limited(&state, &me, Kind::Read) {
        return *r;
    }
    match state.services.list_certificates(Some(&me.account)).await {
        Ok(list) => Json(json!({
            "certificates": list.iter().map(|c| certificate_json(c, &me.serial)).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => from_error(&e),
    }
}

async fn revoke_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    Path(serial): Path<String>,
) -> Response {
    if let Err(r) = limited(&state, &me, Kind::Write) {
        return *r;
    }
    let services = me.services(&state);
    let result = async {
        let serial = Serial::parse(&serial)?;
        services.revoke_own_certificate(&me.account, &serial).await
    }
    .await;
    match result {
        Ok(record) => Json(certificate_json(&record, &me.serial)).into_response(),
        Err(e) => from_error(&e),
    }
}

/// Query of `GET /v1/me/journal`.
#[derive(Debug, serde::Deserialize)]
pub struct JournalQuery {
    /// Entries older than this cursor (the `next` of the previous page).
    pub before: Option<i64>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
}

async fn journal(
    State(state): State<AppState>,
    me: Subscriber,
    query: Result<axum::extract::Query<JournalQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = limited(&state, &me, Kind::Read) {
        return *r;
    }
    let Ok(axum::extract::Query(q)) = query else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "before and limit must be whole numbers",
            Some("before"),
        );
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "limit must be between 1 and 200",
            Some("limit"),
        );
    }
    match state
        .services
        .journal_entries(&me.account, q.before, limit)
        .await
    {
        Ok(entries) => {
            let next = if entries.len() == limit as usize {
                entries.last().map(|e| e.id)
            } else {
                None
            };
            Json(json!({
                "entries": entries.iter().map(|e| json!({
                    "id": e.id,
                    "at": e.entry.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "door": e.entry.door,
                    "actor": e.entry.actor,
                    "source": e.entry.source,
                    "resource": e.entry.resource,
                    "old": e.entry.old,
                    "new": e.entry.new,
                })).collect::<Vec<_>>(),
                "next": next,
            }))
            .into_response()
        }
        Err(e) => from_error(&e),
    }
}
