//! Node access with C xenstored's semantics: permission checks, the errno a caller
//! may learn, transaction-local copies, generation counts, node accounting.

use std::sync::Arc;

use super::transaction::Accessed;
use super::{Cx, Server};
use crate::store::{
    path, Node, NodeView, Perm, NO_GENERATION, PERM_IGNORE, PERM_OWNER, PERM_READ, PERM_WRITE,
};
use crate::wire::XsError;

/// Errors C lets through `read_node` failures unmasked (C
/// `read_node_can_propagate_errno`).
fn can_propagate(e: XsError) -> bool {
    matches!(e, XsError::Enomem | XsError::Enospc)
}

impl Server {
    /// C `perm_for_conn`.
    pub(super) fn perm_for_conn(&self, cx: &Cx, perms: &[Perm]) -> u8 {
        let all = PERM_READ | PERM_WRITE | PERM_OWNER;
        let Some(owner) = perms.first() else {
            return 0;
        };
        let is_target = |id: u32| cx.target == Some(id);
        if !cx.unpriv || owner.id == cx.id || is_target(owner.id) {
            return all;
        }
        for p in &perms[1..] {
            if p.bits & PERM_IGNORE == 0 && (p.id == cx.id || is_target(p.id)) {
                return p.bits & all;
            }
        }
        owner.bits & all
    }

    /// C `domain_adjust_node_perms`: entries (but the owner) naming a domain whose
    /// record is younger than the node, or gone, are ignored.
    pub(super) fn adjust_perms(&self, node: &mut Node) {
        self.adjust_perm_list(node.generation, &mut node.perms);
    }

    /// [`Server::adjust_perms`] on the permissions of a node of generation `gen`.
    fn adjust_perm_list(&self, gen: u64, perms: &mut [Perm]) {
        for p in perms.iter_mut().skip(1) {
            if p.bits & PERM_IGNORE == 0 && !self.domain_older_than(p.id, gen) {
                p.bits |= PERM_IGNORE;
            }
        }
    }

    pub(super) fn adjusted(&self, node: Arc<Node>) -> Arc<Node> {
        let stale =
            node.perms.get(1..).unwrap_or(&[]).iter().any(|p| {
                p.bits & PERM_IGNORE == 0 && !self.domain_older_than(p.id, node.generation)
            });
        if !stale {
            return node;
        }
        let mut n = Arc::unwrap_or_clone(node);
        self.adjust_perms(&mut n);
        Arc::new(n)
    }

    /// Records an access in the caller's transaction (C `access_node` bookkeeping),
    /// enforcing the transaction-nodes quota. Returns the index of the record and
    /// whether it was new.
    fn ta_access(
        &mut self,
        cx: &mut Cx,
        name: &str,
        init: Accessed,
    ) -> Result<(usize, bool), XsError> {
        let quota = self.config.quotas.transaction_nodes;
        let unpriv = cx.unpriv;
        let Some(t) = cx.trans.as_mut() else {
            return Err(XsError::Einval);
        };
        if let Some(i) = t.find(name) {
            return Ok((i, false));
        }
        if unpriv && t.accessed.len() as i64 >= quota {
            t.fail = true;
            return Err(XsError::Enospc);
        }
        Ok((t.push(name, init), true))
    }

    /// C `read_node`: the node as the caller's context sees it; `ENOENT` when
    /// missing. Inside a transaction the access is recorded for conflict checks.
    pub(super) fn read_node(&mut self, cx: &mut Cx, name: &str) -> Result<Arc<Node>, XsError> {
        if let Some(t) = cx.trans.as_ref() {
            if let Some(i) = t.find(name) {
                return t.accessed[i].node.clone().ok_or(XsError::Enoent);
            }
            let global = self.store.get(name).map(|n| self.adjusted(n));
            let init = match &global {
                Some(n) => Accessed::read(name, n.generation, Some(Arc::clone(n))),
                None => Accessed::read(name, NO_GENERATION, None),
            };
            self.ta_access(cx, name, init)?;
            return global.ok_or(XsError::Enoent);
        }
        match self.store.get(name) {
            Some(n) => Ok(self.adjusted(n)),
            None => Err(XsError::Enoent),
        }
    }

