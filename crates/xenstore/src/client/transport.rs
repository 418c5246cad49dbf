//! The byte stream under a [`super::Client`]: xenstored's unix socket or the
//! kernel's xenbus device. Both are kept non-blocking; blocking waits are poll(2)
//! calls with an optional deadline, so one code path serves blocking callers and
//! mio loops alike.

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
    /// xenstored's unix socket.
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

    /// Wraps a connected socket, switching it to non-blocking mode.
    pub(super) fn socket(s: UnixStream) -> io::Result<Transport> {
        s.set_nonblocking(true)?;
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
    ///
    /// Polls before reading: callers wait for a reply they just asked for, which
    /// is not there yet, so a read first would only say `WouldBlock` (one system
    /// call per request saved). It waits in poll(2), not in a blocking read: the
    /// kernel wakes a reader blocked in a unix socket's read whenever the daemon
    /// consumes one of its requests (the sender's write-space wake-up), while a
    /// poll for `POLLIN` sleeps through that (docs/PERFORMANCE.md).
    pub(super) fn read_wait(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        loop {
            self.wait(PollFlags::POLLIN, deadline)?;
            match self.read_nonblocking(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
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
                Transport::Socket(s) => s.write(bytes),
                Transport::Device(f) => f.write(bytes),
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

    /// Waits until the descriptor is ready for `what` (or hung up).
    /// A deadline that has passed still gets one look without waiting, so that
    /// what is already there is read.
    fn wait(&self, what: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
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
                Ok(0) if timeout == PollTimeout::ZERO => return Err(io::ErrorKind::TimedOut.into()),
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}
