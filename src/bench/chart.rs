//! SVG bar charts with min-max whiskers, written by hand: a chart is a few
//! rectangles, lines and labels, and an SVG a student can read as text.

use super::{Cache, Ceiling, Spread, Summary};
use std::fmt::Write as _;

const W: f64 = 760.0;
/// The least room for the labels left of the bars.
const BAR_AREA_LEFT: f64 = 130.0;
/// The bars' area and the room for their values on the right.
const BAR_AREA: f64 = W - BAR_AREA_LEFT;
/// Bar colours, warm and cold cache: throughput blue, CPU green.
pub const THROUGHPUT_COLORS: [&str; 2] = ["#4878a8", "#a86448"];
pub const CPU_COLORS: [&str; 2] = ["#5a8f3c", "#8f7a3c"];
const ROW: f64 = 26.0;
/// The reference lines' colours and dashes, one each, so the legend names them apart.
const LINE_STYLES: [(&str, &str); 5] =
    [("#c33", "4 3"), ("#d07a00", "8 3"), ("#7b3fb0", "2 2"), ("#13807f", "6 2 2 2"), ("#7a5230", "1 3")];
const TOP: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal bar per mode and cache setting: the median as a bar, the
/// min-max as a whisker, the value written beside it; `lines` are drawn as
/// dashed reference lines across all bars.
pub fn bars(
    title: &str,
    axis: &str,
    rows: &[Summary],
    peers: &[(String, Spread)],
    lines: &[Ceiling],
    colors: [&str; 2],
    value: impl Fn(&Summary) -> Spread,
) -> String {
    // zclab's rows, then the peers' (grey), as (label, spread, colour).
    let cells: Vec<super::Cell> = rows.iter().map(|r| r.cell).collect();
    let mut all: Vec<(String, Spread, &str)> = rows
        .iter()
        .map(|r| {
            let color = match r.cell.cache {
                Cache::Warm => colors[0],
                Cache::Cold => colors[1],
            };
            (r.cell.label(&cells), value(r), color)
        })
        .collect();
    all.extend(peers.iter().map(|(n, s)| (n.clone(), *s, "#909090")));
    spread_bars(title, axis, &all, lines)
}

/// A horizontal bar per (label, spread, colour): the median as a bar, the
/// min-max as a whisker; `lines` dashed across all bars.
pub fn spread_bars(title: &str, axis: &str, all: &[(String, Spread, &str)], lines: &[Ceiling]) -> String {
    let max = all.iter().map(|r| r.1.max).chain(lines.iter().map(|l| l.gbit_per_s)).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let h = TOP + ROW * all.len() as f64 + 40.0 + 16.0 * lines.len() as f64;
    // Room on the left for the longest label (about 6.6 px a character at 12 px).
    let longest = all.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let left = (longest as f64 * 6.6 + 12.0).max(BAR_AREA_LEFT);
    let w = left + BAR_AREA;
    let scale = (BAR_AREA - 90.0) / max;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{left}\" y=\"38\" fill=\"#555\">{}</text>\n",
        esc(title),
        esc(axis)
    );
    for (i, (label, v, color)) in all.iter().enumerate() {
        let (v, color) = (*v, *color);
        let y = TOP + ROW * i as f64;
        let (x0, x1, xm) = (left + v.min * scale, left + v.max * scale, left + v.median * scale);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{color}\"/>\n\
             <line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <line x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <line x1=\"{x1:.1}\" x2=\"{x1:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            left - 6.0,
            y + 12.5,
            esc(label),
            y,
            (xm - left).max(0.5),
            y + 8.0,
            y + 8.0,
            y + 3.0,
            y + 13.0,
            y + 3.0,
            y + 13.0,
            x1.max(xm) + 6.0,
            y + 12.5,
            fmt(v.median)
        );
    }
    let axis_y = TOP + ROW * all.len() as f64 + 4.0;
    for (i, l) in lines.iter().enumerate() {
        // The line across the bars in a colour and dash of its own, named in a legend
        // under the axis: lines a few pixels apart cannot carry their labels themselves.
        let x = left + l.gbit_per_s * scale;
        let (color, dash) = LINE_STYLES[i % LINE_STYLES.len()];
        let legend_y = axis_y + 32.0 + 16.0 * i as f64;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\n\
             <line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\n\
             <text x=\"{:.1}\" y=\"{legend_y:.1}\" fill=\"{color}\">{} {}</text>\n",
            TOP - 4.0,
            left + 28.0,
            legend_y - 4.0,
            legend_y - 4.0,
            left + 34.0,
            esc(&l.name),
            fmt(l.gbit_per_s)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{axis_y:.1}\" y2=\"{axis_y:.1}\" stroke=\"#888\"/>\n\
         <text x=\"{left}\" y=\"{:.1}\" fill=\"#555\">0</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n</svg>",
        left + max * scale,
        axis_y + 16.0,
        left + max * scale,
        axis_y + 16.0,
        fmt(max)
    );
    s
}

