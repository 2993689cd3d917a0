//! The Info tab: account details, certificates, downloads.

use askama::Template;
use sip_settings_core::ServiceError;

use super::{Field, Layout, Refusal, Tab, View, render};

#[derive(Debug)]
struct CertView {
    /// Its name, or what to call one issued before names were kept.
    name: String,
    /// The rename field (its own id per certificate).
    rename: Field,
    /// Whether a refusal of its rename is shown (the form stays open).
    rename_open: bool,
    serial: String,
    /// SHA-256, in groups of four hex digits.
    fingerprint: String,
    /// Issued, last used (to the minute, or `not yet`) and valid until, each in the pieces
    /// between which it may wrap (a date and a time).
    times: [Vec<String>; 3],
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
    crt_name: Field,
    p12_name: Field,
    curl: String,
    /// What Blink takes as its account web page (docs/actions.md, "Blink").
    settings_url: String,
    certs: Vec<CertView>,
    /// How many valid certificates are older than the newest valid one.
    older: usize,
}

/// The certificates "revoke the older ones" revokes: every valid one (not revoked, not expired)
/// but the newest, newest first.
pub fn older_valid(
    records: &[sip_settings_core::cert::CertRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<&sip_settings_core::cert::CertRecord> {
    let mut valid: Vec<_> = records
        .iter()
        .filter(|c| c.revoked_at.is_none() && c.not_after >= now)
        .collect();
    valid.sort_by_key(|c| std::cmp::Reverse((c.issued_at, c.serial.to_string())));
    valid.into_iter().skip(1).collect()
}

/// The rows of the certificate list.
fn cert_views(
    v: &View<'_>,
    records: &[sip_settings_core::cert::CertRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<CertView> {
    // The serial whose rename was refused, if one was: that row shows the refusal, open.
    let refused_rename = Refusal::value(v.refusal, "name", "serial");
    records
        .iter()
        .map(|c| (c, refused_rename == Some(c.serial.as_str())))
        .map(|(c, refused)| CertView {
            name: c
                .name
                .clone()
                .unwrap_or_else(|| "(no name: issued before names were kept)".to_owned()),
            rename: rename_field(c, v.refusal.filter(|_| refused)),
            rename_open: refused,
            serial: c.serial.to_string(),
            fingerprint: grouped(&c.fingerprint),
            times: [
                v.local(c.issued_at),
                c.last_used.map_or_else(
                    || "not yet".to_owned(),
                    |t| v.local(t).get(..16).unwrap_or_default().to_owned(),
                ),
                v.local(c.not_after),
            ]
            .map(|t| t.split(' ').map(str::to_owned).collect()),
            status: match c.revoked_at {
                Some(t) => format!("revoked {}", v.local(t)),
                None if c.not_after < now => "expired".to_owned(),
                None => "valid".to_owned(),
            },
            revocable: c.revoked_at.is_none(),
        })
        .collect()
}

/// The field that renames `c`, with its own id; `refusal` is that of this certificate's rename,
/// if it was refused.
fn rename_field(c: &sip_settings_core::cert::CertRecord, refusal: Option<&Refusal>) -> Field {
    let mut field = Field::new(
        "name",
        "name",
        "New name",
        "text",
        c.name.clone().unwrap_or_default(),
        refusal,
    )
    .attrs(r#" maxlength="64" required"#);
    field.id = format!("name-{}", c.serial);
    field
}

/// A fingerprint in groups of four hex digits (so that it wraps between them).
fn grouped(hex: &str) -> String {
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) async fn info(v: &View<'_>) -> Result<String, ServiceError> {
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
            "Number shown to phones you call (PSTN caller id)".to_owned(),
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
            "Caller-id privacy".to_owned(),
            if a.privacy {
                "on: your caller id is hidden"
            } else {
                "off: your caller id is shown"
            }
            .to_owned(),
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
    let certs = cert_views(v, &records, now);
    let older = older_valid(&records, now).len();
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
    let download_name = |form| {
        Field::new(
            form,
            "name",
            "Name (optional)",
            "text",
            String::new(),
            v.refusal,
        )
        .attrs(r#" maxlength="64""#)
        .hint("To tell it apart later, such as \u{201c}work laptop\u{201d}. Without one it is named after this browser.")
    };
    render(&InfoPage {
        layout: v.layout(Tab::Info),
        sip_address: id.to_string(),
        details,
        p12_password,
        p12_legacy: Refusal::value(v.refusal, "p12", "format") == Some("legacy"),
        crt_name: download_name("crt"),
        p12_name: download_name("p12"),
        curl: format!(
            "curl --cacert ca.crt -E {id}.crt 'https://{host}/settings.phtml?action=account'"
        ),
        settings_url: format!("https://{host}/settings.phtml"),
        certs,
        older,
    })
}
