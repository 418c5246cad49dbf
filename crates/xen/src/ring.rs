//! The shared ring engine of Xen's split drivers (xen/include/public/io/ring.h),
//! frontend and backend sides, over a mapped page set.
//!
//! Layout: a 64-byte header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`,
//! then padding) followed by `nr_ents` slots, each big enough for a request or a
//! response; `nr_ents` is the largest power of two that fits. Indices are free
//! running `u32`s masked with `nr_ents - 1`.
//!
//! The other end is not trusted: a producer index that claims more entries than
//! the ring holds is refused with [`RingError::Overflow`], which the caller turns
//! into a disconnect of that one ring. Entries are copied out (volatile) before
//! the caller parses them.

use crate::abi::Pod;
use crate::mem::{MappedMemory, MemError};
use std::sync::atomic::{fence, Ordering};

/// Size of the shared ring header (`struct *_sring` up to `ring[]`).
pub const RING_HEADER_SIZE: usize = 64;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Errors of the ring engine.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Mem(#[from] MemError),
    /// The memory cannot hold even one entry, or the entry size is zero.
    #[error("{bytes} bytes cannot hold a ring of {entry_size}-byte entries")]
    TooSmall { bytes: usize, entry_size: usize },
    /// The peer's producer index runs more than the ring size ahead of ours.
    #[error("peer producer index {prod} is more than {size} ahead of consumer {cons}")]
    Overflow { prod: u32, cons: u32, size: u32 },
    /// An entry does not fit a slot.
    #[error("entry of {len} bytes does not fit a {slot}-byte slot")]
    EntryTooLarge { len: usize, slot: usize },
    /// No free slot for a request.
    #[error("ring full")]
    Full,
    /// A response without an outstanding request.
    #[error("no request to respond to")]
    NoRequest,
}

/// `__RING_SIZE`: the number of entries a ring of `bytes` holds.
pub fn ring_size(bytes: usize, entry_size: usize) -> Result<u32, RingError> {
    if entry_size == 0 || bytes < RING_HEADER_SIZE + entry_size {
        return Err(RingError::TooSmall { bytes, entry_size });
    }
    let n = (bytes - RING_HEADER_SIZE) / entry_size;
    let pow = 1usize << (usize::BITS - 1 - n.leading_zeros());
    u32::try_from(pow).map_err(|_| RingError::TooSmall { bytes, entry_size })
}

/// `SHARED_RING_INIT`: zero the header, set both event indices to 1.
pub fn init_shared(mem: &MappedMemory) -> Result<(), RingError> {
    mem.fill(0, RING_HEADER_SIZE, 0)?;
    mem.write_u32(REQ_EVENT, 1)?;
    mem.write_u32(RSP_EVENT, 1)?;
    Ok(())
}

/// Whether to notify after moving a producer index from `old` to `new` when
/// the peer asked to be woken at `event`: `new - event < new - old`.
pub fn need_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[derive(Debug)]
struct Geometry {
    mem: MappedMemory,
    nr_ents: u32,
    entry_size: usize,
}

impl Geometry {
    fn new(mem: MappedMemory, entry_size: usize) -> Result<Self, RingError> {
        let nr_ents = ring_size(mem.len(), entry_size)?;
        Ok(Self {
            mem,
            nr_ents,
            entry_size,
        })
    }
    fn slot(&self, idx: u32) -> usize {
        RING_HEADER_SIZE + (idx & (self.nr_ents - 1)) as usize * self.entry_size
    }
    fn read_entry(&self, idx: u32, out: &mut [u8]) -> Result<(), RingError> {
        if out.len() > self.entry_size {
            return Err(RingError::EntryTooLarge {
                len: out.len(),
                slot: self.entry_size,
            });
        }
        Ok(self.mem.read_bytes(self.slot(idx), out)?)
    }
    fn write_entry(&self, idx: u32, bytes: &[u8]) -> Result<(), RingError> {
        if bytes.len() > self.entry_size {
            return Err(RingError::EntryTooLarge {
                len: bytes.len(),
                slot: self.entry_size,
            });
        }
        Ok(self.mem.write_bytes(self.slot(idx), bytes)?)
    }
    fn check_pod<T: Pod>(&self) -> Result<(), RingError> {
        let len = std::mem::size_of::<T>();
        if len > self.entry_size {
            return Err(RingError::EntryTooLarge {
                len,
                slot: self.entry_size,
            });
        }
        Ok(())
    }
}

