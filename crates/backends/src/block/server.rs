//! Serving one blkif ring: copy each request out once, validate it
//! ([`super::request::parse`]), then do the I/O through the frontend's grants.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::abi::*;
use super::disk::Disk;
use super::journal::Journal;
use super::persistent::{PersistentGrants, MAX_PERSISTENT_GRANTS};
use super::request::{
    parse, parse_indirect, parse_indirect_header, DiskLimits, IndirectHeader, Kind, Request,
    RequestError,
};
use super::stats::RingStats;
use xen::abi::xen::{DomId, XEN_PAGE_SIZE};
use xen::{BackRing, Gntdev, GntdevError, GrantPageMapper, GrantPiece, IoPiece, RingError};

/// Copying between local buffers and a frontend's granted pages. The real one is
/// gntdev's grant copy (`IOCTL_GNTDEV_GRANT_COPY`: the hypervisor copies; nothing
/// is mapped into dom0), all pieces of a call in one ioctl; tests use the fakes.
pub trait GrantCopy {
    /// Copies the granted `pieces`, one after the other, into `buf` (their total
    /// length).
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        buf: &mut [u8],
    ) -> Result<(), GntdevError>;
    /// Copies `buf` into the granted `pieces`, one after the other.
    fn copy_out(&self, domid: DomId, pieces: &[GrantPiece], buf: &[u8]) -> Result<(), GntdevError>;
}

impl GrantCopy for Gntdev {
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        buf: &mut [u8],
    ) -> Result<(), GntdevError> {
        self.copy_from_grants(domid, pieces, buf)
    }
    fn copy_out(&self, domid: DomId, pieces: &[GrantPiece], buf: &[u8]) -> Result<(), GntdevError> {
        self.copy_to_grants(domid, buf, pieces)
    }
}

/// The fake grant table as a grant copier (map, copy, unmap per piece), for
/// tests, fuzz targets and the host benchmark.
#[cfg(any(test, feature = "fake"))]
impl GrantCopy for xen::fake::FakeGrants {
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        buf: &mut [u8],
    ) -> Result<(), GntdevError> {
        use xen::GrantMapper;
        let mut at = 0;
        for (index, p) in pieces.iter().enumerate() {
            let len = usize::from(p.len);
            let dst = buf
                .get_mut(at..at + len)
                .ok_or(GntdevError::BadOffset { offset: at + len })?;
            let m = self.map_grants(domid, &[p.gref], false)?;
            m.read_bytes(usize::from(p.offset), dst)
                .map_err(|_| GntdevError::CopySegment { index, status: -1 })?;
            at += len;
        }
        Ok(())
    }
    fn copy_out(&self, domid: DomId, pieces: &[GrantPiece], buf: &[u8]) -> Result<(), GntdevError> {
        use xen::GrantMapper;
        let mut at = 0;
        for (index, p) in pieces.iter().enumerate() {
            let len = usize::from(p.len);
            let src = buf
                .get(at..at + len)
                .ok_or(GntdevError::BadOffset { offset: at + len })?;
            let m = self.map_grants(domid, &[p.gref], true)?;
            m.write_bytes(usize::from(p.offset), src)
                .map_err(|_| GntdevError::CopySegment { index, status: -1 })?;
            at += len;
        }
        Ok(())
    }
}

