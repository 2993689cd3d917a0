//! Connection slots and the HTTP layer's own refusals, over real TCP and TLS from raw clients:
//! silent sockets (TCP only, TLS without a certificate, HTTP/2 preface only) lose their slot
//! after the handshake and first-request timeouts; idle keep-alive and HTTP/2 connections are
//! closed after the idle time; one source address cannot take every slot; malformed request
//! heads get JSON answers; HTTP/1.0 over ALPN `http/1.0` is served.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use sip_settings_core::cert::IssuedCertificate;
use tokio::net::TcpSocket;

use crate::helpers::TestApp;

const HOST_A: [u8; 4] = [127, 0, 0, 1];
const HOST_B: [u8; 4] = [127, 0, 0, 2];
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A rustls client configuration trusting the app's CA, presenting `cert`, offering `alpn`.
fn tls_config(
    app: &TestApp,
    cert: Option<&IssuedCertificate>,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(app.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A blocking TCP connection to the server from `from` (a loopback address).
async fn tcp_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    let stream = socket.connect(to).await.unwrap();
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// A TLS connection with the handshake done, and nothing sent.
async fn tls_from(from: [u8; 4], to: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    let mut tcp = tcp_from(from, to).await;
    tokio::task::spawn_blocking(move || {
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut conn = ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        StreamOwned::new(conn, tcp)
    })
    .await
    .unwrap()
}

/// A connection that sends nothing (or only the HTTP/2 preface).
enum Silent {
    Tcp(TcpStream),
    Tls(Box<Tls>),
}

impl Silent {
    fn socket(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(t) => &t.sock,
        }
    }

    /// Whether the server closes it by `deadline` (reads end or fail; anything the server
    /// sends meanwhile, such as HTTP/2 SETTINGS or session tickets, is read and dropped).
    fn closed_by(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            // At least one read, however late: a socket closed meanwhile counts as closed.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.socket().set_read_timeout(Some(wait)).unwrap();
            let read = match self {
                Self::Tcp(s) => s.read(&mut buf),
                Self::Tls(t) => t.read(&mut buf),
            };
            match read {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if left.is_zero() {
                        return false;
                    }
                }
                Err(_) => return true,
            }
        }
    }
}

/// `count` silent connections of each kind from `from`: TLS without a certificate (ALPN
/// http/1.1), TLS with ALPN h2 that sends the preface and SETTINGS but opens no stream, and
/// plain TCP that never starts the handshake. `tcp` false leaves out the plain ones.
async fn open_silent(app: &TestApp, from: [u8; 4], count: usize, tcp: bool) -> Vec<Silent> {
    let addr = app.server.as_ref().unwrap().addr();
    let mut out = Vec::new();
    for _ in 0..count {
        let h1 = tls_from(from, addr, tls_config(app, None, &[b"http/1.1"])).await;
        out.push(Silent::Tls(Box::new(h1)));
        let mut h2 = tls_from(from, addr, tls_config(app, None, &[b"h2"])).await;
        h2.write_all(H2_PREFACE).unwrap();
        h2.write_all(&frame(4, 0, 0, &[])).unwrap();
        out.push(Silent::Tls(Box::new(h2)));
    }
    if tcp {
        for _ in 0..count {
            out.push(Silent::Tcp(tcp_from(from, addr).await));
        }
    }
    out
}

/// A real client: alice's certificate, a new connection per request, from `from`.
fn real_client(app: &TestApp, from: [u8; 4]) -> reqwest::Client {
    let tls = tls_config(app, Some(&app.alice), &[b"h2", b"http/1.1"]);
    reqwest::Client::builder()
        .tls_backend_preconfigured(Arc::unwrap_or_clone(tls))
        .local_address(IpAddr::from(from))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Whether one normal read is answered 200.
async fn served(client: &reqwest::Client, app: &TestApp) -> bool {
    match client
        .get(format!("{}/settings.phtml?action=account", app.base))
        .send()
        .await
    {
        Ok(r) => r.status() == 200,
        Err(_) => false,
    }
}

/// How many of `n` normal reads (each on a new connection) are answered 200.
async fn served_of(client: &reqwest::Client, app: &TestApp, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(served(client, app).await);
    }
    ok
}

