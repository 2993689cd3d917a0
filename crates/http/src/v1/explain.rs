//! Routing decisions explained: the shared explanation of `core::routing`, used by
//! `GET /v1/me/routing/explain` and `POST /v1/service/route`, which answers a proxy with the
//! same decision plus what it needs to act on it. Imports no resource.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sip_settings_core::routing::{CallState, Caller, Decision, Destination, Forward, Outcome};
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

/// Where a forward goes (core `Destination`), tagged by `kind`: `uri` (with `uri`) or
/// `voice_mailbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", content = "uri", rename_all = "snake_case")]
#[schema(as = DestinationDoc)]
pub enum DestinationView {
    /// A SIP URI.
    Uri(String),
    /// The account's own voice mailbox.
    VoiceMailbox,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        match d {
            Destination::Uri(u) => Self::Uri(u.clone()),
            Destination::VoiceMailbox => Self::VoiceMailbox,
        }
    }
}

/// A forward (core `Forward`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ForwardDoc)]
pub struct ForwardView {
    /// The seed condition of the rule that applies: `FUNC`, `FNOL`, `FBUS`, `FNOA` or `FUNV`;
    /// absent for a rule on response codes or after the first destination fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Where to: the first destination.
    pub destination: DestinationView,
    /// RFC 5806 `Diversion` reason.
    pub reason: String,
    /// Every step, the first included, when the rule has more than one destination or its
    /// own ring time: tried in order, each ringing its destinations at once for its ring time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RouteStepView>,
    /// True when the caller is answered `302` with the destinations instead.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

/// One step of a forward (core `RouteStep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = RouteStepDoc)]
pub struct RouteStepView {
    /// Rung at once.
    pub destinations: Vec<DestinationView>,
    /// Seconds before the next step.
    pub ring_seconds: u32,
}

/// A forward for one final failure response of the devices (core `OnResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = OnResponseDoc)]
pub struct OnResponseView {
    /// The response code.
    pub code: u16,
    /// The forward.
    pub forward: ForwardView,
}

impl From<&Forward> for ForwardView {
    fn from(f: &Forward) -> Self {
        Self {
            condition: f.condition.map(|c| c.code().to_owned()),
            destination: DestinationView::from(&f.destination),
            reason: f.reason.to_owned(),
            steps: f
                .steps
                .iter()
                .map(|s| RouteStepView {
                    destinations: s.destinations.iter().map(DestinationView::from).collect(),
                    ring_seconds: s.ring_seconds,
                })
                .collect(),
            redirect: f.redirect,
        }
    }
}

/// What happens to the call (core `Outcome`), tagged by `action`: `reject` (`code`, `reason`),
/// `forward` (`condition`, `destination`, `reason`, `steps`, `redirect`) or `ring`
/// (`seconds`, `on_busy`, `on_no_answer`, `on_response`, `on_failure`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
#[schema(as = OutcomeDoc)]
// Made once per answer and serialised: boxing the ring's forwards would change nothing.
#[allow(clippy::large_enum_variant)]
pub enum OutcomeView {
    /// Refuse with a SIP final response.
    Reject {
        /// SIP status of the rejection.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// Forward at once.
    Forward(ForwardView),
    /// Ring the devices.
    Ring {
        /// Ring time.
        seconds: u32,
        /// Forward on busy while ringing.
        on_busy: Option<ForwardView>,
        /// Forward when nobody answers in time.
        on_no_answer: Option<ForwardView>,
        /// Forwards for the devices' final failure responses that rules name, by code.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        on_response: Vec<OnResponseView>,
        /// Forward for any other final failure (a rule after the first destination fails).
        #[serde(skip_serializing_if = "Option::is_none")]
        on_failure: Option<ForwardView>,
    },
}

impl From<&Outcome> for OutcomeView {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Reject { code, reason } => Self::Reject {
                code: *code,
                reason: (*reason).to_owned(),
            },
            Outcome::Forward(f) => Self::Forward(ForwardView::from(f)),
            Outcome::Ring {
                seconds,
                on_busy,
                on_no_answer,
                on_response,
                on_failure,
            } => Self::Ring {
                seconds: *seconds,
                on_busy: on_busy.as_ref().map(ForwardView::from),
                on_no_answer: on_no_answer.as_ref().map(ForwardView::from),
                on_response: on_response
                    .iter()
                    .map(|r| OnResponseView {
                        code: r.code,
                        forward: ForwardView::from(&r.forward),
                    })
                    .collect(),
                on_failure: on_failure.as_ref().map(ForwardView::from),
            },
        }
    }
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
    pub outcome: OutcomeView,
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
        outcome: OutcomeView::from(&decision.outcome),
        path: decision.path,
    }
}

#[cfg(test)]
mod tests {
    use sip_settings_core::routing::{CallState, Caller};

    use super::*;
    use crate::v1::testing::TestApp;

    /// The explanation carries the core decision's outcome itself, so that it cannot be lost on
    /// the way (it was a JSON value, `null` when serialising failed, silently): the view
    /// serialises as the core outcome does, for the seed's forwarding and for rules with hunt
    /// lists, parallel groups, redirects and response codes.
    #[tokio::test]
    async fn the_outcome_is_the_decision_s_own() {
        let t = TestApp::new().await;
        let id = AccountId::parse("alice@example.com").unwrap();
        let rules = sip_settings_core::forwarding::Document::parse(serde_json::json!({
            "rules": [
                {"trigger": "unconditional", "callers": "anon", "action": "redirect",
                 "steps": [{"targets": ["bob", "carol"], "ring_seconds": 10}]},
                {"trigger": "busy", "steps": [{"targets": ["bob"], "ring_seconds": 15},
                                              {"targets": ["<voice-mailbox>"]}]},
                {"trigger": "response", "codes": [503], "steps": [{"targets": ["carol"]}]},
                {"trigger": "after_first_fails", "steps": [{"targets": ["dave"]}]}
            ],
            "caller_sets": {"anon": {"mode": "allow", "members": ["anonymous"]}}
        }))
        .unwrap()
        .forwarding_of(&id)
        .unwrap();
        for (caller, forwarding) in [
            (Caller::Anonymous, None),
            (Caller::Anonymous, Some(&rules)),
            (
                sip_settings_core::sip::parse_caller("c", "sip:x@example.net", id.domain())
                    .unwrap(),
                Some(&rules),
            ),
        ] {
            if let Some(f) = forwarding {
                t.services.store().set_forwarding(&id, f).await.unwrap();
            }
            let call = CallState {
                caller,
                registered: true,
                busy: false,
                at: t.services.clock().now(),
                dialled: None,
            };
            let (_, decision) = t.services.route_call(&id, &call).await.unwrap();
            let e = explain(&t.services, &id, &call).await.unwrap();
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(
                json["outcome"],
                serde_json::to_value(&decision.outcome).unwrap()
            );
            assert!(json["outcome"]["action"].is_string(), "{json}");
            if forwarding.is_some() {
                let text = json["outcome"].to_string();
                assert!(
                    text.contains("\"redirect\":true") || text.contains("\"on_response\""),
                    "{text}"
                );
            }
        }
    }
}
