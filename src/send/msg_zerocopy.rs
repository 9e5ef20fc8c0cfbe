//! `msg-zerocopy`: `send(MSG_ZEROCOPY)` from a mapping of the file.
//!
//! With `SO_ZEROCOPY` set, TCP pins our (page-cache) pages and puts
//! references to them in skbs instead of copying. Because the pages are
//! still in use after `send` returns, the kernel reports on the socket's
//! *error queue* when each send's pages are released: a range of send
//! numbers, flagged `SO_EE_CODE_ZEROCOPY_COPIED` when it had to copy after
//! all. Between two namespaces over veth it always does (the skb crosses
//! into another socket's receive queue), and this path says so.
//!
//! Pending notifications are charged to the socket's option memory
//! (`net.core.optmem_max`); when it is full, `send` fails with ENOBUFS and
//! we must read completions before sending more. `--in-flight N` waits
//! sooner: once N sends are unreleased, the sender waits for completions
//! before the next send (the pages of sends in flight stay pinned).

use super::DataPath;
use super::Stream;
use crate::metrics::ZerocopyStats;
use crate::sys::socket as so;
use crate::transfer::Watchdog;
use std::io;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    so::set_int_opt(s.sock, libc::SOL_SOCKET, so::SO_ZEROCOPY, 1)
        .map_err(|e| io::Error::new(e.kind(), format!("setsockopt(SO_ZEROCOPY): {e} (needs Linux 4.14+)")))?;
    let mut zc = ZerocopyStats { requested: true, in_flight_limit: s.zc.in_flight, ..Default::default() };
    let mut calls = 1;
    let Some(map) = s.map_file()? else {
        return Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None, af_xdp_tcp: None, done: None });
    };
    let mut done = 0u64;
    let mut enobufs_in_a_row = 0u32;
    while done < s.size {
        if let Some(limit) = s.zc.in_flight {
            while zc.in_flight() >= u64::from(limit.max(1)) {
                wait_for_completions(s, &mut zc, &mut calls)?;
            }
        }
        let start = done as usize;
        let end = start + s.next_len(done);
        calls += 1;
        match so::send(s.sock, &map[start..end], libc::MSG_ZEROCOPY) {
            Ok(n) => {
                done += n as u64;
                zc.sends += 1;
                zc.note_in_flight();
                enobufs_in_a_row = 0;
                s.wd.progress()?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                enobufs_in_a_row += 1;
                if enobufs_in_a_row > 200 {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "send(MSG_ZEROCOPY) keeps failing with ENOBUFS: the socket's option memory is full of \
                         pending notifications; raise it (sysctl -w net.core.optmem_max=1048576) or use a larger --chunk",
                    ));
                }
                // Wait for the kernel to release some pages.
                calls += 1;
                so::poll_one(s.sock, libc::POLLERR, 10)?;
            }
            Err(e) if Watchdog::is_idle_error(&e) => s.wd.idle()?,
            Err(e) => return Err(e),
        }
        reap(s, &mut zc, &mut calls)?;
    }
    // The trap: check first, then wait; completions may all be in already.
    while zc.completions < zc.sends {
        wait_for_completions(s, &mut zc, &mut calls)?;
    }
    Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}

/// Waits (one tick at most) for the error queue to hold completions, and reads them.
fn wait_for_completions(s: &mut Stream, zc: &mut ZerocopyStats, calls: &mut u64) -> io::Result<()> {
    *calls += 1;
    let ev = so::poll_one(s.sock, libc::POLLERR, crate::transfer::IO_TICK.as_millis() as i32)?;
    if ev == 0 {
        return s.wd.idle();
    }
    reap(s, zc, calls)
}

/// Reads every completion waiting on the error queue.
fn reap(s: &mut Stream, zc: &mut ZerocopyStats, calls: &mut u64) -> io::Result<()> {
    loop {
        *calls += 1;
        match so::recv_zerocopy_completion(s.sock)? {
            None => return Ok(()),
            Some(c) => {
                let n = c.hi.wrapping_sub(c.lo) as u64 + 1;
                zc.completions += n;
                if c.copied {
                    zc.copied += n;
                }
                s.wd.progress()?;
            }
        }
    }
}
