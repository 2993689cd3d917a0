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
    /// `FUNC`, `FNOL`, `FBUS`, `FNOA` or `FUNV`.
    pub condition: String,
    /// Where to.
    pub destination: DestinationView,
    /// RFC 5806 `Diversion` reason.
    pub reason: String,
}

impl From<&Forward> for ForwardView {
    fn from(f: &Forward) -> Self {
        Self {
            condition: f.condition.code().to_owned(),
            destination: DestinationView::from(&f.destination),
            reason: f.reason.to_owned(),
        }
    }
}

/// What happens to the call (core `Outcome`), tagged by `action`: `reject` (`code`, `reason`),
/// `forward` (`condition`, `destination`, `reason`) or `ring` (`seconds`, `on_busy`,
/// `on_no_answer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
#[schema(as = OutcomeDoc)]
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
            } => Self::Ring {
                seconds: *seconds,
                on_busy: on_busy.as_ref().map(ForwardView::from),
                on_no_answer: on_no_answer.as_ref().map(ForwardView::from),
            },
        }
    }
}

/// The view shows the core decision's own outcome, field for field.
impl PartialEq<Outcome> for OutcomeView {
    fn eq(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Self::Reject { code, reason }, Outcome::Reject { code: c, reason: r }) => {
                code == c && reason == r
            }
            (Self::Forward(f), Outcome::Forward(g)) => f == g,
            (
                Self::Ring {
                    seconds,
                    on_busy,
                    on_no_answer,
                },
                Outcome::Ring {
                    seconds: s,
                    on_busy: b,
                    on_no_answer: n,
                },
            ) => seconds == s && same_forward(on_busy, b) && same_forward(on_no_answer, n),
            _ => false,
        }
    }
}

fn same_forward(view: &Option<ForwardView>, core: &Option<Forward>) -> bool {
    match (view, core) {
        (Some(v), Some(c)) => v == c,
        (None, None) => true,
        _ => false,
    }
}

impl PartialEq<Forward> for ForwardView {
    fn eq(&self, other: &Forward) -> bool {
        self.condition == other.condition.code()
            && self.reason == other.reason
            && match (&self.destination, &other.destination) {
                (DestinationView::Uri(a), Destination::Uri(b)) => a == b,
                (DestinationView::VoiceMailbox, Destination::VoiceMailbox) => true,
                _ => false,
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
