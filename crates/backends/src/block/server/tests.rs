//! A hostile frontend over the fakes: valid requests, then one corrupted field
//! each, asserting the exact status the frontend gets back.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::block::disk::Disk;
use std::io::Write;
use xen::abi::xen::GrantRef;
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::fake::FakeGrants;
use xen::{FrontRing, GrantMapper, MappedMemory};

const GUEST: DomId = 5;
const RING_GREF: GrantRef = 1;
/// Data pages are grants DATA_GREF.. of consecutive guest pages.
const DATA_GREF: GrantRef = 100;
const DATA_PAGES: usize = 12;
const DISK_SECTORS: u64 = 256;

struct Guest {
    front: FrontRing,
    data: MappedMemory,
    back: BlkRing<FakeGrants>,
    grants: Arc<FakeGrants>,
    ring_mem: MappedMemory,
    disk: Arc<Disk>,
    _file: TempFile,
}

struct TempFile(std::path::PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("journal"));
    }
}

fn guest(read_only: bool) -> Guest {
    guest_with_sectors_of(read_only, 512)
}

fn guest_with_sectors_of(read_only: bool, sector_size: u32) -> Guest {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "rxblk-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::File::create(&path).unwrap();
    // Sector n holds the byte n.
    for s in 0..DISK_SECTORS {
        f.write_all(&[s as u8; SECTOR_SIZE as usize]).unwrap();
    }
    drop(f);
    let ring_mem = MappedMemory::anonymous(XEN_PAGE_SIZE).unwrap();
    let data = MappedMemory::anonymous(DATA_PAGES * XEN_PAGE_SIZE).unwrap();
    let grants = Arc::new(FakeGrants::new());
    grants.grant(GUEST, RING_GREF, &ring_mem, 0, true).unwrap();
    for p in 0..DATA_PAGES {
        grants
            .grant(GUEST, DATA_GREF + p as u32, &data, p, true)
            .unwrap();
    }
    let front = FrontRing::init(ring_mem.clone(), REQUEST_SIZE).unwrap();
    let mapped = grants.map_grants(GUEST, &[RING_GREF], true).unwrap();
    let ring = BackRing::new((*mapped).clone(), REQUEST_SIZE).unwrap();
    let disk = Arc::new(
        Disk::open(&path, read_only)
            .unwrap()
            .with_sector_size(sector_size)
            .unwrap(),
    );
    let mut back = BlkRing::new(ring, Arc::clone(&grants), GUEST, Arc::clone(&disk), true);
    // Every ring journals, as rxblkback's do by default.
    let jpath = path.with_extension("journal");
    let journal = crate::block::journal::Journal::open(&jpath, ident(), false).unwrap();
    back.with_journal(journal, false);
    Guest {
        front,
        data,
        back,
        grants,
        ring_mem,
        disk,
        _file: TempFile(path),
    }
}

impl Guest {
    fn submit(&mut self, reqs: &[RawRequest]) -> Vec<Response> {
        self.post(reqs);
        self.back.process().unwrap();
        self.responses()
    }
    fn post(&mut self, reqs: &[RawRequest]) {
        for r in reqs {
            self.front.put_request(&r.0).unwrap();
        }
        self.front.push_requests().unwrap();
    }
    fn responses(&mut self) -> Vec<Response> {
        let mut out = Vec::new();
        let mut b = [0u8; RESPONSE_SIZE];
        while self.front.next_response(&mut b).unwrap() {
            out.push(Response::from_bytes(&b));
        }
        out
    }
    fn one(&mut self, r: RawRequest) -> i16 {
        let rsp = self.submit(&[r]);
        assert_eq!(rsp.len(), 1);
        assert_eq!(rsp[0].id, r.id());
        assert_eq!(rsp[0].operation, r.operation());
        rsp[0].status
    }
}

fn full(p: usize) -> RawSegment {
    RawSegment {
        gref: DATA_GREF + p as u32,
        first_sect: 0,
        last_sect: 7,
    }
}

