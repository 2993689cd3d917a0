//! `proxy`: whole calls through Kamailio with the shipped configuration
//! (`contrib/kamailio/kamailio.cfg`), SIPp at both ends, in two variants of the same file on
//! the same machine in one run:
//!
//! * **alone** (`-A ALONE`): Kamailio as registrar and proxy without sip-settings (REGISTER
//!   saved, INVITE looked up in the location table and relayed): the baseline;
//! * **full**: the same Kamailio asking sip-settings about every call (its SIP door on UDP,
//!   its HTTPS API with a service certificate for the feeds the configuration posts).
//!
//! Per variant: Kamailio starts (same worker count), the callee's phone (a SIPp UAS) registers
//! through it and answers every call (180, 200, then the BYE); the caller's SIPp places calls
//! (INVITE, 100/180/200, ACK, a short pause, BYE/200) at rising rates ([`PLAN`]) up to the
//! first rate at which 1 % of the calls or more fail, then bisects. Then, at a common rate (half
//! the alone maximum), one run of each traces every message to the microsecond for the call
//! set-up time (INVITE sent → 200 received) p50/p99. Reported: both maxima, the ratio full /
//! alone against the target of 0.8, the set-up times, and the CPU time per call of every
//! process (Kamailio, sip-settings, both SIPps), which says where the difference goes.
//!
//! `--smoke`: a few calls per second for 1 s per rate, no search; every call must succeed.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::kamailio::{self, Kamailio};
use crate::load::{self, Client, Req};
use crate::process::{self, Server};
use crate::provision::{self, DOMAIN};
use crate::search::{Alive, Plan, Search, search, smoke_steps};
use crate::sip::{self, Latency, Params};
use crate::sipp::{self, Sipp, Step, Watch};
use crate::sipp_calls::{self, Phone};

/// The rate search: 4 s steps from 50 to 8 000 calls/s, up to the first rate at which 1 % of
/// the calls or more fail, then 3 bisections in steps of 25; no new rate after 5 minutes.
pub(crate) const PLAN: Plan = Plan {
    ladder: &[
        50, 100, 200, 300, 400, 500, 600, 800, 1_000, 1_200, 1_500, 2_000, 2_500, 3_000, 4_000,
        5_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 20_000,
    ],
    step_secs: 4.0,
    bisections: 3,
    grain: 25,
    max_failed: 0.01,
    smoke_rates: &[10, 40],
    budget: Some(Duration::from_secs(300)),
};
/// How long the caller holds each call between the ACK and the BYE, ms.
pub(crate) const PAUSE_MS: u64 = 100;
/// Seconds of the traced run at the common rate (with --smoke: 2).
pub(crate) const SETUP_SECS: f64 = 5.0;
/// The target: full path / alone.
pub(crate) const TARGET_RATIO: f64 = 0.8;
/// Kamailio's shared and private memory, MiB (`-m`, `-M`). Shared memory holds every
/// transaction until its wait timer (5 s) and every dialog until 32 s after it ended
/// (`end_timeout`): at 6 000 calls/s some 200 000 dialogs, too many for 512 MiB (which ran
/// out at 3 000 calls/s, and at 4 500 alone, before the CPU did).
const SHM_MIB: u32 = 2048;
const PKG_MIB: u32 = 16;
/// Kamailio's memory manager (`-x`, for shared and private memory alike): TLSF, whose
/// allocation takes constant time. The Debian package's default, q_malloc (built with its
/// debugging), searched its free lists for a quarter of Kamailio's CPU time.
const ALLOCATOR: &str = "tlsf";
/// The caller and the callee: accounts 0 and 1.
const CALLER: usize = 0;
const CALLEE: usize = 1;

/// The two variants of the shipped configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// `-A ALONE`: no sip-settings.
    Alone,
    /// Every call decided by sip-settings.
    Full,
}

impl Variant {
    /// A short name (files, JSON).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Alone => "alone",
            Self::Full => "full",
        }
    }

    /// The name in the report.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Alone => "Kamailio alone",
            Self::Full => "Kamailio + sip-settings",
        }
    }
}

