//! The Rust load generator (reqwest): the multi-step phases wrk cannot drive — the whole
//! checkout flow, preparing authorized payments, full captures and full refunds — and
//! `--load-only`. Every phase spreads its clients over the nodes of a [`Target`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::report::Row;

/// Where the load goes: one base URL per node, the Authorization values to use in turn, and
/// the `Origin` the card frame's calls carry (the public URL every node shares).
#[derive(Clone)]
pub struct Target {
    pub bases: Vec<String>,
    pub auths: Vec<String>,
    pub origin: String,
}

impl Target {
    /// Client `worker`'s node and Authorization value: nodes in turn, and over the clients of a
    /// node the Authorization values in turn.
    fn for_worker(&self, worker: usize) -> (String, String) {
        let n = self.bases.len().max(1);
        let auth = if self.auths.is_empty() {
            String::new()
        } else {
            self.auths[(worker / n + worker % n) % self.auths.len()].clone()
        };
        (self.bases[worker % n].clone(), auth)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Create,
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
            Phase::Create => None,
        }
    }
}

/// Per-step latencies of the whole flow: create → card submit → status.
pub struct FlowOutcome {
    pub flows: usize,
    pub errors: usize,
    pub seconds: f64,
    pub steps: [Vec<u32>; 3],
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn pct(sorted: &[u32], p: f64) -> f64 {
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

/// The integration guide's Create Checkout body.
pub fn body(merchant_key: &str) -> String {
    json!({
        "merchantKey": merchant_key,
        "payment": {"amount": 10.99, "currencyCode": "EUR", "description": "Purchase 1x product ABC"},
        "consumer": {"firstName": "Butcher", "lastName": "Hells", "emailAddress": "hells.butcher_001@mail.com"},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DE"}
    })
    .to_string()
}

fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(concurrency).tcp_nodelay(true).build()?)
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
async fn pay(client: &reqwest::Client, base: &str, origin: &str, token: &str, report: bool) -> bool {
    let paid = client
        .post(format!("{base}/widget/api/payments"))
        .header("Origin", origin)
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

/// Drives the integration guide's whole flow with the approving test card for `duration`.
pub async fn drive_flow(
    target: &Target,
    body: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<FlowOutcome> {
    let client = client(concurrency)?;
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (base, auth) = target.for_worker(worker);
        let (client, body, origin) = (client.clone(), body.to_owned(), target.origin.clone());
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
                if !pay(&client, &base, &origin, &token, errors == 0).await {
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
pub async fn prepare(target: &Target, body: &str, count: usize, concurrency: usize) -> anyhow::Result<Vec<String>> {
    let client = client(concurrency)?;
    let (claimed, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (base, auth) = target.for_worker(worker);
        let (client, body, origin) = (client.clone(), body.to_owned(), target.origin.clone());
        let (claimed, failed) = (claimed.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut paid = Vec::new();
            // Gives up after as many failures as payments wanted: the server is not healthy.
            while claimed.fetch_add(1, Ordering::Relaxed) < count && failed.load(Ordering::Relaxed) < count {
                let ok = match create(&client, &base, &auth, &body).await {
                    Some((id, token)) => {
                        pay(&client, &base, &origin, &token, failed.load(Ordering::Relaxed) == 0).await.then_some(id)
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

/// The result of a phase of the Rust generator.
pub struct Outcome {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub latencies_us: Vec<u32>,
    /// The payments modified (Capture, Refund).
    pub ids: Vec<String>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn row(&self, name: &str) -> Row {
        Row {
            name: name.to_owned(),
            rps: self.rps(),
            p50: pct(&self.latencies_us, 0.50),
            p99: pct(&self.latencies_us, 0.99),
            p999: pct(&self.latencies_us, 0.999),
            requests: self.requests as u64,
            errors: self.errors as u64,
        }
    }
}

/// Drives one phase with `concurrency` keep-alive clients for `duration`. `payload` is the
/// checkout body for Create and the merchantKey the modifications name for Capture and Refund;
/// `ids` are the payments Capture and Refund modify (each once: the phase ends early when they
/// run out). `Outcome::ids` holds the payments modified.
pub async fn drive(
    target: &Target,
    phase: Phase,
    payload: &str,
    ids: &[String],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let client = client(concurrency)?;
    let deadline = Instant::now() + duration;
    let next = Arc::new(AtomicUsize::new(0));
    let reported = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(ids.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (base, auth) = target.for_worker(worker);
        let (client, payload) = (client.clone(), payload.to_owned());
        let (next, ids, reported) = (next.clone(), ids.clone(), reported.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(65_536);
            let mut kept = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut modified = None;
                let res = match phase.modification() {
                    None => {
                        client
                            .post(format!("{base}/payment/creation"))
                            .header("Authorization", &auth)
                            .header("Content-Type", "application/json")
                            .body(payload.clone())
                            .send()
                            .await
                    }
                    Some((op, _)) => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = ids.get(i) else { break };
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
                if ok.is_none() {
                    errors += 1;
                    continue;
                }
                lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                if let Some(id) = modified {
                    kept.push(id.clone());
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

/// A merchant's `Authorization` values: Basic and a Bearer token from `/oauth2/token` at `base`.
pub async fn credentials(client: &reqwest::Client, base: &str, m: &Value) -> anyhow::Result<Vec<String>> {
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
        .error_for_status()?
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
    let Some(bearer) = token["access_token"].as_str() else { anyhow::bail!("no access_token in {token}") };
    Ok(vec![basic, format!("Bearer {bearer}")])
}
