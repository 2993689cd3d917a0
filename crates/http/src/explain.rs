//! Routing decisions over HTTP: the shared explanation of `core::routing` (used by
//! `GET /v1/me/routing/explain`) and `POST /v1/service/route`, which answers a proxy with the
//! same decision plus what it needs to act on it: the target, the RFC 5806 reason and the
//! no-answer timeout. Service certificates only.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sip_settings_core::calls::parse_time;
use sip_settings_core::ids::printable;
use sip_settings_core::routing::{CallState, Caller, Decision, Destination, Outcome};
use sip_settings_core::sip::parse_caller;
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::etag;
use crate::openapi::ServiceErrors;
use crate::service_api::ServiceClient;
use crate::v1::{ApiResult, invalid, json_body};

/// Where a forward goes (core `Destination`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of a core type's JSON
pub struct DestinationDoc {
    /// `uri` or `voice_mailbox`.
    kind: String,
    /// The SIP URI, for `kind: uri`.
    uri: Option<String>,
}

/// A forward (core `Forward`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of a core type's JSON
pub struct ForwardDoc {
    /// `FUNC`, `FNOL`, `FBUS`, `FNOA` or `FUNV`.
    condition: String,
    /// Where to.
    destination: DestinationDoc,
    /// RFC 5806 `Diversion` reason.
    reason: String,
}

/// What happens to the call (core `Outcome`), tagged by `action`: `reject` (`code`, `reason`),
/// `forward` (`condition`, `destination`, `reason`) or `ring` (`seconds`, `on_busy`,
/// `on_no_answer`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation of a core type's JSON
pub struct OutcomeDoc {
    /// `reject`, `forward` or `ring`.
    action: String,
    /// SIP status of a rejection.
    code: Option<u16>,
    /// Reason phrase of a rejection, or the RFC 5806 reason of a forward.
    reason: Option<String>,
    /// Condition of a forward.
    condition: Option<String>,
    /// Destination of a forward.
    destination: Option<DestinationDoc>,
    /// Ring time.
    seconds: Option<u32>,
    /// Forward on busy while ringing.
    on_busy: Option<ForwardDoc>,
    /// Forward when nobody answers in time.
    on_no_answer: Option<ForwardDoc>,
}

/// A routing decision explained (`GET /v1/me/routing/explain`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The called account.
    pub account: String,
    /// The caller (`anonymous` or a SIP URI).
    pub caller: String,
    /// When the call arrives (RFC 3339, UTC).
    pub at: String,
    /// The account's time zone, in which accept rules were evaluated.
    pub timezone: String,
    /// `at` in that time zone (RFC 3339 with its offset).
    pub local_time: String,
    /// The zone's abbreviation at that moment (`EST`, `EDT`, `CET`, …).
    pub zone_abbreviation: String,
    /// Whether a device was taken as registered.
    pub registered: bool,
    /// Whether the account was taken as busy.
    pub busy: bool,
    /// What happens.
    #[schema(value_type = OutcomeDoc)]
    pub outcome: serde_json::Value,
    /// The rules consulted, in order, and what each said.
    pub path: Vec<String>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Routes `call` to `id` with the core function and explains the decision.
pub async fn explain(
    services: &Services,
    id: &AccountId,
    call: &CallState,
) -> Result<Explanation, ServiceError> {
    let (account, decision) = services.route_call(id, call).await?;
    Ok(explanation(&account, call, decision))
}

fn explanation(
    account: &sip_settings_core::Account,
    call: &CallState,
    decision: Decision,
) -> Explanation {
    let tz = account.profile.timezone;
    let local = call.at.with_timezone(&tz.tz());
    Explanation {
        account: account.id.to_string(),
        caller: match &call.caller {
            Caller::Anonymous => "anonymous".to_owned(),
            Caller::Uri(u) => u.to_string(),
        },
        at: time(call.at),
        timezone: tz.name().to_owned(),
        local_time: local.to_rfc3339_opts(SecondsFormat::Secs, false),
        zone_abbreviation: local.format("%Z").to_string(),
        registered: call.registered,
        busy: call.busy,
        outcome: serde_json::to_value(&decision.outcome).unwrap_or(serde_json::Value::Null),
        path: decision.path,
    }
}

// ===== POST /v1/service/route =====================================================================

