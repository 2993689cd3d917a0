//! `PgStore` against a real PostgreSQL: the rules that SQLite gets from its single writer and
//! PostgreSQL gets from row locks and keys. Each test makes its own database from
//! `SIP_SETTINGS_TEST_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) and drops it;
//! without the variable the tests say so and pass, except in CI (`CI=true`), where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::calls::{
    CallRecord, CloseOutcome, CloseRequest, Direction, NewCall, OpenOutcome, OpenRequest,
    PrepaidRefusal,
};
use sip_settings_core::cert::{CertRecord, CertRole, Serial};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::settings::{Group, TemporaryRule};
use sip_settings_core::sip::{Condition, DiversionTarget, SipUri};
use sip_settings_core::store::{
    Accounts, Addresses, AliasOutcome, BalanceChange, Billing, Certificates, Journal, Settings,
};
use sip_settings_core::{AccountId, Credentials, Domain, E164, StoreError};
use sip_settings_store_postgres::PgStore;
use sqlx::{Connection, PgConnection};

/// A fresh database and the store on it; [`TestDb::finish`] drops it.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
    store: Arc<PgStore>,
}

/// `url` with its database name replaced by `db` (any `?query` kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

impl TestDb {
    async fn start() -> Option<Self> {
        let db = Self::empty().await?;
        let store = PgStore::open(&db.2, true).await.unwrap();
        Some(Self {
            admin_url: db.0,
            name: db.1,
            url: db.2,
            store: Arc::new(store),
        })
    }

    /// A fresh database without a schema: its admin URL, name and URL.
    async fn empty() -> Option<(String, String, String)> {
        let admin_url = sip_settings_store_postgres::testing::test_server_url("PostgreSQL tests")?;
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = Utc::now().timestamp_subsec_nanos();
        let name = format!(
            "pgstore_t_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(&admin_url, &name);
        Some((admin_url, name, url))
    }

    /// A raw connection to the test database, to look behind the store.
    async fn raw(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    async fn finish(self) {
        self.store.close().await;
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).single().unwrap()
}

fn id(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn money(s: &str) -> Money {
    Money::parse_for("m", s).unwrap()
}

fn creds() -> Credentials {
    Credentials {
        ha1_md5: "md5".into(),
        ha1_sha256: "sha".into(),
        ha1b: None,
        password_hash: "$argon2id$stand-in".into(),
    }
}

fn account(s: &str, prepaid: bool) -> Account {
    Account {
        id: id(s),
        profile: AccountProfile::default(),
        privacy: false,
        prepaid,
        created_at: t0(),
    }
}

/// Domain example.com with alice and bob (bob prepaid).
async fn seed(store: &PgStore) {
    store
        .add_domain(&Domain::parse("example.com").unwrap(), t0())
        .await
        .unwrap();
    for (who, prepaid) in [("alice@example.com", false), ("bob@example.com", true)] {
        store
            .insert_account(&account(who, prepaid), &creds(), &[])
            .await
            .unwrap();
    }
}

fn rate() -> Rate {
    // 0.1000 a minute, billed per minute.
    Rate::new("31", "Netherlands", Money::ZERO, money("0.10"), 60, 60).unwrap()
}

fn open_request(call_id: &str) -> OpenRequest {
    OpenRequest {
        account: id("bob@example.com"),
        destination: E164::parse_for("d", "+31201234567").unwrap(),
        call_id: call_id.to_owned(),
        rate: rate(),
        max_session_seconds: 60,
        max_sessions: 1000,
        now: t0(),
    }
}

fn close_request(call_id: &str, duration: u32) -> CloseRequest {
    CloseRequest {
        call_id: call_id.to_owned(),
        duration,
        from_tag: "f".into(),
        to_tag: "t".into(),
        media: vec!["audio".into()],
        proxy_ip: "192.0.2.1".into(),
        status: 200,
        now: t0() + Duration::seconds(120),
        journal: None,
    }
}

fn call(call_id: &str, price: Option<Money>) -> NewCall {
    NewCall {
        record: CallRecord {
            call_id: call_id.to_owned(),
            from_tag: "f1".into(),
            to_tag: "t1".into(),
            caller: SipUri::parse_for("c", "sip:alice@example.com").unwrap(),
            callee: SipUri::parse_for("c", "sip:+31201234567@example.com").unwrap(),
            start: t0(),
            stop: t0() + Duration::seconds(60),
            duration: 60,
            status: 200,
            media: vec!["audio".into(), "video".into()],
            proxy_ip: "192.0.2.1".into(),
            price,
        },
        parties: vec![(id("alice@example.com"), Direction::Placed)],
    }
}

#[test]
fn database_name_is_replaced_in_the_url() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
}

/// Forwarding written before the rules existed (migration 0013) is, after it, the same
/// forwarding: the seed view unchanged, and rules that are its simple rules.
#[tokio::test]
async fn forwarding_from_before_the_rules_reads_the_same_after_migrating() {
    let Some((admin_url, name, url)) = TestDb::empty().await else {
        return;
    };
    let mut raw = PgConnection::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 13)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&mut raw).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO domains (name, created_at) VALUES ('example.com', now());
         INSERT INTO accounts (username, domain, timezone, language, no_answer_timeout,
             ha1_md5, ha1_sha256, password_hash, created_at, updated_at)
         VALUES ('alice', 'example.com', 'Europe/Amsterdam', 'en', 35, 'm', 's', 'p', now(), now()),
                ('bob', 'example.com', 'Europe/Amsterdam', 'en', 35, 'm', 's', 'p', now(), now());
         INSERT INTO diversions (account_id, condition, target)
             SELECT id, 'FNOA', '<voice-mailbox>' FROM accounts WHERE username = 'alice';
         INSERT INTO diversions (account_id, condition, target)
             SELECT id, 'FUNC', 'sip:+31612345678@example.com' FROM accounts
             WHERE username = 'alice';",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    raw.close().await.unwrap();

