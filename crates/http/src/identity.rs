//! Who is calling: the presented client certificate, looked up in the store on every request
//! (so a revocation takes effect at once, on every server sharing the store).

use sip_settings_core::{AccountId, Identity, Serial, ServiceError, Services};

use crate::AppState;
use crate::serve::{Peer, PeerCertificate};

/// Establishes the identity behind a request's client certificate.
pub async fn identify(services: &Services, peer: Option<&Peer>) -> Result<Identity, ServiceError> {
    match peer.and_then(|p| p.certificate.as_deref()) {
        None => Err(ServiceError::Unauthenticated(
            "a client certificate is required".to_owned(),
        )),
        Some(PeerCertificate::Unreadable) => Err(ServiceError::Forbidden(
            "unreadable client certificate".to_owned(),
        )),
        Some(PeerCertificate::Read {
            serial,
            fingerprint,
        }) => services.authenticate(serial, fingerprint).await,
    }
}

/// A request made with a valid subscriber certificate. The `/v1/me` handlers take it as an
/// extractor that also spends the request budget ([`crate::v1::extract`]); the action endpoint,
/// whose budget depends on the action, calls [`Subscriber::identify`].
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
    /// The subscriber behind `peer`'s certificate: `401` without one, `403` for one that is not
    /// a valid subscriber certificate.
    pub async fn identify(state: &AppState, peer: Option<&Peer>) -> Result<Self, ServiceError> {
        let addr = peer.map_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.addr);
        match identify(&state.services, peer).await? {
            Identity::Subscriber { account, serial } => Ok(Self {
                account,
                serial,
                addr,
            }),
            Identity::Admin { .. } | Identity::Service { .. } => Err(ServiceError::Forbidden(
                "this endpoint takes subscriber certificates only".to_owned(),
            )),
        }
    }

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