/// Checks, on a blocking thread, which of `silent` the server closes by `deadline`.
async fn closed_count(silent: Vec<Silent>, deadline: Instant) -> (usize, Vec<Silent>) {
    tokio::task::spawn_blocking(move || {
        let mut silent = silent;
        let closed = silent
            .iter_mut()
            .map(|s| s.closed_by(deadline))
            .filter(|&c| c)
            .count();
        (closed, silent)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn silent_connections_lose_their_slots_and_real_clients_are_served() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_connections = 20;
        // The per-address cap out of the way: this is about the timeouts.
        c.limits.max_connections_per_address = 20;
        c.limits.handshake_timeout = Duration::from_secs(1);
        c.limits.first_request_timeout = Duration::from_secs(1);
    })
    .await;
    let started = Instant::now();
    // 8 TLS HTTP/1, 8 TLS HTTP/2, 8 plain TCP: 24 for 20 slots.
    let silent = open_silent(&app, HOST_A, 8, true).await;
    let client = real_client(&app, HOST_A);
    let during = served_of(&client, &app, 5).await;
    let mut served_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        if served(&client, &app).await {
            served_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served_after = served_after.expect("a real client is served once the silent ones time out");
    eprintln!(
        "24 silent sockets for 20 slots: {during} of 5 reads served at once, a read served after {served_after:?}"
    );
    // Handshake timeout (the plain TCP ones) + first-request timeout (the TLS ones) + slack.
    assert!(
        served_after < Duration::from_secs(3),
        "served after {served_after:?}"
    );
    let (closed, _still) = closed_count(silent, started + Duration::from_secs(4)).await;
    assert_eq!(closed, 24, "every silent connection closed by the server");
    assert_eq!(served_of(&client, &app, 20).await, 20);
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let app = TestApp::spawn_with(|c| {
        c.limits.max_connections = 20;
        c.limits.max_connections_per_address = 4;
        // Long timeouts: the silent connections hold their slots for the whole test.
        c.limits.handshake_timeout = Duration::from_secs(30);
        c.limits.first_request_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = app.server.as_ref().unwrap().addr();
    // Host A takes its 4 (2 HTTP/1 + 2 HTTP/2), then tries 20 more.
    let held = open_silent(&app, HOST_A, 2, false).await;
    let mut more = Vec::new();
    for _ in 0..20 {
        more.push(Silent::Tcp(tcp_from(HOST_A, addr).await));
    }
    let started = Instant::now();
    let (closed, _) = closed_count(more, started + Duration::from_secs(1)).await;
    assert_eq!(
        closed, 20,
        "connections beyond the cap are closed at accept"
    );
    // A is at its cap; B is served at once, every time.
    assert!(!served(&real_client(&app, HOST_A), &app).await);
    let b = real_client(&app, HOST_B);
    let started = Instant::now();
    assert!(served(&b, &app).await, "host B is served");
    let first = started.elapsed();
    assert!(
        first < Duration::from_secs(1),
        "host B's first request took {first:?}"
    );
    let ok = served_of(&b, &app, 20).await;
    let took = started.elapsed();
    eprintln!("host A at its cap of 4 (24 tried): host B served {ok} of 20 reads in {took:?}");
    assert_eq!(ok, 20);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // And A's 4 were refused nothing: they are still open.
    let (closed, _) = closed_count(held, Instant::now() + Duration::from_millis(300)).await;
    assert_eq!(closed, 0);
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one HTTP/2 frame: type, flags, stream, payload.
fn read_frame(tls: &mut Tls) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    tls.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload)?;
    Ok((head[3], head[4], stream, payload))
}

/// Reads one HTTP/1.1 response with a `content-length`: status, head, body.
fn read_response(tls: &mut Tls) -> (u16, String, Vec<u8>) {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).unwrap();
    (status, head, body)
}

#[tokio::test]
async fn idle_keep_alive_and_http2_connections_are_closed() {
    let idle = Duration::from_secs(2);
    let app = TestApp::spawn_with(|c| {
        c.limits.idle_timeout = idle;
        c.limits.first_request_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = app.server.as_ref().unwrap().addr();
    let get = b"GET /settings.phtml?action=account HTTP/1.1\r\nhost: localhost\r\n\r\n";

    // HTTP/1.1: two requests a second apart are served on one connection (the idle time
    // counts from the end of the last one), then it is closed after the idle time.
    let mut h1 = tls_from(
        HOST_A,
        addr,
        tls_config(&app, Some(&app.alice), &[b"http/1.1"]),
    )
    .await;
    let h1 = tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            h1.write_all(get).unwrap();
            let (status, _, _) = read_response(&mut h1);
            assert_eq!(status, 200);
            std::thread::sleep(idle / 2);
        }
        let done = Instant::now() - idle / 2;
        let mut silent = Silent::Tls(Box::new(h1));
        assert!(
            !silent.closed_by(done + idle - Duration::from_millis(300)),
            "closed before the idle time"
        );
        assert!(
            silent.closed_by(done + idle + Duration::from_millis(1500)),
            "idle keep-alive connection still open"
        );
    });

    // HTTP/2: one stream, then no open stream: GOAWAY and close after the idle time.
    let mut h2 = tls_from(HOST_A, addr, tls_config(&app, Some(&app.alice), &[b"h2"])).await;
    let h2 = tokio::task::spawn_blocking(move || {
        h2.write_all(H2_PREFACE).unwrap();
        h2.write_all(&frame(4, 0, 0, &[])).unwrap();
        let path = b"/settings.phtml?action=account";
        let mut block = vec![0x82, 0x87, 0x44, u8::try_from(path.len()).unwrap()];
        block.extend_from_slice(path);
        block.extend_from_slice(&[0x41, 9]);
        block.extend_from_slice(b"localhost");
        h2.write_all(&frame(1, 0x5, 1, &block)).unwrap();
        let done = loop {
            let (kind, flags, stream, _) = read_frame(&mut h2).unwrap();
            if kind == 4 && flags & 1 == 0 {
                h2.write_all(&frame(4, 1, 0, &[])).unwrap();
            }
            if stream == 1 && flags & 1 == 1 && (kind == 0 || kind == 1) {
                break Instant::now();
            }
        };
        h2.sock
            .set_read_timeout(Some(idle + Duration::from_secs(2)))
            .unwrap();
        // GOAWAY, a PING to answer (hyper's graceful shutdown), and the close.
        let mut goaway = None;
        let closed = loop {
            match read_frame(&mut h2) {
                Ok((7, _, _, _)) => {
                    goaway.get_or_insert_with(Instant::now);
                }
                Ok((6, 0, _, payload)) => h2.write_all(&frame(6, 1, 0, &payload)).unwrap(),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    panic!("idle HTTP/2 connection still open (GOAWAY {goaway:?})")
                }
                Err(_) => break Instant::now(),
            }
        };
        let goaway = goaway.expect("a GOAWAY before the close");
        let waited = goaway - done;
        assert!(
            waited >= idle - Duration::from_millis(300) && waited < idle + Duration::from_secs(1),
            "GOAWAY after {waited:?}"
        );
        assert!(
            closed - goaway < Duration::from_secs(1),
            "{:?}",
            closed - goaway
        );
    });
    h1.await.unwrap();
    h2.await.unwrap();
}