    let store = PgStore::open(&url, true).await.unwrap();
    let db = TestDb {
        admin_url,
        name,
        url,
        store: Arc::new(store),
    };
    let alice = id("alice@example.com");
    let view = db.store.get_diversions(&alice).await.unwrap();
    assert_eq!(view.len(), 2);
    assert_eq!(view[&Condition::NoAnswer], DiversionTarget::VoiceMailbox);
    let rules = db.store.get_forwarding(&alice).await.unwrap();
    assert_eq!(
        *rules,
        sip_settings_core::forwarding::Forwarding::of_diversions(&view)
    );
    assert_eq!(rules.diversions(), view);
    assert!(!rules.richer());
    assert!(
        db.store
            .get_forwarding(&id("bob@example.com"))
            .await
            .unwrap()
            .rules
            .is_empty()
    );
    // The seed's change works on it as before, locked and optimistic alike.
    db.store
        .set_diversions(&alice, &[(Condition::NoAnswer, None)])
        .await
        .unwrap();
    assert_eq!(db.store.get_diversions(&alice).await.unwrap().len(), 1);
    let documents: i64 = sqlx::query_scalar("SELECT count(*) FROM forwarding_documents")
        .fetch_one(&mut db.raw().await)
        .await
        .unwrap();
    assert_eq!(documents, 0, "the seed's forwarding needs no document");
    db.finish().await;
}

#[tokio::test]
async fn migrations_run_twice() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    db.store.migrate().await.unwrap();
    let again = PgStore::open(&db.url, true).await.unwrap();
    again.migrate().await.unwrap();
    again.close().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut db.raw().await)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert_eq!(
        applied,
        i64::try_from(files).unwrap(),
        "every migration applied once"
    );
    // The schema is usable after the second run.
    seed(&db.store).await;
    db.finish().await;
}

#[tokio::test]
async fn open_refuses_other_urls() {
    let e = PgStore::open("sqlite://x.db", false).await.unwrap_err();
    assert!(matches!(e, StoreError::Other(_)), "{e:?}");
    // Nothing listens on port 1: the database is unavailable, not broken.
    let e = PgStore::open("postgres://postgres@127.0.0.1:1/x", false)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn accounts_insert_get_delete_and_revoke() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    let s = &db.store;
    seed(s).await;
    let alice = id("alice@example.com");
    assert_eq!(
        s.get_account(&alice).await.unwrap(),
        Some(account("alice@example.com", false))
    );
    // Duplicates conflict; an account of a domain not served here is NotFound.
    let e = s
        .insert_account(&account("alice@example.com", false), &creds(), &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = s
        .insert_account(&account("carol@example.net", false), &creds(), &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let e = s
        .add_domain(&Domain::parse("example.com").unwrap(), t0())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    let serial = Serial::parse("0A1B").unwrap();
    s.insert_certificate(&CertRecord {
        serial: serial.clone(),
        subject: "alice@example.com".into(),
        role: CertRole::Subscriber,
        account: Some(alice.clone()),
        fingerprint: "fp".into(),
        not_before: t0(),
        not_after: t0() + Duration::days(365),
        issued_at: t0(),
        revoked_at: None,
        name: None,
        last_used: None,
    })
    .await
    .unwrap();
    s.set_privacy(&alice, true).await.unwrap();
    s.add_enum(&E164::parse_for("n", "+31201234567").unwrap(), &alice)
        .await
        .unwrap();

    let at = t0() + Duration::hours(1);
    assert_eq!(s.delete_account(&alice, at, &[]).await.unwrap(), 1);
    assert_eq!(s.get_account(&alice).await.unwrap(), None);
    let cert = s.get_certificate(&serial).await.unwrap().unwrap();
    assert_eq!(cert.revoked_at, Some(at));
    assert_eq!(cert.account, Some(alice.clone()));
    assert!(s.list_enum(None).await.unwrap().is_empty());
    let e = s.delete_account(&alice, at, &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let e = s.set_privacy(&alice, false).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    db.finish().await;
}

#[tokio::test]
async fn aliases_are_unique_across_accounts_and_aliases_and_limited() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    let s = &db.store;
    seed(s).await;
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    // An account's own address and another account's alias are taken.
    assert_eq!(
        s.add_alias(&bob, &alice, 5).await.unwrap(),
        AliasOutcome::Taken
    );
    assert_eq!(
        s.add_alias(&id("a1@example.com"), &alice, 2).await.unwrap(),
        AliasOutcome::Added
    );
    assert_eq!(
        s.add_alias(&id("a1@example.com"), &bob, 2).await.unwrap(),
        AliasOutcome::Taken
    );
    assert_eq!(
        s.add_alias(&id("a2@example.com"), &alice, 2).await.unwrap(),
        AliasOutcome::Added
    );
    assert_eq!(
        s.add_alias(&id("a3@example.com"), &alice, 2).await.unwrap(),
        AliasOutcome::LimitReached
    );
    let e = s
        .add_alias(&id("x@example.com"), &id("nobody@example.com"), 2)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    // An account cannot take an alias's address.
    let e = s
        .insert_account(&account("a1@example.com", false), &creds(), &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(
        s.resolve_address(&id("a2@example.com")).await.unwrap(),
        Some(alice.clone())
    );

    // Concurrent adders: the limit holds, and one address goes to one account.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = db.store.clone();
        let bob = bob.clone();
        tasks.push(tokio::spawn(async move {
            s.add_alias(&id(&format!("b{i}@example.com")), &bob, 5)
                .await
                .unwrap()
        }));
    }
    for who in [alice.clone(), bob.clone()] {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.add_alias(&id("shared@example.com"), &who, 100)
                .await
                .unwrap()
        }));
    }
    let mut added = 0;
    for t in tasks {
        if t.await.unwrap() == AliasOutcome::Added {
            added += 1;
        }
    }
    // At most 5 aliases of bob's own (the limit counts all of them: "shared" too, when bob's
    // adder won it, with its own larger limit), and "shared" exactly once.
    let bob_aliases = s.list_aliases(Some(&bob)).await.unwrap();
    let bobs = bob_aliases
        .iter()
        .filter(|(a, _)| a.user().as_str() != "shared")
        .count();
    assert!(bobs <= 5, "bob has {bobs} aliases b…");
    assert_eq!(
        s.list_aliases(None)
            .await
            .unwrap()
            .iter()
            .filter(|(a, _)| a.user().as_str() == "shared")
            .count(),
        1
    );
    assert_eq!(
        added,
        bobs + 1,
        "each b… alias bob holds, and \"shared\" once"
    );
    // The limit was filled: 5 b… aliases, or 4 when bob's "shared" came first.
    assert!((4..=5).contains(&bobs), "bob has {bobs} aliases b…");
    db.finish().await;
}

