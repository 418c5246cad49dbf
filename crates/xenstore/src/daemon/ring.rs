//! The xenstore ring page of one domain as a byte [`Transport`] (Xen
//! `xen/include/public/io/xs_wire.h`, `struct xenstore_domain_interface`;
//! the protocol is docs/misc/xenstore-ring.txt).
//!
//! The page is shared with a possibly hostile guest: it is touched only through
//! [`MappedMemory`]'s volatile accessors, each index is read once per operation,
//! checked (`prod - cons <= XENSTORE_RING_SIZE`, like C xenstored's
//! `check_indexes`), and bytes are copied out before anything looks at them. A
//! broken index pair sets the page's `error` field to [`XENSTORE_ERROR_RINGIDX`]
//! and fails the read or write; the daemon then ignores the connection (C
//! `ignore_connection`).

use std::fmt;
use std::io;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex};

use xen::abi::xen::EvtchnPort;
use xen::{EventChannels, MappedMemory};

use super::conn::Transport;

/// Bytes in each direction of the ring (xs_wire.h `XENSTORE_RING_SIZE`).
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// Offset of `req[]`, the requests from the domain.
const OFF_REQ: usize = 0;
/// Offset of `rsp[]`, the replies and watch events to the domain.
const OFF_RSP: usize = XENSTORE_RING_SIZE as usize;
/// Offset of `req_cons` (then `req_prod`, `rsp_cons`, `rsp_prod`, u32 each).
const OFF_REQ_CONS: usize = 2048;
const OFF_REQ_PROD: usize = 2052;
const OFF_RSP_CONS: usize = 2056;
const OFF_RSP_PROD: usize = 2060;
/// Offset of `server_features`.
const OFF_SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
const OFF_CONNECTION: usize = 2068;
/// Offset of `error`.
const OFF_ERROR: usize = 2072;
/// Bytes of the page the interface occupies.
pub const INTERFACE_SIZE: usize = OFF_ERROR + 4;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server handles `connection`.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the server reports errors in `error`.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// What rxenstored offers (C 4.17 `XENSTORE_FEATURES`).
pub const SERVER_FEATURES: u32 =
    XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR;
/// `connection` values.
pub const XENSTORE_CONNECTED: u32 = 0;
/// The guest asks for a reset of its connection.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error` values.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// Communication problem (e.g. the guest does not read its replies).
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// Invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// Protocol violation (e.g. an oversized message).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Ports bound for ring connections, and who serves them; shared between the
/// daemon and the transports (which remove themselves when dropped).
pub(super) type PortMap = Arc<Mutex<std::collections::HashMap<EvtchnPort, super::ConnId>>>;

/// The event channels of this domain, shared by every ring.
pub type SharedEvtchn = Arc<dyn EventChannels + Send + Sync>;

/// A mapped xenstore page: the memory plus whatever keeps the mapping alive (a
/// grant mapping is unmapped when that owner is dropped).
pub struct RingPage {
    /// The page.
    pub mem: MappedMemory,
    /// The owner of the mapping, if not `mem` itself.
    pub keep: Option<Box<dyn fmt::Debug + Send>>,
}

impl fmt::Debug for RingPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPage")
            .field("addr", &format_args!("{:#x}", self.mem.addr()))
            .field("keep", &self.keep)
            .finish()
    }
}

/// Volatile access to the interface fields of one page.
#[derive(Debug, Clone)]
pub struct Interface {
    mem: MappedMemory,
}

/// Errors of ring access.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The page is too small for the interface.
    #[error("xenstore page of {0} bytes is too small")]
    TooSmall(usize),
    /// The indices are inconsistent (more than a ring's worth outstanding).
    #[error("ring indices out of range: cons {cons:#x} prod {prod:#x}")]
    Indices {
        /// Consumer index read.
        cons: u32,
        /// Producer index read.
        prod: u32,
    },
    /// The mapping refused the access.
    #[error("shared memory access failed")]
    Mem(#[from] xen::MemError),
}

