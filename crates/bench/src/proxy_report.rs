//! The report of `proxy`: a Markdown section of docs/benchmarks.md (between its own marks, so
//! that `proxy` alone replaces only it) and the same figures as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::provision::DOMAIN;
use crate::proxy::{Measured, Outcome, PAUSE_MS, PLAN, SETUP_SECS, TARGET_RATIO, Variant};
use crate::report::{self, Machine};
use crate::sipp::{self, Step};

/// Marks around the section in docs/benchmarks.md.
pub(crate) const BEGIN: &str = "<!-- sip-proxy: begin -->";
/// See [`BEGIN`].
pub(crate) const END: &str = "<!-- sip-proxy: end -->";

/// The processes whose CPU time a step records, in the report's order.
const WHO: [&str; 4] = ["Kamailio", "sip-settings", "caller", "callee"];

/// CPU seconds of each of [`WHO`] during a step.
fn cpu(s: &Step) -> [f64; 4] {
    let of = |name: &str| {
        s.also
            .iter()
            .find(|w| w.name == name)
            .map_or(0.0, |w| w.cpu)
    };
    [s.server_cpu, of("sip-settings"), s.sipp_cpu, of("callee")]
}

/// CPU per successful call, µs.
fn per_call(s: &Step) -> [f64; 4] {
    cpu(s).map(|c| c * 1e6 / report::approx(s.successful.max(1)))
}

/// CPU as a share of one core, %.
fn share(s: &Step) -> [f64; 4] {
    cpu(s).map(|c| c * 100.0 / s.wall.max(1e-9))
}

/// Drops of a watched socket during a step.
fn drops_of(s: &Step, name: &str) -> Option<u64> {
    s.also.iter().find(|w| w.name == name).and_then(|w| w.drops)
}

fn drops(d: Option<u64>) -> String {
    d.map_or_else(|| "?".to_owned(), report::count)
}

fn ms(us: u64) -> String {
    format!("{:.2}", report::approx(us) / 1000.0)
}

fn pass(ok: bool) -> &'static str {
    if ok { "**pass**" } else { "**FAIL**" }
}

/// The highest passing rate and its ratio full / alone.
pub(crate) fn ratio(o: &Outcome) -> Option<f64> {
    let alone = f64::from(o.alone.search.clean_rate());
    (alone > 0.0).then(|| f64::from(o.full.search.clean_rate()) / alone)
}

fn failing_cell(m: &Measured) -> String {
    match &m.search.first_failing {
        Some(s) if PLAN.passes(s) || (s.clean() && s.generator_limited()) => format!(
            "{}: no failed call, but SIPp created only {:.0} calls/s (the generator's limit)",
            report::count(s.rate),
            s.achieved
        ),
        Some(s) => format!(
            "{}: {} failed or unfinished ({}); drops: Kamailio {}, sip-settings {}, caller {}, \
             callee {}",
            report::count(s.rate),
            report::count(s.calls.saturating_sub(s.successful)),
            s.failure_text(),
            drops(s.server_drops),
            drops(drops_of(s, "sip-settings")),
            drops(s.sipp_drops),
            drops(drops_of(s, "callee")),
        ),
        None => "none up to the last step".to_owned(),
    }
}

fn setup_cell(m: &Measured) -> String {
    match m.setup.as_ref().and_then(|s| s.setup) {
        Some(t) => format!(
            "{} / {} / {} / {} ({} calls)",
            ms(t.p50),
            ms(t.p90),
            ms(t.p99),
            ms(t.max),
            report::count(t.calls)
        ),
        None => "–".to_owned(),
    }
}

