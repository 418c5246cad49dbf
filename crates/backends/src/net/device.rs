//! The NIC device kind for [`crate::xenbus::Daemon`].
//!
//! `prepare` reads the backend directory (`mac`, `bridge`, `vifname`, `rate`),
//! opens the TAP (`vifname`, else `vif<domid>.<devid>`, with `IFF_VNET_HDR`),
//! gives it xen-netback's `fe:ff:ff:ff:ff:ff`, brings it up and adds it to the
//! bridge, then publishes the netif features. `read_frontend` reads the
//! frontend's queues ([`super::frontend::read_frontend`]). `connect` maps each
//! queue's tx and rx ring, binds its event channel(s) (shared or split), sets
//! the TAP's offloads to what the frontend takes and starts the NIC's thread:
//! each NIC has its own, so that one NIC's stall never stalls another.
//! `disconnect` stops the thread; the TAP goes with the device.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::abi::{RX_REQUEST_SIZE, TX_REQUEST_SIZE};
use super::frontend::{backend_features, read_frontend, NetFrontend, QueueEvents, MAX_QUEUES};
use super::server::{NetQueue, RxFeatures, TxRate};
use crate::xenbus::{BoxError, BrokenNotifier, DeviceHandler, DeviceId, Features};
use toolstack::device::vif::{node, BackendConfig};
use xen::abi::xen::EvtchnPort;
use xen::tap::{BACKEND_MAC, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
use xen::{BackRing, Evtchn, Gntdev, GrantMapper, Tap};
use xenstore::client::Client;

/// How long a NIC thread sleeps between checks of its stop flag.
const STOP_POLL_MS: u16 = 200;
/// How often a NIC whose received frame waits for rx buffers looks again.
const RX_WAIT_POLL_MS: u16 = 20;

/// The NIC device kind.
#[derive(Debug)]
pub struct NetHandler {
    gntdev: Arc<Gntdev>,
}

impl NetHandler {
    pub fn new(gntdev: Gntdev) -> Self {
        Self {
            gntdev: Arc::new(gntdev),
        }
    }
}

/// One NIC: its TAP and, when connected, its thread.
#[derive(Debug)]
pub struct NetDevice {
    tap: Arc<Tap>,
    config: BackendConfig,
    worker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl NetDevice {
    /// The backend configuration read at prepare.
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }
}

/// The TAP offloads (`TUN_F_*`) for what the frontend takes: partial checksums
/// always (netfront handles `NETRXF_csum_blank`), TCP segmentation when it
/// enabled scatter-gather and GSO of that kind.
pub fn tap_offloads(fe: &NetFrontend) -> u32 {
    let mut f = TUN_F_CSUM;
    if fe.sg && fe.gso_tcpv4 {
        f |= TUN_F_TSO4;
    }
    if fe.sg && fe.gso_tcpv6 {
        f |= TUN_F_TSO6;
    }
    f
}

impl DeviceHandler for NetHandler {
    type Device = NetDevice;
    type Frontend = NetFrontend;

    fn prepare(
        &mut self,
        id: &DeviceId,
        xs: &mut Client,
    ) -> Result<(NetDevice, Features), BoxError> {
        let be = &id.backend_path;
        let read = |xs: &mut Client, n: &str| id.read_backend_node(xs, n);
        let mac = read(xs, node::MAC)?.ok_or("no mac node")?;
        let config = BackendConfig::from_nodes(
            id.key.frontend,
            id.key.devid,
            &mac,
            read(xs, node::BRIDGE)?.as_deref(),
            read(xs, node::VIFNAME)?.as_deref(),
            read(xs, node::RATE)?.as_deref(),
        )?;
        let tap = Tap::open(&config.ifname, true)?;
        tap.set_mac(BACKEND_MAC)?;
        tap.set_up()?;
        if !config.bridge.is_empty() {
            tap.add_to_bridge(&config.bridge)?;
        }
        tracing::info!(
            "{be}: TAP {} for guest MAC {} on bridge {:?}",
            tap.name(),
            config.mac,
            config.bridge
        );
        Ok((
            NetDevice {
                tap: Arc::new(tap),
                config,
                worker: None,
            },
            backend_features(MAX_QUEUES),
        ))
    }

    fn read_frontend(
        &mut self,
        xs: &mut Client,
        frontend_path: &str,
    ) -> Result<NetFrontend, BoxError> {
        Ok(read_frontend(xs, frontend_path, MAX_QUEUES)?)
    }

    fn connect(
        &mut self,
        id: &DeviceId,
        device: &mut NetDevice,
        fe: NetFrontend,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        let domid = id.frontend_domid();
        device.tap.set_offload(tap_offloads(&fe))?;
        let features = RxFeatures {
            sg: fe.sg,
            gso_tcpv4: fe.gso_tcpv4,
            gso_tcpv6: fe.gso_tcpv6,
        };
        let evtchn = Evtchn::open()?;
        let mut queues = Vec::new();
        let mut mappings = Vec::new();
        for q in &fe.queues {
            let txm = self.gntdev.map_grants(domid, &[q.tx_ring_ref], true)?;
            let rxm = self.gntdev.map_grants(domid, &[q.rx_ring_ref], true)?;
            let tx = BackRing::new(txm.memory().clone(), TX_REQUEST_SIZE)?;
            let rx = BackRing::new(rxm.memory().clone(), RX_REQUEST_SIZE)?;
            mappings.push(txm);
            mappings.push(rxm);
            let ports = match q.events {
                QueueEvents::Shared(p) => {
                    let l = evtchn.bind_interdomain(domid, p)?;
                    Ports { tx: l, rx: l }
                }
                QueueEvents::Split { tx, rx } => Ports {
                    tx: evtchn.bind_interdomain(domid, tx)?,
                    rx: evtchn.bind_interdomain(domid, rx)?,
                },
            };
            let mut queue = NetQueue::new(
                domid,
                tx,
                rx,
                Arc::clone(&self.gntdev),
                Arc::clone(&device.tap),
                features,
            );
            if let Some(rate) = tx_rate(&device.config) {
                queue.set_tx_rate(rate);
            }
            queues.push((queue, ports));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let name = format!("net-{}-{}", id.key.frontend, id.key.devid);
        let tap = Arc::clone(&device.tap);
        let path = id.backend_path.clone();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            // The ring mappings live as long as the thread that serves them.
            let _mappings = mappings;
            serve(queues, &evtchn, &tap, &stop2, &broken, &path);
            tracing::info!("{path}: NIC thread ended");
        })?;
        tracing::info!(
            "{}: connected, {} queue(s), TAP {} offloads {:#x}",
            id.backend_path,
            fe.queues.len(),
            device.tap.name(),
            tap_offloads(&fe)
        );
        device.worker = Some((stop, handle));
        Ok(())
    }

    fn disconnect(&mut self, id: &DeviceId, device: &mut NetDevice) {
        if let Some((stop, handle)) = device.worker.take() {
            stop.store(true, Ordering::Relaxed);
            if handle.join().is_err() {
                tracing::error!("{}: NIC thread panicked", id.backend_path);
            }
            tracing::info!("{}: disconnected", id.backend_path);
        }
    }
}

