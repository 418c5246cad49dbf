//! `/dev/xen/gntalloc`: granting this domain's pages to another domain
//! (Linux include/uapi/xen/gntalloc.h, drivers/xen/gntalloc.c).

use crate::abi::linux::*;
use crate::abi::xen::{DomId, GrantRef, XEN_PAGE_SIZE};
use crate::ioctl::ioctl_with_ptr;
use crate::mem::MappedMemory;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

/// Path of the grant allocation device.
pub const GNTALLOC_PATH: &str = "/dev/xen/gntalloc";

/// Errors of grant allocation.
#[derive(Debug, thiserror::Error)]
pub enum GntallocError {
    #[error("cannot open {GNTALLOC_PATH}")]
    Open(#[source] io::Error),
    #[error("no pages requested")]
    Empty,
    #[error("allocating {count} grants for domain {domid} failed")]
    Alloc {
        domid: DomId,
        count: usize,
        #[source]
        source: io::Error,
    },
    #[error("mmap of {count} granted pages failed")]
    Mmap {
        count: usize,
        #[source]
        source: io::Error,
    },
    #[error("setting the unmap notification failed")]
    UnmapNotify(#[source] io::Error),
    #[error("offset {offset} is outside the shared pages")]
    BadOffset { offset: usize },
}

/// An open `/dev/xen/gntalloc`.
#[derive(Debug, Clone)]
pub struct Gntalloc {
    file: Arc<File>,
}

/// Pages of this domain granted to another; the grants are released on drop
/// (the kernel ends access once the pages are unmapped, too).
#[derive(Debug)]
pub struct GrantShare {
    mem: MappedMemory,
    refs: Vec<GrantRef>,
    index: u64,
    file: Arc<File>,
}

impl GrantShare {
    /// The grant references, one per page, to give to the other domain.
    pub fn refs(&self) -> &[GrantRef] {
        &self.refs
    }
    /// The shared pages.
    pub fn memory(&self) -> &MappedMemory {
        &self.mem
    }
}

impl std::ops::Deref for GrantShare {
    type Target = MappedMemory;
    fn deref(&self) -> &MappedMemory {
        &self.mem
    }
}

fn dealloc(file: &File, index: u64, count: u32) {
    let mut d = IoctlGntallocDeallocGref {
        index,
        count,
        _pad: 0,
    };
    // SAFETY: IOCTL_GNTALLOC_DEALLOC_GREF with its argument struct, read during
    // the call only.
    if let Err(e) = unsafe { ioctl_with_ptr(file, IOCTL_GNTALLOC_DEALLOC_GREF, &mut d) } {
        tracing::warn!("gntalloc dealloc failed: {e}");
    }
}

impl Drop for GrantShare {
    fn drop(&mut self) {
        dealloc(&self.file, self.index, self.refs.len() as u32);
    }
}

impl Gntalloc {
    /// Opens the device.
    pub fn open() -> Result<Self, GntallocError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(GNTALLOC_PATH)
            .map_err(GntallocError::Open)?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    /// Allocates `count` zeroed pages granted to `domid` and maps them here.
    pub fn share(
        &self,
        domid: DomId,
        count: usize,
        writable: bool,
    ) -> Result<GrantShare, GntallocError> {
        if count == 0 {
            return Err(GntallocError::Empty);
        }
        let n = u32::try_from(count).map_err(|_| GntallocError::Alloc {
            domid,
            count,
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        // A 16-byte head then `count` u32 grant ids, in an 8-byte aligned buffer.
        let mut buf = vec![0u64; 2 + count.div_ceil(2)];
        let flags = if writable { GNTALLOC_FLAG_WRITABLE } else { 0 };
        buf[0] = u64::from(domid) | (u64::from(flags) << 16) | (u64::from(n) << 32);
        // SAFETY: `buf` holds an alloc_gref head with room for `count` grant ids
        // after it, as the kernel writes them; it lives across the call.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTALLOC_ALLOC_GREF, buf.as_mut_ptr()) }
            .map_err(|source| GntallocError::Alloc {
                domid,
                count,
                source,
            })?;
        let index = buf[1];
        let refs: Vec<GrantRef> = (0..count)
            .map(|i| {
                let w = buf[2 + i / 2];
                if i % 2 == 0 {
                    w as u32
                } else {
                    (w >> 32) as u32
                }
            })
            .collect();
        let len = count * XEN_PAGE_SIZE;
        // SAFETY: maps the pages just allocated at `index`; a fresh mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                index as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            let source = io::Error::last_os_error();
            dealloc(&self.file, index, n);
            return Err(GntallocError::Mmap { count, source });
        }
        Ok(GrantShare {
            // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
            mem: unsafe { MappedMemory::from_raw_mmap(ptr, len) },
            refs,
            index,
            file: Arc::clone(&self.file),
        })
    }

    /// Asks the kernel to clear the byte at `offset` and/or notify `port` when the
    /// share is unmapped (also when this process dies).
    pub fn set_unmap_notify(
        &self,
        share: &GrantShare,
        offset: usize,
        action: u32,
        port: u32,
    ) -> Result<(), GntallocError> {
        if offset >= share.mem.len() {
            return Err(GntallocError::BadOffset { offset });
        }
        let mut n = IoctlUnmapNotify {
            index: share.index + offset as u64,
            action,
            event_channel_port: port,
        };
        // SAFETY: the ioctl with its argument struct, read during the call only.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &mut n) }
            .map_err(GntallocError::UnmapNotify)?;
        Ok(())
    }
}
