//! Serving one netif queue: its tx ring (guest to dom0) and rx ring (dom0 to
//! guest), between the frontend's grants and a frame device (the TAP).
//!
//! Transmit: every slot the frontend published is copied out of the ring once,
//! each packet's chain is walked and validated ([`parse_packet`]), the packet
//! is grant-copied into one buffer behind a `virtio_net_hdr` built from its
//! flags and GSO extra ([`tx_vnet_hdr`]) and written to the TAP; every slot is
//! answered. A bad packet is answered with `RSP_ERROR` and counted; a chain
//! that runs past what was published, or a producer index that runs ahead of
//! the ring, is a [`QueueError`]: that NIC is disconnected.
//!
//! Receive: frames read from the TAP (vnet header first) are grant-copied into
//! the rx buffers the frontend posted (feature-rx-copy), a page per slot with
//! `NETRXF_more_data` between them, a GSO extra slot after the first when the
//! frame is segmented. A frame that finds too few buffers waits (the TAP's
//! queue holds the rest) and is dropped, with everything read while the guest
//! still posts none, after [`RX_STALL_DROP`]: the backend never blocks on a
//! guest.

use std::io::{self, IoSlice, IoSliceMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::abi::*;
use super::offload::{gso_extra, rx_meta, tx_vnet_hdr, RxMeta};
use super::request::{parse_packet, FatalTxError, McastOp, Packet, Parsed, TxItem};
use super::stats::{ns_since, QueueTimes};
use xen::abi::xen::DomId;
use xen::tap::{VirtioNetHdr, VIRTIO_NET_HDR_SIZE};
use xen::{BackRing, Gntdev, GntdevError, GrantPiece, RingError, Tap};

/// Copying between local buffers and a frontend's grants, several pieces per
/// call. The real one is gntdev's grant copy (one ioctl per packet); tests use
/// the fakes.
pub trait NetGrants {
    /// Copies piece *k* of `pieces` to `dst[at[k]..]`.
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        at: &[usize],
        dst: &mut [u8],
    ) -> Result<(), GntdevError>;
    /// Copies `src[at[k]..]` to piece *k* of `pieces`.
    fn copy_out(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
        at: &[usize],
    ) -> Result<(), GntdevError>;
}

impl NetGrants for Gntdev {
    fn copy_in(
        &self,
        domid: DomId,
        pieces: &[GrantPiece],
        at: &[usize],
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        self.copy_from_grants_at(domid, pieces, at, dst)
    }
    fn copy_out(
        &self,
        domid: DomId,
        src: &[u8],
        pieces: &[GrantPiece],
        at: &[usize],
    ) -> Result<(), GntdevError> {
        self.copy_to_grants_at(domid, src, pieces, at)
    }
}

