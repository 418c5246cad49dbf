//! Exercises the `xen` crate against a real hypervisor, from a dom0:
//! privcmd hypercalls (xen_version, physinfo, getdomaininfolist, sched_id,
//! grant table size), an event channel looped back within dom0, a grant shared
//! with gntalloc and mapped back with gntdev, the shared-ring engine over that
//! granted page, and the xenbus_backend event channel.
//!
//! Prints one `SELFTEST <name> ok|FAIL ...` line per check and exits non-zero if
//! any failed. Not a unit test: it needs /dev/xen and root.

use std::error::Error;
use xen::abi::xen::DOMID_SELF;
use xen::{DomainControl, Evtchn, Gntalloc, Gntdev, XenCtrl, XenbusBackend};

type Res<T> = Result<T, Box<dyn Error>>;
type Check = fn() -> Res<String>;

fn privcmd_checks() -> Res<String> {
    let ctl = XenCtrl::open()?;
    let v = ctl.xen_version()?;
    let p = ctl.physinfo()?;
    let doms = ctl.domain_info_list(0, 64)?;
    let dom0 = ctl.domain_info(0)?;
    let sched = ctl.sched_id()?;
    let gnt = ctl.gnttab_query_size(DOMID_SELF)?;
    if doms.first().map(|d| d.domid) != Some(0) || dom0.tot_pages == 0 {
        return Err("dom0 missing from getdomaininfolist".into());
    }
    Ok(format!(
        "xen {}.{}{} domctl={:#x} caps='{}' nr_cpus={} total_pages={} free_pages={} domains={:?} dom0_pages={} dom0_vcpus={} sched={} gnttab_frames={:?}",
        v.major,
        v.minor,
        v.extra,
        ctl.domctl_version(),
        v.capabilities,
        p.nr_cpus,
        p.total_pages,
        p.free_pages,
        doms.iter().map(|d| d.domid).collect::<Vec<_>>(),
        dom0.tot_pages,
        dom0.nr_online_vcpus,
        sched,
        gnt
    ))
}

