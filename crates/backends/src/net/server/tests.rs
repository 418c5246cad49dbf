//! A hostile frontend over the fakes: valid packets both ways, then corrupted
//! transmit requests, slot counts and extra-info chains, a chain that runs past
//! what was published and a producer index that runs ahead of the ring,
//! asserting what the frontend gets back and what reaches the TAP.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::net::offload::tests::tcp4_frame;
use std::collections::VecDeque;
use std::sync::Mutex;
use xen::abi::xen::{GrantRef, XEN_PAGE_SIZE};
use xen::fake::FakeGrants;
use xen::tap::{VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4};
use xen::{FrontRing, GrantMapper, MappedMemory};

impl NetGrants for FakeGrants {
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        at: &[usize],
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        assert_eq!(pieces.len(), at.len());
        for (p, &a) in pieces.iter().zip(at) {
            let m = self.map_grants(domid, &[p.gref], false)?;
            let len = usize::from(p.len);
            // As gntdev: the local side stays within the buffer.
            let buffer = dst.len();
            let local = dst.get_mut(a..a + len).ok_or(GntdevError::LengthMismatch {
                pieces: a + len,
                buffer,
            })?;
            m.read_bytes(usize::from(p.offset), local)
                .map_err(|_| GntdevError::BadOffset {
                    offset: usize::from(p.offset),
                })?;
        }
        Ok(())
    }
    fn copy_out(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
        at: &[usize],
    ) -> Result<(), GntdevError> {
        assert_eq!(pieces.len(), at.len());
        for (p, &a) in pieces.iter().zip(at) {
            let m = self.map_grants(domid, &[p.gref], true)?;
            let len = usize::from(p.len);
            // As gntdev: the local side stays within the buffer.
            let local = src.get(a..a + len).ok_or(GntdevError::LengthMismatch {
                pieces: a + len,
                buffer: src.len(),
            })?;
            m.write_bytes(usize::from(p.offset), local)
                .map_err(|_| GntdevError::BadOffset {
                    offset: usize::from(p.offset),
                })?;
        }
        Ok(())
    }
}

/// A TAP stand-in: frames written are kept, frames to read are queued.
#[derive(Debug, Default)]
struct FakeTap {
    written: Mutex<Vec<Vec<u8>>>,
    inbound: Mutex<VecDeque<Vec<u8>>>,
}

impl FakeTap {
    /// Queues `frames` for the backend to read, each with a plain vnet header.
    fn push_plain(&self, frames: &[Vec<u8>]) {
        let mut q = self.inbound.lock().unwrap();
        q.extend(frames.iter().map(|f| tap_frame(VirtioNetHdr::default(), f)));
    }
}

impl FrameIo for FakeTap {
    fn write_frame(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        self.written
            .lock()
            .unwrap()
            .push(parts.iter().flat_map(|p| p.iter().copied()).collect());
        Ok(())
    }
    fn read_frame(
        &self,
        hdr: &mut [u8; VIRTIO_NET_HDR_SIZE],
        data: &mut [u8],
    ) -> io::Result<Option<usize>> {
        // As a readv of the TAP: the vnet header, then the rest (truncated
        // to the buffer; the frame's whole length returned).
        Ok(self.inbound.lock().unwrap().pop_front().map(|f| {
            hdr.copy_from_slice(&f[..VIRTIO_NET_HDR_SIZE]);
            let rest = &f[VIRTIO_NET_HDR_SIZE..];
            let n = rest.len().min(data.len());
            data[..n].copy_from_slice(&rest[..n]);
            f.len()
        }))
    }
}

const GUEST: DomId = 7;
const TX_RING_GREF: GrantRef = 1;
const RX_RING_GREF: GrantRef = 2;
/// Guest data pages are grants DATA_GREF.. .
const DATA_GREF: GrantRef = 100;
const DATA_PAGES: usize = 24;

struct Guest {
    tx: FrontRing,
    rx: FrontRing,
    tx_mem: MappedMemory,
    data: MappedMemory,
    tap: Arc<FakeTap>,
    back: NetQueue<FakeGrants, FakeTap>,
}

