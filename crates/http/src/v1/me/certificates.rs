//! `/v1/me/certificates`: the account's own client certificates (tag `certificates`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::cert_use::default_name;
use sip_settings_core::{Serial, ServiceError, Services};
use utoipa::ToSchema;

use crate::AppState;
use crate::etag;
use crate::identity::Subscriber;
use crate::v1::doc::{ReadErrors, WriteErrors};
use crate::v1::error::{ApiError, ApiResult, not_found};
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::view::{created, time};

/// A certificate of the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Serial, hex.
    pub serial: String,
    /// Subject common name.
    pub subject: String,
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
    /// The name that tells it apart, or `null` (issued before names were kept). When it was
    /// last used is on the web page and in the operator's API, not here: it changes every
    /// minute the certificate is used, and so would this list's `ETag`, which a change must
    /// name in `If-Match`.
    pub name: Option<String>,
    /// Whether this request was made with it.
    pub current: bool,
}

/// The certificates of the account (`GET /v1/me/certificates`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificatesView {
    /// Every certificate issued for the account, revoked ones too.
    pub certificates: Vec<CertificateView>,
}

/// A certificate signing request (`POST /v1/me/certificates`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrBody {
    /// PKCS#10 CSR, PEM. Only its public key is used: the subject is always the account.
    pub csr: String,
    /// Lifetime in days (1–3650, default the service's).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
    /// A name that tells it apart (at most 64 characters, not only white space, no control
    /// characters; trimmed; default: `CSR for` the client its `User-Agent` names).
    #[serde(default)]
    #[schema(
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
}

/// A certificate's new name (`PATCH /v1/me/certificates/{serial}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificatePatch {
    /// The name (at most 64 characters, not only white space, no control characters; trimmed).
    #[schema(
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
}

/// A certificate issued from a CSR.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedView {
    /// The record.
    pub certificate: CertificateView,
    /// The certificate, PEM (the key stayed with the client).
    pub pem: String,
}

fn certificate_view(c: &CertRecord, current: &Serial) -> CertificateView {
    CertificateView {
        serial: c.serial.to_string(),
        subject: c.subject.clone(),
        fingerprint_sha256: c.fingerprint.clone(),
        not_before: time(c.not_before),
        not_after: time(c.not_after),
        issued_at: time(c.issued_at),
        revoked_at: c.revoked_at.map(time),
        name: c.name.clone(),
        current: &c.serial == current,
    }
}

async fn own_certificate(
    s: &Services,
    me: &Subscriber,
    serial: &Serial,
) -> Result<Option<CertificateView>, ServiceError> {
    Ok(s.list_certificates(Some(&me.account))
        .await?
        .iter()
        .find(|c| &c.serial == serial)
        .map(|c| certificate_view(c, &me.serial)))
}

fn serial_of(path: String) -> Result<Serial, ApiError> {
    Ok(Serial::parse(&path).map_err(|e| e.renamed("serial"))?)
}

async fn certificates_view(
    s: &Services,
    me: &Subscriber,
) -> Result<CertificatesView, ServiceError> {
    Ok(CertificatesView {
        certificates: s
            .list_certificates(Some(&me.account))
            .await?
            .iter()
            .map(|c| certificate_view(c, &me.serial))
            .collect(),
    })
}

/// The account's own certificates.
#[utoipa::path(get, path = "/v1/me/certificates", tag = "certificates",
    responses((status = 200, description = "Certificates", body = CertificatesView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn list_certificates(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
) -> ApiResult {
    Ok(etag::read(
        &headers,
        &certificates_view(&state.services, &me).await?,
    ))
}

/// Issues a certificate for the public key of a CSR (the key never leaves the client).
#[utoipa::path(post, path = "/v1/me/certificates", tag = "certificates",
    params(("If-Match" = Option<String>, Header, description = "ETag of the list read before; 412 if stale")),
    request_body(content = CsrBody, content_type = "application/json"),
    responses((status = 201, description = "Issued", body = IssuedView,
        headers(("ETag" = String, description = "Entity tag"), ("Location" = String, description = "The certificate"))), WriteErrors))]
