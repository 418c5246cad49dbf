//! Kernel image probing: the arm64 `Image` and the arm32 `zImage`, as libxenguest's
//! xg_dom_armzimageloader.c accepts them (Linux Documentation/arch/arm64/booting.rst,
//! Documentation/arch/arm/booting.rst). Anything else is refused by name.
//!
//! Compressed kernels: libxenguest gunzips a gzip'd kernel transparently; rxl does
//! not (no decompressor among its dependencies) and says so: unpack it first
//! (`gunzip -c vmlinuz > Image`). The initrd is handed to the guest as is, as
//! libxenguest does on ARM.

use std::path::Path;

use xen::FileImage;

use super::layout::Range;

/// arm64 Image header (booting.rst): code0, code1, text_offset @8, image_size @16,
/// flags @24, res2..res4, magic "ARM\x64" @56, res5 (PE header offset) @60.
pub const ARM64_HEADER_SIZE: usize = 64;
pub const ARM64_TEXT_OFFSET_OFFSET: usize = 8;
pub const ARM64_IMAGE_SIZE_OFFSET: usize = 16;
pub const ARM64_FLAGS_OFFSET: usize = 24;
pub const ARM64_MAGIC_OFFSET: usize = 0x38;
/// "ARM\x64", little-endian.
pub const ARM64_MAGIC: u32 = 0x644d_5241;
/// Pre-3.12 Images carry no magic; libxenguest accepts their first instruction (b #32).
pub const ARM64_MAGIC_V0: u32 = 0x1400_0008;
/// flags bit 0: kernel is big-endian.
pub const ARM64_FLAG_BE: u64 = 1 << 0;
/// flags bits 1-2: page size (0 unspecified, 1 4K, 2 16K, 3 64K).
pub const ARM64_FLAG_PAGE_SIZE_SHIFT: u32 = 1;
pub const ARM64_FLAG_PAGE_SIZE_MASK: u64 = 0b11;
/// flags bit 3: may be placed anywhere in physical memory.
pub const ARM64_FLAG_PHYS_ANYWHERE: u64 = 1 << 3;

/// arm32 zImage: magic @0x24, start @0x28, end @0x2c (arch/arm/boot/compressed/head.S).
pub const ZIMAGE32_MAGIC_OFFSET: usize = 0x24;
pub const ZIMAGE32_START_OFFSET: usize = 0x28;
pub const ZIMAGE32_END_OFFSET: usize = 0x2c;
pub const ZIMAGE32_HEADER_SIZE: usize = 0x30;
pub const ZIMAGE32_MAGIC: u32 = 0x016f_2818;
/// libxenguest loads a zImage 32 KiB into RAM ("do not load at the very first RAM address").
pub const ZIMAGE32_LOAD_OFFSET: u64 = 0x8000;

/// The largest kernel file read (libxenguest's decompression limit is 1 GiB too).
pub const MAX_KERNEL_SIZE: u64 = 1 << 30;

/// How many of a kernel's first bytes [`KernelImage::probe_header`] looks at: up
/// to the end of an x86 bzImage's "HdrS" magic (0x202..0x206), the furthest
/// check (the arm64 and arm32 headers are shorter).
pub const PROBE_BYTES: usize = 0x206;

/// Guest architecture: decides address size, boot registers and FDT compatibles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestArch {
    Aarch64,
    Arm32,
}

impl GuestArch {
    /// libxenguest's guest_type string.
    pub fn guest_type(self) -> &'static str {
        match self {
            GuestArch::Aarch64 => "xen-3.0-aarch64",
            GuestArch::Arm32 => "xen-3.0-armv7l",
        }
    }

    /// XEN_DOMCTL_set_address_size argument.
    pub fn address_size(self) -> u32 {
        match self {
            GuestArch::Aarch64 => 64,
            GuestArch::Arm32 => 32,
        }
    }
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    Arm64Image {
        text_offset: u64,
        image_size: u64,
        flags: u64,
    },
    Arm32Zimage {
        start: u32,
        end: u32,
    },
}

/// A probed kernel: its format and file size (the bytes are loaded as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelImage {
    pub format: KernelFormat,
    pub file_size: u64,
}

