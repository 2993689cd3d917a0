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
    store.delete_account(&alice, t0()).await.unwrap();
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
