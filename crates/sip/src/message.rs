//! SIP messages: parsing what a redirect server reads (RFC 3261 §7, §18.3, §20, §25; the
//! RFC 4475 torture tests). [`parse`] takes one whole message (a UDP datagram or one framed
//! stream message) and checks what the server relies on: the start line, the header section
//! (folding, compact names, UTF-8), the mandatory header fields, that single-valued fields are
//! not given twice with different values, the syntax of Via, From, To, Contact, CSeq,
//! Max-Forwards and Content-Length, and the body length. [`frame`] and [`skip_keepalive`] cut
//! messages out of a TCP/TLS byte stream. The field parsers ([`parse_name_addr`], [`parse_via`],
//! [`parse_cseq`]) are public for the redirect layer.
//!
//! The parser works on borrowed text and allocates only the owned fields of the result (a
//! name and a value per header line, the start line's parts and the body).

use std::fmt;

use crate::uri;

/// The largest message accepted, in bytes (head and body); larger input is refused.
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// The start of the reason of a [`ParseError`] for a request with another SIP version
/// (answered 505 Version Not Supported).
const UNSUPPORTED_VERSION: &str = "unsupported SIP version";

/// The start of the reason of a [`ParseError`] for a URI of a scheme other than sip, sips or
/// tel (answered 416 Unsupported URI Scheme).
const UNSUPPORTED_SCHEME: &str = "unsupported URI scheme";

/// Header fields that may appear once (RFC 3261 §7.3.1: not comma-separated lists).
const SINGLE_VALUED: [&str; 6] = [
    "call-id",
    "cseq",
    "from",
    "to",
    "content-length",
    "max-forwards",
];

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request (`INVITE sip:… SIP/2.0`).
    Request(Request),
    /// A response (`SIP/2.0 200 OK`).
    Response(Response),
}

impl Message {
    /// The header fields of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The body of either kind.
    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, case-sensitive as received (`INVITE`; unknown methods are kept).
    pub method: String,
    /// The Request-URI text as received; [`Request::parse_uri`] parses it.
    pub uri: String,
    /// The header fields in order.
    pub headers: Headers,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// Parses the Request-URI; a scheme other than sip, sips or tel is an error whose
    /// [`ParseError::status`] is 416.
    pub fn parse_uri(&self) -> Result<uri::Uri, ParseError> {
        uri::parse_uri(&self.uri)
    }
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100 to 699.
    pub code: u16,
    /// The reason phrase as received (may be empty, may be UTF-8).
    pub reason: String,
    /// The header fields in order.
    pub headers: Headers,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The canonical name: lower case, compact forms expanded (`i` → `call-id`, `v` → `via`, …).
    pub name: String,
    /// The value: folded continuation lines joined with one space, leading and trailing
    /// whitespace removed.
    pub value: String,
}

