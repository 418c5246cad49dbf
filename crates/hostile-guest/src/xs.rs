//! Xenstore attacks through the guest's `/dev/xen/xenbus` (the guest kernel relays
//! each message over the domain's xenstore ring to dom0's xenstored).
//!
//! What the guest kernel already refuses (a payload over 4096 bytes) never reaches
//! dom0; the attack records which side refused it. The raw ring itself belongs to
//! the guest kernel and cannot be written from userspace here: rxenstored's ring code
//! is tested against hostile indices on the host instead (docs/SECURITY.md).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use xenstore::client::{Client, ClientError, Perm, PermAccess, XsOps};
use xenstore::wire::{Header, MsgType, XsError, HEADER_SIZE, XENSTORE_PAYLOAD_MAX};

use crate::report::Report;

/// The guest's xenstore device.
pub const XENBUS_DEV: &str = "/dev/xen/xenbus";
/// How long a reply may take before the attack counts xenstored as unresponsive.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests sent without reading a reply in the flood.
const FLOOD_REQUESTS: u32 = 2000;
/// Nodes tried before giving up on reaching the node quota (C's default is 1000).
const NODE_ATTEMPTS: u32 = 1500;
/// C xenstored's default node quota, and the least this guest must reach of it
/// (the rest are nodes the toolstack made it own).
const NODE_QUOTA: usize = 1000;
const NODE_QUOTA_MIN: usize = 900;
/// Watches tried before giving up on the watch quota (default 128).
const WATCH_ATTEMPTS: u32 = 300;
/// Transactions tried before giving up on the transaction quota (default 10).
const TRANSACTION_ATTEMPTS: u32 = 40;
/// A node value larger than the node-size quota (2048) but within one message.
const OVERSIZED_VALUE: usize = 3000;
/// Watches and writes of the watch storm.
const STORM_WATCHES: u32 = 32;
const STORM_WRITES: u32 = 32;
/// Watches of the watch burst (events from dom0's one-transaction write).
const BURST_WATCHES: u32 = 32;
/// How long the guest waits for dom0's burst.
const BURST_WAIT: Duration = Duration::from_secs(60);
/// How long without an event ends the reading of a storm's or burst's events.
const EVENTS_QUIET: Duration = Duration::from_secs(3);
/// How long the watch-leak attack listens for events about the honest guest.
const LEAK_LISTEN: Duration = Duration::from_secs(4);
/// A message type no xenstored knows.
const UNKNOWN_TYPE: u32 = 99;
/// Where this guest keeps the nodes of its attacks (relative to its home; `data` is
/// the one directory of its home that a guest owns).
const SCRATCH: &str = "data/hostile";

/// A raw connection over `/dev/xen/xenbus`: whole messages out, whole messages in.
#[derive(Debug)]
struct RawBus {
    file: File,
    inbuf: Vec<u8>,
}

impl RawBus {
    fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(XENBUS_DEV)?;
        Ok(Self {
            file,
            inbuf: Vec::new(),
        })
    }

    /// Writes one message in one write(2), as the device wants.
    fn send(&mut self, msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let h = Header {
            msg_type,
            req_id,
            tx_id,
            len,
        };
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(payload);
        self.send_bytes(&bytes)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = self.file.write(bytes)?;
        if n != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write {n} of {}", bytes.len()),
            ));
        }
        Ok(())
    }

    /// The next message, or `None` after `timeout` without one.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<(Header, Vec<u8>)>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; HEADER_SIZE + XENSTORE_PAYLOAD_MAX];
        loop {
            if self.inbuf.len() >= HEADER_SIZE {
                let h = Header::decode(&self.inbuf[..HEADER_SIZE])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let total = HEADER_SIZE + h.len as usize;
                if self.inbuf.len() >= total {
                    let payload = self.inbuf[HEADER_SIZE..total].to_vec();
                    self.inbuf.drain(..total);
                    return Ok(Some((h, payload)));
                }
            }
            match self.file.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request and waits for its reply, skipping watch events.
    fn call(&mut self, msg_type: u32, req_id: u32, payload: &[u8]) -> Result<(Header, Vec<u8>)> {
        self.send(msg_type, req_id, 0, payload)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                None => bail!("no reply to message type {msg_type} in {REPLY_TIMEOUT:?}"),
                Some((h, _)) if h.msg_type == MsgType::WatchEvent as u32 => {}
                Some(m) => return Ok(m),
            }
        }
    }
}

