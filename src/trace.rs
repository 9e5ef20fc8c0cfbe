//! `--trace`: the kernel's own testimony about one transfer.
//!
//! zclab's own bookkeeping (rusage, the syscalls it counts, mincore, the
//! zero-copy flags) says what the program asked for. The tracing programs
//! of `xdp-prog/zclab_trace.c` say what the kernel did: how many bytes it
//! copied from socket buffers into user memory, how the bytes of each TCP
//! send came (copied from user memory, page references, or pinned pages),
//! how many pages it added to the page cache, how many packets the
//! interfaces moved, where the XDP program redirected them, and why every
//! dropped packet was dropped.
//!
//! Each end loads the programs before its timed part, attaches them (BPF
//! links) when the clock starts, and detaches them when it stops; they go
//! with the process on any exit, SIGKILL included. They count only events
//! of the end's own network namespace, found from the device, the socket
//! or the task each tracepoint hands over.
//!
//! What no tracepoint on this kernel shows is not counted, and the report
//! says so: veth's copy of each packet into a new buffer
//! (`skb_pp_cow_data`), the copy into a copy-mode UMEM (inferred from the
//! XDP redirects, not seen), a pipe's copy into a file (the splice
//! receiver), and a file's copy into user memory (`read`).

use aya::maps::{Array, PerCpuArray};
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;

/// The compiled programs (build.rs; empty when they could not be built).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zclab_trace.o"));

include!(concat!(env!("OUT_DIR"), "/drop_reasons.rs"));

/// Must match `N_REASONS` in zclab_trace.c.
const N_REASONS: u32 = 256;

/// The counters, in the order of `enum counter` in zclab_trace.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Counter {
    CopiedToUserBytes,
    CopiedToUserCalls,
    SocketSentBytes,
    SocketSendCalls,
    SocketReceivedBytes,
    SocketReceiveCalls,
    TcpSentCopiedBytes,
    TcpSentPageRefBytes,
    TcpSentZerocopyBytes,
    OtherSentBytes,
    TcpRetransmits,
    PageCachePagesAdded,
    FilePagesAdded,
    FilePageFaults,
    DevXmitPackets,
    DevXmitBytes,
    DevReceivedPackets,
    DevReceivedBytes,
    NapiPolls,
    NapiWork,
    XdpRedirects,
    XdpRedirectErrors,
    XdpExceptions,
    Drops,
    TransferDrops,
}

const N_COUNTERS: usize = Counter::TransferDrops as usize + 1;

impl Counter {
    /// Its field in the JSON report: `TransferDrops` is `transfer_drops`.
    fn field(self) -> String {
        let mut out = String::new();
        for (i, ch) in format!("{self:?}").chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        }
        out
    }
}

use Counter as C;

/// Each program: its name in the object, the tracepoint it hangs on, and the counters it feeds.
const PROGRAMS: &[(&str, &str, &[Counter])] = &[
    ("zct_copy_to_user", "skb_copy_datagram_iovec", &[C::CopiedToUserBytes, C::CopiedToUserCalls]),
    (
        "zct_tcp_sendmsg",
        "tcp_sendmsg_locked",
        &[C::TcpSentCopiedBytes, C::TcpSentPageRefBytes, C::TcpSentZerocopyBytes, C::OtherSentBytes],
    ),
    (
        "zct_sock_send",
        "sock_send_length",
        &[
            C::SocketSentBytes,
            C::SocketSendCalls,
            C::TcpSentCopiedBytes,
            C::TcpSentPageRefBytes,
            C::TcpSentZerocopyBytes,
            C::OtherSentBytes,
        ],
    ),
    (
        "zct_sock_recv",
        "sock_recv_length",
        &[C::SocketReceivedBytes, C::SocketReceiveCalls, C::CopiedToUserBytes, C::CopiedToUserCalls],
    ),
    ("zct_tcp_retransmit", "tcp_retransmit_skb", &[C::TcpRetransmits]),
    ("zct_page_cache_add", "mm_filemap_add_to_page_cache", &[C::PageCachePagesAdded, C::FilePagesAdded]),
    ("zct_file_fault", "mm_filemap_fault", &[C::FilePageFaults]),
    ("zct_dev_xmit", "net_dev_xmit", &[C::DevXmitPackets, C::DevXmitBytes]),
    ("zct_dev_receive", "netif_receive_skb", &[C::DevReceivedPackets, C::DevReceivedBytes]),
    ("zct_napi_poll", "napi_poll", &[C::NapiPolls, C::NapiWork]),
    ("zct_xdp_redirect", "xdp_redirect", &[C::XdpRedirects]),
    ("zct_xdp_redirect_err", "xdp_redirect_err", &[C::XdpRedirectErrors]),
    ("zct_xdp_exception", "xdp_exception", &[C::XdpExceptions]),
    ("zct_drop", "kfree_skb", &[C::Drops, C::TransferDrops]),
];

