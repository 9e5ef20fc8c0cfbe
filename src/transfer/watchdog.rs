//! A peer that stops answering must give a clear error within seconds,
//! never a hang. Sockets carry a short timeout (`IO_TICK`); each time a call
//! returns without progress the loop asks the watchdog, which fails once no
//! byte has moved for `limit`, and also notices Ctrl-C.

use std::io;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Watchdog {
    limit: Duration,
    last: Instant,
    what: &'static str,
    /// The local interface to the peer: a link that goes down ends the wait at once.
    link: Option<std::sync::Arc<crate::sys::iface::LinkWatch>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("limit", &self.limit).field("what", &self.what).finish()
    }
}

impl Watchdog {
    /// `what` names the peer in the error, e.g. "the receiver".
    pub fn new(limit: Duration, what: &'static str) -> Watchdog {
        Watchdog { limit, last: Instant::now(), what, link: None }
    }

    /// A watchdog for another thread of the same transfer: the same limit,
    /// peer and link, its clock started now.
    pub fn fork(&self) -> Watchdog {
        Watchdog { limit: self.limit, last: Instant::now(), what: self.what, link: self.link.clone() }
    }

    /// Also fail as soon as `link` is down or loses carrier.
    pub fn watch_link(mut self, link: crate::sys::iface::LinkWatch) -> Watchdog {
        self.link = Some(std::sync::Arc::new(link));
        self
    }

    /// The peer's name, as in "the receiver".
    pub fn peer(&self) -> &'static str {
        self.what
    }

    /// Something moved: reset the clock. Also the place busy loops learn
    /// of Ctrl-C, since they may never be idle.
    pub fn progress(&mut self) -> io::Result<()> {
        self.last = Instant::now();
        crate::interrupt::check()
    }

    /// Nothing moved this time: fail if it has been too long or Ctrl-C came.
    pub fn idle(&self) -> io::Result<()> {
        crate::interrupt::check()?;
        if let Some(l) = &self.link {
            if let Some(why) = l.down_now() {
                return Err(io::Error::new(
                    io::ErrorKind::NetworkDown,
                    format!("the link to {} is down: interface {} is {why}", self.what, l.name),
                ));
            }
        }
        if self.last.elapsed() >= self.limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} has not answered for {:.0} s (gone, or the link is down); raise --timeout if it is only slow",
                    self.what,
                    self.limit.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }

    /// True for the errors a socket with a timeout returns when nothing moved.
    pub fn is_idle_error(e: &io::Error) -> bool {
        matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_only_after_the_limit() {
        let mut w = Watchdog::new(Duration::from_millis(50), "the peer");
        assert!(w.idle().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        let e = w.idle().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("the peer has not answered"));
        w.progress().unwrap();
        assert!(w.idle().is_ok());
    }
}
