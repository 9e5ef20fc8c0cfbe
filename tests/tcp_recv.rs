//! zclab's own TCP on the receiving end (`recv --plain --mode af-xdp-tcp`):
//! every test has a real sender on the other end (the kernel's TCP by
//! `zclab send --plain`, socat, a socket of the test's own, or zclab's own
//! TCP), and judges by the file that arrived (compared byte for byte), by
//! what the sender was told (it returns only once this end closed), and by
//! the sending kernel's own counters (`nstat`).

mod common;

use common::*;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A receiver started in `ns` on `listen`, once its socket is bound behind
/// its XDP program (it says so on stderr), with its stderr collected.
struct Receiver {
    child: Reaped,
    log: std::thread::JoinHandle<String>,
}

impl Receiver {
    fn start(ns: &str, listen: &str, out: &std::path::Path, extra: &[&str]) -> Receiver {
        let mut child = Reaped::new(
            zclab()
                .args(["recv", "--netns", ns, "--plain", "--mode", "af-xdp-tcp", "--listen", listen])
                .args(["--out", out.to_str().unwrap(), "--json", "--accept-timeout", "30"])
                .args(extra)
                .env("RUST_LOG", "zclab=info")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("zclab recv starts"),
        );
        let err = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("af-xdp-tcp receiver on") {
                    let _ = ready_tx.send(());
                }
                all += &line;
                all.push('\n');
            }
            all
        });
        if ready_rx.recv_timeout(Duration::from_secs(15)).is_err() {
            let _ = child.kill();
            panic!("the receiver did not come up: {}", log.join().unwrap());
        }
        Receiver { child, log }
    }

    /// Waits for it: its exit, its JSON report (if it printed one), its log.
    fn finish(self) -> (std::process::ExitStatus, Option<serde_json::Value>, String) {
        let o = self.child.wait_with_output().unwrap();
        let log = self.log.join().unwrap();
        let report = serde_json::from_slice(&o.stdout).ok();
        (o.status, report, log)
    }
}

