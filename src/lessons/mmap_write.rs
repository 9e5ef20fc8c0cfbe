//! Lesson 2: `mmap()` + `write()`.
//!
//! Mapping the file shares its page-cache pages with the process, so the
//! `read()` copy is gone: `write()` copies straight from the mapping into
//! socket buffers. Page faults take the place of the read calls. And a
//! mapping has a trap: when the file shrinks under it, the kernel's copy
//! from the mapping fails with EFAULT, and a touch in user space is SIGBUS.

use super::{bytes, cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::file::{map_for_reading, map_readonly};
use crate::sys::rusage::self_usage;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;

pub const LESSON: Lesson = Lesson {
    number: 2,
    slug: "mmap-write",
    title: "mmap() + write(): one copy fewer, page faults instead",
    learn: "what mapping a file saves and what it costs (page faults, and fault-around), MAP_POPULATE and MADV_SEQUENTIAL, and the shrinking-file trap: EFAULT and SIGBUS",
    run,
    check: None,
};

/// Touches one byte per page of a fresh mapping; returns the minor faults it took.
fn faults_touching(file: &File, populate: bool, sequential: bool) -> Result<u64> {
    let Some(map) = map_for_reading(file, populate, sequential)? else { return Ok(0) };
    let before = self_usage().minor_faults;
    let page = crate::sys::page_size();
    let mut sum = 0u8;
    for i in (0..map.len()).step_by(page) {
        sum = sum.wrapping_add(map[i]);
    }
    std::hint::black_box(sum);
    Ok(self_usage().minor_faults - before)
}

/// The shrinking-file trap: `write()` from a mapping whose file was cut
/// short, and a child touching a page past the end. Returns the write's
/// error and the signal the child died of.
fn shrinking_file(lab: &Lab) -> Result<(Option<std::io::Error>, Option<i32>)> {
    let page = crate::sys::page_size();
    let path = lab.path("shrinks");
    std::fs::write(&path, vec![1u8; 3 * page])?;
    let f = File::open(&path)?;
    let map = map_readonly(&f)?.context("mapping the 3-page file")?;
    OpenOptions::new().write(true).open(&path)?.set_len(page as u64)?;
    // The kernel reads the mapping for write(); the third page is past the new end.
    let pipe = crate::sys::file::Pipe::new()?;
    let mut w = File::from(pipe.write);
    let write_err = w.write(&map[2 * page..3 * page]).err();
    drop(map);
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .args(["lesson-helper", "touch-past-end"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()?;
    Ok((write_err, status.signal()))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let rw = lab.transfer(Mode::ReadWrite, DEFAULT_CHUNK, false)?;
    let mw = lab.transfer(Mode::MmapWrite, DEFAULT_CHUNK, false)?;
    let pages = lab.size.div_ceil(crate::sys::page_size() as u64);
    let file = File::open(&lab.file)?;
    let plain = faults_touching(&file, false, false)?;
    let populate = faults_touching(&file, true, false)?;
    let sequential = faults_touching(&file, false, true)?;
    let (write_err, signal) = shrinking_file(lab)?;
    let chunks = lab.size.div_ceil(DEFAULT_CHUNK as u64);
    let transfer_row = |name: &str, r: &crate::report::RunReport| {
        vec![
            name.to_string(),
            r.sender.syscalls.to_string(),
            r.sender.minor_faults.to_string(),
            format!("{:.3}", r.sender.cpu_sys_s),
            format!("{:.3}", cpu_per_gib(r)),
            format!("{:.2}", r.gbit_per_s),
        ]
    };
    let fault_row =
        |name: &str, faults: u64| vec![name.to_string(), faults.to_string(), format!("{:.3}", faults as f64 / pages as f64)];
    let claims = vec![
        Claim::new(
            "mmap-write makes one syscall per chunk where read-write makes two",
            mw.sender.syscalls >= chunks && mw.sender.syscalls < rw.sender.syscalls && rw.sender.syscalls >= 2 * chunks,
            format!("{} chunks: mmap-write {} calls, read-write {}", chunks, mw.sender.syscalls, rw.sender.syscalls),
        ),
        Claim::new(
            "Touching a mapped file costs about one minor page fault per page",
            plain * 10 >= pages * 9 && plain <= pages * 11 / 10,
            format!(
                "{plain} faults for {pages} pages ({:.3} per page): the kernel maps the pages around each fault too \
                 (fault-around), so one fault can map several cached pages",
                plain as f64 / pages as f64
            ),
        ),
        Claim::new(
            "MAP_POPULATE maps every page up front: touching the mapping afterwards takes (almost) no faults",
            populate * 100 < pages.max(100),
            format!("{populate} faults for {pages} pages"),
        ),
        Claim::new(
            "MADV_SEQUENTIAL changes the page faults of a mapping whose file is already cached",
            sequential != plain,
            format!("{sequential} faults with MADV_SEQUENTIAL, {plain} without (it steers readahead from disk)"),
        ),
        Claim::new(
            "write() from a mapping whose file shrank under it fails with EFAULT (the kernel's copy faults)",
            write_err.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EFAULT),
            format!("write() of the page past the new end: {}", write_err.map_or_else(|| "succeeded".into(), |e| e.to_string())),
        ),
        Claim::new(
            "Touching that page in user space raises SIGBUS (shown in a child process, which dies of it)",
            signal == Some(libc::SIGBUS),
            format!("the child ended by {}", signal.map_or_else(|| "exiting, no signal".into(), |s| format!("signal {s}"))),
        ),
    ];
    Ok(Findings {
        lesson: 2,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: "The same file by read-write and by mmap-write".into(),
                columns: ["path", "syscalls", "snd minor faults", "snd sys s", "CPU s/GiB", "Gbit/s"].map(String::from).to_vec(),
                rows: vec![transfer_row("read-write", &rw), transfer_row("mmap-write", &mw)],
                chart: None,
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: format!("Minor faults touching one byte of each page of a fresh mapping ({} pages, file cached)", pages),
                columns: ["mapping", "minor faults", "per page"].map(String::from).to_vec(),
                rows: vec![
                    fault_row("plain", plain),
                    fault_row("MAP_POPULATE", populate),
                    fault_row("MADV_SEQUENTIAL", sequential),
                ],
                chart: Some(1),
                label_columns: 1,
                under: None,
            },
        ],
        claims,
        notes: vec![format!(
            "the shrinking-file trap used a file of 3 pages cut to 1 ({})",
            bytes(crate::sys::page_size() as u64 * 3)
        )],
    })
}
