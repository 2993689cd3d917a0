//! The SIP section of docs/benchmarks.md: what was measured, both servers side by side with
//! the ratio and the targets (pass or fail as measured), the half-rate run and every SIPp run;
//! kept between two marks so that `sip` alone replaces only its own section.

use std::fmt::Write as _;
use std::path::Path;

use crate::kamailio;
use crate::provision::DOMAIN;
use crate::report::{self, Machine};
use crate::sip::{
    HALF_SECS, HalfRun, Measured, P99_TARGET_US, PLAN, RSS_TARGET_MIB, RULES_PER_ACCOUNT,
};
use crate::sipp::{self, Step};

/// Marks around the section in docs/benchmarks.md.
pub(crate) const BEGIN: &str = "<!-- sip-redirect: begin -->";
/// See [`BEGIN`].
pub(crate) const END: &str = "<!-- sip-redirect: end -->";

/// Everything the section shows.
#[derive(Debug)]
pub(crate) struct Section<'a> {
    pub command: &'a str,
    pub root: &'a Path,
    pub smoke: bool,
    pub accounts: usize,
    pub forwarding_accounts: usize,
    pub load_before: String,
    pub sipp_version: String,
    pub kamailio_version: Option<String>,
    pub kamailio: Option<Measured>,
    pub ours: Measured,
    pub half: Option<HalfRun>,
    /// The same rate with [`RULES_PER_ACCOUNT`] forwarding rules before every account's own.
    pub rules: Option<HalfRun>,
    pub seconds: f64,
}

fn pass(ok: bool) -> &'static str {
    if ok { "**pass**" } else { "**FAIL**" }
}

fn response_cell(s: Option<&Step>) -> String {
    match s.and_then(|s| s.response) {
        Some(r) => format!("{} / {} / {}", r.p50, r.p99, r.max),
        None => "–".to_owned(),
    }
}

fn failing_cell(m: &Measured) -> String {
    match &m.search.first_failing {
        Some(s) if s.clean() => format!(
            "{}: no failed call, but SIPp created only {:.0} calls/s (the generator's limit)",
            report::count(s.rate),
            s.achieved
        ),
        Some(s) => format!(
            "{}: {} failed; datagrams dropped by the server's socket {}, by SIPp's {}{}",
            report::count(s.rate),
            s.failure_text(),
            drops(s.server_drops),
            drops(s.sipp_drops),
            if s.lost_by_generator() {
                " (all lost by SIPp, none by the server: this limit is the generator's, the \
                 server's own is higher)"
            } else {
                ""
            }
        ),
        None => "none up to the last step".to_owned(),
    }
}

fn drops(d: Option<u64>) -> String {
    d.map_or_else(|| "?".to_owned(), report::count)
}

/// The highest clean rate, and whether it took a second run.
fn best_cell(m: &Measured) -> String {
    let rate = m.search.clean_rate();
    let retried = m
        .search
        .steps
        .iter()
        .any(|s| s.rate == rate && !PLAN.passes(s));
    format!(
        "**{}**{}",
        report::count(rate),
        if retried {
            " (clean on its second run)"
        } else {
            ""
        }
    )
}

