//! JSON answers to malformed HTTP/1 request heads.
//!
//! hyper answers a head it cannot parse itself (400, 414, 431) with an empty body and offers no
//! hook. So [`HeadCheck`] sits between TLS and hyper and looks at each request head before
//! hyper does, with `httparse` (the parser hyper uses) and limits tighter than hyper's
//! ([`MAX_URI_BYTES`] < hyper's 65 534, [`MAX_HEAD_BYTES`] < our `max_buf_size` of 256 KiB, the
//! same [`MAX_HEADERS`]), so a head hyper would refuse is always seen here first. A head it
//! refuses never reaches hyper: hyper gets the bytes before it and then end of input, finishes
//! what it was doing and shuts the connection down; in that shutdown the refusal (status object,
//! or problem+json when the request target starts with `/v1`) is written with
//! `Connection: close`, the TLS session is closed, and the rest of the client's input is read
//! and dropped for a moment, so that it does not turn the close into a reset that would destroy
//! the answer.
//!
//! To find each next head on a keep-alive connection it follows the framing: a head, then
//! `Content-Length` bytes of body. A chunked body (`Transfer-Encoding`) or `CONNECT` ends the
//! inspection for the rest of that connection (hyper's own answers apply from there); they are
//! rare on this API, and following them wrongly could only refuse a sound request.
//!
//! Cost on the hot path: a head that arrives in one read (the normal case) is parsed in place in
//! hyper's own buffer, no byte is copied; body bytes are only counted. Only a head split across
//! reads is collected here until it is complete and then handed on. HTTP/2 connections are not
//! inspected (hyper's HTTP/2 errors are protocol errors, with no body to put JSON in).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request target (URI) accepted, bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and header fields), bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a request (hyper's own default).
pub const MAX_HEADERS: usize = 100;
/// How long the rest of a refused client's input is read and dropped after the answer.
const LINGER: Duration = Duration::from_secs(2);
/// How much of it at most.
const LINGER_BYTES: usize = 1024 * 1024;
/// The HTTP/2 connection preface (prior knowledge, no ALPN).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A refused head: what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 414 or 431.
    pub status: StatusCode,
    /// What is wrong, for people.
    pub detail: String,
    /// Whether the target is under `/v1` (problem+json) rather than the action endpoint.
    pub problem: bool,
}

impl Refusal {
    /// The whole HTTP/1.1 response.
    pub fn response_bytes(&self) -> Vec<u8> {
        let (content_type, body) = if self.problem {
            let code = match self.status {
                StatusCode::URI_TOO_LONG => "uri_too_long",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
                _ => "bad_request",
            };
            // The shape of `problem::problem`.
            let body = serde_json::json!({
                "type": "about:blank",
                "title": self.status.canonical_reason().unwrap_or("Error"),
                "status": self.status.as_u16(),
                "code": code,
                "detail": self.detail,
                "field": null,
            });
            ("application/problem+json", body.to_string())
        } else {
            let body = serde_json::json!({
                "success": false,
                "error_message": format!("Error: {}", self.detail),
            });
            ("application/json", body.to_string())
        };
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes()
    }
}

/// Where the byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At (or inside) a request head.
    Head,
    /// Inside a body: this many bytes to go.
    Body(u64),
    /// Not inspected any more (HTTP/2, chunked, CONNECT).
    Passthrough,
    /// A head was refused: hyper gets end of input.
    Refused,
}

/// What a run of bytes held.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// All of it may go to hyper.
    Pass,
    /// The bytes from this offset are an incomplete head.
    Partial(usize),
    /// The head at this offset is refused.
    Refuse(usize, Refusal),
}

/// What one head is.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Complete, this long, followed by this framing.
    Complete(usize, State),
    /// Not complete yet.
    Partial,
    /// The HTTP/2 preface.
    H2,
    /// Refused.
    Refuse(Refusal),
}

