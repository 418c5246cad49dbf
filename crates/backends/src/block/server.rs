//! Serving one blkif ring: copy each request out once, validate it
//! ([`super::request::parse`]), then do the I/O through the frontend's grants.

use std::collections::VecDeque;
use std::sync::Arc;

use super::abi::*;
use super::disk::Disk;
use super::journal::Journal;
use super::request::{parse, DiskLimits, Kind, Request};
use xen::abi::xen::{DomId, GrantRef, XEN_PAGE_SIZE};
use xen::{BackRing, Gntdev, GntdevError, RingError};

/// Copying between local buffers and a frontend's granted pages. The real one is
/// gntdev's grant copy (`IOCTL_GNTDEV_GRANT_COPY`: the hypervisor copies; nothing
/// is mapped into dom0); tests use the fakes.
pub trait GrantCopy {
    /// Copies `dst.len()` bytes at `offset` of grant `gref` into `dst`.
    fn copy_from(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        dst: &mut [u8],
    ) -> Result<(), GntdevError>;
    /// Copies `src` to `offset` of grant `gref`.
    fn copy_to(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        src: &[u8],
    ) -> Result<(), GntdevError>;
}

impl GrantCopy for Gntdev {
    fn copy_from(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        self.copy_from_grant(domid, gref, offset, dst)
    }
    fn copy_to(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        src: &[u8],
    ) -> Result<(), GntdevError> {
        self.copy_to_grant(domid, gref, offset, src)
    }
}

/// Why a valid request failed during I/O (answered with `BLKIF_RSP_ERROR`).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("copying to or from grant {gref} failed")]
    Copy {
        gref: GrantRef,
        #[source]
        source: GntdevError,
    },
    #[error("disk I/O failed")]
    Disk(#[source] std::io::Error),
}

/// Most requests of one ring executed at once (each on its own thread, with its
/// own buffer); the rest of a batch waits for a free lane.
pub const MAX_IN_FLIGHT: usize = 4;

/// What executing a request needs; shared by the lanes of a batch.
#[derive(Debug)]
struct Executor<G> {
    grants: Arc<G>,
    domid: DomId,
    disk: Arc<Disk>,
    limits: DiskLimits,
}

/// One ring of one device.
#[derive(Debug)]
pub struct BlkRing<G: GrantCopy> {
    ring: BackRing,
    exec: Executor<G>,
    bufs: Vec<Vec<u8>>,
    batch: Vec<RawRequest>,
    /// Where each request taken off the ring is recorded until answered.
    journal: Option<Journal>,
    /// Requests a killed backend took off the ring, from the journal: they stand
    /// in for the next slots consumed (which may hold its unpublished responses).
    replay: VecDeque<RawRequest>,
    /// Requests answered so far (for logs and tests).
    pub completed: u64,
}

impl<G: GrantCopy + Send + Sync> BlkRing<G> {
    pub fn new(
        ring: BackRing,
        grants: Arc<G>,
        domid: DomId,
        disk: Arc<Disk>,
        discard: bool,
    ) -> Self {
        let limits = DiskLimits {
            sectors: disk.sectors(),
            read_only: disk.read_only(),
            discard: discard && disk.can_discard(),
        };
        Self {
            ring,
            exec: Executor {
                grants,
                domid,
                disk,
                limits,
            },
            bufs: (0..MAX_IN_FLIGHT)
                .map(|_| Vec::with_capacity(MAX_SEGMENTS * XEN_PAGE_SIZE))
                .collect(),
            batch: Vec::new(),
            journal: None,
            replay: VecDeque::new(),
            completed: 0,
        }
    }

    /// Records requests in `journal` from now on. With `resume` (the ring was
    /// attached at its published responses, [`BackRing::attach`]), the requests
    /// the journal holds from the ring's next index on are executed in place of
    /// the ring's slots. Returns how many requests will be replayed so.
    pub fn with_journal(&mut self, journal: Journal, resume: bool) -> usize {
        if resume {
            match journal.replay(self.ring.req_cons(), self.ring.size()) {
                Ok(r) => self.replay = r.into(),
                Err(e) => tracing::warn!("reading the request journal failed: {e}"),
            }
        }
        self.journal = Some(journal);
        self.replay.len()
    }

    /// Stops journalling and deletes the journal (a clean disconnect).
    pub fn remove_journal(&mut self) {
        if let Some(j) = self.journal.take() {
            j.remove();
        }
    }

    /// Takes every request on the ring off it (copied once), recording each in
    /// the journal before anything is answered.
    fn take_batch(&mut self) -> Result<(), RingError> {
        self.batch.clear();
        let mut raw = RawRequest([0; REQUEST_SIZE]);
        loop {
            let idx = self.ring.req_cons();
            if !self.ring.next_request(&mut raw.0)? {
                return Ok(());
            }
            if let Some(r) = self.replay.pop_front() {
                raw = r;
            }
            if let Some(j) = &self.journal {
                if let Err(e) = j.record(idx, &raw) {
                    tracing::warn!("journalling request {idx} failed, journal off: {e}");
                    self.journal = None;
                }
            }
            self.batch.push(raw);
        }
    }

