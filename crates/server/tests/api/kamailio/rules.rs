//! Forwarding rules with conditions (issue 19) decided through Kamailio: a time-of-day rule
//! across midnight in a non-UTC zone, the same on DST change days, a caller-set rule (family
//! to one place, everybody else to voicemail), a called-number rule (an alias dialled), and a
//! forward on the phone's 503.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::helpers::ALICE;

/// Alice in Amsterdam with these sets and rules (through `/v1/me`, as a subscriber would).
async fn alice_rules(setup: &Setup, sets: Value, rules: Value) {
    let (status, body) = setup
        .send_v1(
            &setup.app.alice,
            reqwest::Method::PATCH,
            "/v1/me",
            &json!({"timezone": "Europe/Amsterdam"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = setup
        .send_v1(
            &setup.app.alice,
            reqwest::Method::PUT,
            "/v1/me/forwarding-sets",
            &sets,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = setup
        .send_v1(
            &setup.app.alice,
            reqwest::Method::PUT,
            "/v1/me/forwarding-rules",
            &json!({ "rules": rules }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Carol calls alice at `at`: bob's phone gets it, forwarded unconditionally before alice's
/// phone is asked about (History-Info's cause 302), or alice's phone (registered now, its only
/// binding) rings and answers.
async fn call_at(setup: &Setup, at: DateTime<Utc>, forwarded: bool) {
    setup.app.clock.set(at);
    let (user, diversion, history) = if forwarded {
        (
            "bob",
            Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
            Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
        )
    } else {
        ("alice", None, None)
    };
    let phone = setup.phone(user, Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200], "at {at}");
    let phone = phone.finish(&setup.kamailio).await;
    assert_reached(&phone, user, diversion, history);
}

#[tokio::test]
async fn a_night_rule_across_midnight_in_amsterdam_forwards_by_night_and_rings_by_day() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    alice_rules(
        &setup,
        json!({"time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}}}),
        json!([{"trigger": "unconditional", "time": "nights", "steps": [{"targets": ["bob"]}]}]),
    )
    .await;
    // (Dates after today's: a phone's registration is timed by the proxy's real clock.)
    // Tuesday 23:30 in Amsterdam (22:30 UTC): the night.
    call_at(&setup, utc(2027, 11, 23, 22, 30), true).await;
    // Wednesday 06:30 there (05:30 UTC): still Tuesday's night, after midnight.
    call_at(&setup, utc(2027, 11, 24, 5, 30), true).await;
    // Wednesday 07:30 there (06:30 UTC; in UTC it would still be "before 07:00"): day.
    call_at(&setup, utc(2027, 11, 24, 6, 30), false).await;
}

#[tokio::test]
async fn a_time_rule_on_the_dst_change_days_follows_the_local_clock() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    alice_rules(
        &setup,
        json!({"time_sets": {"early": {"weekly": [{"days": 64, "start": "00:00", "stop": "06:00"}]}}}),
        json!([{"trigger": "unconditional", "time": "early", "steps": [{"targets": ["bob"]}]}]),
    )
    .await;
    // Spring forward, Sunday 2027-03-28: 01:30 UTC is 03:30 CEST (it would be 02:30 CET by a
    // fixed offset): early Sunday, forwarded.
    call_at(&setup, utc(2027, 3, 28, 1, 30), true).await;
    // Fall back, Sunday 2027-10-31: 05:30 UTC is 06:30 CET (05:30 CET is still in the window
    // by the summer offset): no longer early, rung.
    call_at(&setup, utc(2027, 10, 31, 5, 30), false).await;
}

#[tokio::test]
async fn family_reaches_bob_and_everybody_else_the_voice_mailbox() {
    let vm_port = free_udp_port();
    let Some(setup) = Setup::start_with(|c| {
        c.sip.voicemail_uri = Some(
            format!("sip:vm-{{user}}@127.0.0.1:{vm_port}")
                .parse()
                .unwrap(),
        );
    })
    .await
    else {
        return;
    };
    setup.app.cli_ok(&["voicemail", "enable", ALICE]);
    alice_rules(
        &setup,
        json!({"caller_sets": {"family": {"mode": "allow", "members": ["sip:carol@example.org"]}}}),
        json!([
            {"trigger": "unconditional", "callers": "family", "steps": [{"targets": ["bob"]}]},
            {"trigger": "unconditional", "steps": [{"targets": ["<voice-mailbox>"]}]}
        ]),
    )
    .await;
    // Carol is family: bob.
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
    // Dave is not: the voice mailbox.
    let vm = Sipp::listening("voicemail", &uas_scenario("vm", Phone::Answers), vm_port).await;
    let caller = setup
        .call_from(
            "\"Dave\" <sip:dave@example.org>",
            ALICE_URI,
            &[],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let vm = vm.finish(&setup.kamailio).await;
    assert_eq!(
        invite_of(&vm).start,
        format!("INVITE sip:vm-alice@127.0.0.1:{vm_port} SIP/2.0")
    );
}

#[tokio::test]
async fn the_office_alias_dialled_goes_to_bob_and_alice_s_own_address_rings_her() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["alias", "add", "office@example.com", ALICE]);
    alice_rules(
        &setup,
        json!({"called_sets": {"office": {"addresses": ["office"]}}}),
        json!([{"trigger": "unconditional", "called": "office", "steps": [{"targets": ["bob"]}]}]),
    )
    .await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call("sip:office@example.com").await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    let invite = invite_of(&bob);
    assert!(
        invite.start.starts_with("INVITE sip:bob@127.0.0.1:"),
        "{}",
        invite.text
    );
    assert_eq!(
        invite.header("Diversion"),
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        "{}",
        invite.text
    );
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn a_503_from_alice_s_phone_goes_to_bob_by_a_rule_on_that_response() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    alice_rules(
        &setup,
        json!({}),
        json!([{"trigger": "response", "codes": [503], "steps": [{"targets": ["bob"]}]}]),
    )
    .await;
    alice_fails_over_to_bob(&setup, Phone::Unavailable, "unavailable", 503).await;
}

#[tokio::test]
async fn a_503_without_a_rule_for_it_is_unreachable_as_before() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FNOL=bob").await;
    alice_fails_over_to_bob(&setup, Phone::Unavailable, "unavailable", 503).await;
}

/// A hunt list: bob (a local account, asked about and rung through the proxy itself) for the
/// step's 5 s, then a parallel group of two phones elsewhere, one of which answers; the other
/// is cancelled, and so is bob when his step's time is up.
#[tokio::test]
async fn a_hunt_list_rings_bob_for_his_step_then_a_group_where_carol_answers() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let carol_port = free_udp_port();
    let dave_port = free_udp_port();
    alice_rules(
        &setup,
        json!({}),
        json!([{"trigger": "unconditional", "steps": [
            {"targets": ["bob"], "ring_seconds": 5},
            {"targets": [
                format!("sip:dave@127.0.0.1:{dave_port}"),
                format!("sip:carol@127.0.0.1:{carol_port}")
            ], "ring_seconds": 30}
        ]}]),
    )
    .await;
    let bob = setup.phone("bob", Phone::RingsOn).await;
    let carol = Sipp::listening("carol", &uas_scenario("carol", Phone::Answers), carol_port).await;
    let dave = Sipp::listening("dave", &uas_scenario("dave", Phone::RingsOn), dave_port).await;
    let started = Instant::now();
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    // Bob's phone rang (through his own question: the proxy found his binding) and was
    // cancelled when the step's 5 s were up, not at his own ring time (35 s).
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
    assert!(
        bob.received.iter().any(|m| m.start.starts_with("CANCEL ")),
        "{}",
        texts(&bob.received)
    );
    let carol = carol.finish(&setup.kamailio).await;
    let invite = invite_of(&carol);
    assert_eq!(
        invite.start,
        format!("INVITE sip:carol@127.0.0.1:{carol_port} SIP/2.0"),
        "{}",
        invite.text
    );
    assert_eq!(
        invite.header("Diversion"),
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        "{}",
        invite.text
    );
    assert!(invite.header("X-Hunt-Leg").is_none(), "{}", invite.text);
    let dave = dave.finish(&setup.kamailio).await;
    assert!(
        dave.received.iter().any(|m| m.start.starts_with("CANCEL ")),
        "{}",
        texts(&dave.received)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "the second step began after {took:?}"
    );
}