/// A routing question from a proxy (`POST /v1/service/route`). Exactly one of `account` and
/// `callee`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// The called address: `user@domain` or a SIP URI (aliases and ENUM numbers resolve to
    /// their account).
    #[serde(default)]
    pub account: Option<String>,
    /// The same as `account` (the Request-URI of the INVITE).
    #[serde(default)]
    pub callee: Option<String>,
    /// The caller: a SIP URI, `user@host`, or `anonymous`.
    pub caller: String,
    /// Whether the callee has a registered device.
    pub registered: bool,
    /// Whether the callee is busy.
    pub busy: bool,
    /// When the call arrives (RFC 3339, default now).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub at: Option<String>,
}

/// What the proxy does with a call (`POST /v1/service/route`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteAnswer {
    /// The account the callee resolved to.
    pub account: String,
    /// `reject`, `forward` or `ring`.
    pub action: String,
    /// Where the call goes: the forward's SIP URI (`<voice-mailbox>` for the account's
    /// mailbox), the account's own address when it rings, `null` when rejected.
    pub target: Option<String>,
    /// RFC 5806 `Diversion` reason of a forward (`unconditional`, `user-busy`, `no-answer`,
    /// `unavailable`, `time-of-day`, `do-not-disturb`), else `null`.
    pub reason: Option<String>,
    /// SIP status of a rejection, else `null`.
    pub code: Option<u16>,
    /// Seconds to ring before `FNOA` applies (the account's no-answer timeout).
    pub no_answer_timeout: u32,
    /// The account's time zone, in which accept rules were evaluated.
    pub timezone: String,
    /// `at` in that time zone (RFC 3339 with its offset).
    pub local_time: String,
    /// The full decision.
    #[schema(value_type = OutcomeDoc)]
    pub outcome: serde_json::Value,
    /// The rules consulted, in order.
    pub path: Vec<String>,
}

/// The service routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(route))
}

/// Decides what happens to a call to a local account, for a proxy (service certificates only).
#[utoipa::path(post, path = "/v1/service/route", tag = "service",
    request_body(content = RouteRequest, content_type = "application/json"),
    responses((status = 200, description = "The decision", body = RouteAnswer), ServiceErrors))]
async fn route(State(state): State<AppState>, client: ServiceClient, body: Body) -> ApiResult {
    let r: RouteRequest = json_body(body).await?;
    let (field, callee) = match (&r.account, &r.callee) {
        (Some(a), None) => ("account", a),
        (None, Some(c)) => ("callee", c),
        (Some(_), Some(_)) => {
            return Err(invalid("callee", "cannot be given together with account"));
        }
        (None, None) => return Err(invalid("account", "is required (or callee)")),
    };
    let services = client.services(&state);
    let Some(id) = services.resolve_callee(field, callee).await? else {
        return Err(ServiceError::NotFound(format!(
            "{} is not a local account, alias or number",
            printable(callee.trim())
        ))
        .into());
    };
    let caller = parse_caller("caller", &r.caller, id.domain())?;
    let at = match r.at.as_deref() {
        Some(t) => parse_time("at", t)?,
        None => state.services.clock().now(),
    };
    let call = CallState {
        caller,
        registered: r.registered,
        busy: r.busy,
        at,
    };
    let (account, decision) = services.route_call(&id, &call).await?;
    let (action, target, reason, code) = match &decision.outcome {
        Outcome::Reject { code, .. } => ("reject", None, None, Some(*code)),
        Outcome::Forward(f) => (
            "forward",
            Some(match &f.destination {
                Destination::Uri(u) => u.clone(),
                Destination::VoiceMailbox => sip_settings_core::sip::VOICE_MAILBOX.to_owned(),
            }),
            Some(f.reason.to_owned()),
            None,
        ),
        Outcome::Ring { .. } => ("ring", Some(id.sip_uri()), None, None),
    };
    let e = explanation(&account, &call, decision);
    Ok(etag::reply(
        StatusCode::OK,
        &RouteAnswer {
            account: id.to_string(),
            action: action.to_owned(),
            target,
            reason,
            code,
            no_answer_timeout: account.profile.no_answer_timeout,
            timezone: e.timezone,
            local_time: e.local_time,
            outcome: e.outcome,
            path: e.path,
        },
    ))
}
