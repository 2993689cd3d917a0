//! The load generator: HTTP/1.1 (hyper) over TLS (rustls with aws-lc-rs) with a client
//! certificate per connection, from this process, separate from the server's.
//!
//! * [`keepalive`]: C connections opened first, each sending requests back to back (the next
//!   one as soon as the reply is read) for a warm-up and then a measured window.
//! * [`handshakes`]: W workers each opening a new TCP + TLS connection per request (session
//!   resumption disabled, so every handshake is a full one with client-certificate
//!   verification), cycling through the accounts' certificates.
//!
//! Every reply's status is checked, and the first reply of each connection is checked further
//! (or every reply, for a request that names its expected body); any failure stops the scenario
//! with an error. Latencies go into HDR histograms (µs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::provision::Credential;

/// Longest time one request (or connection set-up) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client configuration (one per certificate).
pub(crate) type Client = Arc<ClientConfig>;
/// The request number `seq` of connection `conn`.
pub(crate) type MakeReq = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;
/// Checks the first reply body of connection `conn`.
pub(crate) type CheckFirst = Arc<dyn Fn(usize, &[u8]) -> anyhow::Result<()> + Send + Sync>;

/// A server to load.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Its address.
    pub addr: SocketAddr,
    name: ServerName<'static>,
}

impl Target {
    /// A server on this machine, verified as `localhost`.
    pub(crate) fn local(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            name: ServerName::try_from("localhost").map_err(|e| anyhow!("server name: {e}"))?,
        })
    }
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: Method,
    path: String,
    body: Bytes,
    expect: StatusCode,
    expect_body: Option<Bytes>,
}

impl Req {
    /// `GET path`, expecting 200.
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: Bytes::new(),
            expect: StatusCode::OK,
            expect_body: None,
        }
    }

    /// `POST path` with a JSON body, expecting `expect`.
    pub(crate) fn post_json(path: impl Into<String>, body: Vec<u8>, expect: StatusCode) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body: Bytes::from(body),
            expect,
            expect_body: None,
        }
    }

    /// The same request, its reply checked to be exactly `body` (every reply, not only the
    /// first of a connection).
    pub(crate) fn expecting_body(mut self, body: Bytes) -> Self {
        self.expect_body = Some(body);
        self
    }
}

/// Measured window and warm-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Not measured.
    pub warmup: Duration,
    /// Measured.
    pub duration: Duration,
}

/// The outcome of a scenario.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Requests completed within the measured window.
    pub count: u64,
    /// Requests completed in all (warm-up included), all successful.
    pub total: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Latency of requests started in the measured window, µs.
    pub hist: Histogram<u64>,
    /// Requests completed in all by each connection (or worker), by its index.
    pub by_conn: Vec<u64>,
}

impl Measured {
    /// Requests per second.
    pub(crate) fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            crate::report::approx(self.count) / self.seconds
        } else {
            0.0
        }
    }
}

/// The crypto provider of the generator: aws-lc-rs with X25519 as the only key exchange, as
/// curl and other OpenSSL 3.0 clients offer first (rustls alone would offer X25519MLKEM768,
/// which the nginx baseline's OpenSSL lacks; the same group on both keeps the comparison fair).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    Arc::new(p)
}

/// The roots: the data directory's `ca.crt` (it signs the server certificate too).
pub(crate) fn roots(ca_pem: &str) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| anyhow!("ca.crt: {e}"))?)
            .context("ca.crt")?;
    }
    Ok(Arc::new(roots))
}

/// A client configuration presenting `cred`, without session resumption.
pub(crate) fn client(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    cred: &Credential,
) -> anyhow::Result<Client> {
    let certs = CertificateDer::pem_slice_iter(cred.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("certificate of {}: {e}", cred.name))?;
    let key = PrivateKeyDer::from_pem_slice(cred.key_pem.as_bytes())
        .map_err(|e| anyhow!("key of {}: {e}", cred.name))?;
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(certs, key)
        .with_context(|| format!("client certificate of {}", cred.name))?;
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn tls_connect(target: &Target, client: &Client) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    TlsConnector::from(client.clone())
        .connect(target.name.clone(), tcp)
        .await
        .with_context(|| format!("TLS handshake with {}", target.addr))
}

