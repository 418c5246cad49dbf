//! A device tree blob reader (vm-fdt only writes). Any DTB is untrusted input: every
//! offset and length is checked against the blob before use, nesting is bounded,
//! and nothing is trusted to be NUL-terminated or aligned.
//!
//! Format: the Devicetree Specification v0.4, chapter 5 (flattened devicetree).

pub mod vmspec;

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
pub const FDT_BEGIN_NODE: u32 = 1;
pub const FDT_END_NODE: u32 = 2;
pub const FDT_PROP: u32 = 3;
pub const FDT_NOP: u32 = 4;
pub const FDT_END: u32 = 9;
/// The header is 10 u32 fields (40 bytes) in version 17.
pub const FDT_HEADER_SIZE: usize = 40;
/// The oldest layout read (v16 lacks only size_dt_struct, which is not needed).
pub const FDT_MIN_VERSION: u32 = 16;
/// Deeper nesting than this is refused (real trees nest < 10).
pub const MAX_DEPTH: usize = 64;
/// Largest blob read (libxl limits guest DTBs to 1 MiB; hosts' are < 1 MiB too).
pub const MAX_DTB_SIZE: usize = 16 << 20;
/// Memory reservation entries read at most.
pub const MAX_RESERVATIONS: usize = 1024;

/// Why a blob is refused, with the offset where it went wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtbError {
    #[error("blob is {0} bytes, smaller than an FDT header")]
    TooSmall(usize),
    #[error("blob is larger than {MAX_DTB_SIZE} bytes")]
    TooLarge,
    #[error("bad magic {0:#010x} (expected 0xd00dfeed): not a device tree blob")]
    BadMagic(u32),
    #[error("header totalsize {totalsize} exceeds the {len} bytes given")]
    Truncated { totalsize: u32, len: usize },
    #[error("unsupported FDT version {0} (need >= {FDT_MIN_VERSION})")]
    Version(u32),
    #[error("{what} block at {off:#x}+{size:#x} lies outside the blob ({total:#x} bytes)")]
    BlockOutOfBounds {
        what: &'static str,
        off: u32,
        size: u32,
        total: u32,
    },
    #[error("structure block: unexpected end at offset {0:#x}")]
    UnexpectedEnd(usize),
    #[error("structure block: unknown token {token:#x} at offset {off:#x}")]
    BadToken { token: u32, off: usize },
    #[error("structure block: node name at {0:#x} is not NUL-terminated")]
    UnterminatedName(usize),
    #[error("property at {off:#x} names string offset {nameoff:#x} outside the strings block")]
    BadNameOffset { off: usize, nameoff: u32 },
    #[error("nodes nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("structure block: FDT_END_NODE at {0:#x} without an open node")]
    UnbalancedEnd(usize),
    #[error("structure block: property at {0:#x} outside any node")]
    PropertyOutsideNode(usize),
    #[error("structure block does not start with the root node")]
    NoRoot,
    #[error("structure block: {0} node(s) left open at FDT_END")]
    Unclosed(usize),
    #[error("more than {MAX_RESERVATIONS} memory reservations")]
    TooManyReservations,
}

/// A property: name and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: Vec<u8>,
}

/// A node with its properties and children, in blob order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// Full name with unit address (`cpu@1`); empty for the root.
    pub name: String,
    pub properties: Vec<Property>,
    pub children: Vec<Node>,
}

/// A parsed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtb {
    pub version: u32,
    pub boot_cpuid: u32,
    pub reservations: Vec<(u64, u64)>,
    pub root: Node,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some((u64::from(be32(b, off)?) << 32) | u64::from(be32(b, off + 4)?))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Parses a blob.
