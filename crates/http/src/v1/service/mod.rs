//! The service API under `/v1/service/` for SIP proxies and call control (service
//! certificates only): routing questions, recording calls, running prepaid sessions and
//! recording registrations. JSON in and out; errors are problem documents. [`client`] is what
//! the resources share (the service certificate); they import nothing else of
//! each other.

pub mod calls;
pub mod client;
pub mod prepaid;
pub mod registrations;
pub mod route;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The service routes (documented in `/v1/openapi.json`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(route::route))
        .routes(routes!(calls::record_call))
        .routes(routes!(calls::record_calls))
        .routes(routes!(prepaid::open_session))
        .routes(routes!(prepaid::close_session))
        .routes(routes!(registrations::register))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use crate::v1::testing::TestApp;

    /// What the document promises of every `400` of the service routes: a problem document whose
    /// `field` names what is wrong, unless the body is not JSON at all (`invalid_json`).
    #[tokio::test]
    async fn every_400_names_its_field_unless_the_body_is_not_json() {
        let t = TestApp::new().await;
        let cases = [
            (
                "/v1/service/route",
                r#"{"caller": "x", "registered": true, "busy": false}"#,
                "account",
            ),
            (
                "/v1/service/route",
                r#"{"account": "alice@example.com", "caller": "<<", "registered": true, "busy": false}"#,
                "caller",
            ),
            ("/v1/service/calls", r#"{"call_id": "x"}"#, "caller"),
            ("/v1/service/calls/batch", r#"{"calls": []}"#, "calls"),
            (
                "/v1/service/prepaid/sessions",
                r#"{"destination": "+1", "call_id": "c"}"#,
                "account",
            ),
            (
                "/v1/service/prepaid/sessions/%FF/close",
                r#"{"duration": 0}"#,
                "call_id",
            ),
            (
                "/v1/service/prepaid/sessions/c/close",
                r#"{"duration": -1}"#,
                "duration",
            ),
            (
                "/v1/service/registrations",
                r#"{"aor": "x", "cseq": 1}"#,
                "aor",
            ),
        ];
        for (path, body, field) in cases {
            let r = t.send(&t.service, Method::POST, path, Some(body)).await;
            assert_eq!(r.status.as_u16(), 400, "{path} {body}: {}", r.body);
            assert_eq!(
                r.content_type, "application/problem+json",
                "{path} {body}: {}",
                r.body
            );
            assert_eq!(r.body["code"], "invalid_field", "{path} {body}: {}", r.body);
            assert_eq!(r.body["field"], field, "{path} {body}: {}", r.body);
        }
        let r = t
            .send(&t.service, Method::POST, "/v1/service/calls", Some("{"))
            .await;
        assert_eq!(r.body["code"], "invalid_json", "{}", r.body);
        assert!(r.body["field"].is_null(), "{}", r.body);
    }

    /// A batch of `n` calls placed by alice, their Call-IDs starting with `tag`.
    fn batch(n: usize, tag: &str) -> String {
        let calls: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"call_id": "{tag}-{i:04}@proxy.example.com", "from_tag": "f{i}", "to_tag": "t{i}",
                    "caller": "sip:alice@example.com", "callee": "sip:+31201234567@example.com",
                    "start": "2026-12-01T10:00:00Z", "stop": "2026-12-01T10:01:00Z",
                    "duration": 60, "status": 200, "media": ["audio"], "proxy_ip": "192.0.2.1"}}"#
                )
            })
            .collect();
        format!(r#"{{"calls": [{}]}}"#, calls.join(","))
    }

    /// A full batch (1 000 records, far over the 64 KiB of other bodies) is taken whole; a body
    /// over the batch route's 1 MiB, and one over 64 KiB on the single-record route, are `413`
    /// naming their own limit.
    #[tokio::test]
    async fn a_full_batch_fits_and_each_route_names_its_own_body_limit() {
        let t = TestApp::new().await;
        let full = batch(super::calls::MAX_BATCH, "full");
        assert!(full.len() > crate::MAX_BODY_BYTES, "{}", full.len());
        let path = "/v1/service/calls/batch";
        let r = t.send(&t.service, Method::POST, path, Some(&full)).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        assert_eq!(r.body["recorded"], super::calls::MAX_BATCH, "{}", r.body);
        assert_eq!(r.body["replays"], 0, "{}", r.body);
        let r = t.send(&t.service, Method::POST, path, Some(&full)).await;
        assert_eq!(r.body["recorded"], 0, "{}", r.body);
        assert_eq!(r.body["replays"], super::calls::MAX_BATCH, "{}", r.body);

        let pad = " ".repeat(super::calls::MAX_BATCH_BYTES);
        let over = format!("{{{pad}\"calls\": []}}");
        let r = t.send(&t.service, Method::POST, path, Some(&over)).await;
        assert_eq!(r.status.as_u16(), 413, "{}", r.body);
        let limit = super::calls::MAX_BATCH_BYTES.to_string();
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&limit), "{}", r.body);

        let single = format!(
            "{{{}\"call_id\": \"x\"}}",
            " ".repeat(crate::MAX_BODY_BYTES)
        );
        let r = t
            .send(&t.service, Method::POST, "/v1/service/calls", Some(&single))
            .await;
        assert_eq!(r.status.as_u16(), 413, "{}", r.body);
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&crate::MAX_BODY_BYTES.to_string()),
            "{}",
            r.body
        );
    }
}
