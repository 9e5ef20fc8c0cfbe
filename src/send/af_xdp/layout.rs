//! Block layout arithmetic: how the file is cut into blocks of whole packets
//! that start at O_DIRECT-aligned offsets, and where each packet's payload
//! lies in the slot its block is read into (both frame layouts).

/// Aim for blocks of about this size.
pub const BLOCK_TARGET: u64 = 1 << 20;

/// How the file is cut into blocks, and where a block's packets lie in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    /// O_DIRECT alignment of file offsets, lengths and memory (1: buffered reads).
    pub align: u64,
    pub payload: u64,
    pub packets_per_block: u64,
    /// File bytes per block.
    pub block_bytes: u64,
    /// UMEM bytes from one packet's payload to the next: `payload` when the
    /// block is read as one run of file bytes (split frames), a whole cell
    /// when each payload gets room for its header in front (contiguous).
    pub stride: u64,
    /// Where the first payload starts in the slot (0, or the header room).
    pub headroom: u64,
    /// UMEM bytes per slot: a power of two (so a completed address finds
    /// its slot by a shift), at least a chunk.
    pub slot_bytes: u64,
}

/// One run of a block read: `len` bytes (a multiple of the alignment) at
/// `mem` in the slot from file offset `file`, of which `want` lie before
/// the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub mem: u64,
    pub file: u64,
    pub len: u64,
    pub want: u64,
}

impl BlockLayout {
    /// Split frames: a block is one run of file bytes, read by one read;
    /// headers go in frames of their own.
    pub fn new(payload: u64, align: u64, chunk: u64) -> BlockLayout {
        let packets_per_block = packets_per_block(payload, align);
        let block_bytes = packets_per_block * payload;
        let slot_bytes = (block_bytes + align).next_power_of_two().max(chunk);
        BlockLayout { align, payload, packets_per_block, block_bytes, stride: payload, headroom: 0, slot_bytes }
    }

    /// Contiguous frames: each payload lands at an aligned address in a
    /// cell of its own, `headroom` bytes in, with room for the header right
    /// in front of it; a block is read by one vectored read (one iovec per
    /// packet). `payload` must be a multiple of `align`; a cell is a power
    /// of two no larger than `chunk`, so a frame never crosses a chunk edge.
    pub fn contiguous(payload: u64, align: u64, chunk: u64, header: u64) -> Option<BlockLayout> {
        let headroom = header.div_ceil(align) * align;
        let stride = (headroom + payload).next_power_of_two();
        if !payload.is_multiple_of(align) || stride > chunk || payload == 0 {
            return None;
        }
        let packets_per_block = (BLOCK_TARGET / stride).clamp(1, MAX_IOVECS);
        let block_bytes = packets_per_block * payload;
        let slot_bytes = (packets_per_block * stride).max(chunk);
        Some(BlockLayout { align, payload, packets_per_block, block_bytes, stride, headroom, slot_bytes })
    }

    pub fn is_contiguous(&self) -> bool {
        self.headroom > 0
    }

    /// The block that holds packet `i`.
    pub fn block_of(&self, packet: u64) -> u64 {
        packet / self.packets_per_block
    }

    /// Where packet `i`'s payload starts in its slot.
    pub fn umem_offset(&self, packet: u64) -> u64 {
        (packet % self.packets_per_block) * self.stride + self.headroom
    }

    /// The runs that read block `block` of a file of `size` bytes into its
    /// slot: one for split frames, one per packet for contiguous ones.
    pub fn segments(&self, block: u64, size: u64) -> Vec<Segment> {
        let start = block * self.block_bytes;
        let bytes = (size - start).min(self.block_bytes);
        let round_up = |n: u64| n.div_ceil(self.align) * self.align;
        if !self.is_contiguous() {
            return vec![Segment { mem: 0, file: start, len: round_up(bytes), want: bytes }];
        }
        (0..bytes.div_ceil(self.payload))
            .map(|k| {
                let want = (bytes - k * self.payload).min(self.payload);
                Segment { mem: k * self.stride + self.headroom, file: start + k * self.payload, len: round_up(want), want }
            })
            .collect()
    }
}

/// Most iovecs one vectored read takes (UIO_MAXIOV).
const MAX_IOVECS: u64 = 1024;

/// Packets per block: the fewest whole packets whose bytes are a multiple
/// of `align`, times as many as fit in about BLOCK_TARGET.
fn packets_per_block(payload: u64, align: u64) -> u64 {
    let unit = align / gcd(payload, align); // packets per smallest aligned block
    let units = (BLOCK_TARGET / (unit * payload)).max(1);
    unit * units
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_holds_whole_packets_at_aligned_offsets() {
        for (payload, align) in [(1448u64, 512u64), (8948, 512), (1448, 4096), (1001 & !1, 512), (64, 512), (1448, 1)] {
            let l = BlockLayout::new(payload, align, 4096);
            assert!(l.packets_per_block >= 1);
            assert_eq!(l.block_bytes % align, 0, "{payload} {align}");
            assert!(l.block_bytes <= BLOCK_TARGET.max(payload * align), "{payload} {align}: {l:?}");
            assert_eq!(l.slot_bytes % 4096, 0);
            assert!(l.slot_bytes >= l.block_bytes.div_ceil(align) * align);
        }
        assert_eq!(BlockLayout::new(1448, 512, 4096).packets_per_block, 704, "11 units of 64 packets = 1,019,392 bytes");
    }

    #[test]
    fn a_contiguous_layout_puts_each_payload_behind_its_header_room() {
        let l = BlockLayout::contiguous(1024, 512, 4096, 66).unwrap();
        assert_eq!((l.headroom, l.stride, l.packets_per_block, l.slot_bytes), (512, 2048, 512, 1 << 20));
        let l = BlockLayout::contiguous(3584, 512, 4096, 66).unwrap();
        assert_eq!((l.headroom, l.stride, l.packets_per_block), (512, 4096, 256));
        assert_eq!(BlockLayout::contiguous(1448, 512, 4096, 66), None, "not a multiple of the alignment");
        assert_eq!(BlockLayout::contiguous(4096, 512, 4096, 66), None, "header and payload do not fit a chunk");
        let l = BlockLayout::contiguous(1448, 1, 4096, 66).unwrap();
        assert_eq!((l.headroom, l.stride), (66, 2048), "buffered reads need no alignment");
        for (payload, align) in [(1024u64, 512u64), (3584, 512), (2048, 512), (512, 512), (1448, 1)] {
            let l = BlockLayout::contiguous(payload, align, 4096, 66).unwrap();
            let size = 3 * l.block_bytes + 700; // the last block ends inside a packet
            for block in 0..4 {
                let segs = l.segments(block, size);
                let start = block * l.block_bytes;
                assert_eq!(segs.iter().map(|s| s.want).sum::<u64>(), (size - start).min(l.block_bytes));
                for (k, s) in segs.iter().enumerate() {
                    let packet = block * l.packets_per_block + k as u64;
                    assert_eq!(s.mem, l.umem_offset(packet), "packet {packet}");
                    assert_eq!(s.file, packet * payload);
                    assert!(s.mem % align == 0 && s.file % align == 0 && s.len % align == 0, "{s:?}");
                    assert!(s.mem >= 66 && s.mem + s.len <= (k as u64 + 1) * l.stride, "inside its cell: {s:?}");
                    assert_eq!((s.mem - 66) / 4096, (s.mem + s.len - 1) / 4096, "header and payload in one chunk");
                }
            }
        }
    }
}
