//! IPv4 (RFC 791): a 20-byte header without options when the lab writes
//! one; any valid header when it reads, fragments refused.

use super::WireError;
use etherparse::{IpNumber, Ipv4Header};
use std::net::Ipv4Addr;

pub const IPV4_HEADER_LEN: usize = 20;

/// Writes a header for `payload_len` bytes of `protocol`, with its header
/// checksum, into `out` (exactly 20 bytes).
pub(super) fn write(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpNumber, payload_len: u16, out: &mut [u8]) {
    let mut ip = Ipv4Header::new(payload_len, 64, protocol, src.octets(), dst.octets())
        .expect("payload fits: lengths are checked against the MTU");
    ip.header_checksum = ip.calc_header_checksum();
    out.copy_from_slice(&ip.to_bytes());
}

/// The source and destination of a header that [`parse`] accepted.
pub(super) fn addresses(header: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let a = |i: usize| Ipv4Addr::new(header[i], header[i + 1], header[i + 2], header[i + 3]);
    (a(12), a(16))
}

/// What a checked IPv4 header says.
pub(super) struct Ipv4Part {
    pub header_len: usize,
    pub protocol: IpNumber,
    /// Bytes after the header, by its total length (None: a total shorter than the header).
    pub payload_len: Option<usize>,
    /// A fragment (more to come, or not the first): the lab sends none.
    pub fragment: bool,
}

/// Checks an IPv4 header; returns what it says and what follows it in `bytes`.
pub(super) fn parse(bytes: &[u8]) -> Result<(Ipv4Part, &[u8]), WireError> {
    let (ip, rest) = Ipv4Header::from_slice(bytes).map_err(|e| match e {
        etherparse::err::ipv4::HeaderSliceError::Len(_) => WireError::Truncated,
        _ => WireError::BadIpv4,
    })?;
    let fragment = ip.more_fragments || ip.fragment_offset.value() != 0;
    let payload_len = (ip.total_len as usize).checked_sub(ip.header_len());
    Ok((Ipv4Part { header_len: ip.header_len(), protocol: ip.protocol, payload_len, fragment }, rest))
}
