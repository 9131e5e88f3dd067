//! Small inline-SVG charts for the self-contained HTML reports: no scripts, no external files.

use std::fmt::Write;

/// A colour-blind-safe palette (Okabe–Ito).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound and tick step for an axis from 0 to `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// Thousands as k, millions as M.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
}

/// A line chart over days; `x_labels[i]` names day i (every few are shown). A horizontal
/// dashed line marks `reference` when given.
pub fn line_chart(
    id: &str,
    title: &str,
    y_label: &str,
    x_labels: &[String],
    series: &[Series<'_>],
    reference: Option<(f64, &str)>,
) -> String {
    LineChart {
        id,
        title,
        y_label,
        x_labels,
        series,
        reference,
    }
    .to_svg()
}

/// A line chart over an index (days, seconds): `x_labels[i]` names point i (every few are
/// shown); a horizontal dashed line marks `reference` when given.
pub struct LineChart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub y_label: &'a str,
    pub x_labels: &'a [String],
    pub series: &'a [Series<'a>],
    pub reference: Option<(f64, &'a str)>,
}

/// The size of a line chart, in the units of its view box.
const LINE_CHART_W: f64 = 960.0;
const LINE_CHART_H: f64 = 340.0;

impl LineChart<'_> {
    /// The chart as an `<svg>` element of an HTML page (whose stylesheet gives the `title`
    /// and `tick` classes their look).
    pub fn to_svg(&self) -> String {
        self.render("")
    }

    /// The chart, with `placement` (attributes that place it inside another `<svg>`) added to
    /// its opening tag.
    fn render(&self, placement: &str) -> String {
        let (w, h) = (LINE_CHART_W, LINE_CHART_H);
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
        let pw = w - left - right;
        let ph = h - top - bottom;
        let n = self
            .series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0)
            .max(2);
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .chain(self.reference.map(|r| r.0))
            .fold(0.0, f64::max);
        let (y_max, step) = nice_axis(max);
        let x = |i: usize| left + pw * i as f64 / (n - 1) as f64;
        let y = |v: f64| top + ph * (1.0 - v / y_max);
        let mut svg = String::new();
        open(&mut svg, self.id, (w, h), placement, self.title, left);
        y_grid(&mut svg, (left, w - right), y_max, step, y);
        let label_every = (n / 12).max(1);
        for (i, label) in self.x_labels.iter().enumerate().step_by(label_every) {
            let _ = write!(
                svg,
                r#"<text x="{xx:.1}" y="{yy}" text-anchor="middle" class="tick">{l}</text>"#,
                xx = x(i),
                yy = h - bottom + 18.0,
                l = escape(label)
            );
        }
        y_axis_label(&mut svg, top + ph / 2.0, self.y_label);
        if let Some((value, label)) = self.reference {
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#444" stroke-dasharray="6 4"/><text x="{x2}" y="{ty:.1}" text-anchor="end" class="tick">{l}</text>"##,
                x2 = w - right,
                yy = y(value),
                ty = y(value) - 4.0,
                l = escape(label)
            );
        }
        for (k, s) in self.series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let points: Vec<String> = s
                .values
                .iter()
                .enumerate()
                .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                points.join(" "),
                escape(s.name)
            );
            // Legend: four to a row, rows upwards from the bottom.
            let lx = left + 10.0 + (k % 4) as f64 * 210.0;
            let ly = h - 16.0 - 14.0 * (k / 4) as f64;
            let _ = write!(
                svg,
                r#"<rect x="{lx}" y="{ry}" width="14" height="4" fill="{colour}"/><text x="{tx}" y="{ty}" class="tick">{name}</text>"#,
                ry = ly - 4.0,
                tx = lx + 20.0,
                ty = ly + 2.0,
                name = escape(s.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// How the chart classes look where no HTML page's stylesheet is around.
const FILE_STYLE: &str = "text{font-family:sans-serif}.title{font-size:15px;font-weight:600;fill:#222}.tick{font-size:11px;fill:#555}";

/// Line charts stacked top to bottom as one standalone SVG file (white background, the
/// chart classes styled): for a report that is not an HTML page.
pub fn line_charts_file(charts: &[LineChart<'_>]) -> String {
    let (w, h) = (LINE_CHART_W, LINE_CHART_H);
    let total = h * charts.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total}" viewBox="0 0 {w} {total}"><style>{FILE_STYLE}</style><rect width="100%" height="100%" fill="white"/>"#
    );
    for (i, chart) in charts.iter().enumerate() {
        let placement = format!(
            r#" x="0" y="{y}" width="{w}" height="{h}""#,
            y = h * i as f64
        );
        svg.push_str(&chart.render(&placement));
    }
    svg.push_str("</svg>\n");
    svg
}

/// Opens a chart's `<svg>` element of size `(w, h)` with its title (at `left`).
fn open(svg: &mut String, id: &str, (w, h): (f64, f64), placement: &str, title: &str, left: f64) {
    let _ = write!(
        svg,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}"{placement} role="img" aria-label="{t}"><title>{t}</title><text x="{left}" y="24" class="title">{t}</text>"#,
        t = escape(title)
    );
}

