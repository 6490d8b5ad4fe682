//! The running server: listeners, pid file, logging, graceful shutdown.

use std::io::IsTerminal;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use super::options::{Listener, bind_error};
use super::{Integrations, ServerError, ServerOptions, base_url, pidfile};
use crate::api::{self, ApiConfig, AppState};
use crate::broker::{AuditLog, Broker, RetentionEnv};
use crate::ca::CertificateAuthority;
use crate::ceilings::body_budget::{self, BodyBudget};
use crate::crypto::Key;
use crate::limits::Limits;
use crate::mail::{Mailer, SmtpConfig};
use crate::netguard::NetworkPolicy;
use crate::paths::Paths;
use crate::proxy::listener::{self, ConnSettings, Drain, Ended};
use crate::proxy::{Http1Hosts, Http1Pool, Proxy, Timeouts, upstream};
use crate::store::{Store, users, verifications};

pub fn serve(
    paths: &Paths,
    options: &ServerOptions,
    store: Store,
    dek: Key,
    integrations: Integrations,
) -> Result<(), ServerError> {
    init_logging(options);
    super::open_files::raise_to_hard_limit();
    let workers = super::workers::from_env()?;
    crate::metrics::global()
        .worker_threads
        .set(i64::try_from(workers).unwrap_or(i64::MAX));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(ServerError::io("cannot start the async runtime"))?;
    let result = runtime.block_on(serve_async(paths, options, store, dek, integrations));
    pidfile::remove_if_ours(paths);
    result
}

/// The TLS proxy listener, when asked for. Like the MITM port's, a failure is a warning: it
/// needs the MITM proxy's CA for its certificate.
async fn bind_proxy_tls(options: &ServerOptions, have_ca: bool) -> Option<TcpListener> {
    let port = options.proxy_tls_port.bind_port()?;
    if !have_ca {
        tracing::warn!(
            "MITM proxy over TLS disabled: it serves the MITM proxy, which is off (--mitm-port 0, or its port or CA was unavailable)"
        );
        return None;
    }
    match TcpListener::bind((options.host.as_str(), port)).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(
                "MITM proxy over TLS disabled: {}",
                bind_error(Listener::ProxyTls, &options.host, port, &e)
            );
            None
        }
    }
}

fn init_logging(options: &ServerOptions) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match options.log_level {
        super::LogLevel::Info => tracing::Level::INFO,
        super::LogLevel::Debug => tracing::Level::DEBUG,
    };
    // Debug is for this crate's own lines, which never carry a credential; the libraries'
    // debug lines can (h2 prints a GOAWAY's debug data, a frame's path), so they stay at info.
    let own_lines = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target(env!("CARGO_CRATE_NAME"), level);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .finish()
        .with(own_lines)
        .try_init();
}

