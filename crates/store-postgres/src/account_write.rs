//! [`AccountWrite`] on PostgreSQL: a transaction that first locks the account's row
//! (`SELECT … FOR NO KEY UPDATE`, the lock the store's billing transactions take too), so that
//! writers of one account — on this server or any other sharing the database — run one after
//! another, and what a writer reads while it holds the lock is the state its change applies to.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::AccountId;
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::sip::{Condition, DiversionTarget};
use sip_settings_core::store::{AccountOp, AccountWrite, AliasOutcome, Applied};
use sip_settings_core::{StoreError, stored};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::PgStore;
use crate::error::{Fail, Res, corrupt, map_err, reading};
use crate::health::is_connection_error;
use crate::read_cache::{Changed, Snapshot, WriteState, WritingGuard};
use crate::rows::{
    account_from_row, cert_from_row, diversions_from, temporary_from, voicemail_from,
};

pub(crate) struct PgAccountWrite {
    mode: Mode,
    id: i64,
    account: AccountId,
    /// The store: its clock (the time of `updated_at` and the like) and its read cache.
    store: PgStore,
    /// Answers this process's reads of the account from the snapshot until the write ends.
    writing: Option<WritingGuard>,
    /// Whether the write changed aliases or numbers (which the cache keeps by address).
    addresses: bool,
    /// A change of forwarding not sent yet (see [`PendingDiversions`]).
    pending: Option<PendingDiversions>,
    /// An optimistic write: the account as it will be once this write commits.
    next: Option<Snapshot>,
    /// The account's forwarding document as this write has left it so far (`None`: the
    /// account has none, its forwarding is its seed view).
    document: Option<Arc<Forwarding>>,
}

/// How a write holds the account.
enum Mode {
    /// In the transaction that holds the account's lock.
    Locked(Transaction<'static, Postgres>),
    /// Not at all yet (an optimistic write): the account's version when the snapshot was
    /// read. A change of forwarding commits in one statement if the version is unchanged;
    /// any other change first takes the lock, if the version is unchanged.
    Optimistic(i64),
}

/// Locks the account's row (as [`crate::lock_account`]) and reads what the read cache keeps of
/// the account — the state this write applies to, which nobody can change until it ends — in
/// one round trip. The read runs after the lock is held, in a statement of its own (the
/// function of migration 0007): a single statement would read with the snapshot it took before
/// it waited for the lock, and miss the change of the writer it waited for.
const LOCK: &str = "SELECT * FROM lock_account_for_write($1, $2)";

/// What [`LOCK`] reads, without the lock (for an optimistic write), with the version.
const STATE: &str = "SELECT * FROM account_write_state($1, $2)";

/// An optimistic write's change of forwarding and its journal entries, applied if the
/// account's version is unchanged, as one statement outside a transaction (migration 0012).
const WRITE_IF_UNCHANGED: &str = "SELECT write_diversions_if_unchanged($1, $2, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12, $13)";

/// The snapshot in a [`LOCK`] row.
fn snapshot_from(r: &PgRow) -> Res<Snapshot> {
    let conditions: Vec<String> = r.try_get("d_conditions")?;
    let targets: Vec<String> = r.try_get("d_targets")?;
    let groups: Option<String> = r.try_get("t_groups")?;
    let delivery: Option<String> = r.try_get("v_delivery")?;
    let document: Option<String> = r.try_get("f_document")?;
    Ok(Snapshot {
        document: document
            .map(|text| {
                Forwarding::from_stored(&text)
                    .map(Arc::new)
                    .map_err(|e| corrupt("forwarding document", e))
            })
            .transpose()?,
        account: account_from_row(r)?,
        diversions: diversions_from(conditions.into_iter().zip(targets))?,
        temporary: groups
            .map(|g| temporary_from(&g, r.try_get("t_until")?))
            .transpose()?,
        voicemail: match delivery {
            Some(delivery) => Some(voicemail_from(
                r.try_get("v_enabled")?,
                &delivery,
                r.try_get("v_email")?,
                r.try_get("v_pin_hash")?,
            )?),
            None => None,
        },
    })
}

impl PgAccountWrite {
    pub(crate) async fn begin(store: &PgStore, account: &AccountId) -> Result<Self, StoreError> {
        let writing = store.cache.writing(account);
        let (tx, id, _, snapshot) = Self::lock(store, account).await?;
        let document = snapshot.document.clone();
        writing.locked(snapshot);
        let mut write = Self::new(store, account, Mode::Locked(tx), id, writing);
        write.document = document;
        Ok(write)
    }

