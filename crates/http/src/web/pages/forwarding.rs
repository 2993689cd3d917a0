//! The Forwarding tab: call forwarding and the no-answer timeout.

use askama::Template;
use sip_settings_core::ServiceError;
use sip_settings_core::sip::{Condition, DiversionTarget};

use super::{Field, Layout, Refusal, Tab, View, render};

#[derive(Debug)]
struct CondView {
    code: &'static str,
    label: &'static str,
    help: &'static str,
    mode: String,
    other: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "web/forwarding.html")]
struct ForwardingPage {
    layout: Layout,
    conditions: Vec<CondView>,
    timeout: Field,
    voicemail_enabled: bool,
    mobile: Option<String>,
}

fn condition_text(c: Condition) -> (&'static str, &'static str) {
    match c {
        Condition::Unconditional => (
            "All calls",
            "Every call is forwarded; your phones do not ring.",
        ),
        Condition::NotOnline => ("When not online", "No phone of yours is registered."),
        Condition::Busy => ("When busy", "You are already on a call."),
        Condition::NoAnswer => (
            "When not answered",
            "Nobody answers within the no-answer timeout below.",
        ),
        Condition::NotAvailable => (
            "When not available",
            "Your accept rules or Do Not Disturb refuse the call.",
        ),
    }
}

pub(super) async fn forwarding(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let current = v.svc.diversions(id).await?;
    let voicemail_enabled = v.svc.voicemail(id).await?.is_some_and(|m| m.enabled);
    let refused = Refusal::for_form(v.refusal, "forwarding");
    let conditions = Condition::ALL
        .into_iter()
        .map(|c| {
            let (label, help) = condition_text(c);
            let (mode, other) = match refused {
                Some(r) => (
                    r.values
                        .get(&format!("{}_mode", c.code()))
                        .unwrap_or("off")
                        .to_owned(),
                    r.values
                        .get(&format!("{}_other", c.code()))
                        .unwrap_or_default()
                        .to_owned(),
                ),
                None => match current.get(&c) {
                    None => ("off".to_owned(), String::new()),
                    Some(DiversionTarget::VoiceMailbox) => ("voicemail".to_owned(), String::new()),
                    Some(DiversionTarget::MobileNumber) => ("mobile".to_owned(), String::new()),
                    Some(t) => ("other".to_owned(), t.shown()),
                },
            };
            CondView {
                code: c.code(),
                label,
                help,
                mode,
                other,
                error: Refusal::error(v.refusal, "forwarding", c.code()),
            }
        })
        .collect();
    let timeout = Field::new(
        "forwarding",
        "no_answer_timeout",
        "No-answer timeout (seconds)",
        "text",
        v.account.profile.no_answer_timeout.to_string(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="off""#)
    .hint("How long your phones ring before “When not answered” applies: 5 to 900 seconds.");
    render(&ForwardingPage {
        layout: v.layout(Tab::Forwarding),
        conditions,
        timeout,
        voicemail_enabled,
        mobile: v.account.profile.mobile.as_ref().map(ToString::to_string),
    })
}
