//! What the `/v1` handlers read from a request, as extractors whose refusals are problem
//! documents ([`ApiError`]), the same for `/v1/me` and `/v1/service`:
//!
//! * [`Subscriber`] (`/v1/me`): the subscriber certificate, and one token of its request budget
//!   (reads for `GET`/`HEAD`, writes for the other methods) — a handler cannot have the caller
//!   without having spent it;
//! * [`ServiceClient`](crate::v1::service::client::ServiceClient) (`/v1/service`): the service
//!   certificate;
//! * [`JsonBody`]: a strict JSON object body whose refusals name the offending field. The
//!   `Content-Type` is not looked at: the body must be a JSON object whatever it says (Kamailio's
//!   `http_client` sends `application/json`, as the document asks);
//! * [`PathParam`]: a path parameter whose refusal names it;
//! * [`query`]: strict query strings.

use axum::body::Body;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::Method;
use axum::http::request::Parts;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use sip_settings_core::ids::whole_number;

use crate::identity::Subscriber;
use crate::params::Params;
use crate::ratelimit::Kind;
use crate::serve::Peer;
use crate::v1::error::{ApiError, invalid};
use crate::{AppState, MAX_BODY_BYTES};

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = ApiError;

    /// The subscriber, identified by the certificate, having spent one token of the budget of
    /// the request's kind (per certificate and per address); over it, `429` with `Retry-After`.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let me = Subscriber::identify(state, parts.extensions.get::<Peer>()).await?;
        let kind = if matches!(parts.method, Method::GET | Method::HEAD) {
            Kind::Read
        } else {
            Kind::Write
        };
        state
            .limiter
            .check(
                Some(&me.serial),
                me.addr.ip(),
                kind,
                state.services.clock().now(),
            )
            .map_err(|wait_seconds| ApiError::RateLimited { wait_seconds })?;
        Ok(me)
    }
}

/// A JSON object request body read by [`json_body`], of at most `LIMIT` bytes (a route that
/// takes a batch has a larger limit than the others).
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S>
    for JsonBody<T, LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        json_body_within(request.into_body(), LIMIT).await.map(Self)
    }
}

/// A path parameter; one that cannot be decoded (not UTF-8 once percent-decoded, or not of
/// the type) is `400 invalid_field` naming it.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(rejection) => {
                let field = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key }
                        | ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let field = match field {
                    Some(f) => f,
                    None => RawPathParams::from_request_parts(parts, state)
                        .await
                        .ok()
                        .and_then(|p| p.iter().next().map(|(k, _)| k.to_owned()))
                        .unwrap_or_else(|| "path".to_owned()),
                };
                Err(invalid(
                    &field,
                    "is not a valid path segment (UTF-8, percent-encoded)",
                ))
            }
        }
    }
}

/// The field a serde error is about, when its message names one.
fn field_of_message(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

/// Parses a JSON request body into `T`. A body over [`MAX_BODY_BYTES`] is `413`; malformed
/// JSON, and JSON that is not an object (an array, a string, a number, `true`, `null`), is
/// `400 invalid_json` (serde's derive would otherwise fill a struct from an array
/// positionally); a missing, unknown or mistyped field is `400 invalid_field` with `field`
/// naming it (a path such as `groups[1]` for nested values).
pub async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    json_body_within(body, MAX_BODY_BYTES).await
}

/// [`json_body`] with a limit of `limit` bytes instead of [`MAX_BODY_BYTES`].
async fn json_body_within<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(ApiError::BodyTooLarge { limit }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadJson {
            detail: "a JSON object is required as the request body".to_owned(),
        });
    }
    if let Some(refusal) = not_an_object(&bytes) {
        return Err(refusal);
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    // `60.0` is the integer 60 in JSON Schema, which the OpenAPI document follows: a body
    // refused only for an integral number written with a fraction is read again with it as an
    // integer.
    // (`from_slice` there reads the whole body, so no `de.end()` check is needed then.)
    if result.is_err()
        && let Some(v) = with_integral_numbers(&bytes)
    {
        return Ok(v);
    }
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            let named = field_of_message(&message);
            let field = match (path.as_str(), named) {
                (".", Some(f)) => Some(f),
                (".", None) => None,
                (p, Some(f)) if message.starts_with("missing field") => Some(format!("{p}.{f}")),
                (p, _) => Some(p.to_owned()),
            };
            // Syntax errors (not JSON at all) name no field.
            let field = if inner.is_syntax() || inner.is_eof() {
                None
            } else {
                field
            };
            return Err(match field {
                Some(field) => ApiError::BadField {
                    detail: format!("{field}: {message}"),
                    field,
                },
                None => ApiError::BadJson {
                    detail: format!("the body is not the expected JSON: {message}"),
                },
            });
        }
    };
    de.end().map_err(|e| ApiError::BadJson {
        detail: format!("the body is not the expected JSON: {e}"),
    })?;
    Ok(value)
}

