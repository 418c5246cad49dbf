//! Request processing without I/O, modelled on C xenstored 4.17.
//!
//! The I/O layer owns sockets and rings. It registers each connection with
//! [`Server::connect`], feeds every complete request to [`Server::handle`], drains
//! each connection's output with [`Server::pop_output`] (replies and watch
//! events, in order), asks [`Server::can_read`] before reading the next request
//! (flow control: outstanding-request quota, memory quota, bounded output queue),
//! acts on [`Server::take_actions`] (domain introduced/released, log control) and
//! calls [`Server::disconnect`] when a connection goes away.
//!
//! Bounded output: replies are always queued, but a connection whose queue holds
//! [`Config::max_queued`] messages is not read from ([`Server::can_read`] is false),
//! so replies cannot pile up beyond that bound plus one. Watch events for a
//! connection whose queue is full are dropped and counted
//! ([`Server::dropped_events`]); the I/O layer may close such a connection.
//! C xenstored instead bounds a domain's queue through its memory quota and drops
//! a domain that does not read its events for 20 seconds.
//!
//! Transactions follow C's model rather than a snapshot: a transaction keeps a
//! copy of every node it read or wrote; reads of other nodes see the current
//! store and are recorded with their generation. At commit any recorded node
//! whose generation changed gives `EAGAIN`. Replies therefore match C's.
//!
//! Known differences from C xenstored 4.17:
//! - A request whose path argument is missing or not NUL-terminated gets
//!   `EINVAL`; C answers with whatever `errno` the previous request left.
//! - Memory accounting (CONTROL `quota <domid>`, the hard memory quota) counts
//!   node records and watches only, not queued messages or transaction copies,
//!   and an over-quota node write answers `ENOMEM`.
//! - Watch events are dropped when the receiver's queue is full
//!   ([`Config::max_queued`]) instead of C's per-domain memory limit and 20 s
//!   event timeout.
//! - No live update (CONTROL `live-update` answers `ENOSYS` except `-a`);
//!   CONTROL `memreport <file>` logs the report instead of writing the file.

mod control;
mod domain;
mod node_ops;
mod requests;
mod transaction;
mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::store::{path, Node, Perm, Quotas, Store, PERM_NONE};
use crate::wire::{Header, Message, MsgType, XsError, XENSTORE_PAYLOAD_MAX};

use domain::Domain;
pub use domain::{DomainHooks, DomainState, NoHypervisor, DOMID_FIRST_RESERVED, DOMID_SELF};
use transaction::Transaction;
use watch::Watch;

/// Identifies one connection (socket client or domain ring) for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn{}", self.0)
    }
}

/// What kind of peer a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A client of the unix socket: acts as the privileged domain 0, like C's
    /// socket connections (no domain record, home `/local/domain/0`).
    Socket,
    /// A domain's ring (introduced through INTRODUCE, or dom0's own ring set up
    /// by the daemon). Privileged when the domid is 0 or [`Config::priv_domid`].
    Domain {
        /// The domain id.
        domid: u32,
    },
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Quotas for unprivileged domains.
    pub quotas: Quotas,
    /// The domain xenstored runs in (C `--master-domid`, 0).
    pub master_domid: u32,
    /// The privileged domain besides 0 (C `--priv-domid`, 0).
    pub priv_domid: u32,
    /// Keep nodes of a released domain, owned by dom0 (C `-K`).
    pub keep_orphans: bool,
    /// Messages a connection's output queue may hold before reading stops and
    /// watch events are dropped.
    pub max_queued: usize,
}

/// Default of [`Config::max_queued`].
pub const DEFAULT_MAX_QUEUED: usize = 1024;
/// Default of [`Server::set_max_queued_bytes`] (256 KiB).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 * 1024;

