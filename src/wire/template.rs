//! The headers of one direction of a transfer: Ethernet, IP, UDP and the
//! lab header, written in front of a payload the CPU does not touch.

use super::lab::{LabHeader, FRAME_HEADER_LEN, FRAME_HEADER_LEN_V6, LAB_HEADER_LEN};
use super::{ethernet, ipv4, ipv6, pseudo_header_sum_v6, ETH_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};
use etherparse::{EtherType, IpNumber, UdpHeader};
use std::net::IpAddr;

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
                ipv4::write(src, dst, IpNumber::UDP, udp_len, &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN]);
                (EtherType::IPV4, IPV4_HEADER_LEN)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                ipv6::write(src, dst, IpNumber::UDP, udp_len, &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV6_HEADER_LEN]);
                (EtherType::IPV6, IPV6_HEADER_LEN)
            }
            _ => unreachable!("a template's addresses are of one family"),
        };
        ethernet::write(self.src_mac, self.dst_mac, ether_type, &mut out[..ETH_HEADER_LEN]);
        let checksum = match (self.src_ip, self.dst_ip) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => pseudo_header_sum_v6(&src.octets(), &dst.octets(), udp_len),
            _ => 0,
        };
        let udp = UdpHeader { source_port: self.src_port, destination_port: self.dst_port, length: udp_len, checksum };
        let u = ETH_HEADER_LEN + ip_len;
        out[u..u + UDP_HEADER_LEN].copy_from_slice(&udp.to_bytes());
    }
}
