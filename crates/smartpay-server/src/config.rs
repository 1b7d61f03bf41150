//! Configuration: defaults, then a TOML file, then `SMARTPAY_*` environment variables, then
//! command-line flags (applied by the binary). Zero configuration is a working sandbox.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sandbox,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, with its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite database (and, by default, the master key) live.
    pub data_dir: PathBuf,
    /// `postgres://user@host:port/database`: store everything in PostgreSQL (several nodes may
    /// share it) instead of the SQLite database in `data_dir`. Unset: SQLite.
    pub database_url: Option<String>,
    /// PostgreSQL connections per node.
    pub database_max_connections: usize,
    /// Threads running requests and background work; `None`: one per core. Several nodes on
    /// one machine each get a share of its cores (docs/operations.md, "Running several nodes").
    pub worker_threads: Option<usize>,
    /// The 256-bit master key file. Created in sandbox mode when missing; production mode
    /// requires it to exist.
    pub master_key_file: Option<PathBuf>,
    /// The URL merchants reach this server at: the `iss` of access tokens.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info` or `smartpay_server=debug`.
    pub log_level: String,
    /// Access token lifetime.
    pub token_ttl_seconds: u64,
    /// Allowed clock difference when checking token times.
    pub token_leeway_seconds: u64,
    /// Checkout lifetime before it becomes EXPIRED.
    pub checkout_ttl_seconds: u64,
    /// How long an `Idempotency-Key` is remembered (at least 24 h).
    pub idempotency_ttl_seconds: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How often the expiry sweep runs.
    pub sweep_interval_ms: u64,
    /// How often servers look for revoked credentials and new signing keys.
    pub auth_refresh_ms: u64,
    /// SQLite read connections.
    pub store_readers: usize,
    /// Create a sandbox merchant on first start (sandbox mode only).
    pub bootstrap_sandbox_merchant: bool,
    /// Serve the sandbox acquirer at `/sandbox-acquirer` and pay through it. On by default in
    /// sandbox mode; production mode refuses it unless `allow_sandbox_in_production` is set.
    pub sandbox_acquirer: Option<bool>,
    pub allow_sandbox_in_production: bool,
    /// A sandbox acquirer running as its own process (`smartpay sandbox-acquirer`): its API base
    /// URL and key. Unset: the server starts one in-process on a loopback port.
    pub sandbox_acquirer_url: Option<String>,
    pub sandbox_acquirer_key: Option<String>,
    /// Sandbox acquirer: added latency, how long pending cards stay pending, and how long the
    /// "no answer in time" card makes SmartPay wait.
    pub sandbox_latency_ms: u64,
    pub sandbox_pending_delay_ms: u64,
    pub sandbox_slow_delay_ms: u64,
    /// Sandbox: captured payments settle (SETTLED, with a SETTLEMENT modification) this long
    /// after their capture.
    pub sandbox_settlement_delay_ms: u64,
    /// Capture mode `delayed`: the default delay from authorization to capture.
    pub capture_delay_seconds: u64,
    /// Default for merchants that enable automatic cancellation without a time of their own.
    pub auto_cancel_seconds: u64,
    /// Longest wait for a provider's answer before the outcome counts as unknown.
    pub provider_timeout_ms: u64,
    /// Card submissions allowed per checkout (valid or not); then the checkout is locked.
    pub max_card_attempts: u32,
    /// Card submissions per client IP per minute, and per merchant per minute.
    pub ip_submits_per_minute: u32,
    pub merchant_submits_per_minute: u32,
    /// Failed authentications (API and token endpoint) per client IP per minute; beyond it the
    /// client gets 429 until the minute is over, even with the right credentials.
    pub auth_failures_per_minute: u32,
    /// Failed authentications per client IP per minute, whatever identity they claim: the
    /// coarse ceiling above the per-(address, identity) limit.
    pub auth_failures_per_address_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed: IP addresses or CIDR
    /// ranges (`10.0.0.0/8`, `::1`). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Origins allowed to embed each merchant's widget, in addition to those registered with
    /// `smartpay merchant origins add`: `{ "<merchantKey>" = ["https://shop.example"] }`.
    pub widget_origins: std::collections::BTreeMap<String, Vec<String>>,
    /// A connection must deliver a request's headers within this time; it also closes idle
    /// keep-alive connections (hyper starts the timer as soon as a connection waits for a request).
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this time (408 otherwise).
    pub body_read_timeout_ms: u64,
    /// Longest time a request may take from headers to response (408 otherwise).
    pub request_timeout_ms: u64,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Concurrent connections; more are refused with 503. Lowered at start to what the process's
    /// file-descriptor limit leaves room for.
    pub max_connections: usize,
    /// Largest body of the token endpoint's form.
    pub token_max_body_bytes: usize,
    /// Capture policies applied to merchants at start (the CLI's `merchant capture-mode` sets
    /// the same): `{ "<merchantKey>" = { mode = "delayed", delay_seconds = 600, auto_cancel_seconds = 1800 } }`.
    pub capture_policies: std::collections::BTreeMap<String, CapturePolicyConfig>,
    /// Where `/metrics` is served (a separate operators' listener); `None` serves no metrics.
    pub admin_listen: Option<SocketAddr>,
    /// Sandbox PayU (`PAYU`): a fake PayU running as its own process (`smartpay sandbox-payu`):
    /// its API base URL, key and notification secret. Unset: started in-process.
    pub sandbox_payu_url: Option<String>,
    pub sandbox_payu_key: Option<String>,
    pub sandbox_payu_notify_secret: Option<String>,
    /// Sandbox PayU: from the shopper's approval to the decision, and from a refund to its
    /// confirmation.
    pub sandbox_payu_confirm_delay_ms: u64,
    pub sandbox_payu_refund_delay_ms: u64,
    /// Sandbox PayU's test controls (scripted answers, counters) for the test suites.
    pub sandbox_payu_test_controls: bool,
    /// Pending resolution (CONTRACT §11): the first look at a payment or modification that is
    /// still pending this long after it became pending (a synchronous answer makes it moot).
    pub pending_first_poll_ms: u64,
    /// Backoff between polls: doubles from `pending_poll_initial_ms` up to
    /// `pending_poll_max_ms`, each with random jitter.
    pub pending_poll_initial_ms: u64,
    pub pending_poll_max_ms: u64,
    /// A payment or modification still pending this long after it became pending is recorded
    /// as failed (`payment_provider_timeout`).
    pub pending_deadline_seconds: u64,
    /// A 3-D Secure challenge or approval page the shopper has not completed in this time ends
    /// the authorization as failed (`payment_provider_authentication_abandoned`).
    pub challenge_deadline_seconds: u64,
    /// Polls per second per provider, at most (per node): an outage is not hammered.
    pub provider_polls_per_second: u32,
    /// Notifications to merchants: how long one is retried before it is given up (at least 24 h),
    /// and how long one attempt may take.
    pub notification_retry_horizon_seconds: u64,
    pub notification_timeout_ms: u64,
    /// When a merchant rotates its signing secret, the old one keeps signing this long.
    pub notification_secret_overlap_seconds: u64,
    /// The vault's key-encryption key (CONTRACT §8), from exactly one of: a key file, the
    /// environment (`SMARTPAY_VAULT_KEK`, never the config file), or two component files whose
    /// XOR is the key (split knowledge). Sandbox mode without any creates `vault.kek` in the data
    /// directory; production mode without any serves no vault routes (503).
    pub vault_kek_file: Option<PathBuf>,
    #[serde(skip)]
    pub vault_kek: Option<SecretText>,
    pub vault_kek_components: Vec<PathBuf>,
    /// The previous key while a KEK rotation is under way (records not re-wrapped yet).
    pub vault_previous_kek_file: Option<PathBuf>,
}

