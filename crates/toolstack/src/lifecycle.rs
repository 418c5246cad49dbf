//! Domain lifecycle over Xen and xenstore: create (build → xenstore tree →
//! introduce → unpause, rolled back on failure), destroy, shutdown requests.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xen::abi::xen::DomId;
use xen::{CtrlError, DomainControl};
use xenstore::client::{Client, ClientError, XsOps};

use crate::arm::fdt::RNG_SEED_SIZE;
use crate::arm::loader::{KernelImage, LoaderError};
use crate::builder::{self, BuildError, BuildInput, BuiltDomain, GuestMemory, ImageBytes};
use crate::config::{self, ConfigError, DomainConfig};
use crate::device::console::{self as channel, ChannelError};
use crate::device::{vbd, vbd::VbdError, vif, vif::VifError, DeviceError};
use crate::domain::{self, DomainError, TreeInput};

/// How many domains a name lookup scans (libxl asks for 1024 at a time).
pub const MAX_DOMAINS: u32 = 1024;
/// `SHUTDOWN_*` reasons (xen/include/public/sched.h).
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_SUSPEND: u32 = 2;
pub const SHUTDOWN_CRASH: u32 = 3;
pub const SHUTDOWN_WATCHDOG: u32 = 4;
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

/// Lifecycle errors.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("kernel {path}")]
    Kernel {
        path: String,
        #[source]
        source: LoaderError,
    },
    #[error("cannot map ramdisk {path}")]
    Ramdisk {
        path: String,
        #[source]
        source: xen::MemError,
    },
    #[error("no kernel in the config")]
    NoKernel,
    #[error("domain with name \"{0}\" already exists")]
    NameInUse(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{step} failed")]
    Xen {
        step: &'static str,
        #[source]
        source: CtrlError,
    },
    #[error("{step} failed")]
    Xenstore {
        step: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("random seed")]
    Rand(#[from] crate::rand::RandError),
    #[error("disk {vdev}")]
    Disk {
        vdev: String,
        #[source]
        source: VbdError,
    },
    #[error("writing the nodes of disk {vdev}")]
    DiskNodes {
        vdev: String,
        #[source]
        source: DeviceError,
    },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("writing the nodes of channel {name}")]
    ChannelNodes {
        name: String,
        #[source]
        source: DeviceError,
    },
    #[error("vif {devid}")]
    Nic {
        devid: u32,
        #[source]
        source: VifError,
    },
    #[error("writing the nodes of vif {devid}")]
    NicNodes {
        devid: u32,
        #[source]
        source: DeviceError,
    },
    #[error("timed out after {0:?} waiting for domain {1} to {2}")]
    Timeout(Duration, DomId, &'static str),
}

/// A config as loaded, with where it came from (for a restart).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub overrides: Vec<String>,
}

impl ConfigSource {
    pub fn load(&self) -> Result<DomainConfig, ConfigError> {
        config::load(&self.path, &self.overrides)
    }
}

/// The ids of all domains.
pub fn domids<C: DomainControl>(ctl: &C) -> Result<Vec<u32>, LifecycleError> {
    Ok(ctl
        .domain_info_list(0, MAX_DOMAINS)
        .map_err(|source| LifecycleError::Xen {
            step: "listing domains",
            source,
        })?
        .iter()
        .map(|d| u32::from(d.domid))
        .collect())
}

/// `start_time` as libxl writes it: seconds since the epoch, two decimals.
pub fn start_time() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:02}", t.as_secs(), t.subsec_millis() / 10)
}

/// Everything `create` needs besides Xen.
#[derive(Debug)]
pub struct CreateRequest<'a> {
    pub cfg: &'a DomainConfig,
    pub paused: bool,
    pub xen_version: (u32, u32),
    /// The config's kernel, already read and probed (`rxl create` reads it to
    /// validate before opening Xen); `None`: `create` reads it. A 30 MiB kernel
    /// read twice cost ~100 ms under TCG.
    pub kernel: Option<(KernelImage, ImageBytes<'a>)>,
}

