//! The one mapping of a [`ServiceError`] to what every door answers: the HTTP status, the stable
//! `code` and the text a client may see ([`classify`]); and the one place a 5xx's cause is
//! logged ([`log_causes`]).
//!
//! Every door renders the classification in its own form — the action endpoint's status object
//! ([`crate::legacy::reply`]), the `/v1` problem document ([`crate::v1::error::ApiError`]), the web
//! page's message page ([`crate::web`]) — and attaches the cause of a 5xx to the response as a
//! [`Cause`] extension, never to its body. The [`log_causes`] layer of [`crate::router`] logs it
//! once and removes it.

use std::borrow::Cow;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use sip_settings_core::ServiceError;

/// The stable machine-readable codes of the service errors (the `code` of a problem document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A parameter is malformed or out of range: `400`.
    InvalidField,
    /// The thing named does not exist: `404`.
    NotFound,
    /// The change conflicts with existing data: `409`.
    Conflict,
    /// No certificate or credentials: `401`.
    Unauthenticated,
    /// Known, but not allowed: `403`.
    Forbidden,
    /// Too many attempts: `429` with `Retry-After`.
    RateLimited,
    /// The database is temporarily unavailable: `503` with `Retry-After: 1`.
    Unavailable,
    /// A bug or corrupt data: `500`.
    Internal,
}

impl Code {
    /// The code as the problem documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidField => "invalid_field",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidField => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A service error as every door answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified<'a> {
    /// The stable code, which gives the status.
    pub code: Code,
    /// The text a client may see, without any door's decoration. A 5xx's is generic.
    pub detail: Cow<'a, str>,
    /// The parameter an `Invalid` error names.
    pub field: Option<&'a str>,
    /// Seconds for `Retry-After` (a `429`'s wait; `1` for `503`).
    pub retry_after: Option<u64>,
    /// What is logged of a 5xx (never shown to the client).
    pub cause: Option<Cause>,
}

impl Classified<'_> {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

/// The text of a `503`.
pub const UNAVAILABLE_TEXT: &str = "the service is temporarily unavailable, try again";

/// Classifies `err`: exhaustively, so a new variant of [`ServiceError`] does not compile until
/// every door knows how to answer it.
pub fn classify(err: &ServiceError) -> Classified<'_> {
    match err {
        ServiceError::Invalid { field, .. } => Classified {
            field: Some(field),
            ..shown(Code::InvalidField, err.to_string())
        },
        ServiceError::NotFound(m) => shown(Code::NotFound, m.as_str()),
        ServiceError::Conflict(m) => shown(Code::Conflict, m.as_str()),
        ServiceError::Unauthenticated(m) => shown(Code::Unauthenticated, m.as_str()),
        ServiceError::Forbidden(m) => shown(Code::Forbidden, m.as_str()),
        ServiceError::Throttled { wait_seconds, .. } => Classified {
            retry_after: Some(*wait_seconds),
            ..shown(Code::RateLimited, err.to_string())
        },
        ServiceError::Unavailable(detail) => Classified {
            retry_after: Some(1),
            cause: Some(Cause::new("store unavailable", detail)),
            ..shown(Code::Unavailable, UNAVAILABLE_TEXT)
        },
        ServiceError::Internal(detail) => Classified {
            cause: Some(Cause::new("internal error", detail)),
            ..shown(Code::Internal, "internal error")
        },
    }
}

fn shown<'a>(code: Code, detail: impl Into<Cow<'a, str>>) -> Classified<'a> {
    Classified {
        code,
        detail: detail.into(),
        field: None,
        retry_after: None,
        cause: None,
    }
}

/// The cause of a 5xx, attached to its response as an extension for [`log_causes`]; never part
/// of a body. Carries what the service layer reported (store and internal failures), which names
/// no password, PIN or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// What failed, in a few words.
    pub what: &'static str,
    /// The detail.
    pub detail: String,
}

impl Cause {
    /// A cause.
    pub fn new(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            detail: detail.into(),
        }
    }

    /// Attaches the cause to `response`.
    pub fn attach(self, response: &mut Response) {
        response.extensions_mut().insert(self);
    }
}