/// The header fields of a message, in the order received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No header fields.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header line; `name` is made canonical (lower case, compact form expanded)
    /// and `value` is trimmed.
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push(Header {
            name: canonical_name(name),
            value: trim_lws(value).to_owned(),
        });
    }

    /// How many header lines there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every header line in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The value of the first header line with this canonical name (pass the lower-case long
    /// name, such as `"call-id"`; the comparison ignores ASCII case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The values of every header line with this canonical name, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of a list header (Via, Contact, Route, Supported, …): all lines with this
    /// name, each split at the commas that are not inside a quoted string or `<…>`, trimmed,
    /// empty items dropped.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| split_list(&h.value))
            .collect()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Headers(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a message (or a header field value) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, for the log and the reason phrase (e.g. "CSeq method INVITE does not
    /// match the request method OPTIONS").
    pub reason: String,
    /// The header fields when the message was a request whose header section could be split
    /// into header lines, so the server may answer (with [`ParseError::status`]); `None` for
    /// responses and for input that is not a readable request.
    pub headers: Option<Headers>,
}

impl ParseError {
    /// An error without header fields.
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
            headers: None,
        }
    }

    /// The status a server answers a request refused for this reason with: 505 for another
    /// SIP version, 416 for an unsupported URI scheme, else 400.
    pub fn status(&self) -> u16 {
        if self.reason.starts_with(UNSUPPORTED_VERSION) {
            505
        } else if self.reason.starts_with(UNSUPPORTED_SCHEME) {
            416
        } else {
            400
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Parses one whole message (a UDP datagram, or one message cut out by [`frame`]).
///
/// Leading CRLFs (keep-alives) are skipped. The header section must be UTF-8 and end with an
/// empty line. The body is Content-Length bytes: a larger Content-Length than the bytes present
/// is an error, a smaller one leaves the rest unread (RFC 3261 §18.3), and without one the body
/// is the rest of the input.
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::new(format!(
            "message of {} bytes is longer than the limit of {MAX_MESSAGE_BYTES}",
            bytes.len()
        )));
    }
    let data = bytes.get(skip_keepalive(bytes)..).unwrap_or_default();
    if data.is_empty() {
        return Err(ParseError::new("empty message"));
    }
    let (head, body, terminated) = match head_end(data) {
        Some(end) => {
            let (head, body) = data.split_at_checked(end).unwrap_or((data, &[]));
            (head, body, true)
        }
        None => (data, &[][..], false),
    };
    let head = std::str::from_utf8(head).map_err(|e| {
        ParseError::new(format!(
            "the header section is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    let (start_line, header_text) = head.split_once('\n').unwrap_or((head, ""));
    let start_line = start_line.strip_suffix('\r').unwrap_or(start_line);
    let is_response = start_line
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("SIP/"));
    let headers = Headers(split_header_lines(header_text).map_err(ParseError::new)?);
    let checked = if terminated {
        check(start_line, is_response, &headers, body)
    } else {
        Err("the header section does not end with an empty line".to_owned())
    };
    match checked {
        Ok((start, body)) => Ok(match start {
            StartLine::Request { method, uri } => Message::Request(Request {
                method: method.to_owned(),
                uri: uri.to_owned(),
                headers,
                body: body.to_vec(),
            }),
            StartLine::Response { code, reason } => Message::Response(Response {
                code,
                reason: reason.to_owned(),
                headers,
                body: body.to_vec(),
            }),
        }),
        Err(reason) => Err(ParseError {
            reason,
            headers: (!is_response).then_some(headers),
        }),
    }
}

/// Stream framing (TCP/TLS): how many bytes at the start of `buf` form the first complete
/// message (head and Content-Length body). `Ok(None)`: more bytes are needed. `Err`: the stream
/// cannot be framed (no, several differing or a malformed Content-Length, or a message longer
/// than [`MAX_MESSAGE_BYTES`]) and the connection should be closed.
///
/// Call [`skip_keepalive`] first; keep-alive CRLFs left at the start are counted in the
/// returned length (and [`parse`] skips them).
pub fn frame(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skip = skip_keepalive(buf);
    let data = buf.get(skip..).unwrap_or_default();
    let Some(head_len) = head_end(data) else {
        return if data.len() > MAX_MESSAGE_BYTES {
            Err(ParseError::new(format!(
                "no end of the header section within {MAX_MESSAGE_BYTES} bytes"
            )))
        } else {
            Ok(None)
        };
    };
    let head = data.get(..head_len).unwrap_or_default();
    let body_len = stream_content_length(head)?;
    let total = head_len.saturating_add(body_len);
    if total > MAX_MESSAGE_BYTES {
        return Err(ParseError::new(format!(
            "message of {total} bytes is longer than the limit of {MAX_MESSAGE_BYTES}"
        )));
    }
    Ok((data.len() >= total).then_some(skip + total))
}

/// How many CR and LF bytes start `buf`: keep-alives (RFC 5626 §4.4.1: a client's CRLFCRLF
/// "ping", answered with a CRLF "pong"; RFC 3261 §7.5: CRLFs before a start line are ignored)
/// that are not part of a message and are dropped.
pub fn skip_keepalive(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// A parsed name-addr or addr-spec (From, To, Contact, Route, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name: a quoted string's content (quoted-pairs resolved), or the unquoted
    /// tokens as written.
    pub display: Option<String>,
    /// The URI text (inside `<…>` for a name-addr); not parsed, as other schemes are valid here.
    pub uri: String,
    /// The header parameters in order, names lower-case; a quoted value keeps its quotes.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// The header parameter `name` (case-insensitive): `None` if absent, `Some(None)` without a
    /// value, `Some(Some(v))` with one.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter's value.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// Parses `"Display" <uri>;p=v`, `Display <uri>`, `<uri>` or an addr-spec `sip:u@h;tag=x`
/// (whose `;` parameters are header parameters, and which may not contain `?`, `,` or `;` in
/// its URI: RFC 3261 §20).
pub fn parse_name_addr(value: &str) -> Result<NameAddr, ParseError> {
    let parts = name_addr_parts(value).map_err(ParseError::new)?;
    let display = match parts.display {
        Some(Display::Quoted(q)) => Some(unquote(q)),
        Some(Display::Tokens(t)) => Some(t.to_owned()),
        None => None,
    };
    Ok(NameAddr {
        display,
        uri: parts.uri.to_owned(),
        params: owned_params(parts.params).map_err(ParseError::new)?,
    })
}

/// One Via value (a via-parm; get each with `Headers::list("via")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version without whitespace, e.g. `SIP/2.0`.
    pub protocol: String,
    /// The transport in upper case: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …
    pub transport: String,
    /// The sent-by host as received; an IPv6 reference keeps its brackets.
    pub host: String,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// The parameters in order, names lower-case (`branch`, `received`, `rport`, …).
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// The `branch` parameter's value.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The parameter `name` (case-insensitive): `None` if absent, `Some(None)` without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
}

/// Parses one via-parm: `SIP / 2.0 / UDP host[:port];params` (whitespace is allowed around the
/// slashes and the colon, RFC 3261 §25.1 SLASH and COLON).
pub fn parse_via(value: &str) -> Result<Via, ParseError> {
    let v = via_parts(value).map_err(ParseError::new)?;
    Ok(Via {
        protocol: format!("{}/{}", v.name, v.version),
        transport: v.transport.to_ascii_uppercase(),
        host: v.host.to_owned(),
        port: v.port,
        params: owned_params(v.params).map_err(ParseError::new)?,
    })
}

/// A CSeq value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number, below 2³¹ (RFC 3261 §8.1.1.5).
    pub number: u32,
    /// The method.
    pub method: String,
}

/// Parses `1*DIGIT LWS Method` (leading zeros allowed).
pub fn parse_cseq(value: &str) -> Result<CSeq, ParseError> {
    let (number, method) = cseq_parts(value).map_err(ParseError::new)?;
    Ok(CSeq {
        number,
        method: method.to_owned(),
    })
}

/// Functions for the `sip_message` cargo-fuzz target and its corpus replay test.
pub mod fuzzing {
    use super::*;

    /// Feeds `data` to [`parse`], [`frame`] and [`skip_keepalive`], and the field parsers to
    /// the fields of what parses. Panics when an invariant breaks: a framed length beyond the
    /// input, or a parsed message whose Via, From, To, Contact or CSeq the field parsers refuse
    /// although [`parse`] checked them.
    pub fn sip_message(data: &[u8]) {
        let skip = skip_keepalive(data);
        assert!(skip <= data.len());
        if let Ok(Some(n)) = frame(data) {
            assert!(n > skip && n <= data.len(), "frame {n} of {}", data.len());
            if let Some(first) = data.get(..n) {
                let _ = parse(first);
            }
        }
        match parse(data) {
            Ok(message) => {
                let headers = message.headers();
                for via in headers.list("via") {
                    let parsed = parse_via(via);
                    assert!(parsed.is_ok(), "Via {via:?}: {parsed:?}");
                }
                for name in ["from", "to"] {
                    let value = headers.get(name).unwrap_or_default();
                    let parsed = parse_name_addr(value);
                    assert!(parsed.is_ok(), "{name} {value:?}: {parsed:?}");
                    if let Ok(na) = parsed {
                        let _ = uri::parse_uri(&na.uri);
                    }
                }
                for contact in headers.list("contact") {
                    if contact != "*" {
                        assert!(parse_name_addr(contact).is_ok(), "Contact {contact:?}");
                    }
                }
                let cseq = parse_cseq(headers.get("cseq").unwrap_or_default());
                assert!(cseq.is_ok(), "CSeq: {cseq:?}");
                if let Message::Request(request) = &message {
                    if let Ok(c) = &cseq {
                        assert_eq!(c.method, request.method);
                    }
                    let uri = request.parse_uri();
                    if let Some((scheme, _)) = uri::split_scheme(&request.uri) {
                        let known = ["sip", "sips", "tel"]
                            .iter()
                            .any(|k| k.eq_ignore_ascii_case(scheme));
                        assert!(
                            uri.is_ok() == known,
                            "Request-URI {:?}: {uri:?}",
                            request.uri
                        );
                    }
                }
            }
            Err(e) => {
                assert!(!e.reason.is_empty());
                let _ = e.status();
            }
        }
    }
}

// ---- the start line and the header checks -------------------------------------------------

enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { code: u16, reason: &'a str },
}

/// Checks the start line and the header fields; returns the start line's parts and the body.
fn check<'a>(
    start_line: &'a str,
    is_response: bool,
    headers: &Headers,
    rest: &'a [u8],
) -> Result<(StartLine<'a>, &'a [u8]), String> {
    let start = if is_response {
        status_line(start_line)?
    } else {
        request_line(start_line)?
    };
    for name in SINGLE_VALUED {
        let mut values = headers.all(name);
        if let Some(first) = values.next()
            && let Some(other) = values.find(|v| *v != first)
        {
            return Err(format!(
                "{} given twice with different values ({c0} and {c1})",
                display_name(name),
                c0 = Clip(first, 60),
                c1 = Clip(other, 60),
            ));
        }
    }
    for name in ["via", "from", "to", "call-id", "cseq"] {
        if headers.get(name).is_none() {
            return Err(format!("missing {} header", display_name(name)));
        }
    }
    let call_id = headers.get("call-id").unwrap_or_default();
    if call_id.is_empty() || call_id.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("malformed Call-ID {c0}", c0 = Clip(call_id, 60)));
    }
    let (_, cseq_method) = cseq_parts(headers.get("cseq").unwrap_or_default())?;
    if let StartLine::Request { method, .. } = start
        && cseq_method != method
    {
        return Err(format!(
            "CSeq method {cseq_method:.40} does not match the request method {method:.40}"
        ));
    }
    for name in ["from", "to"] {
        let value = headers.get(name).unwrap_or_default();
        name_addr_parts(value).map_err(|e| format!("{}: {e}", display_name(name)))?;
    }
    let mut vias = 0;
    for value in headers.all("via") {
        for via in split_list(value) {
            via_parts(via).map_err(|e| format!("Via: {e}"))?;
            vias += 1;
        }
    }
    if vias == 0 {
        return Err("empty Via header".to_owned());
    }
    for value in headers.all("contact") {
        for contact in split_list(value) {
            if contact != "*" {
                name_addr_parts(contact).map_err(|e| format!("Contact: {e}"))?;
            }
        }
    }
    if let Some(mf) = headers.get("max-forwards") {
        match decimal(mf) {
            Some(n) if n <= 255 => {}
            Some(n) => return Err(format!("Max-Forwards {n} is above 255")),
            None => {
                return Err(format!(
                    "Max-Forwards {c0} is not a number",
                    c0 = Clip(mf, 20)
                ));
            }
        }
    }
    let body = match headers.get("content-length") {
        None => rest,
        Some(cl) => {
            let n = content_length(cl)?;
            rest.get(..n).ok_or_else(|| {
                format!(
                    "Content-Length {n} is larger than the {} bytes of body present",
                    rest.len()
                )
            })?
        }
    };
    Ok((start, body))
}

