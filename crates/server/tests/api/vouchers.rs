//! Prepaid cards (issue 18, point 5): the operator makes a batch with the real CLI or the
//! operator API, a prepaid subscriber redeems a card with `add_balance` (CDRTool's `id` and
//! `number`) over mutual TLS and over HTTP Digest (by hand, and curl as a second client), the
//! balance (`prepaid`) grows; a used, disabled or wrong card is refused and changes nothing,
//! wrong numbers are throttled per account and per address, two redemptions of one card at once
//! credit once, and the card numbers are not in the database files.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::digest::Algorithm;
use sip_settings_core::{AccountId, Password};
use sip_settings_store_tests::pg::TempDatabase;

use crate::helpers::*;

/// `voucher create` through the real binary: the (id, number) pairs of its CSV.
fn create_with_cli(app: &TestApp, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["voucher", "create", "--domain", "example.com"];
    all.extend_from_slice(args);
    let out = app.cli(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be shown again"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("id,number,domain,value,expires"));
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), 5, "{l}");
            assert_eq!(fields[2], "example.com");
            (fields[0].to_owned(), fields[1].to_owned())
        })
        .collect()
}

/// The prepaid balance of a certificate's account, as `prepaid` reads it.
async fn balance(app: &TestApp, cert: &IssuedCertificate) -> f64 {
    app.read(cert, "prepaid").await["balance"].as_f64().unwrap()
}

async fn add_balance(
    app: &TestApp,
    cert: &IssuedCertificate,
    id: &str,
    number: &str,
) -> (u16, Value) {
    app.post_action(
        cert,
        &[("action", "add_balance"), ("id", id), ("number", number)],
    )
    .await
}

