//! Handlers of the node requests (C `xenstored_core.c`): DIRECTORY,
//! DIRECTORY_PART, READ, WRITE, MKDIR, RM, GET_PERMS, SET_PERMS.

use std::sync::Arc;

use super::{Cx, Reply, Server};
use crate::store::perms::{c_atoi, perms_to_payload};
use crate::store::{path, Node, Perm, PERM_IGNORE, PERM_OWNER, PERM_READ, PERM_WRITE};
use crate::wire::{
    count_args, one_arg, split_args, write_args, MsgType, XsError, XENSTORE_PAYLOAD_MAX,
};

/// Types a client may send (C `wire_funcs` entries with a handler).
pub(super) fn is_request(t: MsgType) -> bool {
    !matches!(
        t,
        MsgType::WatchEvent
            | MsgType::Error
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota
    )
}

/// Types only privileged connections may send (C `XS_FLAG_PRIV`).
pub(super) fn is_privileged_only(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::Control
            | MsgType::Introduce
            | MsgType::Release
            | MsgType::IsDomainIntroduced
            | MsgType::Resume
            | MsgType::SetTarget
    )
}

/// Types whose transaction id is ignored (C `XS_FLAG_NOTID`).
pub(super) fn ignores_transaction(t: MsgType) -> bool {
    matches!(t, MsgType::Watch | MsgType::Unwatch)
}

impl Server {
    pub(super) fn do_directory(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let name = self.canonical(cx, one_arg(payload))?;
        let reply = self.reply_from_node(cx, &name, PERM_READ, |node| {
            // What `send_reply` would turn into E2BIG, without copying it first.
            if node.children.len() > XENSTORE_PAYLOAD_MAX {
                return Err(XsError::E2big);
            }
            Ok(node.children.to_vec())
        })?;
        Ok(Reply::Payload(reply))
    }

    /// C `send_directory_part`: `<generation>\0` followed by as many whole child
    /// names from byte offset `off` as fit; a final empty string marks the end.
    pub(super) fn do_directory_part(
        &mut self,
        cx: &mut Cx,
        payload: &[u8],
    ) -> Result<Reply, XsError> {
        if count_args(payload) != 2 {
            return Err(XsError::Einval);
        }
        let args = split_args(payload);
        let name = self.canonical(cx, Some(args[0]))?;
        let off = c_atoi(args[1]) as u32 as usize;
        let reply = self.reply_from_node(cx, &name, PERM_READ, |node| {
            Ok(directory_part(node.generation, node.children, off))
        })?;
        Ok(Reply::Payload(reply))
    }

    pub(super) fn do_read(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let name = self.canonical(cx, one_arg(payload))?;
        let reply = self.reply_from_node(cx, &name, PERM_READ, |node| Ok(node.value.to_vec()))?;
        Ok(Reply::Payload(reply))
    }

    pub(super) fn do_get_perms(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let name = self.canonical(cx, one_arg(payload))?;
        let reply = self.reply_from_node(cx, &name, PERM_READ, |node| {
            Ok(perms_to_payload(&node.perms))
        })?;
        Ok(Reply::Payload(reply))
    }

    pub(super) fn do_write(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let (raw, value) = write_args(payload).ok_or(XsError::Einval)?;
        let name = self.canonical(cx, Some(raw))?;
        let (node, parent_perms) = match self.get_node(cx, &name, PERM_WRITE) {
            Ok(existing) => {
                let mut n = Arc::unwrap_or_clone(existing);
                n.value = value.to_vec();
                self.write_node(cx, &name, n.clone(), false)?;
                (n, None)
            }
            Err(XsError::Enoent) => {
                let (n, pp) = self.create_node(cx, &name, value.to_vec())?;
                (n, Some(pp))
            }
            Err(e) => return Err(e),
        };
        self.fire_watches(
            cx,
            &name,
            Some(&node.perms),
            parent_perms.as_deref(),
            false,
            None,
        );
        super::ok()
    }

    pub(super) fn do_mkdir(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let name = self.canonical(cx, one_arg(payload))?;
        match self.get_node(cx, &name, PERM_WRITE) {
            Ok(_) => {}
            Err(XsError::Enoent) => {
                let (n, pp) = self.create_node(cx, &name, Vec::new())?;
                self.fire_watches(cx, &name, Some(&n.perms), Some(&pp), false, None);
            }
            Err(e) => return Err(e),
        }
        super::ok()
    }

    pub(super) fn do_rm(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let name = self.canonical(cx, one_arg(payload))?;
        match self.get_node(cx, &name, PERM_WRITE) {
            Ok(_) => {}
            Err(XsError::Enoent) => {
                // Missing is fine if the parent exists.
                return match self.read_node(cx, path::parent(&name)) {
                    Ok(_) => super::ok(),
                    Err(e @ (XsError::Enomem | XsError::Enospc)) => Err(e),
                    Err(_) => Err(XsError::Enoent),
                };
            }
            Err(e) => return Err(e),
        }
        if name == "/" {
            return Err(XsError::Einval);
        }
        self.rm_node(cx, &name)?;
        super::ok()
    }

