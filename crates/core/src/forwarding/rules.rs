//! The rest of a forwarding rule (issue 19): what triggers it, who calls (a caller set), which
//! of the account's own addresses was dialled (a called set), where the call goes (steps, each
//! one target or a parallel group with its own ring time, or a redirect), and choosing the rule
//! that applies to a call — with the conditions that held, for a decision's path.
//!
//! Everything is validated when it is made, with messages that name the rule and the field
//! (`rules[2].steps[0].ring_seconds`, `caller_sets.family.members[1]`); a rule names its sets,
//! which are shared between rules ([`ForwardingSets`]), and naming a set that does not exist is
//! refused when the rules are checked against the sets ([`check_references`]).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::TimeSet;
use crate::error::ServiceError;
use crate::ids::{AccountId, TimeZone as AccountTimeZone, printable};
use crate::routing::Caller;
use crate::settings::{Group, PhonebookEntry};
use crate::sip::{Condition, DiversionTarget};

/// Most rules of one account.
pub const MAX_RULES: usize = 64;
/// Most steps of one rule.
pub const MAX_STEPS: usize = 10;
/// Most targets of one step (a parallel group).
pub const MAX_TARGETS: usize = 10;
/// Most members of a caller set, and addresses of a called set.
pub const MAX_MEMBERS: usize = 100;
/// Most response codes of one trigger.
pub const MAX_CODES: usize = 16;
/// The shortest ring time of a step, seconds.
pub const MIN_RING_SECONDS: u32 = 5;
/// The longest ring time of a step, seconds.
pub const MAX_RING_SECONDS: u32 = 300;
/// The ring time of a step that does not say (the seed's `no_answer_timeout` default).
pub const DEFAULT_RING_SECONDS: u32 = 35;

/// What makes a rule apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every call (the seed's `FUNC`).
    Unconditional,
    /// The account is busy (`FBUS`).
    Busy,
    /// No device is registered (`FNOL`).
    NotRegistered,
    /// Nobody answered in time (`FNOA`).
    NoAnswer,
    /// The accept rules or DND refused the caller (`FUNV`).
    NotAvailable,
    /// The devices answered the call with one of these final responses (408, 480, 503 …).
    Response(Vec<u16>),
    /// A rule's first destination failed, whatever the reason: the rest of the list is tried.
    AfterFirstFails,
}

impl Trigger {
    /// The trigger of a seed condition.
    pub fn of_condition(condition: Condition) -> Self {
        match condition {
            Condition::Unconditional => Self::Unconditional,
            Condition::Busy => Self::Busy,
            Condition::NotOnline => Self::NotRegistered,
            Condition::NoAnswer => Self::NoAnswer,
            Condition::NotAvailable => Self::NotAvailable,
        }
    }

    /// The seed condition this trigger is, if it is one.
    pub fn condition(&self) -> Option<Condition> {
        match self {
            Self::Unconditional => Some(Condition::Unconditional),
            Self::Busy => Some(Condition::Busy),
            Self::NotRegistered => Some(Condition::NotOnline),
            Self::NoAnswer => Some(Condition::NoAnswer),
            Self::NotAvailable => Some(Condition::NotAvailable),
            Self::Response(_) | Self::AfterFirstFails => None,
        }
    }

    /// A response trigger: 1 to [`MAX_CODES`] final failure codes (400–699), each once.
    pub fn response(field: &str, codes: &[u16]) -> Result<Self, ServiceError> {
        if codes.is_empty() || codes.len() > MAX_CODES {
            return Err(ServiceError::invalid(
                field,
                format!("needs 1 to {MAX_CODES} response codes"),
            ));
        }
        let mut sorted = Vec::with_capacity(codes.len());
        for &code in codes {
            if !(400..=699).contains(&code) {
                return Err(ServiceError::invalid(
                    field,
                    format!("{code} is not a final failure response (400–699)"),
                ));
            }
            if sorted.contains(&code) {
                return Err(ServiceError::invalid(field, format!("names {code} twice")));
            }
            sorted.push(code);
        }
        sorted.sort_unstable();
        Ok(Self::Response(sorted))
    }

