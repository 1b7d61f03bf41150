//! The application: shared state, start-up (store, keys, signing key, sandbox merchant),
//! the HTTP server with graceful shutdown, and its background workers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use smartpay_store::{SqliteOptions, SqliteStore, Store};
use tokio::sync::watch;

use crate::auth::{self, Authenticator};
use crate::config::{Config, Mode};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::secrets::ServerKeys;
use smartpay_providers::sandbox::ConnectorConfig;
use smartpay_providers::{ProvidersConfig, Registry};

/// Everything a request handler or worker may need.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub secrets: Arc<ServerKeys>,
    pub auth: Authenticator,
    pub metrics: Metrics,
    /// Idempotency claims being executed right now: (merchant, scope, key).
    pub in_flight: Mutex<HashSet<(String, &'static str, String)>>,
    /// Card submissions per client IP and per merchant.
    pub ip_limiter: Limiter,
    pub merchant_limiter: Limiter,
    /// Failed authentications per client IP (brute-force defence).
    pub auth_fail_limiter: Limiter,
    /// This server's base URL as browsers reach it, known once the listener is bound.
    public_base: OnceLock<String>,
    local_addr: OnceLock<std::net::SocketAddr>,
    providers: OnceLock<Registry>,
}

/// Opens the store and the key material named by `config`.
pub fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<ServerKeys>)> {
    let create_key = config.mode == Mode::Sandbox && config.master_key_file.is_none();
    let secrets =
        ServerKeys::load_or_create(&config.master_key_path(), create_key).context("loading the master key")?;
    let mut opts = SqliteOptions::new(config.database_path());
    opts.readers = config.store_readers;
    let store = SqliteStore::open(opts).with_context(|| format!("opening {}", config.database_path().display()))?;
    Ok((Arc::new(store), Arc::new(secrets)))
}

impl AppState {
    /// Builds the state on an open store: ensures a signing key and loads credentials.
    pub async fn new(config: Config, store: Arc<dyn Store>, secrets: Arc<ServerKeys>) -> anyhow::Result<Arc<Self>> {
        auth::ensure_signing_key(store.as_ref(), &secrets).await?;
        let auth = Authenticator::new(
            store.clone(),
            secrets.clone(),
            config.issuer(),
            i64::try_from(config.token_ttl_seconds).unwrap_or(3600),
            i64::try_from(config.token_leeway_seconds).unwrap_or(30),
        )
        .await?;
        Ok(Arc::new(AppState {
            ip_limiter: Limiter::new(config.ip_submits_per_minute),
            merchant_limiter: Limiter::new(config.merchant_submits_per_minute),
            auth_fail_limiter: Limiter::new(config.auth_failures_per_minute),
            config,
            store,
            secrets,
            auth,
            metrics: Metrics::default(),
            in_flight: Mutex::new(HashSet::new()),
            public_base: OnceLock::new(),
            local_addr: OnceLock::new(),
            providers: OnceLock::new(),
        }))
    }

    /// The base URL browsers use: `public_url`, or `http://` and the bound address.
    pub fn public_base(&self) -> &str {
        self.public_base.get().map_or("http://127.0.0.1:8080", String::as_str)
    }

    /// The sandbox acquirer's configuration, served at `/sandbox-acquirer`.
    pub fn acquirer_config(&self) -> smartpay_providers::sandbox::acquirer::AcquirerConfig {
        smartpay_providers::sandbox::acquirer::AcquirerConfig {
            latency: Duration::from_millis(self.config.sandbox_latency_ms),
            pending_delay: Duration::from_millis(self.config.sandbox_pending_delay_ms),
            slow_delay: Duration::from_millis(self.config.sandbox_slow_delay_ms),
            public_base: format!("{}/sandbox-acquirer", self.public_base()),
        }
    }

    /// The enabled providers.
    pub fn providers(&self) -> &Registry {
        self.providers.get_or_init(|| {
            let mut config = ProvidersConfig::default();
            if self.config.sandbox_enabled() {
                // The connector reaches the acquirer over loopback HTTP, as it would a real one.
                let addr = self.local_addr.get().copied().unwrap_or(self.config.listen);
                config.sandbox = Some(ConnectorConfig {
                    base_url: format!("http://{addr}/sandbox-acquirer"),
                    timeout: Duration::from_millis(self.config.provider_timeout_ms),
                });
            }
            Registry::new(&config)
        })
    }
}

/// A running server.
pub struct Running {
    pub local_addr: std::net::SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then stops the workers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await.context("server task")?.context("server")?;
        for w in self.workers {
            let _ = w.await;
        }
        Ok(())
    }

    /// Waits until the server stops by itself or `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await
    }
}

/// Binds the listener and starts serving and the workers.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("listening on {}", state.config.listen))?;
    let local_addr = listener.local_addr()?;
    let _ = state.local_addr.set(local_addr);
    let _ = state.public_base.set(state.config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}")));
    let (tx, rx) = watch::channel(false);
    let router = crate::http::router(state.clone());
    let mut server_rx = rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = server_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    let workers = crate::workers::spawn(state.clone(), rx);
    tracing::info!(%local_addr, mode = ?state.config.mode, "SmartPay listening");
    Ok(Running { local_addr, state, shutdown: tx, server, workers })
}
