//! C2: three `smartpay serve` nodes on one PostgreSQL database, under Create Checkout load from
//! clients that retry with the same `Idempotency-Key` on another node after a connection error
//! or a 5xx. One test `kill -9`s a node every cycle (10 cycles) on the shared local server; the
//! other restarts a private PostgreSQL cluster under the load (`pg_ctl stop -m fast|immediate`,
//! then start). Afterwards: every acknowledged checkout exists exactly once, every key made one
//! payment, retried keys got the first answer, and the nodes serve again without a restart.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const NODES: usize = 3;
const CLIENTS: usize = 6;
/// A key that cannot be acknowledged within this time fails the test (the nodes did not recover).
const KEY_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// PostgreSQL: binaries, the shared server's per-test database, and a private cluster.

/// The directory holding `pg_ctl`, `initdb`, `psql`: the newest `/usr/lib/postgresql/*/bin`, else
/// `pg_config --bindir`. Panics when PostgreSQL is not installed (the test fails, never skips).
fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return dir;
    }
    let out = Command::new("pg_config").arg("--bindir").output().expect("PostgreSQL is not installed (no pg_config)");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs `psql` against `port`/`db` as user `postgres` and returns its unaligned output.
fn psql(port: u16, db: &str, sql: &str) -> String {
    let out = Command::new(pg_bin_dir().join("psql"))
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql:?} on port {port}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn count(port: u16, db: &str, sql: &str) -> i64 {
    psql(port, db, sql).parse().unwrap_or_else(|_| panic!("{sql} is not a count"))
}

/// A database of its own on a PostgreSQL server, dropped (connections and all) when this goes.
struct Database {
    port: u16,
    name: String,
}

