//! Unit tests of request processing, driven through `Server::handle` with wire
//! messages, as the I/O layer does.

use super::*;
use crate::wire::{join_args, MsgType};

/// A test driver: sends requests and separates replies from watch events.
struct H {
    s: Server,
    events: BTreeMap<ConnId, Vec<(String, String)>>,
}

type R = Result<Vec<u8>, &'static str>;

impl H {
    fn new() -> H {
        H::with(Config::default())
    }

    fn with(config: Config) -> H {
        H {
            s: Server::new(config),
            events: BTreeMap::new(),
        }
    }

    fn sock(&mut self) -> ConnId {
        self.s.connect(ConnKind::Socket)
    }

    /// An introduced unprivileged domain's connection.
    fn dom(&mut self, admin: ConnId, domid: u32) -> ConnId {
        let r = self.call(
            admin,
            MsgType::Introduce,
            0,
            &join_args(&[domid.to_string().as_str(), "1234", "5"]),
        );
        assert_eq!(r, Ok(b"OK\0".to_vec()));
        let actions = self.s.take_actions();
        let conn = actions
            .iter()
            .find_map(|a| match a {
                Action::Introduced { domid: d, conn, .. } if *d == domid => Some(*conn),
                _ => None,
            })
            .expect("introduced");
        conn
    }

    fn drain(&mut self, c: ConnId) -> Vec<Message> {
        let mut replies = Vec::new();
        while let Some(m) = self.s.pop_output(c) {
            if m.header.msg_type == MsgType::WatchEvent as u32 {
                let parts = crate::wire::split_args(&m.payload);
                let ev = (
                    String::from_utf8_lossy(parts[0]).into_owned(),
                    String::from_utf8_lossy(parts[1]).into_owned(),
                );
                self.events.entry(c).or_default().push(ev);
            } else {
                replies.push(m);
            }
        }
        replies
    }

    fn call_raw(&mut self, c: ConnId, t: u32, tx: u32, payload: &[u8]) -> R {
        let msg = Message {
            header: Header {
                msg_type: t,
                req_id: 42,
                tx_id: tx,
                len: payload.len() as u32,
            },
            payload: payload.to_vec(),
        };
        self.s.handle(c, msg);
        // Deliver everyone's events.
        for id in self.s.conn_ids() {
            if id != c {
                let stray = self.drain(id);
                assert!(stray.is_empty(), "reply on another connection");
            }
        }
        let mut replies = self.drain(c);
        assert_eq!(replies.len(), 1, "exactly one reply");
        let r = replies.remove(0);
        assert_eq!(r.header.req_id, 42);
        assert_eq!(r.header.tx_id, tx);
        if r.header.msg_type == MsgType::Error as u32 {
            let e = XsError::parse(&r.payload).expect("known error");
            Err(e.as_str())
        } else {
            assert_eq!(r.header.msg_type, t);
            Ok(r.payload)
        }
    }

    fn call(&mut self, c: ConnId, t: MsgType, tx: u32, payload: &[u8]) -> R {
        self.call_raw(c, t as u32, tx, payload)
    }

    fn read(&mut self, c: ConnId, p: &str) -> R {
        self.call(c, MsgType::Read, 0, &join_args(&[p]))
    }

    fn write(&mut self, c: ConnId, p: &str, v: &str) -> R {
        let mut payload = join_args(&[p]);
        payload.extend_from_slice(v.as_bytes());
        self.call(c, MsgType::Write, 0, &payload)
    }

    fn twrite(&mut self, c: ConnId, tx: u32, p: &str, v: &str) -> R {
        let mut payload = join_args(&[p]);
        payload.extend_from_slice(v.as_bytes());
        self.call(c, MsgType::Write, tx, &payload)
    }

    fn one(&mut self, c: ConnId, t: MsgType, arg: &str) -> R {
        self.call(c, t, 0, &join_args(&[arg]))
    }

    fn set_perms(&mut self, c: ConnId, p: &str, perms: &[&str]) -> R {
        let mut args = vec![p];
        args.extend_from_slice(perms);
        self.call(c, MsgType::SetPerms, 0, &join_args(&args))
    }

    fn watch(&mut self, c: ConnId, p: &str, tok: &str) -> R {
        self.call(c, MsgType::Watch, 0, &join_args(&[p, tok]))
    }

    fn start(&mut self, c: ConnId) -> u32 {
        let r = self
            .call(c, MsgType::TransactionStart, 0, b"\0")
            .expect("start");
        std::str::from_utf8(&r[..r.len() - 1])
            .expect("utf8")
            .parse()
            .expect("id")
    }

    fn end(&mut self, c: ConnId, tx: u32, commit: bool) -> R {
        self.call(
            c,
            MsgType::TransactionEnd,
            tx,
            if commit { b"T\0" } else { b"F\0" },
        )
    }

    fn take_events(&mut self, c: ConnId) -> Vec<(String, String)> {
        self.drain(c);
        self.events.remove(&c).unwrap_or_default()
    }

    fn check(&self) {
        let p = self.s.store().check();
        assert!(p.is_empty(), "store inconsistent: {p:?}");
    }
}

fn ok() -> R {
    Ok(b"OK\0".to_vec())
}

fn v(s: &str) -> R {
    Ok(s.as_bytes().to_vec())
}

#[test]
fn initial_tree() {
    let mut h = H::new();
    let c = h.sock();
    assert_eq!(h.one(c, MsgType::Directory, "/"), v("tool\0"));
    assert_eq!(h.one(c, MsgType::Directory, "/tool"), v("xenstored\0"));
    assert_eq!(h.read(c, "/tool/xenstored"), v(""));
    assert_eq!(h.one(c, MsgType::GetPerms, "/"), v("n0\0"));
    h.check();
}

