//! The SIP door against a real peer: `sipp` as the UAC sends INVITEs (and OPTIONS, REGISTER,
//! SUBSCRIBE, CANCEL) to the door's UDP and TCP listeners (every case on both: `ask_both`), and the tests read what came back
//! from sipp's message trace: the status, `Contact`, `Diversion`, `History-Info`,
//! `X-Ring-Time` and the To-tag, asserted exactly. Settings change through the real doors
//! (`settings.phtml`, the CLI), as a subscriber or an operator changes them; time through the
//! server's `ManualClock`.
//!
//! The scenarios are in `crates/server/tests/sipp/`; [`peer::Call::scenario`] fills in the
//! request of a case and the final status it must get, [`peer::run`] runs sipp on it. Every test
//! passes, saying so, when `sipp` is not on PATH (CI installs it).

use std::net::SocketAddr;
use std::sync::Arc;

use sip_settings::app::{RunningServer, open_services};
use sip_settings_core::Clock;
use sip_settings_sip::Transport;

use crate::helpers::sip::hint_door;
use crate::helpers::{ALICE, TestApp, assert_success};

pub(crate) mod peer;

use peer::{Call, Message, installed as sipp_installed};

/// Both stream and datagram listeners, for the cases run over each.
const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// Returns early (the test passes) when `sipp` is not installed.
macro_rules! require_sipp {
    () => {
        if !sipp_installed() {
            eprintln!("sipp not installed: skipping");
            return;
        }
    };
}

/// A server with the SIP door on UDP and TCP (port 0) and a voice-mailbox URI template.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| hint_door(c, &["udp", "tcp"])).await
}

/// The SIP door's bound address for `transport`.
fn door(server: &RunningServer, transport: Transport) -> SocketAddr {
    server
        .sip_addr(transport)
        .unwrap_or_else(|| panic!("no {transport} listener"))
}

/// Changes alice's settings through `settings.phtml`, asserting success.
async fn alice_sets(app: &TestApp, query: &str) {
    let (status, body) = app.action(&app.alice, query).await;
    assert_success(status, &body);
}

/// Runs `call` against `server`'s door and returns the one final answer, after checking that
/// it is `code` and answers the request sent: Via, From, Call-ID and CSeq echoed, the To
/// echoed with a tag added, no body.
async fn ask_server(
    server: &RunningServer,
    transport: Transport,
    call: &Call,
    code: u16,
) -> Message {
    let exchange = peer::run(door(server, transport), transport, call, code).await;
    let answer = exchange.answer().clone();
    let request = exchange.request();
    assert_eq!(answer.code(), code, "{}", answer.text);
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        assert_eq!(
            answer.all(name),
            request.all(name),
            "{name} not echoed over {transport}:\n{}",
            answer.text
        );
    }
    let sent_to = request.header("To").unwrap();
    let tag = answer
        .to_tag()
        .unwrap_or_else(|| panic!("no To-tag over {transport}:\n{}", answer.text));
    assert_eq!(tag.len(), 16, "{}", answer.text);
    assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
    assert_eq!(
        answer.header("To"),
        Some(format!("{sent_to};tag={tag}").as_str()),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.header("Content-Length"),
        Some("0"),
        "{}",
        answer.text
    );
    answer
}

/// [`ask_server`] against the app's own server.
async fn ask(app: &TestApp, transport: Transport, call: &Call, code: u16) -> Message {
    ask_server(app.server.as_ref().unwrap(), transport, call, code).await
}

/// [`ask`] over UDP, then the same call over TCP, which must get the same answer (status,
/// Contact, Diversion, History-Info, X-Ring-Time, Warning); returns the UDP one. Every case
/// thus runs against both listeners.
async fn ask_both(app: &TestApp, call: &Call, code: u16) -> Message {
    let udp = ask(app, Transport::Udp, call, code).await;
    let tcp = ask(app, Transport::Tcp, call, code).await;
    for name in [
        "Contact",
        "Diversion",
        "History-Info",
        "X-Ring-Time",
        "Warning",
        "Allow",
    ] {
        assert_eq!(
            udp.header(name),
            tcp.header(name),
            "{name} differs between UDP and TCP:\n{}\n{}",
            udp.text,
            tcp.text
        );
    }
    udp
}