/// A line per path (and its other settings) of the median Gbit/s against
/// `x` (an MTU, a chunk or file size, sends in flight), on a log2 axis when
/// `log`; ticks in bytes when the axis says so.
pub fn lines(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    log: bool,
    rows: &[Summary],
    x: impl Fn(&Summary) -> f64,
    series_name: impl Fn(&Summary) -> String,
) -> String {
    const H: f64 = 360.0;
    const L: f64 = 60.0;
    const R: f64 = 30.0;
    const T: f64 = 50.0;
    const B: f64 = 50.0;
    let mut series: Vec<(String, Vec<&Summary>)> = Vec::new();
    for r in rows {
        let name = series_name(r);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(r),
            None => series.push((name, vec![r])),
        }
    }
    // The legend goes under the axis, a line per series, at full width.
    let legend_y = H - B + 40.0;
    let height = legend_y + 16.0 * series.len() as f64;
    let in_bytes = xlabel.contains("bytes") || xlabel.contains("size");
    let xv = |r: &Summary| if log { x(r).max(1.0).log2() } else { x(r) };
    let (xmin, xmax) = rows.iter().map(&xv).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let ymax = rows.iter().map(|r| r.gbit_per_s.max).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let span = (xmax - xmin).max(f64::MIN_POSITIVE);
    let px = |v: f64| L + (v - xmin) / span * (W - L - R);
    let py = |v: f64| H - B - v / ymax * (H - T - B);
    let palette = ["#4878a8", "#a86448", "#58a858", "#a8a848", "#8858a8", "#48a8a8", "#a84888", "#666666"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{L}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{L}\" y=\"38\" fill=\"#555\">{}; x: {}</text>\n\
         <line x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>\n\
         <line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{:.1}\" stroke=\"#888\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">0</text>\n",
        esc(title),
        esc(ylabel),
        esc(xlabel),
        W - R,
        H - B,
        H - B,
        H - B,
        L - 4.0,
        T + 4.0,
        fmt(ymax),
        L - 4.0,
        H - B + 4.0
    );
    let mut ticks: Vec<f64> = rows.iter().map(&x).collect();
    ticks.sort_by(|a, b| a.total_cmp(b));
    ticks.dedup();
    for t in &ticks {
        let v = if log { t.max(1.0).log2() } else { *t };
        let label = if in_bytes && log { crate::report::human_bytes(*t as u64) } else { format!("{t:.0}") };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            px(v),
            H - B + 16.0,
            esc(&label)
        );
    }
    for (i, (name, pts)) in series.iter_mut().enumerate() {
        pts.sort_by(|a, b| xv(a).total_cmp(&xv(b)));
        let points: Vec<(f64, f64)> = pts.iter().map(|p| (px(xv(p)), py(p.gbit_per_s.median))).collect();
        series_line(&mut s, &points, palette[i % palette.len()], L, legend_y + 16.0 * i as f64, name);
    }
    s + "</svg>\n"
}

