//! The report: Markdown tables of every figure, one row per store and scenario with nginx
//! beside it and the ratio, the machine and the command that produced it.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::load::Measured;
use crate::pg::StoreKind;

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
    /// CPU time of PostgreSQL (every `postgres` process) per request, µs, on PostgreSQL.
    pub db_cpu: Option<f64>,
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
            db_cpu: None,
        }
    }
}

impl Figures {
    /// The progress line's figures: throughput and the server's CPU per request.
    pub(crate) fn progress(&self) -> String {
        let cpu = self
            .server_cpu
            .map_or_else(|| "?".to_owned(), |us| format!("{us:.1}"));
        let db = self
            .db_cpu
            .map(|us| format!(", PostgreSQL CPU {us:.1} µs/req"))
            .unwrap_or_default();
        format!("{} req/s, server CPU {cpu} µs/req{db}", rate(self.rps))
    }
}

/// One row of the main table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What was asked.
    pub scenario: String,
    /// Concurrent connections (or workers).
    pub conns: usize,
    /// The store the server ran on.
    pub store: StoreKind,
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
    /// The store the server ran on.
    pub store: StoreKind,
    /// sip-settings.
    pub sip: u64,
    /// nginx (master and workers), when it applies and ran.
    pub nginx: Option<u64>,
    /// Whether nginx has such a figure at all.
    pub nginx_applies: bool,
}

/// Call records through the service API: one scenario.
#[derive(Debug, Clone)]
pub(crate) struct ApiRow {
    /// The store the server ran on.
    pub store: StoreKind,
    /// What was sent: `POST /v1/service/calls`, a batch, a replayed batch.
    pub form: String,
    /// Records per request.
    pub per_request: usize,
    /// Keep-alive connections.
    pub conns: usize,
    /// Per request.
    pub f: Figures,
}

/// The two-server scenario: one row per action.
#[derive(Debug, Clone)]
pub(crate) struct TwoServersRow {
    /// What was asked.
    pub scenario: String,
    /// Connections in all, spread evenly over the two servers.
    pub conns: usize,
    /// The aggregate: every request of both servers (`server_cpu` is both servers' CPU over
    /// all requests).
    pub f: Figures,
    /// Each server's CPU time over the requests it served, µs.
    pub per_server_cpu: Vec<f64>,
    /// Requests each server served (its share of the connections).
    pub per_server_requests: Vec<u64>,
    /// One server on the same database at the same connections, when measured.
    pub one_server: Option<Figures>,
}

/// One line of the call-record figures.
#[derive(Debug, Clone)]
pub(crate) struct CallRow {
    /// The store the server ran on.
    pub store: StoreKind,
    /// What was measured.
    pub what: String,
    /// The figure.
    pub value: String,
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
    /// Call records through the service API.
    pub api: Vec<ApiRow>,
    /// What the service API refused, said under its table.
    pub api_notes: Vec<String>,
    /// Other call-record figures.
    pub calls: Vec<CallRow>,
    /// Two servers on one PostgreSQL database.
    pub two_servers: Vec<TwoServersRow>,
    /// What the two-server figures mean, when they ran.
    pub two_servers_note: Option<String>,
    /// Machine.
    pub machine: Option<Machine>,
    /// Flushes a second of the disk under the data directory, one at a time (see
    /// [`flush_rate`]), when the embedded store ran.
    pub disk_flushes: Option<f64>,
}

