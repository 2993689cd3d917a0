//! Every refusal of docs/actions.md, table-driven: the status code, `success: false`, a message
//! naming the parameter, and nothing changed for anyone (every read action of alice, bob and
//! carol compared before and after). And a subscriber never reaches another account.

use serde_json::Value;
use sip_settings_core::cert::IssuedCertificate;

use crate::helpers::*;

const CAROL: &str = "carol@example.com";

/// Every action name of docs/actions.md.
const ALL_NAMES: [&str; 33] = [
    "account",
    "get_identity",
    "get_account",
    "aliases",
    "get_aliases",
    "enum",
    "get_enum",
    "diversions",
    "get_call_forwarding",
    "get_diversions",
    "accept",
    "get_accept_rules",
    "get_accept",
    "reject",
    "get_reject_rules",
    "get_reject",
    "voicemail",
    "get_voicemail",
    "dnd_on",
    "set_dnd_on",
    "dnd_off",
    "set_dnd_off",
    "privacy_on",
    "set_privacy_on",
    "privacy_off",
    "set_privacy_off",
    "add_alias",
    "set_diversions",
    "set_call_forwarding",
    "crt",
    "get_crt",
    "p12",
    "get_p12",
];

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

/// Panics listing every problem, if any.
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn every_refused_change_says_why_and_changes_nothing() {
    let world = World::new().await;
    let app = &world.app;
    let long_target = format!(
        "action=set_diversions&FUNC={}%40example.net",
        "a".repeat(250)
    );
    let long_username = format!("action=add_alias&username={}", "a".repeat(65));
    let cases: Vec<(String, u16, Vec<&str>)> = [
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
    .collect();
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
    for name in ALL_NAMES {
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
    for name in ALL_NAMES {
        let post = is_p12(name);
        let mut form = vec![("action", name), ("account", BOB)];
        form.extend(params_for(name));
        let response = send(app, &app.bob, post, &form).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
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
