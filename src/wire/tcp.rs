//! TCP (RFC 9293): a segment's header with the options zclab's TCP speaks
//! (MSS, window scale from RFC 7323, SACK-permitted and SACK blocks from
//! RFC 2018), written into a frame and read back out of one, checked.
//!
//! The checksum covers a pseudo-header, the TCP header and the payload. The
//! payload of zclab's own segments lies in UMEM frames apart from the header
//! (where the disk put it), so the sum is fed in parts; or it is left to the
//! device: the field then holds the pseudo-header's sum, folded and not
//! inverted, and the device (or the kernel's copy path) finishes it.

use super::checksum::Ones;
use super::{ethernet, ipv4, ipv6, WireError, ETH_HEADER_LEN, IPV6_HEADER_LEN};
use etherparse::{EtherType, IpNumber, TcpHeader, TcpOptionElement};
use std::net::{IpAddr, SocketAddr};

/// A header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// Where the checksum field sits in the TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;

/// The control bits zclab's TCP uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

impl TcpFlags {
    pub const ACK: TcpFlags = TcpFlags { syn: false, ack: true, fin: false, rst: false, psh: false };

    /// As tcpdump writes them: `S`, `.`, `F`, `R`, `P`.
    pub fn show(&self) -> String {
        let mut s = String::new();
        for (on, c) in [(self.syn, 'S'), (self.fin, 'F'), (self.rst, 'R'), (self.psh, 'P'), (self.ack, '.')] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// The options of a segment that zclab reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// The window scale shift (RFC 7323), at most 14.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks (left, right edge), at most four.
    pub sack: Vec<(u32, u32)>,
}

/// A segment's header, without the ports' owners: what the state machine
/// reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpSegment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The window field as sent (not scaled).
    pub window: u16,
    pub options: TcpOptions,
}

/// A TCP header's bytes, on the stack (at most 60).
#[derive(Clone, Copy)]
pub struct TcpHeaderBytes {
    buf: [u8; TcpHeader::MAX_LEN],
    len: usize,
}

impl std::ops::Deref for TcpHeaderBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for TcpHeaderBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl TcpSegment {
    /// The header's bytes (with its options, padded to 32-bit words), the
    /// checksum field zero. Nothing is allocated: a sender writes one per segment.
    pub fn header_bytes(&self) -> TcpHeaderBytes {
        let mut h = TcpHeader::new(self.src_port, self.dst_port, self.seq, self.window);
        h.acknowledgment_number = self.ack;
        h.syn = self.flags.syn;
        h.ack = self.flags.ack;
        h.fin = self.flags.fin;
        h.rst = self.flags.rst;
        h.psh = self.flags.psh;
        let mut opts = [const { TcpOptionElement::Noop }; 7];
        let mut n = 0;
        let mut push = |o: TcpOptionElement| {
            opts[n] = o;
            n += 1;
        };
        if let Some(m) = self.options.mss {
            push(TcpOptionElement::MaximumSegmentSize(m));
        }
        if self.options.sack_permitted {
            push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some(w) = self.options.window_scale {
            push(TcpOptionElement::Noop);
            push(TcpOptionElement::WindowScale(w));
        }
        if let Some((&first, rest)) = self.options.sack.split_first() {
            let mut more = [None; 3];
            for (slot, b) in more.iter_mut().zip(rest) {
                *slot = Some(*b);
            }
            push(TcpOptionElement::Noop);
            push(TcpOptionElement::Noop);
            push(TcpOptionElement::SelectiveAcknowledgement(first, more));
        }
        h.set_options(&opts[..n]).expect("the options zclab writes fit in 40 bytes");
        let bytes = h.to_bytes();
        let mut out = TcpHeaderBytes { buf: [0; TcpHeader::MAX_LEN], len: bytes.len() };
        out.buf[..bytes.len()].copy_from_slice(&bytes);
        out
    }

    /// Sequence space the segment takes: its payload, plus one for SYN and one for FIN.
    pub fn seq_len(&self, payload_len: usize) -> u32 {
        payload_len as u32 + self.flags.syn as u32 + self.flags.fin as u32
    }
}

/// The bytes a TCP checksum covers: the pseudo-header's sum, then
/// `tcp_len` bytes of the frame from `tcp_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpChecksumSpan {
    pub pseudo: u16,
    pub tcp_at: usize,
    pub tcp_len: usize,
}

