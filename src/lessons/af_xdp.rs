//! Lesson 8: kernel bypass, user space drives the NIC (AF_XDP).
//!
//! An AF_XDP socket shares a UMEM with the kernel and talks to it through
//! four rings: user space fills the *fill* ring with frames to receive
//! into and the *TX* ring with frames to send; the kernel hands back the
//! *RX* ring (received frames) and the *completion* ring (sent frames).
//! When user space falls behind, the kernel says so in its counters
//! (`XDP_STATISTICS`): this lesson provokes each fault on purpose, as the
//! kernel's own `xskxceiver` selftest does, and checks that the matching
//! counter moves. Then it moves the lesson's file by af-xdp beside
//! sendfile, and shows what the kernel still copies on veth.

use super::{bytes, cpu_per_gib, enter_iface, small_umem, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::xdp::XdpStatistics;
use crate::transfer::af_xdp::{wait_for_busy_queue, Knobs};
use crate::transfer::{Mode, DEFAULT_CHUNK};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, Returned, Umem, UmemConfig, XskSocket};
use anyhow::{Context, Result};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const LESSON: Lesson = Lesson {
    number: 8,
    slug: "af-xdp",
    title: "Kernel bypass: the UMEM, its four rings, and the faults they report",
    learn: "what the fill, RX, TX and completion rings are for; an empty fill ring, a full RX ring and an invalid TX descriptor, each in its XDP_STATISTICS counter; what af-xdp still costs on veth",
    run,
    check: None,
};

/// The UDP port the experiments steer to their AF_XDP socket.
const PORT: u16 = 7999;
/// Packets sent at the receiving socket in each experiment.
const PACKETS: usize = 64;

/// How a receiving experiment treats its socket.
#[derive(Clone, Copy)]
enum Receiver {
    /// Puts no frame on the fill ring: the kernel has nowhere to put a packet.
    EmptyFill,
    /// Fills the fill ring but never takes from the RX ring of 8 entries.
    NeverDrained,
}

/// Runs one receiving experiment: an AF_XDP socket behind the XDP program in
/// the receiving namespace, `PACKETS` UDP packets sent at it from the
/// sending namespace; returns the socket's counters.
fn receive_experiment(lab: &Lab, how: Receiver) -> Result<XdpStatistics> {
    let names = lab.names().clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || -> Result<XdpStatistics> {
        let setup = || -> Result<(XdpSteering, XskSocket)> {
            let ifc = enter_iface(&names.rx_ns, &names.rx_if)?;
            let mut steering = XdpSteering::attach(&ifc.name, PORT, false, None)?;
            let umem = small_umem(32, 32, 8)?;
            let (mut sock, _rx) =
                XskSocket::bind_rx(umem, 8, &ifc.socket_config(0, BindMode::Copy, &Knobs::default()), wait_for_busy_queue)?;
            steering.register(0, &sock)?;
            if let Receiver::NeverDrained = how {
                let frames = sock.umem_mut().frames_mut();
                let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
                sock.umem_mut().fill(&mut free)?;
            }
            // The RX ring (`_rx`) is never read in either experiment; dropping it only unmaps it.
            Ok((steering, sock))
        };
        let (steering, sock) = match setup() {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow::anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let _ = sent_rx.recv_timeout(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100)); // let the last packets land
        let stats = sock.statistics()?;
        drop(sock);
        drop(steering);
        Ok(stats)
    });
    ready_rx.recv().context("the receiving thread ended early")??;
    let ns = lab.names().tx_ns.clone();
    let sender = std::thread::spawn(move || -> Result<()> {
        crate::sys::netns::enter(&ns)?;
        let udp = UdpSocket::bind("0.0.0.0:0")?;
        let to = SocketAddr::from((crate::netns::RX_ADDR, PORT));
        for _ in 0..PACKETS {
            udp.send_to(b"a packet for the AF_XDP socket, sent by the kernel's UDP", to)?;
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    });
    let sent = sender.join().map_err(|_| anyhow::anyhow!("the sending thread panicked"))?;
    let _ = sent_tx.send(());
    let stats = receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    sent?;
    Ok(stats)
}

