//! I/O-layer tests: the connection buffers against a scripted transport, and a
//! daemon in a thread served over real sockets.

use super::conn::{Connection, ReadEnd, RequestSink, Transport, OUT_BUF_LIMIT};
use super::*;
use crate::wire::{Header, Message, MsgType, HEADER_SIZE};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A transport fed from a script of read results; writes accept at most
/// `write_room` bytes, then `WouldBlock`.
#[derive(Debug, Default)]
struct Scripted {
    reads: VecDeque<io::Result<Vec<u8>>>,
    written: Vec<u8>,
    write_room: usize,
}

impl Transport for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reads.pop_front() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(Err(e)) => Err(e),
            Some(Ok(bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.reads.push_front(Ok(bytes[n..].to_vec()));
                }
                Ok(n)
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.write_room);
        self.write_room -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        None
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// Takes at most `limit` requests.
struct Collect {
    got: Vec<Message>,
    limit: usize,
}

impl RequestSink for Collect {
    fn can_read(&self) -> bool {
        self.got.len() < self.limit
    }

    fn handle(&mut self, msg: Message) {
        self.got.push(msg);
    }
}

fn read_msg(i: u32) -> Message {
    Message::new(MsgType::Read, i, 0, format!("/k{i}\0").into_bytes())
}

#[test]
fn paused_connection_keeps_unread_requests() {
    let mut stream = Vec::new();
    for i in 0..5 {
        stream.extend(read_msg(i).encode());
    }
    let t = Scripted {
        reads: VecDeque::from([Ok(stream)]),
        ..Scripted::default()
    };
    let mut c = Connection::new(ConnId(1), Box::new(t));
    let mut scratch = vec![0u8; 64];
    let mut sink = Collect {
        got: Vec::new(),
        limit: 2,
    };
    assert_eq!(
        c.read_requests(&mut scratch, &mut sink).expect("reads"),
        ReadEnd::Paused
    );
    assert_eq!(sink.got.len(), 2);
    sink.limit = 10;
    assert_eq!(
        c.read_requests(&mut scratch, &mut sink).expect("reads"),
        ReadEnd::Drained
    );
    let ids: Vec<u32> = sink.got.iter().map(|m| m.header.req_id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

#[test]
fn oversized_header_is_an_error_and_eof_is_reported() {
    let bad = Header {
        msg_type: MsgType::Write as u32,
        req_id: 1,
        tx_id: 0,
        len: 4097,
    };
    let t = Scripted {
        reads: VecDeque::from([Ok(bad.encode().to_vec())]),
        ..Scripted::default()
    };
    let mut c = Connection::new(ConnId(1), Box::new(t));
    let mut scratch = vec![0u8; 64];
    let mut sink = Collect {
        got: Vec::new(),
        limit: 10,
    };
    assert!(c.read_requests(&mut scratch, &mut sink).is_err());

    let t = Scripted {
        reads: VecDeque::from([Ok(read_msg(1).encode()[..7].to_vec()), Ok(Vec::new())]),
        ..Scripted::default()
    };
    let mut c = Connection::new(ConnId(2), Box::new(t));
    assert_eq!(
        c.read_requests(&mut scratch, &mut sink).expect("reads"),
        ReadEnd::Eof
    );
    assert!(sink.got.is_empty());
}

#[test]
fn output_is_bounded_and_resumes_after_would_block() {
    let t = Scripted {
        write_room: 100,
        ..Scripted::default()
    };
    let mut c = Connection::new(ConnId(1), Box::new(t));
    let big = Message::new(MsgType::Read, 1, 0, vec![b'x'; 4000]);
    let mut pushed = 0;
    while c.wants_output() {
        c.push_output(&big);
        pushed += 1;
    }
    // The cap is approached, not exceeded by more than one message.
    assert!(pushed * 4016 >= OUT_BUF_LIMIT && (pushed - 1) * 4016 < OUT_BUF_LIMIT);
    assert!(c.write_output().expect("writes"));
    assert!(!c.writable, "WouldBlock clears writability");
    assert!(!c.output_empty());
}

/// A daemon on a temporary socket, run in a thread until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    /// The daemon's open connections after its last loop iteration.
    conns: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Running {
    fn start(max_queued: usize) -> Running {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rxs-dmn-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let path = dir.join("socket");
        let listener = Listener::bind(&path).expect("bind");
        let server = Config {
            max_queued,
            ..Config::default()
        };
        let config = DaemonConfig {
            socket: path.clone(),
            server,
            trace_file: None,
            max_queued_bytes: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let conns = Arc::new(AtomicUsize::new(0));
        let c2 = conns.clone();
        let thread = std::thread::spawn(move || {
            let mut d = Daemon::new(config, listener, None).expect("daemon");
            let mut events = Events::with_capacity(64);
            while !s2.load(Ordering::Relaxed) {
                d.run_once(&mut events, Some(Duration::from_millis(20)))
                    .expect("loop");
                c2.store(d.connections(), Ordering::Relaxed);
            }
        });
        Running {
            stop,
            conns,
            thread: Some(thread),
            path,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn roundtrip(s: &mut StdStream, m: &Message) -> Message {
    s.write_all(&m.encode()).expect("send");
    let mut r = crate::wire::Reassembler::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "daemon closed the connection");
        r.feed(&buf[..n], &mut out).expect("frames");
        if let Some(pos) = out
            .iter()
            .position(|m| m.header.msg_type != MsgType::WatchEvent as u32)
        {
            return out.remove(pos);
        }
    }
}

#[test]
fn serves_requests_and_drops_a_watcher_that_never_reads() {
    let d = Running::start(16);
    let mut writer = StdStream::connect(&d.path).expect("connect");
    writer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut lazy = StdStream::connect(&d.path).expect("connect");
    lazy.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let w = Message::new(MsgType::Watch, 1, 0, b"/w\0tok\0".to_vec());
    assert_eq!(roundtrip(&mut lazy, &w).payload, b"OK\0");
    // The lazy watcher never reads again; the writer fires far more events than
    // fit in its socket buffer, its output buffer and the core's queue of 16.
    // Long paths make big events (about 2 KB each, 4 MB in all).
    let path = format!("/w/{}", "k".repeat(2000));
    let value = b"v".to_vec();
    for i in 0..2000u32 {
        // Distinct paths: identical queued events are coalesced by the core.
        let mut p = format!("{path}/{i}\0").into_bytes();
        p.extend_from_slice(&value);
        let r = roundtrip(&mut writer, &Message::new(MsgType::Write, i, 0, p));
        assert_eq!(r.payload, b"OK\0", "write {i} answered");
    }
    // The lazy watcher was disconnected: after draining, we see end of stream.
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match lazy.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                panic!("expected the daemon to close the lazy client: {e} after {total} bytes")
            }
        }
    }
    assert!(total < 2000 * 2000, "not every event was delivered");
    // The daemon still serves others.
    let r = roundtrip(
        &mut writer,
        &Message::new(MsgType::Read, 9, 0, format!("{path}/7\0").into_bytes()),
    );
    assert_eq!(r.payload, value);
}

#[test]
fn peers_that_close_right_after_sending_are_dropped() {
    // A request, or part of one, then an immediate close: all in one wake-up of
    // the daemon. Its read loop may stop early after a short read (no EAGAIN
    // read); it must still notice every one of these closes.
    let d = Running::start(16);
    let full = Message::new(MsgType::Read, 1, 0, b"/\0".to_vec()).encode();
    for i in 0..40 {
        let mut s = StdStream::connect(&d.path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // Accepted and registered first, so that the close below is not seen
        // through the registration's first readiness report.
        let r = roundtrip(&mut s, &Message::new(MsgType::Read, 3, 0, b"/\0".to_vec()));
        assert_eq!(r.header.msg_type, MsgType::Read as u32);
        let bytes = match i % 4 {
            0 => &full[..],
            1 => &full[..HEADER_SIZE + 1],
            2 => &full[..3],
            _ => &[full.clone(), full.clone()].concat()[..],
        };
        s.write_all(bytes).expect("send");
        if i % 8 == 3 {
            // Half-close: the peer still reads its replies.
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).expect("replies");
            let mut replies = Vec::new();
            crate::wire::Reassembler::new()
                .feed(&buf, &mut replies)
                .expect("frames");
            assert_eq!(replies.len(), 2, "two replies, then EOF");
        }
    }
    let mut last = StdStream::connect(&d.path).expect("connect");
    last.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let r = roundtrip(
        &mut last,
        &Message::new(MsgType::Read, 2, 0, b"/\0".to_vec()),
    );
    assert_eq!(r.header.msg_type, MsgType::Read as u32);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while d.conns.load(Ordering::Relaxed) != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        d.conns.load(Ordering::Relaxed),
        1,
        "closed peers still connected"
    );
}

