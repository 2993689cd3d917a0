//! An account's whole forwarding — its ordered rules and the named sets they share — as one
//! value ([`Forwarding`]), its JSON form ([`Document`], what the stores keep and what
//! `/v1/me/forwarding-rules` shows), and the seed's view of it: the five conditions
//! ([`Forwarding::diversions`], [`Forwarding::set_diversions`]).
//!
//! The stores keep the seed's view (table `diversions`) for every account, and the document
//! only for an account whose forwarding says more than that view ([`Forwarding::is_plain`]):
//! an account without a document has the simple rules of its diversions
//! ([`Forwarding::of_diversions`]). Both are written in one transaction, from the same value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::{
    Action, CalledSet, CallerMember, CallerSet, DEFAULT_RING_SECONDS, ForwardingRule,
    ForwardingSets, Mode, Step, Trigger, check_set_name,
};
use super::{DateRange, TimeSet, WeeklyRange, YearlyDate};
use crate::error::ServiceError;
use crate::ids::{AccountId, printable};
use crate::settings::{ClockTime, DaysMask, Diversions};
use crate::sip::{Condition, DiversionTarget};

/// The version of the document's form (its `v` key).
pub const DOCUMENT_VERSION: u32 = 1;

/// An account's forwarding: its rules in order and the sets they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// The rules, first to last: the first that applies to a call decides it.
    pub rules: Vec<ForwardingRule>,
    /// The named sets the rules share.
    pub sets: ForwardingSets,
}

impl Forwarding {
    /// The forwarding of an account that has only the seed's conditions: one simple rule per
    /// condition set, in [`Condition::ALL`]'s order, each with its
    /// [`ForwardingRule::seed_id`].
    pub fn of_diversions(diversions: &Diversions) -> Self {
        let rules = Condition::ALL
            .into_iter()
            .filter_map(|c| {
                diversions
                    .get(&c)
                    .map(|t| ForwardingRule::of_diversion(c, t.clone()))
            })
            .collect();
        Self {
            rules,
            sets: ForwardingSets::default(),
        }
    }

    /// The seed's view: for each condition, the target of its first simple rule
    /// ([`ForwardingRule::simple`]).
    pub fn diversions(&self) -> Diversions {
        let mut out = Diversions::new();
        for rule in &self.rules {
            if let Some((condition, target)) = rule.simple() {
                out.entry(condition).or_insert_with(|| target.clone());
            }
        }
        out
    }

    /// Whether the forwarding is exactly what [`Forwarding::of_diversions`] makes of its own
    /// seed view: then the stores keep the view alone.
    pub fn is_plain(&self) -> bool {
        self.sets == ForwardingSets::default() && *self == Self::of_diversions(&self.diversions())
    }

    /// Whether rules exist beyond the seed's view — a rule that is not the first simple rule
    /// of its condition, or a set — so that the five conditions do not tell everything (the
    /// seed view's added `"rules": true`).
    pub fn richer(&self) -> bool {
        if self.sets != ForwardingSets::default() {
            return true;
        }
        let mut seen = Vec::new();
        self.rules.iter().any(|rule| match rule.simple() {
            Some((condition, _)) if !seen.contains(&condition) => {
                seen.push(condition);
                false
            }
            _ => true,
        })
    }

    /// Applies the seed's change of conditions: a condition set to a target changes its first
    /// simple rule's target (or, with none, adds a simple rule at the end); a condition
    /// cleared removes its simple rules. Every other rule is left as it is.
    pub fn set_diversions(&mut self, changes: &[(Condition, Option<DiversionTarget>)]) {
        for (condition, target) in changes {
            let simple_of = |r: &ForwardingRule| r.simple().is_some_and(|(c, _)| c == *condition);
            match target {
                Some(target) => {
                    if let Some(rule) = self.rules.iter_mut().find(|r| simple_of(r)) {
                        *rule = ForwardingRule {
                            id: rule.id,
                            ..ForwardingRule::of_diversion(*condition, target.clone())
                        };
                    } else {
                        let mut rule = ForwardingRule::of_diversion(*condition, target.clone());
                        if self.rules.iter().any(|r| r.id == rule.id) {
                            rule.id = self.next_id();
                        }
                        self.rules.push(rule);
                    }
                }
                None => self.rules.retain(|r| !simple_of(r)),
            }
        }
    }

    /// An id no rule has: one past the largest, and past the seed conditions' ids.
    pub fn next_id(&self) -> u32 {
        let seed_ids = u32::try_from(Condition::ALL.len()).unwrap_or(5);
        self.rules
            .iter()
            .map(|r| r.id)
            .max()
            .unwrap_or(0)
            .max(seed_ids)
            + 1
    }