    /// An optimistic write (`Accounts::begin_account_optimistic`): reads the account and its
    /// version without locking it, one statement outside a transaction. Outside a tokio task
    /// (whose reads the snapshot could not tell from others') a locked write.
    pub(crate) async fn begin_optimistic(
        store: &PgStore,
        account: &AccountId,
    ) -> Result<Self, StoreError> {
        let Some(task) = tokio::task::try_id() else {
            return Self::begin(store, account).await;
        };
        let writing = store.cache.writing(account);
        let state = match store.cache.write_state(account) {
            Some(state) => state,
            None => {
                reading(|| async {
                    let row = sqlx::query(STATE)
                        .bind(account.domain().as_str())
                        .bind(account.user().as_str())
                        .fetch_optional(&store.pool)
                        .await?
                        .ok_or_else(|| crate::not_found(account))?;
                    Ok(WriteState {
                        id: row.try_get("id")?,
                        version: row.try_get("write_version")?,
                        snapshot: Arc::new(snapshot_from(&row)?),
                    })
                })
                .await?
            }
        };
        writing.read_by(state.snapshot.clone(), task);
        let mut write = Self::new(
            store,
            account,
            Mode::Optimistic(state.version),
            state.id,
            writing,
        );
        write.document = state.snapshot.document.clone();
        write.next = Some(Snapshot::clone(&state.snapshot));
        Ok(write)
    }

    fn new(
        store: &PgStore,
        account: &AccountId,
        mode: Mode,
        id: i64,
        writing: WritingGuard,
    ) -> Self {
        Self {
            mode,
            id,
            account: account.clone(),
            store: store.clone(),
            writing: Some(writing),
            addresses: false,
            pending: None,
            next: None,
            document: None,
        }
    }