/// Sends `request` in `pieces` (flushed apart) over a new TLS connection offering `alpn` with
/// alice's certificate, and reads until the server closes: status, head, body.
async fn raw_exchange(
    app: &TestApp,
    alpn: &[&[u8]],
    pieces: Vec<Vec<u8>>,
) -> (u16, String, Vec<u8>) {
    let addr = app.server.as_ref().unwrap().addr();
    let mut tls = tls_from(HOST_A, addr, tls_config(app, Some(&app.alice), alpn)).await;
    tokio::task::spawn_blocking(move || {
        for piece in pieces {
            // The server may answer and close before it has read everything.
            if tls.write_all(&piece).and_then(|()| tls.flush()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{text:?}"));
        let status = head[9..12].parse().unwrap();
        (status, head.to_ascii_lowercase(), body.as_bytes().to_vec())
    })
    .await
    .unwrap()
}

/// Asserts a refusal of this status in the action endpoint's shape (`problem` false) or as a
/// problem document; returns the text.
fn assert_refusal(got: &(u16, String, Vec<u8>), status: u16, problem: bool) -> String {
    let (got_status, head, body) = got;
    let body: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(*got_status, status, "{head}\n{body}");
    assert!(head.contains("connection: close"), "{head}");
    if problem {
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert_eq!(body["status"], status, "{body}");
        assert!(
            body["code"].is_string() && body["title"].is_string(),
            "{body}"
        );
        body["detail"].as_str().unwrap().to_owned()
    } else {
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        body["error_message"].as_str().unwrap().to_owned()
    }
}

fn one(bytes: impl Into<Vec<u8>>) -> Vec<Vec<u8>> {
    vec![bytes.into()]
}

#[tokio::test]
async fn malformed_request_heads_are_answered_in_json() {
    let app = TestApp::spawn().await;
    let h1: &[&[u8]] = &[b"http/1.1"];

    // Bad bytes in the request line.
    let got = raw_exchange(
        &app,
        h1,
        one(&b"GET /settings.phtml?action=acc\x01ount HTTP/1.1\r\nhost: x\r\n\r\n"[..]),
    )
    .await;
    let text = assert_refusal(&got, 400, false);
    assert!(text.contains("request line"), "{text}");
    let got = raw_exchange(
        &app,
        h1,
        one(&b"GET /v1/me\x7f HTTP/1.1\r\nhost: x\r\n\r\n"[..]),
    )
    .await;
    assert_refusal(&got, 400, true);
    let got = raw_exchange(
        &app,
        h1,
        one(&b"GET /settings.phtml HTTP/1.1\r\nbad header\r\n\r\n"[..]),
    )
    .await;
    let text = assert_refusal(&got, 400, false);
    assert!(text.contains("header"), "{text}");

    // An over-long URI, whole or dribbled in.
    let long = format!(
        "GET /settings.phtml?action=account&x={} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(9000)
    );
    let text = assert_refusal(&raw_exchange(&app, h1, one(long.clone())).await, 414, false);
    assert!(text.contains("8192"), "{text}");
    let pieces = long.as_bytes().chunks(1000).map(<[u8]>::to_vec).collect();
    assert_refusal(&raw_exchange(&app, h1, pieces).await, 414, false);
    let long = format!(
        "GET /v1/me?x={} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(9000)
    );
    assert_refusal(&raw_exchange(&app, h1, one(long)).await, 414, true);

    // Over-large headers: too many bytes, too many fields.
    let big = format!(
        "GET /settings.phtml?action=account HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..10)
            .map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(7000)))
            .collect::<String>()
    );
    assert_refusal(&raw_exchange(&app, h1, one(big)).await, 431, false);
    let many = format!(
        "GET /v1/me HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..120)
            .map(|i| format!("x-{i}: y\r\n"))
            .collect::<String>()
    );
    assert_refusal(&raw_exchange(&app, h1, one(many)).await, 431, true);

    // A sound head in many pieces is served.
    let get =
        b"GET /settings.phtml?action=account HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let got = raw_exchange(&app, h1, get.chunks(7).map(<[u8]>::to_vec).collect()).await;
    assert_eq!(got.0, 200, "{got:?}");
}