    /// C `ask_parents`: permissions of the nearest existing ancestor.
    fn ask_parents(&mut self, cx: &mut Cx, name: &str) -> Result<u8, XsError> {
        let mut cur = name.to_string();
        loop {
            cur = path::parent(&cur).to_string();
            match self.read_node(cx, &cur) {
                Ok(n) => return Ok(self.perm_for_conn(cx, &n.perms)),
                Err(e) if can_propagate(e) => return Err(e),
                Err(_) => {}
            }
            if cur == "/" {
                tracing::error!("no permissions at root");
                return Ok(0);
            }
        }
    }

    /// C `errno_from_parents`: hide the reason unless the caller may know it.
    fn errno_from_parents(&mut self, cx: &mut Cx, name: &str, err: XsError, perm: u8) -> XsError {
        if err == XsError::Enomem {
            return err;
        }
        match self.ask_parents(cx, name) {
            Err(e) => e,
            Ok(p) if p & perm != 0 => err,
            Ok(_) => XsError::Eacces,
        }
    }

    /// C `get_node`: the node if the caller has `perm` on it, else the error the
    /// caller may see. `name` must be canonical (see [`Server::canonical`]).
    pub(super) fn get_node(
        &mut self,
        cx: &mut Cx,
        name: &str,
        perm: u8,
    ) -> Result<Arc<Node>, XsError> {
        let err = match self.read_node(cx, name) {
            Ok(n) => {
                if self.perm_for_conn(cx, &n.perms) & perm == perm {
                    return Ok(n);
                }
                XsError::Eacces
            }
            Err(e) => e,
        };
        if can_propagate(err) {
            return Err(err);
        }
        Err(self.errno_from_parents(cx, name, err, perm))
    }

