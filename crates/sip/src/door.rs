//! The one place the SIP door meets the settings: [`Door::handle`] takes a datagram or a
//! framed stream message from a source and returns the bytes to send back, if any. It parses,
//! checks trust, plans ([`crate::redirect::plan`]), asks `core` (the callee through
//! `Services::resolve_callee`, the decision through `Services::route_call_with`, the same
//! functions as `GET /v1/me/routing/explain` and `POST /v1/service/route`, but for the outcome
//! alone: no path is made) and writes the answer. Every INVITE's decision time goes into
//! [`Stats`].

use sip_settings_core::metrics;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sip_settings_core::calls::{OpenOutcome, PrepaidRefusal};
use sip_settings_core::routing::{CallState, Caller, Detail};
use sip_settings_core::sip::parse_caller;
use sip_settings_core::{AccountId, E164, ServiceError, Services};

use crate::config::{Registrations, SipConfig};
use crate::message::{Message, parse};
use crate::redirect::{self, Ask, Originate, Plan, Step, Verdict, response_forward};

/// The header of an originating answer with the seconds a prepaid session allows.
pub const MAX_SESSION_TIME_HEADER: &str = "X-Max-Session-Time";

/// Whether the peer may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A trusted proxy: an allow-listed address (UDP, TCP) or a valid service certificate (TLS).
    Trusted,
    /// Anyone else: every request gets `403 Forbidden`.
    Untrusted,
}

/// Decision latency and outcome counts of the door.
#[derive(Debug)]
pub struct Stats {
    latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

/// A summary of [`Stats`]: decision times in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Decisions measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: Mutex::new(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).ok()),
        }
    }
}

impl Stats {
    fn record(&self, nanos: u64) {
        if let Ok(mut h) = self.latency.lock()
            && let Some(h) = h.as_mut()
        {
            let _ = h.record(nanos.clamp(1, 60_000_000));
        }
    }

    /// The decision times so far (from a parsed INVITE to its answer's bytes).
    pub fn latency(&self) -> LatencySummary {
        let Ok(h) = self.latency.lock() else {
            return LatencySummary::default();
        };
        let us = |ns: u64| ns.div_ceil(1_000);
        match h.as_ref() {
            Some(h) if !h.is_empty() => LatencySummary {
                count: h.len(),
                p50_us: us(h.value_at_quantile(0.5)),
                p90_us: us(h.value_at_quantile(0.9)),
                p99_us: us(h.value_at_quantile(0.99)),
                max_us: us(h.max()),
            },
            _ => LatencySummary::default(),
        }
    }
}

/// The SIP door's request handling, shared by every listener.
#[derive(Debug, Clone)]
pub struct Door {
    services: Services,
    config: Arc<SipConfig>,
    stats: Arc<Stats>,
}

