//! End-to-end tests of the `smartpay` binary as an operator runs it: CLI commands, a real
//! server process, `kill -9` crash durability, and the canary scan for leaked secrets.

// Test helpers fail loudly: unwrap and panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod adversarial;
mod canary;
mod cli;
mod crash;
mod modifications_cli;
mod modifications_crash;
mod modifications_crash_loop;
mod modifications_rig;
mod multinode;
mod multinode_crash;
mod notifications_canary;
mod notifications_cli;
mod pending;
mod pending_crash;
mod pending_rig;
mod vault_canary;
mod vault_keys;
mod vault_rig;
mod vault_rotation;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smartpay")
}

/// Runs a CLI command against `data_dir` and returns its stdout; panics on failure.
pub fn cli(data_dir: &Path, args: &[&str]) -> String {
    let out =
        Command::new(bin()).arg("--data-dir").arg(data_dir).args(args).env_remove("SMARTPAY_CONFIG").output().unwrap();
    assert!(out.status.success(), "smartpay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub struct Merchant {
    pub key: String,
    pub auth_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub basic_id: String,
}

pub fn create_merchant(data_dir: &Path, name: &str) -> Merchant {
    let v: Value = serde_json::from_str(&cli(data_dir, &["merchant", "create", "--name", name, "--json"])).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    Merchant {
        key: s("merchantKey"),
        auth_key: s("authenticationKey"),
        client_id: s("clientId"),
        client_secret: s("clientSecret"),
        basic_id: s("basicCredentialId"),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `smartpay serve` process whose output goes to files in its data dir.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, port: u16, extra_env: &[(&str, &str)]) -> Server {
        let stdout = data_dir.join(format!("serve-{port}-{}.out", unique()));
        let stderr = data_dir.join(format!("serve-{port}-{}.err", unique()));
        let mut cmd = Command::new(bin());
        cmd.arg("--data-dir").arg(data_dir).args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        cmd.env_remove("SMARTPAY_CONFIG")
            .env("SMARTPAY_AUTH_REFRESH_MS", "100")
            .env("SMARTPAY_ADMIN_LISTEN", "127.0.0.1:0");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let s = Server { child, base: format!("http://127.0.0.1:{port}"), stdout, stderr };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(self.base.trim_start_matches("http://")) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = stream.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "server at {} did not become ready: {}",
            self.base,
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }

    pub fn kill9(mut self) {
        let _ = Command::new("kill").args(["-9", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().unwrap()
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

pub fn basic(m: &Merchant) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", m.key, m.auth_key)))
}

pub fn checkout_body(m: &Merchant) -> String {
    serde_json::json!({
        "merchantKey": m.key,
        "payment": {"amount": 10.99, "currencyCode": "EUR", "description": "Purchase 1x product ABC"},
        "consumer": {"firstName": "Butcher", "lastName": "Hells", "emailAddress": "hells.butcher_001@mail.com"},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DE"}
    })
    .to_string()
}

/// A minimal blocking HTTP/1.1 request over std (`Connection: close`): (status, body).
pub fn http(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    try_http(base, method, path, headers, body).unwrap()
}

/// [`http`] that reports connection failures instead of panicking.
pub fn try_http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}
