//! The xenstore wire protocol: message header, message types, error strings, limits,
//! payload argument helpers and an incremental, bounded message reassembler.
//!
//! Facts from Xen 4.17 `xen/include/public/io/xs_wire.h` and `tools/xenstore/`.
//! Nothing here does I/O: the socket and ring layers feed bytes in and take
//! [`Message`]s out.

use std::fmt;

/// Size of the message header: four `u32`s (xs_wire.h `struct xsd_sockmsg`).
pub const HEADER_SIZE: usize = 16;
/// Largest payload a message may carry (xs_wire.h `XENSTORE_PAYLOAD_MAX`).
/// A header announcing more is a protocol violation: C xenstored drops the client.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (xs_wire.h `XENSTORE_ABS_PATH_MAX`).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path (xs_wire.h `XENSTORE_REL_PATH_MAX`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;
/// Ring size of the shared xenstore page (xs_wire.h `XENSTORE_RING_SIZE`).
pub const XENSTORE_RING_SIZE: usize = 1024;
/// Number of message types Xen 4.17 knows (xs_wire.h `XS_TYPE_COUNT`).
pub const XS_TYPE_COUNT: u32 = 23;
/// Type guaranteed to stay invalid (xs_wire.h `XS_INVALID`).
pub const XS_INVALID: u32 = 0xffff;

/// Server feature bit: ring reconnection (xs_wire.h `XENSTORE_SERVER_FEATURE_RECONNECTION`).
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// Server feature bit: the ring page has an error field (xs_wire.h `XENSTORE_SERVER_FEATURE_ERROR`).
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// Ring `connection` field: steady state (xs_wire.h `XENSTORE_CONNECTED`).
pub const XENSTORE_CONNECTED: u32 = 0;
/// Ring `connection` field: reconnect in progress (xs_wire.h `XENSTORE_RECONNECT`).
pub const XENSTORE_RECONNECT: u32 = 1;
/// Ring `error` field: no error (xs_wire.h `XENSTORE_ERROR_NONE`).
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// Ring `error` field: communication problem (xs_wire.h `XENSTORE_ERROR_COMM`).
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// Ring `error` field: invalid ring index (xs_wire.h `XENSTORE_ERROR_RINGIDX`).
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// Ring `error` field: protocol violation, e.g. payload too long (xs_wire.h `XENSTORE_ERROR_PROTO`).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// WRITE flag strings of the historic protocol (xs_wire.h `XS_WRITE_*`).
pub const XS_WRITE_NONE: &str = "NONE";
/// See [`XS_WRITE_NONE`].
pub const XS_WRITE_CREATE: &str = "CREATE";
/// See [`XS_WRITE_NONE`].
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// Errors of the wire codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than [`HEADER_SIZE`] bytes where a header was expected.
    #[error("truncated header: {0} of 16 bytes")]
    TruncatedHeader(usize),
    /// The header announces a payload over [`XENSTORE_PAYLOAD_MAX`].
    #[error("payload length {0} exceeds the maximum of 4096")]
    PayloadTooLong(u32),
    /// The buffer holds fewer payload bytes than the header announces.
    #[error("truncated payload: header says {expected} bytes, {got} present")]
    TruncatedPayload {
        /// Length from the header.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// A message type number that Xen 4.17 does not define.
    #[error("unknown message type {0}")]
    UnknownType(u32),
    /// An error string that is not in the `xsd_errors` table.
    #[error("unknown xenstore error string")]
    UnknownError,
}

/// Message types (xs_wire.h `enum xsd_sockmsg_type`), plus the later feature/quota
/// types (23..26) that 4.17 does not implement and answers with `ENOSYS`.
/// Number 20 (`XS_RESTRICT`) was removed from the protocol and is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT` (server to client only).
    WatchEvent = 15,
    /// `XS_ERROR` (server to client only).
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (`XS_SET_TARGET + 2`).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
    /// `XS_GET_FEATURE` (Xen 4.18+; not implemented by 4.17).
    GetFeature = 23,
    /// `XS_SET_FEATURE` (Xen 4.18+; not implemented by 4.17).
    SetFeature = 24,
    /// `XS_GET_QUOTA` (Xen 4.18+; not implemented by 4.17).
    GetQuota = 25,
    /// `XS_SET_QUOTA` (Xen 4.18+; not implemented by 4.17).
    SetQuota = 26,
}

