//! What a driver says it can do with XDP: the `netdev` generic netlink
//! family (Linux 6.3 and newer), `NETDEV_CMD_DEV_GET`, as
//! `ynl --family netdev --do dev-get` asks it. Reading it disturbs
//! nothing: no program is attached, no socket bound.
//!
//! The messages, by hand (the installed headers are 6.1, older than the
//! family): a `nlmsghdr`, a `genlmsghdr`, then attributes, each a 4-byte
//! header (length, type) and its payload, padded to 4 bytes.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `GENL_ID_CTRL`, `CTRL_CMD_GETFAMILY`, `CTRL_ATTR_FAMILY_ID`, `CTRL_ATTR_FAMILY_NAME`
/// (include/uapi/linux/genetlink.h).
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// include/uapi/linux/netdev.h: `NETDEV_CMD_DEV_GET` and the device attributes.
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;

/// `enum netdev_xdp_act`: what `xdp-features` says, bit by bit.
pub const XDP_FEATURE_NAMES: [(u64, &str); 7] =
    [(1, "basic"), (2, "redirect"), (4, "ndo-xmit"), (8, "xsk-zerocopy"), (16, "hw-offload"), (32, "rx-sg"), (64, "ndo-xmit-sg")];
pub const XDP_ACT_BASIC: u64 = 1;
pub const XDP_ACT_REDIRECT: u64 = 2;
pub const XDP_ACT_XSK_ZEROCOPY: u64 = 8;
pub const XDP_ACT_RX_SG: u64 = 32;

/// A driver's XDP features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct XdpFeatures {
    pub bits: u64,
    /// `xdp-zc-max-segs`: descriptors a zero-copy packet may span.
    pub zc_max_segs: Option<u32>,
}

impl XdpFeatures {
    pub fn has(&self, bit: u64) -> bool {
        self.bits & bit != 0
    }

    /// "basic, redirect, rx-sg".
    pub fn names(&self) -> String {
        let v: Vec<&str> = XDP_FEATURE_NAMES.iter().filter(|(b, _)| self.bits & b != 0).map(|(_, n)| *n).collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// One generic netlink request: header, genl header, attributes.
fn request(family: u16, cmd: u8, version: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    for (kind, payload) in attrs {
        let len = 4 + payload.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&family.to_ne_bytes());
    m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
    m[16] = cmd;
    m[17] = version;
    m
}

/// The attributes of the first message of a reply, or the error it
/// carries (`NLMSG_ERROR`). Every length is checked: a short or lying
/// reply is an error, never a panic.
pub fn parse_reply(buf: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed netlink reply");
    let hdr = buf.get(..16).ok_or_else(bad)?;
    let len = u32::from_ne_bytes(hdr[0..4].try_into().expect("4 bytes")) as usize;
    let kind = u16::from_ne_bytes(hdr[4..6].try_into().expect("2 bytes"));
    let msg = buf.get(..len).filter(|_| len >= 16).ok_or_else(bad)?;
    if kind == libc::NLMSG_ERROR as u16 {
        let err = i32::from_ne_bytes(msg.get(16..20).ok_or_else(bad)?.try_into().expect("4 bytes"));
        return Err(io::Error::from_raw_os_error(-err));
    }
    let mut attrs = Vec::new();
    let mut at = 20; // after the genl header
    while at + 4 <= msg.len() {
        let alen = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
        let akind = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]) & 0x3fff; // less NLA_F_NESTED and friends
        if alen < 4 || at + alen > msg.len() {
            return Err(bad());
        }
        attrs.push((akind, &msg[at + 4..at + alen]));
        at += alen.next_multiple_of(4);
    }
    Ok(attrs)
}

/// Sends `req` on `fd` and reads the reply into `buf`.
fn ask<'b>(fd: &OwnedFd, req: &[u8], buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    // SAFETY: `req` is a live buffer of its length; the kernel only reads it.
    cvt(unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) })?;
    // SAFETY: `buf` is live and writable for its whole length.
    let n = cvt(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(&buf[..n as usize])
}

/// The XDP features of interface `ifindex`, from the kernel's own word;
/// `Ok(None)` if this kernel has no `netdev` family (older than 6.3).
pub fn xdp_features(ifindex: u32) -> io::Result<Option<XdpFeatures>> {
    // SAFETY: socket takes plain integers; the fd is owned right away.
    let fd = cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) })?;
    // SAFETY: a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
    // SAFETY: a live timeval and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    let mut buf = vec![0u8; 16384];
    let family = match parse_reply(ask(
        &fd,
        &request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 2, &[(CTRL_ATTR_FAMILY_NAME, b"netdev\0")]),
        &mut buf,
    )?) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
        Ok(attrs) => attrs
            .iter()
            .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
            .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
            .ok_or_else(|| io::Error::other("the netdev family has no id"))?,
    };
    let req = request(family, NETDEV_CMD_DEV_GET, 1, &[(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())]);
    let attrs = parse_reply(ask(&fd, &req, &mut buf)?)?;
    let bits = attrs
        .iter()
        .find(|(k, v)| *k == NETDEV_A_DEV_XDP_FEATURES && v.len() == 8)
        .map(|(_, v)| u64::from_ne_bytes((*v).try_into().expect("8 bytes")))
        .ok_or_else(|| io::Error::other("the kernel's reply has no xdp-features"))?;
    let zc_max_segs = attrs
        .iter()
        .find(|(k, v)| *k == NETDEV_A_DEV_XDP_ZC_MAX_SEGS && v.len() == 4)
        .map(|(_, v)| u32::from_ne_bytes((*v).try_into().expect("4 bytes")));
    Ok(Some(XdpFeatures { bits, zc_max_segs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_padded_and_its_length_is_the_whole() {
        let r = request(0x10, 3, 2, &[(2, b"netdev\0")]);
        assert_eq!(r.len(), 20 + 4 + 8, "7 bytes of name padded to 8");
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize, r.len());
        assert_eq!(&r[24..31], b"netdev\0");
    }

    #[test]
    fn replies_are_parsed_and_lies_are_refused() {
        // A reply of two attributes: the same layout as a request.
        let r = request(0x20, 1, 1, &[(3, &0x23u64.to_ne_bytes()), (4, &1u32.to_ne_bytes())]);
        let a = parse_reply(&r).unwrap();
        assert_eq!(a, vec![(3, &0x23u64.to_ne_bytes()[..]), (4, &1u32.to_ne_bytes()[..])]);
        let mut lying = r.clone();
        lying[20..22].copy_from_slice(&200u16.to_ne_bytes()); // an attribute longer than the message
        assert!(parse_reply(&lying).is_err());
        assert!(parse_reply(&r[..10]).is_err(), "shorter than a header");
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_reply(&err).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let f = XdpFeatures { bits: 0x23, zc_max_segs: None };
        assert_eq!(f.names(), "basic, redirect, rx-sg");
    }
}
