//! Rates, balances, prepaid sessions and call records on PostgreSQL. The prepaid rules (what a
//! balance pays for) are core's; this module makes each operation one transaction and takes the
//! row locks that make concurrent opens and closes safe (see the crate header): the account row
//! first, then the session row.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::calls::{
    BillingSnapshot, CallRecord, Charge, CloseOutcome, CloseRequest, Direction, HistoryEntry,
    NewCall, OpenOutcome, OpenRequest, PrepaidRefusal, PrepaidSession, Settlement, Usage,
};
use sip_settings_core::ids::AccountId;
use sip_settings_core::journal::Stamp;
use sip_settings_core::money::Money;
use sip_settings_core::rating::{Rate, prefixes_of};
use sip_settings_core::sip::SipUri;
use sip_settings_core::store::{BalanceChange, Billing};
use sqlx::{PgConnection, Row};

use crate::account_write::insert_journal;
use crate::call_insert::insert_calls;
use crate::error::{Fail, Res, retrying};
use crate::rows::{SESSION_SELECT, call_from, history_from, rate_from, session_from, unix};
use crate::{PgStore, lock_account, not_found};

/// Rates per `INSERT … SELECT FROM UNNEST(…)` statement of an import.
const RATE_BATCH: usize = 1000;

/// One balance history entry.
pub(crate) struct History<'a> {
    pub(crate) at: DateTime<Utc>,
    pub(crate) action: &'a str,
    pub(crate) description: &'a str,
    pub(crate) value: Money,
    pub(crate) balance: Money,
    pub(crate) session: Option<&'a str>,
}