/// Why a valid request failed during I/O (answered with `BLKIF_RSP_ERROR`).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("copying to or from the granted pages failed")]
    Copy(#[source] GntdevError),
    #[error("disk I/O failed")]
    Disk(#[source] std::io::Error),
}

/// Most requests of one ring executed at once (each on its own thread, with its
/// own buffer); the rest of a batch waits for a free lane.
pub const MAX_IN_FLIGHT: usize = 4;
/// Most bytes of a run: requests of a lane that read (or write) adjacent sector
/// ranges are served by one disk call and one grant copy.
pub const MAX_RUN_BYTES: usize = 128 * 1024;
/// Least data of a group worth spreading over several lanes.
pub const PARALLEL_MIN_BYTES: usize = 1536 * 1024;

/// A lane's buffers, kept between batches.
#[derive(Debug, Default)]
struct Lane {
    data: Vec<u8>,
    pieces: Vec<GrantPiece>,
    /// Nanoseconds of the current `run_runs` timed by its parts (copies, disk
    /// calls of copied runs, fdatasync); the rest of it, when it served runs
    /// from persistent grants (`direct`), counts as their disk time: two clock
    /// reads per 4 KiB request showed in the host benchmark.
    timed_ns: u64,
    direct: bool,
    /// Runs of the current `run_runs`, and those served from persistent
    /// grants: added to the ring's counters once at its end.
    runs: u64,
    direct_runs: u64,
}

/// A group's working vectors, kept between groups (three allocations per
/// group of 4 KiB requests showed in the host benchmark).
#[derive(Debug, Default)]
struct Scratch {
    /// The group's requests, validated.
    parsed: Vec<Result<Request, RequestError>>,
    /// The group's runs ([`run_end`]), as ranges of the group.
    runs: Vec<std::ops::Range<usize>>,
    /// The group's responses, in ring order.
    out: Vec<Response>,
}

/// A group's request counts, summed before they reach the shared counters.
#[derive(Debug, Default)]
struct GroupCounts {
    reads: u64,
    writes: u64,
    flushes: u64,
    discards: u64,
    indirect: u64,
    segments: u64,
    bytes_read: u64,
    bytes_written: u64,
}

/// What executing a request needs; shared by the lanes of a batch.
#[derive(Debug)]
struct Executor<G> {
    grants: Arc<G>,
    domid: DomId,
    disk: Arc<Disk>,
    limits: DiskLimits,
    stats: Arc<RingStats>,
}

/// The grant access a ring needs: copies, and page mappings for persistent
/// grants.
pub trait Grants: GrantCopy + GrantPageMapper + Send + Sync {}
impl<T: GrantCopy + GrantPageMapper + Send + Sync> Grants for T {}

/// A ring's persistent grants, with the page type of its grant mapper.
type Persistent<G> = PersistentGrants<<G as GrantPageMapper>::Page>;

/// A group's view of the persistent grants while it runs.
#[derive(Debug)]
struct Mapped<'a, G: Grants> {
    pg: &'a Persistent<G>,
    /// Every grant of the group's valid requests is mapped (none was left
    /// out by the bound), so no run needs to check.
    complete: bool,
}

impl<G: Grants> Clone for Mapped<'_, G> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<G: Grants> Copy for Mapped<'_, G> {}

/// One ring of one device.
#[derive(Debug)]
pub struct BlkRing<G: Grants> {
    ring: BackRing,
    exec: Executor<G>,
    /// The grants mapped for good when the frontend uses persistent grants
    /// (`None`: every request's data moves by grant copy).
    persistent: Option<Persistent<G>>,
    lanes: Vec<Lane>,
    batch: Vec<RawRequest>,
    scratch: Scratch,
    /// Where each request taken off the ring is recorded until answered.
    journal: Option<Journal>,
    /// Requests a killed backend took off the ring, from the journal: they stand
    /// in for the next slots consumed (which may hold its unpublished responses).
    replay: VecDeque<RawRequest>,
    /// Requests answered so far (for logs and tests).
    pub completed: u64,
}

