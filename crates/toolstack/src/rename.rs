//! `rxl rename` (tools/xl/xl_misc.c main_rename, libxl__domain_rename): a
//! domain's name lives in `/local/domain/<id>/name` and `/vm/<uuid>/name`.
//!
//! Both change in one transaction that also reads every other domain's name, so
//! a concurrent rename or create that takes the same name makes the commit fail
//! and the check run again; libxl checks uniqueness outside its transaction,
//! where two renames racing for one name can both win.

use xenstore::client::{Client, ClientError, XsOps};

use crate::domain::dom_path;

#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    #[error("a domain's name cannot be empty")]
    Empty,
    #[error("domain {0} has no name in xenstore (not a domain made by rxl or xl?)")]
    NoName(u32),
    #[error("domain with name {name:?} already exists (domain {domid})")]
    Taken { name: String, domid: u32 },
    #[error("xenstore")]
    Xenstore(#[from] ClientError),
}

/// Renames `domid` to `new_name`, refusing a name another of `domids` (the
/// domains Xen knows) already has. Renaming a domain to its own name succeeds
/// and changes nothing.
pub fn rename(
    xs: &mut Client,
    domids: &[u32],
    domid: u32,
    new_name: &str,
) -> Result<(), RenameError> {
    // xl lets an empty name through (libxl only checks non-empty names for
    // uniqueness); a nameless domain cannot be named on the command line again.
    if new_name.is_empty() {
        return Err(RenameError::Empty);
    }
    xs.transaction(|tx| {
        for &other in domids.iter().filter(|&&d| d != domid) {
            let name = tx.try_read(&format!("{}/name", dom_path(other)))?;
            if name.as_deref() == Some(new_name.as_bytes()) {
                return Err(RenameError::Taken {
                    name: new_name.to_string(),
                    domid: other,
                });
            }
        }
        let base = dom_path(domid);
        if tx.try_read(&format!("{base}/name"))?.is_none() {
            return Err(RenameError::NoName(domid));
        }
        tx.write(&format!("{base}/name"), new_name.as_bytes())?;
        // Dom0 and domains built elsewhere may have no /vm entry.
        if let Some(vm) = tx.try_read(&format!("{base}/vm"))? {
            let vm = String::from_utf8_lossy(&vm).into_owned();
            tx.write(&format!("{vm}/name"), new_name.as_bytes())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon on a temporary socket with domains 0 (no /vm), 3 and 4 as rxl
    /// writes their names.
    fn setup(tag: &str) -> Client {
        let mut xs = crate::testing::xenstore_client(&format!("rename-{tag}"));
        for (node, v) in [
            ("/local/domain/0/name", "Domain-0"),
            ("/local/domain/3/name", "web"),
            ("/local/domain/3/vm", "/vm/0003"),
            ("/vm/0003/name", "web"),
            ("/local/domain/4/name", "db"),
            ("/local/domain/4/vm", "/vm/0004"),
            ("/vm/0004/name", "db"),
        ] {
            xs.write(node, v.as_bytes()).unwrap();
        }
        xs
    }

    const DOMIDS: [u32; 3] = [0, 3, 4];

    fn names(xs: &mut Client) -> [String; 4] {
        [
            "/local/domain/3/name",
            "/vm/0003/name",
            "/local/domain/4/name",
            "/vm/0004/name",
        ]
        .map(|p| xs.read_string(p).unwrap())
    }

    #[test]
    fn rename_changes_both_name_nodes() {
        let mut xs = setup("ok");
        rename(&mut xs, &DOMIDS, 3, "www").unwrap();
        assert_eq!(names(&mut xs), ["www", "www", "db", "db"]);
        // Its own name again: nothing to refuse.
        rename(&mut xs, &DOMIDS, 3, "www").unwrap();
        assert_eq!(names(&mut xs), ["www", "www", "db", "db"]);
    }

    #[test]
    fn a_name_in_use_or_empty_is_refused_and_nothing_changes() {
        let mut xs = setup("taken");
        for (new, want) in [("db", "Taken"), ("Domain-0", "Taken"), ("", "Empty")] {
            let e = rename(&mut xs, &DOMIDS, 3, new).unwrap_err();
            let got = match e {
                RenameError::Taken { .. } => "Taken",
                RenameError::Empty => "Empty",
                _ => "other",
            };
            assert_eq!(got, want, "{new:?}: {e}");
            assert_eq!(names(&mut xs), ["web", "web", "db", "db"]);
        }
    }

    #[test]
    fn a_domain_without_a_name_node_is_refused_and_nothing_is_written() {
        let mut xs = setup("noname");
        let e = rename(&mut xs, &[0, 3, 4, 9], 9, "nine").unwrap_err();
        assert!(matches!(e, RenameError::NoName(9)), "{e}");
        assert!(!xs.exists("/local/domain/9/name").unwrap());
    }

    #[test]
    fn dom0_without_a_vm_entry_can_be_renamed() {
        let mut xs = setup("dom0");
        rename(&mut xs, &DOMIDS, 0, "host").unwrap();
        assert_eq!(xs.read_string("/local/domain/0/name").unwrap(), "host");
    }
}
