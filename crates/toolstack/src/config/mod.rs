//! Domain configuration: the xl.cfg syntax ([`parse`]), xl's disk and vif specs
//! ([`disk`], [`vif`]), and the typed [`DomainConfig`] built from the settings and
//! then validated as a separate step ([`DomainConfig::validate`]).
//!
//! Unknown keys: xl ignores them silently; rxl accepts the file too but reports each
//! one as a warning (with its file and line), and says so for keys xl knows that rxl
//! does not implement.

pub mod channel;
pub mod cpus;
pub mod disk;
pub mod parse;
pub mod vif;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::arm::layout::{GICV2_MAX_VCPUS, GUEST_MAX_VCPUS, GUEST_RAM0_SIZE, GUEST_RAM1_SIZE};
pub use channel::{parse_channel_spec, ChannelSpec};
pub use cpus::{CpuList, VcpuAffinity};
pub use disk::{parse_disk_spec, DiskSpec};
pub use parse::{Origin, ParseError, Setting, Value};
pub use vif::{parse_vif_spec, Mac, VifSpec};

/// Default memory when neither memory nor maxmem is given (libxl: 32 MiB).
pub const DEFAULT_MEMORY_MIB: u64 = 32;
/// Source name used for `rxl create cfg key=value` overrides.
pub const COMMAND_LINE_SOURCE: &str = "<command line>";

/// Keys rxl reads.
const SUPPORTED_KEYS: &[&str] = &[
    "name",
    "uuid",
    "type",
    "builder",
    "memory",
    "maxmem",
    "vcpus",
    "cpus",
    "cpus_soft",
    "maxvcpus",
    "kernel",
    "ramdisk",
    "cmdline",
    "extra",
    "root",
    "gic_version",
    "vuart",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "on_soft_reset",
    "disk",
    "vif",
    "channel",
];

/// Keys xl knows (xl.cfg(5)) that rxl does not implement yet: accepted with a warning.
const XL_KEYS_NOT_IMPLEMENTED: &[&str] = &[
    "acpi",
    "bootloader",
    "bootloader_args",
    "cap",
    "claim_mode",
    "cpu_weight",
    "device_tree",
    "driver_domain",
    "dtdev",
    "e820_host",
    "extratime",
    "hap",
    "init_seclabel",
    "iomem",
    "irqs",
    "latency",
    "max_event_channels",
    "max_grant_frames",
    "max_grant_version",
    "max_maptrack_frames",
    "nomigrate",
    "oos",
    "p9",
    "passthrough",
    "pci",
    "period",
    "pool",
    "pvcalls",
    "seclabel",
    "slice",
    "tee",
    "vdispl",
    "virtio",
    "vkb",
    "vnuma",
    "vsnd",
    "vtpm",
    "xend_suspend_evtchn_compat",
];

/// Errors turning settings into a [`DomainConfig`]: each names the place and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] ParseError),
    #[error("{origin}: `{key}`: {reason}")]
    Value {
        origin: Origin,
        key: String,
        reason: String,
    },
    #[error("{origin}: command-line override `{arg}` is not `key=value` in xl.cfg syntax (quote strings: name=\"guest2\")")]
    Override {
        origin: Origin,
        arg: String,
        #[source]
        source: ParseError,
    },
    #[error("{0}")]
    Invalid(ValidationErrors),
    #[error("cannot generate a UUID or MAC")]
    Random(#[from] crate::rand::RandError),
}

/// Everything wrong with a config, found by [`DomainConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<Problem>);

/// One validation problem; `origin` is where the key was set (None: not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Option<Origin>,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{o}: `{}`: {}", self.key, self.reason),
            None => write!(f, "`{}`: {}", self.key, self.reason),
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid domain configuration:")?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A warning about the config (unknown or unimplemented keys, deprecated forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.origin, self.message)
    }
}

/// A domain UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID.
    pub fn generate() -> Result<Uuid, crate::rand::RandError> {
        let mut b: [u8; 16] = crate::rand::bytes()?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Uuid(b))
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (libxl_uuid_from_string).
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let hi = char::from(b[i]).to_digit(16)?;
            let lo = char::from(*b.get(i + 1)?).to_digit(16)?;
            out[n] = u8::try_from(hi * 16 + lo).ok()?;
            n += 1;
            i += 2;
        }
        (n == 16).then_some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// `gic_version`: xl spells "same as the host" `default`; rxl also accepts `native`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    Native,
    V2,
    V3,
}

