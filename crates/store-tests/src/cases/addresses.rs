//! The cases of [`Addresses`](sip_settings_core::store::Addresses): aliases and ENUM numbers.

use super::*;

/// Accounts and aliases share one address namespace per domain.
pub async fn aliases_share_the_address_namespace(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let al = id("al@example.com");
    assert_eq!(
        store.add_alias(&al, &alice, 20).await.unwrap(),
        AliasOutcome::Added
    );
    assert_eq!(
        store
            .add_alias(&al, &id("bob@example.com"), 20)
            .await
            .unwrap(),
        AliasOutcome::Taken
    );
    assert_eq!(
        store
            .add_alias(&id("bob@example.com"), &alice, 20)
            .await
            .unwrap(),
        AliasOutcome::Taken
    );
    assert!(matches!(
        store
            .insert_account(&account("al@example.com"), &creds("x"), &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_alias(&id("x@example.com"), &id("nobody@example.com"), 20)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.resolve_address(&al).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.resolve_address(&alice).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.resolve_address(&id("zz@example.com")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .add_alias(&id("aa@example.com"), &alice, 20)
            .await
            .unwrap(),
        AliasOutcome::Added
    );
    let listed: Vec<String> = store
        .list_aliases(Some(&alice))
        .await
        .unwrap()
        .iter()
        .map(|(a, _)| a.to_string())
        .collect();
    assert_eq!(listed, ["aa@example.com", "al@example.com"]);
    assert!(store.remove_alias(&al).await.unwrap());
    assert!(!store.remove_alias(&al).await.unwrap());
    assert!(
        !store.remove_alias(&alice).await.unwrap(),
        "an account is not an alias"
    );
    assert_eq!(store.list_aliases(None).await.unwrap().len(), 1);
}

/// The alias limit holds even when many adds race.
pub async fn alias_limit_holds_under_concurrency(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            store
                .add_alias(&id(&format!("x{i}@example.com")), &alice, 5)
                .await
                .unwrap()
        }));
    }
    let mut added = 0;
    for t in tasks {
        match t.await.unwrap() {
            AliasOutcome::Added => added += 1,
            AliasOutcome::LimitReached => {}
            AliasOutcome::Taken => panic!("no name was taken"),
        }
    }
    assert_eq!(added, 5);
    assert_eq!(store.list_aliases(Some(&alice)).await.unwrap().len(), 5);
}

/// ENUM numbers: map, conflict, resolve, list, remove.
pub async fn enum_numbers(store: Arc<dyn Store>) {
    seed(&store).await;
    let n1 = E164::parse_for("n", "+31201234567").unwrap();
    let n2 = E164::parse_for("n", "+1212555").unwrap();
    store.add_enum(&n1, &id("alice@example.com")).await.unwrap();
    store.add_enum(&n2, &id("alice@example.com")).await.unwrap();
    assert!(matches!(
        store.add_enum(&n1, &id("bob@example.com")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_enum(
                &E164::parse_for("n", "+4420").unwrap(),
                &id("nobody@example.com")
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.resolve_enum(&n1).await.unwrap(),
        Some(id("alice@example.com"))
    );
    let listed: Vec<String> = store
        .list_enum(Some(&id("alice@example.com")))
        .await
        .unwrap()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(listed, ["+1212555", "+31201234567"]);
    assert!(store.remove_enum(&n1).await.unwrap());
    assert!(!store.remove_enum(&n1).await.unwrap());
    assert_eq!(store.list_enum(None).await.unwrap().len(), 1);
}
