//! [`AccountWrite`] on SQLite: a write of the group commit ([`crate::group`]) on its rusqlite
//! connection, its own savepoint in the shared transaction begun with `BEGIN IMMEDIATE`, so it
//! holds SQLite's write lock from its first statement. A deferred transaction that reads first
//! and writes later fails at once with `SQLITE_BUSY` when another connection (the CLI, a second
//! server) committed in between; an immediate one waits for the lock under the busy timeout
//! instead, and no commit can land between its reads and its writes.
//!
//! The statements run inline on the writing task: a few microseconds each from SQLite's page
//! cache, with nothing to wait for (the flush is the commit's, on a blocking thread). Through
//! sqlx each was a round trip to its worker thread, and the wake-up back into the runtime
//! waited behind every other runnable task: with the writes one after another on the one
//! connection, those waits were what bounded the writes per second.
//!
//! Times are stored as sqlx stores them (RFC 3339, [`ts`]), so that both kinds of writes
//! compare and sort alike.
//!
//! The sqlx statements shared with the other writes of the store (the journal, certificates)
//! are here too.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::AccountId;
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::sip::{Condition, DiversionTarget};
use sip_settings_core::store::{AccountOp, AccountWrite, AliasOutcome, Applied};
use sip_settings_core::{Clock, StoreError, stored};
use sqlx::SqliteConnection;

use crate::group::{Group, Write, lite_err};
use crate::rows::{cert_from_row, map_err};

pub(crate) struct SqliteAccountWrite {
    tx: Write,
    id: i64,
    account: AccountId,
    /// The store's clock: the time of `updated_at` and the like.
    clock: Arc<dyn Clock>,
}

