//! `/v1/me/dnd`: Do Not Disturb (tag `dnd`).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sip_settings_core::calls::parse_time;
use sip_settings_core::settings::Group;
use sip_settings_core::{AccountId, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::JsonBody;
use crate::v1::view::time;
use crate::v1::write::change_view;

/// Do Not Disturb (`GET /v1/me/dnd`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DndView {
    /// Whether DND is in force now.
    pub on: bool,
    /// When it ends by itself (RFC 3339), or `null` (until turned off, or off).
    pub until: Option<String>,
    /// Whole minutes left, rounded up, or `null`.
    pub remaining_minutes: Option<i64>,
}

/// Turns DND on or off (`PUT /v1/me/dnd`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DndBody {
    /// `true` (default) turns DND on, `false` off.
    #[serde(default)]
    pub on: Option<bool>,
    /// End time (RFC 3339, in the future, at most a week ahead).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Minutes (1–10080) instead of `until`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    pub duration: Option<u32>,
}

async fn dnd_view(s: &Services, id: &AccountId) -> Result<DndView, ServiceError> {
    s.account(id).await?;
    let rules = s.accept_rules(id).await?;
    let now = s.clock().now();
    Ok(match rules.active_temporary(now).filter(|t| t.is_dnd()) {
        Some(t) => DndView {
            on: true,
            until: t.until.map(time),
            remaining_minutes: t.remaining_minutes(now),
        },
        None => DndView {
            on: false,
            until: None,
            remaining_minutes: None,
        },
    })
}

/// Whether DND is on.
#[utoipa::path(get, path = "/v1/me/dnd", tag = "dnd",
    responses((status = 200, description = "DND", body = DndView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_dnd(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &dnd_view(&state.services, &me.account).await?,
    ))
}

/// Turns DND on (until `until`, for `duration` minutes, or until turned off) or off
/// (`{"on": false}`). DND never changes the persistent accept rules.
#[utoipa::path(put, path = "/v1/me/dnd", tag = "dnd",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DndBody, content_type = "application/json"),
    responses((status = 200, description = "DND", body = DndView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_dnd(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<DndBody>,
) -> ApiResult {
    let on = b.on.unwrap_or(true);
    if !on && (b.until.is_some() || b.duration.is_some()) {
        let field = if b.until.is_some() {
            "until"
        } else {
            "duration"
        };
        return Err(invalid(field, "cannot be given when on is false"));
    }
    if b.until.is_some() && b.duration.is_some() {
        return Err(invalid("duration", "cannot be given together with until"));
    }
    let until = b
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?;
    let minutes = b.duration.map(|d| d.to_string());
    change_view(&state, &me, &headers, dnd_view, async |s, id| {
        if !on {
            s.dnd_off(id).await.map(drop)
        } else if let Some(u) = until {
            s.set_temporary_rule(id, vec![Group::Nobody], Some(u))
                .await
                .map(drop)
        } else {
            s.dnd_on(id, minutes.as_deref()).await.map(drop)
        }
    })
    .await
}

/// Turns DND off (a temporary rule of other groups stays).
#[utoipa::path(delete, path = "/v1/me/dnd", tag = "dnd",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "DND (now off)", body = DndView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn delete_dnd(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    change_view(&state, &me, &headers, dnd_view, async |s, id| {
        s.dnd_off(id).await
    })
    .await
}
