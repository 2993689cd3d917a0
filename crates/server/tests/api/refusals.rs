//! Every refusal of docs/actions.md, table-driven: the status code, `success: false`, a message
//! naming the parameter, and nothing changed for anyone (every read action of alice, bob and
//! carol compared before and after). And a subscriber never reaches another account.

use chrono::Utc;
use serde_json::Value;
use sip_settings_core::cert::IssuedCertificate;

use crate::helpers::*;

const CAROL: &str = "carol@example.com";

struct World {
    app: TestApp,
    carol: IssuedCertificate,
}

impl World {
    /// alice: alias alice.smith, ENUM +31201234567, privacy on, FUNC to an outside number and
    /// FNOL to dave@example.net. bob: alias bobby, ENUM +31207654321, forwards FUNC to alice.
    /// carol forwards FBUS to bob.
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let carol = app.add_account_with_cert(CAROL, &[]).await;
        for (cert, query) in [
            (&app.alice, "action=add_alias&username=alice.smith"),
            (&app.bob, "action=add_alias&username=bobby"),
            (&app.alice, "action=privacy_on"),
            (
                &app.alice,
                "action=set_diversions&FUNC=%2B31201111111&FNOL=dave%40example.net",
            ),
            (&app.bob, "action=set_diversions&FUNC=alice"),
            (&carol, "action=set_diversions&FBUS=bob"),
        ] {
            let (status, body) = app.action(cert, query).await;
            assert_success(status, &body);
        }
        app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
        app.cli_ok(&["enum", "add", "+31207654321", BOB]);
        Self { app, carol }
    }

    /// Every read action of alice, bob and carol.
    async fn snapshot(&self) -> Vec<(&'static str, Value)> {
        let mut s = self.app.snapshot_both().await;
        s.extend(self.app.snapshot_of(&self.carol).await);
        s
    }

    fn cert_lines(&self) -> Vec<usize> {
        [ALICE, BOB, CAROL]
            .iter()
            .map(|who| self.app.cert_list_lines(who))
            .collect()
    }
}

/// Sends `query` by GET and then the same as a POST form body; each must be refused with
/// `status`, `success: false`, and a message starting `Error: ` that contains every needle.
/// Returns what was wrong, so that a table reports every failing case at once.
async fn refusal_problems(
    app: &TestApp,
    cert: &IssuedCertificate,
    query: &str,
    status: u16,
    needles: &[&str],
) -> Vec<String> {
    let client = app.client(Some(cert));
    let mut problems = Vec::new();
    for method in ["GET", "POST"] {
        let response = if method == "GET" {
            client
                .get(format!("{}/settings.phtml?{query}", app.base))
                .send()
                .await
                .unwrap()
        } else {
            client
                .post(format!("{}/settings.phtml", app.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(query.to_owned())
                .send()
                .await
                .unwrap()
        };
        let (got, body) = json_of(response).await;
        let text = body["error_message"].as_str().unwrap_or_default();
        let mut wrong = Vec::new();
        if got != status {
            wrong.push(format!("status {got}, expected {status}"));
        }
        if body["success"] != false {
            wrong.push("success is not false".to_owned());
        }
        if !text.starts_with("Error: ") {
            wrong.push("message does not start with 'Error: '".to_owned());
        }
        for needle in needles {
            if !text.contains(needle) {
                wrong.push(format!("'{needle}' not in the message"));
            }
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "{method} {query}: {} -- got {body}",
                wrong.join("; ")
            ));
        }
    }
    problems
}

