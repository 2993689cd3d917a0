//! The application router over a real SQLite store in a temporary directory, for the tests of
//! the `/v1` modules: requests go straight into [`crate::router`] with the [`Peer`] extension
//! the TLS accept loop would set (alice's subscriber certificate or a service certificate).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sip_settings_core::account::AccountUpdate;
use sip_settings_core::cert::{CertSubject, IssuedCertificate};
use sip_settings_core::{AccountId, Clock, Password, Services, ServicesConfig, SystemClock};
use sip_settings_pki::Pki;
use sip_settings_store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::serve::{Peer, PeerCertificate};
use crate::{AppState, router};

/// Alice's address.
pub const ALICE: &str = "alice@example.com";

/// The router over a fresh store with alice (`alice@example.com`), her certificate and a
/// service certificate.
pub struct TestApp {
    /// Holds the database; removed when the test ends.
    _dir: TempDir,
    app: Router,
    /// Alice's subscriber certificate.
    pub alice: IssuedCertificate,
    /// A proxy's service certificate.
    pub service: IssuedCertificate,
    /// The services behind the router.
    pub services: Services,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").finish_non_exhaustive()
    }
}

/// A response: its status and its body, parsed as JSON (a string when it is not JSON, `null`
/// when empty).
#[derive(Debug)]
pub struct Reply {
    /// The response's status code.
    pub status: StatusCode,
    /// The Content-Type header, empty when there is none.
    pub content_type: String,
    /// All the response headers (Content-Type among them).
    pub headers: HeaderMap,
    /// The body: JSON as parsed, other text as a JSON string, `null` when empty.
    pub body: Value,
}

impl TestApp {
    /// The router without request rate limits.
    pub async fn new() -> Self {
        Self::with_limits(None).await
    }

    /// The same with these request rate limits (`None`: unlimited).
    pub async fn with_limits(limits: Option<crate::ratelimit::RateLimits>) -> Self {
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
            .issue_certificate(CertSubject::Account(id), None, None)
            .await
            .unwrap();
        let service = services
            .issue_certificate(CertSubject::Service("proxy".to_owned()), None, None)
            .await
            .unwrap();
        Self {
            _dir: dir,
            app: router(AppState::new(services.clone(), limits)),
            alice,
            service,
            services,
        }
    }

    /// Sends one request with `cert`'s certificate and a JSON `body`.
    pub async fn send(
        &self,
        cert: &IssuedCertificate,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        self.send_as(Some(cert), method, path, body).await
    }

    /// Sends one request with `cert`'s certificate, or none, and a JSON `body`.
    pub async fn send_as(
        &self,
        cert: Option<&IssuedCertificate>,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        self.send_with(cert, method, path, &[], body).await
    }

    /// Sends one request with `cert`'s certificate, or none, these `headers` and a JSON `body`.
    pub async fn send_with(
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
                .header("content-type", "application/json")
                .body(Body::from(b.to_owned())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        request.extensions_mut().insert(Peer {
            addr: SocketAddr::from(([192, 0, 2, 7], 40_000)),
            certificate: cert.map(|c| Arc::new(PeerCertificate::from_der(&c.cert_der))),
        });
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            content_type,
            headers,
            body,
        }
    }
}

impl Reply {
    /// A response header, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ETag header.
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The names of the body's fields, in order.
    pub fn keys(&self) -> Vec<&str> {
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
pub fn assert_problem(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.body);
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
