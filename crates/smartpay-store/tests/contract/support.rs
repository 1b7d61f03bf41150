//! What every contract test needs: a store of each kind with its own empty database, records
//! to put in it, and a way to run calls truly at the same time.

use std::future::Future;
use std::sync::Arc;

use smartpay_domain::modification::CaptureMode;
use smartpay_domain::{Event, Millis, PaymentStatus};
use smartpay_store::*;

/// A store as the contract tests hold it: derefs to `&dyn Store`, and clones into concurrent
/// tasks.
pub type Shared = Arc<dyn Store>;

/// The PostgreSQL server the `postgres` variants use unless `TEST_DATABASE_URL` says.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections per PostgreSQL store: enough for real races, few enough for parallel tests.
const PG_CONNECTIONS: usize = 12;

/// A store with a database of its own, dropped with it.
pub struct Harness {
    /// Dropped first: the store lets go of its database before the database goes.
    pub store: Arc<dyn Store>,
    backing: Backing,
}

enum Backing {
    Sqlite { dir: tempfile::TempDir },
    Postgres { db: PgDatabase },
}

impl Harness {
    /// A SQLite store in a fresh temporary directory.
    pub fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = open_sqlite(&dir);
        Harness { store: Arc::new(store), backing: Backing::Sqlite { dir } }
    }

    /// A PostgreSQL store on a database created for this test (dropped when the harness is,
    /// also when the test panics). Panics — failing the test — when PostgreSQL is unreachable.
    pub async fn postgres() -> Harness {
        let db = PgDatabase::create().await;
        let store = PgStore::connect(&db.url, PG_CONNECTIONS)
            .await
            .unwrap_or_else(|e| panic!("PgStore::connect to the test database {}: {e}", db.name));
        Harness { store: Arc::new(store), backing: Backing::Postgres { db } }
    }

    /// Another store on the same database: a restarted process, or a second node.
    pub async fn another_store(&self) -> Arc<dyn Store> {
        match &self.backing {
            Backing::Sqlite { dir } => Arc::new(open_sqlite(dir)),
            Backing::Postgres { db } => {
                Arc::new(PgStore::connect(&db.url, PG_CONNECTIONS).await.expect("second PgStore"))
            }
        }
    }

    /// A client of its own on the PostgreSQL database behind the store; `None` on SQLite.
    pub async fn pg_client(&self) -> Option<tokio_postgres::Client> {
        match &self.backing {
            Backing::Sqlite { .. } => None,
            Backing::Postgres { db } => Some(pg_connect(&db.url).await),
        }
    }

    /// Runs one SQL statement directly on the database (behind the store's back); the
    /// database's refusal as text.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), String> {
        match &self.backing {
            Backing::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("smartpay.db")).map_err(|e| e.to_string())?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
                conn.execute(sql, []).map(|_| ()).map_err(|e| e.to_string())
            }
            Backing::Postgres { db } => {
                let client = pg_connect(&db.url).await;
                client.execute(sql, &[]).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}

fn open_sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(dir.path().join("smartpay.db"))).expect("SqliteStore::open")
}

/// The server to create test databases on.
fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `name` (any `?options` kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_start..].find('/').map_or(base.len(), |i| host_start + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// A client on `url`, its connection driven by a task of the current runtime.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the contract suite's postgres variants and is not reachable at {url}: {e} \
             (start it, or set TEST_DATABASE_URL)"
        )
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database created for one test; dropped (`WITH (FORCE)`, closing whatever is still
/// connected) when this value is, on a thread of its own so that it also works while a
/// panicking test unwinds inside its runtime.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    server: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let server = server_url();
        let name = format!("smartpay_contract_{}", uuid::Uuid::new_v4().simple());
        let admin = pg_connect(&server).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = with_database(&server, &name);
        PgDatabase { name, url, server }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
                let driver = tokio::spawn(connection);
                let r = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                drop(client);
                let _ = driver.await;
                r
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}: the dropping thread panicked", self.name),
        }
    }
}

/// Runs `n` calls of `f` as separate tasks released together, and collects their results in
/// call order. `f` gets its own handle on the store and the call's index.
pub async fn concurrently<T, F, Fut>(store: &Arc<dyn Store>, n: usize, f: F) -> Vec<T>
where
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    // Open the connections first (pings at the same time), so that the racing calls are not
    // spread out by connection set-up and really meet in the database.
    let warm: Vec<_> = (0..n.min(PG_CONNECTIONS))
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.ping().await })
        })
        .collect();
    for w in warm {
        w.await.expect("a warm-up ping panicked").expect("warm-up ping");
    }
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let call = f(store.clone(), i);
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("a concurrent call panicked"));
    }
    out
}

