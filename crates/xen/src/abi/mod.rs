//! The hypervisor's and Linux's binary interfaces: `#[repr(C)]` structs and named
//! constants, each citing the header it comes from.
//!
//! Xen's public headers (`xen/include/public/*.h`, Xen 4.17 to 4.20) give the
//! hypercall structs; Linux's uapi headers (`include/uapi/xen/*.h`) give the ioctl
//! structs of the `/dev/xen` devices. Where a struct differs between the arm64 and
//! x86_64 ABIs, both twins are here ([`arch`]); where it differs between domctl
//! interface versions, each version has its own twin ([`domctl`]). The layout tests
//! in `crates/xen/tests/layout.rs` compare every struct with the C headers.

pub mod arch;
pub mod domctl;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod linux;
pub mod memory;
pub mod sysctl;
pub mod version;
pub mod xen;

/// Plain old data: a `#[repr(C)]` type made only of integers and arrays of
/// integers, for which every bit pattern is a valid value.
///
/// # Safety
/// Implement only for `#[repr(C)]` types whose fields are all integers, arrays of
/// integers or other `Pod` types (no references, pointers with meaning, `bool`,
/// enums or `char`), so that reading any bytes as the type is sound.
pub unsafe trait Pod: Copy + Send + Sync + 'static {
    /// An all-zero value.
    fn zeroed() -> Self {
        // SAFETY: by the trait's contract every bit pattern, including all zeroes,
        // is a valid value of `Self`.
        unsafe { std::mem::zeroed() }
    }
}

macro_rules! unsafe_impl_pod {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: `$t` is `#[repr(C)]` (or a primitive integer) made only of
            // integers and arrays of integers; every bit pattern is valid.
            unsafe impl $crate::abi::Pod for $t {}
        )*
    };
}
pub(crate) use unsafe_impl_pod;

unsafe_impl_pod!(u8, u16, u32, u64, i8, i16, i32, i64);

// SAFETY: an array of `Pod` elements has no padding between them and every bit
// pattern of each element is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// `_IOC_NONE`, the direction of every `/dev/xen` ioctl (include/uapi/asm-generic/ioctl.h;
/// the same value on arm64 and x86_64).
pub const IOC_NONE: u32 = 0;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;

/// Linux's `_IOC(dir, type, nr, size)` (include/uapi/asm-generic/ioctl.h).
pub const fn ioc(dir: u32, ty: u8, nr: u32, size: usize) -> u64 {
    ((dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)) as u64
}

/// Copies a C string out of a fixed-size byte array: up to the first NUL, lossily
/// decoded as UTF-8.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioc_matches_linux_encoding() {
        // IOCTL_EVTCHN_NOTIFY = _IOC(_IOC_NONE, 'E', 4, 4) = 0x00044504.
        assert_eq!(ioc(IOC_NONE, b'E', 4, 4), 0x0004_4504);
        // IOCTL_PRIVCMD_HYPERCALL = _IOC(_IOC_NONE, 'P', 0, 48) = 0x00305000.
        assert_eq!(ioc(IOC_NONE, b'P', 0, 48), 0x0030_5000);
    }

    #[test]
    fn c_string_stops_at_nul() {
        assert_eq!(c_string(b"-unstable\0garbage"), "-unstable");
        assert_eq!(c_string(b"abc"), "abc");
        assert_eq!(c_string(b"\0abc"), "");
    }
}