#[test]
fn reads_land_in_the_granted_pages() {
    let mut g = guest(false);
    let st = g.one(RawRequest::new(OP_READ, 7, 16, &[full(0), full(1)]));
    assert_eq!(st, RSP_OKAY);
    let mut page = [0u8; 4096];
    g.data.read_bytes(0, &mut page).unwrap();
    assert!(page[..512].iter().all(|b| *b == 16));
    assert!(page[3584..].iter().all(|b| *b == 23));
    g.data.read_bytes(4096, &mut page).unwrap();
    assert!(page[..512].iter().all(|b| *b == 24));
}

#[test]
fn writes_reach_the_disk_and_flush_and_discard_work() {
    let mut g = guest(false);
    g.data.fill(2 * 4096, 4096, 0xab).unwrap();
    let seg = RawSegment {
        gref: DATA_GREF + 2,
        first_sect: 1,
        last_sect: 2,
    };
    assert_eq!(g.one(RawRequest::new(OP_WRITE, 1, 40, &[seg])), RSP_OKAY);
    assert_eq!(
        g.one(RawRequest::new(OP_FLUSH_DISKCACHE, 2, 0, &[])),
        RSP_OKAY
    );
    assert_eq!(g.one(RawRequest::new(OP_READ, 3, 40, &[full(3)])), RSP_OKAY);
    let mut page = [0u8; 4096];
    g.data.read_bytes(3 * 4096, &mut page).unwrap();
    assert!(page[..1024].iter().all(|b| *b == 0xab));
    assert!(page[1024..1536].iter().all(|b| *b == 42));
    // Discard sectors 64..72 (one page): they read back as zeroes.
    assert_eq!(g.one(RawRequest::new_discard(4, 64, 8, 0)), RSP_OKAY);
    assert_eq!(g.one(RawRequest::new(OP_READ, 5, 64, &[full(3)])), RSP_OKAY);
    g.data.read_bytes(3 * 4096, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0));
}

#[test]
fn a_4096_byte_sector_disk_answers_misaligned_requests_with_an_error() {
    let mut g = guest_with_sectors_of(false, 4096);
    assert_eq!(g.disk.sector_size(), 4096);
    // Sector numbers stay in 512-byte units: sector 16 starts the third 4 KiB sector.
    assert_eq!(g.one(RawRequest::new(OP_READ, 1, 16, &[full(0)])), RSP_OKAY);
    let mut page = [0u8; 4096];
    g.data.read_bytes(0, &mut page).unwrap();
    assert!(page[..512].iter().all(|b| *b == 16));
    assert!(page[3584..].iter().all(|b| *b == 23));
    let half = RawSegment {
        gref: DATA_GREF,
        first_sect: 0,
        last_sect: 3,
    };
    assert_eq!(g.one(RawRequest::new(OP_READ, 2, 16, &[half])), RSP_ERROR);
    assert_eq!(
        g.one(RawRequest::new(OP_READ, 3, 20, &[full(0)])),
        RSP_ERROR
    );
    g.data.fill(4096, 4096, 0xcd).unwrap();
    assert_eq!(
        g.one(RawRequest::new(OP_WRITE, 4, 12, &[full(1)])),
        RSP_ERROR
    );
    assert_eq!(g.one(RawRequest::new(OP_WRITE, 5, 8, &[full(1)])), RSP_OKAY);
    let mut back = [0u8; 4096];
    g.disk.read_at(&mut back, 8).unwrap();
    assert!(back.iter().all(|b| *b == 0xcd));
    // The misaligned write wrote nothing: sector 12 still holds its own bytes
    // under the aligned write's, and sector 16 is untouched.
    g.disk.read_at(&mut back, 16).unwrap();
    assert!(back[..512].iter().all(|b| *b == 16));
    assert_eq!(g.one(RawRequest::new_discard(6, 8, 4, 0)), RSP_ERROR);
}

