//! The pages: one askama template per tab (compiled into the binary from
//! `crates/http/templates/web/`), and the view models that fill them from the same `core`
//! service functions the APIs use. A refused form is rendered again with the user's input and
//! the service's message next to the field it names.

mod accept;
mod aliases;
mod balance;
mod calls;
mod forwarding;
mod info;
mod journal;
mod login;
mod phonebook;
mod privacy;
mod reject;
mod rules;
mod voicemail;
mod week;
mod what_happens;

use askama::Template;
use chrono::{DateTime, Utc};
use sip_settings_core::account::Account;
use sip_settings_core::{ServiceError, Services};

use crate::legacy::objects::local_time;
use crate::params::Params;

pub use accept::{DAYS, days_label};
pub use calls::clock_duration;
pub use info::older_valid;
pub use login::{login_page, message_page};
pub use rules::{DEFAULT_RING, MAX_STEPS, TRIGGERS, rule_form_field, step_names, weekly_name};

/// The tabs of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Account details, certificates, downloads.
    Info,
    /// Call forwarding and the no-answer timeout.
    Forwarding,
    /// Forwarding rules with conditions, and their sets.
    Rules,
    /// What happens when someone calls: a decision drawn step by step.
    WhatHappens,
    /// Accept rules, temporary rule, DND.
    Accept,
    /// Reject patterns.
    Reject,
    /// Caller-id privacy.
    Privacy,
    /// Aliases and ENUM numbers.
    Aliases,
    /// Voicemail.
    Voicemail,
    /// Phonebook.
    Phonebook,
    /// Placed and received calls.
    Calls,
    /// Balance, usage, history.
    Balance,
    /// The change journal.
    Journal,
}

impl Tab {
    /// Every tab, in the navigation's order.
    pub const ALL: [Tab; 13] = [
        Tab::Info,
        Tab::Forwarding,
        Tab::Rules,
        Tab::WhatHappens,
        Tab::Accept,
        Tab::Reject,
        Tab::Privacy,
        Tab::Aliases,
        Tab::Voicemail,
        Tab::Phonebook,
        Tab::Calls,
        Tab::Balance,
        Tab::Journal,
    ];

    /// The tab's address.
    pub fn href(self) -> &'static str {
        match self {
            Tab::Info => "/",
            Tab::Forwarding => "/web/forwarding",
            Tab::Rules => "/web/rules",
            Tab::WhatHappens => "/web/what-happens",
            Tab::Accept => "/web/accept",
            Tab::Reject => "/web/reject",
            Tab::Privacy => "/web/privacy",
            Tab::Aliases => "/web/aliases",
            Tab::Voicemail => "/web/voicemail",
            Tab::Phonebook => "/web/phonebook",
            Tab::Calls => "/web/calls",
            Tab::Balance => "/web/balance",
            Tab::Journal => "/web/journal",
        }
    }

    /// The tab's name in the navigation.
    pub fn label(self) -> &'static str {
        match self {
            Tab::Info => "Info",
            Tab::Forwarding => "Forwarding",
            Tab::Rules => "Rules",
            Tab::WhatHappens => "What happens",
            Tab::Accept => "Accept & DND",
            Tab::Reject => "Reject",
            Tab::Privacy => "Privacy",
            Tab::Aliases => "Aliases",
            Tab::Voicemail => "Voicemail",
            Tab::Phonebook => "Phonebook",
            Tab::Calls => "Calls",
            Tab::Balance => "Balance",
            Tab::Journal => "Journal",
        }
    }

    /// The tab served at a path.
    pub fn from_path(path: &str) -> Option<Tab> {
        if path == "/web/info" {
            return Some(Tab::Info);
        }
        Tab::ALL.into_iter().find(|t| t.href() == path)
    }
}

/// A refused form: which form, the field the refusal names, the message, and what was sent.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The form (its id within the tab).
    pub form: &'static str,
    /// The field the message belongs next to.
    pub field: Option<String>,
    /// The service's message.
    pub message: String,
    /// The submitted values (passwords and PINs are never rendered back).
    pub values: Params,
}

impl Refusal {
    fn for_form<'a>(r: Option<&'a Refusal>, form: &str) -> Option<&'a Refusal> {
        r.filter(|r| r.form == form)
    }

    fn error(r: Option<&Refusal>, form: &str, field: &str) -> Option<String> {
        Self::for_form(r, form)
            .filter(|r| r.field.as_deref() == Some(field))
            .map(|r| r.message.clone())
    }

    fn value<'a>(r: Option<&'a Refusal>, form: &str, name: &str) -> Option<&'a str> {
        Self::for_form(r, form).map(|r| r.values.get(name).unwrap_or_default())
    }
}

/// A link in a navigation list.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Where it goes.
    pub href: String,
    /// What it says.
    pub label: String,
    /// Whether it is the current page.
    pub current: bool,
}

