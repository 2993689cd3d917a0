//! The sip-settings certificate authority.
//!
//! * [`Pki`] holds the client CA (ECDSA P-256, SHA-256) and issues subscriber, admin and service
//!   client certificates and the server certificate; it implements core's
//!   [`CertificateAuthority`] so that the service layer can issue without knowing X.509.
//! * [`files`] creates and loads the CA and server files of a data directory.
//! * [`peer_identity`] reads the serial and fingerprint of a presented certificate.

pub mod files;
pub mod tls;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKey as P12PrivateKey, PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use sip_settings_core::cert::{
    CertRecord, CertSubject, CertificateAuthority, IssueRequest, IssuedCertificate, P12Variant,
};
use sip_settings_core::{Clock, Serial, ServiceError, SystemClock};
use thiserror::Error;

/// Errors of the PKI.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM or DER input could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// The parser's complaint.
        detail: String,
    },
    /// PKCS#12 encoding failed.
    #[error("PKCS#12 encoding failed: {0}")]
    Pkcs12(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory has not been initialised.
    #[error("{0} not found: run `sip-settings init` first")]
    NotInitialised(String),
}

impl From<PkiError> for ServiceError {
    fn from(e: PkiError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// Converts a chrono time to the `time` crate's, as rcgen wants it.
fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| PkiError::Parse {
        what: "validity time".to_owned(),
        detail: e.to_string(),
    })
}

/// A random positive serial of 128 bits whose DER form is exactly 16 bytes, so that its hex is
/// what `openssl x509 -serial` prints.
fn random_serial() -> [u8; 16] {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    bytes
}

/// SHA-256 of DER, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The serial and fingerprint of a certificate presented by a peer (DER).
pub fn peer_identity(der: &[u8]) -> Result<(Serial, String), PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse {
        what: "peer certificate".to_owned(),
        detail: e.to_string(),
    })?;
    let serial = Serial::from_bytes(cert.tbs_certificate.raw_serial());
    Ok((serial, fingerprint(der)))
}

/// The client CA with its signing key, and the clock it takes the time of what it issues from.
pub struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// A certificate and key in PEM, as written to `server.crt`/`server.key`.
#[derive(Clone)]
pub struct PemPair {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
}

impl fmt::Debug for PemPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PemPair(***)")
    }
}

impl Pki {
    /// Creates a new CA named `common_name`, valid from now (the system clock's) for `years`.
    pub fn create_ca(common_name: &str, years: i64) -> Result<PemPair, PkiError> {
        Self::create_ca_at(common_name, years, SystemClock.now())
    }

    /// Creates a new CA named `common_name`, valid from `now` for `years`.
    pub fn create_ca_at(
        common_name: &str,
        years: i64,
        now: DateTime<Utc>,
    ) -> Result<PemPair, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sip-settings");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.not_before = to_offset(now - Duration::hours(1))?;
        params.not_after = to_offset(now + Duration::days(365 * years))?;
        let cert = params.self_signed(&key)?;
        Ok(PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn load(ca: &PemPair) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| PkiError::Parse {
            what: "CA key".to_owned(),
            detail: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key).map_err(|e| PkiError::Parse {
            what: "CA certificate".to_owned(),
            detail: e.to_string(),
        })?;
        let ca_der = pem_to_der(&ca.cert_pem)?;
        Ok(Self {
            ca_pem: ca.cert_pem.clone(),
            ca_der,
            issuer,
            clock: Arc::new(SystemClock),
        })
    }

    /// The CA taking the time of what it issues (a record's `issued_at`, a server
    /// certificate's validity) from `clock`, the service layer's, instead of the system clock.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issues a server certificate for host names and IP addresses, valid for `days`.
    pub fn issue_server(&self, names: &[String], days: i64) -> Result<PemPair, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sip-settings");
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("localhost"),
        );
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into()?),
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let now = self.clock.now();
        params.not_before = to_offset(now - Duration::hours(1))?;
        params.not_after = to_offset(now + Duration::days(days))?;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn issue_client(&self, request: &IssueRequest) -> Result<IssuedCertificate, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let serial = client_params(&mut params, request)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_der = cert.der().to_vec();
        let record = client_record(request, &serial, &cert_der, self.clock.now());
        Ok(IssuedCertificate {
            record,
            cert_pem: cert.pem(),
            cert_der,
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }

    fn pack_pkcs12(
        &self,
        issued: &IssuedCertificate,
        password: &str,
        variant: P12Variant,
    ) -> Result<Vec<u8>, PkiError> {
        let p12err = |e: p12_keystore::error::Error| PkiError::Pkcs12(e.to_string());
        let key = P12PrivateKey::from_der(&issued.key_der).map_err(p12err)?;
        let leaf = P12Certificate::from_der(&issued.cert_der).map_err(p12err)?;
        let ca = P12Certificate::from_der(&self.ca_der).map_err(p12err)?;
        let local_key_id = Sha256::digest(&issued.cert_der)[..20].to_vec();
        let chain = PrivateKeyChain::new(local_key_id, key, [leaf, ca]);
        let mut store = KeyStore::new();
        store.add_entry(
            &issued.record.subject,
            KeyStoreEntry::PrivateKeyChain(chain),
        );
        let writer = store.writer(password);
        let writer = match variant {
            P12Variant::Modern => writer
                .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
                .mac_algorithm(MacAlgorithm::HmacSha256),
            P12Variant::Legacy => writer
                .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
                .mac_algorithm(MacAlgorithm::HmacSha1),
        };
        writer.write().map_err(p12err)
    }

    /// Issues a client certificate with a given serial-free request, for tests and tools that
    /// need certificates the service layer would refuse to make (expired ones, for instance).
    pub fn issue_unrecorded(&self, request: &IssueRequest) -> Result<IssuedCertificate, PkiError> {
        self.issue_client(request)
    }
}

