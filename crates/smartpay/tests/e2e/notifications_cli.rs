//! Operators from the CLI: `smartpay pending` shows what is pending and why;
//! `smartpay notifications list|show|redeliver` show deliveries and send one again (same event
//! id); `merchant notifications` refuses a target inside the network (SSRF), naming the URL;
//! `merchant notification-secret` rotates, after which notifications carry both signatures.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::pending_rig::*;
use super::*;

/// Waits until `smartpay pending --json` lists `transaction`'s job after a poll; returns it.
fn pending_job(d: &std::path::Path, transaction: &str) -> Value {
    wait_cli(d, &["pending", "--json"], |out| {
        let job = out["jobs"].as_array().unwrap().iter().find(|j| j["transactionId"] == transaction).cloned();
        job.filter(|j| j["attempts"].as_u64().unwrap_or(0) >= 1 && !j["lastError"].is_null())
    })
}

/// Runs `args` (JSON output) until `found` finds something in it; bounded.
fn wait_cli<T>(d: &std::path::Path, args: &[&str], found: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        let out: Value = serde_json::from_str(&cli(d, args)).unwrap();
        if let Some(t) = found(&out) {
            return t;
        }
        assert!(Instant::now() < deadline, "`smartpay {args:?}` never showed it: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `notifications show`: (the notification as JSON, its attempt lines).
fn show(d: &std::path::Path, event_id: &str) -> (Value, Vec<String>) {
    let out = cli(d, &["notifications", "show", event_id]);
    let split = out.find("\nattempt at ").map_or(out.len(), |i| i + 1);
    let (json, attempts) = out.split_at(split);
    (serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}")), attempts.lines().map(str::to_owned).collect())
}

#[test]
fn operators_see_pending_work_and_manage_notifications_from_the_cli() {
    let started = Instant::now();
    // …0259 stays pending at the acquirer for a minute: long enough to look at it.
    let rig = PendingRig::new("Notifications CLI shop", 60_000);
    let d = rig.data_dir();
    let server = rig.start(None);
    let (b, m) = (server.base.as_str(), &rig.merchant);

    // What is pending, and why.
    let pending = pay_card(b, m, "4000000000000259", "737", None);
    assert_eq!((pending.http, pending.json()["transactionStatus"].as_str()), (200, Some("AUTHORIZATION_PENDING")));
    let job = pending_job(d, &pending.id);
    assert_eq!(job["kind"], "RESOLVE_AUTHORIZATION", "{job}");
    assert_eq!(job["paymentStatus"], "AUTHORIZATION_PENDING", "{job}");
    assert_eq!(job["merchantKey"], m.key.as_str(), "{job}");
    assert_eq!(job["provider"], "sandbox", "{job}");
    assert_eq!(job["lastError"], "still pending at the provider", "{job}");
    let text = cli(d, &["pending"]);
    let line = text.lines().find(|l| l.contains(&pending.id)).unwrap_or_else(|| panic!("not listed: {text}"));
    for part in ["RESOLVE_AUTHORIZATION", "AUTHORIZATION_PENDING", "still pending at the provider"] {
        assert!(line.contains(part), "`smartpay pending` shows {part}: {line}");
    }

    // A paid card: its notifications, listed and shown as they were delivered.
    let paid = pay_card(b, m, "4111111111111111", "737", None);
    assert_eq!(paid.http, 200, "{}", paid.answer);
    let captured = rig.receiver.wait_final(&[&paid.id], SETTLE).remove(0);
    let event = captured.event_id();
    // The receiver has it before the server records the attempt: wait for the record.
    let mine =
        wait_cli(d, &["notifications", "list", "--transaction", &paid.id, "--state", "DELIVERED", "--json"], |v| {
            v.as_array().unwrap().iter().find(|n| n["eventId"] == event.as_str()).cloned()
        });
    assert_eq!(mine["status"], "CAPTURED", "{mine}");
    assert_eq!(mine["transactionId"], paid.id.as_str(), "{mine}");
    assert_eq!(mine["attempts"], 1, "{mine}");
    let text = cli(d, &["notifications", "list", "--merchant", &m.key]);
    assert!(text.lines().any(|l| l.contains(&event) && l.contains("DELIVERED") && l.contains("CAPTURED")), "{text}");

    let (shown, attempts) = show(d, &event);
    assert_eq!(shown["payload"], captured.json(), "`show` prints the payload that was sent");
    assert_eq!(shown["state"], "DELIVERED", "{shown}");
    assert_eq!(attempts.len(), 1, "one attempt: {attempts:?}");
    assert!(attempts[0].contains(": 200 "), "the attempt's answer: {attempts:?}");
    assert!(
        cli_refused(d, &["notifications", "show", "00000000-0000-4000-8000-000000000000"]).contains("no notification")
    );

    // Redelivery: the same event again, byte for byte.
    let out = cli(d, &["notifications", "redeliver", &event]);
    assert!(out.contains("queued"), "{out}");
    let got = rig.receiver.wait_until("the redelivered event", SETTLE, |all| {
        all.iter().filter(|x| x.header("smartpay-event-id") == Some(event.as_str())).count() == 2
    });
    let again = got.iter().rfind(|x| x.header("smartpay-event-id") == Some(event.as_str())).unwrap();
    assert_eq!(again.body, captured.body, "a redelivery sends the same payload");
    again.assert_well_formed(&[&rig.secret]);
    let deadline = Instant::now() + SETTLE;
    while show(d, &event).1.len() < 2 {
        assert!(Instant::now() < deadline, "the redelivery's attempt was never recorded");
        std::thread::sleep(Duration::from_millis(100));
    }

    // SSRF: a link-local target (cloud metadata) is refused, naming the url; nothing changes.
    let refused = cli_refused(d, &["merchant", "notifications", &m.key, "--url", "http://169.254.169.254/"]);
    assert!(refused.contains("url"), "the refusal names the url: {refused}");
    assert!(!refused.contains("signing secret"), "{refused}");

    // Rotation: the next notifications carry a v1 for the old and for the new secret.
    assert!(rig.receiver.all().iter().all(|x| x.signatures() == 1), "one secret, one v1 before the rotation");
    let new_secret = printed_secret(&cli(d, &["merchant", "notification-secret", &m.key]));
    assert_ne!(new_secret, rig.secret);
    let before = rig.receiver.all().len();
    let later = pay_card(b, m, "4111111111111111", "737", None);
    assert_eq!(later.http, 200, "{}", later.answer);
    let got = rig.receiver.wait_final(&[&later.id], SETTLE).remove(0);
    assert!(rig.receiver.all().len() > before, "the endpoint still receives after the refused change");
    assert_eq!(got.signatures(), 2, "both secrets sign during the overlap: {:?}", got.header("smartpay-signature"));
    assert_eq!(got.verify(&[&rig.secret]), Ok(()), "receivers still on the old secret accept it");
    assert_eq!(got.verify(&[&new_secret]), Ok(()), "receivers on the new secret accept it");
    assert_eq!(got.verify(&["whsec_not-the-secret"]), Err(smartpay_notify::VerifyError::NoMatch));
    let mut tampered = got.clone();
    tampered.body[10] ^= 1;
    assert_eq!(tampered.verify(&[&new_secret]), Err(smartpay_notify::VerifyError::NoMatch));

    // The pending payment is still pending and still listed: nothing above disturbed it.
    assert_eq!(pending_job(d, &pending.id)["paymentStatus"], "AUTHORIZATION_PENDING");
    assert!(server.terminate().success());
    eprintln!("notifications CLI: {:?}", started.elapsed());
}
