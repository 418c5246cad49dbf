//! The xenstore client used by all of rxen: rxl, the backends and tests.
//!
//! A [`Client`] talks to xenstored over its unix socket or through the kernel's
//! `/dev/xen/xenbus` device. Requests are synchronous (one in flight at a time);
//! watch events that arrive while a reply is awaited are queued and handed out by
//! [`Client::next_event`], [`Client::try_next_event`] or the [`Client::events`]
//! iterator. A client is also a [`mio::event::Source`], so a daemon can put it in its
//! own event loop (see [`Client::try_next_event`] for the draining rule).
//!
//! Requests shared by the plain connection and by transactions live in the
//! [`XsOps`] trait, implemented by [`Client`] (outside any transaction) and by
//! [`Transaction`]. [`Client::transaction`] runs a closure in a transaction and
//! retries it when the commit fails with `EAGAIN`.
//!
//! ```no_run
//! use xenstore::client::{Client, XsOps};
//! let mut xs = Client::open()?;
//! xs.write("/local/domain/0/name", b"Domain-0")?;
//! let n = xs.transaction(|tx| {
//!     let n: u32 = tx.read_string("/counter").map(|s| s.parse().unwrap_or(0)).unwrap_or(0);
//!     tx.write("/counter", (n + 1).to_string().as_bytes())?;
//!     Ok::<_, xenstore::client::ClientError>(n + 1)
//! })?;
//! # Ok::<(), xenstore::client::ClientError>(())
//! ```

mod perms;
mod transport;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::wire::{
    self, Header, Message, MsgType, WireError, XsError, HEADER_SIZE, XENSTORE_PAYLOAD_MAX,
};

pub use perms::{Perm, PermAccess, PermParseError};
use transport::Transport;

/// Environment variable naming the daemon's socket or device (libxenstore's
/// `XENSTORED_PATH`, tools/libs/store/xs_lib.c `xs_daemon_path`).
pub const ENV_XENSTORED_PATH: &str = "XENSTORED_PATH";
/// Environment variable naming the daemon's run directory; the socket is
/// `$XENSTORED_RUNDIR/socket` (xs_lib.c `xs_daemon_rundir`).
pub const ENV_XENSTORED_RUNDIR: &str = "XENSTORED_RUNDIR";
/// Xen's default run directory (`XEN_RUN_STORED`; `/var/run/xenstored` on Debian,
/// where `/var/run` is a symlink to `/run`).
pub const DEFAULT_RUNDIR: &str = "/run/xenstored";
/// File name of the socket inside the run directory.
pub const SOCKET_NAME: &str = "socket";
/// The kernel's xenbus device (xs_lib.c `xs_domain_dev`).
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";
/// The older procfs location of the xenbus device.
pub const XENBUS_PROC: &str = "/proc/xen/xenbus";
/// How often [`Client::transaction`] runs its closure before giving up on `EAGAIN`.
pub const MAX_TRANSACTION_ATTEMPTS: u32 = 32;

/// First and largest pause between two attempts of [`Client::transaction`]. Without
/// a pause, clients that contend on the same nodes can starve one of them: the one
/// that is slowest between its read and its commit loses every round.
const TRANSACTION_BACKOFF_FIRST: Duration = Duration::from_micros(100);
const TRANSACTION_BACKOFF_MAX: Duration = Duration::from_millis(20);

/// A randomized ("full jitter") exponential backoff: a pause drawn uniformly from
/// `[0, min(FIRST << attempt, MAX))`, so that contending clients spread out.
fn transaction_backoff(attempt: u32) -> Duration {
    let ceiling = TRANSACTION_BACKOFF_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(TRANSACTION_BACKOFF_MAX);
    let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(jitter() % ceiling_ns)
}

/// Cheap per-call randomness for backoff (not for anything secret): the clock's
/// nanoseconds and a per-process counter mixed by a SplitMix64 step.
fn jitter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut z = u64::from(nanos)
        ^ COUNTER
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
/// Size of one read from the connection.
const READ_CHUNK: usize = 16 * 1024;
/// Largest reply payload the client accepts. Requests are held to the protocol's
/// 4096 bytes, but oxenstored sends longer replies over its socket (a DIRECTORY of
/// many children, for one), and the daemon is trusted: accept them, within reason.
pub const MAX_REPLY_PAYLOAD: usize = 1 << 20;
/// Longest decimal generation count in a DIRECTORY_PART reply (C uses `char gen[24]`).
const DIRECTORY_PART_GEN_MAX: usize = 24;