#[tokio::test]
async fn concurrent_opens_never_reserve_more_than_the_balance() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let bob = id("bob@example.com");
    let add = BalanceChange::Add {
        value: money("1.00"),
        action: "topup".into(),
        description: "test".into(),
    };
    db.store
        .change_balance(&bob, &add, t0(), None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.open_prepaid_session(&open_request(&format!("call-{i}")))
                .await
                .unwrap()
        }));
    }
    let (mut opened, mut refused, mut reserved) = (0, 0, Money::ZERO);
    for t in tasks {
        match t.await.unwrap() {
            OpenOutcome::Opened(session) => {
                opened += 1;
                reserved = reserved + session.reserved;
            }
            OpenOutcome::Refused(PrepaidRefusal::InsufficientBalance) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Each minute reserves 0.10 of 1.00: exactly ten fit.
    assert_eq!((opened, refused), (10, 40));
    assert_eq!(reserved, money("1.00"));
    assert_eq!(db.store.active_sessions(&bob).await.unwrap().len(), 10);
    db.finish().await;
}

#[tokio::test]
async fn closing_twice_debits_once() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    let s = &db.store;
    seed(s).await;
    let bob = id("bob@example.com");
    let set = BalanceChange::Set {
        value: money("1.00"),
        description: "start".into(),
    };
    s.change_balance(&bob, &set, t0(), None).await.unwrap();
    assert!(matches!(
        s.open_prepaid_session(&open_request("c1")).await.unwrap(),
        OpenOutcome::Opened(_)
    ));
    // A repeated open answers the open session.
    assert!(matches!(
        s.open_prepaid_session(&open_request("c1")).await.unwrap(),
        OpenOutcome::AlreadyOpen(_)
    ));
    assert_eq!(
        s.close_prepaid_session(&close_request("nope", 1))
            .await
            .unwrap(),
        None
    );

    // Two closes at once and one after: one debit.
    let close = close_request("c1", 30);
    let (a, b) = tokio::join!(
        s.close_prepaid_session(&close),
        s.close_prepaid_session(&close)
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    // Exactly one of the two settled; the other answered its result.
    assert_eq!(
        [&a, &b]
            .iter()
            .filter(|o| matches!(o, CloseOutcome::Closed(_)))
            .count(),
        1
    );
    let (a, b) = (a.into_session(), b.into_session());
    assert_eq!(a, b);
    let again = s
        .close_prepaid_session(&close_request("c1", 45))
        .await
        .unwrap()
        .unwrap()
        .into_session();
    assert_eq!(again, a);
    let settled = a.closed.unwrap();
    assert_eq!(settled.price, money("0.10"));
    assert_eq!(settled.balance, money("0.90"));
    assert_eq!(s.get_balance(&bob).await.unwrap(), money("0.90"));
    let history = s.balance_history(&bob, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].action, "debit");
    assert_eq!(history[0].session.as_deref(), Some("c1"));
    let calls = s
        .list_calls(&bob, Direction::Placed, t0() - Duration::days(1), 10)
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].price, Some(money("0.10")));
    // A closed Call-ID cannot be opened again.
    let e = s
        .open_prepaid_session(&open_request("c1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    db.finish().await;
}

#[tokio::test]
async fn recording_calls_is_idempotent() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    let s = &db.store;
    seed(s).await;
    let alice = id("alice@example.com");
    let batch = [call("x1", None), call("x2", Some(money("0.05")))];
    assert_eq!(s.record_calls(&batch).await.unwrap(), [true, true]);
    assert_eq!(s.record_calls(&batch).await.unwrap(), [false, false]);
    // A replay with a price fills in a missing one, and nothing else.
    assert_eq!(
        s.record_calls(&[call("x1", Some(money("0.07")))])
            .await
            .unwrap(),
        [false]
    );
    let calls = s
        .list_calls(&alice, Direction::Placed, t0(), 10)
        .await
        .unwrap();
    assert_eq!(calls.len(), 2);
    let x1 = calls.iter().find(|c| c.call_id == "x1").unwrap();
    assert_eq!(x1.price, Some(money("0.07")));
    assert_eq!(x1.media, ["audio", "video"]);
    assert_eq!(x1.start, t0());
    let usage = s
        .usage(&alice, t0(), t0() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        (usage.calls, usage.duration, usage.price),
        (2, 120, money("0.12"))
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_victims_are_retried() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    // Two batches that insert the same two calls in opposite orders, with enough work in
    // between that each holds its first call's key while it waits for the other's: PostgreSQL
    // rolls one back as a deadlock victim, and the store runs it again.
    let batch = |first: &str, middle: &str, last: &str| -> Vec<NewCall> {
        let mut b = vec![call(first, None)];
        b.extend((0..50).map(|i| call(&format!("{middle}-{i}"), None)));
        b.push(call(last, None));
        b
    };
    let one = batch("d1", "m1", "d2");
    let two = batch("d2", "m2", "d1");
    let (s1, s2) = (db.store.clone(), db.store.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move { s1.record_calls(&one).await }),
        tokio::spawn(async move { s2.record_calls(&two).await })
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    // Each shared call is new in exactly one batch.
    assert!(a[0] ^ b[50 + 1], "d1 recorded once");
    assert!(a[50 + 1] ^ b[0], "d2 recorded once");
    let calls = db
        .store
        .list_calls(&id("alice@example.com"), Direction::Placed, t0(), 1000)
        .await
        .unwrap();
    assert_eq!(calls.len(), 102);
    db.finish().await;
}

#[tokio::test]
async fn dnd_lapses_at_its_until() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    let s = &db.store;
    seed(s).await;
    let alice = id("alice@example.com");
    let until = t0() + Duration::minutes(90);
    let dnd = TemporaryRule {
        groups: vec![Group::Nobody],
        until: Some(until),
    };
    s.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
    let rules = s.get_accept_rules(&alice).await.unwrap();
    assert_eq!(rules.temporary.as_ref(), Some(&dnd));
    assert!(rules.dnd_at(t0()));
    assert!(rules.dnd_at(until - Duration::seconds(1)));
    assert!(!rules.dnd_at(until));
    s.set_temporary_rule(&alice, None).await.unwrap();
    assert_eq!(s.get_accept_rules(&alice).await.unwrap().temporary, None);
    let e = s
        .set_temporary_rule(&id("nobody@example.com"), Some(&dnd))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    db.finish().await;
}

