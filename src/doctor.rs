//! `zclab doctor`: what of the lab works on this machine, one row per
//! feature, each marked works or not, with the reason and the fix.
//!
//! Like `bpftool feature probe`, it asks the kernel rather than guessing
//! from a version number: a socket option set on a fresh socket, an
//! io_uring probe, a statx of a file it makes. What touches an interface,
//! it does only on a veth pair it makes for the purpose (and removes), or,
//! with `--probe`, on the interface named, saying so. Without `--probe` a
//! named interface is only read: its XDP features (the `netdev` netlink
//! family), queues and MTU.

use crate::transfer::af_xdp::{wait_for_busy_queue, Iface, Knobs};
use crate::xdp::{AttachMode, XdpSteering, MAX_MTU_WITHOUT_FRAGS};
use crate::xsk::BindMode;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// What to look at.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// An interface to report on (in this process's namespace).
    pub iface: Option<String>,
    /// Where the files would go (O_DIRECT and its alignment).
    pub dir: PathBuf,
    /// Bind test sockets and attach the XDP program on `iface` too.
    pub probe: bool,
}

/// One feature.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub works: bool,
    /// What was found (and how).
    pub detail: String,
    /// What to do when it does not work.
    pub fix: Option<String>,
    /// Not needed by the lab's main paths (a missing one is not a failure).
    pub optional: bool,
}

/// All rows.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub works: usize,
    pub rows: Vec<Row>,
    /// Required rows that do not work.
    pub failing: usize,
    pub seconds: f64,
}

fn row(name: &str, works: bool, detail: String, fix: &str) -> Row {
    Row { name: name.into(), works, detail, fix: (!works && !fix.is_empty()).then(|| fix.to_string()), optional: false }
}

fn optional(mut r: Row) -> Row {
    r.optional = true;
    r
}

/// The capabilities zclab needs, and whether this process has each (CapEff).
fn capabilities() -> (bool, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff =
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok()).unwrap_or(0);
    let caps = [("CAP_NET_ADMIN", 12), ("CAP_NET_RAW", 13), ("CAP_IPC_LOCK", 14), ("CAP_SYS_ADMIN", 21), ("CAP_BPF", 39)];
    let missing: Vec<&str> = caps.iter().filter(|(_, b)| eff & (1 << b) == 0).map(|(n, _)| *n).collect();
    let uid = crate::sys::geteuid();
    let ok = missing.is_empty();
    let detail = if ok {
        format!("uid {uid}; {} all effective", caps.map(|c| c.0).join(", "))
    } else {
        format!("uid {uid}; missing {}", missing.join(", "))
    };
    (ok, detail)
}

fn kernel() -> Row {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let mut nums = rel.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u32>().ok());
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let ok = (major, minor) >= (6, 11);
    row(
        "kernel",
        ok,
        format!("Linux {rel} (af-xdp multi-buffer needs 6.6; IPv6 af-xdp, TX checksum metadata, 6.11)"),
        "a kernel of 6.11 or newer",
    )
}

/// The AF_XDP and XDP rows of interface `name` in this thread's namespace,
/// by trying: a copy-mode socket, a zero-copy one, the program native and
/// generic. Each is released again at once.
fn xdp_probes(name: &str, label: &str) -> Vec<Row> {
    let ifc = match Iface::find(Some(name), std::net::Ipv4Addr::UNSPECIFIED.into()) {
        Ok(i) => i,
        Err(e) => return vec![row(&format!("{label}: interface"), false, e.to_string(), "name an interface that exists")],
    };
    let mut rows = Vec::new();
    for (mode, title) in [(AttachMode::Native, "native XDP"), (AttachMode::Generic, "generic XDP")] {
        let frags = ifc.mtu > MAX_MTU_WITHOUT_FRAGS;
        let r = XdpSteering::attach(&ifc.name, 9, frags, Some(mode));
        let (ok, detail) = match r {
            Ok(_) => (true, format!("attached zclab's program to {} and detached it", ifc.name)),
            Err(e) => (false, e.to_string()),
        };
        rows.push(row(&format!("{label}: {title}"), ok, detail, "generic XDP works on every driver: --xdp-mode generic"));
    }
    for (bind, title) in [(BindMode::Copy, "AF_XDP copy mode"), (BindMode::Zerocopy, "AF_XDP zero copy")] {
        let res = crate::xsk::Umem::new(&crate::xsk::UmemConfig::chunks(4096, 64, 64, 64)).and_then(|u| {
            crate::xsk::XskSocket::bind_rx(u, 64, &ifc.socket_config(0, bind, &Knobs::default()), wait_for_busy_queue)
        });
        let (ok, detail) = match res {
            Ok((s, _)) => (
                true,
                format!(
                    "bound a socket to {} queue 0 ({}) and closed it",
                    ifc.name,
                    if s.is_zerocopy() { "zero copy" } else { "copy" }
                ),
            ),
            Err(e) => (false, e.to_string()),
        };
        let fix = if bind == BindMode::Zerocopy {
            "a NIC whose driver has AF_XDP zero copy (mlx5, ice, i40e, ...); veth never has it"
        } else {
            ""
        };
        let r = row(&format!("{label}: {title}"), ok, detail, fix);
        rows.push(if bind == BindMode::Zerocopy { optional(r) } else { r });
    }
    rows
}