    /// How the trigger reads in a decision's path.
    pub fn describe(&self) -> String {
        match self {
            Self::Unconditional => "every call".to_owned(),
            Self::Busy => "busy".to_owned(),
            Self::NotRegistered => "not registered".to_owned(),
            Self::NoAnswer => "no answer".to_owned(),
            Self::NotAvailable => "not available (accept rules or DND)".to_owned(),
            Self::Response(codes) => format!(
                "response {}",
                codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            Self::AfterFirstFails => "the first destination failed".to_owned(),
        }
    }

    /// Whether an event of a call fires this trigger.
    pub fn fires_on(&self, event: &Event) -> bool {
        match (self, event) {
            (Self::Response(codes), Event::Response(code)) => codes.contains(code),
            (
                Self::AfterFirstFails,
                Event::Response(_) | Event::Failure | Event::NoAnswer | Event::Busy,
            ) => true,
            (Self::Unconditional, Event::Arrival)
            | (Self::Busy, Event::Busy)
            | (Self::NotRegistered, Event::NotRegistered)
            | (Self::NoAnswer, Event::NoAnswer)
            | (Self::NotAvailable, Event::NotAvailable) => true,
            _ => false,
        }
    }
}

/// What just happened to a call, for choosing the rule that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The call arrives.
    Arrival,
    /// The accept rules or DND refused the caller.
    NotAvailable,
    /// No device is registered.
    NotRegistered,
    /// The account is busy.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// The devices answered with this final response.
    Response(u16),
    /// The devices answered with a final failure that no response trigger names.
    Failure,
}

/// Allow or deny: whether a caller set holds for the callers it lists or for everybody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Holds for the members.
    Allow,
    /// Holds for everybody but the members.
    Deny,
}

/// One member of a caller set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerMember {
    /// `sip:user@domain` with `%` or `*` for any run of characters, compared with the caller's
    /// address case-insensitively.
    Address(String),
    /// A user part or number with `%` or `*` (`+3120%`, `*0800*`), compared with the caller's
    /// user part.
    User(String),
    /// Callers who hide their identity.
    Anonymous,
    /// The callers in this phonebook group.
    Group(String),
}

