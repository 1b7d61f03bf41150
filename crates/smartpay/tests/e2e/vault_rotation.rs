//! G4: key rotation through the binary, crashed at five points and resumed. Over 300 stored
//! options (four batches) in several accounts; four KEK rotations, each aborted by one failpoint
//! (`rotation.batch.1`, `rotation.batch.2`, `rotation.before_finish`, `rotation.before_retire`:
//! the process aborts, like `kill -9`), then resumed; a DEK rotation aborted at
//! `rotation.batch.1` and resumed; and a real `kill -9` of a `rotate-kek` process held right
//! after its first batch committed. After every resume every option opens (`keys vault-verify`),
//! none is left under the old key, the old key is retired and refused, and a server with the new
//! key lists every option and pays with one.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::vault_rig::*;
use super::*;

const ACCOUNTS: usize = 4;
const PER_ACCOUNT: usize = 80;
const TOTAL: usize = ACCOUNTS * PER_ACCOUNT;

/// Every stored option's (kek_id, number_sealed, token_sealed), by reference, read from the database.
fn sealed_rows(data: &Path) -> BTreeMap<String, (String, Vec<u8>, Vec<u8>)> {
    let conn = rusqlite::Connection::open(data.join("smartpay.db")).unwrap();
    let mut stmt = conn.prepare("SELECT reference, kek_id, number_sealed, token_sealed FROM payment_options").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))).unwrap().map(Result::unwrap).collect()
}

/// `keys vault-status` as (key versions with their state, options per key version, unfinished
/// rotation line).
struct Status {
    keys: BTreeMap<String, String>,
    per_key: BTreeMap<String, u64>,
    unfinished: Option<String>,
    text: String,
}

fn vault_status(data: &Path) -> Status {
    let text = cli_ok(data, &["keys", "vault-status"], &[]);
    let mut s = Status { keys: BTreeMap::new(), per_key: BTreeMap::new(), unfinished: None, text: text.clone() };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("unfinished") {
            s.unfinished = Some(line.to_owned());
        } else if words.len() == 5 && words[1..4] == ["stored", "options", "under"] {
            s.per_key.insert(words[4].to_owned(), words[0].parse().unwrap());
        } else if words.len() >= 2 && (words[1] == "active" || words[1] == "retired") {
            s.keys.insert(words[0].to_owned(), words[1].to_owned());
        }
    }
    s
}

fn kek_env<'a>(current: &'a Path, previous: Option<&'a Path>) -> Vec<(&'static str, &'a str)> {
    let mut env = vec![("SMARTPAY_VAULT_KEK_FILE", current.to_str().unwrap())];
    if let Some(p) = previous {
        env.push(("SMARTPAY_VAULT_PREVIOUS_KEK_FILE", p.to_str().unwrap()));
    }
    env
}

/// `keys vault-verify` with the given keys succeeds and checked every option.
fn assert_verifies(data: &Path, env: &[(&str, &str)], why: &str) {
    let out = cli_ok(data, &["keys", "vault-verify"], env);
    assert!(out.contains(&format!("{TOTAL} stored options checked, 0 did not open")), "{why}: {out}");
}

/// Runs a rotation with `failpoint` set; it must abort there (SIGABRT, the failpoint named).
fn rotate_until_failpoint(data: &Path, command: &str, env: &[(&str, &str)], failpoint: &str) {
    let mut env = env.to_vec();
    env.push(("SMARTPAY_FAILPOINTS", failpoint));
    let out = cli_env(data, &["keys", command], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "{command} must abort at {failpoint}: {:?} {stderr}", out.status);
    assert!(stderr.contains(&format!("failpoint {failpoint}: aborting")), "{stderr}");
}

/// The key version a finished KEK rotation reports.
fn rewrapped_to(out: &str) -> String {
    let rest = out.split("re-wrapped under key version ").nth(1).unwrap_or_else(|| panic!("{out}"));
    rest.split(|c: char| !c.is_ascii_hexdigit()).next().unwrap().to_owned()
}