impl Section<'_> {
    /// The section, between [`BEGIN`] and [`END`].
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let machine = Machine::read();
        let _ = writeln!(s, "{BEGIN}\n## SIP redirect\n");
        self.setup_list(&mut s, &machine);
        self.figures_table(&mut s);
        self.half_table(&mut s);
        self.rules_table(&mut s);
        self.steps_table(&mut s);
        let _ = writeln!(s, "{END}");
        s
    }

    /// The section's list of how it was measured: command, machine, server, baseline and load
    /// generator.
    fn setup_list(&self, s: &mut String, machine: &Machine) {
        let _ = writeln!(
            s,
            "* Command: `{}`; run {} UTC, commit {}, {:.0} s; load average before: {}",
            self.command,
            chrono::Utc::now().format("%Y-%m-%d %H:%M"),
            report::commit(self.root),
            self.seconds,
            self.load_before
        );
        let _ = writeln!(
            s,
            "* Machine: {} cores, {}, {}, {}. SIPp, the server and the benchmark share them.",
            machine.cores, machine.cpu, machine.memory, machine.kernel
        );
        if self.smoke {
            let _ = writeln!(
                s,
                "* **Smoke run**: {} calls/s for 1 s against each server, to check that \
                 everything works; the figures are not representative.",
                PLAN.smoke_rates
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
        }
        let _ = writeln!(
            s,
            "* sip-settings: `sip-settings serve --sip-listen udp:127.0.0.1:PORT \
             --sip-registrations hint` (the HTTPS listener on a free port beside it; no proxy \
             feeds registrations here, so every account counts as registered, as the proxy's \
             hint says), embedded store as for the HTTPS figures; {} \
             accounts user0…user{} in `{DOMAIN}`, {} of them with forwarding stored through \
             `set_diversions`: every fourth FUNC to a number, every fourth FUNC to another \
             account, every fourth FBUS to a number and FNOA to an account (answered with the \
             ring target, as are those without forwarding). Before the load every kind of \
             account's answer is read in full (the target in Contact and a Diversion header when \
             forwarding, `;ring=` and X-Ring-Time when not) and an unknown account must get 404.",
            report::count(self.accounts),
            self.accounts.saturating_sub(1),
            report::count(self.forwarding_accounts)
        );
        match &self.kamailio_version {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "* Baseline: {v} (Debian package), `children={}` (one UDP worker per core; \
                     {} processes in all), modules `sl` and `textops` only: every INVITE \
                     answered statelessly with a fixed `302` (Contact and Diversion added by \
                     `append_to_reply`), ACK absorbed. It looks nothing up: the ceiling of a C \
                     SIP stack here, as nginx's static file is for HTTPS.",
                    kamailio::CHILDREN,
                    self.kamailio.as_ref().map_or(0, |k| k.processes)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "* Baseline: none (Kamailio is missing and could not be installed); no \
                     ratio is reported rather than one invented."
                );
            }
        }
        let _ = writeln!(
            s,
            "* Load generator: {} (Debian `sip-tester`), one UDP socket (`-t u1`) with {} KiB \
             buffers (`-buff_size`: with SIPp's default of 64 KiB it dropped the servers' answers \
             itself from about 15 000 calls/s), the accounts in order from an injection file; \
             per call an INVITE, a `302` with a Contact \
             expected (a 404 or anything else fails the call), the ACK. Retransmissions off \
             (`-nr`) and {} ms to answer (`-recv_timeout`): any datagram lost or late fails \
             its call. {}",
            self.sipp_version,
            sipp::BUFFER_BYTES / 1024,
            sipp::RECV_TIMEOUT_MS,
            if self.smoke {
                "No search.".to_owned()
            } else {
                format!(
                    "Rate search per server: {:.0} s of calls at {} calls/s, up to the \
                     first rate with a failed call (or where SIPp cannot create the calls at the \
                     rate asked), then {} bisections in steps of {}; \"clean\" \
                     means every call answered with a 302 in time. A run with failed calls is \
                     run once more and the rate fails only when both do (a single scheduling \
                     stall of a few tens of ms on this shared machine overflows a UDP receive \
                     buffer at these rates); both runs are in the steps table.",
                    PLAN.step_secs,
                    PLAN.ladder_text(),
                    PLAN.bisections,
                    PLAN.grain
                )
            }
        );
    }

    /// The table of the two servers' figures side by side, with the ratio.
    fn figures_table(&self, s: &mut String) {
        let ours = &self.ours;
        let kam = self.kamailio.as_ref();
        let ours_rate = f64::from(ours.search.clean_rate());
        let kam_rate = kam.map(|k| f64::from(k.search.clean_rate()));
        let ratio_ok = kam_rate.is_some_and(|k| k > 0.0 && ours_rate / k >= 1.0);
        let generator_bound = |m: Option<&Measured>| {
            m.and_then(|m| m.search.first_failing.as_ref())
                .is_some_and(Step::lost_by_generator)
        };
        let bound_note = match (generator_bound(Some(ours)), generator_bound(kam)) {
            (false, true) => "; Kamailio's figure is SIPp's limit, so the ratio is at most this",
            (true, false) => {
                "; sip-settings' figure is SIPp's limit, so the ratio is at least this"
            }
            (true, true) => "; both figures are SIPp's limit",
            (false, false) => "",
        };
        let _ = writeln!(
            s,
            "\n| figure | sip-settings | {} | ratio sip-settings / Kamailio |",
            self.kamailio_version.as_deref().unwrap_or("Kamailio")
        );
        let _ = writeln!(s, "|---|--:|--:|--:|");
        let best = |m: Option<&Measured>| m.and_then(|m| m.search.best.clone());
        let _ = writeln!(
            s,
            "| highest rate with no failed call, calls/s | {} | {} | **{}** (target ≥ 1.0: \
             {}{bound_note}) |",
            best_cell(ours),
            kam.map_or("–".to_owned(), best_cell),
            report::ratio(ours_rate, kam_rate),
            if kam_rate.is_some() {
                pass(ratio_ok)
            } else {
                "no baseline"
            }
        );
        let _ = writeln!(
            s,
            "| lowest rate that failed | {} | {} | |",
            failing_cell(ours),
            kam.map_or("–".to_owned(), failing_cell)
        );
        let ob = best(Some(ours));
        let kb = best(kam);
        let _ = writeln!(
            s,
            "| SIPp response time at that rate, p50 / p99 / max, ms (SIPp's clock: coarse, whole \
             ms) | {} | {} | |",
            response_cell(ob.as_ref()),
            response_cell(kb.as_ref())
        );
        let cpu = |b: &Option<Step>| b.as_ref().map(Step::server_us_per_call);
        let _ = writeln!(
            s,
            "| server CPU per call at that rate, µs (Kamailio: all processes) | {} | {} | {} |",
            cpu(&ob).map_or("–".to_owned(), |c| format!("{c:.0}")),
            cpu(&kb).map_or("–".to_owned(), |c| format!("{c:.0}")),
            cpu(&ob).map_or("–".to_owned(), |c| report::ratio(c, cpu(&kb)))
        );
        let share = |b: &Option<Step>, f: fn(&Step) -> f64| {
            b.as_ref().map_or("–".to_owned(), |s| {
                format!("{:.0} %", f(s) * 100.0 / s.wall.max(1e-9))
            })
        };
        let _ = writeln!(
            s,
            "| server CPU at that rate, share of one core | {} | {} | |",
            share(&ob, |s| s.server_cpu),
            share(&kb, |s| s.server_cpu)
        );
        let _ = writeln!(
            s,
            "| SIPp CPU at that rate: µs per call, share of one core | {} | {} | |",
            ob.as_ref().map_or("–".to_owned(), |s| format!(
                "{:.0} µs, {}",
                s.sipp_us_per_call(),
                share(&ob, |s| s.sipp_cpu)
            )),
            kb.as_ref().map_or("–".to_owned(), |s| format!(
                "{:.0} µs, {}",
                s.sipp_us_per_call(),
                share(&kb, |s| s.sipp_cpu)
            )),
        );
        let _ = writeln!(
            s,
            "| peak resident memory over the run (VmHWM; Kamailio: its processes added up) | {} \
             | {} | {} |",
            report::mib(ours.hwm_kib),
            kam.map_or("–".to_owned(), |k| report::mib(k.hwm_kib)),
            report::ratio(
                report::approx(ours.hwm_kib),
                kam.map(|k| report::approx(k.hwm_kib))
            )
        );
        if let Some(l) = &ours.latency {
            let _ = writeln!(
                s,
                "| sip-settings' own decision latency over all steps above (parsed INVITE to \
                 answer handed to the socket), p50 / p90 / p99 / max, µs | {} / {} / {} / {} \
                 ({} INVITEs) | n/a | |",
                l.p50,
                l.p90,
                l.p99,
                l.max,
                report::count(l.count)
            );
        }
    }

    /// The rules run beside the half-rate run (issue 19: within 1.2× of its decision time).
    fn rules_table(&self, s: &mut String) {
        let (Some(h), Some(r)) = (&self.half, &self.rules) else {
            return;
        };
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                report::approx(a) / report::approx(b)
            }
        };
        let p50 = ratio(r.latency.p50, h.latency.p50);
        let p99 = ratio(r.latency.p99, h.latency.p99);
        let _ = writeln!(
            s,
            "\n### The same rate with {RULES_PER_ACCOUNT} forwarding rules per account\n\nA fresh \
             server on the same data after {RULES_PER_ACCOUNT} rules were put before every \
             account's own (issue 19): half of them with a time set of a date in the past, half \
             with a caller set nobody calling is in, on arrival, busy and no answer; every \
             decision walks them all and then decides as before. Against the half-rate run \
             above.\n"
        );
        let _ = writeln!(
            s,
            "| figure | seed's conditions | {RULES_PER_ACCOUNT} more rules | ratio | target |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|---|");
        let _ = writeln!(
            s,
            "| decision latency p50, µs | {} | {} | **{p50:.2}** | ≤ 1.2: {} |",
            h.latency.p50,
            r.latency.p50,
            pass(p50 <= 1.2)
        );
        let _ = writeln!(
            s,
            "| decision latency p99, µs | {} | {} | {p99:.2} | |",
            h.latency.p99, r.latency.p99
        );
        let _ = writeln!(
            s,
            "| calls | {} answered, failed: {} | {} answered, failed: {} | | |",
            report::count(h.step.successful),
            h.step.failure_text(),
            report::count(r.step.successful),
            r.step.failure_text()
        );
    }

    /// The table of sip-settings alone at half Kamailio's clean rate, when it ran.
    fn half_table(&self, s: &mut String) {
        if let Some(h) = &self.half {
            let p99_ok = h.latency.p99 < P99_TARGET_US;
            let rss_ok = (report::approx(h.hwm_kib) / 1024.0) < RSS_TARGET_MIB;
            let _ = writeln!(
                s,
                "\n### sip-settings alone at half Kamailio's clean rate\n\nA fresh server \
                 process, {:.0} s of calls, stopped with SIGTERM; the latency is its own \
                 histogram (the `sip decision latency` line it logs when it stops).\n",
                HALF_SECS
            );
            let _ = writeln!(s, "| figure | value | target |");
            let _ = writeln!(s, "|---|--:|---|");
            let _ = writeln!(
                s,
                "| calls | {} calls/s for {:.0} s: {} answered, failed: {} | |",
                report::count(h.step.rate),
                HALF_SECS,
                report::count(h.step.successful),
                h.step.failure_text()
            );
            let _ = writeln!(
                s,
                "| decision latency p50 / p90 / max, µs | {} / {} / {} ({} INVITEs) | |",
                h.latency.p50,
                h.latency.p90,
                h.latency.max,
                report::count(h.latency.count)
            );
            let _ = writeln!(
                s,
                "| decision latency p99, µs | **{}** | < {P99_TARGET_US}: {} |",
                h.latency.p99,
                pass(p99_ok)
            );
            let _ = writeln!(
                s,
                "| SIPp response time p50 / p99 / max, ms | {} | |",
                response_cell(Some(&h.step))
            );
            let _ = writeln!(
                s,
                "| server CPU per call, µs; share of one core | {:.0} µs; {:.0} % | |",
                h.step.server_us_per_call(),
                h.step.server_cpu * 100.0 / h.step.wall.max(1e-9)
            );
            let _ = writeln!(
                s,
                "| peak resident memory of the sip-settings process (VmHWM) | **{}** | < \
                 {RSS_TARGET_MIB:.0} MiB: {} |",
                report::mib(h.hwm_kib),
                pass(rss_ok)
            );
        }
    }

    /// The table of every SIPp run, in order.
    fn steps_table(&self, s: &mut String) {
        let ours = &self.ours;
        let kam = self.kamailio.as_ref();
        let _ = writeln!(
            s,
            "\n### Steps\n\nEvery SIPp run, in order. CPU: user + system time from `/proc` over \
             the run's wall time, as a share of one core (Kamailio: all its processes; SIPp: \
             the `sipp` process). Drops: datagrams dropped by a full UDP receive buffer \
             (`/proc/net/udp`), of the server's socket and (at least: sampled every 200 ms) of \
             SIPp's; a call whose INVITE or 302 is dropped fails.\n"
        );
        let _ = writeln!(
            s,
            "| server | calls/s asked | calls | created/s | answered | failed | response p50 / \
             p99 / max, ms | server CPU | SIPp CPU | drops: server | drops: SIPp |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|");
        let mut rows: Vec<(&str, &Step)> = Vec::new();
        if let Some(k) = kam {
            rows.extend(k.search.steps.iter().map(|st| ("Kamailio", st)));
        }
        rows.extend(ours.search.steps.iter().map(|st| ("sip-settings", st)));
        if let Some(h) = &self.half {
            rows.push(("sip-settings (half rate)", &h.step));
        }
        for (who, st) in rows {
            let _ = writeln!(
                s,
                "| {who} | {} | {} | {:.0} | {} | {} | {} | {:.0} % | {:.0} % | {} | {} |",
                report::count(st.rate),
                report::count(st.calls),
                st.achieved,
                report::count(st.successful),
                st.failure_text(),
                response_cell(Some(st)),
                st.server_cpu * 100.0 / st.wall.max(1e-9),
                st.sipp_cpu * 100.0 / st.wall.max(1e-9),
                drops(st.server_drops),
                drops(st.sipp_drops)
            );
        }
    }
}

