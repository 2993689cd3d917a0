//! What the `/v1` handlers read from a request: strict JSON bodies whose refusals name the
//! offending field, strict query strings, path parameters whose refusals are problem documents
//! too.

use axum::body::Body;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use sip_settings_core::ids::whole_number;

use crate::MAX_BODY_BYTES;
use crate::params::Params;
use crate::problem::problem;
use crate::v1::error::{ApiError, invalid};

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
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(ApiError::from_response(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the request body must be at most {MAX_BODY_BYTES} bytes of JSON"),
                None,
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::from_response(problem(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "a JSON object is required as the request body",
            None,
        )));
    }
    if let Some(refusal) = not_an_object(&bytes) {
        return Err(refusal);
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
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
            let detail = match &field {
                Some(f) => format!("{f}: {message}"),
                None => format!("the body is not the expected JSON: {message}"),
            };
            let code = if field.is_some() {
                "invalid_field"
            } else {
                "invalid_json"
            };
            return Err(ApiError::from_response(problem(
                StatusCode::BAD_REQUEST,
                code,
                &detail,
                field.as_deref(),
            )));
        }
    };
    de.end().map_err(|e| {
        ApiError::from_response(problem(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            &format!("the body is not the expected JSON: {e}"),
            None,
        ))
    })?;
    Ok(value)
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
    Some(ApiError::from_response(problem(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        &detail,
        None,
    )))
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

/// A path parameter, or a `400` naming `field` when it cannot be decoded.
pub fn path_param(
    path: Result<Path<String>, PathRejection>,
    field: &str,
) -> Result<String, ApiError> {
    match path {
        Ok(Path(v)) => Ok(v),
        Err(_) => Err(invalid(
            field,
            "is not a valid path segment (UTF-8, percent-encoded)",
        )),
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
