//! DomainConfig on good and broken files, overrides, and a bounded mutation test
//! of the whole parse + build path (the in-tree stand-in for a fuzz target).

use super::*;

const GOOD: &str = r#"
# An ARM guest
name    = "guest"
uuid    = "6f1d8a30-7e2b-4b39-9a51-0f2c3d4e5f60"
kernel  = "/guest/Image"
ramdisk = "/guest/guest.cpio.gz"
memory  = 256
maxmem  = 512
vcpus   = 2
maxvcpus = 4
root    = "/dev/xvda1"
extra   = "console=hvc0 rdinit=/init"
gic_version = "v3"
vuart   = "sbsa_uart"
on_poweroff = "destroy"
on_reboot   = "restart"
on_crash    = "preserve"
disk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/guest.img',
         'phy:/dev/loop1,xvdb,r' ]
vif  = [ 'mac=00:16:3e:11:22:33, bridge=xenbr0', 'bridge=br1' ]
"#;

fn good() -> DomainConfig {
    from_text(GOOD, "guest.cfg", &[]).expect("good config")
}

#[test]
fn a_full_config_is_typed() {
    let c = good();
    assert_eq!(c.name, "guest");
    assert_eq!(c.uuid.to_string(), "6f1d8a30-7e2b-4b39-9a51-0f2c3d4e5f60");
    assert!(!c.uuid_generated);
    assert_eq!(
        (c.memory_mib, c.maxmem_mib, c.vcpus, c.max_vcpus),
        (256, 512, 2, 4)
    );
    assert_eq!(c.kernel.as_deref(), Some(Path::new("/guest/Image")));
    assert_eq!(
        c.cmdline.as_deref(),
        Some("root=/dev/xvda1 console=hvc0 rdinit=/init")
    );
    assert_eq!(c.gic_version, GicVersion::V3);
    assert_eq!(c.vuart, Some(Vuart::SbsaUart));
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (
            ShutdownAction::Destroy,
            ShutdownAction::Restart,
            ShutdownAction::Preserve
        )
    );
    assert_eq!(c.disks.len(), 2);
    assert_eq!(c.disks[1].vdev, "xvdb");
    assert!(!c.disks[1].readwrite);
    assert_eq!(
        c.vifs[0].mac.map(|m| m.to_string()).as_deref(),
        Some("00:16:3e:11:22:33")
    );
    let generated = c.vifs[1].mac.expect("generated MAC");
    assert_eq!(&generated.0[..3], &vif::XEN_OUI);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.validate(None).expect("valid").is_empty());
}

