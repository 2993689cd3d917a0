//! The process's metrics, in the Prometheus text exposition format (version 0.0.4): counters
//! and histograms by label values, recorded by every door and rendered by the ops listener
//! (`GET /metrics`).
//!
//! One registry per process ([`global`]): what is counted happens in many crates (the HTTP
//! door, its TLS acceptor, the SIP door), and a scrape wants all of it. Label values must come
//! from small fixed sets (door, route, status, reason), never from the request (an account, an
//! unknown action), so that the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The upper bounds of every latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A family's label values, in the order of its label names.
type Values = Vec<String>;

/// One histogram series.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at most each bound of [`LATENCY_BUCKETS`] (not cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What a family holds.
#[derive(Debug)]
enum Series {
    Counter(BTreeMap<Values, u64>),
    Histogram(BTreeMap<Values, Histogram>),
}

/// A metric family: its help text, label names and series.
#[derive(Debug)]
struct Family {
    help: &'static str,
    labels: &'static [&'static str],
    series: Series,
}

/// The registry: families by name.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// The process's registry.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, Family>> {
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares a counter family, so that it is rendered (with no series) before anything is
    /// counted. Declaring again changes nothing.
    pub fn declare_counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) {
        self.lock().entry(name).or_insert_with(|| Family {
            help,
            labels,
            series: Series::Counter(BTreeMap::new()),
        });
    }

    /// Adds `n` to the counter `name` with label `values` (as many as the family's names).
    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        values: &[&str],
        n: u64,
    ) {
        let mut families = self.lock();
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            labels,
            series: Series::Counter(BTreeMap::new()),
        });
        if let Series::Counter(series) = &mut family.series {
            let key: Values = values.iter().map(|v| (*v).to_owned()).collect();
            let slot = series.entry(key).or_insert(0);
            *slot = slot.saturating_add(n);
        }
    }

    /// Records one observation of `elapsed` in the histogram `name` with label `values`.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        values: &[&str],
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        let mut families = self.lock();
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            labels,
            series: Series::Histogram(BTreeMap::new()),
        });
        if let Series::Histogram(series) = &mut family.series {
            let key: Values = values.iter().map(|v| (*v).to_owned()).collect();
            let h = series.entry(key).or_default();
            if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b)
                && let Some(bucket) = h.buckets.get_mut(i)
            {
                *bucket += 1;
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// The counter `name` with label `values`, 0 if never counted (for tests and gauges).
    pub fn counter(&self, name: &str, values: &[&str]) -> u64 {
        let families = self.lock();
        match families.get(name).map(|f| &f.series) {
            Some(Series::Counter(series)) => series
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
                .map_or(0, |(_, v)| *v),
            _ => 0,
        }
    }

    /// Every family in the text exposition format, with `extra` (gauges read at scrape time,
    /// already formatted) appended.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        for (name, family) in self.lock().iter() {
            let kind = match family.series {
                Series::Counter(_) => "counter",
                Series::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match &family.series {
                Series::Counter(series) => {
                    for (values, v) in series {
                        let _ = writeln!(out, "{name}{} {v}", labels(family.labels, values, None));
                    }
                }
                Series::Histogram(series) => {
                    for (values, h) in series {
                        let mut cumulative = 0;
                        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                            cumulative += n;
                            let le = format!("{bound}");
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                labels(family.labels, values, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels(family.labels, values, Some("+Inf")),
                            h.count
                        );
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {}",
                            labels(family.labels, values, None),
                            h.sum
                        );
                        let _ = writeln!(
                            out,
                            "{name}_count{} {}",
                            labels(family.labels, values, None),
                            h.count
                        );
                    }
                }
            }
        }
        out.push_str(extra);
        out
    }
}

/// `{a="x",b="y"}` (with `le` last when given), or nothing for no labels.
fn labels(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
pub fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A gauge, formatted for [`Registry::render`]'s `extra`.
pub fn gauge(name: &str, help: &str, value: f64) -> String {
    format!(
        "# HELP {name} {}\n# TYPE {name} gauge\n{name} {value}\n",
        escape_help(help)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let r = Registry::default();
        r.declare_counter("t_refused_total", "Refused.", &["reason"]);
        r.add(
            "t_requests_total",
            "Requests.",
            &["door", "status"],
            &["v1", "200"],
            2,
        );
        r.add(
            "t_requests_total",
            "Requests.",
            &["door", "status"],
            &["v1", "200"],
            1,
        );
        r.add(
            "t_requests_total",
            "Requests.",
            &["door", "status"],
            &["we\"b\n", "404"],
            1,
        );
        r.observe(
            "t_seconds",
            "Latency.",
            &["door"],
            &["v1"],
            Duration::from_micros(700),
        );
        r.observe(
            "t_seconds",
            "Latency.",
            &["door"],
            &["v1"],
            Duration::from_secs(9),
        );
        let text = r.render(&gauge("t_open", "Open.", 3.0));
        assert!(text.contains("# TYPE t_refused_total counter\n"), "{text}");
        assert!(
            text.contains("t_requests_total{door=\"v1\",status=\"200\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("t_requests_total{door=\"we\\\"b\\n\",status=\"404\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{door=\"v1\",le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{door=\"v1\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{door=\"v1\",le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{door=\"v1\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{door=\"v1\"} 2\n"), "{text}");
        assert!(text.ends_with("# TYPE t_open gauge\nt_open 3\n"), "{text}");
        assert_eq!(r.counter("t_requests_total", &["v1", "200"]), 3);
        assert_eq!(r.counter("t_requests_total", &["v1", "500"]), 0);
    }
}