/// What the kernel was seen to do on one end during the timed part. A
/// counter is null when its tracepoint could not be used here (`missing`
/// says why): never a zero that was not measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelCounters {
    /// Bytes copied from socket buffers into user memory, and the calls: TCP's by
    /// skb_copy_datagram_iovec, UDP's by sock_recv_length (a UDP receive copies every byte it
    /// returns, and a linear datagram's copy, copy_linear_skb, has no tracepoint of its own).
    pub copied_to_user_bytes: Option<u64>,
    pub copied_to_user_calls: Option<u64>,
    /// Bytes and calls through the socket layer's send and receive (sock_send_length, sock_recv_length).
    pub socket_sent_bytes: Option<u64>,
    pub socket_send_calls: Option<u64>,
    pub socket_received_bytes: Option<u64>,
    pub socket_receive_calls: Option<u64>,
    /// TCP bytes sent, by how they came (tcp_sendmsg_locked's flags): copied from user memory,
    /// as page references (MSG_SPLICE_PAGES: sendfile, splice), or pinned (MSG_ZEROCOPY).
    pub tcp_sent_copied_bytes: Option<u64>,
    pub tcp_sent_page_ref_bytes: Option<u64>,
    pub tcp_sent_zerocopy_bytes: Option<u64>,
    /// Bytes sent on other sockets (UDP): copied from user memory.
    pub other_sent_bytes: Option<u64>,
    pub tcp_retransmits: Option<u64>,
    /// Pages added to the page cache (mm_filemap_add_to_page_cache), file page faults (mm_filemap_fault).
    pub page_cache_pages_added: Option<u64>,
    /// Of those, pages of the transfer's file (the source on the sender, the output on the receiver).
    pub file_pages_added: Option<u64>,
    pub file_page_faults: Option<u64>,
    /// Packets and bytes the namespace's interfaces sent (net_dev_xmit; a GSO packet counts once).
    pub dev_xmit_packets: Option<u64>,
    pub dev_xmit_bytes: Option<u64>,
    /// Packets and bytes that entered the stack (netif_receive_skb; an XDP-redirected packet never does).
    pub dev_received_packets: Option<u64>,
    pub dev_received_bytes: Option<u64>,
    /// NAPI polls and the packets they handled.
    pub napi_polls: Option<u64>,
    pub napi_work: Option<u64>,
    /// XDP redirects (into an AF_XDP socket, one copy each in copy mode), their failures, XDP exceptions.
    pub xdp_redirects: Option<u64>,
    pub xdp_redirect_errors: Option<u64>,
    pub xdp_exceptions: Option<u64>,
    /// Packets dropped in this namespace (kfree_skb), by reason.
    pub drops: Option<u64>,
    pub drops_by_reason: BTreeMap<String, u64>,
    /// The transfer's data packets dropped anywhere (a router on the way too), by reason.
    pub transfer_drops: Option<u64>,
    pub transfer_drops_by_reason: BTreeMap<String, u64>,
    /// Counters that could not be had here, and why.
    pub missing: Vec<String>,
}

impl KernelCounters {
    /// Bytes the kernel was seen to copy on this end: user memory into TCP
    /// or UDP sends, socket buffers into user memory.
    pub fn copies_seen(&self) -> Option<u64> {
        Some(self.tcp_sent_copied_bytes? + self.other_sent_bytes? + self.copied_to_user_bytes?)
    }

    /// Every counter unmeasured, for one reason.
    fn unavailable(why: String) -> KernelCounters {
        KernelCounters { missing: vec![format!("all counters: {why}")], ..KernelCounters::default() }
    }

