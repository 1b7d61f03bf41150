//! The server dies (abort, as under `kill -9`) at each crash point of a payment that goes
//! pending and of the automatic capture that follows, and while a notification is delivered.
//! After a restart without the failpoint, every payment reaches a final status on its own, that
//! status agrees with the provider (its own process, asked by idempotency key), the merchant's
//! endpoint got a notification of it, and `smartpay verify` finds the books consistent.
//!
//! A crashed worker's leases (60 s for a job, 120 s for a notification, not configurable) are
//! ended in the database while the server is down, as their passing would (matrix row D2).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::modifications_rig::assert_verified;
use super::pending_rig::*;
use super::*;

/// Where the server dies, and what is paid so that it gets there.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pay {
    /// The pending card …0259: the request dies with the server.
    PendingCard,
    /// 4111…: authorized, then captured automatically; the request dies with the server.
    Card,
    /// …0259 and a `PAYU` payment approved at PayU, both answered pending; a poll kills it.
    PendingCardAndPayu,
    /// 4111…: paid; the first notification delivered kills it.
    CardNotified,
}

const POINTS: [(&str, Pay); 7] = [
    ("authorization.pending_committed", Pay::PendingCard),
    ("authorization.provider_answered", Pay::PendingCard),
    ("resolution.answered", Pay::PendingCardAndPayu),
    ("capture.opened", Pay::Card),
    ("capture.provider_answered", Pay::Card),
    ("capture.recorded", Pay::Card),
    // Last: every earlier notification is delivered by then, so the one that kills the server
    // is of this run's payment.
    ("notification.sent", Pay::CardNotified),
];

/// What the acquirer must hold for a payment right after the crash (before any restart).
fn assert_crashed_where_expected(rig: &PendingRig, point: &str, id: &str) {
    let a = rig.acquirer.by_key("/v1/authorizations?idempotencyKey=", id);
    let seen =
        a.as_ref().map(|a| (a["status"].as_str().unwrap_or("").to_owned(), a["captured"].as_i64().unwrap_or(-1)));
    let ok = match point {
        "authorization.pending_committed" => seen.is_none(),
        "authorization.provider_answered" => seen.is_some(),
        "capture.opened" => seen == Some(("AUTHORIZED".into(), 0)),
        "capture.provider_answered" | "capture.recorded" => seen == Some(("AUTHORIZED".into(), AMOUNT)),
        _ => true,
    };
    assert!(ok, "{point}: the acquirer's state right after the crash: {seen:?}");
}

