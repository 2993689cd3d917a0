//! The socket layer of the SIP door: it only moves bytes between the listeners and
//! [`Door::handle`]. UDP answers each datagram to its source address (as RFC 3581's `rport`
//! would); TCP and TLS frame messages by `Content-Length` and answer on the same connection,
//! many requests per connection. Trust: UDP and TCP peers by address (the `trusted` blocks),
//! TLS peers by a service certificate of this service's CA, checked in the store for every
//! request (a revocation holds for the next INVITE).
//!
//! A decision whose reads are all in memory completes on the first poll and is answered on the
//! receiving task; one that must wait for the store (PostgreSQL, a cold cache) moves to its own
//! task, at most [`MAX_PENDING`] at once per listener, so one slow look-up never holds up the
//! datagrams behind it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use sip_settings_core::Identity;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{SipConfig, Transport};
use crate::door::{Door, LatencySummary, Trust};
use crate::message::{MAX_MESSAGE_BYTES, frame, skip_keepalive};

/// Most decisions waiting for the store at once, per listener; past that a datagram waits.
pub const MAX_PENDING: usize = 1_024;
/// Most decisions waiting for the store at once on one TCP/TLS connection.
pub const MAX_PENDING_PER_CONNECTION: usize = 256;
/// Most open TCP/TLS connections per listener.
pub const MAX_CONNECTIONS: usize = 4_096;
/// A stream connection with no complete message for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;

/// The running SIP door: its listeners and their tasks.
#[derive(Debug)]
pub struct SipServer {
    bound: Vec<(Transport, SocketAddr)>,
    door: Door,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl SipServer {
    /// Binds every listener of `config` and starts serving. `tls` is required when a `tls:`
    /// listener is configured.
    pub async fn start(
        config: &SipConfig,
        door: Door,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, String> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut bound = Vec::new();
        for listen in &config.listen {
            let what = |e: std::io::Error| format!("cannot listen on {listen}: {e}");
            match listen.transport {
                Transport::Udp => {
                    let socket = Arc::new(udp_socket(listen.addr).map_err(what)?);
                    bound.push((Transport::Udp, socket.local_addr().map_err(what)?));
                    // One receiving task per core, all on the one socket: a decision that
                    // misses the cache, or a receiver descheduled for a moment, does not hold
                    // up the datagrams behind it.
                    let receivers = std::thread::available_parallelism().map_or(2, |n| n.get());
                    let pending = Arc::new(Semaphore::new(MAX_PENDING));
                    for _ in 0..receivers.clamp(1, 16) {
                        tasks.spawn(udp_loop(
                            socket.clone(),
                            door.clone(),
                            pending.clone(),
                            stopped.clone(),
                        ));
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    let acceptor = match listen.transport {
                        Transport::Tls => {
                            Some(TlsAcceptor::from(tls.clone().ok_or_else(|| {
                                format!("{listen}: TLS needs the server certificate")
                            })?))
                        }
                        _ => None,
                    };
                    let listener = TcpListener::bind(listen.addr).await.map_err(what)?;
                    bound.push((listen.transport, listener.local_addr().map_err(what)?));
                    tasks.spawn(stream_loop(
                        listener,
                        acceptor,
                        door.clone(),
                        stopped.clone(),
                    ));
                }
            }
            tracing::info!(listen = %bound.last().map(|(t, a)| format!("{t}:{a}")).unwrap_or_default(), "SIP redirect server listening");
        }
        Ok(Self {
            bound,
            door,
            stop,
            tasks,
        })
    }

    /// The bound address of the first listener of `transport`.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Every bound listener.
    pub fn bound(&self) -> &[(Transport, SocketAddr)] {
        &self.bound
    }

    /// The decision times so far.
    pub fn latency(&self) -> LatencySummary {
        self.door.stats().latency()
    }

    /// Stops the listeners and logs the decision latency (`sip decision latency count=…
    /// p50_us=… p90_us=… p99_us=… max_us=…`).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let l = self.latency();
        tracing::info!(
            count = l.count,
            p50_us = l.p50_us,
            p90_us = l.p90_us,
            p99_us = l.p99_us,
            max_us = l.max_us,
            "sip decision latency"
        );
    }
}

/// Polls `f` once, without a waker that matters: `Ready` when everything it needed was in
/// memory. Otherwise the caller moves it to a task, where it is polled with a real waker.
///
/// A panic while deciding (a bug: input never should cause one) is caught here and the message
/// dropped, so a receiving task never dies of it; a decision moved to its own task is
/// contained by tokio the same way.
fn poll_now(f: &mut Answer) -> Poll<Option<Vec<u8>>> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(&mut cx))) {
        Ok(poll) => poll,
        Err(_) => {
            tracing::error!("sip: a decision panicked; the message is dropped");
            Poll::Ready(None)
        }
    }
}

