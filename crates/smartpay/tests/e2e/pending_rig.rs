//! What the pending-resolution and notification tests share: a notification receiver (a real
//! HTTP server in the test process that records every delivery's raw body and headers), the
//! sandbox acquirer and sandbox PayU as their own processes with test-speed delays (they outlive
//! every server crash and are the witnesses of what the provider did), a server wired to both
//! with tight pending-resolution schedules, widget payments, and the check that a payment's
//! final status agrees with its provider.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::modifications_rig::future_expiry;
use super::*;

/// Bearer keys between the server and its providers (at least 16 characters).
const ACQUIRER_KEY: &str = "e2e-pending-acquirer-key-0123456789";
const PAYU_KEY: &str = "e2e-pending-payu-key-0123456789";
const PAYU_NOTIFY_SECRET: &str = "e2e-pending-payu-notify-secret-0123456789";

/// How long a test waits for something the server does on its own.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The amount of every checkout of [`checkout_body`], in minor units.
pub const AMOUNT: i64 = 1099;

/// The server's schedules at test speed: first poll 200 ms after a payment went pending, then
/// every 100–400 ms; the provider call gives up after 500 ms; the job and notification loops
/// run every 50 ms; sandbox settlement far away, so that captured payments stay `CAPTURED`.
const FAST: [(&str, &str); 8] = [
    ("SMARTPAY_SWEEP_INTERVAL_MS", "50"),
    ("SMARTPAY_PENDING_FIRST_POLL_MS", "200"),
    ("SMARTPAY_PENDING_POLL_INITIAL_MS", "100"),
    ("SMARTPAY_PENDING_POLL_MAX_MS", "400"),
    ("SMARTPAY_PROVIDER_TIMEOUT_MS", "500"),
    ("SMARTPAY_SANDBOX_SETTLEMENT_DELAY_MS", "3600000"),
    ("SMARTPAY_IP_SUBMITS_PER_MINUTE", "1000000"),
    ("SMARTPAY_MERCHANT_SUBMITS_PER_MINUTE", "1000000"),
];

/// Statuses a payment of an automatically capturing merchant ends in.
pub fn is_final(status: &str) -> bool {
    matches!(status, "CAPTURED" | "AUTHORIZATION_FAILED" | "SETTLED" | "CANCELLED" | "REFUNDED" | "EXPIRED")
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// One request the receiver got: every header (names lower-case) and the raw body.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("a notification body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// `SmartPay-Event-Id`.
    pub fn event_id(&self) -> String {
        self.header("smartpay-event-id").unwrap_or_else(|| panic!("no SmartPay-Event-Id: {self:?}")).to_owned()
    }

    /// `metadata.transactionId`.
    pub fn transaction(&self) -> String {
        self.json()["metadata"]["transactionId"].as_str().unwrap_or_default().to_owned()
    }

    /// `metadata.status`.
    pub fn status(&self) -> String {
        self.json()["metadata"]["status"].as_str().unwrap_or_default().to_owned()
    }

    /// How many `v1=` signatures `SmartPay-Signature` carries.
    pub fn signatures(&self) -> usize {
        self.header("smartpay-signature").map_or(0, |h| h.split(',').filter(|p| p.trim().starts_with("v1=")).count())
    }

    /// The reference verifier over the raw body, with a 300 s tolerance.
    pub fn verify(&self, secrets: &[&str]) -> Result<(), smartpay_notify::VerifyError> {
        let header = self.header("smartpay-signature").ok_or(smartpay_notify::VerifyError::Malformed)?;
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        smartpay_notify::verify(header, &self.body, &keys, unix_now(), 300)
    }

    /// Checks what every notification must be: signed with `secrets`, the payload's `id` equal
    /// to `SmartPay-Event-Id`, the reference's fields, never about `CREATED`.
    pub fn assert_well_formed(&self, secrets: &[&str]) {
        let v = self.json();
        assert_eq!(self.verify(secrets), Ok(()), "the signature does not verify: {v}");
        assert_eq!(v["id"].as_str(), Some(self.event_id().as_str()), "payload id = SmartPay-Event-Id: {v}");
        assert_eq!(v["eventType"], "updated", "{v}");
        assert_eq!(v["objectType"], "payment", "{v}");
        assert_eq!(v["objectId"], v["metadata"]["transactionId"], "{v}");
        assert_ne!(v["metadata"]["status"], "CREATED", "never notified: {v}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{v}");
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[derive(Default)]
struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
    arrived: Condvar,
}

/// A merchant's notification endpoint at `url`, in the test process; it answers 200.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    /// Where the servers write their logs: their tails go into a timeout's message.
    logs: Mutex<Option<std::path::PathBuf>>,
    runtime: Option<tokio::runtime::Runtime>,
}

