//! report.html: one self-contained page with the charts inline, the table,
//! the machine, and a paragraph per chart saying what it shows.

use super::{BenchConfig, Ceiling, Spread, Summary};
use crate::report::human_bytes;
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What this machine is: CPU model, cores, kernel, the filesystem the file was on.
pub fn machine(out: &std::path::Path) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']).to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && out.starts_with(f[1])).then(|| (f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])))
        })
        .max()
        .map(|x| x.1)
        .unwrap_or_default();
    vec![
        ("CPU".into(), model.unwrap_or_else(|| "unknown".into())),
        ("cores".into(), crate::sys::sched::cpus().to_string()),
        ("kernel".into(), kernel),
        ("file system of the file".into(), fs),
    ]
}

/// What goes on the page.
pub struct Page<'a> {
    pub rows: &'a [Summary],
    pub gbit_svg: &'a str,
    pub cpu_svg: &'a str,
    pub sweeps: &'a [(&'a str, String)],
    pub ceilings: &'a [Ceiling],
    pub peers: &'a [(String, Spread)],
    /// The file was on a filesystem with direct I/O.
    pub direct: bool,
    /// The small-message section: its result, the rate chart, the percentile chart.
    pub messages: Option<(&'a super::messages::MsgResult, &'a str, &'a str)>,
    /// The HTTP download section: each server's figures and the chart.
    pub http: Option<(&'a [super::http_download::HttpSummary], &'a str)>,
}

pub fn report(cfg: &BenchConfig, page: &Page<'_>) -> String {
    let Page { rows, messages, .. } = *page;
    let mut s = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>zclab bench</title>\n<style>\
         body{font-family:sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
         .wide{overflow-x:auto;max-width:100%}.wide table{font-size:13px}.wide td{white-space:nowrap}\
         td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}</style></head><body>\n<h1>zclab bench</h1>\n",
    );
    if !rows.is_empty() {
        file_section(&mut s, cfg, page);
    }
    if let Some((rows, svg)) = page.http {
        http_section(&mut s, cfg, rows, svg);
    }
    if let Some((m, rate, pct)) = messages {
        message_section(&mut s, cfg, m, rate, pct);
    }
    s += "<h2>The machine</h2>\n<table>\n";
    for (k, v) in machine(&cfg.out) {
        let _ = writeln!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    s += "</table>\n<p>runs.json has every run's full report; summary.csv these figures.</p>\n</body></html>\n";
    s
}

/// The HTTP download section: curl from each server.
fn http_section(s: &mut String, cfg: &BenchConfig, rows: &[super::http_download::HttpSummary], svg: &str) {
    *s += "<h2>HTTP download</h2>\n";
    *s += svg;
    let _ = writeln!(
        s,
        "\n<p>curl in the receiving namespace downloads the {} file from each server in the sending namespace, {} time(s), \
         the servers taking turns: <code>zclab http --mode af-xdp-tcp</code> (zclab's own TCP on AF_XDP), \
         <code>zclab http --mode sendfile</code> (the same server on the kernel's TCP) and nginx with <code>sendfile on</code>. \
         The same client for all three: curl's own receiving and writing is in every figure alike. Each copy is compared \
         with the file byte for byte.</p>",
        human_bytes(cfg.sizes[0]),
        cfg.runs
    );
    *s += "<div class=\"wide\"><table>\n<tr><th>server</th><th>Gbit/s median</th><th>min</th><th>max</th><th>intact</th></tr>\n";
    for r in rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}/{}</td></tr>",
            esc(&r.server),
            r.gbit_per_s.median,
            r.gbit_per_s.min,
            r.gbit_per_s.max,
            r.verified,
            r.runs
        );
    }
    *s += "</table></div>\n";
}