/// Waits until the outbox holds nothing undelivered.
fn wait_outbox_empty(rig: &PendingRig) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let out = cli(rig.data_dir(), &["notifications", "list", "--state", "PENDING", "--json"]);
        let pending: serde_json::Value = serde_json::from_str(&out).unwrap();
        if pending.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(Instant::now() < deadline, "notifications never delivered: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn after_a_crash_at_any_point_every_payment_ends_final_agreeing_with_the_provider_and_notified() {
    let started = Instant::now();
    let rig = PendingRig::new("Pending crash shop", 300);
    let m = &rig.merchant;
    let mut report = Vec::new();

    for (point, pay) in POINTS {
        let run_started = Instant::now();
        // Both resolution payments are started before the first poll (1 s) kills the server.
        let crashing = if pay == Pay::PendingCardAndPayu {
            rig.start_with(Some(point), &[("SMARTPAY_PENDING_FIRST_POLL_MS", "1000")])
        } else {
            rig.start(Some(point))
        };
        let b = crashing.base.clone();
        let mut cases: Vec<(String, Via)> = Vec::new();
        match pay {
            Pay::PendingCard | Pay::Card => {
                let card = if pay == Pay::Card { "4111111111111111" } else { "4000000000000259" };
                let paid = pay_card(&b, m, card, "737", None);
                // The authorization points are on the request's path. A capture point is too,
                // unless the acquirer was slower than the provider timeout: then the request
                // answers pending and pending resolution authorizes, captures and dies there.
                let slow = pay == Pay::Card && paid.http == 200 && paid.answer.contains("AUTHORIZATION_PENDING");
                assert!(paid.http == 0 || slow, "{point}: answered although the server died there: {}", paid.answer);
                cases.push((paid.id, Via::Acquirer));
            }
            Pay::PendingCardAndPayu => {
                let (payu, order) = pay_payu(&b, m);
                rig.payu_decide(&order, true);
                let card = pay_card(&b, m, "4000000000000259", "737", None);
                assert_eq!(
                    (card.http, card.json()["transactionStatus"].as_str()),
                    (200, Some("AUTHORIZATION_PENDING"))
                );
                cases.push((card.id, Via::Acquirer));
                cases.push((payu.id, Via::Payu));
            }
            Pay::CardNotified => {
                // The request may or may not finish before the notification loop kills the server.
                let paid = pay_card(&b, m, "4111111111111111", "737", None);
                cases.push((paid.id, Via::Acquirer));
            }
        }
        let log = wait_abort(crashing, point);
        for (id, via) in &cases {
            if *via == Via::Acquirer {
                assert_crashed_where_expected(&rig, point, id);
            }
        }
        let before_restart = rig.receiver.all();
        let (leased_jobs, leased_notifications) = leases(rig.data_dir());
        match point {
            "resolution.answered" => assert!(
                cases.iter().any(|(id, _)| leased_jobs.contains(id)),
                "{point}: the crashed poll's job is leased: {leased_jobs:?}"
            ),
            "notification.sent" => {
                let killer = before_restart.last().expect("a notification was delivered before the crash").event_id();
                assert!(
                    leased_notifications.contains(&killer),
                    "{point}: the delivered notification {killer} is still leased, its attempt unrecorded: {leased_notifications:?}\n{log}"
                );
            }
            _ => {}
        }
        end_leases(rig.data_dir());

        let server = rig.start(None);
        let ids: Vec<&str> = cases.iter().map(|(id, _)| id.as_str()).collect();
        let finals = rig.receiver.wait_final(&ids, SETTLE);
        for ((id, via), last) in cases.iter().zip(&finals) {
            last.assert_well_formed(&[&rig.secret]);
            let status = rig.status(&server.base, id);
            let final_status = status["paymentStatus"].as_str().unwrap();
            assert_eq!(final_status, last.status(), "{point}: {id}: the API agrees with the notification");
            rig.assert_agrees(id, *via, final_status);
            if !matches!(pay, Pay::CardNotified) && point != "capture.recorded" {
                assert_eq!(last.json()["origin"], "automated", "{point}: {id}: finished by SmartPay itself");
            }
            // One final transition: every notification of the final status carries one event id.
            let events: HashSet<String> =
                rig.receiver.of(id).iter().filter(|d| d.status() == final_status).map(|d| d.event_id()).collect();
            assert_eq!(events.len(), 1, "{point}: {id}: one final status change: {:?}", summary(&rig.receiver.of(id)));
        }
        if point == "notification.sent" {
            // At least once: what was delivered just before the crash is delivered again.
            let killer = before_restart.last().unwrap().event_id();
            rig.receiver.wait_until(&format!("{killer} delivered again"), SETTLE, |d| {
                d.iter().filter(|x| x.header("smartpay-event-id") == Some(killer.as_str())).count() >= 2
            });
        }
        wait_outbox_empty(&rig);
        assert!(server.terminate().success());
        assert_verified(rig.data_dir(), &format!("after the crash at {point}"));
        report.push(format!("{point}: {} payment(s) final in {:?}", cases.len(), run_started.elapsed()));
    }
    for d in rig.receiver.all() {
        d.assert_well_formed(&[&rig.secret]);
    }
    eprintln!("pending crash points ({:?}):\n  {}", started.elapsed(), report.join("\n  "));
}
