//! The cases of [`Vouchers`](sip_settings_core::store::Vouchers): prepaid cards made in
//! batches, listed, disabled, and redeemed once, atomically, with their history and journal.

use sip_settings_core::journal::Stamp;
use sip_settings_core::voucher::{NewVoucher, Redeemed, Redemption, VoucherNumber, VoucherRefusal};

use super::*;

fn card(domain: &str, value: &str, number: &str) -> NewVoucher {
    NewVoucher {
        domain: Domain::parse(domain).unwrap(),
        value: money(value),
        number_hash: VoucherNumber::parse(number).unwrap().hash(),
        created_at: t0(),
        expires_at: Some(t0() + Duration::days(30)),
        created_by: "operator ops".to_owned(),
    }
}

fn redemption(card: i64, number: &str, account: &str, at: DateTime<Utc>) -> Redemption {
    Redemption {
        id: card,
        number_hash: VoucherNumber::parse(number).unwrap().hash(),
        account: id(account),
        journal: Stamp {
            at,
            door: "settings.phtml".to_owned(),
            actor: format!("digest {account}"),
            source: Some("192.0.2.7".to_owned()),
        },
    }
}

/// Domain example.org with a prepaid account carol, beside [`seed`]'s.
async fn seed_other_domain(store: &Arc<dyn Store>) {
    store
        .add_domain(&Domain::parse("example.org").unwrap(), t0())
        .await
        .unwrap();
    let mut carol = account("carol@example.org");
    carol.prepaid = true;
    store
        .insert_account(&carol, &creds("c"), &[])
        .await
        .unwrap();
}

