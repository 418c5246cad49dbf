//! Mapped memory shared with the hypervisor or another domain.
//!
//! [`MappedMemory`] owns (a view of) an `mmap` and exposes only bounds-checked
//! volatile reads and writes: no Rust reference into the mapping is ever handed
//! out, because the other side may change the bytes at any time. Structs are read
//! out as copies ([`MappedMemory::read`]) and then validated by the caller.

use crate::abi::Pod;
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

/// Errors of mapped-memory access.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// The access would leave the mapping.
    #[error("access of {len} bytes at offset {offset} is outside a mapping of {size} bytes")]
    OutOfBounds {
        offset: usize,
        len: usize,
        size: usize,
    },
    /// The access is not aligned for its type.
    #[error("access at offset {offset} is not aligned to {align} bytes")]
    Misaligned { offset: usize, align: usize },
    /// Opening or inspecting a file to map failed.
    #[error("cannot open the file")]
    Open(#[source] io::Error),
    /// Reading a mapped file failed (it was shortened, or an I/O error).
    #[error("reading the file at offset {offset} failed")]
    Read {
        offset: usize,
        #[source]
        source: io::Error,
    },
    /// `mmap` failed.
    #[error("mmap of {len} bytes failed")]
    Mmap {
        len: usize,
        #[source]
        source: io::Error,
    },
}

/// One `mmap`ed region, unmapped when the last view of it is dropped.
#[derive(Debug)]
struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this process (or mapped from a
// device); every access goes through volatile reads and writes via raw pointers,
// never references, so moving or sharing the owner between threads is sound.
unsafe impl Send for Region {}
// SAFETY: as above; concurrent volatile accesses are the nature of shared memory
// and never create Rust references.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap that nothing else unmaps;
        // no references into it exist (only raw-pointer volatile accesses).
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if rc != 0 {
            tracing::warn!("munmap failed: {}", io::Error::last_os_error());
        }
    }
}

/// A view of mapped memory: bounds-checked volatile access only.
#[derive(Debug, Clone)]
pub struct MappedMemory {
    region: Arc<Region>,
    offset: usize,
    len: usize,
}

impl MappedMemory {
    /// Takes ownership of an existing mapping.
    ///
    /// # Safety
    /// `ptr` and `len` must describe a live mapping made by `mmap` that nothing
    /// else will unmap; it is unmapped when the last view is dropped.
    pub(crate) unsafe fn from_raw_mmap(ptr: *mut libc::c_void, len: usize) -> Self {
        let ptr = NonNull::new(ptr.cast::<u8>()).unwrap_or(NonNull::dangling());
        Self {
            region: Arc::new(Region { ptr, len }),
            offset: 0,
            len,
        }
    }

    /// Maps `len` bytes of zeroed anonymous memory: for fakes and tests, where it
    /// stands in for a page set shared with another domain.
    pub fn anonymous(len: usize) -> Result<Self, MemError> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemError::Mmap {
                len,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
        Ok(unsafe { Self::from_raw_mmap(ptr, len) })
    }

