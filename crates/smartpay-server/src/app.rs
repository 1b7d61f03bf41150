//! The application: shared state, start-up (store, keys, signing key, sandbox merchant),
//! the HTTP server with graceful shutdown, and its background workers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use smartpay_store::{SqliteOptions, SqliteStore, Store};
use tokio::sync::watch;

use crate::auth::{self, Authenticator};
use crate::client_addr::TrustedProxies;
use crate::config::{Config, Mode};
use crate::limiter::{AuthLockout, Limiter};
use crate::metrics::Metrics;
use crate::secrets::ServerKeys;
use smartpay_domain::time::{Clock, SystemClock};
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
    pub in_flight: Mutex<HashSet<InFlightKey>>,
    /// Card submissions per client IP and per merchant.
    pub ip_limiter: Limiter,
    pub merchant_limiter: Limiter,
    /// Failed authentications per (client address, identity) and per address (brute-force defence).
    pub auth_lockout: AuthLockout,
    /// Whose forwarding headers name the client.
    pub proxies: TrustedProxies,
    /// The one source of the current time.
    pub clock: Arc<dyn Clock>,
    /// Crash points for the crash tests (`SMARTPAY_FAILPOINTS`, sandbox mode only).
    failpoints: HashSet<String>,
    /// This server's base URL as browsers reach it, known once the listener is bound.
    public_base: OnceLock<String>,
    local_addr: OnceLock<std::net::SocketAddr>,
    /// The sandbox acquirer's machine API (its base URL and key), once known.
    acquirer_api: OnceLock<(String, String)>,
    /// Sandbox PayU's machine API (base URL, key, notification secret), once known.
    payu_api: OnceLock<(String, String, String)>,
    providers: OnceLock<Registry>,
    /// Pending resolution's per-provider poll ceiling.
    pub poll_limiter: crate::resolve::PollLimiter,
    /// Sends notifications to merchants.
    pub notifier: smartpay_notify::Deliverer,
    /// The payment credential vault's keys (or why it is unavailable).
    pub vault: crate::vault::Vault,
}

/// A request being executed in this process: (merchant, scope, key).
pub type InFlightKey = (String, &'static str, String);

/// Holds keys as "in flight" until dropped (see [`AppState::claim_in_flight`]).
pub struct InFlight<'a> {
    state: &'a AppState,
    keys: Vec<InFlightKey>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.state.in_flight.lock() {
            for k in &self.keys {
                set.remove(k);
            }
        }
    }
}

/// Opens the store `config` names — PostgreSQL when `database_url` is set, else SQLite in the
/// data directory — and the key material.
pub async fn connect_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<ServerKeys>)> {
    let Some(url) = &config.database_url else { return open_store(config) };
    let create_key = config.mode == Mode::Sandbox && config.master_key_file.is_none();
    let secrets =
        ServerKeys::load_or_create(&config.master_key_path(), create_key).context("loading the master key")?;
    let store = smartpay_store::PgStore::connect(url, config.database_max_connections)
        .await
        .context("connecting to database_url")?;
    Ok((Arc::new(store), Arc::new(secrets)))
}

/// Opens the SQLite store in the data directory and the key material named by `config`.
pub fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<ServerKeys>)> {
    let create_key = config.mode == Mode::Sandbox && config.master_key_file.is_none();
    let secrets =
        ServerKeys::load_or_create(&config.master_key_path(), create_key).context("loading the master key")?;
    crate::files::make_private_dir(&config.data_dir)
        .with_context(|| format!("securing the data directory {}", config.data_dir.display()))?;
    let mut opts = SqliteOptions::new(config.database_path());
    opts.readers = config.store_readers;
    crate::files::precreate_private(&config.database_path())
        .with_context(|| format!("creating {}", config.database_path().display()))?;
    let store = SqliteStore::open(opts).with_context(|| format!("opening {}", config.database_path().display()))?;
    crate::files::make_private_files(&config.data_dir)
        .with_context(|| format!("securing the files in {}", config.data_dir.display()))?;
    Ok((Arc::new(store), Arc::new(secrets)))
}

