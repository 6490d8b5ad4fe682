//! Accepting and serving connections, the same way on both listeners (the API port and the
//! MITM proxy port) and inside CONNECT tunnels:
//!
//! - a request's headers must arrive within [`ConnSettings::header_read`] (this also closes an
//!   HTTP/1 keep-alive connection that stays silent that long);
//! - a CONNECT tunnel with no request in flight for [`ConnSettings::tunnel_idle`] is closed
//!   (a request waiting for a slow answer, or a response still streaming, keeps it open);
//! - one client address holds at most [`ConnSettings::per_address`] connections across the
//!   listeners (IPv6: per /64), and all clients together at most half the open-file limit; a
//!   connection past either is closed as it is accepted, so one client cannot take every
//!   descriptor and the memory they cost, and many cannot take the ones the server needs for
//!   upstream connections and its database;
//! - an accept error that is not about one connection (`EMFILE`, `ENFILE`, `ENOBUFS`) backs off
//!   (10 ms doubling to 1 s) instead of spinning;
//! - on shutdown, connections are told to finish: idle ones close at once, requests in flight
//!   and open streams get up to [`ConnSettings::grace`] before the process exits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

pub const HEADER_READ_ENV: &str = "AGENT_VAULT_HEADER_READ_TIMEOUT";
pub const TUNNEL_IDLE_ENV: &str = "AGENT_VAULT_TUNNEL_IDLE_TIMEOUT";
pub const GRACE_ENV: &str = "AGENT_VAULT_SHUTDOWN_GRACE";
pub const PER_ADDRESS_ENV: &str = "AGENT_VAULT_CONNECTIONS_PER_ADDRESS";

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Connection timeouts, from the environment (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSettings {
    pub header_read: Duration,
    pub tunnel_idle: Duration,
    pub grace: Duration,
    /// Open connections one client address may hold (0: no cap).
    pub per_address: usize,
}

impl Default for ConnSettings {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(300),
            grace: Duration::from_secs(30),
            // Far above what an agent's connection pools hold (a browser keeps six per host),
            // far below the descriptors a raised limit gives (see `server::open_files`).
            per_address: 4096,
        }
    }
}

impl ConnSettings {
    /// `AGENT_VAULT_HEADER_READ_TIMEOUT` (default 30), `AGENT_VAULT_TUNNEL_IDLE_TIMEOUT`
    /// (default 300) and `AGENT_VAULT_SHUTDOWN_GRACE` (default 30, may be 0), in seconds;
    /// the strings are warnings for values that are not numbers.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let defaults = Self::default();
        let mut warnings = Vec::new();
        let mut read = |name: &str, default: Duration, zero_ok: bool| {
            let text = get(name);
            crate::ceilings::setting_secs_or(name, text.as_deref(), zero_ok, default, &mut warnings)
        };
        let header_read = read(HEADER_READ_ENV, defaults.header_read, false);
        let tunnel_idle = read(TUNNEL_IDLE_ENV, defaults.tunnel_idle, false);
        let grace = read(GRACE_ENV, defaults.grace, true);
        let per_address = match get(PER_ADDRESS_ENV).filter(|v| !v.trim().is_empty()) {
            None => defaults.per_address,
            Some(text) => text.trim().parse::<usize>().unwrap_or_else(|_| {
                warnings.push(format!(
                    "{PER_ADDRESS_ENV}={} is not a whole number of connections; using {}",
                    crate::ceilings::excerpt(text.trim(), 32),
                    defaults.per_address
                ));
                defaults.per_address
            }),
        };
        let settings = Self {
            header_read,
            tunnel_idle,
            grace,
            per_address,
        };
        (settings, warnings)
    }
}

/// Knows the live connections and tells them when to finish.
#[derive(Clone)]
pub struct Drain {
    stop: watch::Receiver<bool>,
    live: Arc<(AtomicUsize, Notify)>,
    per_address: Arc<PerAddress>,
}

/// The connections each client address holds open, and all of them, against their caps.
struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    total_cap: usize,
    total: AtomicUsize,
}

/// Why a connection was closed as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    /// Its client address holds `per_address` connections already.
    Address,
    /// Clients hold the connections the server allows in all.
    Total,
}

/// One accepted connection: live for the drain, and counted against its client's address
/// and the total, until dropped.
pub struct Admitted {
    _live: Live,
    counts: Arc<PerAddress>,
    address: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.address.take() {
            let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

/// The address a cap counts by: IPv4 as is, IPv6 by its /64 (one host's usual share).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u128::from(u64::MAX))).into()),
        },
        v4 => v4,
    }
}

