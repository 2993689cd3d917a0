//! HTTP Digest authentication (RFC 7616) for the compatibility endpoint `settings.phtml`, the
//! pure parts: the `Authorization: Digest …` header parser, stateless nonces, the response
//! computation for MD5 and SHA-256 (`qop=auth` only) and the per-process `nc` replay tracker.
//!
//! * **Nonces** are `base64url(t || r || mac)`: `t` the issue time (Unix seconds, 8 bytes big
//!   endian), `r` 16 random bytes, `mac` the first 16 bytes of
//!   `HMAC-SHA256(key, "sip-settings digest nonce v1" || t || r || realm)`. Any server holding
//!   the key (the data directory's `web.key`) verifies any other's nonce without shared state.
//!   A nonce is good for [`NONCE_LIFETIME`]; past that a right answer gets `stale=true`.
//! * **Opaque** is the first 16 bytes, in hex, of
//!   `HMAC-SHA256(key, "sip-settings digest opaque v1" || realm)`: fixed per realm, checked when
//!   the client sends it back.
//! * **Replay**: [`NonceCounts`] remembers, per nonce, the highest `nc` accepted; a request whose
//!   `nc` is not higher is refused. The map is in memory, per process, bounded by
//!   [`MAX_TRACKED_NONCES`]; a nonce leaves it when it expires.
//!
//! Nothing here panics on bad input: the parser returns a [`DigestError`] naming what is wrong.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// How long a nonce is good for (as CDRTool: 300 s).
pub const NONCE_LIFETIME: Duration = Duration::seconds(300);

/// Most nonces whose `nc` is tracked at once, per process.
pub const MAX_TRACKED_NONCES: usize = 100_000;

/// Longest `Authorization` header value parsed, in bytes.
pub const MAX_HEADER_BYTES: usize = 4096;

const NONCE_LABEL: &[u8] = b"sip-settings digest nonce v1";
const OPAQUE_LABEL: &[u8] = b"sip-settings digest opaque v1";

/// A malformed or unsupported `Authorization: Digest` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError(pub String);

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest authorization: {}", self.0)
    }
}

impl std::error::Error for DigestError {}

fn bad(why: impl Into<String>) -> DigestError {
    DigestError(why.into())
}

/// A Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when the client names none).
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl Algorithm {
    /// The name in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// The hash of `data`, lower-case hex.
    pub fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The parsed parameters of an `Authorization: Digest` header (`qop=auth` only).
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `username`, as sent.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (the request target the client hashed).
    pub uri: String,
    /// `response`, lower-case hex.
    pub response: String,
    /// `algorithm`.
    pub algorithm: Algorithm,
    /// `cnonce`.
    pub cnonce: String,
    /// `nc` as sent (8 hex digits), for the hash.
    pub nc_text: String,
    /// `nc` as a number.
    pub nc: u32,
    /// `opaque`, if sent.
    pub opaque: Option<String>,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

fn skip_blanks(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
        chars.next();
    }
}

fn is_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

/// Splits `Digest k=v, k="v", …` into (lower-case key, value) pairs.
fn parameters(header: &str) -> Result<Vec<(String, String)>, DigestError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(bad(format!("longer than {MAX_HEADER_BYTES} bytes")));
    }
    let header = header.trim_start();
    let scheme_end = header.find([' ', '\t']).unwrap_or(header.len());
    let (scheme, rest) = header.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(bad("the scheme is not Digest"));
    }
    let mut chars = rest.chars().peekable();
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        while chars
            .peek()
            .is_some_and(|c| *c == ' ' || *c == '\t' || *c == ',')
        {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if !c.is_ascii_alphanumeric() && c != '-' && c != '_' {
                break;
            }
            key.push(c.to_ascii_lowercase());
            chars.next();
        }
        if key.is_empty() {
            return Err(bad("expected a parameter name"));
        }
        skip_blanks(&mut chars);
        if chars.next() != Some('=') {
            return Err(bad(format!("parameter {key} has no value")));
        }
        skip_blanks(&mut chars);
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(bad(format!("parameter {key}: unterminated quoted string")));
                    }
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) if !c.is_control() => value.push(c),
                        _ => return Err(bad(format!("parameter {key}: bad escape"))),
                    },
                    Some(c) if c.is_control() && c != '\t' => {
                        return Err(bad(format!("parameter {key}: control character")));
                    }
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if !is_token(c) {
                    break;
                }
                value.push(c);
                chars.next();
            }
            if value.is_empty() {
                return Err(bad(format!("parameter {key} has an empty value")));
            }
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("parameter {key} given twice")));
        }
        out.push((key, value));
        skip_blanks(&mut chars);
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return Err(bad("expected a comma between parameters")),
        }
    }
    Ok(out)
}

