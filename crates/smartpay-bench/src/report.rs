//! Rows of the Markdown report.

/// One measured phase: throughput of successful answers, latency percentiles (ms) and counts.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub requests: u64,
    pub errors: u64,
}

impl Row {
    /// The same measurements under another name.
    pub fn named(&self, name: impl Into<String>) -> Row {
        Row { name: name.into(), ..self.clone() }
    }
}

pub const HEADER: &str =
    "| run | req/s | p50 ms | p99 ms | p99.9 ms | requests | errors |\n|---|---:|---:|---:|---:|---:|---:|";

pub fn line(r: &Row) -> String {
    format!(
        "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
        r.name, r.rps, r.p50, r.p99, r.p999, r.requests, r.errors
    )
}

pub fn table(rows: &[&Row]) -> String {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(&line(r));
    }
    s
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// `name: a / b = r (target ≥ t: met)`.
pub fn ratio_line(name: &str, a: &Row, b: &Row, target: Option<f64>) -> (String, bool) {
    let r = if b.rps > 0.0 { a.rps / b.rps } else { 0.0 };
    let ok = target.is_none_or(|t| r >= t);
    let verdict = target.map_or_else(String::new, |t| format!(" (target ≥ {t}: {})", met(ok)));
    (format!("{name}: {:.0} / {:.0} req/s = {r:.2}{verdict}", a.rps, b.rps), ok)
}