/// The request target of a (possibly malformed, possibly incomplete) head, if its request line
/// can be read that far.
fn target_of(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[start..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    let mut parts = line.split(|&b| b == b' ');
    parts.next();
    parts.next().unwrap_or_default()
}

/// Whether a target belongs to `/v1` (problem documents) rather than the action endpoint.
fn is_v1(target: &[u8]) -> bool {
    target == b"/v1" || target.starts_with(b"/v1/") || target.starts_with(b"/v1?")
}

fn refuse(bytes: &[u8], status: StatusCode, detail: impl Into<String>) -> Head {
    Head::Refuse(Refusal {
        status,
        detail: detail.into(),
        problem: is_v1(target_of(bytes)),
    })
}

/// Bytes any request target may hold without a closer look (RFC 3986 unreserved, sub-delims,
/// `:@/?%`); anything else is checked the way hyper will (`http::Uri`).
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// The body length `Content-Length` fields give, as hyper reads them (several fields or a
/// comma-separated list must all agree); `Err` when they are not a number or disagree.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, ()> {
    let mut length = None;
    for h in headers {
        if !h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for part in h.value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(())?;
            match length {
                Some(m) if m != n => return Err(()),
                _ => length = Some(n),
            }
        }
    }
    Ok(length)
}

/// Looks at the head at the start of `bytes`. `first`: the connection's first bytes (where an
/// HTTP/2 preface may come).
fn check_head(bytes: &[u8], first: bool) -> Head {
    if first {
        if bytes.starts_with(H2_PREFACE) {
            return Head::H2;
        }
        if bytes.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(bytes) {
            return Head::Partial;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => {
            let target = request.path.unwrap_or_default().as_bytes();
            if target.len() > MAX_URI_BYTES {
                return refuse(
                    bytes,
                    StatusCode::URI_TOO_LONG,
                    format!("the request URI is longer than {MAX_URI_BYTES} bytes"),
                );
            }
            if len > MAX_HEAD_BYTES {
                return refuse(
                    bytes,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
                );
            }
            if !target.iter().all(|&b| plain_target_byte(b))
                && axum::http::Uri::try_from(target).is_err()
            {
                return refuse(
                    bytes,
                    StatusCode::BAD_REQUEST,
                    "the request URI holds characters a URI may not hold (percent-encode them)",
                );
            }
            if request.method == Some("CONNECT")
                || request
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            {
                return Head::Complete(len, State::Passthrough);
            }
            match content_length(request.headers) {
                Ok(Some(n)) if n > 0 => Head::Complete(len, State::Body(n)),
                Ok(_) => Head::Complete(len, State::Head),
                Err(()) => refuse(
                    bytes,
                    StatusCode::BAD_REQUEST,
                    "the Content-Length header is not one decimal number",
                ),
            }
        }
        Ok(httparse::Status::Partial) => {
            let line = bytes.trim_ascii_start();
            let line_done = line.contains(&b'\n');
            if target_of(bytes).len() > MAX_URI_BYTES
                || (!line_done && line.len() > MAX_URI_BYTES + 64)
            {
                return refuse(
                    bytes,
                    StatusCode::URI_TOO_LONG,
                    format!("the request URI is longer than {MAX_URI_BYTES} bytes"),
                );
            }
            if bytes.len() > MAX_HEAD_BYTES {
                return refuse(
                    bytes,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
                );
            }
            Head::Partial
        }
        Err(httparse::Error::TooManyHeaders) => refuse(
            bytes,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request has more than {MAX_HEADERS} header fields"),
        ),
        Err(error) => {
            let place = match error {
                httparse::Error::HeaderName | httparse::Error::HeaderValue => "a header field",
                httparse::Error::Version => "the HTTP version",
                _ if request.path.is_none() || request.version.is_none() => "the request line",
                _ => "the request head",
            };
            refuse(
                bytes,
                StatusCode::BAD_REQUEST,
                format!("malformed request: {place} is not valid HTTP/1.1 ({error})"),
            )
        }
    }
}

/// Lingering close after a refusal.
#[derive(Debug)]
enum Closing {
    Write(usize),
    Flush,
    Shutdown,
    Drain(Pin<Box<tokio::time::Sleep>>, usize),
    Done,
}

/// The IO wrapper (see the module documentation).
#[derive(Debug)]
pub struct HeadCheck<T> {
    inner: T,
    state: State,
    /// Still at the connection's first bytes.
    first: bool,
    /// An incomplete head that spans reads, held back from hyper until it is complete.
    partial: Vec<u8>,
    /// Parses of the current held-back head so far (bounded, so a head dribbled in line by line
    /// costs at most a bounded number of re-parses).
    reparses: usize,
    /// Scanned bytes to hand to hyper before reading more.
    release: Vec<u8>,
    release_at: usize,
    /// The refusal to write at shutdown.
    refusal: Option<(Vec<u8>, Closing)>,
}

impl<T> HeadCheck<T> {
    /// Wraps `inner`; `inspect` false passes everything through (HTTP/2 by ALPN).
    pub fn new(inner: T, inspect: bool) -> Self {
        Self {
            inner,
            state: if inspect {
                State::Head
            } else {
                State::Passthrough
            },
            first: true,
            partial: Vec::new(),
            reparses: 0,
            release: Vec::new(),
            release_at: 0,
            refusal: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Follows the framing through `bytes` (which start where the state says).
    fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            match self.state {
                State::Passthrough | State::Refused => return Scan::Pass,
                State::Body(left) => {
                    let here = (bytes.len() - at) as u64;
                    let take = left.min(here);
                    at += usize::try_from(take).unwrap_or(bytes.len() - at);
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Body(left - take)
                    };
                }
                State::Head => match check_head(&bytes[at..], self.first) {
                    Head::Complete(len, next) => {
                        self.first = false;
                        self.reparses = 0;
                        at += len;
                        self.state = next;
                    }
                    Head::H2 => {
                        self.state = State::Passthrough;
                        return Scan::Pass;
                    }
                    Head::Partial => {
                        self.reparses += 1;
                        if self.reparses > MAX_HEADERS + 8 {
                            self.state = State::Refused;
                            let refusal = Refusal {
                                status: StatusCode::BAD_REQUEST,
                                detail: "the request head came in too many pieces".into(),
                                problem: is_v1(target_of(&bytes[at..])),
                            };
                            return Scan::Refuse(at, refusal);
                        }
                        return Scan::Partial(at);
                    }
                    Head::Refuse(refusal) => {
                        self.state = State::Refused;
                        return Scan::Refuse(at, refusal);
                    }
                },
            }
        }
        Scan::Pass
    }

    fn refused(&mut self, refusal: &Refusal) {
        tracing::debug!(status = %refusal.status, detail = %refusal.detail, "request head refused");
        self.refusal = Some((refusal.response_bytes(), Closing::Write(0)));
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadCheck<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.release_at < this.release.len() {
                let n = buf.remaining().min(this.release.len() - this.release_at);
                buf.put_slice(&this.release[this.release_at..this.release_at + n]);
                this.release_at += n;
                if this.release_at == this.release.len() {
                    this.release.clear();
                    this.release_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Refused {
                return Poll::Ready(Ok(()));
            }
            if this.partial.is_empty() {
                if this.state == State::Passthrough {
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                // The hot path: scan the new bytes where hyper's buffer holds them.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                if buf.filled().len() == before {
                    return Poll::Ready(Ok(()));
                }
                let scan = this.scan(&buf.filled()[before..]);
                match scan {
                    Scan::Pass => return Poll::Ready(Ok(())),
                    Scan::Partial(at) => {
                        this.partial.extend_from_slice(&buf.filled()[before + at..]);
                        buf.set_filled(before + at);
                        if at > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Scan::Refuse(at, refusal) => {
                        this.refused(&refusal);
                        buf.set_filled(before + at);
                        return Poll::Ready(Ok(()));
                    }
                }
            } else {
                // A head split across reads: collect it here.
                let mut chunk = [0u8; 8 * 1024];
                let mut more = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut more))?;
                let new = more.filled();
                if new.is_empty() {
                    // The client ended in the middle of a head: nothing to answer.
                    this.partial.clear();
                    return Poll::Ready(Ok(()));
                }
                this.partial.extend_from_slice(new);
                let worth_parsing = new.contains(&b'\n')
                    || this.partial.len() > MAX_URI_BYTES
                    || (this.first && this.partial.len() <= H2_PREFACE.len());
                if !worth_parsing {
                    continue;
                }
                let held = std::mem::take(&mut this.partial);
                match this.scan(&held) {
                    Scan::Pass => this.release = held,
                    Scan::Partial(at) => {
                        this.partial = held[at..].to_vec();
                        this.release = held;
                        this.release.truncate(at);
                    }
                    Scan::Refuse(at, refusal) => {
                        this.refused(&refusal);
                        this.release = held;
                        this.release.truncate(at);
                    }
                }
                this.release_at = 0;
                if this.release.is_empty() && this.state == State::Refused {
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadCheck<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some((answer, closing)) = &mut this.refusal else {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        };
        loop {
            match closing {
                Closing::Write(written) => {
                    while *written < answer.len() {
                        let n =
                            ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *written += n;
                    }
                    *closing = Closing::Flush;
                }
                Closing::Flush => {
                    ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    *closing = Closing::Shutdown;
                }
                Closing::Shutdown => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    *closing = Closing::Drain(Box::pin(tokio::time::sleep(LINGER)), 0);
                }
                Closing::Drain(deadline, drained) => {
                    if deadline.as_mut().poll(cx).is_ready() || *drained > LINGER_BYTES {
                        *closing = Closing::Done;
                        continue;
                    }
                    let mut chunk = [0u8; 8 * 1024];
                    let mut sink = ReadBuf::new(&mut chunk);
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sink)) {
                        Ok(()) if !sink.filled().is_empty() => *drained += sink.filled().len(),
                        _ => *closing = Closing::Done,
                    }
                }
                Closing::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(bytes: &[u8]) -> (HeadCheck<()>, Scan) {
        let mut check = HeadCheck::new((), true);
        let scan = check.scan(bytes);
        (check, scan)
    }

    #[test]
    fn keep_alive_requests_pass_and_the_framing_is_followed() {
        let two = b"POST /settings.phtml HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nGET /xGET /v1/me HTTP/1.1\r\n\r\n";
        let (check, scan) = scan_all(two);
        assert_eq!(scan, Scan::Pass);
        assert_eq!(check.state, State::Head);
        // A body that looks like a bad head is a body.
        let (_, scan) = scan_all(b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\n\x01\x02\x03\x04");
        assert_eq!(scan, Scan::Pass);
    }

    #[test]
    fn an_incomplete_head_is_held() {
        let (_, scan) = scan_all(b"GET / HTTP/1.1\r\n\r\nGET /v1/me HTT");
        assert_eq!(scan, Scan::Partial(18));
        let (_, scan) = scan_all(b"PRI * HTTP/2");
        assert_eq!(scan, Scan::Partial(0));
        let (check, scan) = scan_all(H2_PREFACE);
        assert_eq!((scan, check.state), (Scan::Pass, State::Passthrough));
    }

    #[test]
    fn bad_heads_are_refused_in_the_shape_of_their_endpoint() {
        let (_, scan) = scan_all(b"GET / HTTP/1.1\r\n\r\nGET /v1/me\x01 HTTP/1.1\r\n\r\n");
        let Scan::Refuse(18, refusal) = scan else {
            panic!("{scan:?}")
        };
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert!(refusal.problem);
        let long = format!(
            "GET /settings.phtml?{} HTTP/1.1\r\n",
            "a".repeat(MAX_URI_BYTES)
        );
        let (_, scan) = scan_all(long.as_bytes());
        let Scan::Refuse(0, refusal) = scan else {
            panic!("{scan:?}")
        };
        assert_eq!(refusal.status, StatusCode::URI_TOO_LONG);
        assert!(!refusal.problem);
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        let (_, scan) = scan_all(big.as_bytes());
        assert!(
            matches!(&scan, Scan::Refuse(0, r) if r.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            "{scan:?}"
        );
        let (_, scan) = scan_all(b"POST / HTTP/1.1\r\ncontent-length: 1, 2\r\n\r\n");
        assert!(matches!(&scan, Scan::Refuse(0, r) if r.status == StatusCode::BAD_REQUEST));
        let (_, scan) = scan_all(b"GET /settings\x7f HTTP/1.1\r\n\r\n");
        assert!(matches!(&scan, Scan::Refuse(0, r) if r.status == StatusCode::BAD_REQUEST));
    }

    #[test]
    fn chunked_bodies_end_the_inspection() {
        let (check, scan) = scan_all(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\n\x01\r\n0\r\n\r\n",
        );
        assert_eq!((scan, check.state), (Scan::Pass, State::Passthrough));
    }

    #[tokio::test]
    async fn the_answers_have_the_documented_shapes() {
        let problem = Refusal {
            status: StatusCode::URI_TOO_LONG,
            detail: "too long".into(),
            problem: true,
        }
        .response_bytes();
        let text = String::from_utf8(problem).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains("connection: close"));
        let expected =
            crate::problem::problem(StatusCode::URI_TOO_LONG, "uri_too_long", "too long", None);
        let expected = axum::body::to_bytes(expected.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(body.as_bytes(), &expected[..]);
        let status = Refusal {
            status: StatusCode::BAD_REQUEST,
            detail: "bad".into(),
            problem: false,
        }
        .response_bytes();
        let text = String::from_utf8(status).unwrap();
        assert!(text.ends_with("\r\n\r\n{\"success\":false,\"error_message\":\"Error: bad\"}"));
    }
}
