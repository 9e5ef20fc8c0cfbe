//! Lesson 9: the XDP program.
//!
//! zclab's XDP program (`xdp-prog/zclab_xdp.c`) runs in the receiving
//! driver for every packet, before the kernel has built an skb. It decides
//! one thing: is this a packet of the lab's UDP port? Those it redirects
//! into the XSKMAP, to the AF_XDP socket of the queue they arrived on;
//! everything else gets XDP_PASS and goes on into the kernel's stack as if
//! the program were not there.

use super::{enter_iface, small_umem, Claim, Experiment, Findings, Lab, Lesson};
use crate::transfer::af_xdp::{wait_for_busy_queue, Knobs};
use crate::transfer::{Mode, DEFAULT_CHUNK};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, Received, XskSocket};
use anyhow::{Context, Result};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

pub const LESSON: Lesson = Lesson {
    number: 9,
    slug: "xdp-program",
    title: "The XDP program: redirect what is ours, pass the rest",
    learn: "what zclab's XDP program filters, XDP_REDIRECT into an XSKMAP, XDP_PASS for everything else; an assignment changes it and `--check` checks it",
    run,
    check: Some(check),
};

/// The lab's UDP port in this lesson, and another port beside it.
const PORT: u16 = 7998;
const OTHER: u16 = 7997;
const PACKETS: usize = 32;

/// What arrived where.
struct Arrivals {
    /// Descriptors on the AF_XDP socket's RX ring.
    socket: usize,
    /// Datagrams a kernel UDP socket bound to the lab's port received.
    kernel_same_port: usize,
    /// Datagrams a kernel UDP socket on the other port received.
    kernel_other_port: usize,
}

/// Counts the datagrams waiting on a non-blocking socket.
fn drain(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
}

