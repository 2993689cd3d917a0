//! The settings rules of [`Services`]: aliases and ENUM numbers (in `addresses`), forwarding
//! (with its target checks and loop detection), accept rules and DND, privacy, reject rules,
//! voicemail and the phonebook. Each function validates everything before it writes, and writes
//! in one store call.

use std::collections::HashSet;

use chrono::Duration;

use crate::error::{ServiceError, StoreError};
use crate::ids::{AccountId, Domain, E164, Email, UserPart, printable};
use crate::routing::{CallState, Decision, Detail, RoutingSettings, route_with};
use crate::service::Services;
use crate::settings::{
    AcceptRule, AcceptRules, DaysMask, Diversions, Group, PhonebookEntry, RejectPattern,
    TemporaryRule, Voicemail, VoicemailDelivery, hash_pin,
};
use crate::sip::{Condition, DiversionTarget, SipUri};
use crate::store::{AccountOp, AliasOutcome, Applied};

mod addresses;
mod forwarding_rules;

pub use forwarding_rules::RuleWarning;

/// Longest DND, in minutes (one week).
pub const MAX_DND_MINUTES: i64 = 10_080;

/// How far a forwarding chain is followed when looking for a loop.
const MAX_CHAIN: usize = 32;

fn duration_error() -> ServiceError {
    ServiceError::invalid(
        "duration",
        format!("must be a whole number of minutes between 1 and {MAX_DND_MINUTES}"),
    )
}

/// Parses the `duration` of `dnd_on`: digits only (no sign, no spaces).
pub fn parse_dnd_duration(input: &str) -> Result<i64, ServiceError> {
    let n: i64 = crate::ids::whole_number(input).ok_or_else(duration_error)?;
    if (1..=MAX_DND_MINUTES).contains(&n) {
        Ok(n)
    } else {
        Err(duration_error())
    }
}

impl Services {
    async fn require_account(&self, id: &AccountId) -> Result<crate::Account, ServiceError> {
        self.account(id).await
    }

    // ----- forwarding -----

    /// The account's forwarding.
    pub async fn diversions(&self, id: &AccountId) -> Result<Diversions, ServiceError> {
        Ok(self.store().get_diversions(id).await?)
    }

    /// The local account a SIP URI reaches (through an account, an alias or an ENUM number of a
    /// domain served here).
    pub async fn resolve_local(&self, uri: &SipUri) -> Result<Option<AccountId>, ServiceError> {
        let Some(user) = uri.user() else {
            return Ok(None);
        };
        let Ok(domain) = Domain::parse(uri.host()) else {
            return Ok(None);
        };
        if !self.store().domain_exists(&domain).await? {
            return Ok(None);
        }
        if user.starts_with('+') {
            return match E164::parse_for("number", user) {
                Ok(n) => Ok(self.store().resolve_enum(&n).await?),
                Err(_) => Ok(None),
            };
        }
        match UserPart::parse(user) {
            Ok(u) => Ok(self
                .store()
                .resolve_address(&AccountId::new(u, domain))
                .await?),
            Err(_) => Ok(None),
        }
    }

    /// The account a called address reaches: `text` is a Request-URI or what a proxy sends as
    /// the callee (a `sip:`/`sips:` URI with any parameters, `user@host`, a name-addr, or a
    /// `tel:` number, which resolves through the ENUM numbers). `None` when it is not a local
    /// account, alias or number; an error only when `text` is not an address at all.
    pub async fn resolve_callee(
        &self,
        field: &str,
        text: &str,
    ) -> Result<Option<AccountId>, ServiceError> {
        let t = text.trim();
        if let Some(number) = crate::sip::tel_number(t) {
            return match E164::parse_for(field, &number) {
                Ok(n) => Ok(self.store().resolve_enum(&n).await?),
                Err(_) => Ok(None),
            };
        }
        // A tel: number was handled above, so the domain given here is never used.
        let placeholder =
            Domain::parse("tel.invalid").map_err(|e| ServiceError::Internal(e.to_string()))?;
        let uri = crate::sip::parse_address(field, t, &placeholder)?;
        self.resolve_local(&uri).await
    }