/// Panics listing every problem and how many requests changed something, if any.
fn assert_nothing_changed(problems: &[String], changed: usize) {
    assert!(
        problems.is_empty(),
        "{} problem(s), {changed} request(s) or method(s) changed something:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Panics listing every problem, if any.
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Refused `dnd_on` and `add_alias` queries of alice: the status and what the message names.
fn dnd_and_alias_refusals() -> Vec<(String, u16, Vec<&'static str>)> {
    let long_username = format!("action=add_alias&username={}", "a".repeat(65));
    [
        // dnd_on: duration
        ("action=dnd_on&duration=0", 400, vec!["duration"]),
        ("action=dnd_on&duration=-5", 400, vec!["duration"]),
        ("action=dnd_on&duration=abc", 400, vec!["duration"]),
        ("action=set_dnd_on&duration=10081", 400, vec!["duration"]),
        ("action=dnd_on&duration=", 400, vec!["duration"]),
        ("action=set_dnd_on&duration=1.5", 400, vec!["duration"]),
        (
            "action=dnd_on&duration=99999999999999999999999",
            400,
            vec!["duration"],
        ),
        // add_alias: username syntax
        ("action=add_alias", 400, vec!["username"]),
        ("action=add_alias&username=", 400, vec!["username"]),
        ("action=add_alias&username=-alice", 400, vec!["username"]),
        ("action=add_alias&username=.alice", 400, vec!["username"]),
        ("action=add_alias&username=al%20ice", 400, vec!["username"]),
        ("action=add_alias&username=al!ce", 400, vec!["username"]),
        (
            "action=add_alias&username=alice2%40example.com",
            400,
            vec!["username"],
        ),
        (
            "action=add_alias&username=%C3%A9lise",
            400,
            vec!["username"],
        ),
        (long_username.as_str(), 400, vec!["username"]),
        // add_alias: taken by an account or an alias of the domain
        (
            "action=add_alias&username=bob",
            409,
            vec!["username", "bob@example.com", "already taken"],
        ),
        (
            "action=add_alias&username=BOB",
            409,
            vec!["username", "bob@example.com", "already taken"],
        ),
        (
            "action=add_alias&username=carol",
            409,
            vec!["username", "carol@example.com", "already taken"],
        ),
        (
            "action=add_alias&username=alice",
            409,
            vec!["username", "alice@example.com", "already taken"],
        ),
        (
            "action=add_alias&username=bobby",
            409,
            vec!["username", "bobby@example.com", "already taken"],
        ),
        (
            "action=add_alias&username=alice.smith",
            409,
            vec!["username", "alice.smith@example.com", "already taken"],
        ),
    ]
    .into_iter()
    .map(|(q, s, n)| (q.to_owned(), s, n))
    .collect()
}

/// Refused `set_diversions` queries of alice: the status and what the message names.
fn diversion_refusals() -> Vec<(String, u16, Vec<&'static str>)> {
    let long_target = format!(
        "action=set_diversions&FUNC={}%40example.net",
        "a".repeat(250)
    );
    [
        // set_diversions: bad syntax
        (
            "action=set_diversions&FUNC=bob%40%40example.com",
            400,
            vec!["FUNC"],
        ),
        ("action=set_diversions&FBUS=sip%3A", 400, vec!["FBUS"]),
        (
            "action=set_diversions&FNOL=sip%3A%40example.com",
            400,
            vec!["FNOL"],
        ),
        ("action=set_call_forwarding&FNOA=bob%40", 400, vec!["FNOA"]),
        (
            "action=set_diversions&FUNV=%40example.com",
            400,
            vec!["FUNV"],
        ),
        (
            "action=set_diversions&FUNC=%3Cvoicemail%3E",
            400,
            vec!["FUNC"],
        ),
        (
            "action=set_diversions&FUNC=http%3A%2F%2Fexample.com%2Fx",
            400,
            vec!["FUNC"],
        ),
        // control characters
        (
            "action=set_diversions&FBUS=bob%01%40example.com",
            400,
            vec!["FBUS"],
        ),
        ("action=set_diversions&FNOA=bob%0A", 400, vec!["FNOA"]),
        ("action=set_call_forwarding&FNOL=bob%00", 400, vec!["FNOL"]),
        // longer than 255 bytes
        (long_target.as_str(), 400, vec!["FUNC"]),
        // the account itself, its aliases, its ENUM numbers
        ("action=set_diversions&FUNC=alice", 400, vec!["FUNC"]),
        (
            "action=set_diversions&FUNC=alice%40example.com",
            400,
            vec!["FUNC"],
        ),
        (
            "action=set_diversions&FNOL=sip%3Aalice%40example.com",
            400,
            vec!["FNOL"],
        ),
        (
            "action=set_diversions&FNOL=sips%3Aalice%40example.com",
            400,
            vec!["FNOL"],
        ),
        (
            "action=set_call_forwarding&FBUS=%2B31%2020%20123%204567",
            400,
            vec!["FBUS"],
        ),
        ("action=set_diversions&FNOA=alice.smith", 400, vec!["FNOA"]),
        (
            "action=set_diversions&FNOA=sip%3Aalice.smith%40example.com",
            400,
            vec!["FNOA"],
        ),
        (
            "action=set_diversions&FUNV=%2B31201234567",
            400,
            vec!["FUNV"],
        ),
        (
            "action=set_diversions&FUNV=0031201234567",
            400,
            vec!["FUNV"],
        ),
        // placeholders without what they stand for
        (
            "action=set_diversions&FUNV=%3Cvoice-mailbox%3E",
            400,
            vec!["FUNV"],
        ),
        (
            "action=set_diversions&FNOA=%3Cvoice-mailbox%3E",
            400,
            vec!["FNOA"],
        ),
        (
            "action=set_diversions&FNOL=%3Cmobile-number%3E",
            400,
            vec!["FNOL"],
        ),
        // loops through local accounts: bob forwards FUNC to alice, carol FBUS to bob
        (
            "action=set_diversions&FNOA=bob",
            400,
            vec!["FNOA", "alice@example.com", "bob@example.com"],
        ),
        (
            "action=set_diversions&FNOA=sip%3Abob%40example.com",
            400,
            vec!["FNOA", "alice@example.com", "bob@example.com"],
        ),
        (
            "action=set_call_forwarding&FUNC=bobby",
            400,
            vec!["FUNC", "alice@example.com", "bob"],
        ),
        (
            "action=set_diversions&FBUS=%2B31207654321",
            400,
            vec!["FBUS", "alice@example.com"],
        ),
        (
            "action=set_diversions&FNOL=carol",
            400,
            vec![
                "FNOL",
                "alice@example.com",
                "bob@example.com",
                "carol@example.com",
            ],
        ),
        // one valid and one invalid condition: nothing is written
        (
            "action=set_diversions&FNOL=erin%40example.net&FBUS=bob%01",
            400,
            vec!["FBUS"],
        ),
        (
            "action=set_diversions&FBUS=bob%01&FNOL=erin%40example.net",
            400,
            vec!["FBUS"],
        ),
        (
            "action=set_diversions&FUNC=erin%40example.net&FNOA=bob",
            400,
            vec!["FNOA"],
        ),
        ("action=set_diversions&FUNC=&FUNV=alice", 400, vec!["FUNV"]),
        (
            "action=set_call_forwarding&FNOL=&FUNC=%3Cmobile-number%3E",
            400,
            vec!["FUNC"],
        ),
    ]
    .into_iter()
    .map(|(q, s, n)| (q.to_owned(), s, n))
    .collect()
}

#[tokio::test]
async fn every_refused_change_says_why_and_changes_nothing() {
    let world = World::new().await;
    let app = &world.app;
    let mut cases = dnd_and_alias_refusals();
    cases.extend(diversion_refusals());
    let before = world.snapshot().await;
    let certs_before = world.cert_lines();
    let mut problems = Vec::new();
    for (query, status, needles) in &cases {
        problems.extend(refusal_problems(app, &app.alice, query, *status, needles).await);
        if world.snapshot().await != before {
            problems.push(format!("{query} changed something"));
            panic!("{query} changed something; earlier problems: {problems:#?}");
        }
    }
    assert_eq!(world.cert_lines(), certs_before);
    assert_no_problems(&problems);
}

#[tokio::test]
async fn the_alias_limit_is_a_409_that_changes_nothing() {
    let app = TestApp::spawn().await;
    for i in 0..20 {
        let (status, body) = app
            .action(&app.alice, &format!("action=add_alias&username=a{i:02}"))
            .await;
        assert_success(status, &body);
    }
    assert_eq!(
        app.read(&app.alice, "aliases")
            .await
            .as_array()
            .unwrap()
            .len(),
        20
    );
    let before = app.snapshot_both().await;
    let problems = refusal_problems(
        &app,
        &app.alice,
        "action=add_alias&username=a20",
        409,
        &["username", "at most 20 aliases"],
    )
    .await;
    assert_eq!(
        app.snapshot_both().await,
        before,
        "the 21st alias changed something"
    );
    // The limit is per account: bob may still add one, and a20 is free for him.
    let (status, body) = app.action(&app.bob, "action=add_alias&username=a20").await;
    assert_done(status, &body, "Alias a20@example.com added");
    assert_no_problems(&problems);
}

/// The parameters that would make each action a valid change for its caller.
fn params_for(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "dnd_on" | "set_dnd_on" => vec![("duration", "30")],
        "add_alias" => vec![("username", "mallory")],
        "set_diversions" | "set_call_forwarding" => {
            vec![("FUNC", "mallory@example.net"), ("FBUS", "")]
        }
        "p12" | "get_p12" => vec![("password", BOB_PASSWORD)],
        _ => vec![],
    }
}

fn is_p12(name: &str) -> bool {
    matches!(name, "p12" | "get_p12")
}

async fn send(
    app: &TestApp,
    cert: &IssuedCertificate,
    post: bool,
    form: &[(&str, &str)],
) -> reqwest::Response {
    if post {
        app.post_raw(cert, form).await
    } else {
        let query: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        app.get_raw(cert, &query.join("&")).await
    }
}

#[tokio::test]
async fn a_subscriber_never_sees_or_changes_another_account() {
    let world = World::new().await;
    let app = &world.app;
    let before = world.snapshot().await;
    let certs_before = world.cert_lines();
    for name in ACTION_NAMES {
        for post in [false, true] {
            if is_p12(name) && !post {
                continue;
            }
            let mut form = vec![("action", name), ("account", ALICE)];
            form.extend(params_for(name));
            let response = send(app, &app.bob, post, &form).await;
            let (status, body) = json_of(response).await;
            assert_eq!(status, 403, "{name} post={post}: {body}");
            assert_eq!(body["success"], false, "{name}: {body}");
            assert!(
                !body.to_string().contains("alice.smith")
                    && !body.to_string().contains("31201234567"),
                "{name} leaks alice's data: {body}"
            );
            assert_eq!(
                world.snapshot().await,
                before,
                "{name} post={post} changed something"
            );
            assert_eq!(
                world.cert_lines(),
                certs_before,
                "{name} issued a certificate"
            );
        }
    }
    // Naming the own account works for every action.
    for name in ACTION_NAMES {
        let post = is_p12(name);
        let mut form = vec![("action", name), ("account", BOB)];
        form.extend(params_for(name));
        let response = send(app, &app.bob, post, &form).await;
        let status = response.status().as_u16();
        let content_type = header_of(&response, "content-type").unwrap_or_default();
        let body = response.bytes().await.unwrap();
        assert_eq!(
            status,
            200,
            "{name} with account=bob: {}",
            String::from_utf8_lossy(&body)
        );
        if matches!(name, "crt" | "get_crt") {
            assert!(
                content_type.starts_with("application/x-pem-file"),
                "{content_type}"
            );
        } else if is_p12(name) {
            assert!(
                content_type.starts_with("application/x-pkcs12"),
                "{content_type}"
            );
        } else {
            assert!(
                content_type.starts_with("application/json"),
                "{content_type}"
            );
            let v: Value = serde_json::from_slice(&body).unwrap();
            if name.contains("account") || name == "get_identity" {
                assert_eq!(v["sip_address"], BOB);
            }
            if v.get("success").is_some() {
                assert_eq!(v["success"], true, "{name}: {v}");
            }
        }
    }
    // Bob's own changes landed on bob only.
    assert_eq!(
        app.read(&app.bob, "diversions").await["FUNC"],
        "mallory@example.net"
    );
    assert!(
        app.read(&app.bob, "aliases")
            .await
            .as_array()
            .unwrap()
            .contains(&Value::from("mallory@example.com"))
    );
    let after = app.snapshot_of(&app.alice).await;
    assert_eq!(after, before[..7].to_vec(), "alice changed");
}

// ===== issue 12, point 8: every refusal is the documented shape ===================================

/// A reply with the headers a refusal is judged by.
#[derive(Debug)]
struct Answer {
    status: u16,
    allow: Option<String>,
    content_type: String,
    /// The body as JSON; `Null` when empty.
    body: Value,
}

/// Sends `method path` with `cert`, and a body of `content_type` when given.
async fn request(
    app: &TestApp,
    cert: &IssuedCertificate,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client(Some(cert))
        .request(method.clone(), format!("{}{path}", app.base));
    if let Some((content_type, text)) = body {
        request = request
            .header("content-type", content_type)
            .body(text.to_owned());
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| header_of(&response, name);
    let allow = header("allow");
    let content_type = header("content-type").unwrap_or_default();
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        // Not JSON (a certificate file, say): kept as text, which no assertion accepts.
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        allow,
        content_type,
        body,
    }
}

/// What is wrong with `a` as a problem document of `status` and `code` whose `field` is
/// `field` and whose detail contains every needle.
fn problem_problems(
    what: &str,
    a: &Answer,
    status: u16,
    code: &str,
    field: Option<&str>,
    needles: &[&str],
) -> Vec<String> {
    let mut wrong = Vec::new();
    if a.status != status {
        wrong.push(format!("status {}, expected {status}", a.status));
    }
    if a.content_type != "application/problem+json" {
        wrong.push(format!("content-type {:?}", a.content_type));
    }
    if a.body["status"] != status || a.body["code"] != code {
        wrong.push(format!("status/code in the body, expected {status} {code}"));
    }
    if a.body["field"].as_str() != field {
        wrong.push(format!("field, expected {field:?}"));
    }
    let detail = a.body["detail"].as_str().unwrap_or_default();
    for needle in needles {
        if !detail.contains(needle) {
            wrong.push(format!("'{needle}' not in the detail"));
        }
    }
    if wrong.is_empty() {
        Vec::new()
    } else {
        vec![format!("{what}: {} -- got {:?}", wrong.join("; "), a.body)]
    }
}

impl World {
    /// Everything a refused request could have touched: the read actions of the three accounts,
    /// alice's and bob's calls and phonebook, and alice's journal.
    async fn state(&self) -> Vec<Value> {
        let app = &self.app;
        let mut s: Vec<Value> = self.snapshot().await.into_iter().map(|(_, v)| v).collect();
        for cert in [&app.alice, &app.bob] {
            for path in ["/v1/me/phonebook", "/v1/me/journal?limit=200"] {
                let a = request(app, cert, "GET", path, None).await;
                assert_eq!(a.status, 200, "{path}: {:?}", a.body);
                s.push(a.body);
            }
            s.push(app.read(cert, "calls&days=90&limit=500").await);
        }
        s
    }
}

/// `settings.phtml` and `/settings` answer GET and POST only. Before: PUT, DELETE, PATCH,
/// OPTIONS, HEAD and any extension method ran the action like a GET (so `DELETE
/// ?action=dnd_on` turned DND on).
#[tokio::test]
async fn the_action_endpoint_answers_only_get_and_post() {
    let world = World::new().await;
    let app = &world.app;
    let changes = [
        "action=dnd_on&duration=30",
        "action=privacy_off",
        "action=set_diversions&FUNC=",
        "action=add_alias&username=mallory",
        "action=crt",
    ];
    let mut before = world.state().await;
    let mut certs_before = world.cert_lines();
    let mut problems = Vec::new();
    let mut changed = 0;
    for path in ["/settings.phtml", "/settings"] {
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "HEAD"] {
            let mut queries: Vec<&str> = changes.to_vec();
            if method != "HEAD" {
                queries.push("action=account");
            }
            for query in queries {
                for in_body in [false, true] {
                    let what = format!("{method} {path} {query} (in the body: {in_body})");
                    let a = if in_body {
                        request(
                            app,
                            &app.alice,
                            method,
                            path,
                            Some(("application/x-www-form-urlencoded", query)),
                        )
                        .await
                    } else {
                        request(app, &app.alice, method, &format!("{path}?{query}"), None).await
                    };
                    let mut wrong = Vec::new();
                    if a.status != 405 {
                        wrong.push(format!("status {}", a.status));
                    }
                    if a.allow.as_deref() != Some("GET, POST") {
                        wrong.push(format!("Allow {:?}", a.allow));
                    }
                    // HEAD has no body; every other 405 is the status object naming the method.
                    if method != "HEAD" {
                        let text = a.body["error_message"].as_str().unwrap_or_default();
                        if a.body["success"] != false
                            || !text.starts_with("Error: ")
                            || !text.contains(method)
                        {
                            wrong.push("not the status object naming the method".to_owned());
                        }
                    }
                    if !wrong.is_empty() {
                        problems.push(format!("{what}: {} -- {:?}", wrong.join("; "), a.body));
                    }
                }
            }
            // Each method's requests are compared with the state just before them (reading
            // everything after every request would take a minute).
            let (now, certs_now) = (world.state().await, world.cert_lines());
            if now != before || certs_now != certs_before {
                changed += 1;
                problems.push(format!("{method} {path} changed something"));
                (before, certs_before) = (now, certs_now);
            }
        }
    }
    // HEAD of a read action is a GET without the body.
    let a = request(
        app,
        &app.alice,
        "HEAD",
        "/settings.phtml?action=account",
        None,
    )
    .await;
    assert_eq!((a.status, &a.body), (200, &Value::Null), "{a:?}");
    assert!(a.content_type.starts_with("application/json"), "{a:?}");
    assert_nothing_changed(&problems, changed);
}