/// The `-A` defines of the shipped configuration, from its `#!ifndef NAME` / `#!ifdef NAME`
/// lines, and the values this run gives them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defines {
    /// `-A NAME=value` (or `-A NAME`) arguments, in order.
    pub given: Vec<String>,
    /// Names the configuration knows that this run leaves at their default.
    pub left: Vec<String>,
    /// Whether the configuration has the `ALONE` switch.
    pub has_alone: bool,
    /// Whether it takes its worker count as `WORKERS`.
    pub has_workers: bool,
}

/// What the run knows to give the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Values {
    /// Kamailio's address.
    pub listen: SocketAddr,
    /// sip-settings' SIP door (UDP).
    pub sip: SocketAddr,
    /// sip-settings' HTTPS listener.
    pub https: SocketAddr,
    /// The service certificate, its key and the CA (for the HTTPS feeds).
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Kamailio's worker processes, when asked for (`WORKERS`, or `-n` for a configuration
    /// without it).
    pub workers: Option<usize>,
}

/// The names a configuration declares (`#!ifndef NAME`, `#!ifdef NAME`), in order, once each.
pub(crate) fn declared(cfg: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in cfg.lines() {
        let line = line.trim();
        let Some(name) = line
            .strip_prefix("#!ifndef ")
            .or_else(|| line.strip_prefix("#!ifdef "))
        else {
            continue;
        };
        let name = name.split_whitespace().next().unwrap_or_default();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// The `-A` arguments of a variant: every declared name this run has a value for.
pub(crate) fn defines(cfg: &str, variant: Variant, v: &Values) -> Defines {
    let mut d = Defines::default();
    let quoted = |s: &str| format!("\"{s}\"");
    for name in declared(cfg) {
        let value = match name.as_str() {
            "ALONE" => {
                d.has_alone = true;
                if variant == Variant::Alone {
                    d.given.push("ALONE".to_owned());
                }
                continue;
            }
            "WORKERS" if v.workers.is_none() => {
                d.has_workers = true;
                d.left.push(name);
                continue;
            }
            "LISTEN" => Some(format!("udp:{}", v.listen)),
            "DOMAIN" => Some(quoted(DOMAIN)),
            "SETTINGS" => Some(quoted(&format!("sip:{};transport=udp", v.sip))),
            "API" => Some(quoted(&format!("https://{}", v.https))),
            // The recommended form: an http_client connection kept open per process.
            "API_CONNECTION" => Some(quoted(&format!("settings=>https://{}", v.https))),
            "API_CERT" => Some(quoted(&v.cert.display().to_string())),
            "API_KEY" => Some(quoted(&v.key.display().to_string())),
            "API_CA" => Some(quoted(&v.ca.display().to_string())),
            "WORKERS" => {
                d.has_workers = true;
                v.workers.map(|n| n.to_string())
            }
            _ => None,
        };
        match value {
            Some(value) => d.given.push(format!("{name}={value}")),
            None => d.left.push(name),
        }
    }
    d
}

/// What one variant did.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// Which.
    pub variant: Variant,
    /// The search (or the smoke steps).
    pub search: Search,
    /// The traced run at the common rate.
    pub setup: Option<Step>,
    /// Kamailio's processes.
    pub processes: usize,
    /// Kamailio's peak resident memory, its processes added up, KiB.
    pub hwm_kib: u64,
    /// Kamailio's command line after `-f FILE` (the defines and options).
    pub args: Vec<String>,
    /// The callee's devices as sip-settings lists them after the REGISTER (`GET
    /// /v1/me/devices`), or why not.
    pub devices: Result<usize, String>,
    /// The call records of the caller that reached sip-settings (its placed calls this month,
    /// `GET /v1/me/usage/…`), or why they could not be read.
    pub records: Result<Records, String>,
    /// The call records' arrivals while the variant ran (the full path only).
    pub arrivals: Option<Arrivals>,
}

impl Measured {
    /// Call records that reached sip-settings per second during a step.
    pub(crate) fn records_rate(&self, s: &Step) -> Option<f64> {
        let a = self.arrivals.as_ref()?;
        a.rate(s.started, s.started + Duration::from_secs_f64(s.wall))
    }
}

impl Measured {
    /// Calls that succeeded over every step of the variant.
    pub(crate) fn successful(&self) -> u64 {
        self.search
            .steps
            .iter()
            .chain(&self.setup)
            .map(|s| s.successful)
            .sum()
    }
}

/// The caller's call records (placed calls) as sip-settings counts them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records {
    /// Calls of the caller that succeeded in this Kamailio.
    pub calls: u64,
    /// Before the variant.
    pub before: u64,
    /// When the last call of the variant ended.
    pub at_end: u64,
    /// Once no more arrived (or at the end of [`DRAIN_LIMIT`]).
    pub drained: u64,
    /// Seconds from the end of the last call to the last record that arrived.
    pub drain_secs: f64,
    /// Whether records were still arriving when the wait ended.
    pub still_arriving: bool,
    /// CPU seconds of Kamailio (all processes) and of sip-settings from the end of the last
    /// call to the last record that arrived: what posting the queued records cost.
    pub drain_cpu: (f64, f64),
    /// TCP connections accepted on the machine over the same time (`PassiveOpens`: the feed's,
    /// the benchmark's own readings, about three a second, and whatever else runs here): about
    /// one per record means a new connection, and TLS handshake, per record.
    pub connections: Option<u64>,
}