/// The file paths' charts and table.
fn file_section(s: &mut String, cfg: &BenchConfig, page: &Page<'_>) {
    let Page { rows, gbit_svg, cpu_svg, sweeps, ceilings, peers, direct, .. } = *page;
    let _ = writeln!(
        s,
        "<p>{} of random data, moved {} time(s) by each of {} path(s), {} cache; the runs interleaved (every path once, then \
         again) after a first round that is not counted, the receiver's output preallocated{}, {}. Each figure is the median \
         of its runs, with the smallest and largest.</p>",
        cfg.sizes.iter().map(|&b| human_bytes(b)).collect::<Vec<_>>().join(", "),
        cfg.runs,
        cfg.modes.len(),
        cfg.caches.iter().map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>().join(" and "),
        if cfg.direct {
            " (for af-xdp direct, whose receiver writes with O_DIRECT from its UMEM and so neither uses nor fills \
             its page cache, its blocks on the disk, by O_DIRECT; \"cached after\" gives the file's bytes in the page cache \
             of the source and of the received file)"
        } else {
            ""
        },
        if cfg.pin { "the sender on CPU 0 and the receiver on CPU 1" } else { "both ends placed by the scheduler (--no-pin)" }
    );
    if !direct {
        *s += "<p><b>The file was on a filesystem without direct I/O (tmpfs?):</b> cold runs are not cold, and af-xdp could not skip the page cache.</p>\n";
    }
    *s += "<h2>Throughput</h2>\n";
    *s += gbit_svg;
    *s += "\n<p>Gigabits per second from the sender's first control message to the receiver's confirmation of the last byte. \
          The whisker spans the fastest and slowest run: where whiskers overlap, the paths are not told apart by this bench.</p>\n";
    if !peers.is_empty() {
        let p: Vec<String> = peers.iter().map(|(n, s)| format!("{} {:.2} Gbit/s", esc(n), s.median)).collect();
        let _ = writeln!(
            s,
            "<p>The grey bars are iperf3 on the same environment and file ({}). iperf3's -Z -F reads the file into a temporary \
             file of its own and sendfile()s from that.</p>",
            p.join("; ")
        );
    }
    if !ceilings.is_empty() {
        let lines: Vec<String> = ceilings.iter().map(|c| format!("{} {:.1} Gbit/s", esc(&c.name), c.gbit_per_s)).collect();
        let _ = writeln!(
            s,
            "<p>The dashed lines were measured in the same bench: {}. No path that copies each byte can be faster than one \
             core's memory copy, and a cold run cannot be faster than the disk.</p>",
            lines.join("; ")
        );
    }
    *s += "<h2>CPU per GiB</h2>\n";
    *s += cpu_svg;
    *s += "\n<p>Busy seconds of all CPUs (from /proc/stat) per GiB moved. On veth both ends and the link run on this machine, and \
          the kernel charges receive work to whatever process happens to run, so this total is fairer than each process's own time.</p>\n";
    for (what, svg) in sweeps {
        let _ = writeln!(s, "<h2>Sweep: {what}</h2>");
        *s += svg;
        let _ = writeln!(
            s,
            "<p>The median Gbit/s of each path at each {what}, one line per path: where a line rises, that path gains from a larger \
             {what}; where the lines of several paths meet, the {what} no longer tells them apart.</p>"
        );
    }
    *s += "<h2>All figures</h2>\n<div class=\"wide\"><table><tr><th>path</th><th>runs</th><th>Gbit/s median</th><th>min</th><th>max</th>\
          <th>all-CPU s/GiB</th><th>sender sys s/GiB</th><th>sender calls/GiB</th><th>context switches</th>\
          <th>receiver CPU s/GiB</th><th>cached after (source / received)</th><th>zero copy</th><th>kernel copies per byte (seen)</th><th>copies per byte (inferred)</th></tr>\n";
    let cells: Vec<super::Cell> = rows.iter().map(|r| r.cell).collect();
    for r in rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3}</td><td>{:.3}</td><td>{:.0}</td>\
             <td>{:.0}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.cell.label(&cells)),
            r.runs,
            if r.verified < r.runs { format!(" ({} NOT verified)", r.runs - r.verified) } else { String::new() },
            r.gbit_per_s.median,
            r.gbit_per_s.min,
            r.gbit_per_s.max,
            r.all_cpu_s_per_gib.median,
            r.sender_sys_s_per_gib.median,
            r.sender_syscalls_per_gib.median,
            r.context_switches.median,
            r.receiver_cpu_s_per_gib.median,
            esc(&r.cached_after()),
            esc(&r.zerocopy_verdict()),
            r.kernel_copies_per_byte.map_or_else(|| "n/a".into(), |k| format!("{:.2}", k.median)),
            r.inferred_copies_per_byte.map_or_else(|| "n/a".into(), |k| format!("{:.2}", k.median))
        );
    }
    *s += "</table></div>\n";
    for t in super::summary::targets(rows) {
        let _ = writeln!(s, "<p><b>{}</b></p>", esc(t.trim()).replace('\n', "<br>"));
    }
}