#[test]
fn write_read_and_implicit_parents() {
    let mut h = H::new();
    let c = h.sock();
    assert_eq!(h.write(c, "/a/b/c", "hello"), ok());
    assert_eq!(h.read(c, "/a/b/c"), v("hello"));
    assert_eq!(h.read(c, "/a/b"), v(""));
    assert_eq!(h.one(c, MsgType::Directory, "/a"), v("b\0"));
    assert_eq!(h.one(c, MsgType::Directory, "/"), v("tool\0a\0"));
    // Binary values with NULs survive.
    let mut payload = join_args(&["/bin"]);
    payload.extend_from_slice(b"x\0y\0");
    assert_eq!(h.call(c, MsgType::Write, 0, &payload), ok());
    assert_eq!(h.read(c, "/bin"), v("x\0y\0"));
    // Empty value.
    assert_eq!(h.call(c, MsgType::Write, 0, b"/e\0"), ok());
    assert_eq!(h.read(c, "/e"), v(""));
    assert_eq!(h.read(c, "/missing"), Err("ENOENT"));
    assert_eq!(h.one(c, MsgType::Mkdir, "/m/n"), ok());
    assert_eq!(h.one(c, MsgType::Mkdir, "/m/n"), ok());
    assert_eq!(h.read(c, "/m/n"), v(""));
    // Relative paths are under /local/domain/0 for sockets.
    assert_eq!(h.write(c, "rel", "1"), ok());
    assert_eq!(h.read(c, "/local/domain/0/rel"), v("1"));
    h.check();
}

#[test]
fn bad_paths_and_payloads() {
    let mut h = H::new();
    let c = h.sock();
    for p in ["/a//b", "/a/", "/a b", "/a.b", "", "@introduceDomain"] {
        assert_eq!(h.read(c, p), Err("EINVAL"), "{p}");
        assert_eq!(h.write(c, p, "x"), Err("EINVAL"), "{p}");
    }
    // READ must be exactly one NUL-terminated string.
    assert_eq!(h.call(c, MsgType::Read, 0, b"/tool"), Err("EINVAL"));
    assert_eq!(h.call(c, MsgType::Read, 0, b"/tool\0\0"), Err("EINVAL"));
    assert_eq!(h.call(c, MsgType::Read, 0, b""), Err("EINVAL"));
    assert_eq!(h.call(c, MsgType::Write, 0, b"/nonul"), Err("EINVAL"));
    let long = format!("/{}", "a".repeat(crate::wire::XENSTORE_REL_PATH_MAX));
    assert_eq!(h.write(c, &long, "x"), Err("EINVAL"));
    // Unknown and server-only types.
    assert_eq!(h.call_raw(c, 20, 0, b""), Err("ENOSYS"));
    assert_eq!(h.call_raw(c, 999, 0, b""), Err("ENOSYS"));
    assert_eq!(h.call(c, MsgType::WatchEvent, 0, b""), Err("ENOSYS"));
    assert_eq!(h.call(c, MsgType::GetQuota, 0, b""), Err("ENOSYS"));
    // Unknown transaction.
    assert_eq!(h.call(c, MsgType::Read, 77, b"/\0"), Err("ENOENT"));
    h.check();
}

#[test]
fn rm_semantics() {
    let mut h = H::new();
    let c = h.sock();
    h.write(c, "/a/b/c", "1").expect("w");
    h.write(c, "/a/b/d", "2").expect("w");
    h.write(c, "/a/x", "3").expect("w");
    assert_eq!(h.one(c, MsgType::Rm, "/a/b"), ok());
    assert_eq!(h.read(c, "/a/b/c"), Err("ENOENT"));
    assert_eq!(h.one(c, MsgType::Directory, "/a"), v("x\0"));
    // Missing node with existing parent: fine. Missing parent: ENOENT.
    assert_eq!(h.one(c, MsgType::Rm, "/a/nothere"), ok());
    assert_eq!(h.one(c, MsgType::Rm, "/nope/nothere"), Err("ENOENT"));
    assert_eq!(h.one(c, MsgType::Rm, "/"), Err("EINVAL"));
    assert_eq!(h.one(c, MsgType::Rm, "/a"), ok());
    assert_eq!(h.one(c, MsgType::Directory, "/"), v("tool\0"));
    assert_eq!(h.s.store().len(), 3);
    h.check();
}

#[test]
fn permissions() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 5);
    h.write(c, "/secret/x", "s").expect("w");
    assert_eq!(h.read(d, "/secret/x"), Err("EACCES"));
    // Existence is hidden too: a missing node under an unreadable parent.
    assert_eq!(h.read(d, "/secret/none"), Err("EACCES"));
    assert_eq!(h.write(d, "/secret/x", "t"), Err("EACCES"));
    assert_eq!(h.set_perms(c, "/secret/x", &["n0", "r5"]), ok());
    assert_eq!(h.read(d, "/secret/x"), v("s"));
    assert_eq!(h.write(d, "/secret/x", "t"), Err("EACCES"));
    assert_eq!(h.one(c, MsgType::GetPerms, "/secret/x"), v("n0\0r5\0"));
    // Missing node whose parent the caller can read (but not write): ENOENT
    // for read, EACCES for write.
    h.set_perms(c, "/secret", &["n0", "r5"]).expect("sp");
    assert_eq!(h.read(d, "/secret/none"), Err("ENOENT"));
    assert_eq!(h.write(d, "/secret/none", "v"), Err("EACCES"));
    // The domain's home: created by dom0, handed over.
    h.write(c, "/local/domain/5/x", "1").expect("w");
    h.set_perms(c, "/local/domain/5", &["n5"]).expect("sp");
    assert_eq!(h.read(d, "/local/domain/5/x"), Err("EACCES"));
    assert_eq!(h.write(d, "new/deep", "v"), ok());
    assert_eq!(
        h.one(c, MsgType::GetPerms, "/local/domain/5/new/deep"),
        v("n5\0")
    );
    assert_eq!(h.read(d, "new/deep"), v("v"));
    // Only privileged callers change owners.
    assert_eq!(h.set_perms(d, "new", &["n6"]), Err("EPERM"));
    assert_eq!(h.set_perms(d, "new", &["n5", "r6"]), ok());
    assert_eq!(h.set_perms(d, "/secret/x", &["n5"]), Err("EACCES"));
    // Malformed permission strings.
    assert_eq!(h.set_perms(c, "/secret/x", &["q1"]), Err("EINVAL"));
    assert_eq!(h.set_perms(c, "/secret/x", &["r"]), Err("EINVAL"));
    assert_eq!(
        h.call(c, MsgType::SetPerms, 0, b"/secret/x\0"),
        Err("EINVAL")
    );
    // Too many entries for an unprivileged caller.
    assert_eq!(
        h.set_perms(d, "new", &["n5", "r1", "r2", "r3", "r4", "r6"]),
        Err("ENOSPC")
    );
    // Privileged-only requests.
    assert_eq!(h.one(d, MsgType::IsDomainIntroduced, "5"), Err("EACCES"));
    assert_eq!(h.one(d, MsgType::Control, "help"), Err("EACCES"));
    h.check();
}