#[tokio::test]
async fn concurrent_diversion_writers_keep_each_others_conditions() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let alice = id("alice@example.com");
    let conditions = [
        Condition::from_code("FUNC").unwrap(),
        Condition::from_code("FBUS").unwrap(),
        Condition::from_code("FNOA").unwrap(),
        Condition::from_code("FNOL").unwrap(),
    ];
    let mut tasks = Vec::new();
    for (i, c) in conditions.into_iter().enumerate() {
        let s = db.store.clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let target =
                DiversionTarget::parse(c, &format!("sip:t{i}@example.org"), &alice).unwrap();
            s.set_diversions(&alice, &[(c, Some(target))])
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.store.get_diversions(&alice).await.unwrap().len(), 4);
    db.finish().await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    sqlx::query("UPDATE accounts SET timezone = 'Not/A_Zone' WHERE username = 'alice'")
        .execute(&mut db.raw().await)
        .await
        .unwrap();
    let e = db
        .store
        .get_account(&id("alice@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Other(_)), "{e:?}");
    db.finish().await;
}

#[tokio::test]
async fn the_store_recovers_from_terminated_connections() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let alice = id("alice@example.com");
    assert!(db.store.get_account(&alice).await.unwrap().is_some());
    // End every connection of the pool, as a failover or a restart would.
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty());
    admin.close().await.unwrap();
    // The pool tests each connection before use and replaces the dead ones.
    for _ in 0..3 {
        assert!(db.store.get_account(&alice).await.unwrap().is_some());
    }
    db.finish().await;
}

// ----- the read cache on several servers (`read_cache.rs`) -----