/// `vuart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vuart {
    SbsaUart,
}

/// on_poweroff / on_reboot / on_crash / on_watchdog / on_soft_reset actions (xl's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownAction {
    Destroy,
    Restart,
    RenameRestart,
    Preserve,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

impl ShutdownAction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "destroy" => Self::Destroy,
            "restart" => Self::Restart,
            "rename-restart" => Self::RenameRestart,
            "preserve" => Self::Preserve,
            "coredump-destroy" => Self::CoredumpDestroy,
            "coredump-restart" => Self::CoredumpRestart,
            "soft-reset" => Self::SoftReset,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::RenameRestart => "rename-restart",
            Self::Preserve => "preserve",
            Self::CoredumpDestroy => "coredump-destroy",
            Self::CoredumpRestart => "coredump-restart",
            Self::SoftReset => "soft-reset",
        }
    }

    /// The actions rxl's domain monitor is designed to carry out (issue 5); the
    /// others are accepted for xl compatibility and reported as not implemented.
    pub fn implemented(self) -> bool {
        matches!(self, Self::Destroy | Self::Restart | Self::Preserve)
    }
}

/// A typed, not yet validated domain configuration.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    pub name: String,
    pub uuid: Uuid,
    /// The UUID was generated because the config had none.
    pub uuid_generated: bool,
    /// Guest RAM (`memory`), MiB.
    pub memory_mib: u64,
    /// Balloon ceiling (`maxmem`, default `memory`), MiB.
    pub maxmem_mib: u64,
    /// vCPUs online at boot (`vcpus`).
    pub vcpus: u32,
    /// vCPUs the domain is created with (`maxvcpus`, default `vcpus`).
    pub max_vcpus: u32,
    /// `cpus`: the physical CPUs each vCPU may run on (hard affinity).
    pub cpus: Option<VcpuAffinity>,
    /// `cpus_soft`: the physical CPUs each vCPU prefers (soft affinity).
    pub cpus_soft: Option<VcpuAffinity>,
    pub kernel: Option<PathBuf>,
    pub ramdisk: Option<PathBuf>,
    /// The kernel command line: `cmdline`, else `root=ROOT EXTRA` as xl combines them.
    pub cmdline: Option<String>,
    pub gic_version: GicVersion,
    pub vuart: Option<Vuart>,
    pub on_poweroff: ShutdownAction,
    pub on_reboot: ShutdownAction,
    pub on_crash: ShutdownAction,
    pub on_watchdog: ShutdownAction,
    pub on_soft_reset: ShutdownAction,
    pub disks: Vec<DiskSpec>,
    pub vifs: Vec<VifSpec>,
    /// `channel = [...]`: secondary PV consoles, devid 1, 2, ... in order (libxl).
    pub channels: Vec<ChannelSpec>,
    /// Unknown and unimplemented keys, xl-style warnings.
    pub warnings: Vec<Warning>,
    /// Where each key was (last) set, for messages.
    pub origins: HashMap<String, Origin>,
}

/// Reads a config file and applies `key=value` overrides (xl.cfg syntax each).
pub fn load(path: &Path, overrides: &[String]) -> Result<DomainConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_text(&text, &path.display().to_string(), overrides)
}

/// Parses config text named `source` plus overrides into a typed config.
pub fn from_text(
    text: &str,
    source: &str,
    overrides: &[String],
) -> Result<DomainConfig, ConfigError> {
    let mut settings = parse::parse(text, source)?;
    for (i, arg) in overrides.iter().enumerate() {
        let origin = Origin {
            source: COMMAND_LINE_SOURCE.to_string(),
            line: u32::try_from(i + 1).unwrap_or(u32::MAX),
        };
        let before = settings.len();
        parse::parse_into(arg, COMMAND_LINE_SOURCE, &mut settings).map_err(|source| {
            ConfigError::Override {
                origin: origin.clone(),
                arg: arg.clone(),
                source,
            }
        })?;
        for s in &mut settings[before..] {
            s.origin = origin.clone();
        }
    }
    DomainConfig::from_settings(&settings)
}

