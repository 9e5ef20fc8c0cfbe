//! `setns(2)`: move the calling thread into a named network namespace, the
//! way `ip netns exec` does (without its /sys remount, which zclab does not
//! need).

use super::cvt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where iproute2 keeps the bind mounts that name namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// Enters the network namespace `name` (a file in /var/run/netns). Only
/// the calling thread moves; call it before creating threads or sockets.
pub fn enter(name: &str) -> io::Result<()> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let f = File::open(&path)?;
    // SAFETY: `f` is an open namespace fd for the duration of the call.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}
