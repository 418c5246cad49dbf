//! `rxl vcpu-list`, `rxl vcpu-pin` and `rxl vcpu-set`: vCPUs, where they run and
//! where they may run, in xl's format (tools/xl/xl_vcpu.c: print_vcpuinfo,
//! print_bitmap), and how many are online ([`toolstack::vcpus`]).
//!
//! Differences from xl: no `--force` (undoing a guest's SCHEDOP_pin_override) and no
//! global affinity masks (xl.conf's vm.cpumask), which rxl does not have.

use anyhow::{bail, Context};
use toolstack::config::CpuList;
use xen::{AffinityKind, DomainControl, DomainInfo};

use crate::list;

/// xl's header line: `"%-32s %5s %5s %5s %5s %9s %s"` of the column names.
pub fn header() -> String {
    format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    )
}

/// A CPU set the way xl's print_bitmap writes it over `nr_cpus` CPUs: `all` when
/// it holds every one, `none` when empty, else ranges (`0-2,5`).
pub fn cpumap_text(cpus: &[u32], nr_cpus: u32) -> String {
    let mut set = vec![false; nr_cpus as usize];
    for &c in cpus {
        if let Some(b) = set.get_mut(c as usize) {
            *b = true;
        }
    }
    if set.iter().all(|&b| !b) {
        return "none".into();
    }
    if set.iter().all(|&b| b) {
        return "all".into();
    }
    let mut parts = Vec::new();
    let mut c = 0;
    while c < set.len() {
        if !set[c] {
            c += 1;
            continue;
        }
        let first = c;
        while c + 1 < set.len() && set[c + 1] {
            c += 1;
        }
        parts.push(if c > first {
            format!("{first}-{c}")
        } else {
            first.to_string()
        });
        c += 1;
    }
    parts.join(",")
}

/// One vCPU's row, as xl prints it.
pub fn row(
    name: Option<&str>,
    domid: u16,
    v: &xen::ctrl::VcpuInfo,
    hard: &str,
    soft: &str,
) -> String {
    // xl: "%5u %3c%c- " online, "%5c %3c%cp " offline, then "%9.1f  ".
    let (cpu, state) = if v.online {
        (
            v.cpu.to_string(),
            format!(
                "{:>3}{}-",
                if v.running { 'r' } else { '-' },
                if v.blocked { 'b' } else { '-' }
            ),
        )
    } else {
        ("-".into(), format!("{:>3}-p", '-'))
    };
    format!(
        "{:<32} {:>5} {:>5}{:>5} {state} {:>9.1}  {hard} / {soft}",
        name.unwrap_or("(null)"),
        domid,
        v.vcpu,
        cpu,
        v.cpu_time as f64 / 1e9,
    )
}

fn open() -> anyhow::Result<xen::XenCtrl> {
    xen::XenCtrl::open().context("cannot open the hypervisor interface")
}

/// `rxl vcpu-list [DOMAIN...]`.
pub fn list(filter: &[String]) -> anyhow::Result<()> {
    let ctl = open()?;
    let nr_cpus = ctl.physinfo().context("XEN_SYSCTL_physinfo")?.max_cpu_id + 1;
    let (domains, name_of) = list::domains_and_names(&ctl)?;
    let domains = list::select(domains, filter, &name_of)?;
    println!("{}", header());
    for d in &domains {
        print_domain(&ctl, d, name_of(d.domid).as_deref(), nr_cpus)?;
    }
    Ok(())
}

fn print_domain(
    ctl: &xen::XenCtrl,
    d: &DomainInfo,
    name: Option<&str>,
    nr_cpus: u32,
) -> anyhow::Result<()> {
    for vcpu in 0..=d.max_vcpu_id {
        let v = ctl
            .vcpu_info(d.domid, vcpu)
            .with_context(|| format!("XEN_DOMCTL_getvcpuinfo of domain {} vCPU {vcpu}", d.domid))?;
        let affinity = |kind| {
            ctl.get_vcpu_affinity(d.domid, vcpu, kind)
                .map(|c| cpumap_text(&c, nr_cpus))
                .with_context(|| {
                    format!(
                        "XEN_DOMCTL_getvcpuaffinity of domain {} vCPU {vcpu}",
                        d.domid
                    )
                })
        };
        let (hard, soft) = (affinity(AffinityKind::Hard)?, affinity(AffinityKind::Soft)?);
        println!("{}", row(name, d.domid, &v, &hard, &soft));
    }
    Ok(())
}

/// Arguments of `rxl vcpu-pin`.
#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The domain (name or id).
    pub domain: String,
    /// The vCPU number, or `all`.
    pub vcpu: String,
    /// Hard affinity: CPUs in xl's syntax (`1`, `0-3,^2`, `all`), or `-` to leave it.
    pub hard: String,
    /// Soft affinity, the same way (left alone when absent or `-`).
    pub soft: Option<String>,
}

