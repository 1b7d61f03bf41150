//! SmartPay's benchmark, compared in the same run with a ceiling (`scripts/bench.sh` runs it).
//!
//! `--store sqlite` (default): provisions merchants with the `smartpay` CLI, starts one server on
//! SQLite, and measures with **wrk** (`scripts/bench/create.lua`, `status.lua`): a 2 s warm-up,
//! Create Checkout (the write burst), Get Payment Status immediately after over the ids the burst
//! created, then — once the server is idle (its WAL checkpointed) — Get Payment Status again on
//! the quiet store. Then the Rust generator (reqwest) drives the whole checkout flow, and full
//! captures and full refunds of payments authorized beforehand for a manual-capture merchant,
//! and `smartpay verify` checks the store. The ceiling (`../shared/bench/ceiling` in sqlite mode)
//! gets the same wrk sequence. Around every wrk phase the bench records the WAL's state (from
//! the `-shm` wal-index), the CPU of the servers (by thread), of PostgreSQL, of wrk and of the
//! rest of the machine, and a half-second timeline, to tell why Status changes after a burst
//! and whether something else was using the cores.
//!
//! `--store postgres --nodes N`: the database at `--database-url` (fresh; `scripts/bench.sh`
//! creates and drops it) is migrated with `smartpay migrate`, a merchant is provisioned with the
//! CLI, N `smartpay serve` nodes start with their own data directories and ports and one master
//! key and public URL, and the same wrk sequence runs with one wrk per node in parallel (threads
//! and connections split, rates summed), then the whole flow spread over the nodes. The ceiling
//! is pgbench on the same server, in the database at `--pgbench-url`: single-row inserts of a
//! checkout-shaped row and `-S` (select-only), with the same client count and `-j 2`.
//!
//! Both print throughput, p50/p99/p99.9 latency, errors, the machine and the ratios with their
//! targets; `--report FILE` writes the same as Markdown. `--load-only URL` only drives Create
//! Checkout with the Rust generator against a running server (for profiling).

mod generator;
mod pgbench;
mod probe;
mod report;
mod wrk;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::Value;

use generator::{Phase, Target, pct};
use probe::Wal;
use report::{Row, met, ratio_line, table};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Store {
    Sqlite,
    Postgres,
}

#[derive(Parser, Clone)]
struct Args {
    /// The smartpay binary (release build).
    #[arg(long, default_value = "target/release/smartpay")]
    smartpay_bin: PathBuf,
    /// The ceiling binary (release build of ../shared/bench/ceiling), for --store sqlite.
    #[arg(long, default_value = "/tmp/ceiling-target/release/ceiling")]
    ceiling_bin: PathBuf,
    /// The directory of the wrk scripts (create.lua, status.lua, common.lua).
    #[arg(long, default_value = "scripts/bench")]
    scripts: PathBuf,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections (wrk), clients (Rust generator) and pgbench clients, in total.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// wrk threads in total (split over the nodes, at least one per node).
    #[arg(long, default_value_t = 2)]
    wrk_threads: usize,
    /// CPU list for the servers (taskset), e.g. "0"; empty for no pinning.
    #[arg(long, default_value = "")]
    server_cpus: String,
    /// Write a Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The store SmartPay runs on; the ceiling follows (ceiling server or pgbench).
    #[arg(long, value_enum, default_value = "sqlite")]
    store: Store,
    /// SmartPay nodes (PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// An empty PostgreSQL database for SmartPay (--store postgres).
    #[arg(long)]
    database_url: Option<String>,
    /// Another empty database on the same server, for pgbench (--store postgres).
    #[arg(long)]
    pgbench_url: Option<String>,
    /// The longest wait for the servers to go quiet before the quiet Status phase, in seconds.
    #[arg(long, default_value_t = 30)]
    quiet_max: u64,
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
    /// Keep what each server process writes to stderr (its log) in DIR/<name>.log instead of
    /// discarding it; SMARTPAY_LOG_LEVEL stays warn.
    #[arg(long)]
    server_logs: Option<PathBuf>,
    /// `worker_threads` of each PostgreSQL-backed node (default: the machine's cores divided
    /// by --nodes, at least 1: the nodes share the machine, as several processes on one host
    /// should, docs/operations.md).
    #[arg(long)]
    node_threads: Option<usize>,
}

impl Args {
    fn phase(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    fn wrk(&self) -> wrk::Settings {
        wrk::Settings { threads: self.wrk_threads, connections: self.concurrency, duration_s: self.duration }
    }
}

/// Child processes killed (and reaped) when dropped, also when the run fails.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }

