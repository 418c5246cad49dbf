//! In-process fakes of each facility, for unit tests of logic (never evidence
//! that something works on Xen). Enabled in this crate's tests and, for other
//! crates' tests, with the `fake` feature.
#![forbid(unsafe_code)]

use crate::abi::xen::{DomId, EvtchnPort, GrantRef, XenPfn, XEN_PAGE_SIZE};
use crate::ctrl::{
    errno, AffinityKind, CreateDomain, CtrlError, DomainControl, DomainInfo, PhysInfo, VcpuInfo,
    XenVersion,
};
use crate::evtchn::EvtchnError;
use crate::gntdev::GntdevError;
use crate::mem::MappedMemory;
use crate::privcmd::PrivcmdError;
use crate::traits::{EventChannels, ForeignMemory, GrantMapper, GrantPageMapper};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake hypervisor for [`DomainControl`]: a table of domains.
#[derive(Debug, Default)]
pub struct FakeXen {
    pub version: XenVersion,
    pub physinfo: PhysInfo,
    pub sched_id: u32,
    state: Mutex<FakeXenState>,
}

#[derive(Debug, Default)]
struct FakeXenState {
    domains: BTreeMap<DomId, DomainInfo>,
    hvm_params: HashMap<(DomId, u32), u64>,
    next_port: EvtchnPort,
    populated: HashMap<DomId, Vec<XenPfn>>,
    vcpus: HashMap<(DomId, u32), crate::abi::arch::arm::VcpuGuestContext>,
    address_size: HashMap<DomId, u32>,
    affinity: HashMap<(DomId, u32, AffinityKind), Vec<u32>>,
    /// The hypervisor's console: everything ever written, and where the ring's
    /// oldest byte is (a clear moves it to the end).
    console: Vec<u8>,
    console_start: usize,
}

impl FakeXen {
    /// A fake Xen 4.17 host with dom0 running.
    pub fn new() -> Self {
        let fx = Self {
            version: XenVersion {
                major: 4,
                minor: 17,
                extra: ".0".into(),
                pagesize: XEN_PAGE_SIZE as u64,
                capabilities: "xen-3.0-aarch64 xen-3.0-armv7l ".into(),
                ..Default::default()
            },
            physinfo: PhysInfo {
                nr_cpus: 2,
                threads_per_core: 1,
                cores_per_socket: 1,
                nr_nodes: 1,
                max_cpu_id: 1,
                total_pages: 512 * 256,
                free_pages: 100 * 256,
                ..Default::default()
            },
            sched_id: crate::abi::domctl::scheduler::CREDIT2,
            state: Mutex::default(),
        };
        fx.add_domain(DomainInfo {
            domid: 0,
            flags: crate::abi::domctl::dominf::RUNNING,
            tot_pages: 512 * 256,
            nr_online_vcpus: 2,
            max_vcpu_id: 1,
            ..Default::default()
        });
        fx
    }

    /// Adds (or replaces) a domain.
    pub fn add_domain(&self, info: DomainInfo) {
        lock(&self.state).domains.insert(info.domid, info);
    }

    /// Frames populated for a domain so far.
    /// The address size last set for a domain (XEN_DOMCTL_set_address_size), if any.
    pub fn address_size(&self, domid: DomId) -> Option<u32> {
        lock(&self.state).address_size.get(&domid).copied()
    }

    /// Appends to the hypervisor's console ring (what `read_console` reads).
    pub fn console_write(&self, bytes: &[u8]) {
        lock(&self.state).console.extend_from_slice(bytes);
    }

    pub fn populated(&self, domid: DomId) -> Vec<XenPfn> {
        lock(&self.state)
            .populated
            .get(&domid)
            .cloned()
            .unwrap_or_default()
    }

    fn with_domain<R>(
        &self,
        domid: DomId,
        f: impl FnOnce(&mut DomainInfo) -> R,
    ) -> Result<R, CtrlError> {
        let mut s = lock(&self.state);
        s.domains
            .get_mut(&domid)
            .map(f)
            .ok_or(CtrlError::NoSuchDomain(domid))
    }
}