fn seen_cell(m: &Measured) -> String {
    let devices = match &m.devices {
        Ok(n) => format!("{n} device(s) of the callee listed after its REGISTER"),
        Err(e) if m.variant == Variant::Alone => first_line(e),
        Err(e) => format!("devices not readable ({})", first_line(e)),
    };
    let placed = match &m.records {
        Ok(r) => {
            format!(
                "{} call records of the caller for {} calls that succeeded ({} when the last call \
             ended{})",
                report::count(r.drained.saturating_sub(r.before)),
                report::count(r.calls),
                report::count(r.at_end.saturating_sub(r.before)),
                if r.still_arriving {
                    format!(
                        ", still arriving {:.0} s later",
                        crate::proxy::DRAIN_LIMIT.as_secs_f64()
                    )
                } else if r.drained > r.at_end {
                    format!(", the last {:.0} s later", r.drain_secs)
                } else {
                    String::new()
                }
            ) + &drain_text(r)
        }
        Err(e) => format!("call records not readable ({})", first_line(e)),
    };
    format!("{devices}; {placed}")
}

/// Kamailio's options as the report shows them: each define by name with its value, files and
/// addresses of this run shortened (`…/service.crt`, `127.0.0.1:PORT`).
fn shown_args(args: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-A" && args.get(i + 1).is_some_and(|a| a == "ALONE") {
            i += 2;
            continue;
        }
        out.push(shorten(&args[i]));
        i += 1;
    }
    out.join(" ")
}

/// A `NAME=value` define with a file name cut to its last part and a port number to `PORT`.
fn shorten(arg: &str) -> String {
    let Some((name, value)) = arg.split_once('=') else {
        return arg.to_owned();
    };
    let value = value.trim_matches('"');
    let port = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let short = if value.starts_with('/') {
        format!("…/{}", value.rsplit('/').next().unwrap_or(value))
    } else {
        match value.rsplit_once(':') {
            Some((head, p)) if port(p) => format!("{head}:PORT"),
            Some((head, rest)) => match rest.split_once(';') {
                Some((p, tail)) if port(p) => format!("{head}:PORT;{tail}"),
                _ => value.to_owned(),
            },
            None => value.to_owned(),
        }
    };
    format!("{name}={short}")
}

/// What posting the records left after the calls cost, when some were.
fn drain_text(r: &crate::proxy::Records) -> String {
    let Some(rate) = r.drain_rate() else {
        return String::new();
    };
    let n = report::approx(r.drained.saturating_sub(r.at_end).max(1));
    format!(
        "; after the calls: {rate:.0} records/s, CPU per record {:.0} µs Kamailio + {:.0} µs \
         sip-settings (of {:.0} µs wall per record; an upper bound: it also holds what both do \
         after a load, Kamailio freeing its ended dialogs, sip-settings checkpointing its WAL); \
         TCP connections accepted on the machine \
         meanwhile: {} ({} per record)",
        r.drain_cpu.0 * 1e6 / n,
        r.drain_cpu.1 * 1e6 / n,
        1e6 / rate,
        r.connections.map_or("?".to_owned(), report::count),
        r.connections
            .map_or("?".to_owned(), |c| format!("{:.2}", report::approx(c) / n))
    )
}

fn first_line(e: &str) -> String {
    let line = e.lines().next().unwrap_or_default();
    line.chars().take(120).collect()
}

/// The section, between [`BEGIN`] and [`END`].
pub(crate) fn markdown(o: &Outcome, command: &str, root: &Path, smoke: bool) -> String {
    let mut s = String::new();
    let machine = Machine::read();
    let _ = writeln!(s, "{BEGIN}\n## Whole calls through Kamailio\n");
    setup_list(&mut s, o, (command, root), &machine, smoke);
    rate_rows(&mut s, o, smoke);
    cpu_rows(&mut s, o, &machine);
    steps_table(&mut s, o);
    let _ = writeln!(s, "{END}");
    s
}

