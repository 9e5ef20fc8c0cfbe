//! The server's side of `latency` and `rate`: wait for a client, hear what
//! it will send, open the path, then answer every message (latency) or
//! count every message (rate) until the client says it is done, and tell
//! it what this end saw and paid.

use super::control::StreamCount;
use super::control::{Control, Done, Hello, Kind, Ready, Verdict, VERSION};
use super::rate::Counter;
use super::{check_size, iface_mac, iface_mtu, EndConfig, EndCost, Link, Mode};
use crate::metrics::CostMeter;
use crate::trace::Testimony;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long one wait for messages lasts before the server looks at its
/// control connection and at Ctrl-C: a blocking end sleeps through it; an
/// end that spins or busy-polls burns it, so its slice is short (the idle
/// time after the last message would otherwise be charged to the messages).
fn slice(wait: super::Wait) -> Duration {
    match wait {
        super::Wait::Block => Duration::from_millis(50),
        _ => Duration::from_millis(1),
    }
}
/// How often a server that is busy with messages looks at the control connection.
const LOOK: Duration = Duration::from_millis(10);
/// After the client's Done: the quiet that ends a rate session, and the most it waits.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// A validated server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub end: EndConfig,
    /// Give up if no client comes within this long.
    pub accept_timeout: Option<Duration>,
    /// Which workload this server takes (a client of the other is refused).
    pub kind: Kind,
}

/// What the server saw of one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    pub kind: Kind,
    pub mode: Mode,
    pub size: usize,
    pub client: String,
    pub server: EndCost,
    pub stream: Option<StreamCount>,
}

/// Accepts one connection, waiting up to `timeout` (forever: None).
fn accept(listener: &TcpListener, timeout: Option<Duration>, what: &str) -> Result<TcpStream> {
    let start = Instant::now();
    loop {
        crate::interrupt::check()?;
        if crate::sys::socket::poll_one(listener, libc::POLLIN, 100)? != 0 {
            let (s, _) = listener.accept()?;
            s.set_nonblocking(false)?;
            return Ok(s);
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            bail!("no {what} within {:.1} s", timeout.unwrap_or_default().as_secs_f64());
        }
    }
}

