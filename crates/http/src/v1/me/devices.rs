//! `/v1/me/devices`: the devices registered for the account (tag `calls`).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::ReadErrors;
use crate::v1::error::ApiResult;
use crate::v1::view::DeviceView;

/// The registered devices, most recently registered first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesView {
    /// The devices whose registration has not lapsed.
    pub devices: Vec<DeviceView>,
}

/// The devices registered for the account (fed by the proxy's registrar; lapsed ones are not
/// shown).
#[utoipa::path(get, path = "/v1/me/devices", tag = "calls",
    responses((status = 200, description = "Devices", body = DevicesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_devices(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    let s = &state.services;
    let now = s.clock().now();
    let view = DevicesView {
        devices: s
            .devices(&me.account)
            .await?
            .iter()
            .map(|d| DeviceView::of(d, now))
            .collect(),
    };
    Ok(etag::read(&headers, &view))
}
