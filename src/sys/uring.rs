//! io_uring, just enough for `IORING_OP_SEND_ZC` and for file reads and
//! writes that stay in flight (`ReadRing`).
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

/// An io_uring that issues SEND_ZC from buffers borrowed for `'buf`. The
/// kernel pins the pages it sends from (it holds references of its own),
/// so a send that outlives the ring cannot reach freed memory. `Drop` waits
/// a moment for the last notifications, so that a normal end is clean; on
/// a dead link they may never come, and it does not wait for them.
pub struct SendZcRing<'buf> {
    ring: IoUring,
    /// Completions still owed by the kernel (results and notifications).
    owed: u64,
    /// Registered buffers (`IORING_REGISTER_BUFFERS`): start address and
    /// length of each, in index order.
    fixed: Vec<(usize, usize)>,
    _buf: PhantomData<&'buf [u8]>,
}

/// The most one registered buffer may hold (the kernel refuses larger).
const MAX_FIXED_BUFFER: usize = 1 << 30;

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
        Ok(SendZcRing { ring, owed: 0, fixed: Vec::new(), _buf: PhantomData })
    }

    /// Registers `buf` as fixed buffers (`IORING_REGISTER_BUFFERS`, in
    /// pieces of at most 1 GiB): the kernel pins its pages once, here,
    /// instead of on every send. It pins them *for writing*, so it refuses
    /// (EFAULT) a read-only mapping or a shared mapping of a file; a
    /// private writable mapping it accepts by copying each page (copy on
    /// write) as it pins it. Sends from inside `buf` then use the buffers.
    pub fn register(&mut self, buf: &'buf [u8]) -> io::Result<()> {
        if !self.fixed.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffers are registered already"));
        }
        let pieces: Vec<(usize, usize)> = buf.chunks(MAX_FIXED_BUFFER).map(|c| (c.as_ptr() as usize, c.len())).collect();
        let iovecs: Vec<libc::iovec> =
            pieces.iter().map(|&(a, l)| libc::iovec { iov_base: a as *mut libc::c_void, iov_len: l }).collect();
        // SAFETY: every iovec describes memory borrowed for `'buf`, which
        // outlives the ring (and so the registration, which ends with it).
        // The kernel only reads it: this ring issues sends, never receives.
        unsafe { self.ring.submitter().register_buffers(&iovecs) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("registering {} bytes as io_uring fixed buffers: {e} (EFAULT: a read-only or shared file mapping; ENOMEM: the memlock limit)", buf.len()),
            )
        })?;
        self.fixed = pieces;
        Ok(())
    }

    /// The registered buffer that holds all of `buf`, if any.
    fn fixed_index(&self, buf: &[u8]) -> Option<u16> {
        let (a, l) = (buf.as_ptr() as usize, buf.len());
        self.fixed.iter().position(|&(start, len)| a >= start && a + l <= start + len).map(|i| i as u16)
    }

    /// Queues one SEND_ZC of `buf` on `sock` (not yet submitted), from a
    /// registered buffer when `buf` lies inside one. `MSG_WAITALL`: the
    /// result is the whole length or an error. `linked`: the next send
    /// queued starts only after this one completes (`IOSQE_IO_LINK`), which
    /// keeps a stream's bytes in order; a chain ends with the submit.
    pub fn push_send(&mut self, sock: &impl AsRawFd, buf: &'buf [u8], user_data: u64, linked: bool) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "send larger than 4 GiB"))?;
        let mut sqe = opcode::SendZc::new(types::Fd(sock.as_raw_fd()), buf.as_ptr(), len)
            .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
            .flags(libc::MSG_WAITALL)
            .buf_index(self.fixed_index(buf))
            .build()
            .user_data(user_data);
        if linked {
            sqe = sqe.flags(io_uring::squeue::Flags::IO_LINK);
        }
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
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut sink = Vec::new();
        while self.owed > 0 && Instant::now() < deadline {
            if self.submit_and_wait(1, Duration::from_millis(50)).is_err() {
                break;
            }
            self.drain(&mut sink);
        }
        if self.owed > 0 {
            log::debug!("{} SEND_ZC completions still owed; the kernel keeps its own page references", self.owed);
        }
    }
}

