//! The cases of [`Journal`](sip_settings_core::store::Journal): the journal.

use super::*;

/// The journal keeps entries per account, newest first, pages with a cursor, and outlives the
/// account.
pub async fn journal_newest_first_with_cursor(store: Arc<dyn Store>) {
    use sip_settings_core::journal::NewJournalEntry;
    seed(&store).await;
    let alice = id("alice@example.com");
    // Journal entries are written only with a change: here, empty account writes.
    for i in 0..5i64 {
        let w = store.begin_account(&alice).await.unwrap();
        w.commit(&[NewJournalEntry {
            at: t0() + Duration::seconds(i),
            account: alice.clone(),
            door: "cli".into(),
            actor: "operator root".into(),
            source: (i % 2 == 0).then(|| "192.0.2.7".to_owned()),
            resource: format!("r{i}"),
            old: None,
            new: Some(format!("v{i}")),
        }])
        .await
        .unwrap();
    }
    let first = store.list_journal(&alice, None, 3).await.unwrap();
    let names: Vec<&str> = first.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["r4", "r3", "r2"]);
    assert_eq!(first[0].entry.at, t0() + Duration::seconds(4));
    assert_eq!(first[0].entry.source.as_deref(), Some("192.0.2.7"));
    let rest = store
        .list_journal(&alice, Some(first[2].id), 3)
        .await
        .unwrap();
    let names: Vec<&str> = rest.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["r1", "r0"]);
    assert!(
        store
            .list_journal(&id("bob@example.com"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_account(&alice, t0(), &[]).await.unwrap();
    assert_eq!(store.list_journal(&alice, None, 10).await.unwrap().len(), 5);
}

/// What the ops listener asks: a migrated store has no pending migration, its figures are
/// metric families with a pool, and after `shut_down` it answers no more.
pub async fn operations_schema_figures_and_shut_down(store: Arc<dyn Store>) {
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.open_prepaid_session_count().await.unwrap(), 0);
    let mut text = String::new();
    store.render_metrics(&mut text);
    assert!(
        text.contains("# TYPE sip_settings_store_pool_connections gauge\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("sip_settings_store_pool_connections{store=")),
        "{text}"
    );
    seed(&store).await;
    store.shut_down().await;
    assert!(
        store.get_account(&id("alice@example.com")).await.is_err()
            || store.list_domains().await.is_err(),
        "a store that was shut down still answers"
    );
}

/// The journal of a domain holds the entries of its accounts (deleted ones too) and of no other
/// domain's, newest first, paged with the same cursor; a domain that is a suffix of another's
/// name (`ample.com` of `example.com`) is not mixed in.
pub async fn journal_across_a_domain(store: Arc<dyn Store>) {
    use sip_settings_core::journal::NewJournalEntry;
    seed(&store).await;
    for d in ["example.org", "ample.com"] {
        store
            .add_domain(&Domain::parse(d).unwrap(), t0())
            .await
            .unwrap();
    }
    let carol = id("carol@example.org");
    let dave = id("dave@ample.com");
    for a in [&carol, &dave] {
        store
            .insert_account(&account(&a.to_string()), &creds("c"), &[])
            .await
            .unwrap();
    }
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    let order = [&alice, &carol, &bob, &dave, &alice, &bob];
    for (i, who) in (0i64..).zip(order) {
        let w = store.begin_account(who).await.unwrap();
        w.commit(&[NewJournalEntry {
            at: t0() + Duration::seconds(i),
            account: who.clone(),
            door: "admin".into(),
            actor: "admin ops (serial 01)".into(),
            source: None,
            resource: format!("r{i}"),
            old: None,
            new: None,
        }])
        .await
        .unwrap();
    }
    let example = Domain::parse("example.com").unwrap();
    let first = store.list_domain_journal(&example, None, 3).await.unwrap();
    let seen: Vec<(String, &str)> = first
        .iter()
        .map(|e| (e.entry.account.to_string(), e.entry.resource.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("bob@example.com".to_owned(), "r5"),
            ("alice@example.com".to_owned(), "r4"),
            ("bob@example.com".to_owned(), "r2"),
        ]
    );
    assert_eq!(first[0].entry.actor, "admin ops (serial 01)");
    let rest = store
        .list_domain_journal(&example, Some(first[2].id), 3)
        .await
        .unwrap();
    let names: Vec<&str> = rest.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["r0"]);
    let ample = store
        .list_domain_journal(&Domain::parse("ample.com").unwrap(), None, 10)
        .await
        .unwrap();
    let names: Vec<&str> = ample.iter().map(|e| e.entry.resource.as_str()).collect();
    assert_eq!(names, ["r3"]);
    // The deletion's own entry is written with it, and the account's entries stay.
    let deleted = NewJournalEntry {
        at: t0() + Duration::seconds(9),
        account: alice.clone(),
        door: "admin".into(),
        actor: "admin ops (serial 01)".into(),
        source: None,
        resource: "account".into(),
        old: Some("created".into()),
        new: Some("deleted".into()),
    };
    store
        .delete_account(&alice, t0(), &[deleted])
        .await
        .unwrap();
    let all = store.list_domain_journal(&example, None, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].entry.new.as_deref(), Some("deleted"));
    assert_eq!(store.list_journal(&alice, None, 10).await.unwrap().len(), 3);
}
