//! The cases of [`Billing`](sip_settings_core::store::Billing):
//! rates, balances, prepaid sessions and calls.

use super::*;

/// Rates: import adds/updates, replace replaces, longest prefix wins.
pub async fn rates_longest_prefix(store: Arc<dyn Store>) {
    store
        .import_rates(
            &[
                rate("31", "0.05", "0.10", 60, 60),
                rate("316", "0", "0.25", 1, 30),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_rate("31612345678")
            .await
            .unwrap()
            .unwrap()
            .prefix,
        "316"
    );
    assert_eq!(
        store
            .find_rate("31201234567")
            .await
            .unwrap()
            .unwrap()
            .prefix,
        "31"
    );
    assert!(store.find_rate("44201234567").await.unwrap().is_none());
    store
        .import_rates(&[rate("31", "0.07", "0.11", 60, 60)], false)
        .await
        .unwrap();
    let r = store.find_rate("3120").await.unwrap().unwrap();
    assert_eq!(r, rate("31", "0.07", "0.11", 60, 60));
    assert_eq!(store.list_rates().await.unwrap().len(), 2);
    store
        .import_rates(&[rate("44", "0", "0.02", 1, 0)], true)
        .await
        .unwrap();
    let all: Vec<String> = store
        .list_rates()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.prefix)
        .collect();
    assert_eq!(all, ["44"]);
}

