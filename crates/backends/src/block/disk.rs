//! The backing store of a virtual disk: a plain file or a block device in dom0.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::abi::SECTOR_SIZE;

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
}

/// An open backing store.
#[derive(Debug)]
pub struct Disk {
    file: File,
    path: PathBuf,
    sectors: u64,
    read_only: bool,
    /// Hole punching is possible (regular files).
    can_discard: bool,
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
        Ok(Disk {
            file,
            path: path.to_path_buf(),
            sectors: bytes / SECTOR_SIZE,
            read_only,
            can_discard: ft.is_file() && !read_only,
        })
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

    pub fn read_at(&self, buf: &mut [u8], sector: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, sector * SECTOR_SIZE)
    }
    pub fn write_at(&self, buf: &[u8], sector: u64) -> io::Result<()> {
        self.file.write_all_at(buf, sector * SECTOR_SIZE)
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
