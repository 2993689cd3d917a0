//! The proxy's feeds into sip-settings over the real server and real mutual TLS: registrations
//! (`POST /v1/service/registrations`) shown by `GET /v1/me/devices` and `action=get_devices`,
//! expiring on the server's clock and deciding "registered" in the SIP door; refusals that
//! change nothing; and the SIP door's originating question (identity, privacy, PSTN caller id,
//! prepaid sessions). The end-to-end runs through Kamailio are in kamailio/.

use chrono::Duration;
use serde_json::{Value, json};
use sip_settings_core::cert::IssuedCertificate;
use sip_settings_sip::Transport;
use sip_settings_sip::client::{Answer, ask};

use crate::helpers::sip::{header, listen, question};
use crate::helpers::*;

const REGISTRATIONS: &str = "/v1/service/registrations";

async fn post(app: &TestApp, cert: &IssuedCertificate, body: &Value) -> (u16, Value) {
    post_to(app, cert, REGISTRATIONS, body).await
}

async fn get_json(app: &TestApp, cert: &IssuedCertificate, path: &str) -> Value {
    let response = app
        .client(Some(cert))
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn register(aor: &str, contact: &str, expires: Option<i64>, cseq: i64) -> Value {
    json!({
        "aor": aor,
        "contact": contact,
        "expires": expires,
        "user_agent": "sipp/3.7",
        "transport": "udp",
        "source": "127.0.0.1:5062",
        "call_id": "reg-1@127.0.0.1",
        "cseq": cseq,
        "min_expires": 10,
        "max_expires": 600,
        "default_expires": 300,
    })
}

/// Everything the subscriber and the decision can see of alice's devices.
async fn devices_seen(app: &TestApp) -> (Value, Value) {
    (
        get_json(app, &app.alice, "/v1/me/devices").await["devices"].clone(),
        app.action(&app.alice, "action=get_devices").await.1,
    )
}

#[tokio::test]
async fn a_fed_registration_is_shown_to_its_owner_and_lapses_on_time() {
    let app = TestApp::spawn().await;
    let t0 = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    app.clock.set(t0);
    app.cli_ok(&["account", "set", ALICE, "--timezone", "Asia/Kolkata"]);
    let proxy = service_cert(&app).await;

    // Two contacts, one with its own lifetime; the Expires header (900) is capped to 600.
    let (status, body) = post(
        &app,
        &proxy,
        &register(
            "sip:alice@example.com",
            "<sip:alice@127.0.0.1:5062;transport=udp>;expires=30, \"Desk, 2\" <sip:alice@127.0.0.1:5064>",
            Some(900),
            1,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"], "alice@example.com");
    let (v1, seed) = devices_seen(&app).await;
    assert_eq!(body["devices"], v1);
    let contacts: Vec<&str> = v1
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["contact"].as_str().unwrap())
        .collect();
    assert_eq!(
        contacts,
        [
            "sip:alice@127.0.0.1:5062;transport=udp",
            "sip:alice@127.0.0.1:5064"
        ]
    );
    let first = &v1[0];
    assert_eq!(first["user_agent"], "sipp/3.7");
    assert_eq!(first["transport"], "udp");
    assert_eq!(first["source"], "127.0.0.1:5062");
    assert_eq!(first["expires_in"], 30);
    assert_eq!(v1[1]["expires_in"], 600);
    let expires_at =
        (t0 + Duration::seconds(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(first["expires_at"], expires_at.as_str());
    // The seed action: the same devices, times in the account's zone (+05:30).
    let seed = seed.as_array().unwrap().clone();
    assert_eq!(seed.len(), 2);
    assert_eq!(seed[0]["contact"], first["contact"]);
    assert_eq!(seed[0]["userAgent"], "sipp/3.7");
    assert_eq!(seed[0]["sourceAddress"], "127.0.0.1:5062");
    assert_eq!(seed[0]["expires"], 30);
    assert_eq!(seed[0]["expiresAtUtc"], expires_at.as_str());
    let local = (t0 + Duration::seconds(30))
        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert_eq!(seed[0]["expiresAt"], local.as_str());
    assert_eq!(
        app.action(&app.alice, "action=devices").await.1,
        json!(seed)
    );
    // Bob sees none of them.
    assert_eq!(
        get_json(&app, &app.bob, "/v1/me/devices").await["devices"],
        json!([])
    );

    // 31 s later the first has lapsed; 601 s later both.
    app.clock.set(t0 + Duration::seconds(31));
    let (v1, _) = devices_seen(&app).await;
    assert_eq!(v1.as_array().unwrap().len(), 1);
    assert_eq!(v1[0]["contact"], "sip:alice@127.0.0.1:5064");
    app.clock.set(t0 + Duration::seconds(601));
    assert_eq!(devices_seen(&app).await, (json!([]), json!([])));

    // An unregistration (Contact: *, Expires: 0) removes what a new registration added.
    app.clock.set(t0 + Duration::seconds(700));
    let (status, body) = post(
        &app,
        &proxy,
        &register(
            "sip:alice@example.com",
            "<sip:alice@127.0.0.1:5062>",
            None,
            2,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"][0]["expires_in"], 300);
    let (status, body) = post(
        &app,
        &proxy,
        &register("sip:alice@example.com", "*", Some(0), 3),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"], json!([]));
    assert_eq!(devices_seen(&app).await, (json!([]), json!([])));
}

#[tokio::test]
async fn forged_or_bad_feeds_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let proxy = service_cert(&app).await;
    let ok = register(
        "sip:alice@example.com",
        "<sip:alice@127.0.0.1:5062>",
        None,
        1,
    );
    let (status, _) = post(&app, &proxy, &ok).await;
    assert_eq!(status, 200);
    let before = devices_seen(&app).await;

    // A subscriber's own certificate is not a proxy's.
    let forged = register("sip:alice@example.com", "<sip:evil@192.0.2.66>", None, 2);
    let (status, body) = post(&app, &app.alice, &forged).await;
    assert_eq!(status, 403, "{body}");
    // A domain not served here; an address nobody has.
    let (status, body) = post(
        &app,
        &proxy,
        &register("sip:alice@foreign.example", "<sip:a@192.0.2.66>", None, 2),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("foreign.example"),
        "{body}"
    );
    let (status, body) = post(
        &app,
        &proxy,
        &register("sip:nobody@example.com", "<sip:a@192.0.2.66>", None, 2),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // Malformed: each names its field.
    let mut cases = Vec::new();
    for (field, value) in [
        ("contact", json!("<sip:alice@192.0.2.66")),
        ("contact", json!("http://example.com")),
        ("contact", json!("*")),
        ("expires", json!(-1)),
        ("transport", json!("pigeon")),
        ("source", json!("not-an-address")),
        ("call_id", json!("")),
        ("cseq", json!(null)),
        ("aor", json!("alice")),
    ] {
        let mut body = forged.clone();
        body[field] = value;
        cases.push((field, body));
    }
    let mut unknown = forged.clone();
    unknown["extra"] = json!(1);
    cases.push(("extra", unknown));
    for (field, body) in cases {
        let (status, reply) = post(&app, &proxy, &body).await;
        assert!(status == 400 || status == 422, "{field}: {status} {reply}");
        assert!(reply.to_string().contains(field), "{field}: {reply}");
    }
    assert_eq!(devices_seen(&app).await, before);
}

fn door(c: &mut sip_settings::config::Config) {
    c.sip.listen = vec!["udp:127.0.0.1:0".parse().unwrap()];
}

async fn ask_udp(app: &TestApp, uri: &str, from: &str, headers: &[&str]) -> Answer {
    let server = listen(app, Transport::Udp);
    ask(server, &question(uri, from, headers), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_decision_knows_whether_the_callee_is_registered_from_the_feed() {
    let app = TestApp::spawn_with(door).await;
    let t0 = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    app.clock.set(t0);
    let proxy = service_cert(&app).await;
    app.cli_ok(&["account", "set", ALICE, "--no-answer-timeout", "20"]);
    let (status, _) = app
        .action(
            &app.alice,
            "action=set_diversions&FNOL=sip:mobile@example.net",
        )
        .await;
    assert_eq!(status, 200);

    // Not registered: FNOL.
    let a = ask_udp(&app, "sip:alice@example.com", "sip:bob@example.com", &[]).await;
    assert_eq!(a.response.code, 302);
    assert_eq!(header(&a, "contact"), Some("<sip:mobile@example.net>"));
    // Registered through the feed: ring for no_answer_timeout.
    let (status, _) = post(
        &app,
        &proxy,
        &register(
            "sip:alice@example.com",
            "<sip:alice@127.0.0.1:5062>",
            Some(60),
            1,
        ),
    )
    .await;
    assert_eq!(status, 200);
    let a = ask_udp(&app, "sip:alice@example.com", "sip:bob@example.com", &[]).await;
    assert_eq!(header(&a, "x-ring-time"), Some("20"), "{a:?}");
    // A proxy's own hint still wins.
    let a = ask_udp(
        &app,
        "sip:alice@example.com",
        "sip:bob@example.com",
        &["X-Registered: no"],
    )
    .await;
    assert_eq!(header(&a, "contact"), Some("<sip:mobile@example.net>"));
    // The binding lapses: FNOL again.
    app.clock.set(t0 + Duration::seconds(61));
    let a = ask_udp(&app, "sip:alice@example.com", "sip:bob@example.com", &[]).await;
    assert_eq!(header(&a, "contact"), Some("<sip:mobile@example.net>"));
}

const RATES_CSV: &str = "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n\
49,Germany,0.00,0.60,1,1\n";

#[tokio::test]
async fn the_originating_question_answers_identity_privacy_and_prepaid_time() {
    let app = TestApp::spawn_with(door).await;
    // Plain, to a destination that is no local account: back to it, alice's own address
    // asserted (not what her phone claimed), nothing else.
    let a = ask_udp(
        &app,
        "sip:carol@example.net;orig",
        "sip:alice@example.com",
        &[
            "P-Asserted-Identity: <sip:boss@example.com>",
            "Privacy: none",
        ],
    )
    .await;
    assert_eq!(a.response.code, 302, "{a:?}");
    assert_eq!(header(&a, "contact"), Some("<sip:carol@example.net>"));
    assert_eq!(
        header(&a, "p-asserted-identity"),
        Some("<sip:alice@example.com>")
    );
    assert_eq!(header(&a, "privacy"), None);
    assert_eq!(header(&a, "x-max-session-time"), None);
    assert_eq!(header(&a, "x-ring-time"), None);

    // To a local account: one question, the callee's decision comes with the caller's headers
    // (bob has no device: 480; registered: ring him; a reject rule against alice: 603).
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 480, "{a:?}");
    assert_eq!(
        header(&a, "p-asserted-identity"),
        Some("<sip:alice@example.com>")
    );
    let proxy = service_cert(&app).await;
    let (status, _) = post(
        &app,
        &proxy,
        &register("sip:bob@example.com", "<sip:bob@127.0.0.1:5064>", None, 1),
    )
    .await;
    assert_eq!(status, 200);
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 302, "{a:?}");
    assert_eq!(header(&a, "contact"), Some("<sip:bob@example.com;ring=35>"));
    assert_eq!(header(&a, "x-ring-time"), Some("35"));
    assert_eq!(
        header(&a, "p-asserted-identity"),
        Some("<sip:alice@example.com>")
    );
    app.cli_ok(&["reject", "add", BOB, "sip:alice@example.com"]);
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 603, "{a:?}");

    // Privacy on, a PSTN caller id: asserted on calls to numbers only.
    let (status, _) = app.action(&app.alice, "action=privacy_on").await;
    assert_eq!(status, 200);
    app.cli_ok(&["account", "set", ALICE, "--pstn-caller-id", "+31201234567"]);
    let a = ask_udp(
        &app,
        "sip:+4930123456@example.com;user=phone;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(
        header(&a, "contact"),
        Some("<sip:+4930123456@example.com;user=phone>")
    );
    assert_eq!(header(&a, "privacy"), Some("id"));
    assert_eq!(
        header(&a, "p-asserted-identity"),
        Some("<sip:+31201234567@example.com;user=phone>")
    );
    // Her own address on calls to accounts; and hidden, she is anonymous to bob's rules (his
    // rule against her address does not match: he has no rule against anonymous callers).
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 302, "{a:?}");
    assert_eq!(
        header(&a, "p-asserted-identity"),
        Some("<sip:alice@example.com>")
    );
    assert_eq!(header(&a, "privacy"), Some("id"));

    // A caller that is not a local account.
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:mallory@example.org",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 403);
    assert!(
        header(&a, "warning")
            .unwrap()
            .contains("not a local account")
    );

    // Prepaid: no balance → 402 naming why, nothing opened; with balance → the time it pays.
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    let rates = app.write_file("rates.csv", RATES_CSV);
    app.cli_ok(&["rates", "import", rates.to_str().unwrap()]);
    let a = ask_udp(
        &app,
        "sip:+4930123456@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 402, "{a:?}");
    assert!(header(&a, "warning").is_some());
    assert_eq!(
        app.read(&app.alice, "prepaid").await["active_calls"],
        json!([])
    );
    app.cli_ok(&["balance", "topup", ALICE, "1.00"]);
    let a = ask_udp(
        &app,
        "sip:+4930123456@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(a.response.code, 302, "{a:?}");
    // 1.00 at 0.60 a minute, per second: 100 s.
    assert_eq!(header(&a, "x-max-session-time"), Some("100"));
    let prepaid = app.read(&app.alice, "prepaid").await;
    assert_eq!(
        prepaid["active_calls"].as_array().unwrap().len(),
        1,
        "{prepaid}"
    );
    assert_eq!(prepaid["active_calls"][0]["destination"], "+4930123456");
    // A call to a local account costs nothing: no session.
    let a = ask_udp(
        &app,
        "sip:bob@example.com;orig",
        "sip:alice@example.com",
        &[],
    )
    .await;
    assert_eq!(header(&a, "x-max-session-time"), None);
}

fn call_record(call_id: &str, caller: &str, callee: &str) -> Value {
    json!({
        "call_id": call_id, "from_tag": "f1", "to_tag": "t1",
        "caller": caller, "callee": callee,
        "start": "2026-11-30T10:00:00Z", "stop": "2026-11-30T10:01:00Z",
        "duration": 60, "status": 200, "media": ["audio"], "proxy_ip": "127.0.0.1",
    })
}

async fn post_to(
    app: &TestApp,
    cert: &IssuedCertificate,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = app
        .client(Some(cert))
        .post(format!("{}{path}", app.base))
        .json(body)
        .send()
        .await
        .expect("request");
    // Successes are application/json, refusals application/problem+json.
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

async fn calls_of(app: &TestApp, cert: &IssuedCertificate) -> Value {
    app.action(cert, "action=calls&days=90").await.1
}

#[tokio::test]
async fn a_batch_of_call_records_is_stored_at_once_or_not_at_all() {
    let app = TestApp::spawn().await;
    let proxy = service_cert(&app).await;
    let batch = "/v1/service/calls/batch";
    let nothing = json!({"placed": [], "received": []});

    // One malformed record refuses the batch, naming it; nothing is stored.
    let bad = json!({"calls": [
        call_record("b-1", "sip:alice@example.com", "sip:bob@example.com"),
        call_record("b-2", "alice", "sip:bob@example.com"),
    ]});
    let (status, body) = post_to(&app, &proxy, batch, &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "calls[1].caller", "{body}");
    assert_eq!(calls_of(&app, &app.alice).await, nothing);
    for empty in [json!({"calls": []}), json!({})] {
        let (status, body) = post_to(&app, &proxy, batch, &empty).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], "calls", "{body}");
    }
    // Not for a subscriber's certificate.
    let good = json!({"calls": [
        call_record("b-1", "sip:alice@example.com", "sip:bob@example.com"),
        call_record("b-3", "sip:bob@example.com", "sip:carol@example.net"),
    ]});
    let (status, _) = post_to(&app, &app.alice, batch, &good).await;
    assert_eq!(status, 403);
    assert_eq!(calls_of(&app, &app.alice).await, nothing);

    // Stored, each for its local parties; a replay is counted, not stored twice.
    let (status, body) = post_to(&app, &proxy, batch, &good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"recorded": 2, "replays": 0}));
    let (status, body) = post_to(&app, &proxy, batch, &good).await;
    assert_eq!((status, body), (200, json!({"recorded": 0, "replays": 2})));
    let alice = calls_of(&app, &app.alice).await;
    assert_eq!(alice["placed"].as_array().unwrap().len(), 1, "{alice}");
    assert_eq!(alice["placed"][0]["sessionId"], "b-1");
    let bob = calls_of(&app, &app.bob).await;
    assert_eq!(bob["received"][0]["sessionId"], "b-1", "{bob}");
    assert_eq!(bob["placed"][0]["sessionId"], "b-3", "{bob}");
}

/// A client that gives up on its requests (a proxy's HTTP client timing out, a dropped
/// connection) must not leave the store's writer inside a transaction: every later write
/// succeeds, and every record whose answer was lost is either stored whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_abandoned_mid_write_leave_no_transaction_behind() {
    let app = TestApp::spawn().await;
    let proxy = service_cert(&app).await;
    let client = app.client(Some(&proxy));
    let url = format!("{}/v1/service/calls", app.base);
    let mut n = 0u32;
    for round in 0..40u64 {
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            n += 1;
            let (client, url) = (client.clone(), url.clone());
            let body = call_record(
                &format!("cut-{n}"),
                "sip:alice@example.com",
                "sip:bob@example.com",
            );
            // Timeouts from 0.2 ms to 3.2 ms: some requests are dropped before the server reads
            // them, some while it writes, some after it answered.
            let timeout = std::time::Duration::from_micros(200 + (round * 16 + i) % 16 * 200);
            tasks.push(tokio::spawn(async move {
                let _ = client.post(url).json(&body).timeout(timeout).send().await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (status, body) = post_to(
            &app,
            &proxy,
            "/v1/service/calls",
            &call_record(
                &format!("after-{round}"),
                "sip:alice@example.com",
                "sip:bob@example.com",
            ),
        )
        .await;
        assert_eq!(status, 201, "round {round}: {body}");
    }
}
