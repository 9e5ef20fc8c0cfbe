//! Compiles the XDP program in xdp-prog/ with clang into OUT_DIR.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "xdp-prog/zclab_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("zclab_xdp.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {src} ({s}): see its messages above"),
        Err(e) => panic!(
            "cannot run {clang} ({e}): it compiles the XDP program {src}. \
             Install it with scripts/setup.sh (or: apt-get install clang libbpf-dev), \
             or point the CLANG environment variable at a clang binary"
        ),
    }
}
