//! The I/O layer of `rxenstored`: one `mio` event loop over the listening unix
//! socket, the client connections and a signalfd, feeding requests to the
//! [`crate::process::Server`] core and writing its replies and watch events back.
//!
//! Costs: a connection is only looked at when epoll reports it (edge-triggered)
//! or when the core reports new output for it ([`Server::take_woken`]: a reply,
//! or a watch event somebody's change caused); idle connections cost nothing per
//! loop iteration. A socket is registered for readability only, and for
//! writability too only while its output is blocked (like C xenstored's
//! `POLLOUT` only with pending output): the kernel signals write space each time
//! the peer consumes a reply, and that edge would otherwise wake the loop once
//! per reply for nothing (docs/PERFORMANCE.md).
//!
//! Bounds: a connection's encoded output is capped near [`conn::OUT_BUF_LIMIT`]
//! bytes; beyond that messages wait in the core's queue, which is itself bounded
//! (`Config::max_queued`): at the bound the core stops taking the connection's
//! requests, and a watch event that finds the queue full is dropped. A socket
//! client that lost events is then disconnected (it must resynchronise); a domain
//! keeps its ring and only loses those events, as with C xenstored (logged once
//! per connection; docs/SECURITY.md).
//! Memory per connection is therefore bounded whatever the peer does.

mod conn;
mod ring;
mod trace;
mod xen_hooks;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::UnixListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::process::{Action, Config, ConnId, ConnKind, Server};
use crate::wire::Message;

use conn::{Connection, ReadEnd, RequestSink, READ_CHUNK};
pub use conn::{SocketTransport, Transport};
pub use trace::Trace;
pub use xen_hooks::{GrantOrForeign, RingMapper, XenHooks, XenParts, XenSetupError};

