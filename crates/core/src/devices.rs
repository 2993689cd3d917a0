//! A subscriber's registered devices, as the proxy's registrar feeds them (SPEC §10; the
//! shipped Kamailio configuration sends every REGISTER it accepts). sip-settings does not
//! answer phones' REGISTERs itself: it keeps the registrar's bindings so that a call's
//! decision knows whether the callee is online, and so that the subscriber can see them.
//!
//! The rules are RFC 3261 §10.3's, as a registrar applies them: a binding is one Contact URI of
//! the address of record; its lifetime is the Contact's `expires` parameter, else the
//! request's `Expires` header, else the registrar's default, raised to its minimum and lowered
//! to its maximum; `expires=0` removes it; `Contact: *` with `Expires: 0` removes them all; a
//! request of the same Call-ID with a CSeq not above the stored one changes nothing.

use chrono::{DateTime, Utc};

use crate::error::{ServiceError, StoreError};
use crate::ids::{AccountId, Domain};
use crate::service::Services;

/// Most bindings one account may hold.
pub const MAX_DEVICES: usize = 32;
/// Longest Contact URI kept (bytes).
pub const MAX_CONTACT_LEN: usize = 512;
/// Longest User-Agent kept (bytes; longer ones are cut at a character boundary).
pub const MAX_USER_AGENT_LEN: usize = 255;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The Contact URI (where calls for the account reach this device).
    pub contact: String,
    /// Its User-Agent header.
    pub user_agent: String,
    /// The transport it registered over (`udp`, `tcp`, `tls`, `ws`, `wss`, `sctp`).
    pub transport: String,
    /// The address the REGISTER came from (`ip:port`, as the proxy saw it).
    pub source: String,
    /// The Call-ID of the registration.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// When the binding was last refreshed.
    pub registered_at: DateTime<Utc>,
    /// When it lapses unless refreshed.
    pub expires_at: DateTime<Utc>,
}

impl Device {
    /// Whole seconds left at `now` (0 once lapsed). With the lapse rounded up to the second
    /// ([`lapses_at`]), a binding of 60 s shows 60 right after its REGISTER, whatever the
    /// fraction of the second it came in.
    pub fn expires_in(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds().max(0)
    }
}

/// When a binding of `lifetime` seconds granted at `now` lapses, in whole seconds (as the
/// stores keep it) and never early: the fraction of a second is rounded up.
pub fn lapses_at(now: DateTime<Utc>, lifetime: u32) -> i64 {
    let at = now + chrono::Duration::seconds(i64::from(lifetime));
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

/// The Contact header(s) of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact: a query, nothing changes.
    None,
    /// `*`: every binding.
    Wildcard,
    /// The bindings named, each with its own `expires` parameter if it has one.
    List(Vec<(String, Option<u32>)>),
}

/// A change to an account's bindings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The account (the AOR, resolved through aliases).
    pub account: AccountId,
    /// Remove every binding (`Contact: *`, `Expires: 0`).
    pub remove_all: bool,
    /// The bindings to set, each with its granted lifetime in seconds (0: remove it).
    pub bindings: Vec<(String, u32)>,
    /// User-Agent.
    pub user_agent: String,
    /// Transport.
    pub transport: String,
    /// Source address.
    pub source: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// When it was received.
    pub now: DateTime<Utc>,
}

/// The registrar's lifetimes: default when none is asked for, minimum and maximum (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Granted when the request names none.
    pub default: u32,
    /// A shorter one (other than 0) is raised to this.
    pub min: u32,
    /// A longer one is lowered to this; 0: no maximum.
    pub max: u32,
}

impl Default for Lifetimes {
    /// Kamailio's registrar defaults with the shipped configuration's maximum.
    fn default() -> Self {
        Self {
            default: 3600,
            min: 60,
            max: 3600,
        }
    }
}

