//! A blkif request slot as a hostile frontend may write it, against disk limits
//! taken from the input: validation never panics, and what it accepts is safe
//! to execute.
#![no_main]

use backends::block::abi::{
    RawRequest, MAX_SECT_IN_PAGE, MAX_SEGMENTS, OP_DISCARD, OP_FLUSH_DISKCACHE, OP_READ, OP_WRITE,
    REQUEST_SIZE, RSP_EOPNOTSUPP, RSP_ERROR,
};
use backends::block::request::{parse, parse_indirect, parse_indirect_header, DiskLimits, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < REQUEST_SIZE + 9 {
        return;
    }
    let mut raw = RawRequest([0; REQUEST_SIZE]);
    raw.0.copy_from_slice(&data[..REQUEST_SIZE]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&data[REQUEST_SIZE..REQUEST_SIZE + 8]);
    let flags = data[REQUEST_SIZE + 8];
    let limits = DiskLimits {
        sectors: u64::from_ne_bytes(n),
        read_only: flags & 1 != 0,
        discard: flags & 2 != 0,
        max_indirect_segments: if flags & 4 != 0 { 256 } else { 0 },
        sector_size: if flags & 8 != 0 { 4096 } else { 512 },
    };
    if raw.operation() == backends::block::abi::OP_INDIRECT && limits.max_indirect_segments > 0 {
        // The rest of the input is the copied segment page.
        if let Ok(h) = parse_indirect_header(&raw, &limits) {
            assert!(h.nr_segments >= 1 && h.nr_segments <= 256 && h.page_grefs.len() == 1);
            if let Ok(req) = parse_indirect(&raw, &h, &data[REQUEST_SIZE + 9..], &limits) {
                assert_eq!(req.segments.len(), usize::from(h.nr_segments));
                assert!(req
                    .segments
                    .iter()
                    .all(|s| s.first_sect <= s.last_sect && s.last_sect <= MAX_SECT_IN_PAGE));
                assert!(req
                    .sector
                    .checked_add(req.sectors())
                    .is_some_and(|e| e <= limits.sectors));
                assert!(req.kind == Kind::Read || !limits.read_only);
            }
        }
        return;
    }
    match parse(&raw, &limits) {
        Err(e) => assert!(matches!(e.status(), RSP_ERROR | RSP_EOPNOTSUPP)),
        Ok(req) => {
            assert_eq!(req.id, raw.id());
            assert!(req.segments.len() <= MAX_SEGMENTS);
            let mut count = 0u64;
            for s in &req.segments {
                assert!(s.first_sect <= s.last_sect && s.last_sect <= MAX_SECT_IN_PAGE);
                assert!(s.offset() + s.len() <= 4096);
                count += u64::from(s.last_sect - s.first_sect) + 1;
            }
            match req.kind {
                Kind::Read => assert_eq!(raw.operation(), OP_READ),
                Kind::Write => {
                    assert_eq!(raw.operation(), OP_WRITE);
                    assert!(!limits.read_only);
                }
                Kind::Flush => {
                    assert_eq!(raw.operation(), OP_FLUSH_DISKCACHE);
                    assert!(req.segments.is_empty() || !limits.read_only);
                }
                Kind::Discard { nr_sectors } => {
                    assert_eq!(raw.operation(), OP_DISCARD);
                    assert!(limits.discard && !limits.read_only);
                    count = nr_sectors;
                }
            }
            if !matches!(req.kind, Kind::Read | Kind::Write) || count > 0 {
                let end = req
                    .sector
                    .checked_add(count)
                    .expect("range overflow accepted");
                assert!(
                    count == 0 || end <= limits.sectors,
                    "range beyond the disk accepted"
                );
            } else {
                panic!("a data request without data accepted");
            }
        }
    }
});
