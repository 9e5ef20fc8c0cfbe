//! The data paths: one type from the command line, through the Hello, to
//! the reports. On the wire and in JSON a mode is its `--mode` name. And
//! the ways the TCP receiver takes the data off its socket (`--via`).

use serde::{Deserialize, Serialize};

/// The data paths. The names are the `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// read() into a buffer, write() to the socket: 2 CPU copies per byte.
    ReadWrite,
    /// mmap() the file, write() from the mapping: 1 CPU copy per byte.
    MmapWrite,
    /// sendfile(): page-cache pages go to the socket, no user-space copy.
    Sendfile,
    /// splice() file to pipe to socket: page references through a pipe.
    Splice,
    /// send(MSG_ZEROCOPY) from a file mapping; completions on the error queue.
    MsgZerocopy,
    /// io_uring IORING_OP_SEND_ZC from a file mapping, with notifications.
    IoUringZc,
    /// Kernel UDP with UDP_SEGMENT (GSO), receiver with UDP_GRO; lost packets resent.
    UdpGso,
    /// AF_XDP: O_DIRECT reads into the UMEM, frames from the TX ring; AF_XDP receiver behind XDP.
    AfXdp,
    /// zclab's own TCP on an AF_XDP socket, the payload where O_DIRECT put it; any TCP receiver.
    AfXdpTcp,
}

impl Mode {
    pub const ALL: [Mode; 9] = [
        Mode::ReadWrite,
        Mode::MmapWrite,
        Mode::Sendfile,
        Mode::Splice,
        Mode::MsgZerocopy,
        Mode::IoUringZc,
        Mode::UdpGso,
        Mode::AfXdp,
        Mode::AfXdpTcp,
    ];

    /// The `--mode` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "read-write",
            Mode::MmapWrite => "mmap-write",
            Mode::Sendfile => "sendfile",
            Mode::Splice => "splice",
            Mode::MsgZerocopy => "msg-zerocopy",
            Mode::IoUringZc => "io-uring-zc",
            Mode::UdpGso => "udp-gso",
            Mode::AfXdp => "af-xdp",
            Mode::AfXdpTcp => "af-xdp-tcp",
        }
    }

    /// True for the paths that move packets (lab header, rounds) rather than a TCP stream.
    pub fn is_packet_path(self) -> bool {
        matches!(self, Mode::UdpGso | Mode::AfXdp)
    }

    /// True for the paths whose data is a TCP stream on a connection of its
    /// own, not on the control connection (af-xdp-tcp: the control connection
    /// is the kernel's, the data connection zclab's own TCP).
    pub fn has_data_connection(self) -> bool {
        self == Mode::AfXdpTcp
    }

    /// True for the paths that send from an AF_XDP socket.
    pub fn is_af_xdp(self) -> bool {
        matches!(self, Mode::AfXdp | Mode::AfXdpTcp)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// How the TCP receiver takes the data off the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// splice() socket -> pipe -> file: page references, then one copy into the file.
    #[default]
    Splice,
    /// read() into a buffer, then pwrite(): two CPU copies.
    Read,
    /// TCP_ZEROCOPY_RECEIVE: pages mapped where they are whole, the rest copied; then one copy into the file.
    Mmap,
    /// recv(MSG_TRUNC): the data is dropped uncopied and nothing is verified (the receiver's floor).
    Discard,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Splice => "splice",
            Via::Read => "read",
            Via::Mmap => "mmap",
            Via::Discard => "discard",
        }
    }
}

/// What TCP_ZEROCOPY_RECEIVE did with the bytes (`--via mmap`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZerocopyReceive {
    /// Bytes whose pages were mapped into our memory.
    pub mapped_bytes: u64,
    /// Bytes the kernel had to copy (not in whole, aligned pages).
    pub copied_bytes: u64,
}
