//! A stored value that does not parse (written by hand, by an older version, by a disk error)
//! is an error naming it on the inline reads, never a panic and never a default.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::store::{Accounts, Addresses, Settings};
use sip_settings_core::{AccountId, Credentials, Domain, E164, StoreError};
use sip_settings_store_sqlite::SqliteStore;

fn named<T: std::fmt::Debug>(result: Result<T, StoreError>, name: &str) {
    match result {
        Err(StoreError::Other(m)) => assert!(m.contains(name), "{name}: {m}"),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_column_on_a_call_read_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()), true)
        .await
        .unwrap();
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    store
        .add_domain(&Domain::parse("example.com").unwrap(), t0)
        .await
        .unwrap();
    let users = [
        "days", "minute", "groups", "until", "pattern", "uri", "name", "delivery", "email",
        "enabled", "bad", "pbgroup",
    ];
    for user in users {
        let account = Account {
            id: AccountId::parse(&format!("{user}@example.com")).unwrap(),
            profile: AccountProfile::default(),
            privacy: false,
            prepaid: false,
            created_at: t0,
        };
        let credentials = Credentials {
            ha1_md5: "m".into(),
            ha1_sha256: "s".into(),
            ha1b: None,
            password_hash: "p".into(),
        };
        store
            .insert_account(&account, &credentials, &[])
            .await
            .unwrap();
    }
    // Warm the cache: the corruption below is a commit, so it must be read, not remembered.
    let id = |u: &str| AccountId::parse(&format!("{u}@example.com")).unwrap();
    for user in users {
        store.get_accept_rules(&id(user)).await.unwrap();
    }

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups)
           SELECT id, 0, 0, 60, 'everybody' FROM accounts WHERE username = 'days';
         INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups)
           SELECT id, 31, 5000, 60, 'everybody' FROM accounts WHERE username = 'minute';
         INSERT INTO accept_rules (account_id, days, start_minute, stop_minute, groups)
           SELECT id, 31, 0, 60, 'no such,,group!' FROM accounts WHERE username = 'groups';
         INSERT INTO accept_temporary (account_id, groups, until)
           SELECT id, 'nobody', 'tomorrow-ish' FROM accounts WHERE username = 'until';
         INSERT INTO reject_rules (account_id, pattern)
           SELECT id, 'nonsense' FROM accounts WHERE username = 'pattern';
         INSERT INTO phonebook (account_id, uri, name, groups)
           SELECT id, 'not a uri', 'X', '' FROM accounts WHERE username = 'uri';
         INSERT INTO phonebook (account_id, uri, name, groups)
           SELECT id, 'sip:a@example.org', x'ff', '' FROM accounts WHERE username = 'name';
         INSERT INTO phonebook (account_id, uri, name, groups)
           SELECT id, 'sip:a@example.org', 'A', 'family,Not A Group!' FROM accounts WHERE username = 'pbgroup';
         INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash)
           SELECT id, 1, 'fax', NULL, NULL FROM accounts WHERE username = 'delivery';
         INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash)
           SELECT id, 1, 'email', 'not-an-email', NULL FROM accounts WHERE username = 'email';
         INSERT INTO voicemail (account_id, enabled, delivery, email, pin_hash)
           SELECT id, 'yes', 'email', NULL, NULL FROM accounts WHERE username = 'enabled';
         UPDATE accounts SET username = 'Not Valid' WHERE username = 'bad';
         INSERT INTO enum_numbers (number, account_id, created_at)
           SELECT '+3120555', id, '' FROM accounts WHERE username = 'Not Valid';",
    )
    .unwrap();

    named(store.get_accept_rules(&id("days")).await, "days mask");
    named(store.get_accept_rules(&id("minute")).await, "time of day");
    named(store.get_accept_rules(&id("groups")).await, "groups");
    named(store.get_accept_rules(&id("until")).await, "until");
    named(store.get_temporary_rule(&id("until")).await, "until");
    named(store.list_reject(&id("pattern")).await, "reject pattern");
    named(store.list_phonebook(&id("uri")).await, "phonebook uri");
    named(store.list_phonebook(&id("name")).await, "name");
    named(
        store.list_phonebook(&id("pbgroup")).await,
        "phonebook group",
    );
    named(store.get_voicemail(&id("delivery")).await, "delivery");
    named(store.get_voicemail(&id("email")).await, "voicemail email");
    named(store.get_voicemail(&id("enabled")).await, "enabled");
    // The address row still says `bad`; the account it leads to is corrupt.
    named(store.resolve_address(&id("bad")).await, "address");
    let number = E164::parse_for("n", "+3120555").unwrap();
    named(store.resolve_enum(&number).await, "address");
    store.close().await;
}

/// Forwarding written before the rules existed (migration 0010) is, after it, the same
/// forwarding: the seed view unchanged, and rules that are its simple rules.
#[tokio::test]
async fn forwarding_from_before_the_rules_reads_the_same_after_migrating() {
    use sip_settings_core::forwarding::Forwarding;
    use sip_settings_core::sip::{Condition, DiversionTarget};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let mut before = sqlx::migrate!("./migrations");
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 10)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&pool).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO domains (name, created_at) VALUES ('example.com', '2026-01-01T00:00:00Z');
             INSERT INTO accounts (username, domain, timezone, language, no_answer_timeout,
                 ha1_md5, ha1_sha256, password_hash, created_at, updated_at)
             VALUES ('alice', 'example.com', 'Europe/Amsterdam', 'en', 35, 'm', 's', 'p',
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                    ('bob', 'example.com', 'Europe/Amsterdam', 'en', 35, 'm', 's', 'p',
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO diversions (account_id, condition, target)
                 SELECT id, 'FNOA', '<voice-mailbox>' FROM accounts WHERE username = 'alice';
             INSERT INTO diversions (account_id, condition, target)
                 SELECT id, 'FUNC', 'sip:+31612345678@example.com' FROM accounts
                 WHERE username = 'alice';",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    let store = SqliteStore::open(&url, false).await.unwrap();
    let alice = AccountId::parse("alice@example.com").unwrap();
    let view = store.get_diversions(&alice).await.unwrap();
    assert_eq!(view.len(), 2);
    assert_eq!(view[&Condition::NoAnswer], DiversionTarget::VoiceMailbox);
    let rules = store.get_forwarding(&alice).await.unwrap();
    assert_eq!(*rules, Forwarding::of_diversions(&view));
    assert_eq!(rules.diversions(), view);
    assert!(!rules.richer());
    let bob = AccountId::parse("bob@example.com").unwrap();
    assert!(store.get_forwarding(&bob).await.unwrap().rules.is_empty());
    // The seed's change works on it as before.
    store
        .set_diversions(&alice, &[(Condition::NoAnswer, None)])
        .await
        .unwrap();
    assert_eq!(store.get_diversions(&alice).await.unwrap().len(), 1);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let documents: i64 = raw
        .query_row("SELECT count(*) FROM forwarding_documents", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(documents, 0, "the seed's forwarding needs no document");
}