/// Typed access to settings: the last setting of a key wins, as in xl.
struct Settings<'a> {
    map: HashMap<&'a str, &'a Setting>,
}

impl<'a> Settings<'a> {
    fn new(all: &'a [Setting]) -> Self {
        let mut map = HashMap::new();
        for s in all {
            map.insert(s.key.as_str(), s);
        }
        Settings { map }
    }

    fn err(s: &Setting, reason: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            origin: s.origin.clone(),
            key: s.key.clone(),
            reason: reason.into(),
        }
    }

    fn string(&self, key: &str) -> Result<Option<(&'a str, &'a Setting)>, ConfigError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(s) => match &s.value {
                Value::Atom { text, .. } => Ok(Some((text.as_str(), s))),
                Value::List { .. } => Err(Self::err(s, "expected a single value, found a list")),
            },
        }
    }

    /// A number the way xl reads it (strtol base 0: decimal, 0x hex, leading-0 octal).
    fn number(&self, key: &str) -> Result<Option<(u64, &'a Setting)>, ConfigError> {
        let Some((text, s)) = self.string(key)? else {
            return Ok(None);
        };
        let t = text.trim();
        let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()
        } else if t.len() > 1 && t.starts_with('0') {
            u64::from_str_radix(&t[1..], 8).ok()
        } else {
            t.parse::<u64>().ok()
        };
        match parsed {
            Some(n) => Ok(Some((n, s))),
            None => Err(Self::err(s, format!("invalid number `{text}`"))),
        }
    }

    fn list_of_strings(&self, key: &str) -> Result<Vec<(&'a str, &'a Setting)>, ConfigError> {
        let Some(s) = self.map.get(key) else {
            return Ok(Vec::new());
        };
        match &s.value {
            Value::Atom { .. } => Err(Self::err(
                s,
                "expected a list [ '...', ... ], found a single value",
            )),
            Value::List { items, .. } => items
                .iter()
                .map(|v| match v {
                    Value::Atom { text, .. } => Ok((text.as_str(), *s)),
                    Value::List { line, .. } => Err(ConfigError::Value {
                        origin: Origin {
                            source: s.origin.source.clone(),
                            line: *line,
                        },
                        key: key.to_string(),
                        reason: "expected a string in the list, found a nested list".into(),
                    }),
                })
                .collect(),
        }
    }

    /// `cpus`/`cpus_soft`: one CPU list, or a list of them (one per vCPU).
    fn affinity(&self, key: &str) -> Result<Option<VcpuAffinity>, ConfigError> {
        let Some(s) = self.map.get(key) else {
            return Ok(None);
        };
        let parse = |text: &str| CpuList::parse(text).map_err(|e| Self::err(s, e.to_string()));
        match &s.value {
            Value::Atom { text, .. } => Ok(Some(VcpuAffinity::Every(parse(text)?))),
            Value::List { .. } => {
                let lists = self
                    .list_of_strings(key)?
                    .into_iter()
                    .map(|(text, _)| parse(text))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(VcpuAffinity::PerVcpu(lists)))
            }
        }
    }

    fn action(&self, key: &str, default: ShutdownAction) -> Result<ShutdownAction, ConfigError> {
        match self.string(key)? {
            None => Ok(default),
            Some((v, s)) => ShutdownAction::parse(v).ok_or_else(|| {
                Self::err(
                    s,
                    format!("unknown action \"{v}\" (destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart, soft-reset)"),
                )
            }),
        }
    }
}

