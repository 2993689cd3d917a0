//! The rate search of the SIP benchmarks: SIPp steps at rising call rates against one server,
//! up to the first rate that fails, then bisections between the highest passing rate and the
//! lowest failing one. A failing rate is run once more and fails only when both runs do.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::kamailio::Kamailio;
use crate::process::Server;
use crate::sipp::{self, Sipp, Step};

/// How a search runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The rates stepped up, calls/s.
    pub ladder: &'static [u32],
    /// Seconds of calls per step.
    pub step_secs: f64,
    /// Bisections between the last passing and the first failing rate.
    pub bisections: usize,
    /// Bisection rates are multiples of this, calls/s.
    pub grain: u32,
    /// The share of the calls asked for that may fail (or not finish) in a passing run:
    /// 0 (none may), or e.g. 0.01 (fewer than 1 %).
    pub max_failed: f64,
    /// The smoke run's rates, calls/s, 1 s each; none of their calls may fail.
    pub smoke_rates: &'static [u32],
    /// No new rate is started after this long (the last step runs to its end).
    pub budget: Option<Duration>,
}

impl Plan {
    /// Whether one run passes at the rate asked: few enough failed calls, and SIPp created
    /// the calls at the rate asked.
    pub(crate) fn passes(&self, s: &Step) -> bool {
        let failures_ok = if self.max_failed > 0.0 {
            crate::report::approx(s.calls.saturating_sub(s.successful))
                < self.max_failed * crate::report::approx(s.calls)
        } else {
            s.clean()
        };
        failures_ok && !s.generator_limited()
    }

    /// The ladder's rates as the reports write them (`1 000, 2 000, …`).
    pub(crate) fn ladder_text(&self) -> String {
        self.ladder
            .iter()
            .map(|r| crate::report::count(*r))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The next bisection rate between a passing `lo` and a failing `hi`, a multiple of
    /// [`Plan::grain`]; None when they are adjacent.
    pub(crate) fn midpoint(&self, lo: u32, hi: u32) -> Option<u32> {
        let mid = (lo + hi) / 2 / self.grain * self.grain;
        (mid > lo && mid < hi).then_some(mid)
    }
}

/// The outcome of a rate search.
#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The passing step of the highest rate.
    pub best: Option<Step>,
    /// The failing (or generator-limited) step of the lowest rate.
    pub first_failing: Option<Step>,
}

impl Search {
    /// The highest passing rate, 0 when none.
    pub(crate) fn clean_rate(&self) -> u32 {
        self.best.as_ref().map_or(0, |s| s.rate)
    }

    /// Records the runs of one rate (a failed run and its confirmation, or one run); the rate
    /// passes when the last run does.
    fn record(&mut self, plan: &Plan, runs: Vec<Step>) -> bool {
        let Some(last) = runs.last().cloned() else {
            return false;
        };
        let ok = plan.passes(&last);
        if ok {
            if self.best.as_ref().is_none_or(|b| b.rate < last.rate) {
                self.best = Some(last);
            }
        } else if self
            .first_failing
            .as_ref()
            .is_none_or(|f| f.rate > last.rate)
        {
            self.first_failing = runs.first().cloned();
        }
        self.steps.extend(runs);
        ok
    }
}

/// What is under test, for the search: it fails when a process of it has exited.
pub(crate) trait Alive {
    /// Fails when it is no longer running.
    fn alive(&mut self) -> anyhow::Result<()>;
}

impl Alive for Server {
    fn alive(&mut self) -> anyhow::Result<()> {
        self.check_alive()
    }
}

impl Alive for Kamailio {
    fn alive(&mut self) -> anyhow::Result<()> {
        self.check_alive()
    }
}

