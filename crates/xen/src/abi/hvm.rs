//! `__HYPERVISOR_hvm_op` parameters (xen/include/public/hvm/hvm_op.h, hvm/params.h).

use super::unsafe_impl_pod;
use super::xen::DomId;

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;

/// `HVM_PARAM_CALLBACK_IRQ`.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_MONITOR_RING_PFN` (the memaccess magic page).
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmParam {
    pub domid: DomId,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}

unsafe_impl_pod!(XenHvmParam);
