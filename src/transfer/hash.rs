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
    hash_file_with(path, key, false).map(|(h, d, _)| (h, d))
}

/// The same, reading with O_DIRECT when `direct` asks (so that hashing
/// neither uses nor fills the page cache: an end that bypassed it for the
/// transfer does not undo that by its proof). Where the file system
/// refuses O_DIRECT, it reads through the page cache; the third value says
/// whether O_DIRECT was used.
pub fn hash_file_with(path: &Path, key: Option<&[u8; 32]>, direct: bool) -> io::Result<(String, Duration, bool)> {
    let t = Instant::now();
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
            match hash_reads(file, key, true) {
                Ok(h) => return Ok((h, t.elapsed(), true)),
                // An alignment the file system will not take: read it the plain way.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::info!("O_DIRECT reads of {} refused ({e}): hashing through the page cache", path.display())
                }
                Err(e) => return Err(e),
            }
        }
    }
    let h = hash_reads(std::fs::File::open(path)?, key, false)?;
    Ok((h, t.elapsed(), false))
}

/// Reads `file` to its end in 16 MiB pieces (into a page-aligned buffer
/// when `aligned`, as O_DIRECT wants), hashing each on both cores. Read,
/// not mapped: a mapping of a file that shrinks while being hashed would
/// turn the read of a vanished page into SIGBUS.
fn hash_reads(mut file: std::fs::File, key: Option<&[u8; 32]>, aligned: bool) -> io::Result<String> {
    const PIECE: usize = 16 << 20;
    let mut h = match key {
        Some(k) => blake3::Hasher::new_keyed(k),
        None => blake3::Hasher::new(),
    };
    let mut store = vec![0u8; PIECE + if aligned { 4096 } else { 0 }];
    let at = if aligned { store.as_ptr().align_offset(4096) } else { 0 };
    let buf = &mut store[at..at + PIECE];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match io::Read::read(&mut file, &mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    // O_DIRECT returns a short read only at the end of the file.
                    if aligned && n % 4096 != 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        h.update_rayon(&buf[..filled]);
        if aligned && filled % 4096 != 0 {
            break;
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_reads_hash_alike_and_leave_the_page_cache_alone() {
        let dir = std::path::PathBuf::from("/var/tmp").join(format!("zclab-hash-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0usize, 1, 4096, 4097, (16 << 20) + 513] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let p = dir.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            f.sync_all().unwrap();
            crate::sys::file::evict_from_cache(&f).unwrap();
            let (hex, _, direct) = hash_file_with(&p, None, true).unwrap();
            assert_eq!(hex, blake3::hash(&data).to_hex().to_string(), "{len}");
            if direct {
                assert_eq!(crate::sys::file::cached_bytes(&f).unwrap(), 0, "{len}: O_DIRECT reads cached nothing");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
