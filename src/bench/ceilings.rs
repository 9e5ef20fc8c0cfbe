//! Reference lines for the throughput chart (`--ceilings`): what this
//! machine can do at all, measured in the same bench. One core's memory
//! copy (the ceiling of any path that copies), and the disk's O_DIRECT read
//! rate (the ceiling of a cold run).

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

/// One reference line.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub name: String,
    pub gbit_per_s: f64,
}

/// One core copying 64 MiB from one buffer into another, 8 times; the best pass.
pub fn memcpy() -> Ceiling {
    let len = 64 << 20;
    let src = vec![7u8; len];
    let mut dst = vec![0u8; len];
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ceiling { name: "memcpy, one core".into(), gbit_per_s: len as f64 * 8.0 / best / 1e9 }
}

/// Reads all of `path` with O_DIRECT in 1 MiB reads (None without direct I/O).
pub fn direct_read(path: &Path) -> Option<Ceiling> {
    let (mem, off) = crate::sys::file::dio_align(&File::open(path).ok()?).ok()??;
    let align = off.max(mem) as usize;
    let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let chunk = 1 << 20;
    let mut storage = vec![0u8; chunk + align];
    let skip = storage.as_ptr().align_offset(align);
    let buf = &mut storage[skip..skip + chunk];
    let t = Instant::now();
    let mut at = 0u64;
    while at < size {
        let want = ((size - at).min(chunk as u64) as usize).div_ceil(align) * align;
        match f.read_at(&mut buf[..want], at) {
            Ok(0) | Err(_) => break,
            Ok(n) => at += n as u64,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    (at > 0).then(|| Ceiling { name: "disk, O_DIRECT reads".into(), gbit_per_s: at as f64 * 8.0 / secs / 1e9 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcpy_is_measured() {
        let c = memcpy();
        assert!(c.gbit_per_s > 1.0 && c.gbit_per_s.is_finite(), "{c:?}");
    }
}
