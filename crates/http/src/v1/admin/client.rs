//! Who may use the operator API: an admin certificate (`sip-settings cert issue --admin NAME`).
//! Subscriber and service certificates are refused with `403`, no certificate with `401`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sip_settings_core::journal::{Door, Origin};
use sip_settings_core::{Identity, Serial, ServiceError, Services};

use crate::AppState;
use crate::identity::identify;
use crate::serve::Peer;
use crate::v1::error::ApiError;

/// A request made with a valid admin certificate.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// The certificate holder's name.
    pub name: String,
    /// The certificate's serial.
    pub serial: Serial,
    /// The client's address.
    pub addr: Option<std::net::SocketAddr>,
}

impl AdminClient {
    /// The journal's actor for this certificate: `admin <name> (serial <serial>)`.
    pub fn actor(&self) -> String {
        format!("admin {} (serial {})", self.name, self.serial)
    }

    /// The services acting for this operator: every change they make is journaled through the
    /// `admin` door with [`AdminClient::actor`] and the client's address.
    pub fn services(&self, state: &AppState) -> Services {
        state.services.with_origin(Origin {
            door: Door::AdminApi,
            actor: self.actor(),
            source: self.addr.map(|a| a.ip().to_string()),
        })
    }
}

impl FromRequestParts<AppState> for AdminClient {
    type Rejection = ApiError;

    /// The operator, identified by the certificate. The operator API has no request budget:
    /// its clients are the provider's own systems.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<Peer>();
        match identify(&state.services, peer).await? {
            Identity::Admin { name, serial } => Ok(Self {
                name,
                serial,
                addr: peer.map(|p| p.addr),
            }),
            Identity::Subscriber { .. } | Identity::Service { .. } => {
                Err(ApiError::Service(ServiceError::Forbidden(
                    "the operator API takes admin certificates only".to_owned(),
                )))
            }
        }
    }
}
