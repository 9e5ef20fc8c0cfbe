//! Where a thread runs and how much CPU it has had: `sched_setaffinity`,
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.

use super::cvt;
use std::io;
use std::time::Duration;

/// Pins the calling thread to one CPU (its children inherit the pinning).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no CPU {cpu}")));
    }
    // SAFETY: CPU_SET writes one bit of the live set; `cpu` is inside it (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is live for the call and we pass its size.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// The one CPU the calling thread may run on, if it is pinned to one.
pub fn pinned_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is live and writable, and we pass its size.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return None;
    }
    // SAFETY: CPU_ISSET reads one bit of the live set, inside its size.
    let on: Vec<usize> = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
    (on.len() == 1).then(|| on[0])
}

/// For the `k`-th thread of a transfer whose main thread is pinned: pins
/// the calling thread to the CPU `k` places after the main one's (so the
/// queues of `--queues` spread over the machine as `--cpu` placed the
/// main thread). Does nothing if the main thread was not pinned.
pub fn pin_beside(main: Option<usize>, k: usize) -> io::Result<()> {
    match main {
        Some(c) => pin_to_cpu((c + k) % cpus()),
        None => Ok(()),
    }
}

/// The CPUs this machine has online.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// CPU time the calling thread has run: what it got, not the wall clock.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
