//! Node permissions as the protocol spells them: a letter and a domid, `r5`
//! (xs_lib.c `xs_perm_to_string` / `xs_strings_to_perms`).

use std::fmt;
use std::str::FromStr;

/// What a domain may do with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermAccess {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl PermAccess {
    /// The protocol letter.
    pub fn letter(self) -> char {
        match self {
            PermAccess::None => 'n',
            PermAccess::Read => 'r',
            PermAccess::Write => 'w',
            PermAccess::Both => 'b',
        }
    }

    fn from_letter(c: u8) -> Option<PermAccess> {
        match c {
            b'n' => Some(PermAccess::None),
            b'r' => Some(PermAccess::Read),
            b'w' => Some(PermAccess::Write),
            b'b' => Some(PermAccess::Both),
            _ => None,
        }
    }
}

/// One permission entry. In a node's list the first entry names the owner (who may
/// do everything) and the access of domains not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u32,
    /// Its access.
    pub access: PermAccess,
}

/// A permission string that is not `[nrwb]<domid>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad permission {0:?}: expected n, r, w or b followed by a domid")]
pub struct PermParseError(pub String);

impl Perm {
    /// A permission entry.
    pub fn new(domid: u32, access: PermAccess) -> Perm {
        Perm { domid, access }
    }

    /// Parses `[nrwb]<domid>` (bytes as they come off the wire).
    pub fn parse(s: &[u8]) -> Result<Perm, PermParseError> {
        let bad = || PermParseError(String::from_utf8_lossy(s).into_owned());
        let (&letter, digits) = s.split_first().ok_or_else(bad)?;
        let access = PermAccess::from_letter(letter).ok_or_else(bad)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let domid = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)?;
        Ok(Perm { domid, access })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

impl FromStr for Perm {
    type Err = PermParseError;

    fn from_str(s: &str) -> Result<Perm, PermParseError> {
        Perm::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!("r5".parse(), Ok(Perm::new(5, PermAccess::Read)));
        assert_eq!("b0".parse(), Ok(Perm::new(0, PermAccess::Both)));
        assert_eq!("n32752".parse(), Ok(Perm::new(32752, PermAccess::None)));
        assert_eq!(Perm::new(7, PermAccess::Write).to_string(), "w7");
        for bad in ["", "r", "x1", "r-1", "r1a", "R1", "r 1", "r99999999999"] {
            assert!(bad.parse::<Perm>().is_err(), "{bad:?} accepted");
        }
    }
}