pub fn parse(blob: &[u8]) -> Result<Dtb, DtbError> {
    if blob.len() < FDT_HEADER_SIZE {
        return Err(DtbError::TooSmall(blob.len()));
    }
    if blob.len() > MAX_DTB_SIZE {
        return Err(DtbError::TooLarge);
    }
    let h = |i: usize| be32(blob, i * 4).unwrap_or(0);
    let magic = h(0);
    if magic != FDT_MAGIC {
        return Err(DtbError::BadMagic(magic));
    }
    let totalsize = h(1);
    if totalsize as usize > blob.len() || (totalsize as usize) < FDT_HEADER_SIZE {
        return Err(DtbError::Truncated {
            totalsize,
            len: blob.len(),
        });
    }
    let blob = &blob[..totalsize as usize];
    let (off_struct, off_strings, off_rsvmap, version) = (h(2), h(3), h(4), h(5));
    let boot_cpuid = h(7);
    let size_strings = h(8);
    if version < FDT_MIN_VERSION {
        return Err(DtbError::Version(version));
    }
    let size_struct = if version >= 17 {
        h(9)
    } else {
        totalsize.saturating_sub(off_struct)
    };
    let check = |what, off: u32, size: u32| {
        if u64::from(off) + u64::from(size) > u64::from(totalsize) {
            Err(DtbError::BlockOutOfBounds {
                what,
                off,
                size,
                total: totalsize,
            })
        } else {
            Ok(())
        }
    };
    check("structure", off_struct, size_struct)?;
    check("strings", off_strings, size_strings)?;
    check("memory reservation", off_rsvmap, 16)?;
    let strings = &blob[off_strings as usize..(off_strings + size_strings) as usize];
    let structure = &blob[off_struct as usize..(off_struct + size_struct) as usize];

    let mut reservations = Vec::new();
    let mut r = off_rsvmap as usize;
    loop {
        let (Some(addr), Some(size)) = (be64(blob, r), be64(blob, r + 8)) else {
            return Err(DtbError::BlockOutOfBounds {
                what: "memory reservation",
                off: off_rsvmap,
                size: 16,
                total: totalsize,
            });
        };
        if addr == 0 && size == 0 {
            break;
        }
        if reservations.len() == MAX_RESERVATIONS {
            return Err(DtbError::TooManyReservations);
        }
        reservations.push((addr, size));
        r += 16;
    }

    let root = parse_structure(structure, strings, off_struct as usize)?;
    Ok(Dtb {
        version,
        boot_cpuid,
        reservations,
        root,
    })
}

fn parse_structure(s: &[u8], strings: &[u8], base: usize) -> Result<Node, DtbError> {
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut off = 0usize;
    loop {
        let tok = be32(s, off).ok_or(DtbError::UnexpectedEnd(base + off))?;
        let tok_off = off;
        off += 4;
        match tok {
            FDT_BEGIN_NODE => {
                if root.is_some() {
                    return Err(DtbError::BadToken {
                        token: tok,
                        off: base + tok_off,
                    });
                }
                let rest = s.get(off..).ok_or(DtbError::UnexpectedEnd(base + off))?;
                let nul = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(DtbError::UnterminatedName(base + off))?;
                let name = String::from_utf8_lossy(&rest[..nul]).into_owned();
                off = align4(off + nul + 1).ok_or(DtbError::UnexpectedEnd(base + off))?;
                if stack.len() >= MAX_DEPTH {
                    return Err(DtbError::TooDeep);
                }
                stack.push(Node {
                    name,
                    ..Node::default()
                });
            }
            FDT_END_NODE => {
                let node = stack.pop().ok_or(DtbError::UnbalancedEnd(base + tok_off))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            FDT_PROP => {
                let len = be32(s, off).ok_or(DtbError::UnexpectedEnd(base + off))? as usize;
                let nameoff = be32(s, off + 4).ok_or(DtbError::UnexpectedEnd(base + off))?;
                off += 8;
                let end = off
                    .checked_add(len)
                    .ok_or(DtbError::UnexpectedEnd(base + off))?;
                let value = s
                    .get(off..end)
                    .ok_or(DtbError::UnexpectedEnd(base + off))?
                    .to_vec();
                off = align4(end).ok_or(DtbError::UnexpectedEnd(base + off))?;
                let name_bytes =
                    strings
                        .get(nameoff as usize..)
                        .ok_or(DtbError::BadNameOffset {
                            off: base + tok_off,
                            nameoff,
                        })?;
                let nul =
                    name_bytes
                        .iter()
                        .position(|&c| c == 0)
                        .ok_or(DtbError::BadNameOffset {
                            off: base + tok_off,
                            nameoff,
                        })?;
                let name = String::from_utf8_lossy(&name_bytes[..nul]).into_owned();
                let node = stack
                    .last_mut()
                    .ok_or(DtbError::PropertyOutsideNode(base + tok_off))?;
                node.properties.push(Property { name, value });
            }
            FDT_NOP => {}
            FDT_END => {
                if !stack.is_empty() {
                    return Err(DtbError::Unclosed(stack.len()));
                }
                return root.ok_or(DtbError::NoRoot);
            }
            token => {
                return Err(DtbError::BadToken {
                    token,
                    off: base + tok_off,
                })
            }
        }
    }
}

impl Node {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// A node by path (`/cpus/cpu@0`); `/` is this node.
    pub fn find(&self, path: &str) -> Option<&Node> {
        path.split('/')
            .filter(|p| !p.is_empty())
            .try_fold(self, |n, part| n.child(part))
    }

    /// The name without the unit address.
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or("")
    }

    pub fn u32(&self, name: &str) -> Option<u32> {
        self.property(name).and_then(|p| p.as_u32())
    }

    /// Whether `compatible` lists `c`.
    pub fn is_compatible(&self, c: &str) -> bool {
        self.property("compatible")
            .is_some_and(|p| p.strings().iter().any(|s| s == c))
    }

    /// Every node below (and including) this one, depth first.
    pub fn walk(&self) -> Vec<&Node> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let n = out[i];
            out.extend(n.children.iter());
            i += 1;
        }
        out
    }
}

