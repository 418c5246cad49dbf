//! Persistent grants (blkif.h `feature-persistent`): when both ends agree, the
//! frontend reuses a pool of granted pages for all its I/O, and the backend maps
//! each grant once, the first time a request names it, and keeps it mapped until
//! the ring goes away. Data then moves by `preadv`/`pwritev` straight between
//! the disk and the guest's pages: no grant copy per request.
//!
//! Bounded like Linux xen-blkback (`max_pgrants`, 1056 per ring: 32 slots of 32
//! segments and their 32 indirect pages, which is what Linux blkfront's default
//! pool reaches). A grant first named once the bound is reached is not mapped:
//! the request that names it moves its data by grant copy, as without the
//! feature (xen-blkback maps such grants for the one request and unmaps them
//! after; a copy costs less than a map and unmap of one page). Nothing is
//! evicted: Linux blkfront's pool does not outgrow the bound, and a frontend that
//! churns through more grants only gets copies for the excess.
//!
//! A grant that cannot be mapped (never granted, revoked, read-only) fails the
//! requests that name it (BLKIF_RSP_ERROR); the ring stays up. It is then
//! remembered (at most [`FAILED_GRANTS`] of them, for [`FAILED_TTL_GROUPS`]
//! groups of requests): a request naming it again in that time fails without
//! another gntdev call, and it stays out of the one call that maps a group's
//! new grants (gntdev maps all or nothing, so one bad grant would send the
//! whole group's new grants down the one-by-one path every time). After that
//! it is tried again, so a grant the frontend has granted meanwhile maps.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use xen::abi::xen::{DomId, GrantRef};
use xen::GrantPageMapper;

/// Most grants one ring keeps mapped (Linux xen-blkback's `max_pgrants`
/// default).
pub const MAX_PERSISTENT_GRANTS: usize = 1056;

/// Grants remembered as unmappable (the oldest is forgotten first).
pub const FAILED_GRANTS: usize = 64;
/// For how many groups of requests ([`PersistentGrants::map_missing`] calls)
/// a grant that failed to map is not tried again.
pub const FAILED_TTL_GROUPS: u64 = 256;

/// Hashes a grant reference by one multiplication (Fibonacci hashing): every
/// segment of every request looks its grant up, and SipHash's cost showed per
/// request. A frontend that picks colliding references only slows its own
/// ring, and at most [`MAX_PERSISTENT_GRANTS`] entries can collide.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrefHasher(u64);

/// 2^64 / the golden ratio, odd: spreads consecutive references over the
/// high bits, which the table uses.
const FIBONACCI: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for GrefHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(FIBONACCI);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(FIBONACCI);
    }
}

/// The grants one ring keeps mapped.
#[derive(Debug)]
pub struct PersistentGrants<P> {
    pages: HashMap<GrantRef, P, BuildHasherDefault<GrefHasher>>,
    max: usize,
    /// Grants that failed to map, with the group ([`Self::groups`]) in which
    /// they did, oldest first.
    failed: VecDeque<(GrantRef, u64)>,
    /// Calls of [`PersistentGrants::map_missing`] so far.
    groups: u64,
}

/// What [`PersistentGrants::map_missing`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MapOutcome {
    /// Grants mapped by this call.
    pub mapped: usize,
    /// Mapping calls made (one gntdev ioctl and `mmap` each).
    pub calls: usize,
    /// Grants that could not be mapped (by this call, or remembered from an
    /// earlier one), sorted: the requests naming them fail
    /// ([`MapOutcome::failed`]).
    pub failed: Vec<GrantRef>,
    /// Of those, the ones refused from memory, without a call.
    pub remembered: usize,
    /// Grants left unmapped because the bound was reached: their requests
    /// copy.
    pub over_bound: usize,
}

impl MapOutcome {
    /// Whether `gref` could not be mapped.
    pub fn failed(&self, gref: GrantRef) -> bool {
        self.failed.binary_search(&gref).is_ok()
    }
}

impl<P> PersistentGrants<P> {
    /// An empty set keeping at most `max` grants.
    pub fn new(max: usize) -> Self {
        Self {
            pages: HashMap::default(),
            max,
            failed: VecDeque::with_capacity(FAILED_GRANTS),
            groups: 0,
        }
    }

