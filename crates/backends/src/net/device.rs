//! The NIC device kind for [`crate::xenbus::Daemon`].
//!
//! `prepare` reads the backend directory (`mac`, `bridge`, `vifname`, `rate`),
//! opens the TAP (`vifname`, else `vif<domid>.<devid>`, with `IFF_VNET_HDR`),
//! gives it xen-netback's `fe:ff:ff:ff:ff:ff`, brings it up and adds it to the
//! bridge, then publishes the netif features. `read_frontend` reads the
//! frontend's queues ([`super::frontend::read_frontend`]). `connect` maps each
//! queue's tx and rx ring, binds its event channel(s) (shared or split), sets
//! the TAP's offloads to what the frontend takes and starts a thread per
//! queue (as xen-netback has a kthread per queue): one NIC's or queue's stall
//! never stalls another. The TAP is multi-queue: queue *i* reads and writes
//! the TAP's queue *i*, so the kernel steers each flow received for the guest
//! to the queue the guest sends it on (else by its hash), as xen-netback
//! selects a queue by the skb's hash. `disconnect` stops the threads; the TAP
//! (its first queue) goes with the device.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::abi::{RX_REQUEST_SIZE, TX_REQUEST_SIZE};
use super::frontend::{backend_features, read_frontend, NetFrontend, QueueEvents, MAX_QUEUES};
use super::server::{McastFilter, NetQueue, NetStats, QueueError, RxFeatures, TxRate};
use super::stats::{ns_since, QueueTimes};
use crate::xenbus::{BoxError, BrokenNotifier, DeviceHandler, DeviceId, Features};
use toolstack::device::vif::{node, BackendConfig};
use xen::abi::xen::EvtchnPort;
use xen::tap::{interface_mtu, BACKEND_MAC, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
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
    worker: Option<(Arc<AtomicBool>, Vec<JoinHandle<()>>)>,
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
        )?
        .with_mtu(read(xs, node::MTU)?.as_deref())?;
        let tap = Tap::open_multi_queue(&config.ifname, true)?;
        tap.set_mac(BACKEND_MAC)?;
        // As vif-bridge's set_mtu: the `mtu` node's, else the bridge's.
        let mtu = match config.mtu {
            Some(m) => Some(m),
            None if !config.bridge.is_empty() => Some(interface_mtu(&config.bridge)?),
            None => None,
        };
        if let Some(m) = mtu {
            tap.set_mtu(m)?;
        }
        tap.set_up()?;
        if !config.bridge.is_empty() {
            tap.add_to_bridge(&config.bridge)?;
        }
        tracing::info!(
            "{be}: TAP {} for guest MAC {} on bridge {:?}, MTU {mtu:?}",
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
        let mcast = Arc::new(McastFilter::new(fe.mcast_control));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // Stops the threads started so far when a later queue fails.
        let undo = |threads: Vec<JoinHandle<()>>| {
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                let _ = t.join();
            }
        };
        for (i, q) in fe.queues.iter().enumerate() {
            let mut started = Vec::new();
            let result = (|| -> Result<(), BoxError> {
                let txm = self.gntdev.map_grants(domid, &[q.tx_ring_ref], true)?;
                let rxm = self.gntdev.map_grants(domid, &[q.rx_ring_ref], true)?;
                let tx = BackRing::new(txm.memory().clone(), TX_REQUEST_SIZE)?;
                let rx = BackRing::new(rxm.memory().clone(), RX_REQUEST_SIZE)?;
                let tap = if i == 0 {
                    Arc::clone(&device.tap)
                } else {
                    Arc::new(device.tap.open_queue()?)
                };
                let mut queue = NetQueue::new(
                    domid,
                    tx,
                    rx,
                    Arc::clone(&self.gntdev),
                    Arc::clone(&tap),
                    features,
                );
                queue.set_mcast_filter(Arc::clone(&mcast));
                if let Some(rate) = tx_rate(&device.config) {
                    queue.set_tx_rate(rate);
                }
                let path = id.backend_path.clone();
                let name =
                    |half: &str| format!("net-{}-{}-q{i}{half}", id.key.frontend, id.key.devid);
                // Each queue's thread has its own event channel file, so that
                // it only ever takes its own queue's events. One thread serves
                // both halves even with split channels: the acknowledgements
                // dom0's stack makes while a transmitted frame is written are
                // then read from the TAP in the same round, with no other
                // thread to wake (two threads per queue, as xen-netback's NAPI
                // and receive kthread, measured 0.40 guest -> dom0 against
                // 0.93 for one, docs/PERFORMANCE.md).
                let evtchn = Evtchn::open()?;
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
                let (stop, broken) = (Arc::clone(&stop), broken.clone());
                started.push(std::thread::Builder::new().name(name("")).spawn(move || {
                    // The ring mappings live as long as their thread.
                    let _mappings = (txm, rxm);
                    let mut queue = queue;
                    serve(&mut queue, ports, &evtchn, &tap, &stop, &broken, &path, i);
                    // Whyever the thread ends (stop or a broken ring).
                    log_stats(&path, i, &queue);
                    tracing::info!("{path}: queue {i} thread ended");
                })?);
                Ok(())
            })();
            threads.extend(started);
            if let Err(e) = result {
                undo(threads);
                return Err(e);
            }
        }
        tracing::info!(
            "{}: connected, {} queue(s), TAP {} offloads {:#x}",
            id.backend_path,
            fe.queues.len(),
            device.tap.name(),
            tap_offloads(&fe)
        );
        device.worker = Some((stop, threads));
        Ok(())
    }

    fn disconnect(&mut self, id: &DeviceId, device: &mut NetDevice) {
        if let Some((stop, threads)) = device.worker.take() {
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("{}: a NIC queue thread panicked", id.backend_path);
                }
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

/// What ended a [`wait`]: an event pending, the TAP readable (neither: the
/// timeout).
#[derive(Debug, Clone, Copy, Default)]
struct Woke {
    event: bool,
    tap: bool,
}

/// Sleeps until an event, the TAP readable (when given) or `timeout_ms` (else
/// until told to stop), then acknowledges the events. `Ok(None)`: stop.
/// `on_idle` is called each time [`STOP_POLL_MS`] pass without anything.
fn wait(
    evtchn: &Evtchn,
    tap: Option<&Tap>,
    timeout_ms: Option<u16>,
    stop: &AtomicBool,
    mut on_idle: impl FnMut(),
) -> Result<Option<Woke>, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut woke = Woke::default();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let second = tap.map_or(evtchn.as_fd(), |t| t.as_fd());
        let mut fds = [
            PollFd::new(evtchn.as_fd(), PollFlags::POLLIN),
            PollFd::new(second, PollFlags::POLLIN),
        ];
        let n = if tap.is_some() { 2 } else { 1 };
        let t = timeout_ms.map_or(STOP_POLL_MS, |t| t.min(STOP_POLL_MS));
        match poll(&mut fds[..n], PollTimeout::from(t)) {
            Ok(0) if timeout_ms.is_some() => break,
            Ok(0) => {
                on_idle();
                continue;
            }
            Ok(_) => {
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                woke.event = ready(&fds[0]);
                woke.tap = n == 2 && ready(&fds[1]);
                break;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("polling failed: {e}")),
        }
    }
    evtchn
        .acknowledge_pending()
        .map_err(|e| format!("reading the event channel failed: {e}"))?;
    Ok(Some(woke))
}