fn guest(features: RxFeatures) -> Guest {
    let tx_mem = MappedMemory::anonymous(XEN_PAGE_SIZE).unwrap();
    let rx_mem = MappedMemory::anonymous(XEN_PAGE_SIZE).unwrap();
    let data = MappedMemory::anonymous(DATA_PAGES * XEN_PAGE_SIZE).unwrap();
    let grants = Arc::new(FakeGrants::new());
    grants.grant(GUEST, TX_RING_GREF, &tx_mem, 0, true).unwrap();
    grants.grant(GUEST, RX_RING_GREF, &rx_mem, 0, true).unwrap();
    for p in 0..DATA_PAGES {
        grants
            .grant(GUEST, DATA_GREF + p as u32, &data, p, true)
            .unwrap();
    }
    let tx = FrontRing::init(tx_mem.clone(), TX_REQUEST_SIZE).unwrap();
    let rx = FrontRing::init(rx_mem.clone(), RX_REQUEST_SIZE).unwrap();
    let map = |g| (*grants.map_grants(GUEST, &[g], true).unwrap()).clone();
    let btx = BackRing::new(map(TX_RING_GREF), TX_REQUEST_SIZE).unwrap();
    let brx = BackRing::new(map(RX_RING_GREF), RX_REQUEST_SIZE).unwrap();
    let tap = Arc::new(FakeTap::default());
    let back = NetQueue::new(GUEST, btx, brx, grants, Arc::clone(&tap), features);
    Guest {
        tx,
        rx,
        tx_mem,
        data,
        tap,
        back,
    }
}

fn all() -> RxFeatures {
    RxFeatures {
        sg: true,
        gso_tcpv4: true,
        gso_tcpv6: true,
    }
}

fn req(id: u16, page: usize, offset: u16, size: u16, flags: u16) -> RawTxSlot {
    TxRequest {
        gref: DATA_GREF + page as u32,
        offset,
        flags,
        id,
        size,
    }
    .to_slot()
}

impl Guest {
    /// Processes the tx ring; how many frames the TAP had when the guest was
    /// notified (`None`: not notified).
    fn process_tx_counting_frames_at_notify(&mut self) -> Option<usize> {
        let tap = Arc::clone(&self.tap);
        let mut written_at_notify = None;
        self.back
            .process_tx_notifying(|| {
                written_at_notify = Some(tap.written.lock().unwrap().len());
                Ok(())
            })
            .unwrap();
        written_at_notify
    }
    fn put(&self, page: usize, offset: usize, bytes: &[u8]) {
        self.data
            .write_bytes(page * XEN_PAGE_SIZE + offset, bytes)
            .unwrap();
    }
    fn page(&self, page: usize, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.data.read_bytes(page * XEN_PAGE_SIZE, &mut b).unwrap();
        b
    }
    /// Publishes `slots` on the tx ring and lets the backend run.
    fn transmit(&mut self, slots: &[RawTxSlot]) -> Result<Vec<TxResponse>, QueueError> {
        for s in slots {
            self.tx.put_request(&s.0).unwrap();
        }
        self.tx.push_requests().unwrap();
        self.back.process_tx()?;
        let mut out = Vec::new();
        let mut b = [0u8; TX_RESPONSE_SIZE];
        while self.tx.next_response(&mut b).unwrap() {
            out.push(TxResponse::from_bytes(&b));
        }
        Ok(out)
    }
    /// Posts rx buffers on pages `pages` (ids = page numbers).
    fn post_rx(&mut self, pages: std::ops::Range<usize>) {
        for p in pages {
            let r = RxRequest {
                id: p as u16,
                gref: DATA_GREF + p as u32,
            };
            self.rx.put_request(&r.to_bytes()).unwrap();
        }
        self.rx.push_requests().unwrap();
    }
    fn rx_responses(&mut self) -> Vec<[u8; RX_RESPONSE_SIZE]> {
        let mut out = Vec::new();
        let mut b = [0u8; RX_RESPONSE_SIZE];
        while self.rx.next_response(&mut b).unwrap() {
            out.push(b);
        }
        out
    }
    fn written(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.tap.written.lock().unwrap())
    }
}