impl<G: Grants> BlkRing<G> {
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
            max_indirect_segments: 0,
            sector_size: disk.sector_size(),
        };
        Self {
            ring,
            exec: Executor {
                grants,
                domid,
                disk,
                limits,
                stats: Arc::new(RingStats::default()),
            },
            lanes: (0..MAX_IN_FLIGHT)
                .map(|_| Lane {
                    data: Vec::with_capacity(MAX_SEGMENTS * XEN_PAGE_SIZE),
                    pieces: Vec::with_capacity(MAX_SEGMENTS),
                    timed_ns: 0,
                    direct: false,
                    runs: 0,
                    direct_runs: 0,
                })
                .collect(),
            batch: Vec::new(),
            scratch: Scratch::default(),
            persistent: None,
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

    /// Requests on the ring that have no response yet.
    pub fn unanswered(&self) -> Result<u32, RingError> {
        self.ring.unconsumed_requests()
    }

    /// Accepts indirect requests of up to `n` segments (at most
    /// [`MAX_INDIRECT_SEGMENTS`]; 0: none), as published in
    /// `feature-max-indirect-segments`.
    pub fn set_max_indirect_segments(&mut self, n: u16) {
        self.exec.limits.max_indirect_segments = n.min(MAX_INDIRECT_SEGMENTS);
    }

    /// Maps the frontend's grants persistently from now on (both ends wrote
    /// `feature-persistent = 1`), at most [`MAX_PERSISTENT_GRANTS`]; `false`
    /// unmaps them and copies again.
    pub fn set_persistent(&mut self, on: bool) {
        self.set_persistent_bound(on, MAX_PERSISTENT_GRANTS);
    }

    /// As [`BlkRing::set_persistent`], with at most `max` grants mapped.
    pub fn set_persistent_bound(&mut self, on: bool, max: usize) {
        self.persistent = on.then(|| PersistentGrants::new(max));
    }

    /// Grants mapped persistently now.
    pub fn persistent_grants(&self) -> usize {
        self.persistent.as_ref().map_or(0, PersistentGrants::len)
    }

    /// Unmaps every persistent grant (the ring is going away); returns how
    /// many were mapped.
    pub fn unmap_persistent(&mut self) -> usize {
        let n = self.persistent_grants();
        if let Some(pg) = &mut self.persistent {
            pg.clear();
        }
        n
    }

    /// The ring's counters (shared with its lanes).
    pub fn stats(&self) -> &Arc<RingStats> {
        &self.exec.stats
    }

    /// Uses at most `n` (>= 1) lanes for a batch from now on.
    pub fn set_max_lanes(&mut self, n: usize) {
        self.lanes.truncate(n.max(1));
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
        loop {
            let idx = self.ring.req_cons();
            let Some(words) = self.ring.next_request_as::<[u64; REQUEST_WORDS]>()? else {
                return Ok(());
            };
            let raw = match self.replay.pop_front() {
                Some(r) => r,
                None => RawRequest::from_words(words),
            };
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
        let stats = Arc::clone(&self.exec.stats);
        let mut worked = false;
        loop {
            self.take_batch()?;
            let began = Instant::now();
            if !self.batch.is_empty() {
                worked = true;
                RingStats::add(&stats.batches, 1);
            }
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
                run_group(
                    &self.exec,
                    self.persistent.as_mut(),
                    &self.batch[start..end],
                    &mut self.lanes,
                    &mut self.scratch,
                );
                for rsp in &self.scratch.out {
                    self.ring.put_response_as(rsp.to_words())?;
                    self.completed += 1;
                }
                notify |= self.ring.push_responses()?;
                start = end;
            }
            if !self.batch.is_empty() {
                RingStats::add_time(&stats.busy_ns, began);
            }
            if !self.ring.final_check_for_requests()? {
                if worked {
                    RingStats::add(&stats.wakeups, 1);
                }
                if notify {
                    RingStats::add(&stats.notifies, 1);
                }
                return Ok(notify);
            }
        }
    }
}

/// Executes `group`; its responses, in order, in `scratch.out`. The group's requests are validated,
/// then cut into runs ([`run_end`]); a group that moves at least
/// [`PARALLEL_MIN_BYTES`] in two runs or more spreads its runs over up to
/// [`MAX_IN_FLIGHT`] lanes (threads), a smaller one runs in this thread (a
/// thread costs more than the I/O of a few pages in the page cache).
///
/// With persistent grants, the grants the group's requests name that are not
/// mapped yet are mapped first (one call for all), here in the ring's thread;
/// the lanes then only read the map.
fn run_group<G: Grants>(
    exec: &Executor<G>,
    mut persistent: Option<&mut Persistent<G>>,
    group: &[RawRequest],
    lanes: &mut [Lane],
    scratch: &mut Scratch,
) {
    let Scratch { parsed, runs, out } = scratch;
    out.clear();
    exec.parse_group(group, persistent.as_deref_mut(), parsed);
    exec.count(group, parsed);
    let complete = match persistent.as_deref_mut() {
        Some(pg) => exec.map_data(pg, parsed),
        None => false,
    };
    let pg = persistent.as_deref().map(|pg| Mapped { pg, complete });
    runs.clear();
    let mut i = 0;
    while i < group.len() {
        let j = run_end(parsed, i);
        runs.push(i..j);
        i = j;
    }
    let parallel = runs.len() >= 2
        && lanes.len() >= 2
        && parsed
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(Request::data_len)
            .sum::<usize>()
            >= PARALLEL_MIN_BYTES;
    if !parallel {
        exec.run_runs(group, parsed, runs, &mut lanes[0], pg, out);
        return;
    }
    let n = runs.len().min(lanes.len());
    let per_lane = runs.len().div_ceil(n);
    let parsed = &*parsed;
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .chunks(per_lane)
            .zip(lanes.iter_mut())
            .map(|(chunk, lane)| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    exec.run_runs(group, parsed, chunk, lane, pg, &mut out);
                    out
                })
            })
            .collect();
        for (h, chunk) in handles.into_iter().zip(runs.chunks(per_lane)) {
            match h.join() {
                Ok(v) => out.extend(v),
                // A lane that panicked answers its requests with an error.
                Err(_) => out.extend(
                    chunk
                        .iter()
                        .flat_map(|r| group[r.clone()].iter())
                        .map(|r| exec.respond(r, RSP_ERROR)),
                ),
            }
        }
    });
}

