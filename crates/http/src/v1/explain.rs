//! Routing decisions explained: the shared explanation of `core::routing`, used by
//! `GET /v1/me/routing/explain` and `POST /v1/service/route`, which answers a proxy with the
//! same decision plus what it needs to act on it. Imports no resource.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sip_settings_core::routing::{CallState, Caller, Decision, Outcome};
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

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
    pub outcome: Outcome,
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

/// The explanation of `decision` about `call` to `account`.
pub fn explanation(
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
        outcome: decision.outcome,
        path: decision.path,
    }
}

#[cfg(test)]
mod tests {
    use sip_settings_core::routing::{CallState, Caller};

    use super::*;
    use crate::v1::testing::TestApp;

    /// The explanation carries the core decision's outcome itself, so that it cannot be lost on
    /// the way (it was a JSON value, `null` when serialising failed, silently).
    #[tokio::test]
    async fn the_outcome_is_the_decision_s_own() {
        let t = TestApp::new().await;
        let id = AccountId::parse("alice@example.com").unwrap();
        let call = CallState {
            caller: Caller::Anonymous,
            registered: true,
            busy: false,
            at: t.services.clock().now(),
        };
        let (_, decision) = t.services.route_call(&id, &call).await.unwrap();
        let e = explain(&t.services, &id, &call).await.unwrap();
        assert_eq!(e.outcome, decision.outcome);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["outcome"],
            serde_json::to_value(&decision.outcome).unwrap()
        );
        assert!(json["outcome"]["action"].is_string(), "{json}");
    }
}