#[test]
fn one_corrupted_field_gets_its_exact_status() {
    let mut g = guest(false);
    let ok = RawRequest::new(OP_READ, 9, 8, &[full(0)]);
    assert_eq!(g.one(ok), RSP_OKAY);
    let corrupt: Vec<(RawRequest, i16)> = vec![
        (
            {
                let mut r = ok;
                r.set_operation(77);
                r
            },
            RSP_EOPNOTSUPP,
        ),
        (
            {
                let mut r = ok;
                r.set_operation(OP_INDIRECT);
                r
            },
            RSP_EOPNOTSUPP,
        ),
        (
            {
                let mut r = ok;
                r.set_operation(OP_WRITE_BARRIER);
                r
            },
            RSP_EOPNOTSUPP,
        ),
        (
            {
                let mut r = ok;
                r.set_nr_segments(0);
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_nr_segments(12);
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_segment(
                    0,
                    RawSegment {
                        first_sect: 4,
                        last_sect: 3,
                        ..full(0)
                    },
                );
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_segment(
                    0,
                    RawSegment {
                        last_sect: 8,
                        ..full(0)
                    },
                );
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_segment(
                    0,
                    RawSegment {
                        gref: 9999,
                        ..full(0)
                    },
                );
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_sector(DISK_SECTORS - 7);
                r
            },
            RSP_ERROR,
        ),
        (
            {
                let mut r = ok;
                r.set_sector(u64::MAX);
                r
            },
            RSP_ERROR,
        ),
    ];
    for (r, want) in corrupt {
        assert_eq!(g.one(r), want, "request {:?}", &r.0[..32]);
    }
    // The ring still works afterwards.
    assert_eq!(g.one(ok), RSP_OKAY);
}

#[test]
fn read_only_disks_refuse_writes() {
    let mut g = guest(true);
    assert_eq!(
        g.one(RawRequest::new(OP_WRITE, 1, 0, &[full(0)])),
        RSP_ERROR
    );
    assert_eq!(
        g.one(RawRequest::new(OP_FLUSH_DISKCACHE, 2, 0, &[full(0)])),
        RSP_ERROR
    );
    // Discard is not offered on a read-only disk.
    assert_eq!(g.one(RawRequest::new_discard(3, 0, 8, 0)), RSP_EOPNOTSUPP);
    assert_eq!(g.one(RawRequest::new(OP_READ, 4, 0, &[full(0)])), RSP_OKAY);
}

#[test]
fn revoked_grant_is_an_error_not_a_crash() {
    let mut g = guest(false);
    g.grants.revoke(GUEST, DATA_GREF);
    assert_eq!(g.one(RawRequest::new(OP_READ, 1, 0, &[full(0)])), RSP_ERROR);
}

#[test]
fn a_batch_of_requests_is_answered_in_order() {
    let mut g = guest(false);
    let reqs: Vec<RawRequest> = (0..32)
        .map(|i| RawRequest::new(OP_READ, i, i * 8, &[full((i % 11) as usize)]))
        .collect();
    let rsp = g.submit(&reqs);
    assert_eq!(rsp.len(), 32);
    for (i, r) in rsp.iter().enumerate() {
        assert_eq!((r.id, r.status), (i as u64, RSP_OKAY));
    }
}

#[test]
fn producer_ahead_of_the_ring_is_a_protocol_violation() {
    let mut g = guest(false);
    // The frontend claims 33 requests on a 32-slot ring.
    let ring = g.grants.map_grants(GUEST, &[RING_GREF], true).unwrap();
    ring.write_u32(0, 33).unwrap();
    assert!(matches!(g.back.process(), Err(RingError::Overflow { .. })));
}

#[test]
fn a_flush_orders_its_batch() {
    let mut g = guest(false);
    g.data.fill(0, 4096, 0x5a).unwrap();
    // One batch: write page 0 to sectors 8..16, flush, read them into page 1.
    let rsp = g.submit(&[
        RawRequest::new(OP_WRITE, 1, 8, &[full(0)]),
        RawRequest::new(OP_WRITE, 2, 100, &[full(2)]),
        RawRequest::new(OP_FLUSH_DISKCACHE, 3, 0, &[]),
        RawRequest::new(OP_READ, 4, 8, &[full(1)]),
        RawRequest::new(OP_READ, 5, 16, &[full(3)]),
    ]);
    let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]);
    let mut page = [0u8; 4096];
    g.data.read_bytes(4096, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0x5a));
}

