//! The conformance cases. Each takes a fresh, empty store and panics on the first difference
//! from the [`Store`] contract.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::calls::{
    CallRecord, CloseOutcome, CloseRequest, Direction, NewCall, OpenOutcome, OpenRequest,
    PrepaidRefusal,
};
use sip_settings_core::cert::{CertRecord, CertRole, Serial};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::settings::{
    AcceptRule, ClockTime, DaysMask, Group, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail, VoicemailDelivery,
};
use sip_settings_core::sip::{Condition, DiversionTarget, SipUri};
use sip_settings_core::store::{AliasOutcome, BalanceChange};
use sip_settings_core::{
    AccountId, Credentials, Domain, E164, ManualClock, Password, Store, StoreError,
};

use crate::Harness;

/// A fixed instant (whole seconds, so every back end keeps it exactly).
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).single().unwrap()
}

fn id(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn money(s: &str) -> Money {
    Money::parse_for("m", s).unwrap()
}

fn uri(s: &str) -> SipUri {
    SipUri::parse_for("u", s).unwrap()
}

fn account(s: &str) -> Account {
    Account {
        id: id(s),
        profile: AccountProfile::default(),
        privacy: false,
        prepaid: false,
        created_at: t0(),
    }
}

fn creds(s: &str) -> Credentials {
    // A fixed, cheap stand-in: the store keeps what it is given, it never derives.
    Credentials {
        ha1_md5: format!("md5-{s}"),
        ha1_sha256: format!("sha-{s}"),
        password_hash: format!("$argon2id$stand-in-{s}"),
    }
}

/// Domain example.com with accounts alice and bob (bob prepaid).
async fn seed(store: &Arc<dyn Store>) {
    store
        .add_domain(&Domain::parse("example.com").unwrap(), t0())
        .await
        .unwrap();
    store
        .insert_account(&account("alice@example.com"), &creds("a"), &[])
        .await
        .unwrap();
    let mut bob = account("bob@example.com");
    bob.prepaid = true;
    store.insert_account(&bob, &creds("b"), &[]).await.unwrap();
}

fn cert(serial: &str, who: Option<&str>, role: CertRole) -> CertRecord {
    CertRecord {
        serial: Serial::parse(serial).unwrap(),
        subject: who.unwrap_or("ops").to_owned(),
        role,
        account: who.map(id),
        fingerprint: format!("fp{serial}"),
        not_before: t0(),
        not_after: t0() + Duration::days(365),
        issued_at: t0(),
        revoked_at: None,
    }
}

fn rate(prefix: &str, connect: &str, per_minute: &str, inc: u32, min: u32) -> Rate {
    Rate::new(
        prefix,
        &format!("rate {prefix}"),
        money(connect),
        money(per_minute),
        inc,
        min,
    )
    .unwrap()
}

fn call(
    call_id: &str,
    caller: &str,
    callee: &str,
    start: DateTime<Utc>,
    duration: u32,
) -> CallRecord {
    CallRecord {
        call_id: call_id.to_owned(),
        from_tag: "f".to_owned(),
        to_tag: "t".to_owned(),
        caller: uri(caller),
        callee: uri(callee),
        start,
        stop: start + Duration::seconds(i64::from(duration)),
        duration,
        status: 200,
        media: vec!["audio".to_owned()],
        proxy_ip: "192.0.2.1".to_owned(),
        price: None,
    }
}

/// What the store stamps by itself (an account's `updated_at`, an alias's and a number's
/// `created_at`) has its clock's time, never the system's: the service layer's clock, injected,
/// is the only source of "now".
pub async fn own_stamps_come_from_the_store_clock<H: Harness>() {
    // Far from the real now, and whole seconds so that every back end keeps it exactly.
    let start = t0() + Duration::days(1000);
    let clock = Arc::new(ManualClock::new(start));
    let Some(h) = H::start_with_clock(clock.clone()).await else {
        return;
    };
    let store = h.store();
    seed(&store).await;
    let alice = id("alice@example.com");
    let updated = "SELECT updated_at FROM accounts WHERE username = 'alice'";
    // A new account was last updated when it was created.
    assert_eq!(h.times(updated).await, [t0()]);

    let at = |days: i64| start + Duration::days(days) + Duration::seconds(days);
    clock.set(at(1));
    let profile = AccountProfile {
        first_name: "Alice".into(),
        ..AccountProfile::default()
    };
    store.update_account(&alice, &profile, false).await.unwrap();
    assert_eq!(h.times(updated).await, [at(1)], "update_account");

    clock.set(at(2));
    store.set_credentials(&alice, &creds("a2")).await.unwrap();
    assert_eq!(h.times(updated).await, [at(2)], "set_credentials");

    clock.set(at(3));
    store.set_privacy(&alice, true).await.unwrap();
    assert_eq!(h.times(updated).await, [at(3)], "set_privacy");

    clock.set(at(4));
    let al = id("al@example.com");
    assert_eq!(
        store.add_alias(&al, &alice, 20).await.unwrap(),
        AliasOutcome::Added
    );
    assert_eq!(
        h.times("SELECT created_at FROM sip_addresses WHERE username = 'al'")
            .await,
        [at(4)],
        "add_alias"
    );

    clock.set(at(5));
    let number = E164::parse_for("n", "+31201234567").unwrap();
    store.add_enum(&number, &alice).await.unwrap();
    assert_eq!(
        h.times("SELECT created_at FROM enum_numbers").await,
        [at(5)],
        "add_enum"
    );
    h.finish().await;
}

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
    assert!(
        store
            .get_credentials(&alice)
            .await
            .unwrap()
            .unwrap()
            .verify(&Password::offered("a-new-password"))
    );
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
    assert_eq!(store.delete_account(&alice, at).await.unwrap(), 2);
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
        store.delete_account(&alice, at).await,
        Err(StoreError::NotFound(_))
    ));
}

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