/// `doc` with its SIP section replaced by `section` (or `section` appended when it has none).
pub(crate) fn splice(doc: &str, section: &str) -> String {
    splice_between(doc, section, BEGIN, END)
}

/// `doc` with the section between the marks `begin` and `end` replaced by `section` (which
/// holds the marks), or `section` appended when `doc` has none.
pub(crate) fn splice_between(doc: &str, section: &str, begin: &str, end: &str) -> String {
    let section = section.trim_end();
    match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if e > b => {
            let rest = &doc[e + end.len()..];
            format!(
                "{}{section}\n{}",
                &doc[..b],
                rest.strip_prefix('\n').unwrap_or(rest)
            )
        }
        _ => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

/// The section of `doc` between the marks `begin` and `end`, marks included, if it has one.
pub(crate) fn section_between<'a>(doc: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let b = doc.find(begin)?;
    let e = doc[b..].find(end)? + b;
    Some(&doc[b..e + end.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_spliced_in_place_or_appended() {
        let section = format!("{BEGIN}\n## SIP redirect\nnew\n{END}\n");
        let plain = "# Benchmarks\n\n## Throughput\nx\n";
        let appended = splice(plain, &section);
        assert!(appended.starts_with(plain.trim_end()));
        assert!(appended.ends_with(&section));
        let old = format!("# B\n\n{BEGIN}\nold\n{END}\n\n## After\n");
        let replaced = splice(&old, &section);
        assert_eq!(replaced, format!("# B\n\n{section}\n## After\n"));
        assert_eq!(
            section_between(&replaced, BEGIN, END),
            Some(section.trim_end())
        );
        assert_eq!(section_between(plain, BEGIN, END), None);
    }
}
