//! The lab header (24 bytes after UDP: magic, transfer id, offset in the
//! file, payload length, flags) and whole lab frames.

use super::udp::{parse_udp_headers, ChecksumSpan};
use super::{WireError, ETH_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};

pub const LAB_MAGIC: [u8; 4] = *b"ZCLB";
pub const LAB_HEADER_LEN: usize = 24;
/// Bytes in front of the payload in a whole IPv4 frame.
pub const FRAME_HEADER_LEN: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + LAB_HEADER_LEN;
/// Bytes in front of the payload in a whole IPv6 frame.
pub const FRAME_HEADER_LEN_V6: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN + LAB_HEADER_LEN;
/// Flag: this packet is a retransmission.
pub const FLAG_RESENT: u16 = 1;

/// Payload bytes per packet for an MTU (IPv4 + UDP + lab header inside it).
pub fn payload_for_mtu(mtu: u32) -> Option<u32> {
    payload_for(mtu, false)
}

/// Payload bytes per packet for an MTU, over IPv6 (`v6`) or IPv4.
pub fn payload_for(mtu: u32, v6: bool) -> Option<u32> {
    let ip = if v6 { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN };
    mtu.checked_sub((ip + UDP_HEADER_LEN + LAB_HEADER_LEN) as u32).filter(|p| *p > 0)
}

/// The lab header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabHeader {
    pub transfer_id: u32,
    pub offset: u64,
    pub len: u32,
    pub flags: u16,
}

impl LabHeader {
    pub fn to_bytes(&self) -> [u8; LAB_HEADER_LEN] {
        let mut b = [0u8; LAB_HEADER_LEN];
        b[0..4].copy_from_slice(&LAB_MAGIC);
        b[4..8].copy_from_slice(&self.transfer_id.to_be_bytes());
        b[8..16].copy_from_slice(&self.offset.to_be_bytes());
        b[16..20].copy_from_slice(&self.len.to_be_bytes());
        b[20..22].copy_from_slice(&self.flags.to_be_bytes());
        b
    }

    /// Parses the header at the start of `bytes`; the rest may be any length.
    pub fn parse_head(bytes: &[u8]) -> Result<(LabHeader, &[u8]), WireError> {
        let Some((h, rest)) = bytes.split_first_chunk::<LAB_HEADER_LEN>() else {
            return Err(WireError::Truncated);
        };
        if h[0..4] != LAB_MAGIC {
            return Err(WireError::BadMagic);
        }
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let hdr = LabHeader {
            transfer_id: be32(4),
            offset: u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")),
            len: be32(16),
            flags: u16::from_be_bytes([h[20], h[21]]),
        };
        Ok((hdr, rest))
    }

    /// Parses a UDP payload: the header, then exactly `len` payload bytes.
    pub fn parse(udp_payload: &[u8]) -> Result<(LabHeader, &[u8]), WireError> {
        let (hdr, rest) = Self::parse_head(udp_payload)?;
        if rest.len() != hdr.len as usize {
            return Err(WireError::BadLength);
        }
        Ok((hdr, rest))
    }
}

/// What a frame's headers say: the lab header, where the payload starts,
/// and (IPv6) what its UDP checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeaders {
    pub lab: LabHeader,
    /// Offset of the first payload byte in the frame.
    pub payload_at: usize,
    /// IPv6: the checksum must be checked (see [`FrameHeaders::checksum_ok`]).
    v6: Option<ChecksumSpan>,
}

impl FrameHeaders {
    /// True unless the frame is IPv6 and its UDP checksum is wrong. `parts`
    /// are the frame's bytes in order (one slice, or one per descriptor).
    pub fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        self.v6.is_none_or(|c| c.checksum_ok(parts))
    }
}

/// Parses a frame of `total` bytes addressed to UDP `port` from `head`,
/// its first bytes, which must hold every header (a multi-buffer packet's
/// first descriptor does). Lengths are checked against `total`.
pub fn parse_headers(head: &[u8], total: usize, port: u16) -> Result<FrameHeaders, WireError> {
    let (udp, rest) = parse_udp_headers(head, total, port)?;
    let (lab, _) = LabHeader::parse_head(rest)?;
    let payload_at = udp.payload_at + LAB_HEADER_LEN;
    if udp.payload_len.checked_sub(LAB_HEADER_LEN) != Some(lab.len as usize) {
        return Err(if udp.payload_len < LAB_HEADER_LEN { WireError::Truncated } else { WireError::BadLength });
    }
    Ok(FrameHeaders { lab, payload_at, v6: udp.v6 })
}

/// Parses a whole Ethernet frame addressed to UDP `port`.
pub fn parse_frame(frame: &[u8], port: u16) -> Result<(LabHeader, &[u8]), WireError> {
    let h = parse_headers(frame, frame.len(), port)?;
    if !h.checksum_ok(&[frame]) {
        return Err(WireError::BadChecksum);
    }
    Ok((h.lab, &frame[h.payload_at..h.payload_at + h.lab.len as usize]))
}
