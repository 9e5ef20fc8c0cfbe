//! The transfer protocol shared by both ends.
//!
//! A TCP transfer is one connection:
//! ```text
//! sender                                   receiver
//!   Hello {mode, size, chunk, id}  ---->
//!   size bytes of file data        ---->   (timed: hello to Received)
//!                                  <----   Received {bytes}
//!   (hashes the file, untimed)             (hashes what it wrote, untimed)
//!   Trailer {hash}                 ---->
//!                                  <----   Verdict {bytes, hash, verified}
//! ```
//! The receiver never reads past `size`, so the trailer cannot be mistaken
//! for data; a stream that ends early is reported as truncated.

pub mod control;
pub mod hash;
pub mod plan;
pub mod reassembly;
pub mod watchdog;

pub use watchdog::Watchdog;

/// The port zclab listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7777;
/// Bytes a sender moves per syscall unless told otherwise (128 KiB: the
/// chunk of the reference C senders in FACTS.md).
pub const DEFAULT_CHUNK: usize = 128 * 1024;
/// How often blocking calls return so loops can check Ctrl-C and stalls.
pub const IO_TICK: std::time::Duration = std::time::Duration::from_millis(250);