/// A batch is stored in order, listed newest first per domain, disabled once; an unknown
/// domain stores nothing.
pub async fn vouchers_made_listed_and_disabled(store: Arc<dyn Store>) {
    seed(&store).await;
    seed_other_domain(&store).await;
    let com = Domain::parse("example.com").unwrap();
    let ids = store
        .create_vouchers(&[
            card("example.com", "10", "111"),
            card("example.com", "5.5", "222"),
            card("example.org", "1", "333"),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    let listed = store.list_vouchers(&com, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    assert_eq!(listed[0].value, money("5.5"));
    assert_eq!(listed[0].created_at, t0());
    assert_eq!(listed[0].expires_at, Some(t0() + Duration::days(30)));
    assert_eq!(listed[0].created_by, "operator ops");
    assert_eq!(listed[0].used_at, None);
    assert_eq!(store.list_vouchers(&com, 1).await.unwrap().len(), 1);
    let first = store.get_voucher(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.domain, com);
    assert_eq!(store.get_voucher(ids[2] + 100).await.unwrap(), None);

    let at = t0() + Duration::hours(1);
    let disabled = store.disable_voucher(ids[0], at).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(at));
    let again = store
        .disable_voucher(ids[0], at + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.disabled_at, Some(at), "the first time is kept");
    assert!(matches!(
        store.disable_voucher(ids[2] + 100, at).await,
        Err(StoreError::NotFound(_))
    ));

    let nowhere = store
        .create_vouchers(&[
            card("example.com", "1", "444"),
            card("nowhere.test", "1", "555"),
        ])
        .await;
    assert!(
        matches!(nowhere, Err(StoreError::NotFound(_))),
        "{nowhere:?}"
    );
    assert_eq!(
        store.list_vouchers(&com, 10).await.unwrap().len(),
        2,
        "nothing stored"
    );
}

/// A redemption credits once, with its history and journal entries, and every refusal changes
/// nothing.
pub async fn voucher_redemption_credits_once(store: Arc<dyn Store>) {
    seed(&store).await;
    seed_other_domain(&store).await;
    let bob = id("bob@example.com");
    let ids = store
        .create_vouchers(&[
            card("example.com", "10", "12345678901234567890"),
            card("example.com", "1", "999"),
            card("example.com", "1", "888"),
        ])
        .await
        .unwrap();
    let (card10, disabled, expiring) = (ids[0], ids[1], ids[2]);
    let at = t0() + Duration::minutes(5);
    let refused = |r: Redeemed| match r {
        Redeemed::Refused(why) => why,
        other @ Redeemed::Credited { .. } => panic!("credited: {other:?}"),
    };
    // A wrong number, an unknown id: no match.
    let wrong = store
        .redeem_voucher(&redemption(
            card10,
            "12345678901234567891",
            "bob@example.com",
            at,
        ))
        .await
        .unwrap();
    assert_eq!(refused(wrong), VoucherRefusal::NoMatch);
    let unknown = store
        .redeem_voucher(&redemption(ids[2] + 100, "999", "bob@example.com", at))
        .await
        .unwrap();
    assert_eq!(refused(unknown), VoucherRefusal::NoMatch);
    // The right number by a postpaid account, by another domain's account.
    let postpaid = store
        .redeem_voucher(&redemption(
            card10,
            "12345678901234567890",
            "alice@example.com",
            at,
        ))
        .await
        .unwrap();
    assert_eq!(refused(postpaid), VoucherRefusal::NotPrepaid);
    let other = store
        .redeem_voucher(&redemption(
            card10,
            "12345678901234567890",
            "carol@example.org",
            at,
        ))
        .await
        .unwrap();
    assert_eq!(refused(other), VoucherRefusal::OtherDomain);
    assert_eq!(store.get_balance(&bob).await.unwrap(), Money::ZERO);
    assert!(store.balance_history(&bob, 10).await.unwrap().is_empty());
    // The right one.
    let credited = store
        .redeem_voucher(&redemption(
            card10,
            "12345678901234567890",
            "bob@example.com",
            at,
        ))
        .await
        .unwrap();
    assert_eq!(
        credited,
        Redeemed::Credited {
            value: money("10"),
            balance: money("10")
        }
    );
    let used = store.get_voucher(card10).await.unwrap().unwrap();
    assert_eq!(used.used_by.as_deref(), Some("bob@example.com"));
    assert_eq!(used.used_at, Some(at));
    let h = store.balance_history(&bob, 10).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].action.as_str(), h[0].value, h[0].balance),
        ("topup", money("10"), money("10"))
    );
    assert_eq!(h[0].description, format!("Prepaid card {card10}"));
    assert_eq!(h[0].at, at);
    let journal = store.list_journal(&bob, None, 10).await.unwrap();
    let resources: Vec<&str> = journal.iter().map(|j| j.entry.resource.as_str()).collect();
    assert_eq!(resources, vec!["voucher", "balance"], "newest first");
    assert_eq!(journal[1].entry.old.as_deref(), Some("0.0000"));
    assert_eq!(journal[1].entry.new.as_deref(), Some("10.0000"));
    assert_eq!(journal[1].entry.actor, "digest bob@example.com");
    assert!(
        journal[0]
            .entry
            .new
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("prepaid card {card10}"))
    );
    // Used once: a second redemption is refused, the balance stays.
    let again = store
        .redeem_voucher(&redemption(
            card10,
            "12345678901234567890",
            "bob@example.com",
            at + Duration::seconds(1),
        ))
        .await
        .unwrap();
    assert_eq!(refused(again), VoucherRefusal::Used);
    // Disabled, expired.
    store.disable_voucher(disabled, at).await.unwrap();
    let d = store
        .redeem_voucher(&redemption(disabled, "999", "bob@example.com", at))
        .await
        .unwrap();
    assert_eq!(refused(d), VoucherRefusal::Disabled);
    let late = t0() + Duration::days(30);
    let e = store
        .redeem_voucher(&redemption(expiring, "888", "bob@example.com", late))
        .await
        .unwrap();
    assert_eq!(refused(e), VoucherRefusal::Expired);
    assert_eq!(store.get_balance(&bob).await.unwrap(), money("10"));
    assert_eq!(store.balance_history(&bob, 10).await.unwrap().len(), 1);
    assert_eq!(store.list_journal(&bob, None, 10).await.unwrap().len(), 2);
    assert!(matches!(
        store.disable_voucher(card10, at).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .redeem_voucher(&redemption(expiring, "888", "nobody@example.com", at))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Concurrent redemptions of one card, by one account and by two: exactly one credits.
pub async fn concurrent_redemptions_of_a_voucher_credit_once(store: Arc<dyn Store>) {
    seed(&store).await;
    let mut dave = account("dave@example.com");
    dave.prepaid = true;
    store.insert_account(&dave, &creds("d"), &[]).await.unwrap();
    let rounds = 8;
    let batch: Vec<NewVoucher> = (0..rounds)
        .map(|i| card("example.com", "1", &format!("7{i}")))
        .collect();
    let ids = store.create_vouchers(&batch).await.unwrap();
    let mut tasks = Vec::new();
    for (i, card) in ids.iter().enumerate() {
        for who in ["bob@example.com", "dave@example.com", "bob@example.com"] {
            let store = store.clone();
            let r = redemption(*card, &format!("7{i}"), who, t0());
            tasks.push(tokio::spawn(async move {
                (r.id, store.redeem_voucher(&r).await.unwrap())
            }));
        }
    }
    let mut credited = std::collections::HashMap::new();
    for t in tasks {
        let (card, outcome) = t.await.unwrap();
        match outcome {
            Redeemed::Credited { value, .. } => {
                assert_eq!(value, money("1"));
                *credited.entry(card).or_insert(0) += 1;
            }
            Redeemed::Refused(VoucherRefusal::Used) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(credited.len(), rounds, "every card credited");
    assert!(credited.values().all(|n| *n == 1), "{credited:?}");
    let bob = store.get_balance(&id("bob@example.com")).await.unwrap();
    let dave = store.get_balance(&id("dave@example.com")).await.unwrap();
    assert_eq!(bob + dave, money("8"), "{bob} + {dave}");
    let history = store
        .balance_history(&id("bob@example.com"), 100)
        .await
        .unwrap()
        .len()
        + store
            .balance_history(&id("dave@example.com"), 100)
            .await
            .unwrap()
            .len();
    assert_eq!(history, rounds, "one history entry per card");
}
