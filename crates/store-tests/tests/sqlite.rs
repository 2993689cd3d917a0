//! The conformance suite on the embedded SQLite store, a fresh file per test.

use std::sync::Arc;

use sip_settings_core::Store;
use sip_settings_store_sqlite::SqliteStore;
use sip_settings_store_tests::{Harness, conformance_suite};

struct Sqlite {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

#[async_trait::async_trait]
impl Harness for Sqlite {
    async fn start() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, true).await.ok()?;
        Some(Self {
            _dir: dir,
            store: Arc::new(store),
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
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
        password_hash: "$argon2id$stand-in".into(),
    };
    cli.insert_account(&account, &credentials, &[]).await.unwrap();
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

    cli.delete_account(&alice, t0).await.unwrap();
    assert!(server.get_account(&alice).await.unwrap().is_none());
    assert!(server.get_diversions(&alice).await.unwrap().is_empty());

    cli.close().await;
    server.close().await;
}
