//! The receiving end: listen, take one transfer, write it to a temporary
//! file beside `--out`, hash it, compare with the sender's hash, and rename
//! it to `--out` only when it verified.

pub mod af_xdp;
pub mod packets;
pub mod tcp;
pub mod udp;
pub mod writer;

use crate::metrics::{self, CostMeter};
use crate::report::{RecvReport, RxPackets};
use crate::trace::Testimony;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::plan::PacketPlan;
use crate::transfer::reassembly::{LossInjector, Reassembly};
use crate::transfer::{hash, Mode, Watchdog, IO_TICK};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A validated `zclab recv`.
#[derive(Debug, Clone)]
pub struct RecvConfig {
    pub listen: SocketAddr,
    pub out: PathBuf,
    /// How long the sender may stay silent once connected.
    pub timeout: Duration,
    /// Give up if no sender connects within this time (None: wait).
    pub accept_timeout: Option<Duration>,
    /// Check against this hash instead of the one the sender announces
    /// (for testing that a mismatch is caught).
    pub expect_hash: Option<String>,
    /// Interface, queue, bind and attach mode of the af-xdp path.
    pub af_xdp: af_xdp::AfXdpRecvOptions,
    /// Packet paths: drop this many packets per thousand on purpose.
    pub inject_loss: u32,
    /// Write the output file's pages once before the timed part.
    pub preallocate: bool,
    /// How the TCP paths take the data off the socket.
    pub via: tcp::Via,
    /// Count what the kernel did during the timed part (tracepoints).
    pub trace: bool,
}

/// The output file while it is unverified. Dropped without `persist`, it
/// removes itself: an interrupted or failed transfer leaves nothing.
pub struct PartialFile {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl PartialFile {
    fn create(out: &Path) -> io::Result<PartialFile> {
        let name = out.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--out must name a file"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".zclab-partial-{}", std::process::id()));
        let path = out.with_file_name(tmp_name);
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        Ok(PartialFile { path, file, kept: false })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn persist(mut self, out: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, out)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => {
                format!("port {} is in use on {}: stop the other listener or pick another --listen port", addr.port(), addr.ip())
            }
            io::ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this host or namespace: use one it has (`ip addr`), 0.0.0.0, or --netns",
                addr.ip()
            ),
            io::ErrorKind::PermissionDenied => "ports below 1024 need root".into(),
            _ => "check the address".into(),
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}; {hint}")
    })
}

