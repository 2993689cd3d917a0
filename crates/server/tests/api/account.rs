//! The `account` action and the endpoint's reply conventions.

use crate::helpers::*;

#[tokio::test]
async fn account_under_every_name_path_and_method_returns_object_a() {
    let app = TestApp::spawn().await;
    let expected_keys = [
        "sip_address",
        "email",
        "first",
        "lastname",
        "pstn_caller_id",
        "mobile_number",
        "timezone",
        "no_answer_timeout",
        "quick_dial",
        "language",
        "privacy",
        "dnd",
        "prepaid",
    ];
    for path in ["settings.phtml", "settings"] {
        for name in ["account", "get_identity", "get_account"] {
            let (status, body) = app.action(&app.alice, &format!("action={name}")).await;
            assert_eq!(status, 200);
            let keys: Vec<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, expected_keys, "key order of object A");
            assert_eq!(body["sip_address"], ALICE);
            assert_eq!(body["no_answer_timeout"], 35);
            assert_eq!(body["timezone"], "UTC");
            assert!(body["pstn_caller_id"].is_null());

            let response = app
                .client(Some(&app.alice))
                .post(format!("{}/{path}", app.base))
                .form(&[("action", name)])
                .send()
                .await
                .unwrap();
            let (status, posted) = json_of(response).await;
            assert_eq!(status, 200);
            assert_eq!(posted, body);
        }
    }
}

#[tokio::test]
async fn account_shows_the_profile_set_by_the_operator() {
    let app = TestApp::spawn().await;
    let out = app.cli(&[
        "account",
        "add",
        "carol@example.com",
        "--password",
        "carol-password",
        "--first-name",
        "Carol",
        "--last-name",
        "Jones",
        "--email",
        "carol@mail.example.org",
        "--timezone",
        "America/New_York",
        "--mobile",
        "+1 212 555 0100",
        "--pstn-caller-id",
        "+12125550199",
        "--language",
        "en-US",
        "--no-answer-timeout",
        "20",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = app.cli(&[
        "cert",
        "issue",
        "carol@example.com",
        "--out",
        app.data_dir().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let pem = std::fs::read_to_string(app.data_dir().join("carol@example.com.crt")).unwrap();
    let client = client_with(&app.ca_pem, Some((&pem, &pem)));
    let response = client
        .get(format!("{}/settings?action=account", app.base))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["first"], "Carol");
    assert_eq!(body["lastname"], "Jones");
    assert_eq!(body["email"], "carol@mail.example.org");
    assert_eq!(body["timezone"], "America/New_York");
    assert_eq!(body["mobile_number"], "+12125550100");
    assert_eq!(body["pstn_caller_id"], "+12125550199");
    assert_eq!(body["language"], "en-US");
    assert_eq!(body["no_answer_timeout"], 20);
}

#[tokio::test]
async fn unknown_and_missing_actions_and_paths_are_json_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = app.action(&app.alice, "action=launch_rockets").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        serde_json::json!({"success": false, "error_message": "Error: invalid action"})
    );
    let (status, body) = app.action(&app.alice, "").await;
    assert_eq!(status, 400);
    assert_eq!(body["success"], false);
    let response = app
        .client(Some(&app.alice))
        .get(format!("{}/etc/passwd", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.0, 404);
}

#[tokio::test]
async fn malformed_requests_are_clear_400s() {
    let app = TestApp::spawn().await;
    // A query string with 10 000 parameters.
    let many = "a=1&".repeat(10_000);
    let client = app.client(Some(&app.alice));
    let (status, body) = app
        .action(&app.alice, &format!("action=account&{many}"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("parameters")
    );

    let (status, body) = app.action(&app.alice, "action=%ff%fe").await;
    assert_eq!(status, 400);
    assert!(
        body["error_message"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );

    let response = client
        .post(format!("{}/settings.phtml", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.0, 413);

    let response = client
        .post(format!("{}/settings.phtml", app.base))
        .header("content-type", "application/json")
        .body("{\"action\":\"account\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.0, 400);
}

#[tokio::test]
async fn http2_is_negotiated() {
    let app = TestApp::spawn().await;
    let response = app
        .client(Some(&app.alice))
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
}
