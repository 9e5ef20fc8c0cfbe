//! The receiver of every TCP mode, four ways (`recv --via`):
//! - `splice` (the default): socket to a pipe, pipe to the output file.
//!   Socket to pipe moves references to the received skb pages; pipe to
//!   file copies them into the output file's page cache (the one CPU copy).
//! - `read`: `read()` into a buffer, `pwrite()` to the file: two CPU copies.
//! - `mmap`: `TCP_ZEROCOPY_RECEIVE` maps the received pages into our
//!   memory where they lie in whole pages; the kernel copies the rest into
//!   a buffer of ours. Then one copy into the file. It counts both.
//! - `discard`: `recv(MSG_TRUNC)` drops the data without copying it: the
//!   receiver's floor. It writes nothing, so it verifies nothing.
//!
//! None ever asks for more than the announced size, so the control
//! messages that follow the data stay in the socket.

use crate::sys::file::{splice, Pipe};
use crate::sys::socket::poll_one;
use crate::sys::tcp_zc::{recv_discard, ZcReceiver};
pub use crate::transfer::mode::{Via, ZerocopyReceive};
use crate::transfer::{Watchdog, IO_TICK};
use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;

pub struct Received {
    pub bytes: u64,
    pub syscalls: u64,
    /// `--via mmap` only.
    pub zerocopy: Option<ZerocopyReceive>,
}

/// Moves up to `size` bytes from `sock` into `out` the `via` way. Stops
/// early only at EOF (a truncated stream; the caller decides what that means).
pub fn receive_stream(sock: &TcpStream, out: &File, size: u64, wd: &mut Watchdog, via: Via) -> io::Result<Received> {
    match via {
        Via::Splice => by_splice(sock, out, size, wd),
        Via::Read => by_read(sock, out, size, wd),
        Via::Mmap => by_mapping(sock, out, size, wd),
        Via::Discard => by_discarding(sock, size, wd),
    }
}

/// Up to `max` bytes from one call of `f`; `Ok(None)` when nothing moved this tick.
fn tick<T>(wd: &mut Watchdog, r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => {
            wd.progress()?;
            Ok(Some(v))
        }
        Err(e) if Watchdog::is_idle_error(&e) => {
            wd.idle()?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn by_read(mut sock: &TcpStream, out: &File, size: u64, wd: &mut Watchdog) -> io::Result<Received> {
    let mut buf = vec![0u8; BUF_BYTES];
    let (mut got, mut calls) = (0u64, 0u64);
    while got < size {
        let want = (size - got).min(buf.len() as u64) as usize;
        calls += 1;
        let Some(n) = tick(wd, sock.read(&mut buf[..want]))? else { continue };
        if n == 0 {
            break;
        }
        calls += 1;
        out.write_all_at(&buf[..n], got)?;
        got += n as u64;
    }
    Ok(Received { bytes: got, syscalls: calls, zerocopy: None })
}

fn by_discarding(sock: &TcpStream, size: u64, wd: &mut Watchdog) -> io::Result<Received> {
    let (mut got, mut calls) = (0u64, 0u64);
    while got < size {
        let want = (size - got).min(BUF_BYTES as u64) as usize;
        calls += 1;
        let Some(n) = tick(wd, recv_discard(sock, want))? else { continue };
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    Ok(Received { bytes: got, syscalls: calls, zerocopy: None })
}

fn by_mapping(sock: &TcpStream, out: &File, size: u64, wd: &mut Watchdog) -> io::Result<Received> {
    let page = crate::sys::page_size();
    let mut zr = ZcReceiver::new(sock, MAP_BYTES, page)
        .map_err(|e| io::Error::new(e.kind(), format!("mmap of the TCP socket for TCP_ZEROCOPY_RECEIVE: {e} (Linux 4.18+)")))?;
    // Wake only when at least a page is queued: less than that cannot be mapped.
    crate::sys::socket::set_int_opt(sock, libc::SOL_SOCKET, libc::SO_RCVLOWAT, page as libc::c_int)?;
    let mut fallback = vec![0u8; BUF_BYTES];
    let (mut got, mut calls) = (0u64, 0u64);
    let mut zc = ZerocopyReceive::default();
    while got < size {
        let remaining = size - got;
        let tail = remaining < page as u64;
        if tail {
            // The last bytes, less than a page: let the kernel copy them.
            crate::sys::socket::set_int_opt(sock, libc::SOL_SOCKET, libc::SO_RCVLOWAT, 1)?;
        }
        let want = remaining.min(MAP_BYTES as u64) as usize;
        calls += 1;
        let c = zr.receive(sock, want, tail)?;
        log::trace!("TCP_ZEROCOPY_RECEIVE at {got}: {c:?}");
        if c.mapped + c.copied > 0 {
            wd.progress()?;
            let (mapped, copied) = zr.bytes(&c);
            calls += 2;
            out.write_all_at(mapped, got)?;
            out.write_all_at(copied, got + mapped.len() as u64)?;
            zc.mapped_bytes += mapped.len() as u64;
            zc.copied_bytes += copied.len() as u64;
            got += (mapped.len() + copied.len()) as u64;
            continue;
        }
        if c.skip > 0 && c.inq as usize >= page {
            // Bytes that do not lie in whole pages: read exactly those, to reach a mappable position.
            let n = (c.skip as u64).min(remaining).min(fallback.len() as u64) as usize;
            calls += 2;
            let Some(n) = tick(wd, (&mut &*sock).read(&mut fallback[..n]))? else { continue };
            if n == 0 {
                break;
            }
            out.write_all_at(&fallback[..n], got)?;
            zc.copied_bytes += n as u64;
            got += n as u64;
            continue;
        }
        // Less than a page queued: wait for more (SO_RCVLOWAT), or see the peer close.
        calls += 1;
        if poll_one(sock, libc::POLLIN, IO_TICK.as_millis() as i32)? == 0 {
            wd.idle()?;
            continue;
        }
        let mut probe = [0u8; 1];
        if sock.peek(&mut probe)? == 0 {
            break;
        }
        // Readable now (SO_RCVLOWAT: a page or more is queued): try again.
    }
    Ok(Received { bytes: got, syscalls: calls, zerocopy: Some(zc) })
}

/// The pipe (and so the most one splice moves) on the receiving side.
const PIPE_BYTES: usize = 1 << 20;

/// Buffer (and most bytes per call) of the read, discard and mmap receivers.
const BUF_BYTES: usize = 1 << 20;
/// The mmap receiver's region of mapped pages.
const MAP_BYTES: usize = 2 << 20;

fn by_splice(sock: &TcpStream, out: &File, size: u64, wd: &mut Watchdog) -> io::Result<Received> {
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
    Ok(Received { bytes: got, syscalls: calls, zerocopy: None })
}
