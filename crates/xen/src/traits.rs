//! One trait per hypervisor facility, implemented by the real devices and by the
//! fakes in `fake` (feature `fake`), so that xenstored and the backends can be tested
//! without Xen. Domain control is [`crate::ctrl::DomainControl`].

use crate::abi::xen::{DomId, EvtchnPort, GrantRef, XenPfn};
use crate::evtchn::EvtchnError;
use crate::gntdev::GntdevError;
use crate::mem::MappedMemory;
use crate::privcmd::{Privcmd, PrivcmdError};

/// Event channels of this domain (`/dev/xen/evtchn`).
pub trait EventChannels {
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, EvtchnError>;
    fn bind_unbound_port(&self, remote: DomId) -> Result<EvtchnPort, EvtchnError>;
    fn bind_virq(&self, virq: u32) -> Result<EvtchnPort, EvtchnError>;
    fn unbind(&self, port: EvtchnPort) -> Result<(), EvtchnError>;
    fn notify(&self, port: EvtchnPort) -> Result<(), EvtchnError>;
    /// The next pending (and now masked) port, if any.
    fn pending(&self) -> Result<Option<EvtchnPort>, EvtchnError>;
    fn unmask(&self, port: EvtchnPort) -> Result<(), EvtchnError>;
}

/// Mapping other domains' grants (`/dev/xen/gntdev`).
pub trait GrantMapper {
    /// The mapped pages; unmapped when dropped.
    type Mapping: std::ops::Deref<Target = MappedMemory> + Send + std::fmt::Debug;
    /// Maps `refs` of `domid` contiguously.
    fn map_grants(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<Self::Mapping, GntdevError>;
}

/// Mapping other domains' grants page by page, all of a call at once (one
/// ioctl and one `mmap` on gntdev), each page kept as long as it is needed
/// (persistent grants).
pub trait GrantPageMapper {
    /// One mapped page; unmapped when it (and every other page mapped in the
    /// same call) is dropped.
    type Page: std::ops::Deref<Target = MappedMemory> + Send + Sync + std::fmt::Debug;
    /// Maps `refs` of `domid`, one page each, in the order of `refs`; fails as a
    /// whole when one of them cannot be mapped.
    fn map_pages(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<Vec<Self::Page>, GntdevError>;
}

/// Mapping other domains' frames by number (`/dev/xen/privcmd`).
pub trait ForeignMemory {
    /// Maps `gfns` of `domid` contiguously, failing if any frame fails.
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError>;
}

impl ForeignMemory for Privcmd {
    fn map_foreign(
        &self,
        domid: DomId,
        gfns: &[XenPfn],
        writable: bool,
    ) -> Result<MappedMemory, PrivcmdError> {
        Privcmd::map_foreign(self, domid, gfns, writable)
    }
}
