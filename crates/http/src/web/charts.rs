//! Small charts drawn on the server as inline SVG (no script, no style element: the page's
//! Content-Security-Policy holds): the balance over time and the usage of the last months.
//! Each is an image with a title and a description for screen readers (`role="img"`,
//! `aria-labelledby`), and the page puts its table beside it — the chart never carries a figure
//! the table does not.

use std::fmt::Write as _;

/// The drawing's size in its own units (it scales to the width of its box).
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels: left, right, top, bottom.
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;
/// The labels' size, in the drawing's units: about 12 px on a phone's width.
const FONT: f64 = 15.0;

/// Text for inside SVG (every drawing of the page): `&`, `<`, `>` and quotes escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The top of the value axis: `max` rounded up to 1, 2 or 5 times a power of ten (at least 1
/// unit), so that the gridlines fall on round amounts.
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if max <= step * power {
            return step * power;
        }
    }
    10.0 * power
}

/// How many gridline steps divide the axis up to `top` (a [`nice_top`]): five for 5 × 10ⁿ
/// (steps of 1 × 10ⁿ), four otherwise (quarters of 1 and halves of 2).
fn divisions(top: f64) -> u32 {
    let lead = top / 10f64.powf(top.abs().log10().floor());
    if (lead - 5.0).abs() < 1e-9 { 5 } else { 4 }
}

/// The value axis for values from `min` to `max`: from 0 (or below, rounded down to a step)
/// to a [`nice_top`] (rounded up to a step), the steps those of the larger side.
fn axis(min: f64, max: f64) -> (f64, f64, f64) {
    let top = nice_top(max.max(-min));
    let step = top / f64::from(divisions(top));
    let high = if max > 0.0 {
        (max / step).ceil() * step
    } else {
        0.0
    };
    let low = if min < 0.0 {
        (min / step).floor() * step
    } else {
        0.0
    };
    if high <= low {
        (0.0, top, step)
    } else {
        (low, high, step)
    }
}

/// The frame of a chart: the opening tag with its title and description, and the value axis
/// from `low` to `high` with a gridline every `step`, the unit above it.
fn frame(
    id: &str,
    title: &str,
    description: &str,
    (low, high, step): (f64, f64, f64),
    unit: &str,
) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(title),
        escape(description)
    );
    let plot = HEIGHT - TOP - BOTTOM;
    // The unit, once, above the value axis.
    let _ = write!(
        svg,
        r##"<text x="4" y="{:.1}" font-size="{FONT}" fill="#4a5360">{}</text>"##,
        TOP - 12.0,
        escape(unit)
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = (((high - low) / step).round() as u32).max(1);
    for i in 0..=n {
        let v = low + (high - low) * f64::from(i) / f64::from(n);
        let y = TOP + plot - plot * f64::from(i) / f64::from(n);
        let text = format!("{v:.2}");
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c9d0d8" stroke-width="1"/><text x="{:.1}" y="{:.1}" font-size="{FONT}" text-anchor="end" fill="#4a5360">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 5.0,
            escape(&text)
        );
    }
    svg
}

/// A bar per `(label, value)` (values in ten-thousandths, as `Money` keeps them), with every
/// other label under its bar when there are many.
pub fn bars(
    id: &str,
    title: &str,
    description: &str,
    bars: &[(String, i64)],
    unit: &str,
) -> String {
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(0);
    #[allow(clippy::cast_precision_loss)]
    let (low, high, step) = axis(0.0, max as f64 / 10_000.0);
    let mut svg = frame(id, title, description, (low, high, step), unit);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    #[allow(clippy::cast_precision_loss)]
    let slot = plot_w / bars.len().max(1) as f64;
    let every = if bars.len() > 8 { 2 } else { 1 };
    for (i, (name, value)) in bars.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + slot * i as f64;
        #[allow(clippy::cast_precision_loss)]
        let h = (*value).max(0) as f64 / 10_000.0 / high * plot_h;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#0b4f9c"/>"##,
            x + slot * 0.15,
            TOP + plot_h - h,
            slot * 0.7
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" font-size="{FONT}" text-anchor="middle" fill="#1b1f24">{}</text>"##,
                x + slot / 2.0,
                HEIGHT - BOTTOM + 19.0,
                escape(name)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A step line through `(label, value)` points in time order (the balance after each change),
/// the first and last labels under the axis.
pub fn steps(
    id: &str,
    title: &str,
    description: &str,
    points: &[(String, i64)],
    unit: &str,
) -> String {
    #[allow(clippy::cast_precision_loss)]
    let values: Vec<f64> = points.iter().map(|(_, v)| *v as f64 / 10_000.0).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    let min = values.iter().copied().fold(0.0, f64::min);
    let (low, high, step) = axis(min, max);
    let mut svg = frame(id, title, description, (low, high, step), unit);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |v: f64| TOP + plot_h - (v - low) / (high - low) * plot_h;
    #[allow(clippy::cast_precision_loss)]
    let dx = plot_w / (points.len().max(2) - 1) as f64;
    let mut path = String::new();
    for (i, v) in values.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = LEFT + dx * i as f64;
        let y = y_of(*v);
        if i == 0 {
            let _ = write!(path, "M{x:.1},{y:.1}");
        } else {
            let _ = write!(path, " H{x:.1} V{y:.1}");
        }
    }
    if values.len() == 1 {
        let _ = write!(path, " H{:.1}", WIDTH - RIGHT);
    }
    let _ = write!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#0b4f9c" stroke-width="2.5"/>"##
    );
    if let (Some((first, _)), Some((last, _))) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{:.1}" font-size="{FONT}" fill="#1b1f24">{}</text><text x="{:.1}" y="{:.1}" font-size="{FONT}" text-anchor="end" fill="#1b1f24">{}</text>"##,
            HEIGHT - BOTTOM + 19.0,
            escape(first),
            WIDTH - RIGHT,
            HEIGHT - BOTTOM + 19.0,
            escape(last)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_text_is_escaped() {
        assert!((nice_top(0.0) - 1.0).abs() < 1e-9);
        assert!((nice_top(12.34) - 20.0).abs() < 1e-9);
        assert!((nice_top(3.0) - 5.0).abs() < 1e-9);
        assert!((nice_top(100.0) - 100.0).abs() < 1e-9);
        let svg = bars(
            "u",
            "Usage <by month>",
            "a & b",
            &[("2026-11".into(), 123_400), ("2026-12".into(), 0)],
            "EUR",
        );
        assert!(svg.starts_with("<svg class=\"chart\" id=\"u\""), "{svg}");
        assert!(svg.contains("<title id=\"u-title\">Usage &lt;by month&gt;</title>"));
        assert!(svg.contains("<desc id=\"u-desc\">a &amp; b</desc>"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains(">15.00<"),
            "the axis tops at a round step: {svg}"
        );
        assert!(
            svg.contains(">5.00<") && svg.contains(">10.00<"),
            "steps of 5: {svg}"
        );
        assert_eq!(divisions(0.5), 5);
        assert_eq!(divisions(2.0), 4);
        let svg = steps(
            "b",
            "Balance",
            "from 1 to -2",
            &[("a".into(), 10_000), ("b".into(), -20_000)],
            "EUR",
        );
        assert!(svg.contains(">-2.00<") && svg.contains(">1.00<"), "{svg}");
        assert!(
            svg.contains(">-1.50<") && svg.contains(">0.00<"),
            "steps of 0.50: {svg}"
        );
        assert!(svg.ends_with("</svg>"));
    }
}