/// Why a kernel is refused.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("cannot read kernel {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot map kernel {path}")]
    Map {
        path: String,
        #[source]
        source: xen::MemError,
    },
    #[error("kernel is larger than {MAX_KERNEL_SIZE} bytes")]
    TooLarge,
    #[error("kernel is {0} bytes, too small to be an arm64 Image or an arm32 zImage")]
    TooSmall(usize),
    #[error("kernel is {0}; libxl unpacks it transparently, rxl does not: unpack it first (e.g. `gunzip -c vmlinuz > Image`)")]
    Compressed(&'static str),
    #[error("kernel is {0}, not an arm64 Image or an arm32 zImage")]
    WrongFormat(&'static str),
    #[error("kernel is neither an arm64 Image (no \"ARM\\x64\" magic at 0x38) nor an arm32 zImage (no 0x016f2818 at 0x24)")]
    Unknown,
    #[error("arm64 Image is big-endian; rxl boots little-endian guests only")]
    BigEndian,
    #[error("arm64 Image text_offset {0:#x} is not below 2 MiB as booting.rst requires")]
    BadTextOffset(u64),
    #[error("arm32 zImage is truncated: its header says {want} bytes (end {end:#x} - start {start:#x}), the file has {have}")]
    ZimageTruncated {
        start: u32,
        end: u32,
        want: u64,
        have: u64,
    },
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Names well-known non-kernel formats so that the error says what the file is.
fn identify_other(b: &[u8]) -> Option<LoaderError> {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(&[0x1f, 0x8b]) {
        return Some(LoaderError::Compressed("gzip-compressed"));
    }
    if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Some(LoaderError::Compressed("xz-compressed"));
    }
    if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(LoaderError::Compressed("zstd-compressed"));
    }
    if starts(b"BZh") {
        return Some(LoaderError::Compressed("bzip2-compressed"));
    }
    if starts(&[0x02, 0x21, 0x4c, 0x18]) || starts(&[0x04, 0x22, 0x4d, 0x18]) {
        return Some(LoaderError::Compressed("lz4-compressed"));
    }
    if b.len() >= 8 && starts(b"MZ") && &b[4..8] == b"zimg" {
        return Some(LoaderError::Compressed(
            "an EFI zboot image (compressed arm64 kernel)",
        ));
    }
    if starts(&[0x7f, b'E', b'L', b'F']) {
        return Some(LoaderError::WrongFormat("an ELF file (vmlinux?)"));
    }
    if starts(&[0x27, 0x05, 0x19, 0x56]) {
        return Some(LoaderError::WrongFormat("a U-Boot uImage"));
    }
    if b.len() >= 0x206 && &b[0x202..0x206] == b"HdrS" {
        return Some(LoaderError::WrongFormat("an x86 bzImage"));
    }
    if starts(&[0xd0, 0x0d, 0xfe, 0xed]) {
        return Some(LoaderError::WrongFormat("a device tree blob"));
    }
    None
}

impl KernelImage {
    /// Probes a kernel's bytes (hostile input: every read is bounds-checked first).
    pub fn probe(b: &[u8]) -> Result<KernelImage, LoaderError> {
        Self::probe_header(b, b.len() as u64)
    }

    /// Probes a kernel of `file_size` bytes from its first bytes `b` (at least
    /// [`PROBE_BYTES`] of them, or the whole file when it is shorter).
    pub fn probe_header(b: &[u8], file_size: u64) -> Result<KernelImage, LoaderError> {
        if let Some(e) = identify_other(b) {
            return Err(e);
        }
        if b.len() >= ZIMAGE32_HEADER_SIZE && le32(b, ZIMAGE32_MAGIC_OFFSET) == ZIMAGE32_MAGIC {
            let start = le32(b, ZIMAGE32_START_OFFSET);
            let end = le32(b, ZIMAGE32_END_OFFSET);
            // head.S: start = the address the zImage was linked for (0: position
            // independent), end = start + its size. An appended DTB may follow, so the
            // file can be longer, but not shorter.
            let want = u64::from(end.saturating_sub(start));
            if want > file_size {
                return Err(LoaderError::ZimageTruncated {
                    start,
                    end,
                    want,
                    have: file_size,
                });
            }
            return Ok(KernelImage {
                format: KernelFormat::Arm32Zimage { start, end },
                file_size,
            });
        }
        if b.len() >= ARM64_HEADER_SIZE
            && (le32(b, ARM64_MAGIC_OFFSET) == ARM64_MAGIC || le32(b, 0) == ARM64_MAGIC_V0)
        {
            let text_offset = le64(b, ARM64_TEXT_OFFSET_OFFSET);
            let image_size = le64(b, ARM64_IMAGE_SIZE_OFFSET);
            let flags = le64(b, ARM64_FLAGS_OFFSET);
            if image_size != 0 && flags & ARM64_FLAG_BE != 0 {
                return Err(LoaderError::BigEndian);
            }
            // booting.rst: the image goes text_offset bytes above a 2 MiB aligned base.
            if text_offset >= super::layout::KERNEL_END_ALIGN {
                return Err(LoaderError::BadTextOffset(text_offset));
            }
            return Ok(KernelImage {
                format: KernelFormat::Arm64Image {
                    text_offset,
                    image_size,
                    flags,
                },
                file_size,
            });
        }
        if b.len() < ZIMAGE32_HEADER_SIZE {
            return Err(LoaderError::TooSmall(b.len()));
        }
        Err(LoaderError::Unknown)
    }

