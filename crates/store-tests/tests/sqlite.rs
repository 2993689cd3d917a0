//! The conformance suite on the embedded SQLite store, a fresh file per test.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sip_settings_core::store::{Accounts, Addresses, Certificates, Settings};
use sip_settings_core::{Clock, Store};
use sip_settings_store_sqlite::SqliteStore;
use sip_settings_store_tests::{Harness, conformance_suite};
use sqlx::{Connection, SqliteConnection};

struct Sqlite {
    _dir: tempfile::TempDir,
    url: String,
    store: Arc<SqliteStore>,
}

#[async_trait::async_trait]
impl Harness for Sqlite {
    async fn start_with_clock(clock: Arc<dyn Clock>) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, true).await.ok()?.with_clock(clock);
        Some(Self {
            _dir: dir,
            url,
            store: Arc::new(store),
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn times(&self, sql: &str) -> Vec<DateTime<Utc>> {
        let mut conn = SqliteConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let times = sqlx::query_scalar(sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
        times
    }

    async fn finish(self) {
        self.store.close().await;
    }
}

conformance_suite!(Sqlite);

/// The hot reads are cached in memory while the database stays as it was. A second store on
/// the same file stands for another process (the CLI, a second server): whatever it commits,
/// the first store's next look-up must show, with no request in between to warm or flush
/// anything.
#[tokio::test]
async fn the_hot_read_cache_shows_every_commit_of_another_connection_at_once() {
    use chrono::{Duration, TimeZone, Utc};
    use sip_settings_core::account::{Account, AccountProfile};
    use sip_settings_core::cert::{CertRecord, CertRole, Serial};
    use sip_settings_core::settings::{Group, TemporaryRule};
    use sip_settings_core::sip::{Condition, DiversionTarget, SipUri};
    use sip_settings_core::{AccountId, Credentials, Domain};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let server = SqliteStore::open(&url, true).await.unwrap();
    let cli = SqliteStore::open(&url, false).await.unwrap();
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    let alice = AccountId::parse("alice@example.com").unwrap();
    let serial = Serial::parse("0A0B0C0D").unwrap();

    cli.add_domain(&Domain::parse("example.com").unwrap(), t0)
        .await
        .unwrap();
    // Misses are cached too: the next look-ups must not keep answering "none".
    assert!(server.get_account(&alice).await.unwrap().is_none());
    assert!(server.get_certificate(&serial).await.unwrap().is_none());
    let account = Account {
        id: alice.clone(),
        profile: AccountProfile::default(),
        privacy: false,
        prepaid: false,
        created_at: t0,
    };
    let credentials = Credentials {
        ha1_md5: "md5".into(),
        ha1_sha256: "sha".into(),
        ha1b: None,
        password_hash: "$argon2id$stand-in".into(),
    };
    cli.insert_account(&account, &credentials, &[])
        .await
        .unwrap();
    cli.insert_certificate(&CertRecord {
        serial: serial.clone(),
        subject: "alice@example.com".into(),
        role: CertRole::Subscriber,
        account: Some(alice.clone()),
        fingerprint: "fp".into(),
        not_before: t0,
        not_after: t0 + Duration::days(365),
        issued_at: t0,
        revoked_at: None,
        name: None,
        last_used: None,
    })
    .await
    .unwrap();

    for _ in 0..2 {
        // Twice: the second round is answered from the cache.
        let cert = server.get_certificate(&serial).await.unwrap().unwrap();
        assert!(cert.revoked_at.is_none());
        assert_eq!(server.get_account(&alice).await.unwrap().unwrap(), account);
        assert!(server.get_temporary_rule(&alice).await.unwrap().is_none());
        assert!(server.get_diversions(&alice).await.unwrap().is_empty());
    }

    cli.revoke_certificate(&serial, t0).await.unwrap();
    let cert = server.get_certificate(&serial).await.unwrap().unwrap();
    assert_eq!(cert.revoked_at, Some(t0), "a revocation holds at once");

    let profile = AccountProfile {
        first_name: "Alice".into(),
        ..AccountProfile::default()
    };
    cli.update_account(&alice, &profile, true).await.unwrap();
    let seen = server.get_account(&alice).await.unwrap().unwrap();
    assert_eq!(
        (seen.profile.first_name.as_str(), seen.prepaid),
        ("Alice", true)
    );

    let dnd = TemporaryRule {
        groups: vec![Group::Nobody],
        until: None,
    };
    cli.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
    assert_eq!(server.get_temporary_rule(&alice).await.unwrap(), Some(dnd));

    let target = DiversionTarget::Uri(SipUri::parse_for("t", "sip:bob@example.com").unwrap());
    cli.set_diversions(&alice, &[(Condition::Unconditional, Some(target.clone()))])
        .await
        .unwrap();
    let diversions = server.get_diversions(&alice).await.unwrap();
    assert_eq!(diversions.get(&Condition::Unconditional), Some(&target));

    // The server's own writes go through its writer connection: seen at once as well.
    server.set_temporary_rule(&alice, None).await.unwrap();
    assert!(server.get_temporary_rule(&alice).await.unwrap().is_none());

    cli.delete_account(&alice, t0, &[]).await.unwrap();
    assert!(server.get_account(&alice).await.unwrap().is_none());
    assert!(server.get_diversions(&alice).await.unwrap().is_empty());

    cli.close().await;
    server.close().await;
}

/// The same for the reads that deciding a call needs: each one, read twice through the server
/// (the second from its cache), then changed through the CLI's store, shows the change at the
/// next read.
#[tokio::test]
async fn the_call_reads_show_every_commit_of_another_connection_at_once() {
    use chrono::{TimeZone, Utc};
    use sip_settings_core::account::{Account, AccountProfile};
    use sip_settings_core::settings::{
        AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, Voicemail,
        VoicemailDelivery,
    };
    use sip_settings_core::sip::SipUri;
    use sip_settings_core::{AccountId, Credentials, Domain, E164};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let server = SqliteStore::open(&url, true).await.unwrap();
    let cli = SqliteStore::open(&url, false).await.unwrap();
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    let com = Domain::parse("example.com").unwrap();
    let alice = AccountId::parse("alice@example.com").unwrap();
    let al = AccountId::parse("al@example.com").unwrap();
    let number = E164::parse_for("n", "+31201234567").unwrap();

    for _ in 0..2 {
        assert!(!server.domain_exists(&com).await.unwrap());
    }
    cli.add_domain(&com, t0).await.unwrap();
    assert!(server.domain_exists(&com).await.unwrap());

    let account = Account {
        id: alice.clone(),
        profile: AccountProfile::default(),
        privacy: false,
        prepaid: false,
        created_at: t0,
    };
    let credentials = Credentials {
        ha1_md5: "md5".into(),
        ha1_sha256: "sha".into(),
        ha1b: None,
        password_hash: "$argon2id$stand-in".into(),
    };
    for _ in 0..2 {
        assert_eq!(server.resolve_address(&alice).await.unwrap(), None);
        assert_eq!(server.resolve_address(&al).await.unwrap(), None);
        assert_eq!(server.resolve_enum(&number).await.unwrap(), None);
    }
    cli.insert_account(&account, &credentials, &[])
        .await
        .unwrap();
    let found = Some(alice.clone());
    assert_eq!(server.resolve_address(&alice).await.unwrap(), found);
    cli.add_alias(&al, &alice, 20).await.unwrap();
    assert_eq!(server.resolve_address(&al).await.unwrap(), found);
    cli.add_enum(&number, &alice).await.unwrap();
    assert_eq!(server.resolve_enum(&number).await.unwrap(), found);

    for _ in 0..2 {
        assert_eq!(
            server.get_accept_rules(&alice).await.unwrap(),
            Default::default()
        );
        assert!(server.list_reject(&alice).await.unwrap().is_empty());
        assert!(server.list_phonebook(&alice).await.unwrap().is_empty());
        assert!(server.get_voicemail(&alice).await.unwrap().is_none());
    }
    let rule = AcceptRule {
        days: DaysMask::new(31).unwrap(),
        start: ClockTime::parse_for("s", "09:00").unwrap(),
        stop: ClockTime::parse_for("s", "17:00").unwrap(),
        groups: vec![Group::Everybody],
    };
    cli.put_accept_rule(&alice, &rule).await.unwrap();
    assert_eq!(
        server.get_accept_rules(&alice).await.unwrap().persistent,
        [rule]
    );
    let pattern = RejectPattern::parse("sip:spam@example.net").unwrap();
    cli.add_reject(&alice, &pattern).await.unwrap();
    assert_eq!(server.list_reject(&alice).await.unwrap(), [pattern]);
    let entry = PhonebookEntry {
        uri: SipUri::parse_for("u", "sip:mom@example.org").unwrap(),
        name: "Mom".into(),
        groups: vec!["family".into()],
    };
    cli.put_phonebook_entry(&alice, &entry).await.unwrap();
    assert_eq!(server.list_phonebook(&alice).await.unwrap(), [entry]);
    let voicemail = Voicemail {
        enabled: true,
        delivery: VoicemailDelivery::Email,
        email: None,
        pin_hash: None,
    };
    cli.put_voicemail(&alice, &voicemail).await.unwrap();
    assert_eq!(server.get_voicemail(&alice).await.unwrap(), Some(voicemail));

    cli.delete_account(&alice, t0, &[]).await.unwrap();
    assert_eq!(server.resolve_address(&al).await.unwrap(), None);
    assert_eq!(server.resolve_enum(&number).await.unwrap(), None);
    assert!(server.list_reject(&alice).await.unwrap().is_empty());
    assert!(server.list_phonebook(&alice).await.unwrap().is_empty());
    assert!(server.get_voicemail(&alice).await.unwrap().is_none());

    cli.close().await;
    server.close().await;
}

/// Two stores on one file stand for the server and the CLI (two processes). While one holds an
/// account write open, the other's read-then-write changes wait for SQLite's write lock under
/// the busy timeout, then succeed on the state the first committed — instead of failing at once
/// with `SQLITE_BUSY` as a deferred transaction that read before the other's commit does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_waits_for_the_write_lock_instead_of_failing() {
    use chrono::{TimeZone, Utc};
    use sip_settings_core::account::{Account, AccountProfile};
    use sip_settings_core::settings::{AcceptRule, ClockTime, DaysMask, Group};
    use sip_settings_core::store::AccountOp;
    use sip_settings_core::{AccountId, Credentials, Domain};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let server = SqliteStore::open(&url, true).await.unwrap();
    let cli = Arc::new(SqliteStore::open(&url, false).await.unwrap());
    let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
    let alice = AccountId::parse("alice@example.com").unwrap();
    server
        .add_domain(&Domain::parse("example.com").unwrap(), t0)
        .await
        .unwrap();
    let account = Account {
        id: alice.clone(),
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
    server
        .insert_account(&account, &credentials, &[])
        .await
        .unwrap();

    let mut held = server.begin_account(&alice).await.unwrap();
    held.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    let writer = {
        let cli = cli.clone();
        let alice = alice.clone();
        tokio::spawn(async move {
            let rule = AcceptRule {
                days: DaysMask::new(31).unwrap(),
                start: ClockTime::parse_for("start", "09:00").unwrap(),
                stop: ClockTime::parse_for("stop", "17:00").unwrap(),
                groups: vec![Group::Everybody],
            };
            let replaced = cli.put_accept_rule(&alice, &rule).await;
            let mut w = cli.begin_account(&alice).await?;
            w.apply(&AccountOp::SetPrivacy(false)).await?;
            w.commit(&[]).await?;
            replaced
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the second process did not wait");
    held.commit(&[]).await.unwrap();
    assert!(
        !writer.await.unwrap().unwrap(),
        "no rule was there to replace"
    );
    let rules = server.get_accept_rules(&alice).await.unwrap();
    assert_eq!(rules.persistent.len(), 1);
    assert!(!server.get_account(&alice).await.unwrap().unwrap().privacy);
    server.close().await;
    cli.close().await;
}