impl Records {
    /// Records that arrived after the last call ended, per second of the wait; None for fewer
    /// than [`DRAIN_MIN`] (too few to say what one costs).
    pub(crate) fn drain_rate(&self) -> Option<f64> {
        let n = self.drained.saturating_sub(self.at_end);
        (n >= DRAIN_MIN && self.drain_secs > 0.0)
            .then(|| crate::report::approx(n) / self.drain_secs)
    }
}

/// The fewest records arriving after the calls from which their cost is reported.
pub(crate) const DRAIN_MIN: u64 = 1_000;

/// How long to wait for call records posted after the calls ended.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// The whole run, for the report.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Both variants, alone first.
    pub alone: Measured,
    pub full: Measured,
    /// The common rate of the traced runs.
    pub common_rate: u32,
    /// What the configuration declares and what this run left at its default.
    pub defines: Defines,
    /// sip-settings' decision latency line over the whole run.
    pub latency: Option<Latency>,
    /// Kamailio's and SIPp's versions.
    pub kamailio_version: String,
    pub sipp_version: String,
    /// The configuration's `children=`.
    pub children: Option<String>,
    /// The load average before and after the run (other work on the machine shows there).
    pub load_before: String,
    pub load_after: String,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Everything under test in one variant: a search fails as soon as one of them has exited.
struct Running<'a> {
    kamailio: &'a mut Kamailio,
    phone: &'a mut Phone,
    server: &'a mut Server,
}

impl Alive for Running<'_> {
    fn alive(&mut self) -> anyhow::Result<()> {
        self.kamailio.check_alive()?;
        self.phone.check_alive()?;
        self.server.check_alive()
    }
}

/// The HTTPS side of sip-settings as the caller and the callee see it.
struct Api {
    target: load::Target,
    caller: Client,
    callee: Client,
}

impl Api {
    /// GET `path` as `client`; the JSON reply.
    async fn get(&self, client: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
        let (_, body) = load::probe(&self.target, client, &Req::get(path))
            .await
            .with_context(|| format!("GET {path}"))?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// The callee's devices.
    async fn devices(&self) -> Result<usize, String> {
        let v = self
            .get(&self.callee, "/v1/me/devices")
            .await
            .map_err(|e| format!("{e:#}"))?;
        v.get("devices")
            .and_then(|d| d.as_array())
            .map(Vec::len)
            .ok_or_else(|| format!("no `devices` list in {v}"))
    }

    /// The caller's placed calls this month.
    async fn placed(&self) -> Result<u64, String> {
        let month = chrono::Utc::now().format("%Y-%m");
        let v = self
            .get(&self.caller, &format!("/v1/me/usage/{month}"))
            .await
            .map_err(|e| format!("{e:#}"))?;
        v.get("calls")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("no `calls` count in {v}"))
    }
}

/// The caller's call records as sip-settings counts them, read every 500 ms while a variant
/// runs: how many arrived during each step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arrivals(Arc<Mutex<Vec<(Instant, u64)>>>);

