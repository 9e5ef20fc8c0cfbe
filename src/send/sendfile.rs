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

/// What `send --plain --mode sendfile` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlainReport {
    pub mode: &'static str,
    pub peer: std::net::SocketAddr,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub syscalls: u64,
    /// Bytes the peer sent before it closed (a plain sink sends none).
    pub peer_bytes: u64,
}

impl PlainReport {
    pub fn text(&self) -> String {
        format!(
            "sendfile: {} bytes to {} in {:.3} s: {:.2} Gbit/s ({} sendfile calls); the peer closed after {} bytes of its own\n",
            self.bytes, self.peer, self.seconds, self.gbit_per_s, self.syscalls, self.peer_bytes
        )
    }
}

/// The file by the kernel's TCP and sendfile() to any listener: the bytes,
/// then FIN (shutdown of the writing side), then wait for the peer to close.
/// The baseline for af-xdp-tcp's `--plain`.
pub fn send_plain(to: std::net::SocketAddr, path: &std::path::Path, timeout: std::time::Duration) -> anyhow::Result<PlainReport> {
    use anyhow::Context;
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let sock = std::net::TcpStream::connect_timeout(&to, timeout).with_context(|| format!("connecting to {to}"))?;
    sock.set_write_timeout(Some(timeout))?;
    sock.set_read_timeout(Some(timeout))?;
    let t0 = std::time::Instant::now();
    let (mut offset, mut calls) = (0u64, 0u64);
    while offset < size {
        calls += 1;
        let want = (size - offset).min(1 << 30) as usize;
        match sys::file::sendfile(&sock, &file, &mut offset, want) {
            Ok(0) => return Err(file_shrank(offset, size).into()),
            Ok(_) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("sendfile to {to} after {offset} bytes"))),
        }
    }
    sock.shutdown(std::net::Shutdown::Write)?;
    let mut peer_bytes = 0u64;
    let mut buf = [0u8; 4096];
    loop {
        match (&sock).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => peer_bytes += n as u64,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("waiting for {to} to close"))),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(PlainReport {
        mode: "sendfile",
        peer: to,
        bytes: size,
        seconds,
        gbit_per_s: size as f64 * 8.0 / seconds.max(1e-9) / 1e9,
        syscalls: calls,
        peer_bytes,
    })
}