/// `Method SP Request-URI SP SIP/2.0`, single spaces, nothing after.
fn request_line(line: &str) -> Result<StartLine<'_>, String> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(if line.ends_with([' ', '\t']) {
            "the request line ends with whitespace".to_owned()
        } else if line.contains("  ") || line.starts_with(' ') {
            "the request line has more than one space between its elements".to_owned()
        } else if line.split(' ').count() > 3 {
            "the Request-URI contains whitespace".to_owned()
        } else {
            format!("not a SIP request line: {c0}", c0 = Clip(line, 60))
        });
    };
    if method.is_empty() || uri.is_empty() {
        return Err("the request line has more than one space between its elements".to_owned());
    }
    if !method.bytes().all(is_token_byte) {
        return Err(format!(
            "the method {c0} is not a token",
            c0 = Clip(method, 40)
        ));
    }
    check_version(version)?;
    check_request_uri(uri)?;
    Ok(StartLine::Request { method, uri })
}

fn check_version(version: &str) -> Result<(), String> {
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if version
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("SIP/"))
    {
        Err(format!("{UNSUPPORTED_VERSION} {}", Clip(version, 20)))
    } else {
        Err(format!(
            "the request line does not end with SIP/2.0 but {c0}",
            c0 = Clip(version, 20)
        ))
    }
}

/// The Request-URI is an absolute URI without whitespace or brackets; sip, sips and tel URIs
/// must parse, and sip/sips ones carry no header component (RFC 3261 §19.1.1, RFC 4475
/// escruri). Other schemes pass here: the redirect layer answers them 416.
fn check_request_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, _)) = uri::split_scheme(uri) else {
        return Err(format!(
            "the Request-URI {c0} is not an absolute URI",
            c0 = Clip(uri, 60)
        ));
    };
    if !uri::uri_chars_ok(uri) {
        return Err(format!(
            "the Request-URI {c0} contains characters not allowed in a URI",
            c0 = Clip(uri, 60)
        ));
    }
    let known = ["sip", "sips", "tel"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(scheme));
    if known {
        let parsed = uri::parse_uri(uri).map_err(|e| format!("Request-URI: {}", e.reason))?;
        if parsed.headers.is_some() {
            return Err(format!(
                "the Request-URI {c0} has a header component (?…), not allowed there",
                c0 = Clip(uri, 60)
            ));
        }
    }
    Ok(())
}

/// `SIP/2.0 SP 3DIGIT SP Reason-Phrase` (a missing SP before an empty reason is tolerated).
fn status_line(line: &str) -> Result<StartLine<'_>, String> {
    let (version, rest) = line.split_once(' ').unwrap_or((line, ""));
    check_version(version)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    let code = match code.parse::<u16>() {
        Ok(c) if code_ok && (100..=699).contains(&c) => c,
        _ => {
            return Err(format!(
                "status code {c0} is not 100 to 699",
                c0 = Clip(code, 20)
            ));
        }
    };
    if reason.contains(|c: char| c.is_control() && c != '\t') {
        return Err("the reason phrase contains a control character".to_owned());
    }
    Ok(StartLine::Response { code, reason })
}

/// The header lines after the start line (up to the empty line), unfolded.
fn split_header_lines(text: &str) -> Result<Vec<Header>, String> {
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 2;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        if line.contains('\r') {
            return Err(format!("line {line_no} contains a CR without LF"));
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = headers.last_mut() else {
                return Err("the first header line starts with whitespace".to_owned());
            };
            let more = trim_lws(line);
            if !more.is_empty() {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(more);
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "line {line_no} is not a header field (no colon): {c0}",
                c0 = Clip(line, 40)
            ));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!(
                "line {line_no}: invalid header name {c0}",
                c0 = Clip(name, 40)
            ));
        }
        headers.push(Header {
            name: canonical_name(name),
            value: trim_lws(value).to_owned(),
        });
    }
    Ok(headers)
}

