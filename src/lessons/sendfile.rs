//! Lesson 3: `sendfile()`: no user-space copy; the page cache is the buffer.
//!
//! The kernel hands page-cache pages to the socket by reference. So the
//! input must be something with pages to hand over: a file that can be
//! mapped, not a pipe. And the file must pass through the page cache: a
//! cold sendfile leaves the whole file there.

use super::{bytes, cached_of, cpu_per_gib, nearly_all_cached, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::file::{cached_bytes, sendfile, sendfile_from_position, Pipe};
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::Result;
use std::fs::File;
use std::io::Write;

pub const LESSON: Lesson = Lesson {
    number: 3,
    slug: "sendfile",
    title: "sendfile(): the page cache is the buffer",
    learn: "no user-space copy, page references instead; why the input must be a mappable file; what stays in the page cache",
    run,
    check: None,
};

/// `sendfile(socket, pipe, offset)` and `sendfile(socket, pipe, NULL)`:
/// the errors the kernel gives (None where it worked).
fn sendfile_from_a_pipe() -> Result<(Option<std::io::Error>, Option<std::io::Error>)> {
    let pipe = Pipe::new()?;
    let mut w = File::from(pipe.write);
    w.write_all(b"bytes in a pipe have no page-cache page to hand over")?;
    let input = File::from(pipe.read);
    let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    let mut off = 0u64;
    let with_offset = sendfile(&a, &input, &mut off, 16).err();
    let from_position = sendfile_from_position(&a, &input, 16).err();
    Ok((with_offset, from_position))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let rw = lab.transfer(Mode::ReadWrite, DEFAULT_CHUNK, false)?;
    let sf = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, false)?;
    let cold = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, true)?;
    let row = |name: &str, r: &crate::report::RunReport| {
        let k = r.kernel.as_ref().and_then(|k| k.sender.as_ref());
        let opt = |v: Option<u64>| v.map_or_else(|| "n/a".into(), |v| v.to_string());
        vec![
            name.to_string(),
            r.sender.syscalls.to_string(),
            format!("{:.3}", r.sender.cpu_sys_s),
            format!("{:.3}", cpu_per_gib(r)),
            format!("{:.2}", r.gbit_per_s),
            opt(k.and_then(|k| k.tcp_sent_copied_bytes)),
            opt(k.and_then(|k| k.tcp_sent_page_ref_bytes)),
        ]
    };
    let (with_offset, from_position) = sendfile_from_a_pipe()?;
    let einval = from_position.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL);
    let said = |e: Option<std::io::Error>| e.map_or_else(|| "success".to_string(), |e| e.to_string());
    let after_cold = cold.source_cached_after_bytes;
    let probe = cached_bytes(&File::open(&lab.file)?)?;
    let mut claims = vec![
        Claim::new(
            "sendfile's input must be a file with pages (mappable): from a pipe it fails with EINVAL",
            einval,
            format!(
                "sendfile(socket, pipe, NULL) returned {}; with an offset it returned {} (a pipe has no offsets to read at)",
                said(from_position),
                said(with_offset)
            ),
        ),
        Claim::new(
            "A cold sendfile reads the file into the page cache and leaves it there (at least 99% of it: the kernel may reclaim a clean page at any time)",
            cold.source_cached_before_bytes == 0 && nearly_all_cached(after_cold, lab.size),
            format!(
                "cached before {} (evicted), after: {} (now {})",
                bytes(cold.source_cached_before_bytes),
                cached_of(after_cold, lab.size),
                cached_of(probe, lab.size)
            ),
        ),
        Claim::new(
            "sendfile costs the sender less system CPU than read() + write() (one copy fewer)",
            sf.sender.cpu_sys_s < rw.sender.cpu_sys_s,
            format!("sender sys {:.3} s against {:.3} s (a speed claim: noisy here)", sf.sender.cpu_sys_s, rw.sender.cpu_sys_s),
        ),
    ];
    let mut notes = Vec::new();
    let kinds = |r: &crate::report::RunReport| {
        let k = r.kernel.as_ref()?.sender.as_ref()?;
        Some((k.tcp_sent_copied_bytes?, k.tcp_sent_page_ref_bytes?))
    };
    match (kinds(&sf), kinds(&rw)) {
        (Some((sf_copied, sf_refs)), Some((rw_copied, _))) => claims.push(Claim::new(
            "The kernel sends sendfile's bytes as page references, read-write's as copies from user memory",
            sf_refs >= lab.size && sf_copied * 100 < lab.size && rw_copied >= lab.size,
            format!("sendfile: {sf_refs} B by reference, {sf_copied} B copied; read-write: {rw_copied} B copied"),
        )),
        _ => notes.push("the kernel's own count of how the bytes were sent needs --trace (and its tracepoints)".into()),
    }
    Ok(Findings {
        lesson: 3,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: "The same file by read-write and by sendfile (warm), then sendfile cold".into(),
            columns: ["path", "syscalls", "snd sys s", "CPU s/GiB", "Gbit/s", "TCP B copied", "TCP B by ref"]
                .map(String::from)
                .to_vec(),
            rows: vec![row("read-write", &rw), row("sendfile", &sf), row("sendfile cold", &cold)],
            chart: None,
            label_columns: 1,
            under: None,
        }],
        claims,
        notes,
    })
}
