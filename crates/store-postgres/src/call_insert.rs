//! Storing call records in one statement, whatever their number: the records and their parties
//! go to PostgreSQL as arrays (`UNNEST`), so a batch of a thousand records costs one round trip
//! instead of two or three per record, and a single record sent alone is one autocommit
//! statement (with a price, followed by a second only for replays: see
//! `PgStore::record_calls`).
//!
//! The outcome is exactly that of storing the records one by one in their order: a record whose
//! (Call-ID, from tag, to tag) is stored already, or came earlier in the same batch, is a replay
//! (`false`), and a replay with a price fills in the stored record's missing price (the first
//! such price wins).

use std::collections::HashSet;

use sip_settings_core::calls::NewCall;
use sip_settings_core::money::Money;
use sip_settings_core::stored;
use sqlx::{Executor, PgConnection, Postgres};

use crate::error::Res;
use crate::rows::unix;

/// A call's identity: Call-ID, from tag, to tag.
type Key = (String, String, String);

/// The records offered for insertion and their parties, as one statement's arrays, in key
/// order (so that concurrent batches take their rows' locks in one order and cannot deadlock).
const INSERT: &str = "\
WITH t AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::int[], $10::text[], $11::text[],
        $12::bigint[])
    WITH ORDINALITY AS t(call_id, from_tag, to_tag, caller, callee, start_at, stop_at,
        duration, status, media, proxy_ip, price, n)
), ins AS (
    INSERT INTO calls (call_id, from_tag, to_tag, caller, callee, start_at, stop_at, duration,
        status, media, proxy_ip, price)
    SELECT call_id, from_tag, to_tag, caller, callee, start_at, stop_at, duration, status, media,
        proxy_ip, price FROM t ORDER BY n
    ON CONFLICT (call_id, from_tag, to_tag) DO NOTHING
    RETURNING id, call_id, from_tag, to_tag, start_at
), parties AS (
    INSERT INTO call_parties (account_id, direction, start_at, call_row)
    SELECT a.id, p.direction, ins.start_at, ins.id
    FROM UNNEST($13::bigint[], $14::text[], $15::text[], $16::text[])
        AS p(n, domain, username, direction)
    JOIN t ON t.n = p.n
    JOIN ins ON ins.call_id = t.call_id AND ins.from_tag = t.from_tag AND ins.to_tag = t.to_tag
    JOIN accounts a ON a.domain = p.domain AND a.username = p.username
    ON CONFLICT DO NOTHING
)
SELECT call_id, from_tag, to_tag FROM ins";

/// Fills in the missing price of stored records (one row per key).
const FILL_PRICES: &str = "\
UPDATE calls c SET price = f.price
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS f(call_id, from_tag, to_tag, price)
WHERE c.call_id = f.call_id AND c.from_tag = f.from_tag AND c.to_tag = f.to_tag
    AND c.price IS NULL";

/// What storing `calls` takes.
pub(crate) struct Plan<'a> {
    calls: &'a [NewCall],
    /// The index in `calls` of the first record of each key, in key order.
    offered: Vec<usize>,
}

fn key_of(call: &NewCall) -> (&str, &str, &str) {
    let r = &call.record;
    (&r.call_id, &r.from_tag, &r.to_tag)
}

fn owned(call: &NewCall) -> Key {
    let (c, f, t) = key_of(call);
    (c.to_owned(), f.to_owned(), t.to_owned())
}

impl<'a> Plan<'a> {
    pub(crate) fn new(calls: &'a [NewCall]) -> Self {
        let mut seen = HashSet::new();
        let mut offered: Vec<usize> = (0..calls.len())
            .filter(|&i| calls.get(i).is_some_and(|c| seen.insert(key_of(c))))
            .collect();
        offered.sort_by_key(|&i| calls.get(i).map(key_of));
        Self { calls, offered }
    }

    /// Whether some record has a price: only then can a replay fill one in, which takes a
    /// second statement.
    pub(crate) fn has_prices(&self) -> bool {
        self.calls.iter().any(|c| c.record.price.is_some())
    }