    /// The mapped page of `gref`, if it is mapped.
    pub fn get(&self, gref: GrantRef) -> Option<&P> {
        self.pages.get(&gref)
    }

    /// Grants mapped.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Unmaps every grant (the ring is going away).
    pub fn clear(&mut self) {
        self.pages.clear();
    }

    /// Maps those of `grefs` not mapped yet (duplicates ignored), as many as
    /// the bound leaves room for, in one call of `mapper`. When that call
    /// fails (one bad grant fails all of them), maps them one by one, so that
    /// only the requests naming a bad grant fail. A grant that failed in the
    /// last [`FAILED_TTL_GROUPS`] calls fails again without a call.
    pub fn map_missing<M>(
        &mut self,
        mapper: &M,
        domid: DomId,
        grefs: impl IntoIterator<Item = GrantRef>,
    ) -> MapOutcome
    where
        M: GrantPageMapper<Page = P>,
    {
        let mut out = MapOutcome::default();
        let mut new: Vec<GrantRef> = Vec::new();
        self.groups += 1;
        while self
            .failed
            .front()
            .is_some_and(|&(_, at)| self.groups - at > FAILED_TTL_GROUPS)
        {
            self.failed.pop_front();
        }
        for g in grefs {
            if self.pages.contains_key(&g) || new.contains(&g) {
                continue;
            }
            // Only grants not mapped get here: none on a working ring's hot path.
            if self.failed.iter().any(|&(b, _)| b == g) {
                if !out.failed.contains(&g) {
                    out.failed.push(g);
                    out.remembered += 1;
                }
                continue;
            }
            if self.pages.len() + new.len() >= self.max {
                out.over_bound += 1;
                continue;
            }
            new.push(g);
        }
        if new.is_empty() {
            return out;
        }
        out.calls += 1;
        match mapper.map_pages(domid, &new, true) {
            Ok(pages) => {
                out.mapped += pages.len();
                self.pages.extend(new.iter().copied().zip(pages));
            }
            Err(e) => {
                tracing::debug!(
                    "mapping {} grants at once failed ({e}); one by one",
                    new.len()
                );
                for g in new {
                    out.calls += 1;
                    match mapper.map_pages(domid, &[g], true) {
                        Ok(mut p) if p.len() == 1 => {
                            out.mapped += 1;
                            self.pages.extend(p.pop().map(|p| (g, p)));
                        }
                        Ok(_) => self.remember_failed(g, &mut out),
                        Err(e) => {
                            tracing::debug!("grant {g} of domain {domid}: {e}");
                            self.remember_failed(g, &mut out);
                        }
                    }
                }
            }
        }
        out.failed.sort_unstable();
        out.failed.dedup();
        out
    }