impl Database {
    fn create(port: u16) -> Database {
        let name = format!("smartpay_mn_{}", unique() % 1_000_000_000_000);
        psql(port, "postgres", &format!("CREATE DATABASE {name}"));
        Database { port, name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    fn count(&self, sql: &str) -> i64 {
        count(self.port, &self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new(pg_bin_dir().join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// A private PostgreSQL cluster (initdb in a temp dir, trust auth, loopback only) that this test
/// may stop and start at will; stopped and deleted when this goes. The shared server on :5432 is
/// never restarted: other tests use it at the same time.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // postgres refuses to run as root: the cluster belongs to the `postgres` user.
        let status = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status().unwrap();
        assert!(status.success(), "chown of the cluster directory to postgres");
        let out = as_postgres(&pg_bin_dir().join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let cluster = Cluster { dir, port: free_port() };
        cluster.pg_ctl(&["start", "-w", "-t", "30"]);
        cluster
    }

    /// `pg_ctl` on this cluster with its port, socket directory and log file.
    fn pg_ctl(&self, args: &[&str]) {
        let d = self.dir.path();
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, d.display());
        let out = as_postgres(&pg_bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(d.join("data"))
            .arg("-l")
            .arg(d.join("postgres.log"))
            .args(["-o", &opts])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(d.join("postgres.log")).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        // The TempDir then deletes the cluster's files.
    }
}

/// `program` run as the `postgres` user when this process is root.
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

// ---------------------------------------------------------------------------------------------
// The nodes.

/// Three nodes sharing `database_url` and one master key file, each with its own data dir and
/// port; killed when this goes (also when the test fails).
struct Nodes {
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    servers: Vec<Option<Server>>,
    env: Vec<(String, String)>,
}

impl Nodes {
    fn start(env: Vec<(String, String)>) -> Nodes {
        let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
        let mut nodes = Nodes { dirs, ports, servers: Vec::new(), env };
        for i in 0..NODES {
            let s = nodes.spawn(i);
            nodes.servers.push(Some(s));
        }
        nodes
    }

    fn spawn(&self, i: usize) -> Server {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start(self.dirs[i].path(), self.ports[i], &env)
    }

    fn bases(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect()
    }

    fn kill9(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.kill9();
        }
    }

    /// Starts node `i` again; returns how long it took to be ready.
    fn restart(&mut self, i: usize) -> Duration {
        let started = Instant::now();
        let s = self.spawn(i);
        self.servers[i] = Some(s);
        started.elapsed()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for s in self.servers.iter_mut().flatten() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// The environment every node and CLI command gets: the database and the one master key file.
fn node_env(database_url: &str, master_key: &Path) -> Vec<(String, String)> {
    vec![
        ("SMARTPAY_DATABASE_URL".into(), database_url.into()),
        ("SMARTPAY_MASTER_KEY_FILE".into(), master_key.display().to_string()),
        ("SMARTPAY_BOOTSTRAP_SANDBOX_MERCHANT".into(), "false".into()),
        ("SMARTPAY_DATABASE_MAX_CONNECTIONS".into(), "4".into()),
    ]
}

/// Writes a fresh master key (32 random bytes, base64url) to `path`.
fn write_master_key(path: &Path) {
    use base64::Engine;
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut key).unwrap();
    std::fs::write(path, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)).unwrap();
}

/// `smartpay <args>` with the nodes' environment; returns stdout.
fn cli_env(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SMARTPAY_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "smartpay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Migrates the database (`smartpay migrate`, the operator path) and creates a merchant.
fn prepare(env: &[(String, String)]) -> (tempfile::TempDir, Merchant) {
    let cli_dir = tempfile::tempdir().unwrap();
    let migrated = cli_env(cli_dir.path(), env, &["migrate"]);
    assert!(migrated.contains("PostgreSQL"), "{migrated}");
    let v: Value =
        serde_json::from_str(&cli_env(cli_dir.path(), env, &["merchant", "create", "--name", "C2 shop", "--json"]))
            .unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let m = Merchant {
        key: s("merchantKey"),
        auth_key: s("authenticationKey"),
        client_id: s("clientId"),
        client_secret: s("clientSecret"),
        basic_id: s("basicCredentialId"),
    };
    (cli_dir, m)
}

// ---------------------------------------------------------------------------------------------
// The load.

/// One HTTP/1.1 request (`Connection: close`): status, lower-cased headers, body. Status 0: the
/// response was cut (e.g. by a kill).
fn request(base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> std::io::Result<Answer> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// What the clients saw, shared by the load threads.
#[derive(Default)]
struct Log {
    /// key → acknowledged transactionId.
    acked: BTreeMap<String, String>,
    /// Keys that needed more than one attempt before their 200.
    retried: HashSet<String>,
    /// Status (0: cut or connection refused) → how many answers had it.
    statuses: BTreeMap<u16, usize>,
    /// Anything that must fail the test: unexpected answers, 503 without Retry-After, replays
    /// with another transactionId, keys that never got an answer.
    problems: Vec<String>,
}

/// Creates one checkout with `key`, starting at node `first` and moving to the next node after a
/// connection error, a cut response or a 5xx, until a 200 or [`KEY_DEADLINE`]. Returns the
/// transactionId and the number of attempts.
fn create(
    bases: &[String],
    first: usize,
    key: &str,
    auth: &str,
    body: &str,
    log: &Mutex<Log>,
) -> Option<(String, u32)> {
    let deadline = Instant::now() + KEY_DEADLINE;
    let mut attempts = 0u32;
    while Instant::now() < deadline {
        let base = &bases[(first + attempts as usize) % bases.len()];
        attempts += 1;
        let answer = request(base, "/payment/creation", &[("Authorization", auth), ("Idempotency-Key", key)], body);
        let status = answer.as_ref().map(|a| a.status).unwrap_or(0);
        *log.lock().unwrap().statuses.entry(status).or_default() += 1;
        match answer {
            Ok(a) if a.status == 200 => {
                // A body cut by the kill is not an acknowledgement: try again.
                if let Some(id) = serde_json::from_str::<Value>(&a.body)
                    .ok()
                    .and_then(|v| v["transactionId"].as_str().map(str::to_owned))
                {
                    return Some((id, attempts));
                }
            }
            Ok(a) if a.status == 503 && !a.headers.contains_key("retry-after") => {
                log.lock().unwrap().problems.push(format!("503 without Retry-After from {base}: {}", a.body));
            }
            Ok(a) if a.status >= 500 || a.status == 0 => {}
            Ok(a) => {
                log.lock().unwrap().problems.push(format!("key {key}: {} from {base}: {}", a.status, a.body));
                return None;
            }
            Err(_) => {}
        }
        // A short pause before the next node: a node being restarted, or the database coming back.
        std::thread::sleep(Duration::from_millis(if attempts.is_multiple_of(3) { 100 } else { 10 }));
    }
    log.lock().unwrap().problems.push(format!("key {key}: no 200 within {KEY_DEADLINE:?} ({attempts} attempts)"));
    None
}

/// The load: [`CLIENTS`] threads creating checkouts with unique keys round-robin over the nodes
/// until `stop`; each finishes the key it is on. Every 4th acknowledged key is sent again to
/// another node, which must answer the same transactionId.
fn load(
    bases: Vec<String>,
    m: &Merchant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let run = unique() % 1_000_000;
    let next = Arc::new(AtomicUsize::new(0));
    (0..CLIENTS)
        .map(|_| {
            let (bases, stop, log, next) = (bases.clone(), stop.clone(), log.clone(), next.clone());
            let (auth, body) = (basic(m), checkout_body(m));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let key = format!("c2-{run}-{n}");
                    let Some((id, attempts)) = create(&bases, n, &key, &auth, &body, &log) else { continue };
                    if n.is_multiple_of(4) {
                        let again = create(&bases, n + 1, &key, &auth, &body, &log);
                        if again.as_ref().map(|(i, _)| i) != Some(&id) {
                            log.lock().unwrap().problems.push(format!("key {key}: replay gave {again:?}, first {id}"));
                        }
                    }
                    let mut l = log.lock().unwrap();
                    if attempts > 1 {
                        l.retried.insert(key.clone());
                    }
                    if let Some(before) = l.acked.insert(key.clone(), id) {
                        l.problems.push(format!("key {key} acknowledged twice (first {before})"));
                    }
                }
            })
        })
        .collect()
}

/// The checks after the load: no problem seen by a client; every acknowledged checkout exists
/// once, under its key, with its history; the database holds exactly one payment per key and
/// none other; retried keys map to the transactionId their client got.
fn verify(db: &Database, merchant: &Merchant, log: &Log, what: &str) {
    assert!(
        log.problems.is_empty(),
        "{what}: {} problems, first: {:#?}",
        log.problems.len(),
        &log.problems[..log.problems.len().min(10)]
    );
    assert!(log.acked.len() >= 50, "{what}: the load produced acknowledged writes ({})", log.acked.len());
    let ids: HashSet<&String> = log.acked.values().collect();
    assert_eq!(ids.len(), log.acked.len(), "{what}: two keys were answered with the same transactionId");

    // The database's view, in one query each: key → payment, and every payment.
    let mid = &merchant.key; // merchants.id is the merchantKey
    let rows = psql(
        db.port,
        &db.name,
        &format!(
            "SELECT key || ' ' || payment_id FROM idempotency_keys WHERE merchant_id = '{mid}' AND scope = 'IDEMPOTENCY_KEY'"
        ),
    );
    let stored: BTreeMap<&str, &str> = rows.lines().filter_map(|l| l.split_once(' ')).collect();
    for (key, id) in &log.acked {
        assert_eq!(
            stored.get(key.as_str()),
            Some(&id.as_str()),
            "{what}: acknowledged key {key} → {id} is not stored so"
        );
    }
    let payments = db.count(&format!("SELECT COUNT(*) FROM payments WHERE merchant_id = '{mid}'"));
    assert_eq!(
        payments as usize,
        log.acked.len(),
        "{what}: one payment per acknowledged key, no more (lost or doubled)"
    );
    assert_eq!(stored.len(), log.acked.len(), "{what}: one idempotency record per key");
    let acked_in_db = db.count(&format!(
        "SELECT COUNT(DISTINCT p.id) FROM payments p JOIN idempotency_keys k ON k.payment_id = p.id WHERE p.merchant_id = '{mid}'"
    ));
    assert_eq!(acked_in_db as usize, log.acked.len(), "{what}: every payment has its own key");
    let without_history = db.count(&format!(
        "SELECT COUNT(*) FROM payments p WHERE p.merchant_id = '{mid}' AND p.history_statuses[1] IS DISTINCT FROM 'CREATED'"
    ));
    assert_eq!(without_history, 0, "{what}: every payment's history starts with its CREATED entry");
}

/// Every node answers a fresh checkout and reads an acknowledged one, without a restart.
fn nodes_serve(bases: &[String], m: &Merchant, some_id: &str, what: &str) {
    for base in bases {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _) =
                try_http(base, "GET", &format!("/payment/status/{some_id}"), &[("Authorization", &basic(m))], None)
                    .unwrap_or((0, String::new()));
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{what}: {base} does not serve again (last status {status})");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, body) =
            http(base, "POST", "/payment/creation", &[("Authorization", &basic(m))], Some(&checkout_body(m)));
        assert_eq!(status, 200, "{what}: {base} creates again: {body}");
    }
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn stop_load(stop: &AtomicBool, workers: Vec<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn kill_9_one_of_three_nodes_under_load() {
    const CYCLES: usize = 10;
    let db = Database::create(5432);
    let keys = tempfile::tempdir().unwrap();
    write_master_key(&keys.path().join("master.key"));
    let env = node_env(&db.url(), &keys.path().join("master.key"));
    let (_cli_dir, m) = prepare(&env);
    let mut nodes = Nodes::start(env);
    let bases = nodes.bases();
    let (stop, log) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Log::default())));
    let workers = load(bases.clone(), &m, stop.clone(), log.clone());
    let mut seed = (unique() as u64) | 1;
    let mut restart_ms = Vec::new();
    for cycle in 0..CYCLES {
        std::thread::sleep(Duration::from_millis(300 + xorshift(&mut seed) % 700));
        let victim = cycle % NODES;
        nodes.kill9(victim);
        // Down for a moment: clients with a request on it retry their key on another node.
        std::thread::sleep(Duration::from_millis(100 + xorshift(&mut seed) % 300));
        restart_ms.push(nodes.restart(victim).as_millis());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop_load(&stop, workers);

    let log = log.lock().unwrap();
    verify(&db, &m, &log, "kill -9");
    assert!(!log.retried.is_empty(), "some keys were retried on another node (statuses {:?})", log.statuses);
    nodes_serve(&bases, &m, log.acked.values().next().unwrap(), "kill -9");
    eprintln!(
        "C2 kill -9: {} acknowledged keys ({} retried) over {CYCLES} cycles; statuses {:?}; restart to ready (ms) {restart_ms:?}",
        log.acked.len(),
        log.retried.len(),
        log.statuses
    );
}

#[test]
fn database_restarts_under_load() {
    // Three clean restarts (the operator's `pg_ctl restart -m fast`) and two crashes
    // (`-m immediate`), each held down long enough for the nodes to notice.
    const MODES: [&str; 5] = ["fast", "immediate", "fast", "immediate", "fast"];
    let cluster = Cluster::start();
    let db = Database::create(cluster.port);
    let keys = tempfile::tempdir().unwrap();
    write_master_key(&keys.path().join("master.key"));
    let env = node_env(&db.url(), &keys.path().join("master.key"));
    let (_cli_dir, m) = prepare(&env);
    let nodes = Nodes::start(env);
    let bases = nodes.bases();
    let (stop, log) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Log::default())));
    let workers = load(bases.clone(), &m, stop.clone(), log.clone());
    let mut seed = (unique() as u64) | 1;
    let mut acked_before = Vec::new();
    for mode in MODES {
        std::thread::sleep(Duration::from_millis(400 + xorshift(&mut seed) % 600));
        acked_before.push(log.lock().unwrap().acked.len());
        cluster.pg_ctl(&["stop", "-w", "-m", mode]);
        std::thread::sleep(Duration::from_millis(500 + xorshift(&mut seed) % 500));
        cluster.pg_ctl(&["start", "-w", "-t", "30"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop_load(&stop, workers);

    let log = log.lock().unwrap();
    // The load went on between the restarts: each restart came after more acknowledged writes.
    assert!(
        acked_before.windows(2).all(|w| w[1] > w[0]),
        "writes were acknowledged between restarts: {acked_before:?}"
    );
    verify(&db, &m, &log, "database restarts");
    assert!(
        log.statuses.get(&503).copied().unwrap_or(0) > 0,
        "the nodes answered 503 while the database was away: {:?}",
        log.statuses
    );
    nodes_serve(&bases, &m, log.acked.values().next().unwrap(), "database restarts");
    eprintln!(
        "C2 database restarts {MODES:?}: {} acknowledged keys ({} retried); statuses {:?}",
        log.acked.len(),
        log.retried.len(),
        log.statuses
    );
    drop(nodes);
}
