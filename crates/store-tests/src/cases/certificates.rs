//! The cases of [`Certificates`](sip_settings_core::store::Certificates): certificates.

use super::*;

/// Certificates: record, get, list, duplicate serial, revoke (first time kept), revoke all.
pub async fn certificates_and_revocation(store: Arc<dyn Store>) {
    seed(&store).await;
    let c1 = cert("01AB", Some("alice@example.com"), CertRole::Subscriber);
    store.insert_certificate(&c1).await.unwrap();
    store
        .insert_certificate(&cert("02AB", None, CertRole::Admin))
        .await
        .unwrap();
    store
        .insert_certificate(&cert(
            "03AB",
            Some("alice@example.com"),
            CertRole::Subscriber,
        ))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_certificate(&c1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_certificate(&c1.serial).await.unwrap().unwrap(),
        c1
    );
    assert_eq!(store.list_certificates(None).await.unwrap().len(), 3);
    assert_eq!(
        store
            .list_certificates(Some(&id("alice@example.com")))
            .await
            .unwrap()
            .len(),
        2
    );
    let first = t0() + Duration::minutes(5);
    assert_eq!(
        store
            .revoke_certificate(&c1.serial, first)
            .await
            .unwrap()
            .revoked_at,
        Some(first)
    );
    let again = store
        .revoke_certificate(&c1.serial, first + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first),
        "the first revocation time is kept"
    );
    assert!(matches!(
        store
            .revoke_certificate(&Serial::parse("FFFF").unwrap(), first)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .revoke_account_certificates(&id("alice@example.com"), first)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .revoke_account_certificates(&id("alice@example.com"), first)
            .await
            .unwrap(),
        0
    );
    let admin = store
        .get_certificate(&Serial::parse("02AB").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.role, CertRole::Admin);
    assert!(admin.account.is_none());
}

/// Certificate names and last uses: a name recorded at issue and changed by the account's own
/// write (not through another account), uses kept as the latest of those written, unknown
/// serials skipped.
pub async fn certificate_names_and_last_use(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let mut named = cert("0A01", Some("alice@example.com"), CertRole::Subscriber);
    named.name = Some(".p12 for Firefox on Linux".to_owned());
    store.insert_certificate(&named).await.unwrap();
    let plain = cert("0A02", Some("alice@example.com"), CertRole::Subscriber);
    store.insert_certificate(&plain).await.unwrap();
    let got = store.get_certificate(&named.serial).await.unwrap().unwrap();
    assert_eq!(got.name.as_deref(), Some(".p12 for Firefox on Linux"));
    assert_eq!(got.last_used, None);

    let mut w = store.begin_account(&alice).await.unwrap();
    let renamed = w
        .apply(&AccountOp::RenameCertificate {
            serial: named.serial.clone(),
            name: "work laptop".to_owned(),
        })
        .await
        .unwrap();
    w.commit(&[]).await.unwrap();
    let Applied::Certificate(renamed) = renamed else {
        panic!("a rename answers the certificate, not {renamed:?}");
    };
    assert_eq!(renamed.name.as_deref(), Some("work laptop"));
    assert_eq!(renamed.serial, named.serial);

    // Another account's write cannot name alice's certificate.
    let mut w = store.begin_account(&id("bob@example.com")).await.unwrap();
    assert!(matches!(
        w.apply(&AccountOp::RenameCertificate {
            serial: plain.serial.clone(),
            name: "bob's now".to_owned(),
        })
        .await,
        Err(StoreError::NotFound(_))
    ));
    drop(w);

    let at = |m: i64| t0() + Duration::minutes(m);
    store
        .record_certificate_uses(&[
            (named.serial.clone(), at(10)),
            (Serial::parse("FFFF01").unwrap(), at(10)),
        ])
        .await
        .unwrap();
    // An earlier use written later (another server's) does not move it back.
    store
        .record_certificate_uses(&[(named.serial.clone(), at(7)), (plain.serial.clone(), at(3))])
        .await
        .unwrap();
    store.record_certificate_uses(&[]).await.unwrap();
    let listed = store.list_certificates(Some(&alice)).await.unwrap();
    let of = |serial: &Serial| listed.iter().find(|c| &c.serial == serial).unwrap();
    assert_eq!(of(&named.serial).last_used, Some(at(10)));
    assert_eq!(of(&named.serial).name.as_deref(), Some("work laptop"));
    assert_eq!(of(&plain.serial).last_used, Some(at(3)));
    assert_eq!(of(&plain.serial).name, None);
    assert!(
        store
            .get_certificate(&Serial::parse("FFFF01").unwrap())
            .await
            .unwrap()
            .is_none(),
        "a use of an unknown serial records nothing"
    );
    // A later use does move it.
    store
        .record_certificate_uses(&[(plain.serial.clone(), at(12))])
        .await
        .unwrap();
    let listed = store.list_certificates(Some(&alice)).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|c| c.serial == plain.serial)
            .unwrap()
            .last_used,
        Some(at(12))
    );
}