/// Starts `store`'s read cache and waits (bounded) until it answers from memory.
async fn holding(store: &PgStore) {
    store.start_read_cache();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.read_cache_holding() {
        assert!(
            std::time::Instant::now() < deadline,
            "the read cache did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A fresh seeded database and two stores on it, "servers" `a` (the database's own store) and
/// `b`, both answering from memory.
async fn two_holding_servers() -> Option<(TestDb, Arc<PgStore>, PgStore)> {
    let db = TestDb::start().await?;
    seed(&db.store).await;
    let a = db.store.clone();
    let b = PgStore::open(&db.url, false).await.unwrap();
    holding(&a).await;
    holding(&b).await;
    Some((db, a, b))
}

/// A subscriber certificate of `who`.
fn certificate(serial: &str, who: &AccountId) -> CertRecord {
    CertRecord {
        serial: Serial::parse(serial).unwrap(),
        subject: who.to_string(),
        role: CertRole::Subscriber,
        account: Some(who.clone()),
        fingerprint: "fp".into(),
        not_before: t0(),
        not_after: t0() + Duration::days(365),
        issued_at: t0(),
        revoked_at: None,
        name: None,
        last_used: None,
    }
}

/// Reads the four hot reads of `who` (and `serial`) on `store`, twice; how many of them the
/// cache answered.
async fn warm(store: &PgStore, who: &AccountId, serial: &Serial) -> u64 {
    let before = store.read_cache_hits();
    for _ in 0..2 {
        store.get_certificate(serial).await.unwrap();
        store.get_account(who).await.unwrap();
        store.get_diversions(who).await.unwrap();
        store.get_temporary_rule(who).await.unwrap();
    }
    store.read_cache_hits() - before
}

#[tokio::test]
async fn a_change_on_one_server_holds_for_the_next_read_on_another() {
    let Some((db, a, b)) = two_holding_servers().await else {
        return;
    };
    let alice = id("alice@example.com");
    let serial = Serial::parse("0C01").unwrap();
    a.insert_certificate(&certificate("0C01", &alice))
        .await
        .unwrap();
    for (writer, reader) in [(&*a, &b), (&b, &*a)] {
        assert!(warm(reader, &alice, &serial).await >= 4, "cached");
        // A certificate revoked on one server is revoked for the very next read on the other.
        let at = t0() + Duration::hours(1);
        writer.revoke_certificate(&serial, at).await.unwrap();
        let seen = reader.get_certificate(&serial).await.unwrap().unwrap();
        assert_eq!(seen.revoked_at, Some(at));
        sqlx::query("UPDATE certificates SET revoked_at = NULL")
            .execute(&mut db.raw().await)
            .await
            .unwrap();
        // (A change behind the store's back is seen only after the next change through it.)
        writer.set_privacy(&alice, false).await.unwrap();
        assert_eq!(
            reader
                .get_certificate(&serial)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            None
        );

        // Forwarding, DND and the account itself.
        assert!(warm(reader, &alice, &serial).await >= 4, "cached");
        let func = Condition::from_code("FUNC").unwrap();
        let target = DiversionTarget::parse(func, "+31201234567", &alice).unwrap();
        writer
            .set_diversions(&alice, &[(func, Some(target.clone()))])
            .await
            .unwrap();
        assert_eq!(
            reader.get_diversions(&alice).await.unwrap().get(&func),
            Some(&target)
        );
        let dnd = TemporaryRule {
            groups: vec![Group::Nobody],
            until: None,
        };
        writer.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
        assert_eq!(reader.get_temporary_rule(&alice).await.unwrap(), Some(dnd));
        writer.set_privacy(&alice, true).await.unwrap();
        assert!(reader.get_account(&alice).await.unwrap().unwrap().privacy);

        writer
            .set_diversions(&alice, &[(func, None)])
            .await
            .unwrap();
        writer.set_temporary_rule(&alice, None).await.unwrap();
        writer.set_privacy(&alice, false).await.unwrap();
        assert!(reader.get_diversions(&alice).await.unwrap().is_empty());
        assert_eq!(reader.get_temporary_rule(&alice).await.unwrap(), None);
    }
    // An account deleted on one server is gone on the other, and its certificates revoked.
    assert!(warm(&b, &alice, &serial).await >= 4, "cached");
    a.delete_account(&alice, t0(), &[]).await.unwrap();
    assert_eq!(b.get_account(&alice).await.unwrap(), None);
    assert!(
        b.get_certificate(&serial)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // … and one created is there (a cached "no such account" is not kept).
    a.insert_account(&account("alice@example.com", false), &creds(), &[])
        .await
        .unwrap();
    assert!(b.get_account(&alice).await.unwrap().is_some());
    b.close().await;
    db.finish().await;
}

/// A write of one account makes the other server forget that account alone: the rest of what
/// it holds still answers from memory. A change that is not one account's (a revocation)
/// empties all of it.
#[tokio::test]
async fn an_account_write_makes_the_other_server_forget_that_account_alone() {
    let Some((db, a, b)) = two_holding_servers().await else {
        return;
    };
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    let (alice_serial, bob_serial) = (
        Serial::parse("0C01").unwrap(),
        Serial::parse("0C02").unwrap(),
    );
    a.insert_certificate(&certificate("0C01", &alice))
        .await
        .unwrap();
    a.insert_certificate(&certificate("0C02", &bob))
        .await
        .unwrap();
    // Both hold and each knows of the other (their renewals count the other's lease).
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    warm(&b, &alice, &alice_serial).await;
    warm(&b, &bob, &bob_serial).await;
    assert_eq!(
        warm(&b, &bob, &bob_serial).await,
        8,
        "bob's reads are cached on b"
    );
    let pings = a.read_cache_pings();
    let func = Condition::from_code("FUNC").unwrap();
    let target = DiversionTarget::parse(func, "+31201234567", &alice).unwrap();
    a.set_diversions(&alice, &[(func, Some(target.clone()))])
        .await
        .unwrap();
    a.set_privacy(&alice, true).await.unwrap();
    assert!(a.read_cache_pings() > pings, "b was pinged");
    // alice's changes hold on b at once, her certificate is read again…
    assert_eq!(
        b.get_diversions(&alice).await.unwrap().get(&func),
        Some(&target)
    );
    assert!(b.get_account(&alice).await.unwrap().unwrap().privacy);
    let hits = b.read_cache_hits();
    b.get_certificate(&alice_serial).await.unwrap();
    assert_eq!(
        b.read_cache_hits(),
        hits,
        "alice's certificate was forgotten"
    );
    // … and bob's answers are still in memory.
    assert_eq!(
        warm(&b, &bob, &bob_serial).await,
        8,
        "bob's reads stayed cached on b"
    );
    // A revocation is not one account's write: b forgets everything.
    a.revoke_certificate(&alice_serial, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        b.get_certificate(&alice_serial)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        warm(&b, &bob, &bob_serial).await,
        4,
        "bob's first reads went to the database"
    );
    b.close().await;
    db.finish().await;
}

/// Writers of one server that finish together share a ping and its confirmation: fewer pings
/// than writes, and still each change holds for the next read on the other server the moment
/// its writer is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_that_finish_together_share_a_ping_and_each_change_holds_on_the_other_server() {
    let Some((db, a, b)) = two_holding_servers().await else {
        return;
    };
    const WRITERS: usize = 16;
    const ROUNDS: usize = 8;
    for i in 0..WRITERS {
        a.insert_account(&account(&format!("w{i}@example.com"), false), &creds(), &[])
            .await
            .unwrap();
    }
    let func = Condition::from_code("FUNC").unwrap();
    // Both hold and each knows of the other (their renewals count the other's lease).
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let pings_before = a.read_cache_pings();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            let who = id(&format!("w{i}@example.com"));
            for round in 0..ROUNDS {
                // Cached on b before the change.
                b.get_diversions(&who).await.unwrap();
                b.get_diversions(&who).await.unwrap();
                let number = format!("+312012{i:02}{round:03}");
                let target = DiversionTarget::parse(func, &number, &who).unwrap();
                a.set_diversions(&who, &[(func, Some(target.clone()))])
                    .await
                    .unwrap();
                assert_eq!(
                    b.get_diversions(&who).await.unwrap().get(&func),
                    Some(&target),
                    "writer {i}, round {round}: the change holds on the other server at once"
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let pings = a.read_cache_pings() - pings_before;
    let writes = (WRITERS * ROUNDS) as u64;
    assert!(pings > 0, "the other server was pinged");
    assert!(
        pings < writes,
        "{pings} pings for {writes} writes: writers that finish together share one"
    );
    b.close().await;
    db.finish().await;
}

#[tokio::test]
async fn a_write_waits_for_a_silent_holder_at_most_until_its_lease_is_fenced_and_lapses() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let alice = id("alice@example.com");
    // A holder that never confirms anything (a server stuck, or gone without a word),
    // registered longer ago than a writer's knowledge of being alone lasts (the seed's writes
    // found no holder).
    sqlx::query(
        "INSERT INTO cache_holders (seen, expires_at) VALUES (0, now() + interval '3 seconds')",
    )
    .execute(&mut db.raw().await)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let started = std::time::Instant::now();
    db.store.set_privacy(&alice, true).await.unwrap();
    let waited = started.elapsed();
    // It waited for the holder: first for its confirmation, then, fenced, for its lease.
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(6), "{waited:?}");
    let (fenced, live): (bool, bool) =
        sqlx::query_as("SELECT fenced, expires_at > now() FROM cache_holders")
            .fetch_one(&mut db.raw().await)
            .await
            .unwrap();
    assert!(fenced);
    assert!(!live);
    // With no live holder left, a write does not wait.
    let started = std::time::Instant::now();
    db.store.set_privacy(&alice, false).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_millis(800));
    db.finish().await;
}

#[tokio::test]
async fn a_holder_that_loses_its_listener_reads_the_database_and_comes_back() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    let b = PgStore::open(&db.url, false).await.unwrap();
    holding(&b).await;
    let alice = id("alice@example.com");
    let serial = Serial::parse("0C02").unwrap();
    a.insert_certificate(&certificate("0C02", &alice))
        .await
        .unwrap();
    assert!(warm(&b, &alice, &serial).await >= 4, "cached");
    // End B's listening connection (the one that registered and records what it has seen; no
    // connection of A's pool).
    let mut admin = PgConnection::connect(&db.admin_url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND (query ILIKE 'UPDATE cache_holders SET seen%' \
         OR query ILIKE 'INSERT INTO cache_holders%')",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty());
    // Whatever B has noticed yet, a revocation through A holds on B at once.
    a.revoke_certificate(&serial, t0()).await.unwrap();
    assert!(
        b.get_certificate(&serial)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // B registers again and caches again.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    holding(&b).await;
    assert!(warm(&b, &alice, &serial).await >= 4, "cached again");
    b.close().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_holders")
        .fetch_one(&mut db.raw().await)
        .await
        .unwrap();
    assert_eq!(left, 0, "a closed store leaves no lease behind");
    db.finish().await;
}

#[tokio::test]
async fn reads_under_a_write_are_of_the_state_the_write_applies_to() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let b = db.store.clone();
    holding(&b).await;
    let alice = id("alice@example.com");
    let serial = Serial::parse("0C03").unwrap();
    b.insert_certificate(&certificate("0C03", &alice))
        .await
        .unwrap();
    assert!(warm(&b, &alice, &serial).await >= 4, "cached");
    // A change the cache has not heard of (made behind the store's back, as a change of another
    // server just before the lock whose notification has not arrived yet would be).
    sqlx::query("UPDATE accounts SET privacy = TRUE WHERE username = 'alice'")
        .execute(&mut db.raw().await)
        .await
        .unwrap();
    assert!(!b.get_account(&alice).await.unwrap().unwrap().privacy);
    // Under the account's lock the store answers the state the write applies to.
    let mut write = b.begin_account(&alice).await.unwrap();
    assert!(b.get_account(&alice).await.unwrap().unwrap().privacy);
    assert!(b.get_diversions(&alice).await.unwrap().is_empty());
    assert_eq!(b.get_temporary_rule(&alice).await.unwrap(), None);
    assert_eq!(b.get_voicemail(&alice).await.unwrap(), None);
    write
        .apply(&sip_settings_core::store::AccountOp::SetPrivacy(false))
        .await
        .unwrap();
    write.commit(&[]).await.unwrap();
    // After the commit: the committed state, from the database and then from memory.
    for _ in 0..2 {
        assert!(!b.get_account(&alice).await.unwrap().unwrap().privacy);
    }
    db.finish().await;
}

#[tokio::test]
async fn a_holder_whose_lease_lapsed_does_not_renew_it_and_starts_afresh() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    let b = PgStore::open(&db.url, false).await.unwrap();
    holding(&b).await;
    let alice = id("alice@example.com");
    let serial = Serial::parse("0C04").unwrap();
    a.insert_certificate(&certificate("0C04", &alice))
        .await
        .unwrap();
    assert!(warm(&b, &alice, &serial).await >= 4, "cached");
    // B's lease lapses in the database (as when its renewals did not get through): writers no
    // longer ping it, nor wait for it.
    sqlx::query("UPDATE cache_holders SET expires_at = now() - interval '1 second'")
        .execute(&mut db.raw().await)
        .await
        .unwrap();
    a.set_privacy(&alice, true).await.unwrap();
    // B may not simply renew a lapsed lease and go on with what it held: it registers anew
    // with an empty cache.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(b.get_account(&alice).await.unwrap().unwrap().privacy);
    b.close().await;
    db.finish().await;
}

/// A writer that waited for the account's lock applies its change to the state the writer
/// before it committed — on another server too: what it reads under the lock (the forwarding
/// an `If-Match` is checked against, the old values of its journal entries) includes the
/// change committed while it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_waited_for_the_lock_reads_what_the_writer_before_it_committed() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    let b = Arc::new(PgStore::open(&db.url, false).await.unwrap());
    let alice = id("alice@example.com");
    let func = Condition::from_code("FUNC").unwrap();
    let target = DiversionTarget::parse(func, "sip:first@example.org", &alice).unwrap();
    let mut first = a.begin_account(&alice).await.unwrap();
    let second = {
        let (b, alice) = (b.clone(), alice.clone());
        tokio::spawn(async move {
            let write = b.begin_account(&alice).await.unwrap();
            let seen = b.get_diversions(&alice).await.unwrap();
            drop(write);
            seen
        })
    };
    // The second writer is waiting for the lock in the database.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second writer waits for the lock"
    );
    first
        .apply(&sip_settings_core::store::AccountOp::SetDiversions(vec![(
            func,
            Some(target.clone()),
        )]))
        .await
        .unwrap();
    first.commit(&[]).await.unwrap();
    let seen = second.await.unwrap();
    assert_eq!(seen.get(&func), Some(&target), "{seen:?}");
    b.close().await;
    db.finish().await;
}