/// Memory an asynchronous read may write into, for as long as the value
/// lives.
///
/// # Safety
/// An implementor promises that `io_ptr()..io_ptr() + io_len()` is valid,
/// writable memory that stays mapped for as long as the value exists, and
/// also forever if the value is leaked (`mem::forget`); and that nothing
/// else reads or writes that memory while the value exists.
pub unsafe trait IoBuf {
    fn io_ptr(&mut self) -> *mut u8;
    fn io_len(&self) -> usize;
}

/// The iovec array of a vectored read or write in flight, kept until its completion.
#[derive(Default)]
struct Iovecs(#[allow(dead_code, reason = "held for the kernel, never read here")] Option<Box<[libc::iovec]>>);

// SAFETY: the iovecs only point into the buffers of their read or write,
// which travel with them in the same slot (and are `Send` where the ring
// is); nothing reads them in user space after the submit.
unsafe impl Send for Iovecs {}

/// A finished read (or write): the buffer back, its tag, and the bytes read
/// (written) or `-errno`.
pub struct ReadDone<B> {
    pub buf: B,
    pub tag: u64,
    pub result: i32,
}

/// An io_uring for file reads that complete while the caller does other
/// work (the af-xdp sender reads the next file blocks into the UMEM while
/// it sends the current one). The ring *holds* each buffer while its read
/// is in flight and hands it back with the completion, so no one can touch
/// the memory meanwhile, and the memory outlives the read however the ring
/// ends: if reads are still in flight when it is dropped and do not finish
/// within a few seconds, their buffers are leaked, never freed under the
/// kernel's feet. The same ring writes from buffers it holds the same way
/// (`push_writev`, for a `ReadRing<Vec<B>>`: the af-xdp receiver's
/// O_DIRECT writes from the UMEM frames, several in flight).
pub struct ReadRing<B> {
    ring: IoUring,
    /// Buffers of reads in flight (and the iovecs of a vectored read),
    /// indexed by the read's user_data.
    slots: Vec<Option<(B, u64, Iovecs)>>,
    free: Vec<usize>,
    in_flight: usize,
}

impl<B> ReadRing<B> {
    pub fn new(entries: u32) -> Result<ReadRing<B>, UringError> {
        let ring = IoUring::new(entries).map_err(UringError::Unavailable)?;
        Ok(ReadRing { ring, slots: Vec::new(), free: Vec::new(), in_flight: 0 })
    }

    /// Operations in flight.
    pub fn in_flight(&self) -> usize {
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

    /// Takes every completion.
    pub fn reap(&mut self, out: &mut Vec<ReadDone<B>>) {
        for cqe in self.ring.completion() {
            let slot = cqe.user_data() as usize;
            if let Some((buf, tag, _iov)) = self.slots.get_mut(slot).and_then(Option::take) {
                self.free.push(slot);
                self.in_flight -= 1;
                out.push(ReadDone { buf, tag, result: cqe.result() });
            }
        }
    }

    fn slot(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        })
    }
}

impl<B: IoBuf> ReadRing<Vec<B>> {
    /// Queues and submits one vectored write (`IORING_OP_WRITEV`) at `offset`
    /// of `file`: from each buffer `bufs[i]` its bytes `runs[i] = (start,
    /// len)`, in order. The ring holds the buffers until the completion (from
    /// `reap`, with `tag`); on an error they are given back.
    pub fn push_writev(
        &mut self,
        file: &impl AsRawFd,
        mut bufs: Vec<B>,
        runs: &[(usize, usize)],
        offset: u64,
        tag: u64,
    ) -> Result<(), (Vec<B>, io::Error)> {
        if runs.len() != bufs.len()
            || bufs.iter().zip(runs).any(|(b, &(start, n))| start.checked_add(n).is_none_or(|end| end > b.io_len()))
        {
            return Err((bufs, io::Error::new(io::ErrorKind::InvalidInput, "a write run outside its buffer")));
        }
        let Ok(count) = u32::try_from(runs.len()) else {
            return Err((bufs, io::Error::new(io::ErrorKind::InvalidInput, "too many write runs")));
        };
        let iov: Box<[libc::iovec]> = bufs
            .iter_mut()
            .zip(runs)
            .map(|(b, &(start, n))| libc::iovec { iov_base: b.io_ptr().wrapping_add(start).cast(), iov_len: n })
            .collect();
        let slot = self.slot();
        let sqe =
            opcode::Writev::new(types::Fd(file.as_raw_fd()), iov.as_ptr(), count).offset(offset).build().user_data(slot as u64);
        // SAFETY: each iovec points inside its buffer's memory (checked above), which the
        // IoBuf contract keeps valid and unshared while the buffer exists; the buffers and
        // the iovec array are stored in `slots` below until the completion is reaped (a
        // boxed slice does not move when its owner does), and leaked together if the ring
        // is dropped first (see Drop). The kernel only reads that memory.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.free.push(slot);
            return Err((bufs, io::Error::other("io_uring submission queue full")));
        }
        self.slots[slot] = Some((bufs, tag, Iovecs(Some(iov))));
        self.in_flight += 1;
        if let Err(e) = self.ring.submit() {
            log::debug!("io_uring submit: {e}; retried with the next call");
        }
        Ok(())
    }
}