/// The XDP program on the receiving veth steering `PORT` to an AF_XDP socket,
/// kernel UDP sockets on `PORT` and `OTHER` beside it, and packets to both ports.
fn steering_experiment(lab: &Lab) -> Result<Arrivals> {
    let names = lab.names().clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || -> Result<Arrivals> {
        let setup = || -> Result<_> {
            let ifc = enter_iface(&names.rx_ns, &names.rx_if)?;
            let mut steering = XdpSteering::attach(&ifc.name, PORT, false, None)?;
            let umem = small_umem(2 * PACKETS as u32, 2 * PACKETS as u32, 8)?;
            let cfg = ifc.socket_config(0, BindMode::Copy, &Knobs::default());
            let (mut sock, rx) = XskSocket::bind_rx(umem, 2 * PACKETS as u32, &cfg, wait_for_busy_queue)?;
            steering.register(0, &sock)?;
            let frames = sock.umem_mut().frames_mut();
            let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
            sock.umem_mut().fill(&mut free)?;
            let same = UdpSocket::bind((crate::netns::RX_ADDR, PORT))?;
            let other = UdpSocket::bind((crate::netns::RX_ADDR, OTHER))?;
            same.set_nonblocking(true)?;
            other.set_nonblocking(true)?;
            Ok((steering, sock, rx, same, other))
        };
        let (steering, mut sock, mut rx, same, other) = match setup() {
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
        std::thread::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        rx.receive(sock.umem_mut(), 2 * PACKETS as u32, &mut got);
        let socket = got.iter().filter(|r| matches!(r, Received::Packet(_))).count();
        let arrivals = Arrivals { socket, kernel_same_port: drain(&same), kernel_other_port: drain(&other) };
        drop(steering);
        Ok(arrivals)
    });
    ready_rx.recv().context("the receiving thread ended early")??;
    let ns = lab.names().tx_ns.clone();
    let sent = std::thread::spawn(move || -> Result<()> {
        crate::sys::netns::enter(&ns)?;
        let udp = UdpSocket::bind("0.0.0.0:0")?;
        for _ in 0..PACKETS {
            for port in [PORT, OTHER] {
                udp.send_to(b"which way will I go?", SocketAddr::from((crate::netns::RX_ADDR, port)))?;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the sending thread panicked"))?;
    let _ = sent_tx.send(());
    let arrivals = receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    sent?;
    Ok(arrivals)
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let a = steering_experiment(lab)?;
    let xdp = lab.transfer(Mode::AfXdp, DEFAULT_CHUNK, false)?;
    let rx_k = xdp.kernel.as_ref().and_then(|k| k.receiver.clone());
    let mut claims = vec![
        Claim::new(
            "Packets to the lab's UDP port are redirected to the AF_XDP socket; the kernel's UDP socket on the same port never sees them",
            a.socket == PACKETS && a.kernel_same_port == 0,
            format!(
                "{PACKETS} sent to port {PORT}: {} on the AF_XDP socket's RX ring, {} on the kernel socket bound to {PORT}",
                a.socket, a.kernel_same_port
            ),
        ),
        Claim::new(
            "Everything else passes (XDP_PASS) into the kernel's stack as if there were no program",
            a.kernel_other_port == PACKETS,
            format!("{PACKETS} sent to port {OTHER}: {} reached the kernel socket there", a.kernel_other_port),
        ),
    ];
    let mut notes = Vec::new();
    match rx_k.as_ref().and_then(|k| Some((k.xdp_redirects?, k.dev_received_packets?))) {
        Some((redirects, stack)) => claims.push(Claim::new(
            "In a transfer, the data packets are redirected and only the control connection's packets enter the stack",
            redirects >= xdp.packets.unwrap_or(0).saturating_sub(xdp.retransmitted_packets.unwrap_or(0))
                && stack * 10 < redirects.max(1),
            format!(
                "receiver: {redirects} XDP redirects for {} data packets; {stack} packets entered the stack (the TCP control connection)",
                xdp.packets.unwrap_or(0)
            ),
        )),
        None => notes.push("the kernel's counts of redirects and packets in the stack need --trace".into()),
    }
    Ok(Findings {
        lesson: 9,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: format!("{PACKETS} UDP packets to port {PORT} (the lab's) and {PACKETS} to port {OTHER}, with the XDP program steering {PORT}"),
            columns: ["where", "packets"].map(String::from).to_vec(),
            rows: vec![
                vec![format!("AF_XDP socket (RX ring), port {PORT}"), a.socket.to_string()],
                vec![format!("kernel UDP socket, port {PORT}"), a.kernel_same_port.to_string()],
                vec![format!("kernel UDP socket, port {OTHER}"), a.kernel_other_port.to_string()],
            ],
            chart: None,
            label_columns: 1,
            under: None,
        }],
        claims,
        notes,
    })
}

/// `zclab lesson 9 --check`: the assignment asks for an XDP program that drops
/// every 100th data packet; an af-xdp transfer must then resend some packets
/// and still verify.
pub fn check(lab: &mut Lab) -> Result<Findings> {
    let r = lab.transfer(Mode::AfXdp, DEFAULT_CHUNK, false)?;
    let (packets, resent) = (r.packets.unwrap_or(0), r.retransmitted_packets.unwrap_or(0));
    let expected = packets / 100;
    Ok(Findings {
        lesson: 9,
        assignment: true,
        title: "Assignment: drop every 100th data packet in the XDP program".into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: "One af-xdp transfer with the XDP program as built now".into(),
            columns: ["packets sent", "resent", "rounds", "verified"].map(String::from).to_vec(),
            rows: vec![vec![packets.to_string(), resent.to_string(), r.rounds.unwrap_or(0).to_string(), r.verified.to_string()]],
            chart: None,
            label_columns: 1,
            under: None,
        }],
        claims: vec![
            Claim::new(
                "The XDP program drops about one data packet in 100, and zclab sends them again",
                resent * 2 >= expected && resent > 0,
                format!("{resent} packets resent of {packets} sent (about {expected} expected)"),
            ),
            Claim::new("The file still arrives intact", r.verified, format!("verified: {}", r.verified)),
        ],
        notes: vec!["edit xdp-prog/zclab_xdp.c, rebuild (cargo build --release), and check again".into()],
    })
}
