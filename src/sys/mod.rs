//! The only room that calls raw syscalls.
//!
//! Everything above this module sees safe functions that return
//! `io::Result`; every `unsafe` block of the crate lives here, each with a
//! `SAFETY:` comment that says why the call is sound. A student who wants to
//! see exactly what zclab asks of the kernel reads this folder.
#![allow(unsafe_code)]

pub mod file;
pub mod iface;
pub mod mmap;
pub mod netdev;
pub mod netns;
pub mod rusage;
pub mod sched;
pub mod socket;
pub mod tcp_zc;
pub mod uring;
pub mod xdp;

use std::io;

/// Turns the C convention (`-1` and `errno`) into an `io::Result`.
fn cvt<T: PartialEq + From<i8>>(res: T) -> io::Result<T> {
    if res == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// The system page size (4096 on x86_64).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Clock ticks per second, the unit of /proc/stat's CPU times (100 on Linux).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// The effective user id (0 for root).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Fills `buf` with random bytes from the kernel (getrandom).
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: getrandom writes at most `buf.len() - got` bytes into the
        // part of `buf` that starts at `got`, which we own.
        let n = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(())
}

/// Sends `sig` to the process `pid` (one that zclab started itself).
pub fn kill(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill takes plain integers; the pid is a child we spawned and
    // have not reaped, so it cannot have been reused.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) })?;
    Ok(())
}

/// `RLIMIT_MEMLOCK`: (soft, hard) in bytes (`u64::MAX`: unlimited).
pub fn memlock_limit() -> std::io::Result<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a live rlimit the kernel fills.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}
