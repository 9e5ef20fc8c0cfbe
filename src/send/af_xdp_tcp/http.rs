//! `zclab http --mode af-xdp-tcp`: the little HTTP server of `crate::http`
//! on zclab's own TCP. Passive open on the AF_XDP socket (the XDP program
//! steers every segment to the listening port), one connection at a time:
//! the request read out of the RX frames, the response's head written into
//! a frame of its own, the file's bytes from the UMEM blocks O_DIRECT read
//! them into, FIN, and the next connection.

use super::buffer::SendBuffer;
use super::link::{Bind, Link, BLOCK};
use super::{config, drive, give_back, name_error, ChecksumCounts, TcpXdpOptions};
use crate::http;
use crate::tcp::{Connection, TcpStats};
use crate::transfer::af_xdp::{Iface, CHUNK};
use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// One request served.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub peer: SocketAddr,
    pub status: u16,
    /// Bytes of the response (its head and body), and of them the file's.
    pub bytes: u64,
    pub file_bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub tcp: TcpStats,
    /// How the connection ended badly, if it did.
    pub error: Option<String>,
}

/// What a `zclab http` server did.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    pub mode: &'static str,
    pub listen: SocketAddr,
    pub file: String,
    pub served: Vec<Served>,
    pub checksum: ChecksumCounts,
    pub foreign_frames: u64,
}

impl HttpReport {
    pub fn text(&self) -> String {
        let mut s = format!("http ({}) on {}: {} ({} requests)\n", self.mode, self.listen, self.file, self.served.len());
        for r in &self.served {
            s += &format!(
                "  {} {} -> {} bytes ({} of the file) in {:.3} s, {:.2} Gbit/s; segments {}, retransmitted {} / {}{}\n",
                r.peer,
                r.status,
                r.bytes,
                r.file_bytes,
                r.seconds,
                r.gbit_per_s,
                r.tcp.segments_sent,
                r.tcp.retransmits_fast,
                r.tcp.retransmits_timeout,
                r.error.as_deref().map(|e| format!("; ended: {e}")).unwrap_or_default()
            );
        }
        s += &format!(
            "  checksums received: {} verified, {} unverifiable, {} bad; CPU read {} payload bytes for the ones sent\n",
            self.checksum.rx_verified, self.checksum.rx_unverifiable, self.checksum.rx_bad, self.checksum.cpu_payload_bytes_read
        );
        s
    }
}

/// Serves `path` on `listen` until `requests` have been answered (or
/// forever, until Ctrl-C).
pub fn serve_http(listen: SocketAddr, path: &Path, opts: &TcpXdpOptions, requests: Option<u32>) -> Result<HttpReport> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    let len = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.len();
    let (holder, local) =
        crate::sys::socket::hold_tcp_port(listen).with_context(|| format!("binding {listen} (is the port taken?)"))?;
    let iface = Iface::find(opts.iface.as_deref(), listen.ip())?;
    let bind = Bind::new(&iface, opts, local);
    let mut link = Link::open(&bind)?;
    log::info!("http (af-xdp-tcp) listening on {local} ({} queue {}), serving {}", iface.name, opts.queue, path.display());
    let mut served = Vec::new();
    while requests.is_none_or(|n| (served.len() as u32) < n) {
        let Some((peer, mac, syn)) = link.wait_syn(Duration::from_millis(500))? else { continue };
        link.peer = peer;
        link.dst_mac = mac;
        link.peer_data.clear();
        link.keep = http::MAX_REQUEST + 1;
        let mut c = config(&iface, local.port(), peer, opts);
        c.time_wait = Duration::from_millis(100);
        let t0 = Instant::now();
        let Some(mut conn) = Connection::accept(c, &syn, t0) else { continue };
        let mut buf = SendBuffer::new(std::mem::take(&mut link.blocks), BLOCK, 1);
        let mut answer: Option<(u16, u64, u64)> = None;
        let result = drive(&mut conn, &mut link, &mut buf, |conn, link, buf| {
            if answer.is_some() {
                return Ok(());
            }
            let Some(req) = http::parse(&link.peer_data, &name) else { return Ok(()) };
            let (head, file_len) = http::respond(&req, len);
            let file = if file_len > 0 {
                let (f, align) = crate::send::af_xdp::open_direct(path, CHUNK)?;
                buf.set_align(align.unwrap_or(1));
                Some((crate::send::af_xdp::DirectReader::new(f, 16)?, file_len))
            } else {
                None
            };
            let frame = link.spare.take().ok_or_else(|| anyhow!("the prefix frame is in use"))?;
            let total = buf.start(link.frames(), Some((frame, &head)), file);
            conn.close_after(total);
            answer = Some((req.status(), total, file_len));
            Ok(())
        });
        // To the moment the connection was done, not the end of its TIME-WAIT.
        let seconds = result.as_ref().map_or_else(|_| t0.elapsed(), |done| done.duration_since(t0)).as_secs_f64();
        let error = result.err().map(|e| name_error(e, peer).to_string());
        if crate::interrupt::requested() {
            anyhow::bail!("interrupted after {} requests", served.len());
        }
        give_back(buf, &mut link)?;
        let (status, bytes, file_bytes) = answer.unwrap_or((0, 0, 0));
        if let Some(e) = &error {
            log::warn!("{peer}: {e}");
        }
        served.push(Served {
            peer,
            status,
            bytes,
            file_bytes,
            seconds,
            gbit_per_s: bytes as f64 * 8.0 / seconds.max(1e-9) / 1e9,
            tcp: conn.stats(),
            error,
        });
    }
    drop(holder);
    Ok(HttpReport {
        mode: "af-xdp-tcp",
        listen: local,
        file: path.display().to_string(),
        served,
        checksum: link.checksum.clone(),
        foreign_frames: link.foreign,
    })
}
