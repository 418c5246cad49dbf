//! Offload metadata between netif and a TAP's `struct virtio_net_hdr`.
//!
//! Transmit: netif's `NETTXF_csum_blank` and GSO extra become `NEEDS_CSUM`
//! (with the checksum's start and offset found in the packet's own headers, as
//! Linux xen-netback's `skb_checksum_setup` does) and a virtio GSO type.
//! Receive: a TAP frame's `NEEDS_CSUM` / `DATA_VALID` become
//! `NETRXF_csum_blank | NETRXF_data_validated` / `NETRXF_data_validated`, its GSO
//! type a GSO extra. The packet bytes parsed here are dom0's own copy.

use super::abi::*;
use super::request::{Gso, GsoKind, Packet};
use xen::tap::{
    VirtioNetHdr, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
const ETH_P_IPV6: u16 = 0x86DD;
/// `ETH_P_8021Q`: a VLAN tag follows the addresses.
const ETH_P_8021Q: u16 = 0x8100;
/// `VLAN_HLEN`.
const VLAN_HLEN: usize = 4;
/// Offset of the EtherType in an Ethernet header.
const ETH_TYPE_OFFSET: usize = 12;
/// `IPPROTO_TCP`.
const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers walked to reach TCP/UDP (hop-by-hop, routing,
/// destination options), each `(hdr_ext_len + 1) * 8` bytes long.
const IPV6_EXT_HEADERS: [u8; 3] = [0, 43, 60];
/// At most this many IPv6 extension headers are walked.
const MAX_IPV6_EXT: usize = 8;
/// `offsetof(struct tcphdr, check)`.
const TCP_CSUM_OFFSET: u16 = 16;
/// `offsetof(struct udphdr, check)`.
const UDP_CSUM_OFFSET: u16 = 6;
/// Fixed IPv6 header length.
const IPV6_HLEN: usize = 40;
/// Smallest IPv4 header.
const IPV4_MIN_HLEN: usize = 20;
/// Smallest TCP header.
const TCP_MIN_HLEN: usize = 20;

/// Why a packet's offload request cannot be honoured (the packet is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("checksum offload asked for a packet that is not TCP/UDP over IPv4/IPv6")]
    NotTcpUdp,
    #[error("the packet's headers are truncated or malformed")]
    BadHeaders,
    #[error("GSO asked for a packet that is not TCP")]
    GsoNotTcp,
}

/// Where the L4 header starts and which protocol it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    pub offset: usize,
    pub protocol: u8,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Finds the TCP/UDP header of an Ethernet frame (IPv4, IPv6 with the common
/// extension headers, one VLAN tag).
pub fn find_l4(frame: &[u8]) -> Result<L4, OffloadError> {
    let mut at = ETH_TYPE_OFFSET;
    let mut ethertype = be16(frame, at).ok_or(OffloadError::BadHeaders)?;
    at += 2;
    if ethertype == ETH_P_8021Q {
        ethertype = be16(frame, at + 2).ok_or(OffloadError::BadHeaders)?;
        at += VLAN_HLEN;
    }
    let (offset, protocol) = match ethertype {
        ETH_P_IP => {
            let vihl = *frame.get(at).ok_or(OffloadError::BadHeaders)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < IPV4_MIN_HLEN {
                return Err(OffloadError::BadHeaders);
            }
            let proto = *frame.get(at + 9).ok_or(OffloadError::BadHeaders)?;
            (at + ihl, proto)
        }
        ETH_P_IPV6 => {
            let mut next = *frame.get(at + 6).ok_or(OffloadError::BadHeaders)?;
            let mut off = at + IPV6_HLEN;
            let mut walked = 0;
            while IPV6_EXT_HEADERS.contains(&next) {
                walked += 1;
                if walked > MAX_IPV6_EXT {
                    return Err(OffloadError::BadHeaders);
                }
                let nh = *frame.get(off).ok_or(OffloadError::BadHeaders)?;
                let len =
                    (usize::from(*frame.get(off + 1).ok_or(OffloadError::BadHeaders)?) + 1) * 8;
                next = nh;
                off += len;
            }
            (off, next)
        }
        _ => return Err(OffloadError::NotTcpUdp),
    };
    if offset >= frame.len() {
        return Err(OffloadError::BadHeaders);
    }
    Ok(L4 { offset, protocol })
}

/// The vnet header for a transmitted packet whose bytes are `frame`.
pub fn tx_vnet_hdr(pkt: &Packet, frame: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
    let mut h = VirtioNetHdr::default();
    // A GSO packet's checksum is always partial (netfront sends it so).
    if pkt.csum_blank || pkt.gso.is_some() {
        let l4 = find_l4(frame)?;
        let csum_offset = match l4.protocol {
            IPPROTO_TCP => TCP_CSUM_OFFSET,
            IPPROTO_UDP => UDP_CSUM_OFFSET,
            _ => return Err(OffloadError::NotTcpUdp),
        };
        if l4.offset + usize::from(csum_offset) + 2 > frame.len() {
            return Err(OffloadError::BadHeaders);
        }
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.csum_start = u16::try_from(l4.offset).map_err(|_| OffloadError::BadHeaders)?;
        h.csum_offset = csum_offset;
        if let Some(gso) = pkt.gso {
            if l4.protocol != IPPROTO_TCP {
                return Err(OffloadError::GsoNotTcp);
            }
            let doff = frame
                .get(l4.offset + 12)
                .map(|b| usize::from(b >> 4) * 4)
                .ok_or(OffloadError::BadHeaders)?;
            if doff < TCP_MIN_HLEN || l4.offset + doff > frame.len() {
                return Err(OffloadError::BadHeaders);
            }
            h.gso_type = match gso.kind {
                GsoKind::TcpV4 => VIRTIO_NET_HDR_GSO_TCPV4,
                GsoKind::TcpV6 => VIRTIO_NET_HDR_GSO_TCPV6,
            };
            h.gso_size = gso.size;
            h.hdr_len = u16::try_from(l4.offset + doff).map_err(|_| OffloadError::BadHeaders)?;
        }
    } else if pkt.data_validated {
        h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    Ok(h)
}

/// What a received frame's vnet header asks of netif.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// `NETRXF_*` flags of the first slot.
    pub flags: u16,
    pub gso: Option<Gso>,
}

/// Why a frame read from the TAP cannot go to this frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RxOffloadError {
    #[error("GSO type {0:#x} is not one the frontend takes")]
    Gso(u8),
}

/// Netif flags and GSO for a frame with vnet header `h`; GSO only of the kinds
/// the frontend enabled (`tcpv4`, `tcpv6`).
pub fn rx_meta(h: &VirtioNetHdr, tcpv4: bool, tcpv6: bool) -> Result<RxMeta, RxOffloadError> {
    let mut flags = 0;
    if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        flags |= NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
    } else if h.flags & VIRTIO_NET_HDR_F_DATA_VALID != 0 {
        flags |= NETRXF_DATA_VALIDATED;
    }
    let gso = match h.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_NONE => None,
        VIRTIO_NET_HDR_GSO_TCPV4 if tcpv4 && h.gso_size > 0 => Some(Gso {
            size: h.gso_size,
            kind: GsoKind::TcpV4,
            features: 0,
        }),
        VIRTIO_NET_HDR_GSO_TCPV6 if tcpv6 && h.gso_size > 0 => Some(Gso {
            size: h.gso_size,
            kind: GsoKind::TcpV6,
            features: 0,
        }),
        _ => return Err(RxOffloadError::Gso(h.gso_type)),
    };
    Ok(RxMeta { flags, gso })
}

