//! The control connection of `latency` and `rate`: kernel TCP, one JSON
//! object a line. The client says what it will send ([`Hello`]), the
//! server answers when its end of the path is ready ([`Ready`]), the client
//! says when it is done ([`Done`]) and the server answers with what it saw
//! and what it cost ([`Verdict`]). Nothing on it is timed.

use super::{EndCost, Mode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bumped when a message changes shape.
pub const VERSION: u32 = 1;
/// The longest line either end reads: a peer that sends more is not one.
const MAX_LINE: usize = 64 << 10;

/// Which workload a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Latency,
    Rate,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Rate => "rate",
        }
    }
}

/// The client's first word.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub kind: Kind,
    pub mode: Mode,
    /// Bytes per message (the UDP payload, or a TCP message).
    pub size: usize,
    pub session: u32,
    /// The client's UDP port (udp modes): the server's socket connects to it.
    pub udp_port: u16,
    /// The client's MAC (af-xdp), for a server whose neighbour table does not know it.
    pub mac: Option<String>,
}

/// The server's answer to a Hello: ready, or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    /// The server's MAC (af-xdp).
    pub mac: Option<String>,
    /// Set when the server refuses the session.
    pub refused: Option<String>,
}

/// The client is done: how many messages it sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub sent: u64,
}

/// What the server saw and paid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub server: EndCost,
    /// rate: what arrived.
    pub stream: Option<StreamCount>,
    /// Set when the server's side failed.
    pub error: Option<String>,
}

/// What the receiver counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamCount {
    /// Distinct messages that arrived.
    pub delivered: u64,
    /// Messages that arrived again.
    pub duplicated: u64,
    /// Messages that arrived after one with a higher number.
    pub reordered: u64,
    /// Messages numbered beyond what a session may send: dropped.
    pub out_of_range: u64,
    /// Seconds from the first message received to the last.
    pub receive_s: f64,
}

/// One control connection.
pub struct Control {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
}

impl Control {
    pub fn new(stream: TcpStream) -> io::Result<Control> {
        stream.set_nodelay(true)?;
        let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
        Ok(Control { reader: BufReader::new(stream.try_clone()?), stream, local, peer })
    }

    /// Connects to a server, trying again while it is not listening yet
    /// (a server started a moment before), for up to `patience`.
    pub fn connect(to: SocketAddr, patience: Duration) -> io::Result<Control> {
        let start = Instant::now();
        loop {
            match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
                Ok(s) => return Control::new(s),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && start.elapsed() < patience => {
                    crate::interrupt::check()?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot reach the server at {to}: {e} (is `zclab latency|rate --listen` running there?)"),
                    ))
                }
            }
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one message as a line.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
        line.push(b'\n');
        self.stream.write_all(&line)
    }

    /// Reads one message, waiting up to `timeout`; `what` names it in errors.
    pub fn recv<T: DeserializeOwned>(&mut self, timeout: Duration, what: &str) -> io::Result<T> {
        self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut line = String::new();
        let n = (&mut self.reader).take(MAX_LINE as u64).read_line(&mut line).map_err(|e| {
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                io::Error::new(io::ErrorKind::TimedOut, format!("no {what} from the peer within {:.1} s", timeout.as_secs_f64()))
            } else {
                e
            }
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the peer closed the control connection before its {what}"),
            ));
        }
        serde_json::from_str(line.trim_end())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("the peer's {what} is not one zclab reads: {e}")))
    }

    /// True if a line (or the end of the connection) is waiting to be read.
    pub fn readable(&mut self) -> io::Result<bool> {
        if !self.reader.buffer().is_empty() {
            return Ok(true);
        }
        Ok(crate::sys::socket::poll_one(&self.stream, libc::POLLIN, 0)? != 0)
    }
}
