//! The service API under `/v1/service/` for SIP proxies and call control (service
//! certificates only): recording calls and running prepaid sessions. JSON in and out; errors
//! are problem documents.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sip_settings_core::calls::{
    CallInput, CloseInput, OpenOutcome, PrepaidRefusal, PrepaidSession,
};
use sip_settings_core::devices::{Lifetimes, RegisterInput};
use sip_settings_core::{Identity, ServiceError};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::identity::identify;
use crate::openapi::{Problem, ServiceErrors};
use crate::problem::{from_error, problem};
use crate::serve::Peer;

/// A request made with a valid service certificate.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    /// The certificate holder's name.
    pub name: String,
    /// The client's address.
    pub addr: Option<std::net::SocketAddr>,
}

impl ServiceClient {
    /// The services acting for this client (its changes are journaled as the service door).
    pub fn services(&self, state: &AppState) -> sip_settings_core::Services {
        state
            .services
            .with_origin(sip_settings_core::journal::Origin {
                door: sip_settings_core::journal::Door::ServiceApi,
                actor: format!("service {}", self.name),
                source: self.addr.map(|a| a.ip().to_string()),
            })
    }
}

impl FromRequestParts<AppState> for ServiceClient {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match identify(&state.services, parts.extensions.get::<Peer>()).await {
            Ok(Identity::Service { name, .. }) => Ok(Self {
                name,
                addr: parts.extensions.get::<Peer>().map(|p| p.addr),
            }),
            Ok(_) => Err(problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the service API takes service certificates only",
                None,
            )),
            Err(e) => Err(from_error(&e)),
        }
    }
}

/// Reads a JSON object body into `T` with the `/v1` rules ([`crate::v1::json_body`]: at most
/// [`crate::MAX_BODY_BYTES`], an object only, a problem reply naming what is wrong).
pub async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, Response> {
    crate::v1::json_body(body)
        .await
        .map_err(IntoResponse::into_response)
}

/// The service routes (documented in `/v1/openapi.json`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_call))
        .routes(routes!(record_calls))
        .routes(routes!(open_session))
        .routes(routes!(close_session))
        .routes(routes!(register))
}

/// A REGISTER the proxy's registrar accepted (`POST /v1/service/registrations`), as it
/// received it: sip-settings applies RFC 3261 §10.3's rules to its own copy of the bindings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationBody {
    /// The address of record (the To URI).
    #[serde(default)]
    #[schema(required = true)]
    aor: String,
    /// Every Contact header value, comma-joined; `*`; or empty (a query).
    #[serde(default)]
    contact: String,
    /// The Expires header, if any.
    expires: Option<i64>,
    /// The User-Agent header.
    #[serde(default)]
    user_agent: String,
    /// The transport it arrived over.
    #[serde(default)]
    #[schema(required = true)]
    transport: String,
    /// Where it came from, `ip:port`.
    #[serde(default)]
    #[schema(required = true)]
    source: String,
    /// Call-ID.
    #[serde(default)]
    #[schema(required = true)]
    call_id: String,
    /// CSeq number.
    #[schema(value_type = i64, required = true)]
    cseq: Option<i64>,
    /// The registrar's minimum lifetime (default 60; 0: none).
    #[schema(value_type = Option<u32>)]
    min_expires: Option<u32>,
    /// The registrar's maximum lifetime (default 3600; 0: none).
    #[schema(value_type = Option<u32>)]
    max_expires: Option<u32>,
    /// The lifetime granted when none is asked for (default 3600).
    #[schema(value_type = Option<u32>)]
    default_expires: Option<u32>,
}

/// The account's devices after a registration.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct Registered {
    /// The account (the address of record, aliases resolved).
    account: String,
    /// Its devices, as `GET /v1/me/devices` shows them.
    devices: Vec<crate::resources::DeviceView>,
}

