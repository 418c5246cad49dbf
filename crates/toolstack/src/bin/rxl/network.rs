//! `rxl network-attach`, `network-detach` and `network-list` (tools/xl/xl_nic.c):
//! hot-plug NICs served by rxnetback, with xl's vif spec syntax and output.
//!
//! Like xl, `network-attach` returns once the backend has taken the NIC (xl waits
//! for the backend's InitWait, then for its hotplug script; rxnetback makes the
//! TAP device and joins the bridge itself before it reports InitWait). When the
//! guest's frontend is up, rxl also waits (bounded) for the NIC to connect, so
//! that the guest's interface exists when the command returns; a NIC that cannot
//! be served is removed again, leaving nothing behind.

use anyhow::{anyhow, bail, Context};
use std::time::Duration;
use toolstack::config::vif::{parse_mac, parse_vif_spec, Mac};
use toolstack::device::{self, vif, DeviceError, DevicePaths, XenbusState, DOM0};
use xenstore::client::{Client, XsOps};

use crate::devcmd::{find_domain, wait_state};

/// How long attach waits for the backend by default (libxl's LIBXL_INIT_TIMEOUT is
/// 10 s; a TCG guest is slower).
const DEFAULT_TIMEOUT_SECS: u64 = 20;
/// How long attach waits for the guest's netfront to pick a NIC up when no other
/// NIC of the guest shows that the driver runs.
const IDLE_FRONTEND_WAIT: Duration = Duration::from_secs(3);
/// How many times attach picks a new devid when another writer took the chosen one.
const DEVID_RETRIES: usize = 8;

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Domain id or name.
    pub domain: String,
    /// Vif spec (xl-network-configuration), as one or several arguments joined by
    /// commas: `mac=00:16:3e:01:02:03 bridge=xenbr0 rate=10Mb/s`. None: all defaults
    /// (bridge xenbr0, a generated MAC).
    #[arg(num_args = 0..)]
    pub spec: Vec<String>,
    /// Seconds to wait for rxnetback to take the NIC, and again for the guest to
    /// connect it.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Domain id or name.
    pub domain: String,
    /// The NIC: its device id (0, 1, ...) or its MAC address.
    pub device: String,
    /// Remove the nodes without waiting for the backend to close.
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for the backend to close.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Domain ids or names.
    #[arg(required = true)]
    pub domains: Vec<String>,
}

/// The device ids among `names` (directory entries), ignoring anything else.
fn devids(names: &[String]) -> Vec<u32> {
    let mut v: Vec<u32> = names.iter().filter_map(|d| d.parse().ok()).collect();
    v.sort_unstable();
    v
}