/// The transmit limit of `rate=` (none when absent or with a zero interval).
pub fn tx_rate(config: &BackendConfig) -> Option<TxRate> {
    let r = config.rate.filter(|r| r.interval_us > 0)?;
    Some(TxRate {
        bytes: r.bytes_per_interval,
        interval: Duration::from_micros(u64::from(r.interval_us)),
    })
}

/// A queue's local event channel ports (the same one twice when shared).
#[derive(Debug, Clone, Copy)]
struct Ports {
    tx: EvtchnPort,
    rx: EvtchnPort,
}

type Queues = Vec<(NetQueue<Gntdev, Tap>, Ports)>;

/// A NIC thread: serve every queue's tx and rx, sleep on the event channels and
/// the TAP. Frames from the TAP go to queue 0 (netfront takes a frame on any
/// queue).
fn serve(
    mut queues: Queues,
    evtchn: &Evtchn,
    tap: &Tap,
    stop: &AtomicBool,
    broken: &BrokenNotifier,
    path: &str,
) {
    // The NIC's counters are logged whenever its thread ends (stopped, or the
    // frontend broke the protocol).
    let fail = |queues: &Queues, why: String| {
        log_stats(path, queues);
        broken.report(why);
    };
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut broke = None;
        'queues: for (i, (q, ports)) in queues.iter_mut().enumerate() {
            let tx = q.process_tx();
            let rx = if i == 0 { q.process_rx() } else { Ok(false) };
            for (result, port) in [(tx, ports.tx), (rx, ports.rx)] {
                match result {
                    Ok(true) => {
                        if let Err(e) = evtchn.notify(port) {
                            broke = Some(format!("notifying the frontend failed: {e}"));
                            break 'queues;
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let mut msg = e.to_string();
                        let mut src = std::error::Error::source(&e);
                        while let Some(s) = src {
                            msg.push_str(&format!(": {s}"));
                            src = s.source();
                        }
                        broke = Some(msg);
                        break 'queues;
                    }
                }
            }
        }
        if let Some(why) = broke {
            fail(&queues, why);
            return;
        }
        let waiting = queues.first().is_some_and(|(q, _)| q.rx_waiting());
        loop {
            if stop.load(Ordering::Relaxed) {
                log_stats(path, &queues);
                return;
            }
            let mut fds = vec![PollFd::new(evtchn.as_fd(), PollFlags::POLLIN)];
            if !waiting {
                fds.push(PollFd::new(tap.as_fd(), PollFlags::POLLIN));
            }
            let mut timeout = if waiting {
                RX_WAIT_POLL_MS
            } else {
                STOP_POLL_MS
            };
            let throttled = queues
                .iter()
                .filter_map(|(q, _)| q.tx_throttled_until())
                .min();
            if let Some(t) = throttled {
                let ms = t.saturating_duration_since(Instant::now()).as_millis();
                timeout = timeout.min(u16::try_from(ms).unwrap_or(u16::MAX).max(1));
            }
            match poll(&mut fds, PollTimeout::from(timeout)) {
                Ok(0) if waiting || throttled.is_some() => break,
                Ok(0) => continue,
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    fail(&queues, format!("polling failed: {e}"));
                    return;
                }
            }
        }
        if let Err(e) = evtchn.acknowledge_pending() {
            fail(&queues, format!("reading the event channel failed: {e}"));
            return;
        }
    }
}

fn log_stats(path: &str, queues: &Queues) {
    for (i, (q, _)) in queues.iter().enumerate() {
        let s = q.stats;
        tracing::info!(
            queue = i,
            "{path}: tx {} packets {} bytes, {} errors, {} dropped; rx {} packets {} bytes, {} dropped, {} errors",
            s.tx_packets,
            s.tx_bytes,
            s.tx_errors,
            s.tx_dropped,
            s.rx_packets,
            s.rx_bytes,
            s.rx_dropped,
            s.rx_errors
        );
    }
}
