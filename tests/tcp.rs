//! zclab's own TCP (af-xdp-tcp) against the kernel's: every test has a real
//! kernel TCP socket on the other end, in a namespace of its own, and judges
//! by what that end got and by the kernel's own counters (`nstat`).

mod common;

use common::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A kernel TCP listener in namespace `ns` on `addr`, run on a thread of its
/// own by `serve`, which gets the accepted connection.
fn listener<T: Send + 'static>(
    ns: &str,
    addr: SocketAddr,
    serve: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        zclab::sys::netns::enter(&ns).unwrap();
        let l = TcpListener::bind(addr).unwrap();
        ready_tx.send(()).unwrap();
        let (s, _) = l.accept().unwrap();
        serve(s)
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("the listener came up");
    h
}

/// Reads until the peer's FIN; returns the bytes.
fn read_all(mut s: std::net::TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

/// One of the kernel's TCP counters in a namespace (`nstat -az`, absolute).
fn nstat(ns: &str, name: &str) -> u64 {
    let o = std::process::Command::new("ip").args(["netns", "exec", ns, "nstat", "-az", name]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn send_plain(ns: &str, to: &str, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["send", "--netns", ns, "--plain", "--mode", "af-xdp-tcp", "--to", to, "--file", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    run_zclab(&args)
}

#[test]
fn a_kernel_listener_gets_exactly_the_file_then_fin_and_judges_every_checksum_good() {
    if !privileged("a_kernel_listener_gets_exactly_the_file") {
        return;
    }
    for v6 in [false, true] {
        let env = if v6 { env_v6(None) } else { env() };
        let n = env.names().clone();
        let (host, port) = if v6 { ("[fd77::2]", 8110) } else { ("10.77.0.2", 8100) };
        let to = format!("{host}:{port}");
        let what = if v6 { "IPv6" } else { "IPv4" };
        let dir = Scratch::new();
        let src = dir.path("src");
        random_file(&src, (6 << 20) + 4321, 41);
        let csum0 = nstat(&n.rx_ns, "TcpInCsumErrors");
        let segs0 = nstat(&n.rx_ns, "TcpInSegs");
        // tcpdump on the receiving side judges the first 300 segments' checksums itself.
        let dump = Reaped::new(
            std::process::Command::new("ip")
                .args(["netns", "exec", &n.rx_ns, "tcpdump", "-i", &n.rx_if, "-n", "-vv", "--immediate-mode", "-c", "300"])
                .arg(format!("tcp dst port {port}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(700));
        let peer = listener(&n.rx_ns, to.parse().unwrap(), read_all);
        // The CPU's own sums: veth does not mark them checked, so the peer's kernel judges them.
        let o = send_plain(&n.tx_ns, &to, &src, &["--tx-checksum", "software"]);
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        let got = peer.join().unwrap();
        assert_eq!(got.len(), std::fs::metadata(&src).unwrap().len() as usize, "{what}: read to the FIN: the file's length");
        assert!(got == std::fs::read(&src).unwrap(), "{what}: the bytes are the file's");
        let r = json(&o);
        // The kernel peer verified every checksum (veth does not mark our frames as checked).
        assert_eq!(nstat(&n.rx_ns, "TcpInCsumErrors"), csum0, "{what}: no checksum the kernel refused");
        let segs = nstat(&n.rx_ns, "TcpInSegs") - segs0;
        assert!(
            segs >= r["tcp"]["segments_sent"].as_u64().unwrap() * 9 / 10,
            "{what}: the kernel took our segments: {segs} of {r}"
        );
        let d = dump.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&d.stdout);
        let correct = text.matches("(correct)").count();
        assert!(correct >= 250, "{what}: tcpdump judged our checksums correct: {correct} in {}", &text[..text.len().min(2000)]);
        assert!(!text.contains("incorrect"), "{what}: tcpdump found a wrong checksum");
        assert_eq!(r["bytes"], got.len() as u64);
        assert_eq!(r["checksum"]["tx_mode"], "software");
        assert_eq!(r["checksum"]["cpu_payload_bytes_read"].as_u64().unwrap(), r["tcp"]["bytes_sent"].as_u64().unwrap());
        assert_eq!(r["checksum"]["rx_bad"], 0);
        assert_eq!(r["tcp"]["peer_mss"], if v6 { 1440 } else { 1460 });
        assert_eq!(r["o_direct"], true);
        // Nothing left attached.
        let l = std::process::Command::new("ip").args(["-n", &n.tx_ns, "link", "show", "dev", &n.tx_if]).output().unwrap();
        assert!(!String::from_utf8_lossy(&l.stdout).contains("xdp"), "{what}: the XDP program went with the sender");
    }
}

#[test]
fn loss_through_a_router_is_repaired_and_the_file_arrives_intact() {
    if !privileged("loss_through_a_router_is_repaired") {
        return;
    }
    // The router drops 2% of the connection's segments, both ways.
    let lossy = LossyRouter::up(8101, 2);
    let n = lossy.names.clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 8 << 20, 42);
    let peer = listener(&n.rx_ns, "10.77.0.2:8101".parse().unwrap(), read_all);
    let o = send_plain(&n.tx_ns, "10.77.0.2:8101", &src, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = peer.join().unwrap();
    assert!(got == std::fs::read(&src).unwrap(), "intact through 2% loss");
    let r = json(&o);
    let t = &r["tcp"];
    let resent = t["retransmits_fast"].as_u64().unwrap() + t["retransmits_timeout"].as_u64().unwrap();
    let (to, from) = lossy.drops();
    let dropped = to + from;
    assert!(dropped > 20, "the router dropped segments: {to} and {from}");
    assert!(resent > 0, "{dropped} segments lost on the way, and sent again: {t}");
    assert!(t["dup_acks"].as_u64().unwrap() > 0 && t["fast_recoveries"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["sack"], true, "the kernel took SACK-permitted, and recovery went by its blocks: {t}");
    assert_eq!(t["peer_sack_permitted"], true);
}

#[test]
fn a_slow_reader_with_a_small_buffer_closes_the_window_and_still_gets_it_all() {
    if !privileged("a_slow_reader_with_a_small_buffer") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 1 << 20, 43);
    let ns = n.rx_ns.clone();
    let peer = std::thread::spawn(move || {
        zclab::sys::netns::enter(&ns).unwrap();
        // A listening socket's SO_RCVBUF is what its connections inherit: a small window.
        let l = socket_with_small_buffer("10.77.0.2:8102".parse().unwrap());
        let (mut s, _) = l.accept().unwrap();
        let mut v = Vec::new();
        let mut buf = [0u8; 4096];
        std::thread::sleep(Duration::from_millis(500)); // the window fills and shuts
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                k => v.extend_from_slice(&buf[..k]),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        v
    });
    std::thread::sleep(Duration::from_millis(300));
    let o = send_plain(&n.tx_ns, "10.77.0.2:8102", &src, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = peer.join().unwrap();
    assert!(got == std::fs::read(&src).unwrap(), "intact");
    let r = json(&o);
    assert!(r["tcp"]["zero_window_probes"].as_u64().unwrap() > 0, "the window shut and was probed: {}", r["tcp"]);
}

/// A listener whose connections start with a 4 KiB receive buffer.
fn socket_with_small_buffer(addr: SocketAddr) -> TcpListener {
    let l = TcpListener::bind(addr).unwrap();
    // Set before any connection exists: each one the listener makes inherits it.
    zclab::sys::socket::set_int_opt(&l, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096).unwrap();
    l
}

#[test]
fn a_peer_that_resets_mid_transfer_stops_the_sender_at_once_with_what_it_had_acknowledged() {
    if !privileged("a_peer_that_resets_mid_transfer") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 64 << 20, 44);
    let peer = listener(&n.rx_ns, "10.77.0.2:8103".parse().unwrap(), |mut s| {
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < (2 << 20) {
            got += s.read(&mut buf).unwrap();
        }
        // Close with unread data: the kernel answers with a reset (RFC 2525 2.17).
        drop(s);
        (got, Instant::now())
    });
    let o = send_plain(&n.tx_ns, "10.77.0.2:8103", &src, &[]);
    let ended = Instant::now();
    let (_, reset_at) = peer.join().unwrap();
    assert!(!o.status.success(), "a reset is a failure");
    let e = stderr(&o);
    assert!(e.contains("connection reset by the peer after it had acknowledged"), "{e}");
    assert!(ended.duration_since(reset_at) < Duration::from_secs(1), "it stopped within a second");
    let l = std::process::Command::new("ip").args(["-n", &n.tx_ns, "link", "show", "dev", &n.tx_if]).output().unwrap();
    assert!(!String::from_utf8_lossy(&l.stdout).contains("xdp"), "nothing left behind");
}

#[test]
fn no_listener_is_refused_at_once_and_a_silent_one_ends_after_its_syns() {
    if !privileged("no_listener_is_refused_at_once") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 1000, 45);
    let t = Instant::now();
    let o = send_plain(&n.tx_ns, "10.77.0.2:8104", &src, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("connection refused by 10.77.0.2:8104"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(2), "at once: {:?}", t.elapsed());
    // SYNs dropped on the way in: 1 + 2 s of retries, then the clear error.
    let nft = |args: &str| {
        let o = std::process::Command::new("ip").args(["netns", "exec", &n.rx_ns, "nft"]).args(args.split(' ')).output().unwrap();
        assert!(o.status.success(), "nft {args}: {}", String::from_utf8_lossy(&o.stderr));
    };
    nft("add table inet zct");
    nft("add chain inet zct in { type filter hook input priority 0 ; }");
    nft("add rule inet zct in tcp dport 8105 drop");
    nft("add rule inet zct in tcp dport 8107 reject with icmp type port-unreachable");
    // An ICMP port unreachable to the SYN: refused too, at once.
    let t = Instant::now();
    let o = send_plain(&n.tx_ns, "10.77.0.2:8107", &src, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("connection refused by 10.77.0.2:8107"), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(2), "at once, not after the SYN retries: {:?}", t.elapsed());
    let t = Instant::now();
    let o = send_plain(&n.tx_ns, "10.77.0.2:8105", &src, &["--syn-retries", "2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no answer from 10.77.0.2:8105 after 3 SYNs"), "{}", stderr(&o));
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(7) && took < Duration::from_secs(10), "1 + 2 + 4 s: {took:?}");
}

#[test]
fn ctrl_c_resets_the_peer_and_leaves_nothing_behind() {
    if !privileged("ctrl_c_resets_the_peer") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 32 << 20, 46);
    // A reader slow enough that the transfer is still going when Ctrl-C comes.
    let peer = listener(&n.rx_ns, "10.77.0.2:8106".parse().unwrap(), |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 16384];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(e.kind()),
            }
        }
    });
    #[rustfmt::skip]
    let child = Reaped::new(
        zclab()
            .args(["send", "--netns", &n.tx_ns, "--plain", "--mode", "af-xdp-tcp", "--to", "10.77.0.2:8106", "--file", src.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    zclab::sys::kill(child.id(), libc::SIGINT).unwrap();
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "it stopped at once: {:?}", t.elapsed());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert_eq!(peer.join().unwrap(), Err(std::io::ErrorKind::ConnectionReset), "the kernel peer took the reset");
    let l = std::process::Command::new("ip").args(["-n", &n.tx_ns, "link", "show", "dev", &n.tx_if]).output().unwrap();
    assert!(!String::from_utf8_lossy(&l.stdout).contains("xdp"), "the XDP program went with the sender");
}

#[test]
fn plain_takes_every_tcp_mode_of_the_kernel_to_the_same_listener() {
    if !privileged("plain_takes_every_tcp_mode") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (2 << 20) + 99, 47);
    let want = std::fs::read(&src).unwrap();
    for (i, mode) in ["read-write", "mmap-write", "sendfile", "splice", "msg-zerocopy", "io-uring-zc"].iter().enumerate() {
        let to = format!("10.77.0.2:{}", 8120 + i);
        let peer = listener(&n.rx_ns, to.parse().unwrap(), read_all);
        #[rustfmt::skip]
        let o = run_zclab(&["send", "--netns", &n.tx_ns, "--plain", "--mode", mode, "--to", &to, "--file", src.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        assert!(peer.join().unwrap() == want, "{mode}: exactly the file, then FIN");
        assert_eq!(json(&o)["mode"], *mode);
    }
    let o = run_zclab(&[
        "send",
        "--netns",
        &n.tx_ns,
        "--plain",
        "--mode",
        "udp-gso",
        "--to",
        "10.77.0.2:8130",
        "--file",
        src.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("--plain sends over TCP"), "{}", stderr(&o));
}

/// Reads on `s` (into `got`) until a raw socket has seen one of the sender's
/// segments from port `from_port`: its sequence number and its ACK number.
fn sniff(s: &mut std::net::TcpStream, got: &mut Vec<u8>, from_port: u16) -> (u32, u32) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes plain integers; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
    assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd nothing else owns.
    let raw = unsafe { OwnedFd::from_raw_fd(fd) };
    zclab::sys::socket::set_receive_timeout(&raw, Duration::from_millis(200)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut pkt = [0u8; 2048];
    for _ in 0..200 {
        // Reading opens the window, so the sender sends.
        let k = s.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..k]);
        // SAFETY: `pkt` is live and writable for its length.
        let n = unsafe { libc::recv(raw.as_raw_fd(), pkt.as_mut_ptr() as *mut libc::c_void, pkt.len(), 0) };
        if n < 40 {
            continue;
        }
        let ihl = (pkt[0] & 0x0f) as usize * 4;
        let tcp = &pkt[ihl..n as usize];
        if u16::from_be_bytes([tcp[0], tcp[1]]) == from_port && n as usize > ihl + 20 {
            let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
            return (seq, ack);
        }
    }
    panic!("no segment of the sender seen");
}

#[test]
fn forged_segments_in_the_flow_are_counted_and_dropped_and_the_file_still_arrives() {
    if !privileged("forged_segments_in_the_flow") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 16 << 20, 48);
    let me: SocketAddr = "10.77.0.2:8140".parse().unwrap();
    // The listener reads a little, then forges segments into the connection as if from
    // itself: a wrong checksum, and resets with numbers that are (all but surely) not the
    // next one; then it reads the rest.
    let peer = listener(&n.rx_ns, me, move |mut s| {
        let sender = s.peer_addr().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < (1 << 20) {
            let k = s.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..k]);
        }
        let seg = |flags: zclab::wire::TcpFlags, seq: u32| zclab::wire::TcpSegment {
            src_port: me.port(),
            dst_port: sender.port(),
            seq,
            ack: 0,
            flags,
            window: 1000,
            options: Default::default(),
        };
        let ack = zclab::wire::TcpFlags { ack: true, ..Default::default() };
        let rst = zclab::wire::TcpFlags { rst: true, ..Default::default() };
        for i in 0..5u32 {
            inject(me, sender, &seg(ack, i), true);
            inject(me, sender, &seg(rst, 0x1234_5678u32.wrapping_mul(i + 1)), false);
        }
        // The numbers in use, from a copy of one of the sender's segments (a raw socket
        // sees every TCP segment that comes in): its seq, and its ack, our next number.
        let (their_seq, our_seq) = sniff(&mut s, &mut got, sender.port());
        for _ in 0..5 {
            // An ACK of bytes the sender never sent, in the window.
            let mut a = seg(ack, our_seq);
            a.ack = their_seq.wrapping_add(100 << 20);
            inject(me, sender, &a, false);
            // Data far outside its receive window.
            inject(me, sender, &seg(ack, our_seq.wrapping_add(1 << 30)), false);
        }
        s.read_to_end(&mut got).unwrap();
        got
    });
    let o = send_plain(&n.tx_ns, "10.77.0.2:8140", &src, &[]);
    assert!(o.status.success(), "forged resets did not end it: {}", stderr(&o));
    assert!(peer.join().unwrap() == std::fs::read(&src).unwrap(), "the file intact");
    let r = json(&o);
    assert!(r["checksum"]["rx_bad"].as_u64().unwrap() >= 5, "the wrong checksums counted: {}", r["checksum"]);
    assert!(r["tcp"]["dropped_rst_not_exact"].as_u64().unwrap() >= 5, "the resets counted: {}", r["tcp"]);
    assert!(r["tcp"]["dropped_ack_of_unsent"].as_u64().unwrap() >= 5, "the ACKs of unsent data counted: {}", r["tcp"]);
    assert!(r["tcp"]["dropped_outside_window"].as_u64().unwrap() >= 5, "the out-of-window ones counted: {}", r["tcp"]);
}

