//! A hostile frontend's whole ring page (indices and slots) served by the block
//! backend over the fakes: a disk of 64 sectors in a temporary file, 4 granted
//! data pages. Processing must answer or report a protocol violation, never
//! panic or hang; every response names a request.
#![no_main]

use std::sync::{Arc, OnceLock};

use backends::block::abi::REQUEST_SIZE;
use backends::block::disk::Disk;
use backends::block::server::BlkRing;
use libfuzzer_sys::fuzz_target;
use xen::fake::FakeGrants;
use xen::{BackRing, GrantMapper, MappedMemory};

const GUEST: u16 = 3;
const PAGE: usize = 4096;
const DISK_SECTORS: u64 = 64;
const RING_GREF: u32 = 100;

fn disk() -> Arc<Disk> {
    static DISK: OnceLock<Arc<Disk>> = OnceLock::new();
    Arc::clone(DISK.get_or_init(|| {
        // tmpfs when there is one: FLUSH_DISKCACHE runs fdatasync.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("rxblk-fuzz-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; DISK_SECTORS as usize * 512]).expect("disk file");
        let d = Disk::open(&path, false).expect("open disk");
        let _ = std::fs::remove_file(&path);
        Arc::new(d)
    }))
}

fuzz_target!(|data: &[u8]| {
    let ring_mem = MappedMemory::anonymous(PAGE).expect("ring");
    let n = data.len().min(PAGE);
    ring_mem.write_bytes(0, &data[..n]).expect("fill ring");
    let pages = MappedMemory::anonymous(4 * PAGE).expect("data");
    let grants = Arc::new(FakeGrants::new());
    grants.grant(GUEST, RING_GREF, &ring_mem, 0, true).expect("grant ring");
    for p in 0..4 {
        // Grant references 0..4, the last one read-only.
        grants
            .grant(GUEST, p as u32, &pages, p, p != 3)
            .expect("grant data");
    }
    let mapped = grants.map_grants(GUEST, &[RING_GREF], true).expect("map ring");
    let Ok(ring) = BackRing::attach((*mapped).clone(), REQUEST_SIZE) else {
        return;
    };
    let rsp_before = ring_mem.read_u32(8).expect("rsp_prod");
    let mut blk = BlkRing::new(ring, grants, GUEST, disk(), data.first() != Some(&0));
    // Persistent grants (bit 0 of the second byte), with a bound of 2 so that
    // the grant-copy fallback is reached too.
    blk.set_persistent_bound(data.get(1).is_some_and(|b| b & 1 == 1), 2);
    // An error is a protocol violation the daemon answers with a disconnect.
    if blk.process().is_ok() {
        let rsp = ring_mem.read_u32(8).expect("rsp_prod");
        assert!(rsp.wrapping_sub(rsp_before) <= 32, "more responses than slots");
        assert_eq!(u64::from(rsp.wrapping_sub(rsp_before)), blk.completed);
    }
});
