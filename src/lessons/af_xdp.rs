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

use super::{bytes, cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::xdp::XdpStatistics;
use crate::transfer::af_xdp::{wait_for_busy_queue, Iface};
use crate::transfer::{Mode, DEFAULT_CHUNK};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, PoolSpec, Returned, Umem, UmemConfig, XskSocket};
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
            crate::sys::netns::enter(&names.rx_ns)?;
            let ifc = Iface::find(Some(&names.rx_if), std::net::Ipv4Addr::UNSPECIFIED.into())?;
            let mut steering = XdpSteering::attach(&ifc.name, PORT, false, None)?;
            let umem = Umem::new(&UmemConfig {
                pools: vec![PoolSpec { frame_size: 4096, count: 32 }],
                chunk_size: 4096,
                unaligned: false,
                huge_pages: false,
                fill_size: 32,
                completion_size: 8,
            })?;
            let (mut sock, _rx) = XskSocket::bind_rx(umem, 8, &ifc.socket_config(0, BindMode::Copy, None), wait_for_busy_queue)?;
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
        crate::sys::netns::enter(&names.tx_ns)?;
        let ifc = Iface::find(Some(&names.tx_if), std::net::Ipv4Addr::UNSPECIFIED.into())?;
        let umem = Umem::new(&UmemConfig {
            pools: vec![PoolSpec { frame_size: 4096, count: 4 }],
            chunk_size: 4096,
            unaligned: false,
            huge_pages: false,
            fill_size: 4,
            completion_size: 4,
        })?;
        let (mut sock, mut tx) = XskSocket::bind_tx(umem, 4, &ifc.socket_config(0, BindMode::Copy, None), wait_for_busy_queue)?;
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

fn run(lab: &mut Lab) -> Result<Findings> {
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
            },
            Experiment {
                name: "The lesson's file by af-xdp and by sendfile".into(),
                columns: ["path", "Gbit/s", "packets/s", "CPU s/GiB", "frame layout"].map(String::from).to_vec(),
                rows: vec![
                    vec![
                        "af-xdp".into(),
                        format!("{:.2}", xdp.gbit_per_s),
                        xdp.packets_per_s.map_or_else(|| "-".into(), |p| format!("{p:.0}")),
                        format!("{:.3}", cpu_per_gib(&xdp)),
                        xdp.af_xdp
                            .as_ref()
                            .map_or_else(String::new, |x| x.path.frame_layout.split(':').next().unwrap_or_default().to_string()),
                    ],
                    vec![
                        "sendfile".into(),
                        format!("{:.2}", sf.gbit_per_s),
                        "-".into(),
                        format!("{:.3}", cpu_per_gib(&sf)),
                        "-".into(),
                    ],
                ],
                chart: None,
                label_columns: 1,
            },
        ],
        claims,
        notes: {
            notes.push(format!("the transfers moved {} each", bytes(lab.size)));
            notes
        },
    })
}