/// One of the kernel's counters in a namespace (`nstat -az`, absolute).
fn nstat(ns: &str, name: &str) -> u64 {
    let o = std::process::Command::new("ip").args(["netns", "exec", ns, "nstat", "-az", name]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Names in `dir` other than `keep`: what a failed receive must not leave.
fn others(dir: &std::path::Path, keep: &[&str]) -> Vec<String> {
    files_in(dir).into_iter().filter(|f| !keep.contains(&f.as_str())).collect()
}

#[test]
fn kernel_senders_socat_and_zclabs_own_tcp_all_deliver_the_file_intact() {
    if !privileged("kernel_senders_socat_and_zclabs_own_tcp_all_deliver_the_file_intact") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (12 << 20) + 777, 51);
    let want = std::fs::read(&src).unwrap();
    let senders: [(&str, Vec<String>); 4] = [
        ("sendfile", vec!["send", "--plain", "--mode", "sendfile"].into_iter().map(String::from).collect()),
        ("read-write", vec!["send", "--plain", "--mode", "read-write"].into_iter().map(String::from).collect()),
        ("af-xdp-tcp", vec!["send", "--plain", "--mode", "af-xdp-tcp"].into_iter().map(String::from).collect()),
        ("socat", Vec::new()),
    ];
    for (i, (who, args)) in senders.iter().enumerate() {
        let port = 8200 + i as u16;
        let to = format!("10.77.0.2:{port}");
        let out = dir.path(&format!("out-{who}"));
        let rx = Receiver::start(&n.rx_ns, &to, &out, &[]);
        let o = if args.is_empty() {
            std::process::Command::new("ip")
                .args(["netns", "exec", &n.tx_ns, "socat", "-u"])
                .arg(format!("FILE:{}", src.display()))
                .arg(format!("TCP:{to}"))
                .output()
                .unwrap()
        } else {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            a.extend(["--netns", &n.tx_ns, "--to", &to, "--file", src.to_str().unwrap()]);
            run_zclab(&a)
        };
        // A zclab sender returns only once every byte was acknowledged and this end closed.
        assert!(o.status.success(), "{who}: {}", stderr(&o));
        let (status, r, log) = rx.finish();
        assert!(status.success(), "{who}: the receiver: {log}");
        let r = r.expect("a report");
        assert!(std::fs::read(&out).unwrap() == want, "{who}: the file arrived intact");
        assert_eq!(r["bytes"], want.len() as u64, "{who}");
        assert_eq!(r["hash"], blake3_hex(&want), "{who}: the report's hash is the file's");
        let t = &r["tcp"];
        assert!(t["acks_sent"].as_u64().unwrap() > 0, "{who}: {t}");
        // ACKs are delayed: fewer than one per segment.
        assert!(t["acks_sent"].as_u64().unwrap() < t["segments_received"].as_u64().unwrap() / 2, "{who}: {t}");
        assert_eq!(t["peer_sack_permitted"], true, "{who}: {t}");
        assert_eq!(r["mss"], 1460, "{who}");
        assert_eq!(others(&dir.0, &["src"]).len(), i + 1, "{who}: only the files themselves: {:?}", files_in(&dir.0));
    }
}

/// BLAKE3 of `bytes`, hex, by zclab's own hashing of a file.
fn blake3_hex(bytes: &[u8]) -> String {
    let dir = Scratch::new();
    let p = dir.path("h");
    std::fs::write(&p, bytes).unwrap();
    zclab::transfer::hash::hash_file_with(&p, None, false).unwrap().0
}

#[test]
fn loss_through_a_router_holds_segments_out_of_order_and_the_kernels_sack_recovery_uses_our_blocks() {
    if !privileged("loss_through_a_router_holds_segments_out_of_order") {
        return;
    }
    let lossy = LossyRouter::up(8210, 2);
    lossy.no_gso_on_sender();
    let n = lossy.names.clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 16 << 20, 52);
    let out = dir.path("out");
    let recov0 = nstat(&n.tx_ns, "TcpExtTCPSackRecovery");
    let retrans0 = nstat(&n.tx_ns, "TcpRetransSegs");
    let rx = Receiver::start(&n.rx_ns, "10.77.0.2:8210", &out, &[]);
    let o = run_zclab(&[
        "send",
        "--netns",
        &n.tx_ns,
        "--plain",
        "--mode",
        "sendfile",
        "--to",
        "10.77.0.2:8210",
        "--file",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (status, r, log) = rx.finish();
    assert!(status.success(), "{log}");
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&src).unwrap(), "intact through 2% loss each way");
    let (data_dropped, acks_dropped) = lossy.drops();
    assert!(data_dropped + acks_dropped > 50, "the router dropped segments: {data_dropped} and {acks_dropped}");
    let r = r.unwrap();
    let t = &r["tcp"];
    assert!(t["out_of_order_segments"].as_u64().unwrap() > 0, "segments behind a hole were held: {t}");
    assert!(t["sack_blocks_sent"].as_u64().unwrap() > 0, "{t}");
    assert!(r["held_frames_peak"].as_u64().unwrap() > 1, "{r}");
    // The sending kernel's own word: it sent segments again, and recovered by our SACK blocks.
    let resent = nstat(&n.tx_ns, "TcpRetransSegs") - retrans0;
    assert!(resent > 0, "the kernel retransmitted");
    // ... and hardly anything we held: every hole was reported, as it opened (a receiver that
    // told only four blocks a batch had the kernel send 3.6 times the segments lost again).
    assert!(resent <= 3 * data_dropped + 30, "{resent} sent again for {data_dropped} lost: {t}");
    assert!(nstat(&n.tx_ns, "TcpExtTCPSackRecovery") > recov0, "the kernel's recoveries went by SACK");
}

/// A kernel socket in `ns` connected to `to` by a thread of its own, which
/// hands `f` the stream.
fn kernel_sender<T: Send + 'static>(
    ns: &str,
    to: SocketAddr,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        zclab::sys::netns::enter(&ns).unwrap();
        f(TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connects"))
    })
}

