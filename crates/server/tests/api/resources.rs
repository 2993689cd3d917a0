//! The resource API /v1/me over the real server: every resource and method with a success and
//! its refusals (problem documents naming the field), ETags and If-Match (412 and nothing
//! changed, the race of two clients), the journal door `v1`, routing explanations across time
//! zones and DST, the service route for proxies, the OpenAPI document, and isolation between
//! accounts.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::calls::CallInput;
use sip_settings_core::cert::CertSubject;
use sip_settings_core::money::Money;
use sip_settings_core::{AccountId, Clock};

use crate::helpers::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn alice_id() -> AccountId {
    AccountId::parse(ALICE).unwrap()
}

async fn journal(api: &Api) -> Vec<Value> {
    api.read("/v1/me/journal?limit=200").await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

// ----- account ------------------------------------------------------------------------------------

#[tokio::test]
async fn account_get_and_patch_with_refusals() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let me = api.read("/v1/me").await;
    assert_eq!(me["address"], ALICE);
    assert_eq!(me["timezone"], "UTC");
    assert_eq!(me["no_answer_timeout"], 35);
    assert_eq!(me["email"], Value::Null);
    assert_eq!(me["dnd"], false);

    let r = api
        .patch(
            "/v1/me",
            json!({"first_name": "Alice", "last_name": "Liddell", "email": "alice@mail.example",
                   "timezone": "Europe/Amsterdam", "mobile": "+31612345678", "language": "nl",
                   "no_answer_timeout": 20}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["first_name"], "Alice");
    assert_eq!(r.body["timezone"], "Europe/Amsterdam");
    assert_eq!(r.body["mobile"], "+31612345678");
    assert_eq!(r.body["no_answer_timeout"], 20);
    assert_ne!(r.etag.as_deref(), None);
    // The action endpoint shows the same account (one rule, one place).
    let a = app.read(&app.alice, "account").await;
    assert_eq!(a["timezone"], "Europe/Amsterdam");
    assert_eq!(a["first"], "Alice");
    assert_eq!(a["no_answer_timeout"], 20);

    // Refusals name the field and change nothing.
    let before = api.read("/v1/me").await;
    for (body, field) in [
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"no_answer_timeout": 3}), "no_answer_timeout"),
        (json!({"no_answer_timeout": "x"}), "no_answer_timeout"),
        (json!({"email": "not-an-email"}), "email"),
        (json!({"mobile": "0612"}), "mobile"),
        (json!({"language": "english"}), "language"),
        (json!({"first_name": "x".repeat(65)}), "first_name"),
        (json!({"prepaid": true}), "prepaid"),
        (json!({"timezone": "UTC", "first_name": 7}), "first_name"),
    ] {
        let r = api.patch("/v1/me", body.clone()).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    let r = api.call(Method::PATCH, "/v1/me", None, None).await;
    assert_problem(&r, 400, "invalid_json", None);
    assert_eq!(api.read("/v1/me").await, before);

    // `null` clears the e-mail; an empty patch changes nothing.
    let r = api.patch("/v1/me", json!({"email": null})).await;
    assert_status(&r, 200);
    assert_eq!(r.body["email"], Value::Null);
    assert_eq!(r.body["first_name"], "Alice");
    let r = api.patch("/v1/me", json!({})).await;
    assert_status(&r, 200);

    // Without a certificate: 401 problem; a stale If-Match: 412.
    let anonymous = Api::new(&app, None);
    assert_problem(&anonymous.get("/v1/me").await, 401, "unauthenticated", None);
    let r = api
        .call(
            Method::PATCH,
            "/v1/me",
            Some(json!({"language": "en"})),
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(api.read("/v1/me").await["language"], "nl");
}

#[tokio::test]
async fn etags_are_strong_and_if_none_match_gives_304() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let r = api.get("/v1/me/privacy").await;
    let tag = r.etag.clone().unwrap();
    assert!(!tag.starts_with("W/"));
    assert_eq!(
        api.get("/v1/me/privacy").await.etag.as_deref(),
        Some(tag.as_str())
    );
    let not_modified = api
        .client
        .get(format!("{}/v1/me/privacy", api.base))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    // A change changes the tag; the write's reply carries the new one.
    let r = api
        .call(
            Method::PUT,
            "/v1/me/privacy",
            Some(json!({"on": true})),
            Some(&tag),
        )
        .await;
    assert_status(&r, 200);
    let new_tag = r.etag.unwrap();
    assert_ne!(new_tag, tag);
    assert_eq!(api.get("/v1/me/privacy").await.etag, Some(new_tag.clone()));
    // `*` matches any existing representation; a weak tag never matches for If-Match.
    let r = api
        .call(
            Method::PUT,
            "/v1/me/privacy",
            Some(json!({"on": false})),
            Some(&format!("W/{new_tag}")),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let r = api
        .call(
            Method::PUT,
            "/v1/me/privacy",
            Some(json!({"on": false})),
            Some("*"),
        )
        .await;
    assert_status(&r, 200);
}

// ----- diversions ---------------------------------------------------------------------------------

#[tokio::test]
async fn diversions_put_patch_and_per_condition() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let d = api.read("/v1/me/diversions").await;
    assert_eq!(
        d,
        json!({"FUNC": null, "FNOL": null, "FBUS": null, "FNOA": null, "FUNV": null, "no_answer_timeout": 35})
    );
    // PUT sets all: absent conditions are cleared.
    let r = api
        .put(
            "/v1/me/diversions",
            json!({"FUNC": "carol", "FBUS": "+31 20 123 4567"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["FUNC"], "carol@example.com");
    assert_eq!(r.body["FBUS"], "+31201234567@example.com");
    let r = api
        .put(
            "/v1/me/diversions",
            json!({"FNOA": "sip:Dave@Example.ORG", "no_answer_timeout": 25}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["FUNC"], Value::Null);
    assert_eq!(r.body["FBUS"], Value::Null);
    assert_eq!(r.body["FNOA"], "Dave@example.org");
    assert_eq!(r.body["no_answer_timeout"], 25);
    // PATCH changes only what is sent; null clears.
    let r = api
        .patch("/v1/me/diversions", json!({"FNOL": "carol@example.net"}))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["FNOA"], "Dave@example.org");
    assert_eq!(r.body["FNOL"], "carol@example.net");
    let r = api.patch("/v1/me/diversions", json!({"FNOA": null})).await;
    assert_eq!(r.body["FNOA"], Value::Null);
    assert_eq!(r.body["FNOL"], "carol@example.net");
    // The action endpoint reads the same forwarding.
    let action = app.read(&app.alice, "diversions").await;
    assert_eq!(action["FNOL"], "carol@example.net");
    assert_eq!(action["no_answer_timeout"], 25);

    // Refusals name the condition; nothing is written unless everything is valid.
    let before = api.read("/v1/me/diversions").await;
    for (body, field) in [
        (json!({"FUNC": "carol", "FBUS": "bad target!"}), "FBUS"),
        (json!({"FUNC": ALICE}), "FUNC"),
        (json!({"FUNV": "<voice-mailbox>"}), "FUNV"),
        (json!({"FNOL": "<mobile-number>"}), "FNOL"),
        (
            json!({"FUNC": "carol", "no_answer_timeout": 1000}),
            "no_answer_timeout",
        ),
        (json!({"FUNC": 5}), "FUNC"),
        (json!({"FOO": "carol"}), "FOO"),
    ] {
        let r = api.patch("/v1/me/diversions", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    let r = api.put("/v1/me/diversions", json!({"FBUS": "sip:"})).await;
    assert_problem(&r, 400, "invalid_field", Some("FBUS"));
    assert_eq!(api.read("/v1/me/diversions").await, before);
    // A loop through bob is refused.
    let bob = Api::new(&app, Some(&app.bob));
    assert_status(
        &bob.patch("/v1/me/diversions", json!({"FUNC": ALICE})).await,
        200,
    );
    let r = api.patch("/v1/me/diversions", json!({"FBUS": BOB})).await;
    assert_problem(&r, 400, "invalid_field", Some("FBUS"));
    assert!(r.body["detail"].as_str().unwrap().contains("loop"));

    // One condition as a resource.
    let one = api.read("/v1/me/diversions/fnol").await;
    assert_eq!(
        one,
        json!({"condition": "FNOL", "target": "carol@example.net", "reason": "unavailable"})
    );
    let r = api
        .put("/v1/me/diversions/FNOA", json!({"target": "erin"}))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["target"], "erin@example.com");
    assert_eq!(r.body["reason"], "no-answer");
    let r = api
        .put("/v1/me/diversions/FNOA", json!({"target": "a b"}))
        .await;
    assert_problem(&r, 400, "invalid_field", Some("FNOA"));
    let r = api.put("/v1/me/diversions/FNOA", json!({})).await;
    assert_problem(&r, 400, "invalid_field", Some("target"));
    let r = api.delete("/v1/me/diversions/FNOA").await;
    assert_status(&r, 200);
    assert_eq!(r.body["target"], Value::Null);
    assert_problem(
        &api.get("/v1/me/diversions/FXYZ").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.put("/v1/me/diversions/FXYZ", json!({"target": "x"}))
            .await,
        404,
        "not_found",
        None,
    );
    // A stale tag on one condition.
    let tag = api.get("/v1/me/diversions/FUNC").await.etag.unwrap();
    assert_status(
        &api.put("/v1/me/diversions/FUNC", json!({"target": "frank"}))
            .await,
        200,
    );
    let r = api
        .call(Method::DELETE, "/v1/me/diversions/FUNC", None, Some(&tag))
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(
        api.read("/v1/me/diversions/FUNC").await["target"],
        "frank@example.com"
    );
    let r = api
        .call(
            Method::PUT,
            "/v1/me/diversions",
            Some(json!({})),
            Some("\"old\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(
        api.read("/v1/me/diversions").await["FUNC"],
        "frank@example.com"
    );
}

// ----- accept rules -------------------------------------------------------------------------------

/// The temporary accept rule of alice: set, refused when bad, lapsing by itself, deleted; the
/// persistent rule 31 untouched.
async fn temporary_accept_rule(app: &TestApp, api: &Api) {
    // The temporary rule.
    let until = app.clock.now() + Duration::minutes(90);
    let r = api
        .put(
            "/v1/me/accept-rules/temporary",
            json!({"groups": ["family"], "until": until.to_rfc3339()}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["groups"], json!(["family"]));
    assert_eq!(r.body["remaining_minutes"], 90);
    assert_eq!(
        api.read("/v1/me/accept-rules").await["temporary"]["active"],
        true
    );
    for (body, field) in [
        (
            json!({"groups": ["family"], "until": (app.clock.now() - Duration::minutes(1)).to_rfc3339()}),
            "until",
        ),
        (
            json!({"groups": ["family"], "until": (app.clock.now() + Duration::days(8)).to_rfc3339()}),
            "until",
        ),
        (json!({"groups": ["family"], "until": "tomorrow"}), "until"),
        (json!({"groups": ["everybody", "family"]}), "groups"),
        (json!({"until": null}), "groups"),
    ] {
        let r = api.put("/v1/me/accept-rules/temporary", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    // It lapses by itself.
    app.clock.advance(Duration::minutes(91));
    assert_eq!(
        api.read("/v1/me/accept-rules/temporary").await["active"],
        false
    );
    assert_status(
        &api.put("/v1/me/accept-rules/temporary", json!({"groups": ["work"]}))
            .await,
        200,
    );
    let r = api.delete("/v1/me/accept-rules/temporary").await;
    assert_status(&r, 200);
    assert_eq!(r.body["active"], false);
    // The persistent rule is untouched by all this.
    assert_eq!(api.read("/v1/me/accept-rules/31").await["start"], "08:30");
}

#[tokio::test]
async fn accept_rules_and_the_temporary_rule() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let r = api
        .put(
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": ["Family", "work"]}),
        )
        .await;
    assert_status(&r, 201);
    assert_eq!(r.location.as_deref(), Some("/v1/me/accept-rules/31"));
    assert_eq!(
        r.body,
        json!({"days": 31, "start": "09:00", "stop": "17:00", "groups": ["family", "work"]})
    );
    let r = api
        .put(
            "/v1/me/accept-rules/31",
            json!({"start": "08:30", "stop": "17:00", "groups": ["family"]}),
        )
        .await;
    assert_status(&r, 200);
    assert_status(
        &api.put(
            "/v1/me/accept-rules/96",
            json!({"start": "00:00", "stop": "00:00", "groups": ["nobody"]}),
        )
        .await,
        201,
    );
    let rules = api.read("/v1/me/accept-rules").await;
    assert_eq!(rules["persistent"].as_array().unwrap().len(), 2);
    assert_eq!(rules["persistent"][0]["start"], "08:30");
    assert_eq!(rules["temporary"]["active"], false);
    assert_eq!(
        api.read("/v1/me/accept-rules/96").await["groups"],
        json!(["nobody"])
    );
    // The action endpoint's object R shows them.
    let r_obj = app.read(&app.alice, "accept").await;
    assert_eq!(r_obj["persistent"]["31"]["start"], "08:30");

    for (path, body, field) in [
        (
            "/v1/me/accept-rules/31",
            json!({"start": "9:00", "stop": "17:00", "groups": ["family"]}),
            "start",
        ),
        (
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "24:00", "groups": ["family"]}),
            "stop",
        ),
        (
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": ["bad name"]}),
            "groups[0]",
        ),
        (
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": ["nobody", "family"]}),
            "groups",
        ),
        (
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": []}),
            "groups",
        ),
        (
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "groups": ["family"]}),
            "stop",
        ),
        (
            "/v1/me/accept-rules/0",
            json!({"start": "09:00", "stop": "17:00", "groups": ["family"]}),
            "days",
        ),
        (
            "/v1/me/accept-rules/128",
            json!({"start": "09:00", "stop": "17:00", "groups": ["family"]}),
            "days",
        ),
    ] {
        let r = api.put(path, body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    assert_problem(
        &api.get("/v1/me/accept-rules/1").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.delete("/v1/me/accept-rules/1").await,
        404,
        "not_found",
        None,
    );
    let tag = api.get("/v1/me/accept-rules/96").await.etag.unwrap();
    let r = api
        .call(
            Method::DELETE,
            "/v1/me/accept-rules/96",
            None,
            Some("\"nope\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    // If-Match on a rule that does not exist yet fails; `*` too.
    let r = api
        .call(
            Method::PUT,
            "/v1/me/accept-rules/2",
            Some(json!({"start": "09:00", "stop": "10:00", "groups": ["everybody"]})),
            Some("*"),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let r = api
        .call(Method::DELETE, "/v1/me/accept-rules/96", None, Some(&tag))
        .await;
    assert_status(&r, 204);
    assert_eq!(
        api.read("/v1/me/accept-rules").await["persistent"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    temporary_accept_rule(&app, &api).await;
}

// ----- reject rules -------------------------------------------------------------------------------

#[tokio::test]
async fn reject_rules_post_get_delete() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let r = api
        .post("/v1/me/reject-rules", json!({"pattern": "sip:%0900@%"}))
        .await;
    assert_status(&r, 201);
    assert_eq!(r.body["pattern"], "sip:%0900@%");
    assert_eq!(
        r.location.as_deref(),
        Some("/v1/me/reject-rules/sip%3A%250900%40%25")
    );
    assert_status(
        &api.post(
            "/v1/me/reject-rules",
            json!({"pattern": "SIP:Spam@Example.net"}),
        )
        .await,
        201,
    );
    assert_eq!(
        api.read("/v1/me/reject-rules").await,
        json!({"patterns": ["sip:%0900@%", "sip:spam@example.net"]})
    );
    assert_eq!(
        app.read(&app.alice, "reject")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = api
        .post(
            "/v1/me/reject-rules",
            json!({"pattern": "sip:spam@example.net"}),
        )
        .await;
    assert_problem(&r, 409, "conflict", None);
    for body in [
        json!({"pattern": "spam@example.net"}),
        json!({"pattern": "sip:sp am@x"}),
    ] {
        let r = api.post("/v1/me/reject-rules", body).await;
        assert_problem(&r, 400, "invalid_field", Some("pattern"));
    }
    assert_problem(
        &api.post("/v1/me/reject-rules", json!({})).await,
        400,
        "invalid_field",
        Some("pattern"),
    );
    let one = api.read("/v1/me/reject-rules/sip%3A%250900%40%25").await;
    assert_eq!(one["pattern"], "sip:%0900@%");
    let r = api
        .call(
            Method::POST,
            "/v1/me/reject-rules",
            Some(json!({"pattern": "sip:x@y"})),
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_status(
        &api.delete("/v1/me/reject-rules/sip:spam@example.net").await,
        204,
    );
    assert_problem(
        &api.delete("/v1/me/reject-rules/sip:spam@example.net").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.get("/v1/me/reject-rules/nonsense").await,
        400,
        "invalid_field",
        Some("pattern"),
    );
    assert_eq!(
        api.read("/v1/me/reject-rules").await["patterns"],
        json!(["sip:%0900@%"])
    );
}

// ----- DND, privacy -------------------------------------------------------------------------------

#[tokio::test]
async fn dnd_and_privacy() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    assert_status(
        &api.put(
            "/v1/me/accept-rules/127",
            json!({"start": "00:00", "stop": "00:00", "groups": ["everybody"]}),
        )
        .await,
        201,
    );
    assert_eq!(
        api.read("/v1/me/dnd").await,
        json!({"on": false, "until": null, "remaining_minutes": null})
    );
    let r = api.put("/v1/me/dnd", json!({})).await;
    assert_status(&r, 200);
    assert_eq!(
        r.body,
        json!({"on": true, "until": null, "remaining_minutes": null})
    );
    assert_eq!(api.read("/v1/me").await["dnd"], true);
    assert_eq!(app.read(&app.alice, "account").await["dnd"], true);
    let r = api.put("/v1/me/dnd", json!({"duration": 30})).await;
    assert_eq!(r.body["remaining_minutes"], 30);
    app.clock.advance(Duration::minutes(31));
    assert_eq!(api.read("/v1/me/dnd").await["on"], false);
    let until = app.clock.now() + Duration::hours(2);
    let r = api
        .put("/v1/me/dnd", json!({"until": until.to_rfc3339()}))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["on"], true);
    assert_eq!(
        r.body["until"],
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for (body, field) in [
        (json!({"duration": 0}), "duration"),
        (json!({"duration": 10081}), "duration"),
        (json!({"duration": -5}), "duration"),
        (json!({"until": "soon"}), "until"),
        (
            json!({"until": until.to_rfc3339(), "duration": 5}),
            "duration",
        ),
        (json!({"on": false, "until": until.to_rfc3339()}), "until"),
        (json!({"on": "yes"}), "on"),
    ] {
        let r = api.put("/v1/me/dnd", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    let r = api.put("/v1/me/dnd", json!({"on": false})).await;
    assert_eq!(r.body["on"], false);
    assert_status(&api.put("/v1/me/dnd", json!({"on": true})).await, 200);
    let tag = api.get("/v1/me/dnd").await.etag.unwrap();
    let r = api
        .call(Method::DELETE, "/v1/me/dnd", None, Some("\"old\""))
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(api.read("/v1/me/dnd").await["on"], true);
    let r = api
        .call(Method::DELETE, "/v1/me/dnd", None, Some(&tag))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["on"], false);
    // DND never touched the persistent rule.
    assert_eq!(
        api.read("/v1/me/accept-rules/127").await["groups"],
        json!(["everybody"])
    );

    // Privacy.
    assert_eq!(api.read("/v1/me/privacy").await, json!({"on": false}));
    let r = api.put("/v1/me/privacy", json!({"on": true})).await;
    assert_status(&r, 200);
    assert_eq!(r.body, json!({"on": true}));
    assert_eq!(api.read("/v1/me").await["privacy"], true);
    assert_eq!(app.read(&app.alice, "account").await["privacy"], true);
    for body in [json!({}), json!({"on": "yes"}), json!({"on": true, "x": 1})] {
        let r = api.put("/v1/me/privacy", body).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.body["code"], "invalid_field");
    }
    let r = api
        .call(
            Method::PUT,
            "/v1/me/privacy",
            Some(json!({"on": false})),
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(api.read("/v1/me/privacy").await["on"], true);
}

// ----- aliases, ENUM -------------------------------------------------------------------------------

#[tokio::test]
async fn aliases_add_and_remove_own_and_enum() {
    let app = TestApp::spawn_with(|c| c.services.alias_limit = 2).await;
    let api = Api::new(&app, Some(&app.alice));
    let bob = Api::new(&app, Some(&app.bob));
    assert_eq!(
        api.read("/v1/me/aliases").await,
        json!({"aliases": [], "limit": 2})
    );
    let r = api.post("/v1/me/aliases", json!({"username": "Al"})).await;
    assert_status(&r, 201);
    assert_eq!(r.body, json!({"alias": "al@example.com"}));
    assert_eq!(
        r.location.as_deref(),
        Some("/v1/me/aliases/al%40example%2Ecom")
    );
    assert_eq!(
        api.read("/v1/me/aliases/al").await["alias"],
        "al@example.com"
    );
    assert_eq!(
        api.read("/v1/me/aliases/al%40example.com").await["alias"],
        "al@example.com"
    );
    assert_eq!(
        app.read(&app.alice, "aliases").await,
        json!(["al@example.com"])
    );
    // Taken (by anyone), malformed, over the limit.
    assert_problem(
        &bob.post("/v1/me/aliases", json!({"username": "al"})).await,
        409,
        "conflict",
        None,
    );
    assert_problem(
        &api.post("/v1/me/aliases", json!({"username": "bob"})).await,
        409,
        "conflict",
        None,
    );
    for body in [
        json!({"username": "-x"}),
        json!({"username": ""}),
        json!({}),
    ] {
        let r = api.post("/v1/me/aliases", body).await;
        assert_problem(&r, 400, "invalid_field", Some("username"));
    }
    assert_status(
        &api.post("/v1/me/aliases", json!({"username": "al2"})).await,
        201,
    );
    let r = api.post("/v1/me/aliases", json!({"username": "al3"})).await;
    assert_problem(&r, 409, "conflict", None);
    assert!(r.body["detail"].as_str().unwrap().contains("at most 2"));
    // Bob's alias is not alice's to see or remove.
    assert_status(
        &bob.post("/v1/me/aliases", json!({"username": "robert"}))
            .await,
        201,
    );
    assert_problem(
        &api.get("/v1/me/aliases/robert").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.delete("/v1/me/aliases/robert").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.delete("/v1/me/aliases/bob").await,
        404,
        "not_found",
        None,
    );
    assert_eq!(
        bob.read("/v1/me/aliases").await["aliases"],
        json!(["robert@example.com"])
    );
    assert_problem(
        &api.delete("/v1/me/aliases/x@other.example").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.get("/v1/me/aliases/a%20b").await,
        400,
        "invalid_field",
        Some("alias"),
    );
    // Remove own, with a stale tag first.
    let r = api
        .call(Method::DELETE, "/v1/me/aliases/al", None, Some("\"stale\""))
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_status(&api.delete("/v1/me/aliases/al").await, 204);
    assert_eq!(
        api.read("/v1/me/aliases").await["aliases"],
        json!(["al2@example.com"])
    );

    // ENUM numbers are read-only, provisioned by the operator.
    assert_eq!(api.read("/v1/me/enum").await, json!({"numbers": []}));
    app.cli_ok(&["enum", "add", "+31201234567", ALICE]);
    assert_eq!(
        api.read("/v1/me/enum").await,
        json!({"numbers": ["+31201234567"]})
    );
    assert_eq!(bob.read("/v1/me/enum").await, json!({"numbers": []}));
    assert_eq!(api.post("/v1/me/enum", json!({})).await.status, 405);
}

// ----- voicemail ----------------------------------------------------------------------------------

#[tokio::test]
async fn voicemail_enable_delivery_pin_disable() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let v = api.read("/v1/me/voicemail").await;
    assert_eq!(v["configured"], false);
    assert_eq!(v["enabled"], false);
    assert_eq!(v["mailbox"], ALICE);
    // Disabled: settings change only together with enabled: true.
    let r = api
        .patch("/v1/me/voicemail", json!({"delivery": "email_and_store"}))
        .await;
    assert_problem(&r, 409, "conflict", None);
    assert_problem(
        &api.put("/v1/me/voicemail", json!({})).await,
        400,
        "invalid_field",
        Some("enabled"),
    );
    assert_problem(
        &api.delete("/v1/me/voicemail").await,
        404,
        "not_found",
        None,
    );
    for (body, field) in [
        (json!({"enabled": true, "pin": "12"}), "pin"),
        (json!({"enabled": true, "pin": "12ab"}), "pin"),
        (json!({"enabled": true, "delivery": "fax"}), "delivery"),
        (json!({"enabled": true, "email": "nope"}), "email"),
        (json!({"enabled": false, "delivery": "email"}), "delivery"),
        (json!({"enabled": true, "greeting": "hi"}), "greeting"),
    ] {
        let r = api.put("/v1/me/voicemail", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    assert_eq!(api.read("/v1/me/voicemail").await["configured"], false);
    let r = api
        .put(
            "/v1/me/voicemail",
            json!({"enabled": true, "delivery": "email_and_store", "email": "vm@mail.example", "pin": "123456"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["delivery"], "email_and_store");
    assert_eq!(r.body["email"], "vm@mail.example");
    assert_eq!(r.body["pin_set"], true);
    assert!(
        !r.body.to_string().contains("123456"),
        "the PIN is never shown"
    );
    let v = app.read(&app.alice, "voicemail").await;
    assert_eq!(v["delivery"], "email_and_store");
    // PATCH while enabled keeps the rest.
    let r = api
        .patch("/v1/me/voicemail", json!({"delivery": "email"}))
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["email"], "vm@mail.example");
    assert_eq!(r.body["pin_set"], true);
    // Forwarding to the mailbox is allowed now.
    assert_status(
        &api.patch("/v1/me/diversions", json!({"FNOA": "<voice-mailbox>"}))
            .await,
        200,
    );
    let r = api
        .call(Method::DELETE, "/v1/me/voicemail", None, Some("\"stale\""))
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let r = api.delete("/v1/me/voicemail").await;
    assert_status(&r, 200);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["configured"], true);
    let r = api
        .patch("/v1/me/voicemail", json!({"enabled": true}))
        .await;
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["delivery"], "email");
}

// ----- phonebook ----------------------------------------------------------------------------------

#[tokio::test]
async fn phonebook_entries_with_groups() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let r = api
        .post(
            "/v1/me/phonebook",
            json!({"uri": "mom@example.org", "name": "Mom", "groups": ["Family"]}),
        )
        .await;
    assert_status(&r, 201);
    assert_eq!(
        r.body,
        json!({"uri": "sip:mom@example.org", "name": "Mom", "groups": ["family"]})
    );
    assert_eq!(
        r.location.as_deref(),
        Some("/v1/me/phonebook/sip%3Amom%40example%2Eorg")
    );
    assert_problem(
        &api.post(
            "/v1/me/phonebook",
            json!({"uri": "sip:mom@example.org", "groups": ["x"]}),
        )
        .await,
        409,
        "conflict",
        None,
    );
    for (body, field) in [
        (
            json!({"uri": "a b@example.org", "groups": ["family"]}),
            "uri",
        ),
        (
            json!({"uri": "x@example.org", "groups": ["nobody"]}),
            "groups",
        ),
        (json!({"uri": "x@example.org", "groups": []}), "groups"),
        (json!({"uri": "x@example.org"}), "groups"),
        (
            json!({"uri": "x@example.org", "groups": ["a"], "name": "n\u{1}"}),
            "name",
        ),
    ] {
        let r = api.post("/v1/me/phonebook", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    let r = api
        .put(
            "/v1/me/phonebook/sip:dad@example.org",
            json!({"name": "Dad", "groups": ["family", "work"]}),
        )
        .await;
    assert_status(&r, 201);
    let tag = r.etag.unwrap();
    let r = api
        .call(
            Method::PUT,
            "/v1/me/phonebook/dad@example.org",
            Some(json!({"name": "Father", "groups": ["family"]})),
            Some(&tag),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["name"], "Father");
    let r = api
        .call(
            Method::PUT,
            "/v1/me/phonebook/dad@example.org",
            Some(json!({"name": "Dad", "groups": ["family"]})),
            Some(&tag),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let book = api.read("/v1/me/phonebook").await;
    assert_eq!(book["entries"].as_array().unwrap().len(), 2);
    assert_eq!(book["entries"][0]["name"], "Father");
    assert_eq!(book["groups"], json!(["family"]));
    assert_eq!(
        api.read("/v1/me/accept-rules").await["phonebook_groups"],
        json!(["family"])
    );
    assert_eq!(
        api.read("/v1/me/phonebook/mom@example.org").await["name"],
        "Mom"
    );
    assert_status(
        &api.delete("/v1/me/phonebook/sip:mom@example.org").await,
        204,
    );
    assert_problem(
        &api.delete("/v1/me/phonebook/mom@example.org").await,
        404,
        "not_found",
        None,
    );
    assert_problem(
        &api.get("/v1/me/phonebook/mom@example.org").await,
        404,
        "not_found",
        None,
    );
    // Bob's phonebook is his own.
    let bob = Api::new(&app, Some(&app.bob));
    assert_eq!(bob.read("/v1/me/phonebook").await["entries"], json!([]));
    assert_problem(
        &bob.get("/v1/me/phonebook/dad@example.org").await,
        404,
        "not_found",
        None,
    );
}

// ----- calls, prepaid, history, usage ---------------------------------------------------------------

fn call(id: &str, caller: &str, callee: &str, start: DateTime<Utc>, secs: i64) -> CallInput {
    CallInput {
        call_id: id.into(),
        from_tag: "f".into(),
        to_tag: "t".into(),
        caller: caller.into(),
        callee: callee.into(),
        start: start.to_rfc3339(),
        stop: (start + Duration::seconds(secs)).to_rfc3339(),
        duration: Some(secs),
        status: Some(200),
        media: vec!["audio".into()],
        proxy_ip: "192.0.2.1".into(),
        price: Some("0.1000".into()),
    }
}

#[tokio::test]
async fn calls_pagination_filters_prepaid_history_and_usage() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let t0 = utc(2026, 11, 2, 10, 0);
    for i in 0..5 {
        let start = t0 + Duration::hours(i);
        let input = if i % 2 == 0 {
            call(
                &format!("c{i}"),
                "sip:alice@example.com",
                "sip:+31201234567@example.com",
                start,
                60,
            )
        } else {
            call(
                &format!("c{i}"),
                "sip:bob@example.com",
                "sip:alice@example.com",
                start,
                30,
            )
        };
        assert!(app.services.record_call(&input).await.unwrap());
    }
    // Pages of two, newest first, following the cursor.
    let mut seen = Vec::new();
    let mut path = "/v1/me/calls?limit=2".to_owned();
    loop {
        let page = api.read(&path).await;
        for c in page["calls"].as_array().unwrap() {
            seen.push(c["call_id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/me/calls?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c4", "c3", "c2", "c1", "c0"]);
    let page = api.read("/v1/me/calls?direction=placed").await;
    let ids: Vec<&str> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c4", "c2", "c0"]);
    assert_eq!(page["calls"][0]["direction"], "placed");
    assert_eq!(
        page["calls"][0]["remote_party"],
        "sip:+31201234567@example.com"
    );
    assert_eq!(page["calls"][0]["price"], "0.1000");
    assert_eq!(page["calls"][0]["start"], "2026-11-02T14:00:00Z");
    let received = api.read("/v1/me/calls?direction=received").await;
    assert_eq!(received["calls"][0]["price"], Value::Null);
    assert_eq!(received["calls"][0]["remote_party"], "sip:bob@example.com");
    let window = api
        .read("/v1/me/calls?from=2026-11-02T11:00:00Z&to=2026-11-02T13:00:00Z")
        .await;
    let ids: Vec<&str> = window["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c2", "c1"]);
    assert_eq!(window["next"], Value::Null);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("cursor=zz", "cursor"),
        ("cursor=6869", "cursor"),
        ("direction=sideways", "direction"),
        ("direction=", "direction"),
        ("days=3", "days"),
    ] {
        let r = api.get(&format!("/v1/me/calls?{query}")).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    // Bob sees his own calls only.
    let bob = Api::new(&app, Some(&app.bob));
    let page = bob.read("/v1/me/calls").await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 2);

    // Prepaid: postpaid first, then prepaid with a balance.
    assert_eq!(
        api.read("/v1/me/prepaid").await,
        json!({"prepaid": false, "balance": "0.0000", "currency": "EUR", "active_calls": []})
    );
    app.services
        .update_account(
            &alice_id(),
            &AccountUpdate {
                prepaid: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.services
        .topup(&alice_id(), Money::parse_for("amount", "12.5").unwrap(), "")
        .await
        .unwrap();
    let p = api.read("/v1/me/prepaid").await;
    assert_eq!(p["prepaid"], true);
    assert_eq!(p["balance"], "12.5000");
    let h = api.read("/v1/me/balance-history?limit=10").await;
    assert_eq!(h["entries"][0]["action"], "topup");
    assert_eq!(h["entries"][0]["value"], "+12.5000");
    assert_eq!(h["entries"][0]["balance"], "12.5000");
    assert_problem(
        &api.get("/v1/me/balance-history?limit=1001").await,
        400,
        "invalid_field",
        Some("limit"),
    );

    // Usage of a month, in the account's time zone.
    let u = api.read("/v1/me/usage/2026-11").await;
    assert_eq!(u["month"], "2026-11");
    assert_eq!(u["calls"], 3);
    assert_eq!(u["duration"], 180);
    assert_eq!(u["price"], "0.3000");
    assert_eq!(u["from"], "2026-11-01T00:00:00Z");
    assert_eq!(api.read("/v1/me/usage/2026-10").await["calls"], 0);
    assert_problem(
        &api.get("/v1/me/usage/2026-13").await,
        400,
        "invalid_field",
        Some("month"),
    );
    assert_problem(
        &api.get("/v1/me/usage/november").await,
        400,
        "invalid_field",
        Some("month"),
    );
}

// ----- certificates -------------------------------------------------------------------------------

fn make_csr(dir: &std::path::Path) -> String {
    let key = dir.join("csr.key");
    let csr = dir.join("csr.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=whoever-i-claim-to-be"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(csr).unwrap()
}

#[tokio::test]
async fn certificates_issue_from_csr_list_and_revoke_own() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let csr = make_csr(app.data_dir());
    let r = api
        .post("/v1/me/certificates", json!({"csr": csr, "days": 30}))
        .await;
    assert_status(&r, 201);
    let serial = r.body["certificate"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(r.location, Some(format!("/v1/me/certificates/{serial}")));
    assert_eq!(r.body["certificate"]["subject"], ALICE);
    assert_eq!(r.body["certificate"]["current"], false);
    assert!(
        r.body["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(!r.body.to_string().contains("PRIVATE KEY"));
    // The issued certificate names alice whatever the CSR claimed.
    let pem_path = app.data_dir().join("issued.pem");
    std::fs::write(&pem_path, r.body["pem"].as_str().unwrap()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(&pem_path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(ALICE));

    let list = api.read("/v1/me/certificates").await;
    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.iter().any(|c| c["current"] == true));
    assert_eq!(
        api.read(&format!("/v1/me/certificates/{serial}")).await["serial"],
        serial
    );

    for (body, field) in [
        (json!({"csr": "not a csr"}), "csr"),
        (
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}),
            "csr",
        ),
        (json!({"csr": csr, "days": 0}), "days"),
        (json!({"csr": csr, "days": 4000}), "days"),
        (json!({"days": 10}), "csr"),
    ] {
        let r = api.post("/v1/me/certificates", body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    assert_eq!(
        api.read("/v1/me/certificates").await["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Revoke own: stale tag first, then for real; again is idempotent.
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/me/certificates/{serial}"),
            None,
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let r = api.delete(&format!("/v1/me/certificates/{serial}")).await;
    assert_status(&r, 200);
    assert!(r.body["revoked_at"].is_string());
    assert_problem(
        &api.get("/v1/me/certificates/not-hex").await,
        400,
        "invalid_field",
        Some("serial"),
    );
    assert_problem(
        &api.delete("/v1/me/certificates/00ff").await,
        404,
        "not_found",
        None,
    );
}

/// Certificates carry a name — given, or what they were issued as and for which client — that
/// their owner can change, and the operator sees when each was last used: at once from the
/// server that saw it, in the store once the server writes its uses (a minute, or when it
/// stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_named_and_say_when_they_were_last_used() {
    let mut app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let csr = make_csr(app.data_dir());
    let r = api
        .post(
            "/v1/me/certificates",
            json!({"csr": csr, "name": "  build server "}),
        )
        .await;
    assert_status(&r, 201);
    assert_eq!(r.body["certificate"]["name"], "build server");
    let built = r.body["certificate"]["serial"].as_str().unwrap().to_owned();

    // Without a name: what it was issued as, and the client its User-Agent names.
    let client = app.client(Some(&app.alice));
    let named_by_client = client
        .post(format!("{}/v1/me/certificates", app.base))
        .header("user-agent", "curl/8.5.0")
        .json(&json!({"csr": csr}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(named_by_client).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["certificate"]["name"], "CSR for curl 8.5.0");
    let response = client
        .get(format!("{}/settings.phtml?action=crt", app.base))
        .header("user-agent", "curl/8.5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(format!(
            "{}/settings.phtml?action=crt&name=Kitchen%20phone",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list = api.read("/v1/me/certificates").await;
    // Issued at one instant of the test's clock: listed in serial order, so compared as a set.
    let mut names: Vec<&str> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("(none)"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "(none)",
            ".crt for curl 8.5.0",
            "CSR for curl 8.5.0",
            "Kitchen phone",
            "build server",
        ]
    );
    assert!(
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("last_used").is_none()),
        "the subscriber's list has no last use: {list}"
    );

    // Renaming: If-Match holds, the name is checked, another account's serial is not found.
    let path = format!("/v1/me/certificates/{built}");
    let r = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "x"})),
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let tag = api.get(&path).await.etag.unwrap();
    let r = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": " work laptop "})),
            Some(&tag),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["name"], "work laptop");
    assert_eq!(r.body["serial"], built);
    for body in [
        json!({"name": "   "}),
        json!({"name": "bell\u{7}"}),
        json!({"name": "x".repeat(65)}),
        json!({}),
        json!({"name": null}),
    ] {
        let r = api.patch(&path, body.clone()).await;
        assert_problem(&r, 400, "invalid_field", Some("name"));
    }
    let bobs = format!("/v1/me/certificates/{}", app.bob.record.serial);
    assert_problem(
        &api.patch(&bobs, json!({"name": "mine now"})).await,
        404,
        "not_found",
        None,
    );
    assert_eq!(api.read(&path).await["name"], "work laptop");
    let bob_list = Api::new(&app, Some(&app.bob))
        .read("/v1/me/certificates")
        .await;
    assert!(bob_list["certificates"][0]["name"].is_null(), "{bob_list}");
    let journal: Value = client
        .get(format!("{}/v1/me/journal?limit=1", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &journal["entries"][0];
    assert_eq!(entry["resource"], "certificate", "{journal}");
    assert_eq!(entry["old"], format!("{built} named \"build server\""));
    assert_eq!(entry["new"], format!("{built} named \"work laptop\""));

    last_uses_reach_the_operator_and_the_store(&mut app, &built).await;
}

/// Last used: the operator sees a use at once from the server that saw it; the store has it
/// once the server writes its uses (`built` is a certificate never used).
async fn last_uses_reach_the_operator_and_the_store(app: &mut TestApp, built: &str) {
    // Last used: the operator sees alice's use at once (this server saw it) ...
    let admin = app
        .services
        .issue_certificate(CertSubject::Admin("ops".into()), None, None)
        .await
        .unwrap();
    let alice_serial = app.alice.record.serial.to_string();
    let minute = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:00Z").to_string();
    let used_now = minute(app.clock.now());
    let operator = Api::new(app, Some(&admin));
    let last_used = |list: &Value, serial: &str| {
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["serial"] == serial)
            .unwrap()["last_used"]
            .clone()
    };
    let listed = operator
        .read(&format!("/v1/admin/accounts/{ALICE}/certificates"))
        .await;
    assert_eq!(last_used(&listed, &alice_serial), used_now.as_str());
    assert_eq!(
        last_used(&listed, built),
        Value::Null,
        "issued from a CSR, never used"
    );
    // ... the store only once the server writes them (the CLI reads the store alone).
    let cli_line = |app: &TestApp, who: &str, serial: &str| {
        app.cli_ok(&["cert", "list", who])
            .lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_else(|| panic!("no {serial}"))
            .to_owned()
    };
    let cli_minute = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    assert!(
        !cli_line(app, ALICE, &alice_serial).contains(&cli_minute(app.clock.now())),
        "written before the server wrote its uses"
    );
    assert!(app.services.record_certificate_uses().await.unwrap() >= 2);
    let line = cli_line(app, ALICE, &alice_serial);
    assert!(line.contains(&cli_minute(app.clock.now())), "{line}");
    assert!(
        line.ends_with("-"),
        "alice's first certificate has no name: {line}"
    );
    assert!(cli_line(app, ALICE, built).ends_with("work laptop"));
    assert_eq!(app.services.record_certificate_uses().await.unwrap(), 0);

    // A use an hour later, written when the server stops.
    app.clock.advance(Duration::hours(1));
    assert_eq!(app.action(&app.bob, "action=account").await.0, 200);
    let bob_serial = app.bob.record.serial.to_string();
    assert!(!cli_line(app, BOB, &bob_serial).contains(&cli_minute(app.clock.now())));
    app.server.take().unwrap().stop().await;
    let line = cli_line(app, BOB, &bob_serial);
    assert!(line.contains(&cli_minute(app.clock.now())), "{line}");
}

// ----- isolation ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_subscriber_never_reaches_another_account() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let bob_serial = app.bob.record.serial.to_string();
    // Revoke bob's serial as alice: 404, and bob's certificate still works.
    let r = api
        .delete(&format!("/v1/me/certificates/{bob_serial}"))
        .await;
    assert_problem(&r, 404, "not_found", None);
    assert_problem(
        &api.get(&format!("/v1/me/certificates/{bob_serial}")).await,
        404,
        "not_found",
        None,
    );
    let bob = Api::new(&app, Some(&app.bob));
    assert_eq!(bob.read("/v1/me").await["address"], BOB);
    assert!(bob.read("/v1/me/certificates").await["certificates"][0]["revoked_at"].is_null());
    // Every read is the caller's own account.
    assert_status(&bob.put("/v1/me/privacy", json!({"on": true})).await, 200);
    assert_eq!(api.read("/v1/me/privacy").await["on"], false);
    assert!(
        api.read("/v1/me/certificates").await["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["subject"] == ALICE)
    );
    // Admin and service certificates are not subscribers.
    for subject in [
        CertSubject::Admin("ops".into()),
        CertSubject::Service("proxy".into()),
    ] {
        let cert = app
            .services
            .issue_certificate(subject, None, None)
            .await
            .unwrap();
        let other = Api::new(&app, Some(&cert));
        assert_problem(&other.get("/v1/me").await, 403, "forbidden", None);
        assert_problem(
            &other.put("/v1/me/privacy", json!({"on": true})).await,
            403,
            "forbidden",
            None,
        );
    }
    // A revoked certificate stops at once.
    app.services
        .revoke_certificate(&app.bob.record.serial)
        .await
        .unwrap();
    assert_problem(&bob.get("/v1/me").await, 403, "forbidden", None);
}

// ----- ETag race ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_race_one_write_wins_the_other_gets_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let second = app
        .services
        .issue_certificate(CertSubject::Account(alice_id()), None, None)
        .await
        .unwrap();
    let one = Api::new(&app, Some(&app.alice));
    let two = Api::new(&app, Some(&second));

    // Sequential: both read the same tag; the first write wins, the second is 412.
    let t1 = one.get("/v1/me/diversions").await.etag.unwrap();
    let t2 = two.get("/v1/me/diversions").await.etag.unwrap();
    assert_eq!(t1, t2);
    let r = one
        .call(
            Method::PUT,
            "/v1/me/diversions",
            Some(json!({"FUNC": "carol"})),
            Some(&t1),
        )
        .await;
    assert_status(&r, 200);
    let winner = r.body.clone();
    let r = two
        .call(
            Method::PUT,
            "/v1/me/diversions",
            Some(json!({"FUNC": "dave"})),
            Some(&t2),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(
        r.etag.as_deref(),
        one.get("/v1/me/diversions").await.etag.as_deref()
    );
    assert_eq!(one.read("/v1/me/diversions").await, winner);
    let entries = journal(&one).await;
    assert!(entries.iter().any(|e| e["new"] == "carol@example.com"));
    assert!(
        !entries.iter().any(|e| e["new"] == "dave@example.com"),
        "the loser wrote nothing"
    );

    // Concurrent: many writers with the same tag, exactly one wins.
    let tag = one.get("/v1/me/phonebook").await.etag.unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = if i % 2 == 0 {
            app.client(Some(&app.alice))
        } else {
            app.client(Some(&second))
        };
        let url = format!("{}/v1/me/phonebook", app.base);
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("if-match", tag)
                .json(&json!({"uri": format!("sip:friend{i}@example.org"), "groups": ["friends"]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 412, 412, 412, 412, 412], "{statuses:?}");
    assert_eq!(
        one.read("/v1/me/phonebook").await["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ----- journal ------------------------------------------------------------------------------------

#[tokio::test]
async fn writes_are_journaled_through_the_v1_door() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    assert_status(
        &api.patch("/v1/me", json!({"timezone": "Europe/Berlin"}))
            .await,
        200,
    );
    assert_status(
        &api.patch("/v1/me/diversions", json!({"FUNC": "carol"}))
            .await,
        200,
    );
    assert_status(&api.put("/v1/me/privacy", json!({"on": true})).await, 200);
    assert_status(&api.put("/v1/me/dnd", json!({"duration": 10})).await, 200);
    assert_status(
        &api.put(
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": ["everybody"]}),
        )
        .await,
        201,
    );
    assert_status(
        &api.post("/v1/me/reject-rules", json!({"pattern": "sip:spam@%"}))
            .await,
        201,
    );
    assert_status(
        &api.post("/v1/me/aliases", json!({"username": "ally"}))
            .await,
        201,
    );
    assert_status(
        &api.post(
            "/v1/me/phonebook",
            json!({"uri": "mom@example.org", "groups": ["family"]}),
        )
        .await,
        201,
    );
    assert_status(
        &api.put("/v1/me/voicemail", json!({"enabled": true, "pin": "4321"}))
            .await,
        200,
    );
    // A refused write is not journaled.
    assert_eq!(
        api.patch("/v1/me/diversions", json!({"FUNC": "a b"}))
            .await
            .status,
        400
    );

    let entries = journal(&api).await;
    let serial = app.alice.record.serial.to_string();
    for resource in [
        "account.timezone",
        "diversions.FUNC",
        "privacy",
        "dnd",
        "accept.31",
        "reject",
        "alias",
        "phonebook",
        "voicemail",
        "voicemail.pin",
    ] {
        let e = entries
            .iter()
            .find(|e| e["resource"] == resource)
            .unwrap_or_else(|| panic!("no {resource} in {entries:?}"));
        assert_eq!(e["door"], "v1", "{e}");
        assert_eq!(e["actor"], format!("certificate {serial}"), "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
    }
    let tz = entries
        .iter()
        .find(|e| e["resource"] == "account.timezone")
        .unwrap();
    assert_eq!(tz["old"], "UTC");
    assert_eq!(tz["new"], "Europe/Berlin");
    let pin = entries
        .iter()
        .find(|e| e["resource"] == "voicemail.pin")
        .unwrap();
    assert_eq!(pin["new"], "changed");
    assert!(!serde_json::to_string(&entries).unwrap().contains("4321"));
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["resource"] == "diversions.FUNC")
            .count(),
        1
    );
    // The journal pages with a cursor.
    let page = api.read("/v1/me/journal?limit=2").await;
    let next = page["next"].as_i64().unwrap();
    let older = api
        .read(&format!("/v1/me/journal?limit=2&before={next}"))
        .await;
    assert!(older["entries"][0]["id"].as_i64().unwrap() < next);
    assert_problem(
        &api.get("/v1/me/journal?limit=0").await,
        400,
        "invalid_field",
        Some("limit"),
    );
    assert_problem(
        &api.get("/v1/me/journal?before=x").await,
        400,
        "invalid_field",
        Some("before"),
    );
}

// ----- routing explain ----------------------------------------------------------------------------

#[tokio::test]
async fn explain_follows_the_account_time_zone_across_dst() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    assert_status(
        &api.patch("/v1/me", json!({"timezone": "America/New_York"}))
            .await,
        200,
    );
    assert_status(
        &api.put(
            "/v1/me/accept-rules/31",
            json!({"start": "09:00", "stop": "17:00", "groups": ["family"]}),
        )
        .await,
        201,
    );
    assert_status(
        &api.post(
            "/v1/me/phonebook",
            json!({"uri": "mom@example.org", "groups": ["family"]}),
        )
        .await,
        201,
    );
    let explain = |caller: &str, at: &str| {
        format!(
            "/v1/me/routing/explain?caller={}&at={}",
            enc(caller),
            enc(at)
        )
    };
    // 13:30 UTC is 08:30 EST on Friday 6 March 2026 (outside the window: accepted) and 09:30 EDT
    // on Monday 9 March 2026, after the change to summer time (inside: refused).
    let before = api
        .read(&explain("sip:stranger@example.net", "2026-03-06T13:30:00Z"))
        .await;
    assert_eq!(before["timezone"], "America/New_York");
    assert_eq!(before["local_time"], "2026-03-06T08:30:00-05:00");
    assert_eq!(before["zone_abbreviation"], "EST");
    assert_eq!(before["outcome"]["action"], "ring");
    assert_eq!(before["outcome"]["seconds"], 35);
    assert!(
        before["path"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("no accept rule window covers Fri 08:30 EST")),
        "{before}"
    );
    let after = api
        .read(&explain("sip:stranger@example.net", "2026-03-09T13:30:00Z"))
        .await;
    assert_eq!(after["local_time"], "2026-03-09T09:30:00-04:00");
    assert_eq!(after["zone_abbreviation"], "EDT");
    assert_eq!(
        after["outcome"],
        json!({"action": "reject", "code": 480, "reason": "Temporarily Unavailable"})
    );
    // The same wall-clock time on both sides of the change: 09:30 local is inside both days.
    let est = api
        .read(&explain("sip:stranger@example.net", "2026-03-06T14:30:00Z"))
        .await;
    assert_eq!(est["local_time"], "2026-03-06T09:30:00-05:00");
    assert_eq!(est["outcome"]["action"], "reject");
    // A family member is accepted in the window; anonymous is not.
    let mom = api
        .read(&explain("mom@example.org", "2026-03-09T13:30:00Z"))
        .await;
    assert_eq!(mom["outcome"]["action"], "ring");
    let anon = api
        .read(&explain("anonymous", "2026-03-09T13:30:00Z"))
        .await;
    assert_eq!(anon["caller"], "anonymous");
    assert_eq!(anon["outcome"]["code"], 480);
    // FUNV catches what the rule refuses; Diversion reason time-of-day.
    assert_status(
        &api.patch("/v1/me/diversions", json!({"FUNV": "carol"}))
            .await,
        200,
    );
    let fwd = api
        .read(&explain("sip:stranger@example.net", "2026-03-09T13:30:00Z"))
        .await;
    assert_eq!(
        fwd["outcome"],
        json!({"action": "forward", "condition": "FUNV", "destination": {"kind": "uri", "uri": "sip:carol@example.com"}, "reason": "time-of-day"})
    );
    // Not registered, busy, DND; `at` defaults to now.
    let r = api
        .read("/v1/me/routing/explain?caller=mom%40example.org&registered=false&at=2026-03-07T15:00:00Z")
        .await;
    assert_eq!(r["outcome"]["code"], 480);
    assert!(
        r["path"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "no device is registered")
    );
    let r = api
        .read("/v1/me/routing/explain?caller=mom%40example.org&busy=true&at=2026-03-07T15:00:00Z")
        .await;
    assert_eq!(r["outcome"]["code"], 486);
    assert_status(&api.put("/v1/me/dnd", json!({})).await, 200);
    let r = api
        .read("/v1/me/routing/explain?caller=mom%40example.org")
        .await;
    assert_eq!(r["outcome"]["action"], "forward");
    assert_eq!(r["outcome"]["reason"], "do-not-disturb");
    assert!(
        r["path"][1].as_str().unwrap().contains("Do Not Disturb"),
        "{r}"
    );
    assert_status(
        &api.patch("/v1/me/diversions", json!({"FUNV": null})).await,
        200,
    );
    let r = api
        .read("/v1/me/routing/explain?caller=mom%40example.org")
        .await;
    assert_eq!(r["outcome"]["code"], 486);
    // Refusals.
    for (query, field) in [
        ("", "caller"),
        ("caller=", "caller"),
        ("caller=stranger", "caller"),
        ("caller=anonymous&at=noon", "at"),
        ("caller=anonymous&registered=maybe", "registered"),
        ("caller=anonymous&busy=2", "busy"),
        ("caller=anonymous&when=now", "when"),
    ] {
        let r = api.get(&format!("/v1/me/routing/explain?{query}")).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
}

// ----- the service route --------------------------------------------------------------------------

#[tokio::test]
async fn service_route_answers_proxies_with_target_reason_and_timeout() {
    let app = TestApp::spawn().await;
    let proxy_cert = app
        .services
        .issue_certificate(CertSubject::Service("proxy1".into()), None, None)
        .await
        .unwrap();
    let proxy = Api::new(&app, Some(&proxy_cert));
    let alice = Api::new(&app, Some(&app.alice));
    let ask = |body: Value| proxy.post("/v1/service/route", body);

    let r = ask(json!({"callee": "sip:alice@example.com", "caller": "sip:bob@example.com", "registered": true, "busy": false})).await;
    assert_status(&r, 200);
    assert_eq!(r.body["account"], ALICE);
    assert_eq!(r.body["action"], "ring");
    assert_eq!(r.body["target"], "sip:alice@example.com");
    assert_eq!(r.body["no_answer_timeout"], 35);
    assert_eq!(r.body["reason"], Value::Null);
    assert_eq!(r.body["outcome"]["action"], "ring");

    assert_status(
        &alice
            .patch(
                "/v1/me/diversions",
                json!({"FUNC": "carol@example.net", "no_answer_timeout": 20}),
            )
            .await,
        200,
    );
    assert_status(
        &alice
            .post("/v1/me/aliases", json!({"username": "ali"}))
            .await,
        201,
    );
    let r = ask(json!({"account": "ali@example.com", "caller": "anonymous", "registered": false, "busy": false, "at": "2026-03-09T13:30:00Z"})).await;
    assert_status(&r, 200);
    assert_eq!(r.body["account"], ALICE);
    assert_eq!(r.body["action"], "forward");
    assert_eq!(r.body["target"], "sip:carol@example.net");
    assert_eq!(r.body["reason"], "unconditional");
    assert_eq!(r.body["no_answer_timeout"], 20);
    // Reject rules answer with the SIP code.
    assert_status(
        &alice
            .patch(
                "/v1/me/diversions",
                json!({"FUNC": null, "FBUS": "<mobile-number>"}),
            )
            .await,
        400,
    );
    assert_status(
        &alice
            .post("/v1/me/reject-rules", json!({"pattern": "sip:spam@%"}))
            .await,
        201,
    );
    assert_status(
        &alice
            .patch("/v1/me/diversions", json!({"FUNC": null}))
            .await,
        200,
    );
    let r = ask(json!({"callee": "alice@example.com", "caller": "sip:spam@example.net", "registered": true, "busy": false})).await;
    assert_eq!(r.body["action"], "reject");
    assert_eq!(r.body["code"], 603);
    assert_eq!(r.body["target"], Value::Null);
    // Busy with FBUS set: forward with user-busy.
    assert_status(
        &alice
            .patch("/v1/me/diversions", json!({"FBUS": "dave@example.net"}))
            .await,
        200,
    );
    let r = ask(json!({"callee": "alice@example.com", "caller": "sip:bob@example.com", "registered": true, "busy": true})).await;
    assert_eq!(r.body["action"], "forward");
    assert_eq!(r.body["reason"], "user-busy");
    assert_eq!(r.body["target"], "sip:dave@example.net");

    // Refusals.
    for (body, field) in [
        (
            json!({"caller": "anonymous", "registered": true, "busy": false}),
            "account",
        ),
        (
            json!({"account": ALICE, "callee": ALICE, "caller": "anonymous", "registered": true, "busy": false}),
            "callee",
        ),
        (
            json!({"account": "alice", "caller": "anonymous", "registered": true, "busy": false}),
            "account",
        ),
        (
            json!({"account": ALICE, "caller": "nobody", "registered": true, "busy": false}),
            "caller",
        ),
        (
            json!({"account": ALICE, "caller": "anonymous", "busy": false}),
            "registered",
        ),
        (
            json!({"account": ALICE, "caller": "anonymous", "registered": "yes", "busy": false}),
            "registered",
        ),
        (
            json!({"account": ALICE, "caller": "anonymous", "registered": true, "busy": false, "at": "now"}),
            "at",
        ),
    ] {
        let r = ask(body).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    let r = ask(json!({"account": "nobody@example.com", "caller": "anonymous", "registered": true, "busy": false})).await;
    assert_problem(&r, 404, "not_found", None);
    let r = ask(json!({"account": "someone@elsewhere.example", "caller": "anonymous", "registered": true, "busy": false})).await;
    assert_problem(&r, 404, "not_found", None);
    // A subscriber certificate is refused; so is none.
    let r = alice
        .post(
            "/v1/service/route",
            json!({"account": ALICE, "caller": "anonymous", "registered": true, "busy": false}),
        )
        .await;
    assert_problem(&r, 403, "forbidden", None);
    let r = Api::new(&app, None)
        .post(
            "/v1/service/route",
            json!({"account": ALICE, "caller": "anonymous", "registered": true, "busy": false}),
        )
        .await;
    assert_eq!(r.status, 401);
}

// ----- OpenAPI ------------------------------------------------------------------------------------

/// Every /v1/me path served, with its methods.
const SERVED: &[(&str, &[&str])] = &[
    ("/v1/me", &["get", "patch"]),
    ("/v1/me/diversions", &["get", "put", "patch"]),
    ("/v1/me/diversions/{condition}", &["get", "put", "delete"]),
    ("/v1/me/accept-rules", &["get"]),
    ("/v1/me/accept-rules/{days}", &["get", "put", "delete"]),
    ("/v1/me/accept-rules/temporary", &["get", "put", "delete"]),
    ("/v1/me/reject-rules", &["get", "post"]),
    ("/v1/me/reject-rules/{pattern}", &["get", "delete"]),
    ("/v1/me/dnd", &["get", "put", "delete"]),
    ("/v1/me/privacy", &["get", "put"]),
    ("/v1/me/aliases", &["get", "post"]),
    ("/v1/me/aliases/{alias}", &["get", "delete"]),
    ("/v1/me/enum", &["get"]),
    ("/v1/me/calls", &["get"]),
    ("/v1/me/prepaid", &["get"]),
    ("/v1/me/devices", &["get"]),
    ("/v1/me/balance-history", &["get"]),
    ("/v1/me/usage/{month}", &["get"]),
    ("/v1/me/voicemail", &["get", "put", "patch", "delete"]),
    ("/v1/me/phonebook", &["get", "post"]),
    ("/v1/me/phonebook/{uri}", &["get", "put", "delete"]),
    ("/v1/me/certificates", &["get", "post"]),
    ("/v1/me/certificates/{serial}", &["get", "delete"]),
    ("/v1/me/journal", &["get"]),
    ("/v1/me/routing/explain", &["get"]),
    ("/v1/me/forwarding-rules", &["get", "put", "post"]),
    ("/v1/me/forwarding-rules/{id}", &["get", "put", "delete"]),
    ("/v1/me/forwarding-sets", &["get", "put"]),
];

#[tokio::test]
async fn openapi_document_lists_every_route_with_mutual_tls() {
    let app = TestApp::spawn().await;
    // Served without a certificate.
    let r = Api::new(&app, None).get("/v1/openapi.json").await;
    assert_status(&r, 200);
    assert!(r.content_type.starts_with("application/json"));
    let doc = r.body;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(
        doc["components"]["securitySchemes"]["mutualTLS"]["type"],
        "mutualTLS"
    );
    assert_eq!(doc["security"], json!([{"mutualTLS": []}]));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in SERVED {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing");
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                codes.iter().any(|c| c.starts_with('2')),
                "{m} {path}: {codes:?}"
            );
            assert!(codes.iter().any(|c| *c == "403"), "{m} {path}: {codes:?}");
            if *m != "get" {
                assert!(codes.iter().any(|c| *c == "412"), "{m} {path}: {codes:?}");
            }
        }
    }
    // Nothing under /v1/me is served that the document does not list.
    let listed: Vec<&String> = paths.keys().filter(|p| p.starts_with("/v1/me")).collect();
    assert_eq!(listed.len(), SERVED.len(), "{listed:?}");
    assert!(paths["/v1/service/route"]["post"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["type"],
        "string"
    );
    // Every listed GET without path parameters answers as documented.
    let api = Api::new(&app, Some(&app.alice));
    for (path, methods) in SERVED {
        if methods.contains(&"get") && !path.contains('{') && !path.ends_with("explain") {
            let r = api.get(path).await;
            assert_status(&r, 200);
            let schema = &paths[*path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"];
            let name = schema.as_str().unwrap().rsplit('/').next().unwrap();
            let required = doc["components"]["schemas"][name]["required"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for key in required {
                assert!(
                    r.body.get(key.as_str().unwrap()).is_some(),
                    "{path}: {key} missing in {:?}",
                    r.body
                );
            }
        }
    }
}

// ----- problems, rate limits ----------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_and_paths_are_problem_documents() {
    let app = TestApp::spawn().await;
    let api = Api::new(&app, Some(&app.alice));
    let raw = |method: Method, path: &str, body: &'static str| {
        api.client
            .request(method, format!("{}{path}", api.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw(Method::PUT, "/v1/me/privacy", "{not json")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");
    let r = raw(Method::PUT, "/v1/me/privacy", "{\"on\": true} trailing")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = raw(Method::PUT, "/v1/me/privacy", "[]").await.unwrap();
    assert_eq!(r.status(), 400);
    let big = format!("{{\"pattern\": \"{}\"}}", "a".repeat(70 * 1024));
    let r = api
        .client
        .post(format!("{}/v1/me/reject-rules", api.base))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "body_too_large");
    let r = api.get("/v1/me/phonebook/%FF").await;
    assert_problem(&r, 400, "invalid_field", Some("uri"));
    assert_eq!(api.get("/v1/me/nothing-here").await.status, 404);
}

#[tokio::test]
async fn every_v1_route_is_rate_limited() {
    let limits = certificate_limits((1.0, 3.0), (0.5, 1.0));
    let app = TestApp::spawn_with(|c| c.rate_limits = Some(limits)).await;
    let api = Api::new(&app, Some(&app.alice));
    for path in ["/v1/me", "/v1/me/dnd", "/v1/me/calls"] {
        assert_status(&api.get(path).await, 200);
    }
    let r = api.get("/v1/me/enum").await;
    assert_problem(&r, 429, "rate_limited", None);
    let limited = api
        .client
        .get(format!("{}/v1/me/phonebook", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    // Writes have their own budget; a refused write changes nothing.
    assert_status(&api.put("/v1/me/privacy", json!({"on": true})).await, 200);
    let r = api.put("/v1/me/privacy", json!({"on": false})).await;
    assert_problem(&r, 429, "rate_limited", None);
    app.clock.advance(Duration::seconds(5));
    assert_eq!(api.read("/v1/me/privacy").await["on"], true);
    // Bob has his own budget.
    assert_status(&Api::new(&app, Some(&app.bob)).get("/v1/me").await, 200);
}
