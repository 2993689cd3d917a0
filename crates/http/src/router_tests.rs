//! The application router without TLS: requests go straight into [`crate::router`] with tower's
//! `oneshot`, carrying the `Peer` extension the TLS accept loop would set (the harness of
//! [`crate::v1::testing`]).
//!
//! What is checked here: the exact JSON field names of `/v1/me` resources, ETags and
//! `If-Match` (412 with the current tag, a matching tag accepted), and the mapping of errors to
//! statuses and problem documents (docs/api.md, "Errors").

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::v1::testing::{ALICE, Reply, TestApp, assert_problem};

/// Sends one request as alice.
async fn alice(
    t: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    t.send_with(Some(&t.alice), method, path, headers, body)
        .await
}

/// GET as alice, asserting a 200 JSON representation with an ETag.
async fn read(t: &TestApp, path: &str) -> Reply {
    let r = alice(t, Method::GET, path, &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "GET {path}: {}",
        r.content_type
    );
    assert!(
        r.etag().is_some_and(|t| t.starts_with('"')),
        "GET {path}: ETag {:?}",
        r.etag()
    );
    r
}

// ----- JSON field names ---------------------------------------------------------------------

#[tokio::test]
async fn account_resource_has_the_documented_field_names() {
    let t = TestApp::new().await;
    let r = read(&t, "/v1/me").await;
    assert_eq!(
        r.keys(),
        [
            "address",
            "first_name",
            "last_name",
            "email",
            "timezone",
            "mobile",
            "pstn_caller_id",
            "language",
            "no_answer_timeout",
            "quick_dial",
            "privacy",
            "dnd",
            "prepaid",
            "created_at",
        ]
    );
    assert_eq!(r.body["address"], ALICE);
    assert_eq!(r.body["privacy"], false);
    assert_eq!(r.body["dnd"], false);
}

