//! Who may use the service API (a service certificate) and how it reads bodies.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sip_settings_core::Identity;

use crate::AppState;
use crate::identity::identify;
use crate::problem::{from_error, problem};
use crate::serve::Peer;

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
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match identify(&state.services, parts.extensions.get::<Peer>()).await {
            Ok(Identity::Service { name, .. }) => Ok(Self {
                name,
                addr: parts.extensions.get::<Peer>().map(|p| p.addr),
            }),
            Ok(_) => Err(problem(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the service API takes service certificates only",
                None,
            )),
            Err(e) => Err(from_error(&e)),
        }
    }
}

/// Reads a JSON object body into `T` with the `/v1` rules ([`crate::v1::extract::json_body`]:
/// at most [`crate::MAX_BODY_BYTES`], an object only, a problem reply naming what is wrong).
pub async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, Response> {
    crate::v1::extract::json_body(body)
        .await
        .map_err(IntoResponse::into_response)
}
