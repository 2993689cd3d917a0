//! The application router without TLS: requests go straight into [`sip_settings_http::router`]
//! with tower's `oneshot`, carrying the [`Peer`] extension the TLS accept loop would set — a
//! subscriber certificate issued by the project's own CA, on a real SQLite store in a temporary
//! directory. Only the crate's public API is used; everything else goes through the router.
//!
//! What is checked here: the exact JSON field names of `/v1/me` resources, ETags and
//! `If-Match` (412 with the current tag, a matching tag accepted), and the mapping of errors to
//! statuses and problem documents (docs/api.md, "Errors").

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::{AccountId, Clock, Password, Services, ServicesConfig, SystemClock};
use sip_settings_http::serve::{Peer, PeerCertificate};
use sip_settings_http::{AppState, router};
use sip_settings_pki::Pki;
use sip_settings_store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

const ALICE: &str = "alice@example.com";

/// The router over a fresh store, with alice and her certificate.
struct TestRouter {
    /// Holds the database; removed when the test ends.
    _dir: TempDir,
    app: Router,
    alice: IssuedCertificate,
}

impl TestRouter {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sip-settings.db").display());
        let store = SqliteStore::open_with(&url, true, true).await.unwrap();
        let ca = Pki::load(&Pki::create_ca("sip-settings test CA", 1).unwrap()).unwrap();
        let services = Services::new(
            Arc::new(store),
            Arc::new(ca),
            Arc::new(SystemClock) as Arc<dyn Clock>,
            ServicesConfig::default(),
        );
        services.add_domain("example.com").await.unwrap();
        let id = AccountId::parse(ALICE).unwrap();
        services
            .add_account(
                &id,
                &Password::parse_for("password", "alice-sip-password").unwrap(),
                &AccountUpdate::default(),
            )
            .await
            .unwrap();
        let alice = services
            .issue_certificate(CertSubject::Account(id), None)
            .await
            .unwrap();
        // Unlimited rate limits: these tests are not about them.
        let app = router(AppState::new(services, None));
        Self {
            _dir: dir,
            app,
            alice,
        }
    }

    /// The extension the TLS layer puts on every request of a connection.
    fn peer(cert: Option<&IssuedCertificate>) -> Peer {
        Peer {
            addr: SocketAddr::from(([192, 0, 2, 7], 40_000)),
            certificate: cert.map(|c| Arc::new(PeerCertificate::from_der(&c.cert_der))),
        }
    }

    /// Sends one request as alice (or without a certificate).
    async fn send(
        &self,
        cert: Option<&IssuedCertificate>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_owned())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        request.extensions_mut().insert(Self::peer(cert));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {e}: {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn alice(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        self.send(Some(&self.alice), method, path, headers, body)
            .await
    }

    /// GET as alice, asserting a 200 JSON representation with an ETag.
    async fn read(&self, path: &str) -> Reply {
        let r = self.alice(Method::GET, path, &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        assert!(
            r.content_type().starts_with("application/json"),
            "GET {path}: {}",
            r.content_type()
        );
        assert!(
            r.etag().is_some_and(|t| t.starts_with('"')),
            "GET {path}: ETag {:?}",
            r.etag()
        );
        r
    }
}

/// A response, its body parsed as JSON (`null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The names of the body's fields, in order.
    fn keys(&self) -> Vec<&str> {
        self.body
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {}", self.body))
            .keys()
            .map(String::as_str)
            .collect()
    }
}

/// Asserts an RFC 9457 problem document with this status, code and field.
#[track_caller]
fn assert_problem(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type(), "application/problem+json", "{}", r.body);
    assert_eq!(r.body["status"], status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["field"].as_str(), field, "{}", r.body);
    assert!(r.body["type"].is_string(), "{}", r.body);
    assert!(r.body["title"].is_string(), "{}", r.body);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.body
    );
}

// ----- JSON field names ---------------------------------------------------------------------

