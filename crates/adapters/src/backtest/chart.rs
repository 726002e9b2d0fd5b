//! Small SVG charts over session dates, for `equity.svg` and `report.html`: lines (a
//! linear or log axis) and stacked areas. Written as plain SVG text: no scripts, no
//! fonts to fetch, scaled by the page (`viewBox`, width 100%).
//!
//! Axis labels are what people read: money as `1,200,000`, percentages as `-12%`, ticks
//! at the first session of each year (or quarter, or month, by the span shown).

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};

const WIDTH: f64 = 800.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 22.0;
/// Points drawn per series at most: a 20-year run has 5,000 sessions, and a stacked
/// chart of ten of them would otherwise be most of the page's weight.
const MAX_POINTS: usize = 1000;

/// Colours in legend order (distinguishable, and readable on white).
pub const PALETTE: [&str; 11] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Money,
    /// Values are fractions, shown ×100 with `%`.
    Percent,
    Ratio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

/// One line (or layer): NaN where it has no value.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    pub color: &'a str,
}

pub struct Panel<'a> {
    pub title: &'a str,
    pub dates: &'a [NaiveDate],
    pub series: Vec<Series<'a>>,
    pub unit: Unit,
    pub scale: Scale,
    /// Layers stacked as areas (allocation) instead of lines.
    pub stacked: bool,
    pub height: f64,
}

/// Text for SVG and HTML alike.
pub fn escape(text: &str) -> String {
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

fn tick_label(value: f64, unit: Unit, step: f64) -> String {
    match unit {
        Unit::Money => crate::readable::whole(value),
        Unit::Percent => {
            let decimals = if step * 100.0 >= 1.0 { 0 } else { 1 };
            format!("{:.*}%", decimals, value * 100.0)
        }
        Unit::Ratio => {
            let decimals = if step >= 1.0 { 0 } else { 1 };
            format!("{value:.decimals$}")
        }
    }
}

/// 1, 2 or 5 × 10^k: the tick step giving about `count` ticks over `span`.
fn nice_step(span: f64, count: f64) -> f64 {
    let raw = (span / count).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    power
        * if m <= 1.0 {
            1.0
        } else if m <= 2.0 {
            2.0
        } else if m <= 5.0 {
            5.0
        } else {
            10.0
        }
}

/// The y range and its ticks.
fn y_axis(lo: f64, hi: f64, scale: Scale) -> (f64, f64, Vec<f64>) {
    match scale {
        Scale::Linear => {
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else {
                (lo - 1.0, hi + 1.0)
            };
            let step = nice_step(hi - lo, 5.0);
            let start = (lo / step).floor() * step;
            let end = (hi / step).ceil() * step;
            let ticks = (0..)
                .map(|i| start + step * i as f64)
                .take_while(|t| *t <= end + step * 1e-9)
                .collect();
            (start, end, ticks)
        }
        Scale::Log => {
            let lo = lo.max(f64::MIN_POSITIVE);
            let hi = hi.max(lo * 1.01);
            let mut ticks = Vec::new();
            let mut decade = 10f64.powf(lo.log10().floor());
            while decade <= hi * 10.0 {
                for m in [1.0, 2.0, 5.0] {
                    let t = decade * m;
                    if t >= lo / 1.0001 && t <= hi * 1.0001 {
                        ticks.push(t);
                    }
                }
                decade *= 10.0;
            }
            if ticks.len() > 8 {
                ticks.retain(|t| (t.log10() - t.log10().round()).abs() < 1e-9);
            }
            (lo, hi, ticks)
        }
    }
}

/// Indices of the sessions that start a year, quarter or month, whichever gives a
/// readable number of ticks.
fn x_ticks(dates: &[NaiveDate]) -> Vec<(usize, String)> {
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        return Vec::new();
    };
    let days = (*last - *first).num_days();
    let every_years = match days / 365 {
        0..=2 => 0,
        3..=10 => 1,
        11..=20 => 2,
        _ => 5,
    };
    let mut out = Vec::new();
    for (i, d) in dates.iter().enumerate() {
        let new_period = i == 0 || {
            let prev = dates[i - 1];
            if every_years > 0 {
                prev.year() != d.year() && d.year() % every_years == 0
            } else if days > 200 {
                prev.month() != d.month() && (d.month() - 1) % 3 == 0
            } else {
                prev.month() != d.month()
            }
        };
        // The first session is labelled only when it starts its period itself.
        if new_period && i > 0 {
            out.push((
                i,
                if every_years > 0 {
                    d.year().to_string()
                } else {
                    format!("{}-{:02}", d.year(), d.month())
                },
            ));
        }
    }
    out
}

