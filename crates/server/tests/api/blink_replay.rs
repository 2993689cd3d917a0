//! The clients replayed (issue 18, point 6): the exact requests Blink Cocoa and Blink Qt make of
//! `settings_url`, built as their sources build them (`blink/replay.py`, which quotes the lines),
//! against the real server, with Python's `urllib` Digest implementation as the client — a
//! second, independent one beside curl (`blink_web`, `digest`). Blink Cocoa: the call-history
//! poll every 300 s, chat-journal replication between two of the account's devices (push, pull
//! with `summary=1`, delete) and its Server Tools pages; Blink Qt: its Server Tools pages. Every
//! request is first sent without credentials and the challenge answered, as Blink does.

use std::process::Command;

use chrono::Duration;
use serde_json::{Value, json};
use sip_settings_core::calls::CallInput;

use crate::helpers::{ALICE, ALICE_PASSWORD, TestApp, have_tool};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/blink/replay.py");

/// One step of `replay.py` as alice (user part and SIP password, as Blink sends them).
fn replay(app: &TestApp, password: &str, step: &str, args: &[&str]) -> Value {
    let ca = app.write_file("replay-ca.crt", &app.ca_pem);
    let settings_url = format!("{}/settings.phtml", app.base);
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(&settings_url)
        .arg(&ca)
        .args(["alice", password, step, "example.com"])
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{step}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// The JSON body of a step's answer.
fn body_of(seen: &Value) -> Value {
    serde_json::from_str(seen["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blink_cocoa_and_qt_replayed_against_the_server() {
    if !have_tool("python3") {
        eprintln!("SKIP: python3 is not installed");
        return;
    }
    let app = TestApp::spawn().await;
    let now = sip_settings_core::Clock::now(app.clock.as_ref());
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.services
        .record_call(&CallInput {
            call_id: "replay-cancelled".into(),
            from_tag: "f1".into(),
            to_tag: String::new(),
            caller: format!("sip:{ALICE}"),
            callee: "sip:bob@example.com".into(),
            start: rfc(now - Duration::minutes(30)),
            stop: rfc(now - Duration::minutes(30)),
            duration: Some(0),
            status: Some(487),
            media: vec!["audio".into()],
            proxy_ip: "192.0.2.1".into(),
            price: None,
        })
        .await
        .unwrap();

    // Blink Cocoa's call-history poll, then again 300 s later (its NSTimer).
    let first = replay(&app, ALICE_PASSWORD, "cocoa-history", &[]);
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(
        first["challenges"], 1,
        "sent without credentials, then answered: {first}"
    );
    let history = body_of(&first);
    let placed = &history["placed"][0];
    assert_eq!(placed["status"], "487", "{history}");
    assert_eq!(placed["remoteParty"], "bob@example.com", "{history}");
    app.clock.advance(Duration::seconds(300));
    let second = replay(&app, ALICE_PASSWORD, "cocoa-history", &[]);
    assert_eq!(
        (second["status"].clone(), second["challenges"].clone()),
        (json!(200), json!(1))
    );
    assert_eq!(body_of(&second), history, "the same calls, 300 s later");
    // A wrong password: Blink answers the first challenge only, and gives up at the second.
    let wrong = replay(&app, "not-the-password", "cocoa-history", &[]);
    assert_eq!(
        (wrong["status"].clone(), wrong["challenges"].clone()),
        (json!(401), json!(2)),
        "{wrong}"
    );

    // Chat-journal replication between two of alice's devices (instance ids A and B).
    let (a, b) = (
        "urn:uuid:a6a9c6a2-6d4f-11ee-9e3b-000000000001",
        "urn:uuid:b6a9c6a2-6d4f-11ee-9e3b-000000000002",
    );
    let outgoing = json!({
        "msg-1": {"data": "ZW5jcnlwdGVkIG9uZQ==", "id": "msg-1"},
        "msg-2": {"data": "ZW5jcnlwdGVkIHR3bw==", "id": "msg-2"},
    });
    let pushed = replay(
        &app,
        ALICE_PASSWORD,
        "cocoa-put",
        &[a, &outgoing.to_string()],
    );
    assert_eq!(pushed["status"], 200, "{pushed}");
    assert_eq!(pushed["blink"]["success"], true, "{pushed}");
    let ids = pushed["blink"]["journal_ids"]
        .as_object()
        .expect("journal ids")
        .clone();
    assert_eq!(ids.len(), 2, "{pushed}");
    let (id1, id2) = (
        ids["msg-1"].as_str().unwrap().to_owned(),
        ids["msg-2"].as_str().unwrap().to_owned(),
    );
    // Device B pulls, with the summary on its first pull: A's two entries, as A pushed them.
    let pulled = replay(&app, ALICE_PASSWORD, "cocoa-get", &[b, "0", "1"]);
    assert_eq!(pulled["status"], 200, "{pulled}");
    let seen = &pulled["blink"];
    assert_eq!(seen["success"], true, "{pulled}");
    let entries = seen["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{pulled}");
    assert!(entries.iter().all(|e| e["uuid"] == a), "{pulled}");
    let mut got: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["journal_id"].as_str().unwrap().to_owned(),
                e["data"].to_string(),
            )
        })
        .collect();
    got.sort();
    assert!(got.iter().any(|(id, _)| *id == id1) && got.iter().any(|(id, _)| *id == id2));
    let summary = seen["summary_journal_ids"]
        .as_array()
        .expect("a summary on the first pull");
    assert!(
        summary.contains(&json!(id1)) && summary.contains(&json!(id2)),
        "{pulled}"
    );
    // Device A's own entries are not sent back to it.
    let own = replay(&app, ALICE_PASSWORD, "cocoa-get", &[a, "0", "0"]);
    assert_eq!(own["blink"]["entries"], json!([]), "{own}");
    assert!(own["blink"].get("summary_journal_ids").is_none(), "{own}");
    // B deletes the first; B's next pull has only the second.
    let deleted = replay(
        &app,
        ALICE_PASSWORD,
        "cocoa-delete",
        &[&json!([id1]).to_string()],
    );
    assert_eq!(deleted["status"], 200, "{deleted}");
    assert_eq!(deleted["blink"]["success"], true, "{deleted}");
    let after = replay(&app, ALICE_PASSWORD, "cocoa-get", &[b, "0", "0"]);
    let left: Vec<&Value> = after["blink"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(left.len(), 1, "{after}");
    assert_eq!(left[0]["journal_id"], json!(id2), "{after}");

    // The Server Tools windows: Blink Cocoa's, then Blink Qt's.
    for (step, args, title) in [
        ("cocoa-tab", vec!["settings"], "Forwarding"),
        ("cocoa-tab", vec!["payments"], "Balance"),
        ("qt-tab", vec!["settings"], "Forwarding"),
        ("qt-tab", vec!["calls"], "Calls"),
        ("qt-tab", vec!["contacts", "directory"], "Phonebook"),
    ] {
        let page = replay(&app, ALICE_PASSWORD, step, &args);
        assert_eq!(page["status"], 200, "{step} {args:?}: {page}");
        assert_eq!(page["challenges"], 1, "{page}");
        assert!(
            page["content_type"]
                .as_str()
                .unwrap()
                .starts_with("text/html"),
            "{page}"
        );
        let html = page["body"].as_str().unwrap();
        assert!(
            html.contains(&format!("<h1>{title}</h1>")),
            "{step} {args:?}: {html}"
        );
        assert!(html.contains(ALICE), "{html}");
    }
}
