//! Issue 6: the attacks that once hurt SmartPay, each replayed in a bounded form against the real
//! binary — huge token forms, idle and slow sockets beyond a lowered descriptor limit, large
//! heads, lockouts aimed at merchants, demo injection, the sandbox acquirer, unauthenticated
//! widget bodies, disabled merchants, file modes, malleable signatures and overflowing amounts.
//! Every test asserts what the code before the fix got wrong, and bounds its time and requests.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::*;

/// A server that is killed when the test ends, whether it passed or not.
struct Guard(Server);

impl std::ops::Deref for Guard {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

fn start(dir: &Path, env: &[(&str, &str)]) -> Guard {
    Guard(Server::start(dir, free_port(), env))
}

/// [`Server::start`] with the binary run through `prefix` (e.g. `sh -c 'ulimit -n 256 && exec "$0" "$@"'`).
fn start_with_prefix(dir: &Path, prefix: &[&str], env: &[(&str, &str)]) -> Guard {
    let port = free_port();
    let stdout = dir.join(format!("serve-{port}-{}.out", unique()));
    let stderr = dir.join(format!("serve-{port}-{}.err", unique()));
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..]).arg(bin()).arg("--data-dir").arg(dir);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    cmd.env_remove("SMARTPAY_CONFIG")
        .env("SMARTPAY_AUTH_REFRESH_MS", "100")
        .env("SMARTPAY_ADMIN_LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    let s = Server { child, base: format!("http://127.0.0.1:{port}"), stdout, stderr };
    s.wait_ready();
    Guard(s)
}

/// A response read off the wire.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or_default().to_owned()
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").map_or((text.clone(), String::new()), |(h, b)| (h.into(), b.into()));
    let mut a = Answer { status, head, body };
    if a.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = String::new();
        let mut rest = a.body.as_str();
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        a.body = out;
    }
    a
}

fn host(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// A connection to `base`, from a chosen loopback address when `from` is set.
fn connect(base: &str, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = from else { return TcpStream::connect(host(base)) };
    let to: SocketAddr = host(base).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(to).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Sends `request` (written from a second thread, so a server that answers before reading the
/// whole body is seen answering) and reads the answer until the server closes or `timeout`
/// passes. What arrived before a reset counts.
fn exchange(base: &str, from: Option<IpAddr>, request: Vec<u8>, timeout: Duration) -> std::io::Result<Answer> {
    let mut stream = connect(base, from)?;
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    let _ = sender.join();
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"));
                }
            }
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    Ok(parse_answer(&raw))
}

/// A request with `Connection: close` (and `Content-Length` when there is a body).
fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", host(base));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn call(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    exchange(base, None, request(base, method, path, headers, body), Duration::from_secs(10)).unwrap()
}

fn json_post(base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    call(base, "POST", path, &h, body.as_bytes())
}

fn live(base: &str) -> u16 {
    exchange(base, None, request(base, "GET", "/health/live", &[], b""), Duration::from_secs(2)).map_or(0, |a| a.status)
}

/// A checkout of `m` (Basic): (transactionId, checkoutToken).
fn checkout(base: &str, m: &Merchant) -> (String, String) {
    let a = json_post(base, "/payment/creation", &[("Authorization", &basic(m))], &checkout_body(m));
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    (v["transactionId"].as_str().unwrap().to_owned(), v["checkoutToken"].as_str().unwrap().to_owned())
}

/// A card expiry three years from now, `MM/YY`.
fn future_expiry() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let year = 1970 + secs / 31_556_952;
    format!("12/{:02}", (year + 3) % 100)
}

fn submit_card(base: &str, token: &str, number: &str) -> Answer {
    let card = serde_json::json!({"number": number, "expiry": future_expiry(), "cvc": "123"}).to_string();
    json_post(base, "/widget/api/payments", &[("Origin", base), ("X-Checkout-Token", token)], &card)
}

fn token_form(base: &str, form: &str, xff: Option<&str>) -> Answer {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(x) = xff {
        h.push(("X-Forwarded-For", x));
    }
    call(base, "POST", "/oauth2/token", &h, form.as_bytes())
}

fn credentials_form(client_id: &str, secret: &str) -> String {
    format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}")
}