    fn stop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(run: &Args, name: &str, program: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Child> {
    let cpus = &run.server_cpus;
    let mut cmd = if cpus.is_empty() {
        Command::new(program)
    } else {
        // taskset execs the program: the pid stays the server's.
        let mut c = Command::new("taskset");
        c.args(["-c", cpus]).arg(program);
        c
    };
    let stderr = match &run.server_logs {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{name}.log"));
            Stdio::from(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Stdio::null(),
    };
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().with_context(|| format!("starting {}", program.display()))
}

async fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..1500 {
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

/// The `smartpay` CLI with `envs`: its standard output, or the failure with its standard error.
fn cli(bin: &Path, data: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir").arg(data).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().with_context(|| format!("running smartpay {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("smartpay {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a merchant with the CLI: its `--json` answer (keys and OAuth client).
fn merchant(bin: &Path, data: &Path, name: &str, envs: &[(&str, &str)]) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&cli(bin, data, &["merchant", "create", "--name", name, "--json"], envs)?)?)
}

/// A value of the Prometheus text `metrics`: the line starting with `name` (with its space).
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

async fn metrics(client: &reqwest::Client, admin: &str) -> String {
    match client.get(format!("http://{admin}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The environment every `smartpay serve` of the bench gets. The load comes from one client
/// address: the card-testing velocity limits are lifted. The sandbox settles captured payments
/// after an hour, outside the run: settlement is not a phase here, and earlier phases'
/// settlements would otherwise run inside later ones.
const SERVE_ENV: &[(&str, &str)] = &[
    ("SMARTPAY_LOG_LEVEL", "warn"),
    ("SMARTPAY_IP_SUBMITS_PER_MINUTE", "100000000"),
    ("SMARTPAY_MERCHANT_SUBMITS_PER_MINUTE", "100000000"),
    ("SMARTPAY_SANDBOX_SETTLEMENT_DELAY_MS", "3600000"),
];

/// A server under test: its nodes' base URLs, the Authorization values wrk sends, its
/// processes, and where to look at its store.
struct Deployment {
    label: String,
    tag: &'static str,
    bases: Vec<String>,
    auths: Vec<String>,
    pids: Vec<u32>,
    /// The SQLite database whose WAL is watched.
    sqlite: Option<PathBuf>,
    /// Whether the machine's PostgreSQL processes belong to it (quiet detection, CPU).
    postgres: bool,
}

impl Deployment {
    /// The Authorization values node `i`'s wrk sends (rotated, so that with one thread per node
    /// not every node gets the same one).
    fn auths_for(&self, i: usize) -> Vec<String> {
        let mut a = self.auths.clone();
        if !a.is_empty() {
            let n = i % a.len();
            a.rotate_left(n);
        }
        a
    }

    fn watched_pids(&self) -> Vec<u32> {
        let mut p = self.pids.clone();
        if self.postgres {
            p.extend(probe::postgres_pids());
        }
        p
    }
}

/// Every half second of a phase: the servers' CPU (cores busy) and, on SQLite, the WAL frames
/// not checkpointed yet.
type Timeline = Vec<(f64, Option<u32>)>;

/// The store and the servers' CPU around one phase.
struct Probe {
    wal_start: Option<Wal>,
    wal_end: Option<Wal>,
    server_cpu: f64,
    postgres_cpu: Option<f64>,
    /// The whole machine's busy and I/O-wait seconds (all cores).
    machine_busy: f64,
    /// wrk's CPU seconds, and what the rest of the machine used besides the servers, wrk and
    /// this process (someone else's load, the kernel's writeback threads).
    wrk_cpu: f64,
    other_cpu: f64,
    iowait: f64,
    threads: Vec<(String, f64)>,
    /// Every half second: the servers' CPU (cores busy) and, on SQLite, the WAL frames not
    /// checkpointed yet.
    timeline: Timeline,
    /// Whether rustc ran during the phase (someone compiling on the same cores).
    compiling: bool,
}

struct ProbeStart {
    wal: Option<Wal>,
    cpu: f64,
    pg: f64,
    machine: (f64, f64),
    me: (f64, f64),
    threads: BTreeMap<String, f64>,
    stop: Arc<AtomicBool>,
    /// The timeline, and whether rustc was seen.
    sampler: tokio::task::JoinHandle<(Timeline, bool)>,
}

fn wal_of(d: &Deployment) -> Option<Wal> {
    d.sqlite.as_deref().and_then(|db| Wal::read(&probe::shm_of(db)))
}

fn probe_start(d: &Deployment) -> ProbeStart {
    let stop = Arc::new(AtomicBool::new(false));
    let (pids, shm, halt) = (d.watched_pids(), d.sqlite.as_deref().map(probe::shm_of), stop.clone());
    let sampler = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut compiling = probe::compiling();
        let mut last = probe::cpu_seconds(&pids);
        while !halt.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = probe::cpu_seconds(&pids);
            let pending = shm.as_deref().and_then(Wal::read).map(|w| w.frames.saturating_sub(w.backfilled));
            out.push(((now - last) / 0.5, pending));
            last = now;
            compiling |= probe::compiling();
        }
        (out, compiling)
    });
    ProbeStart {
        wal: wal_of(d),
        cpu: probe::cpu_seconds(&d.pids),
        pg: if d.postgres { probe::cpu_seconds(&probe::postgres_pids()) } else { 0.0 },
        machine: probe::machine_seconds(),
        me: probe::self_seconds(),
        threads: d.pids.first().map(|p| probe::thread_seconds(*p)).unwrap_or_default(),
        stop,
        sampler,
    }
}

async fn probe_end(d: &Deployment, s: ProbeStart) -> Probe {
    let threads = d.pids.first().map(|p| probe::thread_seconds(*p)).unwrap_or_default();
    let machine = probe::machine_seconds();
    let me = probe::self_seconds();
    let cpu = probe::cpu_seconds(&d.pids);
    let pg = d.postgres.then(|| probe::cpu_seconds(&probe::postgres_pids()) - s.pg);
    s.stop.store(true, Ordering::Relaxed);
    let (timeline, compiling) = s.sampler.await.unwrap_or_default();
    let (server_cpu, machine_busy, wrk_cpu) = (cpu - s.cpu, machine.0 - s.machine.0, me.1 - s.me.1);
    Probe {
        other_cpu: machine_busy - server_cpu - pg.unwrap_or(0.0) - wrk_cpu - (me.0 - s.me.0),
        wrk_cpu,
        wal_start: s.wal,
        wal_end: wal_of(d),
        server_cpu,
        postgres_cpu: pg,
        machine_busy,
        iowait: machine.1 - s.machine.1,
        threads: probe::busiest(&s.threads, &threads, 4),
        timeline,
        compiling,
    }
}

/// Create Checkout (the write burst), Status right after it, Status on the quiet store.
struct CreateStatus {
    create: Row,
    after: Row,
    quiet: Row,
    ids: usize,
    waited: Duration,
    went_quiet: bool,
    probe_create: Probe,
    probe_after: Probe,
    probe_quiet: Probe,
}

/// The wrk sequence every server gets: warm-up, Create Checkout (the burst), Get Payment Status
/// immediately after it over the ids the burst created, wait until the servers are idle, Get
/// Payment Status again.
async fn create_and_status(d: &Deployment, body_file: &Path, dir: &Path, args: &Args) -> anyhow::Result<CreateStatus> {
    let create = wrk::script(&args.scripts, "create.lua")?;
    let status = wrk::script(&args.scripts, "status.lua")?;
    let settings = args.wrk();
    let n = d.bases.len();
    let body = body_file.to_string_lossy().into_owned();
    let create_args = |out: &dyn Fn(usize) -> String| {
        (0..n).map(|i| [vec![body.clone(), out(i)], d.auths_for(i)].concat()).collect::<Vec<_>>()
    };
    let (threads, connections) = settings.per_node(n);
    let each = if n > 1 { format!(" each of {n} wrk") } else { String::new() };
    let label = &d.label;

    eprintln!("{label}: warm-up (wrk, Create Checkout, 2 s)…");
    let warm = wrk::Settings { duration_s: 2, ..settings };
    wrk::run("warm-up", &create, &d.bases, create_args(&|_| "-".into()), warm).await?;

    eprintln!(
        "{label}: Create Checkout (wrk, {threads} threads and {connections} connections{each}, {} s)…",
        args.duration
    );
    let id_file = |i: usize| dir.join(format!("ids-{}-{i}.txt", d.tag));
    let start = probe_start(d);
    let create_row = wrk::run(
        "Create Checkout",
        &create,
        &d.bases,
        create_args(&|i| id_file(i).to_string_lossy().into_owned()),
        settings,
    )
    .await?;
    let probe_create = probe_end(d, start).await;
    let mut ids = String::new();
    for i in 0..n {
        ids.push_str(
            &std::fs::read_to_string(id_file(i)).with_context(|| format!("reading {}", id_file(i).display()))?,
        );
    }
    let count = ids.lines().filter(|l| !l.is_empty()).count();
    if count == 0 {
        bail!("{label} created no checkout ({} errors)", create_row.errors);
    }
    let ids_path = dir.join(format!("ids-{}.txt", d.tag));
    std::fs::write(&ids_path, ids)?;
    let ids_arg = ids_path.to_string_lossy().into_owned();
    let status_args = || (0..n).map(|i| [vec![ids_arg.clone()], d.auths_for(i)].concat()).collect::<Vec<_>>();

    eprintln!("{label}: Get Payment Status right after the burst (wrk, {count} ids)…");
    let start = probe_start(d);
    let after =
        wrk::run("Get Payment Status, right after the burst", &status, &d.bases, status_args(), settings).await?;
    let probe_after = probe_end(d, start).await;

    eprintln!("{label}: waiting until the servers are idle…");
    let (waited, went_quiet) = probe::wait_quiet(|| d.watched_pids(), Duration::from_secs(args.quiet_max)).await;
    eprintln!(
        "{label}: Get Payment Status on the quiet store ({} after {:.1} s)…",
        if went_quiet { "idle" } else { "NOT idle" },
        waited.as_secs_f64()
    );
    let start = probe_start(d);
    let quiet = wrk::run("Get Payment Status, quiet store", &status, &d.bases, status_args(), settings).await?;
    let probe_quiet = probe_end(d, start).await;
    for r in [&create_row, &after, &quiet] {
        eprintln!("{}", report::line(&r.named(format!("{label} {}", r.name))));
    }
    Ok(CreateStatus {
        create: create_row,
        after,
        quiet,
        ids: count,
        waited,
        went_quiet,
        probe_create,
        probe_after,
        probe_quiet,
    })
}

/// The table of what the store and the servers did during the wrk phases.
fn probe_table(runs: &[(&str, &CreateStatus)]) -> String {
    let pg = runs.iter().any(|(_, c)| c.probe_after.postgres_cpu.is_some());
    let mut s = format!(
        "| server | phase | WAL at start | WAL at end | server CPU s |{} CPU µs per request | wrk CPU s | other \
         CPU s | machine busy s | I/O wait s | rustc running | busiest threads of the (first) server process, CPU \
         s |\n|---|---|---|---|---:|{}---:|---:|---:|---:|---:|---|---|",
        if pg { " PostgreSQL CPU s |" } else { "" },
        if pg { "---:|" } else { "" }
    );
    let mut timelines = String::new();
    for (name, c) in runs {
        for (phase, p, row) in [
            ("Create (burst)", &c.probe_create, &c.create),
            ("Status after the burst", &c.probe_after, &c.after),
            ("Status, quiet", &c.probe_quiet, &c.quiet),
        ] {
            // The servers' CPU (and PostgreSQL's) per answered request.
            let per_request = (p.server_cpu + p.postgres_cpu.unwrap_or(0.0)) * 1e6 / row.requests.max(1) as f64;
            let threads = p.threads.iter().map(|(t, v)| format!("{t} {v:.2}")).collect::<Vec<_>>().join(", ");
            let pg_cell = p.postgres_cpu.map_or(String::new(), |v| format!(" {v:.2} |"));
            let _ = write!(
                s,
                "\n| {name} | {phase} | {} | {} | {:.2} |{pg_cell} {per_request:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | \
                 {threads} |",
                Wal::describe(p.wal_start),
                Wal::describe(p.wal_end),
                p.server_cpu,
                p.wrk_cpu,
                p.other_cpu,
                p.machine_busy,
                p.iowait,
                if p.compiling { "YES" } else { "no" },
            );
            if phase != "Create (burst)" {
                let cores = p.timeline.iter().map(|(c, _)| format!("{c:.1}")).collect::<Vec<_>>().join(" ");
                let wal = p
                    .timeline
                    .iter()
                    .map(|(_, w)| w.map_or_else(|| "-".to_owned(), |w| w.to_string()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let wal = if p.timeline.iter().any(|(_, w)| w.is_some()) {
                    format!("; WAL frames not checkpointed: {wal}")
                } else {
                    String::new()
                };
                let _ = writeln!(timelines, "- {name}, {phase}, every 0.5 s — cores busy: {cores}{wal}");
            }
        }
    }
    format!("{s}\n\n{}", timelines.trim_end())
}

fn flow_section(flow: &generator::FlowOutcome, concurrency: usize) -> String {
    let rate = flow.flows as f64 / flow.seconds;
    let step = |i: usize| {
        format!(
            "{:.2} | {:.2} | {:.2}",
            pct(&flow.steps[i], 0.5),
            pct(&flow.steps[i], 0.99),
            pct(&flow.steps[i], 0.999)
        )
    };
    format!(
        "Whole flow (Rust generator, {concurrency} clients; create → card submit with 4111 1111 1111 1111, auto-capture → \
         status): {rate:.0} flows/s ({} flows, {} errors; target 1000 flows/s: {})\n\n\
         | step | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|\n\
         | Create Checkout | {} |\n| card submit (authorize + capture at the sandbox acquirer) | {} |\n\
         | Get Payment Status | {} |\n",
        flow.flows,
        flow.errors,
        met(rate >= 1000.0),
        step(0),
        step(1),
        step(2),
    )
}

fn header(args: &Args, store: &str, extra: &str, start_compiling: bool) -> String {
    let (threads, connections) = args.wrk().per_node(args.nodes.max(1));
    let per =
        if args.nodes > 1 { format!(" per wrk, one wrk per node ({} in all)", args.nodes) } else { String::new() };
    format!(
        "Machine: {}{extra}\nBuild: {}; rustc running at the start of the run: {}, at its end: {}\n\
         Store: {store}\nLoad: {} for Create Checkout and Get Payment Status, {threads} threads and {connections} \
         connections{per}, {} s per phase (scripts/bench/create.lua, status.lua; Authorization Basic and Bearer on \
         alternate threads for SmartPay); the Rust generator (reqwest, {} clients) for the multi-step phases. \
         Server CPUs: {}.\n",
        probe::machine(),
        probe::build(),
        if start_compiling { "yes" } else { "no" },
        if probe::compiling() { "yes" } else { "no" },
        wrk::version(),
        args.duration,
        args.concurrency,
        if args.server_cpus.is_empty() { "all" } else { &args.server_cpus },
    )
}

fn sequence_note(runs: &[(&str, &CreateStatus)]) -> String {
    let waits = runs
        .iter()
        .map(|(n, c)| {
            format!("{n} {:.1} s{}", c.waited.as_secs_f64(), if c.went_quiet { "" } else { " (still busy: gave up)" })
        })
        .collect::<Vec<_>>()
        .join(", ");
    let ids = runs.iter().map(|(n, c)| format!("{n} {}", c.ids)).collect::<Vec<_>>().join(", ");
    format!(
        "Sequence, for every server alike: 2 s warm-up of creates; Create Checkout (the write burst); Get Payment \
         Status immediately after it, cycling over ids the burst created ({ids}); a wait until the servers used less \
         than 3 % of a core for a second (WAL checkpoints, PostgreSQL background work done: {waits}); Get Payment \
         Status again on the quiet store.\n"
    )
}

async fn run_sqlite(args: &Args, dir: &Path, start_compiling: bool) -> anyhow::Result<String> {
    let data = dir.join("data");
    let bin = &args.smartpay_bin;
    // A second merchant in manual capture mode for the capture and refund phases.
    let m = merchant(bin, &data, "Bench", &[])?;
    let manual = merchant(bin, &data, "Bench manual capture", &[])?;
    let manual_key = manual["merchantKey"].as_str().unwrap_or_default().to_owned();
    cli(bin, &data, &["merchant", "capture-mode", &manual_key, "manual"], &[])?;
    let key = m["merchantKey"].as_str().unwrap_or_default().to_owned();
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", free_port()?);
    let data_arg = data.to_string_lossy().into_owned();
    let envs = [SERVE_ENV, &[("SMARTPAY_ADMIN_LISTEN", admin.as_str())]].concat();
    let mut server = Children::default();
    server.0.push(spawn(args, "smartpay", bin, &["--data-dir", &data_arg, "serve", "--listen", &listen], &envs)?);
    wait_port(port).await?;
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let target = Target {
        bases: vec![base.clone()],
        auths: generator::credentials(&client, &base, &m).await?,
        origin: base.clone(),
    };
    let manual_target = Target { auths: generator::credentials(&client, &base, &manual).await?, ..target.clone() };
    let b = generator::body(&key);
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &b)?;

    let sp = Deployment {
        label: "SmartPay".into(),
        tag: "smartpay",
        bases: target.bases.clone(),
        auths: target.auths.clone(),
        pids: server.pids(),
        sqlite: Some(data.join("smartpay.db")),
        postgres: false,
    };
    let sp_cs = create_and_status(&sp, &body_file, dir, args).await?;
    let m = metrics(&client, &admin).await;
    let store_metric = |name: &str| metric(&m, name).unwrap_or(0.0);
    let (batches, jobs, commit_s) = (
        store_metric("smartpay_store_batch_size_count "),
        store_metric("smartpay_store_batch_size_sum "),
        // A summary's `_sum` since the metrics facade (dd7393b), a `_total` counter before.
        metric(&m, "smartpay_store_commit_seconds_sum ")
            .or_else(|| metric(&m, "smartpay_store_commit_seconds_total "))
            .unwrap_or(0.0),
    );
    let store_line = format!(
        "SmartPay store over the run so far: {jobs:.0} writes in {batches:.0} group commits (mean batch {:.1}, mean \
         commit {:.2} ms)",
        jobs / batches.max(1.0),
        commit_s * 1000.0 / batches.max(1.0)
    );
    eprintln!("{store_line}");

    eprintln!("SmartPay: whole flow (Rust generator: create → card → status)…");
    let flow = generator::drive_flow(&target, &b, args.concurrency, args.phase()).await?;
    let wanted =
        args.prepared.unwrap_or_else(|| usize::try_from(args.duration).unwrap_or(usize::MAX).saturating_mul(4000));
    eprintln!("SmartPay: authorizing {wanted} payments for the manual-capture merchant (untimed)…");
    let prepared = generator::prepare(&manual_target, &generator::body(&manual_key), wanted, args.concurrency).await?;
    let provider = |text: &str| {
        (metric(text, "smartpay_provider_captures_total "), metric(text, "smartpay_provider_refunds_total "))
    };
    let before = provider(&metrics(&client, &admin).await);
    eprintln!("SmartPay: full captures of {} authorized payments…", prepared.len());
    let captures =
        generator::drive(&manual_target, Phase::Capture, &manual_key, &prepared, args.concurrency, args.phase())
            .await?;
    eprintln!("SmartPay: full refunds of {} captured payments…", captures.ids.len());
    let refunds =
        generator::drive(&manual_target, Phase::Refund, &manual_key, &captures.ids, args.concurrency, args.phase())
            .await?;
    let (cap_row, ref_row) = (captures.row("SmartPay Capture (full)"), refunds.row("SmartPay Refund (full)"));
    eprintln!("{}\n{}", report::line(&cap_row), report::line(&ref_row));
    let after = provider(&metrics(&client, &admin).await);
    server.stop();
    let verify_line = verify(bin, &data, &[])?;

    // The ceiling, same sequence. It can die at start-up when its connections race for the
    // schema; a start that does not answer a create is retried.
    let mut ceiling = Children::default();
    let mut attempt = 0;
    let (cbase, cport) = loop {
        attempt += 1;
        let cport = free_port()?;
        ceiling.0.push(spawn(args, "ceiling", &args.ceiling_bin, &[&cport.to_string(), "sqlite"], &[])?);
        let cbase = format!("http://127.0.0.1:{cport}");
        let answered = wait_port(cport).await.is_ok()
            && client
                .post(format!("{cbase}/payment/creation"))
                .header("Content-Type", "application/json")
                .body(b.clone())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
        if answered {
            break (cbase, cport);
        }
        ceiling.stop();
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("ceiling-{cport}")));
        if attempt == 10 {
            bail!("the ceiling server answered no request in ten starts");
        }
        eprintln!("the ceiling answered nothing; restarting it");
    };
    // The ceiling keeps its database in $TMPDIR/ceiling-<port>.
    let ceiling_dir = std::env::temp_dir().join(format!("ceiling-{cport}"));
    let c = Deployment {
        label: "ceiling (sqlite)".into(),
        tag: "ceiling",
        bases: vec![cbase],
        auths: Vec::new(),
        pids: ceiling.pids(),
        sqlite: Some(ceiling_dir.join("ceiling.db")),
        postgres: false,
    };
    let c_cs = create_and_status(&c, &body_file, dir, args).await;
    ceiling.stop();
    let _ = std::fs::remove_dir_all(&ceiling_dir);
    let c_cs = c_cs?;

    let rows = [
        sp_cs.create.named("SmartPay Create Checkout"),
        c_cs.create.named("ceiling (sqlite) create"),
        sp_cs.after.named("SmartPay Get Payment Status, right after the burst"),
        c_cs.after.named("ceiling (sqlite) status, right after the burst"),
        sp_cs.quiet.named("SmartPay Get Payment Status, quiet store"),
        c_cs.quiet.named("ceiling (sqlite) status, quiet store"),
    ];
    let (create_line, _) = ratio_line("Create Checkout, SmartPay / ceiling", &sp_cs.create, &c_cs.create, Some(0.8));
    let (after_line, _) = ratio_line(
        "Get Payment Status right after a write burst, SmartPay / ceiling",
        &sp_cs.after,
        &c_cs.after,
        Some(0.7),
    );
    let (quiet_line, _) = ratio_line(
        "Get Payment Status on a quiet store, SmartPay / ceiling (no target)",
        &sp_cs.quiet,
        &c_cs.quiet,
        None,
    );
    let drop = |cs: &CreateStatus| cs.after.rps / cs.quiet.rps.max(1e-9);
    let runs = [("SmartPay", &sp_cs), ("ceiling", &c_cs)];
    let mut out = header(args, "SQLite (WAL, synchronous=FULL) for both", "", start_compiling);
    let _ = write!(
        out,
        "\n{}\n{}\n\n{create_line}\n{after_line}\n{quiet_line}\nStatus right after the burst / on the quiet store: \
         SmartPay {:.2}, ceiling {:.2}\n\nThe store and the servers' CPU during the wrk phases (WAL frames are 4 KiB \
         pages; from the wal-index in the -shm file):\n\n{}\n\n{store_line}\n",
        sequence_note(&runs),
        table(&rows.iter().collect::<Vec<_>>()),
        drop(&sp_cs),
        drop(&c_cs),
        probe_table(&runs),
    );
    let _ = write!(out, "\n{}", flow_section(&flow, args.concurrency));
    let modification_line = |name: &str, o: &generator::Outcome, offered: usize, calls: Option<(f64, f64)>| {
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
            met(rate >= 2000.0 && o.errors == 0),
        )
    };
    let _ = write!(
        out,
        "\nModifications through the sandbox acquirer (Rust generator, {} clients, merchant in manual capture mode, \
         {} payments authorized beforehand with 4111 1111 1111 1111; any answer but 200 with the expected \
         paymentStatus is an error):\n\n{}\n\n{}{}\n{verify_line}\n",
        args.concurrency,
        prepared.len(),
        table(&[&cap_row, &ref_row]),
        modification_line("Capture", &captures, prepared.len(), before.0.zip(after.0)),
        modification_line("Refund", &refunds, captures.ids.len(), before.1.zip(after.1)),
    );
    Ok(out)
}

/// `smartpay verify`'s verdict as a line of the report.
fn verify(bin: &Path, data: &Path, envs: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir").arg(data).arg("verify");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let verified = cmd.output()?;
    let line = format!(
        "smartpay verify after the run: {} ({})",
        if verified.status.success() { "no violations" } else { "VIOLATIONS" },
        String::from_utf8_lossy(&verified.stdout).lines().last().unwrap_or("").trim()
    );
    eprintln!("{line}");
    Ok(line)
}

/// A fresh master key file (base64url of 32 random bytes), which every node is given.
fn master_key(path: &Path) -> anyhow::Result<()> {
    use base64::Engine;
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    std::fs::write(path, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

async fn run_postgres(args: &Args, dir: &Path, start_compiling: bool) -> anyhow::Result<String> {
    let (Some(db_url), Some(pgb_url)) = (&args.database_url, &args.pgbench_url) else {
        bail!("--store postgres needs --database-url and --pgbench-url (scripts/bench.sh creates both databases)");
    };
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let bin = &args.smartpay_bin;
    let key_file = dir.join("master.key");
    master_key(&key_file)?;
    let key_arg = key_file.to_string_lossy().into_owned();
    let ports = (0..args.nodes).map(|_| free_port()).collect::<anyhow::Result<Vec<_>>>()?;
    // Every node is given the same public URL (the issuer of access tokens): the first node's.
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let common: Vec<(&str, &str)> = vec![
        ("SMARTPAY_DATABASE_URL", db_url.as_str()),
        ("SMARTPAY_MASTER_KEY_FILE", key_arg.as_str()),
        ("SMARTPAY_PUBLIC_URL", public.as_str()),
    ];
    let cli_data = dir.join("cli");
    eprintln!("{}", cli(bin, &cli_data, &["migrate"], &common)?.trim());
    let m = merchant(bin, &cli_data, "Bench", &common)?;
    let key = m["merchantKey"].as_str().unwrap_or_default().to_owned();

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let node_threads = args.node_threads.unwrap_or(cores / args.nodes).max(1);
    let threads_arg = node_threads.to_string();
    let mut nodes = Children::default();
    let mut admins = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = dir.join(format!("node{i}")).to_string_lossy().into_owned();
        let admin = format!("127.0.0.1:{}", free_port()?);
        let envs = [
            SERVE_ENV,
            &common,
            &[("SMARTPAY_ADMIN_LISTEN", admin.as_str()), ("SMARTPAY_WORKER_THREADS", threads_arg.as_str())],
        ]
        .concat();
        let listen = format!("127.0.0.1:{port}");
        nodes.0.push(spawn(
            args,
            &format!("node{i}"),
            bin,
            &["--data-dir", &data, "serve", "--listen", &listen],
            &envs,
        )?);
        admins.push(admin);
    }
    for port in &ports {
        wait_port(*port).await?;
    }
    let bases: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let client = reqwest::Client::new();
    // The token comes from the first node and is sent to every node.
    let target = Target {
        bases: bases.clone(),
        auths: generator::credentials(&client, &bases[0], &m).await?,
        origin: public.clone(),
    };
    let b = generator::body(&key);
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &b)?;
    let sp = Deployment {
        label: format!("SmartPay ({} node{})", args.nodes, if args.nodes > 1 { "s" } else { "" }),
        tag: "smartpay",
        bases: bases.clone(),
        auths: target.auths.clone(),
        pids: nodes.pids(),
        sqlite: None,
        postgres: true,
    };
    let sp_cs = create_and_status(&sp, &body_file, dir, args).await?;
    eprintln!("{}: whole flow (Rust generator: create → card → status, clients spread over the nodes)…", sp.label);
    let flow = generator::drive_flow(&target, &b, args.concurrency, args.phase()).await?;
    nodes.stop();
    let verify_line = verify(bin, &cli_data, &common)?;

    // The ceiling: pgbench on the same server, in its own database.
    let pg_version = pgbench::psql(pgb_url, "SHOW server_version").unwrap_or_else(|e| format!("unknown ({e})"));
    let pgbench_version = pgbench::version();
    eprintln!("pgbench: preparing (pgbench -i, the checkout table)…");
    let script = pgbench::prepare(pgb_url, &b, dir)?;
    let (waited, _) = probe::wait_quiet(probe::postgres_pids, Duration::from_secs(args.quiet_max)).await;
    eprintln!(
        "pgbench: single-row inserts ({} clients, -j 2, {} s; PostgreSQL idle after {:.1} s)…",
        args.concurrency,
        args.duration,
        waited.as_secs_f64()
    );
    let insert = pgbench::run(
        "pgbench single-row insert (custom script)",
        pgb_url,
        Some(&script),
        args.concurrency,
        args.duration,
        dir,
        "insert",
    )?;
    eprintln!("{}", report::line(&insert));
    eprintln!("pgbench: select-only (-S)…");
    let select =
        pgbench::run("pgbench select-only (-S)", pgb_url, None, args.concurrency, args.duration, dir, "select")?;
    eprintln!("{}", report::line(&select));

    let label = &sp.label;
    let rows = [
        sp_cs.create.named(format!("{label} Create Checkout")),
        insert.clone(),
        sp_cs.after.named(format!("{label} Get Payment Status, right after the burst")),
        sp_cs.quiet.named(format!("{label} Get Payment Status, quiet store")),
        select.clone(),
    ];
    let (create_line, _) = ratio_line("Create Checkout / pgbench insert", &sp_cs.create, &insert, Some(0.5));
    let (status_line, _) = ratio_line(
        "Get Payment Status (right after the burst) / pgbench select-only",
        &sp_cs.after,
        &select,
        Some(0.5),
    );
    let (quiet_line, _) =
        ratio_line("Get Payment Status (quiet store) / pgbench select-only (no target)", &sp_cs.quiet, &select, None);
    let errors = sp_cs.create.errors + sp_cs.after.errors + sp_cs.quiet.errors + flow.errors as u64;
    let mut out = header(
        args,
        &format!(
            "PostgreSQL, {} SmartPay node{} (own data directory and port each, one master key and SMARTPAY_PUBLIC_URL, \
             database_max_connections 16 and worker_threads {node_threads} each, Bearer token issued by the first \
             node); ceiling: {pgbench_version}, {} clients, -j 2, -M prepared, {} s per run, in another database on \
             the same server",
            args.nodes,
            if args.nodes > 1 { "s" } else { "" },
            args.concurrency,
            args.duration
        ),
        &format!("; PostgreSQL {pg_version} on the same machine"),
        start_compiling,
    );
    let percentiles = if args.nodes > 1 {
        "\nWith several nodes, req/s is the sum over the nodes' wrk processes and each latency percentile is the \
         highest of the nodes'.\n"
    } else {
        ""
    };
    let _ = write!(
        out,
        "\n{}\n{}\n{percentiles}\n{create_line}\n{status_line}\n{quiet_line}\nErrors in SmartPay's phases (Create, \
         Status, whole flow): {errors} (target 0: {})\n\nThe servers' CPU during the wrk phases (SmartPay nodes; \
         every postgres process of the machine; the timelines count both):\n\n{}\n",
        sequence_note(&[(label.as_str(), &sp_cs)]),
        table(&rows.iter().collect::<Vec<_>>()),
        met(errors == 0),
        probe_table(&[(label.as_str(), &sp_cs)]),
    );
    let _ = write!(out, "\n{}\n{verify_line}\n", flow_section(&flow, args.concurrency));
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(base) = &args.load_only {
        let target = Target { bases: vec![base.clone()], auths: vec![args.auth.clone()], origin: base.clone() };
        let o = generator::drive(
            &target,
            Phase::Create,
            &generator::body(&args.merchant_key),
            &[],
            args.concurrency,
            args.phase(),
        )
        .await?;
        println!("{}", report::line(&o.row("Create Checkout")));
        return Ok(());
    }
    if args.store == Store::Sqlite && args.nodes != 1 {
        bail!("--nodes above 1 needs --store postgres");
    }
    let start_compiling = probe::compiling();
    if start_compiling {
        eprintln!("note: rustc is running on this machine: the numbers will be depressed");
    }
    let dir = std::env::temp_dir().join(format!("smartpay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = match args.store {
        Store::Sqlite => run_sqlite(&args, &dir, start_compiling).await,
        Store::Postgres => run_postgres(&args, &dir, start_compiling).await,
    };
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