#[test]
fn target_domain_acts_with_target_rights() {
    let mut h = H::new();
    let c = h.sock();
    let d5 = h.dom(c, 5);
    let _d6 = h.dom(c, 6);
    h.write(c, "/t", "v").expect("w");
    h.set_perms(c, "/t", &["n6"]).expect("sp");
    assert_eq!(h.read(d5, "/t"), Err("EACCES"));
    assert_eq!(
        h.call(c, MsgType::SetTarget, 0, &join_args(&["5", "6"])),
        ok()
    );
    assert_eq!(h.read(d5, "/t"), v("v"));
    assert_eq!(
        h.call(c, MsgType::SetTarget, 0, &join_args(&["5", "9"])),
        Err("ENOENT")
    );
}

#[test]
fn watches_fire() {
    let mut h = H::new();
    let c = h.sock();
    let w = h.sock();
    assert_eq!(h.watch(w, "/a", "tok"), ok());
    assert_eq!(h.take_events(w), vec![("/a".into(), "tok".into())]);
    assert_eq!(h.watch(w, "/a", "tok"), Err("EEXIST"));
    assert_eq!(h.watch(w, "/a", "tok2"), ok());
    h.take_events(w);
    h.call(w, MsgType::Unwatch, 0, &join_args(&["/a", "tok2"]))
        .expect("unwatch");
    assert_eq!(
        h.call(w, MsgType::Unwatch, 0, &join_args(&["/a", "tok2"])),
        Err("ENOENT")
    );
    h.write(c, "/a/b/c", "1").expect("w");
    assert_eq!(h.take_events(w), vec![("/a/b/c".into(), "tok".into())]);
    h.write(c, "/ab", "1").expect("w");
    assert!(h.take_events(w).is_empty());
    h.set_perms(c, "/a/b", &["n0", "r3"]).expect("sp");
    assert_eq!(h.take_events(w), vec![("/a/b".into(), "tok".into())]);
    // Watch below the removed node: reported with its own path when it exists.
    assert_eq!(h.watch(w, "/a/b/c", "deep"), ok());
    assert_eq!(h.watch(w, "/a/b/zz", "none"), ok());
    h.take_events(w);
    h.one(c, MsgType::Rm, "/a").expect("rm");
    let ev = h.take_events(w);
    assert!(ev.contains(&("/a/b/c".into(), "deep".into())), "{ev:?}");
    assert!(ev.contains(&("/a".into(), "tok".into())), "{ev:?}");
    assert!(!ev.iter().any(|e| e.1 == "none"), "{ev:?}");
    // Watch on / sees everything.
    h.watch(w, "/", "root").expect("watch");
    h.take_events(w);
    h.write(c, "/q", "1").expect("w");
    assert_eq!(h.take_events(w), vec![("/q".into(), "root".into())]);
    // Bad watch arguments.
    assert_eq!(h.call(w, MsgType::Watch, 0, b"/a\0"), Err("EINVAL"));
    assert_eq!(h.watch(w, "/bad//path", "t"), Err("EINVAL"));
    assert_eq!(h.call(w, MsgType::ResetWatches, 0, b""), ok());
    h.write(c, "/q", "2").expect("w");
    assert!(h.take_events(w).is_empty());
}

#[test]
fn watch_events_filtered_by_permission_and_relative() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 5);
    h.write(c, "/local/domain/5/dev", "").expect("w");
    h.set_perms(c, "/local/domain/5", &["n5"]).expect("sp");
    h.set_perms(c, "/local/domain/5/dev", &["n5"]).expect("sp");
    assert_eq!(h.watch(d, "dev", "rel"), ok());
    assert_eq!(h.take_events(d), vec![("dev".into(), "rel".into())]);
    assert_eq!(h.watch(d, "/hidden", "abs"), ok());
    h.take_events(d);
    h.write(c, "/local/domain/5/dev/x", "1").expect("w");
    assert_eq!(h.take_events(d), vec![("dev/x".into(), "rel".into())]);
    // dom0-only node: no event for the domain.
    h.write(c, "/hidden/y", "1").expect("w");
    assert!(h.take_events(d).is_empty());
    // Readable parent is enough.
    h.set_perms(c, "/hidden", &["n0", "r5"]).expect("sp");
    h.take_events(d);
    h.write(c, "/hidden/z", "1").expect("w");
    assert_eq!(h.take_events(d), vec![("/hidden/z".into(), "abs".into())]);
    // Unwatch with a relative path.
    assert_eq!(
        h.call(d, MsgType::Unwatch, 0, &join_args(&["dev", "rel"])),
        ok()
    );
}

