//! xl's disk specification syntax (xl-disk-configuration(5), libxlu_disk_l.l in Xen 4.17).
//!
//! A DISKSPEC is comma-separated `key=value` parameters, flags and positional
//! parameters `target, format, vdev, access`; `target=` eats the rest of the string.
//! The deprecated `prefix:` forms (`phy:`, `file:`, `raw:`, `tap:aio:` ...) are
//! accepted; after such a prefix the positional parameters are `target, vdev, access`.

use std::fmt;

/// Image format (`format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow,
    Qcow2,
    Vhd,
    Qed,
    /// An empty (removable) drive.
    Empty,
}

/// Backend implementation (`backendtype=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBackendType {
    Phy,
    Tap,
    Qdisk,
    Standalone,
}

/// Protocol the guest sees (`specification=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSpecification {
    Xen,
    Virtio,
}

/// One parsed disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Block device or file (None: an empty cdrom drive).
    pub target: Option<String>,
    pub format: DiskFormat,
    /// Guest device name (xvda, hda, sdb ...).
    pub vdev: String,
    pub readwrite: bool,
    pub cdrom: bool,
    pub backend: Option<String>,
    pub backendtype: Option<DiskBackendType>,
    pub specification: Option<DiskSpecification>,
    pub script: Option<String>,
    pub direct_io_safe: bool,
    pub discard: Option<bool>,
    pub trusted: Option<bool>,
    /// `sector-size=512|4096`: the logical sector size the guest sees. An rxl
    /// extension (xl has no such key): rxblkback then serves a file with 4 KiB
    /// sectors; without it a block device's own sector size is used.
    pub sector_size: Option<u32>,
    /// The target carried a deprecated prefix such as `phy:` or `file:`.
    pub deprecated_prefix: Option<String>,
}

/// What is wrong with a disk spec; the message follows xl's wording.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config parsing error in disk specification: {message}{near} in `{spec}'")]
pub struct DiskSpecError {
    pub message: String,
    near: NearText,
    pub spec: String,
}

#[derive(Debug, PartialEq, Eq)]
struct NearText(Option<String>);

impl fmt::Display for NearText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(n) => write!(f, ": near `{n}'"),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct Builder {
    target: Option<String>,
    format: Option<DiskFormat>,
    vdev: Option<String>,
    readwrite: Option<bool>,
    cdrom: bool,
    backend: Option<String>,
    backendtype: Option<DiskBackendType>,
    specification: Option<DiskSpecification>,
    script: Option<String>,
    direct_io_safe: bool,
    discard: Option<bool>,
    trusted: Option<bool>,
    sector_size: Option<u32>,
    deprecated_prefix: Option<String>,
    access_set: bool,
}

/// Prefixes xl still accepts at the start of a parameter (`phy:/dev/sdb`).
const FORMAT_PREFIXES: &[(&str, DiskFormat)] = &[
    ("raw", DiskFormat::Raw),
    ("qcow", DiskFormat::Qcow),
    ("qcow2", DiskFormat::Qcow2),
    ("vhd", DiskFormat::Vhd),
];
const SCRIPT_PREFIXES: &[&str] = &["iscsi", "nbd", "enbd", "drbd"];
const IGNORED_PREFIXES: &[&str] = &["tapdisk", "tap", "tap2", "aio", "ioemu", "file", "phy"];

