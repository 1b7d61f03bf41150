//! Pending payments reach their final status on their own (CONTRACT §10, §11, §12): the pending
//! test cards …0259, …0267 and …0408, and a `PAYU` payment approved and one declined at PayU.
//! Nobody asks Get Payment Status until the merchant's endpoint got the final notification;
//! then the status agrees with the notification and with the provider, and every notification
//! is signed, carries its id as `SmartPay-Event-Id` and says `origin: automated`.

use std::collections::HashSet;
use std::time::Instant;

use super::pending_rig::*;

#[test]
fn pending_cards_and_payu_reach_their_final_status_without_anyone_asking() {
    let started = Instant::now();
    // …0259/…0267 stay pending at the acquirer for 400 ms, …0408 answers after 1.5 s (the
    // server gives up after 500 ms), PayU confirms 300 ms after the shopper approved.
    let rig = PendingRig::new("Pending shop", 400);
    let server = rig.start(None);
    let (b, m) = (server.base.as_str(), &rig.merchant);

    let mut cases: Vec<(String, Via, &str)> = Vec::new();
    for (card, expect) in [
        ("4000000000000259", "CAPTURED"),
        ("4000000000000267", "AUTHORIZATION_FAILED"),
        ("4000000000000408", "CAPTURED"),
    ] {
        let paid = pay_card(b, m, card, "737", None);
        let v = paid.json();
        assert_eq!(paid.http, 200, "{card}: {v}");
        assert_eq!(v["transactionStatus"], "AUTHORIZATION_PENDING", "{card}: the widget reports pending: {v}");
        cases.push((paid.id, Via::Acquirer, expect));
    }
    for (approve, expect) in [(true, "CAPTURED"), (false, "AUTHORIZATION_FAILED")] {
        let (paid, order) = pay_payu(b, m);
        rig.payu_decide(&order, approve);
        cases.push((paid.id, Via::Payu, expect));
    }

    // Only the merchant's endpoint tells the test that they are final.
    let ids: Vec<&str> = cases.iter().map(|(id, _, _)| id.as_str()).collect();
    let finals = rig.receiver.wait_final(&ids, SETTLE);
    let waited = started.elapsed();

    for ((id, via, expect), last) in cases.iter().zip(&finals) {
        let payload = last.json();
        assert_eq!(last.status(), *expect, "{id} ({via:?}) ended as expected: {payload}");
        assert_eq!(payload["origin"], "automated", "{id}: resolved by SmartPay itself: {payload}");
        let status = rig.status(b, id);
        assert_eq!(status["paymentStatus"], last.status().as_str(), "{id}: the API agrees with the notification");
        assert_eq!(
            payload["metadata"]["reconciliationReferenceId"], status["reconciliationReferenceId"],
            "{id}: the notification names the provider's reference"
        );
        let history: Vec<&str> =
            status["statusHistory"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
        assert_eq!(history.iter().filter(|s| **s == *expect).count(), 1, "{id}: one final transition: {history:?}");
        rig.assert_agrees(id, *via, &last.status());

        // Every notification of it: well formed, one per status change, never twice.
        let all = rig.receiver.of(id);
        for d in &all {
            d.assert_well_formed(&[&rig.secret]);
        }
        let statuses: Vec<String> = all.iter().map(|d| d.status()).collect();
        let unique: HashSet<&String> = statuses.iter().collect();
        assert_eq!(unique.len(), statuses.len(), "{id}: each status notified once: {statuses:?}");
        assert!(statuses.iter().all(|s| history.contains(&s.as_str())), "{id}: {statuses:?} vs {history:?}");
    }
    let events: HashSet<String> = rig.receiver.all().iter().map(|d| d.event_id()).collect();
    assert_eq!(events.len(), rig.receiver.all().len(), "event ids are unique");
    assert!(server.terminate().success());
    eprintln!("pending: {} payments final on their own after {waited:?} (total {:?})", cases.len(), started.elapsed());
}

/// POSTs the sandbox bank's challenge form (`decision=approve|fail`): the status it answered.
fn decide_challenge(challenge_url: &str, decision: &str) -> u16 {
    use std::io::{Read, Write};
    let rest = challenge_url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let form = format!("decision={decision}");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let req = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw[9..12].parse().unwrap()
}

/// When SmartPay gives up on a challenge or an approval page it records `AUTHORIZATION_FAILED`
/// and voids the authorization at the provider: a shopper who approves later leaves nothing
/// there that SmartPay calls failed and nobody would capture or release.
#[test]
fn abandoned_challenges_and_approval_pages_end_failed_and_stay_failed_at_the_provider() {
    let rig = PendingRig::new("Abandoned shop", 300);
    let server = rig.start_with(None, &[("SMARTPAY_CHALLENGE_DEADLINE_SECONDS", "1")]);
    let (b, m) = (server.base.as_str(), &rig.merchant);
    let card = pay_card(b, m, "4000000000003220", "737", None);
    let v = card.json();
    assert_eq!((card.http, v["transactionStatus"].as_str()), (200, Some("AUTHORIZATION_PENDING")), "{v}");
    let challenge = v["challengeUrl"].as_str().unwrap_or_else(|| panic!("no challenge: {v}")).to_owned();
    let (payu, order) = pay_payu(b, m);

    // The shopper never completes either: SmartPay ends both after the challenge deadline.
    let finals = rig.receiver.wait_final(&[&card.id, &payu.id], SETTLE);
    for (id, last) in [&card.id, &payu.id].into_iter().zip(&finals) {
        last.assert_well_formed(&[&rig.secret]);
        assert_eq!(last.status(), "AUTHORIZATION_FAILED", "{id}: {:?}", last.json());
        assert_eq!(last.json()["origin"], "automated", "{id}");
        let status = rig.status(b, id);
        assert_eq!(status["paymentStatus"], "AUTHORIZATION_FAILED", "{status}");
        assert_eq!(status["declineReason"], "payment_provider_authentication_abandoned", "{status}");
    }

    // The shoppers come back late and approve. SmartPay said failed, so no provider may hold an
    // authorization for them (nothing would ever capture or release it).
    let answered = decide_challenge(&challenge, "approve");
    let at_acquirer = rig.acquirer.by_key("/v1/authorizations?idempotencyKey=", &card.id);
    let holds = at_acquirer.as_ref().is_some_and(|a| a["status"] == "AUTHORIZED" && a["cancelled"] != true);
    assert!(
        !holds,
        "SmartPay reports AUTHORIZATION_FAILED (abandoned) but the acquirer authorized the late challenge \
         (challenge page answered {answered}): {at_acquirer:?}"
    );
    rig.payu_decide(&order, true);
    let deadline = std::time::Instant::now() + SETTLE;
    let at_payu = loop {
        let o = rig.payu.by_key("/api/v2_1/orders?extOrderId=", &payu.id).unwrap();
        if o["status"] != "PENDING" || std::time::Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        !matches!(at_payu["status"].as_str(), Some("WAITING_FOR_CONFIRMATION" | "COMPLETED")),
        "SmartPay reports AUTHORIZATION_FAILED (abandoned) but PayU authorized the late approval: {at_payu}"
    );
    for id in [&card.id, &payu.id] {
        assert_eq!(rig.status(b, id)["paymentStatus"], "AUTHORIZATION_FAILED");
    }
    assert!(server.terminate().success());
}