impl MsgType {
    /// Every known type, in numeric order.
    pub const ALL: [MsgType; 26] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
        MsgType::GetFeature,
        MsgType::SetFeature,
        MsgType::GetQuota,
        MsgType::SetQuota,
    ];

    /// The name xenstored uses in its logs (`wire_funcs[].str`).
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "CONTROL",
            MsgType::Directory => "DIRECTORY",
            MsgType::Read => "READ",
            MsgType::GetPerms => "GET_PERMS",
            MsgType::Watch => "WATCH",
            MsgType::Unwatch => "UNWATCH",
            MsgType::TransactionStart => "TRANSACTION_START",
            MsgType::TransactionEnd => "TRANSACTION_END",
            MsgType::Introduce => "INTRODUCE",
            MsgType::Release => "RELEASE",
            MsgType::GetDomainPath => "GET_DOMAIN_PATH",
            MsgType::Write => "WRITE",
            MsgType::Mkdir => "MKDIR",
            MsgType::Rm => "RM",
            MsgType::SetPerms => "SET_PERMS",
            MsgType::WatchEvent => "WATCH_EVENT",
            MsgType::Error => "ERROR",
            MsgType::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "RESUME",
            MsgType::SetTarget => "SET_TARGET",
            MsgType::ResetWatches => "RESET_WATCHES",
            MsgType::DirectoryPart => "DIRECTORY_PART",
            MsgType::GetFeature => "GET_FEATURE",
            MsgType::SetFeature => "SET_FEATURE",
            MsgType::GetQuota => "GET_QUOTA",
            MsgType::SetQuota => "SET_QUOTA",
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u32> for MsgType {
    type Error = WireError;

    fn try_from(value: u32) -> Result<Self, WireError> {
        MsgType::ALL
            .iter()
            .copied()
            .find(|t| *t as u32 == value)
            .ok_or(WireError::UnknownType(value))
    }
}

impl From<MsgType> for u32 {
    fn from(t: MsgType) -> u32 {
        t as u32
    }
}

/// Error names of the `xsd_errors` table (xs_wire.h), in table order. An ERROR reply
/// carries the name as a NUL-terminated string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XsError {
    /// `EINVAL`, also what xenstored sends for an errno outside the table.
    Einval,
    /// `EACCES`.
    Eacces,
    /// `EEXIST`.
    Eexist,
    /// `EISDIR`.
    Eisdir,
    /// `ENOENT`.
    Enoent,
    /// `ENOMEM`.
    Enomem,
    /// `ENOSPC`.
    Enospc,
    /// `EIO`.
    Eio,
    /// `ENOTEMPTY`.
    Enotempty,
    /// `ENOSYS`.
    Enosys,
    /// `EROFS`.
    Erofs,
    /// `EBUSY`.
    Ebusy,
    /// `EAGAIN`.
    Eagain,
    /// `EISCONN`.
    Eisconn,
    /// `E2BIG`.
    E2big,
    /// `EPERM`.
    Eperm,
}

impl XsError {
    /// The table, in xs_wire.h order.
    pub const ALL: [XsError; 16] = [
        XsError::Einval,
        XsError::Eacces,
        XsError::Eexist,
        XsError::Eisdir,
        XsError::Enoent,
        XsError::Enomem,
        XsError::Enospc,
        XsError::Eio,
        XsError::Enotempty,
        XsError::Enosys,
        XsError::Erofs,
        XsError::Ebusy,
        XsError::Eagain,
        XsError::Eisconn,
        XsError::E2big,
        XsError::Eperm,
    ];

