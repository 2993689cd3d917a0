#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};

use super::*;
use crate::forwarding::{TimeSet, WeeklyRange};
use crate::settings::{ClockTime, DaysMask};
use crate::sip::SipUri;

fn alice() -> AccountId {
    AccountId::parse("alice@example.com").unwrap()
}

fn target(s: &str) -> DiversionTarget {
    parse_target("t", s, &alice()).unwrap()
}

fn step(targets: &[&str], ring: u32) -> Step {
    Step::new("s", targets.iter().map(|t| target(t)).collect(), ring).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn amsterdam() -> AccountTimeZone {
    AccountTimeZone::parse_for("timezone", "Europe/Amsterdam").unwrap()
}

fn caller(uri: &str) -> Caller {
    Caller::Uri(SipUri::parse_for("caller", uri).unwrap())
}

fn member(s: &str) -> CallerMember {
    CallerMember::parse("m", s).unwrap()
}

fn rule(trigger: Trigger, steps: Vec<Step>) -> ForwardingRule {
    ForwardingRule {
        id: 1,
        enabled: true,
        trigger,
        time: None,
        callers: None,
        called: None,
        action: Action::Forward(steps),
    }
}

/// The sets of the examples: nights across midnight (22:00–07:00 on weekdays), the family
/// (a phonebook group), everybody but one spammer, the office number.
fn sets() -> ForwardingSets {
    let t = |s: &str| ClockTime::parse_for("t", s).unwrap();
    let mut sets = ForwardingSets::default();
    sets.time.insert(
        "nights".into(),
        TimeSet::new(
            vec![WeeklyRange {
                days: DaysMask::WEEKDAYS,
                start: t("22:00"),
                stop: t("07:00"),
            }],
            vec![],
            vec![],
        )
        .unwrap(),
    );
    sets.callers.insert(
        "family".into(),
        CallerSet::new("c", Mode::Allow, vec![member("group:family")]).unwrap(),
    );
    sets.callers.insert(
        "not-spam".into(),
        CallerSet::new(
            "c",
            Mode::Deny,
            vec![member("sip:spam%@example.net"), member("anonymous")],
        )
        .unwrap(),
    );
    sets.called.insert(
        "office".into(),
        CalledSet::new("d", vec!["+31201234567".into()]).unwrap(),
    );
    sets
}

fn phonebook() -> Vec<PhonebookEntry> {
    vec![PhonebookEntry {
        uri: SipUri::parse_for("uri", "sip:mum@example.org").unwrap(),
        name: "Mum".into(),
        groups: vec!["family".into()],
    }]
}

/// Which events fire which trigger: the table the routing function relies on.
#[test]
fn each_trigger_fires_on_its_events_only() {
    let events = [
        Event::Arrival,
        Event::NotAvailable,
        Event::NotRegistered,
        Event::Busy,
        Event::NoAnswer,
        Event::Response(480),
        Event::Response(503),
        Event::Failure,
    ];
    let table: [(Trigger, [bool; 8]); 7] = [
        (
            Trigger::Unconditional,
            [true, false, false, false, false, false, false, false],
        ),
        (
            Trigger::NotAvailable,
            [false, true, false, false, false, false, false, false],
        ),
        (
            Trigger::NotRegistered,
            [false, false, true, false, false, false, false, false],
        ),
        (
            Trigger::Busy,
            [false, false, false, true, false, false, false, false],
        ),
        (
            Trigger::NoAnswer,
            [false, false, false, false, true, false, false, false],
        ),
        (
            Trigger::response("t", &[503, 408]).unwrap(),
            [false, false, false, false, false, false, true, false],
        ),
        (
            Trigger::AfterFirstFails,
            [false, false, false, true, true, true, true, true],
        ),
    ];
    for (trigger, expected) in table {
        for (event, want) in events.iter().zip(expected) {
            assert_eq!(trigger.fires_on(event), want, "{trigger:?} on {event:?}");
        }
    }
}

#[test]
fn response_triggers_take_final_failures_each_once() {
    assert_eq!(
        Trigger::response("t", &[503, 408]).unwrap(),
        Trigger::Response(vec![408, 503])
    );
    for (codes, says) in [
        (&[][..], "1 to 16"),
        (&[200][..], "200 is not a final failure"),
        (&[700][..], "700 is not"),
        (&[480, 480][..], "names 480 twice"),
    ] {
        let e = Trigger::response("rules[3].trigger.codes", codes)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rules[3].trigger.codes"), "{e}");
        assert!(e.contains(says), "{e}");
    }
}

/// A time-of-day rule across midnight in a non-UTC zone, a caller-set rule, a called-number
/// rule, and the first rule that holds wins, each skipped rule noted with the condition that
/// did not hold.
#[test]
fn the_first_rule_whose_conditions_all_hold_is_chosen() {
    let sets = sets();
    let book = phonebook();
    let mut nights = rule(Trigger::Unconditional, vec![step(&["<voice-mailbox>"], 35)]);
    nights.time = Some("nights".into());
    let mut family = rule(Trigger::NoAnswer, vec![step(&["+31612345678"], 20)]);
    family.callers = Some("family".into());
    let mut office = rule(Trigger::Busy, vec![step(&["reception"], 30)]);
    office.called = Some("office".into());
    let mut others = rule(Trigger::NoAnswer, vec![step(&["<voice-mailbox>"], 35)]);
    others.callers = Some("not-spam".into());
    let rules = vec![nights, family, office, others];

    let mum = caller("sip:mum@example.org");
    let friend = caller("sip:friend@example.org");
    let spammer = caller("sip:spam42@example.net");
    let facts = |who, at: &str, dialled| CallFacts {
        caller: who,
        dialled,
        at: utc(at),
        tz: amsterdam(),
        phonebook: &book,
    };
    let pick = |event: Event, f: CallFacts<'_>| {
        let mut skipped = Vec::new();
        let chosen = choose(&rules, &sets, &event, &f, &mut skipped);
        (chosen.map(|c| c.index), skipped)
    };

    // Monday 23:30 in Amsterdam (21:30 UTC in winter) is in the night; 12:00 is not.
    assert_eq!(
        pick(Event::Arrival, facts(&friend, "2026-01-05T22:30:00Z", None)).0,
        Some(0)
    );
    // Tuesday 06:30 local still belongs to Monday's night (it crosses midnight).
    assert_eq!(
        pick(Event::Arrival, facts(&friend, "2026-01-06T05:30:00Z", None)).0,
        Some(0)
    );
    let (chosen, skipped) = pick(Event::Arrival, facts(&friend, "2026-01-05T11:00:00Z", None));
    assert_eq!(chosen, None);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].contains("time set nights does not hold at Mon 2026-01-05 12:00"),
        "{skipped:?}"
    );
    // Saturday night is not a weekday night.
    assert_eq!(
        pick(Event::Arrival, facts(&friend, "2026-01-10T22:30:00Z", None)).0,
        None
    );

    // No answer: the family rings the mobile, others the voice mailbox, the spammer neither.
    assert_eq!(
        pick(Event::NoAnswer, facts(&mum, "2026-01-05T11:00:00Z", None)).0,
        Some(1)
    );
    let (chosen, skipped) = pick(
        Event::NoAnswer,
        facts(&friend, "2026-01-05T11:00:00Z", None),
    );
    assert_eq!(chosen, Some(3));
    assert!(
        skipped[0].contains("caller set family: sip:friend@example.org matches no member"),
        "{skipped:?}"
    );
    let (chosen, skipped) = pick(
        Event::NoAnswer,
        facts(&spammer, "2026-01-05T11:00:00Z", None),
    );
    assert_eq!(chosen, None);
    assert!(
        skipped[1].contains("is excluded by sip:spam%@example.net"),
        "{skipped:?}"
    );
    assert_eq!(
        pick(
            Event::NoAnswer,
            facts(&Caller::Anonymous, "2026-01-05T11:00:00Z", None)
        )
        .0,
        None,
        "anonymous callers are excluded too"
    );

    // Busy: only when the office number was dialled.
    assert_eq!(
        pick(
            Event::Busy,
            facts(&friend, "2026-01-05T11:00:00Z", Some("+31201234567"))
        )
        .0,
        Some(2)
    );
    assert_eq!(
        pick(
            Event::Busy,
            facts(&friend, "2026-01-05T11:00:00Z", Some("alice"))
        )
        .0,
        None
    );
    assert_eq!(
        pick(Event::Busy, facts(&friend, "2026-01-05T11:00:00Z", None)).0,
        None,
        "an unknown dialled address holds for no called set"
    );
}

