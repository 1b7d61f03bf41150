//! Load generator for SmartPay, compared in the same run with `../shared/bench/ceiling`.
//!
//! `smartpay-bench run` provisions a merchant with the `smartpay` binary, starts the server,
//! drives Create Checkout and Get Payment Status with many concurrent keep-alive clients
//! (half Basic, half Bearer), the whole checkout flow, then full captures and full refunds of
//! payments authorized beforehand for a second, manual-capture merchant; then it runs the same
//! Create and Status load against the ceiling server and prints throughput, p50/p99/p99.9
//! latency and the ratios. `--report FILE` writes the results as Markdown with a description of
//! the machine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
struct Args {
    /// The smartpay binary (release build).
    #[arg(long, default_value = "target/release/smartpay")]
    smartpay_bin: PathBuf,
    /// The ceiling binary (release build of ../shared/bench/ceiling).
    #[arg(long, default_value = "/tmp/ceiling-target/release/ceiling")]
    ceiling_bin: PathBuf,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// CPU list for the servers (taskset), e.g. "0"; empty for no pinning.
    #[arg(long, default_value = "")]
    server_cpus: String,
    /// Write a Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Only drive Create Checkout against an already running server at this base URL
    /// (for profiling); needs --auth and --merchant-key.
    #[arg(long)]
    load_only: Option<String>,
    #[arg(long, default_value = "")]
    auth: String,
    #[arg(long, default_value = "")]
    merchant_key: String,
    /// Payments authorized (not captured) before the capture phase, 4,000 per second of a
    /// phase by default; the capture and refund phases end early when they run out.
    #[arg(long)]
    prepared: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Status,
    /// Full captures (`POST /payment/capture`), each prepared payment once.
    Capture,
    /// Full refunds (`POST /payment/refund`), each captured payment once.
    Refund,
}

impl Phase {
    /// The modification endpoint, and the `paymentStatus` a successful answer carries.
    fn modification(self) -> Option<(&'static str, &'static str)> {
        match self {
            Phase::Capture => Some(("capture", "\"paymentStatus\":\"CAPTURED\"")),
            Phase::Refund => Some(("refund", "\"paymentStatus\":\"REFUNDED\"")),
            Phase::Create | Phase::Status => None,
        }
    }
}

/// Per-step latencies of the whole flow: create → card submit → status.
struct FlowOutcome {
    flows: usize,
    errors: usize,
    seconds: f64,
    steps: [Vec<u32>; 3],
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]) / 1000.0
}

/// `12/YY` of three years from now, so the approving test card never expires. The year is
/// counted in mean Gregorian years: off by at most a day around New Year, which December of
/// three years ahead absorbs.
fn card_expiry() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("12/{:02}", (1970 + secs / 31_556_952 + 3) % 100)
}

/// The approving test card as the card frame submits it, built once.
fn card() -> &'static str {
    static CARD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CARD.get_or_init(|| format!(r#"{{"number":"4111111111111111","expiry":"{}","cvc":"737"}}"#, card_expiry()))
}

/// Create Checkout: the new payment's `transactionId` and `checkoutToken`.
async fn create(client: &reqwest::Client, base: &str, auth: &str, body: &str) -> Option<(String, String)> {
    let r = client
        .post(format!("{base}/payment/creation"))
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v = r.json::<Value>().await.ok()?;
    Some((v["transactionId"].as_str()?.to_owned(), v["checkoutToken"].as_str()?.to_owned()))
}

/// The card frame's submission of the approving card; `report` prints why it failed.
async fn pay(client: &reqwest::Client, base: &str, token: &str, report: bool) -> bool {
    let paid = client
        .post(format!("{base}/widget/api/payments"))
        .header("Origin", base)
        .header("X-Checkout-Token", token)
        .header("Content-Type", "application/json")
        .body(card())
        .send()
        .await;
    match paid {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        Ok(r) => {
            if report {
                eprintln!("card submit answered {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            false
        }
        Err(e) => {
            if report {
                eprintln!("card submit failed: {e}");
            }
            false
        }
    }
}

/// Drives the integration guide's whole flow with the approving test card.
async fn drive_flow(base: &str, auths: &[String], body: &str, args: &Args) -> anyhow::Result<FlowOutcome> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).tcp_nodelay(true).build()?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (client, auth, base, body) =
            (client.clone(), auths[worker % auths.len()].clone(), base.to_owned(), body.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut steps: [Vec<u32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
            let (mut flows, mut errors) = (0usize, 0usize);
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let Some((id, token)) = create(&client, &base, &auth, &body).await else {
                    errors += 1;
                    continue;
                };
                let t1 = Instant::now();
                if !pay(&client, &base, &token, errors == 0).await {
                    errors += 1;
                    continue;
                }
                let t2 = Instant::now();
                let status =
                    client.get(format!("{base}/payment/status/{id}")).header("Authorization", &auth).send().await;
                let ok = match status {
                    Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|t| t.contains("\"CAPTURED\"")),
                    _ => false,
                };
                if !ok {
                    errors += 1;
                    continue;
                }
                let t3 = Instant::now();
                let us = |a: Instant, b: Instant| u32::try_from(b.duration_since(a).as_micros()).unwrap_or(u32::MAX);
                steps[0].push(us(t0, t1));
                steps[1].push(us(t1, t2));
                steps[2].push(us(t2, t3));
                flows += 1;
            }
            (steps, flows, errors)
        }));
    }
    let mut out = FlowOutcome { flows: 0, errors: 0, seconds: 0.0, steps: [Vec::new(), Vec::new(), Vec::new()] };
    for t in tasks {
        let (steps, flows, errors) = t.await?;
        for (all, s) in out.steps.iter_mut().zip(steps) {
            all.extend(s);
        }
        out.flows += flows;
        out.errors += errors;
    }
    out.seconds = started.elapsed().as_secs_f64();
    for s in out.steps.iter_mut() {
        s.sort_unstable();
    }
    Ok(out)
}