/// Milliseconds until a throttled transmit's credit is refilled (at least 1).
fn throttle_ms(until: Option<Instant>) -> Option<u16> {
    until.map(|t| {
        let ms = t.saturating_duration_since(Instant::now()).as_millis();
        u16::try_from(ms).unwrap_or(u16::MAX).max(1)
    })
}

/// The error with its sources, for the backend's `error` node.
fn chain(e: &QueueError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// A queue's local event channel ports (the same one twice when shared).
#[derive(Debug, Clone, Copy)]
struct Ports {
    tx: EvtchnPort,
    rx: EvtchnPort,
}

/// A queue's thread: both rings, sleeping on its event channel(s) and TAP queue.
#[allow(clippy::too_many_arguments)]
fn serve(
    q: &mut NetQueue<Gntdev, Tap>,
    ports: Ports,
    evtchn: &Evtchn,
    tap: &Tap,
    stop: &AtomicBool,
    broken: &BrokenNotifier,
    path: &str,
    index: usize,
) {
    // The serving loop's own counters (wake-ups, sleep, notifications); the
    // queue's halves count their copies, reads and writes.
    let mut times = QueueTimes::default();
    serve_loop(q, ports, evtchn, tap, stop, broken, path, index, &mut times);
    times += q.take_times();
    if times.any_work() {
        tracing::info!("{path}: queue {index} last burst: {times}");
    }
}

#[allow(clippy::too_many_arguments)]
fn serve_loop(
    q: &mut NetQueue<Gntdev, Tap>,
    ports: Ports,
    evtchn: &Evtchn,
    tap: &Tap,
    stop: &AtomicBool,
    broken: &BrokenNotifier,
    path: &str,
    index: usize,
    times: &mut QueueTimes,
) {
    let notify = |times: &mut QueueTimes, port| {
        let t = Instant::now();
        let r = evtchn.notify(port);
        times.notifies += 1;
        times.notify_ns += ns_since(t);
        r
    };
    loop {
        // Transmit responses are signalled as soon as a batch is copied in,
        // before its frames go through dom0's network stack; receive
        // responses after each copy batch.
        let r = q
            .process_tx_notifying(|| Ok(notify(times, ports.tx)?))
            .and_then(|()| {
                q.process_rx_notifying(|| {
                    times.rx_notifies += 1;
                    Ok(notify(times, ports.rx)?)
                })
            });
        if let Err(e) = r {
            broken.report(chain(&e));
            return;
        }
        let waiting = q.rx_waiting();
        let mut timeout = waiting.then_some(RX_WAIT_POLL_MS);
        if let Some(t) = throttle_ms(q.tx_throttled_until()) {
            timeout = Some(timeout.map_or(t, |w| w.min(t)));
        }
        let slept = std::cell::Cell::new(Instant::now());
        let woke = wait(evtchn, (!waiting).then_some(tap), timeout, stop, || {
            // A burst of traffic ended: say where its time went (this sleep
            // belongs to no burst).
            slept.set(Instant::now());
            let mut burst = times.take();
            burst += q.take_times();
            if burst.any_work() {
                tracing::info!("{path}: queue {index} burst: {burst}");
            }
        });
        let idle = ns_since(slept.get());
        times.idle_ns += idle;
        times.wakeups += 1;
        if waiting {
            times.rx_waits += 1;
            times.rx_wait_ns += idle;
        }
        match woke {
            Ok(Some(w)) => {
                times.woke_event += u64::from(w.event);
                times.woke_tap += u64::from(w.tap);
            }
            Ok(None) => return,
            Err(m) => {
                broken.report(m);
                return;
            }
        }
    }
}

fn log_stats(path: &str, index: usize, q: &NetQueue<Gntdev, Tap>) {
    let s: NetStats = q.stats();
    tracing::info!(
        "{path}: tx {} packets {} bytes, {} errors, {} dropped; rx {} packets {} bytes, {} dropped, {} errors, {} filtered (queue {index})",
        s.tx_packets,
        s.tx_bytes,
        s.tx_errors,
        s.tx_dropped,
        s.rx_packets,
        s.rx_bytes,
        s.rx_dropped,
        s.rx_errors,
        s.rx_filtered
    );
}
