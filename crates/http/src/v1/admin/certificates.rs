//! `/v1/admin/certificates` and `/v1/admin/accounts/{account}/certificates`: issue, list and
//! revoke client certificates (tag `admin certificates`). Twins of `cert issue`, `cert list` and
//! `cert revoke`.
//!
//! An issued certificate is answered with its private key (the `.crt` bundle `cert issue`
//! writes): the key is made on the server, sent once to the admin client that asked, over its
//! mutual-TLS connection, with `Cache-Control: no-store`, and never stored, logged or
//! journaled. A subscriber who wants to keep the key to itself uses `POST /v1/me/certificates`
//! with a CSR instead.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::cert::{CertRecord, CertSubject, IssuedCertificate, parse_holder_name};
use sip_settings_core::{AccountId, Serial, ServiceError};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::v1::admin::client::AdminClient;
use crate::v1::admin::{AdminReadErrors, AdminWriteErrors, account_of};
use crate::v1::error::{ApiError, ApiResult, invalid};
use crate::v1::extract::{JsonBody, PathParam, query};
use crate::v1::view::{created, time};

/// A client certificate as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCertificateView {
    /// Serial, upper-case hex.
    pub serial: String,
    /// Subject common name (`user@domain` or the holder's name).
    pub subject: String,
    /// `subscriber`, `admin` or `service`.
    pub role: String,
    /// The account of a subscriber certificate, else `null`.
    pub account: Option<String>,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint_sha256: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// When it was revoked (RFC 3339), or `null`.
    pub revoked_at: Option<String>,
    /// The name that tells it apart, or `null` (issued before names were kept).
    pub name: Option<String>,
    /// When it last authenticated a request (RFC 3339, to the minute; each server writes what
    /// it saw about once a minute), or `null` if never as far as is known.
    pub last_used: Option<String>,
}

impl AdminCertificateView {
    fn of(c: &CertRecord) -> Self {
        Self {
            serial: c.serial.to_string(),
            subject: c.subject.clone(),
            role: c.role.to_string(),
            account: c.account.as_ref().map(ToString::to_string),
            fingerprint_sha256: c.fingerprint.clone(),
            not_before: time(c.not_before),
            not_after: time(c.not_after),
            issued_at: time(c.issued_at),
            revoked_at: c.revoked_at.map(time),
            name: c.name.clone(),
            last_used: c.last_used.map(time),
        }
    }
}

/// Certificates, in issue order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCertificatesView {
    /// Every matching certificate, revoked ones too.
    pub certificates: Vec<AdminCertificateView>,
}

/// A certificate just issued, with its private key.
#[derive(Serialize, ToSchema)]
pub struct IssuedBundleView {
    /// The record.
    pub certificate: AdminCertificateView,
    /// The certificate PEM followed by its unencrypted private key PEM (the `.crt` file of
    /// `cert issue`). Sent once, never stored.
    pub bundle: String,
}

impl std::fmt::Debug for IssuedBundleView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedBundleView")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// An account certificate to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// Lifetime in days (1–3650, default the service's).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
    /// A name that tells it apart (at most 64 characters, not only white space, no control
    /// characters; trimmed; default none).
    #[serde(default)]
    #[schema(
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
}

/// An operator or service certificate to issue (`cert issue --admin NAME` / `--service NAME`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderIssueBody {
    /// `admin` or `service`.
    #[schema(pattern = "^(admin|service)$")]
    pub role: String,
    /// The holder's name: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// Lifetime in days (1–3650, default the service's).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
}

/// How many certificates were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCountView {
    /// Certificates revoked now (those revoked before are not counted).
    pub revoked: u64,
}

fn issued(issued: &IssuedCertificate) -> axum::response::Response {
    created(
        &format!("/v1/admin/certificates/{}", issued.record.serial),
        &IssuedBundleView {
            certificate: AdminCertificateView::of(&issued.record),
            bundle: issued.crt_bundle(),
        },
    )
}

fn serial_of(path: &str) -> Result<Serial, ApiError> {
    Ok(Serial::parse(path).map_err(|e| e.renamed("serial"))?)
}

/// The certificates of one account. Twin of `cert list USER@DOMAIN`.
#[utoipa::path(get, path = "/v1/admin/accounts/{account}/certificates", tag = "admin certificates",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Certificates", body = AdminCertificatesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_account_certificates(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let s = admin.services(&state);
    s.account(&id).await?;
    let certificates = s
        .list_certificates(Some(&id))
        .await?
        .iter()
        .map(AdminCertificateView::of)
        .collect();
    Ok(etag::read(
        &headers,
        &AdminCertificatesView { certificates },
    ))
}

