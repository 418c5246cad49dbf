//! The console ring (`struct xencons_interface`, xen/include/public/io/console.h):
//! `in[1024]` (dom0 to guest), `out[2048]` (guest to dom0), then the indices
//! `in_cons`, `in_prod`, `out_cons`, `out_prod` (u32, free-running, masked by the
//! buffer size). The same layout serves the PV console and the SBSA UART (vpl011).
//!
//! The guest can write any value into any index at any time: every access reads
//! each index once, validates the distance between producer and consumer, copies
//! the bytes out, and only then moves the index that dom0 owns.

use std::sync::atomic::{fence, Ordering};
use xen::{MappedMemory, MemError};

/// Offset of `in` (console.h).
pub const IN_OFFSET: usize = 0;
/// Size of `in`.
pub const IN_SIZE: usize = 1024;
/// Offset of `out`.
pub const OUT_OFFSET: usize = 1024;
/// Size of `out`.
pub const OUT_SIZE: usize = 2048;
/// Offset of `in_cons`.
pub const IN_CONS_OFFSET: usize = 3072;
/// Offset of `in_prod`.
pub const IN_PROD_OFFSET: usize = 3076;
/// Offset of `out_cons`.
pub const OUT_CONS_OFFSET: usize = 3080;
/// Offset of `out_prod`.
pub const OUT_PROD_OFFSET: usize = 3084;
/// Bytes the interface occupies (it lives in one 4 KiB page).
pub const INTERFACE_SIZE: usize = 3088;

/// Errors of console ring access.
#[derive(Debug, thiserror::Error)]
pub enum ConsRingError {
    /// The mapping is smaller than the interface.
    #[error(
        "console ring mapping of {0} bytes is smaller than the interface ({INTERFACE_SIZE} bytes)"
    )]
    TooSmall(usize),
    /// The guest wrote indices that claim more bytes than the buffer holds.
    #[error(
        "bogus {ring} ring indices from the guest: prod {prod:#x}, cons {cons:#x} (size {size})"
    )]
    BogusIndices {
        ring: &'static str,
        prod: u32,
        cons: u32,
        size: usize,
    },
    /// Mapped-memory access failed (cannot happen on a checked mapping).
    #[error("console ring access failed")]
    Mem(#[from] MemError),
}

/// Output taken from the `out` ring but not yet released to the guest: the
/// caller stores `data` somewhere durable, then calls [`ConsRing::commit_out`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutChunk {
    /// `out_cons` as read.
    pub cons: u32,
    /// The bytes between `out_cons` and `out_prod` (at most `max`).
    pub data: Vec<u8>,
}

/// A mapped `xencons_interface`.
#[derive(Debug, Clone)]
pub struct ConsRing {
    mem: MappedMemory,
}

/// Bytes between the guest-written indices of a ring of `size` bytes; indices
/// further apart than the ring is large are the guest's lie, refused.
fn used_bytes(
    ring: &'static str,
    prod: u32,
    cons: u32,
    size: usize,
) -> Result<usize, ConsRingError> {
    let used = prod.wrapping_sub(cons) as usize;
    if used > size {
        return Err(ConsRingError::BogusIndices {
            ring,
            prod,
            cons,
            size,
        });
    }
    Ok(used)
}

impl ConsRing {
    /// Wraps a mapping of at least [`INTERFACE_SIZE`] bytes.
    pub fn new(mem: MappedMemory) -> Result<Self, ConsRingError> {
        if mem.len() < INTERFACE_SIZE {
            return Err(ConsRingError::TooSmall(mem.len()));
        }
        Ok(Self { mem })
    }

    /// Copies out up to `max` bytes the guest produced, without consuming them.
    pub fn peek_out(&self, max: usize) -> Result<OutChunk, ConsRingError> {
        let mut data = Vec::new();
        let cons = self.peek_out_into(max, &mut data)?;
        Ok(OutChunk { cons, data })
    }

    /// Like [`ConsRing::peek_out`] into a caller's buffer (replacing its
    /// contents); returns `out_cons` as read, for [`ConsRing::commit_out_at`].
    pub fn peek_out_into(&self, max: usize, data: &mut Vec<u8>) -> Result<u32, ConsRingError> {
        let cons = self.mem.read_u32(OUT_CONS_OFFSET)?;
        let prod = self.mem.read_u32(OUT_PROD_OFFSET)?;
        // Read the indices before the bytes they cover.
        fence(Ordering::Acquire);
        let used = used_bytes("out", prod, cons, OUT_SIZE)?;
        let n = used.min(max);
        data.clear();
        data.resize(n, 0);
        copy_from_ring(&self.mem, OUT_OFFSET, OUT_SIZE, cons, data)?;
        Ok(cons)
    }