#[test]
fn jumbo_segments_go_as_a_header_and_several_payload_pieces() {
    if !privileged("jumbo_segments_go_as_a_header_and_several_payload_pieces") {
        return;
    }
    let env = env_with(Some(9000));
    // Every checksum finished before it crosses, so the peer's kernel judges both ways of making them.
    env.full_checksums(false).unwrap();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (4 << 20) + 11, 49);
    for (port, who) in [(8150, "software"), (8151, "offload")] {
        let to = format!("10.77.0.2:{port}");
        let csum0 = nstat(&n.rx_ns, "TcpInCsumErrors");
        let peer = listener(&n.rx_ns, to.parse().unwrap(), read_all);
        let o = send_plain(&n.tx_ns, &to, &src, &["--tx-checksum", who]);
        assert!(o.status.success(), "{who}: {}", stderr(&o));
        assert!(peer.join().unwrap() == std::fs::read(&src).unwrap(), "{who}: intact at MTU 9000");
        let r = json(&o);
        assert_eq!(r["mss"], 8960, "a 8960-byte segment spans several UMEM chunks: {r}");
        assert_eq!(r["checksum"]["tx_mode"], who);
        assert_eq!(nstat(&n.rx_ns, "TcpInCsumErrors"), csum0, "{who}: the peer's kernel found every checksum right");
    }
}