async fn record(
    axum::extract::State(inbox): axum::extract::State<Arc<Inbox>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    inbox.deliveries.lock().unwrap().push(Delivery { headers, body: body.to_vec() });
    inbox.arrived.notify_all();
    axum::http::StatusCode::OK
}

impl Receiver {
    pub fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let inbox = Arc::new(Inbox::default());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(inbox.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url: format!("http://127.0.0.1:{port}/hook"), inbox, logs: Mutex::new(None), runtime: Some(runtime) }
    }

    /// Everything received so far, in arrival order.
    pub fn all(&self) -> Vec<Delivery> {
        self.inbox.deliveries.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until `done` holds for what was received; panics naming `what`.
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut got = self.inbox.deliveries.lock().unwrap();
        loop {
            if done(&got) {
                return got.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {timeout:?} for {what}; received: {:#?}\n{}",
                summary(&got),
                self.log_tails()
            );
            got = self.inbox.arrived.wait_timeout(got, left).unwrap().0;
        }
    }

    /// Waits until a notification of a final status arrived for each of `transactions`; returns
    /// that notification per transaction.
    pub fn wait_final(&self, transactions: &[&str], timeout: Duration) -> Vec<Delivery> {
        let got = self.wait_until("a final notification of every payment", timeout, |d| {
            transactions.iter().all(|t| d.iter().any(|x| x.transaction() == *t && is_final(&x.status())))
        });
        transactions
            .iter()
            .map(|t| got.iter().find(|x| x.transaction() == *t && is_final(&x.status())).unwrap().clone())
            .collect()
    }

    /// The last lines of every server log in the log directory.
    fn log_tails(&self) -> String {
        let Some(dir) = self.logs.lock().unwrap().clone() else { return String::new() };
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "err"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("--- {}:\n{}", f.display(), lines[lines.len().saturating_sub(15)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Everything received about `transaction`.
    pub fn of(&self, transaction: &str) -> Vec<Delivery> {
        self.all().into_iter().filter(|d| d.transaction() == transaction).collect()
    }
}

/// (event id, transaction, status) of each delivery, for failure messages.
pub fn summary(d: &[Delivery]) -> Vec<(String, String, String)> {
    d.iter().map(|x| (x.header("smartpay-event-id").unwrap_or("-").to_owned(), x.transaction(), x.status())).collect()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Provider processes

/// A `smartpay sandbox-*` process; killed when dropped.
pub struct Sidecar {
    child: Child,
    /// Its machine API.
    pub api: String,
    key: &'static str,
}

impl Sidecar {
    fn spawn(log_dir: &Path, name: &str, args: &[String], env: &[(&str, &str)], key: &'static str) -> Sidecar {
        let api_port = free_port();
        let log = |ext: &str| Stdio::from(std::fs::File::create(log_dir.join(format!("{name}.{ext}"))).unwrap());
        let mut cmd = Command::new(bin());
        cmd.arg(name).args(["--listen", &format!("127.0.0.1:{api_port}")]).args(args).env_remove("SMARTPAY_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(log("out")).stderr(log("err")).spawn().unwrap();
        Sidecar { child, api: format!("http://127.0.0.1:{api_port}"), key }
    }

    fn auth(&self) -> [(&'static str, String); 1] {
        [("Authorization", format!("Bearer {}", self.key))]
    }

    /// GET `path` on its API with its bearer key: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let [(k, v)] = self.auth();
        try_http(&self.api, "GET", path, &[(k, v.as_str())], None)
    }

    /// POST `body` to `path` on its API with its bearer key.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let [(k, v)] = self.auth();
        http(&self.api, "POST", path, &[(k, v.as_str())], Some(body))
    }

    fn wait_ready(&self, probe: &str, expect: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(self.get(probe), Ok((s, _)) if s == expect) {
            assert!(Instant::now() < deadline, "{probe} of {} did not answer {expect}", self.api);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The provider's record of what it was asked under the idempotency key `transaction`:
    /// `None` when it never heard of it.
    pub fn by_key(&self, path: &str, transaction: &str) -> Option<Value> {
        let (status, body) = self.get(&format!("{path}{transaction}")).unwrap();
        match status {
            200 => Some(serde_json::from_str(&body).unwrap()),
            404 => None,
            other => panic!("provider lookup of {transaction} answered {other}: {body}"),
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which provider a payment went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Acquirer,
    Payu,
}

// ---------------------------------------------------------------------------------------------
// The rig

/// A data dir with one automatically capturing merchant whose notifications go to `receiver`,
/// the external acquirer and PayU, and a fixed server port.
pub struct PendingRig {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub merchant: Merchant,
    /// The signing secret `merchant notifications` printed.
    pub secret: String,
    pub receiver: Receiver,
    pub acquirer: Sidecar,
    pub payu: Sidecar,
}

/// The signing secret in the output of `merchant notifications` or `merchant notification-secret`.
pub fn printed_secret(out: &str) -> String {
    let secret = out.lines().find_map(|l| l.split("(shown once): ").nth(1)).unwrap_or_else(|| panic!("{out}"));
    secret.trim().to_owned()
}

impl PendingRig {
    /// `acquirer_pending_ms`: how long …0259/…0267 stay pending at the acquirer.
    pub fn new(name: &str, acquirer_pending_ms: u64) -> PendingRig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let merchant = create_merchant(d, name);
        let receiver = Receiver::start();
        *receiver.logs.lock().unwrap() = Some(d.to_path_buf());
        let out = cli(d, &["merchant", "notifications", &merchant.key, "--url", &receiver.url]);
        let secret = printed_secret(&out);
        let port = free_port();
        let smartpay = format!("http://127.0.0.1:{port}");
        let pending = acquirer_pending_ms.to_string();
        let acquirer = Sidecar::spawn(
            d,
            "sandbox-acquirer",
            &[
                "--public-listen".into(),
                format!("127.0.0.1:{}", free_port()),
                "--key".into(),
                ACQUIRER_KEY.into(),
                "--smartpay-url".into(),
                smartpay.clone(),
            ],
            &[("SMARTPAY_SANDBOX_PENDING_DELAY_MS", &pending), ("SMARTPAY_SANDBOX_SLOW_DELAY_MS", "1500")],
            ACQUIRER_KEY,
        );
        let payu = Sidecar::spawn(
            d,
            "sandbox-payu",
            &[
                "--public-listen".into(),
                format!("127.0.0.1:{}", free_port()),
                "--key".into(),
                PAYU_KEY.into(),
                "--notify-secret".into(),
                PAYU_NOTIFY_SECRET.into(),
                "--smartpay-url".into(),
                smartpay,
            ],
            &[("SMARTPAY_SANDBOX_PAYU_TEST_CONTROLS", "1"), ("SMARTPAY_SANDBOX_PAYU_CONFIRM_DELAY_MS", "300")],
            PAYU_KEY,
        );
        acquirer.wait_ready("/v1/authorizations/none", 404);
        payu.wait_ready("/test/stats", 200);
        PendingRig { dir, port, merchant, secret, receiver, acquirer, payu }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `smartpay serve` at test speed against the external providers, with `failpoint` armed.
    pub fn start(&self, failpoint: Option<&str>) -> Server {
        self.start_with(failpoint, &[])
    }

    /// [`Self::start`] with `overrides` of the test-speed settings.
    pub fn start_with(&self, failpoint: Option<&str>, overrides: &[(&str, &str)]) -> Server {
        let mut env: Vec<(&str, &str)> =
            FAST.iter().filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k)).copied().collect();
        env.extend_from_slice(overrides);
        env.extend([
            ("SMARTPAY_SANDBOX_ACQUIRER_URL", self.acquirer.api.as_str()),
            ("SMARTPAY_SANDBOX_ACQUIRER_KEY", ACQUIRER_KEY),
            ("SMARTPAY_SANDBOX_PAYU_URL", self.payu.api.as_str()),
            ("SMARTPAY_SANDBOX_PAYU_KEY", PAYU_KEY),
            ("SMARTPAY_SANDBOX_PAYU_NOTIFY_SECRET", PAYU_NOTIFY_SECRET),
        ]);
        if let Some(point) = failpoint {
            env.push(("SMARTPAY_FAILPOINTS", point));
        }
        Server::start(self.data_dir(), self.port, &env)
    }

    /// GET /payment/status/{id} as JSON.
    pub fn status(&self, base: &str, transaction: &str) -> Value {
        let (status, body) = http(
            base,
            "GET",
            &format!("/payment/status/{transaction}"),
            &[("Authorization", &basic(&self.merchant))],
            None,
        );
        assert_eq!(status, 200, "status of {transaction}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Approves (or declines) a PayU order as its shopper would, through the fake's test controls.
    pub fn payu_decide(&self, order_id: &str, approve: bool) {
        let (status, body) =
            self.payu.post(&format!("/test/orders/{order_id}/script"), &json!({"approve": approve}).to_string());
        assert_eq!(status, 204, "scripting PayU order {order_id}: {body}");
    }

    /// Asserts that SmartPay's `status` of `transaction` is what its provider did.
    pub fn assert_agrees(&self, transaction: &str, via: Via, status: &str) {
        let (record, expect) = match via {
            Via::Acquirer => {
                let a = self.acquirer.by_key("/v1/authorizations?idempotencyKey=", transaction);
                let expect = match a.as_ref().map(|a| (a["status"].as_str().unwrap_or(""), a["captured"].as_i64())) {
                    None => "AUTHORIZATION_FAILED",
                    Some(("DECLINED", _)) => "AUTHORIZATION_FAILED",
                    Some(("AUTHORIZED", Some(AMOUNT))) => "CAPTURED",
                    Some(other) => panic!("{transaction}: the acquirer has it undecided or half captured: {other:?}"),
                };
                (a, expect)
            }
            Via::Payu => {
                let o = self.payu.by_key("/api/v2_1/orders?extOrderId=", transaction);
                let expect = match o.as_ref().map(|o| (o["status"].as_str().unwrap_or(""), o["captured"].as_i64())) {
                    None => "AUTHORIZATION_FAILED",
                    Some(("CANCELED" | "REJECTED", _)) => "AUTHORIZATION_FAILED",
                    Some(("COMPLETED", Some(AMOUNT))) => "CAPTURED",
                    Some(other) => panic!("{transaction}: PayU has it undecided or half captured: {other:?}"),
                };
                (o, expect)
            }
        };
        assert_eq!(status, expect, "{transaction}: SmartPay says {status}, the provider has {record:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Paying

/// Creates a 10.99 EUR checkout: (transactionId, checkoutToken).
pub fn checkout(base: &str, m: &Merchant) -> std::io::Result<(String, String)> {
    let (status, text) =
        try_http(base, "POST", "/payment/creation", &[("Authorization", &basic(m))], Some(&checkout_body(m)))?;
    if status != 200 {
        return Err(std::io::Error::other(format!("checkout creation answered {status}: {text}")));
    }
    let v: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    Ok((v["transactionId"].as_str().unwrap().to_owned(), v["checkoutToken"].as_str().unwrap().to_owned()))
}

/// What the widget API answered: its HTTP status and body (`0`/empty when the server died).
pub struct Paid {
    pub id: String,
    pub http: u16,
    pub answer: String,
}

impl Paid {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.answer)
            .unwrap_or_else(|e| panic!("{} answered {} ({e}): {}", self.id, self.http, self.answer))
    }
}

/// Pays a new checkout with `card` (CVC 737, or `cvc`) through the widget API. The request may
/// die with the server; that is reported as HTTP status 0.
pub fn pay_card(base: &str, m: &Merchant, number: &str, cvc: &str, holder: Option<&str>) -> Paid {
    let (id, token) = checkout(base, m).unwrap();
    let mut card = json!({"number": number, "expiry": future_expiry(), "cvc": cvc});
    if let Some(h) = holder {
        card["holderName"] = json!(h);
    }
    let headers = [("Origin", base), ("X-Checkout-Token", token.as_str())];
    let (http, answer) =
        try_http(base, "POST", "/widget/api/payments", &headers, Some(&card.to_string())).unwrap_or((0, String::new()));
    Paid { id, http, answer }
}

/// Starts a PAYU payment of a new checkout: (its payment, the PayU order id from its approval
/// page URL).
pub fn pay_payu(base: &str, m: &Merchant) -> (Paid, String) {
    let (id, token) = checkout(base, m).unwrap();
    let headers = [("Origin", base), ("X-Checkout-Token", token.as_str())];
    let (http, answer) =
        try_http(base, "POST", "/widget/api/payments/redirect", &headers, Some(r#"{"paymentMethod":"PAYU"}"#))
            .unwrap_or((0, String::new()));
    let paid = Paid { id, http, answer };
    let v = paid.json();
    assert_eq!((paid.http, v["transactionStatus"].as_str()), (200, Some("AUTHORIZATION_PENDING")), "{v}");
    let url = v["challengeUrl"].as_str().unwrap_or_else(|| panic!("no approval page: {v}"));
    let order = url.trim_end_matches('/').rsplit('/').next().unwrap().to_owned();
    (paid, order)
}

// ---------------------------------------------------------------------------------------------
// Crashes

/// Waits (bounded) for a server that hit an armed failpoint to abort; returns its stderr.
pub fn wait_abort(server: Server, point: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let mut child = server.child;
    let deadline = Instant::now() + SETTLE;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server never reached failpoint {point}: {}",
                std::fs::read_to_string(&server.stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&server.stderr).unwrap();
    assert_eq!(exit.signal(), Some(6), "{point}: the server aborted ({exit:?}): {log}");
    assert!(log.contains(&format!("failpoint {point}: aborting")), "{point}: {log}");
    log
}

/// Leases the dead server held: (job payment ids, notification ids) still leased now.
pub fn leases(data_dir: &Path) -> (Vec<String>, Vec<String>) {
    let conn = rusqlite::Connection::open(db_path(data_dir)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ids = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([now], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    (
        ids("SELECT payment_id FROM jobs WHERE lease_until_ms > ?1"),
        ids("SELECT id FROM notifications WHERE lease_until_ms > ?1"),
    )
}

/// Ends every lease the dead server held, as the passing of the lease time (60 s for jobs,
/// 120 s for notifications; not configurable) would. The server must be down.
pub fn end_leases(data_dir: &Path) {
    let conn = rusqlite::Connection::open(db_path(data_dir)).unwrap();
    conn.execute_batch("UPDATE jobs SET lease_until_ms = 0; UPDATE notifications SET lease_until_ms = 0;").unwrap();
}

fn db_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("smartpay.db")
}

/// Runs a CLI command that must fail: its stderr.
pub fn cli_refused(data_dir: &Path, args: &[&str]) -> String {
    let out =
        Command::new(bin()).arg("--data-dir").arg(data_dir).args(args).env_remove("SMARTPAY_CONFIG").output().unwrap();
    assert!(!out.status.success(), "smartpay {args:?} was accepted: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
