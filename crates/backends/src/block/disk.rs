//! The backing store of a virtual disk: a plain file or a block device in dom0.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::abi::SECTOR_SIZE;

/// A block device's logical and physical sector sizes, from
/// `/sys/dev/block/MAJOR:MINOR/queue/` (a partition's are its disk's, one
/// directory up); 512 and 4096 when sysfs does not say.
fn block_device_sector_sizes(rdev: u64) -> (u32, u32) {
    sector_sizes_in(&Path::new(SYS_DEV_BLOCK).join(format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    )))
}

/// Where sysfs lists block devices by number.
const SYS_DEV_BLOCK: &str = "/sys/dev/block";

/// The sector sizes in a block device's sysfs directory `dev`.
fn sector_sizes_in(dev: &Path) -> (u32, u32) {
    let read = |name: &str| {
        [
            dev.join("queue").join(name),
            dev.join("../queue").join(name),
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| n.is_power_of_two() && *n >= SECTOR_SIZE as u32)
    };
    let logical = read("logical_block_size").unwrap_or(SECTOR_SIZES[0]);
    let physical = read("physical_block_size").unwrap_or(FILE_PHYSICAL_SECTOR_SIZE);
    (logical, physical.max(logical))
}

/// Errors of opening or using a backing store.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the size of {path}")]
    Size {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is neither a regular file nor a block device")]
    NotADisk { path: PathBuf },
    #[error("sector size {requested} for {path}: must be 512 or 4096, at least the device's {device}, and divide its size of {bytes} bytes")]
    SectorSize {
        path: PathBuf,
        requested: u32,
        device: u32,
        bytes: u64,
    },
}

/// Logical sector sizes a disk may have (`sector-size`; blkif.h allows any
/// power of two from 512, Linux blkfront takes up to the page size).
pub const SECTOR_SIZES: [u32; 2] = [512, 4096];
/// Physical sector size advertised for a file (a hint for alignment: the page
/// size, in which the page cache works).
pub const FILE_PHYSICAL_SECTOR_SIZE: u32 = 4096;

/// An open backing store.
#[derive(Debug)]
pub struct Disk {
    file: File,
    path: PathBuf,
    sectors: u64,
    read_only: bool,
    /// Hole punching is possible (regular files).
    can_discard: bool,
    /// Logical and physical sector sizes in bytes.
    sector_size: u32,
    physical_sector_size: u32,
}

