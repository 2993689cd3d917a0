//! [`Services`]: the rules of the service, one function per thing a user can do. Every front end
//! (the action endpoint, the resource API, the web page, the command line) calls these and
//! nothing else, so a rule lives in one place.

use std::fmt;
use std::sync::Arc;

use chrono::Duration;

use crate::account::{Account, AccountProfile, AccountUpdate};
use crate::cert::{
    CertRecord, CertRole, CertSubject, CertificateAuthority, IssueRequest, IssuedCertificate,
    P12Variant, Serial,
};
use crate::cert_use::{CertUses, check_name};
use crate::clock::Clock;
use crate::credentials::{Credentials, Password};
use crate::error::ServiceError;
use crate::ids::{AccountId, Domain};
use crate::journal::{CHANGED, JournalEntry, NewJournalEntry, Origin, Stamp};
use crate::store::{AccountOp, Applied, Store};
use crate::throttle::{Guarded, PasswordChecks, Throttle};
use crate::write::{Lease, WriteGate};

/// Tunables of the service layer.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Default lifetime of an issued client certificate, in days.
    pub cert_days: u32,
    /// How many aliases an account may have.
    pub alias_limit: u32,
    /// Currency of prepaid balances (ISO 4217).
    pub currency: String,
    /// Longest prepaid session granted, in seconds.
    pub prepaid_max_session_seconds: u32,
    /// Most open prepaid sessions per account.
    pub prepaid_max_sessions: u32,
    /// Failed-password limits and bounded hashing ([`crate::throttle`]).
    pub password_checks: PasswordChecks,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        Self {
            cert_days: 365,
            alias_limit: 20,
            currency: "EUR".to_owned(),
            prepaid_max_session_seconds: 7200,
            prepaid_max_sessions: 10,
            password_checks: PasswordChecks::default(),
        }
    }
}

/// Longest client-certificate lifetime that may be asked for, in days (10 years).
pub const MAX_CERT_DAYS: u32 = 3650;

/// Who is calling, as established from a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A subscriber certificate: acts on `account` only.
    Subscriber {
        /// The certificate's account.
        account: AccountId,
        /// The certificate's serial.
        serial: Serial,
    },
    /// An operator certificate.
    Admin {
        /// The holder's name.
        name: String,
        /// The certificate's serial.
        serial: Serial,
    },
    /// A service client certificate.
    Service {
        /// The holder's name.
        name: String,
        /// The certificate's serial.
        serial: Serial,
    },
}

/// The service layer: store, certificate authority, clock and tunables.
#[derive(Clone)]
pub struct Services {
    store: Arc<dyn Store>,
    ca: Arc<dyn CertificateAuthority>,
    clock: Arc<dyn Clock>,
    config: ServicesConfig,
    origin: Arc<Origin>,
    lease: Option<Arc<Lease>>,
    gate: Arc<WriteGate>,
    /// Password failure counters and hashing permits, shared by every clone.
    throttle: Arc<Throttle>,
    /// Wrong prepaid card numbers, counted as password failures are ([`crate::voucher`]).
    voucher_throttle: Arc<Throttle>,
    /// Certificate uses not written to the store yet ([`crate::cert_use`]).
    uses: Arc<CertUses>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Builds the service layer.
    pub fn new(
        store: Arc<dyn Store>,
        ca: Arc<dyn CertificateAuthority>,
        clock: Arc<dyn Clock>,
        config: ServicesConfig,
    ) -> Self {
        let throttle = Arc::new(Throttle::new(config.password_checks.clone()));
        let voucher_throttle = Arc::new(Throttle::guarding(
            Guarded::VoucherNumber,
            config.password_checks.clone(),
        ));
        let gate = Arc::new(WriteGate::new(store.max_concurrent_writes()));
        Self {
            store,
            ca,
            clock,
            config,
            origin: Arc::new(Origin::operator()),
            lease: None,
            gate,
            throttle,
            voucher_throttle,
            uses: Arc::default(),
        }
    }

