//! Who may use the service API: a service certificate. The service routes read their bodies
//! and path parameters with the same extractors as `/v1/me` ([`crate::v1::extract`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sip_settings_core::{Identity, ServiceError};

use crate::AppState;
use crate::identity::identify;
use crate::serve::Peer;
use crate::v1::error::ApiError;

/// A request made with a valid service certificate.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    /// The certificate holder's name.
    pub name: String,
    /// The client's address.
    pub addr: Option<std::net::SocketAddr>,
}

impl ServiceClient {
    /// The services acting for this client (its changes are journaled as the service door).
    pub fn services(&self, state: &AppState) -> sip_settings_core::Services {
        state
            .services
            .with_origin(sip_settings_core::journal::Origin {
                door: sip_settings_core::journal::Door::ServiceApi,
                actor: format!("service {}", self.name),
                source: self.addr.map(|a| a.ip().to_string()),
            })
    }
}

impl FromRequestParts<AppState> for ServiceClient {
    type Rejection = ApiError;

    /// The service client, identified by the certificate. The service API has no request
    /// budget: a proxy's feeds are as fast as its traffic.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<Peer>();
        match identify(&state.services, peer).await? {
            Identity::Service { name, .. } => Ok(Self {
                name,
                addr: peer.map(|p| p.addr),
            }),
            Identity::Subscriber { .. } | Identity::Admin { .. } => {
                Err(ApiError::Service(ServiceError::Forbidden(
                    "the service API takes service certificates only".to_owned(),
                )))
            }
        }
    }
}
