//! `rxl list` and `rxl vm-list`: domains in `xl list`'s and `xl vm-list`'s formats
//! (tools/xl/xl_info.c, list_domains and list_vm).
//!
//! Domain states come from `XEN_SYSCTL_getdomaininfolist`; names from xenstore
//! `/local/domain/<id>/name`, read once per listing through the `xenstore` client.
//! A missing name prints as `(null)`, as xl's printf of a NULL name does.

use anyhow::Context;
use std::collections::HashMap;
use xen::{DomainControl, DomainInfo};
use xenstore::client::XsOps;

/// How many domains one listing asks for (libxl asks for 1024 at a time).
const MAX_DOMAINS: u32 = 1024;
/// `SHUTDOWN_*` reasons as xl's one-letter codes: none, reboot, suspend, crash,
/// watchdog, soft_reset.
const SHUTDOWN_REASON_LETTERS: &[u8] = b"-rscwS";
/// KiB per Xen page.
const PAGE_KIB: u64 = 4;

/// xl's header line.
pub const HEADER: &str =
    "Name                                        ID   Mem VCPUs\tState\tTime(s)";
/// What `xl list -v` adds to it.
pub const VERBOSE_HEADER: &str = "   UUID                            Reason-Code\tSecurity Label";
/// The security label of a domain without one (rxl runs no XSM policy; xl prints
/// `-` for a domain without a label).
const NO_SECURITY_LABEL: &str = "-";

/// One `xl list` row.
pub fn row(name: Option<&str>, d: &DomainInfo) -> String {
    let reason = if d.shutdown() { d.shutdown_reason() } else { 0 };
    let reason_letter = SHUTDOWN_REASON_LETTERS
        .get(reason as usize)
        .map_or('?', |&b| b as char);
    let flag = |on: bool, c: char| if on { c } else { '-' };
    let mem_mib = (d.tot_pages + d.outstanding_pages) * PAGE_KIB / 1024;
    format!(
        "{:<40} {:>5} {:>5} {:>5}     {}{}{}{}{}{}  {:>8.1}",
        name.unwrap_or("(null)"),
        d.domid,
        mem_mib,
        d.nr_online_vcpus,
        flag(d.running(), 'r'),
        flag(d.blocked(), 'b'),
        flag(d.paused(), 'p'),
        flag(d.shutdown(), 's'),
        reason_letter,
        flag(d.dying(), 'd'),
        d.cpu_time as f32 / 1e9,
    )
}

/// What `xl list -v` adds to a row: `" " UUID`, the shutdown reason code in hex
/// (`-` while running) in 8 columns, the security label in 16.
pub fn verbose_columns(d: &DomainInfo) -> String {
    let reason = if d.shutdown() {
        format!("{:x}", d.shutdown_reason())
    } else {
        "-".to_string()
    };
    format!(
        " {} {reason:>8} {NO_SECURITY_LABEL:>16}",
        toolstack::config::Uuid(d.handle)
    )
}

/// The names of `domains` from xenstore `/local/domain/<id>/name`, read over one
/// connection of the project's client; a domain without one (or no xenstored)
/// is left out, and prints as `(null)`.
fn domain_names(domains: &[DomainInfo]) -> HashMap<u16, String> {
    let Ok(mut xs) = toolstack::domain::connect() else {
        return HashMap::new();
    };
    domains
        .iter()
        .filter_map(|d| {
            let path = format!("/local/domain/{}/name", d.domid);
            let name = xs.try_read(&path).ok().flatten()?;
            Some((d.domid, String::from_utf8_lossy(&name).into_owned()))
        })
        .collect()
}

/// Renders the listing of `domains`, naming each with `name_of`; `verbose` as
/// `xl list -v`.
pub fn render(
    domains: &[DomainInfo],
    name_of: &dyn Fn(u16) -> Option<String>,
    verbose: bool,
) -> String {
    let mut out = String::from(HEADER);
    if verbose {
        out.push_str(VERBOSE_HEADER);
    }
    out.push('\n');
    for d in domains {
        out.push_str(&row(name_of(d.domid).as_deref(), d));
        if verbose {
            out.push_str(&verbose_columns(d));
        }
        out.push('\n');
    }
    out
}

/// Keeps the domains named (by id or name) in `filter`; all when it is empty.
pub fn select(
    domains: Vec<DomainInfo>,
    filter: &[String],
    name_of: &dyn Fn(u16) -> Option<String>,
) -> anyhow::Result<Vec<DomainInfo>> {
    if filter.is_empty() {
        return Ok(domains);
    }
    let mut out = Vec::new();
    for want in filter {
        let found = domains.iter().find(|d| {
            want.parse::<u16>().ok() == Some(d.domid) || name_of(d.domid).as_deref() == Some(want)
        });
        match found {
            Some(d) => out.push(*d),
            None => anyhow::bail!("{want} is an invalid domain identifier"),
        }
    }
    Ok(out)
}

