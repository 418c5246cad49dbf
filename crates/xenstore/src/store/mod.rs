//! The xenstore data base: a map from absolute path to node, like C xenstored's
//! TDB (one record per node, each holding its value, permissions, generation and
//! the NUL-separated list of its children's names). Records are stored compactly
//! (one allocation each, path included); lookups hand out decoded copies that
//! transactions may share (`Arc`).

pub mod path;
pub mod perms;
pub mod quota;

use std::collections::HashSet;
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

/// Bytes of one permission entry in a stored record (u32 id + u8 bits).
const STORED_PERM_SIZE: usize = 5;

/// A node as kept in the store: one allocation holding a small header, the
/// path, the permissions, the value and the children list (like a TDB record
/// with its key), so that a store of 100,000 nodes costs no more than C
/// xenstored's. The header (generation and three lengths) is LEB128 varints, so
/// that the hash table's slot is a single 16-byte pointer and a typical record
/// carries 5-7 header bytes instead of 16 (docs/PERFORMANCE.md, memory).
#[derive(Debug, Clone)]
struct Entry {
    /// varint generation, varint path length, varint number of permissions,
    /// varint value length; path, permissions, value, children.
    buf: Box<[u8]>,
}

/// Layout of an [`Entry`]'s buffer, decoded from its header.
#[derive(Debug, Clone, Copy)]
struct Layout {
    generation: u64,
    key_start: usize,
    key_end: usize,
    nperms: usize,
    value_end: usize,
}

