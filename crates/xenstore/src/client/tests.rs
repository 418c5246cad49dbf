//! Client logic against a scripted fake server on a socket pair (framing, event
//! queueing, error mapping, DIRECTORY_PART, transaction retries). Behaviour against
//! real daemons is tested in tests/client.rs.

use super::*;
use crate::wire::Reassembler;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

/// Runs a fake server on one end of a socket pair: for each request it calls
/// `answer`, which returns the messages to send back (events and/or replies).
fn fake_server<F>(mut answer: F) -> (Client, thread::JoinHandle<Vec<Message>>)
where
    F: FnMut(&Message) -> Vec<Message> + Send + 'static,
{
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut r = Reassembler::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match theirs.read(&mut buf) {
                Ok(0) | Err(_) => return seen,
                Ok(n) => n,
            };
            let mut msgs = Vec::new();
            if r.feed(&buf[..n], &mut msgs).is_err() {
                return seen;
            }
            for m in msgs {
                for out in answer(&m) {
                    if theirs.write_all(&out.encode()).is_err() {
                        return seen;
                    }
                }
                seen.push(m);
            }
        }
    });
    (Client::from_stream(ours).expect("client"), handle)
}

fn ok(req: &Message) -> Message {
    Message::reply(&req.header, b"OK\0".to_vec())
}

fn err(req: &Message, e: XsError) -> Message {
    Message::error_reply(&req.header, e)
}

#[test]
fn events_before_a_reply_are_queued_in_order() {
    let (mut c, h) = fake_server(|m| match m.kind() {
        Ok(MsgType::Watch) => vec![ok(m), Message::watch_event(b"/a", b"t1")],
        Ok(MsgType::Read) => vec![
            Message::watch_event(b"/a/x", b"t1"),
            Message::watch_event(b"/a/y", b"t1"),
            Message::reply(&m.header, b"value".to_vec()),
        ],
        _ => vec![err(m, XsError::Enosys)],
    });
    c.watch("/a", "t1").expect("watch");
    assert_eq!(c.read("/a/x").expect("read"), b"value");
    let got: Vec<String> = (0..3)
        .map(|_| c.next_event().expect("event").path)
        .collect();
    assert_eq!(got, ["/a", "/a/x", "/a/y"]);
    assert_eq!(c.try_next_event().expect("no error"), None);
    drop(c);
    let seen = h.join().expect("server");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].payload, b"/a\0t1\0");
    assert_eq!(seen[1].payload, b"/a/x\0");
    // Request ids differ per request.
    assert_ne!(seen[0].header.req_id, seen[1].header.req_id);
}

