//! The process's metrics, in the Prometheus text exposition format (version 0.0.4): counters
//! by label values, recorded by every door, and the [`Histogram`] a door keeps in a table of
//! its own where the counters' map would cost too much (the HTTPS door's requests), all
//! rendered by the ops listener (`GET /metrics`).
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

/// One latency histogram (buckets [`LATENCY_BUCKETS`]), for a caller's own table of series.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Observations at most each bound (not cumulative).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b)
            && let Some(bucket) = self.buckets.get_mut(i)
        {
            *bucket += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The series' lines of family `name` with `labels` (`a="x",b="y"`, already escaped).
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// A counter family: its help text, label names and series.
#[derive(Debug)]
struct Family {
    help: &'static str,
    labels: &'static [&'static str],
    series: BTreeMap<Values, u64>,
}

/// The registry of counters: families by name.
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
            series: BTreeMap::new(),
        });
        let key: Values = values.iter().map(|v| (*v).to_owned()).collect();
        let slot = family.series.entry(key).or_insert(0);
        *slot = slot.saturating_add(n);
    }

    /// The counter `name` with label `values`, 0 if never counted.
    pub fn counter(&self, name: &str, values: &[&str]) -> u64 {
        self.lock().get(name).map_or(0, |f| {
            f.series
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
                .map_or(0, |(_, v)| *v)
        })
    }

    /// Every family in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in self.lock().iter() {
            header(&mut out, name, family.help, "counter");
            for (values, v) in &family.series {
                let pairs: Vec<String> = family
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)))
                    .collect();
                let labels = if pairs.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", pairs.join(","))
                };
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }
}

/// Counts a failed TLS handshake of `door` (`https`, `sip`) by `reason` (a fixed set: see
/// `sip_settings_pki::tls::handshake_failure_reason`, plus `timeout`).
pub fn count_tls_handshake_failure(door: &'static str, reason: &'static str) {
    global().add(
        "sip_settings_tls_handshake_failures_total",
        "TLS handshakes that failed, by door (https, sip) and reason.",
        &["door", "reason"],
        &[door, reason],
        1,
    );
}

/// A whole family with its samples: `(labels, value)`, labels already rendered
/// (`store="sqlite",state="idle"`, or empty).
pub fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(&str, u64)]) {
    header(out, name, help, kind);
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A family's `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
pub fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let r = Registry::default();
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
        let text = r.render();
        assert!(text.contains("# TYPE t_requests_total counter\n"), "{text}");
        assert!(
            text.contains("t_requests_total{door=\"v1\",status=\"200\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("t_requests_total{door=\"we\\\"b\\n\",status=\"404\"} 1\n"),
            "{text}"
        );
        assert_eq!(r.counter("t_requests_total", &["v1", "200"]), 3);
        assert_eq!(r.counter("t_requests_total", &["v1", "500"]), 0);

        let mut h = Histogram::default();
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(9));
        let mut text = String::new();
        h.render("t_seconds", "door=\"v1\"", &mut text);
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
    }
}