impl Lifetimes {
    /// The lifetime granted for `asked` seconds (`None`: the default).
    pub fn grant(&self, asked: Option<u32>) -> u32 {
        let asked = asked.unwrap_or(self.default);
        if asked == 0 {
            return 0;
        }
        let raised = asked.max(self.min);
        if self.max == 0 {
            raised
        } else {
            raised.min(self.max)
        }
    }
}

fn invalid(field: &str, why: impl Into<String>) -> ServiceError {
    ServiceError::invalid(field, why)
}

/// Splits a header value at the commas outside `<…>` and quoted strings.
fn split_entries(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// One Contact entry: its URI and its `expires` parameter.
fn parse_entry(entry: &str) -> Result<(String, Option<u32>), ServiceError> {
    let entry = entry.trim();
    // name-addr: [display-name] <URI> *(;param); addr-spec: URI *(;param), where the URI's own
    // parameters cannot be told from the header's, so every one is the header's (RFC 3261
    // §20.10) and the URI is the part before the first `;`.
    let (uri, params) = match entry.find('<') {
        Some(open) => {
            let rest = &entry[open + 1..];
            let close = rest
                .find('>')
                .ok_or_else(|| invalid("contact", format!("'{entry}' has no closing '>'")))?;
            (&rest[..close], &rest[close + 1..])
        }
        None => match entry.find(';') {
            Some(semi) => (&entry[..semi], &entry[semi..]),
            None => (entry, ""),
        },
    };
    let uri = uri.trim();
    let scheme = uri.split(':').next().unwrap_or_default();
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
        || uri.len() <= scheme.len() + 1
    {
        return Err(invalid(
            "contact",
            format!("'{uri}' is not a sip: or sips: URI"),
        ));
    }
    if uri.len() > MAX_CONTACT_LEN {
        return Err(invalid(
            "contact",
            format!("a Contact URI is at most {MAX_CONTACT_LEN} bytes"),
        ));
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "contact",
            "a Contact URI has no spaces or control characters",
        ));
    }
    let mut expires = None;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("expires") {
            let value = value.trim();
            expires = Some(value.parse::<u32>().map_err(|_| {
                invalid(
                    "contact",
                    format!("expires={value} is not a number of seconds"),
                )
            })?);
        }
    }
    Ok((uri.to_owned(), expires))
}

/// Reads the Contact header value(s) of a REGISTER (several headers joined with commas).
pub fn parse_contacts(text: &str) -> Result<Contacts, ServiceError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Contacts::None);
    }
    if text == "*" {
        return Ok(Contacts::Wildcard);
    }
    let entries = split_entries(text);
    if entries.iter().any(|e| e.trim() == "*") {
        return Err(invalid(
            "contact",
            "'*' must be the only Contact of a REGISTER",
        ));
    }
    if entries.len() > MAX_DEVICES {
        return Err(invalid(
            "contact",
            format!("at most {MAX_DEVICES} Contacts in one REGISTER"),
        ));
    }
    entries
        .into_iter()
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()
        .map(Contacts::List)
}

/// A REGISTER as the proxy reports it, before checks.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    /// The address of record (To URI).
    pub aor: String,
    /// Every Contact header value, comma-joined; `*`; or empty.
    pub contact: String,
    /// The Expires header.
    pub expires: Option<i64>,
    /// User-Agent.
    pub user_agent: String,
    /// Transport.
    pub transport: String,
    /// Source `ip:port`.
    pub source: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: i64,
    /// The registrar's lifetimes, when it states them.
    pub lifetimes: Lifetimes,
}

/// The transports a registration may name.
const TRANSPORTS: [&str; 6] = ["udp", "tcp", "tls", "sctp", "ws", "wss"];

