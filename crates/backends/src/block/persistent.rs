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
//! requests that name it (BLKIF_RSP_ERROR); the ring stays up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xen::abi::xen::{DomId, GrantRef};
use xen::GrantPageMapper;

/// Most grants one ring keeps mapped (Linux xen-blkback's `max_pgrants`
/// default).
pub const MAX_PERSISTENT_GRANTS: usize = 1056;

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
}

/// What [`PersistentGrants::map_missing`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MapOutcome {
    /// Grants mapped by this call.
    pub mapped: usize,
    /// Mapping calls made (one gntdev ioctl and `mmap` each).
    pub calls: usize,
    /// Grants that could not be mapped, sorted: the requests naming them
    /// fail ([`MapOutcome::failed`]).
    pub failed: Vec<GrantRef>,
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
    /// only the requests naming a bad grant fail.
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
        for g in grefs {
            if self.pages.contains_key(&g) || new.contains(&g) {
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
                        Ok(_) => out.failed.push(g),
                        Err(e) => {
                            tracing::debug!("grant {g} of domain {domid}: {e}");
                            out.failed.push(g);
                        }
                    }
                }
            }
        }
        out.failed.sort_unstable();
        out
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
