//! The builder's steps and rollback over `xen`'s fakes (logic only: real Xen is
//! the test bed's job).

use super::*;
use crate::arm::layout::{GUEST_MAGIC_BASE, GUEST_RAM0_BASE};
use crate::config::from_text;
use std::cell::Cell;
use xen::abi::arch::arm::VcpuGuestContext;
use xen::abi::xen::XenPfn;
use xen::ctrl::{AffinityKind, DomainInfo, PhysInfo, XenVersion};
use xen::fake::{FakeForeignMemory, FakeXen};
use xen::ForeignMemory;

const MIB: u64 = 1 << 20;
const MAGIC_GFN: u64 = GUEST_MAGIC_BASE >> PAGE_SHIFT;

/// Guest memory over one fake region from the magic pages to the end of RAM,
/// plus a grant table page.
struct FakeGuest {
    ram: FakeForeignMemory,
    region: MappedMemory,
    gnttab: MappedMemory,
    fail_grant_table: bool,
    /// Offer grant copy ([`GuestMemory::copy_to_grants`]); `Some(false)` refuses it.
    grant_copy: Option<bool>,
    /// Grant copy calls, and the most pieces one call carried.
    grant_copies: std::sync::Mutex<(u32, usize)>,
    /// Offer grant copy straight from a mapped file
    /// ([`GuestMemory::copy_file_to_grants`]); the calls and bytes it took.
    file_copy: bool,
    file_copies: std::sync::Mutex<(u32, usize)>,
}

impl FakeGuest {
    fn new(domid: DomId, memory: u64) -> Self {
        let len = (GUEST_RAM0_BASE + memory - GUEST_MAGIC_BASE) as usize;
        let region = MappedMemory::anonymous(len).expect("region");
        // Junk that the builder must clear in the magic pages.
        region
            .fill(0, NR_MAGIC_PAGES as usize * XEN_PAGE_SIZE, 0xff)
            .expect("fill");
        let ram = FakeForeignMemory::new();
        ram.add_ram(domid, MAGIC_GFN, region.clone());
        FakeGuest {
            ram,
            region,
            gnttab: MappedMemory::anonymous(XEN_PAGE_SIZE).expect("gnttab"),
            fail_grant_table: false,
            grant_copy: None,
            grant_copies: std::sync::Mutex::new((0, 0)),
            file_copy: false,
            file_copies: std::sync::Mutex::new((0, 0)),
        }
    }
    fn at(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.region
            .read_bytes((gpa - GUEST_MAGIC_BASE) as usize, &mut v)
            .expect("read");
        v
    }
    /// The kernel, initrd and DTB are where the build's plan put them.
    fn assert_images(&self, b: &BuiltDomain, kernel: &[u8], initrd: &[u8]) {
        let l = &b.plan.layout;
        assert_eq!(self.at(l.kernel.start, kernel.len()), kernel);
        let r = l.initrd.expect("initrd");
        assert_eq!(self.at(r.start, initrd.len()), initrd);
        assert_eq!(self.at(l.dtb.start, b.plan.dtb.len()), b.plan.dtb);
    }
}

impl GuestMemory for FakeGuest {
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        self.ram.map_foreign(domid, gfns, writable)
    }
    fn map_grant_table(&self, domid: DomId) -> Result<MappedMemory, PrivcmdError> {
        if self.fail_grant_table {
            return Err(PrivcmdError::Map {
                domid,
                count: 1,
                source: std::io::Error::from(std::io::ErrorKind::Unsupported),
            });
        }
        Ok(self.gnttab.clone())
    }
    fn has_grant_copy(&self) -> bool {
        self.grant_copy.is_some()
    }
    /// Like Xen: each piece's entry must permit dom0 to write, and names the frame.
    fn copy_to_grants(
        &self,
        _domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        {
            let mut c = self.grant_copies.lock().expect("counter");
            *c = (c.0 + 1, c.1.max(pieces.len()));
        }
        if !self.grant_copy? {
            return Some(Err(GntdevError::Fake("grant copy refused")));
        }
        let mut at = 0usize;
        for (index, p) in pieces.iter().enumerate() {
            let e: GrantEntryV1 = self
                .gnttab
                .read(p.gref as usize * std::mem::size_of::<GrantEntryV1>())
                .expect("entry");
            if e.flags != GTF_PERMIT_ACCESS || e.domid != BACKEND_DOMID {
                return Some(Err(GntdevError::CopySegment { index, status: -1 }));
            }
            let gpa = (u64::from(e.frame) << PAGE_SHIFT) + u64::from(p.offset);
            let len = usize::from(p.len);
            self.region
                .write_bytes((gpa - GUEST_MAGIC_BASE) as usize, &src[at..at + len])
                .expect("write");
            at += len;
        }
        assert_eq!(at, src.len(), "pieces cover the source");
        Some(Ok(()))
    }
    /// Reads the file's bytes itself (as the kernel would through the mapping)
    /// and checks that the range lies within the mapping.
    fn copy_file_to_grants(
        &self,
        domid: DomId,
        src: &FileImage,
        offset: usize,
        pieces: &[GrantPiece],
    ) -> Option<Result<(), GntdevError>> {
        if !self.file_copy {
            return None;
        }
        let total: usize = pieces.iter().map(|p| usize::from(p.len)).sum();
        src.addr(offset, total)
            .expect("the range is within the mapping");
        let mut buf = vec![0u8; total];
        src.read_at(offset, &mut buf).expect("read");
        {
            let mut c = self.file_copies.lock().expect("counter");
            *c = (c.0 + 1, c.1 + total);
        }
        self.copy_to_grants(domid, &buf, pieces)
    }
}