/// Creates, describes in xenstore, introduces and (unless paused) unpauses a domain.
/// Any failure destroys the domain and removes its xenstore nodes.
pub fn create<C: DomainControl, M: GuestMemory>(
    ctl: &C,
    mem: &M,
    xs: &mut Client,
    req: &CreateRequest<'_>,
) -> Result<BuiltDomain, LifecycleError> {
    let cfg = req.cfg;
    let t0 = Instant::now();
    let step = |what: &str| tracing::info!(ms = t0.elapsed().as_millis() as u64, "{what}");
    let ids = domids(ctl)?;
    if domain::resolve(xs, &ids, &cfg.name).is_ok() && cfg.name.parse::<u32>().is_err() {
        return Err(LifecycleError::NameInUse(cfg.name.clone()));
    }
    step("name checked against the existing domains");
    let kernel_path = cfg.kernel.as_ref().ok_or(LifecycleError::NoKernel)?;
    let loaded;
    let (kernel, kernel_bytes) = match req.kernel {
        Some((k, bytes)) => (k, bytes),
        None => {
            loaded = KernelImage::open(kernel_path).map_err(|source| LifecycleError::Kernel {
                path: kernel_path.display().to_string(),
                source,
            })?;
            step("kernel mapped");
            (loaded.0, ImageBytes::file(&loaded.1))
        }
    };
    let initrd = match &cfg.ramdisk {
        None => None,
        Some(p) => Some(
            xen::FileImage::open(p).map_err(|source| LifecycleError::Ramdisk {
                path: p.display().to_string(),
                source,
            })?,
        ),
    };
    // Disks are checked before anything is made (the domain id only fills in paths).
    for disk in &cfg.disks {
        vbd::nodes(0, disk).map_err(|source| LifecycleError::Disk {
            vdev: disk.vdev.clone(),
            source,
        })?;
    }
    // So are the NICs (vif = [...]): NIC i gets devid i, like libxl.
    for (devid, nic) in (0u32..).zip(&cfg.vifs) {
        vif::nodes(0, devid, nic).map_err(|source| LifecycleError::Nic { devid, source })?;
    }
    for (i, c) in cfg.channels.iter().enumerate() {
        channel::nodes(0, channel_devid(i), c)?;
    }
    step("config checked, kernel and initrd read");
    let input = BuildInput {
        cfg,
        kernel,
        kernel_bytes,
        initrd: initrd.as_ref().map(ImageBytes::file),
        rng_seed: crate::rand::bytes::<RNG_SEED_SIZE>()?,
        xen_version: req.xen_version,
    };
    let started = builder::start(ctl, mem, &input)?;
    let domid = u32::from(started.domid);
    // From here on the xenstore tree names only what exists (the ids, the event
    // channels, the magic pages and their grant entries), so it is written on a
    // second thread while `finish` populates RAM and copies the images in:
    // xenstored's work and Xen's for the builder overlap on dom0's vCPUs. (libxl
    // writes most of the tree right after createdomain too.) The domain is
    // introduced once both are done, as before: the daemons that set it up then
    // (xenstored, the console daemon) never see a domain still being built. A
    // vuart's event channel comes later: with one, the tree follows the build.
    let (built, described) = match started.preview(cfg) {
        Some(preview) => std::thread::scope(|s| {
            let writer = s.spawn(|| describe(xs, cfg, &preview, &step));
            let built = builder::finish(ctl, mem, &input, started);
            let described = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (built, Some(described))
        }),
        None => (builder::finish(ctl, mem, &input, started), None),
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            // `finish` destroyed the domain; its nodes may have been written.
            if described.is_some() {
                let uuid = cfg.uuid.to_string();
                if let Err(r) = domain::remove_tree(xs, domid, Some(&uuid)) {
                    tracing::error!(domid, "rollback: removing xenstore nodes failed: {r}");
                }
            }
            return Err(e.into());
        }
    };
    step("domain built");
    let finish = |xs: &mut Client| -> Result<(), LifecycleError> {
        match described {
            Some(r) => r?,
            None => describe(xs, cfg, &built, &step)?,
        }
        xs.introduce(domid, built.store_gfn, built.store_port)
            .map_err(|source| LifecycleError::Xenstore {
                step: "introducing the domain to xenstored",
                source,
            })?;
        step("introduced to xenstored");
        if !req.paused {
            ctl.unpause_domain(built.domid)
                .map_err(|source| LifecycleError::Xen {
                    step: "unpausing the domain",
                    source,
                })?;
            step("unpaused");
        }
        Ok(())
    };
    if let Err(e) = finish(xs) {
        tracing::warn!(domid, "create failed, rolling back: {e}");
        if let Err(d) = ctl.destroy_domain(built.domid) {
            tracing::error!(domid, "rollback: destroy failed: {d}");
        }
        let uuid = cfg.uuid.to_string();
        if let Err(r) = domain::remove_tree(xs, domid, Some(&uuid)) {
            tracing::error!(domid, "rollback: removing xenstore nodes failed: {r}");
        }
        return Err(e);
    }
    Ok(built)
}