/// Where frames go to and come from: a TAP with `IFF_VNET_HDR` (every frame
/// starts with a [`VirtioNetHdr`]).
pub trait FrameIo {
    /// Writes one frame, gathered from `parts` (the vnet header first).
    fn write_frame(&self, parts: &[IoSlice<'_>]) -> io::Result<()>;
    /// Reads one frame: its vnet header into `hdr`, the rest into `data`;
    /// `Ok(Some(total length))`, `Ok(None)` when none is waiting.
    fn read_frame(
        &self,
        hdr: &mut [u8; VIRTIO_NET_HDR_SIZE],
        data: &mut [u8],
    ) -> io::Result<Option<usize>>;
}

impl FrameIo for Tap {
    fn write_frame(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        use std::io::Write;
        let want: usize = parts.iter().map(|p| p.len()).sum();
        let n = self.file().write_vectored(parts)?;
        if n != want {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short TAP write"));
        }
        Ok(())
    }
    fn read_frame(
        &self,
        hdr: &mut [u8; VIRTIO_NET_HDR_SIZE],
        data: &mut [u8],
    ) -> io::Result<Option<usize>> {
        use std::io::Read;
        loop {
            let mut parts = [IoSliceMut::new(hdr), IoSliceMut::new(data)];
            match self.file().read_vectored(&mut parts) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a received frame waits for rx buffers before it (and whatever
/// arrives while the guest still posts none) is dropped.
pub const RX_STALL_DROP: Duration = Duration::from_millis(500);
/// Most frames moved from the TAP per call, so that one busy direction does not
/// starve the other.
pub const RX_BATCH: usize = 64;
/// The largest frame read from the TAP: a 64 KiB GSO frame, its Ethernet and
/// VLAN headers and the vnet header.
pub const RX_FRAME_MAX: usize = VIRTIO_NET_HDR_SIZE + 65_536 + 64;
/// Most frames received together: read from the TAP one after another into
/// slots of the queue's buffer, their grants copied in one call, then answered
/// (one system call and fewer hypercalls for several frames: gntdev makes one
/// hypercall per 16 pieces).
pub const RX_COPY_BATCH: usize = 16;
/// Most grant copy pieces of one rx batch before it is copied and its
/// responses pushed (xen-netback's `COPY_BATCH_SIZE`: 64 copy operations, ~4
/// frames of 64 KiB): the guest's ring holds ~17 such frames, and pushing
/// only when it is full would leave the guest idle while the backend fills
/// it and the backend idle while the guest empties it.
pub const RX_COPY_PIECES: usize = 64;
/// Bytes of one slot of the rx buffer: the largest frame after its vnet
/// header, rounded up to whole pages so that every slot starts on a page.
pub const RX_SLOT_BYTES: usize =
    (RX_FRAME_MAX - VIRTIO_NET_HDR_SIZE).div_ceil(PAGE_SIZE) * PAGE_SIZE;
/// How many of a transmitted packet's first bytes are gathered to find its
/// headers for the offload metadata (Ethernet, VLAN, IPv4/IPv6 with extension
/// headers, TCP with options fit well within it).
pub const TX_HEADER_PEEK: usize = 512;

/// A buffer whose usable part starts on a page boundary, so that a grant copy
/// of a page-sized piece to or from it is one copy operation (gntdev splits a
/// local side that crosses a page into two, each pinning a page).
#[derive(Debug)]
struct PageBuf {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageBuf {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + PAGE_SIZE];
        let start = buf.as_ptr().align_offset(PAGE_SIZE);
        assert!(start < PAGE_SIZE, "a u8 buffer can always be aligned");
        Self { buf, start, len }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// The most multicast addresses a frontend may add (xen-netback's
/// `XEN_NETBK_MCAST_MAX`); more are refused with `RSP_ERROR`.
pub const MCAST_MAX: usize = 64;

/// A NIC's multicast filter (feature-multicast-control), shared by its queues:
/// the list the frontend builds with MCAST_ADD/DEL extra-info requests (kept
/// whether or not filtering is on, as netif.h says), applied to received frames
/// when the frontend set `request-multicast-control`.
#[derive(Debug, Default)]
pub struct McastFilter {
    enabled: bool,
    addrs: Mutex<Vec<[u8; ETH_ALEN]>>,
}

impl McastFilter {
    /// A filter, applied when `enabled` (the frontend's request-multicast-control).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            addrs: Mutex::new(Vec::new()),
        }
    }

    /// Adds or removes an address; `false` when the list is full (as
    /// xen-netback: duplicates are kept, a removal takes one).
    fn apply(&self, op: &McastOp) -> bool {
        let mut a = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        match op {
            McastOp::Add(m) if a.len() < MCAST_MAX => {
                a.push(*m);
                true
            }
            McastOp::Add(_) => false,
            McastOp::Del(m) => {
                if let Some(i) = a.iter().position(|x| x == m) {
                    a.remove(i);
                }
                true
            }
        }
    }

    /// Whether a frame for `dest` may go to the frontend: always when the
    /// filter is off, for unicast and broadcast; a multicast address only when
    /// listed.
    pub fn admits(&self, dest: &[u8; ETH_ALEN]) -> bool {
        let multicast = dest[0] & 1 == 1 && *dest != [0xff; ETH_ALEN];
        if !self.enabled || !multicast {
            return true;
        }
        self.addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(dest)
    }
}

/// What the frontend enabled for frames it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxFeatures {
    /// feature-sg: frames may span several rx slots.
    pub sg: bool,
    pub gso_tcpv4: bool,
    pub gso_tcpv6: bool,
}

/// xl's `rate=`: at most `bytes` transmitted per `interval` (Linux
/// xen-netback's credit scheme, `tx_credit_exceeded` / `tx_add_credit`: once an
/// interval has passed, `bytes` more credit, the total capped at
/// [`RATE_MAX_BURST`] or `bytes` if larger; a packet waits until the credit
/// covers it, so a 64 KiB GSO packet under a small rate waits several
/// intervals and the average stays at the rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRate {
    pub bytes: u64,
    pub interval: Duration,
}

/// The most credit that accumulates (xen-netback's `max_burst`): enough for
/// the largest packet, so that a NIC never seizes up.
pub const RATE_MAX_BURST: u64 = 131_072;

#[derive(Debug)]
struct Credit {
    rate: TxRate,
    remaining: u64,
    next_refill: Instant,
}

impl Credit {
    /// Takes `len` bytes of credit, refilling first when an interval passed.
    fn take(&mut self, len: usize, now: Instant) -> bool {
        let len = len as u64;
        if now >= self.next_refill {
            let cap = RATE_MAX_BURST.max(self.rate.bytes);
            self.remaining = self.remaining.saturating_add(self.rate.bytes).min(cap);
            self.next_refill = now + self.rate.interval;
        }
        if len <= self.remaining {
            self.remaining -= len;
            true
        } else {
            false
        }
    }
}

/// Most ring slots whose packets are copied out together (the tx ring's
/// size): their grants in one copy call, their responses pushed, and only then
/// their frames written to the TAP. Each slot takes a page of the queue's
/// buffer (1 MiB).
pub const TX_BATCH_SLOTS: usize = 256;

/// A transmit batch of at least this many bytes has its responses signalled
/// before its frames are written to the TAP (the guest gets its buffers back
/// and sends on while dom0's stack takes the frames); a smaller one (the
/// acknowledgements of a download, pings) is written first: its write runs
/// dom0's TCP, which sends the next data the guest waits for, and the
/// notification's hypercall would only delay it.
pub const TX_EARLY_NOTIFY_BYTES: usize = 16_384;

/// An error of the caller's notification.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// A packet of a tx batch: answered already, or copied (its pieces).
enum Pending {
    Answered(i16),
    Copied(std::ops::Range<usize>),
}

/// A copied packet waiting for the TAP: its vnet header and pieces.
#[derive(Debug)]
struct TxFrame {
    hdr: [u8; VIRTIO_NET_HDR_SIZE],
    pieces: std::ops::Range<usize>,
    len: usize,
}

/// Counters of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Refused by validation or offload checks (answered `RSP_ERROR`).
    pub tx_errors: u64,
    /// Valid but lost: grant copy or TAP write failed.
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Dropped: no rx buffers in time, unsupported offload, too large.
    pub rx_dropped: u64,
    /// Copy into the guest's buffers failed (answered `RSP_ERROR`).
    pub rx_errors: u64,
    /// Multicast frames the frontend's filter does not list (not sent).
    pub rx_filtered: u64,
}

/// Why a queue stops (the NIC is disconnected).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("ring protocol violation")]
    Ring(#[from] RingError),
    #[error("transmit protocol violation")]
    Tx(#[from] FatalTxError),
    #[error("reading the TAP failed")]
    Tap(#[source] io::Error),
    #[error("notifying the frontend failed")]
    Notify(#[source] BoxedError),
}

/// What became of a frame read from the TAP.
enum Admission {
    /// Its rx requests taken and its pieces added to the batch.
    Queued,
    /// Dropped or filtered (counted).
    Gone,
    /// Too few rx buffers posted (it needs this many): it waits.
    NoBuffers(u32),
}

/// A frame of an rx batch: its rx requests (in `RxQueue::reqs`), its pieces
/// (in `RxQueue::pieces`) and what its first slot says.
#[derive(Debug)]
struct RxFrame {
    len: usize,
    meta: RxMeta,
    reqs: std::ops::Range<usize>,
    pieces: std::ops::Range<usize>,
}

/// Whether the `n`th event of a kind (counted from 1) is worth a warning: the
/// first and then every power of two, so that a flood stays a few lines.
fn worth_logging(n: u64) -> bool {
    n.is_power_of_two()
}

/// Counts one more dropped or failed packet in `counter` and logs it when
/// [`worth_logging`]: a guest that sends garbage cannot flood dom0's log.
fn count(counter: &mut u64, domid: DomId, what: std::fmt::Arguments<'_>) {
    *counter += 1;
    if worth_logging(*counter) {
        tracing::warn!(domid, n = *counter, "{what}");
    }
}

/// The transmit half of a queue (guest to dom0): its tx ring.
#[derive(Debug)]
pub struct TxQueue<G, F> {
    domid: DomId,
    tx: BackRing,
    grants: Arc<G>,
    io: Arc<F>,
    mcast: Arc<McastFilter>,
    /// Slots copied out of the tx ring; those from `pos` on wait for credit.
    slots: Vec<RawTxSlot>,
    pos: usize,
    credit: Option<Credit>,
    pieces: Vec<GrantPiece>,
    /// Where each piece of a tx batch goes in `txbuf`: a page each, at the
    /// grant's own offset, so that no piece crosses a local page.
    at: Vec<usize>,
    txbuf: PageBuf,
    tx_frames: Vec<TxFrame>,
    /// Its `tx_*` counters.
    pub stats: NetStats,
    /// Where its time goes.
    pub times: QueueTimes,
}

/// The receive half of a queue (dom0 to guest): its rx ring.
#[derive(Debug)]
pub struct RxQueue<G, F> {
    domid: DomId,
    rx: BackRing,
    grants: Arc<G>,
    io: Arc<F>,
    features: RxFeatures,
    mcast: Arc<McastFilter>,
    /// The pieces of an rx batch's frames and where each comes from in `rxbuf`.
    pieces: Vec<GrantPiece>,
    at: Vec<usize>,
    /// The rx requests an rx batch's frames took.
    reqs: Vec<RxRequest>,
    frames: Vec<RxFrame>,
    /// The vnet header of the frame in each of `rxbuf`'s slots.
    rxhdrs: Vec<[u8; VIRTIO_NET_HDR_SIZE]>,
    /// Received frames' bytes after the vnet header: [`RX_COPY_BATCH`] slots of
    /// [`RX_SLOT_BYTES`], each page-aligned.
    rxbuf: PageBuf,
    /// Length of a frame in slot 0 of `rxbuf` still waiting for rx buffers.
    pending: Option<usize>,
    stalled_since: Option<Instant>,
    rx_stall_drop: Duration,
    /// Its `rx_*` counters.
    pub stats: NetStats,
    /// Where its time goes.
    pub times: QueueTimes,
}

/// One queue of one NIC: its two halves (one thread serves both).
#[derive(Debug)]
pub struct NetQueue<G, F> {
    pub tx: TxQueue<G, F>,
    pub rx: RxQueue<G, F>,
}

impl<G: NetGrants, F: FrameIo> NetQueue<G, F> {
    pub fn new(
        domid: DomId,
        tx: BackRing,
        rx: BackRing,
        grants: Arc<G>,
        io: Arc<F>,
        features: RxFeatures,
    ) -> Self {
        let mcast = Arc::new(McastFilter::default());
        Self {
            tx: TxQueue {
                domid,
                tx,
                grants: Arc::clone(&grants),
                io: Arc::clone(&io),
                mcast: Arc::clone(&mcast),
                slots: Vec::new(),
                pos: 0,
                credit: None,
                pieces: Vec::with_capacity(MAX_SLOTS_PER_PACKET),
                at: Vec::with_capacity(MAX_SLOTS_PER_PACKET),
                txbuf: PageBuf::new(TX_BATCH_SLOTS * PAGE_SIZE),
                tx_frames: Vec::new(),
                stats: NetStats::default(),
                times: QueueTimes::default(),
            },
            rx: RxQueue {
                domid,
                rx,
                grants,
                io,
                features,
                mcast,
                pieces: Vec::with_capacity(RX_COPY_BATCH * MAX_SLOTS_PER_PACKET),
                at: Vec::with_capacity(RX_COPY_BATCH * MAX_SLOTS_PER_PACKET),
                reqs: Vec::with_capacity(RX_COPY_BATCH * MAX_SLOTS_PER_PACKET),
                frames: Vec::with_capacity(RX_COPY_BATCH),
                rxhdrs: vec![[0; VIRTIO_NET_HDR_SIZE]; RX_COPY_BATCH],
                rxbuf: PageBuf::new(RX_COPY_BATCH * RX_SLOT_BYTES),
                pending: None,
                stalled_since: None,
                rx_stall_drop: RX_STALL_DROP,
                stats: NetStats::default(),
                times: QueueTimes::default(),
            },
        }
    }

    /// Shares the NIC's multicast filter (the default: off, its own list).
    pub fn set_mcast_filter(&mut self, f: Arc<McastFilter>) {
        self.tx.mcast = Arc::clone(&f);
        self.rx.mcast = f;
    }

    /// Limits transmission to `rate` (xl's `rate=`).
    pub fn set_tx_rate(&mut self, rate: TxRate) {
        self.tx.set_tx_rate(rate);
    }

    /// When transmission waits for credit: the time it is refilled.
    pub fn tx_throttled_until(&self) -> Option<Instant> {
        self.tx.tx_throttled_until()
    }

    /// How long a frame waits for rx buffers before it is dropped.
    pub fn set_rx_stall_drop(&mut self, d: Duration) {
        self.rx.rx_stall_drop = d;
    }

    /// Whether a received frame waits for rx buffers (then the TAP is not read).
    pub fn rx_waiting(&self) -> bool {
        self.rx.rx_waiting()
    }

    /// [`TxQueue::process_tx`].
    pub fn process_tx(&mut self) -> Result<bool, QueueError> {
        self.tx.process_tx()
    }

    /// [`TxQueue::process_tx_notifying`].
    pub fn process_tx_notifying(
        &mut self,
        notify: impl FnMut() -> Result<(), BoxedError>,
    ) -> Result<(), QueueError> {
        self.tx.process_tx_notifying(notify)
    }

    /// [`RxQueue::process_rx`].
    pub fn process_rx(&mut self) -> Result<bool, QueueError> {
        self.rx.process_rx()
    }

    /// [`RxQueue::process_rx_notifying`].
    pub fn process_rx_notifying(
        &mut self,
        notify: impl FnMut() -> Result<(), BoxedError>,
    ) -> Result<(), QueueError> {
        self.rx.process_rx_notifying(notify)
    }

    /// Both halves' timing counters since the last call (which resets them).
    pub fn take_times(&mut self) -> QueueTimes {
        let mut t = self.tx.times.take();
        t += self.rx.times.take();
        t
    }

    /// Both halves' counters.
    pub fn stats(&self) -> NetStats {
        let (t, r) = (self.tx.stats, self.rx.stats);
        NetStats {
            tx_packets: t.tx_packets,
            tx_bytes: t.tx_bytes,
            tx_errors: t.tx_errors,
            tx_dropped: t.tx_dropped,
            ..r
        }
    }
}

impl<G: NetGrants, F: FrameIo> TxQueue<G, F> {
    /// Limits transmission to `rate` (xl's `rate=`).
    pub fn set_tx_rate(&mut self, rate: TxRate) {
        self.credit = Some(Credit {
            rate,
            remaining: rate.bytes,
            next_refill: Instant::now() + rate.interval,
        });
    }

    /// When transmission waits for credit: the time it is refilled.
    pub fn tx_throttled_until(&self) -> Option<Instant> {
        match &self.credit {
            Some(c) if self.pos < self.slots.len() => Some(c.next_refill),
            _ => None,
        }
    }

    /// Sends every packet on the tx ring; `Ok(true)` when the frontend must be
    /// notified of responses. [`TxQueue::process_tx_notifying`] without the
    /// early notification (the tests' entry).
    pub fn process_tx(&mut self) -> Result<bool, QueueError> {
        let mut notify = false;
        self.process_tx_notifying(|| {
            notify = true;
            Ok(())
        })?;
        Ok(notify)
    }

    /// Sends every packet on the tx ring, a batch of at most
    /// [`TX_BATCH_SLOTS`] slots at a time: each packet validated, the batch's
    /// grants copied in one call, its responses pushed and, when the ring asks
    /// for it, `notify` called before its frames are written to the TAP when
    /// the batch has [`TX_EARLY_NOTIFY_BYTES`] (so the guest frees its buffers,
    /// and its TCP sends on, while dom0's network stack takes the frames, as
    /// it does with xen-netback's copied slots), after them when it has fewer.
    /// A frame the TAP then refuses is counted as dropped.
    pub fn process_tx_notifying(
        &mut self,
        mut notify: impl FnMut() -> Result<(), BoxedError>,
    ) -> Result<(), QueueError> {
        let mut raw = [0u8; TX_REQUEST_SIZE];
        loop {
            if self.pos >= self.slots.len() {
                self.slots.clear();
                self.pos = 0;
                while self.tx.next_request(&mut raw)? {
                    self.slots.push(RawTxSlot(raw));
                }
            }
            let throttled = self.tx_batch()?;
            let bytes: usize = self.tx_frames.iter().map(|f| f.len).sum();
            let early = bytes >= TX_EARLY_NOTIFY_BYTES;
            let must_notify = self.tx.push_responses()?;
            if must_notify && early {
                notify().map_err(QueueError::Notify)?;
            }
            self.write_tx_frames();
            if must_notify && !early {
                notify().map_err(QueueError::Notify)?;
            }
            if throttled {
                return Ok(());
            }
            if self.pos < self.slots.len() {
                continue;
            }
            if !self.tx.final_check_for_requests()? {
                return Ok(());
            }
        }
    }

    /// Validates and copies in one batch of packets from `slots[pos..]`,
    /// answering every slot; the copied frames wait in `tx_frames`. `Ok(true)`
    /// when the rest waits for credit.
    fn tx_batch(&mut self) -> Result<bool, QueueError> {
        self.pieces.clear();
        self.at.clear();
        self.tx_frames.clear();
        let mut batch: Vec<(Parsed, Pending)> = Vec::new();
        let mut page = 0;
        let mut throttled = false;
        while self.pos < self.slots.len() {
            let parsed = parse_packet(&self.slots[self.pos..])?;
            if let Ok(TxItem::Packet(p)) = &parsed.result {
                if page + p.segments.len() > TX_BATCH_SLOTS {
                    break;
                }
                if let Some(c) = &mut self.credit {
                    if !c.take(p.total_len, Instant::now()) {
                        // Out of credit: the rest waits (copied out, unanswered).
                        throttled = true;
                        break;
                    }
                }
            }
            self.pos += parsed.consumed;
            let pending = match &parsed.result {
                Err(e) => {
                    count(
                        &mut self.stats.tx_errors,
                        self.domid,
                        format_args!("dropped a bad packet: {e}"),
                    );
                    Pending::Answered(RSP_ERROR)
                }
                Ok(TxItem::Mcast(op)) => {
                    if self.mcast.apply(op) {
                        Pending::Answered(RSP_OKAY)
                    } else {
                        count(
                            &mut self.stats.tx_errors,
                            self.domid,
                            format_args!("more than {MCAST_MAX} multicast addresses"),
                        );
                        Pending::Answered(RSP_ERROR)
                    }
                }
                Ok(TxItem::Packet(p)) => {
                    let first = self.pieces.len();
                    for s in &p.segments {
                        self.pieces.push(GrantPiece {
                            gref: s.gref,
                            offset: s.offset,
                            len: s.len,
                        });
                        // Page `page` at the grant's own offset: no piece
                        // crosses a local page.
                        self.at.push(page * PAGE_SIZE + usize::from(s.offset));
                        page += 1;
                    }
                    Pending::Copied(first..self.pieces.len())
                }
            };
            batch.push((parsed, pending));
        }
        if !batch.is_empty() {
            self.times.tx_batches += 1;
            self.times.tx_slots += batch.iter().map(|(p, _)| p.consumed as u64).sum::<u64>();
        }
        // One copy for the batch; when it fails, packet by packet, so that only
        // the packet with a bad grant is refused.
        let all_copied = self.pieces.is_empty() || {
            let t = Instant::now();
            let r = self
                .grants
                .copy_in(self.domid, &self.pieces, &self.at, self.txbuf.get_mut());
            self.times.tx_copies += 1;
            self.times.tx_copy_ns += ns_since(t);
            r.is_ok()
        };
        for (parsed, pending) in &batch {
            let status = match (&parsed.result, pending) {
                (_, Pending::Answered(s)) => *s,
                (Ok(TxItem::Packet(p)), Pending::Copied(r)) => {
                    self.tx_frame(p, r.clone(), all_copied)
                }
                (_, Pending::Copied(_)) => RSP_ERROR,
            };
            for r in parsed.responses(status) {
                self.tx.put_response(&r.to_bytes())?;
            }
        }
        Ok(throttled)
    }

    /// Finishes copied packet `p` (its pieces `r`): its vnet header, queued
    /// for the TAP; the status to answer.
    fn tx_frame(&mut self, p: &Packet, r: std::ops::Range<usize>, copied: bool) -> i16 {
        if !copied {
            let (pieces, at) = (&self.pieces[r.clone()], &self.at[r.clone()]);
            let t = Instant::now();
            let copied = self
                .grants
                .copy_in(self.domid, pieces, at, self.txbuf.get_mut());
            self.times.tx_copies += 1;
            self.times.tx_copy_ns += ns_since(t);
            if let Err(e) = copied {
                count(
                    &mut self.stats.tx_errors,
                    self.domid,
                    format_args!("tx grant copy failed: {e}"),
                );
                return RSP_ERROR;
            }
        }
        let buf = self.txbuf.get();
        // The headers, contiguous: the first bytes of the packet.
        let mut peek = [0u8; TX_HEADER_PEEK];
        let mut have = 0;
        for k in r.clone() {
            if have == TX_HEADER_PEEK {
                break;
            }
            let b = &buf[self.at[k]..self.at[k] + usize::from(self.pieces[k].len)];
            let n = b.len().min(TX_HEADER_PEEK - have);
            peek[have..have + n].copy_from_slice(&b[..n]);
            have += n;
        }
        match tx_vnet_hdr(p, &peek[..have]) {
            Ok(h) => {
                self.tx_frames.push(TxFrame {
                    hdr: h.to_bytes(),
                    pieces: r,
                    len: p.total_len,
                });
                RSP_OKAY
            }
            Err(e) => {
                count(
                    &mut self.stats.tx_errors,
                    self.domid,
                    format_args!("dropped a packet: {e}"),
                );
                RSP_ERROR
            }
        }
    }

    /// Writes the batch's copied frames to the TAP.
    fn write_tx_frames(&mut self) {
        let buf = self.txbuf.get();
        for f in &self.tx_frames {
            let mut parts = [IoSlice::new(&[]); MAX_SLOTS_PER_PACKET + 1];
            parts[0] = IoSlice::new(&f.hdr);
            let n = f.pieces.len();
            for (j, k) in f.pieces.clone().enumerate() {
                parts[j + 1] =
                    IoSlice::new(&buf[self.at[k]..self.at[k] + usize::from(self.pieces[k].len)]);
            }
            let t = Instant::now();
            let written = self.io.write_frame(&parts[..n + 1]);
            self.times.tap_writes += 1;
            self.times.tap_write_ns += ns_since(t);
            match written {
                Ok(()) => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += f.len as u64;
                }
                Err(e) => count(
                    &mut self.stats.tx_dropped,
                    self.domid,
                    format_args!("TAP write failed: {e}"),
                ),
            }
        }
        self.tx_frames.clear();
    }
}

impl<G: NetGrants, F: FrameIo> RxQueue<G, F> {
    /// Whether a received frame waits for rx buffers (then the TAP is not read).
    pub fn rx_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Moves frames from the TAP into the guest's rx buffers (at most
    /// [`RX_BATCH`]), [`RX_COPY_BATCH`] at a time: read one after another, their
    /// rx requests taken, their grants copied in one call, then answered.
    /// `Ok(true)` when the frontend must be notified.
    /// [`RxQueue::process_rx_notifying`] with the notifications gathered into
    /// one (the tests' entry).
    pub fn process_rx(&mut self) -> Result<bool, QueueError> {
        let mut notify = false;
        self.process_rx_notifying(|| {
            notify = true;
            Ok(())
        })?;
        Ok(notify)
    }

    /// Moves frames from the TAP into the guest's rx buffers (at most
    /// [`RX_BATCH`]), a copy batch at a time ([`RX_COPY_BATCH`] frames or
    /// [`RX_COPY_PIECES`] pieces): read one after another, their rx requests
    /// taken, their grants copied in one call, then answered, the responses
    /// pushed and, when the ring asks for it, `notify` called, batch by batch
    /// (xen-netback's `xenvif_rx_copy_flush`), so that the guest takes the
    /// first frames while the next are copied.
    pub fn process_rx_notifying(
        &mut self,
        mut notify: impl FnMut() -> Result<(), BoxedError>,
    ) -> Result<(), QueueError> {
        let mut handled = 0;
        loop {
            self.pieces.clear();
            self.at.clear();
            self.reqs.clear();
            self.frames.clear();
            let mut slot = 0;
            // The length of the frame in `slot` when it found too few buffers,
            // and how many it needs.
            let mut waiting = None;
            let mut tap_empty = false;
            while slot < RX_COPY_BATCH && handled < RX_BATCH && self.pieces.len() < RX_COPY_PIECES {
                let n = match (slot, self.pending.take()) {
                    (0, Some(n)) => n,
                    (_, pending) => {
                        debug_assert!(pending.is_none(), "a waiting frame is in slot 0");
                        match self.read_slot(slot)? {
                            Some(n) => n,
                            None => {
                                tap_empty = true;
                                break;
                            }
                        }
                    }
                };
                match self.admit(slot, n)? {
                    Admission::Queued => {
                        self.stalled_since = None;
                        slot += 1;
                        handled += 1;
                    }
                    Admission::Gone => {
                        self.stalled_since = None;
                        handled += 1;
                    }
                    Admission::NoBuffers(needed) => {
                        waiting = Some((n, needed));
                        break;
                    }
                }
            }
            self.copy_and_answer()?;
            if self.rx.push_responses()? {
                notify().map_err(QueueError::Notify)?;
            }
            let Some((n, needed)) = waiting else {
                if tap_empty || handled >= RX_BATCH {
                    break;
                }
                continue;
            };
            // The waiting frame goes to slot 0 for the next round.
            if slot != 0 {
                let from = slot * RX_SLOT_BYTES;
                let len = n - VIRTIO_NET_HDR_SIZE;
                self.rxbuf.get_mut().copy_within(from..from + len, 0);
                self.rxhdrs[0] = self.rxhdrs[slot];
            }
            let since = *self.stalled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.rx_stall_drop {
                count(
                    &mut self.stats.rx_dropped,
                    self.domid,
                    format_args!("no rx buffers: dropped a frame"),
                );
                handled += 1;
                if handled >= RX_BATCH {
                    break;
                }
                continue;
            }
            self.pending = Some(n);
            // Ask for an event when the frontend posts buffers, then look once
            // more; until they are enough the thread sleeps (no spinning while
            // the guest posts them a few at a time). The batch's responses
            // were pushed above.
            if self.rx.requests_available_or_ask(needed)? {
                continue;
            }
            break;
        }
        Ok(())
    }

    /// Reads a frame from the TAP into slot `slot`: its total length (vnet
    /// header included), `None` when none waits.
    fn read_slot(&mut self, slot: usize) -> Result<Option<usize>, QueueError> {
        let from = slot * RX_SLOT_BYTES;
        let data = &mut self.rxbuf.get_mut()[from..from + RX_FRAME_MAX - VIRTIO_NET_HDR_SIZE];
        let t = Instant::now();
        let read = self.io.read_frame(&mut self.rxhdrs[slot], data);
        self.times.tap_read_ns += ns_since(t);
        let read = read.map_err(QueueError::Tap)?;
        if read.is_some() {
            self.times.tap_reads += 1;
        } else {
            self.times.tap_empty_reads += 1;
        }
        Ok(read)
    }

    /// Checks the frame of `n` bytes in slot `slot` and, when the frontend
    /// posted enough rx buffers, takes them and adds its pieces to the batch.
    fn admit(&mut self, slot: usize, n: usize) -> Result<Admission, QueueError> {
        let domid = self.domid;
        let drop = |stats: &mut NetStats| {
            count(
                &mut stats.rx_dropped,
                domid,
                format_args!("dropped a frame the frontend cannot take"),
            );
            Ok(Admission::Gone)
        };
        if !(VIRTIO_NET_HDR_SIZE + ETH_HLEN..=RX_FRAME_MAX).contains(&n) {
            return drop(&mut self.stats);
        }
        let from = slot * RX_SLOT_BYTES;
        let vh = VirtioNetHdr::from_bytes(&self.rxhdrs[slot]);
        let mut dest = [0u8; ETH_ALEN];
        dest.copy_from_slice(&self.rxbuf.get()[from..from + ETH_ALEN]);
        if !self.mcast.admits(&dest) {
            self.stats.rx_filtered += 1;
            return Ok(Admission::Gone);
        }
        let Ok(meta) = rx_meta(&vh, self.features.gso_tcpv4, self.features.gso_tcpv6) else {
            return drop(&mut self.stats);
        };
        let len = n - VIRTIO_NET_HDR_SIZE;
        let data_slots = len.div_ceil(PAGE_SIZE);
        let needed = data_slots + usize::from(meta.gso.is_some());
        if (data_slots > 1 && !self.features.sg) || needed > MAX_SLOTS_PER_PACKET {
            return drop(&mut self.stats);
        }
        if (self.rx.unconsumed_requests()? as usize) < needed {
            return Ok(Admission::NoBuffers(needed as u32));
        }
        let first_req = self.reqs.len();
        let mut raw = [0u8; RX_REQUEST_SIZE];
        for _ in 0..needed {
            if !self.rx.next_request(&mut raw)? {
                return Err(QueueError::Ring(RingError::NoRequest));
            }
            self.reqs.push(RxRequest::from_bytes(&raw));
        }
        // Data slots: the first request, then those after the extra slot.
        let extra_slots = usize::from(meta.gso.is_some());
        let first_piece = self.pieces.len();
        let mut left = len;
        for (k, i) in std::iter::once(0)
            .chain(1 + extra_slots..needed)
            .enumerate()
        {
            let chunk = left.min(PAGE_SIZE);
            left -= chunk;
            self.pieces.push(GrantPiece {
                gref: self.reqs[first_req + i].gref,
                offset: 0,
                len: chunk as u16,
            });
            self.at.push(from + k * PAGE_SIZE);
        }
        self.frames.push(RxFrame {
            len,
            meta,
            reqs: first_req..self.reqs.len(),
            pieces: first_piece..self.pieces.len(),
        });
        Ok(Admission::Queued)
    }

    /// Copies the batch's frames into their rx buffers (one call; frame by
    /// frame when that fails, so that a bad grant fails its frame alone) and
    /// answers their requests.
    fn copy_and_answer(&mut self) -> Result<(), QueueError> {
        if self.frames.is_empty() {
            return Ok(());
        }
        let all_copied = self.copy_out(0..self.pieces.len()).is_ok();
        for f in 0..self.frames.len() {
            let (len, meta, reqs, pieces) = {
                let fr = &self.frames[f];
                (fr.len, fr.meta, fr.reqs.clone(), fr.pieces.clone())
            };
            let ok = all_copied || {
                match self.copy_out(pieces.clone()) {
                    Ok(()) => true,
                    Err(e) => {
                        if worth_logging(self.stats.rx_errors + 1) {
                            tracing::warn!(domid = self.domid, "rx grant copy failed: {e}");
                        }
                        false
                    }
                }
            };
            let data_slots = pieces.len();
            let extra_slots = usize::from(meta.gso.is_some());
            let data_reqs = std::iter::once(0).chain(1 + extra_slots..reqs.len());
            for (k, i) in data_reqs.enumerate() {
                let mut flags = 0;
                if k == 0 {
                    flags |= meta.flags;
                    if meta.gso.is_some() {
                        flags |= NETRXF_EXTRA_INFO;
                    }
                }
                if k + 1 < data_slots {
                    flags |= NETRXF_MORE_DATA;
                }
                let status = if ok {
                    self.pieces[pieces.start + k].len as i16
                } else {
                    RSP_ERROR
                };
                let rsp = RxResponse {
                    id: self.reqs[reqs.start + i].id,
                    offset: 0,
                    flags,
                    status,
                };
                self.rx.put_response(&rsp.to_bytes())?;
                if k == 0 {
                    if let Some(g) = &meta.gso {
                        // The extra slot's response is the extra info itself.
                        self.rx.put_response(&gso_extra(g).0)?;
                    }
                }
            }
            if ok {
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += len as u64;
            } else {
                self.stats.rx_errors += 1;
            }
        }
        Ok(())
    }

    /// One grant copy call for `pieces` of the batch.
    fn copy_out(&mut self, pieces: std::ops::Range<usize>) -> Result<(), GntdevError> {
        let t = Instant::now();
        let r = self.grants.copy_out(
            self.domid,
            self.rxbuf.get(),
            &self.pieces[pieces.clone()],
            &self.at[pieces],
        );
        self.times.rx_copies += 1;
        self.times.rx_copy_ns += ns_since(t);
        r
    }
}

#[cfg(test)]
mod tests;