/// A file holding `bytes`, mapped, and the path to remove afterwards.
fn mapped(name: &str, bytes: &[u8]) -> (FileImage, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("rxl-builder-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).expect("write");
    (FileImage::open(&path).expect("map"), path)
}

fn run_mapped(
    ctl: &Flaky,
    guest: &FakeGuest,
    cfg: &DomainConfig,
    kernel: &FileImage,
    probe: &[u8],
    initrd: &FileImage,
) -> Result<BuiltDomain, BuildError> {
    build_images(
        ctl,
        guest,
        cfg,
        probe,
        ImageBytes::file(kernel),
        ImageBytes::file(initrd),
    )
}

/// Builds with the kernel whose header is `probe` and the images given.
fn build_images(
    ctl: &Flaky,
    guest: &FakeGuest,
    cfg: &DomainConfig,
    probe: &[u8],
    kernel: ImageBytes<'_>,
    initrd: ImageBytes<'_>,
) -> Result<BuiltDomain, BuildError> {
    let input = BuildInput {
        cfg,
        kernel: KernelImage::probe(probe).expect("probe"),
        kernel_bytes: kernel,
        initrd: Some(initrd),
        rng_seed: [7; RNG_SEED_SIZE],
        xen_version: (4, 17),
    };
    build(ctl, guest, &input)
}

/// A [`FakeXen`] that fails one named operation and can short superpages.
struct Flaky {
    inner: FakeXen,
    fail: &'static str,
    /// populate_physmap of order > 0 gives only half of what is asked.
    short_superpages: bool,
    calls: Cell<u32>,
}

impl Flaky {
    fn new(fail: &'static str) -> Self {
        Flaky {
            inner: FakeXen::new(),
            fail,
            short_superpages: false,
            calls: Cell::new(0),
        }
    }
    fn check(&self, op: &'static str) -> Result<(), CtrlError> {
        self.calls.set(self.calls.get() + 1);
        if self.fail == op {
            Err(CtrlError::Invalid("injected failure"))
        } else {
            Ok(())
        }
    }
}

impl DomainControl for Flaky {
    fn xen_version(&self) -> Result<XenVersion, CtrlError> {
        self.inner.xen_version()
    }
    fn physinfo(&self) -> Result<PhysInfo, CtrlError> {
        self.inner.physinfo()
    }
    fn sched_id(&self) -> Result<u32, CtrlError> {
        self.inner.sched_id()
    }
    fn free_cpus(&self) -> Result<Vec<u32>, CtrlError> {
        self.inner.free_cpus()
    }
    fn send_debug_keys(&self, keys: &[u8]) -> Result<(), CtrlError> {
        self.inner.send_debug_keys(keys)
    }
    fn read_console_chunk(
        &self,
        index: u32,
        max: u32,
        clear: bool,
    ) -> Result<(Vec<u8>, u32), CtrlError> {
        self.inner.read_console_chunk(index, max, clear)
    }
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo, CtrlError> {
        self.check("domain_info")?;
        self.inner.domain_info(domid)
    }
    fn domain_info_list(&self, first: DomId, max: u32) -> Result<Vec<DomainInfo>, CtrlError> {
        self.inner.domain_info_list(first, max)
    }
    fn create_domain(&self, config: &CreateDomain) -> Result<DomId, CtrlError> {
        self.check("create_domain")?;
        self.inner.create_domain(config)
    }
    fn destroy_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.inner.destroy_domain(domid)
    }
    fn pause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.inner.pause_domain(domid)
    }
    fn unpause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        self.inner.unpause_domain(domid)
    }
    fn set_max_mem(&self, domid: DomId, kib: u64) -> Result<(), CtrlError> {
        self.check("set_max_mem")?;
        self.inner.set_max_mem(domid, kib)
    }
    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<(), CtrlError> {
        self.check("set_max_vcpus")?;
        self.inner.set_max_vcpus(domid, max)
    }
    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<(), CtrlError> {
        self.check("set_address_size")?;
        self.inner.set_address_size(domid, bits)
    }
    fn populate_physmap(
        &self,
        domid: DomId,
        order: u32,
        gfns: &[XenPfn],
    ) -> Result<usize, CtrlError> {
        self.check("populate_physmap")?;
        if self.short_superpages && order > 0 {
            let half = gfns.len() / 2;
            return self.inner.populate_physmap(domid, order, &gfns[..half]);
        }
        self.inner.populate_physmap(domid, order, gfns)
    }
    fn hvm_param_get(&self, domid: DomId, index: u32) -> Result<u64, CtrlError> {
        self.inner.hvm_param_get(domid, index)
    }
    fn hvm_param_set(&self, domid: DomId, index: u32, value: u64) -> Result<(), CtrlError> {
        self.check("hvm_param_set")?;
        self.inner.hvm_param_set(domid, index, value)
    }
    fn evtchn_alloc_unbound(&self, domid: DomId, remote: DomId) -> Result<EvtchnPort, CtrlError> {
        self.check("evtchn_alloc_unbound")?;
        self.inner.evtchn_alloc_unbound(domid, remote)
    }
    fn gnttab_query_size(&self, domid: DomId) -> Result<(u32, u32), CtrlError> {
        self.inner.gnttab_query_size(domid)
    }
    fn set_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
        ctx: &VcpuGuestContext,
    ) -> Result<(), CtrlError> {
        self.check("set_vcpu_context")?;
        self.inner.set_vcpu_context(domid, vcpu, ctx)
    }
    fn get_vcpu_context(&self, domid: DomId, vcpu: u32) -> Result<VcpuGuestContext, CtrlError> {
        self.inner.get_vcpu_context(domid, vcpu)
    }
    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpus: &[u32],
    ) -> Result<Vec<u32>, CtrlError> {
        self.check("set_vcpu_affinity")?;
        self.inner.set_vcpu_affinity(domid, vcpu, kind, cpus)
    }
    fn get_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
    ) -> Result<Vec<u32>, CtrlError> {
        self.inner.get_vcpu_affinity(domid, vcpu, kind)
    }
    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<xen::ctrl::VcpuInfo, CtrlError> {
        self.inner.vcpu_info(domid, vcpu)
    }
}

