//! `/v1/admin/domains`: the domains served here (tag `admin domains`). Twins of `domain list`
//! and `domain add`; the service layer has no domain deletion.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors};
use crate::v1::error::ApiResult;
use crate::v1::extract::JsonBody;
use crate::v1::view::{created, encode_segment};

/// The domains (`GET /v1/admin/domains`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainsView {
    /// Lower-case DNS names, sorted.
    pub domains: Vec<String>,
}

/// One domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    /// The lower-case DNS name.
    pub domain: String,
}

/// A new domain (`POST /v1/admin/domains`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainBody {
    /// A fully qualified DNS name (stored lower-case).
    #[schema(
        max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub domain: String,
}

/// The domains served here.
#[utoipa::path(get, path = "/v1/admin/domains", tag = "admin domains",
    responses((status = 200, description = "Domains", body = DomainsView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_domains(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
) -> ApiResult {
    let mut domains: Vec<String> = admin
        .services(&state)
        .list_domains()
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    domains.sort();
    Ok(etag::read(&headers, &DomainsView { domains }))
}

/// Adds a domain to serve (409 if it is served already). Twin of `domain add`.
#[utoipa::path(post, path = "/v1/admin/domains", tag = "admin domains",
    request_body(content = DomainBody, content_type = "application/json"),
    responses((status = 201, description = "Added", body = DomainView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The domain's journal"))), AdminWriteErrors))]
pub(super) async fn admin_add_domain(
    State(state): State<AppState>,
    admin: AdminClient,
    JsonBody(b): JsonBody<DomainBody>,
) -> ApiResult {
    let domain = admin.services(&state).add_domain(&b.domain).await?;
    Ok(created(
        &format!(
            "/v1/admin/domains/{}/journal",
            encode_segment(domain.as_str())
        ),
        &DomainView {
            domain: domain.to_string(),
        },
    ))
}