impl TcpChecksumSpan {
    /// True if the checksum over the frame's bytes (`parts`, in order: one
    /// slice, or one per descriptor) is right.
    pub fn checksum_ok(&self, parts: &[&[u8]]) -> bool {
        sum_span(self.pseudo, self.tcp_at, self.tcp_len, parts) == 0xffff
    }
}

/// The ones'-complement sum of `pseudo` and `len` bytes from `at` of the
/// frame split over `parts`.
fn sum_span(pseudo: u16, at: usize, len: usize, parts: &[&[u8]]) -> u16 {
    let mut sum = Ones::default();
    sum.add_word(pseudo);
    let (mut pos, end) = (0usize, at + len);
    for part in parts {
        let (lo, hi) = (pos.max(at), (pos + part.len()).min(end));
        if lo < hi {
            sum.add_bytes(&part[lo - pos..hi - pos]);
        }
        pos += part.len();
    }
    sum.fold()
}

/// The pseudo-header's sum (folded, not inverted) for `tcp_len` bytes of TCP
/// between two addresses of one family: what the checksum field holds when
/// the device is to finish it.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, tcp_len: usize) -> u16 {
    let mut sum = Ones::default();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum.add_bytes(&s.octets());
            sum.add_bytes(&d.octets());
            sum.add_word(IpNumber::TCP.0 as u16);
            sum.add_word(tcp_len as u16);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum.add_bytes(&s.octets());
            sum.add_bytes(&d.octets());
            sum.add_word((tcp_len >> 16) as u16);
            sum.add_word(tcp_len as u16);
            sum.add_word(IpNumber::TCP.0 as u16);
        }
        _ => panic!("a pseudo-header needs two addresses of one family"),
    }
    sum.fold()
}

/// The checksum of a segment whose header (with the field zero) and
/// payload are `parts`, in order, starting at the TCP header.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, parts: &[&[u8]]) -> u16 {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let sum = sum_span(pseudo_header_sum(src, dst, len), 0, len, parts);
    !sum
}

/// Writes Ethernet, IP and the TCP header of `seg` into `out` for a payload
/// of `payload_len` bytes; returns the headers' length and where the TCP
/// header starts. The checksum field
/// holds the pseudo-header's sum (to be finished by the device, or over the
/// payload with [`finish_checksum`]).
#[allow(clippy::too_many_arguments)]
pub fn write_tcp_frame_headers(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment,
    payload_len: usize,
    out: &mut [u8],
) -> (usize, usize) {
    let tcp = seg.header_bytes();
    let tcp_len = tcp.len() + payload_len;
    let ip_len = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ethernet::write(src_mac, dst_mac, EtherType::IPV4, &mut out[..ETH_HEADER_LEN]);
            ipv4::write(s, d, IpNumber::TCP, tcp_len as u16, &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + 20]);
            20
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ethernet::write(src_mac, dst_mac, EtherType::IPV6, &mut out[..ETH_HEADER_LEN]);
            ipv6::write(s, d, IpNumber::TCP, tcp_len as u16, &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV6_HEADER_LEN]);
            IPV6_HEADER_LEN
        }
        _ => panic!("a frame needs two addresses of one family"),
    };
    let at = ETH_HEADER_LEN + ip_len;
    out[at..at + tcp.len()].copy_from_slice(&tcp);
    let pseudo = pseudo_header_sum(src, dst, tcp_len);
    out[at + TCP_CHECKSUM_OFFSET..at + TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&pseudo.to_be_bytes());
    (at + tcp.len(), at)
}