    /// The errno name as sent on the wire (without the NUL).
    pub fn as_str(self) -> &'static str {
        match self {
            XsError::Einval => "EINVAL",
            XsError::Eacces => "EACCES",
            XsError::Eexist => "EEXIST",
            XsError::Eisdir => "EISDIR",
            XsError::Enoent => "ENOENT",
            XsError::Enomem => "ENOMEM",
            XsError::Enospc => "ENOSPC",
            XsError::Eio => "EIO",
            XsError::Enotempty => "ENOTEMPTY",
            XsError::Enosys => "ENOSYS",
            XsError::Erofs => "EROFS",
            XsError::Ebusy => "EBUSY",
            XsError::Eagain => "EAGAIN",
            XsError::Eisconn => "EISCONN",
            XsError::E2big => "E2BIG",
            XsError::Eperm => "EPERM",
        }
    }

    /// The Linux errno value of this error.
    pub fn errno(self) -> i32 {
        match self {
            XsError::Einval => libc::EINVAL,
            XsError::Eacces => libc::EACCES,
            XsError::Eexist => libc::EEXIST,
            XsError::Eisdir => libc::EISDIR,
            XsError::Enoent => libc::ENOENT,
            XsError::Enomem => libc::ENOMEM,
            XsError::Enospc => libc::ENOSPC,
            XsError::Eio => libc::EIO,
            XsError::Enotempty => libc::ENOTEMPTY,
            XsError::Enosys => libc::ENOSYS,
            XsError::Erofs => libc::EROFS,
            XsError::Ebusy => libc::EBUSY,
            XsError::Eagain => libc::EAGAIN,
            XsError::Eisconn => libc::EISCONN,
            XsError::E2big => libc::E2BIG,
            XsError::Eperm => libc::EPERM,
        }
    }

    /// Parses an error name, as found in an ERROR payload (with or without its NUL).
    pub fn parse(bytes: &[u8]) -> Result<XsError, WireError> {
        let name = bytes.strip_suffix(b"\0").unwrap_or(bytes);
        XsError::ALL
            .iter()
            .copied()
            .find(|e| e.as_str().as_bytes() == name)
            .ok_or(WireError::UnknownError)
    }

    /// The payload of an ERROR reply: the name and its NUL.
    pub fn to_payload(self) -> Vec<u8> {
        let mut v = self.as_str().as_bytes().to_vec();
        v.push(0);
        v
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for XsError {}

/// The 16-byte message header. On the wire the fields are native-endian `u32`s
/// (little-endian on every platform rxen targets). `msg_type` stays a raw number so
/// that a request with an unknown type can still be answered (4.17 says `ENOSYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Message type number (see [`MsgType`]).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Decodes a header from the first [`HEADER_SIZE`] bytes of `buf`. Does not
    /// check the length against the payload limit; see [`Header::validate`].
    pub fn decode(buf: &[u8]) -> Result<Header, WireError> {
        let b = buf
            .get(..HEADER_SIZE)
            .ok_or(WireError::TruncatedHeader(buf.len()))?;
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        })
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_ne_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
        out
    }

    /// Checks the announced length against [`XENSTORE_PAYLOAD_MAX`].
    pub fn validate(&self) -> Result<(), WireError> {
        if self.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(self.len));
        }
        Ok(())
    }

    /// The message type, if known.
    pub fn kind(&self) -> Result<MsgType, WireError> {
        MsgType::try_from(self.msg_type)
    }
}

/// A whole message: header plus payload (`payload.len() == header.len`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The header; `len` matches the payload.
    pub header: Header,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds a message, setting `header.len` from the payload.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            header: Header {
                msg_type: msg_type as u32,
                req_id,
                tx_id,
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            },
            payload,
        }
    }

    /// An ERROR reply to `req` carrying `err`.
    pub fn error_reply(req: &Header, err: XsError) -> Message {
        Message::new(MsgType::Error, req.req_id, req.tx_id, err.to_payload())
    }

    /// A reply of the request's own type.
    pub fn reply(req: &Header, payload: Vec<u8>) -> Message {
        Message {
            header: Header {
                msg_type: req.msg_type,
                req_id: req.req_id,
                tx_id: req.tx_id,
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            },
            payload,
        }
    }

    /// A WATCH_EVENT for `path` and `token` (`path\0token\0`, req_id and tx_id 0).
    pub fn watch_event(path: &[u8], token: &[u8]) -> Message {
        let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
        payload.extend_from_slice(path);
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        Message::new(MsgType::WatchEvent, 0, 0, payload)
    }

    /// Header and payload as one buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_SIZE + self.payload.len());
        let mut h = self.header;
        h.len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes one message from the start of `buf`; returns it and the number of
    /// bytes consumed. Rejects lengths over [`XENSTORE_PAYLOAD_MAX`].
    pub fn decode(buf: &[u8]) -> Result<(Message, usize), WireError> {
        let header = Header::decode(buf)?;
        header.validate()?;
        let len = header.len as usize;
        let rest = &buf[HEADER_SIZE..];
        let payload = rest.get(..len).ok_or(WireError::TruncatedPayload {
            expected: len,
            got: rest.len(),
        })?;
        Ok((
            Message {
                header,
                payload: payload.to_vec(),
            },
            HEADER_SIZE + len,
        ))
    }

    /// The message type, if known.
    pub fn kind(&self) -> Result<MsgType, WireError> {
        self.header.kind()
    }
}

