//! `rxl info`: the host and hypervisor, in `xl info`'s format and order
//! (tools/xl/xl_info.c: output_nodeinfo, output_physinfo, output_xeninfo).
//!
//! Read through rxen's own `xen` crate over /dev/xen/privcmd.

use anyhow::Context;
use xen::abi::sysctl::physcap;
use xen::ctrl::scheduler_name;
use xen::{DomainControl, PhysInfo, XenVersion};

/// The kernel's identity, as `uname(2)` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub host: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

impl NodeInfo {
    /// Reads the running kernel's identity from /proc/sys/kernel.
    pub fn current() -> Self {
        let read = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .map(|s| s.trim_end_matches('\n').to_string())
                .unwrap_or_default()
        };
        Self {
            host: read("hostname"),
            release: read("osrelease"),
            version: read("version"),
            machine: std::env::consts::ARCH.to_string(),
        }
    }
}

/// Everything `rxl info` prints.
#[derive(Debug, Clone)]
pub struct Info {
    pub node: NodeInfo,
    pub phys: PhysInfo,
    pub version: XenVersion,
    pub scheduler: Option<String>,
    /// How many CPUs are in no cpupool, when Xen answered.
    pub free_cpus: Option<usize>,
}

/// Gathers the information from the hypervisor.
pub fn gather(ctl: &dyn DomainControl) -> anyhow::Result<Info> {
    let phys = ctl.physinfo().context("XEN_SYSCTL_physinfo")?;
    let version = ctl.xen_version().context("xen_version")?;
    let scheduler = match ctl.sched_id() {
        Ok(id) => Some(scheduler_name(id).map_or_else(|| format!("unknown({id})"), str::to_string)),
        Err(e) => {
            tracing::warn!("XEN_SYSCTL_sched_id: {e}");
            None
        }
    };
    let free_cpus = match ctl.free_cpus() {
        Ok(cpus) => Some(cpus.len()),
        Err(e) => {
            tracing::warn!("cpupool free CPUs: {e}");
            None
        }
    };
    Ok(Info {
        node: NodeInfo::current(),
        phys,
        version,
        scheduler,
        free_cpus,
    })
}

/// One `key : value` line with xl's 23-column key.
fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    out.push_str(&format!("{key:<23}: {value}\n"));
}

fn virt_caps(caps: u32) -> String {
    let has = |bit| caps & bit != 0;
    let mut s = String::new();
    let flags = [
        (has(physcap::PV), " pv"),
        (has(physcap::HVM), " hvm"),
        (has(physcap::HVM) && has(physcap::DIRECTIO), " hvm_directio"),
        (has(physcap::PV) && has(physcap::DIRECTIO), " pv_directio"),
        (has(physcap::HAP), " hap"),
        (has(physcap::SHADOW), " shadow"),
        (has(physcap::IOMMU_HAP_PT_SHARE), " iommu_hap_pt_share"),
        (has(physcap::VMTRACE), " vmtrace"),
        (has(physcap::VPMU), " vpmu"),
        (has(physcap::GNTTAB_V1), " gnttab-v1"),
        (has(physcap::GNTTAB_V2), " gnttab-v2"),
    ];
    for (on, name) in flags {
        if on {
            s.push_str(name);
        }
    }
    s
}

