//! The one receiver for every TCP mode: `splice` from the socket into a
//! pipe, then from the pipe into the output file.
//!
//! Socket to pipe moves references to the received skb pages; pipe to file
//! copies them into the output file's page cache (the one CPU copy this
//! side makes). It never asks for more than the announced size, so the
//! control messages that follow the data stay in the socket.

use crate::sys::file::{splice, Pipe};
use crate::transfer::Watchdog;
use std::fs::File;
use std::io;
use std::net::TcpStream;

/// The pipe (and so the most one splice moves) on the receiving side.
const PIPE_BYTES: usize = 1 << 20;

pub struct Received {
    pub bytes: u64,
    pub syscalls: u64,
}

/// Moves up to `size` bytes from `sock` into `out`. Stops early only at
/// EOF (a truncated stream; the caller decides what that means).
pub fn receive_stream(sock: &TcpStream, out: &File, size: u64, wd: &mut Watchdog) -> io::Result<Received> {
    let pipe = Pipe::new()?;
    // Unprivileged users may be capped by /proc/sys/fs/pipe-max-size.
    let cap = pipe.set_size(PIPE_BYTES).or_else(|_| pipe.set_size(64 * 1024))?;
    let mut calls = 1;
    let mut got = 0u64;
    while got < size {
        let want = (size - got).min(cap as u64) as usize;
        calls += 1;
        let n = match splice(sock, None, &pipe.write, want, libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if Watchdog::is_idle_error(&e) => {
                wd.idle()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        wd.progress()?;
        let mut in_pipe = n;
        while in_pipe > 0 {
            calls += 1;
            let m = splice(&pipe.read, None, out, in_pipe, libc::SPLICE_F_MOVE)?;
            if m == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the output file took no data (disk full?)"));
            }
            in_pipe -= m;
        }
        got += n as u64;
    }
    Ok(Received { bytes: got, syscalls: calls })
}