#[test]
fn special_watches() {
    let mut h = H::new();
    let c = h.sock();
    let w = h.sock();
    h.watch(w, "@introduceDomain", "i").expect("watch");
    h.watch(w, "@releaseDomain", "r").expect("watch");
    assert_eq!(h.take_events(w).len(), 2);
    let d = h.dom(c, 9);
    assert_eq!(
        h.take_events(w),
        vec![("@introduceDomain".into(), "i".into())]
    );
    // A guest may not see them by default.
    h.watch(d, "@releaseDomain", "g").expect("watch");
    h.take_events(d);
    h.write(c, "/local/domain/9/data", "x").expect("w");
    h.set_perms(c, "/local/domain/9/data", &["n9"]).expect("sp");
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "9"), v("T\0"));
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "10"), v("F\0"));
    assert_eq!(h.one(c, MsgType::Release, "9"), ok());
    assert_eq!(
        h.take_events(w),
        vec![("@releaseDomain".into(), "r".into())]
    );
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "9"), v("F\0"));
    // Its nodes went with it.
    assert_eq!(h.read(c, "/local/domain/9/data"), Err("ENOENT"));
    assert_eq!(h.read(c, "/local/domain/9"), v(""));
    assert!(matches!(
        h.s.take_actions().as_slice(),
        [Action::Released { domid: 9, .. }]
    ));
    assert_eq!(h.one(c, MsgType::Release, "9"), Err("ENOENT"));
    assert_eq!(h.one(c, MsgType::Release, "0"), Err("EINVAL"));
    assert_eq!(
        h.call(c, MsgType::Introduce, 0, &join_args(&["3", "1"])),
        Err("EINVAL")
    );
    assert_eq!(
        h.call(c, MsgType::Introduce, 0, &join_args(&["3", "1", "0"])),
        Err("EINVAL")
    );
    // Special permissions can grant guests the events.
    assert_eq!(h.set_perms(c, "@releaseDomain", &["n0", "r7"]), ok());
    assert_eq!(h.set_perms(c, "@other", &["n0"]), Err("EINVAL"));
    let d7 = h.dom(c, 7);
    h.watch(d7, "@releaseDomain", "g7").expect("watch");
    assert_eq!(h.take_events(d7).len(), 1);
    let _d8 = h.dom(c, 8);
    h.one(c, MsgType::Release, "8").expect("release");
    assert_eq!(
        h.take_events(d7),
        vec![("@releaseDomain".into(), "g7".into())]
    );
    h.check();
}

#[test]
fn set_perms_with_nonexistent_domains() {
    let mut h = H::new();
    let c = h.sock();
    h.write(c, "/p", "v").expect("w");
    // Owner that is no domain: ENOENT, checked before the path.
    assert_eq!(h.set_perms(c, "/p", &["r32752"]), Err("ENOENT"));
    assert_eq!(h.set_perms(c, "/p", &["b-1", "n5"]), Err("ENOENT"));
    assert_eq!(h.set_perms(c, "/bad//p", &["n99999999999"]), Err("ENOENT"));
    // Other entries naming no domain are kept but ignored.
    assert_eq!(h.set_perms(c, "/p", &["n0", "r32752"]), ok());
    assert_eq!(h.one(c, MsgType::GetPerms, "/p"), v("n0\0r32752\0"));
}

#[test]
fn release_after_set_target_drops_one_reference() {
    let mut h = H::new();
    let c = h.sock();
    let _d5 = h.dom(c, 5);
    let _d6 = h.dom(c, 6);
    h.call(c, MsgType::SetTarget, 0, &join_args(&["5", "6"]))
        .expect("target");
    // The first RELEASE of 6 only drops 5's reference (C talloc_free semantics).
    assert_eq!(h.one(c, MsgType::Release, "6"), ok());
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "6"), v("T\0"));
    assert_eq!(h.one(c, MsgType::Release, "6"), ok());
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "6"), v("F\0"));
    assert_eq!(h.one(c, MsgType::Release, "6"), Err("ENOENT"));
}

#[test]
fn ignored_and_dropped_domain_connections() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 3);
    h.write(c, "/local/domain/3/x", "1").expect("w");
    h.set_perms(c, "/local/domain/3/x", &["n3"]).expect("sp");
    h.watch(d, "x", "t").expect("watch");
    h.take_events(d);
    h.s.ignore_connection(d);
    assert!(!h.s.can_read(d));
    h.s.handle(d, Message::new(MsgType::Read, 1, 0, b"x\0".to_vec()));
    assert_eq!(h.s.queued(d), 0);
    // Still introduced, nodes kept.
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "3"), v("T\0"));
    assert_eq!(h.read(c, "/local/domain/3/x"), v("1"));
    // Losing dom0's ring never removes dom0's nodes.
    let dom0 = h.s.connect(ConnKind::Domain { domid: 0 });
    h.s.disconnect(dom0);
    assert_eq!(h.one(c, MsgType::Directory, "/tool"), v("xenstored\0"));
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "0"), v("T\0"));
    // A guest connection that goes away takes the domain with it.
    h.s.disconnect(d);
    assert_eq!(h.read(c, "/local/domain/3/x"), Err("ENOENT"));
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "3"), v("F\0"));
    h.check();
}

#[test]
fn domain_paths() {
    let mut h = H::new();
    let c = h.sock();
    assert_eq!(
        h.one(c, MsgType::GetDomainPath, "7"),
        v("/local/domain/7\0")
    );
    assert_eq!(
        h.one(c, MsgType::GetDomainPath, "x"),
        v("/local/domain/0\0")
    );
    assert_eq!(h.call(c, MsgType::GetDomainPath, 0, b"7"), Err("EINVAL"));
    assert_eq!(h.one(c, MsgType::IsDomainIntroduced, "32752"), v("T\0"));
    assert_eq!(h.one(c, MsgType::Resume, "4"), Err("ENOENT"));
}

