//! E11/H1: known secret and token values never appear in logs or in the database files,
//! in clear or in common encodings.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::*;

fn forms(secret: &str) -> Vec<String> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let mut f = vec![secret.to_owned(), STANDARD.encode(secret), URL_SAFE_NO_PAD.encode(secret), hex];
    // A 24-character middle part catches truncated or re-encoded copies of long values.
    if secret.len() > 40 {
        f.push(secret[8..32].to_owned());
    }
    f
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && haystack.windows(n.len()).any(|w| w == n)
}

#[test]
fn secrets_and_tokens_never_reach_logs_or_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = create_merchant(d, "Canary shop");
    let server = Server::start(d, free_port(), &[("SMARTPAY_LOG_LEVEL", "debug"), ("SMARTPAY_LOG_FORMAT", "json")]);
    let b = &server.base;
    let mut canaries: Vec<(String, String)> = vec![
        ("authenticationKey".into(), m.auth_key.clone()),
        ("clientSecret".into(), m.client_secret.clone()),
        ("Basic header".into(), STANDARD.encode(format!("{}:{}", m.key, m.auth_key))),
    ];
    let wrong_secret = "CanaryWrongSecret7f3a9c2e1b";
    let fake_token = "eyJhbGciOiJFUzI1NiJ9.eyJjYW5hcnkiOjF9.CanaryForgedSignature4d8e";
    canaries.push(("wrong secret".into(), wrong_secret.into()));
    canaries.push(("forged token".into(), fake_token.into()));

    // Tokens, both client authentication styles, and a failed attempt.
    let form = format!("grant_type=client_credentials&client_id={}&client_secret={}", m.client_id, m.client_secret);
    let (status, text) = raw_form(b, &form, None);
    assert_eq!(status, 200);
    let token = serde_json::from_str::<Value>(&text).unwrap()["access_token"].as_str().unwrap().to_owned();
    canaries.push(("access token".into(), token.clone()));
    let (status, _) = raw_form(
        b,
        "grant_type=client_credentials",
        Some(&STANDARD.encode(format!("{}:{}", m.client_id, m.client_secret))),
    );
    assert_eq!(status, 200);
    let (status, _) = raw_form(
        b,
        &format!("grant_type=client_credentials&client_id={}&client_secret={wrong_secret}", m.client_id),
        None,
    );
    assert_eq!(status, 401);

    // Checkouts with Basic and Bearer, an idempotent replay, and failures.
    let body = checkout_body(&m);
    let auth = basic(&m);
    let bearer = format!("Bearer {token}");
    for (a, key) in [(&auth, Some("canary-key-1")), (&auth, Some("canary-key-1")), (&bearer, None)] {
        let mut headers = vec![("Authorization", a.as_str())];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        let (status, text) = http(b, "POST", "/payment/creation", &headers, Some(&body));
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&text).unwrap();
        canaries.push(("checkoutToken".into(), v["checkoutToken"].as_str().unwrap().to_owned()));
        let (status, _) = http(
            b,
            "GET",
            &format!("/payment/status/{}", v["transactionId"].as_str().unwrap()),
            &[("Authorization", &bearer)],
            None,
        );
        assert_eq!(status, 200);
    }
    let wrong_basic = format!("Basic {}", STANDARD.encode(format!("{}:{wrong_secret}", m.key)));
    assert_eq!(http(b, "POST", "/payment/creation", &[("Authorization", &wrong_basic)], Some(&body)).0, 401);
    assert_eq!(
        http(
            b,
            "GET",
            "/payment/status/00000000-0000-4000-8000-000000000000",
            &[("Authorization", &format!("Bearer {fake_token}"))],
            None
        )
        .0,
        401
    );
    // Card data through the widget API: a canary card number (Luhn-valid, unique to this run's
    // test range) and a canary 4-digit security code, on an approving and a refused submission.
    let pan = canary_pan();
    let cvc = "7331";
    canaries.push(("card number".into(), pan.clone()));
    let spaced: String =
        pan.chars().enumerate().flat_map(|(i, c)| if i > 0 && i % 4 == 0 { vec![' ', c] } else { vec![c] }).collect();
    canaries.push(("spaced card number".into(), spaced));
    for (number, expect) in [(pan.as_str(), 200), ("378282246310006", 400)] {
        let (status, text) = http(b, "POST", "/payment/creation", &[("Authorization", auth.as_str())], Some(&body));
        assert_eq!(status, 200);
        let token = serde_json::from_str::<Value>(&text).unwrap()["checkoutToken"].as_str().unwrap().to_owned();
        canaries.push(("checkoutToken".into(), token.clone()));
        let (year, month, _) = smartpay_domain::Millis::now().date();
        let expiry = format!("{month:02}/{:02}", (year + 3) % 100);
        let card = serde_json::json!({"number": number, "expiry": expiry, "cvc": cvc, "holderName": "Canary Holder"})
            .to_string();
        let (status, answer) =
            http(b, "POST", "/widget/api/payments", &[("Origin", b), ("X-Checkout-Token", &token)], Some(&card));
        assert_eq!(status, expect, "{answer}");
        assert!(!answer.contains(&pan) && !answer.contains(cvc), "the answer echoes card data");
    }
    let broken = body.replace("10.99", "10.999");
    assert_eq!(http(b, "POST", "/payment/creation", &[("Authorization", &bearer)], Some(&broken)).0, 400);
    assert!(server.terminate().success());

    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("smartpay.db") || name.ends_with(".out") || name.ends_with(".err")
        })
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with("smartpay.db")));
    let logs = std::fs::read_to_string(files.iter().find(|f| f.to_string_lossy().ends_with(".err")).unwrap()).unwrap();
    assert!(logs.contains("\"route\":\"/payment/creation\""), "the logs were written and scanned: {logs:.300}");
    let conn = rusqlite::Connection::open(d.join("smartpay.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'")
        .unwrap();
    let columns: Vec<String> = stmt
        .query_map([], |r| Ok(format!("{}.{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for c in &columns {
        let name = c.split('.').nth(1).unwrap();
        assert!(
            !["cvv", "cvc", "cid", "pan", "track", "pin", "card_number"].iter().any(|bad| name.contains(bad)),
            "column {c}"
        );
    }
    for file in &files {
        let data = std::fs::read(file).unwrap();
        for needle in ["\"7331\"", "\"cvc\""] {
            assert!(!contains(&data, needle), "security code found in {} ({needle})", file.display());
        }
        for (what, secret) in &canaries {
            for form in forms(secret) {
                assert!(!contains(&data, &form), "{what} found in {} (form {form:.12}…)", file.display());
            }
        }
    }
}

fn raw_form(base: &str, form: &str, basic: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let auth = basic.map(|b| format!("Authorization: Basic {b}\r\n")).unwrap_or_default();
    let req = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    (raw[9..12].parse().unwrap(), raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// A Luhn-valid AMEX number unique to this run (prefix 3700, then the process id and time).
fn canary_pan() -> String {
    let seed = format!(
        "{:05}{:05}",
        std::process::id() % 100_000,
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 100_000
    );
    let body = format!("3700{seed}");
    (0..10u32).map(|d| format!("{body}{d}")).find(|n| smartpay_domain::card::luhn_ok(n)).unwrap()
}