impl<G: Grants> Executor<G> {
    /// Counts the requests of a group by kind (refused ones are not counted):
    /// summed here, then one atomic add per counter for the whole group (an
    /// atomic read-modify-write per request and counter showed in the host
    /// benchmark).
    fn count(&self, group: &[RawRequest], parsed: &[Result<Request, RequestError>]) {
        let s = &self.stats;
        let mut n = GroupCounts::default();
        for (raw, req) in group.iter().zip(parsed) {
            let Ok(req) = req else { continue };
            let bytes = req.data_len() as u64;
            match req.kind {
                Kind::Read => {
                    n.reads += 1;
                    n.bytes_read += bytes;
                }
                Kind::Write => {
                    n.writes += 1;
                    n.bytes_written += bytes;
                }
                Kind::Flush => {
                    n.flushes += 1;
                    n.bytes_written += bytes;
                }
                Kind::Discard { .. } => n.discards += 1,
            }
            if raw.operation() == OP_INDIRECT {
                n.indirect += 1;
            }
            n.segments += req.segments.len() as u64;
        }
        for (counter, v) in [
            (&s.reads, n.reads),
            (&s.writes, n.writes),
            (&s.flushes, n.flushes),
            (&s.discards, n.discards),
            (&s.indirect, n.indirect),
            (&s.segments, n.segments),
            (&s.bytes_read, n.bytes_read),
            (&s.bytes_written, n.bytes_written),
        ] {
            if v > 0 {
                RingStats::add(counter, v);
            }
        }
    }

    /// Validates the requests of a group, copied out of the ring. The segment
    /// pages of its indirect requests (when offered) are read once: from their
    /// persistent mappings when `persistent`, else by one grant copy for the
    /// whole group (request by request if that copy fails, so that only the
    /// requests with a bad page fail).
    fn parse_group(
        &self,
        group: &[RawRequest],
        persistent: Option<&mut Persistent<G>>,
        parsed: &mut Vec<Result<Request, RequestError>>,
    ) {
        parsed.clear();
        let indirect =
            |r: &RawRequest| r.operation() == OP_INDIRECT && self.limits.max_indirect_segments > 0;
        if !group.iter().any(indirect) {
            parsed.extend(group.iter().map(|r| parse(r, &self.limits)));
            return;
        }
        let headers: Vec<Option<Result<IndirectHeader, RequestError>>> = group
            .iter()
            .map(|r| indirect(r).then(|| parse_indirect_header(r, &self.limits)))
            .collect();
        let pages: Vec<Option<Result<Vec<u8>, RequestError>>> = match persistent {
            Some(pg) => self.indirect_pages_mapped(pg, group, &headers),
            None => self.indirect_pages_copied(group, &headers),
        };
        parsed.extend(
            group
                .iter()
                .zip(headers)
                .zip(pages)
                .map(|((raw, h), p)| match (h, p) {
                    (None, _) => parse(raw, &self.limits),
                    (Some(Err(e)), _) => Err(e),
                    (Some(Ok(h)), Some(Ok(pages))) => parse_indirect(raw, &h, &pages, &self.limits),
                    (Some(Ok(_)), Some(Err(e))) => Err(e),
                    (Some(Ok(_)), None) => Err(RequestError::IndirectCopy),
                }),
        );
    }

