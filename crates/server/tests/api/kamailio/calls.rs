//! Calls for a local account: every setting of the callee obeyed by the proxy (forwarding on
//! each condition, refusals, DND, accept rules, voicemail, chains and loops), and the proxy
//! alone (`-A ALONE`) for the benchmark's baseline.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::helpers::ALICE;

#[tokio::test]
async fn a_call_to_registered_alice_rings_her_phone_and_is_answered() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn unconditional_forwarding_reaches_bob_with_diversion_and_history_info() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let alice = setup.phone("alice", Phone::Answers).await;
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
    assert_not_rung(alice).await;
}

#[tokio::test]
async fn a_busy_alice_is_forwarded_to_bob_on_busy() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FBUS=bob").await;
    alice_fails_over_to_bob(&setup, Phone::Busy, "user-busy", 486).await;
}

#[tokio::test]
async fn an_unregistered_alice_is_forwarded_on_not_logged_in_and_rung_once_she_registers() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FNOL=bob").await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unavailable;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=503>;index=1.1;mp=1"),
    );
    // Once her phone registers, the next call rings it.
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn the_ring_time_is_a_hard_limit_and_no_answer_goes_to_bob() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["account", "set", ALICE, "--no-answer-timeout", "5"]);
    setup.alice_sets("action=set_diversions&FNOA=bob").await;
    let alice = setup.phone("alice", Phone::RingsOn).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let started = std::time::Instant::now();
    let caller = setup.answered_call(ALICE_URI).await;
    let took = started.elapsed();
    assert_eq!(invite_finals(&caller), [200]);
    // Alice's 180 did not restart the timer: 5 s after the INVITE, not 5 s after the 180.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=no-answer;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=408>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn a_rejected_caller_gets_603_and_alice_is_not_rung() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["reject", "add", ALICE, "sip:carol@example.org"]);
    let alice = setup.phone("alice", Phone::Answers).await;
    setup.refused_call(ALICE_URI, 603).await;
    assert_not_rung(alice).await;
}

#[tokio::test]
async fn an_anonymous_caller_gets_433_when_alice_rejects_anonymous_calls() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.app.cli_ok(&["reject", "add", ALICE, "anonymous"]);
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup
        .call_from(
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            ALICE_URI,
            &["Privacy: id"],
            Outcome::Refused(433),
        )
        .await;
    assert_eq!(invite_finals(&caller), [433]);
    // Carol, who shows her number, still gets through.
    setup.answered_call(ALICE_URI).await;
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn a_busy_alice_without_a_busy_forward_gives_the_caller_486_not_the_302() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let alice = setup.phone("alice", Phone::Busy).await;
    let caller = setup.refused_call(ALICE_URI, 486).await;
    assert_eq!(invite_finals(&caller), [486]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn an_unregistered_alice_without_fnol_gives_the_caller_480() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let caller = setup.refused_call(ALICE_URI, 480).await;
    assert_eq!(invite_finals(&caller), [480]);
}

#[tokio::test]
async fn after_a_forward_the_second_question_names_the_new_target() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // Alice forwards to bob, who is busy and has no busy forward: Kamailio must ask about
    // `sip:bob@example.com;cause=486` (486 Busy Here), not about alice again.
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let bob = setup.phone("bob", Phone::Busy).await;
    let caller = setup.refused_call(ALICE_URI, 486).await;
    assert_eq!(invite_finals(&caller), [486]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn dnd_refuses_with_486_and_alice_is_not_rung() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=dnd_on").await;
    let alice = setup.phone("alice", Phone::Answers).await;
    let caller = setup.refused_call(ALICE_URI, 486).await;
    assert_eq!(invite_finals(&caller), [486]);
    assert_not_rung(alice).await;
}

#[tokio::test]
async fn a_timed_dnd_refuses_until_it_lapses() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=dnd_on&duration=5").await;
    let alice = setup.phone("alice", Phone::Answers).await;
    setup.refused_call(ALICE_URI, 486).await;
    // Four minutes later it still holds; after five it has lapsed by itself.
    setup.app.clock.advance(chrono::Duration::minutes(4));
    setup.refused_call(ALICE_URI, 486).await;
    setup.app.clock.advance(chrono::Duration::seconds(61));
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

/// Alice in New York takes no calls from 12:00 to 14:00 her time, every day; the clock is set
/// to 13:30 there (18:30 UTC in January: outside the same window in UTC).
async fn lunch_break(setup: &Setup) {
    setup
        .app
        .cli_ok(&["account", "set", ALICE, "--timezone", "America/New_York"]);
    let (status, body) = setup
        .send_v1(
            &setup.app.alice,
            reqwest::Method::PUT,
            "/v1/me/accept-rules/127",
            &json!({"start": "12:00", "stop": "14:00", "groups": ["nobody"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    setup
        .app
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 12, 18, 30, 0).unwrap());
}

#[tokio::test]
async fn an_accept_rule_window_follows_the_time_of_day_in_the_accounts_time_zone() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    lunch_break(&setup).await;
    // 13:30 in New York: inside the window, refused (480: no FUNV); her phone is not rung.
    let alice = setup.phone("alice", Phone::Answers).await;
    setup.refused_call(ALICE_URI, 480).await;
    // 19:10 UTC is 14:10 in New York: outside it. Her phone gets this call, its first.
    setup
        .app
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 12, 19, 10, 0).unwrap());
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
}