/// Bytes a queued message occupies.
fn msg_bytes(m: &Message) -> usize {
    crate::wire::HEADER_SIZE + m.payload.len()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quotas: Quotas::default(),
            master_domid: 0,
            priv_domid: 0,
            keep_orphans: false,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

/// Something the I/O layer must do after a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A domain was introduced: map its ring (gfn, already accepted by
    /// [`DomainHooks::introduce`]) and serve it on `conn`.
    Introduced {
        /// The domain.
        domid: u32,
        /// The connection created for it.
        conn: ConnId,
        /// The ring's guest frame number from the request.
        gfn: u64,
        /// The domain's event channel port from the request.
        port: u32,
    },
    /// An introduced domain was introduced again: rebind its event channel and
    /// reset its ring indices (C `domain_conn_reset`).
    Reintroduced {
        /// The domain.
        domid: u32,
        /// Its connection.
        conn: ConnId,
        /// The new port.
        port: u32,
    },
    /// A domain was released (or its connection dropped): unmap its ring and forget
    /// `conn`.
    Released {
        /// The domain.
        domid: u32,
        /// The connection that was removed.
        conn: ConnId,
    },
    /// CONTROL `log on|off`.
    Log(bool),
    /// CONTROL `logfile <file>`.
    LogFile(String),
    /// CONTROL `print <string>`.
    Print(String),
}

/// One connection's state.
#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    /// C `conn->id`: the domain id (0 for sockets).
    id: u32,
    /// Domain whose rights this connection also has (SET_TARGET).
    target: Option<u32>,
    watches: Vec<Watch>,
    transactions: BTreeMap<u32, Transaction>,
    next_tx_id: u32,
    out: VecDeque<Message>,
    /// Sum of `msg_bytes` over `out`.
    out_bytes: usize,
    dropped_events: u64,
    /// Listed in `Server::woken` since the last `take_woken`.
    woken: bool,
    /// Connections this one holds a SET_TARGET reference to (C
    /// `talloc_reference`): each keeps the target alive through one RELEASE.
    ref_handles: Vec<ConnId>,
    /// Ignored after a protocol violation: no requests are processed.
    ignored: bool,
}

/// Per-request context: the caller's identity and its transaction, if any.
#[derive(Debug)]
struct Cx {
    conn: Option<ConnId>,
    id: u32,
    unpriv: bool,
    has_domain: bool,
    target: Option<u32>,
    home: String,
    trans: Option<Transaction>,
}

impl Cx {
    /// The daemon itself (C `conn == NULL`).
    fn internal() -> Cx {
        Cx {
            conn: None,
            id: 0,
            unpriv: false,
            has_domain: false,
            target: None,
            home: path::domain_path(0),
            trans: None,
        }
    }
}

/// Result of a request handler.
enum Reply {
    /// Send this payload with the request's type.
    Payload(Vec<u8>),
    /// The handler sent everything itself.
    Sent,
}

/// Shorthand for the "OK" acknowledgement.
fn ok() -> Result<Reply, XsError> {
    Ok(Reply::Payload(b"OK\0".to_vec()))
}

/// The xenstore server core.
pub struct Server {
    config: Config,
    store: Store,
    /// Global generation counter (C `generation`).
    generation: u64,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    domains: BTreeMap<u32, Domain>,
    introduce_perms: Vec<Perm>,
    release_perms: Vec<Perm>,
    hooks: Box<dyn DomainHooks>,
    actions: Vec<Action>,
    logging: bool,
    /// Bytes (headers included) a connection's output queue may hold.
    max_queued_bytes: usize,
    woken: Vec<ConnId>,
    /// Connections that registered a watch (cleaned lazily when firing), so
    /// that idle connections cost nothing per event.
    watchers: BTreeSet<ConnId>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("nodes", &self.store.len())
            .field("generation", &self.generation)
            .field("conns", &self.conns.len())
            .field("domains", &self.domains.len())
            .finish()
    }
}

impl Server {
    /// A server with the initial tree (`/`, `/tool`, `/tool/xenstored`, owned by
    /// the master domain with no access for others) and no hypervisor.
    pub fn new(config: Config) -> Server {
        Server::with_hooks(config, Box::new(NoHypervisor))
    }