impl CallerMember {
    /// Parses a member: `anonymous`, `group:NAME`, a `sip:` address pattern or a user pattern.
    pub fn parse(field: &str, input: &str) -> Result<Self, ServiceError> {
        let s = input.trim();
        if s.is_empty() || s.chars().any(char::is_control) || s.len() > 256 {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' is not a caller pattern (anonymous, group:NAME, sip:user@domain or a \
                     user or number, with % or * for any run of characters)",
                    printable(input)
                ),
            ));
        }
        let lower = s.to_ascii_lowercase();
        if lower == "anonymous" {
            return Ok(Self::Anonymous);
        }
        if let Some(name) = lower.strip_prefix("group:") {
            return match Group::parse(name)? {
                Group::Named(name) => Ok(Self::Group(name)),
                _ => Err(ServiceError::invalid(
                    field,
                    format!(
                        "'{}': everybody and nobody are not phonebook groups; a deny set with \
                         no members holds for everybody",
                        printable(input)
                    ),
                )),
            };
        }
        let allowed = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,:[]#".contains(c))
        };
        if let Some(rest) = lower.strip_prefix("sip:") {
            let Some((user, host)) = rest.rsplit_once('@') else {
                return Err(ServiceError::invalid(
                    field,
                    format!("'{}' must be of the form sip:user@domain", printable(input)),
                ));
            };
            if !allowed(user) || !allowed(host) {
                return Err(ServiceError::invalid(
                    field,
                    format!(
                        "'{}' has characters that cannot appear in a SIP address",
                        printable(input)
                    ),
                ));
            }
            return Ok(Self::Address(lower.replace('*', "%")));
        }
        if !allowed(&lower) || lower.contains('@') {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' has characters that cannot appear in a user part",
                    printable(input)
                ),
            ));
        }
        Ok(Self::User(lower.replace('*', "%")))
    }

    /// The member as written back (`*` reads as `%`).
    pub fn text(&self) -> String {
        match self {
            Self::Address(p) | Self::User(p) => p.clone(),
            Self::Anonymous => "anonymous".to_owned(),
            Self::Group(name) => format!("group:{name}"),
        }
    }

    /// Whether `caller` is a member (phonebook groups looked up in `phonebook`).
    pub fn matches(&self, caller: &Caller, phonebook: &[PhonebookEntry]) -> bool {
        self.matches_text(caller, &CallerText::of(caller), phonebook)
    }

    /// [`CallerMember::matches`] with the caller's text made once for all members.
    fn matches_text(
        &self,
        caller: &Caller,
        text: &CallerText,
        phonebook: &[PhonebookEntry],
    ) -> bool {
        match (self, caller) {
            (Self::Anonymous, Caller::Anonymous) => true,
            (Self::Anonymous, Caller::Uri(_)) | (_, Caller::Anonymous) => false,
            (Self::Address(p), Caller::Uri(_)) => wildcard(p, &text.address),
            (Self::User(p), Caller::Uri(_)) => text.user.as_deref().is_some_and(|u| wildcard(p, u)),
            (Self::Group(name), Caller::Uri(uri)) => {
                crate::settings::in_phonebook_group(phonebook, name, uri)
            }
        }
    }
}

/// A caller's address and user part, lowercased, as the patterns are compared with them.
struct CallerText {
    address: String,
    user: Option<String>,
}

impl CallerText {
    fn of(caller: &Caller) -> Self {
        match caller {
            Caller::Uri(uri) => {
                let mut address = uri.to_string();
                address.make_ascii_lowercase();
                Self {
                    address,
                    user: uri.user().map(str::to_ascii_lowercase),
                }
            }
            Caller::Anonymous => Self {
                address: String::new(),
                user: None,
            },
        }
    }
}

/// `%` matches any run of characters (the reject patterns' matcher).
fn wildcard(pattern: &str, text: &str) -> bool {
    crate::settings::wildcard_match(pattern.as_bytes(), text.as_bytes())
}

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSet {
    mode: Mode,
    members: Vec<CallerMember>,
}

impl CallerSet {
    /// A set of at most [`MAX_MEMBERS`] members, each once (an allow set needs one).
    pub fn new(field: &str, mode: Mode, members: Vec<CallerMember>) -> Result<Self, ServiceError> {
        if members.len() > MAX_MEMBERS {
            return Err(ServiceError::invalid(
                field,
                format!("has {} members; at most {MAX_MEMBERS}", members.len()),
            ));
        }
        if mode == Mode::Allow && members.is_empty() {
            return Err(ServiceError::invalid(
                field,
                "is an allow set with no members: it would hold for nobody",
            ));
        }
        for (i, m) in members.iter().enumerate() {
            if members[..i].contains(m) {
                return Err(ServiceError::invalid(
                    format!("{field}.members[{i}]"),
                    format!("'{}' is listed twice", m.text()),
                ));
            }
        }
        Ok(Self { mode, members })
    }

    /// Allow or deny.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The members.
    pub fn members(&self) -> &[CallerMember] {
        &self.members
    }

    /// Whether the set holds for `caller`, and why (for a decision's path).
    pub fn holds(&self, caller: &Caller, phonebook: &[PhonebookEntry]) -> (bool, String) {
        self.holds_text(caller, &CallerText::of(caller), phonebook)
    }

    /// Whether the set holds for `caller`: [`CallerSet::holds`] without the why, for a
    /// decision whose path nobody reads (both are one judgement, so they cannot disagree).
    pub fn holds_for(&self, caller: &Caller, phonebook: &[PhonebookEntry]) -> bool {
        self.judge(caller, &CallerText::of(caller), phonebook).0
    }

