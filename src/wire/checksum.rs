//! The Internet checksum (RFC 1071): a ones'-complement sum of 16-bit words.

/// A ones'-complement sum of big-endian 16-bit words, fed in pieces of
/// any length (an odd piece's last byte pairs with the next piece's first).
#[derive(Default)]
pub(super) struct Ones {
    sum: u64,
    odd: Option<u8>,
}

impl Ones {
    pub(super) fn add_word(&mut self, w: u16) {
        self.sum += w as u64;
    }

    pub(super) fn add_bytes(&mut self, mut b: &[u8]) {
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

    pub(super) fn fold(mut self) -> u16 {
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