/// Connections used side by side by [`pipelined`].
const PIPELINE_WIDTH: usize = 32;

/// Sends `requests` with up to [`PIPELINE_WIDTH`] of them in flight, each on a
/// connection of its own (the guest kernel's xenbus device sends a request's body
/// from the file's buffer after write(2) returns, so a second write on the same
/// file before the reply can corrupt the first: one request in flight per file).
/// Returns each request's error, `None` for success, in request order.
fn pipelined(requests: &[(MsgType, Vec<u8>)]) -> Result<Vec<Option<String>>> {
    let mut buses = (0..PIPELINE_WIDTH.min(requests.len()))
        .map(|_| RawBus::open())
        .collect::<io::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(buses.len().max(1)) {
        for ((kind, payload), bus) in chunk.iter().zip(buses.iter_mut()) {
            bus.send(*kind as u32, 1, 0, payload)?;
        }
        for bus in buses.iter_mut().take(chunk.len()) {
            loop {
                let (h, p) = bus
                    .recv(REPLY_TIMEOUT)?
                    .context("a pipelined request was never answered")?;
                if h.msg_type != MsgType::WatchEvent as u32 {
                    out.push(reply_error(&h, &p));
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The error name of an ERROR reply, or `None` for any other reply.
fn reply_error(h: &Header, payload: &[u8]) -> Option<String> {
    (h.msg_type == MsgType::Error as u32).then(|| {
        String::from_utf8_lossy(payload)
            .trim_end_matches('\0')
            .to_string()
    })
}

/// A NUL-terminated argument list.
fn args(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p);
        v.push(0);
    }
    v
}

/// The xenstore error of a client call, or a description of what happened instead.
fn xs_err<T>(r: Result<T, ClientError>) -> Result<XsError, String> {
    match r {
        Ok(_) => Err("succeeded".into()),
        Err(e) => e.xs_error().ok_or_else(|| e.to_string()),
    }
}

/// Expects `r` to fail with one of `want`.
fn expect_xs<T>(
    report: &mut Report,
    attack: &str,
    what: &str,
    r: Result<T, ClientError>,
    want: &[XsError],
) {
    match xs_err(r) {
        Ok(e) if want.contains(&e) => report.ok(attack, format!("{what}: {}", e.as_str())),
        Ok(e) => report.fail(attack, format!("{what}: {} (wanted {want:?})", e.as_str())),
        Err(other) => report.fail(attack, format!("{what}: {other} (wanted {want:?})")),
    }
}

fn client() -> Result<Client> {
    let mut c = Client::open_path(Path::new(XENBUS_DEV)).context("opening /dev/xen/xenbus")?;
    c.set_timeout(Some(REPLY_TIMEOUT));
    Ok(c)
}

/// Every xenstore attack; `honest` is the domid of the honest guest.
pub fn run(report: &mut Report, honest: u32) -> Result<()> {
    let mut xs = client()?;
    let me: u32 = String::from_utf8_lossy(&xs.read("domid").context("reading my domid")?)
        .trim()
        .parse()
        .context("my domid node")?;
    println!("HOSTILE: xenstore attacks as domain {me}, honest guest is domain {honest}");
    let _ = xs.rm(SCRATCH);
    xs.mkdir(SCRATCH).context("making my scratch directory")?;

    access_attacks(report, &mut xs, me, honest);
    {
        let r = privileged_ops(report, honest);
        report.run("xs-privileged-ops", r);
    }
    {
        let r = bad_messages(report);
        report.run("xs-bad-messages", r);
    }
    {
        let r = quota_nodes(report, &mut xs);
        report.run("xs-quota-nodes", r);
    }
    let big = vec![b'x'; OVERSIZED_VALUE];
    expect_xs(
        report,
        "xs-quota-node-size",
        &format!("write of a {OVERSIZED_VALUE}-byte value"),
        xs.write(&format!("{SCRATCH}/big"), &big),
        &[XsError::Enospc, XsError::E2big],
    );
    {
        let r = quota_watches(report);
        report.run("xs-quota-watches", r);
    }
    {
        let r = quota_transactions(report);
        report.run("xs-quota-transactions", r);
    }
    {
        let r = flood(report);
        report.run("xs-flood", r);
    }
    {
        let r = watch_leak(report, me, honest);
        report.run("xs-watch-leak", r);
    }
    // Still served after all of it, and the debris can be removed.
    let t = Instant::now();
    let alive = xs
        .rm(SCRATCH)
        .and_then(|()| xs.write(&format!("{SCRATCH}-done"), b"1"));
    report.check(
        "xs-still-served",
        alive.is_ok(),
        format!(
            "rm + write after the attacks: {alive:?} in {} ms",
            t.elapsed().as_millis()
        ),
    );
    // Last: the heaviest on this guest's own connection.
    {
        let r = watch_storm(report, &mut xs);
        report.run("xs-watch-storm", r);
    }
    {
        let r = watch_burst(report, &mut xs);
        report.run("xs-watch-burst", r);
    }
    Ok(())
}

/// Reads and writes of nodes of dom0 and of the honest guest.
fn access_attacks(report: &mut Report, xs: &mut Client, me: u32, honest: u32) {
    let deny = [XsError::Eacces];
    let h = format!("/local/domain/{honest}");
    expect_xs(
        report,
        "xs-read-dom0",
        "read /local/domain/0/name",
        xs.read("/local/domain/0/name"),
        &deny,
    );
    expect_xs(
        report,
        "xs-read-other",
        &format!("read {h}/name"),
        xs.read(&format!("{h}/name")),
        &deny,
    );
    expect_xs(
        report,
        "xs-read-other",
        &format!("directory {h}"),
        xs.directory(&h),
        &deny,
    );
    expect_xs(
        report,
        "xs-read-other",
        &format!("get-perms {h}"),
        xs.get_perms(&h),
        &deny,
    );
    expect_xs(
        report,
        "xs-write-other",
        &format!("write {h}/hostile-was-here"),
        xs.write(&format!("{h}/hostile-was-here"), b"1"),
        &deny,
    );
    expect_xs(
        report,
        "xs-write-other",
        &format!("rm {h}/name"),
        xs.rm(&format!("{h}/name")),
        &deny,
    );
    expect_xs(
        report,
        "xs-write-other",
        &format!("set-perms {h} to b{me}"),
        xs.set_perms(
            &h,
            &[Perm {
                domid: me,
                access: PermAccess::Both,
            }],
        ),
        &[XsError::Eacces, XsError::Eperm],
    );
    expect_xs(
        report,
        "xs-write-dom0",
        "write /local/domain/0/hostile-was-here",
        xs.write("/local/domain/0/hostile-was-here", b"1"),
        &deny,
    );
    expect_xs(
        report,
        "xs-write-dom0",
        "mkdir /tool/hostile-was-here",
        xs.mkdir("/tool/hostile-was-here"),
        &deny,
    );
    expect_xs(
        report,
        "xs-write-dom0",
        "write /local/domain/0/backend/hostile-was-here",
        xs.write("/local/domain/0/backend/hostile-was-here", b"1"),
        &deny,
    );
    // Giving away one's own node to dom0 and then writing it must not work either.
    let mine = format!("{SCRATCH}/given");
    let given = xs.write(&mine, b"1").and_then(|()| {
        xs.set_perms(
            &mine,
            &[Perm {
                domid: 0,
                access: PermAccess::None,
            }],
        )
    });
    match given {
        Ok(()) => expect_xs(
            report,
            "xs-write-other",
            "write a node given away to dom0",
            xs.write(&mine, b"2"),
            &deny,
        ),
        Err(e) => report.ok(
            "xs-write-other",
            format!("giving a node away to dom0 refused: {e}"),
        ),
    }
}

/// Privileged-only requests and message types xenstored does not know.
fn privileged_ops(report: &mut Report, honest: u32) -> Result<()> {
    let mut bus = RawBus::open()?;
    let h = honest.to_string();
    let cases: [(&str, MsgType, Vec<u8>); 5] = [
        (
            "INTRODUCE",
            MsgType::Introduce,
            args(&[h.as_bytes(), b"12345", b"7"]),
        ),
        ("RELEASE", MsgType::Release, args(&[h.as_bytes()])),
        (
            "SET_TARGET",
            MsgType::SetTarget,
            args(&[b"0", h.as_bytes()]),
        ),
        ("RESUME", MsgType::Resume, args(&[h.as_bytes()])),
        (
            "CONTROL",
            MsgType::Control,
            args(&[b"quota", b"set", b"nodes", b"100000"]),
        ),
    ];
    for (i, (name, kind, payload)) in cases.into_iter().enumerate() {
        let (hdr, p) = bus.call(kind as u32, 100 + i as u32, &payload)?;
        let err = reply_error(&hdr, &p);
        report.check(
            "xs-privileged-ops",
            err.as_deref() == Some("EACCES"),
            format!("{name}: {}", err.unwrap_or_else(|| "accepted".into())),
        );
    }
    let (hdr, p) = bus.call(UNKNOWN_TYPE, 200, &args(&[b"x"]))?;
    let err = reply_error(&hdr, &p);
    report.check(
        "xs-privileged-ops",
        matches!(err.as_deref(), Some("ENOSYS") | Some("EINVAL")),
        format!("unknown message type {UNKNOWN_TYPE}: {err:?}"),
    );
    Ok(())
}

/// Over-long and malformed messages.
fn bad_messages(report: &mut Report) -> Result<()> {
    // A header announcing more than the protocol's 4096 bytes: the guest kernel's
    // device refuses it before anything reaches the ring.
    for len in [XENSTORE_PAYLOAD_MAX as u32 + 1, u32::MAX] {
        let mut bus = RawBus::open()?;
        let h = Header {
            msg_type: MsgType::Write as u32,
            req_id: 1,
            tx_id: 0,
            len,
        };
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&[b'a'; 64]);
        match bus.send_bytes(&bytes) {
            Err(e) => report.ok(
                "xs-oversized",
                format!("header len {len}: refused by the guest kernel ({e})"),
            ),
            Ok(()) => match bus.recv(REPLY_TIMEOUT)? {
                Some((h, p)) if reply_error(&h, &p).is_some() => report.ok(
                    "xs-oversized",
                    format!("header len {len}: {:?}", reply_error(&h, &p)),
                ),
                other => report.fail("xs-oversized", format!("header len {len}: {other:?}")),
            },
        }
    }
    let mut bus = RawBus::open()?;
    let cases: [(&str, u32, Vec<u8>); 6] = [
        ("read without a NUL", MsgType::Read as u32, b"name".to_vec()),
        (
            "read of an empty path",
            MsgType::Read as u32,
            b"\0".to_vec(),
        ),
        (
            "read with bad characters",
            MsgType::Read as u32,
            args(&[b"/local/domain/0/../0/name"]),
        ),
        (
            "read of a path of 3500 bytes",
            MsgType::Read as u32,
            args(&[format!("/{}", "a".repeat(3500)).as_bytes()]),
        ),
        (
            "write without a value separator",
            MsgType::Write as u32,
            b"x".to_vec(),
        ),
        (
            "set-perms with a bad permission",
            MsgType::SetPerms as u32,
            args(&[SCRATCH.as_bytes(), b"q0"]),
        ),
    ];
    for (i, (what, t, payload)) in cases.into_iter().enumerate() {
        let (h, p) = bus.call(t, 300 + i as u32, &payload)?;
        let err = reply_error(&h, &p);
        report.check("xs-bad-messages", err.is_some(), format!("{what}: {err:?}"));
    }
    Ok(())
}

/// Creates nodes until the node quota answers: spread over directories of 100 (one
/// directory's record holds its children's names and meets the node-size quota
/// first, as in C), written without waiting for each reply (a synchronous round
/// trip costs 100+ ms under emulation). Every write before the first refusal must
/// succeed, every one after it must be refused with ENOSPC.
fn quota_nodes(report: &mut Report, xs: &mut Client) -> Result<()> {
    let dir = format!("{SCRATCH}/nodes");
    let requests: Vec<(MsgType, Vec<u8>)> = (0..NODE_ATTEMPTS)
        .map(|i| {
            let path = format!("{dir}/d{}/n{}", i / 100, i % 100);
            (MsgType::Write, [path.as_bytes(), b"\0x"].concat())
        })
        .collect();
    let replies = pipelined(&requests)?;
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &replies {
        *kinds
            .entry(r.clone().unwrap_or_else(|| "OK".into()))
            .or_default() += 1;
    }
    let created = kinds.get("OK").copied().unwrap_or(0);
    let refused = kinds.get("ENOSPC").copied().unwrap_or(0);
    // The quota (C's default 1000) counts every node the guest owns: the leaves,
    // their directories and what the toolstack made it own (a few dozen).
    report.check(
        "xs-quota-nodes",
        created + refused == replies.len() && refused > 0 && (NODE_QUOTA_MIN..=NODE_QUOTA).contains(&(created + created.div_ceil(100))),
        format!(
            "{NODE_ATTEMPTS} writes of new nodes in directories of 100: {created} created (+{} directories), {refused} refused with ENOSPC; answers {kinds:?}",
            created.div_ceil(100)
        ),
    );
    // The quota comes back once the nodes are gone.
    xs.rm(&dir).context("removing my nodes")?;
    xs.write(&format!("{dir}/again"), b"x")
        .context("writing after removing")?;
    xs.rm(&dir).context("removing my nodes again")?;
    Ok(())
}

/// Registers watches until the watch quota answers. Through the guest kernel a
/// refused watch comes back as the write's errno.
fn quota_watches(report: &mut Report) -> Result<()> {
    let mut bus = RawBus::open()?;
    for i in 0..WATCH_ATTEMPTS {
        let token = format!("t{i}");
        match bus.send(
            MsgType::Watch as u32,
            i,
            0,
            &args(&[SCRATCH.as_bytes(), token.as_bytes()]),
        ) {
            Err(e) => {
                let ok = matches!(e.raw_os_error(), Some(libc::E2BIG) | Some(libc::ENOSPC));
                report.check("xs-quota-watches", ok, format!("watch {i} refused: {e}"));
                return Ok(());
            }
            Ok(()) => loop {
                match bus.recv(REPLY_TIMEOUT)? {
                    None => bail!("no reply to watch {i}"),
                    Some((h, _)) if h.msg_type == MsgType::WatchEvent as u32 => {}
                    Some((h, p)) => {
                        if let Some(err) = reply_error(&h, &p) {
                            report.check(
                                "xs-quota-watches",
                                err == "E2BIG" || err == "ENOSPC",
                                format!("watch {i} refused: {err}"),
                            );
                            return Ok(());
                        }
                        break;
                    }
                }
            },
        }
    }
    bail!("{WATCH_ATTEMPTS} watches accepted without reaching a quota")
}

/// Starts transactions until the transaction quota answers.
fn quota_transactions(report: &mut Report) -> Result<()> {
    let mut bus = RawBus::open()?;
    for i in 0..TRANSACTION_ATTEMPTS {
        match bus.call(MsgType::TransactionStart as u32, i, b"\0") {
            Ok((h, p)) => {
                if let Some(err) = reply_error(&h, &p) {
                    let ok = matches!(err.as_str(), "ENOSPC" | "EQUOTA" | "EAGAIN");
                    report.check(
                        "xs-quota-transactions",
                        ok,
                        format!("transaction {i} refused: {err}"),
                    );
                    return Ok(());
                }
            }
            Err(e) => {
                report.ok(
                    "xs-quota-transactions",
                    format!("transaction {i} refused: {e:#}"),
                );
                return Ok(());
            }
        }
    }
    bail!("{TRANSACTION_ATTEMPTS} transactions started without reaching a quota")
}

/// Sends many requests without reading a reply, checks that another connection
/// is still answered meanwhile, then that every request got exactly one reply.
fn flood(report: &mut Report) -> Result<()> {
    let mut bus = RawBus::open()?;
    let payload = args(&[b"domid"]);
    let t = Instant::now();
    for i in 0..FLOOD_REQUESTS {
        bus.send(MsgType::Read as u32, i, 0, &payload)
            .with_context(|| format!("flood request {i}"))?;
    }
    let sent_ms = t.elapsed().as_millis();
    let mut other = client()?;
    let t2 = Instant::now();
    let answered = other.read("domid");
    report.check(
        "xs-flood",
        answered.is_ok(),
        format!(
            "{FLOOD_REQUESTS} requests written in {sent_ms} ms without reading; another connection answered in {} ms: {:?}",
            t2.elapsed().as_millis(),
            answered.map(|v| String::from_utf8_lossy(&v).into_owned())
        ),
    );
    let mut seen = HashSet::new();
    let mut errors = 0u32;
    while seen.len() < FLOOD_REQUESTS as usize {
        match bus.recv(REPLY_TIMEOUT)? {
            None => break,
            Some((h, p)) => {
                if reply_error(&h, &p).is_some() {
                    errors += 1;
                }
                if !seen.insert(h.req_id) {
                    bail!("request {} answered twice", h.req_id);
                }
            }
        }
    }
    report.check(
        "xs-flood",
        seen.len() == FLOOD_REQUESTS as usize,
        format!(
            "{} of {FLOOD_REQUESTS} requests answered once each ({errors} with an error)",
            seen.len()
        ),
    );
    Ok(())
}

/// Many watches on one directory, then many writes of distinct nodes under it
/// (every event differs, so xenstored cannot merge queued duplicates), with the
/// events read only afterwards. rxenstored's policy for a domain whose queue
/// overflows is to drop the events over its bound and keep the connection (as C
/// xenstored does): every write must be answered, at most one event per watch and
/// write (plus the initial ones) may arrive, and xenstore must still answer this
/// guest afterwards. The scenario checks rxenstored's side (the drop logged once,
/// the ring not ignored).
fn watch_storm(report: &mut Report, xs: &mut Client) -> Result<()> {
    let dir = format!("{SCRATCH}/storm");
    xs.mkdir(&dir)?;
    let mut bus = RawBus::open()?;
    let mut watches = 0u32;
    for i in 0..STORM_WATCHES {
        let token = format!("s{i}");
        if bus
            .send(
                MsgType::Watch as u32,
                i,
                0,
                &args(&[dir.as_bytes(), token.as_bytes()]),
            )
            .is_err()
        {
            break;
        }
        watches += 1;
    }
    let t = Instant::now();
    let writes: Vec<(MsgType, Vec<u8>)> = (0..STORM_WRITES)
        .map(|i| {
            let path = format!("{dir}/k{i}");
            (
                MsgType::Write,
                [path.as_bytes(), b"\0", i.to_string().as_bytes()].concat(),
            )
        })
        .collect();
    let answers = pipelined(&writes).context("storm writes")?;
    let failed = answers.into_iter().flatten().count();
    ensure!(failed == 0, "{failed} storm writes failed");
    let write_ms = t.elapsed().as_millis();
    let mut events = 0u64;
    while let Some((h, _)) = bus.recv(EVENTS_QUIET)? {
        if h.msg_type == MsgType::WatchEvent as u32 {
            events += 1;
        }
    }
    let max = u64::from(watches) * u64::from(STORM_WRITES + 1);
    report.check(
        "xs-watch-storm",
        events > 0 && events <= max,
        format!("{watches} watches x {STORM_WRITES} writes (all answered, in {write_ms} ms): {events} events delivered (at most {max}) RXEN-HOSTILE-STORM events={events} max={max}"),
    );
    drop(bus);
    let t = Instant::now();
    let kept = xs.rm(&dir).and_then(|()| xs.read("domid"));
    report.check(
        "xs-watch-storm",
        kept.is_ok(),
        format!(
            "xenstore still answers this guest after the storm: {:?} in {} ms",
            kept.map(|v| String::from_utf8_lossy(&v).into_owned()),
            t.elapsed().as_millis()
        ),
    );
    Ok(())
}

/// Watches on a directory into which dom0 writes many nodes in one transaction
/// (the scenario does, on this guest's `burst-ready` node): the commit fires every
/// event at once, more than rxenstored queues for one connection (the scenario
/// runs it with a small `--max-queued`), so events are dropped whatever the
/// timing. The policy: this guest loses those events, not its connection.
fn watch_burst(report: &mut Report, xs: &mut Client) -> Result<()> {
    let dir = format!("{SCRATCH}/burst");
    xs.mkdir(&dir)?;
    let mut bus = RawBus::open()?;
    for i in 0..BURST_WATCHES {
        let token = format!("b{i}");
        bus.send(
            MsgType::Watch as u32,
            i,
            0,
            &args(&[dir.as_bytes(), token.as_bytes()]),
        )?;
    }
    // The watch replies and the initial events.
    let mut before = 0u32;
    while bus.recv(Duration::from_secs(1))?.is_some() {
        before += 1;
    }
    xs.write(&format!("{SCRATCH}/burst-ready"), b"1")?;
    let t = Instant::now();
    let mut nodes = None;
    while t.elapsed() < BURST_WAIT {
        if let Some(v) = xs.try_read(&format!("{SCRATCH}/burst-done"))? {
            nodes = String::from_utf8_lossy(&v).trim().parse::<u64>().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let nodes = nodes.context("dom0 never wrote burst-done (with the number of nodes)")?;
    let mut events = 0u64;
    while let Some((h, _)) = bus.recv(EVENTS_QUIET)? {
        if h.msg_type == MsgType::WatchEvent as u32 {
            events += 1;
        }
    }
    let fired = u64::from(BURST_WATCHES) * nodes;
    report.check(
        "xs-watch-burst",
        events > 0 && events <= fired,
        format!("{BURST_WATCHES} watches ({before} replies and initial events), dom0 wrote {nodes} nodes in one transaction: {events} of the {fired} events fired were delivered RXEN-HOSTILE-BURST events={events} fired={fired}"),
    );
    drop(bus);
    let t = Instant::now();
    let kept = xs.rm(&dir).and_then(|()| xs.read("domid"));
    report.check(
        "xs-watch-burst",
        kept.is_ok(),
        format!(
            "xenstore still answers this guest after the burst: {:?} in {} ms",
            kept.map(|v| String::from_utf8_lossy(&v).into_owned()),
            t.elapsed().as_millis()
        ),
    );
    Ok(())
}

/// Watches the honest guest's home and the root while dom0 writes there: no event
/// may name a node this guest cannot read.
fn watch_leak(report: &mut Report, me: u32, honest: u32) -> Result<()> {
    let mut bus = RawBus::open()?;
    let h = format!("/local/domain/{honest}");
    for (i, path) in [h.as_str(), "/", "/local/domain/0"].iter().enumerate() {
        let token = format!("leak{i}");
        if let Err(e) = bus.send(
            MsgType::Watch as u32,
            i as u32,
            0,
            &args(&[path.as_bytes(), token.as_bytes()]),
        ) {
            println!("HOSTILE: watch on {path} refused: {e}");
        }
    }
    let deadline = Instant::now() + LEAK_LISTEN;
    let mut events = 0u32;
    let mut leaked = Vec::new();
    while Instant::now() < deadline {
        let Some((hdr, p)) = bus.recv(deadline.saturating_duration_since(Instant::now()))? else {
            break;
        };
        if hdr.msg_type != MsgType::WatchEvent as u32 {
            continue;
        }
        events += 1;
        let path =
            String::from_utf8_lossy(p.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
        let under = |d: &str| path.starts_with(&format!("{d}/"));
        // This guest's own backend directories (backend/TYPE/ME/...) are readable by it.
        let own_backend = path
            .strip_prefix("/local/domain/0/backend/")
            .and_then(|rest| rest.split('/').nth(1))
            == Some(me.to_string().as_str());
        if under(&h) || (under("/local/domain/0") && !own_backend) {
            leaked.push(path);
        }
    }
    report.check(
        "xs-watch-leak",
        leaked.is_empty(),
        format!("{events} events in {LEAK_LISTEN:?} on watches of {h}, / and dom0's home; events naming their nodes: {leaked:?}"),
    );
    Ok(())
}
