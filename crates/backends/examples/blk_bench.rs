//! Host benchmark of rxblkback's request path over the fakes against plain
//! `pread`/`pwrite` of the same bytes (docs/PERFORMANCE.md).
//!
//! A frontend in the same thread fills the ring (32 slots) the way Linux
//! blkfront does: a sequential 1 MiB I/O as requests of 11 full pages (44 KiB,
//! the last one shorter), random 4 KiB I/O as one-page requests, 32 in flight.
//! The backend ([`BlkRing::process`]) validates each request, then moves the data
//! two ways, each on its own ring: "copy" reads or writes the backing file
//! through its buffer and copies to or from the "guest's" granted pages (the
//! fake grant table: a `memcpy` where Xen's grant copy would run), as without
//! persistent grants; "persistent" maps each grant once (the fake's
//! `map_pages`) and reads or writes the file straight into or out of the mapped
//! pages (`preadv`/`pwritev`), as with them. The peers do only the disk calls of
//! the same requests: `plain` one `pread`/`pwrite` per request into one (hot)
//! buffer; `plain-guest` the same into or out of the pages the frontend gave the
//! request (where the data must land: the least any backend does);
//! `plain+copy` into the buffer and then a copy to or from those pages. All run
//! on the same file, in alternating rounds; the reported time of each is its
//! median round.
//!
//! Two measures, side by side: the wall time of a round (for the rings, this
//! includes the frontend's half of the ring, which runs in the same thread
//! here but on the guest's own vCPU on Xen), and the thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) of the backend's `process()` calls only (one
//! per 32 requests), against the peers' CPU time taken the same way around
//! each 32 of their disk calls. Each interval has the CPU time of an empty
//! interval (its two clock reads, calibrated at start and printed) taken off.
//!
//! ```text
//! cargo run --release -p backends --features fake --example blk_bench -- [--file PATH] [--mib N] [--rounds N] [--lanes N] [--no-journal] [--only seq-read|seq-write|rand-read|rand-write] [--rings copy,persistent]
//! ```
//! The file (default: in /dev/shm, so that the page cache, not a disk, is the
//! limit and the backend's own overhead shows) is created and removed.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::block::abi::{
    RawRequest, RawSegment, Response, MAX_SEGMENTS, OP_READ, OP_WRITE, REQUEST_SIZE, RESPONSE_SIZE,
    RSP_OKAY, SECTOR_SIZE,
};
use backends::block::disk::Disk;
use backends::block::journal::{Journal, RingIdent};
use backends::block::server::BlkRing;
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::fake::FakeGrants;
use xen::{
    pread_exact_into, pwrite_all_from, thread_cpu_time, BackRing, FrontRing, GrantMapper, IoPiece,
    MappedMemory,
};

const GUEST: u16 = 1;
const RING_GREF: u32 = 1;
const DATA_GREF: u32 = 1000;
/// Granted data pages: enough for a full ring of 11-page requests.
const DATA_PAGES: usize = RING_SLOTS * MAX_SEGMENTS;
/// Slots of the one-page ring (requests in flight).
const RING_SLOTS: usize = 32;
const SECTORS_PER_PAGE: u64 = XEN_PAGE_SIZE as u64 / SECTOR_SIZE;

struct Args {
    file: PathBuf,
    mib: u64,
    rounds: usize,
    journal: bool,
    lanes: usize,
    /// Only this workload (all four when `None`).
    only: Option<String>,
    /// The backend rings to run (`copy`, `persistent`; both by default; one
    /// alone is for profiles).
    rings: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        file: PathBuf::from(format!("/dev/shm/rxblk-bench-{}", std::process::id())),
        mib: 256,
        rounds: 5,
        journal: true,
        lanes: backends::block::server::MAX_IN_FLIGHT,
        only: None,
        rings: vec!["copy".into(), "persistent".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--file" => a.file = it.next().unwrap().into(),
            "--mib" => a.mib = it.next().unwrap().parse().unwrap(),
            "--rounds" => a.rounds = it.next().unwrap().parse().unwrap(),
            "--no-journal" => a.journal = false,
            "--lanes" => a.lanes = it.next().unwrap().parse().unwrap(),
            "--only" => a.only = it.next(),
            "--rings" => a.rings = it.next().unwrap().split(',').map(str::to_string).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One I/O as blkfront cuts it: (sector, pages) per request.
fn cut(sector: u64, pages: usize) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < pages {
        let n = (pages - at).min(MAX_SEGMENTS);
        out.push((sector + at as u64 * SECTORS_PER_PAGE, n));
        at += n;
    }
    out
}

/// The requests of a workload, in order.
fn workload(name: &str, disk_pages: u64, total_pages: u64) -> (u8, Vec<(u64, usize)>) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mib_pages = (1 << 20) / XEN_PAGE_SIZE;
    match name {
        "seq-read" | "seq-write" => {
            let op = if name == "seq-read" {
                OP_READ
            } else {
                OP_WRITE
            };
            let mut v = Vec::new();
            let mut page = 0;
            while page < total_pages {
                v.extend(cut(page * SECTORS_PER_PAGE, mib_pages));
                page += mib_pages as u64;
            }
            (op, v)
        }
        _ => {
            let op = if name == "rand-read" {
                OP_READ
            } else {
                OP_WRITE
            };
            let v = (0..total_pages)
                .map(|_| ((rand() % disk_pages) * SECTORS_PER_PAGE, 1))
                .collect();
            (op, v)
        }
    }
}