/// The section's list of how it was measured: command, machine, proxy, server, calls, search
/// and set-up time.
fn setup_list(
    s: &mut String,
    o: &Outcome,
    (command, root): (&str, &Path),
    machine: &Machine,
    smoke: bool,
) {
    let _ = writeln!(
        s,
        "* Command: `{command}`; run {} UTC, commit {}, {:.0} s; load average before: {}, \
         after: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        report::commit(root),
        o.seconds,
        o.load_before,
        o.load_after
    );
    let _ = writeln!(
        s,
        "* Machine: {} cores, {}, {}, {}. Kamailio, sip-settings, both SIPps and the benchmark \
         share them.",
        machine.cores, machine.cpu, machine.memory, machine.kernel
    );
    if smoke {
        let _ = writeln!(
            s,
            "* **Smoke run**: {} calls/s for 1 s per variant and a traced run at {} calls/s, to \
             check that everything works; the figures are not representative.",
            PLAN.smoke_rates
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            o.common_rate
        );
    }
    let _ = writeln!(
        s,
        "* Proxy: {} (Debian package) with `contrib/kamailio/kamailio.cfg` as shipped, \
         `children={}` ({} processes in all), `{}`. **Kamailio alone**: the same file with \
         `-A ALONE` (registrar, location lookup, relay; sip-settings is not asked){}. \
         **Kamailio + sip-settings**: every call decided by sip-settings as the file does it \
         (the SIP door on UDP, and whatever the file posts to the HTTPS API with a service \
         certificate of the service's CA){}. Both with the TLSF memory manager (`-x tlsf`: \
         the package's default, q_malloc, took a quarter of Kamailio's CPU searching its free \
         lists) and 2 GiB of shared memory (`-m`: 512 MiB ran out, of transactions and \
         dialogs, before the CPU did, at 3 000 calls/s with sip-settings and 4 500 alone).",
        o.kamailio_version,
        o.children.as_deref().unwrap_or("its default"),
        o.full.processes,
        shown_args(&o.full.args),
        if o.defines.has_alone {
            ""
        } else {
            " — **this configuration has no `ALONE` define: both variants took the same path, \
             the ratio means nothing**"
        },
        if o.defines.left.is_empty() {
            String::new()
        } else {
            format!(
                "; defines left at the file's default: {}",
                o.defines.left.join(", ")
            )
        }
    );
    let _ = writeln!(
        s,
        "* sip-settings: `sip-settings serve --sip-listen udp:127.0.0.1:PORT` and its HTTPS \
         listener, embedded store, domain `{DOMAIN}` with the caller user0 and the callee user1 \
         (postpaid, no forwarding): one process for both variants."
    );
    let _ = writeln!(
        s,
        "* Calls: {} as the caller (`-t u1`, one socket, {} KiB buffers): INVITE with SDP from \
         user0 to user1, 100/180 optional, 200, ACK along the recorded route, {PAUSE_MS} ms, \
         BYE, its 200. The callee's phone: a SIPp UAS that registers through Kamailio \
         (REGISTER, `Expires: 3600`) and answers every INVITE 180 then 200 with SDP, then the \
         BYE. Retransmissions off on the caller (`-nr`), {} ms to each answer: a datagram lost \
         anywhere fails its call. Before the load, 5 calls must all succeed.",
        o.sipp_version,
        sipp::BUFFER_BYTES / 1024,
        sipp::RECV_TIMEOUT_MS
    );
    if !smoke {
        let _ = writeln!(
            s,
            "* Rate search per variant, the full path first: {:.0} s of calls at {} calls/s, up to the \
             first rate at which {:.0} % of the calls or more fail (or do not finish), or SIPp \
             cannot create them at the rate asked; then {} bisections in steps of {}. A failing \
             rate is run once more and fails only when both runs do; both are in the steps \
             table. No new rate after {} s.",
            PLAN.step_secs,
            PLAN.ladder_text(),
            PLAN.max_failed * 100.0,
            PLAN.bisections,
            PLAN.grain,
            PLAN.budget.map_or(0, |b| b.as_secs())
        );
    }
    let _ = writeln!(
        s,
        "* Call set-up time: the INVITE sent to its 200 received, per call, from SIPp's short \
         message trace (microsecond timestamps; SIPp's own response times are whole \
         milliseconds), in one run of {:.0} s per variant at the common rate of {} calls/s \
         (half the lower of the two highest rates, which both variants sustain; after both \
         searches, the full path in a Kamailio started anew).",
        if smoke { 2.0 } else { SETUP_SECS },
        report::count(o.common_rate)
    );
}