/// The GSO extra-info slot for `gso` (rx side).
pub fn gso_extra(gso: &Gso) -> RawExtraInfo {
    let kind = match gso.kind {
        GsoKind::TcpV4 => GSO_TYPE_TCPV4,
        GsoKind::TcpV6 => GSO_TYPE_TCPV6,
    };
    RawExtraInfo::new_gso(0, gso.size, kind, gso.features)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame with `payload` bytes of data.
    pub(crate) fn tcp4_frame(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = IPPROTO_TCP;
        f[34 + 12] = 5 << 4;
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn pkt(csum_blank: bool, gso: Option<Gso>) -> Packet {
        Packet {
            segments: Vec::new(),
            total_len: 0,
            gso,
            hash: None,
            csum_blank,
            data_validated: !csum_blank,
        }
    }

    #[test]
    fn tcp4_checksum_and_gso() {
        let f = tcp4_frame(100);
        let h = tx_vnet_hdr(&pkt(true, None), &f).unwrap();
        assert_eq!(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!((h.csum_start, h.csum_offset), (34, 16));
        let gso = Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
            features: 0,
        };
        let h = tx_vnet_hdr(&pkt(true, Some(gso)), &f).unwrap();
        assert_eq!(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!((h.gso_size, h.hdr_len), (1448, 54));
        let h = tx_vnet_hdr(&pkt(false, None), &f).unwrap();
        assert_eq!(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
    }

    #[test]
    fn ipv6_udp_behind_a_vlan_tag_and_an_extension_header() {
        let mut f = vec![0u8; 14 + 4 + 40 + 8 + 8 + 10];
        f[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        f[16..18].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[18] = 0x60;
        f[18 + 6] = 0; // hop-by-hop
        f[58] = IPPROTO_UDP; // its next header
        f[59] = 0; // 8 bytes
        let h = tx_vnet_hdr(&pkt(true, None), &f).unwrap();
        assert_eq!((h.csum_start, h.csum_offset), (66, 6));
    }

    #[test]
    fn hostile_headers_are_refused() {
        let mut f = tcp4_frame(0);
        f[14] = 0x44; // ihl 16 bytes
        assert_eq!(
            tx_vnet_hdr(&pkt(true, None), &f),
            Err(OffloadError::BadHeaders)
        );
        let mut f = tcp4_frame(0);
        f[14] = 0x4f; // ihl 60: the L4 header is past the end
        assert_eq!(
            tx_vnet_hdr(&pkt(true, None), &f),
            Err(OffloadError::BadHeaders)
        );
        let mut f = tcp4_frame(0);
        f[14 + 9] = 1; // ICMP
        assert_eq!(
            tx_vnet_hdr(&pkt(true, None), &f),
            Err(OffloadError::NotTcpUdp)
        );
        let gso = Gso {
            size: 1000,
            kind: GsoKind::TcpV4,
            features: 0,
        };
        let mut f = tcp4_frame(10);
        f[14 + 9] = IPPROTO_UDP;
        assert_eq!(
            tx_vnet_hdr(&pkt(true, Some(gso)), &f),
            Err(OffloadError::GsoNotTcp)
        );
        let mut f = tcp4_frame(0);
        f[34 + 12] = 15 << 4; // TCP header of 60 bytes in a 20-byte tail
        assert_eq!(
            tx_vnet_hdr(&pkt(true, Some(gso)), &f),
            Err(OffloadError::BadHeaders)
        );
        // Endless IPv6 extension headers.
        let mut f = vec![0u8; 14 + 40 + 8 * 20];
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14 + 6] = 0;
        assert_eq!(
            tx_vnet_hdr(&pkt(true, None), &f),
            Err(OffloadError::BadHeaders)
        );
        assert_eq!(
            tx_vnet_hdr(&pkt(true, None), &f[..10]),
            Err(OffloadError::BadHeaders)
        );
    }

    #[test]
    fn rx_flags_and_gso() {
        let h = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN,
            gso_size: 1400,
            ..Default::default()
        };
        let m = rx_meta(&h, true, true).unwrap();
        assert_eq!(m.flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED);
        assert_eq!(m.gso.unwrap().kind, GsoKind::TcpV6);
        assert_eq!(gso_extra(&m.gso.unwrap()).gso_type(), GSO_TYPE_TCPV6);
        assert!(rx_meta(&h, true, false).is_err());
        let v = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_DATA_VALID,
            ..Default::default()
        };
        assert_eq!(
            rx_meta(&v, false, false).unwrap().flags,
            NETRXF_DATA_VALIDATED
        );
        assert_eq!(
            rx_meta(&VirtioNetHdr::default(), false, false)
                .unwrap()
                .flags,
            0
        );
    }
}