impl RegisterInput {
    /// Checks everything but the account (which the caller resolves from `aor`).
    pub fn check(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Registration, ServiceError> {
        let contacts = parse_contacts(&self.contact)?;
        let header =
            match self.expires {
                None => None,
                Some(e) => Some(u32::try_from(e).map_err(|_| {
                    invalid("expires", "must be a whole number of seconds, 0 or more")
                })?),
            };
        let transport = self.transport.trim().to_ascii_lowercase();
        if !TRANSPORTS.contains(&transport.as_str()) {
            return Err(invalid(
                "transport",
                format!("must be one of {}", TRANSPORTS.join(", ")),
            ));
        }
        let source = self.source.trim();
        if source.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "source",
                format!("'{source}' is not an ip:port address"),
            ));
        }
        // The same rules as a call record's Call-ID.
        let call_id = crate::calls::text("call_id", &self.call_id, 255, true)?;
        let cseq = u32::try_from(self.cseq)
            .map_err(|_| invalid("cseq", "must be a whole number from 0 to 4294967295"))?;
        let mut user_agent: String = self
            .user_agent
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if user_agent.len() > MAX_USER_AGENT_LEN {
            let mut end = MAX_USER_AGENT_LEN;
            while !user_agent.is_char_boundary(end) {
                end -= 1;
            }
            user_agent.truncate(end);
        }
        let (remove_all, bindings) = match contacts {
            Contacts::None => (false, Vec::new()),
            Contacts::Wildcard => {
                if header != Some(0) {
                    return Err(invalid(
                        "contact",
                        "'*' removes every binding and needs Expires: 0",
                    ));
                }
                (true, Vec::new())
            }
            Contacts::List(list) => (
                false,
                list.into_iter()
                    .map(|(uri, own)| (uri, self.lifetimes.grant(own.or(header))))
                    .collect(),
            ),
        };
        Ok(Registration {
            account,
            remove_all,
            bindings,
            user_agent,
            transport,
            source: source.to_owned(),
            call_id,
            cseq,
            now,
        })
    }
}

