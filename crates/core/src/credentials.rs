//! SIP passwords and what is stored in their place: the digest HA1 values the SIP side needs
//! (MD5 and SHA-256, RFC 8760), the same over the whole address as user name (Kamailio's and
//! OpenSIPS' `ha1b`, for HTTP Digest clients that send `user@domain`) and an Argon2id hash for
//! logins. The clear text is never stored.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;
use crate::ids::AccountId;

/// A clear-text password on its way through. It never prints itself.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Takes a password for the parameter `field`: 8–128 characters, no control characters.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let n = input.chars().count();
        if n < 8 {
            return Err(ServiceError::invalid(
                field,
                "must be at least 8 characters long",
            ));
        }
        if n > 128 {
            return Err(ServiceError::invalid(
                field,
                "must be at most 128 characters long",
            ));
        }
        if input.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// Wraps a password as given, without the strength rules: for checking a password that is
    /// offered (it is compared, never stored).
    pub fn offered(input: &str) -> Self {
        Self(input.to_owned())
    }

    /// A random password of 16 letters and digits, for demos and generated accounts.
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        let s = (0..16)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self(s)
    }

    /// The clear text, for the one place that needs it (a PKCS#12 password, a printed demo
    /// password).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What is stored for an account's password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `MD5(user:realm:password)` in lower-case hex; the realm is the account's domain.
    pub ha1_md5: String,
    /// `SHA-256(user:realm:password)` in lower-case hex (RFC 8760).
    pub ha1_sha256: String,
    /// `MD5(user@domain:realm:password)` and `SHA-256(user@domain:realm:password)` (`ha1b`):
    /// the HA1 of a Digest client whose user name is the whole address. `None` for a password
    /// stored before these were kept (until it is next set).
    pub ha1b: Option<Ha1b>,
    /// Argon2id PHC string, for logins and for checking the PKCS#12 password.
    pub password_hash: String,
}

/// The HA1 values over the whole address `user@domain` as the Digest user name.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1b {
    /// `MD5(user@domain:realm:password)`, lower-case hex.
    pub md5: String,
    /// `SHA-256(user@domain:realm:password)`, lower-case hex.
    pub sha256: String,
}

impl fmt::Debug for Ha1b {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1b(***)")
    }
}

impl Ha1b {
    /// Both values, or `None` unless both are stored (a row from before they were kept).
    pub fn from_columns(md5: Option<String>, sha256: Option<String>) -> Option<Self> {
        Some(Self {
            md5: md5?,
            sha256: sha256?,
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// Derives the stored values from a password.
    pub fn derive(account: &AccountId, password: &Password) -> Result<Self, ServiceError> {
        let a1 = format!(
            "{}:{}:{}",
            account.user(),
            account.domain(),
            password.expose()
        );
        let ha1_md5 = hex::encode(Md5::digest(a1.as_bytes()));
        let ha1_sha256 = hex::encode(Sha256::digest(a1.as_bytes()));
        let a1b = format!("{account}:{}:{}", account.domain(), password.expose());
        let ha1b = Some(Ha1b {
            md5: hex::encode(Md5::digest(a1b.as_bytes())),
            sha256: hex::encode(Sha256::digest(a1b.as_bytes())),
        });
        let mut salt = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| ServiceError::Internal(format!("argon2 salt: {e}")))?;
        let password_hash = Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            ha1_md5,
            ha1_sha256,
            ha1b,
            password_hash,
        })
    }

    /// Whether `password` is the account's password (constant-time comparison by Argon2).
    pub fn verify(&self, password: &Password) -> bool {
        match PasswordHash::new(&self.password_hash) {
            Ok(hash) => Argon2::default()
                .verify_password(password.expose().as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_and_verify() {
        let id = AccountId::parse("alice@example.com").unwrap();
        let pw = Password::parse_for("password", "correct horse").unwrap();
        let c = Credentials::derive(&id, &pw).unwrap();
        // MD5("alice:example.com:correct horse"), computed with md5sum.
        assert_eq!(c.ha1_md5, "7b528965f9b102b5593b4c5aec86c7da");
        assert_eq!(
            c.ha1_sha256,
            "f13ac29daec0a9284d3c89cd9d4edc6e17064aeb5452b1e2cdf1c13d9ae7baa0"
        );
        // MD5("alice@example.com:example.com:correct horse"), computed with md5sum.
        let b = c.ha1b.as_ref().unwrap();
        assert_eq!(b.md5, "cfd418ab3e3ef76f9837f332c1d26768");
        assert_eq!(
            b.sha256,
            "9dc8b25f4c1f15748bee54cd82bb0981efa9ec5c72e3b6cf4344fe501d9673ca"
        );
        assert!(c.verify(&pw));
        assert!(!c.verify(&Password::offered("wrong horse")));
        assert!(!format!("{c:?}{pw:?}").contains("horse"));
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse_for("password", "short").is_err());
        assert!(Password::parse_for("password", "with\nnewline").is_err());
        assert_eq!(Password::generate().expose().len(), 16);
    }
}