    /// Records that `g` failed to map, in `out` and in the memory of failed
    /// grants (forgetting the oldest when full).
    fn remember_failed(&mut self, g: GrantRef, out: &mut MapOutcome) {
        out.failed.push(g);
        if self.failed.len() == FAILED_GRANTS {
            self.failed.pop_front();
        }
        self.failed.push_back((g, self.groups));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen::abi::xen::XEN_PAGE_SIZE;
    use xen::fake::FakeGrants;
    use xen::MappedMemory;

    const DOM: DomId = 3;

    fn granted(n: usize) -> (FakeGrants, MappedMemory) {
        let mem = MappedMemory::anonymous(n * XEN_PAGE_SIZE).expect("mem");
        let g = FakeGrants::new();
        for p in 0..n {
            g.grant(DOM, 10 + p as u32, &mem, p, true).expect("grant");
        }
        (g, mem)
    }

    #[test]
    fn new_grants_are_mapped_in_one_call_and_only_once() {
        let (g, mem) = granted(4);
        let mut pg = PersistentGrants::new(MAX_PERSISTENT_GRANTS);
        let o = pg.map_missing(&g, DOM, [10, 12, 10, 13]);
        assert_eq!((o.mapped, o.calls, o.over_bound), (3, 1, 0));
        assert!(o.failed.is_empty());
        assert_eq!(g.page_map_calls(), 1);
        let o = pg.map_missing(&g, DOM, [12, 13, 11]);
        assert_eq!((o.mapped, o.calls), (1, 1));
        assert_eq!(pg.map_missing(&g, DOM, [10, 11]), MapOutcome::default());
        assert_eq!((pg.len(), g.live_pages()), (4, 4));
        // The mapped page is the guest's page.
        mem.write_u32(2 * XEN_PAGE_SIZE + 8, 0x55aa).expect("write");
        let page = pg.get(12).expect("mapped");
        assert_eq!(page.read_u32(8).expect("read"), 0x55aa);
        pg.clear();
        assert_eq!(g.live_pages(), 0);
    }

    #[test]
    fn a_bad_grant_fails_alone() {
        let (g, _mem) = granted(3);
        g.revoke(DOM, 11);
        let mut pg = PersistentGrants::new(MAX_PERSISTENT_GRANTS);
        let o = pg.map_missing(&g, DOM, [10, 11, 12, 99]);
        assert_eq!(o.failed, vec![11, 99]);
        assert_eq!(o.mapped, 2);
        // One call for the batch, then one per grant.
        assert_eq!(o.calls, 5);
        assert!(pg.get(10).is_some() && pg.get(12).is_some() && pg.get(11).is_none());
        assert_eq!(g.live_pages(), 2);
    }

    #[test]
    fn a_failed_grant_is_not_retried_for_a_while_and_does_not_poison_the_group() {
        let (g, mem) = granted(4);
        g.revoke(DOM, 11);
        let mut pg = PersistentGrants::new(MAX_PERSISTENT_GRANTS);
        let o = pg.map_missing(&g, DOM, [10, 11]);
        assert_eq!((o.failed.clone(), o.calls, o.remembered), (vec![11], 3, 0));
        // The same bad grant again, with a new good one: one call, for 12 alone.
        let o = pg.map_missing(&g, DOM, [11, 12, 11]);
        assert_eq!(o.failed, vec![11]);
        assert_eq!((o.mapped, o.calls, o.remembered), (1, 1, 1));
        // Only the bad grant: no call at all, for as long as it is remembered.
        for _ in 0..FAILED_TTL_GROUPS - 2 {
            let o = pg.map_missing(&g, DOM, [11]);
            assert_eq!((o.failed.as_slice(), o.calls), (&[11][..], 0));
        }
        // The frontend grants it now: once forgotten, it maps.
        g.grant(DOM, 11, &mem, 1, true).expect("grant");
        let o = pg.map_missing(&g, DOM, [11]);
        assert_eq!(
            (o.failed.as_slice(), o.calls),
            (&[11][..], 0),
            "still remembered"
        );
        let o = pg.map_missing(&g, DOM, [11]);
        assert_eq!((o.mapped, o.calls), (1, 1));
        assert!(o.failed.is_empty() && pg.get(11).is_some());
    }

    #[test]
    fn the_memory_of_failed_grants_is_bounded() {
        let (g, _mem) = granted(1);
        let mut pg = PersistentGrants::new(MAX_PERSISTENT_GRANTS);
        // More bad grants than remembered: the oldest are tried again.
        let bad: Vec<GrantRef> = (1000..1000 + FAILED_GRANTS as u32 + 8).collect();
        let o = pg.map_missing(&g, DOM, bad.iter().copied());
        assert_eq!(o.failed.len(), bad.len());
        assert_eq!(pg.failed.len(), FAILED_GRANTS);
        let o = pg.map_missing(&g, DOM, bad.iter().copied());
        assert_eq!(o.failed.len(), bad.len());
        // The 8 forgotten ones cost a call each after the failed group call.
        assert_eq!((o.remembered, o.calls), (FAILED_GRANTS, 1 + 8));
    }

    #[test]
    fn the_bound_leaves_the_rest_unmapped() {
        let (g, _mem) = granted(5);
        let mut pg = PersistentGrants::new(3);
        let o = pg.map_missing(&g, DOM, [10, 11, 12, 13, 14]);
        assert_eq!((o.mapped, o.over_bound), (3, 2));
        assert_eq!(pg.len(), 3);
        assert!(pg.get(13).is_none());
        let o = pg.map_missing(&g, DOM, [13]);
        assert_eq!((o.mapped, o.over_bound, o.calls), (0, 1, 0));
        assert_eq!(g.live_pages(), 3);
    }
}
