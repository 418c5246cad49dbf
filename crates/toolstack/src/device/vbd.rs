//! Virtual block devices: the xenstore nodes of a disk as libxl writes them for a
//! vbd (tools/libs/light/libxl_disk.c `device_disk_add`), served by rxblkback under
//! its own backend type [`BACKEND_TYPE`].

use super::{DeviceNodes, DevicePaths, XenbusState, DOM0};
use crate::config::disk::{DiskFormat, DiskSpec};

/// Frontend device class (Linux xen-blkfront binds `device/vbd/*`).
pub const KIND: &str = "vbd";
/// rxblkback's backend type: not `vbd` (the kernel's xen-blkback claims that) and
/// not `qdisk` (QEMU's, which a dom0 may run as well).
pub const BACKEND_TYPE: &str = "rxvbd";

/// Node names of a vbd backend directory that rxblkback reads.
pub mod node {
    pub const PARAMS: &str = "params";
    pub const MODE: &str = "mode";
    pub const DEVICE_TYPE: &str = "device-type";
    pub const ONLINE: &str = "online";
    pub const FRONTEND: &str = "frontend";
    pub const FRONTEND_ID: &str = "frontend-id";
    pub const DEV: &str = "dev";
    pub const DISCARD_ENABLE: &str = "discard-enable";
    /// Logical sector size: written by rxl when the disk spec asks for one
    /// (`sector-size=4096`), then published by rxblkback as blkif.h's node.
    pub const SECTOR_SIZE: &str = "sector-size";
}

/// Errors of building a vbd's nodes.
#[derive(Debug, thiserror::Error)]
pub enum VbdError {
    #[error("{0:?} is not a virtual device name Xen knows")]
    BadVdev(String),
    #[error("disk format {0:?} is not supported by rxblkback (raw only)")]
    Format(DiskFormat),
    #[error("a disk without a target (empty cdrom) is not supported yet")]
    NoTarget,
}

/// The paths of a vbd of `domid` with device id `devid`, served from dom0.
pub fn paths(domid: u32, devid: u32) -> DevicePaths {
    DevicePaths {
        kind: KIND,
        backend_type: BACKEND_TYPE.to_string(),
        frontend_domid: domid,
        backend_domid: DOM0,
        devid,
    }
}

/// The nodes of `disk` attached to domain `domid`.
pub fn nodes(domid: u32, disk: &DiskSpec) -> Result<DeviceNodes, VbdError> {
    let devid = disk
        .devid()
        .ok_or_else(|| VbdError::BadVdev(disk.vdev.clone()))?;
    if disk.format != DiskFormat::Raw {
        return Err(VbdError::Format(disk.format));
    }
    let target = disk.target.clone().ok_or(VbdError::NoTarget)?;
    let paths = paths(domid, devid);
    let device_type = if disk.cdrom { "cdrom" } else { "disk" };
    let initialising = XenbusState::Initialising.as_value();
    let frontend = vec![
        ("backend", paths.backend()),
        ("backend-id", paths.backend_domid.to_string()),
        ("state", initialising.clone()),
        ("virtual-device", devid.to_string()),
        (node::DEVICE_TYPE, device_type.to_string()),
        ("trusted", flag(disk.trusted.unwrap_or(true)).to_string()),
    ];
    let mut backend = vec![
        (node::FRONTEND, paths.frontend()),
        (node::PARAMS, target),
        (node::FRONTEND_ID, domid.to_string()),
        (node::ONLINE, "1".to_string()),
        ("removable", flag(disk.cdrom).to_string()),
        ("bootable", "1".to_string()),
        ("state", initialising),
        (node::DEV, disk.vdev.clone()),
        ("type", BACKEND_TYPE.to_string()),
        (
            node::MODE,
            if disk.readwrite { "w" } else { "r" }.to_string(),
        ),
        (node::DEVICE_TYPE, device_type.to_string()),
        (
            node::DISCARD_ENABLE,
            flag(disk.discard.unwrap_or(true)).to_string(),
        ),
        // Debian's libxl 4.17 writes it too (seen with `xenstore-ls -p`).
        ("specification", "xen".to_string()),
    ];
    if disk.direct_io_safe {
        backend.push(("direct-io-safe", "1".to_string()));
    }
    if let Some(n) = disk.sector_size {
        backend.push((node::SECTOR_SIZE, n.to_string()));
    }
    Ok(DeviceNodes {
        paths,
        frontend,
        ro_frontend: Vec::new(),
        backend,
    })
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// What rxblkback learns from a vbd's backend directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// The backing file or block device (`params`, without a `phy:`-style prefix).
    pub params: String,
    pub read_only: bool,
    pub cdrom: bool,
    pub discard: bool,
}

