//! `/dev/xen/privcmd`: hypercalls and foreign memory mappings
//! (Linux include/uapi/xen/privcmd.h, drivers/xen/privcmd.c).

use crate::abi::linux::{
    PrivcmdHypercall, PrivcmdMmapBatchV2, PrivcmdMmapResource, IOCTL_PRIVCMD_HYPERCALL,
    IOCTL_PRIVCMD_MMAPBATCH_V2, IOCTL_PRIVCMD_MMAP_RESOURCE,
};
use crate::abi::xen::{DomId, XenPfn, XEN_PAGE_SIZE};
use crate::hypercall::{HypercallBufError, HypercallDevice};
use crate::ioctl::ioctl_with_ptr;
use crate::mem::MappedMemory;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Path of the privcmd device.
pub const PRIVCMD_PATH: &str = "/dev/xen/privcmd";

/// Errors of privcmd operations.
#[derive(Debug, thiserror::Error)]
pub enum PrivcmdError {
    /// Opening the device failed.
    #[error("cannot open {PRIVCMD_PATH}")]
    Open(#[source] io::Error),
    /// The hypercall failed; the error carries Xen's errno.
    #[error("hypercall {op} failed")]
    Hypercall {
        op: u64,
        #[source]
        source: io::Error,
    },
    /// Reserving address space for a foreign mapping failed.
    #[error("cannot reserve {len} bytes for a foreign mapping")]
    Reserve {
        len: usize,
        #[source]
        source: io::Error,
    },
    /// The mapping ioctl failed as a whole.
    #[error("foreign mapping of {count} frames of domain {domid} failed")]
    Map {
        domid: DomId,
        count: usize,
        #[source]
        source: io::Error,
    },
    /// Some frames of a batch could not be mapped (privcmd returns success with
    /// errors in its per-frame array).
    #[error("frame {index} (gfn {gfn:#x}) of domain {domid} could not be mapped")]
    Frame {
        domid: DomId,
        index: usize,
        gfn: XenPfn,
        #[source]
        source: io::Error,
    },
    /// Too many frames for one ioctl.
    #[error("{0} frames are too many for one mapping")]
    TooMany(usize),
    /// Hypercall buffer allocation failed.
    #[error(transparent)]
    Buffer(#[from] HypercallBufError),
}

/// An open `/dev/xen/privcmd` with its hypercall buffer device.
#[derive(Debug)]
pub struct Privcmd {
    file: File,
    buffers: HypercallDevice,
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd` and `/dev/xen/hypercall`.
    pub fn open() -> Result<Self, PrivcmdError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(PRIVCMD_PATH)
            .map_err(PrivcmdError::Open)?;
        let buffers = HypercallDevice::open()?;
        Ok(Self { file, buffers })
    }

    /// Allocates a hypercall buffer of at least `len` bytes.
    pub fn alloc_buffer(&self, len: usize) -> Result<MappedMemory, PrivcmdError> {
        Ok(self.buffers.alloc(len)?)
    }

    /// Issues hypercall `op` with five arguments (`IOCTL_PRIVCMD_HYPERCALL`) and
    /// returns its non-negative result; a negative result becomes the error.
    ///
    /// # Safety
    /// Any argument that Xen interprets as an address must point into a hypercall
    /// buffer ([`Privcmd::alloc_buffer`]) that is alive and large enough for what
    /// Xen reads and writes there; the hypercall must not affect this process's
    /// memory in any other way.
    pub unsafe fn hypercall(&self, op: u64, args: [u64; 5]) -> Result<i64, PrivcmdError> {
        let mut call = PrivcmdHypercall { op, arg: args };
        // SAFETY: `call` is a valid privcmd_hypercall for this ioctl number; the
        // caller guarantees that address arguments point into live buffers.
        let rc = unsafe { ioctl_with_ptr(&self.file, IOCTL_PRIVCMD_HYPERCALL, &mut call) }
            .map_err(|source| PrivcmdError::Hypercall { op, source })?;
        Ok(i64::from(rc))
    }

    fn reserve(&self, pages: usize, prot: i32) -> Result<MappedMemory, PrivcmdError> {
        let len = pages * XEN_PAGE_SIZE;
        // SAFETY: a fresh shared mapping of the privcmd device that only reserves
        // address space; the following ioctl fills it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(PrivcmdError::Reserve {
                len,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
        Ok(unsafe { MappedMemory::from_raw_mmap(ptr, len) })
    }

    /// Maps frames `gfns` of domain `domid` (`IOCTL_PRIVCMD_MMAPBATCH_V2`) and
    /// returns the mapping with the per-frame error array (0 or a negative errno
    /// per frame). Prefer [`Privcmd::map_foreign`], which fails on any error.
    pub fn map_foreign_batch(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<(MappedMemory, Vec<i32>), PrivcmdError> {
        let num = u32::try_from(gfns.len()).map_err(|_| PrivcmdError::TooMany(gfns.len()))?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let mem = self.reserve(gfns.len(), prot)?;
        let mut errs = vec![0i32; gfns.len()];
        let mut batch = PrivcmdMmapBatchV2 {
            num,
            dom: domid,
            _pad: 0,
            addr: mem.addr() as u64,
            arr: gfns.as_ptr(),
            err: errs.as_mut_ptr(),
        };
        // SAFETY: `batch` points at `num` frames and `num` error slots that live
        // across the call, and at a privcmd VMA of exactly `num` pages.
        let rc = unsafe { ioctl_with_ptr(&self.file, IOCTL_PRIVCMD_MMAPBATCH_V2, &mut batch) };
        if let Err(e) = rc {
            // ENOENT means "some frames are paged out": the array tells which.
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(PrivcmdError::Map {
                    domid,
                    count: gfns.len(),
                    source: e,
                });
            }
        }
        Ok((mem, errs))
    }

    /// Maps frames `gfns` of domain `domid` contiguously, failing (and unmapping)
    /// if any frame could not be mapped.
    pub fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        let (mem, errs) = self.map_foreign_batch(domid, gfns, writable)?;
        if let Some((index, &err)) = errs.iter().enumerate().find(|(_, &e)| e != 0) {
            return Err(PrivcmdError::Frame {
                domid,
                index,
                gfn: gfns[index],
                source: io::Error::from_raw_os_error(-err),
            });
        }
        Ok(mem)
    }

    /// Maps `num` frames of resource `type_`/`id` of domain `domid` starting at
    /// frame `idx` (`IOCTL_PRIVCMD_MMAP_RESOURCE`, e.g. a grant table).
    pub fn map_resource(
        &self,
        domid: DomId,
        type_: u32,
        id: u32,
        idx: u32,
        num: usize,
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let mem = self.reserve(num, prot)?;
        let mut res = PrivcmdMmapResource {
            dom: domid,
            _pad: 0,
            type_,
            id,
            idx,
            num: num as u64,
            addr: mem.addr() as u64,
        };
        // SAFETY: `res` describes the privcmd VMA of `num` pages made above.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_PRIVCMD_MMAP_RESOURCE, &mut res) }.map_err(
            |source| PrivcmdError::Map {
                domid,
                count: num,
                source,
            },
        )?;
        Ok(mem)
    }
}

impl AsFd for Privcmd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