/// One live connection; counted until dropped.
pub struct Live(Arc<(AtomicUsize, Notify)>);

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.1.notify_waiters();
        }
    }
}

impl Drain {
    /// `per_address`: the connections one client address may hold; `total`: all clients
    /// together (0: no cap).
    pub fn new(stop: watch::Receiver<bool>, per_address: usize, total: usize) -> Self {
        Self {
            stop,
            live: Arc::new((AtomicUsize::new(0), Notify::new())),
            per_address: Arc::new(PerAddress {
                cap: per_address,
                open: Mutex::default(),
                total_cap: total,
                total: AtomicUsize::new(0),
            }),
        }
    }

    /// Counts a new connection from `peer` (live, against its address and the total), or
    /// says which cap it is over.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, OverCap> {
        let counts = &self.per_address;
        let total = counts.total.fetch_add(1, Ordering::AcqRel);
        // Counted from here on: dropping `admitted` undoes it, whatever refuses below.
        let mut admitted = Admitted {
            _live: self.track(),
            counts: counts.clone(),
            address: None,
        };
        if counts.total_cap != 0 && total >= counts.total_cap {
            return Err(OverCap::Total);
        }
        if counts.cap != 0 {
            let key = client_key(peer);
            let mut open = counts.open.lock().unwrap_or_else(|e| e.into_inner());
            let held = open.entry(key).or_insert(0);
            if *held >= counts.cap {
                return Err(OverCap::Address);
            }
            *held += 1;
            admitted.address = Some(key);
        }
        Ok(admitted)
    }

    pub fn track(&self) -> Live {
        self.live.0.fetch_add(1, Ordering::AcqRel);
        Live(self.live.clone())
    }

    pub fn live(&self) -> usize {
        self.live.0.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun.
    pub async fn stopping(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|stop| *stop).await;
    }

    /// Waits until every connection has finished, or `grace` has passed; true when all did.
    pub async fn finished(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            let notified = self.live.1.notified();
            if self.live() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.live() == 0;
            }
        }
    }
}

/// Accepts connections until shutdown begins, handing each to `serve`.
pub async fn accept_loop(
    listener: TcpListener,
    drain: Drain,
    what: &'static str,
    mut serve: impl FnMut(TcpStream, std::net::SocketAddr, Admitted),
) {
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = drain.stopping() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                match drain.admit(peer.ip()) {
                    Ok(admitted) => serve(stream, peer, admitted),
                    Err(over) => refuse_over_cap(what, stream, peer, over),
                }
            }
            // About one connection that went away before we took it: take the next.
            Err(e) if per_connection(&e) => {}
            Err(e) => {
                if backoff.is_zero() {
                    tracing::warn!("{what}: cannot accept connections ({e}); backing off");
                }
                backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = drain.stopping() => return,
                }
            }
        }
    }
}

/// Closes a connection over a cap: counted in `/metrics`, and warned of at the 1st, 2nd,
/// 4th, 8th… refusal (a flood must not flood the log too).
fn refuse_over_cap(what: &str, stream: TcpStream, peer: std::net::SocketAddr, over: OverCap) {
    drop(stream);
    let refused = crate::metrics::global().connections_refused.inc() + 1;
    if !refused.is_power_of_two() {
        return;
    }
    match over {
        OverCap::Address => tracing::warn!(
            refused,
            "{what}: {} holds {PER_ADDRESS_ENV} connections already; closed a new one",
            peer.ip()
        ),
        OverCap::Total => tracing::warn!(
            refused,
            "{what}: clients hold half the open-file limit in connections (the rest is kept for upstream connections and the database); closed a new one from {}",
            peer.ip()
        ),
    }
}

fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}

/// How driving a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connection finished by itself.
    Done,
    /// Nothing was in flight for the idle limit: drop the connection to close it.
    Idle,
    /// Shutdown began: ask the connection to finish gracefully, then drive it to its end.
    Stopping,
}