impl Services {
    /// Applies a REGISTER the proxy's registrar accepted (SPEC §10): `NotFound` when the
    /// address of record's domain is not served here or no account or alias has that address
    /// (a proxy tells this apart from a refusal of its own certificate, `403`), `Invalid` naming what is malformed, `Conflict` past [`MAX_DEVICES`]
    /// bindings. Answers the account and its devices after the change.
    pub async fn register_devices(
        &self,
        input: &RegisterInput,
    ) -> Result<(AccountId, Vec<Device>), ServiceError> {
        let aor = input.aor.trim();
        if aor.is_empty() {
            return Err(invalid("aor", "is required"));
        }
        let uri = crate::sip::SipUri::parse_for("aor", aor)?;
        let domain = Domain::parse(uri.host()).map_err(|e| e.renamed("aor"))?;
        if !self.store().domain_exists(&domain).await? {
            return Err(ServiceError::NotFound(format!(
                "{domain} is not a domain served here"
            )));
        }
        let account = self
            .resolve_local(&uri)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no account has the address {aor}")))?;
        let registration = input.check(account.clone(), self.clock().now())?;
        let devices = self
            .store()
            .register(&registration)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => ServiceError::Conflict(m),
                other => other.into(),
            })?;
        Ok((account, devices))
    }

    /// The account's devices that have not lapsed, most recently registered first.
    pub async fn devices(&self, id: &AccountId) -> Result<Vec<Device>, ServiceError> {
        Ok(self.store().list_devices(id, self.clock().now()).await?)
    }

    /// Whether the account has a device whose binding has not lapsed.
    pub async fn is_online(&self, id: &AccountId) -> Result<bool, ServiceError> {
        Ok(self
            .store()
            .device_expiry(id)
            .await?
            .is_some_and(|at| at > self.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_split_outside_brackets_and_quotes() {
        let c = parse_contacts(
            r#""Al, ice" <sip:a@1.2.3.4:5060;transport=tcp>;expires=60, sip:b@h;q=0.5;EXPIRES=0"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Contacts::List(vec![
                ("sip:a@1.2.3.4:5060;transport=tcp".to_owned(), Some(60)),
                ("sip:b@h".to_owned(), Some(0)),
            ])
        );
        assert_eq!(parse_contacts(" * ").unwrap(), Contacts::Wildcard);
        assert_eq!(parse_contacts("").unwrap(), Contacts::None);
    }

    #[test]
    fn bad_contacts_are_named() {
        for (text, why) in [
            ("<sip:a@h", "closing"),
            ("http://x", "sip: or sips:"),
            ("sip:", "sip: or sips:"),
            ("<sip:a@h>;expires=soon", "expires=soon"),
            ("*, sip:a@h", "only Contact"),
            ("<sip:a b@h>", "spaces"),
        ] {
            let e = parse_contacts(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_binding_never_lapses_early_and_shows_its_whole_seconds() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:00:12.700Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = lapses_at(now, 60);
        assert_eq!(at, now.timestamp() + 61);
        let device = Device {
            contact: "sip:a@h".into(),
            user_agent: String::new(),
            transport: "udp".into(),
            source: "192.0.2.1:5060".into(),
            call_id: "c".into(),
            cseq: 1,
            registered_at: now,
            expires_at: DateTime::from_timestamp(at, 0).unwrap(),
        };
        assert_eq!(device.expires_in(now), 60);
        assert_eq!(
            device.expires_in(now + chrono::Duration::milliseconds(400)),
            59
        );
        assert_eq!(device.expires_in(now + chrono::Duration::seconds(61)), 0);
        let whole = DateTime::from_timestamp(now.timestamp(), 0).unwrap();
        assert_eq!(lapses_at(whole, 60), whole.timestamp() + 60);
    }

    #[test]
    fn lifetimes_are_raised_and_capped() {
        let l = Lifetimes::default();
        assert_eq!(l.grant(None), 3600);
        assert_eq!(l.grant(Some(0)), 0);
        assert_eq!(l.grant(Some(5)), 60);
        assert_eq!(l.grant(Some(7200)), 3600);
        let open = Lifetimes {
            default: 100,
            min: 0,
            max: 0,
        };
        assert_eq!(open.grant(Some(99_999)), 99_999);
        assert_eq!(open.grant(Some(1)), 1);
    }

    fn input() -> RegisterInput {
        RegisterInput {
            aor: "sip:alice@example.com".into(),
            contact: "<sip:alice@127.0.0.1:5061>".into(),
            expires: Some(120),
            user_agent: "phone\u{7}/1".into(),
            transport: "UDP".into(),
            source: "127.0.0.1:5061".into(),
            call_id: "c1".into(),
            cseq: 2,
            lifetimes: Lifetimes::default(),
        }
    }

    #[test]
    fn a_register_is_checked_and_granted() {
        let id = AccountId::parse("alice@example.com").unwrap();
        let r = input().check(id.clone(), Utc::now()).unwrap();
        assert_eq!(
            r.bindings,
            vec![("sip:alice@127.0.0.1:5061".to_owned(), 120)]
        );
        assert_eq!(r.transport, "udp");
        assert_eq!(r.user_agent, "phone/1");
        let wildcard_without_zero = RegisterInput {
            contact: "*".into(),
            ..input()
        };
        assert!(wildcard_without_zero.check(id.clone(), Utc::now()).is_err());
        let wildcard = RegisterInput {
            contact: "*".into(),
            expires: Some(0),
            ..input()
        };
        assert!(wildcard.check(id.clone(), Utc::now()).unwrap().remove_all);
        for (bad, field) in [
            (
                RegisterInput {
                    transport: "carrier-pigeon".into(),
                    ..input()
                },
                "transport",
            ),
            (
                RegisterInput {
                    source: "somewhere".into(),
                    ..input()
                },
                "source",
            ),
            (
                RegisterInput {
                    cseq: -1,
                    ..input()
                },
                "cseq",
            ),
            (
                RegisterInput {
                    expires: Some(-5),
                    ..input()
                },
                "expires",
            ),
            (
                RegisterInput {
                    call_id: "a b".into(),
                    ..input()
                },
                "call_id",
            ),
        ] {
            let e = bad.check(id.clone(), Utc::now()).unwrap_err();
            assert!(
                matches!(&e, ServiceError::Invalid { field: f, .. } if f == field),
                "{field}: {e:?}"
            );
        }
    }
}