    /// Releases `n` bytes of `chunk` back to the guest (`out_cons = cons + n`).
    pub fn commit_out(&self, chunk: &OutChunk, n: usize) -> Result<(), ConsRingError> {
        self.commit_out_at(chunk.cons, n.min(chunk.data.len()))
    }

    /// Releases `n` bytes peeked at `cons` back to the guest (`out_cons = cons +
    /// n`); `n` must not exceed what [`ConsRing::peek_out_into`] returned.
    pub fn commit_out_at(&self, cons: u32, n: usize) -> Result<(), ConsRingError> {
        let n = n.min(OUT_SIZE);
        // Finish reading the bytes before the guest may overwrite them.
        fence(Ordering::SeqCst);
        self.mem
            .write_u32(OUT_CONS_OFFSET, cons.wrapping_add(n as u32))?;
        Ok(())
    }

    /// Puts as much of `data` into the `in` ring as fits; returns how many bytes.
    pub fn write_in(&self, data: &[u8]) -> Result<usize, ConsRingError> {
        let cons = self.mem.read_u32(IN_CONS_OFFSET)?;
        let prod = self.mem.read_u32(IN_PROD_OFFSET)?;
        fence(Ordering::SeqCst);
        let used = used_bytes("in", prod, cons, IN_SIZE)?;
        let n = (IN_SIZE - used).min(data.len());
        copy_to_ring(&self.mem, IN_OFFSET, IN_SIZE, prod, &data[..n])?;
        // The bytes before the index that publishes them.
        fence(Ordering::Release);
        self.mem
            .write_u32(IN_PROD_OFFSET, prod.wrapping_add(n as u32))?;
        Ok(n)
    }

    /// Free space in `in`, 0 when its indices are bogus.
    pub fn in_space(&self) -> Result<usize, ConsRingError> {
        let cons = self.mem.read_u32(IN_CONS_OFFSET)?;
        let prod = self.mem.read_u32(IN_PROD_OFFSET)?;
        let used = used_bytes("in", prod, cons, IN_SIZE)?;
        Ok(IN_SIZE - used)
    }
}

/// Copies `buf.len()` bytes starting at free-running index `idx` of the ring at
/// `base` of `size` bytes (a power of two), wrapping at its end.
fn copy_from_ring(
    mem: &MappedMemory,
    base: usize,
    size: usize,
    idx: u32,
    buf: &mut [u8],
) -> Result<(), MemError> {
    let start = idx as usize & (size - 1);
    let first = buf.len().min(size - start);
    let (a, b) = buf.split_at_mut(first);
    mem.read_bytes(base + start, a)?;
    if !b.is_empty() {
        mem.read_bytes(base, b)?;
    }
    Ok(())
}

/// Copies `data` into the ring at `base` of `size` bytes at index `idx`, wrapping.
fn copy_to_ring(
    mem: &MappedMemory,
    base: usize,
    size: usize,
    idx: u32,
    data: &[u8],
) -> Result<(), MemError> {
    let start = idx as usize & (size - 1);
    let first = data.len().min(size - start);
    mem.write_bytes(base + start, &data[..first])?;
    if first < data.len() {
        mem.write_bytes(base, &data[first..])?;
    }
    Ok(())
}

/// The guest side of a console ring, for tests of the backend: produces into
/// `out`, consumes from `in`.
#[cfg(test)]
pub(crate) mod guest {
    use super::*;

    /// Writes `data` into `out` the way hvc_xen does; returns bytes written.
    pub fn put_out(mem: &MappedMemory, data: &[u8]) -> usize {
        let cons = mem.read_u32(OUT_CONS_OFFSET).expect("cons");
        let prod = mem.read_u32(OUT_PROD_OFFSET).expect("prod");
        let space = OUT_SIZE - prod.wrapping_sub(cons) as usize;
        let n = space.min(data.len());
        copy_to_ring(mem, OUT_OFFSET, OUT_SIZE, prod, &data[..n]).expect("copy");
        mem.write_u32(OUT_PROD_OFFSET, prod.wrapping_add(n as u32))
            .expect("prod");
        n
    }

