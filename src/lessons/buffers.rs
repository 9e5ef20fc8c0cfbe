//! Lesson 10: between kernel and user buffers.
//!
//! Two ways a buffer can be shared instead of copied, and what each costs.
//! Copy-on-write: a private mapping shares the file's page-cache pages
//! until the first write to a page, which faults and copies that one page.
//! The UMEM: one region that user space and the kernel both use; what
//! keeps them from treading on each other is who *owns* each frame, and a
//! frame changes hands only through the rings.

use super::{bytes, enter_iface, small_umem, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::file::map_copy_on_write;
use crate::sys::rusage::self_usage;
use crate::transfer::af_xdp::{wait_for_busy_queue, Knobs};
use crate::wire::{FrameTemplate, LabHeader, FRAME_HEADER_LEN};
use crate::xsk::{BindMode, Owner, PoolId, Returned, XskSocket};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::time::{Duration, Instant};

pub const LESSON: Lesson = Lesson {
    number: 10,
    slug: "buffers",
    title: "Between kernel and user buffers: copy-on-write and the UMEM",
    learn: "a private mapping copies a page on its first write (count the faults; the file stays as it was), and a UMEM frame changes owner only through the rings",
    run,
    check: None,
};

/// Minor faults of reading, then writing one byte of every page of a private mapping.
fn cow_faults(file: &File) -> Result<(u64, u64)> {
    let mut map = map_copy_on_write(file)?.context("the lesson's file is empty")?;
    let page = crate::sys::page_size();
    let before = self_usage().minor_faults;
    let mut sum = 0u8;
    for i in (0..map.len()).step_by(page) {
        sum = sum.wrapping_add(map[i]);
    }
    std::hint::black_box(sum);
    let read = self_usage().minor_faults - before;
    let before = self_usage().minor_faults;
    for i in (0..map.len()).step_by(page) {
        map[i] = map[i].wrapping_add(1);
    }
    let written = self_usage().minor_faults - before;
    Ok((read, written))
}

/// One frame's life on a TX socket in the lab's sending namespace: who owns
/// its UMEM address after each step (runs in a thread that enters the namespace).
fn frame_life(ns: String, iface: String) -> Result<Vec<(String, Owner)>> {
    let ifc = enter_iface(&ns, &iface)?;
    let umem = small_umem(4, 4, 4)?;
    let (mut sock, mut tx) =
        XskSocket::bind_tx(umem, 4, &ifc.socket_config(0, BindMode::Copy, &Knobs::default()), wait_for_busy_queue)?;
    let mut steps = Vec::new();
    let frames = sock.umem_mut().frames_mut();
    let mut frame = frames.alloc(PoolId(0)).context("a free frame")?;
    let addr = frame.addr();
    let owner = |f: &crate::xsk::Frames| f.owner(addr).map(|(_, o)| o).unwrap_or(Owner::Free);
    steps.push(("Frames::alloc: the frame is ours".to_string(), owner(frames)));
    // A UDP packet to the discard port of the receiving namespace, broadcast on the veth.
    let template = FrameTemplate {
        src_mac: ifc.mac,
        dst_mac: [0xff; 6],
        src_ip: crate::netns::TX_ADDR.into(),
        dst_ip: crate::netns::RX_ADDR.into(),
        src_port: 9,
        dst_port: 9,
    };
    let lab = LabHeader { transfer_id: 0, offset: 0, len: 0, flags: 0 };
    let header: &mut [u8; FRAME_HEADER_LEN] = (&mut frames.bytes_mut(&mut frame)[..FRAME_HEADER_LEN]).try_into()?;
    template.write_header(&lab, header);
    steps.push(("write the packet into it (Frames::bytes_mut)".into(), owner(frames)));
    let mut r = tx.reserve(1).context("a TX slot")?;
    r.push_frame(frames, frame, FRAME_HEADER_LEN as u32, false).map_err(|(_, e)| e)?;
    r.submit();
    steps.push(("moved into the TX ring (push_frame, submit): the kernel's now".into(), owner(sock.umem().frames())));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut back = None;
    while back.is_none() {
        tx.kick()?;
        sock.umem_mut().complete(4, |r| {
            if let Returned::Frame(f) = r {
                back = Some(f);
            }
        });
        if Instant::now() > deadline {
            bail!("the kernel did not complete the frame within 2 s");
        }
    }
    let frame = back.expect("loop ends when the frame is back");
    steps.push(("sent; the completion ring handed it back (Umem::complete)".into(), owner(sock.umem().frames())));
    sock.umem_mut().frames_mut().free(frame);
    steps.push(("Frames::free: back in its pool".into(), owner(sock.umem().frames())));
    Ok(steps)
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let file = File::open(&lab.file)?;
    let before = crate::transfer::hash::hash_file(&lab.file)?.0;
    let (read, written) = cow_faults(&file)?;
    let after = crate::transfer::hash::hash_file(&lab.file)?.0;
    let pages = lab.size.div_ceil(crate::sys::page_size() as u64);
    let names = lab.names().clone();
    let steps = std::thread::spawn(move || frame_life(names.tx_ns, names.tx_if))
        .join()
        .map_err(|_| anyhow::anyhow!("the UMEM experiment's thread panicked"))??;
    let owners: Vec<Owner> = steps.iter().map(|s| s.1).collect();
    let claims = vec![
        Claim::new(
            "The first write to each page of a private mapping faults and copies that page: one fault per page",
            written == pages,
            format!("{written} faults writing one byte of each of {pages} pages (reading them first took {read})"),
        ),
        Claim::new(
            "The file is unchanged: the writes went to private copies",
            before == after,
            format!("BLAKE3 before {}, after {}", &before[..16], &after[..16]),
        ),
        Claim::new(
            "A UMEM frame goes from user space to the kernel and back only through the rings: User, Kernel, User, Free",
            owners == [Owner::User, Owner::User, Owner::Kernel, Owner::User, Owner::Free],
            format!("owner after each step: {owners:?}"),
        ),
    ];
    Ok(Findings {
        lesson: 10,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: format!("Copy-on-write: a MAP_PRIVATE mapping of the {} file ({pages} pages)", bytes(lab.size)),
                columns: ["touch", "minor faults", "per page"].map(String::from).to_vec(),
                rows: vec![
                    vec!["read one byte per page".into(), read.to_string(), format!("{:.3}", read as f64 / pages as f64)],
                    vec![
                        "then write one byte per page".into(),
                        written.to_string(),
                        format!("{:.3}", written as f64 / pages as f64),
                    ],
                ],
                chart: None,
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: "One UMEM frame's life on a TX socket (Frames::owner after each step)".into(),
                columns: ["step", "owner"].map(String::from).to_vec(),
                rows: steps.iter().map(|(s, o)| vec![s.clone(), format!("{o:?}")]).collect(),
                chart: None,
                label_columns: 1,
                under: None,
            },
        ],
        claims,
        notes: Vec::new(),
    })
}
