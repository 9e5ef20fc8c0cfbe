//! UDP (RFC 768): ports, a length, and a checksum that IPv6 requires.

use super::checksum::Ones;
use super::{ethernet, ipv4, ipv6, WireError, ETH_HEADER_LEN, IPV6_HEADER_LEN};
use etherparse::{EtherType, IpNumber, UdpHeader};

pub const UDP_HEADER_LEN: usize = 8;

/// The bytes an IPv6 UDP checksum covers: the pseudo-header, then
/// `udp_len` bytes of the frame from `udp_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChecksumSpan {
    pseudo: u16,
    udp_at: usize,
    udp_len: usize,
}

impl ChecksumSpan {
    /// True if the checksum is right. `parts` are the frame's bytes in
    /// order (one slice, or one per descriptor).
    pub(super) fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        let c = self;
        let mut sum = Ones::default();
        sum.add_word(c.pseudo);
        let (mut at, end) = (0usize, c.udp_at + c.udp_len);
        for part in parts {
            let (lo, hi) = (at.max(c.udp_at), (at + part.len()).min(end));
            if lo < hi {
                sum.add_bytes(&part[lo - at..hi - at]);
            }
            at += part.len();
        }
        // A valid checksum makes the whole sum all ones; zero means "none", which IPv6 forbids.
        sum.fold() == 0xffff && c.udp_len >= UDP_HEADER_LEN && !udp_checksum_is_zero(parts, c.udp_at + 6)
    }
}

/// True if the two bytes at `at` of the frame (split over `parts`) are both zero.
fn udp_checksum_is_zero(parts: &[&[u8]], at: usize) -> bool {
    parts.iter().flat_map(|p| p.iter()).skip(at).take(2).all(|b| *b == 0)
}

/// Where a frame's UDP payload lies, its headers checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame {
    /// Offset of the UDP payload's first byte in the frame.
    pub payload_at: usize,
    /// Its length, as the UDP header says (and the frame holds).
    pub payload_len: usize,
    pub(super) v6: Option<ChecksumSpan>,
}

impl UdpFrame {
    /// True unless the frame is IPv6 and its UDP checksum is wrong. `parts`
    /// are the frame's bytes in order (one slice, or one per descriptor).
    pub fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        self.v6.is_none_or(|c| c.checksum_ok(parts))
    }
}

/// Parses Ethernet, IP and UDP of a frame of `total` bytes addressed to UDP
/// `port` from `head`, its first bytes. Lengths are checked against `total`.
pub fn parse_udp_headers(head: &[u8], total: usize, port: u16) -> Result<(UdpFrame, &[u8]), WireError> {
    let head = &head[..head.len().min(total)];
    let (ether_type, rest) = ethernet::parse(head)?;
    let (ip_len, ip_payload, rest, v6) = match ether_type {
        EtherType::IPV4 => {
            let (ip, rest) = ipv4::parse(rest)?;
            if ip.protocol != IpNumber::UDP {
                return Err(WireError::NotUdp);
            }
            if ip.fragment {
                return Err(WireError::BadIpv4);
            }
            (ip.header_len, ip.payload_len.ok_or(WireError::BadIpv4)?, rest, None)
        }
        EtherType::IPV6 => {
            let (next_header, len, pseudo, rest) = ipv6::parse(rest)?;
            // The lab sends no extension headers: UDP follows at once, or the frame is not ours.
            if next_header != IpNumber::UDP {
                return Err(WireError::NotUdp);
            }
            (IPV6_HEADER_LEN, len, rest, Some(pseudo))
        }
        _ => return Err(WireError::NotIp),
    };
    let udp_at = ETH_HEADER_LEN + ip_len;
    // Ethernet may pad short frames; the IP length is the truth, and must fit.
    if udp_at + ip_payload > total {
        return Err(WireError::Truncated);
    }
    let (udp, rest) = UdpHeader::from_slice(rest).map_err(|_| WireError::Truncated)?;
    if udp.destination_port != port {
        return Err(WireError::WrongPort);
    }
    if udp.length as usize != ip_payload || ip_payload < UDP_HEADER_LEN {
        return Err(WireError::BadUdp);
    }
    let v6 = v6.map(|pseudo| ChecksumSpan { pseudo, udp_at, udp_len: ip_payload });
    let f = UdpFrame { payload_at: udp_at + UDP_HEADER_LEN, payload_len: ip_payload - UDP_HEADER_LEN, v6 };
    Ok((f, rest))
}
