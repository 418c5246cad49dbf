//! The console backend behind `rxconsoled`: serves every domain's primary PV
//! console (`/local/domain/N/console`) and SBSA UART (`/local/domain/N/vuart/0`)
//! the way xenconsoled does (tools/console/daemon/io.c): it notices domains
//! through `@introduceDomain`/`@releaseDomain` and a scan at start, maps the ring
//! (grant 0 through gntdev for the PV console, else a foreign mapping of the GFN in
//! `ring-ref`), binds the event channel in `port`, and moves bytes between the ring
//! and a per-console log file and pty (its path published in `tty`).
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
use xen::abi::grant_table::GNTTAB_RESERVED_CONSOLE;
use xen::abi::xen::{DomId, EvtchnPort, XenPfn};
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
}

impl ConsoleKind {
    /// Every kind, in service order.
    pub const ALL: [ConsoleKind; 2] = [ConsoleKind::Pv, ConsoleKind::Vuart];
    /// The console's directory under the domain's xenstore path.
    pub fn xs_dir(self) -> &'static str {
        match self {
            ConsoleKind::Pv => "console",
            ConsoleKind::Vuart => "vuart/0",
        }
    }
    /// Suffix of its log file name (xenconsoled's `log_suffix`).
    pub fn log_suffix(self) -> &'static str {
        match self {
            ConsoleKind::Pv => "",
            ConsoleKind::Vuart => "-vuart0",
        }
    }
    /// Whether the ring is offered through grant 0 (the vuart page is Xen's,
    /// mapped by frame number only).
    fn use_grant(self) -> bool {
        self == ConsoleKind::Pv
    }
}

impl fmt::Display for ConsoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsoleKind::Pv => "pv",
            ConsoleKind::Vuart => "vuart0",
        })
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
}

/// The ring mapping, whichever way it was made; dropping it unmaps.
type Keep = Box<dyn fmt::Debug + Send>;

/// One connected console.
struct Console {
    ring: ConsRing,
    _mapping: Keep,
    gfn: XenPfn,
    remote_port: EvtchnPort,
    local_port: EvtchnPort,
    log: Option<LogFile>,
    pty: Option<Pty>,
    pty_pending: VecDeque<u8>,
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
            .field("gfn", &self.gfn)
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
        gfn: XenPfn,
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

    /// Watches the domain list; its first firing scans the domains.
    pub fn start<S: ConsoleStore>(&mut self, xs: &mut S) -> Result<(), ConsoleError> {
        xs.watch("@introduceDomain", DOMLIST_TOKEN)?;
        xs.watch("@releaseDomain", DOMLIST_TOKEN)?;
        self.scan(xs)
    }