/// Writes the domain's xenstore tree and its disks', NICs' and channels' nodes.
fn describe(
    xs: &mut Client,
    cfg: &DomainConfig,
    built: &BuiltDomain,
    step: &(dyn Fn(&str) + Sync),
) -> Result<(), LifecycleError> {
    let domid = u32::from(built.domid);
    let nodes = domain::domain_tree(&TreeInput {
        cfg,
        built,
        start_time: start_time(),
    });
    domain::write_tree(xs, domid, &nodes)?;
    step("xenstore tree written");
    // disk = [...]: the vbd nodes, served by rxblkback, written before the domain
    // runs so that its blkfront finds them at boot (as libxl does).
    for disk in &cfg.disks {
        let vdev = disk.vdev.clone();
        let device = vbd::nodes(domid, disk).map_err(|source| LifecycleError::Disk {
            vdev: vdev.clone(),
            source,
        })?;
        device
            .write(xs)
            .map_err(|source| LifecycleError::DiskNodes { vdev, source })?;
    }
    if !cfg.disks.is_empty() {
        step("disk nodes written");
    }
    // vif = [...]: the NICs' nodes, served by rxnetback, likewise before the
    // domain runs so that its netfront finds them at boot.
    for (devid, nic) in (0u32..).zip(&cfg.vifs) {
        let device = vif::nodes(domid, devid, nic)
            .map_err(|source| LifecycleError::Nic { devid, source })?;
        device
            .write(xs)
            .map_err(|source| LifecycleError::NicNodes { devid, source })?;
    }
    if !cfg.vifs.is_empty() {
        step("vif nodes written");
    }
    // channel = [...]: secondary consoles 1, 2, ... (libxl numbers them from 1),
    // served by rxconsoled; rolled back with the rest of the tree (they live
    // under the domain's and dom0's backend/console/<domid> directories).
    for (i, c) in cfg.channels.iter().enumerate() {
        channel::nodes(domid, channel_devid(i), c)?
            .write(xs)
            .map_err(|source| LifecycleError::ChannelNodes {
                name: c.name.clone(),
                source,
            })?;
    }
    if !cfg.channels.is_empty() {
        step("channel nodes written");
    }
    Ok(())
}

/// The console devid of the `i`th channel (0 is the primary console).
fn channel_devid(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

/// Destroys a domain like `xl destroy`: pause, remove its xenstore nodes, destroy.
pub fn destroy<C: DomainControl>(
    ctl: &C,
    xs: &mut Client,
    domid: u32,
) -> Result<(), LifecycleError> {
    let id = DomId::try_from(domid).map_err(|_| LifecycleError::Xen {
        step: "destroying the domain",
        source: CtrlError::Invalid("domain id out of range"),
    })?;
    let uuid = domain::recorded_uuid(xs, domid);
    // A domain that is already dying cannot be paused; that is fine.
    if let Err(e) = ctl.pause_domain(id) {
        tracing::debug!(domid, "pause before destroy: {e}");
    }
    domain::remove_tree(xs, domid, uuid.as_deref())?;
    ctl.destroy_domain(id)
        .map_err(|source| LifecycleError::Xen {
            step: "destroying the domain",
            source,
        })
}

/// Asks the guest to power off or reboot through `control/shutdown`.
pub fn request_shutdown(xs: &mut Client, domid: u32, what: &str) -> Result<(), LifecycleError> {
    xs.write(
        &format!("{}/control/shutdown", domain::dom_path(domid)),
        what.as_bytes(),
    )
    .map_err(|source| LifecycleError::Xenstore {
        step: "writing control/shutdown",
        source,
    })
}

/// Waits until the domain no longer exists (or, with `or_shutdown`, has shut
/// down), polling every 100 ms.
pub fn wait_gone<C: DomainControl>(
    ctl: &C,
    domid: u32,
    timeout: Duration,
    or_shutdown: bool,
) -> Result<(), LifecycleError> {
    let id = DomId::try_from(domid).unwrap_or(DomId::MAX);
    let start = Instant::now();
    loop {
        match ctl.domain_info(id) {
            Err(CtrlError::NoSuchDomain(_)) => return Ok(()),
            Ok(i) if or_shutdown && i.shutdown() => return Ok(()),
            Ok(_) => {}
            Err(source) => {
                return Err(LifecycleError::Xen {
                    step: "getdomaininfo",
                    source,
                })
            }
        }
        if start.elapsed() > timeout {
            return Err(LifecycleError::Timeout(timeout, id, "go away"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The config file a monitor re-reads to restart a domain, pinned to its uuid.
pub fn restart_source(src: &ConfigSource, cfg: &DomainConfig) -> ConfigSource {
    let mut overrides = src.overrides.clone();
    overrides.push(format!("uuid=\"{}\"", cfg.uuid));
    ConfigSource {
        path: src.path.clone(),
        overrides,
    }
}