/// Incremental reassembly of messages from a byte stream (socket or ring). Memory is
/// bounded: at most one header and one payload of [`XENSTORE_PAYLOAD_MAX`] bytes are
/// buffered; bytes after a complete message stay with the caller.
///
/// A header announcing more than [`XENSTORE_PAYLOAD_MAX`] bytes is an error after
/// which the reassembler refuses everything (C xenstored ignores such a connection);
/// the caller should close the connection. Unknown types are *not* rejected here:
/// Xen 4.17 answers them with `ENOSYS` and keeps the connection.
#[derive(Debug, Default)]
pub struct Reassembler {
    header_buf: [u8; HEADER_SIZE],
    header_used: usize,
    header: Option<Header>,
    payload: Vec<u8>,
    failed: Option<WireError>,
}

impl Reassembler {
    /// A reassembler waiting for a header.
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Takes bytes from the front of `input`; returns how many were consumed and a
    /// message if one was completed. Call again with the remaining bytes until it
    /// consumes nothing.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut used = 0;
        if self.header.is_none() {
            let want = HEADER_SIZE - self.header_used;
            let take = want.min(input.len());
            self.header_buf[self.header_used..self.header_used + take]
                .copy_from_slice(&input[..take]);
            self.header_used += take;
            used += take;
            if self.header_used < HEADER_SIZE {
                return Ok((used, None));
            }
            let header = Header::decode(&self.header_buf)?;
            if let Err(err) = header.validate() {
                self.failed = Some(err.clone());
                return Err(err);
            }
            self.payload = Vec::with_capacity(header.len as usize);
            self.header = Some(header);
        }
        let Some(header) = self.header else {
            return Ok((used, None));
        };
        let want = header.len as usize - self.payload.len();
        let take = want.min(input.len() - used);
        self.payload.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.payload.len() < header.len as usize {
            return Ok((used, None));
        }
        self.header = None;
        self.header_used = 0;
        Ok((
            used,
            Some(Message {
                header,
                payload: std::mem::take(&mut self.payload),
            }),
        ))
    }

    /// Feeds all of `input`, appending completed messages to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        while !input.is_empty() {
            let (used, msg) = self.push(input)?;
            if let Some(m) = msg {
                out.push(m);
            }
            input = &input[used..];
        }
        Ok(())
    }

    /// True when no partial message is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_used == 0 && self.header.is_none() && self.failed.is_none()
    }

    /// Bytes still wanted before the current header or payload is complete.
    pub fn wanted(&self) -> usize {
        match self.header {
            None => HEADER_SIZE - self.header_used,
            Some(h) => h.len as usize - self.payload.len(),
        }
    }
}

/// Length of the NUL-terminated string at `offset` including its NUL, or `None`
/// when there is no NUL (C `get_string`).
pub fn string_at(payload: &[u8], offset: usize) -> Option<usize> {
    let rest = payload.get(offset..)?;
    rest.iter().position(|b| *b == 0).map(|p| p + 1)
}

/// The single argument of a one-argument request (C `onearg`): the payload must be
/// exactly one NUL-terminated string with nothing after it. Returns it without NUL.
pub fn one_arg(payload: &[u8]) -> Option<&[u8]> {
    if payload.is_empty() {
        return None;
    }
    match string_at(payload, 0) {
        Some(n) if n == payload.len() => Some(&payload[..n - 1]),
        _ => None,
    }
}

/// All NUL-terminated strings of the payload, without their NULs (C `get_strings`):
/// bytes after the last NUL are ignored.
pub fn split_args(payload: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(n) = string_at(payload, off) {
        out.push(&payload[off..off + n - 1]);
        off += n;
    }
    out
}

/// Number of NUL-terminated strings in the payload (what C's `get_strings` returns).
pub fn count_args(payload: &[u8]) -> usize {
    payload.iter().filter(|b| **b == 0).count()
}

/// The arguments of WRITE: the path (first NUL-terminated string) and the value (all
/// bytes after the path's NUL, NULs included). `None` without a NUL.
pub fn write_args(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = string_at(payload, 0)?;
    Some((&payload[..n - 1], &payload[n..]))
}