    /// The document of this forwarding, as the stores keep it and the API shows it.
    pub fn document(&self) -> Document {
        Document {
            v: DOCUMENT_VERSION,
            rules: self.rules.iter().map(RuleDoc::of).collect(),
            time_sets: self
                .sets
                .time
                .iter()
                .map(|(n, s)| (n.clone(), TimeSetDoc::of(s)))
                .collect(),
            caller_sets: self
                .sets
                .callers
                .iter()
                .map(|(n, s)| (n.clone(), CallerSetDoc::of(s)))
                .collect(),
            called_sets: self
                .sets
                .called
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        CalledSetDoc {
                            addresses: s.addresses().to_vec(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The document as the stores keep it (JSON text, targets in their stored form).
    pub fn to_stored(&self) -> String {
        // Serialising plain structs of strings, numbers and maps with string keys cannot
        // fail; should it, the empty object reads back as no rules and is refused as corrupt.
        serde_json::to_string(&self.document()).unwrap_or_default()
    }

    /// Reads what [`Forwarding::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Result<Self, ServiceError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ServiceError::invalid("forwarding", format!("is not JSON: {e}")))?;
        Document::parse(value)?.forwarding(&|field, input| {
            DiversionTarget::from_stored(input).map_err(|e| e.renamed(field))
        })
    }
}

/// The JSON form of an account's forwarding (`v` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The form's version, [`DOCUMENT_VERSION`].
    #[serde(default = "document_version")]
    pub v: u32,
    /// The rules, first to last.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    /// Time sets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_sets: BTreeMap<String, TimeSetDoc>,
    /// Caller sets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caller_sets: BTreeMap<String, CallerSetDoc>,
    /// Called sets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub called_sets: BTreeMap<String, CalledSetDoc>,
}

fn document_version() -> u32 {
    DOCUMENT_VERSION
}

fn enabled_default() -> bool {
    true
}

fn forward_default() -> String {
    "forward".to_owned()
}

fn ring_default() -> u32 {
    DEFAULT_RING_SECONDS
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// The rule's id (given one when absent: past the largest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub id: Option<u32>,
    /// Whether the rule is in force (default true).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// `unconditional`, `busy`, `not_registered`, `no_answer`, `not_available`, `response`
    /// (with `codes`) or `after_first_fails`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^(unconditional|busy|not_registered|no_answer|not_available|response|after_first_fails)$"
        )
    )]
    pub trigger: String,
    /// The final responses of a `response` trigger (400–699).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub codes: Vec<u16>,
    /// A time set's name: the rule applies only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$"))]
    pub time: Option<String>,
    /// A caller set's name: the rule applies only to those callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$"))]
    pub callers: Option<String>,
    /// A called set's name: the rule applies only when one of its addresses was dialled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$"))]
    pub called: Option<String>,
    /// `forward` (default): the proxy tries the steps in order; `redirect`: the caller is
    /// answered `302` with them.
    #[serde(default = "forward_default")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(forward|redirect)$"))]
    pub action: String,
    /// The destinations, tried in order.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10))]
    pub steps: Vec<StepDoc>,
    /// Read-only: why the rule can never apply (an earlier rule forwards every call), if it
    /// cannot. Never stored; ignored when sent, so that a rule read can be sent back as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub warnings: Vec<String>,
}

/// One step: its targets, rung at once, for `ring_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    /// Targets as the seed's conditions take them (`user`, `user@domain`, a number,
    /// `<voice-mailbox>`, `<mobile-number>`).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10))]
    pub targets: Vec<String>,
    /// Seconds the step rings before the next (5–300, default 35).
    #[serde(default = "ring_default")]
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 300))]
    pub ring_seconds: u32,
}

/// A time set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeSetDoc {
    /// Days of the week and a time-of-day window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekly: Vec<WeeklyDoc>,
    /// `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<String>,
    /// `MM-DD`, every year.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub yearly: Vec<String>,
}

/// A weekly range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeeklyDoc {
    /// The days the window starts on, a mask 1–127 (Mon=1 … Sun=64), as the accept rules.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 127))]
    pub days: u32,
    /// `HH:MM`, local time.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub start: String,
    /// `HH:MM`, local time (before `start`: the next day; equal: the whole day).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub stop: String,
}

/// A caller set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallerSetDoc {
    /// `allow` (holds for the members) or `deny` (for everybody else).
    #[cfg_attr(feature = "openapi", schema(pattern = "^(allow|deny)$"))]
    pub mode: String,
    /// `anonymous`, `group:NAME`, `sip:user@domain` or a user or number, with `%` or `*`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub members: Vec<String>,
}

/// A called set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CalledSetDoc {
    /// The account's own user parts and numbers.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub addresses: Vec<String>,
}

/// How a document's targets are read: by field and text.
pub type TargetReader<'a> = dyn Fn(&str, &str) -> Result<DiversionTarget, ServiceError> + 'a;