/// Setting some conditions leaves the others as they were.
pub async fn diversions_change_only_what_is_given(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let bob = DiversionTarget::Uri(uri("sip:bob@example.com"));
    store
        .set_diversions(
            &alice,
            &[
                (Condition::Unconditional, Some(bob.clone())),
                (Condition::Busy, Some(DiversionTarget::VoiceMailbox)),
            ],
        )
        .await
        .unwrap();
    store
        .set_diversions(
            &alice,
            &[
                (Condition::Unconditional, None),
                (Condition::NoAnswer, Some(DiversionTarget::MobileNumber)),
            ],
        )
        .await
        .unwrap();
    let d = store.get_diversions(&alice).await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d.get(&Condition::Busy),
        Some(&DiversionTarget::VoiceMailbox)
    );
    assert_eq!(
        d.get(&Condition::NoAnswer),
        Some(&DiversionTarget::MobileNumber)
    );
    assert!(
        store
            .get_diversions(&id("bob@example.com"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .set_diversions(&id("nobody@example.com"), &[(Condition::Busy, Some(bob))])
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Two writers of different conditions at once: both changes survive.
pub async fn concurrent_diversion_writers_lose_nothing(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    for round in 0..10 {
        let (s1, s2) = (store.clone(), store.clone());
        let (a1, a2) = (alice.clone(), alice.clone());
        let t1 = DiversionTarget::Uri(uri(&format!("sip:one{round}@example.net")));
        let t2 = DiversionTarget::Uri(uri(&format!("sip:two{round}@example.net")));
        let (e1, e2) = (t1.clone(), t2.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move {
                s1.set_diversions(&a1, &[(Condition::Unconditional, Some(t1))])
                    .await
            }),
            tokio::spawn(
                async move { s2.set_diversions(&a2, &[(Condition::Busy, Some(t2))]).await }
            ),
        );
        r1.unwrap().unwrap();
        r2.unwrap().unwrap();
        let d = store.get_diversions(&alice).await.unwrap();
        assert_eq!(d.get(&Condition::Unconditional), Some(&e1));
        assert_eq!(d.get(&Condition::Busy), Some(&e2));
    }
}

/// Accept rules per mask (replace), removal, and the temporary rule with its end time.
pub async fn accept_rules_and_dnd_expiry(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let rule = |days: u32, start: &str, stop: &str, groups: &str| AcceptRule {
        days: DaysMask::new(days).unwrap(),
        start: ClockTime::parse_for("s", start).unwrap(),
        stop: ClockTime::parse_for("s", stop).unwrap(),
        groups: Group::parse_list(groups).unwrap(),
    };
    assert!(
        !store
            .put_accept_rule(&alice, &rule(31, "09:00", "17:00", "everybody"))
            .await
            .unwrap()
    );
    assert!(
        store
            .put_accept_rule(&alice, &rule(31, "08:00", "18:00", "family,work"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_accept_rule(&alice, &rule(96, "22:00", "06:00", "nobody"))
            .await
            .unwrap()
    );
    let r = store.get_accept_rules(&alice).await.unwrap();
    assert_eq!(
        r.persistent,
        vec![
            rule(31, "08:00", "18:00", "family,work"),
            rule(96, "22:00", "06:00", "nobody")
        ]
    );
    assert!(r.temporary.is_none());
    assert!(
        store
            .remove_accept_rule(&alice, DaysMask::new(96).unwrap())
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_accept_rule(&alice, DaysMask::new(96).unwrap())
            .await
            .unwrap()
    );

    let until = t0() + Duration::minutes(30);
    let dnd = TemporaryRule {
        groups: vec![Group::Nobody],
        until: Some(until),
    };
    store.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
    let r = store.get_accept_rules(&alice).await.unwrap();
    assert_eq!(r.temporary.as_ref(), Some(&dnd));
    assert!(r.dnd_at(t0()));
    assert!(r.dnd_at(until - Duration::seconds(1)));
    assert!(
        !r.dnd_at(until),
        "a timed DND lapses by itself at its end time"
    );
    assert_eq!(
        r.persistent.len(),
        1,
        "DND never touches the persistent rules"
    );
    let forever = TemporaryRule {
        groups: vec![Group::Nobody],
        until: None,
    };
    store
        .set_temporary_rule(&alice, Some(&forever))
        .await
        .unwrap();
    assert!(
        store
            .get_accept_rules(&alice)
            .await
            .unwrap()
            .dnd_at(t0() + Duration::days(3650))
    );
    store.set_temporary_rule(&alice, None).await.unwrap();
    assert!(
        store
            .get_accept_rules(&alice)
            .await
            .unwrap()
            .temporary
            .is_none()
    );
    assert!(matches!(
        store
            .set_temporary_rule(&id("nobody@example.com"), Some(&dnd))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Reject patterns: add, duplicate, sorted list, remove.
pub async fn reject_rules(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let p1 = RejectPattern::parse("sip:%0900@%").unwrap();
    let p2 = RejectPattern::parse("sip:spam@example.net").unwrap();
    store.add_reject(&alice, &p2).await.unwrap();
    store.add_reject(&alice, &p1).await.unwrap();
    assert!(matches!(
        store.add_reject(&alice, &p1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_reject(&alice).await.unwrap(),
        vec![p1.clone(), p2.clone()]
    );
    assert!(store.remove_reject(&alice, &p1).await.unwrap());
    assert!(!store.remove_reject(&alice, &p1).await.unwrap());
    assert!(
        store
            .list_reject(&id("bob@example.com"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Voicemail round trip, privacy, phonebook.
pub async fn voicemail_privacy_phonebook(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    assert!(store.get_voicemail(&alice).await.unwrap().is_none());
    let v = Voicemail {
        enabled: true,
        delivery: VoicemailDelivery::EmailAndStore,
        email: Some(sip_settings_core::Email::parse_for("e", "a@mail.example").unwrap()),
        pin_hash: Some("hash".into()),
    };
    store.put_voicemail(&alice, &v).await.unwrap();
    assert_eq!(store.get_voicemail(&alice).await.unwrap(), Some(v.clone()));
    let off = Voicemail {
        enabled: false,
        ..v
    };
    store.put_voicemail(&alice, &off).await.unwrap();
    assert_eq!(store.get_voicemail(&alice).await.unwrap(), Some(off));
    assert!(matches!(
        store.set_privacy(&id("nobody@example.com"), true).await,
        Err(StoreError::NotFound(_))
    ));

    let e1 = PhonebookEntry {
        uri: uri("sip:mom@example.org"),
        name: "Mom".into(),
        groups: vec!["family".into()],
    };
    let e2 = PhonebookEntry {
        uri: uri("sip:boss@example.org"),
        name: "Boss".into(),
        groups: vec!["vip".into(), "work".into()],
    };
    store.put_phonebook_entry(&alice, &e1).await.unwrap();
    store.put_phonebook_entry(&alice, &e2).await.unwrap();
    let e1b = PhonebookEntry {
        name: "Mother".into(),
        ..e1.clone()
    };
    store.put_phonebook_entry(&alice, &e1b).await.unwrap();
    assert_eq!(store.list_phonebook(&alice).await.unwrap(), vec![e2, e1b]);
    assert!(store.remove_phonebook_entry(&alice, &e1.uri).await.unwrap());
    assert!(!store.remove_phonebook_entry(&alice, &e1.uri).await.unwrap());
}

/// Every read that deciding a call needs (`domain_exists`, `resolve_address`, `resolve_enum`,
/// `get_accept_rules`, `list_reject`, `list_phonebook`, `get_voicemail`) shows the write just
/// before it, also where the same read answered "none" or the old value a moment earlier: a
/// store that keeps answers in memory must forget them on every commit.
pub async fn call_reads_follow_each_write(store: Arc<dyn Store>) {
    let com = Domain::parse("example.com").unwrap();
    assert!(!store.domain_exists(&com).await.unwrap());
    seed(&store).await;
    assert!(store.domain_exists(&com).await.unwrap());
    let alice = id("alice@example.com");
    let al = id("al@example.com");
    let found = Some(alice.clone());

    assert_eq!(store.resolve_address(&al).await.unwrap(), None);
    store.add_alias(&al, &alice, 20).await.unwrap();
    assert_eq!(store.resolve_address(&al).await.unwrap(), found);
    store.remove_alias(&al).await.unwrap();
    assert_eq!(store.resolve_address(&al).await.unwrap(), None);

    let number = E164::parse_for("n", "+31201234567").unwrap();
    assert_eq!(store.resolve_enum(&number).await.unwrap(), None);
    store.add_enum(&number, &alice).await.unwrap();
    assert_eq!(store.resolve_enum(&number).await.unwrap(), found);
    store.remove_enum(&number).await.unwrap();
    assert_eq!(store.resolve_enum(&number).await.unwrap(), None);

    assert_eq!(
        store.get_accept_rules(&alice).await.unwrap(),
        Default::default()
    );
    let rule = AcceptRule {
        days: DaysMask::new(31).unwrap(),
        start: ClockTime::parse_for("s", "09:00").unwrap(),
        stop: ClockTime::parse_for("s", "17:00").unwrap(),
        groups: vec![Group::Everybody],
    };
    store.put_accept_rule(&alice, &rule).await.unwrap();
    assert_eq!(
        store.get_accept_rules(&alice).await.unwrap().persistent,
        std::slice::from_ref(&rule)
    );
    let dnd = TemporaryRule {
        groups: vec![Group::Nobody],
        until: None,
    };
    store.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
    let rules = store.get_accept_rules(&alice).await.unwrap();
    assert_eq!((rules.persistent.len(), rules.temporary), (1, Some(dnd)));
    store.remove_accept_rule(&alice, rule.days).await.unwrap();
    assert!(
        store
            .get_accept_rules(&alice)
            .await
            .unwrap()
            .persistent
            .is_empty()
    );

    let pattern = RejectPattern::parse("sip:spam@example.net").unwrap();
    assert!(store.list_reject(&alice).await.unwrap().is_empty());
    store.add_reject(&alice, &pattern).await.unwrap();
    assert_eq!(
        store.list_reject(&alice).await.unwrap(),
        std::slice::from_ref(&pattern)
    );
    store.remove_reject(&alice, &pattern).await.unwrap();
    assert!(store.list_reject(&alice).await.unwrap().is_empty());

    let entry = PhonebookEntry {
        uri: uri("sip:mom@example.org"),
        name: "Mom".into(),
        groups: vec!["family".into()],
    };
    assert!(store.list_phonebook(&alice).await.unwrap().is_empty());
    store.put_phonebook_entry(&alice, &entry).await.unwrap();
    assert_eq!(
        store.list_phonebook(&alice).await.unwrap(),
        std::slice::from_ref(&entry)
    );
    store
        .remove_phonebook_entry(&alice, &entry.uri)
        .await
        .unwrap();
    assert!(store.list_phonebook(&alice).await.unwrap().is_empty());

    let voicemail = Voicemail {
        enabled: true,
        delivery: VoicemailDelivery::Email,
        email: None,
        pin_hash: None,
    };
    assert!(store.get_voicemail(&alice).await.unwrap().is_none());
    store.put_voicemail(&alice, &voicemail).await.unwrap();
    assert_eq!(
        store.get_voicemail(&alice).await.unwrap(),
        Some(voicemail.clone())
    );

    store.add_alias(&al, &alice, 20).await.unwrap();
    store.put_phonebook_entry(&alice, &entry).await.unwrap();
    assert_eq!(store.resolve_address(&al).await.unwrap(), found);
    store.delete_account(&alice, t0()).await.unwrap();
    assert_eq!(store.resolve_address(&al).await.unwrap(), None);
    assert_eq!(store.resolve_address(&alice).await.unwrap(), None);
    assert!(store.list_phonebook(&alice).await.unwrap().is_empty());
    assert!(store.get_voicemail(&alice).await.unwrap().is_none());
}

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
    store.delete_account(&bob, t0()).await.unwrap();
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
        .delete_account(&id("bob@example.com"), much_later)
        .await
        .unwrap();
    assert_eq!(
        store.device_expiry(&id("bob@example.com")).await.unwrap(),
        None
    );
}