/// Asserts a ring answer: `302` to the account's own URI with the ring time, no diversion.
fn assert_rings(answer: &Message, account: &str, seconds: u32) {
    assert_eq!(answer.code(), 302, "{}", answer.text);
    assert_eq!(
        answer.header("Contact"),
        Some(format!("<{account};ring={seconds}>").as_str()),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.header("X-Ring-Time"),
        Some(seconds.to_string().as_str()),
        "{}",
        answer.text
    );
    assert_eq!(answer.header("Diversion"), None, "{}", answer.text);
    assert_eq!(answer.header("History-Info"), None, "{}", answer.text);
}

/// Asserts a forward: `302` with exactly this Contact, Diversion and History-Info.
fn assert_forwards(answer: &Message, contact: &str, diversion: &str, history: &str) {
    assert_eq!(answer.code(), 302, "{}", answer.text);
    assert_eq!(answer.header("Contact"), Some(contact), "{}", answer.text);
    assert_eq!(
        answer.header("Diversion"),
        Some(diversion),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.header("History-Info"),
        Some(history),
        "{}",
        answer.text
    );
    assert_eq!(answer.header("X-Ring-Time"), None, "{}", answer.text);
}

/// Asserts a refusal: exactly `code`, no Contact.
fn assert_refused(answer: &Message, code: u16) {
    assert_eq!(answer.code(), code, "{}", answer.text);
    assert_eq!(answer.header("Contact"), None, "{}", answer.text);
    assert_eq!(answer.header("Diversion"), None, "{}", answer.text);
}

const ALICE_URI: &str = "sip:alice@example.com";

#[tokio::test]
async fn a_plain_call_rings_alice_and_a_retransmission_gets_the_same_to_tag() {
    require_sipp!();
    let app = spawn().await;
    for transport in BOTH {
        let first = ask(&app, transport, &Call::invite(ALICE_URI), 302).await;
        assert_rings(&first, ALICE_URI, 35);

        let exchange = peer::run(
            door(app.server.as_ref().unwrap(), transport),
            transport,
            &Call::invite(ALICE_URI).twice(),
            302,
        )
        .await;
        let sent: Vec<&Message> = exchange
            .sent
            .iter()
            .filter(|m| m.start.starts_with("INVITE"))
            .collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "sipp sent two different INVITEs");
        let finals = exchange.finals();
        assert_eq!(finals.len(), 2, "{finals:#?}");
        assert_rings(finals[0], ALICE_URI, 35);
        let tag = finals[0].to_tag().expect("a To-tag");
        assert_eq!(
            finals[1].to_tag(),
            Some(tag),
            "{transport}: the retransmission's To-tag"
        );
        assert_eq!(
            finals[0], finals[1],
            "{transport}: the retransmission's answer"
        );
        assert_ne!(
            first.to_tag(),
            Some(tag),
            "{transport}: two calls (two Call-IDs) got the same To-tag"
        );
    }
    // The ring time is the account's no-answer timeout.
    app.cli_ok(&["account", "set", ALICE, "--no-answer-timeout", "20"]);
    let answer = ask_both(&app, &Call::invite(ALICE_URI), 302).await;
    assert_rings(&answer, ALICE_URI, 20);
}