/// One rate of the search: a run, and when it fails a second one (the machine is shared with
/// SIPp and the benchmark, and a single scheduling stall of a few tens of milliseconds overflows
/// a UDP receive buffer at these rates): the rate fails only when both runs do.
async fn rate_runs(
    sipp: &Sipp,
    target: &sipp::Target,
    server: &mut impl Alive,
    plan: &Plan,
    rate: u32,
) -> anyhow::Result<Vec<Step>> {
    let mut runs = Vec::new();
    for attempt in 0..2 {
        if attempt > 0 {
            eprintln!("{}: {rate} calls/s once more", target.name);
        }
        let s = sipp.step(target, rate, plan.step_secs).await?;
        eprintln!("{}: {}", target.name, s.progress());
        server.alive()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ok = plan.passes(&s);
        // A generator-limited run is not retried: SIPp, not the server, was the limit.
        let limited = s.clean() && s.generator_limited();
        runs.push(s);
        if ok || limited {
            break;
        }
    }
    Ok(runs)
}

/// Steps up the plan's ladder until a rate fails, then bisects; no new rate after the plan's
/// budget.
pub(crate) async fn search(
    sipp: &Sipp,
    target: &sipp::Target,
    server: &mut impl Alive,
    plan: &Plan,
) -> anyhow::Result<Search> {
    let started = Instant::now();
    let over = || plan.budget.is_some_and(|b| started.elapsed() > b);
    let mut out = Search::default();
    for &rate in plan.ladder {
        if over() {
            eprintln!("{}: time budget spent; the search stops here", target.name);
            break;
        }
        let runs = rate_runs(sipp, target, server, plan, rate).await?;
        if !out.record(plan, runs) {
            break;
        }
    }
    for _ in 0..plan.bisections {
        let (lo, Some(hi)) = (out.clean_rate(), out.first_failing.as_ref().map(|s| s.rate)) else {
            break;
        };
        let Some(mid) = plan.midpoint(lo, hi) else {
            break;
        };
        if over() {
            break;
        }
        let runs = rate_runs(sipp, target, server, plan, mid).await?;
        out.record(plan, runs);
    }
    Ok(out)
}

/// Smoke steps: the plan's smoke rates for 1 s each; every one must be clean.
pub(crate) async fn smoke_steps(
    sipp: &Sipp,
    target: &sipp::Target,
    server: &mut impl Alive,
    plan: &Plan,
) -> anyhow::Result<Search> {
    let mut out = Search::default();
    for &rate in plan.smoke_rates {
        let s = sipp.step(target, rate, 1.0).await?;
        eprintln!("{}: {}", target.name, s.progress());
        server.alive()?;
        if !s.clean() {
            bail!(
                "{} at {rate} calls/s: failed calls: {} (SIPp's errors: {})",
                target.name,
                s.failure_text(),
                sipp.logs
                    .join(format!("sipp-{}-{rate}-errors.log", target.name))
                    .display()
            );
        }
        out.record(plan, vec![s]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: Plan = Plan {
        ladder: &[1_000, 2_000],
        step_secs: 1.0,
        bisections: 3,
        grain: 250,
        max_failed: 0.0,
        smoke_rates: &[100],
        budget: None,
    };

    #[test]
    fn bisection_midpoints() {
        assert_eq!(PLAN.midpoint(6_000, 8_000), Some(7_000));
        assert_eq!(PLAN.midpoint(7_000, 8_000), Some(7_500));
        assert_eq!(PLAN.midpoint(7_500, 8_000), Some(7_750));
        assert_eq!(PLAN.midpoint(7_750, 8_000), None);
        assert_eq!(PLAN.midpoint(0, 1_000), Some(500));
    }

    #[test]
    fn a_run_passes_with_no_failure_or_under_the_tolerance() {
        let mut s = crate::sipp::tests::step(1_000, 4_000);
        assert!(PLAN.passes(&s));
        s.successful = 3_961;
        s.failed = 39;
        s.exit = 1;
        assert!(!PLAN.passes(&s));
        let tolerant = Plan {
            max_failed: 0.01,
            ..PLAN
        };
        assert!(tolerant.passes(&s));
        s.successful = 3_960;
        s.failed = 40;
        assert!(!tolerant.passes(&s), "1 % is not under 1 %");
        s.successful = 4_000;
        s.failed = 0;
        s.achieved = 900.0;
        assert!(!tolerant.passes(&s), "generator-limited");
    }
}