fn journal_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "rxblk-resume-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn ident() -> crate::block::journal::RingIdent {
    crate::block::journal::RingIdent {
        domid: GUEST.into(),
        devid: 51712,
        first_ring_ref: RING_GREF,
        ring_pages: 1,
        event_channel: 3,
        slots: 32,
    }
}

/// A backend killed after taking requests off the ring, with responses written
/// into some of their slots but never published; a new backend attached at the
/// published responses answers every one of them from the journal.
#[test]
fn a_restarted_backend_answers_what_the_killed_one_took() {
    use crate::block::journal::{journal_path, Journal};
    let dir = journal_dir();
    let jpath = journal_path(&dir, GUEST.into(), 51712);
    let mut g = guest(false);
    g.back
        .with_journal(Journal::open(&jpath, ident(), false).unwrap(), false);
    // Two requests answered normally (ring indices 0 and 1).
    let rsp = g.submit(&[
        RawRequest::new(OP_READ, 1, 0, &[full(0)]),
        RawRequest::new(OP_READ, 2, 8, &[full(1)]),
    ]);
    assert_eq!(rsp.len(), 2);
    // Three more (indices 2..5) taken off the ring, then the backend dies after
    // overwriting two of their slots with responses it never published.
    g.data.fill(4 * 4096, 4096, 0xc3).unwrap();
    g.post(&[
        RawRequest::new(OP_WRITE, 3, 80, &[full(4)]),
        RawRequest::new(OP_FLUSH_DISKCACHE, 4, 0, &[]),
        RawRequest::new(OP_READ, 5, 80, &[full(5)]),
    ]);
    g.back.take_batch().unwrap();
    assert_eq!(g.back.batch.len(), 3);
    for (idx, id) in [(2usize, 3u64), (3, 4)] {
        let rsp = Response {
            id,
            operation: OP_WRITE,
            status: RSP_OKAY,
        };
        g.ring_mem
            .write_bytes(64 + idx * REQUEST_SIZE, &rsp.to_bytes())
            .unwrap();
    }
    // One more request posted while no backend runs (index 5).
    g.post(&[RawRequest::new(OP_READ, 6, 88, &[full(6)])]);
    // The new backend.
    let mapped = g.grants.map_grants(GUEST, &[RING_GREF], true).unwrap();
    let ring = BackRing::attach((*mapped).clone(), REQUEST_SIZE).unwrap();
    let mut back = BlkRing::new(
        ring,
        Arc::clone(&g.grants),
        GUEST,
        Arc::clone(&g.disk),
        true,
    );
    let replayed = back.with_journal(Journal::open(&jpath, ident(), true).unwrap(), true);
    assert_eq!(replayed, 3);
    back.process().unwrap();
    let got: Vec<(u64, u8, i16)> = g
        .responses()
        .iter()
        .map(|r| (r.id, r.operation, r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, OP_WRITE, RSP_OKAY),
            (4, OP_FLUSH_DISKCACHE, RSP_OKAY),
            (5, OP_READ, RSP_OKAY),
            (6, OP_READ, RSP_OKAY),
        ]
    );
    // The write reached the disk and the read after it saw it.
    let mut sector = [0u8; 512];
    g.disk.read_at(&mut sector, 80).unwrap();
    assert!(sector.iter().all(|b| *b == 0xc3));
    let mut page = [0u8; 4096];
    g.data.read_bytes(5 * 4096, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0xc3));
    g.data.read_bytes(6 * 4096, &mut page).unwrap();
    assert!(page[..512].iter().all(|b| *b == 88));
    back.remove_journal();
    assert!(!jpath.exists());
    let _ = std::fs::remove_dir(&dir);
}

