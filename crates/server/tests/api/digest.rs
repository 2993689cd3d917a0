//! HTTP Digest (RFC 7616) on `settings.phtml` (issue 18, point 1): the challenge, answered by
//! curl and by Python's `urllib` as independent clients and by hand for SHA-256; `nc` replay,
//! stale nonces, the shared password throttle, the journal's actor, the per-domain switch, and
//! that nothing but `settings.phtml` takes Digest.

use serde_json::Value;
use sip_settings_core::digest::Algorithm;

use crate::helpers::{
    ALICE, ALICE_PASSWORD, TestApp, digest_authorization as answer, digest_nonce_opaque,
    digest_param as param, have_tool, json_of, no_redirects,
};

const URI: &str = "/settings.phtml?action=account&realm=example.com";

/// The `WWW-Authenticate` headers of a response.
fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// GET `uri` without a certificate, with an optional `Authorization` header.
async fn get(app: &TestApp, uri: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = no_redirects(app).get(format!("{}{uri}", app.base));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request.send().await.unwrap()
}

/// A fresh challenge for `uri`: (nonce, opaque) of its `algorithm` header.
async fn challenge(app: &TestApp, uri: &str, algorithm: Algorithm) -> (String, String) {
    let response = get(app, uri, None).await;
    assert_eq!(response.status().as_u16(), 401);
    digest_nonce_opaque(&response, algorithm)
}

// Multi-threaded: curl and python3 run as blocking child processes while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_then_curl_and_python_answer() {
    let app = TestApp::spawn().await;
    // Neither a certificate nor credentials: 401, the JSON body as before, two challenges.
    let response = get(&app, URI, None).await;
    let headers = challenges(&response);
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["success"], Value::Bool(false), "{body}");
    assert_eq!(headers.len(), 2, "{headers:?}");
    for (h, algorithm) in headers.iter().zip(["MD5", "SHA-256"]) {
        assert!(h.starts_with("Digest "), "{h}");
        assert_eq!(param(h, "realm").as_deref(), Some("example.com"), "{h}");
        assert_eq!(param(h, "qop").as_deref(), Some("auth"), "{h}");
        assert_eq!(param(h, "algorithm").as_deref(), Some(algorithm), "{h}");
        assert!(param(h, "opaque").is_some_and(|o| !o.is_empty()), "{h}");
        assert!(param(h, "nonce").is_some_and(|n| n.len() > 20), "{h}");
        assert!(!h.contains("stale"), "{h}");
    }
    // The realm may be given as an address (Blink sends the account), x@domain → domain.
    let response = get(
        &app,
        "/settings.phtml?action=account&realm=x%40example.com",
        None,
    )
    .await;
    assert!(
        challenges(&response)
            .iter()
            .all(|h| param(h, "realm").as_deref() == Some("example.com"))
    );

    let ca = app.write_file("digest-ca.crt", &app.ca_pem);
    let url = format!("{}{URI}", app.base);
    if have_tool("curl") {
        let curl = |user: &str, password: &str| {
            let out = std::process::Command::new("curl")
                .args(["-sS", "--digest", "-u", &format!("{user}:{password}")])
                .arg("--cacert")
                .arg(&ca)
                .args(["-w", "\n%{http_code}", &url])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap();
            (code.to_owned(), body.to_owned())
        };
        let (code, body) = curl("alice", ALICE_PASSWORD);
        assert_eq!(code, "200", "{body}");
        let object: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(object["sip_address"], ALICE);
        let (code, body) = curl("alice", "not-the-password");
        assert_eq!(code, "401", "{body}");
        eprintln!("figure: curl --digest answered 200 with the right password, 401 without");
    } else {
        eprintln!("SKIP curl part: curl is not installed");
    }
    if have_tool("python3") {
        let script = r#"
import json, ssl, sys, urllib.request
url, ca, user, password = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
pm = urllib.request.HTTPPasswordMgrWithDefaultRealm()
pm.add_password(None, url, user, password)
opener = urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPDigestAuthHandler(pm))
try:
    with opener.open(url) as r:
        print(r.status, json.load(r)["sip_address"])
except urllib.error.HTTPError as e:
    print(e.code, "refused")
"#;
        let run = |password: &str| {
            let out = std::process::Command::new("python3")
                .args(["-c", script, &url])
                .arg(&ca)
                .args(["alice", password])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(run(ALICE_PASSWORD), format!("200 {ALICE}"));
        // urllib answers each new challenge again with the same wrong password (up to six
        // times), so together with curl's wrong try above the account's throttle may already
        // answer 429: either way it is refused.
        let refused = run("wrong-password");
        assert!(
            refused == "401 refused" || refused == "429 refused",
            "{refused}"
        );
    } else {
        eprintln!("SKIP python part: python3 is not installed");
    }
}

