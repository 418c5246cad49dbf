//! `rxl vcpu-set` (tools/xl/xl_vcpu.c vcpuset, libxl_set_vcpuonline): how many of
//! a running domain's vCPUs it should have online.
//!
//! The domain was created with `maxvcpus` vCPUs; `cpu/<n>/availability` in its
//! xenstore directory says `online` or `offline` for each, and the guest's kernel
//! watches `cpu` and acts (Linux's drivers/xen/cpu_hotplug.c: it takes an
//! `offline` CPU down itself; an `online` one becomes present and userspace, a
//! udev rule, brings it up). As for xl's PV and PVH guests (ARM guests are PVH to
//! libxl), nothing but these nodes changes: Xen learns of it when the guest
//! stops or starts the vCPU (PSCI CPU_OFF/CPU_ON).

use xen::abi::xen::DomId;
use xen::{CtrlError, DomainControl};
use xenstore::client::{Client, ClientError, XsOps};

use crate::domain::dom_path;

#[derive(Debug, thiserror::Error)]
pub enum VcpuSetError {
    #[error("requested 0 vCPUs: a domain needs at least one")]
    Zero,
    #[error("requested {requested} vCPUs, however maxvcpus is {max}")]
    AboveMax { requested: u32, max: u32 },
    #[error("you are overcommitting: {host} physical CPUs and {requested} vCPUs wanted; use --ignore-host to continue")]
    Overcommit { requested: u32, host: u32 },
    #[error("domain id {0} out of range")]
    DomainId(u32),
    #[error("reading the domain's or host's CPUs from Xen")]
    Xen(#[source] CtrlError),
    #[error("xenstore")]
    Xenstore(#[from] ClientError),
}

/// The availability node of vCPU `vcpu` of `domid`.
pub fn availability_path(domid: u32, vcpu: u32) -> String {
    format!("{}/cpu/{vcpu}/availability", dom_path(domid))
}

/// `xl vcpu-set DOM COUNT`: vCPUs `0..count` of `domid` online, the rest up to
/// its maximum offline, in one transaction. Unless `ignore_host`, more vCPUs
/// than the host has physical CPUs are refused when that would add vCPUs (xl's
/// check; lowering the count is always allowed).
pub fn set_online(
    ctl: &impl DomainControl,
    xs: &mut Client,
    domid: u32,
    count: u32,
    ignore_host: bool,
) -> Result<(), VcpuSetError> {
    let id = DomId::try_from(domid).map_err(|_| VcpuSetError::DomainId(domid))?;
    let info = ctl.domain_info(id).map_err(VcpuSetError::Xen)?;
    if !ignore_host && count > info.nr_online_vcpus {
        let host = ctl.physinfo().map_err(VcpuSetError::Xen)?.max_cpu_id + 1;
        if count > host {
            return Err(VcpuSetError::Overcommit {
                requested: count,
                host,
            });
        }
    }
    if count == 0 {
        return Err(VcpuSetError::Zero);
    }
    let max = info.max_vcpu_id + 1;
    if count > max {
        return Err(VcpuSetError::AboveMax {
            requested: count,
            max,
        });
    }
    xs.transaction(|tx| {
        for vcpu in 0..max {
            let state = if vcpu < count { "online" } else { "offline" };
            tx.write(&availability_path(domid, vcpu), state.as_bytes())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::fake::FakeXen;

    /// A daemon on a temporary socket, and a fake Xen (2 physical CPUs) with
    /// domain 5 of `max` vCPUs, all online, and its availability nodes.
    fn setup(tag: &str, max: u32) -> (FakeXen, Client) {
        let mut xs = crate::testing::xenstore_client(&format!("vcpus-{tag}"));
        for vcpu in 0..max {
            xs.write(&availability_path(5, vcpu), b"online").unwrap();
        }
        let xen = FakeXen::new();
        let created = xen
            .create_domain(&xen::ctrl::CreateDomain {
                domid: 5,
                max_vcpus: max,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(created, 5);
        xen.set_max_vcpus(5, max).unwrap();
        (xen, xs)
    }

    fn states(xs: &mut Client, max: u32) -> Vec<String> {
        (0..max)
            .map(|v| xs.read_string(&availability_path(5, v)).unwrap())
            .collect()
    }

    #[test]
    fn vcpu_set_marks_the_first_count_online_and_the_rest_offline() {
        let (xen, mut xs) = setup("set", 4);
        set_online(&xen, &mut xs, 5, 1, false).unwrap();
        assert_eq!(
            states(&mut xs, 4),
            ["online", "offline", "offline", "offline"]
        );
        set_online(&xen, &mut xs, 5, 3, true).unwrap();
        assert_eq!(
            states(&mut xs, 4),
            ["online", "online", "online", "offline"]
        );
    }

    #[test]
    fn zero_and_more_than_maxvcpus_are_refused_and_nothing_changes() {
        let (xen, mut xs) = setup("bad", 2);
        let e = set_online(&xen, &mut xs, 5, 0, false).unwrap_err();
        assert!(matches!(e, VcpuSetError::Zero), "{e}");
        let e = set_online(&xen, &mut xs, 5, 3, true).unwrap_err();
        assert!(
            matches!(
                e,
                VcpuSetError::AboveMax {
                    requested: 3,
                    max: 2
                }
            ),
            "{e}"
        );
        assert_eq!(states(&mut xs, 2), ["online", "online"]);
        assert!(!xs.exists(&availability_path(5, 2)).unwrap());
        let e = set_online(&xen, &mut xs, 6, 1, true).unwrap_err();
        assert!(matches!(e, VcpuSetError::Xen(_)), "{e}");
    }

    #[test]
    fn more_vcpus_than_host_cpus_need_ignore_host() {
        // The fake host has 2 physical CPUs; the domain 4 vCPUs, 1 online.
        let (xen, mut xs) = setup("host", 4);
        set_online(&xen, &mut xs, 5, 1, false).unwrap();
        let info = xen.domain_info(5).unwrap();
        xen.add_domain(xen::DomainInfo {
            nr_online_vcpus: 1,
            ..info
        });
        let e = set_online(&xen, &mut xs, 5, 3, false).unwrap_err();
        assert!(
            matches!(
                e,
                VcpuSetError::Overcommit {
                    requested: 3,
                    host: 2
                }
            ),
            "{e}"
        );
        assert_eq!(
            states(&mut xs, 4),
            ["online", "offline", "offline", "offline"]
        );
        set_online(&xen, &mut xs, 5, 2, false).unwrap();
        set_online(&xen, &mut xs, 5, 4, true).unwrap();
        assert_eq!(states(&mut xs, 4), ["online"; 4]);
    }
}