impl Authorization {
    /// Parses an `Authorization` header value. Refused: another scheme, a missing parameter,
    /// `qop` other than `auth`, an algorithm other than MD5 or SHA-256 (no `-sess`),
    /// `userhash=true`, a malformed `nc` or `response`.
    pub fn parse(header: &str) -> Result<Self, DigestError> {
        let params = parameters(header)?;
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let need = |k: &str| {
            get(k)
                .cloned()
                .ok_or_else(|| bad(format!("{k} is missing")))
        };
        let algorithm = match get("algorithm").map(String::as_str) {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(_) => return Err(bad("algorithm must be MD5 or SHA-256")),
        };
        match get("qop").map(String::as_str) {
            Some("auth") => {}
            None => return Err(bad("qop is missing (only qop=auth is accepted)")),
            Some(_) => return Err(bad("only qop=auth is accepted")),
        }
        if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(bad("userhash is not supported"));
        }
        let nc_text = need("nc")?;
        if nc_text.len() != 8 || !nc_text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("nc must be 8 hexadecimal digits"));
        }
        let nc = u32::from_str_radix(&nc_text, 16).map_err(|_| bad("nc is not a number"))?;
        if nc == 0 {
            return Err(bad("nc must be at least 1"));
        }
        let response = need("response")?.to_ascii_lowercase();
        let expected_len = match algorithm {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        };
        if response.len() != expected_len || !response.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "response must be {expected_len} hexadecimal digits for {}",
                algorithm.as_str()
            )));
        }
        Ok(Self {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response,
            algorithm,
            cnonce: need("cnonce")?,
            nc_text,
            nc,
            opaque: get("opaque").cloned(),
        })
    }

    /// The response expected for `method` from `ha1` (hex of `H(user:realm:password)`).
    pub fn expected(&self, ha1: &str, method: &str) -> String {
        response(
            self.algorithm,
            ha1,
            &self.nonce,
            &self.nc_text,
            &self.cnonce,
            method,
            &self.uri,
        )
    }

    /// Whether the response is the one `ha1` gives, compared in constant time.
    pub fn matches(&self, ha1: &str, method: &str) -> bool {
        constant_time_eq(
            self.expected(ha1, method).as_bytes(),
            self.response.as_bytes(),
        )
    }
}

/// `H(HA1:nonce:nc:cnonce:auth:H(method:uri))` (RFC 7616 §3.4.1, `qop=auth`).
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by a server with our key for this realm, within its lifetime.
    Fresh,
    /// Ours, but older than [`NONCE_LIFETIME`] (answer `stale=true`).
    Stale,
    /// Not ours, for another realm, or malformed.
    Invalid,
}