async fn http(tls: TlsStream<TcpStream>) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        // Ends when either side closes; errors show up on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn connect(target: &Target, client: &Client) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let fut = async { http(tls_connect(target, client).await?).await };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("no connection within {} s", REQUEST_TIMEOUT.as_secs()))?
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: &Req,
    close: bool,
) -> anyhow::Result<Bytes> {
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(req.path.as_str())
        .header(HOST, "localhost");
    if !req.body.is_empty() {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    if close {
        builder = builder.header(CONNECTION, "close");
    }
    let request = builder.body(Full::new(req.body.clone()))?;
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no reply within {} s", REQUEST_TIMEOUT.as_secs()))??;
    if status != req.expect {
        bail!(
            "{} {} answered {status} (expected {}): {}",
            req.method,
            req.path,
            req.expect,
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
    }
    if let Some(expected) = &req.expect_body
        && body != expected
    {
        bail!(
            "{} {} answered {}, expected {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&body[..body.len().min(400)]),
            String::from_utf8_lossy(expected)
        );
    }
    Ok(body)
}

/// The negotiated TLS parameters and the reply to one request on a fresh connection.
pub(crate) async fn probe(
    target: &Target,
    client: &Client,
    req: &Req,
) -> anyhow::Result<(String, Bytes)> {
    let tls = tokio::time::timeout(REQUEST_TIMEOUT, tls_connect(target, client))
        .await
        .map_err(|_| anyhow!("no TLS connection within {} s", REQUEST_TIMEOUT.as_secs()))??;
    let (_, conn) = tls.get_ref();
    let describe = |s: Option<String>| s.unwrap_or_else(|| "?".into());
    let desc = format!(
        "{}, {}, {}",
        describe(conn.protocol_version().map(|v| format!("{v:?}"))),
        describe(
            conn.negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
        ),
        describe(
            conn.negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
        ),
    );
    let mut sender = http(tls).await?;
    let body = send(&mut sender, req, true).await?;
    Ok((desc, body))
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

#[derive(Debug, Clone, Copy)]
struct Window {
    warm_end: Instant,
    end: Instant,
}

impl Window {
    fn new(plan: &Plan) -> Self {
        let start = Instant::now();
        Self {
            warm_end: start + plan.warmup,
            end: start + plan.warmup + plan.duration,
        }
    }
}

struct Tally {
    conn: usize,
    count: u64,
    total: u64,
    hist: Histogram<u64>,
}

impl Tally {
    fn new(conn: usize) -> anyhow::Result<Self> {
        Ok(Self {
            conn,
            count: 0,
            total: 0,
            hist: histogram()?,
        })
    }

    fn record(&mut self, w: &Window, started: Instant, done: Instant) {
        self.total += 1;
        if started >= w.warm_end {
            let us = u64::try_from((done - started).as_micros()).unwrap_or(u64::MAX);
            self.hist.saturating_record(us.max(1));
            if done <= w.end {
                self.count += 1;
            }
        }
    }
}

async fn merge(mut set: JoinSet<anyhow::Result<Tally>>, plan: &Plan) -> anyhow::Result<Measured> {
    let mut m = Measured {
        count: 0,
        total: 0,
        seconds: plan.duration.as_secs_f64(),
        hist: histogram()?,
        by_conn: Vec::new(),
    };
    while let Some(r) = set.join_next().await {
        // An error drops `set`, which aborts the other tasks.
        let t = r??;
        m.count += t.count;
        m.total += t.total;
        m.hist.add(&t.hist).map_err(|e| anyhow!("histogram: {e}"))?;
        if m.by_conn.len() <= t.conn {
            m.by_conn.resize(t.conn + 1, 0);
        }
        m.by_conn[t.conn] = t.total;
    }
    if m.count == 0 {
        bail!("no request completed in the measured window");
    }
    Ok(m)
}

/// Keep-alive load: one connection per client in `clients`, requests back to back.
pub(crate) async fn keepalive(
    target: &Target,
    clients: &[Client],
    make: MakeReq,
    check: CheckFirst,
    plan: &Plan,
) -> anyhow::Result<Measured> {
    keepalive_over(std::slice::from_ref(target), clients, make, check, plan).await
}

/// [`keepalive`] spread over several servers: connection `i` goes to `targets[i % len]`.
pub(crate) async fn keepalive_over(
    targets: &[Target],
    clients: &[Client],
    make: MakeReq,
    check: CheckFirst,
    plan: &Plan,
) -> anyhow::Result<Measured> {
    if targets.is_empty() {
        bail!("no server to load");
    }
    let mut opening = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let target = targets[i % targets.len()].clone();
        let client = client.clone();
        opening.spawn(async move {
            let sender = connect(&target, &client)
                .await
                .with_context(|| format!("opening connection {i}"))?;
            Ok::<_, anyhow::Error>((i, sender))
        });
    }
    let mut senders = Vec::with_capacity(clients.len());
    while let Some(r) = opening.join_next().await {
        senders.push(r??);
    }
    let window = Window::new(plan);
    let mut set = JoinSet::new();
    for (i, mut sender) in senders {
        let make = make.clone();
        let check = check.clone();
        set.spawn(async move {
            let mut tally = Tally::new(i)?;
            let mut seq = 0_u64;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let req = make(i, seq);
                let body = send(&mut sender, &req, false)
                    .await
                    .with_context(|| format!("connection {i}, request {seq}"))?;
                let done = Instant::now();
                if seq == 0 {
                    check(i, &body).with_context(|| format!("connection {i}: first reply"))?;
                }
                tally.record(&window, started, done);
                seq += 1;
            }
            Ok(tally)
        });
    }
    merge(set, plan).await
}

/// A new TCP + TLS connection per request from `workers` workers, cycling through `clients`
/// (request `make(k, …)` for client `k`).
pub(crate) async fn handshakes(
    target: &Target,
    clients: Arc<Vec<Client>>,
    make: MakeReq,
    workers: usize,
    plan: &Plan,
) -> anyhow::Result<Measured> {
    if clients.is_empty() {
        bail!("no client certificates");
    }
    let next = Arc::new(AtomicUsize::new(0));
    let window = Window::new(plan);
    let mut set = JoinSet::new();
    for w in 0..workers {
        let target = target.clone();
        let clients = clients.clone();
        let next = next.clone();
        let make = make.clone();
        set.spawn(async move {
            let mut tally = Tally::new(w)?;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed) % clients.len();
                let req = make(k, 0);
                let client = &clients[k];
                let target = &target;
                let exchange = async move {
                    let mut sender = http(tls_connect(target, client).await?).await?;
                    send(&mut sender, &req, true).await
                };
                tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                    .await
                    .map_err(|_| anyhow!("no reply within {} s", REQUEST_TIMEOUT.as_secs()))?
                    .with_context(|| format!("worker {w}, certificate {k}"))?;
                tally.record(&window, started, Instant::now());
            }
            Ok(tally)
        });
    }
    merge(set, plan).await
}
