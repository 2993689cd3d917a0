//! The core of sip-settings: domain types that are parsed (not merely validated), the rules of
//! the service, and the [`Store`] trait that the storage back ends implement.
//!
//! This crate knows nothing of HTTP, SQL or TLS. The action endpoint, the resource API, the web
//! page and the command line all call the same functions of [`Services`].

pub mod account;
pub mod billing_service;
pub mod calls;
pub mod cert;
pub mod cert_use;
pub mod chat_journal;
pub mod clock;
pub mod credentials;
pub mod devices;
pub mod digest;
pub mod error;
pub mod forwarding;
pub mod ids;
pub mod import;
pub mod journal;
pub mod metrics;
pub mod money;
pub mod rating;
pub mod routing;
pub mod service;
pub mod settings;
pub mod settings_service;
pub mod sip;
pub mod store;
pub mod stored;
pub mod throttle;
pub mod voucher;
pub mod write;

pub use account::{Account, AccountProfile, AccountUpdate};
pub use cert::{CertRecord, CertRole, Serial};
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{Credentials, Ha1b, Password};
pub use error::{ServiceError, StoreError};
pub use ids::{AccountId, Domain, E164, Email, TimeZone, UserPart};
pub use service::{Identity, Services, ServicesConfig};
pub use store::Store;
pub use throttle::PasswordChecks;