/// The Digest answer for a GET of `uri` by alice, computed by hand (RFC 7616, MD5).
async fn digest_get(app: &TestApp, uri: &str) -> (u16, Value) {
    let client = no_redirects(app);
    let url = format!("{}{uri}", app.base);
    let challenge = client.get(&url).send().await.unwrap();
    assert_eq!(challenge.status().as_u16(), 401);
    let (nonce, opaque) = digest_nonce_opaque(&challenge, Algorithm::Md5);
    let authorization = digest_authorization(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        uri,
    );
    let answered = client
        .get(&url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    json_of(answered).await
}

/// Whether `needle` is in any of the SQLite files of the data directory.
fn in_database_files(app: &TestApp, needle: &str) -> bool {
    std::fs::read_dir(app.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sip-settings.db"))
        })
        .any(|p| {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_batch_is_redeemed_over_mutual_tls_and_digest_once_each() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    let expires = (chrono::Utc::now() + Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    let cards = create_with_cli(
        &app,
        &["--value", "10.00", "--count", "3", "--expires", &expires],
    );
    assert_eq!(cards.len(), 3);
    for (id, number) in &cards {
        assert!(id.parse::<i64>().unwrap() >= 1);
        assert_eq!(number.len(), 20, "{number}");
        assert!(number.bytes().all(|b| b.is_ascii_digit()), "{number}");
        assert!(!in_database_files(&app, number), "number {number} stored");
    }
    let (c1, c2, c3) = (&cards[0], &cards[1], &cards[2]);
    assert_eq!(balance(&app, &app.alice).await, 0.0);

    // Over mutual TLS (POST, as a form): CDRTool's success text, the value and the balance.
    let (status, body) = add_balance(&app, &app.alice, &c1.0, &c1.1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "error_message": "Added balance succeeded",
               "value": "10.0000", "balance": "10.0000", "currency": "EUR"})
    );
    assert_eq!(balance(&app, &app.alice).await, 10.0);
    let history = app.read(&app.alice, "balance_history").await;
    assert_eq!(history[0]["action"], "topup", "{history}");
    assert_eq!(history[0]["description"], format!("Prepaid card {}", c1.0));
    assert_eq!(history[0]["value"], "+10.0000", "{history}");

    // Used once: again (even typed with spaces) is 409 and changes nothing.
    let spaced = format!("{} {}", &c1.1[..10], &c1.1[10..]);
    let (status, body) = add_balance(&app, &app.alice, &c1.0, &spaced).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error_message"],
        format!("Error: prepaid card {} has already been used", c1.0)
    );
    assert_eq!(balance(&app, &app.alice).await, 10.0);

    // Over HTTP Digest (Blink's way in, a GET as CDRTool takes it): journaled as the Digest user.
    let uri = format!(
        "/settings.phtml?action=add_balance&realm=example.com&id={}&number={}",
        c2.0, c2.1
    );
    let (status, body) = digest_get(&app, &uri).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], "20.0000", "{body}");
    assert_eq!(balance(&app, &app.alice).await, 20.0);
    let alice = AccountId::parse(ALICE).unwrap();
    let journal = app
        .services
        .store()
        .list_journal(&alice, None, 2)
        .await
        .unwrap();
    assert_eq!(journal[0].entry.resource, "voucher");
    assert_eq!(journal[1].entry.resource, "balance");
    assert_eq!(journal[1].entry.old.as_deref(), Some("10.0000"));
    assert_eq!(journal[1].entry.new.as_deref(), Some("20.0000"));
    assert_eq!(journal[0].entry.actor, "digest alice@example.com");
    assert_eq!(journal[0].entry.door, "settings.phtml");
    assert!(
        journal
            .iter()
            .all(|j| !format!("{:?}", j.entry).contains(&c2.1)),
        "the number is not journaled"
    );

    // Bob is postpaid: the right card is refused, not taken.
    let (status, body) = add_balance(&app, &app.bob, &c3.0, &c3.1).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error_message"],
        format!("Error: account {BOB} is not prepaid: prepaid cards top up prepaid balances only")
    );
    // The operator's list: two used by alice, one unused; disabled, it is refused.
    let list = app.cli_ok(&["voucher", "list", "--domain", "example.com"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "id,value,state,created,expires,used_by,used_at");
    assert!(
        lines[1].starts_with(&format!("{},10.0000,unused,", c3.0)),
        "{list}"
    );
    assert!(
        lines[2].contains(",used,") && lines[2].contains(ALICE),
        "{list}"
    );
    assert!(!list.contains(&c3.1), "the list shows no numbers");
    let disabled = app.cli_ok(&["voucher", "disable", &c3.0]);
    assert!(disabled.contains("disabled"), "{disabled}");
    let (status, body) = add_balance(&app, &app.alice, &c3.0, &c3.1).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error_message"],
        format!("Error: prepaid card {} has been disabled", c3.0)
    );
    let refused = app.cli_refused(&["voucher", "disable", &c1.0]);
    assert!(refused.contains("used"), "{refused}");
    assert_eq!(balance(&app, &app.alice).await, 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_it_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    let cards = create_with_cli(&app, &["--value", "1", "--count", "1"]);
    let c3 = &cards[0];
    // Bad input: 400 naming the parameter; HEAD is 405 (a change).
    for (query, field) in [
        ("action=add_balance".to_owned(), "id"),
        (format!("action=add_balance&id={}", c3.0), "number"),
        ("action=add_balance&id=x&number=1".to_owned(), "id"),
        ("action=add_balance&id=1&number=12a4".to_owned(), "number"),
    ] {
        let (status, body) = app.action(&app.alice, &query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let text = body["error_message"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("Error: {field} ")),
            "{query}: {text}"
        );
    }
    // Another account named (`account=`): 403, the card is not taken.
    let (status, body) = app
        .action(
            &app.alice,
            &format!(
                "action=add_balance&account={}&id={}&number={}",
                enc(BOB),
                c3.0,
                c3.1
            ),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let head = app
        .client(Some(&app.alice))
        .head(format!(
            "{}/settings.phtml?action=add_balance&id={}&number={}",
            app.base, c3.0, c3.1
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 405);
    // CLI refusals: one line, nothing made.
    for args in [
        &[
            "voucher",
            "create",
            "--domain",
            "example.com",
            "--value",
            "0",
        ][..],
        &[
            "voucher",
            "create",
            "--domain",
            "example.com",
            "--value",
            "1",
            "--count",
            "0",
        ],
        &[
            "voucher",
            "create",
            "--domain",
            "nowhere.test",
            "--value",
            "1",
        ],
        &[
            "voucher",
            "create",
            "--domain",
            "example.com",
            "--value",
            "1",
            "--expires",
            "2001-01-01",
        ],
        &[
            "voucher",
            "create",
            "--domain",
            "example.com",
            "--value",
            "1",
            "--expires",
            "soon",
        ],
        &["voucher", "disable", "0"],
        &["voucher", "disable", "999999"],
    ] {
        app.cli_refused(args);
    }
    let list = app.cli_ok(&["voucher", "list", "--domain", "example.com"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(",unused,"), "{list}");
    assert_eq!(balance(&app, &app.alice).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_numbers_are_throttled_per_account_and_per_address() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    let cards = create_with_cli(&app, &["--value", "1", "--count", "1"]);
    // Five more accounts for the address limit, their certificates issued before the clock
    // moves (a certificate is stamped by the service's clock, checked by rustls on the real one).
    let mut certs = Vec::new();
    for who in ["c1", "c2", "c3", "c4", "c5"] {
        certs.push(
            app.add_account_with_cert(&format!("{who}@example.com"), &[])
                .await,
        );
    }
    let (id, number) = &cards[0];
    let wrong = if number.ends_with('0') {
        format!("{}1", &number[..19])
    } else {
        format!("{}0", &number[..19])
    };
    for _ in 0..5 {
        let (status, body) = add_balance(&app, &app.alice, id, &wrong).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["error_message"],
            format!(
                "Error: number does not match prepaid card {id} (no card has this id and number)"
            )
        );
    }
    // The sixth, even with the right number, is refused with Retry-After; nothing changes.
    let response = app
        .client(Some(&app.alice))
        .post(format!("{}/settings.phtml", app.base))
        .form(&[("action", "add_balance"), ("id", id), ("number", number)])
        .send()
        .await
        .unwrap();
    let retry = header_of(&response, "retry-after");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("900"));
    let text = body["error_message"].as_str().unwrap();
    assert!(
        text.starts_with("Error: too many wrong prepaid card numbers for this account"),
        "{text}"
    );
    assert_eq!(balance(&app, &app.alice).await, 0.0);
    // Its own counters: alice's other actions and password checks are not throttled.
    assert_eq!(app.read(&app.alice, "account").await["sip_address"], ALICE);
    let verified = app
        .services
        .verify_password(
            &AccountId::parse(ALICE).unwrap(),
            &Password::offered(ALICE_PASSWORD),
        )
        .await
        .unwrap();
    assert!(verified);
    // After the window the right number is taken.
    app.clock.advance(Duration::minutes(15));
    let (status, body) = add_balance(&app, &app.alice, id, number).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(balance(&app, &app.alice).await, 1.0);

    // Per address: 20 wrong numbers from one address (four accounts, five each) close it for
    // a fifth account too.
    for cert in &certs[..4] {
        for _ in 0..5 {
            let (status, body) = add_balance(&app, cert, id, &wrong).await;
            assert_eq!(status, 400, "{body}");
        }
    }
    let (status, body) = add_balance(&app, &certs[4], id, &wrong).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Error: too many wrong prepaid card numbers from this address"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redemptions_of_one_card_at_once_credit_once() {
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    app.cli_ok(&["account", "set", BOB, "--prepaid", "true"]);
    let cards = create_with_cli(&app, &["--value", "2.5", "--count", "4"]);
    for (id, number) in &cards {
        let (a, b) = tokio::join!(
            add_balance(&app, &app.alice, id, number),
            add_balance(&app, &app.bob, id, number)
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    }
    let total = balance(&app, &app.alice).await + balance(&app, &app.bob).await;
    assert!((total - 10.0).abs() < 1e-9, "{total}");
}

/// The operator API: a batch (numbers shown once), the list, a redemption seen in it, disable.
async fn operator_api(app: &TestApp) {
    let admin = app
        .services
        .issue_certificate(CertSubject::Admin("ops".into()), None, None)
        .await
        .unwrap();
    let ops = app.client(Some(&admin));
    let url = |path: &str| format!("{}{path}", app.base);
    let send = |method: Method, path: String, body: Option<Value>| {
        let mut request = ops.request(method, url(&path));
        if let Some(b) = body {
            request = request.json(&b);
        }
        async move {
            let response = request.send().await.unwrap();
            let location = header_of(&response, "location");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, location)
        }
    };
    let list_path = "/v1/admin/domains/example.com/vouchers".to_owned();
    let (status, made, location) = send(
        Method::POST,
        list_path.clone(),
        Some(json!({"value": "5", "count": 2, "expires": "2099-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        location.as_deref(),
        Some("/v1/admin/domains/example%2Ecom/vouchers")
    );
    assert_eq!(made["value"], "5.0000");
    assert_eq!(made["expires_at"], "2099-01-01T00:00:00Z");
    let vouchers = made["vouchers"].as_array().unwrap();
    assert_eq!(vouchers.len(), 2);
    let card = |i: usize| {
        (
            vouchers[i]["id"].as_i64().unwrap().to_string(),
            vouchers[i]["number"].as_str().unwrap().to_owned(),
        )
    };
    let (first, second) = (card(0), card(1));
    assert_eq!(first.1.len(), 20);

    app.services
        .update_account(
            &AccountId::parse(ALICE).unwrap(),
            &sip_settings_core::AccountUpdate {
                prepaid: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (status, body) = add_balance(app, &app.alice, &first.0, &first.1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(balance(app, &app.alice).await, 5.0);

    let (status, list, _) = send(Method::GET, list_path.clone(), None).await;
    assert_eq!(status, 200, "{list}");
    let listed = list["vouchers"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"].to_string(), second.0, "newest first");
    assert_eq!(listed[0]["state"], "unused");
    assert_eq!(listed[1]["state"], "used");
    assert_eq!(listed[1]["used_by"], ALICE);
    assert!(listed[1]["used_at"].is_string());
    assert!(
        listed[1]["created_by"]
            .as_str()
            .unwrap_or_default()
            .contains("ops"),
        "{list}"
    );
    assert!(
        !list.to_string().contains(&second.1),
        "no numbers in the list"
    );

    let (status, v, _) = send(
        Method::POST,
        format!("/v1/admin/vouchers/{}/disable", second.0),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "disabled");
    let (status, v, _) = send(
        Method::POST,
        format!("/v1/admin/vouchers/{}/disable", first.0),
        None,
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let (status, body) = add_balance(app, &app.alice, &second.0, &second.1).await;
    assert_eq!(status, 409, "{body}");

    // Refusals naming the field; an unknown domain or card is 404.
    for (body, field) in [
        (json!({"value": "0", "count": 1}), "value"),
        (json!({"value": "1", "count": 0}), "count"),
        (json!({"value": "1", "count": 10001}), "count"),
        (
            json!({"value": "1", "count": 1, "expires": "2099-01-01"}),
            "expires",
        ),
        (
            json!({"value": "1", "count": 1, "expires": "2001-01-01T00:00:00Z"}),
            "expires",
        ),
        (json!({"value": "1", "count": 1, "number": "1"}), "number"),
    ] {
        let (status, problem, _) = send(Method::POST, list_path.clone(), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let (status, _, _) = send(
        Method::POST,
        "/v1/admin/domains/nowhere.test/vouchers".to_owned(),
        Some(json!({"value": "1", "count": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = send(
        Method::POST,
        "/v1/admin/vouchers/999999/disable".to_owned(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = send(Method::GET, format!("{list_path}?limit=0"), None).await;
    assert_eq!(status, 400);
    let (status, list, _) = send(Method::GET, list_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["vouchers"].as_array().unwrap().len(),
        2,
        "nothing made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_makes_lists_and_disables_cards_on_sqlite() {
    let app = TestApp::spawn().await;
    operator_api(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_makes_lists_and_disables_cards_on_postgres() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let url = db.url().to_owned();
    let app = TestApp::spawn_with(|c| c.database_url = url).await;
    operator_api(&app).await;
}

// Multi-threaded: curl runs as a blocking child process while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_redeems_a_card_with_digest_by_post() {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: curl is not installed");
        return;
    }
    let app = TestApp::spawn().await;
    app.cli_ok(&["account", "set", ALICE, "--prepaid", "true"]);
    let cards = create_with_cli(&app, &["--value", "3.25", "--count", "1"]);
    let (id, number) = &cards[0];
    let ca = app.write_file("vouchers-ca.crt", &app.ca_pem);
    let url = format!("{}/settings.phtml?realm=example.com", app.base);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--digest", "-u", &format!("alice:{ALICE_PASSWORD}")])
        .arg("--cacert")
        .arg(&ca)
        .args(["-d", "action=add_balance", "-d", &format!("id={id}")])
        .args(["-d", &format!("number={number}")])
        .args(["-w", "\n%{http_code}", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{body}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error_message"], "Added balance succeeded");
    assert_eq!(body["balance"], "3.2500");
    assert_eq!(balance(&app, &app.alice).await, 3.25);
}