/// Where the admin listener (`/metrics`) is, from the server's log.
fn admin_base(server: &Server) -> String {
    let log = std::fs::read_to_string(&server.stderr).unwrap();
    let at = log.find("metrics at http://").unwrap_or_else(|| panic!("no admin address in the log: {log}"));
    let rest = &log[at + "metrics at ".len()..];
    rest[..rest.find("/metrics").unwrap()].to_owned()
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = call(&admin_base(server), "GET", "/metrics", &[], b"").body;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[test]
fn adversarial_huge_token_forms_are_refused_at_once_while_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let form: String = "client_id=x&".repeat(50_000);
    assert!(form.len() >= 600_000);
    let started = Instant::now();
    let attackers: Vec<_> = (0..2)
        .map(|_| {
            let (base, form) = (base.clone(), form.clone());
            std::thread::spawn(move || {
                let t = Instant::now();
                let req = request(
                    &base,
                    "POST",
                    "/oauth2/token",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    form.as_bytes(),
                );
                (exchange(&base, None, req, Duration::from_secs(5)).unwrap(), t.elapsed())
            })
        })
        .collect();
    let t = Instant::now();
    assert_eq!(live(&base), 200, "/health/live answers during the attack");
    assert!(t.elapsed() < Duration::from_millis(500), "health took {:?}", t.elapsed());
    for a in attackers {
        let (answer, took) = a.join().unwrap();
        assert_eq!(answer.status, 413, "{}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_request");
        assert!(took < Duration::from_millis(800), "a 600 KB form took {took:?}");
    }
    // Without Content-Length the limit applies while the body streams in.
    let mut chunked = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        host(&base)
    )
    .into_bytes();
    for _ in 0..60 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 10_000, "a=b&".repeat(2_500)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(&base, None, chunked, Duration::from_secs(5)).unwrap();
    assert_eq!(answer.status, 413);
    // Small forms built to be slow are refused in linear time.
    let t = Instant::now();
    let repeated = token_form(&base, &"a=1&".repeat(1000), None);
    assert_eq!((repeated.status, repeated.json()["error"].as_str()), (400, Some("invalid_request")));
    let many: String = (0..17).map(|i| format!("p{i}=1&")).collect();
    assert_eq!(token_form(&base, &format!("grant_type=client_credentials&{many}"), None).status, 400);
    let duplicated = token_form(&base, "grant_type=client_credentials&grant_type=client_credentials", None);
    assert_eq!(duplicated.status, 400);
    assert!(t.elapsed() < Duration::from_secs(1), "small hostile forms took {:?}", t.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(live(&base), 200);
}

#[test]
fn adversarial_idle_sockets_beyond_a_lowered_descriptor_limit_get_a_fast_refusal_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    // The shell lowers its descriptor limit, then becomes the server (same pid).
    let ulimit = ["sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\""];
    let server = start_with_prefix(dir.path(), &ulimit, &[("SMARTPAY_HEADER_READ_TIMEOUT_MS", "3000")]);
    let base = server.base.clone();
    // Opened from ten threads at once: the listen backlog overflows and some handshakes are
    // retried after a second, well within the header-read timeout.
    let openers: Vec<_> = (0..10)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || (0..30).map(|_| TcpStream::connect(host(&base)).unwrap()).collect::<Vec<_>>())
        })
        .collect();
    let mut idle: Vec<TcpStream> = openers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    // A client arriving now is answered at once: served, or refused with 503 — never left hanging.
    let t = Instant::now();
    let normal = exchange(&base, None, request(&base, "GET", "/health/live", &[], b""), Duration::from_secs(3))
        .expect("a request behind 300 idle sockets is answered");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(normal.status == 200 || normal.status == 503, "{} {}", normal.status, normal.body);
    if normal.status == 503 {
        assert_eq!(normal.header("retry-after").as_deref(), Some("1"));
    }
    // The sockets beyond the cap were refused with 503; all of them are closed once the
    // header-read timeout passes.
    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut refused, mut closed) = (0, 0);
    for s in &mut idle {
        let mut raw = Vec::new();
        let mut buf = [0u8; 512];
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    assert!(Instant::now() < deadline, "an idle socket is still open after the header-read timeout");
                }
                Err(_) => break,
            }
        }
        closed += 1;
        if raw.starts_with(b"HTTP/1.1 503") {
            refused += 1;
            assert_eq!(parse_answer(&raw).header("retry-after").as_deref(), Some("1"));
        }
    }
    assert_eq!(closed, 300);
    // 108 beyond the cap of 192 (256 descriptors less 64 kept free); fewer if a slow handshake
    // arrived after the first sockets were closed.
    assert!(refused >= 50, "only {refused} of 300 idle sockets were refused");
    assert_eq!(live(&base), 200, "requests are served again once the idle sockets are gone");
    assert!(metric(&server, "smartpay_connections_refused_total") >= f64::from(refused));
    assert_eq!(call(&base, "GET", "/metrics", &[], b"").status, 404, "metrics are not on the API listener");
}