#[test]
fn transactions_isolate_and_commit() {
    let mut h = H::new();
    let c = h.sock();
    let o = h.sock();
    let w = h.sock();
    h.watch(w, "/t", "tw").expect("watch");
    h.take_events(w);
    let tx = h.start(c);
    assert_eq!(tx, 1);
    assert_eq!(h.twrite(c, tx, "/t/a", "1"), ok());
    assert_eq!(h.call(c, MsgType::Read, tx, b"/t/a\0"), v("1"));
    assert_eq!(h.read(o, "/t/a"), Err("ENOENT"));
    assert!(h.take_events(w).is_empty(), "no events before commit");
    assert_eq!(h.end(c, tx, true), ok());
    assert_eq!(h.read(o, "/t/a"), v("1"));
    assert_eq!(h.take_events(w), vec![("/t/a".into(), "tw".into())]);
    // Abort discards.
    let tx = h.start(c);
    assert_eq!(tx, 2);
    h.twrite(c, tx, "/t/b", "1").expect("w");
    assert_eq!(h.end(c, tx, false), ok());
    assert_eq!(h.read(o, "/t/b"), Err("ENOENT"));
    // Ended transaction is gone.
    assert_eq!(h.end(c, tx, true), Err("ENOENT"));
    assert_eq!(h.call(c, MsgType::TransactionEnd, 0, b"T\0"), Err("ENOENT"));
    let tx = h.start(c);
    assert_eq!(
        h.call(c, MsgType::TransactionEnd, tx, b"X\0"),
        Err("EINVAL")
    );
    assert_eq!(
        h.call(c, MsgType::TransactionStart, tx, b"\0"),
        Err("EBUSY")
    );
    // Rm inside a transaction.
    assert_eq!(h.call(c, MsgType::Rm, tx, b"/t\0"), ok());
    assert_eq!(h.read(o, "/t/a"), v("1"));
    assert_eq!(h.end(c, tx, true), ok());
    assert_eq!(h.read(o, "/t"), Err("ENOENT"));
    h.check();
}

#[test]
fn transaction_conflicts() {
    let mut h = H::new();
    let c = h.sock();
    let o = h.sock();
    h.write(c, "/k/a", "0").expect("w");
    h.write(c, "/k/b", "0").expect("w");
    // Read a, someone else writes a: conflict.
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Read, tx, b"/k/a\0"), v("0"));
    h.write(o, "/k/a", "1").expect("w");
    h.twrite(c, tx, "/k/b", "x").expect("w");
    assert_eq!(h.end(c, tx, true), Err("EAGAIN"));
    assert_eq!(h.read(o, "/k/b"), v("0"));
    // Unrelated write: no conflict.
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Read, tx, b"/k/a\0"), v("1"));
    h.write(o, "/other", "1").expect("w");
    h.twrite(c, tx, "/k/b", "y").expect("w");
    assert_eq!(h.end(c, tx, true), ok());
    assert_eq!(h.read(o, "/k/b"), v("y"));
    // Creation of a node the transaction saw missing: conflict.
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Read, tx, b"/k/new\0"), Err("ENOENT"));
    h.write(o, "/k/new", "1").expect("w");
    assert_eq!(h.end(c, tx, true), Err("EAGAIN"));
    // Two transactions writing the same existing node: the second loses.
    let t1 = h.start(c);
    let t2 = h.start(o);
    h.twrite(c, t1, "/k/a", "t1").expect("w");
    h.twrite(o, t2, "/k/a", "t2").expect("w");
    assert_eq!(h.end(c, t1, true), ok());
    assert_eq!(h.end(o, t2, true), Err("EAGAIN"));
    assert_eq!(h.read(o, "/k/a"), v("t1"));
    h.check();
}

#[test]
fn transaction_rm_events_and_recreate() {
    let mut h = H::new();
    let c = h.sock();
    let w = h.sock();
    h.write(c, "/t/a/b", "1").expect("w");
    h.watch(w, "/t/a/b", "deep").expect("watch");
    h.watch(w, "/t", "top").expect("watch");
    h.take_events(w);
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Rm, tx, b"/t/a\0"), ok());
    assert_eq!(h.call(c, MsgType::Read, tx, b"/t/a/b\0"), Err("ENOENT"));
    // Recreate inside the same transaction.
    assert_eq!(h.twrite(c, tx, "/t/a/c", "2"), ok());
    assert_eq!(h.call(c, MsgType::Directory, tx, b"/t/a\0"), v("c\0"));
    assert_eq!(h.read(w, "/t/a/b"), v("1"));
    assert!(h.take_events(w).is_empty());
    assert_eq!(h.end(c, tx, true), ok());
    let ev = h.take_events(w);
    assert!(ev.contains(&("/t/a/b".into(), "deep".into())), "{ev:?}");
    assert!(ev.contains(&("/t/a".into(), "top".into())), "{ev:?}");
    assert!(ev.contains(&("/t/a/c".into(), "top".into())), "{ev:?}");
    assert_eq!(h.one(c, MsgType::Directory, "/t/a"), v("c\0"));
    assert_eq!(h.read(c, "/t/a/b"), Err("ENOENT"));
    h.check();
}

#[test]
fn guest_node_quota_checked_at_commit() {
    let mut config = Config::default();
    config.quotas.nodes = 3;
    let mut h = H::with(config);
    let c = h.sock();
    let d = h.dom(c, 4);
    h.write(c, "/local/domain/4", "").expect("w");
    h.set_perms(c, "/local/domain/4", &["n4"]).expect("sp");
    let tx = h.start(d);
    // Inside the transaction the global count (1) is below the quota...
    for i in 0..3 {
        assert_eq!(h.twrite(d, tx, &format!("k{i}"), "v"), ok());
    }
    // ...but the commit would take the domain to 4 nodes.
    assert_eq!(h.end(d, tx, true), Err("ENOSPC"));
    assert_eq!(h.read(c, "/local/domain/4/k0"), Err("ENOENT"));
    let tx = h.start(d);
    assert_eq!(h.twrite(d, tx, "k0", "v"), ok());
    assert_eq!(h.end(d, tx, true), ok());
    assert_eq!(h.read(c, "/local/domain/4/k0"), v("v"));
    h.check();
}

