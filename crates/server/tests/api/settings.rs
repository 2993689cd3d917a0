//! Every action of docs/actions.md besides `account`, under its seed name and every alias, by
//! GET and by POST form: the reads and their objects, the changes and what they change, the
//! certificate downloads, a timed DND on a moved clock, and concurrent forwarding changes.

use std::process::Command;

use chrono::{DateTime, Duration};
use serde_json::{Value, json};
use sip_settings_core::Clock;
use sip_settings_core::cert::IssuedCertificate;

use crate::helpers::*;

/// The read actions with every accepted name, seed name first.
const READ_NAMES: [&[&str]; 6] = [
    &["aliases", "get_aliases"],
    &["enum", "get_enum"],
    &["diversions", "get_call_forwarding", "get_diversions"],
    &["accept", "get_accept_rules", "get_accept"],
    &["reject", "get_reject_rules", "get_reject"],
    &["voicemail", "get_voicemail"],
];

const D_KEYS: [&str; 6] = ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV", "no_answer_timeout"];

/// One read by GET and POST on both paths; all four must be the same 200 JSON.
async fn read_four_ways(app: &TestApp, cert: &IssuedCertificate, name: &str) -> Value {
    let client = app.client(Some(cert));
    let mut bodies = Vec::new();
    for path in ["settings.phtml", "settings"] {
        let response = client
            .get(format!("{}/{path}?action={name}", app.base))
            .send()
            .await
            .unwrap();
        bodies.push((format!("GET /{path}"), json_of(response).await));
        let response = client
            .post(format!("{}/{path}", app.base))
            .form(&[("action", name)])
            .send()
            .await
            .unwrap();
        bodies.push((format!("POST /{path}"), json_of(response).await));
    }
    let first = bodies[0].1.clone();
    for (how, (status, body)) in bodies {
        assert_eq!(status, 200, "{how} {name}: {body}");
        assert_eq!(body, first.1, "{how} {name} differs from GET");
    }
    first.1
}

/// Sends a change by GET (query) or POST (form), alternating with `round`.
async fn change(
    app: &TestApp,
    cert: &IssuedCertificate,
    round: usize,
    form: &[(&str, &str)],
) -> (u16, Value) {
    if round.is_multiple_of(2) {
        let query: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        app.action(cert, &query.join("&")).await
    } else {
        app.post_action(cert, form).await
    }
}

fn no_temporary_rule() -> Value {
    json!({"groups": [], "duration": 0, "until": null})
}