impl DomainConfig {
    /// Builds the typed config from parsed settings; values are checked one by one
    /// here, relations between them by [`DomainConfig::validate`].
    pub fn from_settings(all: &[Setting]) -> Result<DomainConfig, ConfigError> {
        let st = Settings::new(all);
        let mut warnings = Vec::new();
        let mut origins = HashMap::new();
        let mut seen: Vec<&str> = Vec::new();
        for s in all {
            origins.insert(s.key.clone(), s.origin.clone());
            if seen.contains(&s.key.as_str()) {
                continue;
            }
            seen.push(s.key.as_str());
            if SUPPORTED_KEYS.contains(&s.key.as_str()) {
                continue;
            }
            let message = if XL_KEYS_NOT_IMPLEMENTED.contains(&s.key.as_str()) {
                format!(
                    "`{}` is an xl key that rxl does not implement yet; ignored",
                    s.key
                )
            } else {
                format!("unknown key `{}` ignored (xl ignores it silently)", s.key)
            };
            warnings.push(Warning {
                origin: s.origin.clone(),
                message,
            });
        }

        // type / builder: ARM guests are PVH; libxl converts PV to PVH with a warning.
        for key in ["type", "builder"] {
            if let Some((t, s)) = st.string(key)? {
                match t {
                    "pvh" => {}
                    "pv" | "generic" => warnings.push(Warning {
                        origin: s.origin.clone(),
                        message: format!(
                            "`{key} = \"{t}\"`: ARM guests are PVH; converting to PVH like libxl"
                        ),
                    }),
                    "hvm" => return Err(Settings::err(
                        s,
                        "HVM guests are x86 only; ARM guests are PVH (type = \"pvh\", the default)",
                    )),
                    _ => {
                        return Err(Settings::err(
                            s,
                            format!("invalid domain type \"{t}\" (ARM supports only \"pvh\")"),
                        ))
                    }
                }
            }
        }

        let name = match st.string("name")? {
            Some((n, _)) => n.to_string(),
            None => String::new(),
        };
        let (uuid, uuid_generated) = match st.string("uuid")? {
            Some((u, s)) => (
                Uuid::parse(u)
                    .ok_or_else(|| Settings::err(s, format!("failed to parse UUID \"{u}\"")))?,
                false,
            ),
            None => (Uuid::generate()?, true),
        };
        let memory = st.number("memory")?.map(|(n, _)| n);
        let maxmem = st.number("maxmem")?.map(|(n, _)| n);
        let memory_mib = memory.or(maxmem).unwrap_or(DEFAULT_MEMORY_MIB);
        let maxmem_mib = maxmem.unwrap_or(memory_mib);
        let to_u32 = |(n, s): (u64, &Setting)| {
            u32::try_from(n).map_err(|_| Settings::err(s, "number too large"))
        };
        let vcpus = st.number("vcpus")?.map(to_u32).transpose()?.unwrap_or(1);
        let max_vcpus = match st.number("maxvcpus")? {
            Some(v) => to_u32(v)?,
            None => vcpus,
        };
        let cpus = st.affinity("cpus")?;
        let cpus_soft = st.affinity("cpus_soft")?;
        for (key, a) in [("cpus", &cpus), ("cpus_soft", &cpus_soft)] {
            if let (Some(VcpuAffinity::PerVcpu(lists)), Some(s)) = (a, st.map.get(key)) {
                if lists.len() > max_vcpus as usize {
                    warnings.push(Warning {
                        origin: s.origin.clone(),
                        message: format!(
                            "`{key}` lists {} CPU sets for {max_vcpus} vCPUs; the extra ones are ignored",
                            lists.len()
                        ),
                    });
                }
            }
        }
        let kernel = st.string("kernel")?.map(|(k, _)| PathBuf::from(k));
        let ramdisk = st.string("ramdisk")?.map(|(k, _)| PathBuf::from(k));

        let cmdline_s = st.string("cmdline")?;
        let root = st.string("root")?.map(|(r, _)| r);
        let extra = st.string("extra")?.map(|(e, _)| e);
        let cmdline = match (cmdline_s, root, extra) {
            (Some((c, s)), r, e) => {
                if r.is_some() || e.is_some() {
                    warnings.push(Warning {
                        origin: s.origin.clone(),
                        message: "ignoring root= and extra= in favour of cmdline=".into(),
                    });
                }
                Some(c.to_string())
            }
            (None, Some(r), Some(e)) => Some(format!("root={r} {e}")),
            (None, Some(r), None) => Some(format!("root={r}")),
            (None, None, Some(e)) => Some(e.to_string()),
            (None, None, None) => None,
        };

        let gic_version = match st.string("gic_version")? {
            None => GicVersion::Native,
            Some((g, s)) => match g.to_ascii_lowercase().as_str() {
                "default" | "native" => GicVersion::Native,
                "v2" => GicVersion::V2,
                "v3" => GicVersion::V3,
                _ => {
                    return Err(Settings::err(
                        s,
                        format!("unknown gic_version \"{g}\" (v2, v3, default or native)"),
                    ))
                }
            },
        };
        let vuart = match st.string("vuart")? {
            None => None,
            Some(("sbsa_uart", _)) => Some(Vuart::SbsaUart),
            Some((v, s)) => {
                return Err(Settings::err(
                    s,
                    format!("invalid value \"{v}\" (the only vuart is \"sbsa_uart\")"),
                ))
            }
        };

        let on_poweroff = st.action("on_poweroff", ShutdownAction::Destroy)?;
        let on_reboot = st.action("on_reboot", ShutdownAction::Restart)?;
        let on_crash = st.action("on_crash", ShutdownAction::Destroy)?;
        let on_watchdog = st.action("on_watchdog", ShutdownAction::Destroy)?;
        let on_soft_reset = st.action("on_soft_reset", ShutdownAction::SoftReset)?;

        let mut disks = Vec::new();
        for (spec, s) in st.list_of_strings("disk")? {
            disks.push(parse_disk_spec(spec).map_err(|e| Settings::err(s, e.to_string()))?);
        }
        let mut vifs = Vec::new();
        for (devid, (spec, s)) in (0u32..).zip(st.list_of_strings("vif")?) {
            let mut v = parse_vif_spec(spec).map_err(|e| Settings::err(s, e.to_string()))?;
            // Derived from the uuid, so that a restart (which re-reads the config
            // with the uuid pinned) keeps the NICs' MACs, as xl keeps them.
            v.mac_or_generate(crate::config::vif::mac_bytes_from_uuid(&uuid.0, devid));
            if let Some(m) = &v.model {
                warnings.push(Warning {
                    origin: s.origin.clone(),
                    message: format!(
                        "vif {devid}: model={m} ignored (ARM guests get PV NICs only)"
                    ),
                });
            }
            vifs.push(v);
        }
        let mut channels = Vec::new();
        for (spec, s) in st.list_of_strings("channel")? {
            let c = parse_channel_spec(spec).map_err(|e| Settings::err(s, e.to_string()))?;
            for k in &c.ignored {
                warnings.push(Warning {
                    origin: s.origin.clone(),
                    message: format!("unknown channel parameter '{k}', ignoring"),
                });
            }
            channels.push(c);
        }

        Ok(DomainConfig {
            name,
            uuid,
            uuid_generated,
            memory_mib,
            maxmem_mib,
            vcpus,
            max_vcpus,
            cpus,
            cpus_soft,
            kernel,
            ramdisk,
            cmdline,
            gic_version,
            vuart,
            on_poweroff,
            on_reboot,
            on_crash,
            on_watchdog,
            on_soft_reset,
            disks,
            vifs,
            channels,
            warnings,
            origins,
        })
    }