impl Disk {
    /// Opens `path` read-only or read-write.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, DiskError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| DiskError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| DiskError::Size {
            path: path.to_path_buf(),
            source,
        })?;
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        if !ft.is_file() && !ft.is_block_device() {
            return Err(DiskError::NotADisk {
                path: path.to_path_buf(),
            });
        }
        let bytes = if ft.is_file() {
            meta.len()
        } else {
            file.seek(SeekFrom::End(0))
                .map_err(|source| DiskError::Size {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        let (sector_size, physical_sector_size) = if ft.is_block_device() {
            block_device_sector_sizes(meta.rdev())
        } else {
            (SECTOR_SIZES[0], FILE_PHYSICAL_SECTOR_SIZE)
        };
        Ok(Disk {
            file,
            path: path.to_path_buf(),
            sectors: bytes / SECTOR_SIZE,
            read_only,
            can_discard: ft.is_file() && !read_only,
            sector_size,
            physical_sector_size,
        })
    }

    /// Serves the disk with logical sectors of `size` bytes (512 or 4096, at
    /// least the device's own, dividing the disk's size): a 4096-byte sector
    /// disk from a file, or a 512-byte device shown with 4 KiB sectors.
    pub fn with_sector_size(mut self, size: u32) -> Result<Self, DiskError> {
        let bytes = self.sectors * SECTOR_SIZE;
        if !SECTOR_SIZES.contains(&size) || size < self.sector_size || bytes % u64::from(size) != 0
        {
            return Err(DiskError::SectorSize {
                path: self.path.clone(),
                requested: size,
                device: self.sector_size,
                bytes,
            });
        }
        self.sector_size = size;
        self.physical_sector_size = self.physical_sector_size.max(size);
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }
    pub fn read_only(&self) -> bool {
        self.read_only
    }
    pub fn can_discard(&self) -> bool {
        self.can_discard
    }
    /// Logical sector size in bytes (`sector-size`).
    pub fn sector_size(&self) -> u32 {
        self.sector_size
    }
    /// Physical sector size in bytes (`physical-sector-size`).
    pub fn physical_sector_size(&self) -> u32 {
        self.physical_sector_size
    }

    pub fn read_at(&self, buf: &mut [u8], sector: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, sector * SECTOR_SIZE)
    }
    pub fn write_at(&self, buf: &[u8], sector: u64) -> io::Result<()> {
        self.file.write_all_at(buf, sector * SECTOR_SIZE)
    }
    /// Reads into `pieces` (mapped guest pages), in order, from `sector` on
    /// (`preadv`: the data lands in the pages, no copy).
    pub fn read_into<'a>(
        &self,
        sector: u64,
        pieces: impl IntoIterator<Item = xen::IoPiece<'a>>,
    ) -> io::Result<()> {
        use std::os::fd::AsFd;
        xen::pread_exact_into(self.file.as_fd(), sector * SECTOR_SIZE, pieces)
    }
    /// Writes `pieces` (mapped guest pages), in order, from `sector` on
    /// (`pwritev`).
    pub fn write_from<'a>(
        &self,
        sector: u64,
        pieces: impl IntoIterator<Item = xen::IoPiece<'a>>,
    ) -> io::Result<()> {
        use std::os::fd::AsFd;
        xen::pwrite_all_from(self.file.as_fd(), sector * SECTOR_SIZE, pieces)
    }
    /// Makes written data durable (`fdatasync`).
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    /// Punches a hole (the range then reads as zeroes).
    pub fn discard(&self, sector: u64, nr_sectors: u64) -> io::Result<()> {
        use nix::fcntl::{fallocate, FallocateFlags};
        use std::os::fd::AsRawFd;
        let off = i64::try_from(sector * SECTOR_SIZE).map_err(|_| io::ErrorKind::InvalidInput)?;
        let len =
            i64::try_from(nr_sectors * SECTOR_SIZE).map_err(|_| io::ErrorKind::InvalidInput)?;
        fallocate(
            self.file.as_raw_fd(),
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
        .map_err(io::Error::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(bytes: usize) -> (PathBuf, Disk) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "rxblk-disk-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let d = Disk::open(&path, false).unwrap();
        (path, d)
    }

    #[test]
    fn a_file_has_512_byte_sectors_unless_asked_for_4096() {
        let (path, d) = file(64 * 1024);
        assert_eq!((d.sector_size(), d.physical_sector_size()), (512, 4096));
        assert_eq!(d.sectors(), 128);
        let d = d.with_sector_size(4096).unwrap();
        // `sectors` stays in 512-byte units (blkif.h).
        assert_eq!(
            (d.sector_size(), d.physical_sector_size(), d.sectors()),
            (4096, 4096, 128)
        );
        let d = d.with_sector_size(4096).unwrap();
        // Not back below the size it has, nor to sizes Linux blkfront cannot take.
        let (path512, d512) = file(4096);
        assert!(matches!(
            d512.with_sector_size(1024),
            Err(DiskError::SectorSize {
                requested: 1024,
                ..
            })
        ));
        assert!(matches!(
            d.with_sector_size(512),
            Err(DiskError::SectorSize { device: 4096, .. })
        ));
        std::fs::remove_file(path).unwrap();
        std::fs::remove_file(path512).unwrap();
    }

    #[test]
    fn block_device_sizes_come_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("rxblk-sysfs-{}", std::process::id()));
        let part = dir.join("disk/part1");
        std::fs::create_dir_all(dir.join("disk/queue")).unwrap();
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(dir.join("disk/queue/logical_block_size"), "4096\n").unwrap();
        std::fs::write(dir.join("disk/queue/physical_block_size"), "4096\n").unwrap();
        assert_eq!(sector_sizes_in(&dir.join("disk")), (4096, 4096));
        // A partition has no queue/ of its own: its disk's.
        assert_eq!(sector_sizes_in(&part), (4096, 4096));
        // Nonsense and absent values fall back to 512 / 4096.
        std::fs::write(dir.join("disk/queue/logical_block_size"), "1000\n").unwrap();
        std::fs::remove_file(dir.join("disk/queue/physical_block_size")).unwrap();
        assert_eq!(sector_sizes_in(&dir.join("disk")), (512, 4096));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A real 4Kn block device, when the environment names one (as root:
    /// `losetup --sector-size 4096 -f --show FILE`).
    #[test]
    fn a_4096_byte_block_device_is_detected() {
        let Ok(dev) = std::env::var("RXBLK_TEST_4K_DEVICE") else {
            return;
        };
        let d = Disk::open(Path::new(&dev), true).unwrap();
        assert_eq!(d.sector_size(), 4096);
        assert!(d.physical_sector_size() >= 4096);
        assert!(matches!(
            d.with_sector_size(512),
            Err(DiskError::SectorSize { .. })
        ));
    }

    #[test]
    fn a_size_not_a_multiple_of_4096_refuses_4096_byte_sectors() {
        let (path, d) = file(4096 + 512);
        assert!(matches!(
            d.with_sector_size(4096),
            Err(DiskError::SectorSize { bytes: 4608, .. })
        ));
        std::fs::remove_file(path).unwrap();
    }
}
