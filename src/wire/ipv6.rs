//! IPv6 (RFC 8200): a 40-byte header, no extension headers (a packet with
//! one is not the lab's), and the pseudo-header its upper layers sum.

use super::WireError;
use etherparse::{IpNumber, Ipv6Header};
use std::net::Ipv6Addr;

pub const IPV6_HEADER_LEN: usize = 40;

/// Writes a header for `payload_len` bytes of `next_header` into `out` (exactly 40 bytes).
pub(super) fn write(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpNumber, payload_len: u16, out: &mut [u8]) {
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: payload_len,
        next_header,
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
    };
    out.copy_from_slice(&ip.to_bytes());
}

/// The source and destination of a header that [`parse`] accepted.
pub(super) fn addresses(header: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let a = |i: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&header[i..i + 16]).expect("a checked header"));
    (a(8), a(24))
}

/// A checked IPv6 header: the next header, the payload length, the
/// pseudo-header's sum for that length, and what follows it in `bytes`.
pub(super) fn parse(bytes: &[u8]) -> Result<(IpNumber, usize, u16, &[u8]), WireError> {
    let (ip, rest) = Ipv6Header::from_slice(bytes).map_err(|e| match e {
        etherparse::err::ipv6::HeaderSliceError::Len(_) => WireError::Truncated,
        _ => WireError::BadIpv6,
    })?;
    let len = ip.payload_length;
    Ok((ip.next_header, len as usize, pseudo_header_sum_v6(&ip.source, &ip.destination, len), rest))
}

/// The IPv6 pseudo-header's ones'-complement sum, folded and not inverted:
/// what a UDP checksum field holds while the rest is left to the kernel
/// (CHECKSUM_PARTIAL).
pub fn pseudo_header_sum_v6(src: &[u8; 16], dst: &[u8; 16], udp_len: u16) -> u16 {
    let mut sum: u32 = src.chunks(2).chain(dst.chunks(2)).map(|w| u16::from_be_bytes([w[0], w[1]]) as u32).sum();
    sum += udp_len as u32 + u8::from(IpNumber::UDP) as u32;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
