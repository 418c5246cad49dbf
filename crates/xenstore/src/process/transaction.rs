//! Transactions (C `xenstored_transaction.c`): a transaction records every node it
//! touched, with the generation it saw; at commit a changed generation means
//! `EAGAIN`, otherwise its writes and deletions go to the store and the queued
//! watch events fire.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Cx, Reply, Server};
use crate::store::{Node, Perm, NO_GENERATION};
use crate::wire::{one_arg, XsError};

/// One node touched by a transaction (C `struct accessed_node`).
#[derive(Debug, Clone)]
pub(super) struct Accessed {
    pub(super) name: String,
    /// Generation seen at first read (or [`NO_GENERATION`] if missing).
    pub(super) generation: u64,
    /// Compare `generation` with the store at commit.
    pub(super) check_gen: bool,
    /// Written or deleted in the transaction.
    pub(super) modified: bool,
    /// The transaction's copy; `None` when missing or deleted.
    pub(super) node: Option<Arc<Node>>,
    /// Permissions at first access, for watch filtering at commit.
    pub(super) orig_perms: Option<Vec<Perm>>,
    /// A watch event is due at commit; `Some(exact)`.
    pub(super) fire: Option<bool>,
}

impl Accessed {
    pub(super) fn read(name: &str, generation: u64, node: Option<Arc<Node>>) -> Accessed {
        Accessed {
            name: name.to_string(),
            generation,
            check_gen: true,
            modified: false,
            orig_perms: node.as_ref().map(|n| n.perms.clone()),
            node,
            fire: None,
        }
    }

    pub(super) fn written(name: &str, perms: Vec<Perm>) -> Accessed {
        Accessed {
            name: name.to_string(),
            generation: 0,
            check_gen: false,
            modified: true,
            node: None,
            orig_perms: if perms.is_empty() { None } else { Some(perms) },
            fire: None,
        }
    }
}

/// An open transaction.
#[derive(Debug, Clone)]
pub(super) struct Transaction {
    pub(super) id: u32,
    pub(super) accessed: Vec<Accessed>,
    index: HashMap<String, usize>,
    pub(super) node_created: bool,
    pub(super) fail: bool,
    /// Node count changes per owner, applied at commit.
    pub(super) entry_delta: HashMap<u32, i64>,
    pub(super) delta_order: Vec<u32>,
}

impl Transaction {
    fn new(id: u32) -> Transaction {
        Transaction {
            id,
            accessed: Vec::new(),
            index: HashMap::new(),
            node_created: false,
            fail: false,
            entry_delta: HashMap::new(),
            delta_order: Vec::new(),
        }
    }

    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(super) fn push(&mut self, name: &str, a: Accessed) -> usize {
        let i = self.accessed.len();
        self.accessed.push(a);
        self.index.insert(name.to_string(), i);
        i
    }

    /// C `queue_watches`: an event for `name` is due at commit; a non-exact
    /// event replaces an exact one.
    pub(super) fn queue_watch(&mut self, name: &str, exact: bool) {
        match self.find(name) {
            Some(i) => {
                let a = &mut self.accessed[i];
                a.fire = Some(match a.fire {
                    None => exact,
                    Some(prev) => prev && exact,
                });
            }
            None => self.fail = true,
        }
    }
}

impl Server {
    pub(super) fn do_transaction_start(&mut self, cx: &mut Cx) -> Result<Reply, XsError> {
        if cx.trans.is_some() {
            return Err(XsError::Ebusy);
        }
        let conn_id = cx.conn.ok_or(XsError::Einval)?;
        let started = self.conns.get(&conn_id).map_or(0, |c| c.transactions.len()) as i64;
        if cx.unpriv && started > self.config.quotas.transactions {
            return Err(XsError::Enospc);
        }
        // C gives the transaction its own generation.
        self.generation += 1;
        let conn = self.conns.get_mut(&conn_id).ok_or(XsError::Einval)?;
        let id = loop {
            let id = conn.next_tx_id;
            conn.next_tx_id = conn.next_tx_id.wrapping_add(1);
            if id != 0 && !conn.transactions.contains_key(&id) {
                break id;
            }
        };
        conn.transactions.insert(id, Transaction::new(id));
        let mut reply = id.to_string().into_bytes();
        reply.push(0);
        Ok(Reply::Payload(reply))
    }

    pub(super) fn do_transaction_end(
        &mut self,
        cx: &mut Cx,
        payload: &[u8],
    ) -> Result<Reply, XsError> {
        let arg = one_arg(payload).ok_or(XsError::Einval)?;
        let commit = match arg {
            b"T" => true,
            b"F" => false,
            _ => return Err(XsError::Einval),
        };
        let trans = cx.trans.take().ok_or(XsError::Enoent)?;
        if commit {
            self.commit(cx, trans)?;
        }
        super::ok()
    }

    /// C `transaction_fix_domains` (check) + `finalize_transaction` + fix (update).
    fn commit(&mut self, cx: &mut Cx, trans: Transaction) -> Result<(), XsError> {
        if trans.fail {
            return Err(XsError::Enomem);
        }
        let chk_quota = trans.node_created && cx.unpriv;
        for domid in &trans.delta_order {
            let delta = trans.entry_delta.get(domid).copied().unwrap_or(0);
            let privileged = self.is_privileged_domid(*domid);
            let quota = self.config.quotas.nodes;
            let Some(d) = self.domain_existing(*domid) else {
                return Err(XsError::Enomem);
            };
            let cnt = if privileged {
                0
            } else {
                (d.nbentry + delta).max(0)
            };
            if chk_quota && cnt >= quota {
                return Err(XsError::Enospc);
            }
        }
        for a in &trans.accessed {
            if a.check_gen {
                let gen = self.store.generation(&a.name).unwrap_or(NO_GENERATION);
                if gen != a.generation {
                    return Err(XsError::Eagain);
                }
            }
        }
        for a in trans.accessed.into_iter().filter(|a| a.modified) {
            match a.node {
                Some(node) => {
                    self.generation += 1;
                    let mut n = Arc::unwrap_or_clone(node);
                    n.generation = self.generation;
                    self.store_put(&a.name, n);
                }
                None => {
                    if a.generation != NO_GENERATION {
                        self.store_del(&a.name);
                    }
                }
            }
            if let Some(exact) = a.fire {
                self.fire_watches(cx, &a.name, None, None, exact, a.orig_perms.as_deref());
            }
        }
        for domid in &trans.delta_order {
            let delta = trans.entry_delta.get(domid).copied().unwrap_or(0);
            if let Some(d) = self.domains.get_mut(domid) {
                d.nbentry = (d.nbentry + delta).max(0);
            }
        }
        Ok(())
    }
}