    /// Opens a transaction and takes the account's lock ([`LOCK`]): the transaction, the
    /// account's row id, the version this write gives it and the snapshot. A lost connection
    /// is tried again once (nothing was done yet).
    async fn lock(
        store: &PgStore,
        account: &AccountId,
    ) -> Result<(Transaction<'static, Postgres>, i64, i64, Snapshot), StoreError> {
        let mut reconnected = false;
        loop {
            match Self::lock_once(store, account).await {
                Ok(locked) => return Ok(locked),
                Err(Fail::Db(e)) if !reconnected && is_connection_error(&e) => {
                    reconnected = true;
                    tracing::debug!(error = %e, "beginning a write lost its connection; again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lock_once(
        store: &PgStore,
        account: &AccountId,
    ) -> Res<(Transaction<'static, Postgres>, i64, i64, Snapshot)> {
        let mut tx = store.pool.begin().await?;
        let row = sqlx::query(LOCK)
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| crate::not_found(account))?;
        let id: i64 = row.try_get("id")?;
        let version: i64 = row.try_get("write_version")?;
        Ok((tx, id, version, snapshot_from(&row)?))
    }

    /// An optimistic write found the account changed (`why`): counted, and what it started
    /// from is not the account, so not for the next write either.
    fn stale(&self, why: String) -> StoreError {
        crate::error::count_retry("stale");
        self.store.cache.invalidate_account(&self.account, false);
        StoreError::Stale(format!("{} {why}", self.account))
    }

    /// The transaction holding the account's lock: an optimistic write takes it now, if the
    /// account is still at the version it read ([`StoreError::Stale`] if not).
    async fn locked(&mut self) -> Result<&mut Transaction<'static, Postgres>, StoreError> {
        if let Mode::Optimistic(read) = self.mode {
            let (tx, _, version, snapshot) = Self::lock(&self.store, &self.account).await?;
            if version != read + 1 {
                return Err(self.stale(format!("is at version {}, not {read}", version - 1)));
            }
            self.document = snapshot.document.clone();
            if let Some(writing) = &self.writing {
                writing.locked(snapshot);
            }
            self.mode = Mode::Locked(tx);
            self.next = None;
        }
        match &mut self.mode {
            Mode::Locked(tx) => Ok(tx),
            Mode::Optimistic(_) => Err(StoreError::Other(
                "an optimistic write did not take its lock".to_owned(),
            )),
        }
    }
}

/// Appends journal entries inside the caller's transaction, in one statement and in their
/// order (their ids ascend as the entries do).
pub(crate) async fn insert_journal(
    conn: &mut PgConnection,
    entries: &[NewJournalEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    Journal::of(entries)
        .bind(sqlx::query(&JOURNAL_ONLY))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The journal entries as statement parameters `$1`…`$8` (arrays), inserted by
/// [`JOURNAL_CTE`].
struct Journal {
    accounts: Vec<String>,
    at: Vec<DateTime<Utc>>,
    doors: Vec<String>,
    actors: Vec<String>,
    sources: Vec<Option<String>>,
    resources: Vec<String>,
    old: Vec<Option<String>>,
    new: Vec<Option<String>>,
}

/// A common table expression (named `j`) inserting the entries bound by [`Journal::bind`].
const JOURNAL_CTE: &str = "j AS (INSERT INTO journal (account, at, door, actor, source, \
     resource, old_value, new_value) SELECT account, at, door, actor, source, resource, \
     old_value, new_value FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS e(account, at, door, \
     actor, source, resource, old_value, new_value, n) ORDER BY n)";

/// The journal entries alone.
static JOURNAL_ONLY: LazyLock<String> = LazyLock::new(|| format!("WITH {JOURNAL_CTE} SELECT 1"));

/// Common table expressions (named `del` and `up`) setting and clearing the forwarding of
/// account `$first`: clear the conditions `$first+1`, set the conditions `$first+2` to the
/// targets `$first+3` (as [`PendingDiversions::bind`] binds them).
fn diversions_cte(first: usize) -> String {
    let (id, cleared, set, targets) = (first, first + 1, first + 2, first + 3);
    format!(
        "del AS (DELETE FROM diversions WHERE account_id = ${id} \
         AND condition = ANY(${cleared}::text[])), \
         up AS (INSERT INTO diversions (account_id, condition, target) \
         SELECT ${id}, c, t FROM UNNEST(${set}::text[], ${targets}::text[]) AS u(c, t) \
         ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target)"
    )
}

/// Writes an account's forwarding inside its write: the document (none when the seed view says
/// everything) and the seed view, in one statement.
async fn write_forwarding(
    conn: &mut PgConnection,
    id: i64,
    forwarding: &Forwarding,
) -> Result<(), StoreError> {
    let view = forwarding.diversions();
    let mut pending = PendingDiversions::default();
    let changes: Vec<_> = Condition::ALL
        .into_iter()
        .map(|c| (c, view.get(&c).cloned()))
        .collect();
    pending.add(&changes);
    let document = (!forwarding.is_plain()).then(|| forwarding.to_stored());
    pending
        .bind(id, sqlx::query(&FORWARDING))
        .bind(document)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// A whole forwarding: its seed view (`$1`…`$4` as [`PendingDiversions::bind`] binds them) and
/// its document `$5` (`NULL`: none).
static FORWARDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, \
         doc_del AS (DELETE FROM forwarding_documents WHERE account_id = $1 AND $5::text IS NULL), \
         doc_up AS (INSERT INTO forwarding_documents (account_id, document) \
         SELECT $1, $5::text WHERE $5::text IS NOT NULL \
         ON CONFLICT (account_id) DO UPDATE SET document = excluded.document) SELECT 1",
        diversions_cte(1)
    )
});

/// A forwarding change alone.
static DIVERSIONS_ONLY: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} SELECT 1", diversions_cte(1)));

/// The journal entries and a forwarding change, in one statement.
static JOURNAL_AND_DIVERSIONS: LazyLock<String> =
    LazyLock::new(|| format!("WITH {JOURNAL_CTE}, {} SELECT 1", diversions_cte(9)));

/// A forwarding change waiting for the commit, which sends it in the statement of the
/// journal entries: one round trip less per change of forwarding, the most frequent write.
#[derive(Debug, Default)]
struct PendingDiversions {
    /// The conditions cleared.
    cleared: Vec<String>,
    /// The conditions set, and their targets (each condition once, in one of the two lists).
    set: Vec<String>,
    targets: Vec<String>,
}

impl PendingDiversions {
    /// Adds changes, each replacing an earlier change of its condition (as one after another).
    fn add(&mut self, changes: &[(Condition, Option<DiversionTarget>)]) {
        for (condition, target) in changes {
            let code = condition.code().to_owned();
            if let Some(i) = self.cleared.iter().position(|c| *c == code) {
                self.cleared.remove(i);
            }
            if let Some(i) = self.set.iter().position(|c| *c == code) {
                self.set.remove(i);
                self.targets.remove(i);
            }
            match target {
                Some(t) => {
                    self.set.push(code);
                    self.targets.push(t.stored());
                }
                None => self.cleared.push(code),
            }
        }
    }