/// Without a journal entry for them (a new connection's journal), the slots are
/// read from the ring again: requests taken but not overwritten are answered.
#[test]
fn a_restart_without_journal_rereads_the_ring() {
    let mut g = guest(false);
    g.post(&[
        RawRequest::new(OP_READ, 1, 0, &[full(0)]),
        RawRequest::new(OP_READ, 2, 8, &[full(1)]),
    ]);
    g.back.take_batch().unwrap();
    let mapped = g.grants.map_grants(GUEST, &[RING_GREF], true).unwrap();
    let ring = BackRing::attach((*mapped).clone(), REQUEST_SIZE).unwrap();
    let mut back = BlkRing::new(
        ring,
        Arc::clone(&g.grants),
        GUEST,
        Arc::clone(&g.disk),
        true,
    );
    back.process().unwrap();
    let ids: Vec<(u64, i16)> = g.responses().iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(ids, vec![(1, RSP_OKAY), (2, RSP_OKAY)]);
}

/// Adjacent reads and writes of 11 segments, as blkfront splits a large I/O:
/// served as runs (one disk call and one copy each), data where it belongs.
#[test]
fn adjacent_requests_run_together() {
    adjacent_requests_run_together_with(false);
}

#[test]
fn adjacent_requests_run_together_over_persistent_grants() {
    adjacent_requests_run_together_with(true);
}

fn adjacent_requests_run_together_with(persistent: bool) {
    let mut g = guest(false);
    g.back.set_persistent(persistent);
    for p in 0..11 {
        g.data.fill(p * 4096, 4096, 0x40 + p as u8).unwrap();
    }
    let all: Vec<RawSegment> = (0..11).map(full).collect();
    // Sectors 0..88, 88..176, then a lone write elsewhere, then 176..184 again adjacent.
    let rsp = g.submit(&[
        RawRequest::new(OP_WRITE, 1, 0, &all),
        RawRequest::new(OP_WRITE, 2, 88, &all),
        RawRequest::new(OP_WRITE, 3, 200, &[full(0)]),
        RawRequest::new(OP_WRITE, 4, 176, &[full(1)]),
    ]);
    let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(got, vec![(1, 0), (2, 0), (3, 0), (4, 0)]);
    let mut page = [0u8; 4096];
    for (sector, byte) in [
        (0u64, 0x40u8),
        (80, 0x4a),
        (88, 0x40),
        (168, 0x4a),
        (176, 0x41),
        (200, 0x40),
    ] {
        g.disk.read_at(&mut page, sector).unwrap();
        assert!(page.iter().all(|b| *b == byte), "sector {sector}");
    }
    // Read them back as a run into pages 0..11 and 0..11 again, with one
    // request of the run naming a revoked grant: it alone fails.
    g.data.fill(0, 11 * 4096, 0).unwrap();
    g.grants.revoke(GUEST, DATA_GREF + 11);
    let mut bad = RawRequest::new(OP_READ, 7, 176, &[full(11)]);
    bad.set_segment(0, full(11));
    let rsp = g.submit(&[
        RawRequest::new(OP_READ, 5, 0, &all),
        RawRequest::new(OP_READ, 6, 88, &all),
        bad,
    ]);
    let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(got, vec![(5, 0), (6, 0), (7, RSP_ERROR)]);
    for p in 0..11 {
        g.data.read_bytes(p * 4096, &mut page).unwrap();
        assert!(page.iter().all(|b| *b == 0x40 + p as u8), "page {p}");
    }
}

/// Indirect requests (when offered): the segment page is copied once, its
/// segments validated like a direct request's; the response names the inner
/// operation; a bad segment page or header is an error for that request only.
#[test]
fn indirect_requests_when_offered() {
    indirect_requests_when_offered_with(false);
}

#[test]
fn indirect_requests_over_persistent_grants() {
    indirect_requests_when_offered_with(true);
}

