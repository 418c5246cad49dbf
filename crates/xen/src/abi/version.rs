//! `__HYPERVISOR_xen_version` sub-commands and their argument types
//! (xen/include/public/version.h).

use super::unsafe_impl_pod;

/// `XENVER_version`: returns `(major << 16) | minor`, no argument.
pub const XENVER_VERSION: u64 = 0;
/// `XENVER_extraversion`: fills a `xen_extraversion_t` (16 bytes).
pub const XENVER_EXTRAVERSION: u64 = 1;
/// `XENVER_compile_info`: fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u64 = 2;
/// `XENVER_capabilities`: fills a `xen_capabilities_info_t` (1024 bytes).
pub const XENVER_CAPABILITIES: u64 = 3;
/// `XENVER_changeset`: fills a `xen_changeset_info_t` (64 bytes).
pub const XENVER_CHANGESET: u64 = 4;
/// `XENVER_platform_parameters`: fills a [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
/// `XENVER_get_features`: fills a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u64 = 6;
/// `XENVER_pagesize`: returns the page size, no argument.
pub const XENVER_PAGESIZE: u64 = 7;
/// `XENVER_commandline`: fills a `xen_commandline_t` (1024 bytes).
pub const XENVER_COMMANDLINE: u64 = 9;

/// `XENVER_build_id`: fills a `struct xen_build_id` (a `u32` length, then that
/// many bytes); returns the number of bytes written.
pub const XENVER_BUILD_ID: u64 = 10;

/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// `sizeof(xen_commandline_t)`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// `struct xen_compile_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenCompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}

/// `struct xen_platform_parameters` (`xen_ulong_t` is 64 bits on arm64 and x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenPlatformParameters {
    pub virt_start: u64,
}

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenFeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}

unsafe_impl_pod!(XenCompileInfo, XenPlatformParameters, XenFeatureInfo);
