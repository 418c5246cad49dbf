//! `rxl create` on real Xen: build the domain, write its xenstore tree, introduce
//! it, unpause it and leave a monitor behind (like xl's), then return; with -F
//! stay and be the monitor until the domain is gone.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use toolstack::arm::loader::KernelImage;
use toolstack::builder::{ImageBytes, XenGuestMemory};
use toolstack::config::DomainConfig;
use toolstack::lifecycle::{self, ConfigSource, CreateRequest};
use xen::{DomainControl, XenCtrl};

use crate::console::{self, ConsoleArgs, ConsoleType};
use crate::create::CreateArgs;

/// Where monitors log (xl logs to /var/log/xen/xl-NAME.log).
const MONITOR_LOG_DIR: &str = "/var/log/xen";

pub fn create_real(
    args: &CreateArgs,
    cfg: &DomainConfig,
    kernel: (KernelImage, ImageBytes<'_>),
) -> anyhow::Result<()> {
    let src = ConfigSource {
        path: std::fs::canonicalize(&args.config).unwrap_or_else(|_| args.config.clone()),
        overrides: args.overrides.clone(),
    };
    let src = lifecycle::restart_source(&src, cfg);
    let mode = if args.foreground {
        MonitorMode::Foreground
    } else {
        MonitorMode::Detached
    };
    // The monitor (unless this process is to be it, -F without -c) is started first
    // and told the domain id once the domain runs: its exec and set-up (config,
    // xenstore connections, watch) overlap the build on dom0's other vCPUs instead
    // of following the unpause, where they competed with the console daemon setting
    // the new domain up. If the create fails, its stdin closes and it exits.
    let pending = if args.foreground && !args.console {
        None
    } else {
        match spawn_monitor(&src, &cfg.name, mode) {
            Ok(child) => {
                tracing::info!("monitor started");
                Some(child)
            }
            Err(e) => {
                eprintln!("warning: could not start the domain's monitor ({e:#}); on_poweroff/on_reboot/on_crash will not be carried out");
                None
            }
        }
    };
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    let mut xs = toolstack::domain::connect().context("connecting to xenstored")?;
    let ver = ctl.version_numbers();
    let mem = XenGuestMemory::new(ctl.privcmd());
    tracing::info!("privcmd opened, xenstored connected");
    let built = lifecycle::create(
        &ctl,
        &mem,
        &mut xs,
        &CreateRequest {
            cfg,
            // With -c the domain stays paused until the console is attached, so
            // that none of its first lines is missed (xl attaches before unpause too).
            paused: args.paused || args.console,
            xen_version: ver,
            kernel: Some(kernel),
        },
    )
    .with_context(|| format!("creating domain {}", cfg.name))?;
    let domid = built.domid;
    tracing::info!(domid, "domain created");
    let monitor = pending.and_then(|child| match tell_monitor(child, u32::from(domid)) {
        Ok(child) => {
            tracing::info!(domid, "monitor told the domain id");
            Some(child)
        }
        Err(e) => {
            eprintln!("warning: the domain's monitor did not take domain {domid} ({e:#}); on_poweroff/on_reboot/on_crash will not be carried out");
            None
        }
    });
    if let Some(out) = &args.dtb_out {
        std::fs::write(out, &built.plan.dtb)
            .with_context(|| format!("writing DTB to {}", out.display()))?;
    }
    if args.foreground && !args.console {
        // xl -F: this process is the monitor.
        eprintln!(
            "Waiting for domain {} (domid {domid}) to die [pid {}]",
            cfg.name,
            std::process::id()
        );
        return toolstack::monitor::run(&ctl, &mem, &src, u32::from(domid), ver)
            .with_context(|| format!("monitoring domain {domid}"));
    }
    if args.console {
        let console = ConsoleArgs {
            domain: domid.to_string(),
            kind: ConsoleType::Pv,
            num: 0,
            via_pty: false,
        };
        let leave_paused = args.paused;
        let attached = console::run_attached(console, || {
            if leave_paused {
                return Ok(());
            }
            ctl.unpause_domain(domid)
                .with_context(|| format!("unpausing domain {domid} once its console was attached"))
        });
        if let (true, Some(child)) = (args.foreground, monitor) {
            wait_monitor(child, &cfg.name, u32::from(domid))?;
        }
        return attached;
    }
    tracing::info!(domid, "rxl create returns");
    Ok(())
}

/// How `rxl create` leaves the domain's monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonitorMode {
    /// In its own process group, logging to a file: outlives the command (xl's default).
    Detached,
    /// A child in rxl's process group, logging to rxl's stderr, waited for (-F with -c).
    Foreground,
}

/// With -F -c: once the console is left, stays until the monitor ends (the domain
/// is gone or preserved).
fn wait_monitor(mut child: Child, name: &str, domid: u32) -> anyhow::Result<()> {
    eprintln!(
        "Waiting for domain {name} (domid {domid}) to die [monitor pid {}]",
        child.id()
    );
    let status = child.wait().context("waiting for the domain's monitor")?;
    if !status.success() {
        anyhow::bail!("the monitor of domain {domid} failed ({status})");
    }
    Ok(())
}

/// The domain id a monitor started with this argument reads from its stdin.
pub const PENDING_DOMID: &str = "-";

/// Starts `rxl monitor -` (the domain id follows on its stdin, see
/// [`tell_monitor`]): detached, in its own process group, logging to
/// /var/log/xen/rxl-NAME.log when that directory exists; or (-F with -c) as a child
/// in rxl's process group logging to rxl's stderr.
fn spawn_monitor(src: &ConfigSource, name: &str, mode: MonitorMode) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding rxl's own path")?;
    let mut cmd = Command::new(exe);
    cmd.arg("-v")
        .arg("monitor")
        .arg(PENDING_DOMID)
        .arg(&src.path)
        .args(&src.overrides)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    if mode == MonitorMode::Foreground {
        return cmd.spawn().context("spawning rxl monitor");
    }
    let log = std::fs::create_dir_all(MONITOR_LOG_DIR).ok().and_then(|_| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{MONITOR_LOG_DIR}/rxl-{name}.log"))
            .ok()
    });
    let stderr = match log {
        Some(f) => Stdio::from(f),
        None => Stdio::null(),
    };
    cmd.stderr(stderr)
        // A log file, not a terminal: no colour codes.
        .env("NO_COLOR", "1")
        .process_group(0);
    cmd.spawn().context("spawning rxl monitor")
}

/// Gives a monitor started by [`spawn_monitor`] its domain id and closes its stdin.
fn tell_monitor(mut child: Child, domid: u32) -> anyhow::Result<Child> {
    let mut stdin = child
        .stdin
        .take()
        .context("the monitor has no stdin pipe")?;
    writeln!(stdin, "{domid}").context("writing the domain id to the monitor")?;
    Ok(child)
}
