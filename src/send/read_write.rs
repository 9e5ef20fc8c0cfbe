//! `read-write`: the traditional path.
//!
//! Per chunk: `read()` copies page-cache pages into our buffer (copy 1,
//! two mode switches), `write()` copies our buffer into socket buffers
//! (copy 2, two more). The CPU touches every byte twice.

use super::DataPath;
use super::{file_shrank, Stream};
use std::io::{self, Read};

pub fn send(s: &mut Stream) -> io::Result<DataPath> {
    let mut buf = vec![0u8; s.chunk];
    let mut calls = 0;
    let mut done = 0u64;
    while done < s.size {
        let want = s.next_len(done);
        calls += 1;
        let n = (&mut &*s.file).read(&mut buf[..want])?;
        if n == 0 {
            return Err(file_shrank(done, s.size));
        }
        s.write_all_counted(&buf[..n], &mut calls)?;
        done += n as u64;
    }
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: None, af_xdp: None, af_xdp_tcp: None, done: None })
}