impl<B: IoBuf> ReadRing<B> {
    /// Queues and submits a read of all of `buf` from `offset` of `file`;
    /// its completion comes back from `reap` with `tag`. On an error the
    /// buffer is given back with it.
    pub fn push_read(&mut self, file: &impl AsRawFd, mut buf: B, offset: u64, tag: u64) -> Result<(), (B, io::Error)> {
        let Ok(len) = u32::try_from(buf.io_len()) else {
            return Err((buf, io::Error::new(io::ErrorKind::InvalidInput, "read larger than 4 GiB")));
        };
        let slot = self.slot();
        let sqe = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.io_ptr(), len).offset(offset).build().user_data(slot as u64);
        // SAFETY: the SQE points at `buf`'s memory, which the IoBuf contract
        // keeps valid and unshared while `buf` exists; `buf` is stored in
        // `slots` below until its completion is reaped, and leaked if the
        // ring is dropped before that (see Drop).
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.free.push(slot);
            return Err((buf, io::Error::other("io_uring submission queue full")));
        }
        self.slots[slot] = Some((buf, tag, Iovecs::default()));
        self.in_flight += 1;
        if let Err(e) = self.ring.submit() {
            // The SQE stays queued and goes with the next submit; the buffer stays held.
            log::debug!("io_uring submit: {e}; retried with the next call");
        }
        Ok(())
    }

    /// Queues and submits one vectored read (`IORING_OP_READV`) from
    /// `offset` of `file` into the runs `(start, len)` of `buf`, in order.
    /// Every run must lie inside `buf`; on an error the buffer is given back.
    pub fn push_readv(
        &mut self,
        file: &impl AsRawFd,
        mut buf: B,
        runs: &[(usize, usize)],
        offset: u64,
        tag: u64,
    ) -> Result<(), (B, io::Error)> {
        let len = buf.io_len();
        if runs.iter().any(|&(start, n)| start.checked_add(n).is_none_or(|end| end > len)) {
            return Err((buf, io::Error::new(io::ErrorKind::InvalidInput, "a read run outside its buffer")));
        }
        let Ok(count) = u32::try_from(runs.len()) else {
            return Err((buf, io::Error::new(io::ErrorKind::InvalidInput, "too many read runs")));
        };
        let base = buf.io_ptr();
        let iov: Box<[libc::iovec]> =
            runs.iter().map(|&(start, n)| libc::iovec { iov_base: base.wrapping_add(start).cast(), iov_len: n }).collect();
        let slot = self.slot();
        let sqe =
            opcode::Readv::new(types::Fd(file.as_raw_fd()), iov.as_ptr(), count).offset(offset).build().user_data(slot as u64);
        // SAFETY: the iovecs point inside `buf`'s memory, which the IoBuf
        // contract keeps valid and unshared while `buf` exists; `buf` and
        // the iovec array are stored in `slots` below until the completion
        // is reaped (a boxed slice does not move when its owner does), and
        // leaked together if the ring is dropped first (see Drop).
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.free.push(slot);
            return Err((buf, io::Error::other("io_uring submission queue full")));
        }
        self.slots[slot] = Some((buf, tag, Iovecs(Some(iov))));
        self.in_flight += 1;
        if let Err(e) = self.ring.submit() {
            log::debug!("io_uring submit: {e}; retried with the next call");
        }
        Ok(())
    }
}

impl<B> Drop for ReadRing<B> {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut done = Vec::new();
        while self.in_flight > 0 && Instant::now() < deadline {
            if self.wait(Duration::from_millis(100)).is_err() {
                break;
            }
            self.reap(&mut done);
        }
        if self.in_flight > 0 {
            log::error!("{} reads did not complete within 5 s; their buffers are leaked, not freed", self.in_flight);
            for held in self.slots.drain(..).flatten() {
                std::mem::forget(held);
            }
        }
    }
}
