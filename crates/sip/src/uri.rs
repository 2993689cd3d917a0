//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966): [`parse_uri`] splits one into scheme,
//! user, host, port, parameters and headers. Other schemes are refused with a reason saying
//! "unsupported URI scheme", which the redirect server answers with 416. The syntax checks here
//! are the ones a redirect server needs (no whitespace, valid escapes, a host, a port that fits);
//! they do not validate every character class of the RFC grammar.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use crate::message::{Clip, ParseError};

/// The schemes a redirect server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:` (RFC 3261).
    Sip,
    /// `sips:` (RFC 3261), SIP over TLS end to end.
    Sips,
    /// `tel:` (RFC 3966), a telephone number.
    Tel,
}

impl Scheme {
    /// The scheme's name in lower case, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// A parsed `sip:`, `sips:` or `tel:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// The user part, percent-decoded (a password after `:` is dropped); for `tel:` the number,
    /// including a leading `+`, with the visual separators `-` `.` `(` `)` removed.
    pub user: Option<String>,
    /// The host in lower case; an IPv6 reference keeps its brackets. Empty for `tel:`.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
    /// The URI parameters in order: names lower-case, names and values percent-decoded.
    pub params: Vec<(String, Option<String>)>,
    /// The header component after `?`, as received (not decoded).
    pub headers: Option<String>,
}

impl Uri {
    /// The parameter `name` (case-insensitive): `None` if absent, `Some(None)` if present
    /// without a value (`;lr`), `Some(Some(v))` with one.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// Parses a `sip:`, `sips:` or `tel:` URI (scheme case-insensitive). Any other well-formed
/// scheme is refused with a reason that says "unsupported URI scheme" (the server answers 416);
/// text that is not a URI at all is refused as malformed.
pub fn parse_uri(s: &str) -> Result<Uri, ParseError> {
    let Some((scheme, rest)) = split_scheme(s) else {
        return Err(ParseError::new(format!(
            "not a URI (no scheme): {c0}",
            c0 = Clip(s, 60)
        )));
    };
    let uri = if scheme.eq_ignore_ascii_case("sip") {
        parse_sip(Scheme::Sip, rest)
    } else if scheme.eq_ignore_ascii_case("sips") {
        parse_sip(Scheme::Sips, rest)
    } else if scheme.eq_ignore_ascii_case("tel") {
        parse_tel(rest)
    } else {
        return Err(ParseError::new(format!(
            "unsupported URI scheme {scheme:.40}"
        )));
    };
    uri.map_err(|why| ParseError::new(format!("{why} in URI {c0}", c0 = Clip(s, 80))))
}

/// Splits `scheme:rest` when `scheme` is `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
/// (RFC 3986 §3.1).
pub(crate) fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_alpha = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let others = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_alpha && others).then_some((scheme, rest))
}

/// Whether every byte may appear in a URI as sent (printable ASCII except `<`, `>`, `"`):
/// no whitespace, no control characters, no raw non-ASCII (those must be escaped).
pub(crate) fn uri_chars_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'<' | b'>' | b'"'))
}

fn parse_sip(scheme: Scheme, rest: &str) -> Result<Uri, String> {
    if !uri_chars_ok(rest) {
        return Err("whitespace, a control character, a quote, <, > or unescaped non-ASCII".into());
    }
    // '@' cannot appear unescaped in a parameter or header, so the first one ends the userinfo
    // (the user part itself may hold ';', '?', '/' and ',': RFC 3261 user-unreserved).
    let (user, hostpart) = match rest.split_once('@') {
        Some((userinfo, hostpart)) => {
            let user = userinfo
                .split_once(':')
                .map_or(userinfo, |(u, _password)| u);
            if user.is_empty() {
                return Err("an empty user part".into());
            }
            (Some(percent_decode(user)?.into_owned()), hostpart)
        }
        None => (None, rest),
    };
    let (hostport, after) = match hostpart.find([';', '?']) {
        Some(i) => hostpart.split_at_checked(i).unwrap_or((hostpart, "")),
        None => (hostpart, ""),
    };
    let (host, port) = split_hostport(hostport)?;
    let (params_text, headers) = match after.split_once('?') {
        Some((p, h)) => (p, Some(h.to_owned())),
        None => (after, None),
    };
    Ok(Uri {
        scheme,
        user,
        host: host.to_ascii_lowercase(),
        port,
        params: uri_params(params_text)?,
        headers,
    })
}