/// The layer of [`crate::router`] that logs the cause of every 5xx once (`503` as a warning,
/// the others as errors) with the method and the path (never the query, which may hold a
/// password), and removes it from the response.
pub async fn log_causes(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let cause = response.extensions_mut().remove::<Cause>();
    let status = response.status();
    if let Some(Cause { what, detail }) = cause
        && status.is_server_error()
    {
        let path = sip_settings_core::ids::printable(&path);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(%method, %path, status = status.as_u16(), %detail, "{what}");
        } else {
            tracing::error!(%method, %path, status = status.as_u16(), %detail, "{what}");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::legacy::reply;
    use crate::v1::error::ApiError;

    /// One of each variant, with the status, code and client text every door answers it with
    /// (the action endpoint adds `Error: `, except its own words for a 503).
    fn every_variant() -> Vec<(ServiceError, u16, &'static str, &'static str)> {
        vec![
            (
                ServiceError::invalid("FUNC", "is not a SIP URI"),
                400,
                "invalid_field",
                "FUNC is not a SIP URI",
            ),
            (
                ServiceError::NotFound("no alias bob".to_owned()),
                404,
                "not_found",
                "no alias bob",
            ),
            (
                ServiceError::Conflict("bob is taken".to_owned()),
                409,
                "conflict",
                "bob is taken",
            ),
            (
                ServiceError::Unauthenticated("a client certificate is required".to_owned()),
                401,
                "unauthenticated",
                "a client certificate is required",
            ),
            (
                ServiceError::Forbidden("certificate revoked".to_owned()),
                403,
                "forbidden",
                "certificate revoked",
            ),
            (
                ServiceError::Throttled {
                    what: "too many failed password attempts".to_owned(),
                    wait_seconds: 900,
                },
                429,
                "rate_limited",
                "too many failed password attempts, try again in 900 s",
            ),
            (
                ServiceError::Unavailable("connection refused (db.internal:5432)".to_owned()),
                503,
                "unavailable",
                UNAVAILABLE_TEXT,
            ),
            (
                ServiceError::Internal("corrupt row 7 (secret cause)".to_owned()),
                500,
                "internal",
                "internal error",
            ),
        ]
    }

    async fn json_of(response: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn every_service_error_has_one_status_and_code() {
        for (e, status, code, detail) in every_variant() {
            let c = classify(&e);
            assert_eq!(c.status().as_u16(), status, "{e:?}");
            assert_eq!(c.code.as_str(), code, "{e:?}");
            assert_eq!(c.detail, detail, "{e:?}");
            assert_eq!(c.field, e.field(), "{e:?}");
            assert_eq!(c.cause.is_some(), status >= 500, "{e:?}");
        }
    }

    /// The action endpoint answers each variant with the mapping's status and its status
    /// object: the text with `Error: `, never a 5xx's cause, which rides as an extension.
    #[tokio::test]
    async fn the_action_endpoint_answers_every_variant_as_mapped() {
        for (e, status, _, detail) in every_variant() {
            let mut response = reply::service_error(&e);
            let cause = response.extensions_mut().remove::<Cause>();
            assert_eq!(cause.is_some(), status >= 500, "{e:?}");
            let (got, headers, body) = json_of(response).await;
            assert_eq!(got.as_u16(), status, "{e:?}");
            assert_eq!(body["success"], false, "{e:?}");
            let text = body["error_message"].as_str().unwrap();
            if status == 503 {
                assert_eq!(text, "Error: service temporarily unavailable, try again");
            } else {
                assert_eq!(text, format!("Error: {detail}"), "{e:?}");
            }
            assert!(
                !text.contains("secret") && !text.contains("db.internal"),
                "{text}"
            );
            match status {
                429 => assert_eq!(headers[header::RETRY_AFTER], "900"),
                503 => assert_eq!(headers[header::RETRY_AFTER], "1"),
                _ => assert!(headers.get(header::RETRY_AFTER).is_none(), "{e:?}"),
            }
        }
    }

    /// `/v1` answers each variant with the same status, the stable code and the detail as a
    /// problem document.
    #[tokio::test]
    async fn v1_answers_every_variant_as_mapped() {
        for (e, status, code, detail) in every_variant() {
            let field = e.field().map(str::to_owned);
            let mut response = ApiError::Service(e).into_response();
            let cause = response.extensions_mut().remove::<Cause>();
            assert_eq!(cause.is_some(), status >= 500, "{code}");
            let (got, headers, body) = json_of(response).await;
            assert_eq!(got.as_u16(), status, "{code}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            assert_eq!(body["status"], status, "{code}");
            assert_eq!(body["code"], code);
            assert_eq!(body["detail"], detail, "{code}");
            assert_eq!(body["field"].as_str(), field.as_deref(), "{code}");
            match status {
                429 => assert_eq!(headers[header::RETRY_AFTER], "900"),
                503 => assert_eq!(headers[header::RETRY_AFTER], "1"),
                _ => assert!(headers.get(header::RETRY_AFTER).is_none(), "{code}"),
            }
        }
    }

    /// The events logged while a test runs (`level message fields`).
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Fields(String);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(event.metadata().level().to_string());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    async fn a_bug() -> StatusCode {
        panic!("a bug (secret cause)")
    }

    /// A 5xx's cause is logged once, by the layer, with method and path but not the query; it
    /// is in no body and leaves the layer removed. A 4xx logs nothing.
    #[tokio::test]
    async fn the_layer_logs_a_5xx_cause_once_and_never_in_the_body() {
        let app = Router::new()
            .route(
                "/v1/internal",
                get(|| async {
                    ApiError::Service(ServiceError::Internal("corrupt row (secret cause)".into()))
                }),
            )
            .route(
                "/settings",
                get(|| async {
                    reply::service_error(&ServiceError::Unavailable(
                        "connection refused (secret cause)".into(),
                    ))
                }),
            )
            .route(
                "/v1/refused",
                get(|| async { ApiError::Service(ServiceError::invalid("x", "is bad")) }),
            )
            .route("/panic", get(a_bug))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                reply::panic_reply,
            ))
            .layer(axum::middleware::from_fn(log_causes));
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let cases = [
            ("/v1/internal?password=hunter2", 500, Some("ERROR")),
            (
                "/settings?action=account&password=hunter2",
                503,
                Some("WARN"),
            ),
            ("/v1/refused", 400, None),
            ("/panic", 500, Some("ERROR")),
        ];
        for (uri, status, level) in cases {
            capture.0.lock().unwrap().clear();
            let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{uri}");
            assert!(response.extensions().get::<Cause>().is_none(), "{uri}");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&bytes);
            assert!(!body.contains("secret"), "{uri}: {body}");
            let logged = capture.0.lock().unwrap().clone();
            match level {
                Some(level) => {
                    assert_eq!(logged.len(), 1, "{uri}: {logged:?}");
                    let line = &logged[0];
                    assert!(line.starts_with(level), "{uri}: {line}");
                    assert!(line.contains("secret cause"), "{uri}: {line}");
                    let path = uri.split('?').next().unwrap();
                    assert!(line.contains(path), "{uri}: {line}");
                    assert!(!line.contains("hunter2"), "{uri}: {line}");
                }
                None => assert!(logged.is_empty(), "{uri}: {logged:?}"),
            }
        }
    }

    /// `Error: ` is the action endpoint's alone: core's refusals do not carry it, the action
    /// endpoint adds it, `/v1` shows the text as it is.
    #[tokio::test]
    async fn the_error_prefix_is_the_action_endpoint_s_alone() {
        use axum::http::Method;

        use crate::v1::testing::TestApp;

        let t = TestApp::new().await;
        let r = t
            .send(
                &t.alice,
                Method::GET,
                "/settings.phtml?action=account&account=bob@example.com",
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{}", r.body);
        assert_eq!(
            r.body["error_message"],
            "Error: a certificate may act on its own account only"
        );
        t.services
            .revoke_certificate(&t.alice.record.serial)
            .await
            .unwrap();
        let r = t.send(&t.alice, Method::GET, "/v1/me", None).await;
        crate::v1::testing::assert_problem(&r, 403, "forbidden", None);
        assert_eq!(r.body["detail"], "certificate revoked");
        let r = t
            .send(
                &t.alice,
                Method::GET,
                "/settings.phtml?action=account",
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 403, "{}", r.body);
        assert_eq!(r.body["error_message"], "Error: certificate revoked");
    }
}
