//! Call records: the JSON bodies the service API is driven with, and the bulk load that fills
//! the store to 1 000 000 records while no server runs.
//!
//! The bulk load goes through the library (the same JSON read into `CallInput`, `parse`,
//! `Services::record_calls` in batches of 10 000, one transaction each, the next batch made
//! while one is stored; on PostgreSQL two transactions at a time, on SQLite's single writer
//! one), not `sip-settings calls import`, which reads the
//! whole file into memory and resolves the parties of every line with store look-ups. The
//! parties are known here (the caller is the benchmark account, the callee a PSTN number of an
//! unserved domain), so each record is built with exactly the party `prepare_call` would find.

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sip_settings_core::AccountId;
use sip_settings_core::calls::{CallInput, Direction, NewCall};

use tokio::task::JoinSet;

use crate::provision::{Db, account_name};

/// Records per transaction of the bulk load.
pub(crate) const BATCH: usize = 10_000;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A call placed by `caller` as the service API takes it (JSON); the bulk load reads the same
/// document into a `CallInput`, so both paths parse one format.
fn call_json(call_id: String, caller: &str, start: DateTime<Utc>, duration: i64) -> Value {
    let answered = duration > 0;
    json!({
        "call_id": call_id,
        "from_tag": "bench-from",
        "to_tag": "bench-to",
        "caller": format!("sip:{caller}"),
        "callee": "sip:+31201234567@pstn.example",
        "start": time(start),
        "stop": time(start + Duration::seconds(duration)),
        "duration": duration,
        "status": if answered { 200 } else { 486 },
        "media": ["audio"],
        "proxy_ip": "192.0.2.10",
        "price": if answered { "0.0500" } else { "0" },
    })
}

/// A new call placed an hour ago by one of `accounts` accounts: record `j` of request `seq` of
/// connection `conn` (the Call-ID names all four, so that no two records share one).
fn api_call(tag: &str, conn: usize, seq: u64, j: usize, accounts: usize) -> Value {
    let k = (conn as u64 * 7919 + seq * 104_729 + j as u64 * 15_485_863) % accounts.max(1) as u64;
    let call_id = if j == 0 {
        format!("api-{tag}-{conn}-{seq}")
    } else {
        format!("api-{tag}-{conn}-{seq}-{j}")
    };
    call_json(
        call_id,
        &account_name(usize::try_from(k).unwrap_or(0)),
        Utc::now() - Duration::hours(1),
        60,
    )
}

/// The body of `POST /v1/service/calls` number `seq` of connection `conn`: a new call placed an
/// hour ago by one of `accounts` accounts.
pub(crate) fn api_body(tag: &str, conn: usize, seq: u64, accounts: usize) -> Vec<u8> {
    api_call(tag, conn, seq, 0, accounts)
        .to_string()
        .into_bytes()
}

/// The Call-ID of [`api_body`] number `seq` of connection `conn`.
pub(crate) fn api_call_id(tag: &str, conn: usize, seq: u64) -> String {
    format!("api-{tag}-{conn}-{seq}")
}

/// The body of `POST /v1/service/calls/batch` number `seq` of connection `conn`: `size` new
/// calls, each as [`api_body`] makes one.
pub(crate) fn batch_body(
    tag: &str,
    conn: usize,
    seq: u64,
    size: usize,
    accounts: usize,
) -> Vec<u8> {
    let calls: Vec<Value> = (0..size)
        .map(|j| api_call(tag, conn, seq, j, accounts))
        .collect();
    json!({ "calls": calls }).to_string().into_bytes()
}

/// What the bulk load did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loaded {
    /// Records stored.
    pub records: usize,
    /// Seconds it took.
    pub seconds: f64,
    /// Transactions in flight at once.
    pub transactions_at_once: usize,
}

/// Stores `total` calls: `focus_calls` of them placed by account 0 within the last 13 days,
/// the rest placed by accounts 1… over the last year.
pub(crate) async fn bulk_load(
    db: &Db,
    accounts: usize,
    total: usize,
    focus_calls: usize,
    tag: &str,
) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let now = Utc::now();
    let mut rng = StdRng::seed_from_u64(20_261_126);
    let ids: Vec<AccountId> = (0..accounts)
        .map(|i| AccountId::parse(&account_name(i)))
        .collect::<Result<_, _>>()?;
    let in_flight = db.transactions_at_once();
    let mut pending = JoinSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut stored = 0;
    for i in 0..total {
        let (account, span_secs) = if i < focus_calls || accounts == 1 {
            (0, 13 * 86_400)
        } else {
            (1 + (i * 7919) % (accounts - 1), 365 * 86_400)
        };
        let start = now - Duration::seconds(rng.random_range(60..span_secs));
        let duration = if rng.random_range(0..10) == 0 {
            0
        } else {
            rng.random_range(1..1800)
        };
        let name = account_name(account);
        let input: CallInput =
            serde_json::from_value(call_json(format!("bulk-{tag}-{i}"), &name, start, duration))
                .with_context(|| format!("call record {i}"))?;
        let record = input.parse().with_context(|| format!("call record {i}"))?;
        batch.push(NewCall {
            record,
            parties: vec![(ids[account].clone(), Direction::Placed)],
        });
        if batch.len() == BATCH || i + 1 == total {
            // The next batch is made while this one is stored.
            if pending.len() >= in_flight
                && let Some(done) = pending.join_next().await
            {
                stored += done??;
            }
            let services = db.services.clone();
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            pending.spawn(async move {
                services
                    .record_calls(&full)
                    .await
                    .with_context(|| format!("storing call records up to {i}"))
            });
            if (i + 1) % 100_000 == 0 {
                eprintln!("  {}/{total} call records", i + 1);
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        stored += done??;
    }
    Ok(Loaded {
        records: stored,
        seconds: started.elapsed().as_secs_f64(),
        transactions_at_once: in_flight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bodies_are_valid_call_records() {
        let body = api_body("t", 3, 7, 20);
        let input: CallInput = serde_json::from_slice(&body).unwrap();
        let record = input.parse().unwrap();
        assert_eq!(record.call_id, "api-t-3-7");
        assert_eq!(record.duration, 60);
        assert!(record.caller.to_string().ends_with("@bench.example"));
        assert_eq!(api_call_id("t", 3, 7), "api-t-3-7");
    }

    #[test]
    fn batch_bodies_hold_distinct_valid_records() {
        let body: Value = serde_json::from_slice(&batch_body("t", 1, 2, 100, 20)).unwrap();
        let calls = body["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 100);
        let mut ids = std::collections::HashSet::new();
        for c in calls {
            let input: CallInput = serde_json::from_value(c.clone()).unwrap();
            let record = input.parse().unwrap();
            assert!(ids.insert(record.call_id));
        }
        // The first record of a batch is not one that a single request of the same tag,
        // connection and number would send again under another body.
        assert_eq!(calls[0]["call_id"], "api-t-1-2");
    }
}