async fn serve_async(
    paths: &Paths,
    options: &ServerOptions,
    store: Store,
    dek: Key,
    Integrations { smtp, google }: Integrations,
) -> Result<(), ServerError> {
    let api_listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .map_err(|e| bind_error(Listener::Api, &options.host, options.port, &e))?;
    let api_port = api_listener
        .local_addr()
        .map_err(ServerError::io("cannot read the API listener address"))?
        .port();
    let mitm_listener = match options.mitm_port.bind_port() {
        None => None,
        Some(port) => match TcpListener::bind((options.host.as_str(), port)).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(
                    "MITM proxy disabled: {}",
                    bind_error(Listener::Mitm, &options.host, port, &e)
                );
                None
            }
        },
    };

    let base_url = base_url(
        std::env::var("AGENT_VAULT_ADDR").ok().as_deref(),
        std::env::var("FLY_APP_NAME").ok().as_deref(),
        &options.host,
        api_port,
    );
    let initialized = store.read(users::count)? > 0;
    #[allow(clippy::cast_precision_loss)] // seconds since 1970: far below 2^52
    crate::metrics::global()
        .start_time
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    let (store, dek) = (Arc::new(store), Arc::new(dek));

    // The CA exists only when the MITM listener does; failing to load it disables the
    // proxy with a warning instead of stopping the server.
    let mut mitm_listener = mitm_listener;
    // The bound port: `--mitm-port auto` asked the OS for any free one.
    let mitm_port = match mitm_listener.as_ref().map(TcpListener::local_addr) {
        Some(Ok(addr)) => Some(addr.port()),
        Some(Err(e)) => return Err(ServerError::io("cannot read the MITM listener address")(e)),
        None => None,
    };
    let ca = match &mitm_listener {
        // Replicas on PostgreSQL share no disk: their root lives in the database.
        Some(_) => match if store.postgres().is_some() {
            CertificateAuthority::load_or_create_in_store(&store, &dek)
        } else {
            CertificateAuthority::load_or_create(&paths.ca_dir(), &dek)
        } {
            Ok(ca) => Some(Arc::new(ca)),
            Err(e) => {
                tracing::warn!("MITM proxy disabled: {e}");
                mitm_listener = None;
                None
            }
        },
        None => None,
    };
    let proxy_tls_listener = bind_proxy_tls(options, ca.is_some()).await;
    let proxy_tls_port = match proxy_tls_listener.as_ref().map(TcpListener::local_addr) {
        Some(Ok(addr)) => Some(addr.port()),
        Some(Err(e)) => {
            return Err(ServerError::io(
                "cannot read the TLS proxy listener address",
            )(e));
        }
        None => None,
    };
    let limits = rate_limits(&store)?;
    let (policy, mut warnings) = NetworkPolicy::from_env();
    let (timeouts, more) = Timeouts::from_env();
    warnings.extend(more);
    let (roots, more) = upstream::trusted_roots();
    warnings.extend(more);
    let (retention, more) = RetentionEnv::from_env();
    warnings.extend(more);
    let (conn_settings, more) = ConnSettings::from_lookup(|name| std::env::var(name).ok());
    warnings.extend(more);
    let (body_budget, more) = BodyBudget::from_env(std::env::var(body_budget::ENV).ok().as_deref());
    warnings.extend(more);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // Two stages: listeners stop first and drain their connections (requests still in
    // flight write request-log rows), then the background tasks stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (background_tx, background_rx) = watch::channel(false);
    // Codes still queued were lost with the previous process's mail queue: the owner may
    // now relay them by hand.
    store.write(verifications::fail_queued)?;
    let email_via = smtp.as_ref().map(SmtpConfig::describe);
    let (mailer, mail_task) = match smtp {
        Some(config) => {
            let (mailer, task, warnings) = Mailer::start(config, background_rx.clone())
                .map_err(|e| ServerError::Input(e.to_string()))?;
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            (mailer, Some(task))
        }
        None => (Mailer::disabled(), None),
    };
    let (audit, audit_task) = AuditLog::start(store.clone(), retention, background_rx.clone());
    let housekeeping = tokio::spawn(super::housekeeping::run(store.clone(), background_rx));
    let broker = Arc::new(Broker::new(
        store.clone(),
        dek.clone(),
        base_url.clone(),
        audit,
    ));
    if let Some(pg) = store.postgres() {
        let max_age = cache_max_age()?;
        share_changes_between_replicas(pg, &broker, (&store, &limits), max_age, stop_rx.clone());
    }
    let clients = upstream::clients(Arc::new(policy), roots, timeouts)
        .map_err(|e| ServerError::Input(format!("cannot set up upstream TLS: {e}")))?;
    let drain = Drain::new(
        stop_rx.clone(),
        conn_settings.per_address,
        super::open_files::connection_cap(),
    );
    let proxy = Arc::new(Proxy {
        broker,
        upstream: clients.pooled,
        http1_pool: Http1Pool::new(clients.h1_connector.clone()),
        http1_hosts: Http1Hosts::new(clients.h1_connector),
        upgrade_client: clients.upgrade,
        timeouts,
        ca: ca.clone(),
        limits: limits.clone(),
        body_budget,
        conn: conn_settings,
        drain: drain.clone(),
    });
    let state = AppState {
        store,
        dek,
        config: Arc::new(ApiConfig {
            base_url: base_url.clone(),
            mitm_port: mitm_listener.as_ref().and(mitm_port),
            proxy_tls_port,
            retention,
            google,
            ca_pem: ca.as_ref().map(|ca| ca.root_pem().to_owned()),
        }),
        proxy: proxy.clone(),
        mailer,
    };

    // Handlers exist before anyone can learn we are up, so an early SIGTERM still shuts down
    // cleanly instead of killing the process.
    let signals = ShutdownSignals::install()?;
    pidfile::write(paths)?;
    // The bound addresses come first (`--port 0`, `--mitm-port auto`), then the one line with
    // "listening on" that scripts wait for.
    if let (Some(_), Some(port)) = (&mitm_listener, mitm_port) {
        println!("MITM proxy bound to {}:{port}", options.host);
    }
    if let Some(port) = proxy_tls_port {
        println!("MITM proxy over TLS bound to {}:{port}", options.host);
    }
    // With AGENT_VAULT_ADDR (a proxy in front) the URL above is not where we listen: say both.
    let bound_url = super::base_url(None, None, &options.host, api_port);
    if bound_url != base_url {
        println!("API bound to {bound_url}");
    }
    println!("agent-vault {} listening on {base_url}", crate::VERSION);
    if let Some(via) = &email_via {
        println!("Email via {via}");
    }
    if !initialized {
        println!("No account exists yet. Next step, create the owner account:");
        println!("  agent-vault auth register --address {base_url} --email you@example.com");
    }
    tracing::info!(url = %base_url, "server started");

    tokio::spawn(async move {
        signals.received().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let proxy_tls = proxy_tls_listener
        .zip(ca.clone())
        .map(|(listener, ca)| tokio::spawn(crate::proxy::serve_tls(listener, proxy.clone(), ca)));
    let mitm = mitm_listener.map(|listener| tokio::spawn(crate::proxy::serve(listener, proxy)));
    // One port serves the JSON API (`/v1/…`, `/proxy/…`) and the web UI (`/`, pages).
    let app = crate::web::router(state.clone())
        .merge(api::router(state))
        .layer(axum::middleware::from_fn_with_state(
            api::hosts::KnownHosts::new(&base_url),
            api::hosts::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::limits::http::gate,
        ));
    // Requests carry the peer address (`ConnectInfo`): it keys the AUTH tier.
    serve_api(api_listener, app, conn_settings, drain.clone()).await;
    for listener in [mitm, proxy_tls].into_iter().flatten() {
        let _ = listener.await;
    }
    // No new connections now; the ones open finish what they are doing, within the grace.
    let open = drain.live();
    if open > 0 {
        tracing::info!(
            open,
            grace_secs = conn_settings.grace.as_secs(),
            "waiting for open connections to finish"
        );
    }
    if !drain.finished(conn_settings.grace).await {
        tracing::warn!(
            open = drain.live(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    let _ = background_tx.send(true);
    let _ = housekeeping.await;
    // The request log writes what it holds before the process ends.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_task).await;
    if let Some(task) = mail_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(6), task).await;
    }
    println!("agent-vault server stopped");
    Ok(())
}

/// Serves the API port until shutdown begins: HTTP/1.1 with the header-read timeout (which
/// also closes silent keep-alive connections), accept errors backed off, and each connection
/// asked to finish gracefully on shutdown. Requests carry the peer address as axum's
/// `ConnectInfo<SocketAddr>`.
async fn serve_api(listener: TcpListener, app: axum::Router, conn: ConnSettings, drain: Drain) {
    let accept_drain = drain.clone();
    listener::accept_loop(
        listener,
        accept_drain,
        "API",
        move |stream, peer, admitted| {
            let (app, drain) = (app.clone(), drain.clone());
            tokio::spawn(async move {
                let _admitted = admitted;
                let service = service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    let (request, read) = crate::proxy::unread_body::watch(request);
                    let request = request.map(axum::body::Body::new);
                    async move {
                        let mut response = app.call(request).await?;
                        read.close_if_unread(&mut response);
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(conn.header_read)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(served);
                let ended = tokio::select! {
                    _ = served.as_mut() => Ended::Done,
                    ended = listener::stop_or_idle(&drain, None) => ended,
                };
                if ended == Ended::Stopping {
                    served.as_mut().graceful_shutdown();
                    let _ = served.await;
                }
            });
        },
    )
    .await;
}

/// The rate limits: the environment (a bad value stops the server, naming the variable) over
/// the owner's stored override.
fn rate_limits(store: &Store) -> Result<Arc<Limits>, ServerError> {
    let env = rate_limit_env()?;
    let stored = store.read(crate::limits::config::stored)?;
    let (limits, error) = Limits::new(env, &stored);
    if let Some(error) = error {
        tracing::warn!(
            "the stored rate-limit override is ignored: {error}; change it with `agent-vault owner config set`"
        );
    }
    let effective = limits.effective();
    tracing::info!(
        profile = effective.profile.as_str(),
        locked = effective.locked,
        "rate limits"
    );
    Ok(Arc::new(limits))
}

pub(super) fn rate_limit_env() -> Result<crate::limits::EnvLayer, ServerError> {
    crate::limits::EnvLayer::from_env()
        .map_err(|e| ServerError::Input(format!("{e}; fix or unset it (see docs/ratelimits.md)")))
}

struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<Self, ServerError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = ServerError::io("cannot install signal handlers");
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        match (terminate, interrupt) {
            (Ok(terminate), Ok(interrupt)) => Ok(Self {
                terminate,
                interrupt,
            }),
            (Err(e), _) | (_, Err(e)) => Err(install(e)),
        }
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// How long a replica on PostgreSQL may serve from its caches without hearing of a change, in
/// seconds (`AGENT_VAULT_CACHE_MAX_AGE`, default 30): the bound on staleness should a change
/// notification be lost.
pub const CACHE_MAX_AGE_ENV: &str = "AGENT_VAULT_CACHE_MAX_AGE";
const DEFAULT_CACHE_MAX_AGE: u64 = 30;

/// `AGENT_VAULT_CACHE_MAX_AGE`: whole seconds from 1 to a year; anything else stops the start.
fn cache_max_age() -> Result<std::time::Duration, ServerError> {
    let Ok(text) = std::env::var(CACHE_MAX_AGE_ENV) else {
        return Ok(std::time::Duration::from_secs(DEFAULT_CACHE_MAX_AGE));
    };
    crate::ceilings::setting_secs(&text, false).ok_or_else(|| {
        ServerError::Input(format!(
            "{CACHE_MAX_AGE_ENV} must be a whole number of seconds from 1 to {} (default \
             {DEFAULT_CACHE_MAX_AGE}); fix or unset it",
            crate::ceilings::MAX_SETTING_SECS
        ))
    })
}

/// Several brokers, one database: each applies the changes the others announce (LISTEN), and
/// drops its caches every `AGENT_VAULT_CACHE_MAX_AGE` seconds in case one was missed.
fn share_changes_between_replicas(
    pg: &crate::store::pg::PgStore,
    broker: &Arc<Broker>,
    (store, limits): (&Arc<Store>, &Arc<Limits>),
    max_age: std::time::Duration,
    stop: watch::Receiver<bool>,
) {
    let listener = broker.clone();
    let reload = {
        let (store, limits) = (store.clone(), limits.clone());
        // An owner's rate-limit change on another replica arrives as "everything changed"
        // (settings are not classified finer) or at the periodic refresh.
        move || {
            let (store, limits) = (store.clone(), limits.clone());
            tokio::task::spawn_blocking(move || {
                if let Ok(stored) = store.read(crate::limits::config::stored) {
                    let _ = limits.apply(&stored);
                }
            });
        }
    };
    let on_change = reload.clone();
    pg.listen(move |payload| {
        let change = payload.map_or(
            crate::broker::Invalidation::Everything,
            crate::broker::Invalidation::decode,
        );
        if change == crate::broker::Invalidation::Everything {
            on_change();
        }
        listener.apply(change);
    });
    let refresher = broker.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(max_age);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    refresher.invalidate();
                    reload();
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}
