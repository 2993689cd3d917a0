//! [`AccountWrite`] on SQLite: a write of the group commit ([`crate::group`]), its own
//! savepoint in the shared transaction begun with `BEGIN IMMEDIATE`, so it holds SQLite's write
//! lock from its first statement. A deferred transaction that reads first and writes later
//! fails at once with `SQLITE_BUSY` when another connection (the CLI, a second server)
//! committed in between; an immediate one waits for the lock under the busy timeout instead,
//! and no commit can land between its reads and its writes.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::ids::AccountId;
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::sip::{Condition, DiversionTarget};
use sip_settings_core::store::{AccountOp, AccountWrite, AliasOutcome, Applied};
use sip_settings_core::{Clock, StoreError, stored};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Sqlite, SqliteConnection};

use crate::group::{Group, Opening, Write};
use crate::rows::{cert_from_row, map_err};

pub(crate) struct SqliteAccountWrite {
    tx: Write,
    id: i64,
    account: AccountId,
    /// The store's clock: the time of `updated_at` and the like.
    clock: Arc<dyn Clock>,
    /// Statements of changes applied but not run yet (see [`Deferred`]).
    deferred: Deferred,
}

/// The statements of a change that returns nothing but success (new forwarding), kept to run
/// in the same call as what follows them: the next change's statements, or the journal
/// entries and the savepoint's release at commit. Every call to the connection is a round trip
/// to sqlx's worker thread, and those round trips, made one after another on the one writer
/// connection, are what limits the writes per second. They run in order, before anything
/// that could read what they change; an error of theirs surfaces at that call instead of
/// at `apply`, and fails the write all the same (nothing of it is kept).
#[derive(Default)]
struct Deferred {
    /// `…; ` statements, each followed by `"; "`.
    sql: String,
    args: SqliteArguments<'static>,
}