    /// Whether the set holds, and the member that matched (if any): what [`CallerSet::holds`]
    /// and [`CallerSet::holds_for`] both decide by.
    fn judge(
        &self,
        caller: &Caller,
        text: &CallerText,
        phonebook: &[PhonebookEntry],
    ) -> (bool, Option<&CallerMember>) {
        let matched = self
            .members
            .iter()
            .find(|m| m.matches_text(caller, text, phonebook));
        let held = match self.mode {
            Mode::Allow => matched.is_some(),
            Mode::Deny => matched.is_none(),
        };
        (held, matched)
    }

    /// [`CallerSet::holds`] with the caller's text made once for all sets.
    fn holds_text(
        &self,
        caller: &Caller,
        text: &CallerText,
        phonebook: &[PhonebookEntry],
    ) -> (bool, String) {
        let who = || match caller {
            Caller::Uri(_) => text.address.clone(),
            Caller::Anonymous => "an anonymous caller".to_owned(),
        };
        let (held, matched) = self.judge(caller, text, phonebook);
        let how = match (self.mode, matched) {
            (Mode::Allow, Some(m)) => format!("{} matches {}", who(), m.text()),
            (Mode::Allow, None) => format!("{} matches no member", who()),
            (Mode::Deny, Some(m)) => format!("{} is excluded by {}", who(), m.text()),
            (Mode::Deny, None) => format!("{} is not excluded", who()),
        };
        (held, how)
    }
}

/// Which of the account's own addresses were dialled: user parts of its address and aliases,
/// or its ENUM numbers (`+31201234567`), compared as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledSet {
    addresses: Vec<String>,
}

impl CalledSet {
    /// A set of 1 to [`MAX_MEMBERS`] addresses, each once. Whether each is one of the
    /// account's own is checked against the account ([`CalledSet::foreign`]).
    pub fn new(field: &str, addresses: Vec<String>) -> Result<Self, ServiceError> {
        if addresses.is_empty() || addresses.len() > MAX_MEMBERS {
            return Err(ServiceError::invalid(
                field,
                format!("needs 1 to {MAX_MEMBERS} addresses"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(addresses.len());
        for (i, a) in addresses.iter().enumerate() {
            let a = a.trim().to_ascii_lowercase();
            let ok = !a.is_empty()
                && a.len() <= 128
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,".contains(c));
            if !ok {
                return Err(ServiceError::invalid(
                    format!("{field}.addresses[{i}]"),
                    format!(
                        "'{}' is not a user part or number of this account",
                        printable(&a)
                    ),
                ));
            }
            if out.contains(&a) {
                return Err(ServiceError::invalid(
                    format!("{field}.addresses[{i}]"),
                    format!("'{a}' is listed twice"),
                ));
            }
            out.push(a);
        }
        Ok(Self { addresses: out })
    }

    /// The addresses.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The first address that is not one of `own` (the account's user part, aliases' user
    /// parts and ENUM numbers).
    pub fn foreign<'a>(&'a self, own: &[String]) -> Option<&'a str> {
        self.addresses
            .iter()
            .find(|a| !own.iter().any(|o| o.eq_ignore_ascii_case(a)))
            .map(String::as_str)
    }

    /// Whether the set holds for the address dialled (`None`: not known, which no set holds
    /// for), and why.
    pub fn holds(&self, dialled: Option<&str>) -> (bool, String) {
        let held = self.holds_for(dialled);
        let how = match dialled {
            Some(d) if held => format!("{d} was dialled"),
            Some(d) => format!("{d} was dialled, not one of the set"),
            None => "the address dialled is not known".to_owned(),
        };
        (held, how)
    }

    /// Whether the set holds for the address dialled: [`CalledSet::holds`] without the why,
    /// for a decision whose path nobody reads ([`CalledSet::holds`] is built on it).
    pub fn holds_for(&self, dialled: Option<&str>) -> bool {
        dialled.is_some_and(|d| self.addresses.iter().any(|a| a.eq_ignore_ascii_case(d)))
    }
}

/// One step of a rule's destination list: one target, or several rung at once (a parallel
/// group), for `ring_seconds` before the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    targets: Vec<DiversionTarget>,
    ring_seconds: u32,
}

impl Step {
    /// A step of 1 to [`MAX_TARGETS`] targets, each once, and a ring time within
    /// [`MIN_RING_SECONDS`]–[`MAX_RING_SECONDS`].
    pub fn new(
        field: &str,
        targets: Vec<DiversionTarget>,
        ring_seconds: u32,
    ) -> Result<Self, ServiceError> {
        if targets.is_empty() || targets.len() > MAX_TARGETS {
            return Err(ServiceError::invalid(
                format!("{field}.targets"),
                format!("needs 1 to {MAX_TARGETS} targets"),
            ));
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) {
                return Err(ServiceError::invalid(
                    format!("{field}.targets[{i}]"),
                    format!("'{}' is listed twice", t.shown()),
                ));
            }
        }
        if !(MIN_RING_SECONDS..=MAX_RING_SECONDS).contains(&ring_seconds) {
            return Err(ServiceError::invalid(
                format!("{field}.ring_seconds"),
                format!(
                    "is {ring_seconds}; a step rings {MIN_RING_SECONDS} to {MAX_RING_SECONDS} s"
                ),
            ));
        }
        Ok(Self {
            targets,
            ring_seconds,
        })
    }