/// A synthetic arm64 Image: header with the magic, then a recognisable body.
fn kernel_bytes() -> Vec<u8> {
    let mut k = vec![0u8; 300 * 1024];
    k[0x38..0x3c].copy_from_slice(&crate::arm::loader::ARM64_MAGIC.to_le_bytes());
    // image_size 1 MiB, flags: 4K pages, anywhere.
    k[16..24].copy_from_slice(&(MIB).to_le_bytes());
    k[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    for (i, b) in k.iter_mut().enumerate().skip(64) {
        *b = (i % 251) as u8;
    }
    k
}

fn config(memory_mib: u64, extra: &str) -> DomainConfig {
    from_text(
        &format!("name='g'\nkernel='/k'\nramdisk='/r'\nmemory={memory_mib}\nvcpus=2\n{extra}"),
        "g.cfg",
        &[],
    )
    .expect("config")
}

fn run(
    ctl: &Flaky,
    guest: &FakeGuest,
    cfg: &DomainConfig,
    kernel: &[u8],
    initrd: &[u8],
) -> Result<BuiltDomain, BuildError> {
    build_images(
        ctl,
        guest,
        cfg,
        kernel,
        ImageBytes::Memory(kernel),
        ImageBytes::Memory(initrd),
    )
}

#[test]
fn builds_a_paused_domain_with_everything_in_place() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    let kernel = kernel_bytes();
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8 + 1).collect();
    let b = run(&ctl, &guest, &cfg, &kernel, &initrd).expect("build");
    assert_eq!(b.domid, 1);
    let info = ctl.inner.domain_info(1).expect("exists");
    assert!(info.paused(), "left paused for the caller");
    assert_eq!(info.max_vcpu_id, 1);
    assert_eq!(info.max_pages, max_mem_kib(&cfg) / 4);
    assert_eq!(info.handle, cfg.uuid.0);
    // All of RAM plus the 4 magic pages, no frame twice.
    assert_eq!(info.tot_pages, 64 * MIB / PAGE_SIZE + NR_MAGIC_PAGES);
    // The kernel, initrd and DTB are where the plan put them.
    guest.assert_images(&b, &kernel, &initrd);
    let l = &b.plan.layout;
    // Magic pages cleared.
    assert!(guest
        .at(GUEST_MAGIC_BASE, NR_MAGIC_PAGES as usize * XEN_PAGE_SIZE)
        .iter()
        .all(|&x| x == 0));
    // HVM params name the magic pages and the ports.
    let p = |i| ctl.inner.hvm_param_get(1, i).expect("param");
    assert_eq!(p(HVM_PARAM_CONSOLE_PFN), b.console_gfn);
    assert_eq!(p(HVM_PARAM_STORE_PFN), b.store_gfn);
    assert_eq!(p(HVM_PARAM_STORE_EVTCHN), u64::from(b.store_port));
    assert_eq!(p(HVM_PARAM_CONSOLE_EVTCHN), u64::from(b.console_port));
    assert_ne!(b.store_port, b.console_port);
    assert_eq!(b.console_gfn, MAGIC_GFN);
    assert_eq!(b.store_gfn, MAGIC_GFN + 1);
    // Grant entries 0 and 1 for dom0.
    let e0: GrantEntryV1 = guest.gnttab.read(0).expect("entry 0");
    let e1: GrantEntryV1 = guest.gnttab.read(8).expect("entry 1");
    assert_eq!(
        (e0.flags, e0.domid, u64::from(e0.frame)),
        (GTF_PERMIT_ACCESS, 0, b.console_gfn)
    );
    assert_eq!(
        (e1.flags, e1.domid, u64::from(e1.frame)),
        (GTF_PERMIT_ACCESS, 0, b.store_gfn)
    );
    // vCPU 0 starts at the entry with x0 = DTB.
    let ctx = ctl.inner.get_vcpu_context(1, 0).expect("ctx");
    assert_eq!(ctx.user_regs.pc64, l.entry);
    assert_eq!(ctx.user_regs.x[0], l.dtb.start);
    assert_eq!(ctx.flags & VGCF_ONLINE, VGCF_ONLINE);
    assert!(b.vuart.is_none());
}

#[test]
fn every_failing_step_destroys_the_domain_and_names_the_step() {
    let cases = [
        ("domain_info", "getdomaininfo"),
        ("set_max_vcpus", "max_vcpus"),
        ("set_max_mem", "setmaxmem"),
        ("evtchn_alloc_unbound", "xenstore event channel"),
        ("set_address_size", "set_address_size"),
        // The magic pages are the first populate_physmap (before RAM).
        ("populate_physmap", "populating the magic pages"),
        ("hvm_param_set", "HVM params"),
        ("set_vcpu_context", "setvcpucontext"),
    ];
    let kernel = kernel_bytes();
    for (op, step) in cases {
        let ctl = Flaky::new(op);
        let cfg = config(64, "");
        let guest = FakeGuest::new(1, 64 * MIB);
        let err = run(&ctl, &guest, &cfg, &kernel, b"initrd").expect_err(op);
        assert!(err.to_string().contains(step), "{op}: {err}");
        assert!(
            matches!(ctl.inner.domain_info(1), Err(CtrlError::NoSuchDomain(1))),
            "{op}: domain left behind"
        );
    }
}