fn find_pin_keys(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k.to_ascii_lowercase().contains("pin") {
                    found.push(k.clone());
                }
                find_pin_keys(v, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| find_pin_keys(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn reads_of_a_fresh_account_are_empty_in_the_documented_shapes() {
    let app = TestApp::spawn().await;
    for names in READ_NAMES {
        let seed = read_four_ways(&app, &app.alice, names[0]).await;
        for alias in &names[1..] {
            assert_eq!(
                read_four_ways(&app, &app.alice, alias).await,
                seed,
                "{alias} differs from {}",
                names[0]
            );
        }
        match names[0] {
            "aliases" | "enum" | "reject" => assert_eq!(seed, json!([]), "{}", names[0]),
            "diversions" => {
                assert_eq!(keys_of(&seed), D_KEYS, "key order of object D");
                for k in &D_KEYS[..5] {
                    assert!(seed[k].is_null(), "{k}: {seed}");
                }
                assert_eq!(seed["no_answer_timeout"], 35);
            }
            "accept" => {
                assert_eq!(keys_of(&seed), ["persistent", "temporary", "groups"]);
                assert_eq!(seed["persistent"], json!({}));
                assert_eq!(keys_of(&seed["temporary"]), ["groups", "duration", "until"]);
                assert_eq!(seed["temporary"], no_temporary_rule());
                assert!(seed["groups"].is_array(), "{seed}");
            }
            "voicemail" => assert!(seed.is_null(), "no mailbox yet: {seed}"),
            other => unreachable!("{other}"),
        }
    }
}

#[tokio::test]
async fn reads_show_what_was_provisioned_under_every_name_and_method() {
    let app = TestApp::spawn().await;
    // Data from the subscriber's own changes and from the operator.
    for name in ["zed", "Bert"] {
        let (status, body) = app
            .action(&app.alice, &format!("action=add_alias&username={name}"))
            .await;
        assert_success(status, &body);
    }
    app.cli_ok(&["enum", "add", "+442071234567", ALICE]);
    app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
    app.cli_ok(&["reject", "add", ALICE, "sip:spam@example.net"]);
    app.cli_ok(&["reject", "add", ALICE, "sip:%0900@%"]);
    app.cli_ok(&[
        "accept",
        "add",
        ALICE,
        "--days",
        "31",
        "--start",
        "09:00",
        "--stop",
        "17:00",
        "--groups",
        "everybody",
    ]);
    app.cli_ok(&[
        "voicemail",
        "enable",
        ALICE,
        "--pin",
        "1234",
        "--email",
        "a@mail.example.org",
    ]);
    let (status, body) = app
        .action(
            &app.alice,
            "action=set_diversions&FUNC=bob&FNOA=%2B31201234599",
        )
        .await;
    assert_success(status, &body);

    for names in READ_NAMES {
        let seed = read_four_ways(&app, &app.alice, names[0]).await;
        for alias in &names[1..] {
            assert_eq!(
                read_four_ways(&app, &app.alice, alias).await,
                seed,
                "{alias} differs from {}",
                names[0]
            );
        }
        match names[0] {
            "aliases" => assert_eq!(seed, json!(["bert@example.com", "zed@example.com"])),
            "enum" => assert_eq!(seed, json!(["+31201234567", "+442071234567"])),
            "reject" => assert_eq!(seed, json!(["sip:%0900@%", "sip:spam@example.net"])),
            "diversions" => {
                assert_eq!(keys_of(&seed), D_KEYS, "key order of object D");
                assert_eq!(
                    seed,
                    json!({"FUNC": "bob@example.com", "FNOL": null, "FBUS": null,
                           "FNOA": "+31201234599@example.com", "FUNV": null,
                           "no_answer_timeout": 35})
                );
            }
            "accept" => {
                assert_eq!(keys_of(&seed), ["persistent", "temporary", "groups"]);
                assert_eq!(
                    seed["persistent"],
                    json!({"31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]}})
                );
                assert_eq!(
                    keys_of(&seed["persistent"]["31"]),
                    ["start", "stop", "groups"]
                );
                assert_eq!(seed["temporary"], no_temporary_rule());
            }
            "voicemail" => {
                assert_eq!(
                    keys_of(&seed),
                    ["mailbox", "email", "delivery", "enabled", "name"],
                    "key order of object V"
                );
                assert_eq!(seed["mailbox"], ALICE);
                assert_eq!(seed["email"], "a@mail.example.org");
                assert!(
                    seed["delivery"] == "email" || seed["delivery"] == "email_and_store",
                    "{seed}"
                );
                assert_eq!(seed["enabled"], true);
                assert!(seed["name"].is_string(), "{seed}");
            }
            other => unreachable!("{other}"),
        }
    }
    // Bob sees none of it.
    assert_eq!(app.read(&app.bob, "aliases").await, json!([]));
    assert_eq!(app.read(&app.bob, "enum").await, json!([]));
    assert_eq!(app.read(&app.bob, "reject").await, json!([]));
    assert!(app.read(&app.bob, "voicemail").await.is_null());
}

#[tokio::test]
async fn the_voicemail_pin_is_never_in_any_reply() {
    let app = TestApp::spawn().await;
    assert!(app.read(&app.alice, "voicemail").await.is_null());
    app.cli_ok(&[
        "voicemail",
        "enable",
        ALICE,
        "--pin",
        "1234",
        "--email",
        "a@mail.example.org",
    ]);
    let v = app.read(&app.alice, "voicemail").await;
    assert_eq!(v["mailbox"], ALICE);
    assert_eq!(v["enabled"], true);
    assert_eq!(v["email"], "a@mail.example.org");
    for &name in &ACTION_NAMES[..READ_NAME_COUNT] {
        for round in 0..2 {
            let (status, body) = change(&app, &app.alice, round, &[("action", name)]).await;
            assert_eq!(status, 200, "{name}: {body}");
            assert!(
                !body.to_string().contains("1234"),
                "{name} shows the PIN: {body}"
            );
            let mut found = Vec::new();
            find_pin_keys(&body, &mut found);
            assert!(found.is_empty(), "{name} has PIN keys {found:?}: {body}");
        }
    }
    // Nor do the changes' replies.
    for query in [
        "action=set_diversions&FUNV=%3Cvoice-mailbox%3E",
        "action=dnd_on",
        "action=dnd_off",
        "action=privacy_on",
    ] {
        let (status, body) = app.action(&app.alice, query).await;
        assert_success(status, &body);
        assert!(!body.to_string().contains("1234"), "{query}: {body}");
    }
}

#[tokio::test]
async fn dnd_on_and_off_under_every_name_and_method() {
    let app = TestApp::spawn().await;
    let persistent_before = app.read(&app.alice, "accept").await["persistent"].clone();
    let mut round = 0;
    for on in ["dnd_on", "set_dnd_on"] {
        for off in ["dnd_off", "set_dnd_off"] {
            round += 1;
            let (status, body) = change(&app, &app.alice, round, &[("action", on)]).await;
            assert_done(status, &body, "Do Not Disturb is on");
            assert_eq!(app.read(&app.alice, "account").await["dnd"], true);
            let accept = app.read(&app.alice, "accept").await;
            assert_eq!(
                accept["temporary"],
                json!({"groups": ["nobody"], "duration": null, "until": null}),
                "{on} without a duration"
            );
            assert_eq!(accept["persistent"], persistent_before);
            // Bob is not affected.
            assert_eq!(app.read(&app.bob, "account").await["dnd"], false);

            for _ in 0..2 {
                let (status, body) = change(&app, &app.alice, round + 1, &[("action", off)]).await;
                assert_done(status, &body, "Do Not Disturb is off");
                assert_eq!(app.read(&app.alice, "account").await["dnd"], false);
                assert_eq!(
                    app.read(&app.alice, "accept").await["temporary"],
                    no_temporary_rule()
                );
            }
        }
    }
    // With a duration, by either name and method.
    for (round, on) in ["dnd_on", "set_dnd_on"].into_iter().enumerate() {
        let (status, body) = change(
            &app,
            &app.alice,
            round,
            &[("action", on), ("duration", "45")],
        )
        .await;
        assert_done(status, &body, "Do Not Disturb is on for 45 minutes");
        let accept = app.read(&app.alice, "accept").await;
        assert_eq!(accept["temporary"]["groups"], json!(["nobody"]));
        assert_eq!(accept["temporary"]["duration"], 45);
        assert_eq!(app.read(&app.alice, "account").await["dnd"], true);
        let (status, body) = app.action(&app.alice, "action=dnd_off").await;
        assert_done(status, &body, "Do Not Disturb is off");
    }
}

#[tokio::test]
async fn dnd_without_a_duration_lasts_until_dnd_off() {
    let app = TestApp::spawn().await;
    let (status, body) = app.action(&app.alice, "action=dnd_on").await;
    assert_done(status, &body, "Do Not Disturb is on");
    app.clock.advance(Duration::days(6));
    assert_eq!(app.read(&app.alice, "account").await["dnd"], true);
    assert_eq!(
        app.read(&app.alice, "accept").await["temporary"],
        json!({"groups": ["nobody"], "duration": null, "until": null})
    );
    let (status, body) = app.action(&app.alice, "action=dnd_off").await;
    assert_done(status, &body, "Do Not Disturb is off");
    assert_eq!(app.read(&app.alice, "account").await["dnd"], false);
}

#[tokio::test]
async fn a_timed_dnd_counts_down_and_lapses_by_itself_leaving_persistent_rules_alone() {
    let app = TestApp::spawn().await;
    app.cli_ok(&[
        "accept",
        "add",
        ALICE,
        "--days",
        "31",
        "--start",
        "09:00",
        "--stop",
        "17:00",
        "--groups",
        "everybody",
    ]);
    let persistent = json!({"31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]}});
    assert_eq!(
        app.read(&app.alice, "accept").await["persistent"],
        persistent
    );

    let started = app.clock.now();
    let (status, body) = app.action(&app.alice, "action=dnd_on&duration=30").await;
    assert_done(status, &body, "Do Not Disturb is on for 30 minutes");
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(accept["temporary"]["groups"], json!(["nobody"]));
    assert_eq!(accept["temporary"]["duration"], 30);
    let until = DateTime::parse_from_rfc3339(accept["temporary"]["until"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("until is not RFC 3339: {e}: {accept}"));
    let expected = started + Duration::minutes(30);
    assert!(
        (until.to_utc() - expected).num_seconds().abs() <= 1,
        "until {until} expected {expected}"
    );
    assert_eq!(
        accept["persistent"], persistent,
        "dnd_on touched persistent rules"
    );
    assert_eq!(app.read(&app.alice, "account").await["dnd"], true);

    // 19.5 minutes left: rounded up to 20.
    app.clock.advance(Duration::seconds(10 * 60 + 30));
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(accept["temporary"]["duration"], 20, "{accept}");
    app.clock.advance(Duration::seconds(-30));

    app.clock.advance(Duration::minutes(19));
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(
        accept["temporary"]["duration"], 1,
        "29 minutes later: {accept}"
    );
    assert_eq!(accept["temporary"]["groups"], json!(["nobody"]));
    assert_eq!(app.read(&app.alice, "account").await["dnd"], true);

    app.clock.advance(Duration::minutes(2));
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(accept["temporary"], no_temporary_rule(), "lapsed: {accept}");
    assert_eq!(accept["persistent"], persistent);
    assert_eq!(app.read(&app.alice, "account").await["dnd"], false);

    // dnd_off after the lapse is still a success; a new DND replaces nothing persistent.
    let (status, body) = app.action(&app.alice, "action=dnd_off").await;
    assert_done(status, &body, "Do Not Disturb is off");
    let (status, body) = app.action(&app.alice, "action=dnd_on&duration=10080").await;
    assert_done(status, &body, "Do Not Disturb is on for 10080 minutes");
    assert_eq!(
        app.read(&app.alice, "accept").await["temporary"]["duration"],
        10080
    );
    let (status, body) = app.action(&app.alice, "action=dnd_on&duration=1").await;
    assert_success(status, &body);
    assert_eq!(
        app.read(&app.alice, "accept").await["temporary"]["duration"],
        1
    );
    let (status, body) = app.action(&app.alice, "action=dnd_off").await;
    assert_done(status, &body, "Do Not Disturb is off");
    let accept = app.read(&app.alice, "accept").await;
    assert_eq!(accept["persistent"], persistent);
    assert_eq!(accept["temporary"], no_temporary_rule());
}

#[tokio::test]
async fn privacy_on_and_off_are_idempotent_under_every_name_and_method() {
    let app = TestApp::spawn().await;
    assert_eq!(app.read(&app.alice, "account").await["privacy"], false);
    let mut round = 0;
    for (on, off) in [
        ("privacy_on", "privacy_off"),
        ("set_privacy_on", "set_privacy_off"),
        ("privacy_on", "set_privacy_off"),
        ("set_privacy_on", "privacy_off"),
    ] {
        for _ in 0..2 {
            round += 1;
            let (status, body) = change(&app, &app.alice, round, &[("action", on)]).await;
            assert_done(status, &body, "Privacy is on");
            let account = app.read(&app.alice, "account").await;
            assert_eq!(account["privacy"], true);
            assert_eq!(account["dnd"], false);
        }
        assert_eq!(app.read(&app.bob, "account").await["privacy"], false);
        for _ in 0..2 {
            round += 1;
            let (status, body) = change(&app, &app.alice, round, &[("action", off)]).await;
            assert_done(status, &body, "Privacy is off");
            assert_eq!(app.read(&app.alice, "account").await["privacy"], false);
        }
    }
    // Privacy and DND are independent settings, both shown by `account`.
    app.action(&app.alice, "action=privacy_on").await;
    app.action(&app.alice, "action=dnd_on").await;
    let account = app.read(&app.alice, "account").await;
    assert_eq!(
        (account["privacy"].clone(), account["dnd"].clone()),
        (json!(true), json!(true))
    );
    app.action(&app.alice, "action=dnd_off").await;
    let account = app.read(&app.alice, "account").await;
    assert_eq!(
        (account["privacy"].clone(), account["dnd"].clone()),
        (json!(true), json!(false))
    );
}

#[tokio::test]
async fn add_alias_adds_a_lower_case_alias_in_the_own_domain() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .action(&app.alice, "action=add_alias&username=alice.smith")
        .await;
    assert_done(status, &body, "Alias alice.smith@example.com added");
    let (status, body) = app
        .post_action(
            &app.alice,
            &[("action", "add_alias"), ("username", "Al_Ice-2")],
        )
        .await;
    assert_success(status, &body);
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("al_ice-2@example.com"),
        "{body}"
    );
    let expected = json!(["al_ice-2@example.com", "alice.smith@example.com"]);
    assert_eq!(app.read(&app.alice, "aliases").await, expected);
    assert_eq!(app.read(&app.alice, "get_aliases").await, expected);
    // The longest name the syntax allows: 64 characters.
    let long = format!("a{}", "b".repeat(63));
    let (status, body) = app
        .action(&app.alice, &format!("action=add_alias&username={long}"))
        .await;
    assert_done(status, &body, &format!("Alias {long}@example.com added"));
    assert_eq!(
        app.read(&app.alice, "aliases")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(app.read(&app.bob, "aliases").await, json!([]));
}

/// Sets one condition and checks the canonical echo in `diversions`, leaving the rest alone.
async fn set_and_check(
    app: &TestApp,
    cert: &IssuedCertificate,
    round: usize,
    condition: &str,
    input: &str,
    echo: &str,
) {
    let before = app.read(cert, "diversions").await;
    let name = if round % 4 < 2 {
        "set_diversions"
    } else {
        "set_call_forwarding"
    };
    let (status, body) = change(app, cert, round, &[("action", name), (condition, input)]).await;
    assert_success(status, &body);
    let text = body["error_message"].as_str().unwrap();
    assert!(
        text.starts_with("Diversions updated: ") && text.contains(condition),
        "{condition}={input}: {text}"
    );
    let mut expected = before.clone();
    expected[condition] = json!(echo);
    let after = app.read(cert, "diversions").await;
    assert_eq!(after, expected, "{condition}={input}");
    assert_eq!(app.read(cert, "get_call_forwarding").await, after);
    assert_eq!(app.read(cert, "get_diversions").await, after);
}

#[tokio::test]
async fn set_diversions_accepts_every_target_form_and_echoes_it_canonically() {
    let app = TestApp::spawn().await;
    let cases = [
        ("FUNC", "sip:carol@example.net", "carol@example.net"),
        ("FUNC", "SIP:Carol@Example.NET", "Carol@example.net"),
        ("FBUS", "sips:carol@example.net", "sips:carol@example.net"),
        ("FNOL", "carol@example.net", "carol@example.net"),
        ("FNOA", "bob", "bob@example.com"),
        ("FUNV", "+31201234567", "+31201234567@example.com"),
        ("FUNC", "0031201234568", "+31201234568@example.com"),
        ("FBUS", "0201234567", "0201234567@example.com"),
        ("FBUS", "020 123-4568", "0201234568@example.com"),
        ("FNOL", "+31 (20) 123.45.69", "+31201234569@example.com"),
        ("FNOL", "00 44 20 7123 4567", "+442071234567@example.com"),
        (
            "FNOA",
            "sip:carol@example.net:5070",
            "carol@example.net:5070",
        ),
        ("FUNV", "dave@sip.example.org", "dave@sip.example.org"),
    ];
    for (round, (condition, input, echo)) in cases.into_iter().enumerate() {
        set_and_check(&app, &app.alice, round, condition, input, echo).await;
    }
    // The exact text of the documented example.
    let (status, body) = app
        .action(
            &app.alice,
            "action=set_diversions&FUNC=bob%40example.com&FBUS=",
        )
        .await;
    assert_done(
        status,
        &body,
        "Diversions updated: FUNC set to bob@example.com, FBUS cleared",
    );
    let d = app.read(&app.alice, "diversions").await;
    assert_eq!(d["FUNC"], "bob@example.com");
    assert!(d["FBUS"].is_null());

    // The voice mailbox, once voicemail is enabled.
    app.cli_ok(&[
        "voicemail",
        "enable",
        ALICE,
        "--pin",
        "1234",
        "--email",
        "a@mail.example.org",
    ]);
    set_and_check(
        &app,
        &app.alice,
        0,
        "FUNV",
        "<voice-mailbox>",
        "<voice-mailbox>",
    )
    .await;
    set_and_check(
        &app,
        &app.alice,
        1,
        "FNOA",
        "<voice-mailbox>",
        "<voice-mailbox>",
    )
    .await;

    // The mobile number, for an account that has one.
    let carol = app
        .add_account_with_cert("carol@example.com", &["--mobile", "+31 6 12345678"])
        .await;
    assert_eq!(
        app.read(&carol, "account").await["mobile_number"],
        "+31612345678"
    );
    set_and_check(
        &app,
        &carol,
        0,
        "FNOL",
        "<mobile-number>",
        "<mobile-number>",
    )
    .await;
    set_and_check(
        &app,
        &carol,
        1,
        "FBUS",
        "<mobile-number>",
        "<mobile-number>",
    )
    .await;
    // Nobody else's forwarding moved.
    let bob = app.read(&app.bob, "diversions").await;
    for k in &D_KEYS[..5] {
        assert!(bob[k].is_null(), "{bob}");
    }
}

#[tokio::test]
async fn empty_clears_absent_leaves_and_no_condition_changes_nothing() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post_action(
            &app.alice,
            &[
                ("action", "set_diversions"),
                ("FUNC", "carol@example.net"),
                ("FNOL", "bob"),
                ("FBUS", "+31201234567"),
                ("FNOA", "dave@example.net"),
                ("FUNV", "erin@example.net"),
            ],
        )
        .await;
    assert_success(status, &body);
    let full = json!({"FUNC": "carol@example.net", "FNOL": "bob@example.com",
                      "FBUS": "+31201234567@example.com", "FNOA": "dave@example.net",
                      "FUNV": "erin@example.net", "no_answer_timeout": 35});
    assert_eq!(app.read(&app.alice, "diversions").await, full);

    // No condition parameter at all, other parameters ignored.
    for (round, form) in [
        vec![("action", "set_diversions")],
        vec![("action", "set_call_forwarding")],
        vec![
            ("action", "set_diversions"),
            ("foo", "bar"),
            ("func", "x@y.example"),
        ],
        vec![("action", "set_diversions"), ("account", ALICE)],
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = change(&app, &app.alice, round, &form).await;
        assert_done(status, &body, "Diversions remained the same");
        assert_eq!(app.read(&app.alice, "diversions").await, full);
    }

    // Setting a condition to what it already was: success, and it is not listed.
    let (status, body) = app
        .action(&app.alice, "action=set_diversions&FUNC=carol%40example.net")
        .await;
    assert_success(status, &body);
    assert!(
        !body["error_message"].as_str().unwrap().contains("FUNC"),
        "an unchanged condition is listed: {body}"
    );
    assert_eq!(app.read(&app.alice, "diversions").await, full);

    // An empty parameter clears only that condition.
    let mut expected = full.clone();
    for (round, condition) in ["FBUS", "FUNC", "FNOA"].into_iter().enumerate() {
        let (status, body) = change(
            &app,
            &app.alice,
            round,
            &[("action", "set_diversions"), (condition, "")],
        )
        .await;
        assert_done(
            status,
            &body,
            &format!("Diversions updated: {condition} cleared"),
        );
        expected[condition] = Value::Null;
        assert_eq!(app.read(&app.alice, "diversions").await, expected);
    }
    // Clearing what is already clear lists nothing.
    let (status, body) = app.action(&app.alice, "action=set_diversions&FBUS=").await;
    assert_success(status, &body);
    assert!(
        !body["error_message"].as_str().unwrap().contains("FBUS"),
        "{body}"
    );
    assert_eq!(app.read(&app.alice, "diversions").await, expected);

    // Clear all at once.
    let (status, body) = app
        .action(
            &app.alice,
            "action=set_call_forwarding&FUNC=&FNOL=&FBUS=&FNOA=&FUNV=",
        )
        .await;
    assert_success(status, &body);
    let d = app.read(&app.alice, "diversions").await;
    for k in &D_KEYS[..5] {
        assert!(d[k].is_null(), "{d}");
    }
    assert_eq!(d["no_answer_timeout"], 35);
}

fn header(response: &reqwest::Response, name: &str) -> String {
    header_of(response, name).unwrap_or_default()
}

#[tokio::test]
async fn crt_issues_a_working_certificate_and_the_old_one_keeps_working() {
    let app = TestApp::spawn().await;
    let lines = app.cert_list_lines(ALICE);
    let mut issued = 0;
    for (round, name) in ["crt", "get_crt", "crt"].into_iter().enumerate() {
        let response = if round == 2 {
            app.post_raw(&app.alice, &[("action", name)]).await
        } else {
            app.get_raw(&app.alice, &format!("action={name}")).await
        };
        assert_eq!(response.status().as_u16(), 200, "{name}");
        let content_type = header(&response, "content-type");
        assert!(
            content_type.starts_with("application/x-pem-file"),
            "{name}: {content_type}"
        );
        assert_eq!(
            header(&response, "content-disposition"),
            "attachment; filename=\"alice@example.com.crt\""
        );
        let pem = response.text().await.unwrap();
        assert!(pem.contains("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(
            pem.contains("PRIVATE KEY-----"),
            "an unencrypted key follows"
        );
        assert!(!pem.contains("ENCRYPTED"), "the key must not be encrypted");
        issued += 1;
        assert_eq!(app.cert_list_lines(ALICE), lines + issued, "recorded");

        // The download is a working client identity for alice.
        let client = client_with(&app.ca_pem, Some((&pem, &pem)));
        let (status, body) = json_of(
            client
                .get(format!("{}/settings.phtml?action=account", app.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sip_address"], ALICE);
        // The old certificate keeps working.
        let (status, body) = app.action(&app.alice, "action=account").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(app.cert_list_lines(BOB), lines, "bob got nothing");
}

fn openssl_pkcs12(file: &std::path::Path, password: &str, info: bool) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("pkcs12");
    if info {
        cmd.arg("-info");
    }
    cmd.args(["-noout", "-passin", &format!("pass:{password}"), "-in"])
        .arg(file);
    let out = cmd.output().expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn p12_by_post_with_the_sip_password_opens_with_openssl() {
    let app = TestApp::spawn().await;
    let mut lines = app.cert_list_lines(ALICE);
    for (name, legacy, cipher) in [
        ("p12", false, "AES-256-CBC"),
        ("get_p12", false, "AES-256-CBC"),
        ("p12", true, "pbeWithSHA1And3-KeyTripleDES-CBC"),
    ] {
        let mut form = vec![("action", name), ("password", ALICE_PASSWORD)];
        if legacy {
            form.push(("legacy", "1"));
        }
        let response = app.post_raw(&app.alice, &form).await;
        assert_eq!(response.status().as_u16(), 200, "{name}");
        assert!(
            header(&response, "content-type").starts_with("application/x-pkcs12"),
            "{name}: {}",
            header(&response, "content-type")
        );
        assert_eq!(
            header(&response, "content-disposition"),
            "attachment; filename=\"alice@example.com.p12\""
        );
        let bytes = response.bytes().await.unwrap();
        let file = app.data_dir().join(format!("{name}-{legacy}.p12"));
        std::fs::write(&file, &bytes).unwrap();
        let (ok, text) = openssl_pkcs12(&file, ALICE_PASSWORD, false);
        assert!(ok, "openssl could not open the {name} .p12: {text}");
        let (ok, text) = openssl_pkcs12(&file, ALICE_PASSWORD, true);
        assert!(ok && text.contains(cipher), "{cipher} in {text}");
        let (ok, _) = openssl_pkcs12(&file, "not-the-password", false);
        assert!(!ok, "another password opened the .p12");
        lines += 1;
        assert_eq!(app.cert_list_lines(ALICE), lines, "one certificate issued");
    }

    // GET is not allowed, not even with the password: 405 and nothing issued.
    for name in ["p12", "get_p12"] {
        let (status, body) = app
            .action(
                &app.alice,
                &format!("action={name}&password={}", enc(ALICE_PASSWORD)),
            )
            .await;
        assert_eq!(status, 405, "{name}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(
            app.cert_list_lines(ALICE),
            lines,
            "GET issued a certificate"
        );
    }
    // Missing, empty or wrong password: 400, nothing issued.
    for form in [
        vec![("action", "p12")],
        vec![("action", "get_p12"), ("password", "")],
    ] {
        let (status, body) = app.post_action(&app.alice, &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(body["success"], false);
        assert!(
            body["error_message"].as_str().unwrap().contains("password"),
            "{body}"
        );
        assert_eq!(app.cert_list_lines(ALICE), lines);
    }
    for (name, wrong) in [("p12", "not-alice-password"), ("get_p12", BOB_PASSWORD)] {
        let (status, body) = app
            .post_action(&app.alice, &[("action", name), ("password", wrong)])
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["success"], false);
        let text = body["error_message"].as_str().unwrap();
        assert!(
            text.starts_with("Error: ") && text.contains("password"),
            "{body}"
        );
        assert!(!text.contains(wrong), "the password is echoed: {body}");
        assert_eq!(
            app.cert_list_lines(ALICE),
            lines,
            "a refused p12 issued a certificate"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_of_different_conditions_lose_nothing() {
    const ROUNDS: usize = 20;
    let app = TestApp::spawn().await;
    let one = app.client(Some(&app.alice));
    let two = app.client(Some(&app.alice));
    let url = format!("{}/settings.phtml", app.base);
    let run = |client: reqwest::Client, condition: &'static str, prefix: &'static str| {
        let url = url.clone();
        async move {
            for i in 0..ROUNDS {
                let target = format!("{prefix}{i}@example.net");
                let response = client
                    .post(&url)
                    .form(&[("action", "set_diversions"), (condition, target.as_str())])
                    .send()
                    .await
                    .unwrap();
                let (status, body) = json_of(response).await;
                assert_eq!(status, 200, "{condition} round {i}: {body}");
                assert_eq!(body["success"], true, "{body}");
            }
        }
    };
    let a = tokio::spawn(run(one, "FUNC", "func"));
    let b = tokio::spawn(run(two, "FBUS", "fbus"));
    a.await.unwrap();
    b.await.unwrap();
    let d = app.read(&app.alice, "diversions").await;
    assert_eq!(d["FUNC"], format!("func{}@example.net", ROUNDS - 1), "{d}");
    assert_eq!(d["FBUS"], format!("fbus{}@example.net", ROUNDS - 1), "{d}");
    for k in ["FNOL", "FNOA", "FUNV"] {
        assert!(d[k].is_null(), "{d}");
    }
}
