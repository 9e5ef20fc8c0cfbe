//! `recv --direct`: the af-xdp receiver writes payloads with O_DIRECT
//! straight from its UMEM. At MTU 1500 and 9000, in both frame layouts, the
//! file verifies; a cold transfer leaves it in neither page cache (checked
//! with mincore from outside once the command has ended); on tmpfs the
//! receiver falls back and says why; a payload off a 512-byte boundary is
//! counted and written through the page cache, and the file still verifies.

mod common;

use common::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;
use zclab::netns::RX_ADDR;
use zclab::transfer::control::{recv_msg, send_msg, Msg};
use zclab::transfer::{Mode, Watchdog};

/// Writes a file and makes sure it is on disk and out of the page cache.
fn cold_file(path: &Path, len: usize, seed: u64) {
    random_file(path, len, seed);
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    zclab::sys::file::evict_from_cache(&f).unwrap();
}

/// The file's bytes in the page cache now, by mincore from this process.
fn cached(path: &Path) -> u64 {
    zclab::sys::file::cached_bytes(&std::fs::File::open(path).unwrap()).unwrap()
}

fn has_direct_io(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    std::fs::write(&probe, b"x").unwrap();
    let ok = zclab::sys::file::dio_align(&std::fs::File::open(&probe).unwrap()).unwrap().is_some();
    std::fs::remove_file(probe).unwrap();
    ok
}

fn run(env: &str, file: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["run", "--env", env, "--mode", "af-xdp", "--file", file.to_str().unwrap()];
    args.extend(["--keep", out.to_str().unwrap(), "--json"]);
    args.extend_from_slice(extra);
    let o = run_zclab(&args);
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    json(&o)
}

#[test]
fn direct_verifies_at_mtu_1500_and_9000_in_both_frame_layouts() {
    if !privileged("direct_verifies_at_mtu_1500_and_9000_in_both_frame_layouts") {
        return;
    }
    let dir = Scratch::new();
    if !has_direct_io(&dir.0) {
        eprintln!("SKIPPED: {} has no direct I/O (tmpfs?)", dir.0.display());
        return;
    }
    let src = dir.path("src");
    // Not a whole number of 512-byte units: the last payload is written rounded up, then cut back.
    let size = (8 << 20) + 1234;
    random_file(&src, size, 21);
    let want = std::fs::read(&src).unwrap();
    for (mtu, payload) in [(None, 1024), (Some(9000), 3584)] {
        let env = env_with(mtu);
        let name = env.names().name.clone();
        for layout in ["split", "contiguous"] {
            let out = dir.path(&format!("out-{}-{layout}", mtu.unwrap_or(1500)));
            let r = run(&name, &src, &out, &["--direct", "--frame-layout", layout]);
            let what = format!("MTU {mtu:?}, {layout}");
            assert_eq!(r["verified"], true, "{what}: {r}");
            assert_eq!(r["chunk_bytes"], payload, "{what}: the sender cut what the receiver asked for: {r}");
            let d = &r["direct"];
            assert_eq!(d["used"], true, "{what}: {d}");
            assert_eq!(d["direct_bytes"], size as u64, "{what}: every payload went direct: {d}");
            assert_eq!(d["unaligned_packets"], 0, "{what}: {d}");
            assert_eq!(d["multi_frame_packets"], 0, "{what}: {d}");
            assert_eq!(d["padded_tail_bytes"], (size as u64).div_ceil(512) * 512 - size as u64, "{what}: {d}");
            assert_eq!(r["out_cached_after_bytes"], 0, "{what}: {r}");
            assert_eq!(cached(&out), 0, "{what}: mincore of the received file after the command");
            assert_eq!(std::fs::metadata(&out).unwrap().len(), size as u64, "{what}: cut back to its size");
            assert!(std::fs::read(&out).unwrap() == want, "{what}: the bytes");
            let rules: Vec<&str> =
                r["inferred_copies"]["steps"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
            assert!(rules.contains(&"UMEM -> disk (O_DIRECT)") && !rules.contains(&"UMEM -> page cache"), "{what}: {rules:?}");
            std::fs::remove_file(&out).unwrap();
        }
    }
}

#[test]
fn a_cold_direct_transfer_leaves_the_file_in_neither_page_cache_and_sendfile_in_both() {
    if !privileged("a_cold_direct_transfer_leaves_the_file_in_neither_page_cache") {
        return;
    }
    let dir = Scratch::new();
    if !has_direct_io(&dir.0) {
        eprintln!("SKIPPED: {} has no direct I/O (tmpfs?)", dir.0.display());
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    let (src, out) = (dir.path("src"), dir.path("out"));
    let len = 16 << 20;
    cold_file(&src, len, 22);
    let r = run(&name, &src, &out, &["--direct", "--cold"]);
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["source_cached_after_bytes"], 0, "{r}");
    assert_eq!(r["out_cached_after_bytes"], 0, "{r}");
    // From outside, now that both ends have ended (each hashed its file).
    assert_eq!(cached(&src), 0, "mincore of the source after the command");
    assert_eq!(cached(&out), 0, "mincore of the received file after the command");
    std::fs::remove_file(&out).unwrap();

    // The same file by sendfile: both page caches keep it.
    let mut args = vec!["run", "--env", &name, "--mode", "sendfile", "--file", src.to_str().unwrap(), "--cold"];
    args.extend(["--keep", out.to_str().unwrap(), "--json"]);
    let o = run_zclab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o);
    for (what, bytes) in [("source", cached(&src)), ("received", cached(&out))] {
        assert!(bytes * 100 >= len as u64 * 99, "sendfile leaves the {what} file cached: {bytes} of {len}: {s}");
    }
}