/// An invalid TX descriptor (an unknown option bit) on a socket in the sending
/// namespace; returns the counters and whether the completion ring handed the frame back.
fn invalid_tx_experiment(lab: &Lab) -> Result<(XdpStatistics, bool)> {
    let names = lab.names().clone();
    std::thread::spawn(move || -> Result<(XdpStatistics, bool)> {
        let ifc = enter_iface(&names.tx_ns, &names.tx_if)?;
        let umem = small_umem(4, 4, 4)?;
        let (mut sock, mut tx) =
            XskSocket::bind_tx(umem, 4, &ifc.socket_config(0, BindMode::Copy, &Knobs::default()), wait_for_busy_queue)?;
        let frames = sock.umem_mut().frames_mut();
        let frame = frames.alloc(PoolId(0)).context("a free frame")?;
        let mut r = tx.reserve(1).context("a TX slot")?;
        // Bit 7 of `options` means nothing to the kernel: it must refuse the descriptor.
        r.push_frame_unchecked(frames, frame, 64, 1 << 7).map_err(|(_, e)| e)?;
        r.submit();
        let mut back = false;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            tx.kick()?;
            sock.umem_mut().complete(4, |r| back |= matches!(r, Returned::Frame(_)));
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((sock.statistics()?, back))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the TX thread panicked"))?
}

/// What a TX-only blaster of 64-byte frames did in one setting.
struct Blast {
    budget: Option<u32>,
    need_wakeup: bool,
    frames: u64,
    kicks: u64,
    /// Kicks the kernel asked for (the TX ring's need-wakeup flag was set), of the times we looked.
    asked: u64,
    looked: u64,
    seconds: f64,
}

/// Sends 64-byte broadcast frames (dropped by the receiving stack) from a TX
/// socket in the sending namespace for `secs`, kicking only when there is
/// room to fill; counts frames and kicks. Also tries zero-copy mode first.
fn blast(lab: &Lab, settings: Vec<(Option<u32>, bool)>, secs: f64) -> Result<(Option<String>, Vec<Blast>)> {
    let names = lab.names().clone();
    std::thread::spawn(move || -> Result<(Option<String>, Vec<Blast>)> {
        let ifc = enter_iface(&names.tx_ns, &names.tx_if)?;
        let umem_cfg = UmemConfig::chunks(4096, 2048, 64, 2048);
        // Zero-copy mode first: veth has none.
        let zc_cfg = ifc.socket_config(0, BindMode::Zerocopy, &Knobs::default());
        let zerocopy_refused =
            XskSocket::bind_tx(Umem::new(&umem_cfg)?, 2048, &zc_cfg, wait_for_busy_queue).err().map(|e| e.to_string());
        let mut out = Vec::new();
        for (budget, need_wakeup) in settings {
            let mut cfg = ifc.socket_config(0, BindMode::Copy, &Knobs { tx_budget: budget, ..Knobs::default() });
            cfg.need_wakeup = need_wakeup;
            let (mut sock, mut tx) = XskSocket::bind_tx(Umem::new(&umem_cfg)?, 2048, &cfg, wait_for_busy_queue)?;
            let frames = sock.umem_mut().frames_mut();
            let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
            for f in free.iter_mut() {
                let b = frames.bytes_mut(f);
                b[..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1]);
                b[12..14].copy_from_slice(&[0x88, 0xb5]); // an experimental EtherType: no stack wants it
            }
            let mut b = Blast { budget, need_wakeup, frames: 0, kicks: 0, asked: 0, looked: 0, seconds: 0.0 };
            let t = Instant::now();
            while t.elapsed().as_secs_f64() < secs {
                let n = (free.len() as u32).min(tx.free(512)).min(512);
                if n > 0 {
                    let frames = sock.umem_mut().frames_mut();
                    let mut r = tx.reserve(n).context("reserved what was free")?;
                    for _ in 0..n {
                        let f = free.pop().expect("counted");
                        r.push_frame(frames, f, 64, false).map_err(|(_, e)| e)?;
                    }
                    r.submit();
                }
                b.looked += 1;
                if !need_wakeup || tx.needs_wakeup() {
                    b.asked += u64::from(need_wakeup);
                    tx.kick()?;
                    b.kicks += 1;
                }
                sock.umem_mut().complete(2048, |r| {
                    if let Returned::Frame(f) = r {
                        free.push(f);
                        b.frames += 1;
                    }
                });
            }
            b.seconds = t.elapsed().as_secs_f64();
            out.push(b);
            std::thread::sleep(Duration::from_millis(700)); // the queue stays busy a moment after close
        }
        Ok((zerocopy_refused, out))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the TX thread panicked"))?
}

fn copies_seen(r: &crate::report::RunReport) -> String {
    r.kernel.as_ref().and_then(|k| k.copies_per_byte(r.bytes)).map_or_else(|| "n/a".into(), |k| format!("{k:.2}"))
}

fn copies_inferred(r: &crate::report::RunReport) -> String {
    r.inferred_copies.as_ref().map_or_else(|| "n/a".into(), |c| format!("{:.2}", c.per_byte))
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let (zc_refused, blasts) = blast(lab, vec![(None, false), (Some(256), false), (Some(256), true)], 0.5)?;
    let empty = receive_experiment(lab, Receiver::EmptyFill)?;
    let full = receive_experiment(lab, Receiver::NeverDrained)?;
    let (invalid, completed) = invalid_tx_experiment(lab)?;
    let xdp = lab.transfer(Mode::AfXdp, DEFAULT_CHUNK, false)?;
    let sf = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, false)?;
    let stat_row = |name: &str, s: &XdpStatistics| {
        vec![
            name.to_string(),
            s.rx_fill_ring_empty_descs.to_string(),
            s.rx_ring_full.to_string(),
            s.rx_dropped.to_string(),
            s.tx_invalid_descs.to_string(),
        ]
    };
    let rx_k = xdp.kernel.as_ref().and_then(|k| k.receiver.clone());
    let packets = xdp.packets.unwrap_or(0);
    let mut claims = vec![
        Claim::new(
            "With no frame on the fill ring, the kernel has nowhere to put a packet: XDP_STATISTICS counts fill_ring_empty",
            empty.rx_fill_ring_empty_descs > 0,
            format!(
                "{PACKETS} packets sent: fill_ring_empty {}, rx_dropped {}",
                empty.rx_fill_ring_empty_descs, empty.rx_dropped
            ),
        ),
        Claim::new(
            "With the RX ring never read, it fills up (8 entries here) and the kernel counts rx_ring_full",
            full.rx_ring_full > 0,
            format!("{PACKETS} packets sent: rx_ring_full {}, rx_dropped {}", full.rx_ring_full, full.rx_dropped),
        ),
        Claim::new(
            "A TX descriptor the kernel cannot accept (an unknown option bit) is not sent: it counts tx_invalid",
            invalid.tx_invalid_descs > 0,
            format!(
                "tx_invalid {}; the completion ring {} the frame",
                invalid.tx_invalid_descs,
                if completed { "handed back" } else { "did not hand back" }
            ),
        ),
        Claim::new(
            "af-xdp reads the file with O_DIRECT straight into the UMEM and still moves it intact",
            xdp.verified && xdp.af_xdp.as_ref().is_some_and(|x| x.path.o_direct),
            format!("verified {}, O_DIRECT {}", xdp.verified, xdp.af_xdp.as_ref().is_some_and(|x| x.path.o_direct)),
        ),
        Claim::new(
            "On veth, af-xdp is slower than sendfile: the kernel still copies every packet (copy mode)",
            xdp.gbit_per_s < sf.gbit_per_s,
            format!(
                "af-xdp {:.2} Gbit/s ({} socket), sendfile {:.2} (a speed claim, but by a wide margin here)",
                xdp.gbit_per_s,
                xdp.af_xdp.as_ref().map_or("?", |x| x.bind_mode.as_str()),
                sf.gbit_per_s
            ),
        ),
    ];
    claims.push(Claim::new(
        "veth has no zero-copy AF_XDP: binding in zero-copy mode fails (EOPNOTSUPP), copy mode works",
        zc_refused.as_deref().is_some_and(|e| e.contains("os error 95")),
        format!("bind with XDP_ZEROCOPY: {}", zc_refused.clone().unwrap_or_else(|| "it worked".into())),
    ));
    let per_kick = |b: &Blast| b.frames as f64 / b.kicks.max(1) as f64;
    let (default, big) = (&blasts[0], &blasts[1]);
    claims.push(Claim::new(
        "In copy mode the kernel sends at most the TX budget per kick: raising XDP_MAX_TX_SKB_BUDGET from 32 to 256 sends more per kick",
        per_kick(default) <= 32.5 && per_kick(big) > per_kick(default),
        format!("frames per kick: {:.1} with the default budget, {:.1} with 256", per_kick(default), per_kick(big)),
    ));
    let nw = &blasts[2];
    claims.push(Claim::new(
        "With need_wakeup, a copy-mode TX ring asks for a kick every time: nothing sends but the kick",
        nw.looked > 0 && nw.asked == nw.looked,
        format!("the kernel asked for a kick {} times of {} looks", nw.asked, nw.looked),
    ));
    // Copies per byte, seen by the tracepoints and inferred from the run's facts.
    let seen = xdp.kernel.as_ref().and_then(|k| k.copies_per_byte(xdp.bytes));
    let inferred = xdp.inferred_copies.clone();
    if let Some(c) = &inferred {
        let on_the_way: f64 = c.steps.iter().filter(|s| s.side == "on the way").map(|s| s.per_byte).sum();
        claims.push(Claim::new(
            "The tracepoints see none of af-xdp's copies on a copy-mode veth, yet the kernel must make about three per byte on the way; a zero-copy NIC would make none of those",
            on_the_way >= 2.0 && seen.is_none_or(|k| k < 0.5),
            format!(
                "seen {} per byte; inferred {} ({:.0} on the way, each named by its rule in the JSON)",
                seen.map_or_else(|| "n/a (no --trace)".into(), |k| format!("{k:.2}")),
                c.summary(),
                on_the_way
            ),
        ));
    }
    let mut notes = Vec::new();
    match rx_k.as_ref().and_then(|k| k.xdp_redirects) {
        Some(redirects) => claims.push(Claim::new(
            "Every packet reached the receiving socket through an XDP redirect: in copy mode, one copy each into the UMEM",
            redirects >= packets.saturating_sub(xdp.retransmitted_packets.unwrap_or(0)),
            format!("{redirects} redirects for {packets} packets sent"),
        )),
        None => notes.push("the kernel's count of XDP redirects needs --trace (and its tracepoints)".into()),
    }
    Ok(Findings {
        lesson: 8,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![
            Experiment {
                name: format!("Provoked faults: XDP_STATISTICS of each socket after {PACKETS} packets (or one bad descriptor)"),
                columns: ["experiment", "fill_ring_empty", "rx_ring_full", "rx_dropped", "tx_invalid"].map(String::from).to_vec(),
                rows: vec![
                    stat_row("empty fill ring", &empty),
                    stat_row("RX ring never read", &full),
                    stat_row("invalid TX descriptor", &invalid),
                ],
                chart: None,
                label_columns: 1,
                under: None,
            },
            Experiment {
                name: "A TX-only blaster of 64-byte frames for 0.5 s per setting (copy mode)".into(),
                columns: ["budget", "need_wakeup", "frames/s", "frames per kick", "kicks asked for"].map(String::from).to_vec(),
                rows: blasts
                    .iter()
                    .map(|b| {
                        vec![
                            b.budget.map_or_else(|| "default (32)".into(), |v| v.to_string()),
                            if b.need_wakeup { "on" } else { "off" }.into(),
                            format!("{:.0}", b.frames as f64 / b.seconds.max(1e-9)),
                            format!("{:.1}", per_kick(b)),
                            if b.need_wakeup { format!("{}/{}", b.asked, b.looked) } else { "-".into() },
                        ]
                    })
                    .collect(),
                chart: Some(2),
                label_columns: 2,
                under: None,
            },
            Experiment {
                name: "The lesson's file by af-xdp and by sendfile".into(),
                columns: ["path", "Gbit/s", "packets/s", "CPU s/GiB", "copies/B seen", "copies/B inferred", "frame layout"]
                    .map(String::from)
                    .to_vec(),
                rows: vec![
                    vec![
                        "af-xdp".into(),
                        format!("{:.2}", xdp.gbit_per_s),
                        xdp.packets_per_s.map_or_else(|| "-".into(), |p| format!("{p:.0}")),
                        format!("{:.3}", cpu_per_gib(&xdp)),
                        copies_seen(&xdp),
                        copies_inferred(&xdp),
                        xdp.af_xdp
                            .as_ref()
                            .map_or_else(String::new, |x| x.path.frame_layout.split(':').next().unwrap_or_default().to_string()),
                    ],
                    vec![
                        "sendfile".into(),
                        format!("{:.2}", sf.gbit_per_s),
                        "-".into(),
                        format!("{:.3}", cpu_per_gib(&sf)),
                        copies_seen(&sf),
                        copies_inferred(&sf),
                        "-".into(),
                    ],
                ],
                chart: None,
                label_columns: 1,
                under: None,
            },
        ],
        claims,
        notes: {
            notes.push(format!("the transfers moved {} each", bytes(lab.size)));
            notes
        },
    })
}
