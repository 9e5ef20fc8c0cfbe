//! The packet paths' wire format: pure bytes, testable without sockets.
//!
//! ```text
//! | Ethernet 14 | IPv4 20 or IPv6 40 | UDP 8 | lab header 24 | payload (file bytes) |
//!                                  magic "ZCLB"        u32
//!                                  transfer id         u32
//!                                  offset in file      u64
//!                                  payload length      u32
//!                                  flags               u16 (bit 0: resent)
//!                                  reserved            u16
//! ```
//! All fields big-endian. The kernel UDP path (udp-gso) sends only the UDP
//! payload (lab header + file bytes); AF_XDP builds the whole frame.
//!
//! The UDP checksum: IPv4 frames carry none (0 means "none" in IPv4). IPv6
//! requires one, over every payload byte, which the af-xdp sender's CPU
//! must not read: its frames carry the pseudo-header's sum in the field and
//! ask the kernel to finish it (AF_XDP TX metadata, `XDP_TXMD_FLAGS_CHECKSUM`:
//! a NIC in hardware, copy mode in software as it copies). The receiver
//! checks IPv6 checksums and drops a frame whose sum is wrong.
//! Parsing is checked: every length is validated once, then nothing panics.

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, UdpHeader};
use std::net::IpAddr;

pub const LAB_MAGIC: [u8; 4] = *b"ZCLB";
pub const LAB_HEADER_LEN: usize = 24;
pub const ETH_HEADER_LEN: usize = 14;
pub const IPV4_HEADER_LEN: usize = 20;
pub const IPV6_HEADER_LEN: usize = 40;
pub const UDP_HEADER_LEN: usize = 8;
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

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than its headers")]
    Truncated,
    #[error("neither IPv4 nor IPv6")]
    NotIp,
    #[error("malformed IPv4 header")]
    BadIpv4,
    #[error("malformed or extended IPv6 header")]
    BadIpv6,
    #[error("wrong UDP checksum")]
    BadChecksum,
    #[error("not UDP")]
    NotUdp,
    #[error("not for the lab's UDP port")]
    WrongPort,
    #[error("malformed UDP header")]
    BadUdp,
    #[error("no lab magic")]
    BadMagic,
    #[error("payload length disagrees with the packet")]
    BadLength,
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

/// Addresses of one direction of a transfer; makes frame headers. Both
/// addresses are of one family.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

impl FrameTemplate {
    pub fn is_v6(&self) -> bool {
        self.dst_ip.is_ipv6()
    }

    /// Bytes in front of the payload: 66 (IPv4) or 86 (IPv6).
    pub fn header_len(&self) -> usize {
        if self.is_v6() {
            FRAME_HEADER_LEN_V6
        } else {
            FRAME_HEADER_LEN
        }
    }

    /// Where the kernel must finish the UDP checksum (IPv6 only): the
    /// offset of the UDP header in the frame, and of the checksum in it.
    pub fn checksum_request(&self) -> Option<(u16, u16)> {
        self.is_v6().then_some(((ETH_HEADER_LEN + IPV6_HEADER_LEN) as u16, 6))
    }

    /// Bytes of Ethernet, IP and UDP: 42 (IPv4) or 62 (IPv6).
    pub fn udp_header_len(&self) -> usize {
        self.header_len() - LAB_HEADER_LEN
    }

    /// Writes Ethernet, IP and UDP and the lab header for a payload of
    /// `lab.len` bytes into `out` (exactly `header_len()` bytes). IPv4: with
    /// its header checksum, UDP checksum 0 (none). IPv6: the UDP checksum
    /// field holds the pseudo-header's sum, for the kernel to finish.
    pub fn write_header(&self, lab: &LabHeader, out: &mut [u8]) {
        assert_eq!(out.len(), self.header_len(), "a header buffer of the family's length");
        let u = self.udp_header_len();
        self.write_udp_headers(LAB_HEADER_LEN as u16 + lab.len as u16, &mut out[..u]);
        out[u..].copy_from_slice(&lab.to_bytes());
    }

