//! The operator commands of the modifications: capture modes, chargebacks and `smartpay verify`,
//! run against a real data dir and checked through a real server.

use std::process::{Command, Output};

use serde_json::Value;

use super::modifications_rig::*;
use super::*;

/// Runs a CLI command that may fail.
fn run(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("--data-dir").arg(data_dir).args(args).env_remove("SMARTPAY_CONFIG").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn capture_modes_set_from_the_cli_are_printed_and_decide_whether_a_payment_is_captured() {
    let rig = Rig::new("Mode shop");
    let d = rig.data_dir();
    let mk = rig.merchant.key.as_str();
    let out = cli(d, &["merchant", "capture-mode", mk, "delayed", "--delay", "60", "--auto-cancel"]);
    assert_eq!(
        out.trim(),
        format!("capture mode of {mk}: delayed after 60 s; uncaptured authorizations are cancelled after 1800 s")
    );
    let out = cli(d, &["merchant", "capture-mode", mk, "manual", "--auto-cancel", "600"]);
    assert!(out.contains("manual") && out.contains("cancelled after 600 s"), "{out}");

    let invalid = run(d, &["merchant", "capture-mode", mk, "sometimes"]);
    assert!(!invalid.status.success(), "an unknown capture mode is refused");
    assert!(text(&invalid.stderr).contains("sometimes"), "{}", text(&invalid.stderr));
    let delay_without_delayed = run(d, &["merchant", "capture-mode", mk, "auto", "--delay", "5"]);
    assert!(!delay_without_delayed.status.success(), "--delay needs mode delayed");
    assert!(text(&delay_without_delayed.stderr).contains("--delay"), "{}", text(&delay_without_delayed.stderr));
    let unknown = run(d, &["merchant", "capture-mode", "00000000-0000-4000-8000-000000000000", "manual"]);
    assert!(!unknown.status.success(), "an unknown merchant is refused");

    // The refused commands changed nothing: the merchant is still manual, so a paid checkout
    // waits for a capture; switched to auto, the next one is captured on authorization.
    let server = rig.start(None);
    let waiting = pay(&server.base, &rig.merchant);
    assert_eq!(rig.status(&server.base, &waiting)["paymentStatus"], "AUTHORIZATION_COMPLETED");
    server.terminate();
    let out = cli(d, &["merchant", "capture-mode", mk, "auto"]);
    assert_eq!(out.trim(), format!("capture mode of {mk}: auto; no automatic cancellation"));
    let server = rig.start(None);
    let captured = pay(&server.base, &rig.merchant);
    let status = rig.status(&server.base, &captured);
    assert_eq!(status["paymentStatus"], "CAPTURED", "{status}");
    assert_eq!(status["modifications"][0]["modificationData"]["modificationId"], format!("auto-capture-{captured}"));
    server.terminate();
}

#[test]
fn a_chargeback_from_the_cli_is_a_modification_of_at_most_the_captured_amount() {
    let rig = Rig::new("Chargeback shop");
    let d = rig.data_dir();
    let mk = rig.merchant.key.clone();
    let server = rig.start(None);
    let id = pay(&server.base, &rig.merchant);
    let not_captured = run(d, &["payment", "chargeback", &id, "--merchant", &mk, "--amount", "1.00"]);
    assert!(!not_captured.status.success(), "no chargeback of an uncaptured authorization");
    let (status, answer) = rig.modify(&server.base, "capture", &rig.body(&id, "cap", Some("8.00"))).unwrap();
    assert_eq!(status, 200, "{answer}");

    let too_much = run(d, &["payment", "chargeback", &id, "--merchant", &mk, "--amount", "8.01"]);
    assert!(!too_much.status.success(), "a chargeback above the captured 8.00 is refused");
    assert!(text(&too_much.stderr).contains("not recorded"), "{}", text(&too_much.stderr));
    let foreign = create_merchant(d, "Other shop");
    let other = run(d, &["payment", "chargeback", &id, "--merchant", &foreign.key, "--amount", "1.00"]);
    assert!(!other.status.success(), "another merchant's payment is not found");
    assert!(rig.status(&server.base, &id)["modifications"].as_array().unwrap().len() == 1, "refusals record nothing");

    let out = cli(d, &["payment", "chargeback", &id, "--merchant", &mk, "--amount", "2.50", "--reason", "4837"]);
    assert_eq!(out.trim(), format!("chargeback of 2.50 EUR recorded on {id}"));
    let payment = rig.status(&server.base, &id);
    let modifications = payment["modifications"].as_array().unwrap();
    let chargeback: Vec<&Value> =
        modifications.iter().filter(|m| m["modificationData"]["type"] == "CHARGEBACK").collect();
    assert_eq!(chargeback.len(), 1, "{payment}");
    assert_eq!(chargeback[0]["status"], "CHARGEBACK");
    assert_eq!(minor(&chargeback[0]["modificationAmount"]["amount"]), 250);
    assert_eq!(chargeback[0]["modificationAmount"]["description"], "4837");
    assert_eq!(payment["paymentStatus"], "CAPTURED", "the payment's status stays");
    server.terminate();
    assert_verified(d, "after a chargeback");
}

#[test]
fn verify_passes_a_healthy_store_and_names_the_payment_of_a_corrupted_one() {
    let rig = Rig::new("Verified shop");
    let d = rig.data_dir();
    let (ok, report) = verify(d);
    assert!(ok && report.contains("0 payments checked, 0 violations"), "{report}");

    let server = rig.start(None);
    let healthy = pay(&server.base, &rig.merchant);
    let broken = pay(&server.base, &rig.merchant);
    for id in [&healthy, &broken] {
        let (status, answer) =
            rig.modify(&server.base, "capture", &rig.body(id, &format!("cap-{id}"), Some("10.00"))).unwrap();
        assert_eq!(status, 200, "{answer}");
        let (status, answer) =
            rig.modify(&server.base, "refund", &rig.body(id, &format!("ref-{id}"), Some("4.00"))).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    server.terminate();
    let (ok, report) = verify(d);
    assert!(ok, "{report}");
    assert!(report.contains("2 payments checked, 0 violations"), "{report}");

    // Ten times the refund: refunded 40.00 of 10.00 captured.
    let conn = rusqlite::Connection::open(db_path(d)).unwrap();
    let changed = conn
        .execute(
            "UPDATE modifications SET amount_minor = amount_minor * 10 WHERE payment_id = ?1 AND kind = 'REFUND'",
            [&broken],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let out = run(d, &["verify"]);
    assert!(!out.status.success(), "verify exits non-zero on a violation");
    let report = text(&out.stdout);
    assert!(report.contains(&broken), "the report names the broken payment: {report}");
    assert!(!report.contains(&healthy), "and only it: {report}");
    assert!(report.contains("2 payments checked"), "{report}");
}
