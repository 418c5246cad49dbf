//! Transmit-packet validation, apart from I/O: the slots of one packet are
//! copied out of the tx ring, walked and checked one by one (one error variant
//! per check, after Linux xen-netback's `xenvif_get_extras` /
//! `xenvif_count_requests` / `xenvif_tx_build_gops`), and only a [`Packet`]
//! reaches the grant copy.
//!
//! Two kinds of failure:
//! - [`TxError`]: the packet is bad but the chain of slots is well formed; every
//!   slot it used is answered ([`RSP_ERROR`] for requests, [`RSP_NULL`] for
//!   extra info), the packet is dropped and counted, and the ring goes on.
//! - [`FatalTxError`]: the chain itself cannot be walked (it runs past what the
//!   frontend published); that frontend broke the protocol and its NIC is
//!   disconnected.

use super::abi::*;

/// A validated piece of packet data: `len` bytes at `offset` of grant `gref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The request id this segment's response carries.
    pub id: u16,
    pub gref: u32,
    pub offset: u16,
    pub len: u16,
}

/// `XEN_NETIF_GSO_TYPE_*` that are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    TcpV4,
    TcpV6,
}

/// Segmentation offload asked for by a GSO extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// MSS.
    pub size: u16,
    pub kind: GsoKind,
    pub features: u16,
}

/// A hash extra (`XEN_NETIF_EXTRA_TYPE_HASH`), passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub kind: u8,
    pub algorithm: u8,
    pub value: [u8; 4],
}

