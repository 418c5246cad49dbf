//! xl's network (vif) specification syntax (xl-network-configuration(5);
//! parse_nic_config in tools/xl/xl_parse.c and libxlu_vif.c in Xen 4.17).
//!
//! A VIFSPEC is comma-separated `key=value` settings: mac, bridge, ip, rate, vifname,
//! type, script, model, backend, gatewaydev. MACs not given are generated under Xen's
//! OUI 00:16:3e (with the top bit of the fourth byte clear, as libxl does).

use std::fmt;

/// Xen's organizationally unique identifier for generated MACs.
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];
/// xl's default bridge (libxl__device_nic_setdefault).
pub const DEFAULT_BRIDGE: &str = "xenbr0";
/// xl's default hotplug script.
pub const DEFAULT_SCRIPT: &str = "vif-bridge";
/// Default rate replenishment interval (libxlu_vif.c): 50 ms.
pub const DEFAULT_RATE_INTERVAL_US: u32 = 50_000;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Mac {
    /// A MAC under Xen's OUI from three random bytes, as libxl makes them.
    pub fn generate(random: [u8; 3]) -> Mac {
        Mac([
            XEN_OUI[0],
            XEN_OUI[1],
            XEN_OUI[2],
            random[0] & 0x7f,
            random[1],
            random[2],
        ])
    }

    /// Multicast addresses cannot name a NIC.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

/// `type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicType {
    Vif,
    VifIoemu,
}

/// `rate=`: bytes allowed per replenishment interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub bytes_per_interval: u64,
    pub interval_us: u32,
}

/// One parsed vif; `mac` is None until [`VifSpec::mac_or_generate`] fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifSpec {
    pub mac: Option<Mac>,
    pub bridge: String,
    pub ip: Option<String>,
    pub rate: Option<Rate>,
    pub vifname: Option<String>,
    pub nic_type: NicType,
    pub script: String,
    pub model: Option<String>,
    pub backend: Option<String>,
    pub gatewaydev: Option<String>,
    /// `mtu=` (newer xl): the NIC's MTU; None is libxl's default, 1500.
    pub mtu: Option<u32>,
}

/// libxl's MTU when `mtu=` is not given (`LIBXL_DEVICE_NIC_MTU_DEFAULT`).
pub const DEFAULT_MTU: u32 = 1500;
/// The smallest MTU Linux takes for an Ethernet device (IPv4's minimum, 68).
pub const MIN_MTU: u32 = 68;
/// The largest MTU of a netif NIC: a packet's size is a u16
/// (`XEN_NETIF_MAX_TX_SIZE`), less the Ethernet and VLAN headers.
pub const MAX_MTU: u32 = 65_535 - 18;

/// What is wrong with a vif spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VifSpecError {
    #[error("invalid parameter `{key}' in `{spec}': {reason}")]
    Invalid {
        key: String,
        reason: String,
        spec: String,
    },
    #[error("unknown parameter `{key}' in `{spec}'")]
    Unknown { key: String, spec: String },
}

