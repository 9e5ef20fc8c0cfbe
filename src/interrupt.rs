//! Ctrl-C (SIGINT) and SIGTERM set one flag; every loop that can wait checks
//! it at least twice a second (sockets carry short timeouts for that), so an
//! interrupted run unwinds through the same `Drop`s as a failed one: the
//! temporary output file, the pipe, the io_uring and the namespaces go away.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler. A second Ctrl-C exits at once (status 130).
pub fn install() {
    let res = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = res {
        log::warn!("could not install the Ctrl-C handler: {e}");
    }
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once Ctrl-C or SIGTERM arrived.
pub fn check() -> io::Result<()> {
    if requested() {
        Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted by a signal (Ctrl-C or SIGTERM)"))
    } else {
        Ok(())
    }
}
