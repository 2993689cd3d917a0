//! The SIP door: a stateless redirect server (RFC 3261 §8.3) that answers trusted proxies'
//! INVITEs from the same `core::routing::route` the HTTPS doors use. Pure parts, table-tested:
//! [`message`] (parsing what a redirect server reads) and [`uri`] (SIP and tel URIs). The socket
//! layer only moves bytes.

pub mod message;
pub mod uri;
pub mod config;

pub use config::{Cidr, Listen, SipConfig, Transport, VoicemailTemplate};
