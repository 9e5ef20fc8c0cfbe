//! What a run measures on each side.
//!
//! CPU time and context switches come from `getrusage(RUSAGE_SELF)` taken
//! just before and just after the timed transfer, so hashing and set-up are
//! not charged to the data path. `syscalls` is counted by zclab's own code:
//! every data-path call it makes (read, write, sendfile, splice, send,
//! recvmsg on the error queue, io_uring_enter), not the control messages.
//! Note that veth delivers packets in the sender's context: part of the
//! receiver's kernel work shows up as the sender's system time.

use crate::sys::rusage::{self, Rusage};
use serde::{Deserialize, Serialize};

/// The cost one process paid for the transfer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessCost {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub syscalls: u64,
    pub voluntary_ctx_switches: u64,
    pub involuntary_ctx_switches: u64,
    /// Page faults served from memory (a mapped page touched the first time).
    #[serde(default)]
    pub minor_faults: u64,
}

/// Started before the timed part; `finish` gives the difference.
pub struct CostMeter {
    start: Rusage,
}

impl CostMeter {
    pub fn start() -> CostMeter {
        CostMeter { start: rusage::self_usage() }
    }

    pub fn finish(&self, syscalls: u64) -> ProcessCost {
        let end = rusage::self_usage();
        ProcessCost {
            cpu_user_s: (end.user.saturating_sub(self.start.user)).as_secs_f64(),
            cpu_sys_s: (end.system.saturating_sub(self.start.system)).as_secs_f64(),
            syscalls,
            voluntary_ctx_switches: end.voluntary_ctx_switches.saturating_sub(self.start.voluntary_ctx_switches),
            involuntary_ctx_switches: end.involuntary_ctx_switches.saturating_sub(self.start.involuntary_ctx_switches),
            minor_faults: end.minor_faults.saturating_sub(self.start.minor_faults),
        }
    }
}

/// The zero-copy verdict of a path that asked for zero copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZerocopyStats {
    /// Zero copy was asked for (SO_ZEROCOPY + MSG_ZEROCOPY, or SEND_ZC).
    pub requested: bool,
    /// Sends that the kernel accepted as zero-copy sends.
    pub sends: u64,
    /// Sends whose completion notification arrived.
    pub completions: u64,
    /// Of those, how many the kernel flagged as copied after all.
    pub copied: u64,
    /// The most sends allowed in flight (sent, pages not yet released)
    /// before the sender waits for completions (`--in-flight`); None: as
    /// many as the kernel takes (msg-zerocopy until ENOBUFS).
    #[serde(default)]
    pub in_flight_limit: Option<u32>,
    /// The most sends that were in flight at once.
    #[serde(default)]
    pub max_in_flight: u64,
    /// io-uring-zc sent from registered (fixed) buffers (`--fixed-buffers`).
    #[serde(default)]
    pub fixed_buffers: bool,
    /// Seconds spent registering them (inside the timed part).
    #[serde(default)]
    pub register_s: Option<f64>,
}

impl ZerocopyStats {
    /// Sends whose pages the kernel has not released yet.
    pub fn in_flight(&self) -> u64 {
        self.sends.saturating_sub(self.completions)
    }

    /// Notes the current number in flight.
    pub fn note_in_flight(&mut self) {
        self.max_in_flight = self.max_in_flight.max(self.in_flight());
    }
}

/// What a packet path's sender counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketStats {
    /// Data packets sent, retransmissions included.
    pub packets: u64,
    /// Of those, sent again because the receiver missed them.
    pub retransmitted: u64,
    /// Rounds: 1 when nothing was lost.
    pub rounds: u32,
}

/// Busy time of all CPUs so far (the `cpu` line of /proc/stat: everything
/// but idle and iowait), in seconds. The difference over a timed part is
/// the machine's whole cost of it, whichever process the kernel charged.
pub fn all_cpu_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle) as f64 / crate::sys::clock_ticks() as f64)
}

/// Gigabits per second (10^9 bits) of `bytes` moved in `seconds`.
pub fn gbit_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds / 1e9
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbit_is_decimal_bits_per_second() {
        assert_eq!(gbit_per_s(1_000_000_000, 8.0), 1.0);
        assert_eq!(gbit_per_s(125_000_000, 0.5), 2.0);
        assert_eq!(gbit_per_s(5, 0.0), 0.0);
    }

    #[test]
    fn all_cpu_busy_time_grows_with_work() {
        let a = all_cpu_busy_s().expect("/proc/stat is readable");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = all_cpu_busy_s().unwrap();
        assert!(b - a >= 0.05, "100 ms of spinning shows in /proc/stat: {}", b - a);
    }

    #[test]
    fn meter_sees_cpu_spent() {
        let m = CostMeter::start();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let c = m.finish(7);
        assert_eq!(c.syscalls, 7);
        assert!(c.cpu_user_s + c.cpu_sys_s > 0.02, "{c:?}");
    }
}
