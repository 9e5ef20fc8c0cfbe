//! The AF_XDP frames-only ceiling: how many frames AF_XDP moves on this
//! veth at all, TX ring to RX ring through zclab's own `xsk` layer, with no
//! file, no protocol and no checks. One descriptor per frame, or two (a
//! header frame and a payload frame, as zclab's af-xdp path sends them).
//! Shown as payload Gbit/s, so it stands beside af-xdp's file Gbit/s.
//!
//! A third line asks what a one-descriptor layout would give a file: a
//! payload the CPU never touches must be an O_DIRECT read, so it lands
//! 512-aligned right after its header, and at MTU 1500 that allows 1024
//! bytes (FACTS, "AF_XDP ceilings"): more frames per second, fewer bytes each.

use super::Ceiling;
use crate::netns::{EnvNames, RX_ADDR, TX_ADDR};
use crate::transfer::af_xdp::{wait_for_busy_queue, Iface, Knobs, TX_BUDGET};
use crate::wire::{FrameTemplate, LabHeader, FRAME_HEADER_LEN};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, Received, Returned, Umem, UmemConfig, XskSocket};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const PORT: u16 = 7996;
/// zclab's payload at MTU 1500 (two descriptors: header, then the file's bytes).
pub const PAYLOAD: u32 = 1448;
/// The largest 512-aligned payload of a one-descriptor frame at MTU 1500.
pub const ALIGNED_PAYLOAD: u32 = 1024;
const FRAMES: u32 = 4096;

fn umem(fill: u32) -> Result<Umem> {
    Ok(Umem::new(&UmemConfig::chunks(4096, FRAMES, fill, FRAMES))?)
}

/// Receives until `stop`; returns whole packets received and the seconds it ran.
fn receive(names: EnvNames, ready: mpsc::Sender<Result<()>>, stop: Arc<AtomicBool>) -> Result<(u64, f64)> {
    let setup = || -> Result<_> {
        let ifc = Iface::enter(&names.rx_ns, &names.rx_if)?;
        let mut steering = XdpSteering::attach(&ifc.name, PORT, false, None)?;
        let (mut sock, rx) = XskSocket::bind_rx(
            umem(FRAMES)?,
            2048,
            &ifc.socket_config(0, BindMode::Copy, &Knobs::default()),
            wait_for_busy_queue,
        )?;
        steering.register(0, &sock)?;
        let frames = sock.umem_mut().frames_mut();
        let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
        sock.umem_mut().fill(&mut free)?;
        Ok((steering, sock, rx, free))
    };
    let (_steering, mut sock, mut rx, mut free) = match setup() {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
            return Err(e);
        }
    };
    let mut got = Vec::with_capacity(256);
    let (mut packets, mut first, mut last) = (0u64, None, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        if rx.receive(sock.umem_mut(), 256, &mut got) == 0 {
            std::hint::spin_loop();
            continue;
        }
        last = Instant::now();
        first.get_or_insert(last);
        for r in got.drain(..) {
            match r {
                Received::Packet(p) => {
                    packets += u64::from(!p.more);
                    free.push(p.into_frame());
                }
                Received::Malformed(f) => free.push(f),
                Received::Foreign(_) => {}
            }
        }
        sock.umem_mut().fill(&mut free)?;
    }
    Ok((packets, first.map_or(0.0, |t: Instant| (last - t).as_secs_f64())))
}

/// Sends frames of `descs` descriptors (1 or 2) with `payload` bytes for `secs`.
fn send(names: EnvNames, descs: u32, payload: u32, secs: f64) -> Result<()> {
    let ifc = Iface::enter(&names.tx_ns, &names.tx_if)?;
    let (mut sock, mut tx) = XskSocket::bind_tx(
        umem(64)?,
        2048,
        &ifc.socket_config(0, BindMode::Copy, &Knobs { tx_budget: Some(TX_BUDGET), ..Knobs::default() }),
        wait_for_busy_queue,
    )?;
    let template = FrameTemplate {
        src_mac: ifc.mac,
        dst_mac: [0xff; 6],
        src_ip: TX_ADDR.into(),
        dst_ip: RX_ADDR.into(),
        src_port: PORT,
        dst_port: PORT,
    };
    let lab = LabHeader { transfer_id: 0, offset: 0, len: payload, flags: 0 };
    let frames = sock.umem_mut().frames_mut();
    let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
    for f in free.iter_mut() {
        // Every frame starts with the headers; two-descriptor packets use it as the header frame only.
        let b: &mut [u8; FRAME_HEADER_LEN] = (&mut frames.bytes_mut(f)[..FRAME_HEADER_LEN]).try_into()?;
        template.write_header(&lab, b);
    }
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        let packets = (free.len() as u32 / descs).min(tx.free(512) / descs).min(256);
        if packets > 0 {
            let frames = sock.umem_mut().frames_mut();
            let mut r = tx.reserve(packets * descs).context("reserved what was free")?;
            for _ in 0..packets {
                let f = free.pop().expect("counted");
                if descs == 1 {
                    r.push_frame(frames, f, FRAME_HEADER_LEN as u32 + payload, false).map_err(|(_, e)| e)?;
                } else {
                    r.push_frame(frames, f, FRAME_HEADER_LEN as u32, true).map_err(|(_, e)| e)?;
                    let p = free.pop().expect("counted");
                    r.push_frame(frames, p, payload, false).map_err(|(_, e)| e)?;
                }
            }
            r.submit();
        }
        tx.kick()?;
        sock.umem_mut().complete(2048, |r| {
            if let Returned::Frame(f) = r {
                free.push(f);
            }
        });
    }
    Ok(())
}

/// Frames per second from a TX socket on the env's sending veth into an RX
/// socket behind the XDP program on its receiving veth, as payload Gbit/s.
pub fn frames_only(env: &str, descs: u32, payload: u32, secs: f64) -> Result<Ceiling> {
    let names = EnvNames::new(env)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (n, s) = (names.clone(), stop.clone());
    let receiver = std::thread::spawn(move || receive(n, ready_tx, s));
    let started = ready_rx.recv().context("the receiving thread ended early").and_then(|r| r);
    let sent = started.and_then(|()| {
        let n = names.clone();
        std::thread::spawn(move || send(n, descs, payload, secs))
            .join()
            .map_err(|_| anyhow::anyhow!("the sending thread panicked"))?
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (packets, seconds) = receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    sent?;
    let rate = if seconds > 0.0 { packets as f64 / seconds } else { 0.0 };
    Ok(Ceiling {
        name: format!(
            "AF_XDP frames only, {descs} descriptor{}, {payload} B payload ({:.0} k/s)",
            if descs == 1 { "" } else { "s" },
            rate / 1e3
        ),
        gbit_per_s: rate * payload as f64 * 8.0 / 1e9,
    })
}