    /// The segment pages of each valid indirect header, by one grant copy for
    /// all of them; when it fails, by one copy per request.
    fn indirect_pages_copied(
        &self,
        group: &[RawRequest],
        headers: &[Option<Result<IndirectHeader, RequestError>>],
    ) -> Vec<Option<Result<Vec<u8>, RequestError>>> {
        let pieces = |h: &IndirectHeader| -> Vec<GrantPiece> {
            h.page_grefs
                .iter()
                .map(|&gref| GrantPiece {
                    gref,
                    offset: 0,
                    len: XEN_PAGE_SIZE as u16,
                })
                .collect()
        };
        let valid = |h: &Option<Result<IndirectHeader, RequestError>>| match h {
            Some(Ok(h)) => Some(pieces(h)),
            _ => None,
        };
        let all: Vec<GrantPiece> = headers.iter().filter_map(valid).flatten().collect();
        let mut buf = vec![0u8; all.len() * XEN_PAGE_SIZE];
        let t = Instant::now();
        let together = self.grants.copy_in(self.domid, &all, &mut buf);
        RingStats::add_time(&self.stats.copy_ns, t);
        if together.is_ok() {
            let mut at = 0;
            return headers
                .iter()
                .map(|h| {
                    valid(h).map(|p| {
                        let len = p.len() * XEN_PAGE_SIZE;
                        at += len;
                        Ok(buf[at - len..at].to_vec())
                    })
                })
                .collect();
        }
        group
            .iter()
            .zip(headers)
            .map(|(raw, h)| {
                valid(h).map(|p| {
                    let mut pages = vec![0u8; p.len() * XEN_PAGE_SIZE];
                    self.grants
                        .copy_in(self.domid, &p, &mut pages)
                        .map_err(|e| {
                            tracing::debug!(id = raw.id(), "indirect pages: {e}");
                            RequestError::IndirectCopy
                        })?;
                    Ok(pages)
                })
            })
            .collect()
    }

    /// The segment pages of each valid indirect header, mapped persistently
    /// (all new ones in one call) and read out of the mapping once; a request
    /// whose pages the bound leaves unmapped copies them.
    fn indirect_pages_mapped(
        &self,
        pg: &mut Persistent<G>,
        group: &[RawRequest],
        headers: &[Option<Result<IndirectHeader, RequestError>>],
    ) -> Vec<Option<Result<Vec<u8>, RequestError>>> {
        let grefs = headers
            .iter()
            .filter_map(|h| h.as_ref().and_then(|h| h.as_ref().ok()))
            .flat_map(|h| h.page_grefs.iter().copied());
        let outcome = pg.map_missing(&*self.grants, self.domid, grefs);
        self.count_maps(&outcome);
        group
            .iter()
            .zip(headers)
            .map(|(raw, h)| {
                let Some(Ok(h)) = h else { return None };
                if h.page_grefs.iter().any(|g| outcome.failed(*g)) {
                    return Some(Err(RequestError::GrantMap));
                }
                let mut pages = vec![0u8; h.page_grefs.len() * XEN_PAGE_SIZE];
                for (chunk, g) in pages.chunks_mut(XEN_PAGE_SIZE).zip(&h.page_grefs) {
                    match pg.get(*g) {
                        Some(page) => {
                            if page.read_bytes(0, chunk).is_err() {
                                return Some(Err(RequestError::IndirectCopy));
                            }
                        }
                        None => {
                            let piece = [GrantPiece {
                                gref: *g,
                                offset: 0,
                                len: XEN_PAGE_SIZE as u16,
                            }];
                            if let Err(e) = self.grants.copy_in(self.domid, &piece, chunk) {
                                tracing::debug!(id = raw.id(), "indirect page: {e}");
                                return Some(Err(RequestError::IndirectCopy));
                            }
                        }
                    }
                }
                Some(Ok(pages))
            })
            .collect()
    }