#[test]
fn blocked_output_resumes_when_the_peer_reads() {
    // The daemon registers a socket for writability only while its output is
    // blocked: replies that overflow the socket buffer must still all arrive once
    // the peer starts reading.
    const REQUESTS: u32 = 300;
    const VALUE_LEN: usize = 4000;
    let d = Running::start(1024);
    let mut s = StdStream::connect(&d.path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = b"/big\0".to_vec();
    w.extend_from_slice(&[b'v'; VALUE_LEN]);
    assert_eq!(
        roundtrip(&mut s, &Message::new(MsgType::Write, 1, 0, w)).payload,
        b"OK\0"
    );
    // 300 reads at once: 1.2 MB of replies, several times a socket buffer.
    let mut batch = Vec::new();
    for i in 0..REQUESTS {
        batch.extend_from_slice(&Message::new(MsgType::Read, i, 0, b"/big\0".to_vec()).encode());
    }
    s.write_all(&batch).expect("send");
    // Let the daemon fill the buffer and block.
    std::thread::sleep(Duration::from_millis(200));
    let mut r = crate::wire::Reassembler::new();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < REQUESTS as usize {
        let n = s.read(&mut buf).expect("replies keep coming");
        assert!(n > 0, "daemon closed the connection");
        r.feed(&buf[..n], &mut got).expect("frames");
    }
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.header.req_id, i as u32);
        assert_eq!(m.payload.len(), VALUE_LEN);
    }
}
