//! Hostile and broken clients against rxenstored: each gets a clear error or a
//! closed connection, and the daemon keeps serving everyone else.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{rxenstored, Daemon};
use xenstore::client::XsOps;
use xenstore::wire::{Header, Message, MsgType, Reassembler, XENSTORE_PAYLOAD_MAX};

/// Connections opened by the many-connections test.
const MANY: usize = 10_000;
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(d: &Daemon) -> UnixStream {
    let s = d.connect();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
    s
}

/// Sends raw bytes and reads one whole message back (`None` when the daemon closed
/// the connection).
fn send_raw(s: &mut UnixStream, bytes: &[u8]) -> Option<Message> {
    s.write_all(bytes).ok()?;
    read_one(s)
}

fn read_one(s: &mut UnixStream) -> Option<Message> {
    let mut r = Reassembler::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        };
        r.feed(&buf[..n], &mut out)
            .expect("daemon frames correctly");
        if !out.is_empty() {
            return Some(out.remove(0));
        }
    }
}

fn request(t: MsgType, payload: &[u8]) -> Vec<u8> {
    Message::new(t, 77, 0, payload.to_vec()).encode()
}

/// The daemon answers a fresh client.
fn assert_serving(d: &Daemon) {
    let mut c = d.client();
    c.write("/alive", b"yes").expect("daemon still serves");
    assert_eq!(c.read("/alive").expect("read"), b"yes");
}

fn error_of(m: &Message) -> String {
    assert_eq!(
        m.header.msg_type,
        MsgType::Error as u32,
        "expected an error, got {m:?}"
    );
    String::from_utf8_lossy(m.payload.strip_suffix(b"\0").unwrap_or(&m.payload)).into_owned()
}

#[test]
fn bad_paths_get_einval_and_the_connection_stays() {
    let d = rxenstored(&[]);
    let mut s = connect(&d);
    let long = format!("/{}", "a".repeat(3100));
    let cases: Vec<(MsgType, Vec<u8>)> = vec![
        (MsgType::Write, b"/a b\0v".to_vec()),
        (MsgType::Write, b"/a//b\0v".to_vec()),
        (MsgType::Write, b"/a/b/\0v".to_vec()),
        (MsgType::Write, b"/a*\0v".to_vec()),
        (MsgType::Write, b"/\xc3\xa9\0v".to_vec()),
        (MsgType::Mkdir, b"//\0".to_vec()),
        (MsgType::Read, format!("{long}\0").into_bytes()),
        // Non-NUL-terminated and extra-argument payloads.
        (MsgType::Read, b"/tool".to_vec()),
        (MsgType::Read, b"/tool\0extra\0".to_vec()),
        (MsgType::Mkdir, b"/x".to_vec()),
        (MsgType::Rm, b"".to_vec()),
        (MsgType::Directory, b"/tool\0x\0".to_vec()),
        (MsgType::GetPerms, b"/tool\0\0".to_vec()),
        (MsgType::Write, b"/no-nul-at-all".to_vec()),
        (MsgType::Watch, b"/w".to_vec()),
        (MsgType::SetPerms, b"/tool\0x5\0".to_vec()),
        (MsgType::TransactionEnd, b"T".to_vec()),
    ];
    for (t, p) in cases {
        let reply = send_raw(&mut s, &request(t, &p)).expect("answered, not dropped");
        assert_eq!(
            error_of(&reply),
            "EINVAL",
            "{t} {:?}",
            String::from_utf8_lossy(&p)
        );
        assert_eq!(reply.header.req_id, 77);
    }
    // Unknown and server-only types: ENOSYS, connection kept.
    for t in [15u32, 16, 20, 27, 1000, u32::MAX] {
        let h = Header {
            msg_type: t,
            req_id: 5,
            tx_id: 0,
            len: 0,
        };
        let reply = send_raw(&mut s, &h.encode()).expect("answered");
        assert_eq!(error_of(&reply), "ENOSYS", "type {t}");
    }
    let ok = send_raw(&mut s, &request(MsgType::Read, b"/tool\0")).expect("still open");
    assert_eq!(ok.header.msg_type, MsgType::Read as u32);
    assert_serving(&d);
}

#[test]
fn oversized_length_closes_only_that_connection() {
    let d = rxenstored(&[]);
    let mut other = connect(&d);
    let mut bad = connect(&d);
    let h = Header {
        msg_type: MsgType::Write as u32,
        req_id: 1,
        tx_id: 0,
        len: XENSTORE_PAYLOAD_MAX as u32 + 1,
    };
    assert!(
        send_raw(&mut bad, &h.encode()).is_none(),
        "connection closed"
    );
    let h = Header { len: u32::MAX, ..h };
    let mut bad2 = connect(&d);
    assert!(
        send_raw(&mut bad2, &h.encode()).is_none(),
        "connection closed"
    );
    // The largest legal payload is fine.
    let mut p = b"/big\0".to_vec();
    p.resize(XENSTORE_PAYLOAD_MAX, b'x');
    let r = send_raw(&mut other, &request(MsgType::Write, &p)).expect("answered");
    assert_eq!(r.header.msg_type, MsgType::Write as u32, "{r:?}");
    assert_serving(&d);
}

