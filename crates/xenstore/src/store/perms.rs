//! Node permissions: `[nrwb]<domid>` entries, the first naming the owner and the
//! access of everyone not listed (C `struct xs_permissions`, xs_lib.c).

use crate::wire::XsError;

/// No access (C `XS_PERM_NONE`).
pub const PERM_NONE: u8 = 0x00;
/// Read access (C `XS_PERM_READ`).
pub const PERM_READ: u8 = 0x01;
/// Write access (C `XS_PERM_WRITE`).
pub const PERM_WRITE: u8 = 0x02;
/// Ownership (C `XS_PERM_OWNER`, internal to the daemon).
pub const PERM_OWNER: u8 = 0x08;
/// Entry refers to a domain that no longer exists and is ignored (C `XS_PERM_IGNORE`).
pub const PERM_IGNORE: u8 = 0x10;

/// One permission entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Domain id the entry applies to (owner for the first entry).
    pub id: u32,
    /// Bitmask of `PERM_*`.
    pub bits: u8,
}

impl Perm {
    /// An entry.
    pub fn new(id: u32, bits: u8) -> Perm {
        Perm { id, bits }
    }

    /// The entry as the protocol writes it (`r5`, `n0`, ...); the ignore bit is not
    /// shown. Ids print as signed ints, like C's `%i`.
    pub fn to_wire(self) -> String {
        let c = match self.bits & (PERM_READ | PERM_WRITE) {
            PERM_READ => 'r',
            PERM_WRITE => 'w',
            b if b == PERM_READ | PERM_WRITE => 'b',
            _ => 'n',
        };
        format!("{c}{}", self.id as i32)
    }

    /// Parses one entry like C `xs_strings_to_perms`: a letter of `nrwb` followed by
    /// a number in C `strtol(.., 0)` syntax that must use the whole rest.
    pub fn parse(s: &[u8]) -> Result<Perm, XsError> {
        let (first, rest) = s.split_first().ok_or(XsError::Einval)?;
        let bits = match first {
            b'r' => PERM_READ,
            b'w' => PERM_WRITE,
            b'b' => PERM_READ | PERM_WRITE,
            b'n' => PERM_NONE,
            _ => return Err(XsError::Einval),
        };
        if rest.is_empty() {
            return Err(XsError::Einval);
        }
        let (val, used) = c_strtol(rest, 0);
        if used != rest.len() {
            return Err(XsError::Einval);
        }
        Ok(Perm {
            id: val as u32,
            bits,
        })
    }
}

/// Encodes a permission list as the GET_PERMS payload (each entry NUL-terminated).
pub fn perms_to_payload(perms: &[Perm]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in perms {
        out.extend_from_slice(p.to_wire().as_bytes());
        out.push(0);
    }
    out
}

/// C `strtol(s, &end, base)` on a 64-bit `long`: returns the value (saturated) and
/// the number of bytes used (0 when no digits were found). `base` 0 or 10.
pub fn c_strtol(s: &[u8], base: u32) -> (i64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut radix = if base == 0 { 10 } else { base };
    if base == 0 && i < s.len() && s[i] == b'0' {
        if s.get(i + 1).is_some_and(|c| *c == b'x' || *c == b'X')
            && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut val: i64 = 0;
    let mut overflow = false;
    while i < s.len() {
        let Some(d) = (s[i] as char).to_digit(radix) else {
            break;
        };
        match val
            .checked_mul(i64::from(radix))
            .and_then(|v| v.checked_add(i64::from(d)))
        {
            Some(v) => val = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    if overflow {
        return (if neg { i64::MIN } else { i64::MAX }, i);
    }
    (if neg { -val } else { val }, i)
}

/// C `atoi`: `(int)strtol(s, NULL, 10)`, 0 when there are no digits.
pub fn c_atoi(s: &[u8]) -> i32 {
    c_strtol(s, 10).0 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!(Perm::parse(b"r5"), Ok(Perm::new(5, PERM_READ)));
        assert_eq!(
            Perm::parse(b"b0x10"),
            Ok(Perm::new(16, PERM_READ | PERM_WRITE))
        );
        assert_eq!(Perm::parse(b"w010"), Ok(Perm::new(8, PERM_WRITE)));
        assert_eq!(Perm::parse(b"n0"), Ok(Perm::new(0, PERM_NONE)));
        assert_eq!(Perm::parse(b"n-1"), Ok(Perm::new(u32::MAX, PERM_NONE)));
        assert_eq!(Perm::parse(b"x1"), Err(XsError::Einval));
        assert_eq!(Perm::parse(b"r"), Err(XsError::Einval));
        assert_eq!(Perm::parse(b"r1a"), Err(XsError::Einval));
        assert_eq!(Perm::parse(b""), Err(XsError::Einval));
        assert_eq!(Perm::new(u32::MAX, PERM_READ).to_wire(), "r-1");
        assert_eq!(
            Perm::new(3, PERM_READ | PERM_WRITE | PERM_IGNORE).to_wire(),
            "b3"
        );
        assert_eq!(
            perms_to_payload(&[Perm::new(0, 0), Perm::new(7, PERM_READ)]),
            b"n0\0r7\0".to_vec()
        );
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(c_strtol(b"  12x", 10), (12, 4));
        assert_eq!(c_strtol(b"-3", 10), (-3, 2));
        assert_eq!(c_strtol(b"0", 0), (0, 1));
        assert_eq!(c_strtol(b"0x", 0), (0, 1));
        assert_eq!(c_strtol(b"0x1f", 0), (31, 4));
        assert_eq!(c_strtol(b"abc", 10), (0, 0));
        assert_eq!(c_strtol(b"99999999999999999999", 10).0, i64::MAX);
        assert_eq!(c_atoi(b"7\0"), 7);
        assert_eq!(c_atoi(b"x"), 0);
    }
}