fn indirect_requests_when_offered_with(persistent: bool) {
    let mut g = guest(false);
    g.back.set_persistent(persistent);
    g.back.set_max_indirect_segments(32);
    // 20 segments: pages 0..10 twice, in the indirect page (page 11).
    for p in 0..10 {
        g.data.fill(p * 4096, 4096, 0x70 + p as u8).unwrap();
    }
    let mut list = Vec::new();
    for i in 0..20 {
        list.extend_from_slice(&full(i % 10).to_bytes());
    }
    g.data.write_bytes(11 * 4096, &list).unwrap();
    let ind = DATA_GREF + 11;
    let rsp = g.submit(&[
        RawRequest::new_indirect(OP_WRITE, 1, 0, 20, &[ind]),
        RawRequest::new_indirect(OP_FLUSH_DISKCACHE, 2, 0, 1, &[ind]),
        RawRequest::new_indirect(OP_READ, 3, 0, 33, &[ind]),
        RawRequest::new_indirect(OP_READ, 4, 0, 20, &[9999]),
    ]);
    let got: Vec<(u64, u8, i16)> = rsp.iter().map(|r| (r.id, r.operation, r.status)).collect();
    assert_eq!(
        got,
        vec![
            (1, OP_WRITE, RSP_OKAY),
            (2, OP_FLUSH_DISKCACHE, RSP_ERROR),
            (3, OP_READ, RSP_ERROR),
            (4, OP_READ, RSP_ERROR),
        ]
    );
    let mut page = [0u8; 4096];
    for i in 0..20u64 {
        g.disk.read_at(&mut page, i * 8).unwrap();
        assert!(page.iter().all(|b| *b == 0x70 + (i % 10) as u8), "page {i}");
    }
    // Without the feature an indirect request is not supported.
    g.back.set_max_indirect_segments(0);
    let rsp = g.submit(&[RawRequest::new_indirect(OP_READ, 5, 0, 20, &[ind])]);
    assert_eq!((rsp[0].id, rsp[0].status), (5, RSP_EOPNOTSUPP));
}

/// Persistent grants: each grant is mapped once, in one call for the batch,
/// and the data moves between the disk and the mapped pages (no copy).
#[test]
fn persistent_grants_are_mapped_once_and_used_directly() {
    let mut g = guest(false);
    g.back.set_persistent(true);
    g.data.fill(0, 4096, 0x11).unwrap();
    g.data.fill(4096, 4096, 0x22).unwrap();
    let rsp = g.submit(&[
        RawRequest::new(OP_WRITE, 1, 0, &[full(0), full(1)]),
        RawRequest::new(OP_WRITE, 2, 64, &[full(1)]),
    ]);
    let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(got, vec![(1, RSP_OKAY), (2, RSP_OKAY)]);
    assert_eq!(
        g.grants.page_map_calls(),
        1,
        "one mapping call for the batch"
    );
    assert_eq!(g.grants.live_pages(), 2);
    assert_eq!(g.back.persistent_grants(), 2);
    let mut page = [0u8; 4096];
    for (sector, byte) in [(0u64, 0x11u8), (8, 0x22), (64, 0x22)] {
        g.disk.read_at(&mut page, sector).unwrap();
        assert!(page.iter().all(|b| *b == byte), "sector {sector}");
    }
    // Read back through the same grants: no new mapping.
    g.data.fill(0, 2 * 4096, 0).unwrap();
    assert_eq!(
        g.one(RawRequest::new(OP_READ, 3, 0, &[full(1), full(0)])),
        RSP_OKAY
    );
    assert_eq!(g.grants.page_map_calls(), 1);
    g.data.read_bytes(0, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0x22));
    g.data.read_bytes(4096, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0x11));
    let st = g.back.stats().take();
    assert_eq!((st.grants_mapped, st.map_calls, st.over_bound), (2, 1, 0));
    assert_eq!(st.direct_runs, st.runs, "every run used the mappings");
    assert_eq!(st.copy_ns, 0, "no grant copy");
    // Closing the ring unmaps them all.
    assert_eq!(g.back.unmap_persistent(), 2);
    assert_eq!(g.grants.live_pages(), 0);
}