/// `/v1` bodies are JSON objects. Before: an array filled a struct positionally (`[false]`
/// turned privacy off, a twelve-element array recorded a call).
#[tokio::test]
async fn v1_bodies_that_are_not_objects_are_refused_and_change_nothing() {
    let world = World::new().await;
    let app = &world.app;
    let svc = service_cert(app).await;
    let call = r#"["c-1@proxy", "f", "t", "sip:bob@example.com", "sip:alice@example.com",
        "2026-01-01T10:00:00Z", "2026-01-01T10:01:00Z", 60, 200, ["audio"], "192.0.2.1", "0.10"]"#;
    let cases: Vec<(&IssuedCertificate, &str, &str, &str, &str)> = vec![
        (&app.alice, "PUT", "/v1/me/privacy", "[false]", "an array"),
        (&app.alice, "PUT", "/v1/me/privacy", " false", "a boolean"),
        (&app.alice, "PUT", "/v1/me/privacy", "null", "null"),
        (&app.alice, "PUT", "/v1/me/privacy", "\"on\"", "a string"),
        (&app.alice, "PUT", "/v1/me/privacy", "1", "a number"),
        (&app.alice, "PATCH", "/v1/me", "[\"Mallory\"]", "an array"),
        (
            &app.alice,
            "PUT",
            "/v1/me/diversions",
            "[\"mallory@example.net\"]",
            "an array",
        ),
        (
            &app.alice,
            "PATCH",
            "/v1/me/diversions",
            "[null]",
            "an array",
        ),
        (
            &app.alice,
            "PUT",
            "/v1/me/diversions/FUNC",
            "[\"mallory@example.net\"]",
            "an array",
        ),
        (
            &app.alice,
            "POST",
            "/v1/me/aliases",
            "[\"mallory\"]",
            "an array",
        ),
        (
            &app.alice,
            "POST",
            "/v1/me/reject-rules",
            "[\"mallory\"]",
            "an array",
        ),
        (&app.alice, "PUT", "/v1/me/dnd", "[true]", "an array"),
        (
            &app.alice,
            "PUT",
            "/v1/me/accept-rules/temporary",
            "[[]]",
            "an array",
        ),
        (
            &app.alice,
            "PUT",
            "/v1/me/accept-rules/31",
            "[\"08:00\", \"17:00\", []]",
            "an array",
        ),
        (&app.alice, "PUT", "/v1/me/voicemail", "[true]", "an array"),
        (
            &app.alice,
            "POST",
            "/v1/me/phonebook",
            "[\"sip:m@example.net\", \"M\", []]",
            "an array",
        ),
        (
            &svc,
            "POST",
            "/v1/service/route",
            "[\"sip:bob@example.com\"]",
            "an array",
        ),
        (&svc, "POST", "/v1/service/calls", call, "an array"),
        (
            &svc,
            "POST",
            "/v1/service/prepaid/sessions",
            "[\"alice@example.com\", \"+31201234567\", \"x\"]",
            "an array",
        ),
        (
            &svc,
            "POST",
            "/v1/service/prepaid/sessions/x/close",
            "[10]",
            "an array",
        ),
    ];
    let mut before = world.state().await;
    let mut changed = 0;
    let mut problems = Vec::new();
    for (cert, method, path, body, kind) in cases {
        let a = request(app, cert, method, path, Some(("application/json", body))).await;
        let what = format!("{method} {path} {body}");
        problems.extend(problem_problems(
            &what,
            &a,
            400,
            "invalid_json",
            None,
            &["request body must be a JSON object", kind],
        ));
        let now = world.state().await;
        if now != before {
            changed += 1;
            problems.push(format!("{what} changed something"));
            before = now;
        }
    }
    assert_nothing_changed(&problems, changed);
}

