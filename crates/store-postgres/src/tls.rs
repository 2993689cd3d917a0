//! PostgreSQL over TLS: the URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, as libpq
//! reads them, on sqlx's rustls client (aws-lc-rs, the provider of the rest of the workspace).
//!
//! sqlx does the handshake; this module closes the gaps between its reading of the parameters
//! and libpq's, once, on the options every connection of the store is made from (the pool, the
//! read cache's listener, the health probe, the migrations):
//!
//! * `sslmode=require` with an `sslrootcert` verifies the server's chain, as libpq does
//!   (`verify-ca`); sqlx alone would accept any certificate;
//! * `sslmode=allow` becomes `prefer` (sqlx would never try TLS: "allow" means "whatever the
//!   server accepts", and `prefer` connects to every server `allow` connects to);
//! * the files are read at open, so that a missing or empty `sslrootcert` is named as such
//!   instead of a bare I/O error at the first connection or, for an empty file, an unknown
//!   issuer;
//! * a failed handshake says it was TLS, with the mode, and rustls' reason (unknown issuer, name
//!   mismatch, expired).

use std::borrow::Cow;
use std::path::Path;

use sip_settings_core::StoreError;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::form_decode;

/// The TLS files a URL (or the `PGSSL…` environment, which sqlx reads too) names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// `sslrootcert` (`ssl-root-cert`, `ssl-ca`): the CA certificates the server's chain must
    /// end in.
    pub(crate) root_cert: Option<String>,
    /// `sslcert` (`ssl-cert`): this client's certificate chain.
    pub(crate) client_cert: Option<String>,
    /// `sslkey` (`ssl-key`): this client's private key.
    pub(crate) client_key: Option<String>,
}

impl TlsFiles {
    /// The files named by the query of `url` (the last of repeated names wins, as in sqlx),
    /// else by `env` (`PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`).
    pub(crate) fn of(url: &str, env: impl Fn(&str) -> Option<String>) -> Self {
        let mut files = Self {
            root_cert: env("PGSSLROOTCERT"),
            client_cert: env("PGSSLCERT"),
            client_key: env("PGSSLKEY"),
        };
        let query = url.split_once('?').map_or("", |(_, q)| q);
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let value = Some(form_decode(value));
            match form_decode(name).as_str() {
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => files.root_cert = value,
                "sslcert" | "ssl-cert" => files.client_cert = value,
                "sslkey" | "ssl-key" => files.client_key = value,
                _ => {}
            }
        }
        files
    }
}

/// The name of `mode` as in a URL.
pub(crate) fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The mode the store connects with, from the one the URL asks for and whether it names an
/// `sslrootcert` (libpq's rules, above).
pub(crate) fn effective_mode(asked: PgSslMode, root_cert: bool) -> PgSslMode {
    match asked {
        PgSslMode::Allow => PgSslMode::Prefer,
        PgSslMode::Require if root_cert => PgSslMode::VerifyCa,
        mode => mode,
    }
}

/// `options` with the effective mode, after checking that the files it will read exist and
/// hold what they should. The error names the parameter and the file, never a key's content.
pub(crate) async fn configure(
    options: PgConnectOptions,
    files: &TlsFiles,
) -> Result<PgConnectOptions, StoreError> {
    let asked = options.get_ssl_mode();
    let mode = effective_mode(asked, files.root_cert.is_some());
    if matches!(mode, PgSslMode::Disable) {
        return Ok(options.ssl_mode(mode));
    }
    let verifies = matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    if let Some(root) = files.root_cert.as_ref().filter(|_| verifies) {
        if root == "system" {
            return Err(StoreError::Other(
                "sslrootcert=system is not supported: leave sslrootcert out to trust the \
                 public CAs (Mozilla's list, built in), or name a file of CA certificates"
                    .to_owned(),
            ));
        }
        check_pem("sslrootcert", root, "CERTIFICATE").await?;
    }
    match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => {
            check_pem("sslcert", cert, "CERTIFICATE").await?;
            check_pem("sslkey", key, "PRIVATE KEY").await?;
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Other(
                "sslcert and sslkey go together: give both or neither".to_owned(),
            ));
        }
    }
    Ok(options.ssl_mode(mode))
}