struct Bench {
    front: FrontRing,
    back: BlkRing<FakeGrants>,
    journal: Option<PathBuf>,
}

/// What one round of a workload cost: its wall time, and the CPU time of the
/// calls that count as the backend's (or the peer's) work.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

/// Times the thread CPU of `f` (see [`Clock`]).
struct Clock {
    /// The CPU time an empty interval measures (half of each of its two clock
    /// reads), taken off every interval.
    empty: Duration,
}

impl Clock {
    fn calibrate() -> Self {
        let mut v: Vec<Duration> = (0..2001)
            .map(|_| {
                let t = thread_cpu_time();
                thread_cpu_time().saturating_sub(t)
            })
            .collect();
        v.sort();
        Clock {
            empty: v[v.len() / 2],
        }
    }

    /// Runs `f`, adding its thread CPU time (less an empty interval's) to `cpu`.
    fn time<T>(&self, cpu: &mut Duration, f: impl FnOnce() -> T) -> T {
        let t = thread_cpu_time();
        let out = f();
        *cpu += thread_cpu_time()
            .saturating_sub(t)
            .saturating_sub(self.empty);
        out
    }
}

impl Bench {
    /// Runs the requests through the ring, 32 in flight; every answer must be
    /// OK. The CPU time is that of the backend's `process` calls (one per 32
    /// requests): the frontend's half of the ring, which a guest runs on its
    /// own vCPU, is not charged to the backend (the wall time includes it).
    fn run(&mut self, op: u8, reqs: &[(u64, usize)], clock: &Clock) -> Cost {
        let t = Instant::now();
        let mut cpu = Duration::ZERO;
        let mut next = 0;
        let mut done = 0;
        let mut slot = 0usize;
        let mut rsp = [0u8; RESPONSE_SIZE];
        let mut segs = [RawSegment::default(); MAX_SEGMENTS];
        while done < reqs.len() {
            while next < reqs.len() && self.front.free_requests() > 0 {
                let (sector, pages) = reqs[next];
                let base = (slot % RING_SLOTS) * MAX_SEGMENTS;
                for (p, s) in segs[..pages].iter_mut().enumerate() {
                    *s = RawSegment {
                        gref: DATA_GREF + (base + p) as u32,
                        first_sect: 0,
                        last_sect: (SECTORS_PER_PAGE - 1) as u8,
                    };
                }
                let r = RawRequest::new(op, next as u64, sector, &segs[..pages]);
                self.front.put_request(&r.0).unwrap();
                next += 1;
                slot += 1;
            }
            self.front.push_requests().unwrap();
            clock.time(&mut cpu, || self.back.process()).unwrap();
            while self.front.next_response(&mut rsp).unwrap() {
                let r = Response::from_bytes(&rsp);
                assert_eq!(r.status, RSP_OKAY, "request {}", r.id);
                done += 1;
            }
        }
        Cost {
            wall: t.elapsed(),
            cpu,
        }
    }
}

/// Runs `one` for each request; the CPU time is taken per 32 requests (as the
/// backend's per `process` call of a full ring), the wall time over all.
fn peer(reqs: &[(u64, usize)], clock: &Clock, mut one: impl FnMut(usize, u64, usize)) -> Cost {
    let t = Instant::now();
    let mut cpu = Duration::ZERO;
    for (c, chunk) in reqs.chunks(RING_SLOTS).enumerate() {
        clock.time(&mut cpu, || {
            for (k, &(sector, pages)) in chunk.iter().enumerate() {
                one(c * RING_SLOTS + k, sector, pages);
            }
        });
    }
    Cost {
        wall: t.elapsed(),
        cpu,
    }
}