/// A wrong method on a `/v1` path is a `405` problem document with `Allow`. Before: an empty
/// body.
#[tokio::test]
async fn a_wrong_method_on_v1_is_a_problem_405_with_allow() {
    let world = World::new().await;
    let app = &world.app;
    let svc = service_cert(app).await;
    let object = Some(("application/json", "{\"on\": false}"));
    /// A body: its content type and text.
    type Body<'a> = Option<(&'a str, &'a str)>;
    let cases: Vec<(&IssuedCertificate, &str, &str, Body, &str)> = vec![
        (&app.alice, "DELETE", "/v1/me", None, "GET,HEAD,PATCH"),
        (&app.alice, "POST", "/v1/me/privacy", object, "GET,HEAD,PUT"),
        (
            &app.alice,
            "PATCH",
            "/v1/me/privacy",
            object,
            "GET,HEAD,PUT",
        ),
        (
            &app.alice,
            "DELETE",
            "/v1/me/aliases",
            None,
            "GET,HEAD,POST",
        ),
        (
            &app.alice,
            "PUT",
            "/v1/me/aliases/alice.smith%40example.com",
            None,
            "GET,HEAD,DELETE",
        ),
        (
            &app.alice,
            "POST",
            "/v1/me/dnd",
            None,
            "GET,HEAD,PUT,DELETE",
        ),
        (&app.alice, "PUT", "/v1/me/usage/2026-01", None, "GET,HEAD"),
        (&app.alice, "PUT", "/v1/openapi.json", None, "GET,HEAD"),
        (&svc, "GET", "/v1/service/calls", None, "POST"),
        (&svc, "PUT", "/v1/service/route", None, "POST"),
    ];
    let before = world.state().await;
    let mut problems = Vec::new();
    for (cert, method, path, body, allow) in cases {
        let a = request(app, cert, method, path, body).await;
        let what = format!("{method} {path}");
        problems.extend(problem_problems(
            &what,
            &a,
            405,
            "method_not_allowed",
            None,
            &[method],
        ));
        if a.allow.as_deref() != Some(allow) {
            problems.push(format!("{what}: Allow {:?}, expected {allow}", a.allow));
        }
    }
    assert_eq!(world.state().await, before);
    assert_no_problems(&problems);
}

