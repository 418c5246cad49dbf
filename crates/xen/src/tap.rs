//! `/dev/net/tun`: a TAP device for a NIC's packets in dom0 (Linux
//! include/uapi/linux/if_tun.h, drivers/net/tun.c). Not a Xen device, but a thin
//! ioctl wrapper, so it lives with the crate's other `unsafe` code.
//!
//! A TAP opened with [`IFF_VNET_HDR`] prefixes every frame read or written with a
//! [`VirtioNetHdr`] (include/uapi/linux/virtio_net.h), which carries the
//! checksum and segmentation offload metadata netif's flags and GSO extra carry.

use crate::ioctl::ioctl_with_ptr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Path of the TUN/TAP clone device.
pub const TUN_PATH: &str = "/dev/net/tun";

/// `IFF_TAP`: Ethernet frames.
pub const IFF_TAP: u16 = 0x0002;
/// `IFF_NO_PI`: no packet-information prefix.
pub const IFF_NO_PI: u16 = 0x1000;
/// `IFF_VNET_HDR`: frames carry a `struct virtio_net_hdr` prefix.
pub const IFF_VNET_HDR: u16 = 0x4000;
/// `IFF_MULTI_QUEUE`: each open file of the interface is one queue; the kernel
/// spreads the frames it sends by flow (a flow goes to the queue it last came
/// from, else by its hash).
pub const IFF_MULTI_QUEUE: u16 = 0x0100;

/// `TUN_F_CSUM`: the reader accepts frames with partial checksums.
pub const TUN_F_CSUM: u32 = 0x01;
/// `TUN_F_TSO4`.
pub const TUN_F_TSO4: u32 = 0x02;
/// `TUN_F_TSO6`.
pub const TUN_F_TSO6: u32 = 0x04;

/// `IFNAMSIZ` (the name's bytes plus its NUL).
pub const IFNAMSIZ: usize = 16;
/// `sizeof(struct ifreq)` on 64-bit Linux: the name and a 24-byte union.
const IFREQ_SIZE: usize = 40;
/// Offset of `ifr_flags` (a short) in `struct ifreq`.
const IFREQ_FLAGS_OFFSET: usize = IFNAMSIZ;

/// `_IOW(type, nr, size)` of include/uapi/asm-generic/ioctl.h (arm64 and x86
/// share it).
const fn iow(ty: u8, nr: u8, size: usize) -> u64 {
    const IOC_WRITE: u64 = 1;
    (IOC_WRITE << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}
/// `TUNSETIFF = _IOW('T', 202, int)`.
pub const TUNSETIFF: u64 = iow(b'T', 202, 4);
/// `TUNSETOFFLOAD = _IOW('T', 208, unsigned int)`.
pub const TUNSETOFFLOAD: u64 = iow(b'T', 208, 4);
/// `TUNSETVNETHDRSZ = _IOW('T', 216, int)`.
pub const TUNSETVNETHDRSZ: u64 = iow(b'T', 216, 4);

/// `SIOCGIFFLAGS` (include/uapi/linux/sockios.h).
pub const SIOCGIFFLAGS: u64 = 0x8913;
/// `SIOCSIFFLAGS`.
pub const SIOCSIFFLAGS: u64 = 0x8914;
/// `SIOCSIFHWADDR`.
pub const SIOCSIFHWADDR: u64 = 0x8924;
/// `SIOCGIFMTU`.
pub const SIOCGIFMTU: u64 = 0x8921;
/// `SIOCSIFMTU`.
pub const SIOCSIFMTU: u64 = 0x8922;
/// `SIOCGIFINDEX`.
pub const SIOCGIFINDEX: u64 = 0x8933;
/// `SIOCBRADDIF`: add an interface to a bridge.
pub const SIOCBRADDIF: u64 = 0x89a2;
/// `IFF_UP` (include/uapi/linux/if.h).
pub const IFF_UP: u16 = 0x1;
/// `ARPHRD_ETHER` (include/uapi/linux/if_arp.h): `sa_family` of an Ethernet address.
pub const ARPHRD_ETHER: u16 = 1;
/// The MAC Linux xen-netback gives its vif interfaces (`fe:ff:ff:ff:ff:ff`), so
/// that a bridge never takes a guest-facing port's address as its own.
pub const BACKEND_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// Offset of `ifr_ifindex` / `ifr_hwaddr` (the union) in `struct ifreq`.
const IFREQ_UNION_OFFSET: usize = IFNAMSIZ;

/// Errors of TAP operations.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("{0:?} is not a valid interface name")]
    BadName(String),
    #[error("cannot open {TUN_PATH}")]
    Open(#[source] io::Error),
    #[error("creating TAP {name} failed")]
    SetIff {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("setting offloads {flags:#x} failed")]
    Offload {
        flags: u32,
        #[source]
        source: io::Error,
    },
    #[error("{what} on {name} failed")]
    Link {
        what: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("setting the vnet header size {size} failed")]
    VnetHdrSize {
        size: usize,
        #[source]
        source: io::Error,
    },
}

/// A `struct ifreq` naming `name` with `flags`.
fn ifreq(name: &str, flags: u16) -> Result<[u8; IFREQ_SIZE], TapError> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(TapError::BadName(name.to_string()));
    }
    let mut r = [0u8; IFREQ_SIZE];
    r[..name.len()].copy_from_slice(name.as_bytes());
    r[IFREQ_FLAGS_OFFSET..IFREQ_FLAGS_OFFSET + 2].copy_from_slice(&flags.to_ne_bytes());
    Ok(r)
}