#[tokio::test]
async fn unconditional_forwarding_carries_diversion_and_history_info_and_privacy() {
    require_sipp!();
    let app = spawn().await;
    alice_sets(&app, "action=set_diversions&FUNC=bob").await;
    for transport in BOTH {
        let answer = ask(&app, transport, &Call::invite(ALICE_URI), 302).await;
        assert_forwards(
            &answer,
            "<sip:bob@example.com>",
            "<sip:alice@example.com>;reason=unconditional;counter=1",
            "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1",
        );
    }
    // A call that was diverted before keeps its history: the new entries go on top of the
    // Diversion list and under the last History-Info entry.
    let call = Call::invite(ALICE_URI)
        .header("Diversion: <sip:carol@example.org>;reason=user-busy;counter=1")
        .header(
            "History-Info: <sip:carol@example.org>;index=1, \
             <sip:alice@example.com;cause=486>;index=1.1;mp=1",
        );
    let answer = ask_both(&app, &call, 302).await;
    assert_forwards(
        &answer,
        "<sip:bob@example.com>",
        "<sip:alice@example.com>;reason=unconditional;counter=1, \
         <sip:carol@example.org>;reason=user-busy;counter=1",
        "<sip:carol@example.org>;index=1, <sip:alice@example.com;cause=486>;index=1.1;mp=1, \
         <sip:bob@example.com;cause=302>;index=1.1.1;mp=1.1",
    );

    alice_sets(&app, "action=privacy_on").await;
    for transport in BOTH {
        let answer = ask(&app, transport, &Call::invite(ALICE_URI), 302).await;
        assert_forwards(
            &answer,
            "<sip:bob@example.com>",
            "<sip:alice@example.com>;reason=unconditional;counter=1;privacy=full",
            "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1",
        );
    }
}

#[tokio::test]
async fn reject_rules_decline_callers_and_refuse_anonymous_ones() {
    require_sipp!();
    let app = spawn().await;
    app.cli_ok(&["reject", "add", ALICE, "sip:%spam%@%"]);
    for transport in BOTH {
        let spam = Call::invite(ALICE_URI).from("<sip:spam-king@example.org>");
        assert_refused(&ask(&app, transport, &spam, 603).await, 603);
        let carol = Call::invite(ALICE_URI);
        assert_rings(&ask(&app, transport, &carol, 302).await, ALICE_URI, 35);
        // Without the `anonymous` pattern an anonymous caller rings.
        let anonymous = Call::invite(ALICE_URI).header("Privacy: id");
        assert_rings(&ask(&app, transport, &anonymous, 302).await, ALICE_URI, 35);
    }

    app.cli_ok(&["reject", "add", ALICE, "anonymous"]);
    for transport in BOTH {
        let anonymous =
            Call::invite(ALICE_URI).from("\"Anonymous\" <sip:anonymous@anonymous.invalid>");
        assert_refused(&ask(&app, transport, &anonymous, 433).await, 433);
        let hidden = Call::invite(ALICE_URI)
            .header("Privacy: id")
            .header("P-Asserted-Identity: <sip:carol@example.org>");
        assert_refused(&ask(&app, transport, &hidden, 433).await, 433);
        let carol = Call::invite(ALICE_URI);
        assert_rings(&ask(&app, transport, &carol, 302).await, ALICE_URI, 35);
    }
}

#[tokio::test]
async fn callers_are_matched_without_uri_parameters_and_by_asserted_identity() {
    require_sipp!();
    let app = spawn().await;
    app.cli_ok(&["reject", "add", ALICE, "sip:bob@example.org"]);
    app.cli_ok(&["reject", "add", ALICE, "sip:+4930%@%"]);
    for transport in BOTH {
        let bob = Call::invite(ALICE_URI).from("<sip:bob@example.org;user=phone>");
        assert_refused(&ask(&app, transport, &bob, 603).await, 603);
        let asserted = Call::invite(ALICE_URI).header("P-Asserted-Identity: <tel:+4930123>");
        assert_refused(&ask(&app, transport, &asserted, 603).await, 603);
        // The same number in From, but another asserted identity: the assertion wins.
        let other = Call::invite(ALICE_URI)
            .from("<tel:+4930123>")
            .header("P-Asserted-Identity: <sip:carol@example.org>");
        assert_rings(&ask(&app, transport, &other, 302).await, ALICE_URI, 35);
    }
}