/// A transaction id as the server hands it out (0 is "no transaction", `XBT_NULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxId(pub u32);

/// "No transaction" (xenstore.h `XBT_NULL`).
pub const XBT_NULL: TxId = TxId(0);

/// A watch event: the path that changed (or the watched special path) and the token
/// given when the watch was registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    /// The path that fired.
    pub path: String,
    /// The token of the watch.
    pub token: String,
}

/// Errors of the xenstore client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting to a socket or opening a device failed.
    #[error("cannot connect to xenstore at {path}")]
    Connect {
        /// The socket or device tried.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// No xenstore socket or device could be opened; lists what was tried.
    #[error("no xenstore daemon reachable (tried {0})")]
    NoDaemon(String),
    /// Reading from or writing to the connection failed.
    #[error("xenstore connection I/O failed")]
    Io(#[source] io::Error),
    /// The daemon closed the connection.
    #[error("xenstored closed the connection")]
    Closed,
    /// No reply within the configured timeout.
    #[error("no reply from xenstored to {0} within the timeout")]
    Timeout(MsgType),
    /// The daemon answered with an ERROR message.
    #[error("{request} {arg}: {error}")]
    Xs {
        /// The request type.
        request: MsgType,
        /// Its first argument (usually the path), for the message.
        arg: String,
        /// The error the daemon sent.
        error: XsError,
    },
    /// The daemon answered with an ERROR string outside the `xsd_errors` table.
    #[error("{request} {arg}: unknown error {error:?}")]
    UnknownXsError {
        /// The request type.
        request: MsgType,
        /// Its first argument.
        arg: String,
        /// The string as received (without NUL).
        error: String,
    },
    /// The stream from the daemon could not be framed.
    #[error("bad message from xenstored")]
    Wire(#[from] WireError),
    /// A reply that does not fit its request.
    #[error("malformed reply to {request}: {what}")]
    BadReply {
        /// The request type.
        request: MsgType,
        /// What was wrong.
        what: String,
    },
    /// A request argument the protocol cannot carry (NUL in a path, too long, ...).
    #[error("invalid request argument: {0}")]
    InvalidArgument(String),
    /// [`Client::transaction`] kept conflicting.
    #[error("transaction still conflicting (EAGAIN) after {0} attempts")]
    TooManyRetries(u32),
}

impl ClientError {
    /// The xenstore error the daemon sent, if this is one.
    pub fn xs_error(&self) -> Option<XsError> {
        match self {
            ClientError::Xs { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// True for a daemon `ENOENT`.
    pub fn is_enoent(&self) -> bool {
        self.xs_error() == Some(XsError::Enoent)
    }

    /// True for a daemon `EAGAIN` (a transaction conflict).
    pub fn is_eagain(&self) -> bool {
        self.xs_error() == Some(XsError::Eagain)
    }
}

/// Result of the client's operations.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A connection to xenstored.
pub struct Client {
    transport: Transport,
    /// Bytes read but not yet framed into messages.
    inbuf: Vec<u8>,
    /// Complete messages read but not yet consumed (replies).
    replies: VecDeque<Message>,
    /// Watch events read but not yet handed out.
    events: VecDeque<WatchEvent>,
    next_req_id: u32,
    timeout: Option<Duration>,
    read_buf: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport)
            .field("queued_events", &self.events.len())
            .field("next_req_id", &self.next_req_id)
            .finish()
    }
}

/// Where [`Client::open`] looks, in order, given the environment.
pub fn default_paths() -> Vec<PathBuf> {
    candidate_paths(
        std::env::var_os(ENV_XENSTORED_PATH).map(PathBuf::from),
        std::env::var_os(ENV_XENSTORED_RUNDIR).map(PathBuf::from),
    )
}

fn candidate_paths(path: Option<PathBuf>, rundir: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(p) = path {
        // libxenstore: XENSTORED_PATH overrides both the socket and the device.
        return vec![p];
    }
    let rundir = rundir.unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR));
    vec![
        rundir.join(SOCKET_NAME),
        PathBuf::from(XENBUS_DEVICE),
        PathBuf::from(XENBUS_PROC),
    ]
}

impl Client {
    /// Connects the way libxenstore's `xs_open` does: `$XENSTORED_PATH` if set
    /// (socket or device), else `$XENSTORED_RUNDIR/socket` or
    /// `/run/xenstored/socket`, else `/dev/xen/xenbus` (or `/proc/xen/xenbus`).
    pub fn open() -> Result<Client> {
        let mut tried = Vec::new();
        let mut last = None;
        for path in default_paths() {
            match Client::open_path(&path) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tried.push(path.display().to_string());
                    last = Some(e);
                }
            }
        }
        match (tried.len(), last) {
            (1, Some(e)) => Err(e),
            _ => Err(ClientError::NoDaemon(tried.join(", "))),
        }
    }

    /// Opens `path`: a unix socket is connected, a character device (xenbus) is
    /// opened read-write.
    pub fn open_path(path: &Path) -> Result<Client> {
        let transport = Transport::open(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client::with_transport(transport))
    }

    /// Connects to xenstored's unix socket at `path`.
    pub fn connect_socket(path: &Path) -> Result<Client> {
        let s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Client::from_stream(s)
    }

    /// Uses an already connected stream (tests use one end of a socket pair).
    pub fn from_stream(stream: UnixStream) -> Result<Client> {
        let transport = Transport::socket(stream).map_err(ClientError::Io)?;
        Ok(Client::with_transport(transport))
    }

    fn with_transport(transport: Transport) -> Client {
        Client {
            transport,
            inbuf: Vec::new(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            next_req_id: 1,
            timeout: None,
            read_buf: vec![0; READ_CHUNK],
        }
    }

    /// Bounds how long a request waits for its reply (`None`, the default, waits
    /// forever like libxenstore). After a timeout the connection is out of step and
    /// should be dropped.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends one request and waits for its reply, queueing watch events that arrive
    /// meanwhile. Returns the reply payload; an ERROR reply becomes
    /// [`ClientError::Xs`]. This is the primitive every other request uses; it is
    /// public for tools (and tests) that send raw requests.
    pub fn request(&mut self, kind: MsgType, tx: TxId, payload: Vec<u8>) -> Result<Vec<u8>> {
        if payload.len() > XENSTORE_PAYLOAD_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "{kind} payload of {} bytes exceeds {XENSTORE_PAYLOAD_MAX}",
                payload.len()
            )));
        }
        let arg = first_arg(&payload);
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let msg = Message::new(kind, req_id, tx.0, payload);
        let deadline = self.timeout.map(|t| Instant::now() + t);
        self.transport
            .write_all(&msg.encode(), deadline)
            .map_err(|e| io_error(e, kind))?;
        let reply = self.wait_reply(kind, deadline)?;
        if reply.header.req_id != req_id {
            return Err(ClientError::BadReply {
                request: kind,
                what: format!(
                    "reply carries request id {} instead of {req_id}",
                    reply.header.req_id
                ),
            });
        }
        if reply.header.msg_type == MsgType::Error as u32 {
            let name = reply.payload.strip_suffix(b"\0").unwrap_or(&reply.payload);
            return Err(match XsError::parse(name) {
                Ok(error) => ClientError::Xs {
                    request: kind,
                    arg,
                    error,
                },
                Err(_) => ClientError::UnknownXsError {
                    request: kind,
                    arg,
                    error: String::from_utf8_lossy(name).into_owned(),
                },
            });
        }
        if reply.header.msg_type != kind as u32 {
            return Err(ClientError::BadReply {
                request: kind,
                what: format!("reply has type {}", reply.header.msg_type),
            });
        }
        Ok(reply.payload)
    }

    fn wait_reply(&mut self, kind: MsgType, deadline: Option<Instant>) -> Result<Message> {
        loop {
            if let Some(m) = self.replies.pop_front() {
                return Ok(m);
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(ClientError::Timeout(kind))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads once (waiting until `deadline` for data) and sorts what arrived into
    /// replies and events.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        let n = self
            .transport
            .read_wait(&mut self.read_buf, deadline)
            .map_err(ClientError::Io)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.absorb(n)
    }

    /// Reads what is available without waiting; false when nothing was.
    fn fill_nonblocking(&mut self) -> Result<bool> {
        match self.transport.read_nonblocking(&mut self.read_buf) {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                self.absorb(n)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    fn absorb(&mut self, n: usize) -> Result<()> {
        self.inbuf.extend_from_slice(&self.read_buf[..n]);
        let mut pos = 0;
        while self.inbuf.len() - pos >= HEADER_SIZE {
            let header = Header::decode(&self.inbuf[pos..])?;
            let len = header.len as usize;
            if len > MAX_REPLY_PAYLOAD {
                return Err(WireError::PayloadTooLong(header.len).into());
            }
            if self.inbuf.len() - pos - HEADER_SIZE < len {
                break;
            }
            let start = pos + HEADER_SIZE;
            let m = Message {
                header,
                payload: self.inbuf[start..start + len].to_vec(),
            };
            pos = start + len;
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                self.events.push_back(parse_event(&m.payload)?);
            } else {
                self.replies.push_back(m);
            }
        }
        self.inbuf.drain(..pos);
        Ok(())
    }

    /// The next watch event, waiting for one if none is queued.
    pub fn next_event(&mut self) -> Result<WatchEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            self.fill(None)?;
        }
    }

    /// The next watch event, waiting at most `timeout`; `None` when none came.
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<WatchEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            match self.fill(Some(deadline)) {
                Ok(()) => {}
                Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// A queued or immediately readable watch event, without waiting. In a mio loop,
    /// call this until it returns `Ok(None)` each time the client is readable (the
    /// source is edge-triggered) and also after making requests, which may have
    /// queued events without a new readiness edge.
    pub fn try_next_event(&mut self) -> Result<Option<WatchEvent>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if !self.fill_nonblocking()? {
                return Ok(None);
            }
        }
    }

    /// Number of watch events queued in the client (already read from the daemon).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// A blocking iterator over watch events; it ends after the first error.
    pub fn events(&mut self) -> Events<'_> {
        Events {
            client: self,
            done: false,
        }
    }

    /// Runs `body` in a transaction and commits it; when the commit fails with
    /// `EAGAIN` (another writer touched what the transaction used) the whole body
    /// runs again after a short randomized pause, at most
    /// [`MAX_TRANSACTION_ATTEMPTS`] times. An error from `body` aborts the
    /// transaction and is returned as is.
    pub fn transaction<T, E, F>(&mut self, mut body: F) -> Result<T, E>
    where
        F: FnMut(&mut Transaction<'_>) -> Result<T, E>,
        E: From<ClientError>,
    {
        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            let mut tx = self.transaction_start()?;
            match body(&mut tx) {
                Ok(v) => match tx.commit() {
                    Ok(()) => return Ok(v),
                    Err(e) if e.is_eagain() => {
                        std::thread::sleep(transaction_backoff(attempt));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) => {
                    // The body's error wins; a failing abort is not worth reporting.
                    let _ = tx.abort();
                    return Err(e);
                }
            }
        }
        Err(ClientError::TooManyRetries(MAX_TRANSACTION_ATTEMPTS).into())
    }

    /// Starts a transaction (TRANSACTION_START). Dropping the returned handle
    /// without [`Transaction::commit`] aborts it.
    pub fn transaction_start(&mut self) -> Result<Transaction<'_>> {
        let reply = self.request(MsgType::TransactionStart, XBT_NULL, b"\0".to_vec())?;
        let id = parse_u32_reply(MsgType::TransactionStart, &reply)?;
        Ok(Transaction {
            client: self,
            id: TxId(id),
            finished: false,
        })
    }

    /// Ends transaction `tx` by id (TRANSACTION_END), committing when `commit`.
    /// [`Transaction`] does this for you; this is for raw transaction ids.
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<()> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(MsgType::TransactionEnd, tx, arg.to_vec())
            .map(drop)
    }

    /// Registers a watch on `path` (or `@introduceDomain` / `@releaseDomain`). The
    /// daemon fires it once right away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<()> {
        let payload = args(&[path, token])?;
        self.request(MsgType::Watch, XBT_NULL, payload).map(drop)
    }

    /// Removes a watch registered with the same path and token.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<()> {
        let payload = args(&[path, token])?;
        self.request(MsgType::Unwatch, XBT_NULL, payload)
            .map(drop)?;
        // Like libxenstore's XS_UNWATCH_FILTER: drop queued events of that watch.
        self.events
            .retain(|e| e.token != token || !under(&e.path, path));
        Ok(())
    }

    /// Removes all watches of this connection (RESET_WATCHES) and drops queued events.
    pub fn reset_watches(&mut self) -> Result<()> {
        self.request(MsgType::ResetWatches, XBT_NULL, b"\0".to_vec())?;
        self.events.clear();
        Ok(())
    }

    /// Tells the daemon about a domain's ring (INTRODUCE domid gfn port).
    pub fn introduce(&mut self, domid: u32, gfn: u64, port: u32) -> Result<()> {
        let payload = args(&[domid.to_string(), gfn.to_string(), port.to_string()])?;
        self.request(MsgType::Introduce, XBT_NULL, payload)
            .map(drop)
    }

    /// Forgets a domain (RELEASE); fires `@releaseDomain`.
    pub fn release(&mut self, domid: u32) -> Result<()> {
        self.domid_request(MsgType::Release, domid).map(drop)
    }

    /// Clears a domain's shutdown state after resume (RESUME).
    pub fn resume(&mut self, domid: u32) -> Result<()> {
        self.domid_request(MsgType::Resume, domid).map(drop)
    }

    /// Lets `domid` act with `target`'s privileges (SET_TARGET, for device models).
    pub fn set_target(&mut self, domid: u32, target: u32) -> Result<()> {
        let payload = args(&[domid.to_string(), target.to_string()])?;
        self.request(MsgType::SetTarget, XBT_NULL, payload)
            .map(drop)
    }

    /// Whether the daemon knows domain `domid` (IS_DOMAIN_INTRODUCED).
    pub fn is_introduced(&mut self, domid: u32) -> Result<bool> {
        let reply = self.domid_request(MsgType::IsDomainIntroduced, domid)?;
        match reply.strip_suffix(b"\0").unwrap_or(&reply) {
            b"T" => Ok(true),
            b"F" => Ok(false),
            other => Err(ClientError::BadReply {
                request: MsgType::IsDomainIntroduced,
                what: format!("expected T or F, got {:?}", String::from_utf8_lossy(other)),
            }),
        }
    }

    /// The home path of a domain, `/local/domain/<domid>` (GET_DOMAIN_PATH).
    pub fn get_domain_path(&mut self, domid: u32) -> Result<String> {
        let reply = self.domid_request(MsgType::GetDomainPath, domid)?;
        reply_string(MsgType::GetDomainPath, &reply)
    }

    /// Sends a CONTROL command (`log`, `quota`, `check`, `help`, ...) with its
    /// arguments; returns the reply text without its trailing NUL.
    pub fn control(&mut self, command: &str, arguments: &[&str]) -> Result<Vec<u8>> {
        let mut all = vec![command];
        all.extend_from_slice(arguments);
        let payload = args(&all)?;
        let mut reply = self.request(MsgType::Control, XBT_NULL, payload)?;
        if reply.last() == Some(&0) {
            reply.pop();
        }
        Ok(reply)
    }

    fn domid_request(&mut self, kind: MsgType, domid: u32) -> Result<Vec<u8>> {
        let payload = args(&[domid.to_string()])?;
        self.request(kind, XBT_NULL, payload)
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> RawFd {
        self.transport.as_raw_fd()
    }
}