    /// Maps the data grants of the valid requests not mapped yet (one call for
    /// all); a request naming a grant that cannot be mapped fails. Returns
    /// whether every grant of the valid requests is mapped now (none was left
    /// unmapped by the bound).
    fn map_data(
        &self,
        pg: &mut Persistent<G>,
        parsed: &mut [Result<Request, RequestError>],
    ) -> bool {
        let grefs = parsed
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|r| r.segments.iter().map(|s| s.gref));
        let outcome = pg.map_missing(&*self.grants, self.domid, grefs);
        self.count_maps(&outcome);
        if !outcome.failed.is_empty() {
            for p in parsed.iter_mut() {
                if let Ok(r) = p {
                    if r.segments.iter().any(|s| outcome.failed(s.gref)) {
                        *p = Err(RequestError::GrantMap);
                    }
                }
            }
        }
        outcome.over_bound == 0
    }

    fn count_maps(&self, o: &super::persistent::MapOutcome) {
        if o.calls == 0 && o.over_bound == 0 {
            return;
        }
        RingStats::add(&self.stats.grants_mapped, o.mapped as u64);
        RingStats::add(&self.stats.map_calls, o.calls as u64);
        RingStats::add(&self.stats.over_bound, o.over_bound as u64);
    }

    /// The response to `raw` with `status`: it names the request's operation,
    /// an indirect request's inner one (Linux blkfront checks it).
    fn respond(&self, raw: &RawRequest, status: i16) -> Response {
        let operation = if self.limits.max_indirect_segments > 0 {
            raw.response_operation()
        } else {
            raw.operation()
        };
        Response {
            id: raw.id(),
            operation,
            status,
        }
    }

    /// Answers the requests of `runs` (ranges of `group`) in order, appending
    /// the responses to `out`. A run of
    /// several requests is served by one disk call and one grant copy; one that
    /// fails is redone request by request, so that each request gets its own
    /// status.
    fn run_runs(
        &self,
        group: &[RawRequest],
        parsed: &[Result<Request, RequestError>],
        runs: &[std::ops::Range<usize>],
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
        out: &mut Vec<Response>,
    ) {
        let began = Instant::now();
        lane.timed_ns = 0;
        lane.direct = false;
        lane.runs = 0;
        lane.direct_runs = 0;
        self.run_runs_timed(group, parsed, runs, lane, pg, out);
        RingStats::add(&self.stats.runs, lane.runs);
        if lane.direct_runs > 0 {
            RingStats::add(&self.stats.direct_runs, lane.direct_runs);
        }
        if lane.direct {
            let all = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            RingStats::add(&self.stats.disk_ns, all.saturating_sub(lane.timed_ns));
        }
    }

    fn run_runs_timed(
        &self,
        group: &[RawRequest],
        parsed: &[Result<Request, RequestError>],
        runs: &[std::ops::Range<usize>],
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
        out: &mut Vec<Response>,
    ) {
        for run in runs {
            if run.len() > 1 {
                let reqs: Vec<&Request> = parsed[run.clone()]
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .collect();
                match self.execute_run(&reqs, lane, pg) {
                    Ok(()) => {
                        out.extend(group[run.clone()].iter().map(|r| self.respond(r, RSP_OKAY)));
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!("run of {} requests failed ({e}), one by one", run.len());
                    }
                }
            }
            for k in run.clone() {
                out.push(self.answer(&group[k], &parsed[k], lane, pg));
            }
        }
    }

    /// Executes one (parsed) request.
    fn answer(
        &self,
        raw: &RawRequest,
        parsed: &Result<Request, RequestError>,
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
    ) -> Response {
        let status = match parsed {
            Err(e) => {
                tracing::debug!(id = raw.id(), "refused request: {e}");
                e.status()
            }
            Ok(req) => match self.execute(req, lane, pg) {
                Ok(()) => RSP_OKAY,
                Err(e) => {
                    tracing::warn!(id = req.id, "request failed: {e}");
                    RSP_ERROR
                }
            },
        };
        self.respond(raw, status)
    }

    fn execute(
        &self,
        req: &Request,
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
    ) -> Result<(), IoError> {
        match req.kind {
            Kind::Read | Kind::Write => self.execute_run(&[req], lane, pg),
            Kind::Flush => {
                if !req.segments.is_empty() {
                    self.write_run(&[req], lane, pg)?;
                }
                let t = Instant::now();
                let r = self.disk.flush().map_err(IoError::Disk);
                timed(&self.stats.flush_ns, lane, t);
                r
            }
            Kind::Discard { nr_sectors } => self
                .disk
                .discard(req.sector, nr_sectors)
                .map_err(IoError::Disk),
        }
    }

    /// Reads or writes requests of one kind whose sector ranges follow each
    /// other (one request, or a run from [`run_end`]).
    fn execute_run(
        &self,
        reqs: &[&Request],
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
    ) -> Result<(), IoError> {
        let Some(first) = reqs.first() else {
            return Ok(());
        };
        if first.kind == Kind::Read {
            self.read_run(reqs, lane, pg)
        } else {
            self.write_run(reqs, lane, pg)
        }
    }

    /// Whether every segment of `reqs` is persistently mapped: known without
    /// a look-up when the group's mapping left nothing out.
    fn all_mapped(reqs: &[&Request], pg: Option<Mapped<'_, G>>) -> bool {
        pg.is_some_and(|m| {
            m.complete
                || reqs
                    .iter()
                    .flat_map(|r| r.segments.iter())
                    .all(|s| m.pg.get(s.gref).is_some())
        })
    }

    /// Reads into, or writes from, the mapped pages (no copy); every segment is
    /// mapped ([`Executor::all_mapped`]). Timed by `run_runs`.
    fn direct_run(
        &self,
        reqs: &[&Request],
        m: Mapped<'_, G>,
        lane: &mut Lane,
    ) -> Result<(), IoError> {
        lane.runs += 1;
        lane.direct_runs += 1;
        lane.direct = true;
        debug_assert!(Self::all_mapped(
            reqs,
            Some(Mapped {
                pg: m.pg,
                complete: false
            })
        ));
        let pieces = reqs.iter().flat_map(|r| r.segments.iter()).filter_map(|s| {
            m.pg.get(s.gref).map(|page| IoPiece {
                mem: page,
                offset: s.offset(),
                len: s.len(),
            })
        });
        let r = if reqs[0].kind == Kind::Read {
            self.disk.read_into(reqs[0].sector, pieces)
        } else {
            self.disk.write_from(reqs[0].sector, pieces)
        };
        r.map_err(IoError::Disk)
    }

    fn read_run(
        &self,
        reqs: &[&Request],
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
    ) -> Result<(), IoError> {
        if let Some(pg) = pg.filter(|_| Self::all_mapped(reqs, pg)) {
            return self.direct_run(reqs, pg, lane);
        }
        let sector = reqs[0].sector;
        fill_pieces(reqs, lane);
        lane.runs += 1;
        let t = Instant::now();
        let r = self.disk.read_at(&mut lane.data, sector);
        timed(&self.stats.disk_ns, lane, t);
        r.map_err(IoError::Disk)?;
        let t = Instant::now();
        let r = self.grants.copy_out(self.domid, &lane.pieces, &lane.data);
        timed(&self.stats.copy_ns, lane, t);
        r.map_err(IoError::Copy)
    }

    fn write_run(
        &self,
        reqs: &[&Request],
        lane: &mut Lane,
        pg: Option<Mapped<'_, G>>,
    ) -> Result<(), IoError> {
        if let Some(pg) = pg.filter(|_| Self::all_mapped(reqs, pg)) {
            return self.direct_run(reqs, pg, lane);
        }
        let sector = reqs[0].sector;
        fill_pieces(reqs, lane);
        lane.runs += 1;
        let t = Instant::now();
        let r = self
            .grants
            .copy_in(self.domid, &lane.pieces, &mut lane.data);
        timed(&self.stats.copy_ns, lane, t);
        r.map_err(IoError::Copy)?;
        let t = Instant::now();
        let r = self.disk.write_at(&lane.data, sector);
        timed(&self.stats.disk_ns, lane, t);
        r.map_err(IoError::Disk)
    }
}