#[test]
fn on_tmpfs_the_direct_receiver_falls_back_and_says_why() {
    if !privileged("on_tmpfs_the_direct_receiver_falls_back_and_says_why") {
        return;
    }
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() || has_direct_io(shm) {
        eprintln!("SKIPPED: no tmpfs at /dev/shm");
        return;
    }
    let dir = Scratch::new();
    let env = env();
    let src = dir.path("src");
    random_file(&src, 4 << 20, 23);
    let out = shm.join(format!("zclab-direct-test-{}", std::process::id()));
    let r = run(&env.names().name, &src, &out, &["--direct"]);
    let kept = std::fs::read(&out);
    let _ = std::fs::remove_file(&out);
    assert_eq!(r["verified"], true, "{r}");
    assert!(kept.unwrap() == std::fs::read(&src).unwrap());
    let d = &r["direct"];
    assert_eq!(d["used"], false, "{d}");
    assert!(d["why_not"].as_str().unwrap().contains("tmpfs"), "{d}");
    assert_eq!(r["chunk_bytes"], 1448, "the sender's own payload: nothing was asked for: {r}");
    assert!(r["out_cached_after_bytes"].as_u64().unwrap() > 0, "through the page cache: {r}");
    let rules: Vec<&str> =
        r["inferred_copies"]["steps"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert!(rules.contains(&"UMEM -> page cache"), "{rules:?}");
}

/// A hand-made sender offers 1024-byte payloads and sends them over IPv4,
/// for which the receiver's UMEM headroom puts each payload at +512 of its
/// frame; one packet comes over IPv6, whose 20 more header bytes put its
/// payload at +532: off the boundary, so it is counted and written through
/// the page cache; every other packet goes direct, the last one rounded up.
#[test]
fn a_payload_off_a_boundary_is_counted_and_written_through_the_page_cache() {
    if !privileged("a_payload_off_a_boundary_is_counted_and_written_through_the_page_cache") {
        return;
    }
    let dir = Scratch::new();
    if !has_direct_io(&dir.0) {
        eprintln!("SKIPPED: {} has no direct I/O (tmpfs?)", dir.0.display());
        return;
    }
    const ID: u32 = 0xd1ec7;
    const P: usize = 1024;
    let env = env_v6(None);
    let n = env.names().clone();
    // The kernel's IPv6 UDP leaves its checksum to the device, and over veth an XDP program
    // (and so the AF_XDP socket) sees it unfinished: the sending end computes it in software.
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", &n.tx_ns, "ethtool", "-K", &n.tx_if, "tx", "off"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ethtool -K tx off: {}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path("out");
    let size = 10 * P + 300;
    random_file(&dir.path("src"), size, 24);
    let data = std::fs::read(dir.path("src")).unwrap();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json", "--direct"]);
    let tx = n.tx_ns.clone();
    let sent = data.clone();
    let verdict = std::thread::spawn(move || {
        zclab::sys::netns::enter(&tx).unwrap();
        let to = SocketAddr::from((RX_ADDR, 7777));
        let ctrl = connect_retry(to);
        let mut wd = Watchdog::new(Duration::from_secs(5), "receiver");
        let hello = Msg::Hello {
            mode: Mode::AfXdp,
            size: size as u64,
            chunk: 1448,
            transfer_id: ID as u64,
            nonce: None,
            queues: None,
            direct_payload: Some(P as u64),
        };
        send_msg(&mut &ctrl, &hello, &mut wd).unwrap();
        match recv_msg(&mut &ctrl, &mut wd).unwrap() {
            Some(Msg::Ready { chunk, patience_ms, .. }) => {
                assert_eq!(chunk, Some(P as u64), "the direct receiver asks for the offer");
                let patience = zclab::recv::direct::PATIENCE.as_millis() as u64;
                assert_eq!(patience_ms, Some(patience), "and for the sender's patience while it waits on its disk");
            }
            other => panic!("expected Ready, got {other:?}"),
        }
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.connect(to).unwrap();
        let v6 = UdpSocket::bind("[::]:0").unwrap();
        v6.connect(SocketAddr::from((zclab::netns::RX_ADDR6, 7777))).unwrap();
        for i in 0..=10usize {
            let off = i * P;
            let p = lab_packet(ID, off as u64, &sent[off..(off + P).min(size)]);
            if i == 3 { v6.send(&p) } else { udp.send(&p) }.unwrap();
        }

        std::thread::sleep(Duration::from_millis(50));
        send_msg(&mut &ctrl, &Msg::RoundDone { round: 0, sent: 11 }, &mut wd).unwrap();
        match answer_to_round(&ctrl, &mut wd) {
            Some(Msg::Missing { count: 0, .. }) => {}
            other => {
                drop(ctrl);
                panic!("expected nothing missing, got {other:?}")
            }
        }
        assert!(matches!(recv_msg(&mut &ctrl, &mut wd).unwrap(), Some(Msg::Received { bytes }) if bytes == size as u64));
        let hash = blake3::hash(&sent).to_hex().to_string();
        send_msg(&mut &ctrl, &Msg::Trailer { hash }, &mut wd).unwrap();
        recv_msg(&mut &ctrl, &mut wd).unwrap()
    })
    .join();
    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    let verdict = verdict.unwrap();
    assert!(matches!(verdict, Some(Msg::Verdict { verified: true, .. })), "{verdict:?}");
    let r = json(&o);
    let d = &r["direct"];
    assert_eq!(d["used"], true, "{r}");
    assert_eq!(d["unaligned_packets"], 1, "the packet with IP options: {d}");
    assert_eq!(d["unaligned_bytes"], P, "{d}");
    assert_eq!(d["direct_packets"], 10, "{d}");
    assert_eq!(d["padded_tail_bytes"], 512 - 300, "{d}");
    assert_eq!(r["packets"]["accepted"], 11, "{r}");
    assert!(std::fs::read(&out).unwrap() == data, "the file is whole");
}

#[test]
fn direct_writes_stay_in_flight_several_at_once_over_preallocated_blocks() {
    if !privileged("direct_writes_stay_in_flight_several_at_once_over_preallocated_blocks") {
        return;
    }
    let dir = Scratch::new();
    if !has_direct_io(&dir.0) {
        eprintln!("SKIPPED: {} has no direct I/O (tmpfs?)", dir.0.display());
        return;
    }
    let src = dir.path("src");
    let size = (24 << 20) + 77;
    random_file(&src, size, 23);
    let want = std::fs::read(&src).unwrap();
    let env = env_with(Some(9000));
    let name = env.names().name.clone();
    for pre in [false, true] {
        let out = dir.path(&format!("out-{pre}"));
        let extra: &[&str] = if pre { &["--direct", "--preallocate"] } else { &["--direct"] };
        let r = run(&name, &src, &out, extra);
        assert_eq!(r["verified"], true, "{extra:?}: {r}");
        let d = &r["direct"];
        assert_eq!(d["preallocated"], pre, "{d}");
        let peak = d["writes_in_flight_peak"].as_u64().unwrap();
        // Over blocks written beforehand several writes overlap; into fresh ones, one at a time.
        if pre {
            assert!(peak > 1, "several O_DIRECT writes in flight: {d}");
        } else {
            assert_eq!(peak, 1, "{d}");
        }
        assert!(d["direct_calls"].as_u64().unwrap() > 10, "{d}");
        assert_eq!(cached(&out), 0, "{extra:?}: mincore of the received file after the command");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), size as u64, "cut back to its size");
        assert!(std::fs::read(&out).unwrap() == want, "{extra:?}: the bytes");
    }
}