#[test]
fn adversarial_slow_headers_idle_keep_alive_slow_bodies_and_large_heads_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        start(dir.path(), &[("SMARTPAY_HEADER_READ_TIMEOUT_MS", "1000"), ("SMARTPAY_BODY_READ_TIMEOUT_MS", "1000")]);
    let base = server.base.clone();

    // Slow headers: one byte every 100 ms; the server hangs up after about a second.
    let mut slow = TcpStream::connect(host(&base)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    slow.write_all(format!("GET /health/live HTTP/1.1\r\nHost: {}\r\nX-Slow: ", host(&base)).as_bytes()).unwrap();
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(5), "a slow-header socket is still open after 5 s");
        if slow.write_all(b"a").is_err() {
            break;
        }
        match slow.read(&mut [0u8; 256]) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            _ => break,
        }
    }
    assert!(t.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", t.elapsed());

    // Idle keep-alive: after one answered request the connection is closed within the timeout.
    let mut kept = TcpStream::connect(host(&base)).unwrap();
    kept.write_all(format!("GET /health/live HTTP/1.1\r\nHost: {}\r\n\r\n", host(&base)).as_bytes()).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let t = Instant::now();
    loop {
        match kept.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(t.elapsed() < Duration::from_secs(3), "an idle keep-alive socket stayed open {:?}", t.elapsed());

    // A body that does not arrive: 408 with the JSON error body.
    let partial = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type",
        host(&base)
    )
    .into_bytes();
    let t = Instant::now();
    let answer = exchange(&base, None, partial, Duration::from_secs(5)).expect("a slow body is answered");
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(answer.error_code(), "request_timeout");
    assert!(t.elapsed() < Duration::from_secs(4));

    // Heads above 16 KiB: 431; a 15 KiB one is still served.
    let big = "a".repeat(17 * 1024);
    assert_eq!(call(&base, "GET", "/health/live", &[("X-Pad", &big)], b"").status, 431);
    let fits = "a".repeat(15 * 1024);
    assert_eq!(call(&base, "GET", "/health/live", &[("X-Pad", &fits)], b"").status, 200);
    assert_eq!(live(&base), 200);
}

#[test]
fn adversarial_demo_injection_cannot_squat_a_partner_reference_and_demo_status_reads_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Victim shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let origin = [("Origin", base.as_str())];

    let injected = r#"10.99,"currencyCode":"EUR","description":"x"},"partnerReference":"VICTIM-42","zz":{"a":1"#;
    let a = json_post(&base, "/demo/api/checkouts", &origin, &serde_json::json!({"amount": injected}).to_string());
    assert_eq!(a.status, 400, "{}", a.body);
    let a = json_post(&base, "/demo/api/checkouts", &[("Origin", "https://evil.example")], "{}");
    assert_eq!(a.status, 403);
    // The merchant's real order with that reference goes through.
    let mut order: Value = serde_json::from_str(&checkout_body(&m)).unwrap();
    order["partnerReference"] = "VICTIM-42".into();
    let a = json_post(&base, "/payment/creation", &[("Authorization", &basic(&m))], &order.to_string());
    assert_eq!(a.status, 200, "the partnerReference was squatted: {}", a.body);
    let victim_id = a.json()["transactionId"].as_str().unwrap().to_owned();

    // The demo reads the checkouts it created, with their session, and nothing else.
    let a = json_post(&base, "/demo/api/checkouts", &origin, r#"{"amount":"12.50","currency":"EUR"}"#);
    assert_eq!(a.status, 200, "{}", a.body);
    let created = a.json();
    let (id, session) = (created["transactionId"].as_str().unwrap(), created["demoSession"].as_str().unwrap());
    let status = |id: &str, session: Option<&str>| {
        let h: Vec<(&str, &str)> = session.map(|s| vec![("X-Demo-Session", s)]).unwrap_or_default();
        call(&base, "GET", &format!("/demo/api/status/{id}"), &h, b"")
    };
    let own = status(id, Some(session));
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.json()["transactionId"], id);
    assert_eq!(status(id, None).status, 404, "no session, no status");
    assert_eq!(status(&victim_id, None).status, 404, "a merchant's checkout is not readable through the demo");
    assert_eq!(status(&victim_id, Some(session)).status, 404, "another checkout's session does not open it");
    assert_eq!(status(&victim_id, Some(&"0".repeat(64))).status, 404);
}