/// Every domain and a lookup of their names (xenstore), for the listing commands.
pub fn domains_and_names(
    ctl: &xen::XenCtrl,
) -> anyhow::Result<(Vec<DomainInfo>, impl Fn(u16) -> Option<String>)> {
    let domains = ctl
        .domain_info_list(0, MAX_DOMAINS)
        .context("XEN_SYSCTL_getdomaininfolist")?;
    let names = domain_names(&domains);
    Ok((domains, move |id: u16| names.get(&id).cloned()))
}

/// `rxl list [-v] [DOMAIN...]`.
pub fn run(filter: &[String], verbose: bool) -> anyhow::Result<()> {
    let ctl = xen::XenCtrl::open().context("cannot open the hypervisor interface")?;
    let (domains, name_of) = domains_and_names(&ctl)?;
    let domains = select(domains, filter, &name_of)?;
    print!("{}", render(&domains, &name_of, verbose));
    Ok(())
}

/// xl vm-list's header line.
pub const VM_HEADER: &str = "UUID                                  ID    name";

/// One `xl vm-list` row: `LIBXL_UUID_FMT "  %d    %-30s"` (the name padded, as xl
/// leaves it, with trailing blanks).
pub fn vm_row(name: Option<&str>, d: &DomainInfo) -> String {
    format!(
        "{}  {}    {:<30}",
        toolstack::config::Uuid(d.handle),
        d.domid,
        name.unwrap_or("(null)")
    )
}

/// `rxl vm-list`: every domain's uuid, id and name (libxl_list_vm leaves out only
/// stub domains, which rxl does not make).
pub fn vm_list() -> anyhow::Result<()> {
    let ctl = xen::XenCtrl::open().context("cannot open the hypervisor interface")?;
    let (domains, name_of) = domains_and_names(&ctl)?;
    println!("{VM_HEADER}");
    for d in &domains {
        println!("{}", vm_row(name_of(d.domid).as_deref(), d));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::abi::domctl::dominf;

    #[test]
    fn rows_match_xl_format() {
        let dom0 = DomainInfo {
            domid: 0,
            flags: dominf::RUNNING,
            tot_pages: 131072,
            nr_online_vcpus: 2,
            cpu_time: 12_345_000_000,
            ..Default::default()
        };
        assert_eq!(
            row(Some("Domain-0"), &dom0),
            "Domain-0                                     0   512     2     r-----      12.3"
        );
        let crashed = DomainInfo {
            domid: 7,
            flags: dominf::SHUTDOWN | dominf::DYING | (3 << dominf::SHUTDOWN_SHIFT),
            tot_pages: 32768,
            nr_online_vcpus: 1,
            ..Default::default()
        };
        assert_eq!(
            row(None, &crashed),
            "(null)                                       7   128     1     ---scd       0.0"
        );
        let odd = DomainInfo {
            flags: dominf::SHUTDOWN | (200 << dominf::SHUTDOWN_SHIFT),
            ..Default::default()
        };
        assert!(row(Some("x"), &odd).contains("---s?-"));
    }

    #[test]
    fn verbose_columns_match_xl_format() {
        let mut handle = [0u8; 16];
        handle[0] = 0x12;
        let running = DomainInfo {
            handle,
            ..Default::default()
        };
        assert_eq!(
            verbose_columns(&running),
            " 12000000-0000-0000-0000-000000000000        -                -"
        );
        let crashed = DomainInfo {
            handle,
            flags: dominf::SHUTDOWN | (3 << dominf::SHUTDOWN_SHIFT),
            ..Default::default()
        };
        assert_eq!(
            verbose_columns(&crashed),
            " 12000000-0000-0000-0000-000000000000        3                -"
        );
    }

    #[test]
    fn vm_rows_match_xl_format() {
        let mut handle = [0u8; 16];
        handle[0] = 0xab;
        handle[15] = 0x01;
        let d = DomainInfo {
            domid: 12,
            handle,
            ..Default::default()
        };
        assert_eq!(
            vm_row(Some("web"), &d),
            "ab000000-0000-0000-0000-000000000001  12    web                           "
        );
        assert!(vm_row(None, &d).ends_with("    (null)                        "));
    }

    #[test]
    fn header_and_selection() {
        let doms = vec![
            DomainInfo {
                domid: 0,
                ..Default::default()
            },
            DomainInfo {
                domid: 3,
                ..Default::default()
            },
        ];
        let names = |id: u16| (id == 3).then(|| "guest".to_string());
        let out = render(&doms, &names, false);
        assert!(out.starts_with(
            "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
        ));
        assert_eq!(out.lines().count(), 3);
        let verbose = render(&doms, &names, true);
        assert!(verbose.starts_with(
            "Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label\n"
        ));
        assert!(verbose
            .lines()
            .nth(2)
            .expect("row")
            .ends_with(" 00000000-0000-0000-0000-000000000000        -                -"));
        let sel = select(doms.clone(), &["guest".into()], &names).expect("select");
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].domid, 3);
        assert!(select(doms, &["nope".into()], &names).is_err());
    }
}
