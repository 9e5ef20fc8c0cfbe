//! Our AF_XDP layer, on libc: the UMEM and its frames, the four rings, the
//! socket. It knows nothing of files, protocols, signals or interface names
//! (an interface is an index here).
//!
//! One file per kernel concept, named as the kernel names it; ring verbs as
//! in libxdp's `xsk.h` (`reserve`/`submit` for producers, `peek`/`release`
//! for consumers), so this code reads side by side with the reference C.
//!
//! Who owns a UMEM address at each step is written in types (`frame.rs`):
//! user code gets a [`Frame`] only from the pool ([`Frames::alloc`]) or from
//! a ring (RX, completion), and gives it back only to a ring (TX, fill) or
//! to the pool. Its bytes are reached only through it.
//!
//! The rings and the UMEM are memory shared with the kernel, so this module
//! has `unsafe` blocks of its own (memory access, never syscalls: those are
//! in `sys::xdp`). Every one says why it is sound; every UMEM access is
//! bounds-checked, in release builds too.
#![allow(unsafe_code)]

pub mod frame;
pub mod ring;
pub mod socket;
pub mod umem;

pub use frame::{DescError, Foreign, Frame, FrameId, Frames, IoLoan, Owner, PoolId, PoolSpec, Returned, SharedFrame};
pub use ring::XdpDesc;
pub use socket::{
    checksum_request, BindMode, DescOpts, Received, Rx, RxFrame, SocketConfig, Tx, TxReservation, XskSocket, TX_METADATA_LEN,
};
pub use umem::{Umem, UmemConfig};
