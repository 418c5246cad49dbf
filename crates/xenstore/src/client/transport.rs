//! The byte stream under a [`super::Client`]: xenstored's unix socket or the
//! kernel's xenbus device. Reads and writes that must not wait never do, so one
//! code path serves blocking callers and mio loops alike.
//!
//! The xenbus device is opened `O_NONBLOCK` and its waits are poll(2) calls with
//! an optional deadline. The socket stays in blocking mode instead: a wait
//! without a deadline (the default for a request's reply) is one blocking
//! `read`, not a `read` that finds nothing yet, a `poll` and a second `read`
//! (two of the four system calls a request cost the client; docs/PERFORMANCE.md).
//! Its non-blocking read and its waits with a deadline `poll` first, so that the
//! `read` or `write` after it does not wait.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A connection to xenstored.
#[derive(Debug)]
pub(super) enum Transport {
    /// xenstored's unix socket (blocking mode; see the module documentation).
    Socket(UnixStream),
    /// `/dev/xen/xenbus` (the kernel relays to xenstored over the dom0 ring).
    Device(File),
}

impl Transport {
    /// Connects a socket or opens a device, whichever `path` is.
    pub(super) fn open(path: &Path) -> io::Result<Transport> {
        let meta = std::fs::metadata(path)?;
        if meta.file_type().is_socket() {
            Transport::socket(UnixStream::connect(path)?)
        } else {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)?;
            Ok(Transport::Device(f))
        }
    }

    /// Wraps a connected socket, switching it to blocking mode.
    pub(super) fn socket(s: UnixStream) -> io::Result<Transport> {
        s.set_nonblocking(false)?;
        Ok(Transport::Socket(s))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Transport::Socket(s) => s.as_fd(),
            Transport::Device(f) => f.as_fd(),
        }
    }

    /// One non-blocking read (`WouldBlock` when nothing is there).
    pub(super) fn read_nonblocking(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Transport::Socket(_) = self {
            if !self.ready(PollFlags::POLLIN, Some(Instant::now()))? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        self.read_once(buf)
    }

    /// One read, retried on `EINTR`: blocking on the socket, non-blocking on the
    /// device.
    fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let r = match self {
                Transport::Socket(s) => s.read(buf),
                Transport::Device(f) => f.read(buf),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Reads at least one byte (0 at end of stream), waiting until `deadline`;
    /// `TimedOut` when it passes.
    pub(super) fn read_wait(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        match self {
            Transport::Socket(_) => {
                // Without a deadline the read itself waits.
                if deadline.is_some() {
                    self.wait(PollFlags::POLLIN, deadline)?;
                }
                self.read_once(buf)
            }
            Transport::Device(_) => loop {
                match self.read_once(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.wait(PollFlags::POLLIN, deadline)?
                    }
                    other => return other,
                }
            },
        }
    }

    /// Writes all of `bytes`, waiting for room until `deadline`.
    pub(super) fn write_all(
        &mut self,
        mut bytes: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let r = match self {
                Transport::Socket(_) if deadline.is_some() => {
                    // Room reported by poll: the blocking write goes through.
                    self.wait(PollFlags::POLLOUT, deadline)?;
                    write_some(self, bytes)
                }
                _ => write_some(self, bytes),
            };
            match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(PollFlags::POLLOUT, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Polls for `what` until `deadline` (`None`: for ever; a deadline already
    /// past: one look without waiting). `Ok(false)` when the deadline passed.
    fn ready(&self, what: PollFlags, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so that a sub-millisecond rest does not spin.
                    let ms = if left.is_zero() {
                        0
                    } else {
                        left.as_millis().saturating_add(1)
                    };
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.fd(), what)];
            match poll(&mut fds, timeout) {
                Ok(0) if timeout == PollTimeout::ZERO => return Ok(false),
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }

    /// Waits until the descriptor is ready for `what` (or hung up); `TimedOut`
    /// when `deadline` passes first.
    fn wait(&self, what: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
        if self.ready(what, deadline)? {
            Ok(())
        } else {
            Err(io::ErrorKind::TimedOut.into())
        }
    }
}

/// One write of (a prefix of) `bytes`.
fn write_some(t: &mut Transport, bytes: &[u8]) -> io::Result<usize> {
    match t {
        Transport::Socket(s) => s.write(bytes),
        Transport::Device(f) => f.write(bytes),
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}