#[test]
fn a_sender_that_resets_or_goes_silent_mid_transfer_ends_the_receive_with_an_error_and_no_file() {
    if !privileged("a_sender_that_resets_or_goes_silent") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    // Resets: 2 MiB, then close with SO_LINGER 0.
    let out = dir.path("reset");
    let rx = Receiver::start(&n.rx_ns, "10.77.0.2:8220", &out, &[]);
    let t = kernel_sender(&n.tx_ns, "10.77.0.2:8220".parse().unwrap(), |mut s| {
        s.write_all(&vec![7u8; 2 << 20]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        linger_zero(&s);
        drop(s);
        Instant::now()
    });
    let reset_at = t.join().unwrap();
    let (status, _, log) = rx.finish();
    assert!(reset_at.elapsed() < Duration::from_secs(2), "it stopped at once");
    assert!(!status.success());
    assert!(log.contains("reset the connection after 2097152 bytes"), "{log}");
    // Silent: 1 MiB, then nothing (the connection stays open) until the receiver gives up.
    let out2 = dir.path("silent");
    let rx = Receiver::start(&n.rx_ns, "10.77.0.2:8221", &out2, &["--timeout", "2"]);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = kernel_sender(&n.tx_ns, "10.77.0.2:8221".parse().unwrap(), move |mut s| {
        s.write_all(&vec![9u8; 1 << 20]).unwrap();
        let _ = stop_rx.recv_timeout(Duration::from_secs(20));
    });
    let t0 = Instant::now();
    let (status, _, log) = rx.finish();
    let _ = stop_tx.send(());
    t.join().unwrap();
    assert!(!status.success());
    assert!(log.contains("went silent for 2 s after 1048576 bytes"), "{log}");
    assert!(t0.elapsed() < Duration::from_secs(8), "bounded by --timeout");
    assert!(others(&dir.0, &[]).is_empty(), "no file, no partial file: {:?}", files_in(&dir.0));
}

/// SO_LINGER with a zero time: closing then sends a reset, not a FIN.
fn linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `l` is live for the call and its size is given; the fd is the stream's.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// The receiver's RCV.NXT as the sender's sequence number: once what was
/// written is acknowledged, `trigger` sends a little more, and a raw socket
/// of this thread's namespace reads the ACK numbers of the receiver's
/// segments from port `from_port` until they stop coming (the last one).
fn rcv_nxt_after(from_port: u16, trigger: impl FnOnce()) -> u32 {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes plain integers; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
    assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd nothing else owns.
    let raw = unsafe { OwnedFd::from_raw_fd(fd) };
    zclab::sys::socket::set_receive_timeout(&raw, Duration::from_millis(300)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    trigger();
    let mut pkt = [0u8; 2048];
    let mut last = None;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        // SAFETY: `pkt` is live and writable for its length.
        let n = unsafe { libc::recv(raw.as_raw_fd(), pkt.as_mut_ptr() as *mut libc::c_void, pkt.len(), 0) };
        if n < 40 {
            if last.is_some() {
                break;
            }
            continue;
        }
        let tcp = &pkt[(pkt[0] & 0x0f) as usize * 4..n as usize];
        if u16::from_be_bytes([tcp[0], tcp[1]]) == from_port {
            last = Some(u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]));
        }
    }
    last.expect("a segment of the receiver")
}