    /// Handles a watch event.
    pub fn on_watch<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        token: &str,
    ) -> Result<(), ConsoleError> {
        if token == DOMLIST_TOKEN {
            return self.scan(xs);
        }
        if let Some(domid) = token.strip_prefix("dom").and_then(parse_num::<DomId>) {
            if self.domains.contains_key(&domid) {
                for kind in ConsoleKind::ALL {
                    self.try_connect(xs, domid, kind);
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
            let base = domain_path(domid);
            for kind in ConsoleKind::ALL {
                if let Err(e) = xs.watch(&format!("{base}/{}", kind.xs_dir()), &watch_token(domid))
                {
                    tracing::warn!(domid, "cannot watch {kind} console: {e}");
                }
                self.try_connect(xs, domid, kind);
            }
        }
        Ok(())
    }

    /// Stops serving a domain: its consoles are flushed, unbound and unmapped.
    pub fn drop_domain<S: ConsoleStore>(&mut self, xs: &mut S, domid: DomId) {
        let Some(slots) = self.domains.remove(&domid) else {
            return;
        };
        tracing::info!(domid, "domain gone");
        let base = domain_path(domid);
        for kind in ConsoleKind::ALL {
            let _ = xs.unwatch(&format!("{base}/{}", kind.xs_dir()), &watch_token(domid));
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

    fn connect<S: ConsoleStore>(
        &mut self,
        xs: &mut S,
        domid: DomId,
        kind: ConsoleKind,
    ) -> Result<bool, ConsoleError> {
        let dir = format!("{}/{}", domain_path(domid), kind.xs_dir());
        // Another backend (QEMU: "ioemu") may own the console.
        if let Some(t) = xs.read(&format!("{dir}/type"))? {
            if t != "xenconsoled" {
                return Ok(false);
            }
        }
        let (Some(gfn), Some(port)) = (
            xs.read(&format!("{dir}/ring-ref"))?
                .as_deref()
                .and_then(parse_num::<XenPfn>),
            xs.read(&format!("{dir}/port"))?
                .as_deref()
                .and_then(parse_num::<EvtchnPort>),
        ) else {
            return Ok(false);
        };
        let slots = self.domains.entry(domid).or_default();
        match slots.get(&kind) {
            Some(Slot::Connected(c)) if c.gfn == gfn && c.remote_port == port => return Ok(false),
            Some(Slot::Failed { gfn: g, port: p }) if *g == gfn && *p == port => return Ok(false),
            _ => {}
        }
        // New values (e.g. the guest kexec'd): reconnect.
        if let Some(Slot::Connected(old)) = slots.remove(&kind) {
            self.release((domid, kind), &old);
        }
        let (mem, keep) = self.map_ring(domid, kind, gfn)?;
        let ring = ConsRing::new(mem)?;
        let local_port = self.evtchn.bind_interdomain(domid, port)?;
        let mut c = Box::new(Console {
            ring,
            _mapping: keep,
            gfn,
            remote_port: port,
            local_port,
            log: None,
            pty: None,
            pty_pending: VecDeque::new(),
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
            let path = log_dir.join(log_file_name(&name, kind.log_suffix()));
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

    /// Maps the ring: grant 0 first for the PV console, else the frame itself.
    fn map_ring(
        &self,
        domid: DomId,
        kind: ConsoleKind,
        gfn: XenPfn,
    ) -> Result<(MappedMemory, Keep), ConsoleError> {
        let mut grant_err = String::from("not offered");
        if kind.use_grant() {
            match self
                .grants
                .map_grants(domid, &[GNTTAB_RESERVED_CONSOLE], true)
            {
                Ok(m) => {
                    let mem = (*m).clone();
                    return Ok((mem, Box::new(m)));
                }
                Err(e) => grant_err = e.to_string(),
            }
        }
        match self.foreign.map_foreign(domid, &[gfn], true) {
            Ok(mem) => Ok((mem.clone(), Box::new(mem))),
            Err(e) => Err(ConsoleError::Map {
                domid,
                gfn,
                grant: grant_err,
                foreign: e.to_string(),
            }),
        }
    }

    /// Disconnects a misbehaving console until its xenstore values change.
    fn fail(&mut self, id: ConsoleId, c: Box<Console>, why: &ConsoleError) {
        tracing::error!(domid = id.0, kind = %id.1, "disconnecting console: {why}");
        let (gfn, port) = (c.gfn, c.remote_port);
        self.release(id, &c);
        self.domains
            .entry(id.0)
            .or_default()
            .insert(id.1, Slot::Failed { gfn, port });
    }

    /// Moves what is in the ring to the log and pty (one ring's worth at most),
    /// then releases it to the guest and notifies it.
    fn drain_out(&mut self, id: ConsoleId, c: &mut Console) -> Result<(), ConsoleError> {
        let chunk = c.ring.peek_out(OUT_SIZE)?;
        if chunk.data.is_empty() {
            return Ok(());
        }
        if let Some(log) = &mut c.log {
            if let Err(e) = log.write(&chunk.data) {
                // A full disk must not stop the guest: keep serving the pty.
                tracing::warn!(domid = id.0, "{e}");
            }
        }
        c.logged += chunk.data.len() as u64;
        if c.pty.is_some() {
            c.pty_pending.extend(&chunk.data);
            let over = c.pty_pending.len().saturating_sub(PTY_BUFFER_MAX);
            c.pty_pending.drain(..over);
            flush_pty(c);
        }
        c.ring.commit_out(&chunk, chunk.data.len())?;
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
        self.pty_input(c)
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
                break;
            }
            let mut buf = [0u8; ring::IN_SIZE];
            match p.read(&mut buf[..space]) {
                Ok(0) => break,
                Ok(n) => {
                    c.ring.write_in(&buf[..n])?;
                    moved = true;
                }
                Err(_) => break, // WouldBlock, or EIO while no slave is open
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
            Ok(0) | Err(_) => break,
            Ok(n) => {
                c.pty_pending.drain(..n);
            }
        }
    }
}

#[cfg(test)]
mod tests;
