//! The operator's provisioning commands, run as the real binary: `alias`, `enum`, `voicemail`,
//! `reject`, `accept` and `phonebook`. Each effect is checked through the subscriber's action
//! API; every kind of bad input fails with one line, a non-zero exit, and nothing changed.

use serde_json::{Value, json};

use crate::helpers::*;

const CAROL: &str = "carol@example.com";

fn contains(list: &Value, item: &str) -> bool {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .any(|v| v == item)
}

#[tokio::test]
async fn alias_add_list_and_remove() {
    let app = TestApp::spawn().await;
    let out = app.cli_ok(&["alias", "add", "alice.smith@example.com", ALICE]);
    assert!(!out.trim().is_empty(), "prints what it did");
    app.cli_ok(&["alias", "add", "ALICE2@Example.com", ALICE]);
    app.cli_ok(&["alias", "add", "bobby@example.com", BOB]);
    assert_eq!(
        app.read(&app.alice, "aliases").await,
        json!(["alice.smith@example.com", "alice2@example.com"])
    );
    assert_eq!(
        app.read(&app.bob, "aliases").await,
        json!(["bobby@example.com"])
    );

    let alices = app.cli_ok(&["alias", "list", ALICE]);
    assert!(alices.contains("alice.smith@example.com"), "{alices}");
    assert!(alices.contains("alice2@example.com"), "{alices}");
    assert!(!alices.contains("bobby"), "{alices}");
    let all = app.cli_ok(&["alias", "list"]);
    for a in [
        "alice.smith@example.com",
        "alice2@example.com",
        "bobby@example.com",
    ] {
        assert!(all.contains(a), "{a} in {all}");
    }

    app.cli_ok(&["alias", "remove", "alice.smith@example.com"]);
    assert_eq!(
        app.read(&app.alice, "aliases").await,
        json!(["alice2@example.com"])
    );
    assert!(
        !app.cli_ok(&["alias", "list", ALICE])
            .contains("alice.smith")
    );
    // The removed address is free again, for the subscriber too.
    let (status, body) = app
        .action(&app.alice, "action=add_alias&username=alice.smith")
        .await;
    assert_done(status, &body, "Alias alice.smith@example.com added");
    // And an alias taken through the API is taken for the operator as well.
    let out = app.cli(&["alias", "add", "alice.smith@example.com", BOB]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn enum_add_list_and_remove() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["enum", "add", "+442071234567", ALICE]);
    app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
    app.cli_ok(&["enum", "add", "+31207654321", BOB]);
    assert_eq!(
        app.read(&app.alice, "enum").await,
        json!(["+31201234567", "+442071234567"])
    );
    assert_eq!(
        app.read(&app.bob, "get_enum").await,
        json!(["+31207654321"])
    );
    let alices = app.cli_ok(&["enum", "list", ALICE]);
    assert!(
        alices.contains("+31201234567") && alices.contains("+442071234567"),
        "{alices}"
    );
    assert!(!alices.contains("+31207654321"), "{alices}");
    let all = app.cli_ok(&["enum", "list"]);
    for n in ["+31201234567", "+442071234567", "+31207654321"] {
        assert!(all.contains(n), "{n} in {all}");
    }
    app.cli_ok(&["enum", "remove", "+442071234567"]);
    assert_eq!(app.read(&app.alice, "enum").await, json!(["+31201234567"]));
    // Free again: it may now go to bob.
    app.cli_ok(&["enum", "add", "+442071234567", BOB]);
    assert_eq!(
        app.read(&app.bob, "enum").await,
        json!(["+31207654321", "+442071234567"])
    );
    assert_eq!(app.read(&app.alice, "enum").await, json!(["+31201234567"]));
}