/// The panel as a standalone `<svg>` element.
pub fn svg(panel: &Panel<'_>) -> String {
    let n = panel.dates.len();
    let height = panel.height;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let step = n.div_ceil(MAX_POINTS).max(1);
    let shown: Vec<usize> = (0..n)
        .step_by(step)
        .chain((n > 0 && !(n - 1).is_multiple_of(step)).then_some(n - 1))
        .collect();

    // Stacked layers are drawn as their running sums.
    let stacks: Vec<Vec<f64>> = if panel.stacked {
        let mut sum = vec![0.0; n];
        panel
            .series
            .iter()
            .map(|s| {
                for (acc, v) in sum.iter_mut().zip(s.values) {
                    *acc += if v.is_finite() { *v } else { 0.0 };
                }
                sum.clone()
            })
            .collect()
    } else {
        panel.series.iter().map(|s| s.values.to_vec()).collect()
    };
    let finite = stacks
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite() && (panel.scale == Scale::Linear || *v > 0.0));
    let (mut lo, mut hi) = finite.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if panel.stacked || panel.unit == Unit::Percent {
        lo = lo.min(0.0);
    }
    let (y0, y1, ticks) = y_axis(lo, hi, panel.scale);
    let to_y = |v: f64| -> f64 {
        let t = match panel.scale {
            Scale::Linear => (v - y0) / (y1 - y0),
            Scale::Log => (v.max(y0).ln() - y0.ln()) / (y1.ln() - y0.ln()),
        };
        TOP + plot_h * (1.0 - t)
    };
    let to_x = |i: usize| LEFT + plot_w * i as f64 / (n.max(2) - 1) as f64;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{title}" font-family="system-ui, sans-serif" font-size="11"><rect width="{WIDTH}" height="{height}" fill="white"/><text x="{LEFT}" y="14" font-size="13" font-weight="600">{title}</text>"#,
        title = escape(panel.title)
    );
    // Legend, right-aligned in the title row.
    let mut x = WIDTH - RIGHT;
    for s in panel.series.iter().rev() {
        let w = 20.0 + 7.0 * s.name.chars().count() as f64;
        x -= w;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="5" width="9" height="9" fill="{}"/><text x="{:.1}" y="13">{}</text>"#,
            s.color,
            x + 12.0,
            escape(s.name)
        );
    }
    let tick_step = match ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    for t in &ticks {
        let y = to_y(*t);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            tick_label(*t, panel.unit, tick_step)
        );
    }
    for (i, label) in x_ticks(panel.dates) {
        let x = to_x(i);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            height - 6.0
        );
    }
    if panel.stacked {
        let mut below: Vec<f64> = vec![0.0; n];
        for (s, top) in panel.series.iter().zip(&stacks) {
            let mut d = String::new();
            for (k, i) in shown.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if k == 0 { "M" } else { "L" },
                    to_x(*i),
                    to_y(top[*i])
                );
            }
            for i in shown.iter().rev() {
                let _ = write!(d, "L{:.1},{:.1}", to_x(*i), to_y(below[*i]));
            }
            let _ = write!(
                out,
                r#"<path d="{d}Z" fill="{}" fill-opacity="0.85" stroke="none"/>"#,
                s.color
            );
            below.clone_from(top);
        }
    } else {
        for (s, values) in panel.series.iter().zip(&stacks) {
            let mut d = String::new();
            let mut pen_down = false;
            for i in &shown {
                let v = values[*i];
                if !v.is_finite() || (panel.scale == Scale::Log && v <= 0.0) {
                    pen_down = false;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    to_x(*i),
                    to_y(v)
                );
                pen_down = true;
            }
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.4"/>"#,
                s.color
            );
        }
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#999"/></svg>"##
    );
    out
}