/// The backend side: consumes requests, produces responses.
#[derive(Debug)]
pub struct BackRing {
    g: Geometry,
    rsp_prod_pvt: u32,
    req_cons: u32,
}

impl BackRing {
    /// `BACK_RING_ATTACH` at index 0 (`BACK_RING_INIT`): the frontend initialised
    /// the shared header.
    pub fn new(mem: MappedMemory, entry_size: usize) -> Result<Self, RingError> {
        Ok(Self {
            g: Geometry::new(mem, entry_size)?,
            rsp_prod_pvt: 0,
            req_cons: 0,
        })
    }

    /// `BACK_RING_ATTACH` at the shared ring's current response producer: a
    /// backend taking over a ring that an earlier backend served (e.g. after it
    /// was killed). Every request from the published `rsp_prod` on counts as
    /// unconsumed, so requests the earlier backend took but never answered are
    /// seen again. The frontend's indices are not trusted here either: a
    /// `req_prod` more than the ring size ahead is refused by
    /// [`BackRing::unconsumed_requests`] as usual.
    pub fn attach(mem: MappedMemory, entry_size: usize) -> Result<Self, RingError> {
        let g = Geometry::new(mem, entry_size)?;
        let idx = g.mem.read_u32(RSP_PROD)?;
        Ok(Self {
            g,
            rsp_prod_pvt: idx,
            req_cons: idx,
        })
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.g.nr_ents
    }

    /// Index of the next request to consume (free running).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`, refusing a producer index that runs more
    /// than the ring size ahead.
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let prod = self.g.mem.read_u32(REQ_PROD)?;
        // Read the index before the entries it publishes.
        fence(Ordering::Acquire);
        let req = prod.wrapping_sub(self.req_cons);
        if req > self.g.nr_ents {
            return Err(RingError::Overflow {
                prod,
                cons: self.req_cons,
                size: self.g.nr_ents,
            });
        }
        let rsp = self
            .g
            .nr_ents
            .wrapping_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        Ok(req.min(rsp))
    }

    /// Copies the next request into `out` (at most one slot); `Ok(false)` when
    /// there is none.
    pub fn next_request(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(false);
        }
        self.g.read_entry(self.req_cons, out)?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(true)
    }

    /// Reads the next request as a `T` copy.
    pub fn next_request_as<T: Pod>(&mut self) -> Result<Option<T>, RingError> {
        self.g.check_pod::<T>()?;
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let v = self.g.mem.read::<T>(self.g.slot(self.req_cons))?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(v))
    }

    /// Queues a response (visible after [`BackRing::push_responses`]).
    pub fn put_response(&mut self, bytes: &[u8]) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequest);
        }
        self.g.write_entry(self.rsp_prod_pvt, bytes)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Queues a response given as a `T`.
    pub fn put_response_as<T: Pod>(&mut self, value: T) -> Result<(), RingError> {
        self.g.check_pod::<T>()?;
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequest);
        }
        self.g.mem.write(self.g.slot(self.rsp_prod_pvt), value)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes queued responses and
    /// says whether the frontend must be notified.
    pub fn push_responses(&mut self) -> Result<bool, RingError> {
        let old = self.g.mem.read_u32(RSP_PROD)?;
        let new = self.rsp_prod_pvt;
        // Responses before the index that publishes them.
        fence(Ordering::Release);
        self.g.mem.write_u32(RSP_PROD, new)?;
        // The index before reading the event the frontend set.
        fence(Ordering::SeqCst);
        let event = self.g.mem.read_u32(RSP_EVENT)?;
        Ok(need_notify(old, new, event))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: when idle, asks to be notified of the next
    /// request and checks once more.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.g
            .mem
            .write_u32(REQ_EVENT, self.req_cons.wrapping_add(1))?;
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? > 0)
    }

    /// Whether at least `needed` requests are unconsumed; when fewer are, asks
    /// the frontend for an event on its next request and looks once more
    /// (Linux xen-netback's `xenvif_rx_ring_slots_available`). `Ok(false)`:
    /// the caller may sleep until that event. A producer index that keeps
    /// moving is looked at [`AVAILABLE_RECHECKS`] times, then left to the event.
    pub fn requests_available_or_ask(&mut self, needed: u32) -> Result<bool, RingError> {
        for _ in 0..AVAILABLE_RECHECKS {
            let prod = self.g.mem.read_u32(REQ_PROD)?;
            if self.unconsumed_requests()? >= needed {
                return Ok(true);
            }
            self.g.mem.write_u32(REQ_EVENT, prod.wrapping_add(1))?;
            fence(Ordering::SeqCst);
            if self.g.mem.read_u32(REQ_PROD)? == prod {
                return Ok(false);
            }
        }
        Ok(false)
    }
}