#[test]
fn generated_macs_follow_the_uuid_so_a_restart_keeps_them() {
    let text = "name='g'\nvif = [ 'bridge=a', 'bridge=b', 'model=e1000' ]\n";
    let pinned = ["uuid=\"6a2a3c4e-1111-4222-8333-944455556666\"".to_string()];
    let a = from_text(text, "g.cfg", &pinned).expect("config");
    let b = from_text(text, "g.cfg", &pinned).expect("config");
    let macs = |c: &DomainConfig| c.vifs.iter().map(|v| v.mac).collect::<Vec<_>>();
    assert_eq!(macs(&a), macs(&b));
    assert_ne!(a.vifs[0].mac, a.vifs[1].mac);
    // Without a uuid, each load draws a new one, and new MACs with it.
    let c = from_text(text, "g.cfg", &[]).expect("config");
    let d = from_text(text, "g.cfg", &[]).expect("config");
    assert_ne!(macs(&c), macs(&d));
    // model= is ignored with a warning naming the NIC.
    assert!(
        a.warnings
            .iter()
            .any(|w| w.to_string().contains("vif 2: model=e1000 ignored")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn defaults_follow_xl() {
    let c = from_text("name='g'\nkernel='/k'\n", "g.cfg", &[]).expect("ok");
    assert_eq!(
        (c.memory_mib, c.maxmem_mib, c.vcpus, c.max_vcpus),
        (DEFAULT_MEMORY_MIB, DEFAULT_MEMORY_MIB, 1, 1)
    );
    assert_eq!(c.gic_version, GicVersion::Native);
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (
            ShutdownAction::Destroy,
            ShutdownAction::Restart,
            ShutdownAction::Destroy
        )
    );
    assert!(c.uuid_generated);
    assert_ne!(
        c.uuid,
        from_text("name='g'\nkernel='/k'\n", "g.cfg", &[])
            .expect("ok")
            .uuid
    );
    assert_eq!(c.cmdline, None);
    // maxmem alone sets memory too (libxl: target defaults to max).
    let c = from_text("name='g'\nkernel='/k'\nmaxmem=64\n", "g.cfg", &[]).expect("ok");
    assert_eq!((c.memory_mib, c.maxmem_mib), (64, 64));
}

#[test]
fn cmdline_root_extra_combine_like_xl() {
    let c = |t: &str| from_text(&format!("name='g'\n{t}"), "g.cfg", &[]).expect("ok");
    assert_eq!(
        c("root='/dev/xvda'\n").cmdline.as_deref(),
        Some("root=/dev/xvda")
    );
    assert_eq!(c("extra='quiet'\n").cmdline.as_deref(), Some("quiet"));
    let x = c("cmdline='a b'\nextra='quiet'\n");
    assert_eq!(x.cmdline.as_deref(), Some("a b"));
    assert_eq!(x.warnings.len(), 1);
    assert!(x.warnings[0].message.contains("in favour of cmdline"));
}

#[test]
fn numbers_read_like_strtol() {
    let c = |v: &str| from_text(&format!("memory = {v}\n"), "g.cfg", &[]).map(|c| c.memory_mib);
    assert_eq!(c("0x80").expect("hex"), 128);
    assert_eq!(c("010").expect("octal"), 8);
    assert_eq!(c("\"128\"").expect("quoted"), 128);
    let e = c("12a").unwrap_err().to_string();
    assert!(e.contains("g.cfg:1: `memory`: invalid number"), "{e}");
}

#[test]
fn unknown_and_unimplemented_keys_are_warnings() {
    let c = from_text(
        "name='g'\nfrobnicate = 1\ncpu_weight = 512\nfrobnicate = 2\n",
        "g.cfg",
        &[],
    )
    .expect("ok");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert_eq!(
        c.warnings[0].to_string(),
        "g.cfg:2: warning: unknown key `frobnicate` ignored (xl ignores it silently)"
    );
    assert!(c.warnings[1].message.contains("does not implement"));
    assert_eq!(c.warnings[1].origin.line, 3);
}

#[test]
fn cpus_takes_one_list_or_one_per_vcpu() {
    let c = from_text(
        "name='g'\nvcpus = 2\ncpus = '0-1,^0'\ncpus_soft = ['1', '0']\n",
        "g.cfg",
        &[],
    )
    .expect("ok");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let hard = c.cpus.expect("cpus");
    assert_eq!(hard.for_vcpu(1).map(|l| l.resolve(2)), Some(Ok(vec![1])));
    let soft = c.cpus_soft.expect("cpus_soft");
    assert_eq!(soft.for_vcpu(1).map(|l| l.resolve(2)), Some(Ok(vec![0])));
    // More lists than vCPUs: xl ignores the extra ones; rxl says so.
    let c = from_text("name='g'\ncpus = ['1', '0', '1']\n", "g.cfg", &[]).expect("ok");
    assert_eq!(
        c.warnings[0].to_string(),
        "g.cfg:2: warning: `cpus` lists 3 CPU sets for 1 vCPUs; the extra ones are ignored"
    );
    let e = from_text("name='g'\ncpus = '1-x'\n", "g.cfg", &[]).expect_err("bad");
    assert_eq!(
        e.to_string(),
        "g.cfg:2: `cpus`: invalid CPU \"1-x\" (a number, N-M, ^N or all)"
    );
    let e = from_text("name='g'\ncpus = ['0', 'nodes:1']\n", "g.cfg", &[]).expect_err("bad");
    assert!(e.to_string().contains("NUMA node affinity"), "{e}");
}

#[test]
fn broken_values_name_file_line_and_key() {
    let cases = [
        ("name='g'\ntype = 'hvm'\n", "g.cfg:2: `type`", "x86 only"),
        (
            "name='g'\ntype = 'pvx'\n",
            "g.cfg:2: `type`",
            "invalid domain type",
        ),
        (
            "name='g'\nuuid = 'nope'\n",
            "g.cfg:2: `uuid`",
            "failed to parse UUID",
        ),
        (
            "gic_version = 'v4'\n",
            "g.cfg:1: `gic_version`",
            "unknown gic_version",
        ),
        ("vuart = 'pl011'\n", "g.cfg:1: `vuart`", "sbsa_uart"),
        (
            "\n\non_crash = 'explode'\n",
            "g.cfg:3: `on_crash`",
            "unknown action",
        ),
        ("disk = [ 'vdev=xvda' ]\n", "g.cfg:1: `disk`", "no target"),
        (
            "vif = [ 'mac=zz' ]\n",
            "g.cfg:1: `vif`",
            "invalid parameter `mac'",
        ),
        ("disk = '/a,,xvda'\n", "g.cfg:1: `disk`", "expected a list"),
        ("name = [ 'a' ]\n", "g.cfg:1: `name`", "found a list"),
        ("vcpus = 99999999999\n", "g.cfg:1: `vcpus`", "too large"),
    ];
    for (text, place, why) in cases {
        let e = from_text(text, "g.cfg", &[]).unwrap_err().to_string();
        assert!(e.starts_with(place) && e.contains(why), "{text:?} -> {e}");
    }
    let e = from_text("name = 'g'\nmemory = = 3\n", "g.cfg", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("g.cfg:2: syntax error"), "{e}");
}

#[test]
fn validation_finds_every_problem() {
    let text = "vcpus = 9\nmaxvcpus = 4\nmemory = 2000000\nmaxmem = 1\ngic_version = 'v2'\ndisk = ['/a,,xvda', '/b,,xvda']\nvif = ['mac=00:16:3e:00:00:01', 'mac=00:16:3e:00:00:01']\n";
    let c = from_text(text, "bad.cfg", &[]).expect("typed");
    let Err(ConfigError::Invalid(ValidationErrors(p))) = c.validate(None) else {
        panic!("expected validation errors")
    };
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "maxvcpus",
            "gic_version",
            "memory",
            "maxmem",
            "kernel",
            "disk",
            "vif"
        ],
        "{p:?}"
    );
    assert_eq!(p[1].origin.as_ref().map(|o| o.line), Some(2));
    assert!(p[2].reason.contains("at most 8"));
    assert!(p[3].reason.contains("two RAM banks"));
    let shown = ConfigError::Invalid(ValidationErrors(p.clone())).to_string();
    assert!(shown.contains("bad.cfg:3: `memory`"), "{shown}");
}

