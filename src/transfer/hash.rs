//! Both ends hash the file with BLAKE3 after the timed transfer: the sender
//! its source, the receiver what it wrote. Equal hashes and sizes are the
//! proof that the file arrived intact.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// Hex BLAKE3 of the file at `path`, and how long hashing took.
pub fn hash_file(path: &Path) -> io::Result<(String, Duration)> {
    hash_file_keyed(path, None)
}

/// The same, keyed with a session's key (`--key`): only the two ends of
/// the session can make a hash that matches.
pub fn hash_file_keyed(path: &Path, key: Option<&[u8; 32]>) -> io::Result<(String, Duration)> {
    let t = Instant::now();
    let mut h = match key {
        Some(k) => blake3::Hasher::new_keyed(k),
        None => blake3::Hasher::new(),
    };
    h.update_mmap_rayon(path)?;
    Ok((h.finalize().to_hex().to_string(), t.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_blake3_of_the_bytes() {
        let dir = std::env::temp_dir().join(format!("zclab-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, 4095, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let (hex, _) = hash_file(&p).unwrap();
            assert_eq!(hex, blake3::hash(&data).to_hex().to_string());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