/// Appends `v` as an LEB128 varint.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes [`put_varint`] writes for `v`.
fn varint_len(v: u64) -> usize {
    (u64::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// Reads an LEB128 varint at `*off`, advancing it; a truncated or overlong
/// varint (never written by [`put_varint`]) reads as what it has.
fn get_varint(buf: &[u8], off: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = buf.get(*off) {
        *off += 1;
        if shift < u64::BITS {
            v |= u64::from(b & 0x7f) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

impl Entry {
    fn encode(path: &str, node: &Node) -> Entry {
        let mut buf = Vec::with_capacity(
            varint_len(node.generation)
                + varint_len(path.len() as u64)
                + varint_len(node.perms.len() as u64)
                + varint_len(node.value.len() as u64)
                + path.len()
                + node.perms.len() * STORED_PERM_SIZE
                + node.value.len()
                + node.children.len(),
        );
        put_varint(&mut buf, node.generation);
        put_varint(&mut buf, path.len() as u64);
        put_varint(&mut buf, node.perms.len() as u64);
        put_varint(&mut buf, node.value.len() as u64);
        buf.extend_from_slice(path.as_bytes());
        for p in &node.perms {
            buf.extend_from_slice(&p.id.to_le_bytes());
            buf.push(p.bits);
        }
        buf.extend_from_slice(&node.value);
        buf.extend_from_slice(&node.children);
        Entry {
            buf: buf.into_boxed_slice(),
        }
    }

    fn layout(&self) -> Layout {
        let mut off = 0;
        let generation = get_varint(&self.buf, &mut off);
        let key_len = get_varint(&self.buf, &mut off) as usize;
        let nperms = get_varint(&self.buf, &mut off) as usize;
        let value_len = get_varint(&self.buf, &mut off) as usize;
        let len = self.buf.len();
        let key_end = off.saturating_add(key_len).min(len);
        let perms_end = key_end
            .saturating_add(nperms.saturating_mul(STORED_PERM_SIZE))
            .min(len);
        Layout {
            generation,
            key_start: off,
            key_end,
            nperms: (perms_end - key_end) / STORED_PERM_SIZE,
            value_end: perms_end.saturating_add(value_len).min(len),
        }
    }

    fn key(&self) -> &str {
        let l = self.layout();
        std::str::from_utf8(&self.buf[l.key_start..l.key_end]).unwrap_or("")
    }

    fn perm(&self, l: &Layout, i: usize) -> Perm {
        let off = l.key_end + i * STORED_PERM_SIZE;
        let b = &self.buf[off..off + STORED_PERM_SIZE];
        Perm::new(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), b[4])
    }

    fn generation(&self) -> u64 {
        let mut off = 0;
        get_varint(&self.buf, &mut off)
    }

    fn view(&self) -> NodeView<'_> {
        let l = self.layout();
        let pe = l.key_end + l.nperms * STORED_PERM_SIZE;
        NodeView {
            value: &self.buf[pe..l.value_end],
            children: &self.buf[l.value_end..],
            perms: (0..l.nperms).map(|i| self.perm(&l, i)).collect(),
            generation: l.generation,
        }
    }

    fn decode(&self) -> Node {
        let l = self.layout();
        let pe = l.key_end + l.nperms * STORED_PERM_SIZE;
        Node {
            value: self.buf[pe..l.value_end].to_vec(),
            children: self.buf[l.value_end..].to_vec(),
            perms: (0..l.nperms).map(|i| self.perm(&l, i)).collect(),
            generation: l.generation,
        }
    }

    /// Owner and C record size of the stored node.
    fn info(&self) -> StoredInfo {
        let l = self.layout();
        let perms_end = l.key_end + l.nperms * STORED_PERM_SIZE;
        StoredInfo {
            owner: if l.nperms > 0 { self.perm(&l, 0).id } else { 0 },
            record_size: RECORD_HEADER_SIZE + l.nperms * RECORD_PERM_SIZE + self.buf.len()
                - perms_end,
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl std::hash::Hash for Entry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl std::borrow::Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        self.key()
    }
}

/// A stored node read in place: value and children borrowed from the record
/// (no copy), permissions decoded. For requests that only read a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView<'a> {
    /// The value (binary).
    pub value: &'a [u8],
    /// Children's base names, each followed by a NUL, in creation order.
    pub children: &'a [u8],
    /// Permissions; the first entry names the owner.
    pub perms: Vec<Perm>,
    /// Generation count of the last modification.
    pub generation: u64,
}

/// What the store reports about a replaced or removed node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredInfo {
    /// The owner's domain id.
    pub owner: u32,
    /// The record size as C accounts it ([`Node::record_size`]).
    pub record_size: usize,
}

/// The committed data base.
#[derive(Debug, Default)]
pub struct Store {
    nodes: HashSet<Entry>,
}

impl Store {
    /// An empty store (no root).
    pub fn new() -> Store {
        Store::default()
    }

    /// A copy of the node at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<Node>> {
        self.nodes.get(path).map(|e| Arc::new(e.decode()))
    }

    /// The node at `path`, read in place (see [`NodeView`]).
    pub fn view(&self, path: &str) -> Option<NodeView<'_>> {
        self.nodes.get(path).map(Entry::view)
    }

    /// Owner and record size of the node at `path`.
    pub fn info(&self, path: &str) -> Option<StoredInfo> {
        self.nodes.get(path).map(Entry::info)
    }

    /// Generation of the node at `path`.
    pub fn generation(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(Entry::generation)
    }

    /// True when `path` has a record.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains(path)
    }

    /// Stores a node, reporting the one it replaced.
    pub fn insert(&mut self, path: &str, node: &Node) -> Option<StoredInfo> {
        let old = self.nodes.replace(Entry::encode(path, node));
        old.map(|e| e.info())
    }

    /// Removes a node record (not its children or the parent's child entry).
    pub fn remove(&mut self, path: &str) -> Option<StoredInfo> {
        self.nodes.take(path).map(|e| e.info())
    }

    /// Number of node records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without any record.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All records (unordered), decoded.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Node)> {
        self.nodes.iter().map(|e| (e.key(), e.decode()))
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
                if !self.contains(&cp) {
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
        s.insert("/", &root);
        assert_eq!(s.check().len(), 1);
        s.insert("/a", &Node::new(vec![Perm::new(0, PERM_NONE)]));
        assert!(s.check().is_empty());
        s.insert("/b", &Node::new(vec![Perm::new(0, PERM_NONE)]));
        assert_eq!(s.check().len(), 1);
    }

    #[test]
    fn records_round_trip() {
        let mut s = Store::new();
        let long = "x".repeat(3000);
        let mut n = Node::new(vec![
            Perm::new(7, PERM_NONE),
            Perm::new(0x1234_5678, PERM_READ),
        ]);
        n.value = vec![0, 0xff, 3];
        n.add_child("c");
        n.add_child(&long);
        for generation in [0, 127, 128, 1 << 40, NO_GENERATION] {
            n.generation = generation;
            for path in ["/", "/a", &format!("/{long}")] {
                s.insert(path, &n);
                assert_eq!(s.get(path).as_deref(), Some(&n));
                let v = s.view(path).expect("stored");
                assert_eq!(
                    (v.value, v.children, &v.perms, v.generation),
                    (&n.value[..], &n.children[..], &n.perms, n.generation)
                );
                assert_eq!(s.generation(path), Some(generation));
                let info = s.info(path).expect("stored");
                assert_eq!(info.owner, 7);
                assert_eq!(info.record_size, n.record_size());
            }
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.remove("/a").map(|i| i.owner), Some(7));
        assert!(!s.contains("/a"));
        assert!(s.contains("/"));
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut off = 0;
            assert_eq!(get_varint(&buf, &mut off), v);
            assert_eq!(off, buf.len());
            assert_eq!(varint_len(v), buf.len());
        }
    }
}