/// Several panels one above the other, as one standalone SVG document.
pub fn stacked_panels(panels: &[Panel<'_>]) -> String {
    let total: f64 = panels.iter().map(|p| p.height).sum();
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" height="{total}">"#
    );
    let mut y = 0.0;
    for p in panels {
        let inner = svg(p).replacen(
            "<svg ",
            &format!(r#"<svg y="{y}" height="{}" "#, p.height),
            1,
        );
        out.push_str(&inner.replacen(r#"width="100%""#, &format!(r#"width="{WIDTH}""#), 1));
        y += p.height;
    }
    out.push_str("</svg>\n");
    out
}

/// A horizontal bar per label (a leaderboard), as a standalone SVG document.
pub fn bars(title: &str, labels: &[String], values: &[f64], unit: Unit) -> String {
    let row = 18.0;
    let label_w = 150.0;
    let height = TOP + row * labels.len() as f64 + BOTTOM;
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi, ticks) = y_axis(lo, if hi > lo { hi } else { lo + 1.0 }, Scale::Linear);
    let plot_w = WIDTH - label_w - RIGHT;
    let to_x = |v: f64| label_w + plot_w * (v - lo) / (hi - lo);
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="system-ui, sans-serif" font-size="11"><rect width="{WIDTH}" height="{height}" fill="white"/><text x="{label_w}" y="14" font-size="13" font-weight="600">{}</text>"#,
        escape(title)
    );
    let step = match ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    for t in &ticks {
        let x = to_x(*t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            height - BOTTOM,
            height - 6.0,
            tick_label(*t, unit, step)
        );
    }
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = TOP + row * i as f64;
        let (a, b) = (
            to_x(0.0f64.clamp(lo, hi)),
            to_x(if v.is_finite() { *v } else { 0.0 }),
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            label_w - 6.0,
            y + row * 0.7,
            escape(label),
            a.min(b),
            y + 2.0,
            (b - a).abs(),
            row - 4.0,
            PALETTE[0]
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_numbers() {
        assert_eq!(tick_label(1_200_000.0, Unit::Money, 200_000.0), "1,200,000");
        assert_eq!(tick_label(-0.12, Unit::Percent, 0.05), "-12%");
        assert_eq!(tick_label(0.125, Unit::Percent, 0.005), "12.5%");
        assert_eq!(tick_label(1.5, Unit::Ratio, 0.5), "1.5");
    }

    #[test]
    fn ticks_are_round_values_inside_the_range() {
        let (lo, hi, ticks) = y_axis(93_000.0, 187_000.0, Scale::Linear);
        assert_eq!(
            ticks,
            vec![80_000.0, 100_000.0, 120_000.0, 140_000.0, 160_000.0, 180_000.0, 200_000.0]
        );
        assert_eq!((lo, hi), (80_000.0, 200_000.0));
        let (_, _, log) = y_axis(90_000.0, 1_100_000.0, Scale::Log);
        assert_eq!(log, vec![100_000.0, 200_000.0, 500_000.0, 1_000_000.0]);
    }

    #[test]
    fn date_ticks_fall_on_year_starts() {
        let days: Vec<NaiveDate> = (0..1500)
            .map(|i| NaiveDate::from_ymd_opt(2015, 6, 1).unwrap() + chrono::Days::new(i))
            .collect();
        let ticks = x_ticks(&days);
        let labels: Vec<&str> = ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["2016", "2017", "2018", "2019"]);
        assert_eq!(
            days[ticks[0].0],
            NaiveDate::from_ymd_opt(2016, 1, 1).unwrap()
        );
    }

    #[test]
    fn names_are_escaped() {
        let dates = [NaiveDate::from_ymd_opt(2020, 1, 2).unwrap(); 2];
        let values = [1.0, 2.0];
        let svg = svg(&Panel {
            title: "a<b",
            dates: &dates,
            series: vec![Series {
                name: "x&y",
                values: &values,
                color: PALETTE[0],
            }],
            unit: Unit::Ratio,
            scale: Scale::Linear,
            stacked: false,
            height: 200.0,
        });
        assert!(svg.contains("a&lt;b") && svg.contains("x&amp;y"), "{svg}");
    }
}
