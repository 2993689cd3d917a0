//! `/v1/me/voicemail`: the voice mailbox (tag `voicemail`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::settings::VoicemailDelivery;
use sip_settings_core::{AccountId, Email, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, invalid};
use crate::v1::extract::JsonBody;
use crate::v1::write::change_view;

/// The voice mailbox (`GET /v1/me/voicemail`). The PIN is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailView {
    /// Whether a mailbox was ever set up.
    pub configured: bool,
    /// Whether the mailbox answers calls.
    pub enabled: bool,
    /// The mailbox (the account's address).
    pub mailbox: String,
    /// `email` or `email_and_store`.
    pub delivery: String,
    /// The mailbox's own notification address, or `null` (the account's e-mail is used).
    pub email: Option<String>,
    /// The address notifications go to now.
    pub notification_email: Option<String>,
    /// Whether a PIN is set.
    pub pin_set: bool,
}

/// Voicemail settings (`PUT`: `enabled` required; `PATCH`: all optional). Absent fields keep
/// their values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoicemailBody {
    /// `true` enables (creating the mailbox if needed), `false` disables (settings are kept).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `email` or `email_and_store`.
    #[serde(default)]
    #[schema(pattern = "^(email|email_and_store)$")]
    pub delivery: Option<String>,
    /// Notification address.
    #[serde(default)]
    pub email: Option<String>,
    /// New PIN, 4–10 digits (write only).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{4,10}$", write_only)]
    pub pin: Option<String>,
}

async fn voicemail_view(s: &Services, id: &AccountId) -> Result<VoicemailView, ServiceError> {
    let account = s.account(id).await?;
    let v = s.voicemail(id).await?;
    let own = v
        .as_ref()
        .and_then(|v| v.email.as_ref())
        .map(ToString::to_string);
    Ok(VoicemailView {
        configured: v.is_some(),
        enabled: v.as_ref().is_some_and(|v| v.enabled),
        mailbox: account.id.to_string(),
        delivery: v
            .as_ref()
            .map_or(VoicemailDelivery::Email, |v| v.delivery)
            .as_str()
            .to_owned(),
        email: own.clone(),
        notification_email: own.or(account.profile.email.as_ref().map(ToString::to_string)),
        pin_set: v.as_ref().is_some_and(|v| v.pin_hash.is_some()),
    })
}

async fn write_voicemail(
    state: &AppState,
    me: &Subscriber,
    headers: &HeaderMap,
    b: VoicemailBody,
) -> ApiResult {
    let delivery = b
        .delivery
        .as_deref()
        .map(VoicemailDelivery::parse)
        .transpose()?;
    let email = b
        .email
        .as_deref()
        .map(|e| Email::parse_for("email", e))
        .transpose()?;
    if let Some(pin) = b.pin.as_deref() {
        // Checked before anything is written (the service hashes it again when it writes).
        sip_settings_core::settings::hash_pin(pin)?;
    }
    let s = me.services(state);
    let s = s.hold(&me.account).await?;
    let current = voicemail_view(&s, &me.account).await?;
    etag::check(headers, Some(&current))?;
    let changes = delivery.is_some() || email.is_some() || b.pin.is_some();
    match b.enabled {
        Some(false) if changes => {
            let field = if delivery.is_some() {
                "delivery"
            } else if email.is_some() {
                "email"
            } else {
                "pin"
            };
            return Err(invalid(
                field,
                "can only be changed while enabling the mailbox (enabled: true)",
            ));
        }
        Some(false) => s.disable_voicemail(&me.account).await?,
        Some(true) => {
            s.enable_voicemail(&me.account, delivery, b.pin.as_deref(), email)
                .await?;
        }
        None if !changes => {}
        None if current.enabled => {
            s.enable_voicemail(&me.account, delivery, b.pin.as_deref(), email)
                .await?;
        }
        None => {
            return Err(ApiError::from(ServiceError::Conflict(
                "the voice mailbox is disabled; send enabled: true to change its settings"
                    .to_owned(),
            )));
        }
    }
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &voicemail_view(&s, &me.account).await?,
    ))
}

/// Voicemail settings.
#[utoipa::path(get, path = "/v1/me/voicemail", tag = "voicemail",
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &voicemail_view(&state.services, &me.account).await?,
    ))
}

/// Sets voicemail: `enabled` is required.
#[utoipa::path(put, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = VoicemailBody, content_type = "application/json"),
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn put_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<VoicemailBody>,
) -> ApiResult {
    if b.enabled.is_none() {
        return Err(invalid("enabled", "is required (true or false)"));
    }
    write_voicemail(&state, &me, &headers, b).await
}

/// Changes voicemail settings; absent fields stay.
#[utoipa::path(patch, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = VoicemailBody, content_type = "application/json"),
    responses((status = 200, description = "Voicemail", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn patch_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<VoicemailBody>,
) -> ApiResult {
    write_voicemail(&state, &me, &headers, b).await
}

/// Disables the voice mailbox (its settings are kept; 404 without one).
#[utoipa::path(delete, path = "/v1/me/voicemail", tag = "voicemail",
    params(("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "Voicemail (now disabled)", body = VoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn delete_voicemail(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    change_view(&state, &me, &headers, voicemail_view, async |s, id| {
        s.disable_voicemail(id).await
    })
    .await
}