fn ok(id: u16) -> TxResponse {
    TxResponse {
        id,
        status: RSP_OKAY,
    }
}

fn error(id: u16) -> TxResponse {
    TxResponse {
        id,
        status: RSP_ERROR,
    }
}

const NULL: TxResponse = TxResponse {
    id: 0,
    status: RSP_NULL,
};

#[test]
fn a_two_slot_packet_reaches_the_tap_with_its_checksum_offload() {
    let mut g = guest(all());
    let frame = tcp4_frame(3000);
    // First slot: 2000 bytes at offset 96 of page 0; second: the rest on page 1.
    g.put(0, 96, &frame[..2000]);
    g.put(1, 0, &frame[2000..]);
    let rsp = g
        .transmit(&[
            req(
                4,
                0,
                96,
                frame.len() as u16,
                NETTXF_MORE_DATA | NETTXF_CSUM_BLANK,
            ),
            req(5, 1, 0, (frame.len() - 2000) as u16, 0),
        ])
        .unwrap();
    assert_eq!(rsp, vec![ok(4), ok(5)]);
    let w = g.written();
    assert_eq!(w.len(), 1);
    let mut hb = [0u8; VIRTIO_NET_HDR_SIZE];
    hb.copy_from_slice(&w[0][..VIRTIO_NET_HDR_SIZE]);
    let h = VirtioNetHdr::from_bytes(&hb);
    assert_eq!(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_eq!((h.csum_start, h.csum_offset), (34, 16));
    assert_eq!(&w[0][VIRTIO_NET_HDR_SIZE..], &frame[..]);
    assert_eq!(g.back.stats().tx_packets, 1);
    assert_eq!(g.back.stats().tx_bytes, frame.len() as u64);
}

#[test]
fn a_gso_packet_carries_its_mss_and_the_extra_slot_is_answered_null() {
    let mut g = guest(all());
    let frame = tcp4_frame(1000);
    g.put(2, 0, &frame);
    let rsp = g
        .transmit(&[
            req(
                9,
                2,
                0,
                frame.len() as u16,
                NETTXF_EXTRA_INFO | NETTXF_CSUM_BLANK,
            ),
            RawExtraInfo::new_gso(0, 536, GSO_TYPE_TCPV4, 0).to_slot(),
        ])
        .unwrap();
    assert_eq!(rsp, vec![ok(9), NULL]);
    let w = g.written();
    let mut hb = [0u8; VIRTIO_NET_HDR_SIZE];
    hb.copy_from_slice(&w[0][..VIRTIO_NET_HDR_SIZE]);
    let h = VirtioNetHdr::from_bytes(&hb);
    assert_eq!(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    assert_eq!((h.gso_size, h.hdr_len), (536, 54));
}

#[test]
fn corrupted_packets_are_answered_with_errors_and_the_ring_goes_on() {
    let mut g = guest(all());
    let frame = tcp4_frame(100);
    g.put(0, 0, &frame);
    let len = frame.len() as u16;
    // 19 request slots (limit 18), each 10 bytes.
    let mut too_many = vec![req(1, 0, 0, 190, NETTXF_MORE_DATA)];
    for i in 0..18u16 {
        let more = if i < 17 { NETTXF_MORE_DATA } else { 0 };
        too_many.push(req(2 + i, 1, 0, 10, more));
    }
    let rsp = g.transmit(&too_many).unwrap();
    assert_eq!(rsp.len(), 19);
    assert!(rsp.iter().all(|r| r.status == RSP_ERROR));
    let cases: Vec<(Vec<RawTxSlot>, Vec<TxResponse>)> = vec![
        // The second slot claims more than the first slot's total.
        (
            vec![req(1, 0, 0, 100, NETTXF_MORE_DATA), req(2, 1, 0, 200, 0)],
            vec![error(1), error(2)],
        ),
        // Offset + size crosses the page.
        (vec![req(3, 0, 4000, 200, 0)], vec![error(3)]),
        // Shorter than an Ethernet header.
        (vec![req(4, 0, 0, 10, 0)], vec![error(4)]),
        // Unknown extra type, then a GSO extra repeated.
        (
            vec![
                req(5, 0, 0, len, NETTXF_EXTRA_INFO),
                RawExtraInfo::new(EXTRA_TYPE_MAX, 0).to_slot(),
            ],
            vec![error(5), NULL],
        ),
        (
            vec![
                req(6, 0, 0, len, NETTXF_EXTRA_INFO),
                RawExtraInfo::new_gso(EXTRA_FLAG_MORE, 1000, GSO_TYPE_TCPV4, 0).to_slot(),
                RawExtraInfo::new_gso(0, 1000, GSO_TYPE_TCPV4, 0).to_slot(),
            ],
            vec![error(6), NULL, NULL],
        ),
        // GSO with size 0.
        (
            vec![
                req(7, 0, 0, len, NETTXF_EXTRA_INFO),
                RawExtraInfo::new_gso(0, 0, GSO_TYPE_TCPV4, 0).to_slot(),
            ],
            vec![error(7), NULL],
        ),
        // A grant the guest never gave.
        (
            vec![TxRequest {
                gref: 9999,
                offset: 0,
                flags: 0,
                id: 8,
                size: len,
            }
            .to_slot()],
            vec![error(8)],
        ),
        // Checksum offload on a packet that is not TCP/UDP.
        (vec![req(10, 3, 0, 60, NETTXF_CSUM_BLANK)], vec![error(10)]),
    ];
    let n = cases.len() as u64;
    for (slots, want) in cases {
        assert_eq!(g.transmit(&slots).unwrap(), want, "{slots:?}");
    }
    assert!(g.written().is_empty());
    assert_eq!(g.back.stats().tx_errors, n + 1);
    // The ring still works.
    assert_eq!(g.transmit(&[req(11, 0, 0, len, 0)]).unwrap(), vec![ok(11)]);
    assert_eq!(g.written().len(), 1);
}

#[test]
fn a_chain_past_the_published_slots_disconnects() {
    let mut g = guest(all());
    g.put(0, 0, &tcp4_frame(10));
    let r = g.transmit(&[req(1, 0, 0, 64, NETTXF_MORE_DATA)]);
    assert!(matches!(
        r,
        Err(QueueError::Tx(FatalTxError::Incomplete { .. }))
    ));
    // An extra-info chain that never ends.
    let mut g = guest(all());
    let r = g.transmit(&[
        req(1, 0, 0, 64, NETTXF_EXTRA_INFO),
        RawExtraInfo::new_gso(EXTRA_FLAG_MORE, 1000, GSO_TYPE_TCPV4, 0).to_slot(),
        RawExtraInfo::new(EXTRA_TYPE_HASH, EXTRA_FLAG_MORE).to_slot(),
    ]);
    assert!(matches!(r, Err(QueueError::Tx(_))));
    assert!(g.written().is_empty());
}

#[test]
fn a_producer_index_running_ahead_disconnects() {
    let mut g = guest(all());
    // req_prod (offset 0 of the shared ring) far beyond the ring's 256 slots.
    g.tx_mem.write_u32(0, 1000).unwrap();
    assert!(matches!(
        g.back.process_tx(),
        Err(QueueError::Ring(RingError::Overflow { .. }))
    ));
}

fn tap_frame(h: VirtioNetHdr, frame: &[u8]) -> Vec<u8> {
    let mut f = h.to_bytes().to_vec();
    f.extend_from_slice(frame);
    f
}

#[test]
fn a_gso_frame_is_spread_over_rx_buffers_with_its_extra() {
    let mut g = guest(all());
    let frame = tcp4_frame(9000); // 9054 bytes: three pages
    let h = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        gso_size: 1448,
        hdr_len: 54,
        csum_start: 34,
        csum_offset: 16,
    };
    g.tap
        .inbound
        .lock()
        .unwrap()
        .push_back(tap_frame(h, &frame));
    g.post_rx(0..8);
    assert!(g.back.process_rx().unwrap());
    let rsp = g.rx_responses();
    assert_eq!(rsp.len(), 4);
    let r0 = RxResponse::from_bytes(&rsp[0]);
    assert_eq!(r0.id, 0);
    assert_eq!(r0.status, 4096);
    assert_eq!(
        r0.flags,
        NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_EXTRA_INFO | NETRXF_MORE_DATA
    );
    let mut e = [0u8; EXTRA_INFO_SIZE];
    e.copy_from_slice(&rsp[1]);
    let e = RawExtraInfo(e);
    assert_eq!(
        (e.kind(), e.gso_size(), e.gso_type()),
        (EXTRA_TYPE_GSO, 1448, GSO_TYPE_TCPV4)
    );
    let r2 = RxResponse::from_bytes(&rsp[2]);
    let r3 = RxResponse::from_bytes(&rsp[3]);
    assert_eq!((r2.id, r2.status, r2.flags), (2, 4096, NETRXF_MORE_DATA));
    assert_eq!((r3.id, r3.status, r3.flags), (3, (9054 - 8192) as i16, 0));
    // Page 1 held the extra slot's buffer: untouched.
    let mut got = g.page(0, 4096);
    got.extend(g.page(2, 4096));
    got.extend(g.page(3, 9054 - 8192));
    assert_eq!(got, frame);
    assert!(g.page(1, 4096).iter().all(|&b| b == 0));
    assert_eq!(g.back.stats().rx_packets, 1);
}

#[test]
fn a_frame_waits_for_buffers_then_is_dropped_never_blocking() {
    let mut g = guest(all());
    let frame = tcp4_frame(100);
    let plain = tap_frame(VirtioNetHdr::default(), &frame);
    g.tap.inbound.lock().unwrap().push_back(plain.clone());
    assert!(!g.back.process_rx().unwrap());
    assert!(g.back.rx_waiting());
    // Buffers come: the waiting frame goes in.
    g.post_rx(0..1);
    g.back.process_rx().unwrap();
    assert!(!g.back.rx_waiting());
    let r = RxResponse::from_bytes(&g.rx_responses()[0]);
    assert_eq!(r.status as usize, frame.len());
    assert_eq!(g.page(0, frame.len()), frame);
    // No buffers for long: frames are dropped and counted.
    g.back.set_rx_stall_drop(Duration::ZERO);
    for _ in 0..3 {
        g.tap.inbound.lock().unwrap().push_back(plain.clone());
    }
    g.back.process_rx().unwrap();
    g.back.process_rx().unwrap();
    assert_eq!(g.back.stats().rx_dropped, 3);
    assert!(g.tap.inbound.lock().unwrap().is_empty());
}

/// A distinct frame of `len` bytes (a TCP/IPv4 frame whose payload is `fill`).
fn frame_of(len: usize, fill: u8) -> Vec<u8> {
    let mut f = tcp4_frame(len - 54);
    f[54..].fill(fill);
    f
}

#[test]
fn several_frames_go_in_one_grant_copy_each_into_its_own_buffers() {
    let mut g = guest(all());
    g.post_rx(0..6);
    // One page, two pages, one page: four rx buffers of six.
    let frames = [frame_of(100, 1), frame_of(5000, 2), frame_of(60, 3)];
    g.tap.push_plain(&frames);
    assert!(g.back.process_rx().unwrap());
    let times = g.back.take_times();
    assert_eq!((times.tap_reads, times.rx_copies), (3, 1), "{times}");
    let rsp: Vec<RxResponse> = g
        .rx_responses()
        .iter()
        .map(RxResponse::from_bytes)
        .collect();
    let ids: Vec<u16> = rsp.iter().map(|r| r.id).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(rsp[0].status, 100);
    assert_eq!(
        (rsp[1].status, rsp[1].flags & NETRXF_MORE_DATA),
        (4096, NETRXF_MORE_DATA)
    );
    assert_eq!((rsp[2].status, rsp[2].flags & NETRXF_MORE_DATA), (904, 0));
    assert_eq!(rsp[3].status, 60);
    assert_eq!(g.page(0, 100), frames[0]);
    assert_eq!([g.page(1, 4096), g.page(2, 904)].concat(), frames[1]);
    assert_eq!(g.page(3, 60), frames[2]);
    assert_eq!(g.back.stats().rx_packets, 3);
}

#[test]
fn a_bad_grant_in_a_batch_fails_its_frame_alone() {
    let mut g = guest(all());
    g.post_rx(0..1);
    g.rx.put_request(&RxRequest { id: 42, gref: 5555 }.to_bytes())
        .unwrap();
    g.rx.push_requests().unwrap();
    g.post_rx(2..3);
    let frames = [frame_of(100, 1), frame_of(200, 2), frame_of(300, 3)];
    g.tap.push_plain(&frames);
    g.back.process_rx().unwrap();
    let rsp: Vec<(u16, i16)> = g
        .rx_responses()
        .iter()
        .map(RxResponse::from_bytes)
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(rsp, [(0, 100), (42, RSP_ERROR), (2, 300)]);
    assert_eq!(g.page(0, 100), frames[0]);
    assert_eq!(g.page(2, 300), frames[2]);
    let s = g.back.stats();
    assert_eq!((s.rx_packets, s.rx_errors), (2, 1));
}

#[test]
fn a_frame_that_finds_too_few_buffers_mid_batch_waits_intact() {
    let mut g = guest(all());
    g.post_rx(0..2);
    // The first frame takes one buffer; the second needs two and finds one.
    let frames = [frame_of(100, 1), frame_of(5000, 2), frame_of(80, 3)];
    g.tap.push_plain(&frames);
    g.back.process_rx().unwrap();
    assert!(g.back.rx_waiting());
    assert_eq!(g.rx_responses().len(), 1);
    assert_eq!(g.page(0, 100), frames[0]);
    // The third stays in the TAP while the second waits.
    assert_eq!(g.tap.inbound.lock().unwrap().len(), 1);
    g.post_rx(2..5);
    g.back.process_rx().unwrap();
    assert!(!g.back.rx_waiting());
    let ids: Vec<u16> = g
        .rx_responses()
        .iter()
        .map(|b| RxResponse::from_bytes(b).id)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!([g.page(1, 4096), g.page(2, 904)].concat(), frames[1]);
    assert_eq!(g.page(3, 80), frames[2]);
    assert_eq!(g.back.stats().rx_packets, 3);
}

#[test]
fn frames_the_frontend_cannot_take_are_dropped() {
    // No scatter-gather: a frame of two pages cannot be delivered.
    let mut g = guest(RxFeatures::default());
    g.post_rx(0..4);
    let big = tcp4_frame(5000);
    g.tap
        .inbound
        .lock()
        .unwrap()
        .push_back(tap_frame(VirtioNetHdr::default(), &big));
    // GSO the frontend did not enable.
    let h = VirtioNetHdr {
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        gso_size: 1000,
        ..Default::default()
    };
    g.tap
        .inbound
        .lock()
        .unwrap()
        .push_back(tap_frame(h, &tcp4_frame(10)));
    // Runt.
    g.tap.inbound.lock().unwrap().push_back(vec![0; 12]);
    g.back.process_rx().unwrap();
    assert_eq!(g.back.stats().rx_dropped, 3);
    assert!(g.rx_responses().is_empty());
}

#[test]
fn an_rx_buffer_with_a_bad_grant_gets_an_error_status() {
    let mut g = guest(all());
    g.rx.put_request(&RxRequest { id: 42, gref: 5555 }.to_bytes())
        .unwrap();
    g.rx.push_requests().unwrap();
    g.tap
        .inbound
        .lock()
        .unwrap()
        .push_back(tap_frame(VirtioNetHdr::default(), &tcp4_frame(10)));
    g.back.process_rx().unwrap();
    let r = RxResponse::from_bytes(&g.rx_responses()[0]);
    assert_eq!((r.id, r.status), (42, RSP_ERROR));
    assert_eq!(g.back.stats().rx_errors, 1);
}

#[test]
fn rate_limits_transmission_without_losing_packets() {
    let mut g = guest(all());
    let frame = tcp4_frame(546); // 600 bytes
    g.put(0, 0, &frame);
    let len = frame.len() as u16;
    g.back.set_tx_rate(TxRate {
        bytes: 1000,
        interval: Duration::from_millis(100),
    });
    let rsp = g
        .transmit(&[req(1, 0, 0, len, 0), req(2, 0, 0, len, 0)])
        .unwrap();
    // The second packet exceeds the interval's credit: it waits, unanswered.
    assert_eq!(rsp, vec![ok(1)]);
    assert!(g.back.tx_throttled_until().is_some());
    assert_eq!(g.written().len(), 1);
    std::thread::sleep(Duration::from_millis(120));
    g.back.process_tx().unwrap();
    let mut b = [0u8; TX_RESPONSE_SIZE];
    assert!(g.tx.next_response(&mut b).unwrap());
    assert_eq!(TxResponse::from_bytes(&b), ok(2));
    assert_eq!(g.written().len(), 1);
    assert!(g.back.tx_throttled_until().is_none());
}

#[test]
fn credit_accumulates_for_packets_larger_than_an_interval() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let rate = TxRate {
        bytes: 1000,
        interval: ms(10),
    };
    let mut c = Credit {
        rate,
        remaining: rate.bytes,
        next_refill: t0 + rate.interval,
    };
    // 2500 bytes need two refills on top of the first interval's credit.
    assert!(!c.take(2500, t0));
    assert!(!c.take(2500, t0 + ms(10)));
    assert!(c.take(2500, t0 + ms(20)));
    assert_eq!(c.remaining, 500);
    // Idle time adds one interval's credit, not more (as xen-netback).
    assert!(!c.take(2000, t0 + ms(1000)));
    // The cap: the largest packet always fits eventually, more never piles up.
    let mut t = t0 + ms(1000);
    for _ in 0..1000 {
        t += ms(10);
        let _ = c.take(usize::MAX >> 1, t);
    }
    assert_eq!(c.remaining, RATE_MAX_BURST);
    assert!(c.take(65_535, t));
}

