//! Our AF_XDP layer, on libc: the UMEM, the four rings, the socket.
//!
//! It knows nothing of files or protocols. One file per kernel concept,
//! named as the kernel names it; ring verbs as in libxdp's `xsk.h`
//! (`reserve`/`submit` for producers, `peek`/`release` for consumers), so
//! this code reads side by side with the reference C.
//!
//! The rings and the UMEM are memory shared with the kernel, so this module
//! has `unsafe` blocks of its own (memory access, never syscalls: those are
//! in `sys::xdp`). Every one says why it is sound; every UMEM access is
//! bounds-checked, in release builds too.
#![allow(unsafe_code)]

pub mod ring;
pub mod socket;
pub mod umem;

pub use ring::{CompletionRing, FillRing, RxRing, TxRing, XdpDesc};
pub use socket::{BindMode, XskConfig, XskSocket};
pub use umem::{Umem, UmemConfig};
