//! Both ends hash the file with BLAKE3 after the timed transfer: the sender
//! its source, the receiver what it wrote. Equal hashes and sizes are the
//! proof that the file arrived intact. zclab's user space reads file bytes
//! only here, and by `read()`: it never touches a mapping of a file, so a
//! file that shrinks cannot raise SIGBUS (the kernel, reading a mapping for
//! a send, returns EFAULT instead, which the sender explains).

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
    // Read, not mapped: a mapping of a file that shrinks while being
    // hashed would turn the read of a vanished page into SIGBUS. Each
    // 16 MiB piece is hashed on both cores.
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 16 << 20];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match io::Read::read(&mut file, &mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        h.update_rayon(&buf[..filled]);
    }
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