#[tokio::test]
async fn do_not_disturb_refuses_or_forwards_to_funv_and_a_timed_one_lapses() {
    require_sipp!();
    let app = spawn().await;
    alice_sets(&app, "action=dnd_on").await;
    let answer = ask_both(&app, &Call::invite(ALICE_URI), 486).await;
    assert_refused(&answer, 486);

    alice_sets(&app, "action=set_diversions&FUNV=%2B31201234567").await;
    for transport in BOTH {
        let answer = ask(&app, transport, &Call::invite(ALICE_URI), 302).await;
        assert_forwards(
            &answer,
            "<sip:+31201234567@example.com>",
            "<sip:alice@example.com>;reason=do-not-disturb;counter=1",
            "<sip:alice@example.com>;index=1, \
             <sip:+31201234567@example.com;cause=404>;index=1.1;mp=1",
        );
    }

    alice_sets(&app, "action=dnd_off").await;
    assert_rings(
        &ask_both(&app, &Call::invite(ALICE_URI), 302).await,
        ALICE_URI,
        35,
    );

    // DND for 30 minutes: refused until it lapses, by the server's clock.
    alice_sets(&app, "action=set_diversions&FUNV=").await;
    alice_sets(&app, "action=dnd_on&duration=30").await;
    assert_refused(&ask_both(&app, &Call::invite(ALICE_URI), 486).await, 486);
    app.clock.advance(chrono::Duration::minutes(29));
    assert_refused(&ask_both(&app, &Call::invite(ALICE_URI), 486).await, 486);
    app.clock.advance(chrono::Duration::minutes(2));
    assert_rings(
        &ask_both(&app, &Call::invite(ALICE_URI), 302).await,
        ALICE_URI,
        35,
    );
}

#[tokio::test]
async fn an_accept_rule_refuses_callers_outside_it_or_forwards_them_to_funv() {
    require_sipp!();
    let app = spawn().await;
    // Every day, all day, nobody.
    app.cli_ok(&[
        "accept", "add", ALICE, "--days", "127", "--start", "00:00", "--stop", "00:00", "--groups",
        "nobody",
    ]);
    assert_refused(&ask_both(&app, &Call::invite(ALICE_URI), 480).await, 480);
    alice_sets(&app, "action=set_diversions&FUNV=%2B31201234567").await;
    let answer = ask_both(&app, &Call::invite(ALICE_URI), 302).await;
    assert_forwards(
        &answer,
        "<sip:+31201234567@example.com>",
        "<sip:alice@example.com>;reason=time-of-day;counter=1",
        "<sip:alice@example.com>;index=1, \
         <sip:+31201234567@example.com;cause=404>;index=1.1;mp=1",
    );

    // Nobody 09:00–17:00 (UTC, alice's time zone) on every day: refused inside the window,
    // rung outside it, by the server's clock.
    alice_sets(&app, "action=set_diversions&FUNV=").await;
    app.cli_ok(&[
        "accept", "add", ALICE, "--days", "127", "--start", "09:00", "--stop", "17:00", "--groups",
        "nobody",
    ]);
    let tomorrow = (app.clock.now() + chrono::Duration::days(1)).date_naive();
    app.clock
        .set(tomorrow.and_hms_opt(12, 0, 0).unwrap().and_utc());
    assert_refused(&ask_both(&app, &Call::invite(ALICE_URI), 480).await, 480);
    app.clock
        .set(tomorrow.and_hms_opt(17, 0, 0).unwrap().and_utc());
    assert_rings(
        &ask_both(&app, &Call::invite(ALICE_URI), 302).await,
        ALICE_URI,
        35,
    );
}