/// A server that holds the only lease writes without pinging; a server that starts holding
/// meanwhile answers from memory only after a warm-up, so even while the first still skips its
/// pings, every read of the newcomer sees every change acknowledged before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_alone_skips_its_pings_and_one_that_joins_never_answers_an_older_change() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    holding(&a).await;
    let alice = id("alice@example.com");
    let pings = || async {
        sqlx::query_scalar::<_, i64>("SELECT last_value FROM cache_pings")
            .fetch_one(&mut db.raw().await)
            .await
            .unwrap()
    };
    // A renewal of its lease has found it alone.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = pings().await;
    let skipped = a.read_cache_pings_skipped();
    for on in [true, false, true] {
        a.set_privacy(&alice, on).await.unwrap();
    }
    assert_eq!(pings().await, before, "a lone writer does not ping");
    // (At least one: a renewal delayed past its validity by a loaded machine makes a write ask
    // the database again, which is correct too.)
    assert!(
        a.read_cache_pings_skipped() > skipped,
        "nor asks the database whether it is alone"
    );

    let b = PgStore::open(&db.url, false).await.unwrap();
    b.start_read_cache();
    let started = std::time::Instant::now();
    let mut on = true;
    let mut held_since = None;
    while held_since.is_none_or(|t: std::time::Instant| t.elapsed().as_millis() < 1500) {
        assert!(
            started.elapsed().as_secs() < 15,
            "the second server never held"
        );
        for _ in 0..3 {
            let read = b.get_account(&alice).await.unwrap().unwrap().privacy;
            assert_eq!(
                read, on,
                "the newcomer answered a change older than the last one"
            );
        }
        on = !on;
        a.set_privacy(&alice, on).await.unwrap();
        if held_since.is_none() && b.read_cache_holding() {
            held_since = Some(std::time::Instant::now());
        }
    }
    assert!(b.read_cache_hits() > 0, "the newcomer answered from memory");
    assert!(pings().await > before, "with a second holder, writes ping");
    b.close().await;
    db.finish().await;
}