    /// A server whose domain operations go through `hooks`.
    pub fn with_hooks(config: Config, hooks: Box<dyn DomainHooks>) -> Server {
        let master = config.master_domid;
        let mut s = Server {
            config,
            store: Store::new(),
            generation: 0,
            conns: BTreeMap::new(),
            next_conn: 1,
            domains: BTreeMap::new(),
            introduce_perms: vec![Perm::new(0, PERM_NONE)],
            release_perms: vec![Perm::new(0, PERM_NONE)],
            hooks,
            actions: Vec::new(),
            logging: false,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            woken: Vec::new(),
            watchers: BTreeSet::new(),
        };
        // C dom0_init(): the master domain is introduced at start; its ring
        // connection comes from the I/O layer (`connect(ConnKind::Domain)`).
        let mut dom0 = Domain::new(master, 0);
        dom0.introduced = true;
        s.domains.insert(master, dom0);
        // C setup_structure(): the nodes are written in this order, each taking
        // the next generation.
        let perms = vec![Perm::new(master, PERM_NONE)];
        for (name, child) in [
            ("/", Some("tool")),
            ("/tool", Some("xenstored")),
            ("/tool/xenstored", None),
        ] {
            let mut node = Node::new(perms.clone());
            if let Some(c) = child {
                node.add_child(c);
            }
            s.generation += 1;
            node.generation = s.generation;
            s.store.insert(name, &node);
        }
        if let Some(d) = s.domains.get_mut(&master) {
            d.nbentry += 3;
        }
        s
    }

    /// The configuration (quotas may change through CONTROL).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The committed store (read-only; for tests, dumps and checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Sets how many bytes (headers included) a connection's output queue may
    /// hold before reading stops and watch events are dropped; with
    /// [`Config::max_queued`] this bounds the memory a connection that does not
    /// read can cost.
    pub fn set_max_queued_bytes(&mut self, bytes: usize) {
        self.max_queued_bytes = bytes;
    }

    /// Replaces the hypervisor hooks (the daemon attaches Xen after start-up).
    pub fn set_hooks(&mut self, hooks: Box<dyn DomainHooks>) {
        self.hooks = hooks;
    }

    /// C `domain_conn_reset` for a ring whose guest asked to reconnect: the
    /// connection's watches, transactions and queued output are dropped.
    pub fn reset_connection(&mut self, conn: ConnId) {
        self.reset_conn(conn);
    }

    /// True while CONTROL `log on` is in effect.
    pub fn logging(&self) -> bool {
        self.logging
    }

    fn is_privileged_domid(&self, domid: u32) -> bool {
        domid == 0 || domid == self.config.priv_domid
    }