#[test]
fn multicast_control_filters_received_frames_by_the_frontends_list() {
    let mut g = guest(all());
    g.back.set_mcast_filter(Arc::new(McastFilter::new(true)));
    let listed = [0x01, 0x00, 0x5e, 0, 0, 1];
    let other = [0x33, 0x33, 0, 0, 0, 1];
    let add = [
        req(4, 0, 0, 0, NETTXF_EXTRA_INFO),
        RawExtraInfo::new_mcast(EXTRA_TYPE_MCAST_ADD, 0, listed).to_slot(),
    ];
    assert_eq!(g.transmit(&add).unwrap(), vec![ok(4), NULL]);
    let to = |dest: [u8; 6]| {
        let mut f = tcp4_frame(10);
        f[..6].copy_from_slice(&dest);
        tap_frame(VirtioNetHdr::default(), &f)
    };
    g.post_rx(0..4);
    for d in [other, listed, [0xff; 6], [0x00, 0x16, 0x3e, 1, 2, 3]] {
        g.tap.inbound.lock().unwrap().push_back(to(d));
    }
    g.back.process_rx().unwrap();
    // The unlisted multicast frame is filtered; the rest arrive.
    assert_eq!(g.rx_responses().len(), 3);
    assert_eq!(g.back.stats().rx_filtered, 1);
    assert_eq!(g.back.stats().rx_packets, 3);
    // Removed from the list: filtered too.
    let del = [
        req(5, 0, 0, 0, NETTXF_EXTRA_INFO),
        RawExtraInfo::new_mcast(EXTRA_TYPE_MCAST_DEL, 0, listed).to_slot(),
    ];
    assert_eq!(g.transmit(&del).unwrap(), vec![ok(5), NULL]);
    g.tap.inbound.lock().unwrap().push_back(to(listed));
    g.back.process_rx().unwrap();
    assert_eq!(g.back.stats().rx_filtered, 2);
}