/// A journal entry of a change of `alice@example.com`'s `resource`.
fn entry(resource: &str, new: &str) -> sip_settings_core::journal::NewJournalEntry {
    sip_settings_core::journal::NewJournalEntry {
        at: t0(),
        account: id("alice@example.com"),
        door: "test".to_owned(),
        actor: "tester".to_owned(),
        source: None,
        resource: resource.to_owned(),
        old: None,
        new: Some(new.to_owned()),
    }
}

/// An optimistic write (issue 16) reads the account without its lock and commits a change of
/// forwarding in one statement — only if nobody changed the account since it read it. If
/// another server did, the commit changes nothing (neither the forwarding nor the journal) and
/// says so; a change other than forwarding takes the lock first, on the same condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optimistic_write_commits_only_over_the_state_it_read() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    let b = Arc::new(PgStore::open(&db.url, false).await.unwrap());
    let alice = id("alice@example.com");
    let func = Condition::from_code("FUNC").unwrap();
    let first = DiversionTarget::parse(func, "sip:first@example.org", &alice).unwrap();
    let second = DiversionTarget::parse(func, "sip:second@example.org", &alice).unwrap();
    let set = |t: &DiversionTarget| {
        sip_settings_core::store::AccountOp::SetDiversions(vec![(func, Some(t.clone()))])
    };
    let entries = || async { a.list_journal(&alice, None, 100).await.unwrap().len() };

    // Nobody in between: committed, with its journal entry.
    let (store, op, alice2) = (a.clone(), set(&first), alice.clone());
    tokio::spawn(async move {
        let mut w = store.begin_account_optimistic(&alice2).await.unwrap();
        w.apply(&op).await.unwrap();
        w.commit(&[entry("diversions.FUNC", "first")]).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        a.get_diversions(&alice).await.unwrap().get(&func),
        Some(&first)
    );
    assert_eq!(entries().await, 1);

    // Another server changes the account between the read and the commit.
    let (store, other, op, alice2) = (a.clone(), b.clone(), set(&second), alice.clone());
    let stale = tokio::spawn(async move {
        let mut w = store.begin_account_optimistic(&alice2).await.unwrap();
        other.set_privacy(&alice2, true).await.unwrap();
        w.apply(&op).await.unwrap();
        w.commit(&[entry("diversions.FUNC", "second")]).await
    })
    .await
    .unwrap();
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    assert_eq!(
        a.get_diversions(&alice).await.unwrap().get(&func),
        Some(&first),
        "nothing written"
    );
    assert_eq!(entries().await, 1, "no journal entry");

    // A change other than forwarding takes the lock, if the account is unchanged…
    let (store, other, alice2) = (a.clone(), b.clone(), alice.clone());
    let stale = tokio::spawn(async move {
        let mut w = store.begin_account_optimistic(&alice2).await.unwrap();
        other.set_privacy(&alice2, false).await.unwrap();
        w.apply(&sip_settings_core::store::AccountOp::SetPrivacy(true))
            .await
    })
    .await
    .unwrap();
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    assert!(!a.get_account(&alice).await.unwrap().unwrap().privacy);
    // … and then holds it like any write.
    let (store, op, alice2) = (a.clone(), set(&second), alice.clone());
    tokio::spawn(async move {
        let mut w = store.begin_account_optimistic(&alice2).await.unwrap();
        w.apply(&op).await.unwrap();
        w.apply(&sip_settings_core::store::AccountOp::SetPrivacy(true))
            .await
            .unwrap();
        w.commit(&[entry("privacy", "on")]).await
    })
    .await
    .unwrap()
    .unwrap();
    let account = b.get_account(&alice).await.unwrap().unwrap();
    assert!(account.privacy);
    assert_eq!(
        b.get_diversions(&alice).await.unwrap().get(&func),
        Some(&second)
    );
    assert_eq!(entries().await, 2);
    b.close().await;
    db.finish().await;
}

