//! `getrusage(RUSAGE_SELF)`: CPU time, context switches and page faults of this process.

use std::time::Duration;

/// A snapshot of what this process has consumed so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rusage {
    pub user: Duration,
    pub system: Duration,
    pub voluntary_ctx_switches: u64,
    pub involuntary_ctx_switches: u64,
    /// Page faults served without I/O (the page was in memory: mapped on first touch).
    pub minor_faults: u64,
    /// Page faults that had to read from disk.
    pub major_faults: u64,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000)
}

/// Reads the counters of the whole process (all threads).
pub fn self_usage() -> Rusage {
    // SAFETY: rusage is a plain C struct; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage. RUSAGE_SELF cannot fail with a
    // valid pointer, so the return value carries no information.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    Rusage {
        user: tv(ru.ru_utime),
        system: tv(ru.ru_stime),
        voluntary_ctx_switches: ru.ru_nvcsw as u64,
        involuntary_ctx_switches: ru.ru_nivcsw as u64,
        minor_faults: ru.ru_minflt as u64,
        major_faults: ru.ru_majflt as u64,
    }
}
