//! io_uring, just enough for `IORING_OP_SEND_ZC`.
//!
//! A zero-copy send has two completions: the *result* (how many bytes were
//! queued; flagged `IORING_CQE_F_MORE` when a notification will follow) and
//! the *notification* (`IORING_CQE_F_NOTIF`: the kernel no longer references
//! the buffer). With `IORING_SEND_ZC_REPORT_USAGE` the notification's result
//! carries `IORING_NOTIF_USAGE_ZC_COPIED` when the kernel copied after all.

use io_uring::{cqueue, opcode, types, IoUring, Probe};
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// `IORING_SEND_ZC_REPORT_USAGE` (include/uapi/linux/io_uring.h).
const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED` (include/uapi/linux/io_uring.h).
const IORING_NOTIF_USAGE_ZC_COPIED: i32 = 1 << 31;

/// One completion, decoded.
#[derive(Debug, Clone, Copy)]
pub enum ZcEvent {
    /// The send's result: bytes queued or `-errno`; `notif_follows` when a
    /// notification completion will come for it.
    Sent { user_data: u64, result: i32, notif_follows: bool },
    /// The kernel released the buffer of send `user_data`.
    Released { user_data: u64, copied: bool },
}

/// An io_uring that issues SEND_ZC from buffers borrowed for `'buf`. Its
/// `Drop` waits (bounded) for the kernel to release every buffer, so the
/// borrow really does cover the kernel's use of the memory.
pub struct SendZcRing<'buf> {
    ring: IoUring,
    /// Completions still owed by the kernel (results and notifications).
    owed: u64,
    _buf: PhantomData<&'buf [u8]>,
}

/// Why a SEND_ZC ring could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    #[error("io_uring is not available: {0} (is it disabled by sysctl kernel.io_uring_disabled, or by a seccomp profile?)")]
    Unavailable(io::Error),
    #[error("this kernel does not support IORING_OP_SEND_ZC (Linux 6.0 or newer is needed)")]
    NoSendZc,
}

impl<'buf> SendZcRing<'buf> {
    pub fn new(entries: u32) -> Result<Self, UringError> {
        let ring = IoUring::new(entries).map_err(UringError::Unavailable)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(UringError::Unavailable)?;
        if !probe.is_supported(opcode::SendZc::CODE) {
            return Err(UringError::NoSendZc);
        }
        Ok(SendZcRing { ring, owed: 0, _buf: PhantomData })
    }

    /// Queues one SEND_ZC of `buf` on `sock` (not yet submitted).
    pub fn push_send(&mut self, sock: &impl AsRawFd, buf: &'buf [u8], user_data: u64) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "send larger than 4 GiB"))?;
        let sqe = opcode::SendZc::new(types::Fd(sock.as_raw_fd()), buf.as_ptr(), len)
            .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
            .build()
            .user_data(user_data);
        // SAFETY: the SQE references `buf`, borrowed for `'buf`, which
        // outlives this ring; Drop waits until the kernel released it.
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.owed += 1;
        Ok(())
    }

    /// Submits what is queued and waits up to `timeout` for at least `want`
    /// completions (one `io_uring_enter`). A timeout is not an error.
    pub fn submit_and_wait(&mut self, want: usize, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes every completion that has arrived.
    pub fn drain(&mut self, out: &mut Vec<ZcEvent>) {
        for cqe in self.ring.completion() {
            let flags = cqe.flags();
            if cqueue::notif(flags) {
                self.owed -= 1;
                out.push(ZcEvent::Released {
                    user_data: cqe.user_data(),
                    copied: cqe.result() & IORING_NOTIF_USAGE_ZC_COPIED != 0,
                });
            } else {
                let notif_follows = cqueue::more(flags);
                if !notif_follows {
                    self.owed -= 1;
                }
                out.push(ZcEvent::Sent { user_data: cqe.user_data(), result: cqe.result(), notif_follows });
            }
        }
    }

    /// Completions the kernel still owes.
    pub fn owed(&self) -> u64 {
        self.owed
    }
}

impl Drop for SendZcRing<'_> {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sink = Vec::new();
        while self.owed > 0 && Instant::now() < deadline {
            if self.submit_and_wait(1, Duration::from_millis(100)).is_err() {
                break;
            }
            self.drain(&mut sink);
        }
    }
}

/// An io_uring for file reads that complete while the caller does other
/// work (the af-xdp sender reads the next file blocks into the UMEM while
/// it sends the current one). `Drop` waits (bounded) for reads in flight.
pub struct ReadRing {
    ring: IoUring,
    in_flight: u32,
}

impl ReadRing {
    pub fn new(entries: u32) -> Result<ReadRing, UringError> {
        let ring = IoUring::new(entries).map_err(UringError::Unavailable)?;
        Ok(ReadRing { ring, in_flight: 0 })
    }

    /// Queues and submits a read of `len` bytes at `offset` of `file` into `buf`.
    ///
    /// # Safety
    /// `buf..buf + len` must stay mapped, and no one may read or write it,
    /// until `reap` has returned the completion tagged `tag`; and this ring
    /// must be dropped before that memory is unmapped.
    pub unsafe fn push_read(&mut self, file: &impl AsRawFd, buf: *mut u8, len: u32, offset: u64, tag: u64) -> io::Result<()> {
        let sqe = opcode::Read::new(types::Fd(file.as_raw_fd()), buf, len).offset(offset).build().user_data(tag);
        // SAFETY: the caller guarantees the buffer outlives the read (see above).
        unsafe { self.ring.submission().push(&sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.ring.submit()?;
        self.in_flight += 1;
        Ok(())
    }

    /// Reads in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Waits up to `timeout` for at least one completion (one io_uring_enter).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes every completion: (tag, bytes read or -errno).
    pub fn reap(&mut self, out: &mut Vec<(u64, i32)>) {
        for cqe in self.ring.completion() {
            self.in_flight -= 1;
            out.push((cqe.user_data(), cqe.result()));
        }
    }
}

impl Drop for ReadRing {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut sink = Vec::new();
        while self.in_flight > 0 && Instant::now() < deadline {
            if self.wait(Duration::from_millis(100)).is_err() {
                break;
            }
            self.reap(&mut sink);
        }
    }
}
