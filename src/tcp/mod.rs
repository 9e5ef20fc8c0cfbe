//! zclab's own TCP, in user space, for the af-xdp-tcp path: the state
//! machine of one connection and nothing else. It does no I/O, keeps no
//! payload and reads no clock of its own: the caller hands it each segment
//! that came in and the time, and asks it what to send; a segment it sends
//! names the bytes of the stream it carries, which stay where the caller
//! keeps them (UMEM frames, where the disk put them) until acknowledged.
//! That makes every rule testable segment by segment, and the same code
//! runs against the kernel's TCP over a veth.
//!
//! - `conn.rs`: the connection's state and what an incoming segment does
//!   (RFC 9293, with RFC 5961's checks of RSTs, SYNs and ACKs);
//! - `output.rs`: what goes out next and the timers (SYN retries, data as
//!   the windows allow, retransmissions, zero-window probes, the FIN);
//! - `rto.rs`: the retransmission timeout (RFC 6298) and why its floor is 200 ms;
//! - `congestion.rs`: NewReno (RFC 5681, RFC 6582);
//! - `receive.rs`: the peer's data, its FIN, the window offered, delayed ACKs;
//! - `reorder.rs`: the receiving side's record of what arrived ahead of
//!   RCV.NXT (held by the caller where it landed) and the SACK blocks it reports;
//! - `sack.rs`: the SACK scoreboard (RFC 2018, RFC 6675), for recovery that
//!   sends only the holes.
//!
//! Wire formats are `crate::wire`'s (`wire/tcp.rs`).

pub mod congestion;
pub mod conn;
pub mod output;
pub mod receive;
pub mod reorder;
pub mod rto;
pub mod sack;

pub use conn::{Config, Connection, Drop, Incoming, State, TcpError, TcpStats};
pub use output::{Transmit, Why};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_receive;
