//! One connection of the daemon: a byte transport plus the buffers between it and
//! the server core (a reassembler for requests, a bounded output buffer).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;

use mio::net::UnixStream;

use crate::process::ConnId;
use crate::wire::{Message, Reassembler, WireError, HEADER_SIZE, XENSTORE_PAYLOAD_MAX};

/// How many bytes one read takes from a transport.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Encoded replies and events waiting for the transport are capped near this many
/// bytes; further messages stay in the core's (bounded) queue.
pub(super) const OUT_BUF_LIMIT: usize = 64 * 1024;
/// Output buffer capacity an idle connection may keep.
const IDLE_OUT_CAPACITY: usize = 2 * (HEADER_SIZE + XENSTORE_PAYLOAD_MAX);

/// A byte stream to one xenstore client. Sockets are the only transport today;
/// guest rings (a mapped page plus an event channel) will implement this too, and
/// are polled through their event channel rather than their own `mio` source.
pub trait Transport: fmt::Debug {
    /// Reads available bytes; `WouldBlock` when there are none, `Ok(0)` at the end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes some bytes; `WouldBlock` when there is no room.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Called after a batch of writes (a ring kicks its event channel here).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The `mio` source to register for readiness, if the transport has its own.
    fn source(&mut self) -> Option<&mut dyn mio::event::Source>;
    /// A short description for logs ("socket", "ring of domain 5").
    fn describe(&self) -> String;
    /// True when a read that returns less than was asked for means nothing more
    /// is queued and any later byte (or the peer's close) will be reported by a
    /// new readiness event, so the reader may skip the read that would only say
    /// `WouldBlock`. A stream socket under edge-triggered epoll: the kernel hands
    /// over everything queued, and each arrival wakes epoll again.
    fn short_read_drains(&self) -> bool {
        false
    }
}

/// A client of the unix socket.
#[derive(Debug)]
pub struct SocketTransport {
    stream: UnixStream,
}

impl SocketTransport {
    /// Wraps an accepted (non-blocking) stream.
    pub fn new(stream: UnixStream) -> SocketTransport {
        SocketTransport { stream }
    }

    /// Wraps a std stream (switched to non-blocking).
    pub fn from_std(stream: StdUnixStream) -> io::Result<SocketTransport> {
        stream.set_nonblocking(true)?;
        Ok(SocketTransport {
            stream: UnixStream::from_std(stream),
        })
    }
}

impl Transport for SocketTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        Some(&mut self.stream)
    }

    fn short_read_drains(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "socket".into()
    }
}

/// Where [`Connection::read_requests`] delivers requests.
pub(super) trait RequestSink {
    /// Whether another request may be taken now (flow control).
    fn can_read(&self) -> bool;
    /// Takes one complete request.
    fn handle(&mut self, msg: Message);
}

/// What a read pass ended with.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// The transport has nothing more right now.
    Drained,
    /// The core does not take more requests now (flow control); bytes may remain.
    Paused,
    /// The peer closed its end.
    Eof,
}

/// Per-connection state of the I/O layer.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) id: ConnId,
    pub(super) transport: Box<dyn Transport>,
    reassembler: Reassembler,
    /// Bytes read but not yet given to the reassembler (kept while paused).
    inbuf: Vec<u8>,
    inpos: usize,
    /// Encoded output not yet written.
    outbuf: Vec<u8>,
    outpos: usize,
    /// Readiness seen but not yet consumed (edge-triggered polling).
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// Registered for writability too (only while output is blocked).
    pub(super) write_interest: bool,
    /// A readiness event reported the peer's end closed (hang-up or half-close):
    /// reads go on to the end of file, with no short-read shortcut.
    pub(super) peer_closed: bool,
    /// Waiting in the work list already.
    pub(super) queued: bool,
    /// The core dropped watch events for this (domain) connection and that was
    /// logged: logged once per connection.
    pub(super) drops_logged: bool,
}

impl Connection {
    pub(super) fn new(id: ConnId, transport: Box<dyn Transport>) -> Connection {
        Connection {
            id,
            transport,
            reassembler: Reassembler::new(),
            inbuf: Vec::new(),
            inpos: 0,
            outbuf: Vec::new(),
            outpos: 0,
            readable: true,
            writable: true,
            write_interest: false,
            peer_closed: false,
            queued: false,
            drops_logged: false,
        }
    }