/// The figures table's head and its rows of rates and call set-up times.
fn rate_rows(s: &mut String, o: &Outcome, smoke: bool) {
    let (full, alone) = (&o.full, &o.alone);
    let r = ratio(o);
    let _ = writeln!(
        s,
        "\n| figure | {} | {} | ratio full / alone |",
        Variant::Full.label(),
        Variant::Alone.label()
    );
    let _ = writeln!(s, "|---|--:|--:|--:|");
    let _ = writeln!(
        s,
        "| highest rate with < {:.0} % failed calls, calls/s | **{}** | **{}** | **{}** (target \
         ≥ {TARGET_RATIO}: {}) |",
        PLAN.max_failed * 100.0,
        report::count(full.search.clean_rate()),
        report::count(alone.search.clean_rate()),
        r.map_or("–".to_owned(), |r| format!("{r:.2}")),
        if smoke {
            "smoke run, not measured"
        } else {
            r.map_or("no baseline", |r| pass(r >= TARGET_RATIO))
        }
    );
    let _ = writeln!(
        s,
        "| lowest rate that failed | {} | {} | |",
        failing_cell(full),
        failing_cell(alone)
    );
    let st = |m: &Measured, f: fn(&crate::sipp::SetupTimes) -> u64| {
        m.setup
            .as_ref()
            .and_then(|s| s.setup)
            .map(|t| report::approx(f(&t)))
    };
    let _ = writeln!(
        s,
        "| call set-up time at {} calls/s, p50 / p90 / p99 / max, ms | {} | {} | p50 {}, p99 {} |",
        report::count(o.common_rate),
        setup_cell(full),
        setup_cell(alone),
        st(full, |t| t.p50).map_or("–".to_owned(), |a| report::ratio(a, st(alone, |t| t.p50))),
        st(full, |t| t.p99).map_or("–".to_owned(), |a| report::ratio(a, st(alone, |t| t.p99))),
    );
    let _ = writeln!(
        s,
        "| calls failed in that run | {} | {} | |",
        full.setup
            .as_ref()
            .map_or("–".to_owned(), Step::failure_text),
        alone
            .setup
            .as_ref()
            .map_or("–".to_owned(), Step::failure_text)
    );
}