    /// The targets (more than one: rung at once).
    pub fn targets(&self) -> &[DiversionTarget] {
        &self.targets
    }

    /// How long the step rings before the next.
    pub fn ring_seconds(&self) -> u32 {
        self.ring_seconds
    }
}

/// What a rule does with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The proxy forwards the call through the steps in order.
    Forward(Vec<Step>),
    /// The caller is answered `302` with the steps' targets, to call them itself.
    Redirect(Vec<Step>),
}

impl Action {
    /// The steps.
    pub fn steps(&self) -> &[Step] {
        match self {
            Self::Forward(s) | Self::Redirect(s) => s,
        }
    }

    /// Checks the number of steps: 1 to [`MAX_STEPS`].
    pub fn check(&self, field: &str) -> Result<(), ServiceError> {
        let n = self.steps().len();
        if n == 0 || n > MAX_STEPS {
            return Err(ServiceError::invalid(
                format!("{field}.steps"),
                format!("has {n} steps; a rule has 1 to {MAX_STEPS}"),
            ));
        }
        Ok(())
    }
}

/// One forwarding rule of an account. Its conditions name shared sets ([`ForwardingSets`]);
/// a rule holds when every condition it names holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingRule {
    /// The rule's id among the account's rules: stable across reordering and changes of other
    /// rules (a seed condition's simple rule is [`ForwardingRule::seed_id`] where free).
    pub id: u32,
    /// Whether the rule is in force.
    pub enabled: bool,
    /// What makes it apply.
    pub trigger: Trigger,
    /// When (a time set's name).
    pub time: Option<String>,
    /// Who calls (a caller set's name).
    pub callers: Option<String>,
    /// Which own address was dialled (a called set's name).
    pub called: Option<String>,
    /// Where the call goes.
    pub action: Action,
}

impl ForwardingRule {
    /// The seed's view of a rule: the condition and target of a *simple* rule (a seed trigger,
    /// no conditions, forwarded to one target with the default ring time), else `None`.
    pub fn simple(&self) -> Option<(Condition, &DiversionTarget)> {
        let condition = self.trigger.condition()?;
        if !self.enabled || self.time.is_some() || self.callers.is_some() || self.called.is_some() {
            return None;
        }
        match &self.action {
            Action::Forward(steps) => match steps.as_slice() {
                [step] if step.ring_seconds == DEFAULT_RING_SECONDS => match step.targets() {
                    [target] => Some((condition, target)),
                    _ => None,
                },
                _ => None,
            },
            Action::Redirect(_) => None,
        }
    }