/// The index just past the empty line ending the head, or `None` if there is none yet.
/// `buf` starts with a non-empty line (keep-alives skipped).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut pos = 0;
    loop {
        let nl = pos + buf.get(pos..)?.iter().position(|&b| b == b'\n')?;
        let line = buf.get(line_start..nl)?;
        if line_start > 0 && (line.is_empty() || line == b"\r") {
            return Some(nl + 1);
        }
        line_start = nl + 1;
        pos = nl + 1;
    }
}

/// The Content-Length of a head on a stream, read from the raw bytes (so that a head that is
/// not UTF-8 can still be framed and refused by [`parse`]).
fn stream_content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found: Option<usize> = None;
    let mut current: Option<Vec<u8>> = None;
    let mut finish = |value: Option<Vec<u8>>| -> Result<(), ParseError> {
        let Some(value) = value else { return Ok(()) };
        let text = String::from_utf8_lossy(&value);
        let n = content_length(trim_lws(&text)).map_err(ParseError::new)?;
        match found {
            Some(m) if m != n => Err(ParseError::new(format!(
                "Content-Length given twice with different values ({m} and {n})"
            ))),
            _ => {
                found = Some(n);
                Ok(())
            }
        }
    };
    let mut lines = head.split(|&b| b == b'\n');
    lines.next(); // the start line
    for raw in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(v) = current.as_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        finish(current.take())?;
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line.get(..colon).unwrap_or_default();
            let name = name.trim_ascii_end();
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                current = Some(line.get(colon + 1..).unwrap_or_default().to_vec());
            }
        }
    }
    finish(current.take())?;
    found.ok_or_else(|| ParseError::new("no Content-Length on a stream transport"))
}

/// Content-Length: `1*DIGIT`, at most [`MAX_MESSAGE_BYTES`].
fn content_length(value: &str) -> Result<usize, String> {
    match decimal(value) {
        Some(n) => match usize::try_from(n) {
            Ok(length) if length <= MAX_MESSAGE_BYTES => Ok(length),
            _ => Err(format!(
                "Content-Length {n} is larger than the limit of {MAX_MESSAGE_BYTES}"
            )),
        },
        None => Err(format!(
            "Content-Length {c0} is not a number",
            c0 = Clip(value, 20)
        )),
    }
}

/// `1*DIGIT` (leading zeros allowed) that fits in a u64.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

// ---- field parsers on borrowed text ------------------------------------------------------

enum Display<'a> {
    /// The content between the quotes, quoted-pairs not yet resolved.
    Quoted(&'a str),
    Tokens(&'a str),
}

struct NameAddrParts<'a> {
    display: Option<Display<'a>>,
    uri: &'a str,
    /// The header parameters' text (empty or starting with LWS or `;`), already checked.
    params: &'a str,
}

fn name_addr_parts(value: &str) -> Result<NameAddrParts<'_>, String> {
    let s = trim_lws(value);
    if s.is_empty() {
        return Err("empty address".to_owned());
    }
    let (display, rest) = if s.starts_with('"') {
        let (quoted, rest) = quoted_string(s)?;
        let rest = trim_lws_start(rest);
        if !rest.starts_with('<') {
            return Err("a quoted display name must be followed by <URI>".to_owned());
        }
        (Some(Display::Quoted(quoted)), rest)
    } else {
        // Tokens and LWS up to '<' make a display name; up to ':' the scheme of an addr-spec.
        let end = s
            .find(|c: char| !(c.is_ascii() && is_token_byte(c as u8)) && c != ' ' && c != '\t')
            .unwrap_or(s.len());
        let (before, rest) = s.split_at_checked(end).unwrap_or((s, ""));
        if rest.starts_with('<') {
            let tokens = trim_lws(before);
            (
                (!tokens.is_empty()).then_some(Display::Tokens(tokens)),
                rest,
            )
        } else if rest.starts_with(':') {
            return addr_spec(s);
        } else {
            return Err(format!(
                "the display name {} must be tokens or a quoted string",
                Clip(
                    s.get(..end + rest.chars().next().map_or(0, char::len_utf8))
                        .unwrap_or(s),
                    40
                )
            ));
        }
    };
    let inner = rest.strip_prefix('<').unwrap_or(rest);
    let Some((uri, params)) = inner.split_once('>') else {
        return Err("< without a closing >".to_owned());
    };
    check_uri_text(uri)?;
    check_params(params)?;
    Ok(NameAddrParts {
        display,
        uri,
        params,
    })
}

/// An addr-spec without brackets: its `;` parameters are header parameters, and its URI may
/// hold no `?`, `,` or `;` (RFC 3261 §20.10).
fn addr_spec(s: &str) -> Result<NameAddrParts<'_>, String> {
    let (uri, params) = match s.find(';') {
        Some(i) => s.split_at_checked(i).unwrap_or((s, "")),
        None => (s, ""),
    };
    let uri = trim_lws(uri);
    if uri.contains(['?', ',']) {
        return Err(format!(
            "the URI {c0} contains ? or , and must be enclosed in <>",
            c0 = Clip(uri, 60)
        ));
    }
    check_uri_text(uri)?;
    check_params(params)?;
    Ok(NameAddrParts {
        display: None,
        uri,
        params,
    })
}

/// A URI as written in a header: a scheme, no whitespace or brackets.
fn check_uri_text(uri: &str) -> Result<(), String> {
    if uri.contains([' ', '\t']) {
        return Err(format!("whitespace in the URI {c0}", c0 = Clip(uri, 60)));
    }
    if uri::split_scheme(uri).is_none() || !uri::uri_chars_ok(uri) {
        return Err(format!("malformed URI {c0}", c0 = Clip(uri, 60)));
    }
    Ok(())
}

struct ViaParts<'a> {
    name: &'a str,
    version: &'a str,
    transport: &'a str,
    host: &'a str,
    port: Option<u16>,
    params: &'a str,
}

fn via_parts(value: &str) -> Result<ViaParts<'_>, String> {
    let s = trim_lws(value);
    let (name, s) = token(s).ok_or("no protocol name")?;
    let s = slash(s).ok_or("no / after the protocol name")?;
    let (version, s) = token(s).ok_or("no protocol version")?;
    let s = slash(s).ok_or("no / after the protocol version")?;
    let (transport, s) = token(s).ok_or("no transport")?;
    let after = trim_lws_start(s);
    if after.len() == s.len() {
        return Err(format!(
            "no whitespace before the sent-by host in {c0}",
            c0 = Clip(value, 60)
        ));
    }
    let host_end = if after.starts_with('[') {
        after
            .find(']')
            .map(|i| i + 1)
            .ok_or("an IPv6 host without ]")?
    } else {
        after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
            .unwrap_or(after.len())
    };
    let (host, s) = after.split_at_checked(host_end).unwrap_or((after, ""));
    uri::check_host(host).map_err(|e| format!("sent-by has {e}"))?;
    let s = trim_lws_start(s);
    let (port, params) = match s.strip_prefix(':') {
        Some(p) => {
            let p = trim_lws_start(p);
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            let (digits, rest) = p.split_at_checked(end).unwrap_or((p, ""));
            (Some(uri::parse_port(digits)?), rest)
        }
        None => (None, s),
    };
    check_params(params)?;
    Ok(ViaParts {
        name,
        version,
        transport,
        host,
        port,
        params,
    })
}

