//! `smartpay`: runs the server and the operator commands.
//!
//! - `smartpay serve` — sandbox on 127.0.0.1:8080 with SQLite under ./smartpay-data/ by default.
//! - `smartpay merchant create|list|disable|enable` — merchants.
//! - `smartpay credential add|list|revoke` — API credentials (Basic keys, OAuth clients).
//! - `smartpay keys rotate|list` — token-signing keys.
//! - `smartpay payment chargeback` — operator actions on payments.
//! - `smartpay verify` — the money invariants over every stored payment.
//! - `smartpay notifications list|show|redeliver` — notifications to merchants and their attempts.
//! - `smartpay pending` — what pending resolution and the scheduled jobs are waiting for, and why.
//! - `smartpay sandbox-acquirer`, `smartpay sandbox-payu` — the sandbox providers as processes.

use std::path::PathBuf;

/// mimalloc: the request path allocates many small strings (JSON trees, headers); measured
/// faster than the system allocator in `scripts/bench.sh` (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use smartpay_server::{Config, LogFormat, Mode, provision};
use smartpay_store::{CredentialKind, MerchantStatus};

#[derive(Parser)]
#[command(name = "smartpay", version, about = "Self-hosted SmartPay payment platform")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// TOML configuration file (also SMARTPAY_CONFIG).
    #[arg(long, global = true, env = "SMARTPAY_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the database and, by default, the master key.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// Manage API credentials.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Manage token-signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Operator actions on payments.
    #[command(subcommand)]
    Payment(PaymentCmd),
    /// Check every stored payment against the money invariants; prints each violation and
    /// exits non-zero when there is one.
    Verify,
    /// Apply pending schema migrations to the configured store (PostgreSQL with database_url,
    /// else the SQLite database in the data directory) and print the schema version. Servers
    /// also migrate when they start; this runs it ahead of a rolling upgrade.
    Migrate,
    /// Run the sandbox acquirer as its own process (a fake card acquirer that survives the
    /// server's restarts); point the server at it with SMARTPAY_SANDBOX_ACQUIRER_URL and _KEY.
    SandboxAcquirer(AcquirerArgs),
    /// Run sandbox PayU (the asynchronous method `PAYU`) as its own process; point the server at
    /// it with SMARTPAY_SANDBOX_PAYU_URL, _KEY and _NOTIFY_SECRET.
    SandboxPayu(PayuArgs),
    /// Notifications to merchants: list them, show one with its attempts, redeliver.
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// What is pending and why: payments and modifications waiting for their provider (with
    /// attempts, next poll and last error), payments flagged for review, scheduled jobs.
    Pending {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct PayuArgs {
    /// The machine API (loopback only), e.g. 127.0.0.1:9310.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The shopper-facing approval pages, e.g. 127.0.0.1:9311.
    #[arg(long)]
    public_listen: std::net::SocketAddr,
    /// The bearer key the server's connector sends (also SMARTPAY_SANDBOX_PAYU_KEY).
    #[arg(long, env = "SMARTPAY_SANDBOX_PAYU_KEY")]
    key: String,
    /// The secret notifications to SmartPay are signed with (also SMARTPAY_SANDBOX_PAYU_NOTIFY_SECRET).
    #[arg(long, env = "SMARTPAY_SANDBOX_PAYU_NOTIFY_SECRET")]
    notify_secret: String,
    /// SmartPay's public base URL: only its card frame may hold the approval pages.
    #[arg(long)]
    smartpay_url: String,
}

#[derive(Subcommand)]
enum NotificationsCmd {
    /// Notifications, newest first.
    List {
        #[arg(long)]
        merchant: Option<String>,
        /// Only this payment's.
        #[arg(long)]
        transaction: Option<String>,
        #[arg(long, value_parser = ["PENDING", "DELIVERED", "FAILED"])]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One notification, its payload and every delivery attempt.
    Show { event_id: String },
    /// Send a notification again (same event id); its retry schedule starts over.
    Redeliver { event_id: String },
}

#[derive(Args)]
struct AcquirerArgs {
    /// The machine API (loopback only), e.g. 127.0.0.1:9300.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The shopper-facing 3-D Secure pages, e.g. 127.0.0.1:9301.
    #[arg(long)]
    public_listen: std::net::SocketAddr,
    /// The bearer key the server's connector sends (at least 16 characters; also
    /// SMARTPAY_SANDBOX_ACQUIRER_KEY).
    #[arg(long, env = "SMARTPAY_SANDBOX_ACQUIRER_KEY")]
    key: String,
    /// SmartPay's public base URL: challenges return to its /widget/challenge-return and only its
    /// card frame may hold them.
    #[arg(long)]
    smartpay_url: String,
}

#[derive(Subcommand)]
enum PaymentCmd {
    /// Record a chargeback (the payment's status stays; a CHARGEBACK modification explains it).
    Chargeback {
        /// The transactionId.
        transaction: String,
        /// The merchantKey the payment belongs to.
        #[arg(long)]
        merchant: String,
        /// Amount in major units (e.g. 10.99); at most what was captured.
        #[arg(long)]
        amount: String,
        /// Why (free text, e.g. the scheme's reason code).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Sandbox,
    Production,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum MerchantCmd {
    /// Create a merchant with one Basic key and one OAuth client; prints the secrets once.
    Create {
        #[arg(long)]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List merchants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a merchant: every credential of it stops working within seconds.
    Disable {
        /// The merchantKey.
        merchant: String,
    },
    /// Enable a disabled merchant again.
    Enable { merchant: String },
    /// When authorizations are captured: on authorization (`auto`, the default), only through the
    /// Capture API (`manual`), or automatically after a delay (`delayed`); and whether
    /// authorizations left uncaptured are cancelled automatically.
    CaptureMode {
        merchant: String,
        #[arg(value_parser = ["auto", "manual", "delayed"])]
        mode: String,
        /// `delayed`: seconds from authorization to capture (default: capture_delay_seconds).
        #[arg(long)]
        delay: Option<u64>,
        /// Cancel authorizations still uncaptured after this many seconds (default 1800, or
        /// auto_cancel_seconds, when given without a value). Off when omitted.
        #[arg(long, num_args = 0..=1, default_missing_value = "0")]
        auto_cancel: Option<u64>,
    },
    /// Origins allowed to embed the merchant's widget (scheme://host[:port]).
    #[command(subcommand)]
    Origins(OriginsCmd),
    /// Where the merchant's notifications go (https in production) and how SmartPay
    /// authenticates there. The first configuration prints the signing secret once.
    Notifications {
        merchant: String,
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        url: Option<String>,
        /// HTTP Basic toward the endpoint: user name (password from --basic-password or
        /// NOTIFY_BASIC_PASSWORD).
        #[arg(long, requires = "basic_password", conflicts_with = "oauth_token_url")]
        basic_user: Option<String>,
        #[arg(long, env = "NOTIFY_BASIC_PASSWORD", hide_env_values = true)]
        basic_password: Option<String>,
        /// OAuth client credentials toward the endpoint: the token URL, client id and secret
        /// (from --oauth-client-secret or NOTIFY_OAUTH_CLIENT_SECRET).
        #[arg(long, requires_all = ["oauth_client_id", "oauth_client_secret"])]
        oauth_token_url: Option<String>,
        #[arg(long)]
        oauth_client_id: Option<String>,
        #[arg(long, env = "NOTIFY_OAUTH_CLIENT_SECRET", hide_env_values = true)]
        oauth_client_secret: Option<String>,
        /// Stop notifying this merchant.
        #[arg(long)]
        remove: bool,
    },
    /// Create a new notification signing secret (printed once); the old ones keep signing for
    /// --overlap seconds (default: notification_secret_overlap_seconds).
    NotificationSecret {
        merchant: String,
        #[arg(long)]
        overlap: Option<u64>,
    },
    /// Register the JWK Set (EC P-256 keys) of the merchant's end-user identity issuer: the
    /// X-Access-Token of its requests is then verified and its subject recorded. Each
    /// registration replaces the previous one, issuer and audience included.
    IdentityKeys {
        merchant: String,
        /// A JSON file `{"keys": [...]}`.
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        jwks_file: Option<PathBuf>,
        /// The `iss` every token must carry, e.g. https://id.shop.example (any when omitted).
        #[arg(long, conflicts_with = "clear")]
        issuer: Option<String>,
        /// An audience the token's `aud` must be or contain, e.g. smartpay (any when omitted).
        #[arg(long, conflicts_with = "clear")]
        audience: Option<String>,
        /// Remove the registered keys, issuer and audience.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand)]
enum OriginsCmd {
    /// Allow an origin, e.g. https://shop.example
    Add { merchant: String, origin: String },
    /// Stop allowing an origin.
    Remove { merchant: String, origin: String },
    /// List the registered origins.
    List { merchant: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Basic,
    Oauth,
}

#[derive(Subcommand)]
enum CredentialCmd {
    /// Add a Basic authentication key or an OAuth client; prints the secret once.
    Add {
        /// The merchantKey.
        #[arg(long)]
        merchant: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        json: bool,
    },
    /// List a merchant's credentials (never their secrets).
    List {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential by id; it stops working within seconds.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a new signing key; tokens signed by the old one stay valid until they expire.
    Rotate,
    /// List signing keys.
    List,
    /// Write a new vault key-encryption key to a file (mode 0600), or with --components two
    /// full-length components whose XOR is the key (split knowledge: give one to each custodian).
    GenerateKek {
        /// The key file to create (with --components: the first component).
        out: PathBuf,
        /// The second component's file.
        #[arg(long)]
        components: Option<PathBuf>,
    },
    /// Re-wrap every stored option's data keys from the previous vault key
    /// (vault_previous_kek_file) to the current one, then retire the previous key. Resumable:
    /// run it again after an interruption. Servers keep serving throughout.
    RotateKek,
    /// Re-encrypt every stored option under new data keys (and the current vault key).
    /// Resumable.
    RotateDek,
    /// The vault's key versions, how many options each seals, and any unfinished rotation.
    VaultStatus,
    /// Open every stored option's sealed number and token with the configured keys; exits
    /// non-zero when one does not open. Prints nothing secret.
    VaultVerify,
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut cfg = Config::load(common.config.as_deref(), std::env::vars())?;
    if let Some(d) = &common.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Reads the configuration first (it says how many threads to run), then starts the runtime
/// and runs the command on it.
fn start(cli: Cli) -> anyhow::Result<()> {
    let cfg = load_config(&cli.common)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(cli, cfg))
}

async fn run(cli: Cli, mut cfg: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            if let Some(l) = args.listen {
                cfg.listen = l;
            }
            if let Some(m) = args.mode {
                cfg.mode = match m {
                    ModeArg::Sandbox => Mode::Sandbox,
                    ModeArg::Production => Mode::Production,
                };
                if cfg.mode == Mode::Production && cfg.master_key_file.is_none() {
                    anyhow::bail!("production mode requires master_key_file (explicit key material)");
                }
            }
            if let Some(f) = args.log_format {
                cfg.log_format = match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                };
            }
            serve(cfg).await
        }
        Command::Merchant(cmd) => merchant(cfg, cmd).await,
        Command::Credential(cmd) => credential(cfg, cmd).await,
        Command::Keys(cmd) => keys(cfg, cmd).await,
        Command::Payment(cmd) => payment(cfg, cmd).await,
        Command::Verify => verify(cfg).await,
        Command::Migrate => {
            let (store, _) = smartpay_server::connect_store(&cfg).await?;
            store.ping().await?;
            let which = if cfg.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
            println!("{which} store migrated to the current schema");
            Ok(())
        }
        Command::SandboxAcquirer(args) => sandbox_acquirer(cfg, args).await,
        Command::SandboxPayu(args) => sandbox_payu(cfg, args).await,
        Command::Notifications(cmd) => notifications(cfg, cmd).await,
        Command::Pending { limit, json } => pending(cfg, limit, json).await,
    }
}

async fn notifications(cfg: Config, cmd: NotificationsCmd) -> anyhow::Result<()> {
    let (store, _) = smartpay_server::connect_store(&cfg).await?;
    let now = smartpay_domain::Millis::now();
    match cmd {
        NotificationsCmd::List { merchant, transaction, state, limit, json } => {
            let filter = smartpay_store::NotificationFilter {
                merchant_id: merchant,
                payment_id: transaction,
                state: state.as_deref().and_then(smartpay_store::DeliveryState::parse),
                limit: limit.clamp(1, 10_000),
            };
            let list = store.notifications(filter).await?;
            if json {
                let views: Vec<_> = list.iter().map(smartpay_server::http::notifications::notification_view).collect();
                println!("{}", serde_json::to_string_pretty(&views)?);
                return Ok(());
            }
            println!("{:<36}  {:<9}  {:<8}  {:<24}  {:>3}  TRANSACTION", "EVENT", "STATE", "OBJECT", "STATUS", "TRY");
            for n in list {
                println!(
                    "{:<36}  {:<9}  {:<8}  {:<24}  {:>3}  {}",
                    n.id,
                    n.state.as_str(),
                    n.object_type.as_str(),
                    n.status,
                    n.attempts,
                    n.payment_id
                );
            }
        }
        NotificationsCmd::Show { event_id } => {
            let (n, attempts) =
                store.notification(&event_id, None).await?.with_context(|| format!("no notification {event_id}"))?;
            println!("{}", serde_json::to_string_pretty(&smartpay_server::http::notifications::notification_view(&n))?);
            for a in attempts {
                println!(
                    "attempt at {}: {} {} ({} ms)",
                    a.at.to_iso8601(),
                    a.status_code.map_or("-".to_owned(), |c| c.to_string()),
                    a.error.unwrap_or_default(),
                    a.duration_ms
                );
            }
        }
        NotificationsCmd::Redeliver { event_id } => {
            if !store.redeliver_notification(&event_id, None, now).await? {
                anyhow::bail!("no notification {event_id}");
            }
            println!("notification {event_id} queued for delivery");
        }
    }
    Ok(())
}

async fn pending(cfg: Config, limit: u32, json: bool) -> anyhow::Result<()> {
    let (store, _) = smartpay_server::connect_store(&cfg).await?;
    let now = smartpay_domain::Millis::now();
    let jobs = store.jobs(&smartpay_store::JobKind::ALL, limit).await?;
    let flagged = store.flagged_payments(limit).await?;
    if json {
        let jobs: Vec<_> = jobs
            .iter()
            .map(|v| {
                serde_json::json!({
                    "kind": v.job.kind.as_str(), "transactionId": v.job.payment_id, "merchantKey": v.job.merchant_id,
                    "modification": (!v.job.target.is_empty()).then_some(&v.job.target),
                    "paymentStatus": v.payment_status.as_str(), "provider": v.provider,
                    "pendingSince": v.job.created_at.to_iso8601(), "attempts": v.job.attempts,
                    "nextRun": v.job.due_at.to_iso8601(), "lastError": v.job.last_error,
                })
            })
            .collect();
        let flagged: Vec<_> = flagged
            .iter()
            .map(|(m, id, reason)| serde_json::json!({"merchantKey": m, "transactionId": id, "reason": reason}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"jobs": jobs, "flagged": flagged}))?);
        return Ok(());
    }
    println!(
        "{:<22}  {:<36}  {:<24}  {:>8}  {:>4}  {:>8}  LAST ERROR",
        "JOB", "TRANSACTION", "STATUS", "AGE", "TRY", "NEXT IN"
    );
    for v in &jobs {
        let age = (now.0 - v.job.created_at.0).max(0) / 1000;
        let next = (v.job.due_at.0 - now.0).max(0) / 1000;
        println!(
            "{:<22}  {:<36}  {:<24}  {:>7}s  {:>4}  {:>7}s  {}",
            v.job.kind.as_str(),
            v.job.payment_id,
            v.payment_status.as_str(),
            age,
            v.job.attempts,
            next,
            v.job.last_error.as_deref().unwrap_or("")
        );
    }
    if !flagged.is_empty() {
        println!("\nflagged for review (the provider contradicts the payment; not advanced):");
        for (m, id, reason) in &flagged {
            println!("  {id} (merchant {m}): {reason}");
        }
    }
    Ok(())
}

async fn sandbox_payu(cfg: Config, args: PayuArgs) -> anyhow::Result<()> {
    use smartpay_providers::payu::fake;
    smartpay_server::telemetry::init(cfg.log_format, &cfg.log_level);
    let base = args.smartpay_url.trim_end_matches('/').to_owned();
    let config = fake::FakeConfig {
        listen: args.listen,
        api_key: args.key,
        public_base: format!("http://{}", args.public_listen),
        frame_ancestor: base,
        confirm_delay: std::time::Duration::from_millis(cfg.sandbox_payu_confirm_delay_ms),
        refund_delay: std::time::Duration::from_millis(cfg.sandbox_payu_refund_delay_ms),
        notify_secret: args.notify_secret,
        test_controls: cfg.sandbox_payu_test_controls,
        max_orders: 100_000,
        latency: std::time::Duration::from_millis(cfg.sandbox_latency_ms),
    };
    let spawned = fake::spawn(config).await.context("starting sandbox PayU")?;
    let public = tokio::net::TcpListener::bind(args.public_listen)
        .await
        .with_context(|| format!("listening on {}", args.public_listen))?;
    println!("sandbox PayU: API on http://{}, approval pages on http://{}", spawned.api_addr, args.public_listen);
    let pages = spawned.pages_router.clone();
    tokio::select! {
        served = axum::serve(public, pages) => served.context("approval pages")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    spawned.shutdown().await;
    Ok(())
}

async fn payment(cfg: Config, cmd: PaymentCmd) -> anyhow::Result<()> {
    let (store, _) = smartpay_server::connect_store(&cfg).await?;
    match cmd {
        PaymentCmd::Chargeback { transaction, merchant, amount, reason } => {
            let p = store
                .payment(&merchant, &transaction)
                .await?
                .with_context(|| format!("no payment {transaction} of merchant {merchant}"))?;
            let exponent = smartpay_domain::Currency::from_code(&p.currency).map_or(2, |c| c.exponent());
            let minor = smartpay_domain::money::parse_minor(&amount, exponent)
                .map_err(|e| anyhow::anyhow!("--amount {amount:?}: {e:?}"))?;
            let outcome = store
                .begin_modification(smartpay_store::NewModification {
                    pk: uuid::Uuid::now_v7().to_string(),
                    merchant_id: merchant.clone(),
                    payment_id: transaction.clone(),
                    modification_id: format!("chargeback-{}", uuid::Uuid::now_v7()),
                    request: smartpay_store::ModificationRequest::Chargeback(minor),
                    currency: None,
                    description: reason,
                    custom_references: None,
                    fingerprint: Vec::new(),
                    at: smartpay_domain::Millis::now(),
                    origin: smartpay_store::EventOrigin::Automated,
                    resolve_at: None,
                    authorize_first: None,
                })
                .await?;
            match outcome {
                smartpay_store::BeginOutcome::Started { .. } => {
                    println!("chargeback of {amount} {} recorded on {transaction}", p.currency)
                }
                other => anyhow::bail!(
                    "not recorded: {other:?} (a chargeback needs a captured payment and at most the captured amount)"
                ),
            }
        }
    }
    Ok(())
}

async fn sandbox_acquirer(cfg: Config, args: AcquirerArgs) -> anyhow::Result<()> {
    use smartpay_providers::sandbox::acquirer;
    smartpay_server::telemetry::init(cfg.log_format, &cfg.log_level);
    let base = args.smartpay_url.trim_end_matches('/').to_owned();
    let config = acquirer::AcquirerConfig {
        latency: std::time::Duration::from_millis(cfg.sandbox_latency_ms),
        pending_delay: std::time::Duration::from_millis(cfg.sandbox_pending_delay_ms),
        slow_delay: std::time::Duration::from_millis(cfg.sandbox_slow_delay_ms),
        public_base: format!("http://{}", args.public_listen),
        return_url: format!("{base}/widget/challenge-return"),
        frame_ancestor: base,
        // Stable for as long as the key is: tokens of stored cards survive the acquirer's restarts.
        token_key: smartpay_server::secrets::sha256(&[b"smartpay/sandbox-acquirer-token/", args.key.as_bytes()]),
        api_key: args.key,
        max_authorizations: 100_000,
        listen: args.listen,
    };
    let spawned = acquirer::spawn(config).await.context("starting the sandbox acquirer")?;
    let public = tokio::net::TcpListener::bind(args.public_listen)
        .await
        .with_context(|| format!("listening on {}", args.public_listen))?;
    println!("sandbox acquirer: API on http://{}, challenges on http://{}", spawned.api_addr, args.public_listen);
    let pages = spawned.challenge_router.clone();
    tokio::select! {
        served = axum::serve(public, pages) => served.context("challenge pages")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    spawned.shutdown().await;
    Ok(())
}

async fn verify(cfg: Config) -> anyhow::Result<()> {
    let (store, _) = smartpay_server::connect_store(&cfg).await?;
    let report = smartpay_server::verify::verify_store(store.as_ref()).await?;
    for v in &report.violations {
        println!("{}  {}", v.transaction_id, v.problem);
    }
    println!("{} payments checked, {} violations", report.checked, report.violations.len());
    if report.violations.is_empty() { Ok(()) } else { anyhow::bail!("invariants violated") }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let signal = shutdown_signal();
    smartpay_server::telemetry::init(cfg.log_format, &cfg.log_level);
    let (store, secrets) = smartpay_server::connect_store(&cfg).await?;
    if cfg.mode == Mode::Sandbox
        && cfg.bootstrap_sandbox_merchant
        && let Some(p) = provision::bootstrap_sandbox(store.as_ref(), &secrets).await?
    {
        print_sandbox_banner(&cfg, &p);
    }
    let state = smartpay_server::AppState::new(cfg, store, secrets).await?;
    let running = smartpay_server::start(state).await?;
    let base = running.state.public_base().to_owned();
    println!("SmartPay listening on {base}  (API docs: {base}/docs)");
    if running.state.config.sandbox_enabled() {
        println!("Demo shop: {base}/demo  (pay with 4111 1111 1111 1111, any future expiry, any CVC)");
    }
    running.run_until(signal).await
}

fn print_sandbox_banner(cfg: &Config, p: &provision::ProvisionedMerchant) {
    let base = format!("http://{}", cfg.listen);
    println!("Created the sandbox merchant. Its secrets are shown only now; keep them:");
    println!("  merchantKey        {}", p.merchant.id);
    println!("  authenticationKey  {}", p.basic.secret.as_str());
    println!("  clientId           {}", p.oauth.credential.client_id.as_deref().unwrap_or(""));
    println!("  clientSecret       {}", p.oauth.secret.as_str());
    println!("Try:  curl -u '{}:<authenticationKey>' {base}/payment/status/<transactionId>", p.merchant.id);
}

/// Registers for SIGTERM at once — a signal that arrives while the server is still starting
/// (its listener may already answer) must stop it gracefully, not kill it — and resolves when
/// SIGTERM or Ctrl-C arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
}

async fn merchant(cfg: Config, cmd: MerchantCmd) -> anyhow::Result<()> {
    let (store, secrets) = smartpay_server::connect_store(&cfg).await?;
    match cmd {
        MerchantCmd::Create { name, json } => {
            let p = provision::create_merchant(store.as_ref(), &secrets, &name).await?;
            if json {
                println!("{}", p.credentials_json());
            } else {
                println!("merchantKey        {}", p.merchant.id);
                println!("authenticationKey  {}", p.basic.secret.as_str());
                println!("clientId           {}", p.oauth.credential.client_id.as_deref().unwrap_or(""));
                println!("clientSecret       {}", p.oauth.secret.as_str());
                println!("(the secrets are not stored and cannot be shown again)");
            }
        }
        MerchantCmd::List { json } => {
            let merchants = store.merchants().await?;
            if json {
                let list: Vec<_> = merchants
                    .iter()
                    .map(|m| serde_json::json!({"merchantKey": m.id, "name": m.name, "status": if m.status == MerchantStatus::Active {"ACTIVE"} else {"DISABLED"}, "createdAt": m.created_at.to_iso8601()}))
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                for m in merchants {
                    println!(
                        "{}  {:<8}  {}  {}",
                        m.id,
                        if m.status == MerchantStatus::Active { "ACTIVE" } else { "DISABLED" },
                        m.created_at.to_iso8601(),
                        m.name
                    );
                }
            }
        }
        MerchantCmd::Disable { merchant } => {
            store
                .set_merchant_status(&merchant, MerchantStatus::Disabled)
                .await
                .with_context(|| format!("merchant {merchant}"))?;
            println!("disabled {merchant}");
        }
        MerchantCmd::IdentityKeys { merchant, jwks_file, issuer, audience, clear } => {
            if [&issuer, &audience].into_iter().flatten().any(|v| v.trim().is_empty()) {
                anyhow::bail!("--issuer and --audience must not be empty");
            }
            let jwks = match (jwks_file, clear) {
                (Some(path), false) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    let v: serde_json::Value = serde_json::from_str(&text).context("the JWKS file is not JSON")?;
                    let usable = v["keys"].as_array().map_or(0, |keys| {
                        keys.iter().filter(|k| smartpay_server::auth::jwt::verifying_key_from_jwk(k).is_some()).count()
                    });
                    if usable == 0 {
                        anyhow::bail!("the JWKS holds no EC P-256 key with a kid (ES256 is supported)");
                    }
                    println!("{usable} key(s) registered for {merchant}");
                    if let Some(iss) = &issuer {
                        println!("tokens must carry iss {iss:?}");
                    }
                    if let Some(aud) = &audience {
                        println!("tokens' aud must contain {aud:?}");
                    }
                    Some(v.to_string())
                }
                _ => {
                    println!("identity keys, issuer and audience cleared for {merchant}");
                    None
                }
            };
            let registered = smartpay_store::IdentityIssuer { jwks, issuer, audience };
            store.set_identity_issuer(&merchant, registered).await.with_context(|| format!("merchant {merchant}"))?;
        }
        MerchantCmd::CaptureMode { merchant, mode, delay, auto_cancel } => {
            let parsed = smartpay_domain::modification::CaptureMode::parse(&mode)
                .with_context(|| format!("capture mode {mode:?}"))?;
            if delay.is_some() && parsed != smartpay_domain::modification::CaptureMode::Delayed {
                anyhow::bail!("--delay is for capture mode delayed");
            }
            let auto_cancel = auto_cancel.map(|s| if s == 0 { cfg.auto_cancel_seconds } else { s });
            store
                .set_capture_policy(&merchant, parsed, delay, auto_cancel)
                .await
                .with_context(|| format!("merchant {merchant}"))?;
            print!("capture mode of {merchant}: {mode}");
            if parsed == smartpay_domain::modification::CaptureMode::Delayed {
                print!(" after {} s", delay.unwrap_or(cfg.capture_delay_seconds));
            }
            match auto_cancel {
                Some(s) => println!("; uncaptured authorizations are cancelled after {s} s"),
                None => println!("; no automatic cancellation"),
            }
        }
        MerchantCmd::Notifications {
            merchant,
            url,
            basic_user,
            basic_password,
            oauth_token_url,
            oauth_client_id,
            oauth_client_secret,
            remove,
        } => {
            let ctx = smartpay_server::notifications::Ctx::new(
                store.as_ref(),
                &secrets,
                cfg.mode,
                smartpay_domain::Millis::now(),
            );
            let Some(url) = url.filter(|_| !remove) else {
                smartpay_server::notifications::remove(&ctx, &merchant).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("notifications to {merchant} stopped");
                return Ok(());
            };
            use smartpay_server::notifications::AuthInput;
            let auth = match (basic_user, basic_password, oauth_token_url, oauth_client_id, oauth_client_secret) {
                (Some(username), Some(password), ..) => AuthInput::Basic { username, password: password.into() },
                (_, _, Some(token_url), Some(client_id), Some(secret)) => {
                    AuthInput::OAuth { token_url, client_id, client_secret: secret.into() }
                }
                _ => AuthInput::None,
            };
            let created = smartpay_server::notifications::configure(&ctx, &merchant, &url, auth)
                .await
                .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
            println!("notifications of {merchant} go to {url}");
            if let Some(secret) = created {
                println!("signing secret (shown once): {}", secret.as_str());
            }
        }
        MerchantCmd::NotificationSecret { merchant, overlap } => {
            if store.notification_settings(&merchant).await?.is_none() {
                anyhow::bail!("merchant {merchant} has no notification endpoint (smartpay merchant notifications)");
            }
            let ctx = smartpay_server::notifications::Ctx::new(
                store.as_ref(),
                &secrets,
                cfg.mode,
                smartpay_domain::Millis::now(),
            );
            let overlap = overlap.unwrap_or(cfg.notification_secret_overlap_seconds);
            let secret = smartpay_server::notifications::rotate_secret(&ctx, &merchant, overlap)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("new signing secret (shown once): {}", secret.as_str());
            println!("the previous secrets keep signing for {overlap} s");
        }
        MerchantCmd::Origins(cmd) => match cmd {
            OriginsCmd::Add { merchant, origin } => {
                let Some(o) = smartpay_server::widget::normalize_origin(&origin) else {
                    anyhow::bail!("{origin:?} is not an origin: use scheme://host[:port], e.g. https://shop.example");
                };
                if store.merchant(&merchant).await?.is_none() {
                    anyhow::bail!("no merchant {merchant}");
                }
                store.add_origin(&merchant, &o, smartpay_domain::Millis::now()).await?;
                println!("{o} may embed the widget of {merchant}");
            }
            OriginsCmd::Remove { merchant, origin } => {
                let o = smartpay_server::widget::normalize_origin(&origin).unwrap_or(origin);
                store.remove_origin(&merchant, &o).await.with_context(|| format!("origin {o} of {merchant}"))?;
                println!("removed {o}");
            }
            OriginsCmd::List { merchant } => {
                for o in store.origins(&merchant).await? {
                    println!("{o}");
                }
            }
        },
        MerchantCmd::Enable { merchant } => {
            store
                .set_merchant_status(&merchant, MerchantStatus::Active)
                .await
                .with_context(|| format!("merchant {merchant}"))?;
            println!("enabled {merchant}");
        }
    }
    Ok(())
}

async fn credential(cfg: Config, cmd: CredentialCmd) -> anyhow::Result<()> {
    let (store, secrets) = smartpay_server::connect_store(&cfg).await?;
    match cmd {
        CredentialCmd::Add { merchant, kind, label, json } => {
            if store.merchant(&merchant).await?.is_none() {
                anyhow::bail!("no merchant {merchant}");
            }
            let kind = match kind {
                KindArg::Basic => CredentialKind::Basic,
                KindArg::Oauth => CredentialKind::OAuth,
            };
            let issued =
                smartpay_server::auth::add_credential(store.as_ref(), &secrets, &merchant, kind, &label).await?;
            let c = &issued.credential;
            if json {
                let v = match kind {
                    CredentialKind::Basic => {
                        serde_json::json!({"id": c.id, "merchantKey": merchant, "authenticationKey": issued.secret.as_str()})
                    }
                    CredentialKind::OAuth => {
                        serde_json::json!({"id": c.id, "merchantKey": merchant, "clientId": c.client_id, "clientSecret": issued.secret.as_str()})
                    }
                };
                println!("{v}");
            } else {
                println!("id                 {}", c.id);
                match kind {
                    CredentialKind::Basic => println!("authenticationKey  {}", issued.secret.as_str()),
                    CredentialKind::OAuth => {
                        println!("clientId           {}", c.client_id.as_deref().unwrap_or(""));
                        println!("clientSecret       {}", issued.secret.as_str());
                    }
                }
            }
        }
        CredentialCmd::List { merchant, json } => {
            let creds = store.credentials(&merchant).await?;
            if json {
                let list: Vec<_> = creds
                    .iter()
                    .map(|c| serde_json::json!({"id": c.id, "kind": c.kind.as_str(), "clientId": c.client_id, "label": c.label, "createdAt": c.created_at.to_iso8601(), "revokedAt": c.revoked_at.map(|r| r.to_iso8601())}))
                    .collect();
                println!("{}", serde_json::Value::from(list));
            } else {
                for c in creds {
                    let state = c.revoked_at.map_or("active".to_owned(), |r| format!("revoked {}", r.to_iso8601()));
                    println!(
                        "{}  {:<5}  {:<26}  {}  {}",
                        c.id,
                        c.kind.as_str(),
                        c.client_id.as_deref().unwrap_or("-"),
                        state,
                        c.label
                    );
                }
            }
        }
        CredentialCmd::Revoke { id } => {
            store
                .revoke_credential(&id, smartpay_domain::Millis::now())
                .await
                .with_context(|| format!("credential {id}"))?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

async fn keys(cfg: Config, cmd: KeysCmd) -> anyhow::Result<()> {
    if let KeysCmd::GenerateKek { out, components } = &cmd {
        match components {
            None => {
                let key = smartpay_vault::generate_key()?;
                smartpay_vault::write_key_file(out, &key)?;
                println!("vault key written to {} (mode 0600)", out.display());
            }
            Some(second) => {
                let (a, b) = smartpay_vault::generate_components()?;
                smartpay_vault::write_key_file(out, &a)?;
                smartpay_vault::write_key_file(second, &b)?;
                println!(
                    "vault key components written to {} and {} (mode 0600): neither alone reveals the key",
                    out.display(),
                    second.display()
                );
            }
        }
        return Ok(());
    }
    let (store, secrets) = smartpay_server::connect_store(&cfg).await?;
    match cmd {
        KeysCmd::GenerateKek { .. } => {}
        KeysCmd::RotateKek | KeysCmd::RotateDek => {
            let kind = if matches!(cmd, KeysCmd::RotateKek) {
                smartpay_store::RotationKind::Kek
            } else {
                smartpay_store::RotationKind::Dek
            };
            let ring = smartpay_server::vault::load_ring(&cfg, &secrets)?;
            let ring = smartpay_server::vault::check_ring(store.as_ref(), ring, smartpay_domain::Millis::now()).await?;
            let failpoints: Vec<String> = if cfg.mode == Mode::Sandbox {
                std::env::var("SMARTPAY_FAILPOINTS")
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .collect()
            } else {
                Vec::new()
            };
            let failpoint = |name: &str| {
                if failpoints.iter().any(|f| f == name) {
                    eprintln!("failpoint {name}: aborting");
                    std::process::abort();
                }
            };
            let mut bar = Bar::default();
            let done = smartpay_server::vault::rotate(
                store.as_ref(),
                &ring,
                kind,
                smartpay_domain::Millis::now,
                failpoint,
                &mut bar,
            )
            .await?;
            eprintln!();
            match kind {
                smartpay_store::RotationKind::Kek => println!(
                    "{done} stored options re-wrapped under key version {}; the previous version is retired and refused from now on: \
                     remove vault_previous_kek_file",
                    ring.current.id()
                ),
                smartpay_store::RotationKind::Dek => {
                    println!(
                        "{done} stored options re-encrypted under new data keys (key version {})",
                        ring.current.id()
                    )
                }
            }
        }
        KeysCmd::VaultVerify => {
            let ring = smartpay_server::vault::load_ring(&cfg, &secrets)?;
            let report = smartpay_server::vault::verify_all(store.as_ref(), &ring).await?;
            for (reference, why) in &report.failures {
                println!("{reference}  {why}");
            }
            for (kek, n) in &report.per_key {
                println!("{n} stored options under key version {kek}");
            }
            println!("{} stored options checked, {} did not open", report.checked, report.failures.len());
            if !report.failures.is_empty() {
                anyhow::bail!("stored options that do not open");
            }
        }
        KeysCmd::VaultStatus => {
            for k in store.vault_keys().await? {
                println!(
                    "{}  {}  since {}",
                    k.kek_id,
                    if k.retired { "retired" } else { "active" },
                    k.created_at.to_iso8601()
                );
            }
            for (kek, n) in store.options_per_key().await? {
                println!("{n} stored options under {kek}");
            }
            if let Some(r) = store.open_rotation().await? {
                println!(
                    "unfinished {} rotation {} → {}: {} done; run `smartpay keys rotate-{}` to resume",
                    r.kind.as_str(),
                    r.from_kek,
                    r.to_kek,
                    r.done,
                    r.kind.as_str().to_ascii_lowercase()
                );
            }
        }
        KeysCmd::Rotate => {
            let kid = smartpay_server::auth::rotate_signing_key(store.as_ref(), &secrets).await?;
            println!("new signing key {kid}; earlier keys verify until their tokens expire");
        }
        KeysCmd::List => {
            for k in store.signing_keys().await? {
                let state = k.retired_at.map_or("signing".to_owned(), |r| format!("retired {}", r.to_iso8601()));
                println!("{}  {}  {}  {}", k.kid, k.alg, k.created_at.to_iso8601(), state);
            }
        }
    }
    Ok(())
}

/// An API error as one line for the CLI: the rule a refused field broke.
fn describe(e: &smartpay_server::error::ApiError) -> String {
    match e {
        smartpay_server::error::ApiError::Invalid { problems, .. } => problems
            .iter()
            .map(|p| {
                let facts: Vec<String> = p
                    .context
                    .iter()
                    .map(|(k, f)| match f {
                        smartpay_domain::violation::Fact::Int(i) => format!("{k}={i}"),
                        smartpay_domain::violation::Fact::Text(t) => format!("{k}={t}"),
                        smartpay_domain::violation::Fact::List(l) => format!("{k}={}", l.join(",")),
                    })
                    .collect();
                format!("{}: {} {}", p.property.as_deref().unwrap_or("request"), p.code.as_str(), facts.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A progress bar on stderr for key rotations.
#[derive(Default)]
struct Bar {
    last: u64,
}

impl smartpay_server::vault::Progress for Bar {
    fn advance(&mut self, done: u64, total: u64) {
        let total = total.max(done).max(1);
        let filled = usize::try_from(done * 40 / total).unwrap_or(40);
        if done != self.last {
            self.last = done;
            eprint!("\r[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(40 - filled.min(40)));
        }
    }
}
