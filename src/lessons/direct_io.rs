//! Lesson 7: direct I/O (`O_DIRECT`): the page cache skipped.
//!
//! An O_DIRECT read goes from the disk straight into the caller's buffer.
//! The price is alignment: buffer address, file offset and length must be
//! multiples of what the filesystem says (`statx` `STATX_DIOALIGN`), or the
//! read fails with EINVAL. tmpfs takes the flag and serves from memory
//! anyway: there is no disk to bypass to.

use super::{bytes, cached_of, nearly_all_cached, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::file::dio_align;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

pub const LESSON: Lesson = Lesson {
    number: 7,
    slug: "direct-io",
    title: "Direct I/O: the page cache skipped",
    learn: "O_DIRECT's alignment rules from statx, the EINVAL when they are broken, tmpfs, and a cold transfer that leaves no trace in the page cache",
    run,
    check: None,
};

/// A buffer of `len` bytes starting at an address that is a multiple of `align`.
fn aligned(storage: &mut [u8], align: usize, len: usize) -> &mut [u8] {
    let skip = storage.as_ptr().align_offset(align);
    &mut storage[skip..skip + len]
}

/// Result of one O_DIRECT read: Ok(bytes) or the errno's name.
fn read_direct(f: &File, buf: &mut [u8], offset: u64) -> String {
    match f.read_at(buf, offset) {
        Ok(n) => format!("read {n} B"),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => "EINVAL".into(),
        Err(e) => e.to_string(),
    }
}

fn open_direct(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let plain = File::open(&lab.file)?;
    let (mem, off) = dio_align(&plain)?.context("the lesson's file system reports no direct I/O alignment")?;
    let a = off.max(mem) as usize;
    let f = open_direct(&lab.file).context("O_DIRECT open of the lesson's file")?;
    let mut storage = vec![0u8; 8 * a + 8192];
    let cases: [(&str, usize, u64, usize); 4] = [
        ("aligned: buffer, offset, length", 0, a as u64, 2 * a),
        ("offset + 256", 0, a as u64 + 256, 2 * a),
        ("length 1000", 0, a as u64, 1000),
        ("buffer address + 256", 256, a as u64, 2 * a),
    ];
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    for (name, shift, offset, len) in cases {
        let buf = aligned(&mut storage, a, 4 * a + 512);
        let got = read_direct(&f, &mut buf[shift..shift + len], offset);
        rows.push(vec![name.to_string(), offset.to_string(), len.to_string(), format!("+{shift}"), got.clone()]);
        outcomes.push(got);
    }
    let offset_length_rule = outcomes[0].starts_with("read ") && outcomes[1] == "EINVAL" && outcomes[2] == "EINVAL";
    let address_rule = outcomes[3] == "EINVAL";

    // tmpfs: the flag is taken, no alignment is reported, an unaligned read works.
    let shm = Path::new("/dev/shm");
    let tmpfs = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.split_whitespace().nth(2) == Some("tmpfs"));
    let mut notes = Vec::new();
    let tmpfs_claim = if tmpfs {
        let p = shm.join(format!("zclab-lesson-7-{}", std::process::id()));
        std::fs::write(&p, vec![7u8; 4096])?;
        let opened = open_direct(&p);
        let align = File::open(&p).and_then(|f| dio_align(&f));
        let mut buf = [0u8; 1000];
        let read = opened.as_ref().map(|f| read_direct(f, &mut buf, 3));
        let _ = std::fs::remove_file(&p);
        let open_ok = opened.is_ok();
        let no_align = matches!(align, Ok(None));
        let unaligned_ok = matches!(&read, Ok(r) if r.starts_with("read "));
        rows.push(vec![
            "tmpfs (/dev/shm): offset 3, length 1000".into(),
            "3".into(),
            "1000".into(),
            "any".into(),
            read.unwrap_or_else(|e| format!("open: {e}")),
        ]);
        Some(Claim::new(
            "tmpfs accepts O_DIRECT, reports no alignment, and serves an unaligned read: from memory, not direct",
            open_ok && no_align && unaligned_ok,
            format!("open with O_DIRECT {}; statx DIOALIGN {:?}", if open_ok { "ok" } else { "failed" }, align.ok().flatten()),
        ))
    } else {
        notes.push("no tmpfs at /dev/shm here: the tmpfs claim was not checked".into());
        None
    };

    let xdp = lab.transfer(Mode::AfXdp, DEFAULT_CHUNK, true)?;
    let xd = lab.transfer_direct(true)?;
    let sf = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, true)?;
    // Warm: the file is in the page cache now (sendfile put it there).
    let warm = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, false)?;
    let mut claims = vec![
        Claim::new(
            &format!("An O_DIRECT read needs its file offset and length to be multiples of {off} (statx DIOALIGN offset alignment); otherwise EINVAL"),
            offset_length_rule,
            format!("aligned: {}; offset+256: {}; length 1000: {}", outcomes[0], outcomes[1], outcomes[2]),
        ),
        Claim::new(
            &format!("An O_DIRECT read needs its buffer address to be a multiple of {mem} (statx DIOALIGN memory alignment); otherwise EINVAL"),
            address_rule,
            format!(
                "a buffer at +256 from a {mem}-byte boundary: {} (statx gives the alignment that is promised to work; a kernel and \
                 device may accept less)",
                outcomes[3]
            ),
        ),
    ];
    claims.extend(tmpfs_claim);
    claims.push(Claim::new(
        "A warm sendfile finds the whole file in the page cache (at least 99% of it) and reads nothing from the disk",
        nearly_all_cached(warm.source_cached_before_bytes, lab.size),
        format!(
            "cached before the warm run: {}; {:.2} Gbit/s warm against {:.2} cold",
            cached_of(warm.source_cached_before_bytes, lab.size),
            warm.gbit_per_s,
            sf.gbit_per_s
        ),
    ));
    claims.push(Claim::new(
        "A cold af-xdp transfer (O_DIRECT reads into the UMEM) leaves none of the file in the sender's page cache when the sender ends, after its hash; a cold sendfile leaves all of it (at least 99%)",
        xdp.source_cached_after_bytes == 0
            && xdp.af_xdp.as_ref().is_some_and(|x| x.path.o_direct)
            && nearly_all_cached(sf.source_cached_after_bytes, lab.size),
        format!(
            "cached after: af-xdp {} (O_DIRECT {}), sendfile {}",
            bytes(xdp.source_cached_after_bytes),
            xdp.af_xdp.as_ref().is_some_and(|x| x.path.o_direct),
            cached_of(sf.source_cached_after_bytes, lab.size)
        ),
    ));
    let direct = xd.direct.as_ref().filter(|d| d.used);
    let rcv = |r: &crate::report::RunReport| r.out_cached_after_bytes.map_or("not measured".into(), |b| cached_of(b, lab.size));
    claims.push(Claim::new(
        "A cold af-xdp transfer whose receiver writes with O_DIRECT from its UMEM (recv --direct) leaves the file in neither \
         page cache, measured on each end when it ended (after its hash); the same transfer into the page-cache receiver \
         leaves all of it (at least 99%) on the receiving side",
        xd.source_cached_after_bytes == 0
            && xd.out_cached_after_bytes == Some(0)
            && direct.is_some_and(|d| d.direct_bytes == lab.size)
            && xdp.out_cached_after_bytes.is_some_and(|b| nearly_all_cached(b, lab.size)),
        format!(
            "--direct: sender {}, receiver {} ({} of {} written with O_DIRECT in {}-byte payloads); page-cache receiver: {}",
            bytes(xd.source_cached_after_bytes),
            xd.out_cached_after_bytes.map_or("not measured".into(), bytes),
            bytes(direct.map_or(0, |d| d.direct_bytes)),
            bytes(lab.size),
            xd.chunk_bytes,
            rcv(&xdp)
        ),
    ));
    Ok(Findings {
        lesson: 7,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: format!("O_DIRECT reads of the lesson's file (statx DIOALIGN: memory {mem}, offset {off})"),
                columns: ["read", "offset", "length", "buffer", "result"].map(String::from).to_vec(),
                rows,
                chart: None,
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: "Cold transfers, then a warm one: what each end's page cache held, measured when that end ended".into(),
                columns: ["path", "source cached before", "source cached after", "received file cached after", "Gbit/s"]
                    .map(String::from)
                    .to_vec(),
                rows: [
                    ("af-xdp (O_DIRECT reads), cold", &xdp),
                    ("af-xdp, receiver --direct, cold", &xd),
                    ("sendfile, cold", &sf),
                    ("sendfile, warm", &warm),
                ]
                .iter()
                .map(|(n, r)| {
                    vec![
                        n.to_string(),
                        bytes(r.source_cached_before_bytes),
                        bytes(r.source_cached_after_bytes),
                        r.out_cached_after_bytes.map_or("-".into(), bytes),
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
