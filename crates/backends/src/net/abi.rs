//! The netif protocol (xen/include/public/io/netif.h), native layout (arm64 and
//! x86_64 agree). The frontend is Linux's drivers/net/xen-netfront.c.
//!
//! Slots are copied out of the shared ring as byte arrays ([`RawTxSlot`]) and
//! decoded here; nothing in this module trusts a value it decodes.

/// `NETTXF_csum_blank`: the packet's checksum is blank (to be filled in).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the packet's data has been validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next request slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: extra-info slots follow this (first) request.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`.
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// `XEN_NETIF_EXTRA_TYPE_NONE`.
pub const EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: types at or above this are unknown.
pub const EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_GSO_TYPE_NONE`.
pub const GSO_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`.
pub const GSO_TYPE_TCPV6: u8 = 2;

/// `XEN_NETIF_RSP_DROPPED`.
pub const RSP_DROPPED: i16 = -2;
/// `XEN_NETIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `XEN_NETIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `XEN_NETIF_RSP_NULL`: the answer to an extra-info slot (no packet).
pub const RSP_NULL: i16 = 1;

/// `XEN_NETIF_NR_SLOTS_MIN` / Linux xen-netback's `XEN_NETBK_LEGACY_SLOTS_MAX`:
/// the most request slots (first included, extra info excluded) a packet may
/// use; netfront sends at most `MAX_SKB_FRAGS + 1` = 18 with 4 KiB pages.
pub const MAX_SLOTS_PER_PACKET: usize = 18;
/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet (its size is a u16).
pub const MAX_TX_SIZE: usize = 0xFFFF;
/// `ETH_HLEN`: a packet shorter than an Ethernet header is refused.
pub const ETH_HLEN: usize = 14;
/// The grant page size slots address (`XEN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = xen::abi::xen::XEN_PAGE_SIZE;

/// Size of `struct netif_tx_request` (and of a tx ring slot: the union with
/// `struct netif_extra_info` is 12 bytes too).
pub const TX_REQUEST_SIZE: usize = 12;
/// Size of `struct netif_tx_response`.
pub const TX_RESPONSE_SIZE: usize = 4;
/// Size of `struct netif_rx_request`.
pub const RX_REQUEST_SIZE: usize = 8;
/// Size of `struct netif_rx_response`.
pub const RX_RESPONSE_SIZE: usize = 8;
/// Size of `struct netif_extra_info`.
pub const EXTRA_INFO_SIZE: usize = 8;
/// Length of a MAC address in `mcast` extra info.
pub const ETH_ALEN: usize = 6;

// struct netif_tx_request: gref u32 @0, offset u16 @4, flags u16 @6, id u16 @8, size u16 @10.
const TX_OFF_GREF: usize = 0;
const TX_OFF_OFFSET: usize = 4;
const TX_OFF_FLAGS: usize = 6;
const TX_OFF_ID: usize = 8;
const TX_OFF_SIZE: usize = 10;
// struct netif_extra_info: type u8 @0, flags u8 @1, union @2 (6 bytes).
const EX_OFF_TYPE: usize = 0;
const EX_OFF_FLAGS: usize = 1;
const EX_OFF_UNION: usize = 2;
// gso: size u16 @2, type u8 @4, pad u8 @5, features u16 @6.
const EX_OFF_GSO_SIZE: usize = 2;
const EX_OFF_GSO_TYPE: usize = 4;
const EX_OFF_GSO_FEATURES: usize = 6;
// hash: type u8 @2, algorithm u8 @3, value [u8; 4] @4.
const EX_OFF_HASH_TYPE: usize = 2;
const EX_OFF_HASH_ALG: usize = 3;
const EX_OFF_HASH_VALUE: usize = 4;
// struct netif_rx_request: id u16 @0, pad u16, gref u32 @4.
const RX_OFF_ID: usize = 0;
const RX_OFF_GREF: usize = 4;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

/// One tx ring slot copied out of shared memory: either a `netif_tx_request`
/// or, after a request with [`NETTXF_EXTRA_INFO`], a `netif_extra_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTxSlot(pub [u8; TX_REQUEST_SIZE]);

impl RawTxSlot {
    /// The slot read as a transmit request.
    pub fn request(&self) -> TxRequest {
        let b = &self.0;
        TxRequest {
            gref: u32::from_ne_bytes([
                b[TX_OFF_GREF],
                b[TX_OFF_GREF + 1],
                b[TX_OFF_GREF + 2],
                b[TX_OFF_GREF + 3],
            ]),
            offset: u16_at(b, TX_OFF_OFFSET),
            flags: u16_at(b, TX_OFF_FLAGS),
            id: u16_at(b, TX_OFF_ID),
            size: u16_at(b, TX_OFF_SIZE),
        }
    }