/// Horizontal grid lines from `x1` to `x2` with their values, every `step` up to `y_max`.
fn y_grid(svg: &mut String, (x1, x2): (f64, f64), y_max: f64, step: f64, y: impl Fn(f64) -> f64) {
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let _ = write!(
            svg,
            r##"<line x1="{x1}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e3e3"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{l}</text>"##,
            yy = y(v),
            tx = x1 - 6.0,
            ty = y(v) + 4.0,
            l = short_number(v)
        );
        v += step;
    }
}

/// The y axis' name, upright along the left edge at height `y`.
fn y_axis_label(svg: &mut String, y: f64, label: &str) {
    let _ = write!(
        svg,
        r#"<text x="16" y="{y}" transform="rotate(-90 16 {y})" text-anchor="middle" class="tick">{l}</text>"#,
        l = escape(label)
    );
}

/// Horizontal grouped bars: one row per label, one bar per series. `reference` draws a
/// vertical dashed line (a target).
pub fn bar_chart(
    id: &str,
    title: &str,
    x_label: &str,
    labels: &[String],
    series_names: &[&str],
    values: &[Vec<f64>],
    reference: Option<(f64, &str)>,
) -> String {
    let groups = labels.len().max(1);
    let per = series_names.len().max(1);
    let bar_h = 9.0;
    let row_h = bar_h * per as f64 + 6.0;
    let (left, right, top, bottom) = (190.0, 60.0, 56.0, 50.0);
    let w = 960.0;
    let h = top + bottom + row_h * groups as f64;
    let pw = w - left - right;
    let max = values
        .iter()
        .flatten()
        .copied()
        .chain(reference.map(|r| r.0))
        .fold(0.0, f64::max);
    let (x_max, step) = nice_axis(max);
    let x = |v: f64| left + pw * v / x_max;
    let mut svg = String::new();
    open(&mut svg, id, (w, h), "", title, left);
    let mut v = 0.0;
    while v <= x_max + 1e-9 {
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{y2}" stroke="#e3e3e3"/><text x="{xx:.1}" y="{ty}" text-anchor="middle" class="tick">{l}</text>"##,
            xx = x(v),
            y2 = h - bottom,
            ty = h - bottom + 16.0,
            l = short_number(v)
        );
        v += step;
    }
    let _ = write!(
        svg,
        r#"<text x="{xx}" y="{yy}" text-anchor="middle" class="tick">{l}</text>"#,
        xx = left + pw / 2.0,
        yy = h - bottom + 34.0,
        l = escape(x_label)
    );
    for (g, label) in labels.iter().enumerate() {
        let y0 = top + row_h * g as f64;
        let _ = write!(
            svg,
            r#"<text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{l}</text>"#,
            tx = left - 6.0,
            ty = y0 + row_h / 2.0 + 3.0,
            l = escape(label)
        );
        for (k, _) in series_names.iter().enumerate() {
            let value = values.get(k).and_then(|v| v.get(g)).copied().unwrap_or(0.0);
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{left}" y="{yy:.1}" width="{bw:.1}" height="{bar_h}" fill="{c}"><title>{l}: {v}</title></rect>"#,
                yy = y0 + 3.0 + bar_h * k as f64,
                bw = (x(value) - left).max(0.0),
                c = PALETTE[k % PALETTE.len()],
                l = escape(label),
                v = short_number(value)
            );
        }
    }
    if let Some((value, label)) = reference {
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{y2}" stroke="#444" stroke-dasharray="6 4"/><text x="{xx:.1}" y="{ty}" text-anchor="middle" class="tick">{l}</text>"##,
            xx = x(value),
            y2 = h - bottom,
            ty = top - 4.0,
            l = escape(label)
        );
    }
    for (k, name) in series_names.iter().enumerate() {
        let lx = left + 150.0 * k as f64;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="32" width="12" height="12" fill="{c}"/><text x="{tx}" y="42" class="tick">{n}</text>"#,
            c = PALETTE[k % PALETTE.len()],
            tx = lx + 18.0,
            n = escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars (a histogram or a few categories).
pub fn column_chart(
    id: &str,
    title: &str,
    y_label: &str,
    labels: &[String],
    values: &[f64],
) -> String {
    let (w, h) = (960.0, 300.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let n = labels.len().max(1);
    let max = values.iter().copied().fold(0.0, f64::max);
    let (y_max, step) = nice_axis(max);
    let slot = pw / n as f64;
    let y = |v: f64| top + ph * (1.0 - v / y_max);
    let mut svg = String::new();
    open(&mut svg, id, (w, h), "", title, left);
    y_grid(&mut svg, (left, w - right), y_max, step, y);
    y_axis_label(&mut svg, top + ph / 2.0, y_label);
    let label_every = (n / 16).max(1);
    for (i, (label, &value)) in labels.iter().zip(values).enumerate() {
        let x0 = left + slot * i as f64;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{xx:.1}" y="{yy:.1}" width="{bw:.1}" height="{bh:.1}" fill="{c}"><title>{l}: {v}</title></rect>"#,
            xx = x0 + slot * 0.1,
            yy = y(value),
            bw = slot * 0.8,
            bh = (top + ph - y(value)).max(0.0),
            c = PALETTE[0],
            l = escape(label),
            v = short_number(value)
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{xx:.1}" y="{yy}" text-anchor="middle" class="tick">{l}</text>"#,
                xx = x0 + slot / 2.0,
                yy = h - bottom + 16.0,
                l = escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(id: &'a str, labels: &'a [String], series: &'a [Series<'a>]) -> LineChart<'a> {
        LineChart {
            id,
            title: "A & B",
            y_label: "per second",
            x_labels: labels,
            series,
            reference: None,
        }
    }

    #[test]
    fn a_chart_file_stacks_its_charts_and_styles_them() {
        let labels: Vec<String> = (0..3).map(|t| format!("{t} s")).collect();
        let (a, b) = ([1.0, 2.0, 3.0], [0.5, 0.25, 0.0]);
        let two = [
            Series {
                name: "a",
                values: &a,
            },
            Series {
                name: "b",
                values: &b,
            },
        ];
        let file = line_charts_file(&[
            chart("one", &labels, &two),
            chart("two", &labels, &two[..1]),
        ]);
        assert!(
            file.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="680""#)
        );
        assert!(file.contains("<style>") && file.contains(".tick{"));
        assert!(file.contains(r#"<svg id="one" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 960 340" x="0" y="0" width="960" height="340""#));
        assert!(file.contains(r#"id="two" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 960 340" x="0" y="340""#));
        assert_eq!(file.matches("<polyline").count(), 3);
        assert_eq!(file.matches("<svg").count(), 3);
        assert_eq!(file.matches("</svg>").count(), 3);
        assert!(file.contains("A &amp; B") && !file.contains("A & B"));
        assert!(file.ends_with("</svg></svg>\n"));
    }

    #[test]
    fn a_page_chart_is_not_placed() {
        let labels = vec!["1".to_string()];
        let values = [1.0];
        let series = [Series {
            name: "s",
            values: &values,
        }];
        let svg = line_chart("c", "A & B", "per second", &labels, &series, None);
        assert_eq!(svg, chart("c", &labels, &series).to_svg());
        assert!(svg.starts_with(
            r#"<svg id="c" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 960 340" role="img""#
        ));
    }
}