    /// The id a seed condition's simple rule has when the rules are the seed's alone: 1 to 5,
    /// in [`Condition::ALL`]'s order, so that the ids of an account's rules read from its
    /// forwarding do not change when another condition is set.
    pub fn seed_id(condition: Condition) -> u32 {
        Condition::ALL
            .iter()
            .position(|c| *c == condition)
            .map_or(0, |i| u32::try_from(i).unwrap_or(0) + 1)
    }

    /// The simple rule forwarding `condition` to `target`, with the condition's
    /// [`ForwardingRule::seed_id`].
    pub fn of_diversion(condition: Condition, target: DiversionTarget) -> Self {
        Self {
            id: Self::seed_id(condition),
            enabled: true,
            trigger: Trigger::of_condition(condition),
            time: None,
            callers: None,
            called: None,
            action: Action::Forward(vec![Step {
                targets: vec![target],
                ring_seconds: DEFAULT_RING_SECONDS,
            }]),
        }
    }

    /// Whether the rule has no conditions.
    pub fn unconditioned(&self) -> bool {
        self.time.is_none() && self.callers.is_none() && self.called.is_none()
    }
}

/// An account's named sets, shared between its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardingSets {
    /// Time sets by name.
    pub time: BTreeMap<String, TimeSet>,
    /// Caller sets by name.
    pub callers: BTreeMap<String, CallerSet>,
    /// Called sets by name.
    pub called: BTreeMap<String, CalledSet>,
}

/// Checks a set's name: `[a-z0-9][a-z0-9_.-]{0,31}`.
pub fn check_set_name(field: &str, name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            field,
            format!(
                "'{}' is not a set name (a-z, 0-9, _ . -, starting with a letter or digit, at \
                 most 32)",
                printable(name)
            ),
        ))
    }
}

/// Checks rules against the sets they name and the account's own addresses: every set named
/// exists, every called set lists only `own` addresses, at most [`MAX_RULES`] rules, each
/// rule's action has 1 to [`MAX_STEPS`] steps. What is not an error but can never happen is
/// returned as warnings, each with the index of the rule it is about: a rule after an
/// enabled unconditional rule with no conditions (shadowed: that rule takes every call first).
pub fn check_references(
    rules: &[ForwardingRule],
    sets: &ForwardingSets,
    own: &[String],
) -> Result<Vec<(usize, String)>, ServiceError> {
    if rules.len() > MAX_RULES {
        return Err(ServiceError::invalid(
            "rules",
            format!("has {} rules; at most {MAX_RULES}", rules.len()),
        ));
    }
    for (name, set) in &sets.called {
        if let Some(a) = set.foreign(own) {
            return Err(ServiceError::invalid(
                format!("called_sets.{name}"),
                format!("'{a}' is not an address or number of this account"),
            ));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("rules[{i}]");
        rule.action.check(&field)?;
        let missing = |kind: &str, name: &Option<String>, present: bool| match name {
            Some(n) if !present => Err(ServiceError::invalid(
                format!("{field}.{kind}"),
                format!("names the set '{}', which does not exist", printable(n)),
            )),
            _ => Ok(()),
        };
        missing(
            "time",
            &rule.time,
            rule.time
                .as_ref()
                .is_some_and(|n| sets.time.contains_key(n)),
        )?;
        missing(
            "callers",
            &rule.callers,
            rule.callers
                .as_ref()
                .is_some_and(|n| sets.callers.contains_key(n)),
        )?;
        missing(
            "called",
            &rule.called,
            rule.called
                .as_ref()
                .is_some_and(|n| sets.called.contains_key(n)),
        )?;
    }
    Ok(shadowed(rules))
}

/// The rules that can never apply, each with its index and why: every enabled rule after an
/// enabled unconditional rule with no conditions (that rule takes every call first), but the
/// rules after the first destination fails.
pub fn shadowed(rules: &[ForwardingRule]) -> Vec<(usize, String)> {
    let mut warnings = Vec::new();
    let mut catch_all: Option<usize> = None;
    for (i, rule) in rules.iter().enumerate() {
        if !rule.enabled {
            continue;
        }
        if let Some(first) = catch_all {
            if rule.trigger != Trigger::AfterFirstFails {
                warnings.push((
                    i,
                    format!("rules[{i}] can never apply: rules[{first}] forwards every call first"),
                ));
            }
        } else if rule.trigger == Trigger::Unconditional && rule.unconditioned() {
            catch_all = Some(i);
        }
    }
    warnings
}

/// What is known of a call when a rule is chosen.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// Who calls.
    pub caller: &'a Caller,
    /// Which of the account's own addresses was dialled, if known.
    pub dialled: Option<&'a str>,
    /// When.
    pub at: DateTime<Utc>,
    /// The account's time zone.
    pub tz: AccountTimeZone,
    /// The account's phonebook (caller groups).
    pub phonebook: &'a [PhonebookEntry],
}

