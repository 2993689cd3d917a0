//! Rates, balances, prepaid sessions and call records on SQLite. The prepaid rules (what a
//! balance pays for) are core's; this module makes each operation one write on the single
//! writer connection ([`crate::group`]: its own savepoint, committed with the writes beside it),
//! so concurrent opens run one after another, each reading the balance the one before left, and
//! can never overdraw.

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
use sip_settings_core::stored;
use sqlx::Row;

use crate::SqliteStore;
use crate::account_write::insert_journal;
use crate::group::Write;
use crate::rows::{call_from, map_err, rate_from, session_from, unix};

const SESSION_SELECT: &str = "SELECT s.*, a.username, a.domain FROM prepaid_sessions s \
                              JOIN accounts a ON a.id = s.account_id";

pub(crate) async fn account_row(
    tx: &mut Write,
    account: &AccountId,
) -> Result<(i64, bool, i64), StoreError> {
    let row =
        sqlx::query("SELECT id, prepaid, balance FROM accounts WHERE domain = ? AND username = ?")
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    Ok((
        row.try_get("id").map_err(map_err)?,
        row.try_get("prepaid").map_err(map_err)?,
        row.try_get("balance").map_err(map_err)?,
    ))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_history(
    tx: &mut Write,
    account_id: i64,
    at: DateTime<Utc>,
    action: &str,
    description: &str,
    value: Money,
    balance: Money,
    session: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO balance_history (account_id, at, action, description, value, balance, session) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(account_id)
    .bind(at)
    .bind(action)
    .bind(description)
    .bind(value.units())
    .bind(balance.units())
    .bind(session)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// A call record, unless its (Call-ID, tags) is stored already; its row id.
const INSERT_CALL: &str = "INSERT INTO calls (call_id, from_tag, to_tag, caller, callee, start_at, \
     stop_at, duration, status, media, proxy_ip, price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (call_id, from_tag, to_tag) DO NOTHING RETURNING id";
/// A party of a new call record: direction, start, row id, the account's domain and user.
const INSERT_PARTY: &str = "INSERT OR IGNORE INTO call_parties (account_id, direction, start_at, \
     call_row) SELECT id, ?, ?, ? FROM accounts WHERE domain = ? AND username = ?";
/// A replay's price, filled in only where the stored record has none.
const FILL_PRICE: &str = "UPDATE calls SET price = ? WHERE call_id = ? AND from_tag = ? AND to_tag = ? AND price IS NULL";

/// Inserts a call and its parties; false when (Call-ID, tags) exists (then, for a priced
/// record, the existing record's missing price is filled in).
async fn insert_call(tx: &mut Write, call: &NewCall) -> Result<bool, StoreError> {
    let r = &call.record;
    let media = stored::join_media(&r.media);
    let inserted: Option<i64> = sqlx::query_scalar(INSERT_CALL)
        .bind(&r.call_id)
        .bind(&r.from_tag)
        .bind(&r.to_tag)
        .bind(r.caller.to_string())
        .bind(r.callee.to_string())
        .bind(unix(r.start))
        .bind(unix(r.stop))
        .bind(i64::from(r.duration))
        .bind(i64::from(r.status))
        .bind(&media)
        .bind(&r.proxy_ip)
        .bind(r.price.map(Money::units))
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    let Some(row) = inserted else {
        if let Some(price) = r.price {
            sqlx::query(FILL_PRICE)
                .bind(price.units())
                .bind(&r.call_id)
                .bind(&r.from_tag)
                .bind(&r.to_tag)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        return Ok(false);
    };
    for (account, direction) in &call.parties {
        sqlx::query(INSERT_PARTY)
            .bind(direction.as_str())
            .bind(unix(r.start))
            .bind(row)
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(true)
}

/// [`insert_call`] for many calls, on the rusqlite connection of a write begun by
/// [`crate::group::Group::lite_write`]: cached statements run inline, a few microseconds each,
/// so a batch costs no round trips to a worker thread, and a single call none either. A replay
/// of a stored call, or of one earlier in `calls`, inserts nothing and is `false`; a replay
/// that brings a price the stored call lacks sets it, as [`insert_call`] does.
fn insert_calls(conn: &rusqlite::Connection, calls: &[NewCall]) -> Result<Vec<bool>, StoreError> {
    use rusqlite::{OptionalExtension, params};
    let lite = crate::group::lite_err;
    let mut insert = conn.prepare_cached(INSERT_CALL).map_err(lite)?;
    let mut party = conn.prepare_cached(INSERT_PARTY).map_err(lite)?;
    let mut fill = conn.prepare_cached(FILL_PRICE).map_err(lite)?;
    let mut new = Vec::with_capacity(calls.len());
    for call in calls {
        let r = &call.record;
        let id: Option<i64> = insert
            .query_row(
                params![
                    r.call_id,
                    r.from_tag,
                    r.to_tag,
                    r.caller.to_string(),
                    r.callee.to_string(),
                    unix(r.start),
                    unix(r.stop),
                    i64::from(r.duration),
                    i64::from(r.status),
                    stored::join_media(&r.media),
                    r.proxy_ip,
                    r.price.map(Money::units),
                ],
                |row| row.get(0),
            )
            .optional()
            .map_err(lite)?;
        match id {
            Some(id) => {
                for (account, direction) in &call.parties {
                    party
                        .execute(params![
                            direction.as_str(),
                            unix(r.start),
                            id,
                            account.domain().as_str(),
                            account.user().as_str(),
                        ])
                        .map_err(lite)?;
                }
            }
            None => {
                if let Some(price) = r.price {
                    fill.execute(params![price.units(), r.call_id, r.from_tag, r.to_tag])
                        .map_err(lite)?;
                }
            }
        }
        new.push(id.is_some());
    }
    Ok(new)
}

#[async_trait]
impl Billing for SqliteStore {
    async fn import_rates(&self, rates: &[Rate], replace: bool) -> Result<u64, StoreError> {
        let mut tx = self.group.write().await?;
        if replace {
            sqlx::query("DELETE FROM rates")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for r in rates {
            sqlx::query(
                "INSERT INTO rates (prefix, description, connect_fee, rate_per_minute, increment_seconds, \
                 minimum_seconds) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (prefix) DO UPDATE SET \
                 description = excluded.description, connect_fee = excluded.connect_fee, \
                 rate_per_minute = excluded.rate_per_minute, increment_seconds = excluded.increment_seconds, \
                 minimum_seconds = excluded.minimum_seconds",
            )
            .bind(&r.prefix)
            .bind(&r.description)
            .bind(r.connect_fee.units())
            .bind(r.rate_per_minute.units())
            .bind(i64::from(r.increment_seconds))
            .bind(i64::from(r.minimum_seconds))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await?;
        Ok(rates.len() as u64)
    }

    async fn list_rates(&self) -> Result<Vec<Rate>, StoreError> {
        let rows = sqlx::query("SELECT * FROM rates ORDER BY prefix")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| rate_from(r, "")).collect()
    }

    async fn find_rate(&self, digits: &str) -> Result<Option<Rate>, StoreError> {
        let prefixes = prefixes_of(digits);
        if prefixes.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; prefixes.len()].join(",");
        let sql = format!(
            "SELECT * FROM rates WHERE prefix IN ({placeholders}) ORDER BY length(prefix) DESC LIMIT 1"
        );
        let mut q = sqlx::query(&sql);
        for p in &prefixes {
            q = q.bind(p);
        }
        let row = q.fetch_optional(&self.reader).await.map_err(map_err)?;
        row.map(|r| rate_from(&r, "")).transpose()
    }

    async fn get_balance(&self, account: &AccountId) -> Result<Money, StoreError> {
        let b: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM accounts WHERE domain = ? AND username = ?")
                .bind(account.domain().as_str())
                .bind(account.user().as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        b.map(Money::from_units)
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
    }

    async fn change_balance(
        &self,
        account: &AccountId,
        change: &BalanceChange,
        at: DateTime<Utc>,
        journal: Option<&Stamp>,
    ) -> Result<Money, StoreError> {
        let mut tx = self.group.write_for(account).await?;
        let (id, _, balance) = account_row(&mut tx, account).await?;
        let old = Money::from_units(balance);
        let (new, value, action, description) = match change {
            BalanceChange::Add {
                value,
                action,
                description,
            } => {
                let new = old
                    .checked_add(*value)
                    .ok_or_else(|| StoreError::Conflict("balance out of range".to_owned()))?;
                (new, *value, action.as_str(), description.as_str())
            }
            BalanceChange::Set { value, description } => {
                (*value, *value - old, "set", description.as_str())
            }
        };
        sqlx::query("UPDATE accounts SET balance = ? WHERE id = ?")
            .bind(new.units())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_history(&mut tx, id, at, action, description, value, new, None).await?;
        if let Some(stamp) = journal {
            let entry = stamp.balance_entry(account, old, new);
            insert_journal(&mut tx, &[entry]).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn balance_history(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.* FROM balance_history h JOIN accounts a ON a.id = h.account_id \
             WHERE a.domain = ? AND a.username = ? ORDER BY h.id DESC LIMIT ?",
        )
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let value: i64 = r.try_get("value").map_err(map_err)?;
                let balance: i64 = r.try_get("balance").map_err(map_err)?;
                Ok(HistoryEntry {
                    id: r.try_get("id").map_err(map_err)?,
                    account: account.clone(),
                    at: r.try_get("at").map_err(map_err)?,
                    action: r.try_get("action").map_err(map_err)?,
                    description: r.try_get("description").map_err(map_err)?,
                    value: Money::from_units(value),
                    balance: Money::from_units(balance),
                    session: r.try_get("session").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn open_prepaid_session(&self, req: &OpenRequest) -> Result<OpenOutcome, StoreError> {
        let mut tx = self.group.write_for(&req.account).await?;
        let (id, prepaid, balance) = account_row(&mut tx, &req.account).await?;
        let existing = sqlx::query(&format!("{SESSION_SELECT} WHERE s.call_id = ?"))
            .bind(&req.call_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(row) = existing {
            let session = session_from(&row)?;
            if session.closed.is_some() || session.account != req.account {
                return Err(StoreError::Conflict(format!(
                    "a prepaid session with Call-ID {} exists already",
                    req.call_id
                )));
            }
            return Ok(OpenOutcome::AlreadyOpen(session));
        }
        if !prepaid {
            return Ok(OpenOutcome::Refused(PrepaidRefusal::NotPrepaid));
        }
        let row = sqlx::query(
            "SELECT count(*) AS n, COALESCE(SUM(reserved), 0) AS held FROM prepaid_sessions \
             WHERE account_id = ? AND closed_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let open: i64 = row.try_get("n").map_err(map_err)?;
        let held: i64 = row.try_get("held").map_err(map_err)?;
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
        sqlx::query(
            "INSERT INTO prepaid_sessions (call_id, account_id, destination, opened_at, max_session_time, \
             reserved, rate_prefix, rate_description, connect_fee, rate_per_minute, increment_seconds, \
             minimum_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .await
        .map_err(map_err)?;
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
    }

    async fn close_prepaid_session(
        &self,
        req: &CloseRequest,
    ) -> Result<Option<CloseOutcome>, StoreError> {
        let mut tx = self.group.write().await?;
        let row = sqlx::query(&format!("{SESSION_SELECT} WHERE s.call_id = ?"))
            .bind(&req.call_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut session = session_from(&row)?;
        if session.closed.is_some() {
            return Ok(Some(CloseOutcome::AlreadyClosed(session)));
        }
        let (id, _, balance) = account_row(&mut tx, &session.account).await?;
        // Capped at the grant, at most the reservation and the balance: never an overdraft.
        let charge = Charge::of(&session, req.duration, Money::from_units(balance));
        let price = charge.debit;
        let new_balance = Money::from_units(balance) - price;
        sqlx::query("UPDATE accounts SET balance = ? WHERE id = ?")
            .bind(new_balance.units())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_history(
            &mut tx,
            id,
            req.now,
            "debit",
            &charge.description(&session),
            -price,
            new_balance,
            Some(&session.call_id),
        )
        .await?;
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
        insert_call(
            &mut tx,
            &NewCall {
                record,
                parties: vec![(session.account.clone(), Direction::Placed)],
            },
        )
        .await?;
        sqlx::query(
            "UPDATE prepaid_sessions SET closed_at = ?, duration = ?, price = ?, balance_after = ? \
             WHERE call_id = ?",
        )
        .bind(req.now)
        .bind(i64::from(req.duration))
        .bind(price.units())
        .bind(new_balance.units())
        .bind(&session.call_id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
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
    }

    async fn active_sessions(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PrepaidSession>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE a.domain = ? AND a.username = ? AND s.closed_at IS NULL ORDER BY s.opened_at"
        ))
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(session_from).collect()
    }

    async fn record_calls(&self, calls: &[NewCall]) -> Result<Vec<bool>, StoreError> {
        let tx = self.group.lite_write().await?;
        let out = {
            let conn = tx.lite();
            let out = insert_calls(&conn, calls)?;
            // If either fails, the write is dropped with its savepoint counted open: the next
            // holder of the connection rolls it back.
            conn.execute_batch("RELEASE w")
                .map_err(crate::group::lite_err)?;
            out
        };
        tx.released().await?;
        Ok(out)
    }

    async fn list_calls(
        &self,
        account: &AccountId,
        direction: Direction,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.* FROM call_parties p JOIN calls c ON c.id = p.call_row \
             WHERE p.account_id = (SELECT id FROM accounts WHERE domain = ? AND username = ?) \
             AND p.direction = ? AND p.start_at >= ? ORDER BY p.start_at DESC, p.call_row DESC LIMIT ?",
        )
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .bind(direction.as_str())
        .bind(unix(since))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(call_from).collect()
    }

    async fn usage(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Usage, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS n, COALESCE(SUM(c.duration), 0) AS d, COALESCE(SUM(c.price), 0) AS p \
             FROM call_parties p JOIN calls c ON c.id = p.call_row \
             WHERE p.account_id = (SELECT id FROM accounts WHERE domain = ? AND username = ?) \
             AND p.direction = 'placed' AND p.start_at >= ? AND p.start_at < ?",
        )
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .bind(unix(from))
        .bind(unix(to))
        .fetch_one(&self.reader)
        .await
        .map_err(map_err)?;
        let n: i64 = row.try_get("n").map_err(map_err)?;
        let d: i64 = row.try_get("d").map_err(map_err)?;
        let p: i64 = row.try_get("p").map_err(map_err)?;
        Ok(Usage {
            calls: u64::try_from(n).unwrap_or_default(),
            duration: u64::try_from(d).unwrap_or_default(),
            price: Money::from_units(p),
        })
    }

    async fn export_billing(&self, account: &AccountId) -> Result<BillingSnapshot, StoreError> {
        let balance = self.get_balance(account).await?;
        let mut history = self.balance_history(account, u32::MAX).await?;
        history.reverse();
        let rows = sqlx::query(&format!(
            "{SESSION_SELECT} WHERE a.domain = ? AND a.username = ? ORDER BY s.opened_at, s.call_id"
        ))
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let sessions = rows
            .iter()
            .map(session_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BillingSnapshot {
            balance,
            history,
            sessions,
        })
    }

    async fn import_billing(
        &self,
        account: &AccountId,
        snap: &BillingSnapshot,
    ) -> Result<(), StoreError> {
        let mut tx = self.group.write().await?;
        let (id, _, _) = account_row(&mut tx, account).await?;
        sqlx::query("UPDATE accounts SET balance = ? WHERE id = ?")
            .bind(snap.balance.units())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for h in &snap.history {
            insert_history(
                &mut tx,
                id,
                h.at,
                &h.action,
                &h.description,
                h.value,
                h.balance,
                h.session.as_deref(),
            )
            .await?;
        }
        for s in &snap.sessions {
            let closed = s.closed.as_ref();
            sqlx::query(
                "INSERT INTO prepaid_sessions (call_id, account_id, destination, opened_at, max_session_time, \
                 reserved, rate_prefix, rate_description, connect_fee, rate_per_minute, increment_seconds, \
                 minimum_seconds, closed_at, duration, price, balance_after) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .await
            .map_err(map_err)?;
        }
        tx.commit().await?;
        Ok(())
    }
}
