//! zclab: move a file from one network namespace to another by each Linux
//! data path, measure what each path costs, and prove the file arrived intact.
//!
//! The module map, bottom up: each module uses only those above it in this
//! list (and `interrupt`, which every long loop asks about Ctrl-C).
//!
//! `unsafe` is denied in the whole crate except two rooms: `sys`, where
//! every syscall is, and `xsk`, whose rings and UMEM are memory shared with
//! the kernel. Every `unsafe` block there says why it is sound.
#![deny(unsafe_code)]

/// `zclab bench`: every path side by side, interleaved; medians, charts, an HTML report.
pub mod bench;
/// Every copy a run must have made, inferred from its report, each with the rule that puts it there.
pub mod copies;
/// `zclab doctor`: what of the lab works on this machine, each row with its reason and fix.
pub mod doctor;
/// `zclab explain`: each data path drawn, with the last run's figures.
pub mod explain;
/// Ctrl-C and SIGTERM: one flag every long loop checks.
pub mod interrupt;
/// Lessons: experiments that measure themselves and check their claims (`zclab lesson`).
pub mod lessons;
/// Small messages: `latency` (ping-pong) and `rate` (one-way), one file per path.
pub mod messages;
/// What a run measures: CPU time, context switches, syscalls, zero-copy verdicts.
pub mod metrics;
/// The lab environment: namespaces, veth pair, addresses, MTU.
pub mod netns;
/// The receiving end.
pub mod recv;
/// Reports: the JSON schema and the tables people read.
pub mod report;
/// Next hop and its MAC from the kernel's route and neighbour tables.
pub mod route;
/// `zclab run`: both ends in their namespaces, one merged result.
pub mod run;
/// The sending end, one file per data path.
pub mod send;
/// Raw syscalls (libc): sockets, files, mappings, AF_XDP ABI, io_uring, namespaces, interfaces.
pub mod sys;
/// `--trace`: the kernel's own counters of a transfer, from tracepoints (BPF programs in xdp-prog/).
pub mod trace;
/// The protocol both ends share: modes, control messages, packet plan, reassembly, watchdog, af-xdp set-up.
pub mod transfer;
/// The packet paths' wire format: frames and the lab header, pure bytes.
pub mod wire;
/// The XDP program: load, attach (as a BPF link), fill its maps.
pub mod xdp;
/// Our AF_XDP layer: UMEM and who owns each frame, the four rings, the socket (no files, no protocol).
pub mod xsk;