    /// Writes Ethernet, IP and UDP for a UDP payload of `payload_len` bytes
    /// into `out` (exactly `udp_header_len()` bytes), checksums as
    /// [`Self::write_header`] says.
    pub fn write_udp_headers(&self, payload_len: u16, out: &mut [u8]) {
        assert_eq!(out.len(), self.udp_header_len(), "a header buffer of the family's length");
        let udp_len = UDP_HEADER_LEN as u16 + payload_len;
        let (ether_type, ip_len) = match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut ip = Ipv4Header::new(udp_len, 64, IpNumber::UDP, src.octets(), dst.octets())
                    .expect("payload fits: lengths are checked against the MTU");
                ip.header_checksum = ip.calc_header_checksum();
                out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN].copy_from_slice(&ip.to_bytes());
                (EtherType::IPV4, IPV4_HEADER_LEN)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: udp_len,
                    next_header: IpNumber::UDP,
                    hop_limit: 64,
                    source: src.octets(),
                    destination: dst.octets(),
                };
                out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV6_HEADER_LEN].copy_from_slice(&ip.to_bytes());
                (EtherType::IPV6, IPV6_HEADER_LEN)
            }
            _ => unreachable!("a template's addresses are of one family"),
        };
        let eth = Ethernet2Header { source: self.src_mac, destination: self.dst_mac, ether_type };
        out[..ETH_HEADER_LEN].copy_from_slice(&eth.to_bytes());
        let checksum = match (self.src_ip, self.dst_ip) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => pseudo_header_sum_v6(&src.octets(), &dst.octets(), udp_len),
            _ => 0,
        };
        let udp = UdpHeader { source_port: self.src_port, destination_port: self.dst_port, length: udp_len, checksum };
        let u = ETH_HEADER_LEN + ip_len;
        out[u..u + UDP_HEADER_LEN].copy_from_slice(&udp.to_bytes());
    }
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

/// The bytes an IPv6 UDP checksum covers: the pseudo-header, then
/// `udp_len` bytes of the frame from `udp_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChecksumSpan {
    pseudo: u16,
    udp_at: usize,
    udp_len: usize,
}

impl FrameHeaders {
    /// True unless the frame is IPv6 and its UDP checksum is wrong. `parts`
    /// are the frame's bytes in order (one slice, or one per descriptor).
    pub fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        let Some(c) = self.v6 else { return true };
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

/// A ones'-complement sum of big-endian 16-bit words, fed in pieces of
/// any length (an odd piece's last byte pairs with the next piece's first).
#[derive(Default)]
struct Ones {
    sum: u64,
    odd: Option<u8>,
}

impl Ones {
    fn add_word(&mut self, w: u16) {
        self.sum += w as u64;
    }

    fn add_bytes(&mut self, mut b: &[u8]) {
        if let Some(hi) = self.odd.take() {
            match b.split_first() {
                Some((lo, rest)) => {
                    self.add_word(u16::from_be_bytes([hi, *lo]));
                    b = rest;
                }
                None => {
                    self.odd = Some(hi);
                    return;
                }
            }
        }
        let mut words = b.chunks_exact(2);
        for w in words.by_ref() {
            self.sum += u16::from_be_bytes([w[0], w[1]]) as u64;
        }
        self.odd = words.remainder().first().copied();
    }

    fn fold(mut self) -> u16 {
        if let Some(hi) = self.odd.take() {
            self.add_word(u16::from_be_bytes([hi, 0]));
        }
        let mut s = self.sum;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }
}

/// Where a frame's UDP payload lies, its headers checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame {
    /// Offset of the UDP payload's first byte in the frame.
    pub payload_at: usize,
    /// Its length, as the UDP header says (and the frame holds).
    pub payload_len: usize,
    v6: Option<ChecksumSpan>,
}

impl UdpFrame {
    /// True unless the frame is IPv6 and its UDP checksum is wrong (see
    /// [`FrameHeaders::checksum_ok`]).
    pub fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        FrameHeaders { lab: LabHeader { transfer_id: 0, offset: 0, len: 0, flags: 0 }, payload_at: 0, v6: self.v6 }
            .checksum_ok(parts)
    }
}