/// A secret from the environment: `Debug` never shows it; wiped from memory when dropped.
#[derive(Clone, Default)]
pub struct SecretText(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Sandbox,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("smartpay-data"),
            database_url: None,
            database_max_connections: 16,
            worker_threads: None,
            master_key_file: None,
            public_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            token_ttl_seconds: 3600,
            token_leeway_seconds: 30,
            checkout_ttl_seconds: 3600,
            idempotency_ttl_seconds: 86_400,
            max_body_bytes: 64 * 1024,
            sweep_interval_ms: 1000,
            auth_refresh_ms: 1000,
            store_readers: 4,
            bootstrap_sandbox_merchant: true,
            sandbox_acquirer: None,
            allow_sandbox_in_production: false,
            sandbox_acquirer_url: None,
            sandbox_acquirer_key: None,
            sandbox_latency_ms: 0,
            sandbox_pending_delay_ms: 5000,
            sandbox_slow_delay_ms: 30_000,
            sandbox_settlement_delay_ms: 60_000,
            capture_delay_seconds: 3600,
            auto_cancel_seconds: 1800,
            provider_timeout_ms: 10_000,
            max_card_attempts: 5,
            ip_submits_per_minute: 20,
            merchant_submits_per_minute: 6000,
            auth_failures_per_minute: 10,
            auth_failures_per_address_per_minute: 100,
            trusted_proxies: Vec::new(),
            widget_origins: std::collections::BTreeMap::new(),
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 15_000,
            request_timeout_ms: 30_000,
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
            token_max_body_bytes: 4096,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            capture_policies: std::collections::BTreeMap::new(),
            sandbox_payu_url: None,
            sandbox_payu_key: None,
            sandbox_payu_notify_secret: None,
            sandbox_payu_confirm_delay_ms: 3000,
            sandbox_payu_refund_delay_ms: 3000,
            sandbox_payu_test_controls: false,
            pending_first_poll_ms: 5000,
            pending_poll_initial_ms: 2000,
            pending_poll_max_ms: 300_000,
            pending_deadline_seconds: 3600,
            challenge_deadline_seconds: 900,
            provider_polls_per_second: 20,
            notification_retry_horizon_seconds: 3 * 86_400,
            notification_timeout_ms: 10_000,
            notification_secret_overlap_seconds: 86_400,
            vault_kek_file: None,
            vault_kek: None,
            vault_kek_components: Vec::new(),
            vault_previous_kek_file: None,
        }
    }
}