/// Stores `TOTAL` options, `PER_ACCOUNT` in each of `ACCOUNTS` accounts, in parallel.
fn store_many(base: &str, m: &Merchant) -> BTreeMap<String, Vec<String>> {
    let seed = run_seed();
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("rotation-{i}")).collect();
    let c = Client::new(base, m);
    for a in &accounts {
        c.checkout(Some(a));
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = accounts
            .iter()
            .enumerate()
            .map(|(i, account)| {
                let seed = seed.clone();
                s.spawn(move || {
                    let c = Client::new(base, m);
                    let mut refs: Vec<String> = (0..PER_ACCOUNT)
                        .map(|n| c.store(account, &luhn_complete(&format!("4{seed}{i}{n:08}")), "VISA"))
                        .collect();
                    refs.sort();
                    (account.clone(), refs)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

/// Every account lists exactly its options, and one option pays.
fn assert_serves_all(base: &str, m: &Merchant, expected: &BTreeMap<String, Vec<String>>, why: &str) {
    let c = Client::new(base, m);
    for (account, refs) in expected {
        assert_eq!(&c.references(account), refs, "{why}: {account} lists every option");
    }
    let (account, refs) = expected.iter().next().unwrap();
    c.pay_stored(account, &refs[refs.len() / 2]);
}

#[test]
fn key_rotations_survive_crashes_at_five_points_and_kill_9() {
    let started = Instant::now();
    let dirs = Dirs::new();
    let d = &dirs.data;
    let m = create_merchant(d, "Rotation shop");
    let mut keys: Vec<PathBuf> = vec![dirs.generate_kek("k0.kek")];
    let server = Server::start(d, free_port(), &kek_env(&keys[0], None));
    let expected = store_many(&server.base, &m);
    assert_eq!(expected.values().map(Vec::len).sum::<usize>(), TOTAL, "every store made a distinct option");
    assert!(server.terminate().success());
    let status = vault_status(d);
    assert_eq!(status.per_key.len(), 1, "{}", status.text);
    let mut old_id = status.per_key.keys().next().unwrap().clone();
    assert_eq!(status.per_key[&old_id], TOTAL as u64, "{}", status.text);
    let stored_at = Instant::now();

    // Four KEK rotations, each crashed at one point and resumed.
    let plan = [
        ("rotation.batch.1", Some(100)),
        ("rotation.batch.2", Some(200)),
        ("rotation.before_finish", Some(TOTAL)),
        ("rotation.before_retire", None),
    ];
    for (step, (failpoint, rewrapped)) in plan.into_iter().enumerate() {
        let (old, new) = (keys[step].clone(), dirs.generate_kek(&format!("k{}.kek", step + 1)));
        keys.push(new.clone());
        let both = kek_env(&new, Some(&old));
        rotate_until_failpoint(d, "rotate-kek", &both, failpoint);
        let mid = vault_status(d);
        assert_eq!(mid.keys.get(&old_id).map(String::as_str), Some("active"), "{failpoint}: {}", mid.text);
        match rewrapped {
            Some(n) => {
                let unfinished = mid.unfinished.as_deref().unwrap_or_else(|| panic!("{failpoint}: {}", mid.text));
                assert!(unfinished.contains(&format!(": {n} done")), "{failpoint}: {unfinished}");
                assert_eq!(mid.per_key.get(&old_id).copied().unwrap_or(0), (TOTAL - n) as u64, "{}", mid.text);
                assert_eq!(mid.per_key.values().sum::<u64>(), TOTAL as u64, "{}", mid.text);
            }
            None => {
                assert!(mid.unfinished.is_none(), "{failpoint}: the rotation itself finished: {}", mid.text);
                assert!(!mid.per_key.contains_key(&old_id), "{failpoint}: {}", mid.text);
            }
        }
        // Mid-rotation, both keys open everything; the new key alone does not (yet).
        assert_verifies(d, &both, failpoint);
        if step == 0 {
            assert!(!cli_env(d, &["keys", "vault-verify"], &kek_env(&new, None)).status.success());
            // Serving continues mid-rotation with both keys: options under either key list and pay.
            let server = Server::start(d, free_port(), &both);
            assert_serves_all(&server.base, &m, &expected, "mid-rotation");
            let c = Client::new(&server.base, &m);
            let rows = sealed_rows(d);
            for kek in [&old_id, rows.values().map(|r| &r.0).find(|k| *k != &old_id).unwrap()] {
                let (reference, _) = rows.iter().find(|(_, r)| &r.0 == kek).unwrap();
                let account = expected.iter().find(|(_, refs)| refs.contains(reference)).unwrap().0;
                c.pay_stored(account, reference);
            }
            assert!(server.terminate().success());
        }
        let out = cli_ok(d, &["keys", "rotate-kek"], &both);
        let new_id = rewrapped_to(&out);
        assert_ne!(new_id, old_id);
        let after = vault_status(d);
        assert!(after.unfinished.is_none(), "{failpoint}: {}", after.text);
        assert_eq!(after.keys.get(&old_id).map(String::as_str), Some("retired"), "{failpoint}: {}", after.text);
        assert_eq!(after.keys.get(&new_id).map(String::as_str), Some("active"), "{failpoint}: {}", after.text);
        assert_eq!(after.per_key, BTreeMap::from([(new_id.clone(), TOTAL as u64)]), "{failpoint}: {}", after.text);
        assert!(sealed_rows(d).values().all(|r| r.0 == new_id));
        assert_verifies(d, &kek_env(&new, None), failpoint);
        old_id = new_id;
    }
    let rotated_at = Instant::now();

    // The retired key is refused as the current key: the vault closes, the API serves.
    let retired = &keys[keys.len() - 2];
    let current = keys.last().unwrap().clone();
    let server = Server::start(d, free_port(), &kek_env(retired, None));
    let c = Client::new(&server.base, &m);
    let account = expected.keys().next().unwrap();
    let (status, body) = c.list(account);
    assert_eq!(status, 503, "a retired key must not open the vault: {body:?}");
    let (_, id) = c.checkout(Some(account));
    assert_eq!(c.api("GET", &format!("/payment/status/{id}"), None).0, 200);
    let logs = std::fs::read_to_string(&server.stderr).unwrap();
    assert!(server.terminate().success());
    assert!(logs.contains("retired"), "the log says the key is retired: {logs:.2000}");
    // And as the previous key of a new rotation it is not accepted either.
    let out = cli_env(d, &["keys", "rotate-kek"], &kek_env(&current, Some(retired)));
    assert!(!out.status.success(), "rotating away from a retired key again must fail");
    // Nor does any command take it as the current key.
    let out = cli_env(d, &["keys", "rotate-dek"], &kek_env(retired, None));
    assert!(!out.status.success(), "rotate-dek under a retired key must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("retired"), "{}", String::from_utf8_lossy(&out.stderr));
    // The current key alone serves every option.
    let server = Server::start(d, free_port(), &kek_env(&current, None));
    assert_serves_all(&server.base, &m, &expected, "after the KEK rotations");
    assert!(server.terminate().success());

    // DEK rotation crashed after its first batch, then resumed: new ciphertexts everywhere.
    let env = kek_env(&current, None);
    let before = sealed_rows(d);
    rotate_until_failpoint(d, "rotate-dek", &env, "rotation.batch.1");
    let mid = vault_status(d);
    assert!(mid.unfinished.as_deref().is_some_and(|u| u.contains("DEK") && u.contains(": 100 done")), "{}", mid.text);
    let changed = sealed_rows(d).iter().filter(|(r, row)| before[*r].1 != row.1).count();
    assert_eq!(changed, 100, "the first batch is committed, the rest untouched");
    assert_verifies(d, &env, "DEK mid-rotation");
    let out = cli_ok(d, &["keys", "rotate-dek"], &env);
    assert!(out.contains("re-encrypted under new data keys"), "{out}");
    assert!(vault_status(d).unfinished.is_none());
    let after = sealed_rows(d);
    assert_eq!(after.len(), TOTAL);
    for (reference, (kek, pan, token)) in &after {
        let (old_kek, old_pan, old_token) = &before[reference];
        assert_eq!(kek, old_kek, "a DEK rotation keeps the KEK");
        assert_ne!(pan, old_pan, "{reference}: card number re-encrypted");
        assert_ne!(token, old_token, "{reference}: token re-encrypted");
    }
    assert_verifies(d, &env, "after the DEK rotation");

    // A real kill -9 of rotate-kek, held right after its first batch committed.
    let next = dirs.generate_kek("k5.kek");
    let both = kek_env(&next, Some(&current));
    kill_9_after_first_batch(d, &both);
    let mid = vault_status(d);
    assert!(mid.unfinished.as_deref().is_some_and(|u| u.contains(": 100 done")), "{}", mid.text);
    assert_verifies(d, &both, "after kill -9");
    let out = cli_ok(d, &["keys", "rotate-kek"], &both);
    let final_id = rewrapped_to(&out);
    let status = vault_status(d);
    assert_eq!(status.per_key, BTreeMap::from([(final_id, TOTAL as u64)]), "{}", status.text);
    assert_eq!(status.keys.get(&old_id).map(String::as_str), Some("retired"), "{}", status.text);
    assert_verifies(d, &kek_env(&next, None), "after kill -9 and resume");
    let server = Server::start(d, free_port(), &kek_env(&next, None));
    assert_serves_all(&server.base, &m, &expected, "after kill -9 and resume");
    assert!(server.terminate().success());
    let conn = rusqlite::Connection::open(d.join("smartpay.db")).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok", "the database is sound after the crashes");
    eprintln!(
        "vault rotation: {TOTAL} options stored in {:?}; 4 KEK rotations in {:?}; DEK + kill -9 in {:?}",
        stored_at - started,
        rotated_at - stored_at,
        rotated_at.elapsed()
    );
}

/// Starts `keys rotate-kek` with its stderr a full pipe: after its first batch commits, the
/// progress bar's write blocks. Once the database shows that batch, the process is killed with
/// SIGKILL, mid-rotation by construction.
fn kill_9_after_first_batch(data: &Path, env: &[(&str, &str)]) {
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    // Linux pipes hold 64 KiB: fill it from a thread, so a smaller pipe fails the test, not hangs it.
    let filler = std::thread::spawn(move || {
        writer.write_all(&[b'.'; 65_536]).unwrap();
        writer
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !filler.is_finished() {
        assert!(Instant::now() < deadline, "the pipe does not hold 64 KiB");
        std::thread::sleep(Duration::from_millis(5));
    }
    let writer = filler.join().unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir").arg(data).args(["keys", "rotate-kek"]).env_remove("SMARTPAY_CONFIG");
    cmd.env_remove("SMARTPAY_FAILPOINTS").env_remove("SMARTPAY_VAULT_KEK").env_remove("SMARTPAY_VAULT_KEK_COMPONENTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(writer).spawn().unwrap();
    drop(cmd);
    let conn = rusqlite::Connection::open(data.join("smartpay.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: Option<i64> =
            conn.query_row("SELECT done FROM vault_rotations WHERE finished_at_ms IS NULL", [], |r| r.get(0)).ok();
        if done.is_some_and(|n| n > 0) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "rotate-kek ended before its first batch was seen");
        assert!(Instant::now() < deadline, "rotate-kek did not commit a batch");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.signal(), Some(9), "rotate-kek was still running when killed: {exit:?}");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.starts_with(&[b'.'; 65_536]), "nothing else reached stderr before the kill");
}