/// The figures table's rows of CPU, memory and what sip-settings saw, and where the difference
/// in CPU goes.
fn cpu_rows(s: &mut String, o: &Outcome, machine: &Machine) {
    let (full, alone) = (&o.full, &o.alone);
    let (fb, ab) = (full.search.best.as_ref(), alone.search.best.as_ref());
    for (i, who) in WHO.iter().enumerate() {
        let f = fb.map(|s| per_call(s)[i]);
        let a = ab.map(|s| per_call(s)[i]);
        let _ = writeln!(
            s,
            "| CPU per call at the highest passing rate, µs: {who}{} | {} | {} | {} |",
            if i == 0 { " (all processes)" } else { "" },
            f.map_or("–".to_owned(), |c| format!("{c:.0}")),
            a.map_or("–".to_owned(), |c| format!("{c:.0}")),
            f.map_or("–".to_owned(), |c| report::ratio(c, a)),
        );
    }
    let total = |b: Option<&Step>| b.map(|s| per_call(s).iter().sum::<f64>());
    let _ = writeln!(
        s,
        "| CPU per call at the highest passing rate, µs: all four | **{}** | **{}** | {} |",
        total(fb).map_or("–".to_owned(), |c| format!("{c:.0}")),
        total(ab).map_or("–".to_owned(), |c| format!("{c:.0}")),
        total(fb).map_or("–".to_owned(), |c| report::ratio(c, total(ab)))
    );
    let shares = |b: Option<&Step>| {
        b.map_or("–".to_owned(), |st| {
            let sh = share(st);
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} = {:.0} % of one core",
                sh[0],
                sh[1],
                sh[2],
                sh[3],
                sh.iter().sum::<f64>()
            )
        })
    };
    let _ = writeln!(
        s,
        "| CPU at that rate, Kamailio / sip-settings / caller / callee, % of one core ({} cores \
         in all) | {} | {} | |",
        machine.cores,
        shares(fb),
        shares(ab)
    );
    let _ = writeln!(
        s,
        "| Kamailio: processes; peak resident memory, added up | {}; {} | {}; {} | |",
        full.processes,
        report::mib(full.hwm_kib),
        alone.processes,
        report::mib(alone.hwm_kib)
    );
    let _ = writeln!(
        s,
        "| what sip-settings saw | {} | {} | |",
        seen_cell(full),
        seen_cell(alone)
    );
    if let Some(l) = &o.latency {
        let calls = full.successful();
        let _ = writeln!(
            s,
            "| sip-settings' SIP door over the run: INVITEs decided (per call of the full path); \
             decision latency p50 / p99 / max, µs | {} ({:.2} per call); {} / {} / {} | n/a | |",
            report::count(l.count),
            report::approx(l.count) / report::approx(calls.max(1)),
            l.p50,
            l.p99,
            l.max
        );
    }
    if let (Some(f), Some(a)) = (fb, ab) {
        let (pf, pa) = (per_call(f), per_call(a));
        let parts: Vec<String> = WHO
            .iter()
            .enumerate()
            .map(|(i, who)| format!("{who} {:+.0}", pf[i] - pa[i]))
            .collect();
        let _ = writeln!(
            s,
            "\nWhere the difference goes: at its highest passing rate each variant kept {:.0} % \
             (full) and {:.0} % (alone) of the {} cores busy with these four processes; a call \
             of the full path costs {:+.0} µs of CPU more than one of Kamailio alone ({}).",
            share(f).iter().sum::<f64>() / report::approx(machine.cores.max(1) as u64),
            share(a).iter().sum::<f64>() / report::approx(machine.cores.max(1) as u64),
            machine.cores,
            pf.iter().sum::<f64>() - pa.iter().sum::<f64>(),
            parts.join(", ")
        );
    }
}

/// The table of every SIPp run, in order.
fn steps_table(s: &mut String, o: &Outcome) {
    let (full, alone) = (&o.full, &o.alone);
    let _ = writeln!(
        s,
        "\n### Steps\n\nEvery SIPp run, in order. CPU: user + system time from `/proc` over the \
         run's wall time, % of one core (Kamailio: all its processes). Set-up: SIPp's response \
         time of the 200, whole ms; the traced runs at the common rate give it to the µs. \
         Drops: datagrams dropped by a full UDP receive buffer (`/proc/net/udp`; the caller's \
         sampled every 200 ms, so at least).\n"
    );
    let _ = writeln!(
        s,
        "| variant | calls/s asked | calls | created/s | succeeded | failed | set-up p50 / p99 / \
         max, ms | CPU Kamailio | CPU sip-settings | CPU caller | CPU callee | call records \
         reaching sip-settings, /s | drops Kamailio / sip-settings / caller / callee |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|");
    for m in [alone, full] {
        for (st, traced) in m
            .search
            .steps
            .iter()
            .map(|st| (st, false))
            .chain(m.setup.iter().map(|st| (st, true)))
        {
            let sh = share(st);
            let setup = match (traced, st.setup, st.response) {
                (true, Some(t), _) => {
                    format!("{} / {} / {} (traced)", ms(t.p50), ms(t.p99), ms(t.max))
                }
                (_, _, Some(r)) => format!("{} / {} / {}", r.p50, r.p99, r.max),
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} | {} | {setup} | {:.0} % | {:.0} % | {:.0} % | {:.0} % \
                 | {} | {} / {} / {} / {} |",
                m.variant.name(),
                report::count(st.rate),
                report::count(st.calls),
                st.achieved,
                report::count(st.successful),
                st.failure_text(),
                sh[0],
                sh[1],
                sh[2],
                sh[3],
                m.records_rate(st)
                    .map_or("–".to_owned(), |r| format!("{r:.0}")),
                drops(st.server_drops),
                drops(drops_of(st, "sip-settings")),
                drops(st.sipp_drops),
                drops(drops_of(st, "callee")),
            );
        }
    }
}

