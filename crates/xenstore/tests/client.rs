//! The `xenstore::client` API against real daemons: Debian's C xenstored (the
//! reference) and rxenstored. Each check runs against both.

mod common;

use std::time::Duration;

use common::{peer, rxenstored, Daemon, PeerKind};
use xenstore::client::{Client, ClientError, Perm, PermAccess, WatchEvent, XsOps};
use xenstore::wire::XsError;

/// How long to wait for a watch event that must come.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for one that must not.
const NO_EVENT_WAIT: Duration = Duration::from_millis(200);

macro_rules! against_both {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                #[test]
                fn c_xenstored() {
                    if let Some(d) = super::peer(super::PeerKind::C) {
                        super::$check(&d);
                    }
                }
                #[test]
                fn rxenstored() {
                    super::$check(&super::rxenstored(&[]));
                }
            }
        )*
    };
}

against_both!(
    read_write_mkdir_rm,
    directories_large_and_small,
    permissions_round_trip,
    watches_fire_and_interleave,
    transactions_conflict_and_retry,
    domain_requests,
    control_and_errors,
);

fn ev(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}

fn read_write_mkdir_rm(d: &Daemon) {
    let mut c = d.client();
    c.write("/t/a/b", b"hello").expect("write creates parents");
    assert_eq!(c.read("/t/a/b").expect("read"), b"hello");
    assert_eq!(c.read("/t/a").expect("implicit parent"), b"");
    c.write("/t/a/b", b"bin\0ary\xff").expect("overwrite");
    assert_eq!(c.read("/t/a/b").expect("read"), b"bin\0ary\xff");
    c.mkdir("/t/dir").expect("mkdir");
    c.mkdir("/t/dir")
        .expect("mkdir of an existing node is fine");
    assert!(c.exists("/t/dir").expect("exists"));
    c.rm("/t/a").expect("rm subtree");
    assert!(!c.exists("/t/a/b").expect("exists"));
    assert!(c.read("/t/a").expect_err("gone").is_enoent());
    assert_eq!(c.try_read("/t/nope").expect("no error"), None);
    c.write("/t/empty", b"").expect("empty value");
    assert_eq!(c.read_string("/t/empty").expect("read"), "");
    let big = vec![b'x'; 2000];
    c.write("/t/big", &big).expect("2000-byte value");
    assert_eq!(c.read("/t/big").expect("read"), big);
    c.rm("/t").expect("cleanup");
}

fn directories_large_and_small(d: &Daemon) {
    let mut c = d.client();
    for i in 0..10 {
        c.write(&format!("/dir10/k{i}"), b"v").expect("write");
    }
    let mut names = c.directory("/dir10").expect("directory");
    names.sort();
    let want: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    assert_eq!(names, want);
    assert!(c.directory("/dir10/k0").expect("leaf").is_empty());
    // 300 children of 30 characters: about 9 KB, more than one reply can carry.
    let mut want = Vec::new();
    c.transaction(|tx| {
        for i in 0..300 {
            tx.mkdir(&format!("/bigdir/child-with-a-long-name-{i:05}"))?;
        }
        Ok::<_, ClientError>(())
    })
    .expect("populate");
    for i in 0..300 {
        want.push(format!("child-with-a-long-name-{i:05}"));
    }
    let mut got = c
        .directory("/bigdir")
        .expect("directory via DIRECTORY_PART");
    got.sort();
    assert_eq!(got, want);
    let mut parts = c.directory_part("/bigdir").expect("DIRECTORY_PART");
    parts.sort();
    assert_eq!(parts, want);
    assert!(c.directory("/nonexistent").expect_err("ENOENT").is_enoent());
    c.rm("/bigdir").expect("cleanup");
    c.rm("/dir10").expect("cleanup");
}