impl AppState {
    /// Builds the state on an open store: ensures a signing key and loads credentials.
    pub async fn new(config: Config, store: Arc<dyn Store>, secrets: Arc<ServerKeys>) -> anyhow::Result<Arc<Self>> {
        Self::with_clock(config, store, secrets, Arc::new(SystemClock)).await
    }

    /// [`AppState::new`] reading time from `clock` (tests move a manual clock).
    pub async fn with_clock(
        config: Config,
        store: Arc<dyn Store>,
        secrets: Arc<ServerKeys>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        auth::ensure_signing_key(store.as_ref(), &secrets).await?;
        let auth = Authenticator::new(
            store.clone(),
            secrets.clone(),
            config.issuer(),
            i64::try_from(config.token_ttl_seconds).unwrap_or(3600),
            i64::try_from(config.token_leeway_seconds).unwrap_or(30),
            clock.clone(),
        )
        .await?;
        let profile = match config.mode {
            Mode::Sandbox => smartpay_notify::Profile::Sandbox,
            Mode::Production => smartpay_notify::Profile::Production,
        };
        let notifier = smartpay_notify::Deliverer::new(profile, Duration::from_millis(config.notification_timeout_ms));
        let vault = crate::vault::Vault::open(&config, store.as_ref(), &secrets, clock.now()).await;
        Ok(Arc::new(AppState {
            ip_limiter: Limiter::new(config.ip_submits_per_minute, clock.clone()),
            merchant_limiter: Limiter::new(config.merchant_submits_per_minute, clock.clone()),
            auth_lockout: AuthLockout::new(
                config.auth_failures_per_minute,
                config.auth_failures_per_address_per_minute,
                clock.clone(),
            ),
            proxies: TrustedProxies::new(&config.trusted_proxies),
            clock,
            failpoints: if config.mode == Mode::Sandbox {
                std::env::var("SMARTPAY_FAILPOINTS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            } else {
                HashSet::new()
            },
            config,
            store,
            secrets,
            auth,
            metrics: {
                // Before the store records anything through the facade.
                crate::metrics::facade();
                Metrics::default()
            },
            in_flight: Mutex::new(HashSet::new()),
            public_base: OnceLock::new(),
            local_addr: OnceLock::new(),
            acquirer_api: OnceLock::new(),
            payu_api: OnceLock::new(),
            providers: OnceLock::new(),
            poll_limiter: crate::resolve::PollLimiter::default(),
            notifier,
            vault,
        }))
    }

    /// The base URL browsers use: `public_url`, or `http://` and the bound address.
    pub fn public_base(&self) -> &str {
        self.public_base.get().map_or("http://127.0.0.1:8080", String::as_str)
    }

    /// A crash point: when `name` is among `SMARTPAY_FAILPOINTS` (sandbox mode only), the
    /// process dies on the spot, as under `kill -9` — for the crash tests.
    pub fn failpoint(&self, name: &str) {
        if self.failpoints.contains(name) {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }

    /// Claims all of `keys` for the caller, or none: `Err(Some(i))` when `keys[i]` is held by
    /// another request, `Err(None)` when the set is unusable (a panic poisoned it).
    pub fn claim_in_flight(&self, keys: Vec<InFlightKey>) -> Result<InFlight<'_>, Option<usize>> {
        {
            let mut set = self.in_flight.lock().map_err(|_| None)?;
            if let Some(busy) = keys.iter().position(|k| set.contains(k)) {
                return Err(Some(busy));
            }
            set.extend(keys.iter().cloned());
        }
        // Built after the lock is released: the guard's Drop takes it again.
        Ok(InFlight { state: self, keys })
    }

    /// The current time.
    pub fn now(&self) -> smartpay_domain::Millis {
        self.clock.now()
    }

    /// The client's address: the TCP peer, or what trusted proxies say it is.
    pub fn client_ip(&self, peer: std::net::IpAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
        self.proxies.client_ip(peer, headers)
    }

    /// The sandbox acquirer's configuration: its machine API on a loopback port of its own, its
    /// challenge pages mounted at `/sandbox-acquirer` on this server's public listener.
    fn acquirer_config(&self, api_key: String) -> smartpay_providers::sandbox::acquirer::AcquirerConfig {
        let base = self.public_base();
        smartpay_providers::sandbox::acquirer::AcquirerConfig {
            latency: Duration::from_millis(self.config.sandbox_latency_ms),
            pending_delay: Duration::from_millis(self.config.sandbox_pending_delay_ms),
            slow_delay: Duration::from_millis(self.config.sandbox_slow_delay_ms),
            public_base: format!("{base}/sandbox-acquirer"),
            return_url: format!("{base}/widget/challenge-return"),
            frame_ancestor: crate::widget::normalize_origin(base).unwrap_or_else(|| base.to_owned()),
            api_key,
            max_authorizations: 100_000,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            // Derived from the master key: stored cards' tokens stay valid across restarts.
            token_key: *self.secrets.acquirer_token_key(),
        }
    }

    /// Sandbox PayU's machine API as (base URL, key, notification secret), once started: for
    /// its test controls and for signing inbound notifications in tests.
    pub fn sandbox_payu_api(&self) -> Option<(String, String, String)> {
        self.payu_api.get().cloned()
    }

    /// The enabled providers.
    pub fn providers(&self) -> &Registry {
        self.providers.get_or_init(|| {
            let mut config = ProvidersConfig::default();
            if let Some((base_url, key)) = self.acquirer_api.get() {
                // The connector reaches the acquirer over HTTP, as it would a real one.
                config.sandbox = Some(ConnectorConfig {
                    base_url: base_url.clone(),
                    timeout: Duration::from_millis(self.config.provider_timeout_ms),
                    api_key: key.clone(),
                });
            }
            if let Some((base_url, key, notify_secret)) = self.payu_api.get() {
                config.payu = Some(smartpay_providers::payu::ConnectorConfig {
                    base_url: base_url.clone(),
                    timeout: Duration::from_millis(self.config.provider_timeout_ms),
                    api_key: key.clone(),
                    notify_secret: notify_secret.clone(),
                });
            }
            Registry::new(&config)
        })
    }

    /// Sandbox PayU's configuration: its machine API on a loopback port of its own, its approval
    /// pages mounted at `/sandbox-payu` on this server's public listener.
    fn payu_config(&self, api_key: String, notify_secret: String) -> smartpay_providers::payu::fake::FakeConfig {
        let base = self.public_base();
        smartpay_providers::payu::fake::FakeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key,
            public_base: format!("{base}/sandbox-payu"),
            frame_ancestor: crate::widget::normalize_origin(base).unwrap_or_else(|| base.to_owned()),
            confirm_delay: Duration::from_millis(self.config.sandbox_payu_confirm_delay_ms),
            refund_delay: Duration::from_millis(self.config.sandbox_payu_refund_delay_ms),
            notify_secret,
            test_controls: self.config.sandbox_payu_test_controls,
            max_orders: 100_000,
            latency: Duration::from_millis(self.config.sandbox_latency_ms),
        }
    }
}

