//! A minimal SIP client for asking a redirect server one question: it sends one INVITE over
//! UDP (retransmitted as RFC 3261 §17.1.1.2's timer A does, up to timer B), TCP or TLS and
//! returns the final response, then ACKs it. `sip-settings sip ask` uses it, and so do the
//! tests for TLS (Debian's sipp has no TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::config::{Listen, Transport};
use crate::message::{Message, Response, frame, parse, skip_keepalive};

/// What to ask.
#[derive(Debug, Clone)]
pub struct Question {
    /// The Request-URI (`sip:alice@example.com`, `tel:+31201234567`).
    pub uri: String,
    /// The caller (`From`), e.g. `sip:bob@example.org`, or `"Anonymous"
    /// <sip:anonymous@anonymous.invalid>`.
    pub from: String,
    /// Extra header lines (`X-Registered: no`, `Privacy: id`, `Diversion: …`).
    pub headers: Vec<String>,
}

/// A response and its text as received.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The parsed response.
    pub response: Response,
    /// The bytes as text.
    pub text: String,
}

fn token() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// The INVITE and (for the ACK) its parts.
fn invite(q: &Question, transport: Transport, local: SocketAddr) -> (String, String) {
    let branch = format!("z9hG4bK{}", token());
    let from = if q.from.contains('<') {
        q.from.clone()
    } else {
        format!("<{}>", q.from)
    };
    let common = format!(
        "Via: SIP/2.0/{} {local};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: {from};tag={}\r\nCall-ID: {}@sip-settings\r\n",
        transport.via_token(),
        token(),
        token()
    );
    let mut extra = String::new();
    for h in &q.headers {
        extra.push_str(h.trim());
        extra.push_str("\r\n");
    }
    let text = format!(
        "INVITE {uri} SIP/2.0\r\n{common}To: <{uri}>\r\nCSeq: 1 INVITE\r\nContact: <sip:sip-settings@{local}>\r\n{extra}Content-Length: 0\r\n\r\n",
        uri = q.uri
    );
    (text, common)
}

fn ack(q: &Question, common: &str, response: &Response) -> String {
    let to = response.headers.get("to").unwrap_or_default();
    format!(
        "ACK {} SIP/2.0\r\n{common}To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        q.uri
    )
}

fn final_response(bytes: &[u8]) -> Result<Option<Answer>, String> {
    match parse(bytes) {
        Ok(Message::Response(r)) if r.code >= 200 => Ok(Some(Answer {
            text: String::from_utf8_lossy(bytes).into_owned(),
            response: r,
        })),
        Ok(Message::Response(_)) => Ok(None),
        Ok(Message::Request(_)) => Err("the server sent a request, not a response".to_owned()),
        Err(e) => Err(format!("unreadable response: {e}")),
    }
}

/// Asks `server` one question over UDP, TCP or TLS (`tls` must be given for a `tls:` server:
/// the client configuration with the service certificate, and the server name to verify).
pub async fn ask(
    server: Listen,
    q: &Question,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
) -> Result<Answer, String> {
    let deadline = Duration::from_secs(32);
    match server.transport {
        Transport::Udp => tokio::time::timeout(deadline, ask_udp(server.addr, q))
            .await
            .map_err(|_| "no final response within 32 s".to_owned())?,
        Transport::Tcp | Transport::Tls => Connection::open(server, tls).await?.ask(q).await,
    }
}

/// A TCP or TLS connection that asks several questions in turn.
#[derive(Debug)]
pub struct Connection {
    stream: Box<dyn Stream>,
    transport: Transport,
    local: SocketAddr,
    buf: Vec<u8>,
}

/// A byte stream (TCP or TLS).
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Stream for T {}

impl Connection {
    /// Connects to a `tcp:` or `tls:` server.
    pub async fn open(
        server: Listen,
        tls: Option<(Arc<rustls::ClientConfig>, String)>,
    ) -> Result<Self, String> {
        let tcp = TcpStream::connect(server.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", server.addr))?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let stream: Box<dyn Stream> = match server.transport {
            Transport::Udp => return Err("UDP has no connections".to_owned()),
            Transport::Tcp => Box::new(tcp),
            Transport::Tls => {
                let (config, name) = tls.ok_or("a tls: server needs a client certificate")?;
                let name = rustls_pki_types::ServerName::try_from(name)
                    .map_err(|e| format!("server name: {e}"))?;
                Box::new(
                    tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {e}"))?,
                )
            }
        };
        Ok(Self {
            stream,
            transport: server.transport,
            local,
            buf: Vec::new(),
        })
    }

