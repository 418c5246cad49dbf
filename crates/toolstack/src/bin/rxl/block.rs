//! `rxl block-attach`, `block-detach` and `block-list` (tools/xl/xl_block.c): hot-plug
//! disks served by rxblkback, with xl's disk spec syntax and output.

use anyhow::{anyhow, bail, Context};
use std::time::Duration;
use toolstack::config::disk::{parse_disk_spec, vdev_devid};
use toolstack::device::{self, vbd, DevicePaths, XenbusState};
use xenstore::client::{Client, XsOps};

use crate::devcmd::{find_domain, wait_state};

/// How long attach waits for the backend (libxl's LIBXL_INIT_TIMEOUT is 10 s; a
/// TCG dom0 is slower: on the shared 2-core test host under load 15-18, four QEMU
/// test beds at once, rxblkback took 16 s and more than 20 s to answer).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long attach then waits for the frontend to connect, once InitWait is reached.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long detach waits for the backend to close (libxl: LIBXL_DESTROY_TIMEOUT 10 s).
const DETACH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Domain id or name.
    pub domain: String,
    /// Disk spec (xl-disk-configuration), as one or several arguments joined by
    /// commas: `format=raw, vdev=xvdb, access=rw, target=/path` or
    /// `/path,raw,xvdb,rw`.
    #[arg(required = true, num_args = 1..)]
    pub spec: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Domain id or name.
    pub domain: String,
    /// Virtual device (xvdb) or device id (51728).
    pub vdev: String,
    /// Remove the nodes without waiting for the backend to close.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Domain ids or names.
    #[arg(required = true)]
    pub domains: Vec<String>,
}

pub fn attach(args: AttachArgs) -> anyhow::Result<()> {
    let spec_text = args.spec.join(",");
    let disk = parse_disk_spec(&spec_text).map_err(|e| anyhow!("{e}"))?;
    let mut xs = Client::open().context("connecting to xenstore")?;
    let domid = find_domain(&mut xs, &args.domain)?;
    let nodes = vbd::nodes(domid, &disk)?;
    let be = nodes.paths.backend();
    nodes
        .write(&mut xs)
        .with_context(|| format!("writing the nodes of {}", disk.vdev))?;
    let cleanup = |xs: &mut Client| {
        if let Err(e) = device::remove(xs, &nodes.paths) {
            eprintln!("rxl: removing the nodes of {} failed: {e}", disk.vdev);
        }
    };
    // The backend opens the disk and publishes its features (InitWait), or gives
    // up (Closed, with hotplug-error).
    let reached = wait_state(&mut xs, &be, ATTACH_TIMEOUT, |s| {
        s >= XenbusState::InitWait && s != XenbusState::Initialised
    })?;
    match reached {
        None => {
            cleanup(&mut xs);
            bail!(
                "the backend did not pick up {be} within {}s: is rxblkback running?",
                ATTACH_TIMEOUT.as_secs()
            );
        }
        Some(XenbusState::InitWait) | Some(XenbusState::Connected) => {}
        Some(s) => {
            let why = xs
                .try_read(&format!("{be}/hotplug-error"))?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|| format!("backend went to state {s}"));
            cleanup(&mut xs);
            bail!("attaching {} failed: {why}", disk.vdev);
        }
    }
    // A running guest's frontend connects; one that is not up leaves it in InitWait.
    let fe = nodes.paths.frontend();
    let fe_up = device::read_state(&mut xs, &fe)? != XenbusState::Initialising;
    let timeout = if fe_up {
        CONNECT_TIMEOUT
    } else {
        Duration::from_secs(2)
    };
    match wait_state(&mut xs, &be, timeout, |s| s == XenbusState::Connected)? {
        Some(_) => tracing::info!("{} connected", disk.vdev),
        None => eprintln!(
            "rxl: {} attached; the backend waits for the guest's frontend (state {})",
            disk.vdev,
            device::read_state(&mut xs, &be)?
        ),
    }
    Ok(())
}

fn devid_of(vdev: &str) -> anyhow::Result<u32> {
    vdev_devid(vdev).ok_or_else(|| anyhow!("Error: Device {vdev} not connected."))
}

pub fn detach(args: DetachArgs) -> anyhow::Result<()> {
    let mut xs = Client::open().context("connecting to xenstore")?;
    let domid = find_domain(&mut xs, &args.domain)?;
    let devid = devid_of(&args.vdev)?;
    let paths = vbd::paths(domid, devid);
    let be = paths.backend();
    if !xs.exists(&be)? {
        bail!("Error: Device {} not connected.", args.vdev);
    }
    if !args.force {
        device::initiate_remove(&mut xs, &paths)?;
        // Closed, or gone: the backend removes the directory itself when the
        // guest died meanwhile (state then reads as Unknown).
        let closed = wait_state(&mut xs, &be, DETACH_TIMEOUT, |s| {
            matches!(s, XenbusState::Closed | XenbusState::Unknown)
        })?;
        if closed.is_none() {
            let s = device::read_state(&mut xs, &be)?;
            bail!(
                "the backend of {} did not close within {}s (state {s}); \
                 use --force to remove it anyway",
                args.vdev,
                DETACH_TIMEOUT.as_secs()
            );
        }
    }
    device::remove(&mut xs, &paths)?;
    Ok(())
}

/// xl's `block-list` header (xl_block.c main_blocklist).
pub fn list_header() -> String {
    format!(
        "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}",
        "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path"
    )
}

/// One `block-list` row: values read from the frontend directory, as
/// libxl_device_disk_getinfo does (-1 for a missing number).
pub fn list_row(
    devid: u32,
    backend_id: i64,
    frontend_id: u32,
    state: i64,
    evtch: i64,
    rref: i64,
    backend: &str,
) -> String {
    format!(
        "{devid:<5} {backend_id:<3} {frontend_id:<6} {state:<5} {evtch:<6} {rref:<8} {backend:<30}"
    )
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut xs = Client::open().context("connecting to xenstore")?;
    println!("{}", list_header());
    for dom in &args.domains {
        let domid = match find_domain(&mut xs, dom) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let class = DevicePaths::frontend_class_dir(domid, vbd::KIND);
        let mut devids: Vec<u32> = match xs.directory(&class) {
            Ok(v) => v.iter().filter_map(|d| d.parse().ok()).collect(),
            Err(e) if e.is_enoent() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        devids.sort_unstable();
        for devid in devids {
            let fe = format!("{class}/{devid}");
            let mut num = |n: &str| -> i64 {
                xs.try_read(&format!("{fe}/{n}"))
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok())
                    .unwrap_or(-1)
            };
            let (be_id, state, evtch, rref) = (
                num("backend-id"),
                num("state"),
                num("event-channel"),
                num("ring-ref"),
            );
            let backend = xs
                .try_read(&format!("{fe}/backend"))?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            println!(
                "{}",
                list_row(devid, be_id, domid, state, evtch, rref, &backend)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_row_matches_xl_widths() {
        assert_eq!(
            list_header(),
            "Vdev  BE  handle state evt-ch ring-ref BE-path                       "
        );
        let r = list_row(
            51712,
            0,
            1,
            4,
            5,
            8,
            "/local/domain/0/backend/rxvbd/1/51712",
        );
        assert_eq!(
            r,
            "51712 0   1      4     5      8        /local/domain/0/backend/rxvbd/1/51712"
        );
        assert_eq!(
            list_row(51728, 0, 3, 1, -1, -1, "/b"),
            format!("51728 0   3      1     -1     -1       {:<30}", "/b")
        );
    }
}
