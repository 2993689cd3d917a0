//! The report: Markdown tables of every figure, sip-settings beside nginx with the ratio, the
//! machine and the command that produced it.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::load::Measured;

/// Throughput and latency of one scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// Largest, µs.
    pub max: u64,
    /// CPU time of the server (nginx: master and workers) per request, µs.
    pub server_cpu: Option<f64>,
    /// CPU time of the load generator per request, µs.
    pub generator_cpu: Option<f64>,
}

impl From<&Measured> for Figures {
    fn from(m: &Measured) -> Self {
        Self {
            rps: m.rps(),
            p50: m.hist.value_at_quantile(0.5),
            p99: m.hist.value_at_quantile(0.99),
            max: m.hist.max(),
            server_cpu: None,
            generator_cpu: None,
        }
    }
}

impl Figures {
    /// The progress line's figures: throughput and the server's CPU per request.
    pub(crate) fn progress(&self) -> String {
        let cpu = self
            .server_cpu
            .map_or_else(|| "?".to_owned(), |us| format!("{us:.1}"));
        format!("{} req/s, server CPU {cpu} µs/req", rate(self.rps))
    }
}

/// One row of the main table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What was asked.
    pub scenario: String,
    /// Concurrent connections (or workers).
    pub conns: usize,
    /// sip-settings.
    pub sip: Figures,
    /// nginx, when it ran.
    pub nginx: Option<Figures>,
}

/// One row of the memory table, KiB.
#[derive(Debug, Clone)]
pub(crate) struct MemoryRow {
    /// When it was read.
    pub when: String,
    /// sip-settings.
    pub sip: u64,
    /// nginx (master and workers), when it applies and ran.
    pub nginx: Option<u64>,
    /// Whether nginx has such a figure at all.
    pub nginx_applies: bool,
}

/// The machine.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// Cores the benchmark may use.
    pub cores: usize,
    /// CPU model.
    pub cpu: String,
    /// Memory.
    pub memory: String,
    /// Kernel.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc`.
    pub(crate) fn read() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let listed = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let cores = std::thread::available_parallelism().map_or(listed.max(1), |n| n.get());
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or_else(
                || "unknown memory".to_owned(),
                |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
            );
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| "unknown kernel".to_owned());
        Self {
            cores,
            cpu,
            memory,
            kernel,
        }
    }
}

/// Everything measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The command line.
    pub command: String,
    /// Facts about the setup, one bullet each.
    pub setup: Vec<String>,
    /// nginx's version, or why there is none.
    pub nginx: Option<Result<String, String>>,
    /// Keep-alive and handshake scenarios.
    pub rows: Vec<Row>,
    /// Resident memory.
    pub memory: Vec<MemoryRow>,
    /// Call-record figures: what, value.
    pub calls: Vec<(String, String)>,
    /// Machine.
    pub machine: Option<Machine>,
}

fn ms(us: u64) -> String {
    format!("{:.3}", approx(us) / 1000.0)
}

pub(crate) fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    }
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".to_owned())
}

/// The nearest `f64` to a count, a duration or a size, for a ratio, a mean or a rate.
#[allow(
    clippy::cast_precision_loss,
    reason = "a statistic: exact up to 2^53, and the nearest f64 beyond that is all a ratio needs"
)]
pub(crate) fn approx(n: u64) -> f64 {
    n as f64
}

/// Rounds a rate for a table.
pub(crate) fn rate(v: f64) -> String {
    if v >= 100.0 {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rate of at least 100 rounded to a whole number for the table (`as` saturates)"
        )]
        let whole = v.round() as u64;
        count(whole)
    } else {
        format!("{v:.1}")
    }
}

/// A count (any unsigned integer type) with thin groups of three digits: `1 000 000`.
pub(crate) fn count(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", approx(kib) / 1024.0)
}

/// `git describe`-like: the short commit and whether the tree has changes.
pub(crate) fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} with uncommitted changes")
            } else {
                c
            }
        }
        None => "unknown commit".to_owned(),
    }
}