impl DomainControl for FakeXen {
    fn xen_version(&self) -> Result<XenVersion, CtrlError> {
        Ok(self.version.clone())
    }
    fn physinfo(&self) -> Result<PhysInfo, CtrlError> {
        Ok(self.physinfo)
    }
    fn sched_id(&self) -> Result<u32, CtrlError> {
        Ok(self.sched_id)
    }
    fn free_cpus(&self) -> Result<Vec<u32>, CtrlError> {
        Ok(Vec::new())
    }
    fn send_debug_keys(&self, keys: &[u8]) -> Result<(), CtrlError> {
        // What Xen's handlers print first: which key was pressed.
        let mut s = lock(&self.state);
        for &k in keys {
            let line = format!("(XEN) '{}' pressed -> fake handler\n", k as char);
            s.console.extend_from_slice(line.as_bytes());
        }
        Ok(())
    }
    fn read_console_chunk(
        &self,
        index: u32,
        max: u32,
        clear: bool,
    ) -> Result<(Vec<u8>, u32), CtrlError> {
        let mut s = lock(&self.state);
        // As Xen's read_console_ring: from the later of `index` and the oldest byte.
        let from = (index as usize).max(s.console_start).min(s.console.len());
        let to = s.console.len().min(from + max as usize);
        let bytes = s.console[from..to].to_vec();
        if clear {
            s.console_start = s.console.len();
        }
        Ok((bytes, to as u32))
    }
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo, CtrlError> {
        self.with_domain(domid, |d| *d)
    }
    fn domain_info_list(&self, first: DomId, max: u32) -> Result<Vec<DomainInfo>, CtrlError> {
        Ok(lock(&self.state)
            .domains
            .range(first..)
            .take(max as usize)
            .map(|(_, d)| *d)
            .collect())
    }
    fn create_domain(&self, c: &CreateDomain) -> Result<DomId, CtrlError> {
        let mut s = lock(&self.state);
        let domid = if c.domid != 0 {
            if s.domains.contains_key(&c.domid) {
                return Err(errno(libc::EEXIST));
            }
            c.domid
        } else {
            (1..crate::abi::xen::DOMID_FIRST_RESERVED)
                .find(|d| !s.domains.contains_key(d))
                .ok_or(errno(libc::ENOMEM))?
        };
        s.domains.insert(
            domid,
            DomainInfo {
                domid,
                flags: crate::abi::domctl::dominf::PAUSED,
                max_vcpu_id: c.max_vcpus.saturating_sub(1),
                handle: c.handle,
                ..Default::default()
            },
        );
        Ok(domid)
    }
    fn destroy_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        lock(&self.state)
            .domains
            .remove(&domid)
            .map(|_| ())
            .ok_or(CtrlError::NoSuchDomain(domid))
    }
    fn pause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        use crate::abi::domctl::dominf::*;
        self.with_domain(domid, |d| d.flags = (d.flags | PAUSED) & !RUNNING)
    }
    fn unpause_domain(&self, domid: DomId) -> Result<(), CtrlError> {
        use crate::abi::domctl::dominf::*;
        self.with_domain(domid, |d| d.flags = (d.flags & !PAUSED) | RUNNING)
    }
    fn set_max_mem(&self, domid: DomId, max_memkb: u64) -> Result<(), CtrlError> {
        self.with_domain(domid, |d| d.max_pages = max_memkb / 4)
    }
    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<(), CtrlError> {
        self.with_domain(domid, |d| {
            d.max_vcpu_id = max.saturating_sub(1);
            d.nr_online_vcpus = max;
        })
    }
    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<(), CtrlError> {
        if bits != 32 && bits != 64 {
            return Err(errno(libc::EINVAL));
        }
        self.with_domain(domid, |_| ())?;
        lock(&self.state).address_size.insert(domid, bits);
        Ok(())
    }
    fn populate_physmap(
        &self,
        domid: DomId,
        extent_order: u32,
        gfns: &[XenPfn],
    ) -> Result<usize, CtrlError> {
        let pages = (gfns.len() as u64) << extent_order;
        self.with_domain(domid, |d| {
            if d.max_pages != 0 && d.tot_pages + pages > d.max_pages {
                return Err(errno(libc::ENOMEM));
            }
            d.tot_pages += pages;
            Ok(())
        })??;
        lock(&self.state)
            .populated
            .entry(domid)
            .or_default()
            .extend_from_slice(gfns);
        Ok(gfns.len())
    }
    fn hvm_param_get(&self, domid: DomId, index: u32) -> Result<u64, CtrlError> {
        self.with_domain(domid, |_| ())?;
        Ok(lock(&self.state)
            .hvm_params
            .get(&(domid, index))
            .copied()
            .unwrap_or(0))
    }
    fn hvm_param_set(&self, domid: DomId, index: u32, value: u64) -> Result<(), CtrlError> {
        self.with_domain(domid, |_| ())?;
        lock(&self.state).hvm_params.insert((domid, index), value);
        Ok(())
    }
    fn evtchn_alloc_unbound(&self, domid: DomId, _remote: DomId) -> Result<EvtchnPort, CtrlError> {
        self.with_domain(domid, |_| ())?;
        let mut s = lock(&self.state);
        s.next_port += 1;
        Ok(s.next_port)
    }
    fn gnttab_query_size(&self, domid: DomId) -> Result<(u32, u32), CtrlError> {
        self.with_domain(domid, |_| (1, 64))
    }
    fn set_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
        ctx: &crate::abi::arch::arm::VcpuGuestContext,
    ) -> Result<(), CtrlError> {
        let max = self.with_domain(domid, |d| d.max_vcpu_id)?;
        if vcpu > max {
            return Err(errno(libc::EINVAL));
        }
        lock(&self.state).vcpus.insert((domid, vcpu), *ctx);
        Ok(())
    }
    fn get_vcpu_context(
        &self,
        domid: DomId,
        vcpu: u32,
    ) -> Result<crate::abi::arch::arm::VcpuGuestContext, CtrlError> {
        self.with_domain(domid, |_| ())?;
        Ok(lock(&self.state)
            .vcpus
            .get(&(domid, vcpu))
            .copied()
            .unwrap_or_default())
    }
    /// Like Xen: the map is cut to the host's CPUs; an empty hard affinity, a
    /// vCPU beyond the domain's, or an unknown domain is an error.
    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpus: &[u32],
    ) -> Result<Vec<u32>, CtrlError> {
        let info = self.domain_info(domid)?;
        if vcpu > info.max_vcpu_id {
            return Err(errno(libc::EINVAL));
        }
        let mut effective: Vec<u32> = cpus
            .iter()
            .copied()
            .filter(|&c| c < self.physinfo.nr_cpus)
            .collect();
        effective.sort_unstable();
        effective.dedup();
        if effective.is_empty() && kind == AffinityKind::Hard {
            return Err(errno(libc::EINVAL));
        }
        lock(&self.state)
            .affinity
            .insert((domid, vcpu, kind), effective.clone());
        Ok(effective)
    }
    fn get_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
    ) -> Result<Vec<u32>, CtrlError> {
        self.with_domain(domid, |_| ())?;
        Ok(lock(&self.state)
            .affinity
            .get(&(domid, vcpu, kind))
            .cloned()
            .unwrap_or_else(|| (0..self.physinfo.nr_cpus).collect()))
    }
    /// vCPUs below the domain's online count are online, blocked, on CPU 0.
    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo, CtrlError> {
        let info = self.domain_info(domid)?;
        if vcpu > info.max_vcpu_id {
            return Err(errno(libc::ESRCH));
        }
        Ok(VcpuInfo {
            vcpu,
            online: vcpu < info.nr_online_vcpus,
            blocked: vcpu < info.nr_online_vcpus,
            ..Default::default()
        })
    }
}