/// How often [`BackRing::requests_available_or_ask`] looks again when the
/// producer index moved while it asked for an event.
pub const AVAILABLE_RECHECKS: usize = 4;

/// The frontend side: produces requests, consumes responses.
#[derive(Debug)]
pub struct FrontRing {
    g: Geometry,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

impl FrontRing {
    /// Initialises the shared header (`SHARED_RING_INIT`, `FRONT_RING_INIT`).
    pub fn init(mem: MappedMemory, entry_size: usize) -> Result<Self, RingError> {
        init_shared(&mem)?;
        Ok(Self {
            g: Geometry::new(mem, entry_size)?,
            req_prod_pvt: 0,
            rsp_cons: 0,
        })
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.g.nr_ents
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        self.g.nr_ents - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Queues a request (visible after [`FrontRing::push_requests`]).
    pub fn put_request(&mut self, bytes: &[u8]) -> Result<(), RingError> {
        if self.free_requests() == 0 {
            return Err(RingError::Full);
        }
        self.g.write_entry(self.req_prod_pvt, bytes)?;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
    pub fn push_requests(&mut self) -> Result<bool, RingError> {
        let old = self.g.mem.read_u32(REQ_PROD)?;
        let new = self.req_prod_pvt;
        fence(Ordering::Release);
        self.g.mem.write_u32(REQ_PROD, new)?;
        fence(Ordering::SeqCst);
        let event = self.g.mem.read_u32(REQ_EVENT)?;
        Ok(need_notify(old, new, event))
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`, refusing a producer index that claims
    /// more responses than requests are outstanding.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let prod = self.g.mem.read_u32(RSP_PROD)?;
        fence(Ordering::Acquire);
        let n = prod.wrapping_sub(self.rsp_cons);
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if n > outstanding {
            return Err(RingError::Overflow {
                prod,
                cons: self.rsp_cons,
                size: outstanding,
            });
        }
        Ok(n)
    }

    /// Copies the next response into `out`; `Ok(false)` when there is none.
    pub fn next_response(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(false);
        }
        self.g.read_entry(self.rsp_cons, out)?;
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(true)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.g
            .mem
            .write_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1))?;
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_responses()? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn pair(pages: usize, entry: usize) -> (FrontRing, BackRing, MappedMemory) {
        let mem = MappedMemory::anonymous(pages * PAGE).expect("mmap");
        let front = FrontRing::init(mem.clone(), entry).expect("front");
        let back = BackRing::new(mem.clone(), entry).expect("back");
        (front, back, mem)
    }

    #[test]
    fn ring_sizes_match_ring_h() {
        // blkif: 112-byte entries, 32 per page; netif tx: 12 bytes, 256 per page.
        assert_eq!(ring_size(PAGE, 112).expect("size"), 32);
        assert_eq!(ring_size(PAGE, 12).expect("size"), 256);
        // Multi-page: 4 pages of 112-byte entries hold 145, rounded down to 128.
        assert_eq!(ring_size(4 * PAGE, 112).expect("size"), 128);
        assert!(ring_size(64, 8).is_err());
        assert!(ring_size(PAGE, 0).is_err());
    }

    #[test]
    fn need_notify_follows_event_index() {
        assert!(need_notify(0, 1, 1));
        assert!(!need_notify(1, 2, 1));
        assert!(need_notify(1, 5, 3));
        assert!(!need_notify(3, 5, 6));
        // Across the wrap of the free-running indices.
        assert!(need_notify(u32::MAX, 1, 0));
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let (mut f, mut b, _m) = pair(1, 16);
        assert_eq!(f.free_requests(), 128);
        for i in 0..3u8 {
            f.put_request(&[i; 16]).expect("put");
        }
        assert!(f.push_requests().expect("push"), "first push notifies");
        let mut buf = [0u8; 16];
        for i in 0..3u8 {
            assert!(b.next_request(&mut buf).expect("next"));
            assert_eq!(buf, [i; 16]);
            b.put_response(&[i + 10; 16]).expect("respond");
        }
        assert!(!b.next_request(&mut buf).expect("next"));
        assert!(b.push_responses().expect("push"));
        for i in 0..3u8 {
            assert!(f.next_response(&mut buf).expect("resp"));
            assert_eq!(buf, [i + 10; 16]);
        }
        assert!(!f.final_check_for_responses().expect("final"));
        assert_eq!(f.free_requests(), f.size());
    }

    #[test]
    fn too_few_requests_ask_for_the_next_one() {
        let (mut f, mut b, _m) = pair(1, 16);
        f.put_request(&[1; 16]).expect("put");
        assert!(f.push_requests().expect("push"));
        assert!(b.requests_available_or_ask(1).expect("one"));
        // Two needed, one there: the next request must notify.
        assert!(!b.requests_available_or_ask(2).expect("two"));
        f.put_request(&[2; 16]).expect("put");
        assert!(f.push_requests().expect("push"), "asked for an event");
        assert!(b.requests_available_or_ask(2).expect("two"));
        // Nothing consumed: still two, and no event asked for beyond them.
        f.put_request(&[3; 16]).expect("put");
        assert!(!f.push_requests().expect("push"));
    }

    #[test]
    fn no_notify_until_consumer_rearms() {
        let (mut f, mut b, _m) = pair(1, 16);
        f.put_request(&[1; 16]).expect("put");
        assert!(f.push_requests().expect("push"));
        // The backend has not re-armed req_event: no second notification.
        f.put_request(&[2; 16]).expect("put");
        assert!(!f.push_requests().expect("push"));
        let mut buf = [0u8; 16];
        while b.next_request(&mut buf).expect("next") {}
        assert!(!b.final_check_for_requests().expect("final"));
        f.put_request(&[3; 16]).expect("put");
        assert!(f.push_requests().expect("push"), "re-armed");
        assert!(b.final_check_for_requests().expect("final"));
    }

    #[test]
    fn full_ring_refuses_requests() {
        let (mut f, _b, _m) = pair(1, 1024);
        // (4096 - 64) / 1024 = 3, rounded down to 2.
        assert_eq!(f.size(), 2);
        f.put_request(&[0; 8]).expect("put");
        f.put_request(&[0; 8]).expect("put");
        assert!(matches!(f.put_request(&[0; 8]), Err(RingError::Full)));
    }

    #[test]
    fn hostile_request_producer_is_refused() {
        let (_f, mut b, mem) = pair(1, 112);
        let mut buf = [0u8; 112];
        // A frontend claiming 33 requests in a 32-slot ring.
        mem.write_u32(REQ_PROD, 33).expect("write");
        assert!(matches!(
            b.next_request(&mut buf),
            Err(RingError::Overflow {
                prod: 33,
                cons: 0,
                size: 32
            })
        ));
        // Wrapped "negative" distance is also huge.
        mem.write_u32(REQ_PROD, u32::MAX).expect("write");
        assert!(b.unconsumed_requests().is_err());
        // Exactly a full ring is legal.
        mem.write_u32(REQ_PROD, 32).expect("write");
        assert_eq!(b.unconsumed_requests().expect("ok"), 32);
    }

    #[test]
    fn backend_never_overruns_its_responses() {
        let (mut f, mut b, mem) = pair(1, 112);
        assert!(matches!(b.put_response(&[0; 8]), Err(RingError::NoRequest)));
        for _ in 0..32 {
            f.put_request(&[0; 8]).expect("put");
        }
        f.push_requests().expect("push");
        let mut buf = [0u8; 112];
        for _ in 0..32 {
            assert!(b.next_request(&mut buf).expect("next"));
        }
        // The frontend lies and moves req_prod further without freeing slots:
        // the backend must not consume requests it has no response slot for.
        mem.write_u32(REQ_PROD, 40).expect("write");
        assert_eq!(b.unconsumed_requests().expect("ok"), 0);
    }

    #[test]
    fn hostile_response_producer_is_refused() {
        let (mut f, _b, mem) = pair(1, 16);
        f.put_request(&[0; 16]).expect("put");
        f.push_requests().expect("push");
        mem.write_u32(RSP_PROD, 2).expect("write");
        let mut buf = [0u8; 16];
        assert!(matches!(
            f.next_response(&mut buf),
            Err(RingError::Overflow { .. })
        ));
    }

    #[test]
    fn attach_resumes_at_the_published_responses() {
        let (mut f, mut b, mem) = pair(1, 16);
        for i in 0..5u8 {
            f.put_request(&[i; 16]).expect("put");
        }
        f.push_requests().expect("push");
        let mut buf = [0u8; 16];
        // The first backend answers two requests, takes a third and dies.
        for i in 0..3u8 {
            assert!(b.next_request(&mut buf).expect("next"));
            if i < 2 {
                b.put_response(&[i + 10; 16]).expect("respond");
            }
        }
        b.push_responses().expect("push");
        drop(b);
        let mut b2 = BackRing::attach(mem.clone(), 16).expect("attach");
        assert_eq!(b2.req_cons(), 2);
        assert_eq!(b2.unconsumed_requests().expect("ok"), 3);
        for i in 2..5u8 {
            assert!(b2.next_request(&mut buf).expect("next"));
            assert_eq!(buf, [i; 16], "request {i} seen again");
            b2.put_response(&[i + 10; 16]).expect("respond");
        }
        // The frontend has not re-armed rsp_event since the first push.
        assert!(!b2.push_responses().expect("push"));
        for i in 0..5u8 {
            assert!(f.next_response(&mut buf).expect("resp"));
            assert_eq!(buf, [i + 10; 16]);
        }
        assert!(!f.final_check_for_responses().expect("final"));
        // A frontend that moved req_prod backwards past rsp_prod is refused.
        mem.write_u32(REQ_PROD, 1).expect("write");
        let b3 = BackRing::attach(mem, 16).expect("attach");
        assert!(matches!(
            b3.unconsumed_requests(),
            Err(RingError::Overflow { .. })
        ));
    }

    #[test]
    fn typed_entries() {
        let (mut f, mut b, _m) = pair(2, 16);
        f.put_request(&7u64.to_ne_bytes()).expect("put");
        f.push_requests().expect("push");
        assert_eq!(b.next_request_as::<u64>().expect("next"), Some(7));
        b.put_response_as::<u64>(9).expect("respond");
        assert!(b.push_responses().expect("push"));
        let mut buf = [0u8; 8];
        assert!(f.next_response(&mut buf).expect("resp"));
        assert_eq!(u64::from_ne_bytes(buf), 9);
        assert!(matches!(
            b.next_request_as::<[u64; 3]>(),
            Err(RingError::EntryTooLarge { .. })
        ));
    }
}