impl Report {
    /// The report as Markdown.
    pub(crate) fn markdown(&self, root: &Path) -> String {
        let mut s = String::new();
        let machine = self.machine.clone().unwrap_or_else(Machine::read);
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by the benchmark tool (`crates/bench`); run it again rather than editing \
             this file.\n"
        );
        let _ = writeln!(s, "* Command: `{}`", self.command);
        let _ = writeln!(
            s,
            "* Run: {} UTC, commit {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M"),
            commit(root)
        );
        let _ = writeln!(
            s,
            "* Machine: {} cores, {}, {}, {}",
            machine.cores, machine.cpu, machine.memory, machine.kernel
        );
        let _ = writeln!(
            s,
            "* The load generator (this benchmark, a separate process) and the server share \
             these {} cores: every figure is what one machine does serving and generating the \
             load at once, for sip-settings and nginx alike. The ratio sip-settings / nginx is \
             the figure to read; absolute numbers would be higher with the load generated \
             elsewhere.",
            machine.cores
        );
        for line in &self.setup {
            let _ = writeln!(s, "* {line}");
        }
        match &self.nginx {
            Some(Ok(v)) => {
                let _ = writeln!(s, "* Baseline: {v}");
            }
            Some(Err(why)) => {
                let _ = writeln!(
                    s,
                    "* Baseline: none. {why}; no ratio is reported rather than one invented."
                );
            }
            None => {}
        }

        if !self.rows.is_empty() {
            let _ = writeln!(
                s,
                "\n## Throughput\n\nRatio = sip-settings / nginx (below 1: fewer requests than \
                 nginx; above 1: more CPU per request). CPU per request is user + system time \
                 (from `/proc`) over every request of the scenario, warm-up included, of the \
                 server (nginx: master and workers) and of the load generator.\n"
            );
            let _ = writeln!(
                s,
                "| scenario | conns | req/s sip-settings | req/s nginx | ratio | server CPU µs/req \
                 sip-settings | server CPU µs/req nginx | ratio | generator CPU µs/req \
                 sip-settings | generator CPU µs/req nginx |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in &self.rows {
                let n = r.nginx;
                let cpu = |v: Option<f64>| opt(v.map(|v| format!("{v:.0}")));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.scenario,
                    r.conns,
                    rate(r.sip.rps),
                    opt(n.map(|n| rate(n.rps))),
                    ratio(r.sip.rps, n.map(|n| n.rps)),
                    cpu(r.sip.server_cpu),
                    cpu(n.and_then(|n| n.server_cpu)),
                    match r.sip.server_cpu {
                        Some(c) => ratio(c, n.and_then(|n| n.server_cpu)),
                        None => "–".to_owned(),
                    },
                    cpu(r.sip.generator_cpu),
                    cpu(n.and_then(|n| n.generator_cpu)),
                );
            }
            let _ = writeln!(
                s,
                "\n## Latency\n\nMilliseconds, per request (for handshakes: connect, full \
                 handshake, request and reply). Ratio = sip-settings / nginx (above 1: slower).\n"
            );
            let _ = writeln!(
                s,
                "| scenario | conns | p50 sip-settings | p50 nginx | ratio | p99 sip-settings \
                 | p99 nginx | ratio | max sip-settings | max nginx | ratio |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in &self.rows {
                let n = r.nginx;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.scenario,
                    r.conns,
                    ms(r.sip.p50),
                    opt(n.map(|n| ms(n.p50))),
                    ratio(approx(r.sip.p50), n.map(|n| approx(n.p50))),
                    ms(r.sip.p99),
                    opt(n.map(|n| ms(n.p99))),
                    ratio(approx(r.sip.p99), n.map(|n| approx(n.p99))),
                    ms(r.sip.max),
                    opt(n.map(|n| ms(n.max))),
                    ratio(approx(r.sip.max), n.map(|n| approx(n.max))),
                );
            }
        }

        if !self.memory.is_empty() {
            let _ = writeln!(
                s,
                "\n## Resident memory (VmRSS)\n\nnginx: the master and its workers added up.\n"
            );
            let _ = writeln!(s, "| when | sip-settings | nginx | ratio |");
            let _ = writeln!(s, "|---|--:|--:|--:|");
            for m in &self.memory {
                let (n, r) = if m.nginx_applies {
                    (
                        opt(m.nginx.map(mib)),
                        ratio(approx(m.sip), m.nginx.map(approx)),
                    )
                } else {
                    ("n/a".to_owned(), "n/a".to_owned())
                };
                let _ = writeln!(s, "| {} | {} | {} | {} |", m.when, mib(m.sip), n, r);
            }
        }

        if !self.calls.is_empty() {
            let _ = writeln!(s, "\n## Call records\n");
            let _ = writeln!(s, "| figure | value |");
            let _ = writeln!(s, "|---|---|");
            for (what, value) in &self.calls {
                let _ = writeln!(s, "| {what} | {value} |");
            }
        }
        s
    }

    /// Figures of a latency histogram (and the server's CPU per request) as a table cell.
    pub(crate) fn latency_cell(f: &Figures) -> String {
        let cpu = f
            .server_cpu
            .map(|c| format!(", server CPU {c:.0} µs per request"))
            .unwrap_or_default();
        format!(
            "p50 {} ms, p99 {} ms, max {} ms{cpu}",
            ms(f.p50),
            ms(f.p99),
            ms(f.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1 000");
        assert_eq!(count(1_000_000), "1 000 000");
        assert_eq!(ratio(1.0, Some(4.0)), "0.25");
        assert_eq!(ratio(1.0, None), "–");
        assert_eq!(ratio(1.0, Some(0.0)), "–");
        assert_eq!(ms(1234), "1.234");
    }
}