/// A fake event channel switchboard: each [`FakeEvtchn`] endpoint is one
/// domain's `/dev/xen/evtchn`; notifying a bound port makes its peer pending.
#[derive(Debug, Default)]
pub struct FakeEvtchnHub {
    state: Mutex<HubState>,
}

#[derive(Debug, Default)]
struct HubState {
    next_port: HashMap<DomId, EvtchnPort>,
    /// (domain, port) -> (peer domain, peer port), when bound.
    links: HashMap<(DomId, EvtchnPort), Option<(DomId, EvtchnPort)>>,
    /// Unbound ports: (domain, port) -> domain allowed to bind.
    unbound: HashMap<(DomId, EvtchnPort), DomId>,
    pending: HashMap<DomId, VecDeque<EvtchnPort>>,
    virqs: HashMap<(DomId, u32), EvtchnPort>,
}

impl HubState {
    fn alloc(&mut self, dom: DomId) -> EvtchnPort {
        let p = self.next_port.entry(dom).or_insert(0);
        *p += 1;
        *p
    }
}

impl FakeEvtchnHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// The `/dev/xen/evtchn` of domain `domid`.
    pub fn endpoint(self: &Arc<Self>, domid: DomId) -> FakeEvtchn {
        FakeEvtchn {
            hub: Arc::clone(self),
            domid,
        }
    }
    /// Raises a virtual IRQ in `domid` (e.g. VIRQ_DOM_EXC).
    pub fn raise_virq(&self, domid: DomId, virq: u32) {
        let mut s = lock(&self.state);
        if let Some(&port) = s.virqs.get(&(domid, virq)) {
            s.pending.entry(domid).or_default().push_back(port);
        }
    }
}