#[tokio::test]
async fn keep_alive_requests_before_a_refused_head_are_answered() {
    let app = TestApp::spawn().await;
    // A body that looks like a bad head, a sound GET, then a bad head, in one write.
    let body = "\x01\x02 bad GET /x\r\n\r\n";
    let stream = format!(
        "POST /settings.phtml HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}\
         GET /settings.phtml?action=account HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /settings.phtml?action=\x01 HTTP/1.1\r\nhost: x\r\n\r\n",
        body.len()
    );
    let addr = app.server.as_ref().unwrap().addr();
    let mut tls = tls_from(
        HOST_A,
        addr,
        tls_config(&app, Some(&app.alice), &[b"http/1.1"]),
    )
    .await;
    let statuses = tokio::task::spawn_blocking(move || {
        tls.write_all(stream.as_bytes()).unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let (status, head, body) = read_response(&mut tls);
            got.push((status, head, String::from_utf8(body).unwrap()));
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(statuses[0].0, 400, "the POST's own refusal: {statuses:?}");
    assert!(statuses[0].2.contains("success"), "{statuses:?}");
    assert_eq!(statuses[1].0, 200, "{statuses:?}");
    assert_eq!(statuses[2].0, 400, "{statuses:?}");
    assert!(statuses[2].1.contains("connection: close"), "{statuses:?}");
    assert!(statuses[2].2.contains("request line"), "{statuses:?}");
}

#[tokio::test]
async fn without_alpn_heads_are_checked_too() {
    let app = TestApp::spawn().await;
    let got = raw_exchange(
        &app,
        &[],
        one(
            &b"GET /settings.phtml?action=account HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                [..],
        ),
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let got = raw_exchange(&app, &[], one(&b"GET /v1/me\x01 HTTP/1.1\r\n\r\n"[..])).await;
    assert_refusal(&got, 400, true);
}

#[tokio::test]
async fn http_1_0_over_alpn_http_1_0_is_served() {
    let app = TestApp::spawn().await;
    let got = raw_exchange(
        &app,
        &[b"http/1.0"],
        one(&b"GET /settings.phtml?action=account HTTP/1.0\r\nhost: localhost\r\n\r\n"[..]),
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let body: Value = serde_json::from_slice(&got.2).unwrap();
    assert!(body.is_object(), "{body}");
}