/// Renders `info` as `xl info` does.
pub fn render(info: &Info) -> String {
    let mut o = String::new();
    let (n, p, v) = (&info.node, &info.phys, &info.version);
    line(&mut o, "host", &n.host);
    line(&mut o, "release", &n.release);
    line(&mut o, "version", &n.version);
    line(&mut o, "machine", &n.machine);
    line(&mut o, "nr_cpus", p.nr_cpus);
    line(&mut o, "max_cpu_id", p.max_cpu_id);
    line(&mut o, "nr_nodes", p.nr_nodes);
    line(&mut o, "cores_per_socket", p.cores_per_socket);
    line(&mut o, "threads_per_core", p.threads_per_core);
    line(
        &mut o,
        "cpu_mhz",
        format!("{}.{:03}", p.cpu_khz / 1000, p.cpu_khz % 1000),
    );
    let hw: Vec<String> = p.hw_cap.iter().map(|c| format!("{c:08x}")).collect();
    line(&mut o, "hw_caps", hw.join(":"));
    // xl prints this key with no space after the colon: the flags start with one.
    o.push_str(&format!(
        "{:<23}:{}\n",
        "virt_caps",
        virt_caps(p.capabilities)
    ));
    if let Some(per_mib) = (1u64 << 20).checked_div(v.pagesize).filter(|&n| n > 0) {
        line(&mut o, "total_memory", p.total_pages / per_mib);
        line(
            &mut o,
            "free_memory",
            p.free_pages.saturating_sub(p.outstanding_pages) / per_mib,
        );
        if let Some(pages) = p.sharing_freed_pages {
            line(&mut o, "sharing_freed_memory", pages / per_mib);
        }
        if let Some(frames) = p.sharing_used_frames {
            line(&mut o, "sharing_used_memory", frames / per_mib);
        }
        line(&mut o, "outstanding_claims", p.outstanding_pages / per_mib);
    }
    if let Some(n) = info.free_cpus {
        line(&mut o, "free_cpus", n);
    }
    line(&mut o, "xen_major", v.major);
    line(&mut o, "xen_minor", v.minor);
    line(&mut o, "xen_extra", &v.extra);
    line(
        &mut o,
        "xen_version",
        format!("{}.{}{}", v.major, v.minor, v.extra),
    );
    line(&mut o, "xen_caps", &v.capabilities);
    if let Some(s) = &info.scheduler {
        line(&mut o, "xen_scheduler", s);
    }
    line(&mut o, "xen_pagesize", v.pagesize);
    line(
        &mut o,
        "platform_params",
        format!("virt_start={:#x}", v.virt_start),
    );
    line(&mut o, "xen_changeset", &v.changeset);
    line(&mut o, "xen_commandline", &v.commandline);
    line(&mut o, "cc_compiler", &v.compiler);
    line(&mut o, "cc_compile_by", &v.compile_by);
    line(&mut o, "cc_compile_domain", &v.compile_domain);
    line(&mut o, "cc_compile_date", &v.compile_date);
    line(&mut o, "build_id", &v.build_id);
    line(&mut o, "xend_config_format", 4);
    o
}

/// `rxl info`.
pub fn run() -> anyhow::Result<()> {
    let ctl = xen::XenCtrl::open().context("cannot open the hypervisor interface")?;
    print!("{}", render(&gather(&ctl)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::fake::FakeXen;

    fn sample() -> Info {
        let mut x = FakeXen::new();
        x.version.extra = ".7".into();
        x.version.virt_start = 0x20_0000;
        x.physinfo.cpu_khz = 62_500;
        x.physinfo.capabilities = physcap::HVM | physcap::HAP | physcap::GNTTAB_V1;
        x.physinfo.outstanding_pages = 256;
        x.physinfo.sharing_freed_pages = Some(0);
        x.physinfo.sharing_used_frames = Some(512);
        x.version.build_id = "7a23ea1e".into();
        let mut info = gather(&x).expect("gather");
        info.node = NodeInfo {
            host: "(none)".into(),
            release: "6.1.0".into(),
            version: "#1 SMP".into(),
            machine: "aarch64".into(),
        };
        info
    }

    #[test]
    fn keys_use_xl_column_and_order() {
        let out = render(&sample());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "host                   : (none)");
        assert_eq!(lines[3], "machine                : aarch64");
        let keys: Vec<&str> = lines
            .iter()
            .map(|l| l.split(':').next().unwrap_or_default().trim_end())
            .collect();
        let pos = |k: &str| keys.iter().position(|x| *x == k).unwrap_or(usize::MAX);
        assert!(pos("nr_cpus") < pos("total_memory"));
        assert!(pos("total_memory") < pos("xen_major"));
        assert!(pos("xen_major") < pos("xen_minor") && pos("xen_minor") < pos("xen_extra"));
        assert!(pos("xend_config_format") == keys.len() - 1);
        assert!(lines.iter().all(|l| l.len() > 24 && &l[23..24] == ":"));
    }

    #[test]
    fn values_are_computed_like_xl() {
        let out = render(&sample());
        assert!(out.contains("xen_version            : 4.17.7\n"));
        assert!(out.contains("xen_extra              : .7\n"));
        assert!(out.contains("cpu_mhz                : 62.500\n"));
        // 512 MiB total; 100 MiB free minus 1 MiB outstanding.
        assert!(out.contains("total_memory           : 512\n"));
        assert!(out.contains("free_memory            : 99\n"));
        assert!(out.contains("virt_caps              : hvm hap gnttab-v1\n"));
        assert!(out.contains("xen_scheduler          : credit2\n"));
        assert!(out.contains("sharing_freed_memory   : 0\n"));
        assert!(out.contains("sharing_used_memory    : 2\n"));
        assert!(out.contains("free_cpus              : 0\n"));
        assert!(out.contains("build_id               : 7a23ea1e\n"));
        assert!(out.contains("platform_params        : virt_start=0x200000\n"));
        assert!(out.contains("hw_caps                : 00000000:00000000:00000000:00000000:00000000:00000000:00000000:00000000\n"));
    }
}
