//! Watches (C `xenstored_watch.c`): registration, removal, and firing events
//! filtered by the watcher's read permission.

use super::{ConnId, Cx, Reply, Server};
use crate::store::{path, Perm, PERM_READ};
use crate::wire::{
    count_args, split_args, Header, Message, MsgType, XsError, XENSTORE_PAYLOAD_MAX,
    XENSTORE_REL_PATH_MAX,
};

/// One registered watch.
#[derive(Debug, Clone)]
pub(super) struct Watch {
    /// Canonical path (or special `@...` name).
    pub(super) node: Vec<u8>,
    pub(super) token: Vec<u8>,
    /// The caller's home when the watch was given as a relative path: events
    /// are reported relative to it.
    pub(super) relative: Option<String>,
}

impl Watch {
    /// Bytes accounted to the domain (C: path and token lengths).
    pub(super) fn memory(&self) -> i64 {
        (self.node.len() + self.token.len()) as i64
    }

    /// C `get_watch_path`.
    fn report_path<'a>(&self, name: &'a [u8]) -> &'a [u8] {
        match &self.relative {
            Some(home) => {
                let rest = name.get(home.len()..).unwrap_or(b"");
                rest.strip_prefix(b"/").unwrap_or(rest)
            }
            None => name,
        }
    }
}

/// C `is_child` on bytes.
fn is_child(child: &[u8], parent: &[u8]) -> bool {
    if parent == b"/" {
        return true;
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest[0] == b'/',
        None => false,
    }
}

impl Server {
    /// Queues a watch event (C `send_event`): too long events are dropped, as
    /// is an identical event still queued (except for special paths), and any
    /// event when the queue is full.
    fn send_event(&mut self, conn: ConnId, path: &[u8], token: &[u8]) {
        if path.len() + token.len() + 2 > XENSTORE_PAYLOAD_MAX {
            return;
        }
        let max = self.config.max_queued;
        let max_bytes = self.max_queued_bytes;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let msg = Message::watch_event(path, token);
        if path.first() != Some(&b'@')
            && c.out.iter().any(|m| {
                m.header.msg_type == MsgType::WatchEvent as u32 && m.payload == msg.payload
            })
        {
            return;
        }
        if c.out.len() >= max || c.out_bytes + super::msg_bytes(&msg) > max_bytes {
            c.dropped_events += 1;
            tracing::debug!(%conn, "output queue full, watch event dropped");
            return;
        }
        c.out_bytes += super::msg_bytes(&msg);
        c.out.push_back(msg);
        if !c.woken {
            c.woken = true;
            self.woken.push(conn);
        }
    }

    /// C `watch_permitted`.
    fn watch_permitted(
        &self,
        watcher: &Cx,
        name: &str,
        node_perms: Option<&[Perm]>,
        parent_perms: Option<&[Perm]>,
        old_perms: Option<&[Perm]>,
    ) -> bool {
        if let Some(p) = old_perms {
            if self.perm_for_conn(watcher, p) & PERM_READ != 0 {
                return true;
            }
        }
        let own;
        let perms = match node_perms {
            Some(p) => p,
            None => match self.store.get(name) {
                Some(n) => {
                    own = self.adjusted(n).perms.clone();
                    &own
                }
                None => return false,
            },
        };
        if self.perm_for_conn(watcher, perms) & PERM_READ != 0 {
            return true;
        }
        let own_parent;
        let pperms = match parent_perms {
            Some(p) => p,
            None => match self.store.get(path::parent(name)) {
                Some(n) => {
                    own_parent = self.adjusted(n).perms.clone();
                    &own_parent
                }
                None => return false,
            },
        };
        self.perm_for_conn(watcher, pperms) & PERM_READ != 0
    }

    /// C `fire_watches`: inside a transaction the event is queued for commit;
    /// otherwise every connection with a matching watch that may read the node
    /// (or its parent) gets an event.
    pub(super) fn fire_watches(
        &mut self,
        cx: &mut Cx,
        name: &str,
        node_perms: Option<&[Perm]>,
        parent_perms: Option<&[Perm]>,
        exact: bool,
        old_perms: Option<&[Perm]>,
    ) {
        if let Some(t) = cx.trans.as_mut() {
            t.queue_watch(name, exact);
            return;
        }
        self.fire_to_all(
            name.as_bytes(),
            |s, watcher| s.watch_permitted(watcher, name, node_perms, parent_perms, old_perms),
            exact,
        );
    }