    /// Maps the first `len` bytes of `file` (open read-write) shared: stores land
    /// in the file's pages, so a later process that maps the file sees them even
    /// when this one was killed (rxblkback's request journal). For dom0-private
    /// state only; the file must not be shortened while mapped (that would make
    /// accesses fault), so it should live where only this program writes.
    pub fn map_file(file: &std::fs::File, len: usize) -> Result<Self, MemError> {
        use std::os::fd::AsRawFd;
        let size = file
            .metadata()
            .map_err(|source| MemError::Mmap { len, source })?;
        if len == 0 || size.len() < len as u64 {
            return Err(MemError::Mmap {
                len,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the file holds {} bytes", size.len()),
                ),
            });
        }
        // SAFETY: a fresh shared mapping of `len` bytes of an open file that is at
        // least that long; no existing memory of this process is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemError::Mmap {
                len,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
        Ok(unsafe { Self::from_raw_mmap(ptr, len) })
    }

    /// Length of this view in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first byte of this view, for passing to the kernel or
    /// hypervisor (never dereferenced as a Rust reference).
    pub fn addr(&self) -> usize {
        self.region.ptr.as_ptr() as usize + self.offset
    }

    /// A view of `len` bytes at `offset` within this one, sharing the mapping.
    pub fn sub(&self, offset: usize, len: usize) -> Result<Self, MemError> {
        self.check(offset, len, 1)?;
        Ok(Self {
            region: Arc::clone(&self.region),
            offset: self.offset + offset,
            len,
        })
    }

    /// A view starting where this one starts but `len` bytes long, within the
    /// same mapping (used by fakes to span adjacent pages).
    #[cfg(any(test, feature = "fake"))]
    pub(crate) fn widen(&self, len: usize) -> Result<Self, MemError> {
        let end = self.offset.checked_add(len);
        if end.is_none_or(|e| e > self.region.len) {
            return Err(MemError::OutOfBounds {
                offset: self.offset,
                len,
                size: self.region.len,
            });
        }
        Ok(Self {
            region: Arc::clone(&self.region),
            offset: self.offset,
            len,
        })
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8, MemError> {
        let end = offset.checked_add(len).ok_or(MemError::OutOfBounds {
            offset,
            len,
            size: self.len,
        })?;
        if end > self.len {
            return Err(MemError::OutOfBounds {
                offset,
                len,
                size: self.len,
            });
        }
        let addr = self.addr() + offset;
        if addr % align != 0 {
            return Err(MemError::Misaligned { offset, align });
        }
        // SAFETY: `self.offset + offset + len <= region.len` (views are checked on
        // creation and `end <= self.len` above), so the pointer stays inside the
        // mapping.
        Ok(unsafe { self.region.ptr.as_ptr().add(self.offset + offset) })
    }

    /// Reads a copy of a `T` at `offset` (volatile, aligned).
    pub fn read<T: Pod>(&self, offset: usize) -> Result<T, MemError> {
        let p = self.check(offset, std::mem::size_of::<T>(), std::mem::align_of::<T>())?;
        // SAFETY: `check` proved the range is inside the live mapping and aligned
        // for `T`; `T: Pod` makes any bytes a valid value.
        Ok(unsafe { std::ptr::read_volatile(p.cast::<T>()) })
    }

    /// Writes a `T` at `offset` (volatile, aligned).
    pub fn write<T: Pod>(&self, offset: usize, value: T) -> Result<(), MemError> {
        let p = self.check(offset, std::mem::size_of::<T>(), std::mem::align_of::<T>())?;
        // SAFETY: `check` proved the range is inside the live, writable mapping
        // and aligned for `T`.
        unsafe { std::ptr::write_volatile(p.cast::<T>(), value) };
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping (volatile): bytes
    /// up to the first 8-byte aligned address, then 8-byte words, then the tail.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        let p = self.check(offset, buf.len(), 1)?;
        const WORD: usize = std::mem::size_of::<u64>();
        let head = p.align_offset(WORD).min(buf.len());
        for (i, b) in buf[..head].iter_mut().enumerate() {
            // SAFETY: `i < head <= buf.len()` and `check` covered `buf.len()` bytes.
            *b = unsafe { std::ptr::read_volatile(p.add(i)) };
        }
        let total = buf.len();
        let (words, tail) = buf[head..].split_at_mut((total - head) / WORD * WORD);
        for (i, w) in words.chunks_exact_mut(WORD).enumerate() {
            // SAFETY: `p + head` is 8-byte aligned (align_offset) and word `i` ends
            // within the `buf.len()` bytes `check` covered.
            let v = unsafe { std::ptr::read_volatile(p.add(head + i * WORD).cast::<u64>()) };
            w.copy_from_slice(&v.to_ne_bytes());
        }
        let tail_start = total - tail.len();
        for (i, b) in tail.iter_mut().enumerate() {
            // SAFETY: `tail_start + i < buf.len()`, covered by `check`.
            *b = unsafe { std::ptr::read_volatile(p.add(tail_start + i)) };
        }
        Ok(())
    }

    /// Copies `buf` into the mapping at `offset` (volatile): bytes up to the first
    /// 8-byte aligned address, then 8-byte words, then the tail bytes (a domain
    /// builder copies whole kernels this way).
    pub fn write_bytes(&self, offset: usize, buf: &[u8]) -> Result<(), MemError> {
        let p = self.check(offset, buf.len(), 1)?;
        const WORD: usize = std::mem::size_of::<u64>();
        let head = p.align_offset(WORD).min(buf.len());
        for (i, b) in buf[..head].iter().enumerate() {
            // SAFETY: `i < head <= buf.len()` and `check` covered `buf.len()` bytes.
            unsafe { std::ptr::write_volatile(p.add(i), *b) };
        }
        let words = buf[head..].chunks_exact(WORD);
        let tail = words.remainder();
        for (i, w) in words.enumerate() {
            let mut a = [0u8; WORD];
            a.copy_from_slice(w);
            // SAFETY: `p + head` is 8-byte aligned (align_offset) and word `i` ends
            // within the `buf.len()` bytes `check` covered.
            unsafe {
                std::ptr::write_volatile(
                    p.add(head + i * WORD).cast::<u64>(),
                    u64::from_ne_bytes(a),
                )
            };
        }
        let tail_start = buf.len() - tail.len();
        for (i, b) in tail.iter().enumerate() {
            // SAFETY: `tail_start + i < buf.len()`, covered by `check`.
            unsafe { std::ptr::write_volatile(p.add(tail_start + i), *b) };
        }
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), MemError> {
        let p = self.check(offset, len, 1)?;
        for i in 0..len {
            // SAFETY: `i < len` and `check` covered `len` bytes.
            unsafe { std::ptr::write_volatile(p.add(i), byte) };
        }
        Ok(())
    }

    /// Reads a little-endian-native `u32` at `offset`.
    pub fn read_u32(&self, offset: usize) -> Result<u32, MemError> {
        self.read::<u32>(offset)
    }

    /// Writes a `u32` at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), MemError> {
        self.write::<u32>(offset, value)
    }
}