/// The same disk calls without the backend: one pread/pwrite per request.
fn plain(
    file: &std::fs::File,
    op: u8,
    reqs: &[(u64, usize)],
    buf: &mut [u8],
    clock: &Clock,
) -> Cost {
    peer(reqs, clock, |_, sector, pages| {
        let b = &mut buf[..pages * XEN_PAGE_SIZE];
        if op == OP_READ {
            file.read_exact_at(b, sector * SECTOR_SIZE).unwrap();
        } else {
            file.write_all_at(b, sector * SECTOR_SIZE).unwrap();
        }
    })
}

/// The disk calls alone, straight into or out of the pages the frontend gives
/// request `n` (those of its ring slot, as in [`Bench::run`]).
fn plain_guest(
    file: &std::fs::File,
    op: u8,
    reqs: &[(u64, usize)],
    guest: &MappedMemory,
    clock: &Clock,
) -> Cost {
    use std::os::fd::AsFd;
    peer(reqs, clock, |n, sector, pages| {
        let piece = [IoPiece {
            mem: guest,
            offset: (n % RING_SLOTS) * MAX_SEGMENTS * XEN_PAGE_SIZE,
            len: pages * XEN_PAGE_SIZE,
        }];
        if op == OP_READ {
            pread_exact_into(file.as_fd(), sector * SECTOR_SIZE, piece).unwrap();
        } else {
            pwrite_all_from(file.as_fd(), sector * SECTOR_SIZE, piece).unwrap();
        }
    })
}

/// The disk calls plus the copy to or from the guest's pages that the backend
/// must make (here with the same volatile copies as the fake grant table), into
/// the pages the frontend gives request `n` (those of its ring slot, as in
/// [`Bench::run`]: a hot buffer would flatter the peer).
fn plain_copy(
    file: &std::fs::File,
    op: u8,
    reqs: &[(u64, usize)],
    buf: &mut [u8],
    guest: &MappedMemory,
    clock: &Clock,
) -> Cost {
    peer(reqs, clock, |n, sector, pages| {
        let b = &mut buf[..pages * XEN_PAGE_SIZE];
        let at = (n % RING_SLOTS) * MAX_SEGMENTS * XEN_PAGE_SIZE;
        if op == OP_READ {
            file.read_exact_at(b, sector * SECTOR_SIZE).unwrap();
            guest.write_bytes(at, b).unwrap();
        } else {
            guest.read_bytes(at, b).unwrap();
            file.write_all_at(b, sector * SECTOR_SIZE).unwrap();
        }
    })
}