impl SqliteAccountWrite {
    pub(crate) async fn begin(
        group: &Group,
        account: &AccountId,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let tx = group.lite_write_for(account).await?;
        let id = tx
            .lite()
            .prepare_cached(account_rowid_sql!())
            .and_then(|mut s| {
                s.query_row(
                    params![account.domain().as_str(), account.user().as_str()],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .map_err(lite_err)?
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
        Ok(Self {
            tx,
            id,
            account: account.clone(),
            clock,
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
         not_after, issued_at, revoked_at, name, last_used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// A time as sqlx writes it.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Runs one statement; how many rows it changed.
fn run(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(lite_err)
}

/// A `count(*)`.
fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<i64, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get(0)))
        .map_err(lite_err)
}

/// Whether a delete (or an update) found its row.
fn existed(changed: usize) -> Applied {
    Applied::Existed(changed > 0)
}

/// The error for a change this store does not know ([`AccountOp`] may grow).
fn unknown_change(op: &AccountOp) -> StoreError {
    StoreError::Other(format!("this store does not know the change {op:?}"))
}

/// The changes of the account itself: its profile and credentials.
fn apply_to_account(
    conn: &Connection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    match op {
        AccountOp::UpdateAccount { profile, prepaid } => {
            run(
                conn,
                "UPDATE accounts SET first_name = ?, last_name = ?, email = ?, timezone = ?, \
                 mobile = ?, pstn_caller_id = ?, language = ?, no_answer_timeout = ?, \
                 quick_dial = ?, prepaid = ?, updated_at = ? WHERE id = ?",
                params![
                    profile.first_name,
                    profile.last_name,
                    profile.email.as_ref().map(|e| e.as_str()),
                    profile.timezone.name(),
                    profile.mobile.as_ref().map(|e| e.as_str()),
                    profile.pstn_caller_id.as_ref().map(|e| e.as_str()),
                    profile.language,
                    i64::from(profile.no_answer_timeout),
                    profile.quick_dial.as_deref(),
                    *prepaid,
                    ts(now),
                    id
                ],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::SetCredentials(c) => {
            run(
                conn,
                "UPDATE accounts SET ha1_md5 = ?, ha1_sha256 = ?, ha1b_md5 = ?, ha1b_sha256 = ?, \
                 password_hash = ?, updated_at = ? WHERE id = ?",
                params![
                    c.ha1_md5,
                    c.ha1_sha256,
                    c.ha1b.as_ref().map(|b| b.md5.as_str()),
                    c.ha1b.as_ref().map(|b| b.sha256.as_str()),
                    c.password_hash,
                    ts(now),
                    id
                ],
            )?;
            Ok(Applied::Done)
        }
        other => Err(unknown_change(other)),
    }
}

/// The changes of the account's certificates.
fn apply_to_certificates(
    conn: &Connection,
    account: &AccountId,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    match op {
        AccountOp::InsertCertificate(record) => {
            if record.account.as_ref() != Some(account) {
                return Err(StoreError::Other(format!(
                    "certificate {} is not one of {}",
                    record.serial, account
                )));
            }
            run(
                conn,
                "INSERT INTO certificates (serial, subject, role, account, fingerprint, \
                 not_before, not_after, issued_at, revoked_at, name, last_used_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    record.serial.as_str(),
                    record.subject,
                    record.role.as_str(),
                    record.account.as_ref().map(ToString::to_string),
                    record.fingerprint,
                    ts(record.not_before),
                    ts(record.not_after),
                    ts(record.issued_at),
                    record.revoked_at.map(ts),
                    record.name,
                    record.last_used.map(ts)
                ],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::RevokeCertificate { serial, at } => certificate_changed(
            conn,
            "UPDATE certificates SET revoked_at = COALESCE(revoked_at, ?1) \
             WHERE serial = ?2 AND account = ?3 RETURNING serial, subject, role, account, \
             fingerprint, not_before, not_after, issued_at, revoked_at, name, last_used_at",
            &ts(*at),
            serial,
            account,
        ),
        AccountOp::RenameCertificate { serial, name } => certificate_changed(
            conn,
            "UPDATE certificates SET name = ?1 \
             WHERE serial = ?2 AND account = ?3 RETURNING serial, subject, role, account, \
             fingerprint, not_before, not_after, issued_at, revoked_at, name, last_used_at",
            name,
            serial,
            account,
        ),
        AccountOp::RevokeAllCertificates { at } => {
            let n = run(
                conn,
                "UPDATE certificates SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL",
                params![ts(*at), account.to_string()],
            )?;
            Ok(Applied::Count(n as u64))
        }
        other => Err(unknown_change(other)),
    }
}

/// Runs `sql` (`?1` the value, `?2` the serial, `?3` the account; returning the columns of
/// [`crate::fast::cert_row`]) on one of the account's certificates: the record after it.
fn certificate_changed(
    conn: &Connection,
    sql: &str,
    value: &str,
    serial: &Serial,
    account: &AccountId,
) -> Result<Applied, StoreError> {
    let row = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(
                params![value, serial.as_str(), account.to_string()],
                crate::fast::cert_row,
            )
            .optional()
        })
        .map_err(lite_err)?;
    match row {
        Some(r) => Ok(Applied::Certificate(r.parse()?)),
        None => Err(StoreError::NotFound(format!("certificate {serial}"))),
    }
}

/// The changes of the account's other addresses: aliases and ENUM numbers.
fn apply_to_addresses(
    conn: &Connection,
    account: &AccountId,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    match op {
        AccountOp::AddAlias { alias, limit } => {
            if alias.domain() != account.domain() {
                return Err(StoreError::Other(format!(
                    "alias {alias} is not in the domain of {}",
                    account
                )));
            }
            let (domain, user) = (alias.domain().as_str(), alias.user().as_str());
            let taken = count(
                conn,
                "SELECT count(*) FROM sip_addresses WHERE domain = ? AND username = ?",
                params![domain, user],
            )?;
            if taken > 0 {
                return Ok(Applied::Alias(AliasOutcome::Taken));
            }
            let aliases = count(
                conn,
                "SELECT count(*) FROM sip_addresses WHERE account_id = ? AND is_alias = 1",
                params![id],
            )?;
            if aliases >= i64::from(*limit) {
                return Ok(Applied::Alias(AliasOutcome::LimitReached));
            }
            match run(
                conn,
                "INSERT INTO sip_addresses (domain, username, account_id, is_alias, created_at) \
                 VALUES (?, ?, ?, 1, ?)",
                params![domain, user, id, ts(now)],
            ) {
                Ok(_) => Ok(Applied::Alias(AliasOutcome::Added)),
                Err(StoreError::Conflict(_)) => Ok(Applied::Alias(AliasOutcome::Taken)),
                Err(e) => Err(e),
            }
        }
        AccountOp::RemoveAlias(alias) => Ok(existed(run(
            conn,
            "DELETE FROM sip_addresses WHERE domain = ? AND username = ? AND is_alias = 1 \
             AND account_id = ?",
            params![alias.domain().as_str(), alias.user().as_str(), id],
        )?)),
        AccountOp::AddEnum(number) => {
            run(
                conn,
                "INSERT INTO enum_numbers (number, account_id, created_at) VALUES (?, ?, ?)",
                params![number.as_str(), id, ts(now)],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::RemoveEnum(number) => Ok(existed(run(
            conn,
            "DELETE FROM enum_numbers WHERE account_id = ? AND number = ?",
            params![id, number.as_str()],
        )?)),
        other => Err(unknown_change(other)),
    }
}

/// The account's forwarding document, if it has one (`forwarding_documents`, migration 0010).
fn read_forwarding_document(conn: &Connection, id: i64) -> Result<Option<Forwarding>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT document FROM forwarding_documents WHERE account_id = ?")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(lite_err)?;
    text.map(|t| Forwarding::from_stored(&t).map_err(|e| stored::corrupt("forwarding document", e)))
        .transpose()
}

/// Writes the account's forwarding: the document (none when the seed view says everything)
/// and the seed view.
fn write_forwarding(conn: &Connection, id: i64, forwarding: &Forwarding) -> Result<(), StoreError> {
    if forwarding.is_plain() {
        run(
            conn,
            "DELETE FROM forwarding_documents WHERE account_id = ?",
            params![id],
        )?;
    } else {
        run(
            conn,
            "INSERT INTO forwarding_documents (account_id, document) VALUES (?, ?) \
             ON CONFLICT (account_id) DO UPDATE SET document = excluded.document",
            params![id, forwarding.to_stored()],
        )?;
    }
    let view = forwarding.diversions();
    for condition in Condition::ALL {
        set_diversion(conn, id, condition, view.get(&condition))?;
    }
    Ok(())
}

/// Sets or clears one condition of the seed view.
fn set_diversion(
    conn: &Connection,
    id: i64,
    condition: Condition,
    target: Option<&DiversionTarget>,
) -> Result<(), StoreError> {
    match target {
        Some(t) => run(
            conn,
            "INSERT INTO diversions (account_id, condition, target) VALUES (?, ?, ?) \
             ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target",
            params![id, condition.code(), t.stored()],
        )?,
        None => run(
            conn,
            "DELETE FROM diversions WHERE account_id = ? AND condition = ?",
            params![id, condition.code()],
        )?,
    };
    Ok(())
}

/// The changes of the account's call rules: forwarding, accept rules and DND, reject rules.
fn apply_to_call_rules(conn: &Connection, id: i64, op: &AccountOp) -> Result<Applied, StoreError> {
    match op {
        AccountOp::SetDiversions(changes) => {
            match read_forwarding_document(conn, id)? {
                Some(mut forwarding) => {
                    forwarding.set_diversions(changes);
                    write_forwarding(conn, id, &forwarding)?;
                }
                // The seed view is the whole forwarding: changed in place.
                None => {
                    for (condition, target) in changes {
                        set_diversion(conn, id, *condition, target.as_ref())?;
                    }
                }
            }
            Ok(Applied::Done)
        }
        AccountOp::SetForwarding(forwarding) => {
            write_forwarding(conn, id, forwarding)?;
            Ok(Applied::Done)
        }
        AccountOp::PutAcceptRule(rule) => {
            let days = i64::from(rule.days.value());
            let before = count(
                conn,
                "SELECT count(*) FROM accept_rules WHERE account_id = ? AND days = ?",
                params![id, days],
            )?;
            run(
                conn,
                "INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, days) DO UPDATE SET \
                 start_minute = excluded.start_minute, stop_minute = excluded.stop_minute, \
                 groups = excluded.groups",
                params![
                    id,
                    days,
                    i64::from(rule.start.minutes()),
                    i64::from(rule.stop.minutes()),
                    stored::join_groups(&rule.groups)
                ],
            )?;
            Ok(Applied::Existed(before > 0))
        }
        AccountOp::RemoveAcceptRule(days) => Ok(existed(run(
            conn,
            "DELETE FROM accept_rules WHERE account_id = ? AND days = ?",
            params![id, i64::from(days.value())],
        )?)),
        AccountOp::SetTemporaryRule(rule) => {
            match rule {
                Some(rule) => run(
                    conn,
                    "INSERT INTO accept_temporary (account_id, groups, until) VALUES (?, ?, ?) \
                     ON CONFLICT (account_id) DO UPDATE SET groups = excluded.groups, \
                     until = excluded.until",
                    params![id, stored::join_groups(&rule.groups), rule.until.map(ts)],
                )?,
                None => run(
                    conn,
                    "DELETE FROM accept_temporary WHERE account_id = ?",
                    params![id],
                )?,
            };
            Ok(Applied::Done)
        }
        AccountOp::AddReject(pattern) => {
            run(
                conn,
                "INSERT INTO reject_rules (account_id, pattern) VALUES (?, ?)",
                params![id, pattern.as_str()],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::RemoveReject(pattern) => Ok(existed(run(
            conn,
            "DELETE FROM reject_rules WHERE account_id = ? AND pattern = ?",
            params![id, pattern.as_str()],
        )?)),
        other => Err(unknown_change(other)),
    }
}

/// The changes of the account's voicemail, caller-id privacy and phonebook.
fn apply_to_personal(
    conn: &Connection,
    id: i64,
    now: DateTime<Utc>,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    match op {
        AccountOp::PutVoicemail(v) => {
            run(
                conn,
                "INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET \
                 enabled = excluded.enabled, delivery = excluded.delivery, \
                 email = excluded.email, pin_hash = excluded.pin_hash",
                params![
                    id,
                    v.enabled,
                    v.delivery.as_str(),
                    v.email.as_ref().map(|e| e.as_str()),
                    v.pin_hash.as_deref()
                ],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::SetPrivacy(on) => {
            run(
                conn,
                "UPDATE accounts SET privacy = ?, updated_at = ? WHERE id = ?",
                params![*on, ts(now), id],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::PutPhonebookEntry(entry) => {
            run(
                conn,
                "INSERT INTO phonebook (account_id, uri, name, groups) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (account_id, uri) DO UPDATE SET name = excluded.name, \
                 groups = excluded.groups",
                params![
                    id,
                    entry.uri.to_string(),
                    entry.name,
                    stored::join_phonebook_groups(&entry.groups)
                ],
            )?;
            Ok(Applied::Done)
        }
        AccountOp::RemovePhonebookEntry(uri) => Ok(existed(run(
            conn,
            "DELETE FROM phonebook WHERE account_id = ? AND uri = ?",
            params![id, uri.to_string()],
        )?)),
        other => Err(unknown_change(other)),
    }
}

#[async_trait]
impl AccountWrite for SqliteAccountWrite {
    async fn apply(&mut self, op: &AccountOp) -> Result<Applied, StoreError> {
        // The time of every stamp this change makes: the store's clock, never the system's.
        let now = self.clock.now();
        let (id, account) = (self.id, &self.account);
        let conn = self.tx.lite();
        match op {
            AccountOp::UpdateAccount { .. } | AccountOp::SetCredentials(_) => {
                apply_to_account(&conn, id, now, op)
            }
            AccountOp::InsertCertificate(_)
            | AccountOp::RevokeCertificate { .. }
            | AccountOp::RenameCertificate { .. }
            | AccountOp::RevokeAllCertificates { .. } => apply_to_certificates(&conn, account, op),
            AccountOp::AddAlias { .. }
            | AccountOp::RemoveAlias(_)
            | AccountOp::AddEnum(_)
            | AccountOp::RemoveEnum(_) => apply_to_addresses(&conn, account, id, now, op),
            AccountOp::SetDiversions(_)
            | AccountOp::SetForwarding(_)
            | AccountOp::PutAcceptRule(_)
            | AccountOp::RemoveAcceptRule(_)
            | AccountOp::SetTemporaryRule(_)
            | AccountOp::AddReject(_)
            | AccountOp::RemoveReject(_) => apply_to_call_rules(&conn, id, op),
            _ => apply_to_personal(&conn, id, now, op),
        }
    }

    async fn commit(self: Box<Self>, journal: &[NewJournalEntry]) -> Result<(), StoreError> {
        {
            let conn = self.tx.lite();
            for e in journal {
                run(
                    &conn,
                    insert_journal_sql!(),
                    params![
                        e.account.to_string(),
                        ts(e.at),
                        e.door,
                        e.actor,
                        e.source.as_deref(),
                        e.resource,
                        e.old.as_deref(),
                        e.new.as_deref()
                    ],
                )?;
            }
            // If it fails, the write is dropped with its savepoint counted open: the next
            // holder of the connection rolls back to it (or, if SQLite rolled back
            // everything, fails the batch).
            conn.execute_batch("RELEASE w").map_err(lite_err)?;
        }
        self.tx.released().await
    }
}
