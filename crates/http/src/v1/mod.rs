//! The resource API under `/v1`: a subscriber's own settings under `/v1/me` ([`me`]), the
//! routing decisions and accounting feeds for proxies under `/v1/service` ([`service`]), the
//! operator's provisioning under `/v1/admin` ([`admin`]), and the OpenAPI document of all
//! three ([`openapi`]), served as `/v1/openapi.json`.
//!
//! Dependencies point one way: the resource modules under [`me`], [`service`] and [`admin`] use
//! the shared modules ([`doc`], [`error`], [`extract`], [`explain`], [`view`], [`mod@write`])
//! and never each other; only the route tables ([`me::routes`], [`service::routes`],
//! [`admin::routes`]) and the document ([`openapi`]) name the resources.

pub mod admin;
pub mod doc;
pub mod error;
pub mod explain;
pub mod extract;
pub mod me;
pub mod openapi;
pub mod service;
#[cfg(test)]
pub mod testing;
pub mod view;
pub mod write;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::AppState;

/// The `/v1` resource routes (from their annotated handlers) and `/v1/openapi.json`; a path
/// asked with a method it does not have is answered by [`error::method_not_allowed`].
pub fn routes() -> Router<AppState> {
    let (router, api) = openapi::api_router().split_for_parts();
    let api = doc::exact(api);
    let json: Arc<str> = Arc::from(serde_json::to_string_pretty(&api).unwrap_or_default());
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    let mut r: Response = json.to_string().into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
            }),
        )
        .route("/v1", any(error::no_such_path))
        .route("/v1/", any(error::no_such_path))
        .route("/v1/{*rest}", any(error::no_such_path))
        .method_not_allowed_fallback(error::method_not_allowed)
}