impl From<RingError> for io::Error {
    fn from(e: RingError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Copies `out.len()` bytes of the ring at `base` starting at free-running index
/// `idx` (wrapping at the ring's end).
fn ring_read(mem: &MappedMemory, base: usize, idx: u32, out: &mut [u8]) -> Result<(), RingError> {
    let start = (idx % XENSTORE_RING_SIZE) as usize;
    let first = out.len().min(XENSTORE_RING_SIZE as usize - start);
    mem.read_bytes(base + start, &mut out[..first])?;
    if first < out.len() {
        mem.read_bytes(base, &mut out[first..])?;
    }
    Ok(())
}

/// Copies `data` into the ring at `base` from free-running index `idx`.
fn ring_write(mem: &MappedMemory, base: usize, idx: u32, data: &[u8]) -> Result<(), RingError> {
    let start = (idx % XENSTORE_RING_SIZE) as usize;
    let first = data.len().min(XENSTORE_RING_SIZE as usize - start);
    mem.write_bytes(base + start, &data[..first])?;
    if first < data.len() {
        mem.write_bytes(base, &data[first..])?;
    }
    Ok(())
}

/// `prod - cons` when it is a valid fill level (C `check_indexes`).
fn fill(cons: u32, prod: u32) -> Result<u32, RingError> {
    let used = prod.wrapping_sub(cons);
    if used > XENSTORE_RING_SIZE {
        return Err(RingError::Indices { cons, prod });
    }
    Ok(used)
}

impl Interface {
    /// Wraps a mapped page, checking it holds the whole interface.
    pub fn new(mem: MappedMemory) -> Result<Interface, RingError> {
        if mem.len() < INTERFACE_SIZE {
            return Err(RingError::TooSmall(mem.len()));
        }
        Ok(Interface { mem })
    }

    /// A view of the page (keeps the mapping alive).
    pub fn mem_clone(&self) -> MappedMemory {
        self.mem.clone()
    }

    /// Takes up to `buf.len()` request bytes; 0 when the ring is empty.
    pub fn read_requests(&self, buf: &mut [u8]) -> Result<usize, RingError> {
        // Indices once, before the data (C readchn).
        let cons = self.mem.read_u32(OFF_REQ_CONS)?;
        let prod = self.mem.read_u32(OFF_REQ_PROD)?;
        fence(Ordering::SeqCst);
        let avail = fill(cons, prod)? as usize;
        let n = avail.min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        ring_read(&self.mem, OFF_REQ, cons, &mut buf[..n])?;
        fence(Ordering::SeqCst);
        self.mem
            .write_u32(OFF_REQ_CONS, cons.wrapping_add(n as u32))?;
        Ok(n)
    }

    /// Puts as much of `data` as fits into the reply ring; 0 when it is full.
    pub fn write_replies(&self, data: &[u8]) -> Result<usize, RingError> {
        let cons = self.mem.read_u32(OFF_RSP_CONS)?;
        let prod = self.mem.read_u32(OFF_RSP_PROD)?;
        fence(Ordering::SeqCst);
        let room = (XENSTORE_RING_SIZE - fill(cons, prod)?) as usize;
        let n = room.min(data.len());
        if n == 0 {
            return Ok(0);
        }
        ring_write(&self.mem, OFF_RSP, prod, &data[..n])?;
        fence(Ordering::SeqCst);
        self.mem
            .write_u32(OFF_RSP_PROD, prod.wrapping_add(n as u32))?;
        Ok(n)
    }

    /// Whether request bytes wait in the ring (`req_prod != req_cons`), read
    /// without a notification: [`super::Daemon`]'s rescan for a notification the
    /// guest never sent. Broken indices count as nothing waiting (the next read
    /// reports them).
    pub fn requests_waiting(&self) -> bool {
        let Ok(cons) = self.mem.read_u32(OFF_REQ_CONS) else {
            return false;
        };
        let Ok(prod) = self.mem.read_u32(OFF_REQ_PROD) else {
            return false;
        };
        fill(cons, prod).is_ok_and(|used| used > 0)
    }

    /// Free bytes in the reply ring (0 when full or when the indices are broken).
    pub fn reply_room(&self) -> u32 {
        let Ok(cons) = self.mem.read_u32(OFF_RSP_CONS) else {
            return 0;
        };
        let Ok(prod) = self.mem.read_u32(OFF_RSP_PROD) else {
            return 0;
        };
        fill(cons, prod).map_or(0, |used| XENSTORE_RING_SIZE - used)
    }

    /// The `connection` field.
    pub fn connection(&self) -> u32 {
        self.mem
            .read_u32(OFF_CONNECTION)
            .unwrap_or(XENSTORE_CONNECTED)
    }

    /// Sets the `connection` field.
    pub fn set_connection(&self, state: u32) {
        let _ = self.mem.write_u32(OFF_CONNECTION, state);
    }

    /// The `error` field.
    pub fn error(&self) -> u32 {
        self.mem.read_u32(OFF_ERROR).unwrap_or(XENSTORE_ERROR_NONE)
    }

    /// Sets the `error` field unless an error is already recorded (the first
    /// cause is the one the guest should see).
    pub fn set_error(&self, code: u32) {
        if self.error() == XENSTORE_ERROR_NONE {
            let _ = self.mem.write_u32(OFF_ERROR, code);
        }
    }

    /// Advertises the server's features.
    pub fn set_server_features(&self, features: u32) {
        let _ = self.mem.write_u32(OFF_SERVER_FEATURES, features);
    }

    /// Zeroes the four indices (C `domain_conn_reset`).
    pub fn reset_indices(&self) {
        for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
            let _ = self.mem.write_u32(off, 0);
        }
        fence(Ordering::SeqCst);
    }
}

/// A domain's ring as a [`Transport`]. Polled through the shared event channel
/// device, not through a source of its own. Dropping it unbinds its port.
pub struct RingTransport {
    intf: Interface,
    page: RingPage,
    evtchn: SharedEvtchn,
    port: EvtchnPort,
    domid: u32,
    ports: PortMap,
    /// Replies were written since the last notification.
    wrote: bool,
}

impl fmt::Debug for RingTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingTransport")
            .field("domid", &self.domid)
            .field("port", &self.port)
            .field("page", &self.page)
            .finish()
    }
}