impl CertificateAuthority for Pki {
    fn issue(&self, request: &IssueRequest) -> Result<IssuedCertificate, ServiceError> {
        Ok(self.issue_client(request)?)
    }

    fn pkcs12(
        &self,
        issued: &IssuedCertificate,
        password: &str,
        variant: P12Variant,
    ) -> Result<Vec<u8>, ServiceError> {
        Ok(self.pack_pkcs12(issued, password, variant)?)
    }

    fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn sign_csr(
        &self,
        csr_pem: &str,
        request: &IssueRequest,
    ) -> Result<(CertRecord, String), ServiceError> {
        self.sign_csr_inner(csr_pem, request).map_err(|e| match e {
            // What the client sent is wrong: a refusal naming the field, not an internal error.
            PkiError::Parse { detail, .. } => ServiceError::invalid(
                "csr",
                format!(
                    "is not a PEM certificate signing request with a valid signature: {detail}"
                ),
            ),
            other => other.into(),
        })
    }
}

impl Pki {
    fn sign_csr_inner(
        &self,
        csr_pem: &str,
        request: &IssueRequest,
    ) -> Result<(CertRecord, String), PkiError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::Parse {
                what: "certificate signing request".to_owned(),
                detail: e.to_string(),
            }
        })?;
        // Only the CSR's public key is used: subject, names and extensions are ours.
        csr.params = CertificateParams::default();
        let serial = client_params(&mut csr.params, request)?;
        let cert = csr.signed_by(&self.issuer)?;
        let der = cert.der().to_vec();
        let record = client_record(request, &serial, &der, self.clock.now());
        Ok((record, cert.pem()))
    }
}

/// Fills the parameters of a client certificate for `request`; returns the serial chosen.
fn client_params(
    params: &mut CertificateParams,
    request: &IssueRequest,
) -> Result<[u8; 16], PkiError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sip-settings");
    dn.push(
        DnType::OrganizationalUnitName,
        request.subject.role().as_str(),
    );
    dn.push(DnType::CommonName, request.subject.common_name());
    params.distinguished_name = dn;
    params.subject_alt_names.clear();
    if let CertSubject::Account(id) = &request.subject {
        params
            .subject_alt_names
            .push(SanType::URI(id.sip_uri().as_str().try_into()?));
    }
    params.is_ca = IsCa::NoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = to_offset(request.not_before)?;
    params.not_after = to_offset(request.not_after)?;
    params.use_authority_key_identifier_extension = true;
    Ok(serial)
}

/// The record of a client certificate signed at `issued_at`.
fn client_record(
    request: &IssueRequest,
    serial: &[u8],
    der: &[u8],
    issued_at: DateTime<Utc>,
) -> CertRecord {
    CertRecord {
        serial: Serial::from_bytes(serial),
        subject: request.subject.common_name(),
        role: request.subject.role(),
        account: match &request.subject {
            CertSubject::Account(id) => Some(id.clone()),
            _ => None,
        },
        fingerprint: fingerprint(der),
        not_before: request.not_before,
        not_after: request.not_after,
        issued_at,
        revoked_at: None,
        name: None,
        last_used: None,
    }
}