/// A regular file mapped read-only and private, so that its pages can be the
/// local side of a grant copy (`IOCTL_GNTDEV_GRANT_COPY` takes a virtual address)
/// without reading the file into a buffer first: a domain builder hands a 30 MiB
/// kernel to Xen this way, straight from the page cache.
///
/// Nothing in this process dereferences the mapping. Another process may change
/// or shorten the file meanwhile: bytes that must be looked at (a header to
/// validate, a fallback copy) are read with `pread` ([`FileImage::read_at`]) into
/// the caller's buffer, once; the kernel's page pinning for a grant copy fails
/// with an error where a load through a shortened mapping would raise SIGBUS.
#[derive(Debug)]
pub struct FileImage {
    file: std::fs::File,
    /// `None` for an empty file (`mmap` of 0 bytes is refused).
    map: Option<MappedMemory>,
    len: usize,
}

impl FileImage {
    /// Maps the first `len` bytes of `file` (open for reading), which must be at
    /// least that long now. `MAP_POPULATE`: the page tables are filled in one go
    /// (page cache pages, nothing copied), rather than by a fault per page when
    /// the kernel pins them for the copy.
    pub fn new(file: std::fs::File, len: usize) -> Result<Self, MemError> {
        use std::os::fd::AsRawFd;
        let size = file
            .metadata()
            .map_err(|source| MemError::Mmap { len, source })?
            .len();
        if size < len as u64 {
            return Err(MemError::Mmap {
                len,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the file holds {size} bytes"),
                ),
            });
        }
        if len == 0 {
            return Ok(Self {
                file,
                map: None,
                len,
            });
        }
        // SAFETY: a fresh private read-only mapping of `len` bytes of an open file
        // that is at least that long; no existing memory of this process is
        // affected, and the mapping is never dereferenced here (see the type).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemError::Mmap {
                len,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `ptr`/`len` is the mapping just made, owned by nothing else.
        let map = unsafe { MappedMemory::from_raw_mmap(ptr, len) };
        Ok(Self {
            file,
            map: Some(map),
            len,
        })
    }

    /// Opens and maps the whole of the file at `path`.
    pub fn open(path: &std::path::Path) -> Result<Self, MemError> {
        let file = std::fs::File::open(path).map_err(MemError::Open)?;
        let size = file.metadata().map_err(MemError::Open)?.len();
        let len = usize::try_from(size).map_err(|_| {
            MemError::Open(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{size} bytes do not fit the address space"),
            ))
        })?;
        Self::new(file, len)
    }

    /// The mapped length in bytes (the file's size when mapped).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of byte `offset` of the mapping, checked to lie with `len`
    /// bytes after it inside the mapping, for the kernel (never dereferenced
    /// here).
    pub fn addr(&self, offset: usize, len: usize) -> Result<usize, MemError> {
        let out = MemError::OutOfBounds {
            offset,
            len,
            size: self.len,
        };
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(out);
        }
        match &self.map {
            Some(m) => Ok(m.addr() + offset),
            None if len == 0 => Ok(0),
            None => Err(out),
        }
    }

    /// Reads `buf.len()` bytes at `offset` from the file (`pread`, not through
    /// the mapping), within the mapped length.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        use std::os::unix::fs::FileExt;
        self.addr(offset, buf.len())?;
        self.file
            .read_exact_at(buf, offset as u64)
            .map_err(|source| MemError::Read { offset, source })
    }
}

