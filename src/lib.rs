//! zclab: move a file from one network namespace to another by each Linux
//! data path, measure what each path costs, and prove the file arrived intact.
//!
//! The module map, bottom up: each module uses only those above it in this
//! list (`tests/house.rs` checks it, and that no two files import each
//! other round in a circle). System calls first, then the AF_XDP layer and
//! what a run measures, the wire formats and the protocol's state, the
//! reports, the two ends, and on top what drives them: `run`, the small
//! messages, the doctor, the lessons and the bench.
//!
//! `unsafe` is denied in the whole crate except two rooms: `sys`, where
//! every syscall is, and `xsk`, whose rings and UMEM are memory shared with
//! the kernel. Every `unsafe` block there says why it is sound.
#![deny(unsafe_code)]

/// Ctrl-C and SIGTERM: one flag every long loop checks.
pub mod interrupt;

/// Raw syscalls (libc): sockets, files, mappings, AF_XDP ABI, io_uring, namespaces, interfaces.
pub mod sys;

/// Our AF_XDP layer: UMEM and who owns each frame, the four rings, the socket (no files, no protocol).
pub mod xsk;

/// What a run measures: CPU time, context switches, syscalls, zero-copy verdicts.
pub mod metrics;

/// The lab environment: namespaces, veth pair, addresses, MTU.
pub mod netns;

/// Next hop and its MAC from the kernel's route and neighbour tables.
pub mod route;

/// The packet paths' wire format: frames and the lab header, pure bytes.
pub mod wire;

/// The little HTTP/1.1 of `zclab http`: a request read, a response's head written (pure bytes).
pub mod http;

/// zclab's own TCP (af-xdp-tcp): one connection's state machine, no I/O of its own.
pub mod tcp;

/// The protocol both ends share: modes, control messages, packet plan, reassembly, watchdog, af-xdp set-up.
pub mod transfer;

/// `--trace`: the kernel's own counters of a transfer, from tracepoints (BPF programs in xdp-prog/).
pub mod trace;

/// The XDP program: load, attach (as a BPF link), fill its maps.
pub mod xdp;

/// Reports: the JSON schema and the tables people read.
pub mod report;

/// Every copy a run must have made, inferred from its report, each with the rule that puts it there.
pub mod copies;

/// `zclab explain`: each data path drawn, with the last run's figures.
pub mod explain;

/// The sending end, one file per data path.
pub mod send;

/// The receiving end.
pub mod recv;

/// `zclab run`: both ends in their namespaces, one merged result.
pub mod run;

/// Small messages: `latency` (ping-pong) and `rate` (one-way), one file per path.
pub mod messages;

/// `zclab doctor`: what of the lab works on this machine, each row with its reason and fix.
pub mod doctor;

/// Lessons: experiments that measure themselves and check their claims (`zclab lesson`).
pub mod lessons;

/// `zclab bench`: every path side by side, interleaved; medians, charts, an HTML report.
pub mod bench;