    /// Registers a new connection. A [`ConnKind::Domain`] connection marks the
    /// domain introduced (use it for dom0's own ring; guests come through
    /// INTRODUCE, which creates their connection itself).
    pub fn connect(&mut self, kind: ConnKind) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let domid = match kind {
            ConnKind::Socket => 0,
            ConnKind::Domain { domid } => domid,
        };
        self.conns.insert(
            id,
            Conn {
                kind,
                id: domid,
                target: None,
                watches: Vec::new(),
                transactions: BTreeMap::new(),
                next_tx_id: 0,
                out: VecDeque::new(),
                out_bytes: 0,
                dropped_events: 0,
                woken: false,
                ref_handles: Vec::new(),
                ignored: false,
            },
        );
        if let ConnKind::Domain { domid } = kind {
            let gen = self.new_domain_generation();
            let d = self
                .domains
                .entry(domid)
                .or_insert_with(|| Domain::new(domid, gen));
            d.introduced = true;
            d.conn = Some(id);
        }
        id
    }

    /// Forgets a connection: its watches, transactions and queued output. For a
    /// domain connection this is C's domain destruction: the domain's nodes are
    /// removed (or given to dom0 with `keep_orphans`) and @releaseDomain fires.
    pub fn disconnect(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let watches = c.watches.len() as i64;
        let watch_mem: i64 = c.watches.iter().map(Watch::memory).sum();
        if let ConnKind::Domain { domid } = c.kind {
            if let Some(d) = self.domains.get_mut(&domid) {
                d.nbwatch = (d.nbwatch - watches).max(0);
                d.memory -= watch_mem;
            }
            if self
                .domains
                .get(&domid)
                .is_some_and(|d| d.conn == Some(conn))
            {
                if domid == self.config.master_domid {
                    // C never destroys the master domain (RELEASE 0 is EINVAL):
                    // its nodes stay, only the ring connection goes.
                    if let Some(d) = self.domains.get_mut(&domid) {
                        d.conn = None;
                        d.nboutstanding = 0;
                    }
                } else {
                    self.destroy_domain(domid);
                }
                self.actions.push(Action::Released { domid, conn });
            }
        }
    }

    /// C `ignore_connection`, for a peer that broke the protocol (bad ring
    /// indices, oversized message): a socket connection is dropped
    /// ([`Server::disconnect`]); a domain's connection loses its watches,
    /// transactions and queued output and gets no more requests processed, but the
    /// domain stays introduced until it is released or dies.
    pub fn ignore_connection(&mut self, conn: ConnId) {
        match self.conns.get(&conn).map(|c| c.kind) {
            Some(ConnKind::Domain { .. }) => {
                self.reset_conn(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.ignored = true;
                }
            }
            Some(ConnKind::Socket) => self.disconnect(conn),
            None => {}
        }
    }

    /// Ids of all connections, oldest first.
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// The kind of a connection.
    pub fn conn_kind(&self, conn: ConnId) -> Option<ConnKind> {
        self.conns.get(&conn).map(|c| c.kind)
    }

    /// Takes the next outgoing message of a connection.
    pub fn pop_output(&mut self, conn: ConnId) -> Option<Message> {
        let c = self.conns.get_mut(&conn)?;
        let msg = c.out.pop_front()?;
        c.out_bytes = c.out_bytes.saturating_sub(msg_bytes(&msg));
        if msg.header.msg_type != MsgType::WatchEvent as u32 {
            if let ConnKind::Domain { domid } = c.kind {
                if let Some(d) = self.domains.get_mut(&domid) {
                    d.nboutstanding -= 1;
                }
            }
        }
        Some(msg)
    }

    /// Puts a message back at the front of the queue (partial write). Does not
    /// change outstanding-request accounting.
    pub fn unpop_output(&mut self, conn: ConnId, msg: Message) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let is_reply = msg.header.msg_type != MsgType::WatchEvent as u32;
            c.out_bytes += msg_bytes(&msg);
            c.out.push_front(msg);
            if is_reply {
                if let ConnKind::Domain { domid } = c.kind {
                    if let Some(d) = self.domains.get_mut(&domid) {
                        d.nboutstanding += 1;
                    }
                }
            }
        }
    }

    /// Number of queued outgoing messages.
    pub fn queued(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.out.len())
    }

    /// Watch events dropped because the connection's queue was full.
    pub fn dropped_events(&self, conn: ConnId) -> u64 {
        self.conns.get(&conn).map_or(0, |c| c.dropped_events)
    }

    /// Whether the I/O layer may read (and hand over) another request from this
    /// connection: its output queue is below the bound and, for unprivileged
    /// domains, it is within the outstanding-request and memory quotas (C
    /// `domain_can_read`).
    pub fn can_read(&self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        if c.ignored
            || c.out.len() >= self.config.max_queued
            || c.out_bytes >= self.max_queued_bytes
        {
            return false;
        }
        if let ConnKind::Domain { domid } = c.kind {
            if !self.is_privileged_domid(domid) {
                if let Some(d) = self.domains.get(&domid) {
                    let q = &self.config.quotas;
                    if d.nboutstanding >= q.outstanding {
                        return false;
                    }
                    if q.memory_hard > 0 && d.memory >= q.memory_hard {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Connections that got new output since the last call, each listed once
    /// (so the I/O layer need not scan idle connections).
    pub fn take_woken(&mut self) -> Vec<ConnId> {
        let woken = std::mem::take(&mut self.woken);
        for id in &woken {
            if let Some(c) = self.conns.get_mut(id) {
                c.woken = false;
            }
        }
        woken
    }

    /// Takes the actions accumulated since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn cx_for(&self, conn: ConnId) -> Option<Cx> {
        let c = self.conns.get(&conn)?;
        let (unpriv, has_domain) = match c.kind {
            ConnKind::Socket => (false, false),
            ConnKind::Domain { domid } => (!self.is_privileged_domid(domid), true),
        };
        Some(Cx {
            conn: Some(conn),
            id: c.id,
            unpriv,
            has_domain,
            target: c.target,
            home: path::domain_path(c.id),
            trans: None,
        })
    }

    /// Queues a reply (type and ids from the request). Over-long replies become
    /// E2BIG, like C's `send_reply`.
    fn send_reply(&mut self, conn: ConnId, req: &Header, msg_type: u32, payload: Vec<u8>) {
        let msg = if payload.len() > XENSTORE_PAYLOAD_MAX {
            Message::error_reply(req, XsError::E2big)
        } else {
            let mut m = Message::reply(req, payload);
            m.header.msg_type = msg_type;
            m
        };
        self.push_reply(conn, msg);
    }

    fn push_reply(&mut self, conn: ConnId, msg: Message) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out_bytes += msg_bytes(&msg);
            c.out.push_back(msg);
            if !c.woken {
                c.woken = true;
                self.woken.push(conn);
            }
            if let ConnKind::Domain { domid } = c.kind {
                if let Some(d) = self.domains.get_mut(&domid) {
                    d.nboutstanding += 1;
                }
            }
        }
    }

    fn send_error(&mut self, conn: ConnId, req: &Header, err: XsError) {
        self.push_reply(conn, Message::error_reply(req, err));
    }

    /// Handles one request from `conn`, queueing its reply and any watch events.
    /// Never panics, whatever the message holds.
    pub fn handle(&mut self, conn: ConnId, msg: Message) {
        if self.conns.get(&conn).is_none_or(|c| c.ignored) {
            return;
        }
        let Some(mut cx) = self.cx_for(conn) else {
            return;
        };
        let hdr = msg.header;
        let kind = match MsgType::try_from(hdr.msg_type) {
            Ok(k) if requests::is_request(k) => k,
            _ => {
                tracing::debug!(%conn, msg_type = hdr.msg_type, "unknown operation");
                self.send_error(conn, &hdr, XsError::Enosys);
                return;
            }
        };
        if requests::is_privileged_only(kind) && cx.unpriv {
            self.send_error(conn, &hdr, XsError::Eacces);
            return;
        }
        let tx_id = if requests::ignores_transaction(kind) {
            0
        } else {
            hdr.tx_id
        };
        if tx_id != 0 {
            match self
                .conns
                .get_mut(&conn)
                .and_then(|c| c.transactions.remove(&tx_id))
            {
                Some(t) => cx.trans = Some(t),
                None => {
                    self.send_error(conn, &hdr, XsError::Enoent);
                    return;
                }
            }
        }
        let result = self.dispatch(&mut cx, kind, &hdr, &msg.payload);
        // Put the transaction back unless the request ended it.
        if let Some(t) = cx.trans.take() {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.transactions.insert(t.id, t);
            }
        }
        if !self.conns.contains_key(&conn) {
            return;
        }
        match result {
            Ok(Reply::Payload(p)) => self.send_reply(conn, &hdr, hdr.msg_type, p),
            Ok(Reply::Sent) => {}
            Err(e) => self.send_error(conn, &hdr, e),
        }
    }

    fn dispatch(
        &mut self,
        cx: &mut Cx,
        kind: MsgType,
        hdr: &Header,
        payload: &[u8],
    ) -> Result<Reply, XsError> {
        match kind {
            MsgType::Control => self.do_control(cx, payload),
            MsgType::Directory => self.do_directory(cx, payload),
            MsgType::DirectoryPart => self.do_directory_part(cx, payload),
            MsgType::Read => self.do_read(cx, payload),
            MsgType::GetPerms => self.do_get_perms(cx, payload),
            MsgType::Watch => self.do_watch(cx, hdr, payload),
            MsgType::Unwatch => self.do_unwatch(cx, payload),
            MsgType::TransactionStart => self.do_transaction_start(cx),
            MsgType::TransactionEnd => self.do_transaction_end(cx, payload),
            MsgType::Introduce => self.do_introduce(cx, payload),
            MsgType::Release => self.do_release(cx, payload),
            MsgType::GetDomainPath => self.do_get_domain_path(payload),
            MsgType::Write => self.do_write(cx, payload),
            MsgType::Mkdir => self.do_mkdir(cx, payload),
            MsgType::Rm => self.do_rm(cx, payload),
            MsgType::SetPerms => self.do_set_perms(cx, payload),
            MsgType::IsDomainIntroduced => self.do_is_domain_introduced(payload),
            MsgType::Resume => self.do_resume(payload),
            MsgType::SetTarget => self.do_set_target(payload),
            MsgType::ResetWatches => self.do_reset_watches(cx),
            MsgType::WatchEvent
            | MsgType::Error
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota => Err(XsError::Enosys),
        }
    }
}