#[test]
fn multicast_list_is_bounded_and_the_filter_off_admits_all() {
    let f = McastFilter::new(false);
    for i in 0..MCAST_MAX {
        assert!(f.apply(&McastOp::Add([1, 0, 0, 0, 0, i as u8])));
    }
    assert!(!f.apply(&McastOp::Add([1, 0, 0, 0, 0, 0xff])));
    assert!(f.apply(&McastOp::Del([1, 0, 0, 0, 0, 0])));
    assert!(f.apply(&McastOp::Add([1, 0, 0, 0, 0, 0xff])));
    assert!(f.admits(&[0x33, 0x33, 0, 0, 0, 9]));
    let on = McastFilter::new(true);
    assert!(on.admits(&[0xff; 6]));
    assert!(on.admits(&[0x00, 0x16, 0x3e, 0, 0, 1]));
    assert!(!on.admits(&[0x33, 0x33, 0, 0, 0, 9]));
}

#[test]
fn a_batch_with_a_bad_grant_refuses_that_packet_only_and_small_notifies_after_writing() {
    let mut g = guest(all());
    let frame = tcp4_frame(546);
    let len = frame.len() as u16;
    g.put(0, 0, &frame);
    g.put(1, 100, &frame);
    let mut bad = req(2, 0, 0, len, 0);
    // A grant the guest never gave.
    bad.0[0..4].copy_from_slice(&(DATA_GREF + 1000).to_ne_bytes());
    for s in [req(1, 0, 0, len, 0), bad, req(3, 1, 100, len, 0)] {
        g.tx.put_request(&s.0).unwrap();
    }
    g.tx.push_requests().unwrap();
    let written_at_notify = g.process_tx_counting_frames_at_notify();
    // A batch this small (acknowledgements, pings): its frames went to the
    // TAP (and dom0's stack) before the notification.
    assert!(2 * frame.len() < TX_EARLY_NOTIFY_BYTES);
    assert_eq!(written_at_notify, Some(2));
    let mut out = Vec::new();
    let mut b = [0u8; TX_RESPONSE_SIZE];
    while g.tx.next_response(&mut b).unwrap() {
        out.push(TxResponse::from_bytes(&b));
    }
    assert_eq!(out, vec![ok(1), error(2), ok(3)]);
    let w = g.written();
    assert_eq!(w.len(), 2);
    assert!(w.iter().all(|f| f[VIRTIO_NET_HDR_SIZE..] == frame[..]));
    assert_eq!(g.back.stats().tx_errors, 1);
}