    /// Binds the change as the next four parameters, for account `id`.
    fn bind(
        self,
        id: i64,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        self.bind_arrays(query.bind(id))
    }

    /// Binds the cleared conditions, the set ones and their targets as the next three
    /// parameters.
    fn bind_arrays(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        query.bind(self.cleared).bind(self.set).bind(self.targets)
    }
}

impl Journal {
    fn of(entries: &[NewJournalEntry]) -> Self {
        Self {
            accounts: entries.iter().map(|e| e.account.to_string()).collect(),
            at: entries.iter().map(|e| e.at).collect(),
            doors: entries.iter().map(|e| e.door.clone()).collect(),
            actors: entries.iter().map(|e| e.actor.clone()).collect(),
            sources: entries.iter().map(|e| e.source.clone()).collect(),
            resources: entries.iter().map(|e| e.resource.clone()).collect(),
            old: entries.iter().map(|e| e.old.clone()).collect(),
            new: entries.iter().map(|e| e.new.clone()).collect(),
        }
    }

    /// Binds the entries as the statement's first eight parameters.
    fn bind(
        self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.accounts)
            .bind(self.at)
            .bind(self.doors)
            .bind(self.actors)
            .bind(self.sources)
            .bind(self.resources)
            .bind(self.old)
            .bind(self.new)
    }
}

/// Records a certificate.
pub(crate) async fn insert_certificate(
    conn: &mut PgConnection,
    record: &CertRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO certificates (serial, subject, role, account, fingerprint, not_before, \
         not_after, issued_at, revoked_at, name, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(record.serial.as_str())
    .bind(&record.subject)
    .bind(record.role.as_str())
    .bind(record.account.as_ref().map(ToString::to_string))
    .bind(&record.fingerprint)
    .bind(record.not_before)
    .bind(record.not_after)
    .bind(record.issued_at)
    .bind(record.revoked_at)
    .bind(record.name.as_deref())
    .bind(record.last_used)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Revokes a certificate (of `account`, when given), keeping the first revocation time.
pub(crate) async fn revoke_certificate(
    conn: &mut PgConnection,
    serial: &sip_settings_core::Serial,
    account: Option<&AccountId>,
    at: chrono::DateTime<Utc>,
) -> Result<CertRecord, StoreError> {
    let row = sqlx::query(
        "UPDATE certificates SET revoked_at = COALESCE(revoked_at, $1) \
         WHERE serial = $2 AND ($3::text IS NULL OR account = $3) RETURNING *",
    )
    .bind(at)
    .bind(serial.as_str())
    .bind(account.map(ToString::to_string))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    match row {
        Some(r) => Ok(cert_from_row(&r)?),
        None => Err(StoreError::NotFound(format!("certificate {serial}"))),
    }
}

/// Revokes every unrevoked certificate of an account; how many.
pub(crate) async fn revoke_account_certificates(
    conn: &mut PgConnection,
    account: &AccountId,
    at: chrono::DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE certificates SET revoked_at = $1 WHERE account = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(account.to_string())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected())
}

/// Deletes the account's row of `sql` (`… WHERE account_id = $1 AND <key> = $2`):
/// whether there was one.
async fn delete_keyed(
    conn: &mut PgConnection,
    sql: &str,
    id: i64,
    key: &str,
) -> Result<Applied, StoreError> {
    let done = sqlx::query(sql)
        .bind(id)
        .bind(key)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(Applied::Existed(done.rows_affected() > 0))
}

/// The error for a change this store does not know ([`AccountOp`] may grow).
fn unknown_change(op: &AccountOp) -> StoreError {
    StoreError::Other(format!("this store does not know the change {op:?}"))
}

/// The changes of the account itself: its profile and credentials.
async fn apply_to_account(
    conn: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    Ok(match op {
        AccountOp::UpdateAccount { profile, prepaid } => {
            sqlx::query(
                "UPDATE accounts SET first_name = $1, last_name = $2, email = $3, timezone = $4, \
                 mobile = $5, pstn_caller_id = $6, language = $7, no_answer_timeout = $8, \
                 quick_dial = $9, prepaid = $10, updated_at = $11 WHERE id = $12",
            )
            .bind(&profile.first_name)
            .bind(&profile.last_name)
            .bind(profile.email.as_ref().map(|e| e.as_str()))
            .bind(profile.timezone.name())
            .bind(profile.mobile.as_ref().map(|e| e.as_str()))
            .bind(profile.pstn_caller_id.as_ref().map(|e| e.as_str()))
            .bind(&profile.language)
            .bind(i64::from(profile.no_answer_timeout))
            .bind(profile.quick_dial.as_deref())
            .bind(*prepaid)
            .bind(now)
            .bind(id)
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::SetCredentials(c) => {
            sqlx::query(
                "UPDATE accounts SET ha1_md5 = $1, ha1_sha256 = $2, ha1b_md5 = $3, ha1b_sha256 = $4, \
                 password_hash = $5, updated_at = $6 WHERE id = $7",
            )
            .bind(&c.ha1_md5)
            .bind(&c.ha1_sha256)
            .bind(c.ha1b.as_ref().map(|b| b.md5.as_str()))
            .bind(c.ha1b.as_ref().map(|b| b.sha256.as_str()))
            .bind(&c.password_hash)
            .bind(now)
            .bind(id)
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        other => return Err(unknown_change(other)),
    })
}

/// The changes of the account's certificates.
async fn apply_to_certificates(
    conn: &mut PgConnection,
    account: &AccountId,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    Ok(match op {
        AccountOp::InsertCertificate(record) => {
            if record.account.as_ref() != Some(account) {
                return Err(StoreError::Other(format!(
                    "certificate {} is not one of {}",
                    record.serial, account
                )));
            }
            insert_certificate(conn, record).await?;
            Applied::Done
        }
        AccountOp::RevokeCertificate { serial, at } => {
            Applied::Certificate(revoke_certificate(conn, serial, Some(account), *at).await?)
        }
        AccountOp::RenameCertificate { serial, name } => {
            let row = sqlx::query(
                "UPDATE certificates SET name = $1 WHERE serial = $2 AND account = $3 RETURNING *",
            )
            .bind(name)
            .bind(serial.as_str())
            .bind(account.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
            match row {
                Some(r) => Applied::Certificate(cert_from_row(&r)?),
                None => return Err(StoreError::NotFound(format!("certificate {serial}"))),
            }
        }
        AccountOp::RevokeAllCertificates { at } => {
            Applied::Count(revoke_account_certificates(conn, account, *at).await?)
        }
        other => return Err(unknown_change(other)),
    })
}

/// The changes of the account's other addresses: aliases and ENUM numbers.
async fn apply_to_addresses(
    conn: &mut PgConnection,
    account: &AccountId,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    let changed = |done: sqlx::postgres::PgQueryResult| Applied::Existed(done.rows_affected() > 0);
    Ok(match op {
        AccountOp::AddAlias { alias, limit } => {
            if alias.domain() != account.domain() {
                return Err(StoreError::Other(format!(
                    "alias {alias} is not in the domain of {}",
                    account
                )));
            }
            let taken: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sip_addresses WHERE domain = $1 AND username = $2",
            )
            .bind(alias.domain().as_str())
            .bind(alias.user().as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            if taken > 0 {
                return Ok(Applied::Alias(AliasOutcome::Taken));
            }
            let aliases: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sip_addresses WHERE account_id = $1 AND is_alias",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            if aliases >= i64::from(*limit) {
                return Ok(Applied::Alias(AliasOutcome::LimitReached));
            }
            let inserted = sqlx::query(
                "INSERT INTO sip_addresses (domain, username, account_id, is_alias, created_at) \
                 VALUES ($1, $2, $3, TRUE, $4)",
            )
            .bind(alias.domain().as_str())
            .bind(alias.user().as_str())
            .bind(id)
            .bind(now)
            .execute(conn)
            .await
            .map_err(map_err);
            match inserted {
                Ok(_) => Applied::Alias(AliasOutcome::Added),
                Err(StoreError::Conflict(_)) => Applied::Alias(AliasOutcome::Taken),
                Err(e) => return Err(e),
            }
        }
        AccountOp::RemoveAlias(alias) => changed(
            sqlx::query(
                "DELETE FROM sip_addresses WHERE domain = $1 AND username = $2 AND is_alias \
                 AND account_id = $3",
            )
            .bind(alias.domain().as_str())
            .bind(alias.user().as_str())
            .bind(id)
            .execute(conn)
            .await
            .map_err(map_err)?,
        ),
        AccountOp::AddEnum(number) => {
            sqlx::query(
                "INSERT INTO enum_numbers (number, account_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(number.as_str())
            .bind(id)
            .bind(now)
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::RemoveEnum(number) => {
            delete_keyed(
                conn,
                "DELETE FROM enum_numbers WHERE account_id = $1 AND number = $2",
                id,
                number.as_str(),
            )
            .await?
        }
        other => return Err(unknown_change(other)),
    })
}

/// The changes of the account's call rules: accept rules and DND, reject rules (forwarding
/// goes with the commit, [`PendingDiversions`]).
async fn apply_to_call_rules(
    conn: &mut PgConnection,
    id: i64,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    let changed = |done: sqlx::postgres::PgQueryResult| Applied::Existed(done.rows_affected() > 0);
    Ok(match op {
        AccountOp::PutAcceptRule(rule) => {
            let existed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM accept_rules WHERE account_id = $1 AND days = $2",
            )
            .bind(id)
            .bind(i32::from(rule.days.value()))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, days) DO UPDATE SET \
                 start_minute = excluded.start_minute, stop_minute = excluded.stop_minute, \
                 groups = excluded.groups",
            )
            .bind(id)
            .bind(i32::from(rule.days.value()))
            .bind(i32::from(rule.start.minutes()))
            .bind(i32::from(rule.stop.minutes()))
            .bind(stored::join_groups(&rule.groups))
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Existed(existed > 0)
        }
        AccountOp::RemoveAcceptRule(days) => changed(
            sqlx::query("DELETE FROM accept_rules WHERE account_id = $1 AND days = $2")
                .bind(id)
                .bind(i32::from(days.value()))
                .execute(conn)
                .await
                .map_err(map_err)?,
        ),
        AccountOp::SetTemporaryRule(rule) => {
            match rule {
                Some(rule) => sqlx::query(
                    "INSERT INTO accept_temporary (account_id, groups, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id) DO UPDATE SET groups = excluded.groups, \
                     until = excluded.until",
                )
                .bind(id)
                .bind(stored::join_groups(&rule.groups))
                .bind(rule.until),
                None => sqlx::query("DELETE FROM accept_temporary WHERE account_id = $1").bind(id),
            }
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::AddReject(pattern) => {
            sqlx::query("INSERT INTO reject_rules (account_id, pattern) VALUES ($1, $2)")
                .bind(id)
                .bind(pattern.as_str())
                .execute(conn)
                .await
                .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::RemoveReject(pattern) => {
            delete_keyed(
                conn,
                "DELETE FROM reject_rules WHERE account_id = $1 AND pattern = $2",
                id,
                pattern.as_str(),
            )
            .await?
        }
        other => return Err(unknown_change(other)),
    })
}

/// The changes of the account's voicemail, caller-id privacy and phonebook.
async fn apply_to_personal(
    conn: &mut PgConnection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    Ok(match op {
        AccountOp::PutVoicemail(v) => {
            sqlx::query(
                "INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE SET \
                 enabled = excluded.enabled, delivery = excluded.delivery, \
                 email = excluded.email, pin_hash = excluded.pin_hash",
            )
            .bind(id)
            .bind(v.enabled)
            .bind(v.delivery.as_str())
            .bind(v.email.as_ref().map(|e| e.as_str()))
            .bind(v.pin_hash.as_deref())
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::SetPrivacy(on) => {
            sqlx::query("UPDATE accounts SET privacy = $1, updated_at = $2 WHERE id = $3")
                .bind(*on)
                .bind(now)
                .bind(id)
                .execute(conn)
                .await
                .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::PutPhonebookEntry(entry) => {
            sqlx::query(
                "INSERT INTO phonebook (account_id, uri, name, groups) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, uri) DO UPDATE SET name = excluded.name, \
                 groups = excluded.groups",
            )
            .bind(id)
            .bind(entry.uri.to_string())
            .bind(&entry.name)
            .bind(stored::join_phonebook_groups(&entry.groups))
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::RemovePhonebookEntry(uri) => {
            delete_keyed(
                conn,
                "DELETE FROM phonebook WHERE account_id = $1 AND uri = $2",
                id,
                &uri.to_string(),
            )
            .await?
        }
        other => return Err(unknown_change(other)),
    })
}

#[async_trait]
impl AccountWrite for PgAccountWrite {
    async fn apply(&mut self, op: &AccountOp) -> Result<Applied, StoreError> {
        if let AccountOp::SetDiversions(changes) = op
            && self.document.is_none()
        {
            // The seed view is the whole forwarding: the change is sent with the commit, as
            // nothing in between reads the table (the reads of this write answer from its
            // snapshot, `read_cache::Snapshot`). An account with a document takes the lock:
            // the change applies to its rules (below).
            self.pending.get_or_insert_default().add(changes);
            if let Some(next) = &mut self.next {
                for (condition, target) in changes {
                    match target {
                        Some(t) => next.diversions.insert(*condition, t.clone()),
                        None => next.diversions.remove(condition),
                    };
                }
            }
            return Ok(Applied::Done);
        }
        let id = self.id;
        let pending = self.pending.take();
        let tx = self.locked().await?;
        if let Some(pending) = pending {
            pending
                .bind(id, sqlx::query(&DIVERSIONS_ONLY))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        let forwarding = match op {
            AccountOp::SetDiversions(changes) => {
                let Some(document) = &self.document else {
                    // Its document went while this write took the lock: as above.
                    self.pending.get_or_insert_default().add(changes);
                    return Ok(Applied::Done);
                };
                let mut forwarding = Forwarding::clone(document);
                forwarding.set_diversions(changes);
                Some(Arc::new(forwarding))
            }
            AccountOp::SetForwarding(forwarding) => Some(forwarding.clone()),
            _ => None,
        };
        if let Some(forwarding) = forwarding {
            let Mode::Locked(tx) = &mut self.mode else {
                return Err(StoreError::Other("the write lost its lock".to_owned()));
            };
            write_forwarding(tx, id, &forwarding).await?;
            self.document = (!forwarding.is_plain()).then_some(forwarding);
            return Ok(Applied::Done);
        }
        // The time of every stamp this change makes: the store's clock, never the system's.
        let now = self.store.clock.now();
        let account = &self.account;
        let Mode::Locked(tx) = &mut self.mode else {
            return Err(StoreError::Other("the write lost its lock".to_owned()));
        };
        let conn: &mut PgConnection = tx;
        match op {
            AccountOp::UpdateAccount { .. } | AccountOp::SetCredentials(_) => {
                apply_to_account(conn, id, now, op).await
            }
            AccountOp::InsertCertificate(_)
            | AccountOp::RevokeCertificate { .. }
            | AccountOp::RenameCertificate { .. }
            | AccountOp::RevokeAllCertificates { .. } => {
                apply_to_certificates(conn, account, op).await
            }
            AccountOp::AddAlias { .. }
            | AccountOp::RemoveAlias(_)
            | AccountOp::AddEnum(_)
            | AccountOp::RemoveEnum(_) => {
                self.addresses = true;
                apply_to_addresses(conn, account, id, now, op).await
            }
            AccountOp::PutAcceptRule(_)
            | AccountOp::RemoveAcceptRule(_)
            | AccountOp::SetTemporaryRule(_)
            | AccountOp::AddReject(_)
            | AccountOp::RemoveReject(_) => apply_to_call_rules(conn, id, op).await,
            _ => apply_to_personal(conn, id, now, op).await,
        }
    }

    async fn commit(mut self: Box<Self>, journal: &[NewJournalEntry]) -> Result<(), StoreError> {
        let pending = self.pending.take();
        match &mut self.mode {
            Mode::Locked(tx) => match pending {
                Some(pending) => {
                    pending
                        .bind(
                            self.id,
                            Journal::of(journal).bind(sqlx::query(&JOURNAL_AND_DIVERSIONS)),
                        )
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                }
                None => insert_journal(tx, journal).await?,
            },
            Mode::Optimistic(version) => {
                if pending.is_none() && journal.is_empty() {
                    // Nothing changed: nothing to write, nobody to tell.
                    return Ok(());
                }
                let query = sqlx::query(WRITE_IF_UNCHANGED).bind(self.id).bind(*version);
                let written: bool = Journal::of(journal)
                    .bind(pending.unwrap_or_default().bind_arrays(query))
                    .fetch_one(&self.store.pool)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(map_err)?;
                if !written {
                    let version = *version;
                    return Err(self.stale(format!("is no longer at version {version}")));
                }
            }
        }
        let Self {
            mode,
            id,
            store,
            writing,
            account,
            addresses,
            next,
            ..
        } = *self;
        // The snapshot is history now: nothing may answer from it, nor from what the cache
        // held of the account before the write.
        match (mode, next) {
            (Mode::Locked(tx), _) => {
                tx.commit().await.map_err(map_err)?;
                store.cache.invalidate_account(&account, addresses);
            }
            (Mode::Optimistic(version), Some(next)) => store.cache.written(
                &account,
                addresses,
                WriteState {
                    id,
                    version: version + 1,
                    snapshot: Arc::new(next),
                },
            ),
            (Mode::Optimistic(_), None) => store.cache.invalidate_account(&account, addresses),
        }
        drop(writing);
        store.pinged(Changed::account(account, addresses)).await
    }
}