    fn set(&mut self, c: Counter, v: u64) {
        let field = match c {
            C::CopiedToUserBytes => &mut self.copied_to_user_bytes,
            C::CopiedToUserCalls => &mut self.copied_to_user_calls,
            C::SocketSentBytes => &mut self.socket_sent_bytes,
            C::SocketSendCalls => &mut self.socket_send_calls,
            C::SocketReceivedBytes => &mut self.socket_received_bytes,
            C::SocketReceiveCalls => &mut self.socket_receive_calls,
            C::TcpSentCopiedBytes => &mut self.tcp_sent_copied_bytes,
            C::TcpSentPageRefBytes => &mut self.tcp_sent_page_ref_bytes,
            C::TcpSentZerocopyBytes => &mut self.tcp_sent_zerocopy_bytes,
            C::OtherSentBytes => &mut self.other_sent_bytes,
            C::TcpRetransmits => &mut self.tcp_retransmits,
            C::PageCachePagesAdded => &mut self.page_cache_pages_added,
            C::FilePagesAdded => &mut self.file_pages_added,
            C::FilePageFaults => &mut self.file_page_faults,
            C::DevXmitPackets => &mut self.dev_xmit_packets,
            C::DevXmitBytes => &mut self.dev_xmit_bytes,
            C::DevReceivedPackets => &mut self.dev_received_packets,
            C::DevReceivedBytes => &mut self.dev_received_bytes,
            C::NapiPolls => &mut self.napi_polls,
            C::NapiWork => &mut self.napi_work,
            C::XdpRedirects => &mut self.xdp_redirects,
            C::XdpRedirectErrors => &mut self.xdp_redirect_errors,
            C::XdpExceptions => &mut self.xdp_exceptions,
            C::Drops => &mut self.drops,
            C::TransferDrops => &mut self.transfer_drops,
        };
        *field = Some(v);
    }
}

/// Both ends' counters, in a merged report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelRun {
    pub sender: Option<KernelCounters>,
    pub receiver: Option<KernelCounters>,
}

impl KernelRun {
    /// Bytes the kernel was seen to copy, both ends, per byte of file.
    pub fn copies_per_byte(&self, file_bytes: u64) -> Option<f64> {
        let seen = self.sender.as_ref()?.copies_seen()? + self.receiver.as_ref()?.copies_seen()?;
        (file_bytes > 0).then(|| seen as f64 / file_bytes as f64)
    }
}

/// The copies no tracepoint on this kernel shows (the table's footnote).
pub const UNSEEN_COPIES: &str = "not seen by any tracepoint here, so not counted: veth's copy of each packet \
     (skb_pp_cow_data), the copy into a copy-mode UMEM (one per XDP redirect), a pipe's copy into a file (the \
     splice receiver), a file's copy into user memory (read), and the copy of pinned MSG_ZEROCOPY or SEND_ZC pages \
     that the kernel makes after all when a packet crosses into another namespace (the `zc copied` column)";

/// Name of drop reason `r`.
fn reason_name(r: u32) -> String {
    match DROP_REASONS.iter().find(|(v, _)| *v == r) {
        Some((_, name)) => name.to_string(),
        None if r == N_REASONS - 1 => format!("reason {r} or above"),
        None => format!("reason {r}"),
    }
}

/// The tracing programs, loaded for one end and possibly attached.
pub struct Tracer {
    bpf: Ebpf,
    /// Programs that loaded (index into PROGRAMS).
    loaded: Vec<usize>,
    attached: Vec<(usize, BtfTracePointLinkId)>,
    missing: Vec<String>,
    /// Counters no program can give.
    dead: Vec<Counter>,
}

/// Names tracepoints (comma-separated) to treat as missing, to see how a
/// run goes on a kernel without them.
pub const WITHOUT_VAR: &str = "ZCLAB_TRACE_WITHOUT";

/// The inode number of this process's network namespace (what `ns.inum` is in the kernel).
pub fn own_netns() -> std::io::Result<u32> {
    Ok(std::fs::metadata("/proc/self/ns/net")?.ino() as u32)
}