/// Finishes a checksum that [`write_tcp_frame_headers`] seeded: sums the
/// TCP header from `tcp_at` of `headers` and every byte of `payload` (in
/// parts), and writes the result into the field. Returns the payload bytes
/// the CPU read for it.
pub fn finish_checksum(headers: &mut [u8], tcp_at: usize, payload: &[&[u8]]) -> u64 {
    let field = tcp_at + TCP_CHECKSUM_OFFSET;
    let mut sum = Ones::default();
    // The seed in the field is the pseudo-header's sum: summing the header
    // with it in place adds it exactly once.
    sum.add_bytes(&headers[tcp_at..]);
    let mut read = 0u64;
    for p in payload {
        sum.add_bytes(p);
        read += p.len() as u64;
    }
    let c = !sum.fold();
    headers[field..field + 2].copy_from_slice(&c.to_be_bytes());
    read
}

/// A TCP segment read out of a frame, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFrame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub segment: TcpSegment,
    /// Offset of the payload's first byte in the frame, and its length.
    pub payload_at: usize,
    pub payload_len: usize,
    /// What the checksum covers, to be checked over the frame's parts.
    pub checksum: TcpChecksumSpan,
}

/// Parses Ethernet, IP and TCP of a frame of `total` bytes, of which `head`
/// holds the first (at least the headers). Lengths are checked against
/// `total`; the checksum is not (see [`TcpChecksumSpan::checksum_ok`]).
pub fn parse_tcp_frame(head: &[u8], total: usize) -> Result<TcpFrame, WireError> {
    let head = &head[..head.len().min(total)];
    let (ether_type, rest) = ethernet::parse(head)?;
    let (ip_len, ip_payload, rest, src, dst) = match ether_type {
        EtherType::IPV4 => {
            let (ip, rest) = ipv4::parse(rest)?;
            if ip.protocol != IpNumber::TCP {
                return Err(WireError::NotTcp);
            }
            if ip.fragment {
                return Err(WireError::BadIpv4);
            }
            let (s, d) = ipv4::addresses(&head[ETH_HEADER_LEN..]);
            (ip.header_len, ip.payload_len.ok_or(WireError::BadIpv4)?, rest, IpAddr::V4(s), IpAddr::V4(d))
        }
        EtherType::IPV6 => {
            let (next_header, len, _, rest) = ipv6::parse(rest)?;
            if next_header != IpNumber::TCP {
                return Err(WireError::NotTcp);
            }
            let (s, d) = ipv6::addresses(&head[ETH_HEADER_LEN..]);
            (IPV6_HEADER_LEN, len, rest, IpAddr::V6(s), IpAddr::V6(d))
        }
        _ => return Err(WireError::NotIp),
    };
    let tcp_at = ETH_HEADER_LEN + ip_len;
    if tcp_at + ip_payload > total {
        return Err(WireError::Truncated);
    }
    let (h, _) = TcpHeader::from_slice(rest).map_err(|e| match e {
        etherparse::err::tcp::HeaderSliceError::Len(_) => WireError::Truncated,
        _ => WireError::BadTcp,
    })?;
    if h.header_len() > ip_payload {
        return Err(WireError::BadTcp);
    }
    let mut options = TcpOptions::default();
    for o in h.options_iterator() {
        match o.map_err(|_| WireError::BadTcp)? {
            TcpOptionElement::MaximumSegmentSize(m) => options.mss = Some(m),
            TcpOptionElement::WindowScale(w) => options.window_scale = Some(w.min(14)),
            TcpOptionElement::SelectiveAcknowledgementPermitted => options.sack_permitted = true,
            TcpOptionElement::SelectiveAcknowledgement(first, more) => {
                options.sack.push(first);
                options.sack.extend(more.iter().flatten());
            }
            _ => {}
        }
    }
    let segment = TcpSegment {
        src_port: h.source_port,
        dst_port: h.destination_port,
        seq: h.sequence_number,
        ack: h.acknowledgment_number,
        flags: TcpFlags { syn: h.syn, ack: h.ack, fin: h.fin, rst: h.rst, psh: h.psh },
        window: h.window_size,
        options,
    };
    let checksum = TcpChecksumSpan { pseudo: pseudo_header_sum(src, dst, ip_payload), tcp_at, tcp_len: ip_payload };
    Ok(TcpFrame { src, dst, segment, payload_at: tcp_at + h.header_len(), payload_len: ip_payload - h.header_len(), checksum })
}

