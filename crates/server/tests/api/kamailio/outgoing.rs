//! Calls placed by a local account obey its settings: privacy (an anonymous From and
//! `Privacy: id` for the callee, the identity asserted only inside the trust domain) and the
//! PSTN caller id asserted on calls to phone numbers at the gateway.

use super::*;
use crate::helpers::ALICE;

const ALICE_CALLING: &str = "\"Alice\" <sip:alice@example.com>";
const NUMBER: &str = "sip:+4930123456@example.com";
const ANONYMOUS: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// The INVITE the gateway received: addressed to the dialled number at the gateway.
fn gateway_invite(setup: &Setup, exchange: &Exchange) -> Message {
    let invite = invite_of(exchange).clone();
    assert_eq!(
        invite.start,
        format!(
            "INVITE sip:+4930123456@127.0.0.1:{} SIP/2.0",
            setup.gateway_port
        ),
        "{}",
        invite.text
    );
    invite
}

/// Alice, with privacy on, calls bob from her phone with `header`; the call is answered and
/// bob sees an anonymous caller. Alice's side and bob's.
async fn hidden_alice_calls_bob(setup: &Setup, header: &str) -> (Exchange, Exchange) {
    setup.alice_sets("action=privacy_on").await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            BOB_URI,
            &[header],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    let invite = invite_of(&bob);
    assert!(
        invite
            .header("From")
            .is_some_and(|f| f.starts_with(&format!("{ANONYMOUS};tag="))),
        "{}",
        invite.text
    );
    (caller, bob)
}

#[tokio::test]
async fn with_privacy_on_the_callee_sees_an_anonymous_caller_and_no_asserted_identity() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // Her phone's own claims do not count: the proxy asserts what sip-settings says.
    let (caller, bob) =
        hidden_alice_calls_bob(&setup, "P-Asserted-Identity: <sip:carol@example.org>").await;
    let invite = invite_of(&bob);
    assert_eq!(invite.header("Privacy"), Some("id"), "{}", invite.text);
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        None,
        "{}",
        invite.text
    );
    assert!(!invite.text.contains("alice"), "{}", invite.text);
    // The caller's side of the dialog still shows her own From (restored on the way back).
    let ok = caller.finals()[0];
    assert!(
        ok.header("From")
            .is_some_and(|f| f.starts_with(ALICE_CALLING)),
        "{}",
        ok.text
    );
}

#[tokio::test]
async fn without_privacy_the_callee_sees_the_caller_and_no_asserted_identity() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            BOB_URI,
            &[],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let bob = bob.finish(&setup.kamailio).await;
    let invite = invite_of(&bob);
    assert!(
        invite
            .header("From")
            .is_some_and(|f| f.starts_with(&format!("{ALICE_CALLING};tag="))),
        "{}",
        invite.text
    );
    assert_eq!(invite.header("Privacy"), None, "{}", invite.text);
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        None,
        "{}",
        invite.text
    );
}

#[tokio::test]
async fn with_privacy_on_the_trusted_gateway_gets_the_identity_in_p_asserted_identity() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=privacy_on").await;
    let gateway = setup.gateway(Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            NUMBER,
            &[],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let gateway = gateway.finish(&setup.kamailio).await;
    let invite = gateway_invite(&setup, &gateway);
    assert!(
        invite
            .header("From")
            .is_some_and(|f| f.starts_with(&format!("{ANONYMOUS};tag="))),
        "{}",
        invite.text
    );
    assert_eq!(invite.header("Privacy"), Some("id"), "{}", invite.text);
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        Some("<sip:alice@example.com>"),
        "{}",
        invite.text
    );
}

#[tokio::test]
async fn the_pstn_caller_id_is_the_asserted_identity_on_a_call_to_a_phone_number() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup
        .app
        .cli_ok(&["account", "set", ALICE, "--pstn-caller-id", "+31201234567"]);
    let gateway = setup.gateway(Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            NUMBER,
            &["P-Asserted-Identity: <sip:+4930999999@example.com>"],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let gateway = gateway.finish(&setup.kamailio).await;
    let invite = gateway_invite(&setup, &gateway);
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        Some("<sip:+31201234567@example.com;user=phone>"),
        "{}",
        invite.text
    );
    assert!(
        invite
            .header("From")
            .is_some_and(|f| f.starts_with(&format!("{ALICE_CALLING};tag="))),
        "{}",
        invite.text
    );
    assert_eq!(invite.header("Privacy"), None, "{}", invite.text);
}

#[tokio::test]
async fn a_caller_from_outside_cannot_reach_the_gateway_through_the_domain() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let gateway = setup.gateway(Phone::Answers).await;
    let caller = setup.refused_call(NUMBER, 404).await;
    assert_eq!(invite_finals(&caller), [404]);
    assert_not_rung(gateway).await;
}

#[tokio::test]
async fn only_the_gateway_asserts_an_identity_and_no_phone_sees_it() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // Alice rejects one number; callers claim it only in P-Asserted-Identity.
    setup
        .app
        .cli_ok(&["reject", "add", ALICE, "sip:+4930123456@%"]);
    let alice = setup.phone("alice", Phone::Answers).await;
    let claim = "P-Asserted-Identity: <sip:+4930123456@example.com;user=phone>";
    // From anywhere else the claim is dropped: the call reaches alice, without it.
    let caller = setup
        .call_from(
            "<sip:unknown@pstn.example.net>",
            ALICE_URI,
            &[claim],
            Outcome::Answered(Duration::ZERO),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    let alice = alice.finish(&setup.kamailio).await;
    let invite = invite_of(&alice);
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        None,
        "{}",
        invite.text
    );
    // From the gateway's address it counts: the reject rule matches.
    let caller = Sipp::start(
        "gateway calling",
        &call_scenario(
            "<sip:unknown@pstn.example.net>",
            ALICE_URI,
            &[claim],
            Outcome::Refused(603),
        ),
        setup.gateway_port,
        Some(setup.kamailio.addr),
    )
    .finish(&setup.kamailio)
    .await;
    assert_eq!(invite_finals(&caller), [603]);
}

/// The mark of a hunt list's branch through the proxy itself counts from the proxy only: a
/// phone that sends it is asked about as any caller (here: her privacy holds) and the mark
/// does not go on.
#[tokio::test]
async fn a_phone_cannot_pass_its_call_off_as_a_hunt_list_branch() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let (_, bob) = hidden_alice_calls_bob(&setup, "X-Hunt-Leg: local").await;
    let invite = invite_of(&bob);
    assert_eq!(invite.header("X-Hunt-Leg"), None, "{}", invite.text);
}
