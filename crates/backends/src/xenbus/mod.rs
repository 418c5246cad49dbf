//! The backend side of xenbus, shared by rxen's PV backends.
//!
//! A [`Daemon`] watches `/local/domain/0/backend/<type>` and runs each device
//! found there through the xenbus handshake (xen/include/public/io/xenbus.h):
//! the toolstack writes both directories in state Initialising; the backend opens
//! the device, publishes its features and moves to InitWait; the frontend grants
//! its ring(s), writes ring-ref/event-channel/protocol and moves to Initialised;
//! the backend maps them, starts serving and moves to Connected. On the way out
//! the frontend's Closing/Closed is mirrored, and a toolstack removal (`online =
//! 0`, backend `state = 5`) ends in Closed even without a frontend.
//!
//! The device kind plugs in as a [`DeviceHandler`]: `prepare` (open, features),
//! `read_frontend` (the kind's own frontend nodes: blkif's `ring-ref`s through
//! [`read_frontend_rings`], netif's tx/rx rings and queues), `connect` (map and
//! serve the rings), `disconnect`. A device whose ring breaks
//! reports through its [`BrokenNotifier`]; only that device is closed.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use toolstack::device::{DevicePaths, XenbusState};
use xen::abi::xen::{DomId, EvtchnPort, GrantRef};
use xenstore::client::{Client, ClientError, XsOps};

/// A boxed error from a device handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// xenstore nodes (name, value) a backend publishes, e.g. its features.
pub type Features = Vec<(String, String)>;

/// Highest multi-page ring order any rxen backend accepts (16 pages).
pub const MAX_RING_PAGE_ORDER: u32 = 4;

/// Errors of the xenbus machinery.
#[derive(Debug, thiserror::Error)]
pub enum XenbusError {
    #[error("xenstore request failed")]
    Xenstore(#[from] ClientError),
    #[error("setting up the event loop failed")]
    Poll(#[source] std::io::Error),
    #[error("frontend node {path} is missing")]
    Missing { path: String },
    #[error("frontend node {path} = {value:?} is not a valid number")]
    BadNumber { path: String, value: String },
    #[error("frontend asks for ring page order {order}, more than {max}")]
    RingOrder { order: u32, max: u32 },
    #[error("frontend protocol {0:?} is not this machine's native ABI")]
    Protocol(String),
    #[error("frontend asks for {asked} queues (1..={max})")]
    Queues { asked: u32, max: u32 },
}

/// A device: its frontend domain and device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey {
    pub frontend: u32,
    pub devid: u32,
}

/// What a handler learns about a device.
#[derive(Debug, Clone)]
pub struct DeviceId {
    pub key: DeviceKey,
    pub backend_path: String,
    pub frontend_path: String,
}

impl DeviceId {
    /// The frontend domain as Xen's 16-bit domid.
    pub fn frontend_domid(&self) -> DomId {
        DomId::try_from(self.key.frontend).unwrap_or(DomId::MAX)
    }