#[tokio::test]
async fn voicemail_enable_and_disable() {
    let app = TestApp::spawn().await;
    let carol = app
        .add_account_with_cert(CAROL, &["--first-name", "Carol", "--last-name", "Jones"])
        .await;
    assert!(app.read(&carol, "voicemail").await.is_null());
    app.cli_ok(&[
        "voicemail",
        "enable",
        CAROL,
        "--delivery",
        "email_and_store",
        "--pin",
        "4321",
        "--email",
        "vm@mail.example.org",
    ]);
    let v = app.read(&carol, "voicemail").await;
    assert_eq!(
        keys_of(&v),
        ["mailbox", "email", "delivery", "enabled", "name"]
    );
    assert_eq!(
        v,
        json!({"mailbox": CAROL, "email": "vm@mail.example.org",
               "delivery": "email_and_store", "enabled": true, "name": "Carol Jones"})
    );
    assert!(!v.to_string().contains("4321"));

    app.cli_ok(&[
        "voicemail",
        "enable",
        ALICE,
        "--delivery",
        "email",
        "--pin",
        "1234567890",
        "--email",
        "a@mail.example.org",
    ]);
    let v = app.read(&app.alice, "get_voicemail").await;
    assert_eq!(v["mailbox"], ALICE);
    assert_eq!(v["delivery"], "email");
    assert_eq!(v["email"], "a@mail.example.org");
    assert_eq!(v["enabled"], true);
    // Every option is optional.
    app.cli_ok(&["voicemail", "enable", BOB]);
    let v = app.read(&app.bob, "voicemail").await;
    assert_eq!(v["mailbox"], BOB);
    assert_eq!(v["enabled"], true);
    let (status, body) = app
        .action(&app.bob, "action=set_diversions&FUNV=%3Cvoice-mailbox%3E")
        .await;
    assert_success(status, &body);

    app.cli_ok(&["voicemail", "disable", ALICE]);
    let v = app.read(&app.alice, "voicemail").await;
    assert!(
        v.is_null() || v["enabled"] == false,
        "voicemail still enabled after disable: {v}"
    );
    // Without a mailbox in use, <voice-mailbox> is refused.
    let (status, body) = app
        .action(&app.alice, "action=set_diversions&FNOA=%3Cvoice-mailbox%3E")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"].as_str().unwrap().contains("FNOA"),
        "{body}"
    );
    // Others are untouched.
    assert_eq!(app.read(&carol, "voicemail").await["enabled"], true);
    assert_eq!(app.read(&app.bob, "voicemail").await["enabled"], true);
}

#[tokio::test]
async fn reject_add_list_and_remove() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["reject", "add", ALICE, "sip:spam@example.net"]);
    app.cli_ok(&["reject", "add", ALICE, "sip:%0900@%"]);
    app.cli_ok(&["reject", "add", BOB, "sip:%@telemarketing.example"]);
    let expected = json!(["sip:%0900@%", "sip:spam@example.net"]);
    for name in ["reject", "get_reject_rules", "get_reject"] {
        assert_eq!(app.read(&app.alice, name).await, expected, "{name}");
    }
    assert_eq!(
        app.read(&app.bob, "reject").await,
        json!(["sip:%@telemarketing.example"])
    );
    let list = app.cli_ok(&["reject", "list", ALICE]);
    assert!(
        list.contains("sip:spam@example.net") && list.contains("sip:%0900@%"),
        "{list}"
    );
    assert!(!list.contains("telemarketing"), "{list}");
    app.cli_ok(&["reject", "remove", ALICE, "sip:spam@example.net"]);
    assert_eq!(app.read(&app.alice, "reject").await, json!(["sip:%0900@%"]));
    assert!(!app.cli_ok(&["reject", "list", ALICE]).contains("spam"));
    assert_eq!(
        app.read(&app.bob, "reject").await,
        json!(["sip:%@telemarketing.example"])
    );
}

