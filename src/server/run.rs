//! The running server: listeners, pid file, logging, graceful shutdown.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::options::{Listener, bind_error};
use super::{ServerError, ServerOptions, base_url, pidfile};
use crate::api::{self, ApiConfig, AppState};
use crate::broker::{AuditLog, Broker, RetentionEnv};
use crate::ca::CertificateAuthority;
use crate::ceilings::body_budget::{self, BodyBudget};
use crate::crypto::Key;
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
        Some(_) => match CertificateAuthority::load_or_create(&paths.ca_dir(), &dek) {
            Ok(ca) => Some(Arc::new(ca)),
            Err(e) => {
                tracing::warn!("MITM proxy disabled: {e}");
                mitm_listener = None;
                None
            }
        },
        None => None,
    };
    let (policy, mut warnings) = NetworkPolicy::from_env();
    let (timeouts, more) = Timeouts::from_env();
    warnings.extend(more);
    let (roots, more) = upstream::trusted_roots();
    warnings.extend(more);
    let (retention, more) = RetentionEnv::from_env();
    warnings.extend(more);
    let (body_budget, more) = BodyBudget::from_env(std::env::var(body_budget::ENV).ok().as_deref());
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
    store.write(|tx| verifications::fail_queued(tx))?;
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
    let housekeeping = tokio::spawn(super::housekeeping::run(store.clone(), stop_rx.clone()));
    let broker = Arc::new(Broker::new(
        store.clone(),
        dek.clone(),
        base_url.clone(),
        audit,
    ));
    let (upstream, upgrade_client) = upstream::clients(Arc::new(policy), roots, timeouts)
        .map_err(|e| ServerError::Input(format!("cannot set up upstream TLS: {e}")))?;
    let proxy = Arc::new(Proxy {
        broker,
        upstream,
        upgrade_client,
        timeouts,
        ca: ca.clone(),
        body_budget,
    });
    let state = AppState {
        store,
        dek,
        config: Arc::new(ApiConfig {
            base_url: base_url.clone(),
            mitm_port: mitm_listener.as_ref().and(mitm_port),
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
    // The MITM line comes first: the API line is the one that says "ready" to scripts, and
    // both carry the bound ports (`--port 0`, `--mitm-port auto`).
    if let (Some(_), Some(port)) = (&mitm_listener, mitm_port) {
        println!("MITM proxy listening on {}:{port}", options.host);
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
    let app = crate::web::router(state.clone()).merge(api::router(state));
    let api = axum::serve(api_listener, app)
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .await;
    if let Some(mitm) = mitm {
        let _ = mitm.await;
    }
    let _ = housekeeping.await;
    // The request log writes what it holds before the process ends.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_task).await;
    if let Some(task) = mail_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(6), task).await;
    }
    api.map_err(ServerError::io("the API server failed"))?;
    println!("agent-vault server stopped");
    Ok(())
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
