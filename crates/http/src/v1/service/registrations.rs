//! `POST /v1/service/registrations`: the REGISTERs a proxy's registrar accepted.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sip_settings_core::devices::{Lifetimes, RegisterInput};
use utoipa::ToSchema;

use crate::AppState;
use crate::v1::doc::ServiceErrors;
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::JsonBody;
use crate::v1::service::client::ServiceClient;
use crate::v1::view::DeviceView;

/// A REGISTER the proxy's registrar accepted (`POST /v1/service/registrations`), as it
/// received it: sip-settings applies RFC 3261 §10.3's rules to its own copy of the bindings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationBody {
    /// The address of record (the To URI).
    #[serde(default)]
    #[schema(required = true)]
    aor: String,
    /// Every Contact header value, comma-joined; `*`; or empty (a query).
    #[serde(default)]
    contact: String,
    /// The Expires header, if any.
    expires: Option<i64>,
    /// The User-Agent header.
    #[serde(default)]
    user_agent: String,
    /// The transport it arrived over.
    #[serde(default)]
    #[schema(required = true)]
    transport: String,
    /// Where it came from, `ip:port`.
    #[serde(default)]
    #[schema(required = true)]
    source: String,
    /// Call-ID.
    #[serde(default)]
    #[schema(required = true)]
    call_id: String,
    /// CSeq number.
    #[schema(value_type = i64, required = true)]
    cseq: Option<i64>,
    /// The registrar's minimum lifetime (default 60; 0: none).
    #[schema(value_type = Option<u32>)]
    min_expires: Option<u32>,
    /// The registrar's maximum lifetime (default 3600; 0: none).
    #[schema(value_type = Option<u32>)]
    max_expires: Option<u32>,
    /// The lifetime granted when none is asked for (default 3600).
    #[schema(value_type = Option<u32>)]
    default_expires: Option<u32>,
}

/// The account's devices after a registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The account (the address of record, aliases resolved).
    pub account: String,
    /// Its devices, as `GET /v1/me/devices` shows them.
    pub devices: Vec<DeviceView>,
}

/// Records a REGISTER the proxy accepted: the account's devices are then known to the call
/// decisions (the SIP door) and shown to the subscriber. `403` for a domain not served here,
/// `404` for an address no account has; nothing changes then.
#[utoipa::path(post, path = "/v1/service/registrations", tag = "service",
    request_body(content = RegistrationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied", body = Registered),
        ServiceErrors
    ))]
pub(super) async fn register(
    State(state): State<AppState>,
    client: ServiceClient,
    JsonBody(b): JsonBody<RegistrationBody>,
) -> ApiResult {
    let Some(cseq) = b.cseq else {
        return Err(invalid("cseq", "is required"));
    };
    let defaults = Lifetimes::default();
    let input = RegisterInput {
        aor: b.aor,
        contact: b.contact,
        expires: b.expires,
        user_agent: b.user_agent,
        transport: b.transport,
        source: b.source,
        call_id: b.call_id,
        cseq,
        lifetimes: Lifetimes {
            default: b.default_expires.unwrap_or(defaults.default),
            min: b.min_expires.unwrap_or(defaults.min),
            max: b.max_expires.unwrap_or(defaults.max),
        },
    };
    let services = client.services(&state);
    let (account, devices) = services.register_devices(&input).await?;
    let now = services.clock().now();
    Ok(Json(Registered {
        account: account.to_string(),
        devices: devices.iter().map(|d| DeviceView::of(d, now)).collect(),
    })
    .into_response())
}
