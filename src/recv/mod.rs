//! The receiving end: listen, take one transfer, write it to a temporary
//! file beside `--out`, hash it, compare with the sender's hash, and rename
//! it to `--out` only when it verified.

pub mod af_xdp;
pub mod af_xdp_tcp;
pub mod direct;
pub mod packets;
pub mod tcp;
pub mod udp;
pub mod writer;

use crate::metrics::{self, CostMeter};
use crate::report::{RecvReport, RxPackets};
use crate::trace::Testimony;
use crate::transfer::auth::{self, Key};
use crate::transfer::control::{recv_msg, send_failure, send_msg, Msg};
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
    /// The shared key (`--key`): senders must prove they hold it.
    pub key: Option<crate::transfer::auth::Key>,
    /// af-xdp: write payloads with O_DIRECT straight from the UMEM (`--direct`).
    pub direct: bool,
    /// TCP paths: take the data connection by zclab's own TCP on an AF_XDP
    /// socket (`--mode af-xdp-tcp`), not the kernel's.
    pub tcp_receiver: Option<crate::send::af_xdp_tcp::TcpXdpOptions>,
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

/// The next connection, or an error once `deadline` has passed.
fn accept(listener: &TcpListener, deadline: Option<Instant>) -> Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    loop {
        crate::interrupt::check()?;
        match listener.accept() {
            Ok((s, peer)) => {
                log::info!("connection from {peer}");
                s.set_nonblocking(false)?;
                return Ok((s, peer));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    bail!("no sender this receiver could serve connected within --accept-timeout");
                }
                crate::sys::socket::poll_one(listener, libc::POLLIN, 200)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reserves the output file's blocks before Ready (`fallocate`), so a full
/// disk refuses the transfer up front with the numbers, instead of failing
/// midway.
fn reserve(file: &File, size: u64, out: &Path) -> Result<()> {
    use crate::report::human_bytes;
    // The sender is told sizes and the cause, never this receiver's paths; its own log keeps them.
    let no_room = |free: u64| {
        log::error!("no room for {} ({} needed, {} free there)", out.display(), human_bytes(size), human_bytes(free));
        anyhow::anyhow!(
            "no room for the file: it needs {} ({size} bytes) and the receiver's file system has {} free",
            human_bytes(size),
            human_bytes(free)
        )
    };
    match crate::sys::file::fallocate(file, size) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Err(no_room(crate::sys::file::free_bytes(file).unwrap_or(0))),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            // A file system without fallocate: check the free space instead.
            let free = crate::sys::file::free_bytes(file).context("statvfs of the output's file system")?;
            if free < size {
                return Err(no_room(free));
            }
            file.set_len(size).context("sizing the output file")
        }
        Err(e) => Err(e).context("reserving space for the output file (fallocate)"),
    }
}

/// Where the data arrives.
enum Plane {
    Tcp,
    /// af-xdp-tcp: the data comes on a connection of its own, to this listener.
    Stream(TcpListener),
    /// `--mode af-xdp-tcp`: the data connection is taken by zclab's own TCP.
    XdpTcp(Box<af_xdp_tcp::TcpReceiver>),
    Udp(udp::UdpSource),
    /// The AF_XDP socket behind the XDP program, and the MAC to announce.
    Xdp(Box<af_xdp::XdpReceiver>, String),
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

/// How long a new connection may take to send its Hello, all of it: a peer
/// that trickles bytes (or none) is dropped and the receiver goes on waiting.
pub const HELLO_LIMIT: Duration = Duration::from_secs(3);

/// The most memory one transfer can make the receiver allocate for its
/// bookkeeping: the packet paths' bitmap of packets seen, one bit a packet.
/// Checked against the Hello, before anything is allocated. (Its other
/// buffers are fixed: RX rings, batches, control messages of at most 64 KiB.)
pub const MAX_BITMAP_BYTES: u64 = 64 << 20;

/// The bytes of the bitmap of packets a transfer of `size` bytes in
/// packets of `payload` would need, if that is above [`MAX_BITMAP_BYTES`].
fn bitmap_too_large(size: u64, payload: u32) -> Option<u64> {
    Some(PacketPlan::new(size, payload).packets().div_ceil(8)).filter(|b| *b > MAX_BITMAP_BYTES)
}

/// What a sender announced in a Hello that passed the checks.
#[derive(Debug, Clone, Copy)]
struct Hello {
    mode: Mode,
    size: u64,
    /// Payload bytes per packet (packet paths), bytes per call (TCP).
    chunk: u64,
    transfer_id: u64,
    /// The session's key for the file hash (with `--key`).
    session: Option<[u8; 32]>,
    /// af-xdp: the queues the sender sends on.
    queues: Option<u32>,
    /// af-xdp: the payload of whole O_DIRECT units the sender can cut instead.
    direct_payload: Option<u64>,
}

/// Reads `sock` until an absolute deadline, however slowly the bytes come.
struct ByDeadline<'a>(&'a TcpStream, Instant, Duration);