#[tokio::test]
async fn a_call_refused_by_an_accept_rule_goes_to_funv() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    lunch_break(&setup).await;
    setup.alice_sets("action=set_diversions&FUNV=bob").await;
    let alice = setup.phone("alice", Phone::Answers).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=time-of-day;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=404>;index=1.1;mp=1"),
    );
    assert_not_rung(alice).await;
}

#[tokio::test]
async fn a_forward_to_the_voice_mailbox_reaches_the_voicemail_server() {
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
    setup
        .alice_sets("action=set_diversions&FUNC=%3Cvoice-mailbox%3E")
        .await;
    let vm = Sipp::listening("voicemail", &uas_scenario("vm", Phone::Answers), vm_port).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let vm = vm.finish(&setup.kamailio).await;
    let invite = invite_of(&vm);
    assert_eq!(
        invite.start,
        format!("INVITE sip:vm-alice@127.0.0.1:{vm_port} SIP/2.0"),
        "{}",
        invite.text
    );
    assert_eq!(
        invite.header("Diversion"),
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        "{}",
        invite.text
    );
    assert_eq!(
        invite.header("History-Info"),
        Some(
            format!(
                "<sip:alice@example.com>;index=1, \
                 <sip:vm-alice@127.0.0.1:{vm_port};cause=302>;index=1.1;mp=1"
            )
            .as_str()
        ),
        "{}",
        invite.text
    );
}

#[tokio::test]
async fn a_forward_to_bob_who_forwards_on_reaches_dave_with_the_whole_history() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.app.cli_ok(&[
        "account",
        "add",
        "dave@example.com",
        "--password",
        "dave-sip-password-1",
    ]);
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    setup
        .sets(&setup.app.bob, "action=set_diversions&FUNC=dave")
        .await;
    let dave = setup.phone("dave", Phone::Answers).await;
    let caller = setup.answered_call(ALICE_URI).await;
    assert_eq!(invite_finals(&caller), [200]);
    let dave = dave.finish(&setup.kamailio).await;
    assert_reached(
        &dave,
        "dave",
        Some(
            "<sip:bob@example.com>;reason=unconditional;counter=1, \
             <sip:alice@example.com>;reason=unconditional;counter=1",
        ),
        Some(
            "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1, \
             <sip:dave@example.com;cause=302>;index=1.1.1;mp=1.1",
        ),
    );
}

#[tokio::test]
async fn a_forwarding_loop_through_another_address_ends_with_482() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // Bob forwards to alice at the proxy's own address (no local account to the settings
    // check, so the loop cannot be refused when it is saved), alice forwards to bob.
    let back = format!("sip:alice@{}", setup.kamailio.addr);
    setup
        .sets(
            &setup.app.bob,
            &format!("action=set_diversions&FUNC={}", crate::helpers::enc(&back)),
        )
        .await;
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let alice = setup.phone("alice", Phone::Answers).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let started = std::time::Instant::now();
    let caller = setup.refused_call(ALICE_URI, 482).await;
    assert_eq!(invite_finals(&caller), [482]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_not_rung(alice).await;
    assert_not_rung(bob).await;
}

#[tokio::test]
async fn a_change_through_settings_phtml_is_obeyed_by_the_very_next_call() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let alice = setup.phone("alice", Phone::Answers).await;
    let bob = setup.phone("bob", Phone::Answers).await;
    // Each phone takes one call: alice's the second, bob's the third.
    setup.alice_sets("action=dnd_on").await;
    setup.refused_call(ALICE_URI, 486).await;
    setup.alice_sets("action=dnd_off").await;
    setup.answered_call(ALICE_URI).await;
    let alice = alice.finish(&setup.kamailio).await;
    assert_reached(&alice, "alice", None, None);
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    setup.answered_call(ALICE_URI).await;
    let bob = bob.finish(&setup.kamailio).await;
    assert_reached(
        &bob,
        "bob",
        Some("<sip:alice@example.com>;reason=unconditional;counter=1"),
        Some("<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1"),
    );
}

#[tokio::test]
async fn alone_kamailio_rings_a_registered_phone_without_asking_sip_settings() {
    let Some(program) = programs() else {
        return;
    };
    // No sip-settings at all: the addresses it would be asked at are ports nobody listens on.
    let kamailio = Kamailio::start(
        &program,
        &[
            format!(
                "SETTINGS=\"sip:127.0.0.1:{};transport=udp\"",
                free_udp_port()
            ),
            format!("API=\"https://127.0.0.1:{}\"", free_udp_port()),
            "DOMAIN=\"example.com\"".to_owned(),
            "ALONE".to_owned(),
        ],
    );
    let port = free_udp_port();
    let alice = Sipp::listening("alice", &uas_scenario("alice", Phone::Answers), port).await;
    Sipp::start(
        "REGISTER alice",
        &register_scenario(ALICE, port, 60, 200),
        0,
        Some(kamailio.addr),
    )
    .finish(&kamailio)
    .await;
    let caller = Sipp::start(
        "caller",
        &call_scenario(CAROL, ALICE_URI, &[], Outcome::Answered(Duration::ZERO)),
        0,
        Some(kamailio.addr),
    )
    .finish(&kamailio)
    .await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&kamailio).await;
    assert_reached(&alice, "alice", None, None);
    // bob has no device: 404 at once, from Kamailio itself.
    let caller = Sipp::start(
        "caller",
        &call_scenario(CAROL, BOB_URI, &[], Outcome::Refused(404)),
        0,
        Some(kamailio.addr),
    )
    .finish(&kamailio)
    .await;
    assert_eq!(invite_finals(&caller), [404]);
}
