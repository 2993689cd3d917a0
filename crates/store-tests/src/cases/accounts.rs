//! The cases of [`Accounts`](sip_settings_core::store::Accounts):
//! domains, accounts and their writes.

use super::*;

/// Domains: add, duplicate, list, exists.
pub async fn domains(store: Arc<dyn Store>) {
    let b = Domain::parse("b.example").unwrap();
    let a = Domain::parse("a.example").unwrap();
    store.add_domain(&b, t0()).await.unwrap();
    store.add_domain(&a, t0()).await.unwrap();
    assert!(matches!(
        store.add_domain(&a, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_domains().await.unwrap(), vec![a.clone(), b]);
    assert!(store.domain_exists(&a).await.unwrap());
    assert!(
        !store
            .domain_exists(&Domain::parse("c.example").unwrap())
            .await
            .unwrap()
    );
}

/// The per-domain HTTP Digest switch: on by default, off and on again, per domain; unknown
/// domains are `None` and cannot be switched.
pub async fn domain_digest_switch(store: Arc<dyn Store>) {
    let a = Domain::parse("a.example").unwrap();
    let b = Domain::parse("b.example").unwrap();
    let c = Domain::parse("c.example").unwrap();
    store.add_domain(&a, t0()).await.unwrap();
    store.add_domain(&b, t0()).await.unwrap();
    assert_eq!(store.domain_digest(&a).await.unwrap(), Some(true));
    store.set_domain_digest(&a, false).await.unwrap();
    assert_eq!(store.domain_digest(&a).await.unwrap(), Some(false));
    assert_eq!(store.domain_digest(&b).await.unwrap(), Some(true));
    store.set_domain_digest(&a, true).await.unwrap();
    assert_eq!(store.domain_digest(&a).await.unwrap(), Some(true));
    assert_eq!(store.domain_digest(&c).await.unwrap(), None);
    assert!(matches!(
        store.set_domain_digest(&c, false).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Accounts: insert, get, list, duplicates, unknown domain, update, credentials.
pub async fn accounts_and_credentials(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let got = store.get_account(&alice).await.unwrap().unwrap();
    assert_eq!(got, account("alice@example.com"));
    assert!(matches!(
        store
            .insert_account(&account("alice@example.com"), &creds("x"), &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .insert_account(&account("carol@nowhere.example"), &creds("x"), &[])
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .add_domain(&Domain::parse("other.example").unwrap(), t0())
        .await
        .unwrap();
    store
        .insert_account(&account("zed@other.example"), &creds("z"), &[])
        .await
        .unwrap();
    let all: Vec<String> = store
        .list_accounts(None)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(
        all,
        ["alice@example.com", "bob@example.com", "zed@other.example"]
    );
    let some = store
        .list_accounts(Some(&Domain::parse("other.example").unwrap()))
        .await
        .unwrap();
    assert_eq!(some.len(), 1);

    let profile = AccountProfile {
        first_name: "Alice".into(),
        timezone: sip_settings_core::TimeZone::parse_for("tz", "Asia/Tokyo").unwrap(),
        mobile: Some(E164::parse_for("m", "+31612345678").unwrap()),
        no_answer_timeout: 20,
        ..AccountProfile::default()
    };
    store.update_account(&alice, &profile, true).await.unwrap();
    let got = store.get_account(&alice).await.unwrap().unwrap();
    assert_eq!(got.profile, profile);
    assert!(got.prepaid);
    assert!(matches!(
        store
            .update_account(&id("nobody@example.com"), &profile, false)
            .await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(
        store.get_credentials(&alice).await.unwrap().unwrap(),
        creds("a")
    );
    let real =
        Credentials::derive(&alice, &Password::parse_for("p", "a-new-password").unwrap()).unwrap();
    store.set_credentials(&alice, &real).await.unwrap();
    // Every value is kept, the whole-address HA1s (`ha1b`) too.
    let stored = store.get_credentials(&alice).await.unwrap().unwrap();
    assert_eq!(stored, real);
    assert!(stored.ha1b.is_some());
    assert!(stored.verify(&Password::offered("a-new-password")));
    assert!(matches!(
        store
            .set_credentials(&id("nobody@example.com"), &real)
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.set_privacy(&alice, true).await.unwrap();
    assert!(store.get_account(&alice).await.unwrap().unwrap().privacy);
    assert!(
        store
            .get_account(&id("nobody@example.com"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Deleting an account removes its settings and aliases and revokes its certificates.
pub async fn account_delete_cascades_and_revokes(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    store
        .insert_certificate(&cert(
            "0A01",
            Some("alice@example.com"),
            CertRole::Subscriber,
        ))
        .await
        .unwrap();
    store
        .insert_certificate(&cert(
            "0A02",
            Some("alice@example.com"),
            CertRole::Subscriber,
        ))
        .await
        .unwrap();
    store
        .insert_certificate(&cert("0B01", Some("bob@example.com"), CertRole::Subscriber))
        .await
        .unwrap();
    assert_eq!(
        store
            .add_alias(&id("al@example.com"), &alice, 20)
            .await
            .unwrap(),
        AliasOutcome::Added
    );
    store
        .add_enum(&E164::parse_for("n", "+31201234567").unwrap(), &alice)
        .await
        .unwrap();
    store
        .set_diversions(
            &alice,
            &[(Condition::Busy, Some(DiversionTarget::VoiceMailbox))],
        )
        .await
        .unwrap();
    let at = t0() + Duration::hours(1);
    assert_eq!(store.delete_account(&alice, at, &[]).await.unwrap(), 2);
    assert!(store.get_account(&alice).await.unwrap().is_none());
    assert!(
        store
            .resolve_address(&id("al@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resolve_enum(&E164::parse_for("n", "+31201234567").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let certs = store.list_certificates(Some(&alice)).await.unwrap();
    assert_eq!(certs.len(), 2, "certificate records outlive the account");
    assert!(certs.iter().all(|c| c.revoked_at == Some(at)));
    assert!(
        store
            .get_certificate(&Serial::parse("0B01").unwrap())
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    // The address is free again.
    store
        .insert_account(&account("al@example.com"), &creds("x"), &[])
        .await
        .unwrap();
    assert!(matches!(
        store.delete_account(&alice, at, &[]).await,
        Err(StoreError::NotFound(_))
    ));
}

/// An account write commits its changes and journal entries together, or — dropped without a
/// commit — leaves nothing, neither the change nor an entry.
pub async fn account_write_commits_change_and_journal_together(store: Arc<dyn Store>) {
    use sip_settings_core::journal::NewJournalEntry;
    use sip_settings_core::store::AccountOp;
    seed(&store).await;
    let alice = id("alice@example.com");
    let entry = |resource: &str| NewJournalEntry {
        at: t0(),
        account: alice.clone(),
        door: "v1".into(),
        actor: "certificate 01".into(),
        source: None,
        resource: resource.into(),
        old: Some("false".into()),
        new: Some("true".into()),
    };
    let funk = DiversionTarget::parse(Condition::Unconditional, "bob", &alice).unwrap();
    let changes = [
        AccountOp::SetPrivacy(true),
        AccountOp::SetDiversions(vec![(Condition::Unconditional, Some(funk.clone()))]),
    ];

    let mut w = store.begin_account(&alice).await.unwrap();
    for op in &changes {
        w.apply(op).await.unwrap();
    }
    drop(w);
    assert!(!store.get_account(&alice).await.unwrap().unwrap().privacy);
    assert_eq!(
        store
            .get_diversions(&alice)
            .await
            .unwrap()
            .get(&Condition::Unconditional),
        None
    );
    assert!(
        store
            .list_journal(&alice, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut w = store.begin_account(&alice).await.unwrap();
    for op in &changes {
        w.apply(op).await.unwrap();
    }
    w.commit(&[entry("privacy"), entry("diversions.FUNC")])
        .await
        .unwrap();
    assert!(store.get_account(&alice).await.unwrap().unwrap().privacy);
    assert_eq!(
        store
            .get_diversions(&alice)
            .await
            .unwrap()
            .get(&Condition::Unconditional),
        Some(&funk)
    );
    let journal = store.list_journal(&alice, None, 10).await.unwrap();
    let names: Vec<&str> = journal.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["diversions.FUNC", "privacy"]);

    // An op the store refuses (a duplicate) fails without ending the others' transaction.
    let mut w = store.begin_account(&alice).await.unwrap();
    let number = E164::parse_for("n", "+31201234567").unwrap();
    w.apply(&AccountOp::AddEnum(number.clone())).await.unwrap();
    w.commit(&[]).await.unwrap();
    let mut w = store.begin_account(&alice).await.unwrap();
    assert!(matches!(
        w.apply(&AccountOp::AddEnum(number)).await,
        Err(StoreError::Conflict(_))
    ));
    drop(w);

    assert!(matches!(
        store.begin_account(&id("nobody@example.com")).await,
        Err(StoreError::NotFound(_))
    ));
}

/// The changes of one write land as if applied one after another, whatever a store batches:
/// later changes of a condition replace earlier ones, a change of something else in between
/// keeps its place, and the journal entries keep their order.
pub async fn changes_of_one_write_land_in_order(store: Arc<dyn Store>) {
    use sip_settings_core::journal::NewJournalEntry;
    use sip_settings_core::store::AccountOp;
    seed(&store).await;
    let alice = id("alice@example.com");
    let target = |c: Condition, s: &str| Some(DiversionTarget::parse(c, s, &alice).unwrap());
    let entry = |resource: &str| NewJournalEntry {
        at: t0(),
        account: alice.clone(),
        door: "v1".into(),
        actor: "certificate 01".into(),
        source: Some("192.0.2.1".into()),
        resource: resource.into(),
        old: None,
        new: Some("x".into()),
    };
    let (func, fbus, fnoa, fnol) = (
        Condition::Unconditional,
        Condition::Busy,
        Condition::NoAnswer,
        Condition::NotOnline,
    );
    let mut w = store.begin_account(&alice).await.unwrap();
    w.apply(&AccountOp::SetDiversions(vec![(
        fnol,
        target(fnol, "carol"),
    )]))
    .await
    .unwrap();
    w.commit(&[]).await.unwrap();

    let mut w = store.begin_account(&alice).await.unwrap();
    let ops = [
        AccountOp::SetDiversions(vec![
            (func, target(func, "bob")),
            (fbus, target(fbus, "dave")),
        ]),
        AccountOp::SetPrivacy(true),
        AccountOp::SetDiversions(vec![
            (fbus, None),
            (fnoa, target(fnoa, "erin")),
            (fnol, None),
        ]),
        AccountOp::SetDiversions(vec![(fnoa, target(fnoa, "frank")), (func, None)]),
        AccountOp::SetDiversions(vec![(fbus, target(fbus, "grace"))]),
    ];
    for op in &ops {
        w.apply(op).await.unwrap();
    }
    w.commit(&[entry("first"), entry("second"), entry("third")])
        .await
        .unwrap();
    let now = store.get_diversions(&alice).await.unwrap();
    let expected: Vec<(Condition, DiversionTarget)> =
        [(fbus, target(fbus, "grace")), (fnoa, target(fnoa, "frank"))]
            .into_iter()
            .filter_map(|(c, t)| t.map(|t| (c, t)))
            .collect();
    let mut got: Vec<(Condition, DiversionTarget)> = now.into_iter().collect();
    got.sort_by_key(|(c, _)| c.code());
    assert_eq!(got, expected);
    assert!(store.get_account(&alice).await.unwrap().unwrap().privacy);
    let journal = store.list_journal(&alice, None, 10).await.unwrap();
    let names: Vec<&str> = journal.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["third", "second", "first"]);
    assert_eq!(journal[0].entry.source.as_deref(), Some("192.0.2.1"));
    assert_eq!(journal[0].entry.old, None);
}

/// While one account write is open, another writer of the same account waits for it, and then
/// reads what it committed: no write can land between a writer's reads and its commit.
pub async fn account_writes_of_one_account_run_one_after_another(store: Arc<dyn Store>) {
    use sip_settings_core::store::AccountOp;
    seed(&store).await;
    let alice = id("alice@example.com");
    let mut first = store.begin_account(&alice).await.unwrap();
    first.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
    let second = {
        let store = store.clone();
        let alice = alice.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut w = store.begin_account(&alice).await.unwrap();
            let waited = started.elapsed();
            let seen = store.get_account(&alice).await.unwrap().unwrap().privacy;
            w.apply(&AccountOp::SetPrivacy(false)).await.unwrap();
            w.commit(&[]).await.unwrap();
            (waited, seen)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second writer did not wait");
    first.commit(&[]).await.unwrap();
    let (waited, seen) = second.await.unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "waited {waited:?}"
    );
    assert!(
        seen,
        "the second writer read the state before the first one's commit"
    );
    assert!(!store.get_account(&alice).await.unwrap().unwrap().privacy);
}

/// Concurrent writes of many accounts (a group-committing store batches them into one commit):
/// each is read back by the time its commit returns, and a refused write among them (an
/// account that does not exist) fails alone.
pub async fn concurrent_account_writes_are_each_read_when_acknowledged(store: Arc<dyn Store>) {
    use sip_settings_core::store::AccountOp;
    seed(&store).await;
    let users: Vec<AccountId> = (0..24)
        .map(|i| id(&format!("user{i}@example.com")))
        .collect();
    for u in &users {
        store
            .insert_account(&account(&u.to_string()), &creds("p"), &[])
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for u in &users {
        let (store, u) = (store.clone(), u.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = store.begin_account(&u).await.unwrap();
            w.apply(&AccountOp::SetPrivacy(true)).await.unwrap();
            w.commit(&[]).await.unwrap();
            store.get_account(&u).await.unwrap().unwrap().privacy
        }));
    }
    let missing = store.begin_account(&id("nobody@example.com")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "a write of no account"
    );
    for (u, t) in users.iter().zip(tasks) {
        assert!(
            t.await.unwrap(),
            "{u}: its write was not read after its commit"
        );
    }
    assert!(
        !store
            .get_account(&id("alice@example.com"))
            .await
            .unwrap()
            .unwrap()
            .privacy
    );
}