#[test]
fn a_zclab_receiver_takes_af_xdp_tcp_on_a_connection_of_its_own_and_verifies_it() {
    if !privileged("a_zclab_receiver_takes_af_xdp_tcp") {
        return;
    }
    for v6 in [false, true] {
        let env = if v6 { env_v6(None) } else { env() };
        let n = env.names().clone();
        let what = if v6 { "IPv6" } else { "IPv4" };
        let dir = Scratch::new();
        let src = dir.path("src");
        let keep = dir.path("kept");
        random_file(&src, (5 << 20) + 777, 43);
        let (segs0, csum0) = (nstat(&n.rx_ns, "TcpInSegs"), nstat(&n.rx_ns, "TcpInCsumErrors"));
        let mut args = vec!["run", "--env", &n.name, "--mode", "af-xdp-tcp", "--file", src.to_str().unwrap()];
        args.extend(["--keep", keep.to_str().unwrap(), "--json"]);
        if v6 {
            args.push("--ipv6");
        }
        let o = run_zclab(&args);
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        let r = json(&o);
        assert_eq!(r["verified"], true, "{what}: {r}");
        assert!(std::fs::read(&keep).unwrap() == std::fs::read(&src).unwrap(), "{what}: the kept copy is the file");
        let t = &r["af_xdp_tcp"];
        let sent = t["tcp"]["segments_sent"].as_u64().unwrap();
        // The receiving kernel took our segments, and refused none for its checksum.
        let segs = nstat(&n.rx_ns, "TcpInSegs") - segs0;
        assert!(segs >= sent * 9 / 10, "{what}: the receiver's kernel took {segs} segments of {sent}");
        assert_eq!(nstat(&n.rx_ns, "TcpInCsumErrors"), csum0, "{what}: no checksum refused");
        assert_eq!(t["tcp"]["bytes_sent"].as_u64().unwrap(), r["bytes"].as_u64().unwrap(), "{what}: no loss, nothing sent twice");
        assert_eq!(t["o_direct"], true);
        assert_eq!(r["packets"].as_u64(), Some(sent), "{what}: the run's packets are the segments");
        let steps: Vec<&str> =
            r["inferred_copies"]["steps"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
        assert!(steps.contains(&"UMEM -> skb") && steps.contains(&"pipe -> page cache"), "{what}: {steps:?}");
        let l = std::process::Command::new("ip").args(["-n", &n.tx_ns, "link", "show", "dev", &n.tx_if]).output().unwrap();
        assert!(!String::from_utf8_lossy(&l.stdout).contains("xdp"), "{what}: the XDP program went with the sender");
    }
}

#[test]
fn offloaded_checksums_are_finished_by_the_kernel_and_judged_right_by_the_peer() {
    if !privileged("offloaded_checksums_are_finished_by_the_kernel") {
        return;
    }
    for v6 in [false, true] {
        let env = if v6 { env_v6(None) } else { env() };
        // tx off on both ends: our partial sums are finished by the sending kernel
        // (validate_xmit_skb) and judged by the receiving one, and the kernel's segments
        // toward us carry full sums that we can judge.
        env.full_checksums(false).unwrap();
        let n = env.names().clone();
        let (host, port) = if v6 { ("[fd77::2]", 8170) } else { ("10.77.0.2", 8160) };
        let to = format!("{host}:{port}");
        let what = if v6 { "IPv6" } else { "IPv4" };
        let dir = Scratch::new();
        let src = dir.path("src");
        random_file(&src, (3 << 20) + 99, 51);
        let csum0 = nstat(&n.rx_ns, "TcpInCsumErrors");
        let dump = Reaped::new(
            std::process::Command::new("ip")
                .args(["netns", "exec", &n.rx_ns, "tcpdump", "-i", &n.rx_if, "-n", "-vv", "--immediate-mode", "-c", "200"])
                .arg(format!("tcp dst port {port}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(700));
        let peer = listener(&n.rx_ns, to.parse().unwrap(), read_all);
        let o = send_plain(&n.tx_ns, &to, &src, &["--tx-checksum", "offload"]);
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        assert!(peer.join().unwrap() == std::fs::read(&src).unwrap(), "{what}: intact");
        let r = json(&o);
        assert_eq!(r["checksum"]["tx_mode"], "offload");
        assert_eq!(r["checksum"]["cpu_payload_bytes_read"], 0, "{what}: the CPU read no payload byte for a checksum");
        assert_eq!(nstat(&n.rx_ns, "TcpInCsumErrors"), csum0, "{what}: the peer's kernel found every checksum right");
        let d = dump.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&d.stdout);
        assert!(text.matches("(correct)").count() >= 150, "{what}: tcpdump judged them: {}", &text[..text.len().min(2000)]);
        assert!(!text.contains("incorrect"), "{what}: tcpdump found a wrong checksum");
        // The other direction: the kernel's ACKs now carry full sums, each checked.
        assert!(r["checksum"]["rx_verified"].as_u64().unwrap() > 0, "{what}: {r}");
        assert_eq!(r["checksum"]["rx_unverifiable"], 0, "{what}: {r}");
        assert_eq!(r["checksum"]["rx_bad"], 0, "{what}: {r}");
    }
}
