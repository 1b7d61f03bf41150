//! The pieces the vault tests share: key and data directories kept apart (the server makes every
//! file in its data directory private at start, which would hide a key file's bad mode), `keys`
//! commands with their own environment, canary card numbers, and the account API and widget
//! calls that store and pay with payment options, each response body recorded for the scans.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use super::*;

/// A temporary root holding `data/` (the server's data directory) and `keys/` (key files).
pub struct Dirs {
    _root: tempfile::TempDir,
    pub data: PathBuf,
    pub keys: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let (data, keys) = (root.path().join("data"), root.path().join("keys"));
        std::fs::create_dir(&keys).unwrap();
        Dirs { _root: root, data, keys }
    }

    /// A path in the key directory.
    pub fn key(&self, name: &str) -> PathBuf {
        self.keys.join(name)
    }

    /// A new key file from `smartpay keys generate-kek`.
    pub fn generate_kek(&self, name: &str) -> PathBuf {
        let path = self.key(name);
        let out = cli_env(&self.data, &["keys", "generate-kek", path.to_str().unwrap()], &[]);
        assert!(out.status.success(), "generate-kek: {}", String::from_utf8_lossy(&out.stderr));
        path
    }
}

/// Runs `smartpay --data-dir <data> <args>` with `env` added; the caller judges the outcome.
pub fn cli_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir").arg(data).args(args).env_remove("SMARTPAY_CONFIG");
    for k in ["SMARTPAY_VAULT_KEK", "SMARTPAY_VAULT_KEK_FILE", "SMARTPAY_VAULT_KEK_COMPONENTS"] {
        cmd.env_remove(k);
    }
    cmd.env_remove("SMARTPAY_VAULT_PREVIOUS_KEK_FILE").env_remove("SMARTPAY_FAILPOINTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// [`cli_env`] that must succeed; its stdout.
pub fn cli_ok(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli_env(data, args, env);
    assert!(
        out.status.success(),
        "smartpay {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `prefix` completed with the one check digit that makes it Luhn-valid.
pub fn luhn_complete(prefix: &str) -> String {
    (0..10u32).map(|d| format!("{prefix}{d}")).find(|n| smartpay_domain::card::luhn_ok(n)).unwrap()
}

/// Five digits unique to this process and moment: canary card numbers built on them are used
/// nowhere else.
pub fn run_seed() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:05}", (u128::from(std::process::id()) * 7919 + nanos / 1000) % 100_000)
}

/// A card expiry three years ahead: (MM, YYYY).
pub fn future_expiry() -> (String, String) {
    let (year, month, _) = smartpay_domain::Millis::now().date();
    (format!("{month:02}"), format!("{}", year + 3))
}

/// Store Payment Option's body (reference §3.13) for an authenticated (3-D Secure "Y") card.
pub fn store_body(pan: &str, brand: &str) -> String {
    let (month, year) = future_expiry();
    json!({
        "paymentOption": {"card": {
            "3DS": {"3DS2": {"acsEci": "05", "authenticationToken": "AAABBEg0VhI0VniQEjRWAAAAAAA", "transactionStatus": "Y"}},
            "cardDetails": {"cardNumber": pan, "cardBrand": brand, "cardExpiryMonth": month, "cardExpiryYear": year,
                "cardHolderName": "Vault Holder"}
        }},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DEU"}
    })
    .to_string()
}

/// The merchant's API and the widget's API on one server, recording every response body.
pub struct Client<'a> {
    pub base: String,
    pub merchant: &'a Merchant,
    pub seen: RefCell<Vec<String>>,
}

impl<'a> Client<'a> {
    pub fn new(base: &str, merchant: &'a Merchant) -> Client<'a> {
        Client { base: base.to_owned(), merchant, seen: RefCell::new(Vec::new()) }
    }

    /// A merchant API call with Basic authentication.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let auth = basic(self.merchant);
        let (status, text) = http(&self.base, method, path, &[("Authorization", &auth)], body);
        self.seen.borrow_mut().push(text.clone());
        (status, text)
    }

