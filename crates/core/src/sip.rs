//! SIP addresses as settings use them: [`SipUri`] (`sip:`/`sips:` `user@host[:port]`), the five
//! forwarding [`Condition`]s and a forwarding [`DiversionTarget`], parsed from what subscribers
//! type into canonical form.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::ids::{AccountId, Domain, E164, UserPart, printable, whole_number};
use crate::routing::Caller;

/// Longest forwarding target or URI, in bytes.
pub const MAX_URI_BYTES: usize = 255;

/// A SIP or SIPS URI `sip:[user@]host[:port]`, scheme and host lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SipUri {
    secure: bool,
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

fn user_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,".contains(c)
}

fn host_ok(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl SipUri {
    /// Parses a `sip:` or `sips:` URI for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let bad = |why: &str| ServiceError::invalid(field, format!("'{}' {why}", printable(input)));
        check_text(field, input)?;
        let lower = input.to_ascii_lowercase();
        let (secure, rest) = if lower.starts_with("sips:") {
            (true, &input[5..])
        } else if lower.starts_with("sip:") {
            (false, &input[4..])
        } else {
            return Err(bad("is not a sip: or sips: URI"));
        };
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if user.is_some_and(|u| u.is_empty() || !u.chars().all(user_char_ok)) {
            return Err(bad("has an invalid user part"));
        }
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("has an invalid port"))?;
        let host = host.to_ascii_lowercase();
        if !host_ok(&host) {
            return Err(bad("has an invalid host"));
        }
        Ok(Self {
            secure,
            user: user.map(str::to_owned),
            host,
            port,
        })
    }

    /// `sip:user@domain` of a local address.
    pub fn of_account(id: &AccountId) -> Self {
        Self {
            secure: false,
            user: Some(id.user().as_str().to_owned()),
            host: id.domain().as_str().to_owned(),
            port: None,
        }
    }

    /// `sip:number@domain`.
    pub fn of_number(number: &str, domain: &Domain) -> Self {
        Self {
            secure: false,
            user: Some(number.to_owned()),
            host: domain.as_str().to_owned(),
            port: None,
        }
    }

    /// The same URI without its port: an address as a caller is matched (user and host).
    pub fn without_port(&self) -> Self {
        Self {
            port: None,
            ..self.clone()
        }
    }

    /// The user part, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the scheme is `sips:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The URI without the `sip:` prefix (a `sips:` URI keeps its scheme), as object D shows it.
    pub fn without_sip_prefix(&self) -> String {
        let s = self.to_string();
        match s.strip_prefix("sip:") {
            Some(rest) => rest.to_owned(),
            None => s,
        }
    }
}

fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        let (host, rest) = hostport.split_at(end + 1);
        return match rest.strip_prefix(':') {
            None if rest.is_empty() => Some((host, None)),
            Some(p) => whole_number::<u16>(p)
                .filter(|p| *p > 0)
                .map(|p| (host, Some(p))),
            None => None,
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => whole_number::<u16>(p)
            .filter(|p| *p > 0)
            .map(|p| (h, Some(p))),
        None => Some((hostport, None)),
    }
}