impl io::Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.1.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::other(format!("no complete Hello within {:.1} s", self.2.as_secs_f64())));
        }
        self.0.set_read_timeout(Some(left.min(IO_TICK)))?;
        io::Read::read(&mut &*self.0, buf)
    }
}

/// Reads and checks a connection's Hello. `Err` says why it is not a
/// sender this receiver can serve.
fn handshake(sock: &TcpStream, key: Option<&Key>, limit: Duration) -> Result<Hello> {
    // The deadline below ends it; the watchdog only must not come first.
    let mut wd = Watchdog::new(limit + Duration::from_secs(1), "the sender");
    let mut r = ByDeadline(sock, Instant::now() + limit, limit);
    let (mut hello, nonce) = match recv_msg(&mut r, &mut wd)? {
        Some(Msg::Hello { mode, size, chunk, transfer_id, nonce, queues, direct_payload }) => {
            (Hello { mode, size, chunk, transfer_id, session: None, queues, direct_payload }, nonce)
        }
        Some(other) => bail!("it began with {other:?} instead of Hello"),
        None => bail!("it closed the connection before saying Hello"),
    };
    hello.session = match (key, nonce) {
        (None, None) => None,
        (None, Some(_)) => bail!("the sender has a key and this receiver has none: give both ends the same --key"),
        (Some(_), None) => {
            bail!("this receiver needs a key and the sender has none: give both ends the same --key (or ZCLAB_KEY)")
        }
        (Some(k), Some(ns)) => {
            let nr = auth::nonce()?;
            let hb = auth::hello_bytes(hello.mode.name(), hello.size, hello.chunk, hello.transfer_id);
            let proof = k.receiver_proof(ns.as_bytes(), nr.as_bytes(), &hb);
            send_msg(&mut &*sock, &Msg::Challenge { nonce: nr.clone(), proof }, &mut wd)?;
            match recv_msg(&mut r, &mut wd)? {
                Some(Msg::Proof { proof }) if Key::check(&k.sender_proof(ns.as_bytes(), nr.as_bytes(), &hb), &proof) => {}
                Some(Msg::Proof { .. }) => bail!("its proof of the key is wrong: the two ends have different keys"),
                Some(other) => bail!("it answered the challenge with {other:?}"),
                None => {
                    bail!("it closed the connection at the challenge (it found this receiver's proof wrong: different keys?)")
                }
            }
            Some(k.session(ns.as_bytes(), nr.as_bytes()))
        }
    };
    let hello = hello;
    if hello.mode.is_packet_path() {
        let Some(p) = u32::try_from(hello.chunk).ok().filter(|p| (1..=65535).contains(p)) else {
            bail!("it announced {} bytes per packet: not a valid packet size", hello.chunk);
        };
        if let Some(bitmap) = bitmap_too_large(hello.size, p) {
            bail!(
                "{} bytes in packets of {p} would need a {bitmap}-byte bitmap of packets, above this receiver's limit of {} MiB: \
                 send a smaller file or use a larger MTU",
                hello.size,
                MAX_BITMAP_BYTES >> 20
            );
        }
    }
    Ok(hello)
}