#[tokio::test]
async fn an_unregistered_callee_goes_to_fnol_or_is_unavailable() {
    require_sipp!();
    let app = spawn().await;
    let unregistered = Call::invite(ALICE_URI).header("X-Registered: no");
    assert_refused(&ask_both(&app, &unregistered, 480).await, 480);

    alice_sets(&app, "action=set_diversions&FNOL=bob").await;
    let answer = ask_both(&app, &unregistered, 302).await;
    assert_forwards(
        &answer,
        "<sip:bob@example.com>",
        "<sip:alice@example.com>;reason=unavailable;counter=1",
        "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=503>;index=1.1;mp=1",
    );
    // A registered callee rings, FNOL or not.
    assert_rings(
        &ask_both(&app, &Call::invite(ALICE_URI), 302).await,
        ALICE_URI,
        35,
    );
    // Asked again after no device could be reached: FNOL too.
    let unreachable = Call::invite("sip:alice@example.com;cause=480").to("<sip:alice@example.com>");
    let answer = ask_both(&app, &unreachable, 302).await;
    assert_eq!(answer.header("Contact"), Some("<sip:bob@example.com>"));
    assert_eq!(
        answer.header("Diversion"),
        Some("<sip:alice@example.com>;reason=unavailable;counter=1")
    );
}

#[tokio::test]
async fn the_second_step_forwards_on_busy_and_on_no_answer() {
    require_sipp!();
    let app = spawn().await;
    let busy = Call::invite("sip:alice@example.com;cause=486").to("<sip:alice@example.com>");
    let no_answer = Call::invite("sip:alice@example.com;cause=408").to("<sip:alice@example.com>");
    for transport in BOTH {
        assert_refused(&ask(&app, transport, &busy, 486).await, 486);
        assert_refused(&ask(&app, transport, &no_answer, 480).await, 480);
    }

    alice_sets(&app, "action=set_diversions&FBUS=bob&FNOA=%2B31201234599").await;
    for transport in BOTH {
        let answer = ask(&app, transport, &busy, 302).await;
        assert_forwards(
            &answer,
            "<sip:bob@example.com>",
            "<sip:alice@example.com>;reason=user-busy;counter=1",
            "<sip:alice@example.com>;index=1, \
             <sip:bob@example.com;cause=486>;index=1.1;mp=1",
        );
        let answer = ask(&app, transport, &no_answer, 302).await;
        assert_forwards(
            &answer,
            "<sip:+31201234599@example.com>",
            "<sip:alice@example.com>;reason=no-answer;counter=1",
            "<sip:alice@example.com>;index=1, \
             <sip:+31201234599@example.com;cause=408>;index=1.1;mp=1",
        );
        // The first step still rings.
        let answer = ask(&app, transport, &Call::invite(ALICE_URI), 302).await;
        assert_rings(&answer, ALICE_URI, 35);
    }
}

#[tokio::test]
async fn the_voice_mailbox_target_is_the_configured_uri_while_voicemail_is_enabled() {
    require_sipp!();
    let app = spawn().await;
    app.cli_ok(&[
        "voicemail",
        "enable",
        ALICE,
        "--pin",
        "1234",
        "--email",
        "a@mail.example.org",
    ]);
    alice_sets(&app, "action=set_diversions&FBUS=%3Cvoice-mailbox%3E").await;
    let busy = Call::invite("sip:alice@example.com;cause=486").to("<sip:alice@example.com>");
    let answer = ask_both(&app, &busy, 302).await;
    assert_forwards(
        &answer,
        "<sip:vm-alice@vm.example.net>",
        "<sip:alice@example.com>;reason=user-busy;counter=1",
        "<sip:alice@example.com>;index=1, \
         <sip:vm-alice@vm.example.net;cause=486>;index=1.1;mp=1",
    );

    app.cli_ok(&["voicemail", "disable", ALICE]);
    assert_refused(&ask_both(&app, &busy, 486).await, 486);
}