/// Parses Ethernet, IP and UDP of a frame of `total` bytes addressed to UDP
/// `port` from `head`, its first bytes. Lengths are checked against `total`.
pub fn parse_udp_headers(head: &[u8], total: usize, port: u16) -> Result<(UdpFrame, &[u8]), WireError> {
    let head = &head[..head.len().min(total)];
    let (eth, rest) = Ethernet2Header::from_slice(head).map_err(|_| WireError::Truncated)?;
    let (ip_len, ip_payload, rest, v6) = match eth.ether_type {
        EtherType::IPV4 => {
            let (ip, rest) = Ipv4Header::from_slice(rest).map_err(|e| match e {
                etherparse::err::ipv4::HeaderSliceError::Len(_) => WireError::Truncated,
                _ => WireError::BadIpv4,
            })?;
            if ip.protocol != IpNumber::UDP {
                return Err(WireError::NotUdp);
            }
            if ip.more_fragments || ip.fragment_offset.value() != 0 {
                return Err(WireError::BadIpv4);
            }
            let ip_payload = (ip.total_len as usize).checked_sub(ip.header_len()).ok_or(WireError::BadIpv4)?;
            (ip.header_len(), ip_payload, rest, None)
        }
        EtherType::IPV6 => {
            let (ip, rest) = Ipv6Header::from_slice(rest).map_err(|e| match e {
                etherparse::err::ipv6::HeaderSliceError::Len(_) => WireError::Truncated,
                _ => WireError::BadIpv6,
            })?;
            // The lab sends no extension headers: UDP follows at once, or the frame is not ours.
            if ip.next_header != IpNumber::UDP {
                return Err(WireError::NotUdp);
            }
            let len = ip.payload_length;
            let pseudo = pseudo_header_sum_v6(&ip.source, &ip.destination, len);
            (IPV6_HEADER_LEN, len as usize, rest, Some(pseudo))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn template() -> FrameTemplate {
        FrameTemplate {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 77, 0, 1).into(),
            dst_ip: Ipv4Addr::new(10, 77, 0, 2).into(),
            src_port: 40000,
            dst_port: 7777,
        }
    }

    fn frame(lab: &LabHeader, payload: &[u8]) -> Vec<u8> {
        let mut h = [0u8; FRAME_HEADER_LEN];
        template().write_header(lab, &mut h);
        let mut f = h.to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn macs_round_trip() {
        let m = [0x02, 0xab, 0, 1, 0xff, 0x10];
        assert_eq!(format_mac(&m), "02:ab:00:01:ff:10");
        assert_eq!(parse_mac("02:ab:00:01:ff:10"), Some(m));
        for bad in ["", "02:ab:00:01:ff", "02:ab:00:01:ff:10:11", "zz:ab:00:01:ff:10"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn payload_follows_the_mtu() {
        assert_eq!(payload_for_mtu(1500), Some(1448));
        assert_eq!(payload_for_mtu(9000), Some(8948));
        assert_eq!(payload_for_mtu(52), None);
    }

    #[test]
    fn frame_is_valid_for_etherparse_and_round_trips() {
        let lab = LabHeader { transfer_id: 9, offset: 1448 * 3, len: 5, flags: FLAG_RESENT };
        let f = frame(&lab, b"hello");
        let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        assert!(matches!(sliced.net, Some(etherparse::NetSlice::Ipv4(_))));
        let (h, p) = parse_frame(&f, 7777).unwrap();
        assert_eq!((h, p), (lab, &b"hello"[..]));
        // The IPv4 checksum is right: recomputing it over the header gives 0.
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..34]).unwrap().to_header();
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
    }

    /// A frame of known fields against bytes written out by hand (smoltcp's
    /// style): a change of layout, byte order or checksum shows here.
    #[test]
    fn frame_matches_golden_bytes() {
        #[rustfmt::skip]
        let golden: [u8; FRAME_HEADER_LEN + 5] = [
            // Ethernet: destination, source, EtherType IPv4
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x08, 0x00,
            // IPv4: version 4 + IHL 5, DSCP 0, total length 57 (20 + 8 + 24 + 5)
            0x45, 0x00, 0x00, 0x39,
            // identification 0, flags: don't fragment, fragment offset 0
            0x00, 0x00, 0x40, 0x00,
            // TTL 64, protocol 17 (UDP), header checksum 0x2618 (ones' complement sum by hand)
            0x40, 0x11, 0x26, 0x18,
            // source 10.77.0.1, destination 10.77.0.2
            0x0a, 0x4d, 0x00, 0x01,
            0x0a, 0x4d, 0x00, 0x02,
            // UDP: source port 40000, destination port 7777, length 37, checksum 0 (none)
            0x9c, 0x40, 0x1e, 0x61, 0x00, 0x25, 0x00, 0x00,
            // lab header: magic "ZCLB", transfer id, offset 1448, length 5, flags (resent), reserved
            b'Z', b'C', b'L', b'B',
            0x01, 0x02, 0x03, 0x04,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xa8,
            0x00, 0x00, 0x00, 0x05,
            0x00, 0x01, 0x00, 0x00,
            // payload
            b'h', b'e', b'l', b'l', b'o',
        ];
        let lab = LabHeader { transfer_id: 0x0102_0304, offset: 1448, len: 5, flags: FLAG_RESENT };
        assert_eq!(frame(&lab, b"hello"), golden);
        let (h, p) = parse_frame(&golden, 7777).unwrap();
        assert_eq!((h, p), (lab, &b"hello"[..]));
    }

    #[test]
    fn malformed_frames_are_named() {
        let lab = LabHeader { transfer_id: 1, offset: 0, len: 4, flags: 0 };
        let good = frame(&lab, b"abcd");
        assert_eq!(parse_frame(&good, 7778).unwrap_err(), WireError::WrongPort);
        assert_eq!(parse_frame(&good[..20], 7777).unwrap_err(), WireError::Truncated);
        let mut bad = good.clone();
        bad[12..14].copy_from_slice(&[0x86, 0xdd]); // EtherType IPv6
        assert_eq!(parse_frame(&bad, 7777).unwrap_err(), WireError::BadIpv6, "an IPv4 packet read as IPv6");
        let mut bad = good.clone();
        bad[12] = 0x88; // neither
        assert_eq!(parse_frame(&bad, 7777).unwrap_err(), WireError::NotIp);
        let mut bad = good.clone();
        bad[FRAME_HEADER_LEN - LAB_HEADER_LEN] ^= 0xff;
        assert_eq!(parse_frame(&bad, 7777).unwrap_err(), WireError::BadMagic);
        // The lab header claims more bytes than the packet has.
        let lying = LabHeader { len: 400, ..lab };
        let mut h = [0u8; FRAME_HEADER_LEN];
        template().write_header(&lying, &mut h);
        let mut f = h.to_vec();
        f.extend_from_slice(b"abcd");
        assert!(parse_frame(&f, 7777).is_err());
        assert_eq!(LabHeader::parse(&[0u8; 10]).unwrap_err(), WireError::Truncated);
    }

    fn template_v6() -> FrameTemplate {
        FrameTemplate {
            src_ip: "fd77::1".parse::<Ipv6Addr>().unwrap().into(),
            dst_ip: "fd77::2".parse::<Ipv6Addr>().unwrap().into(),
            ..template()
        }
    }

    /// What the kernel does with a CHECKSUM_PARTIAL request: sums from the
    /// UDP header to the end (the field holds the pseudo-header's sum),
    /// folds, inverts, and writes the result into the field.
    fn finish_checksum(f: &mut [u8], start: usize, offset: usize) {
        let mut sum: u32 = f[start..].chunks(2).map(|w| u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = match !(sum as u16) {
            0 => 0xffff,
            c => c,
        };
        f[start + offset..start + offset + 2].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn an_ipv6_frame_is_valid_once_the_kernel_finishes_its_checksum() {
        let t = template_v6();
        assert_eq!(t.header_len(), 86);
        assert_eq!(payload_for(1500, true), Some(1428));
        let lab = LabHeader { transfer_id: 3, offset: 1428 * 2, len: 7, flags: 0 };
        let mut f = vec![0u8; t.header_len()];
        t.write_header(&lab, &mut f);
        f.extend_from_slice(b"payload");
        assert_eq!(parse_frame(&f, 7777).unwrap_err(), WireError::BadChecksum, "a partial sum is not a checksum");
        let (start, offset) = t.checksum_request().unwrap();
        assert_eq!((start, offset), (54, 6));
        finish_checksum(&mut f, start as usize, offset as usize);
        assert!(matches!(etherparse::SlicedPacket::from_ethernet(&f).unwrap().net, Some(etherparse::NetSlice::Ipv6(_))));
        assert_eq!(parse_frame(&f, 7777).unwrap(), (lab, &b"payload"[..]));
        // One flipped payload bit, and the frame is dropped.
        let last = f.len() - 1;
        f[last] ^= 1;
        assert_eq!(parse_frame(&f, 7777).unwrap_err(), WireError::BadChecksum);
        assert_eq!(template().checksum_request(), None, "IPv4 frames carry no UDP checksum");
    }

    /// A packet in several descriptors: headers read from the first, the
    /// checksum summed across all of them, at any split (odd ones too).
    #[test]
    fn a_frame_in_pieces_parses_and_checks_out_like_a_whole_one() {
        for t in [template(), template_v6()] {
            let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7 % 251) as u8).collect();
            let lab = LabHeader { transfer_id: 5, offset: 0, len: payload.len() as u32, flags: 0 };
            let mut f = vec![0u8; t.header_len()];
            t.write_header(&lab, &mut f);
            f.extend_from_slice(&payload);
            if let Some((start, offset)) = t.checksum_request() {
                finish_checksum(&mut f, start as usize, offset as usize);
            }
            for cut in [t.header_len(), t.header_len() + 1, 1001, 2048, f.len() - 1] {
                for cut2 in [cut + 1, cut + 777, f.len()] {
                    let cut2 = cut2.min(f.len());
                    let parts: [&[u8]; 3] = [&f[..cut], &f[cut..cut2], &f[cut2..]];
                    let h = parse_headers(parts[0], f.len(), 7777).unwrap();
                    assert_eq!((h.lab, h.payload_at), (lab, t.header_len()));
                    assert!(h.checksum_ok(&parts), "v6 {} cut {cut} {cut2}", t.is_v6());
                }
            }
            let mut bad = f.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x10;
            let parts: [&[u8]; 2] = [&bad[..1500], &bad[1500..]];
            let h = parse_headers(parts[0], bad.len(), 7777).unwrap();
            assert_eq!(h.checksum_ok(&parts), !t.is_v6(), "IPv6 catches a flipped bit in the last piece; IPv4 has no checksum");
            assert_eq!(
                parse_headers(&f[..t.header_len()], f.len() - 1, 7777).unwrap_err(),
                WireError::Truncated,
                "one byte short in all"
            );
        }
    }

    proptest! {
        #[test]
        fn ipv6_frames_of_any_payload_check_out(payload in proptest::collection::vec(any::<u8>(), 0..300), id: u32) {
            let t = template_v6();
            let lab = LabHeader { transfer_id: id, offset: 0, len: payload.len() as u32, flags: 0 };
            let mut f = vec![0u8; t.header_len()];
            t.write_header(&lab, &mut f);
            f.extend_from_slice(&payload);
            finish_checksum(&mut f, 54, 6);
            prop_assert_eq!(parse_frame(&f, 7777).unwrap(), (lab, &payload[..]));
        }

        #[test]
        fn lab_header_round_trips(id: u32, offset: u64, payload in proptest::collection::vec(any::<u8>(), 0..64), flags: u16) {
            let h = LabHeader { transfer_id: id, offset, len: payload.len() as u32, flags };
            let mut b = h.to_bytes().to_vec();
            b.extend_from_slice(&payload);
            let (h2, p2) = LabHeader::parse(&b).unwrap();
            prop_assert_eq!(h2, h);
            prop_assert_eq!(p2, &payload[..]);
        }

        #[test]
        fn parsing_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_frame(&bytes, 7777);
            let _ = LabHeader::parse(&bytes);
        }
    }
}
