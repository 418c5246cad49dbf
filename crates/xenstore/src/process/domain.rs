//! The domain table and the domain requests (INTRODUCE, RELEASE, RESUME,
//! SET_TARGET, IS_DOMAIN_INTRODUCED, GET_DOMAIN_PATH), after C
//! `xenstored_domain.c`. Mapping rings and binding event channels is the I/O
//! layer's business: it is asked through [`DomainHooks`] and told through
//! [`Action`]s.

use std::fmt;
use std::sync::Arc;

use super::{Action, ConnId, ConnKind, Cx, Reply, Server};
use crate::store::perms::c_atoi;
use crate::store::{path, PERM_OWNER, PERM_READ, PERM_WRITE};
use crate::wire::{one_arg, split_args, XsError};

/// `DOMID_SELF` (xen.h): IS_DOMAIN_INTRODUCED always answers `T` for it.
pub const DOMID_SELF: u32 = 0x7FF0;

/// What the hypervisor says about a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainState {
    /// The domain is dying (being destroyed).
    pub dying: bool,
    /// The domain has shut down or crashed.
    pub shutdown: bool,
}

/// The server's view of the hypervisor.
pub trait DomainHooks: fmt::Debug {
    /// State of a domain, `None` when it does not exist.
    fn domain_state(&mut self, domid: u32) -> Option<DomainState>;

    /// Maps the ring of a newly introduced domain and binds its event channel;
    /// an error is the INTRODUCE reply.
    fn introduce(&mut self, domid: u32, gfn: u64, port: u32) -> Result<(), XsError>;
}

/// First domain id that is not a real domain (xen.h `DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: u32 = 0x7FF0;

/// Hooks for running without Xen: every domain id below
/// [`DOMID_FIRST_RESERVED`] exists and runs, introductions succeed (what the
/// differential peer's fake hypervisor does too).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHypervisor;

impl DomainHooks for NoHypervisor {
    fn domain_state(&mut self, domid: u32) -> Option<DomainState> {
        (domid < DOMID_FIRST_RESERVED).then(DomainState::default)
    }

    fn introduce(&mut self, _domid: u32, _gfn: u64, _port: u32) -> Result<(), XsError> {
        Ok(())
    }
}

/// A domain record (C `struct domain`).
#[derive(Debug, Clone)]
pub(super) struct Domain {
    pub(super) domid: u32,
    pub(super) introduced: bool,
    pub(super) conn: Option<ConnId>,
    pub(super) port: u32,
    pub(super) gfn: u64,
    pub(super) shutdown: bool,
    /// Nodes owned.
    pub(super) nbentry: i64,
    pub(super) nbwatch: i64,
    pub(super) nboutstanding: i64,
    /// Bytes accounted (node records and watches).
    pub(super) memory: i64,
    /// Global generation when the record was created: permissions written
    /// before it do not apply to this domain.
    pub(super) generation: u64,
}

impl Domain {
    pub(super) fn new(domid: u32, generation: u64) -> Domain {
        Domain {
            domid,
            introduced: false,
            conn: None,
            port: 0,
            gfn: 0,
            shutdown: false,
            nbentry: 0,
            nbwatch: 0,
            nboutstanding: 0,
            memory: 0,
            generation,
        }
    }
}

impl Server {
    /// C `find_or_alloc_existing_domain`: the record, created if the hypervisor
    /// knows the domain.
    pub(super) fn domain_existing(&mut self, domid: u32) -> Option<&mut Domain> {
        if !self.domains.contains_key(&domid) {
            self.hooks.domain_state(domid)?;
            let gen = self.new_domain_generation();
            self.domains.insert(domid, Domain::new(domid, gen));
        }
        self.domains.get_mut(&domid)
    }

    /// The generation of a domain record created now: newer than every node
    /// written so far. A node takes the counter's value after incrementing it
    /// (C assigns before incrementing), so a record taking the counter as it is
    /// would share the last node's generation, and permissions a dead domain of the
    /// same id held on that node would pass to the new domain.
    pub(super) fn new_domain_generation(&self) -> u64 {
        self.generation + 1
    }

    /// True when `domid`'s record is older than generation `gen` (C
    /// `chk_domain_generation`).
    pub(super) fn domain_older_than(&self, domid: u32, gen: u64) -> bool {
        self.domains
            .get(&domid)
            .is_some_and(|d| d.generation <= gen)
    }

    /// Adds `delta` to the node count of `owner` (C `domain_entry_inc/dec`);
    /// within a transaction the change is recorded and applied at commit.
    pub(super) fn entry_add(&mut self, cx: &mut Cx, owner: u32, delta: i64) -> Result<(), XsError> {
        if let Some(t) = cx.trans.as_mut() {
            *t.entry_delta.entry(owner).or_insert(0) += delta;
            if !t.delta_order.contains(&owner) {
                t.delta_order.push(owner);
            }
            return Ok(());
        }
        match self.domain_existing(owner) {
            Some(d) => {
                d.nbentry += delta;
                Ok(())
            }
            None if delta < 0 => Ok(()),
            None => Err(XsError::Enomem),
        }
    }

