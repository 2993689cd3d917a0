//! On real database files: concurrent writes share commits, each is acknowledged only once
//! committed, a refused write fails alone, a failed commit acknowledges none.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::store::{AccountOp, Accounts, Settings};
use sip_settings_core::{Account, AccountId, AccountProfile, Credentials, Domain, E164};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::Barrier;

use crate::SqliteStore;

struct Db {
    _dir: tempfile::TempDir,
    url: String,
    store: Arc<SqliteStore>,
}

/// A store on a fresh file with the accounts `user0@example.com` … `user{n-1}`.
async fn db(n: usize) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url, true).await.unwrap();
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    store
        .add_domain(&Domain::parse("example.com").unwrap(), t0)
        .await
        .unwrap();
    for i in 0..n {
        let account = Account {
            id: user(i),
            profile: AccountProfile::default(),
            privacy: false,
            prepaid: false,
            created_at: t0,
        };
        let credentials = Credentials {
            ha1_md5: "m".into(),
            ha1_sha256: "s".into(),
            ha1b: None,
            password_hash: "$argon2id$x".into(),
        };
        store
            .insert_account(&account, &credentials, &[])
            .await
            .unwrap();
    }
    Db {
        _dir: dir,
        url,
        store: Arc::new(store),
    }
}

fn user(i: usize) -> AccountId {
    AccountId::parse(&format!("user{i}@example.com")).unwrap()
}

fn entry(account: &AccountId) -> NewJournalEntry {
    NewJournalEntry {
        at: Utc.timestamp_opt(1_790_000_001, 0).single().unwrap(),
        account: account.clone(),
        door: "test".into(),
        actor: account.to_string(),
        source: None,
        resource: "privacy".into(),
        old: Some("off".into()),
        new: Some("on".into()),
    }
}

/// Sets the account's privacy with its journal entry, through one account write.
async fn set_privacy(store: &SqliteStore, account: &AccountId) -> Result<(), String> {
    let mut w = store
        .begin_account(account)
        .await
        .map_err(|e| e.to_string())?;
    w.apply(&AccountOp::SetPrivacy(true))
        .await
        .map_err(|e| e.to_string())?;
    w.commit(&[entry(account)]).await.map_err(|e| e.to_string())
}