/// Balance changes write the history in order with the balance after each.
pub async fn balance_changes_and_history(store: Arc<dyn Store>) {
    seed(&store).await;
    let bob = id("bob@example.com");
    assert_eq!(store.get_balance(&bob).await.unwrap(), Money::ZERO);
    let add = |v: &str, d: &str| BalanceChange::Add {
        value: money(v),
        action: "topup".into(),
        description: d.into(),
    };
    assert_eq!(
        store
            .change_balance(&bob, &add("10", "first"), t0(), None)
            .await
            .unwrap(),
        money("10")
    );
    assert_eq!(
        store
            .change_balance(
                &bob,
                &add("2.5", "second"),
                t0() + Duration::seconds(1),
                None
            )
            .await
            .unwrap(),
        money("12.5")
    );
    let set = BalanceChange::Set {
        value: money("3"),
        description: "fixed".into(),
    };
    assert_eq!(
        store
            .change_balance(&bob, &set, t0() + Duration::seconds(2), None)
            .await
            .unwrap(),
        money("3")
    );
    let h = store.balance_history(&bob, 10).await.unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].action, "set");
    assert_eq!(h[0].value, money("-9.5"));
    assert_eq!(h[0].balance, money("3"));
    assert_eq!(h[2].description, "first");
    assert!(h[0].id > h[1].id && h[1].id > h[2].id, "newest first");
    assert_eq!(store.balance_history(&bob, 2).await.unwrap().len(), 2);
    assert!(matches!(
        store.get_balance(&id("nobody@example.com")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .change_balance(&id("nobody@example.com"), &add("1", "x"), t0(), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

fn open_req(account: &str, call_id: &str, r: &Rate, cap: u32, max: u32) -> OpenRequest {
    OpenRequest {
        account: id(account),
        destination: E164::parse_for("d", "+31201234567").unwrap(),
        call_id: call_id.to_owned(),
        rate: r.clone(),
        max_session_seconds: cap,
        max_sessions: max,
        now: t0(),
    }
}

fn close_req(call_id: &str, duration: u32) -> CloseRequest {
    CloseRequest {
        call_id: call_id.to_owned(),
        duration,
        from_tag: "f".into(),
        to_tag: "t".into(),
        media: vec!["audio".into()],
        proxy_ip: String::new(),
        status: 200,
        now: t0() + Duration::seconds(i64::from(duration)),
        journal: None,
    }
}

/// Reservation on open, settlement on close, refusals, idempotence.
pub async fn prepaid_reservation_rules(store: Arc<dyn Store>) {
    seed(&store).await;
    let bob = id("bob@example.com");
    let r = rate("31", "0.05", "0.10", 60, 60);
    store
        .change_balance(
            &bob,
            &BalanceChange::Add {
                value: money("1.00"),
                action: "topup".into(),
                description: "t".into(),
            },
            t0(),
            None,
        )
        .await
        .unwrap();
    // 1.00 pays 0.05 + 9 minutes (0.90): 540 s, capped at 300 s → 300 s reserving 0.55.
    let OpenOutcome::Opened(s1) = store
        .open_prepaid_session(&open_req("bob@example.com", "c1", &r, 300, 10))
        .await
        .unwrap()
    else {
        panic!("c1 refused")
    };
    assert_eq!((s1.max_session_time, s1.reserved), (300, money("0.55")));
    // The same Call-ID again answers the open session.
    assert!(matches!(
        store.open_prepaid_session(&open_req("bob@example.com", "c1", &r, 300, 10)).await.unwrap(),
        OpenOutcome::AlreadyOpen(ref s) if s.call_id == "c1"
    ));
    // 0.45 left: 0.05 + 4 minutes → 240 s.
    let OpenOutcome::Opened(s2) = store
        .open_prepaid_session(&open_req("bob@example.com", "c2", &r, 300, 10))
        .await
        .unwrap()
    else {
        panic!("c2 refused")
    };
    assert_eq!((s2.max_session_time, s2.reserved), (240, money("0.45")));
    assert_eq!(
        store
            .open_prepaid_session(&open_req("bob@example.com", "c3", &r, 300, 10))
            .await
            .unwrap(),
        OpenOutcome::Refused(PrepaidRefusal::InsufficientBalance)
    );
    assert_eq!(
        store
            .open_prepaid_session(&open_req("bob@example.com", "c3", &r, 300, 2))
            .await
            .unwrap(),
        OpenOutcome::Refused(PrepaidRefusal::TooManySessions)
    );
    assert_eq!(
        store
            .open_prepaid_session(&open_req("alice@example.com", "c4", &r, 300, 10))
            .await
            .unwrap(),
        OpenOutcome::Refused(PrepaidRefusal::NotPrepaid)
    );
    assert_eq!(store.active_sessions(&bob).await.unwrap().len(), 2);
    assert_eq!(store.open_prepaid_session_count().await.unwrap(), 2);

    // Close c1 after 61 s: 0.05 + 2 minutes = 0.25.
    let closed = store
        .close_prepaid_session(&close_req("c1", 61))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(closed, CloseOutcome::Closed(_)));
    let closed = closed.into_session();
    let settlement = closed.closed.clone().unwrap();
    assert_eq!(
        (settlement.price, settlement.balance),
        (money("0.25"), money("0.75"))
    );
    let again = store
        .close_prepaid_session(&close_req("c1", 999))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(again, CloseOutcome::AlreadyClosed(_)),
        "a repeated close changes nothing"
    );
    assert_eq!(
        store.open_prepaid_session_count().await.unwrap(),
        1,
        "a closed session is not open"
    );
    let again = again.into_session();
    assert_eq!(
        again.closed, closed.closed,
        "closing twice answers the first result"
    );
    assert_eq!(store.get_balance(&bob).await.unwrap(), money("0.75"));
    let h = store.balance_history(&bob, 10).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].action.as_str(), h[0].value, h[0].session.as_deref()),
        ("debit", money("-0.25"), Some("c1"))
    );
    let calls = store
        .list_calls(&bob, Direction::Placed, t0() - Duration::days(1), 10)
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].price, Some(money("0.25")));
    assert_eq!(calls[0].duration, 61);
    assert_eq!(store.active_sessions(&bob).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .open_prepaid_session(&open_req("bob@example.com", "c1", &r, 300, 10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .close_prepaid_session(&close_req("nope", 1))
            .await
            .unwrap()
            .is_none()
    );
}

/// 50 opens at once on one balance never reserve more than it.
pub async fn prepaid_concurrent_opens_never_overdraw(store: Arc<dyn Store>) {
    seed(&store).await;
    let bob = id("bob@example.com");
    store
        .change_balance(
            &bob,
            &BalanceChange::Add {
                value: money("5.00"),
                action: "topup".into(),
                description: "t".into(),
            },
            t0(),
            None,
        )
        .await
        .unwrap();
    let r = rate("31", "0", "0.10", 60, 60);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            store
                .open_prepaid_session(&open_req("bob@example.com", &format!("k{i}"), &r, 600, 100))
                .await
        }));
    }
    let mut reserved = Money::ZERO;
    let mut granted = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            OpenOutcome::Opened(s) => {
                assert!(r.price(s.max_session_time) <= s.reserved);
                reserved = reserved + s.reserved;
                granted.push(s);
            }
            OpenOutcome::Refused(PrepaidRefusal::InsufficientBalance) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(reserved <= money("5.00"), "reserved {reserved} of 5.00");
    // 600 s at 0.10/min is 1.00: exactly five sessions fit.
    assert_eq!(granted.len(), 5);
    for s in &granted {
        store
            .close_prepaid_session(&close_req(&s.call_id, s.max_session_time))
            .await
            .unwrap();
    }
    assert_eq!(store.get_balance(&bob).await.unwrap(), Money::ZERO);
}

