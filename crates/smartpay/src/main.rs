//! `smartpay`: runs the server and the operator commands.
//!
//! - `smartpay serve` — sandbox on 127.0.0.1:8080 with SQLite under ./smartpay-data/ by default.
//! - `smartpay merchant create|list|disable|enable` — merchants.
//! - `smartpay credential add|list|revoke` — API credentials (Basic keys, OAuth clients).
//! - `smartpay keys rotate|list` — token-signing keys.
//! - `smartpay payment chargeback` — operator actions on payments.
//! - `smartpay verify` — the money invariants over every stored payment.

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
    /// Run the sandbox acquirer as its own process (a fake card acquirer that survives the
    /// server's restarts); point the server at it with SMARTPAY_SANDBOX_ACQUIRER_URL and _KEY.
    SandboxAcquirer(AcquirerArgs),
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
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut cfg = Config::load(common.config.as_deref(), std::env::vars())?;
    if let Some(d) = &common.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = load_config(&cli.common)?;
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
        Command::SandboxAcquirer(args) => sandbox_acquirer(cfg, args).await,
    }
}

async fn payment(cfg: Config, cmd: PaymentCmd) -> anyhow::Result<()> {
    let (store, _) = smartpay_server::open_store(&cfg)?;
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
    let (store, _) = smartpay_server::open_store(&cfg)?;
    let report = smartpay_server::verify::verify_store(store.as_ref()).await?;
    for v in &report.violations {
        println!("{}  {}", v.transaction_id, v.problem);
    }
    println!("{} payments checked, {} violations", report.checked, report.violations.len());
    if report.violations.is_empty() { Ok(()) } else { anyhow::bail!("invariants violated") }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    smartpay_server::telemetry::init(cfg.log_format, &cfg.log_level);
    let (store, secrets) = smartpay_server::open_store(&cfg)?;
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
    running.run_until(shutdown_signal()).await
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn merchant(cfg: Config, cmd: MerchantCmd) -> anyhow::Result<()> {
    let (store, secrets) = smartpay_server::open_store(&cfg)?;
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
    let (store, secrets) = smartpay_server::open_store(&cfg)?;
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
    let (store, secrets) = smartpay_server::open_store(&cfg)?;
    match cmd {
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