impl mio::event::Source for Client {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.transport.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.transport.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.transport.as_raw_fd()).deregister(registry)
    }
}

/// Blocking iterator over watch events ([`Client::events`]).
#[derive(Debug)]
pub struct Events<'a> {
    client: &'a mut Client,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<WatchEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.client.next_event();
        self.done = r.is_err();
        Some(r)
    }
}

/// An open transaction. Requests made through it (via [`XsOps`]) see the
/// transaction's snapshot. Dropping it without [`Transaction::commit`] aborts it.
#[derive(Debug)]
pub struct Transaction<'a> {
    client: &'a mut Client,
    id: TxId,
    finished: bool,
}

impl Transaction<'_> {
    /// The id the server gave this transaction.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Commits; `EAGAIN` ([`ClientError::is_eagain`]) means a conflict and that
    /// nothing was written.
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.client.transaction_end(self.id, true)
    }

    /// Aborts, discarding the transaction's changes.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        self.client.transaction_end(self.id, false)
    }

    /// The client the transaction runs on (e.g. to take queued watch events).
    pub fn client(&mut self) -> &mut Client {
        self.client
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.client.transaction_end(self.id, false) {
                tracing::debug!(tx = self.id.0, error = %e, "aborting dropped transaction failed");
            }
        }
    }
}