impl Tracer {
    /// Loads the programs for this process's network namespace; `data` is
    /// where the transfer's UDP data packets go (their drops are followed
    /// anywhere), `file_ino` the inode of the transfer's file (its pages
    /// added to the page cache are counted apart). Programs that do not
    /// load are noted, not fatal; with none at all, the error says why.
    pub fn load(data: Option<(Ipv4Addr, u16)>, file_ino: Option<u64>) -> Result<Tracer, String> {
        if OBJECT.is_empty() {
            return Err("this zclab was built without its tracing programs (bpftool, or the kernel's BTF, was \
                        missing at build time: run scripts/setup.sh and rebuild)"
                .into());
        }
        let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF ({e}): tp_btf tracepoints need it"))?;
        // Task storage (send_kind) has no aya wrapper; the kernel makes it all the same.
        let mut bpf = EbpfLoader::new()
            .allow_unsupported_maps()
            .load(OBJECT)
            .map_err(|e| format!("loading the tracing programs failed: {e} (needs root)"))?;
        let netns = own_netns().map_err(|e| format!("cannot read this process's network namespace: {e}"))?;
        let (ip, port) = data.map(|(ip, port)| (u32::from_ne_bytes(ip.octets()), port as u32)).unwrap_or((0, 0));
        let map = bpf.map_mut("trace_config").ok_or("the object has no trace_config map")?;
        let ino = file_ino.unwrap_or(0);
        let mut cfg: Array<_, [u32; 5]> = Array::try_from(map).map_err(|e| e.to_string())?;
        cfg.set(0, [netns, ip, port, ino as u32, (ino >> 32) as u32], 0).map_err(|e| e.to_string())?;
        let mut tracer = Tracer { bpf, loaded: Vec::new(), attached: Vec::new(), missing: Vec::new(), dead: Vec::new() };
        let without = std::env::var(WITHOUT_VAR).unwrap_or_default();
        for (i, (name, tp, _)) in PROGRAMS.iter().enumerate() {
            // A tracepoint named in ZCLAB_TRACE_WITHOUT is asked for under a name no
            // kernel has, so the run meets exactly what another kernel would give it.
            let tp = if without.split(',').any(|w| w.trim() == *tp) { format!("{tp}_absent") } else { tp.to_string() };
            let loaded = tracer.program(name).and_then(|p| p.load(&tp, &btf).map_err(|e| format!("{e}{}", source_chain(&e))));
            match loaded {
                Ok(()) => tracer.loaded.push(i),
                Err(e) => tracer.note_missing(i, &e),
            }
        }
        if tracer.loaded.is_empty() {
            return Err(format!("no tracing program loaded: {}", tracer.missing.join("; ")));
        }
        Ok(tracer)
    }

    fn program(&mut self, name: &str) -> Result<&mut BtfTracePoint, String> {
        let p = self.bpf.program_mut(name).ok_or_else(|| format!("the object has no program {name}"))?;
        p.try_into().map_err(|e| format!("{name}: {e}"))
    }

    fn note_missing(&mut self, i: usize, why: &str) {
        let (_, tp, counters) = PROGRAMS[i];
        let names: Vec<String> = counters.iter().map(|c| c.field()).collect();
        self.missing.push(format!("tracepoint {tp} ({why}): no {}", names.join(", ")));
        log::warn!("--trace: tracepoint {tp} unavailable ({why}); those counters are left out");
        self.dead.extend_from_slice(counters);
    }

    /// Attaches every program that loaded (the clock is about to start).
    pub fn attach(&mut self) {
        for k in 0..self.loaded.len() {
            let i = self.loaded[k];
            let name = PROGRAMS[i].0;
            match self.program(name).and_then(|p| p.attach().map_err(|e| format!("{e}{}", source_chain(&e)))) {
                Ok(link) => self.attached.push((i, link)),
                Err(e) => self.note_missing(i, &e),
            }
        }
    }

    /// What attached and what did not: (tracepoint, None if it works or the reason it does not).
    pub fn status(&self) -> Vec<(&'static str, Option<String>)> {
        PROGRAMS
            .iter()
            .enumerate()
            .map(|(i, (_, tp, _))| {
                let ok = self.attached.iter().any(|(j, _)| *j == i);
                let why = self.missing.iter().find(|m| m.starts_with(&format!("tracepoint {tp} "))).cloned();
                (*tp, if ok { None } else { Some(why.unwrap_or_else(|| "not attached".into())) })
            })
            .collect()
    }

    /// Detaches everything (the clock has stopped) and reads the counters.
    pub fn finish(mut self) -> KernelCounters {
        for (i, link) in std::mem::take(&mut self.attached) {
            if let Ok(p) = self.program(PROGRAMS[i].0) {
                let _ = p.detach(link);
            }
        }
        match self.read() {
            Ok(k) => k,
            Err(e) => KernelCounters::unavailable(format!("reading the counters failed: {e}")),
        }
    }

