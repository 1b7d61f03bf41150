//! C1 with modifications: `kill -9` the server at random moments while clients create checkouts,
//! pay them and capture, refund and cancel; after every restart every acknowledged modification
//! is there with the status it was acknowledged with, every interrupted one finishes on retry,
//! the acquirer saw each effect exactly once, `smartpay verify` finds nothing and SQLite's
//! integrity check passes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::modifications_rig::*;
use super::*;

const CYCLES: usize = 10;
const CLIENTS: usize = 4;

/// One modification request a client sent.
#[derive(Clone, Debug)]
struct Sent {
    transaction: String,
    op: &'static str,
    modification_id: String,
    body: String,
}

/// What the clients and the restarts learnt, shared between the client threads.
#[derive(Default)]
struct Log {
    /// Modifications answered with 200, with the modification's status in that answer.
    acked: Vec<(Sent, String)>,
    /// Modifications whose answer the kill cut off: retried after the restart.
    interrupted: Vec<Sent>,
    /// Answers no healthy server gives to these requests.
    unexpected: Vec<String>,
}

/// The modifications a client makes on its `n`-th payment: a cancellation now and then, else
/// two captures (partial, then the rest) and two partial refunds.
fn plan(rig_body: &dyn Fn(&str, &str, Option<&str>) -> String, id: &str, tag: &str, n: u64) -> Vec<Sent> {
    let steps: &[(&'static str, &str, Option<&str>)] = if n % 5 == 4 {
        &[("cancel", "x", None)]
    } else {
        &[
            ("capture", "c1", Some("6.00")),
            ("capture", "c2", None),
            ("refund", "r1", Some("2.00")),
            ("refund", "r2", Some("3.00")),
        ]
    };
    steps
        .iter()
        .map(|(op, step, amount)| {
            let modification_id = format!("{tag}-{n}-{step}");
            Sent { transaction: id.to_owned(), op, body: rig_body(id, &modification_id, *amount), modification_id }
        })
        .collect()
}

fn client(rig: &Rig, base: &str, tag: &str, log: &Mutex<Log>, stop: &AtomicBool) {
    let body = |id: &str, modification_id: &str, amount: Option<&str>| rig.body(id, modification_id, amount);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = match try_pay(base, &rig.merchant, "4111111111111111") {
            Ok((id, 200)) => id,
            Ok(_) | Err(_) => {
                // The server is gone (or going): nothing acknowledged, nothing to modify.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        for sent in plan(&body, &id, tag, n) {
            let answer = rig.modify(base, sent.op, &sent.body);
            let mut log = log.lock().unwrap();
            match answer {
                Ok((200, text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(v) => {
                        let status = v["modification"]["status"].as_str().unwrap_or_default().to_owned();
                        log.acked.push((sent, status));
                    }
                    Err(_) => {
                        log.interrupted.push(sent);
                        break;
                    }
                },
                Ok((0, _)) | Err(_) => {
                    log.interrupted.push(sent);
                    break;
                }
                Ok((status, text)) => {
                    log.unexpected.push(format!("{} {}: {status} {text}", sent.op, sent.modification_id));
                    break;
                }
            }
        }
    }
}

/// The final status of each kind of modification in this load.
fn final_status(op: &str) -> &'static str {
    match op {
        "capture" => "CAPTURED",
        "refund" => "REFUNDED",
        _ => "CANCELLED",
    }
}

/// Every acknowledged modification of `acked` is on its payment with its acknowledged status,
/// once, and the acquirer's sums equal SmartPay's for each of these payments.
fn check_acknowledged(rig: &Rig, base: &str, acked: &[(Sent, String)], cycle: usize) {
    let mut by_payment: BTreeMap<&str, Vec<&(Sent, String)>> = BTreeMap::new();
    for a in acked {
        by_payment.entry(a.0.transaction.as_str()).or_default().push(a);
    }
    for (id, mods) in by_payment {
        let payment = rig.status(base, id);
        let listed = payment["modifications"].as_array().unwrap();
        for (sent, status) in mods {
            let found: Vec<&Value> = listed
                .iter()
                .filter(|m| m["modificationData"]["modificationId"] == sent.modification_id.as_str())
                .collect();
            assert_eq!(
                found.len(),
                1,
                "cycle {cycle}: acknowledged {} of {id} lost or doubled: {payment}",
                sent.modification_id
            );
            assert_eq!(
                found[0]["status"],
                status.as_str(),
                "cycle {cycle}: {} of {id} changed: {payment}",
                sent.modification_id
            );
        }
        assert!(
            listed.iter().all(|m| !m["status"].as_str().unwrap().ends_with("_PENDING")),
            "cycle {cycle}: a modification of {id} left pending after its retry: {payment}"
        );
        let reference = payment["reconciliationReferenceId"].as_str().unwrap();
        let (captured, refunded, cancelled) = rig.acquirer.effects(reference);
        assert_eq!(
            (captured, refunded, cancelled),
            (
                minor(&payment["amounts"]["captured"]),
                minor(&payment["amounts"]["refunded"]),
                payment["paymentStatus"] == "CANCELLED"
            ),
            "cycle {cycle}: the acquirer's effects on {id} differ from SmartPay's books: {payment}"
        );
    }
}

fn integrity_check(data_dir: &std::path::Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db_path(data_dir), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

#[test]
fn acknowledged_modifications_survive_kill_9_under_mixed_load() {
    let started = Instant::now();
    let rig = Arc::new(Rig::new("Crash loop shop"));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut seed = (unique() as u64) | 1;
    eprintln!("C1 with modifications: seed {seed}");
    let (mut checked, mut retried, mut restart_ms) = (0, 0, Vec::new());

    for cycle in 0..=CYCLES {
        let t = Instant::now();
        let server = rig.start(None);
        restart_ms.push(t.elapsed().as_millis());

        // What the kill cut off is asked again, with the same modificationId and body.
        let interrupted = std::mem::take(&mut log.lock().unwrap().interrupted);
        for sent in interrupted {
            let (status, text) = rig.modify(&server.base, sent.op, &sent.body).unwrap();
            assert_eq!(status, 200, "cycle {cycle}: retry of interrupted {} {}: {text}", sent.op, sent.modification_id);
            let v: Value = serde_json::from_str(&text).unwrap();
            let got = v["modification"]["status"].as_str().unwrap().to_owned();
            assert_eq!(
                got,
                final_status(sent.op),
                "cycle {cycle}: the retry of {} finished it: {v}",
                sent.modification_id
            );
            log.lock().unwrap().acked.push((sent, got));
            retried += 1;
        }
        let fresh: Vec<(Sent, String)> = log.lock().unwrap().acked[checked..].to_vec();
        check_acknowledged(&rig, &server.base, &fresh, cycle);
        checked += fresh.len();
        assert_verified(rig.data_dir(), &format!("after restart {cycle}"));
        assert_eq!(integrity_check(rig.data_dir()), "ok", "cycle {cycle}");
        let unexpected = log.lock().unwrap().unexpected.clone();
        assert!(unexpected.is_empty(), "cycle {cycle}: unexpected answers under load: {unexpected:#?}");
        if cycle == CYCLES {
            // The last restart: everything acknowledged over all cycles is still there.
            let all = log.lock().unwrap().acked.clone();
            check_acknowledged(&rig, &server.base, &all, cycle);
            assert!(server.terminate().success(), "the last server stops cleanly");
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (rig, log, stop, base) = (rig.clone(), log.clone(), stop.clone(), server.base.clone());
                std::thread::spawn(move || client(&rig, &base, &format!("k{cycle}-{c}"), &log, &stop))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(500 + seed % 1500));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }

    let log = log.lock().unwrap();
    assert!(log.acked.len() >= CYCLES * 4, "the load made modifications ({} acknowledged)", log.acked.len());
    eprintln!(
        "C1 with modifications: {} acknowledged ({retried} after a retry) over {CYCLES} kill -9 cycles in {:?}; restart to ready (ms): {restart_ms:?}",
        log.acked.len(),
        started.elapsed()
    );
}
