//! Writing a domain's tree with its requests pipelined: one transaction, every
//! WRITE and SET_PERMS sent at once, then the replies read in order. The protocol
//! allows several requests in flight on a connection (xenstored answers them in
//! order, matched by req_id); under TCG a synchronous round trip to xenstored costs
//! 20-35 ms, so ~85 of them dominated `rxl create`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use xenstore::wire::{join_args, Message, MsgType, Reassembler, XsError};

use super::{dom_path, libxl_path, needs_set_perms, XsNode};

/// Gives up on a silent daemon after this long.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Transaction attempts on EAGAIN (like the client's retry helper).
const MAX_ATTEMPTS: u32 = 8;

/// Why the pipelined write failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("xenstored connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("xenstored sent a malformed message: {0}")]
    Wire(#[from] xenstore::wire::WireError),
    #[error("xenstored answered {op} of {path} with {err}")]
    Refused {
        op: &'static str,
        path: String,
        err: String,
    },
    #[error("xenstored answered out of order or with an unexpected message")]
    Protocol,
    #[error("the transaction kept conflicting ({0} attempts)")]
    TooManyRetries(u32),
}

struct Conn {
    stream: UnixStream,
    reasm: Reassembler,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<Message>,
}

impl Conn {
    fn next(&mut self) -> Result<Message, PipelineError> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                if m.kind().ok() == Some(MsgType::WatchEvent) {
                    continue;
                }
                return Ok(m);
            }
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            let mut out = Vec::new();
            self.reasm.feed(&self.buf[..n], &mut out)?;
            self.pending.extend(out);
        }
    }
}

fn error_name(m: &Message) -> String {
    String::from_utf8_lossy(m.payload.strip_suffix(b"\0").unwrap_or(&m.payload)).into_owned()
}

/// Writes `nodes` under a fresh transaction over the socket at `socket`, after
/// removing the domain's home and /libxl directory, retrying on EAGAIN.
pub fn write_tree_pipelined(
    socket: &Path,
    domid: u32,
    nodes: &[XsNode],
) -> Result<u32, PipelineError> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut c = Conn {
        stream,
        reasm: Reassembler::new(),
        buf: vec![0; 64 * 1024],
        pending: Default::default(),
    };
    for attempt in 1..=MAX_ATTEMPTS {
        c.stream
            .write_all(&Message::new(MsgType::TransactionStart, 0, 0, b"\0".to_vec()).encode())?;
        let r = c.next()?;
        if r.kind().ok() != Some(MsgType::TransactionStart) {
            return Err(PipelineError::Refused {
                op: "TRANSACTION_START",
                path: String::new(),
                err: error_name(&r),
            });
        }
        let tx: u32 = std::str::from_utf8(r.payload.strip_suffix(b"\0").unwrap_or(&r.payload))
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(PipelineError::Protocol)?;
        // (request, op name, path, ENOENT tolerated)
        let mut reqs: Vec<(Message, &'static str, String, bool)> = Vec::new();
        for root in [dom_path(domid), libxl_path(domid)] {
            let m = Message::new(MsgType::Rm, 0, tx, join_args(&[root.as_str()]));
            reqs.push((m, "RM", root, true));
        }
        for n in nodes {
            let mut payload = n.path.as_bytes().to_vec();
            payload.push(0);
            payload.extend_from_slice(n.value.as_bytes());
            reqs.push((
                Message::new(MsgType::Write, 0, tx, payload),
                "WRITE",
                n.path.clone(),
                false,
            ));
            if needs_set_perms(nodes, n) {
                let mut args = vec![n.path.clone()];
                args.extend(n.perms.iter().map(|p| p.to_string()));
                reqs.push((
                    Message::new(MsgType::SetPerms, 0, tx, join_args(&args)),
                    "SET_PERMS",
                    n.path.clone(),
                    false,
                ));
            }
        }
        let mut batch = Vec::new();
        for (i, (m, ..)) in reqs.iter_mut().enumerate() {
            m.header.req_id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            batch.extend_from_slice(&m.encode());
        }
        c.stream.write_all(&batch)?;
        let mut failure = None;
        for (m, op, path, enoent_ok) in &reqs {
            let r = c.next()?;
            if r.header.req_id != m.header.req_id {
                return Err(PipelineError::Protocol);
            }
            if r.kind().ok() == Some(MsgType::Error) {
                let err = error_name(&r);
                let tolerated = *enoent_ok && err == XsError::Enoent.as_str();
                if !tolerated && failure.is_none() {
                    failure = Some(PipelineError::Refused {
                        op,
                        path: path.clone(),
                        err,
                    });
                }
            }
        }
        let commit: &[u8] = if failure.is_some() { b"F\0" } else { b"T\0" };
        c.stream
            .write_all(&Message::new(MsgType::TransactionEnd, 0, tx, commit.to_vec()).encode())?;
        let r = c.next()?;
        if let Some(f) = failure {
            return Err(f);
        }
        match r.kind().ok() {
            Some(MsgType::TransactionEnd) => return Ok(attempt),
            Some(MsgType::Error) if error_name(&r) == XsError::Eagain.as_str() => continue,
            _ => {
                return Err(PipelineError::Refused {
                    op: "TRANSACTION_END",
                    path: String::new(),
                    err: error_name(&r),
                })
            }
        }
    }
    Err(PipelineError::TooManyRetries(MAX_ATTEMPTS))
}
