//! af-xdp's two frame layouts: split (a header frame + the payload where a
//! block read put it) and contiguous (one descriptor: the header written
//! into the UMEM right in front of a payload read into a cell of its own).
//! Both must deliver every file byte, at every size and MTU.

mod common;

use common::*;

/// The foundation's sizes, and the edges of a contiguous block (512
/// packets of 1024 bytes at MTU 1500) and of a packet.
const SIZES: [usize; 8] = [0, 1, 4095, (1 << 20) + 1, 64 << 20, 512 * 1024, 512 * 1024 + 1, 1024 * 3 - 1];

fn run_af_xdp(env_name: &str, src: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", "--env", env_name, "--mode", "af-xdp", "--file", src.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = run_zclab(&args);
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    json(&o)
}

#[test]
fn contiguous_frames_verify_for_every_size() {
    if !privileged("contiguous_frames_verify_for_every_size") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let src = dir.path(&format!("src-{i}"));
        random_file(&src, len, 40 + i as u64);
        let r = run_af_xdp(&env.names().name, &src, &["--frame-layout", "contiguous"]);
        let x = &r["af_xdp"];
        assert_eq!(r["verified"], true, "{len}: {r}");
        assert_eq!(x["layout"], "contiguous", "{len}: {x}");
        assert_eq!(x["tx_invalid"], 0, "{len}: {x}");
        if len > 0 {
            assert!(x["frame_layout"].as_str().unwrap().starts_with("1 descriptor per packet"), "{x}");
        }
        if x["o_direct"] == true {
            assert_eq!(x["payload"], 1024, "at MTU 1500 the largest multiple of 512 that fits: {x}");
            // Every packet sent, less those sent again: the file's count.
            let packets = r["packets"].as_u64().unwrap() - r["retransmitted_packets"].as_u64().unwrap();
            assert_eq!(packets, (len as u64).div_ceil(1024), "{len}: {r}");
        }
    }
}

#[test]
fn contiguous_frames_verify_at_mtu_9000_in_an_aligned_umem() {
    if !privileged("contiguous_frames_verify_at_mtu_9000_in_an_aligned_umem") {
        return;
    }
    let env = env_with(Some(9000));
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (8 << 20) + 777, 48);
    for umem in ["aligned", "unaligned"] {
        let r = run_af_xdp(&env.names().name, &src, &["--frame-layout", "contiguous", "--umem", umem]);
        let x = &r["af_xdp"];
        assert_eq!(r["verified"], true, "{umem}: {r}");
        assert_eq!(x["tx_invalid"], 0, "no frame crossed a chunk edge ({umem}): {x}");
        if x["o_direct"] == true {
            assert_eq!(x["payload"], 3584, "a 4096-byte chunk less 512 bytes of header room: {x}");
        }
    }
}

/// Without --frame-layout the sender picks split for an O_DIRECT file and
/// contiguous for a file read through the page cache, with the largest
/// payload the MTU allows in the latter (no alignment to keep).
#[test]
fn the_default_layout_follows_how_the_file_is_read() {
    if !privileged("the_default_layout_follows_how_the_file_is_read") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (2 << 20) + 5, 49);
    let r = run_af_xdp(&env.names().name, &src, &[]);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true, "{r}");
    let want = if x["o_direct"] == true { "split" } else { "contiguous" };
    assert_eq!(x["layout"], want, "{x}");

    let shm = std::path::Path::new("/dev/shm").join(format!("zclab-layout-{}", std::process::id()));
    random_file(&shm, (2 << 20) + 5, 50);
    let r = run_af_xdp(&env.names().name, &shm, &[]);
    let _ = std::fs::remove_file(&shm);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!((x["o_direct"].as_bool(), x["layout"].as_str()), (Some(false), Some("contiguous")), "{x}");
    assert_eq!(x["payload"], 1448, "no O_DIRECT unit to keep: all an MTU of 1500 allows: {x}");
}

/// A zero-copy driver may want chunks of 2048 bytes: both layouts are cut
/// to fit them in an aligned UMEM, and the kernel refuses no descriptor.
#[test]
fn both_layouts_verify_in_an_aligned_umem_of_2048_byte_chunks() {
    if !privileged("both_layouts_verify_in_an_aligned_umem_of_2048_byte_chunks") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (6 << 20) + 4097, 61);
    for layout in ["split", "contiguous"] {
        let r = run_af_xdp(&env.names().name, &src, &["--umem", "aligned", "--umem-chunk", "2048", "--frame-layout", layout]);
        let x = &r["af_xdp"];
        assert_eq!(r["verified"], true, "{layout}: {r}");
        assert_eq!(x["tx_invalid"], 0, "{layout}: no descriptor crossed a chunk edge: {x}");
        let fl = x["frame_layout"].as_str().unwrap();
        assert!(fl.contains("(aligned UMEM)"), "{layout}: {fl}");
        if layout == "split" {
            assert!(fl.contains("cut at 2048-byte chunk edges"), "{fl}");
        }
    }
    let o = run_zclab(&[
        "run",
        "--env",
        &env.names().name,
        "--mode",
        "af-xdp",
        "--file",
        src.to_str().unwrap(),
        "--umem-chunk",
        "1000",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("zclab takes 2048 or 4096"), "{}", stderr(&o));
}
