//! Every TCP mode moves files of awkward sizes byte-identically across a
//! real veth pair between two real namespaces.

mod common;

use common::*;

const SIZES: [usize; 5] = [0, 1, 4095, (1 << 20) + 1, 64 << 20];

fn transfers_every_size(mode: &str) {
    transfers_every_size_at(mode, None);
}

fn transfers_every_size_at(mode: &str, mtu: Option<u32>) {
    if !privileged(&format!("transfer {mode}")) {
        return;
    }
    let env = env_with(mtu);
    let dir = Scratch::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let src = dir.path(&format!("src-{len}"));
        let out = dir.path(&format!("out-{len}"));
        random_file(&src, len, i as u64 + 1);
        let o = run_zclab(&[
            "run",
            "--env",
            &env.names().name,
            "--mode",
            mode,
            "--file",
            src.to_str().unwrap(),
            "--keep",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{mode} {len} bytes failed: {}", stderr(&o));
        let r = json(&o);
        assert_eq!(r["verified"], true, "{mode} {len}: {r}");
        assert_eq!(r["bytes"], len as u64);
        assert_eq!(r["mode"], mode);
        let (a, b) = (std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
        assert!(a == b, "{mode} {len}: received file differs from the source");
        if len > 0 {
            assert!(r["sender"]["syscalls"].as_u64().unwrap() > 0, "{r}");
            assert!(r["receiver"]["syscalls"].as_u64().unwrap() > 0, "{r}");
            assert!(r["gbit_per_s"].as_f64().unwrap() > 0.0);
        }
        let zc = &r["zerocopy"];
        if mode == "msg-zerocopy" || mode == "io-uring-zc" {
            assert_eq!(zc["requested"], true, "{r}");
            assert_eq!(zc["completions"], zc["sends"], "every zero-copy send completes: {r}");
            if len > 0 {
                assert!(zc["sends"].as_u64().unwrap() >= 1, "{r}");
            }
        } else {
            assert!(zc.is_null(), "{r}");
        }
        if mode == "udp-gso" || mode == "af-xdp" {
            let payload = mtu.unwrap_or(1500) as u64 - 20 - 8 - 24;
            assert_eq!(r["mtu"], mtu.unwrap_or(1500), "{r}");
            assert_eq!(r["chunk_bytes"], payload, "payload follows the MTU: {r}");
            let sent = r["packets"].as_u64().unwrap();
            let resent = r["retransmitted_packets"].as_u64().unwrap();
            assert_eq!(sent - resent, (len as u64).div_ceil(payload), "every packet sent once, plus resends: {r}");
            assert_eq!(r["invalid_packets"], 0, "{r}");
            if mode == "af-xdp" {
                let x = &r["af_xdp"];
                assert_eq!(x["bind_mode"], "copy", "veth is copy-mode only: {r}");
                assert_eq!(x["program"], if mtu.unwrap_or(1500) > 3506 { "xdp.frags" } else { "xdp" }, "{r}");
                assert_eq!(x["tx_invalid"], 0, "{r}");
                let direct = zclab::sys::file::dio_align(&std::fs::File::open(&src).unwrap()).unwrap().is_some();
                assert_eq!(x["o_direct"], direct, "O_DIRECT is claimed exactly when the filesystem does it: {r}");
            }
        } else {
            assert!(r["packets"].is_null() && r["retransmitted_packets"].is_null());
        }
    }
    assert_eq!(files_in(&dir.0).len(), 2 * SIZES.len(), "no partial files are left: {:?}", files_in(&dir.0));
}

#[test]
fn read_write() {
    transfers_every_size("read-write");
}

#[test]
fn mmap_write() {
    transfers_every_size("mmap-write");
}

#[test]
fn sendfile() {
    transfers_every_size("sendfile");
}

#[test]
fn splice() {
    transfers_every_size("splice");
}

#[test]
fn msg_zerocopy() {
    transfers_every_size("msg-zerocopy");
}

#[test]
fn io_uring_zc() {
    transfers_every_size("io-uring-zc");
}

#[test]
fn udp_gso() {
    transfers_every_size("udp-gso");
}

#[test]
fn udp_gso_jumbo() {
    transfers_every_size_at("udp-gso", Some(9000));
}

#[test]
fn af_xdp() {
    transfers_every_size("af-xdp");
}

#[test]
fn af_xdp_jumbo() {
    transfers_every_size_at("af-xdp", Some(9000));
}
