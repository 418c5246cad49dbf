//! `rxl destroy|pause|unpause|shutdown|reboot|domid|domname|rename` and the hidden
//! `rxl monitor` that `rxl create` leaves behind (tools/xl/xl_vmcontrol.c,
//! xl_domain.c).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use toolstack::domain;
use toolstack::lifecycle::{self, ConfigSource};
use xen::{DomainControl, XenCtrl};
use xenstore::client::Client;

/// xl shutdown/reboot -w waits without a limit; rxl gives up after this by default.
const DEFAULT_WAIT_SECS: u64 = 120;

/// Xen's privcmd and a xenstore connection, what most commands need.
pub fn open() -> anyhow::Result<(XenCtrl, Client)> {
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    let xs = toolstack::domain::connect().context("connecting to xenstored")?;
    Ok((ctl, xs))
}

/// A domain by name or id, as xl resolves it.
pub fn resolve(ctl: &XenCtrl, xs: &mut Client, name: &str) -> anyhow::Result<u32> {
    let ids = lifecycle::domids(ctl)?;
    domain::resolve(xs, &ids, name).map_err(|e| anyhow::anyhow!("{e}"))
}

fn domid16(id: u32) -> anyhow::Result<u16> {
    u16::try_from(id).context("domain id out of range")
}

pub fn destroy(name: &str) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let id = resolve(&ctl, &mut xs, name)?;
    if id == 0 {
        anyhow::bail!("cannot destroy privileged domain 0");
    }
    lifecycle::destroy(&ctl, &mut xs, id).with_context(|| format!("destroying domain {id}"))
}

pub fn pause(name: &str, pause: bool) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let id = domid16(resolve(&ctl, &mut xs, name)?)?;
    if pause {
        ctl.pause_domain(id).context("pausing the domain")
    } else {
        ctl.unpause_domain(id).context("unpausing the domain")
    }
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Wait for the domain to finish shutting down (to be gone).
    #[arg(short = 'w')]
    pub wait: bool,
    /// Accepted for xl compatibility (ACPI fallback does not exist on ARM).
    #[arg(short = 'F')]
    pub fallback: bool,
    /// Act on all domains but dom0.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// With -w: give up after this many seconds.
    #[arg(long, default_value_t = DEFAULT_WAIT_SECS)]
    pub timeout: u64,
    /// The domain (name or id).
    pub domain: Option<String>,
}

pub fn shutdown(args: &ShutdownArgs, what: &str) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let ids: Vec<u32> = if args.all {
        lifecycle::domids(&ctl)?
            .into_iter()
            .filter(|&d| d != 0)
            .collect()
    } else {
        let name = args
            .domain
            .as_deref()
            .context("which domain? (give a name or id, or -a)")?;
        vec![resolve(&ctl, &mut xs, name)?]
    };
    for &id in &ids {
        if id == 0 {
            anyhow::bail!("refusing to {what} domain 0 from rxl");
        }
        lifecycle::request_shutdown(&mut xs, id, what)
            .with_context(|| format!("asking domain {id} to {what}"))?;
    }
    if args.wait {
        eprintln!("Waiting for {} domains", ids.len());
        for &id in &ids {
            // A domain is waited for until it is gone (its monitor carried out the
            // on_poweroff/on_reboot action; a restarted domain has a new id).
            lifecycle::wait_gone(&ctl, id, Duration::from_secs(args.timeout), false)
                .with_context(|| format!("waiting for domain {id}"))?;
            eprintln!("Domain {id} is gone");
        }
        eprintln!("All domains have been shut down");
    }
    Ok(())
}

pub fn domid(name: &str) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let id = resolve(&ctl, &mut xs, name)?;
    println!("{id}");
    Ok(())
}

pub fn domname(id: &str) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let id: u32 = id.parse().context("expected a domain id")?;
    ctl.domain_info(domid16(id)?)
        .with_context(|| format!("domain {id}"))?;
    let name = domain::name_of(&mut xs, id).with_context(|| format!("domain {id} has no name"))?;
    println!("{name}");
    Ok(())
}

/// `rxl rename DOMAIN NEW_NAME`.
pub fn rename(name: &str, new_name: &str) -> anyhow::Result<()> {
    let (ctl, mut xs) = open()?;
    let ids = lifecycle::domids(&ctl)?;
    let id = domain::resolve(&mut xs, &ids, name).map_err(|e| anyhow::anyhow!("{e}"))?;
    toolstack::rename::rename(&mut xs, &ids, id, new_name)
        .with_context(|| format!("Can't rename domain '{name}'."))
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The domain to watch; `-`: its id comes on stdin once `rxl create` has made
    /// it (stdin closing without one: the create failed, nothing to watch).
    pub domid: String,
    /// Its config file (re-read for a restart).
    pub config: PathBuf,
    /// The config overrides it was created with.
    pub overrides: Vec<String>,
}

pub fn monitor(args: &MonitorArgs) -> anyhow::Result<()> {
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    let ver = ctl.version_numbers();
    let mem = toolstack::builder::XenGuestMemory::new(ctl.privcmd());
    let src = ConfigSource {
        path: args.config.clone(),
        overrides: args.overrides.clone(),
    };
    if args.domid == crate::build::PENDING_DOMID {
        return toolstack::monitor::run_pending(&ctl, &mem, &src, domid_from_stdin, ver)
            .context("monitoring the new domain");
    }
    let domid: u32 = args
        .domid
        .parse()
        .with_context(|| format!("expected a domain id or -, not {:?}", args.domid))?;
    toolstack::monitor::run(&ctl, &mem, &src, domid, ver)
        .with_context(|| format!("monitoring domain {domid}"))
}

/// The domain id `rxl create` writes to a pending monitor's stdin (one line);
/// `None` when stdin closes without a valid one.
fn domid_from_stdin() -> Option<u32> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    line.trim().parse().ok()
}