/// The rule chosen for an event: its index and, for the path, what held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The rule's index in the account's list.
    pub index: usize,
    /// Why it applies: the trigger, then each condition that held (empty when the rule was
    /// chosen for a decision without a path, [`crate::routing::Detail::Outcome`]).
    pub why: Vec<String>,
}

/// Chooses the first enabled rule whose trigger fires on `event` and whose conditions all hold
/// for the call; `skipped` notes, for the path, each rule whose trigger fired but a condition
/// did not hold (and which one).
pub fn choose(
    rules: &[ForwardingRule],
    sets: &ForwardingSets,
    event: &Event,
    facts: &CallFacts<'_>,
    skipped: &mut Vec<String>,
) -> Option<Chosen> {
    choose_from(rules, 0, sets, event, facts, skipped)
}

/// [`choose`] among the rules from index `from` on (after a chosen rule turned out unusable).
pub fn choose_from(
    rules: &[ForwardingRule],
    from: usize,
    sets: &ForwardingSets,
    event: &Event,
    facts: &CallFacts<'_>,
    skipped: &mut Vec<String>,
) -> Option<Chosen> {
    choose_in(
        rules,
        from,
        sets,
        event,
        &Judged::new(*facts),
        Some(skipped),
    )
}

/// A call's facts with what choosing rules works out from them, each made once, when first
/// needed, however many rules (and events) a decision asks: the account's local time, and the
/// caller's address and user part as the caller patterns (and the reject patterns) compare
/// them.
pub(crate) struct Judged<'a> {
    /// The facts.
    pub(crate) facts: CallFacts<'a>,
    local: OnceCell<DateTime<chrono_tz::Tz>>,
    caller: OnceCell<CallerText>,
}

impl<'a> Judged<'a> {
    /// Nothing worked out yet.
    pub(crate) fn new(facts: CallFacts<'a>) -> Self {
        Self {
            facts,
            local: OnceCell::new(),
            caller: OnceCell::new(),
        }
    }

    /// The call's time in the account's zone.
    pub(crate) fn local(&self) -> &DateTime<chrono_tz::Tz> {
        self.local
            .get_or_init(|| self.facts.at.with_timezone(&self.facts.tz.tz()))
    }

    fn caller_text(&self) -> &CallerText {
        self.caller
            .get_or_init(|| CallerText::of(self.facts.caller))
    }

    /// The caller's address, lowercased (empty for an anonymous caller).
    pub(crate) fn caller_address(&self) -> &str {
        &self.caller_text().address
    }
}

