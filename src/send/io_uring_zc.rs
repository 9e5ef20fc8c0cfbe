//! `io-uring-zc`: `IORING_OP_SEND_ZC` from a mapping of the file.
//!
//! The modern zero-copy send: the request goes through the io_uring
//! submission queue, and two completions come back per send, the result
//! (bytes queued) and a notification when the kernel no longer needs the
//! pages (with `IORING_SEND_ZC_REPORT_USAGE`, flagged if it copied). One
//! `io_uring_enter` submits sends and reaps what has completed.
//!
//! `--in-flight N` submits N sends at once as one linked chain (each starts
//! when the one before has completed, so the stream's bytes stay in order):
//! N sends per `io_uring_enter`. `--fixed-buffers` registers the mapping
//! once so that no send pins pages of its own; the kernel accepts only a
//! private writable mapping for that, and copies every page as it pins it.

use super::DataPath;
use super::Stream;
use crate::metrics::ZerocopyStats;
use crate::sys;
use crate::sys::uring::{SendZcRing, ZcEvent};
use crate::transfer::IO_TICK;
use std::io;
use std::time::Instant;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    // Sends per linked chain.
    let depth = s.zc.in_flight.unwrap_or(1).max(1);
    let mut zc =
        ZerocopyStats { requested: true, in_flight_limit: Some(depth), fixed_buffers: s.zc.fixed_buffers, ..Default::default() };
    let depth = depth as usize;
    let mut calls = 0;
    type Mapping = Box<dyn std::ops::Deref<Target = [u8]>>;
    let map: Option<Mapping> = if s.zc.fixed_buffers {
        sys::file::map_private_writable(s.file)?.map(|m| Box::new(m) as Mapping)
    } else {
        sys::file::map_readonly(s.file)?.map(|m| Box::new(m) as Mapping)
    };
    s.check_mapped(map.as_ref().map_or(0, |m| m.len()))?;
    let Some(map) = map else {
        return Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None, af_xdp_tcp: None, done: None });
    };
    let mut ring = SendZcRing::new((2 * depth as u32).next_power_of_two().max(64)).map_err(io::Error::other)?;
    if s.zc.fixed_buffers {
        let t = Instant::now();
        calls += 1;
        ring.register(&map[..])?;
        zc.register_s = Some(t.elapsed().as_secs_f64());
    }
    let mut events = Vec::new();
    let mut queued = 0u64;
    let mut done = 0u64;
    let mut results_owed = 0usize;
    loop {
        if results_owed == 0 && queued < s.size {
            // The next chain: up to `depth` sends, each linked to the next.
            let mut n = 0;
            while n < depth && queued < s.size {
                let start = queued as usize;
                let len = s.next_len(queued);
                queued += len as u64;
                n += 1;
                ring.push_send(s.sock, &map[start..start + len], start as u64, n < depth && queued < s.size)?;
                zc.sends += 1;
            }
            results_owed = n;
            zc.note_in_flight();
        }
        if results_owed == 0 && ring.owed() == 0 {
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
                ZcEvent::Sent { result, user_data, notif_follows } => {
                    let want = s.next_len(user_data);
                    if result as usize != want {
                        // The connection failed mid-send: its error says how.
                        if let Ok(Some(e)) = s.sock.take_error() {
                            return Err(e);
                        }
                        return Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            format!(
                                "a SEND_ZC with MSG_WAITALL queued {result} of {want} bytes (the connection failed mid-send)"
                            ),
                        ));
                    }
                    done += result as u64;
                    results_owed -= 1;
                    if !notif_follows {
                        // No notification will come: the kernel is done with it.
                        zc.completions += 1;
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
    debug_assert_eq!(done, s.size);
    Ok(DataPath { syscalls: calls, zerocopy: Some(zc), packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}