impl RingTransport {
    /// A transport over `page`, bound to local `port`.
    pub(super) fn new(
        domid: u32,
        page: RingPage,
        evtchn: SharedEvtchn,
        port: EvtchnPort,
        ports: PortMap,
    ) -> Result<RingTransport, RingError> {
        let intf = Interface::new(page.mem.clone())?;
        Ok(RingTransport {
            intf,
            page,
            evtchn,
            port,
            domid,
            ports,
            wrote: false,
        })
    }

    /// The page's interface (shares the mapping).
    pub fn interface(&self) -> Interface {
        self.intf.clone()
    }

    fn notify(&self) {
        if let Err(e) = self.evtchn.notify(self.port) {
            tracing::warn!(domid = self.domid, port = self.port, error = %e, "event channel notify failed");
        }
    }
}

impl Transport for RingTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.intf.read_requests(buf) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => {
                // The guest may wait for room in its request ring.
                self.notify();
                Ok(n)
            }
            Err(e) => {
                self.intf.set_error(XENSTORE_ERROR_RINGIDX);
                Err(e.into())
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.intf.write_replies(buf) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => {
                self.wrote = true;
                Ok(n)
            }
            Err(e) => {
                self.intf.set_error(XENSTORE_ERROR_RINGIDX);
                Err(e.into())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.wrote) {
            self.notify();
        }
        Ok(())
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        None
    }

    fn describe(&self) -> String {
        format!("ring of domain {} (port {})", self.domid, self.port)
    }
}

