//! C1: `kill -9` the server under Create Checkout load; after every restart, every
//! acknowledged transactionId is there, and the database passes its integrity checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

const CYCLES: usize = 10;
const CLIENTS: usize = 16;

#[test]
fn acknowledged_checkouts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Arc::new(create_merchant(d, "Crash shop"));
    let port = free_port();
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut seed = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64) | 1;
    let mut restart_ms = Vec::new();
    let mut verified = 0;

    for cycle in 0..CYCLES {
        let started = Instant::now();
        let server = Server::start(d, port, &[]);
        restart_ms.push(started.elapsed().as_millis());
        // What the previous cycle acknowledged just before the kill must be readable now
        // (everything else is checked in the database at the end).
        let before: Vec<String> = acked.lock().unwrap()[verified..].to_vec();
        verified += before.len();
        for id in &before {
            let (status, _) =
                http(&server.base, "GET", &format!("/payment/status/{id}"), &[("Authorization", &basic(&m))], None);
            assert_eq!(status, 200, "cycle {cycle}: acknowledged {id} is missing after kill -9");
        }

        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (m, acked, stop, base) = (m.clone(), acked.clone(), stop.clone(), server.base.clone());
                std::thread::spawn(move || {
                    let body = checkout_body(&m);
                    let auth = basic(&m);
                    while !stop.load(Ordering::Relaxed) {
                        match try_http(&base, "POST", "/payment/creation", &[("Authorization", &auth)], Some(&body)) {
                            Ok((200, text)) => {
                                // Acknowledged: the client holds a 200 with the id.
                                let v: Value = match serde_json::from_str(&text) {
                                    Ok(v) => v,
                                    Err(_) => continue, // the response was cut by the kill: not acknowledged
                                };
                                if let Some(id) = v["transactionId"].as_str() {
                                    acked.lock().unwrap().push(id.to_owned());
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(300 + seed % 900);
        std::thread::sleep(run_for);
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > CYCLES * 10, "the load produced acknowledged writes ({})", acked.len());
    let conn = rusqlite::Connection::open(d.join("smartpay.db")).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let fk_problems: i64 = conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
    assert_eq!(fk_problems, 0);
    let mut stmt = conn.prepare("SELECT COUNT(*) FROM payments WHERE id = ?1").unwrap();
    for id in &acked {
        let n: i64 = stmt.query_row([id], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "acknowledged {id} lost");
    }
    let without_history: i64 = conn
        .query_row("SELECT COUNT(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM payment_status_history h WHERE h.payment_id = p.id)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(without_history, 0, "every payment has its history row");
    eprintln!(
        "crash test: {} acknowledged checkouts over {CYCLES} kill -9 cycles; restart to ready (ms): {restart_ms:?}",
        acked.len()
    );
}
