//! rxblkback: the PV block backend (blkif, xen/include/public/io/blkif.h).
//!
//! [`BlockHandler`] plugs the block device kind into the generic
//! [`crate::xenbus::Daemon`]: `prepare` opens the backing file or block device
//! named by `params` and publishes the disk's features; `connect` maps the
//! frontend's ring, binds its event channel and starts a thread for that ring, so
//! that one device's stall never stalls another; `disconnect` stops the thread.
//! `resume` takes over a ring that an earlier rxblkback served when it was
//! killed (see [`journal`]): attach at the published responses, replay the
//! requests it had taken but not answered, notify once.

pub mod abi;
pub mod disk;
pub mod journal;
pub mod persistent;
pub mod request;
pub mod server;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::xenbus::{
    read_frontend_queues, BoxError, BrokenNotifier, DeviceHandler, DeviceId, Features,
    FrontendRings, MAX_RING_PAGE_ORDER,
};
use abi::*;
use disk::Disk;
use journal::{queue_journal_path, Journal, RingIdent};
use server::BlkRing;
use toolstack::device::vbd::{node, BackendConfig};
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::{BackRing, Evtchn, Gntdev, GrantMapper};
use xenstore::client::{Client, XsOps};

/// Discard granularity advertised for files (one page, the hole-punch unit).
pub const DISCARD_GRANULARITY: u32 = 4096;
/// How long a ring thread sleeps between checks of its stop flag.
const STOP_POLL_MS: u16 = 200;
/// Idle polls after which a ring thread logs what its last burst of work cost
/// (1 s: one benchmark phase, one `dd`, is one burst).
const STATS_IDLE_POLLS: u32 = 5;
/// Where the request journals live by default (tmpfs: they must survive the
/// process, not the machine, whose guests do not survive it either).
pub const DEFAULT_STATE_DIR: &str = "/run/rxblkback";

/// The block device kind.
#[derive(Debug)]
pub struct BlockHandler {
    gntdev: Arc<Gntdev>,
    /// Directory of the request journals; `None`: no journal.
    state_dir: Option<PathBuf>,
    /// `feature-max-indirect-segments` offered (0: none).
    max_indirect_segments: u16,
    /// `multi-queue-max-queues` offered (1: one ring per device).
    max_queues: u32,
    /// `feature-persistent` offered.
    persistent: bool,
}

/// What a block frontend wrote: its rings, and whether it uses persistent
/// grants.
#[derive(Debug)]
pub struct BlockFrontend {
    pub queues: Vec<FrontendRings>,
    /// The frontend's `feature-persistent` is 1 (and this backend offered it).
    pub persistent: bool,
}

/// Most queues (rings, each with its thread) rxblkback offers a device.
pub const MAX_QUEUES: u32 = 16;

impl BlockHandler {
    pub fn new(gntdev: Gntdev, state_dir: Option<PathBuf>) -> Self {
        Self {
            gntdev: Arc::new(gntdev),
            state_dir,
            max_indirect_segments: 0,
            max_queues: 1,
            persistent: true,
        }
    }