fn permissions_round_trip(d: &Daemon) {
    let mut c = d.client();
    c.write("/p/node", b"v").expect("write");
    let perms = c.get_perms("/p/node").expect("get perms");
    assert_eq!(perms, [Perm::new(0, PermAccess::None)]);
    let want = [
        Perm::new(5, PermAccess::Read),
        Perm::new(0, PermAccess::Both),
        Perm::new(7, PermAccess::Write),
    ];
    c.set_perms("/p/node", &want).expect("set perms");
    assert_eq!(c.get_perms("/p/node").expect("get perms"), want);
    // Children created later inherit the parent's list.
    c.write("/p/node/child", b"x").expect("write child");
    assert_eq!(c.get_perms("/p/node/child").expect("get perms"), want);
    let e = c
        .set_perms("/p/missing", &[Perm::new(0, PermAccess::None)])
        .expect_err("ENOENT");
    assert!(e.is_enoent(), "{e}");
    c.rm("/p").expect("cleanup");
}

fn watches_fire_and_interleave(d: &Daemon) {
    let mut w = d.client();
    let mut other = d.client();
    w.watch("/wt", "tok").expect("watch");
    assert_eq!(w.next_event().expect("initial event"), ev("/wt", "tok"));
    other.write("/wt/a", b"1").expect("write");
    // A request made while the event is in flight: the event is queued.
    w.write("/unrelated", b"x").expect("write");
    assert_eq!(
        w.next_event_timeout(EVENT_WAIT).expect("ok"),
        Some(ev("/wt/a", "tok"))
    );
    other.write("/wt/a/deep", b"2").expect("write");
    assert_eq!(
        w.next_event_timeout(EVENT_WAIT).expect("ok"),
        Some(ev("/wt/a/deep", "tok"))
    );
    other
        .write("/wtx", b"no")
        .expect("sibling with a common prefix");
    assert_eq!(w.next_event_timeout(NO_EVENT_WAIT).expect("ok"), None);
    // Removing an ancestor reports the watched path.
    w.watch("/wt/a/deep", "deep").expect("watch");
    assert_eq!(w.next_event().expect("initial"), ev("/wt/a/deep", "deep"));
    other.rm("/wt").expect("rm");
    let mut got = vec![
        w.next_event_timeout(EVENT_WAIT)
            .expect("ok")
            .expect("event"),
        w.next_event_timeout(EVENT_WAIT)
            .expect("ok")
            .expect("event"),
    ];
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got, [ev("/wt/a/deep", "deep"), ev("/wt", "tok")]);
    // Duplicate and unknown watches.
    let e = w.watch("/wt", "tok").expect_err("EEXIST");
    assert_eq!(e.xs_error(), Some(XsError::Eexist));
    let e = w.unwatch("/never", "tok").expect_err("ENOENT");
    assert!(e.is_enoent());
    w.unwatch("/wt", "tok").expect("unwatch");
    other.write("/wt/again", b"1").expect("write");
    let e = w.next_event_timeout(NO_EVENT_WAIT).expect("ok");
    assert!(
        e.iter().all(|e| e.token == "deep"),
        "unwatched token fired: {e:?}"
    );
    w.reset_watches().expect("reset");
    other.write("/wt/a/deep", b"1").expect("write");
    assert_eq!(w.next_event_timeout(NO_EVENT_WAIT).expect("ok"), None);
    other.rm("/wt").expect("cleanup");
    other.rm("/unrelated").expect("cleanup");
    other.rm("/wtx").expect("cleanup");
}

