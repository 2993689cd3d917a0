//! `/v1/admin/domains`: the domains served here (tag `admin domains`). Twins of `domain list`,
//! `domain add` and `domain digest`; the service layer has no domain deletion.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, domain_of};
use crate::v1::error::{ApiError, ApiResult};
use crate::v1::extract::{JsonBody, PathParam};
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

/// Whether HTTP Digest is accepted on `settings.phtml` for a domain's accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestView {
    /// The lower-case DNS name.
    pub domain: String,
    /// `true`: a request without a client certificate is challenged and may authenticate with
    /// the SIP credentials (the default); `false`: only client certificates.
    pub digest: bool,
}

/// The Digest switch of a domain (`PUT /v1/admin/domains/{domain}/digest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestBody {
    /// `true` to accept HTTP Digest, `false` to refuse it.
    pub digest: bool,
}

async fn digest_view(
    state: &AppState,
    admin: &AdminClient,
    path: &str,
) -> Result<DigestView, ApiError> {
    let domain = domain_of(path)?;
    match admin.services(state).domain_digest(&domain).await? {
        Some(digest) => Ok(DigestView {
            domain: domain.to_string(),
            digest,
        }),
        None => Err(sip_settings_core::ServiceError::NotFound(format!(
            "domain {domain} is not served here"
        ))
        .into()),
    }
}

/// Whether HTTP Digest is accepted on `settings.phtml` for the domain.
#[utoipa::path(get, path = "/v1/admin/domains/{domain}/digest", tag = "admin domains",
    params(("domain" = String, Path, description = "The domain", max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "The switch", body = DigestView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_get_domain_digest(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &digest_view(&state, &admin, &path).await?,
    ))
}

/// Turns HTTP Digest on `settings.phtml` on or off for the domain. Twin of
/// `domain digest DOMAIN on|off`.
#[utoipa::path(put, path = "/v1/admin/domains/{domain}/digest", tag = "admin domains",
    params(("domain" = String, Path, description = "The domain", max_length = 253,
        pattern = "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = DigestBody, content_type = "application/json"),
    responses((status = 200, description = "The switch", body = DigestView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), AdminWriteErrors))]
pub(super) async fn admin_put_domain_digest(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<DigestBody>,
) -> ApiResult {
    etag::check(&headers, Some(&digest_view(&state, &admin, &path).await?))?;
    let domain = admin
        .services(&state)
        .set_domain_digest(&path, b.digest)
        .await?;
    Ok(etag::reply(
        StatusCode::OK,
        &DigestView {
            domain: domain.to_string(),
            digest: b.digest,
        },
    ))
}