    /// The same services acting for `origin`: every change they make is journaled with it.
    pub fn with_origin(&self, origin: Origin) -> Self {
        Self {
            origin: Arc::new(origin),
            ..self.clone()
        }
    }

    /// Who these services act for.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The write lock held by [`Services::hold`], if any.
    pub(crate) fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// This process's queue of account writers.
    pub(crate) fn gate(&self) -> &WriteGate {
        &self.gate
    }

    /// The same services under a [`Services::hold`].
    pub(crate) fn with_lease(&self, lease: Arc<Lease>) -> Self {
        Self {
            lease: Some(lease),
            ..self.clone()
        }
    }

    /// The counters of wrong prepaid card numbers ([`crate::voucher`]).
    pub(crate) fn voucher_throttle(&self) -> &Throttle {
        &self.voucher_throttle
    }

    /// Who is changing something now, for the journal.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            at: self.clock.now(),
            door: self.origin.door.as_str().to_owned(),
            actor: self.origin.actor.clone(),
            source: self.origin.source.clone(),
        }
    }

    /// The journal entry of a change to `account` made now by these services' origin.
    pub(crate) fn journal_entry(
        &self,
        account: &AccountId,
        resource: &str,
        old: Option<String>,
        new: Option<String>,
    ) -> NewJournalEntry {
        self.stamp().entry(account, resource, old, new)
    }

    /// An account's journal, newest first, before the cursor `before` (an entry id).
    pub async fn journal_entries(
        &self,
        id: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, ServiceError> {
        Ok(self.store.list_journal(id, before, limit).await?)
    }

    /// The store, for front ends that only read what the services return.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The tunables.
    pub fn config(&self) -> &ServicesConfig {
        &self.config
    }

    /// The CA certificate, PEM (the `ca.crt` download).
    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }

    // ----- domains -----

    /// Adds a domain to serve.
    pub async fn add_domain(&self, domain: &str) -> Result<Domain, ServiceError> {
        let domain = Domain::parse(domain)?;
        self.store
            .add_domain(&domain, self.clock.now())
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("domain {domain} exists already"))
                }
                other => other.into(),
            })?;
        Ok(domain)
    }

    /// The domains served here.
    pub async fn list_domains(&self) -> Result<Vec<Domain>, ServiceError> {
        Ok(self.store.list_domains().await?)
    }

    /// Whether HTTP Digest is accepted for `domain` on `settings.phtml`; `None` when the domain
    /// is not served here.
    pub async fn domain_digest(&self, domain: &Domain) -> Result<Option<bool>, ServiceError> {
        Ok(self.store.domain_digest(domain).await?)
    }

    /// Turns HTTP Digest on or off for a domain (the operator's switch).
    pub async fn set_domain_digest(&self, domain: &str, on: bool) -> Result<Domain, ServiceError> {
        let domain = Domain::parse(domain)?;
        self.store
            .set_domain_digest(&domain, on)
            .await
            .map_err(|e| match e {
                crate::StoreError::NotFound(_) => {
                    ServiceError::NotFound(format!("domain {domain} is not served here"))
                }
                other => other.into(),
            })?;
        Ok(domain)
    }

    // ----- accounts -----

    /// Creates an account. The domain must be served here and the address free.
    pub async fn add_account(
        &self,
        id: &AccountId,
        password: &Password,
        update: &AccountUpdate,
    ) -> Result<Account, ServiceError> {
        if !self.store.domain_exists(id.domain()).await? {
            return Err(ServiceError::NotFound(format!(
                "domain {} is not served here",
                id.domain()
            )));
        }
        let mut profile = AccountProfile::default();
        update.apply(&mut profile);
        let account = Account {
            id: id.clone(),
            profile,
            privacy: false,
            prepaid: update.prepaid.unwrap_or(false),
            created_at: self.clock.now(),
        };
        let credentials = Credentials::derive(id, password)?;
        let created = self.journal_entry(id, "account", None, Some("created".to_owned()));
        self.store
            .insert_account(&account, &credentials, &[created])
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("account {id} exists already"))
                }
                crate::StoreError::NotFound(_) => {
                    ServiceError::NotFound(format!("domain {} is not served here", id.domain()))
                }
                other => other.into(),
            })?;
        Ok(account)
    }

    /// One account.
    pub async fn account(&self, id: &AccountId) -> Result<Account, ServiceError> {
        self.store
            .get_account(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no account {id}")))
    }

    /// The accounts (of one domain).
    pub async fn list_accounts(
        &self,
        domain: Option<&Domain>,
    ) -> Result<Vec<Account>, ServiceError> {
        Ok(self.store.list_accounts(domain).await?)
    }

    /// One page of the accounts (of one domain), by address: those after `after` whose address
    /// or name contains `q` (case-insensitive; see [`account_matches`]), at most `limit`; with
    /// the cursor of the next page (the last address shown) when there may be more. The
    /// domain's accounts are read and paged here, not in the store: an installation's domain
    /// holds thousands of accounts, not millions.
    pub async fn account_page(
        &self,
        domain: Option<&Domain>,
        q: Option<&str>,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<(Vec<Account>, Option<AccountId>), ServiceError> {
        let key = |id: &AccountId| (id.domain().to_string(), id.user().to_string());
        let mut accounts: Vec<Account> = self
            .store
            .list_accounts(domain)
            .await?
            .into_iter()
            .filter(|a| after.is_none_or(|after| key(&a.id) > key(after)))
            .filter(|a| q.is_none_or(|q| account_matches(a, q)))
            .collect();
        accounts.sort_by_key(|a| key(&a.id));
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = accounts.len() > limit;
        accounts.truncate(limit);
        let next = if more {
            accounts.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok((accounts, next))
    }

    /// The journal of every account of a domain, deleted ones too, newest first, before the
    /// cursor `before` (an entry id).
    pub async fn domain_journal_entries(
        &self,
        domain: &Domain,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, ServiceError> {
        Ok(self
            .store
            .list_domain_journal(domain, before, limit)
            .await?)
    }

    /// Changes profile fields and the prepaid flag.
    pub async fn update_account(
        &self,
        id: &AccountId,
        update: &AccountUpdate,
    ) -> Result<Account, ServiceError> {
        let mut w = self.begin(id).await?;
        let before = self.account(id).await?;
        let mut account = before.clone();
        update.apply(&mut account.profile);
        if let Some(p) = update.prepaid {
            account.prepaid = p;
        }
        w.apply(AccountOp::UpdateAccount {
            profile: account.profile.clone(),
            prepaid: account.prepaid,
        })
        .await?;
        for (field, old, new) in profile_changes(&before, &account) {
            w.journal(&format!("account.{field}"), old, new);
        }
        w.commit().await?;
        Ok(account)
    }

    /// Sets a new SIP password.
    pub async fn set_password(
        &self,
        id: &AccountId,
        password: &Password,
    ) -> Result<(), ServiceError> {
        let credentials = Credentials::derive(id, password)?;
        let mut w = self.begin(id).await?;
        w.apply(AccountOp::SetCredentials(credentials)).await?;
        // A secret is never journaled, only that it changed.
        w.journal("password", None, Some(CHANGED.to_owned()));
        w.commit().await
    }

    /// Whether `password` is the account's SIP password. Throttled ([`crate::throttle`]): a
    /// wrong one counts against the account and the origin's source address, and over either
    /// limit the check is refused with [`ServiceError::Throttled`] without hashing. An unknown
    /// account is checked against decoy credentials (same time, always false).
    pub async fn verify_password(
        &self,
        id: &AccountId,
        password: &Password,
    ) -> Result<bool, ServiceError> {
        let attempt =
            self.throttle
                .begin(Some(id), self.origin.source.as_deref(), self.clock.now())?;
        let credentials = self.store.get_credentials(id).await?;
        let right = self.throttle.verify(credentials, password).await?;
        if right {
            attempt.succeeded();
        } else {
            attempt.failed();
        }
        Ok(right)
    }

    /// Whether an HTTP Digest answer is right for `id`: computed from the stored HA1 of the
    /// answer's algorithm and compared in constant time. Throttled exactly as
    /// [`Services::verify_password`] (the same per-account and per-address failure counters): a
    /// wrong answer counts as a failure, and over a limit the check is refused with
    /// [`ServiceError::Throttled`]. An unknown account is always wrong. Reads only.
    pub async fn verify_digest(
        &self,
        id: &AccountId,
        answer: &crate::digest::Authorization,
        method: &str,
    ) -> Result<bool, ServiceError> {
        let attempt =
            self.throttle
                .begin(Some(id), self.origin.source.as_deref(), self.clock.now())?;
        // The user part as user name is checked against `H(user:realm:password)`, the whole
        // address against `H(user@domain:realm:password)` (`ha1b`; not kept for a password
        // set before it was, which then cannot be checked).
        let whole_address = answer.username.contains('@');
        let right = self.store.get_credentials(id).await?.is_some_and(|c| {
            use crate::digest::Algorithm;
            let ha1 = match (whole_address, answer.algorithm, &c.ha1b) {
                (false, Algorithm::Md5, _) => Some(&c.ha1_md5),
                (false, Algorithm::Sha256, _) => Some(&c.ha1_sha256),
                (true, Algorithm::Md5, Some(b)) => Some(&b.md5),
                (true, Algorithm::Sha256, Some(b)) => Some(&b.sha256),
                (true, _, None) => None,
            };
            ha1.is_some_and(|ha1| answer.matches(ha1, method))
        });
        if right {
            attempt.succeeded();
        } else {
            attempt.failed();
            crate::metrics::global().add(
                "sip_settings_digest_failures_total",
                "HTTP Digest answers on settings.phtml that did not match the stored credentials.",
                &[],
                &[],
                1,
            );
        }
        Ok(right)
    }

    /// A login with an address as typed and a password: the account it names (`sip:`/`SIP:`,
    /// surrounding white space and case do not matter; an alias names its account) if the
    /// password is right, `None` if not. Failures count under that account, or only under the
    /// source address when the text names no account; throttled as
    /// [`Services::verify_password`].
    pub async fn log_in(
        &self,
        address: &str,
        password: &Password,
    ) -> Result<Option<AccountId>, ServiceError> {
        let Ok(named) = AccountId::parse(address) else {
            let attempt =
                self.throttle
                    .begin(None, self.origin.source.as_deref(), self.clock.now())?;
            self.throttle.verify(None, password).await?;
            attempt.failed();
            return Ok(None);
        };
        let id = self.store.resolve_address(&named).await?.unwrap_or(named);
        Ok(self.verify_password(&id, password).await?.then_some(id))
    }

    /// Deletes an account and revokes its certificates; returns how many were revoked. The
    /// deletion is journaled (the journal outlives the account).
    pub async fn delete_account(&self, id: &AccountId) -> Result<u64, ServiceError> {
        let entry = self.journal_entry(
            id,
            "account",
            Some("created".to_owned()),
            Some("deleted".to_owned()),
        );
        self.store
            .delete_account(id, self.clock.now(), &[entry])
            .await
            .map_err(|e| match e {
                crate::StoreError::NotFound(_) => {
                    ServiceError::NotFound(format!("no account {id}"))
                }
                other => other.into(),
            })
    }

    // ----- certificates -----

    /// Checks a requested lifetime in days (1–3650), or gives the default.
    pub fn cert_days(&self, days: Option<u32>) -> Result<u32, ServiceError> {
        match days {
            None => Ok(self.config.cert_days),
            Some(d) if (1..=MAX_CERT_DAYS).contains(&d) => Ok(d),
            Some(d) => Err(ServiceError::invalid(
                "days",
                format!("must be between 1 and {MAX_CERT_DAYS}, not {d}"),
            )),
        }
    }

    /// Issues and records a certificate, named `name` ([`crate::cert_use::check_name`]). For
    /// an account, the account must exist.
    pub async fn issue_certificate(
        &self,
        subject: CertSubject,
        days: Option<u32>,
        name: Option<&str>,
    ) -> Result<IssuedCertificate, ServiceError> {
        let days = self.cert_days(days)?;
        let name = name.map(check_name).transpose()?;
        if let CertSubject::Account(id) = &subject {
            self.account(id).await?;
        }
        let now = self.clock.now();
        let request = IssueRequest {
            subject,
            // A minute of slack for clients whose clocks run slightly behind.
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(i64::from(days)),
        };
        let mut issued = self.ca.issue(&request)?;
        issued.record.name = name;
        match &issued.record.account {
            Some(account) => {
                let mut w = self.begin(account).await?;
                w.apply(AccountOp::InsertCertificate(issued.record.clone()))
                    .await?;
                w.journal(
                    "certificate",
                    None,
                    Some(format!("issued {}", issued.record.serial)),
                );
                w.commit().await?;
            }
            None => self.store.insert_certificate(&issued.record).await?,
        }
        Ok(issued)
    }

    /// Issues a subscriber certificate packed as PKCS#12 under the account's SIP password. The
    /// password is checked against the stored credentials first ([`Services::verify_password`],
    /// throttled); a wrong one issues nothing.
    pub async fn issue_pkcs12(
        &self,
        id: &AccountId,
        password: &Password,
        variant: P12Variant,
        days: Option<u32>,
        name: Option<&str>,
    ) -> Result<(IssuedCertificate, Vec<u8>), ServiceError> {
        self.cert_days(days)?;
        name.map(check_name).transpose()?;
        self.account(id).await?;
        if !self.verify_password(id, password).await? {
            return Err(ServiceError::invalid(
                "password",
                "is not the SIP password of the account",
            ));
        }
        let issued = self
            .issue_certificate(CertSubject::Account(id.clone()), days, name)
            .await?;
        // The PKCS#12 key derivation is slow too: off the request workers.
        let (ca, password) = (self.ca.clone(), password.clone());
        tokio::task::spawn_blocking(move || {
            let p12 = ca.pkcs12(&issued, password.expose(), variant)?;
            Ok((issued, p12))
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("pkcs12: {e}")))?
    }

    /// Issues a subscriber certificate for the public key of a CSR (PEM), named `name`;
    /// returns the record and the certificate PEM.
    pub async fn issue_from_csr(
        &self,
        id: &AccountId,
        csr_pem: &str,
        days: Option<u32>,
        name: Option<&str>,
    ) -> Result<(CertRecord, String), ServiceError> {
        let days = self.cert_days(days)?;
        let name = name.map(check_name).transpose()?;
        self.account(id).await?;
        if csr_pem.len() > 16 * 1024 {
            return Err(ServiceError::invalid("csr", "is larger than 16 KiB"));
        }
        let now = self.clock.now();
        let request = IssueRequest {
            subject: CertSubject::Account(id.clone()),
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::days(i64::from(days)),
        };
        let (mut record, pem) = self.ca.sign_csr(csr_pem, &request)?;
        record.name = name;
        let mut w = self.begin(id).await?;
        w.apply(AccountOp::InsertCertificate(record.clone()))
            .await?;
        w.journal(
            "certificate",
            None,
            Some(format!("issued {} from a CSR", record.serial)),
        );
        w.commit().await?;
        Ok((record, pem))
    }

    /// The certificates (of one account), each last used as the store has it or, later, as
    /// this server has seen it since ([`crate::cert_use`]).
    pub async fn list_certificates(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<CertRecord>, ServiceError> {
        let mut records = self.store.list_certificates(account).await?;
        self.uses.add_pending(&mut records);
        Ok(records)
    }

    /// Names one of the account's own certificates (a serial of another account is answered
    /// as not found); journaled.
    pub async fn rename_own_certificate(
        &self,
        id: &AccountId,
        serial: &Serial,
        name: &str,
    ) -> Result<CertRecord, ServiceError> {
        let name = check_name(name)?;
        let not_found = || ServiceError::NotFound(format!("no certificate with serial {serial}"));
        let mut w = self.begin(id).await?;
        let before = self
            .store
            .list_certificates(Some(id))
            .await?
            .into_iter()
            .find(|c| &c.serial == serial)
            .ok_or_else(not_found)?;
        let op = AccountOp::RenameCertificate {
            serial: serial.clone(),
            name: name.clone(),
        };
        let mut record = match w.apply(op).await {
            Ok(Applied::Certificate(record)) => record,
            Ok(other) => {
                return Err(ServiceError::Internal(format!(
                    "naming a certificate answered {other:?}"
                )));
            }
            Err(crate::StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if before.name.as_deref() != Some(name.as_str()) {
            let named = |n: Option<&str>| match n {
                Some(n) => format!("{serial} named \"{n}\""),
                None => format!("{serial} without a name"),
            };
            w.journal(
                "certificate",
                Some(named(before.name.as_deref())),
                Some(named(Some(&name))),
            );
        }
        w.commit().await?;
        self.uses.add_pending(std::slice::from_mut(&mut record));
        Ok(record)
    }

    /// Writes the certificate uses this server has seen since it last did (one transaction);
    /// how many. Run by the server once a minute and when it stops. On failure the uses are
    /// kept for the next time.
    pub async fn record_certificate_uses(&self) -> Result<usize, ServiceError> {
        let uses = self.uses.take();
        if uses.is_empty() {
            return Ok(0);
        }
        match self.store.record_certificate_uses(&uses).await {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                self.uses.restore(uses);
                Err(e.into())
            }
        }
    }

    /// Revokes one certificate.
    pub async fn revoke_certificate(&self, serial: &Serial) -> Result<CertRecord, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no certificate with serial {serial}"));
        let before = self
            .store
            .get_certificate(serial)
            .await?
            .ok_or_else(not_found)?;
        let Some(account) = &before.account else {
            // An admin or service certificate: no account, no account journal.
            return self
                .store
                .revoke_certificate(serial, self.clock.now())
                .await
                .map_err(|e| match e {
                    crate::StoreError::NotFound(_) => not_found(),
                    other => other.into(),
                });
        };
        let mut w = self.begin(account).await?;
        // Read again under the account's lock: a revocation by another writer between the read
        // above and the lock must not be journaled twice.
        let was_revoked = self
            .store
            .get_certificate(serial)
            .await?
            .is_some_and(|c| c.revoked_at.is_some());
        let op = AccountOp::RevokeCertificate {
            serial: serial.clone(),
            at: self.clock.now(),
        };
        let record = match w.apply(op).await {
            Ok(Applied::Certificate(record)) => record,
            Ok(other) => {
                return Err(ServiceError::Internal(format!(
                    "revoking a certificate answered {other:?}"
                )));
            }
            Err(crate::StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if !was_revoked {
            w.journal(
                "certificate",
                Some(format!("valid {serial}")),
                Some(format!("revoked {serial}")),
            );
        }
        w.commit().await?;
        Ok(record)
    }

    /// Revokes one of the account's own certificates (a subscriber's request): a serial of
    /// another account is answered as not found, never revoked.
    pub async fn revoke_own_certificate(
        &self,
        id: &AccountId,
        serial: &Serial,
    ) -> Result<CertRecord, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no certificate with serial {serial}"));
        let record = self
            .store
            .get_certificate(serial)
            .await?
            .ok_or_else(not_found)?;
        if record.account.as_ref() != Some(id) {
            return Err(not_found());
        }
        self.revoke_certificate(serial).await
    }

    /// Revokes all certificates of an account; returns how many.
    pub async fn revoke_account_certificates(&self, id: &AccountId) -> Result<u64, ServiceError> {
        let mut w = self.begin(id).await?;
        let at = self.clock.now();
        let n = match w.apply(AccountOp::RevokeAllCertificates { at }).await? {
            Applied::Count(n) => n,
            other => {
                return Err(ServiceError::Internal(format!(
                    "revoking certificates answered {other:?}"
                )));
            }
        };
        if n > 0 {
            w.journal("certificate", None, Some(format!("revoked all ({n})")));
        }
        w.commit().await?;
        Ok(n)
    }

    /// Establishes who presents a certificate: it must have been issued (recorded) by this
    /// service with the same fingerprint, be within its validity and not revoked. The TLS layer
    /// has already checked the signature chain.
    pub async fn authenticate(
        &self,
        serial: &Serial,
        fingerprint: &str,
    ) -> Result<Identity, ServiceError> {
        // Counted by reason (`sip_settings_certificates_refused_total`), from a fixed set.
        let refuse = |reason: &str, why: &str| {
            crate::metrics::global().add(
                CERTIFICATES_REFUSED,
                "Client certificates that verified against the CA but were refused, by reason \
                 (unknown: not issued by this service; revoked; expired: outside its validity; \
                 no_account).",
                &["reason"],
                &[reason],
                1,
            );
            ServiceError::Forbidden(why.to_owned())
        };
        let Some(record) = self.store.get_certificate(serial).await? else {
            return Err(refuse("unknown", "certificate not issued by this service"));
        };
        if !record.fingerprint.eq_ignore_ascii_case(fingerprint) {
            return Err(refuse("unknown", "certificate not issued by this service"));
        }
        if record.revoked_at.is_some() {
            return Err(refuse("revoked", "certificate revoked"));
        }
        let now = self.clock.now();
        if now < record.not_before || now > record.not_after {
            return Err(refuse("expired", "certificate expired or not yet valid"));
        }
        self.uses.note(&record.serial, now);
        match record.role {
            CertRole::Subscriber => {
                let Some(account) = record.account else {
                    return Err(refuse("no_account", "certificate names no account"));
                };
                // No look-up of the account itself: deleting an account revokes its
                // certificates in the same transaction, so a valid record means a live account.
                Ok(Identity::Subscriber {
                    account,
                    serial: record.serial,
                })
            }
            CertRole::Admin => Ok(Identity::Admin {
                name: record.subject,
                serial: record.serial,
            }),
            CertRole::Service => Ok(Identity::Service {
                name: record.subject,
                serial: record.serial,
            }),
        }
    }
}

/// The counter of refused client certificates, by reason.
pub const CERTIFICATES_REFUSED: &str = "sip_settings_certificates_refused_total";

/// Whether an account matches the search text `q`: the address (`user@domain`), the first
/// name, the last name or "first last" contains it, ignoring case and surrounding white space.
/// An empty `q` matches every account.
pub fn account_matches(account: &Account, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    let p = &account.profile;
    [
        account.id.to_string(),
        p.first_name.clone(),
        p.last_name.clone(),
        format!("{} {}", p.first_name, p.last_name),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(&q))
}

/// The profile fields that differ between two versions of an account: (field, old, new).
fn profile_changes(
    a: &crate::Account,
    b: &crate::Account,
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let (p, q) = (&a.profile, &b.profile);
    let s = |v: &str| Some(v.to_owned());
    let o = |v: Option<String>| v;
    vec![
        ("first_name", s(&p.first_name), s(&q.first_name)),
        ("last_name", s(&p.last_name), s(&q.last_name)),
        (
            "email",
            o(p.email.as_ref().map(ToString::to_string)),
            o(q.email.as_ref().map(ToString::to_string)),
        ),
        ("timezone", s(p.timezone.name()), s(q.timezone.name())),
        (
            "mobile",
            o(p.mobile.as_ref().map(ToString::to_string)),
            o(q.mobile.as_ref().map(ToString::to_string)),
        ),
        (
            "pstn_caller_id",
            o(p.pstn_caller_id.as_ref().map(ToString::to_string)),
            o(q.pstn_caller_id.as_ref().map(ToString::to_string)),
        ),
        ("language", s(&p.language), s(&q.language)),
        (
            "no_answer_timeout",
            s(&p.no_answer_timeout.to_string()),
            s(&q.no_answer_timeout.to_string()),
        ),
        (
            "prepaid",
            s(&a.prepaid.to_string()),
            s(&b.prepaid.to_string()),
        ),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .collect()
}
