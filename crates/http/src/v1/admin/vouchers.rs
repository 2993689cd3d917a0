//! Prepaid cards (tag `admin billing`): make a batch for a domain (its numbers answered this
//! once), list a domain's cards, disable one. Twins of `voucher create|list|disable`; the
//! subscribers redeem the cards with `add_balance` on `settings.phtml`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sip_settings_core::money::Money;
use sip_settings_core::voucher::{self, Voucher};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, domain_of};
use crate::v1::error::{ApiResult, invalid};
use crate::v1::extract::{JsonBody, PathParam, number_param, query};
use crate::v1::view::{created, encode_segment, time};

/// A batch of prepaid cards to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoucherBatchBody {
    /// What each card adds to a balance: a decimal greater than 0 with at most 12 whole digits
    /// and 4 decimals.
    #[schema(
        pattern = "^([1-9][0-9]{0,11}(\\.[0-9]{1,4})?|0?\\.(000[1-9]|00[1-9][0-9]?|0[1-9][0-9]{0,2}|[1-9][0-9]{0,3}))$"
    )]
    pub value: String,
    /// How many cards.
    #[schema(minimum = 1, maximum = 10000)]
    pub count: u32,
    /// When the cards stop being accepted (RFC 3339, in the future); none: never.
    #[serde(default)]
    pub expires: Option<String>,
}

/// A card just made: its number is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct MadeVoucherView {
    /// The card's id (`id` of `add_balance`).
    pub id: i64,
    /// The card's number (`number` of `add_balance`): not stored, never shown again.
    pub number: String,
}

/// A batch just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoucherBatchView {
    /// The domain whose prepaid accounts may redeem the cards.
    pub domain: String,
    /// Each card's value, decimal string.
    pub value: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// When the cards stop being accepted (RFC 3339), or null.
    pub expires_at: Option<String>,
    /// The cards, by id.
    pub vouchers: Vec<MadeVoucherView>,
}

/// A stored card (without its number, which is not stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct VoucherView {
    /// The card's id.
    pub id: i64,
    /// The domain whose prepaid accounts may redeem it.
    pub domain: String,
    /// Its value, decimal string.
    pub value: String,
    /// `unused`, `used`, `disabled` or `expired`.
    pub state: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// When it stops being accepted (RFC 3339), or null.
    pub expires_at: Option<String>,
    /// When it was disabled (RFC 3339), or null.
    pub disabled_at: Option<String>,
    /// The account that redeemed it, or null.
    pub used_by: Option<String>,
    /// When it was redeemed (RFC 3339), or null.
    pub used_at: Option<String>,
}

impl VoucherView {
    fn of(v: &Voucher, now: DateTime<Utc>) -> Self {
        Self {
            id: v.id,
            domain: v.domain.to_string(),
            value: v.value.to_string(),
            state: v.state(now).as_str().to_owned(),
            created_at: time(v.created_at),
            created_by: v.created_by.clone(),
            expires_at: v.expires_at.map(time),
            disabled_at: v.disabled_at.map(time),
            used_by: v.used_by.clone(),
            used_at: v.used_at.map(time),
        }
    }
}

/// A domain's cards, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VouchersView {
    /// The cards.
    pub vouchers: Vec<VoucherView>,
}

/// Makes a batch of prepaid cards for a domain; the answer is the only place their numbers
/// are ever shown. Twin of `voucher create`.
#[utoipa::path(post, path = "/v1/admin/domains/{domain}/vouchers", tag = "admin billing",
    params(("domain" = String, Path, description = "The domain", max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = VoucherBatchBody, content_type = "application/json"),
    responses((status = 201, description = "Made", body = VoucherBatchView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The domain's cards"))), AdminWriteErrors))]
pub(super) async fn admin_create_vouchers(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<VoucherBatchBody>,
) -> ApiResult {
    let domain = domain_of(&path)?;
    let value = Money::parse_for("value", &b.value)?;
    let expires = match b.expires.as_deref() {
        None => None,
        Some(e) => Some(
            DateTime::parse_from_rfc3339(e)
                .map_err(|_| invalid("expires", "must be an RFC 3339 time"))?
                .with_timezone(&Utc),
        ),
    };
    let s = admin.services(&state);
    let made = s.create_vouchers(&domain, value, b.count, expires).await?;
    tracing::info!(actor = %admin.actor(), domain = %domain, count = made.len(),
        "prepaid cards made through the operator API");
    Ok(created(
        &format!(
            "/v1/admin/domains/{}/vouchers",
            encode_segment(domain.as_str())
        ),
        &VoucherBatchView {
            domain: domain.to_string(),
            value: value.to_string(),
            currency: s.config().currency.clone(),
            expires_at: expires.map(time),
            vouchers: made
                .iter()
                .map(|v| MadeVoucherView {
                    id: v.id,
                    number: v.number.expose().to_owned(),
                })
                .collect(),
        },
    ))
}

/// A domain's prepaid cards, newest first, without their numbers. Twin of `voucher list`.
#[utoipa::path(get, path = "/v1/admin/domains/{domain}/vouchers", tag = "admin billing",
    params(("domain" = String, Path, description = "The domain", max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most cards (default 200)")),
    responses((status = 200, description = "Cards", body = VouchersView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_vouchers(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let domain = domain_of(&path)?;
    let q = query(raw.as_deref(), &["limit"])?;
    let limit = number_param(&q, "limit", 1..=10_000, 200)?;
    let s = admin.services(&state);
    let now = s.clock().now();
    let vouchers = s
        .vouchers(&domain, limit)
        .await?
        .iter()
        .map(|v| VoucherView::of(v, now))
        .collect();
    Ok(etag::read(&headers, &VouchersView { vouchers }))
}

/// Disables an unused prepaid card (a disabled one stays as it is; 409 for a used one). Twin
/// of `voucher disable`.
#[utoipa::path(post, path = "/v1/admin/vouchers/{id}/disable", tag = "admin billing",
    params(("id" = String, Path, description = "The card's id", pattern = "^[1-9][0-9]{0,17}$")),
    responses((status = 200, description = "The card", body = VoucherView), AdminWriteErrors))]
pub(super) async fn admin_disable_voucher(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = voucher::parse_id(&path)?;
    let s = admin.services(&state);
    let v = s.disable_voucher(id).await?;
    tracing::info!(actor = %admin.actor(), id, "prepaid card disabled through the operator API");
    Ok(etag::reply(
        StatusCode::OK,
        &VoucherView::of(&v, s.clock().now()),
    ))
}
