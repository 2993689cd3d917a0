//! The SIP load generator: SIPp (Debian's `sip-tester`) as a UAC over one UDP socket. The
//! scenario and the injection file are written at run time; each step is one `sipp` run at a
//! fixed call rate for a fixed number of calls, bounded in time, read back from SIPp's
//! statistics file (`-trace_stat`), its response-time file (`-trace_rtt`) and its exit status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::process::{self, tail};

/// Where Debian installs SIPp.
const SIPP: &str = "/usr/bin/sipp";
/// How long SIPp waits for an answer before the call fails, ms. SIPp runs with `-nr` (no
/// retransmissions): a datagram lost anywhere fails its call after this long.
pub(crate) const RECV_TIMEOUT_MS: u64 = 1_000;
/// SIPp's socket buffers (`-buff_size`; the kernel caps them at `net.core.rmem_max` and
/// `wmem_max`). SIPp's default, 64 KiB, overflows at about 15 000 calls/s on loopback: the
/// generator then drops the servers' answers itself.
pub(crate) const BUFFER_BYTES: u32 = 4 * 1024 * 1024;
/// A step is generator-limited when SIPp created its calls at less than this share of the
/// asked rate.
const GENERATOR_SHARE: f64 = 0.95;

/// The SIPp binary, installed with `apt-get install -y sip-tester` when missing.
pub(crate) fn find_or_install() -> Result<PathBuf, String> {
    process::find_or_install(SIPP, "sip-tester")
}

/// `sipp -v`, e.g. `SIPp v3.6.1-SCTP-PCAP-RTPSTREAM`.
pub(crate) fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.lines()
                .map(str::trim)
                .find(|l| l.starts_with("SIPp v"))
                .map(|l| l.trim_end_matches('.').to_owned())
        })
        .unwrap_or_else(|| "SIPp (version unknown)".to_owned())
}

/// The UAC scenario: INVITE to `sip:[field0]@DOMAIN`; an optional 100, then a 302 whose
/// Contact is a SIP, SIPS or tel URI in angle brackets (anything else, a 404 included, fails
/// the call); then the ACK. The response time is the INVITE's to its 302.
pub(crate) fn scenario(domain: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by sip-settings-bench: one INVITE per call to an account of the injection file,
     a 302 with a Contact expected (an optional 100 first), then the ACK. Anything else, a 404
     included, fails the call. -->
<scenario name="sip-settings-bench redirect">
  <send>
    <![CDATA[
INVITE sip:[field0]@{domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field0]@{domain}>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="302" rtd="true">
    <action>
      <ereg regexp="&lt;(sips?|tel):[^&gt;]+&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
    </action>
  </recv>
  <send>
    <![CDATA[
ACK sip:[field0]@{domain} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[field0]@{domain}>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <Reference variables="contact"/>
</scenario>
"#
    )
}

/// The injection file: the user parts, taken in order (`SEQUENTIAL`) and again from the top.
pub(crate) fn injection(users: &[String]) -> String {
    let mut s = String::from("SEQUENTIAL\n");
    for u in users {
        let _ = writeln!(s, "{u};");
    }
    s
}

/// What is measured: which server, where, and whose CPU to count.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// A short name for files (`sip-settings`, `kamailio`).
    pub name: String,
    /// The server's UDP address.
    pub addr: SocketAddr,
    /// The server's process id.
    pub pid: u32,
    /// Whether to add the CPU time of its direct children (Kamailio's workers).
    pub tree: bool,
    /// More processes whose CPU time (and UDP drops) each step records: the SIP door behind a
    /// proxy, the callee's SIPp.
    pub also: Vec<Watch>,
}

/// A process watched during a step besides the server under test.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    /// A short name for the report.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Its UDP port on 127.0.0.1, whose drops are counted.
    pub port: Option<u16>,
}

/// What a watched process did during a step.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    /// [`Watch::name`].
    pub name: String,
    /// CPU time during the run, s.
    pub cpu: f64,
    /// Datagrams its UDP socket dropped during the run.
    pub drops: Option<u64>,
}

