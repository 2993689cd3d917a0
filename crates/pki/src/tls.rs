//! The TLS server configuration both doors use (HTTPS and SIP over TLS): the server's own
//! certificate, and client certificates verified against the service's client CA. A connection
//! without a client certificate is let through (each door refuses its requests: HTTPS with a
//! JSON 401, SIP with 403); one with a certificate that does not verify (another CA, expired,
//! not yet valid) fails the handshake.
//!
//! The server's own certificate is held by a [`ServerCert`], which both doors' configurations
//! share and which [`ServerCert::replace`] swaps while the server runs (SIGHUP): handshakes
//! from then on present the new certificate; connections already open keep theirs.

use std::sync::{Arc, RwLock};

use crate::PemPair;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server's certificate and key, replaceable while the server runs.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Reads the certificate chain and key of `server`; refuses a key that does not belong to
    /// the certificate.
    pub fn new(server: &PemPair) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified_key(server)?)),
        }))
    }

    /// Presents `server` in every handshake from now on. On an error (unreadable PEM, a key that
    /// does not match the certificate) the certificate in use stays.
    pub fn replace(&self, server: &PemPair) -> Result<(), String> {
        let key = Arc::new(certified_key(server)?);
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }

    /// The certificate presented now (DER of the end-entity certificate).
    pub fn current_der(&self) -> Vec<u8> {
        self.current()
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Why a TLS handshake failed, from a small fixed set (a metric's label): `timeout` is the
/// caller's; `client_certificate_expired` (or not yet valid), `client_certificate_unknown_ca`
/// (signed by another CA or badly signed), `client_certificate_invalid` (any other refusal of
/// the client's certificate), `no_common_protocol` (no shared version, cipher suite or ALPN),
/// `alert` (the client gave up, e.g. it does not trust the server's certificate), `protocol`
/// (a malformed or unexpected message, such as plain HTTP on the TLS port), `closed` (the
/// connection ended or failed mid-handshake), `other`.
pub fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(e)) => match e {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "client_certificate_expired",
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "client_certificate_unknown_ca"
            }
            _ => "client_certificate_invalid",
        },
        Some(Error::PeerIncompatible(_) | Error::NoApplicationProtocol) => "no_common_protocol",
        Some(Error::AlertReceived(_)) => "alert",
        Some(
            Error::InvalidMessage(_)
            | Error::PeerMisbehaved(_)
            | Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. },
        ) => "protocol",
        Some(_) => "other",
        None => match error.kind() {
            std::io::ErrorKind::InvalidData => "protocol",
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => "closed",
            _ => "other",
        },
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certified_key(server: &PemPair) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate: {e}"))?;
    if certs.is_empty() {
        return Err("server certificate: no certificate in the PEM".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|e| format!("server key: {e}"))?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| format!("server certificate and key: {e}"))
}

/// Builds the server configuration from the server certificate and key and the client CA (DER).
pub fn server_config(server: &PemPair, client_ca_der: &[u8]) -> Result<ServerConfig, String> {
    server_config_with(ServerCert::new(server)?, client_ca_der)
}

/// Builds the server configuration that presents `cert` (shared, replaceable) and verifies
/// client certificates against the client CA (DER).
pub fn server_config_with(
    cert: Arc<ServerCert>,
    client_ca_der: &[u8],
) -> Result<ServerConfig, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca_der.to_vec()))
        .map_err(|e| format!("client CA certificate: {e}"))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    Ok(config)
}

/// A client configuration that trusts the CA in `ca_pem` and presents the certificate and key
/// of `bundle_pem` (a `.crt` bundle: certificate(s), then the private key).
pub fn client_config(ca_pem: &str, bundle_pem: &str) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| format!("CA certificate: {e}"))?)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    let certs = CertificateDer::pem_slice_iter(bundle_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(bundle_pem.as_bytes())
        .map_err(|e| format!("client key: {e}"))?;
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("client certificate and key: {e}"))
}
