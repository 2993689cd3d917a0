//! `get_history` as Blink Cocoa reads it (issue 18, point 4). Calls are recorded through the
//! proxy-facing service API (`POST /v1/service/calls`) for a provisioned account; Blink's poll
//! `settings.phtml?action=get_history&realm=…` is fetched over real mutual TLS and, the next
//! poll, over HTTP Digest; each reply is fed to Blink's own import logic
//! (`blink/history_sync.py`, a port of blink-cocoa's `syncServerHistoryWithLocalHistory`, its
//! local database kept in a state file between the two runs, as Blink's would be). Each call is
//! imported once, each remote party is one contact without `sip:`, a cancelled call is
//! cancelled, times and durations survive. The same import run on the documented `calls` reply
//! (object C) shows the faults that made `get_history` a reply of its own.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sip_settings_core::Clock as _;
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::digest::Algorithm;

use crate::helpers::{TestApp, digest_authorization, digest_nonce_opaque, json_of, no_redirects};

const CAROL: &str = "carol@example.com";
/// The password `add_account_with_cert` gives a new account.
const CAROL_PASSWORD: &str = "some-sip-password-1";
/// Blink's poll (`HistoryManager.py`, `get_last_calls`: `action=get_history&realm=<domain>`).
const POLL: &str = "/settings.phtml?action=get_history&realm=example.com";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/blink/history_sync.py"
);

/// One call as the proxy's accounting records it, and what Blink must make of it.
struct Call {
    id: &'static str,
    caller: &'static str,
    callee: &'static str,
    /// Minutes before now.
    ago: i64,
    duration: i64,
    status: u16,
    /// Blink's session-history `direction`, `status` and `remote_uri`.
    direction: &'static str,
    blink_status: &'static str,
    remote_uri: &'static str,
}

const CALLS: [Call; 6] = [
    Call {
        id: "placed-completed",
        caller: "sip:carol@example.com",
        callee: "sip:bob@example.com",
        ago: 180,
        duration: 65,
        status: 200,
        direction: "outgoing",
        blink_status: "completed",
        remote_uri: "bob@example.com",
    },
    Call {
        id: "placed-cancelled",
        caller: "sip:carol@example.com",
        callee: "sip:Dave@Elsewhere.Example.org:5070",
        ago: 120,
        duration: 0,
        status: 487,
        direction: "outgoing",
        blink_status: "cancelled",
        remote_uri: "dave@elsewhere.example.org",
    },
    Call {
        id: "placed-busy",
        caller: "sip:carol@example.com",
        callee: "sip:bob@example.com",
        ago: 90,
        duration: 0,
        status: 486,
        direction: "outgoing",
        blink_status: "failed",
        remote_uri: "bob@example.com",
    },
    Call {
        id: "received-completed",
        caller: "sip:bob@example.com",
        callee: "sip:carol@example.com",
        ago: 60,
        duration: 30,
        status: 200,
        direction: "incoming",
        blink_status: "completed",
        remote_uri: "bob@example.com",
    },
    Call {
        id: "received-missed-number",
        caller: "sip:+31201234567@pstn.example.org",
        callee: "sip:carol@example.com",
        ago: 30,
        duration: 0,
        status: 487,
        direction: "incoming",
        blink_status: "missed",
        // sipuri_components_from_string shortens `+number@…` to the number.
        remote_uri: "+31201234567",
    },
    Call {
        id: "received-missed",
        caller: "sip:bob@example.com",
        callee: "sip:carol@example.com",
        ago: 20,
        duration: 0,
        status: 480,
        direction: "incoming",
        blink_status: "missed",
        remote_uri: "bob@example.com",
    },
];