/// Accepts connections until one passes the handshake (or `deadline`):
/// a port scan, an HTTP request or a silent connection is logged, told
/// why, closed, and the receiver goes on waiting.
fn first_valid_sender(listener: &TcpListener, deadline: Option<Instant>, key: Option<&Key>) -> Result<(TcpStream, Hello)> {
    loop {
        let (sock, peer) = accept(listener, deadline)?;
        sock.set_write_timeout(Some(IO_TICK))?;
        match handshake(&sock, key, HELLO_LIMIT) {
            Ok(h) => return Ok((sock, h)),
            Err(e) => {
                log::warn!("a connection from {peer} is not a sender this receiver can serve ({e:#}); still waiting");
                send_failure(&sock, &format!("{e:#}"));
            }
        }
    }
}

/// While a transfer runs, the listener stays open and tells every other
/// sender that this receiver is busy, instead of leaving it to time out.
struct RefuseOthers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefuseOthers {
    fn start(listener: TcpListener) -> RefuseOthers {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok(ready) = crate::sys::socket::poll_one(&listener, libc::POLLIN, 100) else { return };
                // Checked again after the wait: a sender that connects after
                // the transfer's end belongs to the next transfer, not here.
                if ready == 0 || flag.load(Ordering::SeqCst) {
                    continue;
                }
                if let Ok((s, peer)) = listener.accept() {
                    log::warn!("refused a second sender from {peer}: busy");
                    let _ = s.set_nonblocking(false);
                    // Its Hello first, so that closing does not reset the connection under our answer.
                    // Briefly: this thread must not hold up the end of the transfer.
                    let _ = handshake(&s, None, Duration::from_millis(300));
                    send_failure(&s, "busy: this receiver is serving another transfer; try again when it is done");
                }
            }
        });
        RefuseOthers { stop, thread: Some(thread) }
    }
}

impl RefuseOthers {
    /// Stops refusing (the thread ends within its next wait).
    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for RefuseOthers {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `zclab recv`: serves one transfer and returns its report. If it fails
/// after the handshake, the sender is told why before the connection closes.
pub fn receive(cfg: &RecvConfig) -> Result<RecvReport> {
    let listener = bind(cfg.listen)?;
    log::info!("listening on {}", cfg.listen);
    let deadline = cfg.accept_timeout.map(|t| Instant::now() + t);
    receive_one(cfg, &listener, deadline, &cfg.out)
}

/// `zclab recv --serve DIR`: transfers one after another, each into a new
/// file in `dir` under a name the receiver makes (never a name from the
/// wire), until Ctrl-C. `each` gets every transfer's outcome.
pub fn serve_dir(cfg: &RecvConfig, dir: &Path, mut each: impl FnMut(Result<RecvReport>)) -> Result<()> {
    if !dir.is_dir() {
        bail!("--serve {}: not a directory (make it first)", dir.display());
    }
    let listener = bind(cfg.listen)?;
    log::info!("listening on {}, receiving into {}", cfg.listen, dir.display());
    loop {
        let out = next_name(dir);
        let r = receive_one(cfg, &listener, None, &out);
        let interrupted = crate::interrupt::requested();
        if !(interrupted && r.is_err()) {
            each(r);
        }
        crate::interrupt::check()?;
    }
}

/// `DIR/zclab-SECONDS-N`, a name not taken yet.
fn next_name(dir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (1u32..).map(|n| dir.join(format!("zclab-{secs}-{n}"))).find(|p| !p.exists()).expect("some name is free")
}

fn receive_one(cfg: &RecvConfig, listener: &TcpListener, deadline: Option<Instant>, out: &Path) -> Result<RecvReport> {
    let (sock, hello) = first_valid_sender(listener, deadline, cfg.key.as_ref())?;
    log::info!("serving a sender: {} bytes by {}", hello.size, hello.mode);
    let refusing = RefuseOthers::start(listener.try_clone().context("duplicating the listening socket")?);
    let result = serve(cfg, &sock, hello, out, &|| refusing.stop());
    drop(refusing);
    if let Err(e) = &result {
        // Not back to a sender that gave up itself.
        if !e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::ConnectionAborted)) {
            send_failure(&sock, &format!("{e:#}"));
        }
    }
    result
}