#[test]
fn adversarial_in_production_the_demo_does_not_exist_even_with_the_sandbox_acquirer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = create_merchant(d, "Production shop");
    let config = d.join("production.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"production\"\nmaster_key_file = {:?}\nsandbox_acquirer = true\nallow_sandbox_in_production = true\n",
            d.join("master.key").display().to_string()
        ),
    )
    .unwrap();
    let server = start(d, &[("SMARTPAY_CONFIG", config.to_str().unwrap())]);
    let base = server.base.clone();
    let (id, token) = checkout(&base, &m);
    assert_eq!(json_post(&base, "/demo/api/checkouts", &[("Origin", base.as_str())], "{}").status, 404);
    assert_eq!(call(&base, "GET", "/demo", &[], b"").status, 404);
    assert_eq!(call(&base, "GET", &format!("/demo/api/status/{id}"), &[], b"").status, 404);
    // SmartPay's own origin is a return address (a merchant origin) in sandbox mode only.
    let back = encode_origin(&format!("{base}/own-origin-return"));
    let hosted = call(&base, "GET", &format!("/checkout/{token}?returnUrl={back}"), &[], b"");
    assert_eq!(hosted.status, 200);
    assert!(!hosted.body.contains("own-origin-return"), "production returns shoppers to SmartPay's own origin");
}

fn encode_origin(origin: &str) -> String {
    origin.replace(':', "%3A").replace('/', "%2F")
}

#[test]
fn adversarial_the_sandbox_acquirer_api_is_not_public_and_its_challenge_returns_only_to_smartpay() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Challenge shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let (_, token) = checkout(&base, &m);
    let a = submit_card(&base, &token, "4000000000003220");
    assert_eq!(a.status, 200, "{}", a.body);
    let url = a.json()["challengeUrl"].as_str().expect("a challenge").to_owned();
    let path = url.strip_prefix(&base).expect("the challenge page is on SmartPay's origin").to_owned();
    let id = path.rsplit('/').next().unwrap().to_owned();

    // The machine API is not on SmartPay's port: no lookups, no authorizations.
    for p in [format!("/sandbox-acquirer/v1/authorizations/{id}"), "/sandbox-acquirer/v1/authorizations".into()] {
        assert_eq!(call(&base, "GET", &p, &[], b"").status, 404, "{p}");
    }
    let auth = json_post(
        &base,
        "/sandbox-acquirer/v1/authorizations",
        &[],
        r#"{"amountMinor":100,"currency":"EUR","idempotencyKey":"k","returnUrl":"https://evil.example/"}"#,
    );
    assert_eq!(auth.status, 404);

    // The page may be framed by SmartPay only.
    let page = call(&base, "GET", &path, &[], b"");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains(&format!("frame-ancestors {base}")), "{csp}");
    // (In sandbox mode the demo shop on SmartPay's own origin is a merchant page it may return to.)
    let back = encode_origin(&format!("{base}/own-origin-return"));
    let hosted = call(&base, "GET", &format!("/checkout/{token}?returnUrl={back}"), &[], b"");
    assert!(hosted.body.contains("own-origin-return"), "{}", hosted.body);

    // A huge decision form is refused; the decision returns to SmartPay whatever one injects.
    let huge = format!("decision=approve&returnUrl={}", "a".repeat(2_000_000));
    let t = Instant::now();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let a =
        exchange(&base, None, request(&base, "POST", &path, &form, huge.as_bytes()), Duration::from_secs(5)).unwrap();
    assert!(a.status == 413 || a.status == 400, "a 2 MB decision form was taken: {} {}", a.status, a.body);
    assert!(a.header("location").is_none());
    assert!(t.elapsed() < Duration::from_secs(1));
    let injected = "decision=approve&returnUrl=https%3A%2F%2Fevil.example%2F&return_url=https%3A%2F%2Fevil.example%2F";
    let a = call(&base, "POST", &format!("{path}?returnUrl=https://evil.example/"), &form, injected.as_bytes());
    assert!(a.status == 303 || a.status == 302 || a.status == 307, "{} {}", a.status, a.body);
    let location = a.header("location").unwrap();
    assert!(location.starts_with(&format!("{base}/widget/challenge-return?")), "redirect to {location}");
    assert!(!location.contains("evil"));
}