fn transactions_conflict_and_retry(d: &Daemon) {
    let mut a = d.client();
    let mut b = d.client();
    a.write("/tx/k", b"0").expect("write");
    a.write("/tx/other", b"0").expect("write");
    {
        let mut tx = a.transaction_start().expect("start");
        assert_eq!(tx.read("/tx/k").expect("read in tx"), b"0");
        tx.write("/tx/k", b"1").expect("write in tx");
        // Not visible outside before commit.
        assert_eq!(b.read("/tx/k").expect("read"), b"0");
        b.write("/tx/k", b"2").expect("conflicting write");
        let e = tx.commit().expect_err("EAGAIN");
        assert!(e.is_eagain(), "{e}");
    }
    assert_eq!(b.read("/tx/k").expect("read"), b"2");
    {
        let mut tx = a.transaction_start().expect("start");
        tx.write("/tx/k", b"3").expect("write in tx");
        b.write("/tx/unrelated", b"x").expect("unrelated write");
        tx.commit().expect("unrelated writes do not conflict");
    }
    assert_eq!(b.read("/tx/k").expect("read"), b"3");
    {
        let mut tx = a.transaction_start().expect("start");
        tx.write("/tx/k", b"aborted").expect("write in tx");
        tx.abort().expect("abort");
    }
    assert_eq!(b.read("/tx/k").expect("read"), b"3");

    // Four clients incrementing one counter with the retrying helper.
    a.write("/tx/counter", b"0").expect("write");
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let sock = d.socket.clone();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect_socket(&sock).expect("connect");
                for _ in 0..ROUNDS {
                    c.transaction(|tx| {
                        let n: usize = tx.read_string("/tx/counter")?.parse().unwrap_or(0);
                        tx.write("/tx/counter", (n + 1).to_string().as_bytes())
                    })
                    .expect("transaction commits eventually");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(
        a.read_string("/tx/counter").expect("read"),
        (THREADS * ROUNDS).to_string()
    );
    a.rm("/tx").expect("cleanup");
}

fn domain_requests(d: &Daemon) {
    let mut c = d.client();
    assert_eq!(c.get_domain_path(7).expect("path"), "/local/domain/7");
    assert_eq!(c.get_domain_path(0).expect("path"), "/local/domain/0");
    // DOMID_SELF always answers T. (Whether dom0 itself is introduced depends on
    // the dom0 ring, which C's peer fakes and rxenstored does not serve yet.)
    assert!(c.is_introduced(0x7ff0).expect("DOMID_SELF"));
    assert!(!c.is_introduced(9).expect("domain 9 is not introduced yet"));
    c.watch("@introduceDomain", "intro").expect("watch");
    assert_eq!(
        c.next_event().expect("initial"),
        ev("@introduceDomain", "intro")
    );
    c.introduce(9, 0x39001, 5).expect("introduce");
    assert_eq!(
        c.next_event_timeout(EVENT_WAIT).expect("ok"),
        Some(ev("@introduceDomain", "intro"))
    );
    assert!(c.is_introduced(9).expect("introduced now"));
    c.watch("@releaseDomain", "rel").expect("watch");
    assert_eq!(
        c.next_event().expect("initial"),
        ev("@releaseDomain", "rel")
    );
    c.release(9).expect("release");
    assert_eq!(
        c.next_event_timeout(EVENT_WAIT).expect("ok"),
        Some(ev("@releaseDomain", "rel"))
    );
    assert!(!c.is_introduced(9).expect("released"));
    let e = c.release(9).expect_err("releasing an unknown domain");
    assert!(e.xs_error().is_some(), "{e}");
    c.reset_watches().expect("reset");
}

fn control_and_errors(d: &Daemon) {
    let mut c = d.client();
    let e = c.read("relative/but/missing").expect_err("ENOENT");
    assert!(e.is_enoent(), "{e}");
    let e = c.read("/bad path").expect_err("EINVAL");
    assert_eq!(e.xs_error(), Some(XsError::Einval), "{e}");
    let e = c.write("/trailing/", b"x").expect_err("EINVAL");
    assert_eq!(e.xs_error(), Some(XsError::Einval), "{e}");
    let e = c.write("/double//slash", b"x").expect_err("EINVAL");
    assert_eq!(e.xs_error(), Some(XsError::Einval), "{e}");
    let e = c.rm("/").expect_err("removing the root");
    assert!(e.xs_error().is_some(), "{e}");
    // `help` is known to both daemons.
    let help = c.control("help", &[]).expect("control help");
    assert!(!help.is_empty());
    let e = c.control("no-such-command", &[]).expect_err("EINVAL");
    assert_eq!(e.xs_error(), Some(XsError::Einval), "{e}");
}
