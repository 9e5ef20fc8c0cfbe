//! Lesson 11: the receive side, the other half.
//!
//! Zero-copy sending (sendfile, splice, MSG_ZEROCOPY) saves the sender's
//! copy; the receiver still has to get the bytes out of the socket. Four
//! ways: `read()` copies them into user memory; `splice()` moves page
//! references into a pipe; `TCP_ZEROCOPY_RECEIVE` maps the received pages
//! into user memory, where they lie in whole, aligned pages; and
//! `recv(MSG_TRUNC)` drops them, the floor any receiver stands on.

use super::{cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::report::RunReport;
use crate::transfer::mode::Via;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::Result;

pub const LESSON: Lesson = Lesson {
    number: 11,
    slug: "receive",
    title: "The receive side: read, splice, TCP_ZEROCOPY_RECEIVE, discard",
    learn: "the receiver's copy that zero-copy sending leaves in place, four ways to take data off a socket, and when the kernel can map received pages instead of copying them",
    run,
    check: None,
};

/// MSS 4096: the MTU at which every TCP segment carries exactly one page
/// (4096 payload + 20 TCP + 12 timestamp option + 20 IPv4 bytes).
const PAGE_MTU: u32 = 4148;

fn copied_to_user(r: &RunReport) -> Option<u64> {
    r.kernel.as_ref()?.receiver.as_ref()?.copied_to_user_bytes
}

fn zc(r: &RunReport) -> (u64, u64) {
    r.zerocopy_receive.map_or((0, 0), |z| (z.mapped_bytes, z.copied_bytes))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let mut receivers = Vec::new();
    for via in [Via::Read, Via::Splice, Via::Mmap, Via::Discard] {
        receivers.push((via, lab.transfer_with(Mode::Sendfile, DEFAULT_CHUNK, false, via, None)?));
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".into(), |v| v.to_string());
    let rows = receivers
        .iter()
        .map(|(via, r)| {
            vec![
                via.name().to_string(),
                r.receiver.syscalls.to_string(),
                format!("{:.3}", r.receiver.cpu_sys_s),
                format!("{:.3}", cpu_per_gib(r)),
                format!("{:.2}", r.gbit_per_s),
                opt(copied_to_user(r)),
                if *via == Via::Mmap { format!("{} / {}", zc(r).0, zc(r).1) } else { "-".into() },
                if r.verified { "yes".into() } else { "no (discarded)".into() },
            ]
        })
        .collect();

    // Where does TCP_ZEROCOPY_RECEIVE map? Two senders, two MTUs.
    let mut map_rows = Vec::new();
    let mut mapped = Vec::new();
    let page_env = lab.extra_env("m", PAGE_MTU)?;
    let page_env_name = page_env.names().name.clone();
    for (mtu, env) in [(1500, None), (PAGE_MTU, Some(page_env_name.as_str()))] {
        for mode in [Mode::Sendfile, Mode::MsgZerocopy] {
            let r = lab.transfer_with(mode, DEFAULT_CHUNK, false, Via::Mmap, env)?;
            let (m, c) = zc(&r);
            mapped.push((mtu, mode, m, c, r.verified));
            map_rows.push(vec![
                mtu.to_string(),
                mode.name().to_string(),
                m.to_string(),
                c.to_string(),
                format!("{:.1}", 100.0 * m as f64 / (m + c).max(1) as f64),
                format!("{:.2}", r.gbit_per_s),
            ]);
        }
    }
    drop(page_env);

    let by = |v: Via| receivers.iter().find(|(w, _)| *w == v).map(|(_, r)| r).expect("every receiver ran");
    let mut claims = Vec::new();
    let mut notes = Vec::new();
    match (copied_to_user(by(Via::Read)), copied_to_user(by(Via::Splice)), copied_to_user(by(Via::Discard))) {
        (Some(read), Some(splice), Some(discard)) => claims.push(Claim::new(
            "Zero-copy sending leaves the receiver's copy: read() copies every byte into user memory; splice and discard copy none",
            read >= lab.size && splice * 100 < lab.size && discard * 100 < lab.size,
            format!("bytes the kernel copied to user memory (sendfile sender): read {read}, splice {splice}, discard {discard}"),
        )),
        _ => notes.push("the kernel's count of copies to user memory needs --trace (and its tracepoints)".into()),
    }
    let rd = by(Via::Discard);
    claims.push(Claim::new(
        "Discarding is the receiver's floor: no receiver spends less system CPU",
        receivers.iter().all(|(_, r)| rd.receiver.cpu_sys_s <= r.receiver.cpu_sys_s),
        format!(
            "receiver sys s: {} (a speed claim: noisy here)",
            receivers.iter().map(|(v, r)| format!("{} {:.3}", v.name(), r.receiver.cpu_sys_s)).collect::<Vec<_>>().join(", ")
        ),
    ));
    let at_page = mapped.iter().find(|m| m.0 == PAGE_MTU && m.1 == Mode::MsgZerocopy).expect("measured");
    claims.push(Claim::new(
        &format!(
            "TCP_ZEROCOPY_RECEIVE maps (nearly) everything when every segment is one whole page: MSS 4096 (MTU {PAGE_MTU}) and pages \
             that arrive as single pages (msg-zerocopy over veth, whose pages the kernel copies into fresh ones)"
        ),
        at_page.2 * 100 >= lab.size * 99 && at_page.4,
        format!("msg-zerocopy at MTU {PAGE_MTU}: {} bytes mapped, {} copied of {}", at_page.2, at_page.3, lab.size),
    ));
    let sf: Vec<_> = mapped.iter().filter(|m| m.1 == Mode::Sendfile).collect();
    claims.push(Claim::new(
        "TCP_ZEROCOPY_RECEIVE maps sendfile's data too",
        sf.iter().any(|m| m.2 > 0),
        format!(
            "sendfile: {} bytes mapped (a page is mapped only from a fragment that is exactly one whole page; see the lesson \
             text for why sendfile's are not, and an assignment that tests it)",
            sf.iter().map(|m| format!("MTU {}: {}", m.0, m.2)).collect::<Vec<_>>().join(", ")
        ),
    ));
    Ok(Findings {
        lesson: 11,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: "The same sendfile sender, four receivers (zclab run --via ...), MTU 1500".into(),
                columns: [
                    "receiver",
                    "rcv syscalls",
                    "rcv sys s",
                    "CPU s/GiB",
                    "Gbit/s",
                    "copied to user",
                    "mapped / copied",
                    "verified",
                ]
                .map(String::from)
                .to_vec(),
                rows,
                chart: None,
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: "Where TCP_ZEROCOPY_RECEIVE maps (--via mmap): two senders, two MTUs".into(),
                columns: ["MTU", "sender", "mapped B", "copied B", "mapped %", "Gbit/s"].map(String::from).to_vec(),
                rows: map_rows,
                chart: Some(4),
                label_columns: 2,
                under: None,
            },
        ],
        claims,
        notes,
    })
}