/// One series of a line chart: its line, a dot at each point, and its
/// entry in the legend (a short line and the name) at (`x`, `y`).
fn series_line(s: &mut String, points: &[(f64, f64)], color: &str, x: f64, y: f64, name: &str) {
    let path: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
    let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>", path.join(" "));
    for (px, py) in points {
        let _ = writeln!(s, "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{color}\"/>");
    }
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\
         <text x=\"{:.1}\" y=\"{y:.1}\" fill=\"{color}\">{}</text>",
        x + 24.0,
        y - 4.0,
        y - 4.0,
        x + 30.0,
        esc(name)
    );
}

/// Round-trip percentiles, a line per series (mode and wait), on a log
/// scale of microseconds: the x axis is the percentile (p50, p90, p99,
/// p99.9, p99.99), evenly spaced, as latency tails are usually drawn.
pub fn percentiles(title: &str, xs: &[&str], series: &[(String, Vec<f64>)]) -> String {
    const H: f64 = 380.0;
    const L: f64 = 70.0;
    const R: f64 = 30.0;
    const T: f64 = 50.0;
    const B: f64 = 50.0;
    let legend_y = H - B + 40.0;
    let height = legend_y + 16.0 * series.len() as f64;
    let vals = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (1.0, 10.0) } else { (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil())) };
    let (llo, lhi) = (lo.log10(), hi.log10().max(lo.log10() + 1.0));
    let px = |i: usize| L + i as f64 / (xs.len().max(2) - 1) as f64 * (W - L - R);
    let py = |v: f64| H - B - (v.max(lo).log10() - llo) / (lhi - llo) * (H - T - B);
    let palette = ["#4878a8", "#a86448", "#58a858", "#a8a848", "#8858a8", "#48a8a8", "#a84888", "#666666", "#c87820", "#2080c8"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{L}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{L}\" y=\"38\" fill=\"#555\">round trip, microseconds (log scale; median of runs) by percentile</text>\n\
         <line x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>\n\
         <line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{:.1}\" stroke=\"#888\"/>\n",
        esc(title),
        W - R,
        H - B,
        H - B,
        H - B
    );
    // A tick and a faint line at every power of ten.
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let y = py(decade);
        let _ = writeln!(
            s,
            "<line x1=\"{L}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            W - R,
            L - 4.0,
            y + 4.0,
            fmt(decade)
        );
        decade *= 10.0;
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            px(i),
            H - B + 16.0,
            esc(x)
        );
    }
    for (i, (name, v)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = v.iter().enumerate().map(|(j, v)| (px(j), py(*v))).collect();
        series_line(&mut s, &points, palette[i % palette.len()], L, legend_y + 16.0 * i as f64, name);
    }
    s + "</svg>\n"
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Mode;

    fn row(mode: Mode, median: f64, min: f64, max: f64) -> Summary {
        let s = Spread { median, min, max };
        Summary {
            cell: super::super::Cell {
                mode,
                cache: Cache::Warm,
                mtu: None,
                size: 1 << 30,
                chunk: Some(131072),
                in_flight: None,
                fixed_buffers: false,
                layout: None,
                queues: None,
                direct: false,
                xdp_rx: false,
                tcp_rx: false,
            },
            runs: 3,
            verified: 3,
            gbit_per_s: s,
            all_cpu_s_per_gib: s,
            process_cpu_s_per_gib: s,
            sender_sys_s: s,
            sender_sys_s_per_gib: s,
            sender_syscalls: s,
            sender_syscalls_per_gib: s,
            context_switches: s,
            cached_after_bytes: s,
            out_cached_after_bytes: s,
            receiver_cpu_s_per_gib: s,
            sender_cpu_s_per_gib: s,
            zerocopy_copied: None,
            kernel_copies_per_byte: None,
            inferred_copies_per_byte: None,
        }
    }

    #[test]
    fn percentiles_draw_a_line_per_series_on_a_log_scale() {
        let svg = percentiles("RTT", &["p50", "p99"], &[("udp".into(), vec![50.0, 70.0]), ("af-xdp".into(), vec![3.7, 4.4])]);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4);
        // Decades 1, 10, 100 bound 3.7 to 70.
        for d in [">1.00<", ">10.0<", ">100<"] {
            assert!(svg.contains(d), "{d}: {svg}");
        }
        assert!(svg.contains(">af-xdp<") && !svg.contains(">p99.9<"));
    }

    #[test]
    fn ceilings_are_dashed_lines_and_widen_the_scale() {
        let rows = [row(Mode::Sendfile, 20.0, 18.0, 25.0)];
        let lines = [Ceiling { name: "memcpy".into(), gbit_per_s: 100.0 }];
        let svg = bars("T", "Gbit/s", &rows, &[], &lines, THROUGHPUT_COLORS, |m| m.gbit_per_s);
        // The line, and its sample in the legend.
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains(">memcpy 100<"), "{svg}");
        let area = W - BAR_AREA_LEFT - 90.0;
        assert!(svg.contains(&format!("width=\"{:.1}\"", area * 20.0 / 100.0)), "the scale runs to the ceiling: {svg}");
    }

    #[test]
    fn ceilings_close_together_get_legend_rows_that_do_not_overlap() {
        let rows = [row(Mode::AfXdp, 3.0, 2.5, 3.5)];
        let lines: Vec<Ceiling> =
            [("disk", 7.3), ("frames, 1 descriptor", 5.07), ("frames, 1024 B", 4.64), ("frames, 2 descriptors", 3.84)]
                .iter()
                .map(|(n, g)| Ceiling { name: n.to_string(), gbit_per_s: *g })
                .collect();
        let svg = bars("T", "Gbit/s", &rows, &[], &lines, THROUGHPUT_COLORS, |m| m.gbit_per_s);
        // Each label's (x, y): all start at one x, each on a row of its own, 16 px apart.
        let mut at: Vec<(String, f64)> = Vec::new();
        for l in &lines {
            let needle = format!(">{} {}<", l.name, fmt(l.gbit_per_s));
            let end = svg.find(&needle).unwrap_or_else(|| panic!("{needle} in {svg}"));
            let tag = &svg[svg[..end].rfind("<text").unwrap()..end];
            let attr = |a: &str| -> String {
                let i = tag.find(&format!("{a}=\"")).unwrap() + a.len() + 2;
                tag[i..i + tag[i..].find('"').unwrap()].to_string()
            };
            at.push((attr("x"), attr("y").parse().unwrap()));
        }
        assert!(at.iter().all(|(x, _)| *x == at[0].0), "{at:?}");
        for w in at.windows(2) {
            assert!(w[1].1 - w[0].1 >= 14.0, "legend rows overlap: {at:?}");
        }
        // And each line has a style of its own.
        let styles: std::collections::BTreeSet<_> = LINE_STYLES.iter().take(lines.len()).collect();
        assert_eq!(styles.len(), lines.len());
    }

    #[test]
    fn one_bar_per_row_scaled_to_the_largest_max() {
        let rows = [row(Mode::Sendfile, 20.0, 18.0, 25.0), row(Mode::AfXdp, 4.0, 3.5, 4.5)];
        let svg = bars("T <1>", "Gbit/s", &rows, &[], &[], THROUGHPUT_COLORS, |m| m.gbit_per_s);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 2, "{svg}");
        assert!(svg.contains("T &lt;1&gt;"), "titles are escaped");
        assert!(svg.contains(">sendfile (warm)<") && svg.contains(">af-xdp (warm)<"));
        // The largest max (25) spans the whole bar area; sendfile's median bar is 20/25 of it.
        let area = W - BAR_AREA_LEFT - 90.0;
        assert!(svg.contains(&format!("width=\"{:.1}\"", area * 20.0 / 25.0)), "{svg}");
    }
}
