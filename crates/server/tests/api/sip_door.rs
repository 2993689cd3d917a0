//! The SIP door from a Rust client (crates/sip/src/client.rs): TLS with service certificates
//! (Debian's sipp has no TLS) and revocation on an open connection, the allow-list on UDP and
//! TCP, the same decision as `explain` and `POST /v1/service/route` on a table of cases, a
//! garbage flood, and the `sip ask` command. The sipp tests of every case are in sipp.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sip_settings_sip::Transport;
use sip_settings_sip::client::{Answer, Connection, ask};

use crate::helpers::sip::{header, hint_door, listen, question};
use crate::helpers::*;

/// A TLS client configuration presenting `bundle` (or nothing), trusting this installation.
fn tls_client(app: &TestApp, bundle: Option<&str>) -> Arc<rustls::ClientConfig> {
    let config = match bundle {
        Some(b) => sip_settings_pki::tls::client_config(&app.ca_pem, b).unwrap(),
        None => {
            let roots = roots_of(&app.ca_pem);
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        }
    };
    Arc::new(config)
}

#[tokio::test]
async fn tls_answers_only_service_certificates_and_a_revocation_holds_for_the_next_invite() {
    let app = TestApp::spawn_with(|c| hint_door(c, &["tls"])).await;
    let server = listen(&app, Transport::Tls);
    let proxy = service_cert(&app).await;
    let q = question("sip:alice@example.com", "sip:bob@example.org", &[]);

    let mut conn = Connection::open(
        server,
        Some((
            tls_client(&app, Some(&proxy.crt_bundle())),
            "localhost".into(),
        )),
    )
    .await
    .unwrap();
    let a = conn.ask(&q).await.unwrap();
    assert_eq!(a.response.code, 302, "{}", a.text);
    assert_eq!(
        header(&a, "contact"),
        Some("<sip:alice@example.com;ring=35>")
    );
    assert!(a.text.contains("Via: SIP/2.0/TLS "), "{}", a.text);
    // Many requests on one connection.
    let a = conn
        .ask(&question(
            "sip:nobody@example.com",
            "sip:bob@example.org",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(a.response.code, 404, "{}", a.text);

    // A subscriber's certificate, and none at all: 403, nothing learnt.
    for bundle in [Some(app.alice.crt_bundle()), None] {
        let a = ask(
            server,
            &q,
            Some((tls_client(&app, bundle.as_deref()), "localhost".into())),
        )
        .await
        .unwrap();
        assert_eq!(a.response.code, 403, "{}", a.text);
        assert!(header(&a, "contact").is_none(), "{}", a.text);
        assert!(!a.text.contains("Warning"), "{}", a.text);
    }

    // Revoked through the CLI: the very next INVITE on the open connection is refused.
    let serial = proxy.record.serial.to_string();
    let out = app.cli(&["cert", "revoke", &serial]);
    assert!(out.status.success(), "{out:?}");
    let a = conn.ask(&q).await.unwrap();
    assert_eq!(a.response.code, 403, "{}", a.text);
}

#[tokio::test]
async fn udp_and_tcp_answer_only_allow_listed_sources() {
    let app = TestApp::spawn_with(|c| {
        hint_door(c, &["udp", "tcp"]);
        c.sip.trusted = vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    })
    .await;
    let q = question("sip:alice@example.com", "sip:bob@example.org", &[]);
    // The process's metrics (shared with the tests running beside this one: counted at least).
    let metric =
        |name: &str, value: &str| sip_settings_core::metrics::global().counter(name, &[value]);
    let untrusted = metric(sip_settings_sip::door::REFUSED, "untrusted");
    let forwarded = metric(sip_settings_sip::door::DECISIONS, "302");
    for t in [Transport::Udp, Transport::Tcp] {
        let a = ask(listen(&app, t), &q, None).await.unwrap();
        assert_eq!(a.response.code, 403, "{t}: {}", a.text);
        assert!(header(&a, "contact").is_none(), "{}", a.text);
        // Even a request for a missing account learns only 403.
        let a = ask(
            listen(&app, t),
            &question("sip:nobody@example.com", "sip:bob@example.org", &[]),
            None,
        )
        .await
        .unwrap();
        assert_eq!(a.response.code, 403, "{t}: {}", a.text);
    }

    assert!(metric(sip_settings_sip::door::REFUSED, "untrusted") >= untrusted + 4);

    // The default allow-list is loopback.
    let app = TestApp::spawn_with(|c| hint_door(c, &["udp", "tcp"])).await;
    for t in [Transport::Udp, Transport::Tcp] {
        let a = ask(listen(&app, t), &q, None).await.unwrap();
        assert_eq!(a.response.code, 302, "{t}: {}", a.text);
    }
    assert!(metric(sip_settings_sip::door::DECISIONS, "302") >= forwarded + 2);
}

/// What the SIP door answered, reduced to what `explain` and `service/route` say.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    Reject(u16),
    Forward { target: String, reason: String },
    Ring(u32),
}

fn said_by_sip(a: &Answer) -> Said {
    match a.response.code {
        302 => {
            let contact = header(a, "contact").unwrap();
            let uri = contact.trim_start_matches('<').trim_end_matches('>');
            match header(a, "x-ring-time") {
                Some(s) => {
                    assert_eq!(uri, format!("sip:alice@example.com;ring={s}"), "{}", a.text);
                    Said::Ring(s.parse().unwrap())
                }
                None => {
                    let diversion = header(a, "diversion").unwrap();
                    let reason = diversion
                        .split(';')
                        .find_map(|p| p.trim().strip_prefix("reason="))
                        .unwrap()
                        .split(',')
                        .next()
                        .unwrap()
                        .to_owned();
                    Said::Forward {
                        target: uri.to_owned(),
                        reason,
                    }
                }
            }
        }
        code => Said::Reject(code),
    }
}

fn forward_of(f: &Value) -> Said {
    let target = match f["destination"]["kind"].as_str().unwrap() {
        "voice_mailbox" => "sip:vm-alice@vm.example.net".to_owned(),
        _ => f["destination"]["uri"].as_str().unwrap().to_owned(),
    };
    Said::Forward {
        target,
        reason: f["reason"].as_str().unwrap().to_owned(),
    }
}

/// `explain`'s outcome as the SIP door would answer it at `step`.
fn said_by_outcome(o: &Value, no_answer: bool) -> Said {
    match o["action"].as_str().unwrap() {
        "reject" => Said::Reject(u16::try_from(o["code"].as_u64().unwrap()).unwrap()),
        "forward" => forward_of(o),
        "ring" if no_answer => match &o["on_no_answer"] {
            Value::Null => Said::Reject(480),
            f => forward_of(f),
        },
        "ring" => Said::Ring(u32::try_from(o["seconds"].as_u64().unwrap()).unwrap()),
        other => panic!("unknown action {other}"),
    }
}

#[tokio::test]
async fn every_answer_is_the_decision_of_explain_and_service_route() {
    let app = TestApp::spawn_with(|c| hint_door(c, &["udp"])).await;
    let server = listen(&app, Transport::Udp);
    let proxy_cert = service_cert(&app).await;
    let proxy = app.client(Some(&proxy_cert));
    let alice = app.client(Some(&app.alice));
    let base = app.base.clone();
    let v1 = |method: &str, path: &str, body: Value| {
        let path = path.to_owned();
        let req = match method {
            "POST" => alice.post(format!("{base}{path}")),
            "PATCH" => alice.patch(format!("{base}{path}")),
            "PUT" => alice.put(format!("{base}{path}")),
            _ => alice.delete(format!("{base}{path}")),
        };
        async move {
            let r = req.json(&body).send().await.unwrap();
            assert!(
                r.status().is_success(),
                "{path} {body}: {}",
                r.text().await.unwrap()
            );
        }
    };
    assert!(
        app.cli(&["voicemail", "enable", ALICE, "--delivery", "email"])
            .status
            .success()
    );
    assert!(
        app.cli(&["enum", "add", "+31201234567", ALICE])
            .status
            .success()
    );

    // (caller as From, extra headers, step: "" | "486" | "408" | "480", registered)
    let questions: &[(&str, &[&str], &str, bool)] = &[
        ("sip:bob@example.org", &[], "", true),
        ("sip:bob@example.org", &["X-Registered: no"], "", false),
        ("sip:spam@example.net", &[], "", true),
        (
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            &[],
            "",
            true,
        ),
        ("sip:bob@example.org", &["Privacy: id"], "", true),
        ("sip:bob@example.org;user=phone", &[], "", true),
        (
            "sip:bob@example.org",
            &["P-Asserted-Identity: <tel:+4930123456>"],
            "",
            true,
        ),
        ("sip:bob@example.org", &[], "486", true),
        ("sip:bob@example.org", &[], "408", true),
        ("sip:bob@example.org", &[], "480", false),
        ("sip:mom@example.org", &[], "", true),
    ];
    // Settings states, applied one after another through /v1.
    let mut states = 0;
    for state in 0..8 {
        match state {
            0 => {}
            1 => v1("PATCH", "/v1/me/diversions", json!({"FBUS": "+31612345678", "FNOA": "<voice-mailbox>", "FNOL": "carol@example.net", "no_answer_timeout": 20})).await,
            2 => v1("POST", "/v1/me/reject-rules", json!({"pattern": "sip:spam@%"})).await,
            3 => {
                v1("POST", "/v1/me/reject-rules", json!({"pattern": "anonymous"})).await;
                v1("POST", "/v1/me/reject-rules", json!({"pattern": "sip:+4930%@%"})).await;
            }
            4 => v1("PUT", "/v1/me/dnd", json!({"on": true})).await,
            5 => v1("PATCH", "/v1/me/diversions", json!({"FUNV": "dave@example.net"})).await,
            6 => {
                v1("PUT", "/v1/me/dnd", json!({"on": false})).await;
                v1("POST", "/v1/me/phonebook", json!({"uri": "sip:mom@example.org", "name": "Mom", "groups": ["family"]})).await;
                assert!(app.cli(&["accept", "add", ALICE, "--days", "127", "--start", "00:00", "--stop", "00:00", "--groups", "family"]).status.success());
            }
            _ => v1("PATCH", "/v1/me/diversions", json!({"FUNC": "bob@example.com"})).await,
        }
        states += 1;
        for (from, headers, cause, registered) in questions {
            for callee in ["sip:alice@example.com", "tel:+31201234567"] {
                let uri = if cause.is_empty() {
                    callee.to_owned()
                } else {
                    format!("{callee};cause={cause}")
                };
                let a = ask(server, &question(&uri, from, headers), None)
                    .await
                    .unwrap();
                let sip = said_by_sip(&a);
                // The caller as explain and service/route take it.
                let caller = if headers.contains(&"Privacy: id") {
                    "anonymous".to_owned()
                } else if let Some(pai) = headers
                    .iter()
                    .find_map(|h| h.strip_prefix("P-Asserted-Identity: "))
                {
                    pai.to_owned()
                } else {
                    from.to_string()
                };
                let busy = *cause == "486";
                let r = alice
                    .get(format!(
                        "{base}/v1/me/routing/explain?caller={}&registered={registered}&busy={busy}",
                        enc(&caller)
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let explained: Value = r.json().await.unwrap();
                let by_explain = said_by_outcome(&explained["outcome"], *cause == "408");
                let r = proxy
                    .post(format!("{base}/v1/service/route"))
                    .json(&json!({"callee": callee, "caller": caller, "registered": registered, "busy": busy}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{callee} {caller}");
                let routed: Value = r.json().await.unwrap();
                assert_eq!(routed["account"], ALICE);
                let by_route = said_by_outcome(&routed["outcome"], *cause == "408");
                let case = format!("state {state}, {uri} from {from} {headers:?}");
                assert_eq!(
                    sip, by_explain,
                    "{case}: SIP said\n{}\nexplain: {explained}",
                    a.text
                );
                assert_eq!(by_route, by_explain, "{case}");
            }
        }
    }
    assert_eq!(states, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_datagrams_does_not_stop_answers() {
    let app = TestApp::spawn_with(|c| hint_door(c, &["udp"])).await;
    let server = listen(&app, Transport::Udp);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for k in 0..3u8 {
        let (stop, sent) = (stop.clone(), sent.clone());
        flooders.push(tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let junk: Vec<Vec<u8>> = vec![
                vec![k; 1400],
                b"INVITE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n".to_vec(),
                b"\r\n\r\n".to_vec(),
                b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n".to_vec(),
                (0..=255u8).cycle().take(9000).collect(),
                b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nabc".to_vec(),
            ];
            let started = Instant::now();
            let mut i = 0usize;
            // Bounded in count and time.
            while !stop.load(Ordering::Relaxed)
                && i < 400_000
                && started.elapsed() < Duration::from_secs(8)
            {
                let _ = socket.send_to(&junk[i % junk.len()], server.addr).await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
                // About 8 000 datagrams a second per flooder (24 000 in all): far more than
                // any proxy sends, without the test's own senders taking the server's CPU.
                if i.is_multiple_of(8) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    let flood_started = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let q = question("sip:alice@example.com", "sip:bob@example.org", &[]);
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    // A valid INVITE every 50 ms for 2 s, while the flood goes on.
    while flood_started.elapsed() < Duration::from_millis(2_300) {
        let t = Instant::now();
        let a = ask(server, &q, None).await.unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(a.response.code, 302, "{}", a.text);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered >= 20, "{answered} INVITEs answered");
    let flooded = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    eprintln!(
        "{flooded} garbage datagrams sent in {:?}; slowest answer {slowest:?}",
        flood_started.elapsed()
    );
    assert!(flooded > 1_000, "the flood ran ({flooded})");
    // The client retransmits after 500 ms: an answer slower than that means one was lost.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest answer {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_ask_prints_the_answer_of_each_transport() {
    let app = TestApp::spawn_with(|c| hint_door(c, &["udp", "tcp", "tls"])).await;
    let proxy = service_cert(&app).await;
    let bundle = app.write_crt("proxy1.crt", &proxy);
    assert!(
        app.cli(&["reject", "add", ALICE, "anonymous"])
            .status
            .success()
    );
    for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        let server = listen(&app, t).to_string();
        let mut args = vec![
            "sip",
            "ask",
            "sip:alice@example.com",
            "--server",
            &server,
            "--from",
            "anonymous",
        ];
        let path = bundle.display().to_string();
        if t == Transport::Tls {
            args.extend(["--cert", &path]);
        }
        let out = app.cli(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.starts_with("SIP/2.0 433 Anonymity Disallowed\n"),
            "{t}: {text}"
        );
    }
    let server = listen(&app, Transport::Tls).to_string();
    let out = app.cli(&["sip", "ask", "sip:alice@example.com", "--server", &server]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cert"),
        "{out:?}"
    );
}

#[tokio::test]
async fn service_route_reads_callers_with_parameters_and_tel_numbers() {
    let app = TestApp::spawn().await;
    let proxy_cert = service_cert(&app).await;
    let proxy = app.client(Some(&proxy_cert));
    assert!(
        app.cli(&["reject", "add", ALICE, "sip:+4930%@%"])
            .status
            .success()
    );
    assert!(
        app.cli(&["reject", "add", ALICE, "sip:spam@example.net"])
            .status
            .success()
    );
    // Callees that are no address, or not one of ours (non-ASCII text once panicked here).
    for (callee, status) in [
        ("ÏZõË", 400),
        ("tëł:+31", 400),
        ("sip:ÏZõË@example.com", 400),
        ("tel:+999999", 404),
    ] {
        let r = proxy
            .post(format!("{}/v1/service/route", app.base))
            .json(&json!({"callee": callee, "caller": "anonymous", "registered": true, "busy": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{callee}: {}", r.text().await.unwrap());
    }
    for (caller, code) in [
        ("tel:+49-30-123456", Some(603)),
        ("<tel:+4930123456>;tag=x", Some(603)),
        ("sip:spam@example.net;user=phone", Some(603)),
        (
            "\"Spam\" <sip:spam@Example.NET:5060;transport=tcp>;tag=9",
            Some(603),
        ),
        ("sip:ham@example.net;user=phone", None),
        ("tel:+3120555", None),
    ] {
        let r = proxy
            .post(format!("{}/v1/service/route", app.base))
            .json(&json!({"callee": "sip:alice@example.com;user=phone", "caller": caller, "registered": true, "busy": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{caller}");
        let body: Value = r.json().await.unwrap();
        match code {
            Some(c) => assert_eq!(body["code"], c, "{caller}: {body}"),
            None => assert_eq!(body["action"], "ring", "{caller}: {body}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_request_is_refused_with_what_is_wrong_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| hint_door(c, &["udp"])).await;
    let server = listen(&app, Transport::Udp).addr;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let send = |text: String| {
        let socket = &socket;
        async move {
            socket
                .send_to(text.replace('\n', "\r\n").as_bytes(), server)
                .await
                .unwrap();
            let mut buf = vec![0u8; 65_536];
            match tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                _ => None,
            }
        }
    };
    let head = |request_line: &str, cseq: &str| {
        format!(
            "{request_line}\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad1\nMax-Forwards: 70\nFrom: <sip:bob@example.org>;tag=1\nTo: <sip:alice@example.com>\nCall-ID: bad-1\nCSeq: {cseq}\nContent-Length: 0\n\n"
        )
    };
    let a = send(head("INVITE sip:alice@example.com SIP/2.0", "1 OPTIONS"))
        .await
        .unwrap();
    assert!(a.starts_with("SIP/2.0 400 Bad Request\r\n"), "{a}");
    assert!(a.contains("Warning: 399 sip-settings \"CSeq method"), "{a}");
    assert!(a.contains("Call-ID: bad-1\r\n"), "{a}");
    let a = send(head("INVITE sip:alice@example.com SIP/7.0", "1 INVITE"))
        .await
        .unwrap();
    assert!(
        a.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{a}"
    );
    // Without the headers an answer needs, nothing comes back; the server still answers.
    assert_eq!(
        send("INVITE sip:alice@example.com SIP/2.0\n\n".into()).await,
        None
    );
    let a = send(head("INVITE sip:alice@example.com SIP/2.0", "1 INVITE"))
        .await
        .unwrap();
    assert!(a.starts_with("SIP/2.0 302 "), "{a}");
}
