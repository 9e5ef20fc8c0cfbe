//! Lesson 1: the traditional path, `read()` + `write()`.
//!
//! Per chunk the sender makes two syscalls (four mode switches), and the
//! CPU copies every byte twice: page cache into the user buffer, user
//! buffer into socket buffers. The chunk size decides how many syscalls a
//! GiB costs; the copies stay, whatever the chunk.

use super::{bytes, cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::transfer::Mode;
use anyhow::Result;

pub const LESSON: Lesson = Lesson {
    number: 1,
    slug: "read-write",
    title: "The traditional path: read() + write()",
    learn: "two syscalls and two CPU copies per chunk; what the chunk size changes and what it does not",
    run,
    check: None,
};

const CHUNKS: [u64; 6] = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

fn run(lab: &mut Lab) -> Result<Findings> {
    let gib = lab.size as f64 / (1u64 << 30) as f64;
    let mut rows = Vec::new();
    let mut per_chunk_ok = true;
    let mut per_chunk_evidence = Vec::new();
    let mut syscalls_per_gib = Vec::new();
    let mut copied = Vec::new();
    for chunk in CHUNKS {
        let r = lab.transfer(Mode::ReadWrite, chunk as usize, false)?;
        let chunks = lab.size.div_ceil(chunk);
        let calls = r.sender.syscalls;
        // A write may take more than one call when the socket buffer fills (a tenth more is allowed); never fewer than two per chunk.
        per_chunk_ok &= calls >= 2 * chunks && calls <= 2 * chunks + chunks / 10 + 2;
        per_chunk_evidence.push(format!("{}: {calls} calls for {chunks} chunks", bytes(chunk)));
        syscalls_per_gib.push(calls as f64 / gib);
        if let Some(k) = r.kernel.as_ref().and_then(|k| k.sender.as_ref()) {
            copied.push(k.tcp_sent_copied_bytes);
        }
        rows.push(vec![
            bytes(chunk),
            calls.to_string(),
            format!("{:.0}", calls as f64 / gib),
            format!("{:.3}", cpu_per_gib(&r)),
            format!("{:.2}", r.gbit_per_s),
        ]);
    }
    let fewer = syscalls_per_gib.windows(2).all(|w| w[1] < w[0]);
    // The other end: the same sends, a receiver that read()s against one that splices.
    let mut receivers = Vec::new();
    for via in [crate::transfer::mode::Via::Read, crate::transfer::mode::Via::Splice] {
        let r = lab.transfer_with(Mode::ReadWrite, crate::transfer::DEFAULT_CHUNK, false, via, None)?;
        anyhow::ensure!(r.verified, "the read-write transfer did not verify: {}", r.reason.clone().unwrap_or_default());
        receivers.push((via, r));
    }
    let mut claims = vec![
        Claim::new(
            "Each chunk costs two syscalls, read() then write(): four mode switches",
            per_chunk_ok,
            per_chunk_evidence.join("; "),
        ),
        Claim::new(
            "Bigger chunks need fewer syscalls per GiB",
            fewer,
            format!("{:.0} per GiB at 4 KiB down to {:.0} at 4 MiB", syscalls_per_gib[0], syscalls_per_gib[5]),
        ),
    ];
    let cpu: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap_or(0.0)).collect();
    claims.push(Claim::new(
        "Bigger chunks cost less CPU per GiB (fewer calls; the copies stay)",
        cpu[5] < cpu[0],
        format!("{:.3} CPU s/GiB at 4 KiB, {:.3} at 4 MiB (both ends; a speed claim: noisy here)", cpu[0], cpu[5]),
    ));
    let (rd, sp) = (&receivers[0].1, &receivers[1].1);
    claims.push(Claim::new(
        "On the receiving side, read() is the same story again: it costs more system CPU than splice, which copies once",
        rd.receiver.cpu_sys_s > sp.receiver.cpu_sys_s,
        format!(
            "receiver sys s: read {:.3} ({} calls), splice {:.3} ({} calls) (a speed claim: noisy here)",
            rd.receiver.cpu_sys_s, rd.receiver.syscalls, sp.receiver.cpu_sys_s, sp.receiver.syscalls
        ),
    ));
    let mut notes = Vec::new();
    if copied.len() == CHUNKS.len() && copied.iter().all(Option::is_some) {
        let least = copied.iter().flatten().min().copied().unwrap_or(0);
        claims.push(Claim::new(
            "The kernel copies every byte of the file from user memory into the socket (whatever the chunk)",
            least >= lab.size,
            format!("TCP bytes sent copied from user memory, fewest over the sweep: {least} of {}", lab.size),
        ));
    } else {
        notes.push("the kernel's own count of the copies needs --trace (and its tracepoints)".into());
    }
    Ok(Findings {
        lesson: 1,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: "Chunk sweep: zclab run --mode read-write --chunk C".into(),
                columns: ["chunk", "syscalls", "syscalls/GiB", "CPU s/GiB", "Gbit/s"].map(String::from).to_vec(),
                rows,
                chart: Some(4),
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: "The receiving end of read-write (128 KiB sends): zclab run --via read | splice".into(),
                columns: ["receiver", "rcv syscalls", "rcv sys s", "CPU s/GiB", "Gbit/s"].map(String::from).to_vec(),
                rows: receivers
                    .iter()
                    .map(|(v, r)| {
                        vec![
                            v.name().to_string(),
                            r.receiver.syscalls.to_string(),
                            format!("{:.3}", r.receiver.cpu_sys_s),
                            format!("{:.3}", cpu_per_gib(r)),
                            format!("{:.2}", r.gbit_per_s),
                        ]
                    })
                    .collect(),
                chart: None,
                label_columns: 1,
                under: None,
            },
        ],
        claims,
        notes,
    })
}
