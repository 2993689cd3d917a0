//! The cases of [`Devices`](sip_settings_core::store::Devices): devices.

use super::*;

fn registration(
    account: &str,
    bindings: &[(&str, u32)],
    call_id: &str,
    cseq: u32,
    now: DateTime<Utc>,
) -> sip_settings_core::devices::Registration {
    sip_settings_core::devices::Registration {
        account: id(account),
        remove_all: false,
        bindings: bindings
            .iter()
            .map(|(c, l)| ((*c).to_owned(), *l))
            .collect(),
        user_agent: "phone/1.0".to_owned(),
        transport: "udp".to_owned(),
        source: "192.0.2.7:5062".to_owned(),
        call_id: call_id.to_owned(),
        cseq,
        now,
    }
}

/// Registrations follow RFC 3261: a binding per contact, refreshed, removed by `expires=0`
/// of a newer CSeq or by `Contact: *`, lapsed ones not listed and removed; at most
/// [`MAX_DEVICES`](sip_settings_core::devices::MAX_DEVICES) per account.
pub async fn device_bindings_follow_rfc3261(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let (a, b) = (
        "sip:alice@192.0.2.7:5062",
        "sip:alice@192.0.2.8:5060;transport=tcp",
    );
    assert!(store.list_devices(&alice, t0()).await.unwrap().is_empty());
    assert_eq!(store.device_expiry(&alice).await.unwrap(), None);

    let devices = store
        .register(&registration(
            "alice@example.com",
            &[(a, 60)],
            "c1",
            1,
            t0(),
        ))
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(
        (
            d.contact.as_str(),
            d.user_agent.as_str(),
            d.transport.as_str()
        ),
        (a, "phone/1.0", "udp")
    );
    assert_eq!(
        (d.source.as_str(), d.call_id.as_str(), d.cseq),
        ("192.0.2.7:5062", "c1", 1)
    );
    assert_eq!(
        (d.registered_at, d.expires_at),
        (t0(), t0() + Duration::seconds(60))
    );
    assert_eq!(
        store.device_expiry(&alice).await.unwrap(),
        Some(t0() + Duration::seconds(60))
    );

    // A second device, later; newest first.
    let later = t0() + Duration::seconds(10);
    let devices = store
        .register(&registration(
            "alice@example.com",
            &[(b, 3600)],
            "c2",
            1,
            later,
        ))
        .await
        .unwrap();
    let contacts: Vec<_> = devices.iter().map(|d| d.contact.as_str()).collect();
    assert_eq!(contacts, vec![b, a]);

    // An old request of the same Call-ID (CSeq not above the stored one) changes nothing.
    store
        .register(&registration(
            "alice@example.com",
            &[(a, 0)],
            "c1",
            1,
            later,
        ))
        .await
        .unwrap();
    assert_eq!(store.list_devices(&alice, later).await.unwrap().len(), 2);
    // A refresh moves the expiry; expires=0 of a newer CSeq removes it.
    store
        .register(&registration(
            "alice@example.com",
            &[(a, 120)],
            "c1",
            2,
            later,
        ))
        .await
        .unwrap();
    let refreshed = store.list_devices(&alice, later).await.unwrap();
    assert_eq!(refreshed[0].expires_at, later + Duration::seconds(120));
    assert_eq!(refreshed[0].cseq, 2);
    let devices = store
        .register(&registration(
            "alice@example.com",
            &[(a, 0)],
            "c1",
            3,
            later,
        ))
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].contact, b);

    lapsed_removed_all_and_refused_bindings(&store, &alice, (a, b), later).await;
}

/// A step of [`device_bindings_follow_rfc3261`]: `alice` has `b` registered at `later` (for an
/// hour) and `a` removed; lapsed bindings go, `Contact: *` removes all of the account's, too
/// many contacts are refused, an unknown account is not found, and deleting an account removes
/// its devices.
async fn lapsed_removed_all_and_refused_bindings(
    store: &Arc<dyn Store>,
    alice: &AccountId,
    (a, b): (&str, &str),
    later: DateTime<Utc>,
) {
    use sip_settings_core::devices::MAX_DEVICES;
    // Lapsed bindings are not listed, and are gone after the next registration.
    let much_later = t0() + Duration::seconds(3700);
    assert!(
        store
            .list_devices(alice, much_later)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.device_expiry(alice).await.unwrap(),
        Some(later + Duration::seconds(3600))
    );
    store
        .register(&registration(
            "bob@example.com",
            &[("sip:bob@h", 60)],
            "b1",
            1,
            much_later,
        ))
        .await
        .unwrap();
    assert_eq!(store.device_expiry(alice).await.unwrap(), None);

    // Contact: * removes every binding of the account, and only of it.
    store
        .register(&registration(
            "alice@example.com",
            &[(a, 60), (b, 60)],
            "c3",
            1,
            much_later,
        ))
        .await
        .unwrap();
    let mut all = registration("alice@example.com", &[], "c4", 1, much_later);
    all.remove_all = true;
    assert!(store.register(&all).await.unwrap().is_empty());
    assert_eq!(
        store
            .list_devices(&id("bob@example.com"), much_later)
            .await
            .unwrap()
            .len(),
        1
    );

    // Past the limit: refused, nothing written.
    let many: Vec<String> = (0..=MAX_DEVICES)
        .map(|i| format!("sip:alice@192.0.2.{i}"))
        .collect();
    let many: Vec<(&str, u32)> = many.iter().map(|c| (c.as_str(), 60)).collect();
    let e = store
        .register(&registration(
            "alice@example.com",
            &many,
            "c5",
            1,
            much_later,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(
        store
            .list_devices(alice, much_later)
            .await
            .unwrap()
            .is_empty()
    );

    // An unknown account; and deleting the account removes its devices.
    let e = store
        .register(&registration(
            "nobody@example.com",
            &[(a, 60)],
            "c6",
            1,
            much_later,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    store
        .delete_account(&id("bob@example.com"), much_later, &[])
        .await
        .unwrap();
    assert_eq!(
        store.device_expiry(&id("bob@example.com")).await.unwrap(),
        None
    );
}
