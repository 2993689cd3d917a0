//! The cases of [`ChatJournal`](sip_settings_core::store::ChatJournal): the chat journal.

use sip_settings_core::chat_journal::{ChatBounds, ChatQuery, DeviceId};

use super::*;

fn device(s: &str) -> DeviceId {
    DeviceId::parse_for("uuid", s).unwrap()
}

fn query(after_id: i64, since: i64, except: Option<&str>, limit: u32) -> ChatQuery {
    ChatQuery {
        after_id,
        since,
        except_device: except.map(device),
        limit,
    }
}

fn data(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Entries are kept per account in id order with their device and time; the filters
/// (`after_id`, `since` inclusive, `except_device`) and `limit` hold; the summary lists every
/// entry; a delete removes only the caller's own entries.
pub async fn chat_journal_filters_limit_and_own_deletes(store: Arc<dyn Store>) {
    seed(&store).await;
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    let (mac, phone) = (device("mac-1"), device("phone-2"));
    let big = ChatBounds::DEFAULT;
    let t1 = t0() + Duration::seconds(1);
    let first = store
        .put_chat_entries(&alice, &mac, &data(&["a1", "a2"]), t0(), big)
        .await
        .unwrap();
    assert_eq!(first.ids.len(), 2);
    assert!(first.ids[0] < first.ids[1], "{:?}", first.ids);
    assert_eq!(first.dropped, 0);
    let second = store
        .put_chat_entries(&alice, &phone, &data(&["a3"]), t1, big)
        .await
        .unwrap();
    let bobs = store
        .put_chat_entries(&bob, &mac, &data(&["b1"]), t1, big)
        .await
        .unwrap();
    assert!(second.ids[0] > first.ids[1]);

    let all = store
        .chat_entries(&alice, &query(0, 0, None, 100))
        .await
        .unwrap();
    let got: Vec<(&str, &str, DateTime<Utc>)> = all
        .iter()
        .map(|e| (e.data.as_str(), e.device.as_str(), e.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a1", "mac-1", t0()),
            ("a2", "mac-1", t0()),
            ("a3", "phone-2", t1)
        ]
    );
    // limit really limits, lowest ids first; after_id pages on.
    let page = store
        .chat_entries(&alice, &query(0, 0, None, 2))
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let rest = store
        .chat_entries(&alice, &query(page[1].id, 0, None, 2))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["a3"]
    );
    // since is inclusive (an entry of the same second as the last one seen is not lost).
    let since = store
        .chat_entries(&alice, &query(0, t1.timestamp(), None, 100))
        .await
        .unwrap();
    assert_eq!(
        since.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["a3"]
    );
    let later = store
        .chat_entries(&alice, &query(0, t1.timestamp() + 1, None, 100))
        .await
        .unwrap();
    assert!(later.is_empty());
    // except_device leaves out that device's entries.
    let others = store
        .chat_entries(&alice, &query(0, 0, Some("mac-1"), 100))
        .await
        .unwrap();
    assert_eq!(
        others.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["a3"]
    );
    // The summary: every entry of the account, id and time, lowest first.
    let summary = store.chat_summary(&alice).await.unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|s| (s.id, s.timestamp))
            .collect::<Vec<_>>(),
        vec![
            (first.ids[0], t0()),
            (first.ids[1], t0()),
            (second.ids[0], t1)
        ]
    );

    // A delete removes only the caller's entries: bob's id named by alice stays.
    let deleted = store
        .delete_chat_entries(&alice, &[first.ids[0], bobs.ids[0], 999_999_999])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(store.chat_summary(&alice).await.unwrap().len(), 2);
    assert_eq!(
        store.chat_summary(&bob).await.unwrap()[0].id,
        bobs.ids[0],
        "bob's entry must survive alice's delete"
    );
    // Deleting again deletes nothing.
    assert_eq!(
        store
            .delete_chat_entries(&alice, &[first.ids[0]])
            .await
            .unwrap(),
        0
    );
    // A deleted id is never given again.
    store
        .delete_chat_entries(&alice, &[second.ids[0]])
        .await
        .unwrap();
    let next = store
        .put_chat_entries(&alice, &mac, &data(&["a4"]), t1, big)
        .await
        .unwrap();
    assert!(next.ids[0] > second.ids[0], "{next:?} after {second:?}");

    // An unknown account has nothing and cannot store.
    let carol = id("carol@example.com");
    assert!(store.chat_summary(&carol).await.unwrap().is_empty());
    assert!(matches!(
        store
            .put_chat_entries(&carol, &mac, &data(&["x"]), t0(), big)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Beyond its bounds (entries or bytes) an account drops its oldest entries in the put that
/// went over; other accounts are untouched; concurrent puts together stay within the bounds;
/// deleting the account deletes its entries.
pub async fn chat_journal_bounds_drop_oldest_and_account_delete(store: Arc<dyn Store>) {
    seed(&store).await;
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    let mac = device("mac-1");
    let bounds = ChatBounds {
        max_entries: 3,
        max_bytes: 8,
    };
    store
        .put_chat_entries(&bob, &mac, &data(&["b1"]), t0(), bounds)
        .await
        .unwrap();
    let put = store
        .put_chat_entries(&alice, &mac, &data(&["1", "2", "3"]), t0(), bounds)
        .await
        .unwrap();
    assert_eq!(put.dropped, 0);
    let put = store
        .put_chat_entries(&alice, &mac, &data(&["4", "5"]), t0(), bounds)
        .await
        .unwrap();
    assert_eq!(put.dropped, 2);
    let kept = |store: Arc<dyn Store>, who: AccountId| async move {
        store
            .chat_entries(&who, &query(0, 0, None, 100))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.data)
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(store.clone(), alice.clone()).await, ["3", "4", "5"]);
    // The byte bound, counted from the newest: "7777" 4, "6666" 8, then "5" would make 9 > 8.
    let put = store
        .put_chat_entries(&alice, &mac, &data(&["6666", "7777"]), t0(), bounds)
        .await
        .unwrap();
    assert_eq!(put.dropped, 3, "{put:?}");
    assert_eq!(kept(store.clone(), alice.clone()).await, ["6666", "7777"]);
    assert_eq!(kept(store.clone(), bob.clone()).await, ["b1"]);

    // Concurrent puts of one account together stay within the bounds.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let alice = alice.clone();
        let mac = mac.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_chat_entries(&alice, &mac, &[format!("c{i}")], t0(), bounds)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.chat_summary(&alice).await.unwrap().len(), 3);

    // Deleting the account deletes its entries; an account made again under the same address
    // starts with none.
    store.delete_account(&alice, t0(), &[]).await.unwrap();
    store
        .insert_account(&account("alice@example.com"), &creds("a"), &[])
        .await
        .unwrap();
    assert!(store.chat_summary(&alice).await.unwrap().is_empty());
    assert_eq!(kept(store.clone(), bob.clone()).await, ["b1"]);
}

