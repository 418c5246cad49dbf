//! `/dev/xen/xenbus_backend`: what a dom0 xenstored needs from the kernel
//! (Linux drivers/xen/xenbus/xenbus_dev_backend.c, include/xen/xenbus_dev.h).

use crate::abi::linux::IOCTL_XENBUS_BACKEND_EVTCHN;
use crate::abi::xen::{EvtchnPort, XEN_PAGE_SIZE};
use crate::ioctl::ioctl_with_ptr;
use crate::mem::MappedMemory;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Path of the device.
pub const XENBUS_BACKEND_PATH: &str = "/dev/xen/xenbus_backend";

/// Errors of the xenbus backend device.
#[derive(Debug, thiserror::Error)]
pub enum XenbusBackendError {
    #[error("cannot open {XENBUS_BACKEND_PATH}")]
    Open(#[source] io::Error),
    #[error("the kernel has no xenstore event channel")]
    Evtchn(#[source] io::Error),
    #[error("mapping the dom0 xenstore page failed")]
    Mmap(#[source] io::Error),
}

/// An open `/dev/xen/xenbus_backend`.
#[derive(Debug)]
pub struct XenbusBackend {
    file: File,
}

impl XenbusBackend {
    /// Opens the device (root only).
    pub fn open() -> Result<Self, XenbusBackendError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(XENBUS_BACKEND_PATH)
            .map_err(XenbusBackendError::Open)?;
        Ok(Self { file })
    }

    /// The dom0 end of the xenstore event channel (the port xenstored binds
    /// interdomain to, from domain 0).
    pub fn evtchn(&self) -> Result<EvtchnPort, XenbusBackendError> {
        // SAFETY: IOCTL_XENBUS_BACKEND_EVTCHN takes no argument.
        let rc = unsafe {
            ioctl_with_ptr(
                &self.file,
                IOCTL_XENBUS_BACKEND_EVTCHN,
                std::ptr::null_mut::<()>(),
            )
        }
        .map_err(XenbusBackendError::Evtchn)?;
        Ok(rc as EvtchnPort)
    }

    /// Maps dom0's xenstore ring page (`struct xenstore_domain_interface`).
    pub fn map_interface(&self) -> Result<MappedMemory, XenbusBackendError> {
        // SAFETY: the device maps exactly one page, the kernel's xenstore ring;
        // a fresh mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                XEN_PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(XenbusBackendError::Mmap(io::Error::last_os_error()));
        }
        // SAFETY: `ptr` is the one-page mapping just made, owned by nothing else.
        Ok(unsafe { MappedMemory::from_raw_mmap(ptr, XEN_PAGE_SIZE) })
    }
}