pub(super) async fn issue_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    JsonBody(b): JsonBody<CsrBody>,
) -> ApiResult {
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    etag::check(&headers, Some(&certificates_view(&s, &me).await?))?;
    let name = match b.name {
        Some(name) => name,
        None => default_name("CSR", crate::user_agent(&headers)),
    };
    let (record, pem) = s
        .issue_from_csr(&me.account, &b.csr, b.days, Some(&name))
        .await?;
    s.commit().await?;
    Ok(created(
        &format!("/v1/me/certificates/{}", record.serial),
        &IssuedView {
            certificate: certificate_view(&record, &me.serial),
            pem,
        },
    ))
}

/// One of the account's own certificates (another account's serial is 404).
#[utoipa::path(get, path = "/v1/me/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial, hex (colons allowed)")),
    responses((status = 200, description = "The certificate", body = CertificateView,
        headers(("ETag" = String, description = "Strong entity tag"))), ReadErrors))]
pub(super) async fn get_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let serial = serial_of(path)?;
    match own_certificate(&state.services, &me, &serial).await? {
        Some(v) => Ok(etag::read(&headers, &v)),
        None => Err(not_found(format!("no certificate with serial {serial}"))),
    }
}

/// Names one of the account's own certificates (another account's serial is 404); journaled.
#[utoipa::path(patch, path = "/v1/me/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial, hex (colons allowed)"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    request_body(content = CertificatePatch, content_type = "application/json"),
    responses((status = 200, description = "The certificate as named", body = CertificateView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn rename_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
    JsonBody(b): JsonBody<CertificatePatch>,
) -> ApiResult {
    let serial = serial_of(path)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    if let Some(current) = own_certificate(&s, &me, &serial).await? {
        etag::check(&headers, Some(&current))?;
    }
    let record = s
        .rename_own_certificate(&me.account, &serial, &b.name)
        .await?;
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &certificate_view(&record, &me.serial),
    ))
}

/// Revokes one of the account's own certificates (another account's serial is 404).
#[utoipa::path(delete, path = "/v1/me/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial, hex (colons allowed)"),
        ("If-Match" = Option<String>, Header, description = "ETag read before; 412 if stale")),
    responses((status = 200, description = "The revoked certificate", body = CertificateView,
        headers(("ETag" = String, description = "Entity tag of the new representation"))), WriteErrors))]
pub(super) async fn revoke_certificate(
    State(state): State<AppState>,
    me: Subscriber,
    headers: HeaderMap,
    PathParam(path): PathParam<String>,
) -> ApiResult {
    let serial = serial_of(path)?;
    let s = me.services(&state);
    let s = s.hold(&me.account).await?;
    if let Some(current) = own_certificate(&s, &me, &serial).await? {
        etag::check(&headers, Some(&current))?;
    }
    let record = s.revoke_own_certificate(&me.account, &serial).await?;
    s.commit().await?;
    Ok(etag::reply(
        StatusCode::OK,
        &certificate_view(&record, &me.serial),
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use crate::v1::testing::{TestApp, assert_problem};

    /// A CSR the CA cannot read, or one over 16 KiB, is `400 invalid_field` naming `csr`, and
    /// nothing is issued.
    #[tokio::test]
    async fn a_bad_csr_is_a_400_naming_csr() {
        let t = TestApp::new().await;
        let not_pem = serde_json::json!({"csr": "not a CSR"}).to_string();
        let bad_signature = serde_json::json!({
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n"
        })
        .to_string();
        let large = serde_json::json!({"csr": "A".repeat(16 * 1024 + 1)}).to_string();
        for body in [not_pem, bad_signature, large] {
            let r = t
                .send(&t.alice, Method::POST, "/v1/me/certificates", Some(&body))
                .await;
            assert_problem(&r, 400, "invalid_field", Some("csr"));
        }
        let r = t
            .send(&t.alice, Method::GET, "/v1/me/certificates", None)
            .await;
        assert_eq!(
            r.body["certificates"].as_array().map(Vec::len),
            Some(1),
            "{}",
            r.body
        );
    }
}