/// What the kernel says of interface `name` (nothing is attached or bound).
fn iface_rows(name: &str) -> Vec<Row> {
    let label = name.to_string();
    let ifc = match Iface::find(Some(name), std::net::Ipv4Addr::UNSPECIFIED.into()) {
        Ok(i) => i,
        Err(e) => {
            return vec![row(
                &format!("{label}: interface"),
                false,
                e.to_string(),
                "name an interface of this namespace (`ip link`)",
            )]
        }
    };
    let mut rows = Vec::new();
    match crate::sys::netdev::xdp_features(ifc.index) {
        Ok(Some(f)) => {
            use crate::sys::netdev::{XDP_ACT_BASIC, XDP_ACT_REDIRECT, XDP_ACT_RX_SG, XDP_ACT_XSK_ZEROCOPY};
            rows.push(row(
                &format!("{label}: XDP features (the driver's word)"),
                f.has(XDP_ACT_BASIC) && f.has(XDP_ACT_REDIRECT),
                format!(
                    "xdp-features: {}{}",
                    f.names(),
                    f.zc_max_segs.map_or(String::new(), |s| format!("; xdp-zc-max-segs {s}"))
                ),
                "without native XDP, zclab runs its program in the generic hook (--xdp-mode generic): slower, works",
            ));
            rows.push(optional(row(
                &format!("{label}: AF_XDP zero copy (the driver's word)"),
                f.has(XDP_ACT_XSK_ZEROCOPY),
                if f.has(XDP_ACT_XSK_ZEROCOPY) {
                    "xsk-zerocopy is set".into()
                } else {
                    "xsk-zerocopy is not set: copy mode only".into()
                },
                "a NIC whose driver has AF_XDP zero copy (mlx5, ice, i40e, ...)",
            )));
            let frags_ok = ifc.mtu <= MAX_MTU_WITHOUT_FRAGS || f.has(XDP_ACT_RX_SG);
            rows.push(row(
                &format!("{label}: MTU"),
                frags_ok,
                format!(
                    "MTU {}: {}",
                    ifc.mtu,
                    if ifc.mtu <= MAX_MTU_WITHOUT_FRAGS {
                        "the plain XDP program fits".to_string()
                    } else if f.has(XDP_ACT_RX_SG) {
                        "above 3506: the frags-aware program, which the driver takes (rx-sg)".to_string()
                    } else {
                        "above 3506 and the driver has no rx-sg: no XDP program can take it".to_string()
                    }
                ),
                "an MTU of 3506 or less (`ip link set dev IF mtu 1500`)",
            ));
        }
        Ok(None) => rows.push(optional(row(
            &format!("{label}: XDP features"),
            false,
            "this kernel has no netdev netlink family (Linux 6.3+): the driver's XDP features cannot be read".into(),
            "`zclab doctor --probe` tries them instead",
        ))),
        Err(e) => rows.push(optional(row(&format!("{label}: XDP features"), false, format!("netdev netlink: {e}"), ""))),
    }
    match crate::sys::iface::queues(name) {
        Ok((rx, tx)) => rows.push(row(
            &format!("{label}: queues"),
            true,
            format!("{rx} RX, {tx} TX (ETHTOOL_GCHANNELS); the af-xdp receiver puts a socket on every RX queue"),
            "",
        )),
        Err(e) => rows.push(optional(row(&format!("{label}: queues"), false, format!("ETHTOOL_GCHANNELS: {e}"), ""))),
    }
    rows
}

