//! The request journal of a ring: a dom0 file holding a copy of every request
//! taken off the ring, so that an rxblkback started after another one was killed
//! can answer the requests the dead one took but never answered.
//!
//! Why a copy outside the ring: a backend writes each response into the slot of
//! a request it has consumed, and publishes responses (`rsp_prod`) only after
//! writing them. A backend killed between the two leaves slots at and after
//! `rsp_prod` that hold responses, not the requests they answered; reading them
//! as requests would execute garbage. The journal keeps the request as it was
//! copied out of the ring (copy once: the journal's copy is the one validated and
//! executed on a replay, and the guest cannot change it).
//!
//! Layout (a file in `/run/rxblkback` by default, mapped shared so that stores
//! reach the page cache and survive `kill -9` of the process): a header naming
//! the connection (domain, device, first ring grant, ring pages, event channel,
//! slots), then one [`ENTRY_SIZE`]-byte entry per ring slot: a tag (`1 << 32 |
//! index`, written last) and the request. Entries whose tag names the index being
//! replayed are the dead backend's copies; any other entry is stale.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use super::abi::{RawRequest, REQUEST_WORDS};
use xen::{MappedMemory, MemError};

/// File magic (`RXBLKJ01`).
pub const MAGIC: u64 = u64::from_be_bytes(*b"RXBLKJ01");
/// Bytes of the header.
pub const HEADER_SIZE: usize = 64;
/// Bytes of one entry: an 8-byte tag, 8 bytes of padding, the request.
pub const ENTRY_SIZE: usize = 128;
const OFF_TAG: usize = 0;
const OFF_REQUEST: usize = 16;
/// Marks a written tag (a zero-filled entry is never valid).
const TAG_VALID: u64 = 1 << 32;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the journal {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot map the journal")]
    Map(#[from] MemError),
}

/// The connection a journal belongs to: a replay only uses a journal written
/// for the same ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingIdent {
    pub domid: u32,
    pub devid: u32,
    pub first_ring_ref: u32,
    pub ring_pages: u32,
    pub event_channel: u32,
    pub slots: u32,
}

impl RingIdent {
    fn words(&self) -> [u32; 6] {
        [
            self.domid,
            self.devid,
            self.first_ring_ref,
            self.ring_pages,
            self.event_channel,
            self.slots,
        ]
    }
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    mem: MappedMemory,
    slots: u32,
    path: PathBuf,
}

/// The file name of a device's journal in `dir`.
pub fn journal_path(dir: &Path, domid: u32, devid: u32) -> PathBuf {
    dir.join(format!("{domid}-{devid}.journal"))
}

/// The journal of queue `queue` of a multi-queue device (queue 0's is
/// [`journal_path`]).
pub fn queue_journal_path(dir: &Path, domid: u32, devid: u32, queue: usize) -> PathBuf {
    if queue == 0 {
        journal_path(dir, domid, devid)
    } else {
        dir.join(format!("{domid}-{devid}-q{queue}.journal"))
    }
}

