//! The accept loop. Each accepted TCP connection is handed to its own task at once; the TLS
//! handshake runs there under a timeout, so a slow or silent client never stalls the loop. The
//! peer's certificate and address go into every request's extensions as [`Peer`]. What a
//! connection may hold: a slot of `max_connections` and one of its address's
//! `max_connections_per_address`, both taken at accept; the handshake timeout, then the
//! first-request timeout, then the idle timeout between requests (see [`crate::slots`]).
//! Malformed HTTP/1 request heads are answered in JSON by [`crate::head_check`].
//!
//! Stopping drains: when the shutdown future completes the listener is closed (new connections
//! are refused), every open connection is told to finish (HTTP/1 closes after the request in
//! flight, HTTP/2 sends GOAWAY and finishes its open streams), and [`serve`] returns when the
//! last one has ended or `shutdown_grace` has passed, whichever is first; connections still
//! open then are cut.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use sip_settings_core::Serial;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

use crate::head_check::HeadCheck;
use crate::slots::{Activity, AddressSlots, Expiry, TrackedBody};

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client's certificate, when it presented one that verified, read once per connection
    /// (not once per request).
    pub certificate: Option<Arc<PeerCertificate>>,
}

/// What a presented client certificate says about who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCertificate {
    /// Its serial and SHA-256 fingerprint, to be looked up in the store.
    Read {
        /// The serial.
        serial: Serial,
        /// SHA-256 of the DER, lower-case hex.
        fingerprint: String,
    },
    /// It verified against the CA but could not be parsed.
    Unreadable,
}

impl PeerCertificate {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Self {
        match sip_settings_pki::peer_identity(der) {
            Ok((serial, fingerprint)) => Self::Read {
                serial,
                fingerprint,
            },
            Err(_) => Self::Unreadable,
        }
    }
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest time a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Longest time from the end of the handshake to a complete first request head (HTTP/1)
    /// or the first stream (HTTP/2); also hyper's HTTP/1 header read timeout. A connection
    /// therefore holds a slot at most `handshake_timeout + first_request_timeout` without a
    /// request.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight for this long (an idle keep-alive HTTP/1
    /// connection, an HTTP/2 connection without open streams) is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Most connections open at once from one source address (an IPv6 /64 counts as one);
    /// more are closed at accept.
    pub max_connections_per_address: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_h2_streams: u32,
    /// On shutdown, how long requests in flight may take to finish before their connections
    /// are cut.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The default per-address cap for a given `max_connections`: a tenth of it (at least 1),
    /// so that one host can never take more than a tenth of the slots.
    pub fn default_per_address(max_connections: usize) -> usize {
        (max_connections / 10).max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_address: Self::default_per_address(10_000),
            max_h2_streams: 100,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then drains (see the module
/// documentation).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = AddressSlots::new(limits.max_connections_per_address);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            // Reap ended connections, so that the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) = per_address.try_take(addr.ip()) else {
            tracing::warn!(%addr, "connection limit of this address reached, closing");
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%addr, "connection limit reached, closing");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        let draining = draining.clone();
        connections.spawn(async move {
            let _slots = (permit, address_slot);
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    let reason = sip_settings_pki::tls::handshake_failure_reason(&error);
                    sip_settings_core::metrics::count_tls_handshake_failure("https", reason);
                    tracing::debug!(%addr, %error, reason, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    sip_settings_core::metrics::count_tls_handshake_failure("https", "timeout");
                    tracing::debug!(%addr, "TLS handshake timed out");
                    return;
                }
            };
            serve_connection(tls, addr, app, &limits, draining).await;
        });
    }
    drop(listener);
    let open = connections.len();
    let _ = drain.send(true);
    tracing::info!(
        open,
        grace = ?limits.shutdown_grace,
        "stopped accepting; draining open connections"
    );
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            cut = connections.len(),
            "grace period over; cutting the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Completes once the server drains (at once when it already does).
async fn drained(draining: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server has stopped, which is a drain too.
    let _ = draining.wait_for(|d| *d).await;
}

/// Serves one connection after its handshake, and closes it when it has sent no request head
/// within the first-request timeout (at once: it has been served nothing) or has had no request
/// in flight for the idle timeout (gracefully: HTTP/1 closes between requests, HTTP/2 sends
/// GOAWAY; a request that slipped in meanwhile gets up to the first-request timeout to finish).
async fn serve_connection(
    tls: TlsStream<TcpStream>,
    addr: SocketAddr,
    app: Router,
    limits: &Limits,
    mut draining: watch::Receiver<bool>,
) {
    let (_, session) = tls.get_ref();
    let certificate = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| Arc::new(PeerCertificate::from_der(c)));
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let peer = Peer { addr, certificate };
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer.clone());
            let in_flight = activity.begin();
            let call = app.clone().oneshot(request);
            async move {
                let response = call.await?;
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.first_request_timeout)
        // A refused head (head_check) ends hyper's input while an earlier pipelined request
        // may still be answered: let that answer go out.
        .half_close(true)
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_h2_streams)
        .max_header_list_size(256 * 1024);
    // ALPN decides the protocol; without ALPN hyper tells them apart by the HTTP/2 preface.
    let builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1" | b"http/1.0") => builder.http1_only(),
        _ => builder,
    };
    let io = HeadCheck::new(tls, alpn.as_deref() != Some(b"h2"));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let expiry = tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%addr, %error, "connection ended with an error");
            }
            return;
        }
        expiry = activity.expired(limits.first_request_timeout, limits.idle_timeout) => expiry,
        () = drained(&mut draining) => {
            // Finish what is in flight (bounded by the server's grace period), then close.
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "connection ended with an error while draining");
            }
            return;
        }
    };
    match expiry {
        Expiry::NoRequest => {
            tracing::debug!(%addr, "no request in time, closing");
        }
        Expiry::Idle => {
            tracing::debug!(%addr, "idle, closing");
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.first_request_timeout, connection).await;
        }
    }
}