    fn problem(&self, key: &str, reason: impl Into<String>) -> Problem {
        Problem {
            origin: self.origins.get(key).cloned(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks the config as a whole before anything is created. `host_gic` is the
    /// GIC the host has (what `gic_version = "default"` resolves to), when known.
    /// Returns the warnings for things accepted but not carried out (shutdown
    /// actions rxl does not implement).
    pub fn validate(&self, host_gic: Option<GicVersion>) -> Result<Vec<Warning>, ConfigError> {
        let mut p = Vec::new();
        if self.name.is_empty() {
            p.push(self.problem("name", "domain name must be specified"));
        } else if self.name.contains('/') || self.name.chars().any(char::is_control) {
            p.push(self.problem("name", "must not contain `/` or control characters"));
        } else if self.name.bytes().all(|b| b.is_ascii_digit()) {
            p.push(self.problem(
                "name",
                "must not be all digits (it would read as a domain id)",
            ));
        }
        if self.vcpus == 0 {
            p.push(self.problem("vcpus", "must be at least 1"));
        }
        if self.max_vcpus < self.vcpus {
            p.push(self.problem(
                "maxvcpus",
                format!("maxvcpus ({}) < vcpus ({})", self.max_vcpus, self.vcpus),
            ));
        }
        if self.max_vcpus > GUEST_MAX_VCPUS {
            p.push(self.problem(
                if self.origins.contains_key("maxvcpus") {
                    "maxvcpus"
                } else {
                    "vcpus"
                },
                format!(
                    "{} vCPUs: an ARM guest has at most {GUEST_MAX_VCPUS}",
                    self.max_vcpus
                ),
            ));
        }
        let gic = match self.gic_version {
            GicVersion::Native => host_gic,
            g => Some(g),
        };
        let most_vcpus = self.max_vcpus.max(self.vcpus);
        if gic == Some(GicVersion::V2) && most_vcpus > GICV2_MAX_VCPUS {
            let how = if self.gic_version == GicVersion::Native {
                " (the host's GIC, gic_version = \"default\")"
            } else {
                ""
            };
            p.push(self.problem(
                "gic_version",
                format!("GICv2{how} supports at most {GICV2_MAX_VCPUS} vCPUs, the config asks for {most_vcpus}; use gic_version = \"v3\""),
            ));
        }
        let ram_max_mib = (GUEST_RAM0_SIZE + GUEST_RAM1_SIZE) >> 20;
        if self.memory_mib == 0 {
            p.push(self.problem("memory", "must be at least 1 MiB"));
        } else if self.memory_mib > ram_max_mib {
            p.push(self.problem(
                "memory",
                format!(
                    "{} MiB is more than the guest's two RAM banks hold ({ram_max_mib} MiB)",
                    self.memory_mib
                ),
            ));
        }
        if self.maxmem_mib < self.memory_mib {
            p.push(self.problem(
                "maxmem",
                format!(
                    "maxmem ({} MiB) < memory ({} MiB)",
                    self.maxmem_mib, self.memory_mib
                ),
            ));
        }
        if self.kernel.is_none() {
            p.push(self.problem("kernel", "no kernel given (kernel = \"/path/to/Image\")"));
        }
        let mut devids: Vec<(u32, &str)> = Vec::new();
        for d in &self.disks {
            let Some(id) = d.devid() else {
                p.push(self.problem(
                    "disk",
                    format!(
                        "vdev {} is not a valid virtual disk name (xvda, xvdb1, hdc, sda, d0p1)",
                        d.vdev
                    ),
                ));
                continue;
            };
            if let Some((_, other)) = devids.iter().find(|(i, _)| *i == id) {
                let why = if *other == d.vdev {
                    format!("vdev {} is used twice", d.vdev)
                } else {
                    format!("vdev {} is the same device as {other}", d.vdev)
                };
                p.push(self.problem("disk", why));
            }
            devids.push((id, &d.vdev));
        }
        let mut macs: Vec<Mac> = Vec::new();
        for v in &self.vifs {
            if let Some(m) = v.mac {
                if macs.contains(&m) {
                    p.push(self.problem("vif", format!("MAC {m} is used twice")));
                }
                macs.push(m);
            }
        }
        for c in &self.channels {
            if let channel::Connection::Socket { .. } = c.connection {
                p.push(self.problem(
                    "channel",
                    format!("channel {}: connection=socket needs a device model (QEMU); rxconsoled serves connection=pty channels", c.name),
                ));
            }
            if let Some(b) = c
                .backend
                .as_deref()
                .filter(|b| *b != "0" && *b != "Domain-0")
            {
                p.push(self.problem(
                    "channel",
                    format!(
                        "channel {}: backend={b}: only dom0 backends are supported",
                        c.name
                    ),
                ));
            }
        }
        if !p.is_empty() {
            return Err(ConfigError::Invalid(ValidationErrors(p)));
        }
        let mut warnings = Vec::new();
        for (key, a) in [
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
            ("on_watchdog", self.on_watchdog),
        ] {
            if !a.implemented() {
                if let Some(origin) = self.origins.get(key) {
                    warnings.push(Warning {
                        origin: origin.clone(),
                        message: format!("{key} = \"{}\" is accepted but not implemented by rxl (it implements destroy, restart and preserve)", a.name()),
                    });
                }
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests;
