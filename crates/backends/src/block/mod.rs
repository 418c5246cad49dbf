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
pub mod request;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::xenbus::{
    read_frontend_rings, BoxError, BrokenNotifier, DeviceHandler, DeviceId, Features,
    FrontendRings, MAX_RING_PAGE_ORDER,
};
use abi::*;
use disk::Disk;
use journal::{journal_path, Journal, RingIdent};
use server::BlkRing;
use toolstack::device::vbd::{node, BackendConfig};
use xen::abi::xen::XEN_PAGE_SIZE;
use xen::{BackRing, Evtchn, Gntdev, GrantMapper};
use xenstore::client::Client;

/// Physical sector size advertised (a hint for alignment).
pub const PHYSICAL_SECTOR_SIZE: u32 = 4096;
/// Discard granularity advertised for files (one page, the hole-punch unit).
pub const DISCARD_GRANULARITY: u32 = 4096;
/// How long a ring thread sleeps between checks of its stop flag.
const STOP_POLL_MS: u16 = 200;
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
}

impl BlockHandler {
    pub fn new(gntdev: Gntdev, state_dir: Option<PathBuf>) -> Self {
        Self {
            gntdev: Arc::new(gntdev),
            state_dir,
            max_indirect_segments: 0,
        }
    }

    /// Offers indirect requests of up to `n` segments (at most
    /// [`abi::MAX_INDIRECT_SEGMENTS`]; 0: not offered).
    pub fn with_max_indirect_segments(mut self, n: u16) -> Self {
        self.max_indirect_segments = n.min(MAX_INDIRECT_SEGMENTS);
        self
    }

    /// Maps the ring (fresh, or attached at its published responses when
    /// `resume`), binds the event channel and starts the ring's thread.
    fn start(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        rings: FrontendRings,
        broken: BrokenNotifier,
        resume: bool,
    ) -> Result<(), BoxError> {
        let domid = id.frontend_domid();
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
        if let Some(dir) = &self.state_dir {
            let path = journal_path(dir, id.key.frontend, id.key.devid);
            match Journal::open(&path, ident, resume) {
                Ok(j) => {
                    let n = blk.with_journal(j, resume);
                    if resume {
                        tracing::info!(
                            "{}: {} request(s) on the ring without a response; {n} of them taken by the killed backend, replayed from {}",
                            id.backend_path,
                            blk.unanswered().map_or_else(|e| e.to_string(), |u| u.to_string()),
                            path.display()
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    "{}: no request journal ({e}); a restart after a kill may not answer requests in flight",
                    id.backend_path
                ),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let name = format!("blk-{}-{}", id.key.frontend, id.key.devid);
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            // The mapping lives as long as the thread serves the ring.
            let _mapping = mapping;
            serve(&mut blk, evtchn, port, &stop2, &broken, resume);
            blk.remove_journal();
        })?;
        tracing::info!(
            "{}: {}, ring of {} page(s) ({} bytes), event channel {}",
            id.backend_path,
            if resume { "resumed" } else { "connected" },
            rings.ring_refs.len(),
            rings.ring_refs.len() * XEN_PAGE_SIZE,
            rings.event_channel
        );
        device.worker = Some((stop, handle));
        Ok(())
    }
}

/// One disk: the open backing store and, when connected, its ring thread.
#[derive(Debug)]
pub struct BlockDevice {
    disk: Arc<Disk>,
    discard: bool,
    worker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// The features a disk publishes before InitWait (blkif.h "Backend XenBus Nodes").
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
        ("sector-size", SECTOR_SIZE.to_string()),
        ("physical-sector-size", PHYSICAL_SECTOR_SIZE.to_string()),
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
    type Frontend = FrontendRings;

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
        let disk = Disk::open(Path::new(&cfg.params), cfg.read_only)?;
        tracing::info!(
            "{be}: {} ({} sectors, {})",
            cfg.params,
            disk.sectors(),
            if cfg.read_only {
                "read-only"
            } else {
                "read-write"
            }
        );
        let mut f = features(&disk, cfg.cdrom, cfg.discard);
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
                worker: None,
            },
            f,
        ))
    }

    fn read_frontend(
        &mut self,
        xs: &mut Client,
        frontend_path: &str,
    ) -> Result<FrontendRings, BoxError> {
        Ok(read_frontend_rings(xs, frontend_path, MAX_RING_PAGE_ORDER)?)
    }

    fn connect(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        rings: FrontendRings,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        self.start(id, device, rings, broken, false)
    }

    fn resumes(&self) -> bool {
        true
    }

    fn resume(
        &mut self,
        id: &DeviceId,
        device: &mut BlockDevice,
        rings: FrontendRings,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        self.start(id, device, rings, broken, true)
    }

    fn disconnect(&mut self, id: &DeviceId, device: &mut BlockDevice) {
        if let Some((stop, handle)) = device.worker.take() {
            stop.store(true, Ordering::Relaxed);
            if handle.join().is_err() {
                tracing::error!("{}: ring thread panicked", id.backend_path);
            }
            tracing::info!("{}: disconnected", id.backend_path);
        }
    }
}

/// A ring thread: wait for the event channel, answer requests, notify.
///
/// After a `resume` the frontend is notified once whatever the ring's event
/// index says: the killed backend may have published responses without
/// notifying, and the frontend would wait for them forever.
fn serve(
    blk: &mut BlkRing<Gntdev>,
    evtchn: Evtchn,
    port: u32,
    stop: &AtomicBool,
    broken: &BrokenNotifier,
    resume: bool,
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
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let mut fds = [PollFd::new(evtchn.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(STOP_POLL_MS)) {
                Ok(0) => continue,
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
