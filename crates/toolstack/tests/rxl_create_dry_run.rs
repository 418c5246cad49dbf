//! `rxl create --dry-run` and `rxl check-dtb` as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use toolstack::arm::loader::{arm64_header, zimage32_header};
use toolstack::dtb;

const RXL: &str = env!("CARGO_BIN_EXE_rxl");

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "rxl-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn rxl(args: &[&str]) -> Output {
    Command::new(RXL)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rxl")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A guest config with a synthetic arm64 kernel (1 MiB file, 3 MiB image_size) and initrd.
fn guest(dir: &Path, extra: &str) -> PathBuf {
    let mut k = arm64_header(0, 3 << 20, 0b0010);
    k.resize(1 << 20, 0);
    std::fs::write(dir.join("Image"), &k).expect("kernel");
    std::fs::write(dir.join("initrd"), vec![7u8; 300_000]).expect("initrd");
    let cfg = dir.join("guest.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"g\"\nkernel = \"{}\"\nramdisk = \"{}\"\nmemory = 256\nvcpus = 2\ngic_version = \"v3\"\nextra = \"console=hvc0\"\n{extra}",
            dir.join("Image").display(),
            dir.join("initrd").display()
        ),
    )
    .expect("cfg");
    cfg
}

#[test]
fn dry_run_prints_the_layout_and_writes_a_compliant_dtb() {
    let d = scratch();
    let cfg = guest(&d, "");
    let dtb_path = d.join("g.dtb");
    let o = rxl(&[
        "create",
        "--dry-run",
        "--dtb-out",
        dtb_path.to_str().expect("utf8"),
        cfg.to_str().expect("utf8"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("Parsing config from"), "{err}");
    for want in [
        "xen-3.0-aarch64 (64-bit), GICv3",
        "RAM bank 0  0x0040000000-0x004fffffff",
        "populate: 128 x 2 MiB",
        "entry       0x40000000",
        "initrd      0x0048000000-0x0048049fff  300000 bytes",
        "DTB         0x004804a000-0x004804afff",
        "console pfn 0x39000, xenstore pfn 0x39001",
        "pc=0x40000000 x0=0x4804a000",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let blob = std::fs::read(&dtb_path).expect("dtb written");
    let tree = dtb::parse(&blob).expect("our DTB parses").root;
    let chosen = tree.child("chosen").expect("chosen");
    assert_eq!(
        chosen
            .property("linux,initrd-start")
            .and_then(|p| p.as_u64()),
        Some(0x4800_0000)
    );
    assert_eq!(
        chosen.property("linux,initrd-end").and_then(|p| p.as_u64()),
        Some(0x4804_a000)
    );
    assert_eq!(tree.child("cpus").expect("cpus").children.len(), 2);

    let o = rxl(&["check-dtb", dtb_path.to_str().expect("utf8")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("9/9 points met"), "{out}");
}

#[test]
fn overrides_apply_and_arm32_guests_plan() {
    let d = scratch();
    let cfg = guest(&d, "");
    let mut z = zimage32_header(0, 600_000);
    z.resize(600_000, 0);
    std::fs::write(d.join("zImage"), &z).expect("zImage");
    let kernel = format!("kernel=\"{}\"", d.join("zImage").display());
    let o = rxl(&[
        "create",
        "-n",
        cfg.to_str().expect("utf8"),
        &kernel,
        "gic_version=\"v2\"",
        "memory=3584",
        "vuart=\"sbsa_uart\"",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for want in [
        "xen-3.0-armv7l (32-bit), GICv2",
        "nr_spis 1",
        "RAM bank 1  0x0200000000-0x021fffffff",
        "entry       0x40008000",
        "cpsr=0x400001d3",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn config_errors_and_missing_builder_are_reported() {
    let d = scratch();
    let cfg = guest(&d, "maxvcpus = 1\nbogus_key = 3\n");
    let o = rxl(&["create", "--dry-run", cfg.to_str().expect("utf8")]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("guest.cfg:9: warning: unknown key `bogus_key`"),
        "{err}"
    );
    assert!(
        err.contains("guest.cfg:8: `maxvcpus`: maxvcpus (1) < vcpus (2)"),
        "{err}"
    );

    let cfg = guest(&d, "gic_version = \"v2\"\nvcpus = 9\nmaxvcpus = 9\n");
    let o = rxl(&["create", "--dry-run", cfg.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("GICv2 supports at most 8 vCPUs"),
        "{}",
        text(&o).1
    );

    let cfg = guest(&d, "");
    std::fs::write(d.join("Image"), b"\x1f\x8b\x08\0\0\0\0\0").expect("gz");
    let o = rxl(&["create", "--dry-run", cfg.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("gzip-compressed"), "{}", text(&o).1);

    // Without --dry-run the kernel is still probed first.
    let o = rxl(&["create", cfg.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("gzip-compressed"), "{}", text(&o).1);
    // A valid config reaches the builder, which needs Xen: off Xen it says so.
    let cfg = guest(&d, "");
    let o = rxl(&["create", cfg.to_str().expect("utf8")]);
    assert!(!o.status.success());
    if !std::path::Path::new("/dev/xen/privcmd").exists() {
        assert!(
            text(&o).1.contains("opening Xen's privcmd"),
            "{}",
            text(&o).1
        );
    }
}

#[test]
fn check_dtb_fails_broken_and_non_xen_dtbs() {
    let d = scratch();
    let cfg = guest(&d, "");
    let good = d.join("g.dtb");
    let o = rxl(&[
        "create",
        "-n",
        "--dtb-out",
        good.to_str().expect("utf8"),
        cfg.to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
    let blob = std::fs::read(&good).expect("dtb");

    // Truncated: not a DTB at all.
    let cut = d.join("cut.dtb");
    std::fs::write(&cut, &blob[..blob.len() / 2]).expect("write");
    let o = rxl(&["check-dtb", cut.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("not a valid device tree blob"),
        "{}",
        text(&o).1
    );

    // Hand-broken: the hypervisor node's compatibles renamed, the timer's too.
    let mut broken = blob.clone();
    let mut replace = |from: &[u8], to: &[u8]| {
        let mut n = 0;
        while let Some(i) = broken.windows(from.len()).position(|w| w == from) {
            broken[i..i + to.len()].copy_from_slice(to);
            n += 1;
        }
        assert!(
            n > 0,
            "pattern {:?} not found",
            String::from_utf8_lossy(from)
        );
    };
    replace(b"xen,xen\0", b"xen,xyz\0");
    replace(b"arm,armv8-timer", b"arm,armv8-tamer");
    let bad = d.join("bad.dtb");
    std::fs::write(&bad, &broken).expect("write");
    let o = rxl(&["check-dtb", bad.to_str().expect("utf8")]);
    let (out, _) = text(&o);
    assert!(!o.status.success());
    for point in [
        "FAIL virtual timer",
        "FAIL console",
        "FAIL hotpluggable bus",
        "FAIL Xen hypervisor node",
        "5/9 points met",
    ] {
        assert!(out.contains(point), "missing {point:?} in:\n{out}");
    }
}

/// QEMU's virt machine: a sound ARM VM description, but not a Xen guest.
#[test]
fn qemu_virt_dtb_is_compliant_but_not_xen() {
    let d = scratch();
    let dump = d.join("virt.dtb");
    let machine = format!("virt,gic-version=3,dumpdtb={}", dump.display());
    let run = Command::new("qemu-system-aarch64")
        .args([
            "-machine",
            &machine,
            "-cpu",
            "cortex-a57",
            "-smp",
            "4",
            "-m",
            "512",
            "-display",
            "none",
        ])
        .output();
    match run {
        Ok(o) if dump.exists() => drop(o),
        _ => {
            eprintln!("qemu-system-aarch64 not available: QEMU DTB check skipped");
            return;
        }
    }
    let o = rxl(&["check-dtb", dump.to_str().expect("utf8")]);
    let (out, _) = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("8/9 points met"), "{out}");
    assert!(
        out.contains("FAIL Xen hypervisor node    no node compatible \"xen,xen\": not a Xen guest"),
        "{out}"
    );
    assert!(out.contains("ok   hotpluggable bus       PCIe"), "{out}");
    assert!(
        out.contains("ok   console                UART /pl011@9000000"),
        "{out}"
    );
}

/// Debian's real kernels, when RXEN_TEST_KERNELS names a directory with `Image`
/// (arm64) and/or `zImage` (armhf armmp-lpae).
#[test]
fn real_kernels_plan_when_available() {
    let Some(dir) = std::env::var_os("RXEN_TEST_KERNELS") else {
        eprintln!("RXEN_TEST_KERNELS not set: real-kernel dry runs skipped");
        return;
    };
    let d = scratch();
    let cfg = guest(&d, "");
    for (file, want) in [
        ("Image", "arm64 Image, text_offset 0x0"),
        ("zImage", "arm32 zImage, start 0x0"),
    ] {
        let k = Path::new(&dir).join(file);
        if !k.exists() {
            continue;
        }
        let kernel = format!("kernel=\"{}\"", k.display());
        let o = rxl(&[
            "create",
            "-n",
            cfg.to_str().expect("utf8"),
            &kernel,
            "gic_version=\"v2\"",
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        assert!(out.contains(want), "{out}");
        // Modules land at RAM0 + 128 MiB: both kernels end below it.
        assert!(out.contains("initrd      0x0048000000-"), "{out}");
    }
}

/// The lines of a `dtc -O dts` rendering that carry the tree: no comments, no blank
/// lines, no rng-seed (random on every run).
fn dts_lines(dts: &str) -> Vec<String> {
    dts.lines()
        .filter(|l| !l.starts_with("//") && !l.trim().is_empty() && !l.contains("rng-seed"))
        .map(str::to_string)
        .collect()
}

/// `rxl create --dry-run --dtb-out` for the arm32 guest of a real libxl run (Debian's
/// armhf zImage of 5526016 bytes, a 2266760-byte initrd, 1 GiB, 2 vCPUs, GICv2):
/// decompiled by dtc, the DTB is the one libxl dumped, line for line; the layout is
/// libxenguest's; check-dtb passes on it.
#[test]
fn arm32_dry_run_dtb_is_what_libxl_wrote() {
    let d = scratch();
    let mut z = zimage32_header(0, 5_526_016);
    z.resize(5_526_016, 0);
    std::fs::write(d.join("zImage"), &z).expect("zImage");
    std::fs::write(d.join("initrd"), vec![1u8; 2_266_760]).expect("initrd");
    let cfg = d.join("arm32.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"arm32\"\nkernel = \"{}\"\nramdisk = \"{}\"\nmemory = 1024\nvcpus = 2\ngic_version = \"v2\"\nextra = \"console=hvc0 rdinit=/init\"\n",
            d.join("zImage").display(),
            d.join("initrd").display()
        ),
    )
    .expect("cfg");
    let dtb_path = d.join("arm32.dtb");
    let o = rxl(&[
        "create",
        "--dry-run",
        "--dtb-out",
        dtb_path.to_str().expect("utf8"),
        cfg.to_str().expect("utf8"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    // libxenguest: "xen-3.0-armv7l: 0x40008000 -> 0x4054d200", modules at RAM + 128 MiB.
    for want in [
        "xen-3.0-armv7l (32-bit), GICv2",
        "entry       0x40008000",
        "initrd      0x0048000000-",
        "DTB         0x004822a000-",
        "cpsr=0x400001d3",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let o = rxl(&["check-dtb", dtb_path.to_str().expect("utf8")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("9/9 points met"), "{out}");
    assert!(out.contains("GICv2"), "{out}");

    let dtc = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&dtb_path)
        .output();
    let Some(dtc) = dtc.ok().filter(|o| o.status.success()) else {
        eprintln!("dtc (device-tree-compiler) not available: libxl comparison skipped");
        return;
    };
    let ours = dts_lines(&String::from_utf8_lossy(&dtc.stdout));
    let libxl = dts_lines(include_str!(
        "../src/arm/testdata/libxl-4.17.7-arm32-gicv2-2vcpu-1g.dts"
    ));
    assert_eq!(ours, libxl);
}

/// arm32-specific refusals, before anything is made: a zImage cut short, and one
/// linked for an address where it is not loaded.
#[test]
fn arm32_kernels_that_cannot_boot_are_refused() {
    let d = scratch();
    let cfg = guest(&d, "");
    let zimage = d.join("zImage");
    let kernel = format!("kernel=\"{}\"", zimage.display());
    let mut z = zimage32_header(0, 600_000);
    z.resize(500_000, 0);
    std::fs::write(&zimage, &z).expect("zImage");
    let o = rxl(&["create", "-n", cfg.to_str().expect("utf8"), &kernel]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .1
            .contains("arm32 zImage is truncated: its header says 600000 bytes"),
        "{}",
        text(&o).1
    );
    let mut z = zimage32_header(0x8000, 0x8000 + 600_000);
    z.resize(600_000, 0);
    std::fs::write(&zimage, &z).expect("zImage");
    let o = rxl(&["create", "-n", cfg.to_str().expect("utf8"), &kernel]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .1
            .contains("start address 0x8000 (header @0x28) is outside the image as loaded"),
        "{}",
        text(&o).1
    );
}