#[test]
fn cpus_and_cpus_soft_set_each_vcpus_affinity() {
    let ctl = Flaky::new("");
    let cfg = config(64, "cpus = [\"1\", \"0-1,^1\"]\ncpus_soft = \"all,^0\"\n");
    let guest = FakeGuest::new(1, 64 * MIB);
    run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect("build");
    let get = |vcpu, kind| {
        ctl.inner
            .get_vcpu_affinity(1, vcpu, kind)
            .expect("affinity")
    };
    assert_eq!(get(0, AffinityKind::Hard), vec![1]);
    assert_eq!(get(1, AffinityKind::Hard), vec![0]);
    assert_eq!(get(0, AffinityKind::Soft), vec![1]);
    assert_eq!(get(1, AffinityKind::Soft), vec![1]);
}

#[test]
fn without_cpus_the_vcpus_may_run_anywhere() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect("build");
    for kind in [AffinityKind::Hard, AffinityKind::Soft] {
        let all = ctl.inner.get_vcpu_affinity(1, 1, kind).expect("affinity");
        assert_eq!(all, vec![0, 1]);
    }
}

#[test]
fn a_cpu_the_host_lacks_is_refused_and_rolled_back() {
    // The fake host has 2 CPUs.
    let ctl = Flaky::new("");
    let cfg = config(64, "cpus = \"1-2\"\n");
    let guest = FakeGuest::new(1, 64 * MIB);
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("refused");
    assert_eq!(
        err.to_string(),
        "cpus: vCPU 0: \"1-2\": CPU 2 does not exist: the host has 2 CPUs (0-1)"
    );
    assert!(ctl.inner.domain_info(1).is_err(), "domain left behind");
    // And a failing hypercall names its step and rolls back as well.
    let ctl = Flaky::new("set_vcpu_affinity");
    let cfg = config(64, "cpus = \"0\"\n");
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("fails");
    assert!(err.to_string().contains("affinity"), "{err}");
    assert!(ctl.inner.domain_info(1).is_err(), "domain left behind");
}

#[test]
fn createdomain_failure_leaves_nothing_to_destroy() {
    let ctl = Flaky::new("create_domain");
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("fails");
    assert!(err.to_string().starts_with("createdomain failed"), "{err}");
    assert_eq!(ctl.inner.domain_info_list(1, 10).expect("list").len(), 0);
}

#[test]
fn mapping_failures_roll_back_too() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.fail_grant_table = true;
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("fails");
    assert!(err.to_string().contains("seeding the grant table"), "{err}");
    assert!(ctl.inner.domain_info(1).is_err());
    // Guest memory that cannot be mapped (here: no fake region for the domain)
    // fails the first mapping, the magic pages' (they come before RAM).
    let ctl = Flaky::new("");
    let guest = FakeGuest::new(2, 64 * MIB);
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("fails");
    assert!(err.to_string().contains("mapping the magic pages"), "{err}");
    assert!(ctl.inner.domain_info(1).is_err());
}

#[test]
fn short_superpages_fall_back_to_smaller_extents() {
    let mut ctl = Flaky::new("");
    ctl.short_superpages = true;
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect("build");
    let info = ctl.inner.domain_info(1).expect("exists");
    assert_eq!(info.tot_pages, 64 * MIB / PAGE_SIZE + NR_MAGIC_PAGES);
    let mut gfns = ctl.inner.populated(1);
    let n = gfns.len();
    gfns.sort_unstable();
    gfns.dedup();
    assert_eq!(gfns.len(), n, "no extent populated twice");
}

#[test]
fn vuart_needs_a_hypervisor_that_has_one() {
    // FakeXen has no vpl011: the step fails and the domain goes.
    let ctl = Flaky::new("");
    let cfg = config(64, "vuart='sbsa_uart'\n");
    let guest = FakeGuest::new(1, 64 * MIB);
    let err = run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect_err("no vuart");
    assert!(err.to_string().contains("vuart_op"), "{err}");
    assert!(ctl.inner.domain_info(1).is_err());
}

#[test]
fn createdomain_request_is_libxls() {
    let cfg = config(128, "maxvcpus=4\n");
    let r = create_request(&cfg, 1);
    assert_eq!(r.flags, cdf::HVM | cdf::HAP);
    assert_eq!(r.max_vcpus, 4);
    assert_eq!(r.max_evtchn_port, 1023);
    assert_eq!((r.max_grant_frames, r.max_maptrack_frames), (64, 1024));
    assert_eq!(r.grant_opts, 1);
    assert_eq!(r.handle, cfg.uuid.0);
    assert_eq!(max_mem_kib(&cfg), 128 * 1024 + 1024);
}

/// A synthetic arm32 zImage: the header (magic, start 0, end = size), then a body.
fn zimage_bytes() -> Vec<u8> {
    let len = 200 * 1024;
    let mut k = crate::arm::loader::zimage32_header(0, len as u32);
    k.extend((k.len()..len).map(|i| (i % 241) as u8));
    k
}