    pub(super) fn do_set_perms(&mut self, cx: &mut Cx, payload: &[u8]) -> Result<Reply, XsError> {
        let num = count_args(payload);
        if num < 2 {
            return Err(XsError::Einval);
        }
        let num = num - 1;
        if cx.unpriv && num as i64 > self.config.quotas.permissions {
            return Err(XsError::Enospc);
        }
        let args = split_args(payload);
        let mut perms = args[1..=num]
            .iter()
            .map(|s| Perm::parse(s))
            .collect::<Result<Vec<Perm>, XsError>>()?;
        // C domain_alloc_permrefs(): entries of unknown domains are ignored.
        for p in &mut perms {
            if self.domain_existing(p.id).is_none() {
                p.bits |= PERM_IGNORE;
            }
        }
        if perms[0].bits & PERM_IGNORE != 0 {
            return Err(XsError::Enoent);
        }
        if args[0].first() == Some(&b'@') {
            // For an unknown special name C returns a stale errno (seen: ENOENT,
            // EINVAL, or no reply at all); EINVAL is what its code means.
            self.set_perms_special(cx, args[0], perms)?;
            return super::ok();
        }
        let name = self.canonical(cx, Some(args[0]))?;
        let node = self.get_node(cx, &name, PERM_WRITE | PERM_OWNER)?;
        if cx.unpriv && perms[0].id != node.owner() {
            return Err(XsError::Eperm);
        }
        let old_perms = node.perms.clone();
        let mut n: Node = Arc::unwrap_or_clone(node);
        self.entry_add(cx, n.owner(), -1)?;
        n.perms = perms;
        if let Err(e) = self.entry_add(cx, n.owner(), 1) {
            let _ = self.entry_add(cx, old_perms[0].id, 1);
            return Err(e);
        }
        let new_owner = n.owner();
        if let Err(e) = self.write_node(cx, &name, n.clone(), false) {
            let _ = self.entry_add(cx, new_owner, -1);
            let _ = self.entry_add(cx, old_perms[0].id, 1);
            return Err(e);
        }
        self.fire_watches(cx, &name, Some(&n.perms), None, false, Some(&old_perms));
        super::ok()
    }
}

/// The payload of a DIRECTORY_PART reply for a node of generation `generation`
/// with `children` (NUL-terminated names), from byte offset `off` (C
/// `send_directory_part`): the generation, then the longest run of whole names
/// (each with its NUL) from `off` that fits in `XENSTORE_PAYLOAD_MAX` with the
/// generation and a final NUL, which is added when the run reaches the end.
fn directory_part(generation: u64, children: &[u8], off: usize) -> Vec<u8> {
    let mut out = generation.to_string().into_bytes();
    out.push(0);
    let genlen = out.len();
    if off >= children.len() {
        out.push(0);
        return out;
    }
    let maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1;
    let rest = &children[off..];
    // The run ends after the last NUL among the first `maxlen` bytes: found
    // from the back, so a part costs the length of its last name, not a walk
    // over every name in it (docs/PERFORMANCE.md).
    let window = &rest[..rest.len().min(maxlen)];
    let len = window.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
    out.extend_from_slice(&rest[..len]);
    if len == rest.len() {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::string_at;

    /// C `send_directory_part`'s loop, name by name, as a reference.
    fn directory_part_by_name(generation: u64, children: &[u8], off: usize) -> Vec<u8> {
        let mut out = generation.to_string().into_bytes();
        out.push(0);
        let genlen = out.len();
        if off >= children.len() {
            out.push(0);
            return out;
        }
        let maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1;
        let mut len = 0;
        loop {
            let child_len =
                string_at(children, off + len).map_or(children.len() - off - len, |n| n - 1);
            if len + child_len >= maxlen {
                break;
            }
            len += child_len + 1;
            if off + len >= children.len() {
                break;
            }
        }
        let end = (off + len).min(children.len());
        out.extend_from_slice(&children[off..end]);
        if off + len == children.len() {
            out.push(0);
        }
        out
    }

    #[test]
    fn directory_part_cuts_where_the_name_by_name_walk_does() {
        // Names of many lengths (a simple deterministic generator), among them
        // names longer than a whole part.
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut checked = 0;
        for list in 0..40 {
            let mut children = Vec::new();
            let names = 1 + next() % 900;
            for _ in 0..names {
                let len = match next() % 50 {
                    0 if list % 4 == 0 => 4000 + next() % 200,
                    n if n < 5 => 1,
                    _ => 1 + next() % 40,
                };
                children.extend(std::iter::repeat_n(
                    b'a' + (next() % 26) as u8,
                    len as usize,
                ));
                children.push(0);
            }
            let mut offsets: Vec<usize> = (0..children.len()).step_by(97).collect();
            offsets.extend([children.len() - 1, children.len(), children.len() + 5]);
            for generation in [0, 12345, u64::MAX] {
                for &off in &offsets {
                    assert_eq!(
                        directory_part(generation, &children, off),
                        directory_part_by_name(generation, &children, off),
                        "list {list} offset {off}"
                    );
                    checked += 1;
                }
                // Walking the parts as a client does reassembles the list.
                let mut got = Vec::new();
                for _ in 0..children.len() + 2 {
                    let r = directory_part(generation, &children, got.len());
                    let body = &r[r.iter().position(|b| *b == 0).expect("gen") + 1..];
                    if body.ends_with(b"\0\0") || body == b"\0" {
                        got.extend_from_slice(&body[..body.len() - 1]);
                        break;
                    }
                    if body.is_empty() {
                        // A name longer than a part: C cannot page past it either.
                        break;
                    }
                    got.extend_from_slice(body);
                }
                if got.len() == children.len() {
                    assert_eq!(got, children);
                }
            }
        }
        assert!(checked > 1000);
    }
}