#[test]
fn a_disabled_rule_is_never_chosen() {
    let mut off = rule(Trigger::Busy, vec![step(&["bob"], 35)]);
    off.enabled = false;
    let on = rule(Trigger::Busy, vec![step(&["carol"], 35)]);
    let book = phonebook();
    let who = caller("sip:x@example.org");
    let facts = CallFacts {
        caller: &who,
        dialled: None,
        at: utc("2026-01-05T11:00:00Z"),
        tz: amsterdam(),
        phonebook: &book,
    };
    let chosen = choose(
        &[off, on],
        &ForwardingSets::default(),
        &Event::Busy,
        &facts,
        &mut Vec::new(),
    );
    assert_eq!(chosen.map(|c| c.index), Some(1));
}

#[test]
fn caller_members_parse_and_match() {
    assert_eq!(member("*0800*"), CallerMember::User("%0800%".into()));
    assert_eq!(
        member("SIP:Spam*@Example.NET"),
        CallerMember::Address("sip:spam%@example.net".into())
    );
    assert_eq!(member("Anonymous"), CallerMember::Anonymous);
    assert_eq!(member("group:Family"), CallerMember::Group("family".into()));
    let book = phonebook();
    assert!(member("+3120%").matches(&caller("sip:+31201234567@example.com"), &book));
    assert!(!member("+3120%").matches(&caller("sip:+31101234567@example.com"), &book));
    assert!(member("group:family").matches(&caller("sip:Mum@EXAMPLE.org"), &book));
    assert!(!member("group:family").matches(&Caller::Anonymous, &book));
    for (input, says) in [
        ("", "is not a caller pattern"),
        ("group:everybody", "not phonebook groups"),
        ("sip:nohost", "sip:user@domain"),
        ("a b", "cannot appear"),
        ("user@host", "cannot appear"),
    ] {
        let e = CallerMember::parse("caller_sets.x.members[0]", input)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("caller_sets.x.members[0]"), "{e}");
        assert!(e.contains(says), "{input}: {e}");
    }
    let e = CallerSet::new("caller_sets.x", Mode::Allow, vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("would hold for nobody"), "{e}");
    let e = CallerSet::new(
        "caller_sets.x",
        Mode::Deny,
        vec![member("anonymous"), member("Anonymous")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("caller_sets.x.members[1]"), "{e}");
    // A deny set without members holds for everybody.
    let all = CallerSet::new("c", Mode::Deny, vec![]).unwrap();
    assert!(all.holds(&Caller::Anonymous, &book).0);
}

