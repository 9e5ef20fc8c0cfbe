//! `io-uring-zc`: `IORING_OP_SEND_ZC` from a mapping of the file.
//!
//! The modern zero-copy send: the request goes through the io_uring
//! submission queue, and two completions come back per send, the result
//! (bytes queued) and a notification when the kernel no longer needs the
//! pages (with `IORING_SEND_ZC_REPORT_USAGE`, flagged if it copied). One
//! `io_uring_enter` submits a send and reaps what has completed.

use super::DataPath;
use super::Stream;
use crate::metrics::ZerocopyStats;
use crate::sys;
use crate::sys::uring::{SendZcRing, ZcEvent};
use crate::transfer::IO_TICK;
use std::io;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    let mut zc = ZerocopyStats { requested: true, ..Default::default() };
    let mut calls = 0;
    let Some(map) = sys::file::map_readonly(s.file)? else {
        return Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None });
    };
    let mut ring = SendZcRing::new(64).map_err(io::Error::other)?;
    let mut events = Vec::new();
    let mut done = 0u64;
    let mut in_flight = false;
    loop {
        if !in_flight && done < s.size {
            let start = done as usize;
            let end = start + s.next_len(done);
            ring.push_send(s.sock, &map[start..end], done)?;
            in_flight = true;
        }
        if !in_flight && ring.owed() == 0 {
            break;
        }
        calls += 1;
        ring.submit_and_wait(1, IO_TICK)?;
        events.clear();
        ring.drain(&mut events);
        if events.is_empty() {
            s.wd.idle()?;
        }
        for ev in &events {
            match *ev {
                ZcEvent::Sent { result, .. } if result < 0 => {
                    return Err(io::Error::from_raw_os_error(-result));
                }
                ZcEvent::Sent { result: 0, .. } => {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the receiver closed the connection"));
                }
                ZcEvent::Sent { result, notif_follows, .. } => {
                    done += result as u64;
                    in_flight = false;
                    if notif_follows {
                        zc.sends += 1;
                    }
                    s.wd.progress()?;
                }
                ZcEvent::Released { copied, .. } => {
                    zc.completions += 1;
                    if copied {
                        zc.copied += 1;
                    }
                }
            }
        }
    }
    Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None })
}