/// An import (for `copy`) keeps ids, times, devices and data; later puts get ids above the
/// imported ones; a taken id is a conflict and stores nothing.
pub async fn chat_journal_import_keeps_ids(store: Arc<dyn Store>) {
    use sip_settings_core::chat_journal::ChatEntry;
    seed(&store).await;
    let (alice, bob) = (id("alice@example.com"), id("bob@example.com"));
    let entry = |id: i64, secs: i64, dev: &str, data: &str| ChatEntry {
        id,
        timestamp: t0() + Duration::seconds(secs),
        device: device(dev),
        data: data.to_owned(),
    };
    let imported = vec![entry(5, 0, "mac-1", "x5"), entry(9_000, 7, "phone-2", "x9")];
    assert_eq!(
        store.import_chat_entries(&alice, &imported).await.unwrap(),
        2
    );
    assert_eq!(
        store
            .chat_entries(&alice, &query(0, 0, None, 100))
            .await
            .unwrap(),
        imported
    );
    let put = store
        .put_chat_entries(
            &bob,
            &device("mac-1"),
            &data(&["b"]),
            t0(),
            ChatBounds::DEFAULT,
        )
        .await
        .unwrap();
    assert!(put.ids[0] > 9_000, "{put:?}");
    // A taken id: a conflict, and the other entry of that import is not stored either.
    assert!(matches!(
        store
            .import_chat_entries(
                &bob,
                &[
                    entry(12_345, 0, "mac-1", "new"),
                    entry(9_000, 0, "mac-1", "dup")
                ]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.chat_summary(&bob).await.unwrap().len(), 1);
    assert_eq!(store.chat_summary(&alice).await.unwrap().len(), 2);
}