/// A piece of mapped memory for vectored file I/O: `len` bytes at `offset`
/// of `mem`.
#[derive(Debug, Clone, Copy)]
pub struct IoPiece<'a> {
    pub mem: &'a MappedMemory,
    pub offset: usize,
    pub len: usize,
}

/// Iovecs gathered on the stack per `preadv`/`pwritev` call (well under Linux's
/// `UIO_MAXIOV` of 1024); longer piece lists take several calls.
const IOV_CHUNK: usize = 64;

/// Drops the first `n` bytes of `iov` (after a short transfer): returns the
/// index of the first iovec left, whose base and length are moved on.
fn advance(iov: &mut [libc::iovec], mut n: usize) -> usize {
    for (i, e) in iov.iter_mut().enumerate() {
        if n < e.iov_len {
            e.iov_base = (e.iov_base as usize + n) as *mut libc::c_void;
            e.iov_len -= n;
            return i;
        }
        n -= e.iov_len;
    }
    iov.len()
}

/// Reads exactly the pieces' total length from `fd` at byte `pos` into the
/// pieces, in order (`preadv`; the kernel writes into the mappings, no Rust
/// reference to their bytes exists). End of file before that is an
/// `UnexpectedEof` error. Each piece is checked against its mapping before the
/// call that uses it; one outside it is an `InvalidInput` error.
pub fn pread_exact_into<'a>(
    fd: std::os::fd::BorrowedFd<'_>,
    pos: u64,
    pieces: impl IntoIterator<Item = IoPiece<'a>>,
) -> io::Result<()> {
    vectored(fd, pos, pieces, false)
}

/// Writes the pieces, in order, to `fd` at byte `pos` (`pwritev`; the kernel
/// reads the mappings, which the other side may change meanwhile: the file
/// then gets whatever bytes were there, as with any shared-memory DMA).
pub fn pwrite_all_from<'a>(
    fd: std::os::fd::BorrowedFd<'_>,
    pos: u64,
    pieces: impl IntoIterator<Item = IoPiece<'a>>,
) -> io::Result<()> {
    vectored(fd, pos, pieces, true)
}

/// Up to [`IOV_CHUNK`] iovecs on the stack, only the first `n` written: a
/// zeroed array of them cost a 1 KiB `memset` per disk call, which showed in
/// the block backend's profile of 4 KiB requests.
struct IovBuf {
    buf: [std::mem::MaybeUninit<libc::iovec>; IOV_CHUNK],
    n: usize,
}

