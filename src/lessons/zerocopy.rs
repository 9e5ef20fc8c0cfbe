//! Lesson 6: `MSG_ZEROCOPY` and io_uring `SEND_ZC`.
//!
//! The kernel pins the sender's pages and puts references to them in the
//! skbs instead of copying; because the pages stay in use after `send`
//! returns, it reports later (on the socket's error queue, or as io_uring
//! notifications) when it let go of them, and whether it had to copy after
//! all. Pinning and the notifications cost something per send, so zero
//! copy pays only for large sends; and when a packet crosses into another
//! namespace over veth, the kernel copies it anyway.

use super::{bytes, cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::report::RunReport;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::Result;

pub const LESSON: Lesson = Lesson {
    number: 6,
    slug: "zerocopy-send",
    title: "MSG_ZEROCOPY and io_uring SEND_ZC: pinned pages and their notifications",
    learn: "what zero-copy sends cost (pinning, completions, extra syscalls), from what send size they pay, and why over veth every one is copied anyway",
    run,
    check: None,
};

const SIZES: [u64; 6] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

fn zc_cell(r: &RunReport) -> String {
    r.zerocopy.as_ref().map_or_else(|| "-".into(), |z| format!("{}/{}", z.copied, z.completions))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let mut rows = Vec::new();
    let mut all_copied = true;
    let mut copied_evidence = Vec::new();
    let mut more_calls = true;
    let mut calls_evidence = Vec::new();
    let mut pays = Vec::new();
    let mut cpu_evidence = Vec::new();
    let mut pinned = Vec::new();
    for size in SIZES {
        let zc = lab.transfer(Mode::MsgZerocopy, size as usize, false)?;
        let plain = lab.transfer(Mode::MmapWrite, size as usize, false)?;
        let z = zc.zerocopy.clone().unwrap_or_default();
        all_copied &= z.completions > 0 && z.copied == z.completions;
        copied_evidence.push(format!("{}: {}/{}", bytes(size), z.copied, z.completions));
        more_calls &= zc.sender.syscalls > plain.sender.syscalls;
        calls_evidence.push(format!("{}: {} against {}", bytes(size), zc.sender.syscalls, plain.sender.syscalls));
        let (c_zc, c_plain) = (cpu_per_gib(&zc), cpu_per_gib(&plain));
        pays.push(c_zc <= c_plain);
        cpu_evidence.push(format!("{}: {c_zc:.3} vs {c_plain:.3}", bytes(size)));
        pinned.push(zc.kernel.as_ref().and_then(|k| k.sender.as_ref()).and_then(|k| k.tcp_sent_zerocopy_bytes));
        for (name, r) in [("msg-zerocopy", &zc), ("mmap-write", &plain)] {
            rows.push(vec![
                bytes(size),
                name.to_string(),
                r.sender.syscalls.to_string(),
                format!("{:.3}", r.sender.cpu_sys_s),
                format!("{:.3}", cpu_per_gib(r)),
                format!("{:.2}", r.gbit_per_s),
                zc_cell(r),
            ]);
        }
    }
    // The crossover: the smallest size from which zero copy pays at every larger size too.
    let pays_from = (0..SIZES.len()).find(|&i| pays[i..].iter().all(|&p| p)).map(|i| SIZES[i]);
    let uring = lab.transfer(Mode::IoUringZc, DEFAULT_CHUNK, false)?;
    let uz = uring.zerocopy.clone().unwrap_or_default();
    rows.push(vec![
        bytes(DEFAULT_CHUNK as u64),
        "io-uring-zc".into(),
        uring.sender.syscalls.to_string(),
        format!("{:.3}", uring.sender.cpu_sys_s),
        format!("{:.3}", cpu_per_gib(&uring)),
        format!("{:.2}", uring.gbit_per_s),
        zc_cell(&uring),
    ]);
    let mut claims = vec![
        Claim::new(
            "Between two namespaces over veth, every zero-copy send is copied after all (SO_EE_CODE_ZEROCOPY_COPIED, \
             IORING_NOTIF_USAGE_ZC_COPIED)",
            all_copied && uz.completions > 0 && uz.copied == uz.completions,
            format!("copied/completions: {}; io-uring-zc {}/{}", copied_evidence.join(", "), uz.copied, uz.completions),
        ),
        Claim::new(
            "MSG_ZEROCOPY costs more syscalls than a plain write() of the same sizes: its completions are polled for and read \
             from the error queue",
            more_calls,
            format!("sender syscalls, msg-zerocopy against mmap-write: {}", calls_evidence.join("; ")),
        ),
        Claim::new(
            "Zero copy pays (less CPU per GiB than write()) for every send of about 10 KB and up",
            pays_from.is_some_and(|s| s <= 16 << 10),
            format!(
                "{}; CPU s/GiB of both ends, msg-zerocopy vs mmap-write: {} (a speed claim: noisy here)",
                pays_from.map_or_else(|| "it never paid in this sweep".to_string(), |s| format!("it paid from {}", bytes(s))),
                cpu_evidence.join(", ")
            ),
        ),
    ];
    let mut notes = Vec::new();
    if pinned.iter().all(Option::is_some) {
        let least = pinned.iter().flatten().min().copied().unwrap_or(0);
        claims.push(Claim::new(
            "The kernel took every byte as pinned pages (MSG_ZEROCOPY): the later copy is where no tracepoint looks",
            least >= lab.size,
            format!("TCP bytes sent as pinned pages, fewest over the sweep: {least} of {}", lab.size),
        ));
    } else {
        notes.push("the kernel's own count of pinned bytes needs --trace (and its tracepoints)".into());
    }
    Ok(Findings {
        lesson: 6,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: "Send-size sweep: msg-zerocopy against write() from the same mapping (mmap-write), then io-uring-zc".into(),
            columns: ["send size", "path", "syscalls", "snd sys s", "CPU s/GiB", "Gbit/s", "zc copied"]
                .map(String::from)
                .to_vec(),
            rows,
            chart: Some(4),
            label_columns: 2,
            under: None,
        }],
        claims,
        notes,
    })
}
