//! `sendfile`: the kernel moves file pages to the socket itself.
//!
//! No user buffer at all: each call hands page-cache pages to TCP, which
//! references them in skbs (no CPU copy on the send side; veth then
//! delivers those skbs to the peer). Two mode switches per chunk.

use super::DataPath;
use super::{file_shrank, Stream};
use crate::sys;
use crate::transfer::Watchdog;
use std::io;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    let mut calls = 0;
    let mut offset = 0u64;
    while offset < s.size {
        let want = s.next_len(offset);
        calls += 1;
        match sys::file::sendfile(s.sock, s.file, &mut offset, want) {
            Ok(0) => return Err(file_shrank(offset, s.size)),
            Ok(_) => s.wd.progress()?,
            Err(e) if Watchdog::is_idle_error(&e) => s.wd.idle()?,
            Err(e) => return Err(e),
        }
    }
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: None, af_xdp: None })
}