#[test]
fn arm32_zimage_makes_a_32_bit_domain_started_in_svc_mode() {
    use crate::arm::layout::PSR_GUEST32_INIT;
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    let kernel = zimage_bytes();
    let b = run(&ctl, &guest, &cfg, &kernel, b"initrd").expect("build");
    assert_eq!(ctl.inner.address_size(1), Some(32), "set_address_size 32");
    let l = &b.plan.layout;
    // xg_dom_armzimageloader.c: the zImage goes 32 KiB into RAM, entry = load address.
    assert_eq!(l.kernel.start, GUEST_RAM0_BASE + 0x8000);
    assert_eq!(guest.at(l.kernel.start, kernel.len()), kernel);
    assert_eq!(guest.at(l.dtb.start, b.plan.dtb.len()), b.plan.dtb);
    // The DTB and initrd sit in bank 0, below 4 GiB (32-bit lowmem).
    assert!(l.dtb.end <= 1 << 32 && l.initrd.expect("initrd").end <= 1 << 32);
    // vcpu_arm32: pc = entry, r0 = 0, r1 = ~0 (no machine id: DT boot), r2 = DTB,
    // CPSR = SVC mode with A, I and F masked.
    let ctx = ctl.inner.get_vcpu_context(1, 0).expect("ctx");
    assert_eq!(ctx.user_regs.pc64, GUEST_RAM0_BASE + 0x8000);
    assert_eq!(
        &ctx.user_regs.x[..3],
        &[0, 0xffff_ffff, l.dtb.start],
        "r0, r1, r2"
    );
    assert_eq!(ctx.user_regs.cpsr, PSR_GUEST32_INIT);
    assert_eq!(PSR_GUEST32_INIT & 0x1f, 0x13, "SVC mode");
    assert_eq!(PSR_GUEST32_INIT & 0x1c0, 0x1c0, "A, I, F masked");
    let tree = crate::dtb::parse(&b.plan.dtb).expect("dtb").root;
    assert!(tree
        .child("timer")
        .expect("timer")
        .is_compatible("arm,armv7-timer"));
}

#[test]
fn arm32_zimage_is_refused_before_anything_is_made_when_xen_runs_no_32_bit_guests() {
    let mut ctl = Flaky::new("");
    ctl.inner.version.capabilities = "xen-3.0-aarch64 ".into();
    let cfg = config(64, "");
    let guest = FakeGuest::new(1, 64 * MIB);
    let err = run(&ctl, &guest, &cfg, &zimage_bytes(), b"x").expect_err("no AArch32 EL1");
    let msg = err.to_string();
    assert!(msg.starts_with("checking the guest type: "), "{msg}");
    assert!(
        msg.contains("xen-3.0-armv7l") && msg.contains("AArch32 at EL1"),
        "{msg}"
    );
    assert_eq!(ctl.inner.domain_info_list(1, 10).expect("list").len(), 0);
    // An arm64 Image on the same host is fine.
    run(&ctl, &guest, &cfg, &kernel_bytes(), b"x").expect("arm64 builds");
}

/// rxenstored's daemon on a temporary socket, served by a thread for the rest of
/// the test process.
fn xenstored(tag: &str) -> std::path::PathBuf {
    crate::testing::xenstored(&format!("lc-{tag}"))
}

/// A config whose kernel is a real file with a synthetic arm64 Image.
fn config_with_kernel(tag: &str, extra: &str) -> DomainConfig {
    let k = std::env::temp_dir().join(format!("rxl-lc-{tag}-{}.img", std::process::id()));
    std::fs::write(&k, kernel_bytes()).expect("kernel file");
    from_text(
        &format!("name='g'\nkernel='{}'\nmemory=64\n{extra}", k.display()),
        "g.cfg",
        &[],
    )
    .expect("config")
}

/// What `rxl create` asks of [`crate::lifecycle::create`] for `cfg` on Xen 4.17.
fn request(cfg: &DomainConfig, paused: bool) -> crate::lifecycle::CreateRequest<'_> {
    crate::lifecycle::CreateRequest {
        cfg,
        paused,
        xen_version: (4, 17),
        kernel: None,
    }
}

const NICS: &str = "vif = [ 'mac=00:16:3e:00:00:01,bridge=br0', 'bridge=br1' ]\n";

#[test]
fn create_writes_the_nics_and_destroy_removes_them() {
    use crate::lifecycle;
    use xenstore::client::{Client, XsOps};
    let sock = xenstored("ok");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    let cfg = config_with_kernel("ok", NICS);
    let ctl = Flaky::new("");
    let guest = FakeGuest::new(1, 64 * MIB);
    let req = request(&cfg, true);
    let built = lifecycle::create(&ctl, &guest, &mut xs, &req).expect("create");
    let domid = u32::from(built.domid);
    let be = format!("/local/domain/0/backend/rxvif/{domid}");
    let fe = format!("/local/domain/{domid}/device/vif");
    let read = |xs: &mut Client, p: &str| xs.read_string(p).expect(p);
    assert_eq!(read(&mut xs, &format!("{be}/0/bridge")), "br0");
    assert_eq!(read(&mut xs, &format!("{be}/1/bridge")), "br1");
    assert_eq!(read(&mut xs, &format!("{fe}/0/mac")), "00:16:3e:00:00:01");
    // The generated MAC is the config's, derived from the uuid.
    let mac1 = cfg.vifs[1].mac.expect("generated").to_string();
    assert_eq!(read(&mut xs, &format!("{fe}/1/mac")), mac1);
    assert_eq!(read(&mut xs, &format!("{fe}/1/backend")), format!("{be}/1"));
    lifecycle::destroy(&ctl, &mut xs, domid).expect("destroy");
    assert!(!xs.exists(&be).expect("exists"));
    assert!(!xs
        .exists(&format!("/local/domain/{domid}"))
        .expect("exists"));
    // The empty backend type directory goes too (libxl__xs_path_cleanup).
    assert!(!xs.exists("/local/domain/0/backend/rxvif").expect("exists"));
}