/// What every page shows around its content.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The page's title.
    pub title: String,
    /// The logged-in account, if any.
    pub account: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
    /// The tabs.
    pub nav: Vec<NavItem>,
    /// A success message from the previous change.
    pub flash: Option<String>,
    /// A refusal's summary.
    pub alert: Option<String>,
}

impl Layout {
    /// The layout of a logged-in page.
    pub fn for_tab(
        tab: Tab,
        account: &str,
        csrf: &str,
        flash: Option<String>,
        alert: Option<String>,
    ) -> Self {
        Self {
            title: if tab == Tab::Info {
                "Your account".to_owned()
            } else {
                tab.label().to_owned()
            },
            account: Some(account.to_owned()),
            csrf: csrf.to_owned(),
            nav: Tab::ALL
                .into_iter()
                .map(|t| NavItem {
                    href: t.href().to_owned(),
                    label: t.label().to_owned(),
                    current: t == tab,
                })
                .collect(),
            flash,
            alert,
        }
    }
}

/// One labelled input.
#[derive(Debug, Clone)]
pub struct Field {
    /// Element id (unique on the page).
    pub id: String,
    /// Form name.
    pub name: String,
    /// Label text.
    pub label: String,
    /// `type` attribute.
    pub kind: &'static str,
    /// Current value.
    pub value: String,
    /// Extra attributes (fixed text, never user data).
    pub attrs: &'static str,
    /// Help text.
    pub hint: Option<String>,
    /// The refusal's message for this field.
    pub error: Option<String>,
}

impl Field {
    /// A field of `form`, showing the submitted value when that form was refused, else `current`.
    pub fn new(
        form: &'static str,
        name: &str,
        label: &str,
        kind: &'static str,
        current: String,
        refusal: Option<&Refusal>,
    ) -> Self {
        let value = if kind == "password" {
            String::new()
        } else {
            Refusal::value(refusal, form, name).map_or(current, str::to_owned)
        };
        Self {
            id: format!("{form}-{name}"),
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            value,
            attrs: "",
            hint: None,
            error: Refusal::error(refusal, form, name),
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn attrs(mut self, attrs: &'static str) -> Self {
        self.attrs = attrs;
        self
    }
}

/// A checkbox.
#[derive(Debug, Clone)]
pub struct CheckBox {
    /// Form name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Whether it is checked.
    pub checked: bool,
}

/// What a page needs to be built.
#[derive(Debug)]
pub struct View<'a> {
    /// The services (acting for the session).
    pub svc: &'a Services,
    /// The logged-in account.
    pub account: &'a Account,
    /// The session's CSRF token.
    pub csrf: String,
    /// A success message to show.
    pub flash: Option<String>,
    /// A refused form to show again.
    pub refusal: Option<&'a Refusal>,
    /// The query string (periods, months, cursors).
    pub query: &'a Params,
    /// The host the browser used (for the curl line).
    pub host: Option<String>,
}

impl View<'_> {
    fn layout(&self, tab: Tab) -> Layout {
        Layout::for_tab(
            tab,
            &self.account.id.to_string(),
            &self.csrf,
            self.flash.clone(),
            self.refusal.map(|r| format!("Not saved: {}", r.message)),
        )
    }

    fn local(&self, t: DateTime<Utc>) -> String {
        let s = local_time(self.account, t);
        s.get(..16).map_or(s.clone(), str::to_owned)
    }

    fn tz(&self) -> String {
        self.account.profile.timezone.name().to_owned()
    }
}

/// A forwarding target as the page shows it (and takes it back): its stored form (a SIP URI or
/// a token) read as `DiversionTarget` and shown as object D does, without `sip:`.
fn target_shown(stored: &str) -> String {
    sip_settings_core::sip::DiversionTarget::from_stored(stored)
        .map_or_else(|_| stored.to_owned(), |t| t.shown())
}

fn render(t: &impl Template) -> Result<String, ServiceError> {
    t.render()
        .map_err(|e| ServiceError::Internal(format!("template: {e}")))
}

/// Builds a tab's page.
pub async fn page(tab: Tab, v: &View<'_>) -> Result<String, ServiceError> {
    match tab {
        Tab::Info => info::info(v).await,
        Tab::Forwarding => forwarding::forwarding(v).await,
        Tab::Rules => rules::rules(v).await,
        Tab::WhatHappens => what_happens::what_happens(v).await,
        Tab::Accept => accept::accept(v).await,
        Tab::Reject => reject::reject(v).await,
        Tab::Privacy => privacy::privacy(v),
        Tab::Aliases => aliases::aliases(v).await,
        Tab::Voicemail => voicemail::voicemail(v).await,
        Tab::Phonebook => phonebook::phonebook(v).await,
        Tab::Calls => calls::calls(v).await,
        Tab::Balance => balance::balance(v).await,
        Tab::Journal => journal::journal(v).await,
    }
}