fn cseq_parts(value: &str) -> Result<(u32, &str), String> {
    let s = trim_lws(value);
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at_checked(end).unwrap_or((s, ""));
    let number = match decimal(digits) {
        Some(n) => match u32::try_from(n) {
            Ok(number) if number < 1 << 31 => number,
            _ => return Err(format!("CSeq number {digits:.30} is not below 2^31")),
        },
        None if digits.is_empty() => {
            return Err(format!("CSeq {c0} has no number", c0 = Clip(s, 40)));
        }
        None => return Err(format!("CSeq number {digits:.30} is not below 2^31")),
    };
    let method = trim_lws_start(rest);
    if method.len() == rest.len() || method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(format!(
            "CSeq {c0} is not a number and a method",
            c0 = Clip(s, 40)
        ));
    }
    Ok((number, method))
}

/// Checks `*( SEMI name [ EQUAL value ] )`, LWS allowed around `;` and `=`; a value is a
/// token, a host (IPv6 brackets, colons) or a quoted string.
fn check_params(text: &str) -> Result<(), String> {
    walk_params(text, |_, _| {})
}

fn walk_params<'a>(
    text: &'a str,
    mut each: impl FnMut(&'a str, Option<&'a str>),
) -> Result<(), String> {
    let mut s = text;
    loop {
        s = trim_lws_start(s);
        if s.is_empty() {
            return Ok(());
        }
        let Some(rest) = s.strip_prefix(';') else {
            return Err(format!(
                "unexpected {c0} where a ;parameter may follow",
                c0 = Clip(s, 30)
            ));
        };
        let (name, rest) = token(trim_lws_start(rest)).ok_or("an empty parameter")?;
        let after_name = trim_lws_start(rest);
        match after_name.strip_prefix('=') {
            Some(v) => {
                let v = trim_lws_start(v);
                let (value, rest) = if v.starts_with('"') {
                    let (inner, rest) = quoted_string(v)?;
                    (v.get(..inner.len() + 2).unwrap_or(v), rest)
                } else {
                    let end = v
                        .find(|c: char| {
                            !(c.is_ascii() && is_token_byte(c as u8)
                                || matches!(c, '[' | ']' | ':'))
                        })
                        .unwrap_or(v.len());
                    v.split_at_checked(end).unwrap_or((v, ""))
                };
                if value.is_empty() {
                    return Err(format!("parameter {name:.30} has = but no value"));
                }
                each(name, Some(value));
                s = rest;
            }
            None => {
                each(name, None);
                s = rest;
            }
        }
    }
}

fn owned_params(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut params = Vec::new();
    walk_params(text, |name, value| {
        params.push((name.to_ascii_lowercase(), value.map(str::to_owned)));
    })?;
    Ok(params)
}

fn find_param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// `s` starts with `"`: returns the content between the quotes (escapes unresolved) and the
/// text after the closing quote. Control characters must be escaped (RFC 3261 quoted-pair).
fn quoted_string(s: &str) -> Result<(&str, &str), String> {
    let body = s.strip_prefix('"').unwrap_or(s);
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            if !c.is_ascii() || c == '\r' || c == '\n' {
                return Err("a bad \\-escape in a quoted string".to_owned());
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            let inner = body.get(..i).unwrap_or_default();
            let rest = body.get(i + 1..).unwrap_or_default();
            return Ok((inner, rest));
        } else if c.is_control() && c != '\t' {
            return Err("an unescaped control character in a quoted string".to_owned());
        }
    }
    Err("an unterminated quoted string".to_owned())
}

/// Resolves the quoted-pairs of a quoted string's content.
fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a list header value at top-level commas (not inside quotes or `<…>`).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        loop {
            let s = rest?;
            let mut in_quotes = false;
            let mut escaped = false;
            let mut in_angle = false;
            let mut cut = None;
            for (i, b) in s.bytes().enumerate() {
                if in_quotes {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_quotes = false;
                    }
                    continue;
                }
                match b {
                    b'"' if !in_angle => in_quotes = true,
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    b',' if !in_angle => {
                        cut = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let item = match cut {
                Some(i) => {
                    rest = s.get(i + 1..);
                    s.get(..i).unwrap_or_default()
                }
                None => {
                    rest = None;
                    s
                }
            };
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    })
}

/// A token and the text after it, or `None` if `s` does not start with one.
fn token(s: &str) -> Option<(&str, &str)> {
    let end = s.bytes().position(|b| !is_token_byte(b)).unwrap_or(s.len());
    (end > 0).then(|| s.split_at_checked(end)).flatten()
}

/// `SWS "/" SWS`: the text after it.
fn slash(s: &str) -> Option<&str> {
    trim_lws_start(s).strip_prefix('/').map(trim_lws_start)
}

/// RFC 3261 token characters: `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn trim_lws_start(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// Shows untrusted text in an error reason: at most `.1` characters, escaped and quoted as
/// `{:?}` does (control characters and quotes cannot reach a log line or reason phrase raw).
pub(crate) struct Clip<'a>(pub(crate) &'a str, pub(crate) usize);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Clip(s, max) = *self;
        match s.char_indices().nth(max) {
            Some((cut, _)) => write!(f, "{:?}…", s.get(..cut).unwrap_or_default()),
            None => write!(f, "{s:?}"),
        }
    }
}

/// Lower case, compact forms expanded (RFC 3261 §7.3.3 and the extensions' compact forms).
fn canonical_name(name: &str) -> String {
    let mut bytes = name.bytes();
    if let (Some(b), None) = (bytes.next(), bytes.next()) {
        let long = match b.to_ascii_lowercase() {
            b'i' => Some("call-id"),
            b'm' => Some("contact"),
            b'e' => Some("content-encoding"),
            b'l' => Some("content-length"),
            b'c' => Some("content-type"),
            b'f' => Some("from"),
            b's' => Some("subject"),
            b'k' => Some("supported"),
            b't' => Some("to"),
            b'v' => Some("via"),
            b'o' => Some("event"),
            b'r' => Some("refer-to"),
            b'b' => Some("referred-by"),
            b'x' => Some("session-expires"),
            b'u' => Some("allow-events"),
            _ => None,
        };
        if let Some(long) = long {
            return long.to_owned();
        }
    }
    name.to_ascii_lowercase()
}

