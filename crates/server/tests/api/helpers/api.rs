//! A client of the resource API `/v1/*` for the behaviour tests: one certificate, JSON in and
//! out, the reply's status, ETag, Location and content type; and the problem-document checks.

use reqwest::Method;
use serde_json::Value;
use sip_settings_core::cert::IssuedCertificate;

use super::{TestApp, header_of};

/// A reply of the resource API.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) etag: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

/// A client of the resource API presenting one certificate.
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl Api {
    pub(crate) fn new(app: &TestApp, cert: Option<&IssuedCertificate>) -> Self {
        Self {
            client: app.client(cert),
            base: app.base.clone(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("request");
        let header = |name: &str| header_of(&response, name);
        let etag = header("etag");
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {e}: {text}"))
        };
        Reply {
            status,
            etag,
            location,
            content_type,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    /// GET asserting 200 with an ETag.
    pub(crate) async fn read(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {:?}", r.body);
        assert!(
            r.content_type.starts_with("application/json"),
            "{}",
            r.content_type
        );
        assert!(
            r.etag.as_deref().is_some_and(|t| t.starts_with('"')),
            "ETag of {path}"
        );
        r.body
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body), None).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body), None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None, None).await
    }
}

/// Asserts a problem document with this status, code and field.
#[track_caller]
pub(crate) fn assert_problem(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.content_type, "application/problem+json", "{:?}", r.body);
    assert_eq!(r.body["status"], status, "{:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["field"].as_str(), field, "{:?}", r.body);
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(r.body["title"].is_string());
}

#[track_caller]
pub(crate) fn assert_status(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{:?}", r.body);
}