#[tokio::test]
async fn loops_too_many_diversions_and_too_many_hops_are_refused() {
    require_sipp!();
    let app = spawn().await;
    let from_alice = Call::invite(ALICE_URI)
        .header("Diversion: <sip:alice@example.com>;reason=unconditional;counter=1");
    let answer = ask_both(&app, &from_alice, 482).await;
    assert_refused(&answer, 482);

    let history_through_alice = Call::invite(ALICE_URI).header(
        "History-Info: <sip:alice@example.com>;index=1, \
         <sip:carol@example.org;cause=302>;index=1.1;mp=1, \
         <sip:alice@example.com;cause=302>;index=1.1.1;mp=1.1",
    );
    assert_refused(&ask_both(&app, &history_through_alice, 482).await, 482);

    let five = Call::invite(ALICE_URI)
        .header("Diversion: <sip:carol@example.org>;reason=unconditional;counter=5");
    assert_rings(&ask_both(&app, &five, 302).await, ALICE_URI, 35);
    let six = Call::invite(ALICE_URI)
        .header("Diversion: <sip:carol@example.org>;reason=unconditional;counter=6");
    assert_refused(&ask_both(&app, &six, 482).await, 482);

    let last_hop = Call::invite(ALICE_URI).max_forwards(1);
    assert_rings(&ask_both(&app, &last_hop, 302).await, ALICE_URI, 35);
    let no_hops = Call::invite(ALICE_URI).max_forwards(0);
    assert_refused(&ask_both(&app, &no_hops, 483).await, 483);
}

#[tokio::test]
async fn aliases_enum_numbers_and_tel_uris_reach_the_account_and_strangers_are_not_found() {
    require_sipp!();
    let app = spawn().await;
    app.cli_ok(&["alias", "add", "alice.smith@example.com", ALICE]);
    app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
    for transport in BOTH {
        for uri in [
            "sip:alice.smith@example.com",
            "sip:+31201234567@example.com;user=phone",
            "tel:+31201234567",
        ] {
            let answer = ask(&app, transport, &Call::invite(uri), 302).await;
            assert_rings(&answer, ALICE_URI, 35);
        }
        for uri in ["sip:nobody@example.com", "sip:alice@example.org"] {
            assert_refused(&ask(&app, transport, &Call::invite(uri), 404).await, 404);
        }
    }
    // A forward names the account as the diverting party and the dialled alias in the history.
    alice_sets(&app, "action=set_diversions&FUNC=bob").await;
    let answer = ask_both(&app, &Call::invite("sip:alice.smith@example.com"), 302).await;
    assert_forwards(
        &answer,
        "<sip:bob@example.com>",
        "<sip:alice@example.com>;reason=unconditional;counter=1",
        "<sip:alice.smith@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1",
    );
}

#[tokio::test]
async fn options_register_subscribe_and_cancel_get_their_answers() {
    require_sipp!();
    let app = spawn().await;
    for transport in BOTH {
        let answer = ask(&app, transport, &Call::request("OPTIONS", ALICE_URI), 200).await;
        assert_eq!(
            answer.header("Allow"),
            Some("INVITE, ACK, CANCEL, OPTIONS"),
            "{}",
            answer.text
        );
        assert_eq!(
            answer.header("Accept"),
            Some("application/sdp"),
            "{}",
            answer.text
        );

        let register = Call::request("REGISTER", "sip:example.com")
            .to("<sip:alice@example.com>")
            .header("Expires: 3600");
        let subscribe = Call::request("SUBSCRIBE", ALICE_URI)
            .header("Event: presence")
            .header("Expires: 600");
        for call in [register, subscribe] {
            let answer = ask(&app, transport, &call, 405).await;
            assert_eq!(
                answer.header("Allow"),
                Some("INVITE, ACK, CANCEL, OPTIONS"),
                "{}",
                answer.text
            );
            assert_eq!(answer.header("Contact"), None, "{}", answer.text);
        }

        let answer = ask(&app, transport, &Call::request("CANCEL", ALICE_URI), 200).await;
        assert_eq!(answer.header("Contact"), None, "{}", answer.text);
    }
}