/// Receive (and send) buffer asked of the kernel for a UDP listener: at 20 000 INVITEs a second
/// the default (about 208 KiB, a few hundred datagrams) overflows when a receiver is off the
/// CPU for 10-20 ms. The kernel caps it at `net.core.rmem_max` (`wmem_max`).
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// A non-blocking UDP socket bound to `addr` with [`UDP_BUFFER_BYTES`] buffers (or as much of
/// them as the kernel allows).
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "sip: cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "sip: cannot enlarge the UDP send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    door: Door,
    pending: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
    loop {
        let (n, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors of earlier sends surface here on some systems: not fatal.
                    tracing::debug!(error = %e, "sip: udp receive");
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let Some(bytes) = buf.get(..n) else { continue };
        if n > MAX_MESSAGE_BYTES || bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue;
        }
        let trust = if door
            .config()
            .trusted
            .iter()
            .any(|c| c.contains(source.ip()))
        {
            Trust::Trusted
        } else {
            Trust::Untrusted
        };
        let owned = bytes.to_vec();
        let d = door.clone();
        let mut answer: Answer = Box::pin(async move { d.handle(&owned, source, trust).await });
        match poll_now(&mut answer) {
            Poll::Ready(Some(out)) => {
                if let Err(e) = socket.send_to(&out, source).await {
                    tracing::debug!(error = %e, %source, "sip: udp send");
                }
            }
            Poll::Ready(None) => {}
            Poll::Pending => {
                let Ok(permit) = pending.clone().acquire_owned().await else {
                    return;
                };
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Some(out) = answer.await
                        && let Err(e) = socket.send_to(&out, source).await
                    {
                        tracing::debug!(error = %e, %source, "sip: udp send");
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn stream_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    door: Door,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, source) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "sip: accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let door = door.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let trusted = door
                        .config()
                        .trusted
                        .iter()
                        .any(|c| c.contains(source.ip()));
                    let trust = move |_: &Door| {
                        let t = if trusted {
                            Trust::Trusted
                        } else {
                            Trust::Untrusted
                        };
                        Box::pin(async move { t }) as Pin<Box<dyn Future<Output = Trust> + Send>>
                    };
                    serve_stream(tcp, source, door, trust).await;
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                        .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            let reason = sip_settings_pki::tls::handshake_failure_reason(&error);
                            sip_settings_core::metrics::count_tls_handshake_failure("sip", reason);
                            tracing::debug!(%source, %error, reason, "sip: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            sip_settings_core::metrics::count_tls_handshake_failure(
                                "sip", "timeout",
                            );
                            tracing::debug!(%source, "sip: TLS handshake timed out");
                            return;
                        }
                    };
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| sip_settings_pki::peer_identity(c.as_ref()).ok());
                    let trust = move |door: &Door| {
                        let services = door.services().clone();
                        let peer = peer.clone();
                        Box::pin(async move {
                            match peer {
                                Some((serial, fingerprint)) => {
                                    match services.authenticate(&serial, &fingerprint).await {
                                        Ok(Identity::Service { .. }) => Trust::Trusted,
                                        _ => Trust::Untrusted,
                                    }
                                }
                                None => Trust::Untrusted,
                            }
                        }) as Pin<Box<dyn Future<Output = Trust> + Send>>
                    };
                    serve_stream(stream, source, door, trust).await;
                }
            }
            drop(slot);
        });
    }
}

/// Reads framed messages from one connection and answers each one, many at a time: an answer
/// whose reads are in memory is queued for the writer at once; one that waits for the store
/// runs in its own task (at most [`MAX_PENDING_PER_CONNECTION`] per connection) and is written
/// when it is ready, so one slow look-up does not hold up the requests behind it (a proxy
/// matches answers by their Via branch, not their order). `trust` is asked for every request,
/// so a revoked certificate is refused from the next request on.
async fn serve_stream<S, T>(stream: S, source: SocketAddr, door: Door, trust: T)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    T: Fn(&Door) -> Pin<Box<dyn Future<Output = Trust> + Send>>,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_PENDING_PER_CONNECTION);
    let written = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let pending = Arc::new(Semaphore::new(MAX_PENDING_PER_CONNECTION));
    let mut buf: Vec<u8> = Vec::with_capacity(4_096);
    let mut chunk = vec![0u8; 16_384];
    'connection: loop {
        // Answer every complete message already buffered.
        loop {
            let skip = skip_keepalive(&buf);
            if skip > 0 {
                buf.drain(..skip);
            }
            match frame(&buf) {
                Ok(Some(len)) => {
                    let message: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                    let (d, asked) = (door.clone(), trust(&door));
                    let mut answer: Answer = Box::pin(async move {
                        let t = asked.await;
                        d.handle(&message, source, t).await
                    });
                    match poll_now(&mut answer) {
                        Poll::Ready(Some(out)) => {
                            if tx.send(out).await.is_err() {
                                break 'connection;
                            }
                        }
                        Poll::Ready(None) => {}
                        Poll::Pending => {
                            let Ok(permit) = pending.clone().acquire_owned().await else {
                                break 'connection;
                            };
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                if let Some(out) = answer.await {
                                    let _ = tx.send(out).await;
                                }
                                drop(permit);
                            });
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%source, reason = %e.reason, "sip: unframeable stream, closing");
                    break 'connection;
                }
            }
        }
        if buf.len() > MAX_MESSAGE_BYTES {
            break;
        }
        let n = match tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    // The writer ends once every answer still being decided has been sent.
    drop(tx);
    let _ = written.await;
}
