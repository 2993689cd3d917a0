//! The accept loop. Each accepted TCP connection is handed to its own task at once; the TLS
//! handshake runs there under a timeout, so a slow or silent client never stalls the loop. The
//! peer's certificate and address go into every request's extensions as [`Peer`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use sip_settings_core::Serial;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

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
    /// Longest time to receive a request's headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// Most connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_h2_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_h2_streams: 100,
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%addr, "connection limit reached, closing");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%addr, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "TLS handshake timed out");
                    return;
                }
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| Arc::new(PeerCertificate::from_der(c)));
            let peer = Peer { addr, certificate };
            let service = app.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(256 * 1024);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.max_h2_streams)
                .max_header_list_size(256 * 1024);
            if let Err(error) = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await
            {
                tracing::debug!(%addr, %error, "connection ended with an error");
            }
        });
    }
}