impl Door {
    /// A door deciding with `services`.
    pub fn new(services: Services, config: SipConfig) -> Self {
        Self {
            services,
            config: Arc::new(config),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The services (for identifying TLS peers).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The configuration.
    pub fn config(&self) -> &SipConfig {
        &self.config
    }

    /// The decision statistics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles one message from `source`; the bytes to send back, if any. Responses, ACKs and
    /// messages too broken to address an answer to are dropped.
    pub async fn handle(&self, bytes: &[u8], source: SocketAddr, trust: Trust) -> Option<Vec<u8>> {
        let started = Instant::now();
        let req = match parse(bytes) {
            Ok(Message::Request(r)) => r,
            Ok(Message::Response(_)) => return None,
            Err(e) => {
                tracing::debug!(%source, reason = %e.reason, "sip: unparseable message");
                refused("unparseable");
                if trust == Trust::Untrusted {
                    // Nothing, not even what is wrong, for a stranger.
                    return None;
                }
                return e
                    .headers
                    .as_ref()
                    .and_then(|h| redirect::bad_request(h, &e, source));
            }
        };
        if trust == Trust::Untrusted {
            if req.method == "ACK" {
                return None;
            }
            tracing::debug!(%source, method = %req.method, "sip: untrusted source refused");
            refused("untrusted");
            access_line(source, &req.method, &"-", 403, started);
            return Some(redirect::respond(
                &req,
                &Verdict::status(403, "Forbidden"),
                source,
            ));
        }
        let (verdict, extra) = match redirect::plan(&req) {
            Plan::Absorb => return None,
            Plan::Answer(v) => (v, Vec::new()),
            Plan::Ask(ask) => (self.decide(&ask).await, Vec::new()),
            Plan::Originate(o) => self.originate(&o).await,
        };
        let out = redirect::respond_with(&req, &verdict, source, &extra);
        access_line(source, &req.method, &req.uri, verdict.code(), started);
        if req.method == "INVITE" {
            self.stats
                .record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            tracing::debug!(%source, uri = %req.uri, code = verdict.code(), "sip: decided");
            metrics::global().add(
                DECISIONS,
                "INVITEs of trusted proxies answered, by the answer's status code.",
                &["code"],
                &[&verdict.code().to_string()],
                1,
            );
        }
        Some(out)
    }

    /// The verdict for a question about a callee.
    pub async fn decide(&self, ask: &Ask) -> Verdict {
        match self.try_decide(ask).await {
            Ok(v) => v,
            Err(e) => failure(&e, &ask.callee),
        }
    }

    /// The answer to an originating question, and the caller's header lines to send with it:
    /// what the caller's settings add to a call it places (the identity to assert, privacy, a
    /// prepaid session's time), or its refusal. When the dialled destination is a local account
    /// the verdict is also the callee's decision (the first question's, asked with the caller
    /// as the callee will see it), so that a call between local accounts takes one question;
    /// otherwise it is [`Verdict::Proceed`].
    pub async fn originate(&self, o: &Originate) -> (Verdict, Vec<String>) {
        match self.try_originate(o).await {
            Ok(answer) => answer,
            Err(e) => (failure(&e, o.caller.as_deref().unwrap_or("?")), Vec::new()),
        }
    }

    async fn try_originate(&self, o: &Originate) -> Result<(Verdict, Vec<String>), ServiceError> {
        let s = &self.services;
        let caller = match &o.caller {
            Some(text) => s.resolve_callee("From", text).await?,
            None => None,
        };
        let Some(id) = caller else {
            return Ok((
                refusal(403, "Forbidden", "the caller is not a local account"),
                Vec::new(),
            ));
        };
        let account = s.account(&id).await?;
        let number = dialled_number(&o.destination);
        let mut headers = Vec::with_capacity(3);
        let asserted = match (&number, &account.profile.pstn_caller_id) {
            (Some(_), Some(pstn)) => format!("<sip:{pstn}@{};user=phone>", id.domain()),
            _ => format!("<{}>", id.sip_uri()),
        };
        headers.push(format!("P-Asserted-Identity: {asserted}"));
        if account.privacy {
            headers.push("Privacy: id".to_owned());
        }
        let callee = s.resolve_callee("Request-URI", &o.destination).await?;
        if let Some(number) = number
            && account.prepaid
            && callee.is_none()
        {
            match s
                .open_prepaid(&id.to_string(), number.as_str(), &o.call_id)
                .await
            {
                Ok(OpenOutcome::Opened(session) | OpenOutcome::AlreadyOpen(session)) => {
                    headers.push(format!(
                        "{MAX_SESSION_TIME_HEADER}: {}",
                        session.max_session_time
                    ));
                }
                Ok(OpenOutcome::Refused(PrepaidRefusal::NotPrepaid)) => {}
                Ok(OpenOutcome::Refused(r)) => {
                    let (code, reason) = match r {
                        PrepaidRefusal::InsufficientBalance => (402, "Payment Required"),
                        _ => (403, "Forbidden"),
                    };
                    return Ok((refusal(code, reason, r.message()), Vec::new()));
                }
                Err(ServiceError::Conflict(m) | ServiceError::Invalid { reason: m, .. }) => {
                    return Ok((refusal(403, "Forbidden", &m), Vec::new()));
                }
                Err(e) => return Err(e),
            }
        }
        let Some(callee) = callee else {
            let target = o.destination.clone();
            return Ok((Verdict::Proceed { target }, headers));
        };
        // A call between local accounts: the callee's decision now, with the caller as the
        // callee will see it (anonymous when hidden).
        let ask = Ask {
            callee: o.destination.clone(),
            caller: (!account.privacy).then(|| id.sip_uri().to_string()),
            step: Step::First { registered: None },
            diverted_from: Vec::new(),
            diversions: 0,
        };
        let verdict = match self.try_decide_for(callee, &ask).await {
            Ok(v) => v,
            Err(e) => failure(&e, &ask.callee),
        };
        Ok((verdict, headers))
    }

    async fn try_decide(&self, ask: &Ask) -> Result<Verdict, ServiceError> {
        let s = &self.services;
        let id = match s.resolve_callee("Request-URI", &ask.callee).await {
            Ok(Some(id)) => id,
            Ok(None) | Err(ServiceError::Invalid { .. }) => {
                return Ok(Verdict::status(404, "Not Found"));
            }
            Err(e) => return Err(e),
        };
        self.try_decide_for(id, ask).await
    }

    /// [`Door::try_decide`] for a callee already resolved to its account.
    async fn try_decide_for(&self, id: AccountId, ask: &Ask) -> Result<Verdict, ServiceError> {
        let s = &self.services;
        if ask.diversions > self.config.max_diversions {
            return Ok(refusal(
                482,
                "Loop Detected",
                &format!(
                    "diverted {} times, more than {}",
                    ask.diversions, self.config.max_diversions
                ),
            ));
        }
        let bound = usize::try_from(self.config.max_diversions)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(2);
        for earlier in ask.diverted_from.iter().take(bound) {
            if let Ok(Some(seen)) = s.resolve_callee("Diversion", earlier).await
                && seen == id
            {
                return Ok(refusal(
                    482,
                    "Loop Detected",
                    &format!("{id} was already diverted from"),
                ));
            }
        }
        let caller = match &ask.caller {
            None => Caller::Anonymous,
            Some(text) => match parse_caller("From", text, id.domain()) {
                Ok(c) => c,
                Err(e) => return Ok(refusal(400, "Bad Request", &e.to_string())),
            },
        };
        let (registered, busy) = ask.step.state();
        let registered = match (registered, self.config.registrations) {
            (Some(r), _) => r,
            (None, Registrations::Feed) => s.is_online(&id).await?,
            (None, Registrations::Hint) => true,
        };
        let mut call = CallState {
            caller,
            registered,
            busy,
            at: s.clock().now(),
            dialled: sip_settings_core::sip::dialled_of(&ask.callee),
        };
        // The outcome alone: no door reads a SIP decision's path, so none is made.
        let (mut account, mut decision) = s.route_call_with(&id, &call, Detail::Outcome).await?;
        let mut step = ask.step;
        if let Step::Response(code) = step
            && response_forward(&decision, code).is_none()
        {
            // No rule for this response: the devices could not be reached, as before rules.
            step = Step::Unreachable;
            call.registered = false;
            (account, decision) = s.route_call_with(&id, &call, Detail::Outcome).await?;
        }
        let voicemail = self
            .config
            .voicemail_uri
            .as_ref()
            .map(|t| t.expand(id.user().as_str(), id.domain().as_str()));
        Ok(Verdict::from_decision(
            &decision,
            step,
            &id.sip_uri(),
            account.privacy,
            voicemail.as_deref(),
        ))
    }
}

/// The answer when the settings could not be read: `503` with `Retry-After` while the store is
/// unavailable, else `500`; the error is logged.
fn failure(e: &ServiceError, about: &str) -> Verdict {
    tracing::warn!(error = %e, about, "sip: cannot decide");
    if matches!(e, ServiceError::Unavailable(_)) {
        Verdict::Status {
            code: 503,
            reason: "Service Unavailable",
            headers: vec!["Retry-After: 5".to_owned()],
        }
    } else {
        Verdict::status(500, "Server Internal Error")
    }
}

/// A refusal with a `Warning` saying why.
fn refusal(code: u16, reason: &'static str, why: &str) -> Verdict {
    Verdict::Status {
        code,
        reason,
        headers: vec![format!(
            "Warning: 399 sip-settings \"{}\"",
            why.replace(['"', '\\'], "'")
        )],
    }
}

/// The phone number a dialled URI names: a `tel:` URI, or a `sip:`/`sips:` URI whose user part
/// is a number (`+E.164` or `00…`, visual separators allowed).
fn dialled_number(uri: &str) -> Option<E164> {
    let number = match sip_settings_core::sip::tel_number(uri) {
        Some(n) => n,
        None => {
            let rest = uri
                .strip_prefix("sip:")
                .or_else(|| uri.strip_prefix("sips:"))?;
            let (user, _) = rest.split_once('@')?;
            let user = user.split(';').next().unwrap_or_default();
            user.chars().filter(|c| !"-.()".contains(*c)).collect()
        }
    };
    let number = match number.strip_prefix("00") {
        Some(international) => format!("+{international}"),
        None => number,
    };
    E164::parse_for("destination", &number).ok()
}

/// INVITEs answered, by status code (`sip_settings_core::metrics`).
pub const DECISIONS: &str = "sip_settings_sip_decisions_total";

/// Logs the access line of a SIP request answered (target `access`, as the HTTPS door's):
/// `door` `sip`, `method`, `uri` (the request URI: the callee asked about; `-` for a refused
/// stranger), `status`, `duration_ms`, `addr`.
fn access_line(
    source: SocketAddr,
    method: &str,
    uri: &dyn std::fmt::Display,
    status: u16,
    started: Instant,
) {
    tracing::info!(
        target: "access",
        door = "sip",
        method,
        uri = %uri,
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        addr = %source,
        "request"
    );
}
/// Messages refused without a decision, by reason.
pub const REFUSED: &str = "sip_settings_sip_refused_total";

/// Counts a message refused for `reason` (`untrusted`, `unparseable`).
fn refused(reason: &'static str) {
    metrics::global().add(
        REFUSED,
        "SIP messages refused without a decision: from a source that is not trusted, or not \
         parseable.",
        &["reason"],
        &[reason],
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialled_numbers_are_read_from_tel_and_sip_uris() {
        for (uri, number) in [
            ("tel:+31-20-123-4567", Some("+31201234567")),
            (
                "sip:+4930123456@example.com;user=phone",
                Some("+4930123456"),
            ),
            ("sip:004930123456@example.com", Some("+4930123456")),
            (
                "sips:+44(20)7946.0000@gw.example.net:5061",
                Some("+442079460000"),
            ),
            ("sip:alice@example.com", None),
            ("sip:1234@example.com", None),
            ("sip:example.com", None),
        ] {
            assert_eq!(
                dialled_number(uri).map(|n| n.to_string()).as_deref(),
                number,
                "{uri}"
            );
        }
    }
}