/// Parses one DISKSPEC (as one string of a `disk = [ ... ]` list).
pub fn parse_disk_spec(spec: &str) -> Result<DiskSpec, DiskSpecError> {
    let err = |message: &str, near: Option<&str>| DiskSpecError {
        message: message.to_string(),
        near: NearText(near.map(str::to_string)),
        spec: spec.to_string(),
    };
    let mut b = Builder::default();
    let mut rest = spec;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            break;
        }
        // `target=` consumes the whole remainder, commas and trailing blanks included.
        if let Some(t) = rest.strip_prefix("target=") {
            save(&mut b.target, t, "target respecified").map_err(|m| err(m, Some(t)))?;
            break;
        }
        // Deprecated prefixes take precedence over everything else.
        if let Some((prefix, after)) = deprecated_prefix(rest) {
            b.deprecated_prefix = Some(prefix.to_string());
            if let Some(&(_, f)) = FORMAT_PREFIXES.iter().find(|(p, _)| *p == prefix) {
                set_format(&mut b, f).map_err(|m| err(m, Some(prefix)))?;
            } else if SCRIPT_PREFIXES.contains(&prefix) {
                save(
                    &mut b.script,
                    &format!("block-{prefix}"),
                    "script respecified",
                )
                .map_err(|m| err(m, Some(prefix)))?;
            } else if !IGNORED_PREFIXES.contains(&prefix) {
                return Err(err("unknown deprecated disk prefix", Some(prefix)));
            }
            rest = after;
            continue;
        }
        let (token, after) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = after;
        apply_token(&mut b, token).map_err(|(m, near)| err(&m, near.as_deref().or(Some(token))))?;
    }

    let cdrom = b.cdrom;
    let mut format = b.format.unwrap_or(DiskFormat::Raw);
    let mut readwrite = b.readwrite.unwrap_or(true);
    if cdrom {
        readwrite = false;
        if b.target.as_deref().is_none_or(str::is_empty) {
            format = DiskFormat::Empty;
        }
    }
    let Some(vdev) = b.vdev.filter(|v| !v.is_empty()) else {
        return Err(err("no vdev specified", None));
    };
    let target = b.target.filter(|t| !t.is_empty());
    if target.is_none() && !cdrom {
        return Err(err("no target specified (and device not removable)", None));
    }
    Ok(DiskSpec {
        target,
        format,
        vdev,
        readwrite,
        cdrom,
        backend: b.backend,
        backendtype: b.backendtype,
        specification: b.specification,
        script: b.script,
        direct_io_safe: b.direct_io_safe,
        discard: b.discard,
        trusted: b.trusted,
        sector_size: b.sector_size,
        deprecated_prefix: b.deprecated_prefix,
    })
}

/// `name:` at the start of `s`, where what follows the colon is empty or does not
/// start with a letter or digit (so `xvda:cdrom` is not a prefix, `phy:/dev/x` is).
fn deprecated_prefix(s: &str) -> Option<(&str, &str)> {
    let colon = s.find(':')?;
    let name = &s[..colon];
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return None;
    }
    let after = &s[colon + 1..];
    if IGNORED_PREFIXES.contains(&name)
        || SCRIPT_PREFIXES.contains(&name)
        || FORMAT_PREFIXES.iter().any(|(p, _)| *p == name)
    {
        return Some((name, after));
    }
    match after.chars().next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => None,
        _ => Some((name, after)),
    }
}

fn save(
    slot: &mut Option<String>,
    value: &str,
    respecified: &'static str,
) -> Result<(), &'static str> {
    match slot {
        Some(old) if !old.is_empty() => Err(respecified),
        _ => {
            *slot = Some(value.to_string());
            Ok(())
        }
    }
}

fn set_format(b: &mut Builder, f: DiskFormat) -> Result<(), &'static str> {
    match b.format {
        Some(old) if old != f => Err("format respecified"),
        _ => {
            b.format = Some(f);
            Ok(())
        }
    }
}

fn format_from(s: &str) -> Option<DiskFormat> {
    Some(match s {
        "" | "raw" => DiskFormat::Raw,
        "qcow" => DiskFormat::Qcow,
        "qcow2" => DiskFormat::Qcow2,
        "vhd" => DiskFormat::Vhd,
        "qed" => DiskFormat::Qed,
        "empty" => DiskFormat::Empty,
        _ => return None,
    })
}

fn access_from(s: &str) -> Option<bool> {
    match s {
        "r" | "ro" => Some(false),
        "rw" | "w" | "" => Some(true),
        _ => None,
    }
}

type TokenError = (String, Option<String>);