#[tokio::test]
async fn diversions_and_dnd_resources_have_the_documented_field_names() {
    let t = TestApp::new().await;
    let r = read(&t, "/v1/me/diversions").await;
    assert_eq!(
        r.keys(),
        ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV", "no_answer_timeout"]
    );
    for condition in ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV"] {
        assert_eq!(r.body[condition], Value::Null, "{condition}: {}", r.body);
    }

    // A target set through the API is shown without `sip:`.
    let r = alice(
        &t,
        Method::PATCH,
        "/v1/me/diversions",
        &[],
        Some(r#"{"FBUS": "sip:bob@example.org"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["FBUS"], "bob@example.org");

    let r = read(&t, "/v1/me/dnd").await;
    assert_eq!(r.keys(), ["on", "until", "remaining_minutes"]);
    assert_eq!(r.body["on"], false);

    let r = read(&t, "/v1/me/privacy").await;
    assert_eq!(r.keys(), ["on"]);
}

// ----- ETag and If-Match --------------------------------------------------------------------

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_etag_and_a_matching_one_succeeds() {
    let t = TestApp::new().await;
    let current = read(&t, "/v1/me/privacy").await.etag().unwrap().to_owned();
    assert!(!current.starts_with("W/"), "a strong tag: {current}");

    // A stale tag: 412, the current tag in the reply, nothing changed.
    let r = alice(
        &t,
        Method::PUT,
        "/v1/me/privacy",
        &[("if-match", "\"0000\"")],
        Some(r#"{"on": true}"#),
    )
    .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(r.etag(), Some(current.as_str()));
    let after = read(&t, "/v1/me/privacy").await;
    assert_eq!(after.body, json!({"on": false}));
    assert_eq!(after.etag(), Some(current.as_str()));

    // A weak tag never matches, even the current one.
    let r = alice(
        &t,
        Method::PUT,
        "/v1/me/privacy",
        &[("if-match", &format!("W/{current}"))],
        Some(r#"{"on": true}"#),
    )
    .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));

    // The current tag: the write goes through and answers the new representation and tag.
    let r = alice(
        &t,
        Method::PUT,
        "/v1/me/privacy",
        &[("if-match", &current)],
        Some(r#"{"on": true}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"on": true}));
    let new_tag = r.etag().unwrap().to_owned();
    assert_ne!(new_tag, current);
    assert_eq!(
        read(&t, "/v1/me/privacy").await.etag(),
        Some(new_tag.as_str())
    );

    // The old tag is stale now.
    let r = alice(
        &t,
        Method::PUT,
        "/v1/me/privacy",
        &[("if-match", &current)],
        Some(r#"{"on": false}"#),
    )
    .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(r.etag(), Some(new_tag.as_str()));

    // If-None-Match with the current tag: 304.
    let r = alice(
        &t,
        Method::GET,
        "/v1/me/privacy",
        &[("if-none-match", &new_tag)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

// ----- error mapping ------------------------------------------------------------------------

#[tokio::test]
async fn a_path_that_is_not_served_is_404() {
    let t = TestApp::new().await;
    // Outside `/v1`: the action endpoint's status object.
    let r = alice(&t, Method::GET, "/no-such-page", &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(
        r.body,
        json!({"success": false, "error_message": "Error: not found"})
    );
    // A path segment the resource does not know: a problem document.
    let r = alice(&t, Method::GET, "/v1/me/diversions/FXYZ", &[], None).await;
    assert_problem(&r, 404, "not_found", None);
}

#[tokio::test]
async fn an_unknown_v1_path_is_a_404_problem_document() {
    let t = TestApp::new().await;
    for (method, path) in [
        (Method::GET, "/v1/me/no-such-resource"),
        (Method::POST, "/v1/me/no-such-resource"),
        (Method::GET, "/v1/nothing/here"),
        (Method::GET, "/v1"),
        (Method::GET, "/v1/"),
    ] {
        let r = alice(&t, method.clone(), path, &[], None).await;
        assert_problem(&r, 404, "not_found", None);
        assert!(
            r.body["detail"].as_str().unwrap_or_default().contains(path),
            "{method} {path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_method_the_path_does_not_take_is_405_with_allow() {
    let t = TestApp::new().await;
    let r = alice(&t, Method::DELETE, "/v1/me", &[], None).await;
    assert_problem(&r, 405, "method_not_allowed", None);
    let allow = r.header("allow").unwrap_or_default().to_owned();
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "HEAD", "PATCH"], "Allow: {allow}");
    assert!(
        r.body["detail"].as_str().unwrap().contains("DELETE"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json_and_changes_nothing() {
    let t = TestApp::new().await;
    let before = read(&t, "/v1/me").await.body;
    for body in [r#"{"first_name": "#, "not json", "[1, 2]", "null", ""] {
        let r = alice(&t, Method::PATCH, "/v1/me", &[], Some(body)).await;
        assert_problem(&r, 400, "invalid_json", None);
    }
    assert_eq!(read(&t, "/v1/me").await.body, before);
}

#[tokio::test]
async fn a_bad_field_value_is_400_invalid_field_naming_it() {
    let t = TestApp::new().await;
    let before = read(&t, "/v1/me").await.body;
    for (body, field) in [
        (r#"{"no_answer_timeout": 3}"#, "no_answer_timeout"),
        (r#"{"no_answer_timeout": "x"}"#, "no_answer_timeout"),
        (r#"{"timezone": "Mars/Olympus"}"#, "timezone"),
        (r#"{"prepaid": true}"#, "prepaid"),
    ] {
        let r = alice(&t, Method::PATCH, "/v1/me", &[], Some(body)).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    assert_eq!(read(&t, "/v1/me").await.body, before);

    let r = alice(
        &t,
        Method::PUT,
        "/v1/me/diversions",
        &[],
        Some(r#"{"FBUS": "a b"}"#),
    )
    .await;
    assert_problem(&r, 400, "invalid_field", Some("FBUS"));
    assert_eq!(
        read(&t, "/v1/me/diversions").await.body["FBUS"],
        Value::Null
    );
}

#[tokio::test]
async fn without_a_certificate_the_api_is_401_unauthenticated() {
    let t = TestApp::new().await;
    let r = t.send_with(None, Method::GET, "/v1/me", &[], None).await;
    assert_problem(&r, 401, "unauthenticated", None);
}
