//! Request validation, apart from I/O (in the manner of Firecracker's
//! `request.rs`): a request copied out of the ring is checked field by field,
//! one error variant per check, and only a [`Request`] reaches the disk.

use super::abi::*;

/// What the disk allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLimits {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    pub read_only: bool,
    pub discard: bool,
    /// Segments an indirect request may have (`feature-max-indirect-segments`);
    /// 0: indirect requests are not offered.
    pub max_indirect_segments: u16,
    /// Logical sector size in bytes (`sector-size`: 512 or 4096). Requests still
    /// count in 512-byte sectors, but every sector number, segment and discard
    /// range must be aligned to this size (blkif.h).
    pub sector_size: u32,
}

impl DiskLimits {
    /// 512-byte protocol sectors per logical sector (1 or 8).
    fn align(&self) -> u64 {
        (u64::from(self.sector_size) >> SECTOR_SHIFT).max(1)
    }
}

/// A data segment, validated: grant `gref`, sectors `first..=last` of its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
}

impl Segment {
    /// Byte offset within the granted page.
    pub fn offset(&self) -> usize {
        usize::from(self.first_sect) << SECTOR_SHIFT
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.last_sect - self.first_sect + 1) << SECTOR_SHIFT
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A request's validated segments: inline up to [`MAX_SEGMENTS`] (a direct
/// request: no allocation per request on the hot path), on the heap beyond
/// (an indirect request's up to 256). Used as a slice.
#[derive(Debug, Clone)]
pub enum Segments {
    Inline {
        len: u8,
        segs: [Segment; MAX_SEGMENTS],
    },
    Heap(Vec<Segment>),
}

/// An unused inline slot.
const NO_SEGMENT: Segment = Segment {
    gref: 0,
    first_sect: 0,
    last_sect: 0,
};

impl Segments {
    /// Empty, with room for `n` segments (inline when `n` fits).
    pub fn with_capacity(n: usize) -> Self {
        if n <= MAX_SEGMENTS {
            Segments::Inline {
                len: 0,
                segs: [NO_SEGMENT; MAX_SEGMENTS],
            }
        } else {
            Segments::Heap(Vec::with_capacity(n))
        }
    }