#[test]
fn disks_need_valid_distinct_vdevs() {
    let c = from_text(
        "name='g'\nkernel='/k'\ndisk=['/a,,xvda', '/b,,d0p0', '/c,,vda']\n",
        "g.cfg",
        &[],
    )
    .expect("typed");
    let e = c.validate(None).unwrap_err().to_string();
    assert!(
        e.contains("g.cfg:3: `disk`: vdev d0p0 is the same device as xvda"),
        "{e}"
    );
    assert!(
        e.contains("vdev vda is not a valid virtual disk name"),
        "{e}"
    );
}

#[test]
fn gicv2_limit_applies_to_the_host_gic_for_default() {
    let c = from_text("name='g'\nkernel='/k'\nvcpus=12\n", "g.cfg", &[]).expect("ok");
    assert!(c.validate(Some(GicVersion::V3)).is_ok());
    let e = c.validate(Some(GicVersion::V2)).unwrap_err().to_string();
    assert!(e.contains("the host's GIC"), "{e}");
    let c = from_text("name='g'\nkernel='/k'\nvcpus=129\n", "g.cfg", &[]).expect("ok");
    assert!(c
        .validate(None)
        .unwrap_err()
        .to_string()
        .contains("at most 128"));
}

#[test]
fn unimplemented_actions_are_accepted_with_a_warning() {
    let c = from_text(
        "name='g'\nkernel='/k'\non_crash='coredump-restart'\non_reboot='rename-restart'\n",
        "g.cfg",
        &[],
    )
    .expect("ok");
    let w = c.validate(None).expect("valid");
    assert_eq!(w.len(), 2);
    assert!(w
        .iter()
        .any(|w| w.message.contains("coredump-restart") && w.origin.line == 3));
}

#[test]
fn command_line_overrides_like_xl_create() {
    let c = from_text(
        GOOD,
        "guest.cfg",
        &[
            "name=\"guest2\"".into(),
            "memory=64".into(),
            "extra+=\" quiet\"".into(),
        ],
    )
    .expect("ok");
    assert_eq!(c.name, "guest2");
    assert_eq!(c.memory_mib, 64);
    assert_eq!(
        c.cmdline.as_deref(),
        Some("root=/dev/xvda1 console=hvc0 rdinit=/init quiet")
    );
    assert_eq!(c.origins["name"].source, COMMAND_LINE_SOURCE);
    let e = from_text(GOOD, "guest.cfg", &["name=guest2".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("quote strings"), "{e}");
}

#[test]
fn uuid_round_trips() {
    let u = Uuid::generate().expect("random");
    assert_eq!(Uuid::parse(&u.to_string()), Some(u));
    assert_eq!(u.0[6] >> 4, 4, "version 4");
    for bad in [
        "",
        "6f1d8a30-7e2b-4b39-9a51-0f2c3d4e5f6",
        "6f1d8a30x7e2b-4b39-9a51-0f2c3d4e5f60",
        "6f1d8a30-7e2b-4b39-9a51-0f2c3d4e5fgg",
    ] {
        assert_eq!(Uuid::parse(bad), None, "{bad}");
    }
}

/// xorshift64*: deterministic, so a failure reproduces from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap_or(0)
    }
}

