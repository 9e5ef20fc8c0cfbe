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
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}

/// One request the kernel's HTTP server answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelServed {
    pub peer: std::net::SocketAddr,
    pub status: u16,
    pub bytes: u64,
    pub file_bytes: u64,
    pub seconds: f64,
    pub error: Option<String>,
}

/// What `zclab http --mode sendfile` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelHttpReport {
    pub mode: &'static str,
    pub listen: std::net::SocketAddr,
    pub file: String,
    pub served: Vec<KernelServed>,
}

impl KernelHttpReport {
    pub fn text(&self) -> String {
        let mut s = format!("http ({}) on {}: {} ({} requests)\n", self.mode, self.listen, self.file, self.served.len());
        for r in &self.served {
            s += &format!(
                "  {} {} -> {} bytes ({} of the file) in {:.3} s{}\n",
                r.peer,
                r.status,
                r.bytes,
                r.file_bytes,
                r.seconds,
                r.error.as_deref().map(|e| format!("; ended: {e}")).unwrap_or_default()
            );
        }
        s
    }
}

/// The same little HTTP server on the kernel's TCP: the response's head by
/// write(), the file by sendfile(), then FIN and wait for the client to
/// close. One connection at a time, `requests` of them (None: until Ctrl-C).
pub fn serve_http(
    listen: std::net::SocketAddr,
    path: &std::path::Path,
    requests: Option<u32>,
) -> anyhow::Result<KernelHttpReport> {
    use anyhow::Context;
    use std::io::{Read, Write};
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    let l = std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    l.set_nonblocking(true)?;
    let mut served = Vec::new();
    while requests.is_none_or(|n| (served.len() as u32) < n) {
        crate::interrupt::check()?;
        let (sock, peer) = match l.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        sock.set_write_timeout(Some(std::time::Duration::from_secs(10)))?;
        let t0 = std::time::Instant::now();
        let one = || -> anyhow::Result<(u16, u64, u64)> {
            let mut req = Vec::new();
            let mut b = [0u8; 2048];
            let parsed = loop {
                if let Some(r) = crate::http::parse(&req, &name) {
                    break r;
                }
                let n = (&sock).read(&mut b)?;
                if n == 0 {
                    anyhow::bail!("the client closed before its request was complete");
                }
                // Past the limit the parser answers 400: keep no more than it needs to see that.
                let room = (crate::http::MAX_REQUEST + 1).saturating_sub(req.len());
                req.extend_from_slice(&b[..n.min(room)]);
            };
            let file = std::fs::File::open(path)?;
            let len = file.metadata()?.len();
            let (head, file_len) = crate::http::respond(&parsed, len);
            (&sock).write_all(&head)?;
            let mut offset = 0u64;
            while offset < file_len {
                let want = (file_len - offset).min(1 << 30) as usize;
                if sys::file::sendfile(&sock, &file, &mut offset, want)? == 0 {
                    return Err(file_shrank(offset, file_len).into());
                }
            }
            sock.shutdown(std::net::Shutdown::Write)?;
            while (&sock).read(&mut b).is_ok_and(|n| n > 0) {}
            Ok((parsed.status(), head.len() as u64 + file_len, file_len))
        };
        let r = one();
        let seconds = t0.elapsed().as_secs_f64();
        let (status, bytes, file_bytes, error) = match r {
            Ok((s, b, f)) => (s, b, f, None),
            Err(e) => (0, 0, 0, Some(e.to_string())),
        };
        served.push(KernelServed { peer, status, bytes, file_bytes, seconds, error });
    }
    Ok(KernelHttpReport { mode: "sendfile", listen, file: path.display().to_string(), served })
}