/// The rows of a veth pair the doctor makes (and removes), probed in its
/// receiving namespace.
fn lab_veth_rows() -> Vec<Row> {
    let name = format!("zdoc{}", std::process::id() % 100_000);
    let cfg = crate::netns::EnvConfig { name, mtu: None, queues: None, router: None, ipv6: false, verbose: false };
    let env = match crate::netns::LabEnv::up(&cfg) {
        Ok(e) => e,
        Err(e) => {
            return vec![row(
                "network namespaces and veth",
                false,
                format!("{e:#}"),
                "run as root, with iproute2 installed (scripts/setup.sh)",
            )]
        }
    };
    let n = env.names().clone();
    let mut rows = vec![row(
        "network namespaces and veth",
        true,
        format!("made {} and {} with a veth pair, and removed them again", n.tx_ns, n.rx_ns),
        "",
    )];
    let (ns, iface) = (n.rx_ns.clone(), n.rx_if.clone());
    let probed = std::thread::spawn(move || match crate::sys::netns::enter(&ns) {
        Ok(()) => xdp_probes(&iface, "lab veth"),
        Err(e) => vec![row("lab veth", false, format!("entering {ns}: {e}"), "")],
    })
    .join()
    .unwrap_or_else(|_| vec![row("lab veth", false, "the probing thread panicked".into(), "")]);
    rows.extend(probed);
    drop(env);
    rows
}

fn trace_row() -> Row {
    match crate::trace::Tracer::load(None, None) {
        Ok(mut t) => {
            t.attach();
            let status = t.status();
            let missing: Vec<String> =
                status.iter().filter_map(|(tp, why)| why.as_ref().map(|w| format!("{tp} ({w})"))).collect();
            drop(t.finish());
            let ok = missing.is_empty();
            let detail = if ok {
                format!("all {} tracepoint programs load and attach", status.len())
            } else {
                format!("{} of {} work; missing: {}", status.len() - missing.len(), status.len(), missing.join("; "))
            };
            optional(row(
                "tracepoints for --trace",
                ok,
                detail,
                "a missing tracepoint only takes its own counters out of the reports",
            ))
        }
        Err(e) => optional(row("tracepoints for --trace", false, e, "run as root, on a kernel with BTF (`zclab trace-check`)")),
    }
}

fn o_direct_row(dir: &std::path::Path) -> Row {
    let name = "O_DIRECT";
    let path = dir.join(format!(".zclab-doctor-{}", std::process::id()));
    let res = std::fs::File::create(&path).and_then(|f| crate::sys::file::dio_align(&f));
    let _ = std::fs::remove_file(&path);
    match res {
        Ok(Some((mem, off))) => row(
            name,
            true,
            format!(
                "{}: direct I/O, buffers aligned to {mem} bytes, offsets and lengths to {off} (statx DIOALIGN)",
                dir.display()
            ),
            "",
        ),
        Ok(None) => row(
            name,
            false,
            format!(
                "{}: no direct I/O (statx reports no DIOALIGN: tmpfs?), so af-xdp reads through the page cache there",
                dir.display()
            ),
            "keep the files on a disk file system (ext4, xfs): --dir /var/tmp",
        ),
        Err(e) => row(name, false, format!("{}: {e}", dir.display()), "name a directory you can write (--dir)"),
    }
}