/// What another connection (another process) finds committed: the accounts with privacy
/// on, and the journal entries, by account.
async fn committed(url: &str) -> (Vec<String>, Vec<String>) {
    let mut conn = SqliteConnection::connect(url).await.unwrap();
    let private: Vec<String> =
        sqlx::query_scalar("SELECT username FROM accounts WHERE privacy = 1 ORDER BY username")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let journal: Vec<String> = sqlx::query_scalar(
        "SELECT account FROM journal WHERE resource = 'privacy' ORDER BY account",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    (private, journal)
}

fn sorted_names(ids: impl IntoIterator<Item = usize>) -> (Vec<String>, Vec<String>) {
    let mut users: Vec<String> = ids.into_iter().map(|i| format!("user{i}")).collect();
    users.sort();
    let mut journal: Vec<String> = users.iter().map(|u| format!("{u}@example.com")).collect();
    journal.sort();
    (users, journal)
}

/// 64 concurrent writers: each write and its journal entry are committed, and visible to
/// the store's reads and to another connection, by the time it is acknowledged; and they
/// shared commits (a commit per write would be 64).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_each_is_committed_when_acknowledged() {
    const WRITERS: usize = 64;
    let db = db(WRITERS).await;
    let before = db.store.group.commits();
    let start = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, start, url) = (db.store.clone(), start.clone(), db.url.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            set_privacy(&store, &user(i)).await.unwrap();
            // Acknowledged: the store's own (cached) read and another connection see it.
            let account = store.get_account(&user(i)).await.unwrap().unwrap();
            assert!(
                account.privacy,
                "user{i}: the acknowledged write is not read back"
            );
            let mut conn = SqliteConnection::connect(&url).await.unwrap();
            let private: bool = sqlx::query_scalar(
                "SELECT privacy FROM accounts WHERE username = ? AND domain = 'example.com'",
            )
            .bind(format!("user{i}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert!(private, "user{i}: acknowledged but not committed");
            conn.close().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let commits = db.store.group.commits() - before;
    assert!(
        (1..WRITERS as u64).contains(&commits),
        "{WRITERS} concurrent writes took {commits} commits"
    );
    assert_eq!(committed(&db.url).await, sorted_names(0..WRITERS));
}

/// Among concurrent writes, one refused by the database after it changed something (an
/// ENUM number another account holds), one dropped without commit and one of an account
/// that does not exist fail alone: nothing of theirs is kept, every other write is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_alone_and_the_others_of_its_batch_commit() {
    const WRITERS: usize = 32;
    let db = db(WRITERS).await;
    let taken = E164::parse_for("number", "+31201234567").unwrap();
    let mut w = db.store.begin_account(&user(0)).await.unwrap();
    w.apply(&AccountOp::AddEnum(taken.clone())).await.unwrap();
    w.commit(&[]).await.unwrap();

    let before = db.store.group.commits();
    let start = Arc::new(Barrier::new(WRITERS + 1));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, start, taken) = (db.store.clone(), start.clone(), taken.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            match i {
                5 => {
                    let mut w = store.begin_account(&user(i)).await.unwrap();
                    w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
                    let refused = w.apply(&AccountOp::AddEnum(taken)).await;
                    assert!(refused.is_err(), "a taken number was added again");
                    // Dropped, as the service layer drops a write that failed.
                    Err(format!("refused: {refused:?}"))
                }
                6 => {
                    let mut w = store.begin_account(&user(i)).await.unwrap();
                    w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
                    drop(w);
                    Err("dropped".to_owned())
                }
                _ => set_privacy(&store, &user(i)).await,
            }
        }));
    }
    let missing = {
        let store = db.store.clone();
        tokio::spawn(async move {
            start.wait().await;
            set_privacy(&store, &user(WRITERS + 1)).await
        })
    };
    for (i, t) in tasks.into_iter().enumerate() {
        let outcome = t.await.unwrap();
        assert_eq!(outcome.is_ok(), i != 5 && i != 6, "user{i}: {outcome:?}");
    }
    let missing = missing.await.unwrap();
    assert!(
        missing.as_ref().is_err_and(|e| e.contains("not found")),
        "{missing:?}"
    );
    let commits = db.store.group.commits() - before;
    assert!(
        commits < (WRITERS - 2) as u64,
        "{} writes took {commits} commits",
        WRITERS - 2
    );
    assert_eq!(
        committed(&db.url).await,
        sorted_names((0..WRITERS).filter(|i| *i != 5 && *i != 6))
    );
}

/// A commit that fails (here a deferred foreign key of a test table, checked by SQLite at
/// COMMIT, violated through a trigger by one write) acknowledges none of the writes of its
/// batch and keeps none of them; the next write begins a fresh transaction and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_acknowledges_none_of_its_batch() {
    let db = db(4).await;
    let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE test_parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE test_child (parent INTEGER REFERENCES test_parent (id) \
             DEFERRABLE INITIALLY DEFERRED); \
         CREATE TRIGGER test_poison AFTER UPDATE OF privacy ON accounts \
             WHEN new.username = 'user0' AND new.privacy = 1 \
             BEGIN INSERT INTO test_child (parent) VALUES (42); END;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    // user0's write holds the connection while user1 and user2 queue for it: they join
    // its batch, ahead of the flush that user0's commit schedules.
    let mut poisoned = db.store.begin_account(&user(0)).await.unwrap();
    poisoned.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    let others: Vec<_> = [1, 2]
        .into_iter()
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move { set_privacy(&store, &user(i)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcome = poisoned.commit(&[entry(&user(0))]).await;
    assert!(outcome.is_err(), "a commit that failed acknowledged user0");
    for (i, t) in others.into_iter().enumerate() {
        let outcome = t.await.unwrap();
        assert!(
            outcome.is_err(),
            "user{}: acknowledged by a commit that failed",
            i + 1
        );
    }
    assert_eq!(committed(&db.url).await, sorted_names([]));
    assert!(
        !db.store
            .get_account(&user(1))
            .await
            .unwrap()
            .unwrap()
            .privacy
    );

    set_privacy(&db.store, &user(3)).await.unwrap();
    assert_eq!(committed(&db.url).await, sorted_names([3]));
}

/// Forwarding the database refuses (here by a trigger of the test) fails its write whole:
/// the change applied before it is not kept either, and a write beside it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_refused_fails_its_write_alone() {
    use sip_settings_core::sip::{Condition, DiversionTarget};
    let db = db(2).await;
    let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER test_refuse BEFORE INSERT ON diversions \
             WHEN new.target LIKE '%31209999999%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let refused =
        DiversionTarget::parse(Condition::Unconditional, "+31209999999", &user(0)).unwrap();
    let mut w = db.store.begin_account(&user(0)).await.unwrap();
    w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    let beside = {
        let store = db.store.clone();
        tokio::spawn(async move { set_privacy(&store, &user(1)).await })
    };
    let outcome = w
        .apply(&AccountOp::SetDiversions(vec![(
            Condition::Unconditional,
            Some(refused),
        )]))
        .await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.to_string().contains("refused by the test")),
        "{outcome:?}"
    );
    drop(w);
    beside.await.unwrap().unwrap();
    assert_eq!(committed(&db.url).await, sorted_names([1]));
    let kept = db.store.get_diversions(&user(0)).await.unwrap();
    assert!(!kept.contains_key(&Condition::Unconditional), "{kept:?}");

    // Accepted forwarding is kept, with the change before it.
    let accepted =
        DiversionTarget::parse(Condition::Unconditional, "+31201234567", &user(0)).unwrap();
    let mut w = db.store.begin_account(&user(0)).await.unwrap();
    w.apply(&AccountOp::SetDiversions(vec![(
        Condition::Unconditional,
        Some(accepted.clone()),
    )]))
    .await
    .unwrap();
    w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    w.commit(&[entry(&user(0))]).await.unwrap();
    assert_eq!(committed(&db.url).await, sorted_names([0, 1]));
    assert_eq!(
        db.store
            .get_diversions(&user(0))
            .await
            .unwrap()
            .get(&Condition::Unconditional),
        Some(&accepted)
    );
}