#[test]
fn adversarial_a_client_guessing_a_merchants_key_locks_out_only_itself_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let victim = create_merchant(dir.path(), "Victim");
    let other = create_merchant(dir.path(), "Other");
    let server = start(dir.path(), &[("SMARTPAY_TRUSTED_PROXIES", "127.0.0.1")]);
    let base = server.base.clone();
    let nil = "/payment/status/00000000-0000-4000-8000-000000000000";
    let api = |auth: &str, forwarded: &[(&str, &str)]| {
        let mut h = vec![("Authorization", auth)];
        h.extend_from_slice(forwarded);
        call(&base, "GET", nil, &h, b"")
    };
    let attacker = [("X-Forwarded-For", "203.0.113.7")];
    let elsewhere = [("X-Forwarded-For", "198.51.100.9")];
    let guess = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:guess", victim.key)));

    // Guesses at the victim's key from one client until it is locked out.
    let mut tries = 0;
    let locked = loop {
        let a = api(&guess, &attacker);
        tries += 1;
        if a.status == 429 {
            break a;
        }
        assert_eq!(a.status, 401);
        assert!(tries <= 21, "never locked out");
    };
    assert!(tries >= 10, "locked out after {tries} failures");
    assert!(locked.header("retry-after").is_some());
    // Everyone else is unaffected: other merchants from that client, the victim from elsewhere,
    // and the victim's verified key even from the attacker's address.
    assert_eq!(api(&basic(&other), &attacker).status, 404, "another identity from the same address is not locked out");
    assert_eq!(api(&basic(&victim), &elsewhere).status, 404, "the victim is not locked out everywhere");
    assert_eq!(api(&basic(&victim), &attacker).status, 404, "verified credentials still pass");
    assert_eq!(api(&guess, &attacker).status, 429, "the guesser stays locked out");
    // A forged leftmost hop does not move the attacker: the rightmost untrusted hop is the client.
    assert_eq!(api(&guess, &[("X-Forwarded-For", "198.51.100.77, 203.0.113.7")]).status, 429);
    assert_eq!(api(&guess, &[("Forwarded", "for=203.0.113.7")]).status, 429);

    // Tokens: the same at the token endpoint, keyed on the client id.
    let mut tries = 0;
    while token_form(&base, &credentials_form(victim.client_id.as_str(), "guess"), Some("203.0.113.7")).status != 429 {
        tries += 1;
        assert!(tries <= 21, "the token endpoint never locked the guesser out");
    }
    let good = credentials_form(&victim.client_id, &victim.client_secret);
    assert_eq!(
        token_form(&base, &credentials_form(&other.client_id, &other.client_secret), Some("203.0.113.7")).status,
        200
    );
    assert_eq!(token_form(&base, &good, Some("198.51.100.9")).status, 200);
    assert_eq!(token_form(&base, &good, Some("203.0.113.7")).status, 200, "a verified client still gets tokens");

    // Forged bearer tokens share one identity, which does not cover Basic keys.
    let mut tries = 0;
    while api("Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA", &[("X-Forwarded-For", "192.0.2.5")]).status != 429 {
        tries += 1;
        assert!(tries <= 21, "forged tokens were never locked out");
    }
    let fresh = create_merchant(dir.path(), "Fresh");
    assert_eq!(api(&basic(&fresh), &[("X-Forwarded-For", "192.0.2.5")]).status, 404, "Basic keys are another identity");
}