/// Serves one session.
pub fn serve(cfg: &ServeConfig) -> Result<ServerReport> {
    let listener = TcpListener::bind(cfg.listen)
        .with_context(|| format!("cannot listen on {} (is the address one of this namespace's? `ip addr`)", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let mut ctl = Control::new(accept(&listener, cfg.accept_timeout, "client")?)?;
    let hello: Hello = ctl.recv(Duration::from_secs(3), "Hello")?;
    if let Err(why) = check_hello(&hello, cfg.kind, ctl.local()) {
        let _ = ctl.send(&Ready { mac: None, refused: Some(why.clone()) });
        bail!("refused a client: {why}");
    }
    let mut link = match open(&hello, &mut ctl, &listener, &cfg.end) {
        Ok(l) => l,
        Err(e) => {
            let _ = ctl.send(&Ready { mac: None, refused: Some(format!("{e:#}")) });
            return Err(e);
        }
    };
    let mut clock = Clock::new(cfg.end.trace);
    let (messages, stream) = match hello.kind {
        Kind::Latency => (echo(&mut *link, &mut ctl, cfg.end.timeout, slice(cfg.end.wait), &mut clock)?, None),
        Kind::Rate => {
            let c = count(&mut *link, &mut ctl, cfg.end.timeout, slice(cfg.end.wait), &mut clock)?;
            (c.delivered + c.duplicated, Some(c))
        }
    };
    let info = link.info();
    let (meter, syscalls_before, testimony) =
        clock.started.unwrap_or_else(|| (CostMeter::start(), info.syscalls, clock.testimony.take().expect("not started")));
    let cost = meter.finish(info.syscalls - syscalls_before);
    let kernel = testimony.finish();
    let server = EndCost::new(cfg.end.wait, cost, messages, info, kernel);
    ctl.send(&Verdict { server: server.clone(), stream: stream.clone(), error: None })?;
    Ok(ServerReport { kind: hello.kind, mode: hello.mode, size: hello.size, client: ctl.peer().to_string(), server, stream })
}

/// What a server refuses before it opens anything.
fn check_hello(h: &Hello, kind: Kind, local: SocketAddr) -> Result<(), String> {
    if h.version != VERSION {
        return Err(format!(
            "control protocol version {} (this server speaks {VERSION}): run the same zclab on both ends",
            h.version
        ));
    }
    if h.kind != kind {
        return Err(format!("this server takes {} sessions, not {}", kind.name(), h.kind.name()));
    }
    if h.kind == Kind::Latency && h.mode == Mode::UdpMmsg {
        return Err("udp-mmsg batches messages, and a ping-pong has one in flight: use udp".into());
    }
    check_size(h.mode, h.size, iface_mtu(local.ip()))
}

/// Opens the server's end of the path and says Ready.
fn open(hello: &Hello, ctl: &mut Control, listener: &TcpListener, end: &EndConfig) -> Result<Box<dyn Link>> {
    let (local, peer) = (ctl.local(), ctl.peer());
    let link: Box<dyn Link> = match hello.mode {
        Mode::Tcp => {
            ctl.send(&Ready { mac: None, refused: None })?;
            let s = accept(listener, Some(Duration::from_secs(5)), "TCP data connection from the client")?;
            return Ok(Box::new(super::tcp::TcpLink::new(s, hello, end)?));
        }
        Mode::Udp | Mode::UdpMmsg => {
            let sock = UdpSocket::bind(local).with_context(|| format!("cannot bind UDP {local}"))?;
            let to = SocketAddr::new(peer.ip(), hello.udp_port);
            if hello.mode == Mode::Udp {
                Box::new(super::udp::UdpLink::new(sock, to, hello, end)?)
            } else {
                Box::new(super::udp_mmsg::MmsgLink::new(sock, to, hello, end)?)
            }
        }
        Mode::AfXdp => Box::new(super::af_xdp::XdpLink::open(local, peer, local.port(), hello.mac.as_deref(), hello, end, true)?),
    };
    ctl.send(&Ready { mac: iface_mac(local.ip()), refused: None })?;
    Ok(link)
}

/// The server's costs are counted from the first message on: the time
/// before it (the client opening its end of the path) is not the path's.
struct Clock {
    testimony: Option<Testimony>,
    started: Option<(CostMeter, u64, Testimony)>,
}

impl Clock {
    fn new(trace: bool) -> Clock {
        Clock { testimony: Some(Testimony::prepare(trace, None, None)), started: None }
    }

    /// The first message came: the costs count from here (less that message's call).
    fn first(&mut self, link: &dyn Link) {
        if self.started.is_none() {
            let mut t = self.testimony.take().expect("prepared once");
            t.start();
            self.started = Some((CostMeter::start(), link.info().syscalls.saturating_sub(1), t));
        }
    }
}

/// Answers messages until the client is done; returns how many.
fn echo(link: &mut dyn Link, ctl: &mut Control, timeout: Duration, slice: Duration, clock: &mut Clock) -> Result<u64> {
    let (mut echoed, mut last_msg, mut last_look) = (0u64, Instant::now(), Instant::now());
    loop {
        let n = link.echo(slice)?;
        let now = Instant::now();
        if n > 0 {
            clock.first(link);
            echoed += n as u64;
            last_msg = now;
        }
        if link.closed() {
            let _: Done = ctl.recv(Duration::from_secs(3), "Done")?;
            return Ok(echoed);
        }
        // Idle for a slice, or busy for a while: look at the control connection.
        if n == 0 || now - last_look >= LOOK {
            last_look = now;
            crate::interrupt::check()?;
            if ctl.readable()? {
                let _: Done = ctl.recv(Duration::from_secs(3), "Done")?;
                return Ok(echoed);
            }
            if now - last_msg > timeout {
                bail!("no message from the client for {:.1} s (--timeout)", timeout.as_secs_f64());
            }
        }
    }
}

/// Counts messages until the client is done and the stragglers are in.
fn count(link: &mut dyn Link, ctl: &mut Control, timeout: Duration, slice: Duration, clock: &mut Clock) -> Result<StreamCount> {
    let mut c = Counter::default();
    let (mut done, mut last_look, started) = (None::<(u64, Instant)>, Instant::now(), Instant::now());
    loop {
        let n = link.receive(slice, &mut |seq| c.note(seq))?;
        let now = Instant::now();
        if n > 0 {
            clock.first(link);
            c.mark(now);
        }
        match done {
            None if n == 0 || now - last_look >= LOOK => {
                last_look = now;
                crate::interrupt::check()?;
                if ctl.readable()? {
                    let d: Done = ctl.recv(Duration::from_secs(3), "Done")?;
                    done = Some((d.sent, now));
                } else if now - c.last.unwrap_or(started) > timeout {
                    bail!("no message from the client for {:.1} s (--timeout)", timeout.as_secs_f64());
                }
            }
            Some((sent, at)) => {
                let quiet = now - c.last.unwrap_or(at) > DRAIN_QUIET && now - at > DRAIN_QUIET;
                if c.delivered >= sent || link.closed() || quiet || now - at > DRAIN_MAX {
                    return Ok(c.finish());
                }
            }
            None => {}
        }
    }
}