    /// Sends one INVITE and waits (at most 32 s) for its final response, then ACKs it.
    pub async fn ask(&mut self, q: &Question) -> Result<Answer, String> {
        tokio::time::timeout(Duration::from_secs(32), self.exchange(q))
            .await
            .map_err(|_| "no final response within 32 s".to_owned())?
    }

    /// Sends every INVITE at once, then reads their final responses in whatever order they
    /// come and returns them in the order of `questions` (matched by Call-ID), each ACKed.
    pub async fn pipeline(&mut self, questions: &[Question]) -> Result<Vec<Answer>, String> {
        tokio::time::timeout(Duration::from_secs(32), self.exchange_all(questions))
            .await
            .map_err(|_| "not every final response came within 32 s".to_owned())?
    }

    async fn exchange_all(&mut self, questions: &[Question]) -> Result<Vec<Answer>, String> {
        let mut sent = Vec::with_capacity(questions.len());
        let mut bytes = String::new();
        for q in questions {
            let (request, common) = invite(q, self.transport, self.local);
            bytes.push_str(&request);
            sent.push(common);
        }
        self.stream
            .write_all(bytes.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let call_id = |common: &str| {
            common
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID: "))
                .unwrap_or_default()
                .to_owned()
        };
        let mut answers: Vec<Option<Answer>> = vec![None; questions.len()];
        let mut chunk = vec![0u8; 16_384];
        while answers.iter().any(Option::is_none) {
            let skip = skip_keepalive(&self.buf);
            self.buf.drain(..skip);
            match frame(&self.buf).map_err(|e| format!("unframeable response: {e}"))? {
                Some(len) => {
                    let message: Vec<u8> = self.buf.drain(..len).collect();
                    let Some(answer) = final_response(&message)? else {
                        continue;
                    };
                    let id = answer.response.headers.get("call-id").unwrap_or_default();
                    let Some(i) = sent.iter().position(|c| call_id(c) == id) else {
                        return Err(format!("an answer to no question asked: {}", answer.text));
                    };
                    let (Some(q), Some(common), Some(slot)) =
                        (questions.get(i), sent.get(i), answers.get_mut(i))
                    else {
                        continue;
                    };
                    let _ = self
                        .stream
                        .write_all(ack(q, common, &answer.response).as_bytes())
                        .await;
                    *slot = Some(answer);
                }
                None => {
                    let n = self
                        .stream
                        .read(&mut chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err(
                            "the server closed the connection before every answer".to_owned()
                        );
                    }
                    self.buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    async fn exchange(&mut self, q: &Question) -> Result<Answer, String> {
        self.exchange_all(std::slice::from_ref(q))
            .await?
            .pop()
            .ok_or_else(|| "no answer".to_owned())
    }
}

async fn ask_udp(server: SocketAddr, q: &Question) -> Result<Answer, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| "bind address".to_owned())?;
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    let mut local = socket.local_addr().map_err(|e| e.to_string())?;
    if local.ip().is_unspecified() {
        local.set_ip(server.ip());
    }
    let (request, common) = invite(q, Transport::Udp, local);
    let mut buf = vec![0u8; 65_536];
    let mut wait = Duration::from_millis(500);
    loop {
        socket
            .send(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let got = tokio::time::timeout(wait, async {
            loop {
                let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
                if let Some(a) = final_response(buf.get(..n).unwrap_or_default())? {
                    return Ok::<_, String>(a);
                }
            }
        })
        .await;
        match got {
            Ok(Ok(answer)) => {
                let _ = socket
                    .send(ack(q, &common, &answer.response).as_bytes())
                    .await;
                return Ok(answer);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => wait = (wait * 2).min(Duration::from_secs(4)),
        }
    }
}