/// Whole-number parameters are digits only: `duration=%2B5` (and an unencoded `+5`, which
/// arrives as " 5") is refused, like a sign or a space in `days`, `limit` and `before`.
/// Months have exactly four-digit years. Before: Rust's `parse` took the sign and the
/// parameter passed as 5.
#[tokio::test]
async fn signed_or_spaced_numbers_and_long_years_are_refused() {
    let world = World::new().await;
    let app = &world.app;
    let cases: Vec<(&str, &str)> = vec![
        ("action=dnd_on&duration=%2B5", "duration"),
        ("action=set_dnd_on&duration=+5", "duration"),
        ("action=dnd_on&duration=%205", "duration"),
        ("action=dnd_on&duration=5%20", "duration"),
        ("action=calls&days=%2B5", "days"),
        ("action=calls&days=+5", "days"),
        ("action=get_calls&limit=%2B5", "limit"),
        ("action=balance_history&limit=%2B5", "limit"),
        ("action=crt&days=%2B5", "days"),
        ("action=crt&days=+5", "days"),
        ("action=monthly_usage&month=10000-01", "month"),
        ("action=monthly_usage&month=%2B999-01", "month"),
        ("action=monthly_usage&month=2026-%2B1", "month"),
        ("action=monthly_usage&month=+2026-01", "month"),
        ("action=get_monthly_usage&month=99999-12", "month"),
    ];
    let mut before = world.state().await;
    let mut changed = 0;
    let certs_before = world.cert_lines();
    let mut problems = Vec::new();
    for (query, field) in &cases {
        problems.extend(refusal_problems(app, &app.alice, query, 400, &[field]).await);
        let now = world.state().await;
        if now != before {
            changed += 1;
            problems.push(format!("{query} changed something"));
            before = now;
        }
    }
    let v1_cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        ("GET", "/v1/me/calls?limit=%2B5", None, "limit"),
        ("GET", "/v1/me/calls?limit=+5", None, "limit"),
        ("GET", "/v1/me/journal?limit=%2B5", None, "limit"),
        ("GET", "/v1/me/journal?before=%2B5", None, "before"),
        ("GET", "/v1/me/balance-history?limit=%2B5", None, "limit"),
        ("GET", "/v1/me/usage/10000-01", None, "month"),
        ("GET", "/v1/me/usage/+999-01", None, "month"),
        ("GET", "/v1/me/usage/%2B999-01", None, "month"),
        ("GET", "/v1/me/usage/2026-+1", None, "month"),
        (
            "PUT",
            "/v1/me/accept-rules/%2B31",
            Some(r#"{"start": "08:00", "stop": "17:00", "groups": []}"#),
            "days",
        ),
        (
            "PUT",
            "/v1/me/accept-rules/31",
            Some(r#"{"start": "+8:00", "stop": "17:00", "groups": []}"#),
            "start",
        ),
    ];
    for (method, path, body, field) in v1_cases {
        let body = body.map(|b| ("application/json", b));
        let a = request(app, &app.alice, method, path, body).await;
        let what = format!("{method} {path}");
        problems.extend(problem_problems(
            &what,
            &a,
            400,
            "invalid_field",
            Some(field),
            &[],
        ));
        let now = world.state().await;
        if now != before {
            changed += 1;
            problems.push(format!("{what} changed something"));
            before = now;
        }
    }
    if world.cert_lines() != certs_before {
        problems.push(format!(
            "certificates were issued: {:?} -> {:?}",
            certs_before,
            world.cert_lines()
        ));
    }
    assert_nothing_changed(&problems, changed);
    // The last four-digit year is a month like any other.
    let (status, body) = app
        .action(&app.alice, "action=monthly_usage&month=9999-12")
        .await;
    assert_eq!(
        (status, &body["month"]),
        (200, &Value::from("9999-12")),
        "{body}"
    );
    let a = request(app, &app.alice, "GET", "/v1/me/usage/9999-12", None).await;
    assert_eq!(
        (a.status, &a.body["month"]),
        (200, &Value::from("9999-12")),
        "{a:?}"
    );
}

/// Explicit `null` where the OpenAPI document says nullable: the call record's and the
/// close's optional fields. Before: `"from_tag": null` was `400 invalid_json`.
#[tokio::test]
async fn explicit_null_is_accepted_where_the_schema_says_nullable() {
    let app = TestApp::spawn().await;
    let svc = service_cert(&app).await;
    let doc = request(&app, &app.alice, "GET", "/v1/openapi.json", None)
        .await
        .body;
    let schema = &doc["components"]["schemas"]["CallRecordBody"]["properties"];
    let nulls = ["from_tag", "to_tag", "media", "proxy_ip", "price"];
    for field in nulls {
        assert!(
            schema[field]["type"]
                .as_array()
                .is_some_and(|t| t.contains(&"null".into())),
            "{field} is not nullable in the document: {}",
            schema[field]
        );
    }
    let start = Utc::now() - chrono::Duration::hours(1);
    let mut call = serde_json::json!({
        "call_id": "null-1@proxy",
        "caller": "sip:bob@example.com",
        "callee": "sip:alice@example.com",
        "start": start.to_rfc3339(),
        "stop": (start + chrono::Duration::seconds(60)).to_rfc3339(),
        "duration": 60,
        "status": 200,
    });
    for field in nulls {
        call[field] = Value::Null;
    }
    let a = request(
        &app,
        &svc,
        "POST",
        "/v1/service/calls",
        Some(("application/json", &call.to_string())),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["recorded"], true, "{a:?}");
    let placed = app.read(&app.bob, "calls").await;
    assert_eq!(placed["placed"][0]["sessionId"], "null-1@proxy", "{placed}");

    // A required field is not nullable: null is refused naming it, and nothing is recorded.
    for field in ["call_id", "caller", "duration", "status"] {
        let mut bad = call.clone();
        bad["call_id"] = Value::from(format!("null-{field}@proxy"));
        bad[field] = Value::Null;
        let a = request(
            &app,
            &svc,
            "POST",
            "/v1/service/calls",
            Some(("application/json", &bad.to_string())),
        )
        .await;
        assert_problem_field(&a, 400, field);
    }
    let after = app.read(&app.bob, "calls").await;
    assert_eq!(after["placed"].as_array().map(Vec::len), Some(1), "{after}");
}

#[track_caller]
fn assert_problem_field(a: &Answer, status: u16, field: &str) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{a:?}");
    assert_eq!(a.body["field"], field, "{a:?}");
}