/// Resolves when a connection should stop being driven as usual: shutdown began, or (with
/// `idle`) no request has been in flight for that long. Callers race it against the
/// connection (inline, in a `select!`: a generic helper that takes the connection trips
/// rustc's higher-ranked `Send` inference on hyper's connection types).
pub async fn stop_or_idle(drain: &Drain, idle: Option<(&Activity, Duration)>) -> Ended {
    let idle_out = async {
        match idle {
            Some((activity, limit)) => activity.idle_for(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = idle_out => Ended::Idle,
        () = drain.stopping() => Ended::Stopping,
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Clone)]
pub struct Activity(Arc<ActivityState>);

struct ActivityState {
    in_flight: AtomicUsize,
    since: std::sync::Mutex<Instant>,
}

/// One request in flight (until its response body is done or dropped).
pub struct InFlight(Arc<ActivityState>);

/// Another hold on the same activity (a request's extensions need `Clone`).
impl Clone for InFlight {
    fn clone(&self) -> Self {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(self.0.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(ActivityState {
            in_flight: AtomicUsize::new(0),
            since: std::sync::Mutex::new(Instant::now()),
        }))
    }
}

impl Activity {
    pub fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let wait = if self.0.in_flight.load(Ordering::Acquire) > 0 {
                limit
            } else {
                let since = *self.0.since.lock().unwrap_or_else(|e| e.into_inner());
                match limit.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_with_warnings() {
        let (settings, warnings) = ConnSettings::from_lookup(|name| match name {
            HEADER_READ_ENV => Some("5".into()),
            TUNNEL_IDLE_ENV => Some("soon".into()),
            GRACE_ENV => Some("0".into()),
            PER_ADDRESS_ENV => Some("many".into()),
            _ => None,
        });
        assert_eq!(settings.header_read, Duration::from_secs(5));
        assert_eq!(settings.tunnel_idle, ConnSettings::default().tunnel_idle);
        assert_eq!(settings.grace, Duration::ZERO);
        assert_eq!(settings.per_address, 4096);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains(TUNNEL_IDLE_ENV), "{warnings:?}");
        assert!(warnings[1].contains(PER_ADDRESS_ENV), "{warnings:?}");
        let (settings, _) =
            ConnSettings::from_lookup(|name| (name == PER_ADDRESS_ENV).then(|| "0".to_owned()));
        assert_eq!(settings.per_address, 0);
    }

    #[test]
    fn each_address_holds_at_most_its_cap_and_ipv6_counts_by_64() {
        let (_tx, rx) = watch::channel(false);
        let drain = Drain::new(rx, 2, 0);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = drain.admit(ip("10.0.0.1")).unwrap();
        let _second = drain.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            drain.admit(ip("10.0.0.1")).err(),
            Some(OverCap::Address),
            "the third is over the cap"
        );
        assert!(
            drain.admit(ip("10.0.0.2")).is_ok(),
            "another address has its own"
        );
        drop(first);
        assert!(
            drain.admit(ip("10.0.0.1")).is_ok(),
            "a closed one frees its place"
        );
        let _a = drain.admit(ip("2001:db8:1:2::a")).unwrap();
        let _b = drain.admit(ip("2001:db8:1:2:ffff::b")).unwrap();
        assert!(drain.admit(ip("2001:db8:1:2::c")).is_err(), "one /64");
        assert!(drain.admit(ip("2001:db8:1:3::a")).is_ok(), "another /64");
        let (_tx, rx) = watch::channel(false);
        let uncapped = Drain::new(rx, 0, 0);
        let held: Vec<_> = (0..10).map(|_| uncapped.admit(ip("10.0.0.1"))).collect();
        assert!(held.iter().all(Result::is_ok));
    }

    #[test]
    fn all_addresses_together_hold_at_most_the_total() {
        let (_tx, rx) = watch::channel(false);
        let drain = Drain::new(rx, 2, 3);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let held: Vec<_> = (1..=3).map(|n| drain.admit(ip(n)).unwrap()).collect();
        assert_eq!(drain.admit(ip(4)).err(), Some(OverCap::Total));
        assert_eq!(
            drain.admit(ip(4)).err(),
            Some(OverCap::Total),
            "a refusal frees its count"
        );
        drop(held);
        let _again: Vec<_> = (4..=6).map(|n| drain.admit(ip(n)).unwrap()).collect();
        assert_eq!(drain.admit(ip(1)).err(), Some(OverCap::Total));
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Activity::default();
        let request = activity.begin();
        let limit = Duration::from_millis(20);
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(limit).await }
        });
        tokio::time::sleep(limit * 5).await;
        assert!(!idle.is_finished(), "a request in flight keeps it open");
        drop(request);
        tokio::time::timeout(Duration::from_secs(10), idle)
            .await
            .expect("idle once the request ended")
            .unwrap();
    }

    #[tokio::test]
    async fn the_drain_waits_for_live_connections_up_to_the_grace() {
        let (_tx, rx) = watch::channel(false);
        let drain = Drain::new(rx, 0, 0);
        assert!(drain.finished(Duration::from_millis(10)).await);
        let live = drain.track();
        assert!(!drain.finished(Duration::from_millis(10)).await);
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.finished(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(live);
        assert!(waiter.await.unwrap());
    }
}