/// An ICMP or ICMPv6 "destination unreachable" that quotes a TCP segment
/// (RFC 792, RFC 4443): what the quoted segment was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// The quoted segment's source and destination, ports and sequence number.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub code: u8,
}

/// Reads an ICMP(v6) destination unreachable out of a frame, its checksum
/// checked; None for anything else.
pub fn parse_unreachable(frame: &[u8]) -> Option<Unreachable> {
    let (ether_type, rest) = ethernet::parse(frame).ok()?;
    let (icmp, inner_v6, pseudo) = match ether_type {
        EtherType::IPV4 => {
            let (ip, rest) = ipv4::parse(rest).ok()?;
            if ip.protocol != IpNumber::ICMP || ip.fragment {
                return None;
            }
            let len = ip.payload_len?.min(rest.len());
            (&rest[..len], false, None)
        }
        EtherType::IPV6 => {
            let (next, len, _, rest) = ipv6::parse(rest).ok()?;
            if next != IpNumber::IPV6_ICMP {
                return None;
            }
            let (s, d) = ipv6::addresses(&frame[ETH_HEADER_LEN..]);
            let len = len.min(rest.len());
            let mut sum = Ones::default();
            sum.add_bytes(&s.octets());
            sum.add_bytes(&d.octets());
            sum.add_word((len >> 16) as u16);
            sum.add_word(len as u16);
            sum.add_word(IpNumber::IPV6_ICMP.0 as u16);
            (&rest[..len], true, Some(sum.fold()))
        }
        _ => return None,
    };
    let unreachable_type = if inner_v6 { 1 } else { 3 };
    if icmp.len() < 8 || icmp[0] != unreachable_type {
        return None;
    }
    let mut sum = Ones::default();
    if let Some(p) = pseudo {
        sum.add_word(p);
    }
    sum.add_bytes(icmp);
    if sum.fold() != 0xffff {
        return None;
    }
    let quote = &icmp[8..];
    let (src, dst, tcp) = if inner_v6 {
        if quote.len() < IPV6_HEADER_LEN + 8 || quote[6] != IpNumber::TCP.0 {
            return None;
        }
        let (s, d) = ipv6::addresses(quote);
        (IpAddr::V6(s), IpAddr::V6(d), &quote[IPV6_HEADER_LEN..])
    } else {
        let ihl = (*quote.first()? & 0x0f) as usize * 4;
        if quote.len() < ihl + 8 || ihl < 20 || quote[9] != IpNumber::TCP.0 {
            return None;
        }
        let (s, d) = ipv4::addresses(quote);
        (IpAddr::V4(s), IpAddr::V4(d), &quote[ihl..])
    };
    let port = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
    Some(Unreachable {
        src: SocketAddr::new(src, port(0)),
        dst: SocketAddr::new(dst, port(2)),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        code: icmp[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn syn() -> TcpSegment {
        TcpSegment {
            src_port: 40000,
            dst_port: 80,
            seq: 0xfffffff0,
            ack: 0,
            flags: TcpFlags { syn: true, ..Default::default() },
            window: 65535,
            options: TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, sack: vec![] },
        }
    }

    fn frame(src: IpAddr, dst: IpAddr, seg: &TcpSegment, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 200 + payload.len()];
        let (n, tcp_at) = write_tcp_frame_headers(A, B, src, dst, seg, payload.len(), &mut f);
        finish_checksum(&mut f[..n], tcp_at, &[payload]);
        f.truncate(n);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_segment_reads_back_as_written_with_its_options_over_ipv4_and_ipv6() {
        let v4 = (IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)));
        let v6 = (IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1)), IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2)));
        for (src, dst) in [v4, v6] {
            let mut data = syn();
            let f = frame(src, dst, &data, b"");
            let p = parse_tcp_frame(&f, f.len()).unwrap();
            assert_eq!((p.src, p.dst), (src, dst));
            assert_eq!(p.segment, data);
            assert_eq!(p.payload_len, 0);
            assert!(p.checksum.checksum_ok(&[&f]));
            // Data with SACK blocks, the payload in a part of its own.
            data.flags = TcpFlags { ack: true, psh: true, ..Default::default() };
            data.options = TcpOptions { sack: vec![(5, 9), (20, 30)], ..Default::default() };
            let payload: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
            let f = frame(src, dst, &data, &payload);
            let p = parse_tcp_frame(&f, f.len()).unwrap();
            assert_eq!(p.segment, data);
            assert_eq!(&f[p.payload_at..p.payload_at + p.payload_len], &payload[..]);
            let (h, body) = f.split_at(p.payload_at);
            assert!(p.checksum.checksum_ok(&[h, body]), "the sum over two parts");
            // One bit off anywhere in the payload, and the sum says so.
            let mut bad = f.clone();
            *bad.last_mut().unwrap() ^= 0x10;
            assert!(!p.checksum.checksum_ok(&[&bad]));
        }
    }

    #[test]
    fn our_checksum_agrees_with_etherparse() {
        let (s, d) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
        let seg = syn();
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let f = frame(s.into(), d.into(), &seg, payload);
        let (h, _) = TcpHeader::from_slice(&f[ETH_HEADER_LEN + 20..]).unwrap();
        assert_eq!(h.calc_checksum_ipv4_raw(s.octets(), d.octets(), payload).unwrap(), h.checksum);
        let parts: [&[u8]; 2] = [&seg.header_bytes(), payload];
        assert_eq!(tcp_checksum(s.into(), d.into(), &parts), h.checksum);
    }

    #[test]
    fn frames_that_are_not_tcp_or_lie_about_lengths_are_refused() {
        let (s, d) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let f = frame(s, d, &syn(), b"abc");
        assert_eq!(parse_tcp_frame(&f, f.len() - 1), Err(WireError::Truncated));
        let mut udp = f.clone();
        udp[ETH_HEADER_LEN + 9] = 17;
        assert_eq!(parse_tcp_frame(&udp, udp.len()), Err(WireError::NotTcp));
        // A data offset past the IP payload.
        let mut off = f.clone();
        off[ETH_HEADER_LEN + 20 + 12] = 0xf0;
        assert!(parse_tcp_frame(&off, off.len()).is_err());
        // Any prefix of a frame parses or is refused; it never panics.
        for n in 0..f.len() {
            let _ = parse_tcp_frame(&f[..n], n);
        }
    }

    #[test]
    fn a_seeded_checksum_is_the_pseudo_header_sum() {
        let (s, d) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let seg = syn();
        let mut f = vec![0u8; 100];
        let (_, tcp_at) = write_tcp_frame_headers(A, B, s, d, &seg, 10, &mut f);
        let at = tcp_at + TCP_CHECKSUM_OFFSET;
        let seed = u16::from_be_bytes([f[at], f[at + 1]]);
        assert_eq!(seed, pseudo_header_sum(s, d, seg.header_bytes().len() + 10));
    }

    #[test]
    fn an_icmp_port_unreachable_names_the_segment_it_quotes() {
        let (s, d) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
        let syn_frame = frame(s.into(), d.into(), &syn(), b"");
        // What the peer's kernel sends back: ICMP type 3 code 3, quoting our IP header and 8 bytes of TCP.
        let quote = &syn_frame[ETH_HEADER_LEN..ETH_HEADER_LEN + 28];
        let mut icmp = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(quote);
        let mut sum = Ones::default();
        sum.add_bytes(&icmp);
        let c = !sum.fold();
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0u8; ETH_HEADER_LEN + 20];
        ethernet::write(B, A, EtherType::IPV4, &mut f[..ETH_HEADER_LEN]);
        ipv4::write(d, s, IpNumber::ICMP, icmp.len() as u16, &mut f[ETH_HEADER_LEN..]);
        f.extend_from_slice(&icmp);
        let u = parse_unreachable(&f).expect("an unreachable");
        assert_eq!(u.src, SocketAddr::new(s.into(), 40000));
        assert_eq!(u.dst, SocketAddr::new(d.into(), 80));
        assert_eq!((u.seq, u.code), (0xfffffff0, 3));
        // A wrong checksum, or a TCP frame: not one.
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse_unreachable(&bad), None);
        assert_eq!(parse_unreachable(&syn_frame), None);
    }
}