/// The children of `dir`, empty when it does not exist.
fn children(xs: &mut Client, dir: &str) -> anyhow::Result<Vec<String>> {
    match xs.directory(dir) {
        Ok(v) => Ok(v),
        Err(e) if e.is_enoent() => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The vif device ids domain `domid` uses: its frontend directories, and
/// rxnetback's backend directories (one left behind still blocks its devid).
fn vif_devids_in_use(xs: &mut Client, domid: u32) -> anyhow::Result<Vec<u32>> {
    let mut used = devids(&children(
        xs,
        &DevicePaths::frontend_class_dir(domid, vif::KIND),
    )?);
    let be_dir = format!("/local/domain/{DOM0}/backend/{}/{domid}", vif::BACKEND_TYPE);
    used.extend(devids(&children(xs, &be_dir)?));
    Ok(used)
}

fn read_text(xs: &mut Client, path: &str) -> anyhow::Result<Option<String>> {
    Ok(xs
        .try_read(path)?
        .map(|v| String::from_utf8_lossy(&v).trim().to_string()))
}

pub fn attach(args: AttachArgs) -> anyhow::Result<()> {
    let spec_text = args.spec.join(",");
    let mut nic = parse_vif_spec(&spec_text).map_err(|e| anyhow!("{e}"))?;
    if let Some(m) = &nic.model {
        eprintln!("rxl: model={m} ignored: ARM guests get PV NICs only");
    }
    let mac = nic.mac_or_generate(toolstack::rand::bytes()?);
    let mut xs = Client::open().context("connecting to xenstore")?;
    let domid = find_domain(&mut xs, &args.domain)?;
    if domid == DOM0 {
        bail!("cannot attach a NIC to domain 0");
    }
    let class = DevicePaths::frontend_class_dir(domid, vif::KIND);
    for d in devids(&children(&mut xs, &class)?) {
        let m = read_text(&mut xs, &format!("{class}/{d}/mac"))?;
        if m.is_some_and(|m| m.eq_ignore_ascii_case(&mac.to_string())) {
            bail!("domain {domid} already has a NIC with MAC {mac} (device {d})");
        }
    }
    // The lowest free devid, written in one transaction that fails if another
    // writer took it meanwhile; then the next one.
    let mut written = None;
    for _ in 0..DEVID_RETRIES {
        let used = vif_devids_in_use(&mut xs, domid)?;
        let devid = vif::lowest_free_devid(&used);
        let nodes = vif::nodes(domid, devid, &nic)?;
        match nodes.write(&mut xs) {
            Ok(()) => {
                written = Some(nodes);
                break;
            }
            Err(DeviceError::Exists(p)) => tracing::debug!("{p} appeared meanwhile; next devid"),
            Err(e) => return Err(e).context("writing the NIC's nodes"),
        }
    }
    let nodes =
        written.context("could not find a free device id (other writers kept taking them)")?;
    let devid = nodes.paths.devid;
    tracing::info!(domid, devid, %mac, "NIC nodes written");
    let be = nodes.paths.backend();
    let cleanup = |xs: &mut Client| {
        if let Err(e) = device::remove(xs, &nodes.paths) {
            eprintln!("rxl: removing the nodes of NIC {devid} failed: {e}");
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    // rxnetback makes the TAP device and publishes its features (InitWait), or
    // gives up (Closed, with hotplug-error).
    let reached = wait_state(&mut xs, &be, timeout, |s| {
        s >= XenbusState::InitWait && s != XenbusState::Initialised
    });
    let reached = match reached {
        Ok(r) => r,
        Err(e) => {
            cleanup(&mut xs);
            return Err(e);
        }
    };
    match reached {
        None => {
            cleanup(&mut xs);
            bail!(
                "the backend did not pick up {be} within {}s: is rxnetback running?",
                args.timeout
            );
        }
        Some(XenbusState::InitWait) | Some(XenbusState::Connected) => {}
        Some(s) => {
            let why = read_text(&mut xs, &format!("{be}/hotplug-error"))
                .ok()
                .flatten()
                .unwrap_or_else(|| format!("backend went to state {s}"));
            cleanup(&mut xs);
            bail!("attaching NIC {devid} ({mac}) failed: {why}");
        }
    }
    // A running guest's netfront picks the new device up (its state leaves
    // Initialising) and connects; a guest without it leaves the NIC in InitWait.
    // When another NIC of the guest is connected its driver is known to run, so
    // rxl waits as long as for the backend; otherwise only briefly.
    let fe = nodes.paths.frontend();
    let mut driver_up = false;
    for d in devids(&children(&mut xs, &class)?) {
        if d != devid
            && device::read_state(&mut xs, &format!("{class}/{d}"))? == XenbusState::Connected
        {
            driver_up = true;
        }
    }
    let probe_wait = if driver_up {
        timeout
    } else {
        IDLE_FRONTEND_WAIT
    };
    let probed =
        wait_state(&mut xs, &fe, probe_wait, |s| s != XenbusState::Initialising)?.is_some();
    let connected =
        probed && wait_state(&mut xs, &be, timeout, |s| s == XenbusState::Connected)?.is_some();
    if connected {
        tracing::info!(devid, "NIC connected");
    } else {
        eprintln!(
            "rxl: NIC {devid} ({mac}) attached; the backend waits for the guest's frontend (state {})",
            device::read_state(&mut xs, &be)?
        );
    }
    Ok(())
}

/// What `network-detach` was given: a device id or a MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicRef {
    Devid(u32),
    Mac(Mac),
}

/// Parses `network-detach`'s device argument (xl: a number is a devid, anything
/// else must be a MAC).
pub fn parse_nic_ref(s: &str) -> anyhow::Result<NicRef> {
    if let Ok(d) = s.parse::<u32>() {
        return Ok(NicRef::Devid(d));
    }
    let mac =
        parse_mac(s).ok_or_else(|| anyhow!("{s} is neither a device id nor a MAC address"))?;
    Ok(NicRef::Mac(mac))
}

/// The backend paths of NIC `devid` of `domid`, from its frontend's `backend`
/// node (so that NICs served by the kernel's netback detach too), else rxnetback's.
fn nic_paths(xs: &mut Client, domid: u32, devid: u32) -> anyhow::Result<DevicePaths> {
    let mut paths = vif::paths(domid, devid);
    let fe = paths.frontend();
    if let Some(be) = read_text(xs, &format!("{fe}/backend"))? {
        let prefix = format!("/local/domain/{DOM0}/backend/");
        let kind = be
            .strip_prefix(&prefix)
            .and_then(|r| r.split('/').next())
            .filter(|k| DevicePaths::parse_backend(&be, DOM0, k) == Some((domid, devid)));
        match kind {
            Some(k) => paths.backend_type = k.to_string(),
            None => bail!("NIC {devid} of domain {domid} has a backend rxl does not manage: {be}"),
        }
    }
    Ok(paths)
}

pub fn detach(args: DetachArgs) -> anyhow::Result<()> {
    let nic = parse_nic_ref(&args.device)?;
    let mut xs = Client::open().context("connecting to xenstore")?;
    let domid = find_domain(&mut xs, &args.domain)?;
    let devid = match nic {
        NicRef::Devid(d) => d,
        NicRef::Mac(mac) => {
            let class = DevicePaths::frontend_class_dir(domid, vif::KIND);
            let mut found = None;
            for d in devids(&children(&mut xs, &class)?) {
                let m = read_text(&mut xs, &format!("{class}/{d}/mac"))?;
                if m.is_some_and(|m| m.eq_ignore_ascii_case(&mac.to_string())) {
                    found = Some(d);
                    break;
                }
            }
            found.ok_or_else(|| anyhow!("Error: NIC {mac} not found in domain {domid}."))?
        }
    };
    let paths = nic_paths(&mut xs, domid, devid)?;
    let be = paths.backend();
    if !xs.exists(&be)? && !xs.exists(&paths.frontend())? {
        bail!("Error: NIC {} not found in domain {domid}.", args.device);
    }
    if !args.force && xs.exists(&be)? {
        device::initiate_remove(&mut xs, &paths)?;
        // Closed, or gone: the backend removes the directory itself when the
        // guest died meanwhile (state then reads as Unknown).
        let closed = wait_state(&mut xs, &be, Duration::from_secs(args.timeout), |s| {
            matches!(s, XenbusState::Closed | XenbusState::Unknown)
        })?;
        if closed.is_none() {
            let s = device::read_state(&mut xs, &be)?;
            bail!(
                "the backend of NIC {devid} did not close within {}s (state {s}); \
                 use --force to remove it anyway",
                args.timeout
            );
        }
    }
    device::remove(&mut xs, &paths)?;
    Ok(())
}

/// xl's `network-list` header (xl_nic.c main_networklist).
pub fn list_header() -> String {
    format!(
        "{:<3} {:<2} {:<17} {:<6} {:<5} {:<6} {:>5}/{:<5} {:<30}",
        "Idx", "BE", "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path"
    )
}

/// The numbers of one `network-list` row, as libxl_device_nic_getinfo reads
/// them from the frontend directory (-1 for a missing one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicInfo {
    pub devid: u32,
    pub backend_id: i64,
    pub state: i64,
    pub evtch: i64,
    pub tx_ring_ref: i64,
    pub rx_ring_ref: i64,
}

/// One `network-list` row (xl prints the MAC without a separator before the
/// right-aligned handle).
pub fn list_row(n: &NicInfo, mac: &str, backend: &str) -> String {
    format!(
        "{:<3} {:<2} {mac}{:>6} {:>5} {:>6} {:>5}/{:<11} {backend:<30}",
        n.devid, n.backend_id, n.devid, n.state, n.evtch, n.tx_ring_ref, n.rx_ring_ref
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
        let class = DevicePaths::frontend_class_dir(domid, vif::KIND);
        for devid in devids(&children(&mut xs, &class)?) {
            let fe = format!("{class}/{devid}");
            let mut num = |n: &str| -> i64 {
                read_text(&mut xs, &format!("{fe}/{n}"))
                    .ok()
                    .flatten()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1)
            };
            let info = NicInfo {
                devid,
                backend_id: num("backend-id"),
                state: num("state"),
                evtch: num("event-channel"),
                tx_ring_ref: num("tx-ring-ref"),
                rx_ring_ref: num("rx-ring-ref"),
            };
            let mac = read_text(&mut xs, &format!("{fe}/mac"))?.unwrap_or_default();
            let backend = read_text(&mut xs, &format!("{fe}/backend"))?.unwrap_or_default();
            println!("{}", list_row(&info, &mac, &backend));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_matches_xl_widths() {
        assert_eq!(
            list_header(),
            format!(
                "Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref {:<30}",
                "BE-path"
            )
        );
        let n = NicInfo {
            devid: 1,
            backend_id: 0,
            state: 4,
            evtch: 19,
            tx_ring_ref: 8,
            rx_ring_ref: 9,
        };
        assert_eq!(
            list_row(&n, "00:16:3e:01:02:03", "/local/domain/0/backend/rxvif/3/1"),
            format!(
                "1   0  00:16:3e:01:02:03     1     4     19     8/9           {:<30}",
                "/local/domain/0/backend/rxvif/3/1"
            )
        );
        let missing = NicInfo {
            devid: 12,
            backend_id: 0,
            state: 1,
            evtch: -1,
            tx_ring_ref: -1,
            rx_ring_ref: -1,
        };
        assert!(list_row(&missing, "00:16:3e:00:00:01", "/b")
            .starts_with("12  0  00:16:3e:00:00:01    12     1     -1    -1/-1          /b"));
    }

    #[test]
    fn detach_takes_a_devid_or_a_mac() {
        assert_eq!(parse_nic_ref("2").expect("devid"), NicRef::Devid(2));
        assert_eq!(
            parse_nic_ref("00:16:3E:0a:0b:0c").expect("mac"),
            NicRef::Mac(Mac([0, 0x16, 0x3e, 0x0a, 0x0b, 0x0c]))
        );
        for bad in [
            "",
            "eth0",
            "00:16:3e:0a:0b",
            "-1",
            "00:16:3e:0a:0b:0c,bridge=x",
        ] {
            assert!(parse_nic_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn devids_ignore_other_entries() {
        let names = ["3", "0", "x", "10", ""].map(String::from);
        assert_eq!(devids(&names), [0, 3, 10]);
    }
}
