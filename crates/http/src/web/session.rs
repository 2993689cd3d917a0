//! Stateless sessions: a signed cookie `account|expiry|nonce|mac` with
//! `mac = HMAC-SHA256(key, account|expiry|nonce)`, the key being the data directory's `web.key`,
//! so that every server sharing the data directory accepts the sessions of the others.
//!
//! The nonce is `<login time>-<random>`: the login time gives the absolute limit (12 hours)
//! without any server-side state, and the random part keys the session's CSRF token
//! (`HMAC(key, "csrf"|nonce)`), which therefore stays the same while the session slides.

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_settings_core::AccountId;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie. The `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, has `Path=/` and no `Domain`, so no other host can plant one.
pub const SESSION_COOKIE: &str = "__Host-sip-session";
/// Name of the cookie that carries the login form's CSRF nonce before there is a session.
pub const LOGIN_COOKIE: &str = "__Host-sip-login";
/// Name of the one-shot cookie that carries a success message across a redirect.
pub const FLASH_COOKIE: &str = "__Host-sip-flash";

/// A session ends this long after the last request.
pub const IDLE_SECONDS: i64 = 30 * 60;
/// A session ends this long after the login, however active.
pub const ABSOLUTE_SECONDS: i64 = 12 * 60 * 60;

/// The 32-byte signing key of sessions, CSRF tokens and messages.
#[derive(Clone)]
pub struct WebKey([u8; 32]);

impl WebKey {
    /// A key from its bytes (the content of `web.key`).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A random key (a single server without a key file; sessions end with the process).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes never fails.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(b"|");
            }
            mac.update(part.as_bytes());
        }
        mac
    }

    /// `base64url(HMAC(key, parts joined by '|'))`.
    pub fn sign(&self, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(parts).finalize().into_bytes())
    }

    /// Whether `tag` is the signature of `parts` (constant time).
    pub fn verify(&self, parts: &[&str], tag: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(tag) {
            Ok(bytes) => self.mac(parts).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The CSRF token of a session (or of a login form) nonce.
    pub fn csrf_token(&self, purpose: &str, nonce: &str) -> String {
        self.sign(&[purpose, nonce])
    }
}

impl fmt::Debug for WebKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebKey(***)")
    }
}

/// A random token of 128 bits, hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account logged in.
    pub account: AccountId,
    /// The session's nonce, `<login unix time>-<random>`.
    pub nonce: String,
    /// Login time (unix seconds).
    pub login_at: i64,
}

impl Session {
    /// A new session for `account` logged in at `now`.
    pub fn start(account: AccountId, now: DateTime<Utc>) -> Self {
        let login_at = now.timestamp();
        Self {
            account,
            nonce: format!("{login_at}-{}", random_hex()),
            login_at,
        }
    }

    /// When the session, refreshed at `now`, expires: 30 minutes on, but never past 12 hours
    /// after the login.
    pub fn expiry_at(&self, now: DateTime<Utc>) -> i64 {
        (now.timestamp() + IDLE_SECONDS).min(self.login_at + ABSOLUTE_SECONDS)
    }

    /// The cookie value, refreshed at `now`.
    pub fn cookie_value(&self, key: &WebKey, now: DateTime<Utc>) -> String {
        let account = self.account.to_string();
        let expiry = self.expiry_at(now).to_string();
        let mac = key.sign(&[&account, &expiry, &self.nonce]);
        format!("{account}|{expiry}|{}|{mac}", self.nonce)
    }

    /// The `Set-Cookie` header that (re)issues the session at `now`.
    pub fn set_cookie(&self, key: &WebKey, now: DateTime<Utc>) -> Option<HeaderValue> {
        let max_age = (self.expiry_at(now) - now.timestamp()).max(0);
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict",
            self.cookie_value(key, now)
        ))
        .ok()
    }

    /// Checks a cookie value: signature, expiry and the absolute limit at `now`.
    pub fn from_cookie(value: &str, key: &WebKey, now: DateTime<Utc>) -> Option<Self> {
        let mut parts = value.splitn(4, '|');
        let account = parts.next()?;
        let expiry = parts.next()?;
        let nonce = parts.next()?;
        let mac = parts.next()?;
        if !key.verify(&[account, expiry, nonce], mac) {
            return None;
        }
        let expiry: i64 = expiry.parse().ok()?;
        let login_at: i64 = nonce.split_once('-')?.0.parse().ok()?;
        let t = now.timestamp();
        if t >= expiry || t >= login_at + ABSOLUTE_SECONDS || login_at > t + 300 {
            return None;
        }
        Some(Self {
            account: AccountId::parse(account).ok()?,
            nonce: nonce.to_owned(),
            login_at,
        })
    }

    /// The CSRF token of the session's forms.
    pub fn csrf(&self, key: &WebKey) -> String {
        key.csrf_token("csrf", &self.nonce)
    }
}

/// A `Set-Cookie` that removes a cookie.
pub fn clear_cookie(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    ))
    .ok()
}

/// A `Set-Cookie` for a short-lived cookie.
pub fn short_cookie(name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
    ))
    .ok()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The flash cookie value for a message: `base64url(text).mac`.
pub fn flash_value(key: &WebKey, text: &str) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(text.as_bytes());
    let mac = key.sign(&["flash", &encoded]);
    format!("{encoded}.{mac}")
}

/// The message of a flash cookie, if its signature holds.
pub fn flash_text(key: &WebKey, value: &str) -> Option<String> {
    let (encoded, mac) = value.split_once('.')?;
    if !key.verify(&["flash", encoded], mac) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sessions_verify_slide_and_expire() {
        let key = WebKey::random();
        let now = Utc::now();
        let s = Session::start(AccountId::parse("alice@example.com").unwrap(), now);
        let v = s.cookie_value(&key, now);
        let back = Session::from_cookie(&v, &key, now).unwrap();
        assert_eq!(back.account, s.account);
        assert_eq!(back.csrf(&key), s.csrf(&key));
        // idle expiry
        assert!(Session::from_cookie(&v, &key, now + chrono::Duration::minutes(31)).is_none());
        // another key, a changed account
        assert!(Session::from_cookie(&v, &WebKey::random(), now).is_none());
        let forged = v.replacen("alice", "bob", 1);
        assert!(Session::from_cookie(&forged, &key, now).is_none());
        // sliding, but never past 12 hours
        let mut t = now;
        let mut value = v;
        for _ in 0..40 {
            t += chrono::Duration::minutes(20);
            match Session::from_cookie(&value, &key, t) {
                Some(s) => value = s.cookie_value(&key, t),
                None => break,
            }
        }
        assert!(t - now <= chrono::Duration::hours(12) + chrono::Duration::minutes(20));
        assert!(t - now >= chrono::Duration::hours(12));
    }

    #[test]
    fn flash_is_signed() {
        let key = WebKey::random();
        let v = flash_value(&key, "Privacy is on");
        assert_eq!(flash_text(&key, &v).as_deref(), Some("Privacy is on"));
        assert!(flash_text(&WebKey::random(), &v).is_none());
    }
}
