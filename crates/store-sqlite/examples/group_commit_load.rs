//! A short load on the store alone, for profiling the group commit: `N` tasks each writing
//! diversions of their own account (an account write with its journal entry, as
//! `set_diversions` makes it), for a few seconds; prints writes per second and latencies.
//!
//! `cargo run --release -p sip-settings-store-sqlite --example group_commit_load -- 64 3`
//! (the database goes to `$TMPDIR`: keep it on the disk whose flushes are to be measured).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::sip::{Condition, DiversionTarget};
use sip_settings_core::store::{AccountOp, Accounts, Settings};
use sip_settings_core::{Account, AccountId, AccountProfile, Credentials, Domain};
use sip_settings_store_sqlite::SqliteStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("load.db").display());
    let store = Arc::new(SqliteStore::open(&url, true).await?);
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().ok_or("time")?;
    store.add_domain(&Domain::parse("example.com")?, t0).await?;
    for i in 0..writers {
        let account = Account {
            id: AccountId::parse(&format!("user{i}@example.com"))?,
            profile: AccountProfile::default(),
            privacy: false,
            prepaid: false,
            created_at: t0,
        };
        let credentials = Credentials {
            ha1_md5: "m".into(),
            ha1_sha256: "s".into(),
            ha1b: None,
            password_hash: "x".into(),
        };
        store.insert_account(&account, &credentials, &[]).await?;
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id =
                AccountId::parse(&format!("user{i}@example.com")).map_err(|e| e.to_string())?;
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < end {
                let started = Instant::now();
                let number = if n.is_multiple_of(2) {
                    "+31201234567"
                } else {
                    "+31201234568"
                };
                let target = DiversionTarget::parse(Condition::Unconditional, number, &id)
                    .map_err(|e| e.to_string())?;
                let mut w = store.begin_account(&id).await.map_err(|e| e.to_string())?;
                let _old = store.get_diversions(&id).await.map_err(|e| e.to_string())?;
                w.apply(&AccountOp::SetDiversions(vec![(
                    Condition::Unconditional,
                    Some(target),
                )]))
                .await
                .map_err(|e| e.to_string())?;
                let entry = NewJournalEntry {
                    at: Utc::now(),
                    account: id.clone(),
                    door: "load".into(),
                    actor: id.to_string(),
                    source: None,
                    resource: "diversions.FUNC".into(),
                    old: None,
                    new: Some(number.into()),
                };
                w.commit(&[entry]).await.map_err(|e| e.to_string())?;
                latencies.push(started.elapsed());
                n += 1;
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    let p = |percent: usize| all[(all.len() * percent / 100).min(all.len() - 1)];
    println!(
        "{writers} writers: {} writes/s, p50 {:?}, p99 {:?}, max {:?}",
        all.len() as u64 / seconds,
        p(50),
        p(99),
        p(100)
    );
    store.close().await;
    Ok(())
}
