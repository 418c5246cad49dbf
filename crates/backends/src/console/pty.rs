//! The pty a console is served on: the master stays with rxconsoled (non-blocking,
//! in its mio loop), the slave's path is published in xenstore (`console/tty`)
//! for `rxl console` or `xl console` to open. Like xenconsoled, the line
//! discipline is raw, and rxconsoled keeps a slave fd open itself so that reads of
//! the master do not fail while no client is attached.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Errors of pty setup.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot allocate a pty")]
    Open(#[source] nix::Error),
    #[error("cannot set up the pty")]
    Setup(#[source] nix::Error),
    #[error("cannot open the pty slave {path}")]
    Slave {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// One console pty.
#[derive(Debug)]
pub struct Pty {
    master: PtyMaster,
    _slave: File,
    path: String,
}

impl Pty {
    /// Allocates a raw, non-blocking pty.
    pub fn open() -> Result<Self, PtyError> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(PtyError::Open)?;
        grantpt(&master).map_err(PtyError::Setup)?;
        unlockpt(&master).map_err(PtyError::Setup)?;
        let path = ptsname_r(&master).map_err(PtyError::Setup)?;
        // On a pty master, termios calls act on the slave's settings.
        let mut t = tcgetattr(master.as_fd()).map_err(PtyError::Setup)?;
        cfmakeraw(&mut t);
        tcsetattr(master.as_fd(), SetArg::TCSANOW, &t).map_err(PtyError::Setup)?;
        let fl = fcntl(master.as_raw_fd(), FcntlArg::F_GETFL).map_err(PtyError::Setup)?;
        fcntl(
            master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        )
        .map_err(PtyError::Setup)?;
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| PtyError::Slave {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            master,
            _slave: slave,
            path,
        })
    }

    /// The slave's path (`/dev/pts/N`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Reads what a client typed (non-blocking).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.master.read(buf)
    }

    /// Writes console output (non-blocking).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.master.write(buf)
    }
}

impl AsRawFd for Pty {
    fn as_raw_fd(&self) -> RawFd {
        self.master.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_the_pty_both_ways_unchanged() {
        let mut p = Pty::open().expect("pty");
        assert!(p.path().starts_with("/dev/pts/"));
        let mut client = OpenOptions::new()
            .read(true)
            .write(true)
            .open(p.path())
            .expect("open slave");
        // Raw mode: no CR/LF translation, no echo.
        assert_eq!(p.write(b"a\nb\r").expect("write"), 4);
        let mut buf = [0u8; 16];
        let n = client.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"a\nb\r");
        client.write_all(b"ls\r").expect("type");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = p.read(&mut buf).expect("read master");
        assert_eq!(&buf[..n], b"ls\r");
        // The master holds nothing more.
        assert!(matches!(p.read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    }
}