/// Issues and checks nonces and opaque values with a server key, and tracks `nc` per nonce.
pub struct Nonces {
    key: [u8; 32],
    counts: NonceCounts,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Nonces {
    /// Nonces signed with `key` (the web page's key; the labels keep the uses apart).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            counts: NonceCounts::new(MAX_TRACKED_NONCES),
        }
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(label);
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A new nonce for `realm`, issued at `now`.
    pub fn issue(&self, realm: &str, now: DateTime<Utc>) -> String {
        let t = now.timestamp().to_be_bytes();
        let mut r = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut r);
        let mac = self.mac(NONCE_LABEL, &[&t, &r, realm.as_bytes()]);
        let mut raw = Vec::with_capacity(40);
        raw.extend_from_slice(&t);
        raw.extend_from_slice(&r);
        raw.extend_from_slice(&mac[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The opaque value of `realm`.
    pub fn opaque(&self, realm: &str) -> String {
        hex::encode(&self.mac(OPAQUE_LABEL, &[realm.as_bytes()])[..16])
    }

    /// Checks a nonce for `realm` at `now`.
    pub fn check(&self, nonce: &str, realm: &str, now: DateTime<Utc>) -> NonceCheck {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceCheck::Invalid;
        };
        if raw.len() != 40 {
            return NonceCheck::Invalid;
        }
        let (t, rest) = raw.split_at(8);
        let (r, mac) = rest.split_at(16);
        let want = self.mac(NONCE_LABEL, &[t, r, realm.as_bytes()]);
        if !constant_time_eq(mac, &want[..16]) {
            return NonceCheck::Invalid;
        }
        let mut secs = [0u8; 8];
        secs.copy_from_slice(t);
        let Some(issued) = DateTime::<Utc>::from_timestamp(i64::from_be_bytes(secs), 0) else {
            return NonceCheck::Invalid;
        };
        // A little clock skew between the servers of a cluster is tolerated.
        if now < issued - Duration::seconds(5) {
            return NonceCheck::Invalid;
        }
        if now >= issued + NONCE_LIFETIME {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }

    /// Records `nc` for a fresh nonce: `true` when it is higher than any accepted before for
    /// that nonce on this server (and the tracker has room), `false` for a replay.
    pub fn accept_count(&self, nonce: &str, nc: u32, now: DateTime<Utc>) -> bool {
        self.counts.accept(nonce, nc, now)
    }
}

/// The highest `nc` accepted per nonce, bounded; entries leave when their nonce expires.
#[derive(Debug)]
pub struct NonceCounts {
    cap: usize,
    seen: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl NonceCounts {
    /// A tracker of at most `cap` nonces.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts `nc` for `nonce` when it is higher than the last accepted. When the map is full
    /// of live nonces a new nonce is refused (the client is challenged again); only verified
    /// requests reach this, so only real users fill it.
    pub fn accept(&self, nonce: &str, nc: u32, now: DateTime<Utc>) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, _)) = seen.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if seen.len() >= self.cap {
            seen.retain(|_, (_, first)| *first + NONCE_LIFETIME > now);
            if seen.len() >= self.cap {
                return false;
            }
        }
        seen.insert(nonce.to_owned(), (nc, now));
        true
    }
}