/// The requests that work both outside and inside a transaction.
pub trait XsOps {
    /// Sends a request in this context (transaction id 0 or the transaction's).
    fn raw_request(&mut self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>>;

    /// The value of `path` (READ).
    fn read(&mut self, path: &str) -> Result<Vec<u8>> {
        self.raw_request(MsgType::Read, args(&[path])?)
    }

    /// The value of `path` as UTF-8 text (lossy).
    fn read_string(&mut self, path: &str) -> Result<String> {
        self.read(path)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The value of `path`, or `None` when the node does not exist.
    fn try_read(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_enoent() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `path` exists (and is readable).
    fn exists(&mut self, path: &str) -> Result<bool> {
        self.try_read(path).map(|v| v.is_some())
    }

    /// Sets `path` to `value`, creating it and missing parents (WRITE).
    fn write(&mut self, path: &str, value: &[u8]) -> Result<()> {
        check_path_arg(path)?;
        let mut payload = Vec::with_capacity(path.len() + 1 + value.len());
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(value);
        self.raw_request(MsgType::Write, payload).map(drop)
    }

    /// Creates `path` with an empty value if it does not exist (MKDIR).
    fn mkdir(&mut self, path: &str) -> Result<()> {
        self.raw_request(MsgType::Mkdir, args(&[path])?).map(drop)
    }

    /// Removes `path` and everything below it (RM).
    fn rm(&mut self, path: &str) -> Result<()> {
        self.raw_request(MsgType::Rm, args(&[path])?).map(drop)
    }

    /// The names of the children of `path` (DIRECTORY). When the list is too big for
    /// one reply (`E2BIG`), it is fetched in pieces with DIRECTORY_PART.
    fn directory(&mut self, path: &str) -> Result<Vec<String>> {
        self.directory_raw(path).map(|list| split_names(&list))
    }

    /// [`XsOps::directory`] as the daemon sends it: each name followed by a NUL,
    /// for callers that scan the names rather than keep them (a `String` per
    /// name costs more than fetching it: ~100 us for 2000 names).
    fn directory_raw(&mut self, path: &str) -> Result<Vec<u8>> {
        match self.raw_request(MsgType::Directory, args(&[path])?) {
            Ok(reply) => Ok(reply),
            Err(e) if e.xs_error() == Some(XsError::E2big) => self.directory_part_raw(path),
            Err(e) => Err(e),
        }
    }

    /// The children of `path` fetched with DIRECTORY_PART only (restarting when the
    /// node's generation changes between pieces, like libxenstore).
    fn directory_part(&mut self, path: &str) -> Result<Vec<String>> {
        self.directory_part_raw(path).map(|list| split_names(&list))
    }

    /// [`XsOps::directory_part`] as the daemon sends it (each name followed by a
    /// NUL).
    fn directory_part_raw(&mut self, path: &str) -> Result<Vec<u8>> {
        let mut generation: Option<Vec<u8>> = None;
        let mut strings: Vec<u8> = Vec::new();
        loop {
            let off = strings.len().to_string();
            let reply = self.raw_request(MsgType::DirectoryPart, args(&[path, off.as_str()])?)?;
            let gen_len = wire::string_at(&reply, 0)
                .filter(|n| *n <= DIRECTORY_PART_GEN_MAX)
                .ok_or_else(|| ClientError::BadReply {
                    request: MsgType::DirectoryPart,
                    what: "no generation count".into(),
                })?;
            let gen = reply[..gen_len].to_vec();
            let part = &reply[gen_len..];
            match &generation {
                Some(g) if *g != gen => {
                    // The directory changed under us: start over.
                    generation = None;
                    strings.clear();
                    continue;
                }
                Some(_) => {}
                None => generation = Some(gen),
            }
            if part.is_empty() {
                return Err(ClientError::BadReply {
                    request: MsgType::DirectoryPart,
                    what: "empty piece".into(),
                });
            }
            strings.extend_from_slice(part);
            // The last piece ends with an extra empty string ("\0\0", or just "\0"
            // for an empty directory).
            if strings.len() == 1 || strings.ends_with(b"\0\0") {
                strings.pop();
                return Ok(strings);
            }
        }
    }

    /// The permissions of `path`, owner first (GET_PERMS).
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>> {
        let reply = self.raw_request(MsgType::GetPerms, args(&[path])?)?;
        wire::split_args(&reply)
            .into_iter()
            .map(|p| {
                Perm::parse(p).map_err(|e| ClientError::BadReply {
                    request: MsgType::GetPerms,
                    what: e.to_string(),
                })
            })
            .collect()
    }

    /// Sets the permissions of `path`; the first entry names the owner and the
    /// access of every domain not listed (SET_PERMS).
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<()> {
        if perms.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a permission list needs at least the owner".into(),
            ));
        }
        let mut all: Vec<String> = vec![path.to_string()];
        all.extend(perms.iter().map(Perm::to_string));
        self.raw_request(MsgType::SetPerms, args(&all)?).map(drop)
    }
}

