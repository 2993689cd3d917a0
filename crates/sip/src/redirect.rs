//! The redirect server's logic, as pure functions of the request (RFC 3261 §8.2, §8.3):
//!
//! * [`plan`] reads a request and says what to do without any settings: absorb an ACK, answer
//!   OPTIONS, CANCEL, other methods, too many hops, an unsupported extension or URI scheme at
//!   once, or ask the settings ([`Ask`]: who is called, by whom, which step of the two-step ring,
//!   and the diversions the request already went through);
//! * [`Verdict::from_decision`] turns `core::routing`'s decision into what the redirect server
//!   answers for that step;
//! * [`respond`] writes the response: the request's `Via`, `From`, `To` (with a deterministic
//!   tag), `Call-ID` and `CSeq`, plus `Contact`, `Diversion` (RFC 5806), `History-Info`
//!   (RFC 7044) and `X-Ring-Time` as the verdict needs.
//!
//! The only state between the two steps of a call is in the request: the proxy asks again with
//! RFC 4458 `cause=486` (busy), `cause=408` (no answer) or `cause=480` / `503` / `404` (not
//! reachable) on the Request-URI.

use std::fmt::Write as _;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use sip_settings_core::routing::{Decision, Destination, Forward, Outcome};
use sip_settings_core::sip::Condition;

use crate::message::{Request, parse_cseq, parse_name_addr, parse_via};
use crate::uri::parse_uri;

/// The methods the redirect server handles (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, OPTIONS";

/// The header in which the proxy says whether the callee has a registered device
/// (`X-Registered: no`); absent means registered.
pub const REGISTERED_HEADER: &str = "x-registered";

/// The header of a ring answer that carries the ring time in seconds.
pub const RING_TIME_HEADER: &str = "X-Ring-Time";

/// One destination of a forwarding rule's list, as a `Contact` of the answer: rung at once with
/// the others of its step (the same `q`), for `ring` seconds, before the next step (a lower
/// `q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuntContact {
    /// The destination.
    pub uri: String,
    /// Its step's preference: 1.0 for the first step, 0.1 less for each next one.
    pub q: String,
    /// Its step's ring time, seconds.
    pub ring: u32,
}

/// The header of a forward with a destination list: how many steps it has.
pub const HUNT_HEADER: &str = "X-Hunt-Steps";

/// The header of a forward the proxy answers the caller with (a rule in redirect mode).
pub const REDIRECT_HEADER: &str = "X-Redirect";

/// Which step of a call this request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first question. Whether the callee is registered comes from the devices the
    /// proxy's registrar feeds (`core::devices`), unless the proxy says it in
    /// [`REGISTERED_HEADER`].
    First {
        /// What [`REGISTERED_HEADER`] says, if the request has it.
        registered: Option<bool>,
    },
    /// Asked again after ringing: the callee was busy (`cause=486`).
    Busy,
    /// Asked again after ringing: nobody answered in time (`cause=408`).
    NoAnswer,
    /// Asked again: no device could be reached (`cause=480` or `404`).
    Unreachable,
    /// Asked again: the devices answered with this other final failure (`cause=503`, `603`
    /// …): a forwarding rule on that response (or after the first destination fails) applies;
    /// without one, as [`Step::Unreachable`].
    Response(u16),
}

impl Step {
    /// The registration and busy state `core::routing` decides with; the registration is
    /// `None` when it is to be read from the known devices.
    pub fn state(self) -> (Option<bool>, bool) {
        match self {
            Self::First { registered } => (registered, false),
            Self::Busy => (Some(true), true),
            Self::NoAnswer => (Some(true), false),
            Self::Unreachable => (Some(false), false),
            Self::Response(_) => (Some(true), false),
        }
    }
}

/// A question for the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The Request-URI as received.
    pub callee: String,
    /// The caller's address (P-Asserted-Identity, else From), `None` when the caller is
    /// anonymous (`Privacy: id` or `user`).
    pub caller: Option<String>,
    /// Which step.
    pub step: Step,
    /// The diverting parties the request already went through: every `Diversion` entry and
    /// every `History-Info` entry but the last (the current target).
    pub diverted_from: Vec<String>,
    /// How many diversions the request already went through (the larger of the sum of
    /// `Diversion` counters and the number of `History-Info` entries with a `cause`).
    pub diversions: u32,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Send nothing (an ACK: the redirect server's final answers need no ACK handling).
    Absorb,
    /// Answer at once.
    Answer(Verdict),
    /// Decide from the settings.
    Ask(Ask),
    /// The originating question (`;orig` in the Request-URI): what the caller's settings say
    /// about a call it places.
    Originate(Originate),
}

/// The originating question: a local subscriber places a call (RFC 5502's session case
/// `orig`, marked by the URI parameter `orig` on the question's Request-URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originate {
    /// The dialled Request-URI, without `orig`.
    pub destination: String,
    /// The caller: the From URI (what the phone sent as P-Asserted-Identity or Privacy is not
    /// the caller's to choose).
    pub caller: Option<String>,
    /// The Call-ID (the prepaid session's key).
    pub call_id: String,
}