#[tokio::test]
async fn account_resource_has_the_documented_field_names() {
    let t = TestRouter::new().await;
    let r = t.read("/v1/me").await;
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
    let t = TestRouter::new().await;
    let r = t.read("/v1/me/diversions").await;
    assert_eq!(
        r.keys(),
        ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV", "no_answer_timeout"]
    );
    for condition in ["FUNC", "FNOL", "FBUS", "FNOA", "FUNV"] {
        assert_eq!(r.body[condition], Value::Null, "{condition}: {}", r.body);
    }

    // A target set through the API is shown without `sip:`.
    let r = t
        .alice(
            Method::PATCH,
            "/v1/me/diversions",
            &[],
            Some(r#"{"FBUS": "sip:bob@example.org"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["FBUS"], "bob@example.org");

    let r = t.read("/v1/me/dnd").await;
    assert_eq!(r.keys(), ["on", "until", "remaining_minutes"]);
    assert_eq!(r.body["on"], false);

    let r = t.read("/v1/me/privacy").await;
    assert_eq!(r.keys(), ["on"]);
}

// ----- ETag and If-Match --------------------------------------------------------------------

#[tokio::test]
async fn a_stale_if_match_is_412_with_the_current_etag_and_a_matching_one_succeeds() {
    let t = TestRouter::new().await;
    let current = t.read("/v1/me/privacy").await.etag().unwrap().to_owned();
    assert!(!current.starts_with("W/"), "a strong tag: {current}");

    // A stale tag: 412, the current tag in the reply, nothing changed.
    let r = t
        .alice(
            Method::PUT,
            "/v1/me/privacy",
            &[("if-match", "\"0000\"")],
            Some(r#"{"on": true}"#),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(r.etag(), Some(current.as_str()));
    let after = t.read("/v1/me/privacy").await;
    assert_eq!(after.body, json!({"on": false}));
    assert_eq!(after.etag(), Some(current.as_str()));

    // A weak tag never matches, even the current one.
    let r = t
        .alice(
            Method::PUT,
            "/v1/me/privacy",
            &[("if-match", &format!("W/{current}"))],
            Some(r#"{"on": true}"#),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));

    // The current tag: the write goes through and answers the new representation and tag.
    let r = t
        .alice(
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
        t.read("/v1/me/privacy").await.etag(),
        Some(new_tag.as_str())
    );

    // The old tag is stale now.
    let r = t
        .alice(
            Method::PUT,
            "/v1/me/privacy",
            &[("if-match", &current)],
            Some(r#"{"on": false}"#),
        )
        .await;
    assert_problem(&r, 412, "precondition_failed", Some("If-Match"));
    assert_eq!(r.etag(), Some(new_tag.as_str()));

    // If-None-Match with the current tag: 304.
    let r = t
        .alice(
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
    let t = TestRouter::new().await;
    // Outside `/v1`: the action endpoint's status object.
    let r = t.alice(Method::GET, "/no-such-page", &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(
        r.content_type().starts_with("application/json"),
        "{}",
        r.content_type()
    );
    assert_eq!(
        r.body,
        json!({"success": false, "error_message": "Error: not found"})
    );
    // A path segment the resource does not know: a problem document.
    let r = t
        .alice(Method::GET, "/v1/me/diversions/FXYZ", &[], None)
        .await;
    assert_problem(&r, 404, "not_found", None);
}

#[tokio::test]
async fn an_unknown_v1_path_is_a_404_problem_document() {
    let t = TestRouter::new().await;
    for (method, path) in [
        (Method::GET, "/v1/me/no-such-resource"),
        (Method::POST, "/v1/me/no-such-resource"),
        (Method::GET, "/v1/nothing/here"),
        (Method::GET, "/v1"),
        (Method::GET, "/v1/"),
    ] {
        let r = t.alice(method.clone(), path, &[], None).await;
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
    let t = TestRouter::new().await;
    let r = t.alice(Method::DELETE, "/v1/me", &[], None).await;
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
    let t = TestRouter::new().await;
    let before = t.read("/v1/me").await.body;
    for body in [r#"{"first_name": "#, "not json", "[1, 2]", "null", ""] {
        let r = t.alice(Method::PATCH, "/v1/me", &[], Some(body)).await;
        assert_problem(&r, 400, "invalid_json", None);
    }
    assert_eq!(t.read("/v1/me").await.body, before);
}

#[tokio::test]
async fn a_bad_field_value_is_400_invalid_field_naming_it() {
    let t = TestRouter::new().await;
    let before = t.read("/v1/me").await.body;
    for (body, field) in [
        (r#"{"no_answer_timeout": 3}"#, "no_answer_timeout"),
        (r#"{"no_answer_timeout": "x"}"#, "no_answer_timeout"),
        (r#"{"timezone": "Mars/Olympus"}"#, "timezone"),
        (r#"{"prepaid": true}"#, "prepaid"),
    ] {
        let r = t.alice(Method::PATCH, "/v1/me", &[], Some(body)).await;
        assert_problem(&r, 400, "invalid_field", Some(field));
    }
    assert_eq!(t.read("/v1/me").await.body, before);

    let r = t
        .alice(
            Method::PUT,
            "/v1/me/diversions",
            &[],
            Some(r#"{"FBUS": "a b"}"#),
        )
        .await;
    assert_problem(&r, 400, "invalid_field", Some("FBUS"));
    assert_eq!(t.read("/v1/me/diversions").await.body["FBUS"], Value::Null);
}

#[tokio::test]
async fn without_a_certificate_the_api_is_401_unauthenticated() {
    let t = TestRouter::new().await;
    let r = t.send(None, Method::GET, "/v1/me", &[], None).await;
    assert_problem(&r, 401, "unauthenticated", None);
}
