//! The cases of [`Settings`](sip_settings_core::store::Settings): call settings.

use super::*;

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

/// Alice's rich forwarding: nights to voicemail, the family's no-answer calls to two phones at
/// once, a hunt list on 503, and a simple busy rule.
fn rich_forwarding() -> Forwarding {
    let doc = serde_json::json!({
        "rules": [
            {"trigger": "unconditional", "time": "nights",
             "steps": [{"targets": ["<voice-mailbox>"]}]},
            {"trigger": "no_answer", "callers": "family",
             "steps": [{"targets": ["+31612345678", "desk@example.com"], "ring_seconds": 20}]},
            {"trigger": "response", "codes": [503],
             "steps": [{"targets": ["bob"], "ring_seconds": 15}, {"targets": ["carol"]}]},
            {"trigger": "busy", "steps": [{"targets": ["bob"]}]}
        ],
        "time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}},
        "caller_sets": {"family": {"mode": "allow", "members": ["group:family"]}}
    });
    Document::parse(doc)
        .unwrap()
        .forwarding_of(&id("alice@example.com"))
        .unwrap()
}

/// Forwarding rules (issue 19): kept in order with their sets; the seed view is their
/// projection; the seed's change replaces the simple rules alone, whether the write is locked or
/// optimistic; a forwarding the seed view says all of reads back as its simple rules.
pub async fn forwarding_rules_and_their_seed_view(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let bob = DiversionTarget::Uri(uri("sip:bob@example.com"));
    let carol = DiversionTarget::Uri(uri("sip:carol@example.com"));

    // Existing seed forwarding reads as its simple rules, with the seed ids.
    store
        .set_diversions(&alice, &[(Condition::NoAnswer, Some(bob.clone()))])
        .await
        .unwrap();
    let plain = store.get_forwarding(&alice).await.unwrap();
    assert_eq!(
        *plain,
        Forwarding::of_diversions(&store.get_diversions(&alice).await.unwrap())
    );
    assert_eq!(plain.rules.len(), 1);

    let rich = rich_forwarding();
    store.set_forwarding(&alice, &rich).await.unwrap();
    assert_eq!(*store.get_forwarding(&alice).await.unwrap(), rich);
    let view = store.get_diversions(&alice).await.unwrap();
    assert_eq!(
        view,
        rich.diversions(),
        "the seed view is the rules' projection"
    );
    assert_eq!(view.len(), 1, "only the busy rule is simple: {view:?}");
    assert_eq!(view.get(&Condition::Busy), Some(&bob));

    // The seed's change, locked and then optimistic: the simple rules change, nothing else.
    store
        .set_diversions(
            &alice,
            &[
                (Condition::Busy, Some(carol.clone())),
                (Condition::Unconditional, Some(bob.clone())),
            ],
        )
        .await
        .unwrap();
    let mut write = store.begin_account_optimistic(&alice).await.unwrap();
    write
        .apply(&AccountOp::SetDiversions(vec![(
            Condition::NotOnline,
            Some(DiversionTarget::VoiceMailbox),
        )]))
        .await
        .unwrap();
    write.commit(&[]).await.unwrap();
    let mut expected = rich.clone();
    expected.set_diversions(&[
        (Condition::Busy, Some(carol.clone())),
        (Condition::Unconditional, Some(bob.clone())),
        (Condition::NotOnline, Some(DiversionTarget::VoiceMailbox)),
    ]);
    let now = store.get_forwarding(&alice).await.unwrap();
    assert_eq!(*now, expected);
    assert_eq!(
        now.rules[..3],
        rich.rules[..3],
        "the rules with conditions are as they were"
    );
    assert_eq!(
        store.get_diversions(&alice).await.unwrap(),
        expected.diversions()
    );

    // A write that is dropped changes nothing; one write may set the rules and then the seed
    // view, each applying to what the one before left.
    let mut write = store.begin_account(&alice).await.unwrap();
    write
        .apply(&AccountOp::SetForwarding(Arc::new(Forwarding::default())))
        .await
        .unwrap();
    drop(write);
    assert_eq!(*store.get_forwarding(&alice).await.unwrap(), expected);
    let mut write = store.begin_account(&alice).await.unwrap();
    write
        .apply(&AccountOp::SetForwarding(Arc::new(rich.clone())))
        .await
        .unwrap();
    write
        .apply(&AccountOp::SetDiversions(vec![(Condition::Busy, None)]))
        .await
        .unwrap();
    write.commit(&[]).await.unwrap();
    let mut expected = rich.clone();
    expected.set_diversions(&[(Condition::Busy, None)]);
    assert_eq!(*store.get_forwarding(&alice).await.unwrap(), expected);
    assert!(store.get_diversions(&alice).await.unwrap().is_empty());

    // Back to the seed's conditions alone: the document goes, the rules are the seed view's.
    let mut seedish = Forwarding::default();
    seedish.set_diversions(&[(Condition::NoAnswer, Some(carol.clone()))]);
    store.set_forwarding(&alice, &seedish).await.unwrap();
    assert_eq!(*store.get_forwarding(&alice).await.unwrap(), seedish);
    store
        .set_diversions(&alice, &[(Condition::Unconditional, Some(bob.clone()))])
        .await
        .unwrap();
    let back = store.get_forwarding(&alice).await.unwrap();
    assert!(back.is_plain());
    assert_eq!(back.rules.len(), 2);

    // Unknown accounts: no rules, and nothing to set.
    let nobody = id("nobody@example.com");
    assert!(
        store
            .get_forwarding(&nobody)
            .await
            .unwrap()
            .rules
            .is_empty()
    );
    assert!(matches!(
        store.set_forwarding(&nobody, &rich).await,
        Err(StoreError::NotFound(_))
    ));
    // Bob's forwarding was never touched; deleting Alice deletes hers.
    assert!(
        store
            .get_forwarding(&id("bob@example.com"))
            .await
            .unwrap()
            .rules
            .is_empty()
    );
    store.set_forwarding(&alice, &rich).await.unwrap();
    store.delete_account(&alice, t0(), &[]).await.unwrap();
    assert!(store.get_forwarding(&alice).await.unwrap().rules.is_empty());
}