impl Document {
    /// Takes a JSON object as a document; [`Document::forwarding_of`] then checks every field.
    /// The references between rules and sets, and what needs the account's other data, are
    /// checked by [`super::check_references`] and the service.
    pub fn parse(value: serde_json::Value) -> Result<Self, ServiceError> {
        if !value.is_object() {
            return Err(ServiceError::invalid(
                "forwarding",
                "is not a document (a JSON object with rules and sets)",
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| ServiceError::invalid("forwarding", format!("is not a document: {e}")))
    }

    /// The forwarding of a document sent by `own`.
    pub fn forwarding_of(&self, own: &AccountId) -> Result<Forwarding, ServiceError> {
        self.forwarding(&|field, input| DiversionTarget::parse_for(field, input, own))
    }

    /// The forwarding this document describes, reading targets with `target`.
    pub fn forwarding(&self, target: &TargetReader<'_>) -> Result<Forwarding, ServiceError> {
        if self.v != DOCUMENT_VERSION {
            return Err(ServiceError::invalid(
                "v",
                format!(
                    "is {}; this server reads version {DOCUMENT_VERSION}",
                    self.v
                ),
            ));
        }
        let mut sets = ForwardingSets::default();
        for (name, doc) in &self.time_sets {
            let field = format!("time_sets.{name}");
            check_set_name(&field, name)?;
            sets.time.insert(name.clone(), doc.time_set(&field)?);
        }
        for (name, doc) in &self.caller_sets {
            let field = format!("caller_sets.{name}");
            check_set_name(&field, name)?;
            sets.callers.insert(name.clone(), doc.caller_set(&field)?);
        }
        for (name, doc) in &self.called_sets {
            let field = format!("called_sets.{name}");
            check_set_name(&field, name)?;
            sets.called
                .insert(name.clone(), CalledSet::new(&field, doc.addresses.clone())?);
        }
        let mut rules: Vec<ForwardingRule> = Vec::with_capacity(self.rules.len());
        for (i, doc) in self.rules.iter().enumerate() {
            let field = format!("rules[{i}]");
            if doc.id == Some(0) {
                return Err(ServiceError::invalid(
                    format!("{field}.id"),
                    "is 0; rule ids start at 1 (leave it out for a new rule)",
                ));
            }
            let rule = doc.rule(&field, target)?;
            if rule.id != 0 && rules.iter().any(|r| r.id == rule.id) {
                return Err(ServiceError::invalid(
                    format!("{field}.id"),
                    format!("{} is the id of an earlier rule", rule.id),
                ));
            }
            rules.push(rule);
        }
        let mut forwarding = Forwarding { rules, sets };
        // Rules without an id: a simple rule gets its condition's seed id while no rule has it,
        // any other one past the largest.
        for i in 0..forwarding.rules.len() {
            if forwarding.rules[i].id == 0 {
                let seed = forwarding.rules[i]
                    .simple()
                    .map(|(c, _)| ForwardingRule::seed_id(c))
                    .filter(|id| forwarding.rules.iter().all(|r| r.id != *id));
                forwarding.rules[i].id = seed.unwrap_or_else(|| forwarding.next_id());
            }
        }
        Ok(forwarding)
    }
}

impl RuleDoc {
    fn of(rule: &ForwardingRule) -> Self {
        let (trigger, codes) = match &rule.trigger {
            Trigger::Response(codes) => ("response", codes.clone()),
            other => (trigger_name(other), Vec::new()),
        };
        let (action, steps) = match &rule.action {
            Action::Forward(steps) => ("forward", steps),
            Action::Redirect(steps) => ("redirect", steps),
        };
        Self {
            id: Some(rule.id),
            enabled: rule.enabled,
            trigger: trigger.to_owned(),
            codes,
            time: rule.time.clone(),
            callers: rule.callers.clone(),
            called: rule.called.clone(),
            action: action.to_owned(),
            steps: steps
                .iter()
                .map(|s| StepDoc {
                    targets: s.targets().iter().map(DiversionTarget::stored).collect(),
                    ring_seconds: s.ring_seconds(),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn rule(&self, field: &str, target: &TargetReader<'_>) -> Result<ForwardingRule, ServiceError> {
        let trigger_field = format!("{field}.trigger");
        let trigger = match self.trigger.as_str() {
            "response" => Trigger::response(&format!("{field}.codes"), &self.codes)?,
            name => {
                let trigger = TRIGGERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| {
                        ServiceError::invalid(
                            &trigger_field,
                            format!(
                                "'{}' is not a trigger (unconditional, busy, not_registered, \
                                 no_answer, not_available, response, after_first_fails)",
                                printable(name)
                            ),
                        )
                    })?;
                if !self.codes.is_empty() {
                    return Err(ServiceError::invalid(
                        format!("{field}.codes"),
                        format!("only a response trigger has codes, not {name}"),
                    ));
                }
                trigger
            }
        };
        let mut steps = Vec::with_capacity(self.steps.len());
        for (s, doc) in self.steps.iter().enumerate() {
            let step_field = format!("{field}.steps[{s}]");
            let mut targets = Vec::with_capacity(doc.targets.len());
            for (t, text) in doc.targets.iter().enumerate() {
                targets.push(target(&format!("{step_field}.targets[{t}]"), text)?);
            }
            steps.push(Step::new(&step_field, targets, doc.ring_seconds)?);
        }
        let action = match self.action.as_str() {
            "forward" => Action::Forward(steps),
            "redirect" => Action::Redirect(steps),
            other => {
                return Err(ServiceError::invalid(
                    format!("{field}.action"),
                    format!("'{}' is not forward or redirect", printable(other)),
                ));
            }
        };
        action.check(field)?;
        for (kind, name) in [
            ("time", &self.time),
            ("callers", &self.callers),
            ("called", &self.called),
        ] {
            if let Some(name) = name {
                check_set_name(&format!("{field}.{kind}"), name)?;
            }
        }
        Ok(ForwardingRule {
            id: self.id.unwrap_or(0),
            enabled: self.enabled,
            trigger,
            time: self.time.clone(),
            callers: self.callers.clone(),
            called: self.called.clone(),
            action,
        })
    }
}

/// The triggers by name, but `response` (which has codes).
const TRIGGERS: [(&str, Trigger); 6] = [
    ("unconditional", Trigger::Unconditional),
    ("busy", Trigger::Busy),
    ("not_registered", Trigger::NotRegistered),
    ("no_answer", Trigger::NoAnswer),
    ("not_available", Trigger::NotAvailable),
    ("after_first_fails", Trigger::AfterFirstFails),
];

fn trigger_name(trigger: &Trigger) -> &'static str {
    TRIGGERS
        .iter()
        .find(|(_, t)| t == trigger)
        .map_or("response", |(n, _)| n)
}

impl TimeSetDoc {
    fn of(set: &TimeSet) -> Self {
        Self {
            weekly: set
                .weekly()
                .iter()
                .map(|w| WeeklyDoc {
                    days: u32::from(w.days.value()),
                    start: w.start.to_string(),
                    stop: w.stop.to_string(),
                })
                .collect(),
            dates: set
                .dates()
                .iter()
                .map(|d| {
                    if d.first == d.last {
                        d.first.to_string()
                    } else {
                        format!("{}..{}", d.first, d.last)
                    }
                })
                .collect(),
            yearly: set
                .yearly()
                .iter()
                .map(|y| format!("{:02}-{:02}", y.month, y.day))
                .collect(),
        }
    }

    fn time_set(&self, field: &str) -> Result<TimeSet, ServiceError> {
        let mut weekly = Vec::with_capacity(self.weekly.len());
        for (i, w) in self.weekly.iter().enumerate() {
            let f = format!("{field}.weekly[{i}]");
            weekly.push(WeeklyRange {
                days: DaysMask::new(w.days).map_err(|e| e.renamed(&format!("{f}.days")))?,
                start: ClockTime::parse_for(&format!("{f}.start"), &w.start)?,
                stop: ClockTime::parse_for(&format!("{f}.stop"), &w.stop)?,
            });
        }
        let dates = self
            .dates
            .iter()
            .enumerate()
            .map(|(i, d)| DateRange::parse_for(&format!("{field}.dates[{i}]"), d))
            .collect::<Result<_, _>>()?;
        let yearly = self
            .yearly
            .iter()
            .enumerate()
            .map(|(i, y)| YearlyDate::parse_for(&format!("{field}.yearly[{i}]"), y))
            .collect::<Result<_, _>>()?;
        TimeSet::new(weekly, dates, yearly).map_err(|e| e.renamed(field))
    }
}

impl CallerSetDoc {
    fn of(set: &CallerSet) -> Self {
        Self {
            mode: match set.mode() {
                Mode::Allow => "allow",
                Mode::Deny => "deny",
            }
            .to_owned(),
            members: set.members().iter().map(CallerMember::text).collect(),
        }
    }

    fn caller_set(&self, field: &str) -> Result<CallerSet, ServiceError> {
        let mode = match self.mode.as_str() {
            "allow" => Mode::Allow,
            "deny" => Mode::Deny,
            other => {
                return Err(ServiceError::invalid(
                    format!("{field}.mode"),
                    format!("'{}' is not allow or deny", printable(other)),
                ));
            }
        };
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| CallerMember::parse(&format!("{field}.members[{i}]"), m))
            .collect::<Result<_, _>>()?;
        CallerSet::new(field, mode, members)
    }
}

#[cfg(test)]
mod tests;