    /// The account a target of `owner`'s forwarding reaches, if local.
    async fn target_account(
        &self,
        owner: &AccountId,
        target: &DiversionTarget,
    ) -> Result<Option<AccountId>, ServiceError> {
        match target {
            DiversionTarget::VoiceMailbox => Ok(None),
            DiversionTarget::Uri(uri) => self.resolve_local(uri).await,
            DiversionTarget::MobileNumber => {
                let Some(acc) = self.store().get_account(owner).await? else {
                    return Ok(None);
                };
                match acc.profile.mobile {
                    Some(m) => {
                        self.resolve_local(&SipUri::of_number(m.as_str(), owner.domain()))
                            .await
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// Follows forwarding from `start` through local accounts; the chain back to `own`, if any.
    async fn find_loop(
        &self,
        own: &AccountId,
        start: &AccountId,
    ) -> Result<Option<Vec<AccountId>>, ServiceError> {
        let mut visited: HashSet<AccountId> = HashSet::from([start.clone()]);
        let mut stack = vec![vec![own.clone(), start.clone()]];
        while let Some(chain) = stack.pop() {
            if chain.len() > MAX_CHAIN {
                continue;
            }
            let Some(current) = chain.last().cloned() else {
                continue;
            };
            let forwarding = self.store().get_forwarding(&current).await?;
            for (_, target) in crate::forwarding::targets(&forwarding.rules) {
                let Some(next) = self.target_account(&current, target).await? else {
                    continue;
                };
                if &next == own {
                    let mut looped = chain.clone();
                    looped.push(next);
                    return Ok(Some(looped));
                }
                if visited.insert(next.clone()) {
                    let mut longer = chain.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
        Ok(None)
    }

    /// `set_diversions`: `params` are the condition parameters present in the request (an
    /// empty value clears). Validates all, then writes the changed conditions in one
    /// transaction. Returns the success text.
    ///
    /// The most frequent write: it first runs without waiting for the account's lock in the
    /// store ([`Accounts::begin_account_optimistic`](crate::store::Accounts::begin_account_optimistic)),
    /// and again with it if another writer changed the account meanwhile.
    pub async fn set_diversions(
        &self,
        id: &AccountId,
        params: &[(Condition, String)],
    ) -> Result<String, ServiceError> {
        if params.is_empty() {
            self.require_account(id).await?;
            return Ok("Diversions remained the same".to_owned());
        }
        match self.set_diversions_as(id, params, true).await? {
            Some(done) => Ok(done),
            None => self
                .set_diversions_as(id, params, false)
                .await?
                .ok_or_else(|| {
                    ServiceError::Internal("a locked write of forwarding was stale".to_owned())
                }),
        }
    }

    /// [`Services::set_diversions`] once, `optimistic` or not: `None` if it was stale.
    async fn set_diversions_as(
        &self,
        id: &AccountId,
        params: &[(Condition, String)],
        optimistic: bool,
    ) -> Result<Option<String>, ServiceError> {
        let mut w = if optimistic {
            self.begin_optimistic(id).await?
        } else {
            self.begin(id).await?
        };
        let account = self.require_account(id).await?;
        let voicemail_enabled = self
            .store()
            .get_voicemail(id)
            .await?
            .is_some_and(|v| v.enabled);
        let mut parsed: Vec<(Condition, Option<DiversionTarget>)> = Vec::new();
        for (condition, raw) in params {
            if raw.trim().is_empty() {
                parsed.push((*condition, None));
                continue;
            }
            let target = DiversionTarget::parse(*condition, raw, id)?;
            match &target {
                DiversionTarget::VoiceMailbox if !voicemail_enabled => {
                    return Err(ServiceError::invalid(
                        condition.code(),
                        "is <voice-mailbox> but voicemail is not enabled for this account",
                    ));
                }
                DiversionTarget::MobileNumber if account.profile.mobile.is_none() => {
                    return Err(ServiceError::invalid(
                        condition.code(),
                        "is <mobile-number> but the account has no mobile number",
                    ));
                }
                _ => {}
            }
            if let Some(reached) = self.target_account(id, &target).await? {
                if &reached == id {
                    return Err(ServiceError::invalid(
                        condition.code(),
                        format!(
                            "'{}' is this account itself; it cannot forward to itself",
                            printable(raw.trim())
                        ),
                    ));
                }
                if let Some(chain) = self.find_loop(id, &reached).await? {
                    let shown: Vec<String> = chain.iter().map(ToString::to_string).collect();
                    return Err(ServiceError::invalid(
                        condition.code(),
                        format!("would forward in a loop: {}", shown.join(" → ")),
                    ));
                }
            }
            parsed.push((*condition, Some(target)));
        }
        let current = self.store().get_diversions(id).await?;
        let changed: Vec<(Condition, Option<DiversionTarget>)> = parsed
            .into_iter()
            .filter(|(c, t)| current.get(c) != t.as_ref())
            .collect();
        if changed.is_empty() {
            return Ok(Some("Diversions remained the same".to_owned()));
        }
        w.apply(AccountOp::SetDiversions(changed.clone())).await?;
        for (c, t) in &changed {
            w.journal(
                &format!("diversions.{c}"),
                current.get(c).map(DiversionTarget::shown),
                t.as_ref().map(DiversionTarget::shown),
            );
        }
        if !w.commit_unless_stale().await? {
            return Ok(None);
        }
        let described: Vec<String> = changed
            .iter()
            .map(|(c, t)| match t {
                Some(t) => format!("{c} set to {}", t.shown()),
                None => format!("{c} cleared"),
            })
            .collect();
        Ok(Some(format!(
            "Diversions updated: {}",
            described.join(", ")
        )))
    }

    // ----- accept rules, DND -----

    /// The account's accept rules.
    pub async fn accept_rules(&self, id: &AccountId) -> Result<AcceptRules, ServiceError> {
        Ok(self.store().get_accept_rules(id).await?)
    }

    /// Whether DND is in force now.
    pub async fn dnd_active(&self, id: &AccountId) -> Result<bool, ServiceError> {
        let now = self.clock().now();
        Ok(self
            .store()
            .get_temporary_rule(id)
            .await?
            .is_some_and(|t| t.active_at(now) && t.is_dnd()))
    }

    /// Adds or replaces a persistent accept rule (operator); true if it replaced one.
    pub async fn put_accept_rule(
        &self,
        id: &AccountId,
        rule: &AcceptRule,
    ) -> Result<bool, ServiceError> {
        let mut w = self.begin(id).await?;
        let before = self.store().get_accept_rules(id).await?;
        let old = before
            .persistent
            .iter()
            .find(|r| r.days == rule.days)
            .map(describe_rule);
        let replaced = w
            .apply(AccountOp::PutAcceptRule(rule.clone()))
            .await?
            .existed();
        w.journal(
            &format!("accept.{}", rule.days),
            old,
            Some(describe_rule(rule)),
        );
        w.commit().await?;
        Ok(replaced)
    }

    /// Removes a persistent accept rule (operator).
    pub async fn remove_accept_rule(
        &self,
        id: &AccountId,
        days: DaysMask,
    ) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        let before = self.store().get_accept_rules(id).await?;
        let old = before
            .persistent
            .iter()
            .find(|r| r.days == days)
            .map(describe_rule);
        if w.apply(AccountOp::RemoveAcceptRule(days)).await?.existed() {
            w.journal(&format!("accept.{days}"), old, None);
            w.commit().await
        } else {
            Err(ServiceError::NotFound(format!(
                "{id} has no accept rule for days {days}"
            )))
        }
    }

    /// `dnd_on`: accept nobody, for `duration` minutes or until `dnd_off`.
    pub async fn dnd_on(
        &self,
        id: &AccountId,
        duration: Option<&str>,
    ) -> Result<String, ServiceError> {
        let minutes = duration.map(parse_dnd_duration).transpose()?;
        let mut w = self.begin(id).await?;
        let now = self.clock().now();
        let until = minutes.map(|m| now + Duration::minutes(m));
        let before = self.store().get_accept_rules(id).await?;
        let old = before.active_temporary(now).map(describe_temporary);
        let new = TemporaryRule {
            groups: vec![Group::Nobody],
            until,
        };
        w.apply(AccountOp::SetTemporaryRule(Some(new.clone())))
            .await?;
        w.journal("dnd", old, Some(describe_temporary(&new)));
        w.commit().await?;
        Ok(match minutes {
            Some(m) => format!("Do Not Disturb is on for {m} minutes"),
            None => "Do Not Disturb is on".to_owned(),
        })
    }

    /// `dnd_off`: removes a DND (a temporary rule of other groups stays).
    pub async fn dnd_off(&self, id: &AccountId) -> Result<String, ServiceError> {
        let mut w = self.begin(id).await?;
        let rules = self.store().get_accept_rules(id).await?;
        let now = self.clock().now();
        let remove = rules
            .temporary
            .as_ref()
            .is_some_and(|t| t.is_dnd() || !t.active_at(now));
        if remove {
            w.apply(AccountOp::SetTemporaryRule(None)).await?;
            let old = rules.active_temporary(now).map(describe_temporary);
            w.journal("dnd", old, None);
            w.commit().await?;
        }
        Ok("Do Not Disturb is off".to_owned())
    }

    /// Sets the temporary rule (accept only `groups` until `until`, or until cleared). `until`
    /// must be in the future and at most a week ahead.
    pub async fn set_temporary_rule(
        &self,
        id: &AccountId,
        groups: Vec<Group>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<TemporaryRule, ServiceError> {
        let groups = Group::check_list(groups)?;
        let now = self.clock().now();
        if let Some(u) = until {
            if u <= now {
                return Err(ServiceError::invalid("until", "must be in the future"));
            }
            if u > now + Duration::minutes(MAX_DND_MINUTES) {
                return Err(ServiceError::invalid(
                    "until",
                    "must be at most one week ahead",
                ));
            }
        }
        let mut w = self.begin(id).await?;
        let before = self.store().get_accept_rules(id).await?;
        let old = before.active_temporary(now).map(describe_temporary);
        let rule = TemporaryRule { groups, until };
        w.apply(AccountOp::SetTemporaryRule(Some(rule.clone())))
            .await?;
        let resource = if rule.is_dnd() { "dnd" } else { "temporary" };
        w.journal(resource, old, Some(describe_temporary(&rule)));
        w.commit().await?;
        Ok(rule)
    }

    /// Removes the temporary rule, whatever its groups.
    pub async fn clear_temporary_rule(&self, id: &AccountId) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        let before = self.store().get_accept_rules(id).await?;
        let now = self.clock().now();
        if let Some(t) = before.temporary.as_ref() {
            w.apply(AccountOp::SetTemporaryRule(None)).await?;
            if t.active_at(now) {
                let resource = if t.is_dnd() { "dnd" } else { "temporary" };
                w.journal(resource, Some(describe_temporary(t)), None);
            }
            w.commit().await?;
        }
        Ok(())
    }

    /// Sets the no-answer timeout (5–900 s).
    pub async fn set_no_answer_timeout(
        &self,
        id: &AccountId,
        seconds: u32,
    ) -> Result<(), ServiceError> {
        let seconds = crate::account::check_no_answer_timeout(seconds)?;
        self.update_account(
            id,
            &crate::account::AccountUpdate {
                no_answer_timeout: Some(seconds),
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
    }

    /// The phonebook groups an account can name in rules, sorted.
    pub async fn phonebook_groups(&self, id: &AccountId) -> Result<Vec<String>, ServiceError> {
        let mut groups: Vec<String> = self
            .store()
            .list_phonebook(id)
            .await?
            .into_iter()
            .flat_map(|e| e.groups)
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    // ----- privacy -----

    /// `privacy_on` / `privacy_off` (idempotent).
    pub async fn set_privacy(&self, id: &AccountId, on: bool) -> Result<String, ServiceError> {
        let mut w = self.begin(id).await?;
        let before = self.require_account(id).await?.privacy;
        w.apply(AccountOp::SetPrivacy(on)).await?;
        w.journal("privacy", Some(before.to_string()), Some(on.to_string()));
        w.commit().await?;
        Ok(if on {
            "Privacy is on"
        } else {
            "Privacy is off"
        }
        .to_owned())
    }

    // ----- reject rules -----

    /// The account's reject patterns.
    pub async fn reject_patterns(
        &self,
        id: &AccountId,
    ) -> Result<Vec<RejectPattern>, ServiceError> {
        Ok(self.store().list_reject(id).await?)
    }

    /// Adds a reject pattern (operator).
    pub async fn add_reject(
        &self,
        id: &AccountId,
        pattern: &RejectPattern,
    ) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        w.apply(AccountOp::AddReject(pattern.clone()))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("{id} has reject rule {pattern} already"))
                }
                other => other.into(),
            })?;
        w.journal("reject", None, Some(pattern.to_string()));
        w.commit().await
    }

    /// Removes a reject pattern (operator).
    pub async fn remove_reject(
        &self,
        id: &AccountId,
        pattern: &RejectPattern,
    ) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        if w.apply(AccountOp::RemoveReject(pattern.clone()))
            .await?
            .existed()
        {
            w.journal("reject", Some(pattern.to_string()), None);
            w.commit().await
        } else {
            Err(ServiceError::NotFound(format!(
                "{id} has no reject rule {pattern}"
            )))
        }
    }

    // ----- voicemail -----

    /// The account's voice mailbox.
    pub async fn voicemail(&self, id: &AccountId) -> Result<Option<Voicemail>, ServiceError> {
        Ok(self.store().get_voicemail(id).await?)
    }

    /// Enables (creating if needed) the voice mailbox; unspecified fields keep their values.
    pub async fn enable_voicemail(
        &self,
        id: &AccountId,
        delivery: Option<VoicemailDelivery>,
        pin: Option<&str>,
        email: Option<Email>,
    ) -> Result<Voicemail, ServiceError> {
        let pin_hash = pin.map(hash_pin).transpose()?;
        let mut w = self.begin(id).await?;
        let existing = self.store().get_voicemail(id).await?;
        let existing_summary = existing.as_ref().map(describe_voicemail);
        let voicemail = Voicemail {
            enabled: true,
            delivery: delivery
                .or(existing.as_ref().map(|v| v.delivery))
                .unwrap_or(VoicemailDelivery::Email),
            email: email.or(existing.as_ref().and_then(|v| v.email.clone())),
            pin_hash: pin_hash.or(existing.and_then(|v| v.pin_hash)),
        };
        w.apply(AccountOp::PutVoicemail(voicemail.clone())).await?;
        w.journal(
            "voicemail",
            existing_summary,
            Some(describe_voicemail(&voicemail)),
        );
        if pin.is_some() {
            w.journal(
                "voicemail.pin",
                None,
                Some(crate::journal::CHANGED.to_owned()),
            );
        }
        w.commit().await?;
        Ok(voicemail)
    }

    /// Disables the voice mailbox (its settings are kept).
    pub async fn disable_voicemail(&self, id: &AccountId) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        let Some(mut v) = self.store().get_voicemail(id).await? else {
            return Err(ServiceError::NotFound(format!("{id} has no voice mailbox")));
        };
        let old = describe_voicemail(&v);
        v.enabled = false;
        w.apply(AccountOp::PutVoicemail(v.clone())).await?;
        w.journal("voicemail", Some(old), Some(describe_voicemail(&v)));
        w.commit().await
    }

    // ----- phonebook -----

    /// The account's phonebook.
    pub async fn phonebook(&self, id: &AccountId) -> Result<Vec<PhonebookEntry>, ServiceError> {
        Ok(self.store().list_phonebook(id).await?)
    }

    /// Adds or replaces a phonebook entry.
    pub async fn put_phonebook_entry(
        &self,
        id: &AccountId,
        entry: &PhonebookEntry,
    ) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        let old = self
            .store()
            .list_phonebook(id)
            .await?
            .into_iter()
            .find(|e| e.uri == entry.uri)
            .map(|e| describe_entry(&e));
        w.apply(AccountOp::PutPhonebookEntry(entry.clone())).await?;
        w.journal("phonebook", old, Some(describe_entry(entry)));
        w.commit().await
    }

    /// Removes a phonebook entry.
    pub async fn remove_phonebook_entry(
        &self,
        id: &AccountId,
        uri: &SipUri,
    ) -> Result<(), ServiceError> {
        let mut w = self.begin(id).await?;
        if w.apply(AccountOp::RemovePhonebookEntry(uri.clone()))
            .await?
            .existed()
        {
            w.journal("phonebook", Some(uri.to_string()), None);
            w.commit().await
        } else {
            Err(ServiceError::NotFound(format!(
                "{id} has no phonebook entry {uri}"
            )))
        }
    }

    // ----- routing -----

    /// What happens to a call to `id` (the core routing function over the stored settings),
    /// with the account it was decided for (its time zone, privacy and address: every door
    /// that routes a call shows or uses them, and this read is the one the decision used).
    pub async fn route_call(
        &self,
        id: &AccountId,
        call: &CallState,
    ) -> Result<(crate::Account, Decision), ServiceError> {
        self.route_call_with(id, call, Detail::Path).await
    }

    /// [`Services::route_call`] with the decision's path ([`Detail::Path`]) or without
    /// ([`Detail::Outcome`]: the SIP door, which never reads it; the same outcome, no text
    /// made).
    pub async fn route_call_with(
        &self,
        id: &AccountId,
        call: &CallState,
        detail: Detail,
    ) -> Result<(crate::Account, Decision), ServiceError> {
        let account = self.require_account(id).await?;
        let forwarding = self.store().get_forwarding(id).await?;
        let accept = self.store().get_accept_rules(id).await?;
        let reject = self.store().list_reject(id).await?;
        let phonebook = self.store().list_phonebook(id).await?;
        let voicemail_enabled = self
            .store()
            .get_voicemail(id)
            .await?
            .is_some_and(|v| v.enabled);
        let decision = route_with(
            &RoutingSettings {
                account: &account,
                forwarding: &forwarding,
                accept: &accept,
                reject: &reject,
                phonebook: &phonebook,
                voicemail_enabled,
            },
            call,
            detail,
        );
        Ok((account, decision))
    }
}

fn group_names(groups: &[Group]) -> String {
    groups.iter().map(Group::name).collect::<Vec<_>>().join(",")
}

fn describe_rule(r: &AcceptRule) -> String {
    format!("{}–{} {}", r.start, r.stop, group_names(&r.groups))
}

fn describe_temporary(t: &TemporaryRule) -> String {
    match t.until {
        Some(u) => format!(
            "{} until {}",
            group_names(&t.groups),
            u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => format!("{} until turned off", group_names(&t.groups)),
    }
}

fn describe_voicemail(v: &Voicemail) -> String {
    format!(
        "{} {}{}",
        if v.enabled { "enabled" } else { "disabled" },
        v.delivery.as_str(),
        v.email
            .as_ref()
            .map(|e| format!(" {e}"))
            .unwrap_or_default()
    )
}

fn describe_entry(e: &PhonebookEntry) -> String {
    format!("{} {} {}", e.uri, e.groups.join(","), e.name)
        .trim_end()
        .to_owned()
}
