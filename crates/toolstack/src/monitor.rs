//! The per-domain monitor `rxl create` leaves behind, like xl's: it watches
//! `@releaseDomain`, and when the domain has shut down carries out the config's
//! on_poweroff / on_reboot / on_crash / on_watchdog action (destroy, restart from
//! the config, preserve). It ends when the domain is gone or preserved.

use std::time::{Duration, Instant};

use xen::abi::xen::{DomId, XenPfn};
use xen::{CtrlError, DomainControl};

use xenstore::client::{Client, ClientError};

use crate::builder::GuestMemory;
use crate::config::{DomainConfig, ShutdownAction};
use crate::domain;
use crate::lifecycle::{
    self, ConfigSource, CreateRequest, LifecycleError, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF,
    SHUTDOWN_REBOOT, SHUTDOWN_SOFT_RESET, SHUTDOWN_SUSPEND, SHUTDOWN_WATCHDOG,
};

/// The watch token of the monitor's `@releaseDomain` watch.
pub const WATCH_TOKEN: &str = "rxl-monitor";
/// The special path xenstored fires when a domain shuts down or goes away.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";
/// Rechecks the domain this often even without a watch event.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long a restart waits for the old domain to disappear.
pub const DESTROY_WAIT: Duration = Duration::from_secs(30);

/// What the monitor does for a domain in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Still running (or suspended): keep watching.
    Wait,
    /// Gone: clean up its xenstore nodes and stop.
    Gone,
    /// Shut down with this reason; carry out this action.
    Act(u32, ShutdownAction),
}

/// The action the config names for a shutdown reason, `None` for suspend.
pub fn action_for(cfg: &DomainConfig, reason: u32) -> Option<ShutdownAction> {
    match reason {
        SHUTDOWN_POWEROFF => Some(cfg.on_poweroff),
        SHUTDOWN_REBOOT => Some(cfg.on_reboot),
        SHUTDOWN_CRASH => Some(cfg.on_crash),
        SHUTDOWN_WATCHDOG => Some(cfg.on_watchdog),
        SHUTDOWN_SOFT_RESET => Some(cfg.on_soft_reset),
        SHUTDOWN_SUSPEND => None,
        // Unknown reasons are treated as a crash, like libxl.
        _ => Some(cfg.on_crash),
    }
}

/// Decides from getdomaininfo's answer.
pub fn decide(
    cfg: &DomainConfig,
    info: Result<xen::DomainInfo, CtrlError>,
) -> Result<Decision, CtrlError> {
    match info {
        Err(CtrlError::NoSuchDomain(_)) => Ok(Decision::Gone),
        Err(e) => Err(e),
        Ok(i) if i.dying() => Ok(Decision::Wait),
        Ok(i) if i.shutdown() => Ok(match action_for(cfg, i.shutdown_reason()) {
            Some(a) => Decision::Act(i.shutdown_reason(), a),
            None => Decision::Wait,
        }),
        Ok(_) => Ok(Decision::Wait),
    }
}

/// Watches domain `domid` built from `src` until it is gone or preserved.
pub fn run<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    src: &ConfigSource,
    domid: u32,
    xen_version: (u32, u32),
) -> Result<(), LifecycleError> {
    run_with(ctl, mem, src, domid, xen_version, domain::connect)
}

/// [`run`] over xenstore connections made by `connect`.
pub fn run_with<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    src: &ConfigSource,
    domid: u32,
    xen_version: (u32, u32),
    connect: impl Fn() -> Result<Client, ClientError>,
) -> Result<(), LifecycleError> {
    run_pending_with(ctl, mem, src, || Some(domid), xen_version, connect)
}

/// [`run`] for a monitor started before its domain exists (`rxl create` starts it
/// first, so that its start overlaps the build instead of following the unpause):
/// it reads the config, connects to xenstored and sets its watch, then asks
/// `domid` for the domain. `None` (the create failed and was rolled back) ends it
/// with nothing done.
pub fn run_pending<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    src: &ConfigSource,
    domid: impl FnOnce() -> Option<u32>,
    xen_version: (u32, u32),
) -> Result<(), LifecycleError> {
    run_pending_with(ctl, mem, src, domid, xen_version, domain::connect)
}