/// An open TAP device (non-blocking, close-on-exec). Dropping it removes the
/// interface (it is not made persistent).
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    vnet_hdr: bool,
    flags: u16,
}

impl Tap {
    /// Creates (or attaches to) TAP interface `name`, with a
    /// [`VirtioNetHdr`] prefix on every frame when `vnet_hdr`.
    pub fn open(name: &str, vnet_hdr: bool) -> Result<Self, TapError> {
        Self::open_flags(name, vnet_hdr, false)
    }

    /// As [`Tap::open`], with [`IFF_MULTI_QUEUE`]: the returned file is the
    /// interface's first queue, [`Tap::open_queue`] adds more.
    pub fn open_multi_queue(name: &str, vnet_hdr: bool) -> Result<Self, TapError> {
        Self::open_flags(name, vnet_hdr, true)
    }

    /// Another queue of this multi-queue interface (its own file, closed with
    /// it; the interface lives as long as any of its queues).
    pub fn open_queue(&self) -> Result<Self, TapError> {
        Self::open_flags(&self.name, self.vnet_hdr, self.flags & IFF_MULTI_QUEUE != 0)
    }

    fn open_flags(name: &str, vnet_hdr: bool, multi_queue: bool) -> Result<Self, TapError> {
        let mut flags = IFF_TAP | IFF_NO_PI;
        if vnet_hdr {
            flags |= IFF_VNET_HDR;
        }
        if multi_queue {
            flags |= IFF_MULTI_QUEUE;
        }
        let mut req = ifreq(name, flags)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(TUN_PATH)
            .map_err(TapError::Open)?;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is a buffer
        // of its size that lives through the call.
        unsafe { ioctl_with_ptr(&file, TUNSETIFF, req.as_mut_ptr()) }.map_err(|source| {
            TapError::SetIff {
                name: name.to_string(),
                source,
            }
        })?;
        // The kernel writes back the name it chose (the same, as we gave one).
        let end = req[..IFNAMSIZ].iter().position(|&b| b == 0).unwrap_or(0);
        let name = String::from_utf8_lossy(&req[..end]).into_owned();
        let tap = Tap {
            file,
            name,
            vnet_hdr,
            flags,
        };
        if vnet_hdr {
            tap.set_vnet_hdr_size(VIRTIO_NET_HDR_SIZE)?;
        }
        Ok(tap)
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames carry a [`VirtioNetHdr`].
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Which offloads frames read from the TAP may use (`TUN_F_*`).
    pub fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int);
        // no memory is passed. (By value, so not through `ioctl_with_ptr`.)
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                TUNSETOFFLOAD as _,
                libc::c_ulong::from(flags),
            )
        };
        if rc < 0 {
            return Err(TapError::Offload {
                flags,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn set_vnet_hdr_size(&self, size: usize) -> Result<(), TapError> {
        let mut n: libc::c_int = size as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer, which points
        // at a live local for the duration of the call.
        unsafe { ioctl_with_ptr(&self.file, TUNSETVNETHDRSZ, &mut n) }
            .map_err(|source| TapError::VnetHdrSize { size, source })?;
        Ok(())
    }

    /// The device file: read one frame per `read`, write one per `write`.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Sets the interface's own MAC (not the guest's: frames keep theirs).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), TapError> {
        let mut req = ifreq(&self.name, 0)?;
        // struct sockaddr: sa_family, then the address bytes.
        req[IFREQ_UNION_OFFSET..IFREQ_UNION_OFFSET + 2]
            .copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        req[IFREQ_UNION_OFFSET + 2..IFREQ_UNION_OFFSET + 8].copy_from_slice(&mac);
        net_ioctl(SIOCSIFHWADDR, &mut req, "setting the MAC", &self.name)
    }

    /// Brings the interface up (`IFF_UP`), keeping its other flags.
    pub fn set_up(&self) -> Result<(), TapError> {
        let mut req = ifreq(&self.name, 0)?;
        net_ioctl(SIOCGIFFLAGS, &mut req, "reading the flags", &self.name)?;
        let flags = u16::from_ne_bytes([req[IFREQ_FLAGS_OFFSET], req[IFREQ_FLAGS_OFFSET + 1]]);
        req[IFREQ_FLAGS_OFFSET..IFREQ_FLAGS_OFFSET + 2]
            .copy_from_slice(&(flags | IFF_UP).to_ne_bytes());
        net_ioctl(SIOCSIFFLAGS, &mut req, "setting the link up", &self.name)
    }

    /// Sets the interface's MTU (`SIOCSIFMTU`).
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TapError> {
        let mut req = ifreq(&self.name, 0)?;
        let v = libc::c_int::try_from(mtu).unwrap_or(libc::c_int::MAX);
        req[IFREQ_UNION_OFFSET..IFREQ_UNION_OFFSET + 4].copy_from_slice(&v.to_ne_bytes());
        net_ioctl(SIOCSIFMTU, &mut req, "setting the MTU", &self.name)
    }

    /// Adds the interface to bridge `bridge` (`SIOCBRADDIF`). Closing the TAP
    /// removes the interface, and with it the bridge port.
    pub fn add_to_bridge(&self, bridge: &str) -> Result<(), TapError> {
        let mut req = ifreq(&self.name, 0)?;
        net_ioctl(
            SIOCGIFINDEX,
            &mut req,
            "reading the interface index",
            &self.name,
        )?;
        let index: [u8; 4] = [
            req[IFREQ_UNION_OFFSET],
            req[IFREQ_UNION_OFFSET + 1],
            req[IFREQ_UNION_OFFSET + 2],
            req[IFREQ_UNION_OFFSET + 3],
        ];
        let mut br = ifreq(bridge, 0)?;
        br[IFREQ_UNION_OFFSET..IFREQ_UNION_OFFSET + 4].copy_from_slice(&index);
        net_ioctl(SIOCBRADDIF, &mut br, "adding to the bridge", bridge)
    }
}

/// The MTU of interface `name` (`SIOCGIFMTU`), e.g. a bridge's.
pub fn interface_mtu(name: &str) -> Result<u32, TapError> {
    let mut req = ifreq(name, 0)?;
    net_ioctl(SIOCGIFMTU, &mut req, "reading the MTU", name)?;
    let v = libc::c_int::from_ne_bytes([
        req[IFREQ_UNION_OFFSET],
        req[IFREQ_UNION_OFFSET + 1],
        req[IFREQ_UNION_OFFSET + 2],
        req[IFREQ_UNION_OFFSET + 3],
    ]);
    Ok(u32::try_from(v).unwrap_or(0))
}

/// An interface ioctl on a throwaway datagram socket (as `ip link` does).
fn net_ioctl(
    request: u64,
    req: &mut [u8; IFREQ_SIZE],
    what: &'static str,
    name: &str,
) -> Result<(), TapError> {
    let err = |source| TapError::Link {
        what,
        name: name.to_string(),
        source,
    };
    // SAFETY: plain socket(2); the returned descriptor is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: the interface ioctls read and write one `struct ifreq`; `req` is a
    // buffer of its size that lives through the call.
    unsafe { ioctl_with_ptr(&sock, request, req.as_mut_ptr()) }.map_err(err)?;
    Ok(())
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// `sizeof(struct virtio_net_hdr)`.
pub const VIRTIO_NET_HDR_SIZE: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum from `csum_start`, stored at
/// `csum_start + csum_offset`.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`.
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr` (a TAP uses native byte order unless told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    pub fn to_bytes(self) -> [u8; VIRTIO_NET_HDR_SIZE] {
        let mut b = [0u8; VIRTIO_NET_HDR_SIZE];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
    pub fn from_bytes(b: &[u8; VIRTIO_NET_HDR_SIZE]) -> Self {
        let u = |o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
        VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_if_tun_h() {
        // As printed by a C program including <linux/if_tun.h> on arm64/x86_64.
        assert_eq!(TUNSETIFF, 0x4004_54ca);
        assert_eq!(TUNSETOFFLOAD, 0x4004_54d0);
        assert_eq!(TUNSETVNETHDRSZ, 0x4004_54d8);
    }

    #[test]
    fn ifreq_holds_name_and_flags() {
        let r = ifreq("vif3.0", IFF_TAP | IFF_NO_PI).unwrap();
        assert_eq!(&r[..7], b"vif3.0\0");
        assert_eq!(u16::from_ne_bytes([r[16], r[17]]), IFF_TAP | IFF_NO_PI);
        assert!(r[18..].iter().all(|&b| b == 0));
        for bad in ["", "fifteen-chars-xx", "a/b", "a b"] {
            assert!(matches!(ifreq(bad, 0), Err(TapError::BadName(_))), "{bad}");
        }
        assert!(ifreq("fifteen-chars-x", 0).is_ok());
    }

    #[test]
    fn virtio_net_hdr_layout() {
        let h = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 0x0201,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(&b[4..6], &1448u16.to_ne_bytes());
        assert_eq!(&b[8..10], &16u16.to_ne_bytes());
        assert_eq!(VirtioNetHdr::from_bytes(&b), h);
    }

    /// Needs CAP_NET_ADMIN and /dev/net/tun: `cargo test -p xen -- --ignored tap`.
    #[test]
    #[ignore]
    fn opens_a_real_tap() {
        let tap = Tap::open("rxtaptest0", true).unwrap();
        assert_eq!(tap.name(), "rxtaptest0");
        assert!(tap.has_vnet_hdr());
        tap.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            .unwrap();
        assert!(std::path::Path::new("/sys/class/net/rxtaptest0").exists());
        tap.set_mac(BACKEND_MAC).unwrap();
        tap.set_up().unwrap();
        let addr = std::fs::read_to_string("/sys/class/net/rxtaptest0/address").unwrap();
        assert_eq!(addr.trim(), "fe:ff:ff:ff:ff:ff");
        let flags = std::fs::read_to_string("/sys/class/net/rxtaptest0/flags").unwrap();
        let flags = u16::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
        assert_ne!(flags & IFF_UP, 0);
        tap.set_mtu(9000).unwrap();
        assert_eq!(interface_mtu("rxtaptest0").unwrap(), 9000);
        assert!(tap.add_to_bridge("rxnobridge0").is_err());
        drop(tap);
        assert!(!std::path::Path::new("/sys/class/net/rxtaptest0").exists());
    }

    /// Needs CAP_NET_ADMIN and /dev/net/tun: `cargo test -p xen -- --ignored tap`.
    #[test]
    #[ignore]
    fn opens_a_real_multi_queue_tap() {
        let q0 = Tap::open_multi_queue("rxtapmq0", true).unwrap();
        let rx1 = std::path::Path::new("/sys/class/net/rxtapmq0/queues/rx-1");
        assert!(!rx1.exists());
        let q1 = q0.open_queue().unwrap();
        assert!(q1.has_vnet_hdr());
        assert!(
            rx1.exists(),
            "the second file is the interface's second queue"
        );
        drop(q1);
        assert!(!rx1.exists());
        assert!(std::path::Path::new("/sys/class/net/rxtapmq0").exists());
        // A single-queue TAP of the same name cannot attach to it.
        assert!(Tap::open("rxtapmq0", true).is_err());
        drop(q0);
        assert!(!std::path::Path::new("/sys/class/net/rxtapmq0").exists());
    }
}
