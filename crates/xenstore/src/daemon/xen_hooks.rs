//! rxenstored on a real (or fake) hypervisor: the [`DomainHooks`] the core asks
//! about domains, and the daemon's side of domain rings, after C xenstored 4.17
//! `xenstored_domain.c`.
//!
//! - Start-up ([`Daemon::attach_xen`]): bind `VIRQ_DOM_EXC`, register the event
//!   channel device with the poller, and serve dom0's own ring (the page and port
//!   the dom0 kernel offers through `/dev/xen/xenbus_backend`, the same page as
//!   `/proc/xen/xsd_kva` and `xsd_port`), then notify it: the dom0 kernel's
//!   xenbus probes on that first event.
//! - INTRODUCE: [`XenHooks::introduce`] maps the guest's page through grant 1
//!   (`GNTTAB_RESERVED_XENSTORE`), falling back to a foreign mapping of the GFN,
//!   and binds the guest's port; the core's [`Action::Introduced`] then makes it a
//!   connection (indices reset, features advertised, guest notified, like C).
//! - Events: a ring's port marks its connection readable and writable; a ring
//!   whose `connection` is `XENSTORE_RECONNECT` is reset first. `VIRQ_DOM_EXC`
//!   runs the core's `check_domains` (shut-down and dying domains, @releaseDomain).
//! - A misbehaving ring (bad indices, oversized message, not reading its output)
//!   gets its `error` field set and its connection ignored (C
//!   `ignore_connection`); other domains are not affected.
//!
//! [`Action::Introduced`]: crate::process::Action::Introduced

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};

use xen::abi::grant_table::GNTTAB_RESERVED_XENSTORE;
use xen::abi::xen::{DomId, EvtchnPort, XenPfn, VIRQ_DOM_EXC};
use xen::{
    CtrlError, DomainControl, Evtchn, ForeignMemory, Gntdev, GrantMapper, Privcmd, XenCtrl,
    XenbusBackend,
};

use super::conn::{Connection, Transport};
use super::ring::{
    Interface, PortMap, RingPage, RingTransport, SharedEvtchn, SERVER_FEATURES, XENSTORE_CONNECTED,
    XENSTORE_RECONNECT,
};
use super::Daemon;
use crate::process::{ConnId, ConnKind, DomainHooks, DomainState, DOMID_FIRST_RESERVED};
use crate::wire::XsError;

/// Poll token of the event channel device.
pub(super) const EVTCHN: Token = Token(usize::MAX - 1);

/// How often the rings are looked at without a notification while guests are
/// busy ([`Daemon::rescan_rings`]).
pub(super) const RING_RESCAN_PERIOD: Duration = Duration::from_millis(100);
/// How long after a guest's last notification the rescans go on at that pace.
pub(super) const RING_RESCAN_WINDOW: Duration = Duration::from_secs(5);
/// How often the rings are looked at otherwise (while any ring is served).
pub(super) const RING_RESCAN_IDLE_PERIOD: Duration = Duration::from_secs(1);