/// Runs every check.
pub fn doctor(cfg: &DoctorConfig) -> Doctor {
    let t = Instant::now();
    let mut rows = Vec::new();
    let (caps_ok, caps) = capabilities();
    rows.push(row("root and capabilities", caps_ok, caps, "run zclab as root (sudo)"));
    rows.push(kernel());
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    rows.push(optional(row(
        "BTF",
        btf,
        if btf { "/sys/kernel/btf/vmlinux is there".into() } else { "no /sys/kernel/btf/vmlinux".into() },
        "a kernel built with CONFIG_DEBUG_INFO_BTF (only --trace needs it)",
    )));
    rows.push(if caps_ok {
        trace_row()
    } else {
        optional(row("tracepoints for --trace", false, "not root".into(), "run as root"))
    });
    if caps_ok {
        rows.extend(lab_veth_rows());
    } else {
        rows.push(row("network namespaces and veth", false, "not root: no namespace was made".into(), "run as root"));
    }
    if let Some(i) = &cfg.iface {
        rows.extend(iface_rows(i));
        if cfg.probe {
            rows.extend(xdp_probes(i, &format!("{i} (--probe)")));
        }
    }
    let (zc, detail) = match crate::sys::uring::SendZcRing::new(4) {
        Ok(_) => (true, "an io_uring was set up and its probe lists IORING_OP_SEND_ZC".to_string()),
        Err(e) => (false, e.to_string()),
    };
    rows.push(row(
        "io_uring SEND_ZC",
        zc,
        detail,
        "Linux 6.0 or newer, io_uring not disabled (sysctl kernel.io_uring_disabled=0)",
    ));
    let (ok, detail) = match crate::sys::socket::probe_msg_zerocopy() {
        Ok(true) => (true, "SO_ZEROCOPY taken on a TCP socket".to_string()),
        Ok(false) => (false, "SO_ZEROCOPY refused (ENOPROTOOPT)".to_string()),
        Err(e) => (false, e.to_string()),
    };
    rows.push(row("MSG_ZEROCOPY", ok, detail, "Linux 4.14 or newer"));
    let (ok, detail) = match crate::sys::tcp_zc::probe_zerocopy_receive() {
        Ok(true) => (true, "the kernel knows the option (a listening socket answered ENOTCONN)".to_string()),
        Ok(false) => (false, "ENOPROTOOPT".to_string()),
        Err(e) => (false, e.to_string()),
    };
    rows.push(row("TCP_ZEROCOPY_RECEIVE", ok, detail, "Linux 5.11 or newer (recv --via mmap)"));
    rows.push(o_direct_row(&cfg.dir));
    let (soft, hard) = crate::sys::memlock_limit().unwrap_or((0, 0));
    let mib = |b: u64| if b == u64::MAX { "unlimited".to_string() } else { format!("{} MiB", b >> 20) };
    let ipc_lock = caps_ok;
    rows.push(row(
        "locked memory (the UMEM)",
        ipc_lock || soft >= 64 << 20,
        format!(
            "RLIMIT_MEMLOCK {} (hard {}){}",
            mib(soft),
            mib(hard),
            if ipc_lock { "; CAP_IPC_LOCK lifts it for root" } else { "" }
        ),
        "run as root, or raise `ulimit -l` (a UMEM of 64 MiB and more needs it)",
    ));
    let huge = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
    rows.push(optional(row(
        "huge pages",
        huge > 0,
        format!("vm.nr_hugepages {huge}"),
        "`sysctl vm.nr_hugepages=N` (only a UMEM on huge pages needs them)",
    )));
    let cpus = crate::sys::sched::cpus();
    rows.push(row(
        "CPUs",
        cpus >= 2,
        format!("{cpus}; `--pin` puts the two ends on CPUs 0 and 1"),
        "two CPUs or more: two ends on one core run at about 60% of their speed",
    ));
    let clang = std::process::Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into())).arg("--version").output();
    let (ok, detail) = match clang {
        Ok(o) if o.status.success() => (true, String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("clang").to_string()),
        Ok(o) => (false, String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => (false, format!("no clang: {e}")),
    };
    rows.push(optional(row("clang (lesson 9 --check)", ok, detail, "apt-get install clang libbpf-dev")));
    let works = rows.iter().filter(|r| r.works).count();
    let failing = rows.iter().filter(|r| !r.works && !r.optional).count();
    Doctor { works, rows, failing, seconds: t.elapsed().as_secs_f64() }
}

/// The rows as people read them: the summary first, then a row each, the
/// fix under each one that does not work.
pub fn text(d: &Doctor) -> String {
    let optional_missing = d.rows.iter().filter(|r| !r.works && r.optional).count();
    let mut s = format!(
        "zclab doctor: {} of {} work here; {} required missing, {} optional missing ({:.2} s)\n",
        d.works,
        d.rows.len(),
        d.failing,
        optional_missing,
        d.seconds
    );
    for r in &d.rows {
        let mark = match (r.works, r.optional) {
            (true, _) => "works   ",
            (false, false) => "MISSING ",
            (false, true) => "no      ",
        };
        let _ = writeln!(s, "  {mark} {:<44} {}", r.name, r.detail);
        if let Some(f) = &r.fix {
            let _ = writeln!(s, "           {:<44} fix: {f}", "");
        }
    }
    s
}