#[test]
fn adversarial_one_address_guessing_many_identities_hits_a_ceiling_it_cannot_escape_by_forging_headers() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Ceiling shop");
    let server = start(dir.path(), &[("SMARTPAY_AUTH_FAILURES_PER_ADDRESS_PER_MINUTE", "20")]);
    let base = server.base.clone();
    let nil = "/payment/status/00000000-0000-4000-8000-000000000000";
    let (a2, a3): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    let api = |from: IpAddr, auth: &str, xff: Option<&str>| {
        let mut h = vec![("Authorization", auth)];
        if let Some(x) = xff {
            h.push(("X-Forwarded-For", x));
        }
        exchange(&base, Some(from), request(&base, "GET", nil, &h, b""), Duration::from_secs(10)).unwrap().status
    };
    // Each guess names a new identity and claims a new forwarded address: neither helps.
    let mut tries = 0;
    loop {
        let user = format!("00000000-0000-4000-8000-{tries:012}");
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:guess")));
        let status = api(a2, &auth, Some(&format!("198.51.100.{tries}")));
        tries += 1;
        if status == 429 {
            break;
        }
        assert_eq!(status, 401);
        assert!(tries <= 41, "the per-address ceiling never applied");
    }
    assert!(tries >= 20, "the ceiling applied after {tries} failures");
    assert_eq!(api(a2, &basic(&m), Some("198.51.100.200")), 429, "new credentials from the guessing address wait");
    assert_eq!(api(a3, &basic(&m), None), 404, "another address is unaffected");
    assert_eq!(api(a2, &basic(&m), None), 404, "credentials verified elsewhere still pass");
}

#[test]
fn adversarial_the_widget_api_refuses_unauthenticated_bodies_before_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Crowded shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let mut body = String::from("{");
    let mut i = 0;
    while body.len() < 64 * 1024 - 16 {
        body.push_str(&format!("\"k{i:06}\":0,"));
        i += 1;
    }
    body.push_str("\"end\":0}");
    assert!(body.len() <= 64 * 1024);
    let token = "A".repeat(64);
    let t = Instant::now();
    for n in 0..50 {
        let (origin, expect) = if n % 2 == 0 { ("https://evil.example", 403) } else { (base.as_str(), 404) };
        let h = [("Content-Type", "application/json"), ("Origin", origin), ("X-Checkout-Token", token.as_str())];
        let a = exchange(
            &base,
            None,
            request(&base, "POST", "/widget/api/payments", &h, body.as_bytes()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(a.status, expect, "{}", a.body);
    }
    assert!(t.elapsed() < Duration::from_secs(2), "50 refusals took {:?}", t.elapsed());

    // An authenticated body with thousands of keys is read in linear time, duplicates included.
    let cut = body[..60_000].rfind(',').unwrap();
    let keys = &body[1..cut];
    let order = checkout_body(&m);
    let crowded = format!("{{{keys},{}", &order[1..]);
    let t = Instant::now();
    let a = json_post(&base, "/payment/creation", &[("Authorization", &basic(&m))], &crowded);
    let took = t.elapsed();
    assert!(a.status == 200 || a.status == 400, "{} {:.300}", a.status, a.body);
    let duplicated = format!("{{{keys},{},\"k000000\":1}}", &order[1..order.len() - 1]);
    let a = json_post(&base, "/payment/creation", &[("Authorization", &basic(&m))], &duplicated);
    assert_eq!(a.status, 400, "a repeated key is refused: {:.300}", a.body);
    assert!(t.elapsed() < Duration::from_secs(1), "two 60 KB bodies took {:?} (the first {took:?})", t.elapsed());
    assert_eq!(live(&base), 200);
}

#[test]
fn adversarial_a_disabled_merchants_open_checkouts_cannot_be_paid_or_captured() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Closing shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let (open_id, open_token) = checkout(&base, &m);
    let (challenged_id, challenged_token) = checkout(&base, &m);
    let a = submit_card(&base, &challenged_token, "4000000000003220");
    assert_eq!(a.status, 200, "{}", a.body);
    let challenge = a.json()["challengeUrl"].as_str().unwrap().strip_prefix(&base).unwrap().to_owned();

    cli(dir.path(), &["merchant", "disable", &m.key]);
    let nil = "/payment/status/00000000-0000-4000-8000-000000000000";
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&base, "GET", nil, &[("Authorization", &basic(&m))], b"").status != 401 {
        assert!(Instant::now() < deadline, "the disabled merchant is still accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(submit_card(&base, &open_token, "4111111111111111").status, 404);
    assert_eq!(call(&base, "GET", &format!("/checkout/{open_token}"), &[], b"").status, 404);
    // The shopper approves the pending challenge; completing it is refused all the same.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let _ = call(&base, "POST", &challenge, &form, b"decision=approve");
    let complete = call(
        &base,
        "POST",
        "/widget/api/payments/complete",
        &[("Origin", base.as_str()), ("X-Checkout-Token", challenged_token.as_str())],
        b"",
    );
    assert_eq!(complete.status, 404, "{}", complete.body);
    drop(server);

    let db = rusqlite::Connection::open(dir.path().join("smartpay.db")).unwrap();
    for id in [&open_id, &challenged_id] {
        let status: String = db.query_row("SELECT status FROM payments WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        assert!(
            ["CREATED", "AUTHORIZATION_PENDING"].contains(&status.as_str()),
            "payment {id} of a disabled merchant went on to {status}"
        );
    }
}

#[test]
fn adversarial_the_data_directory_is_private_and_so_is_every_file_in_it() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("data");
    let m = create_merchant(&d, "Private shop");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d), 0o700, "the CLI creates a private data directory");
    let server = start(&d, &[]);
    checkout(&server.base, &m);
    for name in ["smartpay.db", "smartpay.db-wal", "smartpay.db-shm", "master.key"] {
        let p = d.join(name);
        assert!(p.exists(), "{name} exists while the server runs");
        assert_eq!(mode(&p), 0o600, "{name}");
    }
    assert_eq!(mode(&d), 0o700);
    for entry in std::fs::read_dir(&d).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

