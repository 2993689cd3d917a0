//! Finished calls through Kamailio become call records (answered, busy, cancelled, forwarded)
//! that both local parties see (`action=calls`, `/v1/me/calls`).

use serde_json::Value;

use super::*;

const ALICE_CALLING: &str = "\"Alice\" <sip:alice@example.com>";

/// What identifies a call in the records: Call-ID and From tag from the caller's INVITE, To
/// tag from the final answer it got.
pub(super) struct Ids {
    pub(super) call_id: String,
    pub(super) from_tag: String,
    pub(super) to_tag: String,
}

pub(super) fn ids_of(caller: &Exchange) -> Ids {
    let invite = caller.request();
    let tag = |header: &str| {
        header
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .unwrap_or_default()
            .to_owned()
    };
    let answer = *caller.finals().first().expect("a final answer");
    Ids {
        call_id: invite.header("Call-ID").unwrap().to_owned(),
        from_tag: tag(invite.header("From").unwrap()),
        to_tag: answer.to_tag().unwrap_or_default().to_owned(),
    }
}

/// The calls of `list` (`placed` or `received`) that `action=calls` shows, once there are any.
pub(super) async fn calls_shown(setup: &Setup, cert: &IssuedCertificate, list: &str) -> Vec<Value> {
    let value = poll(
        &setup.kamailio,
        &format!("{list} calls"),
        || async { setup.app.read(cert, "calls").await },
        |v| v[list].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    value[list].as_array().unwrap().clone()
}

/// The calls `/v1/me/calls` shows in one direction.
async fn v1_calls(setup: &Setup, cert: &IssuedCertificate, direction: &str) -> Vec<Value> {
    let (status, body) = setup
        .get_v1(cert, &format!("/v1/me/calls?direction={direction}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["calls"].as_array().unwrap().clone()
}

/// Asserts one call record as `action=calls` shows it.
fn assert_record(call: &Value, ids: &Ids, remote: &str, status: u16, duration: u64) {
    assert_eq!(call["sessionId"], ids.call_id.as_str(), "{call}");
    assert_eq!(call["fromTag"], ids.from_tag.as_str(), "{call}");
    assert_eq!(call["toTag"], ids.to_tag.as_str(), "{call}");
    assert_eq!(call["remoteParty"], remote, "{call}");
    assert_eq!(call["status"], status, "{call}");
    assert_eq!(call["duration"], duration, "{call}");
    assert_eq!(call["proxyIP"], "127.0.0.1", "{call}");
    assert_eq!(call["media"], serde_json::json!(["audio"]), "{call}");
}

#[tokio::test]
async fn an_answered_call_is_recorded_for_both_parties() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            BOB_URI,
            &[],
            Outcome::Answered(Duration::from_millis(1200)),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    bob.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    assert!(ids.to_tag.ends_with("-uas"), "{}", ids.to_tag);

    let placed = calls_shown(&setup, &setup.app.alice, "placed").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_record(&placed[0], &ids, BOB_URI, 200, 1);
    let received = calls_shown(&setup, &setup.app.bob, "received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_record(&received[0], &ids, ALICE_URI, 200, 1);

    for (cert, direction, remote) in [
        (&setup.app.alice, "placed", BOB_URI),
        (&setup.app.bob, "received", ALICE_URI),
    ] {
        let calls = v1_calls(&setup, cert, direction).await;
        assert_eq!(calls.len(), 1, "{calls:?}");
        let call = &calls[0];
        assert_eq!(call["call_id"], ids.call_id.as_str(), "{call}");
        assert_eq!(call["from_tag"], ids.from_tag.as_str(), "{call}");
        assert_eq!(call["to_tag"], ids.to_tag.as_str(), "{call}");
        assert_eq!(call["caller"], ALICE_URI, "{call}");
        assert_eq!(call["callee"], BOB_URI, "{call}");
        assert_eq!(call["remote_party"], remote, "{call}");
        assert_eq!(call["status"], 200, "{call}");
        assert_eq!(call["duration"], 1, "{call}");
        assert_eq!(call["proxy_ip"], "127.0.0.1", "{call}");
        assert_eq!(call["media"], serde_json::json!(["audio"]), "{call}");
    }
}

#[tokio::test]
async fn a_busy_call_is_recorded_with_486() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::Busy).await;
    let caller = setup
        .call_from(ALICE_CALLING, BOB_URI, &[], Outcome::Refused(486))
        .await;
    bob.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    let placed = calls_shown(&setup, &setup.app.alice, "placed").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_record(&placed[0], &ids, BOB_URI, 486, 0);
    let received = calls_shown(&setup, &setup.app.bob, "received").await;
    assert_record(&received[0], &ids, ALICE_URI, 486, 0);
}

#[tokio::test]
async fn a_cancelled_call_is_recorded_with_487() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::RingsOn).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            BOB_URI,
            &[],
            Outcome::Cancelled(Duration::from_millis(300)),
        )
        .await;
    let bob = bob.finish(&setup.kamailio).await;
    // The caller's 487 comes from the proxy (its own To tag); the record names the tag of the
    // callee's 487, the one the proxy saw.
    let mut ids = ids_of(&caller);
    let terminated = bob
        .sent
        .iter()
        .find(|m| m.code() == 487)
        .unwrap_or_else(|| panic!("{}", texts(&bob.sent)));
    ids.to_tag = terminated.to_tag().unwrap().to_owned();
    let placed = calls_shown(&setup, &setup.app.alice, "placed").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_record(&placed[0], &ids, BOB_URI, 487, 0);
    let received = calls_shown(&setup, &setup.app.bob, "received").await;
    assert_record(&received[0], &ids, ALICE_URI, 487, 0);
}