/// Records a REGISTER the proxy accepted: the account's devices are then known to the call
/// decisions (the SIP door) and shown to the subscriber. `403` for a domain not served here,
/// `404` for an address no account has; nothing changes then.
#[utoipa::path(post, path = "/v1/service/registrations", tag = "service",
    request_body(content = RegistrationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied", body = Registered),
        ServiceErrors
    ))]
async fn register(State(state): State<AppState>, client: ServiceClient, body: Body) -> Response {
    let b: RegistrationBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(cseq) = b.cseq else {
        return from_error(&ServiceError::invalid("cseq", "is required"));
    };
    let defaults = Lifetimes::default();
    let input = RegisterInput {
        aor: b.aor,
        contact: b.contact,
        expires: b.expires,
        user_agent: b.user_agent,
        transport: b.transport,
        source: b.source,
        call_id: b.call_id,
        cseq,
        lifetimes: Lifetimes {
            default: b.default_expires.unwrap_or(defaults.default),
            min: b.min_expires.unwrap_or(defaults.min),
            max: b.max_expires.unwrap_or(defaults.max),
        },
    };
    let services = client.services(&state);
    match services.register_devices(&input).await {
        Ok((account, devices)) => {
            let now = services.clock().now();
            Json(json!({
                "account": account.to_string(),
                "devices": devices
                    .iter()
                    .map(|d| crate::resources::DeviceView::of(d, now))
                    .collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Err(e) => from_error(&e),
    }
}

/// A finished call as a proxy's accounting sends it (`POST /v1/service/calls`). The optional
/// fields may be absent or `null` (none); a required field that is absent is reported by
/// core's `CallInput::parse`, which names any missing or malformed field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRecordBody {
    /// SIP Call-ID.
    #[serde(default)]
    #[schema(required = true)]
    call_id: String,
    /// From tag.
    from_tag: Option<String>,
    /// To tag.
    to_tag: Option<String>,
    /// Caller SIP URI.
    #[serde(default)]
    #[schema(required = true)]
    caller: String,
    /// Callee SIP URI.
    #[serde(default)]
    #[schema(required = true)]
    callee: String,
    /// Start, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime, required = true)]
    start: String,
    /// Stop, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime, required = true)]
    stop: String,
    /// Seconds talked.
    #[schema(value_type = i64, required = true)]
    duration: Option<i64>,
    /// SIP final status code.
    #[schema(value_type = i64, required = true)]
    status: Option<i64>,
    /// Media types, e.g. `["audio"]`.
    media: Option<Vec<String>>,
    /// Address of the proxy.
    proxy_ip: Option<String>,
    /// Price, a decimal string.
    price: Option<String>,
}

impl From<CallRecordBody> for CallInput {
    fn from(b: CallRecordBody) -> Self {
        Self {
            call_id: b.call_id,
            from_tag: b.from_tag.unwrap_or_default(),
            to_tag: b.to_tag.unwrap_or_default(),
            caller: b.caller,
            callee: b.callee,
            start: b.start,
            stop: b.stop,
            duration: b.duration,
            status: b.status,
            media: b.media.unwrap_or_default(),
            proxy_ip: b.proxy_ip.unwrap_or_default(),
            price: b.price,
        }
    }
}

/// The answer to a recorded call.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct Recorded {
    /// Whether the record was new.
    recorded: bool,
    /// Present and true when the record was a replay.
    replay: Option<bool>,
    /// The Call-ID.
    call_id: String,
}

/// The rate a session is charged at.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct RateAnswer {
    /// Matched prefix.
    prefix: String,
    /// Description.
    description: String,
    /// Connect fee, decimal string.
    connect_fee: String,
    /// Per minute, decimal string.
    rate_per_minute: String,
    /// Billing increment, seconds.
    increment_seconds: u32,
    /// Minimum billed seconds.
    minimum_seconds: u32,
}

/// An open prepaid session.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct SessionAnswer {
    /// Call-ID.
    call_id: String,
    /// The paying account.
    account: String,
    /// The dialled number.
    destination: String,
    /// Seconds granted.
    max_session_time: u32,
    /// Balance held, decimal string.
    reserved: String,
    /// The rate.
    rate: RateAnswer,
    /// When it opened, RFC 3339.
    opened_at: String,
}

