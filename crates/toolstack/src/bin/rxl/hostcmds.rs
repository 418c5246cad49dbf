//! `rxl dmesg`, `rxl debug-keys`, `rxl uptime`, `rxl sysrq`, `rxl mem-set` and
//! `rxl mem-max` (tools/xl/xl_info.c, xl_misc.c, xl_mem.c): the hypervisor's
//! console ring and debug keys through sysctls, a domain's uptime from xenstore,
//! a sysrq through the guest's `control/sysrq`, memory through
//! [`toolstack::memory`].

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use toolstack::domain::{self, dom_path, name_of};
use toolstack::{lifecycle, uptime};
use xen::{DomainControl, XenCtrl};
use xenstore::client::XsOps;

use crate::lifecycle_cmds::{open, resolve};

/// Where dom0's uptime comes from, as in xl.
const PROC_UPTIME: &str = "/proc/uptime";

#[derive(Debug, Args)]
pub struct DmesgArgs {
    /// Clear the console ring as well as printing it.
    #[arg(short = 'c', long = "clear")]
    pub clear: bool,
}

pub fn dmesg(args: &DmesgArgs) -> anyhow::Result<()> {
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    let text = ctl
        .read_console(args.clear)
        .context("reading the hypervisor's console ring")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct DebugKeysArgs {
    /// The keys to press (`h` lists them in `rxl dmesg`).
    pub keys: String,
}

pub fn debug_keys(args: &DebugKeysArgs) -> anyhow::Result<()> {
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    ctl.send_debug_keys(args.keys.as_bytes())
        .context("sending debug keys")
}

#[derive(Debug, Args)]
pub struct UptimeArgs {
    /// Short form: ` HH:MM:SS up H:MM, name (id)` (the time of day in UTC).
    #[arg(short = 's')]
    pub short: bool,
    /// Domains, by name or id (dom0 and every guest when none is given).
    pub domains: Vec<String>,
}

pub fn uptime(args: &UptimeArgs) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let ids = lifecycle::domids(&ctl)?;
    let wanted: Vec<u32> = if args.domains.is_empty() {
        std::iter::once(0)
            .chain(ids.iter().copied().filter(|&d| d != 0))
            .collect()
    } else {
        args.domains
            .iter()
            .map(|d| domain::resolve(&mut xs, &ids, d).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<_>>()?
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let now_hms = args.short.then(|| uptime::time_of_day_utc(now));
    if !args.short {
        println!("{}", uptime::header());
    }
    for id in wanted {
        let secs = if id == 0 {
            let text = std::fs::read_to_string(PROC_UPTIME)
                .with_context(|| format!("cannot get dom0's uptime from {PROC_UPTIME}"))?;
            uptime::leading_seconds(&text)
                .with_context(|| format!("cannot get dom0's uptime from {PROC_UPTIME}"))?
        } else {
            // As libxl: a domain without a start time is left out (with a message).
            match start_time(&mut xs, id) {
                Some(start) => now.saturating_sub(start),
                None => {
                    eprintln!("domain {id}: no start time in xenstore; left out");
                    continue;
                }
            }
        };
        let name = name_of(&mut xs, id).unwrap_or_else(|| "(null)".into());
        println!("{}", uptime::line(&name, id, secs, now_hms.as_deref()));
    }
    Ok(())
}

/// `/vm/<uuid>/start_time` of a domain, whole seconds.
fn start_time(xs: &mut xenstore::client::Client, id: u32) -> Option<u64> {
    let vm = xs.try_read(&format!("{}/vm", dom_path(id))).ok()??;
    let vm = String::from_utf8_lossy(&vm).into_owned();
    let t = xs.try_read(&format!("{vm}/start_time")).ok()??;
    uptime::leading_seconds(&String::from_utf8_lossy(&t))
}

#[derive(Debug, Args)]
pub struct SysrqArgs {
    /// The domain (name or id).
    pub domain: String,
    /// The sysrq letter (one character), e.g. `h`, `s`, `t`.
    pub key: String,
}

pub fn sysrq(args: &SysrqArgs) -> anyhow::Result<()> {
    let mut chars = args.key.chars();
    // One byte, as xl takes it (a letter, digit or sign the guest's handler knows).
    let (Some(key), None) = (chars.next().filter(char::is_ascii_graphic), chars.next()) else {
        anyhow::bail!("invalid sysrq {:?}: give one letter", args.key);
    };
    let (ctl, mut xs) = open()?;
    let id = resolve(&ctl, &mut xs, &args.domain)?;
    let path = format!("{}/control/sysrq", dom_path(id));
    xs.write(&path, key.to_string().as_bytes())
        .with_context(|| format!("writing {path}"))
}

#[derive(Debug, Args)]
pub struct MemArgs {
    /// The domain (name or id).
    pub domain: String,
    /// The size: a number with an optional unit b, k, m (the default), g or t.
    pub size: String,
}

/// `rxl mem-set` (`max == false`) and `rxl mem-max`.
pub fn mem(args: &MemArgs, max: bool) -> anyhow::Result<()> {
    let kib = toolstack::memory::parse_size_kib(&args.size)?;
    let (ctl, mut xs) = open()?;
    let id = resolve(&ctl, &mut xs, &args.domain)?;
    if max {
        toolstack::memory::set_max(&ctl, &mut xs, id, kib).with_context(|| {
            format!(
                "cannot set domain {id}'s static max memory to {}",
                args.size
            )
        })
    } else {
        toolstack::memory::set_target(&ctl, &mut xs, id, kib).with_context(|| {
            format!(
                "cannot set domain {id}'s dynamic max memory to {}",
                args.size
            )
        })
    }
}
