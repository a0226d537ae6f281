//! SVG charts of the comparison's figures, written as plain SVG text: line
//! charts (linear or logarithmic axes), distribution functions and bar
//! charts. The text is left to the viewer's `sans-serif` font, so nothing
//! here needs a font or a system library.

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 58.0;

/// Colours of the series, in order.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its name in the legend.
    pub name: String,
    /// Its points, `(x, y)`, in increasing `x`.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. a floor or a reference).
    pub dashed: bool,
}

/// An axis: its label and whether it is logarithmic.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The label under (or beside) the axis.
    pub label: String,
    /// Logarithmic (base 10) instead of linear.
    pub log: bool,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            log: false,
        }
    }

    /// A logarithmic axis.
    pub fn log(label: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            log: true,
        }
    }
}

struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Scale {
    fn new(lo: f64, hi: f64, log: bool, from: f64, to: f64) -> Scale {
        let (lo, hi) = if log {
            let lo = lo.max(f64::MIN_POSITIVE);
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.max(lo * 1.0001).log10().ceil()),
            )
        } else {
            let (lo, hi) = (lo.min(0.0), if hi > lo { hi } else { lo + 1.0 });
            let step = nice_step(hi - lo);
            ((lo / step).floor() * step, (hi / step).ceil() * step)
        };
        Scale {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    fn map(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.from + f * (self.to - self.from)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut v = Vec::new();
            let mut t = self.lo;
            while t <= self.hi * 1.0001 {
                v.push(t);
                t *= 10.0;
            }
            v
        } else {
            let step = nice_step(self.hi - self.lo);
            let mut v = Vec::new();
            let mut t = self.lo;
            while t <= self.hi + step * 1e-6 {
                v.push(t);
                t += step;
            }
            v
        }
    }
}

/// A round step that cuts `span` into 4 to 10 parts.
fn nice_step(span: f64) -> f64 {
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A number for an axis: short, without trailing zeros.
fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(svg: &mut String, title: &str, centre: f64) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{centre}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
}

/// A line chart of `lines` over the axes `x` and `y`.
pub fn line_chart(title: &str, x: &Axis, y: &Axis, lines: &[Line]) -> String {
    let pts = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(px, py) in pts() {
        if x.log && px <= 0.0 || y.log && py <= 0.0 {
            continue;
        }
        x0 = x0.min(px);
        x1 = x1.max(px);
        y0 = y0.min(py);
        y1 = y1.max(py);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let sx = Scale::new(x0, x1, x.log, LEFT, W - RIGHT);
    let sy = Scale::new(y0, y1, y.log, H - BOTTOM, TOP);
    let mut svg = String::new();
    header(&mut svg, title, (LEFT + W - RIGHT) / 2.0);
    // Grid and ticks.
    for t in sx.ticks() {
        let px = sx.map(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#e0e0e0"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0,
            label(t)
        );
    }
    for t in sy.ticks() {
        let py = sy.map(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            label(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#404040"/>"##,
        W - RIGHT - LEFT,
        H - BOTTOM - TOP
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 16.0,
        escape(&axis_label(x))
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(&axis_label(y))
    );
    // Lines and legend.
    for (i, l) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = if l.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let path: Vec<String> = l
            .points
            .iter()
            .filter(|p| {
                p.0.is_finite() && p.1.is_finite() && (!x.log || p.0 > 0.0) && (!y.log || p.1 > 0.0)
            })
            .map(|&(px, py)| format!("{:.1},{:.1}", sx.map(px), sy.map(py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            path.join(" ")
        );
        if l.points.len() <= 16 {
            for p in &path {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#
                );
            }
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = W - RIGHT + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&l.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn axis_label(a: &Axis) -> String {
    if a.log {
        format!("{} (log scale)", a.label)
    } else {
        a.label.clone()
    }
}

/// The empirical distribution function of each sample set: the share of
/// samples at or below each value, up to the `upto` quantile (so that a few
/// outliers do not squash the chart), at most 400 points per line.
pub fn cdf_chart(title: &str, x: &Axis, sets: &[(String, &[f64], bool)], upto: f64) -> String {
    let lines: Vec<Line> = sets
        .iter()
        .map(|(name, samples, dashed)| {
            let mut v: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let keep = ((n as f64 * upto).ceil() as usize).min(n);
            let step = (keep / 400).max(1);
            let mut points: Vec<(f64, f64)> = (0..keep)
                .step_by(step)
                .map(|i| (v[i], (i + 1) as f64 / n as f64))
                .collect();
            if keep > 0 && points.last().map(|p| p.0) != Some(v[keep - 1]) {
                points.push((v[keep - 1], keep as f64 / n as f64));
            }
            Line {
                name: name.clone(),
                points,
                dashed: *dashed,
            }
        })
        .collect();
    line_chart(
        title,
        x,
        &Axis::linear("share of calls at or below"),
        &lines,
    )
}

/// A bar chart: one bar per `(name, value)`, labelled with its value.
pub fn bar_chart(title: &str, y: &str, bars: &[(String, f64)]) -> String {
    let top = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let sy = Scale::new(0.0, top.max(1e-9) * 1.1, false, H - BOTTOM, TOP);
    let mut svg = String::new();
    header(&mut svg, title, (LEFT + W - 40.0) / 2.0);
    for t in sy.ticks() {
        let py = sy.map(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - 40.0,
            LEFT - 6.0,
            py + 4.0,
            label(t)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(y)
    );
    let slot = (W - 40.0 - LEFT) / bars.len().max(1) as f64;
    for (i, (name, v)) in bars.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let (y0, y1) = (sy.map(0.0), sy.map(if v.is_finite() { *v } else { 0.0 }));
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
            slot * 0.6,
            y0 - y1
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x + slot * 0.3,
            y1 - 6.0,
            if v.is_finite() {
                trim(*v)
            } else {
                "n/a".into()
            }
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x + slot * 0.3,
            H - BOTTOM + 18.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_is_one_svg_with_every_line() {
        let lines = vec![
            Line {
                name: "a & b".into(),
                points: vec![(2.0, 1.0), (8.0, 4.0), (64.0, 40.0)],
                dashed: false,
            },
            Line {
                name: "floor".into(),
                points: vec![(2.0, 0.5), (64.0, 0.5)],
                dashed: true,
            },
        ];
        let svg = line_chart("t", &Axis::log("stations"), &Axis::log("ms"), &lines);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &amp; b"));
        assert!(svg.contains("stroke-dasharray"));
    }

    #[test]
    fn a_cdf_ends_at_its_quantile() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let svg = cdf_chart("t", &Axis::linear("µs"), &[("x".into(), &v, false)], 0.99);
        assert!(svg.contains("<polyline"));
        let bars = bar_chart(
            "b",
            "bytes",
            &[("netz".into(), 36.7), ("peer".into(), f64::NAN)],
        );
        assert!(bars.contains("n/a") && bars.contains("36.7"));
    }
}