/// Percentiles of the call set-up time (the INVITE sent to its 200 OK received, from SIPp's
/// short message trace, to the microsecond), µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetupTimes {
    /// Calls measured.
    pub calls: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// SIPp's response times (the INVITE to its 302), ms; SIPp counts in whole milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponseTimes {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// One step: a `sipp` run at one rate.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Calls per second asked for.
    pub rate: u32,
    /// Calls asked for.
    pub calls: u64,
    /// Calls SIPp created.
    pub created: u64,
    /// Calls that got their 302 in time.
    pub successful: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Why they failed: SIPp's `Failed…` counters that are not zero.
    pub failures: BTreeMap<String, u64>,
    /// Calls created per second, as SIPp counts it over the run.
    pub achieved: f64,
    /// Response times, when SIPp wrote them.
    pub response: Option<ResponseTimes>,
    /// Wall time of the run, s.
    pub wall: f64,
    /// CPU time of the server during the run, s.
    pub server_cpu: f64,
    /// CPU time of SIPp, s.
    pub sipp_cpu: f64,
    /// SIPp's exit status (0: every call succeeded, 1: some failed).
    pub exit: i32,
    /// Datagrams the server's UDP socket(s) dropped during the run (receive buffer full).
    pub server_drops: Option<u64>,
    /// Datagrams SIPp's UDP socket dropped, at least (sampled every 200 ms while it ran).
    pub sipp_drops: Option<u64>,
    /// The watched processes ([`Target::also`]), in order.
    pub also: Vec<Watched>,
    /// Call set-up times, when the step traced them.
    pub setup: Option<SetupTimes>,
    /// When SIPp started.
    pub started: Instant,
}

impl Step {
    /// No call failed and every call asked for succeeded.
    pub(crate) fn clean(&self) -> bool {
        self.exit == 0 && self.failed == 0 && self.successful == self.calls
    }

    /// SIPp did not create calls at the rate asked (it, not the server, was the limit).
    pub(crate) fn generator_limited(&self) -> bool {
        self.achieved < f64::from(self.rate) * GENERATOR_SHARE
    }

    /// Server CPU per successful call, µs.
    pub(crate) fn server_us_per_call(&self) -> f64 {
        self.server_cpu * 1e6 / crate::report::approx(self.successful.max(1))
    }

    /// Calls failed and every datagram dropped was dropped by SIPp's socket, none by the
    /// server's: the generator, not the server, lost them.
    pub(crate) fn lost_by_generator(&self) -> bool {
        self.failed > 0 && self.server_drops == Some(0) && self.sipp_drops.is_some_and(|d| d > 0)
    }

    /// SIPp CPU per call created, µs.
    pub(crate) fn sipp_us_per_call(&self) -> f64 {
        self.sipp_cpu * 1e6 / crate::report::approx(self.created.max(1))
    }

    /// The failures, `n of m (kind n, …)`.
    pub(crate) fn failure_text(&self) -> String {
        if self.failed == 0 {
            return "none".to_owned();
        }
        let kinds: Vec<String> = self
            .failures
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "{} of {} ({})",
            crate::report::count(self.failed),
            crate::report::count(self.calls),
            if kinds.is_empty() {
                "no reason given".to_owned()
            } else {
                kinds.join(", ")
            }
        )
    }

    /// One progress line.
    pub(crate) fn progress(&self) -> String {
        format!(
            "{} calls/s asked, {:.0} created/s: {} ok, {} failed; server CPU {:.0} % of a core, \
             SIPp {:.0} %",
            self.rate,
            self.achieved,
            self.successful,
            self.failed,
            self.server_cpu * 100.0 / self.wall.max(1e-9),
            self.sipp_cpu * 100.0 / self.wall.max(1e-9)
        )
    }
}

/// A SIPp for one server: the scenario and the injection file are in `dir`.
#[derive(Debug, Clone)]
pub(crate) struct Sipp {
    /// The binary.
    pub bin: PathBuf,
    /// The working directory (one subdirectory per step).
    pub dir: PathBuf,
    /// Where step error logs are kept.
    pub logs: PathBuf,
    /// Microseconds per clock tick.
    pub tick_us: f64,
    /// How long a call lasts at least after SIPp created it (a whole call's pause before the
    /// BYE; zero for a redirect): SIPp's call rate counts it in, the creation rate does not.
    pub hold: Duration,
}

