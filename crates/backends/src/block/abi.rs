//! The blkif protocol (xen/include/public/io/blkif.h), native layout (arm64 and
//! x86_64 agree: `arm-abi` / `x86_64-abi`).

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER` (not offered).
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: optional data to write, then a cache flush.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1` (old tap).
pub const OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`.
pub const OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT` (not offered).
pub const OP_INDIRECT: u8 = 6;

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const MAX_SEGMENTS: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`: grants of segment pages in an
/// indirect request.
pub const MAX_INDIRECT_PAGES: usize = 8;
/// `struct blkif_request_segment`s in one indirect page (8 bytes each).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 512;
/// Most segments rxblkback accepts in an indirect request (Linux xen-blkback's
/// `MAX_INDIRECT_SEGMENTS`): one indirect page.
pub const MAX_INDIRECT_SEGMENTS: u16 = 256;
/// Sectors are 512 bytes in the protocol, whatever `sector-size` says.
pub const SECTOR_SHIFT: u32 = 9;
pub const SECTOR_SIZE: u64 = 1 << SECTOR_SHIFT;
/// Last sector index within a 4 KiB page (`XEN_PAGE_SIZE / 512 - 1`).
pub const MAX_SECT_IN_PAGE: u8 = 7;

/// Size of `struct blkif_request` (and of a ring slot).
pub const REQUEST_SIZE: usize = 112;
/// Size of `struct blkif_response`.
pub const RESPONSE_SIZE: usize = 16;
/// A request slot as 8-byte words: the ring and the journal move it with
/// word-sized volatile accesses.
pub const REQUEST_WORDS: usize = REQUEST_SIZE / 8;
/// A response slot as 8-byte words.
pub const RESPONSE_WORDS: usize = RESPONSE_SIZE / 8;
/// Offsets in `struct blkif_request`.
const OFF_OPERATION: usize = 0;
const OFF_NR_SEGMENTS: usize = 1;
const OFF_HANDLE: usize = 2;
const OFF_ID: usize = 8;
const OFF_SECTOR: usize = 16;
const OFF_SEG: usize = 24;
/// `struct blkif_request_segment`: gref u32, first_sect u8, last_sect u8, pad.
pub const SEG_SIZE: usize = 8;
/// `struct blkif_request_discard`: flag in place of nr_segments, nr_sectors @24.
const OFF_DISCARD_FLAG: usize = 1;
const OFF_DISCARD_NR_SECTORS: usize = 24;
/// `struct blkif_request_indirect`: indirect_op @1, nr_segments u16 @2, id @8,
/// sector @16, handle @24, indirect_grefs[8] @28.
const OFF_INDIRECT_OP: usize = 1;
const OFF_INDIRECT_NR_SEGMENTS: usize = 2;
const OFF_INDIRECT_GREFS: usize = 28;
/// `BLKIF_DISCARD_SECURE`.
pub const DISCARD_SECURE: u8 = 1;

/// `info` bits (blkif.h `VDISK_*`).
pub const VDISK_CDROM: u32 = 1;
pub const VDISK_REMOVABLE: u32 = 2;
pub const VDISK_READONLY: u32 = 4;

/// One segment as the frontend wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSegment {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
}

/// A request slot copied out of the ring (not yet validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRequest(pub [u8; REQUEST_SIZE]);

impl RawRequest {
    /// The request from its slot's words (native byte order, as in memory).
    pub fn from_words(words: [u64; REQUEST_WORDS]) -> Self {
        let mut r = RawRequest([0; REQUEST_SIZE]);
        for (b, w) in r.0.chunks_exact_mut(8).zip(words) {
            b.copy_from_slice(&w.to_ne_bytes());
        }
        r
    }
    /// The slot's words of the request ([`RawRequest::from_words`]'s inverse).
    pub fn to_words(&self) -> [u64; REQUEST_WORDS] {
        let mut w = [0u64; REQUEST_WORDS];
        for (w, b) in w.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut x = [0u8; 8];
            x.copy_from_slice(b);
            *w = u64::from_ne_bytes(x);
        }
        w
    }
    fn u64_at(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_ne_bytes(b)
    }
    pub fn operation(&self) -> u8 {
        self.0[OFF_OPERATION]
    }
    pub fn nr_segments(&self) -> u8 {
        self.0[OFF_NR_SEGMENTS]
    }
    pub fn handle(&self) -> u16 {
        u16::from_ne_bytes([self.0[OFF_HANDLE], self.0[OFF_HANDLE + 1]])
    }
    pub fn id(&self) -> u64 {
        self.u64_at(OFF_ID)
    }
    pub fn sector(&self) -> u64 {
        self.u64_at(OFF_SECTOR)
    }
    pub fn discard_flag(&self) -> u8 {
        self.0[OFF_DISCARD_FLAG]
    }
    pub fn discard_nr_sectors(&self) -> u64 {
        self.u64_at(OFF_DISCARD_NR_SECTORS)
    }
    /// The operation an indirect request carries out (READ or WRITE).
    pub fn indirect_op(&self) -> u8 {
        self.0[OFF_INDIRECT_OP]
    }
    /// Segments of an indirect request.
    pub fn indirect_nr_segments(&self) -> u16 {
        u16::from_ne_bytes([
            self.0[OFF_INDIRECT_NR_SEGMENTS],
            self.0[OFF_INDIRECT_NR_SEGMENTS + 1],
        ])
    }
    /// Grant `i` (< [`MAX_INDIRECT_PAGES`]) of an indirect request's segment pages.
    pub fn indirect_gref(&self, i: usize) -> u32 {
        let o = OFF_INDIRECT_GREFS + 4 * i;
        u32::from_ne_bytes([self.0[o], self.0[o + 1], self.0[o + 2], self.0[o + 3]])
    }
    /// The operation a response to this request names: an indirect request's
    /// `indirect_op` (Linux blkfront checks it), else `operation`.
    pub fn response_operation(&self) -> u8 {
        if self.operation() == OP_INDIRECT {
            self.indirect_op()
        } else {
            self.operation()
        }
    }
    /// Builds an indirect request (tests and guest-side helpers).
    pub fn new_indirect(op: u8, id: u64, sector: u64, nr_segments: u16, grefs: &[u32]) -> Self {
        let mut r = RawRequest([0; REQUEST_SIZE]);
        r.0[OFF_OPERATION] = OP_INDIRECT;
        r.0[OFF_INDIRECT_OP] = op;
        r.0[OFF_INDIRECT_NR_SEGMENTS..OFF_INDIRECT_NR_SEGMENTS + 2]
            .copy_from_slice(&nr_segments.to_ne_bytes());
        r.0[OFF_ID..OFF_ID + 8].copy_from_slice(&id.to_ne_bytes());
        r.0[OFF_SECTOR..OFF_SECTOR + 8].copy_from_slice(&sector.to_ne_bytes());
        for (i, g) in grefs.iter().take(MAX_INDIRECT_PAGES).enumerate() {
            let o = OFF_INDIRECT_GREFS + 4 * i;
            r.0[o..o + 4].copy_from_slice(&g.to_ne_bytes());
        }
        r
    }
    /// Segment `i` (< [`MAX_SEGMENTS`]).
    pub fn segment(&self, i: usize) -> RawSegment {
        let o = OFF_SEG + i * SEG_SIZE;
        RawSegment {
            gref: u32::from_ne_bytes([self.0[o], self.0[o + 1], self.0[o + 2], self.0[o + 3]]),
            first_sect: self.0[o + 4],
            last_sect: self.0[o + 5],
        }
    }

    /// Builders for tests and guest-driver helpers.
    pub fn new(operation: u8, id: u64, sector: u64, segments: &[RawSegment]) -> Self {
        let mut r = RawRequest([0; REQUEST_SIZE]);
        r.0[OFF_OPERATION] = operation;
        r.0[OFF_NR_SEGMENTS] = segments.len().min(u8::MAX as usize) as u8;
        r.0[OFF_ID..OFF_ID + 8].copy_from_slice(&id.to_ne_bytes());
        r.0[OFF_SECTOR..OFF_SECTOR + 8].copy_from_slice(&sector.to_ne_bytes());
        for (i, s) in segments.iter().take(MAX_SEGMENTS).enumerate() {
            r.set_segment(i, *s);
        }
        r
    }
    pub fn set_segment(&mut self, i: usize, s: RawSegment) {
        let o = OFF_SEG + i * SEG_SIZE;
        self.0[o..o + 4].copy_from_slice(&s.gref.to_ne_bytes());
        self.0[o + 4] = s.first_sect;
        self.0[o + 5] = s.last_sect;
    }
    pub fn set_nr_segments(&mut self, n: u8) {
        self.0[OFF_NR_SEGMENTS] = n;
    }
    pub fn set_sector(&mut self, s: u64) {
        self.0[OFF_SECTOR..OFF_SECTOR + 8].copy_from_slice(&s.to_ne_bytes());
    }
    pub fn set_operation(&mut self, op: u8) {
        self.0[OFF_OPERATION] = op;
    }
    pub fn new_discard(id: u64, sector: u64, nr_sectors: u64, flag: u8) -> Self {
        let mut r = Self::new(OP_DISCARD, id, sector, &[]);
        r.0[OFF_DISCARD_FLAG] = flag;
        r.0[OFF_DISCARD_NR_SECTORS..OFF_DISCARD_NR_SECTORS + 8]
            .copy_from_slice(&nr_sectors.to_ne_bytes());
        r
    }
}

impl RawSegment {
    /// A segment as laid out in an indirect page (`struct blkif_request_segment`).
    pub fn from_bytes(b: &[u8; SEG_SIZE]) -> Self {
        RawSegment {
            gref: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            first_sect: b[4],
            last_sect: b[5],
        }
    }
    pub fn to_bytes(self) -> [u8; SEG_SIZE] {
        let mut b = [0u8; SEG_SIZE];
        b[0..4].copy_from_slice(&self.gref.to_ne_bytes());
        b[4] = self.first_sect;
        b[5] = self.last_sect;
        b
    }
}

/// `struct blkif_response`: id u64, operation u8 @8, status i16 @10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub id: u64,
    pub operation: u8,
    pub status: i16,
}

impl Response {
    pub fn to_bytes(self) -> [u8; RESPONSE_SIZE] {
        let mut b = [0u8; RESPONSE_SIZE];
        b[0..8].copy_from_slice(&self.id.to_ne_bytes());
        b[8] = self.operation;
        b[10..12].copy_from_slice(&self.status.to_ne_bytes());
        b
    }
    /// The response slot's words ([`Response::to_bytes`] as 8-byte words).
    pub fn to_words(self) -> [u64; RESPONSE_WORDS] {
        let b = self.to_bytes();
        let mut w = [0u64; RESPONSE_WORDS];
        for (w, b) in w.iter_mut().zip(b.chunks_exact(8)) {
            let mut x = [0u8; 8];
            x.copy_from_slice(b);
            *w = u64::from_ne_bytes(x);
        }
        w
    }
    pub fn from_bytes(b: &[u8; RESPONSE_SIZE]) -> Self {
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[0..8]);
        Response {
            id: u64::from_ne_bytes(id),
            operation: b[8],
            status: i16::from_ne_bytes([b[10], b[11]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_carry_the_same_bytes() {
        let segs = [RawSegment {
            gref: 0x0102_0304,
            first_sect: 1,
            last_sect: 6,
        }];
        let r = RawRequest::new(OP_WRITE, 0x1122_3344_5566_7788, 0xabcd, &segs);
        assert_eq!(RawRequest::from_words(r.to_words()), r);
        let w = r.to_words();
        assert_eq!(w[1], 0x1122_3344_5566_7788, "id at byte 8");
        let rsp = Response {
            id: 7,
            operation: OP_READ,
            status: RSP_ERROR,
        };
        let words = rsp.to_words();
        let mut bytes = [0u8; RESPONSE_SIZE];
        bytes[..8].copy_from_slice(&words[0].to_ne_bytes());
        bytes[8..].copy_from_slice(&words[1].to_ne_bytes());
        assert_eq!(bytes, rsp.to_bytes());
        assert_eq!(Response::from_bytes(&bytes), rsp);
    }
}