/// A settled session.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct CloseAnswer {
    /// Call-ID.
    call_id: String,
    /// Seconds billed for.
    duration: u32,
    /// Price, decimal string.
    price: String,
    /// Balance after, decimal string.
    balance: String,
}

/// Records a finished call for its local parties (idempotent on Call-ID and tags).
#[utoipa::path(post, path = "/v1/service/calls", tag = "service",
    request_body(content = CallRecordBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = Recorded),
        (status = 200, description = "A replay: nothing stored", body = Recorded),
        ServiceErrors
    ))]
async fn record_call(State(state): State<AppState>, client: ServiceClient, body: Body) -> Response {
    let input: CallInput = match json_body::<CallRecordBody>(body).await {
        Ok(v) => v.into(),
        Err(r) => return r,
    };
    match client.services(&state).record_call(&input).await {
        Ok(true) => (
            StatusCode::CREATED,
            Json(json!({"recorded": true, "call_id": input.call_id})),
        )
            .into_response(),
        Ok(false) => (
            StatusCode::OK,
            Json(json!({"recorded": false, "replay": true, "call_id": input.call_id})),
        )
            .into_response(),
        Err(e) => from_error(&e),
    }
}

/// Most records in one batch.
pub const MAX_BATCH: usize = 1000;

/// Finished calls in one batch (`POST /v1/service/calls/batch`): what a proxy's accounting
/// queued, stored in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBatchBody {
    /// 1 to 1000 call records, each as `POST /v1/service/calls` takes it.
    #[serde(default)]
    #[schema(required = true)]
    calls: Vec<CallRecordBody>,
}

/// The answer to a batch.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of the JSON below
pub struct BatchRecorded {
    /// Records stored.
    recorded: usize,
    /// Records already stored before (replays): nothing stored for them.
    replays: usize,
}

/// Records many finished calls at once, all or none: one transaction, one durable commit (a
/// proxy's accounting queue drains at thousands of calls a second this way, where one commit
/// per call is bound by the disk's flush time). A malformed record refuses the whole batch,
/// naming it (`calls[3].caller`); replays are counted, not stored again.
#[utoipa::path(post, path = "/v1/service/calls/batch", tag = "service",
    request_body(content = CallBatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = BatchRecorded),
        ServiceErrors
    ))]
async fn record_calls(
    State(state): State<AppState>,
    client: ServiceClient,
    body: Body,
) -> Response {
    let batch: CallBatchBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if batch.calls.is_empty() || batch.calls.len() > MAX_BATCH {
        return from_error(&ServiceError::invalid(
            "calls",
            format!("must hold 1 to {MAX_BATCH} call records"),
        ));
    }
    let services = client.services(&state);
    let mut calls = Vec::with_capacity(batch.calls.len());
    for (i, body) in batch.calls.into_iter().enumerate() {
        match services.prepare_call(&body.into()).await {
            Ok(call) => calls.push(call),
            Err(ServiceError::Invalid { field, reason }) => {
                return from_error(&ServiceError::Invalid {
                    field: format!("calls[{i}].{field}"),
                    reason,
                });
            }
            Err(e) => return from_error(&e),
        }
    }
    let total = calls.len();
    match services.record_calls(&calls).await {
        Ok(recorded) => {
            Json(json!({"recorded": recorded, "replays": total - recorded})).into_response()
        }
        Err(e) => from_error(&e),
    }
}

/// What to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    account: String,
    destination: String,
    call_id: String,
}

