//! Certificates as the service records them: [`Serial`], [`CertRole`], [`CertRecord`], and the
//! [`CertificateAuthority`] trait through which the service issues them. The CA itself (keys,
//! X.509, PKCS#12) lives in the `pki` crate; core only says what is asked of it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::ids::{AccountId, printable};

/// A certificate serial number in upper-case hex without separators, as `openssl x509 -serial`
/// prints it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    /// Parses a serial in hex, any case, with or without `:` separators (`serial=` prefix, as
    /// openssl prints it, is accepted too).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let trimmed = input.trim();
        let trimmed = trimmed.strip_prefix("serial=").unwrap_or(trimmed);
        let hex: String = trimmed.chars().filter(|c| *c != ':').collect();
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::invalid(
                "serial",
                format!("'{}' is not a hexadecimal serial number", printable(input)),
            ));
        }
        let upper = hex.to_ascii_uppercase();
        // openssl prints whole bytes; keep an even number of digits.
        let normalised = if upper.len() % 2 == 1 {
            format!("0{upper}")
        } else {
            upper
        };
        Ok(Self(normalised))
    }

    /// From the big-endian bytes of the serial as encoded in the certificate.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode_upper(bytes))
    }

    /// The serial as upper-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Serial {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Serial> for String {
    fn from(value: Serial) -> Self {
        value.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a certificate lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertRole {
    /// Acts on one account, its own.
    Subscriber,
    /// An operator: provisions and administers.
    Admin,
    /// A SIP proxy, call control or billing feed.
    Service,
}

impl CertRole {
    /// The role's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscriber => "subscriber",
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscriber" => Some(Self::Subscriber),
            "admin" => Some(Self::Admin),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of an admin or service certificate holder: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn parse_holder_name(input: &str) -> Result<String, ServiceError> {
    let ok = !input.is_empty()
        && input.len() <= 64
        && input.as_bytes()[0].is_ascii_alphanumeric()
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(input.to_owned())
    } else {
        Err(ServiceError::invalid(
            "name",
            format!(
                "'{}' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                printable(input)
            ),
        ))
    }
}

/// Who a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSubject {
    /// A subscriber's account: `CN=user@domain`, SAN `sip:user@domain`.
    Account(AccountId),
    /// An operator, by name.
    Admin(String),
    /// A service client, by name.
    Service(String),
}

impl CertSubject {
    /// The role this subject gets.
    pub fn role(&self) -> CertRole {
        match self {
            Self::Account(_) => CertRole::Subscriber,
            Self::Admin(_) => CertRole::Admin,
            Self::Service(_) => CertRole::Service,
        }
    }

    /// The common name written into the certificate.
    pub fn common_name(&self) -> String {
        match self {
            Self::Account(id) => id.to_string(),
            Self::Admin(n) | Self::Service(n) => n.clone(),
        }
    }
}

/// One issued certificate, as recorded by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// Serial number (unique).
    pub serial: Serial,
    /// The subject's common name (`user@domain` or the holder's name).
    pub subject: String,
    /// The role.
    pub role: CertRole,
    /// The account, for subscriber certificates.
    pub account: Option<AccountId>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The name that tells it apart ([`crate::cert_use`]); `None` for certificates issued
    /// before names were kept.
    pub name: Option<String>,
    /// When it last authenticated a request, to the minute, as far as the servers have
    /// written it ([`crate::cert_use`]).
    pub last_used: Option<DateTime<Utc>>,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// For whom.
    pub subject: CertSubject,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

/// A freshly issued certificate with its private key. The key leaves the server only in the
/// subscriber's own download.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The record to store.
    pub record: CertRecord,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("record", &self.record)
            .field("key", &"***")
            .finish()
    }
}

impl IssuedCertificate {
    /// The `.crt` download: certificate PEM followed by the unencrypted key PEM.
    pub fn crt_bundle(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// Which PKCS#12 encryption to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P12Variant {
    /// PBES2 (AES-256-CBC, PBKDF2-HMAC-SHA256) with a SHA-256 MAC.
    Modern,
    /// PBE-SHA1-3DES with a SHA-1 MAC, for key stores that cannot read the modern one.
    Legacy,
}

/// The certificate authority the service issues with.
pub trait CertificateAuthority: Send + Sync + fmt::Debug {
    /// Issues a new key pair and certificate.
    fn issue(&self, request: &IssueRequest) -> Result<IssuedCertificate, ServiceError>;
    /// Packs an issued certificate, its key and the CA certificate into PKCS#12.
    fn pkcs12(
        &self,
        issued: &IssuedCertificate,
        password: &str,
        variant: P12Variant,
    ) -> Result<Vec<u8>, ServiceError>;
    /// The CA certificate, PEM.
    fn ca_pem(&self) -> &str;
    /// Signs the public key of a PEM certificate signing request for `request.subject` (the
    /// CSR's own subject is ignored): the key never leaves the client.
    fn sign_csr(
        &self,
        csr_pem: &str,
        request: &IssueRequest,
    ) -> Result<(CertRecord, String), ServiceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_in_openssl_forms() {
        let s = Serial::parse("serial=0a:1B:2c").unwrap();
        assert_eq!(s.as_str(), "0A1B2C");
        assert_eq!(Serial::parse("a1b2c").unwrap().as_str(), "0A1B2C");
        assert!(Serial::parse("xyz").is_err());
        assert!(Serial::parse("").is_err());
    }
}
