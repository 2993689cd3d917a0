use serde_json::json;

use super::*;
use crate::ids::AccountId;

fn own() -> AccountId {
    AccountId::parse("alice@example.com").unwrap()
}

fn target(s: &str) -> DiversionTarget {
    DiversionTarget::parse_for("t", s, &own()).unwrap()
}

/// A forwarding with every kind of part: nights to voicemail, family to the mobile in
/// parallel with the desk phone, a hunt list on 503, a redirect for the office number.
fn rich() -> Forwarding {
    let doc = json!({
        "rules": [
            {"trigger": "unconditional", "time": "nights",
             "steps": [{"targets": ["<voice-mailbox>"]}]},
            {"trigger": "no_answer", "callers": "family",
             "steps": [{"targets": ["+31612345678", "desk@example.com"], "ring_seconds": 20}]},
            {"id": 40, "trigger": "response", "codes": [503, 408],
             "steps": [{"targets": ["bob"], "ring_seconds": 15}, {"targets": ["carol"]}]},
            {"trigger": "unconditional", "called": "office", "action": "redirect",
             "enabled": false, "steps": [{"targets": ["reception"]}]},
            {"trigger": "busy", "steps": [{"targets": ["<voice-mailbox>"]}]}
        ],
        "time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}],
                                 "dates": ["2026-12-24..2026-12-26", "2027-01-01"],
                                 "yearly": ["04-27"]}},
        "caller_sets": {"family": {"mode": "allow", "members": ["group:family", "sip:mom@*"]}},
        "called_sets": {"office": {"addresses": ["+31201234567"]}}
    });
    Document::parse(doc).unwrap().forwarding_of(&own()).unwrap()
}

#[test]
fn a_document_reads_back_as_written_ids_given_past_the_seed_ids() {
    let f = rich();
    assert_eq!(
        f.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        [41, 42, 40, 43, 3],
        "rules without an id get one past the largest, and past the seed's 1–5; a simple rule \
         its condition's seed id"
    );
    assert_eq!(f.rules[2].trigger, Trigger::Response(vec![408, 503]));
    assert_eq!(f.rules[1].action.steps()[0].targets().len(), 2);
    assert!(!f.rules[3].enabled);
    let stored = f.to_stored();
    assert_eq!(Forwarding::from_stored(&stored).unwrap(), f);
    let again: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(again["v"], 1);
    assert_eq!(again["rules"][0]["steps"][0]["ring_seconds"], 35);
    assert_eq!(again["time_sets"]["nights"]["dates"][1], "2027-01-01");
    assert_eq!(again["caller_sets"]["family"]["members"][1], "sip:mom@%");
}

#[test]
fn the_seed_view_is_the_first_simple_rule_of_each_condition() {
    let f = rich();
    // Only the busy rule is simple: the others have conditions, two targets, a ring time,
    // a response trigger or a redirect.
    let view = f.diversions();
    assert_eq!(view.len(), 1);
    assert_eq!(view[&Condition::Busy], DiversionTarget::VoiceMailbox);
    assert!(f.richer());
    assert!(!f.is_plain());

    let mut seed = Diversions::new();
    seed.insert(Condition::NoAnswer, target("bob"));
    seed.insert(Condition::Unconditional, target("+31612345678"));
    let plain = Forwarding::of_diversions(&seed);
    assert_eq!(plain.diversions(), seed);
    assert!(plain.is_plain());
    assert!(!plain.richer());
    assert_eq!(
        plain.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        [
            ForwardingRule::seed_id(Condition::Unconditional),
            ForwardingRule::seed_id(Condition::NoAnswer)
        ]
    );
    assert_eq!(
        Forwarding::of_diversions(&Diversions::new()),
        Forwarding::default()
    );
    assert!(Forwarding::default().is_plain());
}

#[test]
fn simple_rules_in_another_order_are_kept_but_tell_nothing_more() {
    let mut seed = Diversions::new();
    seed.insert(Condition::NoAnswer, target("bob"));
    seed.insert(Condition::Unconditional, target("carol"));
    let mut f = Forwarding::of_diversions(&seed);
    f.rules.reverse();
    assert!(!f.is_plain(), "the order is the subscriber's: kept");
    assert!(!f.richer(), "but the five conditions say everything");
    assert_eq!(f.diversions(), seed);

    // A second simple rule of one condition can never apply first: richer.
    f.rules.push(ForwardingRule::of_diversion(
        Condition::NoAnswer,
        target("dave"),
    ));
    f.rules[2].id = 9;
    assert!(f.richer());
    assert_eq!(f.diversions(), seed, "the first one is the seed's view");
}