#[test]
fn transaction_limit_for_guests() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 3);
    let limit = h.s.config().quotas.transactions;
    // C allows one more than the quota (it checks "started > quota").
    for _ in 0..=limit {
        h.start(d);
    }
    assert_eq!(
        h.call(d, MsgType::TransactionStart, 0, b"\0"),
        Err("ENOSPC")
    );
    // Privileged connections are not limited.
    for _ in 0..=limit + 3 {
        h.start(c);
    }
    assert_eq!(h.call(d, MsgType::ResetWatches, 0, b""), ok());
    h.start(d);
}

#[test]
fn quotas() {
    let mut config = Config::default();
    config.quotas.nodes = 5;
    config.quotas.watches = 2;
    let mut h = H::with(config);
    let c = h.sock();
    let d = h.dom(c, 4);
    h.write(c, "/local/domain/4", "").expect("w");
    h.set_perms(c, "/local/domain/4", &["n4"]).expect("sp");
    // The domain owns its home (1 node); four more fit.
    for i in 0..4 {
        assert_eq!(h.write(d, &format!("n{i}"), "v"), ok(), "{i}");
    }
    assert_eq!(h.write(d, "n9", "v"), Err("ENOSPC"));
    assert_eq!(h.read(d, "n9"), Err("ENOENT"));
    h.one(d, MsgType::Rm, "n0").expect("rm");
    assert_eq!(h.write(d, "n9", "v"), ok());
    // Node size.
    let big = "x".repeat(2048);
    assert_eq!(h.write(d, "n9", &big), Err("ENOSPC"));
    assert_eq!(h.write(c, "/local/domain/4/n9", &big), ok());
    // Watches: C allows quota + 1.
    for i in 0..3 {
        assert_eq!(h.watch(d, "n1", &format!("t{i}")), ok());
    }
    assert_eq!(h.watch(d, "n1", "t9"), Err("E2BIG"));
    // CONTROL quota reports the domain.
    let r = h
        .call(c, MsgType::Control, 0, &join_args(&["quota", "4"]))
        .expect("quota");
    let text = String::from_utf8(r).expect("utf8");
    assert!(text.starts_with("Domain 4:\n"), "{text}");
    assert!(text.contains("nodes           :        5\n"), "{text}");
    assert!(text.contains("watches         :        3\n"), "{text}");
    h.check();
}

#[test]
fn control_commands() {
    let mut h = H::new();
    let c = h.sock();
    let help = String::from_utf8(h.one(c, MsgType::Control, "help").expect("help")).expect("utf8");
    assert!(help.starts_with("check\t\nlog\ton|off\n"), "{help}");
    assert!(help.contains("quota\t[set <name> <val>|<domid>]\n"));
    assert_eq!(h.one(c, MsgType::Control, "check"), ok());
    assert_eq!(h.one(c, MsgType::Control, "bogus"), Err("EINVAL"));
    assert_eq!(h.call(c, MsgType::Control, 0, b"nonul"), Err("EINVAL"));
    assert_eq!(
        h.call(c, MsgType::Control, 0, &join_args(&["log", "on"])),
        ok()
    );
    assert!(h.s.logging());
    assert_eq!(
        h.call(c, MsgType::Control, 0, &join_args(&["log", "maybe"])),
        Err("EINVAL")
    );
    assert_eq!(
        h.call(
            c,
            MsgType::Control,
            0,
            &join_args(&["quota", "set", "nodes", "7"])
        ),
        ok()
    );
    assert_eq!(h.s.config().quotas.nodes, 7);
    assert_eq!(
        h.call(
            c,
            MsgType::Control,
            0,
            &join_args(&["quota", "set", "nodes", "0"])
        ),
        Err("EINVAL")
    );
    assert_eq!(
        h.call(
            c,
            MsgType::Control,
            0,
            &join_args(&["quota", "set", "what", "3"])
        ),
        Err("EINVAL")
    );
    let q = String::from_utf8(h.one(c, MsgType::Control, "quota").expect("q")).expect("utf8");
    assert!(
        q.starts_with("Quota settings:\nnodes            :        7 Nodes per domain\n"),
        "{q}"
    );
    assert_eq!(
        h.call(c, MsgType::Control, 0, &join_args(&["quota", "99"])),
        Err("ENOENT")
    );
}

#[test]
fn directory_part_pages_large_directories() {
    let mut h = H::new();
    let c = h.sock();
    let mut expect = Vec::new();
    for i in 0..700 {
        let name = format!("child-{i:04}");
        h.write(c, &format!("/big/{name}"), "").expect("w");
        expect.extend_from_slice(name.as_bytes());
        expect.push(0);
    }
    assert!(expect.len() > crate::wire::XENSTORE_PAYLOAD_MAX);
    assert_eq!(h.one(c, MsgType::Directory, "/big"), Err("E2BIG"));
    let mut got = Vec::new();
    let mut gen = None;
    loop {
        let r = h
            .call(
                c,
                MsgType::DirectoryPart,
                0,
                &join_args(&["/big", &got.len().to_string()]),
            )
            .expect("part");
        assert!(r.len() <= crate::wire::XENSTORE_PAYLOAD_MAX);
        let g_end = r.iter().position(|b| *b == 0).expect("gen");
        let g = r[..g_end].to_vec();
        assert!(gen.is_none() || gen.as_ref() == Some(&g));
        gen = Some(g);
        let body = &r[g_end + 1..];
        if body.ends_with(b"\0\0") || body == b"\0" {
            got.extend_from_slice(&body[..body.len() - 1]);
            break;
        }
        got.extend_from_slice(body);
    }
    assert_eq!(got, expect);
    assert_eq!(
        h.call(c, MsgType::DirectoryPart, 0, b"/big\0"),
        Err("EINVAL")
    );
    assert_eq!(
        h.call(c, MsgType::DirectoryPart, 0, &join_args(&["/big", "99999"]))
            .map(|r| r.ends_with(b"\0\0")),
        Ok(true)
    );
}

