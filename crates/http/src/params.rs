//! The parameters of an action request: the query string and, for a form POST, the body,
//! decoded strictly (invalid percent-encoding or UTF-8 is an error, not a replacement
//! character), bounded in count, with conflicting repeats refused.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use percent_encoding::percent_decode;
use sip_settings_core::ServiceError;

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;
/// Longest parameter value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Decoded request parameters.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, String>,
    pairs: usize,
    /// One parameter allowed past [`MAX_VALUE_BYTES`], with its own limit.
    long: Option<(&'static str, usize)>,
}

impl Params {
    /// Parses the query string and, when present, a form-encoded body.
    pub fn parse(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self, ServiceError> {
        Self::parse_allowing(query, headers, body, None)
    }

    /// [`Params::parse`], letting the parameter `long.0` be up to `long.1` bytes instead of
    /// [`MAX_VALUE_BYTES`] (the `data` of a chat-journal write).
    pub fn parse_allowing(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        long: Option<(&'static str, usize)>,
    ) -> Result<Self, ServiceError> {
        let mut params = Self {
            long,
            ..Self::default()
        };
        if let Some(q) = query {
            params.add_encoded(q.as_bytes())?;
        }
        if !body.is_empty() {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-www-form-urlencoded");
            let essence = content_type.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(ServiceError::invalid(
                    "Content-Type",
                    "must be application/x-www-form-urlencoded",
                ));
            }
            params.add_encoded(body)?;
        }
        Ok(params)
    }

    fn add_encoded(&mut self, input: &[u8]) -> Result<(), ServiceError> {
        for pair in input.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            self.pairs += 1;
            if self.pairs > MAX_PARAMS {
                return Err(ServiceError::invalid(
                    "request",
                    format!("has more than {MAX_PARAMS} parameters"),
                ));
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = decode(k, "a parameter name")?;
            let value = decode(v, &key)?;
            let max = match self.long {
                Some((name, max)) if name == key => max,
                _ => MAX_VALUE_BYTES,
            };
            if value.len() > max {
                return Err(ServiceError::invalid(
                    key,
                    format!("is longer than {max} bytes"),
                ));
            }
            match self.values.get(&key) {
                Some(existing) if *existing != value => {
                    return Err(ServiceError::invalid(
                        key,
                        "is given more than once with different values",
                    ));
                }
                _ => {
                    self.values.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Whether a parameter is present (possibly empty).
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
}

fn decode(raw: &[u8], what: &str) -> Result<String, ServiceError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&plus_as_space).collect();
    let text = String::from_utf8(decoded)
        .map_err(|_| ServiceError::invalid(what, "is not valid UTF-8"))?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ServiceError::invalid(what, "contains control characters"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_and_form_body() {
        let p = Params::parse(Some("action=account&x=a+b%21"), &HeaderMap::new(), b"y=1").unwrap();
        assert_eq!(p.get("action"), Some("account"));
        assert_eq!(p.get("x"), Some("a b!"));
        assert_eq!(p.get("y"), Some("1"));
    }

    #[test]
    fn refuses_bad_input() {
        let h = HeaderMap::new();
        assert!(Params::parse(Some("a=%ff"), &h, b"").is_err());
        assert!(Params::parse(Some("a=1&a=2"), &h, b"").is_err());
        assert!(Params::parse(Some("a=1&a=1"), &h, b"").is_ok());
        assert!(Params::parse(Some("a=%0d%0a"), &h, b"").is_err());
        let many = "a=1&".repeat(10_000);
        let err = Params::parse(Some(&many), &h, b"").unwrap_err();
        assert!(err.to_string().contains("more than"));
    }
}