#[test]
fn the_seed_change_replaces_exactly_the_simple_rules() {
    let mut f = rich();
    let before = f.clone();
    f.set_diversions(&[
        (Condition::Busy, Some(target("carol"))),
        (Condition::Unconditional, Some(target("dave"))),
        (Condition::NoAnswer, None),
    ]);
    assert_eq!(f.rules.len(), before.rules.len() + 1);
    // The busy rule changed in place, keeping its id and position.
    assert_eq!(f.rules[4].id, before.rules[4].id);
    assert_eq!(
        f.rules[4].simple(),
        Some((Condition::Busy, &target("carol")))
    );
    // The unconditional simple rule is added last, with the seed id (free here), after the
    // rules with conditions, which stay the exceptions.
    assert_eq!(
        f.rules[5].id,
        ForwardingRule::seed_id(Condition::Unconditional)
    );
    assert_eq!(f.rules[..4], before.rules[..4]);
    assert_eq!(f.sets, before.sets);
    assert_eq!(f.diversions()[&Condition::Unconditional], target("dave"));

    // Clearing removes every simple rule of the condition, and nothing else.
    f.set_diversions(&[(Condition::Busy, None), (Condition::Unconditional, None)]);
    assert_eq!(f.rules, before.rules[..4]);
    assert!(f.diversions().is_empty());

    // On a plain forwarding, the seed change is the change of the seed view.
    let mut plain = Forwarding::default();
    plain.set_diversions(&[(Condition::NoAnswer, Some(target("bob")))]);
    plain.set_diversions(&[(Condition::Unconditional, Some(target("carol")))]);
    let mut seed = Diversions::new();
    seed.insert(Condition::NoAnswer, target("bob"));
    seed.insert(Condition::Unconditional, target("carol"));
    assert_eq!(plain.diversions(), seed);
    assert!(!plain.richer());
    assert_eq!(
        plain.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        [
            ForwardingRule::seed_id(Condition::NoAnswer),
            ForwardingRule::seed_id(Condition::Unconditional)
        ],
        "ids are the seed ids whatever the order they were set in"
    );
}

#[test]
fn a_seed_id_taken_by_another_rule_is_not_given_twice() {
    let mut f = Document::parse(json!({"rules": [
        {"id": 1, "trigger": "busy", "time": "t", "steps": [{"targets": ["bob"]}]}
    ], "time_sets": {"t": {"yearly": ["12-25"]}}}))
    .unwrap()
    .forwarding_of(&own())
    .unwrap();
    f.set_diversions(&[(Condition::Unconditional, Some(target("carol")))]);
    assert_eq!(f.rules.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 6]);
}

#[test]
fn refusals_name_the_rule_and_the_field() {
    let cases = [
        (
            json!({"rules": [{"trigger": "sometimes", "steps": []}]}),
            "rules[0].trigger",
        ),
        (
            json!({"rules": [{"trigger": "busy", "steps": [{"targets": ["bob"]}]},
                             {"trigger": "busy", "steps": [{"targets": ["bob"], "ring_seconds": 400}]}]}),
            "rules[1].steps[0].ring_seconds",
        ),
        (
            json!({"rules": [{"trigger": "busy", "steps": [{"targets": ["bob", "Bob"]}]}]}),
            "rules[0].steps[0].targets[1]",
        ),
        (
            json!({"rules": [{"trigger": "busy", "steps": []}]}),
            "rules[0].steps",
        ),
        (
            json!({"rules": [{"trigger": "busy", "codes": [503], "steps": [{"targets": ["b"]}]}]}),
            "rules[0].codes",
        ),
        (
            json!({"rules": [{"trigger": "response", "codes": [200], "steps": [{"targets": ["b"]}]}]}),
            "rules[0].codes",
        ),
        (
            json!({"rules": [{"trigger": "busy", "action": "bounce", "steps": [{"targets": ["b"]}]}]}),
            "rules[0].action",
        ),
        (
            json!({"rules": [{"id": 7, "trigger": "busy", "steps": [{"targets": ["b"]}]},
                             {"id": 7, "trigger": "busy", "steps": [{"targets": ["c"]}]}]}),
            "rules[1].id",
        ),
        (
            json!({"rules": [{"trigger": "busy", "time": "Bad Name", "steps": [{"targets": ["b"]}]}]}),
            "rules[0].time",
        ),
        (
            json!({"time_sets": {"n": {"weekly": [{"days": 31, "start": "22:00", "stop": "25:00"}]}}}),
            "time_sets.n.weekly[0].stop",
        ),
        (
            json!({"time_sets": {"n": {"weekly": [{"days": 0, "start": "22:00", "stop": "07:00"}]}}}),
            "time_sets.n.weekly[0].days",
        ),
        (json!({"time_sets": {"n": {}}}), "time_sets.n"),
        (
            json!({"time_sets": {"n": {"dates": ["2026-02-30"]}}}),
            "time_sets.n.dates[0]",
        ),
        (
            json!({"caller_sets": {"f": {"mode": "maybe"}}}),
            "caller_sets.f.mode",
        ),
        (
            json!({"caller_sets": {"f": {"mode": "allow"}}}),
            "caller_sets.f",
        ),
        (
            json!({"caller_sets": {"f": {"mode": "deny", "members": ["a b"]}}}),
            "caller_sets.f.members[0]",
        ),
        (
            json!({"called_sets": {"o": {"addresses": []}}}),
            "called_sets.o",
        ),
        (
            json!({"caller_sets": {"-x": {"mode": "deny"}}}),
            "caller_sets.-x",
        ),
        (json!({"v": 2}), "v"),
        (json!({"rules": [], "extra": 1}), "forwarding"),
        (json!({"rules": [{"trigger": "busy"}]}), "forwarding"),
    ];
    for (doc, field) in cases {
        let got = Document::parse(doc.clone()).and_then(|d| d.forwarding_of(&own()));
        match got {
            Err(ServiceError::Invalid { field: f, reason }) => {
                assert_eq!(f, field, "{doc}: {reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{doc}: {other:?}"),
        }
    }
}

#[test]
fn a_stored_document_that_is_not_one_is_refused_not_guessed() {
    for text in [
        "",
        "{",
        "[]",
        r#"{"rules": [{"trigger": "busy", "steps": [{"targets": ["bob"]}]}]}"#,
    ] {
        assert!(Forwarding::from_stored(text).is_err(), "{text}");
    }
}