/// What an optimistic writer read answers its own reads — the state its change applies to, if
/// it commits at all — and nobody else's: another request on the same server reads a change
/// acknowledged by another server meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optimistic_writers_snapshot_answers_its_own_task_alone() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    holding(&a).await;
    let b = Arc::new(PgStore::open(&db.url, false).await.unwrap());
    let alice = id("alice@example.com");
    let (store, other, alice2) = (a.clone(), b.clone(), alice.clone());
    let (own, others) = tokio::spawn(async move {
        let w = store.begin_account_optimistic(&alice2).await.unwrap();
        // Acknowledged once the holder A has emptied its cache.
        other.set_privacy(&alice2, true).await.unwrap();
        let own = store.get_account(&alice2).await.unwrap().unwrap().privacy;
        let (store2, alice3) = (store.clone(), alice2.clone());
        let others =
            tokio::spawn(
                async move { store2.get_account(&alice3).await.unwrap().unwrap().privacy },
            )
            .await
            .unwrap();
        drop(w);
        (own, others)
    })
    .await
    .unwrap();
    assert!(!own, "the writer reads the state it read");
    assert!(others, "another task reads the acknowledged change");
    b.close().await;
    db.finish().await;
}

/// A server's next optimistic write of an account starts from what its last one committed,
/// without reading the account, while its cache may answer: a change behind its back (no
/// ping, as the CLI's would be if it died before pinging) is caught by the version, and a
/// change by another server, which pings, empties what it kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optimistic_write_starts_from_the_last_one_and_the_version_catches_what_it_missed() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let a = db.store.clone();
    holding(&a).await;
    // Past the warm-up, A's cache answers.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let b = Arc::new(PgStore::open(&db.url, false).await.unwrap());
    let alice = id("alice@example.com");
    let func = Condition::from_code("FUNC").unwrap();
    let write = |to: &str| {
        let (store, alice) = (a.clone(), alice.clone());
        let target = DiversionTarget::parse(func, to, &alice).unwrap();
        async move {
            tokio::spawn(async move {
                let mut w = store.begin_account_optimistic(&alice).await?;
                let before = store.get_diversions(&alice).await?;
                w.apply(&sip_settings_core::store::AccountOp::SetDiversions(vec![(
                    func,
                    Some(target),
                )]))
                .await?;
                w.commit(&[]).await.map(|()| before)
            })
            .await
            .unwrap()
        }
    };
    write("sip:one@example.org").await.unwrap();
    // Its next write reads, as the state it applies to, what the first one wrote.
    let before = write("sip:two@example.org").await.unwrap();
    assert_eq!(before.get(&func).unwrap().shown(), "one@example.org");
    // Behind the store's back: the next write starts from what it kept, and its version is
    // no longer the account's.
    sqlx::query(
        "UPDATE account_write_versions SET version = version + 1 \
         WHERE account_id = (SELECT id FROM accounts WHERE username = 'alice')",
    )
    .execute(&mut db.raw().await)
    .await
    .unwrap();
    let stale = write("sip:three@example.org").await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    assert_eq!(
        a.get_diversions(&alice)
            .await
            .unwrap()
            .get(&func)
            .unwrap()
            .shown(),
        "two@example.org"
    );
    // A stale write forgets what it kept: the next one reads the account.
    let before = write("sip:three@example.org").await.unwrap();
    assert_eq!(before.get(&func).unwrap().shown(), "two@example.org");
    // Another server's change (it pings A) empties what A kept.
    let four = DiversionTarget::parse(func, "sip:four@example.org", &alice).unwrap();
    b.set_diversions(&alice, &[(func, Some(four))])
        .await
        .unwrap();
    let before = write("sip:five@example.org").await.unwrap();
    assert_eq!(before.get(&func).unwrap().shown(), "four@example.org");
    b.close().await;
    db.finish().await;
}

/// Call records sent one request at a time share statements when they arrive together
/// (`call_batcher.rs`): every request is answered for its own records, a record sent by two
/// requests at once is stored by one and a replay for the other, and a request that fails does
/// not fail the others it shared a statement with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_records_sent_at_once_share_statements_and_each_request_gets_its_own_outcome() {
    let Some(db) = TestDb::start().await else {
        return;
    };
    seed(&db.store).await;
    let store = Arc::new(db.store.clone());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        // Requests 2k and 2k+1 carry the same record; every tenth request has a second one.
        let mut calls = vec![call(&format!("shared-{}", i / 2), None)];
        if i % 10 == 0 {
            calls.push(call(&format!("own-{i}"), None));
        }
        // One request's record cannot be stored (PostgreSQL refuses a NUL in text).
        if i == 77 {
            calls = vec![call("bad\0id", None)];
        }
        tasks.push(tokio::spawn(
            async move { (i, s.record_calls(&calls).await) },
        ));
    }
    let mut stored_shared = std::collections::HashMap::<usize, usize>::new();
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        if i == 77 {
            assert!(outcome.is_err(), "{outcome:?}");
            continue;
        }
        let outcome = outcome.unwrap();
        let expected = if i % 10 == 0 { 2 } else { 1 };
        assert_eq!(outcome.len(), expected, "request {i}: {outcome:?}");
        if outcome[0] {
            *stored_shared.entry(i / 2).or_default() += 1;
        }
        if i % 10 == 0 {
            assert!(outcome[1], "request {i}'s own record is new");
        }
    }
    // Every shared record stored by exactly one of its requests (shared-38 by request 76
    // alone: request 77 sent the bad record instead).
    for k in 0..100 {
        assert_eq!(stored_shared.get(&k), Some(&1), "shared-{k}");
    }
    let calls = db
        .store
        .list_calls(&id("alice@example.com"), Direction::Placed, t0(), 1000)
        .await
        .unwrap();
    assert_eq!(calls.len(), 100 + 20);
    db.finish().await;
}
