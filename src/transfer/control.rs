//! Control messages: a 4-byte magic, a 4-byte big-endian length, then the
//! message as JSON. JSON keeps the messages readable in a packet capture
//! and lets later versions add fields without breaking older readers.

use super::{Mode, Watchdog};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Starts every control message ("ZCL" and protocol version 1).
pub const MAGIC: [u8; 4] = *b"ZCL1";
/// No control message is larger than this; anything claiming more is garbage.
pub const MAX_MSG: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Sender to receiver, first: what is coming; `nonce` when the sender
    /// has a key (`--key`), for the challenge (see `auth`).
    Hello {
        mode: Mode,
        size: u64,
        chunk: u64,
        transfer_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
        /// af-xdp: the queues the sender sends on (one socket each); the
        /// receiver opens as many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queues: Option<u32>,
        /// af-xdp: the payload this sender can cut instead of `chunk` so
        /// that each payload is a whole number of 512-byte O_DIRECT units
        /// and a packet fits one receiving UMEM frame (at most 3584 bytes);
        /// a receiver that writes with O_DIRECT (`recv --direct`) asks for
        /// it in its Ready.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direct_payload: Option<u64>,
    },
    /// Receiver to sender (with a key): its nonce and its proof of the key.
    Challenge { nonce: String, proof: String },
    /// Sender to receiver (with a key): its proof of the key.
    Proof { proof: String },
    /// Receiver to sender (packet paths): ready for data. `mac` is the
    /// receiving interface's MAC address where the path needs it; `window`
    /// the packets the sender may have in flight beyond those it heard of.
    Ready {
        mac: Option<String>,
        #[serde(default)]
        window: Option<u64>,
        /// af-xdp: the payload per packet the receiver wants instead of the
        /// Hello's `chunk`: the sender's `direct_payload`, for a receiver
        /// that writes payloads with O_DIRECT straight from its UMEM.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunk: Option<u64>,
        /// How long a sender whose window is full may hear nothing before it
        /// takes what is in flight for lost (milliseconds; default 5): a
        /// receiver that waits on its disk (`--direct`) asks for more.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patience_ms: Option<u64>,
        /// af-xdp-tcp: the port (on the control connection's address) where
        /// the receiver listens for the data connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_port: Option<u16>,
    },
    /// Receiver to sender (packet paths), now and then during a round: it
    /// has taken `seen` packets off its data plane so far (all rounds).
    Progress { seen: u64 },
    /// Sender to receiver (packet paths): round `round` is fully sent.
    RoundDone { round: u32, sent: u64 },
    /// Receiver to sender (packet paths): packets still missing, as
    /// half-open index ranges (at most a few thousand; more follow later).
    Missing { ranges: Vec<(u64, u64)>, count: u64 },
    /// Receiver to sender: all `bytes` arrived (stops the sender's clock).
    Received { bytes: u64 },
    /// Sender to receiver: the BLAKE3 of the source file.
    Trailer { hash: String },
    /// Receiver to sender: the outcome.
    Verdict { bytes: u64, hash: String, verified: bool, reason: Option<String> },
    /// Either way: this end gives up, and why (the receiver refusing a
    /// Hello: busy, no room, too large; or failing mid-transfer: disk full).
    /// [`recv_msg`] turns it into an error that carries the reason.
    Failed { reason: String },
}

impl Msg {
    /// The framed bytes of this message.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("control messages always serialize");
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a message body (the bytes after magic and length).
    pub fn decode_body(body: &[u8]) -> io::Result<Msg> {
        serde_json::from_slice(body).map_err(|e| invalid(format!("malformed control message: {e}")))
    }

