//! Lesson 5: `splice()`: page references through a pipe.
//!
//! A pipe is a ring of `pipe_buffer`s: each one a page, an offset and a
//! length. `splice(file -> pipe)` fills them with references to page-cache
//! pages; `splice(pipe -> socket)` hands the references to TCP. No CPU
//! copy, but one end of every splice must be a pipe, so it takes two calls
//! per chunk, and the pipe's size bounds how much one call moves.

use super::{bytes, cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::file::{splice, Pipe};
use crate::transfer::Mode;
use anyhow::Result;
use std::fs::File;

pub const LESSON: Lesson = Lesson {
    number: 5,
    slug: "splice",
    title: "splice(): page references through a pipe",
    learn: "why one end must be a pipe, two calls per chunk, and how the pipe's size (F_SETPIPE_SZ) bounds each call",
    run,
    check: None,
};

/// zclab's splice sender sizes its pipe to the chunk, so this sweeps both.
const SIZES: [u64; 5] = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];

/// Pipe sizes the kernel grants for some requests (it rounds up to a power of two pages).
fn granted_sizes() -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for want in [4096usize, 5000, 65536, 100_000, 1 << 20] {
        let p = Pipe::new()?;
        out.push((want, p.set_size(want)?));
    }
    Ok(out)
}

/// `splice(file -> socket)`: neither end a pipe.
fn splice_without_a_pipe(file: &File) -> Option<std::io::Error> {
    let (a, _b) = match std::os::unix::net::UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let mut off = 0u64;
    splice(file, Some(&mut off), &a, 4096, 0).err()
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let gib = lab.size as f64 / (1u64 << 30) as f64;
    let mut rows = Vec::new();
    let mut two_per_chunk = true;
    let mut calls_evidence = Vec::new();
    let mut refs = Vec::new();
    for size in SIZES {
        let r = lab.transfer(Mode::Splice, size as usize, false)?;
        let chunks = lab.size.div_ceil(size);
        let calls = r.sender.syscalls;
        // One F_SETPIPE_SZ, then file->pipe and pipe->socket per chunk (a socket may take a chunk in two calls).
        two_per_chunk &= calls > 2 * chunks && calls <= 1 + 2 * chunks + chunks / 10 + 2;
        calls_evidence.push(format!("{}: {calls} for {chunks} chunks", bytes(size)));
        refs.push(r.kernel.as_ref().and_then(|k| k.sender.as_ref()).and_then(|k| k.tcp_sent_page_ref_bytes));
        rows.push(vec![
            bytes(size),
            calls.to_string(),
            format!("{:.0}", calls as f64 / gib),
            format!("{:.3}", cpu_per_gib(&r)),
            format!("{:.2}", r.gbit_per_s),
        ]);
    }
    let granted = granted_sizes()?;
    let rounding = granted.iter().all(|&(want, got)| {
        let pages = got / crate::sys::page_size();
        got >= want && pages.is_power_of_two() && (got / 2 < want || got == crate::sys::page_size())
    });
    let no_pipe = splice_without_a_pipe(&File::open(&lab.file)?);
    let cpu: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap_or(0.0)).collect();
    let mut claims = vec![
        Claim::new(
            "One end of a splice must be a pipe: file to socket directly fails with EINVAL",
            no_pipe.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
            format!("splice(file, socket) returned {}", no_pipe.map_or_else(|| "success".into(), |e| e.to_string())),
        ),
        Claim::new(
            "Each chunk takes two splices: file into the pipe, pipe into the socket",
            two_per_chunk,
            format!("sender calls (one F_SETPIPE_SZ, then the splices): {}", calls_evidence.join("; ")),
        ),
        Claim::new(
            "The kernel rounds a pipe's size up to a power of two pages (F_SETPIPE_SZ)",
            rounding,
            granted.iter().map(|(w, g)| format!("asked {w}, got {g}")).collect::<Vec<_>>().join("; "),
        ),
        Claim::new(
            "A bigger pipe moves the file with less CPU per GiB",
            cpu[cpu.len() - 1] < cpu[0],
            format!(
                "{:.3} CPU s/GiB with a 4 KiB pipe, {:.3} with 1 MiB (a speed claim: noisy here)",
                cpu[0],
                cpu[cpu.len() - 1]
            ),
        ),
    ];
    let mut notes = Vec::new();
    if refs.iter().all(Option::is_some) {
        let least = refs.iter().flatten().min().copied().unwrap_or(0);
        claims.push(Claim::new(
            "The kernel sends every byte as page references, whatever the pipe's size",
            least >= lab.size,
            format!("TCP bytes sent by reference, fewest over the sweep: {least} of {}", lab.size),
        ));
    } else {
        notes.push("the kernel's own count of page references needs --trace (and its tracepoints)".into());
    }
    Ok(Findings {
        lesson: 5,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: "Pipe-size sweep: zclab run --mode splice --chunk C (the pipe is sized to the chunk)".into(),
            columns: ["pipe", "syscalls", "syscalls/GiB", "CPU s/GiB", "Gbit/s"].map(String::from).to_vec(),
            rows,
            chart: Some(3),
            label_columns: 1,
            under: None,
        }],
        claims,
        notes,
    })
}