#[test]
fn truncated_messages_do_not_block_others() {
    let d = rxenstored(&[]);
    // A header cut short, then silence.
    let mut half = connect(&d);
    half.write_all(&request(MsgType::Read, b"/tool\0")[..7])
        .expect("send");
    // A payload cut short, then silence.
    let mut short = connect(&d);
    short
        .write_all(&request(MsgType::Write, b"/p\0value")[..20])
        .expect("send");
    assert_serving(&d);
    // Completing the message later gets it answered.
    half.write_all(&request(MsgType::Read, b"/tool\0")[7..])
        .expect("send");
    let r = read_one(&mut half).expect("answered");
    assert_eq!(r.header.msg_type, MsgType::Read as u32);
    // Hanging up mid-message is harmless.
    drop(short);
    let mut trunc_then_close = connect(&d);
    trunc_then_close.write_all(&[1, 0, 0]).expect("send");
    drop(trunc_then_close);
    assert_serving(&d);
}

#[test]
fn random_garbage_never_hurts_the_daemon() {
    let d = rxenstored(&[]);
    // Deterministic xorshift bytes; lengths small so that headers are plausible.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..200 {
        let mut s = d.connect();
        s.set_nonblocking(true).expect("nonblocking");
        let mut bytes = Vec::new();
        for _ in 0..(next() % 8 + 1) {
            let t = (next() % 30) as u32;
            let len = (next() % 64) as u32;
            let h = Header {
                msg_type: t,
                req_id: round,
                tx_id: (next() % 3) as u32,
                len,
            };
            bytes.extend_from_slice(&h.encode());
            bytes.extend((0..len).map(|_| match next() % 6 {
                0 => 0,
                1 => b'/',
                _ => (next() % 256) as u8,
            }));
        }
        let _ = s.write_all(&bytes);
        let mut sink = [0u8; 65536];
        let _ = s.read(&mut sink);
    }
    assert_serving(&d);
}

#[test]
fn client_that_never_reads_replies_is_bounded() {
    let d = rxenstored(&[]);
    let mut c = d.client();
    let value = vec![b'v'; 4000];
    c.write("/big", &value).expect("write");
    let rss_before = rss_kib(d.pid());
    // Pipeline requests for 4000-byte replies without ever reading: 400 MB of
    // replies if the daemon buffered them all.
    let mut lazy = d.connect();
    lazy.set_nonblocking(true).expect("nonblocking");
    let req = request(MsgType::Read, b"/big\0");
    let mut sent = 0usize;
    let mut blocked_rounds = 0;
    while sent < 100_000 && blocked_rounds < 50 {
        match lazy.write(&req) {
            Ok(n) if n == req.len() => {
                sent += 1;
                blocked_rounds = 0;
            }
            Ok(_) => break, // partial: the daemon stopped reading us
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked_rounds += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        sent < 100_000,
        "the daemon kept reading a client that never reads"
    );
    // Others are served meanwhile.
    assert_serving(&d);
    assert_eq!(c.read("/big").expect("read"), value);
    let rss_after = rss_kib(d.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "daemon grew from {rss_before} KiB to {rss_after} KiB"
    );
    drop(lazy);
    assert_serving(&d);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Raises this process's descriptor limit so that it can hold `MANY` sockets.
fn raise_nofile(want: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    if soft >= want {
        return true;
    }
    setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).is_ok() && hard >= want
}

#[test]
fn ten_thousand_connections() {
    // Our sockets plus some slack for the test harness.
    if !raise_nofile(MANY as u64 + 256) {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "cannot raise RLIMIT_NOFILE to {} in CI", MANY + 256);
        eprintln!("SKIPPED: RLIMIT_NOFILE hard limit below {}", MANY + 256);
        return;
    }
    let mut d = rxenstored(&[]);
    let mut conns = Vec::with_capacity(MANY);
    for i in 0..MANY {
        match UnixStream::connect(&d.socket) {
            Ok(s) => conns.push(s),
            Err(e) => panic!("connection {i} failed: {e}"),
        }
    }
    // Every one of them is served.
    let req = request(MsgType::GetDomainPath, b"0\0");
    for s in &mut conns {
        s.write_all(&req).expect("send");
    }
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        let r = read_one(s).unwrap_or_else(|| panic!("connection {i} closed"));
        assert_eq!(r.payload, b"/local/domain/0\0", "connection {i}");
    }
    assert_serving(&d);
    conns.clear();
    assert!(d.alive());
    assert_serving(&d);
}