/// [`run_pending`] over xenstore connections made by `connect`.
pub fn run_pending_with<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    src: &ConfigSource,
    domid: impl FnOnce() -> Option<u32>,
    xen_version: (u32, u32),
    connect: impl Fn() -> Result<Client, ClientError>,
) -> Result<(), LifecycleError> {
    let xs_err = |step| move |source| LifecycleError::Xenstore { step, source };
    let mut cfg = src.load()?;
    let mut xs = connect().map_err(xs_err("connecting to xenstored"))?;
    let mut events = connect().map_err(xs_err("connecting to xenstored"))?;
    events
        .watch(RELEASE_DOMAIN, WATCH_TOKEN)
        .map_err(xs_err("watching @releaseDomain"))?;
    tracing::info!(name = %cfg.name, "monitor ready");
    let Some(mut domid) = domid() else {
        tracing::info!(name = %cfg.name, "no domain to monitor (the create did not finish)");
        return Ok(());
    };
    tracing::info!(domid, name = %cfg.name, "monitoring");
    loop {
        let id = DomId::try_from(domid).unwrap_or(DomId::MAX);
        let d = decide(&cfg, ctl.domain_info(id)).map_err(|source| LifecycleError::Xen {
            step: "getdomaininfo",
            source,
        })?;
        match d {
            Decision::Wait => {
                // Any event (or the poll interval) means: look again.
                events
                    .next_event_timeout(POLL_INTERVAL)
                    .map_err(xs_err("waiting for @releaseDomain"))?;
            }
            Decision::Gone => {
                let uuid = cfg.uuid.to_string();
                domain::remove_tree(&mut xs, domid, Some(&uuid))?;
                tracing::info!(domid, "domain gone; monitor exits");
                return Ok(());
            }
            Decision::Act(reason, action) => {
                tracing::info!(domid, reason, action = action.name(), "domain shut down");
                match action {
                    ShutdownAction::Preserve => return Ok(()),
                    ShutdownAction::Destroy
                    | ShutdownAction::CoredumpDestroy
                    | ShutdownAction::SoftReset => {
                        wait_console_drained(mem, &mut xs, domid);
                        lifecycle::destroy(ctl, &mut xs, domid)?;
                        return Ok(());
                    }
                    ShutdownAction::Restart
                    | ShutdownAction::CoredumpRestart
                    | ShutdownAction::RenameRestart => {
                        wait_console_drained(mem, &mut xs, domid);
                        // A domain renamed while it ran keeps its new name.
                        let current_name = domain::name_of(&mut xs, domid);
                        lifecycle::destroy(ctl, &mut xs, domid)?;
                        lifecycle::wait_gone(ctl, domid, DESTROY_WAIT, false)?;
                        // Like xl, the restarted domain is made from the config
                        // as it is now (edited since the create or not); one that
                        // no longer loads falls back to the one it ran with.
                        cfg = match src.load() {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(
                                    domid,
                                    "re-reading {} failed ({e}); restarting with the config the domain ran with",
                                    src.path.display()
                                );
                                cfg
                            }
                        };
                        if let Some(name) = current_name {
                            cfg.name = name;
                        }
                        let built = lifecycle::create(
                            ctl,
                            mem,
                            &mut xs,
                            &CreateRequest {
                                cfg: &cfg,
                                paused: false,
                                xen_version,
                                kernel: None,
                            },
                        )?;
                        domid = u32::from(built.domid);
                        tracing::info!(domid, "restarted");
                    }
                }
            }
        }
    }
}

/// How long a shut-down domain's console may take to be read out before the
/// monitor destroys the domain anyway.
const CONSOLE_DRAIN_WAIT: Duration = Duration::from_secs(2);
const CONSOLE_DRAIN_POLL: Duration = Duration::from_millis(20);
/// `struct xencons_interface` (xen/include/public/io/console.h): `out_cons` and
/// `out_prod` follow in[1024], out[2048], in_cons and in_prod.
const XENCONS_OUT_CONS: usize = 3080;
const XENCONS_OUT_PROD: usize = 3084;