#[test]
fn rx_responses_are_pushed_after_each_copy_batch() {
    // As xen-netback's xenvif_rx_copy_flush: the guest sees a batch's frames
    // while the next batch is copied, not only when the TAP is empty.
    let mut g = guest(all());
    let frame = tcp4_frame(20_000); // 20054 bytes: five pages, five pieces
    let frames = 20;
    g.tap.push_plain(&vec![frame; frames]);
    for i in 0..frames * 5 {
        let r = RxRequest {
            id: i as u16,
            gref: DATA_GREF + (i % DATA_PAGES) as u32,
        };
        g.rx.put_request(&r.to_bytes()).unwrap();
    }
    g.rx.push_requests().unwrap();
    let mut seen = Vec::new();
    let (rx, back) = (&mut g.rx, &mut g.back);
    back.process_rx_notifying(|| {
        // The frontend's interrupt: it takes every response and asks for an
        // event on the next.
        let mut b = [0u8; RX_RESPONSE_SIZE];
        let mut n = 0;
        loop {
            while rx.next_response(&mut b).unwrap() {
                n += 1;
            }
            if !rx.final_check_for_responses().unwrap() {
                break;
            }
        }
        seen.push(n);
        Ok(())
    })
    .unwrap();
    // A batch ends once it holds RX_COPY_PIECES pieces: 13 frames of 5.
    let first = RX_COPY_PIECES.div_ceil(5) * 5;
    assert_eq!(seen, vec![first, frames * 5 - first]);
    assert_eq!(g.back.stats().rx_packets, frames as u64);
}

#[test]
fn a_batch_of_much_data_notifies_before_writing() {
    // The guest gets its buffers back while dom0's stack takes the frames.
    let mut g = guest(all());
    let frame = tcp4_frame(4000);
    let n = TX_EARLY_NOTIFY_BYTES.div_ceil(frame.len());
    for p in 0..n {
        g.put(p, 0, &frame);
        g.tx.put_request(&req(p as u16, p, 0, frame.len() as u16, 0).0)
            .unwrap();
    }
    g.tx.push_requests().unwrap();
    let written_at_notify = g.process_tx_counting_frames_at_notify();
    assert_eq!(written_at_notify, Some(0));
    assert_eq!(g.written().len(), n);
}