    /// Node count of the caller's domain when it is unprivileged (C `domain_entry`).
    pub(super) fn caller_entries(&self, cx: &Cx) -> i64 {
        if !cx.unpriv {
            return 0;
        }
        self.domains.get(&cx.id).map_or(0, |d| d.nbentry)
    }

    fn connected_domain(&self, domid: u32) -> Result<ConnId, XsError> {
        let d = self
            .domains
            .get(&domid)
            .filter(|d| d.introduced)
            .ok_or(XsError::Enoent)?;
        d.conn.ok_or(XsError::Einval)
    }

    fn onearg_domain(&self, payload: &[u8]) -> Result<(u32, ConnId), XsError> {
        let arg = one_arg(payload).ok_or(XsError::Einval)?;
        let domid = c_atoi(arg) as u32;
        if domid == 0 {
            return Err(XsError::Einval);
        }
        Ok((domid, self.connected_domain(domid)?))
    }

    pub(super) fn do_introduce(&mut self, _cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let args = split_args(payload);
        if args.len() < 3 {
            return Err(XsError::Einval);
        }
        let domid = c_atoi(args[0]) as u32;
        let gfn = crate::store::perms::c_strtol(args[1], 10).0 as u64;
        let port = c_atoi(args[2]) as u32;
        if port == 0 {
            return Err(XsError::Einval);
        }
        let introduced = self.domains.get(&domid).is_some_and(|d| d.introduced);
        if !introduced {
            self.hooks.introduce(domid, gfn, port)?;
            let gen = self.new_domain_generation();
            self.domains
                .entry(domid)
                .or_insert_with(|| Domain::new(domid, gen));
            let conn = self.connect(ConnKind::Domain { domid });
            if let Some(d) = self.domains.get_mut(&domid) {
                d.port = port;
                d.gfn = gfn;
                d.shutdown = false;
            }
            self.actions.push(Action::Introduced {
                domid,
                conn,
                gfn,
                port,
            });
            if domid != self.config.master_domid {
                self.fire_special(path::INTRODUCE_DOMAIN);
            }
        } else {
            let conn = self.domains.get(&domid).and_then(|d| d.conn);
            if let Some(d) = self.domains.get_mut(&domid) {
                d.port = port;
            }
            if let Some(conn) = conn {
                // C domain_conn_reset(): watches, transactions and output go.
                self.reset_conn(conn);
                self.actions
                    .push(Action::Reintroduced { domid, conn, port });
            }
        }
        super::ok()
    }

