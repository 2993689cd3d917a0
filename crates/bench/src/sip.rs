//! `sip`: the SIP redirect door of `sip-settings serve --sip-listen udp:…` under SIPp load,
//! beside Kamailio answering every INVITE with a fixed 302 (the C baseline), with the same SIPp
//! on the same machine.
//!
//! * Provisioning: the benchmark accounts (a copy of the cache), forwarding stored on three in
//!   four of them through `Services::set_diversions` (see [`forwarding`]).
//! * Checks before the load: OPTIONS answered 200, an INVITE of every kind of account read in
//!   full (the target in Contact, Diversion when forwarding, X-Ring-Time when ringing), 404 for
//!   an unknown account.
//! * Rate search per server ([`PLAN`]): steps of rising calls/s, up to the first
//!   step with a failed call, then a few bisections; the highest clean rate of each and the
//!   ratio.
//! * sip-settings alone, a fresh process, at half Kamailio's clean rate: its own decision
//!   latency histogram (the `sip decision latency` line it logs when stopped) and its peak
//!   resident memory.
//!
//! `--smoke`: 200 and 500 calls/s for 1 s against each server, no search; any failed call or a
//! missing latency line fails the run.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use sip_settings_core::forwarding::Document;
use sip_settings_core::sip::Condition;
use sip_settings_core::{AccountId, Services};
use tokio::task::JoinSet;

use crate::kamailio::{self, Kamailio};
use crate::process::{self, Server, ServerSpec, tail};
use crate::provision::{self, DOMAIN, Db};
use crate::report;
use crate::search::{Plan, Search, search, smoke_steps};
use crate::sip_probe::{self, Reply};
use crate::sip_report::Section;
use crate::sipp::{self, Sipp, Step};

/// The rate search: steps of 4 s from 1 000 to 40 000 calls/s, up to the first rate with a
/// failed call, then 3 bisections in steps of 250; a rate passes only with no failed call.
pub(crate) const PLAN: Plan = Plan {
    ladder: &[
        1_000, 2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 20_000, 24_000, 28_000,
        32_000, 40_000,
    ],
    step_secs: 4.0,
    bisections: 3,
    grain: 250,
    max_failed: 0.0,
    smoke_rates: &[200, 500],
    budget: None,
};
/// Seconds of the half-rate run.
pub(crate) const HALF_SECS: f64 = 5.0;
/// The memory target of the SIP door's process, MiB.
pub(crate) const RSS_TARGET_MIB: f64 = 64.0;
/// The p99 target of the decision latency at half Kamailio's rate, µs.
pub(crate) const P99_TARGET_US: u64 = 1_000;

/// What the run needs from `main`.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    /// The workspace root.
    pub root: &'a Path,
    /// The `sip-settings` binary.
    pub bin: &'a Path,
    /// `target/bench-data` (the provisioning cache).
    pub bench_dir: &'a Path,
    /// This run's working directory.
    pub work: &'a Path,
    /// Where logs are kept.
    pub logs: &'a Path,
    /// `--database`, when given.
    pub database: Option<&'a str>,
    /// The server's configuration file, when it takes one.
    pub config: Option<PathBuf>,
    /// Accounts.
    pub accounts: usize,
    /// Smoke run.
    pub smoke: bool,
    /// The command line, for the report.
    pub command: &'a str,
}

/// The forwarding stored on account `i` of `n` (the parameters of `set_diversions`):
/// `i % 4 == 0`: FUNC to a number; `1`: none (the proxy rings); `2`: FUNC to the next account
/// (one of the `3`s, which forward on busy and no answer only, so no chain and no loop);
/// `3`: FBUS to a number and FNOA to the previous `1`.
pub(crate) fn forwarding(i: usize, n: usize) -> Vec<(Condition, String)> {
    match i % 4 {
        0 => vec![(Condition::Unconditional, number(20, i))],
        2 if i + 1 < n => vec![(Condition::Unconditional, provision::account_name(i + 1))],
        2 => vec![(Condition::Unconditional, number(20, i))],
        3 => vec![
            (Condition::Busy, number(21, i)),
            (Condition::NoAnswer, provision::account_name(i - 2)),
        ],
        _ => Vec::new(),
    }
}

/// `+31` + `area` + `i` in 7 digits.
fn number(area: u32, i: usize) -> String {
    format!("+31{area}{:07}", i % 10_000_000)
}