/// A running server.
pub struct Running {
    pub local_addr: std::net::SocketAddr,
    /// Where `/metrics` is served, when `admin_listen` is set.
    pub admin_addr: Option<std::net::SocketAddr>,
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

/// Binds the listeners and starts serving and the workers.
pub async fn start(state: Arc<AppState>) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("listening on {}", state.config.listen))?;
    let local_addr = listener.local_addr()?;
    let _ = state.local_addr.set(local_addr);
    let _ = state.public_base.set(state.config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}")));
    if state.config.database_url.is_some() && state.config.public_url.is_none() {
        tracing::warn!(
            "database_url without public_url: access tokens name this node's address as their issuer, so other nodes \
             sharing the database refuse them; give every node the same public_url"
        );
    }
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (merchant, p) in &state.config.capture_policies {
        let mode = smartpay_domain::modification::CaptureMode::parse(&p.mode)
            .with_context(|| format!("capture_policies.{merchant}.mode"))?;
        state
            .store
            .set_capture_policy(merchant, mode, p.delay_seconds, p.auto_cancel_seconds)
            .await
            .with_context(|| format!("capture_policies.{merchant}: no such merchant"))?;
    }

    let mut sandbox_pages = Vec::new();
    if let (true, Some(url), Some(key)) = (
        state.config.sandbox_enabled(),
        state.config.sandbox_acquirer_url.clone(),
        state.config.sandbox_acquirer_key.clone(),
    ) {
        let _ = state.acquirer_api.set((url.trim_end_matches('/').to_owned(), key));
    } else if state.config.sandbox_enabled() {
        let key = crate::secrets::random_alphanumeric(32)?;
        let spawned = smartpay_providers::sandbox::acquirer::spawn(state.acquirer_config(key.clone()))
            .await
            .context("starting the sandbox acquirer")?;
        let _ = state.acquirer_api.set((format!("http://{}", spawned.api_addr), key));
        sandbox_pages.push(("/sandbox-acquirer", spawned.challenge_router.clone()));
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            drop(spawned);
        }));
    }
    if let (true, Some(url), Some(key), Some(secret)) = (
        state.config.sandbox_enabled(),
        state.config.sandbox_payu_url.clone(),
        state.config.sandbox_payu_key.clone(),
        state.config.sandbox_payu_notify_secret.clone(),
    ) {
        let _ = state.payu_api.set((url.trim_end_matches('/').to_owned(), key, secret));
    } else if state.config.sandbox_enabled() {
        let key = crate::secrets::random_alphanumeric(32)?;
        let secret = crate::secrets::random_alphanumeric(32)?;
        let spawned = smartpay_providers::payu::fake::spawn(state.payu_config(key.clone(), secret.clone()))
            .await
            .context("starting sandbox PayU")?;
        let _ = state.payu_api.set((format!("http://{}", spawned.api_addr), key, secret));
        sandbox_pages.push(("/sandbox-payu", spawned.pages_router.clone()));
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            drop(spawned);
        }));
    }

    let admin_addr = match state.config.admin_listen {
        Some(addr) => {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (admin_listen, for /metrics)"))?;
            let admin_addr = admin.local_addr()?;
            let limits = crate::http::listener::Limits {
                header_read_timeout: Duration::from_millis(state.config.header_read_timeout_ms),
                max_header_bytes: state.config.max_header_bytes,
                max_connections: 64,
            };
            let router = crate::http::admin_router(state.clone());
            let stop = rx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::http::listener::serve(admin, router, limits, stop, || {}).await {
                    tracing::error!(error = %e, "admin listener failed");
                }
            }));
            tracing::info!(%admin_addr, "metrics at http://{admin_addr}/metrics");
            Some(admin_addr)
        }
        None => None,
    };

    let router = crate::http::router(state.clone(), sandbox_pages);
    let max_connections = crate::http::listener::effective_max_connections(state.config.max_connections);
    if max_connections < state.config.max_connections {
        tracing::warn!(
            configured = state.config.max_connections,
            max_connections,
            "max_connections lowered to fit the open-files limit (raise it with ulimit -n)"
        );
    }
    let limits = crate::http::listener::Limits {
        header_read_timeout: Duration::from_millis(state.config.header_read_timeout_ms),
        max_header_bytes: state.config.max_header_bytes,
        max_connections,
    };
    let refused_state = state.clone();
    let server = tokio::spawn(crate::http::listener::serve(listener, router, limits, rx.clone(), move || {
        refused_state.metrics.counters.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }));
    let mut workers = crate::workers::spawn(state.clone(), rx);
    workers.extend(tasks);
    tracing::info!(%local_addr, mode = ?state.config.mode, max_connections, "SmartPay listening");
    Ok(Running { local_addr, admin_addr, state, shutdown: tx, server, workers })
}