impl Deferred {
    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
        self.sql.push_str("; ");
    }

    fn bind<T>(&mut self, value: T) -> Result<(), StoreError>
    where
        T: 'static + Send + sqlx::Encode<'static, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.args
            .add(value)
            .map_err(|e| StoreError::Other(format!("binding a deferred statement: {e}")))
    }

    /// Runs what is deferred, if anything.
    async fn run(&mut self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        if self.sql.is_empty() {
            return Ok(());
        }
        let Self { sql, args } = std::mem::take(self);
        sqlx::query_with(&sql, args)
            .execute(conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

impl SqliteAccountWrite {
    pub(crate) async fn begin(
        group: &Group,
        account: &AccountId,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let mut tx = group.lock_for(account).await?;
        // The savepoint opens in the same call as the account's look-up: the hot write path
        // (`set_diversions`) makes three calls to the connection's worker thread, not five.
        let sql = match tx.opening() {
            Opening::Savepoint => concat!("SAVEPOINT w; ", account_rowid_sql!()),
            Opening::Transaction => {
                concat!("BEGIN IMMEDIATE; SAVEPOINT w; ", account_rowid_sql!())
            }
        };
        let id = sqlx::query_scalar(sql)
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
        Ok(Self {
            tx,
            id,
            account: account.clone(),
            clock,
            deferred: Deferred::default(),
        })
    }
}

/// The statement that finds an account's row id.
macro_rules! account_rowid_sql {
    () => {
        "SELECT id FROM accounts WHERE domain = ? AND username = ?"
    };
}
pub(crate) use account_rowid_sql;

/// The statement that appends a journal entry.
macro_rules! insert_journal_sql {
    () => {
        "INSERT INTO journal (account, at, door, actor, source, resource, old_value, new_value) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    };
}

/// Appends journal entries inside the caller's transaction.
pub(crate) async fn insert_journal(
    conn: &mut SqliteConnection,
    entries: &[NewJournalEntry],
) -> Result<(), StoreError> {
    for e in entries {
        journal_entry(insert_journal_sql!(), e)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// `sql` (an insert of the journal, maybe followed by statements without parameters) bound to
/// the entry `e`.
fn journal_entry<'q>(
    sql: &'q str,
    e: &'q NewJournalEntry,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(sql)
        .bind(e.account.to_string())
        .bind(e.at)
        .bind(&e.door)
        .bind(&e.actor)
        .bind(e.source.as_deref())
        .bind(&e.resource)
        .bind(e.old.as_deref())
        .bind(e.new.as_deref())
}

/// Records a certificate.
pub(crate) async fn insert_certificate(
    conn: &mut SqliteConnection,
    record: &CertRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO certificates (serial, subject, role, account, fingerprint, not_before, \
         not_after, issued_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Revokes a certificate (of `account`, when given), keeping the first revocation time.
pub(crate) async fn revoke_certificate(
    conn: &mut SqliteConnection,
    serial: &sip_settings_core::Serial,
    account: Option<&AccountId>,
    at: chrono::DateTime<Utc>,
) -> Result<CertRecord, StoreError> {
    let row = sqlx::query(
        "UPDATE certificates SET revoked_at = COALESCE(revoked_at, ?) \
         WHERE serial = ? AND (? IS NULL OR account = ?) RETURNING *",
    )
    .bind(at)
    .bind(serial.as_str())
    .bind(account.map(ToString::to_string))
    .bind(account.map(ToString::to_string))
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    match row {
        Some(r) => cert_from_row(&r),
        None => Err(StoreError::NotFound(format!("certificate {serial}"))),
    }
}

/// Revokes every unrevoked certificate of an account; how many.
pub(crate) async fn revoke_account_certificates(
    conn: &mut SqliteConnection,
    account: &AccountId,
    at: chrono::DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE certificates SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(account.to_string())
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected())
}

/// Deletes the account's row of `sql` (`… WHERE account_id = ? AND <key> = ?`):
/// whether there was one.
async fn delete_keyed(
    conn: &mut SqliteConnection,
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
    conn: &mut SqliteConnection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    Ok(match op {
        AccountOp::UpdateAccount { profile, prepaid } => {
            sqlx::query(
                "UPDATE accounts SET first_name = ?, last_name = ?, email = ?, timezone = ?, \
                 mobile = ?, pstn_caller_id = ?, language = ?, no_answer_timeout = ?, \
                 quick_dial = ?, prepaid = ?, updated_at = ? WHERE id = ?",
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
                "UPDATE accounts SET ha1_md5 = ?, ha1_sha256 = ?, password_hash = ?, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(&c.ha1_md5)
            .bind(&c.ha1_sha256)
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
    conn: &mut SqliteConnection,
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
        AccountOp::RevokeAllCertificates { at } => {
            Applied::Count(revoke_account_certificates(conn, account, *at).await?)
        }
        other => return Err(unknown_change(other)),
    })
}

/// The changes of the account's other addresses: aliases and ENUM numbers.
async fn apply_to_addresses(
    conn: &mut SqliteConnection,
    account: &AccountId,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    let changed =
        |done: sqlx::sqlite::SqliteQueryResult| Applied::Existed(done.rows_affected() > 0);
    Ok(match op {
        AccountOp::AddAlias { alias, limit } => {
            if alias.domain() != account.domain() {
                return Err(StoreError::Other(format!(
                    "alias {alias} is not in the domain of {}",
                    account
                )));
            }
            let taken: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sip_addresses WHERE domain = ? AND username = ?",
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
                "SELECT count(*) FROM sip_addresses WHERE account_id = ? AND is_alias = 1",
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
                 VALUES (?, ?, ?, 1, ?)",
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
                "DELETE FROM sip_addresses WHERE domain = ? AND username = ? AND is_alias = 1 \
                 AND account_id = ?",
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
                "INSERT INTO enum_numbers (number, account_id, created_at) VALUES (?, ?, ?)",
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
                "DELETE FROM enum_numbers WHERE account_id = ? AND number = ?",
                id,
                number.as_str(),
            )
            .await?
        }
        other => return Err(unknown_change(other)),
    })
}

/// New forwarding, deferred to the next call (see [`Deferred`]).
fn defer_diversions(
    deferred: &mut Deferred,
    id: i64,
    changes: &[(Condition, Option<DiversionTarget>)],
) -> Result<(), StoreError> {
    for (condition, target) in changes {
        match target {
            Some(t) => {
                deferred.push(
                    "INSERT INTO diversions (account_id, condition, target) VALUES (?, ?, ?) \
                     ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target",
                );
                deferred.bind(id)?;
                deferred.bind(condition.code())?;
                deferred.bind(t.stored())?;
            }
            None => {
                deferred.push("DELETE FROM diversions WHERE account_id = ? AND condition = ?");
                deferred.bind(id)?;
                deferred.bind(condition.code())?;
            }
        }
    }
    Ok(())
}

/// The changes of the account's call rules: accept rules and DND, reject rules.
async fn apply_to_call_rules(
    conn: &mut SqliteConnection,
    id: i64,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    let changed =
        |done: sqlx::sqlite::SqliteQueryResult| Applied::Existed(done.rows_affected() > 0);
    Ok(match op {
        AccountOp::PutAcceptRule(rule) => {
            let existed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM accept_rules WHERE account_id = ? AND days = ?",
            )
            .bind(id)
            .bind(i64::from(rule.days.value()))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, days) DO UPDATE SET \
                 start_minute = excluded.start_minute, stop_minute = excluded.stop_minute, \
                 groups = excluded.groups",
            )
            .bind(id)
            .bind(i64::from(rule.days.value()))
            .bind(i64::from(rule.start.minutes()))
            .bind(i64::from(rule.stop.minutes()))
            .bind(stored::join_groups(&rule.groups))
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Existed(existed > 0)
        }
        AccountOp::RemoveAcceptRule(days) => changed(
            sqlx::query("DELETE FROM accept_rules WHERE account_id = ? AND days = ?")
                .bind(id)
                .bind(i64::from(days.value()))
                .execute(conn)
                .await
                .map_err(map_err)?,
        ),
        AccountOp::SetTemporaryRule(rule) => {
            match rule {
                Some(rule) => sqlx::query(
                    "INSERT INTO accept_temporary (account_id, groups, until) VALUES (?, ?, ?) \
                     ON CONFLICT (account_id) DO UPDATE SET groups = excluded.groups, \
                     until = excluded.until",
                )
                .bind(id)
                .bind(stored::join_groups(&rule.groups))
                .bind(rule.until),
                None => sqlx::query("DELETE FROM accept_temporary WHERE account_id = ?").bind(id),
            }
            .execute(conn)
            .await
            .map_err(map_err)?;
            Applied::Done
        }
        AccountOp::AddReject(pattern) => {
            sqlx::query("INSERT INTO reject_rules (account_id, pattern) VALUES (?, ?)")
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
                "DELETE FROM reject_rules WHERE account_id = ? AND pattern = ?",
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
    conn: &mut SqliteConnection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    Ok(match op {
        AccountOp::PutVoicemail(v) => {
            sqlx::query(
                "INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET \
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
            sqlx::query("UPDATE accounts SET privacy = ?, updated_at = ? WHERE id = ?")
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
                "INSERT INTO phonebook (account_id, uri, name, groups) VALUES (?, ?, ?, ?) \
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
                "DELETE FROM phonebook WHERE account_id = ? AND uri = ?",
                id,
                &uri.to_string(),
            )
            .await?
        }
        other => return Err(unknown_change(other)),
    })
}

#[async_trait]
impl AccountWrite for SqliteAccountWrite {
    async fn apply(&mut self, op: &AccountOp) -> Result<Applied, StoreError> {
        // The time of every stamp this change makes: the store's clock, never the system's.
        let now = self.clock.now();
        let id = self.id;
        let account = &self.account;
        if let AccountOp::SetDiversions(changes) = op {
            defer_diversions(&mut self.deferred, id, changes)?;
            return Ok(Applied::Done);
        }
        let conn: &mut SqliteConnection = &mut self.tx;
        self.deferred.run(conn).await?;
        match op {
            AccountOp::UpdateAccount { .. } | AccountOp::SetCredentials(_) => {
                apply_to_account(conn, id, now, op).await
            }
            AccountOp::InsertCertificate(_)
            | AccountOp::RevokeCertificate { .. }
            | AccountOp::RevokeAllCertificates { .. } => {
                apply_to_certificates(conn, account, op).await
            }
            AccountOp::AddAlias { .. }
            | AccountOp::RemoveAlias(_)
            | AccountOp::AddEnum(_)
            | AccountOp::RemoveEnum(_) => apply_to_addresses(conn, account, id, now, op).await,
            AccountOp::PutAcceptRule(_)
            | AccountOp::RemoveAcceptRule(_)
            | AccountOp::SetTemporaryRule(_)
            | AccountOp::AddReject(_)
            | AccountOp::RemoveReject(_) => apply_to_call_rules(conn, id, op).await,
            _ => apply_to_personal(conn, id, now, op).await,
        }
    }

    async fn commit(mut self: Box<Self>, journal: &[NewJournalEntry]) -> Result<(), StoreError> {
        // What is deferred, the journal entries and the savepoint's release in one call. If it
        // fails, the write is dropped with its savepoint counted open: the next holder of the
        // connection rolls back to it (or, if SQLite rolled back everything, fails the batch).
        let mut last = std::mem::take(&mut self.deferred);
        for e in journal {
            last.push(insert_journal_sql!());
            last.bind(e.account.to_string())?;
            last.bind(e.at)?;
            last.bind(e.door.clone())?;
            last.bind(e.actor.clone())?;
            last.bind(e.source.clone())?;
            last.bind(e.resource.clone())?;
            last.bind(e.old.clone())?;
            last.bind(e.new.clone())?;
        }
        last.sql.push_str("RELEASE w");
        sqlx::query_with(&last.sql, last.args)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        self.tx.released().await
    }
}