    /// Maps a kernel file (see [`FileImage`]: its pages go to the guest by grant
    /// copy without a read pass) and probes its header, copied out once with
    /// `pread`: the checks only ever look at that copy.
    pub fn open(path: &Path) -> Result<(KernelImage, FileImage), LoaderError> {
        let map_err = |source| LoaderError::Map {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path)
            .map_err(|source| LoaderError::Read {
                path: path.display().to_string(),
                source,
            })?
            .len();
        if len > MAX_KERNEL_SIZE {
            return Err(LoaderError::TooLarge);
        }
        let image = FileImage::open(path).map_err(map_err)?;
        if image.len() as u64 > MAX_KERNEL_SIZE {
            return Err(LoaderError::TooLarge);
        }
        let mut header = vec![0u8; image.len().min(PROBE_BYTES)];
        image.read_at(0, &mut header).map_err(map_err)?;
        let k = Self::probe_header(&header, image.len() as u64)?;
        Ok((k, image))
    }

    /// Reads and probes a kernel file.
    pub fn load(path: &Path) -> Result<(KernelImage, Vec<u8>), LoaderError> {
        let read_err = |source| LoaderError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_KERNEL_SIZE {
            return Err(LoaderError::TooLarge);
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        let k = Self::probe(&bytes)?;
        Ok((k, bytes))
    }

    pub fn arch(&self) -> GuestArch {
        match self.format {
            KernelFormat::Arm64Image { .. } => GuestArch::Aarch64,
            KernelFormat::Arm32Zimage { .. } => GuestArch::Arm32,
        }
    }

    /// Where the file's bytes go: RAM0 + text_offset (arm64) or RAM0 + 0x8000 (arm32).
    pub fn segment(&self, ram_base: u64) -> Range {
        let start = match self.format {
            KernelFormat::Arm64Image { text_offset, .. } => ram_base + text_offset,
            KernelFormat::Arm32Zimage { .. } => ram_base + ZIMAGE32_LOAD_OFFSET,
        };
        Range {
            start,
            end: start + self.file_size,
        }
    }

    /// The end of the kernel in memory: the file's end, or further when an arm64
    /// header's image_size (which includes BSS) says so.
    pub fn mem_end(&self, ram_base: u64) -> u64 {
        let seg = self.segment(ram_base);
        match self.format {
            KernelFormat::Arm64Image { image_size, .. } => seg.end.max(seg.start + image_size),
            KernelFormat::Arm32Zimage { .. } => seg.end,
        }
    }

    /// Entry point: the load address (arm64); the header's start if non-zero, else
    /// the load address (arm32), as libxenguest does.
    pub fn entry(&self, ram_base: u64) -> u64 {
        match self.format {
            KernelFormat::Arm64Image { .. } => self.segment(ram_base).start,
            KernelFormat::Arm32Zimage { start, .. } if start != 0 => u64::from(start),
            KernelFormat::Arm32Zimage { .. } => self.segment(ram_base).start,
        }
    }

    /// The page size an arm64 kernel declares, in bytes (None: unspecified or arm32).
    pub fn page_size(&self) -> Option<u64> {
        match self.format {
            KernelFormat::Arm64Image { flags, .. } => {
                match (flags >> ARM64_FLAG_PAGE_SIZE_SHIFT) & ARM64_FLAG_PAGE_SIZE_MASK {
                    1 => Some(4 << 10),
                    2 => Some(16 << 10),
                    3 => Some(64 << 10),
                    _ => None,
                }
            }
            KernelFormat::Arm32Zimage { .. } => None,
        }
    }

    /// An arm64 header for tests, without the bytes.
    #[cfg(test)]
    pub(crate) fn synthetic_arm64(
        text_offset: u64,
        file_size: u64,
        image_size: u64,
    ) -> KernelImage {
        KernelImage {
            format: KernelFormat::Arm64Image {
                text_offset,
                image_size,
                flags: 0b1010,
            },
            file_size,
        }
    }

    /// An arm32 header for tests, without the bytes.
    #[cfg(test)]
    pub(crate) fn synthetic_arm32(file_size: u64, start: u32) -> KernelImage {
        KernelImage {
            format: KernelFormat::Arm32Zimage { start, end: 0 },
            file_size,
        }
    }
}

/// Builds a minimal arm64 Image header (for tests and examples).
pub fn arm64_header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
    let mut h = vec![0u8; ARM64_HEADER_SIZE];
    // code0: `add x13, x18, #0x16` (the EFI "MZ" stub) like modern kernels.
    h[0..4].copy_from_slice(&0x91005a4d_u32.to_le_bytes());
    h[ARM64_TEXT_OFFSET_OFFSET..ARM64_TEXT_OFFSET_OFFSET + 8]
        .copy_from_slice(&text_offset.to_le_bytes());
    h[ARM64_IMAGE_SIZE_OFFSET..ARM64_IMAGE_SIZE_OFFSET + 8]
        .copy_from_slice(&image_size.to_le_bytes());
    h[ARM64_FLAGS_OFFSET..ARM64_FLAGS_OFFSET + 8].copy_from_slice(&flags.to_le_bytes());
    h[ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4].copy_from_slice(&ARM64_MAGIC.to_le_bytes());
    h
}