    /// [`Server::get_node`] for requests that only read a node to build their
    /// reply: `reply` gets the node as the caller sees it (permissions adjusted)
    /// and its result is the reply. Outside a transaction the committed record is
    /// read in place, so that a 20 KB children list or a 2000-byte value is not
    /// copied before the reply takes what it needs (a part of the list, or
    /// nothing for E2BIG); docs/PERFORMANCE.md. Errors are `get_node`'s.
    pub(super) fn reply_from_node(
        &mut self,
        cx: &mut Cx,
        name: &str,
        perm: u8,
        reply: impl FnOnce(&NodeView<'_>) -> Result<Vec<u8>, XsError>,
    ) -> Result<Vec<u8>, XsError> {
        if cx.trans.is_some() {
            let n = self.get_node(cx, name, perm)?;
            return reply(&NodeView {
                value: &n.value,
                children: &n.children,
                perms: n.perms.clone(),
                generation: n.generation,
            });
        }
        let err = match self.store.view(name) {
            Some(mut view) => {
                self.adjust_perm_list(view.generation, &mut view.perms);
                if self.perm_for_conn(cx, &view.perms) & perm == perm {
                    return reply(&view);
                }
                XsError::Eacces
            }
            None => XsError::Enoent,
        };
        // Neither ENOENT nor EACCES propagates (`can_propagate`).
        Err(self.errno_from_parents(cx, name, err, perm))
    }

    /// Canonical, valid node name of a request argument (C `canonicalize` +
    /// `is_valid_nodename`); `EINVAL` otherwise.
    pub(super) fn canonical(&self, cx: &Cx, arg: Option<&[u8]>) -> Result<String, XsError> {
        let arg = arg.ok_or(XsError::Einval)?;
        let name = path::canonicalize(arg, &cx.home);
        let max = usize::try_from(self.config.quotas.path_max).unwrap_or(0);
        if !path::is_valid_nodename(&name, max) {
            return Err(XsError::Einval);
        }
        String::from_utf8(name).map_err(|_| XsError::Einval)
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Memory a node record costs its owner (record plus key, as C accounts).
    fn node_memory(name: &str, node: &Node) -> i64 {
        (node.record_size() + name.len()) as i64
    }

    /// Writes a node into the committed store, moving memory accounting between
    /// owners. No quota checks.
    pub(super) fn store_put(&mut self, name: &str, node: Node) {
        let new_mem = Self::node_memory(name, &node);
        let new_owner = node.owner();
        if let Some(old) = self.store.insert(name, &node) {
            let old_mem = (old.record_size + name.len()) as i64;
            if let Some(d) = self.domains.get_mut(&old.owner) {
                d.memory -= old_mem;
            }
        }
        if let Some(d) = self.domains.get_mut(&new_owner) {
            d.memory += new_mem;
        }
    }

    pub(super) fn store_del(&mut self, name: &str) {
        if let Some(old) = self.store.remove(name) {
            let old_mem = (old.record_size + name.len()) as i64;
            if let Some(d) = self.domains.get_mut(&old.owner) {
                d.memory -= old_mem;
            }
        }
    }

    /// C `write_node`: takes a new generation, records the write in the
    /// transaction or stores it, enforcing node size (and memory) quotas for
    /// unprivileged callers unless `no_quota_check`.
    pub(super) fn write_node(
        &mut self,
        cx: &mut Cx,
        name: &str,
        mut node: Node,
        no_quota_check: bool,
    ) -> Result<(), XsError> {
        node.generation = self.next_generation();
        let idx = if cx.trans.is_some() {
            let init = Accessed::written(name, node.perms.clone());
            Some(self.ta_access(cx, name, init)?.0)
        } else {
            None
        };
        self.adjust_perms(&mut node);
        let fail = |cx: &mut Cx, e: XsError| {
            if let Some(t) = cx.trans.as_mut() {
                t.fail = true;
            }
            e
        };
        if !no_quota_check && cx.unpriv {
            if node.record_size() as i64 >= self.config.quotas.node_size {
                return Err(fail(cx, XsError::Enospc));
            }
            let hard = self.config.quotas.memory_hard;
            if cx.trans.is_none() && hard > 0 {
                let owner = node.owner();
                let old = self
                    .store
                    .info(name)
                    .filter(|o| o.owner == owner)
                    .map_or(0, |o| (o.record_size + name.len()) as i64);
                let cur = self.domains.get(&owner).map_or(0, |d| d.memory);
                let unpriv_owner = !self.is_privileged_domid(owner);
                if unpriv_owner && cur - old + Self::node_memory(name, &node) >= hard {
                    return Err(fail(cx, XsError::Enomem));
                }
            }
        }
        match (cx.trans.as_mut(), idx) {
            (Some(t), Some(i)) => {
                let a = &mut t.accessed[i];
                a.modified = true;
                a.node = Some(Arc::new(node));
            }
            _ => self.store_put(name, node),
        }
        Ok(())
    }

    /// C `access_node(DELETE)` + `do_tdb_delete`: takes a generation and removes
    /// the node from the transaction's view or the store.
    fn delete_node(&mut self, cx: &mut Cx, name: &str) -> Result<(), XsError> {
        self.next_generation();
        if cx.trans.is_some() {
            let (i, _new) = self.ta_access(cx, name, Accessed::written(name, Vec::new()))?;
            if let Some(t) = cx.trans.as_mut() {
                let a = &mut t.accessed[i];
                a.modified = true;
                a.node = None;
            }
            return Ok(());
        }
        self.store_del(name);
        Ok(())
    }

    /// C `destroy_node_rm`: removes a record without taking a generation.
    fn drop_node_raw(&mut self, cx: &mut Cx, name: &str) {
        if let Some(t) = cx.trans.as_mut() {
            if let Some(i) = t.find(name) {
                t.accessed[i].node = None;
            }
            return;
        }
        self.store_del(name);
    }

    /// C `construct_node` + `create_node`: creates `name` and any missing
    /// ancestors, each inheriting its parent's permissions (owned by the caller if
    /// unprivileged), enforcing the node quota. Returns the new node and the
    /// permissions of its parent.
    pub(super) fn create_node(
        &mut self,
        cx: &mut Cx,
        name: &str,
        value: Vec<u8>,
    ) -> Result<(Node, Vec<Perm>), XsError> {
        // Walk up to the first existing ancestor.
        let mut missing = vec![name.to_string()];
        let mut parent_name = path::parent(name).to_string();
        let parent = loop {
            match self.read_node(cx, &parent_name) {
                Ok(p) => break p,
                Err(XsError::Enoent) if parent_name != "/" => {
                    missing.push(parent_name.clone());
                    parent_name = path::parent(&parent_name).to_string();
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(t) = cx.trans.as_mut() {
            t.node_created = true;
        }
        // Build the new nodes top-down.
        let mut top = (*parent).clone();
        let mut perms = top.perms.clone();
        if cx.unpriv {
            perms[0].id = cx.id;
        }
        let mut chain: Vec<(String, Node)> = Vec::with_capacity(missing.len());
        top.add_child(path::basename(&missing[missing.len() - 1]));
        for (k, n) in missing.iter().rev().enumerate() {
            let mut node = Node::new(perms.clone());
            if let Some(child) = missing.len().checked_sub(k + 2).map(|j| &missing[j]) {
                node.add_child(path::basename(child));
            }
            chain.push((n.clone(), node));
        }
        if let Some(last) = chain.last_mut() {
            last.1.value = value;
        }
        let parent_perms_of_new = if chain.len() >= 2 {
            chain[chain.len() - 2].1.perms.clone()
        } else {
            top.perms.clone()
        };
        // Write bottom-up: new nodes (quota checked), then the existing parent.
        let mut written: Vec<String> = Vec::new();
        let result = (|| {
            for (n, node) in chain.iter().rev() {
                if self.caller_entries(cx) >= self.config.quotas.nodes {
                    return Err(XsError::Enospc);
                }
                self.write_node(cx, n, node.clone(), false)?;
                written.push(n.clone());
                self.entry_add(cx, node.owner(), 1)?;
            }
            self.write_node(cx, &parent_name, top, false)
        })();
        if let Err(e) = result {
            for n in written.iter().rev() {
                self.drop_node_raw(cx, n);
                if let Some((_, node)) = chain.iter().find(|(c, _)| c == n) {
                    let _ = self.entry_add(cx, node.owner(), -1);
                }
                if let Some(t) = cx.trans.as_mut() {
                    t.fail = true;
                }
            }
            return Err(e);
        }
        let node = chain
            .pop()
            .map(|(_, n)| n)
            .unwrap_or_else(|| Node::new(perms));
        Ok((node, parent_perms_of_new))
    }

    /// C `rm_node`: removes `name` and its subtree (children first), firing
    /// watches for each removed node, then unlinks it from its parent.
    pub(super) fn rm_node(&mut self, cx: &mut Cx, name: &str) -> Result<(), XsError> {
        let parent_name = path::parent(name).to_string();
        let parent = match self.read_node(cx, &parent_name) {
            Ok(p) => p,
            Err(e) if can_propagate(e) => return Err(e),
            Err(_) => return Err(XsError::Einval),
        };
        struct Frame {
            name: String,
            node: Arc<Node>,
            kids: Vec<String>,
            next: usize,
        }
        let root = self.read_node(cx, name).map_err(|_| XsError::Eio)?;
        let kids = |n: &Node| n.child_names().map(str::to_string).collect::<Vec<_>>();
        let mut stack = vec![Frame {
            name: name.to_string(),
            kids: kids(&root),
            node: root,
            next: 0,
        }];
        while let Some(top) = stack.last_mut() {
            if top.next < top.kids.len() {
                let child = path::child_path(&top.name, &top.kids[top.next]);
                top.next += 1;
                let node = self.read_node(cx, &child).map_err(|e| {
                    tracing::error!(node = %child, "child missing while removing subtree");
                    if can_propagate(e) {
                        e
                    } else {
                        XsError::Eio
                    }
                })?;
                stack.push(Frame {
                    name: child,
                    kids: kids(&node),
                    node,
                    next: 0,
                });
                continue;
            }
            let Some(done) = stack.pop() else { break };
            // C delnode_sub(): delete, fire watches while perms are known.
            self.delete_node(cx, &done.name)?;
            let exact = done.name != name;
            let parent_perms = stack.last().map(|f| f.node.perms.clone());
            self.fire_watches(
                cx,
                &done.name,
                Some(&done.node.perms),
                parent_perms.as_deref(),
                exact,
                None,
            );
            self.entry_add(cx, done.node.owner(), -1)?;
            if !stack.is_empty() {
                // C rewrites the walk parent without this child; the parent is
                // deleted right after, so only its generation is visible.
                self.next_generation();
            }
        }
        let mut p = (*parent).clone();
        if !p.remove_child(path::basename(name)) {
            tracing::error!(node = %name, "not listed by its parent");
            return Err(XsError::Eio);
        }
        self.write_node(cx, &parent_name, p, true)
    }
}