fn sql_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Whether python3 with pytz (which Blink's import uses) runs here.
fn python_with_pytz() -> Result<(), String> {
    match std::process::Command::new("python3")
        .args(["-c", "import pytz"])
        .output()
    {
        Err(e) => Err(format!("python3 is not installed ({e})")),
        Ok(o) if !o.status.success() => Err(format!(
            "python3 has no pytz module (pip install pytz): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

/// Runs Blink's import on `reply` against the local database in `state`; its report.
fn blink_import(state: &Path, reply: &Value) -> Value {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .arg(SCRIPT)
        .arg(state)
        .arg(CAROL)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(reply.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "history_sync.py failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["errors"], json!([]), "Blink logged errors: {stderr}");
    report
}

/// A local database holding one call Blink placed itself to bob, as SessionController logs it
/// (`remote_uri = format_identity_to_string(controller.target_uri).lower()`: `bob@example.com`).
fn seed_state(path: &Path, now: DateTime<Utc>) {
    let start = now - Duration::days(1);
    let local = json!({
        "session_id": "blink-own-call", "media_types": "audio", "direction": "outgoing",
        "status": "completed", "failure_reason": "", "start_time": sql_time(start),
        "end_time": sql_time(start + Duration::seconds(10)), "duration": 10,
        "local_uri": CAROL, "remote_uri": "bob@example.com", "remote_focus": "0",
        "participants": "", "sip_callid": "blink-own-call-id", "sip_fromtag": "blink-tag",
        "sip_totag": "", "am_filename": "", "encryption": "", "display_name": "",
        "device_id": "", "remote_full_uri": "sip:bob@example.com", "hidden": 0,
    });
    std::fs::write(path, json!({"sessions": [local]}).to_string()).unwrap();
}

/// The `uri`s of a recent-calls group, in Blink's order.
fn group(report: &Value, name: &str) -> Vec<String> {
    report["contacts"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uri"].as_str().unwrap().to_owned())
        .collect()
}

/// Blink's poll without a certificate: the challenge, then the MD5 answer (what NSURLConnection
/// sends for `credentialWithUser_password_persistence_(account.id.username, …)`).
async fn poll_with_digest(app: &TestApp) -> Value {
    let client = no_redirects(app);
    let url = format!("{}{POLL}", app.base);
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 401);
    let (nonce, opaque) = digest_nonce_opaque(&first, Algorithm::Md5);
    let authorization = digest_authorization(
        Algorithm::Md5,
        "carol",
        CAROL_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        POLL,
    );
    let (status, body) = json_of(
        client
            .get(&url)
            .header("authorization", authorization)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn record_calls(app: &TestApp, now: DateTime<Utc>) {
    let svc = app
        .services
        .issue_certificate(CertSubject::Service("proxy".into()), None, None)
        .await
        .unwrap();
    for c in &CALLS {
        let start = now - Duration::minutes(c.ago);
        let cdr = json!({
            "call_id": format!("{}@192.0.2.9", c.id),
            "from_tag": format!("{}-from", c.id),
            "to_tag": format!("{}-to", c.id),
            "caller": c.caller,
            "callee": c.callee,
            "start": start.to_rfc3339_opts(SecondsFormat::Secs, true),
            "stop": (start + Duration::seconds(c.duration)).to_rfc3339_opts(SecondsFormat::Secs, true),
            "duration": c.duration,
            "status": c.status,
            "media": ["audio"],
            "proxy_ip": "192.0.2.1",
        });
        let response = app
            .client(Some(&svc))
            .post(format!("{}/v1/service/calls", app.base))
            .json(&cdr)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "{}", c.id);
    }
}

async fn poll_with_certificate(app: &TestApp, cert: &IssuedCertificate, query: &str) -> Value {
    let (status, body) = app.action(cert, query).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

// Multi-threaded: python3 runs as a blocking child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blink_imports_each_call_once_with_one_contact_per_party_and_cancelled_as_cancelled() {
    let app = TestApp::spawn().await;
    let carol = app
        .add_account_with_cert(CAROL, &["--timezone", "America/New_York"])
        .await;
    let now = DateTime::from_timestamp(app.clock.now().timestamp(), 0).unwrap();
    record_calls(&app, now).await;

    // The reply: object C's calls with remoteParty as Blink records addresses and status a
    // string; the documented `calls` keeps its own shape.
    let first = poll_with_certificate(&app, &carol, "action=get_history&realm=example.com").await;
    let calls = poll_with_certificate(&app, &carol, "action=calls").await;
    check_reply(&app, &carol, &first, &calls).await;

    // The next poll, 300 s later, as Blink sends it: no certificate, HTTP Digest.
    app.clock.advance(Duration::seconds(300));
    let second = poll_with_digest(&app).await;
    assert_eq!(
        second, first,
        "the same calls, the same keys, poll after poll"
    );

    if let Err(why) = python_with_pytz() {
        eprintln!("SKIP Blink's import (history_sync.py): {why}");
        return;
    }
    let state = app.data_dir().join("blink-sessions.json");
    seed_state(&state, now);
    let run1 = blink_import(&state, &first);
    let run2 = blink_import(&state, &second);
    check_import(&run1, &run2, now);

    let control_state = app.data_dir().join("blink-control.json");
    seed_state(&control_state, now);
    // The control: Blink's import of the documented `calls` reply.
    check_control(&blink_import(&control_state, &calls));
}

/// The `get_history` reply against `calls` (object C): same calls, newest first, the same
/// fields but `remoteParty` and `status`; `days` and `limit` as for `calls`.
async fn check_reply(app: &TestApp, carol: &IssuedCertificate, first: &Value, calls: &Value) {
    for (list, direction) in [("placed", "outgoing"), ("received", "incoming")] {
        let got: Vec<&str> = first[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sessionId"].as_str().unwrap())
            .collect();
        let want: Vec<String> = CALLS
            .iter()
            .rev()
            .filter(|c| c.direction == direction)
            .map(|c| format!("{}@192.0.2.9", c.id))
            .collect();
        assert_eq!(got, want, "{list}, newest first");
        for (h, c) in first[list]
            .as_array()
            .unwrap()
            .iter()
            .zip(calls[list].as_array().unwrap())
        {
            assert!(h["status"].is_string(), "{h}");
            assert_eq!(h["status"], c["status"].to_string(), "{h}");
            assert!(c["status"].is_u64(), "calls keeps a number: {c}");
            assert!(c["remoteParty"].as_str().unwrap().starts_with("sip:"));
            assert!(!h["remoteParty"].as_str().unwrap().contains("sip:"), "{h}");
            let mut same = h.clone();
            same["status"] = c["status"].clone();
            same["remoteParty"] = c["remoteParty"].clone();
            assert_eq!(&same, c, "the other fields are object C's");
        }
    }
    let cancelled = &first["placed"][1];
    assert_eq!(cancelled["remoteParty"], "dave@elsewhere.example.org");
    assert_eq!(cancelled["status"], "487");
    assert_eq!(cancelled["duration"], 0);
    // `days` and `limit` as for `calls` (Blink sends neither: 14 days, 50 per list).
    let two = poll_with_certificate(app, carol, "action=get_history&limit=2&days=1").await;
    for list in ["placed", "received"] {
        assert_eq!(
            two[list].as_array().unwrap()[..],
            first[list].as_array().unwrap()[..2]
        );
    }
    for (query, name) in [
        ("days=0", "days"),
        ("days=91", "days"),
        ("limit=501", "limit"),
    ] {
        let (status, body) = app
            .action(carol, &format!("action=get_history&{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error_message"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{query}: {body}"
        );
    }
}

/// Blink's import of the two polls: each call once, Blink's status, times and durations, one
/// contact per remote party without `sip:`.
fn check_import(run1: &Value, run2: &Value, now: DateTime<Utc>) {
    // Each call imported once: all six on the first poll, none on the second.
    assert_eq!(
        run1["imported"].as_array().unwrap().len(),
        CALLS.len(),
        "{run1}"
    );
    assert_eq!(run2["imported"], json!([]), "second poll: {run2}");
    let sessions = run2["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), CALLS.len() + 1, "{run2}");
    for c in &CALLS {
        let call_id = format!("{}@192.0.2.9", c.id);
        let found: Vec<&Value> = sessions
            .iter()
            .filter(|s| s["sip_callid"] == call_id.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{}: {found:?}", c.id);
        let s = found[0];
        let start = now - Duration::minutes(c.ago);
        assert_eq!(s["direction"], c.direction, "{}", c.id);
        assert_eq!(s["status"], c.blink_status, "{}", c.id);
        assert_eq!(s["failure_reason"], c.status.to_string(), "{}", c.id);
        assert_eq!(s["remote_uri"], c.remote_uri, "{}", c.id);
        assert_eq!(s["duration"], c.duration, "{}", c.id);
        assert_eq!(s["start_time"], sql_time(start), "{}: UTC again", c.id);
        assert_eq!(
            s["end_time"],
            sql_time(start + Duration::seconds(c.duration)),
            "{}",
            c.id
        );
        assert_eq!(s["sip_fromtag"], format!("{}-from", c.id));
        assert_eq!(s["media_types"], "audio");
    }
    // The chat-history line of the cancelled call says so.
    assert!(
        run1["chat"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["remote_uri"] == "dave@elsewhere.example.org"
                && m["message"] == "<h3>Cancelled Outgoing Audio Call</h3>"),
        "{}",
        run1["chat"]
    );

    // One contact per remote party, without `sip:`; bob's server calls and the call Blink
    // placed itself are one contact.
    assert_eq!(
        group(run2, "outgoing"),
        ["bob@example.com", "dave@elsewhere.example.org"]
    );
    assert_eq!(group(run2, "incoming"), ["bob@example.com"]);
    assert_eq!(group(run2, "missed"), ["bob@example.com", "+31201234567"]);
    for n in run1["notifications"].as_array().unwrap() {
        assert!(!n["remote_party"].as_str().unwrap().contains("sip:"), "{n}");
    }
    // The missed-call notification parses 'sip:'+remote_uri: one scheme, bob named right.
    let gui = run1["gui_notifications"].as_array().unwrap();
    assert!(
        gui.iter()
            .all(|g| !g["parsed"].as_str().unwrap().starts_with("sip:sip:")),
        "{gui:?}"
    );
    assert!(
        gui.iter().any(|g| g["subtitle"] == "From bob@example.com"),
        "{gui:?}"
    );
}

/// The same import of the documented `calls` reply shows the faults that made `get_history` a
/// reply of its own.
fn check_control(control: &Value) {
    // A status number fails `status == "487"`: the cancelled call is 'failed'.
    let cancelled = control["imported"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sip_callid"] == "placed-cancelled@192.0.2.9")
        .unwrap();
    assert_eq!(cancelled["status"], "failed", "{cancelled}");
    // `sip:` makes a second contact for bob, and `sip:sip:` in the missed-call notification.
    assert_eq!(
        group(control, "outgoing"),
        [
            "sip:bob@example.com",
            "sip:Dave@elsewhere.example.org:5070",
            "bob@example.com"
        ]
    );
    assert!(
        control["gui_notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["parsed"] == "sip:sip:bob@example.com"),
        "{control}"
    );
}