impl Arrivals {
    /// Starts reading; the task ends when the handle is aborted (or dropped by its owner).
    fn start(api: Arc<Api>) -> (Self, tokio::task::JoinHandle<()>) {
        let me = Self::default();
        let samples = me.0.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(n) = api.placed().await
                    && let Ok(mut v) = samples.lock()
                {
                    v.push((Instant::now(), n));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        (me, task)
    }

    /// Records that arrived from `from` to `to`, per second (from the readings around them).
    pub(crate) fn rate(&self, from: Instant, to: Instant) -> Option<f64> {
        let v = self.0.lock().ok()?;
        let before = v.iter().rev().find(|(t, _)| *t <= from)?;
        let after = v.iter().find(|(t, _)| *t >= to)?;
        let secs = after.0.duration_since(before.0).as_secs_f64();
        (secs > 0.0).then(|| crate::report::approx(after.1.saturating_sub(before.1)) / secs)
    }
}

/// The configuration's `children=` value, when it sets one, through its `#!define` when it
/// names one (`children=WORKERS` with `#!define WORKERS 4`: "4").
fn children_of(cfg: &str) -> Option<String> {
    let lines = || cfg.lines().map(str::trim);
    let value = lines().find_map(|l| l.strip_prefix("children="))?.trim();
    let defined = lines().find_map(|l| {
        let rest = l.strip_prefix("#!define ")?;
        let (name, v) = rest.split_once(char::is_whitespace)?;
        (name == value).then(|| v.trim().to_owned())
    });
    Some(defined.unwrap_or_else(|| value.to_owned()))
}

/// Everything one variant needs.
struct Ctx<'a> {
    sipp: &'a Sipp,
    sipp_bin: &'a Path,
    kamailio_bin: &'a Path,
    cfg_path: &'a Path,
    cfg: &'a str,
    values: Values,
    api: Arc<Api>,
    work: &'a Path,
    logs: &'a Path,
    smoke: bool,
}

/// Kamailio's command line for `variant`: the configuration's `-A` defines, the allocator and
/// memory sizes, and `-n` when the configuration does not take its worker count itself.
fn kamailio_args(cfg: &str, variant: Variant, values: &Values) -> Vec<String> {
    let d = defines(cfg, variant, values);
    let mut args: Vec<String> = Vec::new();
    for a in &d.given {
        args.push("-A".into());
        args.push(a.clone());
    }
    args.extend([
        "-x".into(),
        ALLOCATOR.into(),
        "-m".into(),
        SHM_MIB.to_string(),
        "-M".into(),
        PKG_MIB.to_string(),
    ]);
    if let Some(n) = values.workers.filter(|_| !d.has_workers) {
        args.extend(["-n".into(), n.to_string()]);
    }
    args
}

/// A run at `rate` with SIPp's message trace, for the call set-up times.
async fn traced_step(
    ctx: &Ctx<'_>,
    target: &sipp::Target,
    variant: Variant,
    rate: u32,
) -> anyhow::Result<Step> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let secs = if ctx.smoke { 2.0 } else { SETUP_SECS };
    let step = ctx.sipp.step_with(target, rate, secs, true).await?;
    eprintln!(
        "{} at the common rate: {}",
        variant.label(),
        step.progress()
    );
    if let Some(t) = step.setup {
        eprintln!(
            "{}: set-up time p50 {} µs, p99 {} µs",
            variant.label(),
            t.p50,
            t.p99
        );
    }
    Ok(step)
}

