//! Prometheus metrics (text exposition format, through `prometheus-client`), served at
//! `GET /metrics` on the API port to an instance owner's token.
//!
//! One process-wide registry: the data path bumps counters here without threading a handle
//! through every constructor, and nothing below depends on anything above. No label ever
//! carries a credential, token, path or query: only ingress names, status classes and the
//! broker's stable error codes.

use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxiedLabels {
    /// `mitm` or `explicit`.
    pub ingress: &'static str,
    /// The response's status class (`2xx` … `5xx`, or `none` when nothing was answered).
    pub status: &'static str,
    /// The broker's error code when it refused or failed the request, else empty.
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngressLabels {
    pub ingress: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `snapshot` (a vault's services and credentials) or `token` (a resolved proxy token).
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limit refused the request.
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SandboxLabels {
    /// `process` or `container`.
    pub mode: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub proxied: Family<ProxiedLabels, Counter>,
    pub proxied_seconds: Family<IngressLabels, Histogram>,
    pub cache: Family<CacheLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub vault_run_sessions: Counter,
    pub sandbox_runs: Family<SandboxLabels, Counter>,
    pub sandbox_start_seconds: Family<SandboxLabels, Histogram>,
    pub db_connections: Gauge,
    pub db_connections_idle: Gauge,
    pub db_waiting: Gauge,
    pub start_time: Gauge<f64, AtomicU64>,
    pub worker_threads: Gauge,
    pub request_log_dropped: Counter,
    pub connections_refused: Counter,
    hot: HotSeries,
}

/// The series every proxied request touches, kept once first resolved: a family lookup
/// hashes its labels under a lock, and the data path would make four per request.
#[derive(Default)]
struct HotSeries {
    /// By ingress (`mitm`, `explicit`) and status class, without a broker error.
    proxied: [[OnceLock<Counter>; 6]; 2],
    seconds: [OnceLock<Histogram>; 2],
    /// By cache (`token`, `snapshot`) and hit.
    cache: [[OnceLock<Counter>; 2]; 2],
}

/// Runs `use_it` on `family`'s series for `labels`, through `slot` when there is one.
fn with_series<L, M>(
    slot: Option<&OnceLock<M>>,
    family: &Family<L, M>,
    labels: L,
    use_it: impl FnOnce(&M),
) where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
{
    match slot {
        Some(slot) => use_it(slot.get_or_init(|| family.get_or_create(&labels).clone())),
        None => use_it(&family.get_or_create(&labels)),
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("agent_vault");
        let proxied = Family::<ProxiedLabels, Counter>::default();
        registry.register(
            "proxied_requests",
            "Requests through the broker, by ingress, status class and broker error code",
            proxied.clone(),
        );
        let proxied_seconds = Family::<IngressLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 65 s: agents' model calls hold a response for minutes at worst.
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        registry.register(
            "proxied_request_duration_seconds",
            "Time from a proxied request's arrival to its response head, by ingress",
            proxied_seconds.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "broker_cache_lookups",
            "Data-path cache lookups (vault snapshots and proxy tokens), by result",
            cache.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited_requests",
            "Requests refused by a rate limit (per replica), by limit",
            rate_limited.clone(),
        );
        let vault_run_sessions = Counter::default();
        registry.register(
            "vault_run_sessions",
            "Leased tokens minted for `vault run` (process and container sandboxes)",
            vault_run_sessions.clone(),
        );
        let sandbox_runs = Family::<SandboxLabels, Counter>::default();
        registry.register(
            "sandbox_runs",
            "`vault run` sandboxes started, as their CLI reported them, by mode",
            sandbox_runs.clone(),
        );
        let sandbox_start_seconds =
            Family::<SandboxLabels, Histogram>::new_with_constructor(|| {
                // 5 ms (a process) to about 82 s (a container whose images are being built).
                Histogram::new(exponential_buckets(0.005, 2.0, 15))
            });
        registry.register(
            "sandbox_start_duration_seconds",
            "From `vault run` starting to its sandbox running the command, by mode",
            sandbox_start_seconds.clone(),
        );
        let db_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "PostgreSQL connections open in this replica's pool (0 on SQLite)",
            db_connections.clone(),
        );
        let db_connections_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "PostgreSQL connections idle in this replica's pool",
            db_connections_idle.clone(),
        );
        let db_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Callers waiting for a PostgreSQL connection",
            db_waiting.clone(),
        );
        let start_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "process_start_time_seconds",
            "When this server started, in seconds since the Unix epoch",
            start_time.clone(),
        );
        let worker_threads = Gauge::default();
        registry.register(
            "worker_threads",
            "Threads serving connections (AGENT_VAULT_WORKER_THREADS)",
            worker_threads.clone(),
        );
        let request_log_dropped = Counter::default();
        registry.register(
            "request_log_dropped_records",
            "Request-log records dropped because the database fell behind the data path",
            request_log_dropped.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed as accepted: their address held AGENT_VAULT_CONNECTIONS_PER_ADDRESS",
            connections_refused.clone(),
        );
        Self {
            registry,
            proxied,
            proxied_seconds,
            cache,
            rate_limited,
            vault_run_sessions,
            sandbox_runs,
            sandbox_start_seconds,
            db_connections,
            db_connections_idle,
            db_waiting,
            start_time,
            worker_threads,
            request_log_dropped,
            connections_refused,
            hot: HotSeries::default(),
        }
    }

    /// One proxied request, as the request log records it.
    /// Labels are static strings: no allocation on the data path.
    pub fn proxied(
        &self,
        ingress: &'static str,
        status: u16,
        error: Option<&'static str>,
        duration_ms: u64,
    ) {
        let class = match status / 100 {
            n @ 1..=5 => n as usize,
            _ => 0,
        };
        let status = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"][class];
        let at = match ingress {
            "mitm" => Some(0),
            "explicit" => Some(1),
            _ => None,
        };
        let error = error.unwrap_or_default();
        let labels = ProxiedLabels {
            ingress,
            status,
            error,
        };
        let slot = at
            .filter(|_| error.is_empty())
            .map(|at| &self.hot.proxied[at][class]);
        with_series(slot, &self.proxied, labels, |c| {
            c.inc();
        });
        #[allow(clippy::cast_precision_loss)] // milliseconds: far below 2^52
        let seconds = duration_ms as f64 / 1000.0;
        let slot = at.map(|at| &self.hot.seconds[at]);
        with_series(
            slot,
            &self.proxied_seconds,
            IngressLabels { ingress },
            |h| h.observe(seconds),
        );
    }

    /// A data-path cache lookup: `cache` is `snapshot` or `token`.
    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        let slot = match cache {
            "token" => Some(&self.hot.cache[0][usize::from(hit)]),
            "snapshot" => Some(&self.hot.cache[1][usize::from(hit)]),
            _ => None,
        };
        let labels = CacheLabels {
            cache,
            result: if hit { "hit" } else { "miss" },
        };
        with_series(slot, &self.cache, labels, |c| {
            c.inc();
        });
    }

    /// A request refused by the rate limit named `limit`.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A `vault run` sandbox that started, `start_ms` after its run began.
    pub fn sandbox_started(&self, mode: &'static str, start_ms: u64) {
        let labels = SandboxLabels { mode };
        self.sandbox_runs.get_or_create(&labels).inc();
        #[allow(clippy::cast_precision_loss)] // bounded by the API to an hour in milliseconds
        self.sandbox_start_seconds
            .get_or_create(&labels)
            .observe(start_ms as f64 / 1000.0);
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_without_secrets() {
        let m = Metrics::new();
        m.proxied("mitm", 200, None, 12);
        m.proxied("explicit", 403, Some("forbidden"), 1);
        m.cache_lookup("snapshot", true);
        m.rate_limited("proxy");
        m.sandbox_started("process", 40);
        let text = m.render();
        assert!(
            text.contains("agent_vault_sandbox_runs_total{mode=\"process\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "agent_vault_sandbox_start_duration_seconds_bucket{le=\"0.04\",mode=\"process\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"2xx\",error=\"\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("error=\"forbidden\""), "{text}");
        assert!(
            text.contains("agent_vault_proxied_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(
                "agent_vault_broker_cache_lookups_total{cache=\"snapshot\",result=\"hit\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn kept_series_are_the_families_own() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.proxied("mitm", 204, None, 1);
            m.cache_lookup("token", false);
        }
        m.proxied("mitm", 0, None, 1);
        m.proxied("mitm", 502, Some("upstream_error"), 1);
        let text = m.render();
        for line in [
            "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"2xx\",error=\"\"} 3",
            "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"none\",error=\"\"} 1",
            "agent_vault_proxied_requests_total{ingress=\"mitm\",status=\"5xx\",error=\"upstream_error\"} 1",
            "agent_vault_proxied_request_duration_seconds_count{ingress=\"mitm\"} 5",
            "agent_vault_broker_cache_lookups_total{cache=\"token\",result=\"miss\"} 3",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
