//! A hostile frontend's tx ring contents (12-byte slots) through packet parsing
//! and validation, then the offload header built from the packet's bytes: must
//! never panic, and what is accepted must be self-consistent.
#![no_main]

use backends::net::abi::{RawTxSlot, PAGE_SIZE, TX_REQUEST_SIZE};
use backends::net::offload::tx_vnet_hdr;
use backends::net::request::{parse_packet, TxItem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let slots: Vec<RawTxSlot> = data
        .chunks_exact(TX_REQUEST_SIZE)
        .map(|c| {
            let mut s = [0u8; TX_REQUEST_SIZE];
            s.copy_from_slice(c);
            RawTxSlot(s)
        })
        .collect();
    let mut pos = 0;
    while pos < slots.len() {
        let Ok(p) = parse_packet(&slots[pos..]) else {
            break;
        };
        assert!(p.consumed >= 1 && pos + p.consumed <= slots.len());
        assert_eq!(p.slot_ids.len(), p.consumed);
        if let Ok(TxItem::Packet(pkt)) = &p.result {
            let sum: usize = pkt.segments.iter().map(|s| usize::from(s.len)).sum();
            assert_eq!(sum, pkt.total_len);
            for s in &pkt.segments {
                assert!(usize::from(s.offset) + usize::from(s.len) <= PAGE_SIZE);
            }
            // The packet's bytes are the guest's too: use the input as them.
            let frame: Vec<u8> = data.iter().copied().cycle().take(pkt.total_len).collect();
            if let Ok(h) = tx_vnet_hdr(pkt, &frame) {
                assert!(usize::from(h.csum_start) + usize::from(h.csum_offset) + 2 <= frame.len());
                assert!(usize::from(h.hdr_len) <= frame.len());
            }
        }
        pos += p.consumed;
    }
});