    /// A call of the card frame (same origin, checkout token).
    pub fn widget(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
        let (status, text) =
            http(&self.base, method, path, &[("Origin", &self.base), ("X-Checkout-Token", token)], body);
        self.seen.borrow_mut().push(text.clone());
        (status, text)
    }

    /// Create Checkout naming `account` (which creates the vault account): (checkoutToken, transactionId).
    pub fn checkout(&self, account: Option<&str>) -> (String, String) {
        let mut body: Value = serde_json::from_str(&checkout_body(self.merchant)).unwrap();
        if let Some(a) = account {
            body["customerAccountId"] = json!(a);
        }
        let (status, text) = self.api("POST", "/payment/creation", Some(&body.to_string()));
        assert_eq!(status, 200, "Create Checkout: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        (v["checkoutToken"].as_str().unwrap().to_owned(), v["transactionId"].as_str().unwrap().to_owned())
    }

    /// Store Payment Option through the API: the new option's reference.
    pub fn store(&self, account: &str, pan: &str, brand: &str) -> String {
        let (status, text) =
            self.api("POST", &format!("/accounts/{account}/paymentOptions"), Some(&store_body(pan, brand)));
        assert_eq!(status, 201, "Store Payment Option: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["storedPaymentOptionReference"].as_str().unwrap().to_owned()
    }

    /// Get All Payment Options: (status, the options when 200).
    pub fn list(&self, account: &str) -> (u16, Vec<Value>) {
        let (status, text) = self.api("GET", &format!("/accounts/{account}/paymentOptions"), None);
        let options = if status == 200 {
            serde_json::from_str::<Value>(&text).unwrap()["result"].as_array().unwrap().clone()
        } else {
            Vec::new()
        };
        (status, options)
    }

    /// The references of an account's options (must answer 200), sorted.
    pub fn references(&self, account: &str) -> Vec<String> {
        let (status, options) = self.list(account);
        assert_eq!(status, 200, "listing {account}");
        let mut refs: Vec<String> = options.iter().map(|o| o["reference"].as_str().unwrap().to_owned()).collect();
        refs.sort();
        refs
    }

    /// Pays a new checkout of `account` with the stored option `reference` through the widget
    /// API; the answer (checked to be an approval).
    pub fn pay_stored(&self, account: &str, reference: &str) -> Value {
        let (token, id) = self.checkout(Some(account));
        let body = json!({"storedPaymentOptionReference": reference}).to_string();
        let (status, text) = self.widget("POST", "/widget/api/payments", &token, Some(&body));
        assert_eq!(status, 200, "paying with stored option {reference}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["transactionId"], id.as_str());
        assert_approved(&v);
        assert_eq!(v["storedPaymentOptionReference"], reference, "{text}");
        let (status, text) = self.api("GET", &format!("/payment/status/{id}"), None);
        assert_eq!(status, 200);
        let s: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(s["transactionOverview"]["customerAccountId"], account);
        v
    }

    /// Pays a new checkout of `account` with a newly entered card, asking to store it; the answer.
    pub fn pay_and_store(&self, account: &str, pan: &str, cvc: &str) -> Value {
        let (token, _) = self.checkout(Some(account));
        let (month, year) = future_expiry();
        let card = json!({"number": pan, "expiry": format!("{month}/{}", &year[2..]), "cvc": cvc,
            "holderName": "Vault Holder", "storeCard": true})
        .to_string();
        let (status, text) = self.widget("POST", "/widget/api/payments", &token, Some(&card));
        assert_eq!(status, 200, "paying and storing: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_approved(&v);
        assert!(v.get("storeError").is_none(), "storing failed: {text}");
        assert!(v["storedPaymentOptionReference"].is_string(), "no option reference: {text}");
        v
    }
}

/// A widget answer that authorized the payment.
pub fn assert_approved(answer: &Value) {
    let status = answer["transactionStatus"].as_str().unwrap_or_default();
    assert!(["AUTHORIZATION_COMPLETED", "CAPTURE_PENDING", "CAPTURED"].contains(&status), "not approved: {answer}");
}

/// The error code of an error body (`vault_unavailable`, …), found anywhere in it.
pub fn has_code(body: &str, code: &str) -> bool {
    body.contains(&format!("\"{code}\""))
}
