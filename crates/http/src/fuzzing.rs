//! The bodies of the `cargo fuzz` targets (`fuzz/`), shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so that stable `cargo test` feeds every saved input through exactly
//! what the fuzzer ran. Each takes arbitrary bytes and panics only when a property is violated;
//! the code they call must never panic.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use sip_settings_core::import::{CALLS_HEADER, RATES_HEADER, parse_calls_csv, parse_rates_csv};

use crate::params::{MAX_PARAMS, MAX_VALUE_BYTES, Params};
use crate::v1::error::ApiError;

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
/// ([`crate::v1::extract::query`]) on arbitrary input, then a round trip: key/value pairs taken from the
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
    let _ = crate::v1::extract::query(Some(&query), &["limit", "before", "days"]);

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

/// Reads with `/v1`'s strict JSON extractor ([`crate::v1::extract::json_body`]), the one of
/// `/v1/me` and `/v1/service` alike.
fn v1<T: DeserializeOwned>(data: &[u8]) {
    let body = Body::from(data.to_vec());
    through::<T>(data, crate::v1::extract::json_body::<T>(body));
}

/// Every `/v1` request body type, each read from `data` by the function its handler uses.
pub fn v1_bodies(data: &[u8]) {
    use crate::v1::me::accept::{AcceptRuleBody, TemporaryRuleBody};
    use crate::v1::me::account::AccountPatch;
    use crate::v1::me::aliases::AliasBody;
    use crate::v1::me::certificates::CsrBody;
    use crate::v1::me::dnd::DndBody;
    use crate::v1::me::forwarding::{DiversionBody, DiversionsPatch, DiversionsPut};
    use crate::v1::me::phonebook::{PhonebookPost, PhonebookPut};
    use crate::v1::me::privacy::PrivacyView;
    use crate::v1::me::reject::RejectRuleView;
    use crate::v1::me::voicemail::VoicemailBody;
    use crate::v1::service::calls::CallRecordBody;
    use crate::v1::service::prepaid::{CloseBody, OpenBody};
    use crate::v1::service::route::RouteRequest;
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
    v1::<RouteRequest>(data);
    v1::<CallRecordBody>(data);
    v1::<OpenBody>(data);
    v1::<CloseBody>(data);
}

/// Writes records under a header as CSV (the importers' format).
fn write_csv(header: &[&str], records: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let rows = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
        .chain(records.iter().cloned());
    for row in rows {
        if let Err(e) = writer.write_record(&row) {
            panic!("writing CSV to memory failed: {e}");
        }
    }
    match writer.into_inner() {
        Ok(bytes) => bytes,
        Err(e) => panic!("writing CSV to memory failed: {e}"),
    }
}

/// The rates importer's parser ([`parse_rates_csv`]) on arbitrary bytes; what it accepts,
/// written back as CSV, parses to the same rates.
pub fn rates_csv(data: &[u8]) {
    let Ok(rates) = parse_rates_csv(data, "fuzz") else {
        return;
    };
    let records: Vec<Vec<String>> = rates
        .iter()
        .map(|r| {
            vec![
                r.prefix.clone(),
                r.description.clone(),
                r.connect_fee.to_string(),
                r.rate_per_minute.to_string(),
                r.increment_seconds.to_string(),
                r.minimum_seconds.to_string(),
            ]
        })
        .collect();
    let written = write_csv(&RATES_HEADER, &records);
    match parse_rates_csv(&written, "round trip") {
        Ok(again) => assert_eq!(again, rates, "{}", String::from_utf8_lossy(&written)),
        Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
    }
}

/// The calls importer's parser ([`parse_calls_csv`]) and the field checks every imported call
/// goes through ([`sip_settings_core::calls::CallInput::parse`]) on arbitrary bytes; the lines
/// it reads, written back as CSV, read the same.
pub fn calls_csv(data: &[u8]) {
    let Ok(lines) = parse_calls_csv(data, "fuzz") else {
        return;
    };
    let inputs: Vec<_> = lines.into_iter().filter_map(|(_, i)| i.ok()).collect();
    let checked: Vec<String> = inputs.iter().map(|i| format!("{:?}", i.parse())).collect();
    let records: Vec<Vec<String>> = inputs
        .iter()
        .map(|i| {
            vec![
                i.call_id.clone(),
                i.from_tag.clone(),
                i.to_tag.clone(),
                i.caller.clone(),
                i.callee.clone(),
                i.start.clone(),
                i.stop.clone(),
                i.duration.map(|d| d.to_string()).unwrap_or_default(),
                i.status.map(|s| s.to_string()).unwrap_or_default(),
                i.media.join(" "),
                i.proxy_ip.clone(),
                i.price.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let written = write_csv(&CALLS_HEADER, &records);
    let again = match parse_calls_csv(&written, "round trip") {
        Ok(lines) => lines,
        Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
    };
    let again: Vec<String> = again
        .into_iter()
        .map(|(_, i)| match i {
            Ok(i) => format!("{:?}", i.parse()),
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
        })
        .collect();
    assert_eq!(again, checked, "{}", String::from_utf8_lossy(&written));
}

/// The `Authorization: Digest` parser ([`sip_settings_core::digest::Authorization::parse`]) on
/// arbitrary text: it never panics; what it accepts, written back with every value quoted and
/// escaped, parses to exactly the same answer.
pub fn digest_authorization(data: &[u8]) {
    use sip_settings_core::digest::Authorization;
    let text = String::from_utf8_lossy(data);
    let Ok(a) = Authorization::parse(&text) else {
        return;
    };
    let q = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut again = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", \
         response=\"{}\", algorithm={}, cnonce=\"{}\", nc={}, qop=auth",
        q(&a.username),
        q(&a.realm),
        q(&a.nonce),
        q(&a.uri),
        a.response,
        a.algorithm.as_str(),
        q(&a.cnonce),
        a.nc_text
    );
    if let Some(o) = &a.opaque {
        again.push_str(&format!(", opaque=\"{}\"", q(o)));
    }
    if again.len() > sip_settings_core::digest::MAX_HEADER_BYTES {
        return;
    }
    match Authorization::parse(&again) {
        Ok(b) => assert_eq!(a, b, "{again}"),
        Err(e) => panic!("{again}: {e}"),
    }
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

    #[test]
    fn the_csv_targets_take_valid_and_invalid_input() {
        for input in [
            &b""[..],
            b"prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\n31,NL,0.05,0.10,60,60\n316,\"NL, mobile\",0,0.25,1,30\n",
            b"prefix,description,connect_fee,rate_per_minute,increment_seconds,minimum_seconds\nx,NL,-1,0.10,0,60\n",
            b"\xff\xfe",
        ] {
            rates_csv(input);
        }
        for input in [
            &b""[..],
            b"call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\nx1,a,b,sip:bob@example.com,sip:alice@example.com,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,60,200,audio video,192.0.2.1,0.2500\n",
            b"call_id,from_tag,to_tag,caller,callee,start,stop,duration,status,media,proxy_ip,price\nx1,,,,,,,-5,abc,,,\n",
        ] {
            calls_csv(input);
        }
    }
}