/// Parses one VIFSPEC.
pub fn parse_vif_spec(spec: &str) -> Result<VifSpec, VifSpecError> {
    let mut v = VifSpec {
        mac: None,
        bridge: DEFAULT_BRIDGE.to_string(),
        ip: None,
        rate: None,
        vifname: None,
        nic_type: NicType::Vif,
        script: DEFAULT_SCRIPT.to_string(),
        model: None,
        backend: None,
        gatewaydev: None,
        mtu: None,
    };
    for token in spec.split(',') {
        let token = token.trim_start_matches(' ');
        if token.is_empty() {
            continue;
        }
        let invalid = |key: &str, reason: &str| VifSpecError::Invalid {
            key: key.to_string(),
            reason: reason.to_string(),
            spec: spec.to_string(),
        };
        let Some((key, value)) = token.split_once('=') else {
            return Err(VifSpecError::Unknown {
                key: token.to_string(),
                spec: spec.to_string(),
            });
        };
        match key {
            "type" => {
                v.nic_type = match value {
                    "vif" => NicType::Vif,
                    "ioemu" => NicType::VifIoemu,
                    _ => return Err(invalid(key, "must be vif or ioemu")),
                }
            }
            "mac" => {
                let mac = parse_mac(value)
                    .ok_or_else(|| invalid(key, "expected six hex octets xx:xx:xx:xx:xx:xx"))?;
                if mac.is_multicast() {
                    return Err(invalid(key, "a multicast MAC cannot name a NIC"));
                }
                v.mac = Some(mac);
            }
            "bridge" => v.bridge = value.to_string(),
            "ip" => v.ip = Some(value.to_string()),
            "script" => v.script = value.to_string(),
            "backend" => v.backend = Some(value.to_string()),
            "vifname" => v.vifname = Some(value.to_string()),
            "model" => v.model = Some(value.to_string()),
            "gatewaydev" | "netdev" => v.gatewaydev = Some(value.to_string()),
            "rate" => v.rate = Some(parse_rate(value).map_err(|r| invalid(key, &r))?),
            "mtu" => {
                let m = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (MIN_MTU..=MAX_MTU).contains(m))
                    .ok_or_else(|| {
                        invalid(key, &format!("expected a number {MIN_MTU}..={MAX_MTU}"))
                    })?;
                v.mtu = Some(m);
            }
            _ => {
                return Err(VifSpecError::Unknown {
                    key: key.to_string(),
                    spec: spec.to_string(),
                })
            }
        }
    }
    Ok(v)
}

impl VifSpec {
    /// The MAC, generating one under Xen's OUI from `random` when none was given.
    pub fn mac_or_generate(&mut self, random: [u8; 3]) -> Mac {
        *self.mac.get_or_insert_with(|| Mac::generate(random))
    }
}

/// The three random bytes of the MAC of NIC `devid` of the domain with uuid `uuid`
/// when the config gives none: a hash (FNV-1a, 32 bits) of both, so that the same
/// domain gets the same MACs again when it is restarted from its config. The uuid
/// itself is random unless the config names it.
pub fn mac_bytes_from_uuid(uuid: &[u8; 16], devid: u32) -> [u8; 3] {
    const FNV_OFFSET: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    let h = uuid
        .iter()
        .chain(devid.to_le_bytes().iter())
        .fold(FNV_OFFSET, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
        });
    let b = h.to_be_bytes();
    [b[1] ^ b[0], b[2], b[3]]
}

/// Six hex octets separated by colons (xl uses strtoul per octet).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(Mac(m))
}

/// `RATE/s[@INTERVAL]`: RATE is `N[GMK]?[Bb]`, B bytes, b bits; INTERVAL is `N[mu]?s?`
/// (s or no suffix: seconds; ms; us), default 50 ms (libxlu_vif.c).
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let (rate, interval) = match s.split_once('@') {
        Some((r, i)) => (r, Some(i)),
        None => (s, None),
    };
    if rate.is_empty() {
        return Err("no rate specified".into());
    }
    let body = rate
        .strip_suffix("/s")
        .ok_or("invalid rate (expected e.g. 10Mb/s)")?;
    let digits_end = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| "invalid rate (expected e.g. 10Mb/s)".to_string())?;
    if n == 0 || n > u64::from(u32::MAX) {
        return Err("rate overflow".into());
    }
    let (mult, bits) = match unit {
        "B" => (1, false),
        "b" => (1, true),
        "KB" => (1_000, false),
        "Kb" => (1_000, true),
        "MB" => (1_000_000, false),
        "Mb" => (1_000_000, true),
        "GB" => (1_000_000_000, false),
        "Gb" => (1_000_000_000, true),
        _ => {
            return Err(
                "invalid rate unit (B, KB, MB, GB for bytes; b, Kb, Mb, Gb for bits)".into(),
            )
        }
    };
    let mut bytes_per_sec = n * mult;
    if bits {
        bytes_per_sec /= 8;
    }
    let interval_us = match interval {
        None => DEFAULT_RATE_INTERVAL_US,
        Some(i) => parse_interval(i)?,
    };
    let bytes_per_interval = bytes_per_sec
        .checked_mul(u64::from(interval_us))
        .ok_or("rate overflow")?
        / 1_000_000;
    Ok(Rate {
        bytes_per_interval,
        interval_us,
    })
}

