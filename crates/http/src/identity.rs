//! Who is calling: the presented client certificate, looked up in the store on every request
//! (so a revocation takes effect at once, on every server sharing the store).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use sip_settings_core::{AccountId, Identity, Serial, ServiceError, Services};

use crate::AppState;
use crate::reply;
use crate::serve::{Peer, PeerCertificate};

/// Establishes the identity behind a request's client certificate.
pub async fn identify(services: &Services, peer: Option<&Peer>) -> Result<Identity, ServiceError> {
    match peer.and_then(|p| p.certificate.as_deref()) {
        None => Err(ServiceError::Unauthenticated(
            "Error: a client certificate is required".to_owned(),
        )),
        Some(PeerCertificate::Unreadable) => Err(ServiceError::Forbidden(
            "Error: unreadable client certificate".to_owned(),
        )),
        Some(PeerCertificate::Read {
            serial,
            fingerprint,
        }) => services.authenticate(serial, fingerprint).await,
    }
}

/// A request made with a valid subscriber certificate.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The certificate's account: the only one this request may act on.
    pub account: AccountId,
    /// The certificate's serial.
    pub serial: Serial,
    /// The client's address.
    pub addr: std::net::SocketAddr,
}

impl Subscriber {
    /// The services acting for this subscriber through the resource API.
    pub fn services(&self, state: &AppState) -> Services {
        self.services_through(state, sip_settings_core::journal::Door::ResourceApi)
    }

    /// The services acting for this subscriber through `door`: what they change is journalled
    /// as done by this certificate from this address.
    pub fn services_through(
        &self,
        state: &AppState,
        door: sip_settings_core::journal::Door,
    ) -> Services {
        state
            .services
            .with_origin(sip_settings_core::journal::Origin {
                door,
                actor: format!("certificate {}", self.serial),
                source: Some(self.addr.ip().to_string()),
            })
    }
}

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<Peer>();
        let addr = peer.map_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.addr);
        // The resource API answers problem documents, the action endpoint status objects.
        let render = |e: &ServiceError| {
            if parts.uri.path().starts_with("/v1/") {
                crate::problem::from_error(e)
            } else {
                reply::service_error(e)
            }
        };
        match identify(&state.services, peer).await {
            Ok(Identity::Subscriber { account, serial }) => Ok(Self {
                account,
                serial,
                addr,
            }),
            Ok(_) => Err(render(&ServiceError::Forbidden(
                "Error: this endpoint takes subscriber certificates only".to_owned(),
            ))),
            Err(e) => Err(render(&e)),
        }
    }
}