/// How many times a second the disk under `dir` makes a 4 KiB write durable, one after another
/// (`pwrite` + `fdatasync`, for about `budget` and at most 100 000 times): the most writes a
/// second a store can acknowledge that flushes once per write, as the embedded store did
/// before group commit.
pub(crate) fn flush_rate(dir: &Path, budget: std::time::Duration) -> std::io::Result<f64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("flush-probe");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = [0x5a_u8; 4096];
    let started = std::time::Instant::now();
    let mut flushes: u64 = 0;
    while started.elapsed() < budget && flushes < 100_000 {
        file.write_all_at(&block, 0)?;
        file.sync_data()?;
        flushes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(&path)?;
    Ok(approx(flushes) / elapsed.max(1e-9))
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

        self.throughput_and_latency(&mut s);
        self.group_commit(&mut s);
        self.memory_table(&mut s);
        self.api_table(&mut s);
        if !self.calls.is_empty() {
            let _ = writeln!(s, "\n## Call records\n");
            let _ = writeln!(s, "| store | figure | value |");
            let _ = writeln!(s, "|---|---|---|");
            for c in &self.calls {
                let _ = writeln!(s, "| {} | {} | {} |", c.store, c.what, c.value);
            }
        }
        self.two_servers_table(&mut s);
        s
    }

    /// The rows grouped by scenario and connections (in the order they first ran), each
    /// group's stores together.
    fn grouped_rows(&self) -> Vec<&Row> {
        let mut keys: Vec<(&str, usize)> = Vec::new();
        for r in &self.rows {
            if !keys.contains(&(r.scenario.as_str(), r.conns)) {
                keys.push((r.scenario.as_str(), r.conns));
            }
        }
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            keys.iter()
                .position(|k| *k == (r.scenario.as_str(), r.conns))
                .unwrap_or(usize::MAX)
        });
        rows
    }

    /// The embedded store's writes beside the disk's flush rate, measured in the same run.
    fn group_commit(&self, s: &mut String) {
        let Some(flushes) = self.disk_flushes else {
            return;
        };
        let writes: Vec<&Row> = self
            .grouped_rows()
            .into_iter()
            .filter(|r| r.store == StoreKind::Sqlite && r.scenario.contains("(write)"))
            .collect();
        if writes.is_empty() {
            return;
        }
        let alone = writes.iter().find(|r| r.conns == 1).map(|r| r.sip.rps);
        let _ = writeln!(
            s,
            "\n## Group commit (embedded store)\n\nThis run's data directory is on a disk that \
             makes a 4 KiB write durable (`pwrite` + `fdatasync`, one after another) **{} times \
             a second**. A store that commits and flushes once per write, as the embedded store \
             did before group commit (issue 16), acknowledges at most that many writes a second \
             whatever the number of connections, and fewer, since each commit also writes the \
             WAL: one writer alone (1 connection) is what one commit per write reaches here. \
             With group commit, concurrent writes share a commit and its flush:\n",
            rate(flushes)
        );
        let _ = writeln!(
            s,
            "| scenario | conns | writes/s | × the flush rate | × one writer alone | p50 ms | p99 ms |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|");
        for r in writes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.conns,
                rate(r.sip.rps),
                ratio(r.sip.rps, Some(flushes)),
                ratio(r.sip.rps, alone),
                ms(r.sip.p50),
                ms(r.sip.p99),
            );
        }
    }

    fn throughput_and_latency(&self, s: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n## Throughput\n\nOne row per scenario and store; nginx serves the same static \
             reply whatever the store, so its figures repeat. Ratio = sip-settings / nginx \
             (below 1: fewer requests than nginx; above 1: more CPU per request). CPU per \
             request is user + system time (from `/proc`) over every request of the scenario, \
             warm-up included, of the server (nginx: master and workers), of PostgreSQL (every \
             `postgres` process: backends, WAL writer, checkpointer; PostgreSQL rows only) and \
             of the load generator.\n"
        );
        let _ = writeln!(
            s,
            "| scenario | conns | store | req/s sip-settings | req/s nginx | ratio | server CPU \
             µs/req sip-settings | server CPU µs/req nginx | ratio | PostgreSQL CPU µs/req | \
             generator CPU µs/req sip-settings | generator CPU µs/req nginx |"
        );
        let _ = writeln!(s, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let cpu = |v: Option<f64>| opt(v.map(|v| format!("{v:.0}")));
        for r in self.grouped_rows() {
            let n = r.nginx;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.conns,
                r.store,
                rate(r.sip.rps),
                opt(n.map(|n| rate(n.rps))),
                ratio(r.sip.rps, n.map(|n| n.rps)),
                cpu(r.sip.server_cpu),
                cpu(n.and_then(|n| n.server_cpu)),
                match r.sip.server_cpu {
                    Some(c) => ratio(c, n.and_then(|n| n.server_cpu)),
                    None => "–".to_owned(),
                },
                cpu(r.sip.db_cpu),
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
            "| scenario | conns | store | p50 sip-settings | p50 nginx | ratio | p99 \
             sip-settings | p99 nginx | ratio | max sip-settings | max nginx | ratio |"
        );
        let _ = writeln!(s, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in self.grouped_rows() {
            let n = r.nginx;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.conns,
                r.store,
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

    fn memory_table(&self, s: &mut String) {
        if self.memory.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n## Resident memory (VmRSS)\n\nsip-settings alone (PostgreSQL's own memory is \
             not counted); nginx: the master and its workers added up.\n"
        );
        let _ = writeln!(s, "| when | store | sip-settings | nginx | ratio |");
        let _ = writeln!(s, "|---|---|--:|--:|--:|");
        let mut rows: Vec<&MemoryRow> = self.memory.iter().collect();
        let whens: Vec<&str> = self.memory.iter().map(|m| m.when.as_str()).collect();
        rows.sort_by_key(|m| whens.iter().position(|w| *w == m.when));
        for m in rows {
            let (n, r) = if m.nginx_applies {
                (
                    opt(m.nginx.map(mib)),
                    ratio(approx(m.sip), m.nginx.map(approx)),
                )
            } else {
                ("n/a".to_owned(), "n/a".to_owned())
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                m.when,
                m.store,
                mib(m.sip),
                n,
                r
            );
        }
    }

    fn api_table(&self, s: &mut String) {
        if self.api.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n## Call records through the service API\n\nThe service certificate's \
             keep-alive connections, requests back to back. Single: `POST /v1/service/calls`, \
             a new Call-ID each time, 201 and `recorded: true` expected. Batch: `POST \
             /v1/service/calls/batch` with N new records, every reply checked to be exactly \
             `{{\"recorded\":N,\"replays\":0}}`. Replayed batch: batches already stored sent \
             again, every reply checked to be exactly `{{\"recorded\":0,\"replays\":N}}`. \
             Latency is per request (per batch); CPU per record.\n"
        );
        let _ = writeln!(
            s,
            "| form | records/request | conns | store | records/s | requests/s | p50 ms | p99 \
             ms | max ms | server CPU µs/record | PostgreSQL CPU µs/record |"
        );
        let _ = writeln!(s, "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|");
        let mut rows: Vec<&ApiRow> = self.api.iter().collect();
        let mut keys: Vec<(&str, usize, usize)> = Vec::new();
        for r in &self.api {
            let k = (r.form.as_str(), r.per_request, r.conns);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        rows.sort_by_key(|r| {
            keys.iter()
                .position(|k| *k == (r.form.as_str(), r.per_request, r.conns))
        });
        for r in rows {
            let per = approx(r.per_request as u64);
            let cpu = |v: Option<f64>| opt(v.map(|v| format!("{:.0}", v / per)));
            let records = r.f.rps * per;
            let bold = if r.form.starts_with("replay") {
                rate(records)
            } else {
                format!("**{}**", rate(records))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.form,
                count(r.per_request),
                r.conns,
                r.store,
                bold,
                rate(r.f.rps),
                ms(r.f.p50),
                ms(r.f.p99),
                ms(r.f.max),
                cpu(r.f.server_cpu),
                cpu(r.f.db_cpu),
            );
        }
        for note in &self.api_notes {
            let _ = writeln!(s, "\n**{note}**");
        }
    }

    fn two_servers_table(&self, s: &mut String) {
        if self.two_servers.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n## Two servers, one PostgreSQL database\n");
        if let Some(note) = &self.two_servers_note {
            let _ = writeln!(s, "{note}\n");
        }
        let _ = writeln!(
            s,
            "| scenario | conns | req/s, both servers | req/s, one server | p50 ms | p99 ms | \
             max ms | requests per server | server CPU µs/req, each | PostgreSQL CPU µs/req | \
             generator CPU µs/req |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        let cpu = |v: Option<f64>| opt(v.map(|v| format!("{v:.0}")));
        for r in &self.two_servers {
            let each = |v: &[String]| v.join(" / ");
            let _ = writeln!(
                s,
                "| {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.conns,
                rate(r.f.rps),
                opt(r.one_server.map(|f| rate(f.rps))),
                ms(r.f.p50),
                ms(r.f.p99),
                ms(r.f.max),
                each(
                    &r.per_server_requests
                        .iter()
                        .map(|n| count(*n))
                        .collect::<Vec<_>>()
                ),
                each(
                    &r.per_server_cpu
                        .iter()
                        .map(|c| format!("{c:.0}"))
                        .collect::<Vec<_>>()
                ),
                cpu(r.f.db_cpu),
                cpu(r.f.generator_cpu),
            );
        }
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

    fn figures(rps: f64) -> Figures {
        Figures {
            rps,
            p50: 1000,
            p99: 2000,
            max: 3000,
            server_cpu: Some(10.0),
            generator_cpu: Some(5.0),
            db_cpu: None,
        }
    }

    #[test]
    fn each_scenario_lists_its_stores_together() {
        let row = |scenario: &str, conns, store, rps| Row {
            scenario: scenario.into(),
            conns,
            store,
            sip: figures(rps),
            nginx: Some(figures(4000.0)),
        };
        let mut pg = figures(2000.0);
        pg.db_cpu = Some(7.0);
        let report = Report {
            rows: vec![
                row("read", 1, StoreKind::Sqlite, 1000.0),
                row("read", 16, StoreKind::Sqlite, 1600.0),
                row("read", 1, StoreKind::Postgres, 900.0),
                Row {
                    sip: pg,
                    ..row("read", 16, StoreKind::Postgres, 0.0)
                },
            ],
            api: vec![ApiRow {
                store: StoreKind::Postgres,
                form: "batch".into(),
                per_request: 100,
                conns: 16,
                f: pg,
            }],
            machine: Some(Machine {
                cores: 2,
                cpu: "test".into(),
                memory: "1 GiB".into(),
                kernel: "Linux".into(),
            }),
            ..Report::default()
        };
        let md = report.markdown(Path::new("/nonexistent"));
        let throughput: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("## Throughput"))
            .filter(|l| l.starts_with("| read"))
            .take(4)
            .collect();
        assert_eq!(
            throughput,
            vec![
                "| read | 1 | SQLite | 1 000 | 4 000 | 0.25 | 10 | 10 | 1.00 | – | 5 | 5 |",
                "| read | 1 | PostgreSQL | 900 | 4 000 | 0.23 | 10 | 10 | 1.00 | – | 5 | 5 |",
                "| read | 16 | SQLite | 1 600 | 4 000 | 0.40 | 10 | 10 | 1.00 | – | 5 | 5 |",
                "| read | 16 | PostgreSQL | 2 000 | 4 000 | 0.50 | 10 | 10 | 1.00 | 7 | 5 | 5 |",
            ]
        );
        // A batch of 100 at 2 000 requests/s: 200 000 records/s, CPU per record.
        assert!(
            md.contains("| batch | 100 | 16 | PostgreSQL | **200 000** | 2 000 | 1.000 | 2.000 | 3.000 | 0 | 0 |"),
            "{md}"
        );
    }

    #[test]
    fn group_commit_is_set_beside_the_disks_flush_rate() {
        let row = |scenario: &str, conns, store, rps| Row {
            scenario: scenario.into(),
            conns,
            store,
            sip: figures(rps),
            nginx: None,
        };
        let report = Report {
            rows: vec![
                row("`set_diversions` (write)", 1, StoreKind::Sqlite, 500.0),
                row("`set_diversions` (write)", 64, StoreKind::Sqlite, 8000.0),
                row("`set_diversions` (write)", 64, StoreKind::Postgres, 3000.0),
                row("`account` (read)", 64, StoreKind::Sqlite, 60000.0),
            ],
            disk_flushes: Some(400.0),
            ..Report::default()
        };
        let md = report.markdown(Path::new("/nonexistent"));
        let table: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("## Group commit"))
            .filter(|l| l.starts_with("| `"))
            .collect();
        assert_eq!(
            table,
            [
                "| `set_diversions` (write) | 1 | 500 | 1.25 | 1.00 | 1.000 | 2.000 |",
                "| `set_diversions` (write) | 64 | 8 000 | 20.00 | 16.00 | 1.000 | 2.000 |",
            ],
            "{md}"
        );
        assert!(md.contains("**400 times a second**"), "{md}");
        let without = Report {
            disk_flushes: None,
            ..report
        };
        assert!(
            !without
                .markdown(Path::new("/nonexistent"))
                .contains("## Group commit")
        );
    }

    #[test]
    fn the_flush_rate_is_measured_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("flush-rate-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let rate = flush_rate(&dir, std::time::Duration::from_millis(50)).unwrap();
        assert!(rate > 0.0, "{rate}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir(&dir).unwrap();
    }
}
