//! Loading and attaching the XDP program of `xdp-prog/` (with aya).
//!
//! The program is attached through a BPF link: the kernel detaches it when
//! the link's file descriptor closes, so it goes away with this value, with
//! the process, even after SIGKILL. Nothing is pinned, nothing stays.

use aya::maps::{Array, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use std::os::fd::AsRawFd;

/// The compiled object (build.rs puts it in OUT_DIR).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zclab_xdp.o"));

/// The largest MTU a veth takes with a program that is not frags-aware.
pub const MAX_MTU_WITHOUT_FRAGS: u32 = 3506;

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// In the driver (veth supports it): before an skb exists.
    Native,
    /// In the generic stack hook, after an skb was built (works everywhere).
    Generic,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP program into the kernel failed: {0} (needs CAP_BPF and CAP_NET_ADMIN: run as root)")]
    Load(#[source] aya::EbpfError),
    #[error("the XDP program was rejected: {0}")]
    Program(#[source] aya::programs::ProgramError),
    #[error("cannot attach the XDP program to {iface}: {source}{hint}")]
    Attach {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
        hint: &'static str,
    },
    #[error("XDP map update failed: {0}")]
    Map(#[source] aya::maps::MapError),
}

/// The program, attached to one interface, steering one UDP port.
pub struct XdpSteering {
    bpf: Ebpf,
    pub mode: AttachMode,
    pub frags: bool,
}

impl XdpSteering {
    /// Loads the program, sets its UDP port (0: none), and attaches it to
    /// `iface`. The frags-aware variant is used when `frags` is true (MTUs
    /// above 3506).
    pub fn attach(iface: &str, port: u16, frags: bool, mode: Option<AttachMode>) -> Result<XdpSteering, XdpError> {
        let mut bpf = Ebpf::load(OBJECT).map_err(XdpError::Load)?;
        {
            let map = bpf.map_mut("config").expect("the object defines the config map");
            let mut config: Array<_, u32> = Array::try_from(map).map_err(XdpError::Map)?;
            config.set(0, port as u32, 0).map_err(XdpError::Map)?;
        }
        let name = if frags { "zclab_xdp_frags" } else { "zclab_xdp" };
        let prog: &mut Xdp =
            bpf.program_mut(name).expect("the object defines both programs").try_into().map_err(XdpError::Program)?;
        prog.load().map_err(XdpError::Program)?;
        let tries: &[AttachMode] = match mode {
            Some(m) => &[m][..],
            None => &[AttachMode::Native, AttachMode::Generic][..],
        };
        let mut last = None;
        for &m in tries {
            let flags = match m {
                AttachMode::Native => XdpMode::Driver,
                AttachMode::Generic => XdpMode::Skb,
            };
            match prog.attach(iface, flags) {
                Ok(_) => {
                    log::info!("XDP program {name} attached to {iface} ({m:?})");
                    return Ok(XdpSteering { bpf, mode: m, frags });
                }
                Err(e) => {
                    log::debug!("attach {m:?} to {iface} failed: {e}");
                    last = Some(e);
                }
            }
        }
        let hint = if frags { "" } else { " (an MTU above 3506 needs the frags-aware program)" };
        Err(XdpError::Attach { iface: iface.into(), source: last.expect("at least one attempt"), hint })
    }

    /// Lab packets that arrived on a queue with no socket registered, by
    /// queue: (queue, packets) for each queue that had any.
    pub fn unserved(&self) -> Result<Vec<(u32, u64)>, XdpError> {
        let map = self.bpf.map("unserved").expect("the object defines the unserved map");
        let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(XdpError::Map)?;
        let mut out = Vec::new();
        for q in 0..counts.len() {
            let n: u64 = counts.get(&q, 0).map_err(XdpError::Map)?.iter().sum();
            if n > 0 {
                out.push((q, n));
            }
        }
        Ok(out)
    }

    /// Steers one TCP flow too: segments to `local_port` from `peer` (a
    /// connection this end opens), or from anyone (`None`: a port that
    /// listens). The map's value is `struct tcp_flow` of zclab_xdp.c: three
    /// u32 then the peer's address bytes as they are on the wire.
    pub fn steer_tcp(&mut self, local_port: u16, peer: Option<std::net::SocketAddr>) -> Result<(), XdpError> {
        let mut v = [0u32; 7];
        v[0] = local_port as u32;
        if let Some(p) = peer {
            v[1] = p.port() as u32;
            let bytes: Vec<u8> = match p.ip() {
                std::net::IpAddr::V4(a) => {
                    v[2] = 4;
                    a.octets().to_vec()
                }
                std::net::IpAddr::V6(a) => {
                    v[2] = 6;
                    a.octets().to_vec()
                }
            };
            for (slot, w) in v[3..].iter_mut().zip(bytes.chunks(4)) {
                *slot = u32::from_ne_bytes(w.try_into().expect("4 bytes"));
            }
        }
        let map = self.bpf.map_mut("tcp_config").expect("the object defines the tcp_config map");
        let mut cfg: Array<_, [u32; 7]> = Array::try_from(map).map_err(XdpError::Map)?;
        cfg.set(0, v, 0).map_err(XdpError::Map)
    }

    /// Registers an AF_XDP socket for packets arriving on `queue`.
    pub fn register(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), XdpError> {
        let map = self.bpf.map_mut("xsks_map").expect("the object defines xsks_map");
        let mut xsks: XskMap<_> = XskMap::try_from(map).map_err(XdpError::Map)?;
        xsks.set(queue, socket.as_raw_fd(), 0).map_err(XdpError::Map)
    }
}
