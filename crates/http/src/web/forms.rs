//! The page's changes: one function per form, each calling the same `core` service function as
//! the APIs. A refusal carries the service's message and the field it names, so that the page
//! can show it next to that field with the user's input kept.

mod rules;

use axum::http::StatusCode;
use axum::response::Response;
use sip_settings_core::account::{Account, parse_name, parse_no_answer_timeout};
use sip_settings_core::cert::{CertSubject, P12Variant};
use sip_settings_core::settings::{
    AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, VoicemailDelivery,
    parse_contact_uri, parse_phonebook_groups,
};
use sip_settings_core::settings_service::parse_dnd_duration;
use sip_settings_core::sip::{Condition, MOBILE_NUMBER, VOICE_MAILBOX};
use sip_settings_core::{AccountId, Email, Password, Serial, ServiceError, Services};

use super::pages::{DAYS, Refusal, Tab};
use crate::params::Params;
use crate::status::{Code, classify};

/// What a form did.
#[derive(Debug)]
pub enum Outcome {
    /// Done: back to the tab with this message.
    Done(Tab, String),
    /// Refused: the tab again, with the refusal, answered with `status`.
    Refused(Tab, Refusal, StatusCode),
    /// Refused for too many failed password attempts: the tab again with the refusal,
    /// answered `429` with `Retry-After` of these seconds.
    Throttled(Tab, Refusal, u64),
    /// A file to download.
    File(Response),
    /// A failure that is no refusal (database unavailable, internal error).
    Failed(ServiceError),
    /// No such form.
    NotFound,
}

/// One submitted form.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The services, acting for the session with the web page's journal origin.
    pub svc: &'a Services,
    /// The logged-in account.
    pub account: &'a Account,
    /// The form's fields.
    pub params: &'a Params,
    /// The browser's `User-Agent`, which names a certificate downloaded without a name.
    pub user_agent: Option<&'a str>,
}

/// What the page says to a throttled password check: `what`, capitalised, and the wait in
/// minutes ("in a moment" when all password checks were busy).
pub fn throttled_text(what: &str, wait_seconds: u64) -> String {
    let mut chars = what.chars();
    let what: String = chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect());
    if what.eq_ignore_ascii_case(sip_settings_core::throttle::BUSY) {
        return format!("{what}, try again in a moment");
    }
    let minutes = wait_seconds.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("{what}, try again in {minutes} {unit}")
}

/// The status a refusal is answered with ([`classify`]'s), or `None` when the error is no
/// refusal (a 5xx, or a throttled check, which has its own answer).
fn refusal_status(e: &ServiceError) -> Option<StatusCode> {
    let c = classify(e);
    match c.code {
        Code::InvalidField
        | Code::NotFound
        | Code::Conflict
        | Code::Unauthenticated
        | Code::Forbidden => Some(c.status()),
        Code::RateLimited | Code::Unavailable | Code::Internal => None,
    }
}