/// A call is stored once per (Call-ID, tags), for each local party.
pub async fn call_records_are_idempotent(store: Arc<dyn Store>) {
    seed(&store).await;
    let c = call(
        "x1",
        "sip:alice@example.com",
        "sip:bob@example.com",
        t0(),
        30,
    );
    let new = NewCall {
        record: c.clone(),
        parties: vec![
            (id("alice@example.com"), Direction::Placed),
            (id("bob@example.com"), Direction::Received),
        ],
    };
    assert_eq!(
        store
            .record_calls(std::slice::from_ref(&new))
            .await
            .unwrap(),
        vec![true]
    );
    assert_eq!(
        store
            .record_calls(std::slice::from_ref(&new))
            .await
            .unwrap(),
        vec![false]
    );
    let mut other_leg = new.clone();
    other_leg.record.to_tag = "t2".into();
    assert_eq!(
        store.record_calls(&[new.clone(), other_leg]).await.unwrap(),
        vec![false, true]
    );
    // The same call twice in one batch: stored once, the second a replay.
    let mut third_leg = new.clone();
    third_leg.record.to_tag = "t3".into();
    assert_eq!(
        store
            .record_calls(&[third_leg.clone(), third_leg.clone()])
            .await
            .unwrap(),
        vec![true, false]
    );
    let since = t0() - Duration::days(1);
    let placed = store
        .list_calls(&id("alice@example.com"), Direction::Placed, since, 10)
        .await
        .unwrap();
    assert_eq!(placed.len(), 3);
    assert_eq!(placed.iter().find(|p| p.to_tag == "t").unwrap(), &c);
    assert_eq!(
        store
            .list_calls(&id("bob@example.com"), Direction::Received, since, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .list_calls(&id("bob@example.com"), Direction::Placed, since, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Listing by direction, time and limit, newest first; usage over a range.
pub async fn calls_listing_and_usage(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let mut batch = Vec::new();
    for i in 0..20i64 {
        let mut c = call(
            &format!("c{i}"),
            "sip:alice@example.com",
            "sip:+31201234567@pstn.example",
            t0() + Duration::hours(i),
            60,
        );
        c.price = Some(Money::from_units(1000 * (i + 1)));
        batch.push(NewCall {
            record: c,
            parties: vec![(alice.clone(), Direction::Placed)],
        });
    }
    assert_eq!(
        store
            .record_calls(&batch)
            .await
            .unwrap()
            .iter()
            .filter(|n| **n)
            .count(),
        20
    );
    let latest = store
        .list_calls(&alice, Direction::Placed, t0(), 5)
        .await
        .unwrap();
    let ids: Vec<&str> = latest.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["c19", "c18", "c17", "c16", "c15"]);
    let since = store
        .list_calls(&alice, Direction::Placed, t0() + Duration::hours(18), 50)
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    let u = store
        .usage(&alice, t0(), t0() + Duration::hours(10))
        .await
        .unwrap();
    assert_eq!((u.calls, u.duration), (10, 600));
    assert_eq!(u.price, Money::from_units(1000 * (1..=10).sum::<i64>()));
    let none = store
        .usage(&id("bob@example.com"), t0(), t0() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!((none.calls, none.price), (0, Money::ZERO));
}

/// Exporting an account's billing state and importing it elsewhere gives the same state.
pub async fn billing_export_import_round_trip(store: Arc<dyn Store>) {
    seed(&store).await;
    let bob = id("bob@example.com");
    store
        .change_balance(
            &bob,
            &BalanceChange::Add {
                value: money("3"),
                action: "topup".into(),
                description: "t".into(),
            },
            t0(),
            None,
        )
        .await
        .unwrap();
    let r = rate("31", "0", "0.10", 60, 60);
    store
        .open_prepaid_session(&open_req("bob@example.com", "s1", &r, 120, 10))
        .await
        .unwrap();
    store
        .open_prepaid_session(&open_req("bob@example.com", "s2", &r, 120, 10))
        .await
        .unwrap();
    store
        .close_prepaid_session(&close_req("s1", 30))
        .await
        .unwrap();
    let snap = store.export_billing(&bob).await.unwrap();
    assert_eq!(snap.history.len(), 2);
    assert_eq!(snap.sessions.len(), 2);
    assert_eq!(snap.balance, money("2.9"));
    // Into a second account with no billing state.
    store.delete_account(&bob, t0(), &[]).await.unwrap();
    let mut fresh = account("bob@example.com");
    fresh.prepaid = true;
    store
        .insert_account(&fresh, &creds("b"), &[])
        .await
        .unwrap();
    store.import_billing(&bob, &snap).await.unwrap();
    let back = store.export_billing(&bob).await.unwrap();
    assert_eq!(back.balance, snap.balance);
    assert_eq!(back.sessions, snap.sessions);
    let strip = |h: &[sip_settings_core::calls::HistoryEntry]| -> Vec<_> {
        h.iter()
            .map(|e| {
                (
                    e.at,
                    e.action.clone(),
                    e.description.clone(),
                    e.value,
                    e.balance,
                    e.session.clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&back.history), strip(&snap.history));
    assert_eq!(store.active_sessions(&bob).await.unwrap().len(), 1);
}

/// A close never overdraws: a duration longer than the grant is billed the grant (and the
/// history says so, while the call record keeps the reported duration), and the debit is at
/// most the session's reservation and the balance left at the close.
pub async fn prepaid_close_never_overdraws(store: Arc<dyn Store>) {
    seed(&store).await;
    let bob = id("bob@example.com");
    let topup = |v: &str| BalanceChange::Add {
        value: money(v),
        action: "topup".into(),
        description: "t".into(),
    };
    store
        .change_balance(&bob, &topup("1.00"), t0(), None)
        .await
        .unwrap();
    // 0.10 per minute: A gets 300 s for 0.50 (the cap), B the other 0.50 (300 s).
    let r = rate("31", "0", "0.10", 60, 60);
    for call_id in ["a", "b"] {
        let OpenOutcome::Opened(s) = store
            .open_prepaid_session(&open_req("bob@example.com", call_id, &r, 300, 10))
            .await
            .unwrap()
        else {
            panic!("{call_id} refused")
        };
        assert_eq!((s.max_session_time, s.reserved), (300, money("0.50")));
    }
    // The proxy reports 50 minutes for A (5.00 at the rate): 300 s are billed, 0.50.
    let a = store
        .close_prepaid_session(&close_req("a", 3000))
        .await
        .unwrap()
        .unwrap()
        .into_session();
    let settled = a.closed.clone().unwrap();
    assert_eq!(
        (settled.duration, settled.price, settled.balance),
        (3000, money("0.50"), money("0.50")),
        "A debits its reservation, not the reported duration's price"
    );
    assert_eq!(store.get_balance(&bob).await.unwrap(), money("0.50"));
    let h = store.balance_history(&bob, 1).await.unwrap();
    assert_eq!(
        (h[0].action.as_str(), h[0].value, h[0].balance),
        ("debit", money("-0.50"), money("0.50"))
    );
    assert_eq!(
        h[0].description,
        "Call to +31201234567 (rate 31), 300 s billed of 3000 s reported (capped at the granted 300 s)"
    );
    let calls = store
        .list_calls(&bob, Direction::Placed, t0() - Duration::days(1), 10)
        .await
        .unwrap();
    assert_eq!(
        (calls[0].call_id.as_str(), calls[0].duration, calls[0].price),
        ("a", 3000, Some(money("0.50"))),
        "the call record keeps the reported duration and the price billed"
    );
    // A closed first, so B's reservation is still there: B is billed in full, to zero.
    let b = store
        .close_prepaid_session(&close_req("b", 4000))
        .await
        .unwrap()
        .unwrap()
        .into_session();
    assert_eq!(b.closed.unwrap().balance, Money::ZERO);
    assert_eq!(store.get_balance(&bob).await.unwrap(), Money::ZERO);
    // A repeated close with another duration changes nothing.
    assert!(matches!(
        store.close_prepaid_session(&close_req("a", 9000)).await.unwrap(),
        Some(CloseOutcome::AlreadyClosed(ref s)) if s.closed == a.closed
    ));

    // The balance lowered below a reservation since the grant (an operator's `balance set`):
    // the debit is what is left, never below zero.
    store
        .change_balance(&bob, &topup("1.00"), t0(), None)
        .await
        .unwrap();
    let OpenOutcome::Opened(c) = store
        .open_prepaid_session(&open_req("bob@example.com", "c", &r, 600, 10))
        .await
        .unwrap()
    else {
        panic!("c refused")
    };
    assert_eq!(c.reserved, money("1.00"));
    let set = BalanceChange::Set {
        value: money("0.30"),
        description: "correction".into(),
    };
    store.change_balance(&bob, &set, t0(), None).await.unwrap();
    let c = store
        .close_prepaid_session(&close_req("c", 600))
        .await
        .unwrap()
        .unwrap()
        .into_session();
    let settled = c.closed.unwrap();
    assert_eq!(
        (settled.price, settled.balance),
        (money("0.30"), Money::ZERO)
    );
    let h = store.balance_history(&bob, 1).await.unwrap();
    assert_eq!((h[0].value, h[0].balance), (money("-0.30"), Money::ZERO));
    assert_eq!(
        h[0].description,
        "Call to +31201234567 (rate 31), 600 s, 0.3000 of 1.0000 debited (limited to the balance)"
    );
    let history = store.balance_history(&bob, 100).await.unwrap();
    assert!(
        history.iter().all(|e| e.balance >= Money::ZERO),
        "the balance never went below zero: {history:?}"
    );
}

/// A batch stores exactly what storing its records one by one would: a record stored already or
/// earlier in the batch is a replay, and a replay's price fills in a missing one (the first
/// such price wins); each new record's parties are stored once.
pub async fn call_record_batches_match_one_by_one(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let new = |call_id: &str, price: Option<&str>| {
        let mut c = call(
            call_id,
            "sip:alice@example.com",
            "sip:bob@example.com",
            t0(),
            30,
        );
        c.price = price.map(money);
        NewCall {
            record: c,
            parties: vec![
                (alice.clone(), Direction::Placed),
                (id("bob@example.com"), Direction::Received),
            ],
        }
    };
    assert_eq!(
        store.record_calls(&[new("a", None)]).await.unwrap(),
        vec![true]
    );
    let batch = [
        new("z", None),
        new("a", Some("0.50")),
        new("a", Some("0.70")),
        new("b", None),
        new("b", Some("0.30")),
        new("z", Some("0.90")),
        new("c", Some("0.10")),
    ];
    assert_eq!(
        store.record_calls(&batch).await.unwrap(),
        vec![true, false, false, true, false, false, true]
    );
    let since = t0() - Duration::days(1);
    let placed = store
        .list_calls(&alice, Direction::Placed, since, 50)
        .await
        .unwrap();
    let price = |call_id: &str| {
        let found: Vec<_> = placed.iter().filter(|c| c.call_id == call_id).collect();
        assert_eq!(found.len(), 1, "{call_id}: {found:?}");
        found.first().and_then(|c| c.price)
    };
    assert_eq!(price("a"), Some(money("0.50")));
    assert_eq!(price("b"), Some(money("0.30")));
    assert_eq!(price("z"), Some(money("0.90")));
    assert_eq!(price("c"), Some(money("0.10")));
    assert_eq!(placed.len(), 4);
    let received = store
        .list_calls(&id("bob@example.com"), Direction::Received, since, 50)
        .await
        .unwrap();
    assert_eq!(received.len(), 4);
    assert_eq!(store.record_calls(&batch).await.unwrap(), vec![false; 7]);
}
