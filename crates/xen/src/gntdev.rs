//! `/dev/xen/gntdev`: mapping other domains' grants (Linux include/uapi/xen/gntdev.h,
//! drivers/xen/gntdev.c).

use crate::abi::linux::*;
use crate::abi::xen::{DomId, GrantRef, XEN_PAGE_SIZE};
use crate::ioctl::ioctl_with_ptr;
use crate::mem::{FileImage, MappedMemory};
use crate::traits::{GrantMapper, GrantPageMapper};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

/// Path of the grant device.
pub const GNTDEV_PATH: &str = "/dev/xen/gntdev";

/// Errors of grant mapping.
#[derive(Debug, thiserror::Error)]
pub enum GntdevError {
    #[error("cannot open {GNTDEV_PATH}")]
    Open(#[source] io::Error),
    #[error("no grant references given")]
    Empty,
    #[error("{0} grant references are too many for one mapping")]
    TooMany(usize),
    #[error("mapping {count} grants of domain {domid} failed")]
    Map {
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
    #[error("clearing a byte on unmap needs a writable mapping")]
    ReadOnly,
    #[error("offset {offset} is outside the mapping")]
    BadOffset { offset: usize },
    #[error("grant copy ioctl failed")]
    Copy(#[source] io::Error),
    #[error("grant copy segment {index} failed with status {status}")]
    CopySegment { index: usize, status: i16 },
    #[error("grant pieces of {pieces} bytes in all do not match a {buffer}-byte buffer")]
    LengthMismatch { pieces: usize, buffer: usize },
    #[error("setting the grant limit failed")]
    SetMax(#[source] io::Error),
    /// A fake refused the mapping (unknown grant, wrong domain).
    #[error("{0}")]
    Fake(&'static str),
}

/// An open `/dev/xen/gntdev`.
#[derive(Debug, Clone)]
pub struct Gntdev {
    file: Arc<File>,
}

/// Granted pages mapped contiguously; unmapped (ioctl) on drop, and the memory
/// itself when the last view of it goes.
#[derive(Debug)]
pub struct GrantMapping {
    mem: MappedMemory,
    index: u64,
    count: u32,
    writable: bool,
    file: Arc<File>,
}

impl GrantMapping {
    /// The mapped pages.
    pub fn memory(&self) -> &MappedMemory {
        &self.mem
    }
    /// The number of pages.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl std::ops::Deref for GrantMapping {
    type Target = MappedMemory;
    fn deref(&self) -> &MappedMemory {
        &self.mem
    }
}

impl Drop for GrantMapping {
    fn drop(&mut self) {
        unmap_index(&self.file, self.index, self.count);
    }
}

/// One page of a [`GrantMapping`] of several grants ([`Gntdev::map_grant_pages`]):
/// the pages of one mapping stay mapped while any of them lives.
#[derive(Debug, Clone)]
pub struct GrantPage {
    mem: MappedMemory,
    _mapping: Arc<GrantMapping>,
}

impl std::ops::Deref for GrantPage {
    type Target = MappedMemory;
    fn deref(&self) -> &MappedMemory {
        &self.mem
    }
}

/// Unregisters `count` grants at `index` (`IOCTL_GNTDEV_UNMAP_GRANT_REF`); pages
/// still mmapped stay valid until their VMA goes.
fn unmap_index(file: &File, index: u64, count: u32) {
    let mut u = IoctlGntdevUnmapGrantRef {
        index,
        count,
        pad: 0,
    };
    // SAFETY: IOCTL_GNTDEV_UNMAP_GRANT_REF with its argument struct, read during
    // the call only.
    if let Err(e) = unsafe { ioctl_with_ptr(file, IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut u) } {
        tracing::warn!("gntdev unmap failed: {e}");
    }
}

/// One grant copy operation; see [`Gntdev::grant_copy`].
pub type GrantCopySegment = IoctlGntdevGrantCopySegment;

impl Gntdev {
    /// Opens the device.
    pub fn open() -> Result<Self, GntdevError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(GNTDEV_PATH)
            .map_err(GntdevError::Open)?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    /// Limits how many grants this fd may map (`IOCTL_GNTDEV_SET_MAX_GRANTS`;
    /// ignored by recent kernels).
    pub fn set_max_grants(&self, count: u32) -> Result<(), GntdevError> {
        let mut a = IoctlGntdevSetMaxGrants { count };
        // SAFETY: the ioctl with its argument struct, read during the call only.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTDEV_SET_MAX_GRANTS, &mut a) }
            .map_err(GntdevError::SetMax)?;
        Ok(())
    }

    /// Maps grants `refs` of `domid` into one contiguous range of pages.
    pub fn map_grant_refs(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<GrantMapping, GntdevError> {
        if refs.is_empty() {
            return Err(GntdevError::Empty);
        }
        let count = u32::try_from(refs.len()).map_err(|_| GntdevError::TooMany(refs.len()))?;
        // The ioctl struct is a 16-byte head and `count` {domid, ref} pairs; build
        // it in a u64 buffer so that it is 8-byte aligned.
        let words = 2 + refs.len();
        let mut buf = vec![0u64; words];
        buf[0] = u64::from(count);
        for (i, r) in refs.iter().enumerate() {
            buf[2 + i] = u64::from(domid) | (u64::from(*r) << 32);
        }
        // SAFETY: `buf` holds a map_grant_ref head followed by `count` refs, as
        // the kernel reads (count from the head); it lives across the call.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTDEV_MAP_GRANT_REF, buf.as_mut_ptr()) }
            .map_err(|source| GntdevError::Map {
                domid,
                count: refs.len(),
                source,
            })?;
        let index = buf[1];
        let len = refs.len() * XEN_PAGE_SIZE;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: maps the grants just registered at `index`; a fresh mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                index as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            let source = io::Error::last_os_error();
            // Roll back the registration.
            unmap_index(&self.file, index, count);
            return Err(GntdevError::Mmap {
                count: refs.len(),
                source,
            });
        }
        Ok(GrantMapping {
            // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
            mem: unsafe { MappedMemory::from_raw_mmap(ptr, len) },
            index,
            count,
            writable,
            file: Arc::clone(&self.file),
        })
    }

    /// Maps grants `refs` of `domid` with one `IOCTL_GNTDEV_MAP_GRANT_REF` and one
    /// `mmap`, and hands back each page on its own, in the order of `refs`
    /// (rxblkback's persistent grants). The kernel maps all or none: if one
    /// grant cannot be mapped, the call fails.
    pub fn map_grant_pages(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<Vec<GrantPage>, GntdevError> {
        let mapping = Arc::new(self.map_grant_refs(domid, refs, writable)?);
        (0..refs.len())
            .map(|i| {
                let mem = mapping
                    .mem
                    .sub(i * XEN_PAGE_SIZE, XEN_PAGE_SIZE)
                    .map_err(|_| GntdevError::BadOffset {
                        offset: i * XEN_PAGE_SIZE,
                    })?;
                Ok(GrantPage {
                    mem,
                    _mapping: Arc::clone(&mapping),
                })
            })
            .collect()
    }

    /// Asks the kernel to clear the byte at `offset` of `mapping` and/or notify
    /// `port` when the mapping goes away (also when this process dies).
    pub fn set_unmap_notify(
        &self,
        mapping: &GrantMapping,
        offset: usize,
        action: u32,
        port: u32,
    ) -> Result<(), GntdevError> {
        if offset >= mapping.mem.len() {
            return Err(GntdevError::BadOffset { offset });
        }
        // The kernel refuses (EINVAL) to clear a byte of a read-only mapping.
        if action & UNMAP_NOTIFY_CLEAR_BYTE != 0 && !mapping.writable {
            return Err(GntdevError::ReadOnly);
        }
        let mut n = IoctlUnmapNotify {
            index: mapping.index + offset as u64,
            action,
            event_channel_port: port,
        };
        // SAFETY: the ioctl with its argument struct, read during the call only.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &mut n) }
            .map_err(GntdevError::UnmapNotify)?;
        Ok(())
    }

    /// Copies between grants and local memory (`IOCTL_GNTDEV_GRANT_COPY`).
    ///
    /// # Safety
    /// Every local (`virt`) side of a segment must point at `len` bytes of memory
    /// of this process that are valid to read (source) or write (destination) and
    /// not referenced by Rust references during the call.
    pub unsafe fn grant_copy(&self, segments: &mut [GrantCopySegment]) -> Result<(), GntdevError> {
        let mut c = IoctlGntdevGrantCopy {
            count: segments.len() as u32,
            _pad: 0,
            segments: segments.as_mut_ptr(),
        };
        // SAFETY: `c` points at `count` segments that live across the call; the
        // caller guarantees the local addresses inside them.
        unsafe { ioctl_with_ptr(&self.file, IOCTL_GNTDEV_GRANT_COPY, &mut c) }
            .map_err(GntdevError::Copy)?;
        if let Some((index, s)) = segments.iter().enumerate().find(|(_, s)| s.status != 0) {
            return Err(GntdevError::CopySegment {
                index,
                status: s.status,
            });
        }
        Ok(())
    }
}

impl Gntdev {
    /// Copies `dst.len()` bytes at `offset` of grant `gref` of `domid` into
    /// `dst`, without mapping it.
    pub fn copy_from_grant(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        let len = copy_len(offset, dst.len())?;
        let mut seg = [GrantCopySegment {
            source: GntdevCopyPtr::foreign(gref, offset, domid),
            dest: GntdevCopyPtr::virt(dst.as_mut_ptr() as usize),
            len,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        }];
        // SAFETY: the only local side is `dst`, exclusively borrowed for the call
        // and `len` bytes long.
        unsafe { self.grant_copy(&mut seg) }
    }

    /// Copies `src` to `offset` of grant `gref` of `domid`, without mapping it.
    pub fn copy_to_grant(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        src: &[u8],
    ) -> Result<(), GntdevError> {
        let len = copy_len(offset, src.len())?;
        let mut seg = [GrantCopySegment {
            source: GntdevCopyPtr::virt(src.as_ptr() as usize),
            dest: GntdevCopyPtr::foreign(gref, offset, domid),
            len,
            flags: GNTCOPY_DEST_GREF,
            ..Default::default()
        }];
        // SAFETY: the only local side is `src`, borrowed for the call (the kernel
        // only reads it) and `len` bytes long.
        unsafe { self.grant_copy(&mut seg) }
    }
}

/// One piece of a foreign grant: `len` bytes at `offset` of `gref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrantPiece {
    pub gref: GrantRef,
    pub offset: u16,
    pub len: u16,
}

impl Gntdev {
    /// Copies `pieces` of `domid`'s grants, in order, into consecutive bytes of
    /// `dst` (exactly their total length), in one `IOCTL_GNTDEV_GRANT_COPY`.
    pub fn copy_from_grants(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        let mut segs = batch(pieces, dst.len())?;
        let base = dst.as_mut_ptr() as usize;
        let mut at = 0usize;
        for (seg, p) in segs.iter_mut().zip(pieces) {
            *seg = GrantCopySegment {
                source: GntdevCopyPtr::foreign(p.gref, p.offset, domid),
                dest: GntdevCopyPtr::virt(base + at),
                len: p.len,
                flags: GNTCOPY_SOURCE_GREF,
                ..Default::default()
            };
            at += usize::from(p.len);
        }
        // SAFETY: every local side lies within `dst` (`batch` checked that the
        // pieces add up to its length), exclusively borrowed for the call.
        unsafe { self.grant_copy(&mut segs) }
    }

    /// Copies consecutive bytes of `src` (exactly the pieces' total length) to
    /// `pieces` of `domid`'s grants, in one `IOCTL_GNTDEV_GRANT_COPY`.
    pub fn copy_to_grants(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
    ) -> Result<(), GntdevError> {
        let mut segs = to_grants_from(domid, src.as_ptr() as usize, src.len(), pieces)?;
        // SAFETY: every local side lies within `src` (`batch` checked that the
        // pieces add up to its length), borrowed for the call; the kernel only
        // reads it.
        unsafe { self.grant_copy(&mut segs) }
    }

    /// Copies the bytes of `src` from `offset` on (exactly the pieces' total
    /// length) to `pieces` of `domid`'s grants, in one `IOCTL_GNTDEV_GRANT_COPY`,
    /// straight from the file's mapping: the kernel pins its pages, nothing is
    /// read into a buffer first.
    pub fn copy_file_to_grants(
        &self,
        domid: DomId,
        src: &FileImage,
        offset: usize,
        pieces: &[GrantPiece],
    ) -> Result<(), GntdevError> {
        let total: usize = pieces.iter().map(|p| usize::from(p.len)).sum();
        let base = src
            .addr(offset, total)
            .map_err(|_| GntdevError::LengthMismatch {
                pieces: total,
                buffer: src.len().saturating_sub(offset),
            })?;
        let mut segs = to_grants_from(domid, base, total, pieces)?;
        // SAFETY: every local side lies within `total` bytes of `src`'s mapping
        // from `offset` (`addr` checked the range), which `src` keeps mapped for
        // the call; it is never referenced by Rust references, and the kernel only
        // reads it (a page of a file shortened meanwhile fails the copy).
        unsafe { self.grant_copy(&mut segs) }
    }
}

impl Gntdev {
    /// Copies piece *k* of `pieces` from its own place in `src`,
    /// `src[at[k]..at[k] + len]`, to `domid`'s grant, all in one
    /// `IOCTL_GNTDEV_GRANT_COPY` (the receive side of a NIC: several frames
    /// in one call, each page-sized piece within one local page).
    pub fn copy_to_grants_at(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
        at: &[usize],
    ) -> Result<(), GntdevError> {
        let mut segs = scattered(pieces, at, src.len())?;
        let base = src.as_ptr() as usize;
        for ((seg, p), &a) in segs.iter_mut().zip(pieces).zip(at) {
            *seg = GrantCopySegment {
                source: GntdevCopyPtr::virt(base + a),
                dest: GntdevCopyPtr::foreign(p.gref, p.offset, domid),
                len: p.len,
                flags: GNTCOPY_DEST_GREF,
                ..Default::default()
            };
        }
        // SAFETY: every local side lies within `src` (`scattered` checked each
        // `at[k] + len` against its length), borrowed for the call; the kernel
        // only reads it.
        unsafe { self.grant_copy(&mut segs) }
    }

    /// Copies each of `pieces` of `domid`'s grants to its own place in `dst`:
    /// piece *k* to `dst[at[k]..at[k] + len]`, all in one
    /// `IOCTL_GNTDEV_GRANT_COPY`. The kernel splits a segment whose local side
    /// crosses a page boundary into two copy operations (two page pins); a
    /// caller that puts each piece within one local page gets one each.
    pub fn copy_from_grants_at(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        at: &[usize],
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        let mut segs = scattered(pieces, at, dst.len())?;
        let base = dst.as_mut_ptr() as usize;
        for ((seg, p), &a) in segs.iter_mut().zip(pieces).zip(at) {
            *seg = GrantCopySegment {
                source: GntdevCopyPtr::foreign(p.gref, p.offset, domid),
                dest: GntdevCopyPtr::virt(base + a),
                len: p.len,
                flags: GNTCOPY_SOURCE_GREF,
                ..Default::default()
            };
        }
        // SAFETY: every local side lies within `dst` (`scattered` checked each
        // `at[k] + len` against its length), exclusively borrowed for the call.
        unsafe { self.grant_copy(&mut segs) }
    }
}

/// Segments for `pieces` placed at `at` in a buffer of `buffer` bytes (each
/// piece within its grant's page and within the buffer).
fn scattered(
    pieces: &[GrantPiece],
    at: &[usize],
    buffer: usize,
) -> Result<Vec<GrantCopySegment>, GntdevError> {
    if at.len() != pieces.len() {
        return Err(GntdevError::LengthMismatch {
            pieces: pieces.len(),
            buffer: at.len(),
        });
    }
    for (p, &a) in pieces.iter().zip(at) {
        copy_len(p.offset, usize::from(p.len))?;
        let end = a.saturating_add(usize::from(p.len));
        if end > buffer {
            return Err(GntdevError::LengthMismatch {
                pieces: end,
                buffer,
            });
        }
    }
    Ok(vec![GrantCopySegment::default(); pieces.len()])
}

/// The segments of a copy of `len` local bytes at address `base`, in order, to
/// `pieces` of `domid`'s grants (`batch` checks that the pieces add up to `len`).
fn to_grants_from(
    domid: DomId,
    base: usize,
    len: usize,
    pieces: &[GrantPiece],
) -> Result<Vec<GrantCopySegment>, GntdevError> {
    let mut segs = batch(pieces, len)?;
    let mut at = 0usize;
    for (seg, p) in segs.iter_mut().zip(pieces) {
        *seg = GrantCopySegment {
            source: GntdevCopyPtr::virt(base + at),
            dest: GntdevCopyPtr::foreign(p.gref, p.offset, domid),
            len: p.len,
            flags: GNTCOPY_DEST_GREF,
            ..Default::default()
        };
        at += usize::from(p.len);
    }
    Ok(segs)
}

/// Segments for `pieces` (each within its page, adding up to `buffer` bytes).
fn batch(pieces: &[GrantPiece], buffer: usize) -> Result<Vec<GrantCopySegment>, GntdevError> {
    let mut total = 0usize;
    for p in pieces {
        copy_len(p.offset, usize::from(p.len))?;
        total += usize::from(p.len);
    }
    if total != buffer {
        return Err(GntdevError::LengthMismatch {
            pieces: total,
            buffer,
        });
    }
    Ok(vec![GrantCopySegment::default(); pieces.len()])
}

/// A grant copy stays within one page.
fn copy_len(offset: u16, len: usize) -> Result<u16, GntdevError> {
    if usize::from(offset) + len > XEN_PAGE_SIZE {
        return Err(GntdevError::BadOffset {
            offset: usize::from(offset) + len,
        });
    }
    Ok(len as u16)
}

impl GrantMapper for Gntdev {
    type Mapping = GrantMapping;
    fn map_grants(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<GrantMapping, GntdevError> {
        self.map_grant_refs(domid, refs, writable)
    }
}

impl GrantPageMapper for Gntdev {
    type Page = GrantPage;
    fn map_pages(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<Vec<GrantPage>, GntdevError> {
        self.map_grant_pages(domid, refs, writable)
    }
}
