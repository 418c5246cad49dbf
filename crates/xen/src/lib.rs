//! The Xen hypervisor interface for a Linux dom0.
//!
//! ABI definitions ([`abi`]), safe wrappers over the `/dev/xen` devices (one
//! module per device: [`privcmd`], [`hypercall`], [`evtchn`], [`gntdev`],
//! [`gntalloc`], [`xenbus_backend`]), domain control over privcmd ([`ctrl`]),
//! mapped memory with volatile access only ([`mem`]) and the shared-ring engine
//! ([`ring`]). A trait per facility ([`traits`], [`ctrl::DomainControl`]) lets
//! callers be unit-tested with the fakes in `fake` (feature `fake`). All of
//! rxen's `unsafe` code lives in this crate.
//!
//! Where to start:
//! - host and domains: [`XenCtrl::open`] then the [`DomainControl`] methods
//!   (`xen_version`, `physinfo`, `domain_info(_list)`, `create_domain`,
//!   `pause/unpause/destroy_domain`, `set_max_mem`, `populate_physmap`,
//!   `hvm_param_get/set`, `evtchn_alloc_unbound`, `set/get_vcpu_context`, ...);
//!   foreign frames through [`XenCtrl::privcmd`] ([`Privcmd::map_foreign`],
//!   [`Privcmd::map_resource`]).
//! - event channels: [`Evtchn`] (non-blocking, `AsRawFd` for mio) or any
//!   [`EventChannels`].
//! - grants: [`Gntdev::map_grant_refs`] (or any [`GrantMapper`]) in a backend,
//!   [`Gntalloc::share`] to offer pages; both give [`MappedMemory`].
//! - rings: [`FrontRing`]/[`BackRing`] over a [`MappedMemory`]; a
//!   [`RingError::Overflow`] means a hostile or broken peer: disconnect it.
//! - dom0 xenstored: [`XenbusBackend::evtchn`] and
//!   [`XenbusBackend::map_interface`].

pub mod abi;
mod clock;
pub mod ctrl;
pub mod evtchn;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod gntalloc;
pub mod gntdev;
pub mod hypercall;
mod ioctl;
pub mod mem;
pub mod privcmd;
pub mod ring;
pub mod tap;
pub mod traits;
pub mod xenbus_backend;

pub use clock::thread_cpu_time;
pub use ctrl::{AffinityKind, CtrlError, DomainControl, DomainInfo, PhysInfo, XenCtrl, XenVersion};
pub use evtchn::{Evtchn, EvtchnError};
pub use gntalloc::{Gntalloc, GntallocError, GrantShare};
pub use gntdev::{Gntdev, GntdevError, GrantMapping, GrantPage, GrantPiece};
pub use mem::{pread_exact_into, pwrite_all_from, FileImage, IoPiece, MappedMemory, MemError};
pub use privcmd::{Privcmd, PrivcmdError};
pub use ring::{BackRing, FrontRing, RingError};
pub use tap::{Tap, TapError, VirtioNetHdr};
pub use traits::{EventChannels, ForeignMemory, GrantMapper, GrantPageMapper};
pub use xenbus_backend::{XenbusBackend, XenbusBackendError};