/// [`choose_from`] over a decision's [`Judged`] facts. With `skipped`, every rule whose trigger
/// fired but a condition did not hold is noted there and the chosen rule's `why` is filled in;
/// without, nothing is formatted (`why` is empty) and each condition is the same check without
/// its text ([`TimeSet::holds_at`], [`CallerSet::holds_for`], [`CalledSet::holds_for`], which
/// the texts are built on), so the same rule is chosen either way.
pub(crate) fn choose_in(
    rules: &[ForwardingRule],
    from: usize,
    sets: &ForwardingSets,
    event: &Event,
    judged: &Judged<'_>,
    mut skipped: Option<&mut Vec<String>>,
) -> Option<Chosen> {
    let facts = &judged.facts;
    // Made once, when a skipped rule first needs it: a decision may ask many rules.
    let mut local_text: Option<String> = None;
    'rules: for (index, rule) in rules.iter().enumerate().skip(from) {
        if !rule.enabled || !rule.trigger.fires_on(event) {
            continue;
        }
        // Its first line is made when the rule is chosen (most rules a decision asks are not).
        let mut why = Vec::new();
        if let Some(name) = &rule.time {
            let set = sets.time.get(name);
            if let Some(skipped) = skipped.as_deref_mut() {
                match set.and_then(|t| t.holds_described(judged.local(), facts.tz)) {
                    Some(h) => why.push(format!("time set {name}: {h}")),
                    None => {
                        let local = local_text.get_or_insert_with(|| {
                            judged.local().format("%a %Y-%m-%d %H:%M").to_string()
                        });
                        skipped.push(format!(
                            "rules[{index}] skipped: time set {name} does not hold at {local}"
                        ));
                        continue 'rules;
                    }
                }
            } else if !set.is_some_and(|t| t.holds_at(judged.local())) {
                continue 'rules;
            }
        }
        if let Some(name) = &rule.callers {
            let set = sets.callers.get(name);
            if let Some(skipped) = skipped.as_deref_mut() {
                let (held, how) = set.map_or((false, "the set is gone".to_owned()), |c| {
                    c.holds_text(facts.caller, judged.caller_text(), facts.phonebook)
                });
                if !held {
                    skipped.push(format!("rules[{index}] skipped: caller set {name}: {how}"));
                    continue 'rules;
                }
                why.push(format!("caller set {name}: {how}"));
            } else if !set.is_some_and(|c| {
                c.judge(facts.caller, judged.caller_text(), facts.phonebook)
                    .0
            }) {
                continue 'rules;
            }
        }
        if let Some(name) = &rule.called {
            let set = sets.called.get(name);
            if let Some(skipped) = skipped.as_deref_mut() {
                let (held, how) = set.map_or((false, "the set is gone".to_owned()), |c| {
                    c.holds(facts.dialled)
                });
                if !held {
                    skipped.push(format!("rules[{index}] skipped: called set {name}: {how}"));
                    continue 'rules;
                }
                why.push(format!("called set {name}: {how}"));
            } else if !set.is_some_and(|c| c.holds_for(facts.dialled)) {
                continue 'rules;
            }
        }
        if skipped.is_some() {
            why.insert(0, format!("rules[{index}] ({})", rule.trigger.describe()));
        }
        return Some(Chosen { index, why });
    }
    None
}

/// The targets of every step of every rule, with the field each is at: for the checks every
/// target gets (not the account itself, no loop, `<voice-mailbox>` only with voicemail).
pub fn targets(rules: &[ForwardingRule]) -> Vec<(String, &DiversionTarget)> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for (s, step) in rule.action.steps().iter().enumerate() {
            for (t, target) in step.targets().iter().enumerate() {
                out.push((format!("rules[{i}].steps[{s}].targets[{t}]"), target));
            }
        }
    }
    out
}

/// Parses a target written for `field` of account `own` (as the seed's conditions are).
pub fn parse_target(
    field: &str,
    input: &str,
    own: &AccountId,
) -> Result<DiversionTarget, ServiceError> {
    DiversionTarget::parse_for(field, input, own)
}

#[cfg(test)]
mod tests;
