//! Create Checkout and Get Payment Status driven by wrk (`scripts/bench/create.lua`,
//! `status.lua`): one wrk process per node, in parallel, with the threads and connections
//! split between them; rates are summed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::report::Row;

/// wrk's settings for a phase, in total over the nodes.
#[derive(Clone, Copy)]
pub struct Settings {
    pub threads: usize,
    pub connections: usize,
    pub duration_s: u64,
}

impl Settings {
    /// Threads and connections of each of `nodes` wrk processes.
    pub fn per_node(&self, nodes: usize) -> (usize, usize) {
        let threads = (self.threads / nodes).max(1);
        (threads, (self.connections / nodes).max(threads))
    }
}

/// What one wrk process's `done()` printed (`wrk-result …`, see common.lua).
#[derive(Debug, Clone)]
struct Done {
    requests: u64,
    non2xx: u64,
    socket_errors: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

fn parse(stdout: &str) -> Option<Done> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("wrk-result "))?;
    let v: HashMap<&str, u64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let get = |k: &str| v.get(k).copied();
    Some(Done {
        requests: get("requests")?,
        non2xx: get("non2xx")?,
        socket_errors: get("connect")? + get("read")? + get("write")? + get("timeout")?,
        seconds: get("duration_us")? as f64 / 1e6,
        p50_us: get("p50_us")?,
        p99_us: get("p99_us")?,
        p999_us: get("p999_us")?,
    })
}

/// The script `name` (create.lua, status.lua) in the scripts directory, as an absolute path
/// (the scripts find common.lua next to themselves).
pub fn script(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::canonicalize(&p).with_context(|| format!("wrk script {}", p.display()))
}

/// `wrk --version`'s first line.
pub fn version() -> String {
    Command::new("wrk")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            text.lines().next().map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
        })
        .unwrap_or_else(|| "wrk (version unknown)".into())
}

/// Runs `script` against every base URL at once (node `i` gets `args[i]` after the `--`), and
/// sums the rates. Latency percentiles are the highest of the nodes' (each wrk has its own
/// histogram); with one node they are that node's.
pub async fn run(
    name: &str,
    script: &Path,
    bases: &[String],
    args: Vec<Vec<String>>,
    settings: Settings,
) -> anyhow::Result<Row> {
    let (threads, connections) = settings.per_node(bases.len());
    let mut children = Vec::new();
    for (base, args) in bases.iter().zip(args) {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t", &threads.to_string(), "-c", &connections.to_string()])
            .args(["-d", &format!("{}s", settings.duration_s), "--timeout", "10s", "-s"])
            .arg(script)
            .arg(base)
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().context("starting wrk (scripts/bench.sh installs it)")?);
    }
    let outputs = tokio::task::spawn_blocking(move || {
        children.into_iter().map(std::process::Child::wait_with_output).collect::<Vec<_>>()
    })
    .await?;
    let mut results = Vec::new();
    for out in outputs {
        let out = out?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        for first in stdout.lines().filter_map(|l| l.strip_prefix("wrk-first-non2xx ")) {
            eprintln!("{name}: an answer outside 2xx: {first}");
        }
        match parse(&stdout) {
            Some(r) if out.status.success() => results.push(r),
            _ => bail!("wrk failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)),
        }
    }
    let ms = |f: fn(&Done) -> u64| results.iter().map(f).max().unwrap_or(0) as f64 / 1000.0;
    Ok(Row {
        name: name.to_owned(),
        rps: results.iter().map(|r| r.requests.saturating_sub(r.non2xx) as f64 / r.seconds.max(1e-9)).sum(),
        p50: ms(|r| r.p50_us),
        p99: ms(|r| r.p99_us),
        p999: ms(|r| r.p999_us),
        requests: results.iter().map(|r| r.requests).sum(),
        errors: results.iter().map(|r| r.non2xx + r.socket_errors).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_line() {
        let out = "Running 1s test\nwrk-result requests=100 non2xx=3 connect=0 read=1 write=0 timeout=2 \
                   duration_us=2000000 p50_us=1500 p99_us=9000 p999_us=12000 max_us=20000\n";
        let r = parse(out).expect("parsed");
        assert_eq!((r.requests, r.non2xx, r.socket_errors), (100, 3, 3));
        assert!((r.seconds - 2.0).abs() < 1e-9);
        assert_eq!((r.p50_us, r.p99_us, r.p999_us), (1500, 9000, 12000));
        assert!(parse("no result").is_none());
    }

    #[test]
    fn splits_threads_and_connections() {
        let s = Settings { threads: 2, connections: 64, duration_s: 1 };
        assert_eq!(s.per_node(1), (2, 64));
        assert_eq!(s.per_node(2), (1, 32));
        assert_eq!(s.per_node(3), (1, 21));
    }
}