/// `n − s` for the P-256 group order `n` (32-byte big-endian numbers, `s < n`).
fn p256_negate(s: &[u8]) -> Vec<u8> {
    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6,
        0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ];
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    assert_eq!(borrow, 0);
    out
}

#[test]
fn adversarial_a_high_s_twin_of_an_issued_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Signature shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let a = token_form(&base, &credentials_form(&m.client_id, &m.client_secret), None);
    assert_eq!(a.status, 200, "{}", a.body);
    let token = a.json()["access_token"].as_str().unwrap().to_owned();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(sig.len(), 64);
    let mut twin_sig = sig[..32].to_vec();
    twin_sig.extend(p256_negate(&sig[32..]));
    let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&twin_sig));
    assert_ne!(twin, token);

    let (id, _) = checkout(&base, &m);
    let status = |t: &str| {
        call(&base, "GET", &format!("/payment/status/{id}"), &[("Authorization", &format!("Bearer {t}"))], b"")
    };
    assert_eq!(status(&token).status, 200);
    assert_eq!(status(&twin).status, 401, "the (r, n−s) twin is not a second valid token");
    assert_eq!(status(&token).status, 200);
}

#[test]
fn adversarial_overflowing_amounts_are_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let m = create_merchant(dir.path(), "Overflow shop");
    let server = start(dir.path(), &[]);
    let base = server.base.clone();
    let template = checkout_body(&m);
    assert!(template.contains("\"amount\":10.99"));
    for amount in [
        "1e9223372036854775807",
        "-1e9223372036854775807",
        "1e-9223372036854775808",
        "92233720368547758.08",
        "18446744073709551616",
        "1e19",
        "9223372036854775807e9223372036854775807",
    ] {
        let body = template.replace("\"amount\":10.99", &format!("\"amount\":{amount}"));
        let a = json_post(&base, "/payment/creation", &[("Authorization", &basic(&m))], &body);
        assert_eq!(a.status, 400, "amount {amount}: {} {}", a.status, a.body);
        assert_eq!(live(&base), 200, "the server is alive after amount {amount}");
    }
}
