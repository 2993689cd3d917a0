//! The [`Store`] trait: everything the service keeps, behind one interface that the embedded
//! SQLite store and the PostgreSQL store implement identically.
//!
//! Rules the trait promises, whatever the back end:
//! * each method is atomic: it changes everything it says or nothing;
//! * a method returns only after its change is durable;
//! * uniqueness (domains, accounts, serials) is enforced by the store, and a violation is
//!   [`StoreError::Conflict`], never a silent overwrite.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::{Account, AccountProfile};
use crate::cert::{CertRecord, Serial};
use crate::credentials::Credentials;
use crate::error::StoreError;
use crate::ids::{AccountId, Domain};

/// The persistent state of the service.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Adds a domain. [`StoreError::Conflict`] if it exists.
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// All domains, sorted.
    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError>;
    /// Whether the domain is served here.
    async fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError>;

    /// Creates an account with its credentials. [`StoreError::Conflict`] if the address is
    /// taken; [`StoreError::NotFound`] if its domain is not served here.
    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
    ) -> Result<(), StoreError>;
    /// One account.
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    /// All accounts (of one domain), sorted by address.
    async fn list_accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>, StoreError>;
    /// Replaces the profile and prepaid flag. [`StoreError::NotFound`] if there is no account.
    async fn update_account(
        &self,
        id: &AccountId,
        profile: &AccountProfile,
        prepaid: bool,
    ) -> Result<(), StoreError>;
    /// The stored credentials of an account.
    async fn get_credentials(&self, id: &AccountId) -> Result<Option<Credentials>, StoreError>;
    /// Replaces the credentials. [`StoreError::NotFound`] if there is no account.
    async fn set_credentials(
        &self,
        id: &AccountId,
        credentials: &Credentials,
    ) -> Result<(), StoreError>;
    /// Deletes an account with all its settings and revokes its certificates, in one
    /// transaction. Returns how many certificates were revoked. [`StoreError::NotFound`] if
    /// there is no account.
    async fn delete_account(&self, id: &AccountId, at: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Records an issued certificate. [`StoreError::Conflict`] on a duplicate serial.
    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError>;
    /// One certificate by serial.
    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError>;
    /// All certificates (of one account), oldest first.
    async fn list_certificates(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<CertRecord>, StoreError>;
    /// Revokes a certificate (keeping the first revocation time if it was revoked already) and
    /// returns its record. [`StoreError::NotFound`] for an unknown serial.
    async fn revoke_certificate(
        &self,
        serial: &Serial,
        at: DateTime<Utc>,
    ) -> Result<CertRecord, StoreError>;
    /// Revokes every unrevoked certificate of an account; returns how many.
    async fn revoke_account_certificates(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