#[test]
fn steps_are_bounded_and_name_their_field() {
    let e = Step::new("rules[1].steps[0]", vec![target("bob")], 4)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[1].steps[0].ring_seconds"), "{e}");
    assert!(e.contains("5 to 300"), "{e}");
    let e = Step::new("rules[1].steps[0]", vec![target("bob")], 301)
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 to 300"), "{e}");
    let e = Step::new("rules[1].steps[0]", vec![], 30)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[1].steps[0].targets"), "{e}");
    let e = Step::new("rules[1].steps[0]", vec![target("bob"), target("Bob")], 30)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[1].steps[0].targets[1]"), "{e}");
    let e = parse_target("rules[1].steps[0].targets[0]", "not a target!", &alice())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[1].steps[0].targets[0]"), "{e}");
    assert!(Action::Forward(vec![]).check("rules[0]").is_err());
}

#[test]
fn references_are_checked_and_shadowed_rules_reported() {
    let sets = sets();
    let own = vec!["alice".to_owned(), "+31201234567".to_owned()];
    let mut timed = rule(Trigger::Unconditional, vec![step(&["bob"], 35)]);
    timed.time = Some("nights".into());
    let all = rule(Trigger::Unconditional, vec![step(&["carol"], 35)]);
    let busy = rule(Trigger::Busy, vec![step(&["dave"], 35)]);
    let next = rule(Trigger::AfterFirstFails, vec![step(&["erin"], 35)]);
    let warnings = check_references(&[timed, all, busy.clone(), next], &sets, &own).unwrap();
    assert_eq!(
        warnings,
        [(
            2,
            "rules[2] can never apply: rules[1] forwards every call first".to_owned()
        )]
    );
    let mut missing = busy.clone();
    missing.callers = Some("friends".into());
    let e = check_references(&[busy.clone(), missing], &sets, &own)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[1].callers"), "{e}");
    assert!(e.contains("'friends', which does not exist"), "{e}");
    let e = check_references(&[busy], &sets, &["alice".to_owned()])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("called_sets.office"), "{e}");
    let many = vec![rule(Trigger::Busy, vec![step(&["bob"], 35)]); MAX_RULES + 1];
    assert!(check_references(&many, &sets, &own).is_err());
    assert!(check_set_name("s", "Family").is_err());
    assert!(check_set_name("s", "family-2").is_ok());
}

/// The seed's view: a simple rule is a seed trigger, no conditions, one target, the default
/// ring time; anything richer is not.
#[test]
fn simple_rules_are_the_seed_conditions() {
    let plain = ForwardingRule::of_diversion(Condition::Busy, target("bob"));
    assert_eq!(plain.simple(), Some((Condition::Busy, &target("bob"))));
    let mut timed = plain.clone();
    timed.time = Some("nights".into());
    let mut off = plain.clone();
    off.enabled = false;
    let longer = rule(Trigger::Busy, vec![step(&["bob"], 20)]);
    let group = rule(Trigger::Busy, vec![step(&["bob", "carol"], 35)]);
    let hunt = rule(
        Trigger::Busy,
        vec![step(&["bob"], 35), step(&["carol"], 35)],
    );
    let redirect = ForwardingRule {
        action: Action::Redirect(vec![step(&["bob"], 35)]),
        ..plain.clone()
    };
    let response = rule(
        Trigger::response("t", &[503]).unwrap(),
        vec![step(&["bob"], 35)],
    );
    for r in [timed, off, longer, group, hunt, redirect, response] {
        assert_eq!(r.simple(), None, "{r:?}");
    }
    for c in Condition::ALL {
        assert_eq!(Trigger::of_condition(c).condition(), Some(c));
    }
}