/// Checks that `value` of the parameter `name` (a file, or PEM text inline as sqlx allows) holds
/// a PEM block whose label ends in `label`.
async fn check_pem(name: &str, value: &str, label: &str) -> Result<(), StoreError> {
    // sqlx's rule for inline PEM; a value that looks like PEM is never shown (a key).
    let trimmed = value.trim();
    let inline = trimmed.starts_with("-----BEGIN") && trimmed.ends_with("-----");
    let shown = if value.contains("-----BEGIN") {
        "(PEM text, not a file name)"
    } else {
        value
    };
    let text: Cow<'_, str> = if inline {
        Cow::Borrowed(value)
    } else {
        let bytes = tokio::fs::read(Path::new(value))
            .await
            .map_err(|e| StoreError::Other(format!("{name} {shown}: cannot read the file: {e}")))?;
        Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
    };
    let found = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .any(|l| l.strip_suffix("-----").is_some_and(|l| l.ends_with(label)));
    if found {
        Ok(())
    } else if inline {
        Err(StoreError::Other(format!(
            "{name}: the inline PEM holds no {label} block"
        )))
    } else {
        Err(StoreError::Other(format!(
            "{name} {shown}: no PEM {label} block in the file"
        )))
    }
}

/// What went wrong in the TLS handshake, if `e` is a TLS failure: sqlx's own (no TLS on the
/// server, a file it could not use), or rustls' (a refused certificate: unknown issuer, name
/// mismatch, expired), which reaches sqlx as an I/O error.
fn tls_failure(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Tls(reason) => Some(reason.to_string()),
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        _ => None,
    }
}

/// The error of a failed first connection: a TLS failure says so, with the mode (it is not
/// "temporarily unavailable": it fails the same way until the certificates or the URL change);
/// the rest as every other store error.
pub(crate) fn connect_error(e: sqlx::Error, mode: PgSslMode) -> StoreError {
    match tls_failure(&e) {
        Some(reason) => StoreError::Other(format!(
            "TLS with the PostgreSQL server failed (sslmode={}): {reason}",
            mode_name(mode)
        )),
        None => crate::error::map_err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_from_the_url_then_the_environment() {
        let none = |_: &str| None;
        assert_eq!(TlsFiles::of("postgres://h/db", none), TlsFiles::default());
        let files = TlsFiles::of(
            "postgres://h/db?sslmode=verify-full&ssl-ca=%2Fa%20b%2Fca.pem&sslcert=c&sslkey=k",
            none,
        );
        assert_eq!(files.root_cert.as_deref(), Some("/a b/ca.pem"));
        assert_eq!(files.client_cert.as_deref(), Some("c"));
        assert_eq!(files.client_key.as_deref(), Some("k"));
        let env = |name: &str| (name == "PGSSLROOTCERT").then(|| "/env/ca.pem".to_owned());
        assert_eq!(
            TlsFiles::of("postgres://h/db", env).root_cert.as_deref(),
            Some("/env/ca.pem")
        );
        assert_eq!(
            TlsFiles::of("postgres://h/db?sslrootcert=u", env)
                .root_cert
                .as_deref(),
            Some("u")
        );
    }

    #[test]
    fn modes_follow_libpq() {
        use PgSslMode::*;
        for (asked, root, mode) in [
            (Disable, true, Disable),
            (Allow, false, Prefer),
            (Prefer, false, Prefer),
            (Prefer, true, Prefer),
            (Require, false, Require),
            (Require, true, VerifyCa),
            (VerifyCa, true, VerifyCa),
            (VerifyFull, false, VerifyFull),
        ] {
            assert_eq!(
                mode_name(effective_mode(asked, root)),
                mode_name(mode),
                "{} {root}",
                mode_name(asked)
            );
        }
    }

    #[test]
    fn a_refused_certificate_is_named_as_tls() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        let e = connect_error(sqlx::Error::Io(io), PgSslMode::VerifyFull).to_string();
        assert!(
            e.contains("TLS") && e.contains("verify-full") && e.contains("UnknownIssuer"),
            "{e}"
        );
        assert!(!e.contains("unavailable"), "{e}");
        let e = connect_error(
            sqlx::Error::Tls("server does not support TLS".into()),
            PgSslMode::Require,
        );
        assert!(
            e.to_string()
                .contains("sslmode=require): server does not support TLS"),
            "{e}"
        );
        // Any other I/O error stays what it was.
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            connect_error(sqlx::Error::Io(reset), PgSslMode::Require),
            StoreError::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("pgtls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.to_string_lossy().into_owned();
        let missing = dir.join("missing.pem").to_string_lossy().into_owned();

        let e = check_pem("sslrootcert", &missing, "CERTIFICATE")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslrootcert") && e.contains(&missing), "{e}");
        let e = check_pem("sslrootcert", &empty, "CERTIFICATE")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no PEM CERTIFICATE block") && e.contains(&empty),
            "{e}"
        );
        let key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        check_pem("sslkey", key, "PRIVATE KEY").await.unwrap();
        let e = check_pem("sslkey", key, "CERTIFICATE")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("c2VjcmV0"),
            "the key's content is never shown: {e}"
        );
        // Not quite inline PEM for sqlx (so a file name), still never shown.
        let e = check_pem("sslkey", &format!("{key}x"), "PRIVATE KEY")
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("c2VjcmV0") && e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