impl XsOps for Client {
    fn raw_request(&mut self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>> {
        self.request(kind, XBT_NULL, payload)
    }
}

impl XsOps for Transaction<'_> {
    fn raw_request(&mut self, kind: MsgType, payload: Vec<u8>) -> Result<Vec<u8>> {
        self.client.request(kind, self.id, payload)
    }
}

/// Whether `path` is `base` or below it.
fn under(path: &str, base: &str) -> bool {
    path == base
        || (path.starts_with(base)
            && (base.ends_with('/') || path.as_bytes().get(base.len()) == Some(&b'/')))
}

fn check_path_arg(s: &str) -> Result<()> {
    if s.as_bytes().contains(&0) {
        return Err(ClientError::InvalidArgument(format!(
            "{s:?} contains a NUL byte"
        )));
    }
    Ok(())
}

/// Joins string arguments into a payload, refusing embedded NULs.
fn args<S: AsRef<str>>(list: &[S]) -> Result<Vec<u8>> {
    for a in list {
        check_path_arg(a.as_ref())?;
    }
    let bytes: Vec<&[u8]> = list.iter().map(|s| s.as_ref().as_bytes()).collect();
    Ok(wire::join_args(&bytes))
}

fn first_arg(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn split_names(reply: &[u8]) -> Vec<String> {
    wire::split_args(reply)
        .into_iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn reply_string(kind: MsgType, reply: &[u8]) -> Result<String> {
    let text = reply.strip_suffix(b"\0").unwrap_or(reply);
    String::from_utf8(text.to_vec()).map_err(|_| ClientError::BadReply {
        request: kind,
        what: "not UTF-8".into(),
    })
}

fn parse_u32_reply(kind: MsgType, reply: &[u8]) -> Result<u32> {
    let s = reply_string(kind, reply)?;
    s.parse().map_err(|_| ClientError::BadReply {
        request: kind,
        what: format!("expected a number, got {s:?}"),
    })
}

fn parse_event(payload: &[u8]) -> Result<WatchEvent> {
    let parts = wire::split_args(payload);
    match parts.as_slice() {
        [path, token, ..] => Ok(WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        }),
        _ => Err(ClientError::BadReply {
            request: MsgType::WatchEvent,
            what: "watch event without path and token".into(),
        }),
    }
}

fn io_error(e: io::Error, kind: MsgType) -> ClientError {
    match e.kind() {
        io::ErrorKind::TimedOut => ClientError::Timeout(kind),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => ClientError::Closed,
        _ => ClientError::Io(e),
    }
}

#[cfg(test)]
mod tests;
