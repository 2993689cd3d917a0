//! Two `sip-settings serve` processes on one PostgreSQL database, both answering the hot reads
//! (certificate, account, DND, forwarding) from memory: a revocation or a change made through
//! one server, or through the CLI, holds for the very next request on the other
//! (`crates/store-postgres/src/read_cache.rs`). Skips (saying so) without
//! `SIP_SETTINGS_TEST_PG_URL`, except in CI (`CI=true`), where it fails.

use std::time::{Duration, Instant};

use serde_json::Value;
use sip_settings_store_postgres::PgStore;

use crate::helpers::serve::{Server, cli, get, provision};
use sip_settings_store_tests::pg::TempDatabase;

/// Reads `account` through `base` until the server has started its read cache (it does after
/// 100 hot reads), and the cache's answers are being used.
async fn warm(client: &reqwest::Client, base: &str) {
    for _ in 0..40 {
        assert_eq!(get(client, base, "action=account").await.0, 200);
    }
}

/// Waits (bounded) until `n` servers hold a live lease of the read cache.
async fn holders(store: &PgStore, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = store.live_read_cache_holders().await.unwrap();
        if live == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{live} servers hold a read-cache lease, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The serial of the client's own (first) certificate.
async fn own_serial(client: &reqwest::Client, base: &str) -> String {
    let certs: Value = client
        .get(format!("{base}/v1/me/certificates"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    certs["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_changes_hold_at_once_on_every_caching_server() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let a = Server::start(install.dir.path(), db.url());
    let b = Server::start(install.dir.path(), db.url());
    let alice = install.client(&install.alice);
    let bob = install.client(&install.bob);
    let watch = PgStore::open(db.url(), false).await.unwrap();

    // Both servers read enough to cache, and hold a lease.
    for base in [&a.base, &b.base] {
        warm(&alice, base).await;
        warm(&bob, base).await;
    }
    holders(&watch, 2).await;
    let bob_serial = own_serial(&bob, &a.base).await;

    // Changes through one server are read on the next request to the other, both ways.
    for (writer, reader) in [(&a.base, &b.base), (&b.base, &a.base)] {
        for value in ["%2B31201234567", "%2B31201234568", ""] {
            // The reader has the forwarding and the account (with DND) in memory.
            for _ in 0..3 {
                get(&alice, reader, "action=diversions").await;
                get(&alice, reader, "action=account").await;
            }
            let (status, body) = get(
                &alice,
                writer,
                &format!("action=set_diversions&FUNC={value}"),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let (_, d) = get(&alice, reader, "action=diversions").await;
            let expected = match value {
                "" => Value::Null,
                v => Value::String(format!("{}@example.com", v.replace("%2B", "+"))),
            };
            assert_eq!(
                d.get("FUNC").cloned().unwrap_or(Value::Null),
                expected,
                "{d}"
            );
        }
        for (action, dnd) in [("dnd_on", true), ("dnd_off", false)] {
            for _ in 0..3 {
                get(&alice, reader, "action=account").await;
            }
            assert_eq!(
                get(&alice, writer, &format!("action={action}")).await.0,
                200
            );
            assert_eq!(get(&alice, reader, "action=account").await.1["dnd"], dnd);
        }
    }

    // Bob's certificate revoked through A: the very next request to B with it is refused, on
    // the connection B has open and warm.
    for _ in 0..3 {
        assert_eq!(get(&bob, &b.base, "action=account").await.0, 200);
    }
    let revoked = bob
        .delete(format!("{}/v1/me/certificates/{bob_serial}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(get(&bob, &b.base, "action=account").await.0, 403);
    assert_eq!(get(&bob, &a.base, "action=diversions").await.0, 403);

    // Alice's revoked through the CLI (a third process on the database): refused by both.
    let alice_serial = own_serial(&alice, &b.base).await;
    for base in [&a.base, &b.base] {
        for _ in 0..3 {
            assert_eq!(get(&alice, base, "action=account").await.0, 200);
        }
    }
    cli(
        install.dir.path(),
        db.url(),
        &["cert", "revoke", &alice_serial],
    );
    assert_eq!(get(&alice, &b.base, "action=account").await.0, 403);
    assert_eq!(get(&alice, &a.base, "action=diversions").await.0, 403);

    // Both servers still held their lease throughout (the answers above were the caches').
    holders(&watch, 2).await;
    watch.close().await;
    drop((a, b));
    db.drop_db().await;
}

/// A change of forwarding runs without the account's lock in the database, starting from what
/// the server's last change of the account committed (issue 16). If the account changed behind
/// its back — committed without the ping that empties the caches, as by a writer that died
/// between its commit and its ping — the version makes that attempt change nothing, and it runs
/// again with the lock: the stored forwarding and the journal's old value are those of the
/// account's real state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_change_that_missed_a_change_runs_again_with_the_lock() {
    use sqlx::Connection;
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let install = provision(db.url());
    let a = Server::start(install.dir.path(), db.url());
    let alice = install.client(&install.alice);
    let watch = PgStore::open(db.url(), false).await.unwrap();
    warm(&alice, &a.base).await;
    holders(&watch, 1).await;
    // Past the cache's warm-up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, reply) = get(&alice, &a.base, "action=set_diversions&FUNC=%2B31201234567").await;
    assert_eq!(status, 200, "{reply}");

    let mut raw = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let changed = sqlx::query(
        "WITH a AS (SELECT id FROM accounts WHERE username = 'alice'), \
         d AS (UPDATE diversions SET target = replace(target, '4567', '4999') \
               WHERE account_id = (SELECT id FROM a) AND condition = 'FUNC' RETURNING 1) \
         UPDATE account_write_versions SET version = version + 1 \
         WHERE account_id = (SELECT id FROM a) AND EXISTS (SELECT 1 FROM d)",
    )
    .execute(&mut raw)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(changed, 1);

    let (status, reply) = get(&alice, &a.base, "action=set_diversions&FUNC=%2B31201234500").await;
    assert_eq!(status, 200, "{reply}");
    let (_, diversions) = get(&alice, &a.base, "action=diversions").await;
    assert!(
        diversions.to_string().contains("31201234500"),
        "{diversions}"
    );
    let journal: serde_json::Value = alice
        .get(format!("{}/v1/me/journal", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let latest = &journal["entries"][0];
    assert_eq!(latest["resource"], "diversions.FUNC", "{journal}");
    assert!(
        latest["old"]
            .as_str()
            .is_some_and(|o| o.contains("31201234999")),
        "the old value is the real one: {latest}"
    );
    assert!(
        latest["new"]
            .as_str()
            .is_some_and(|n| n.contains("31201234500")),
        "{latest}"
    );
    watch.close().await;
}