fn session_json(s: &PrepaidSession) -> serde_json::Value {
    json!({
        "call_id": s.call_id,
        "account": s.account.to_string(),
        "destination": s.destination.to_string(),
        "max_session_time": s.max_session_time,
        "reserved": s.reserved.to_string(),
        "rate": {
            "prefix": s.rate.prefix,
            "description": s.rate.description,
            "connect_fee": s.rate.connect_fee.to_string(),
            "rate_per_minute": s.rate.rate_per_minute.to_string(),
            "increment_seconds": s.rate.increment_seconds,
            "minimum_seconds": s.rate.minimum_seconds,
        },
        "opened_at": s.opened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn refusal_status(r: PrepaidRefusal) -> StatusCode {
    match r {
        PrepaidRefusal::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
        PrepaidRefusal::NoRate => StatusCode::UNPROCESSABLE_ENTITY,
        PrepaidRefusal::TooManySessions | PrepaidRefusal::NotPrepaid => StatusCode::CONFLICT,
    }
}

/// Opens a prepaid session: the time the balance (less open reservations) pays, reserved.
#[utoipa::path(post, path = "/v1/service/prepaid/sessions", tag = "service",
    request_body(content = OpenBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Opened", body = SessionAnswer),
        (status = 200, description = "Already open: the session as it is", body = SessionAnswer),
        (status = 402, description = "insufficient_balance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "too_many_sessions, not_prepaid, or a closed Call-ID", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "no_rate", body = Problem, content_type = "application/problem+json"),
        ServiceErrors
    ))]
async fn open_session(
    State(state): State<AppState>,
    client: ServiceClient,
    body: Body,
) -> Response {
    let input: OpenBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match client
        .services(&state)
        .open_prepaid(&input.account, &input.destination, &input.call_id)
        .await
    {
        Ok(OpenOutcome::Opened(session)) => {
            (StatusCode::CREATED, Json(session_json(&session))).into_response()
        }
        Ok(OpenOutcome::AlreadyOpen(session)) => {
            (StatusCode::OK, Json(session_json(&session))).into_response()
        }
        Ok(OpenOutcome::Refused(r)) => problem(refusal_status(r), r.code(), r.message(), None),
        Err(e) => from_error(&e),
    }
}

/// How a session ended. The optional fields may be absent or `null` (none), as in a call record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// Seconds talked.
    duration: i64,
    /// From tag.
    from_tag: Option<String>,
    /// To tag.
    to_tag: Option<String>,
    /// Media types, e.g. `["audio"]`.
    media: Option<Vec<String>>,
    /// Address of the proxy.
    proxy_ip: Option<String>,
    /// The call's final SIP status (default 200). A call that was never answered is closed
    /// with duration 0 and its failure status (e.g. 486, 487): free, the reservation freed.
    #[schema(value_type = Option<i64>)]
    status: Option<i64>,
}

/// Closes a prepaid session: price, debit, history, call record, in one transaction; a repeated
/// close answers the first result.
#[utoipa::path(post, path = "/v1/service/prepaid/sessions/{call_id}/close", tag = "service",
    params(("call_id" = String, Path, description = "The session's Call-ID")),
    request_body(content = CloseBody, content_type = "application/json"),
    responses((status = 200, description = "Settled", body = CloseAnswer), ServiceErrors))]
async fn close_session(
    State(state): State<AppState>,
    client: ServiceClient,
    Path(call_id): Path<String>,
    body: Body,
) -> Response {
    let input: CloseBody = match json_body(body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result: Result<PrepaidSession, ServiceError> = client
        .services(&state)
        .close_prepaid(
            &call_id,
            &CloseInput {
                duration: input.duration,
                from_tag: input.from_tag.unwrap_or_default(),
                to_tag: input.to_tag.unwrap_or_default(),
                media: input.media.unwrap_or_default(),
                proxy_ip: input.proxy_ip.unwrap_or_default(),
                status: input.status,
            },
        )
        .await;
    match result {
        Ok(session) => match &session.closed {
            Some(s) => Json(json!({
                "call_id": session.call_id,
                "duration": s.duration,
                "price": s.price.to_string(),
                "balance": s.balance.to_string(),
            }))
            .into_response(),
            None => from_error(&ServiceError::Internal("session not closed".to_owned())),
        },
        Err(e) => from_error(&e),
    }
}