/// Account writes (on the rusqlite connection) and other writes (on sqlx's) running
/// together: a batch open on one connection commits before a write on the other begins,
/// and every write is committed when acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_both_connections_interleave() {
    const WRITERS: usize = 32;
    let db = db(WRITERS).await;
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    let start = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, start) = (db.store.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if i % 2 == 0 {
                set_privacy(&store, &user(i)).await
            } else {
                let domain = Domain::parse(&format!("d{i}.example.com")).unwrap();
                store
                    .add_domain(&domain, t0)
                    .await
                    .map_err(|e| e.to_string())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        committed(&db.url).await,
        sorted_names((0..WRITERS).filter(|i| i % 2 == 0))
    );
    let domains = db.store.list_domains().await.unwrap();
    assert_eq!(domains.len(), 1 + WRITERS / 2, "{domains:?}");
}

/// A write dropped without commit, with no writer after it, does not leave the shared
/// transaction open: another connection (the CLI) gets the write lock at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_does_not_keep_the_write_lock() {
    let db = db(1).await;
    let mut w = db.store.begin_account(&user(0)).await.unwrap();
    w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut conn = SqliteConnection::connect(&format!("{}?mode=rw", db.url))
        .await
        .unwrap();
    sqlx::raw_sql("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; COMMIT")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(committed(&db.url).await, sorted_names([]));
}

/// A single write alone: committed by the time it is acknowledged, in one commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_write_is_committed_when_acknowledged() {
    let db = db(1).await;
    let before = db.store.group.commits();
    set_privacy(&db.store, &user(0)).await.unwrap();
    assert_eq!(db.store.group.commits() - before, 1);
    assert_eq!(committed(&db.url).await, sorted_names([0]));
}

/// A backup taken while writers run: it succeeds, holds a consistent database, and every
/// write is acknowledged and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_writes() {
    const WRITERS: usize = 16;
    let db = db(WRITERS).await;
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            set_privacy(&store, &user(i)).await.unwrap();
        }));
    }
    let backup = db._dir.path().join("backup.db");
    db.store.backup_to(&backup).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(committed(&db.url).await, sorted_names(0..WRITERS));
    let url = format!("sqlite://{}", backup.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    // Each write is in the backup whole (its change and its journal entry) or not at all.
    let (private, journal) = committed(&url).await;
    assert_eq!(private.len(), journal.len());
    // And writes go on after it.
    set_privacy(&db.store, &user(0)).await.unwrap();
}
