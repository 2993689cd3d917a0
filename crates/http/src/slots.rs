//! What a connection may hold and for how long: the per-source-address cap, and the activity
//! of a connection (requests in flight, when it last went idle) that the accept loop's watchdog
//! reads to close connections that never send a request or sit idle too long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};

/// The key connections are counted under: an IPv4 address, or the /64 an IPv6 address is in
/// (one host is normally given a whole /64, so counting single IPv6 addresses would not limit
/// it). IPv4-mapped IPv6 addresses (a dual-stack listener) count as their IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// Open connections per source address, capped.
#[derive(Debug)]
pub struct AddressSlots {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressSlots {
    /// At most `cap` open connections per address (see [`address_key`]).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or `None` when that address has `cap` open already.
    /// The slot is given back when the returned guard is dropped.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: self.clone(),
            key,
        })
    }

    /// Open connections counted for `ip` (tests).
    pub fn open_for(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&address_key(ip)).copied().unwrap_or(0)
    }
}

/// One connection's place in [`AddressSlots`].
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a connection is doing, as its requests see it: a request is in flight from the moment
/// hyper hands its complete head to the service until its response body is finished (or
/// dropped). HTTP/1 and HTTP/2 alike: an HTTP/2 stream is one request.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    any_request: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last request in flight finished.
    idle_since_ms: AtomicU64,
    /// Wakes the watchdog at the connection's first request, the one change that can move its
    /// deadline earlier (from the first-request timeout to the idle timeout). Later requests
    /// only move it later, so they wake nothing: the watchdog re-reads the state when its timer
    /// fires, once per idle period at most rather than once per request.
    started: tokio::sync::Notify,
}

/// Why the watchdog closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within the first-request timeout.
    NoRequest,
    /// No request in flight for the idle timeout.
    Idle,
}

impl Activity {
    /// A connection whose handshake has just finished.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            any_request: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            started: tokio::sync::Notify::new(),
        })
    }

    /// A request has begun; it ends when the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.any_request.swap(true, Ordering::AcqRel) {
            self.started.notify_one();
        }
        InFlight {
            activity: self.clone(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves when the connection should be closed: no request head within `first_request`
    /// of the handshake, or no request in flight for `idle`.
    pub async fn expired(&self, first_request: Duration, idle: Duration) -> Expiry {
        loop {
            let now = Instant::now();
            let (deadline, expiry) = if self.in_flight.load(Ordering::Acquire) > 0 {
                (now + idle, Expiry::Idle)
            } else if !self.any_request.load(Ordering::Acquire) {
                (self.epoch + first_request, Expiry::NoRequest)
            } else {
                let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
                (self.epoch + since + idle, Expiry::Idle)
            };
            if deadline <= now {
                return expiry;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {}
                () = self.started.notified() => {}
            }
        }
    }
}

/// A request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Stamp first, then count down: the watchdog reads the count first.
        self.activity
            .idle_since_ms
            .store(self.activity.now_ms(), Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper has sent it all (or dropped
/// it). Size and end-of-stream are passed through, so hyper still sets `Content-Length`.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    /// `inner`, counted as in flight until dropped.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_cap_counts_per_host_and_gives_back() {
        let slots = AddressSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = slots.try_take(a);
        let two = slots.try_take(a);
        assert!(one.is_some() && two.is_some());
        assert!(slots.try_take(a).is_none(), "third from one address");
        assert!(slots.try_take(b).is_some(), "another address");
        drop(one);
        assert!(slots.try_take(a).is_some(), "a slot given back");
        // IPv4-mapped counts as IPv4; IPv6 by /64.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), a);
        let x: IpAddr = "2001:db8::1".parse().unwrap();
        let y: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(x), address_key(y));
    }
}