fn parse_tel(rest: &str) -> Result<Uri, String> {
    if !uri_chars_ok(rest) {
        return Err("whitespace, a control character, a quote, <, > or unescaped non-ASCII".into());
    }
    let (number, params_text) = match rest.find(';') {
        Some(i) => rest.split_at_checked(i).unwrap_or((rest, "")),
        None => (rest, ""),
    };
    let (global, digits) = match number.strip_prefix('+') {
        Some(d) => (true, d),
        None => (false, number),
    };
    let separator = |c: char| matches!(c, '-' | '.' | '(' | ')');
    // RFC 3966: a global number has digits; a local one hex digits, '*' and '#'.
    let ok = |c: char| {
        c.is_ascii_digit() || (!global && (c.is_ascii_hexdigit() || c == '*' || c == '#'))
    };
    if !digits.chars().all(|c| ok(c) || separator(c)) || !digits.chars().any(ok) {
        return Err(format!(
            "a malformed telephone number {c0}",
            c0 = Clip(number, 40)
        ));
    }
    let mut user = String::with_capacity(number.len());
    if global {
        user.push('+');
    }
    user.extend(digits.chars().filter(|&c| !separator(c)));
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(user),
        host: String::new(),
        port: None,
        params: uri_params(params_text)?,
        headers: None,
    })
}

/// Splits `host[:port]`, checking the host (a name, IPv4 address or bracketed IPv6 reference).
pub(crate) fn split_hostport(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(i) => {
                let (host, rest) = s.split_at_checked(i + 1).unwrap_or((s, ""));
                match rest {
                    "" => (host, None),
                    _ => match rest.strip_prefix(':') {
                        Some(p) => (host, Some(p)),
                        None => {
                            return Err(format!(
                                "unexpected {c0} after the IPv6 host",
                                c0 = Clip(rest, 20)
                            ));
                        }
                    },
                }
            }
            None => return Err("an IPv6 host without its closing ]".into()),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    check_host(host)?;
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

/// A host name, IPv4 address or `[IPv6]` reference.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("an invalid IPv6 address {c0}", c0 = Clip(host, 50))),
        };
    }
    let name_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if name_ok {
        Ok(())
    } else if host.is_empty() {
        Err("no host".into())
    } else {
        Err(format!("an invalid host {c0}", c0 = Clip(host, 50)))
    }
}

/// A port: 1 to 5 digits, at most 65535.
pub(crate) fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("an invalid port {c0}", c0 = Clip(p, 20)));
    }
    p.parse::<u16>()
        .map_err(|_| format!("port {p} is out of range"))
}

/// `;name[=value]` URI parameters (the text starts with `;` or is empty).
fn uri_params(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut params = Vec::new();
    let Some(text) = text.strip_prefix(';') else {
        return if text.is_empty() {
            Ok(params)
        } else {
            Err(format!("unexpected {c0}", c0 = Clip(text, 20)))
        };
    };
    for param in text.split(';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        if name.is_empty() {
            return Err("an empty URI parameter".into());
        }
        let name = percent_decode(name)?.to_ascii_lowercase();
        let value = match value {
            Some(v) => Some(percent_decode(v)?.into_owned()),
            None => None,
        };
        params.push((name, value));
    }
    Ok(params)
}