/// The small messages' charts and tables.
fn message_section(s: &mut String, cfg: &BenchConfig, m: &super::messages::MsgResult, rate: &str, pct: &str) {
    use super::messages::Workload;
    let _ = writeln!(
        s,
        "<h2>Small messages</h2>\n<p>{}-byte messages, {} run(s) of each setting, interleaved with the rest after a first round \
         that is not counted, {}. Each figure is the median of its runs.</p>",
        m.size,
        cfg.runs,
        if cfg.pin {
            "the client (sender) on CPU 0 and the server (receiver) on CPU 1"
        } else {
            "both ends placed by the scheduler"
        }
    );
    *s += "<h3>Rate</h3>\n";
    *s += rate;
    *s += "\n<p>Messages delivered per second of the receiver's window, one way, nothing sent again: a lost message is \
           counted, and the rate is what arrived. Kernel UDP pays a syscall and the socket layer per message (udp-mmsg shares \
           the syscall among 64); AF_XDP writes each message into a frame of its UMEM and kicks the TX ring once per batch.</p>\n";
    *s += "<div class=\"wide\"><table><tr><th>path</th><th>runs</th><th>k msg/s delivered</th><th>min</th><th>max</th><th>lost %</th>\
           <th>sender CPU us/msg</th><th>receiver CPU us/msg</th><th>sender calls/msg</th><th>receiver sleeps/msg</th></tr>\n";
    for r in m.summaries.iter().filter(|r| r.cell.workload == Workload::Rate) {
        let d = r.delivered_per_s.unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&r.cell.label()),
            r.runs,
            d.median / 1e3,
            d.min / 1e3,
            d.max / 1e3,
            r.loss_pct.unwrap_or_default().median,
            r.client_cpu_us_per_msg.median,
            r.server_cpu_us_per_msg.median,
            r.client_syscalls_per_msg.median,
            r.server_sleeps_per_msg.median
        );
    }
    *s += "</table></div>\n<h3>Round trips</h3>\n";
    *s += pct;
    *s += "\n<p>One message in flight; the client times every round trip into an HDR histogram. A line per path and way \
           of waiting, from the median round trip to the one in ten thousand. A blocking end sleeps in the kernel until the \
           message wakes it; a spinning one asks again and again and never sleeps; a busy-polling one lets the kernel poll \
           the device's queue before it sleeps (on a veth without XDP there is no queue context to poll).</p>\n";
    *s += "<div class=\"wide\"><table><tr><th>path</th><th>runs</th><th>p50 us</th><th>min</th><th>max</th><th>p90</th><th>p99</th><th>p99.9</th>\
           <th>p99.99</th><th>client CPU us/msg</th><th>server CPU us/msg</th><th>server sleeps/msg</th></tr>\n";
    for r in m.summaries.iter().filter(|r| r.cell.workload == Workload::Latency) {
        let med = |x: Option<Spread>| x.unwrap_or_default().median;
        let p50 = r.p50_us.unwrap_or_default();
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td>\
             <td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&r.cell.label()),
            r.runs,
            p50.median,
            p50.min,
            p50.max,
            med(r.p90_us),
            med(r.p99_us),
            med(r.p999_us),
            med(r.p9999_us),
            r.client_cpu_us_per_msg.median,
            r.server_cpu_us_per_msg.median,
            r.server_sleeps_per_msg.median
        );
    }
    *s += "</table></div>\n";
    for (name, p50, p99, p999) in &m.peers {
        let _ = writeln!(
            s,
            "<p>Peer: {} (blocking, same environment): round trip p50 {:.1} us ({:.1}-{:.1}), p99 {:.1}, p99.9 {:.1}; sockperf \
             prints half round trips, doubled here.</p>",
            esc(name),
            p50.median,
            p50.min,
            p50.max,
            p99.median,
            p999.median
        );
    }
}
