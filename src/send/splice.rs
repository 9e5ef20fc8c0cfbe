//! `splice`: file to pipe, pipe to socket.
//!
//! A pipe is a ring of page references. The first splice puts references
//! to page-cache pages into it, the second hands them to TCP: no CPU copy,
//! but two syscalls per chunk. The pipe is sized to one chunk so each
//! splice moves a whole chunk.

use super::DataPath;
use super::{file_shrank, Stream};
use crate::sys::file::{splice, Pipe};
use crate::transfer::Watchdog;
use std::io;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    let pipe = Pipe::new()?;
    let cap = pipe.set_size(s.chunk)?;
    let mut calls = 1;
    let mut offset = 0u64;
    while offset < s.size {
        let want = s.next_len(offset).min(cap);
        let more = if offset + (want as u64) < s.size { libc::SPLICE_F_MORE } else { 0 };
        calls += 1;
        let mut in_pipe = splice(s.file, Some(&mut offset), &pipe.write, want, libc::SPLICE_F_MOVE | more)?;
        if in_pipe == 0 {
            return Err(file_shrank(offset, s.size));
        }
        while in_pipe > 0 {
            calls += 1;
            match splice(&pipe.read, None, s.sock, in_pipe, libc::SPLICE_F_MOVE | more) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the receiver closed the connection")),
                Ok(n) => {
                    in_pipe -= n;
                    s.wd.progress()?;
                }
                Err(e) if Watchdog::is_idle_error(&e) => s.wd.idle()?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}