/// One domain's view of a [`FakeEvtchnHub`].
#[derive(Debug, Clone)]
pub struct FakeEvtchn {
    hub: Arc<FakeEvtchnHub>,
    domid: DomId,
}

impl EventChannels for FakeEvtchn {
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EvtchnError> {
        let mut s = lock(&self.hub.state);
        match s.unbound.get(&(remote, remote_port)) {
            Some(&allowed) if allowed == self.domid => {}
            _ => {
                return Err(EvtchnError::Fake(
                    "remote port is not unbound for this domain",
                ))
            }
        }
        s.unbound.remove(&(remote, remote_port));
        let local = s.alloc(self.domid);
        s.links
            .insert((self.domid, local), Some((remote, remote_port)));
        s.links
            .insert((remote, remote_port), Some((self.domid, local)));
        Ok(local)
    }
    fn bind_unbound_port(&self, remote: DomId) -> Result<EvtchnPort, EvtchnError> {
        let mut s = lock(&self.hub.state);
        let port = s.alloc(self.domid);
        s.unbound.insert((self.domid, port), remote);
        s.links.insert((self.domid, port), None);
        Ok(port)
    }
    fn bind_virq(&self, virq: u32) -> Result<EvtchnPort, EvtchnError> {
        let mut s = lock(&self.hub.state);
        if s.virqs.contains_key(&(self.domid, virq)) {
            return Err(EvtchnError::Fake("virq already bound"));
        }
        let port = s.alloc(self.domid);
        s.virqs.insert((self.domid, virq), port);
        s.links.insert((self.domid, port), None);
        Ok(port)
    }
    fn unbind(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        let mut s = lock(&self.hub.state);
        match s.links.remove(&(self.domid, port)) {
            Some(Some(peer)) => {
                // The peer's port stays allocated but is now unconnected.
                s.links.insert(peer, None);
            }
            Some(None) => {}
            None => return Err(EvtchnError::Fake("port not bound")),
        }
        s.unbound.remove(&(self.domid, port));
        s.virqs.retain(|_, p| *p != port);
        Ok(())
    }
    fn notify(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        let mut s = lock(&self.hub.state);
        match s.links.get(&(self.domid, port)) {
            Some(Some((peer, peer_port))) => {
                let (peer, peer_port) = (*peer, *peer_port);
                s.pending.entry(peer).or_default().push_back(peer_port);
                Ok(())
            }
            Some(None) => Ok(()),
            None => Err(EvtchnError::Fake("port not bound")),
        }
    }
    fn pending(&self) -> Result<Option<EvtchnPort>, EvtchnError> {
        Ok(lock(&self.hub.state)
            .pending
            .get_mut(&self.domid)
            .and_then(|q| q.pop_front()))
    }
    fn unmask(&self, _port: EvtchnPort) -> Result<(), EvtchnError> {
        Ok(())
    }
}