/// Seed changes of different conditions at once on an account with rules: every change
/// survives, and the rules with conditions too.
pub async fn concurrent_seed_changes_keep_the_rules(store: Arc<dyn Store>) {
    seed(&store).await;
    let alice = id("alice@example.com");
    let rich = rich_forwarding();
    store.set_forwarding(&alice, &rich).await.unwrap();
    for round in 0..5 {
        let (s1, s2) = (store.clone(), store.clone());
        let (a1, a2) = (alice.clone(), alice.clone());
        let t1 = DiversionTarget::Uri(uri(&format!("sip:one{round}@example.net")));
        let t2 = DiversionTarget::Uri(uri(&format!("sip:two{round}@example.net")));
        let (e1, e2) = (t1.clone(), t2.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move {
                s1.set_diversions(&a1, &[(Condition::NotOnline, Some(t1))])
                    .await
            }),
            tokio::spawn(
                async move { s2.set_diversions(&a2, &[(Condition::Busy, Some(t2))]).await }
            ),
        );
        r1.unwrap().unwrap();
        r2.unwrap().unwrap();
        let f = store.get_forwarding(&alice).await.unwrap();
        assert_eq!(f.rules[..3], rich.rules[..3]);
        let d = f.diversions();
        assert_eq!(d.get(&Condition::NotOnline), Some(&e1));
        assert_eq!(d.get(&Condition::Busy), Some(&e2));
        assert_eq!(store.get_diversions(&alice).await.unwrap(), d);
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
    store.delete_account(&alice, t0(), &[]).await.unwrap();
    assert_eq!(store.resolve_address(&al).await.unwrap(), None);
    assert_eq!(store.resolve_address(&alice).await.unwrap(), None);
    assert!(store.list_phonebook(&alice).await.unwrap().is_empty());
    assert!(store.get_voicemail(&alice).await.unwrap().is_none());
}