/// A multicast-control request carried by a tx request with an
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`/`_DEL` extra (it carries no packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McastOp {
    Add([u8; ETH_ALEN]),
    Del([u8; ETH_ALEN]),
}

/// A validated packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// In order; the first segment is the first slot's own data.
    pub segments: Vec<Segment>,
    /// The first slot's `size`: the whole packet's length.
    pub total_len: usize,
    pub gso: Option<Gso>,
    pub hash: Option<Hash>,
    /// `NETTXF_csum_blank`: the checksum is to be filled in (partial).
    pub csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub data_validated: bool,
}

/// What a well-formed chain of slots asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxItem {
    Packet(Packet),
    Mcast(McastOp),
}

/// Why a packet is dropped (answered with [`RSP_ERROR`] and counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("extra info {index}: unknown type {kind}")]
    UnknownExtraType { index: usize, kind: u8 },
    #[error("extra info {index}: type {kind} given twice")]
    DuplicateExtra { index: usize, kind: u8 },
    #[error("GSO extra with size 0")]
    GsoSizeZero,
    #[error("GSO type {0} is not supported")]
    BadGsoType(u8),
    #[error("{count} request slots, more than {MAX_SLOTS_PER_PACKET}")]
    TooManySlots { count: usize },
    #[error("packet of {size} bytes, shorter than an Ethernet header")]
    TooShort { size: u16 },
    #[error("slot {slot}: size {size} exceeds the {remaining} bytes left of the packet")]
    SizesDontAddUp {
        slot: usize,
        size: u16,
        remaining: usize,
    },
    #[error("slot {slot}: offset {offset} + size {size} crosses the page")]
    CrossesPage {
        slot: usize,
        offset: u16,
        size: usize,
    },
}

/// Why a frontend is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FatalTxError {
    #[error("a packet's slots run past the {available} published (needs at least {needed})")]
    Incomplete { needed: usize, available: usize },
}

/// The outcome for one chain of slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Ring slots used (requests and extra info).
    pub consumed: usize,
    /// For each slot used, in ring order: `Some(id)` for a request, `None` for
    /// extra info.
    pub slot_ids: Vec<Option<u16>>,
    pub result: Result<TxItem, TxError>,
}

impl Parsed {
    /// The responses for every slot used, requests answered with `status`
    /// (`RSP_OKAY` once sent, `RSP_ERROR` / `RSP_DROPPED` otherwise), extra
    /// info with `RSP_NULL` (netfront skips those).
    pub fn responses(&self, status: i16) -> Vec<TxResponse> {
        self.slot_ids
            .iter()
            .map(|s| match s {
                Some(id) => TxResponse { id: *id, status },
                None => TxResponse {
                    id: 0,
                    status: RSP_NULL,
                },
            })
            .collect()
    }
}

/// Walks and validates the packet that starts at `slots[0]`. `slots` are all
/// the unconsumed slots the frontend published, copied out of the ring.
pub fn parse_packet(slots: &[RawTxSlot]) -> Result<Parsed, FatalTxError> {
    let slot = |i: usize| {
        slots.get(i).copied().ok_or(FatalTxError::Incomplete {
            needed: i + 1,
            available: slots.len(),
        })
    };
    // Walk: structure only, so that a bad packet is consumed in full.
    let first = slot(0)?.request();
    let mut slot_ids = vec![Some(first.id)];
    let mut extras = Vec::new();
    let mut i = 1;
    if first.flags & NETTXF_EXTRA_INFO != 0 {
        loop {
            let e = slot(i)?.extra();
            i += 1;
            slot_ids.push(None);
            extras.push(e);
            if e.flags() & EXTRA_FLAG_MORE == 0 {
                break;
            }
        }
    }
    let mut data = vec![first];
    let mut more = first.flags & NETTXF_MORE_DATA != 0;
    while more {
        let r = slot(i)?.request();
        i += 1;
        slot_ids.push(Some(r.id));
        data.push(r);
        more = r.flags & NETTXF_MORE_DATA != 0;
    }
    let result = validate(&first, &extras, &data);
    Ok(Parsed {
        consumed: i,
        slot_ids,
        result,
    })
}

fn validate(
    first: &TxRequest,
    extras: &[RawExtraInfo],
    data: &[TxRequest],
) -> Result<TxItem, TxError> {
    let mut seen = [false; EXTRA_TYPE_MAX as usize];
    let mut gso = None;
    let mut hash = None;
    let mut mcast = None;
    for (index, e) in extras.iter().enumerate() {
        let kind = e.kind();
        if kind == EXTRA_TYPE_NONE || kind >= EXTRA_TYPE_MAX {
            return Err(TxError::UnknownExtraType { index, kind });
        }
        let seen_kind = &mut seen[usize::from(kind)];
        if *seen_kind {
            return Err(TxError::DuplicateExtra { index, kind });
        }
        *seen_kind = true;
        match kind {
            EXTRA_TYPE_GSO => {
                if e.gso_size() == 0 {
                    return Err(TxError::GsoSizeZero);
                }
                let k = match e.gso_type() {
                    GSO_TYPE_TCPV4 => GsoKind::TcpV4,
                    GSO_TYPE_TCPV6 => GsoKind::TcpV6,
                    other => return Err(TxError::BadGsoType(other)),
                };
                gso = Some(Gso {
                    size: e.gso_size(),
                    kind: k,
                    features: e.gso_features(),
                });
            }
            EXTRA_TYPE_MCAST_ADD => mcast = Some(McastOp::Add(e.mcast_addr())),
            EXTRA_TYPE_MCAST_DEL => mcast = Some(McastOp::Del(e.mcast_addr())),
            _ => {
                hash = Some(Hash {
                    kind: e.hash_type(),
                    algorithm: e.hash_algorithm(),
                    value: e.hash_value(),
                })
            }
        }
    }
    // As in xen-netback, a multicast-control request carries no packet.
    if let Some(op) = mcast {
        return Ok(TxItem::Mcast(op));
    }
    if data.len() > MAX_SLOTS_PER_PACKET {
        return Err(TxError::TooManySlots { count: data.len() });
    }
    if usize::from(first.size) < ETH_HLEN {
        return Err(TxError::TooShort { size: first.size });
    }
    let mut remaining = usize::from(first.size);
    let mut segments = Vec::with_capacity(data.len());
    for (slot, r) in data.iter().enumerate().skip(1) {
        if usize::from(r.size) > remaining {
            return Err(TxError::SizesDontAddUp {
                slot,
                size: r.size,
                remaining,
            });
        }
        remaining -= usize::from(r.size);
        check_page(slot, r.offset, usize::from(r.size))?;
        segments.push(Segment {
            id: r.id,
            gref: r.gref,
            offset: r.offset,
            len: r.size,
        });
    }
    // The first slot holds what the others do not.
    check_page(0, first.offset, remaining)?;
    let first_len = u16::try_from(remaining).unwrap_or(u16::MAX);
    segments.insert(
        0,
        Segment {
            id: first.id,
            gref: first.gref,
            offset: first.offset,
            len: first_len,
        },
    );
    Ok(TxItem::Packet(Packet {
        segments,
        total_len: usize::from(first.size),
        gso,
        hash,
        csum_blank: first.flags & NETTXF_CSUM_BLANK != 0,
        data_validated: first.flags & NETTXF_DATA_VALIDATED != 0,
    }))
}

fn check_page(slot: usize, offset: u16, size: usize) -> Result<(), TxError> {
    if usize::from(offset) + size > PAGE_SIZE {
        return Err(TxError::CrossesPage { slot, offset, size });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(id: u16, gref: u32, offset: u16, size: u16, flags: u16) -> RawTxSlot {
        TxRequest {
            gref,
            offset,
            flags,
            id,
            size,
        }
        .to_slot()
    }

    /// A valid 3-slot packet of 3000 bytes with a GSO extra: first slot 1000
    /// bytes at offset 100, then 1500 and 500.
    fn valid() -> Vec<RawTxSlot> {
        vec![
            req(
                1,
                10,
                100,
                3000,
                NETTXF_MORE_DATA | NETTXF_EXTRA_INFO | NETTXF_CSUM_BLANK,
            ),
            RawExtraInfo::new_gso(0, 1448, GSO_TYPE_TCPV4, 0).to_slot(),
            req(2, 11, 0, 1500, NETTXF_MORE_DATA),
            req(3, 12, 3596, 500, 0),
        ]
    }

    fn err(slots: &[RawTxSlot]) -> TxError {
        parse_packet(slots).unwrap().result.unwrap_err()
    }

    #[test]
    fn a_valid_packet() {
        let p = parse_packet(&valid()).unwrap();
        assert_eq!(p.consumed, 4);
        assert_eq!(p.slot_ids, vec![Some(1), None, Some(2), Some(3)]);
        let TxItem::Packet(pkt) = p.result.clone().unwrap() else {
            panic!("not a packet")
        };
        assert_eq!(pkt.total_len, 3000);
        let lens: Vec<u16> = pkt.segments.iter().map(|s| s.len).collect();
        assert_eq!(lens, vec![1000, 1500, 500]);
        assert_eq!(pkt.segments[0].offset, 100);
        assert_eq!(pkt.segments[2].gref, 12);
        assert_eq!(
            pkt.gso,
            Some(Gso {
                size: 1448,
                kind: GsoKind::TcpV4,
                features: 0
            })
        );
        assert!(pkt.csum_blank);
        assert!(!pkt.data_validated);
        let rsp = p.responses(RSP_ERROR);
        assert_eq!(rsp.len(), 4);
        assert_eq!(
            rsp[0],
            TxResponse {
                id: 1,
                status: RSP_ERROR
            }
        );
        assert_eq!(rsp[1].status, RSP_NULL);
        assert_eq!(
            rsp[3],
            TxResponse {
                id: 3,
                status: RSP_ERROR
            }
        );
    }

    #[test]
    fn a_single_slot_packet_stops_at_its_slot() {
        let slots = [req(5, 1, 0, 60, 0), req(6, 1, 0, 60, 0)];
        let p = parse_packet(&slots).unwrap();
        assert_eq!(p.consumed, 1);
        assert!(matches!(p.result, Ok(TxItem::Packet(ref k)) if k.segments.len() == 1));
    }

    #[test]
    fn each_check_has_its_error() {
        let ok = valid();
        let with = |i: usize, s: RawTxSlot| {
            let mut v = ok.clone();
            v[i] = s;
            v
        };
        let first_flags = NETTXF_MORE_DATA | NETTXF_EXTRA_INFO;
        let cases: Vec<(Vec<RawTxSlot>, TxError)> = vec![
            (
                with(1, RawExtraInfo::new(EXTRA_TYPE_MAX, 0).to_slot()),
                TxError::UnknownExtraType {
                    index: 0,
                    kind: EXTRA_TYPE_MAX,
                },
            ),
            (
                with(1, RawExtraInfo::new(EXTRA_TYPE_NONE, 0).to_slot()),
                TxError::UnknownExtraType { index: 0, kind: 0 },
            ),
            (
                with(1, RawExtraInfo::new_gso(0, 0, GSO_TYPE_TCPV4, 0).to_slot()),
                TxError::GsoSizeZero,
            ),
            (
                with(1, RawExtraInfo::new_gso(0, 1448, 7, 0).to_slot()),
                TxError::BadGsoType(7),
            ),
            (
                with(0, req(1, 10, 100, 10, first_flags)),
                TxError::TooShort { size: 10 },
            ),
            (
                // 1500 + 500 > 1800: the second slot does not fit what is left.
                with(0, req(1, 10, 100, 1800, first_flags)),
                TxError::SizesDontAddUp {
                    slot: 2,
                    size: 500,
                    remaining: 300,
                },
            ),
            (
                with(3, req(3, 12, 3597, 500, 0)),
                TxError::CrossesPage {
                    slot: 2,
                    offset: 3597,
                    size: 500,
                },
            ),
            (
                // The first slot's own 1000 bytes at 3100 cross the page.
                with(0, req(1, 10, 3100, 3000, first_flags)),
                TxError::CrossesPage {
                    slot: 0,
                    offset: 3100,
                    size: 1000,
                },
            ),
        ];
        for (slots, want) in cases {
            let p = parse_packet(&slots).unwrap();
            // A bad packet is still consumed in full, so each slot is answered.
            assert_eq!(p.consumed, 4, "{want}");
            assert_eq!(p.result.unwrap_err(), want);
        }
    }

    #[test]
    fn duplicate_extras_are_refused() {
        let mut v = valid();
        v[1] = RawExtraInfo::new_gso(EXTRA_FLAG_MORE, 1448, GSO_TYPE_TCPV4, 0).to_slot();
        v.insert(
            2,
            RawExtraInfo::new_gso(0, 1448, GSO_TYPE_TCPV6, 0).to_slot(),
        );
        assert_eq!(
            err(&v),
            TxError::DuplicateExtra {
                index: 1,
                kind: EXTRA_TYPE_GSO
            }
        );
    }

    #[test]
    fn too_many_slots_is_dropped_whole() {
        let n = MAX_SLOTS_PER_PACKET + 1;
        let mut v: Vec<RawTxSlot> = (0..n)
            .map(|i| {
                let last = i + 1 == n;
                let size = if i == 0 { 60 * n as u16 } else { 60 };
                req(
                    i as u16,
                    1,
                    0,
                    size,
                    if last { 0 } else { NETTXF_MORE_DATA },
                )
            })
            .collect();
        v.push(req(99, 1, 0, 60, 0));
        let p = parse_packet(&v).unwrap();
        assert_eq!(p.consumed, n);
        assert_eq!(p.result.unwrap_err(), TxError::TooManySlots { count: n });
        // One fewer slot is accepted.
        let m = MAX_SLOTS_PER_PACKET;
        let mut w: Vec<RawTxSlot> = v[1..m].to_vec();
        w.insert(0, req(0, 1, 0, 60 * m as u16, NETTXF_MORE_DATA));
        let last = w.len() - 1;
        w[last] = req(last as u16, 1, 0, 60, 0);
        assert!(parse_packet(&w).unwrap().result.is_ok());
    }

    #[test]
    fn a_chain_running_past_the_published_slots_is_fatal() {
        let v = valid();
        assert_eq!(
            parse_packet(&v[..3]),
            Err(FatalTxError::Incomplete {
                needed: 4,
                available: 3
            })
        );
        // An extra chain that never ends.
        let e = RawExtraInfo::new_gso(EXTRA_FLAG_MORE, 1448, GSO_TYPE_TCPV4, 0).to_slot();
        assert!(parse_packet(&[v[0], e, e]).is_err());
        assert!(parse_packet(&[]).is_err());
    }

    #[test]
    fn mcast_requests_carry_no_packet() {
        let mac = [0x01, 0x00, 0x5e, 0, 0, 1];
        let v = [
            req(4, 0, 0, 0, NETTXF_EXTRA_INFO),
            RawExtraInfo::new_mcast(EXTRA_TYPE_MCAST_ADD, 0, mac).to_slot(),
        ];
        let p = parse_packet(&v).unwrap();
        assert_eq!(p.consumed, 2);
        assert_eq!(p.result, Ok(TxItem::Mcast(McastOp::Add(mac))));
    }

    #[test]
    fn random_corruption_never_panics() {
        // A cheap fuzz loop: overwrite bytes of a valid chain; the parser must
        // answer, and what it accepts must satisfy every check.
        let base = valid();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut v = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = (x % v.len() as u64) as usize;
                let b = ((x >> 8) % TX_REQUEST_SIZE as u64) as usize;
                v[s].0[b] = (x >> 32) as u8;
            }
            let Ok(p) = parse_packet(&v) else { continue };
            assert!(p.consumed <= v.len());
            assert_eq!(p.slot_ids.len(), p.consumed);
            if let Ok(TxItem::Packet(pkt)) = p.result {
                accepted += 1;
                assert!(pkt.segments.len() <= MAX_SLOTS_PER_PACKET);
                assert!(pkt.total_len >= ETH_HLEN);
                let sum: usize = pkt.segments.iter().map(|s| usize::from(s.len)).sum();
                assert_eq!(sum, pkt.total_len);
                assert!(pkt
                    .segments
                    .iter()
                    .all(|s| usize::from(s.offset) + usize::from(s.len) <= PAGE_SIZE));
            }
        }
        assert!(accepted > 0);
    }
}
