//! Virtual network interfaces: the xenstore nodes of a NIC as libxl writes them
//! for a vif (tools/libs/light/libxl_nic.c `libxl__set_xenstore_nic`, plus the
//! generic entries of libxl_device.c), served by rxnetback under its own backend
//! type [`BACKEND_TYPE`].

use super::{DeviceNodes, DevicePaths, XenbusState, DOM0};
use crate::config::vif::{Mac, NicType, Rate, VifSpec, DEFAULT_MTU, MAX_MTU, MIN_MTU};

/// Frontend device class (Linux xen-netfront binds `device/vif/*`).
pub const KIND: &str = "vif";
/// rxnetback's backend type: not `vif` (the kernel's xen-netback claims that
/// whenever it is loaded) and not `qnic` (QEMU's).
pub const BACKEND_TYPE: &str = "rxvif";
/// Where libxl makes a relative `script=` absolute (`libxl__xen_script_dir_path`).
pub const XEN_SCRIPT_DIR: &str = "/etc/xen/scripts";

/// Node names of a vif backend directory that rxnetback reads.
pub mod node {
    pub const FRONTEND: &str = "frontend";
    pub const FRONTEND_ID: &str = "frontend-id";
    pub const ONLINE: &str = "online";
    pub const MAC: &str = "mac";
    pub const BRIDGE: &str = "bridge";
    pub const IP: &str = "ip";
    pub const RATE: &str = "rate";
    pub const VIFNAME: &str = "vifname";
    pub const HANDLE: &str = "handle";
    pub const TYPE: &str = "type";
    pub const SCRIPT: &str = "script";
    pub const GATEWAYDEV: &str = "gatewaydev";
    pub const MTU: &str = "mtu";
}

/// Errors of building a vif's nodes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VifError {
    #[error("the NIC has no MAC yet (generate one before writing its nodes)")]
    NoMac,
    #[error("type=ioemu NICs need a device model; rxen has none")]
    Ioemu,
    #[error("backend={0:?}: only dom0 backends are supported")]
    Backend(String),
}

/// The paths of vif `devid` of `domid`, served from dom0.
pub fn paths(domid: u32, devid: u32) -> DevicePaths {
    DevicePaths {
        kind: KIND,
        backend_type: BACKEND_TYPE.to_string(),
        frontend_domid: domid,
        backend_domid: DOM0,
        devid,
    }
}

/// The TAP device's name when `vifname=` is not given: `vif<domid>.<devid>`,
/// as libxl names netback's interface (`NETBACK_NIC_NAME`).
pub fn default_ifname(domid: u32, devid: u32) -> String {
    format!("vif{domid}.{devid}")
}

/// The lowest device id not in `used` (libxl gives a new NIC the lowest free
/// devid of the domain's vifs).
pub fn lowest_free_devid(used: &[u32]) -> u32 {
    (0u32..).find(|d| !used.contains(d)).unwrap_or(u32::MAX)
}