/// Token of the listening socket.
const LISTENER: Token = Token(0);
/// Token of the signalfd.
const SIGNALS: Token = Token(1);
/// First token used for connections (slot index + this).
const FIRST_CONN: usize = 2;
/// Readiness events taken per `epoll_wait`.
const EVENTS_CAPACITY: usize = 1024;
/// Socket file mode, as C xenstored sets it (`chmod(soc_str, 0600)`).
const SOCKET_MODE: u32 = 0o600;

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Creating the socket's directory failed.
    #[error("cannot create directory {path}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Binding the listening socket failed.
    #[error("cannot listen on {path}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Opening the trace file failed.
    #[error("cannot open trace file {path}")]
    Trace {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Setting up polling or signals failed.
    #[error("event loop setup failed")]
    Setup(#[source] io::Error),
    /// Polling failed.
    #[error("polling failed")]
    Poll(#[source] io::Error),
}

/// What the daemon serves and how.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The unix socket path.
    pub socket: PathBuf,
    /// The core's configuration (quotas, domids, queue bound).
    pub server: Config,
    /// The access log, if any (`-T`).
    pub trace_file: Option<PathBuf>,
    /// Bytes a connection's output queue may hold in the core (`None`: the core's
    /// default, [`crate::process::DEFAULT_MAX_QUEUED_BYTES`]).
    pub max_queued_bytes: Option<usize>,
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Signal(i32),
}

/// A bound listener, ready to run (binding is separate so that the binary can bind
/// before it forks: when the parent returns, clients can connect).
#[derive(Debug)]
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Creates the socket's directory if needed, removes a stale socket file, binds
    /// and sets mode 0600 (like C xenstored's `init_sockets`).
    pub fn bind(path: &Path) -> Result<Listener, DaemonError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DaemonError::RunDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DaemonError::Listen {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let listen_err = |source| DaemonError::Listen {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(listen_err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(listen_err)?;
        Ok(Listener {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP for the calling thread (and threads it starts
/// later) and returns a signalfd that reports them. Call before starting threads.
pub fn signal_fd() -> Result<SignalFd, DaemonError> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block()
        .map_err(|e| DaemonError::Setup(e.into()))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| DaemonError::Setup(e.into()))
}

/// The daemon: the core plus its connections.
#[derive(Debug)]
pub struct Daemon {
    poll: Poll,
    listener: Listener,
    signals: Option<SignalFd>,
    server: Server,
    trace: Trace,
    slots: Vec<Option<Connection>>,
    free: Vec<usize>,
    by_id: HashMap<ConnId, usize>,
    /// Slots to service in this iteration.
    work: Vec<usize>,
    scratch: Vec<u8>,
    /// accept() failed for lack of descriptors: retry when one is freed.
    accept_blocked: bool,
    /// Domain rings and event channels, once [`Daemon::attach_xen`] ran.
    xen: Option<xen_hooks::XenIo>,
}

/// Binds `socket` and serves it from a thread for the rest of the process, with
/// the default configuration and no Xen: a real xenstored for other crates' tests
/// and host tools. The socket accepts connections when this returns.
pub fn spawn_unix_daemon(socket: &Path) -> Result<std::thread::JoinHandle<()>, DaemonError> {
    let listener = Listener::bind(socket)?;
    let config = DaemonConfig {
        socket: socket.to_path_buf(),
        server: Config::default(),
        trace_file: None,
        max_queued_bytes: None,
    };
    // The daemon is made in its thread: its domain hooks need not be Send.
    Ok(std::thread::spawn(move || {
        let run = Daemon::new(config, listener, None).and_then(|mut d| d.run().map(drop));
        if let Err(e) = run {
            tracing::error!(error = %e, "xenstore daemon thread stopped");
        }
    }))
}

impl Daemon {
    /// Sets up the loop on a bound listener. `signals` (from [`signal_fd`]) makes
    /// SIGTERM/SIGINT end [`Daemon::run`] and SIGHUP reopen the trace file.
    pub fn new(
        config: DaemonConfig,
        mut listener: Listener,
        signals: Option<SignalFd>,
    ) -> Result<Daemon, DaemonError> {
        let poll = Poll::new().map_err(DaemonError::Setup)?;
        poll.registry()
            .register(&mut listener.listener, LISTENER, Interest::READABLE)
            .map_err(DaemonError::Setup)?;
        if let Some(sfd) = &signals {
            poll.registry()
                .register(&mut SourceFd(&sfd.as_raw_fd()), SIGNALS, Interest::READABLE)
                .map_err(DaemonError::Setup)?;
        }
        let trace =
            Trace::open(config.trace_file.as_deref()).map_err(|source| DaemonError::Trace {
                path: config.trace_file.clone().unwrap_or_default(),
                source,
            })?;
        let mut server = Server::new(config.server);
        if let Some(bytes) = config.max_queued_bytes {
            server.set_max_queued_bytes(bytes);
        }
        Ok(Daemon {
            poll,
            listener,
            signals,
            server,
            trace,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            work: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            accept_blocked: false,
            xen: None,
        })
    }

    /// Number of open client connections.
    pub fn connections(&self) -> usize {
        self.by_id.len()
    }

    /// Runs until a terminating signal.
    pub fn run(&mut self) -> Result<Exit, DaemonError> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            if let Some(exit) = self.run_once(&mut events, None)? {
                return Ok(exit);
            }
        }
    }

    /// One loop iteration: waits for readiness (at most `timeout`), then serves
    /// every connection that has work. `Some` when a terminating signal came.
    pub fn run_once(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<Option<Exit>, DaemonError> {
        let timeout = match (timeout, self.rescan_timeout(Instant::now())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(DaemonError::Poll(e)),
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept_all(),
                xen_hooks::EVTCHN => self.handle_evtchn(),
                SIGNALS => {
                    if let Some(exit) = self.take_signals() {
                        self.trace.flush();
                        return Ok(Some(exit));
                    }
                }
                Token(t) => {
                    let slot = t - FIRST_CONN;
                    if let Some(Some(c)) = self.slots.get_mut(slot) {
                        // Errors and hang-ups surface as failing reads/writes.
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.readable = true;
                        }
                        if ev.is_read_closed() || ev.is_error() {
                            c.peer_closed = true;
                        }
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            c.writable = true;
                        }
                        self.schedule(slot);
                    }
                }
            }
        }
        self.rescan_rings(Instant::now());
        self.service_work();
        self.trace.flush();
        Ok(None)
    }

    fn schedule(&mut self, slot: usize) {
        if let Some(Some(c)) = self.slots.get_mut(slot) {
            if !c.queued {
                c.queued = true;
                self.work.push(slot);
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.listener.accept() {
                Ok((stream, _)) => {
                    self.accept_blocked = false;
                    self.add_connection(Box::new(SocketTransport::new(stream)), ConnKind::Socket);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE/ENFILE: pending clients wait until a descriptor is freed.
                    if !self.accept_blocked {
                        tracing::warn!(error = %e, connections = self.connections(), "accept failed");
                    }
                    self.accept_blocked = true;
                    return;
                }
            }
        }
    }

    /// Registers a connection with the core and the poller; returns its slot.
    pub fn add_connection(
        &mut self,
        mut transport: Box<dyn Transport>,
        kind: ConnKind,
    ) -> Option<usize> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        if let Some(src) = transport.source() {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(src, Token(slot + FIRST_CONN), Interest::READABLE)
            {
                tracing::warn!(error = %e, "cannot poll a new connection; dropping it");
                self.free.push(slot);
                return None;
            }
        }
        let id = self.server.connect(kind);
        tracing::debug!(%id, transport = %transport.describe(), "new connection");
        self.trace.conn(id, "CREATE");
        self.slots[slot] = Some(Connection::new(id, transport));
        self.by_id.insert(id, slot);
        // A socket may hold data already.
        self.schedule(slot);
        Some(slot)
    }

    fn close(&mut self, slot: usize, why: &str) {
        let Some(mut c) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        tracing::debug!(id = %c.id, why, "closing connection");
        self.trace.conn(c.id, "DESTROY");
        if let Some(src) = c.transport.source() {
            let _ = self.poll.registry().deregister(src);
        }
        self.server.disconnect(c.id);
        self.by_id.remove(&c.id);
        self.free.push(slot);
        drop(c);
        self.handle_actions();
        // A disconnect can fire watches (@releaseDomain for a domain's connection).
        self.schedule_woken(None);
        if self.accept_blocked {
            self.accept_all();
        }
    }

    fn service_work(&mut self) {
        while let Some(slot) = self.work.pop() {
            if let Some(Some(c)) = self.slots.get_mut(slot) {
                c.queued = false;
            }
            self.service(slot);
        }
    }

    /// Reads requests, handles them, and writes output, until the connection has
    /// nothing more to do right now.
    fn service(&mut self, slot: usize) {
        // Writing may unblock reading (the core pauses a connection whose queue
        // is full) and reading produces output: go round until neither moves.
        loop {
            if self
                .slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| self.is_ignored(c.id))
            {
                return;
            }
            let wrote = match self.flush(slot) {
                Ok(w) => w,
                Err(why) => return self.misbehaved(slot, &why, ring::XENSTORE_ERROR_COMM),
            };
            let Some(Some(c)) = self.slots.get_mut(slot) else {
                return;
            };
            if !c.readable {
                return;
            }
            let id = c.id;
            let mut sink = CoreSink {
                server: &mut self.server,
                trace: &mut self.trace,
                id,
                handled: 0,
            };
            let end = c.read_requests(&mut self.scratch, &mut sink);
            let handled = sink.handled;
            match end {
                Ok(ReadEnd::Drained) => c.readable = false,
                Ok(ReadEnd::Paused) => {}
                Ok(ReadEnd::Eof) => {
                    self.after_requests(handled, slot);
                    // Send what is left, best effort, then go.
                    let _ = self.flush(slot);
                    return self.close(slot, "peer closed");
                }
                Err(e) => {
                    tracing::info!(%id, error = %e, "dropping connection");
                    return self.misbehaved(slot, "bad input", ring::XENSTORE_ERROR_PROTO);
                }
            }
            self.after_requests(handled, slot);
            if handled == 0 && !wrote {
                return;
            }
        }
    }

    /// After requests: carry out the core's actions and schedule the connections
    /// that got output (replies, or watch events caused by these requests).
    fn after_requests(&mut self, handled: usize, from: usize) {
        if handled == 0 {
            return;
        }
        self.handle_actions();
        self.schedule_woken(Some(from));
    }

    /// Schedules every connection the core gave output since the last call.
    fn schedule_woken(&mut self, except: Option<usize>) {
        for id in self.server.take_woken() {
            if let Some(&slot) = self.by_id.get(&id) {
                if Some(slot) != except {
                    self.schedule(slot);
                }
            }
        }
    }

    /// Moves the core's queued messages into the connection's buffer and writes,
    /// then registers for writability if (and only while) the output is blocked.
    /// Returns whether anything was written; `Err` names why to close it.
    fn flush(&mut self, slot: usize) -> Result<bool, String> {
        let wrote = self.write_queued(slot)?;
        let Some(Some(c)) = self.slots.get_mut(slot) else {
            return Ok(wrote);
        };
        // Blocked output waits for the writable edge; otherwise no write-space
        // events (one per reply the peer reads) are wanted.
        let want = !c.writable;
        if want != c.write_interest {
            if let Some(src) = c.transport.source() {
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                self.poll
                    .registry()
                    .reregister(src, Token(slot + FIRST_CONN), interest)
                    .map_err(|e| format!("cannot poll for output: {e}"))?;
                c.write_interest = want;
            }
        }
        Ok(wrote)
    }

    /// [`Daemon::flush`] without the registration update.
    fn write_queued(&mut self, slot: usize) -> Result<bool, String> {
        let Some(Some(c)) = self.slots.get_mut(slot) else {
            return Ok(false);
        };
        let id = c.id;
        let dropped = self.server.dropped_events(id);
        if dropped > 0 {
            // The policy for a peer that lost watch events (the core dropped them
            // because its queue was full): a domain keeps its ring and only loses
            // those events, as with C xenstored (a guest's xenstore must not go
            // away because it was slow, and a hostile guest only hurts itself); a
            // socket client (a dom0 tool) is disconnected so that it notices and
            // resynchronises.
            match self.xen.as_ref().and_then(|x| x.domid_of(id)) {
                Some(domid) => {
                    if !c.drops_logged {
                        c.drops_logged = true;
                        tracing::warn!(domid, %id, dropped,
                            "domain does not read its watch events fast enough; events over its queue bound are dropped, its connection is kept (logged once per connection)");
                    }
                }
                None => {
                    tracing::warn!(%id, dropped,
                        "client does not read its watch events; disconnecting it");
                    return Err("watch events dropped".into());
                }
            }
        }
        let mut wrote = false;
        loop {
            while c.wants_output() {
                let Some(msg) = self.server.pop_output(id) else {
                    break;
                };
                self.trace.io(id, true, &msg);
                c.push_output(&msg);
            }
            if c.output_empty() || !c.writable {
                return Ok(wrote);
            }
            match c.write_output() {
                Ok(progress) => wrote |= progress,
                Err(e) => return Err(format!("write failed: {e}")),
            }
            if !c.output_empty() {
                // Blocked: wait for the writable edge.
                return Ok(wrote);
            }
            if self.server.queued(id) == 0 {
                return Ok(wrote);
            }
        }
    }

    fn handle_actions(&mut self) {
        for action in self.server.take_actions() {
            match action {
                Action::Log(on) => self.trace.set_enabled(on),
                Action::LogFile(path) => {
                    if let Err(e) = self.trace.set_path(Path::new(&path)) {
                        tracing::warn!(%path, error = %e, "cannot open new trace file");
                    }
                }
                Action::Print(text) => self.trace.print(&text),
                Action::Introduced { domid, conn, .. } => self.ring_introduced(domid, conn),
                Action::Reintroduced { domid, conn, port } => {
                    self.ring_reintroduced(domid, conn, port)
                }
                Action::Released { domid, conn } => {
                    tracing::info!(domid, %conn, "domain released");
                    self.ring_released(conn);
                    if let Some(slot) = self.by_id.get(&conn).copied() {
                        self.close(slot, "domain released");
                    }
                }
            }
        }
    }

    fn take_signals(&mut self) -> Option<Exit> {
        let sfd = self.signals.as_mut()?;
        loop {
            match sfd.read_signal() {
                Ok(Some(info)) => {
                    let signo = info.ssi_signo as i32;
                    if signo == Signal::SIGHUP as i32 {
                        tracing::info!("SIGHUP: reopening the trace file");
                        if let Err(e) = self.trace.reopen() {
                            tracing::warn!(error = %e, "cannot reopen the trace file");
                        }
                    } else {
                        tracing::info!(signo, "terminating on signal");
                        return Some(Exit::Signal(signo));
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the signalfd failed");
                    return None;
                }
            }
        }
    }
}

/// Hands a connection's requests to the core, tracing them.
struct CoreSink<'a> {
    server: &'a mut Server,
    trace: &'a mut Trace,
    id: ConnId,
    handled: usize,
}

impl RequestSink for CoreSink<'_> {
    fn can_read(&self) -> bool {
        self.server.can_read(self.id)
    }

    fn handle(&mut self, msg: Message) {
        self.trace.io(self.id, false, &msg);
        self.server.handle(self.id, msg);
        self.handled += 1;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.trace.flush();
        let _ = std::fs::remove_file(self.listener.path());
    }
}

#[cfg(test)]
mod tests;