/// Joins strings into a payload, each followed by a NUL.
pub fn join_args<S: AsRef<[u8]>>(args: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a.as_ref());
        out.push(0);
    }
    out
}

/// Feeds arbitrary bytes through a [`Reassembler`] in chunks whose sizes come
/// from the data, checking the codec's invariants: every message is at most
/// [`XENSTORE_PAYLOAD_MAX`] bytes and re-encodes to the bytes it came from, and a
/// framing error is sticky. Returns the number of messages. For fuzz targets;
/// a panic is a bug.
pub fn fuzz_decode(data: &[u8]) -> usize {
    let mut r = Reassembler::new();
    let mut count = 0;
    let mut rest = data;
    let mut consumed = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let take = (usize::from(n) + 1).min(tail.len());
        let (chunk, after) = tail.split_at(take);
        rest = after;
        let mut input = chunk;
        while !input.is_empty() {
            match r.push(input) {
                Ok((used, msg)) => {
                    assert!(
                        used > 0 && used <= input.len(),
                        "reassembler made no progress"
                    );
                    consumed.extend_from_slice(&input[..used]);
                    input = &input[used..];
                    if let Some(m) = msg {
                        assert!(m.payload.len() <= XENSTORE_PAYLOAD_MAX);
                        assert_eq!(m.payload.len(), m.header.len as usize);
                        assert_eq!(m.encode(), consumed, "message does not re-encode");
                        assert_eq!(Message::decode(&consumed).map(|(d, _)| d), Ok(m));
                        consumed.clear();
                        count += 1;
                    }
                }
                Err(e) => {
                    assert!(matches!(e, WireError::PayloadTooLong(_)));
                    assert!(r.push(b"x").is_err(), "framing error must be sticky");
                    return count;
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_type_numbers_match_xs_wire() {
        assert_eq!(MsgType::try_from(0), Ok(MsgType::Control));
        assert_eq!(MsgType::try_from(15), Ok(MsgType::WatchEvent));
        assert_eq!(MsgType::try_from(19), Ok(MsgType::SetTarget));
        assert_eq!(MsgType::try_from(20), Err(WireError::UnknownType(20)));
        assert_eq!(MsgType::try_from(21), Ok(MsgType::ResetWatches));
        assert_eq!(MsgType::try_from(22), Ok(MsgType::DirectoryPart));
        assert_eq!(MsgType::try_from(26), Ok(MsgType::SetQuota));
        assert!(MsgType::try_from(27).is_err());
        assert!(MsgType::try_from(XS_INVALID).is_err());
        for t in MsgType::ALL {
            assert_eq!(MsgType::try_from(u32::from(t)), Ok(t));
        }
        assert_eq!(MsgType::DirectoryPart as u32 + 1, XS_TYPE_COUNT);
    }

    #[test]
    fn errors_round_trip_and_keep_table_order() {
        assert_eq!(XsError::ALL[0].as_str(), "EINVAL");
        assert_eq!(XsError::ALL[15].as_str(), "EPERM");
        for e in XsError::ALL {
            assert_eq!(XsError::parse(&e.to_payload()), Ok(e));
            assert_eq!(XsError::parse(e.as_str().as_bytes()), Ok(e));
        }
        assert_eq!(XsError::parse(b"EWHAT\0"), Err(WireError::UnknownError));
        assert_eq!(XsError::Enoent.errno(), 2);
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            msg_type: 2,
            req_id: 0xdead_beef,
            tx_id: 7,
            len: 4096,
        };
        let bytes = h.encode();
        assert_eq!(bytes[0], 2);
        assert_eq!(Header::decode(&bytes), Ok(h));
        assert_eq!(h.validate(), Ok(()));
        let big = Header { len: 4097, ..h };
        assert_eq!(big.validate(), Err(WireError::PayloadTooLong(4097)));
        assert_eq!(
            Header::decode(&bytes[..15]),
            Err(WireError::TruncatedHeader(15))
        );
    }

    #[test]
    fn message_encode_decode() {
        let m = Message::new(MsgType::Write, 1, 0, b"/a\0value".to_vec());
        let mut bytes = m.encode();
        bytes.extend_from_slice(b"trailing");
        let (d, used) = Message::decode(&bytes).expect("decodes");
        assert_eq!(d, m);
        assert_eq!(used, HEADER_SIZE + 8);
        assert_eq!(
            Message::decode(&bytes[..HEADER_SIZE + 3]),
            Err(WireError::TruncatedPayload {
                expected: 8,
                got: 3
            })
        );
    }

    #[test]
    fn reassembler_idle_only_between_messages() {
        let bytes = Message::new(MsgType::Read, 1, 0, b"/a\0".to_vec()).encode();
        let mut r = Reassembler::new();
        assert!(r.is_idle());
        let (used, msg) = r.push(&bytes[..3]).expect("header bytes");
        assert_eq!((used, msg), (3, None));
        assert!(!r.is_idle());
        let (_, msg) = r.push(&bytes[3..HEADER_SIZE + 1]).expect("payload byte");
        assert!(msg.is_none() && !r.is_idle());
        let (_, msg) = r.push(&bytes[HEADER_SIZE + 1..]).expect("rest");
        assert!(msg.is_some() && r.is_idle());
        let mut bad = bytes.clone();
        bad[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX as u32 + 1).to_le_bytes());
        assert!(r.push(&bad).is_err());
        assert!(!r.is_idle());
    }

    #[test]
    fn reassembler_byte_by_byte() {
        let a = Message::new(MsgType::Read, 1, 0, b"/local\0".to_vec());
        let b = Message::new(MsgType::Directory, 2, 3, Vec::new());
        let c = Message::new(MsgType::Write, 3, 0, vec![7u8; XENSTORE_PAYLOAD_MAX]);
        let mut stream = a.encode();
        stream.extend(b.encode());
        stream.extend(c.encode());
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        for byte in &stream {
            r.feed(std::slice::from_ref(byte), &mut out)
                .expect("valid stream");
        }
        assert_eq!(out, vec![a.clone(), b.clone(), c.clone()]);
        assert!(r.is_idle());
        // All at once gives the same.
        let mut out2 = Vec::new();
        Reassembler::new()
            .feed(&stream, &mut out2)
            .expect("valid stream");
        assert_eq!(out2, vec![a, b, c]);
    }

    #[test]
    fn reassembler_rejects_oversized_and_stays_failed() {
        let h = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: 0,
            len: 4097,
        };
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        assert_eq!(
            r.feed(&h.encode(), &mut out),
            Err(WireError::PayloadTooLong(4097))
        );
        let ok = Message::new(MsgType::Read, 1, 0, b"/\0".to_vec());
        assert!(r.feed(&ok.encode(), &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn reassembler_passes_unknown_types() {
        let h = Header {
            msg_type: 99,
            req_id: 1,
            tx_id: 0,
            len: 0,
        };
        let mut out = Vec::new();
        Reassembler::new()
            .feed(&h.encode(), &mut out)
            .expect("unknown type is not a framing error");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind(), Err(WireError::UnknownType(99)));
    }

    #[test]
    fn fuzz_decode_survives_random_streams() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut total = 0;
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..(x % 50) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly valid small messages, sometimes garbage.
                if x % 7 == 0 {
                    data.extend_from_slice(&x.to_ne_bytes());
                } else {
                    let m = Message::new(MsgType::Read, x as u32, 0, vec![b'a'; (x % 40) as usize]);
                    data.push((x >> 8) as u8);
                    data.extend(m.encode());
                }
            }
            total += fuzz_decode(&data);
            x = x.wrapping_add(1);
        }
        assert!(total > 0);
    }

    #[test]
    fn argument_helpers_follow_c_rules() {
        assert_eq!(one_arg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(one_arg(b"/a"), None);
        assert_eq!(one_arg(b""), None);
        assert_eq!(one_arg(b"/a\0\0"), None);
        assert_eq!(one_arg(b"\0"), Some(&b""[..]));
        assert_eq!(split_args(b"a\0b\0tail"), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(count_args(b"a\0b\0tail"), 2);
        assert_eq!(write_args(b"/p\0v\0al"), Some((&b"/p"[..], &b"v\0al"[..])));
        assert_eq!(write_args(b"/p\0"), Some((&b"/p"[..], &b""[..])));
        assert_eq!(write_args(b"/p"), None);
        assert_eq!(join_args(&["a", "b"]), b"a\0b\0".to_vec());
        let ev = Message::watch_event(b"/p", b"tok");
        assert_eq!(ev.payload, b"/p\0tok\0".to_vec());
        assert_eq!(ev.header.msg_type, MsgType::WatchEvent as u32);
    }
}
