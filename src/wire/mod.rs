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
//! One file per layer, bottom up: `ethernet.rs`, `ipv4.rs`, `ipv6.rs`,
//! `checksum.rs` (the Internet checksum they share), `udp.rs`, `tcp.rs`
//! (zclab's own TCP's segments, with their options), `lab.rs`
//! (the lab header and whole lab frames), and `template.rs`, which writes
//! the headers of one direction of a transfer.
//!
//! The UDP checksum: IPv4 frames carry none (0 means "none" in IPv4). IPv6
//! requires one, over every payload byte, which the af-xdp sender's CPU
//! must not read: its frames carry the pseudo-header's sum in the field and
//! ask the kernel to finish it (AF_XDP TX metadata, `XDP_TXMD_FLAGS_CHECKSUM`:
//! a NIC in hardware, copy mode in software as it copies). The receiver
//! checks IPv6 checksums and drops a frame whose sum is wrong.
//! Parsing is checked: every length is validated once, then nothing panics.

mod checksum;
mod ethernet;
mod ipv4;
mod ipv6;
mod lab;
mod tcp;
mod template;
mod udp;

pub use ethernet::{format_mac, parse_mac, ETH_HEADER_LEN};
pub use ipv4::IPV4_HEADER_LEN;
pub use ipv6::{pseudo_header_sum_v6, IPV6_HEADER_LEN};
pub use lab::{
    parse_frame, parse_headers, payload_for, payload_for_mtu, FrameHeaders, LabHeader, FLAG_RESENT, FRAME_HEADER_LEN,
    FRAME_HEADER_LEN_V6, LAB_HEADER_LEN, LAB_MAGIC,
};
pub use tcp::{
    finish_checksum, parse_tcp_frame, parse_unreachable, pseudo_header_sum, tcp_checksum, write_tcp_frame_headers,
    TcpChecksumSpan, TcpFlags, TcpFrame, TcpOptions, TcpSegment, Unreachable, TCP_CHECKSUM_OFFSET, TCP_HEADER_LEN,
};
pub use template::FrameTemplate;
pub use udp::{parse_udp_headers, UdpFrame, UDP_HEADER_LEN};

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
    #[error("not TCP")]
    NotTcp,
    #[error("malformed TCP header or options")]
    BadTcp,
    #[error("not for the lab's UDP port")]
    WrongPort,
    #[error("malformed UDP header")]
    BadUdp,
    #[error("no lab magic")]
    BadMagic,
    #[error("payload length disagrees with the packet")]
    BadLength,
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