fn apply_token(b: &mut Builder, token: &str) -> Result<(), TokenError> {
    let e = |m: &str| (m.to_string(), None);
    match token {
        "cdrom" => {
            b.cdrom = true;
            return Ok(());
        }
        "direct-io-safe" => {
            b.direct_io_safe = true;
            return Ok(());
        }
        "discard" | "no-discard" => {
            b.discard = Some(token == "discard");
            return Ok(());
        }
        "trusted" | "untrusted" => {
            b.trusted = Some(token == "trusted");
            return Ok(());
        }
        "colo" | "no-colo" => return Err(e("COLO is not supported by rxl")),
        _ => {}
    }
    if let Some((key, value)) = token.split_once('=') {
        let v = value;
        match key {
            "format" => set_format(
                b,
                format_from(v).ok_or_else(|| e("unknown value for format"))?,
            )
            .map_err(e)?,
            "devtype" => match v {
                "cdrom" => b.cdrom = true,
                "disk" => b.cdrom = false,
                _ => return Err(e("unknown value for type")),
            },
            "access" => {
                b.readwrite = Some(access_from(v).ok_or_else(|| e("unknown value for access"))?)
            }
            "backend" => save(&mut b.backend, v, "backend respecified").map_err(e)?,
            "backendtype" => {
                let t = match v {
                    "phy" => DiskBackendType::Phy,
                    "tap" => DiskBackendType::Tap,
                    "qdisk" => DiskBackendType::Qdisk,
                    "standalone" => DiskBackendType::Standalone,
                    _ => return Err(e("unknown value for backendtype")),
                };
                if b.backendtype.is_some_and(|o| o != t) {
                    return Err(e("backend respecified"));
                }
                b.backendtype = Some(t);
            }
            "specification" => {
                let s = match v {
                    "xen" => DiskSpecification::Xen,
                    "virtio" => DiskSpecification::Virtio,
                    _ => return Err(e("unknown value for specification")),
                };
                if b.specification.is_some_and(|o| o != s) {
                    return Err(e("specification respecified"));
                }
                b.specification = Some(s);
            }
            "vdev" => save(&mut b.vdev, v, "vdev respecified").map_err(e)?,
            "sector-size" => {
                let n = match v {
                    "512" => 512,
                    "4096" => 4096,
                    _ => return Err(e("unknown value for sector-size")),
                };
                if b.sector_size.is_some_and(|o| o != n) {
                    return Err(e("sector-size respecified"));
                }
                b.sector_size = Some(n);
            }
            "script" => save(&mut b.script, v, "script respecified").map_err(e)?,
            "colo-host" | "colo-port" | "colo-export" | "active-disk" | "hidden-disk" => {
                return Err(e("COLO is not supported by rxl"))
            }
            _ => return Err(e("unknown parameter")),
        }
        return Ok(());
    }
    // A positional parameter.
    if b.target.is_none() {
        b.target = Some(token.to_string());
    } else if b.deprecated_prefix.is_none() && b.format.is_none() {
        if b.target.as_deref() == Some("") && vdev_and_devtype(b, token)? {
            b.format = Some(DiskFormat::Empty);
        } else {
            set_format(
                b,
                format_from(token).ok_or_else(|| e("unknown value for format"))?,
            )
            .map_err(e)?;
        }
    } else if b.vdev.is_none() {
        if !vdev_and_devtype(b, token)? {
            b.vdev = Some(token.to_string());
        }
    } else if !b.access_set {
        b.access_set = true;
        b.readwrite = Some(access_from(token).ok_or_else(|| e("unknown value for access"))?);
    } else {
        return Err(e("too many positional parameters"));
    }
    Ok(())
}

/// The deprecated `vdev:devtype` positional form; true when it was one.
fn vdev_and_devtype(b: &mut Builder, token: &str) -> Result<bool, TokenError> {
    let Some((vdev, devtype)) = token.rsplit_once(':') else {
        return Ok(false);
    };
    save(&mut b.vdev, vdev, "vdev respecified").map_err(|m| (m.to_string(), None))?;
    match devtype {
        "cdrom" => b.cdrom = true,
        "disk" => b.cdrom = false,
        _ => {
            return Err((
                "unknown deprecated type".to_string(),
                Some(devtype.to_string()),
            ))
        }
    }
    Ok(true)
}

/// Linux major for xvd (docs/misc/vbd-interface.txt).
pub const XVD_MAJOR: u32 = 202;
/// IDE majors: hda/hdb on 3, hdc/hdd on 22.
pub const IDE0_MAJOR: u32 = 3;
pub const IDE1_MAJOR: u32 = 22;
/// SCSI disk major.
pub const SCSI_DISK0_MAJOR: u32 = 8;
/// Flag of the extended xvd numbering for disks past 15 or partitions past 15.
pub const VBD_EXTENDED: u32 = 1 << 28;
/// Largest disk index in the extended scheme.
pub const VBD_EXTENDED_MAX_DISK: u32 = (1 << 20) - 1;

