//! The transfer protocol shared by both ends.
//!
//! A transfer is one TCP control connection; on the TCP paths the file's
//! bytes follow on the same connection, on the packet paths (udp-gso,
//! af-xdp) they go as UDP packets beside it:
//! ```text
//! sender                                   receiver
//!   Hello {mode, size, chunk, id}  ---->
//!                                          (creates the file; attaches the XDP program)
//!                                  <----   Ready {mac, window}
//!   --- the clock starts ---
//!   TCP paths: size bytes of data  ---->
//!   packet paths, per round:
//!     packets (UDP / AF_XDP)       ====>
//!                                  <----   Progress {seen}     (now and then: the window)
//!     RoundDone {round, sent}      ---->
//!                                  <----   Missing {ranges}    (empty: all there)
//!                                  <----   Received {bytes}
//!   --- the clock stops ---
//!   (hashes the file, untimed)             (hashes what it wrote, untimed)
//!   Trailer {hash}                 ---->
//!                                  <----   Verdict {bytes, hash, verified}
//! ```
//! The receiver never reads past `size`, so the trailer cannot be mistaken
//! for data; a stream that ends early is reported as truncated.

pub mod af_xdp;
pub mod auth;
pub mod control;
pub mod hash;
pub mod mode;
pub mod plan;
pub mod reassembly;
pub mod watchdog;

pub use mode::Mode;
pub use watchdog::Watchdog;

/// The port zclab listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7777;
/// Bytes a sender moves per syscall unless told otherwise (128 KiB: the
/// chunk of the reference C senders in FACTS.md).
pub const DEFAULT_CHUNK: usize = 128 * 1024;
/// How often blocking calls return so loops can check Ctrl-C and stalls.
pub const IO_TICK: std::time::Duration = std::time::Duration::from_millis(250);