/// One transfer, from a checked Hello to the verdict.
/// `done` is called once the data is in, before the verdict goes out: the
/// sender may start its next transfer as soon as it has the verdict.
fn serve(cfg: &RecvConfig, mut sock: &TcpStream, hello: Hello, out: &Path, done: &dyn Fn()) -> Result<RecvReport> {
    sock.set_read_timeout(Some(IO_TICK))?;
    sock.set_write_timeout(Some(IO_TICK))?;
    let mut wd = Watchdog::new(cfg.timeout, "the sender");
    let Hello { mode, size, session, .. } = hello;
    log::info!("receiving {size} bytes by {mode}");
    let partial = PartialFile::create(out).with_context(|| format!("cannot create a file beside {}", out.display()))?;

    // Everything the receiver sets up happens before Ready, outside the timed part.
    reserve(partial.file(), size, out)?;
    // With --direct, --preallocate writes the blocks by O_DIRECT instead (see direct.rs).
    let (direct, mut direct_report) = direct_out(cfg, &hello, &partial);
    if cfg.preallocate && direct.is_none() {
        preallocate(partial.file(), size).context("preallocating the output file")?;
    }
    // A direct receiver asks for the sender's offer of whole O_DIRECT units.
    let asked = direct.as_ref().and(hello.direct_payload);
    let hello = Hello { chunk: asked.unwrap_or(hello.chunk), ..hello };
    let out_cached_before = crate::sys::file::cached_bytes(partial.file()).ok();
    let mut plane = open_plane(cfg, &hello, direct.clone(), sock.local_addr()?.ip())?;
    let out_ino = partial.file().metadata().map(|m| m.ino()).ok();
    let mut testimony = Testimony::prepare(cfg.trace, None, out_ino);
    testimony.start();
    send_msg(&mut sock, &plane.ready(asked), &mut wd)?;

    let xdp_iface = cfg.af_xdp.iface.as_deref().filter(|_| hello.mode == Mode::AfXdp);
    let link = crate::route::LinkMeter::start(xdp_iface, sock.local_addr()?.ip());
    let meter = CostMeter::start();
    let t0 = Instant::now();
    let mut tcp_report = None;
    let (got, packets, af_xdp) = receive_data(cfg, sock, &mut plane, partial.file(), hello, &mut wd, &mut tcp_report)?;
    if let Some(d) = &direct {
        // Cuts off what rounding the last payload up to a unit wrote past the end.
        direct_report = Some(d.finish(partial.file()).context("finishing the O_DIRECT writes")?);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let iface = link.as_ref().and_then(|l| l.finish());
    let cost = meter.finish(got.syscalls);
    let truncated = got.bytes < size;
    if !truncated {
        send_msg(&mut sock, &Msg::Received { bytes: got.bytes }, &mut wd)?;
    }
    // After Received: detaching waits for RCU grace periods (milliseconds
    // per program), which must not land in the sender's timed part.
    let kernel = testimony.finish();

    // The proof reads the file the way it was written: with O_DIRECT after direct writes, so
    // that hashing does not fill the page cache the writes bypassed.
    let (hash, hash_time, _) =
        hash::hash_file_with(&partial.path, session.as_ref(), direct.is_some()).context("hashing the received file")?;
    // Measured when the command ends, after the hash: what the page cache holds then.
    let out_cached_after = crate::sys::file::cached_bytes(partial.file()).ok();
    let announced = if truncated {
        None
    } else {
        match recv_msg(&mut sock, &mut wd)? {
            Some(Msg::Trailer { hash }) => Some(hash),
            Some(other) => bail!("the sender sent {other:?} where its Trailer was expected"),
            None => None,
        }
    };
    let expected = cfg.expect_hash.clone().or(announced);
    let discarded = !mode.is_packet_path() && cfg.via == tcp::Via::Discard;
    let reason = why_not_verified(got.bytes, size, discarded, expected.as_deref(), &hash);
    let verified = reason.is_none();
    if !truncated {
        done();
        let verdict = Msg::Verdict { bytes: got.bytes, hash: hash.clone(), verified, reason: reason.clone() };
        // The sender may already be gone; the local report still stands.
        if let Err(e) = send_msg(&mut sock, &verdict, &mut wd) {
            log::warn!("could not send the verdict to the sender: {e}");
        }
    }
    if verified {
        partial.persist(out).with_context(|| format!("renaming the verified file to {}", out.display()))?;
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
        out: verified.then(|| out.display().to_string()),
        packets,
        af_xdp,
        reason,
        kernel,
        via: (!mode.is_packet_path()).then_some(cfg.via),
        zerocopy_receive: got.zerocopy,
        cpu: crate::sys::sched::pinned_cpu(),
        iface,
        direct: direct_report,
        out_cached_before_bytes: out_cached_before,
        out_cached_after_bytes: out_cached_after,
        af_xdp_tcp: tcp_report,
    })
}

