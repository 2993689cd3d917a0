//! The operator API `/v1/admin/…` over real mutual TLS: an admin certificate from the
//! installation's own CA provisions a domain and an account end to end (the account's new
//! certificate then works on `/v1/me`, its new password on the digest check), every change is
//! journaled with the admin certificate as the actor, accounts page and search, bad input is a
//! `400` naming its field, and subscriber and service certificates get `403` on every admin
//! route of the document (no certificate: `401`). The round trip and the route table run on
//! SQLite and, with `SIP_SETTINGS_TEST_PG_URL`, on PostgreSQL.

use reqwest::Method;
use serde_json::{Value, json};
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::{AccountId, Password};
use sip_settings_store_tests::pg::TempDatabase;

use crate::helpers::*;

/// An admin certificate named `ops`.
async fn admin_cert(app: &TestApp) -> IssuedCertificate {
    app.services
        .issue_certificate(CertSubject::Admin("ops".into()), None, None)
        .await
        .unwrap()
}

/// One request; status, JSON body (`null` when empty) and the ETag.
async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let etag = header_of(&response, "etag");
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body, etag)
}

/// A request with a CSV body.
async fn post_csv(client: &reqwest::Client, url: &str, csv: &str) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("request");
    json_of_any(response).await
}

async fn json_of_any(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The whole life of an account through the operator API, on `app`'s store.
async fn round_trip(app: &TestApp) {
    let admin = admin_cert(app).await;
    let actor = format!("admin ops (serial {})", admin.record.serial);
    let ops = app.client(Some(&admin));
    domains_and_account(app, &ops).await;
    let (bundle, serial) = certificate_for_the_account(app, &ops).await;
    new_password(app, &ops).await;
    addresses_and_voicemail(app, &ops).await;
    rules_and_phonebook(app, &ops).await;
    balances_and_imports(app, &ops).await;
    journal_has_the_admin_actor(app, &ops, &actor).await;
    revoke_and_delete(app, &ops, &actor, &bundle, &serial).await;
}

/// The account the round trip provisions.
const CAROL: &str = "carol@example.org";

/// Domains; an account created, read and changed (`If-Match`).
async fn domains_and_account(app: &TestApp, ops: &reqwest::Client) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // Domains.
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/domains"),
        &[],
        Some(json!({"domain": "Example.ORG"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["domain"], "example.org");
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/domains"),
        &[],
        Some(json!({"domain": "example.org"})),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let (_, b, _) = call(&ops, Method::GET, &url("/domains"), &[], None).await;
    assert_eq!(b["domains"], json!(["example.com", "example.org"]));

    // The domain's HTTP Digest switch (twin of `domain digest`): on by default.
    let digest = url("/domains/example.org/digest");
    let (s, b, tag) = call(&ops, Method::GET, &digest, &[], None).await;
    assert_eq!(
        (s, &b),
        (200, &json!({"domain": "example.org", "digest": true}))
    );
    let tag = tag.expect("an ETag");
    for bad in [
        json!({"digest": "off"}),
        json!({"digest": false, "x": 1}),
        json!({}),
    ] {
        let (s, b, _) = call(&ops, Method::PUT, &digest, &[], Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &digest,
        &[("if-match", &tag)],
        Some(json!({"digest": false})),
    )
    .await;
    assert_eq!(
        (s, &b),
        (200, &json!({"domain": "example.org", "digest": false}))
    );
    assert_eq!(
        app.services
            .domain_digest(&sip_settings_core::Domain::parse("example.org").unwrap())
            .await
            .unwrap(),
        Some(false)
    );
    // The old ETag is stale now: nothing changes.
    let (s, _, _) = call(
        &ops,
        Method::PUT,
        &digest,
        &[("if-match", &tag)],
        Some(json!({"digest": true})),
    )
    .await;
    assert_eq!(s, 412);
    let (s, b, _) = call(&ops, Method::GET, &digest, &[], None).await;
    assert_eq!((s, b["digest"].clone()), (200, json!(false)));
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &url("/domains/example.net/digest"),
        &[],
        Some(json!({"digest": true})),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, _, _) = call(
        &ops,
        Method::PUT,
        &digest,
        &[],
        Some(json!({"digest": true})),
    )
    .await;
    assert_eq!(s, 200);

    // Create, read, update.
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/accounts"),
        &[],
        Some(
            json!({"address": carol, "password": "carol-first-password", "first_name": "Carol",
                    "pstn_caller_id": "+31201234500"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["address"], carol);
    assert_eq!(b["prepaid"], false);
    assert!(b.get("password").is_none(), "{b}");
    let (s, b, tag) = call(
        &ops,
        Method::GET,
        &url(&format!("/accounts/{carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["first_name"], "Carol");
    assert_eq!(b["pstn_caller_id"], "+31201234500");
    let tag = tag.expect("an ETag");
    let patch = json!({"last_name": "Jones", "prepaid": true, "pstn_caller_id": null});
    let (s, b, _) = call(
        &ops,
        Method::PATCH,
        &url(&format!("/accounts/{carol}")),
        &[("if-match", "\"stale\"")],
        Some(patch.clone()),
    )
    .await;
    assert_eq!(s, 412, "{b}");
    let (s, b, _) = call(
        &ops,
        Method::PATCH,
        &url(&format!("/accounts/{carol}")),
        &[("if-match", &tag)],
        Some(patch),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["last_name"], "Jones");
    assert_eq!(b["prepaid"], true);
    assert!(b["pstn_caller_id"].is_null(), "{b}");
}

/// A certificate issued for the account works on `/v1/me`; gives its bundle and serial.
async fn certificate_for_the_account(app: &TestApp, ops: &reqwest::Client) -> (String, String) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // A certificate issued for the account works on /v1/me.
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url(&format!("/accounts/{carol}/certificates")),
        &[],
        Some(json!({"days": 30})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let bundle = b["bundle"].as_str().unwrap().to_owned();
    assert!(bundle.contains("PRIVATE KEY"), "the bundle holds the key");
    let serial = b["certificate"]["serial"].as_str().unwrap().to_owned();
    let as_carol = client_with(&app.ca_pem, Some((&bundle, &bundle)));
    let (s, me, _) = call(
        &as_carol,
        Method::GET,
        &format!("{}/v1/me", app.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["address"], carol);
    assert_eq!(me["last_name"], "Jones");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/certificates?account={carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(b["certificates"].as_array().unwrap().len(), 1, "{b}");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/certificates/{serial}")),
        &[],
        None,
    )
    .await;
    assert_eq!(b["account"], carol);
    assert_eq!(b["role"], "subscriber");

    (bundle, serial)
}

/// A new password changes the digests.
async fn new_password(app: &TestApp, ops: &reqwest::Client) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // A new password: the old one no longer checks, the new one does, the digests changed.
    let id = AccountId::parse(carol).unwrap();
    let before = app
        .services
        .store()
        .get_credentials(&id)
        .await
        .unwrap()
        .unwrap();
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &url(&format!("/accounts/{carol}/password")),
        &[],
        Some(json!({"password": "carol-second-password"})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let after = app
        .services
        .store()
        .get_credentials(&id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(before.ha1_md5, after.ha1_md5);
    assert_ne!(before.ha1_sha256, after.ha1_sha256);
    let check = |pw: &'static str| {
        let services = app.services.clone();
        let id = id.clone();
        async move {
            services
                .verify_password(&id, &Password::offered(pw))
                .await
                .unwrap()
        }
    };
    assert!(check("carol-second-password").await);
    assert!(!check("carol-first-password").await);
}

/// Aliases, ENUM numbers, voicemail.
async fn addresses_and_voicemail(app: &TestApp, ops: &reqwest::Client) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // Aliases and ENUM numbers.
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/aliases"),
        &[],
        Some(json!({"alias": "cj@example.org", "account": carol})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/aliases"),
        &[],
        Some(json!({"alias": "cj@example.com", "account": carol})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["field"], "alias");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/aliases?account={carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(
        b["aliases"],
        json!([{"alias": "cj@example.org", "account": carol}])
    );
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &url("/enum"),
        &[],
        Some(json!({"number": "+31201234599", "account": carol})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/enum?account={carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(
        b["numbers"],
        json!([{"number": "+31201234599", "account": carol}])
    );
    let (s, _, _) = call(&ops, Method::DELETE, &url("/enum/+31201234599"), &[], None).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(
        &ops,
        Method::DELETE,
        &url("/aliases/cj@example.org"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b, _) = call(
        &ops,
        Method::DELETE,
        &url("/aliases/cj@example.org"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404, "{b}");

    // Voicemail.
    let vm = url(&format!("/accounts/{carol}/voicemail"));
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &vm,
        &[],
        Some(json!({"enabled": true, "pin": "1234", "delivery": "email_and_store"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["enabled"], true);
    assert_eq!(b["pin_set"], true);
    assert!(b.get("pin").is_none(), "{b}");
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &vm,
        &[],
        Some(json!({"enabled": false, "pin": "1234"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["field"], "pin");
    let (s, b, _) = call(&ops, Method::PUT, &vm, &[], Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["enabled"], false);
    assert_eq!(b["delivery"], "email_and_store");
}

/// Reject and accept rules, the phonebook.
async fn rules_and_phonebook(app: &TestApp, ops: &reqwest::Client) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // Reject and accept rules, the phonebook.
    let acct = url(&format!("/accounts/{carol}"));
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &format!("{acct}/reject-rules"),
        &[],
        Some(json!({"pattern": "sip:%0900@%"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &format!("{acct}/reject-rules"),
        &[],
        None,
    )
    .await;
    assert_eq!(b["patterns"], json!(["sip:%0900@%"]));
    let (s, b, _) = call(
        &ops,
        Method::DELETE,
        &format!("{acct}/reject-rules?pattern=sip%3A%250900%40%25"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &format!("{acct}/accept-rules/31"),
        &[],
        Some(json!({"start": "08:00", "stop": "18:00", "groups": ["friends"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &format!("{acct}/accept-rules"),
        &[],
        None,
    )
    .await;
    assert_eq!(b["rules"][0]["groups"], json!(["friends"]), "{b}");
    let (s, _, _) = call(
        &ops,
        Method::DELETE,
        &format!("{acct}/accept-rules/31"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &format!("{acct}/phonebook"),
        &[],
        Some(json!({"uri": "sip:dave@example.net", "name": "Dave", "groups": ["friends"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, b, _) = call(&ops, Method::GET, &format!("{acct}/phonebook"), &[], None).await;
    assert_eq!(b["entries"][0]["uri"], "sip:dave@example.net", "{b}");
    let (s, b, _) = call(
        &ops,
        Method::DELETE,
        &format!("{acct}/phonebook?uri=sip%3Adave%40example.net"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204, "{b}");
}

/// Balances; rates and calls from CSV.
async fn balances_and_imports(app: &TestApp, ops: &reqwest::Client) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // Balances.
    let balance = url(&format!("/accounts/{carol}/balance"));
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &format!("{balance}/topups"),
        &[],
        Some(json!({"amount": "5.5", "description": "voucher"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["balance"], "5.5000");
    let (s, b, _) = call(
        &ops,
        Method::PUT,
        &balance,
        &[],
        Some(json!({"amount": "2"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["balance"], "2.0000");
    let (s, b, _) = call(
        &ops,
        Method::POST,
        &format!("{balance}/topups"),
        &[],
        Some(json!({"amount": "0"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["field"], "amount");
    let (_, b, _) = call(&ops, Method::GET, &format!("{balance}/history"), &[], None).await;
    let actions: Vec<&str> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["set", "topup"], "{b}");

    // Rates and calls, from CSV.
    let rates = "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n\
                 31,Netherlands,0.0100,0.0500,60,60\n";
    let (s, b) = post_csv(&ops, &url("/rates"), rates).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["imported"], 1);
    let (s, b) = post_csv(&ops, &url("/rates"), "prefix,description\n31,x\n").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["field"], "body");
    let (_, b, _) = call(&ops, Method::GET, &url("/rates/+31201234567"), &[], None).await;
    assert_eq!(b["prefix"], "31", "{b}");
    let calls = format!(
        "call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\n\
         admin-1@proxy,f1,t1,sip:{carol},sip:+31201234567@example.org,2026-12-01T10:00:00Z,2026-12-01T10:01:00Z,60,200,audio,192.0.2.1,\n"
    );
    let (s, b) = post_csv(&ops, &url("/calls"), &calls).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["imported"], 1);
    let (s, b) = post_csv(&ops, &url("/calls"), &calls).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["already_recorded"], 1);
    let (s, b) = post_csv(&ops, &url("/calls"), &calls.replace(",60,200,", ",x,200,")).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["field"], "body");
}

/// The journal has every change with the admin actor.
async fn journal_has_the_admin_actor(app: &TestApp, ops: &reqwest::Client, actor: &str) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // The journal: every change, with the admin certificate as the actor.
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/accounts/{carol}/journal?limit=200")),
        &[],
        None,
    )
    .await;
    let entries = b["entries"].as_array().unwrap();
    let resources: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    for r in [
        "account",
        "account.last_name",
        "account.prepaid",
        "certificate",
        "password",
        "alias",
        "voicemail",
        "balance",
        "reject",
        "accept.31",
        "phonebook",
    ] {
        assert!(resources.contains(&r), "{r} not journaled: {resources:?}");
    }
    for e in entries {
        assert_eq!(e["actor"], actor, "{e}");
        assert_eq!(e["door"], "admin", "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert_ne!(e["new"], "carol-second-password", "{e}");
    }
    let password = entries
        .iter()
        .find(|e| e["resource"] == "password")
        .unwrap();
    assert_eq!(password["new"], "changed");
}

/// Revocation and deletion.
async fn revoke_and_delete(
    app: &TestApp,
    ops: &reqwest::Client,
    actor: &str,
    bundle: &str,
    serial: &str,
) {
    let ops = ops.clone();
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let carol = CAROL;
    // Revoking the certificate shuts it out of /v1/me.
    let (s, b, _) = call(
        &ops,
        Method::DELETE,
        &url(&format!("/certificates/{serial}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["revoked_at"].is_string(), "{b}");
    let as_carol = client_with(&app.ca_pem, Some((bundle, bundle)));
    let (s, _, _) = call(
        &as_carol,
        Method::GET,
        &format!("{}/v1/me", app.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 403);

    // Delete: gone, its journal kept and showing the deletion, in the domain's journal too.
    let (s, b, _) = call(
        &ops,
        Method::DELETE,
        &url(&format!("/accounts/{carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, _) = call(
        &ops,
        Method::GET,
        &url(&format!("/accounts/{carol}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url("/domains/example.org/journal?limit=2"),
        &[],
        None,
    )
    .await;
    let first = &b["entries"][0];
    assert_eq!(first["account"], carol, "{b}");
    assert_eq!(first["resource"], "account");
    assert_eq!(first["new"], "deleted");
    assert_eq!(first["actor"], actor);
    let next = b["next"].as_i64().expect("a next page");
    let (_, older, _) = call(
        &ops,
        Method::GET,
        &url(&format!(
            "/domains/example.org/journal?limit=2&before={next}"
        )),
        &[],
        None,
    )
    .await;
    assert!(
        older["entries"][0]["id"].as_i64().unwrap() < next,
        "{older}"
    );
    let (_, b, _) = call(
        &ops,
        Method::GET,
        &url("/domains/example.com/journal"),
        &[],
        None,
    )
    .await;
    assert!(
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["account"] != carol),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_certificate_provisions_an_account_end_to_end_on_sqlite() {
    let app = TestApp::spawn().await;
    round_trip(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_certificate_provisions_an_account_end_to_end_on_postgres() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let url = db.url().to_owned();
    let app = TestApp::spawn_with(|c| c.database_url = url).await;
    assert!(app.config.database_url.starts_with("postgres"));
    round_trip(&app).await;
}

/// Every `/v1/admin` operation of the document, with its path parameters filled in.
async fn admin_operations(app: &TestApp) -> Vec<(Method, String)> {
    let (_, doc, _) = call(
        &app.client(None),
        Method::GET,
        &format!("{}/v1/openapi.json", app.base),
        &[],
        None,
    )
    .await;
    let serial = app.alice.record.serial.to_string();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/admin") {
            continue;
        }
        let filled = path
            .replace("{account}", ALICE)
            .replace("{domain}", "example.com")
            .replace("{serial}", &serial)
            .replace("{alias}", "al@example.com")
            .replace("{number}", "+31201234567")
            .replace("{days}", "31")
            .replace("{id}", "1");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            out.push((method, filled.clone()));
        }
    }
    out
}

/// Subscriber and service certificates get `403` on every admin operation, no certificate
/// `401`; the admin certificate gets neither (and `403` on `/v1/me`).
async fn only_admin_certificates(app: &TestApp) {
    let ops = admin_operations(app).await;
    assert!(ops.len() >= 30, "{} admin operations: {ops:?}", ops.len());
    let service = service_cert(app).await;
    let admin = admin_cert(app).await;
    let (alice, proxy, nobody, operator) = (
        app.client(Some(&app.alice)),
        app.client(Some(&service)),
        app.client(None),
        app.client(Some(&admin)),
    );
    for (method, path) in &ops {
        let url = format!("{}{path}", app.base);
        let body = matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        for (who, client) in [("subscriber", &alice), ("service", &proxy)] {
            let (s, b, _) = call(client, method.clone(), &url, &[], body.clone()).await;
            assert_eq!(s, 403, "{who} {method} {path}: {b}");
            assert_eq!(b["code"], "forbidden", "{who} {method} {path}: {b}");
        }
        let (s, b, _) = call(&nobody, method.clone(), &url, &[], body.clone()).await;
        assert_eq!(s, 401, "{method} {path}: {b}");
        if *method == Method::GET {
            let (s, b, _) = call(&operator, method.clone(), &url, &[], None).await;
            assert!(s != 401 && s != 403, "admin {method} {path}: {s} {b}");
        }
    }
    let (s, b, _) = call(
        &operator,
        Method::GET,
        &format!("{}/v1/me", app.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, b, _) = call(
        &operator,
        Method::GET,
        &format!("{}/v1/me/journal", app.base),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 403, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_certificates_reach_the_operator_api_on_sqlite() {
    let app = TestApp::spawn().await;
    only_admin_certificates(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_certificates_reach_the_operator_api_on_postgres() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let url = db.url().to_owned();
    let app = TestApp::spawn_with(|c| c.database_url = url).await;
    only_admin_certificates(&app).await;
}

/// Accounts page by address with the `next` cursor, and `q` searches address and names
/// ignoring case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_page_and_search() {
    let app = TestApp::spawn().await;
    let admin = admin_cert(&app).await;
    let ops = app.client(Some(&admin));
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    for (user, last) in [
        ("dan", "Smith"),
        ("erin", "Smithers"),
        ("frank", "Jones"),
        ("gina", "Brown"),
    ] {
        let (s, b, _) = call(
            &ops,
            Method::POST,
            &url("/accounts"),
            &[],
            Some(json!({"address": format!("{user}@example.com"), "password": "a-long-password", "last_name": last})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let after = next
            .as_ref()
            .map(|n| format!("&after={n}"))
            .unwrap_or_default();
        let (s, b, _) = call(
            &ops,
            Method::GET,
            &url(&format!("/accounts?domain=example.com&limit=4{after}")),
            &[],
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let page = b["accounts"].as_array().unwrap();
        assert!(page.len() <= 4);
        seen.extend(
            page.iter()
                .map(|a| a["address"].as_str().unwrap().to_owned()),
        );
        match b["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    let users: Vec<&str> = seen.iter().map(|a| a.split('@').next().unwrap()).collect();
    assert_eq!(users, ["alice", "bob", "dan", "erin", "frank", "gina"]);
    let (_, b, _) = call(&ops, Method::GET, &url("/accounts?q=SMITH"), &[], None).await;
    let found: Vec<&str> = b["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["dan@example.com", "erin@example.com"]);
    let (_, b, _) = call(&ops, Method::GET, &url("/accounts?q=frank%40"), &[], None).await;
    assert_eq!(b["accounts"].as_array().unwrap().len(), 1, "{b}");
    assert!(b["next"].is_null());
}

/// Bad input is a `400` problem naming the field, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = admin_cert(&app).await;
    let ops = app.client(Some(&admin));
    let url = |p: &str| format!("{}/v1/admin{p}", app.base);
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            url("/domains"),
            Some(json!({"domain": "no_dots"})),
            "domain",
        ),
        (
            Method::POST,
            url("/accounts"),
            Some(json!({"address": "x@example.com", "password": "short"})),
            "password",
        ),
        (
            Method::POST,
            url("/accounts"),
            Some(json!({"address": "not an address", "password": "long-enough-pw"})),
            "address",
        ),
        (
            Method::POST,
            url("/accounts"),
            Some(
                json!({"address": "x@example.com", "password": "long-enough-pw", "mobile": "0612"}),
            ),
            "mobile",
        ),
        (
            Method::POST,
            url("/accounts"),
            Some(
                json!({"address": "x@example.com", "password": "long-enough-pw", "colour": "red"}),
            ),
            "colour",
        ),
        (
            Method::POST,
            url("/accounts"),
            Some(json!({"password": "long-enough-pw"})),
            "address",
        ),
        (
            Method::PATCH,
            url(&format!("/accounts/{ALICE}")),
            Some(json!({"no_answer_timeout": 2})),
            "no_answer_timeout",
        ),
        (
            Method::PATCH,
            url(&format!("/accounts/{ALICE}")),
            Some(json!({"timezone": "Mars/Olympus"})),
            "timezone",
        ),
        (Method::GET, url("/accounts/nobody"), None, "account"),
        (Method::GET, url("/accounts?limit=0"), None, "limit"),
        (Method::GET, url("/accounts?sort=name"), None, "sort"),
        (Method::GET, url("/accounts?after=x"), None, "after"),
        (Method::GET, url("/certificates/xyz"), None, "serial"),
        (
            Method::POST,
            url(&format!("/accounts/{ALICE}/certificates")),
            Some(json!({"days": 0})),
            "days",
        ),
        (
            Method::POST,
            url("/certificates"),
            Some(json!({"role": "root", "name": "x"})),
            "role",
        ),
        (
            Method::POST,
            url("/certificates"),
            Some(json!({"role": "admin", "name": "-x"})),
            "name",
        ),
        (
            Method::POST,
            url("/enum"),
            Some(json!({"number": "31", "account": ALICE})),
            "number",
        ),
        (
            Method::PUT,
            url(&format!("/accounts/{ALICE}/voicemail")),
            Some(json!({"enabled": true, "pin": "12"})),
            "pin",
        ),
        (
            Method::PUT,
            url(&format!("/accounts/{ALICE}/balance")),
            Some(json!({"amount": "1.23456"})),
            "amount",
        ),
        (Method::GET, url("/domains/x/journal"), None, "domain"),
        (
            Method::GET,
            url(&format!("/accounts/{ALICE}/journal?before=-")),
            None,
            "before",
        ),
        (Method::POST, url("/rates?replace=maybe"), None, "replace"),
    ];
    for (method, u, body, field) in cases {
        let (s, b, _) = if u.contains("/rates") {
            let (s, b) = post_csv(&ops, &u, "prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n").await;
            (s, b, None)
        } else {
            call(&ops, method.clone(), &u, &[], body).await
        };
        assert_eq!(s, 400, "{method} {u}: {b}");
        assert_eq!(b["field"], field, "{method} {u}: {b}");
    }
    let (_, b, _) = call(&ops, Method::GET, &url("/accounts"), &[], None).await;
    assert_eq!(
        b["accounts"].as_array().unwrap().len(),
        2,
        "nothing was created: {b}"
    );
}