/// Runs one variant: Kamailio, the callee's phone registered through it, 5 calls that must all
/// succeed, the search (or the smoke steps) when `searched`, and a traced run at the rate
/// `traced` gives (from the search) if it gives one.
async fn variant(
    ctx: &Ctx<'_>,
    variant: Variant,
    server: &mut Server,
    searched: bool,
    traced: impl Fn(&Search) -> Option<u32>,
) -> anyhow::Result<Measured> {
    let name = variant.name();
    let listen: SocketAddr = ([127, 0, 0, 1], process::free_udp_port()?).into();
    let values = Values {
        listen,
        ..ctx.values.clone()
    };
    let args = kamailio_args(ctx.cfg, variant, &values);
    let dir = ctx.work.join(format!("kamailio-{name}"));
    let log = ctx.logs.join(format!("kamailio-{name}.log"));
    let mut kam = Kamailio::start_file(ctx.kamailio_bin, ctx.cfg_path, &args, listen, &dir, &log)?;
    eprintln!(
        "{}: kamailio on {listen} ({} processes), {}",
        variant.label(),
        kam.processes(),
        args.join(" ")
    );
    let placed_before = ctx.api.placed().await;
    // Kamailio alone feeds nothing: its call records are not followed.
    let (arrivals, sampler) = match variant {
        Variant::Full => {
            let (a, t) = Arrivals::start(ctx.api.clone());
            (Some(a), Some(t))
        }
        Variant::Alone => (None, None),
    };
    let phone_port = process::free_udp_port()?;
    let callee = provision::account_name(CALLEE);
    let callee_user = callee.split('@').next().unwrap_or_default();
    // The phone's scenario, screen and errors stay with the logs of the run.
    let phone_dir = ctx.logs.join(format!("phone-{name}"));
    sipp_calls::register(
        ctx.sipp_bin,
        &phone_dir,
        listen,
        DOMAIN,
        callee_user,
        phone_port,
    )?;
    let devices = match variant {
        Variant::Full => ctx.api.devices().await,
        // Kamailio alone feeds nothing; the callee's device of a full run may still be listed.
        Variant::Alone => Err("not fed: Kamailio alone tells sip-settings nothing".to_owned()),
    };
    let budget = PLAN.budget.unwrap_or(Duration::from_secs(300));
    let mut phone = Phone::start(
        ctx.sipp_bin,
        &phone_dir,
        callee_user,
        phone_port,
        budget + Duration::from_secs(120),
    )?;
    let target = sipp::Target {
        name: name.to_owned(),
        addr: listen,
        pid: kam.pid(),
        tree: true,
        also: vec![
            Watch {
                name: "sip-settings".into(),
                pid: server.pid(),
                port: Some(ctx.values.sip.port()),
            },
            Watch {
                name: "callee".into(),
                pid: phone.pid(),
                port: Some(phone_port),
            },
        ],
    };
    let server_pid = server.pid();
    let mut running = Running {
        kamailio: &mut kam,
        phone: &mut phone,
        server,
    };
    // A few calls first: every one must get through, or nothing below means anything.
    let first = ctx.sipp.step(&target, 5, 1.0).await?;
    running.alive()?;
    if !first.clean() {
        bail!(
            "{}: the first 5 calls did not all succeed: {}; SIPp's errors: {}; {}",
            variant.label(),
            first.failure_text(),
            ctx.logs.join(format!("sipp-{name}-5-errors.log")).display(),
            process::tail(&log)
        );
    }
    let s = if !searched {
        Search::default()
    } else if ctx.smoke {
        smoke_steps(ctx.sipp, &target, &mut running, &PLAN).await?
    } else {
        search(ctx.sipp, &target, &mut running, &PLAN).await?
    };
    if searched {
        eprintln!(
            "{}: highest rate with < {:.0} % failed calls: {} calls/s",
            variant.label(),
            PLAN.max_failed * 100.0,
            s.clean_rate()
        );
    }
    let mut setup = None;
    if let Some(rate) = traced(&s) {
        setup = Some(traced_step(ctx, &target, variant, rate).await?);
    }
    running.alive()?;
    let hwm_kib = kam.hwm_kib()?;
    let processes = kam.processes();
    // Call records may be posted after the calls (Kamailio queues them): wait until no more
    // arrive, Kamailio still running.
    let calls = [&first]
        .into_iter()
        .chain(&s.steps)
        .chain(&setup)
        .map(|st| st.successful)
        .sum();
    let records = match placed_before {
        Ok(before) => drain(&ctx.api, before, calls, kam.pid(), server_pid).await,
        Err(e) => Err(e),
    };
    if let Some(t) = sampler {
        t.abort();
    }
    phone.stop()?;
    kam.stop()?;
    let mut s = s;
    s.steps.insert(0, first);
    Ok(Measured {
        variant,
        search: s,
        setup,
        processes,
        hwm_kib,
        args,
        devices,
        records,
        arrivals,
    })
}