/// `--direct`: the O_DIRECT output for an af-xdp transfer that can have
/// it, or the report of why not (the receiver then writes through the page
/// cache, and says so); neither without `--direct`.
fn direct_out(
    cfg: &RecvConfig,
    hello: &Hello,
    partial: &PartialFile,
) -> (Option<std::sync::Arc<direct::DirectOut>>, Option<crate::report::DirectWrites>) {
    use crate::report::DirectWrites;
    if !cfg.direct {
        return (None, None);
    }
    let why = if hello.mode != Mode::AfXdp {
        format!("only af-xdp writes straight from its UMEM; {} writes through the page cache", hello.mode)
    } else if let Some(p) = hello.direct_payload.filter(|p| (1..=65535).contains(p)) {
        if let Some(bitmap) = bitmap_too_large(hello.size, p as u32) {
            format!("{p}-byte payloads would need a {bitmap}-byte bitmap of packets, above the limit")
        } else {
            match direct::DirectOut::open(&partial.path, partial.file(), hello.size, Some(p), cfg.preallocate) {
                Ok(d) => {
                    log::info!("--direct: payloads of {p} bytes, written with O_DIRECT from the UMEM");
                    return (Some(std::sync::Arc::new(d)), None);
                }
                Err(why) => why,
            }
        }
    } else {
        // Without an offer it always says why not: the file system's reason first, if it has one.
        direct::DirectOut::open(&partial.path, partial.file(), hello.size, None, false).err().unwrap_or_default()
    };
    log::warn!("--direct: {why}");
    (None, Some(DirectWrites::not_used(why)))
}