/// A frontend and backend on a fresh ring (granted as `ring_gref`), the
/// backend using persistent grants or not.
fn make_bench(
    a: &Args,
    grants: &Arc<FakeGrants>,
    disk: &Arc<Disk>,
    ring_gref: u32,
    persistent: bool,
) -> Bench {
    let ring_mem = MappedMemory::anonymous(XEN_PAGE_SIZE).unwrap();
    grants.grant(GUEST, ring_gref, &ring_mem, 0, true).unwrap();
    let front = FrontRing::init(ring_mem.clone(), REQUEST_SIZE).unwrap();
    let mapped = grants.map_grants(GUEST, &[ring_gref], true).unwrap();
    let ring = BackRing::new((*mapped).clone(), REQUEST_SIZE).unwrap();
    let mut back = BlkRing::new(ring, Arc::clone(grants), GUEST, Arc::clone(disk), false);
    back.set_max_lanes(a.lanes);
    back.set_persistent(persistent);
    let mut journal = None;
    if a.journal {
        let path = a.file.with_extension(format!("journal{ring_gref}"));
        let ident = RingIdent {
            domid: GUEST.into(),
            devid: 51712,
            first_ring_ref: ring_gref,
            ring_pages: 1,
            event_channel: 1,
            slots: 32,
        };
        back.with_journal(Journal::open(&path, ident, false).unwrap(), false);
        journal = Some(path);
    }
    Bench {
        front,
        back,
        journal,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median wall and the median CPU time of the rounds.
fn medians(v: &[Cost]) -> Cost {
    Cost {
        wall: median(v.iter().map(|c| c.wall).collect()),
        cpu: median(v.iter().map(|c| c.cpu).collect()),
    }
}

fn main() {
    let a = args();
    let bytes = a.mib << 20;
    let disk_pages = bytes / XEN_PAGE_SIZE as u64;
    {
        let f = std::fs::File::create(&a.file).unwrap();
        // Written out, so that reads find data in the page cache, not holes.
        let chunk = vec![0x5au8; 1 << 20];
        for i in 0..a.mib {
            f.write_all_at(&chunk, i << 20).unwrap();
        }
    }
    let data = MappedMemory::anonymous(DATA_PAGES * XEN_PAGE_SIZE).unwrap();
    data.fill(0, DATA_PAGES * XEN_PAGE_SIZE, 0xa5).unwrap();
    let grants = Arc::new(FakeGrants::new());
    for p in 0..DATA_PAGES {
        grants
            .grant(GUEST, DATA_GREF + p as u32, &data, p, true)
            .unwrap();
    }
    let disk = Arc::new(Disk::open(&a.file, false).unwrap());
    let mut copy = make_bench(&a, &grants, &disk, RING_GREF, false);
    let mut persistent = make_bench(&a, &grants, &disk, RING_GREF + 1, true);
    let plain_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&a.file)
        .unwrap();
    let mut buf = vec![0xa5u8; MAX_SEGMENTS * XEN_PAGE_SIZE];
    let clock = Clock::calibrate();
    println!(
        "file {} ({} MiB), {} rounds, journal {}, {} lane(s); copy: grant copy path, persistent: persistent grants",
        a.file.display(),
        a.mib,
        a.rounds,
        if a.journal { "on" } else { "off" },
        a.lanes
    );
    let mut rows = Vec::new();
    for name in ["seq-read", "seq-write", "rand-read", "rand-write"] {
        if a.only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        // Random I/O moves a quarter of the bytes (4 KiB requests are slow).
        let total_pages = if name.starts_with("rand") {
            disk_pages / 4
        } else {
            disk_pages
        };
        let (op, reqs) = workload(name, disk_pages, total_pages);
        let (mut tp, mut tg, mut tc, mut tb, mut tm) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.rounds {
            tp.push(plain(&plain_file, op, &reqs, &mut buf, &clock));
            tg.push(plain_guest(&plain_file, op, &reqs, &data, &clock));
            tc.push(plain_copy(&plain_file, op, &reqs, &mut buf, &data, &clock));
            if a.rings.iter().any(|r| r == "copy") {
                tb.push(copy.run(op, &reqs, &clock));
            }
            if a.rings.iter().any(|r| r == "persistent") {
                tm.push(persistent.run(op, &reqs, &clock));
            }
        }
        let or_zero = |v: &[Cost]| {
            if v.is_empty() {
                Cost::default()
            } else {
                medians(v)
            }
        };
        let mib = (total_pages * XEN_PAGE_SIZE as u64) as f64 / f64::from(1 << 20);
        rows.push((
            name,
            mib,
            reqs.len(),
            [
                medians(&tp),
                medians(&tg),
                medians(&tc),
                or_zero(&tb),
                or_zero(&tm),
            ],
        ));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (title, pick) in [
        (
            "wall time (the rings' time includes the frontend's half of the ring, run in the same thread)",
            (|c: &Cost| c.wall) as fn(&Cost) -> Duration,
        ),
        (
            "thread CPU time (rings: the backend's process() calls only; peers: their disk calls), per 32 requests, less an empty interval's",
            |c: &Cost| c.cpu,
        ),
    ] {
        println!("{title}:");
        println!(
            "workload    MiB  requests  plain_ms  plain-guest_ms  plain+copy_ms  copy_ms  persistent_ms  copy/plain  copy/plain+copy  persistent/plain  persistent/plain-guest  persistent_MiB/s"
        );
        for (name, mib, n, costs) in &rows {
            let [p, g, c, b, m] = costs.each_ref().map(pick);
            println!(
                "{name:<10} {mib:>5.0} {n:>9} {:>9.1} {:>15.1} {:>14.1} {:>8.1} {:>14.1} {:>11.2} {:>16.2} {:>17.2} {:>23.2} {:>17.0}",
                ms(p),
                ms(g),
                ms(c),
                ms(b),
                ms(m),
                ratio(b, p),
                ratio(b, c),
                ratio(m, p),
                ratio(m, g),
                mib / m.as_secs_f64()
            );
        }
    }
    println!(
        "empty CPU-time interval: {} ns (taken off each interval)",
        clock.empty.as_nanos()
    );
    println!(
        "persistent ring: {} grants mapped, in {} map call(s)",
        persistent.back.persistent_grants(),
        grants.page_map_calls()
    );
    for b in [&mut copy, &mut persistent] {
        b.back.remove_journal();
        if let Some(j) = &b.journal {
            let _ = std::fs::remove_file(j);
        }
    }
    let _ = std::fs::remove_file(&a.file);
}