/// `set_diversions&FNOA=+31201234567` with the `+` unencoded arrives as " 31201234567": it is
/// refused saying to encode `+` as %2B (GET and POST form), instead of being stored as the
/// user `31201234567@example.com`. An empty or all-space value still clears.
#[tokio::test]
async fn an_unencoded_plus_in_a_forwarding_target_is_refused() {
    let world = World::new().await;
    let app = &world.app;
    let mut before = world.state().await;
    let mut changed = 0;
    let mut problems = Vec::new();
    for query in [
        "action=set_diversions&FNOA=+31201234567",
        "action=set_call_forwarding&FBUS=+31+20+123+4567",
        "action=set_diversions&FNOL=%2031201234567",
    ] {
        let field = &query[query.find('&').unwrap() + 1..][..4];
        problems.extend(refusal_problems(app, &app.alice, query, 400, &[field, "%2B"]).await);
        let now = world.state().await;
        if now != before {
            changed += 1;
            problems.push(format!("{query} changed something"));
            before = now;
        }
    }
    assert_nothing_changed(&problems, changed);
    // Encoded, it is the number; a lone (space) value clears.
    let (status, body) = app
        .action(&app.alice, "action=set_diversions&FNOA=%2B31209999999")
        .await;
    assert_success(status, &body);
    assert_eq!(
        app.read(&app.alice, "diversions").await["FNOA"],
        "+31209999999@example.com"
    );
    let (status, body) = app.action(&app.alice, "action=set_diversions&FNOA=+").await;
    assert_success(status, &body);
    assert_eq!(
        app.read(&app.alice, "diversions").await["FNOA"],
        Value::Null
    );
}