    /// Reads (through the shared `scratch` buffer) and hands complete requests to
    /// `handle` while `can_read` allows. Bytes read but not yet used when the core
    /// pauses the connection are kept in the connection (at most one read's worth).
    /// A framing error (a header announcing over 4096 bytes) is returned: the
    /// caller drops the connection, as C xenstored does.
    pub(super) fn read_requests(
        &mut self,
        scratch: &mut [u8],
        sink: &mut impl RequestSink,
    ) -> Result<ReadEnd, ReadError> {
        // First what was left over from a paused pass.
        while self.inpos < self.inbuf.len() {
            if !sink.can_read() {
                return Ok(ReadEnd::Paused);
            }
            let (used, msg) = self.reassembler.push(&self.inbuf[self.inpos..])?;
            self.inpos += used;
            if let Some(m) = msg {
                sink.handle(m);
            }
        }
        self.inbuf = Vec::new();
        self.inpos = 0;
        loop {
            if !sink.can_read() {
                return Ok(ReadEnd::Paused);
            }
            let n = match self.transport.read(scratch) {
                Ok(0) => return Ok(ReadEnd::Eof),
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(ReadEnd::Drained),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(ReadError::Io(e)),
                },
            };
            let mut pos = 0;
            while pos < n {
                if !sink.can_read() {
                    self.inbuf = scratch[pos..n].to_vec();
                    return Ok(ReadEnd::Paused);
                }
                let (used, msg) = self.reassembler.push(&scratch[pos..n])?;
                pos += used;
                if let Some(m) = msg {
                    sink.handle(m);
                }
            }
            // A short read ending on a message boundary drained the socket: skip
            // the read that would only return EAGAIN (one system call per request
            // saved, docs/PERFORMANCE.md). Not when an event already reported the
            // peer's end closed: its end of file came in the same wake-up and no
            // later edge would announce it (a half-closed peer still reads its
            // replies, so no failing write reveals it either). Only when the
            // output is not blocked: the reply just queued is then written at
            // once, and a peer that closed after the event makes that write fail
            // (EPIPE) or its close raises a new edge. A partial message or a
            // blocked output reads on until `WouldBlock` (or end of file).
            if n < scratch.len()
                && self.reassembler.is_idle()
                && self.writable
                && !self.peer_closed
                && self.output_empty()
                && self.transport.short_read_drains()
            {
                return Ok(ReadEnd::Drained);
            }
        }
    }

    /// Room for more encoded output.
    pub(super) fn wants_output(&self) -> bool {
        self.outbuf.len() - self.outpos < OUT_BUF_LIMIT
    }

    /// Appends an encoded message to the output buffer.
    pub(super) fn push_output(&mut self, msg: &Message) {
        if self.outpos > 0 && self.outpos == self.outbuf.len() {
            self.outbuf.clear();
            self.outpos = 0;
        }
        self.outbuf
            .reserve(HEADER_SIZE + msg.payload.len().min(XENSTORE_PAYLOAD_MAX));
        self.outbuf.extend_from_slice(&msg.header.encode());
        self.outbuf.extend_from_slice(&msg.payload);
    }

    /// True when everything buffered has been written.
    pub(super) fn output_empty(&self) -> bool {
        self.outpos == self.outbuf.len()
    }

    /// Writes buffered output; returns whether any byte went out. `WouldBlock`
    /// clears [`Connection::writable`].
    pub(super) fn write_output(&mut self) -> io::Result<bool> {
        let mut progressed = false;
        while self.outpos < self.outbuf.len() {
            match self.transport.write(&self.outbuf[self.outpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.outpos += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.outpos == self.outbuf.len() {
            self.outbuf.clear();
            self.outpos = 0;
            // Idle connections keep no big buffer around.
            if self.outbuf.capacity() > IDLE_OUT_CAPACITY {
                self.outbuf = Vec::new();
            }
        }
        if progressed {
            self.transport.flush()?;
        }
        Ok(progressed)
    }
}

/// Why reading from a connection failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The stream cannot be framed.
    #[error("protocol violation")]
    Wire(#[from] WireError),
    /// The transport failed.
    #[error("read failed")]
    Io(#[source] io::Error),
}
