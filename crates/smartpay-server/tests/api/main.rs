//! API tests: a real server on a random loopback port, a fresh SQLite database per test, and a
//! real HTTP client. Test names read as sentences.

// Test helpers fail loudly: unwrap and panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod checkout;
mod edge;
mod idempotency;
mod modifications;
mod notifications;
mod ops;
mod payments;
mod pending;
mod races;
mod vault;

use std::sync::Arc;

use serde_json::{Value, json};
use smartpay_server::{AppState, Config, Running, provision};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub merchant: Creds,
    pub other: Creds,
    pub _dir: tempfile::TempDir,
    /// The PostgreSQL database of this app, when the suite runs on PostgreSQL (dropped last).
    pub db: Option<PgDatabase>,
}

/// A PostgreSQL database of one test app: created from the admin URL in
/// `API_TESTS_DATABASE_URL` (the suite then runs on PostgreSQL), dropped with the app.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

/// Runs `work` on a runtime of its own on another thread: usable from sync code inside a test's
/// runtime (drops, helpers that run after the server stopped).
fn on_own_runtime<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(work)
    })
    .join()
    .unwrap()
}

impl PgDatabase {
    fn create(admin_url: &str) -> PgDatabase {
        let name = format!("smartpay_api_{}", uuid::Uuid::new_v4().simple());
        let (admin, n) = (admin_url.to_owned(), name.clone());
        on_own_runtime(async move {
            let (c, conn) =
                tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("PostgreSQL for the API tests");
            tokio::spawn(conn);
            c.batch_execute(&format!("CREATE DATABASE {n}")).await.unwrap();
        });
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        PgDatabase { admin_url: admin_url.to_owned(), url: format!("{base}/{name}"), name }
    }

    /// Rows of `table` (for tests that count what was written).
    pub fn count(&self, table: &str) -> i64 {
        let (url, sql) = (self.url.clone(), format!("SELECT COUNT(*) FROM {table}"));
        on_own_runtime(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, n) = (self.admin_url.clone(), self.name.clone());
        on_own_runtime(async move {
            if let Ok((c, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")).await;
            }
        });
    }
}

#[derive(Clone)]
pub struct Creds {
    pub merchant_key: String,
    pub auth_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub basic_id: String,
    pub oauth_id: String,
}

impl Creds {
    fn from(p: &provision::ProvisionedMerchant) -> Self {
        Creds {
            merchant_key: p.merchant.id.clone(),
            auth_key: p.basic.secret.to_string(),
            client_id: p.oauth.credential.client_id.clone().unwrap_or_default(),
            client_secret: p.oauth.secret.to_string(),
            basic_id: p.basic.credential.id.clone(),
            oauth_id: p.oauth.credential.id.clone(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(tweak, Arc::new(smartpay_domain::time::SystemClock)).await
}

/// A server whose time comes from `clock` (tests move a `ManualClock` instead of sleeping).
pub async fn spawn_app_with_clock(
    tweak: impl FnOnce(&mut Config),
    clock: Arc<dyn smartpay_domain::time::Clock>,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        auth_refresh_ms: 50,
        sweep_interval_ms: 50,
        bootstrap_sandbox_merchant: false,
        // Tests authenticate wrongly on purpose, many times: the brute-force limit has its own test.
        auth_failures_per_minute: 100_000,
        auth_failures_per_address_per_minute: 100_000,
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    tweak(&mut config);
    let db = std::env::var("API_TESTS_DATABASE_URL").ok().filter(|u| !u.is_empty()).map(|admin| {
        let db = PgDatabase::create(&admin);
        // Every node sharing a database is given the same master key (and so would a second app).
        let key = dir.path().join("master.key");
        use base64::Engine;
        let bytes: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7 % 251).unwrap() ^ 0x5a);
        std::fs::write(&key, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)).unwrap();
        config.master_key_file = Some(key);
        config.database_url = Some(db.url.clone());
        db
    });
    let (store, secrets) = smartpay_server::connect_store(&config).await.unwrap();
    let a = provision::create_merchant(store.as_ref(), &secrets, "Shop A").await.unwrap();
    let b = provision::create_merchant(store.as_ref(), &secrets, "Shop B").await.unwrap();
    let state = AppState::with_clock(config, store, secrets, clock).await.unwrap();
    let running = smartpay_server::start(state).await.unwrap();
    TestApp {
        base: format!("http://{}", running.local_addr),
        client: reqwest::Client::new(),
        running: Some(running),
        merchant: Creds::from(&a),
        other: Creds::from(&b),
        _dir: dir,
        db,
    }
}

impl TestApp {
    pub fn state(&self) -> &Arc<AppState> {
        &self.running.as_ref().unwrap().state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL on the operators' listener (`/metrics`).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.as_ref().unwrap().admin_addr.unwrap())
    }

    pub fn basic(&self, c: &Creds) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.merchant_key, c.auth_key))
        )
    }

    /// A valid Create Checkout body for `c`.
    pub fn body(&self, c: &Creds) -> Value {
        json!({
            "merchantKey": c.merchant_key,
            "payment": {"amount": 10.99, "currencyCode": "EUR", "description": "Purchase 1x product ABC"},
            "consumer": {"firstName": "Butcher", "lastName": "Hells", "emailAddress": "hells.butcher_001@mail.com"},
            "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DE"}
        })
    }

    pub async fn create_raw(&self, auth: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut rb = self
            .client
            .post(self.url("/payment/creation"))
            .header("Authorization", auth)
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.body(body.to_owned()).send().await.unwrap()
    }

    pub async fn create(&self, c: &Creds) -> Value {
        let r = self.create_raw(&self.basic(c), &self.body(c).to_string(), &[]).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn status(&self, auth: &str, id: &str) -> reqwest::Response {
        self.client.get(self.url(&format!("/payment/status/{id}"))).header("Authorization", auth).send().await.unwrap()
    }

    pub async fn token(&self, c: &Creds) -> String {
        let r = self
            .client
            .post(self.url("/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }
}

/// The error codes of a MOD2 body, with their properties.
pub fn codes(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap().to_owned(), e["property"].as_str().unwrap_or("").to_owned()))
        .collect()
}