    /// Answers every request on the ring; `Ok(true)` when the frontend must be
    /// notified. An error means the frontend broke the ring protocol: disconnect.
    ///
    /// The requests found on the ring form a batch: each is copied out once, then
    /// the batch runs on up to [`MAX_IN_FLIGHT`] lanes at once, except that a
    /// FLUSH_DISKCACHE runs alone, after everything before it in the batch has
    /// completed. Responses go back in ring order, published after each group.
    pub fn process(&mut self) -> Result<bool, RingError> {
        let mut notify = false;
        loop {
            self.take_batch()?;
            let mut start = 0;
            while start < self.batch.len() {
                // A group of requests up to (not including) the next flush; a flush
                // is a group of its own.
                let end = if self.batch[start].operation() == OP_FLUSH_DISKCACHE {
                    start + 1
                } else {
                    self.batch[start..]
                        .iter()
                        .position(|r| r.operation() == OP_FLUSH_DISKCACHE)
                        .map_or(self.batch.len(), |p| start + p)
                };
                for rsp in run_group(&self.exec, &self.batch[start..end], &mut self.bufs) {
                    self.ring.put_response(&rsp.to_bytes())?;
                    self.completed += 1;
                }
                notify |= self.ring.push_responses()?;
                start = end;
            }
            if !self.ring.final_check_for_requests()? {
                return Ok(notify);
            }
        }
    }
}

/// Executes `group` on up to [`MAX_IN_FLIGHT`] lanes; responses in order.
fn run_group<G: GrantCopy + Send + Sync>(
    exec: &Executor<G>,
    group: &[RawRequest],
    bufs: &mut [Vec<u8>],
) -> Vec<Response> {
    if group.len() == 1 || bufs.len() == 1 {
        let buf = &mut bufs[0];
        return group.iter().map(|r| exec.handle(r, buf)).collect();
    }
    let lanes = group.len().min(bufs.len());
    let per_lane = group.len().div_ceil(lanes);
    std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .chunks(per_lane)
            .zip(bufs.iter_mut())
            .map(|(chunk, buf)| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|r| exec.handle(r, buf))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(group.chunks(per_lane))
            .flat_map(|(h, chunk)| {
                h.join().unwrap_or_else(|_| {
                    // A lane that panicked answers its requests with an error.
                    chunk
                        .iter()
                        .map(|r| Response {
                            id: r.id(),
                            operation: r.operation(),
                            status: RSP_ERROR,
                        })
                        .collect()
                })
            })
            .collect()
    })
}

impl<G: GrantCopy> Executor<G> {
    fn handle(&self, raw: &RawRequest, buf: &mut Vec<u8>) -> Response {
        let status = match parse(raw, &self.limits) {
            Err(e) => {
                tracing::debug!(id = raw.id(), "refused request: {e}");
                e.status()
            }
            Ok(req) => match self.execute(&req, buf) {
                Ok(()) => RSP_OKAY,
                Err(e) => {
                    tracing::warn!(id = req.id, "request failed: {e}");
                    RSP_ERROR
                }
            },
        };
        Response {
            id: raw.id(),
            operation: raw.operation(),
            status,
        }
    }

    fn execute(&self, req: &Request, buf: &mut Vec<u8>) -> Result<(), IoError> {
        match req.kind {
            Kind::Read => {
                buf.resize(req.data_len(), 0);
                self.disk.read_at(buf, req.sector).map_err(IoError::Disk)?;
                let mut at = 0;
                for s in &req.segments {
                    let chunk = &buf[at..at + s.len()];
                    self.grants
                        .copy_to(self.domid, s.gref, s.offset() as u16, chunk)
                        .map_err(|source| IoError::Copy {
                            gref: s.gref,
                            source,
                        })?;
                    at += s.len();
                }
                Ok(())
            }
            Kind::Write => self.write(req, buf),
            Kind::Flush => {
                if !req.segments.is_empty() {
                    self.write(req, buf)?;
                }
                self.disk.flush().map_err(IoError::Disk)
            }
            Kind::Discard { nr_sectors } => self
                .disk
                .discard(req.sector, nr_sectors)
                .map_err(IoError::Disk),
        }
    }

    fn write(&self, req: &Request, buf: &mut Vec<u8>) -> Result<(), IoError> {
        buf.resize(req.data_len(), 0);
        let mut at = 0;
        for s in &req.segments {
            let chunk = &mut buf[at..at + s.len()];
            self.grants
                .copy_from(self.domid, s.gref, s.offset() as u16, chunk)
                .map_err(|source| IoError::Copy {
                    gref: s.gref,
                    source,
                })?;
            at += s.len();
        }
        self.disk.write_at(buf, req.sector).map_err(IoError::Disk)
    }
}

#[cfg(test)]
mod tests;