/// Refuses control characters and over-long text.
fn check_text(field: &str, input: &str) -> Result<(), ServiceError> {
    if input.chars().any(char::is_control) {
        return Err(ServiceError::invalid(field, "contains control characters"));
    }
    if input.len() > MAX_URI_BYTES {
        return Err(ServiceError::invalid(
            field,
            format!("is longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    Ok(())
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for SipUri {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_for("uri", &value)
    }
}

impl From<SipUri> for String {
    fn from(value: SipUri) -> Self {
        value.to_string()
    }
}

/// A forwarding condition of the seed API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Condition {
    /// All calls (unconditional).
    #[serde(rename = "FUNC")]
    Unconditional,
    /// When not online (no registered device).
    #[serde(rename = "FNOL")]
    NotOnline,
    /// On busy.
    #[serde(rename = "FBUS")]
    Busy,
    /// On no answer after the no-answer timeout.
    #[serde(rename = "FNOA")]
    NoAnswer,
    /// When not available according to the accept rules or DND.
    #[serde(rename = "FUNV")]
    NotAvailable,
}

impl Condition {
    /// All conditions, in the order object D lists them.
    pub const ALL: [Condition; 5] = [
        Condition::Unconditional,
        Condition::NotOnline,
        Condition::Busy,
        Condition::NoAnswer,
        Condition::NotAvailable,
    ];

    /// The seed's name (`FUNC` …).
    pub fn code(self) -> &'static str {
        match self {
            Self::Unconditional => "FUNC",
            Self::NotOnline => "FNOL",
            Self::Busy => "FBUS",
            Self::NoAnswer => "FNOA",
            Self::NotAvailable => "FUNV",
        }
    }

    /// The condition for a seed name.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The RFC 5806 `Diversion` reason a forward for this condition carries.
    pub fn diversion_reason(self) -> &'static str {
        match self {
            Self::Unconditional => "unconditional",
            Self::NotOnline => "unavailable",
            Self::Busy => "user-busy",
            Self::NoAnswer => "no-answer",
            Self::NotAvailable => "time-of-day",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a condition forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiversionTarget {
    /// A SIP URI.
    Uri(SipUri),
    /// The account's own voice mailbox.
    VoiceMailbox,
    /// The account's mobile number (resolved when a call is routed).
    MobileNumber,
}

/// The stored/echoed token of the voice-mailbox target.
pub const VOICE_MAILBOX: &str = "<voice-mailbox>";
/// The stored/echoed token of the mobile-number target.
pub const MOBILE_NUMBER: &str = "<mobile-number>";

impl DiversionTarget {
    /// Parses what a subscriber typed for `condition` of account `own`, into canonical form.
    /// Checks syntax only; whether the target is allowed (voicemail enabled, a mobile number
    /// set, not the account itself, no loop) is the service's business.
    ///
    /// Text that starts with white space followed by a digit 1–9 is refused: it is what
    /// `+31…` becomes when the `+` is sent unencoded in a query string or form body (where `+`
    /// means a space), and trimming it would silently store the user name `31…` instead of the
    /// number. (A leading `0` is a national number either way, so ` 0612…` is accepted.)
    pub fn parse(condition: Condition, input: &str, own: &AccountId) -> Result<Self, ServiceError> {
        Self::parse_for(condition.code(), input, own)
    }

    /// [`DiversionTarget::parse`] for a target named `field` in errors (a step of a forwarding
    /// rule: `rules[2].steps[0].targets[1]`).
    pub fn parse_for(field: &str, input: &str, own: &AccountId) -> Result<Self, ServiceError> {
        check_text(field, input)?;
        let s = input.trim();
        if input.starts_with(char::is_whitespace)
            && s.starts_with(|c: char| c.is_ascii_digit() && c != '0')
        {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' starts with a space before a number: write an international number \
                     as +{}, and URL-encode the + as %2B (an unencoded + arrives as a space)",
                    printable(input),
                    printable(s)
                ),
            ));
        }
        if s == VOICE_MAILBOX {
            return Ok(Self::VoiceMailbox);
        }
        if s == MOBILE_NUMBER {
            return Ok(Self::MobileNumber);
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("sip:") || lower.starts_with("sips:") {
            return SipUri::parse_for(field, s).map(Self::Uri);
        }
        if s.contains('@') {
            return SipUri::parse_for(field, &format!("sip:{s}")).map(Self::Uri);
        }
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let looks_like_number = (compact.starts_with('+') || compact.starts_with('0'))
            && compact.len() > 1
            && compact[1..].bytes().all(|b| b.is_ascii_digit());
        if looks_like_number {
            let number = if let Some(intl) = compact.strip_prefix("00") {
                E164::parse_for(field, &format!("+{intl}"))?.to_string()
            } else if compact.starts_with('+') {
                E164::parse_for(field, &compact)?.to_string()
            } else {
                if compact.len() > 16 {
                    return Err(ServiceError::invalid(
                        field,
                        format!("'{}' is too long for a phone number", printable(input)),
                    ));
                }
                compact
            };
            return Ok(Self::Uri(SipUri::of_number(&number, own.domain())));
        }
        let user = UserPart::parse_for(field, s).map_err(|_| {
            ServiceError::invalid(
                field,
                format!(
                    "'{}' is not a SIP address, a user name, a phone number, {VOICE_MAILBOX} or {MOBILE_NUMBER}",
                    printable(input)
                ),
            )
        })?;
        Ok(Self::Uri(SipUri::of_account(&AccountId::new(
            user,
            own.domain().clone(),
        ))))
    }

    /// The stored form: the URI, or the token.
    pub fn stored(&self) -> String {
        match self {
            Self::Uri(u) => u.to_string(),
            Self::VoiceMailbox => VOICE_MAILBOX.to_owned(),
            Self::MobileNumber => MOBILE_NUMBER.to_owned(),
        }
    }

    /// Parses the stored form.
    pub fn from_stored(s: &str) -> Result<Self, ServiceError> {
        match s {
            VOICE_MAILBOX => Ok(Self::VoiceMailbox),
            MOBILE_NUMBER => Ok(Self::MobileNumber),
            uri => SipUri::parse_for("target", uri).map(Self::Uri),
        }
    }

    /// The form object D shows: without the `sip:` prefix, or the token.
    pub fn shown(&self) -> String {
        match self {
            Self::Uri(u) => u.without_sip_prefix(),
            other => other.stored(),
        }
    }
}

impl fmt::Display for DiversionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// The host of `sip:anonymous@anonymous.invalid`, the address of a caller who hides its
/// identity (RFC 3323 §4.1.1.3).
pub const ANONYMOUS_HOST: &str = "anonymous.invalid";

/// Parses an address as a proxy or an operator writes it, for the parameter `field`:
/// a `sip:`/`sips:` URI, `user@host`, or a `tel:` number, optionally as a name-addr
/// (`"Bob" <sip:bob@example.org>;tag=1`). URI parameters and headers (`;user=phone`,
/// `?subject=…`) and user parameters (`+3120…;phone-context=…`) are dropped: an address is
/// matched on its user and host. A `tel:` number becomes `sip:NUMBER@<tel_domain>` (the called
/// account's domain, the way numbers are routed here), visual separators (`-.()`) removed.
pub fn parse_address(
    field: &str,
    input: &str,
    tel_domain: &Domain,
) -> Result<SipUri, ServiceError> {
    if let Some(number) = tel_number(input) {
        let digits = number.strip_prefix('+').unwrap_or(&number);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid(
                field,
                format!("'{}' is not a tel: number", printable(input.trim())),
            ));
        }
        return Ok(SipUri::of_number(&number, tel_domain));
    }
    let uri = bare_uri(input.trim());
    let lower = uri.to_ascii_lowercase();
    let uri = if lower.starts_with("sip:") || lower.starts_with("sips:") {
        uri.to_owned()
    } else if uri.contains('@') {
        format!("sip:{uri}")
    } else {
        return Err(ServiceError::invalid(
            field,
            format!(
                "'{}' is not a SIP URI, user@host, tel: number or anonymous",
                printable(input.trim())
            ),
        ));
    };
    SipUri::parse_for(field, &without_parameters(&uri))
}

