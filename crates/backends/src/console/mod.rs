//! The console backend behind `rxconsoled`: serves every domain's primary PV
//! console (`/local/domain/N/console`) and SBSA UART (`/local/domain/N/vuart/0`)
//! the way xenconsoled does (tools/console/daemon/io.c): it notices domains
//! through `@introduceDomain`/`@releaseDomain` and a scan at start, maps the ring
//! (grant 0 through gntdev for the PV console, else a foreign mapping of the GFN in
//! `ring-ref`), binds the event channel in `port`, and moves bytes between the ring
//! and a per-console log file and pty (its path published in `tty`).
//!
//! Secondary PV consoles (xl.cfg `channel`, `device/console/N` with N >= 1) go
//! through the xenbus handshake under dom0's `backend/console/<domid>/N`: the
//! backend waits in InitWait, the guest's hvc_xen grants its ring page and writes
//! `ring-ref` (a grant reference) and `port`, the backend maps the grant and goes
//! to Connected, and follows the frontend's Closing/Closed and the toolstack's
//! removal. Frontends whose `type` is not `xenconsoled` belong to another backend
//! (QEMU, which xl starts for guests with channels, writes `ioemu`) and are left
//! alone. The generic [`crate::xenbus::Daemon`] is not used: it owns its own
//! xenstore connection and event loop, and rxconsoled serves every console from
//! one loop.
//!
//! One [`Daemon`] serves all consoles from one event loop; work per event is
//! bounded (one ring's worth), a console whose guest signals too often is
//! rate-limited ([`RATE_LIMIT_ALLOWANCE`] events per [`RATE_LIMIT_PERIOD`], as
//! xenconsoled) and one with bogus ring indices is disconnected, so that neither
//! slows the others. Output is released to the guest (`out_cons` moved) only
//! after it was written to the log, so a restarted daemon loses nothing.

pub mod log;
pub mod pty;
pub mod ring;

use self::log::{log_file_name, LogError, LogFile, LogPolicy};
use self::pty::Pty;
use self::ring::{ConsRing, ConsRingError, OUT_SIZE};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use toolstack::device::{DevicePaths, XenbusState};
use xen::abi::grant_table::GNTTAB_RESERVED_CONSOLE;
use xen::abi::xen::{DomId, EvtchnPort, GrantRef, XenPfn};
use xen::{DomainControl, EventChannels, ForeignMemory, GrantMapper, MappedMemory};

/// Events a console may signal per [`RATE_LIMIT_PERIOD`] before its port stays
/// masked until the period ends (xenconsoled's `RATE_LIMIT_ALLOWANCE`).
pub const RATE_LIMIT_ALLOWANCE: u32 = 30;
/// The rate-limit period (xenconsoled's `RATE_LIMIT_PERIOD`, 200 ms).
pub const RATE_LIMIT_PERIOD: Duration = Duration::from_millis(200);
/// Output kept for a pty nobody reads; older bytes are dropped beyond it (the
/// log file has everything).
pub const PTY_BUFFER_MAX: usize = 64 * 1024;
/// Domains asked for per `getdomaininfolist` call while scanning.
const SCAN_BATCH: u32 = 256;
/// Watch token for the domain list (`@introduceDomain`/`@releaseDomain`).
pub const DOMLIST_TOKEN: &str = "domlist";
/// Watch token for the secondary consoles' backend directory.
pub const BACKEND_TOKEN: &str = "backend";
/// Backend type of secondary PV consoles, as libxl names it
/// (`LIBXL__DEVICE_KIND_CONSOLE`). The dom0 kernel has no backend of that type and
/// xenconsoled serves only the primary console; QEMU's console backend is started
/// per guest by xl for guests with channels and marks those frontends `type =
/// ioemu`, which rxconsoled leaves alone (as it does for the primary console).
pub const SECONDARY_BACKEND_TYPE: &str = "console";
/// Where a guest's secondary console frontends live, under its domain path.
pub const SECONDARY_FRONTEND_DIR: &str = "device/console";
/// The value of a console's `type` node that names the console daemon
/// (libxl's `LIBXL__CONSOLE_BACKEND_XENCONSOLED`); anything else is another
/// backend's (QEMU: `ioemu`).
pub const CONSOLE_TYPE_DAEMON: &str = "xenconsoled";