#[test]
fn a_nic_that_cannot_be_written_rolls_the_create_back() {
    use crate::lifecycle::{self, LifecycleError};
    use xenstore::client::{Client, XsOps};
    let sock = xenstored("rb");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    // Debris of an earlier domain 1 at NIC 1's backend path: writing it fails.
    xs.write("/local/domain/0/backend/rxvif/1/1/state", b"6")
        .expect("debris");
    let cfg = config_with_kernel("rb", NICS);
    let ctl = Flaky::new("");
    let guest = FakeGuest::new(1, 64 * MIB);
    let req = request(&cfg, true);
    let err = lifecycle::create(&ctl, &guest, &mut xs, &req).expect_err("NIC 1 exists");
    assert!(
        matches!(err, LifecycleError::NicNodes { devid: 1, .. }),
        "{err}"
    );
    assert!(
        ctl.inner.domain_info(1).is_err(),
        "the domain was destroyed"
    );
    for p in [
        "/local/domain/1",
        "/local/domain/0/backend/rxvif/1",
        "/local/domain/0/backend/rxvif",
    ] {
        assert!(!xs.exists(p).expect("exists"), "{p} left behind");
    }
    // A type=ioemu NIC is refused before anything is made.
    let cfg = config_with_kernel("rb2", "vif = [ 'type=ioemu' ]\n");
    let ctl = Flaky::new("");
    let req = request(&cfg, true);
    let err = lifecycle::create(&ctl, &guest, &mut xs, &req).expect_err("ioemu");
    assert!(matches!(err, LifecycleError::Nic { devid: 0, .. }), "{err}");
    assert_eq!(ctl.calls.get(), 0, "no domain was created");
}

/// Marks a fake domain as shut down with `reason`.
fn shut_down(ctl: &FakeXen, domid: DomId, reason: u32) {
    use xen::abi::domctl::dominf;
    let mut info = ctl.domain_info(domid).expect("domain");
    info.flags = dominf::SHUTDOWN | (reason << dominf::SHUTDOWN_SHIFT);
    ctl.add_domain(info);
}

/// Polls `f` every 50 ms for up to 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn on_reboot_restart_re_reads_the_config_file() {
    use crate::lifecycle::{self, ConfigSource, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
    use xenstore::client::{Client, XsOps};
    let sock = xenstored("mon");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    let k = std::env::temp_dir().join(format!("rxl-lc-mon-{}.img", std::process::id()));
    std::fs::write(&k, kernel_bytes()).expect("kernel file");
    let file = k.with_extension("cfg");
    let text = |bridge: &str| {
        format!(
            "name='g'\nkernel='{}'\nmemory=64\non_reboot='restart'\non_poweroff='destroy'\nvif=['bridge={bridge}']\n",
            k.display()
        )
    };
    std::fs::write(&file, text("br0")).expect("config file");
    let src = ConfigSource {
        path: file.clone(),
        overrides: Vec::new(),
    };
    let cfg = src.load().expect("config");
    let ctl = FakeXen::new();
    let guest = FakeGuest::new(1, 64 * MIB);
    let req = request(&cfg, false);
    let domid = lifecycle::create(&ctl, &guest, &mut xs, &req)
        .expect("create")
        .domid;
    let src = lifecycle::restart_source(&src, &cfg);
    let bridge = "/local/domain/0/backend/rxvif/1/0/bridge";
    let mac = "/local/domain/1/device/vif/0/mac";
    let mac_before = xs.read_string(mac).expect("mac");
    std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            crate::monitor::run_with(&ctl, &guest, &src, u32::from(domid), (4, 17), || {
                Client::connect_socket(&sock)
            })
        });
        // The admin edits the config and renames the running guest; the guest
        // reboots.
        std::fs::write(&file, text("br7")).expect("edit config");
        crate::rename::rename(&mut xs, &[u32::from(domid)], u32::from(domid), "g2")
            .expect("rename");
        shut_down(&ctl, domid, SHUTDOWN_REBOOT);
        eventually("the restarted domain's NIC on the new bridge", || {
            xs.read_string(bridge).is_ok_and(|b| b == "br7")
        });
        // The new name should outlive the restart (libxl's restart takes the name
        // from xenstore, not from the config file); asserted once the monitor has
        // ended, since a panic here would leave the scope waiting for it.
        let name_after_restart = xs.read_string("/local/domain/1/name").expect("name");
        // Same uuid (pinned), so the same generated MAC.
        assert_eq!(xs.read_string(mac).expect("mac"), mac_before);
        // A config that no longer parses: the restart uses the last good one.
        std::fs::write(&file, "memory = = 3\n").expect("break config");
        eventually("domain 1 running again", || {
            ctl.domain_info(1).is_ok_and(|i| !i.shutdown())
        });
        shut_down(&ctl, 1, SHUTDOWN_REBOOT);
        eventually("the restart with the last good config", || {
            ctl.domain_info(1).is_ok_and(|i| !i.shutdown())
                && xs.read_string(bridge).is_ok_and(|b| b == "br7")
        });
        shut_down(&ctl, 1, SHUTDOWN_POWEROFF);
        monitor
            .join()
            .expect("monitor thread")
            .expect("monitor ends when the domain is destroyed");
        assert_eq!(name_after_restart, "g2", "the name given by rename");
    });
    assert!(ctl.domain_info(1).is_err(), "destroyed on poweroff");
    assert!(!xs.exists("/local/domain/1").expect("exists"));
    assert!(!xs.exists("/local/domain/0/backend/rxvif").expect("exists"));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&k);
}

