//! A tiny blocking SIP-over-UDP client for the checks around the load: OPTIONS (is it up?),
//! and one INVITE at a time whose final answer is read in full, so that the content of the
//! answers (Contact, Diversion, X-Ring-Time, 404 for an unknown account) is checked before
//! SIPp measures only status codes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// Parses a response's start line and header fields (the body is ignored).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let head = text.split("\r\n\r\n").next().unwrap_or(text);
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default();
        let mut parts = start.splitn(3, ' ');
        if parts.next() != Some("SIP/2.0") {
            bail!("not a SIP/2.0 response: {start:?}");
        }
        let status = parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .with_context(|| format!("no status code in {start:?}"))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // A folded continuation line.
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(Self {
            status,
            reason,
            headers,
        })
    }

    /// The first value of a header field, by its name or its compact form, any case.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let compact = match name.to_ascii_lowercase().as_str() {
            "contact" => Some("m"),
            "via" => Some("v"),
            "from" => Some("f"),
            "to" => Some("t"),
            "call-id" => Some("i"),
            "content-length" => Some("l"),
            _ => None,
        };
        self.headers
            .iter()
            .find(|(n, _)| {
                n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
            })
            .map(|(_, v)| v.as_str())
    }

    /// The response in one line, for error messages.
    pub(crate) fn summary(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| {
                ![
                    "via",
                    "v",
                    "from",
                    "f",
                    "call-id",
                    "i",
                    "cseq",
                    "content-length",
                    "l",
                ]
                .iter()
                .any(|x| n.eq_ignore_ascii_case(x))
            })
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!("{} {} [{}]", self.status, self.reason, headers.join("; "))
    }
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// Sends `method` for `uri` from a fresh socket and returns the first final answer (1xx are
/// skipped), retransmitting every 250 ms until `timeout`. A final answer to an INVITE ≥ 300 is
/// acknowledged, as a proxy would.
pub(crate) fn request(
    server: SocketAddr,
    method: &str,
    uri: &str,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let local = socket.local_addr()?;
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let to = format!("<{uri}>");
    let common = |m: &str, to: &str| {
        format!(
            "Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{pid}-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bench@127.0.0.1>;tag=bench{pid}x{n}\r\n\
             To: {to}\r\n\
             Call-ID: bench-{pid}-{n}@127.0.0.1\r\n\
             CSeq: 1 {m}\r\n"
        )
    };
    let msg = format!(
        "{method} {uri} SIP/2.0\r\n{}Contact: <sip:bench@{local}>\r\nContent-Length: 0\r\n\r\n",
        common(method, &to)
    );
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0_u8; 65_536];
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            bail!("no final answer to {method} {uri} from {server} within {timeout:?}");
        }
        if now >= next_send {
            socket.send_to(msg.as_bytes(), server)?;
            next_send = now + Duration::from_millis(250);
        }
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let len = match socket.recv_from(&mut buf) {
            Ok((len, _)) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            // ICMP port unreachable: nothing listens yet.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
                continue;
            }
            Err(e) => return Err(e).context("receiving a SIP answer"),
        };
        let reply = Reply::parse(&String::from_utf8_lossy(&buf[..len]))?;
        if reply.status < 200 {
            continue;
        }
        if method == "INVITE" && reply.status >= 300 {
            let to = reply.header("To").unwrap_or(&to).to_owned();
            let ack = format!(
                "ACK {uri} SIP/2.0\r\n{}Content-Length: 0\r\n\r\n",
                common("ACK", &to)
            );
            socket.send_to(ack.as_bytes(), server)?;
        }
        return Ok(reply);
    }
}

/// OPTIONS to the server itself; Ok when it answers 200.
pub(crate) fn options(server: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let reply = request(server, "OPTIONS", &format!("sip:{server}"), timeout)?;
    if reply.status != 200 {
        bail!("OPTIONS answered {}", reply.summary());
    }
    Ok(())
}

/// One INVITE to `sip:USER@DOMAIN`, its final answer.
pub(crate) fn invite(server: SocketAddr, user: &str, domain: &str) -> anyhow::Result<Reply> {
    request(
        server,
        "INVITE",
        &format!("sip:{user}@{domain}"),
        Duration::from_secs(3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_is_read_with_compact_and_folded_headers() {
        let text = "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 127.0.0.1:5\r\n\
                    m: <sip:+31201234567@bench.example>\r\nDiversion: <sip:user0@bench.example>\r\n \
                    ;reason=unconditional\r\nContent-Length: 0\r\n\r\n";
        let r = Reply::parse(text).unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.reason, "Moved Temporarily");
        assert_eq!(
            r.header("contact"),
            Some("<sip:+31201234567@bench.example>")
        );
        assert_eq!(
            r.header("DIVERSION"),
            Some("<sip:user0@bench.example> ;reason=unconditional")
        );
        assert_eq!(r.header("X-Ring-Time"), None);
        assert!(r.summary().contains("m: <sip:+31201234567@bench.example>"));
        assert!(!r.summary().contains("Via"));
    }

    #[test]
    fn a_request_is_not_a_reply() {
        assert!(Reply::parse("INVITE sip:a@b SIP/2.0\r\n\r\n").is_err());
        assert!(Reply::parse("SIP/2.0 abc OK\r\n\r\n").is_err());
    }
}
