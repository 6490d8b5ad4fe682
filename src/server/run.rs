//! The running server: listeners, pid file, logging, graceful shutdown.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::options::bind_error;
use super::{ServerError, ServerOptions, base_url, pidfile};
use crate::api::{self, ApiConfig, AppState};
use crate::broker::{AuditLog, Broker, RetentionEnv};
use crate::ca::CertificateAuthority;
use crate::crypto::Key;
use crate::limits::Limits;
use crate::mail::{Mailer, SmtpConfig};
use crate::netguard::NetworkPolicy;
use crate::paths::Paths;
use crate::proxy::{Proxy, Timeouts, upstream};
use crate::store::{Store, users, verifications};

pub fn serve(
    paths: &Paths,
    options: &ServerOptions,
    store: Store,
    dek: Key,
    smtp: Option<SmtpConfig>,
) -> Result<(), ServerError> {
    init_logging(options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::io("cannot start the async runtime"))?;
    let result = runtime.block_on(serve_async(paths, options, store, dek, smtp));
    pidfile::remove_if_ours(paths);
    result
}

fn init_logging(options: &ServerOptions) {
    let level = match options.log_level {
        super::LogLevel::Info => tracing::Level::INFO,
        super::LogLevel::Debug => tracing::Level::DEBUG,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve_async(
    paths: &Paths,
    options: &ServerOptions,
    store: Store,
    dek: Key,
    smtp: Option<SmtpConfig>,
) -> Result<(), ServerError> {
    let api_listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .map_err(|e| bind_error(&options.host, options.port, &e))?;
    let api_port = api_listener
        .local_addr()
        .map_err(ServerError::io("cannot read the API listener address"))?
        .port();
    let mitm_listener = match options.mitm_port {
        0 => None,
        port => match TcpListener::bind((options.host.as_str(), port)).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(
                    "MITM proxy disabled: {}",
                    bind_error(&options.host, port, &e)
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
    let limits = rate_limits(&store)?;
    let (policy, mut warnings) = NetworkPolicy::from_env();
    let (timeouts, more) = Timeouts::from_env();
    warnings.extend(more);
    let (roots, more) = upstream::trusted_roots();
    warnings.extend(more);
    let (retention, more) = RetentionEnv::from_env();
    warnings.extend(more);
    let google = crate::web::google::config_from_env(
        std::env::var(crate::web::google::CLIENT_ID_ENV).ok(),
        std::env::var(crate::web::google::CLIENT_SECRET_ENV).ok(),
        std::env::var(crate::web::google::ISSUER_ENV).ok(),
    )
    .map_err(ServerError::Input)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // Codes still queued were lost with the previous process's mail queue: the owner may
    // now relay them by hand.
    store.write(verifications::fail_queued)?;
    let email_via = smtp.as_ref().map(SmtpConfig::describe);
    let (mailer, mail_task) = match smtp {
        Some(config) => {
            let (mailer, task, warnings) = Mailer::start(config, stop_rx.clone())
                .map_err(|e| ServerError::Input(e.to_string()))?;
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            (mailer, Some(task))
        }
        None => (Mailer::disabled(), None),
    };
    let (audit, audit_task) = AuditLog::start(store.clone(), retention, stop_rx.clone());
    let broker = Arc::new(Broker::new(
        store.clone(),
        dek.clone(),
        base_url.clone(),
        audit,
    ));
    if let Some(pg) = store.postgres() {
        share_changes_between_replicas(pg, &broker, stop_rx.clone());
    }
    let (upstream, upgrade_client) = upstream::clients(Arc::new(policy), roots, timeouts)
        .map_err(|e| ServerError::Input(format!("cannot set up upstream TLS: {e}")))?;
    let proxy = Arc::new(Proxy {
        broker,
        upstream,
        upgrade_client,
        timeouts,
        ca: ca.clone(),
        limits: limits.clone(),
    });
    let state = AppState {
        store,
        dek,
        config: Arc::new(ApiConfig {
            base_url: base_url.clone(),
            mitm_port: mitm_listener.as_ref().map(|_| options.mitm_port),
            retention,
            google,
            ca_pem: ca.map(|ca| ca.root_pem().to_owned()),
        }),
        proxy: proxy.clone(),
        mailer,
    };

    // Handlers exist before anyone can learn we are up, so an early SIGTERM still shuts down
    // cleanly instead of killing the process.
    let signals = ShutdownSignals::install()?;
    pidfile::write(paths)?;
    println!("agent-vault {} listening on {base_url}", crate::VERSION);
    if mitm_listener.is_some() {
        println!(
            "MITM proxy listening on {}:{}",
            options.host, options.mitm_port
        );
    }
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
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mitm = mitm_listener.map(|listener| {
        tokio::spawn(crate::proxy::serve(
            listener,
            proxy,
            stopped(stop_rx.clone()),
        ))
    });
    // One port serves the JSON API (`/v1/…`, `/proxy/…`) and the web UI (`/`, pages).
    let app = crate::web::router(state.clone())
        .merge(api::router(state))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::limits::http::gate,
        ));
    // The peer address keys the AUTH tier.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let api = axum::serve(api_listener, app)
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .await;
    if let Some(mitm) = mitm {
        let _ = mitm.await;
    }
    // The request log writes what it holds before the process ends.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_task).await;
    if let Some(task) = mail_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(6), task).await;
    }
    api.map_err(ServerError::io("the API server failed"))?;
    println!("agent-vault server stopped");
    Ok(())
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

/// Several brokers, one database: each applies the changes the others announce (LISTEN), and
/// drops its caches every `AGENT_VAULT_CACHE_MAX_AGE` seconds in case one was missed.
fn share_changes_between_replicas(
    pg: &crate::store::pg::PgStore,
    broker: &Arc<Broker>,
    stop: watch::Receiver<bool>,
) {
    let listener = broker.clone();
    pg.listen(move |payload| {
        listener.apply(payload.map_or(
            crate::broker::Invalidation::Everything,
            crate::broker::Invalidation::decode,
        ));
    });
    let max_age = std::env::var(CACHE_MAX_AGE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_CACHE_MAX_AGE);
    let refresher = broker.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(max_age));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => refresher.invalidate(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}