/// The DER of the first PEM block in `pem`.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let parsed = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| PkiError::Parse {
        what: "PEM".to_owned(),
        detail: e.to_string(),
    })?;
    Ok(parsed.1.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_settings_core::{AccountId, CertRole};

    fn pki() -> Pki {
        Pki::load(&Pki::create_ca("test CA", 1).unwrap()).unwrap()
    }

    #[test]
    fn issues_a_subscriber_certificate_with_sip_uri_and_serial() {
        let pki = pki();
        let id = AccountId::parse("alice@example.com").unwrap();
        let now = Utc::now();
        let issued = pki
            .issue(&IssueRequest {
                subject: CertSubject::Account(id),
                not_before: now,
                not_after: now + Duration::days(30),
            })
            .unwrap();
        assert_eq!(issued.record.role, CertRole::Subscriber);
        assert_eq!(issued.record.serial.as_str().len(), 32);
        let (serial, fp) = peer_identity(&issued.cert_der).unwrap();
        assert_eq!(serial, issued.record.serial);
        assert_eq!(fp, issued.record.fingerprint);
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert_der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(format!("{:?}", san.value).contains("sip:alice@example.com"));
        assert!(issued.crt_bundle().contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn signs_a_csr_for_the_account_whatever_it_asks() {
        let pki = pki();
        let key = KeyPair::generate().unwrap();
        let mut asked = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        asked.distinguished_name.push(DnType::CommonName, "admin");
        asked.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = asked.serialize_request(&key).unwrap().pem().unwrap();
        let id = AccountId::parse("alice@example.com").unwrap();
        let now = Utc::now();
        let (record, pem) = pki
            .sign_csr(
                &csr,
                &IssueRequest {
                    subject: CertSubject::Account(id),
                    not_before: now,
                    not_after: now + Duration::days(1),
                },
            )
            .unwrap();
        let der = pem_to_der(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(cert.subject().to_string().contains("CN=alice@example.com"));
        assert!(!cert.is_ca());
        // The certificate carries the CSR's key: the private key never left the client.
        assert_eq!(
            &*cert.public_key().subject_public_key.data,
            key.public_key_raw()
        );
        assert_eq!(peer_identity(&der).unwrap().0, record.serial);
        assert!(
            pki.sign_csr(
                "not a csr",
                &IssueRequest {
                    subject: CertSubject::Admin("x".into()),
                    not_before: now,
                    not_after: now
                }
            )
            .is_err()
        );
    }

    #[test]
    fn the_injected_clock_gives_every_time_the_ca_writes() {
        use std::sync::Arc;

        use chrono::TimeZone;
        use sip_settings_core::ManualClock;

        let t = Utc.timestamp_opt(1_900_000_000, 0).single().unwrap();
        let clock = Arc::new(ManualClock::new(t));
        let pki = pki().with_clock(clock.clone());
        let request = |subject| IssueRequest {
            subject,
            not_before: t - Duration::days(2),
            not_after: t + Duration::days(30),
        };
        let id = AccountId::parse("alice@example.com").unwrap();
        let issued = pki
            .issue(&request(CertSubject::Account(id.clone())))
            .unwrap();
        assert_eq!(issued.record.issued_at, t);

        clock.advance(Duration::hours(5));
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(Vec::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let (record, _) = pki
            .sign_csr(&csr, &request(CertSubject::Account(id)))
            .unwrap();
        assert_eq!(record.issued_at, t + Duration::hours(5));

        // A server certificate is valid from an hour before the clock's time.
        let server = pki.issue_server(&["localhost".to_owned()], 10).unwrap();
        let der = pem_to_der(&server.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let validity = cert.validity();
        assert_eq!(
            validity.not_before.timestamp(),
            (t + Duration::hours(4)).timestamp()
        );
        assert_eq!(
            validity.not_after.timestamp(),
            (t + Duration::hours(5) + Duration::days(10)).timestamp()
        );

        // So is a CA made at a given time.
        let ca = Pki::create_ca_at("test CA", 1, t).unwrap();
        let der = pem_to_der(&ca.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.validity().not_before.timestamp(),
            (t - Duration::hours(1)).timestamp()
        );
    }

    #[test]
    fn pkcs12_round_trips_with_the_password_only() {
        let pki = pki();
        let now = Utc::now();
        let issued = pki
            .issue(&IssueRequest {
                subject: CertSubject::Admin("ops".into()),
                not_before: now,
                not_after: now + Duration::days(1),
            })
            .unwrap();
        for variant in [P12Variant::Modern, P12Variant::Legacy] {
            let p12 = pki.pkcs12(&issued, "s3cret-pass", variant).unwrap();
            let store = KeyStore::from_pkcs12(
                &p12,
                "s3cret-pass",
                p12_keystore::Pkcs12ImportPolicy::Relaxed,
            )
            .unwrap();
            let (_, chain) = store.private_key_chain().unwrap();
            assert_eq!(chain.certs().len(), 2);
            assert!(
                KeyStore::from_pkcs12(&p12, "wrong", p12_keystore::Pkcs12ImportPolicy::Relaxed)
                    .is_err()
            );
        }
    }
}