    /// Offers persistent grants (`feature-persistent = 1`, the default) or not
    /// (0: grant copy only).
    pub fn with_persistent_grants(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Offers up to `n` queues per device (`multi-queue-max-queues`, 1 to
    /// [`MAX_QUEUES`]); Linux blkfront uses one per guest vCPU, up to this.
    pub fn with_max_queues(mut self, n: u32) -> Self {
        self.max_queues = n.clamp(1, MAX_QUEUES);
        self
    }

    /// Offers indirect requests of up to `n` segments (at most
    /// [`abi::MAX_INDIRECT_SEGMENTS`]; 0: not offered).
    pub fn with_max_indirect_segments(mut self, n: u16) -> Self {
        self.max_indirect_segments = n.min(MAX_INDIRECT_SEGMENTS);
        self
    }

    /// Starts every queue's ring; if one fails, stops those already started.
    fn start(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        front: BlockFrontend,
        broken: BrokenNotifier,
        resume: bool,
    ) -> Result<(), BoxError> {
        let several = front.queues.len() > 1;
        let persistent = front.persistent;
        for (q, rings) in front.queues.into_iter().enumerate() {
            let queue = Queue {
                q,
                several,
                rings,
                persistent,
            };
            match self.start_queue(id, device, queue, broken.clone(), resume) {
                Ok(worker) => device.workers.push(worker),
                Err(e) => {
                    stop_workers(id, device);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Maps queue `q`'s ring (fresh, or attached at its published responses
    /// when `resume`), binds its event channel and starts its thread.
    fn start_queue(
        &mut self,
        id: &DeviceId,
        device: &BlockDevice,
        queue: Queue,
        broken: BrokenNotifier,
        resume: bool,
    ) -> Result<Worker, BoxError> {
        let Queue {
            q,
            several,
            rings,
            persistent,
        } = queue;
        let domid = id.frontend_domid();
        let qname = if several {
            format!("{}/queue-{q}", id.backend_path)
        } else {
            id.backend_path.clone()
        };
        let mapping = self.gntdev.map_grants(domid, &rings.ring_refs, true)?;
        let ring = if resume {
            BackRing::attach(mapping.memory().clone(), REQUEST_SIZE)?
        } else {
            BackRing::new(mapping.memory().clone(), REQUEST_SIZE)?
        };
        let ident = RingIdent {
            domid: id.key.frontend,
            devid: id.key.devid,
            first_ring_ref: rings.ring_refs.first().copied().unwrap_or(0),
            ring_pages: rings.ring_refs.len() as u32,
            event_channel: rings.event_channel,
            slots: ring.size(),
        };
        let evtchn = Evtchn::open()?;
        let port = evtchn.bind_interdomain(domid, rings.event_channel)?;
        let mut blk = BlkRing::new(
            ring,
            Arc::clone(&self.gntdev),
            domid,
            Arc::clone(&device.disk),
            device.discard,
        );
        blk.set_max_indirect_segments(self.max_indirect_segments);
        blk.set_persistent(persistent);
        if let Some(dir) = &self.state_dir {
            let path = queue_journal_path(dir, id.key.frontend, id.key.devid, q);
            match Journal::open(&path, ident, resume) {
                Ok(j) => {
                    let n = blk.with_journal(j, resume);
                    if resume {
                        tracing::info!(
                            "{qname}: {} request(s) on the ring without a response; {n} of them taken by the killed backend, replayed from {}",
                            blk.unanswered().map_or_else(|e| e.to_string(), |u| u.to_string()),
                            path.display()
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    "{qname}: no request journal ({e}); a restart after a kill may not answer requests in flight"
                ),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let name = format!("blk-{}-{}-{q}", id.key.frontend, id.key.devid);
        let stop2 = Arc::clone(&stop);
        let name2 = qname.clone();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            // The mapping lives as long as the thread serves the ring.
            let _mapping = mapping;
            serve(&mut blk, evtchn, port, &stop2, &broken, resume, &name2);
            log_stats(&name2, blk.stats());
            let n = blk.unmap_persistent();
            if n > 0 {
                tracing::info!("{name2}: unmapped {n} persistent grant(s)");
            }
            blk.remove_journal();
        })?;
        tracing::info!(
            "{qname}: {}, ring of {} page(s) ({} bytes), event channel {}, persistent grants {}",
            if resume { "resumed" } else { "connected" },
            rings.ring_refs.len(),
            rings.ring_refs.len() * XEN_PAGE_SIZE,
            rings.event_channel,
            if persistent { "on" } else { "off" }
        );
        Ok((stop, handle))
    }
}

/// One queue to start: its index, whether the device has several, its rings
/// and whether its grants are mapped persistently.
#[derive(Debug)]
struct Queue {
    q: usize,
    several: bool,
    rings: FrontendRings,
    persistent: bool,
}

/// A ring's thread and its stop flag.
type Worker = (Arc<AtomicBool>, JoinHandle<()>);

/// One disk: the open backing store and, when connected, its rings' threads
/// (one per queue).
#[derive(Debug)]
pub struct BlockDevice {
    disk: Arc<Disk>,
    discard: bool,
    workers: Vec<Worker>,
}

/// Stops a device's ring threads (all flagged first, then joined).
fn stop_workers(id: &DeviceId, device: &mut BlockDevice) {
    for (stop, _) in &device.workers {
        stop.store(true, Ordering::Relaxed);
    }
    for (_, handle) in device.workers.drain(..) {
        if handle.join().is_err() {
            tracing::error!("{}: ring thread panicked", id.backend_path);
        }
    }
}

/// The features a disk publishes before InitWait (blkif.h "Backend XenBus Nodes").
///
/// `feature-persistent` is written 0 here; [`BlockHandler`] overwrites it with
/// 1 when it offers persistent grants.
pub fn features(disk: &Disk, cdrom: bool, discard: bool) -> Features {
    let mut info = 0;
    if disk.read_only() {
        info |= VDISK_READONLY;
    }
    if cdrom {
        info |= VDISK_CDROM | VDISK_REMOVABLE;
    }
    let mut f = vec![
        ("sectors", disk.sectors().to_string()),
        ("info", info.to_string()),
        // blkif.h: `sectors` stays in 512-byte units whatever `sector-size` is.
        ("sector-size", disk.sector_size().to_string()),
        (
            "physical-sector-size",
            disk.physical_sector_size().to_string(),
        ),
        ("feature-flush-cache", "1".to_string()),
        ("feature-barrier", "0".to_string()),
        ("feature-persistent", "0".to_string()),
        ("max-ring-page-order", MAX_RING_PAGE_ORDER.to_string()),
    ];
    if discard && disk.can_discard() {
        f.push(("feature-discard", "1".to_string()));
        f.push(("discard-granularity", DISCARD_GRANULARITY.to_string()));
        f.push(("discard-alignment", "0".to_string()));
        f.push(("discard-secure", "0".to_string()));
    }
    f.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl DeviceHandler for BlockHandler {
    type Device = BlockDevice;
    type Frontend = BlockFrontend;

    fn prepare(
        &mut self,
        id: &DeviceId,
        xs: &mut Client,
    ) -> Result<(BlockDevice, Features), BoxError> {
        let be = &id.backend_path;
        let read = |xs: &mut Client, n: &str| id.read_backend_node(xs, n);
        let params = read(xs, node::PARAMS)?.ok_or("no params node")?;
        let cfg = BackendConfig::from_nodes(
            &params,
            read(xs, node::MODE)?.as_deref(),
            read(xs, node::DEVICE_TYPE)?.as_deref(),
            read(xs, node::DISCARD_ENABLE)?.as_deref(),
        );
        let mut disk = Disk::open(Path::new(&cfg.params), cfg.read_only)?;
        // A sector size rxl wrote (`sector-size=` in the disk spec), or the one
        // this backend published before a restart.
        if let Some(v) = read(xs, node::SECTOR_SIZE)? {
            let n = v
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("bad {} node {v:?}", node::SECTOR_SIZE))?;
            disk = disk.with_sector_size(n)?;
        }
        tracing::info!(
            "{be}: {} ({} sectors of 512 bytes, logical sector {} bytes, {})",
            cfg.params,
            disk.sectors(),
            disk.sector_size(),
            if cfg.read_only {
                "read-only"
            } else {
                "read-write"
            }
        );
        let mut f = features(&disk, cfg.cdrom, cfg.discard);
        if self.persistent {
            for (k, v) in &mut f {
                if k == "feature-persistent" {
                    *v = "1".to_string();
                }
            }
        }
        if self.max_queues > 1 {
            f.push((
                "multi-queue-max-queues".to_string(),
                self.max_queues.to_string(),
            ));
        }
        if self.max_indirect_segments > 0 {
            f.push((
                "feature-max-indirect-segments".to_string(),
                self.max_indirect_segments.to_string(),
            ));
        }
        Ok((
            BlockDevice {
                disk: Arc::new(disk),
                discard: cfg.discard,
                workers: Vec::new(),
            },
            f,
        ))
    }

    fn read_frontend(
        &mut self,
        xs: &mut Client,
        frontend_path: &str,
    ) -> Result<BlockFrontend, BoxError> {
        let queues = read_frontend_queues(xs, frontend_path, MAX_RING_PAGE_ORDER, self.max_queues)?;
        // blkif.h: the frontend writes `feature-persistent = 1` when it will
        // reuse its grants; both ends must say so.
        let asked = xs
            .try_read(&format!("{frontend_path}/feature-persistent"))?
            .is_some_and(|v| String::from_utf8_lossy(&v).trim() == "1");
        Ok(BlockFrontend {
            queues,
            persistent: self.persistent && asked,
        })
    }

    fn connect(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        front: BlockFrontend,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        self.start(id, device, front, broken, false)
    }

    fn resumes(&self) -> bool {
        true
    }

    fn resume(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        front: BlockFrontend,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        self.start(id, device, front, broken, true)
    }

    fn disconnect(&mut self, id: &DeviceId, device: &mut BlockDevice) {
        if !device.workers.is_empty() {
            stop_workers(id, device);
            tracing::info!("{}: disconnected", id.backend_path);
        }
    }
}

/// Logs (and resets) a ring's counters when it did anything since the last time.
fn log_stats(name: &str, stats: &stats::RingStats) {
    let snap = stats.take();
    if snap.requests() > 0 {
        tracing::info!("{name}: ring stats: {snap}");
    }
}

/// A ring thread: wait for the event channel, answer requests, notify.
///
/// After a `resume` the frontend is notified once whatever the ring's event
/// index says: the killed backend may have published responses without
/// notifying, and the frontend would wait for them forever.
#[allow(clippy::too_many_arguments)]
fn serve(
    blk: &mut BlkRing<Gntdev>,
    evtchn: Evtchn,
    port: u32,
    stop: &AtomicBool,
    broken: &BrokenNotifier,
    resume: bool,
    name: &str,
) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    if resume {
        if let Err(e) = evtchn.notify(port) {
            broken.report(format!("notifying the frontend failed: {e}"));
            return;
        }
    }
    loop {
        // Requests may have been queued before the port was bound, and after each
        // wake-up; process first, then sleep.
        match blk.process() {
            Ok(true) => {
                if let Err(e) = evtchn.notify(port) {
                    broken.report(format!("notifying the frontend failed: {e}"));
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => {
                broken.report(format!("ring protocol violation: {e}"));
                return;
            }
        }
        let mut idle = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let mut fds = [PollFd::new(evtchn.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(STOP_POLL_MS)) {
                Ok(0) => {
                    idle += 1;
                    if idle == STATS_IDLE_POLLS {
                        log_stats(name, blk.stats());
                    }
                    continue;
                }
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    broken.report(format!("polling the event channel failed: {e}"));
                    return;
                }
            }
        }
        if let Err(e) = evtchn.acknowledge_pending() {
            broken.report(format!("reading the event channel failed: {e}"));
            return;
        }
    }
}