/// Adds the time since `since` to `counter` and to the lane's timed part.
fn timed(counter: &std::sync::atomic::AtomicU64, lane: &mut Lane, since: Instant) {
    let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    RingStats::add(counter, ns);
    lane.timed_ns = lane.timed_ns.saturating_add(ns);
}

/// Lays out the segments of `reqs` as grant pieces and sizes the lane's data
/// buffer to their total.
fn fill_pieces(reqs: &[&Request], lane: &mut Lane) {
    lane.pieces.clear();
    let mut total = 0;
    for r in reqs {
        for s in &r.segments {
            // Validated: offset + len <= 4096.
            lane.pieces.push(GrantPiece {
                gref: s.gref,
                offset: s.offset() as u16,
                len: s.len() as u16,
            });
            total += s.len();
        }
    }
    lane.data.resize(total, 0);
}

/// The end (exclusive) of the run starting at `i`: valid reads, or valid
/// writes, each starting at the sector where the one before ends, together at
/// most [`MAX_RUN_BYTES`].
fn run_end(parsed: &[Result<Request, RequestError>], i: usize) -> usize {
    let Ok(first) = &parsed[i] else {
        return i + 1;
    };
    if !matches!(first.kind, Kind::Read | Kind::Write) {
        return i + 1;
    }
    let mut end_sector = first.sector + first.sectors();
    let mut bytes = first.data_len();
    let mut j = i + 1;
    while let Some(Ok(next)) = parsed.get(j) {
        if next.kind != first.kind
            || next.sector != end_sector
            || bytes + next.data_len() > MAX_RUN_BYTES
        {
            break;
        }
        end_sector += next.sectors();
        bytes += next.data_len();
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests;