/// Errors of the console backend.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("xenstore: {0}")]
    Store(String),
    #[error("domain control failed")]
    Ctrl(#[from] xen::CtrlError),
    #[error("event channel operation failed")]
    Evtchn(#[from] xen::EvtchnError),
    #[error(transparent)]
    Ring(#[from] ConsRingError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Pty(#[from] pty::PtyError),
    #[error("cannot map the console ring of domain {domid} (grant: {grant}; foreign gfn {gfn:#x}: {foreign})")]
    Map {
        domid: DomId,
        gfn: XenPfn,
        grant: String,
        foreign: String,
    },
}

/// The xenstore operations the backend needs (implemented for the real client in
/// `rxconsoled`, by a map in tests).
pub trait ConsoleStore {
    /// The value at `path`, `None` when absent.
    fn read(&mut self, path: &str) -> Result<Option<String>, ConsoleError>;
    /// The children of `path`, empty when absent.
    fn directory(&mut self, path: &str) -> Result<Vec<String>, ConsoleError>;
    fn write(&mut self, path: &str, value: &str) -> Result<(), ConsoleError>;
    fn watch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError>;
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), ConsoleError>;
}

/// Which console of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsoleKind {
    /// The primary PV console (`console/`; hvc0 in a Linux guest).
    Pv,
    /// The emulated SBSA UART (`vuart/0/`; ttyAMA0).
    Vuart,
    /// A secondary PV console (`device/console/N`, N >= 1; hvcN in Linux, made by
    /// xl.cfg `channel = [...]`), set up through the xenbus handshake.
    Secondary(u32),
}

impl ConsoleKind {
    /// The consoles found in a domain's own directory, in service order.
    pub const ALL: [ConsoleKind; 2] = [ConsoleKind::Pv, ConsoleKind::Vuart];
    /// The console's directory under the domain's xenstore path.
    pub fn xs_dir(self) -> String {
        match self {
            ConsoleKind::Pv => "console".to_string(),
            ConsoleKind::Vuart => "vuart/0".to_string(),
            ConsoleKind::Secondary(n) => format!("{SECONDARY_FRONTEND_DIR}/{n}"),
        }
    }
    /// Suffix of its log file name (xenconsoled's `log_suffix`; xenconsoled has no
    /// secondary consoles, theirs is `-consoleN`).
    pub fn log_suffix(self) -> String {
        match self {
            ConsoleKind::Pv => String::new(),
            ConsoleKind::Vuart => "-vuart0".to_string(),
            ConsoleKind::Secondary(n) => format!("-console{n}"),
        }
    }
}

impl fmt::Display for ConsoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleKind::Pv => f.write_str("pv"),
            ConsoleKind::Vuart => f.write_str("vuart0"),
            ConsoleKind::Secondary(n) => write!(f, "console{n}"),
        }
    }
}

/// A console's identity.
pub type ConsoleId = (DomId, ConsoleKind);

/// How the daemon serves consoles.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where log files go (`None`: no logs).
    pub log_dir: Option<PathBuf>,
    pub log_policy: LogPolicy,
    /// Serve each console on a pty (off in unit tests).
    pub ptys: bool,
    /// The domain rxconsoled runs in (the backend of secondary consoles).
    pub backend_domid: DomId,
}

/// The ring mapping, whichever way it was made; dropping it unmaps.
type Keep = Box<dyn fmt::Debug + Send>;

/// One connected console.
struct Console {
    ring: ConsRing,
    _mapping: Keep,
    /// `ring-ref` as connected: a GFN (primary, vuart) or a grant reference
    /// (secondary consoles).
    ring_ref: XenPfn,
    remote_port: EvtchnPort,
    local_port: EvtchnPort,
    log: Option<LogFile>,
    pty: Option<Pty>,
    pty_pending: VecDeque<u8>,
    /// The last write to the pty would have blocked: wait for its writable
    /// event instead of trying again on every chunk of output.
    pty_blocked: bool,
    /// Typed bytes may wait in the pty that did not fit the guest's `in` ring:
    /// look again when the guest signals (it may have consumed some).
    input_waiting: bool,
    /// Reused buffer for output taken from the ring.
    scratch: Vec<u8>,
    /// Events in the current rate-limit period.
    events: u32,
    /// The port is left masked until the period ends.
    throttled: bool,
    /// Bytes logged (for tests and the exit summary).
    logged: u64,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("ring_ref", &self.ring_ref)
            .field("remote_port", &self.remote_port)
            .field("local_port", &self.local_port)
            .field("pty", &self.pty.as_ref().map(|p| p.path()))
            .finish_non_exhaustive()
    }
}

/// A console's state.
#[derive(Debug)]
enum Slot {
    Connected(Box<Console>),
    /// Disconnected for a protocol violation; retried only when the guest's
    /// xenstore values change.
    Failed {
        ring_ref: XenPfn,
        port: EvtchnPort,
    },
}

/// What the event loop must change after a call: pty fds to add or remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FdChanges {
    pub added: Vec<(ConsoleId, std::os::fd::RawFd)>,
    pub removed: Vec<(ConsoleId, std::os::fd::RawFd)>,
}