/// Errors setting up the Xen side of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum XenSetupError {
    /// Opening or using the event channel device failed.
    #[error("event channels")]
    Evtchn(#[from] xen::EvtchnError),
    /// Opening privcmd (domain control) failed.
    #[error("domain control")]
    Ctrl(#[from] CtrlError),
    /// Opening the grant device failed.
    #[error("grant mapping")]
    Gntdev(#[from] xen::GntdevError),
    /// Opening privcmd for foreign mappings failed.
    #[error("foreign mapping")]
    Privcmd(#[from] xen::PrivcmdError),
    /// The dom0 ring could not be found or mapped.
    #[error("dom0's xenstore ring")]
    XenbusBackend(#[from] xen::XenbusBackendError),
    /// The dom0 ring is unusable.
    #[error("dom0's xenstore ring")]
    Ring(#[from] super::ring::RingError),
    /// Registering the event channel device with the poller failed.
    #[error("polling the event channel device")]
    Poll(#[source] io::Error),
}

/// Maps a domain's xenstore page.
pub trait RingMapper: Send {
    /// Maps the xenstore page of `domid` (whose frame number is `gfn`).
    fn map_ring(&self, domid: DomId, gfn: XenPfn) -> Result<RingPage, String>;
}

/// Grant 1 first (C xenstored 4.17 `map_interface`), then a foreign mapping of
/// the frame number given to INTRODUCE (what older C versions did).
#[derive(Debug)]
pub struct GrantOrForeign<G, F> {
    /// Grant mapper (`/dev/xen/gntdev`).
    pub grants: G,
    /// Foreign mapper (`/dev/xen/privcmd`).
    pub foreign: F,
}

impl<G, F> RingMapper for GrantOrForeign<G, F>
where
    G: GrantMapper + Send,
    G::Mapping: 'static,
    F: ForeignMemory + Send,
{
    fn map_ring(&self, domid: DomId, gfn: XenPfn) -> Result<RingPage, String> {
        match self
            .grants
            .map_grants(domid, &[GNTTAB_RESERVED_XENSTORE], true)
        {
            Ok(m) => {
                let mem = (*m).clone();
                Ok(RingPage {
                    mem,
                    keep: Some(Box::new(m)),
                })
            }
            Err(ge) => match self.foreign.map_foreign(domid, &[gfn], true) {
                Ok(mem) => {
                    tracing::info!(domid, gfn, grant_error = %ge, "xenstore page mapped by frame number");
                    Ok(RingPage { mem, keep: None })
                }
                Err(fe) => Err(format!(
                    "grant {GNTTAB_RESERVED_XENSTORE}: {ge}; frame {gfn:#x}: {fe}"
                )),
            },
        }
    }
}

/// A domain's state from the hypervisor; `None` when it does not exist.
pub type DomainStateFn = Box<dyn FnMut(u32) -> Option<DomainState> + Send>;

/// A ring mapped and bound by [`XenHooks::introduce`], waiting for the daemon.
#[derive(Debug)]
struct Prepared {
    page: RingPage,
    /// The local port bound to the guest's.
    port: EvtchnPort,
}

type PreparedMap = Arc<Mutex<HashMap<u32, Prepared>>>;

/// The core's view of the hypervisor on Xen.
pub struct XenHooks {
    state: DomainStateFn,
    mapper: Box<dyn RingMapper>,
    evtchn: SharedEvtchn,
    prepared: PreparedMap,
}

impl fmt::Debug for XenHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenHooks").finish_non_exhaustive()
    }
}

impl DomainHooks for XenHooks {
    fn domain_state(&mut self, domid: u32) -> Option<DomainState> {
        if domid >= DOMID_FIRST_RESERVED {
            return None;
        }
        (self.state)(domid)
    }

    fn introduce(&mut self, domid: u32, gfn: u64, port: u32) -> Result<(), XsError> {
        let dom = DomId::try_from(domid)
            .ok()
            .filter(|d| u32::from(*d) < DOMID_FIRST_RESERVED)
            .ok_or(XsError::Einval)?;
        let page = self.mapper.map_ring(dom, gfn).map_err(|e| {
            tracing::warn!(domid, gfn, error = %e, "cannot map the xenstore page");
            XsError::Einval
        })?;
        if let Err(e) = Interface::new(page.mem.clone()) {
            tracing::warn!(domid, error = %e, "unusable xenstore page");
            return Err(XsError::Einval);
        }
        // The page is unmapped again (drop) if binding fails.
        let local = self.evtchn.bind_interdomain(dom, port).map_err(|e| {
            tracing::warn!(domid, port, error = %e, "cannot bind the domain's event channel");
            XsError::Einval
        })?;
        if let Ok(mut p) = self.prepared.lock() {
            p.insert(domid, Prepared { page, port: local });
        }
        Ok(())
    }
}

/// One served ring.
#[derive(Debug)]
struct RingHandle {
    intf: Interface,
    domid: u32,
}

/// The Xen facilities the daemon runs on: real devices ([`XenParts::open`]) or
/// the `xen` crate's fakes in tests.
pub struct XenParts {
    /// This domain's event channels.
    pub evtchn: SharedEvtchn,
    /// The event channel device's fd for the poller (`None` for fakes: call
    /// [`Daemon::handle_evtchn`] instead).
    pub evtchn_fd: Option<RawFd>,
    /// Maps introduced domains' pages.
    pub mapper: Box<dyn RingMapper>,
    /// Domain states (getdomaininfo).
    pub domain_state: DomainStateFn,
    /// Dom0's own ring and the dom0 kernel's port for it, if this domain's
    /// kernel offers one.
    pub dom0: Option<(RingPage, EvtchnPort)>,
}

impl fmt::Debug for XenParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenParts")
            .field("evtchn_fd", &self.evtchn_fd)
            .field("dom0", &self.dom0)
            .finish_non_exhaustive()
    }
}

impl XenParts {
    /// Opens the real devices: `/dev/xen/evtchn`, privcmd (getdomaininfo and
    /// foreign mappings), gntdev, and `/dev/xen/xenbus_backend` when present
    /// (dom0's ring).
    pub fn open() -> Result<XenParts, XenSetupError> {
        let evtchn = Evtchn::open()?;
        let evtchn_fd = evtchn.as_raw_fd();
        let ctrl = XenCtrl::open()?;
        let domain_state: DomainStateFn = Box::new(move |domid| {
            let d = DomId::try_from(domid).ok()?;
            match ctrl.domain_info(d) {
                Ok(i) => Some(DomainState {
                    dying: i.dying(),
                    shutdown: i.shutdown(),
                }),
                Err(CtrlError::NoSuchDomain(_)) => None,
                Err(e) => {
                    // Not knowing is not dying: keep the domain.
                    tracing::warn!(domid, error = %e, "getdomaininfo failed");
                    Some(DomainState::default())
                }
            }
        });
        let mapper = Box::new(GrantOrForeign {
            grants: Gntdev::open()?,
            foreign: Privcmd::open()?,
        });
        let dom0 = if Path::new(xen::xenbus_backend::XENBUS_BACKEND_PATH).exists() {
            let be = XenbusBackend::open()?;
            let port = be.evtchn()?;
            let mem = be.map_interface()?;
            Some((
                RingPage {
                    mem,
                    keep: Some(Box::new(be)),
                },
                port,
            ))
        } else {
            None
        };
        Ok(XenParts {
            evtchn: Arc::new(evtchn),
            evtchn_fd: Some(evtchn_fd),
            mapper,
            domain_state,
            dom0,
        })
    }
}

/// The daemon's Xen state.
pub(super) struct XenIo {
    evtchn: SharedEvtchn,
    virq_port: EvtchnPort,
    ports: PortMap,
    prepared: PreparedMap,
    rings: HashMap<ConnId, RingHandle>,
    ignored: HashSet<ConnId>,
    /// Rescans are frequent until then (set by each ring notification).
    rescan_until: Option<Instant>,
    /// When the next rescan is due.
    next_rescan: Instant,
    /// Ring wake-ups the rescans found that no notification announced.
    recovered: u64,
}

impl XenIo {
    /// The domain whose ring `conn` is, if it is a ring.
    pub(super) fn domid_of(&self, conn: ConnId) -> Option<u32> {
        self.rings.get(&conn).map(|h| h.domid)
    }
}

impl fmt::Debug for XenIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XenIo")
            .field("virq_port", &self.virq_port)
            .field("rings", &self.rings)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Serves domains: binds `VIRQ_DOM_EXC`, polls the event channel device,
    /// gives the core [`XenHooks`], and connects dom0's ring if there is one.
    pub fn attach_xen(&mut self, parts: XenParts) -> Result<(), XenSetupError> {
        let XenParts {
            evtchn,
            evtchn_fd,
            mapper,
            domain_state,
            dom0,
        } = parts;
        if let Some(fd) = evtchn_fd {
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), EVTCHN, Interest::READABLE)
                .map_err(XenSetupError::Poll)?;
        }
        let virq_port = evtchn.bind_virq(VIRQ_DOM_EXC)?;
        let prepared: PreparedMap = Arc::default();
        self.server.set_hooks(Box::new(XenHooks {
            state: domain_state,
            mapper,
            evtchn: Arc::clone(&evtchn),
            prepared: Arc::clone(&prepared),
        }));
        self.xen = Some(XenIo {
            evtchn: Arc::clone(&evtchn),
            virq_port,
            ports: Arc::default(),
            prepared,
            rings: HashMap::new(),
            ignored: HashSet::new(),
            rescan_until: None,
            next_rescan: Instant::now(),
            recovered: 0,
        });
        if let Some((page, remote)) = dom0 {
            let master = self.server.config().master_domid;
            let dom = DomId::try_from(master).unwrap_or(0);
            let local = evtchn.bind_interdomain(dom, remote)?;
            Interface::new(page.mem.clone())?;
            let conn = self.server.connect(ConnKind::Domain { domid: master });
            // The dom0 kernel may have queued requests already: no index reset.
            self.attach_ring(master, conn, page, local, false);
            tracing::info!(
                domid = master,
                port = remote,
                local,
                "serving dom0's xenstore ring"
            );
        }
        Ok(())
    }

    /// Makes a mapped, bound ring the transport of core connection `conn`.
    fn attach_ring(
        &mut self,
        domid: u32,
        conn: ConnId,
        page: RingPage,
        port: EvtchnPort,
        reset: bool,
    ) {
        let Some(xen) = self.xen.as_mut() else {
            return;
        };
        let transport = match RingTransport::new(
            domid,
            page,
            Arc::clone(&xen.evtchn),
            port,
            Arc::clone(&xen.ports),
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(domid, error = %e, "unusable ring; releasing the domain");
                self.server.disconnect(conn);
                return;
            }
        };
        let intf = transport.interface();
        if reset {
            intf.reset_indices();
        }
        intf.set_server_features(SERVER_FEATURES);
        if intf.connection() == XENSTORE_RECONNECT {
            intf.set_connection(XENSTORE_CONNECTED);
        }
        if let Ok(mut p) = xen.ports.lock() {
            p.insert(port, conn);
        }
        xen.rings.insert(conn, RingHandle { intf, domid });
        if let Err(e) = xen.evtchn.notify(port) {
            tracing::warn!(domid, port, error = %e, "cannot notify the domain");
        }
        self.insert_connection(conn, Box::new(transport));
    }

    /// Puts a connection the core already knows into a slot and schedules it.
    fn insert_connection(&mut self, id: ConnId, transport: Box<dyn Transport>) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        tracing::debug!(%id, transport = %transport.describe(), "new connection");
        self.trace.conn(id, "CREATE");
        self.slots[slot] = Some(Connection::new(id, transport));
        self.by_id.insert(id, slot);
        self.schedule(slot);
    }

    /// Fresh buffers for a connection (partial input and unsent output dropped),
    /// keeping its transport.
    fn renew_connection(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if let Some(c) = s.take() {
                *s = Some(Connection::new(c.id, c.transport));
            }
        }
    }

    /// [`crate::process::Action::Introduced`]: serve the ring the hooks prepared.
    pub(super) fn ring_introduced(&mut self, domid: u32, conn: ConnId) {
        let prepared = self
            .xen
            .as_ref()
            .and_then(|x| x.prepared.lock().ok()?.remove(&domid));
        match prepared {
            Some(p) => {
                tracing::info!(domid, %conn, port = p.port, "domain introduced");
                self.attach_ring(domid, conn, p.page, p.port, true);
            }
            None => tracing::info!(domid, %conn, "domain introduced (no ring: not on Xen)"),
        }
    }

    /// [`crate::process::Action::Reintroduced`]: rebind the port, reset the ring
    /// (C `domain_conn_reset`).
    pub(super) fn ring_reintroduced(&mut self, domid: u32, conn: ConnId, remote: EvtchnPort) {
        let Some(&slot) = self.by_id.get(&conn) else {
            return;
        };
        let Some(xen) = self.xen.as_mut() else {
            return;
        };
        let Some(h) = xen.rings.get(&conn) else {
            return;
        };
        let intf = h.intf.clone();
        // The old binding goes with the transport; a new transport takes the new
        // port over the same page.
        let Some(c) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.by_id.remove(&conn);
        self.free.push(slot);
        let dom = DomId::try_from(domid).unwrap_or(0);
        // The old transport unbinds its port and lets go of a grant mapping; the
        // page itself stays mapped while a view of it lives (gntdev unmaps the
        // grant when the VMA goes).
        let page = RingPage {
            mem: intf.mem_clone(),
            keep: None,
        };
        drop(c);
        match xen.evtchn.bind_interdomain(dom, remote) {
            Ok(local) => {
                self.attach_ring(domid, conn, page, local, true);
                tracing::info!(domid, %conn, local, "domain reintroduced");
            }
            Err(e) => {
                // C keeps the domain with port 0; without a port it cannot be served.
                tracing::warn!(domid, remote, error = %e, "cannot rebind a reintroduced domain");
                self.server.disconnect(conn);
                self.handle_actions();
            }
        }
    }

    /// [`crate::process::Action::Released`]: forget the ring (the transport,
    /// dropped with its connection, unbinds the port and unmaps the page).
    pub(super) fn ring_released(&mut self, conn: ConnId) {
        if let Some(x) = self.xen.as_mut() {
            x.rings.remove(&conn);
            x.ignored.remove(&conn);
        }
    }

    /// A peer broke the protocol or stopped reading: a domain's ring gets its
    /// `error` field set (`code`, unless one is set already) and is ignored like
    /// C's `ignore_connection`; a socket client is closed.
    pub(super) fn misbehaved(&mut self, slot: usize, why: &str, code: u32) {
        let Some(Some(c)) = self.slots.get(slot) else {
            return;
        };
        let id = c.id;
        let Some(h) = self.xen.as_mut().and_then(|x| x.rings.get(&id)) else {
            return self.close(slot, why);
        };
        h.intf.set_error(code);
        let domid = h.domid;
        if let Some(x) = self.xen.as_mut() {
            if !x.ignored.insert(id) {
                return;
            }
        }
        tracing::warn!(domid, %id, why, error = code, "misbehaving domain: its ring is ignored");
        self.trace.conn(id, "IGNORE");
        self.server.ignore_connection(id);
        self.renew_connection(slot);
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            c.readable = false;
        }
    }

    /// Whether `conn` is a ring that is being ignored.
    pub(super) fn is_ignored(&self, conn: ConnId) -> bool {
        self.xen.as_ref().is_some_and(|x| x.ignored.contains(&conn))
    }

    /// How long the poller may sleep before [`Daemon::rescan_rings`] is due;
    /// `None` when no ring is served.
    pub(super) fn rescan_timeout(&self, now: Instant) -> Option<Duration> {
        let x = self.xen.as_ref()?;
        if x.rings.is_empty() {
            return None;
        }
        Some(x.next_rescan.saturating_duration_since(now))
    }

    /// Looks at every served ring for work that no notification announced:
    /// request bytes while the connection waits for a notification, or room for
    /// replies while its output waits for one. The Linux guest's xenbus notifies
    /// only when it saw the backend caught up (requests) or the reply ring full
    /// (replies), and it reads the other side's index right after writing its
    /// own without a full barrier between them, so when both sides move their
    /// indices at the same moment each can miss the other's update and the
    /// notification is never sent (a store-buffering race: seen as a guest
    /// whose xenstore went silent for good). C xenstored recovers because it
    /// looks at every domain's ring on each pass of its main loop; rxenstored
    /// rescans every [`RING_RESCAN_PERIOD`] for [`RING_RESCAN_WINDOW`] after a
    /// guest's last notification and every [`RING_RESCAN_IDLE_PERIOD`]
    /// otherwise. Returns how many connections it woke.
    pub(super) fn rescan_rings(&mut self, now: Instant) -> usize {
        let Some(x) = self.xen.as_mut() else {
            return 0;
        };
        if x.rings.is_empty() || now < x.next_rescan {
            return 0;
        }
        let busy = x.rescan_until.is_some_and(|until| until > now);
        x.next_rescan = now
            + if busy {
                RING_RESCAN_PERIOD
            } else {
                RING_RESCAN_IDLE_PERIOD
            };
        let mut woken = Vec::new();
        for (id, h) in &x.rings {
            if x.ignored.contains(id) {
                continue;
            }
            let Some(Some(c)) = self.by_id.get(id).and_then(|&s| self.slots.get_mut(s)) else {
                continue;
            };
            let requests = !c.readable && h.intf.requests_waiting();
            let room = !c.writable && h.intf.reply_room() > 0;
            if requests || room {
                c.readable |= requests;
                c.writable |= room;
                woken.push((h.domid, *id, requests, room));
            }
        }
        let first = x.recovered;
        x.recovered += woken.len() as u64;
        for (n, &(domid, id, requests, room)) in (first + 1..).zip(&woken) {
            // Rare: every occurrence at debug, the 1st, 2nd, 4th, 8th... at info.
            if n.is_power_of_two() {
                tracing::info!(domid, %id, requests, reply_room = room, recovered = n,
                    "ring work found without a notification (missed event-channel notification)");
            } else {
                tracing::debug!(domid, %id, requests, reply_room = room, recovered = n,
                    "ring work found without a notification");
            }
            if let Some(&slot) = self.by_id.get(&id) {
                self.schedule(slot);
            }
        }
        woken.len()
    }

    /// Takes every pending port: rings become readable and writable (and are
    /// reset first when their guest asked to reconnect), `VIRQ_DOM_EXC` runs the
    /// core's domain check.
    pub fn handle_evtchn(&mut self) {
        let Some(xen) = self.xen.as_ref() else {
            return;
        };
        let evtchn = Arc::clone(&xen.evtchn);
        let virq = xen.virq_port;
        let mut dom_exc = false;
        let mut fired = Vec::new();
        loop {
            match evtchn.pending() {
                Ok(Some(p)) => fired.push(p),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading pending event channels failed");
                    break;
                }
            }
        }
        for port in fired {
            if port == virq {
                dom_exc = true;
            } else {
                self.ring_event(port);
            }
            if let Err(e) = evtchn.unmask(port) {
                tracing::warn!(port, error = %e, "unmask failed");
            }
        }
        if dom_exc {
            self.server.check_domains();
            self.handle_actions();
            self.schedule_woken(None);
        }
    }

    fn ring_event(&mut self, port: EvtchnPort) {
        let Some(xen) = self.xen.as_ref() else {
            return;
        };
        let conn = xen.ports.lock().ok().and_then(|p| p.get(&port).copied());
        let Some(conn) = conn else {
            return;
        };
        let Some(&slot) = self.by_id.get(&conn) else {
            return;
        };
        if let Some(x) = self.xen.as_mut() {
            let now = Instant::now();
            x.rescan_until = Some(now + RING_RESCAN_WINDOW);
            x.next_rescan = x.next_rescan.min(now + RING_RESCAN_PERIOD);
        }
        let Some(xen) = self.xen.as_ref() else {
            return;
        };
        let reconnect = xen
            .rings
            .get(&conn)
            .filter(|h| h.intf.connection() == XENSTORE_RECONNECT && !xen.ignored.contains(&conn))
            .map(|h| (h.intf.clone(), h.domid, Arc::clone(&xen.evtchn)));
        if let Some((intf, domid, evtchn)) = reconnect {
            // docs/misc/xenstore-ring.txt: drop the connection's state, zero the
            // indices, say CONNECTED, notify.
            tracing::info!(domid, %conn, "domain reconnects its ring");
            self.server.reset_connection(conn);
            self.renew_connection(slot);
            intf.reset_indices();
            intf.set_connection(XENSTORE_CONNECTED);
            if let Err(e) = evtchn.notify(port) {
                tracing::warn!(port, error = %e, "cannot notify the domain");
            }
        }
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            c.readable = true;
            c.writable = true;
        }
        self.schedule(slot);
    }
}

#[cfg(test)]
mod tests;
