//! What several resources show alike: times, `Location` of a created item, path segments, and
//! a registered device (shown to the subscriber and answered to the proxy's registrar).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sip_settings_core::account::Account;
use utoipa::ToSchema;

use crate::etag;

/// `t` as RFC 3339 in UTC, to the second.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `t` in the account's time zone, `YYYY-MM-DD HH:MM:SS`.
pub fn local(account: &Account, t: DateTime<Utc>) -> String {
    crate::legacy::objects::local_time(account, t)
}

/// `201` with `value` (and its ETag) and `Location: location`.
pub fn created(location: &str, value: &impl Serialize) -> Response {
    let mut r = etag::reply(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `s` percent-encoded as one path segment.
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A registered device, as the proxy's registrar reported it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// The Contact URI calls reach it at.
    pub contact: String,
    /// Its User-Agent.
    pub user_agent: String,
    /// Transport (`udp`, `tcp`, `tls`, `ws`, `wss`, `sctp`).
    pub transport: String,
    /// The address its REGISTER came from (`ip:port`).
    pub source: String,
    /// Last registered (RFC 3339).
    pub registered_at: String,
    /// Lapses unless refreshed (RFC 3339).
    pub expires_at: String,
    /// Seconds left.
    pub expires_in: i64,
}

impl DeviceView {
    /// The view of `device` at `now`.
    pub fn of(device: &sip_settings_core::devices::Device, now: DateTime<Utc>) -> Self {
        Self {
            contact: device.contact.clone(),
            user_agent: device.user_agent.clone(),
            transport: device.transport.clone(),
            source: device.source.clone(),
            registered_at: time(device.registered_at),
            expires_at: time(device.expires_at),
            expires_in: device.expires_in(now),
        }
    }
}
