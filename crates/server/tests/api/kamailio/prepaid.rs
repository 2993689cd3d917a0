//! Prepaid calls through Kamailio: the originating question opens a prepaid session (or
//! refuses the call with 402), the dialog's hard timeout ends the call at the granted time with
//! a BYE, and the close at the BYE debits the balance.

use serde_json::Value;

use super::records::{calls_shown, ids_of};
use super::*;
use crate::helpers::ALICE;

const ALICE_CALLING: &str = "\"Alice\" <sip:alice@example.com>";
const NUMBER: &str = "sip:+4930123456@example.com";

/// Alice is prepaid with `balance` and a rate for Germany (+49) of 0.60 a minute, billed per
/// second.
fn prepaid_alice(setup: &Setup, balance: &str) {
    setup
        .app
        .cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    setup.app.cli_ok(&["balance", "set", ALICE, balance]);
    let rates = setup.app.data_dir().join("rates.csv");
    std::fs::write(
        &rates,
        "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n\
         49,Germany,0,0.60,1,0\n",
    )
    .unwrap();
    setup
        .app
        .cli_ok(&["rates", "import", rates.to_str().unwrap()]);
}

/// Alice's balance history, once it has a debit.
async fn debits(setup: &Setup) -> Vec<Value> {
    let history = poll(
        &setup.kamailio,
        "a debit",
        || async { setup.app.read(&setup.app.alice, "balance_history").await },
        |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|e| e["action"] == "debit"))
        },
    )
    .await;
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "debit")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_prepaid_call_is_debited_after_the_bye() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    prepaid_alice(&setup, "1.00");
    let gateway = setup.gateway(Phone::Answers).await;
    let caller = setup
        .call_from(
            ALICE_CALLING,
            NUMBER,
            &[],
            Outcome::Answered(Duration::from_millis(1200)),
        )
        .await;
    assert_eq!(invite_finals(&caller), [200]);
    gateway.finish(&setup.kamailio).await;
    let ids = ids_of(&caller);
    let debits = debits(&setup).await;
    assert_eq!(debits.len(), 1, "{debits:?}");
    assert_eq!(debits[0]["value"], "-0.0100", "{debits:?}");
    assert_eq!(debits[0]["balance"], "0.9900", "{debits:?}");
    assert_eq!(debits[0]["session"], ids.call_id.as_str(), "{debits:?}");
    let placed = calls_shown(&setup, &setup.app.alice, "placed").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0]["price"], "0.0100", "{placed:?}");
    assert_eq!(placed[0]["duration"], 1, "{placed:?}");
    assert_eq!(placed[0]["sessionId"], ids.call_id.as_str(), "{placed:?}");
    // The session is closed: no active prepaid call is left.
    let prepaid = setup.app.read(&setup.app.alice, "prepaid").await;
    assert_eq!(prepaid["active_calls"], serde_json::json!([]), "{prepaid}");
}

#[tokio::test]
async fn a_prepaid_call_is_cut_at_the_granted_time() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // 0.03 at 0.01 a second: 3 seconds.
    prepaid_alice(&setup, "0.03");
    let gateway = setup.gateway(Phone::AnswersUntilCut).await;
    let started = std::time::Instant::now();
    let caller = setup
        .call_from(ALICE_CALLING, NUMBER, &[], Outcome::CutByProxy)
        .await;
    let took = started.elapsed();
    assert_eq!(invite_finals(&caller), [200]);
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let gateway = gateway.finish(&setup.kamailio).await;
    assert!(
        gateway.received.iter().any(|m| m.start.starts_with("BYE ")),
        "{}",
        texts(&gateway.received)
    );
    let debits = debits(&setup).await;
    assert_eq!(debits.len(), 1, "{debits:?}");
    assert_eq!(debits[0]["value"], "-0.0300", "{debits:?}");
    assert_eq!(debits[0]["balance"], "0.0000", "{debits:?}");
}

#[tokio::test]
async fn a_prepaid_call_the_balance_does_not_allow_is_refused_with_402() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    prepaid_alice(&setup, "0");
    let gateway = setup.gateway(Phone::Answers).await;
    let caller = setup
        .call_from(ALICE_CALLING, NUMBER, &[], Outcome::Refused(402))
        .await;
    let answer = caller.finals()[0];
    assert_eq!(answer.code(), 402, "{}", answer.text);
    assert!(answer.header("Warning").is_some(), "{}", answer.text);
    assert_not_rung(gateway).await;
}