/// `<prefix><letters>[<partition>]`: letters in bijective base 26 (a = 0, z = 25,
/// aa = 26), partition without leading zeroes (libxl device_virtdisk_matches).
fn virtdisk(vdev: &str, prefix: &str, max_disk: u32, max_part: u32) -> Option<(u32, u32)> {
    let rest = vdev.strip_prefix(prefix)?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut disk: u64 = 0;
    for c in rest[..letters].bytes() {
        disk = disk * 26 + u64::from(c - b'a') + 1;
        if disk - 1 > u64::from(max_disk) {
            return None;
        }
    }
    let disk = u32::try_from(disk - 1).ok()?;
    let part = &rest[letters..];
    if part.is_empty() {
        return Some((disk, 0));
    }
    if part.starts_with('0') || !part.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let p: u32 = part.parse().ok()?;
    (p <= max_part).then_some((disk, p))
}

fn xvd_number(disk: u32, part: u32) -> u32 {
    if disk <= 15 && part <= 15 {
        (XVD_MAJOR << 8) | (disk << 4) | part
    } else {
        VBD_EXTENDED | (disk << 8) | part
    }
}

/// The xenstore device id of a vdev, as libxl__device_disk_dev_number computes it:
/// `xvdX[N]`, `dNpM` (extended scheme when needed), `hd[a-d][N]`, `sd[a-p][N]`,
/// or a plain number. None: not a vdev Xen knows.
pub fn vdev_devid(vdev: &str) -> Option<u32> {
    if let Some(rest) = vdev.strip_prefix('d') {
        if let Some((d, p)) = rest.split_once('p') {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            if digits(d) && digits(p) {
                let (disk, part): (u32, u32) = (d.parse().ok()?, p.parse().ok()?);
                return (disk <= VBD_EXTENDED_MAX_DISK && part < 256)
                    .then(|| xvd_number(disk, part));
            }
        }
    }
    if let Some((disk, part)) = virtdisk(vdev, "xvd", VBD_EXTENDED_MAX_DISK, 255) {
        return Some(xvd_number(disk, part));
    }
    if !vdev.is_empty() && vdev.bytes().all(|c| c.is_ascii_digit()) {
        return vdev
            .parse::<u32>()
            .ok()
            .filter(|&n| i32::try_from(n).is_ok());
    }
    if let Some((disk, part)) = virtdisk(vdev, "hd", 3, 63) {
        let major = if disk < 2 { IDE0_MAJOR } else { IDE1_MAJOR };
        return Some((major << 8) | ((disk & 1) << 6) | part);
    }
    if let Some((disk, part)) = virtdisk(vdev, "sd", 15, 15) {
        return Some((SCSI_DISK0_MAJOR << 8) | (disk << 4) | part);
    }
    None
}