    /// A node of the backend directory as text (the toolstack's settings), or
    /// `None` when it is not there.
    pub fn read_backend_node(
        &self,
        xs: &mut Client,
        name: &str,
    ) -> Result<Option<String>, ClientError> {
        Ok(xs
            .try_read(&format!("{}/{name}", self.backend_path))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

/// What the frontend published for the backend to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendRings {
    /// One grant per ring page (`ring-ref`, or `ring-ref0..` with `ring-page-order`).
    pub ring_refs: Vec<GrantRef>,
    pub event_channel: EvtchnPort,
    /// `protocol`, when given.
    pub protocol: Option<String>,
}

/// The native protocol name of this machine (xen/include/public/io/protocols.h).
pub const NATIVE_PROTOCOL: &str = if cfg!(target_arch = "aarch64") || cfg!(target_arch = "arm") {
    "arm-abi"
} else if cfg!(target_arch = "x86_64") {
    "x86_64-abi"
} else {
    "x86_32-abi"
};

fn read_number<X: XsOps + ?Sized>(xs: &mut X, path: String) -> Result<Option<u32>, XenbusError> {
    match xs.try_read(&path)? {
        None => Ok(None),
        Some(v) => {
            let s = String::from_utf8_lossy(&v).into_owned();
            s.trim()
                .parse()
                .map(Some)
                .map_err(|_| XenbusError::BadNumber { path, value: s })
        }
    }
}

fn need_number<X: XsOps + ?Sized>(xs: &mut X, path: String) -> Result<u32, XenbusError> {
    read_number(xs, path.clone())?.ok_or(XenbusError::Missing { path })
}

/// Reads a frontend's ring references, event channel and protocol
/// (blkif.h / netif.h conventions). Frontend data is hostile: every value is
/// parsed and bounded here.
pub fn read_frontend_rings<X: XsOps + ?Sized>(
    xs: &mut X,
    frontend: &str,
    max_order: u32,
) -> Result<FrontendRings, XenbusError> {
    read_rings_in(xs, frontend, frontend, max_order)
}

/// Reads a block frontend's queues (blkif.h "Multiple hardware queues/rings"):
/// without `multi-queue-num-queues`, or with 1, the one ring of
/// [`read_frontend_rings`]; with N (at most `max_queues`), the rings of
/// `queue-0` .. `queue-N-1`, each with its own `ring-ref`s and
/// `event-channel`, all of the frontend's `ring-page-order`.
pub fn read_frontend_queues<X: XsOps + ?Sized>(
    xs: &mut X,
    frontend: &str,
    max_order: u32,
    max_queues: u32,
) -> Result<Vec<FrontendRings>, XenbusError> {
    let asked = read_number(xs, format!("{frontend}/multi-queue-num-queues"))?.unwrap_or(1);
    if asked == 0 || asked > max_queues.max(1) {
        return Err(XenbusError::Queues {
            asked,
            max: max_queues.max(1),
        });
    }
    if asked == 1 {
        return Ok(vec![read_frontend_rings(xs, frontend, max_order)?]);
    }
    (0..asked)
        .map(|q| read_rings_in(xs, frontend, &format!("{frontend}/queue-{q}"), max_order))
        .collect()
}

/// The ring of `dir` (the frontend directory or one of its `queue-N`); the
/// page order and protocol are the frontend's.
fn read_rings_in<X: XsOps + ?Sized>(
    xs: &mut X,
    frontend: &str,
    dir: &str,
    max_order: u32,
) -> Result<FrontendRings, XenbusError> {
    // blkfront writes `ring-ref` for a one-page ring, else `ring-page-order` and
    // `ring-ref0..`.
    let order = read_number(xs, format!("{frontend}/ring-page-order"))?.unwrap_or(0);
    if order > max_order {
        return Err(XenbusError::RingOrder {
            order,
            max: max_order,
        });
    }
    let ring_refs = if order == 0 {
        vec![need_number(xs, format!("{dir}/ring-ref"))?]
    } else {
        (0..1u32 << order)
            .map(|i| need_number(xs, format!("{dir}/ring-ref{i}")))
            .collect::<Result<_, _>>()?
    };
    let event_channel = need_number(xs, format!("{dir}/event-channel"))?;
    let protocol = xs
        .try_read(&format!("{frontend}/protocol"))?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    if let Some(p) = &protocol {
        if p != NATIVE_PROTOCOL {
            return Err(XenbusError::Protocol(p.clone()));
        }
    }
    Ok(FrontendRings {
        ring_refs,
        event_channel,
        protocol,
    })
}

/// Writes `state` of a device directory.
pub fn switch_state<X: XsOps + ?Sized>(
    xs: &mut X,
    dir: &str,
    state: XenbusState,
) -> Result<(), ClientError> {
    xs.write(&format!("{dir}/state"), state.as_value().as_bytes())
}

/// Tells the daemon loop that a device's ring broke (hostile or dead frontend).
#[derive(Debug, Clone)]
pub struct BrokenNotifier {
    key: DeviceKey,
    tx: mpsc::Sender<(DeviceKey, String)>,
    waker: Arc<mio::Waker>,
}

impl BrokenNotifier {
    /// Reports the device broken; the daemon disconnects it (Closing, then Closed).
    pub fn report(&self, reason: String) {
        if self.tx.send((self.key, reason)).is_ok() {
            if let Err(e) = self.waker.wake() {
                tracing::warn!("waking the xenbus loop failed: {e}");
            }
        }
    }
}

/// A device kind served by a [`Daemon`].
pub trait DeviceHandler {
    /// A prepared (opened) device.
    type Device;
    /// What the frontend publishes before Initialised, as this kind reads it.
    type Frontend;
    /// Opens the device and returns the features to publish before InitWait.
    fn prepare(
        &mut self,
        id: &DeviceId,
        xs: &mut Client,
    ) -> Result<(Self::Device, Features), BoxError>;
    /// Reads (and bounds) the frontend's nodes once it is Initialised or
    /// Connected; called before [`DeviceHandler::connect`].
    fn read_frontend(
        &mut self,
        xs: &mut Client,
        frontend_path: &str,
    ) -> Result<Self::Frontend, BoxError>;
    /// Maps the frontend's rings and starts serving them.
    fn connect(
        &mut self,
        id: &DeviceId,
        device: &mut Self::Device,
        frontend: Self::Frontend,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError>;
    /// Stops serving (idempotent); the device stays prepared.
    fn disconnect(&mut self, id: &DeviceId, device: &mut Self::Device);
    /// Whether this kind takes over devices that an earlier run of the daemon
    /// left Connected (after a crash or `kill -9`) through [`Self::resume`].
    fn resumes(&self) -> bool {
        false
    }
    /// Takes over the rings of a device the frontend still has Connected: like
    /// `connect`, but at the rings' current indices.
    fn resume(
        &mut self,
        id: &DeviceId,
        device: &mut Self::Device,
        frontend: Self::Frontend,
        broken: BrokenNotifier,
    ) -> Result<(), BoxError> {
        let _ = (id, device, frontend, broken);
        Err("this device kind cannot resume a connected device".into())
    }
}

/// Where a device is in the handshake, as this backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Published features, in InitWait.
    Waiting,
    /// Found Connected at start (left by an earlier run): to be resumed.
    Resuming,
    Connected,
    /// Broken or closing: waiting for the frontend to close.
    Closing,
    Closed,
}

struct Tracked<D> {
    id: DeviceId,
    device: D,
    phase: Phase,
    fe_watch: String,
}

const TOKEN_XS: mio::Token = mio::Token(0);
const TOKEN_WAKER: mio::Token = mio::Token(1);
const BACKEND_WATCH: &str = "backend";
const FRONTEND_WATCH_PREFIX: &str = "fe:";
/// Node where a failed prepare explains itself (libxl reads `hotplug-error`).
pub const HOTPLUG_ERROR: &str = "hotplug-error";

/// The backend daemon loop for one backend type.
pub struct Daemon<H: DeviceHandler> {
    handler: H,
    xs: Client,
    backend_domid: u32,
    backend_type: String,
    devices: BTreeMap<DeviceKey, Tracked<H::Device>>,
}

impl<H: DeviceHandler> std::fmt::Debug for Daemon<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("backend_type", &self.backend_type)
            .field("devices", &self.devices.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<H: DeviceHandler> Daemon<H> {
    pub fn new(handler: H, xs: Client, backend_domid: u32, backend_type: &str) -> Self {
        Self {
            handler,
            xs,
            backend_domid,
            backend_type: backend_type.to_string(),
            devices: BTreeMap::new(),
        }
    }

    fn base(&self) -> String {
        format!(
            "/local/domain/{}/backend/{}",
            self.backend_domid, self.backend_type
        )
    }

    /// Runs until a fatal xenstore error.
    pub fn run(&mut self) -> Result<(), XenbusError> {
        let mut poll = mio::Poll::new().map_err(XenbusError::Poll)?;
        let waker =
            Arc::new(mio::Waker::new(poll.registry(), TOKEN_WAKER).map_err(XenbusError::Poll)?);
        poll.registry()
            .register(&mut self.xs, TOKEN_XS, mio::Interest::READABLE)
            .map_err(XenbusError::Poll)?;
        let (tx, rx) = mpsc::channel();
        let base = self.base();
        self.xs.watch(&base, BACKEND_WATCH)?;
        tracing::info!("watching {base}");
        let mut events = mio::Events::with_capacity(16);
        loop {
            while let Some(ev) = self.xs.try_next_event()? {
                self.on_watch(&ev.path, &ev.token, &tx, &waker);
            }
            while let Ok((key, reason)) = rx.try_recv() {
                self.on_broken(key, &reason);
            }
            // Requests made while handling may have queued events.
            if self.xs.queued_events() > 0 {
                continue;
            }
            match poll.poll(&mut events, Some(Duration::from_secs(5))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(XenbusError::Poll(e)),
            }
        }
    }

    fn on_watch(
        &mut self,
        path: &str,
        token: &str,
        tx: &mpsc::Sender<(DeviceKey, String)>,
        waker: &Arc<mio::Waker>,
    ) {
        let keys: Vec<DeviceKey> = if token == BACKEND_WATCH {
            match DevicePaths::parse_backend(path, self.backend_domid, &self.backend_type) {
                Some((frontend, devid)) => vec![DeviceKey { frontend, devid }],
                // The base itself or a per-domain directory: rescan.
                None => self.scan().unwrap_or_else(|e| {
                    tracing::warn!("scanning {} failed: {e}", self.base());
                    Vec::new()
                }),
            }
        } else if let Some(rest) = token.strip_prefix(FRONTEND_WATCH_PREFIX) {
            match rest.split_once(':').and_then(|(f, d)| {
                Some(DeviceKey {
                    frontend: f.parse().ok()?,
                    devid: d.parse().ok()?,
                })
            }) {
                Some(k) => vec![k],
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        for key in keys {
            if let Err(e) = self.reconcile(key, tx, waker) {
                tracing::warn!(
                    frontend = key.frontend,
                    devid = key.devid,
                    "device update failed: {e}"
                );
            }
        }
    }

    /// Every device under the backend directory, plus those tracked.
    fn scan(&mut self) -> Result<Vec<DeviceKey>, ClientError> {
        let mut keys: Vec<DeviceKey> = self.devices.keys().copied().collect();
        let base = self.base();
        let doms = match self.xs.directory(&base) {
            Ok(d) => d,
            Err(e) if e.is_enoent() => Vec::new(),
            Err(e) => return Err(e),
        };
        for d in doms {
            let Ok(frontend) = d.parse() else { continue };
            let devs = match self.xs.directory(&format!("{base}/{d}")) {
                Ok(v) => v,
                Err(e) if e.is_enoent() => continue,
                Err(e) => return Err(e),
            };
            for v in devs {
                if let Ok(devid) = v.parse() {
                    let k = DeviceKey { frontend, devid };
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        Ok(keys)
    }

    fn forget(&mut self, key: DeviceKey) {
        if let Some(mut t) = self.devices.remove(&key) {
            self.handler.disconnect(&t.id, &mut t.device);
            let fe_state = format!("{}/state", t.id.frontend_path);
            if let Err(e) = self.xs.unwatch(&fe_state, &t.fe_watch) {
                tracing::debug!("unwatch {fe_state}: {e}");
            }
            tracing::info!(frontend = key.frontend, devid = key.devid, "device removed");
        }
    }

    fn set_state(&mut self, dir: &str, state: XenbusState) -> Result<(), ClientError> {
        tracing::info!("{dir}: state {state}");
        switch_state(&mut self.xs, dir, state)
    }

    fn reconcile(
        &mut self,
        key: DeviceKey,
        tx: &mpsc::Sender<(DeviceKey, String)>,
        waker: &Arc<mio::Waker>,
    ) -> Result<(), XenbusError> {
        let be = format!("{}/{}/{}", self.base(), key.frontend, key.devid);
        let Some(be_state) = self.xs.try_read(&format!("{be}/state"))? else {
            // The toolstack removed the device.
            self.forget(key);
            return Ok(());
        };
        let be_state = XenbusState::parse(&be_state);
        let online = read_number(&mut self.xs, format!("{be}/online"))
            .ok()
            .flatten()
            == Some(1);

        if !self.devices.contains_key(&key) {
            // A device an earlier run of this daemon left InitWait or Connected
            // (it was killed): take it over where it is, when the kind can.
            let adopt = online
                && self.handler.resumes()
                && matches!(be_state, XenbusState::InitWait | XenbusState::Connected);
            if (be_state != XenbusState::Initialising || !online) && !adopt {
                // Not ours to start (being removed, or a leftover of an earlier run).
                if be_state == XenbusState::Closing && !online {
                    self.set_state(&be, XenbusState::Closed)?;
                }
                return Ok(());
            }
            let Some(fe) = self.xs.try_read(&format!("{be}/frontend"))? else {
                return Ok(());
            };
            let id = DeviceId {
                key,
                backend_path: be.clone(),
                frontend_path: String::from_utf8_lossy(&fe).into_owned(),
            };
            match self.handler.prepare(&id, &mut self.xs) {
                Ok((device, _)) if adopt => {
                    tracing::info!("{be}: taking over a device left in state {be_state}");
                    let phase = if be_state == XenbusState::Connected {
                        Phase::Resuming
                    } else {
                        Phase::Waiting
                    };
                    self.track(id, device, phase)?;
                }
                Ok((device, features)) => {
                    self.xs.transaction(|t| {
                        for (k, v) in &features {
                            t.write(&format!("{be}/{k}"), v.as_bytes())?;
                        }
                        switch_state(t, &be, XenbusState::InitWait)
                    })?;
                    tracing::info!("{be}: state {}", XenbusState::InitWait);
                    self.track(id, device, Phase::Waiting)?;
                }
                Err(e) => {
                    tracing::error!("{be}: cannot open the device: {e}");
                    self.xs
                        .write(&format!("{be}/{HOTPLUG_ERROR}"), e.to_string().as_bytes())?;
                    self.set_state(&be, XenbusState::Closed)?;
                }
            }
            if !adopt || !self.devices.contains_key(&key) {
                return Ok(());
            }
        }

        let fe_path = self.devices[&key].id.frontend_path.clone();
        let fe_state = toolstack::device::read_state(&mut self.xs, &fe_path)?;
        let phase = self.devices[&key].phase;
        let removing = !online && be_state == XenbusState::Closing;
        if fe_state == XenbusState::Unknown
            && !self.xs.exists(&format!("/local/domain/{}", key.frontend))?
        {
            // The guest is gone without a detach (destroyed, or powered off by a
            // toolstack that does not know this device): nobody else will remove
            // the backend directory.
            self.forget(key);
            self.remove_backend_dir(key)?;
            return Ok(());
        }
        tracing::debug!(?phase, %fe_state, %be_state, online, "{be}");

        match (phase, fe_state) {
            (Phase::Waiting, XenbusState::Initialised | XenbusState::Connected)
            | (Phase::Resuming, XenbusState::Connected)
                if !removing =>
            {
                let frontend = self.handler.read_frontend(&mut self.xs, &fe_path);
                let t = self
                    .devices
                    .get_mut(&key)
                    .ok_or(XenbusError::Missing { path: be.clone() })?;
                let result = frontend.and_then(|r| {
                    let notifier = BrokenNotifier {
                        key,
                        tx: tx.clone(),
                        waker: Arc::clone(waker),
                    };
                    if phase == Phase::Resuming {
                        self.handler.resume(&t.id, &mut t.device, r, notifier)
                    } else {
                        self.handler.connect(&t.id, &mut t.device, r, notifier)
                    }
                });
                match result {
                    Ok(()) => {
                        t.phase = Phase::Connected;
                        if phase == Phase::Resuming {
                            tracing::info!("{be}: resumed");
                        } else {
                            self.set_state(&be, XenbusState::Connected)?;
                        }
                    }
                    Err(e) => {
                        tracing::error!("{be}: connecting to {fe_path} failed: {e}");
                        t.phase = Phase::Closing;
                        self.xs
                            .write(&format!("{be}/error"), e.to_string().as_bytes())?;
                        self.set_state(&be, XenbusState::Closing)?;
                    }
                }
            }
            (_, XenbusState::Closing) if phase != Phase::Closed => {
                self.disconnect(key, Phase::Closing);
                if be_state != XenbusState::Closing {
                    self.set_state(&be, XenbusState::Closing)?;
                }
            }
            (_, XenbusState::Closed | XenbusState::Unknown) if phase != Phase::Closed => {
                self.disconnect(key, Phase::Closed);
                self.set_state(&be, XenbusState::Closed)?;
            }
            (Phase::Closed, XenbusState::Initialising) if online => {
                // The frontend starts over (e.g. its driver was reloaded).
                if let Some(t) = self.devices.get_mut(&key) {
                    t.phase = Phase::Waiting;
                }
                self.set_state(&be, XenbusState::InitWait)?;
            }
            (_, XenbusState::Initialising | XenbusState::InitWait)
                if removing && phase != Phase::Closed =>
            {
                // Removed before the frontend ever connected.
                self.disconnect(key, Phase::Closed);
                self.set_state(&be, XenbusState::Closed)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Watches a prepared device's frontend state and tracks it in `phase`.
    fn track(&mut self, id: DeviceId, device: H::Device, phase: Phase) -> Result<(), ClientError> {
        let key = id.key;
        let fe_watch = format!("{FRONTEND_WATCH_PREFIX}{}:{}", key.frontend, key.devid);
        self.xs
            .watch(&format!("{}/state", id.frontend_path), &fe_watch)?;
        self.devices.insert(
            key,
            Tracked {
                id,
                device,
                phase,
                fe_watch,
            },
        );
        Ok(())
    }

    /// Removes a device's backend directory, and its domain's when empty.
    fn remove_backend_dir(&mut self, key: DeviceKey) -> Result<(), ClientError> {
        let dom_dir = format!("{}/{}", self.base(), key.frontend);
        let be = format!("{dom_dir}/{}", key.devid);
        tracing::info!("{be}: frontend domain is gone, removing the device");
        match self.xs.rm(&be) {
            Ok(()) => {}
            Err(e) if e.is_enoent() => {}
            Err(e) => return Err(e),
        }
        if self.xs.directory(&dom_dir).is_ok_and(|c| c.is_empty()) {
            self.xs.rm(&dom_dir)?;
        }
        Ok(())
    }

    fn disconnect(&mut self, key: DeviceKey, phase: Phase) {
        if let Some(t) = self.devices.get_mut(&key) {
            self.handler.disconnect(&t.id, &mut t.device);
            t.phase = phase;
        }
    }

    fn on_broken(&mut self, key: DeviceKey, reason: &str) {
        let Some(t) = self.devices.get(&key) else {
            return;
        };
        let be = t.id.backend_path.clone();
        tracing::error!("{be}: disconnecting a misbehaving frontend: {reason}");
        self.disconnect(key, Phase::Closing);
        if let Err(e) = self
            .xs
            .write(&format!("{be}/error"), reason.as_bytes())
            .and_then(|()| switch_state(&mut self.xs, &be, XenbusState::Closing))
        {
            tracing::warn!("{be}: recording the failure failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