pub(crate) async fn insert_history(
    conn: &mut PgConnection,
    account_id: i64,
    h: History<'_>,
) -> Res<()> {
    sqlx::query(
        "INSERT INTO balance_history (account_id, at, action, description, value, balance, \
         session) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account_id)
    .bind(h.at)
    .bind(h.action)
    .bind(h.description)
    .bind(h.value.units())
    .bind(h.balance.units())
    .bind(h.session)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Billing for PgStore {
    async fn import_rates(&self, rates: &[Rate], replace: bool) -> Result<u64, StoreError> {
        // One row per prefix, the last one given winning as on SQLite (an upsert statement may
        // not touch a row twice).
        let mut seen = HashSet::new();
        let mut unique: Vec<&Rate> = rates
            .iter()
            .rev()
            .filter(|r| seen.insert(r.prefix.as_str()))
            .collect();
        unique.reverse();
        let unique = &unique;
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            if replace {
                sqlx::query("DELETE FROM rates").execute(&mut *tx).await?;
            }
            for batch in unique.chunks(RATE_BATCH) {
                sqlx::query(
                    "INSERT INTO rates (prefix, description, connect_fee, rate_per_minute, \
                     increment_seconds, minimum_seconds) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], \
                     $5::bigint[], $6::bigint[]) \
                     ON CONFLICT (prefix) DO UPDATE SET description = excluded.description, \
                     connect_fee = excluded.connect_fee, rate_per_minute = excluded.rate_per_minute, \
                     increment_seconds = excluded.increment_seconds, \
                     minimum_seconds = excluded.minimum_seconds",
                )
                .bind(batch.iter().map(|r| r.prefix.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|r| r.description.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|r| r.connect_fee.units()).collect::<Vec<_>>())
                .bind(batch.iter().map(|r| r.rate_per_minute.units()).collect::<Vec<_>>())
                .bind(batch.iter().map(|r| i64::from(r.increment_seconds)).collect::<Vec<_>>())
                .bind(batch.iter().map(|r| i64::from(r.minimum_seconds)).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(rates.len() as u64)
        })
        .await
    }

    async fn list_rates(&self) -> Result<Vec<Rate>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query("SELECT * FROM rates ORDER BY prefix")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(|r| rate_from(r, "")).collect()
        })
        .await
    }

    async fn find_rate(&self, digits: &str) -> Result<Option<Rate>, StoreError> {
        let prefixes = prefixes_of(digits);
        if prefixes.is_empty() {
            return Ok(None);
        }
        let prefixes = &prefixes;
        retrying(|| async move {
            let row = sqlx::query(
                "SELECT * FROM rates WHERE prefix = ANY($1) ORDER BY length(prefix) DESC LIMIT 1",
            )
            .bind(prefixes)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| rate_from(&r, "")).transpose()
        })
        .await
    }

    async fn get_balance(&self, account: &AccountId) -> Result<Money, StoreError> {
        retrying(|| async move {
            let b: Option<i64> = sqlx::query_scalar(
                "SELECT balance FROM accounts WHERE domain = $1 AND username = $2",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            b.map(Money::from_units).ok_or_else(|| not_found(account))
        })
        .await
    }

    async fn change_balance(
        &self,
        account: &AccountId,
        change: &BalanceChange,
        at: DateTime<Utc>,
        journal: Option<&Stamp>,
    ) -> Result<Money, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let (id, _, balance) = lock_account(&mut tx, account).await?;
            let old = Money::from_units(balance);
            let (new, value, action, description) = match change {
                BalanceChange::Add {
                    value,
                    action,
                    description,
                } => {
                    let new = old.checked_add(*value).ok_or_else(|| {
                        Fail::Store(StoreError::Conflict("balance out of range".to_owned()))
                    })?;
                    (new, *value, action.as_str(), description.as_str())
                }
                BalanceChange::Set { value, description } => {
                    (*value, *value - old, "set", description.as_str())
                }
            };
            sqlx::query("UPDATE accounts SET balance = $1 WHERE id = $2")
                .bind(new.units())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let entry = History {
                at,
                action,
                description,
                value,
                balance: new,
                session: None,
            };
            insert_history(&mut tx, id, entry).await?;
            if let Some(stamp) = journal {
                insert_journal(&mut tx, &[stamp.balance_entry(account, old, new)]).await?;
            }
            tx.commit().await?;
            Ok(new)
        })
        .await
    }

    async fn balance_history(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(
                "SELECT h.* FROM balance_history h JOIN accounts a ON a.id = h.account_id \
                 WHERE a.domain = $1 AND a.username = $2 ORDER BY h.id DESC LIMIT $3",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|r| history_from(r, account)).collect()
        })
        .await
    }

    async fn open_prepaid_session(&self, req: &OpenRequest) -> Result<OpenOutcome, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            // Every open (and close) of this account waits here for the one before it, so the
            // sum of open reservations below is exact.
            let (id, prepaid, balance) = lock_account(&mut tx, &req.account).await?;
            let existing = sqlx::query(&format!("{SESSION_SELECT} WHERE s.call_id = $1"))
                .bind(&req.call_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let session = session_from(&row)?;
                if session.closed.is_some() || session.account != req.account {
                    return Err(Fail::Store(StoreError::Conflict(format!(
                        "a prepaid session with Call-ID {} exists already",
                        req.call_id
                    ))));
                }
                return Ok(OpenOutcome::AlreadyOpen(session));
            }
            if !prepaid {
                return Ok(OpenOutcome::Refused(PrepaidRefusal::NotPrepaid));
            }
            let row = sqlx::query(
                "SELECT count(*) AS n, COALESCE(SUM(reserved), 0)::BIGINT AS held \
                 FROM prepaid_sessions WHERE account_id = $1 AND closed_at IS NULL",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let open: i64 = row.try_get("n")?;
            let held: i64 = row.try_get("held")?;
            if open >= i64::from(req.max_sessions) {
                return Ok(OpenOutcome::Refused(PrepaidRefusal::TooManySessions));
            }
            let available = Money::from_units(balance) - Money::from_units(held);
            let seconds = req
                .rate
                .affordable_seconds(available, req.max_session_seconds);
            if seconds == 0 {
                return Ok(OpenOutcome::Refused(PrepaidRefusal::InsufficientBalance));
            }
            let reserved = req.rate.price(seconds);
            // The same Call-ID opened at this moment for another account is caught by the
            // primary key (Conflict), as the check above would have on SQLite.
            sqlx::query(
                "INSERT INTO prepaid_sessions (call_id, account_id, destination, opened_at, \
                 max_session_time, reserved, rate_prefix, rate_description, connect_fee, \
                 rate_per_minute, increment_seconds, minimum_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&req.call_id)
            .bind(id)
            .bind(req.destination.as_str())
            .bind(req.now)
            .bind(i64::from(seconds))
            .bind(reserved.units())
            .bind(&req.rate.prefix)
            .bind(&req.rate.description)
            .bind(req.rate.connect_fee.units())
            .bind(req.rate.rate_per_minute.units())
            .bind(i64::from(req.rate.increment_seconds))
            .bind(i64::from(req.rate.minimum_seconds))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(OpenOutcome::Opened(PrepaidSession {
                call_id: req.call_id.clone(),
                account: req.account.clone(),
                destination: req.destination.clone(),
                opened_at: req.now,
                max_session_time: seconds,
                reserved,
                rate: req.rate.clone(),
                closed: None,
            }))
        })
        .await
    }

    async fn close_prepaid_session(
        &self,
        req: &CloseRequest,
    ) -> Result<Option<CloseOutcome>, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            // The account first (the lock order of every balance change), then the session.
            let owner: Option<i64> =
                sqlx::query_scalar("SELECT account_id FROM prepaid_sessions WHERE call_id = $1")
                    .bind(&req.call_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(owner) = owner else { return Ok(None) };
            let balance: Option<i64> =
                sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
            // The account (and with it the session) deleted meanwhile.
            let Some(balance) = balance else {
                return Ok(None);
            };
            let row = sqlx::query(&format!(
                "{SESSION_SELECT} WHERE s.call_id = $1 FOR UPDATE OF s"
            ))
            .bind(&req.call_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let mut session = session_from(&row)?;
            if session.closed.is_some() {
                // Closed before (or while this waited for the lock): answered as it is.
                return Ok(Some(CloseOutcome::AlreadyClosed(session)));
            }
            // Capped at the grant, at most the reservation and the balance: never an overdraft.
            let charge = Charge::of(&session, req.duration, Money::from_units(balance));
            let price = charge.debit;
            let new_balance = Money::from_units(balance) - price;
            sqlx::query("UPDATE accounts SET balance = $1 WHERE id = $2")
                .bind(new_balance.units())
                .bind(owner)
                .execute(&mut *tx)
                .await?;
            let description = charge.description(&session);
            let entry = History {
                at: req.now,
                action: "debit",
                description: &description,
                value: -price,
                balance: new_balance,
                session: Some(&session.call_id),
            };
            insert_history(&mut tx, owner, entry).await?;
            let start = session.opened_at;
            let stop = start + chrono::Duration::seconds(i64::from(req.duration));
            let record = CallRecord {
                call_id: session.call_id.clone(),
                from_tag: req.from_tag.clone(),
                to_tag: req.to_tag.clone(),
                caller: SipUri::of_account(&session.account),
                callee: SipUri::of_number(session.destination.as_str(), session.account.domain()),
                start,
                stop: stop.max(start),
                duration: req.duration,
                status: req.status,
                media: req.media.clone(),
                proxy_ip: req.proxy_ip.clone(),
                price: Some(price),
            };
            let call = NewCall {
                record,
                parties: vec![(session.account.clone(), Direction::Placed)],
            };
            insert_calls(&mut tx, std::slice::from_ref(&call)).await?;
            sqlx::query(
                "UPDATE prepaid_sessions SET closed_at = $1, duration = $2, price = $3, \
                 balance_after = $4 WHERE call_id = $5",
            )
            .bind(req.now)
            .bind(i64::from(req.duration))
            .bind(price.units())
            .bind(new_balance.units())
            .bind(&session.call_id)
            .execute(&mut *tx)
            .await?;
            if let Some(stamp) = &req.journal {
                let old = Money::from_units(balance);
                let entry = stamp.balance_entry(&session.account, old, new_balance);
                insert_journal(&mut tx, &[entry]).await?;
            }
            tx.commit().await?;
            session.closed = Some(Settlement {
                closed_at: req.now,
                duration: req.duration,
                price,
                balance: new_balance,
            });
            Ok(Some(CloseOutcome::Closed(session)))
        })
        .await
    }

    async fn active_sessions(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PrepaidSession>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(&format!(
                "{SESSION_SELECT} WHERE a.domain = $1 AND a.username = $2 \
                 AND s.closed_at IS NULL ORDER BY s.opened_at, s.call_id"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(session_from).collect()
        })
        .await
    }

    async fn record_calls(&self, calls: &[NewCall]) -> Result<Vec<bool>, StoreError> {
        if calls.len() <= crate::call_batcher::SHARED_UP_TO {
            self.calls.record(calls.to_vec()).await
        } else {
            crate::call_batcher::record(&self.pool, calls).await
        }
    }

    async fn list_calls(
        &self,
        account: &AccountId,
        direction: Direction,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(
                "SELECT c.* FROM call_parties p JOIN calls c ON c.id = p.call_row \
                 WHERE p.account_id = (SELECT id FROM accounts WHERE domain = $1 AND username = $2) \
                 AND p.direction = $3 AND p.start_at >= $4 \
                 ORDER BY p.start_at DESC, p.call_row DESC LIMIT $5",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(direction.as_str())
            .bind(unix(since))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(call_from).collect()
        })
        .await
    }

    async fn usage(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Usage, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(
                "SELECT count(*) AS n, COALESCE(SUM(c.duration), 0)::BIGINT AS d, \
                 COALESCE(SUM(c.price), 0)::BIGINT AS p \
                 FROM call_parties p JOIN calls c ON c.id = p.call_row \
                 WHERE p.account_id = (SELECT id FROM accounts WHERE domain = $1 AND username = $2) \
                 AND p.direction = 'placed' AND p.start_at >= $3 AND p.start_at < $4",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(unix(from))
            .bind(unix(to))
            .fetch_one(&self.pool)
            .await?;
            let n: i64 = row.try_get("n")?;
            let d: i64 = row.try_get("d")?;
            let p: i64 = row.try_get("p")?;
            Ok(Usage {
                calls: u64::try_from(n).unwrap_or_default(),
                duration: u64::try_from(d).unwrap_or_default(),
                price: Money::from_units(p),
            })
        })
        .await
    }

    async fn export_billing(&self, account: &AccountId) -> Result<BillingSnapshot, StoreError> {
        retrying(|| async move {
            // One snapshot of balance, history and sessions: REPEATABLE READ, read only.
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            let balance: i64 = sqlx::query_scalar(
                "SELECT balance FROM accounts WHERE domain = $1 AND username = $2",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found(account))?;
            let rows = sqlx::query(
                "SELECT h.* FROM balance_history h JOIN accounts a ON a.id = h.account_id \
                 WHERE a.domain = $1 AND a.username = $2 ORDER BY h.id",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&mut *tx)
            .await?;
            let history = rows
                .iter()
                .map(|r| history_from(r, account))
                .collect::<Res<Vec<_>>>()?;
            let rows = sqlx::query(&format!(
                "{SESSION_SELECT} WHERE a.domain = $1 AND a.username = $2 \
                 ORDER BY s.opened_at, s.call_id"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&mut *tx)
            .await?;
            let sessions = rows.iter().map(session_from).collect::<Res<Vec<_>>>()?;
            tx.commit().await?;
            Ok(BillingSnapshot {
                balance: Money::from_units(balance),
                history,
                sessions,
            })
        })
        .await
    }

    async fn import_billing(
        &self,
        account: &AccountId,
        snap: &BillingSnapshot,
    ) -> Result<(), StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let (id, _, _) = lock_account(&mut tx, account).await?;
            sqlx::query("UPDATE accounts SET balance = $1 WHERE id = $2")
                .bind(snap.balance.units())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for h in &snap.history {
                let entry = History {
                    at: h.at,
                    action: &h.action,
                    description: &h.description,
                    value: h.value,
                    balance: h.balance,
                    session: h.session.as_deref(),
                };
                insert_history(&mut tx, id, entry).await?;
            }
            for s in &snap.sessions {
                let closed = s.closed.as_ref();
                sqlx::query(
                    "INSERT INTO prepaid_sessions (call_id, account_id, destination, opened_at, \
                     max_session_time, reserved, rate_prefix, rate_description, connect_fee, \
                     rate_per_minute, increment_seconds, minimum_seconds, closed_at, duration, \
                     price, balance_after) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(&s.call_id)
                .bind(id)
                .bind(s.destination.as_str())
                .bind(s.opened_at)
                .bind(i64::from(s.max_session_time))
                .bind(s.reserved.units())
                .bind(&s.rate.prefix)
                .bind(&s.rate.description)
                .bind(s.rate.connect_fee.units())
                .bind(s.rate.rate_per_minute.units())
                .bind(i64::from(s.rate.increment_seconds))
                .bind(i64::from(s.rate.minimum_seconds))
                .bind(closed.map(|c| c.closed_at))
                .bind(closed.map(|c| i64::from(c.duration)))
                .bind(closed.map(|c| c.price.units()))
                .bind(closed.map(|c| c.balance.units()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
