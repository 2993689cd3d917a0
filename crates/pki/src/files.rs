//! The CA and server files of a data directory: `ca.crt`, `ca.key` (owner-only), `server.crt`,
//! `server.key` (owner-only).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{PemPair, Pki, PkiError};

/// Lifetime of the CA, in years.
pub const CA_YEARS: i64 = 20;
/// Lifetime of the server certificate, in days.
pub const SERVER_DAYS: i64 = 825;

/// Paths of the PKI files in a data directory.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    /// `ca.crt`.
    pub ca_cert: PathBuf,
    /// `ca.key`.
    pub ca_key: PathBuf,
    /// `server.crt`.
    pub server_cert: PathBuf,
    /// `server.key`.
    pub server_key: PathBuf,
}

impl PkiPaths {
    /// The paths under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureReport {
    /// The CA was created.
    pub created_ca: bool,
    /// The server certificate was created.
    pub created_server: bool,
}

/// The names a server certificate is always valid for.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Creates the CA and the server certificate under `dir` if they are missing.
pub fn ensure(dir: &Path, hostnames: &[String]) -> Result<EnsureReport, PkiError> {
    let paths = PkiPaths::new(dir);
    let mut report = EnsureReport::default();
    if !paths.ca_cert.exists() || !paths.ca_key.exists() {
        let ca = Pki::create_ca("sip-settings client CA", CA_YEARS)?;
        write_file(&paths.ca_key, ca.key_pem.as_bytes(), true)?;
        write_file(&paths.ca_cert, ca.cert_pem.as_bytes(), false)?;
        report.created_ca = true;
    }
    if report.created_ca || !paths.server_cert.exists() || !paths.server_key.exists() {
        let pki = load_ca(dir)?;
        let mut names: Vec<String> = DEFAULT_SERVER_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for h in hostnames {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let server = pki.issue_server(&names, SERVER_DAYS)?;
        write_file(&paths.server_key, server.key_pem.as_bytes(), true)?;
        write_file(&paths.server_cert, server.cert_pem.as_bytes(), false)?;
        report.created_server = true;
    }
    Ok(report)
}

/// Whether the PKI files exist.
pub fn exists(dir: &Path) -> bool {
    let p = PkiPaths::new(dir);
    p.ca_cert.exists() && p.ca_key.exists() && p.server_cert.exists() && p.server_key.exists()
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PkiError::NotInitialised(path.display().to_string())
        } else {
            PkiError::Io {
                path: path.display().to_string(),
                source: e,
            }
        }
    })
}

/// Loads the CA of a data directory.
pub fn load_ca(dir: &Path) -> Result<Pki, PkiError> {
    let paths = PkiPaths::new(dir);
    Pki::load(&PemPair {
        cert_pem: read(&paths.ca_cert)?,
        key_pem: read(&paths.ca_key)?,
    })
}

/// Loads the server certificate and key of a data directory.
pub fn load_server(dir: &Path) -> Result<PemPair, PkiError> {
    let paths = PkiPaths::new(dir);
    Ok(PemPair {
        cert_pem: read(&paths.server_cert)?,
        key_pem: read(&paths.server_key)?,
    })
}

/// Writes a file durably (write to a temporary file, fsync, rename). `secret` files are created
/// readable by the owner only.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_creates_once_with_private_keys_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &["sip.example.com".into()]).unwrap();
        assert!(first.created_ca && first.created_server);
        let again = ensure(dir.path(), &[]).unwrap();
        assert_eq!(again, EnsureReport::default());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        load_ca(dir.path()).unwrap();
        load_server(dir.path()).unwrap();
    }
}
