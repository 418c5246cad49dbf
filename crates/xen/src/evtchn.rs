//! `/dev/xen/evtchn`: event channels of this domain (Linux include/uapi/xen/evtchn.h,
//! drivers/xen/evtchn.c).
//!
//! Each bound port is masked when it fires; reading the device returns pending
//! ports (4 bytes each), writing a port back unmasks it.

use crate::abi::linux::*;
use crate::abi::xen::{DomId, EvtchnPort};
use crate::ioctl::ioctl_with_ptr;
use crate::traits::EventChannels;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Path of the event channel device.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// Errors of event channel operations.
#[derive(Debug, thiserror::Error)]
pub enum EvtchnError {
    #[error("cannot open {EVTCHN_PATH}")]
    Open(#[source] io::Error),
    #[error("binding to port {remote_port} of domain {remote_domain} failed")]
    BindInterdomain {
        remote_domain: DomId,
        remote_port: EvtchnPort,
        #[source]
        source: io::Error,
    },
    #[error("allocating an unbound port for domain {remote_domain} failed")]
    BindUnbound {
        remote_domain: DomId,
        #[source]
        source: io::Error,
    },
    #[error("binding VIRQ {virq} failed")]
    BindVirq {
        virq: u32,
        #[source]
        source: io::Error,
    },
    #[error("unbinding port {port} failed")]
    Unbind {
        port: EvtchnPort,
        #[source]
        source: io::Error,
    },
    #[error("notifying port {port} failed")]
    Notify {
        port: EvtchnPort,
        #[source]
        source: io::Error,
    },
    #[error("unmasking port {port} failed")]
    Unmask {
        port: EvtchnPort,
        #[source]
        source: io::Error,
    },
    #[error("reading pending ports failed")]
    Read(#[source] io::Error),
    #[error("restricting to domain {domid} failed")]
    Restrict {
        domid: DomId,
        #[source]
        source: io::Error,
    },
    /// A fake was told to fail, or refused an operation.
    #[error("{0}")]
    Fake(&'static str),
}

/// An open `/dev/xen/evtchn` (non-blocking: [`Evtchn::pending`] returns `None`
/// when nothing is pending, and the fd can be registered with mio).
#[derive(Debug)]
pub struct Evtchn {
    file: File,
}

impl Evtchn {
    /// Opens the device in non-blocking mode.
    pub fn open() -> Result<Self, EvtchnError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(EVTCHN_PATH)
            .map_err(EvtchnError::Open)?;
        Ok(Self { file })
    }

    fn ioctl<T>(&self, req: u64, arg: &mut T) -> io::Result<i32> {
        // SAFETY: every caller passes the argument struct that `req` encodes
        // (checked by the layout tests); the kernel reads it only during the call.
        unsafe { ioctl_with_ptr(&self.file, req, arg) }
    }

    /// Binds a local port to `remote_port` of `remote_domain`.
    pub fn bind_interdomain(
        &self,
        remote_domain: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EvtchnError> {
        let mut a = IoctlEvtchnBindInterdomain {
            remote_domain: remote_domain.into(),
            remote_port,
        };
        self.ioctl(IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut a)
            .map(|p| p as EvtchnPort)
            .map_err(|source| EvtchnError::BindInterdomain {
                remote_domain,
                remote_port,
                source,
            })
    }

    /// Allocates a local port that `remote_domain` may bind to.
    pub fn bind_unbound_port(&self, remote_domain: DomId) -> Result<EvtchnPort, EvtchnError> {
        let mut a = IoctlEvtchnBindUnboundPort {
            remote_domain: remote_domain.into(),
        };
        self.ioctl(IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut a)
            .map(|p| p as EvtchnPort)
            .map_err(|source| EvtchnError::BindUnbound {
                remote_domain,
                source,
            })
    }

    /// Binds a virtual IRQ (e.g. [`crate::abi::xen::VIRQ_DOM_EXC`]).
    pub fn bind_virq(&self, virq: u32) -> Result<EvtchnPort, EvtchnError> {
        let mut a = IoctlEvtchnBindVirq { virq };
        self.ioctl(IOCTL_EVTCHN_BIND_VIRQ, &mut a)
            .map(|p| p as EvtchnPort)
            .map_err(|source| EvtchnError::BindVirq { virq, source })
    }

    /// Unbinds (and closes) a port bound through this fd.
    pub fn unbind(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        let mut a = IoctlEvtchnPort { port };
        self.ioctl(IOCTL_EVTCHN_UNBIND, &mut a)
            .map(|_| ())
            .map_err(|source| EvtchnError::Unbind { port, source })
    }

    /// Sends an event on a port bound through this fd.
    pub fn notify(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        let mut a = IoctlEvtchnPort { port };
        self.ioctl(IOCTL_EVTCHN_NOTIFY, &mut a)
            .map(|_| ())
            .map_err(|source| EvtchnError::Notify { port, source })
    }

    /// Restricts this fd to ports of one domain (`IOCTL_EVTCHN_RESTRICT_DOMID`).
    pub fn restrict_domid(&self, domid: DomId) -> Result<(), EvtchnError> {
        let mut a = IoctlEvtchnRestrictDomid { domid };
        self.ioctl(IOCTL_EVTCHN_RESTRICT_DOMID, &mut a)
            .map(|_| ())
            .map_err(|source| EvtchnError::Restrict { domid, source })
    }

    /// The next pending port, or `None` when none is pending. The port stays
    /// masked until [`Evtchn::unmask`].
    pub fn pending(&self) -> Result<Option<EvtchnPort>, EvtchnError> {
        let mut b = [0u8; 4];
        match (&self.file).read(&mut b) {
            Ok(4) => Ok(Some(u32::from_ne_bytes(b))),
            Ok(n) => Err(EvtchnError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read of {n} bytes"),
            ))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(EvtchnError::Read(e)),
        }
    }

    /// Unmasks a port so that it can fire again.
    pub fn unmask(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        (&self.file)
            .write_all(&port.to_ne_bytes())
            .map_err(|source| EvtchnError::Unmask { port, source })
    }

    /// Takes every pending port and unmasks it again, for a reader that serves all
    /// of its ports on any event (one ring per handle): the next notification then
    /// wakes it. Returns how many ports were pending. Up to [`ACK_BATCH`] ports
    /// are read and unmasked per system call (a short read means none is left,
    /// so the usual case is one read and one write). A failed unmask is logged
    /// and the others still served; a failed read is returned.
    pub fn acknowledge_pending(&self) -> Result<usize, EvtchnError> {
        let mut count = 0;
        loop {
            let mut buf = [0u8; PORT_BYTES * ACK_BATCH];
            let n = match (&self.file).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(count),
                Err(e) => return Err(EvtchnError::Read(e)),
            };
            if n % PORT_BYTES != 0 {
                return Err(EvtchnError::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {n} bytes, not whole ports"),
                )));
            }
            if n > 0 {
                if let Err(e) = (&self.file).write_all(&buf[..n]) {
                    tracing::warn!(ports = n / PORT_BYTES, error = %e, "unmask failed");
                }
            }
            count += n / PORT_BYTES;
            if n < buf.len() {
                return Ok(count);
            }
        }
    }
}

/// Bytes of one port as `/dev/xen/evtchn` reads and writes them.
const PORT_BYTES: usize = std::mem::size_of::<EvtchnPort>();
/// Most ports [`Evtchn::acknowledge_pending`] takes per read.
pub const ACK_BATCH: usize = 16;

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Evtchn {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl EventChannels for Evtchn {
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EvtchnError> {
        Evtchn::bind_interdomain(self, remote, remote_port)
    }
    fn bind_unbound_port(&self, remote: DomId) -> Result<EvtchnPort, EvtchnError> {
        Evtchn::bind_unbound_port(self, remote)
    }
    fn bind_virq(&self, virq: u32) -> Result<EvtchnPort, EvtchnError> {
        Evtchn::bind_virq(self, virq)
    }
    fn unbind(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        Evtchn::unbind(self, port)
    }
    fn notify(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        Evtchn::notify(self, port)
    }
    fn pending(&self) -> Result<Option<EvtchnPort>, EvtchnError> {
        Evtchn::pending(self)
    }
    fn unmask(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        Evtchn::unmask(self, port)
    }
}