/// Which own address a callee address dialled, for the forwarding rules' called sets
/// (`core::forwarding::CalledSet`): the number of a `tel:` address, else the user part of the
/// address (an account's own user part, an alias's or a number), lowercased; `None` when it
/// has none or does not parse.
pub fn dialled_of(input: &str) -> Option<String> {
    if let Some(number) = tel_number(input) {
        return Some(number);
    }
    let placeholder = Domain::parse("tel.invalid").ok()?;
    let uri = parse_address("callee", input, &placeholder).ok()?;
    uri.user().map(str::to_ascii_lowercase)
}

/// Parses a caller: `anonymous`, `sip:anonymous@anonymous.invalid` or an address without a
/// user part are [`Caller::Anonymous`]; anything else as [`parse_address`], without its port
/// (a caller is matched on user and host).
pub fn parse_caller(field: &str, input: &str, tel_domain: &Domain) -> Result<Caller, ServiceError> {
    let s = input.trim();
    if s.eq_ignore_ascii_case("anonymous") {
        return Ok(Caller::Anonymous);
    }
    let uri = parse_address(field, s, tel_domain)?;
    let anonymous = match uri.user() {
        None => true,
        Some(u) => u.eq_ignore_ascii_case("anonymous") && uri.host() == ANONYMOUS_HOST,
    };
    Ok(if anonymous {
        Caller::Anonymous
    } else {
        Caller::Uri(uri.without_port())
    })
}

/// The number of a `tel:` address (bare or in a name-addr), without its parameters and
/// visual separators (`-.()`); `None` when `input` is not a `tel:` address.
pub fn tel_number(input: &str) -> Option<String> {
    let uri = bare_uri(input.trim());
    let rest = uri
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("tel:"))
        .and_then(|_| uri.get(4..))?;
    let number = rest.split([';', '?']).next().unwrap_or_default();
    Some(number.chars().filter(|c| !"-.()".contains(*c)).collect())
}

/// The URI of a name-addr (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`); an addr-spec as it is.
fn bare_uri(s: &str) -> &str {
    match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => s[open + 1..close].trim(),
        _ => s,
    }
}

