//! The errors of the service layer ([`ServiceError`]) and of the stores ([`StoreError`]).
//!
//! Every front end maps these to its own form (a status object, a problem document, a one-line
//! CLI message) in one place, so the text the user sees is written here, once.

use thiserror::Error;

/// What went wrong in a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule of the store refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database could not be reached or asked to retry (connection lost, busy, serialization
    /// failure). The operation may be retried.
    #[error("database temporarily unavailable: {0}")]
    Unavailable(String),
    /// An optimistic write ([`Accounts::begin_account_optimistic`](crate::store::Accounts::begin_account_optimistic))
    /// found the account changed since it read it: nothing was written. Its caller runs again
    /// with [`Accounts::begin_account`](crate::store::Accounts::begin_account).
    #[error("the account changed while the write was prepared: {0}")]
    Stale(String),
    /// Anything else: a bug or corrupt data. Logged, never shown to a client.
    #[error("database error: {0}")]
    Other(String),
}

/// What a service function refuses or fails with. Exhaustive: every door maps each variant
/// (`crates/http`'s `status::classify`), and a new one must not compile until they do.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// A parameter is malformed or out of range. `field` names the parameter.
    #[error("{field} {reason}")]
    Invalid {
        /// The parameter, as the user sent it.
        field: String,
        /// Why it is refused, in plain words.
        reason: String,
    },
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with existing data (a duplicate, a limit).
    #[error("{0}")]
    Conflict(String),
    /// The caller has no certificate or credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store is temporarily unavailable; try again.
    #[error("the database is temporarily unavailable, try again")]
    Unavailable(String),
    /// Too many failed password attempts for the account or from the address, or too many
    /// password checks at once: refused without checking, even a right password. Every door
    /// answers `429` with `Retry-After: wait_seconds`.
    #[error("{what}, try again in {wait_seconds} s")]
    Throttled {
        /// What is over its limit, in plain words.
        what: String,
        /// Whole seconds until a check may be accepted again.
        wait_seconds: u64,
    },
    /// An internal failure; the detail is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    /// A refusal of the parameter `field` for `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same refusal, naming another parameter (when a parser is reused for a field).
    pub fn renamed(self, field: &str) -> Self {
        match self {
            Self::Invalid { reason, .. } => Self::Invalid {
                field: field.to_owned(),
                reason,
            },
            other @ (Self::NotFound(_)
            | Self::Conflict(_)
            | Self::Unauthenticated(_)
            | Self::Forbidden(_)
            | Self::Unavailable(_)
            | Self::Throttled { .. }
            | Self::Internal(_)) => other,
        }
    }

    /// The parameter an `Invalid` error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::NotFound(_)
            | Self::Conflict(_)
            | Self::Unauthenticated(_)
            | Self::Forbidden(_)
            | Self::Unavailable(_)
            | Self::Throttled { .. }
            | Self::Internal(_) => None,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        let failure = match &err {
            // Stale reaches here only if a caller did not run again: it may, so as Unavailable.
            StoreError::Unavailable(_) | StoreError::Stale(_) => Some("unavailable"),
            StoreError::Other(_) => Some("internal"),
            StoreError::Conflict(_) | StoreError::NotFound(_) => None,
        };
        if let Some(kind) = failure {
            crate::metrics::global().add(
                "sip_settings_store_errors_total",
                "Store operations that failed, by kind: unavailable (the database could not be \
                 reached or asked to retry, after the store's own retries), internal.",
                &["kind"],
                &[kind],
                1,
            );
        }
        match err {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Stale(m) => {
                Self::Unavailable(format!("the account changed meanwhile: {m}"))
            }
            StoreError::Other(m) => Self::Internal(m),
        }
    }
}
