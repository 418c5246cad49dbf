//! `rxl create` on real Xen: build the domain, write its xenstore tree, introduce
//! it, unpause it and leave a monitor behind (like xl's), then return; with -F
//! stay and be the monitor until the domain is gone.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use toolstack::builder::XenGuestMemory;
use toolstack::config::DomainConfig;
use toolstack::lifecycle::{self, ConfigSource, CreateRequest};
use xen::{DomainControl, XenCtrl};

use crate::console::{self, ConsoleArgs, ConsoleType};
use crate::create::CreateArgs;

/// Where monitors log (xl logs to /var/log/xen/xl-NAME.log).
const MONITOR_LOG_DIR: &str = "/var/log/xen";

pub fn create_real(args: &CreateArgs, cfg: &DomainConfig) -> anyhow::Result<()> {
    let ctl = XenCtrl::open().context("opening Xen's privcmd")?;
    let mut xs = toolstack::domain::connect().context("connecting to xenstored")?;
    let ver = ctl.version_numbers();
    let mem = XenGuestMemory::new(ctl.privcmd());
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
        },
    )
    .with_context(|| format!("creating domain {}", cfg.name))?;
    let domid = built.domid;
    tracing::info!(domid, "domain created");
    if let Some(out) = &args.dtb_out {
        std::fs::write(out, &built.plan.dtb)
            .with_context(|| format!("writing DTB to {}", out.display()))?;
    }
    let src = ConfigSource {
        path: std::fs::canonicalize(&args.config).unwrap_or_else(|_| args.config.clone()),
        overrides: args.overrides.clone(),
    };
    let src = lifecycle::restart_source(&src, cfg);
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
    let mode = if args.foreground {
        MonitorMode::Foreground
    } else {
        MonitorMode::Detached
    };
    let monitor = match spawn_monitor(&src, u32::from(domid), &cfg.name, mode) {
        Ok(child) => {
            tracing::info!(domid, "monitor spawned");
            Some(child)
        }
        Err(e) => {
            eprintln!("warning: could not start the domain's monitor ({e:#}); on_poweroff/on_reboot/on_crash will not be carried out");
            None
        }
    };
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

/// Starts `rxl monitor` for the domain in its own process group, detached from
/// the terminal, logging to /var/log/xen/rxl-NAME.log when that directory exists.
fn spawn_monitor(
    src: &ConfigSource,
    domid: u32,
    name: &str,
    mode: MonitorMode,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding rxl's own path")?;
    if mode == MonitorMode::Foreground {
        return Command::new(exe)
            .arg("-v")
            .arg("monitor")
            .arg(domid.to_string())
            .arg(&src.path)
            .args(&src.overrides)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("spawning rxl monitor");
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
    let mut cmd = Command::new(exe);
    cmd.arg("-v")
        .arg("monitor")
        .arg(domid.to_string())
        .arg(&src.path)
        .args(&src.overrides)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // A log file, not a terminal: no colour codes.
        .env("NO_COLOR", "1")
        .process_group(0);
    cmd.spawn().context("spawning rxl monitor")
}