#[test]
fn forged_segments_outside_the_window_bad_sums_resets_and_syns_are_counted_and_dropped() {
    if !privileged("forged_segments_outside_the_window_bad_sums_resets_and_syns") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let out = dir.path("out");
    let me: SocketAddr = "10.77.0.2:8230".parse().unwrap();
    let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let rx = Receiver::start(&n.rx_ns, "10.77.0.2:8230", &out, &[]);
    let body = data.clone();
    // The sender writes half, forges segments into its own connection from a raw socket
    // (as if from itself), then writes the rest.
    let t = kernel_sender(&n.tx_ns, me, move |mut s| {
        let from = s.local_addr().unwrap();
        s.write_all(&body[..3 << 20]).unwrap();
        let next = rcv_nxt_after(me.port(), || s.write_all(&body[3 << 20..(3 << 20) + 100]).unwrap());
        let seg = |flags: zclab::wire::TcpFlags, seq: u32| zclab::wire::TcpSegment {
            src_port: from.port(),
            dst_port: me.port(),
            seq,
            ack: 0,
            flags: zclab::wire::TcpFlags { ack: !flags.syn, ..flags },
            window: 1000,
            options: Default::default(),
        };
        let plain = zclab::wire::TcpFlags::default();
        for i in 0..10u32 {
            // Far outside the window (at most 6 MiB wide).
            inject(from, me, &seg(plain, next.wrapping_add(1 << 31).wrapping_add(i)), false);
            // A wrong checksum.
            inject(from, me, &seg(plain, next), true);
            // A reset in the window but not at the next number: a challenge ACK, no reset.
            inject(from, me, &seg(zclab::wire::TcpFlags { rst: true, ..plain }, next.wrapping_add(5000 + i)), false);
            // A SYN on the running connection, in the window (RFC 5961 4.2).
            inject(from, me, &seg(zclab::wire::TcpFlags { syn: true, ..plain }, next.wrapping_add(i)), false);
        }
        s.write_all(&body[(3 << 20) + 100..]).unwrap();
    });
    t.join().unwrap();
    let (status, r, log) = rx.finish();
    assert!(status.success(), "{log}");
    assert!(std::fs::read(&out).unwrap() == data, "the file intact");
    let r = r.unwrap();
    let t = &r["tcp"];
    assert!(t["dropped_outside_window"].as_u64().unwrap() >= 10, "{t}");
    assert!(r["checksum"]["rx_bad"].as_u64().unwrap() >= 10, "{}", r["checksum"]);
    assert!(t["dropped_rst_not_exact"].as_u64().unwrap() >= 10, "{t}");
    assert!(t["challenge_acks"].as_u64().unwrap() >= 20, "resets and SYNs were challenged: {t}");
}

#[test]
fn a_zclab_receiver_takes_any_tcp_modes_data_connection_by_its_own_tcp_and_verifies_it() {
    if !privileged("a_zclab_receiver_takes_any_tcp_modes_data_connection") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (5 << 20) + 99, 53);
    for (i, mode) in ["sendfile", "af-xdp-tcp"].into_iter().enumerate() {
        let listen = format!("10.77.0.2:{}", 8240 + i);
        let out = dir.path(&format!("out-{mode}"));
        let rx = spawn_recv(&n.rx_ns, &listen, &out, &["--mode", "af-xdp-tcp", "--json", "--accept-timeout", "20"]);
        std::thread::sleep(Duration::from_millis(300));
        let o = send(&n.tx_ns, &listen, mode, &src, &["--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let ro = rx.wait_with_output().unwrap();
        assert!(ro.status.success(), "{mode}: {}", stderr(&ro));
        let (s, r) = (json(&o), json(&ro));
        assert_eq!(r["verified"], true, "{mode}: {r}");
        assert_eq!(s["verified"], true, "{mode}: the sender heard the verdict");
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&src).unwrap(), "{mode}: cmp");
        let t = &r["af_xdp_tcp"];
        assert_eq!(t["bytes"], r["bytes"], "{mode}: the data came by zclab's TCP: {t}");
        assert!(t["tcp"]["segments_received"].as_u64().unwrap() > 3000, "{mode}: {t}");
        // The sender's clock ends when the data path is done, not after a TIME-WAIT.
        let (ss, rs) = (s["seconds"].as_f64().unwrap(), r["seconds"].as_f64().unwrap());
        assert!(ss < rs + 0.05, "{mode}: the sender's {ss} s against the receiver's {rs} s");
    }
}
