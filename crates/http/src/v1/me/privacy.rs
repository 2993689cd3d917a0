//! `/v1/me/privacy`: caller-id privacy (tag `privacy`).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::ApiResult;
use crate::v1::extract::JsonBody;
use crate::v1::write::change_view;

/// Caller-id privacy (`GET`/`PUT /v1/me/privacy`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyView {
    /// Whether the caller id is hidden on outgoing calls.
    pub on: bool,
}

async fn privacy_view(s: &Services, id: &AccountId) -> Result<PrivacyView, ServiceError> {
    Ok(PrivacyView {
        on: s.account(id).await?.privacy,
    })
}

/// Whether caller-id privacy is on.
#[utoipa::path(get, path = "/v1/me/privacy", tag = "privacy",
    responses((status = 200, description = "Privacy", body = PrivacyView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_privacy(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &privacy_view(&state.services, &me.account).await?,
    ))
}

/// Turns caller-id privacy on or off.
#[utoipa::path(put, path = "/v1/me/privacy", tag = "privacy",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = PrivacyView, content_type = "application/json"),
    responses((status = 200, description = "Privacy", body = PrivacyView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_privacy(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<PrivacyView>,
) -> ApiResult {
    change_view(&state, &me, &headers, privacy_view, async |s, id| {
        s.set_privacy(id, b.on).await
    })
    .await
}
