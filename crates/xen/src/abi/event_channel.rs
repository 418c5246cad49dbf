//! `__HYPERVISOR_event_channel_op` (xen/include/public/event_channel.h).

use super::unsafe_impl_pod;
use super::xen::{DomId, EvtchnPort};

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ: u64 = 1;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE: u64 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND: u64 = 4;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    pub dom: DomId,
    pub remote_dom: DomId,
    pub port: EvtchnPort,
}

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: DomId,
    pub _pad: u16,
    pub remote_port: EvtchnPort,
    pub local_port: EvtchnPort,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: EvtchnPort,
}

/// `struct evtchn_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnClose {
    pub port: EvtchnPort,
}

/// `struct evtchn_send`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnSend {
    pub port: EvtchnPort,
}

unsafe_impl_pod!(
    EvtchnAllocUnbound,
    EvtchnBindInterdomain,
    EvtchnBindVirq,
    EvtchnClose,
    EvtchnSend
);