/// The nodes of NIC `devid` described by `spec`, attached to domain `domid`.
pub fn nodes(domid: u32, devid: u32, spec: &VifSpec) -> Result<DeviceNodes, VifError> {
    let mac = spec.mac.ok_or(VifError::NoMac)?;
    if spec.nic_type != NicType::Vif {
        return Err(VifError::Ioemu);
    }
    if let Some(b) = &spec.backend {
        if b != "0" && b != "Domain-0" {
            return Err(VifError::Backend(b.clone()));
        }
    }
    let paths = paths(domid, devid);
    let initialising = XenbusState::Initialising.as_value();
    let frontend = vec![
        ("backend", paths.backend()),
        ("backend-id", paths.backend_domid.to_string()),
        ("state", initialising.clone()),
        (node::HANDLE, devid.to_string()),
        (node::MAC, mac.to_string()),
        // Linux netfront reads it (backend trusted); dom0 backends are.
        ("trusted", "1".to_string()),
    ];
    // As libxl: the MTU for the frontend, always (netif.h: 1500 if absent),
    // dom0's and only readable by the guest (libxl's `ro_front`).
    let ro_frontend = vec![(node::MTU, spec.mtu.unwrap_or(DEFAULT_MTU).to_string())];
    let mut backend = vec![
        (node::FRONTEND, paths.frontend()),
        (node::FRONTEND_ID, domid.to_string()),
        (node::ONLINE, "1".to_string()),
        ("state", initialising),
        (node::SCRIPT, script_path(&spec.script)),
    ];
    if let Some(n) = &spec.vifname {
        backend.push((node::VIFNAME, n.clone()));
    }
    backend.push((node::MAC, mac.to_string()));
    if let Some(ip) = &spec.ip {
        backend.push((node::IP, ip.clone()));
    }
    if let Some(g) = &spec.gatewaydev {
        backend.push((node::GATEWAYDEV, g.clone()));
    }
    if let Some(r) = spec.rate.filter(|r| r.interval_us > 0) {
        backend.push((
            node::RATE,
            format!("{},{}", r.bytes_per_interval, r.interval_us),
        ));
    }
    // As libxl: for the backend only when not the default.
    if let Some(m) = spec.mtu.filter(|&m| m != DEFAULT_MTU) {
        backend.push((node::MTU, m.to_string()));
    }
    backend.push((node::BRIDGE, spec.bridge.clone()));
    backend.push((node::HANDLE, devid.to_string()));
    backend.push((node::TYPE, "vif".to_string()));
    Ok(DeviceNodes {
        paths,
        frontend,
        ro_frontend,
        backend,
    })
}

fn script_path(script: &str) -> String {
    if script.starts_with('/') {
        script.to_string()
    } else {
        format!("{XEN_SCRIPT_DIR}/{script}")
    }
}

/// What rxnetback learns from a vif's backend directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub mac: Mac,
    /// Empty: no bridge.
    pub bridge: String,
    /// The TAP device's name.
    pub ifname: String,
    pub rate: Option<Rate>,
    /// The `mtu` node ([`BackendConfig::with_mtu`]); None: the bridge's, as
    /// vif-bridge's `set_mtu` does.
    pub mtu: Option<u32>,
}

/// Why a backend directory cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendConfigError {
    #[error("mac {0:?} is not a MAC address")]
    BadMac(String),
    #[error("rate {0:?} is not BYTES,MICROSECONDS")]
    BadRate(String),
    #[error("vifname {0:?} is not a valid interface name")]
    BadIfname(String),
    #[error("mtu {0:?} is not a number {MIN_MTU}..={MAX_MTU}")]
    BadMtu(String),
}

/// Linux's interface name limit (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;