/// An Image of `len` bytes (more than one grant copy window when large).
fn kernel_of(len: usize) -> Vec<u8> {
    let mut k = kernel_bytes();
    k.resize(len, 0);
    for (i, b) in k.iter_mut().enumerate().skip(300 * 1024) {
        *b = (i % 253) as u8;
    }
    k[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    k
}

/// Every grant entry the builder may borrow for copying is zero.
fn borrowed_entries_clear(guest: &FakeGuest) -> bool {
    let entry = std::mem::size_of::<GrantEntryV1>();
    (0..GRANT_COPY_WINDOW).all(|i| {
        let e: GrantEntryV1 = guest
            .gnttab
            .read((GRANT_COPY_FIRST_REF as usize + i) * entry)
            .expect("entry");
        e == GrantEntryV1::default()
    })
}

#[test]
fn images_go_in_by_grant_copy_and_the_borrowed_entries_are_cleared() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.grant_copy = Some(true);
    // 300 pages and a partial one: two windows for the kernel.
    let kernel = kernel_of(300 * XEN_PAGE_SIZE + 123);
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8 + 1).collect();
    let b = run(&ctl, &guest, &cfg, &kernel, &initrd).expect("build");
    guest.assert_images(&b, &kernel, &initrd);
    let (calls, most) = *guest.grant_copies.lock().expect("counter");
    assert_eq!(calls, 2 + 1 + 1, "kernel in two windows, initrd, DTB");
    assert_eq!(most, GRANT_COPY_WINDOW);
    assert!(borrowed_entries_clear(&guest));
    // Entries 0 and 1 are seeded as without grant copy.
    let e0: GrantEntryV1 = guest.gnttab.read(0).expect("entry 0");
    assert_eq!(
        (e0.flags, u64::from(e0.frame)),
        (GTF_PERMIT_ACCESS, b.console_gfn)
    );
}

#[test]
fn a_large_image_goes_in_by_several_threads_each_with_its_own_entries() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.grant_copy = Some(true);
    // 1000 pages and a partial one: the first window alone, then lanes.
    let pages = 1000;
    let kernel = kernel_of(pages * XEN_PAGE_SIZE + 77);
    let b = run(&ctl, &guest, &cfg, &kernel, b"initrd").expect("build");
    guest.assert_images(&b, &kernel, b"initrd");
    let lanes = copy_lanes();
    assert!((1..=MAX_COPY_LANES).contains(&lanes));
    assert_eq!(GRANT_COPY_WINDOW % lanes, 0);
    let rest = pages + 1 - GRANT_COPY_WINDOW;
    let chunks = rest.div_ceil(GRANT_COPY_WINDOW / lanes);
    let (calls, most) = *guest.grant_copies.lock().expect("counter");
    assert_eq!(calls as usize, 1 + chunks + 1 + 1, "kernel, initrd, DTB");
    assert_eq!(most, GRANT_COPY_WINDOW);
    assert!(borrowed_entries_clear(&guest));
}

#[test]
fn refused_grant_copy_falls_back_to_foreign_mappings() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.grant_copy = Some(false);
    let kernel = kernel_of(300 * XEN_PAGE_SIZE + 123);
    let b = run(&ctl, &guest, &cfg, &kernel, b"initrd").expect("build");
    let l = &b.plan.layout;
    assert_eq!(guest.at(l.kernel.start, kernel.len()), kernel);
    assert_eq!(guest.at(l.dtb.start, b.plan.dtb.len()), b.plan.dtb);
    assert_eq!(
        guest.grant_copies.lock().expect("counter").0,
        1,
        "tried once, then mappings only"
    );
    assert!(borrowed_entries_clear(&guest));
}