/// Where the data of `mode` will arrive, set up (an XDP program attached
/// and an AF_XDP socket bound, or a UDP socket, or nothing for TCP).
fn open_plane(
    cfg: &RecvConfig,
    hello: &Hello,
    direct: Option<std::sync::Arc<direct::DirectOut>>,
    local_ip: std::net::IpAddr,
) -> Result<Plane> {
    if let Some(opts) = cfg.tcp_receiver.as_ref().filter(|_| !hello.mode.is_packet_path()) {
        // Any TCP sender: the data on a connection of its own, to zclab's TCP on a port of its own.
        let r = af_xdp_tcp::TcpReceiver::open(SocketAddr::new(local_ip, 0), opts)
            .context("setting up the af-xdp-tcp receiver for the data connection")?;
        return Ok(Plane::XdpTcp(Box::new(r)));
    }
    Ok(match hello.mode {
        Mode::AfXdp => {
            // A socket on every RX queue, unless told which: a queue without one loses its
            // packets, and on a real NIC RSS, not the sender, picks the queue.
            let queues = match (cfg.af_xdp.queue, cfg.af_xdp.queues, hello.queues) {
                (_, Some(mine), Some(theirs)) if mine != theirs => bail!(
                    "the sender sends on {theirs} queues, this receiver was told --queues {mine}: give both ends the same, or leave it to the sender"
                ),
                (first, Some(n), _) => Some((first.unwrap_or(0), n)),
                (Some(first), None, theirs) => Some((first, theirs.unwrap_or(1))),
                (None, None, _) => None,
            };
            let (src, mac) = af_xdp::XdpReceiver::open(cfg.listen, &cfg.af_xdp, queues, direct, cfg.timeout)
                .context("setting up the AF_XDP receiver")?;
            Plane::Xdp(Box::new(src), mac)
        }
        Mode::UdpGso => Plane::Udp(
            udp::UdpSource::bind(cfg.listen).with_context(|| format!("cannot open the UDP data socket on {}", cfg.listen))?,
        ),
        Mode::AfXdpTcp => {
            let at = SocketAddr::new(cfg.listen.ip(), 0);
            Plane::Stream(bind(at).context("the listener for the af-xdp-tcp data connection")?)
        }
        _ => Plane::Tcp,
    })
}

impl Plane {
    /// The Ready this plane announces: the MAC to send to, and the window.
    /// `chunk`: the payload asked for instead of the Hello's (`--direct`).
    fn ready(&self, chunk: Option<u64>) -> Msg {
        match self {
            Plane::Xdp(src, mac) => Msg::Ready {
                mac: Some(mac.clone()),
                window: Some(src.window()),
                chunk,
                // A direct receiver's batch waits on the disk; the sender is asked to wait longer.
                patience_ms: chunk.map(|_| direct::PATIENCE.as_millis() as u64),
                data_port: None,
            },
            Plane::Udp(_) => Msg::Ready { mac: None, window: Some(udp::WINDOW), chunk: None, patience_ms: None, data_port: None },
            Plane::Tcp => Msg::Ready { mac: None, window: None, chunk: None, patience_ms: None, data_port: None },
            Plane::Stream(l) => Msg::Ready {
                mac: None,
                window: None,
                chunk: None,
                patience_ms: None,
                data_port: l.local_addr().ok().map(|a| a.port()),
            },
            Plane::XdpTcp(r) => {
                Msg::Ready { mac: None, window: None, chunk: None, patience_ms: None, data_port: Some(r.local().port()) }
            }
        }
    }
}

