//! Interfaces by name and address: index, MAC, MTU (getifaddrs, ioctl).
//! The AF_XDP paths need them to bind a socket and to build frames; the
//! AF_XDP layer itself (`xsk`) works with an interface index only.

use super::cvt;
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `if_nametoindex`; an error names the interface.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: `c` is a valid C string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name:?} in this network namespace (`ip link`)"),
        ));
    }
    Ok(i)
}

/// The interface that holds the IPv4 address `ip` (getifaddrs).
pub fn iface_with_addr(ip: IpAddr) -> io::Result<Option<String>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`; we free it below.
    cvt(unsafe { libc::getifaddrs(&mut list) })?;
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned, which stays valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points at a sockaddr owned by the list.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as libc::c_int;
            let addr = match family {
                libc::AF_INET => {
                    // SAFETY: for AF_INET the sockaddr is a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    Some(IpAddr::from(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
                }
                libc::AF_INET6 => {
                    // SAFETY: for AF_INET6 the sockaddr is a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    Some(IpAddr::from(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                }
                _ => None,
            };
            {
                if addr == Some(ip) {
                    // SAFETY: ifa_name is a NUL-terminated string owned by the list.
                    let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                    found = Some(name.to_string_lossy().into_owned());
                    break;
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// A plain datagram socket of the caller's namespace, for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes plain integers.
    let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: s is fresh and owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

/// An `ifreq` that names interface `name` (refused if too long for IFNAMSIZ).
fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("interface name {name:?} too long")));
    }
    // SAFETY: ifreq is a plain C struct; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = b as libc::c_char;
    }
    Ok(req)
}

/// The MAC address and MTU of interface `name` (SIOCGIFHWADDR, SIOCGIFMTU).
pub fn iface_mac_mtu(name: &str) -> io::Result<([u8; 6], u32)> {
    let mut req = ifreq_named(name)?;
    let s = ioctl_socket()?;
    // SAFETY: `req` is a live ifreq carrying the name; the kernel fills the union.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *m = *b as u8;
    }
    // SAFETY: as above, for SIOCGIFMTU (fills ifru_mtu).
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: SIOCGIFMTU filled ifru_mtu.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok((mac, mtu))
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `ETHTOOL_GCHANNELS`.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// The queues interface `name` has in use now, (RX, TX): its RX (or TX)
/// channels plus its combined ones (`ETHTOOL_GCHANNELS`, as `ethtool -l`
/// shows under "Current"). A veth made without `numrxqueues` has one.
pub fn queues(name: &str) -> io::Result<(u32, u32)> {
    let mut req = ifreq_named(name)?;
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    let s = ioctl_socket()?;
    // SAFETY: `req` names the interface and points at `ch`, a live
    // ethtool_channels the kernel fills; both outlive the call.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut req) })?;
    Ok((ch.rx_count + ch.combined_count, ch.tx_count + ch.combined_count))
}

/// Watches one interface: up (`IFF_UP`) and with carrier (`IFF_RUNNING`),
/// by `SIOCGIFFLAGS` on a socket of the caller's namespace. A TCP sender
/// whose link went down sees no error, only silence; this names the cause.
pub struct LinkWatch {
    sock: OwnedFd,
    pub name: String,
    born: std::time::Instant,
    /// Milliseconds after `born` before which [`Self::down_now`] does not ask again.
    next_check_ms: std::sync::atomic::AtomicU64,
}

/// How often [`LinkWatch::down_now`] asks the kernel at most: busy loops
/// call it on every idle turn.
const LINK_CHECK_EVERY_MS: u64 = 50;

impl LinkWatch {
    pub fn new(name: &str) -> io::Result<LinkWatch> {
        ifreq_named(name)?;
        let w = LinkWatch {
            sock: ioctl_socket()?,
            name: name.to_string(),
            born: std::time::Instant::now(),
            next_check_ms: std::sync::atomic::AtomicU64::new(0),
        };
        w.flags()?;
        Ok(w)
    }

    fn flags(&self) -> io::Result<libc::c_short> {
        let mut req = ifreq_named(&self.name)?;
        // SAFETY: `req` is a live ifreq carrying the name; the kernel fills ifru_flags.
        cvt(unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: SIOCGIFFLAGS filled ifru_flags.
        Ok(unsafe { req.ifr_ifru.ifru_flags })
    }

    /// As [`Self::down`], but asks the kernel at most every 50 ms (None between).
    pub fn down_now(&self) -> Option<&'static str> {
        use std::sync::atomic::Ordering;
        let now = self.born.elapsed().as_millis() as u64;
        if now < self.next_check_ms.load(Ordering::Relaxed) {
            return None;
        }
        self.next_check_ms.store(now + LINK_CHECK_EVERY_MS, Ordering::Relaxed);
        self.down()
    }

    /// None while the link is up with carrier; else what is wrong with it.
    pub fn down(&self) -> Option<&'static str> {
        match self.flags() {
            Err(_) => Some("gone"),
            Ok(f) if f & libc::IFF_UP as libc::c_short == 0 => Some("down (set down)"),
            Ok(f) if f & libc::IFF_RUNNING as libc::c_short == 0 => Some("without carrier (its peer is down)"),
            Ok(_) => None,
        }
    }
}
