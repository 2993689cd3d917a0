//! The SIP door: a stateless redirect server (RFC 3261 §8.3) that answers trusted proxies'
//! INVITEs from the same `core::routing::route` the HTTPS doors use. Pure parts, table-tested:
//! [`message`] (parsing what a redirect server reads), [`uri`] (SIP and tel URIs) and
//! [`redirect`] (request → plan, decision → verdict → response). [`door`] joins them to
//! `core::Services`; [`server`], the socket layer, only moves bytes. See docs/sip.md.

pub mod client;
pub mod config;
pub mod door;
pub mod message;
pub mod redirect;
pub mod server;
pub mod uri;

pub use config::{Cidr, Listen, Registrations, SipConfig, Transport, VoicemailTemplate};
pub use door::{Door, LatencySummary, Trust};
pub use server::SipServer;