/// What account `i`'s INVITE must be answered with.
fn expected(i: usize, n: usize) -> Expect {
    match forwarding(i, n).first() {
        Some((Condition::Unconditional, target)) => {
            Expect::Forward(target.split('@').next().unwrap_or(target).to_owned())
        }
        _ => Expect::Ring(provision::account_name(i)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// 302 to a Contact holding this (a number or a user part), with Diversion.
    Forward(String),
    /// 302 to the account itself with `ring=` and X-Ring-Time, no Diversion.
    Ring(String),
}

/// Checks one answer of sip-settings against what account `i` must get.
fn check_answer(i: usize, n: usize, r: &Reply) -> anyhow::Result<()> {
    let who = provision::account_name(i);
    if r.status != 302 {
        bail!("INVITE for {who} answered {}, expected 302", r.summary());
    }
    let contact = r
        .header("Contact")
        .with_context(|| format!("302 for {who} without Contact: {}", r.summary()))?;
    match expected(i, n) {
        Expect::Forward(target) => {
            if !contact.contains(&format!("{target}@")) || r.header("Diversion").is_none() {
                bail!(
                    "INVITE for {who} (forwarding to {target}) answered {}: expected the target \
                     in Contact and a Diversion header",
                    r.summary()
                );
            }
        }
        Expect::Ring(own) => {
            if !contact.contains(&own)
                || !contact.contains("ring=")
                || r.header("X-Ring-Time").is_none()
            {
                bail!(
                    "INVITE for {who} (no unconditional forwarding) answered {}: expected \
                     Contact <sip:{own};ring=…> and X-Ring-Time",
                    r.summary()
                );
            }
        }
    }
    Ok(())
}

/// The decision-latency line that `sip-settings serve` logs when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Latency {
    /// INVITEs answered.
    pub count: u64,
    /// Median, µs.
    pub p50: u64,
    /// 90th percentile, µs.
    pub p90: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// Largest, µs.
    pub max: u64,
}

/// The last `sip decision latency … count=N p50_us=… p90_us=… p99_us=… max_us=…` line of a
/// log (colour escapes and quotes ignored).
pub(crate) fn latency_line(log: &str) -> Option<Latency> {
    let line = log
        .lines()
        .rev()
        .map(strip_ansi)
        .find(|l| l.contains("sip decision latency"))?;
    let after = &line[line.find("sip decision latency")?..];
    let value = |key: &str| -> Option<u64> {
        after.split([' ', ',', '\t']).find_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            (k.trim() == key)
                .then(|| v.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
    };
    Some(Latency {
        count: value("count")?,
        p50: value("p50_us")?,
        p90: value("p90_us")?,
        p99: value("p99_us")?,
        max: value("max_us")?,
    })
}

/// A line without ANSI escape sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Stores the forwarding of [`forwarding`] on every account; returns how many accounts forward.
async fn store_forwarding(db: &Db, n: usize) -> anyhow::Result<usize> {
    let per_account = for_each_account(db, n, move |services, i| async move {
        let params = forwarding(i, n);
        if params.is_empty() {
            return Ok(0);
        }
        let name = provision::account_name(i);
        let id = AccountId::parse(&name)?;
        services
            .set_diversions(&id, &params)
            .await
            .with_context(|| format!("set_diversions for {name}: {params:?}"))?;
        Ok(1)
    })
    .await?;
    Ok(per_account.into_iter().sum())
}

/// Runs `f` on every account `0..n`, four at a time; what each returned, in no order.
async fn for_each_account<F, Fut>(db: &Db, n: usize, f: F) -> anyhow::Result<Vec<usize>>
where
    F: Fn(Services, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..4 {
        let services = db.services.clone();
        let next = next.clone();
        let f = f.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                out.push(f(services.clone(), i).await?);
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// Forwarding rules put before every account's own for the rules run (issue 19): rules that
/// never hold for the benchmark's calls (a date in the past, a caller set nobody calling is in),
/// on arrival, busy and no answer, so that every decision walks all of them first and then
/// decides as before.
pub(crate) const RULES_PER_ACCOUNT: usize = 20;

/// The rules of [`RULES_PER_ACCOUNT`] for account `i`, before its own.
fn rules_document(i: usize) -> serde_json::Value {
    let triggers = ["unconditional", "busy", "no_answer"];
    let rules: Vec<serde_json::Value> = (0..RULES_PER_ACCOUNT)
        .map(|r| {
            let condition = if r % 2 == 0 { "time" } else { "callers" };
            let set = if r % 2 == 0 { "past" } else { "nobody" };
            serde_json::json!({
                "trigger": triggers[r % triggers.len()],
                condition: set,
                "steps": [{"targets": [number(30 + u32::try_from(r).unwrap_or(0), i)],
                           "ring_seconds": 20}]
            })
        })
        .collect();
    serde_json::json!({
        "rules": rules,
        "time_sets": {"past": {"dates": ["2001-01-01"], "yearly": ["02-29"]}},
        "caller_sets": {"nobody": {"mode": "allow",
                                    "members": ["sip:nobody-%@invalid.example", "+99%"]}}
    })
}

/// Puts [`rules_document`]'s rules before every account's own; returns how many rules an
/// account has now at most.
async fn store_rules(db: &Db, n: usize) -> anyhow::Result<usize> {
    let sizes = for_each_account(db, n, |services, i| async move {
        let name = provision::account_name(i);
        let id = AccountId::parse(&name)?;
        let own = services.forwarding(&id).await?;
        let mut rules = Document::parse(rules_document(i))?.forwarding_of(&id)?;
        rules.rules.extend(own.rules.iter().cloned());
        let size = rules.rules.len();
        services
            .set_forwarding(&id, rules)
            .await
            .with_context(|| format!("forwarding rules for {name}"))?;
        Ok(size)
    })
    .await?;
    Ok(sizes.into_iter().max().unwrap_or(0))
}

/// The rules run: [`store_rules`] on the server's data, then a fresh server at `rate` for
/// [`HALF_SECS`].
async fn rules_run(
    p: &Params<'_>,
    spec: &ServerSpec,
    options: &[String],
    sipp: &Sipp,
    rate: u32,
) -> anyhow::Result<HalfRun> {
    let n = p.accounts;
    let t = Instant::now();
    let db = Db::open(&spec.data_dir, p.database, false).await?;
    let stored = store_rules(&db, n).await;
    db.close().await;
    let most = stored?;
    eprintln!(
        "{RULES_PER_ACCOUNT} rules put before every account's own (at most {most} each) in \
         {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (mut server, addr) = start_server(spec, &p.logs.join("sip-server-3.log"), options)?;
    probe_sip_settings(addr, n)?;
    let target = sipp::Target {
        name: "sip-settings-rules".into(),
        addr,
        pid: server.pid(),
        tree: false,
        also: Vec::new(),
    };
    let step = sipp.step(&target, rate, HALF_SECS).await?;
    eprintln!("sip-settings with rules: {}", step.progress());
    server.check_alive()?;
    let hwm_kib = server.hwm_kib()?;
    let latency = stop_server(server)?;
    eprintln!(
        "sip-settings with {RULES_PER_ACCOUNT} rules at {rate} calls/s: decision latency p50 {} \
         µs, p99 {} µs",
        latency.p50, latency.p99
    );
    Ok(HalfRun {
        step,
        latency,
        hwm_kib,
    })
}

/// `sip-settings serve --help`.
fn serve_help(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .with_context(|| format!("running {} serve --help", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this `sip-settings` has the SIP door (`serve --help` lists `--sip-listen`).
pub(crate) fn has_sip_door(bin: &Path) -> anyhow::Result<bool> {
    Ok(serve_help(bin)?.contains("--sip-listen"))
}

/// The redirect benchmark's `serve` options beyond the listener: no proxy feeds registrations
/// here, so a server that would take the registration state from the feed (and find none)
/// takes it from the proxy's hint instead (`--sip-registrations hint`: registered unless the
/// INVITE says `X-Registered: no`), and answers "ring" as the checks expect.
fn redirect_options(bin: &Path) -> anyhow::Result<Vec<String>> {
    Ok(if serve_help(bin)?.contains("--sip-registrations") {
        vec!["--sip-registrations".into(), "hint".into()]
    } else {
        Vec::new()
    })
}

/// The accounts whose answers are read in full before the load: each kind at both ends.
fn probe_accounts(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n.min(4)).chain(n.saturating_sub(4)..n).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Reads the answers of sip-settings: OPTIONS, every kind of account, an unknown account.
fn probe_sip_settings(addr: SocketAddr, n: usize) -> anyhow::Result<()> {
    sip_probe::options(addr, Duration::from_secs(3)).context("OPTIONS to sip-settings")?;
    for i in probe_accounts(n) {
        let user = provision::account_name(i);
        let user = user.split('@').next().unwrap_or_default();
        let r = sip_probe::invite(addr, user, DOMAIN)?;
        check_answer(i, n, &r)?;
    }
    let unknown = format!("nobody{}", std::process::id());
    let r = sip_probe::invite(addr, &unknown, DOMAIN)?;
    if r.status != 404 {
        bail!(
            "INVITE for the unknown {unknown}@{DOMAIN} answered {}, expected 404",
            r.summary()
        );
    }
    Ok(())
}

/// Reads Kamailio's answer.
fn probe_kamailio(addr: SocketAddr) -> anyhow::Result<()> {
    let r = sip_probe::invite(addr, "user0", DOMAIN)?;
    if r.status != 302
        || !r
            .header("Contact")
            .is_some_and(|c| c.contains(kamailio::CONTACT))
    {
        bail!("Kamailio answered {}, expected its fixed 302", r.summary());
    }
    Ok(())
}

/// What one server did.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// The search.
    pub search: Search,
    /// Peak resident memory (Kamailio: its processes added up), KiB.
    pub hwm_kib: u64,
    /// Kamailio's process count.
    pub processes: usize,
    /// sip-settings' latency line over the search.
    pub latency: Option<Latency>,
}

/// The half-rate run of a fresh sip-settings.
#[derive(Debug, Clone)]
pub(crate) struct HalfRun {
    /// The SIPp run.
    pub step: Step,
    /// The latency line the fresh server logged.
    pub latency: Latency,
    /// Its peak resident memory, KiB.
    pub hwm_kib: u64,
}

/// A provisioned data directory `NAME-data` in the run's working directory with `n` accounts,
/// migrated (`NAME-migrate.log`), and how to start a server on it.
pub(crate) async fn prepare_server(
    p: &Params<'_>,
    name: &str,
    n: usize,
) -> anyhow::Result<(provision::Provisioned, ServerSpec)> {
    let data = p.work.join(format!("{name}-data"));
    let prov = provision::prepare(p.bench_dir, &data, n, p.database).await?;
    let mut spec = ServerSpec {
        bin: p.bin.to_owned(),
        data_dir: data,
        database: p.database.map(str::to_owned),
        config: p.config.clone(),
    };
    spec.migrate(&p.logs.join(format!("{name}-migrate.log")))?;
    Ok((prov, spec))
}

/// Starts sip-settings with its SIP door on a free UDP port, and more `serve` options.
pub(crate) fn start_server(
    spec: &ServerSpec,
    log: &Path,
    extra: &[String],
) -> anyhow::Result<(Server, SocketAddr)> {
    let addr: SocketAddr = ([127, 0, 0, 1], process::free_udp_port()?).into();
    let mut args = vec!["--sip-listen".to_owned(), format!("udp:{addr}")];
    args.extend_from_slice(extra);
    let server = Server::start_with(spec, log, &args)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = sip_probe::options(addr, Duration::from_millis(500)) {
        if Instant::now() > deadline {
            bail!(
                "sip-settings does not answer OPTIONS on {addr}: {e:#}; {}",
                tail(log)
            );
        }
    }
    Ok((server, addr))
}

/// Stops sip-settings with SIGTERM and reads its latency line.
pub(crate) fn stop_server(server: Server) -> anyhow::Result<Latency> {
    let log = server.log().to_owned();
    server.stop()?;
    let text = fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    latency_line(&text).ok_or_else(|| {
        anyhow!(
            "sip-settings logged no `sip decision latency count=… p50_us=… p90_us=… p99_us=… \
             max_us=…` line when stopped: {}",
            tail(&log)
        )
    })
}

/// Kamailio's own figures: the rate search (or the smoke steps) against it as a redirect
/// server, its peak memory and its processes.
async fn kamailio_baseline(bin: &Path, p: &Params<'_>, sipp: &Sipp) -> anyhow::Result<Measured> {
    let mut kam = Kamailio::start(bin, &p.work.join("kamailio"), p.logs)?;
    probe_kamailio(kam.addr)?;
    let target = sipp::Target {
        name: "kamailio".into(),
        addr: kam.addr,
        pid: kam.pid(),
        tree: true,
        also: Vec::new(),
    };
    let s = if p.smoke {
        smoke_steps(sipp, &target, &mut kam, &PLAN).await?
    } else {
        search(sipp, &target, &mut kam, &PLAN).await?
    };
    let hwm_kib = kam.hwm_kib()?;
    let processes = kam.processes();
    kam.stop()?;
    eprintln!("kamailio: highest clean rate {} calls/s", s.clean_rate());
    Ok(Measured {
        search: s,
        hwm_kib,
        processes,
        latency: None,
    })
}

/// Runs the SIP benchmark; returns the report section (Markdown, see [`Section`]).
pub(crate) async fn run(p: Params<'_>) -> anyhow::Result<String> {
    let started = Instant::now();
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let sipp_bin = sipp::find_or_install().map_err(|why| {
        anyhow!("{why}: SIPp is the load generator of `sip`; install sip-tester and run again")
    })?;
    let kamailio_bin = match kamailio::find_or_install() {
        Ok(b) => Some(b),
        Err(why) if p.smoke => {
            bail!("{why}: the smoke run checks the Kamailio baseline too; install kamailio")
        }
        Err(why) => {
            eprintln!("{why}: no Kamailio baseline");
            None
        }
    };
    if !has_sip_door(p.bin)? {
        bail!(
            "{} has no SIP door (`serve --help` lists no --sip-listen): build a sip-settings \
             with it",
            p.bin.display()
        );
    }
    let options = redirect_options(p.bin)?;
    let n = p.accounts;
    let (_, spec) = prepare_server(&p, "sip", n).await?;
    let data = spec.data_dir.clone();
    let t = Instant::now();
    let db = Db::open(&data, p.database, false).await?;
    let stored = store_forwarding(&db, n).await;
    db.close().await;
    let forwarding_accounts = stored?;
    eprintln!(
        "forwarding stored on {forwarding_accounts} of {n} accounts in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let sipp_dir = p.work.join("sipp");
    fs::create_dir_all(&sipp_dir)?;
    fs::write(sipp_dir.join("scenario.xml"), sipp::scenario(DOMAIN))?;
    let users: Vec<String> = (0..n).map(|i| format!("user{i}")).collect();
    fs::write(sipp_dir.join("users.csv"), sipp::injection(&users))?;
    let sipp = Sipp {
        bin: sipp_bin.clone(),
        dir: sipp_dir,
        logs: p.logs.to_owned(),
        tick_us: process::tick_us(),
        hold: Duration::ZERO,
    };

    // ---- Kamailio ----
    let mut kam_figures = None;
    let mut kam_version = None;
    if let Some(bin) = &kamailio_bin {
        kam_version = Some(kamailio::version(bin));
        kam_figures = Some(kamailio_baseline(bin, &p, &sipp).await?);
    }

    // ---- sip-settings ----
    let (mut server, addr) = start_server(&spec, &p.logs.join("sip-server-1.log"), &options)?;
    probe_sip_settings(addr, n)?;
    let target = sipp::Target {
        name: "sip-settings".into(),
        addr,
        pid: server.pid(),
        tree: false,
        also: Vec::new(),
    };
    let s = if p.smoke {
        smoke_steps(&sipp, &target, &mut server, &PLAN).await?
    } else {
        search(&sipp, &target, &mut server, &PLAN).await?
    };
    let hwm_kib = server.hwm_kib()?;
    let latency = stop_server(server)?;
    let answered: u64 = s.steps.iter().map(|s| s.successful).sum();
    if latency.count < answered {
        bail!(
            "sip-settings counted {} INVITEs in its latency line, SIPp got {answered} answers",
            latency.count
        );
    }
    eprintln!(
        "sip-settings: highest clean rate {} calls/s; decision latency p50 {} µs, p99 {} µs",
        s.clean_rate(),
        latency.p50,
        latency.p99
    );
    let ours = Measured {
        search: s,
        hwm_kib,
        processes: 1,
        latency: Some(latency),
    };

    // ---- sip-settings alone at half Kamailio's clean rate ----
    let half = if p.smoke {
        None
    } else {
        let base = kam_figures
            .as_ref()
            .map(|k| k.search.clean_rate())
            .filter(|r| *r > 0)
            .unwrap_or_else(|| ours.search.clean_rate());
        let rate = (base / 2).max(100);
        let (mut server, addr) = start_server(&spec, &p.logs.join("sip-server-2.log"), &options)?;
        let target = sipp::Target {
            name: "sip-settings-half".into(),
            addr,
            pid: server.pid(),
            tree: false,
            also: Vec::new(),
        };
        let step = sipp.step(&target, rate, HALF_SECS).await?;
        eprintln!("sip-settings at half rate: {}", step.progress());
        server.check_alive()?;
        let hwm_kib = server.hwm_kib()?;
        let latency = stop_server(server)?;
        eprintln!(
            "sip-settings at {rate} calls/s: decision latency p50 {} µs, p99 {} µs; VmHWM {}",
            latency.p50,
            latency.p99,
            report::mib(hwm_kib)
        );
        Some(HalfRun {
            step,
            latency,
            hwm_kib,
        })
    };

    // ---- the same rate, every account with 20 forwarding rules before its own ----
    let rules = match &half {
        None => None,
        Some(h) => Some(rules_run(&p, &spec, &options, &sipp, h.step.rate).await?),
    };

    let section = Section {
        command: p.command,
        root: p.root,
        smoke: p.smoke,
        accounts: n,
        forwarding_accounts,
        load_before: load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        sipp_version: sipp::version(&sipp_bin),
        kamailio_version: kam_version,
        kamailio: kam_figures,
        ours,
        half,
        rules,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(section.markdown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_line_is_read_with_or_without_colours() {
        let log = "2026-12-05T06:00:00Z  INFO sip_settings: other line count=3\n\
                   2026-12-05T06:00:01Z  INFO sip_settings_sip: sip decision latency \
                   count=12000 p50_us=14 p90_us=30 p99_us=95 max_us=2100\n";
        assert_eq!(
            latency_line(log),
            Some(Latency {
                count: 12_000,
                p50: 14,
                p90: 30,
                p99: 95,
                max: 2_100
            })
        );
        let coloured = "\u{1b}[32m INFO\u{1b}[0m \u{1b}[2msip\u{1b}[0m: sip decision latency \
                        \u{1b}[3mcount\u{1b}[0m\u{1b}[2m=\u{1b}[0m5 \u{1b}[3mp50_us\u{1b}[0m\u{1b}[2m=\
                        \u{1b}[0m1 p90_us=2 p99_us=3 max_us=4";
        assert_eq!(
            latency_line(coloured).map(|l| (l.count, l.max)),
            Some((5, 4))
        );
        assert_eq!(latency_line("sip decision latency count=5 p50_us=1"), None);
        assert_eq!(latency_line("nothing here"), None);
    }

    #[test]
    fn forwarding_kinds_and_what_their_answers_must_hold() {
        assert_eq!(
            forwarding(0, 8),
            vec![(Condition::Unconditional, "+31200000000".to_owned())]
        );
        assert!(forwarding(1, 8).is_empty());
        assert_eq!(
            forwarding(2, 8),
            vec![(Condition::Unconditional, "user3@bench.example".to_owned())]
        );
        assert_eq!(forwarding(3, 8).len(), 2);
        // The last account of a run whose size is 3 mod 4 forwards to a number instead.
        assert_eq!(forwarding(6, 7)[0].1, "+31200000006");
        assert_eq!(expected(0, 8), Expect::Forward("+31200000000".into()));
        assert_eq!(expected(2, 8), Expect::Forward("user3".into()));
        assert_eq!(expected(3, 8), Expect::Ring("user3@bench.example".into()));
        assert_eq!(probe_accounts(20), vec![0, 1, 2, 3, 16, 17, 18, 19]);
        assert_eq!(probe_accounts(3), vec![0, 1, 2]);
    }

    #[test]
    fn answers_are_checked_against_the_forwarding() {
        let reply = |text: &str| Reply::parse(text).unwrap();
        let fwd = reply(
            "SIP/2.0 302 Moved Temporarily\r\nContact: <sip:+31200000000@bench.example>\r\n\
             Diversion: <sip:user0@bench.example>;reason=unconditional\r\n\r\n",
        );
        assert!(check_answer(0, 8, &fwd).is_ok());
        assert!(check_answer(1, 8, &fwd).is_err());
        let ring = reply(
            "SIP/2.0 302 Moved Temporarily\r\nContact: <sip:user1@bench.example;ring=35>\r\n\
             X-Ring-Time: 35\r\n\r\n",
        );
        assert!(check_answer(1, 8, &ring).is_ok());
        assert!(check_answer(0, 8, &ring).is_err());
        let not_found = reply("SIP/2.0 404 Not Found\r\n\r\n");
        assert!(check_answer(1, 8, &not_found).is_err());
    }
}
