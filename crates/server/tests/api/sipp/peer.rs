//! The peer: `sipp` run as a UAC on one request ([`Call`]), bounded in time, and what it sent
//! and received read back from its message trace ([`Exchange`], [`Message`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sip_settings_sip::Transport;

use crate::helpers::free_port;

/// The longest a sipp run may take before it is killed (sipp's own `-timeout` is 10 s).
const SIPP_LIMIT: Duration = Duration::from_secs(30);

const INVITE_XML: &str = include_str!("../../sipp/invite.xml");
const INVITE_TWICE_XML: &str = include_str!("../../sipp/invite_twice.xml");
const REQUEST_XML: &str = include_str!("../../sipp/request.xml");

pub(crate) fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("sipp").is_file()))
}

/// One request for sipp to send.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    method: &'static str,
    uri: String,
    to: String,
    from: String,
    max_forwards: u32,
    headers: Vec<String>,
    twice: bool,
}

impl Call {
    /// An INVITE from carol@example.org to `uri`.
    pub(crate) fn invite(uri: &str) -> Self {
        Self::request("INVITE", uri)
    }

    /// A request of `method` from carol@example.org to `uri`.
    pub(crate) fn request(method: &'static str, uri: &str) -> Self {
        Self {
            method,
            uri: uri.to_owned(),
            to: format!("<{uri}>"),
            from: "\"Carol\" <sip:carol@example.org>".to_owned(),
            max_forwards: 70,
            headers: Vec::new(),
            twice: false,
        }
    }

    /// The From name-addr (sipp adds the tag).
    pub(crate) fn from(mut self, from: &str) -> Self {
        self.from = from.to_owned();
        self
    }

    /// The To name-addr.
    pub(crate) fn to(mut self, to: &str) -> Self {
        self.to = to.to_owned();
        self
    }

    /// An extra header line (`Name: value`).
    pub(crate) fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_owned());
        self
    }

    pub(crate) fn max_forwards(mut self, n: u32) -> Self {
        self.max_forwards = n;
        self
    }

    /// Sends the identical INVITE (same Call-ID, From tag, branch, CSeq) twice.
    pub(crate) fn twice(mut self) -> Self {
        self.twice = true;
        self
    }

    /// The scenario sending this request and expecting `code` as its final answer.
    pub(crate) fn scenario(&self, code: u16) -> String {
        let template = match (self.method, self.twice) {
            ("INVITE", false) => INVITE_XML,
            ("INVITE", true) => INVITE_TWICE_XML,
            (_, false) => REQUEST_XML,
            (m, true) => panic!("only an INVITE is sent twice, not {m}"),
        };
        let headers: String = self
            .headers
            .iter()
            .map(|h| format!("{h}\n"))
            .collect::<String>();
        for part in [&self.uri, &self.to, &self.from, &headers] {
            assert!(!part.contains("]]>"), "{part} would end the CDATA section");
        }
        template
            .replace("@METHOD@", self.method)
            .replace("@URI@", &self.uri)
            .replace("@TO@", &self.to)
            .replace("@FROM@", &self.from)
            .replace("@MAX_FORWARDS@", &self.max_forwards.to_string())
            .replace("@HEADERS@", &headers)
            .replace("@CODE@", &code.to_string())
    }
}

/// A SIP message as sipp's message trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) start: String,
    headers: Vec<(String, String)>,
    pub(crate) text: String,
}

impl Message {
    pub(crate) fn parse(text: &str) -> Self {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let start = lines
            .by_ref()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line: {line:?} in\n{text}"));
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Self {
            start,
            headers,
            text: text.trim().to_owned(),
        }
    }