impl BackendConfig {
    /// Interprets the values of `params`, `mode`, `device-type` and
    /// `discard-enable` (absent ones as `None`).
    pub fn from_nodes(
        params: &str,
        mode: Option<&str>,
        device_type: Option<&str>,
        discard_enable: Option<&str>,
    ) -> Self {
        // libxl accepts `w` or anything starting with it as writable (blkback: "w").
        let read_only = !mode.is_some_and(|m| m.starts_with('w'));
        let params = params
            .strip_prefix("phy:")
            .or_else(|| params.strip_prefix("file:"))
            .unwrap_or(params)
            .to_string();
        BackendConfig {
            params,
            read_only,
            cdrom: device_type == Some("cdrom"),
            discard: discard_enable != Some("0"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::disk::parse_disk_spec;

    fn value<'a>(list: &'a [(&'static str, String)], key: &str) -> &'a str {
        list.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn a_disk_gets_libxl_nodes() {
        let d = parse_disk_spec("format=raw, vdev=xvdb, access=ro, target=/srv/d.img").unwrap();
        let n = nodes(7, &d).unwrap();
        assert_eq!(n.paths.frontend(), "/local/domain/7/device/vbd/51728");
        assert_eq!(n.paths.backend(), "/local/domain/0/backend/rxvbd/7/51728");
        assert_eq!(value(&n.frontend, "backend"), n.paths.backend());
        assert_eq!(value(&n.frontend, "virtual-device"), "51728");
        assert_eq!(value(&n.frontend, "state"), "1");
        assert_eq!(value(&n.backend, "frontend"), n.paths.frontend());
        assert_eq!(value(&n.backend, "params"), "/srv/d.img");
        assert_eq!(value(&n.backend, "mode"), "r");
        assert_eq!(value(&n.backend, "online"), "1");
        assert_eq!(value(&n.backend, "state"), "1");
        assert_eq!(value(&n.backend, "frontend-id"), "7");
        assert_eq!(value(&n.backend, "dev"), "xvdb");
        let fp: Vec<String> = n.frontend_perms().iter().map(|p| p.to_string()).collect();
        let bp: Vec<String> = n.backend_perms().iter().map(|p| p.to_string()).collect();
        assert_eq!(fp, ["n7", "r0"]);
        assert_eq!(bp, ["n0", "r7"]);
        assert!(!n.backend.iter().any(|(k, _)| *k == node::SECTOR_SIZE));
        let d = parse_disk_spec("vdev=xvdb, sector-size=4096, target=/d").unwrap();
        assert_eq!(
            value(&nodes(7, &d).unwrap().backend, node::SECTOR_SIZE),
            "4096"
        );
    }

    #[test]
    fn positional_spec_and_bad_vdev() {
        let d = parse_disk_spec("/srv/a.img,raw,xvda,rw").unwrap();
        let n = nodes(1, &d).unwrap();
        assert_eq!(n.paths.devid, 51712);
        assert_eq!(value(&n.backend, "mode"), "w");
        let bad = parse_disk_spec("/srv/a.img,raw,bogus,rw").unwrap();
        assert!(matches!(nodes(1, &bad), Err(VbdError::BadVdev(_))));
        let q = parse_disk_spec("/srv/a.qcow2,qcow2,xvda,rw").unwrap();
        assert!(matches!(nodes(1, &q), Err(VbdError::Format(_))));
    }

    #[test]
    fn backend_config_reads_mode_and_prefix() {
        let c = BackendConfig::from_nodes("phy:/dev/sdb", Some("w"), Some("disk"), None);
        assert_eq!(c.params, "/dev/sdb");
        assert!(!c.read_only && !c.cdrom && c.discard);
        let c = BackendConfig::from_nodes("/x", Some("r"), Some("cdrom"), Some("0"));
        assert!(c.read_only && c.cdrom && !c.discard);
        assert!(BackendConfig::from_nodes("/x", None, None, None).read_only);
    }
}