#[tokio::test]
async fn phonebook_groups_and_accept_rules() {
    let app = TestApp::spawn().await;
    app.cli_ok(&[
        "phonebook",
        "add",
        ALICE,
        "sip:bob@example.com",
        "--group",
        "friends",
    ]);
    app.cli_ok(&[
        "phonebook",
        "add",
        ALICE,
        "sip:carol@example.net",
        "--group",
        "family",
    ]);
    let list = app.cli_ok(&["phonebook", "list", ALICE]);
    assert!(
        list.contains("sip:bob@example.com") && list.contains("sip:carol@example.net"),
        "{list}"
    );
    assert!(
        list.contains("friends") && list.contains("family"),
        "{list}"
    );
    let accept = app.read(&app.alice, "accept").await;
    assert!(contains(&accept["groups"], "friends"), "{accept}");
    assert!(contains(&accept["groups"], "family"), "{accept}");
    // Bob's phonebook is his own.
    let bobs = app.read(&app.bob, "accept").await;
    assert!(!contains(&bobs["groups"], "friends"), "{bobs}");

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
        "accept",
        "add",
        ALICE,
        "--days",
        "96",
        "--start",
        "22:00",
        "--stop",
        "06:00",
        "--groups",
        "family,friends",
    ]);
    app.cli_ok(&[
        "accept", "add", ALICE, "--days", "127", "--start", "00:00", "--stop", "23:59", "--groups",
        "nobody",
    ]);
    let expected = json!({
        "31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]},
        "96": {"start": "22:00", "stop": "06:00", "groups": ["family", "friends"]},
        "127": {"start": "00:00", "stop": "23:59", "groups": ["nobody"]},
    });
    for name in ["accept", "get_accept_rules", "get_accept"] {
        let accept = app.read(&app.alice, name).await;
        assert_eq!(accept["persistent"], expected, "{name}");
        assert_eq!(
            accept["temporary"],
            json!({"groups": [], "duration": 0, "until": null}),
            "persistent rules are not a DND"
        );
    }
    assert_eq!(app.read(&app.alice, "account").await["dnd"], false);
    let list = app.cli_ok(&["accept", "list", ALICE]);
    for s in ["31", "96", "127", "09:00", "22:00", "family"] {
        assert!(list.contains(s), "{s} in {list}");
    }

    app.cli_ok(&["accept", "remove", ALICE, "--days", "96"]);
    app.cli_ok(&["accept", "remove", ALICE, "--days", "127"]);
    assert_eq!(
        app.read(&app.alice, "accept").await["persistent"],
        json!({"31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]}})
    );
    assert_eq!(app.read(&app.bob, "accept").await["persistent"], json!({}));

    app.cli_ok(&["phonebook", "remove", ALICE, "sip:carol@example.net"]);
    let list = app.cli_ok(&["phonebook", "list", ALICE]);
    assert!(!list.contains("carol"), "{list}");
    let accept = app.read(&app.alice, "accept").await;
    assert!(contains(&accept["groups"], "friends"), "{accept}");
    assert!(!contains(&accept["groups"], "family"), "{accept}");
}

/// Everything observable: every read action of alice and bob, and the operator's listings.
async fn snapshot(app: &TestApp) -> String {
    let mut s = format!("{:?}", app.snapshot_both().await);
    for args in [
        &["alias", "list"][..],
        &["enum", "list"],
        &["reject", "list", ALICE],
        &["accept", "list", ALICE],
        &["phonebook", "list", ALICE],
        &["account", "show", ALICE, "--json"],
        &["cert", "list"],
    ] {
        s.push_str(&app.cli_ok(args));
    }
    s
}

#[tokio::test]
async fn bad_operator_input_fails_with_one_line_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["domain", "add", "example.org"]);
    app.cli_ok(&[
        "account",
        "add",
        "olga@example.org",
        "--password",
        "olga-password-1",
    ]);
    app.cli_ok(&["alias", "add", "alice.smith@example.com", ALICE]);
    app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
    app.cli_ok(&["reject", "add", ALICE, "sip:spam@example.net"]);
    app.cli_ok(&[
        "phonebook",
        "add",
        ALICE,
        "sip:bob@example.com",
        "--group",
        "friends",
    ]);
    app.cli_ok(&[
        "accept", "add", ALICE, "--days", "31", "--start", "09:00", "--stop", "17:00", "--groups",
        "friends",
    ]);
    let nobody = "nobody@example.com";
    let accept = |days: &'static str,
                  start: &'static str,
                  stop: &'static str,
                  groups: &'static str|
     -> Vec<&'static str> {
        vec![
            "accept", "add", ALICE, "--days", days, "--start", start, "--stop", stop, "--groups",
            groups,
        ]
    };
    let cases: Vec<Vec<&str>> = vec![
        // alias
        vec!["alias", "add", "bob@example.com", ALICE],
        vec!["alias", "add", "alice.smith@example.com", BOB],
        vec!["alias", "add", "ALICE.SMITH@example.com", BOB],
        vec!["alias", "add", "a b@example.com", ALICE],
        vec!["alias", "add", "x!@example.com", ALICE],
        vec!["alias", "add", "_x@example.com", ALICE],
        vec!["alias", "add", "x@example.org", ALICE],
        vec!["alias", "add", "x@example.com", "olga@example.org"],
        vec!["alias", "add", "x@example.com", nobody],
        vec!["alias", "add", "x@example.com", "garbage"],
        vec!["alias", "add", "x@unserved.example", ALICE],
        // enum
        vec!["enum", "add", "31201234567", ALICE],
        vec!["enum", "add", "0201234567", ALICE],
        vec!["enum", "add", "+31abc", ALICE],
        vec!["enum", "add", "+1234567890123456", ALICE],
        vec!["enum", "add", "+31201234567", BOB],
        vec!["enum", "add", "+31209999999", nobody],
        // voicemail
        vec!["voicemail", "enable", ALICE, "--pin", "12"],
        vec!["voicemail", "enable", ALICE, "--pin", "abcd"],
        vec!["voicemail", "enable", ALICE, "--pin", "12345678901"],
        vec!["voicemail", "enable", ALICE, "--delivery", "fax"],
        vec!["voicemail", "enable", ALICE, "--email", "bad"],
        vec!["voicemail", "enable", nobody],
        // reject
        vec!["reject", "add", ALICE, "spam@example.net"],
        vec!["reject", "add", ALICE, "sip:spam"],
        vec!["reject", "add", ALICE, "sip:spam@example.net"],
        vec!["reject", "add", nobody, "sip:x@example.net"],
        // accept
        accept("0", "09:00", "17:00", "everybody"),
        accept("128", "09:00", "17:00", "everybody"),
        accept("x", "09:00", "17:00", "everybody"),
        accept("96", "25:00", "17:00", "everybody"),
        accept("96", "09:00", "9am", "everybody"),
        accept("96", "09:00", "17:00", "Bad Group!"),
        accept("96", "09:00", "17:00", "nobody,everybody"),
        accept("96", "09:00", "17:00", "friends,nobody"),
        vec![
            "accept",
            "add",
            nobody,
            "--days",
            "96",
            "--start",
            "09:00",
            "--stop",
            "17:00",
            "--groups",
            "everybody",
        ],
        // phonebook
        vec!["phonebook", "add", ALICE, "not a uri", "--group", "friends"],
        vec![
            "phonebook",
            "add",
            ALICE,
            "http://example.net/",
            "--group",
            "friends",
        ],
        vec![
            "phonebook",
            "add",
            ALICE,
            "sip:x@example.net",
            "--group",
            "bad group!",
        ],
        vec![
            "phonebook",
            "add",
            nobody,
            "sip:x@example.net",
            "--group",
            "friends",
        ],
    ];
    let before = snapshot(&app).await;
    for args in cases {
        app.cli_refused(&args);
        assert_eq!(snapshot(&app).await, before, "{args:?} changed something");
    }
}

