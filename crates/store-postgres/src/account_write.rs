//! [`AccountWrite`] on PostgreSQL: a transaction that first locks the account's row
//! (`SELECT … FOR NO KEY UPDATE`, the lock the store's billing transactions take too), so that
//! writers of one account — on this server or any other sharing the database — run one after
//! another, and what a writer reads while it holds the lock is the state its change applies to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::ids::AccountId;
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::store::{AccountOp, AccountWrite, AliasOutcome, Applied};
use sip_settings_core::{StoreError, stored};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::PgStore;
use crate::error::{Fail, Res, map_err};
use crate::health::is_connection_error;
use crate::read_cache::{Scope, Snapshot, WritingGuard};
use crate::rows::{
    account_from_row, cert_from_row, diversions_from, temporary_from, voicemail_from,
};

pub(crate) struct PgAccountWrite {
    tx: Transaction<'static, Postgres>,
    id: i64,
    account: AccountId,
    /// The store: its clock (the time of `updated_at` and the like) and its read cache.
    store: PgStore,
    /// Answers this process's reads of the account from the snapshot until the write ends.
    writing: Option<WritingGuard>,
    /// Whether the write changed aliases or numbers (which the cache keeps by address).
    addresses: bool,
}

/// Locks the account's row (as [`crate::lock_account`]) and reads what the read cache keeps of
/// the account — the state this write applies to, which nobody can change until it ends — in
/// one round trip.
const LOCK: &str = "SELECT a.id, a.username, a.domain, a.first_name, a.last_name, a.email, \
     a.timezone, a.mobile, a.pstn_caller_id, a.language, a.no_answer_timeout, a.quick_dial, \
     a.privacy, a.prepaid, a.created_at, \
     ARRAY(SELECT d.condition FROM diversions d WHERE d.account_id = a.id \
           ORDER BY d.condition) AS d_conditions, \
     ARRAY(SELECT d.target FROM diversions d WHERE d.account_id = a.id \
           ORDER BY d.condition) AS d_targets, \
     t.groups AS t_groups, t.until AS t_until, \
     v.enabled AS v_enabled, v.delivery AS v_delivery, v.email AS v_email, \
     v.pin_hash AS v_pin_hash \
     FROM accounts a \
     LEFT JOIN accept_temporary t ON t.account_id = a.id \
     LEFT JOIN voicemail v ON v.account_id = a.id \
     WHERE a.domain = $1 AND a.username = $2 \
     FOR NO KEY UPDATE OF a";

/// The snapshot in a [`LOCK`] row.
fn snapshot_from(r: &PgRow) -> Res<Snapshot> {
    let conditions: Vec<String> = r.try_get("d_conditions")?;
    let targets: Vec<String> = r.try_get("d_targets")?;
    let groups: Option<String> = r.try_get("t_groups")?;
    let delivery: Option<String> = r.try_get("v_delivery")?;
    Ok(Snapshot {
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
        let mut reconnected = false;
        loop {
            match Self::lock(store, account).await {
                Ok((tx, id, snapshot)) => {
                    writing.locked(snapshot);
                    return Ok(Self {
                        tx,
                        id,
                        account: account.clone(),
                        store: store.clone(),
                        writing: Some(writing),
                        addresses: false,
                    });
                }
                // Nothing was done yet: a lost connection is simply tried again, once.
                Err(Fail::Db(e)) if !reconnected && is_connection_error(&e) => {
                    reconnected = true;
                    tracing::debug!(error = %e, "beginning a write lost its connection; again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lock(
        store: &PgStore,
        account: &AccountId,
    ) -> Res<(Transaction<'static, Postgres>, i64, Snapshot)> {
        let mut tx = store.pool.begin().await?;
        let row = sqlx::query(LOCK)
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| crate::not_found(account))?;
        let id: i64 = row.try_get("id")?;
        Ok((tx, id, snapshot_from(&row)?))
    }
}

/// Appends journal entries inside the caller's transaction.
pub(crate) async fn insert_journal(
    conn: &mut PgConnection,
    entries: &[NewJournalEntry],
) -> Result<(), StoreError> {
    for e in entries {
        sqlx::query(
            "INSERT INTO journal (account, at, door, actor, source, resource, old_value, new_value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(e.account.to_string())
        .bind(e.at)
        .bind(&e.door)
        .bind(&e.actor)
        .bind(e.source.as_deref())
        .bind(&e.resource)
        .bind(e.old.as_deref())
        .bind(e.new.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Records a certificate.
pub(crate) async fn insert_certificate(
    conn: &mut PgConnection,
    record: &CertRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO certificates (serial, subject, role, account, fingerprint, not_before, \
         not_after, issued_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                "UPDATE accounts SET ha1_md5 = $1, ha1_sha256 = $2, password_hash = $3, \
                 updated_at = $4 WHERE id = $5",
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

/// The changes of the account's call rules: forwarding, accept rules and DND, reject rules.
async fn apply_to_call_rules(
    conn: &mut PgConnection,
    id: i64,
    op: &AccountOp,
) -> Result<Applied, StoreError> {
    let changed = |done: sqlx::postgres::PgQueryResult| Applied::Existed(done.rows_affected() > 0);
    Ok(match op {
        AccountOp::SetDiversions(changes) => {
            for (condition, target) in changes {
                match target {
                    Some(t) => sqlx::query(
                        "INSERT INTO diversions (account_id, condition, target) VALUES ($1, $2, $3) \
                         ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target",
                    )
                    .bind(id)
                    .bind(condition.code())
                    .bind(t.stored()),
                    None => sqlx::query(
                        "DELETE FROM diversions WHERE account_id = $1 AND condition = $2",
                    )
                    .bind(id)
                    .bind(condition.code()),
                }
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            }
            Applied::Done
        }
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
        // The time of every stamp this change makes: the store's clock, never the system's.
        let now = self.store.clock.now();
        let id = self.id;
        let account = &self.account;
        let conn: &mut PgConnection = &mut self.tx;
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
            | AccountOp::RemoveEnum(_) => {
                self.addresses = true;
                apply_to_addresses(conn, account, id, now, op).await
            }
            AccountOp::SetDiversions(_)
            | AccountOp::PutAcceptRule(_)
            | AccountOp::RemoveAcceptRule(_)
            | AccountOp::SetTemporaryRule(_)
            | AccountOp::AddReject(_)
            | AccountOp::RemoveReject(_) => apply_to_call_rules(conn, id, op).await,
            _ => apply_to_personal(conn, id, now, op).await,
        }
    }

    async fn commit(mut self: Box<Self>, journal: &[NewJournalEntry]) -> Result<(), StoreError> {
        insert_journal(&mut self.tx, journal).await?;
        let Self {
            tx,
            store,
            writing,
            account,
            addresses,
            ..
        } = *self;
        tx.commit().await.map_err(map_err)?;
        // The snapshot is history now: nothing may answer from it, nor from what the cache
        // held of the account before the write.
        store.cache.invalidate_account(&account, addresses);
        drop(writing);
        store.published(Scope::Account(&account, addresses)).await
    }
}
