//! The xenstore data base: a map from absolute path to node, like C xenstored's
//! TDB (one record per node, each holding its value, permissions, generation and
//! the NUL-separated list of its children's names). Nodes are shared (`Arc`) so
//! that transactions can keep copies of what they read or wrote without copying
//! values.

pub mod path;
pub mod perms;
pub mod quota;

use std::collections::HashMap;
use std::sync::Arc;

pub use perms::{Perm, PERM_IGNORE, PERM_NONE, PERM_OWNER, PERM_READ, PERM_WRITE};
pub use quota::{QuotaKind, Quotas};

/// Generation of a node that does not exist (C `NO_GENERATION`).
pub const NO_GENERATION: u64 = u64::MAX;
/// Size of C's record header (`struct xs_tdb_record_hdr`: u64 + 3 * u32, padded
/// to 8), which counts against the node-size quota.
pub const RECORD_HEADER_SIZE: usize = 24;
/// Size of one C `struct xs_permissions` in a record.
pub const RECORD_PERM_SIZE: usize = 8;

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value (binary).
    pub value: Vec<u8>,
    /// Children's base names, each followed by a NUL, in creation order.
    pub children: Vec<u8>,
    /// Permissions; never empty, the first entry names the owner.
    pub perms: Vec<Perm>,
    /// Generation count of the last modification.
    pub generation: u64,
}

impl Node {
    /// A node without value or children.
    pub fn new(perms: Vec<Perm>) -> Node {
        Node {
            value: Vec::new(),
            children: Vec::new(),
            perms,
            generation: 0,
        }
    }

    /// The owner's domain id.
    pub fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.id)
    }

    /// Size of the record as C accounts it against the node-size quota.
    pub fn record_size(&self) -> usize {
        RECORD_HEADER_SIZE
            + self.perms.len() * RECORD_PERM_SIZE
            + self.value.len()
            + self.children.len()
    }

    /// Appends a child name.
    pub fn add_child(&mut self, name: &str) {
        self.children.extend_from_slice(name.as_bytes());
        self.children.push(0);
    }

    /// Removes a child name; false when it is not listed.
    pub fn remove_child(&mut self, name: &str) -> bool {
        let mut off = 0;
        while off < self.children.len() {
            let len = self.children[off..]
                .iter()
                .position(|c| *c == 0)
                .unwrap_or(self.children.len() - off);
            if &self.children[off..off + len] == name.as_bytes() {
                let end = (off + len + 1).min(self.children.len());
                self.children.drain(off..end);
                return true;
            }
            off += len + 1;
        }
        false
    }

    /// The children's names.
    pub fn child_names(&self) -> impl Iterator<Item = &str> {
        self.children
            .split(|c| *c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| std::str::from_utf8(s).unwrap_or(""))
    }
}

/// The committed data base.
#[derive(Debug, Default)]
pub struct Store {
    nodes: HashMap<Box<str>, Arc<Node>>,
}

impl Store {
    /// An empty store (no root).
    pub fn new() -> Store {
        Store::default()
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Arc<Node>> {
        self.nodes.get(path)
    }

    /// Stores a node, returning the previous one.
    pub fn insert(&mut self, path: &str, node: Arc<Node>) -> Option<Arc<Node>> {
        self.nodes.insert(path.into(), node)
    }

    /// Removes a node record (not its children or the parent's child entry).
    pub fn remove(&mut self, path: &str) -> Option<Arc<Node>> {
        self.nodes.remove(path)
    }

    /// Number of node records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without any record.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All records (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Node>)> {
        self.nodes.iter().map(|(k, v)| (&**k, v))
    }

    /// Checks the tree's consistency: every child entry has a record, every
    /// record but the root is listed by its parent, every node has permissions.
    /// Returns a description of each problem found.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, node) in self.iter() {
            if node.perms.is_empty() {
                problems.push(format!("{name}: no permissions"));
            }
            for child in node.child_names() {
                let cp = path::child_path(name, child);
                if self.get(&cp).is_none() {
                    problems.push(format!("{name}: child {child} missing"));
                }
            }
            if name != "/" {
                let parent = path::parent(name);
                let listed = self
                    .get(parent)
                    .is_some_and(|p| p.child_names().any(|c| c == path::basename(name)));
                if !listed {
                    problems.push(format!("{name}: not listed by {parent}"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_list() {
        let mut n = Node::new(vec![Perm::new(0, PERM_NONE)]);
        n.add_child("a");
        n.add_child("bb");
        n.add_child("c");
        assert_eq!(n.children, b"a\0bb\0c\0".to_vec());
        assert!(n.remove_child("bb"));
        assert!(!n.remove_child("b"));
        assert_eq!(n.children, b"a\0c\0".to_vec());
        assert_eq!(n.child_names().collect::<Vec<_>>(), vec!["a", "c"]);
        assert_eq!(n.record_size(), RECORD_HEADER_SIZE + RECORD_PERM_SIZE + 4);
    }

    #[test]
    fn check_finds_dangling_entries() {
        let mut s = Store::new();
        let mut root = Node::new(vec![Perm::new(0, PERM_NONE)]);
        root.add_child("a");
        s.insert("/", Arc::new(root));
        assert_eq!(s.check().len(), 1);
        s.insert("/a", Arc::new(Node::new(vec![Perm::new(0, PERM_NONE)])));
        assert!(s.check().is_empty());
        s.insert("/b", Arc::new(Node::new(vec![Perm::new(0, PERM_NONE)])));
        assert_eq!(s.check().len(), 1);
    }
}