impl Property {
    /// A single big-endian u32 value.
    pub fn as_u32(&self) -> Option<u32> {
        (self.value.len() == 4)
            .then(|| be32(&self.value, 0))
            .flatten()
    }

    /// A single big-endian u64 value.
    pub fn as_u64(&self) -> Option<u64> {
        (self.value.len() == 8)
            .then(|| be64(&self.value, 0))
            .flatten()
    }

    /// The value as big-endian u32 cells (None when not a multiple of 4 bytes).
    pub fn cells(&self) -> Option<Vec<u32>> {
        if self.value.len() % 4 != 0 {
            return None;
        }
        Some(
            self.value
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    /// A string list (NUL-separated); an unterminated tail counts as a string.
    pub fn strings(&self) -> Vec<String> {
        let v = self.value.strip_suffix(&[0]).unwrap_or(&self.value);
        if v.is_empty() {
            return Vec::new();
        }
        v.split(|&c| c == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// The value as one string, when it is exactly one NUL-terminated string.
    pub fn as_str(&self) -> Option<&str> {
        let v = self.value.strip_suffix(&[0])?;
        if v.contains(&0) {
            return None;
        }
        std::str::from_utf8(v).ok()
    }
}

/// Splits `reg`-style cells into (address, size) pairs of the given cell counts.
pub fn reg_pairs(cells: &[u32], address_cells: u32, size_cells: u32) -> Option<Vec<(u64, u64)>> {
    let (a, s) = (address_cells as usize, size_cells as usize);
    if a > 2 || s > 2 || a + s == 0 || cells.len() % (a + s) != 0 {
        return None;
    }
    let join = |c: &[u32]| c.iter().fold(0u64, |acc, &x| (acc << 32) | u64::from(x));
    Some(
        cells
            .chunks_exact(a + s)
            .map(|c| (join(&c[..a]), join(&c[a..])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn sample() -> Vec<u8> {
        let mut f = FdtWriter::new_with_mem_reserv(&[
            vm_fdt::FdtReserveEntry::new(0x1000, 0x2000).expect("ok")
        ])
        .expect("ok");
        let root = f.begin_node("").expect("ok");
        f.property_u32("#address-cells", 2).expect("ok");
        f.property_string_list("compatible", vec!["a,b".into(), "c".into()])
            .expect("ok");
        let n = f.begin_node("memory@40000000").expect("ok");
        f.property_array_u64("reg", &[0x4000_0000, 0x800_0000])
            .expect("ok");
        f.property_null("empty").expect("ok");
        f.end_node(n).expect("ok");
        f.end_node(root).expect("ok");
        f.finish().expect("ok")
    }

    #[test]
    fn reads_back_what_vm_fdt_writes() {
        let d = parse(&sample()).expect("parses");
        assert_eq!(d.version, 17);
        assert_eq!(d.reservations, vec![(0x1000, 0x2000)]);
        assert_eq!(d.root.u32("#address-cells"), Some(2));
        assert_eq!(
            d.root.property("compatible").expect("c").strings(),
            vec!["a,b", "c"]
        );
        assert!(d.root.is_compatible("c"));
        let m = d.root.find("/memory@40000000").expect("memory");
        assert_eq!(m.base_name(), "memory");
        let cells = m.property("reg").expect("reg").cells().expect("cells");
        assert_eq!(
            reg_pairs(&cells, 2, 2),
            Some(vec![(0x4000_0000, 0x800_0000)])
        );
        assert_eq!(m.property("empty").expect("e").value, Vec::<u8>::new());
        assert!(d.root.find("/nope").is_none());
    }

    #[test]
    fn refuses_broken_headers() {
        let good = sample();
        assert!(matches!(parse(&good[..10]), Err(DtbError::TooSmall(10))));
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(parse(&b), Err(DtbError::BadMagic(_))));
        assert!(matches!(
            parse(&good[..good.len() - 1]),
            Err(DtbError::Truncated { .. })
        ));
        let mut b = good.clone();
        b[8..12].copy_from_slice(&0xffff_fff0u32.to_be_bytes()); // off_dt_struct
        assert!(matches!(parse(&b), Err(DtbError::BlockOutOfBounds { .. })));
        let mut b = good.clone();
        b[20..24].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(parse(&b), Err(DtbError::Version(3))));
    }

    /// Every single-byte corruption and every truncation of a valid blob parses or
    /// fails cleanly: no panic, no hang.
    #[test]
    fn survives_every_corruption() {
        let good = sample();
        for i in 0..good.len() {
            for v in [0x00, 0xff, 0x01, 0x09, 0x80] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse(&b);
            }
            let _ = parse(&good[..i]);
        }
    }

    /// A blob from raw structure-block words and a strings block.
    fn raw_blob(structure: &[u32], strings: &[u8]) -> Vec<u8> {
        let off_rsv = FDT_HEADER_SIZE as u32;
        let off_struct = off_rsv + 16;
        let size_struct = (structure.len() * 4) as u32;
        let off_strings = off_struct + size_struct;
        let total = off_strings + strings.len() as u32;
        let header = [
            FDT_MAGIC,
            total,
            off_struct,
            off_strings,
            off_rsv,
            17,
            16,
            0,
            strings.len() as u32,
            size_struct,
        ];
        let mut b: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        b.extend([0u8; 16]);
        b.extend(structure.iter().flat_map(|w| w.to_be_bytes()));
        b.extend(strings);
        b
    }

    #[test]
    fn nesting_is_bounded() {
        // Each node: FDT_BEGIN_NODE with an empty name (one zero word).
        let mut s = Vec::new();
        for _ in 0..MAX_DEPTH + 2 {
            s.extend([FDT_BEGIN_NODE, 0]);
        }
        s.extend(std::iter::repeat_n(FDT_END_NODE, MAX_DEPTH + 2));
        s.push(FDT_END);
        assert_eq!(parse(&raw_blob(&s, b"")), Err(DtbError::TooDeep));
        // The same at the limit parses.
        let mut s = Vec::new();
        for _ in 0..MAX_DEPTH {
            s.extend([FDT_BEGIN_NODE, 0]);
        }
        s.extend(std::iter::repeat_n(FDT_END_NODE, MAX_DEPTH));
        s.push(FDT_END);
        assert!(parse(&raw_blob(&s, b"")).is_ok());
    }

    #[test]
    fn structure_errors_are_reported() {
        let p = |s: &[u32], strings: &[u8]| parse(&raw_blob(s, strings));
        assert!(matches!(
            p(&[FDT_BEGIN_NODE, 0, FDT_END], b""),
            Err(DtbError::Unclosed(1))
        ));
        assert!(matches!(
            p(&[FDT_END_NODE, FDT_END], b""),
            Err(DtbError::UnbalancedEnd(_))
        ));
        assert!(matches!(
            p(&[FDT_PROP, 0, 0, FDT_END], b"x\0"),
            Err(DtbError::PropertyOutsideNode(_))
        ));
        assert!(matches!(
            p(
                &[FDT_BEGIN_NODE, 0, FDT_PROP, 0, 9, FDT_END_NODE, FDT_END],
                b"x\0"
            ),
            Err(DtbError::BadNameOffset { .. })
        ));
        assert!(matches!(
            p(
                &[FDT_BEGIN_NODE, 0, FDT_PROP, 100, 0, FDT_END_NODE, FDT_END],
                b"x\0"
            ),
            Err(DtbError::UnexpectedEnd(_))
        ));
        assert!(matches!(
            p(&[FDT_BEGIN_NODE, 0, 7, FDT_END], b""),
            Err(DtbError::BadToken { token: 7, .. })
        ));
        assert!(matches!(
            p(&[FDT_BEGIN_NODE, 0x41414141], b""),
            Err(DtbError::UnterminatedName(_))
        ));
        assert!(matches!(
            p(&[FDT_BEGIN_NODE, 0, FDT_END_NODE], b""),
            Err(DtbError::UnexpectedEnd(_))
        ));
        assert!(matches!(
            p(
                &[
                    FDT_BEGIN_NODE,
                    0,
                    FDT_END_NODE,
                    FDT_BEGIN_NODE,
                    0,
                    FDT_END_NODE,
                    FDT_END
                ],
                b""
            ),
            Err(DtbError::BadToken { .. })
        ));
        let ok = p(
            &[
                FDT_NOP,
                FDT_BEGIN_NODE,
                0,
                FDT_PROP,
                4,
                0,
                0x0102_0304,
                FDT_NOP,
                FDT_END_NODE,
                FDT_END,
            ],
            b"x\0",
        )
        .expect("ok");
        assert_eq!(ok.root.u32("x"), Some(0x0102_0304));
    }
}
