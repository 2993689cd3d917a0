//! `/v1/admin/accounts/{account}/voicemail`: an account's voice mailbox (tag `admin
//! voicemail`). Twins of `voicemail enable` and `voicemail disable`; the PIN is never shown.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::settings::VoicemailDelivery;
use sip_settings_core::{AccountId, Email, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, account_of};
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::{JsonBody, PathParam};

/// An account's voice mailbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminVoicemailView {
    /// Whether a mailbox was ever set up.
    pub configured: bool,
    /// Whether the mailbox answers calls.
    pub enabled: bool,
    /// `email` or `email_and_store`.
    pub delivery: String,
    /// The mailbox's own notification address, or `null` (the account's e-mail is used).
    pub email: Option<String>,
    /// Whether a PIN is set.
    pub pin_set: bool,
}

/// The mailbox wanted (`PUT`): `enabled: true` enables it (creating it if needed) with the
/// other fields changed when given; `enabled: false` disables it, keeping its settings, and
/// takes no other field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminVoicemailBody {
    /// Whether the mailbox answers calls.
    pub enabled: bool,
    /// `email` or `email_and_store`.
    #[serde(default)]
    #[schema(pattern = "^(email|email_and_store)$")]
    pub delivery: Option<String>,
    /// Notification address of the mailbox.
    #[serde(default)]
    #[schema(
        max_length = 254,
        pattern = "^[\\x21-\\x3F\\x41-\\x7E]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub email: Option<String>,
    /// New PIN, 4–10 digits (write only; stored hashed).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{4,10}$", write_only)]
    pub pin: Option<String>,
}

impl std::fmt::Debug for AdminVoicemailBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminVoicemailBody")
            .field("enabled", &self.enabled)
            .field("delivery", &self.delivery)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

async fn voicemail_view(s: &Services, id: &AccountId) -> Result<AdminVoicemailView, ServiceError> {
    s.account(id).await?;
    let v = s.voicemail(id).await?;
    Ok(AdminVoicemailView {
        configured: v.is_some(),
        enabled: v.as_ref().is_some_and(|v| v.enabled),
        delivery: v
            .as_ref()
            .map_or(VoicemailDelivery::Email, |v| v.delivery)
            .as_str()
            .to_owned(),
        email: v
            .as_ref()
            .and_then(|v| v.email.as_ref())
            .map(ToString::to_string),
        pin_set: v.as_ref().is_some_and(|v| v.pin_hash.is_some()),
    })
}

/// An account's voice mailbox.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/voicemail", tag = "admin voicemail",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Voicemail", body = AdminVoicemailView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_get_voicemail(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    Ok(etag::read(
        &headers,
        &voicemail_view(&admin.services(&state), &id).await?,
    ))
}

/// Enables (with settings) or disables an account's voice mailbox. Twin of `voicemail enable`
/// and `voicemail disable`.
#[utoipa::path(put, path = "/v1/admin/accounts/{account}/voicemail", tag = "admin voicemail",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = AdminVoicemailBody, content_type = "application/json"),
    responses((status = 200, description = "Voicemail", body = AdminVoicemailView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), AdminWriteErrors))]
pub(super) async fn admin_put_voicemail(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<AdminVoicemailBody>,
) -> ApiResult {
    let id = account_of(&path)?;
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
    if !b.enabled {
        let extra = [
            ("delivery", b.delivery.is_some()),
            ("email", b.email.is_some()),
            ("pin", b.pin.is_some()),
        ];
        if let Some((field, _)) = extra.iter().find(|(_, given)| *given) {
            return Err(invalid(
                field,
                "can only be given with enabled: true (a disabled mailbox keeps its settings)",
            ));
        }
    }
    let s = admin.services(&state);
    let s = s.hold(&id).await?;
    etag::check(&headers, Some(&voicemail_view(&s, &id).await?))?;
    if b.enabled {
        s.enable_voicemail(&id, delivery, b.pin.as_deref(), email)
            .await?;
    } else {
        s.disable_voicemail(&id).await?;
    }
    s.commit().await?;
    Ok(etag::reply(StatusCode::OK, &voicemail_view(&s, &id).await?))
}
