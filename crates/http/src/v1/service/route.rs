//! `POST /v1/service/route`: a proxy's routing question, answered with the same decision as
//! `GET /v1/me/routing/explain` plus what the proxy needs to act on it: the target, the RFC 5806
//! reason and the no-answer timeout.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sip_settings_core::ServiceError;
use sip_settings_core::calls::parse_time;
use sip_settings_core::ids::printable;
use sip_settings_core::routing::{CallState, Destination, Outcome};
use sip_settings_core::sip::parse_caller;
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::doc::ServiceErrors;
use crate::v1::error::{ApiResult, invalid};
use crate::v1::explain::{OutcomeView, explanation};
use crate::v1::extract::JsonBody;
use crate::v1::service::client::ServiceClient;

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
    pub outcome: OutcomeView,
    /// The rules consulted, in order.
    pub path: Vec<String>,
}

/// Decides what happens to a call to a local account, for a proxy (service certificates only).
#[utoipa::path(post, path = "/v1/service/route", tag = "service",
    request_body(content = RouteRequest, content_type = "application/json"),
    responses((status = 200, description = "The decision", body = RouteAnswer), ServiceErrors))]
pub(super) async fn route(
    State(state): State<AppState>,
    client: ServiceClient,
    JsonBody(r): JsonBody<RouteRequest>,
) -> ApiResult {
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
        dialled: sip_settings_core::sip::dialled_of(callee),
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