impl Journal {
    /// Opens the journal of the ring `ident` at `path`. With `resume`, a journal
    /// left there for the same ring is kept for [`Journal::replay`]; otherwise (a
    /// new connection, or a journal of another ring) it starts empty.
    pub fn open(path: &Path, ident: RingIdent, resume: bool) -> Result<Self, JournalError> {
        let create = |source| JournalError::Create {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(create)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(create)?;
        let len = HEADER_SIZE + ident.slots as usize * ENTRY_SIZE;
        let len_ok = file.metadata().map_err(create)?.len() == len as u64;
        if !len_ok {
            file.set_len(0).map_err(create)?;
            file.set_len(len as u64).map_err(create)?;
        }
        let mem = MappedMemory::map_file(&file, len)?;
        let j = Journal {
            mem,
            slots: ident.slots,
            path: path.to_path_buf(),
        };
        if !(resume && len_ok && j.header_matches(&ident)?) {
            // Invalidate first, then name the ring: a journal half-written by a
            // process killed here is all zeroes (no valid entry) or unnamed.
            j.mem.write::<u64>(0, 0)?;
            j.mem.fill(HEADER_SIZE, len - HEADER_SIZE, 0)?;
            for (i, w) in ident.words().iter().enumerate() {
                j.mem.write_u32(8 + 4 * i, *w)?;
            }
            j.mem.write::<u64>(0, MAGIC)?;
        }
        Ok(j)
    }

    fn header_matches(&self, ident: &RingIdent) -> Result<bool, MemError> {
        if self.mem.read::<u64>(0)? != MAGIC {
            return Ok(false);
        }
        for (i, w) in ident.words().iter().enumerate() {
            if self.mem.read_u32(8 + 4 * i)? != *w {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn entry(&self, idx: u32) -> usize {
        HEADER_SIZE + (idx & (self.slots - 1)) as usize * ENTRY_SIZE
    }

    /// Records the request taken off the ring at index `idx` (the tag last, so a
    /// process killed half-way leaves an entry that does not match).
    pub fn record(&self, idx: u32, req: &RawRequest) -> Result<(), MemError> {
        let at = self.entry(idx);
        self.mem.write(at + OFF_REQUEST, req.to_words())?;
        self.mem
            .write::<u64>(at + OFF_TAG, TAG_VALID | u64::from(idx))
    }

    /// The requests recorded at indices `from, from + 1, ...` (at most `max`),
    /// up to the first index without a matching entry: the requests a dead
    /// backend took off the ring from `from` on.
    pub fn replay(&self, from: u32, max: u32) -> Result<Vec<RawRequest>, MemError> {
        let mut out = Vec::new();
        for k in 0..max.min(self.slots) {
            let idx = from.wrapping_add(k);
            let at = self.entry(idx);
            if self.mem.read::<u64>(at + OFF_TAG)? != TAG_VALID | u64::from(idx) {
                break;
            }
            let w = self.mem.read::<[u64; REQUEST_WORDS]>(at + OFF_REQUEST)?;
            out.push(RawRequest::from_words(w));
        }
        Ok(out)
    }

    /// Deletes the journal (the ring was disconnected cleanly).
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::block::abi::{RawSegment, OP_READ, OP_WRITE};

    fn ident() -> RingIdent {
        RingIdent {
            domid: 3,
            devid: 51728,
            first_ring_ref: 8,
            ring_pages: 1,
            event_channel: 5,
            slots: 32,
        }
    }

    fn req(op: u8, id: u64) -> RawRequest {
        RawRequest::new(
            op,
            id,
            id * 8,
            &[RawSegment {
                gref: 100,
                first_sect: 0,
                last_sect: 7,
            }],
        )
    }

    fn dir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "rxblk-journal-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    #[test]
    fn a_resumed_journal_replays_the_recorded_run() {
        let d = dir();
        let path = journal_path(&d, 3, 51728);
        let j = Journal::open(&path, ident(), false).unwrap();
        // Indices 30..35 wrap around the 32 slots.
        for idx in 30..35u32 {
            j.record(idx, &req(OP_WRITE, u64::from(idx))).unwrap();
        }
        drop(j);
        let j = Journal::open(&path, ident(), true).unwrap();
        let got = j.replay(31, 32).unwrap();
        let ids: Vec<u64> = got.iter().map(RawRequest::id).collect();
        assert_eq!(ids, vec![31, 32, 33, 34]);
        assert_eq!(got[0], req(OP_WRITE, 31));
        // Nothing recorded at 35 (slot 3) yet.
        assert!(j.replay(35, 32).unwrap().is_empty());
        // The limit is honoured.
        assert_eq!(j.replay(30, 2).unwrap().len(), 2);
        j.remove();
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&d);
    }

    #[test]
    fn entries_of_an_earlier_lap_are_stale() {
        let d = dir();
        let path = journal_path(&d, 3, 51728);
        let j = Journal::open(&path, ident(), false).unwrap();
        j.record(1, &req(OP_READ, 1)).unwrap();
        // Slot 1 again 32 requests later is another request.
        assert!(j.replay(33, 32).unwrap().is_empty());
        assert_eq!(j.replay(1, 32).unwrap().len(), 1);
        j.remove();
        let _ = std::fs::remove_dir(&d);
    }

    #[test]
    fn another_ring_or_a_new_connection_starts_empty() {
        let d = dir();
        let path = journal_path(&d, 3, 51728);
        let j = Journal::open(&path, ident(), false).unwrap();
        j.record(0, &req(OP_WRITE, 0)).unwrap();
        drop(j);
        let other = RingIdent {
            first_ring_ref: 9,
            ..ident()
        };
        let j = Journal::open(&path, other, true).unwrap();
        assert!(
            j.replay(0, 32).unwrap().is_empty(),
            "another ring's journal"
        );
        j.record(0, &req(OP_WRITE, 0)).unwrap();
        drop(j);
        let j = Journal::open(&path, other, false).unwrap();
        assert!(j.replay(0, 32).unwrap().is_empty(), "a new connection");
        drop(j);
        // Another ring size changes the file's length: also reset.
        let bigger = RingIdent {
            slots: 128,
            ..other
        };
        let j = Journal::open(&path, bigger, true).unwrap();
        assert!(j.replay(0, 128).unwrap().is_empty());
        j.remove();
        let _ = std::fs::remove_dir(&d);
    }
}
