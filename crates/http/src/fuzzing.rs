//! The bodies of the `cargo fuzz` targets of this crate (`fuzz/`), shared with the corpus
//! replay test (`crates/server/tests/fuzz_corpus.rs`) so that stable `cargo test` feeds every
//! saved input through exactly what the fuzzer ran. Each takes arbitrary bytes and panics only
//! when a property is violated; the server code they call must never panic.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::params::{MAX_PARAMS, MAX_VALUE_BYTES, Params};
use crate::v1::ApiError;

/// Runs a future that never waits (a body already in memory) to its end.
fn complete<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("reading an in-memory body did not complete");
}

/// The action endpoint's query/form decoder ([`Params::parse`]) and the `/v1` query decoder
/// ([`crate::v1::query`]) on arbitrary input, then a round trip: key/value pairs taken from the
/// input, percent-encoded as a client would, decode to exactly themselves, or are refused for
/// a documented reason (a control character, a value over [`MAX_VALUE_BYTES`], more than
/// [`MAX_PARAMS`] pairs).
pub fn action_params(data: &[u8]) {
    // First byte: the body's content type; up to the first newline: the query; the rest: the
    // body.
    let (selector, rest) = data.split_first().unwrap_or((&0, &[]));
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let mut headers = HeaderMap::new();
    let content_type = match selector % 4 {
        0 => None,
        1 => Some("application/x-www-form-urlencoded"),
        2 => Some("application/x-www-form-urlencoded; charset=utf-8"),
        _ => Some("text/plain"),
    };
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let _ = Params::parse(Some(&query), &headers, body);
    let _ = crate::v1::query(Some(&query), &["limit", "before", "days"]);

    // Round trip over the pairs the whole input spells as `k=v&k=v` (first of a key wins).
    let text = String::from_utf8_lossy(data);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for item in text.split('&').filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        if !pairs.iter().any(|(seen, _)| *seen == k) {
            pairs.push((k, v));
        }
    }
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect();
    let query = encoded.join("&");
    let bad = |s: &str| s.chars().any(|c| c.is_control() && c != '\t');
    let acceptable = pairs.len() <= MAX_PARAMS
        && pairs
            .iter()
            .all(|(k, v)| !bad(k) && !bad(v) && v.len() <= MAX_VALUE_BYTES);
    match Params::parse(Some(&query), &HeaderMap::new(), b"") {
        Ok(params) => {
            assert!(acceptable, "accepted {query:?}");
            for (k, v) in &pairs {
                assert_eq!(params.get(k), Some(*v), "{k:?} of {query:?}");
            }
        }
        Err(e) => assert!(!acceptable, "refused {query:?}: {e}"),
    }
}

/// One `/v1` body type through the server's own reader: accepted input is one JSON value with
/// nothing after it; a refusal is a `400` or `413` problem, never a server error.
fn through<T: DeserializeOwned>(data: &[u8], reader: impl Future<Output = Result<T, ApiError>>) {
    match complete(reader) {
        Ok(_) => {
            assert!(
                serde_json::from_slice::<serde_json::Value>(data).is_ok(),
                "accepted a body that is not one JSON value"
            );
        }
        Err(e) => {
            let status = e.into_response().status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
                "refused with {status}"
            );
        }
    }
}

/// Reads with `/v1`'s strict JSON extractor ([`crate::v1::json_body`]).
fn v1<T: DeserializeOwned>(data: &[u8]) {
    let body = Body::from(data.to_vec());
    through::<T>(data, crate::v1::json_body::<T>(body));
}

/// Reads with the service API's JSON extractor ([`crate::service_api::json_body`]).
fn service<T: DeserializeOwned>(data: &[u8]) {
    let body = Body::from(data.to_vec());
    through::<T>(data, async {
        crate::service_api::json_body::<T>(body)
            .await
            .map_err(ApiError::from_response)
    });
}

/// Every `/v1` request body type, each read from `data` by the function its handler uses.
pub fn v1_bodies(data: &[u8]) {
    use crate::resources::*;
    v1::<AccountPatch>(data);
    v1::<DiversionsPut>(data);
    v1::<DiversionsPatch>(data);
    v1::<DiversionBody>(data);
    v1::<AcceptRuleBody>(data);
    v1::<TemporaryRuleBody>(data);
    v1::<RejectRuleView>(data);
    v1::<DndBody>(data);
    v1::<PrivacyView>(data);
    v1::<AliasBody>(data);
    v1::<VoicemailBody>(data);
    v1::<PhonebookPost>(data);
    v1::<PhonebookPut>(data);
    v1::<CsrBody>(data);
    v1::<crate::explain::RouteRequest>(data);
    service::<sip_settings_core::calls::CallInput>(data);
    service::<crate::service_api::OpenBody>(data);
    service::<crate::service_api::CloseBody>(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_take_valid_and_invalid_input() {
        for input in [
            &b""[..],
            b"\x01action=set_diversions&FUNC=bob\nFBUS=%2B31201234567",
            b"a=%ff&b=%0d",
            b"\x00a=1&a=2",
            b"x=\t&=v",
        ] {
            action_params(input);
        }
        for input in [
            &br#"{"FUNC": "bob"}"#[..],
            br#"{"on": true}"#,
            br#"{"uri": "mom@example.org", "name": "Mom", "groups": ["family"]}"#,
            br#"{"duration": 5} x"#,
            b"[1, 2]",
            b"",
            b"\xff",
        ] {
            v1_bodies(input);
        }
    }
}
