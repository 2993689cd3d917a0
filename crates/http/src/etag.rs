//! Entity tags and conditional writes of the `/v1` resources.
//!
//! * Every resource representation carries a strong `ETag`: the SHA-256 of its JSON, in hex.
//! * A write may send `If-Match` with the tag it read (or `*`). When the resource's current tag
//!   differs, the write is refused with `412` (`precondition_failed`) and changes nothing. A write
//!   without `If-Match` is accepted (last writer wins). An `If-Match` that is not `*` or a
//!   comma-separated list of entity tags (RFC 9110 §8.8.3: `"…"` or `W/"…"`, visible ASCII
//!   without `"` and `,` inside) is malformed: `400 invalid_field` naming `If-Match`, so that a
//!   typo is told apart from a stale tag (the OpenAPI document gives the same syntax as a pattern,
//!   `crate::v1::doc::IF_MATCH_PATTERN`).
//! * A `GET` with `If-None-Match` naming the current tag is answered `304 Not Modified`.
//! * Check and write run in one store transaction that holds the account's write lock in the
//!   database (`Services::hold`: SQLite `BEGIN IMMEDIATE`, a PostgreSQL row lock), so no other
//!   write of the same account — through any door, on this or any other server sharing the
//!   database, or from the CLI — can land between the check and the write.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::v1::error::{ApiError, invalid};

/// The strong entity tag of a representation: `"<sha-256 of its JSON, hex>"`.
pub fn tag_of<T: Serialize + ?Sized>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    format!("\"{}\"", hex::encode(Sha256::digest(&bytes)))
}

fn set_etag(response: &mut Response, tag: &str) {
    if let Ok(v) = HeaderValue::from_str(tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A JSON reply with the representation's `ETag`.
pub fn reply<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let tag = tag_of(value);
    let mut response = (status, Json(value)).into_response();
    set_etag(&mut response, &tag);
    response
}

/// The reply to a read: `304` when `If-None-Match` names the current tag, else `200` with it.
pub fn read<T: Serialize>(headers: &HeaderMap, value: &T) -> Response {
    let tag = tag_of(value);
    if let Some(list) = header_list(headers, header::IF_NONE_MATCH) {
        // Weak comparison for If-None-Match (RFC 9110 §13.1.2).
        let matches = list
            .iter()
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag.as_str() || t == &tag);
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            set_etag(&mut response, &tag);
            return response;
        }
    }
    reply(StatusCode::OK, value)
}

/// The entity tags of a list header (`If-Match`, `If-None-Match`), or `None` when absent. A
/// value that is not visible ASCII counts as a tag that matches nothing.
fn header_list(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for v in values {
        match v.to_str() {
            Ok(s) => tags.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            ),
            Err(_) => tags.push(String::new()),
        }
    }
    Some(tags)
}

/// Whether an `If-Match` value is `*` or a comma-separated list of entity tags, with optional
/// spaces and tabs around the elements: the syntax `crate::v1::doc::IF_MATCH_PATTERN` states.
pub fn if_match_well_formed(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let ows = |c: char| c == ' ' || c == '\t';
    let text = text.trim_matches(ows);
    if text == "*" {
        return true;
    }
    text.split(',').all(|element| {
        let tag = element.trim_matches(ows);
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag.len() >= 2
            && tag.starts_with('"')
            && tag.ends_with('"')
            && tag.as_bytes()[1..tag.len() - 1]
                .iter()
                .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x7E))
    })
}

/// Checks `If-Match` against the current representation (`None`: the resource does not exist).
/// Strong comparison: a weak tag never matches. No `If-Match` passes; a malformed one is `400`.
pub fn check<T: Serialize>(headers: &HeaderMap, current: Option<&T>) -> Result<(), ApiError> {
    if headers
        .get_all(header::IF_MATCH)
        .iter()
        .any(|v| !if_match_well_formed(v.as_bytes()))
    {
        return Err(invalid(
            "If-Match",
            "must be * or a list of entity tags such as \"3f…\" (read the resource's ETag)",
        ));
    }
    let Some(list) = header_list(headers, header::IF_MATCH) else {
        return Ok(());
    };
    let current_tag = current.map(tag_of);
    let ok = match &current_tag {
        Some(tag) => list.iter().any(|t| t == "*" || t == tag),
        None => false,
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::Precondition {
        current_etag: current_tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_match_rules() {
        let v = serde_json::json!({"on": true});
        let tag = tag_of(&v);
        assert!(tag.starts_with('"') && tag.len() == 66);
        assert!(check(&HeaderMap::new(), Some(&v)).is_ok());
        assert!(check(&HeaderMap::new(), None::<&serde_json::Value>).is_ok());
        assert!(check(&headers(header::IF_MATCH, &tag), Some(&v)).is_ok());
        assert!(
            check(
                &headers(header::IF_MATCH, &format!("\"x\", {tag}")),
                Some(&v)
            )
            .is_ok()
        );
        assert!(check(&headers(header::IF_MATCH, "*"), Some(&v)).is_ok());
        assert!(check(&headers(header::IF_MATCH, "*"), None::<&serde_json::Value>).is_err());
        assert!(check(&headers(header::IF_MATCH, &format!("W/{tag}")), Some(&v)).is_err());
        let stale = check(&headers(header::IF_MATCH, "\"stale\""), Some(&v))
            .unwrap_err()
            .into_response();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(stale.headers()[header::ETAG], tag.as_str());
    }

    #[test]
    fn a_malformed_if_match_is_a_400_naming_it() {
        let v = serde_json::json!({"on": true});
        for bad in [
            "null", "abc", "\"", "\"a\"b\"", "*, \"a\"", "\"a\",", "w/\"a\"", "\"a b\"",
        ] {
            assert!(!if_match_well_formed(bad.as_bytes()), "{bad}");
            let r = check(&headers(header::IF_MATCH, bad), Some(&v))
                .unwrap_err()
                .into_response();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        for good in [
            "*",
            " * ",
            "\"\"",
            "\"a\", W/\"b\"",
            "\"x\",\t\"y\"",
            "W/\"!#~\"",
        ] {
            assert!(if_match_well_formed(good.as_bytes()), "{good}");
        }
        assert!(!if_match_well_formed(b"\"\xff\""));
    }

    #[test]
    fn if_none_match_gives_304() {
        let v = serde_json::json!([1, 2]);
        let tag = tag_of(&v);
        let r = read(&headers(header::IF_NONE_MATCH, &format!("W/{tag}")), &v);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = read(&headers(header::IF_NONE_MATCH, "\"other\""), &v);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::ETAG], tag.as_str());
    }
}