impl IovBuf {
    fn new() -> Self {
        IovBuf {
            buf: [const { std::mem::MaybeUninit::uninit() }; IOV_CHUNK],
            n: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.n == IOV_CHUNK
    }
    /// Appends `v`; the caller checks [`IovBuf::is_full`] first.
    fn push(&mut self, v: libc::iovec) {
        self.buf[self.n].write(v);
        self.n += 1;
    }
    /// The iovecs written so far.
    fn as_mut_slice(&mut self) -> &mut [libc::iovec] {
        // SAFETY: the first `n` elements were written by `push` (`n` only
        // grows there, by one after each write, and is reset by `clear`), and
        // `MaybeUninit<T>` has the layout of `T`.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast(), self.n) }
    }
    fn clear(&mut self) {
        self.n = 0;
    }
}

/// Gathers the pieces' iovecs on the stack (merging pieces that continue each
/// other in memory) and transfers them, [`IOV_CHUNK`] at a time.
fn vectored<'a>(
    fd: std::os::fd::BorrowedFd<'_>,
    mut pos: u64,
    pieces: impl IntoIterator<Item = IoPiece<'a>>,
    write: bool,
) -> io::Result<()> {
    let mut iov = IovBuf::new();
    for p in pieces {
        if p.len == 0 {
            continue;
        }
        let ptr = p
            .mem
            .check(p.offset, p.len, 1)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if let Some(last) = iov.as_mut_slice().last_mut() {
            if last.iov_base as usize + last.iov_len == ptr as usize {
                last.iov_len += p.len;
                continue;
            }
        }
        if iov.is_full() {
            pos = transfer(fd, pos, iov.as_mut_slice(), write)?;
            iov.clear();
        }
        iov.push(libc::iovec {
            iov_base: ptr.cast(),
            iov_len: p.len,
        });
    }
    if iov.n > 0 {
        transfer(fd, pos, iov.as_mut_slice(), write)?;
    }
    Ok(())
}