    fn read(&self) -> Result<KernelCounters, String> {
        let map = self.bpf.map("counters").ok_or("no counters map")?;
        let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| e.to_string())?;
        let mut k = KernelCounters { missing: self.missing.clone(), ..KernelCounters::default() };
        for i in 0..N_COUNTERS as u32 {
            let c = ALL[i as usize];
            if self.dead.contains(&c) {
                continue;
            }
            let v: u64 = counters.get(&i, 0).map_err(|e| e.to_string())?.iter().sum();
            k.set(c, v);
        }
        let map = self.bpf.map("drop_reasons").ok_or("no drop_reasons map")?;
        let reasons: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| e.to_string())?;
        for i in 0..2 * N_REASONS {
            let v: u64 = reasons.get(&i, 0).map_err(|e| e.to_string())?.iter().sum();
            if v > 0 {
                let into = if i < N_REASONS { &mut k.drops_by_reason } else { &mut k.transfer_drops_by_reason };
                into.insert(reason_name(i % N_REASONS), v);
            }
        }
        Ok(k)
    }
}

/// Every counter, by index.
const ALL: [Counter; N_COUNTERS] = [
    C::CopiedToUserBytes,
    C::CopiedToUserCalls,
    C::SocketSentBytes,
    C::SocketSendCalls,
    C::SocketReceivedBytes,
    C::SocketReceiveCalls,
    C::TcpSentCopiedBytes,
    C::TcpSentPageRefBytes,
    C::TcpSentZerocopyBytes,
    C::OtherSentBytes,
    C::TcpRetransmits,
    C::PageCachePagesAdded,
    C::FilePagesAdded,
    C::FilePageFaults,
    C::DevXmitPackets,
    C::DevXmitBytes,
    C::DevReceivedPackets,
    C::DevReceivedBytes,
    C::NapiPolls,
    C::NapiWork,
    C::XdpRedirects,
    C::XdpRedirectErrors,
    C::XdpExceptions,
    C::Drops,
    C::TransferDrops,
];

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// One end's tracing across its timed part: loads before, attaches at the
/// start, reads at the end. Without `--trace` it does nothing.
pub struct Testimony {
    tracer: Option<Tracer>,
    failed: Option<String>,
    wanted: bool,
}

impl Testimony {
    /// Loads the programs if `wanted` (untimed); a failure becomes a note in the report.
    pub fn prepare(wanted: bool, data: Option<(Ipv4Addr, u16)>, file_ino: Option<u64>) -> Testimony {
        if !wanted {
            return Testimony { tracer: None, failed: None, wanted };
        }
        match Tracer::load(data, file_ino) {
            Ok(t) => Testimony { tracer: Some(t), failed: None, wanted },
            Err(e) => {
                log::warn!("--trace: {e}; the run goes on without the kernel's counters");
                Testimony { tracer: None, failed: Some(e), wanted }
            }
        }
    }

    /// The clock starts.
    pub fn start(&mut self) {
        if let Some(t) = &mut self.tracer {
            t.attach();
        }
    }

    /// The clock has stopped: detach and read (None without `--trace`).
    pub fn finish(self) -> Option<KernelCounters> {
        if !self.wanted {
            return None;
        }
        Some(match (self.tracer, self.failed) {
            (Some(t), _) => t.finish(),
            (None, why) => KernelCounters::unavailable(why.unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_in_the_c_order() {
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        let src = include_str!("../xdp-prog/zclab_trace.c");
        let start = src.find("enum counter {").unwrap();
        let body = &src[start..start + src[start..].find("};").unwrap()];
        let names: Vec<String> = body
            .lines()
            .skip(1)
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty() && *l != "N_COUNTERS")
            .map(|l| l.replace('_', "").to_lowercase())
            .collect();
        let ours: Vec<String> = ALL.iter().map(|c| format!("{c:?}").to_lowercase()).collect();
        assert_eq!(names, ours, "src/trace.rs and zclab_trace.c must list the counters in one order");
    }

    #[test]
    fn counters_are_named_as_their_report_fields() {
        let fields = serde_json::to_value(KernelCounters::default()).unwrap();
        for c in ALL {
            assert!(fields.get(c.field()).is_some(), "{c:?} has no field {}", c.field());
        }
    }

    #[test]
    fn copies_seen_needs_every_part_measured() {
        let mut k = KernelCounters {
            tcp_sent_copied_bytes: Some(10),
            other_sent_bytes: Some(5),
            copied_to_user_bytes: Some(100),
            ..KernelCounters::default()
        };
        assert_eq!(k.copies_seen(), Some(115));
        k.other_sent_bytes = None;
        assert_eq!(k.copies_seen(), None, "a part not measured is not a zero");
        let run = KernelRun { sender: Some(k.clone()), receiver: Some(k) };
        assert_eq!(run.copies_per_byte(100), None);
    }
}