#[tokio::test]
async fn sha256_by_hand_replay_and_stale_nonces() {
    let app = TestApp::spawn().await;
    let (nonce, opaque) = challenge(&app, URI, Algorithm::Sha256).await;
    let a1 = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        URI,
    );
    let (status, body) = json_of(get(&app, URI, Some(&a1)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sip_address"], ALICE);
    // The same nc again is a replay.
    let response = get(&app, URI, Some(&a1)).await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error_message"].as_str().unwrap().contains("replay"),
        "{body}"
    );
    // A higher nc on the same nonce is fine.
    let a2 = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        2,
        "GET",
        URI,
    );
    assert_eq!(get(&app, URI, Some(&a2)).await.status().as_u16(), 200);
    // MD5 answers the MD5 challenge.
    let (md5_nonce, _) = challenge(&app, URI, Algorithm::Md5).await;
    let m = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &md5_nonce,
        &opaque,
        1,
        "GET",
        URI,
    );
    assert_eq!(get(&app, URI, Some(&m)).await.status().as_u16(), 200);
    // A nonce not made by this server.
    let forged = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &opaque,
        1,
        "GET",
        URI,
    );
    assert_eq!(get(&app, URI, Some(&forged)).await.status().as_u16(), 401);
    // After 300 s the right answer gets stale=true, and a fresh nonce works again.
    app.clock.advance(chrono::Duration::seconds(301));
    let a3 = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        3,
        "GET",
        URI,
    );
    let response = get(&app, URI, Some(&a3)).await;
    assert_eq!(response.status().as_u16(), 401);
    let stale = challenges(&response);
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert!(
        stale
            .iter()
            .all(|h| param(h, "stale").as_deref() == Some("true")),
        "{stale:?}"
    );
    // A wrong password on an expired nonce is not told that the nonce is stale.
    let wrong = answer(
        Algorithm::Sha256,
        "alice",
        "wrong-password",
        &nonce,
        &opaque,
        4,
        "GET",
        URI,
    );
    let response = get(&app, URI, Some(&wrong)).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(challenges(&response).iter().all(|h| !h.contains("stale")));
    let fresh = param(&stale[1], "nonce").unwrap();
    let a4 = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        &fresh,
        &opaque,
        1,
        "GET",
        URI,
    );
    assert_eq!(get(&app, URI, Some(&a4)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn user_part_and_address_forms_of_the_user_name() {
    let app = TestApp::spawn().await;
    // Without ?realm=, the only domain served is the realm.
    let uri = "/settings.phtml?action=account";
    let (nonce, opaque) = challenge(&app, uri, Algorithm::Md5).await;
    let plain = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        uri,
    );
    let (status, body) = json_of(get(&app, uri, Some(&plain)).await).await;
    assert_eq!(status, 200, "{body}");
    // user@domain as the user name is checked against H(alice@example.com:example.com:password)
    // (the stored `ha1b`), with either algorithm.
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let (nonce, opaque) = challenge(&app, uri, algorithm).await;
        let address = answer(
            algorithm,
            ALICE,
            ALICE_PASSWORD,
            &nonce,
            &opaque,
            1,
            "GET",
            uri,
        );
        let (status, body) = json_of(get(&app, uri, Some(&address)).await).await;
        assert_eq!(status, 200, "{}: {body}", algorithm.as_str());
        assert_eq!(body["sip_address"], ALICE);
    }
    // The user part's HA1 under the address as user name is a wrong answer.
    let (nonce, opaque) = challenge(&app, uri, Algorithm::Md5).await;
    let mixed = plain_answer_for_address(&nonce, &opaque);
    assert_eq!(get(&app, uri, Some(&mixed)).await.status().as_u16(), 401);
    let (nonce, opaque) = challenge(&app, uri, Algorithm::Md5).await;
    let address = answer(
        Algorithm::Md5,
        ALICE,
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        uri,
    );
    // A user@domain of another realm is refused.
    let other = address.replace("alice@example.com", "alice@example.org");
    assert_eq!(get(&app, uri, Some(&other)).await.status().as_u16(), 401);

    // A password stored before `ha1b` was kept (its columns empty, as after the migration):
    // the address form cannot be checked and is refused; the user part still works.
    let conn = rusqlite::Connection::open(app.data_dir().join("sip-settings.db")).unwrap();
    conn.execute(
        "UPDATE accounts SET ha1b_md5 = NULL, ha1b_sha256 = NULL WHERE username = 'alice'",
        [],
    )
    .unwrap();
    let (nonce, opaque) = challenge(&app, uri, Algorithm::Md5).await;
    let address = answer(
        Algorithm::Md5,
        ALICE,
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        uri,
    );
    assert_eq!(get(&app, uri, Some(&address)).await.status().as_u16(), 401);
    let plain = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        2,
        "GET",
        uri,
    );
    assert_eq!(get(&app, uri, Some(&plain)).await.status().as_u16(), 200);
}