/// A fake grant table: a "guest" registers pages of its memory under grant
/// references; a backend maps them through [`GrantMapper`] and sees the same
/// bytes.
#[derive(Debug, Default)]
pub struct FakeGrants {
    table: Mutex<HashMap<(DomId, GrantRef), (MappedMemory, bool)>>,
    /// Calls of [`GrantPageMapper::map_pages`] that mapped something (one
    /// gntdev ioctl and `mmap` each on the real device).
    page_map_calls: std::sync::atomic::AtomicUsize,
    /// Pages from [`GrantPageMapper::map_pages`] still mapped.
    live_pages: Arc<std::sync::atomic::AtomicUsize>,
}

/// A page from [`FakeGrants`]' [`GrantPageMapper::map_pages`]; counted as
/// mapped until dropped.
#[derive(Debug)]
pub struct FakeGrantPage {
    mem: MappedMemory,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::ops::Deref for FakeGrantPage {
    type Target = MappedMemory;
    fn deref(&self) -> &MappedMemory {
        &self.mem
    }
}

impl Drop for FakeGrantPage {
    fn drop(&mut self) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A mapping from [`FakeGrants`].
#[derive(Debug)]
pub struct FakeGrantMapping(MappedMemory);

impl std::ops::Deref for FakeGrantMapping {
    type Target = MappedMemory;
    fn deref(&self) -> &MappedMemory {
        &self.0
    }
}

impl FakeGrants {
    pub fn new() -> Self {
        Self::default()
    }
    /// Grants page `page` of `mem` (owned by `domid`) under `gref`.
    pub fn grant(
        &self,
        domid: DomId,
        gref: GrantRef,
        mem: &MappedMemory,
        page: usize,
        writable: bool,
    ) -> Result<(), crate::mem::MemError> {
        let view = mem.sub(page * XEN_PAGE_SIZE, XEN_PAGE_SIZE)?;
        lock(&self.table).insert((domid, gref), (view, writable));
        Ok(())
    }
    /// Ends a grant. Pages already mapped stay mapped (as in Xen, where a
    /// guest cannot end access to a grant a backend has mapped); new mappings
    /// of it fail.
    pub fn revoke(&self, domid: DomId, gref: GrantRef) {
        lock(&self.table).remove(&(domid, gref));
    }
    /// Successful [`GrantPageMapper::map_pages`] calls so far.
    pub fn page_map_calls(&self) -> usize {
        self.page_map_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Pages from [`GrantPageMapper::map_pages`] not yet dropped.
    pub fn live_pages(&self) -> usize {
        self.live_pages.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl GrantPageMapper for FakeGrants {
    type Page = FakeGrantPage;
    /// All or nothing, like gntdev: every ref must be granted by `domid` (and
    /// writable when asked).
    fn map_pages(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<Vec<FakeGrantPage>, GntdevError> {
        use std::sync::atomic::Ordering;
        if refs.is_empty() {
            return Err(GntdevError::Empty);
        }
        let t = lock(&self.table);
        let mut pages = Vec::with_capacity(refs.len());
        for r in refs {
            let (mem, w) = t
                .get(&(domid, *r))
                .ok_or(GntdevError::Fake("no such grant"))?;
            if writable && !w {
                return Err(GntdevError::Fake("grant is read-only"));
            }
            pages.push(mem.clone());
        }
        self.page_map_calls.fetch_add(1, Ordering::Relaxed);
        self.live_pages.fetch_add(pages.len(), Ordering::Relaxed);
        Ok(pages
            .into_iter()
            .map(|mem| FakeGrantPage {
                mem,
                live: Arc::clone(&self.live_pages),
            })
            .collect())
    }
}

impl GrantMapper for FakeGrants {
    type Mapping = FakeGrantMapping;
    fn map_grants(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<FakeGrantMapping, GntdevError> {
        if refs.is_empty() {
            return Err(GntdevError::Empty);
        }
        let t = lock(&self.table);
        let pages: Vec<&(MappedMemory, bool)> = refs
            .iter()
            .map(|r| {
                t.get(&(domid, *r))
                    .ok_or(GntdevError::Fake("no such grant"))
            })
            .collect::<Result<_, _>>()?;
        if writable && pages.iter().any(|(_, w)| !w) {
            return Err(GntdevError::Fake("grant is read-only"));
        }
        if pages.len() == 1 {
            return Ok(FakeGrantMapping(pages[0].0.clone()));
        }
        // Several grants: copy-free only when they are adjacent pages of one
        // region; the fake requires that (real gntdev does not).
        let first = &pages[0].0;
        for (i, (m, _)) in pages.iter().enumerate() {
            if m.addr() != first.addr() + i * XEN_PAGE_SIZE {
                return Err(GntdevError::Fake(
                    "fake grants must be adjacent pages of one region",
                ));
            }
        }
        first
            .widen(refs.len() * XEN_PAGE_SIZE)
            .map(FakeGrantMapping)
            .map_err(|_| GntdevError::Fake("grants run past their region"))
    }
}

/// A fake foreign-memory mapper: frames of a domain's fake RAM.
#[derive(Debug, Default)]
pub struct FakeForeignMemory {
    ram: Mutex<HashMap<DomId, (XenPfn, MappedMemory)>>,
}

impl FakeForeignMemory {
    pub fn new() -> Self {
        Self::default()
    }
    /// Gives `domid` fake RAM starting at frame `base_gfn`.
    pub fn add_ram(&self, domid: DomId, base_gfn: XenPfn, mem: MappedMemory) {
        lock(&self.ram).insert(domid, (base_gfn, mem));
    }
}

impl ForeignMemory for FakeForeignMemory {
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        _writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        let ram = lock(&self.ram);
        let frame_err = |index: usize| PrivcmdError::Frame {
            domid,
            index,
            gfn: gfns.get(index).copied().unwrap_or(0),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        };
        let (base, mem) = ram.get(&domid).ok_or_else(|| frame_err(0))?;
        let first = *gfns.first().ok_or_else(|| frame_err(0))?;
        for (i, g) in gfns.iter().enumerate() {
            if *g != first + i as u64 || *g < *base {
                return Err(frame_err(i));
            }
        }
        let off = ((first - base) as usize) * XEN_PAGE_SIZE;
        mem.sub(off, gfns.len() * XEN_PAGE_SIZE)
            .map_err(|_| frame_err(gfns.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_console_reads_the_whole_ring_in_chunks_and_clear_empties_it() {
        let xen = FakeXen::new();
        // Longer than two chunks, so that the incremental index is followed.
        let text: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        xen.console_write(&text);
        assert_eq!(xen.read_console(false).expect("read"), text);
        // Without clear, a second read sees the same bytes; with it, all of
        // them too (not only the first chunk), and then the ring is empty.
        assert_eq!(xen.read_console(true).expect("read and clear"), text);
        assert!(xen.read_console(false).expect("read").is_empty());
        xen.console_write(b"(XEN) after the clear\n");
        assert_eq!(
            xen.read_console(false).expect("read"),
            b"(XEN) after the clear\n"
        );
    }

    #[test]
    fn evtchn_hub_connects_unbound_and_interdomain_ports() {
        let hub = FakeEvtchnHub::new();
        let (dom0, dom1) = (hub.endpoint(0), hub.endpoint(1));
        let unbound = dom1.bind_unbound_port(0).expect("unbound");
        // Only the named remote domain may bind.
        assert!(hub.endpoint(2).bind_interdomain(1, unbound).is_err());
        let local = dom0.bind_interdomain(1, unbound).expect("bind");
        dom0.notify(local).expect("notify");
        assert_eq!(dom1.pending().expect("pending"), Some(unbound));
        assert_eq!(dom1.pending().expect("pending"), None);
        dom1.notify(unbound).expect("notify back");
        assert_eq!(dom0.pending().expect("pending"), Some(local));
        dom0.unbind(local).expect("unbind");
        assert!(dom0.notify(local).is_err());
    }

    #[test]
    fn virq_is_delivered_to_its_port() {
        let hub = FakeEvtchnHub::new();
        let dom0 = hub.endpoint(0);
        let port = dom0.bind_virq(crate::abi::xen::VIRQ_DOM_EXC).expect("virq");
        hub.raise_virq(0, crate::abi::xen::VIRQ_DOM_EXC);
        assert_eq!(dom0.pending().expect("pending"), Some(port));
    }

    #[test]
    fn granted_pages_are_shared_with_the_mapper() {
        let guest_ram = MappedMemory::anonymous(4 * XEN_PAGE_SIZE).expect("ram");
        let grants = FakeGrants::new();
        grants.grant(5, 8, &guest_ram, 1, true).expect("grant");
        grants.grant(5, 9, &guest_ram, 2, false).expect("grant");
        let m = grants.map_grants(5, &[8], true).expect("map");
        m.write_u32(0, 0x1234).expect("write");
        assert_eq!(guest_ram.read_u32(XEN_PAGE_SIZE).expect("read"), 0x1234);
        assert!(grants.map_grants(5, &[9], true).is_err(), "read-only grant");
        let both = grants.map_grants(5, &[8, 9], false).expect("map two");
        assert_eq!(both.len(), 2 * XEN_PAGE_SIZE);
        assert!(
            grants.map_grants(5, &[9, 8], false).is_err(),
            "not adjacent"
        );
        assert!(grants.map_grants(6, &[8], false).is_err(), "wrong domain");
    }

    #[test]
    fn fake_xen_creates_lists_and_destroys_domains() {
        let x = FakeXen::new();
        let d = x
            .create_domain(&CreateDomain {
                max_vcpus: 1,
                ..Default::default()
            })
            .expect("create");
        assert_eq!(d, 1);
        assert!(x.domain_info(d).expect("info").paused());
        x.unpause_domain(d).expect("unpause");
        assert!(x.domain_info(d).expect("info").running());
        let ids: Vec<_> = x
            .domain_info_list(0, 10)
            .expect("list")
            .iter()
            .map(|i| i.domid)
            .collect();
        assert_eq!(ids, vec![0, 1]);
        x.destroy_domain(d).expect("destroy");
        assert!(matches!(x.domain_info(d), Err(CtrlError::NoSuchDomain(1))));
    }

    #[test]
    fn fake_xen_keeps_vcpu_contexts() {
        let x = FakeXen::new();
        let d = x
            .create_domain(&CreateDomain {
                max_vcpus: 2,
                ..Default::default()
            })
            .expect("create");
        let mut ctx = crate::abi::arch::arm::VcpuGuestContext::default();
        ctx.user_regs.pc64 = 0x4008_0000;
        x.set_vcpu_context(d, 1, &ctx).expect("set");
        assert_eq!(
            x.get_vcpu_context(d, 1).expect("get").user_regs.pc64,
            0x4008_0000
        );
        assert!(
            x.set_vcpu_context(d, 2, &ctx).is_err(),
            "vcpu beyond max_vcpus"
        );
    }

    #[test]
    fn fake_foreign_memory_maps_contiguous_frames_only() {
        let f = FakeForeignMemory::new();
        f.add_ram(
            3,
            0x40000,
            MappedMemory::anonymous(4 * XEN_PAGE_SIZE).expect("ram"),
        );
        let m = f.map_foreign(3, &[0x40001, 0x40002], true).expect("map");
        assert_eq!(m.len(), 2 * XEN_PAGE_SIZE);
        assert!(f.map_foreign(3, &[0x40001, 0x40003], true).is_err());
        assert!(
            f.map_foreign(3, &[0x40003, 0x40004], true).is_err(),
            "past the end"
        );
        assert!(f.map_foreign(4, &[0x40000], true).is_err());
    }
}