    /// Fires a special event (@introduceDomain, @releaseDomain) to watchers
    /// allowed by its permissions.
    pub(super) fn fire_special(&mut self, name: &str) {
        self.fire_to_all(
            name.as_bytes(),
            |s, watcher| s.check_perms_special(watcher, name.as_bytes()),
            true,
        );
    }

    fn fire_to_all<F>(&mut self, name: &[u8], permitted: F, exact: bool)
    where
        F: Fn(&Server, &Cx) -> bool,
    {
        let ids: Vec<ConnId> = self.watchers.iter().copied().collect();
        for id in ids {
            let events: Vec<(Vec<u8>, Vec<u8>)> = {
                let Some(c) = self.conns.get(&id).filter(|c| !c.watches.is_empty()) else {
                    self.watchers.remove(&id);
                    continue;
                };
                c.watches
                    .iter()
                    .filter(|w| {
                        if exact {
                            w.node == name
                        } else {
                            is_child(name, &w.node)
                        }
                    })
                    .map(|w| (w.report_path(name).to_vec(), w.token.clone()))
                    .collect()
            };
            if events.is_empty() {
                continue;
            }
            let Some(watcher) = self.cx_for(id) else {
                continue;
            };
            if !permitted(self, &watcher) {
                continue;
            }
            for (p, t) in events {
                self.send_event(id, &p, &t);
            }
        }
    }

    pub(super) fn do_watch(
        &mut self,
        cx: &mut Cx,
        hdr: &Header,
        payload: &[u8],
    ) -> Result<Reply, XsError> {
        if count_args(payload) != 2 {
            return Err(XsError::Einval);
        }
        let args = split_args(payload);
        let (raw, token) = (args[0], args[1]);
        let (node, relative) = if raw.first() == Some(&b'@') {
            if raw.len() > XENSTORE_REL_PATH_MAX {
                return Err(XsError::Einval);
            }
            (raw.to_vec(), false)
        } else {
            let relative = raw.first() != Some(&b'/');
            (self.canonical(cx, Some(raw))?.into_bytes(), relative)
        };
        let conn = cx.conn.ok_or(XsError::Einval)?;
        let quota = self.config.quotas.watches;
        let nbwatch = if cx.unpriv {
            self.domains.get(&cx.id).map_or(0, |d| d.nbwatch)
        } else {
            0
        };
        let c = self.conns.get_mut(&conn).ok_or(XsError::Einval)?;
        if c.watches.iter().any(|w| w.node == node && w.token == token) {
            return Err(XsError::Eexist);
        }
        if nbwatch > quota {
            return Err(XsError::E2big);
        }
        let watch = Watch {
            node,
            token: token.to_vec(),
            relative: relative.then(|| cx.home.clone()),
        };
        let mem = watch.memory();
        let first = (watch.report_path(&watch.node).to_vec(), watch.token.clone());
        c.watches.push(watch);
        self.watchers.insert(conn);
        if cx.has_domain {
            if let Some(d) = self.domains.get_mut(&cx.id) {
                d.nbwatch += 1;
                d.memory += mem;
            }
        }
        self.send_reply(conn, hdr, hdr.msg_type, b"OK\0".to_vec());
        self.send_event(conn, &first.0, &first.1);
        Ok(Reply::Sent)
    }

    pub(super) fn do_unwatch(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        if count_args(payload) != 2 {
            return Err(XsError::Einval);
        }
        let args = split_args(payload);
        let node = path::canonicalize(args[0], &cx.home);
        let conn = cx.conn.ok_or(XsError::Einval)?;
        let c = self.conns.get_mut(&conn).ok_or(XsError::Einval)?;
        let pos = c
            .watches
            .iter()
            .position(|w| w.node == node && w.token == args[1])
            .ok_or(XsError::Enoent)?;
        let w = c.watches.remove(pos);
        if cx.has_domain {
            if let Some(d) = self.domains.get_mut(&cx.id) {
                d.nbwatch = (d.nbwatch - 1).max(0);
                d.memory -= w.memory();
            }
        }
        super::ok()
    }

    pub(super) fn do_reset_watches(&mut self, cx: &mut Cx) -> Result<Reply, XsError> {
        let conn = cx.conn.ok_or(XsError::Einval)?;
        let c = self.conns.get_mut(&conn).ok_or(XsError::Einval)?;
        let watches = std::mem::take(&mut c.watches);
        c.transactions.clear();
        cx.trans = None;
        if cx.has_domain {
            if let Some(d) = self.domains.get_mut(&cx.id) {
                d.nbwatch = (d.nbwatch - watches.len() as i64).max(0);
                d.memory -= watches.iter().map(Watch::memory).sum::<i64>();
            }
        }
        super::ok()
    }
}