fn accept(listener: &TcpListener, limit: Option<Duration>) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        crate::interrupt::check()?;
        match listener.accept() {
            Ok((s, peer)) => {
                log::info!("sender connected from {peer}");
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(l) = limit {
                    if start.elapsed() >= l {
                        bail!("no sender connected within {:.0} s", l.as_secs_f64());
                    }
                }
                crate::sys::socket::poll_one(listener, libc::POLLIN, 200)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where the data arrives.
enum Plane {
    Tcp,
    Udp(udp::UdpSource),
    /// The AF_XDP socket behind the XDP program, and the MAC to announce.
    Xdp(Box<af_xdp::XdpSource>, String),
}

/// Writes every page of the output file once before the transfer, so the
/// timed part overwrites pages the page cache already holds instead of
/// allocating fresh ones (slow and erratic on virtual machines).
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        crate::interrupt::check()?;
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// `zclab recv`: serves one transfer and returns its report.
pub fn receive(cfg: &RecvConfig) -> Result<RecvReport> {
    let listener = bind(cfg.listen)?;
    log::info!("listening on {}", cfg.listen);
    let sock = accept(&listener, cfg.accept_timeout)?;
    drop(listener);
    sock.set_read_timeout(Some(IO_TICK))?;
    sock.set_write_timeout(Some(IO_TICK))?;
    let mut wd = Watchdog::new(cfg.timeout, "the sender");

    let (mode, size, chunk, transfer_id) = match recv_msg(&mut &sock, &mut wd)? {
        Some(Msg::Hello { mode, size, chunk, transfer_id }) => (mode, size, chunk, transfer_id),
        Some(other) => bail!("the sender began with {other:?} instead of Hello"),
        None => bail!("the sender closed the connection before saying Hello"),
    };
    log::info!("receiving {size} bytes by {mode}");
    let partial = PartialFile::create(&cfg.out).with_context(|| format!("cannot create a file beside {}", cfg.out.display()))?;

    let path = mode;
    // Everything the receiver sets up happens before Ready, outside the timed part.
    let payload = if path.is_packet_path() {
        let p = u32::try_from(chunk).ok().filter(|p| (1..=65535).contains(p));
        let Some(p) = p else { bail!("the sender announced {chunk} bytes per packet: not a valid packet size") };
        partial.file().set_len(size).context("sizing the output file")?;
        p
    } else {
        0
    };
    if cfg.preallocate {
        preallocate(partial.file(), size).context("preallocating the output file")?;
    }
    let mut plane = match path {
        Mode::AfXdp => {
            let (src, mac) = af_xdp::XdpSource::open(cfg.listen, &cfg.af_xdp).context("setting up the AF_XDP receiver")?;
            Plane::Xdp(Box::new(src), mac)
        }
        Mode::UdpGso => Plane::Udp(
            udp::UdpSource::bind(cfg.listen).with_context(|| format!("cannot open the UDP data socket on {}", cfg.listen))?,
        ),
        _ => Plane::Tcp,
    };
    let out_ino = partial.file().metadata().map(|m| m.ino()).ok();
    let mut testimony = Testimony::prepare(cfg.trace, None, out_ino);
    let ready = match &plane {
        Plane::Xdp(src, mac) => Msg::Ready { mac: Some(mac.clone()), window: Some(src.window()) },
        Plane::Udp(_) => Msg::Ready { mac: None, window: Some(udp::WINDOW) },
        Plane::Tcp => Msg::Ready { mac: None, window: None },
    };
    testimony.start();
    send_msg(&mut &sock, &ready, &mut wd)?;

    let mut packets = None;
    let mut af_xdp: Option<crate::report::AfXdpRx> = None;
    let meter = CostMeter::start();
    let t0 = Instant::now();
    let got = if path.is_packet_path() {
        let out = partial.file();
        let loss = LossInjector::new(cfg.inject_loss);
        let mut r = Reassembly::with_loss(PacketPlan::new(size, payload), transfer_id as u32, loss);
        let (calls, rounds) = match &mut plane {
            Plane::Xdp(src, _) => {
                let window = src.window();
                let res = packets::receive_rounds(&sock, src.as_mut(), &mut r, out, &mut wd, window)
                    .context("receiving the packets")?;
                af_xdp = Some(src.report()?);
                res
            }
            Plane::Udp(src) => {
                packets::receive_rounds(&sock, src, &mut r, out, &mut wd, udp::WINDOW).context("receiving the packets")?
            }
            Plane::Tcp => unreachable!("packet paths have a packet plane"),
        };
        let c = r.counts;
        packets = Some(RxPackets {
            accepted: c.accepted,
            duplicates: c.duplicates,
            invalid: c.invalid,
            injected_losses: c.injected_losses,
            rounds,
        });
        tcp::Received { bytes: r.bytes(), syscalls: calls, zerocopy: None }
    } else {
        tcp::receive_stream(&sock, partial.file(), size, &mut wd, cfg.via).context("receiving the data")?
    };
    let discarded = !path.is_packet_path() && cfg.via == tcp::Via::Discard;
    let seconds = t0.elapsed().as_secs_f64();
    let cost = meter.finish(got.syscalls);
    let truncated = got.bytes < size;
    if !truncated {
        send_msg(&mut &sock, &Msg::Received { bytes: got.bytes }, &mut wd)?;
    }
    // After Received: detaching waits for RCU grace periods (milliseconds
    // per program), which must not land in the sender's timed part.
    let kernel = testimony.finish();

    let (hash, hash_time) = hash::hash_file(&partial.path).context("hashing the received file")?;
    let announced = if truncated {
        None
    } else {
        match recv_msg(&mut &sock, &mut wd)? {
            Some(Msg::Trailer { hash }) => Some(hash),
            Some(other) => bail!("the sender sent {other:?} where its Trailer was expected"),
            None => None,
        }
    };
    let expected = cfg.expect_hash.clone().or(announced);
    let reason = if truncated {
        Some(format!("the stream ended after {} of {} announced bytes", got.bytes, size))
    } else if discarded {
        Some("the receiver discarded the data (--via discard): nothing was written, so nothing is verified".into())
    } else {
        match &expected {
            None => Some("the sender closed the connection without sending its hash".to_string()),
            Some(h) if *h != hash => Some(format!("hash mismatch: expected {h}, received data hashes to {hash}")),
            Some(_) => None,
        }
    };
    let verified = reason.is_none();
    if !truncated {
        let verdict = Msg::Verdict { bytes: got.bytes, hash: hash.clone(), verified, reason: reason.clone() };
        // The sender may already be gone; the local report still stands.
        if let Err(e) = send_msg(&mut &sock, &verdict, &mut wd) {
            log::warn!("could not send the verdict to the sender: {e}");
        }
    }
    if verified {
        partial.persist(&cfg.out).with_context(|| format!("renaming the verified file to {}", cfg.out.display()))?;
    }
    Ok(RecvReport {
        mode,
        bytes: got.bytes,
        expected_bytes: size,
        seconds,
        gbit_per_s: metrics::gbit_per_s(got.bytes, seconds),
        verified,
        hash,
        expected_hash: expected,
        hash_seconds: hash_time.as_secs_f64(),
        cost,
        out: verified.then(|| cfg.out.display().to_string()),
        packets,
        af_xdp,
        reason,
        kernel,
        via: (!path.is_packet_path()).then_some(cfg.via),
        zerocopy_receive: got.zerocopy,
    })
}