const ALPHABET: &[u8] = b" \t\n\r#'\"\\[],;=+-.:0123456789abcdefxyz_@/\x00\xff";

/// The in-tree fuzz target: thousands of mutated configs (byte flips, inserts of
/// syntax characters, deletions, splices of other lines) through parse, typed build
/// and validation. Nothing may panic; every error must name a source and line.
/// RXEN_FUZZ_ITERS raises the count for a longer run.
#[test]
fn mutated_configs_never_panic() {
    let iters: usize = std::env::var("RXEN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed = 0x9e37_79b9_7f4a_7c15;
    let mut rng = Rng(seed);
    let base = GOOD.as_bytes();
    let lines: Vec<&[u8]> = base.split(|&c| c == b'\n').collect();
    let mut outcomes = [0usize; 2];
    for i in 0..iters {
        let mut b = base.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(b.len() + 1);
            match rng.below(4) {
                0 if at < b.len() => b[at] = ALPHABET[rng.below(ALPHABET.len())],
                1 => b.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                2 if at < b.len() => {
                    let n = rng.below(8).min(b.len() - at);
                    b.drain(at..at + n);
                }
                _ => {
                    let l = lines[rng.below(lines.len())];
                    b.splice(at..at, l.iter().copied());
                }
            }
        }
        let text = String::from_utf8_lossy(&b);
        match from_text(&text, "fuzz.cfg", &[]) {
            Ok(c) => {
                outcomes[0] += 1;
                let _ = c.validate(Some(GicVersion::V2));
            }
            Err(e) => {
                outcomes[1] += 1;
                let s = e.to_string();
                assert!(
                    s.starts_with("fuzz.cfg:"),
                    "iteration {i} (seed {seed:#x}): error without place: {s}\n{text}"
                );
            }
        }
    }
    // The mutations must exercise both paths, or the test proves nothing.
    assert!(
        outcomes[0] > iters / 20 && outcomes[1] > iters / 20,
        "ok/err = {outcomes:?}"
    );
}

/// Disk and vif specs built from random pieces of their syntax (and bytes outside
/// it) never panic, and an accepted disk always has a vdev.
#[test]
fn random_disk_and_vif_specs_never_panic() {
    const PIECES: &[&str] = &[
        "phy:",
        "file:",
        "tap:",
        "aio:",
        "raw:",
        "nbd:",
        "foo:",
        "/dev/sdb",
        "/a,b",
        "xvda",
        "xvdb1",
        "hdc",
        "d0p1",
        ":cdrom",
        "cdrom",
        "format=",
        "raw",
        "qcow2",
        "vdev=",
        "access=",
        "rw",
        "ro",
        "w",
        "target=",
        "devtype=",
        "backendtype=",
        "phy",
        "script=",
        "discard",
        "mac=",
        "00:16:3e:00:00:01",
        "bridge=",
        "rate=",
        "10Mb/s",
        "@20ms",
        "ip=",
        "type=",
        "vif",
        ",",
        ", ",
        " ",
        "=",
        "é",
        "\u{0}",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let n = 1 + rng.below(8);
        let spec: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        if let Ok(d) = parse_disk_spec(&spec) {
            assert!(!d.vdev.is_empty(), "{spec}");
            let _ = d.devid();
        }
        if let Ok(mut v) = parse_vif_spec(&spec) {
            assert!(!v.mac_or_generate([1, 2, 3]).is_multicast(), "{spec}");
        }
    }
}

#[test]
fn channels_are_parsed_and_checked() {
    let c = from_text(
        "name='g'\nkernel='/k'\nchannel = [ 'name=org.rxen.a, connection=pty', 'connection=pty,name=b,speed=9600' ]\n",
        "g.cfg",
        &[],
    )
    .expect("ok");
    assert_eq!(c.channels.len(), 2);
    assert_eq!(c.channels[0].name, "org.rxen.a");
    assert_eq!(c.channels[1].name, "b");
    // The unknown channel parameter is a warning; `channel` itself is known now.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].message.contains("'speed'"));
    assert!(c.validate(None).expect("valid").is_empty());

    let e = from_text(
        "name='g'\nkernel='/k'\nchannel = [ 'connection=pty' ]\n",
        "g.cfg",
        &[],
    )
    .expect_err("no name");
    assert!(e.to_string().contains("g.cfg:3"), "{e}");
    let sock = from_text(
        "name='g'\nkernel='/k'\nchannel = [ 'name=s,connection=socket,path=/run/s' ]\n",
        "g.cfg",
        &[],
    )
    .expect("parses");
    let e = sock.validate(None).expect_err("socket is QEMU's");
    assert!(e.to_string().contains("connection=pty"), "{e}");
}