/// The body as `T` with every number that has a zero fraction (`60.0`) made an integer, if it
/// has such a number and then reads as `T`.
fn with_integral_numbers<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    fn integral(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    // Exact below 2^53; the cast cannot truncate.
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *v = i.into();
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, i| integral(i) | c),
            serde_json::Value::Object(m) => m.values_mut().fold(false, |c, i| integral(i) | c),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !integral(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The refusal of a body whose top-level value is not a JSON object, if it is not.
fn not_an_object(bytes: &[u8]) -> Option<ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return None;
    }
    let detail = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => {
            let kind = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Null => "null",
                serde_json::Value::Object(_) => return None,
            };
            format!("the request body must be a JSON object {{…}}, not {kind}")
        }
        Err(e) => format!("the body is not the expected JSON: {e}"),
    };
    Some(ApiError::BadJson { detail })
}

/// The query string, decoded strictly; a parameter not in `allowed` is refused naming it.
pub fn query(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
    let params = Params::parse(raw, &axum::http::HeaderMap::new(), b"")?;
    if let Some(q) = raw {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap_or_default();
            let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            if !allowed.contains(&decoded.as_ref()) {
                return Err(invalid(
                    &decoded,
                    format!(
                        "is not a parameter of this resource (allowed: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(params)
}

/// A query parameter that is a whole number in `range` (default when absent): digits only, no
/// sign, no spaces.
pub fn number_param(
    params: &Params,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => match whole_number::<u32>(v) {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(invalid(
                name,
                format!(
                    "must be a whole number between {} and {}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// A query parameter that is `true` or `false` (default when absent).
pub fn bool_param(params: &Params, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(_) => Err(invalid(name, "must be true or false")),
    }
}

/// A clearable field of a PATCH body (`/v1/me/account`, `/v1/admin/accounts/…`): absent stays, `null` or `""` clears, else parsed.
pub fn clearable<T>(
    v: &Option<Option<String>>,
    parse: impl Fn(&str) -> Result<T, sip_settings_core::ServiceError>,
) -> Result<Option<Option<T>>, sip_settings_core::ServiceError> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(s)) if s.trim().is_empty() => Ok(Some(None)),
        Some(Some(s)) => parse(s).map(|x| Some(Some(x))),
    }
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, header};

    use crate::ratelimit::{Budget, RateLimits};
    use crate::v1::testing::{TestApp, assert_problem};

    /// An integral number written with a fraction (`60.0`, an integer in JSON Schema) is read
    /// as that integer; a real fraction is still refused naming its field.
    #[test]
    fn integral_numbers_with_a_fraction_are_integers() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct B {
            n: u32,
            m: Vec<i64>,
        }
        let read = |s: &str| super::with_integral_numbers::<B>(s.as_bytes());
        assert_eq!(
            read(r#"{"n": 60.0, "m": [-2.0]}"#),
            Some(B { n: 60, m: vec![-2] })
        );
        assert_eq!(read(r#"{"n": 60.5, "m": []}"#), None);
        assert_eq!(read(r#"{"n": 60, "m": []}"#), None, "nothing to change");
        assert_eq!(read(r#"{"n": 1.0, "m": []} x"#), None);
    }

    /// The body extractor refuses alike on `/v1/me` and `/v1/service`, as problem documents:
    /// not JSON, not an object, an unknown field, too large.
    #[tokio::test]
    async fn body_refusals_are_problems_on_me_and_service_alike() {
        let t = TestApp::new().await;
        let large = format!("{{\"caller\": \"{}\"}}", "a".repeat(crate::MAX_BODY_BYTES));
        let cases: [(&str, u16, &str, Option<&str>); 5] = [
            ("{", 400, "invalid_json", None),
            ("[1, 2]", 400, "invalid_json", None),
            ("", 400, "invalid_json", None),
            (r#"{"nonsense": 1}"#, 400, "invalid_field", Some("nonsense")),
            (&large, 413, "body_too_large", None),
        ];
        for (body, status, code, field) in cases {
            let me = t.send(&t.alice, Method::PATCH, "/v1/me", Some(body)).await;
            assert_problem(&me, status, code, field);
            let service = t
                .send(&t.service, Method::POST, "/v1/service/route", Some(body))
                .await;
            assert_problem(&service, status, code, field);
        }
    }

    /// A path parameter that is not UTF-8 is `400 invalid_field` naming the route's parameter,
    /// on `/v1/me` and `/v1/service` alike.
    #[tokio::test]
    async fn path_refusals_are_problems_naming_the_parameter() {
        let t = TestApp::new().await;
        let cases = [
            (&t.alice, Method::GET, "/v1/me/diversions/%FF", "condition"),
            (&t.alice, Method::DELETE, "/v1/me/aliases/%C3", "alias"),
            (
                &t.alice,
                Method::GET,
                "/v1/me/certificates/%FF%FE",
                "serial",
            ),
            (&t.alice, Method::GET, "/v1/me/usage/%FF", "month"),
            (
                &t.service,
                Method::POST,
                "/v1/service/prepaid/sessions/%FF/close",
                "call_id",
            ),
        ];
        for (cert, method, path, field) in cases {
            let body = (method == Method::POST).then_some(r#"{"duration": 0}"#);
            let r = t.send(cert, method, path, body).await;
            assert_problem(&r, 400, "invalid_field", Some(field));
        }
    }

    /// The caller's certificate is checked by the extractors of both APIs, refusing with
    /// problem documents: none is `401`, the other API's is `403`; the action endpoint keeps
    /// its status object, with `Error: ` added there.
    #[tokio::test]
    async fn identity_refusals_are_problems_on_me_and_service() {
        let t = TestApp::new().await;
        let r = t.send_as(None, Method::GET, "/v1/me", None).await;
        assert_problem(&r, 401, "unauthenticated", None);
        assert_eq!(r.body["detail"], "a client certificate is required");
        let r = t
            .send_as(None, Method::POST, "/v1/service/route", Some("{}"))
            .await;
        assert_problem(&r, 401, "unauthenticated", None);
        let r = t.send(&t.service, Method::GET, "/v1/me", None).await;
        assert_problem(&r, 403, "forbidden", None);
        assert_eq!(
            r.body["detail"],
            "this endpoint takes subscriber certificates only"
        );
        let r = t
            .send(&t.alice, Method::POST, "/v1/service/route", Some("{}"))
            .await;
        assert_problem(&r, 403, "forbidden", None);
        let r = t
            .send_as(None, Method::GET, "/settings.phtml?action=account", None)
            .await;
        assert_eq!(r.status.as_u16(), 401);
        assert_eq!(r.body["success"], false);
        assert_eq!(
            r.body["error_message"],
            "Error: a client certificate is required"
        );
        let r = t
            .send(
                &t.service,
                Method::GET,
                "/settings.phtml?action=account",
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 403);
        assert_eq!(
            r.body["error_message"],
            "Error: this endpoint takes subscriber certificates only"
        );
    }

    /// The `/v1/me` extractor spends the request budget: reads from the read budget, writes
    /// from the write budget, and over it a `429` problem with `Retry-After` — before the body
    /// or the path is looked at.
    #[tokio::test]
    async fn the_subscriber_extractor_spends_the_request_budget() {
        let one = Budget {
            per_second: 0.001,
            burst: 1.0,
        };
        let plenty = Budget {
            per_second: 1000.0,
            burst: 1000.0,
        };
        let t = TestApp::with_limits(Some(RateLimits {
            certificate_reads: one,
            certificate_writes: one,
            address_reads: plenty,
            address_writes: plenty,
        }))
        .await;
        let r = t.send(&t.alice, Method::GET, "/v1/me", None).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        let r = t
            .send(&t.alice, Method::GET, "/v1/me/diversions", None)
            .await;
        assert_problem(&r, 429, "rate_limited", None);
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        // The write budget is its own.
        let r = t.send(&t.alice, Method::PATCH, "/v1/me", Some("{}")).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        let r = t
            .send(&t.alice, Method::PATCH, "/v1/me", Some("not json"))
            .await;
        assert_problem(&r, 429, "rate_limited", None);
        let r = t
            .send(&t.alice, Method::DELETE, "/v1/me/diversions/%FF", None)
            .await;
        assert_problem(&r, 429, "rate_limited", None);
        // The service API has no budget.
        for _ in 0..3 {
            let r = t
                .send(&t.service, Method::POST, "/v1/service/route", Some("{"))
                .await;
            assert_problem(&r, 400, "invalid_json", None);
        }
    }
}