/// Waits (bounded) until the console daemon has read everything the domain wrote
/// to its primary console ring, so that destroying the domain right after its
/// poweroff does not lose its last lines. Best effort: any failure (no console,
/// no mapping, bogus indices) just ends the wait.
fn wait_console_drained<M: GuestMemory>(mem: &M, xs: &mut Client, domid: u32) {
    let Ok(id) = DomId::try_from(domid) else {
        return;
    };
    let path = format!("/local/domain/{domid}/console/ring-ref");
    let Some(gfn) = xenstore::client::XsOps::try_read(xs, &path)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8_lossy(&v).trim().parse::<XenPfn>().ok())
    else {
        return;
    };
    let Ok(ring) = mem.map_foreign(id, &[gfn], false) else {
        return;
    };
    let deadline = Instant::now() + CONSOLE_DRAIN_WAIT;
    while Instant::now() < deadline {
        match (
            ring.read_u32(XENCONS_OUT_CONS),
            ring.read_u32(XENCONS_OUT_PROD),
        ) {
            (Ok(cons), Ok(prod)) if cons != prod => std::thread::sleep(CONSOLE_DRAIN_POLL),
            _ => return,
        }
    }
    tracing::info!(
        domid,
        "console not drained after {CONSOLE_DRAIN_WAIT:?}; destroying anyway"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_text;
    use xen::abi::domctl::dominf;

    fn cfg() -> DomainConfig {
        from_text(
            "name='g'\nkernel='/k'\non_poweroff='destroy'\non_reboot='restart'\non_crash='preserve'\n",
            "g.cfg",
            &[],
        )
        .expect("config")
    }

    fn shut(reason: u32) -> xen::DomainInfo {
        xen::DomainInfo {
            domid: 3,
            flags: dominf::SHUTDOWN | (reason << dominf::SHUTDOWN_SHIFT),
            ..Default::default()
        }
    }

    #[test]
    fn shutdown_reasons_choose_the_configured_action() {
        let c = cfg();
        assert_eq!(
            decide(&c, Ok(shut(SHUTDOWN_POWEROFF))).expect("ok"),
            Decision::Act(SHUTDOWN_POWEROFF, ShutdownAction::Destroy)
        );
        assert_eq!(
            decide(&c, Ok(shut(SHUTDOWN_REBOOT))).expect("ok"),
            Decision::Act(SHUTDOWN_REBOOT, ShutdownAction::Restart)
        );
        assert_eq!(
            decide(&c, Ok(shut(SHUTDOWN_CRASH))).expect("ok"),
            Decision::Act(SHUTDOWN_CRASH, ShutdownAction::Preserve)
        );
        // Unknown reasons count as a crash; suspend waits.
        assert_eq!(
            decide(&c, Ok(shut(77))).expect("ok"),
            Decision::Act(77, ShutdownAction::Preserve)
        );
        assert_eq!(
            decide(&c, Ok(shut(SHUTDOWN_SUSPEND))).expect("ok"),
            Decision::Wait
        );
    }

    #[test]
    fn running_dying_and_missing_domains() {
        let c = cfg();
        let running = xen::DomainInfo {
            flags: dominf::RUNNING,
            ..Default::default()
        };
        assert_eq!(decide(&c, Ok(running)).expect("ok"), Decision::Wait);
        let dying = xen::DomainInfo {
            flags: dominf::DYING | dominf::SHUTDOWN,
            ..Default::default()
        };
        assert_eq!(decide(&c, Ok(dying)).expect("ok"), Decision::Wait);
        assert_eq!(
            decide(&c, Err(CtrlError::NoSuchDomain(3))).expect("ok"),
            Decision::Gone
        );
        assert!(decide(&c, Err(CtrlError::Invalid("x"))).is_err());
    }
}