#[test]
fn a_monitor_started_before_the_create_takes_the_domain_id_later() {
    use crate::lifecycle::{self, ConfigSource, CreateRequest, SHUTDOWN_POWEROFF};
    use xenstore::client::{Client, XsOps};
    let sock = xenstored("pend");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    let k = std::env::temp_dir().join(format!("rxl-lc-pend-{}.img", std::process::id()));
    let image = kernel_bytes();
    let file = k.with_extension("cfg");
    std::fs::write(
        &file,
        format!(
            "name='g'\nkernel='{}'\nmemory=64\non_poweroff='destroy'\n",
            k.display()
        ),
    )
    .expect("config file");
    let src = ConfigSource {
        path: file.clone(),
        overrides: Vec::new(),
    };
    let cfg = src.load().expect("config");
    let ctl = FakeXen::new();
    let guest = FakeGuest::new(1, 64 * MIB);
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            crate::monitor::run_pending_with(
                &ctl,
                &guest,
                &src,
                move || rx.recv().ok(),
                (4, 17),
                || Client::connect_socket(&sock),
            )
        });
        // The kernel comes read already: the file named in the config does not
        // even exist, so a second read would fail the create.
        assert!(!k.exists());
        let req = CreateRequest {
            cfg: &cfg,
            paused: false,
            xen_version: (4, 17),
            kernel: Some((
                KernelImage::probe(&image).expect("probe"),
                ImageBytes::Memory(&image),
            )),
        };
        let domid = lifecycle::create(&ctl, &guest, &mut xs, &req)
            .expect("create with the kernel given")
            .domid;
        tx.send(u32::from(domid)).expect("monitor waits");
        shut_down(&ctl, domid, SHUTDOWN_POWEROFF);
        monitor
            .join()
            .expect("monitor thread")
            .expect("monitor ends when the domain is destroyed");
        assert!(ctl.domain_info(domid).is_err(), "destroyed on poweroff");
        assert!(!xs
            .exists(&format!("/local/domain/{domid}"))
            .expect("exists"));
    });
    // A create that failed: the monitor is told nothing and ends, touching nothing.
    let ctl = FakeXen::new();
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    drop(tx);
    crate::monitor::run_pending_with(
        &ctl,
        &guest,
        &src,
        || rx.recv().ok(),
        (4, 17),
        || Client::connect_socket(&sock),
    )
    .expect("nothing to monitor is not an error");
    assert!(ctl.domain_info(1).is_err());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_build_failing_after_the_tree_was_written_meanwhile_leaves_no_nodes() {
    use crate::lifecycle::{self, LifecycleError};
    use xenstore::client::{Client, XsOps};
    let sock = xenstored("late");
    let mut xs = Client::connect_socket(&sock).expect("connect");
    let cfg = config_with_kernel("late", "");
    // vCPU 0's context is the build's last step: the tree, written on the second
    // thread while RAM was populated, exists by then.
    let ctl = Flaky::new("set_vcpu_context");
    let guest = FakeGuest::new(1, 64 * MIB);
    let req = request(&cfg, true);
    let err = lifecycle::create(&ctl, &guest, &mut xs, &req).expect_err("injected failure");
    assert!(matches!(err, LifecycleError::Build(_)), "{err}");
    assert!(
        ctl.inner.domain_info(1).is_err(),
        "the domain was destroyed"
    );
    for p in [
        "/local/domain/1".to_string(),
        "/libxl/1".to_string(),
        format!("/vm/{}", cfg.uuid),
        "/local/domain/0/backend/console/1".to_string(),
    ] {
        assert!(!xs.exists(&p).expect("exists"), "{p} left behind");
    }
}

#[test]
fn mapped_files_go_in_by_grant_copy_straight_from_the_mapping() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.grant_copy = Some(true);
    guest.file_copy = true;
    // The first window alone, then lanes; a partial last page.
    let kernel = kernel_of(700 * XEN_PAGE_SIZE + 501);
    let initrd: Vec<u8> = (0..9000u32).map(|i| (i % 11) as u8 + 3).collect();
    let (k, kp) = mapped("file-k", &kernel);
    let (i, ip) = mapped("file-i", &initrd);
    let b = run_mapped(&ctl, &guest, &cfg, &k, &kernel, &i).expect("build");
    guest.assert_images(&b, &kernel, &initrd);
    // Every byte of kernel and initrd went by the file's grant copy; only the
    // DTB (in memory) by the plain one.
    let (file_calls, file_bytes) = *guest.file_copies.lock().expect("counter");
    assert_eq!(file_bytes, kernel.len() + initrd.len());
    let (calls, _) = *guest.grant_copies.lock().expect("counter");
    assert_eq!(calls, file_calls + 1, "the DTB's copy besides");
    assert!(borrowed_entries_clear(&guest));
    let _ = std::fs::remove_file(kp);
    let _ = std::fs::remove_file(ip);
}

#[test]
fn mapped_files_go_in_through_a_buffer_or_mappings_without_file_copy() {
    let kernel = kernel_of(300 * XEN_PAGE_SIZE + 9);
    let initrd: Vec<u8> = (0..5000u32).map(|i| (i % 5) as u8 + 1).collect();
    let (k, kp) = mapped("buf-k", &kernel);
    let (i, ip) = mapped("buf-i", &initrd);
    // Grant copy without the file variant (pread into a buffer), then refused
    // grant copy (foreign mappings, as RXL_COPY=map).
    for grant_copy in [Some(true), Some(false), None] {
        let ctl = Flaky::new("");
        let cfg = config(64, "");
        let mut guest = FakeGuest::new(1, 64 * MIB);
        guest.grant_copy = grant_copy;
        let b = run_mapped(&ctl, &guest, &cfg, &k, &kernel, &i).expect("build");
        let l = &b.plan.layout;
        assert_eq!(
            guest.at(l.kernel.start, kernel.len()),
            kernel,
            "{grant_copy:?}"
        );
        let r = l.initrd.expect("initrd");
        assert_eq!(guest.at(r.start, initrd.len()), initrd, "{grant_copy:?}");
        assert_eq!(guest.file_copies.lock().expect("counter").0, 0);
    }
    let _ = std::fs::remove_file(kp);
    let _ = std::fs::remove_file(ip);
}

#[test]
fn a_file_shortened_under_the_builder_fails_the_build_and_destroys_the_domain() {
    let ctl = Flaky::new("");
    let cfg = config(64, "");
    let mut guest = FakeGuest::new(1, 64 * MIB);
    guest.grant_copy = Some(true);
    let kernel = kernel_of(300 * XEN_PAGE_SIZE);
    let (k, kp) = mapped("short-k", &kernel);
    let (i, ip) = mapped("short-i", b"initrd");
    std::fs::write(&kp, &kernel[..4096]).expect("shorten");
    let err = run_mapped(&ctl, &guest, &cfg, &k, &kernel, &i).expect_err("shortened");
    assert!(matches!(err, BuildError::Memory { .. }), "{err}");
    assert!(ctl.inner.domain_info(1).is_err(), "destroyed");
    let _ = std::fs::remove_file(kp);
    let _ = std::fs::remove_file(ip);
}