/// What the redirect server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A final answer without a Contact (`200` to OPTIONS and CANCEL, the refusals).
    Status {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: &'static str,
        /// Extra header lines (`Name: value`, no CRLF).
        headers: Vec<String>,
    },
    /// `302` to a forwarding target, with the new diversion on top of the request's.
    Forward {
        /// The target URI (already resolved: the voice mailbox is a URI here).
        target: String,
        /// The RFC 4458 `cause` History-Info gives the forward ([`cause_of`] of its
        /// condition).
        cause: u16,
        /// RFC 5806 reason.
        reason: &'static str,
        /// The diverting account (`sip:user@domain`).
        diverting: String,
        /// Whether the diverting account hides its identity (`privacy=full`).
        privacy: bool,
        /// A forwarding rule's destination list, every destination (the first too) with its
        /// step's `q` and ring time: empty for a forward to `target` alone.
        hunt: Vec<HuntContact>,
        /// The caller is to be redirected (the proxy answers it with this `302`) instead of
        /// the call forwarded.
        redirect: bool,
    },
    /// `302` back to the dialled destination of an originating question when it is no local
    /// account (the caller's headers go with it: [`respond_with`]).
    Proceed {
        /// The dialled URI.
        target: String,
    },
    /// `302` to the account's own location URI: ring it this long, then ask again.
    Ring {
        /// The account (`sip:user@domain`).
        account: String,
        /// Ring time in seconds.
        seconds: u32,
    },
}

impl Verdict {
    /// A status answer without extra headers.
    pub fn status(code: u16, reason: &'static str) -> Self {
        Self::Status {
            code,
            reason,
            headers: Vec::new(),
        }
    }

    /// The status code this verdict answers with.
    pub fn code(&self) -> u16 {
        match self {
            Self::Status { code, .. } => *code,
            Self::Forward { .. } | Self::Ring { .. } | Self::Proceed { .. } => 302,
        }
    }

    /// The verdict for `decision` at `step`. `voicemail` is the account's voice-mailbox URI
    /// (`None` when no template is configured: a voicemail forward is then answered 480 with
    /// a `Warning`).
    pub fn from_decision(
        decision: &Decision,
        step: Step,
        account: &str,
        privacy: bool,
        voicemail: Option<&str>,
    ) -> Self {
        let resolve = |d: &Destination| -> Option<String> {
            match d {
                Destination::Uri(u) => Some(u.clone()),
                Destination::VoiceMailbox => voicemail.map(str::to_owned),
            }
        };
        let forward = |f: &Forward| -> Self {
            let Some(target) = resolve(&f.destination) else {
                return Self::Status {
                    code: 480,
                    reason: "Temporarily Unavailable",
                    headers: vec![
                        "Warning: 399 sip-settings \"the voice mailbox has no URI: set voicemail_uri\""
                            .to_owned(),
                    ],
                };
            };
            let mut hunt = Vec::new();
            if !f.steps.is_empty() || f.redirect {
                for (i, step) in f.all_steps().iter().enumerate() {
                    let tenths = 10usize.saturating_sub(i).max(1);
                    let q = format!("{}.{}", tenths / 10, tenths % 10);
                    for d in &step.destinations {
                        if let Some(uri) = resolve(d) {
                            hunt.push(HuntContact {
                                uri,
                                q: q.clone(),
                                ring: step.ring_seconds,
                            });
                        }
                    }
                }
            }
            Self::Forward {
                target,
                cause: f
                    .condition
                    .map_or_else(|| cause_of_reason(f.reason), cause_of),
                reason: f.reason,
                diverting: account.to_owned(),
                privacy,
                hunt,
                redirect: f.redirect,
            }
        };
        match (&decision.outcome, step) {
            (Outcome::Reject { code, reason }, _) => Self::status(*code, reason),
            (Outcome::Forward(f), _) => forward(f),
            (Outcome::Ring { on_no_answer, .. }, Step::NoAnswer) => match on_no_answer {
                Some(f) => forward(f),
                None => Self::status(480, "Temporarily Unavailable"),
            },
            (Outcome::Ring { .. }, Step::Response(code)) => {
                match response_forward(decision, code) {
                    Some(f) => forward(f),
                    None => Self::status(480, "Temporarily Unavailable"),
                }
            }
            (Outcome::Ring { seconds, .. }, _) => Self::Ring {
                account: account.to_owned(),
                seconds: *seconds,
            },
        }
    }
}

/// The forward a decision makes for the devices' final response `code` while ringing: a rule
/// on that response, else a rule after the first destination fails.
pub fn response_forward(decision: &Decision, code: u16) -> Option<&Forward> {
    match &decision.outcome {
        Outcome::Ring {
            on_response,
            on_failure,
            ..
        } => on_response
            .iter()
            .find(|r| r.code == code)
            .map(|r| &r.forward)
            .or(on_failure.as_ref()),
        _ => None,
    }
}