/// `sip:user;p=1@host:5060;transport=tcp?h=v` → `sip:user@host:5060`.
fn without_parameters(uri: &str) -> String {
    let (scheme, rest) = uri.split_once(':').unwrap_or(("sip", uri));
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u.split(';').next().unwrap_or(u)), h),
        None => (None, rest),
    };
    let hostport = hostport.split([';', '?']).next().unwrap_or(hostport);
    match user {
        Some(u) => format!("{scheme}:{u}@{hostport}"),
        None => format!("{scheme}:{hostport}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> AccountId {
        AccountId::parse("alice@example.com").unwrap()
    }

    #[test]
    fn callers_with_parameters_name_addrs_and_tel_numbers() {
        let d = Domain::parse("example.com").unwrap();
        let uri = |s: &str| match parse_caller("caller", s, &d).unwrap() {
            Caller::Uri(u) => u.to_string(),
            Caller::Anonymous => "anonymous".to_owned(),
        };
        assert_eq!(uri("sip:bob@example.org"), "sip:bob@example.org");
        assert_eq!(uri("sip:bob@example.org;user=phone"), "sip:bob@example.org");
        assert_eq!(
            uri("sip:bob@Example.ORG:5080;transport=tcp?subject=x"),
            "sip:bob@example.org"
        );
        assert_eq!(
            uri("\"Bob, Jr.\" <sip:bob@example.org;lr>;tag=1928301774"),
            "sip:bob@example.org"
        );
        assert_eq!(
            uri("<sips:bob@[2001:db8::1]:5061>"),
            "sips:bob@[2001:db8::1]"
        );
        assert_eq!(
            uri("sip:+31201234567;npdi@example.org;user=phone"),
            "sip:+31201234567@example.org"
        );
        assert_eq!(
            uri("tel:+31-20-123-4567;phone-context=+31"),
            "sip:+31201234567@example.com"
        );
        assert_eq!(
            uri("<tel:+31201234567>;tag=9"),
            "sip:+31201234567@example.com"
        );
        assert_eq!(uri("bob@example.org"), "sip:bob@example.org");
        assert_eq!(uri("anonymous"), "anonymous");
        assert_eq!(
            uri("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1"),
            "anonymous"
        );
        assert_eq!(uri("sip:example.org"), "anonymous");
        assert_eq!(
            uri("sip:anonymous@example.org"),
            "sip:anonymous@example.org"
        );
        for bad in [
            "tel:",
            "tel:+31x",
            "bob",
            "http://x",
            "sip:bob@exa mple.org",
        ] {
            let e = parse_caller("caller", bad, &d).unwrap_err();
            assert!(e.to_string().contains("caller"), "{bad}: {e}");
        }
    }

    #[test]
    fn targets_normalise() {
        let cases = [
            (
                "sip:Bob@Example.ORG",
                "bob@example.org".replace("bob", "Bob"),
            ),
            (
                "sips:bob@example.org:5061",
                "sips:bob@example.org:5061".to_owned(),
            ),
            ("bob@example.org", "bob@example.org".to_owned()),
            ("Bob", "bob@example.com".to_owned()),
            ("+31 20 123 4567", "+31201234567@example.com".to_owned()),
            ("0031201234567", "+31201234567@example.com".to_owned()),
            ("020-1234567", "0201234567@example.com".to_owned()),
            ("1234", "1234@example.com".to_owned()),
            (" 0201234567", "0201234567@example.com".to_owned()),
            (" bob ", "bob@example.com".to_owned()),
            ("<voice-mailbox>", "<voice-mailbox>".to_owned()),
            ("<mobile-number>", "<mobile-number>".to_owned()),
            ("sip:[2001:db8::1]:5060", "[2001:db8::1]:5060".to_owned()),
        ];
        for (input, shown) in cases {
            let t = DiversionTarget::parse(Condition::Unconditional, input, &alice()).unwrap();
            assert_eq!(t.shown(), shown, "{input}");
            assert_eq!(DiversionTarget::from_stored(&t.stored()).unwrap(), t);
        }
    }

    #[test]
    fn bad_targets_name_the_condition() {
        let long = format!("sip:{}@example.com", "a".repeat(260));
        for input in [
            "sip:",
            "bob@",
            "bo b@example.com",
            "sip:bob@exa mple.com",
            "a\u{1}b",
            &long,
            "<voicemail>",
            "+0123",
            "sip:bob@host:99999",
            "sip:bob@host:+5060",
            "sip:[2001:db8::1]:+5060",
            "ftp://x",
        ] {
            let err = DiversionTarget::parse(Condition::Busy, input, &alice()).unwrap_err();
            assert_eq!(err.field(), Some("FBUS"), "{input}");
        }
    }

    #[test]
    fn an_unencoded_plus_is_refused_not_taken_for_a_user_name() {
        // `FNOA=+31201234567` sent without encoding the `+` arrives as " 31201234567".
        for input in [
            " 31201234567",
            "  31 20 123 4567",
            "\u{a0}31201234567",
            " 1234",
        ] {
            let err = DiversionTarget::parse(Condition::NoAnswer, input, &alice()).unwrap_err();
            assert_eq!(err.field(), Some("FNOA"), "{input}");
            assert!(err.to_string().contains("%2B"), "{input}: {err}");
        }
        // Encoded, it is the number.
        let t = DiversionTarget::parse(Condition::NoAnswer, "+31201234567", &alice()).unwrap();
        assert_eq!(t.shown(), "+31201234567@example.com");
    }
}
