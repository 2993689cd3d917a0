//! The Rules tab's forms: a rule saved (new or changed), moved, turned on or off, removed; a
//! time, caller or called set saved or removed. Each reads the account's forwarding while
//! holding the account, changes its document and writes it back through
//! `Services::set_forwarding` — checked whole, as `/v1/me/forwarding-rules` is.

use sip_settings_core::ServiceError;
use sip_settings_core::forwarding::{
    CalledSetDoc, CallerSetDoc, Document, RuleDoc, StepDoc, TimeSetDoc, WeeklyDoc,
};

use super::{Outcome, Submission};
use crate::web::pages::{
    DAYS, DEFAULT_RING, MAX_STEPS, Tab, rule_form_field, step_names, weekly_name,
};

/// Words and numbers separated by commas, semicolons, spaces or new lines.
fn words(text: &str) -> Vec<String> {
    text.split([',', ';', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The rule form's words for a refused field of the rule at `index`
/// (`rules[3].steps[1].targets[0]` → "Step 2, destination 1").
fn rule_field_label(field: &str, index: usize) -> String {
    let Some(rest) = field.strip_prefix(&format!("rules[{index}]")) else {
        return match field
            .strip_prefix("rules[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)))
        {
            Some((n, rest)) => format!("Rule {} ({})", n + 1, rest.trim_start_matches('.')),
            None => field.to_owned(),
        };
    };
    let rest = rest.trim_start_matches('.');
    let number = |s: &str| {
        s.parse::<usize>()
            .map_or_else(|_| s.to_owned(), |n| (n + 1).to_string())
    };
    if let Some(step) = rest.strip_prefix("steps[") {
        let (k, tail) = step.split_once(']').unwrap_or((step, ""));
        if let Some(t) = tail.strip_prefix(".targets[") {
            let j = t.trim_end_matches(']');
            return format!("Step {}, destination {}", number(k), number(j));
        }
        if tail.starts_with(".ring_seconds") {
            return format!("Step {}'s ring time", number(k));
        }
        return format!("Step {}", number(k));
    }
    match rest.split(['.', '[']).next().unwrap_or_default() {
        "" => "This rule".to_owned(),
        "steps" => "Destinations".to_owned(),
        "codes" => "Response codes".to_owned(),
        "trigger" => "When".to_owned(),
        "time" => "Time".to_owned(),
        "callers" => "Callers".to_owned(),
        "called" => "Number dialled".to_owned(),
        _ => rest.to_owned(),
    }
}

/// Where a refusal of the whole check (`rules[3].steps[1].targets[0]`) of the rule at `index`
/// goes on the rule form: its words there ("Step 2, destination 1") and the form's field it is
/// shown next to (`s1_targets`; the form's top for a field it has no place for).
fn rule_refusal(field: &str, index: usize) -> (String, String) {
    (
        rule_field_label(field, index),
        rule_form_field(field, index).unwrap_or_else(|| "rule".to_owned()),
    )
}

impl Submission<'_> {
    /// Changes the account's forwarding document with `change` and writes it, holding the
    /// account from the read to the commit. The done text is `change`'s, with the warnings of
    /// rules that can never apply.
    async fn change_rules(
        &self,
        change: impl FnOnce(&mut Document) -> Result<String, ServiceError>,
    ) -> Result<String, ServiceError> {
        let id = &self.account.id;
        let held = self.svc.hold(id).await?;
        let current = held.forwarding(id).await?;
        let mut doc = current.document();
        let mut text = change(&mut doc)?;
        let new = doc.forwarding_of(id)?;
        let warnings = held.set_forwarding(id, new).await?;
        held.commit().await?;
        for (at, warning) in warnings {
            text.push_str(&format!(". Rule {} can never apply: {warning}", at + 1));
        }
        Ok(text)
    }

    /// The rule of the rule form.
    fn posted_rule(&self, id: Option<u32>) -> Result<RuleDoc, ServiceError> {
        let trigger = self.get("trigger").to_owned();
        let codes = if trigger == "response" {
            words(self.get("codes"))
                .iter()
                .map(|c| {
                    c.parse::<u16>().map_err(|_| {
                        ServiceError::invalid(
                            "codes",
                            format!(
                                "'{}' is not a response code (400 to 699)",
                                sip_settings_core::ids::printable(c)
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let mut steps = Vec::new();
        for k in 0..MAX_STEPS {
            let (t_name, r_name) = step_names(k);
            let targets: Vec<String> = self
                .get(&t_name)
                .split([',', ';', '\n'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            if targets.is_empty() {
                continue;
            }
            let ring = match self.get(&r_name).trim() {
                "" => DEFAULT_RING,
                r => r.parse::<u32>().map_err(|_| {
                    ServiceError::invalid(
                        r_name.as_str(),
                        "ring time must be a whole number of seconds from 5 to 300",
                    )
                })?,
            };
            steps.push(StepDoc {
                targets,
                ring_seconds: ring,
            });
        }
        if steps.is_empty() {
            return Err(ServiceError::invalid(
                "s0_targets",
                "needs a destination: a rule forwards somewhere",
            ));
        }
        let set = |name: &str| Some(self.get(name).to_owned()).filter(|s| !s.is_empty());
        Ok(RuleDoc {
            id,
            enabled: self.checked("enabled"),
            trigger,
            codes,
            time: set("time"),
            callers: set("callers"),
            called: set("called"),
            action: if self.checked("redirect") {
                "redirect".to_owned()
            } else {
                "forward".to_owned()
            },
            steps,
            warnings: Vec::new(),
        })
    }

    /// The rule id a form names.
    fn rule_id(&self) -> Result<u32, ServiceError> {
        self.get("id")
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ServiceError::invalid("id", "is not a rule id"))
    }

    /// Saves the rule form: a new rule (first or last), or the rule `id` changed in place.
    pub(super) async fn rule_save(&self) -> Outcome {
        let editing = Some(self.get("id")).filter(|i| !i.is_empty());
        let mut index = 0;
        let r = async {
            let id = editing.map(|_| self.rule_id()).transpose()?;
            let rule = self.posted_rule(id)?;
            self.change_rules(|doc| match id {
                Some(id) => {
                    index = position(doc, id)?;
                    if let Some(slot) = doc.rules.get_mut(index) {
                        *slot = rule;
                    }
                    Ok(format!("Rule {} saved", index + 1))
                }
                None if self.get("position") == "first" => {
                    doc.rules.insert(0, rule);
                    Ok("Rule added as the first".to_owned())
                }
                None => {
                    index = doc.rules.len();
                    doc.rules.push(rule);
                    Ok(format!("Rule {} added", index + 1))
                }
            })
            .await
        }
        .await;
        // A refusal from the whole check names the rule by its place: shown in the form's
        // words, next to the form's field it is about.
        let mut form_field = None;
        let r = r.map_err(|e| match e {
            ServiceError::Invalid { field, reason } if field.starts_with("rules[") => {
                let (label, on) = rule_refusal(&field, index);
                form_field = Some(on);
                ServiceError::invalid(label, reason)
            }
            other => other,
        });
        match self.finish(Tab::Rules, "rule", "rule", r) {
            Outcome::Refused(tab, mut refusal, status) => {
                if form_field.is_some() {
                    refusal.field = form_field;
                }
                Outcome::Refused(tab, refusal, status)
            }
            other => other,
        }
    }

    /// A change of the rule the form names (`id`), at its place in the list.
    async fn on_rule(
        &self,
        form: &'static str,
        change: impl FnOnce(&mut Document, usize) -> Result<String, ServiceError>,
    ) -> Outcome {
        let r = async {
            let id = self.rule_id()?;
            self.change_rules(|doc| {
                let at = position(doc, id)?;
                change(doc, at)
            })
            .await
        }
        .await;
        self.finish(Tab::Rules, form, "id", r)
    }

    /// Moves the rule `id` one place up or down.
    pub(super) async fn rule_move(&self) -> Outcome {
        let up = self.get("to");
        self.on_rule("rule-move", |doc, at| {
            let to = match up {
                "up" => at.checked_sub(1),
                "down" => Some(at + 1).filter(|t| *t < doc.rules.len()),
                _ => return Err(ServiceError::invalid("to", "must be up or down")),
            };
            let to =
                to.ok_or_else(|| ServiceError::invalid("to", "the rule is already at that end"))?;
            doc.rules.swap(at, to);
            Ok(format!("Rule moved to place {}", to + 1))
        })
        .await
    }

    /// Turns the rule `id` off, or on again.
    pub(super) async fn rule_toggle(&self) -> Outcome {
        self.on_rule("rule-toggle", |doc, at| {
            let rule = doc
                .rules
                .get_mut(at)
                .ok_or_else(|| ServiceError::NotFound(format!("no rule at {}", at + 1)))?;
            rule.enabled = !rule.enabled;
            Ok(format!(
                "Rule {} turned {}",
                at + 1,
                if rule.enabled { "on" } else { "off" }
            ))
        })
        .await
    }

    /// Removes the rule `id`.
    pub(super) async fn rule_remove(&self) -> Outcome {
        self.on_rule("rule-remove", |doc, at| {
            doc.rules.remove(at);
            Ok(format!("Rule {} removed", at + 1))
        })
        .await
    }

    /// Saves the time-set form (its weekly windows, dates and yearly dates) under its name.
    pub(super) async fn time_set_save(&self) -> Outcome {
        let r = async {
            let name = self.get("name").trim().to_owned();
            let mut weekly = Vec::new();
            for k in 0..MAX_STEPS {
                let days: u32 = DAYS
                    .iter()
                    .enumerate()
                    .filter(|(_, (day, _))| self.checked(&weekly_name(k, day)))
                    .map(|(bit, _)| 1u32 << bit)
                    .sum();
                if days == 0 {
                    continue;
                }
                let time = |f: &str| {
                    let v = self.get(&weekly_name(k, f)).trim();
                    if v.is_empty() {
                        Err(ServiceError::invalid(
                            format!("Weekly window {}", k + 1),
                            format!(
                                "needs a time “{}”",
                                if f == "start" { "From" } else { "To" }
                            ),
                        ))
                    } else {
                        Ok(v.to_owned())
                    }
                };
                weekly.push(WeeklyDoc {
                    days,
                    start: time("start")?,
                    stop: time("stop")?,
                });
            }
            let set = TimeSetDoc {
                weekly,
                dates: words(self.get("dates")),
                yearly: words(self.get("yearly")),
            };
            if set.weekly.is_empty() && set.dates.is_empty() && set.yearly.is_empty() {
                return Err(ServiceError::invalid(
                    "Times",
                    "need a weekly window (tick its days), a date or a yearly date",
                ));
            }
            self.change_rules(|doc| {
                doc.time_sets.insert(name.clone(), set);
                Ok(format!("Times “{name}” saved"))
            })
            .await
        }
        .await;
        self.set_outcome("time-set", r)
    }

    /// Saves the caller-set form under its name.
    pub(super) async fn caller_set_save(&self) -> Outcome {
        let r = async {
            let name = self.get("name").trim().to_owned();
            let set = CallerSetDoc {
                mode: self.get("mode").to_owned(),
                members: words(self.get("members")),
            };
            self.change_rules(|doc| {
                doc.caller_sets.insert(name.clone(), set);
                Ok(format!("Callers “{name}” saved"))
            })
            .await
        }
        .await;
        self.set_outcome("caller-set", r)
    }

    /// Saves the called-set form (the own addresses ticked) under its name.
    pub(super) async fn called_set_save(&self) -> Outcome {
        let r = async {
            let name = self.get("name").trim().to_owned();
            let own = self.svc.own_addresses(&self.account.id).await?;
            let addresses: Vec<String> = own
                .into_iter()
                .filter(|a| self.checked(&format!("a_{a}")))
                .collect();
            if addresses.is_empty() {
                return Err(ServiceError::invalid(
                    "Numbers dialled",
                    "need at least one of your addresses or numbers ticked",
                ));
            }
            self.change_rules(|doc| {
                doc.called_sets
                    .insert(name.clone(), CalledSetDoc { addresses });
                Ok(format!("Numbers “{name}” saved"))
            })
            .await
        }
        .await;
        self.set_outcome("called-set", r)
    }

    /// Removes the set `kind` (`time`, `callers`, `called`) `name`; refused while a rule uses it.
    pub(super) async fn set_remove(&self) -> Outcome {
        let r = async {
            let name = self.get("name").to_owned();
            let kind = self.get("kind").to_owned();
            self.change_rules(|doc| {
                let removed = match kind.as_str() {
                    "time" => doc.time_sets.remove(&name).is_some(),
                    "callers" => doc.caller_sets.remove(&name).is_some(),
                    "called" => doc.called_sets.remove(&name).is_some(),
                    _ => {
                        return Err(ServiceError::invalid(
                            "kind",
                            "must be time, callers or called",
                        ));
                    }
                };
                if !removed {
                    return Err(ServiceError::NotFound(format!("no set “{name}”")));
                }
                Ok(format!("Set “{name}” removed"))
            })
            .await
        }
        .await;
        self.finish(Tab::Rules, "set-remove", "name", r)
    }

    /// A set form's outcome: a refusal shows at the top of its form (the message names the
    /// set's field), the callers' members next to their box.
    fn set_outcome(&self, form: &'static str, r: Result<String, ServiceError>) -> Outcome {
        match self.finish(Tab::Rules, form, "set", r) {
            Outcome::Refused(tab, mut refusal, status) => {
                let members = refusal
                    .field
                    .as_deref()
                    .is_some_and(|f| f.contains(".members"));
                let name = refusal.field.as_deref() == Some("name");
                refusal.field = Some(
                    if members {
                        "members"
                    } else if name {
                        "name"
                    } else {
                        "set"
                    }
                    .to_owned(),
                );
                Outcome::Refused(tab, refusal, status)
            }
            other => other,
        }
    }
}

/// The place of rule `id` in the list.
fn position(doc: &Document, id: u32) -> Result<usize, ServiceError> {
    doc.rules
        .iter()
        .position(|r| r.id == Some(id))
        .ok_or_else(|| ServiceError::NotFound(format!("no rule {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_fields_read_as_the_form_says_them_and_land_on_its_fields() {
        for (field, label, web) in [
            (
                "rules[2].steps[1].targets[0]",
                "Step 2, destination 1",
                "s1_targets",
            ),
            (
                "rules[2].steps[0].ring_seconds",
                "Step 1's ring time",
                "s0_ring",
            ),
            ("rules[2].codes[0]", "Response codes", "codes"),
            ("rules[2].time", "Time", "time"),
            ("rules[2]", "This rule", "rule"),
            (
                "rules[0].steps[0].targets[0]",
                "Rule 1 (steps[0].targets[0])",
                "rule",
            ),
        ] {
            assert_eq!(
                rule_refusal(field, 2),
                (label.to_owned(), web.to_owned()),
                "{field}"
            );
        }
        assert_eq!(words("408, 480 503\n"), ["408", "480", "503"]);
    }
}