#[test]
fn bounded_output_queue() {
    let config = Config {
        max_queued: 8,
        ..Default::default()
    };
    // A byte bound too: 100-byte events, at most 1000 bytes queued.
    {
        let mut h = H::new();
        h.s.set_max_queued_bytes(1000);
        let c = h.sock();
        let lazy = h.sock();
        h.watch(lazy, "/g", "t").expect("watch");
        h.take_events(lazy);
        let long = format!("/g/{}", "x".repeat(80));
        for i in 0..30 {
            h.s.handle(
                c,
                Message::new(
                    MsgType::Write,
                    1,
                    0,
                    join_args(&[format!("{long}{i}").as_str(), "y"]),
                ),
            );
            while h.s.pop_output(c).is_some() {}
        }
        assert!(h.s.queued(lazy) < 12, "{}", h.s.queued(lazy));
        assert!(h.s.dropped_events(lazy) > 0);
    }
    let mut h = H::with(config);
    let c = h.sock();
    let lazy = h.sock();
    h.watch(lazy, "/f", "t").expect("watch");
    for i in 0..20 {
        h.write(c, &format!("/f/{i}"), "x").expect("w");
    }
    // Now the lazy connection stops reading.
    let before = h.s.dropped_events(lazy);
    for i in 0..50 {
        h.s.handle(
            c,
            Message::new(
                MsgType::Write,
                1,
                0,
                join_args(&[format!("/f/{i}").as_str(), "y"]),
            ),
        );
        while h.s.pop_output(c).is_some() {}
    }
    assert!(h.s.queued(lazy) <= 8);
    assert!(h.s.dropped_events(lazy) > before);
    assert!(!h.s.can_read(lazy));
    while h.s.pop_output(lazy).is_some() {}
    assert!(h.s.can_read(lazy));
}

#[test]
fn woken_lists_connections_with_output() {
    let mut h = H::new();
    let c = h.sock();
    let w = h.sock();
    let idle = h.sock();
    h.s.handle(
        w,
        Message::new(MsgType::Watch, 1, 0, join_args(&["/x", "t"])),
    );
    assert_eq!(h.s.take_woken(), vec![w]);
    while h.s.pop_output(w).is_some() {}
    h.s.handle(
        c,
        Message::new(MsgType::Write, 2, 0, join_args(&["/x", "1"])),
    );
    let woken = h.s.take_woken();
    assert!(woken.contains(&c) && woken.contains(&w) && !woken.contains(&idle));
    assert!(h.s.take_woken().is_empty());
}

#[test]
fn guest_outstanding_requests_limit_reading() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 2);
    for _ in 0..h.s.config().quotas.outstanding {
        assert!(h.s.can_read(d));
        h.s.handle(d, Message::new(MsgType::Read, 1, 0, b"/\0".to_vec()));
    }
    assert!(!h.s.can_read(d));
    h.s.pop_output(d);
    assert!(h.s.can_read(d));
}

/// A tiny deterministic generator (xorshift64) for randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn randomized_requests_keep_the_store_consistent() {
    let mut h = H::new();
    let socks = [h.sock(), h.sock()];
    let admin = socks[0];
    let guests = [h.dom(admin, 11), h.dom(admin, 12)];
    let paths = [
        "/r",
        "/r/a",
        "/r/a/b",
        "/r/c",
        "/local/domain/11/x",
        "x/y",
        "/r/a/b/c/d",
        "bad//",
        "@releaseDomain",
    ];
    let seed: u64 = std::env::var("XS_RANDOM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x1234_5678_9abc_def1);
    let mut rng = Rng(seed | 1);
    let mut txs: Vec<(ConnId, u32)> = Vec::new();
    for _ in 0..3000 {
        let conn = if rng.next() % 3 == 0 {
            guests[(rng.next() % 2) as usize]
        } else {
            socks[(rng.next() % 2) as usize]
        };
        let p = rng.pick(&paths);
        let tx = if rng.next() % 4 == 0 {
            txs.iter().find(|(c, _)| *c == conn).map_or(0, |t| t.1)
        } else {
            0
        };
        let (t, payload) = match rng.next() % 11 {
            0 => (MsgType::Write, join_args(&[p, "v"])),
            1 => (MsgType::Read, join_args(&[p])),
            2 => (MsgType::Mkdir, join_args(&[p])),
            3 => (MsgType::Rm, join_args(&[p])),
            4 => (
                MsgType::SetPerms,
                join_args(&[p, rng.pick(&["n0", "n11", "r12", "b0", "w11"])]),
            ),
            5 => (MsgType::Watch, join_args(&[p, rng.pick(&["t1", "t2"])])),
            6 => (MsgType::Directory, join_args(&[p])),
            7 => (MsgType::TransactionStart, b"\0".to_vec()),
            8 => (MsgType::TransactionEnd, join_args(&[rng.pick(&["T", "F"])])),
            9 => (MsgType::Unwatch, join_args(&[p, "t1"])),
            _ => (MsgType::GetPerms, join_args(&[p])),
        };
        let r = h.call(conn, t, tx, &payload);
        if t == MsgType::TransactionStart && tx == 0 {
            if let Ok(id) = &r {
                let id: u32 = std::str::from_utf8(&id[..id.len() - 1])
                    .expect("utf8")
                    .parse()
                    .expect("id");
                txs.push((conn, id));
            }
        }
        if t == MsgType::TransactionEnd && tx != 0 {
            txs.retain(|x| *x != (conn, tx));
        }
        h.check();
    }
}