/// Transfers all of `iov` at `pos` (retrying short transfers and EINTR);
/// returns the position after it.
fn transfer(
    fd: std::os::fd::BorrowedFd<'_>,
    mut pos: u64,
    iov: &mut [libc::iovec],
    write: bool,
) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut first = 0;
    while first < iov.len() {
        let rest = &iov[first..];
        let off = libc::off_t::try_from(pos).map_err(|_| io::ErrorKind::InvalidInput)?;
        // One iovec (a 4 KiB request, or pages that follow each other) goes by
        // `pread`/`pwrite`: the kernel then skips copying in the iovec array.
        // SAFETY: every iovec lies inside a live mapping (`vectored` checked each
        // piece against its `MappedMemory`, which the caller borrows for the
        // call); the kernel reads or writes those bytes during the call only,
        // and no Rust reference into them exists. `rest` has at most
        // IOV_CHUNK entries.
        let done = unsafe {
            if let [one] = rest {
                if write {
                    libc::pwrite(fd.as_raw_fd(), one.iov_base, one.iov_len, off)
                } else {
                    libc::pread(fd.as_raw_fd(), one.iov_base, one.iov_len, off)
                }
            } else if write {
                libc::pwritev(
                    fd.as_raw_fd(),
                    rest.as_ptr(),
                    rest.len() as libc::c_int,
                    off,
                )
            } else {
                libc::preadv(
                    fd.as_raw_fd(),
                    rest.as_ptr(),
                    rest.len() as libc::c_int,
                    off,
                )
            }
        };
        if done < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if done == 0 {
            return Err(if write {
                io::ErrorKind::WriteZero.into()
            } else {
                io::ErrorKind::UnexpectedEof.into()
            });
        }
        pos += done as u64;
        first += advance(&mut iov[first..], done as usize);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_memory_reads_back_writes() {
        let m = MappedMemory::anonymous(4096).expect("mmap");
        assert_eq!(m.read_u32(0).expect("read"), 0);
        m.write_u32(8, 0xdead_beef).expect("write");
        assert_eq!(m.read_u32(8).expect("read"), 0xdead_beef);
        let mut buf = [0u8; 4];
        m.read_bytes(8, &mut buf).expect("read bytes");
        assert_eq!(u32::from_ne_bytes(buf), 0xdead_beef);
    }

    #[test]
    fn out_of_bounds_and_misaligned_accesses_fail() {
        let m = MappedMemory::anonymous(4096).expect("mmap");
        assert!(matches!(
            m.read_u32(4094),
            Err(MemError::OutOfBounds { .. })
        ));
        assert!(matches!(
            m.read_u32(usize::MAX - 1),
            Err(MemError::OutOfBounds { .. })
        ));
        assert!(matches!(m.read_u32(2), Err(MemError::Misaligned { .. })));
        assert!(m.write_bytes(4090, &[0; 7]).is_err());
        assert!(m.sub(4000, 97).is_err());
    }

    #[test]
    fn write_bytes_copies_exactly_at_any_alignment() {
        let m = MappedMemory::anonymous(4096).expect("mmap");
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7) | 1).collect();
        for off in [0usize, 1, 3, 8, 13] {
            for len in [0usize, 1, 7, 8, 9, 31, 100] {
                m.fill(0, 256, 0).expect("clear");
                m.write_bytes(off, &data[..len]).expect("write");
                let mut back = vec![0u8; 256];
                m.read_bytes(0, &mut back).expect("read");
                assert!(back[..off].iter().all(|&b| b == 0), "before {off}/{len}");
                assert_eq!(&back[off..off + len], &data[..len], "at {off}/{len}");
                assert!(
                    back[off + len..].iter().all(|&b| b == 0),
                    "after {off}/{len}"
                );
            }
        }
    }

    #[test]
    fn file_mappings_outlive_the_mapping() {
        let path = std::env::temp_dir().join(format!("rxen-mem-test-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        assert!(MappedMemory::map_file(&file, 4096).is_err(), "empty file");
        file.set_len(4096).expect("set_len");
        let m = MappedMemory::map_file(&file, 4096).expect("map");
        m.write_u32(16, 0x1234_5678).expect("write");
        drop(m);
        let again = MappedMemory::map_file(&file, 4096).expect("map again");
        assert_eq!(again.read_u32(16).expect("read"), 0x1234_5678);
        let mut bytes = std::fs::read(&path).expect("read file");
        assert_eq!(bytes.len(), 4096);
        bytes.truncate(20);
        assert_eq!(&bytes[16..20], &0x1234_5678u32.to_ne_bytes());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn read_bytes_copies_exactly_at_any_alignment() {
        let m = MappedMemory::anonymous(4096).expect("mmap");
        let data: Vec<u8> = (0..256u32).map(|i| (i * 13 + 5) as u8).collect();
        m.write_bytes(0, &data).expect("write");
        for off in [0usize, 1, 3, 8, 13] {
            for len in [0usize, 1, 7, 8, 9, 31, 100] {
                let mut back = vec![0xeeu8; len];
                m.read_bytes(off, &mut back).expect("read");
                assert_eq!(back, &data[off..off + len], "at {off}/{len}");
            }
        }
    }

    #[test]
    fn views_share_the_mapping_and_are_bounded() {
        let m = MappedMemory::anonymous(8192).expect("mmap");
        let page1 = m.sub(4096, 4096).expect("view");
        page1.write_u32(0, 7).expect("write");
        assert_eq!(m.read_u32(4096).expect("read"), 7);
        assert!(page1.read_u32(4096).is_err());
        drop(m);
        // The view keeps the region alive.
        assert_eq!(page1.read_u32(0).expect("read"), 7);
    }

    #[test]
    fn a_file_image_reads_back_its_bytes_and_bounds_every_range() {
        let path =
            std::env::temp_dir().join(format!("rxen-file-image-test-{}", std::process::id()));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let img = FileImage::open(&path).expect("map");
        assert_eq!(img.len(), data.len());
        let mut buf = vec![0u8; 100];
        img.read_at(4090, &mut buf).expect("read");
        assert_eq!(buf, data[4090..4190]);
        assert!(img.addr(0, data.len()).expect("whole") != 0);
        assert_eq!(
            img.addr(9_000, 1_000).expect("tail"),
            img.addr(0, 0).expect("start") + 9_000
        );
        assert!(img.addr(9_001, 1_000).is_err(), "one past the end");
        assert!(img.addr(usize::MAX, 2).is_err(), "overflow");
        assert!(img.read_at(9_950, &mut buf).is_err(), "read past the end");
        // Shortened under us: the pread fails, nothing faults.
        std::fs::write(&path, &data[..50]).expect("shorten");
        assert!(img.read_at(0, &mut buf).is_err(), "the file is shorter now");
        drop(img);
        let file = std::fs::File::open(&path).expect("open");
        assert!(FileImage::new(file, 51).is_err(), "longer than the file");
        std::fs::write(&path, b"").expect("empty");
        let empty = FileImage::open(&path).expect("an empty file maps to nothing");
        assert!(empty.is_empty());
        assert_eq!(empty.addr(0, 0).expect("empty range"), 0);
        assert!(empty.addr(0, 1).is_err());
        let _ = std::fs::remove_file(&path);
        assert!(matches!(FileImage::open(&path), Err(MemError::Open(_))));
    }

    #[test]
    fn vectored_file_io_moves_the_pieces_in_order() {
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("rxen-mem-iov-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        let a = MappedMemory::anonymous(8192).expect("mmap");
        let b = MappedMemory::anonymous(4096).expect("mmap");
        a.fill(0, 8192, 1).expect("fill");
        b.fill(0, 4096, 2).expect("fill");
        a.write_u32(4096, 0x0a0b_0c0d).expect("write");
        // Three pieces, the first two adjacent in `a` (merged into one iovec).
        let pieces = [
            IoPiece {
                mem: &a,
                offset: 512,
                len: 3584,
            },
            IoPiece {
                mem: &a,
                offset: 4096,
                len: 1024,
            },
            IoPiece {
                mem: &b,
                offset: 100,
                len: 10,
            },
        ];
        pwrite_all_from(file.as_fd(), 4, pieces).expect("pwritev");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 4 + 3584 + 1024 + 10);
        assert!(bytes[4..4 + 3584].iter().all(|&x| x == 1));
        assert_eq!(&bytes[3588..3592], &0x0a0b_0c0du32.to_ne_bytes());
        assert!(bytes[bytes.len() - 10..].iter().all(|&x| x == 2));
        // And back, into other places.
        let c = MappedMemory::anonymous(4096).expect("mmap");
        let back = [
            IoPiece {
                mem: &c,
                offset: 2000,
                len: 8,
            },
            IoPiece {
                mem: &c,
                offset: 0,
                len: 4,
            },
        ];
        pread_exact_into(file.as_fd(), 3588, back).expect("preadv");
        assert_eq!(c.read_u32(2000).expect("read"), 0x0a0b_0c0d);
        assert_eq!(c.read_u32(0).expect("read"), 0x0101_0101);
        // Past the end of the file: an error, not a short read taken as whole.
        let past = [IoPiece {
            mem: &c,
            offset: 0,
            len: 4096,
        }];
        let e = pread_exact_into(file.as_fd(), 4000, past).expect_err("eof");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // A piece outside its mapping is refused before any I/O.
        let bad = [IoPiece {
            mem: &c,
            offset: 4000,
            len: 100,
        }];
        assert!(pwrite_all_from(file.as_fd(), 0, bad).is_err());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn advance_drops_whole_and_partial_iovecs() {
        let m = MappedMemory::anonymous(4096).expect("mmap");
        let mut iov = [
            libc::iovec {
                iov_base: m.addr() as *mut libc::c_void,
                iov_len: 100,
            },
            libc::iovec {
                iov_base: (m.addr() + 1000) as *mut libc::c_void,
                iov_len: 50,
            },
        ];
        assert_eq!(advance(&mut iov, 120), 1);
        assert_eq!(iov[1].iov_len, 30);
        assert_eq!(iov[1].iov_base as usize, m.addr() + 1020);
        assert_eq!(advance(&mut iov[1..], 30), 1);
    }

    #[test]
    fn many_pieces_take_several_calls_in_order() {
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("rxen-mem-iov2-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        // 200 one-byte pieces, every other byte of the mapping: none merge.
        let m = MappedMemory::anonymous(4096).expect("mmap");
        for i in 0..400usize {
            m.write(i, i as u8).expect("write");
        }
        let pieces = (0..200).map(|i| IoPiece {
            mem: &m,
            offset: 2 * i,
            len: 1,
        });
        pwrite_all_from(file.as_fd(), 0, pieces).expect("pwritev");
        let bytes = std::fs::read(&path).expect("read");
        let want: Vec<u8> = (0..200).map(|i| (2 * i) as u8).collect();
        assert_eq!(bytes, want);
        let _ = std::fs::remove_file(&path);
    }
}