/// The `WWW-Authenticate` value of a challenge.
pub fn challenge(
    algorithm: Algorithm,
    realm: &str,
    nonce: &str,
    opaque: &str,
    stale: bool,
) -> String {
    let quoted = realm.replace('\\', "\\\\").replace('"', "\\\"");
    let mut v = format!(
        "Digest realm=\"{quoted}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\", opaque=\"{opaque}\"",
        algorithm.as_str()
    );
    if stale {
        v.push_str(", stale=true");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1.
    const RFC: &str = "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
        uri=\"/dir/index.html\", algorithm=ALGO, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
        cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
        response=\"RESP\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    fn rfc(algo: &str, resp: &str) -> Authorization {
        Authorization::parse(&RFC.replace("ALGO", algo).replace("RESP", resp)).unwrap()
    }

    #[test]
    fn rfc_7616_examples() {
        let a1 = "Mufasa:http-auth@example.org:Circle of Life";
        let md5 = rfc("MD5", "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(md5.algorithm, Algorithm::Md5);
        assert_eq!(md5.username, "Mufasa");
        assert_eq!(md5.nc, 1);
        assert!(md5.matches(&Algorithm::Md5.hash(a1), "GET"));
        assert!(!md5.matches(&Algorithm::Md5.hash(a1), "POST"));
        assert!(!md5.matches(&Algorithm::Md5.hash("Mufasa:x:y"), "GET"));
        let sha = rfc(
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        );
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert!(sha.matches(&Algorithm::Sha256.hash(a1), "GET"));
        assert_eq!(
            sha.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let good = "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"/\", qop=auth, \
                    nc=00000001, cnonce=\"c\", response=\"00112233445566778899aabbccddeeff\"";
        assert!(Authorization::parse(good).is_ok());
        let cases: Vec<(String, &str)> = vec![
            ("Basic YWxpY2U6eA==".to_owned(), "scheme"),
            (good.replace("qop=auth", "qop=auth-int"), "qop=auth"),
            (good.replace(", qop=auth", ""), "qop"),
            (good.replace("nc=00000001", "nc=1"), "nc"),
            (good.replace("nc=00000001", "nc=0000000g"), "nc"),
            (good.replace("nc=00000001", "nc=00000000"), "nc"),
            (good.replace("username=\"a\", ", ""), "username"),
            (format!("{good}, algorithm=MD5-sess"), "algorithm"),
            (format!("{good}, userhash=true"), "userhash"),
            (format!("{good}, realm=\"x\""), "twice"),
            (good.replace("\"00112233", "\"zz112233"), "response"),
            (format!("{good}, algorithm=SHA-256"), "response"),
            ("Digest username=\"a".to_owned(), "unterminated"),
            ("Digest username=\"a\\".to_owned(), "escape"),
            ("Digest username".to_owned(), "no value"),
            ("Digest =x".to_owned(), "name"),
            ("Digest a=b c=d".to_owned(), "comma"),
            ("Digest a=".to_owned(), "empty"),
            (format!("Digest a=\"{}\"", "x".repeat(5000)), "longer"),
            ("Digest a=\"x\u{1}\"".to_owned(), "control"),
        ];
        for (header, why) in cases {
            let err = Authorization::parse(&header).unwrap_err();
            assert!(err.0.contains(why), "{header:?}: {err} should name {why}");
        }
        // Escapes and odd spacing are read as the RFC says; unknown parameters are ignored.
        let odd = "dIgEsT  username = \"a\\\"b\" ,,realm=\"r\",nonce=\"n\",uri=\"/\",\
                   qop=\"auth\",nc=0000000A,cnonce=\"c\",\
                   response=\"00112233445566778899AABBCCDDEEFF\",x=y";
        let a = Authorization::parse(odd).unwrap();
        assert_eq!(a.username, "a\"b");
        assert_eq!(a.nc, 10);
        assert_eq!(a.response, "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn parser_never_panics_on_any_prefix_or_suffix() {
        let text = RFC
            .replace("ALGO", "MD5")
            .replace("RESP", "8ca523f5e9506fed4657c9700eebdbec");
        for i in 0..text.len() {
            if text.is_char_boundary(i) {
                let _ = Authorization::parse(&text[..i]);
                let _ = Authorization::parse(&text[i..]);
            }
        }
        for s in [
            "Digest \u{0}",
            "Digest ,,,",
            "Digest \"",
            "Digest a=\"\\é\"",
            "Digest é=1",
            "",
            "Digest",
        ] {
            let _ = Authorization::parse(s);
        }
    }

    #[test]
    fn nonces_expire_and_belong_to_their_realm_and_key() {
        let n = Nonces::new([7; 32]);
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let nonce = n.issue("example.com", t0);
        assert_eq!(n.check(&nonce, "example.com", t0), NonceCheck::Fresh);
        let late = t0 + NONCE_LIFETIME - Duration::seconds(1);
        assert_eq!(n.check(&nonce, "example.com", late), NonceCheck::Fresh);
        let expired = t0 + NONCE_LIFETIME;
        assert_eq!(n.check(&nonce, "example.com", expired), NonceCheck::Stale);
        assert_eq!(n.check(&nonce, "example.org", t0), NonceCheck::Invalid);
        assert_eq!(
            Nonces::new([8; 32]).check(&nonce, "example.com", t0),
            NonceCheck::Invalid
        );
        assert_eq!(n.check("garbage!", "example.com", t0), NonceCheck::Invalid);
        assert_eq!(n.opaque("example.com"), n.opaque("example.com"));
        assert_ne!(n.opaque("example.com"), n.opaque("example.org"));
    }

    #[test]
    fn nc_must_grow_and_the_tracker_is_bounded() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let c = NonceCounts::new(2);
        assert!(c.accept("a", 1, t0));
        assert!(!c.accept("a", 1, t0));
        assert!(c.accept("a", 3, t0));
        assert!(!c.accept("a", 2, t0));
        assert!(c.accept("b", 1, t0));
        assert!(!c.accept("c", 1, t0), "full of live nonces");
        assert!(c.accept("c", 1, t0 + NONCE_LIFETIME), "expired ones leave");
    }
}