    /// Takes everything from `in`.
    pub fn take_in(mem: &MappedMemory) -> Vec<u8> {
        let cons = mem.read_u32(IN_CONS_OFFSET).expect("cons");
        let prod = mem.read_u32(IN_PROD_OFFSET).expect("prod");
        let mut buf = vec![0u8; prod.wrapping_sub(cons) as usize];
        copy_from_ring(mem, IN_OFFSET, IN_SIZE, cons, &mut buf).expect("copy");
        mem.write_u32(IN_CONS_OFFSET, prod).expect("cons");
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::guest::*;
    use super::*;

    fn ring() -> (MappedMemory, ConsRing) {
        let page = MappedMemory::anonymous(4096).expect("page");
        (page.clone(), ConsRing::new(page).expect("ring"))
    }

    #[test]
    fn output_is_copied_then_consumed_only_on_commit() {
        let (page, r) = ring();
        assert_eq!(put_out(&page, b"hello"), 5);
        let c = r.peek_out(OUT_SIZE).expect("peek");
        assert_eq!(c.data, b"hello");
        // Not committed: a restarted backend sees the same bytes.
        assert_eq!(r.peek_out(OUT_SIZE).expect("peek").data, b"hello");
        r.commit_out(&c, 3).expect("commit");
        assert_eq!(r.peek_out(OUT_SIZE).expect("peek").data, b"lo");
        assert_eq!(page.read_u32(OUT_CONS_OFFSET).expect("cons"), 3);
    }

    #[test]
    fn output_wraps_around_the_ring_and_index_overflow() {
        let (page, r) = ring();
        // Start both indices just below u32::MAX and near the end of the buffer.
        let start = u32::MAX - 5;
        page.write_u32(OUT_CONS_OFFSET, start).expect("cons");
        page.write_u32(OUT_PROD_OFFSET, start).expect("prod");
        let msg: Vec<u8> = (0..100u8).collect();
        assert_eq!(put_out(&page, &msg), 100);
        let c = r.peek_out(OUT_SIZE).expect("peek");
        assert_eq!(c.data, msg);
        r.commit_out(&c, c.data.len()).expect("commit");
        assert_eq!(
            page.read_u32(OUT_CONS_OFFSET).expect("cons"),
            start.wrapping_add(100)
        );
    }

    #[test]
    fn peek_is_bounded_by_max() {
        let (page, r) = ring();
        put_out(&page, &[b'x'; 300]);
        assert_eq!(r.peek_out(128).expect("peek").data.len(), 128);
    }

    #[test]
    fn hostile_out_indices_are_refused() {
        let (page, r) = ring();
        for (cons, prod) in [(0u32, OUT_SIZE as u32 + 1), (10, 5), (0, u32::MAX)] {
            page.write_u32(OUT_CONS_OFFSET, cons).expect("cons");
            page.write_u32(OUT_PROD_OFFSET, prod).expect("prod");
            assert!(
                matches!(
                    r.peek_out(OUT_SIZE),
                    Err(ConsRingError::BogusIndices { ring: "out", .. })
                ),
                "cons {cons} prod {prod}"
            );
        }
        // Exactly full is legal.
        page.write_u32(OUT_CONS_OFFSET, 7).expect("cons");
        page.write_u32(OUT_PROD_OFFSET, 7 + OUT_SIZE as u32)
            .expect("prod");
        assert_eq!(r.peek_out(usize::MAX).expect("peek").data.len(), OUT_SIZE);
    }

    #[test]
    fn input_fills_the_ring_and_no_further() {
        let (page, r) = ring();
        assert_eq!(r.write_in(b"ls\r").expect("write"), 3);
        assert_eq!(take_in(&page), b"ls\r");
        let big = vec![b'a'; IN_SIZE + 10];
        assert_eq!(r.write_in(&big).expect("write"), IN_SIZE);
        assert_eq!(r.write_in(b"more").expect("write"), 0);
        assert_eq!(r.in_space().expect("space"), 0);
        assert_eq!(take_in(&page).len(), IN_SIZE);
        assert_eq!(r.in_space().expect("space"), IN_SIZE);
    }

    #[test]
    fn hostile_in_indices_are_refused() {
        let (page, r) = ring();
        page.write_u32(IN_CONS_OFFSET, 100).expect("cons");
        page.write_u32(IN_PROD_OFFSET, 0).expect("prod");
        assert!(matches!(
            r.write_in(b"x"),
            Err(ConsRingError::BogusIndices { ring: "in", .. })
        ));
        assert!(r.in_space().is_err());
        // Nothing was written past the check.
        assert_eq!(page.read_u32(IN_PROD_OFFSET).expect("prod"), 0);
    }

    #[test]
    fn small_mappings_are_refused() {
        let m = MappedMemory::anonymous(4096)
            .expect("page")
            .sub(0, 100)
            .expect("sub");
        assert!(matches!(
            ConsRing::new(m),
            Err(ConsRingError::TooSmall(100))
        ));
    }
}