/// The usual spelling of a canonical header name, for error reasons.
fn display_name(name: &str) -> &str {
    match name {
        "call-id" => "Call-ID",
        "cseq" => "CSeq",
        "from" => "From",
        "to" => "To",
        "via" => "Via",
        "content-length" => "Content-Length",
        "max-forwards" => "Max-Forwards",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const INVITE: &str = "INVITE sip:+31201234567@example.com;user=phone SIP/2.0\r\n\
        Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:+31201234567@example.com;user=phone>\r\n\
        From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.example.com>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\r\n";

    fn request(text: &str) -> Request {
        match parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(r) => panic!("a response: {r:?}"),
        }
    }

    fn reason(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().reason
    }

    /// A valid OPTIONS with `extra` header lines added before the empty line.
    fn options_with(extra: &str) -> String {
        format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example.com;branch=z9hG4bKx\r\n\
             To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n\
             Call-ID: c1\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        )
    }

    #[test]
    fn parses_an_invite() {
        let r = request(INVITE);
        assert_eq!(r.method, "INVITE");
        assert_eq!(r.uri, "sip:+31201234567@example.com;user=phone");
        assert_eq!(r.body, b"v=0\r");
        assert_eq!(
            r.headers.get("call-id"),
            Some("a84b4c76e66710@pc33.example.com")
        );
        assert_eq!(r.headers.get("CSeq"), Some("314159 INVITE"));
        assert_eq!(r.headers.len(), 9);
        let uri = r.parse_uri().unwrap();
        assert_eq!(uri.user.as_deref(), Some("+31201234567"));
        assert_eq!(uri.param("user"), Some(Some("phone")));
        let from = parse_name_addr(r.headers.get("from").unwrap()).unwrap();
        assert_eq!(from.display.as_deref(), Some("Alice"));
        assert_eq!(from.tag(), Some("1928301774"));
        assert_eq!(
            parse_name_addr(r.headers.get("to").unwrap()).unwrap().tag(),
            None
        );
    }

    #[test]
    fn parses_a_response() {
        let text = "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
                    To: <sip:b@example.com>;tag=x\r\nFrom: <sip:a@example.com>;tag=y\r\n\
                    Call-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:c@example.net>\r\n\r\n";
        let Message::Response(r) = parse(text.as_bytes()).unwrap() else {
            panic!("not a response")
        };
        assert_eq!((r.code, r.reason.as_str()), (302, "Moved Temporarily"));
        assert!(r.body.is_empty());
        let err = parse(text.replace("302", "1000").as_bytes()).unwrap_err();
        assert!(
            err.reason.contains("status code \"1000\""),
            "{}",
            err.reason
        );
        assert!(
            err.headers.is_none(),
            "responses are dropped, never answered"
        );
    }

    #[test]
    fn compact_forms_are_expanded() {
        let mut h = Headers::new();
        for (short, long) in [
            ("i", "call-id"),
            ("M", "contact"),
            ("e", "content-encoding"),
            ("L", "content-length"),
            ("c", "content-type"),
            ("f", "from"),
            ("s", "subject"),
            ("k", "supported"),
            ("t", "to"),
            ("V", "via"),
            ("o", "event"),
            ("r", "refer-to"),
            ("b", "referred-by"),
            ("x", "session-expires"),
            ("u", "allow-events"),
        ] {
            h.push(short, " value ");
            assert_eq!(h.iter().last().unwrap().name, long, "{short}");
            assert_eq!(h.get(long), Some("value"));
        }
        h.push("Y", "unknown compact");
        h.push("X-Custom", "kept");
        assert_eq!(h.get("y"), Some("unknown compact"));
        assert_eq!(h.get("x-custom"), Some("kept"));
        let text = "INVITE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
                    t: sip:b@example.com\r\nf: sip:a@example.com;tag=1\r\ni: abc\r\n\
                    CSeq: 1 INVITE\r\nm: <sip:a@a.example.com>\r\nl: 0\r\n\r\n";
        let r = request(text);
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "via",
                "to",
                "from",
                "call-id",
                "cseq",
                "contact",
                "content-length"
            ]
        );
    }

    #[test]
    fn folded_lines_are_joined_with_one_space() {
        let r = request(&options_with(
            "Subject: first\r\n   second\r\n\tthird\r\nRoute:\r\n <sip:p.example.com;lr>\r\n",
        ));
        assert_eq!(r.headers.get("subject"), Some("first second third"));
        assert_eq!(r.headers.get("route"), Some("<sip:p.example.com;lr>"));
    }

    #[test]
    fn bare_lf_and_whitespace_around_the_colon() {
        let text = options_with("X-A  :  1\r\n").replace("\r\n", "\n");
        let r = request(&text);
        assert_eq!(r.headers.get("x-a"), Some("1"));
        assert_eq!(r.headers.get("to"), Some("<sip:bob@example.com>"));
    }

    #[test]
    fn list_splitting() {
        let mut h = Headers::new();
        h.push(
            "Contact",
            "\"Bell, Alexander\" <sip:a@example.com>;x=\"<,>\";q=0.5, <sip:b@example.com?h=1,2> ,,",
        );
        h.push("Contact", "sip:c@example.com;expires=60");
        h.push("Supported", "timer, 100rel,,  path");
        assert_eq!(
            h.list("contact"),
            [
                "\"Bell, Alexander\" <sip:a@example.com>;x=\"<,>\";q=0.5",
                "<sip:b@example.com?h=1,2>",
                "sip:c@example.com;expires=60"
            ]
        );
        assert_eq!(h.list("supported"), ["timer", "100rel", "path"]);
        assert!(h.list("require").is_empty());
        assert_eq!(h.all("contact").count(), 2);
        let bell = parse_name_addr(h.list("contact")[0]).unwrap();
        assert_eq!(bell.display.as_deref(), Some("Bell, Alexander"));
        assert_eq!(bell.param("q"), Some(Some("0.5")));
        // a quote inside <> does not open a quoted string
        h.push("Route", "<sip:x\"y@example.com>, <sip:z@example.com>");
        assert_eq!(h.list("route").len(), 2);
    }

    #[test]
    fn name_addr_forms() {
        let na =
            parse_name_addr("\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com> ; tag = 98asjd8")
                .unwrap();
        assert_eq!(na.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(na.uri, "sip:jdrosen@example.com");
        assert_eq!(na.tag(), Some("98asjd8"));
        let na = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display.as_deref(), Some("caller"));
        let na = parse_name_addr("<sip:a@example.com>").unwrap();
        assert_eq!((na.display, na.params.len()), (None, 0));
        // addr-spec: ;params are header parameters (RFC 3261 §20)
        let na = parse_name_addr("sip:+31201234567@example.com;user=phone;tag=9").unwrap();
        assert_eq!(na.uri, "sip:+31201234567@example.com");
        assert_eq!(na.param("user"), Some(Some("phone")));
        assert_eq!(na.tag(), Some("9"));
        // in <> they are URI parameters
        let na = parse_name_addr("<sip:+31201234567@example.com;user=phone>;tag=9").unwrap();
        assert_eq!(na.uri, "sip:+31201234567@example.com;user=phone");
        assert_eq!(na.param("user"), None);
        let na = parse_name_addr(
            "A <sip:a@[2001:db8::10]:5070>;+sip.instance=\"<urn:uuid:1>\";Expires=60;lr",
        )
        .unwrap();
        assert_eq!(na.uri, "sip:a@[2001:db8::10]:5070");
        assert_eq!(na.param("+sip.instance"), Some(Some("\"<urn:uuid:1>\"")));
        assert_eq!(na.param("expires"), Some(Some("60")));
        assert_eq!(na.param("lr"), Some(None));
        assert!(
            parse_name_addr("isbn:2983792873").is_ok(),
            "other schemes are valid here"
        );
    }

    #[test]
    fn name_addr_errors_name_the_problem() {
        let e = |s: &str| parse_name_addr(s).unwrap_err().reason;
        assert!(e("\"Mr. J. User <sip:j.user@example.com>").contains("unterminated quoted string"));
        assert!(
            e("Bell, Alexander <sip:a@example.com>").contains("must be tokens or a quoted string")
        );
        assert!(e("< sip:a@example.com >").contains("whitespace in the URI"));
        assert!(e("<sip:a@example.com").contains("without a closing >"));
        assert!(e("sip:a@example.com?Route=x").contains("must be enclosed in <>"));
        assert!(e("<sip:a@example.com>;;").contains("empty parameter"));
        assert!(e("<sip:a@example.com> junk").contains("unexpected \"junk\""));
        assert!(e("<sip:a@example.com>;tag=").contains("parameter tag has = but no value"));
        assert!(e("\"x\" sip:a@example.com").contains("followed by <URI>"));
        assert!(e("").contains("empty address"));
        assert!(e("<nocolon>").contains("malformed URI"));
    }

    #[test]
    fn via_forms() {
        let v = parse_via("SIP  /   2.0 /udp    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (
                v.protocol.as_str(),
                v.transport.as_str(),
                v.host.as_str(),
                v.port
            ),
            ("SIP/2.0", "UDP", "192.0.2.2", None)
        );
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = parse_via(
            "SIP/2.0/TLS [2001:db8::10]:5070 ; branch = z9hG4bK1;received=[2001:db8::1];rport",
        )
        .unwrap();
        assert_eq!((v.host.as_str(), v.port), ("[2001:db8::10]", Some(5070)));
        assert_eq!(v.param("received"), Some(Some("[2001:db8::1]")));
        assert_eq!(v.param("rport"), Some(None));
        assert_eq!(v.param("ttl"), None);
        let v = parse_via("SIP/2.0/TCP host.example.com : 5061").unwrap();
        assert_eq!(v.port, Some(5061));
        let e = |s: &str| parse_via(s).unwrap_err().reason;
        assert!(e("SIP/2.0/UDP 192.0.2.15;;").contains("empty parameter"));
        assert!(e("SIP/2.0 host").contains("no / after the protocol version"));
        assert!(e("SIP/2.0/UDP").contains("no whitespace before the sent-by host"));
        assert!(e("SIP/2.0/UDP [2001:db8::1").contains("without ]"));
        assert!(e("SIP/2.0/UDP [2001:db8::zz]").contains("invalid IPv6"));
        assert!(e("SIP/2.0/UDP host:99999").contains("out of range"));
        assert!(e("SIP/2.0/UDP host junk").contains("unexpected \"junk\""));
    }

    #[test]
    fn cseq() {
        assert_eq!(
            parse_cseq("0009\t INVITE").unwrap(),
            CSeq {
                number: 9,
                method: "INVITE".into()
            }
        );
        assert_eq!(parse_cseq("2147483647 ACK").unwrap().number, 2_147_483_647);
        let e = |s: &str| parse_cseq(s).unwrap_err().reason;
        assert!(e("2147483648 INVITE").contains("not below 2^31"));
        assert!(e("36893488147419103232 REGISTER").contains("not below 2^31"));
        assert!(e("INVITE").contains("has no number"));
        assert!(e("1INVITE").contains("not a number and a method"));
        assert!(e("1 INVITE x").contains("not a number and a method"));
    }

    #[test]
    fn request_errors_name_what_is_wrong() {
        let ok = options_with("");
        let r = reason(&ok.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"));
        assert_eq!(
            r,
            "CSeq method INVITE does not match the request method OPTIONS"
        );
        assert_eq!(
            reason(&ok.replace("Call-ID: c1\r\n", "")),
            "missing Call-ID header"
        );
        assert_eq!(
            reason(&ok.replace("Via: SIP/2.0/TCP h.example.com;branch=z9hG4bKx\r\n", "")),
            "missing Via header"
        );
        assert!(
            reason(&options_with("Call-ID: c2\r\n"))
                .starts_with("Call-ID given twice with different values")
        );
        assert!(
            parse(options_with("Call-ID: c1\r\n").as_bytes()).is_ok(),
            "the same value twice is fine"
        );
        assert_eq!(
            reason(&options_with("Max-Forwards: 256\r\n")),
            "Max-Forwards 256 is above 255"
        );
        assert!(parse(options_with("Max-Forwards: 0068\r\n").as_bytes()).is_ok());
        assert!(reason(&options_with("Max-Forwards: -1\r\n")).contains("not a number"));
        assert!(
            reason(&options_with("Content-Length: five\r\n"))
                .contains("Content-Length \"five\" is not a number")
        );
        assert!(
            reason(&options_with("Content-Length: 3\r\n"))
                .contains("larger than the 0 bytes of body present")
        );
        assert!(
            reason(&ok.replace(
                "To: <sip:bob@example.com>",
                "To: Watson, Thomas <sip:t@example.org>"
            ))
            .starts_with("To: ")
        );
        assert!(
            reason(&ok.replace("SIP/2.0\r\n", "SIP/2.1\r\n"))
                .starts_with("unsupported SIP version \"SIP/2.1\"")
        );
        assert!(reason(&ok.replace("OPTIONS sip", "OPT@ONS sip")).contains("not a token"));
        assert!(
            reason(&ok.replace("sip:bob@example.com SIP", "sip:bob@exa mple.com SIP"))
                .contains("Request-URI contains whitespace")
        );
        assert!(
            reason(&ok.replace("sip:bob@example.com SIP", "sip:bob@ex%ample.com SIP"))
                .starts_with("Request-URI: ")
        );
        assert!(reason(&options_with("Bad Header: x\r\n")).contains("invalid header name"));
        assert!(reason(&options_with("NoColon\r\n")).contains("no colon"));
        assert!(
            reason(&ok.replace("\r\n\r\n", "\r\n")).contains("does not end with an empty line")
        );
        let err = parse(options_with("X: a\rb\r\n").as_bytes()).unwrap_err();
        assert!(err.reason.contains("CR without LF"));
        assert!(
            err.headers.is_none(),
            "header lines that cannot be split give no headers"
        );
        let err = parse(options_with("Max-Forwards: 300\r\n").as_bytes()).unwrap_err();
        assert_eq!(
            err.headers.as_ref().unwrap().get("call-id"),
            Some("c1"),
            "a request's headers come back for the 400"
        );
        assert_eq!(err.reason, err.to_string());
    }

    #[test]
    fn status_of_errors() {
        let ok = options_with("");
        assert_eq!(
            parse(ok.replace("SIP/2.0\r\n", "SIP/3.0\r\n").as_bytes())
                .unwrap_err()
                .status(),
            505
        );
        assert_eq!(
            parse(ok.replace("CSeq: 1 OPTIONS", "CSeq: 1 BYE").as_bytes())
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(crate::uri::parse_uri("im:a@b").unwrap_err().status(), 416);
        let r = request(&ok.replace("sip:bob@example.com SIP", "im:bob@example.com SIP"));
        assert_eq!(
            r.parse_uri().unwrap_err().status(),
            416,
            "unknown schemes parse; the redirect layer answers 416"
        );
    }

    #[test]
    fn utf8_values_and_invalid_utf8() {
        let r = request(&options_with("Subject: Grüße, 你好\r\n"));
        assert_eq!(r.headers.get("subject"), Some("Grüße, 你好"));
        let mut bytes = options_with("Subject: \u{e9}\r\n").into_bytes();
        let at = bytes.iter().position(|&b| b == 0xc3).unwrap();
        bytes[at] = 0xff;
        let err = parse(&bytes).unwrap_err();
        assert!(err.reason.contains("not valid UTF-8"), "{}", err.reason);
        // the body may be anything
        let mut bytes = options_with("Content-Length: 2\r\n").into_bytes();
        bytes.extend_from_slice(&[0xff, 0x00]);
        let Message::Request(r) = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.body, [0xff, 0x00]);
    }

    #[test]
    fn datagram_body_rules() {
        let base = options_with("Content-Length: 3\r\n");
        let long = format!("{base}abcdef");
        assert_eq!(
            parse(long.as_bytes()).unwrap().body(),
            b"abc",
            "a smaller Content-Length truncates"
        );
        let none = format!("{}xyz", options_with(""));
        assert_eq!(
            parse(none.as_bytes()).unwrap().body(),
            b"xyz",
            "without one, the rest of the datagram"
        );
        let keepalive = format!("\r\n\r\n{none}");
        assert_eq!(parse(keepalive.as_bytes()).unwrap().body(), b"xyz");
        assert_eq!(reason("\r\n\r\n"), "empty message");
        let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
        assert!(reason(std::str::from_utf8(&big).unwrap()).contains("longer than the limit"));
    }

    #[test]
    fn stream_framing() {
        let one = options_with("Content-Length: 3\r\n") + "abc";
        let two = format!("{one}{one}");
        assert_eq!(frame(two.as_bytes()).unwrap(), Some(one.len()));
        assert_eq!(
            frame(&two.as_bytes()[..one.len() - 1]).unwrap(),
            None,
            "body incomplete"
        );
        assert_eq!(
            frame(&two.as_bytes()[..20]).unwrap(),
            None,
            "head incomplete"
        );
        assert_eq!(frame(b"").unwrap(), None);
        let pings = format!("\r\n\r\n{one}");
        assert_eq!(skip_keepalive(pings.as_bytes()), 4);
        assert_eq!(skip_keepalive(one.as_bytes()), 0);
        assert_eq!(
            frame(pings.as_bytes()).unwrap(),
            Some(one.len() + 4),
            "leading CRLFs are counted"
        );
        let folded = options_with("Content-Length:\r\n 3\r\n") + "abc";
        assert_eq!(frame(folded.as_bytes()).unwrap(), Some(folded.len()));
        let compact = options_with("l: 0\r\n");
        assert_eq!(frame(compact.as_bytes()).unwrap(), Some(compact.len()));
        let e = |s: String| frame(s.as_bytes()).unwrap_err().reason;
        assert_eq!(
            e(options_with("")),
            "no Content-Length on a stream transport"
        );
        assert!(e(options_with("Content-Length: -1\r\n")).contains("not a number"));
        assert!(e(options_with("l: 1\r\nContent-Length: 2\r\n")).contains("given twice"));
        assert!(e(options_with("Content-Length: 70000\r\n")).contains("larger than the limit"));
        assert!(e(options_with("Content-Length: 65500\r\n")).contains("longer than the limit"));
        let endless = "INVITE sip:a@b SIP/2.0\r\nX: ".to_owned() + &"a".repeat(MAX_MESSAGE_BYTES);
        assert!(e(endless.clone()).contains("no end of the header section"));
        assert_eq!(frame(&endless.as_bytes()[..1000]).unwrap(), None);
        // a head that is not UTF-8 is framed, and parse refuses it
        let mut bad = options_with("X: \u{e9}\r\nl: 0\r\n").into_bytes();
        let at = bad.iter().position(|&b| b == 0xc3).unwrap();
        bad[at] = 0xff;
        assert_eq!(frame(&bad).unwrap(), Some(bad.len()));
    }

    #[test]
    fn reasons_clip_and_escape_untrusted_text() {
        let long = "x".repeat(100);
        let r = reason(&options_with(&format!("Max-Forwards: {long}\r\n")));
        assert_eq!(
            r,
            format!("Max-Forwards \"{}\"… is not a number", "x".repeat(20))
        );
        let r = reason(&options_with("Max-Forwards: \u{7}\0\r\n"));
        assert_eq!(r, "Max-Forwards \"\\u{7}\\0\" is not a number");
    }

    #[test]
    fn fuzzing_body_accepts_odd_input() {
        for input in [
            &b""[..],
            b"\r\n",
            b"SIP/2.0",
            b"INVITE",
            INVITE.as_bytes(),
            b"\xff\xfe\r\n\r\n",
        ] {
            fuzzing::sip_message(input);
        }
    }
}
