//! Forwarding rules with conditions (issue 19) over the real server: `/v1/me/forwarding-rules`
//! and `/v1/me/forwarding-sets` (create, read, replace, delete, reorder, ETags and `If-Match`),
//! refusals that name the rule and the field and change nothing (loops shown as their chain),
//! warnings for rules that can never apply, the seed view beside the rules, the journal, and
//! the decision through `explain` and the service route.

use serde_json::{Value, json};

use crate::helpers::*;

/// The rules' ids, in order.
fn ids(rules: &Value) -> Vec<u64> {
    rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

async fn setup(app: &TestApp) -> Api {
    let alice = Api::new(app, Some(&app.alice));
    let r = alice
        .patch(
            "/v1/me",
            json!({"timezone": "Europe/Amsterdam", "mobile": "+31612345678", "no_answer_timeout": 20}),
        )
        .await;
    assert_status(&r, 200);
    alice
}

#[tokio::test]
async fn rules_and_sets_crud_order_etags_and_the_seed_view() {
    let app = TestApp::spawn().await;
    let alice = setup(&app).await;
    assert_eq!(
        alice.read("/v1/me/forwarding-rules").await,
        json!({"rules": []})
    );

    // The seed's condition is a simple rule, with the condition's id.
    app.read(&app.alice, "set_diversions&FNOA=bob").await;
    let rules = alice.read("/v1/me/forwarding-rules").await;
    assert_eq!(ids(&rules), [4]);
    assert_eq!(rules["rules"][0]["trigger"], "no_answer");
    assert_eq!(
        rules["rules"][0]["steps"],
        json!([{"targets": ["sip:bob@example.com"], "ring_seconds": 35}])
    );
    let seed = app.read(&app.alice, "diversions").await;
    assert_eq!(seed["FNOA"], "bob@example.com");
    assert!(seed.get("rules").is_none(), "{seed}");

    // Sets, then rules naming them: at night everything to the mobile (first), on 503 a hunt
    // list (last).
    let sets = json!({
        "time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}},
        "caller_sets": {"family": {"mode": "allow", "members": ["group:family"]}},
        "called_sets": {}
    });
    let r = alice.put("/v1/me/forwarding-sets", sets.clone()).await;
    assert_status(&r, 200);
    assert_eq!(r.body, sets);
    let r = alice
        .post(
            "/v1/me/forwarding-rules?position=0",
            json!({"trigger": "unconditional", "time": "nights",
                   "steps": [{"targets": ["<mobile-number>"]}]}),
        )
        .await;
    assert_status(&r, 201);
    assert_eq!(r.location.as_deref(), Some("/v1/me/forwarding-rules/6"));
    assert_eq!(r.body["id"], 6);
    let r = alice
        .post(
            "/v1/me/forwarding-rules",
            json!({"trigger": "response", "codes": [503],
                   "steps": [{"targets": ["bob"], "ring_seconds": 15}, {"targets": ["carol@example.net"]}]}),
        )
        .await;
    assert_status(&r, 201);
    assert_eq!(r.body["id"], 7);
    let rules = alice.read("/v1/me/forwarding-rules").await;
    assert_eq!(ids(&rules), [6, 4, 7]);

    // The seed view: each condition's first simple rule, and that there are more rules.
    let seed = app.read(&app.alice, "diversions").await;
    assert_eq!(seed["FNOA"], "bob@example.com");
    assert_eq!(seed["FUNC"], Value::Null);
    assert_eq!(seed["rules"], true);
    assert_eq!(alice.read("/v1/me/diversions").await["rules"], true);
    // The seed's change replaces its simple rule only; a new condition goes last.
    app.read(
        &app.alice,
        "set_diversions&FNOA=carol@example.net&FUNC=dave@example.net",
    )
    .await;
    let rules = alice.read("/v1/me/forwarding-rules").await;
    assert_eq!(ids(&rules), [6, 4, 7, 1]);
    assert_eq!(
        rules["rules"][1]["steps"][0]["targets"][0],
        "sip:carol@example.net"
    );
    assert_eq!(rules["rules"][0]["time"], "nights");

    // One rule: read, replace with If-Match (stale: 412, nothing changed), delete.
    let r = alice.get("/v1/me/forwarding-rules/7").await;
    assert_status(&r, 200);
    let tag = r.etag.clone().unwrap();
    let replaced = json!({"trigger": "response", "codes": [503, 408],
                          "steps": [{"targets": ["bob"], "ring_seconds": 20}]});
    let r = alice
        .call(
            reqwest::Method::PUT,
            "/v1/me/forwarding-rules/7",
            Some(replaced.clone()),
            Some("\"stale\""),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    let r = alice
        .call(
            reqwest::Method::PUT,
            "/v1/me/forwarding-rules/7",
            Some(replaced),
            Some(&tag),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["codes"], json!([408, 503]));
    assert_eq!(r.body["id"], 7);
    assert_ne!(r.etag.as_deref(), Some(tag.as_str()));
    assert_status(&alice.delete("/v1/me/forwarding-rules/1").await, 204);
    assert_problem(
        &alice.get("/v1/me/forwarding-rules/1").await,
        404,
        "not_found",
        None,
    );
    assert_eq!(
        app.read(&app.alice, "diversions").await["FUNC"],
        Value::Null
    );

    // Reorder: the whole list in a new order, under If-Match; a catch-all first makes the
    // others warnings, not refusals.
    let r = alice.get("/v1/me/forwarding-rules").await;
    let tag = r.etag.clone().unwrap();
    let mut list: Vec<Value> = r.body["rules"].as_array().unwrap().clone();
    list.reverse();
    list.insert(
        0,
        json!({"trigger": "unconditional", "steps": [{"targets": ["erin@example.net"]}]}),
    );
    let r = alice
        .call(
            reqwest::Method::PUT,
            "/v1/me/forwarding-rules",
            Some(json!({"rules": list})),
            Some(&tag),
        )
        .await;
    assert_status(&r, 200);
    // The new simple rule gets its condition's seed id (1, free again).
    assert_eq!(ids(&r.body), [1, 7, 4, 6]);
    for i in 1..4 {
        let w = r.body["rules"][i]["warnings"][0].as_str().unwrap();
        assert!(w.contains("can never apply: rules[0]"), "{w}");
    }
    assert!(r.body["rules"][0].get("warnings").is_none());
    // A list read, warnings and all, can be sent back as it is: nothing changes.
    let again = alice
        .call(
            reqwest::Method::PUT,
            "/v1/me/forwarding-rules",
            Some(r.body.clone()),
            r.etag.as_deref(),
        )
        .await;
    assert_status(&again, 200);
    assert_eq!(again.body, r.body);
    assert_eq!(again.etag, r.etag);
    // The simple FUNC rule is now first: the seed view shows it.
    assert_eq!(
        app.read(&app.alice, "diversions").await["FUNC"],
        "erin@example.net"
    );

    // Each change is journalled through the v1 door, old → new per rule, and the order.
    assert_journalled(&alice).await;
}

/// The journal of the changes above.
async fn assert_journalled(alice: &Api) {
    let journal = alice.read("/v1/me/journal?limit=100").await;
    let entries = journal["entries"].as_array().unwrap();
    let resources: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    for want in [
        "forwarding.rules.6",
        "forwarding.rules.7",
        "forwarding.rules.1",
        "forwarding.order",
        "forwarding.time_sets.nights",
        "forwarding.caller_sets.family",
    ] {
        assert!(resources.contains(&want), "{want} in {resources:?}");
    }
    let deleted = entries
        .iter()
        .find(|e| e["resource"] == "forwarding.rules.1" && e["new"].is_null())
        .unwrap();
    assert!(
        deleted["old"]
            .as_str()
            .unwrap()
            .contains("dave@example.net")
    );
}

#[tokio::test]
async fn refusals_name_the_rule_and_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let alice = setup(&app).await;
    let bob = Api::new(&app, Some(&app.bob));
    let r = alice
        .put(
            "/v1/me/forwarding-sets",
            json!({"time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}}}),
        )
        .await;
    assert_status(&r, 200);
    let r = alice
        .post(
            "/v1/me/forwarding-rules",
            json!({"trigger": "busy", "time": "nights", "steps": [{"targets": ["carol@example.net"]}]}),
        )
        .await;
    assert_status(&r, 201);
    // Bob forwards everything to alice: a rule of alice's to bob would loop.
    app.read(&app.bob, "set_diversions&FUNC=alice").await;

    let before = (
        alice.read("/v1/me/forwarding-rules").await,
        alice.read("/v1/me/forwarding-sets").await,
        app.read(&app.alice, "diversions").await,
    );
    let step = |targets: Value| json!([{"targets": targets}]);
    for (body, field, detail) in [
        (
            json!({"trigger": "busy", "steps": step(json!(["alice"]))}),
            "rules[1].steps[0].targets[0]",
            "itself",
        ),
        (
            json!({"trigger": "no_answer", "callers": "x", "steps": step(json!(["carol@example.net", "bob"]))}),
            "rules[1].callers",
            "does not exist",
        ),
        (
            json!({"trigger": "no_answer", "steps": [{"targets": ["carol@example.net"]}, {"targets": ["bob"]}]}),
            "rules[1].steps[1].targets[0]",
            "loop: alice@example.com → bob@example.com → alice@example.com",
        ),
        (
            json!({"trigger": "no_answer", "steps": step(json!(["<voice-mailbox>"]))}),
            "rules[1].steps[0].targets[0]",
            "voicemail",
        ),
        (
            json!({"trigger": "no_answer", "steps": [{"targets": ["carol@example.net"], "ring_seconds": 400}]}),
            "rules[1].steps[0].ring_seconds",
            "5 to 300",
        ),
        (
            json!({"trigger": "response", "codes": [200], "steps": step(json!(["carol@example.net"]))}),
            "rules[1].codes",
            "200",
        ),
        (
            json!({"trigger": "sometimes", "steps": step(json!(["carol@example.net"]))}),
            "rules[1].trigger",
            "sometimes",
        ),
        (
            json!({"trigger": "busy", "called": "office", "steps": step(json!(["carol@example.net"]))}),
            "rules[1].called",
            "does not exist",
        ),
        (
            json!({"id": 3, "trigger": "busy", "steps": step(json!(["carol@example.net"]))}),
            "id",
            "server",
        ),
    ] {
        let r = alice.post("/v1/me/forwarding-rules", body.clone()).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
        let d = r.body["detail"].as_str().unwrap();
        assert!(d.contains(detail), "{body}: {d}");
    }
    let r = alice
        .post(
            "/v1/me/forwarding-rules?position=5",
            json!({"trigger": "busy", "steps": step(json!(["carol@example.net"]))}),
        )
        .await;
    assert_problem(&r, 400, "invalid_field", Some("position"));
    // A set a rule names cannot go; a called set lists own addresses only.
    let r = alice
        .put("/v1/me/forwarding-sets", json!({"time_sets": {}}))
        .await;
    assert_problem(&r, 400, "invalid_field", Some("rules[0].time"));
    let r = alice
        .put(
            "/v1/me/forwarding-sets",
            json!({"time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}},
                   "called_sets": {"office": {"addresses": ["+31209999999"]}}}),
        )
        .await;
    assert_problem(&r, 400, "invalid_field", Some("called_sets.office"));
    let r = alice
        .put(
            "/v1/me/forwarding-sets",
            json!({"time_sets": {"n": {"weekly": [{"days": 31, "start": "22:00", "stop": "24:00"}]}}}),
        )
        .await;
    assert_problem(&r, 400, "invalid_field", Some("time_sets.n.weekly[0].stop"));
    for path in ["/v1/me/forwarding-rules/0", "/v1/me/forwarding-rules/x"] {
        assert_problem(&alice.get(path).await, 400, "invalid_field", Some("id"));
    }
    let after = (
        alice.read("/v1/me/forwarding-rules").await,
        alice.read("/v1/me/forwarding-sets").await,
        app.read(&app.alice, "diversions").await,
    );
    assert_eq!(before, after, "refusals changed nothing");
    // Bob's rules are bob's: alice never sees them, and his loop check saw alice's.
    assert_eq!(ids(&bob.read("/v1/me/forwarding-rules").await), [1]);
}

#[tokio::test]
async fn the_decision_follows_the_rules_in_explain_and_the_service_route() {
    let app = TestApp::spawn().await;
    let alice = setup(&app).await;
    let r = alice
        .put(
            "/v1/me/forwarding-sets",
            json!({"time_sets": {"nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]}},
                   "caller_sets": {"family": {"mode": "allow", "members": ["sip:mom@example.org"]}}}),
        )
        .await;
    assert_status(&r, 200);
    let r = alice
        .put(
            "/v1/me/forwarding-rules",
            json!({"rules": [
                {"trigger": "unconditional", "time": "nights", "callers": "family",
                 "steps": [{"targets": ["<mobile-number>"]}]},
                {"trigger": "no_answer", "steps": [{"targets": ["bob", "carol@example.net"], "ring_seconds": 20},
                                                   {"targets": ["dave@example.net"]}]},
                {"trigger": "response", "codes": [503], "steps": [{"targets": ["erin@example.net"]}]}
            ]}),
        )
        .await;
    assert_status(&r, 200);

    // Tuesday 23:30 in Amsterdam: mom goes to the mobile.
    let e = alice
        .read("/v1/me/routing/explain?caller=sip:mom@example.org&at=2026-11-24T22:30:00Z")
        .await;
    assert_eq!(e["outcome"]["action"], "forward");
    assert_eq!(
        e["outcome"]["destination"]["uri"],
        "sip:+31612345678@example.com"
    );
    let path = e["path"].to_string();
    assert!(
        path.contains("Tue 2026-11-24 23:30 in Europe/Amsterdam"),
        "{path}"
    );
    assert!(path.contains("caller set family"), "{path}");
    // By day she rings, then the hunt list, and 503 goes to erin.
    let proxy = Api::new(&app, Some(&service_cert(&app).await));
    let r = proxy
        .post(
            "/v1/service/route",
            json!({"callee": "sip:alice@example.com", "caller": "sip:mom@example.org",
                   "registered": true, "busy": false, "at": "2026-11-25T12:00:00Z"}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["action"], "ring");
    let o = &r.body["outcome"];
    assert_eq!(o["seconds"], 20);
    assert_eq!(o["on_no_answer"]["condition"], "FNOA");
    assert_eq!(
        o["on_no_answer"]["steps"],
        json!([
            {"destinations": [{"kind": "uri", "uri": "sip:bob@example.com"},
                              {"kind": "uri", "uri": "sip:carol@example.net"}], "ring_seconds": 20},
            {"destinations": [{"kind": "uri", "uri": "sip:dave@example.net"}], "ring_seconds": 35}
        ])
    );
    assert_eq!(o["on_response"][0]["code"], 503);
    assert_eq!(
        o["on_response"][0]["forward"]["destination"]["uri"],
        "sip:erin@example.net"
    );
    assert!(o["on_response"][0]["forward"].get("condition").is_none());
}