    /// The slot read as extra info (its first [`EXTRA_INFO_SIZE`] bytes).
    pub fn extra(&self) -> RawExtraInfo {
        let mut e = [0u8; EXTRA_INFO_SIZE];
        e.copy_from_slice(&self.0[..EXTRA_INFO_SIZE]);
        RawExtraInfo(e)
    }
}

/// `struct netif_tx_request`, decoded but not validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

impl TxRequest {
    pub fn to_slot(self) -> RawTxSlot {
        let mut b = [0u8; TX_REQUEST_SIZE];
        b[TX_OFF_GREF..TX_OFF_GREF + 4].copy_from_slice(&self.gref.to_ne_bytes());
        b[TX_OFF_OFFSET..TX_OFF_OFFSET + 2].copy_from_slice(&self.offset.to_ne_bytes());
        b[TX_OFF_FLAGS..TX_OFF_FLAGS + 2].copy_from_slice(&self.flags.to_ne_bytes());
        b[TX_OFF_ID..TX_OFF_ID + 2].copy_from_slice(&self.id.to_ne_bytes());
        b[TX_OFF_SIZE..TX_OFF_SIZE + 2].copy_from_slice(&self.size.to_ne_bytes());
        RawTxSlot(b)
    }
}

/// `struct netif_extra_info` as copied out (not validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawExtraInfo(pub [u8; EXTRA_INFO_SIZE]);

impl RawExtraInfo {
    pub fn kind(&self) -> u8 {
        self.0[EX_OFF_TYPE]
    }
    pub fn flags(&self) -> u8 {
        self.0[EX_OFF_FLAGS]
    }
    pub fn gso_size(&self) -> u16 {
        u16_at(&self.0, EX_OFF_GSO_SIZE)
    }
    pub fn gso_type(&self) -> u8 {
        self.0[EX_OFF_GSO_TYPE]
    }
    pub fn gso_features(&self) -> u16 {
        u16_at(&self.0, EX_OFF_GSO_FEATURES)
    }
    /// `mcast.addr`.
    pub fn mcast_addr(&self) -> [u8; ETH_ALEN] {
        let mut a = [0u8; ETH_ALEN];
        a.copy_from_slice(&self.0[EX_OFF_UNION..EX_OFF_UNION + ETH_ALEN]);
        a
    }
    pub fn hash_type(&self) -> u8 {
        self.0[EX_OFF_HASH_TYPE]
    }
    pub fn hash_algorithm(&self) -> u8 {
        self.0[EX_OFF_HASH_ALG]
    }
    pub fn hash_value(&self) -> [u8; 4] {
        let mut v = [0u8; 4];
        v.copy_from_slice(&self.0[EX_OFF_HASH_VALUE..EX_OFF_HASH_VALUE + 4]);
        v
    }

    /// Builders (tests, and the rx side's GSO prefix).
    pub fn new(kind: u8, flags: u8) -> Self {
        let mut e = RawExtraInfo::default();
        e.0[EX_OFF_TYPE] = kind;
        e.0[EX_OFF_FLAGS] = flags;
        e
    }
    pub fn new_gso(flags: u8, size: u16, gso_type: u8, features: u16) -> Self {
        let mut e = Self::new(EXTRA_TYPE_GSO, flags);
        e.0[EX_OFF_GSO_SIZE..EX_OFF_GSO_SIZE + 2].copy_from_slice(&size.to_ne_bytes());
        e.0[EX_OFF_GSO_TYPE] = gso_type;
        e.0[EX_OFF_GSO_FEATURES..EX_OFF_GSO_FEATURES + 2].copy_from_slice(&features.to_ne_bytes());
        e
    }
    pub fn new_mcast(kind: u8, flags: u8, addr: [u8; ETH_ALEN]) -> Self {
        let mut e = Self::new(kind, flags);
        e.0[EX_OFF_UNION..EX_OFF_UNION + ETH_ALEN].copy_from_slice(&addr);
        e
    }
    /// A tx ring slot holding this extra info (the rest of the slot is zero).
    pub fn to_slot(self) -> RawTxSlot {
        let mut b = [0u8; TX_REQUEST_SIZE];
        b[..EXTRA_INFO_SIZE].copy_from_slice(&self.0);
        RawTxSlot(b)
    }
}

/// `struct netif_tx_response`: id u16 @0, status i16 @2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