/// Reads a request (already parsed) and plans its answer.
pub fn plan(req: &Request) -> Plan {
    let method = req.method.as_str();
    match method {
        "ACK" => return Plan::Absorb,
        "OPTIONS" => {
            return Plan::Answer(Verdict::Status {
                code: 200,
                reason: "OK",
                headers: vec![
                    format!("Allow: {ALLOW}"),
                    "Accept: application/sdp".to_owned(),
                ],
            });
        }
        "CANCEL" => return Plan::Answer(Verdict::status(200, "OK")),
        "INVITE" => {}
        _ => {
            return Plan::Answer(Verdict::Status {
                code: 405,
                reason: "Method Not Allowed",
                headers: vec![format!("Allow: {ALLOW}")],
            });
        }
    }
    if let Some(mf) = req.headers.get("max-forwards")
        && mf.trim() == "0"
    {
        return Plan::Answer(Verdict::status(483, "Too Many Hops"));
    }
    let required = req.headers.list("require");
    if !required.is_empty() {
        return Plan::Answer(Verdict::Status {
            code: 420,
            reason: "Bad Extension",
            headers: vec![format!("Unsupported: {}", required.join(", "))],
        });
    }
    let uri = match parse_uri(&req.uri) {
        Ok(u) => u,
        Err(e) if e.status() == 416 => {
            return Plan::Answer(Verdict::status(416, "Unsupported URI Scheme"));
        }
        Err(_) => return Plan::Answer(Verdict::status(400, "Bad Request-URI")),
    };
    if uri.param("orig").is_some() {
        return Plan::Originate(Originate {
            destination: without_orig(&req.uri),
            caller: req
                .headers
                .get("from")
                .and_then(|f| parse_name_addr(f).ok())
                .map(|na| na.uri),
            call_id: req
                .headers
                .get("call-id")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        });
    }
    let first = || Step::First {
        registered: req
            .headers
            .get(REGISTERED_HEADER)
            .map(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "no" | "false" | "0")),
    };
    let step = match uri.param("cause").flatten().map(str::trim) {
        Some("486") => Step::Busy,
        Some("408") => Step::NoAnswer,
        Some("480" | "404") => Step::Unreachable,
        Some(code) => match code.parse::<u16>() {
            Ok(code) if (400..=699).contains(&code) && code != 487 => Step::Response(code),
            _ => first(),
        },
        None => first(),
    };
    let (diverted_from, diversions) = history(req);
    Plan::Ask(Ask {
        callee: req.uri.clone(),
        caller: caller_of(req),
        step,
        diverted_from,
        diversions,
    })
}

/// A Request-URI without its `orig` parameter (the URI parameters end at `?`).
fn without_orig(uri: &str) -> String {
    let (base, headers) = match uri.find('?') {
        Some(q) => uri.split_at(q),
        None => (uri, ""),
    };
    let mut parts = base.split(';');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("orig") {
            out.push(';');
            out.push_str(p);
        }
    }
    out.push_str(headers);
    out
}

/// The caller's address, or `None` for an anonymous caller (RFC 3323 `Privacy: id` or `user`;
/// `sip:anonymous@anonymous.invalid` and a From without a user are recognised by
/// `core::sip::parse_caller`). A trusted proxy's `P-Asserted-Identity` wins over `From`.
fn caller_of(req: &Request) -> Option<String> {
    let hidden = req.headers.list("privacy").iter().any(|p| {
        p.split(';')
            .any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "id" | "user"))
    });
    if hidden {
        return None;
    }
    let asserted = req
        .headers
        .list("p-asserted-identity")
        .into_iter()
        .filter_map(|v| parse_name_addr(v).ok())
        .find(|na| {
            let l = na.uri.to_ascii_lowercase();
            l.starts_with("sip:") || l.starts_with("sips:") || l.starts_with("tel:")
        });
    match asserted {
        Some(na) => Some(na.uri),
        None => req
            .headers
            .get("from")
            .and_then(|f| parse_name_addr(f).ok())
            .map(|na| na.uri),
    }
}

/// The diverting parties a request went through (every `Diversion` entry, every
/// `History-Info` entry but the last: the current target) and how many diversions that makes
/// (the larger of the sum of `Diversion` counters and the number of `History-Info` entries with
/// a `cause`). Each entry is parsed once.
fn history(req: &Request) -> (Vec<String>, u32) {
    let mut parties = Vec::new();
    let mut counted = 0u32;
    for na in req
        .headers
        .list("diversion")
        .into_iter()
        .filter_map(|d| parse_name_addr(d).ok())
    {
        let counter = na
            .param("counter")
            .flatten()
            .and_then(|c| c.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .min(1_000);
        counted = counted.saturating_add(counter);
        parties.push(na.uri);
    }
    let entries = req.headers.list("history-info");
    let last = entries.len().saturating_sub(1);
    let mut caused = 0u32;
    for (i, na) in entries
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| parse_name_addr(h).ok().map(|na| (i, na)))
    {
        if parse_uri(&na.uri).is_ok_and(|u| u.param("cause").is_some()) {
            caused = caused.saturating_add(1);
        }
        if i < last {
            parties.push(na.uri);
        }
    }
    (parties, counted.max(caused))
}

/// The RFC 4458 `cause` of a forward, as History-Info carries it.
pub fn cause_of(condition: Condition) -> u16 {
    match condition {
        Condition::Unconditional => 302,
        Condition::Busy => 486,
        Condition::NoAnswer => 408,
        Condition::NotOnline => 503,
        // FUNV: refused by DND or an accept rule.
        Condition::NotAvailable => 404,
    }
}