/// A merchant's capture policy in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapturePolicyConfig {
    /// `auto`, `manual` or `delayed`.
    pub mode: String,
    /// `delayed`: seconds from authorization to capture (default `capture_delay_seconds`).
    pub delay_seconds: Option<u64>,
    /// Cancel authorizations left uncaptured this long; absent: never.
    pub auto_cancel_seconds: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and by `SMARTPAY_*` variables from `env`.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SMARTPAY_") else { continue };
            let bad = |reason: &str| ConfigError::Env { name: name.clone(), reason: reason.into() };
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad("must be a whole number"));
            match key {
                "MODE" => {
                    cfg.mode = match value.as_str() {
                        "sandbox" => Mode::Sandbox,
                        "production" => Mode::Production,
                        _ => return Err(bad("sandbox or production")),
                    }
                }
                "LISTEN" => cfg.listen = value.parse().map_err(|_| bad("an address such as 127.0.0.1:8080"))?,
                "DATA_DIR" => cfg.data_dir = PathBuf::from(value),
                "DATABASE_URL" => cfg.database_url = Some(value).filter(|v| !v.is_empty()),
                "DATABASE_MAX_CONNECTIONS" => {
                    cfg.database_max_connections = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "WORKER_THREADS" => {
                    cfg.worker_threads = Some(usize::try_from(num(&value)?).map_err(|_| bad("too large"))?)
                }
                "MASTER_KEY_FILE" => cfg.master_key_file = Some(PathBuf::from(value)),
                "PUBLIC_URL" => cfg.public_url = Some(value),
                "LOG_FORMAT" => {
                    cfg.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad("text or json")),
                    }
                }
                "LOG" | "LOG_LEVEL" => cfg.log_level = value,
                "TOKEN_TTL_SECONDS" => cfg.token_ttl_seconds = num(&value)?,
                "CHECKOUT_TTL_SECONDS" => cfg.checkout_ttl_seconds = num(&value)?,
                "IDEMPOTENCY_TTL_SECONDS" => cfg.idempotency_ttl_seconds = num(&value)?,
                "MAX_BODY_BYTES" => cfg.max_body_bytes = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?,
                "SWEEP_INTERVAL_MS" => cfg.sweep_interval_ms = num(&value)?,
                "AUTH_REFRESH_MS" => cfg.auth_refresh_ms = num(&value)?,
                "STORE_READERS" => cfg.store_readers = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?,
                "BOOTSTRAP_SANDBOX_MERCHANT" => cfg.bootstrap_sandbox_merchant = value == "true" || value == "1",
                "SANDBOX_ACQUIRER" => cfg.sandbox_acquirer = Some(value == "true" || value == "1"),
                "SANDBOX_LATENCY_MS" => cfg.sandbox_latency_ms = num(&value)?,
                "SANDBOX_ACQUIRER_URL" => cfg.sandbox_acquirer_url = Some(value),
                "SANDBOX_ACQUIRER_KEY" => cfg.sandbox_acquirer_key = Some(value),
                "SANDBOX_PENDING_DELAY_MS" => cfg.sandbox_pending_delay_ms = num(&value)?,
                "SANDBOX_SLOW_DELAY_MS" => cfg.sandbox_slow_delay_ms = num(&value)?,
                "PROVIDER_TIMEOUT_MS" => cfg.provider_timeout_ms = num(&value)?,
                "SANDBOX_SETTLEMENT_DELAY_MS" => cfg.sandbox_settlement_delay_ms = num(&value)?,
                "CAPTURE_DELAY_SECONDS" => cfg.capture_delay_seconds = num(&value)?,
                "AUTO_CANCEL_SECONDS" => cfg.auto_cancel_seconds = num(&value)?,
                "MAX_CARD_ATTEMPTS" => {
                    cfg.max_card_attempts = u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "IP_SUBMITS_PER_MINUTE" => {
                    cfg.ip_submits_per_minute = u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "AUTH_FAILURES_PER_MINUTE" => {
                    cfg.auth_failures_per_minute = u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "AUTH_FAILURES_PER_ADDRESS_PER_MINUTE" => {
                    cfg.auth_failures_per_address_per_minute =
                        u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "TRUSTED_PROXIES" => {
                    cfg.trusted_proxies =
                        value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
                }
                "HEADER_READ_TIMEOUT_MS" => cfg.header_read_timeout_ms = num(&value)?,
                "BODY_READ_TIMEOUT_MS" => cfg.body_read_timeout_ms = num(&value)?,
                "REQUEST_TIMEOUT_MS" => cfg.request_timeout_ms = num(&value)?,
                "MAX_HEADER_BYTES" => {
                    cfg.max_header_bytes = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "MAX_CONNECTIONS" => {
                    cfg.max_connections = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "TOKEN_MAX_BODY_BYTES" => {
                    cfg.token_max_body_bytes = usize::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "ADMIN_LISTEN" => {
                    cfg.admin_listen = match value.as_str() {
                        "" | "off" => None,
                        v => Some(v.parse().map_err(|_| bad("an address such as 127.0.0.1:9464, or off"))?),
                    }
                }
                "MERCHANT_SUBMITS_PER_MINUTE" => {
                    cfg.merchant_submits_per_minute = u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "SANDBOX_PAYU_URL" => cfg.sandbox_payu_url = Some(value),
                "SANDBOX_PAYU_KEY" => cfg.sandbox_payu_key = Some(value),
                "SANDBOX_PAYU_NOTIFY_SECRET" => cfg.sandbox_payu_notify_secret = Some(value),
                "SANDBOX_PAYU_CONFIRM_DELAY_MS" => cfg.sandbox_payu_confirm_delay_ms = num(&value)?,
                "SANDBOX_PAYU_REFUND_DELAY_MS" => cfg.sandbox_payu_refund_delay_ms = num(&value)?,
                "SANDBOX_PAYU_TEST_CONTROLS" => cfg.sandbox_payu_test_controls = value == "true" || value == "1",
                "PENDING_FIRST_POLL_MS" => cfg.pending_first_poll_ms = num(&value)?,
                "PENDING_POLL_INITIAL_MS" => cfg.pending_poll_initial_ms = num(&value)?,
                "PENDING_POLL_MAX_MS" => cfg.pending_poll_max_ms = num(&value)?,
                "PENDING_DEADLINE_SECONDS" => cfg.pending_deadline_seconds = num(&value)?,
                "CHALLENGE_DEADLINE_SECONDS" => cfg.challenge_deadline_seconds = num(&value)?,
                "PROVIDER_POLLS_PER_SECOND" => {
                    cfg.provider_polls_per_second = u32::try_from(num(&value)?).map_err(|_| bad("too large"))?
                }
                "NOTIFICATION_RETRY_HORIZON_SECONDS" => cfg.notification_retry_horizon_seconds = num(&value)?,
                "NOTIFICATION_TIMEOUT_MS" => cfg.notification_timeout_ms = num(&value)?,
                "NOTIFICATION_SECRET_OVERLAP_SECONDS" => cfg.notification_secret_overlap_seconds = num(&value)?,
                "VAULT_KEK_FILE" => cfg.vault_kek_file = Some(PathBuf::from(value)),
                "VAULT_KEK" => cfg.vault_kek = Some(SecretText(zeroize::Zeroizing::new(value))),
                "VAULT_KEK_COMPONENTS" => {
                    cfg.vault_kek_components =
                        value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect()
                }
                "VAULT_PREVIOUS_KEK_FILE" => cfg.vault_previous_kek_file = Some(PathBuf::from(value)),
                // FAILPOINTS is read by AppState (crash tests, sandbox mode only).
                "CONFIG" | "FAILPOINTS" => {}
                _ => return Err(bad("unknown setting")),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.token_ttl_seconds == 0 || self.token_ttl_seconds > 86_400 {
            return Err(ConfigError::Invalid("token_ttl_seconds must be between 1 and 86400".into()));
        }
        if self.token_leeway_seconds > 60 {
            return Err(ConfigError::Invalid("token_leeway_seconds must be at most 60".into()));
        }
        if self.checkout_ttl_seconds == 0 {
            return Err(ConfigError::Invalid("checkout_ttl_seconds must be positive".into()));
        }
        if self.idempotency_ttl_seconds < 86_400 {
            return Err(ConfigError::Invalid("idempotency_ttl_seconds must be at least 86400 (24 h)".into()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("max_body_bytes must be at least 1024".into()));
        }
        if self.mode == Mode::Production && self.sandbox_acquirer == Some(true) && !self.allow_sandbox_in_production {
            return Err(ConfigError::Invalid(
                "production mode refuses the sandbox acquirer unless allow_sandbox_in_production is set".into(),
            ));
        }
        for (merchant, origins) in &self.widget_origins {
            for o in origins {
                if crate::widget::normalize_origin(o).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "widget_origins.{merchant}: {o:?} is not an origin (scheme://host[:port])"
                    )));
                }
            }
        }
        for p in &self.trusted_proxies {
            if crate::client_addr::Cidr::parse(p).is_none() {
                return Err(ConfigError::Invalid(format!("trusted_proxies: {p:?} is not an IP address or CIDR range")));
            }
        }
        if self.header_read_timeout_ms == 0 || self.body_read_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid("timeouts must be positive".into()));
        }
        if self.request_timeout_ms <= self.provider_timeout_ms {
            return Err(ConfigError::Invalid(
                "request_timeout_ms must exceed provider_timeout_ms (a card payment waits for its provider)".into(),
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(ConfigError::Invalid("max_header_bytes must be between 1024 and 1048576".into()));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid("max_connections must be positive".into()));
        }
        if !(256..=65_536).contains(&self.token_max_body_bytes) {
            return Err(ConfigError::Invalid("token_max_body_bytes must be between 256 and 65536".into()));
        }
        if self.sandbox_acquirer_url.is_some() != self.sandbox_acquirer_key.is_some() {
            return Err(ConfigError::Invalid("sandbox_acquirer_url and sandbox_acquirer_key go together".into()));
        }
        let payu = [&self.sandbox_payu_url, &self.sandbox_payu_key, &self.sandbox_payu_notify_secret];
        if payu.iter().any(|v| v.is_some()) && !payu.iter().all(|v| v.is_some()) {
            return Err(ConfigError::Invalid(
                "sandbox_payu_url, sandbox_payu_key and sandbox_payu_notify_secret go together".into(),
            ));
        }
        if self.pending_poll_initial_ms == 0 || self.pending_poll_max_ms < self.pending_poll_initial_ms {
            return Err(ConfigError::Invalid(
                "pending_poll_initial_ms must be positive and at most pending_poll_max_ms".into(),
            ));
        }
        if self.pending_deadline_seconds == 0 || self.challenge_deadline_seconds == 0 {
            return Err(ConfigError::Invalid("pending and challenge deadlines must be positive".into()));
        }
        if self.provider_polls_per_second == 0 {
            return Err(ConfigError::Invalid("provider_polls_per_second must be positive".into()));
        }
        if self.notification_retry_horizon_seconds < 86_400 {
            return Err(ConfigError::Invalid(
                "notification_retry_horizon_seconds must be at least 86400 (24 h)".into(),
            ));
        }
        if self.notification_timeout_ms == 0 {
            return Err(ConfigError::Invalid("notification_timeout_ms must be positive".into()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid("database_url must be a postgres:// URL".into()));
        }
        if self.database_url.is_some() && self.master_key_file.is_none() {
            return Err(ConfigError::Invalid(
                "database_url needs master_key_file: every node sharing the database must be given the same master key"
                    .into(),
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid("database_max_connections must be positive".into()));
        }
        if self.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
            return Err(ConfigError::Invalid("worker_threads must be between 1 and 1024".into()));
        }
        let sources = usize::from(self.vault_kek_file.is_some())
            + usize::from(self.vault_kek.is_some())
            + usize::from(!self.vault_kek_components.is_empty());
        if sources > 1 {
            return Err(ConfigError::Invalid(
                "give the vault key one way only: vault_kek_file, SMARTPAY_VAULT_KEK or vault_kek_components".into(),
            ));
        }
        if !self.vault_kek_components.is_empty() && self.vault_kek_components.len() != 2 {
            return Err(ConfigError::Invalid("vault_kek_components takes exactly two files".into()));
        }
        for (merchant, p) in &self.capture_policies {
            if smartpay_domain::modification::CaptureMode::parse(&p.mode).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "capture_policies.{merchant}.mode: {:?} is not auto, manual or delayed",
                    p.mode
                )));
            }
        }
        if self.mode == Mode::Production && self.master_key_file.is_none() {
            return Err(ConfigError::Invalid(
                "production mode requires master_key_file (explicit key material)".into(),
            ));
        }
        // Nodes sharing a database accept each other's tokens only when they name one issuer;
        // the default (this node's listen address) differs per node. The sandbox only warns.
        if self.mode == Mode::Production && self.database_url.is_some() && self.public_url.is_none() {
            return Err(ConfigError::Invalid(
                "production mode with database_url requires public_url, the same on every node (it is the access tokens' issuer)"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("smartpay.db")
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Whether the sandbox acquirer is served and used.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox_acquirer.unwrap_or(self.mode == Mode::Sandbox)
    }

    /// The token issuer: `public_url`, or the listen address.
    pub fn issuer(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn zero_configuration_is_a_local_sandbox() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.mode, Mode::Sandbox);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_path(), PathBuf::from("smartpay-data/smartpay.db"));
        assert_eq!(c.token_ttl_seconds, 3600);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smartpay.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ncheckout_ttl_seconds = 120\n").unwrap();
        let c = Config::load(Some(&path), env(&[("SMARTPAY_LISTEN", "127.0.0.1:9100"), ("PATH", "/bin")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.checkout_ttl_seconds, 120);
    }

    #[test]
    fn worker_threads_default_to_one_per_core_and_are_bounded() {
        assert_eq!(Config::load(None, env(&[])).unwrap().worker_threads, None);
        let c = Config::load(None, env(&[("SMARTPAY_WORKER_THREADS", "1")])).unwrap();
        assert_eq!(c.worker_threads, Some(1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smartpay.toml");
        std::fs::write(&path, "worker_threads = 3\n").unwrap();
        assert_eq!(Config::load(Some(&path), env(&[])).unwrap().worker_threads, Some(3));
        for bad in ["0", "1025"] {
            let e = Config::load(None, env(&[("SMARTPAY_WORKER_THREADS", bad)])).unwrap_err().to_string();
            assert!(e.contains("worker_threads must be between 1 and 1024"), "{bad}: {e}");
        }
        let e = Config::load(None, env(&[("SMARTPAY_WORKER_THREADS", "two")])).unwrap_err().to_string();
        assert!(e.contains("SMARTPAY_WORKER_THREADS") && e.contains("whole number"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::load(None, env(&[("SMARTPAY_LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("SMARTPAY_LISTEN"), "{e}");
        assert!(Config::load(None, env(&[("SMARTPAY_FAILPOINTS", "capture.opened")])).is_ok(), "read by AppState");
        let e = Config::load(None, env(&[("SMARTPAY_TYPO", "1")])).unwrap_err().to_string();
        assert!(e.contains("unknown setting"), "{e}");
        let e = Config::load(None, env(&[("SMARTPAY_MODE", "production")])).unwrap_err().to_string();
        assert!(e.contains("master_key_file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        let shared = [
            ("SMARTPAY_MODE", "production"),
            ("SMARTPAY_MASTER_KEY_FILE", key.to_str().unwrap()),
            ("SMARTPAY_DATABASE_URL", "postgres://smartpay@db:5432/smartpay"),
        ];
        let e = Config::load(None, env(&shared)).unwrap_err().to_string();
        assert!(e.contains("public_url"), "{e}");
        let with_url = [&shared[..], &[("SMARTPAY_PUBLIC_URL", "https://pay.example.com")]].concat();
        assert!(Config::load(None, env(&with_url)).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = 1").unwrap();
        assert!(Config::load(Some(&path), env(&[])).unwrap_err().to_string().contains("lisen"));
    }
}
