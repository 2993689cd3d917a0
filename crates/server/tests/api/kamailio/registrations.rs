//! Registrations through Kamailio reach sip-settings (`GET /v1/me/devices`,
//! `action=get_devices`) and expire on time; forged or foreign ones change nothing.

use chrono::SubsecRound;
use serde_json::{Value, json};
use sip_settings_core::Clock;

use super::*;
use crate::helpers::ALICE;

/// Alice's devices by both doors: `/v1/me/devices` and `action=get_devices`.
async fn devices_of_alice(setup: &Setup) -> (Value, Value) {
    let (status, v1) = setup.get_v1(&setup.app.alice, "/v1/me/devices").await;
    assert_eq!(status, 200, "{v1}");
    let (status, action) = setup
        .app
        .action(&setup.app.alice, "action=get_devices")
        .await;
    assert_eq!(status, 200, "{action}");
    (v1, action)
}

#[tokio::test]
async fn a_registration_through_kamailio_is_shown_with_its_device_and_expires_on_time() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // The clock on a whole second: sip-settings keeps registration times in whole seconds.
    let now = setup.app.clock.now().trunc_subsecs(0);
    setup.app.clock.set(now);
    let contact_port = free_udp_port();
    let source_port = free_udp_port();
    Sipp::start(
        "REGISTER alice",
        &register_scenario(ALICE, contact_port, 60, 200),
        source_port,
        Some(setup.kamailio.addr),
    )
    .finish(&setup.kamailio)
    .await;
    let contact = format!("sip:alice@127.0.0.1:{contact_port}");
    let source = format!("127.0.0.1:{source_port}");

    let (v1, action) = devices_of_alice(&setup).await;
    let devices = v1["devices"].as_array().unwrap_or_else(|| panic!("{v1}"));
    assert_eq!(devices.len(), 1, "{v1}");
    let device = &devices[0];
    assert!(
        device["contact"]
            .as_str()
            .is_some_and(|c| c.contains(&contact)),
        "{v1}"
    );
    assert_eq!(device["user_agent"], "sipp-phone/alice", "{v1}");
    assert_eq!(device["transport"], "udp", "{v1}");
    assert_eq!(device["source"], source.as_str(), "{v1}");
    assert_eq!(device["expires_in"], 60, "{v1}");

    let devices = action.as_array().unwrap_or_else(|| panic!("{action}"));
    assert_eq!(devices.len(), 1, "{action}");
    let device = &devices[0];
    assert!(
        device["contact"]
            .as_str()
            .is_some_and(|c| c.contains(&contact)),
        "{action}"
    );
    assert_eq!(device["userAgent"], "sipp-phone/alice", "{action}");
    assert_eq!(device["transport"], "udp", "{action}");
    assert_eq!(device["sourceAddress"], source.as_str(), "{action}");
    assert_eq!(device["expires"], 60, "{action}");

    // 59 s later it is still there, with 1 s to go; 2 s later it has expired.
    setup.app.clock.advance(chrono::Duration::seconds(59));
    let (v1, action) = devices_of_alice(&setup).await;
    assert_eq!(v1["devices"][0]["expires_in"], 1, "{v1}");
    assert_eq!(action[0]["expires"], 1, "{action}");
    setup.app.clock.advance(chrono::Duration::seconds(2));
    let (v1, action) = devices_of_alice(&setup).await;
    assert_eq!(v1, json!({"devices": []}));
    assert_eq!(action, json!([]));
}

#[tokio::test]
async fn a_subscriber_certificate_cannot_feed_registrations() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    let (status, body) = setup
        .send_v1(
            &setup.app.alice,
            reqwest::Method::POST,
            "/v1/service/registrations",
            &json!({
                "aor": "sip:alice@example.com",
                "contact": "<sip:alice@203.0.113.7:5060>",
                "expires": 3600,
                "user_agent": "forged",
                "transport": "udp",
                "source": "203.0.113.7:5060",
                "call_id": "forged-1",
                "cseq": 1
            }),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (v1, action) = devices_of_alice(&setup).await;
    assert_eq!(v1, json!({"devices": []}));
    assert_eq!(action, json!([]));
}

#[tokio::test]
async fn a_register_for_a_foreign_domain_or_an_unknown_user_changes_nothing() {
    let Some(setup) = Setup::start().await else {
        return;
    };
    // alice@example.org: not this domain; Kamailio refuses it itself.
    setup
        .register("alice@example.org", free_udp_port(), 60, 403)
        .await;
    // nobody@example.com: sip-settings knows no such account; Kamailio passes its 404 on.
    setup
        .register("nobody@example.com", free_udp_port(), 60, 404)
        .await;
    let (v1, action) = devices_of_alice(&setup).await;
    assert_eq!(v1, json!({"devices": []}));
    assert_eq!(action, json!([]));
    // Kamailio did not save alice@example.org as alice@example.com: a call to alice finds no
    // device (480).
    setup.refused_call(ALICE_URI, 480).await;
}
