//! Ethernet II: two MAC addresses and an EtherType, 14 bytes.

use super::WireError;
use etherparse::{EtherType, Ethernet2Header};

pub const ETH_HEADER_LEN: usize = 14;

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Writes the header into `out` (exactly 14 bytes).
pub(super) fn write(src: [u8; 6], dst: [u8; 6], ether_type: EtherType, out: &mut [u8]) {
    out.copy_from_slice(&Ethernet2Header { source: src, destination: dst, ether_type }.to_bytes());
}

/// The EtherType of a frame, and what follows the header.
pub(super) fn parse(frame: &[u8]) -> Result<(EtherType, &[u8]), WireError> {
    let (eth, rest) = Ethernet2Header::from_slice(frame).map_err(|_| WireError::Truncated)?;
    Ok((eth.ether_type, rest))
}