fn step_json(s: &Step) -> Value {
    let [k, ss, caller, callee] = cpu(s);
    json!({
        "rate": s.rate,
        "calls": s.calls,
        "created_per_s": s.achieved,
        "successful": s.successful,
        "failed": s.failed,
        "failures": s.failures,
        "passes": PLAN.passes(s),
        "wall_s": s.wall,
        "cpu_s": {"kamailio": k, "sip_settings": ss, "caller": caller, "callee": callee},
        "response_ms": s.response.map(|r| json!({"p50": r.p50, "p99": r.p99, "max": r.max})),
        "setup_us": s.setup.map(|t| json!({
            "calls": t.calls, "p50": t.p50, "p90": t.p90, "p99": t.p99, "max": t.max
        })),
        "drops": {
            "kamailio": s.server_drops,
            "sip_settings": drops_of(s, "sip-settings"),
            "caller": s.sipp_drops,
            "callee": drops_of(s, "callee"),
        },
    })
}

fn measured_json(m: &Measured) -> Value {
    json!({
        "highest_rate": m.search.clean_rate(),
        "best": m.search.best.as_ref().map(step_json),
        "best_records_per_s": m.search.best.as_ref().and_then(|s| m.records_rate(s)),
        "first_failing": m.search.first_failing.as_ref().map(step_json),
        "setup": m.setup.as_ref().map(step_json),
        "kamailio_args": m.args,
        "kamailio_processes": m.processes,
        "kamailio_hwm_kib": m.hwm_kib,
        "callee_devices": m.devices.as_ref().ok(),
        "caller_records": m.records.as_ref().ok().map(|r| json!({
            "calls": r.calls, "before": r.before, "at_end": r.at_end, "drained": r.drained,
            "drain_s": r.drain_secs, "still_arriving": r.still_arriving,
            "drain_records_per_s": r.drain_rate(),
            "drain_cpu_s": {"kamailio": r.drain_cpu.0, "sip_settings": r.drain_cpu.1},
            "connections_accepted": r.connections,
        })),
        "steps": m.search.steps.iter().map(step_json).collect::<Vec<_>>(),
    })
}

/// The figures as JSON.
pub(crate) fn json(o: &Outcome) -> Value {
    json!({
        "when": chrono::Utc::now().to_rfc3339(),
        "load_before": o.load_before,
        "load_after": o.load_after,
        "seconds": o.seconds,
        "kamailio": o.kamailio_version,
        "sipp": o.sipp_version,
        "children": o.children,
        "has_alone": o.defines.has_alone,
        "defines_left_at_default": o.defines.left,
        "common_rate": o.common_rate,
        "ratio": ratio(o),
        "target_ratio": TARGET_RATIO,
        "max_failed_share": PLAN.max_failed,
        "pause_ms": PAUSE_MS,
        "full": measured_json(&o.full),
        "alone": measured_json(&o.alone),
        "sip_decisions": o.latency.map(|l| json!({
            "count": l.count, "p50_us": l.p50, "p90_us": l.p90, "p99_us": l.p99, "max_us": l.max
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailio_options_are_shown_without_this_run_s_files_and_ports() {
        let args: Vec<String> = [
            "-A",
            "LISTEN=udp:127.0.0.1:43305",
            "-A",
            "SETTINGS=\"sip:127.0.0.1:40247;transport=udp\"",
            "-A",
            "API_CERT=\"/work/x/run-1/kamailio-tls/service.crt\"",
            "-A",
            "API_CONNECTION=\"settings=>https://127.0.0.1:39569\"",
            "-A",
            "DOMAIN=\"bench.example\"",
            "-A",
            "ALONE",
            "-m",
            "512",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            shown_args(&args),
            "-A LISTEN=udp:127.0.0.1:PORT -A SETTINGS=sip:127.0.0.1:PORT;transport=udp -A \
             API_CERT=…/service.crt -A API_CONNECTION=settings=>https://127.0.0.1:PORT -A \
             DOMAIN=bench.example -m 512"
        );
    }
}
