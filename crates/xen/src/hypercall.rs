//! Hypercall buffers from `/dev/xen/hypercall` (Linux drivers/xen/privcmd-buf.c).
//!
//! Memory passed to a hypercall must stay present and must not move while Xen
//! reads it; the hypercall device hands out such pages. As libxencall does, when
//! the device is absent (kernels before 4.18) locked anonymous memory that is not
//! inherited by children is used instead.

use crate::mem::{MappedMemory, MemError};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Path of the hypercall buffer device.
pub const HYPERCALL_PATH: &str = "/dev/xen/hypercall";

/// Errors of hypercall buffer allocation.
#[derive(Debug, thiserror::Error)]
pub enum HypercallBufError {
    /// Opening the device failed for another reason than its absence.
    #[error("cannot open {HYPERCALL_PATH}")]
    Open(#[source] io::Error),
    /// Mapping the buffer failed.
    #[error("cannot map a hypercall buffer of {len} bytes")]
    Map {
        len: usize,
        #[source]
        source: io::Error,
    },
    /// Access to the buffer failed.
    #[error(transparent)]
    Mem(#[from] MemError),
}

/// The hypercall buffer device (or its fallback when absent).
#[derive(Debug)]
pub struct HypercallDevice {
    file: Option<File>,
}

impl HypercallDevice {
    /// Opens `/dev/xen/hypercall`; when it does not exist, buffers come from
    /// locked anonymous memory.
    pub fn open() -> Result<Self, HypercallBufError> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(HYPERCALL_PATH)
        {
            Ok(file) => Ok(Self { file: Some(file) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!("{HYPERCALL_PATH} absent, using locked anonymous memory");
                Ok(Self { file: None })
            }
            Err(e) => Err(HypercallBufError::Open(e)),
        }
    }

    /// Whether buffers come from the device (rather than the fallback).
    pub fn is_device(&self) -> bool {
        self.file.is_some()
    }

    /// Allocates a zeroed buffer of at least `len` bytes (whole pages).
    pub fn alloc(&self, len: usize) -> Result<MappedMemory, HypercallBufError> {
        let page = crate::abi::xen::XEN_PAGE_SIZE;
        let len = len.max(1).div_ceil(page) * page;
        let (flags, fd) = match &self.file {
            Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED,
                -1,
            ),
        };
        // SAFETY: a fresh mapping of the hypercall device (or anonymous memory);
        // no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(HypercallBufError::Map {
                len,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `ptr`/`len` is the mapping just made and owned by nothing else.
        let mem = unsafe { MappedMemory::from_raw_mmap(ptr, len) };
        if self.file.is_none() {
            // SAFETY: madvise on the mapping made above; DONTFORK keeps a child
            // from sharing (and copy-on-write faulting) the buffer, as libxencall.
            let rc = unsafe { libc::madvise(ptr, len, libc::MADV_DONTFORK) };
            if rc != 0 {
                return Err(HypercallBufError::Map {
                    len,
                    source: io::Error::last_os_error(),
                });
            }
        }
        // Touch every page so that it is present (the device zeroes its pages).
        mem.fill(0, len, 0)?;
        Ok(mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_buffers_are_zeroed_whole_pages() {
        let dev = HypercallDevice { file: None };
        // MAP_LOCKED may be refused under a small RLIMIT_MEMLOCK; only check the
        // result when the mapping succeeded.
        if let Ok(buf) = dev.alloc(10) {
            assert_eq!(buf.len(), crate::abi::xen::XEN_PAGE_SIZE);
            assert_eq!(buf.read::<u64>(4088).expect("read"), 0);
        }
    }
}
