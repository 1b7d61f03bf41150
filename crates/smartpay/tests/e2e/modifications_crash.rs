//! B6: the server dies (abort, as under `kill -9`) at each crash point between opening a
//! modification, the provider's answer, the local commit and the HTTP answer; a retry of the
//! same request on the restarted server gets the final answer, and the acquirer — its own process,
//! so it outlives the crash — has seen the effect exactly once.

use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use serde_json::Value;

use super::modifications_rig::*;

/// Runs per crash point (the matrix asks for 5).
const RUNS: usize = 5;

/// What a crash run modifies, and how the payment is prepared for it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// A partial capture of 5.00 of an authorized 10.99.
    Capture,
    /// A refund of 3.00 of a payment captured in full.
    Refund,
    /// The cancellation of an authorization.
    Cancel,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Capture => "capture",
            Op::Refund => "refund",
            Op::Cancel => "cancel",
        }
    }

    fn amount(self) -> Option<&'static str> {
        match self {
            Op::Capture => Some("5.00"),
            Op::Refund => Some("3.00"),
            Op::Cancel => None,
        }
    }

    fn final_status(self) -> &'static str {
        match self {
            Op::Capture => "CAPTURED",
            Op::Refund => "REFUNDED",
            Op::Cancel => "CANCELLED",
        }
    }

    /// The acquirer's (captured, refunded, cancelled) after exactly one effect.
    fn expected_effects(self) -> (i64, i64, bool) {
        match self {
            Op::Capture => (500, 0, false),
            Op::Refund => (1099, 300, false),
            Op::Cancel => (0, 0, true),
        }
    }
}

/// Every crash point, with the modification that passes through it.
const POINTS: [(&str, Op); 12] = [
    ("capture.opened", Op::Capture),
    ("capture.provider_answered", Op::Capture),
    ("capture.recorded", Op::Capture),
    ("modification.answered", Op::Capture),
    ("refund.opened", Op::Refund),
    ("refund.provider_answered", Op::Refund),
    ("refund.recorded", Op::Refund),
    ("modification.answered", Op::Refund),
    ("cancellation.opened", Op::Cancel),
    ("cancellation.provider_answered", Op::Cancel),
    ("cancellation.recorded", Op::Cancel),
    ("modification.answered", Op::Cancel),
];

#[test]
fn a_crash_at_any_point_of_a_modification_then_a_retry_gives_one_provider_effect() {
    let started = Instant::now();
    let rig = Rig::new("Crash point shop");

    // Every payment the runs need, prepared on one healthy server: authorized ones for captures
    // and cancellations, captured in full for refunds.
    let server = rig.start(None);
    let mut prepared: Vec<(&str, Op, String)> = Vec::new();
    for (point, op) in POINTS {
        for _ in 0..RUNS {
            let id = pay(&server.base, &rig.merchant);
            if op == Op::Refund {
                let (status, text) =
                    rig.modify(&server.base, "capture", &rig.body(&id, &format!("full-{id}"), None)).unwrap();
                assert_eq!(status, 200, "{text}");
            }
            prepared.push((point, op, id));
        }
    }
    let references: Vec<String> = prepared
        .iter()
        .map(|(_, _, id)| rig.status(&server.base, id)["reconciliationReferenceId"].as_str().unwrap().to_owned())
        .collect();
    server.terminate();

    for (run, ((point, op, id), reference)) in prepared.iter().zip(&references).enumerate() {
        let (point, op) = (*point, *op);
        let modification_id = format!("{}-{run}", op.path());
        let body = rig.body(id, &modification_id, op.amount());
        let before = rig.acquirer.effects(reference);

        let crashing = rig.start(Some(point));
        let answer = rig.modify(&crashing.base, op.path(), &body);
        assert!(
            matches!(answer, Err(_) | Ok((0, _))),
            "{point} run {run}: the request was answered although the server crashed: {answer:?}"
        );
        let mut child = crashing.child;
        let exit = child.wait().unwrap();
        assert_eq!(exit.signal(), Some(6), "{point} run {run}: the server aborted at the crash point ({exit:?})");
        let log = std::fs::read_to_string(&crashing.stderr).unwrap();
        assert!(log.contains(&format!("failpoint {point}: aborting")), "{point} run {run}: {log}");
        if point.ends_with(".opened") {
            assert_eq!(rig.acquirer.effects(reference), before, "{point}: the provider was not asked before the crash");
        } else {
            assert_eq!(
                rig.acquirer.effects(reference),
                op.expected_effects(),
                "{point}: the provider acted before the crash"
            );
        }

        let server = rig.start(None);
        let (status, text) = rig.modify(&server.base, op.path(), &body).unwrap();
        assert_eq!(status, 200, "{point} run {run}: the retry after the crash: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let m = &answer["modification"];
        assert_eq!(m["modificationData"]["modificationId"], modification_id.as_str(), "{point}: {answer}");
        assert_eq!(m["status"], op.final_status(), "{point} run {run}: the retry's final answer: {answer}");
        assert_eq!(
            rig.acquirer.effects(reference),
            op.expected_effects(),
            "{point} run {run}: the provider-side effect happened exactly once"
        );
        let (again_status, again) = rig.modify(&server.base, op.path(), &body).unwrap();
        assert_eq!((again_status, again.as_str()), (200, text.as_str()), "{point}: a further retry replays the answer");
        assert_eq!(rig.acquirer.effects(reference), op.expected_effects(), "{point}: the replay asked the provider");

        let payment = rig.status(&server.base, id);
        let same_id: Vec<&Value> = payment["modifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["modificationData"]["modificationId"] == modification_id.as_str())
            .collect();
        assert_eq!(same_id.len(), 1, "{point}: one modification for the modificationId: {payment}");
        let (captured, refunded, _) = op.expected_effects();
        assert_eq!(minor(&payment["amounts"]["captured"]), captured, "{point}: SmartPay's books match the acquirer's");
        assert_eq!(minor(&payment["amounts"]["refunded"]), refunded, "{point}: SmartPay's books match the acquirer's");
        let expected_status = match op {
            Op::Capture | Op::Refund => "CAPTURED",
            Op::Cancel => "CANCELLED",
        };
        assert_eq!(payment["paymentStatus"], expected_status, "{point}: {payment}");
        server.terminate();
        assert_verified(rig.data_dir(), &format!("after the crash at {point} (run {run})"));
    }
    eprintln!("B6: {} crash runs at {} points in {:?}", prepared.len(), POINTS.len(), started.elapsed());
}
