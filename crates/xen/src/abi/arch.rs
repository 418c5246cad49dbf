//! Structs whose layout or meaning is architecture specific:
//! xen/include/public/arch-arm.h and xen/include/public/arch-x86/xen.h.
//!
//! Both twins are compiled on every host so that the layout tests can check the
//! arm64 ones from an x86_64 build machine; [`ArchDomainConfig`] is the one of the
//! target architecture.

/// Arm (xen/include/public/arch-arm.h).
pub mod arm {
    use crate::abi::unsafe_impl_pod;

    /// `XEN_DOMCTL_CONFIG_GIC_NATIVE`.
    pub const GIC_NATIVE: u8 = 0;
    /// `XEN_DOMCTL_CONFIG_GIC_V2`.
    pub const GIC_V2: u8 = 1;
    /// `XEN_DOMCTL_CONFIG_GIC_V3`.
    pub const GIC_V3: u8 = 2;
    /// `XEN_DOMCTL_CONFIG_TEE_NONE`.
    pub const TEE_NONE: u16 = 0;

    /// `struct xen_arch_domainconfig` (arm). Byte 1 is `sve_vl` from domctl 0x16
    /// (Xen 4.18) on; in 4.17 it is padding and must be zero.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ArchDomainConfig {
        pub gic_version: u8,
        pub sve_vl: u8,
        pub tee_type: u16,
        pub nr_spis: u32,
        pub clock_frequency: u32,
    }

    /// `struct vcpu_guest_core_regs` (arm): x0..x30 (or the AArch32 banked
    /// registers in the same slots), pc, cpsr, the SPSRs and EL0/EL1 stack state.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VcpuGuestCoreRegs {
        /// x0..x30.
        pub x: [u64; 31],
        /// `pc64` (ELR_EL2).
        pub pc64: u64,
        /// SPSR_EL2.
        pub cpsr: u64,
        /// `spsr_el1` (AArch64) / `spsr_svc` (AArch32).
        pub spsr_el1: u64,
        pub spsr_fiq: u32,
        pub spsr_irq: u32,
        pub spsr_und: u32,
        pub spsr_abt: u32,
        pub sp_el0: u64,
        pub sp_el1: u64,
        pub elr_el1: u64,
    }

    impl Default for VcpuGuestCoreRegs {
        fn default() -> Self {
            <Self as crate::abi::Pod>::zeroed()
        }
    }

    /// `VGCF_online` (arch-arm.h).
    pub const VGCF_ONLINE: u32 = 1 << 0;

    /// `struct vcpu_guest_context` (arm).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct VcpuGuestContext {
        pub flags: u32,
        pub _pad: u32,
        pub user_regs: VcpuGuestCoreRegs,
        pub sctlr: u64,
        pub ttbcr: u64,
        pub ttbr0: u64,
        pub ttbr1: u64,
    }

    /// `PSR_MODE_EL1h` (arch-arm.h).
    pub const PSR_MODE_EL1H: u64 = 0x05;
    /// `PSR_FIQ_MASK`.
    pub const PSR_FIQ_MASK: u64 = 1 << 6;
    /// `PSR_IRQ_MASK`.
    pub const PSR_IRQ_MASK: u64 = 1 << 7;
    /// `PSR_ABT_MASK`.
    pub const PSR_ABT_MASK: u64 = 1 << 8;
    /// `PSR_DBG_MASK` (arm64).
    pub const PSR_DBG_MASK: u64 = 1 << 9;
    /// `PSR_GUEST64_INIT`: EL1h with A, I and F masked (0x1c5).
    pub const PSR_GUEST64_INIT: u64 = PSR_ABT_MASK | PSR_FIQ_MASK | PSR_IRQ_MASK | PSR_MODE_EL1H;

    unsafe_impl_pod!(ArchDomainConfig, VcpuGuestCoreRegs, VcpuGuestContext);
}

/// x86 (xen/include/public/arch-x86/xen.h).
pub mod x86 {
    use crate::abi::unsafe_impl_pod;

    /// `struct xen_arch_domainconfig` (x86).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ArchDomainConfig {
        pub emulation_flags: u32,
        pub misc_flags: u32,
    }

    unsafe_impl_pod!(ArchDomainConfig);
}

#[cfg(target_arch = "aarch64")]
pub use arm::ArchDomainConfig;
#[cfg(not(target_arch = "aarch64"))]
pub use x86::ArchDomainConfig;