/// Reads the caller's call records every second until two readings in a row are the same (at
/// most [`DRAIN_LIMIT`]), with the CPU time Kamailio (`kamailio`, all its processes) and
/// sip-settings (`server`) spent meanwhile and the TCP connections accepted meanwhile.
async fn drain(
    api: &Api,
    before: u64,
    calls: u64,
    kamailio: u32,
    server: u32,
) -> Result<Records, String> {
    let cpu = || -> (u64, u64) {
        (
            process::cpu_tree_ticks(kamailio).unwrap_or(0),
            process::cpu_ticks(server).unwrap_or(0),
        )
    };
    let ended = Instant::now();
    let at_end = api.placed().await?;
    let cpu_at_end = cpu();
    let opens_at_end = passive_opens();
    let (mut last, mut last_change, mut cpu_at_last, mut same) = (at_end, 0.0, cpu_at_end, 0);
    let mut opens_at_last = opens_at_end;
    let mut still_arriving = false;
    while same < 2 {
        if ended.elapsed() > DRAIN_LIMIT {
            still_arriving = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = api.placed().await?;
        if now == last {
            same += 1;
        } else {
            (last, last_change, cpu_at_last, same) = (now, ended.elapsed().as_secs_f64(), cpu(), 0);
            opens_at_last = passive_opens();
        }
    }
    let tick_s = process::tick_us() / 1e6;
    Ok(Records {
        calls,
        before,
        at_end,
        drained: last,
        drain_secs: last_change,
        still_arriving,
        drain_cpu: (
            crate::report::approx(cpu_at_last.0.saturating_sub(cpu_at_end.0)) * tick_s,
            crate::report::approx(cpu_at_last.1.saturating_sub(cpu_at_end.1)) * tick_s,
        ),
        connections: opens_at_last
            .zip(opens_at_end)
            .map(|(a, b)| a.saturating_sub(b)),
    })
}

/// TCP connections accepted on this machine so far (`PassiveOpens` of `/proc/net/snmp`).
fn passive_opens() -> Option<u64> {
    let snmp = fs::read_to_string("/proc/net/snmp").ok()?;
    passive_opens_in(&snmp)
}

fn passive_opens_in(snmp: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "PassiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Runs the full-path benchmark; returns the report section (Markdown) and writes the figures
/// as JSON to `target/bench-data/proxy.json`.
pub(crate) async fn run(p: Params<'_>, kamailio_children: Option<usize>) -> anyhow::Result<String> {
    let started = Instant::now();
    let load_before = loadavg();
    let sipp_bin = sipp::find_or_install().map_err(|why| {
        anyhow!("{why}: SIPp plays the caller and the callee of `proxy`; install sip-tester")
    })?;
    let kamailio_bin = kamailio::find_or_install()
        .map_err(|why| anyhow!("{why}: `proxy` measures Kamailio; install kamailio"))?;
    if !sip::has_sip_door(p.bin)? {
        bail!(
            "{} has no SIP door (`serve --help` lists no --sip-listen)",
            p.bin.display()
        );
    }
    let cfg_path = p.root.join("contrib/kamailio/kamailio.cfg");
    let cfg =
        fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;

    // sip-settings: the caller and the callee (postpaid), a service certificate for Kamailio.
    let (prov, spec) = sip::prepare_server(&p, "proxy", 2).await?;
    let data = spec.data_dir.clone();
    let tls = p.work.join("kamailio-tls");
    fs::create_dir_all(&tls)?;
    let tls = tls.canonicalize()?;
    let (cert, key, ca) = (
        tls.join("service.crt"),
        tls.join("service.key"),
        tls.join("ca.crt"),
    );
    fs::write(&cert, &prov.service.cert_pem)?;
    sip_settings_pki::files::write_file(&key, prov.service.key_pem.as_bytes(), true)?;
    fs::copy(data.join("ca.crt"), &ca).context("copying ca.crt")?;
    let (mut server, sip_addr) = sip::start_server(&spec, &p.logs.join("proxy-server.log"), &[])?;
    let ca_pem = fs::read_to_string(&ca)?;
    let provider = load::provider();
    let roots = load::roots(&ca_pem)?;
    let account = |i: usize| {
        prov.accounts
            .get(i)
            .ok_or_else(|| anyhow!("account {i} was not provisioned"))
            .and_then(|c| load::client(&provider, &roots, c))
    };
    let api = Arc::new(Api {
        target: load::Target::local(server.addr)?,
        caller: account(CALLER)?,
        callee: account(CALLEE)?,
    });

    let sipp_dir = p.work.join("proxy-sipp");
    fs::create_dir_all(&sipp_dir)?;
    fs::write(
        sipp_dir.join("scenario.xml"),
        sipp_calls::call_scenario(DOMAIN, PAUSE_MS),
    )?;
    let user = |i: usize| provision::account_name(i).replace(&format!("@{DOMAIN}"), "");
    fs::write(
        sipp_dir.join("users.csv"),
        sipp::injection(&[format!("{};{}", user(CALLER), user(CALLEE))]),
    )?;
    let sipp = Sipp {
        bin: sipp_bin.clone(),
        dir: sipp_dir,
        logs: p.logs.to_owned(),
        tick_us: process::tick_us(),
        hold: Duration::from_millis(PAUSE_MS),
    };
    let ctx = Ctx {
        sipp: &sipp,
        sipp_bin: &sipp_bin,
        kamailio_bin: &kamailio_bin,
        cfg_path: &cfg_path,
        cfg: &cfg,
        values: Values {
            listen: ([127, 0, 0, 1], 0).into(),
            sip: sip_addr,
            https: server.addr,
            cert,
            key,
            ca,
            workers: kamailio_children,
        },
        api: api.clone(),
        work: p.work,
        logs: p.logs,
        smoke: p.smoke,
    };
    let defines = defines(&cfg, Variant::Alone, &ctx.values);
    if !defines.has_alone {
        eprintln!(
            "{} has no ALONE define: the baseline runs the same path as the full one",
            cfg_path.display()
        );
    }

    // The full path, then the baseline; then both traced at the common rate: half the lower
    // of the two highest rates, which both sustain (the full path is traced in a Kamailio of
    // its own again). A smoke run traces each variant at once.
    let smoke_rate = 20;
    let mut full = variant(&ctx, Variant::Full, &mut server, true, |_| {
        p.smoke.then_some(smoke_rate)
    })
    .await?;
    let full_rate = full.search.clean_rate();
    let half = |s: &Search| {
        Some(if p.smoke {
            smoke_rate
        } else {
            (s.clean_rate().min(full_rate) / 2).max(PLAN.ladder[0])
        })
    };
    let alone = variant(&ctx, Variant::Alone, &mut server, true, half).await?;
    let common_rate = alone.setup.as_ref().map_or(smoke_rate, |s| s.rate);
    if !p.smoke {
        let traced = variant(&ctx, Variant::Full, &mut server, false, |_| {
            Some(common_rate)
        })
        .await?;
        full.setup = traced.setup;
        full.search.steps.extend(traced.search.steps);
        if let (Some(a), Some(b)) = (&full.arrivals, &traced.arrivals)
            && let (Ok(mut a), Ok(b)) = (a.0.lock(), b.0.lock())
        {
            a.extend(b.iter().copied());
        }
    }
    server.check_alive()?;
    let latency = sip::stop_server(server).ok();

    let outcome = Outcome {
        alone,
        full,
        common_rate,
        defines,
        latency,
        kamailio_version: kamailio::version(&kamailio_bin),
        sipp_version: sipp::version(&sipp_bin),
        children: kamailio_children
            .map(|n| n.to_string())
            .or_else(|| children_of(&cfg)),
        load_before,
        load_after: loadavg(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if p.smoke {
        check_smoke(&outcome)?;
    }
    let json = crate::proxy_report::json(&outcome);
    let json_path = p.bench_dir.join("proxy.json");
    fs::write(&json_path, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!("wrote {}", json_path.display());
    Ok(crate::proxy_report::markdown(
        &outcome, p.command, p.root, p.smoke,
    ))
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The smoke run's checks beyond "every call succeeded": the full path really asked
/// sip-settings (its decision count covers the full variant's calls), and fed it the callee's
/// registration and a call record of every call.
fn check_smoke(o: &Outcome) -> anyhow::Result<()> {
    let mut problems = String::new();
    let calls = o.full.successful();
    match &o.latency {
        Some(l) if l.count >= calls => {}
        Some(l) => {
            let _ = write!(
                problems,
                "sip-settings decided {} INVITEs, fewer than the {calls} calls of the full path; ",
                l.count
            );
        }
        None => problems.push_str("sip-settings logged no decision latency line; "),
    }
    // The feeds: the callee's registration and a call record of every call.
    match &o.full.devices {
        Ok(n) if *n >= 1 => {}
        Ok(_) => problems.push_str("sip-settings lists no device of the registered callee; "),
        Err(e) => {
            let _ = write!(problems, "the callee's devices: {e}; ");
        }
    }
    match &o.full.records {
        Ok(r) if r.drained.saturating_sub(r.before) >= r.calls => {}
        Ok(r) => {
            let _ = write!(
                problems,
                "{} call records reached sip-settings for {} calls; ",
                r.drained.saturating_sub(r.before),
                r.calls
            );
        }
        Err(e) => {
            let _ = write!(problems, "the caller's call records: {e}; ");
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.trim_end_matches("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "#!KAMAILIO\n#!ifndef LISTEN\n#!define LISTEN udp:127.0.0.1:5060\n#!endif\n\
                       #!ifndef DOMAIN\n#!define DOMAIN \"example.com\"\n#!endif\n\
                       #!ifndef SETTINGS\n#!define SETTINGS \"sip:x\"\n#!endif\n\
                       #!ifndef API\n#!define API \"https://x\"\n#!endif\n\
                       #!ifdef API_CONNECTION\nmodparam(\"http_client\", \"httpcon\", API_CONNECTION)\n#!endif\n\
                       #!ifndef GATEWAY\n#!define GATEWAY \"sip:gw\"\n#!endif\n\
                       #!ifndef WORKERS\n#!define WORKERS 4\n#!endif\n\
                       children=WORKERS\n#!ifdef ALONE\nroute(LOCAL);\n#!endif\n#!ifdef ALONE\n#!endif\n";

    fn values() -> Values {
        Values {
            listen: ([127, 0, 0, 1], 5060).into(),
            sip: ([127, 0, 0, 1], 5070).into(),
            https: ([127, 0, 0, 1], 8443).into(),
            cert: "/t/service.crt".into(),
            key: "/t/service.key".into(),
            ca: "/t/ca.crt".into(),
            workers: None,
        }
    }

    #[test]
    fn accepted_connections_are_read_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens PassiveOpens AttemptFails\n\
                    Tcp: 1 200 160699 160621 55\n";
        assert_eq!(passive_opens_in(snmp), Some(160_621));
        assert_eq!(passive_opens_in("Tcp: PassiveOpens\n"), None);
    }

    #[test]
    fn the_defines_are_those_the_configuration_declares() {
        assert_eq!(
            declared(CFG),
            vec![
                "LISTEN",
                "DOMAIN",
                "SETTINGS",
                "API",
                "API_CONNECTION",
                "GATEWAY",
                "WORKERS",
                "ALONE"
            ]
        );
        let full = defines(CFG, Variant::Full, &values());
        assert_eq!(
            full.given,
            vec![
                "LISTEN=udp:127.0.0.1:5060",
                "DOMAIN=\"bench.example\"",
                "SETTINGS=\"sip:127.0.0.1:5070;transport=udp\"",
                "API=\"https://127.0.0.1:8443\"",
                "API_CONNECTION=\"settings=>https://127.0.0.1:8443\"",
            ]
        );
        assert_eq!(full.left, vec!["GATEWAY", "WORKERS"]);
        assert!(full.has_alone && full.has_workers);
        let alone = defines(CFG, Variant::Alone, &values());
        assert_eq!(alone.given.last().map(String::as_str), Some("ALONE"));
        assert_eq!(children_of(CFG).as_deref(), Some("4"));
        let two = Values {
            workers: Some(2),
            ..values()
        };
        let full = defines(CFG, Variant::Full, &two);
        assert!(
            full.given.contains(&"WORKERS=2".to_owned()),
            "{:?}",
            full.given
        );
        assert_eq!(full.left, vec!["GATEWAY"]);
    }
}