fn parse_interval(s: &str) -> Result<u32, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| "invalid replenishment interval".to_string())?;
    if n == 0 || n > u64::from(u32::MAX) {
        return Err("replenishment interval overflow".into());
    }
    let us = match unit {
        "" | "s" => n * 1_000_000,
        "m" | "ms" => n * 1_000,
        "u" | "us" => n,
        _ => return Err("invalid replenishment interval".into()),
    };
    u32::try_from(us).map_err(|_| "replenishment interval overflow".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_keys_with_xl_defaults() {
        let v = parse_vif_spec(
            "mac=00:16:3e:01:02:03, bridge=br0, ip=169.254.1.2, vifname=web0, model=e1000",
        )
        .expect("ok");
        assert_eq!(v.mac, Some(Mac([0, 0x16, 0x3e, 1, 2, 3])));
        assert_eq!(v.bridge, "br0");
        assert_eq!(v.ip.as_deref(), Some("169.254.1.2"));
        assert_eq!(v.vifname.as_deref(), Some("web0"));
        assert_eq!(v.script, DEFAULT_SCRIPT);
        let d = parse_vif_spec("").expect("empty spec means all defaults");
        assert_eq!(d.bridge, DEFAULT_BRIDGE);
        assert_eq!(d.nic_type, NicType::Vif);
        assert_eq!(d.mac, None);
    }

    #[test]
    fn generated_macs_are_xen_unicast() {
        let mut v = parse_vif_spec("bridge=xenbr0").expect("ok");
        let m = v.mac_or_generate([0xff, 0xab, 0xcd]);
        assert_eq!(m.to_string(), "00:16:3e:7f:ab:cd");
        assert!(!m.is_multicast());
        // A given MAC is kept.
        let mut v = parse_vif_spec("mac=00:16:3e:00:00:01").expect("ok");
        assert_eq!(
            v.mac_or_generate([1, 2, 3]).to_string(),
            "00:16:3e:00:00:01"
        );
    }

    #[test]
    fn uuid_derived_macs_are_stable_and_distinct() {
        let u1 = [7u8; 16];
        let mut u2 = u1;
        u2[15] = 8;
        let a = mac_bytes_from_uuid(&u1, 0);
        assert_eq!(a, mac_bytes_from_uuid(&u1, 0));
        assert_ne!(a, mac_bytes_from_uuid(&u1, 1));
        assert_ne!(a, mac_bytes_from_uuid(&u2, 0));
        let m = Mac::generate(a);
        assert_eq!(m.0[..3], XEN_OUI);
        assert!(!m.is_multicast());
    }

    #[test]
    fn rates_follow_libxlu() {
        assert_eq!(
            parse_rate("10Mb/s").expect("ok"),
            Rate {
                bytes_per_interval: 62_500,
                interval_us: 50_000
            }
        );
        assert_eq!(
            parse_rate("1MB/s@20ms").expect("ok"),
            Rate {
                bytes_per_interval: 20_000,
                interval_us: 20_000
            }
        );
        assert_eq!(parse_rate("100KB/s@1s").expect("ok").interval_us, 1_000_000);
        assert_eq!(
            parse_rate("8b/s@100us").expect("ok"),
            Rate {
                bytes_per_interval: 0,
                interval_us: 100
            }
        );
        for bad in [
            "",
            "10/s",
            "10Mb",
            "0Mb/s",
            "10Xb/s",
            "10Mb/s@",
            "10Mb/s@5h",
            "99999999999Mb/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "mac=00:16:3e:01:02",
            "mac=01:16:3e:01:02:03",
            "mac=zz:16:3e:01:02:03",
            "type=tap",
            "frob=1",
            "bridge",
        ] {
            assert!(parse_vif_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mtu_is_a_number_in_range() {
        assert_eq!(parse_vif_spec("mtu=9000").unwrap().mtu, Some(9000));
        assert_eq!(parse_vif_spec("bridge=br0").unwrap().mtu, None);
        for bad in ["mtu=", "mtu=x", "mtu=67", "mtu=65518", "mtu=-1"] {
            assert!(parse_vif_spec(bad).is_err(), "{bad}");
        }
    }
}