/// The timed part: the data into `out`, by packets or by the stream.
fn receive_data(
    cfg: &RecvConfig,
    sock: &TcpStream,
    plane: &mut Plane,
    out: &File,
    hello: Hello,
    wd: &mut Watchdog,
    tcp_report: &mut Option<crate::report::AfXdpTcpRx>,
) -> Result<(tcp::Received, Option<RxPackets>, Option<crate::report::AfXdpRx>)> {
    if let Plane::XdpTcp(r) = plane {
        let from = sock.peer_addr()?.ip();
        let rep = r.take(out, Some(from), Some(cfg.timeout), cfg.timeout).context("receiving the data connection")?;
        let got = tcp::Received { bytes: rep.bytes, syscalls: rep.writes + rep.syscalls, zerocopy: None };
        if rep.bytes > hello.size {
            bail!("the sender sent {} bytes, more than the {} it announced", rep.bytes, hello.size);
        }
        *tcp_report = Some(rep);
        return Ok((got, None, None));
    }
    if let Plane::Stream(listener) = plane {
        let data = accept_data(listener, sock, wd)?;
        let got = tcp::receive_stream(&data, out, hello.size, wd, cfg.via).context("receiving the data")?;
        if got.bytes == hello.size {
            expect_close(&data, hello.size, wd)?;
        }
        return Ok((got, None, None));
    }
    if !hello.mode.is_packet_path() {
        let got = tcp::receive_stream(sock, out, hello.size, wd, cfg.via).context("receiving the data")?;
        return Ok((got, None, None));
    }
    // A valid packet size, checked in the handshake.
    let plan = PacketPlan::new(hello.size, hello.chunk as u32);
    let r = Reassembly::with_loss(plan, hello.transfer_id as u32, LossInjector::new(cfg.inject_loss));
    let mut af_xdp = None;
    let (calls, rounds) = match plane {
        Plane::Xdp(src, _) => {
            let res = match src.receive(sock, &r, out, wd).and_then(|res| src.settle().map(|()| res)) {
                Ok(res) => res,
                Err(e) => {
                    let port = cfg.listen.port();
                    return Err(match src.unserved_reason(port) {
                        Some(why) => anyhow::Error::new(e).context(why),
                        None => anyhow::Error::new(e).context("receiving the packets"),
                    });
                }
            };
            af_xdp = Some(src.report()?);
            res
        }
        Plane::Udp(src) => packets::receive_rounds(sock, src, &r, out, wd, udp::WINDOW).context("receiving the packets")?,
        Plane::Tcp | Plane::Stream(_) | Plane::XdpTcp(_) => unreachable!("packet paths have a packet plane"),
    };
    let c = r.counts();
    let packets = RxPackets {
        accepted: c.accepted,
        duplicates: c.duplicates,
        invalid: c.invalid,
        injected_losses: c.injected_losses,
        rounds,
    };
    Ok((tcp::Received { bytes: r.bytes(), syscalls: calls, zerocopy: None }, Some(packets), af_xdp))
}

/// The data connection of an af-xdp-tcp transfer: the first connection to
/// `listener` from the control connection's host (others are closed at
/// once and logged), within the watchdog's patience.
fn accept_data(listener: &TcpListener, control: &TcpStream, wd: &mut Watchdog) -> Result<TcpStream> {
    let from = control.peer_addr()?.ip();
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((s, peer)) if peer.ip() == from => {
                log::info!("the data connection from {peer}");
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(IO_TICK))?;
                return Ok(s);
            }
            Ok((_, peer)) => log::warn!("a data connection from {peer}, not the sender's host {from}: closed"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wd.idle().context("waiting for the sender's data connection")?;
                crate::sys::socket::poll_one(listener, libc::POLLIN, IO_TICK.as_millis() as i32)?;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("accepting the data connection")),
        }
    }
}

/// After the announced bytes, the sender's FIN: one more byte would be a
/// sender that sends more than it announced.
fn expect_close(data: &TcpStream, size: u64, wd: &mut Watchdog) -> Result<()> {
    let mut b = [0u8; 1];
    loop {
        match io::Read::read(&mut &*data, &mut b) {
            Ok(0) => return Ok(()),
            Ok(_) => bail!("the sender sent more bytes than the {size} it announced"),
            Err(e) if Watchdog::is_idle_error(&e) => wd.idle().context("waiting for the sender's FIN")?,
            Err(e) => return Err(anyhow::Error::new(e).context("waiting for the sender's FIN")),
        }
    }
}

/// Why a transfer did not verify, or None if it did.
fn why_not_verified(got: u64, size: u64, discarded: bool, expected: Option<&str>, hash: &str) -> Option<String> {
    if got < size {
        Some(format!("the stream ended after {got} of {size} announced bytes"))
    } else if discarded {
        Some("the receiver discarded the data (--via discard): nothing was written, so nothing is verified".into())
    } else {
        match expected {
            None => Some("the sender closed the connection without sending its hash".to_string()),
            Some(h) if h != hash => Some(format!("hash mismatch: expected {h}, received data hashes to {hash}")),
            Some(_) => None,
        }
    }
}