impl Sipp {
    /// SIPp's command line for one step: `calls` calls at `rate` against `target` from
    /// `sipp_port`, in `dir`, killed by SIPp itself after `limit`; its errors to `errors` and
    /// its screen to `screen`.
    fn command(
        &self,
        target: &Target,
        (rate, calls, limit): (u32, u64, Duration),
        (dir, errors, screen): (&Path, &Path, &Path),
        sipp_port: u16,
        trace_setup: bool,
    ) -> anyhow::Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        if trace_setup {
            cmd.args(["-trace_shortmsg", "-shortmessage_file", SHORT_MESSAGES]);
        }
        cmd.arg(target.addr.to_string())
            .args(["-sf", "scenario.xml", "-inf"])
            .arg(self.dir.join("users.csv"))
            .args(["-t", "u1", "-i", "127.0.0.1", "-nr", "-nostdin"])
            .args(["-p", &sipp_port.to_string()])
            .args(["-buff_size", &BUFFER_BYTES.to_string()])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            .args(["-recv_timeout", &RECV_TIMEOUT_MS.to_string()])
            .args([
                "-timeout",
                &format!("{}s", limit.as_secs()),
                "-timeout_error",
            ])
            .args(["-trace_stat", "-stf", "stats.csv", "-fd", "1"])
            .args(["-trace_rtt", "-rtt_freq", &rtt_every(calls).to_string()])
            .args(["-trace_err", "-error_file"])
            .arg(errors)
            .args(["-max_log_size", &max_log(calls, trace_setup).to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(screen)?)
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs `rate × secs` calls at `rate` against `target`; bounded by SIPp's own `-timeout` and
    /// by a kill 20 s later.
    pub(crate) async fn step(&self, target: &Target, rate: u32, secs: f64) -> anyhow::Result<Step> {
        self.step_with(target, rate, secs, false).await
    }

    /// [`Sipp::step`]; with `trace_setup`, SIPp also writes its short message trace (a line per
    /// message, microsecond timestamps), read back into [`Step::setup`].
    pub(crate) async fn step_with(
        &self,
        target: &Target,
        rate: u32,
        secs: f64,
        trace_setup: bool,
    ) -> anyhow::Result<Step> {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "the step's call count: rate × seconds rounded, at least 1 (`as` saturates)"
        )]
        let calls = (f64::from(rate) * secs).round().max(1.0) as u64;
        let dir = self.dir.join(format!("{}-{rate}-{}", target.name, calls));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        fs::copy(self.dir.join("scenario.xml"), dir.join("scenario.xml"))?;
        let limit = Duration::from_secs_f64(secs) + Duration::from_secs(10);
        let sipp_port = process::free_udp_port()?;
        let errors = self
            .logs
            .join(format!("sipp-{}-{rate}-errors.log", target.name));
        let screen = self.logs.join(format!("sipp-{}-{rate}.log", target.name));
        let mut cmd = self.command(
            target,
            (rate, calls, limit),
            (&dir, &errors, &screen),
            sipp_port,
            trace_setup,
        )?;
        let server_cpu = || -> anyhow::Result<u64> {
            if target.tree {
                process::cpu_tree_ticks(target.pid)
            } else {
                process::cpu_ticks(target.pid)
            }
        };
        let server_before = server_cpu()?;
        let server_drops_before = udp_drops(target.addr.port());
        let also_before = watch(&target.also)?;
        let sipp_before = process::reaped_children_ticks()?;
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let deadline = started + limit + Duration::from_secs(10);
        let mut sipp_drops = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status?,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some(d) = udp_drops(sipp_port) {
                        sipp_drops = Some(sipp_drops.unwrap_or(0).max(d));
                    }
                    if Instant::now() > deadline {
                        child.kill().await.ok();
                        bail!(
                            "sipp did not finish within {} s at {rate} calls/s: {}",
                            limit.as_secs() + 10,
                            tail(&screen)
                        );
                    }
                }
            }
        };
        let server_drops = udp_drops(target.addr.port())
            .zip(server_drops_before)
            .map(|(after, before)| after.saturating_sub(before));
        let wall = started.elapsed().as_secs_f64();
        let also = target
            .also
            .iter()
            .zip(also_before)
            .zip(watch(&target.also)?)
            .map(|((w, (cpu0, drops0)), (cpu1, drops1))| Watched {
                name: w.name.clone(),
                cpu: crate::report::approx(cpu1.saturating_sub(cpu0)) * self.tick_us / 1e6,
                drops: drops1.zip(drops0).map(|(a, b)| a.saturating_sub(b)),
            })
            .collect();
        let server_cpu =
            crate::report::approx(server_cpu()?.saturating_sub(server_before)) * self.tick_us / 1e6;
        let sipp_cpu =
            crate::report::approx(process::reaped_children_ticks()?.saturating_sub(sipp_before))
                * self.tick_us
                / 1e6;
        let exit = status.code().unwrap_or(-1);
        if exit != 0 && exit != 1 {
            bail!(
                "sipp exited with status {exit} at {rate} calls/s against {}: {}",
                target.name,
                tail(&screen)
            );
        }
        let stats = fs::read_to_string(dir.join("stats.csv"))
            .with_context(|| format!("no SIPp statistics: {}", tail(&screen)))?;
        let last = last_stats(&stats)?;
        let get = |k: &str| -> anyhow::Result<u64> {
            last.get(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| anyhow!("no {k} in SIPp's statistics"))
        };
        let failures = last
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("Failed")?.strip_suffix("(C)")?;
                let n = v.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
                (name != "Call").then(|| (name.to_owned(), n))
            })
            .collect();
        let response = rtt_file(&dir)
            .and_then(|p| fs::read_to_string(p).ok())
            .and_then(|t| response_times(&t));
        let setup = if trace_setup {
            let path = dir.join(SHORT_MESSAGES);
            let text = fs::read_to_string(&path)
                .with_context(|| format!("no SIPp short message trace: {}", tail(&screen)))?;
            setup_times(&text)
        } else {
            None
        };
        let step = Step {
            rate,
            calls,
            created: get("TotalCallCreated")?,
            successful: get("SuccessfulCall(C)")?,
            failed: get("FailedCall(C)")?,
            failures,
            achieved: creation_rate(
                get("TotalCallCreated")?,
                last.get("CallRate(C)")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0),
                self.hold,
            ),
            response,
            wall,
            server_cpu,
            sipp_cpu,
            exit,
            server_drops,
            sipp_drops,
            also,
            setup,
            started,
        };
        if step.clean() {
            fs::remove_file(&errors).ok();
        }
        fs::remove_dir_all(&dir).ok();
        Ok(step)
    }
}