fn evtchn_checks() -> Res<String> {
    let a = Evtchn::open()?;
    let b = Evtchn::open()?;
    // An unbound port in dom0 for dom0, bound from a second fd: a loopback.
    let unbound = a.bind_unbound_port(0)?;
    let local = b.bind_interdomain(0, unbound)?;
    b.notify(local)?;
    let mut got = None;
    for _ in 0..100 {
        if let Some(p) = a.pending()? {
            got = Some(p);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if got != Some(unbound) {
        return Err(format!("expected port {unbound} pending, got {got:?}").into());
    }
    a.unmask(unbound)?;
    a.notify(unbound)?;
    let mut back = None;
    for _ in 0..100 {
        if let Some(p) = b.pending()? {
            back = Some(p);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if back != Some(local) {
        return Err(format!("expected port {local} pending, got {back:?}").into());
    }
    let virq = a.bind_virq(xen::abi::xen::VIRQ_DOM_EXC);
    b.unbind(local)?;
    a.unbind(unbound)?;
    Ok(format!(
        "unbound={unbound} interdomain={local} notify both ways delivered; VIRQ_DOM_EXC bind: {}",
        match virq {
            Ok(p) => format!("port {p}"),
            Err(e) => format!("refused ({e}; xenstored holds it)"),
        }
    ))
}

fn grant_checks() -> Res<String> {
    let alloc = Gntalloc::open()?;
    let dev = Gntdev::open()?;
    let share = alloc.share(0, 2, true)?;
    let refs = share.refs().to_vec();
    let mapping = dev.map_grant_refs(0, &refs, true)?;
    share.write_u32(8, 0xfeed_f00d)?;
    let seen = mapping.read_u32(8)?;
    mapping.write_u32(4096 + 16, 0x0bad_cafe)?;
    let seen_back = share.read_u32(4096 + 16)?;
    if seen != 0xfeed_f00d || seen_back != 0x0bad_cafe {
        return Err(format!("writes not shared: {seen:#x} {seen_back:#x}").into());
    }
    // Single-grant map too.
    let single = dev.map_grant_refs(0, &refs[1..], false)?;
    let one = single.read_u32(16)?;
    // The ring engine over the real granted page: frontend on the gntalloc side,
    // backend on the gntdev side.
    let mut front = xen::FrontRing::init(share.memory().sub(0, 4096)?, 16)?;
    let mut back = xen::BackRing::new(mapping.memory().sub(0, 4096)?, 16)?;
    for i in 0..5u8 {
        front.put_request(&[i; 16])?;
    }
    let notify = front.push_requests()?;
    let mut buf = [0u8; 16];
    let mut n = 0;
    while back.next_request(&mut buf)? {
        if buf != [n; 16] {
            return Err(format!("ring request {n} corrupted: {buf:?}").into());
        }
        back.put_response(&[n + 100; 16])?;
        n += 1;
    }
    back.push_responses()?;
    let mut m = 0;
    while front.next_response(&mut buf)? {
        if buf != [m + 100; 16] {
            return Err(format!("ring response {m} corrupted").into());
        }
        m += 1;
    }
    if n != 5 || m != 5 {
        return Err(format!("ring moved {n} requests, {m} responses").into());
    }
    // Grant copy, both ways, without a mapping (page 1: page 0 holds the ring).
    let mut out = [0u8; 4];
    dev.copy_from_grant(0, refs[1], 16, &mut out)?;
    let copied = u32::from_ne_bytes(out);
    dev.copy_to_grant(0, refs[1], 100, &0x1357_9bdfu32.to_ne_bytes())?;
    let copied_back = share.read_u32(4096 + 100)?;
    if copied != 0x0bad_cafe || copied_back != 0x1357_9bdf {
        return Err(format!("grant copy: {copied:#x} {copied_back:#x}").into());
    }
    // Unmap notification: the kernel clears a byte of the share when the
    // gntdev mapping goes.
    share.write::<u8>(4096 + 200, 0xaa)?;
    // (Clearing needs a writable mapping: the kernel refuses it on a read-only one.)
    let notify_map = dev.map_grant_refs(0, &refs[1..], true)?;
    dev.set_unmap_notify(
        &notify_map,
        200,
        xen::abi::linux::UNMAP_NOTIFY_CLEAR_BYTE,
        0,
    )?;
    let before = share.read::<u8>(4096 + 200)?;
    drop(notify_map);
    let cleared = share.read::<u8>(4096 + 200)?;
    if before != 0xaa || cleared != 0 {
        return Err(format!("unmap notify: byte {before:#x} -> {cleared:#x}").into());
    }
    Ok(format!(
        "grant copy from/to gref {} ok ({copied:#x}, {copied_back:#x}); unmap-notify cleared byte; grefs={refs:?} write via gntalloc seen via gntdev={seen:#x}, reverse={seen_back:#x}, single-map read={one:#x}; ring: 5 requests/responses over the granted page (notify={notify})",
        refs[1]
    ))
}

/// Creates an empty domain, exercises the domctls, memory, HVM params, event
/// channels, foreign and resource mappings on it, then destroys it.
#[cfg(not(target_arch = "aarch64"))]
fn domctl_checks() -> Res<String> {
    Err("the domain checks use the arm64 vCPU context; run on an arm64 dom0".into())
}

/// Creates an empty domain, exercises the domctls, memory, HVM params, event
/// channels, foreign and resource mappings on it, then destroys it.
#[cfg(target_arch = "aarch64")]
fn domctl_checks() -> Res<String> {
    use xen::abi::arch::arm;
    use xen::abi::domctl::{cdf, grant_version};
    use xen::abi::hvm::HVM_PARAM_STORE_EVTCHN;
    use xen::abi::memory::{XENMEM_RESOURCE_GRANT_TABLE, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED};
    use xen::ctrl::CreateDomain;
    /// GUEST_RAM0_BASE >> PAGE_SHIFT (arch-arm.h).
    const RAM0_PFN: u64 = 0x40000;
    let ctl = XenCtrl::open()?;
    let config = CreateDomain {
        handle: *b"rxen-selftest-01",
        flags: cdf::HVM | cdf::HAP,
        max_vcpus: 1,
        max_evtchn_port: 1023,
        max_grant_frames: 64,
        max_maptrack_frames: 1024,
        grant_opts: grant_version(1),
        arch: xen::abi::arch::ArchDomainConfig::default(),
        ..Default::default()
    };
    let d = ctl.create_domain(&config)?;
    let result = (|| -> Res<String> {
        let info = ctl.domain_info(d)?;
        if info.handle != config.handle {
            return Err(format!("handle not stored: {:?}", info.handle).into());
        }
        ctl.set_max_mem(d, 16 * 1024)?;
        ctl.set_max_vcpus(d, 1)?;
        ctl.set_address_size(d, 64)?;
        let gfns: Vec<u64> = (RAM0_PFN..RAM0_PFN + 4).collect();
        let populated = ctl.populate_physmap(d, 0, &gfns)?;
        let after = ctl.domain_info(d)?;
        let port = ctl.evtchn_alloc_unbound(d, 0)?;
        ctl.hvm_param_set(d, HVM_PARAM_STORE_EVTCHN, port.into())?;
        let param = ctl.hvm_param_get(d, HVM_PARAM_STORE_EVTCHN)?;
        // Foreign mapping of the populated frames, and the per-frame errors of
        // a frame that is not populated.
        let mem = ctl.privcmd().map_foreign(d, &gfns, true)?;
        mem.write_u32(4096 * 3 + 12, 0x5eed)?;
        let again = ctl.privcmd().map_foreign(d, &gfns[3..], false)?;
        let seen = again.read_u32(12)?;
        let (_bad, errs) = ctl
            .privcmd()
            .map_foreign_batch(d, &[RAM0_PFN, 0x10], false)?;
        let bad_refused = ctl.privcmd().map_foreign(d, &[0x10], false).is_err();
        // The domain's grant table through acquire_resource.
        let gt = ctl.privcmd().map_resource(
            d,
            XENMEM_RESOURCE_GRANT_TABLE.into(),
            XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
            0,
            1,
            true,
        )?;
        gt.write::<xen::abi::grant_table::GrantEntryV1>(
            8,
            xen::abi::grant_table::GrantEntryV1 {
                flags: xen::abi::grant_table::GTF_PERMIT_ACCESS,
                domid: 0,
                frame: (RAM0_PFN + 1) as u32,
            },
        )?;
        let gnt = ctl.gnttab_query_size(d)?;
        let mut ctx = arm::VcpuGuestContext::default();
        ctx.user_regs.pc64 = 0x4008_0000;
        ctx.user_regs.x[0] = 0x4800_0000;
        ctx.user_regs.cpsr = arm::PSR_GUEST64_INIT;
        ctx.sctlr = 0x00c5_0078;
        ctx.flags = arm::VGCF_ONLINE;
        ctl.set_vcpu_context(d, 0, &ctx)?;
        let back = ctl.get_vcpu_context(d, 0)?;
        if back.user_regs.pc64 != ctx.user_regs.pc64 || back.user_regs.x[0] != ctx.user_regs.x[0] {
            return Err(format!(
                "vcpu context did not round-trip: pc={:#x}",
                back.user_regs.pc64
            )
            .into());
        }
        ctl.pause_domain(d)?;
        let paused = ctl.domain_info(d)?.paused();
        Ok(format!(
            "created domain {d} (flags {:#x}, handle ok), max_mem/max_vcpus/address_size ok, populated {populated} extents (tot_pages {} -> {}), evtchn {port} stored/read via HVM param = {param}, foreign map write/read = {seen:#x}, batch errors {errs:?} (single bad frame refused: {bad_refused}), grant table mapped via acquire_resource, gnttab size {gnt:?}, vcpu context pc={:#x} cpsr={:#x} round-trips, paused={paused}",
            info.flags, info.tot_pages, after.tot_pages, back.user_regs.pc64, back.user_regs.cpsr
        ))
    })();
    ctl.destroy_domain(d)?;
    let gone = match ctl.domain_info(d) {
        Err(xen::CtrlError::NoSuchDomain(_)) => "gone".to_string(),
        Ok(i) => format!("dying={}", i.dying()),
        Err(e) => format!("info error {e}"),
    };
    Ok(format!("{}; destroyed ({gone})", result?))
}

fn xenbus_backend_checks() -> Res<String> {
    let xb = XenbusBackend::open()?;
    let port = xb.evtchn()?;
    // dom0's xenstore ring page (xs_wire.h: req/rsp rings of 1024 bytes, then
    // req_cons, req_prod, rsp_cons, rsp_prod at 2048..2064).
    let ring = xb.map_interface()?;
    let idx: Vec<u32> = (0..4)
        .map(|i| ring.read_u32(2048 + 4 * i))
        .collect::<Result<_, _>>()?;
    Ok(format!(
        "dom0 xenstore event channel = {port}; ring page mapped, req_cons/req_prod/rsp_cons/rsp_prod = {idx:?}"
    ))
}

fn main() {
    let checks: [(&str, Check); 5] = [
        ("privcmd", privcmd_checks),
        ("evtchn", evtchn_checks),
        ("grants", grant_checks),
        ("xenbus_backend", xenbus_backend_checks),
        ("domctl", domctl_checks),
    ];
    let mut failed = 0;
    for (name, f) in checks {
        match f() {
            Ok(s) => println!("SELFTEST {name} ok: {s}"),
            Err(e) => {
                failed += 1;
                let mut msg = e.to_string();
                let mut src = e.source();
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                println!("SELFTEST {name} FAIL: {msg}");
            }
        }
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