    /// Inserts the first record of each key and its parties; the keys inserted.
    pub(crate) async fn insert<'e, E>(&self, executor: E) -> Res<HashSet<Key>>
    where
        E: Executor<'e, Database = Postgres>,
    {
        let offered: Vec<&NewCall> = self
            .offered
            .iter()
            .filter_map(|&i| self.calls.get(i))
            .collect();
        let records = || offered.iter().map(|c| &c.record);
        let text =
            |f: &dyn Fn(&NewCall) -> String| offered.iter().map(|c| f(c)).collect::<Vec<_>>();
        let (mut p_n, mut p_domain, mut p_user, mut p_dir) = (vec![], vec![], vec![], vec![]);
        for (n, call) in (1i64..).zip(&offered) {
            for (account, direction) in &call.parties {
                p_n.push(n);
                p_domain.push(account.domain().as_str().to_owned());
                p_user.push(account.user().as_str().to_owned());
                p_dir.push(direction.as_str().to_owned());
            }
        }
        let rows: Vec<Key> = sqlx::query_as(INSERT)
            .bind(text(&|c| c.record.call_id.clone()))
            .bind(text(&|c| c.record.from_tag.clone()))
            .bind(text(&|c| c.record.to_tag.clone()))
            .bind(text(&|c| c.record.caller.to_string()))
            .bind(text(&|c| c.record.callee.to_string()))
            .bind(records().map(|r| unix(r.start)).collect::<Vec<_>>())
            .bind(records().map(|r| unix(r.stop)).collect::<Vec<_>>())
            .bind(records().map(|r| i64::from(r.duration)).collect::<Vec<_>>())
            .bind(records().map(|r| i32::from(r.status)).collect::<Vec<_>>())
            .bind(text(&|c| stored::join_media(&c.record.media)))
            .bind(text(&|c| c.record.proxy_ip.clone()))
            .bind(
                records()
                    .map(|r| r.price.map(Money::units))
                    .collect::<Vec<_>>(),
            )
            .bind(p_n)
            .bind(p_domain)
            .bind(p_user)
            .bind(p_dir)
            .fetch_all(executor)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Each record's outcome: true for the one record of each key that was inserted.
    pub(crate) fn outcome(&self, inserted: &HashSet<Key>) -> Vec<bool> {
        let mut out = vec![false; self.calls.len()];
        for &i in &self.offered {
            if let (Some(slot), Some(call)) = (out.get_mut(i), self.calls.get(i)) {
                *slot = inserted.contains(&owned(call));
            }
        }
        out
    }

    /// Fills in missing prices from the replays: per key, the first record not inserted that
    /// has a price.
    pub(crate) async fn fill_prices<'e, E>(&self, executor: E, inserted: &HashSet<Key>) -> Res<()>
    where
        E: Executor<'e, Database = Postgres>,
    {
        let outcome = self.outcome(inserted);
        let mut seen = HashSet::new();
        let mut fills: Vec<((&str, &str, &str), Money)> = self
            .calls
            .iter()
            .zip(outcome)
            .filter_map(|(call, new)| match (new, call.record.price) {
                (false, Some(price)) => Some((key_of(call), price)),
                _ => None,
            })
            .filter(|(key, _)| seen.insert(*key))
            .collect();
        if fills.is_empty() {
            return Ok(());
        }
        // In key order, as the insert: concurrent fills take their rows' locks in one order.
        fills.sort_by_key(|(key, _)| *key);
        let column = |f: fn(&(&'a str, &'a str, &'a str)) -> &'a str| {
            fills
                .iter()
                .map(|(k, _)| f(k).to_owned())
                .collect::<Vec<_>>()
        };
        let prices: Vec<i64> = fills.iter().map(|(_, m)| m.units()).collect();
        sqlx::query(FILL_PRICES)
            .bind(column(|k| k.0))
            .bind(column(|k| k.1))
            .bind(column(|k| k.2))
            .bind(prices)
            .execute(executor)
            .await?;
        Ok(())
    }
}

/// Stores `calls` on `conn`, inside the caller's transaction: the records and their parties,
/// then the prices that replays fill in.
pub(crate) async fn insert_calls(conn: &mut PgConnection, calls: &[NewCall]) -> Res<Vec<bool>> {
    let plan = Plan::new(calls);
    let inserted = plan.insert(&mut *conn).await?;
    if plan.has_prices() {
        plan.fill_prices(&mut *conn, &inserted).await?;
    }
    Ok(plan.outcome(&inserted))
}