#[tokio::test]
async fn a_forwarded_call_is_recorded_for_the_dialled_account() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    setup.alice_sets("action=set_diversions&FUNC=bob").await;
    let bob = setup.phone("bob", Phone::Answers).await;
    let caller = setup
        .call_from(
            CAROL,
            ALICE_URI,
            &[],
            Outcome::Answered(Duration::from_millis(1200)),
        )
        .await;
    bob.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    let received = calls_shown(&setup, &setup.app.alice, "received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_record(&received[0], &ids, "sip:carol@example.org", 200, 1);
}

#[tokio::test]
async fn without_a_kept_open_connection_registrations_and_records_still_arrive() {
    let Some(setup) = Setup::start_without_kept_connection().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::Answers).await;
    let (status, devices) = setup.get_v1(&setup.app.bob, "/v1/me/devices").await;
    assert_eq!(status, 200, "{devices}");
    assert_eq!(
        devices["devices"].as_array().map(Vec::len),
        Some(1),
        "{devices}"
    );
    let caller = setup
        .call_from(
            ALICE_CALLING,
            BOB_URI,
            &[],
            Outcome::Answered(Duration::from_millis(1200)),
        )
        .await;
    bob.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    let received = calls_shown(&setup, &setup.app.bob, "received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_record(&received[0], &ids, ALICE_URI, 200, 1);
}

/// A Call-ID may hold a quote and a backslash (RFC 3261 `word`): the record is written by
/// jansson then (the fast path writes plain strings) and arrives as it was.
#[tokio::test]
async fn a_call_id_with_a_quote_and_a_backslash_is_recorded_as_it_is() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let bob = setup.phone("bob", Phone::Answers).await;
    let scenario = call_scenario(
        ALICE_CALLING,
        BOB_URI,
        &[],
        Outcome::Answered(Duration::ZERO),
    );
    // sipp's own Call-ID format, so that it still maps the answers to its call.
    let caller = Sipp::start_with(
        "caller",
        &scenario,
        0,
        Some(setup.kamailio.addr),
        &["-cid_str", "q\"uo\\te-%u-%p@%s"],
    )
    .finish(&setup.kamailio)
    .await;
    assert_eq!(invite_finals(&caller), [200]);
    bob.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    assert!(ids.call_id.starts_with("q\"uo\\te-"), "{}", ids.call_id);
    let placed = calls_shown(&setup, &setup.app.alice, "placed").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_record(&placed[0], &ids, BOB_URI, 200, 0);
}