/// The first tokens of [`FUZZ_TOKENS`] are paths.
const FUZZ_PATHS: usize = 5;

/// Tokens the structured fuzz mode builds payloads from.
const FUZZ_TOKENS: [&[u8]; 24] = [
    b"/",
    b"a",
    b"b",
    b"/a",
    b"/a/b",
    b"\0",
    b"\0",
    b"\0",
    b"local/domain/7/x",
    b"x",
    b"//",
    b"@releaseDomain",
    b"@introduceDomain",
    b"T",
    b"F",
    b"r7",
    b"n0",
    b"b7",
    b"w0",
    b"7",
    b"0",
    b"help",
    b"quota",
    b"-",
];

/// Runs a fresh server over arbitrary bytes and checks the store's consistency
/// at the end; a panic is a bug. Returns the number of nodes left in the store
/// (a coverage hint). For fuzz targets and randomized tests.
///
/// The first byte of each step picks a connection (socket, socket, or
/// unprivileged domain 7) and a mode: raw bytes fed through a [`Reassembler`], or
/// a structured request (type, transaction id, payload of dictionary tokens).
///
/// [`Reassembler`]: crate::wire::Reassembler
pub fn fuzz_requests(data: &[u8]) -> usize {
    let mut server = Server::new(Config::default());
    let admin = server.connect(ConnKind::Socket);
    let other = server.connect(ConnKind::Socket);
    server.handle(
        admin,
        Message::new(
            MsgType::Introduce,
            0,
            0,
            crate::wire::join_args(&["7", "1", "1"]),
        ),
    );
    let guest = server
        .take_actions()
        .iter()
        .find_map(|a| match a {
            Action::Introduced { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap_or(other);
    let conns = [admin, other, guest];
    let mut reassemblers: Vec<crate::wire::Reassembler> = conns
        .iter()
        .map(|_| crate::wire::Reassembler::new())
        .collect();
    let mut bytes = data.iter().copied();
    while let Some(sel) = bytes.next() {
        let idx = usize::from(sel & 0x3) % conns.len();
        if sel & 0x80 != 0 {
            let n = usize::from(sel & 0x7c) + 4;
            let chunk: Vec<u8> = bytes.by_ref().take(n).collect();
            let mut msgs = Vec::new();
            if reassemblers[idx].feed(&chunk, &mut msgs).is_err() {
                reassemblers[idx] = crate::wire::Reassembler::new();
            }
            for m in msgs {
                server.handle(conns[idx], m);
            }
        } else {
            let t = u32::from(bytes.next().unwrap_or(0) % 28);
            let txb = bytes.next().unwrap_or(0);
            let tx = if txb < 0xc0 { 0 } else { u32::from(txb % 4) };
            let ntok = usize::from(bytes.next().unwrap_or(0) % 8);
            // Mostly a path first, so that requests get past validation.
            let first = FUZZ_TOKENS[usize::from(bytes.next().unwrap_or(0)) % FUZZ_PATHS];
            let mut payload = first.to_vec();
            payload.push(0);
            for _ in 0..ntok {
                let tok = FUZZ_TOKENS[usize::from(bytes.next().unwrap_or(0)) % FUZZ_TOKENS.len()];
                payload.extend_from_slice(tok);
            }
            let header = Header {
                msg_type: t,
                req_id: 1,
                tx_id: tx,
                len: payload.len() as u32,
            };
            server.handle(conns[idx], Message { header, payload });
        }
        for c in conns {
            while server.queued(c) > 64 {
                let _ = server.pop_output(c);
            }
        }
        let _ = server.take_actions();
    }
    let problems = server.store.check();
    assert!(problems.is_empty(), "store inconsistent: {problems:?}");
    server.store.len()
}

#[cfg(test)]
mod tests;