/// Calls created per second until the last one was: SIPp's `CallRate(C)` is `created` over
/// the whole run, whose end waits `hold` (at least) for the last call to end.
fn creation_rate(created: u64, call_rate: f64, hold: Duration) -> f64 {
    if call_rate <= 0.0 || created == 0 {
        return call_rate.max(0.0);
    }
    let elapsed = crate::report::approx(created) / call_rate;
    let creating = elapsed - hold.as_secs_f64();
    if creating > 0.0 {
        crate::report::approx(created) / creating
    } else {
        call_rate
    }
}

/// The short message trace's file name in a step's directory.
const SHORT_MESSAGES: &str = "short.log";

/// SIPp's `-max_log_size` (it applies to every log, the short message trace included): 1 MB,
/// or room for a trace of every call (about 7 lines of 150 bytes each).
fn max_log(calls: u64, trace_setup: bool) -> u64 {
    if trace_setup {
        (calls * 2_000).max(1_000_000)
    } else {
        1_000_000
    }
}

/// CPU ticks and UDP drops of each watched process, in order.
fn watch(also: &[Watch]) -> anyhow::Result<Vec<(u64, Option<u64>)>> {
    also.iter()
        .map(|w| Ok((process::cpu_ticks(w.pid)?, w.port.and_then(udp_drops))))
        .collect()
}

/// Call set-up times from SIPp's short message trace (`date\ttime\tepoch.micro\tS|R\t
/// call-id\tCSeq:N METHOD\tfirst line`): per Call-ID, the first INVITE sent to the first
/// `200` to it received. None when no call was answered.
pub(crate) fn setup_times(trace: &str) -> Option<SetupTimes> {
    use std::collections::HashMap;
    let micros = |t: &str| -> Option<u64> {
        let (s, us) = t.split_once('.')?;
        Some(s.parse::<u64>().ok()? * 1_000_000 + us.parse::<u64>().ok()?)
    };
    let mut sent: HashMap<&str, u64> = HashMap::new();
    let mut v: Vec<u64> = Vec::new();
    for line in trace.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [_, _, at, dir, call, cseq, first, ..] = f.as_slice() else {
            continue;
        };
        if !cseq.ends_with(" INVITE") {
            continue;
        }
        let Some(at) = micros(at) else { continue };
        match *dir {
            "S" if first.starts_with("INVITE ") => {
                sent.entry(call).or_insert(at);
            }
            "R" if first.starts_with("SIP/2.0 200") => {
                if let Some(t0) = sent.remove(call) {
                    v.push(at.saturating_sub(t0));
                }
            }
            _ => {}
        }
    }
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(SetupTimes {
        calls: v.len() as u64,
        p50: quantile(&v, 0.5),
        p90: quantile(&v, 0.9),
        p99: quantile(&v, 0.99),
        max: quantile(&v, 1.0),
    })
}