    /// Drops a connection's watches, transactions and queued output.
    pub(super) fn reset_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let watches = std::mem::take(&mut c.watches);
        c.transactions.clear();
        let replies = c
            .out
            .iter()
            .filter(|m| m.header.msg_type != crate::wire::MsgType::WatchEvent as u32)
            .count() as i64;
        c.out.clear();
        c.out_bytes = 0;
        let kind = c.kind;
        if let ConnKind::Domain { domid } = kind {
            if let Some(d) = self.domains.get_mut(&domid) {
                d.nbwatch = (d.nbwatch - watches.len() as i64).max(0);
                d.memory -= watches.iter().map(super::watch::Watch::memory).sum::<i64>();
                d.nboutstanding -= replies;
            }
        }
    }

    pub(super) fn do_release(&mut self, _cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let (_domid, conn) = self.onearg_domain(payload)?;
        // C frees the connection with talloc_free(), which only drops one
        // reference while SET_TARGET references to it remain.
        let referrer = self
            .conns
            .iter()
            .find_map(|(id, c)| c.ref_handles.contains(&conn).then_some(*id));
        if let Some(r) = referrer {
            if let Some(c) = self.conns.get_mut(&r) {
                if let Some(pos) = c.ref_handles.iter().position(|t| *t == conn) {
                    c.ref_handles.remove(pos);
                }
            }
            return super::ok();
        }
        self.disconnect(conn);
        super::ok()
    }

    pub(super) fn do_resume(&mut self, payload: &[u8]) -> Result<Reply, XsError> {
        let (domid, _conn) = self.onearg_domain(payload)?;
        if let Some(d) = self.domains.get_mut(&domid) {
            d.shutdown = false;
        }
        super::ok()
    }

    pub(super) fn do_set_target(&mut self, payload: &[u8]) -> Result<Reply, XsError> {
        let args = split_args(payload);
        if args.len() < 2 {
            return Err(XsError::Einval);
        }
        let domid = c_atoi(args[0]) as u32;
        let tdomid = c_atoi(args[1]) as u32;
        let conn = self.connected_domain(domid)?;
        let tconn = self.connected_domain(tdomid)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.target = Some(tdomid);
            c.ref_handles.push(tconn);
        }
        super::ok()
    }

    pub(super) fn do_get_domain_path(&mut self, payload: &[u8]) -> Result<Reply, XsError> {
        let arg = one_arg(payload).ok_or(XsError::Einval)?;
        let mut p = path::domain_path(c_atoi(arg) as u32).into_bytes();
        p.push(0);
        Ok(Reply::Payload(p))
    }

    pub(super) fn do_is_domain_introduced(&mut self, payload: &[u8]) -> Result<Reply, XsError> {
        let arg = one_arg(payload).ok_or(XsError::Einval)?;
        let domid = c_atoi(arg) as u32;
        let yes = domid == DOMID_SELF || self.domains.get(&domid).is_some_and(|d| d.introduced);
        Ok(Reply::Payload(if yes { b"T\0" } else { b"F\0" }.to_vec()))
    }

    /// C `destroy_domain`: remove (or orphan to dom0) the domain's nodes, drop it
    /// from the special watch permissions, forget the record and fire
    /// @releaseDomain if it had been introduced.
    pub(super) fn destroy_domain(&mut self, domid: u32) {
        let Some(dom) = self.domains.remove(&domid) else {
            return;
        };
        // Put the record back while removing nodes so that accounting works.
        self.domains.insert(domid, dom.clone());
        if dom.nbentry > 0 {
            self.remove_domain_nodes(domid);
        }
        let master = self.config.master_domid;
        for perms in [&mut self.release_perms, &mut self.introduce_perms] {
            if perms[0].id == domid {
                perms[0].id = self.config.priv_domid;
            }
            let owner = perms[0];
            let rest: Vec<_> = perms[1..]
                .iter()
                .copied()
                .filter(|p| p.id != domid)
                .collect();
            perms.clear();
            perms.push(owner);
            perms.extend(rest);
        }
        let _ = master;
        self.domains.remove(&domid);
        if dom.introduced {
            self.fire_special(path::RELEASE_DOMAIN);
        }
    }

    /// Removes (or gives to the privileged domain) every node owned by `domid`,
    /// walking the tree from the root in pre-order and skipping the children of
    /// removed nodes (C `domain_tree_remove`).
    fn remove_domain_nodes(&mut self, domid: u32) {
        let mut stack = vec!["/".to_string()];
        let mut owned = Vec::new();
        while let Some(name) = stack.pop() {
            let Some(node) = self.store.get(&name) else {
                continue;
            };
            if node.owner() == domid {
                owned.push(name);
                continue;
            }
            let mut kids: Vec<String> = node
                .child_names()
                .map(|c| path::child_path(&name, c))
                .collect();
            kids.reverse();
            stack.extend(kids);
        }
        for name in owned {
            let mut cx = Cx::internal();
            if self.config.keep_orphans {
                if let Some(node) = self.store.get(&name) {
                    let mut n = Arc::unwrap_or_clone(node);
                    n.perms[0].id = self.config.priv_domid;
                    let _ = self.entry_add(&mut cx, domid, -1);
                    let _ = self.entry_add(&mut cx, self.config.priv_domid, 1);
                    self.store_put(&name, n);
                }
            } else if let Err(e) = self.rm_node(&mut cx, &name) {
                tracing::error!(node = %name, error = %e, "removing orphaned node failed");
            }
        }
    }

    /// C `check_domains` (on VIRQ_DOM_EXC): records shutdown, releases dying
    /// domains, forgets records of vanished non-introduced domains.
    pub fn check_domains(&mut self) {
        let mut notify = false;
        let ids: Vec<u32> = self.domains.keys().copied().collect();
        for domid in ids {
            let state = self.hooks.domain_state(domid);
            let Some(d) = self.domains.get_mut(&domid) else {
                continue;
            };
            if !d.introduced {
                if state.is_none() {
                    self.domains.remove(&domid);
                }
                continue;
            }
            if let Some(st) = state {
                if st.shutdown && !d.shutdown {
                    d.shutdown = true;
                    notify = true;
                }
                if !st.dying {
                    continue;
                }
            }
            if let Some(conn) = d.conn {
                notify = false;
                self.disconnect(conn);
            }
        }
        if notify {
            self.fire_special(path::RELEASE_DOMAIN);
        }
    }

    /// C `set_perms_special`.
    pub(super) fn set_perms_special(
        &mut self,
        cx: &Cx,
        name: &[u8],
        perms: Vec<crate::store::Perm>,
    ) -> Result<(), XsError> {
        let current = if name == path::RELEASE_DOMAIN.as_bytes() {
            &self.release_perms
        } else if name == path::INTRODUCE_DOMAIN.as_bytes() {
            &self.introduce_perms
        } else {
            return Err(XsError::Einval);
        };
        let want = PERM_WRITE | PERM_OWNER;
        if self.perm_for_conn(cx, current) & want != want {
            return Err(XsError::Eacces);
        }
        if name == path::RELEASE_DOMAIN.as_bytes() {
            self.release_perms = perms;
        } else {
            self.introduce_perms = perms;
        }
        Ok(())
    }

    /// C `check_perms_special`: may `cx` see events of special path `name`?
    pub(super) fn check_perms_special(&self, cx: &Cx, name: &[u8]) -> bool {
        let perms = if name == path::RELEASE_DOMAIN.as_bytes() {
            &self.release_perms
        } else if name == path::INTRODUCE_DOMAIN.as_bytes() {
            &self.introduce_perms
        } else {
            return false;
        };
        self.perm_for_conn(cx, perms) & PERM_READ != 0
    }
}
