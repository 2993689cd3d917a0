//! The forwarding rules of [`Services`] (issue 19): an account's rules and sets, read and
//! replaced whole after checking everything — the references between rules and sets, the
//! bounds, and every destination as the seed's conditions' are checked (voicemail enabled, a
//! mobile number known, not the account itself, no loop through local accounts' rules).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::forwarding::{Forwarding, check_references, targets};
use crate::write::Writing;

/// A warning about one rule of a checked forwarding: the rule's index and what is wrong
/// (a rule that can never apply).
pub type RuleWarning = (usize, String);

impl Services {
    /// The account's forwarding rules and the sets they name.
    pub async fn forwarding(&self, id: &AccountId) -> Result<Arc<Forwarding>, ServiceError> {
        self.require_account(id).await?;
        Ok(self.store().get_forwarding(id).await?)
    }

    /// The forwarding rules of an account known to exist (no account lookup: for the hot seed
    /// view, which has read the account already).
    pub async fn forwarding_of(&self, id: &AccountId) -> Result<Arc<Forwarding>, ServiceError> {
        Ok(self.store().get_forwarding(id).await?)
    }

    /// The own addresses a called set may list: the account's user part, its aliases' user
    /// parts and its ENUM numbers.
    pub async fn own_addresses(&self, id: &AccountId) -> Result<Vec<String>, ServiceError> {
        let mut own = vec![id.user().as_str().to_ascii_lowercase()];
        for alias in self.aliases(id).await? {
            own.push(alias.user().as_str().to_ascii_lowercase());
        }
        for number in self.enum_numbers(id).await? {
            own.push(number.as_str().to_owned());
        }
        Ok(own)
    }

    /// Checks a forwarding for `id` and returns its warnings. Refusals name the rule and the
    /// field (`rules[1].steps[0].targets[2]`); a loop is shown as its chain.
    pub async fn check_forwarding(
        &self,
        id: &AccountId,
        forwarding: &Forwarding,
    ) -> Result<Vec<RuleWarning>, ServiceError> {
        let account = self.require_account(id).await?;
        let own = self.own_addresses(id).await?;
        let warnings = check_references(&forwarding.rules, &forwarding.sets, &own)?;
        let voicemail_enabled = self
            .store()
            .get_voicemail(id)
            .await?
            .is_some_and(|v| v.enabled);
        for (field, target) in targets(&forwarding.rules) {
            match target {
                DiversionTarget::VoiceMailbox if !voicemail_enabled => {
                    return Err(ServiceError::invalid(
                        field,
                        "is <voice-mailbox> but voicemail is not enabled for this account",
                    ));
                }
                DiversionTarget::MobileNumber if account.profile.mobile.is_none() => {
                    return Err(ServiceError::invalid(
                        field,
                        "is <mobile-number> but the account has no mobile number",
                    ));
                }
                _ => {}
            }
            if let Some(reached) = self.target_account(id, target).await? {
                if &reached == id {
                    return Err(ServiceError::invalid(
                        field,
                        format!(
                            "'{}' is this account itself; it cannot forward to itself",
                            target.shown()
                        ),
                    ));
                }
                if let Some(chain) = self.find_loop(id, &reached).await? {
                    let shown: Vec<String> = chain.iter().map(ToString::to_string).collect();
                    return Err(ServiceError::invalid(
                        field,
                        format!("would forward in a loop: {}", shown.join(" → ")),
                    ));
                }
            }
        }
        Ok(warnings)
    }

    /// Replaces the account's forwarding rules and sets, holding the account's lock from the
    /// check to the commit: checked first ([`Services::check_forwarding`]), then written with
    /// a journal entry per rule and per set that changed (old → new, as JSON) and one for the
    /// order. Returns the warnings.
    pub async fn set_forwarding(
        &self,
        id: &AccountId,
        forwarding: Forwarding,
    ) -> Result<Vec<RuleWarning>, ServiceError> {
        let mut w = self.begin(id).await?;
        let warnings = self.check_forwarding(id, &forwarding).await?;
        let old = self.store().get_forwarding(id).await?;
        if *old == forwarding {
            return Ok(warnings);
        }
        journal_forwarding(&mut w, &old, &forwarding);
        w.apply(AccountOp::SetForwarding(Arc::new(forwarding)))
            .await?;
        w.commit().await?;
        Ok(warnings)
    }
}

/// The journal entries of a change of forwarding: per rule (by id) and per set (by kind and
/// name) whose JSON changed, and the order of the rules when it changed.
fn journal_forwarding(w: &mut Writing<'_>, old: &Forwarding, new: &Forwarding) {
    let (before, after) = (old.document(), new.document());
    let rule_of = |doc: &crate::forwarding::Document, id: u32| {
        doc.rules.iter().find(|r| r.id == Some(id)).map(json_text)
    };
    let ids: BTreeSet<u32> = old.rules.iter().chain(&new.rules).map(|r| r.id).collect();
    for id in ids {
        let (was, now) = (rule_of(&before, id), rule_of(&after, id));
        if was != now {
            w.journal(&format!("forwarding.rules.{id}"), was, now);
        }
    }
    let order = |f: &Forwarding| -> Vec<u32> { f.rules.iter().map(|r| r.id).collect() };
    let kept = |f: &Forwarding, other: &Forwarding| -> Vec<u32> {
        order(f)
            .into_iter()
            .filter(|id| other.rules.iter().any(|r| r.id == *id))
            .collect()
    };
    if kept(old, new) != kept(new, old) {
        let ids = |f: &Forwarding| {
            order(f)
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        w.journal("forwarding.order", Some(ids(old)), Some(ids(new)));
    }
    journal_sets(w, "time_sets", &before.time_sets, &after.time_sets);
    journal_sets(w, "caller_sets", &before.caller_sets, &after.caller_sets);
    journal_sets(w, "called_sets", &before.called_sets, &after.called_sets);
}

/// The journal entries of the sets of one kind that changed.
fn journal_sets<T: serde::Serialize + PartialEq>(
    w: &mut Writing<'_>,
    kind: &str,
    before: &std::collections::BTreeMap<String, T>,
    after: &std::collections::BTreeMap<String, T>,
) {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (was, now) = (before.get(name), after.get(name));
        if was != now {
            w.journal(
                &format!("forwarding.{kind}.{name}"),
                was.map(json_text),
                now.map(json_text),
            );
        }
    }
}

/// A part of a forwarding document as JSON text, for the journal (plain structs of strings,
/// numbers and maps with string keys: serialising cannot fail).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
