//! The pages: one askama template per tab (compiled into the binary from
//! `crates/http/templates/web/`), and the view models that fill them from the same `core`
//! service functions the APIs use. A refused form is rendered again with the user's input and
//! the service's message next to the field it names.

use askama::Template;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sip_settings_core::account::Account;
use sip_settings_core::billing_service::parse_month;
use sip_settings_core::calls::CallRecord;
use sip_settings_core::settings::{DaysMask, Group, TemporaryRule};
use sip_settings_core::sip::{Condition, DiversionTarget};
use sip_settings_core::{ServiceError, Services};

use crate::objects::local_time;
use crate::params::Params;

/// The tabs of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Account details, certificates, downloads.
    Info,
    /// Call forwarding and the no-answer timeout.
    Forwarding,
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
    pub const ALL: [Tab; 11] = [
        Tab::Info,
        Tab::Forwarding,
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

fn render(t: &impl Template) -> Result<String, ServiceError> {
    t.render()
        .map_err(|e| ServiceError::Internal(format!("template: {e}")))
}

/// Builds a tab's page.
pub async fn page(tab: Tab, v: &View<'_>) -> Result<String, ServiceError> {
    match tab {
        Tab::Info => info(v).await,
        Tab::Forwarding => forwarding(v).await,
        Tab::Accept => accept(v).await,
        Tab::Reject => reject(v).await,
        Tab::Privacy => render(&PrivacyPage {
            layout: v.layout(tab),
            on: v.account.privacy,
        }),
        Tab::Aliases => aliases(v).await,
        Tab::Voicemail => voicemail(v).await,
        Tab::Phonebook => phonebook(v).await,
        Tab::Calls => calls(v).await,
        Tab::Balance => balance(v).await,
        Tab::Journal => journal(v).await,
    }
}

// ----- login and messages -----

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    address: Field,
    password: Field,
}