/// `forwarding show` and `forwarding set`: the rules as one JSON document, checked whole as the
/// API checks them (a refusal names the rule and the field and changes nothing), warnings
/// printed, the seed view following, journalled through the CLI.
#[tokio::test]
async fn forwarding_rules_show_and_set() {
    let app = TestApp::spawn().await;
    app.read(&app.alice, "set_diversions&FBUS=bob").await;
    let shown: Value = serde_json::from_str(&app.cli_ok(&["forwarding", "show", ALICE])).unwrap();
    assert_eq!(shown["rules"][0]["trigger"], "busy");
    assert_eq!(shown["rules"][0]["id"], 3);

    let file = app.data_dir().join("rules.json");
    let doc = json!({
        "rules": [
            {"trigger": "unconditional", "callers": "family", "steps": [{"targets": ["carol@example.net"]}]},
            {"trigger": "unconditional", "steps": [{"targets": ["dave@example.net"]}]},
            {"trigger": "busy", "steps": [{"targets": ["bob"]}]}
        ],
        "caller_sets": {"family": {"mode": "allow", "members": ["group:family"]}}
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = app.cli_ok(&["forwarding", "set", ALICE, file.to_str().unwrap()]);
    assert!(out.contains("set 3 forwarding rule(s)"), "{out}");
    assert!(
        out.contains("warning: rules[2] can never apply: rules[1] forwards every call first"),
        "{out}"
    );
    let seed = app.read(&app.alice, "diversions").await;
    assert_eq!(seed["FUNC"], "dave@example.net");
    assert_eq!(seed["rules"], true);
    let shown: Value = serde_json::from_str(&app.cli_ok(&["forwarding", "show", ALICE])).unwrap();
    assert_eq!(shown["rules"].as_array().unwrap().len(), 3);
    assert_eq!(
        shown["caller_sets"]["family"]["members"],
        json!(["group:family"])
    );

    // Refused whole, naming the field; nothing changes.
    let before = app.cli_ok(&["forwarding", "show", ALICE]);
    for (bad, names) in [
        (
            json!({"rules": [{"trigger": "busy", "steps": [{"targets": ["alice"]}]}]}),
            "rules[0].steps[0].targets[0]",
        ),
        (
            json!({"rules": [{"trigger": "busy", "time": "nights", "steps": [{"targets": ["bob"]}]}]}),
            "rules[0].time",
        ),
        (json!({"rules": [], "other": 1}), "forwarding"),
    ] {
        std::fs::write(&file, bad.to_string()).unwrap();
        let out = app.cli(&["forwarding", "set", ALICE, file.to_str().unwrap()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{names}: {err}");
    }
    std::fs::write(&file, "not json").unwrap();
    assert!(
        !app.cli(&["forwarding", "set", ALICE, file.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        !app.cli(&["forwarding", "show", "nobody@example.com"])
            .status
            .success()
    );
    assert_eq!(app.cli_ok(&["forwarding", "show", ALICE]), before);
    let journal = app.cli_ok(&["journal", ALICE]);
    assert!(journal.contains("forwarding.rules.6"), "{journal}");
    assert!(
        !journal.contains("forwarding.rules.3"),
        "the busy rule is the same simple rule, with its seed id: {journal}"
    );
    assert!(journal.contains("cli"), "{journal}");
}