/// A frontend that reuses a grant with other contents gets the contents of
/// the moment of each request (nothing is cached), both ways.
#[test]
fn a_reused_grant_with_new_contents_moves_the_new_contents() {
    let mut g = guest(false);
    g.back.set_persistent(true);
    g.data.fill(0, 4096, 0xa1).unwrap();
    assert_eq!(g.one(RawRequest::new(OP_WRITE, 1, 0, &[full(0)])), RSP_OKAY);
    g.data.fill(0, 4096, 0xb2).unwrap();
    assert_eq!(g.one(RawRequest::new(OP_WRITE, 2, 8, &[full(0)])), RSP_OKAY);
    let mut page = [0u8; 4096];
    g.disk.read_at(&mut page, 0).unwrap();
    assert!(page.iter().all(|b| *b == 0xa1));
    g.disk.read_at(&mut page, 8).unwrap();
    assert!(page.iter().all(|b| *b == 0xb2));
    assert_eq!(g.one(RawRequest::new(OP_READ, 3, 0, &[full(0)])), RSP_OKAY);
    g.data.read_bytes(0, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0xa1));
    assert_eq!(g.grants.page_map_calls(), 1);
}

/// A grant that cannot be mapped fails the requests naming it, and only
/// them; the ring stays up. One the guest revokes after it was mapped stays
/// usable (Xen keeps a mapped grant until the backend unmaps it).
#[test]
fn an_unmappable_grant_fails_its_request_only() {
    let mut g = guest(false);
    g.back.set_persistent(true);
    assert_eq!(g.one(RawRequest::new(OP_READ, 1, 0, &[full(0)])), RSP_OKAY);
    g.grants.revoke(GUEST, DATA_GREF);
    g.grants.revoke(GUEST, DATA_GREF + 3);
    let rsp = g.submit(&[
        RawRequest::new(OP_READ, 2, 0, &[full(0)]),
        RawRequest::new(OP_WRITE, 3, 8, &[full(2), full(3)]),
        RawRequest::new(OP_READ, 4, 16, &[full(4)]),
        RawRequest::new(OP_READ, 5, 24, &[full(3)]),
    ]);
    let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        got,
        vec![(2, RSP_OKAY), (3, RSP_ERROR), (4, RSP_OKAY), (5, RSP_ERROR)]
    );
    // The failed write wrote nothing.
    let mut page = [0u8; 4096];
    g.disk.read_at(&mut page, 8).unwrap();
    assert!(page[..512].iter().all(|b| *b == 8));
    // Grants 0, 2 and 4 are mapped (2 in the failed batch call's retries).
    assert_eq!(g.back.persistent_grants(), 3);
    assert_eq!(g.one(RawRequest::new(OP_READ, 6, 32, &[full(2)])), RSP_OKAY);
    g.data.read_bytes(2 * 4096, &mut page).unwrap();
    assert!(page[..512].iter().all(|b| *b == 32));
}

/// Beyond the bound, new grants are not mapped: their requests copy, with
/// the same results.
#[test]
fn beyond_the_bound_requests_copy() {
    let mut g = guest(false);
    g.back.set_persistent_bound(true, 2);
    for p in 0..4 {
        g.data.fill(p * 4096, 4096, 0x30 + p as u8).unwrap();
    }
    let rsp = g.submit(&[
        RawRequest::new(OP_WRITE, 1, 0, &[full(0), full(1)]),
        RawRequest::new(OP_WRITE, 2, 80, &[full(2), full(3)]),
    ]);
    assert!(rsp.iter().all(|r| r.status == RSP_OKAY));
    assert_eq!(g.back.persistent_grants(), 2);
    assert_eq!(g.grants.live_pages(), 2);
    let mut page = [0u8; 4096];
    for (sector, byte) in [(0u64, 0x30u8), (8, 0x31), (80, 0x32), (88, 0x33)] {
        g.disk.read_at(&mut page, sector).unwrap();
        assert!(page.iter().all(|b| *b == byte), "sector {sector}");
    }
    let st = g.back.stats().take();
    assert_eq!((st.grants_mapped, st.over_bound), (2, 2));
    assert_eq!((st.runs, st.direct_runs), (2, 1));
    // Reads through grants over the bound copy too.
    g.data.fill(0, 4 * 4096, 0).unwrap();
    assert_eq!(
        g.one(RawRequest::new(OP_READ, 3, 80, &[full(3), full(0)])),
        RSP_OKAY
    );
    g.data.read_bytes(3 * 4096, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0x32));
    g.data.read_bytes(0, &mut page).unwrap();
    assert!(page.iter().all(|b| *b == 0x33));
    assert_eq!(g.grants.live_pages(), 2);
}