/// The login page: `address` is kept, the password never.
pub fn login_page(
    csrf: &str,
    address: &str,
    error: Option<String>,
    flash: Option<String>,
) -> Result<String, ServiceError> {
    let mut address_field = Field::new(
        "login",
        "address",
        "SIP address",
        "text",
        address.to_owned(),
        None,
    )
    .attrs(r#" autocomplete="username" inputmode="email" autocapitalize="none" spellcheck="false" required"#)
    .hint("For example alice@example.com");
    address_field.value = address.to_owned();
    let mut password = Field::new(
        "login",
        "password",
        "SIP password",
        "password",
        String::new(),
        None,
    )
    .attrs(r#" autocomplete="current-password" required"#);
    password.error = error.clone();
    render(&LoginPage {
        layout: Layout {
            title: "Log in".to_owned(),
            flash,
            alert: error,
            ..Layout::default()
        },
        csrf: csrf.to_owned(),
        address: address_field,
        password,
    })
}

#[derive(Template)]
#[template(path = "web/message.html")]
struct MessagePage {
    layout: Layout,
    message: String,
}

/// A page with only a message (refused requests, errors).
pub fn message_page(title: &str, message: &str) -> String {
    let page = MessagePage {
        layout: Layout {
            title: title.to_owned(),
            ..Layout::default()
        },
        message: message.to_owned(),
    };
    page.render()
        .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><p>{title}</p>"))
}

// ----- Info -----

#[derive(Debug)]
struct CertView {
    serial: String,
    issued: String,
    not_after: String,
    status: String,
    revocable: bool,
}

#[derive(Template)]
#[template(path = "web/info.html")]
struct InfoPage {
    layout: Layout,
    sip_address: String,
    details: Vec<(String, String)>,
    p12_password: Field,
    p12_legacy: bool,
    curl: String,
    certs: Vec<CertView>,
}

async fn info(v: &View<'_>) -> Result<String, ServiceError> {
    let a = v.account;
    let id = &a.id;
    let p = &a.profile;
    let aliases = v.svc.aliases(id).await?;
    let numbers = v.svc.enum_numbers(id).await?;
    let dnd = v.svc.dnd_active(id).await?;
    let or_none = |s: String| if s.is_empty() { "—".to_owned() } else { s };
    let join = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let details = vec![
        ("SIP address".to_owned(), id.to_string()),
        (
            "Name".to_owned(),
            or_none(
                format!("{} {}", p.first_name, p.last_name)
                    .trim()
                    .to_owned(),
            ),
        ),
        (
            "E-mail".to_owned(),
            or_none(
                p.email
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ),
        ("Time zone".to_owned(), p.timezone.name().to_owned()),
        (
            "Mobile number".to_owned(),
            or_none(
                p.mobile
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ),
        (
            "Caller id on phone calls".to_owned(),
            or_none(
                p.pstn_caller_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ),
        ("Language".to_owned(), p.language.clone()),
        (
            "No-answer timeout".to_owned(),
            format!("{} seconds", p.no_answer_timeout),
        ),
        (
            "Caller id".to_owned(),
            if a.privacy { "hidden" } else { "shown" }.to_owned(),
        ),
        (
            "Do Not Disturb".to_owned(),
            if dnd { "on" } else { "off" }.to_owned(),
        ),
        (
            "Billing".to_owned(),
            if a.prepaid { "prepaid" } else { "postpaid" }.to_owned(),
        ),
        (
            "Aliases".to_owned(),
            join(aliases.iter().map(ToString::to_string).collect()),
        ),
        (
            "Phone numbers".to_owned(),
            join(numbers.iter().map(ToString::to_string).collect()),
        ),
    ];
    let now = v.svc.clock().now();
    let mut records = v.svc.list_certificates(Some(id)).await?;
    records.sort_by_key(|c| std::cmp::Reverse(c.issued_at));
    let certs = records
        .iter()
        .map(|c| CertView {
            serial: c.serial.to_string(),
            issued: v.local(c.issued_at),
            not_after: v.local(c.not_after),
            status: match c.revoked_at {
                Some(t) => format!("revoked {}", v.local(t)),
                None if c.not_after < now => "expired".to_owned(),
                None => "valid".to_owned(),
            },
            revocable: c.revoked_at.is_none(),
        })
        .collect();
    let host = v.host.clone().unwrap_or_else(|| "HOST".to_owned());
    let p12_password = Field::new(
        "p12",
        "password",
        "SIP password",
        "password",
        String::new(),
        v.refusal,
    )
    .attrs(r#" autocomplete="current-password""#)
    .hint("Also the password that protects the file.");
    render(&InfoPage {
        layout: v.layout(Tab::Info),
        sip_address: id.to_string(),
        details,
        p12_password,
        p12_legacy: Refusal::value(v.refusal, "p12", "format") == Some("legacy"),
        curl: format!(
            "curl --cacert ca.crt -E {id}.crt 'https://{host}/settings.phtml?action=account'"
        ),
        certs,
    })
}

// ----- Forwarding -----

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

async fn forwarding(v: &View<'_>) -> Result<String, ServiceError> {
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

// ----- Accept & DND -----

#[derive(Debug)]
struct RuleView {
    days: u8,
    days_label: String,
    start: String,
    stop: String,
    groups: String,
}

#[derive(Template)]
#[template(path = "web/accept.html")]
struct AcceptPage {
    layout: Layout,
    dnd_state: String,
    dnd_on: bool,
    dnd_duration: Field,
    temp_state: String,
    temp_active: bool,
    temp_groups: Vec<CheckBox>,
    temp_groups_error: Option<String>,
    temp_duration: Field,
    timezone: String,
    rules: Vec<RuleView>,
    days: Vec<CheckBox>,
    days_error: Option<String>,
    start: Field,
    stop: Field,
    rule_groups: Vec<CheckBox>,
    rule_groups_error: Option<String>,
    phonebook_groups_empty: bool,
}

/// The day checkboxes' names and labels, Monday first (bit 0).
pub const DAYS: [(&str, &str); 7] = [
    ("d_mon", "Monday"),
    ("d_tue", "Tuesday"),
    ("d_wed", "Wednesday"),
    ("d_thu", "Thursday"),
    ("d_fri", "Friday"),
    ("d_sat", "Saturday"),
    ("d_sun", "Sunday"),
];

/// A days mask in words.
pub fn days_label(mask: DaysMask) -> String {
    match mask.value() {
        127 => "Every day".to_owned(),
        31 => "Monday to Friday".to_owned(),
        96 => "Saturday and Sunday".to_owned(),
        m => DAYS
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, (_, label))| label.get(..3).unwrap_or(label))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn group_list(groups: &[Group]) -> String {
    groups
        .iter()
        .map(Group::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// "N more minutes".
fn minutes_text(n: i64) -> String {
    if n == 1 {
        "1 more minute".to_owned()
    } else {
        format!("{n} more minutes")
    }
}

fn remaining(v: &View<'_>, t: &TemporaryRule, now: DateTime<Utc>) -> String {
    match (t.remaining_minutes(now), t.until) {
        (Some(m), Some(until)) => format!(
            "for {} (until {} {})",
            minutes_text(m),
            v.local(until),
            v.tz()
        ),
        _ => "until you turn it off".to_owned(),
    }
}

/// The group checkboxes: everybody, nobody, then the phonebook's groups.
fn group_boxes(form: &str, phonebook: &[String], r: Option<&Refusal>) -> Vec<CheckBox> {
    let mut names = vec!["everybody".to_owned(), "nobody".to_owned()];
    names.extend(phonebook.iter().cloned());
    names
        .into_iter()
        .map(|g| CheckBox {
            name: format!("g_{g}"),
            checked: Refusal::value(r, form, &format!("g_{g}")).is_some_and(|v| !v.is_empty()),
            label: match g.as_str() {
                "everybody" => "Everybody".to_owned(),
                "nobody" => "Nobody".to_owned(),
                other => format!("Group “{other}”"),
            },
        })
        .collect()
}

async fn accept(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let rules = v.svc.accept_rules(id).await?;
    let phonebook_groups = v.svc.phonebook_groups(id).await?;
    let now = v.svc.clock().now();
    let active = rules.active_temporary(now);
    let dnd_on = active.is_some_and(TemporaryRule::is_dnd);
    let dnd_state = match active.filter(|t| t.is_dnd()) {
        Some(t) => format!("Do Not Disturb is on {}.", remaining(v, t, now)),
        None => "Do Not Disturb is off.".to_owned(),
    };
    let temp_active = active.is_some_and(|t| !t.is_dnd());
    let temp_state = match active.filter(|t| !t.is_dnd()) {
        Some(t) => format!(
            "Only {} may call, {}.",
            group_list(&t.groups),
            remaining(v, t, now)
        ),
        None => "No temporary rule.".to_owned(),
    };
    let duration_hint = "Leave empty to keep it until you turn it off; at most 10080 (one week).";
    let dnd_duration = Field::new(
        "dnd",
        "duration",
        "For how many minutes",
        "text",
        String::new(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="off""#)
    .hint(duration_hint);
    let temp_duration = Field::new(
        "temp",
        "duration",
        "For how many minutes",
        "text",
        String::new(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="off""#)
    .hint(duration_hint);
    let days = DAYS
        .iter()
        .map(|(name, label)| CheckBox {
            name: (*name).to_owned(),
            label: (*label).to_owned(),
            checked: Refusal::value(v.refusal, "rule", name).is_some_and(|x| !x.is_empty()),
        })
        .collect();
    let start = Field::new(
        "rule",
        "start",
        "From",
        "time",
        "09:00".to_owned(),
        v.refusal,
    );
    let stop = Field::new("rule", "stop", "To", "time", "17:00".to_owned(), v.refusal);
    let rule_views = rules
        .persistent
        .iter()
        .map(|r| RuleView {
            days: r.days.value(),
            days_label: days_label(r.days),
            start: r.start.to_string(),
            stop: r.stop.to_string(),
            groups: group_list(&r.groups),
        })
        .collect();
    render(&AcceptPage {
        layout: v.layout(Tab::Accept),
        dnd_state,
        dnd_on,
        dnd_duration,
        temp_state,
        temp_active,
        temp_groups: group_boxes("temp", &phonebook_groups, v.refusal),
        temp_groups_error: Refusal::error(v.refusal, "temp", "groups"),
        temp_duration,
        timezone: v.tz(),
        rules: rule_views,
        days,
        days_error: Refusal::error(v.refusal, "rule", "days"),
        start,
        stop,
        rule_groups: group_boxes("rule", &phonebook_groups, v.refusal),
        rule_groups_error: Refusal::error(v.refusal, "rule", "groups"),
        phonebook_groups_empty: phonebook_groups.is_empty(),
    })
}

// ----- Reject, Privacy, Aliases -----

#[derive(Template)]
#[template(path = "web/reject.html")]
struct RejectPage {
    layout: Layout,
    patterns: Vec<String>,
    pattern: Field,
}

async fn reject(v: &View<'_>) -> Result<String, ServiceError> {
    let patterns = v.svc.reject_patterns(&v.account.id).await?;
    render(&RejectPage {
        layout: v.layout(Tab::Reject),
        patterns: patterns.iter().map(ToString::to_string).collect(),
        pattern: Field::new(
            "reject",
            "pattern",
            "Pattern",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("sip:user@domain, with % for any text, e.g. sip:%@spam.example"),
    })
}

#[derive(Template)]
#[template(path = "web/privacy.html")]
struct PrivacyPage {
    layout: Layout,
    on: bool,
}

#[derive(Template)]
#[template(path = "web/aliases.html")]
struct AliasesPage {
    layout: Layout,
    domain: String,
    aliases: Vec<String>,
    numbers: Vec<String>,
    username: Field,
}

async fn aliases(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let aliases = v.svc.aliases(id).await?;
    let numbers = v.svc.enum_numbers(id).await?;
    render(&AliasesPage {
        layout: v.layout(Tab::Aliases),
        domain: id.domain().to_string(),
        aliases: aliases.iter().map(ToString::to_string).collect(),
        numbers: numbers.iter().map(ToString::to_string).collect(),
        username: Field::new(
            "alias",
            "username",
            "New alias",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint(format!(
            "The part before @{}: letters, digits, '.', '_' and '-'.",
            id.domain()
        )),
    })
}

// ----- Voicemail -----

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

async fn voicemail(v: &View<'_>) -> Result<String, ServiceError> {
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

// ----- Phonebook -----

#[derive(Debug)]
struct EntryView {
    uri: String,
    name: String,
    groups: String,
}

#[derive(Template)]
#[template(path = "web/phonebook.html")]
struct PhonebookPage {
    layout: Layout,
    entries: Vec<EntryView>,
    uri: Field,
    name: Field,
    group: Field,
}

async fn phonebook(v: &View<'_>) -> Result<String, ServiceError> {
    let entries = v.svc.phonebook(&v.account.id).await?;
    render(&PhonebookPage {
        layout: v.layout(Tab::Phonebook),
        entries: entries
            .iter()
            .map(|e| EntryView {
                uri: e.uri.to_string(),
                name: e.name.clone(),
                groups: e.groups.join(", "),
            })
            .collect(),
        uri: Field::new(
            "phonebook",
            "uri",
            "Address",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("sip:mom@example.org or mom@example.org"),
        name: Field::new(
            "phonebook",
            "name",
            "Name",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off""#),
        group: Field::new(
            "phonebook",
            "group",
            "Groups",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" autocomplete="off" spellcheck="false" autocapitalize="none""#)
        .hint("One or more, separated by commas, e.g. family,work"),
    })
}

// ----- Calls -----

#[derive(Debug)]
struct CallView {
    start: String,
    party: String,
    duration: String,
    status: u16,
    price: String,
}

#[derive(Debug)]
struct CallList {
    id: &'static str,
    title: &'static str,
    party: &'static str,
    priced: bool,
    calls: Vec<CallView>,
}

#[derive(Template)]
#[template(path = "web/calls.html")]
struct CallsPage {
    layout: Layout,
    timezone: String,
    periods: Vec<NavItem>,
    lists: Vec<CallList>,
}

/// Seconds as `m:ss` or `h:mm:ss`.
pub fn clock_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

async fn calls(v: &View<'_>) -> Result<String, ServiceError> {
    let days = v
        .query
        .get("days")
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| (1..=90).contains(d))
        .unwrap_or(14);
    let (placed, received) = v.svc.calls(&v.account.id, days, 200).await?;
    let view = |c: &CallRecord, placed: bool| CallView {
        start: local_time(v.account, c.start),
        party: if placed { &c.callee } else { &c.caller }.to_string(),
        duration: clock_duration(i64::from(c.duration)),
        status: c.status,
        price: c.price.map(|p| p.to_string()).unwrap_or_default(),
    };
    let periods = [1u32, 7, 14, 30, 90]
        .into_iter()
        .map(|d| NavItem {
            href: format!("/web/calls?days={d}"),
            label: if d == 1 {
                "Last day".to_owned()
            } else {
                format!("Last {d} days")
            },
            current: d == days,
        })
        .collect();
    render(&CallsPage {
        layout: v.layout(Tab::Calls),
        timezone: v.tz(),
        periods,
        lists: vec![
            CallList {
                id: "placed",
                title: "Placed calls",
                party: "Called",
                priced: true,
                calls: placed.iter().map(|c| view(c, true)).collect(),
            },
            CallList {
                id: "received",
                title: "Received calls",
                party: "Caller",
                priced: false,
                calls: received.iter().map(|c| view(c, false)).collect(),
            },
        ],
    })
}

// ----- Balance -----

#[derive(Debug)]
struct ActiveView {
    start: String,
    destination: String,
    elapsed: String,
    max: String,
}

#[derive(Debug)]
struct HistView {
    date: String,
    description: String,
    value: String,
    balance: String,
}

#[derive(Template)]
#[template(path = "web/balance.html")]
struct BalancePage {
    layout: Layout,
    prepaid: bool,
    balance: String,
    currency: String,
    active: Vec<ActiveView>,
    month: String,
    usage_calls: u64,
    usage_duration: String,
    usage_price: String,
    prev_month: String,
    next_month: Option<String>,
    history: Vec<HistView>,
}

fn month_shift(first: NaiveDate, forward: bool) -> Option<NaiveDate> {
    let (y, m) = (first.year(), first.month());
    match (forward, m) {
        (true, 12) => NaiveDate::from_ymd_opt(y + 1, 1, 1),
        (true, _) => NaiveDate::from_ymd_opt(y, m + 1, 1),
        (false, 1) => NaiveDate::from_ymd_opt(y - 1, 12, 1),
        (false, _) => NaiveDate::from_ymd_opt(y, m - 1, 1),
    }
}

async fn balance(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let now = v.svc.clock().now();
    let (balance, sessions) = v.svc.prepaid(id).await?;
    let mut alert = None;
    let (month, usage) = match v.svc.monthly_usage(id, v.query.get("month")).await {
        Ok(u) => u,
        Err(e @ ServiceError::Invalid { .. }) => {
            alert = Some(e.to_string());
            v.svc.monthly_usage(id, None).await?
        }
        Err(e) => return Err(e),
    };
    let first = parse_month(&month)?;
    let local_now = now.with_timezone(&v.account.profile.timezone.tz());
    let this_month = NaiveDate::from_ymd_opt(local_now.year(), local_now.month(), 1);
    let next = month_shift(first, true).filter(|n| this_month.is_some_and(|t| *n <= t));
    let history = v.svc.balance_history(id, 200).await?;
    let mut layout = v.layout(Tab::Balance);
    if alert.is_some() {
        layout.alert = alert;
    }
    render(&BalancePage {
        layout,
        prepaid: v.account.prepaid,
        balance: balance.to_string(),
        currency: v.svc.config().currency.clone(),
        active: sessions
            .iter()
            .map(|s| ActiveView {
                start: local_time(v.account, s.opened_at),
                destination: s.destination.to_string(),
                elapsed: clock_duration((now - s.opened_at).num_seconds()),
                max: clock_duration(i64::from(s.max_session_time)),
            })
            .collect(),
        month,
        usage_calls: usage.calls,
        usage_duration: clock_duration(i64::try_from(usage.duration).unwrap_or(i64::MAX)),
        usage_price: usage.price.to_string(),
        prev_month: month_shift(first, false)
            .map(|d| d.format("%Y-%m").to_string())
            .unwrap_or_default(),
        next_month: next.map(|d| d.format("%Y-%m").to_string()),
        history: history
            .iter()
            .map(|h| HistView {
                date: local_time(v.account, h.at),
                description: h.description.clone(),
                value: h.value.signed(),
                balance: h.balance.to_string(),
            })
            .collect(),
    })
}

// ----- Journal -----

#[derive(Debug)]
struct JournalView {
    at: String,
    resource: String,
    old: String,
    new: String,
    actor: String,
    door: String,
    source: String,
}

#[derive(Template)]
#[template(path = "web/journal.html")]
struct JournalPage {
    layout: Layout,
    timezone: String,
    entries: Vec<JournalView>,
    older: Option<String>,
}

/// Journal entries per page.
const JOURNAL_PAGE: u32 = 50;

async fn journal(v: &View<'_>) -> Result<String, ServiceError> {
    let before = v.query.get("before").and_then(|b| b.parse::<i64>().ok());
    let entries = v
        .svc
        .journal_entries(&v.account.id, before, JOURNAL_PAGE)
        .await?;
    let older = if entries.len() == JOURNAL_PAGE as usize {
        entries
            .last()
            .map(|e| format!("/web/journal?before={}", e.id))
    } else {
        None
    };
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".to_owned());
    render(&JournalPage {
        layout: v.layout(Tab::Journal),
        timezone: v.tz(),
        entries: entries
            .iter()
            .map(|e| JournalView {
                at: local_time(v.account, e.entry.at),
                resource: e.entry.resource.clone(),
                old: dash(&e.entry.old),
                new: dash(&e.entry.new),
                actor: e.entry.actor.clone(),
                door: e.entry.door.clone(),
                source: e.entry.source.clone().unwrap_or_default(),
            })
            .collect(),
        older,
    })
}