pub fn merchant_record(id: &str, created_at: i64) -> Merchant {
    Merchant {
        id: id.into(),
        name: format!("Shop {id}"),
        status: MerchantStatus::Active,
        capture_mode: CaptureMode::Manual,
        capture_delay_seconds: None,
        auto_cancel_seconds: None,
        identity_jwks: None,
        created_at: Millis(created_at),
    }
}

/// Creates an active merchant.
pub async fn merchant(store: &Shared, id: &str) {
    store.create_merchant(merchant_record(id, 1)).await.unwrap();
}

/// A checkout of 10.99 EUR created at 1 000 that expires at 61 000; its token digest is its id.
pub fn checkout(id: &str, merchant: &str, claims: Vec<IdempotencyClaim>) -> NewCheckout {
    NewCheckout {
        id: id.into(),
        merchant_id: merchant.into(),
        amount_minor: 1099,
        currency: "EUR".into(),
        description: "d".into(),
        partner_reference: None,
        customer_account_id: None,
        external_order_reference: None,
        custom_references: None,
        culture: None,
        request_json: "{}".into(),
        token_digest: id.as_bytes().to_vec(),
        identity_subject: None,
        created_at: Millis(1_000),
        expires_at: Millis(61_000),
        claims,
    }
}

/// An `Idempotency-Key` claim that expires after a day.
pub fn claim(key: &str, fingerprint: &[u8]) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope::Header,
        key: key.into(),
        route: "POST /payment/creation".into(),
        fingerprint: fingerprint.to_vec(),
        response_enc: format!("response-{key}").into_bytes(),
        expires_at: Some(Millis(86_401_000)),
    }
}

/// A `partnerReference` claim (kept as long as the payment).
pub fn partner_claim(reference: &str, fingerprint: &[u8]) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope::PartnerReference,
        key: reference.into(),
        route: "POST /payment/creation".into(),
        fingerprint: fingerprint.to_vec(),
        response_enc: format!("response-{reference}").into_bytes(),
        expires_at: None,
    }
}

/// Stores a plain checkout.
pub async fn created(store: &Shared, merchant: &str, id: &str) {
    assert_eq!(store.create_checkout(checkout(id, merchant, vec![])).await.unwrap(), CreateOutcome::Created);
}

/// Moves a `CREATED` payment to `AUTHORIZATION_PENDING` at 2 000, with `update`.
pub async fn submit(store: &Shared, id: &str, update: PaymentUpdate) {
    let to = store
        .apply_event(id, PaymentStatus::Created, Event::AuthorizationRequested, Millis(2_000), update)
        .await
        .unwrap();
    assert_eq!(to, Some(PaymentStatus::AuthorizationPending));
}

/// A checkout of `merchant`, submitted and authorized (at 3 000) by the sandbox provider.
pub async fn authorized(store: &Shared, merchant: &str, id: &str) {
    created(store, merchant, id).await;
    submit(store, id, PaymentUpdate { provider: Some("sandbox".into()), ..Default::default() }).await;
    let to = store
        .apply_event(
            id,
            PaymentStatus::AuthorizationPending,
            Event::Authorized,
            Millis(3_000),
            PaymentUpdate { reconciliation_reference_id: Some(format!("psp-{id}")), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(to, Some(PaymentStatus::AuthorizationCompleted));
}

/// The statuses of a payment's history, in order.
pub async fn history(store: &Shared, merchant: &str, id: &str) -> Vec<PaymentStatus> {
    store.payment(merchant, id).await.unwrap().expect("payment").history.iter().map(|h| h.status).collect()
}

/// Merchant `m1`'s request to capture all of `payment`, made through the API at 10 000, with no
/// currency, description or resolution job of its own.
pub fn full_capture(pk: &str, modification_id: &str, payment: &str) -> NewModification {
    NewModification {
        pk: pk.into(),
        merchant_id: "m1".into(),
        payment_id: payment.into(),
        modification_id: modification_id.into(),
        request: ModificationRequest::Merchant(smartpay_domain::modification::Request::Capture(None)),
        currency: None,
        description: None,
        custom_references: None,
        fingerprint: b"capture".to_vec(),
        at: Millis(10_000),
        origin: EventOrigin::Api,
        resolve_at: None,
        authorize_first: None,
    }
}
