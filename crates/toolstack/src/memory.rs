//! `rxl mem-set` and `rxl mem-max` (tools/xl/xl_mem.c, libxl_mem.c): a running
//! domain's balloon target and its maximum.
//!
//! The target is `memory/target` (KiB) in the domain's xenstore directory, which
//! the guest's balloon driver watches; `mem-set` also lowers or raises Xen's
//! limit (`XEN_DOMCTL_max_mem`) to the target, as libxl's "enforce" does, and
//! records the target in `/vm/<uuid>/memory` (MiB). `mem-max` sets Xen's limit
//! and `memory/static-max`, the ceiling of later targets. On ARM without ACPI
//! libxl adds no extra memory to the limit and populate-on-demand does not exist,
//! so neither is done here.

use xen::abi::xen::DomId;
use xen::{CtrlError, DomainControl};
use xenstore::client::{Client, ClientError, Transaction, XsOps};

use crate::domain::dom_path;

#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("invalid memory size {0:?}: a whole number with an optional unit b, k, m (the default), g or t")]
    Size(String),
    #[error("domain {domid} has no {node} in xenstore (not a domain made by rxl or xl?)")]
    Missing { domid: u32, node: &'static str },
    #[error("domain {domid}: {node} is {value:?}, not a number of KiB")]
    NotANumber {
        domid: u32,
        node: &'static str,
        value: String,
    },
    #[error("the target ({target_kib} KiB) must be at most the maximum, memory/static-max ({max_kib} KiB); raise it with mem-max first")]
    AboveMax { target_kib: u64, max_kib: u64 },
    #[error("the maximum ({max_kib} KiB) must be at least the current target, memory/target ({target_kib} KiB); lower it with mem-set first")]
    BelowTarget { max_kib: u64, target_kib: u64 },
    #[error("domain id {0} out of range")]
    DomainId(u32),
    #[error("setting Xen's memory limit of the domain")]
    Xen(#[source] CtrlError),
    #[error("xenstore")]
    Xenstore(#[from] ClientError),
}

/// KiB per unit of xl's size suffixes.
const KIB_PER_MIB: u64 = 1 << 10;
const KIB_PER_GIB: u64 = 1 << 20;
const KIB_PER_TIB: u64 = 1 << 30;
const BYTES_PER_KIB: u64 = 1 << 10;

/// A size as xl's `parse_mem_size_kb` reads it, in KiB: digits and at most one
/// unit letter (either case); no unit means MiB; `b` bytes (rounded down).
pub fn parse_size_kib(s: &str) -> Result<u64, MemError> {
    let bad = || MemError::Size(s.to_string());
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scaled = match unit.to_ascii_lowercase().as_str() {
        "" | "m" => n.checked_mul(KIB_PER_MIB),
        "k" => Some(n),
        "g" => n.checked_mul(KIB_PER_GIB),
        "t" => n.checked_mul(KIB_PER_TIB),
        "b" => Some(n / BYTES_PER_KIB),
        _ => None,
    };
    scaled.ok_or_else(bad)
}

fn read_kib(xs: &mut impl XsOps, domid: u32, node: &'static str) -> Result<Option<u64>, MemError> {
    let Some(v) = xs.try_read(&format!("{}/{node}", dom_path(domid)))? else {
        return Ok(None);
    };
    let value = String::from_utf8_lossy(&v).into_owned();
    value
        .parse()
        .map(Some)
        .map_err(|_| MemError::NotANumber { domid, node, value })
}

/// [`read_kib`] of a node the domain must have.
fn read_required_kib(xs: &mut impl XsOps, domid: u32, node: &'static str) -> Result<u64, MemError> {
    read_kib(xs, domid, node)?.ok_or(MemError::Missing { domid, node })
}

/// KiB per Xen page.
const PAGE_KIB: u64 = 4;

/// Dom0's `memory/target` and `memory/static-max` from Xen's count of its pages
/// and its limit, when they are missing (libxl__fill_dom0_memory_info): Xen
/// builds dom0, so no toolstack wrote them, and Linux's balloon driver follows a
/// target written later all the same.
fn fill_dom0_memory_nodes(ctl: &impl DomainControl, tx: &mut impl XsOps) -> Result<(), MemError> {
    let base = dom_path(0);
    let target = format!("{base}/memory/target");
    let max = format!("{base}/memory/static-max");
    let (has_target, has_max) = (tx.exists(&target)?, tx.exists(&max)?);
    if has_target && has_max {
        return Ok(());
    }
    let info = ctl.domain_info(0).map_err(MemError::Xen)?;
    if !has_target {
        tx.write(&target, (info.tot_pages * PAGE_KIB).to_string().as_bytes())?;
    }
    if !has_max {
        tx.write(&max, (info.max_pages * PAGE_KIB).to_string().as_bytes())?;
    }
    Ok(())
}

/// Runs `body` with `domid`'s Xen id in a transaction in which dom0's memory
/// nodes exist (filled in first when missing), as both commands need.
fn memory_transaction<C: DomainControl>(
    ctl: &C,
    xs: &mut Client,
    domid: u32,
    mut body: impl FnMut(&mut Transaction<'_>, DomId) -> Result<(), MemError>,
) -> Result<(), MemError> {
    let id = DomId::try_from(domid).map_err(|_| MemError::DomainId(domid))?;
    xs.transaction(|tx| {
        if domid == 0 {
            fill_dom0_memory_nodes(ctl, tx)?;
        }
        body(tx, id)
    })
}

/// `xl mem-set`: sets the balloon target of `domid` to `target_kib`, in one
/// transaction with the checks (at most `memory/static-max`), Xen's limit and
/// `/vm/<uuid>/memory`.
pub fn set_target(
    ctl: &impl DomainControl,
    xs: &mut Client,
    domid: u32,
    target_kib: u64,
) -> Result<(), MemError> {
    memory_transaction(ctl, xs, domid, |tx, id| {
        read_required_kib(tx, domid, "memory/target")?;
        let max_kib = read_required_kib(tx, domid, "memory/static-max")?;
        let videoram = read_kib(tx, domid, "memory/videoram")?.unwrap_or(0);
        let target = target_kib.saturating_sub(videoram);
        if target > max_kib {
            return Err(MemError::AboveMax {
                target_kib: target,
                max_kib,
            });
        }
        // Inside the body, as libxl does: a retried transaction sets the
        // same limit again; a refused one (above) never reaches Xen.
        ctl.set_max_mem(id, target + videoram)
            .map_err(MemError::Xen)?;
        let base = dom_path(domid);
        tx.write(
            &format!("{base}/memory/target"),
            target.to_string().as_bytes(),
        )?;
        if let Some(vm) = tx.try_read(&format!("{base}/vm"))? {
            let vm = String::from_utf8_lossy(&vm).into_owned();
            tx.write(
                &format!("{vm}/memory"),
                (target / KIB_PER_MIB).to_string().as_bytes(),
            )?;
        }
        Ok(())
    })
}

/// `xl mem-max`: sets Xen's limit and `memory/static-max` of `domid` to
/// `max_kib`, which may not be below the current target.
pub fn set_max(
    ctl: &impl DomainControl,
    xs: &mut Client,
    domid: u32,
    max_kib: u64,
) -> Result<(), MemError> {
    memory_transaction(ctl, xs, domid, |tx, id| {
        let target_kib = read_required_kib(tx, domid, "memory/target")?;
        if max_kib < target_kib {
            return Err(MemError::BelowTarget {
                max_kib,
                target_kib,
            });
        }
        ctl.set_max_mem(id, max_kib).map_err(MemError::Xen)?;
        tx.write(
            &format!("{}/memory/static-max", dom_path(domid)),
            max_kib.to_string().as_bytes(),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::fake::FakeXen;

    #[test]
    fn sizes_parse_like_xl() {
        assert_eq!(parse_size_kib("256").unwrap(), 256 * 1024);
        assert_eq!(parse_size_kib("256m").unwrap(), 256 * 1024);
        assert_eq!(parse_size_kib("256M").unwrap(), 256 * 1024);
        assert_eq!(parse_size_kib("1g").unwrap(), 1 << 20);
        assert_eq!(parse_size_kib("1t").unwrap(), 1 << 30);
        assert_eq!(parse_size_kib("4096k").unwrap(), 4096);
        assert_eq!(parse_size_kib("1048577b").unwrap(), 1024);
        for bad in [
            "",
            "m",
            "12mb",
            "-5",
            "1.5g",
            "12x",
            "99999999999999999999t",
        ] {
            assert!(
                matches!(parse_size_kib(bad), Err(MemError::Size(_))),
                "{bad:?}"
            );
        }
    }

    /// A daemon on a temporary socket with domain 5's memory nodes as rxl writes
    /// them (128 MiB), and a fake Xen with domain 5 in it.
    fn setup(tag: &str) -> (FakeXen, Client) {
        let mut xs = crate::testing::xenstore_client(&format!("mem-{tag}"));
        for (node, v) in [
            ("memory/target", "131072"),
            ("memory/static-max", "131072"),
            ("vm", "/vm/0011"),
        ] {
            xs.write(&format!("/local/domain/5/{node}"), v.as_bytes())
                .unwrap();
        }
        let xen = FakeXen::new();
        let created = xen
            .create_domain(&xen::ctrl::CreateDomain {
                domid: 5,
                max_vcpus: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(created, 5);
        (xen, xs)
    }

    #[test]
    fn mem_set_writes_the_target_and_lowers_xens_limit() {
        let (xen, mut xs) = setup("set");
        set_target(&xen, &mut xs, 5, 96 * 1024).unwrap();
        assert_eq!(
            xs.read_string("/local/domain/5/memory/target").unwrap(),
            "98304"
        );
        assert_eq!(xs.read_string("/vm/0011/memory").unwrap(), "96");
        assert_eq!(xen.domain_info(5).unwrap().max_pages, 96 * 256);
        // Above static-max: refused, nothing changed.
        let e = set_target(&xen, &mut xs, 5, 256 * 1024).unwrap_err();
        assert!(matches!(e, MemError::AboveMax { .. }), "{e}");
        assert_eq!(
            xs.read_string("/local/domain/5/memory/target").unwrap(),
            "98304"
        );
        assert_eq!(xen.domain_info(5).unwrap().max_pages, 96 * 256);
    }

    #[test]
    fn mem_max_raises_the_ceiling_but_not_below_the_target() {
        let (xen, mut xs) = setup("max");
        let e = set_max(&xen, &mut xs, 5, 64 * 1024).unwrap_err();
        assert!(matches!(e, MemError::BelowTarget { .. }), "{e}");
        assert_eq!(
            xs.read_string("/local/domain/5/memory/static-max").unwrap(),
            "131072"
        );
        set_max(&xen, &mut xs, 5, 256 * 1024).unwrap();
        assert_eq!(
            xs.read_string("/local/domain/5/memory/static-max").unwrap(),
            "262144"
        );
        assert_eq!(xen.domain_info(5).unwrap().max_pages, 256 * 256);
        // Now a target above the old maximum is accepted.
        set_target(&xen, &mut xs, 5, 200 * 1024).unwrap();
        assert_eq!(
            xs.read_string("/local/domain/5/memory/target").unwrap(),
            "204800"
        );
    }

    #[test]
    fn dom0s_missing_memory_nodes_come_from_xen_as_libxl_fills_them() {
        let (xen, mut xs) = setup("dom0");
        xen.add_domain(xen::DomainInfo {
            domid: 0,
            tot_pages: 512 * 256,
            max_pages: 1024 * 256,
            ..Default::default()
        });
        // Above Xen's limit for dom0 (1 GiB): refused, but the nodes libxl would
        // have filled in are there.
        let e = set_target(&xen, &mut xs, 0, 2048 * 1024).unwrap_err();
        assert!(matches!(e, MemError::AboveMax { .. }), "{e}");
        assert!(!xs.exists("/local/domain/0/memory/target").unwrap());
        let dom0_nodes = |xs: &mut Client| {
            ["target", "static-max"].map(|n| {
                xs.read_string(&format!("/local/domain/0/memory/{n}"))
                    .unwrap()
            })
        };
        set_target(&xen, &mut xs, 0, 500 * 1024).unwrap();
        assert_eq!(dom0_nodes(&mut xs), ["512000", "1048576"]);
        assert_eq!(xen.domain_info(0).unwrap().max_pages, 500 * 256);
        // A node that is there is left as it is.
        xs.rm("/local/domain/0/memory/static-max").unwrap();
        set_max(&xen, &mut xs, 0, 600 * 1024).unwrap();
        assert_eq!(dom0_nodes(&mut xs), ["512000", "614400"]);
    }

    #[test]
    fn a_domain_without_memory_nodes_is_refused_by_name() {
        let (xen, mut xs) = setup("missing");
        let e = set_target(&xen, &mut xs, 6, 1024).unwrap_err();
        assert!(
            matches!(
                e,
                MemError::Missing {
                    domid: 6,
                    node: "memory/target"
                }
            ),
            "{e}"
        );
        xs.write("/local/domain/5/memory/target", b"lots").unwrap();
        let e = set_target(&xen, &mut xs, 5, 1024).unwrap_err();
        assert!(matches!(e, MemError::NotANumber { .. }), "{e}");
    }
}