/// The RFC 4458 `cause` of a forward by a rule that is none of the seed's conditions (on a
/// response, after the first destination fails), from its RFC 5806 reason.
fn cause_of_reason(reason: &str) -> u16 {
    match reason {
        "user-busy" => 486,
        "no-answer" => 408,
        "unavailable" => 503,
        _ => 480,
    }
}

/// The deterministic To-tag of a request: the same request (a retransmission) always gets the
/// same tag, on any server (RFC 3261 §8.2.6.2 asks only that it be unique per dialog).
pub fn to_tag(req: &Request) -> String {
    let mut h = Sha256::new();
    for part in [
        req.headers.get("call-id").unwrap_or_default(),
        req.headers
            .get("from")
            .and_then(|f| parse_name_addr(f).ok())
            .and_then(|na| na.tag().map(str::to_owned))
            .as_deref()
            .unwrap_or_default(),
        req.headers
            .list("via")
            .first()
            .and_then(|v| parse_via(v).ok())
            .and_then(|v| v.branch().map(str::to_owned))
            .as_deref()
            .unwrap_or_default(),
        &req.headers
            .get("cseq")
            .and_then(|c| parse_cseq(c).ok())
            .map(|c| c.number.to_string())
            .unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    hex::encode(&digest[..8])
}

/// The reason phrase of a status code this server sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        433 => "Anonymity Disallowed",
        480 => "Temporarily Unavailable",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        505 => "Version Not Supported",
        486 => "Busy Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Writes the response to `req` for `verdict`. `source` is where the request came from: the
/// top `Via` gets `received=` when its host differs from the source address and `rport=` when
/// it asks for it (RFC 3261 §18.2.1, RFC 3581).
pub fn respond(req: &Request, verdict: &Verdict, source: SocketAddr) -> Vec<u8> {
    respond_with(req, verdict, source, &[])
}

/// [`respond`] with `extra` header lines (`Name: value`, no CRLF) after the verdict's own: an
/// originating answer's P-Asserted-Identity, Privacy and X-Max-Session-Time.
pub fn respond_with(
    req: &Request,
    verdict: &Verdict,
    source: SocketAddr,
    extra: &[String],
) -> Vec<u8> {
    let (code, reason) = match verdict {
        Verdict::Status { code, reason, .. } => (*code, *reason),
        Verdict::Forward { .. } | Verdict::Ring { .. } | Verdict::Proceed { .. } => {
            (302, "Moved Temporarily")
        }
    };
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {code} {reason}\r\n");
    write_common(&mut out, req, source, code != 100);
    match verdict {
        Verdict::Status { headers, .. } => {
            for h in headers {
                out.push_str(h);
                out.push_str("\r\n");
            }
        }
        Verdict::Proceed { target } => {
            let _ = write!(out, "Contact: <{target}>\r\n");
        }
        Verdict::Ring { account, seconds } => {
            let _ = write!(
                out,
                "Contact: <{account};ring={seconds}>\r\n{RING_TIME_HEADER}: {seconds}\r\n"
            );
        }
        Verdict::Forward {
            target,
            cause,
            reason,
            diverting,
            privacy,
            hunt,
            redirect,
        } => {
            if hunt.is_empty() {
                let _ = write!(out, "Contact: <{target}>\r\n");
            } else {
                for c in hunt {
                    let _ = write!(out, "Contact: <{};ring={}>;q={}\r\n", c.uri, c.ring, c.q);
                }
                let steps = hunt
                    .iter()
                    .map(|c| c.q.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                let _ = write!(out, "{HUNT_HEADER}: {steps}\r\n");
            }
            if *redirect {
                let _ = write!(out, "{REDIRECT_HEADER}: caller\r\n");
            }
            let _ = write!(out, "Diversion: <{diverting}>;reason={reason};counter=1");
            if *privacy {
                out.push_str(";privacy=full");
            }
            for earlier in req.headers.list("diversion") {
                out.push_str(", ");
                out.push_str(earlier);
            }
            out.push_str("\r\n");
            write_history(&mut out, req, target, *cause);
        }
    }
    for h in extra {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The refusal of a request that did not parse (`400 Bad Request`, `505 Version Not
/// Supported` or `416 Unsupported URI Scheme`, as `ParseError::status` says), from the headers
/// that could be read; `None` when they are not enough to address an answer, or for an ACK.
pub fn bad_request(
    headers: &crate::message::Headers,
    error: &crate::message::ParseError,
    source: SocketAddr,
) -> Option<Vec<u8>> {
    // Only what a proxy can match: every Via item, From, To and CSeq must be readable.
    let vias = headers.list("via");
    if vias.is_empty() || vias.iter().any(|v| parse_via(v).is_err()) {
        return None;
    }
    let from = headers.get("from").filter(|f| parse_name_addr(f).is_ok())?;
    let to = headers.get("to").filter(|t| parse_name_addr(t).is_ok())?;
    let call_id = headers.get("call-id")?;
    let cseq = headers.get("cseq")?;
    if parse_cseq(cseq).ok()?.method == "ACK" {
        return None;
    }
    let code = error.status();
    let why: String = error
        .reason
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(120)
        .collect();
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {code} {}\r\n", reason_phrase(code));
    write_vias(&mut out, headers, source);
    let _ = write!(
        out,
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nWarning: 399 sip-settings \"{why}\"\r\nContent-Length: 0\r\n\r\n"
    );
    // A refusal that would not itself parse (a Call-ID with control characters, say) is not
    // sent: the peer could not match it either.
    match crate::message::parse(out.as_bytes()) {
        Ok(crate::message::Message::Response(_)) => Some(out.into_bytes()),
        _ => None,
    }
}

/// The request's `Via` lines, the top one with `received=` / `rport=` filled in.
fn write_vias(out: &mut String, headers: &crate::message::Headers, source: SocketAddr) {
    for (i, line) in headers.all("via").enumerate() {
        if i == 0 {
            let _ = write!(out, "Via: {}\r\n", with_received(line, source));
        } else {
            let _ = write!(out, "Via: {line}\r\n");
        }
    }
}

fn write_common(out: &mut String, req: &Request, source: SocketAddr, tag: bool) {
    write_vias(out, &req.headers, source);
    let _ = write!(
        out,
        "From: {}\r\n",
        req.headers.get("from").unwrap_or_default()
    );
    let to = req.headers.get("to").unwrap_or_default();
    let has_tag = parse_name_addr(to)
        .ok()
        .is_some_and(|na| na.tag().is_some());
    if tag && !has_tag {
        let _ = write!(out, "To: {to};tag={}\r\n", to_tag(req));
    } else {
        let _ = write!(out, "To: {to}\r\n");
    }
    let _ = write!(
        out,
        "Call-ID: {}\r\nCSeq: {}\r\n",
        req.headers.get("call-id").unwrap_or_default(),
        req.headers.get("cseq").unwrap_or_default()
    );
}

/// The first via-parm of a `Via` line with `received=` / `rport=` filled in.
fn with_received(line: &str, source: SocketAddr) -> String {
    let (first, rest) = split_first_item(line);
    let Ok(via) = parse_via(first) else {
        return line.to_owned();
    };
    let ip = source.ip().to_string();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let mut top = String::with_capacity(first.len() + 40);
    // Rebuild: keep the sent-protocol and sent-by as received, rewrite the parameters.
    let head = first.split(';').next().unwrap_or(first).trim_end();
    top.push_str(head);
    let mut received_set = false;
    for (name, value) in &via.params {
        match (name.as_str(), value) {
            ("rport", _) => {
                let _ = write!(top, ";rport={}", source.port());
            }
            ("received", _) => {
                let _ = write!(top, ";received={ip}");
                received_set = true;
            }
            (n, Some(v)) => {
                let _ = write!(top, ";{n}={v}");
            }
            (n, None) => {
                let _ = write!(top, ";{n}");
            }
        }
    }
    if !received_set && host != ip {
        let _ = write!(top, ";received={ip}");
    }
    match rest {
        Some(r) => format!("{top},{r}"),
        None => top,
    }
}

/// Splits a header line at its first top-level comma.
fn split_first_item(line: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut angle = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => return (&line[..i], Some(&line[i + 1..])),
            _ => {}
        }
    }
    (line, None)
}

/// `History-Info` (RFC 7044): the request's entries (or, without any, one for the
/// Request-URI), then the new target with its RFC 4458 `cause`, indexed as a child of the last
/// entry and tagged `mp` (the target is another user).
fn write_history(out: &mut String, req: &Request, target: &str, cause: u16) {
    let history = req.headers.list("history-info");
    out.push_str("History-Info: ");
    let parent = match history.last() {
        None => {
            // The callee as first addressed: the proxy's `cause` of a second question says
            // why it asks again, not how the call reached the callee.
            let _ = write!(
                out,
                "<{}>;index=1, ",
                escape_hi(&without_uri_param(&req.uri, "cause"))
            );
            "1".to_owned()
        }
        Some(last) => {
            for h in &history {
                out.push_str(h);
                out.push_str(", ");
            }
            parse_name_addr(last)
                .ok()
                .and_then(|na| na.param("index").flatten().map(str::to_owned))
                .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .unwrap_or_else(|| "1".to_owned())
        }
    };
    let _ = write!(
        out,
        "<{}>;index={parent}.1;mp={parent}\r\n",
        with_uri_param(target, &format!("cause={cause}"))
    );
}

/// Inserts a URI parameter before any `?headers` part.
fn with_uri_param(uri: &str, param: &str) -> String {
    match uri.split_once('?') {
        Some((u, h)) => format!("{u};{param}?{h}"),
        None => format!("{uri};{param}"),
    }
}

/// A URI without one of its parameters (`sip:a@b;cause=486;x` → `sip:a@b;x`).
fn without_uri_param(uri: &str, name: &str) -> String {
    let (main, headers) = match uri.split_once('?') {
        Some((m, h)) => (m, Some(h)),
        None => (uri, None),
    };
    // Parameters start after the host: past the last '@' (a user part may hold ';').
    let host_start = main.rfind('@').map_or(0, |i| i + 1);
    let (head, params) = main.split_at(host_start);
    let mut parts = params.split(';');
    let mut out = format!("{head}{}", parts.next().unwrap_or_default());
    for p in parts {
        let key = p.split('=').next().unwrap_or_default().trim();
        if !key.eq_ignore_ascii_case(name) {
            out.push(';');
            out.push_str(p);
        }
    }
    if let Some(h) = headers {
        out.push('?');
        out.push_str(h);
    }
    out
}

fn escape_hi(uri: &str) -> String {
    uri.replace(['<', '>'], "")
}

/// The body of the `sip_redirect` fuzz target (`fuzz/`), also replayed over the corpus by
/// `cargo test`: a message that parses as a request is planned and answered with every kind of
/// verdict, and one that does not is refused as the door refuses it. Panics only when an answer
/// is not a well-formed SIP response.
pub mod fuzzing {
    use super::*;
    use crate::message::{Message, parse};

    /// Runs the redirect logic over `data`.
    pub fn sip_redirect(data: &[u8]) {
        let source: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 5060));
        let check = |out: Vec<u8>| {
            let parsed = parse(&out);
            assert!(
                matches!(parsed, Ok(Message::Response(_))),
                "not a response: {parsed:?}\n{}",
                String::from_utf8_lossy(&out)
            );
        };
        match parse(data) {
            Ok(Message::Request(req)) => {
                let mut verdicts = vec![
                    Verdict::status(404, "Not Found"),
                    Verdict::Ring {
                        account: "sip:alice@example.com".into(),
                        seconds: 35,
                    },
                    Verdict::Forward {
                        target: "sip:+31201234567@example.com".into(),
                        cause: 408,
                        reason: "no-answer",
                        diverting: "sip:alice@example.com".into(),
                        privacy: true,
                        hunt: Vec::new(),
                        redirect: false,
                    },
                ];
                match plan(&req) {
                    Plan::Absorb => {}
                    Plan::Answer(v) => verdicts.push(v),
                    Plan::Ask(ask) => {
                        let _ = ask.step.state();
                    }
                    Plan::Originate(o) => verdicts.push(Verdict::Proceed {
                        target: o.destination,
                    }),
                }
                let extra = [
                    "Privacy: id".to_owned(),
                    "X-Max-Session-Time: 60".to_owned(),
                ];
                if req.method != "ACK" {
                    for v in &verdicts {
                        check(respond(&req, v, source));
                        check(respond_with(&req, v, source, &extra));
                    }
                }
            }
            Ok(Message::Response(_)) => {}
            Err(e) => {
                if let Some(out) = e.headers.as_ref().and_then(|h| bad_request(h, &e, source)) {
                    check(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::message::{Message, parse};

    fn request(text: &str) -> Request {
        match parse(text.replace('\n', "\r\n").as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a response"),
        }
    }

    fn invite(uri: &str, extra: &str) -> Request {
        request(&format!(
            "INVITE {uri} SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776asdhds;rport\n\
             Max-Forwards: 70\n\
             To: <{uri}>\n\
             From: \"Bob\" <sip:bob@example.org>;tag=1928301774\n\
             Call-ID: a84b4c76e66710@pc33.example.org\n\
             CSeq: 314159 INVITE\n\
             {extra}Content-Length: 0\n\n"
        ))
    }

    fn src() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn methods_hops_and_extensions() {
        let mut r = invite("sip:alice@example.com", "");
        r.method = "ACK".into();
        assert_eq!(plan(&r), Plan::Absorb);
        r.method = "OPTIONS".into();
        assert!(matches!(plan(&r), Plan::Answer(v) if v.code() == 200));
        r.method = "CANCEL".into();
        assert!(matches!(plan(&r), Plan::Answer(v) if v.code() == 200));
        r.method = "SUBSCRIBE".into();
        let Plan::Answer(v) = plan(&r) else { panic!() };
        assert_eq!(v.code(), 405);
        let text = String::from_utf8(respond(&r, &v, src())).unwrap();
        assert!(
            text.contains("Allow: INVITE, ACK, CANCEL, OPTIONS\r\n"),
            "{text}"
        );

        let r = request(&format!(
            "INVITE sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nMax-Forwards: 0\nTo: <sip:alice@example.com>\nFrom: <sip:bob@example.org>;tag=1\nCall-ID: x\nCSeq: 1 INVITE\n{}\n\n",
            "Content-Length: 0"
        ));
        assert_eq!(
            plan(&r),
            Plan::Answer(Verdict::status(483, "Too Many Hops"))
        );
        let r = invite("sip:alice@example.com", "Require: 100rel, foo\n");
        let Plan::Answer(v) = plan(&r) else { panic!() };
        assert_eq!(v.code(), 420);
        assert!(
            String::from_utf8(respond(&r, &v, src()))
                .unwrap()
                .contains("Unsupported: 100rel, foo\r\n")
        );
        let r = invite("http://example.com/alice", "");
        assert_eq!(
            plan(&r),
            Plan::Answer(Verdict::status(416, "Unsupported URI Scheme"))
        );
    }

    #[test]
    fn an_originating_question_names_the_caller_from_from_and_the_destination_without_orig() {
        let Plan::Originate(o) = plan(&invite(
            "sip:+4930123456@example.com;user=phone;ORIG;x=1",
            "P-Asserted-Identity: <sip:someone@else.example>\nPrivacy: id\n",
        )) else {
            panic!("not an originating question")
        };
        assert_eq!(o.destination, "sip:+4930123456@example.com;user=phone;x=1");
        assert_eq!(o.caller.as_deref(), Some("sip:bob@example.org"));
        assert!(!o.call_id.is_empty());
        let answer = String::from_utf8(respond_with(
            &invite("sip:x@example.com;orig", ""),
            &Verdict::Proceed {
                target: o.destination.clone(),
            },
            "127.0.0.1:5060".parse().unwrap(),
            &["Privacy: id".to_owned()],
        ))
        .unwrap();
        assert!(
            answer.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
            "{answer}"
        );
        assert!(
            answer.contains("\r\nContact: <sip:+4930123456@example.com;user=phone;x=1>\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nPrivacy: id\r\n"), "{answer}");
    }

    #[test]
    fn steps_callers_and_history_are_read() {
        let Plan::Ask(a) = plan(&invite("sip:alice@example.com", "")) else {
            panic!()
        };
        assert_eq!(a.step, Step::First { registered: None });
        assert_eq!(a.caller.as_deref(), Some("sip:bob@example.org"));
        assert_eq!(a.diversions, 0);
        let Plan::Ask(a) = plan(&invite("sip:alice@example.com", "X-Registered: no\n")) else {
            panic!()
        };
        assert_eq!(
            a.step,
            Step::First {
                registered: Some(false)
            }
        );
        for (cause, step) in [
            ("486", Step::Busy),
            ("408", Step::NoAnswer),
            ("480", Step::Unreachable),
            ("404", Step::Unreachable),
            ("503", Step::Response(503)),
            ("603", Step::Response(603)),
            ("487", Step::First { registered: None }),
            ("200", Step::First { registered: None }),
            ("x", Step::First { registered: None }),
        ] {
            let Plan::Ask(a) = plan(&invite(&format!("sip:alice@example.com;cause={cause}"), ""))
            else {
                panic!()
            };
            assert_eq!(a.step, step, "cause {cause}");
        }
        let Plan::Ask(a) = plan(&invite(
            "sip:alice@example.com",
            "Privacy: id\nP-Asserted-Identity: <sip:bob@example.org>\n",
        )) else {
            panic!()
        };
        assert_eq!(a.caller, None);
        let Plan::Ask(a) = plan(&invite(
            "sip:alice@example.com",
            "P-Asserted-Identity: \"B\" <tel:+31201234567>\n",
        )) else {
            panic!()
        };
        assert_eq!(a.caller.as_deref(), Some("tel:+31201234567"));
        let Plan::Ask(a) = plan(&invite(
            "sip:alice@example.com",
            "Diversion: <sip:carol@example.com>;reason=user-busy;counter=2, <sip:dave@example.com>;reason=unconditional\n\
             History-Info: <sip:dave@example.com>;index=1, <sip:carol@example.com;cause=302>;index=1.1;mp=1, <sip:alice@example.com;cause=486>;index=1.1.1;mp=1.1\n",
        )) else {
            panic!()
        };
        assert_eq!(a.diversions, 3);
        assert_eq!(
            a.diverted_from,
            [
                "sip:carol@example.com",
                "sip:dave@example.com",
                "sip:dave@example.com",
                "sip:carol@example.com;cause=302"
            ]
        );
    }

    #[test]
    fn a_forward_carries_contact_diversion_and_history() {
        let r = invite(
            "sip:alice@example.com",
            "Diversion: <sip:dave@example.com>;reason=unconditional;counter=1\n",
        );
        let v = Verdict::Forward {
            target: "sip:+31201234567@example.com".into(),
            cause: 486,
            reason: "user-busy",
            diverting: "sip:alice@example.com".into(),
            privacy: true,
            hunt: Vec::new(),
            redirect: false,
        };
        let text = String::from_utf8(respond(&r, &v, src())).unwrap();
        assert!(
            text.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nVia: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776asdhds;rport=40000;received=127.0.0.1\r\n"), "{text}");
        assert!(
            text.contains("\r\nContact: <sip:+31201234567@example.com>\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nDiversion: <sip:alice@example.com>;reason=user-busy;counter=1;privacy=full, <sip:dave@example.com>;reason=unconditional;counter=1\r\n"), "{text}");
        assert!(text.contains("\r\nHistory-Info: <sip:alice@example.com>;index=1, <sip:+31201234567@example.com;cause=486>;index=1.1;mp=1\r\n"), "{text}");
        let tag = to_tag(&r);
        assert!(
            text.contains(&format!("\r\nTo: <sip:alice@example.com>;tag={tag}\r\n")),
            "{text}"
        );
        assert_eq!(
            respond(&r, &v, src()),
            respond(&r, &v, src()),
            "a retransmission gets the same answer"
        );
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn a_second_question_starts_history_with_the_callee_as_first_addressed() {
        assert_eq!(without_uri_param("sip:a@b;cause=486", "cause"), "sip:a@b");
        assert_eq!(
            without_uri_param("sip:+1;npdi@b:5060;user=phone;CAUSE=408;lr?x=y", "cause"),
            "sip:+1;npdi@b:5060;user=phone;lr?x=y"
        );
        let r = invite("sip:alice@example.com;user=phone;cause=486", "");
        let v = Verdict::Forward {
            target: "sip:bob@example.com".into(),
            cause: 486,
            reason: "user-busy",
            diverting: "sip:alice@example.com".into(),
            privacy: false,
            hunt: Vec::new(),
            redirect: false,
        };
        let text = String::from_utf8(respond(&r, &v, src())).unwrap();
        assert!(text.contains("\r\nHistory-Info: <sip:alice@example.com;user=phone>;index=1, <sip:bob@example.com;cause=486>;index=1.1;mp=1\r\n"), "{text}");
    }

    #[test]
    fn a_ring_names_a_location_uri_that_is_not_the_request_uri() {
        let r = invite("sip:alice@example.com", "");
        let v = Verdict::Ring {
            account: "sip:alice@example.com".into(),
            seconds: 35,
        };
        let text = String::from_utf8(respond(&r, &v, src())).unwrap();
        assert!(
            text.contains("\r\nContact: <sip:alice@example.com;ring=35>\r\nX-Ring-Time: 35\r\n"),
            "{text}"
        );
        assert!(!text.contains("Diversion"), "{text}");
    }

    /// A forwarding rule's destination list: every destination a Contact with its step's `q`
    /// and ring time, the number of steps in a header; a redirect says so; a rule on a response
    /// answers that response, and without one the door falls back (480 here).
    #[test]
    fn hunt_lists_redirects_and_responses() {
        use sip_settings_core::routing::{OnResponse, RouteStep};
        let uri = |u: &str| Destination::Uri(u.to_owned());
        let hunt = Forward {
            condition: Some(Condition::NoAnswer),
            destination: uri("sip:bob@example.com"),
            reason: "no-answer",
            steps: vec![
                RouteStep {
                    destinations: vec![uri("sip:bob@example.com"), Destination::VoiceMailbox],
                    ring_seconds: 20,
                },
                RouteStep {
                    destinations: vec![uri("sip:dave@example.net")],
                    ring_seconds: 35,
                },
            ],
            redirect: false,
        };
        let decision = |outcome| Decision {
            outcome,
            path: vec![],
        };
        let vm = Some("sip:vm-alice@vm.example.net");
        let v = Verdict::from_decision(
            &decision(Outcome::Forward(hunt.clone())),
            Step::First { registered: None },
            "sip:alice@example.com",
            false,
            vm,
        );
        let r = invite("sip:alice@example.com", "");
        let text = String::from_utf8(respond(&r, &v, "127.0.0.1:5060".parse().unwrap())).unwrap();
        assert!(text.starts_with("SIP/2.0 302 "), "{text}");
        for line in [
            "Contact: <sip:bob@example.com;ring=20>;q=1.0\r\n",
            "Contact: <sip:vm-alice@vm.example.net;ring=20>;q=1.0\r\n",
            "Contact: <sip:dave@example.net;ring=35>;q=0.9\r\n",
            "X-Hunt-Steps: 2\r\n",
            "Diversion: <sip:alice@example.com>;reason=no-answer;counter=1\r\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("X-Redirect"), "{text}");
        // Without a voice mailbox URI its contact is left out.
        let Verdict::Forward { hunt: contacts, .. } = Verdict::from_decision(
            &decision(Outcome::Forward(hunt.clone())),
            Step::First { registered: None },
            "sip:alice@example.com",
            false,
            None,
        ) else {
            panic!()
        };
        assert_eq!(contacts.len(), 2);

        let redirect = Forward {
            steps: vec![],
            redirect: true,
            condition: Some(Condition::Unconditional),
            reason: "unconditional",
            ..hunt.clone()
        };
        let v = Verdict::from_decision(
            &decision(Outcome::Forward(redirect)),
            Step::First { registered: None },
            "sip:alice@example.com",
            false,
            vm,
        );
        let text = String::from_utf8(respond(&r, &v, "127.0.0.1:5060".parse().unwrap())).unwrap();
        assert!(text.contains("X-Redirect: caller\r\n"), "{text}");
        assert!(
            text.contains("Contact: <sip:bob@example.com;ring=35>;q=1.0\r\n"),
            "{text}"
        );

        let erin = Forward {
            condition: None,
            destination: uri("sip:erin@example.net"),
            reason: "unavailable",
            steps: vec![],
            redirect: false,
        };
        let ring = decision(Outcome::Ring {
            seconds: 20,
            on_busy: None,
            on_no_answer: None,
            on_response: vec![OnResponse {
                code: 503,
                forward: erin,
            }],
            on_failure: None,
        });
        let v = Verdict::from_decision(
            &ring,
            Step::Response(503),
            "sip:alice@example.com",
            false,
            vm,
        );
        let text = String::from_utf8(respond(&r, &v, "127.0.0.1:5060".parse().unwrap())).unwrap();
        assert!(
            text.contains("Contact: <sip:erin@example.net>\r\n"),
            "{text}"
        );
        assert!(
            text.contains(";cause=503>"),
            "History-Info's cause is the response: {text}"
        );
        assert!(response_forward(&ring, 503).is_some());
        assert!(response_forward(&ring, 502).is_none());
        assert_eq!(
            Verdict::from_decision(
                &ring,
                Step::Response(502),
                "sip:alice@example.com",
                false,
                vm
            )
            .code(),
            480
        );
    }
}