    /// Appends `s` (moving to the heap when the inline room is full).
    pub fn push(&mut self, s: Segment) {
        match self {
            Segments::Inline { len, segs } => {
                if let Some(slot) = segs.get_mut(usize::from(*len)) {
                    *slot = s;
                    *len += 1;
                } else {
                    let mut v = Vec::with_capacity(2 * MAX_SEGMENTS);
                    v.extend_from_slice(&segs[..]);
                    v.push(s);
                    *self = Segments::Heap(v);
                }
            }
            Segments::Heap(v) => v.push(s),
        }
    }
}

impl Default for Segments {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl std::ops::Deref for Segments {
    type Target = [Segment];
    fn deref(&self) -> &[Segment] {
        match self {
            Segments::Inline { len, segs } => &segs[..usize::from(*len)],
            Segments::Heap(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Segments {
    type Item = &'a Segment;
    type IntoIter = std::slice::Iter<'a, Segment>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl Eq for Segments {}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    /// Write the segments (if any), then flush the disk cache.
    Flush,
    Discard {
        nr_sectors: u64,
    },
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub operation: u8,
    pub kind: Kind,
    pub sector: u64,
    pub segments: Segments,
}

impl Request {
    /// Total bytes of data.
    pub fn data_len(&self) -> usize {
        self.segments.iter().map(Segment::len).sum()
    }
    /// Sectors of data (validated to lie inside the disk).
    pub fn sectors(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| u64::from(s.last_sect - s.first_sect) + 1)
            .sum()
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("operation {0} is not supported")]
    UnsupportedOperation(u8),
    #[error("a data request without segments")]
    NoSegments,
    #[error("{0} segments, more than {MAX_SEGMENTS}")]
    TooManySegments(u8),
    #[error("segment {index}: first sector {first} after last sector {last}")]
    SegmentInverted { index: usize, first: u8, last: u8 },
    #[error("segment {index}: last sector {last} beyond the page")]
    SegmentBeyondPage { index: usize, last: u8 },
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("discard is not enabled on this disk")]
    DiscardDisabled,
    #[error("secure discard is not supported")]
    SecureDiscard,
    #[error("sectors {sector}+{count} are beyond the disk's {size}")]
    OutOfRange { sector: u64, count: u64, size: u64 },
    #[error("indirect request for operation {0} (only reads and writes)")]
    IndirectOperation(u8),
    #[error("indirect request with {got} segments (1..={max})")]
    IndirectSegments { got: u16, max: u16 },
    #[error("copying the indirect segment pages failed")]
    IndirectCopy,
    #[error("a grant the request names cannot be mapped")]
    GrantMap,
    #[error(
        "sector {sector} or segment {first}..={last} not aligned to the {size}-byte logical sector"
    )]
    Misaligned {
        sector: u64,
        first: u8,
        last: u8,
        size: u32,
    },
}

impl RequestError {
    /// The status the frontend sees.
    pub fn status(&self) -> i16 {
        match self {
            RequestError::UnsupportedOperation(_)
            | RequestError::DiscardDisabled
            | RequestError::SecureDiscard => RSP_EOPNOTSUPP,
            _ => RSP_ERROR,
        }
    }
}

fn check_range(sector: u64, count: u64, limits: &DiskLimits) -> Result<(), RequestError> {
    let end = sector.checked_add(count);
    if end.is_none_or(|e| e > limits.sectors) {
        return Err(RequestError::OutOfRange {
            sector,
            count,
            size: limits.sectors,
        });
    }
    Ok(())
}

/// Validates a request copied out of the ring.
pub fn parse(raw: &RawRequest, limits: &DiskLimits) -> Result<Request, RequestError> {
    let operation = raw.operation();
    let kind = match operation {
        OP_READ => Kind::Read,
        OP_WRITE => Kind::Write,
        OP_FLUSH_DISKCACHE => Kind::Flush,
        OP_DISCARD => {
            if !limits.discard {
                return Err(RequestError::DiscardDisabled);
            }
            if raw.discard_flag() & DISCARD_SECURE != 0 {
                return Err(RequestError::SecureDiscard);
            }
            if limits.read_only {
                return Err(RequestError::ReadOnly);
            }
            let nr_sectors = raw.discard_nr_sectors();
            if raw.sector() % limits.align() != 0 || nr_sectors % limits.align() != 0 {
                return Err(RequestError::Misaligned {
                    sector: raw.sector(),
                    first: 0,
                    last: 0,
                    size: limits.sector_size,
                });
            }
            check_range(raw.sector(), nr_sectors, limits)?;
            return Ok(Request {
                id: raw.id(),
                operation,
                kind: Kind::Discard { nr_sectors },
                sector: raw.sector(),
                segments: Segments::default(),
            });
        }
        other => return Err(RequestError::UnsupportedOperation(other)),
    };
    let n = raw.nr_segments();
    if n == 0 && kind != Kind::Flush {
        return Err(RequestError::NoSegments);
    }
    if usize::from(n) > MAX_SEGMENTS {
        return Err(RequestError::TooManySegments(n));
    }
    let segs = (0..usize::from(n)).map(|i| raw.segment(i));
    validate(raw, operation, kind, segs, limits)
}

/// Checks the segments of a read, write or flush and the range they cover.
fn validate(
    raw: &RawRequest,
    operation: u8,
    kind: Kind,
    segs: impl Iterator<Item = RawSegment>,
    limits: &DiskLimits,
) -> Result<Request, RequestError> {
    let mut segments = Segments::with_capacity(segs.size_hint().0);
    for (index, s) in segs.enumerate() {
        if s.first_sect > s.last_sect {
            return Err(RequestError::SegmentInverted {
                index,
                first: s.first_sect,
                last: s.last_sect,
            });
        }
        if s.last_sect > MAX_SECT_IN_PAGE {
            return Err(RequestError::SegmentBeyondPage {
                index,
                last: s.last_sect,
            });
        }
        let align = limits.align();
        if raw.sector() % align != 0
            || u64::from(s.first_sect) % align != 0
            || (u64::from(s.last_sect) + 1) % align != 0
        {
            return Err(RequestError::Misaligned {
                sector: raw.sector(),
                first: s.first_sect,
                last: s.last_sect,
                size: limits.sector_size,
            });
        }
        segments.push(Segment {
            gref: s.gref,
            first_sect: s.first_sect,
            last_sect: s.last_sect,
        });
    }
    if kind != Kind::Read && limits.read_only && !segments.is_empty() {
        return Err(RequestError::ReadOnly);
    }
    let count: u64 = segments
        .iter()
        .map(|s| u64::from(s.last_sect - s.first_sect) + 1)
        .sum();
    if count > 0 {
        check_range(raw.sector(), count, limits)?;
    }
    Ok(Request {
        id: raw.id(),
        operation,
        kind,
        sector: raw.sector(),
        segments,
    })
}

/// What an indirect request (`BLKIF_OP_INDIRECT`) asks to copy before its
/// segments can be checked: its operation and segment count, validated, and
/// the grants of its segment pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndirectHeader {
    pub kind: Kind,
    pub nr_segments: u16,
    pub page_grefs: Vec<u32>,
}

/// Validates an indirect request's header (first step of [`parse_indirect`]).
pub fn parse_indirect_header(
    raw: &RawRequest,
    limits: &DiskLimits,
) -> Result<IndirectHeader, RequestError> {
    if limits.max_indirect_segments == 0 {
        return Err(RequestError::UnsupportedOperation(OP_INDIRECT));
    }
    let kind = match raw.indirect_op() {
        OP_READ => Kind::Read,
        OP_WRITE => Kind::Write,
        other => return Err(RequestError::IndirectOperation(other)),
    };
    let n = raw.indirect_nr_segments();
    if n == 0 || n > limits.max_indirect_segments {
        return Err(RequestError::IndirectSegments {
            got: n,
            max: limits.max_indirect_segments,
        });
    }
    let pages = usize::from(n).div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
    Ok(IndirectHeader {
        kind,
        nr_segments: n,
        page_grefs: (0..pages.min(MAX_INDIRECT_PAGES))
            .map(|i| raw.indirect_gref(i))
            .collect(),
    })
}

/// Validates an indirect request whose segment pages were copied (once) into
/// `pages`: the first `nr_segments` 8-byte segments are checked like a direct
/// request's.
pub fn parse_indirect(
    raw: &RawRequest,
    header: &IndirectHeader,
    pages: &[u8],
    limits: &DiskLimits,
) -> Result<Request, RequestError> {
    let n = usize::from(header.nr_segments);
    if pages.len() < n * SEG_SIZE {
        return Err(RequestError::IndirectCopy);
    }
    let segs = pages[..n * SEG_SIZE].chunks_exact(SEG_SIZE).map(|c| {
        let mut b = [0u8; SEG_SIZE];
        b.copy_from_slice(c);
        RawSegment::from_bytes(&b)
    });
    let op = match header.kind {
        Kind::Read => OP_READ,
        _ => OP_WRITE,
    };
    validate(raw, op, header.kind.clone(), segs, limits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: DiskLimits = DiskLimits {
        sectors: 1024,
        read_only: false,
        discard: true,
        max_indirect_segments: 0,
        sector_size: 512,
    };

    fn seg(gref: u32, first: u8, last: u8) -> RawSegment {
        RawSegment {
            gref,
            first_sect: first,
            last_sect: last,
        }
    }

    #[test]
    fn a_valid_read() {
        let raw = RawRequest::new(OP_READ, 42, 8, &[seg(3, 0, 7), seg(4, 2, 3)]);
        let r = parse(&raw, &LIMITS).unwrap();
        assert_eq!(r.id, 42);
        assert_eq!(r.kind, Kind::Read);
        assert_eq!(r.data_len(), 4096 + 1024);
        assert_eq!(r.segments[1].offset(), 1024);
    }

    #[test]
    fn each_check_has_its_error() {
        let ok = RawRequest::new(OP_WRITE, 1, 0, &[seg(3, 0, 7)]);
        let cases: Vec<(RawRequest, RequestError)> = vec![
            (
                {
                    let mut r = ok;
                    r.set_operation(OP_INDIRECT);
                    r
                },
                RequestError::UnsupportedOperation(OP_INDIRECT),
            ),
            (
                {
                    let mut r = ok;
                    r.set_operation(OP_WRITE_BARRIER);
                    r
                },
                RequestError::UnsupportedOperation(OP_WRITE_BARRIER),
            ),
            (
                {
                    let mut r = ok;
                    r.set_nr_segments(0);
                    r
                },
                RequestError::NoSegments,
            ),
            (
                {
                    let mut r = ok;
                    r.set_nr_segments(12);
                    r
                },
                RequestError::TooManySegments(12),
            ),
            (
                {
                    let mut r = ok;
                    r.set_segment(0, seg(3, 5, 4));
                    r
                },
                RequestError::SegmentInverted {
                    index: 0,
                    first: 5,
                    last: 4,
                },
            ),
            (
                {
                    let mut r = ok;
                    r.set_segment(0, seg(3, 0, 8));
                    r
                },
                RequestError::SegmentBeyondPage { index: 0, last: 8 },
            ),
            (
                {
                    let mut r = ok;
                    r.set_sector(1020);
                    r
                },
                RequestError::OutOfRange {
                    sector: 1020,
                    count: 8,
                    size: 1024,
                },
            ),
            (
                {
                    let mut r = ok;
                    r.set_sector(u64::MAX - 2);
                    r
                },
                RequestError::OutOfRange {
                    sector: u64::MAX - 2,
                    count: 8,
                    size: 1024,
                },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(&raw, &LIMITS), Err(want));
        }
        let ro = DiskLimits {
            read_only: true,
            ..LIMITS
        };
        assert_eq!(parse(&ok, &ro), Err(RequestError::ReadOnly));
        assert!(parse(&RawRequest::new(OP_READ, 1, 0, &[seg(3, 0, 7)]), &ro).is_ok());
        // A flush without data is fine on a read-only disk.
        assert!(parse(&RawRequest::new(OP_FLUSH_DISKCACHE, 1, 0, &[]), &ro).is_ok());
    }

    #[test]
    fn a_4096_byte_sector_disk_takes_only_whole_aligned_sectors() {
        let k4 = DiskLimits {
            sector_size: 4096,
            ..LIMITS
        };
        // Sector numbers stay in 512-byte units: sector 8 is the second 4 KiB one.
        let ok = RawRequest::new(OP_WRITE, 1, 8, &[seg(3, 0, 7), seg(4, 0, 7)]);
        assert_eq!(parse(&ok, &k4).unwrap().sectors(), 16);
        let misaligned = |sector, first, last| RequestError::Misaligned {
            sector,
            first,
            last,
            size: 4096,
        };
        let cases = [
            (
                RawRequest::new(OP_READ, 1, 4, &[seg(3, 0, 7)]),
                misaligned(4, 0, 7),
            ),
            (
                RawRequest::new(OP_READ, 1, 8, &[seg(3, 1, 7)]),
                misaligned(8, 1, 7),
            ),
            (
                RawRequest::new(OP_READ, 1, 8, &[seg(3, 0, 7), seg(4, 0, 3)]),
                misaligned(8, 0, 3),
            ),
            (RawRequest::new_discard(9, 8, 4, 0), misaligned(8, 0, 0)),
            (RawRequest::new_discard(9, 12, 8, 0), misaligned(12, 0, 0)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(&raw, &k4), Err(want.clone()));
            assert_eq!(want.status(), RSP_ERROR);
            // The same requests are fine on a 512-byte sector disk.
            assert!(parse(&raw, &LIMITS).is_ok(), "{raw:?}");
        }
        assert!(parse(&RawRequest::new_discard(9, 8, 16, 0), &k4).is_ok());
        assert!(parse(&RawRequest::new(OP_FLUSH_DISKCACHE, 1, 0, &[]), &k4).is_ok());
    }

    #[test]
    fn discard_checks() {
        let d = RawRequest::new_discard(9, 8, 16, 0);
        assert_eq!(
            parse(&d, &LIMITS).unwrap().kind,
            Kind::Discard { nr_sectors: 16 }
        );
        let nodiscard = DiskLimits {
            discard: false,
            ..LIMITS
        };
        assert_eq!(parse(&d, &nodiscard), Err(RequestError::DiscardDisabled));
        assert_eq!(
            parse(&RawRequest::new_discard(9, 8, 16, DISCARD_SECURE), &LIMITS),
            Err(RequestError::SecureDiscard)
        );
        assert!(matches!(
            parse(&RawRequest::new_discard(9, 1000, 100, 0), &LIMITS),
            Err(RequestError::OutOfRange { .. })
        ));
    }

    #[test]
    fn indirect_requests() {
        let lim = DiskLimits {
            max_indirect_segments: 32,
            ..LIMITS
        };
        let raw = RawRequest::new_indirect(OP_WRITE, 5, 16, 20, &[77]);
        assert_eq!(raw.response_operation(), OP_WRITE);
        let h = parse_indirect_header(&raw, &lim).unwrap();
        assert_eq!(
            (h.kind.clone(), h.nr_segments, h.page_grefs.clone()),
            (Kind::Write, 20, vec![77])
        );
        let mut page = vec![0u8; 4096];
        for i in 0..20 {
            page[i * 8..i * 8 + 8].copy_from_slice(&seg(100 + i as u32, 0, 7).to_bytes());
        }
        let r = parse_indirect(&raw, &h, &page, &lim).unwrap();
        assert_eq!(
            (r.id, r.operation, r.segments.len(), r.data_len()),
            (5, OP_WRITE, 20, 20 * 4096)
        );
        // One bad segment in the page.
        page[3 * 8 + 5] = 8;
        assert_eq!(
            parse_indirect(&raw, &h, &page, &lim),
            Err(RequestError::SegmentBeyondPage { index: 3, last: 8 })
        );
        // Beyond the disk: 20 pages from sector 900.
        page[3 * 8 + 5] = 7;
        let far = RawRequest::new_indirect(OP_READ, 6, 900, 20, &[77]);
        let h2 = parse_indirect_header(&far, &lim).unwrap();
        assert!(matches!(
            parse_indirect(&far, &h2, &page, &lim),
            Err(RequestError::OutOfRange { .. })
        ));
        // Header checks.
        assert_eq!(
            parse_indirect_header(&raw, &LIMITS),
            Err(RequestError::UnsupportedOperation(OP_INDIRECT))
        );
        assert_eq!(
            parse_indirect_header(
                &RawRequest::new_indirect(OP_FLUSH_DISKCACHE, 1, 0, 1, &[1]),
                &lim
            ),
            Err(RequestError::IndirectOperation(OP_FLUSH_DISKCACHE))
        );
        for n in [0u16, 33, u16::MAX] {
            assert_eq!(
                parse_indirect_header(&RawRequest::new_indirect(OP_READ, 1, 0, n, &[1]), &lim),
                Err(RequestError::IndirectSegments { got: n, max: 32 })
            );
        }
        let ro = DiskLimits {
            read_only: true,
            ..lim
        };
        assert_eq!(
            parse_indirect(&raw, &h, &page, &ro),
            Err(RequestError::ReadOnly)
        );
        // A short copy is refused, not read past.
        assert_eq!(
            parse_indirect(&raw, &h, &page[..100], &lim),
            Err(RequestError::IndirectCopy)
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            RequestError::UnsupportedOperation(9).status(),
            RSP_EOPNOTSUPP
        );
        assert_eq!(RequestError::NoSegments.status(), RSP_ERROR);
        assert_eq!(RequestError::ReadOnly.status(), RSP_ERROR);
    }

    #[test]
    fn random_corruption_never_panics() {
        // A cheap fuzz loop: flip bytes of a valid request; parsing must answer.
        let base = RawRequest::new(OP_WRITE, 1, 0, &[seg(3, 0, 7), seg(4, 0, 7)]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut r = base;
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.0[(x % REQUEST_SIZE as u64) as usize] = (x >> 32) as u8;
            }
            if let Ok(req) = parse(&r, &LIMITS) {
                assert!(req.segments.len() <= MAX_SEGMENTS);
                assert!(req
                    .segments
                    .iter()
                    .all(|s| s.first_sect <= s.last_sect && s.last_sect <= 7));
            }
        }
    }

    #[test]
    fn segments_stay_inline_up_to_a_direct_request_then_move_to_the_heap() {
        let seg = |g: u32| Segment {
            gref: g,
            first_sect: 0,
            last_sect: 7,
        };
        let mut s = Segments::with_capacity(MAX_SEGMENTS);
        for g in 0..MAX_SEGMENTS as u32 {
            s.push(seg(g));
        }
        assert!(matches!(s, Segments::Inline { .. }));
        assert_eq!(s.len(), MAX_SEGMENTS);
        s.push(seg(99));
        assert!(matches!(s, Segments::Heap(_)));
        let grefs: Vec<u32> = s.iter().map(|x| x.gref).collect();
        let mut want: Vec<u32> = (0..MAX_SEGMENTS as u32).collect();
        want.push(99);
        assert_eq!(grefs, want);
        // Equality is by content, whatever the storage.
        let mut heap = Segments::with_capacity(MAX_SEGMENTS + 1);
        for g in want {
            heap.push(seg(g));
        }
        assert!(matches!(heap, Segments::Heap(_)));
        assert_eq!(s, heap);
        assert!(Segments::default().is_empty());
    }
}