#[test]
fn error_replies_carry_the_server_string() {
    let (mut c, _h) = fake_server(|m| match m.kind() {
        Ok(MsgType::Read) => vec![err(m, XsError::Enoent)],
        Ok(MsgType::Write) => vec![err(m, XsError::Eacces)],
        _ => vec![Message::new(
            MsgType::Error,
            m.header.req_id,
            0,
            b"EWEIRD\0".to_vec(),
        )],
    });
    let e = c.read("/missing").expect_err("ENOENT");
    assert!(e.is_enoent());
    assert_eq!(e.to_string(), "READ /missing: ENOENT");
    assert_eq!(c.try_read("/missing").expect("maps to None"), None);
    let e = c.write("/ro", b"v").expect_err("EACCES");
    assert_eq!(e.xs_error(), Some(XsError::Eacces));
    match c.mkdir("/x").expect_err("unknown") {
        ClientError::UnknownXsError { error, .. } => assert_eq!(error, "EWEIRD"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn write_payload_is_path_nul_value() {
    let (mut c, h) = fake_server(|m| vec![ok(m)]);
    c.write("/p", b"v\0x").expect("write");
    assert!(matches!(
        c.write("/bad\0path", b""),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        c.write("/big", &vec![b'x'; XENSTORE_PAYLOAD_MAX]),
        Err(ClientError::InvalidArgument(_))
    ));
    drop(c);
    let seen = h.join().expect("server");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].payload, b"/p\0v\0x");
    assert_eq!(seen[0].header.msg_type, MsgType::Write as u32);
}

#[test]
fn mismatched_reply_id_is_reported() {
    let (mut c, _h) = fake_server(|m| {
        let mut r = ok(m);
        r.header.req_id = r.header.req_id.wrapping_add(7);
        vec![r]
    });
    assert!(matches!(c.mkdir("/a"), Err(ClientError::BadReply { .. })));
}

/// Serves DIRECTORY with E2BIG and DIRECTORY_PART in pieces of `piece` names.
fn directory_server(names: Vec<String>, piece: usize, bump_gen_once: bool) -> Client {
    let mut bumped = !bump_gen_once;
    let (c, _h) = fake_server(move |m| match m.kind() {
        Ok(MsgType::Directory) => vec![err(m, XsError::E2big)],
        Ok(MsgType::DirectoryPart) => {
            let a = wire::split_args(&m.payload);
            let off: usize = std::str::from_utf8(a[1])
                .expect("utf8")
                .parse()
                .expect("num");
            let all = wire::join_args(&names);
            let mut gen = "7";
            if off > 0 && !bumped {
                bumped = true;
                gen = "8";
            }
            let mut payload = format!("{gen}\0").into_bytes();
            if off >= all.len() {
                payload.push(0);
            } else {
                // Up to `piece` names from byte offset `off`.
                let rest = &all[off..];
                let mut end = 0;
                for _ in 0..piece {
                    match rest[end..].iter().position(|b| *b == 0) {
                        Some(p) => end += p + 1,
                        None => break,
                    }
                    if end == rest.len() {
                        break;
                    }
                }
                payload.extend_from_slice(&rest[..end]);
                if off + end == all.len() {
                    payload.push(0);
                }
            }
            vec![Message::reply(&m.header, payload)]
        }
        _ => vec![err(m, XsError::Enosys)],
    });
    c
}

#[test]
fn directory_falls_back_to_directory_part() {
    let names: Vec<String> = (0..50).map(|i| format!("child{i}")).collect();
    let mut c = directory_server(names.clone(), 7, false);
    assert_eq!(c.directory("/big").expect("dir"), names);
}

#[test]
fn directory_raw_gives_the_names_with_their_nuls() {
    let names: Vec<String> = (0..50).map(|i| format!("child{i}")).collect();
    let expect: Vec<u8> = names.iter().flat_map(|n| n.bytes().chain([0])).collect();
    let mut c = directory_server(names.clone(), 7, false);
    assert_eq!(c.directory_raw("/big").expect("dir"), expect);
    let mut c = directory_server(Vec::new(), 3, false);
    assert_eq!(c.directory_raw("/empty").expect("dir"), Vec::<u8>::new());
}

#[test]
fn directory_part_restarts_when_generation_changes() {
    let names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    let mut c = directory_server(names.clone(), 3, true);
    assert_eq!(c.directory("/big").expect("dir"), names);
}

#[test]
fn directory_part_of_empty_directory() {
    let mut c = directory_server(Vec::new(), 3, false);
    assert_eq!(c.directory("/empty").expect("dir"), Vec::<String>::new());
}

#[test]
fn transaction_retries_on_eagain_then_commits() {
    let mut ends = 0;
    let (mut c, h) = fake_server(move |m| match m.kind() {
        Ok(MsgType::TransactionStart) => vec![Message::reply(&m.header, b"42\0".to_vec())],
        Ok(MsgType::TransactionEnd) => {
            ends += 1;
            if ends < 3 {
                vec![err(m, XsError::Eagain)]
            } else {
                vec![ok(m)]
            }
        }
        _ => vec![Message::reply(&m.header, b"5".to_vec())],
    });
    let mut runs = 0;
    let v = c
        .transaction(|tx| {
            runs += 1;
            assert_eq!(tx.id(), TxId(42));
            let n: u32 = tx.read_string("/n")?.parse().unwrap_or(0);
            tx.write("/n", (n + 1).to_string().as_bytes())?;
            Ok::<_, ClientError>(n + 1)
        })
        .expect("commits on the third attempt");
    assert_eq!((v, runs), (6, 3));
    drop(c);
    let seen = h.join().expect("server");
    // Reads and writes inside carry the transaction id.
    assert!(seen
        .iter()
        .filter(|m| m.kind() == Ok(MsgType::Write))
        .all(|m| m.header.tx_id == 42));
    let commits: Vec<&[u8]> = seen
        .iter()
        .filter(|m| m.kind() == Ok(MsgType::TransactionEnd))
        .map(|m| m.payload.as_slice())
        .collect();
    assert_eq!(commits, [b"T\0"; 3]);
}

#[test]
fn transaction_gives_up_and_aborts_on_body_error() {
    let (mut c, h) = fake_server(|m| match m.kind() {
        Ok(MsgType::TransactionStart) => vec![Message::reply(&m.header, b"1\0".to_vec())],
        Ok(MsgType::TransactionEnd) if m.payload == b"T\0" => vec![err(m, XsError::Eagain)],
        Ok(MsgType::Read) => vec![err(m, XsError::Enoent)],
        _ => vec![ok(m)],
    });
    let r: Result<(), ClientError> = c.transaction(|_tx| Ok(()));
    assert!(matches!(r, Err(ClientError::TooManyRetries(n)) if n == MAX_TRANSACTION_ATTEMPTS));
    let r: Result<Vec<u8>, ClientError> = c.transaction(|tx| tx.read("/gone"));
    assert!(r.expect_err("body error").is_enoent());
    // Dropping an unfinished transaction aborts it.
    {
        let _tx = c.transaction_start().expect("start");
    }
    drop(c);
    let seen = h.join().expect("server");
    let ends: Vec<&[u8]> = seen
        .iter()
        .filter(|m| m.kind() == Ok(MsgType::TransactionEnd))
        .map(|m| m.payload.as_slice())
        .collect();
    assert_eq!(ends.len(), MAX_TRANSACTION_ATTEMPTS as usize + 2);
    assert_eq!(ends[ends.len() - 1], b"F\0");
    assert_eq!(ends[ends.len() - 2], b"F\0");
}

#[test]
fn closed_connection_and_timeout_are_errors() {
    let (mut c, h) = fake_server(|_| Vec::new());
    c.set_timeout(Some(Duration::from_millis(50)));
    assert!(matches!(
        c.read("/a"),
        Err(ClientError::Timeout(MsgType::Read))
    ));
    assert_eq!(
        c.next_event_timeout(Duration::from_millis(20))
            .expect("no error"),
        None
    );
    let (ours, theirs) = UnixStream::pair().expect("pair");
    drop(theirs);
    let mut c2 = Client::from_stream(ours).expect("client");
    assert!(matches!(
        c2.read("/a"),
        Err(ClientError::Closed) | Err(ClientError::Io(_))
    ));
    drop(c);
    h.join().expect("server");
}

#[test]
fn domain_requests_encode_and_decode() {
    let (mut c, h) = fake_server(|m| match m.kind() {
        Ok(MsgType::GetDomainPath) => {
            vec![Message::reply(&m.header, b"/local/domain/3\0".to_vec())]
        }
        Ok(MsgType::IsDomainIntroduced) => vec![Message::reply(&m.header, b"T\0".to_vec())],
        Ok(MsgType::GetPerms) => vec![Message::reply(&m.header, b"b0\0r3\0".to_vec())],
        Ok(MsgType::Control) => vec![Message::reply(&m.header, b"help text\0".to_vec())],
        _ => vec![ok(m)],
    });
    assert_eq!(c.get_domain_path(3).expect("path"), "/local/domain/3");
    assert!(c.is_introduced(3).expect("introduced"));
    c.introduce(3, 0x39001, 7).expect("introduce");
    c.set_target(4, 3).expect("set target");
    c.release(3).expect("release");
    c.resume(3).expect("resume");
    c.reset_watches().expect("reset");
    assert_eq!(
        c.get_perms("/p").expect("perms"),
        [
            Perm::new(0, PermAccess::Both),
            Perm::new(3, PermAccess::Read)
        ]
    );
    c.set_perms(
        "/p",
        &[
            Perm::new(3, PermAccess::None),
            Perm::new(0, PermAccess::Read),
        ],
    )
    .expect("set perms");
    assert_eq!(c.control("help", &[]).expect("control"), b"help text");
    drop(c);
    let seen = h.join().expect("server");
    let payloads: Vec<(u32, &[u8])> = seen
        .iter()
        .map(|m| (m.header.msg_type, m.payload.as_slice()))
        .collect();
    assert_eq!(
        payloads,
        [
            (MsgType::GetDomainPath as u32, &b"3\0"[..]),
            (MsgType::IsDomainIntroduced as u32, b"3\0"),
            (MsgType::Introduce as u32, b"3\x00233473\x007\x00"),
            (MsgType::SetTarget as u32, b"4\x003\x00"),
            (MsgType::Release as u32, b"3\0"),
            (MsgType::Resume as u32, b"3\0"),
            (MsgType::ResetWatches as u32, b"\0"),
            (MsgType::GetPerms as u32, b"/p\0"),
            (MsgType::SetPerms as u32, b"/p\0n3\0r0\0"),
            (MsgType::Control as u32, b"help\0"),
        ]
    );
}

#[test]
fn mio_source_reports_events() {
    let (ours, mut theirs) = UnixStream::pair().expect("pair");
    let mut c = Client::from_stream(ours).expect("client");
    let mut poll = mio::Poll::new().expect("poll");
    let token = mio::Token(7);
    poll.registry()
        .register(&mut c, token, mio::Interest::READABLE)
        .expect("register");
    theirs
        .write_all(&Message::watch_event(b"/w", b"tok").encode())
        .expect("send");
    let mut events = mio::Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(5)))
        .expect("poll");
    assert!(events.iter().any(|e| e.token() == token && e.is_readable()));
    let ev = c.try_next_event().expect("read").expect("an event");
    assert_eq!(
        ev,
        WatchEvent {
            path: "/w".into(),
            token: "tok".into()
        }
    );
    assert_eq!(c.try_next_event().expect("read"), None);
}