impl BackendConfig {
    /// Interprets the values of `mac`, `bridge`, `vifname` and `rate` (absent
    /// ones as `None`) of NIC `devid` of `domid`.
    pub fn from_nodes(
        domid: u32,
        devid: u32,
        mac: &str,
        bridge: Option<&str>,
        vifname: Option<&str>,
        rate: Option<&str>,
    ) -> Result<Self, BackendConfigError> {
        let mac = parse_mac(mac).ok_or_else(|| BackendConfigError::BadMac(mac.to_string()))?;
        let ifname = match vifname {
            Some(n) => {
                let ok = !n.is_empty()
                    && n.len() <= MAX_IFNAME_LEN
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(BackendConfigError::BadIfname(n.to_string()));
                }
                n.to_string()
            }
            None => default_ifname(domid, devid),
        };
        let rate = rate
            .map(|r| {
                let bad = || BackendConfigError::BadRate(r.to_string());
                let (b, i) = r.split_once(',').ok_or_else(bad)?;
                Ok(Rate {
                    bytes_per_interval: b.trim().parse().map_err(|_| bad())?,
                    interval_us: i.trim().parse().map_err(|_| bad())?,
                })
            })
            .transpose()?;
        Ok(BackendConfig {
            mac,
            bridge: bridge.unwrap_or("").to_string(),
            ifname,
            rate,
            mtu: None,
        })
    }

    /// Takes the `mtu` node's value (absent: None).
    pub fn with_mtu(mut self, mtu: Option<&str>) -> Result<Self, BackendConfigError> {
        self.mtu = mtu
            .map(|m| {
                m.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|v| (MIN_MTU..=MAX_MTU).contains(v))
                    .ok_or_else(|| BackendConfigError::BadMtu(m.to_string()))
            })
            .transpose()?;
        Ok(self)
    }
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vif::parse_vif_spec;

    fn value<'a>(list: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        list.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_nic_gets_libxl_nodes() {
        let s = parse_vif_spec("mac=00:16:3e:01:02:03, bridge=xenbr1, rate=10Mb/s").unwrap();
        let n = nodes(7, 1, &s).unwrap();
        assert_eq!(n.paths.frontend(), "/local/domain/7/device/vif/1");
        assert_eq!(n.paths.backend(), "/local/domain/0/backend/rxvif/7/1");
        let fe = |k| value(&n.frontend, k);
        let be = |k| value(&n.backend, k);
        assert_eq!(fe("backend"), Some(n.paths.backend().as_str()));
        assert_eq!(fe("backend-id"), Some("0"));
        assert_eq!(fe("state"), Some("1"));
        assert_eq!(fe("handle"), Some("1"));
        assert_eq!(fe("mac"), Some("00:16:3e:01:02:03"));
        assert_eq!(be("frontend"), Some(n.paths.frontend().as_str()));
        assert_eq!(be("frontend-id"), Some("7"));
        assert_eq!(be("online"), Some("1"));
        assert_eq!(be("state"), Some("1"));
        assert_eq!(be("mac"), Some("00:16:3e:01:02:03"));
        assert_eq!(be("bridge"), Some("xenbr1"));
        assert_eq!(be("handle"), Some("1"));
        assert_eq!(be("type"), Some("vif"));
        assert_eq!(be("script"), Some("/etc/xen/scripts/vif-bridge"));
        // 10 Mbit/s = 1.25 MB/s, 62500 bytes per default 50 ms interval.
        assert_eq!(be("rate"), Some("62500,50000"));
        assert_eq!(be("vifname"), None);
        assert_eq!(be("ip"), None);
        // The default MTU: the frontend's node only, dom0's (as libxl).
        assert_eq!(value(&n.ro_frontend, "mtu"), Some("1500"));
        assert_eq!(fe("mtu"), None);
        assert_eq!(be("mtu"), None);
        let fp: Vec<String> = n.frontend_perms().iter().map(|p| p.to_string()).collect();
        let bp: Vec<String> = n.backend_perms().iter().map(|p| p.to_string()).collect();
        assert_eq!(fp, ["n7", "r0"]);
        assert_eq!(bp, ["n0", "r7"]);
    }

    #[test]
    fn the_frontend_mtu_is_written_read_only_for_the_guest() {
        use crate::device::testing::Recorder;
        use xenstore::wire::MsgType;
        let s = parse_vif_spec("mac=00:16:3e:01:02:03,mtu=9000").unwrap();
        let mut xs = Recorder::default();
        nodes(7, 0, &s).unwrap().write(&mut xs).expect("write");
        let perms_of = |path: &str| -> Vec<Vec<String>> {
            xs.0.iter()
                .filter(|(k, p)| *k == MsgType::SetPerms && p[0] == path)
                .map(|(_, p)| p[1..].iter().filter(|x| !x.is_empty()).cloned().collect())
                .collect()
        };
        // As libxl's ro_front: written, then made dom0's, the guest reading.
        let mtu = "/local/domain/7/device/vif/0/mtu";
        let i =
            xs.0.iter()
                .position(|(k, p)| *k == MsgType::Write && p[0] == mtu)
                .expect("mtu written");
        assert_eq!(xs.0[i].1[1], "9000");
        assert_eq!(xs.0[i + 1].0, MsgType::SetPerms);
        assert_eq!(perms_of(mtu), [["n0", "r7"]]);
        // The rest of the frontend directory is the guest's (it writes its
        // rings, channels and state there); no other entry gets perms of its own.
        assert_eq!(perms_of("/local/domain/7/device/vif/0"), [["n7", "r0"]]);
        for entry in ["mac", "handle", "state", "trusted", "backend"] {
            let p = format!("/local/domain/7/device/vif/0/{entry}");
            assert!(perms_of(&p).is_empty(), "{p} got permissions of its own");
        }
        assert_eq!(
            perms_of("/local/domain/0/backend/rxvif/7/0"),
            [["n0", "r7"]]
        );
    }

    #[test]
    fn new_nics_take_the_lowest_free_devid() {
        assert_eq!(lowest_free_devid(&[]), 0);
        assert_eq!(lowest_free_devid(&[0, 1, 2]), 3);
        assert_eq!(lowest_free_devid(&[2, 0]), 1);
        assert_eq!(lowest_free_devid(&[1]), 0);
    }

    #[test]
    fn optional_nodes_and_refusals() {
        let s = parse_vif_spec("mac=00:16:3e:0a:0b:0c,vifname=web0,ip=169.254.1.2,script=/bin/x")
            .unwrap();
        let n = nodes(2, 0, &s).unwrap();
        assert_eq!(value(&n.backend, "vifname"), Some("web0"));
        assert_eq!(value(&n.backend, "ip"), Some("169.254.1.2"));
        assert_eq!(value(&n.backend, "script"), Some("/bin/x"));
        assert_eq!(value(&n.backend, "bridge"), Some("xenbr0"));
        assert_eq!(
            nodes(2, 0, &parse_vif_spec("bridge=b").unwrap()),
            Err(VifError::NoMac)
        );
        let io = parse_vif_spec("mac=00:16:3e:0a:0b:0c,type=ioemu").unwrap();
        assert_eq!(nodes(2, 0, &io), Err(VifError::Ioemu));
        let be = parse_vif_spec("mac=00:16:3e:0a:0b:0c,backend=drv").unwrap();
        assert_eq!(nodes(2, 0, &be), Err(VifError::Backend("drv".into())));
    }

    #[test]
    fn backend_config_round_trips_the_nodes() {
        let s = parse_vif_spec("mac=00:16:3e:01:02:03,bridge=br9,rate=1MB/s@20ms").unwrap();
        let n = nodes(5, 3, &s).unwrap();
        let be = |k| value(&n.backend, k);
        let c = BackendConfig::from_nodes(
            5,
            3,
            be("mac").unwrap(),
            be("bridge"),
            be("vifname"),
            be("rate"),
        )
        .unwrap();
        assert_eq!(c.mac, s.mac.unwrap());
        assert_eq!(c.bridge, "br9");
        assert_eq!(c.ifname, "vif5.3");
        assert_eq!(c.rate, s.rate);
    }

    #[test]
    fn mtu_nodes_and_config() {
        let s = parse_vif_spec("mac=00:16:3e:01:02:03,mtu=9000").unwrap();
        let n = nodes(5, 0, &s).unwrap();
        assert_eq!(value(&n.ro_frontend, "mtu"), Some("9000"));
        assert_eq!(value(&n.backend, "mtu"), Some("9000"));
        let c = BackendConfig::from_nodes(5, 0, "00:16:3e:01:02:03", None, None, None).unwrap();
        assert_eq!(c.mtu, None);
        assert_eq!(c.clone().with_mtu(Some("9000")).unwrap().mtu, Some(9000));
        assert_eq!(c.clone().with_mtu(None).unwrap().mtu, None);
        for bad in ["", "x", "67", "70000", "-5"] {
            assert_eq!(
                c.clone().with_mtu(Some(bad)),
                Err(BackendConfigError::BadMtu(bad.to_string()))
            );
        }
    }

    #[test]
    fn backend_config_refuses_bad_values() {
        let f = |mac, name, rate| BackendConfig::from_nodes(1, 0, mac, None, name, rate);
        let good = "00:16:3e:01:02:03";
        assert!(f(good, None, None).is_ok());
        for bad in [
            "00:16:3e:01:02",
            "00:16:3e:01:02:03:04",
            "0:16:3e:01:02:03",
            "zz:16:3e:01:02:03",
        ] {
            assert_eq!(
                f(bad, None, None),
                Err(BackendConfigError::BadMac(bad.into()))
            );
        }
        for bad in ["", "a/b", "sixteen-chars-xx", "e\u{301}"] {
            assert_eq!(
                f(good, Some(bad), None),
                Err(BackendConfigError::BadIfname(bad.into()))
            );
        }
        for bad in ["100", "1,x", "-1,5"] {
            assert_eq!(
                f(good, None, Some(bad)),
                Err(BackendConfigError::BadRate(bad.into()))
            );
        }
    }
}
