//! zclab: move a file from one network namespace to another by each Linux
//! data path, measure what each path costs, and prove the file arrived intact.
//!
//! Layering, bottom up (nothing imports anything above it):
#![deny(unsafe_code)]

/// Ctrl-C and SIGTERM: one flag every long loop checks.
pub mod interrupt;
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
/// Raw syscalls (libc): the only module allowed `unsafe`.
pub mod sys;
/// The transfer protocol: control messages, hashing, the stall watchdog.
pub mod transfer;
/// The packet paths' wire format: frames and the lab header.
pub mod wire;
/// The XDP program: load, attach (as a BPF link), fill its maps.
pub mod xdp;
/// Our AF_XDP layer: UMEM, rings, socket (no files, no protocol).
pub mod xsk;