    /// The status code of a response (0 for a request).
    pub(crate) fn code(&self) -> u16 {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Every value of header `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of header `name`, which must not appear more than once.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times in\n{}",
            all.len(),
            self.text
        );
        all.first().copied()
    }

    /// The `tag` parameter of the To header.
    pub(crate) fn to_tag(&self) -> Option<&str> {
        let to = self.header("To")?;
        let params = to.rsplit_once('>').map_or(to, |(_, p)| p);
        params
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
    }
}

/// What a sipp run sent and received.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) sent: Vec<Message>,
    pub(crate) received: Vec<Message>,
}

impl Exchange {
    /// The final responses received (1xx left out).
    pub(crate) fn finals(&self) -> Vec<&Message> {
        self.received.iter().filter(|m| m.code() >= 200).collect()
    }

    /// The one final response.
    pub(crate) fn answer(&self) -> &Message {
        let finals = self.finals();
        assert_eq!(finals.len(), 1, "final responses: {finals:#?}");
        finals[0]
    }

    /// The first request sent.
    pub(crate) fn request(&self) -> &Message {
        self.sent.first().expect("sipp sent nothing")
    }
}

/// Reads sipp's `-trace_msg` file: blocks after a dashed line, each `UDP message sent (N
/// bytes):` or `TCP message received [N] bytes :`, a blank line, the message.
pub(crate) fn read_trace(path: &Path) -> Exchange {
    // A leading newline, so that a dashed line at the very start opens a block too.
    let text = format!("\n{}", std::fs::read_to_string(path).unwrap_or_default());
    let mut exchange = Exchange {
        sent: Vec::new(),
        received: Vec::new(),
    };
    for block in text
        .split("\n-----------------------------------------------")
        .skip(1)
    {
        let mut parts = block.splitn(3, '\n');
        let _stamp = parts.next();
        let what = parts.next().unwrap_or_default();
        let message = Message::parse(parts.next().unwrap_or_default());
        if what.contains("message sent") {
            exchange.sent.push(message);
        } else if what.contains("message received") {
            exchange.received.push(message);
        }
    }
    exchange
}

/// Runs `call` with sipp against `addr` over `transport`; sipp must get `code` as the final
/// answer and exit 0. At most [`SIPP_LIMIT`]; the process is killed if the test ends first.
pub(crate) async fn run(
    addr: SocketAddr,
    transport: Transport,
    call: &Call,
    code: u16,
) -> Exchange {
    // sipp's own `-p 0` searches upwards from 5060, so sipp runs of tests running in parallel
    // can race for one port: take a free one from the kernel, and try again with another when
    // it was taken in between (sipp then says "Unable to listen main socket, errno = 98").
    for _ in 0..4 {
        if let Some(exchange) = run_once(addr, transport, call, code).await {
            return exchange;
        }
    }
    panic!("sipp found no free local port in 4 tries: {call:?}");
}

/// One sipp run; `None` when sipp could not bind its local port.
async fn run_once(
    addr: SocketAddr,
    transport: Transport,
    call: &Call,
    code: u16,
) -> Option<Exchange> {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.xml");
    std::fs::write(&scenario, call.scenario(code)).unwrap();
    let trace = dir.path().join("messages.log");
    let errors = dir.path().join("errors.log");
    let mut command = tokio::process::Command::new("sipp");
    command
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-t",
        ])
        .arg(match transport {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
            Transport::Tls => panic!("this sipp has no TLS"),
        })
        .args([
            "-timeout",
            "10s",
            "-timeout_error",
            "-trace_msg",
            "-trace_err",
        ])
        .arg("-message_file")
        .arg(&trace)
        .arg("-error_file")
        .arg(&errors);
    if call.twice {
        // The second answer is identical to the first; with retransmissions on, sipp would
        // take it for a retransmission and resend its INVITE in a loop.
        command.arg("-nr");
    }
    command
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("start sipp");
    let output = tokio::time::timeout(SIPP_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("sipp ran longer than {SIPP_LIMIT:?}: {call:?}"))
        .expect("sipp output");
    let exchange = read_trace(&trace);
    let sipp_errors = std::fs::read_to_string(&errors).unwrap_or_default();
    if !output.status.success() && sipp_errors.contains("errno = 98") && exchange.sent.is_empty() {
        return None;
    }
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = stdout.lines().rev().take(15).collect();
        panic!(
            "sipp over {transport} did not get {code} for {} {} (exit {:?}).\n\
             sent:\n{}\n\nreceived:\n{}\n\nsipp errors:\n{}\n{}\nsipp output (end):\n{}",
            call.method,
            call.uri,
            output.status.code(),
            exchange
                .sent
                .iter()
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
            exchange
                .received
                .iter()
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
            sipp_errors,
            String::from_utf8_lossy(&output.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        );
    }
    Some(exchange)
}