/// The console backend.
pub struct Daemon<X, E, G, F> {
    ctrl: X,
    evtchn: E,
    grants: G,
    foreign: F,
    config: Config,
    /// Known domains (watched) and their consoles.
    domains: BTreeMap<DomId, HashMap<ConsoleKind, Slot>>,
    by_port: HashMap<EvtchnPort, ConsoleId>,
    period_start: Instant,
    changes: FdChanges,
}

impl<X, E, G, F> fmt::Debug for Daemon<X, E, G, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

fn watch_token(domid: DomId) -> String {
    format!("dom{domid}")
}

/// Parses a number as xenstore holds it (decimal, like xenconsoled's `%u`/`%i`).
fn parse_num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

impl<X, E, G, F> Daemon<X, E, G, F>
where
    X: DomainControl,
    E: EventChannels,
    G: GrantMapper,
    G::Mapping: 'static,
    F: ForeignMemory,
{
    pub fn new(ctrl: X, evtchn: E, grants: G, foreign: F, config: Config) -> Self {
        Self {
            ctrl,
            evtchn,
            grants,
            foreign,
            config,
            domains: BTreeMap::new(),
            by_port: HashMap::new(),
            period_start: Instant::now(),
            changes: FdChanges::default(),
        }
    }

    /// The domain control it was given (tests drive fakes through it).
    pub fn ctrl(&self) -> &X {
        &self.ctrl
    }

    /// The grant mapper it was given.
    pub fn grants(&self) -> &G {
        &self.grants
    }

    /// The foreign mapper it was given.
    pub fn foreign(&self) -> &F {
        &self.foreign
    }

    /// Whether console `id` is rate-limited right now.
    pub fn throttled(&self, id: ConsoleId) -> bool {
        matches!(
            self.domains.get(&id.0).and_then(|s| s.get(&id.1)),
            Some(Slot::Connected(c)) if c.throttled
        )
    }

    /// Pty fds opened and closed since the last call.
    pub fn take_fd_changes(&mut self) -> FdChanges {
        std::mem::take(&mut self.changes)
    }

    /// Watches the domain list and the secondary consoles' backend directory;
    /// scans the domains.
    pub fn start<S: ConsoleStore>(&mut self, xs: &mut S) -> Result<(), ConsoleError> {
        xs.watch("@introduceDomain", DOMLIST_TOKEN)?;
        xs.watch("@releaseDomain", DOMLIST_TOKEN)?;
        xs.watch(&self.secondary_backend_base(), BACKEND_TOKEN)?;
        self.scan(xs)
    }

    /// Handles a watch event on `path` with `token`.
    pub fn on_watch<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        path: &str,
        token: &str,
    ) -> Result<(), ConsoleError> {
        if token == DOMLIST_TOKEN {
            return self.scan(xs);
        }
        if token == BACKEND_TOKEN {
            let base = self.secondary_backend_base();
            match DevicePaths::parse_backend(
                path,
                u32::from(self.config.backend_domid),
                SECONDARY_BACKEND_TYPE,
            ) {
                Some((fe, devid)) => {
                    if let Ok(domid) = DomId::try_from(fe) {
                        self.try_secondary(xs, domid, devid);
                    }
                }
                // The base or a domain's directory: look at every device there.
                None => {
                    let fes: Vec<DomId> =
                        match path.strip_prefix(&base).map(|r| r.trim_start_matches('/')) {
                            Some(r) if !r.is_empty() => r.parse().ok().into_iter().collect(),
                            _ => self.domains.keys().copied().collect(),
                        };
                    for domid in fes {
                        self.try_secondaries(xs, domid);
                    }
                }
            }
            return Ok(());
        }
        if let Some(domid) = token.strip_prefix("dom").and_then(parse_num::<DomId>) {
            if !self.domains.contains_key(&domid) {
                return Ok(());
            }
            let fe_dir = format!("{}/{SECONDARY_FRONTEND_DIR}", domain_path(domid));
            match path
                .strip_prefix(&fe_dir)
                .map(|r| r.trim_start_matches('/'))
            {
                Some("") => self.try_secondaries(xs, domid),
                Some(rest) => {
                    if let Some(devid) = rest.split('/').next().and_then(parse_num::<u32>) {
                        self.try_secondary(xs, domid, devid);
                    }
                }
                None => {
                    for kind in ConsoleKind::ALL {
                        self.try_connect(xs, domid, kind);
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings the set of served domains in line with the hypervisor's: new live
    /// domains are watched (and connected when their nodes are there), dying or
    /// vanished ones dropped.
    pub fn scan<S: ConsoleStore>(&mut self, xs: &mut S) -> Result<(), ConsoleError> {
        let mut live = Vec::new();
        let mut first: DomId = 1;
        loop {
            let batch = self.ctrl.domain_info_list(first, SCAN_BATCH)?;
            let Some(last) = batch.last().map(|d| d.domid) else {
                break;
            };
            live.extend(batch.iter().filter(|d| !d.dying()).map(|d| d.domid));
            if batch.len() < SCAN_BATCH as usize || last == DomId::MAX {
                break;
            }
            first = last + 1;
        }
        let gone: Vec<DomId> = self
            .domains
            .keys()
            .copied()
            .filter(|d| !live.contains(d))
            .collect();
        for domid in gone {
            self.drop_domain(xs, domid);
        }
        for domid in live {
            if domid == 0 || self.domains.contains_key(&domid) {
                continue;
            }
            tracing::info!(domid, "new domain");
            self.domains.insert(domid, HashMap::new());
            // Watches fire once when set, which connects the consoles whose
            // nodes exist; later writes (ring-ref, port) fire them again.
            for dir in Self::watched_dirs(domid) {
                if let Err(e) = xs.watch(&dir, &watch_token(domid)) {
                    tracing::warn!(domid, "cannot watch {dir}: {e}");
                }
            }
            for kind in ConsoleKind::ALL {
                self.try_connect(xs, domid, kind);
            }
            self.try_secondaries(xs, domid);
        }
        Ok(())
    }

    /// The directories of a domain watched for console changes.
    fn watched_dirs(domid: DomId) -> Vec<String> {
        let base = domain_path(domid);
        let mut dirs: Vec<String> = ConsoleKind::ALL
            .iter()
            .map(|k| format!("{base}/{}", k.xs_dir()))
            .collect();
        dirs.push(format!("{base}/{SECONDARY_FRONTEND_DIR}"));
        dirs
    }

    /// Stops serving a domain: its consoles are flushed, unbound and unmapped.
    pub fn drop_domain<S: ConsoleStore>(&mut self, xs: &mut S, domid: DomId) {
        let Some(slots) = self.domains.remove(&domid) else {
            return;
        };
        tracing::info!(domid, "domain gone");
        for dir in Self::watched_dirs(domid) {
            let _ = xs.unwatch(&dir, &watch_token(domid));
        }
        for (kind, slot) in slots {
            if let Slot::Connected(mut c) = slot {
                // What the guest wrote last (its dying words) still goes to the log.
                let _ = self.drain_out((domid, kind), &mut c);
                self.release((domid, kind), &c);
            }
        }
    }

    fn release(&mut self, id: ConsoleId, c: &Console) {
        self.by_port.remove(&c.local_port);
        if let Err(e) = self.evtchn.unbind(c.local_port) {
            tracing::debug!(domid = id.0, "unbind: {e}");
        }
        if let Some(p) = &c.pty {
            use std::os::fd::AsRawFd;
            self.changes.removed.push((id, p.as_raw_fd()));
        }
    }

    /// Connects console `kind` of `domid` if its nodes are there and it is not
    /// connected (or failed with the same values) already.
    fn try_connect<S: ConsoleStore>(&mut self, xs: &mut S, domid: DomId, kind: ConsoleKind) {
        match self.connect(xs, domid, kind) {
            Ok(true) => tracing::info!(domid, %kind, "console connected"),
            Ok(false) => {}
            Err(e) => tracing::warn!(domid, %kind, "cannot connect console: {e}"),
        }
    }

    /// Whether the console in `dir` belongs to another backend (its `type` is
    /// set and is not the console daemon's).
    fn foreign_type<S: ConsoleStore>(xs: &mut S, dir: &str) -> Result<bool, ConsoleError> {
        Ok(xs
            .read(&format!("{dir}/type"))?
            .is_some_and(|t| t != CONSOLE_TYPE_DAEMON))
    }

    fn connect<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        domid: DomId,
        kind: ConsoleKind,
    ) -> Result<bool, ConsoleError> {
        let dir = format!("{}/{}", domain_path(domid), kind.xs_dir());
        // Another backend (QEMU: "ioemu") may own the console.
        if Self::foreign_type(xs, &dir)? {
            return Ok(false);
        }
        let (Some(ring_ref), Some(port)) = (
            xs.read(&format!("{dir}/ring-ref"))?
                .as_deref()
                .and_then(parse_num::<XenPfn>),
            xs.read(&format!("{dir}/port"))?
                .as_deref()
                .and_then(parse_num::<EvtchnPort>),
        ) else {
            return Ok(false);
        };
        self.attach(xs, domid, kind, ring_ref, port)
    }

    /// Maps the ring `ring_ref`, binds `port` and opens the log and pty of a
    /// console, unless it is connected (or failed) with these values already.
    fn attach<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        domid: DomId,
        kind: ConsoleKind,
        ring_ref: XenPfn,
        port: EvtchnPort,
    ) -> Result<bool, ConsoleError> {
        let dir = format!("{}/{}", domain_path(domid), kind.xs_dir());
        let slots = self.domains.entry(domid).or_default();
        match slots.get(&kind) {
            Some(Slot::Connected(c)) if c.ring_ref == ring_ref && c.remote_port == port => {
                return Ok(false)
            }
            Some(Slot::Failed {
                ring_ref: r,
                port: p,
            }) if *r == ring_ref && *p == port => return Ok(false),
            _ => {}
        }
        // New values (e.g. the guest kexec'd): reconnect.
        if let Some(Slot::Connected(old)) = slots.remove(&kind) {
            self.release((domid, kind), &old);
        }
        let (mem, keep) = match self.map_ring(domid, kind, ring_ref) {
            Ok(m) => m,
            Err(e) => {
                // A secondary console's frontend waits in Initialised for us: do
                // not retry a grant that failed until it offers another one.
                if let ConsoleKind::Secondary(_) = kind {
                    self.domains
                        .entry(domid)
                        .or_default()
                        .insert(kind, Slot::Failed { ring_ref, port });
                }
                return Err(e);
            }
        };
        let ring = ConsRing::new(mem)?;
        let local_port = self.evtchn.bind_interdomain(domid, port)?;
        let mut c = Box::new(Console {
            ring,
            _mapping: keep,
            ring_ref,
            remote_port: port,
            local_port,
            log: None,
            pty: None,
            pty_pending: VecDeque::new(),
            pty_blocked: false,
            input_waiting: false,
            scratch: Vec::with_capacity(OUT_SIZE),
            events: 0,
            throttled: false,
            logged: 0,
        });
        if let Err(e) = self.open_outputs(xs, domid, kind, &dir, &mut c) {
            let _ = self.evtchn.unbind(local_port);
            return Err(e);
        }
        self.by_port.insert(local_port, (domid, kind));
        // Output already in the ring (a restart, or a guest faster than us).
        match self.drain_out((domid, kind), &mut c) {
            Ok(()) => {
                self.domains
                    .entry(domid)
                    .or_default()
                    .insert(kind, Slot::Connected(c));
            }
            Err(e) => {
                self.fail((domid, kind), c, &e);
            }
        }
        Ok(true)
    }

    /// `/local/domain/<backend>/backend/console`.
    fn secondary_backend_base(&self) -> String {
        format!(
            "{}/backend/{SECONDARY_BACKEND_TYPE}",
            domain_path(self.config.backend_domid)
        )
    }

    /// Runs the handshake of every secondary console of `domid` one step on.
    fn try_secondaries<S: ConsoleStore>(&mut self, xs: &mut S, domid: DomId) {
        let dir = format!("{}/{domid}", self.secondary_backend_base());
        let devids = match xs.directory(&dir) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(domid, "cannot list {dir}: {e}");
                return;
            }
        };
        for devid in devids.iter().filter_map(|d| parse_num::<u32>(d)) {
            self.try_secondary(xs, domid, devid);
        }
    }

    fn try_secondary<S: ConsoleStore>(&mut self, xs: &mut S, domid: DomId, devid: u32) {
        // Console 0 is the primary, served through console/ without a handshake.
        if devid == 0 || !self.domains.contains_key(&domid) {
            return;
        }
        if let Err(e) = self.secondary(xs, domid, devid) {
            tracing::warn!(domid, devid, "secondary console: {e}");
        }
    }

    /// One step of the xenbus handshake of secondary console `devid` of `domid`
    /// (xen/include/public/io/xenbus.h; hvc_xen's frontend grants its ring, writes
    /// `ring-ref` (a grant reference) and `port`, and goes to Initialised without
    /// waiting for the backend): InitWait once the toolstack made the device,
    /// Connected once the ring is served, Closing/Closed after the frontend, and
    /// Closed when the toolstack takes the device away (`online = 0`).
    fn secondary<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        domid: DomId,
        devid: u32,
    ) -> Result<(), ConsoleError> {
        let kind = ConsoleKind::Secondary(devid);
        let be = format!("{}/{domid}/{devid}", self.secondary_backend_base());
        let fe = format!("{}/{}", domain_path(domid), kind.xs_dir());
        let state = |v: Option<String>| XenbusState::parse(v.unwrap_or_default().as_bytes());
        let Some(be_state) = xs.read(&format!("{be}/state"))? else {
            // The toolstack removed the device.
            self.drop_console((domid, kind));
            return Ok(());
        };
        let be_state = XenbusState::parse(be_state.as_bytes());
        // The backend directory names its frontend; only the one where the
        // guest's own devices live is served.
        if xs.read(&format!("{be}/frontend"))?.as_deref() != Some(fe.as_str()) {
            return Ok(());
        }
        if Self::foreign_type(xs, &fe)? {
            return Ok(());
        }
        let online = xs
            .read(&format!("{be}/online"))?
            .as_deref()
            .and_then(parse_num::<u32>)
            == Some(1);
        let fe_state = state(xs.read(&format!("{fe}/state"))?);
        let set = |xs: &mut S, s: XenbusState| -> Result<(), ConsoleError> {
            if s != be_state {
                tracing::info!(domid, devid, "{be}: state {s}");
                xs.write(&format!("{be}/state"), &s.as_value())?;
            }
            Ok(())
        };
        let connected = self.console_state((domid, kind)) == Some(true);
        // Gives up on the device until the frontend starts over; written once,
        // as every write fires the backend watch again.
        let give_up = |xs: &mut S, why: &str| -> Result<(), ConsoleError> {
            if be_state != XenbusState::Closing {
                tracing::error!(domid, devid, "{be}: {why}");
                xs.write(&format!("{be}/error"), why)?;
                set(xs, XenbusState::Closing)?;
            }
            Ok(())
        };
        if !online {
            // Removal by the toolstack (libxl: online = 0, state = Closing).
            self.drop_console((domid, kind));
            if matches!(be_state, XenbusState::Closing | XenbusState::Connected) {
                set(xs, XenbusState::Closed)?;
            }
            return Ok(());
        }
        match fe_state {
            XenbusState::Initialised | XenbusState::Connected => {
                let read = |xs: &mut S, node: &str| -> Result<Option<u32>, ConsoleError> {
                    Ok(xs
                        .read(&format!("{fe}/{node}"))?
                        .as_deref()
                        .and_then(parse_num::<u32>))
                };
                let (Some(ring_ref), Some(port)) = (read(xs, "ring-ref")?, read(xs, "port")?)
                else {
                    return give_up(
                        xs,
                        &format!("{fe} is {fe_state} without a valid ring-ref and port"),
                    );
                };
                match self.attach(xs, domid, kind, XenPfn::from(ring_ref), port) {
                    Ok(true) => tracing::info!(domid, %kind, "console connected"),
                    Ok(false) => {}
                    Err(e) => return give_up(xs, &e.to_string()),
                }
                match self.console_state((domid, kind)) {
                    Some(true) => set(xs, XenbusState::Connected),
                    // Disconnected for misbehaving (bogus ring indices).
                    _ => give_up(xs, "the console ring was disconnected"),
                }
            }
            XenbusState::Closing => {
                self.drop_console((domid, kind));
                set(xs, XenbusState::Closing)
            }
            XenbusState::Closed => {
                self.drop_console((domid, kind));
                set(xs, XenbusState::Closed)
            }
            XenbusState::Initialising | XenbusState::InitWait | XenbusState::Unknown => {
                if connected {
                    self.drop_console((domid, kind));
                }
                // A new device, or a frontend that starts over after closing.
                let fresh = be_state == XenbusState::Initialising
                    || (fe_state != XenbusState::Unknown
                        && matches!(be_state, XenbusState::Closing | XenbusState::Closed));
                if fresh {
                    // Forget a failure: the frontend will offer a new ring.
                    if let Some(s) = self.domains.get_mut(&domid) {
                        s.remove(&kind);
                    }
                    set(xs, XenbusState::InitWait)?;
                }
                Ok(())
            }
            XenbusState::Reconfiguring | XenbusState::Reconfigured => Ok(()),
        }
    }

    /// Stops serving one console (flushing what is in its ring) and forgets it.
    fn drop_console(&mut self, id: ConsoleId) {
        let Some(slot) = self.domains.get_mut(&id.0).and_then(|s| s.remove(&id.1)) else {
            return;
        };
        if let Slot::Connected(mut c) = slot {
            let _ = self.drain_out(id, &mut c);
            self.release(id, &c);
            tracing::info!(domid = id.0, kind = %id.1, "console disconnected");
        }
    }

    fn open_outputs<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        domid: DomId,
        kind: ConsoleKind,
        dir: &str,
        c: &mut Console,
    ) -> Result<(), ConsoleError> {
        if let Some(log_dir) = &self.config.log_dir {
            let name = xs
                .read(&format!("{}/name", domain_path(domid)))?
                .unwrap_or_else(|| format!("domain{domid}"));
            let path = log_dir.join(log_file_name(&name, &kind.log_suffix()));
            c.log = Some(LogFile::open(&path, self.config.log_policy)?);
        }
        if self.config.ptys {
            let p = Pty::open()?;
            xs.write(&format!("{dir}/tty"), p.path())?;
            use std::os::fd::AsRawFd;
            self.changes.added.push(((domid, kind), p.as_raw_fd()));
            c.pty = Some(p);
        }
        Ok(())
    }

    /// Maps the ring: the primary PV console through grant 0 (else the frame
    /// itself), the vuart by frame number, a secondary console through the grant
    /// reference its frontend wrote.
    fn map_ring(
        &self,
        domid: DomId,
        kind: ConsoleKind,
        ring_ref: XenPfn,
    ) -> Result<(MappedMemory, Keep), ConsoleError> {
        let mut grant_err = String::from("not offered");
        let grant = match kind {
            ConsoleKind::Pv => Some(GNTTAB_RESERVED_CONSOLE),
            ConsoleKind::Vuart => None,
            ConsoleKind::Secondary(_) => {
                Some(GrantRef::try_from(ring_ref).unwrap_or(GrantRef::MAX))
            }
        };
        if let Some(gref) = grant {
            match self.grants.map_grants(domid, &[gref], true) {
                Ok(m) => {
                    let mem = (*m).clone();
                    return Ok((mem, Box::new(m)));
                }
                Err(e) => grant_err = e.to_string(),
            }
        }
        if let ConsoleKind::Secondary(_) = kind {
            return Err(ConsoleError::Map {
                domid,
                gfn: ring_ref,
                grant: grant_err,
                foreign: "not tried (ring-ref is a grant reference)".into(),
            });
        }
        match self.foreign.map_foreign(domid, &[ring_ref], true) {
            Ok(mem) => Ok((mem.clone(), Box::new(mem))),
            Err(e) => Err(ConsoleError::Map {
                domid,
                gfn: ring_ref,
                grant: grant_err,
                foreign: e.to_string(),
            }),
        }
    }

    /// Disconnects a misbehaving console until its xenstore values change.
    fn fail(&mut self, id: ConsoleId, c: Box<Console>, why: &ConsoleError) {
        tracing::error!(domid = id.0, kind = %id.1, "disconnecting console: {why}");
        let (ring_ref, port) = (c.ring_ref, c.remote_port);
        self.release(id, &c);
        self.domains
            .entry(id.0)
            .or_default()
            .insert(id.1, Slot::Failed { ring_ref, port });
    }

    /// Moves what is in the ring to the log and pty (one ring's worth at most),
    /// then releases it to the guest and notifies it.
    fn drain_out(&mut self, id: ConsoleId, c: &mut Console) -> Result<(), ConsoleError> {
        let mut data = std::mem::take(&mut c.scratch);
        let result = self.drain_out_via(id, c, &mut data);
        c.scratch = data;
        result
    }

    fn drain_out_via(
        &mut self,
        id: ConsoleId,
        c: &mut Console,
        data: &mut Vec<u8>,
    ) -> Result<(), ConsoleError> {
        let cons = c.ring.peek_out_into(OUT_SIZE, data)?;
        if data.is_empty() {
            return Ok(());
        }
        if let Some(log) = &mut c.log {
            if let Err(e) = log.write(data) {
                // A full disk must not stop the guest: keep serving the pty.
                tracing::warn!(domid = id.0, "{e}");
            }
        }
        c.logged += data.len() as u64;
        if c.pty.is_some() {
            c.pty_pending.extend(data.iter());
            let over = c.pty_pending.len().saturating_sub(PTY_BUFFER_MAX);
            c.pty_pending.drain(..over);
            if !c.pty_blocked {
                flush_pty(c);
            }
        }
        c.ring.commit_out_at(cons, data.len())?;
        self.evtchn.notify(c.local_port)?;
        Ok(())
    }

    /// Handles every pending event channel notification.
    pub fn on_evtchn(&mut self) -> Result<(), ConsoleError> {
        while let Some(port) = self.evtchn.pending()? {
            let Some(&id) = self.by_port.get(&port) else {
                // Not ours (any more): unmask so the port is usable again.
                let _ = self.evtchn.unmask(port);
                continue;
            };
            self.with_console(id, |d, c| {
                c.events += 1;
                d.service(id, c)?;
                if c.events < RATE_LIMIT_ALLOWANCE {
                    d.evtchn.unmask(c.local_port)?;
                } else {
                    if !c.throttled {
                        tracing::debug!(domid = id.0, "console rate-limited");
                    }
                    c.throttled = true;
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Output and input of one console after a notification.
    fn service(&mut self, id: ConsoleId, c: &mut Console) -> Result<(), ConsoleError> {
        self.drain_out(id, c)?;
        // The guest may have consumed input: more typed bytes may now fit.
        if c.input_waiting {
            self.pty_input(c)?;
        }
        Ok(())
    }

    /// Runs `f` on a connected console; a failure disconnects it.
    fn with_console(
        &mut self,
        id: ConsoleId,
        f: impl FnOnce(&mut Self, &mut Console) -> Result<(), ConsoleError>,
    ) {
        let Some(slots) = self.domains.get_mut(&id.0) else {
            return;
        };
        let Some(Slot::Connected(mut c)) = slots.remove(&id.1) else {
            return;
        };
        match f(self, &mut c) {
            Ok(()) => {
                self.domains
                    .entry(id.0)
                    .or_default()
                    .insert(id.1, Slot::Connected(c));
            }
            Err(e) => self.fail(id, c, &e),
        }
    }

    /// The time until the rate-limit period ends (for the loop's poll timeout).
    pub fn next_tick(&self, now: Instant) -> Duration {
        RATE_LIMIT_PERIOD.saturating_sub(now.duration_since(self.period_start))
    }

    /// Ends the rate-limit period when it is over: counts restart, throttled
    /// consoles are serviced and unmasked.
    pub fn tick(&mut self, now: Instant) {
        if now.duration_since(self.period_start) < RATE_LIMIT_PERIOD {
            return;
        }
        self.period_start = now;
        let ids: Vec<ConsoleId> = self
            .domains
            .iter()
            .flat_map(|(d, s)| s.keys().map(move |k| (*d, *k)))
            .collect();
        for id in ids {
            self.with_console(id, |d, c| {
                c.events = 0;
                // A pty's writable edge may never come while nobody reads it:
                // try it again once a period.
                if c.pty_blocked {
                    c.pty_blocked = false;
                    flush_pty(c);
                }
                if c.throttled {
                    c.throttled = false;
                    d.service(id, c)?;
                    d.evtchn.unmask(c.local_port)?;
                }
                Ok(())
            });
        }
    }

    /// The pty of console `id` is readable or writable.
    pub fn on_pty(&mut self, id: ConsoleId) {
        self.with_console(id, |d, c| {
            // Readable or writable: either way, try both directions once.
            c.pty_blocked = false;
            flush_pty(c);
            d.pty_input(c)
        });
    }

    /// Moves typed bytes from the pty into the guest's `in` ring, as far as it
    /// has room.
    fn pty_input(&mut self, c: &mut Console) -> Result<(), ConsoleError> {
        let Some(p) = &mut c.pty else { return Ok(()) };
        let mut moved = false;
        loop {
            let space = c.ring.in_space()?;
            if space == 0 {
                // The pty was not read to its end: its readiness will not
                // fire again for what is left, so look on the guest's next
                // signal.
                c.input_waiting = true;
                break;
            }
            let mut buf = [0u8; ring::IN_SIZE];
            match p.read(&mut buf[..space]) {
                Ok(n) if n > 0 => {
                    c.ring.write_in(&buf[..n])?;
                    moved = true;
                }
                // Drained (WouldBlock), or EIO while no slave is open.
                _ => {
                    c.input_waiting = false;
                    break;
                }
            }
        }
        if moved {
            self.evtchn.notify(c.local_port)?;
        }
        Ok(())
    }

    /// Reopens every log file by name (SIGHUP, after logrotate).
    pub fn reopen_logs(&mut self) {
        for (domid, slots) in &mut self.domains {
            for slot in slots.values_mut() {
                if let Slot::Connected(c) = slot {
                    if let Some(log) = &mut c.log {
                        if let Err(e) = log.reopen() {
                            tracing::warn!(domid, "{e}");
                        }
                    }
                }
            }
        }
    }

    /// Console `id`'s state, for tests and logs: `Some(true)` connected,
    /// `Some(false)` disconnected for misbehaving, `None` not served.
    pub fn console_state(&self, id: ConsoleId) -> Option<bool> {
        match self.domains.get(&id.0)?.get(&id.1)? {
            Slot::Connected(_) => Some(true),
            Slot::Failed { .. } => Some(false),
        }
    }

    /// Domains being served.
    pub fn domains(&self) -> Vec<DomId> {
        self.domains.keys().copied().collect()
    }

    /// The console that owns a pty fd (for the event loop's tokens).
    pub fn pty_fd(&self, id: ConsoleId) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self.domains.get(&id.0)?.get(&id.1)? {
            Slot::Connected(c) => c.pty.as_ref().map(|p| p.as_raw_fd()),
            Slot::Failed { .. } => None,
        }
    }

    /// Bytes logged for console `id` so far.
    pub fn logged(&self, id: ConsoleId) -> u64 {
        match self.domains.get(&id.0).and_then(|s| s.get(&id.1)) {
            Some(Slot::Connected(c)) => c.logged,
            _ => 0,
        }
    }
}

/// Writes pending output to the pty until it would block.
fn flush_pty(c: &mut Console) {
    let Some(p) = &mut c.pty else { return };
    while !c.pty_pending.is_empty() {
        let (a, _) = c.pty_pending.as_slices();
        match p.write(a) {
            Ok(n) if n > 0 => {
                c.pty_pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.pty_blocked = true;
                break;
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests;