/// Issues a subscriber certificate for the account; the answer holds its private key. Twin of
/// `cert issue USER@DOMAIN`.
#[utoipa::path(post, path = "/v1/admin/accounts/{account}/certificates", tag = "admin certificates",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    request_body(content = IssueBody, content_type = "application/json"),
    responses((status = 201, description = "Issued", body = IssuedBundleView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The certificate"))), AdminWriteErrors))]
pub(super) async fn admin_issue_account_certificate(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<IssueBody>,
) -> ApiResult {
    let id = account_of(&path)?;
    let cert = admin
        .services(&state)
        .issue_certificate(CertSubject::Account(id), b.days, b.name.as_deref())
        .await?;
    Ok(issued(&cert))
}

/// Revokes every certificate of the account. Twin of `cert revoke --account USER@DOMAIN`.
#[utoipa::path(delete, path = "/v1/admin/accounts/{account}/certificates", tag = "admin certificates",
    params(("account" = String, Path, description = "`user@domain`", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Revoked", body = RevokedCountView), AdminWriteErrors))]
pub(super) async fn admin_revoke_account_certificates(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let id = account_of(&path)?;
    let revoked = admin
        .services(&state)
        .revoke_account_certificates(&id)
        .await?;
    Ok(etag::reply(StatusCode::OK, &RevokedCountView { revoked }))
}

/// Every certificate, or one account's. Twin of `cert list [USER@DOMAIN]`.
#[utoipa::path(get, path = "/v1/admin/certificates", tag = "admin certificates",
    params(("account" = Option<String>, Query, description = "Only this account's (`user@domain`)", max_length = 253,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")),
    responses((status = 200, description = "Certificates", body = AdminCertificatesView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_list_certificates(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = query(raw.as_deref(), &["account"])?;
    let account = q
        .get("account")
        .map(|a| AccountId::parse_for("account", a))
        .transpose()?;
    let certificates = admin
        .services(&state)
        .list_certificates(account.as_ref())
        .await?
        .iter()
        .map(AdminCertificateView::of)
        .collect();
    Ok(etag::read(
        &headers,
        &AdminCertificatesView { certificates },
    ))
}

/// Issues an operator (`admin`) or service certificate; the answer holds its private key. Twin
/// of `cert issue --admin NAME` and `cert issue --service NAME`.
#[utoipa::path(post, path = "/v1/admin/certificates", tag = "admin certificates",
    request_body(content = HolderIssueBody, content_type = "application/json"),
    responses((status = 201, description = "Issued", body = IssuedBundleView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The certificate"))), AdminWriteErrors))]
pub(super) async fn admin_issue_certificate(
    State(state): State<AppState>,
    admin: AdminClient,
    JsonBody(b): JsonBody<HolderIssueBody>,
) -> ApiResult {
    let name = parse_holder_name(&b.name)?;
    let subject = match b.role.as_str() {
        "admin" => CertSubject::Admin(name),
        "service" => CertSubject::Service(name),
        _ => return Err(invalid("role", "must be admin or service")),
    };
    let cert = admin
        .services(&state)
        .issue_certificate(subject, b.days, None)
        .await?;
    tracing::info!(
        actor = %admin.actor(),
        serial = %cert.record.serial,
        role = %cert.record.role,
        subject = %cert.record.subject,
        "certificate issued through the operator API"
    );
    Ok(issued(&cert))
}

/// One certificate.
#[utoipa::path(get, path = "/v1/admin/certificates/{serial}", tag = "admin certificates",
    params(("serial" = String, Path, description = "Serial, hex", pattern = "^[0-9A-Fa-f]{1,64}$")),
    responses((status = 200, description = "The certificate", body = AdminCertificateView,
        headers(("ETag" = String, description = "Strong entity tag"))), AdminReadErrors))]
pub(super) async fn admin_get_certificate(
    State(state): State<AppState>,
    admin: AdminClient,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let serial = serial_of(&path)?;
    let record = admin
        .services(&state)
        .store()
        .get_certificate(&serial)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| {
            ApiError::from(ServiceError::NotFound(format!(
                "no certificate with serial {serial}"
            )))
        })?;
    Ok(etag::read(&headers, &AdminCertificateView::of(&record)))
}

/// Revokes one certificate (any role; an admin certificate revoking itself is refused from its
/// next request on). Twin of `cert revoke SERIAL`.
#[utoipa::path(delete, path = "/v1/admin/certificates/{serial}", tag = "admin certificates",
    params(("serial" = String, Path, description = "Serial, hex", pattern = "^[0-9A-Fa-f]{1,64}$")),
    responses((status = 200, description = "The revoked certificate", body = AdminCertificateView), AdminWriteErrors))]
pub(super) async fn admin_revoke_certificate(
    State(state): State<AppState>,
    admin: AdminClient,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let serial = serial_of(&path)?;
    let record = admin.services(&state).revoke_certificate(&serial).await?;
    Ok(etag::reply(
        StatusCode::OK,
        &AdminCertificateView::of(&record),
    ))
}