#[tokio::test]
async fn a_change_through_settings_phtml_is_obeyed_by_the_very_next_invite() {
    require_sipp!();
    let app = spawn().await;
    let call = Call::invite(ALICE_URI);
    assert_rings(&ask_both(&app, &call, 302).await, ALICE_URI, 35);
    alice_sets(&app, "action=set_diversions&FUNC=bob").await;
    let answer = ask_both(&app, &call, 302).await;
    assert_eq!(
        answer.header("Contact"),
        Some("<sip:bob@example.com>"),
        "{}",
        answer.text
    );
    alice_sets(&app, "action=set_diversions&FUNC=").await;
    assert_rings(&ask_both(&app, &call, 302).await, ALICE_URI, 35);
    alice_sets(&app, "action=dnd_on").await;
    assert_refused(&ask_both(&app, &call, 486).await, 486);
}

#[tokio::test]
async fn a_second_server_on_the_same_store_follows_a_change_made_through_the_first() {
    require_sipp!();
    let app = spawn().await;
    // Its own services (its own caches), as a second process on the same data directory.
    let services = open_services(&app.config, app.clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let second = RunningServer::start(&app.config, services).await.unwrap();
    assert_ne!(
        door(&second, Transport::Udp),
        door(app.server.as_ref().unwrap(), Transport::Udp)
    );
    let call = Call::invite(ALICE_URI);
    for transport in BOTH {
        assert_rings(
            &ask_server(&second, transport, &call, 302).await,
            ALICE_URI,
            35,
        );
    }
    alice_sets(&app, "action=set_diversions&FUNC=bob").await;
    for transport in BOTH {
        let answer = ask_server(&second, transport, &call, 302).await;
        assert_forwards(
            &answer,
            "<sip:bob@example.com>",
            "<sip:alice@example.com>;reason=unconditional;counter=1",
            "<sip:alice@example.com>;index=1, <sip:bob@example.com;cause=302>;index=1.1;mp=1",
        );
    }
    alice_sets(&app, "action=set_diversions&FUNC=").await;
    assert_rings(
        &ask_server(&second, Transport::Udp, &call, 302).await,
        ALICE_URI,
        35,
    );
    second.stop().await;
}

#[tokio::test]
async fn a_forward_from_the_second_step_counts_as_one_diversion_when_the_proxy_sends_it_on() {
    require_sipp!();
    // One diversion allowed: a call the door diverted once must still reach its target. (The
    // door's second-step answer once started History-Info with the Request-URI as asked,
    // `<sip:alice@example.com;cause=486>;index=1`, and counted every entry with a `cause` as a
    // diversion: one diversion was counted as two.)
    let app = TestApp::spawn_with(|c| {
        c.sip.listen = vec![
            "udp:127.0.0.1:0".parse().unwrap(),
            "tcp:127.0.0.1:0".parse().unwrap(),
        ];
        c.sip.max_diversions = 1;
        c.sip.registrations = sip_settings_sip::Registrations::Hint;
    })
    .await;
    alice_sets(&app, "action=set_diversions&FUNC=bob").await;
    let first = ask_both(&app, &Call::invite(ALICE_URI), 302).await;
    alice_sets(&app, "action=set_diversions&FUNC=&FBUS=bob").await;
    let busy = Call::invite("sip:alice@example.com;cause=486").to("<sip:alice@example.com>");
    let second = ask_both(&app, &busy, 302).await;
    // The proxy follows each answer to bob, carrying the door's Diversion and History-Info.
    for (step, answer) in [
        ("first step (FUNC)", &first),
        ("second step (FBUS)", &second),
    ] {
        let onward = Call::invite("sip:bob@example.com")
            .header(&format!(
                "Diversion: {}",
                answer.header("Diversion").unwrap()
            ))
            .header(&format!(
                "History-Info: {}",
                answer.header("History-Info").unwrap()
            ));
        let exchange = peer::run(
            door(app.server.as_ref().unwrap(), Transport::Udp),
            Transport::Udp,
            &onward,
            302,
        )
        .await;
        let got = exchange.answer();
        assert_eq!(
            got.header("Contact"),
            Some("<sip:bob@example.com;ring=35>"),
            "after the {step} the door counts more than one diversion:\n{}",
            got.text
        );
    }
}
