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
