//! Several `smartpay serve` nodes on one PostgreSQL (issue 10): each node its own data dir and
//! port, one database of the test's own (dropped at the end, even on failure), one master key
//! file. The cross-node idempotency race, token acceptance and revocation across nodes, D3 (two
//! nodes' background workers do every job once), and `/health/ready` following the database.
//! PostgreSQL must answer on 127.0.0.1:5432 (user `postgres`, trust): these tests fail without it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::modifications_rig::try_pay;
use super::pending_rig::pay_card;
use super::*;

/// The amount of every [`checkout_body`], in minor units.
const AMOUNT: i64 = 1099;
/// The bearer key between the nodes and the shared sandbox acquirer.
const ACQUIRER_KEY: &str = "e2e-multinode-acquirer-key-0123456789";
/// How long a test waits for something the nodes do on their own.
const SETTLE: Duration = Duration::from_secs(30);
/// Rate limits out of the way: every request comes from this one test client.
const NO_LIMITS: [(&str, &str); 4] = [
    ("SMARTPAY_IP_SUBMITS_PER_MINUTE", "1000000"),
    ("SMARTPAY_MERCHANT_SUBMITS_PER_MINUTE", "1000000"),
    ("SMARTPAY_AUTH_FAILURES_PER_MINUTE", "1000000"),
    ("SMARTPAY_AUTH_FAILURES_PER_ADDRESS_PER_MINUTE", "1000000"),
];

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// `psql` against `db` on the local server: the unaligned, tuples-only output. Panics (never
/// skips) when PostgreSQL is missing or the statement fails.
fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql is needed for the multi-node tests (PostgreSQL client tools): {e}"));
    assert!(
        out.status.success(),
        "PostgreSQL on 127.0.0.1:5432 (user postgres) refused {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A database of one test, dropped (with its connections) when the guard goes.
struct PgDb {
    name: String,
}

impl PgDb {
    fn create() -> PgDb {
        let name = format!("smartpay_mn_{}_{}", std::process::id(), unique());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// One number the query answers.
    fn count(&self, sql: &str) -> i64 {
        let out = psql(&self.name, sql);
        out.parse().unwrap_or_else(|_| panic!("{sql:?} answered {out:?}"))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qtAc"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// Nodes sharing one database and one master key file; every node is killed when dropped,
/// before the database goes.
struct Cluster {
    nodes: Vec<Server>,
    db: PgDb,
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Cluster {
    /// A fresh database, migrated, and a master key file.
    fn new() -> Cluster {
        let db = PgDb::create();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        let mut master = [0u8; 32];
        std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut master).unwrap();
        use base64::Engine;
        std::fs::write(&key, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(master)).unwrap();
        std::fs::create_dir(dir.path().join("cli")).unwrap();
        let cluster = Cluster { nodes: Vec::new(), db, dir, key };
        cluster.cli(&["migrate"]);
        cluster
    }

    /// What every process of the cluster is given: the database and the master key.
    fn env(&self) -> [(&'static str, String); 2] {
        [("SMARTPAY_DATABASE_URL", self.db.url()), ("SMARTPAY_MASTER_KEY_FILE", self.key.display().to_string())]
    }

    /// A CLI command on the shared database (from a data dir of its own); its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .arg("--data-dir")
            .arg(self.dir.path().join("cli"))
            .args(args)
            .env_remove("SMARTPAY_CONFIG")
            .envs(self.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "smartpay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn merchant(&self, name: &str) -> Merchant {
        let v: Value = serde_json::from_str(&self.cli(&["merchant", "create", "--name", name, "--json"])).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        Merchant {
            key: s("merchantKey"),
            auth_key: s("authenticationKey"),
            client_id: s("clientId"),
            client_secret: s("clientSecret"),
            basic_id: s("basicCredentialId"),
        }
    }

    /// Starts one more node on `port` with a data dir of its own; returns its base URL.
    fn start_on(&mut self, port: u16, extra: &[(&str, &str)]) -> String {
        let data = self.dir.path().join(format!("node{}", self.nodes.len() + 1));
        std::fs::create_dir(&data).unwrap();
        let shared = self.env();
        let mut env: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(&NO_LIMITS);
        env.extend_from_slice(extra);
        let server = Server::start(&data, port, &env);
        let base = server.base.clone();
        self.nodes.push(server);
        base
    }

    fn start(&mut self, extra: &[(&str, &str)]) -> String {
        self.start_on(free_port(), extra)
    }

    fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    /// Every node's stderr, for failure messages.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.base, std::fs::read_to_string(&n.stderr).unwrap_or_default()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One request with an explicit content type: (status, raw header block, body).
fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((content_type, b)) = body {
        req.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some((_, b)) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    (status, head.to_owned(), body.to_owned())
}

/// `POST /oauth2/token` with the client-credentials grant: (status, body).
fn token(base: &str, m: &Merchant) -> (u16, String) {
    let form = format!("grant_type=client_credentials&client_id={}&client_secret={}", m.client_id, m.client_secret);
    let (status, _, body) =
        request(base, "POST", "/oauth2/token", &[], Some(("application/x-www-form-urlencoded", &form)));
    (status, body)
}

/// The status code of Get Payment Status of an unknown payment: 404 when `auth` is accepted.
fn probe(base: &str, auth: &str) -> u16 {
    http(base, "GET", "/payment/status/00000000-0000-4000-8000-000000000000", &[("Authorization", auth)], None).0
}

/// What one racing client ended with.
struct Answer {
    status: u16,
    body: String,
    /// 409 `request_in_progress` answers it retried after.
    in_flight: usize,
}

/// `clients` Create Checkout requests released at once, client `i` on node `i % nodes` with
/// `Idempotency-Key` `key(i)` (none when `None`) and `body`. A client retries (bounded) while the
/// first request of its key is in flight (409 `request_in_progress`), as CONTRACT §1 asks.
fn race(
    bases: &[String],
    m: &Merchant,
    clients: usize,
    body: &str,
    key: impl Fn(usize) -> Option<String>,
) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (base, barrier, body, auth, key) =
                (bases[i % bases.len()].clone(), barrier.clone(), body.to_owned(), basic(m), key(i));
            std::thread::spawn(move || {
                let mut headers = vec![("Authorization", auth.as_str())];
                if let Some(k) = &key {
                    headers.push(("Idempotency-Key", k.as_str()));
                }
                barrier.wait();
                let mut in_flight = 0;
                loop {
                    let (status, body) = http(&base, "POST", "/payment/creation", &headers, Some(&body));
                    if status == 409 && body.contains("request_in_progress") && in_flight < 200 {
                        in_flight += 1;
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    return Answer { status, body, in_flight };
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Asserts every answer is a 200 of one checkout; returns its transactionId.
fn one_checkout(what: &str, answers: &[Answer]) -> String {
    for a in answers {
        assert!(a.status < 500, "{what}: a node answered {}: {}", a.status, a.body);
        assert_eq!(a.status, 200, "{what}: {}", a.body);
    }
    let ids: HashSet<(String, String)> = answers
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(&a.body).unwrap();
            (v["transactionId"].as_str().unwrap().to_owned(), v["checkoutToken"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids.len(), 1, "{what}: every client got the first answer (transactionId, checkoutToken): {ids:?}");
    ids.into_iter().next().unwrap().0
}

// ---------------------------------------------------------------------------------------------
// The sandbox acquirer all nodes share

/// `smartpay sandbox-acquirer` as its own process; killed when dropped.
struct SharedAcquirer {
    child: Child,
    api: String,
}

impl SharedAcquirer {
    /// Started for a SmartPay at `smartpay` (challenge returns), with …0259 pending for
    /// `pending_ms`.
    fn start(log_dir: &Path, smartpay: &str, pending_ms: u64) -> SharedAcquirer {
        let api = format!("127.0.0.1:{}", free_port());
        let log = |ext: &str| Stdio::from(std::fs::File::create(log_dir.join(format!("acquirer.{ext}"))).unwrap());
        let child = Command::new(bin())
            .args(["sandbox-acquirer", "--listen", &api, "--public-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--key", ACQUIRER_KEY, "--smartpay-url", smartpay])
            .env_remove("SMARTPAY_CONFIG")
            .env("SMARTPAY_SANDBOX_PENDING_DELAY_MS", pending_ms.to_string())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .unwrap();
        let acquirer = SharedAcquirer { child, api: format!("http://{api}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(acquirer.get("/v1/authorizations/none"), Ok((404, _))) {
            assert!(Instant::now() < deadline, "the sandbox acquirer did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        acquirer
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let bearer = format!("Bearer {ACQUIRER_KEY}");
        try_http(&self.api, "GET", path, &[("Authorization", &bearer)], None)
    }

    /// The acquirer's record of the authorization SmartPay asked for under `transaction`.
    fn authorization(&self, transaction: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/authorizations?idempotencyKey={transaction}")).unwrap();
        assert_eq!(status, 200, "the acquirer never heard of {transaction}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for SharedAcquirer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

/// 64 concurrent Create Checkout requests with one `Idempotency-Key` over three nodes make one
/// checkout; so do 64 with one `partnerReference` under 64 different keys.
#[test]
fn one_key_or_partner_reference_over_three_nodes_makes_one_checkout() {
    let mut c = Cluster::new();
    let m = c.merchant("Race shop");
    for _ in 0..3 {
        c.start(&[]);
    }
    let bases = c.bases();

    let key = format!("mn-race-{}", unique());
    let body = checkout_body(&m);
    let answers = race(&bases, &m, 64, &body, |_| Some(key.clone()));
    let by_key = one_checkout("one Idempotency-Key", &answers);
    assert_eq!(c.db.count("SELECT COUNT(*) FROM payments"), 1, "one checkout row: {}", c.logs());
    assert_eq!(c.db.count(&format!("SELECT COUNT(*) FROM payments WHERE id = '{by_key}'")), 1);
    let waited: usize = answers.iter().map(|a| a.in_flight).sum();

    let mut v: Value = serde_json::from_str(&body).unwrap();
    v["partnerReference"] = Value::from(format!("ORDER-MN-{}", unique()));
    let answers = race(&bases, &m, 64, &v.to_string(), |i| Some(format!("mn-ref-{i}-{}", unique())));
    let by_reference = one_checkout("one partnerReference", &answers);
    assert_ne!(by_key, by_reference);
    assert_eq!(c.db.count("SELECT COUNT(*) FROM payments"), 2, "one more checkout row: {}", c.logs());
    assert_eq!(
        c.db.count(&format!("SELECT cardinality(history_statuses) FROM payments WHERE id = '{by_reference}'")),
        1,
        "one CREATED history entry"
    );
    eprintln!(
        "multinode race: 2×64 requests over 3 nodes → 2 checkouts; {waited} + {} in-flight 409s retried",
        answers.iter().map(|a| a.in_flight).sum::<usize>()
    );
}

/// A token node 1 issued works on nodes 2 and 3 (they share `public_url`, the tokens' `iss`); after `credential revoke` on the shared
/// database every node refuses the token and the client credentials within ~1.5 s.
#[test]
fn a_token_of_one_node_works_on_all_and_revocation_reaches_every_node() {
    let mut c = Cluster::new();
    let m = c.merchant("Token shop");
    // Nodes behind one reverse proxy share its public URL: the `iss` of their tokens.
    for _ in 0..3 {
        c.start(&[("SMARTPAY_AUTH_REFRESH_MS", "1000"), ("SMARTPAY_PUBLIC_URL", "https://pay.multinode.test")]);
    }
    let bases = c.bases();

    let (status, body) = token(&bases[0], &m);
    assert_eq!(status, 200, "node 1 issues a token: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let bearer = format!("Bearer {}", v["access_token"].as_str().unwrap());
    for (i, base) in bases.iter().enumerate() {
        assert_eq!(
            probe(base, &bearer),
            404,
            "node {} ({base}) accepts node 1's token; signing keys (kid, created, retired): {}\n{}",
            i + 1,
            psql(&c.db.name, "SELECT kid, created_at_ms, retired_at_ms FROM signing_keys"),
            c.logs()
        );
        assert_eq!(probe(base, &basic(&m)), 404, "{base} accepts the Basic key");
    }
    let (status, _) = token(&bases[2], &m);
    assert_eq!(status, 200, "node 3 issues tokens to the same client");

    let creds: Value = serde_json::from_str(&c.cli(&["credential", "list", "--merchant", &m.key, "--json"])).unwrap();
    let oauth = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clientId"] == m.client_id.as_str())
        .unwrap_or_else(|| panic!("no OAuth client in {creds}"));
    c.cli(&["credential", "revoke", oauth["id"].as_str().unwrap()]);
    let revoked = Instant::now();

    let mut refused_after = Vec::new();
    for base in &bases {
        loop {
            let token_refused = probe(base, &bearer) == 401;
            let client_refused = token(base, &m).0 != 200;
            if token_refused && client_refused {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_millis(1500),
                "{base} still accepts the revoked client (token refused: {token_refused}, new tokens refused: \
                 {client_refused}) {:?} after the revocation",
                revoked.elapsed()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        refused_after.push(revoked.elapsed());
    }
    for base in &bases {
        assert_eq!(probe(base, &basic(&m)), 404, "{base}: the merchant's Basic key is not revoked with it");
    }
    eprintln!("multinode revocation: refused on every node after {refused_after:?}");
}

/// D3: two nodes' background workers on one database. Delayed captures (30 payments over both
/// nodes) and pending resolutions (…0259 through node 1) are each done exactly once: one
/// CAPTURE modification and one AUTHORIZATION_COMPLETED and CAPTURED history row per payment,
/// and the shared acquirer captured each amount once.
#[test]
fn two_nodes_workers_do_every_job_once() {
    let mut c = Cluster::new();
    let m = c.merchant("Worker shop");
    c.cli(&["merchant", "capture-mode", &m.key, "delayed", "--delay", "1"]);
    let port1 = free_port();
    let acquirer = SharedAcquirer::start(c.dir.path(), &format!("http://127.0.0.1:{port1}"), 400);
    let api = acquirer.api.clone();
    let env = [
        ("SMARTPAY_SWEEP_INTERVAL_MS", "50"),
        ("SMARTPAY_PENDING_FIRST_POLL_MS", "200"),
        ("SMARTPAY_PENDING_POLL_INITIAL_MS", "100"),
        ("SMARTPAY_PENDING_POLL_MAX_MS", "400"),
        ("SMARTPAY_PROVIDER_TIMEOUT_MS", "2000"),
        ("SMARTPAY_SANDBOX_SETTLEMENT_DELAY_MS", "3600000"),
        ("SMARTPAY_SANDBOX_ACQUIRER_URL", api.as_str()),
        ("SMARTPAY_SANDBOX_ACQUIRER_KEY", ACQUIRER_KEY),
    ];
    c.start_on(port1, &env);
    c.start(&env);
    let bases = c.bases();

    let mut ids = Vec::new();
    for i in 0..30 {
        let (id, status) = try_pay(&bases[i % 2], &m, "4111111111111111").unwrap();
        assert_eq!(status, 200, "the widget payment of {id} through {}", bases[i % 2]);
        ids.push(id);
    }
    for _ in 0..6 {
        let paid = pay_card(&bases[0], &m, "4000000000000259", "737", None);
        let v = paid.json();
        assert_eq!((paid.http, v["transactionStatus"].as_str()), (200, Some("AUTHORIZATION_PENDING")), "{v}");
        ids.push(paid.id);
    }
    let total = ids.len() as i64;

    let deadline = Instant::now() + SETTLE;
    loop {
        let captured = c.db.count("SELECT COUNT(*) FROM payments WHERE status = 'CAPTURED'");
        if captured == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{captured} of {total} payments captured: {}\n{}",
            psql(&c.db.name, "SELECT status, COUNT(*) FROM payments GROUP BY status"),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let counts = |sql: &str| psql(&c.db.name, sql);
    let twice = counts(
        "SELECT payment_id, COUNT(*) FROM modifications WHERE kind = 'CAPTURE' GROUP BY payment_id HAVING COUNT(*) <> 1",
    );
    assert_eq!(twice, "", "payments with other than one CAPTURE modification");
    assert_eq!(c.db.count("SELECT COUNT(*) FROM modifications WHERE kind = 'CAPTURE'"), total);
    assert_eq!(c.db.count("SELECT COUNT(*) FROM modifications WHERE kind = 'CAPTURE' AND status = 'CAPTURED'"), total);
    for status in ["AUTHORIZATION_COMPLETED", "CAPTURED"] {
        let off = counts(&format!(
            "SELECT p.id, n FROM payments p CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM unnest(p.history_statuses) \
             AS h(status) WHERE h.status = '{status}') c WHERE n <> 1"
        ));
        assert_eq!(off, "", "payments without exactly one {status} history entry");
    }
    for id in &ids {
        let a = acquirer.authorization(id);
        assert_eq!(a["captured"].as_i64(), Some(AMOUNT), "{id}: the acquirer captured the amount once: {a}");
    }
    eprintln!("multinode D3: {total} payments captured once each by two nodes' workers");
}

/// `/health/ready` answers 503 while the node's database refuses connections (and Create
/// Checkout 503 with `Retry-After`); when the database takes connections again the same
/// process answers ready and serves checkouts without a restart.
#[test]
fn readiness_follows_the_database_and_the_node_recovers_without_restart() {
    let mut c = Cluster::new();
    let m = c.merchant("Ready shop");
    let base = c.start(&[]);
    let (status, body) = http(&base, "GET", "/health/ready", &[], None);
    assert_eq!(status, 200, "{body}");
    let before = super::pending_rig::checkout(&base, &m).unwrap().0;

    let db = c.db.name.clone();
    psql("postgres", &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"));
    psql(
        "postgres",
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ),
    );
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, _) = http(&base, "GET", "/health/ready", &[], None);
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "ready still answers {status} with the database away");
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = basic(&m);
    let body = checkout_body(&m);
    let (status, head, answer) =
        request(&base, "POST", "/payment/creation", &[("Authorization", &auth)], Some(("application/json", &body)));
    assert_eq!(status, 503, "Create Checkout with the database away: {answer}");
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after:"), "503 carries Retry-After: {head}");
    assert!(!answer.contains("postgres"), "no internals in the answer: {answer}");

    psql("postgres", &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, _) = http(&base, "GET", "/health/ready", &[], None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ready answers {status} after the database came back: {}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = super::pending_rig::checkout(&base, &m).unwrap().0;
    let (status, _) = http(&base, "GET", &format!("/payment/status/{before}"), &[("Authorization", &auth)], None);
    assert_eq!(status, 200, "the checkout made before the outage is there");
    assert_eq!(c.db.count(&format!("SELECT COUNT(*) FROM payments WHERE id IN ('{before}', '{after}')")), 2);
    assert!(c.nodes[0].child.try_wait().unwrap().is_none(), "the same process served throughout");
}