/// The answer of a client that hashes the user part but names the whole address.
fn plain_answer_for_address(nonce: &str, opaque: &str) -> String {
    let uri = "/settings.phtml?action=account";
    let good = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        nonce,
        opaque,
        1,
        "GET",
        uri,
    );
    good.replacen("username=\"alice\"", &format!("username=\"{ALICE}\""), 1)
}

#[tokio::test]
async fn wrong_answers_are_throttled_with_the_web_login() {
    let app = TestApp::spawn().await;
    let mut failures = 0;
    let mut throttled = None;
    for _ in 0..30 {
        let (nonce, opaque) = challenge(&app, URI, Algorithm::Md5).await;
        let wrong = answer(
            Algorithm::Md5,
            "alice",
            "wrong-password",
            &nonce,
            &opaque,
            1,
            "GET",
            URI,
        );
        let response = get(&app, URI, Some(&wrong)).await;
        if response.status().as_u16() == 429 {
            throttled = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 401);
        failures += 1;
    }
    eprintln!("figure: wrong Digest answers before 429: {failures}");
    let throttled = throttled.expect("429 within 30 wrong answers");
    assert_eq!(failures, 5, "the web login's per-account limit");
    assert!(throttled.headers().get("retry-after").is_some());
    // The same counter: now even the right answer, and the web login, are refused.
    let (nonce, opaque) = challenge(&app, URI, Algorithm::Md5).await;
    let right = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        URI,
    );
    assert_eq!(get(&app, URI, Some(&right)).await.status().as_u16(), 429);
    let login = app
        .services
        .log_in(ALICE, &sip_settings_core::Password::offered(ALICE_PASSWORD))
        .await;
    assert!(
        matches!(
            login,
            Err(sip_settings_core::ServiceError::Throttled { .. })
        ),
        "{login:?}"
    );
}

#[tokio::test]
async fn a_write_through_digest_is_journaled_as_digest() {
    let app = TestApp::spawn().await;
    let uri = "/settings.phtml?action=set_privacy_on&realm=example.com";
    let (nonce, opaque) = challenge(&app, uri, Algorithm::Sha256).await;
    let a = answer(
        Algorithm::Sha256,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        uri,
    );
    let (status, body) = json_of(get(&app, uri, Some(&a)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], Value::Bool(true), "{body}");
    let id = sip_settings_core::AccountId::parse(ALICE).unwrap();
    let journal = app.services.journal_entries(&id, None, 10).await.unwrap();
    let newest = &journal.first().unwrap().entry;
    assert_eq!(newest.actor, format!("digest {ALICE}"));
    assert_eq!(newest.door, "settings.phtml");
    assert_eq!(newest.source.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domain_switch_turns_digest_off_and_on() {
    let app = TestApp::spawn().await;
    let (nonce, opaque) = challenge(&app, URI, Algorithm::Md5).await;
    let out = app.cli(&["domain", "digest", "example.com", "off"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("off for example.com"));
    // No challenge, and right credentials are refused.
    let response = get(&app, URI, None).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(challenges(&response).is_empty());
    let right = answer(
        Algorithm::Md5,
        "alice",
        ALICE_PASSWORD,
        &nonce,
        &opaque,
        1,
        "GET",
        URI,
    );
    let response = get(&app, URI, Some(&right)).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(challenges(&response).is_empty());
    // Certificates are unchanged.
    let (status, _) = app.action(&app.alice, "action=account").await;
    assert_eq!(status, 200);
    // An unknown domain is refused by name.
    let out = app.cli(&["domain", "digest", "example.org", "off"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("example.org"));
    let out = app.cli(&["domain", "digest", "example.com", "on"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(get(&app, URI, Some(&right)).await.status().as_u16(), 200);
}

#[tokio::test]
async fn digest_never_authenticates_anything_but_settings_phtml() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/me",
        "/v1/me/journal",
        "/v1/service/route",
        "/v1/admin/domains",
    ] {
        let (nonce, opaque) = challenge(&app, URI, Algorithm::Md5).await;
        let a = answer(
            Algorithm::Md5,
            "alice",
            ALICE_PASSWORD,
            &nonce,
            &opaque,
            1,
            "GET",
            path,
        );
        let response = get(&app, path, Some(&a)).await;
        let status = response.status().as_u16();
        assert!(
            status == 401 || status == 403 || status == 405,
            "{path}: {status}"
        );
        assert!(challenges(&response).is_empty(), "{path}");
    }
}