/// Builds a minimal arm32 zImage header (for tests and examples).
pub fn zimage32_header(start: u32, end: u32) -> Vec<u8> {
    let mut h = vec![0u8; ZIMAGE32_HEADER_SIZE];
    h[ZIMAGE32_MAGIC_OFFSET..ZIMAGE32_MAGIC_OFFSET + 4]
        .copy_from_slice(&ZIMAGE32_MAGIC.to_le_bytes());
    h[ZIMAGE32_START_OFFSET..ZIMAGE32_START_OFFSET + 4].copy_from_slice(&start.to_le_bytes());
    h[ZIMAGE32_END_OFFSET..ZIMAGE32_END_OFFSET + 4].copy_from_slice(&end.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::layout::GUEST_RAM0_BASE;

    #[test]
    fn open_maps_the_file_and_probes_the_header_it_copied_out() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("rxl-loader-open-{}", std::process::id()));
        // arm64, longer than the bytes probed: the size is the file's.
        let mut b = arm64_header(0, 0x2a0_0000, 0b1010);
        b.resize(3 * PROBE_BYTES + 17, 0x5a);
        std::fs::write(&path, &b).expect("write");
        let (k, image) = KernelImage::open(&path).expect("open");
        assert_eq!(k, KernelImage::probe(&b).expect("probe"));
        assert_eq!(k.file_size, b.len() as u64);
        assert_eq!(image.len(), b.len());
        // A zImage whose end lies past the file is refused as with the bytes.
        let mut z = zimage32_header(0, 5000);
        z.resize(4000, 0);
        std::fs::write(&path, &z).expect("write");
        assert!(matches!(
            KernelImage::open(&path),
            Err(LoaderError::ZimageTruncated { have: 4000, .. })
        ));
        // An x86 bzImage (the furthest check) and a tiny file, by name.
        let mut x = vec![0u8; PROBE_BYTES + 100];
        x[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(&path, &x).expect("write");
        assert!(matches!(
            KernelImage::open(&path),
            Err(LoaderError::WrongFormat(_))
        ));
        std::fs::write(&path, b"tiny").expect("write");
        assert!(matches!(
            KernelImage::open(&path),
            Err(LoaderError::TooSmall(4))
        ));
        let _ = std::fs::remove_file(&path);
        assert!(matches!(
            KernelImage::open(&path),
            Err(LoaderError::Read { .. })
        ));
    }

    #[test]
    fn arm64_image_header_is_read() {
        let mut b = arm64_header(0, 0x2a0_0000, 0b1010);
        b.resize(0x1000, 0);
        let k = KernelImage::probe(&b).expect("probe");
        assert_eq!(
            k.format,
            KernelFormat::Arm64Image {
                text_offset: 0,
                image_size: 0x2a0_0000,
                flags: 0b1010
            }
        );
        assert_eq!(k.arch(), GuestArch::Aarch64);
        assert_eq!(
            k.segment(GUEST_RAM0_BASE),
            Range {
                start: GUEST_RAM0_BASE,
                end: GUEST_RAM0_BASE + 0x1000
            }
        );
        assert_eq!(k.mem_end(GUEST_RAM0_BASE), GUEST_RAM0_BASE + 0x2a0_0000);
        assert_eq!(k.entry(GUEST_RAM0_BASE), GUEST_RAM0_BASE);
        assert_eq!(k.page_size(), Some(4096));
        let old = arm64_header(0x8_0000, 0, 0);
        let k = KernelImage::probe(&old).expect("old kernels have image_size 0");
        assert_eq!(k.entry(GUEST_RAM0_BASE), GUEST_RAM0_BASE + 0x8_0000);
        assert_eq!(k.page_size(), None);
    }

    #[test]
    fn zimage_header_is_read() {
        let mut b = zimage32_header(0, 0x50_0000);
        b.resize(0x50_0000, 0);
        let k = KernelImage::probe(&b).expect("probe");
        assert_eq!(k.arch(), GuestArch::Arm32);
        assert_eq!(k.segment(GUEST_RAM0_BASE).start, GUEST_RAM0_BASE + 0x8000);
        assert_eq!(k.entry(GUEST_RAM0_BASE), GUEST_RAM0_BASE + 0x8000);
        let k = KernelImage::probe(&zimage32_header(0x4100_0000, 0)).expect("probe");
        assert_eq!(k.entry(GUEST_RAM0_BASE), 0x4100_0000);
        // A file shorter than its header's end - start is cut off.
        let mut cut = zimage32_header(0, 0x50_0000);
        cut.resize(0x4f_ffff, 0);
        let e = KernelImage::probe(&cut).expect_err("truncated");
        assert!(
            e.to_string()
                .contains("truncated: its header says 5242880 bytes (end 0x500000 - start 0x0), the file has 5242879"),
            "{e}"
        );
        // A longer one (an appended DTB) is fine.
        cut.resize(0x51_0000, 0);
        KernelImage::probe(&cut).expect("appended DTB");
    }

    #[test]
    fn other_files_are_refused_by_name() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "gzip"),
            (b"\x7fELF\x02\x01\x01\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(), "ELF"),
            (vec![0x27, 0x05, 0x19, 0x56, 0, 0, 0, 0], "uImage"),
            (vec![0xd0, 0x0d, 0xfe, 0xed], "device tree"),
            (vec![0u8; 16], "too small"),
            (vec![0u8; 0x1000], "neither"),
        ];
        for (bytes, want) in cases {
            let e = KernelImage::probe(&bytes).unwrap_err();
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        let mut be = arm64_header(0, 0x100_0000, ARM64_FLAG_BE);
        be.resize(4096, 0);
        assert!(matches!(
            KernelImage::probe(&be),
            Err(LoaderError::BigEndian)
        ));
        assert!(matches!(
            KernelImage::probe(&arm64_header(4 << 20, 1, 0)),
            Err(LoaderError::BadTextOffset(_))
        ));
        // A truncated arm64 header (magic cut off) is not taken for one.
        let cut = &arm64_header(0, 1, 0)[..ARM64_MAGIC_OFFSET];
        assert!(KernelImage::probe(cut).is_err());
    }

    /// Real kernels when RXEN_TEST_KERNELS names a directory holding `Image` (Debian's
    /// arm64 vmlinuz) and/or `zImage` (Debian's armhf armmp-lpae vmlinuz).
    #[test]
    fn real_kernels_when_available() {
        let Some(dir) = std::env::var_os("RXEN_TEST_KERNELS") else {
            eprintln!("RXEN_TEST_KERNELS not set: real-kernel test skipped");
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let mut ran = 0;
        let image = dir.join("Image");
        if image.exists() {
            let (k, bytes) = KernelImage::load(&image).expect("Debian arm64 Image");
            let KernelFormat::Arm64Image {
                text_offset,
                image_size,
                ..
            } = k.format
            else {
                panic!("not an arm64 Image: {:?}", k.format)
            };
            assert_eq!(text_offset, 0, "Linux 6.1 has text_offset 0");
            assert!(image_size >= bytes.len() as u64, "image_size includes BSS");
            assert_eq!(k.page_size(), Some(4096), "Debian arm64 uses 4K pages");
            eprintln!(
                "arm64 Image: {} bytes, image_size {image_size:#x}",
                bytes.len()
            );
            ran += 1;
        }
        let zimage = dir.join("zImage");
        if zimage.exists() {
            let (k, bytes) = KernelImage::load(&zimage).expect("Debian armhf zImage");
            let KernelFormat::Arm32Zimage { start, end } = k.format else {
                panic!("not a zImage: {:?}", k.format)
            };
            assert_eq!(start, 0, "Debian's zImage is position independent");
            assert_eq!(u64::from(end), bytes.len() as u64, "end = zImage size");
            eprintln!("arm32 zImage: {} bytes", bytes.len());
            ran += 1;
        }
        assert!(
            ran > 0,
            "RXEN_TEST_KERNELS={} holds neither Image nor zImage",
            dir.display()
        );
    }
}