impl TxResponse {
    pub fn to_bytes(self) -> [u8; TX_RESPONSE_SIZE] {
        let mut b = [0u8; TX_RESPONSE_SIZE];
        b[0..2].copy_from_slice(&self.id.to_ne_bytes());
        b[2..4].copy_from_slice(&self.status.to_ne_bytes());
        b
    }
    pub fn from_bytes(b: &[u8; TX_RESPONSE_SIZE]) -> Self {
        TxResponse {
            id: u16::from_ne_bytes([b[0], b[1]]),
            status: i16::from_ne_bytes([b[2], b[3]]),
        }
    }
}

/// `struct netif_rx_request`: id u16 @0, pad, gref u32 @4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRequest {
    pub id: u16,
    pub gref: u32,
}

impl RxRequest {
    pub fn from_bytes(b: &[u8; RX_REQUEST_SIZE]) -> Self {
        RxRequest {
            id: u16_at(b, RX_OFF_ID),
            gref: u32::from_ne_bytes([
                b[RX_OFF_GREF],
                b[RX_OFF_GREF + 1],
                b[RX_OFF_GREF + 2],
                b[RX_OFF_GREF + 3],
            ]),
        }
    }
    pub fn to_bytes(self) -> [u8; RX_REQUEST_SIZE] {
        let mut b = [0u8; RX_REQUEST_SIZE];
        b[RX_OFF_ID..RX_OFF_ID + 2].copy_from_slice(&self.id.to_ne_bytes());
        b[RX_OFF_GREF..RX_OFF_GREF + 4].copy_from_slice(&self.gref.to_ne_bytes());
        b
    }
}

/// `struct netif_rx_response`: id u16 @0, offset u16 @2, flags u16 @4,
/// status i16 @6 (the byte count when positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

impl RxResponse {
    pub fn to_bytes(self) -> [u8; RX_RESPONSE_SIZE] {
        let mut b = [0u8; RX_RESPONSE_SIZE];
        b[0..2].copy_from_slice(&self.id.to_ne_bytes());
        b[2..4].copy_from_slice(&self.offset.to_ne_bytes());
        b[4..6].copy_from_slice(&self.flags.to_ne_bytes());
        b[6..8].copy_from_slice(&self.status.to_ne_bytes());
        b
    }
    pub fn from_bytes(b: &[u8; RX_RESPONSE_SIZE]) -> Self {
        RxResponse {
            id: u16_at(b, 0),
            offset: u16_at(b, 2),
            flags: u16_at(b, 4),
            status: i16::from_ne_bytes([b[6], b[7]]),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tx_request_layout_matches_netif_h() {
        let r = TxRequest {
            gref: 0x0403_0201,
            offset: 0x0605,
            flags: 0x0807,
            id: 0x0a09,
            size: 0x0c0b,
        };
        let s = r.to_slot();
        if cfg!(target_endian = "little") {
            assert_eq!(s.0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        }
        assert_eq!(s.request(), r);
    }

    #[test]
    fn extra_info_gso_layout() {
        let e = RawExtraInfo::new_gso(EXTRA_FLAG_MORE, 1448, GSO_TYPE_TCPV6, 0x0102);
        assert_eq!(e.0[0], EXTRA_TYPE_GSO);
        assert_eq!(e.0[1], EXTRA_FLAG_MORE);
        assert_eq!(e.0[4], GSO_TYPE_TCPV6);
        let back = e.to_slot().extra();
        assert_eq!(back.gso_size(), 1448);
        assert_eq!(back.gso_type(), GSO_TYPE_TCPV6);
        assert_eq!(back.gso_features(), 0x0102);
        let m = RawExtraInfo::new_mcast(EXTRA_TYPE_MCAST_ADD, 0, [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(m.mcast_addr(), [0x33, 0x33, 0, 0, 0, 1]);
    }

    #[test]
    fn responses_round_trip() {
        let t = TxResponse {
            id: 7,
            status: RSP_ERROR,
        };
        assert_eq!(TxResponse::from_bytes(&t.to_bytes()), t);
        assert_eq!(&t.to_bytes()[2..4], &(-1i16).to_ne_bytes());
        let rq = RxRequest { id: 3, gref: 99 };
        assert_eq!(RxRequest::from_bytes(&rq.to_bytes()), rq);
        assert_eq!(&rq.to_bytes()[4..8], &99u32.to_ne_bytes());
        let rs = RxResponse {
            id: 3,
            offset: 10,
            flags: NETRXF_MORE_DATA,
            status: 1500,
        };
        assert_eq!(RxResponse::from_bytes(&rs.to_bytes()), rs);
        assert_eq!(&rs.to_bytes()[6..8], &1500i16.to_ne_bytes());
    }
}