impl DiskSpec {
    /// The device id under which the disk appears in xenstore (None: invalid vdev).
    pub fn devid(&self) -> Option<u32> {
        vdev_devid(&self.vdev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DiskSpec {
        parse_disk_spec(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_equivalent_forms_of_the_man_page_agree() {
        let forms = [
            "/dev/vg/guest-volume,,hda",
            "/dev/vg/guest-volume,raw,hda,rw",
            "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume",
            "raw:/dev/vg/guest-volume,hda,w",
        ];
        let first = p(forms[0]);
        assert_eq!(first.target.as_deref(), Some("/dev/vg/guest-volume"));
        assert_eq!(first.vdev, "hda");
        assert_eq!(first.format, DiskFormat::Raw);
        assert!(first.readwrite);
        for f in &forms[1..] {
            let d = p(f);
            assert_eq!(
                (&d.target, &d.vdev, d.format, d.readwrite, d.cdrom),
                (
                    &first.target,
                    &first.vdev,
                    first.format,
                    first.readwrite,
                    first.cdrom
                ),
                "{f}"
            );
        }
        let cd = [
            "/root/image.iso,,hdc,cdrom",
            "/root/image.iso,,hdc,,cdrom",
            "/root/image.iso,raw,hdc,devtype=cdrom",
            "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso",
            "raw:/root/image.iso,hdc:cdrom,ro",
        ];
        for f in cd {
            let d = p(f);
            assert_eq!(d.target.as_deref(), Some("/root/image.iso"), "{f}");
            assert_eq!(d.vdev, "hdc", "{f}");
            assert!(d.cdrom && !d.readwrite, "{f}");
        }
    }

    #[test]
    fn phy_and_file_prefixes_shift_the_positionals() {
        let d = p("phy:/dev/loop0,xvdb,r");
        assert_eq!(d.target.as_deref(), Some("/dev/loop0"));
        assert_eq!(d.vdev, "xvdb");
        assert!(!d.readwrite);
        assert_eq!(d.deprecated_prefix.as_deref(), Some("phy"));
        let d = p("file:/srv/d.img,xvda,w");
        assert_eq!(d.vdev, "xvda");
        assert!(d.readwrite);
        let d = p("tap:aio:/srv/d.img,xvda,w");
        assert_eq!(d.target.as_deref(), Some("/srv/d.img"));
        let d = p("nbd:host:1234,xvda,w");
        assert_eq!(d.script.as_deref(), Some("block-nbd"));
    }

    #[test]
    fn target_eats_commas_and_keys_parse() {
        let d = p("vdev=xvdc, backendtype=qdisk, script=block-x, discard, target=/a,b c ");
        assert_eq!(d.target.as_deref(), Some("/a,b c "));
        assert_eq!(d.backendtype, Some(DiskBackendType::Qdisk));
        assert_eq!(d.script.as_deref(), Some("block-x"));
        assert_eq!(d.discard, Some(true));
    }

    #[test]
    fn empty_cdrom_is_allowed_other_missing_targets_are_not() {
        let d = p(",,hdc,cdrom");
        assert!(d.cdrom);
        assert_eq!(d.target, None);
        assert_eq!(d.format, DiskFormat::Empty);
        let e = parse_disk_spec(",,xvda").unwrap_err();
        assert!(e.message.contains("no target"), "{e}");
        let e = parse_disk_spec("/a.img").unwrap_err();
        assert!(e.message.contains("no vdev"), "{e}");
    }

    #[test]
    fn vdevs_number_like_libxl() {
        let cases = [
            ("xvda", Some(51712)),
            ("xvdb", Some(51728)),
            ("xvda1", Some(51713)),
            ("xvdp15", Some((202 << 8) | (15 << 4) | 15)),
            ("xvdq", Some((1 << 28) | (16 << 8))),
            ("xvda16", Some((1 << 28) | 16)),
            ("xvdaa", Some((1 << 28) | (26 << 8))),
            ("d0p0", Some(51712)),
            ("d17p3", Some((1 << 28) | (17 << 8) | 3)),
            ("hda", Some(3 << 8)),
            ("hdb1", Some((3 << 8) | (1 << 6) | 1)),
            ("hdc", Some(22 << 8)),
            ("sdb2", Some((8 << 8) | (1 << 4) | 2)),
            ("51712", Some(51712)),
            ("xvda0", None),
            ("xvda01", None),
            ("xvd", None),
            ("hde", None),
            ("sdq", None),
            ("xvda256", None),
            ("vda", None),
            ("d0p256", None),
        ];
        for (vdev, want) in cases {
            assert_eq!(vdev_devid(vdev), want, "{vdev}");
        }
    }

    #[test]
    fn sector_size_is_an_rxl_extension() {
        assert_eq!(p("vdev=xvdb, target=/a").sector_size, None);
        let d = p("vdev=xvdb, sector-size=4096, target=/a");
        assert_eq!(d.sector_size, Some(4096));
        assert_eq!(d.target.as_deref(), Some("/a"));
    }

    #[test]
    fn errors_follow_xl() {
        let cases = [
            ("/a,bogus,xvda", "unknown value for format"),
            ("/a,raw,xvda,rx", "unknown value for access"),
            ("/a,raw,xvda,rw,extra", "too many positional"),
            ("vdev=xvda, frob=1, target=/a", "unknown parameter"),
            ("foo:/a,xvda", "unknown deprecated disk prefix"),
            ("vdev=xvda, vdev=xvdb, target=/a", "vdev respecified"),
            (
                "devtype=floppy, vdev=xvda, target=/a",
                "unknown value for type",
            ),
            (
                "sector-size=1024, vdev=xvda, target=/a",
                "unknown value for sector-size",
            ),
            (
                "sector-size=512, sector-size=4096, vdev=xvda, target=/a",
                "sector-size respecified",
            ),
        ];
        for (spec, want) in cases {
            let e = parse_disk_spec(spec).unwrap_err();
            assert!(e.to_string().contains(want), "{spec}: {e}");
            assert!(e.to_string().ends_with(&format!("in `{spec}'")), "{e}");
        }
    }
}
