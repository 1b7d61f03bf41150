//! What the machine and the servers are doing: the machine's description, CPU time of
//! processes and of their threads (from /proc), the SQLite WAL's state (from the `-shm`
//! wal-index), and waiting until the servers are idle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc's CPU times.
fn ticks_per_second() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime (ticks) of a `/proc/…/stat` file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The pids of the machine's PostgreSQL server processes (command name `postgres`).
pub fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .collect()
}

/// CPU seconds used so far by the processes (threads included).
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids.iter().filter_map(|p| stat_ticks(Path::new(&format!("/proc/{p}/stat")))).sum();
    ticks as f64 / ticks_per_second()
}

/// CPU seconds used so far by each thread of a process, by name. The kernel keeps 15
/// characters of a name, so threads that share them (`smartpay-store-writer` and
/// `smartpay-store-checkpoint` are both `smartpay-store-`) are told apart by the order they
/// were started in: `name#1`, `name#2`, …; tokio's workers are added up under one name.
pub fn thread_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut threads: Vec<(u32, String, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return BTreeMap::new() };
    for task in dir.flatten() {
        let p = task.path();
        let (Some(tid), Ok(name), Some(t)) = (
            task.file_name().to_str().and_then(|t| t.parse().ok()),
            std::fs::read_to_string(p.join("comm")),
            stat_ticks(&p.join("stat")),
        ) else {
            continue;
        };
        threads.push((tid, name.trim().to_owned(), t as f64 / ticks_per_second()));
    }
    threads.sort_by_key(|t| t.0);
    let mut out = BTreeMap::new();
    for (_, name, secs) in &threads {
        let same = threads.iter().filter(|t| &t.1 == name).count();
        let key = if same == 1 || name.starts_with("tokio") {
            name.clone()
        } else {
            let nth = (1..).find(|i| !out.contains_key(&format!("{name}#{i}"))).unwrap_or(1);
            format!("{name}#{nth}")
        };
        *out.entry(key).or_insert(0.0) += secs;
    }
    out
}

/// CPU seconds of this process and of its children it has waited for (the wrk processes of
/// the phases that are over, also the CLI and pgbench runs): `(own, reaped children)`.
pub fn self_seconds() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else { return (0.0, 0.0) };
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else { return (0.0, 0.0) };
    let f: Vec<f64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // After the state (a letter, not parsed): utime, stime, cutime, cstime are fields 14-17.
    let at = |i: usize| f.get(i - 4).copied().unwrap_or(0.0) / ticks_per_second();
    (at(14) + at(15), at(16) + at(17))
}

/// The machine's CPU time so far (all cores, from /proc/stat): busy seconds (user, nice,
/// system, irq, softirq, steal) and seconds waiting for I/O.
pub fn machine_seconds() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else { return (0.0, 0.0) };
    let Some(cpu) = s.lines().find(|l| l.starts_with("cpu ")) else { return (0.0, 0.0) };
    let f: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / ticks_per_second();
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7), at(4))
}

/// The thread names that used the most CPU between two [`thread_seconds`] readings, with
/// their seconds, busiest first.
pub fn busiest(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, n: usize) -> Vec<(String, f64)> {
    let mut d: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    d.sort_by(|a, b| b.1.total_cmp(&a.1));
    d.truncate(n);
    d
}

/// The state of a SQLite WAL, from its wal-index (`<db>-shm`): the frames in the WAL
/// (`mxFrame`) and how many of them a checkpoint has copied into the database (`nBackfill`).
/// `None` when there is no wal-index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wal {
    pub frames: u32,
    pub backfilled: u32,
}

impl Wal {
    pub fn read(shm: &Path) -> Option<Wal> {
        let b = std::fs::read(shm).ok()?;
        // WalIndexHdr (48 bytes, twice) then WalCkptInfo; native byte order. mxFrame is at 16,
        // nBackfill at 96 (sqlite/src/wal.c).
        let u32_at = |o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
        Some(Wal { frames: u32_at(16)?, backfilled: u32_at(96)? })
    }

    /// `frames (not yet checkpointed)`.
    pub fn describe(w: Option<Wal>) -> String {
        w.map_or_else(
            || "-".into(),
            |w| format!("{} frames, {} not checkpointed", w.frames, w.frames.saturating_sub(w.backfilled)),
        )
    }
}

/// The `-shm` file of a SQLite database.
pub fn shm_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// Waits until the processes `pids()` names use less than 3 % of a core over a second (their
/// background work — WAL checkpoints, PostgreSQL's writers, autovacuum — is done), for at most
/// `max`. Answers how long it waited and whether they went quiet.
pub async fn wait_quiet(pids: impl Fn() -> Vec<u32>, max: Duration) -> (Duration, bool) {
    let started = Instant::now();
    loop {
        let before = cpu_seconds(&pids());
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu_seconds(&pids()) - before < 0.03 {
            return (started.elapsed(), true);
        }
        if started.elapsed() >= max {
            return (started.elapsed(), false);
        }
    }
}

/// Whether rustc runs on the machine (someone is compiling: the numbers are depressed).
pub fn compiling() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "rustc"))
}

/// Cores, CPU model, memory and kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0) / 1024 / 1024)
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} GiB RAM, Linux {}", kernel.trim())
}

/// The commit the binaries were built from, with `+ uncommitted changes` when the tree differs.
pub fn build() -> String {
    let git =
        |args: &[&str]| Command::new("git").args(args).output().ok().filter(|o| o.status.success()).map(|o| o.stdout);
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown commit".into() };
    let head = String::from_utf8_lossy(&head).trim().to_owned();
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.is_empty());
    if dirty { format!("{head} + uncommitted changes") } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_seconds(&[me]) >= 0.0);
        assert!(!thread_seconds(me).is_empty());
        let (busy, iowait) = machine_seconds();
        assert!(busy > 0.0 && iowait >= 0.0);
        let before = self_seconds();
        std::process::Command::new("true").status().expect("true");
        let after = self_seconds();
        assert!(after.0 >= before.0 && after.1 >= before.1);
    }

    #[test]
    fn reads_a_wal_index() {
        let dir = std::env::temp_dir().join(format!("bench-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let shm = dir.join("x.db-shm");
        let mut b = vec![0u8; 136];
        b[16..20].copy_from_slice(&5000u32.to_ne_bytes());
        b[96..100].copy_from_slice(&1200u32.to_ne_bytes());
        std::fs::write(&shm, &b).expect("write");
        assert_eq!(Wal::read(&shm), Some(Wal { frames: 5000, backfilled: 1200 }));
        assert_eq!(Wal::describe(Wal::read(&shm)), "5000 frames, 3800 not checkpointed");
        assert_eq!(Wal::read(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn busiest_threads_first() {
        let before = BTreeMap::from([("a".to_owned(), 1.0), ("b".to_owned(), 1.0)]);
        let after = BTreeMap::from([("a".to_owned(), 1.5), ("b".to_owned(), 3.0), ("c".to_owned(), 0.2)]);
        let got = busiest(&before, &after, 2);
        assert_eq!(got.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    }
}
