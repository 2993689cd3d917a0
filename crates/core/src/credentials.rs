//! SIP passwords and what is stored in their place: the digest HA1 values the SIP side needs
//! (MD5 and SHA-256, RFC 8760) and an Argon2id hash for logins. The clear text is never stored.

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
    /// Argon2id PHC string, for logins and for checking the PKCS#12 password.
    pub password_hash: String,
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