impl Submission<'_> {
    fn get(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or_default()
    }

    fn checked(&self, name: &str) -> bool {
        self.params.get(name).is_some_and(|v| !v.is_empty())
    }

    /// Maps a result: `Ok(text)` is done; a refusal names its field (or `default_field`).
    fn finish(
        &self,
        tab: Tab,
        form: &'static str,
        default_field: &str,
        result: Result<String, ServiceError>,
    ) -> Outcome {
        match result {
            Ok(text) => Outcome::Done(tab, text),
            Err(ServiceError::Throttled { what, wait_seconds }) => Outcome::Throttled(
                tab,
                Refusal {
                    form,
                    field: Some(default_field.to_owned()),
                    message: throttled_text(&what, wait_seconds),
                    values: self.params.clone(),
                },
                wait_seconds,
            ),
            Err(e) => match refusal_status(&e) {
                Some(status) => {
                    let field = e.field().unwrap_or(default_field).to_owned();
                    let message = classify(&e).detail.into_owned();
                    Outcome::Refused(
                        tab,
                        Refusal {
                            form,
                            field: Some(field),
                            message,
                            values: self.params.clone(),
                        },
                        status,
                    )
                }
                None => Outcome::Failed(e),
            },
        }
    }

    /// Runs the form posted to `path`.
    pub async fn run(&self, path: &str) -> Outcome {
        let id = &self.account.id;
        match path {
            "/web/certificates/crt" => self.crt().await,
            "/web/certificates/p12" => self.p12().await,
            "/web/certificates/revoke" => {
                let r = async {
                    let serial = Serial::parse(self.get("serial"))?;
                    self.svc.revoke_own_certificate(id, &serial).await?;
                    Ok(format!(
                        "Certificate {serial} revoked: it no longer works for the API"
                    ))
                }
                .await;
                self.finish(Tab::Info, "revoke", "serial", r)
            }
            "/web/certificates/revoke-older" => self.revoke_older().await,
            "/web/certificates/name" => self.rename_certificate().await,
            "/web/forwarding" => self.forwarding().await,
            "/web/rules/save" => self.rule_save().await,
            "/web/rules/move" => self.rule_move().await,
            "/web/rules/toggle" => self.rule_toggle().await,
            "/web/rules/remove" => self.rule_remove().await,
            "/web/rules/sets/time" => self.time_set_save().await,
            "/web/rules/sets/callers" => self.caller_set_save().await,
            "/web/rules/sets/called" => self.called_set_save().await,
            "/web/rules/sets/remove" => self.set_remove().await,
            "/web/dnd/on" => {
                let duration = self.get("duration").trim();
                let r = self
                    .svc
                    .dnd_on(id, (!duration.is_empty()).then_some(duration))
                    .await;
                self.finish(Tab::Accept, "dnd", "duration", r)
            }
            "/web/dnd/off" => {
                let r = self.svc.dnd_off(id).await;
                self.finish(Tab::Accept, "dnd-off", "duration", r)
            }
            "/web/accept/temporary" => self.temporary().await,
            "/web/accept/temporary/clear" => {
                let r = self
                    .svc
                    .clear_temporary_rule(id)
                    .await
                    .map(|()| "Temporary rule removed".to_owned());
                self.finish(Tab::Accept, "temp-clear", "groups", r)
            }
            "/web/accept/rule" => self.accept_rule().await,
            "/web/accept/rule/remove" => {
                let r = async {
                    let days = DaysMask::parse(self.get("days"))?;
                    self.svc.remove_accept_rule(id, days).await?;
                    Ok(format!(
                        "Rule for {} removed",
                        super::pages::days_label(days)
                    ))
                }
                .await;
                self.finish(Tab::Accept, "rule-remove", "days", r)
            }
            "/web/reject/add" => {
                let r = async {
                    let pattern = RejectPattern::parse(self.get("pattern"))?;
                    self.svc.add_reject(id, &pattern).await?;
                    Ok(format!("Reject rule {pattern} added"))
                }
                .await;
                self.finish(Tab::Reject, "reject", "pattern", r)
            }
            "/web/reject/remove" => {
                let r = async {
                    let pattern = RejectPattern::parse(self.get("pattern"))?;
                    self.svc.remove_reject(id, &pattern).await?;
                    Ok(format!("Reject rule {pattern} removed"))
                }
                .await;
                self.finish(Tab::Reject, "reject-remove", "pattern", r)
            }
            "/web/privacy" => {
                let r = match self.get("privacy") {
                    "on" => self.svc.set_privacy(id, true).await,
                    "off" => self.svc.set_privacy(id, false).await,
                    _ => Err(ServiceError::invalid("privacy", "must be on or off")),
                };
                self.finish(Tab::Privacy, "privacy", "privacy", r)
            }
            "/web/aliases/add" => {
                let r = self
                    .svc
                    .add_own_alias(id, self.get("username"))
                    .await
                    .map(|a| format!("Alias {a} added"));
                self.finish(Tab::Aliases, "alias", "username", r)
            }
            "/web/aliases/remove" => {
                let r = async {
                    let alias = AccountId::parse_for("alias", self.get("alias"))?;
                    self.svc.remove_own_alias(id, &alias).await?;
                    Ok(format!("Alias {alias} removed"))
                }
                .await;
                self.finish(Tab::Aliases, "alias-remove", "alias", r)
            }
            "/web/voicemail/enable" => self.voicemail_enable().await,
            "/web/voicemail/disable" => {
                let r = self
                    .svc
                    .disable_voicemail(id)
                    .await
                    .map(|()| "Voicemail is off".to_owned());
                self.finish(Tab::Voicemail, "voicemail-off", "delivery", r)
            }
            "/web/phonebook/put" => self.phonebook_put().await,
            "/web/phonebook/remove" => {
                let r = async {
                    let uri = parse_contact_uri(self.get("uri"))?;
                    self.svc.remove_phonebook_entry(id, &uri).await?;
                    Ok(format!("Contact {uri} removed"))
                }
                .await;
                self.finish(Tab::Phonebook, "phonebook-remove", "uri", r)
            }
            _ => Outcome::NotFound,
        }
    }

    /// Revokes every valid certificate of the account but the newest.
    async fn revoke_older(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let now = self.svc.clock().now();
            let records = self.svc.list_certificates(Some(id)).await?;
            let older = super::pages::older_valid(&records, now);
            if older.is_empty() {
                return Err(ServiceError::invalid(
                    "certificates",
                    "no valid certificate is older than your newest",
                ));
            }
            // One revocation (and journal entry) each: stopped at the first refusal,
            // which says how many were revoked before it.
            for (done, c) in older.iter().enumerate() {
                if let Err(e) = self.svc.revoke_own_certificate(id, &c.serial).await {
                    tracing::warn!(account = %id, done, "revoking older certificates stopped: {e}");
                    return Err(e);
                }
            }
            Ok(match older.len() {
                1 => "1 older certificate revoked: only your newest is valid".to_owned(),
                n => format!("{n} older certificates revoked: only your newest is valid"),
            })
        }
        .await;
        self.finish(Tab::Info, "revoke-older", "certificates", r)
    }

    /// Turns voicemail on with the posted delivery, optional e-mail address and optional PIN.
    async fn voicemail_enable(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let delivery = VoicemailDelivery::parse(self.get("delivery"))?;
            let email = match self.get("email").trim() {
                "" => None,
                e => Some(Email::parse_for("email", e)?),
            };
            let pin = Some(self.get("pin")).filter(|p| !p.is_empty());
            self.svc
                .enable_voicemail(id, Some(delivery), pin, email)
                .await?;
            Ok("Voicemail is on".to_owned())
        }
        .await;
        self.finish(Tab::Voicemail, "voicemail", "delivery", r)
    }

    /// Adds the posted phonebook contact, or replaces the existing one.
    async fn phonebook_put(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let uri = parse_contact_uri(self.get("uri"))?;
            let name = parse_name("name", self.get("name"))?;
            let groups = parse_phonebook_groups(&[self.get("group").to_owned()])?;
            let entry = PhonebookEntry { uri, name, groups };
            self.svc.put_phonebook_entry(id, &entry).await?;
            Ok(format!("Contact {} saved", entry.uri))
        }
        .await;
        self.finish(Tab::Phonebook, "phonebook", "uri", r)
    }

    /// A new `.crt` (certificate and key) as a download.
    async fn crt(&self) -> Outcome {
        let id = &self.account.id;
        match self
            .svc
            .issue_certificate(
                CertSubject::Account(id.clone()),
                None,
                Some(&self.certificate_name(".crt")),
            )
            .await
        {
            Ok(issued) => Outcome::File(file(
                "application/x-pem-file",
                &format!("{id}.crt"),
                issued.crt_bundle().into_bytes(),
            )),
            Err(e) => self.finish(Tab::Info, "crt", "name", Err(e)),
        }
    }

    /// Names one of the account's certificates.
    async fn rename_certificate(&self) -> Outcome {
        let r = async {
            let serial = Serial::parse(self.get("serial"))?;
            let record = self
                .svc
                .rename_own_certificate(&self.account.id, &serial, self.get("name"))
                .await?;
            Ok(format!(
                "Certificate {serial} is now named \u{201c}{}\u{201d}",
                record.name.unwrap_or_default()
            ))
        }
        .await;
        self.finish(Tab::Info, "name", "name", r)
    }

    /// The name posted with a download, or what it is issued as and for which browser.
    fn certificate_name(&self, form: &str) -> String {
        sip_settings_core::cert_use::given_or_default(Some(self.get("name")), form, self.user_agent)
    }

    async fn p12(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let password = match self.get("password") {
                "" => return Err(ServiceError::invalid("password", "is missing")),
                p => Password::offered(p),
            };
            let variant = match self.get("format") {
                "" | "modern" => P12Variant::Modern,
                "legacy" => P12Variant::Legacy,
                _ => {
                    return Err(ServiceError::invalid("format", "must be modern or legacy"));
                }
            };
            let name = self.certificate_name(".p12");
            let (_, p12) = self
                .svc
                .issue_pkcs12(id, &password, variant, None, Some(&name))
                .await?;
            Ok(p12)
        }
        .await;
        match r {
            Ok(bytes) => Outcome::File(file("application/x-pkcs12", &format!("{id}.p12"), bytes)),
            Err(e) => self.finish(Tab::Info, "p12", "password", Err(e)),
        }
    }

    async fn forwarding(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            // Everything is checked before anything is written.
            let timeout = parse_no_answer_timeout(self.get("no_answer_timeout"))?;
            let mut present = Vec::new();
            for c in Condition::ALL {
                let mode = self.get(&format!("{}_mode", c.code()));
                let other = self.get(&format!("{}_other", c.code()));
                let value = match mode {
                    "" => continue,
                    "off" => String::new(),
                    "voicemail" => VOICE_MAILBOX.to_owned(),
                    "mobile" => MOBILE_NUMBER.to_owned(),
                    "other" if other.trim().is_empty() => {
                        return Err(ServiceError::invalid(
                            c.code(),
                            "needs an address or a number when “Other” is chosen",
                        ));
                    }
                    "other" => other.to_owned(),
                    _ => {
                        return Err(ServiceError::invalid(
                            c.code(),
                            "must be off, voicemail, mobile or other",
                        ));
                    }
                };
                present.push((c, value));
            }
            let mut text = self.svc.set_diversions(id, &present).await?;
            if timeout != self.account.profile.no_answer_timeout {
                self.svc.set_no_answer_timeout(id, timeout).await?;
                text.push_str(&format!("; no-answer timeout set to {timeout} s"));
            }
            Ok(text)
        }
        .await;
        self.finish(Tab::Forwarding, "forwarding", "FUNC", r)
    }

    /// Who the posted rule accepts: `who` = everybody or nobody, or `groups` with the ticked
    /// phonebook groups (`g_<name>`).
    async fn groups(&self) -> Result<Vec<Group>, ServiceError> {
        let one = |name: &str| Group::parse(name).map(|g| vec![g]);
        match self.get("who") {
            "everybody" => one("everybody"),
            "nobody" => one("nobody"),
            "groups" => {
                let mut groups = Vec::new();
                for name in self.svc.phonebook_groups(&self.account.id).await? {
                    if self.checked(&format!("g_{name}")) {
                        groups.push(Group::parse(&name)?);
                    }
                }
                if groups.is_empty() {
                    return Err(ServiceError::invalid(
                        "groups",
                        "needs at least one group ticked, or Everybody or Nobody chosen",
                    ));
                }
                Group::check_list(groups)
            }
            "" => Err(ServiceError::invalid(
                "groups",
                "needs a choice: Everybody, Nobody or some groups",
            )),
            _ => Err(ServiceError::invalid(
                "groups",
                "must be everybody, nobody or groups",
            )),
        }
    }

    async fn temporary(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let groups = self.groups().await?;
            let minutes = match self.get("duration").trim() {
                "" => None,
                d => Some(parse_dnd_duration(d)?),
            };
            let now = self.svc.clock().now();
            let until = minutes.map(|m| now + chrono::Duration::minutes(m));
            let rule = self.svc.set_temporary_rule(id, groups, until).await?;
            let who = rule
                .groups
                .iter()
                .map(Group::name)
                .collect::<Vec<_>>()
                .join(", ");
            Ok(match minutes {
                Some(m) => format!("Temporary rule set: only {who} for {m} minutes"),
                None => format!("Temporary rule set: only {who} until you remove it"),
            })
        }
        .await;
        self.finish(Tab::Accept, "temp", "groups", r)
    }

    async fn accept_rule(&self) -> Outcome {
        let id = &self.account.id;
        let r = async {
            let mask: u32 = DAYS
                .iter()
                .enumerate()
                .filter(|(_, (name, _))| self.checked(name))
                .map(|(i, _)| 1u32 << i)
                .sum();
            if mask == 0 {
                return Err(ServiceError::invalid("days", "choose at least one day"));
            }
            let days = DaysMask::new(mask)?;
            let start = ClockTime::parse_for("start", self.get("start"))?;
            let stop = ClockTime::parse_for("stop", self.get("stop"))?;
            let groups = self.groups().await?;
            let rule = AcceptRule {
                days,
                start,
                stop,
                groups,
            };
            let replaced = self.svc.put_accept_rule(id, &rule).await?;
            Ok(format!(
                "Rule for {} {}",
                super::pages::days_label(days),
                if replaced { "replaced" } else { "added" }
            ))
        }
        .await;
        self.finish(Tab::Accept, "rule", "days", r)
    }
}

/// A file download (never cached): [`crate::legacy::reply::attachment`].
pub fn file(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    crate::legacy::reply::attachment(content_type, filename, bytes)
}