/// A CPU list argument, or None for `-` (leave that affinity alone).
fn cpu_arg(text: Option<&str>, nr_cpus: u32) -> anyhow::Result<Option<Vec<u32>>> {
    match text {
        None | Some("-") => Ok(None),
        Some(t) => {
            let list = CpuList::parse(t).with_context(|| format!("invalid CPU list {t:?}"))?;
            Ok(Some(
                list.resolve(nr_cpus)
                    .with_context(|| format!("invalid CPU list {t:?}"))?,
            ))
        }
    }
}

/// `rxl vcpu-pin DOMAIN VCPU|all HARD [SOFT]`.
pub fn pin(args: &PinArgs) -> anyhow::Result<()> {
    let ctl = open()?;
    let nr_cpus = ctl.physinfo().context("XEN_SYSCTL_physinfo")?.max_cpu_id + 1;
    let (domains, name_of) = list::domains_and_names(&ctl)?;
    let d = list::select(domains, std::slice::from_ref(&args.domain), &name_of)?[0];
    let vcpus: Vec<u32> = if args.vcpu == "all" {
        (0..=d.max_vcpu_id).collect()
    } else {
        match args.vcpu.parse::<u32>() {
            Ok(v) if v <= d.max_vcpu_id => vec![v],
            Ok(v) => bail!(
                "domain {} has no vCPU {v} (its vCPUs are 0-{})",
                args.domain,
                d.max_vcpu_id
            ),
            Err(_) => bail!("Error: Invalid argument {} as VCPU.", args.vcpu),
        }
    };
    let hard = cpu_arg(Some(&args.hard), nr_cpus)?;
    let soft = cpu_arg(args.soft.as_deref(), nr_cpus)?;
    for vcpu in vcpus {
        for (kind, cpus) in [(AffinityKind::Hard, &hard), (AffinityKind::Soft, &soft)] {
            let Some(cpus) = cpus else { continue };
            ctl.set_vcpu_affinity(d.domid, vcpu, kind, cpus)
                .with_context(|| format!("Could not set affinity for vcpu `{vcpu}'."))?;
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Allow more vCPUs than the host has physical CPUs.
    #[arg(short = 'i', long = "ignore-host")]
    pub ignore_host: bool,
    /// The domain (name or id).
    pub domain: String,
    /// How many vCPUs to have online (at most the domain's maxvcpus).
    pub vcpus: u32,
}

/// `rxl vcpu-set [--ignore-host] DOMAIN COUNT`.
pub fn set(args: &SetArgs) -> anyhow::Result<()> {
    let (ctl, mut xs) = crate::lifecycle_cmds::open()?;
    let id = crate::lifecycle_cmds::resolve(&ctl, &mut xs, &args.domain)?;
    toolstack::vcpus::set_online(&ctl, &mut xs, id, args.vcpus, args.ignore_host)
        .with_context(|| format!("cannot set domain {id}'s online vCPUs to {}", args.vcpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::ctrl::VcpuInfo;

    #[test]
    fn cpumaps_print_like_xl() {
        assert_eq!(cpumap_text(&[0, 1, 2, 3], 4), "all");
        assert_eq!(cpumap_text(&[], 4), "none");
        assert_eq!(cpumap_text(&[1], 4), "1");
        assert_eq!(cpumap_text(&[0, 1, 2, 5, 7], 8), "0-2,5,7");
        assert_eq!(cpumap_text(&[1, 2, 3], 4), "1-3");
        // CPUs beyond the host's are not shown (Xen never reports them).
        assert_eq!(cpumap_text(&[0, 9], 2), "0");
    }

    #[test]
    fn header_is_xls() {
        assert_eq!(
            header(),
            "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)"
        );
    }

    #[test]
    fn rows_line_up_with_xls_header() {
        let v = VcpuInfo {
            vcpu: 0,
            online: true,
            running: true,
            cpu: 1,
            cpu_time: 2_340_000_000,
            ..Default::default()
        };
        let r = row(Some("Domain-0"), 0, &v, "all", "all");
        assert_eq!(
            r,
            "Domain-0                             0     0    1   r--       2.3  all / all"
        );
        let off = VcpuInfo {
            vcpu: 3,
            ..Default::default()
        };
        assert_eq!(
            row(None, 7, &off, "1", "all"),
            "(null)                               7     3    -   --p       0.0  1 / all"
        );
    }

    #[test]
    fn cpu_arguments() {
        assert_eq!(cpu_arg(Some("-"), 2).expect("ok"), None);
        assert_eq!(cpu_arg(None, 2).expect("ok"), None);
        assert_eq!(cpu_arg(Some("all,^0"), 2).expect("ok"), Some(vec![1]));
        let e = cpu_arg(Some("5"), 2).expect_err("error");
        assert_eq!(
            format!("{e:#}"),
            "invalid CPU list \"5\": CPU 5 does not exist: the host has 2 CPUs (0-1)"
        );
    }
}