/// Decodes `%HH` escapes; the result must be UTF-8.
pub(crate) fn percent_decode(s: &str) -> Result<Cow<'_, str>, String> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(format!("a bad %-escape in {c0}", c0 = Clip(s, 40))),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| format!("%-escapes that are not UTF-8 in {c0}", c0 = Clip(s, 40)))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn err(s: &str) -> String {
        parse_uri(s).unwrap_err().reason
    }

    #[test]
    fn plain_sip_uri() {
        let u = parse_uri("sip:alice@Example.COM").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, None);
        assert!(u.params.is_empty());
        assert_eq!(u.headers, None);
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(parse_uri("SIP:host").unwrap().scheme, Scheme::Sip);
        assert_eq!(parse_uri("SiPs:host").unwrap().scheme, Scheme::Sips);
        assert_eq!(parse_uri("TEL:+1").unwrap().scheme, Scheme::Tel);
    }

    #[test]
    fn e164_user_with_user_phone() {
        let u = parse_uri("sip:+31201234567@example.com;user=phone").unwrap();
        assert_eq!(u.user.as_deref(), Some("+31201234567"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.param("user"), Some(Some("phone")));
        assert_eq!(u.param("USER"), Some(Some("phone")));
        assert_eq!(u.param("lr"), None);
    }

    #[test]
    fn ipv6_host_and_port() {
        let u = parse_uri("sip:bob@[2001:DB8::10]:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        let u = parse_uri("sips:[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.user), ("[::1]", None, None));
    }

    #[test]
    fn password_is_dropped_and_user_decoded() {
        let u = parse_uri("sip:sips%3Auser%40example.com:secret@example.net:5061").unwrap();
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(u.host, "example.net");
        assert_eq!(u.port, Some(5061));
    }

    #[test]
    fn escaped_params_are_decoded() {
        let u = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(u.user.as_deref(), Some("caller"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("name"), Some(Some("value%41")));
    }

    #[test]
    fn headers_are_kept_raw() {
        let u = parse_uri("sip:user@example.com?Route=%3Csip:example.com%3E").unwrap();
        assert_eq!(u.headers.as_deref(), Some("Route=%3Csip:example.com%3E"));
        assert!(u.params.is_empty());
    }

    #[test]
    fn unusual_user_characters() {
        // RFC 4475 intmeth: user-unreserved characters, then a password, then '@'.
        let u = parse_uri(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(u.host, "example.com");
    }

    #[test]
    fn tel_uris() {
        let u = parse_uri("tel:+31-20-(123).4567;phone-context=example.com;ext=12").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user.as_deref(), Some("+31201234567"));
        assert_eq!(u.host, "");
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        assert_eq!(u.param("ext"), Some(Some("12")));
        let local = parse_uri("tel:*31#;phone-context=+3120").unwrap();
        assert_eq!(local.user.as_deref(), Some("*31#"));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err("http://example.com/").contains("unsupported URI scheme http"));
        assert!(err("nobodyKnowsThisScheme:x").contains("unsupported URI scheme"));
        assert!(err("no scheme here").contains("not a URI"));
        assert!(err("<sip:a@b>").contains("not a URI"));
        assert!(err("sip:a@b c").contains("whitespace"));
        assert!(err("sip:a@").contains("no host"));
        assert!(err("sip:@example.com").contains("empty user"));
        assert!(err("sip:a@example.com:70000").contains("port 70000 is out of range"));
        assert!(err("sip:a@example.com:5x").contains("invalid port"));
        assert!(err("sip:a@[2001:db8::zz]").contains("invalid IPv6"));
        assert!(err("sip:a@[2001:db8::1").contains("closing ]"));
        assert!(err("sip:a%4@example.com").contains("bad %-escape"));
        assert!(err("sip:a%FF@example.com").contains("not UTF-8"));
        assert!(err("sip:example.com;;lr").contains("empty URI parameter"));
        assert!(err("tel:+31 20").contains("whitespace"));
        assert!(err("tel:+").contains("malformed telephone number"));
        assert!(err("tel:+31a").contains("malformed telephone number"));
        assert!(err("sip:ex ample.com").contains("URI \"sip:ex ample.com\""));
    }

    #[test]
    fn escaped_nul_is_kept() {
        let u = parse_uri("sip:null-%00-null@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("null-\0-null"));
    }
}
