//! `mmap-write`: map the file, `write()` straight from the mapping.
//!
//! The mapping shares the page-cache pages, so the `read()` copy is gone;
//! `write()` still copies into socket buffers (1 CPU copy). Page faults on
//! first touch replace the read syscalls.

use super::DataPath;
use super::Stream;
use std::io;

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    let mut calls = 0;
    let Some(map) = s.map_file()? else {
        return Ok(DataPath { syscalls: 0, zerocopy: None, packets: None, af_xdp: None, af_xdp_tcp: None, done: None });
    };
    let mut done = 0u64;
    while done < s.size {
        let start = done as usize;
        let end = start + s.next_len(done);
        s.write_all_counted(&map[start..end], &mut calls)?;
        done = end as u64;
    }
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}
