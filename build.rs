//! Compiles the BPF programs in xdp-prog/ with clang into OUT_DIR:
//! - zclab_xdp.c, the XDP steering program (needed: the build fails without clang);
//! - zclab_trace.c, the tracing programs of `--trace`. They read the kernel's
//!   own structs, so they need a `vmlinux.h` made from this kernel's BTF by
//!   bpftool. Without bpftool or BTF the build goes on, and `--trace` says
//!   what is missing. The names of the kernel's drop reasons come from the
//!   same header.

use std::path::{Path, PathBuf};
use std::process::Command;

const BTF: &str = "/sys/kernel/btf/vmlinux";

fn clang() -> String {
    std::env::var("CLANG").unwrap_or_else(|_| "clang".into())
}

fn compile(src: &str, out: &Path, include: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new(clang());
    cmd.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu"]);
    if let Some(dir) = include {
        cmd.arg("-I").arg(dir);
    }
    match cmd.args(["-c", src, "-o"]).arg(out).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{} failed to compile {src} ({s}): see its messages above", clang())),
        Err(e) => Err(format!(
            "cannot run {} ({e}): it compiles the BPF programs in xdp-prog/. Install it with scripts/setup.sh \
             (or: apt-get install clang libbpf-dev), or point the CLANG environment variable at a clang binary",
            clang()
        )),
    }
}

/// `bpftool btf dump file /sys/kernel/btf/vmlinux format c` into `out`.
fn vmlinux_h(out: &Path) -> Result<(), String> {
    if !Path::new(BTF).exists() {
        return Err(format!("{BTF} is missing (a kernel without CONFIG_DEBUG_INFO_BTF)"));
    }
    let o = Command::new("bpftool")
        .args(["btf", "dump", "file", BTF, "format", "c"])
        .output()
        .map_err(|e| format!("cannot run bpftool ({e}): install it with scripts/setup.sh (apt-get install bpftool)"))?;
    if !o.status.success() {
        return Err(format!("bpftool btf dump failed: {}", String::from_utf8_lossy(&o.stderr)));
    }
    std::fs::write(out, &o.stdout).map_err(|e| e.to_string())
}

/// `enum skb_drop_reason { SKB_DROP_REASON_X = n, ... }` of vmlinux.h as a Rust table.
fn drop_reasons(vmlinux: &str) -> String {
    let mut table = String::from(
        "/// The kernel's drop reasons, from its BTF at build time.\npub static DROP_REASONS: &[(u32, &str)] = &[\n",
    );
    if let Some(start) = vmlinux.find("enum skb_drop_reason {") {
        let body = &vmlinux[start..];
        let body = &body[..body.find("};").unwrap_or(body.len())];
        for line in body.lines().skip(1) {
            let Some((name, value)) = line.trim().trim_end_matches(',').split_once(" = ") else { continue };
            let (Some(name), Ok(value)) = (name.strip_prefix("SKB_DROP_REASON_"), value.parse::<u32>()) else { continue };
            table += &format!("    ({value}, {name:?}),\n");
        }
        if let Some(name) = body.lines().find_map(|l| l.trim().strip_prefix("SKB_CONSUMED = ")) {
            table += &format!("    ({}, \"CONSUMED\"),\n", name.trim_end_matches(','));
        }
    }
    table + "];\n"
}

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for src in ["xdp-prog/zclab_xdp.c", "xdp-prog/zclab_trace.c"] {
        println!("cargo:rerun-if-changed={src}");
    }
    if let Err(e) = compile("xdp-prog/zclab_xdp.c", &out_dir.join("zclab_xdp.o"), None) {
        panic!("{e}");
    }
    let header = out_dir.join("vmlinux.h");
    let trace_obj = out_dir.join("zclab_trace.o");
    let built = vmlinux_h(&header).and_then(|()| compile("xdp-prog/zclab_trace.c", &trace_obj, Some(&out_dir)));
    let reasons = match built {
        Ok(()) => drop_reasons(&std::fs::read_to_string(&header).unwrap_or_default()),
        Err(e) => {
            println!("cargo:warning=the tracing programs (--trace) are not built: {e}");
            std::fs::write(&trace_obj, b"").expect("OUT_DIR is writable");
            drop_reasons("")
        }
    };
    std::fs::write(out_dir.join("drop_reasons.rs"), reasons).expect("OUT_DIR is writable");
}