/// Dropping the ring (the device disconnects or rxblkback stops) unmaps its
/// persistent grants.
#[test]
fn dropping_the_ring_unmaps_its_grants() {
    let mut g = guest(false);
    g.back.set_persistent(true);
    let all: Vec<RawSegment> = (0..11).map(full).collect();
    assert_eq!(g.one(RawRequest::new(OP_READ, 1, 0, &all)), RSP_OKAY);
    assert_eq!(g.grants.live_pages(), 11);
    let grants = Arc::clone(&g.grants);
    drop(g);
    assert_eq!(grants.live_pages(), 0);
}

/// A group big enough to spread over several lanes (threads), then a small
/// one in the same batch and one in the next: every request is answered once,
/// in ring order, and the reused per-group vectors carry nothing over.
#[test]
fn a_parallel_group_and_the_groups_after_it_answer_in_order() {
    for persistent in [false, true] {
        let mut g = guest(false);
        g.back.set_persistent(persistent);
        g.back.set_max_indirect_segments(32);
        // 32 segments reading the whole disk (sector n holds the byte n):
        // segment k into page k % 10, so page p ends with segment p + 20 or,
        // for p < 2, p + 30.
        let mut list = Vec::new();
        for k in 0..32 {
            list.extend_from_slice(&full(k % 10).to_bytes());
        }
        g.data.write_bytes(11 * 4096, &list).unwrap();
        let ind = DATA_GREF + 11;
        // 13 reads of 128 KiB (1.6 MiB, more than PARALLEL_MIN_BYTES), each
        // its own run (all start at sector 0), a flush, then one read.
        let mut reqs: Vec<RawRequest> = (0..13)
            .map(|i| RawRequest::new_indirect(OP_READ, i, 0, 32, &[ind]))
            .collect();
        const { assert!(13 * 32 * XEN_PAGE_SIZE >= PARALLEL_MIN_BYTES) };
        reqs.push(RawRequest::new(OP_FLUSH_DISKCACHE, 13, 0, &[]));
        reqs.push(RawRequest::new(OP_READ, 14, 8, &[full(10)]));
        let rsp = g.submit(&reqs);
        let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
        let want: Vec<(u64, i16)> = (0..15).map(|i| (i, RSP_OKAY)).collect();
        assert_eq!(got, want, "persistent {persistent}");
        let mut page = [0u8; 4096];
        for p in 0..10usize {
            let k = if p < 2 { p + 30 } else { p + 20 };
            g.data.read_bytes(p * 4096, &mut page).unwrap();
            for (j, sector) in page.chunks(512).enumerate() {
                let want = (8 * k + j) as u8;
                assert!(sector.iter().all(|b| *b == want), "page {p} sector {j}");
            }
        }
        g.data.read_bytes(10 * 4096, &mut page).unwrap();
        for (j, sector) in page.chunks(512).enumerate() {
            assert!(
                sector.iter().all(|b| *b == 8 + j as u8),
                "page 10 sector {j}"
            );
        }
        // The next batch: one response, its own.
        let rsp = g.submit(&[RawRequest::new(OP_READ, 99, 16, &[full(10)])]);
        let got: Vec<(u64, i16)> = rsp.iter().map(|r| (r.id, r.status)).collect();
        assert_eq!(got, vec![(99, RSP_OKAY)]);
    }
}
