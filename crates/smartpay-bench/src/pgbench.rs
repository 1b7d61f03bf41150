//! The PostgreSQL ceiling: pgbench on the same server, in a database of its own.
//! - single-row inserts: a custom script inserting one row shaped like a checkout
//!   (`id text`, `body text` holding the Create Checkout body, `created_at`);
//! - select-only: `pgbench -S` on the tables of `pgbench -i`.
//!
//! Both with the HTTP load's client count, `-j 2` and prepared statements (SmartPay's driver
//! prepares its statements too). Latency percentiles come from pgbench's per-transaction log.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::report::Row;

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `psql URL -c SQL`'s unaligned output.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    Ok(output(Command::new("psql").args([url, "-qXAt", "-v", "ON_ERROR_STOP=1", "-c", sql]))?.trim().to_owned())
}

/// `pgbench --version`.
pub fn version() -> String {
    output(Command::new("pgbench").arg("--version"))
        .map_or_else(|_| "pgbench (version unknown)".into(), |s| s.trim().to_owned())
}

/// The insert script's table and pgbench's own tables, in the (empty) database at `url`; the
/// script file is written to `dir`. Answers its path.
pub fn prepare(url: &str, body: &str, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    psql(
        url,
        "CREATE TABLE checkout (id TEXT COLLATE \"C\" PRIMARY KEY, body TEXT NOT NULL, \
         created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    output(Command::new("pgbench").args(["-i", "-q", "-s", "1", url]))?;
    let script = dir.join("pgbench-insert.sql");
    let quoted = body.replace('\'', "''");
    std::fs::write(
        &script,
        format!("INSERT INTO checkout (id, body, created_at) VALUES (gen_random_uuid()::text, '{quoted}', now());\n"),
    )?;
    Ok(script)
}

/// What a pgbench run printed: `tps = …`, the transactions processed and failed.
fn summary(stdout: &str) -> Option<(f64, u64, u64)> {
    let tps = stdout.lines().find_map(|l| l.strip_prefix("tps = "))?.split_whitespace().next()?.parse().ok()?;
    let count = |prefix: &str| {
        stdout.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let processed = count("number of transactions actually processed: ")?;
    // pgbench 15 prints failed transactions; older ones have no such line (and stop on errors).
    let failed = count("number of failed transactions: ").unwrap_or(0);
    Some((tps, processed, failed))
}

/// Transactions' latencies (µs, the third field of each line of `-l`'s files `prefix*`), sorted.
fn logged_latencies(dir: &Path, prefix: &str) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        for line in std::fs::read_to_string(e.path())?.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u32>().ok()) {
                out.push(us);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Runs pgbench for `duration_s` with `clients` clients and 2 threads: the custom `script`, or
/// the built-in select-only script when `None`.
pub fn run(
    name: &str,
    url: &str,
    script: Option<&Path>,
    clients: usize,
    duration_s: u64,
    dir: &Path,
    tag: &str,
) -> anyhow::Result<Row> {
    let prefix = format!("pgbench-log-{tag}");
    let mut cmd = Command::new("pgbench");
    cmd.args(["-M", "prepared", "-c", &clients.to_string(), "-j", "2", "-T", &duration_s.to_string()])
        .arg("-l")
        .arg(format!("--log-prefix={}", dir.join(&prefix).display()));
    match script {
        // No vacuum of pgbench's tables before a custom script: it does not use them.
        Some(s) => cmd.arg("-n").arg("-f").arg(s),
        None => cmd.arg("-S"),
    };
    let out = cmd.arg(url).output().context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some((tps, processed, failed)) = summary(&stdout) else {
        bail!("pgbench printed no summary ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    };
    // A client that hits an error is aborted: pgbench then exits with status 2.
    let aborted = u64::from(!out.status.success());
    if aborted > 0 {
        eprintln!("pgbench ({name}) exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let lat = logged_latencies(dir, &prefix)?;
    let p = |q: f64| crate::generator::pct(&lat, q);
    Ok(Row {
        name: name.to_owned(),
        rps: tps,
        p50: p(0.50),
        p99: p(0.99),
        p999: p(0.999),
        requests: processed,
        errors: failed + aborted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_of_pgbench_15() {
        let out = "transaction type: insert.sql\nscaling factor: 1\nquery mode: prepared\nnumber of clients: 64\n\
                   number of threads: 2\nmaximum number of tries: 1\nduration: 10 s\n\
                   number of transactions actually processed: 123456\nnumber of failed transactions: 0 (0.000%)\n\
                   latency average = 5.123 ms\ninitial connection time = 40.1 ms\n\
                   tps = 12345.678901 (without initial connection time)\n";
        let (tps, processed, failed) = summary(out).expect("summary");
        assert!((tps - 12345.678901).abs() < 1e-6);
        assert_eq!((processed, failed), (123456, 0));
    }
}