impl Drop for RingTransport {
    fn drop(&mut self) {
        if let Ok(mut m) = self.ports.lock() {
            m.remove(&self.port);
        }
        if let Err(e) = self.evtchn.unbind(self.port) {
            tracing::warn!(domid = self.domid, port = self.port, error = %e, "unbinding the ring's port failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> (MappedMemory, Interface) {
        let mem = MappedMemory::anonymous(4096).expect("mmap");
        let intf = Interface::new(mem.clone()).expect("interface");
        (mem, intf)
    }

    /// What a guest does: put request bytes in `req` and advance `req_prod`.
    fn guest_send(mem: &MappedMemory, data: &[u8]) {
        let prod = mem.read_u32(OFF_REQ_PROD).expect("prod");
        ring_write(mem, OFF_REQ, prod, data).expect("write");
        mem.write_u32(OFF_REQ_PROD, prod.wrapping_add(data.len() as u32))
            .expect("prod");
    }

    /// What a guest does: take every reply byte.
    fn guest_take(mem: &MappedMemory) -> Vec<u8> {
        let cons = mem.read_u32(OFF_RSP_CONS).expect("cons");
        let prod = mem.read_u32(OFF_RSP_PROD).expect("prod");
        let mut out = vec![0; prod.wrapping_sub(cons) as usize];
        ring_read(mem, OFF_RSP, cons, &mut out).expect("read");
        mem.write_u32(OFF_RSP_CONS, prod).expect("cons");
        out
    }

    #[test]
    fn layout_matches_xs_wire() {
        // struct xenstore_domain_interface: two 1024-byte rings, four u32
        // indices, server_features, connection, error.
        assert_eq!(OFF_RSP, 1024);
        assert_eq!(OFF_REQ_CONS, 2 * XENSTORE_RING_SIZE as usize);
        assert_eq!(INTERFACE_SIZE, 2076);
        assert!(Interface::new(MappedMemory::anonymous(2048).expect("mmap")).is_err());
    }

    #[test]
    fn requests_wrap_around_the_ring_end() {
        let (mem, intf) = page();
        // Start near the end of the ring with indices far from zero.
        let start = u32::MAX - 5;
        for off in [OFF_REQ_CONS, OFF_REQ_PROD] {
            mem.write_u32(off, start).expect("idx");
        }
        let data: Vec<u8> = (0..100u8).collect();
        guest_send(&mem, &data);
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            let n = intf.read_requests(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(
            mem.read_u32(OFF_REQ_CONS).expect("cons"),
            start.wrapping_add(100)
        );
    }

    #[test]
    fn replies_stop_when_the_ring_is_full_and_resume() {
        let (mem, intf) = page();
        let data = vec![7u8; 1500];
        let n = intf.write_replies(&data).expect("write");
        assert_eq!(n, XENSTORE_RING_SIZE as usize);
        assert_eq!(intf.write_replies(&data[n..]).expect("full"), 0);
        assert_eq!(guest_take(&mem).len(), 1024);
        assert_eq!(intf.write_replies(&data[n..]).expect("write"), 476);
        assert_eq!(guest_take(&mem), vec![7u8; 476]);
    }

    #[test]
    fn hostile_indices_are_refused() {
        let (mem, intf) = page();
        // Producer more than a ring ahead of the consumer.
        mem.write_u32(OFF_REQ_CONS, 10).expect("cons");
        mem.write_u32(OFF_REQ_PROD, 10 + XENSTORE_RING_SIZE + 1)
            .expect("prod");
        let mut buf = [0u8; 16];
        assert!(matches!(
            intf.read_requests(&mut buf),
            Err(RingError::Indices { .. })
        ));
        // Producer behind the consumer.
        mem.write_u32(OFF_RSP_CONS, 100).expect("cons");
        mem.write_u32(OFF_RSP_PROD, 50).expect("prod");
        assert!(matches!(
            intf.write_replies(b"x"),
            Err(RingError::Indices { .. })
        ));
        // Exactly a full ring is valid.
        mem.write_u32(OFF_REQ_PROD, 10 + XENSTORE_RING_SIZE)
            .expect("prod");
        assert_eq!(intf.read_requests(&mut buf).expect("full ring"), 16);
    }

    #[test]
    fn first_error_is_kept() {
        let (_mem, intf) = page();
        intf.set_error(XENSTORE_ERROR_RINGIDX);
        intf.set_error(XENSTORE_ERROR_COMM);
        assert_eq!(intf.error(), XENSTORE_ERROR_RINGIDX);
    }
}