/// Datagrams dropped so far by the UDP sockets bound to 127.0.0.1:`port` (all of them: a
/// server may bind one per worker), from `/proc/net/udp`; None when there is none.
pub(crate) fn udp_drops(port: u16) -> Option<u64> {
    let table = fs::read_to_string("/proc/net/udp").ok()?;
    drops_in(&table, port)
}

fn drops_in(table: &str, port: u16) -> Option<u64> {
    let local = format!("0100007F:{port:04X}");
    let mut found = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) {
            continue;
        }
        let drops = fields.last().and_then(|d| d.parse::<u64>().ok())?;
        found = Some(found.unwrap_or(0) + drops);
    }
    found
}

/// The last line of SIPp's statistics file, by column name.
pub(crate) fn last_stats(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().context("empty SIPp statistics file")?;
    let last = lines
        .next_back()
        .context("SIPp statistics without a line of figures")?;
    Ok(header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// How often SIPp writes its response times: it writes them every N calls and drops the
/// remainder at exit, so N divides the calls (the largest divisor up to 1 000).
fn rtt_every(calls: u64) -> u64 {
    (1..=calls.clamp(1, 1_000))
        .rev()
        .find(|f| calls.is_multiple_of(*f))
        .unwrap_or(1)
}

/// SIPp's `*_rtt.csv` in a step's directory.
fn rtt_file(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_rtt.csv"))
}

/// Percentiles of SIPp's response-time file (`date_ms;response_time_ms;rtd_no`).
pub(crate) fn response_times(text: &str) -> Option<ResponseTimes> {
    let mut v: Vec<u64> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(';').nth(1))
        .filter_map(|t| t.trim().parse::<f64>().ok())
        .map(|ms| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "SIPp's response time rounded to the whole ms the report shows; negative \
                          reads as 0 and `as` saturates, so an absurd value stays visibly absurd"
            )]
            let whole = ms.round().max(0.0) as u64;
            whole
        })
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(ResponseTimes {
        p50: quantile(&v, 0.5),
        p99: quantile(&v, 0.99),
        max: quantile(&v, 1.0),
    })
}