#[test]
fn candidate_paths_follow_libxenstore() {
    assert_eq!(
        candidate_paths(Some("/x/s".into()), Some("/r".into())),
        [PathBuf::from("/x/s")]
    );
    assert_eq!(
        candidate_paths(None, Some("/r".into()))[0],
        PathBuf::from("/r/socket")
    );
    let d = candidate_paths(None, None);
    assert_eq!(d[0], PathBuf::from("/run/xenstored/socket"));
    assert_eq!(d[1], PathBuf::from("/dev/xen/xenbus"));
}

#[test]
fn unwatch_drops_queued_events_of_that_watch() {
    assert!(under("/a/b", "/a"));
    assert!(under("/a", "/a"));
    assert!(!under("/ab", "/a"));
    assert!(under("/x", "/"));
}

#[test]
fn replies_longer_than_4096_are_accepted_from_the_daemon() {
    // oxenstored answers a big DIRECTORY in one reply over its socket.
    let names: Vec<String> = (0..2000).map(|i| format!("child{i:04}")).collect();
    let all = wire::join_args(&names);
    assert!(all.len() > XENSTORE_PAYLOAD_MAX);
    let (mut c, _h) = fake_server(move |m| vec![Message::reply(&m.header, all.clone())]);
    assert_eq!(c.directory("/big").expect("directory"), names);
}

#[test]
fn absurd_reply_lengths_are_refused() {
    let (ours, mut theirs) = UnixStream::pair().expect("pair");
    let mut c = Client::from_stream(ours).expect("client");
    let h = wire::Header {
        msg_type: MsgType::Read as u32,
        req_id: 1,
        tx_id: 0,
        len: u32::MAX,
    };
    theirs.write_all(&h.encode()).expect("send");
    assert!(matches!(c.read("/x"), Err(ClientError::Wire(_))));
}

#[test]
fn transaction_backoff_grows_within_its_bounds() {
    for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
        let ceiling =
            (TRANSACTION_BACKOFF_FIRST * (1u32 << attempt.min(16))).min(TRANSACTION_BACKOFF_MAX);
        for _ in 0..50 {
            assert!(transaction_backoff(attempt) < ceiling, "attempt {attempt}");
        }
    }
    // Jittered: many draws at a high attempt are not all the same pause.
    let draws: std::collections::HashSet<_> = (0..64).map(|_| transaction_backoff(10)).collect();
    assert!(draws.len() > 32, "only {} distinct pauses", draws.len());
}
