//! D9: card data never reaches a notification. Canary card numbers, a canary security code and a
//! canary holder name go through the widget API (approved, declined, and pending then resolved
//! by SmartPay itself); no form of them is in any notification body or header the merchant's
//! endpoint receives, nor in what `smartpay notifications list|show` print.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::pending_rig::*;
use super::*;

/// A Luhn-valid number with `prefix`, unique to this run, `len` digits long.
fn canary_number(prefix: &str, len: usize) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let seed = format!("{:05}{:09}", std::process::id() % 100_000, now % 1_000_000_000);
    let body: String = format!("{prefix}{seed}").chars().take(len - 1).collect();
    (0..10u32).map(|d| format!("{body}{d}")).find(|n| smartpay_domain::card::luhn_ok(n)).unwrap()
}

/// The forms a value may leak in: raw, digit groups, base64, base64url, hex, URL-encoded,
/// UTF-16LE, and (for long values) a 12-character middle part.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    let url: String = value.replace(' ', "%20");
    let grouped: String =
        value.chars().enumerate().flat_map(|(i, c)| if i > 0 && i % 4 == 0 { vec![' ', c] } else { vec![c] }).collect();
    let utf16: Vec<u8> = value.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut f = vec![
        value.as_bytes().to_vec(),
        STANDARD.encode(value).into_bytes(),
        URL_SAFE_NO_PAD.encode(value).into_bytes(),
        hex.into_bytes(),
        url.into_bytes(),
        value.replace(' ', "+").into_bytes(),
        utf16,
    ];
    if value.chars().all(|c| c.is_ascii_digit()) {
        f.push(grouped.into_bytes());
    }
    if value.len() >= 15 {
        f.push(value.as_bytes()[2..14].to_vec());
    }
    f
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_card_data_in_any_notification() {
    let started = std::time::Instant::now();
    let rig = PendingRig::new("Canary notifications shop", 300);
    let d = rig.data_dir();
    let server = rig.start(None);
    let (b, m) = (server.base.as_str(), &rig.merchant);

    let amex = canary_number("3700", 15);
    let cvc = "7331";
    let holder = format!("Canary Holder Q{}x", std::process::id());
    // Approved (any other number authorizes at the sandbox acquirer), declined, and pending then
    // resolved by SmartPay: each with the canary holder.
    let approved = pay_card(b, m, &amex, cvc, Some(&holder));
    assert_eq!(approved.http, 200, "{}", approved.answer);
    let declined = pay_card(b, m, "4000000000000002", "733", Some(&holder));
    assert_eq!(declined.http, 200, "{}", declined.answer);
    let pending = pay_card(b, m, "4000000000000259", "733", Some(&holder));
    assert_eq!(pending.http, 200, "{}", pending.answer);
    for p in [&approved, &declined, &pending] {
        assert!(!p.answer.contains(&amex) && !p.answer.contains(&holder), "the widget answer echoes card data");
    }
    let finals = rig.receiver.wait_final(&[&approved.id, &declined.id, &pending.id], SETTLE);
    let expected = ["CAPTURED", "AUTHORIZATION_FAILED", "CAPTURED"];
    for (f, e) in finals.iter().zip(expected) {
        assert_eq!(f.status(), e, "{:?}", f.json());
    }

    // Everything a merchant or an operator sees of the notifications.
    let received = rig.receiver.all();
    assert!(received.len() >= 3, "{}", received.len());
    let mut scanned: Vec<(String, Vec<u8>)> = Vec::new();
    for r in &received {
        r.assert_well_formed(&[&rig.secret]);
        scanned.push((format!("body of {}", r.event_id()), r.body.clone()));
        let headers: String = r.headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        scanned.push((format!("headers of {}", r.event_id()), headers.into_bytes()));
        let shown = cli(d, &["notifications", "show", &r.event_id()]);
        scanned.push((format!("`notifications show {}`", r.event_id()), shown.into_bytes()));
    }
    let listed = cli(d, &["notifications", "list", "--json", "--limit", "1000"]);
    assert!(listed.contains(&approved.id), "the listing covers the canary payments");
    scanned.push(("`notifications list --json`".into(), listed.into_bytes()));
    scanned.push(("`notifications list`".into(), cli(d, &["notifications", "list"]).into_bytes()));

    let canaries = [("card number", amex.as_str()), ("holder name", holder.as_str())];
    // The scan finds what it looks for: the card as the widget sent it.
    let sent = serde_json::json!({"number": amex, "cvc": cvc, "holderName": holder}).to_string();
    for (what, value) in canaries {
        assert!(contains(sent.as_bytes(), value.as_bytes()), "the scan would find the {what}");
    }
    assert!(contains(sent.as_bytes(), b"\"7331\""), "the scan would find the security code");
    for (where_, data) in &scanned {
        for (what, value) in canaries {
            for form in forms(value) {
                assert!(!contains(data, &form), "{what} ({}) found in {where_}", String::from_utf8_lossy(&form));
            }
        }
        for needle in [&b"\"7331\""[..], b"\"733\"", b"\"cvc\"", b"holderName", b"\"number\""] {
            assert!(!contains(data, needle), "{} found in {where_}", String::from_utf8_lossy(needle));
        }
    }
    assert!(server.terminate().success());
    eprintln!("D9: {} notifications and their CLI views scanned in {:?}", received.len(), started.elapsed());
}