#[test]
fn fuzz_entry_point_survives_garbage() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    // XS_FUZZ_ITERS raises the iteration count for longer runs.
    let iters: usize = std::env::var("XS_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut grew = 0;
    for _ in 0..iters {
        let len = (rng.next() % 600) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make some chunks look like plausible headers.
        if len > 20 {
            data[1] = (rng.next() % 23) as u8;
            data[13] = 0;
        }
        if fuzz_requests(&data) > 3 {
            grew += 1;
        }
    }
    eprintln!("fuzz_requests: {iters} inputs, {grew} created nodes");
    // The structured mode must reach the node-creating paths.
    assert!(grew > iters / 20, "{grew} of {iters}");
}

/// What the hostile guest of the test bed found: a guest filling one directory is
/// stopped by the node-size quota (the record holds the children's names, as in
/// C), long before the node quota; spread over directories it reaches the node
/// quota itself, counting the nodes it already owns.
#[test]
fn a_guest_meets_the_node_size_quota_in_a_directory_and_the_node_quota_across_them() {
    let mut h = H::new();
    let c = h.sock();
    let d = h.dom(c, 4);
    let tx = h.start(c);
    assert_eq!(h.twrite(c, tx, "/local/domain/4", ""), ok());
    assert_eq!(h.twrite(c, tx, "/local/domain/4/data", ""), ok());
    assert_eq!(h.end(c, tx, true), ok());
    h.set_perms(c, "/local/domain/4/data", &["n4"]).expect("sp");
    let quota = h.s.config().quotas.nodes as usize;
    let names_per_record = h.s.config().quotas.node_size as usize / "n000\0".len();
    let mut n = 0;
    while h.write(d, &format!("data/flat/n{n:03}"), "x").is_ok() {
        n += 1;
    }
    assert!(
        n > 300 && n < names_per_record,
        "one directory took {n} children"
    );
    assert_eq!(
        h.write(d, &format!("data/flat/n{n:03}"), "x"),
        Err("ENOSPC")
    );
    h.one(d, MsgType::Rm, "data/flat").expect("rm");
    let mut total = 0;
    while h
        .write(
            d,
            &format!("data/tree/d{}/n{}", total / 100, total % 100),
            "x",
        )
        .is_ok()
    {
        total += 1;
        assert!(total <= quota, "more than the node quota");
    }
    // data, data/tree, one node per directory dN and the leaves: the quota exactly.
    let dirs = total.div_ceil(100);
    assert_eq!(
        1 + 1 + dirs + total,
        quota,
        "{total} leaves in {dirs} directories"
    );
    h.check();
}

/// READ, DIRECTORY, DIRECTORY_PART and GET_PERMS read the committed record in
/// place outside a transaction (`Server::reply_from_node`) and a transaction's
/// copy inside one: both must give the same replies and errors, permissions
/// (and entries for domains younger than the node) included.
#[test]
fn node_reads_agree_inside_and_outside_transactions() {
    let mut h = H::new();
    let admin = h.sock();
    h.write(admin, "/pub/v", "value").expect("w");
    h.write(admin, "/priv/v", "secret").expect("w");
    h.write(admin, "/late", "x").expect("w");
    for i in 0..700 {
        h.write(admin, &format!("/pub/big/child-{i:04}"), "")
            .expect("w");
    }
    h.set_perms(admin, "/pub", &["n0", "r7"]).expect("perms");
    h.set_perms(admin, "/pub/v", &["n0", "r7"]).expect("perms");
    h.set_perms(admin, "/pub/big", &["n0", "r7"])
        .expect("perms");
    h.set_perms(admin, "/priv", &["n0"]).expect("perms");
    h.set_perms(admin, "/priv/v", &["n0"]).expect("perms");
    // Domain 9 is introduced after /late got its entry.
    h.set_perms(admin, "/late", &["n0", "r9"]).expect("perms");
    let d7 = h.dom(admin, 7);
    let d9 = h.dom(admin, 9);
    let mut cases = 0;
    for c in [admin, d7, d9] {
        for path in [
            "/pub/v",
            "/pub/big",
            "/pub/missing",
            "/priv/v",
            "/priv/missing",
            "/late",
            "/",
        ] {
            let requests: [(MsgType, Vec<u8>); 5] = [
                (MsgType::Read, join_args(&[path])),
                (MsgType::Directory, join_args(&[path])),
                (MsgType::DirectoryPart, join_args(&[path, "0"])),
                (MsgType::DirectoryPart, join_args(&[path, "4000"])),
                (MsgType::GetPerms, join_args(&[path])),
            ];
            for (t, payload) in requests {
                let outside = h.call(c, t, 0, &payload);
                let id = h
                    .call(c, MsgType::TransactionStart, 0, b"\0")
                    .expect("transaction");
                let tx: u32 = std::str::from_utf8(&id[..id.len() - 1])
                    .expect("id")
                    .parse()
                    .expect("id");
                let inside = h.call(c, t, tx, &payload);
                h.call(c, MsgType::TransactionEnd, tx, b"F\0")
                    .expect("abort");
                assert_eq!(outside, inside, "{c} {t:?} {path}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * 7 * 5);
    // The cases above cover what they should.
    assert_eq!(h.one(d7, MsgType::Read, "/pub/v"), Ok(b"value".to_vec()));
    assert_eq!(h.one(d7, MsgType::Read, "/priv/v"), Err("EACCES"));
    assert_eq!(h.one(d7, MsgType::Read, "/pub/missing"), Err("ENOENT"));
    assert_eq!(h.one(d7, MsgType::Directory, "/pub/big"), Err("E2BIG"));
}
