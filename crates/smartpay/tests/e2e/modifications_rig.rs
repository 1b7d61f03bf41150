//! The pieces the modification crash tests share: the sandbox acquirer as its own process (it
//! outlives every server crash and is the witness of the provider-side effects), a server wired
//! to it, card payments through the widget API, modification requests, and `smartpay verify`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// The bearer key between the server and the acquirer (at least 16 characters).
pub const ACQUIRER_KEY: &str = "e2e-acquirer-key-0123456789";
const BEARER: &str = "Bearer e2e-acquirer-key-0123456789";

/// `smartpay sandbox-acquirer` running as its own process; killed when dropped.
pub struct Acquirer {
    child: Child,
    pub api: String,
}

impl Acquirer {
    /// Starts the acquirer for a SmartPay reachable at `smartpay_port`.
    pub fn start(log_dir: &Path, smartpay_port: u16) -> Acquirer {
        let (api_port, public_port) = (free_port(), free_port());
        let log = |name: &str| Stdio::from(std::fs::File::create(log_dir.join(name)).unwrap());
        let child = Command::new(bin())
            .args(["sandbox-acquirer", "--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--public-listen", &format!("127.0.0.1:{public_port}"), "--key", ACQUIRER_KEY])
            .args(["--smartpay-url", &format!("http://127.0.0.1:{smartpay_port}")])
            .env_remove("SMARTPAY_CONFIG")
            .stdout(log("acquirer.out"))
            .stderr(log("acquirer.err"))
            .spawn()
            .unwrap();
        let acquirer = Acquirer { child, api: format!("http://127.0.0.1:{api_port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Any answer of the authenticated API (404 for an unknown id) means it is up.
            if let Ok((404, _)) = try_http(&acquirer.api, "GET", "/v1/authorizations/none", &acquirer.auth(), None) {
                return acquirer;
            }
            assert!(Instant::now() < deadline, "the sandbox acquirer did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn auth(&self) -> [(&'static str, &'static str); 1] {
        [("Authorization", BEARER)]
    }

    /// The acquirer's own account of an authorization: (captured, refunded) in minor units, and
    /// whether it was cancelled.
    pub fn effects(&self, reference: &str) -> (i64, i64, bool) {
        let (status, body) = http(&self.api, "GET", &format!("/v1/authorizations/{reference}"), &self.auth(), None);
        assert_eq!(status, 200, "acquirer lookup of {reference}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        (v["captured"].as_i64().unwrap(), v["refunded"].as_i64().unwrap(), v["cancelled"].as_bool().unwrap())
    }
}

impl Drop for Acquirer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data dir with one merchant in manual capture mode, a fixed server port, and the external
/// acquirer the server is started against.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub merchant: Merchant,
    pub acquirer: Acquirer,
}

impl Rig {
    pub fn new(name: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let merchant = create_merchant(dir.path(), name);
        cli(dir.path(), &["merchant", "capture-mode", &merchant.key, "manual"]);
        let port = free_port();
        let acquirer = Acquirer::start(dir.path(), port);
        Rig { dir, port, merchant, acquirer }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `smartpay serve` against the external acquirer, with `failpoint` armed when given.
    pub fn start(&self, failpoint: Option<&str>) -> Server {
        let mut env = vec![
            ("SMARTPAY_SANDBOX_ACQUIRER_URL", self.acquirer.api.as_str()),
            ("SMARTPAY_SANDBOX_ACQUIRER_KEY", ACQUIRER_KEY),
            // Every card comes from this one test client.
            ("SMARTPAY_IP_SUBMITS_PER_MINUTE", "1000000"),
            ("SMARTPAY_MERCHANT_SUBMITS_PER_MINUTE", "1000000"),
        ];
        if let Some(point) = failpoint {
            env.push(("SMARTPAY_FAILPOINTS", point));
        }
        Server::start(self.data_dir(), self.port, &env)
    }

    /// The merchant's Basic authorization header value.
    pub fn auth(&self) -> String {
        basic(&self.merchant)
    }

    /// A modification request body: `amount` in major units of EUR, or the full/remaining amount.
    pub fn body(&self, transaction: &str, modification_id: &str, amount: Option<&str>) -> String {
        let mut b =
            json!({"transactionId": transaction, "merchantKey": self.merchant.key, "modificationId": modification_id});
        if let Some(a) = amount {
            b["modifiedAmount"] = json!({"amount": a.parse::<f64>().unwrap(), "currencyCode": "EUR"});
        }
        b.to_string()
    }

    /// POST /payment/{op} with `body`; connection failures are returned, not raised.
    pub fn modify(&self, base: &str, op: &str, body: &str) -> std::io::Result<(u16, String)> {
        try_http(base, "POST", &format!("/payment/{op}"), &[("Authorization", &self.auth())], Some(body))
    }

    /// GET /payment/status/{id} as JSON.
    pub fn status(&self, base: &str, transaction: &str) -> Value {
        let (status, body) =
            http(base, "GET", &format!("/payment/status/{transaction}"), &[("Authorization", &self.auth())], None);
        assert_eq!(status, 200, "status of {transaction}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A card expiry three years from today, `MM/YY`.
pub fn future_expiry() -> String {
    let (year, month, _) = smartpay_domain::Millis::now().date();
    format!("{month:02}/{:02}", (year + 3) % 100)
}

/// Creates a 10.99 EUR checkout and pays it with `card` through the widget API:
/// (transactionId, the widget's HTTP status).
pub fn try_pay(base: &str, m: &Merchant, card: &str) -> std::io::Result<(String, u16)> {
    let (status, text) =
        try_http(base, "POST", "/payment/creation", &[("Authorization", &basic(m))], Some(&checkout_body(m)))?;
    if status != 200 {
        return Err(std::io::Error::other(format!("checkout creation answered {status}: {text}")));
    }
    let created: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    let (id, token) = match (created["transactionId"].as_str(), created["checkoutToken"].as_str()) {
        (Some(id), Some(token)) => (id.to_owned(), token.to_owned()),
        _ => return Err(std::io::Error::other("checkout without id or token")),
    };
    let card = json!({"number": card, "expiry": future_expiry(), "cvc": "737"}).to_string();
    let (paid, _) =
        try_http(base, "POST", "/widget/api/payments", &[("Origin", base), ("X-Checkout-Token", &token)], Some(&card))?;
    Ok((id, paid))
}

/// [`try_pay`] that must succeed: the transactionId of an authorized payment.
pub fn pay(base: &str, m: &Merchant) -> String {
    let (id, status) = try_pay(base, m, "4111111111111111").unwrap();
    assert_eq!(status, 200, "the widget payment of {id} was refused");
    id
}

/// `smartpay --data-dir D verify`: (exit success, stdout).
pub fn verify(data_dir: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("verify")
        .env_remove("SMARTPAY_CONFIG")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asserts that `smartpay verify` finds no violation.
pub fn assert_verified(data_dir: &Path, when: &str) {
    let (ok, report) = verify(data_dir);
    assert!(ok, "{when}: smartpay verify found violations:\n{report}");
    assert!(report.contains(" 0 violations"), "{when}: {report}");
}

/// A major-unit amount of the API (`10.99`) in minor units.
pub fn minor(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not an amount: {v}")) * 100.0).round() as i64
}

/// The database file of a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("smartpay.db")
}
