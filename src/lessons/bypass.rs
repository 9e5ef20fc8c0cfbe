//! Lesson 13: where bypass pays.
//!
//! Bulk bytes over a copy-mode veth are the kernel's ground: it moves 64 KB
//! packets (GSO) at once, and AF_XDP moves frames one by one. Small
//! messages turn the contest around: every message costs the socket layer,
//! a syscall and, for a receiver that sleeps, a wake-up. This lesson streams
//! 64-byte messages by kernel UDP (one call per message, and batched) and by
//! AF_XDP, then times round trips by each, blocking, spinning and busy
//! polling, and checks four claims against what it measured.

use super::{Claim, Experiment, Findings, Lab, Lesson};
use crate::messages::latency::LatencyReport;
use crate::messages::rate::RateReport;
use anyhow::{Context, Result};

pub const LESSON: Lesson = Lesson {
    number: 13,
    slug: "bypass",
    title: "Where bypass pays: small messages, packet rate and round trips",
    learn: "what a message costs the kernel's socket path (a syscall, the socket layer, a wake-up), what AF_XDP leaves out, and why a spinning receiver answers sooner than a sleeping one",
    run,
    check: None,
};

/// Runs `zclab CMD --env ENV --pin --json ARGS` and reads its report.
fn session<T: serde::de::DeserializeOwned>(lab: &Lab, cmd: &str, args: &[&str]) -> Result<T> {
    super::progress(&format!("{cmd} {}", args.join(" ")));
    let exe = std::env::current_exe().context("cannot find the zclab executable")?;
    let env = lab.names().name.clone();
    let mut all = vec![cmd, "--env", env.as_str(), "--json"];
    if crate::sys::sched::cpus() >= 2 {
        all.push("--pin");
    }
    all.extend_from_slice(args);
    let out = std::process::Command::new(exe).args(&all).stderr(std::process::Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "`zclab {}` failed", all.join(" "));
    serde_json::from_slice(&out.stdout).with_context(|| format!("`zclab {}` printed no report", all.join(" ")))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    // The lesson's --size sets how long it measures: a small file, a short lesson.
    let quick = lab.size <= 16 << 20;
    let (secs, trips) = if quick { ("0.5", "3000") } else { ("2", "20000") };

    let mut rates = Vec::new();
    for mode in ["udp", "udp-mmsg", "af-xdp"] {
        let r: RateReport = session(lab, "rate", &["--mode", mode, "--duration", secs])?;
        rates.push(r);
    }
    let rate_rows = rates
        .iter()
        .map(|r| {
            vec![
                r.mode.name().to_string(),
                format!("{:.0}", r.delivered_per_s / 1e3),
                format!("{:.2}", r.loss_pct),
                format!("{:.2}", r.client.cpu_us_per_msg),
                format!("{:.2}", r.server.cpu_us_per_msg),
                format!("{:.3}", r.client.syscalls_per_msg),
                format!("{:.3}", r.server.syscalls_per_msg),
            ]
        })
        .collect();

    let styles: [(&str, &[&str], &str); 6] = [
        ("udp", &[], "block"),
        ("udp", &["--spin"], "spin"),
        ("udp", &["--busy-poll", "50"], "busy-poll 50us"),
        ("tcp", &[], "block"),
        ("af-xdp", &[], "block"),
        ("af-xdp", &["--spin"], "spin"),
    ];
    let mut lats: Vec<(&str, &str, LatencyReport)> = Vec::new();
    for (mode, wait, name) in styles {
        let mut args = vec!["--mode", mode, "--count", trips, "--warmup", "500"];
        args.extend_from_slice(wait);
        lats.push((mode, name, session(lab, "latency", &args)?));
    }
    let lat_rows = lats
        .iter()
        .map(|(mode, wait, r)| {
            vec![
                mode.to_string(),
                wait.to_string(),
                format!("{:.1}", r.p50_us),
                format!("{:.1}", r.p99_us),
                format!("{:.1}", r.p999_us),
                format!("{:.2}", r.server.ctx_switches_per_msg),
                format!("{:.2}", r.server.syscalls_per_msg),
                format!("{:.2}", r.server.cpu_us_per_msg),
            ]
        })
        .collect();

    let rate_of = |m: &str| rates.iter().find(|r| r.mode.name() == m).map_or(0.0, |r| r.delivered_per_s);
    let lat_of = |m: &str, w: &str| lats.iter().find(|(mm, ww, _)| *mm == m && *ww == w).map(|x| &x.2).expect("measured");
    let (xdp, udp, mmsg) = (rate_of("af-xdp"), rate_of("udp"), rate_of("udp-mmsg"));
    let best_udp = udp.max(mmsg);
    let (block, spin, busy) = (lat_of("udp", "block"), lat_of("udp", "spin"), lat_of("udp", "busy-poll 50us"));
    let (xdp_spin, xdp_block) = (lat_of("af-xdp", "spin"), lat_of("af-xdp", "block"));

    let claims = vec![
        Claim::new(
            "AF_XDP delivers more 64-byte messages per second than the kernel's best UDP mode",
            xdp > best_udp,
            format!(
                "af-xdp {:.0} k/s; udp {:.0} k/s, udp-mmsg {:.0} k/s: {:.2}x the better one",
                xdp / 1e3,
                udp / 1e3,
                mmsg / 1e3,
                xdp / best_udp.max(1.0)
            ),
        ),
        Claim::new(
            "A blocking receiver sleeps about once per message, a spinning one almost never",
            (0.5..=1.5).contains(&block.server.ctx_switches_per_msg) && spin.server.ctx_switches_per_msg < 0.05,
            format!(
                "udp server: {:.2} voluntary context switches per message blocking, {:.3} spinning",
                block.server.ctx_switches_per_msg, spin.server.ctx_switches_per_msg
            ),
        ),
        {
            // Busy polling works when the receiver stops sleeping; a p50 a little lower
            // with a sleep per message still is the noise of one run, not busy polling.
            let polled = busy.server.ctx_switches_per_msg < 0.5;
            let holds = polled && busy.p50_us < 0.9 * block.p50_us;
            Claim::new(
                "Busy polling (SO_BUSY_POLL 50 us) shortens the UDP round trip",
                holds,
                format!(
                    "p50 {:.1} us busy polling against {:.1} us blocking; the server slept {:.2} times per message busy polling{}",
                    busy.p50_us,
                    block.p50_us,
                    busy.server.ctx_switches_per_msg,
                    if polled {
                        ""
                    } else {
                        " (the server still slept for every message: busy polling never caught one on this veth)"
                    }
                ),
            )
        },
        Claim::new(
            "AF_XDP's round trip is shorter than kernel UDP's, each at its best (both ends spinning)",
            xdp_spin.p50_us < spin.p50_us && xdp_spin.p99_us <= spin.p99_us,
            format!(
                "af-xdp p50 {:.1} us, p99 {:.1}; udp p50 {:.1} us, p99 {:.1} (blocking: af-xdp {:.1}, udp {:.1})",
                xdp_spin.p50_us, xdp_spin.p99_us, spin.p50_us, spin.p99_us, xdp_block.p50_us, block.p50_us
            ),
        ),
    ];
    Ok(Findings {
        lesson: 13,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: format!("A one-way stream of 64-byte messages for {secs} s (zclab rate)"),
                columns: [
                    "mode",
                    "k msg/s delivered",
                    "lost %",
                    "sender CPU us/msg",
                    "receiver CPU us/msg",
                    "sender syscalls/msg",
                    "receiver syscalls/msg",
                ]
                .map(String::from)
                .to_vec(),
                rows: rate_rows,
                chart: Some(1),
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: format!("Round trips of 64-byte messages, {trips} timed (zclab latency)"),
                columns: [
                    "mode",
                    "wait",
                    "p50 us",
                    "p99 us",
                    "p99.9 us",
                    "server sleeps/msg",
                    "server syscalls/msg",
                    "server CPU us/msg",
                ]
                .map(String::from)
                .to_vec(),
                rows: lat_rows,
                chart: Some(2),
                label_columns: 2,
                under: None,
            },
        ],
        claims,
        notes: vec![
            "A spinning end's CPU per message is its whole CPU over the run: it never sleeps, so it pays for the waiting too."
                .into(),
        ],
    })
}
