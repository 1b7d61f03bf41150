//! Operator commands, then a server that honours them.

use serde_json::Value;

use super::*;

#[test]
fn operators_manage_merchants_credentials_and_keys_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = create_merchant(d, "Shop One");
    assert!(m.key.len() == 36 && m.auth_key.len() >= 43 && m.client_secret.len() >= 43);

    let list: Value = serde_json::from_str(&cli(d, &["merchant", "list", "--json"])).unwrap();
    assert_eq!(list[0]["merchantKey"], m.key);
    assert_eq!(list[0]["status"], "ACTIVE");
    assert!(!cli(d, &["merchant", "list"]).contains(&m.auth_key), "listing never shows secrets");

    let extra: Value = serde_json::from_str(&cli(
        d,
        &["credential", "add", "--merchant", &m.key, "--kind", "basic", "--label", "ci", "--json"],
    ))
    .unwrap();
    let creds: Value = serde_json::from_str(&cli(d, &["credential", "list", "--merchant", &m.key, "--json"])).unwrap();
    assert_eq!(creds.as_array().unwrap().len(), 3);
    assert!(!creds.to_string().contains(&m.auth_key));

    let kid_before = cli(d, &["keys", "list"]);
    cli(d, &["keys", "rotate"]);
    let kid_after = cli(d, &["keys", "list"]);
    assert_eq!(kid_after.lines().count(), kid_before.lines().count() + 1);

    let server = Server::start(d, free_port(), &[]);
    let status = |auth: &str| {
        http(
            &server.base,
            "GET",
            "/payment/status/00000000-0000-4000-8000-000000000000",
            &[("Authorization", auth)],
            None,
        )
        .0
    };
    let extra_merchant = Merchant {
        key: m.key.clone(),
        auth_key: extra["authenticationKey"].as_str().unwrap().to_owned(),
        client_id: String::new(),
        client_secret: String::new(),
        basic_id: String::new(),
    };
    assert_eq!(status(&basic(&m)), 404);
    assert_eq!(status(&basic(&extra_merchant)), 404);

    // Revoking from the CLI reaches the running server within seconds.
    cli(d, &["credential", "revoke", extra["id"].as_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while status(&basic(&extra_merchant)) != 401 {
        assert!(std::time::Instant::now() < deadline, "revoked credential still accepted");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(status(&basic(&m)), 404, "the other key still works");

    cli(d, &["merchant", "disable", &m.key]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while status(&basic(&m)) != 401 {
        assert!(std::time::Instant::now() < deadline, "disabled merchant still accepted");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM shuts down cleanly: {exit:?}");
}

#[test]
fn the_first_sandbox_start_creates_a_merchant_and_prints_its_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), port, &[]);
    let out = std::fs::read_to_string(&server.stdout).unwrap();
    assert!(out.contains("merchantKey"), "{out}");
    assert!(out.contains("authenticationKey"));
    server.terminate();
    let again = Server::start(dir.path(), port, &[]);
    let out2 = std::fs::read_to_string(&again.stdout).unwrap();
    assert!(!out2.contains("authenticationKey"), "credentials are printed only on the first start");
    again.terminate();
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let out = std::process::Command::new(bin()).args(["serve"]).env("SMARTPAY_MODE", "production").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key_file"));
    let out = std::process::Command::new(bin()).args(["serve"]).env("SMARTPAY_LISTEN", "nowhere").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("SMARTPAY_LISTEN"));
}