    /// Checks a frame header; returns the body length.
    pub fn decode_header(head: [u8; 8]) -> io::Result<usize> {
        if head[..4] != MAGIC {
            return Err(invalid(format!(
                "the peer does not speak zclab protocol 1 (got {:02x?} where \"ZCL1\" was expected)",
                &head[..4]
            )));
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if len > MAX_MSG {
            return Err(invalid(format!("control message of {len} bytes exceeds the {MAX_MSG}-byte limit")));
        }
        Ok(len)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Writes one message, waiting out a slow peer under the watchdog.
pub fn send_msg<W: Write>(w: &mut W, msg: &Msg, wd: &mut Watchdog) -> io::Result<()> {
    let buf = msg.encode();
    let mut off = 0;
    while off < buf.len() {
        match w.write(&buf[off..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the peer closed the connection")),
            Ok(n) => {
                off += n;
                wd.progress()?;
            }
            Err(e) if Watchdog::is_idle_error(&e) => wd.idle()?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the
/// first byte, an error on EOF in the middle.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8], wd: &mut Watchdog) -> io::Result<bool> {
    let mut off = 0;
    while off < buf.len() {
        match r.read(&mut buf[off..]) {
            Ok(0) if off == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection mid-message")),
            Ok(n) => {
                off += n;
                wd.progress()?;
            }
            Err(e) if Watchdog::is_idle_error(&e) => wd.idle()?,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads one message; `Ok(None)` if the peer closed the connection cleanly.
pub fn recv_msg<R: Read>(r: &mut R, wd: &mut Watchdog) -> io::Result<Option<Msg>> {
    let mut head = [0u8; 8];
    if !read_full(r, &mut head, wd)? {
        return Ok(None);
    }
    let len = Msg::decode_header(head)?;
    let mut body = vec![0u8; len];
    if !read_full(r, &mut body, wd)? && len > 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection mid-message"));
    }
    match Msg::decode_body(&body)? {
        Msg::Failed { reason } => Err(peer_failed(wd.peer(), &reason)),
        m => Ok(Some(m)),
    }
}

/// The error of a peer that said why it gave up.
pub fn peer_failed(peer: &str, reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, format!("{peer} says: {reason}"))
}

/// Tells the peer why this end gives up, as best it can: a short wait at
/// most, and no error if the peer is gone already.
pub fn send_failure(sock: &std::net::TcpStream, reason: &str) {
    let _ = sock.set_write_timeout(Some(std::time::Duration::from_millis(500)));
    let mut wd = Watchdog::new(std::time::Duration::from_secs(1), "the peer");
    if let Err(e) = send_msg(&mut &*sock, &Msg::Failed { reason: reason.to_string() }, &mut wd) {
        log::debug!("could not tell the peer why: {e}");
    }
}

/// After a data path failed (a reset, a broken pipe): the reason the peer
/// sent before it closed, if one is waiting to be read.
pub fn failure_waiting(sock: &std::net::TcpStream, peer: &'static str) -> Option<String> {
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(300)));
    let mut wd = Watchdog::new(std::time::Duration::from_millis(600), peer);
    // Skip what else is queued (progress reports) until a Failed or the end.
    for _ in 0..10_000 {
        match recv_msg(&mut &*sock, &mut wd) {
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => return Some(e.to_string()),
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wd() -> Watchdog {
        Watchdog::new(Duration::from_secs(1), "test peer")
    }

    #[test]
    fn round_trip_every_message() {
        let msgs = [
            Msg::Hello {
                mode: Mode::Sendfile,
                size: u64::MAX,
                chunk: 131072,
                transfer_id: 7,
                nonce: None,
                queues: None,
                direct_payload: None,
            },
            Msg::Hello {
                mode: Mode::AfXdp,
                size: 1,
                chunk: 1448,
                transfer_id: 8,
                nonce: Some("ab".into()),
                queues: Some(2),
                direct_payload: Some(1024),
            },
            Msg::Challenge { nonce: "cd".into(), proof: "ef".into() },
            Msg::Proof { proof: "01".into() },
            Msg::Received { bytes: 0 },
            Msg::Ready {
                mac: Some("02:00:00:00:00:01".into()),
                window: Some(1024),
                chunk: None,
                patience_ms: None,
                data_port: None,
            },
            Msg::Ready { mac: None, window: None, chunk: Some(3584), patience_ms: Some(20), data_port: Some(40001) },
            Msg::Progress { seen: 77 },
            Msg::RoundDone { round: 2, sent: 10 },
            Msg::Missing { ranges: vec![(1, 4), (9, 10)], count: 4 },
            Msg::Trailer { hash: "ab".repeat(32) },
            Msg::Verdict { bytes: 3, hash: "00".into(), verified: false, reason: Some("short".into()) },
        ];
        let failed = Msg::Failed { reason: "No space left on device".into() };
        let mut wire = Vec::new();
        for m in &msgs {
            send_msg(&mut wire, m, &mut wd()).unwrap();
        }
        let mut r = &wire[..];
        for m in &msgs {
            assert_eq!(recv_msg(&mut r, &mut wd()).unwrap().as_ref(), Some(m));
        }
        assert_eq!(recv_msg(&mut r, &mut wd()).unwrap(), None);
        // A Failed arrives as an error that names the peer and carries its reason.
        let wire = failed.encode();
        let e = recv_msg(&mut &wire[..], &mut wd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(e.to_string(), "test peer says: No space left on device");
    }

    #[test]
    fn rejects_wrong_magic_oversize_truncation_and_garbage() {
        let mut bad = Msg::Received { bytes: 1 }.encode();
        bad[0] = b'X';
        let e = recv_msg(&mut &bad[..], &mut wd()).unwrap_err();
        assert!(e.to_string().contains("does not speak zclab"), "{e}");

        let mut big = MAGIC.to_vec();
        big.extend_from_slice(&((MAX_MSG as u32) + 1).to_be_bytes());
        assert!(recv_msg(&mut &big[..], &mut wd()).unwrap_err().to_string().contains("exceeds"));

        let full = Msg::Trailer { hash: "aa".into() }.encode();
        let cut = &full[..full.len() - 2];
        assert_eq!(recv_msg(&mut &cut[..], &mut wd()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);

        let mut junk = MAGIC.to_vec();
        junk.extend_from_slice(&3u32.to_be_bytes());
        junk.extend_from_slice(b"{x}");
        assert_eq!(recv_msg(&mut &junk[..], &mut wd()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