/// Creates and pays `count` checkouts (untimed): the `transactionId`s of those authorized.
/// For a manual-capture merchant they wait in `AUTHORIZATION_COMPLETED` for the capture phase.
async fn prepare(base: &str, auths: &[String], body: &str, count: usize, args: &Args) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).tcp_nodelay(true).build()?;
    let (claimed, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (client, auth, base, body) =
            (client.clone(), auths[worker % auths.len()].clone(), base.to_owned(), body.to_owned());
        let (claimed, failed) = (claimed.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut paid = Vec::new();
            // Gives up after as many failures as payments wanted: the server is not healthy.
            while claimed.fetch_add(1, Ordering::Relaxed) < count && failed.load(Ordering::Relaxed) < count {
                let ok = match create(&client, &base, &auth, &body).await {
                    Some((id, token)) => {
                        pay(&client, &base, &token, failed.load(Ordering::Relaxed) == 0).await.then_some(id)
                    }
                    None => None,
                };
                match ok {
                    Some(id) => paid.push(id),
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        claimed.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            paid
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for t in tasks {
        ids.extend(t.await?);
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("preparing payments: {failed} checkouts failed (retried)");
    }
    Ok(ids)
}

struct Outcome {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
    ids: Vec<String>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

fn body(merchant_key: &str) -> String {
    json!({
        "merchantKey": merchant_key,
        "payment": {"amount": 10.99, "currencyCode": "EUR", "description": "Purchase 1x product ABC"},
        "consumer": {"firstName": "Butcher", "lastName": "Hells", "emailAddress": "hells.butcher_001@mail.com"},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DE"}
    })
    .to_string()
}

/// Drives one phase with `args.concurrency` keep-alive clients for `args.duration` seconds.
/// `payload` is the checkout body for Create and the merchantKey the modifications name for
/// Capture and Refund; `ids` are the payments Status reads (round robin) and Capture and Refund
/// modify (each once: the phase ends early when they run out). `Outcome::ids` holds payments
/// created (at most 2,000) or modified (all of them).
async fn drive(
    base: &str,
    phase: Phase,
    auths: &[String],
    payload: &str,
    ids: &[String],
    args: &Args,
) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).tcp_nodelay(true).build()?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let next = Arc::new(AtomicUsize::new(0));
    let reported = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(ids.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let client = client.clone();
        let auth = auths[worker % auths.len()].clone();
        let base = base.to_owned();
        let payload = payload.to_owned();
        let (next, ids, reported) = (next.clone(), ids.clone(), reported.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(65_536);
            let mut kept = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut modified = None;
                let res = match phase {
                    Phase::Create => {
                        client
                            .post(format!("{base}/payment/creation"))
                            .header("Authorization", &auth)
                            .header("Content-Type", "application/json")
                            .body(payload.clone())
                            .send()
                            .await
                    }
                    Phase::Status => {
                        let id = &ids[next.fetch_add(1, Ordering::Relaxed) % ids.len()];
                        client.get(format!("{base}/payment/status/{id}")).header("Authorization", &auth).send().await
                    }
                    Phase::Capture | Phase::Refund => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(id), Some((op, _))) = (ids.get(i), phase.modification()) else { break };
                        modified = Some(id);
                        client
                            .post(format!("{base}/payment/{op}"))
                            .header("Authorization", &auth)
                            .header("Content-Type", "application/json")
                            .body(format!(
                                r#"{{"transactionId":"{id}","merchantKey":"{payload}","modificationId":"bench-{op}-{i}"}}"#
                            ))
                            .send()
                            .await
                    }
                };
                let bytes = match res {
                    Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                    // The first refused modification of the phase is shown, to tell why.
                    Ok(r) if phase.modification().is_some() && !reported.swap(true, Ordering::Relaxed) => {
                        eprintln!("a modification answered {}: {}", r.status(), r.text().await.unwrap_or_default());
                        None
                    }
                    _ => None,
                };
                // A 200 counts only with the status the modification leads to (a provider's
                // refusal is a 200 with a failed modification).
                let ok = bytes.filter(|b| {
                    phase.modification().is_none_or(|(_, want)| b.windows(want.len()).any(|w| w == want.as_bytes()))
                });
                let Some(bytes) = ok else {
                    errors += 1;
                    continue;
                };
                lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                if let Some(id) = modified {
                    kept.push(id.clone());
                } else if phase == Phase::Create
                    && kept.len() < 2000
                    && let Some(id) = serde_json::from_slice::<Value>(&bytes)
                        .ok()
                        .and_then(|v| v["transactionId"].as_str().map(str::to_owned))
                {
                    kept.push(id);
                }
            }
            (lat, kept, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut kept = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, k, e) = t.await?;
        latencies_us.extend(l);
        kept.extend(k);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Ok(Outcome { requests: latencies_us.len(), errors, seconds, latencies_us, ids: kept })
}

/// Creates a merchant with the `smartpay` CLI: its `--json` answer (keys and OAuth client).
fn merchant(bin: &PathBuf, data: &str, name: &str) -> anyhow::Result<Value> {
    let out = Command::new(bin).args(["--data-dir", data, "merchant", "create", "--name", name, "--json"]).output()?;
    if !out.status.success() {
        bail!("merchant create: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A merchant's `Authorization` values: Basic and a Bearer token from `/oauth2/token`.
async fn credentials(client: &reqwest::Client, base: &str, m: &Value) -> anyhow::Result<Vec<String>> {
    let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
    let token: Value = client
        .post(format!("{base}/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            text("clientId"),
            text("clientSecret")
        ))
        .send()
        .await?
        .json()
        .await?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            text("merchantKey"),
            text("authenticationKey")
        ))
    );
    Ok(vec![basic, format!("Bearer {}", token["access_token"].as_str().unwrap_or_default())])
}

/// A value of the Prometheus text `metrics`: the line starting with `name` (with its space).
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

fn spawn(cpus: &str, program: &PathBuf, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Child> {
    let mut cmd = if cpus.is_empty() {
        Command::new(program)
    } else {
        let mut c = Command::new("taskset");
        c.args(["-c", cpus]).arg(program);
        c
    };
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().with_context(|| format!("starting {}", program.display()))
}

async fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("nothing listens on {port}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0) / 1024 / 1024)
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} GiB RAM, Linux {}", kernel.trim())
}

fn line(name: &str, o: &Outcome) -> String {
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
        o.rps(),
        o.pct(0.50),
        o.pct(0.99),
        o.pct(0.999),
        o.requests,
        o.errors
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(base) = &args.load_only {
        let o =
            drive(base, Phase::Create, std::slice::from_ref(&args.auth), &body(&args.merchant_key), &[], &args).await?;
        println!("{}", line("Create Checkout", &o));
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("smartpay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let data = dir.to_string_lossy().to_string();

    // SmartPay: provision (a second merchant in manual capture mode for the capture and refund
    // phases), serve, tokens.
    let m = merchant(&args.smartpay_bin, &data, "Bench")?;
    let manual = merchant(&args.smartpay_bin, &data, "Bench manual capture")?;
    let manual_key = manual["merchantKey"].as_str().unwrap_or_default().to_owned();
    let out = Command::new(&args.smartpay_bin)
        .args(["--data-dir", &data, "merchant", "capture-mode", &manual_key, "manual"])
        .output()?;
    if !out.status.success() {
        bail!("merchant capture-mode: {}", String::from_utf8_lossy(&out.stderr));
    }
    let key = m["merchantKey"].as_str().unwrap_or_default().to_owned();
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port()?);
    let mut server = spawn(
        &args.server_cpus,
        &args.smartpay_bin,
        &["--data-dir", &data, "serve", "--listen", &listen],
        // The load comes from one client address: lift the card-testing velocity limits. The
        // sandbox settles captured payments after an hour, outside the run: settlement is not
        // a phase here, and earlier phases' settlements would otherwise run inside later ones.
        &[
            ("SMARTPAY_LOG_LEVEL", "warn"),
            ("SMARTPAY_IP_SUBMITS_PER_MINUTE", "100000000"),
            ("SMARTPAY_MERCHANT_SUBMITS_PER_MINUTE", "100000000"),
            ("SMARTPAY_SANDBOX_SETTLEMENT_DELAY_MS", "3600000"),
            ("SMARTPAY_ADMIN_LISTEN", &admin),
        ],
    )?;
    wait_port(port).await?;
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let auths = credentials(&client, &base, &m).await?;
    let manual_auths = credentials(&client, &base, &manual).await?;
    let b = body(&key);
    eprintln!("warming up SmartPay…");
    let warm = Args { duration: 2, ..args.clone() };
    drive(&base, Phase::Create, &auths, &b, &[], &warm).await?;
    eprintln!("SmartPay: Create Checkout for {} s with {} clients…", args.duration, args.concurrency);
    let sp_create = drive(&base, Phase::Create, &auths, &b, &[], &args).await?;
    let metrics = client.get(format!("http://{admin}/metrics")).send().await?.text().await?;
    let store_metric = |name: &str| metric(&metrics, name).unwrap_or(0.0);
    let (batches, jobs, commit_s) = (
        store_metric("smartpay_store_batch_size_count "),
        store_metric("smartpay_store_batch_size_sum "),
        store_metric("smartpay_store_commit_seconds_total "),
    );
    let store_line = format!(
        "SmartPay store: {jobs:.0} writes in {batches:.0} group commits (mean batch {:.1}, mean commit {:.2} ms)",
        jobs / batches.max(1.0),
        commit_s * 1000.0 / batches.max(1.0)
    );
    eprintln!("{store_line}");
    eprintln!("SmartPay: Get Payment Status…");
    if sp_create.ids.is_empty() {
        bail!("SmartPay created no checkout ({} errors)", sp_create.errors);
    }
    let sp_status = drive(&base, Phase::Status, &auths, "", &sp_create.ids, &args).await?;
    eprintln!("SmartPay: whole flow (create → card → status)…");
    let flow = drive_flow(&base, &auths, &b, &args).await?;
    let wanted =
        args.prepared.unwrap_or_else(|| usize::try_from(args.duration).unwrap_or(usize::MAX).saturating_mul(4000));
    eprintln!("SmartPay: authorizing {wanted} payments for the manual-capture merchant (untimed)…");
    let prepared = prepare(&base, &manual_auths, &body(&manual_key), wanted, &args).await?;
    let provider = |text: &str| {
        (metric(text, "smartpay_provider_captures_total "), metric(text, "smartpay_provider_refunds_total "))
    };
    let before = provider(&client.get(format!("http://{admin}/metrics")).send().await?.text().await?);
    eprintln!("SmartPay: full captures of {} authorized payments…", prepared.len());
    let captures = drive(&base, Phase::Capture, &manual_auths, &manual_key, &prepared, &args).await?;
    eprintln!("SmartPay: full refunds of {} captured payments…", captures.ids.len());
    let refunds = drive(&base, Phase::Refund, &manual_auths, &manual_key, &captures.ids, &args).await?;
    eprintln!("{}\n{}", line("SmartPay Capture (full)", &captures), line("SmartPay Refund (full)", &refunds));
    let after = provider(&client.get(format!("http://{admin}/metrics")).send().await?.text().await?);
    let _ = server.kill();
    let _ = server.wait();
    let verified = Command::new(&args.smartpay_bin).args(["--data-dir", &data, "verify"]).output()?;
    let verify_line = format!(
        "smartpay verify after the run: {} ({})",
        if verified.status.success() { "no violations" } else { "VIOLATIONS" },
        String::from_utf8_lossy(&verified.stdout).lines().last().unwrap_or("").trim()
    );
    eprintln!("{verify_line}");

    // The ceiling, same load. It can die at start-up when its connections race for the schema
    // ("database is locked" in its `open`, which sets no busy timeout before switching to WAL);
    // a start that does not answer is retried.
    let none = vec![String::from("none")];
    let mut attempt = 0;
    let (mut ceiling, cbase) = loop {
        attempt += 1;
        let cport = free_port()?;
        let mut child = spawn(&args.server_cpus, &args.ceiling_bin, &[&cport.to_string(), "sqlite"], &[])?;
        let cbase = format!("http://127.0.0.1:{cport}");
        if wait_port(cport).await.is_ok() && drive(&cbase, Phase::Create, &none, &b, &[], &warm).await?.requests > 0 {
            break (child, cbase);
        }
        let _ = child.kill();
        let _ = child.wait();
        if attempt == 10 {
            bail!("the ceiling server answered no request in ten starts");
        }
        eprintln!("the ceiling answered nothing; restarting it");
    };
    eprintln!("ceiling (sqlite): Create Checkout…");
    let c_create = drive(&cbase, Phase::Create, &none, &b, &[], &args).await?;
    eprintln!("ceiling (sqlite): Get Payment Status…");
    if c_create.ids.is_empty() {
        bail!("the ceiling created no checkout ({} errors)", c_create.errors);
    }
    let c_status = drive(&cbase, Phase::Status, &none, "", &c_create.ids, &args).await?;
    let _ = ceiling.kill();
    let _ = ceiling.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let header =
        "| run | req/s | p50 ms | p99 ms | p99.9 ms | requests | errors |\n|---|---:|---:|---:|---:|---:|---:|";
    let ratio_create = sp_create.rps() / c_create.rps();
    let ratio_status = sp_status.rps() / c_status.rps();
    let verdict = |r: f64| if r >= 0.5 { "meets the 50 % target" } else { "BELOW the 50 % target" };
    let report = format!(
        "Machine: {}\nLoad: {} concurrent keep-alive clients (half Basic, half Bearer for SmartPay), {} s per phase, server CPUs: {}\n\n{header}\n{}\n{}\n{}\n{}\n\n{store_line}\n\nCreate Checkout: SmartPay / ceiling = {:.2} ({})\nGet Payment Status: SmartPay / ceiling = {:.2} ({})\n",
        machine(),
        args.concurrency,
        args.duration,
        if args.server_cpus.is_empty() { "all" } else { &args.server_cpus },
        line("SmartPay Create Checkout", &sp_create),
        line("ceiling (sqlite) create", &c_create),
        line("SmartPay Get Payment Status", &sp_status),
        line("ceiling (sqlite) status", &c_status),
        ratio_create,
        verdict(ratio_create),
        ratio_status,
        verdict(ratio_status),
    );
    let flow_rate = flow.flows as f64 / flow.seconds;
    let report = format!(
        "{report}\nWhole flow (create → card submit with 4111 1111 1111 1111, auto-capture → status): {flow_rate:.0} flows/s \
         ({} flows, {} errors; target 1000 flows/s: {})\n\n| step | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|\n\
         | Create Checkout | {:.2} | {:.2} | {:.2} |\n| card submit (authorize + capture at the sandbox acquirer) | {:.2} | {:.2} | {:.2} |\n\
         | Get Payment Status | {:.2} | {:.2} | {:.2} |\n",
        flow.flows,
        flow.errors,
        if flow_rate >= 1000.0 { "met" } else { "NOT met" },
        pct(&flow.steps[0], 0.5),
        pct(&flow.steps[0], 0.99),
        pct(&flow.steps[0], 0.999),
        pct(&flow.steps[1], 0.5),
        pct(&flow.steps[1], 0.99),
        pct(&flow.steps[1], 0.999),
        pct(&flow.steps[2], 0.5),
        pct(&flow.steps[2], 0.99),
        pct(&flow.steps[2], 0.999),
    );
    let modification_line = |name: &str, o: &Outcome, offered: usize, calls: Option<(f64, f64)>| {
        let rate = o.rps();
        let calls = calls.map_or_else(
            || "provider calls not in /metrics".to_owned(),
            |(a, b)| format!("{:.0} provider calls", b - a),
        );
        format!(
            "{name}: {rate:.0}/s, {} errors, {} of {offered} payments in {:.1} s{}, {calls} \
             (target 2,000/s with 0 errors: {})\n",
            o.errors,
            o.requests,
            o.seconds,
            if o.requests + o.errors >= offered { ", ended early: all done" } else { "" },
            if rate >= 2000.0 && o.errors == 0 { "met" } else { "NOT met" },
        )
    };
    let report = format!(
        "{report}\nModifications through the sandbox acquirer ({} clients, merchant in manual capture mode, {} payments \
         authorized beforehand with 4111 1111 1111 1111; any answer but 200 with the expected paymentStatus is an error):\n\n\
         {header}\n{}\n{}\n\n{}{}\n{verify_line}\n",
        args.concurrency,
        prepared.len(),
        line("SmartPay Capture (full)", &captures),
        line("SmartPay Refund (full)", &refunds),
        modification_line("Capture", &captures, prepared.len(), before.0.zip(after.0)),
        modification_line("Refund", &refunds, captures.ids.len(), before.1.zip(after.1)),
    );
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
