//! The Voicemail tab.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, Refusal, Tab, View, render};

#[derive(Template)]
#[template(path = "web/voicemail.html")]
struct VoicemailPage {
    layout: Layout,
    state: String,
    enabled: bool,
    delivery: String,
    delivery_error: Option<String>,
    email: Field,
    pin: Field,
}

pub(super) async fn voicemail(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let mailbox = v.svc.voicemail(id).await?;
    let account_email = v
        .account
        .profile
        .email
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let state = match &mailbox {
        None => "Voicemail is not set up.".to_owned(),
        Some(m) if !m.enabled => "Voicemail is off.".to_owned(),
        Some(m) => {
            let to = m
                .email
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| account_email.clone());
            let to = if to.is_empty() {
                "no address yet".to_owned()
            } else {
                to
            };
            match m.delivery {
                sip_settings_core::settings::VoicemailDelivery::Email => {
                    format!("Voicemail is on: messages are sent by e-mail to {to}.")
                }
                sip_settings_core::settings::VoicemailDelivery::EmailAndStore => format!(
                    "Voicemail is on: messages are sent by e-mail to {to} and kept in the mailbox."
                ),
            }
        }
    };
    let delivery = Refusal::value(v.refusal, "voicemail", "delivery")
        .map(str::to_owned)
        .or_else(|| mailbox.as_ref().map(|m| m.delivery.as_str().to_owned()))
        .unwrap_or_else(|| "email".to_owned());
    let email = Field::new(
        "voicemail",
        "email",
        "Notification e-mail",
        "email",
        mailbox
            .as_ref()
            .and_then(|m| m.email.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default(),
        v.refusal,
    )
    .attrs(r#" autocomplete="email""#)
    .hint(if account_email.is_empty() {
        "Where messages are sent.".to_owned()
    } else {
        format!("Where messages are sent; empty: your account's address, {account_email}.")
    });
    let pin = Field::new(
        "voicemail",
        "pin",
        "New PIN",
        "password",
        String::new(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="new-password""#)
    .hint("4 to 10 digits, to listen to messages by phone. Leave empty to keep the current PIN; it is never shown.");
    render(&VoicemailPage {
        layout: v.layout(Tab::Voicemail),
        state,
        enabled: mailbox.as_ref().is_some_and(|m| m.enabled),
        delivery,
        delivery_error: Refusal::error(v.refusal, "voicemail", "delivery"),
        email,
        pin,
    })
}