/// The `q` quantile of sorted, non-empty values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the nearest rank, clamped to 1..=n below (`as` saturates)"
    )]
    let rank = (crate::report::approx(n as u64) * q).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clean step of `calls` calls at `rate`.
    pub(crate) fn step(rate: u32, calls: u64) -> Step {
        Step {
            rate,
            calls,
            created: calls,
            successful: calls,
            failed: 0,
            failures: BTreeMap::new(),
            achieved: f64::from(rate) * 0.998,
            response: None,
            wall: 4.0,
            server_cpu: 0.4,
            sipp_cpu: 0.2,
            exit: 0,
            server_drops: Some(0),
            sipp_drops: None,
            also: Vec::new(),
            setup: None,
            started: Instant::now(),
        }
    }

    #[test]
    fn the_last_statistics_line_is_read_by_name() {
        let text = "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);FailedTimeoutOnRecv(C);\n\
                    a;0;0;0;0;\n\
                    b;100;97;3;3;\n";
        let last = last_stats(text).unwrap();
        assert_eq!(last["TotalCallCreated"], "100");
        assert_eq!(last["FailedTimeoutOnRecv(C)"], "3");
        assert!(last_stats("only;a;header\n").is_err());
    }

    #[test]
    fn set_up_times_are_read_from_the_short_message_trace() {
        let line = |at: &str, dir: &str, call: &str, cseq: &str, first: &str| {
            format!("2026-12-05\t08:13:49.725106\t{at}\t{dir}\t{call}\t{cseq}\t{first}\n")
        };
        let mut trace = String::new();
        trace += &line(
            "100.000100",
            "S",
            "1-x",
            "CSeq:1 INVITE",
            "INVITE sip:a@b SIP/2.0",
        );
        trace += &line(
            "100.000300",
            "R",
            "1-x",
            "CSeq:1 INVITE",
            "SIP/2.0 100 Trying",
        );
        trace += &line(
            "100.000900",
            "S",
            "2-x",
            "CSeq:1 INVITE",
            "INVITE sip:a@b SIP/2.0",
        );
        trace += &line("100.001600", "R", "1-x", "CSeq:1 INVITE", "SIP/2.0 200 OK");
        trace += &line(
            "100.001700",
            "S",
            "1-x",
            "CSeq:1 ACK",
            "ACK sip:a@c SIP/2.0",
        );
        trace += &line("100.004900", "R", "2-x", "CSeq:1 INVITE", "SIP/2.0 200 OK");
        trace += &line("100.005000", "R", "1-x", "CSeq:2 BYE", "SIP/2.0 200 OK");
        // A retransmitted 200 counts once; a call without its 200 not at all.
        trace += &line("100.009000", "R", "2-x", "CSeq:1 INVITE", "SIP/2.0 200 OK");
        trace += &line(
            "100.010000",
            "S",
            "3-x",
            "CSeq:1 INVITE",
            "INVITE sip:a@b SIP/2.0",
        );
        let t = setup_times(&trace).unwrap();
        assert_eq!((t.calls, t.p50, t.p99, t.max), (2, 1_500, 4_000, 4_000));
        assert!(setup_times("").is_none());
    }

    #[test]
    fn the_creation_rate_leaves_the_last_call_out() {
        assert!((creation_rate(4_000, 998.0, Duration::ZERO) - 998.0).abs() < 1e-9);
        // 40 calls in 1.1 s of which the last 0.1 s only waited for the last call to end.
        let r = creation_rate(40, 40.0 / 1.1, Duration::from_millis(100));
        assert!((r - 40.0).abs() < 1e-6, "{r}");
        assert_eq!(creation_rate(0, 0.0, Duration::from_millis(100)), 0.0);
    }

    #[test]
    fn response_times_are_written_for_every_call() {
        assert_eq!(rtt_every(200), 200);
        assert_eq!(rtt_every(40_000), 1_000);
        assert_eq!(rtt_every(31_000), 1_000);
        assert_eq!(rtt_every(1_009), 1);
        assert_eq!(rtt_every(2_500), 625);
    }

    #[test]
    fn drops_are_added_up_over_the_sockets_of_a_port() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1: 0100007F:61E4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 3\n\
            2: 0100007F:61E4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 4\n\
            3: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 9\n";
        assert_eq!(drops_in(table, 25060), Some(7));
        assert_eq!(drops_in(table, 5060), Some(9));
        assert_eq!(drops_in(table, 5061), None);
    }

    #[test]
    fn response_time_percentiles() {
        let mut text = String::from("Date_ms;response_time_ms;rtd_no\n");
        for i in 0..100 {
            let _ = writeln!(text, "1.0;{};1", if i < 98 { 0 } else { 7 });
        }
        let r = response_times(&text).unwrap();
        assert_eq!((r.p50, r.p99, r.max), (0, 7, 7));
        assert!(response_times("Date_ms;response_time_ms;rtd_no\n").is_none());
    }

    #[test]
    fn the_scenario_names_the_domain_and_checks_the_contact() {
        let s = scenario("bench.example");
        assert!(s.contains("INVITE sip:[field0]@bench.example SIP/2.0"));
        assert!(s.contains(r#"recv response="302""#));
        assert!(s.contains(r#"check_it="true""#));
        assert_eq!(
            injection(&["user0".into(), "user1".into()]),
            "SEQUENTIAL\nuser0;\nuser1;\n"
        );
    }

    #[test]
    fn a_step_is_clean_only_when_every_call_succeeded() {
        let mut s = step(1000, 4000);
        assert!(s.clean());
        assert!(!s.generator_limited());
        s.achieved = 900.0;
        assert!(s.generator_limited());
        s.successful = 3999;
        s.failed = 1;
        s.exit = 1;
        s.failures.insert("TimeoutOnRecv".into(), 1);
        assert!(!s.clean());
        assert_eq!(s.failure_text(), "1 of 4 000 (TimeoutOnRecv 1)");
        assert!((s.server_us_per_call() - 100.0).abs() < 0.1);
    }
}
