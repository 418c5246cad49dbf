//! A hostile blkif frontend: this program does the xenbus handshake itself (ring
//! page and data pages from `/dev/xen/gntalloc`, an event channel from
//! `/dev/xen/evtchn`), then sends malformed requests and checks each answer.
//!
//! Layout facts (xen/include/public/io/blkif.h, ring.h): a 64-byte ring header
//! (`req_prod` @0, `req_event` @4, `rsp_prod` @8, `rsp_event` @12), 32 slots of 112
//! bytes in a one-page ring; a response (16 bytes) overwrites its request's slot.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use backends::block::abi::{
    RawRequest, RawSegment, Response, DISCARD_SECURE, MAX_SEGMENTS, OP_FLUSH_DISKCACHE,
    OP_INDIRECT, OP_READ, OP_WRITE, OP_WRITE_BARRIER, REQUEST_SIZE, RESPONSE_SIZE, RSP_EOPNOTSUPP,
    RSP_ERROR, RSP_OKAY,
};
use xen::abi::xen::{EvtchnPort, GrantRef, XEN_PAGE_SIZE};
use xen::ring::{init_shared, ring_size, RING_HEADER_SIZE};
use xen::{Evtchn, Gntalloc, GrantShare};
use xenstore::client::{Client, XsOps};

use crate::front::{
    wait_state, BACKEND_DOMID, BACKEND_TIMEOUT, FAR_AHEAD, NEVER_GRANTED, REQ_PROD, RSP_EVENT,
    RSP_PROD, STATE_CLOSED, STATE_CLOSING, STATE_CONNECTED, STATE_INITIALISED, STATE_INITIALISING,
    STATE_INIT_WAIT,
};
use crate::report::Report;

/// Data pages granted to the backend.
const DATA_PAGES: usize = MAX_SEGMENTS + 1;
/// Sectors per 4 KiB page.
const SECTORS_PER_PAGE: u8 = (XEN_PAGE_SIZE / 512) as u8;
/// Rounds of the rewrite-after-notify race.
const REWRITE_ROUNDS: u64 = 20;

/// The frontend's view of one connected ring.
struct Front {
    ring: GrantShare,
    evtchn: Evtchn,
    port: EvtchnPort,
    req_prod: u32,
    rsp_cons: u32,
    size: u32,
}

impl Front {
    fn slot(&self, idx: u32) -> usize {
        RING_HEADER_SIZE + (idx & (self.size - 1)) as usize * REQUEST_SIZE
    }

    /// Writes a request into the next slot (not yet visible to the backend).
    fn put(&mut self, req: &RawRequest) -> Result<()> {
        self.ring.write_bytes(self.slot(self.req_prod), &req.0)?;
        self.req_prod = self.req_prod.wrapping_add(1);
        Ok(())
    }

    /// Publishes the producer index and notifies the backend.
    fn publish(&mut self) -> Result<()> {
        fence(Ordering::Release);
        self.ring.write_u32(REQ_PROD, self.req_prod)?;
        fence(Ordering::SeqCst);
        self.evtchn.notify(self.port)?;
        Ok(())
    }

    /// Waits for `n` responses and copies them out.
    fn take(&mut self, n: u32) -> Result<Vec<Response>> {
        let deadline = Instant::now() + BACKEND_TIMEOUT;
        loop {
            let prod = self.ring.read_u32(RSP_PROD)?;
            fence(Ordering::Acquire);
            if prod.wrapping_sub(self.rsp_cons) >= n {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} responses after {BACKEND_TIMEOUT:?}",
                    prod.wrapping_sub(self.rsp_cons)
                );
            }
            while matches!(self.evtchn.pending(), Ok(Some(_))) {
                let _ = self.evtchn.unmask(self.port);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let mut b = [0u8; RESPONSE_SIZE];
            self.ring.read_bytes(self.slot(self.rsp_cons), &mut b)?;
            out.push(Response::from_bytes(&b));
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        Ok(out)
    }

    /// One request, one response.
    fn call(&mut self, req: &RawRequest) -> Result<Response> {
        self.put(req)?;
        self.publish()?;
        let r = self.take(1)?;
        Ok(r[0])
    }
}

/// What the device looks like from the frontend.
struct Device {
    front_dir: String,
    back_dir: String,
    sectors: u64,
    discard: bool,
    indirect: bool,
}

fn read_u64(xs: &mut Client, path: &str) -> Result<Option<u64>> {
    Ok(match xs.try_read(path)? {
        None => None,
        Some(v) => Some(
            String::from_utf8_lossy(&v)
                .trim()
                .parse()
                .with_context(|| format!("{path} is not a number"))?,
        ),
    })
}

/// The handshake: grant a ring, offer an event channel (and, with `persistent`,
/// `feature-persistent = 1`: the backend then maps each grant once), move to
/// Initialised and wait for the backend to connect.
fn connect(xs: &mut Client, gnt: &Gntalloc, dev: &Device, persistent: bool) -> Result<Front> {
    wait_state(xs, &dev.back_dir, &[STATE_INIT_WAIT])?;
    let ring = gnt
        .share(BACKEND_DOMID, 1, true)
        .context("granting the ring page")?;
    init_shared(ring.memory())?;
    let evtchn = Evtchn::open()?;
    let port = evtchn.bind_unbound_port(BACKEND_DOMID)?;
    let f = &dev.front_dir;
    xs.write(
        &format!("{f}/ring-ref"),
        ring.refs()[0].to_string().as_bytes(),
    )?;
    xs.write(&format!("{f}/event-channel"), port.to_string().as_bytes())?;
    xs.write(&format!("{f}/protocol"), b"arm-abi")?;
    xs.write(
        &format!("{f}/feature-persistent"),
        if persistent { b"1" } else { b"0" },
    )?;
    xs.write(
        &format!("{f}/state"),
        STATE_INITIALISED.to_string().as_bytes(),
    )?;
    wait_state(xs, &dev.back_dir, &[STATE_CONNECTED])?;
    xs.write(
        &format!("{f}/state"),
        STATE_CONNECTED.to_string().as_bytes(),
    )?;
    let size = ring_size(XEN_PAGE_SIZE, REQUEST_SIZE)?;
    Ok(Front {
        ring,
        evtchn,
        port,
        req_prod: 0,
        rsp_cons: 0,
        size,
    })
}

/// Closes the frontend and waits for the backend to close too.
fn close(xs: &mut Client, dev: &Device) -> Result<()> {
    xs.write(
        &format!("{}/state", dev.front_dir),
        STATE_CLOSED.to_string().as_bytes(),
    )?;
    wait_state(xs, &dev.back_dir, &[STATE_CLOSED])?;
    Ok(())
}

fn seg(gref: GrantRef, first: u8, last: u8) -> RawSegment {
    RawSegment {
        gref,
        first_sect: first,
        last_sect: last,
    }
}

fn status_name(s: i16) -> &'static str {
    match s {
        RSP_OKAY => "OKAY",
        RSP_ERROR => "ERROR",
        RSP_EOPNOTSUPP => "EOPNOTSUPP",
        _ => "other",
    }
}

/// Sends one request and checks its status (and that the id came back).
fn expect(
    report: &mut Report,
    front: &mut Front,
    attack: &str,
    what: &str,
    req: &RawRequest,
    want: i16,
) -> Result<()> {
    let r = front.call(req)?;
    report.check(
        attack,
        r.status == want && r.id == req.id(),
        format!(
            "{what}: {} ({}) id {} (wanted {} id {})",
            status_name(r.status),
            r.status,
            r.id,
            status_name(want),
            req.id()
        ),
    );
    Ok(())
}

/// Fills data page `page` with a pattern derived from `seed`.
fn fill(data: &GrantShare, page: usize, seed: u8) -> Result<Vec<u8>> {
    let bytes: Vec<u8> = (0..XEN_PAGE_SIZE)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    data.write_bytes(page * XEN_PAGE_SIZE, &bytes)?;
    Ok(bytes)
}

/// Every block attack on the disk `devid` of this guest.
pub fn run(report: &mut Report, devid: u32) -> Result<()> {
    let mut xs = Client::open_path(std::path::Path::new(crate::xs::XENBUS_DEV))?;
    xs.set_timeout(Some(BACKEND_TIMEOUT));
    let front_dir = format!("device/vbd/{devid}");
    let back_dir = String::from_utf8_lossy(&xs.read(&format!("{front_dir}/backend"))?).into_owned();
    let sectors = read_u64(&mut xs, &format!("{back_dir}/sectors"))
        .and_then(|s| s.context("no sectors node"));
    // The backend publishes its features with InitWait.
    wait_state(&mut xs, &back_dir, &[STATE_INIT_WAIT])?;
    let sectors = match sectors {
        Ok(s) => s,
        Err(_) => read_u64(&mut xs, &format!("{back_dir}/sectors"))?.context("no sectors node")?,
    };
    let dev = Device {
        discard: read_u64(&mut xs, &format!("{back_dir}/feature-discard"))? == Some(1),
        indirect: read_u64(
            &mut xs,
            &format!("{back_dir}/feature-max-indirect-segments"),
        )?
        .is_some(),
        front_dir,
        back_dir,
        sectors,
    };
    println!(
        "HOSTILE: block attacks on {} (backend {}, {} sectors, discard {}, indirect {})",
        dev.front_dir, dev.back_dir, dev.sectors, dev.discard, dev.indirect
    );
    let gnt = Gntalloc::open()?;
    let data = gnt
        .share(BACKEND_DOMID, DATA_PAGES, true)
        .context("granting data pages")?;
    let ro = gnt
        .share(BACKEND_DOMID, 1, false)
        .context("granting a read-only page")?;
    let g = data.refs().to_vec();
    let mut front = connect(&mut xs, &gnt, &dev, false)?;
    // A grant given and taken back again (after the ring's, so that no page of
    // this connection reuses its number).
    let freed: GrantRef = {
        let s = gnt.share(BACKEND_DOMID, 1, true)?;
        s.refs()[0]
    };
    report.ok(
        "blk-handshake",
        format!(
            "connected by hand: ring-ref {} event-channel {}",
            front.ring.refs()[0],
            front.port
        ),
    );

    // A valid round trip first: the device works for this frontend.
    let pattern = fill(&data, 0, 0x5a)?;
    let full = SECTORS_PER_PAGE - 1;
    expect(
        report,
        &mut front,
        "blk-valid",
        "write 8 sectors at 16",
        &RawRequest::new(OP_WRITE, 1, 16, &[seg(g[0], 0, full)]),
        RSP_OKAY,
    )?;
    data.fill(XEN_PAGE_SIZE, XEN_PAGE_SIZE, 0)?;
    expect(
        report,
        &mut front,
        "blk-valid",
        "read them back",
        &RawRequest::new(OP_READ, 2, 16, &[seg(g[1], 0, full)]),
        RSP_OKAY,
    )?;
    let mut back = vec![0u8; XEN_PAGE_SIZE];
    data.read_bytes(XEN_PAGE_SIZE, &mut back)?;
    report.check(
        "blk-valid",
        back == pattern,
        "data read back equals data written",
    );

    let mut id = 100u64;
    let mut next = || {
        id += 1;
        id
    };
    let bad: Vec<(&str, &str, RawRequest, i16)> = vec![
        (
            "blk-inverted-segment",
            "first_sect 5 > last_sect 2",
            RawRequest::new(OP_READ, next(), 0, &[seg(g[0], 5, 2)]),
            RSP_ERROR,
        ),
        (
            "blk-segment-beyond-page",
            "last_sect 8",
            RawRequest::new(OP_READ, next(), 0, &[seg(g[0], 0, SECTORS_PER_PAGE)]),
            RSP_ERROR,
        ),
        (
            "blk-segment-beyond-page",
            "last_sect 255 (write)",
            RawRequest::new(OP_WRITE, next(), 0, &[seg(g[0], 0, 255)]),
            RSP_ERROR,
        ),
        (
            "blk-too-many-segments",
            "nr_segments 12",
            {
                let mut r = RawRequest::new(OP_READ, next(), 0, &[seg(g[0], 0, 0)]);
                r.set_nr_segments(MAX_SEGMENTS as u8 + 1);
                r
            },
            RSP_ERROR,
        ),
        (
            "blk-too-many-segments",
            "nr_segments 255",
            {
                let mut r = RawRequest::new(OP_WRITE, next(), 0, &[seg(g[0], 0, 0)]);
                r.set_nr_segments(u8::MAX);
                r
            },
            RSP_ERROR,
        ),
        (
            "blk-no-segments",
            "read with 0 segments",
            RawRequest::new(OP_READ, next(), 0, &[]),
            RSP_ERROR,
        ),
        (
            "blk-never-granted",
            "read into a grant ref never granted",
            RawRequest::new(OP_READ, next(), 0, &[seg(NEVER_GRANTED, 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-never-granted",
            "write from a grant ref never granted",
            RawRequest::new(OP_WRITE, next(), 0, &[seg(NEVER_GRANTED, 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-never-granted",
            "write from a grant ref already revoked",
            RawRequest::new(OP_WRITE, next(), 0, &[seg(freed, 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-never-granted",
            "second segment's grant never granted",
            RawRequest::new(
                OP_READ,
                next(),
                0,
                &[seg(g[0], 0, full), seg(NEVER_GRANTED, 0, full)],
            ),
            RSP_ERROR,
        ),
        (
            "blk-read-only-grant",
            "read into a read-only grant",
            RawRequest::new(OP_READ, next(), 0, &[seg(ro.refs()[0], 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-past-end",
            "sector = disk size",
            RawRequest::new(OP_READ, next(), dev.sectors, &[seg(g[0], 0, 0)]),
            RSP_ERROR,
        ),
        (
            "blk-past-end",
            "8 sectors from size-4",
            RawRequest::new(OP_WRITE, next(), dev.sectors - 4, &[seg(g[0], 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-past-end",
            "sector u64::MAX-2 (wraps)",
            RawRequest::new(OP_READ, next(), u64::MAX - 2, &[seg(g[0], 0, full)]),
            RSP_ERROR,
        ),
        (
            "blk-past-end",
            "11 full segments from size-80",
            RawRequest::new(
                OP_READ,
                next(),
                dev.sectors - 80,
                &g[..MAX_SEGMENTS]
                    .iter()
                    .map(|r| seg(*r, 0, full))
                    .collect::<Vec<_>>(),
            ),
            RSP_ERROR,
        ),
        (
            "blk-bad-operation",
            "BLKIF_OP_INDIRECT (not advertised)",
            {
                let mut r = RawRequest::new(OP_READ, next(), 0, &[seg(g[0], 0, 0)]);
                r.set_operation(OP_INDIRECT);
                r
            },
            if dev.indirect {
                RSP_ERROR
            } else {
                RSP_EOPNOTSUPP
            },
        ),
        (
            "blk-bad-operation",
            "BLKIF_OP_WRITE_BARRIER (not advertised)",
            {
                let mut r = RawRequest::new(OP_WRITE, next(), 0, &[seg(g[0], 0, 0)]);
                r.set_operation(OP_WRITE_BARRIER);
                r
            },
            RSP_EOPNOTSUPP,
        ),
        (
            "blk-bad-operation",
            "operation 255",
            {
                let mut r = RawRequest::new(OP_READ, next(), 0, &[seg(g[0], 0, 0)]);
                r.set_operation(u8::MAX);
                r
            },
            RSP_EOPNOTSUPP,
        ),
        (
            "blk-bad-operation",
            "secure discard",
            RawRequest::new_discard(next(), 0, 8, DISCARD_SECURE),
            RSP_EOPNOTSUPP,
        ),
        (
            "blk-past-end",
            "discard past the end",
            RawRequest::new_discard(next(), dev.sectors - 1, 8, 0),
            if dev.discard {
                RSP_ERROR
            } else {
                RSP_EOPNOTSUPP
            },
        ),
        (
            "blk-past-end",
            "flush with a segment past the end",
            RawRequest::new(OP_FLUSH_DISKCACHE, next(), dev.sectors, &[seg(g[0], 0, 0)]),
            RSP_ERROR,
        ),
    ];
    for (attack, what, req, want) in &bad {
        expect(report, &mut front, attack, what, req, *want)?;
    }

    // The same bad requests all at once (a full ring), responses never read until
    // the backend has written every one of them; rsp_event is left stale.
    let batch: Vec<&RawRequest> = bad.iter().map(|b| &b.2).take(front.size as usize).collect();
    for r in &batch {
        front.put(r)?;
    }
    front.publish()?;
    let rsps = front.take(batch.len() as u32)?;
    let all_match = rsps
        .iter()
        .zip(bad.iter())
        .all(|(r, b)| r.id == b.2.id() && r.status == b.3);
    report.check(
        "blk-unconsumed-responses",
        all_match,
        format!("{} bad requests in one batch, rsp_event stale: {} answered in order with the same statuses", batch.len(), rsps.len()),
    );
    let _ = front
        .ring
        .write_u32(RSP_EVENT, front.rsp_cons.wrapping_add(1));

    // Rewriting a request after notifying: the backend copies each request once,
    // so whatever it answers follows from one consistent copy. The rewrite keeps
    // bytes 0..16 (operation, count, id), where the response will be written, and
    // makes the rest invalid (sector past the end, inverted segments); the answer
    // must carry the request's id and be OKAY (copied before) or ERROR (after or
    // torn), never anything else.
    let mut before = 0;
    let mut after = 0;
    let mut wrong = Vec::new();
    for round in 0..REWRITE_ROUNDS {
        let id = 1000 + round;
        let good = RawRequest::new(OP_WRITE, id, 24, &[seg(g[2], 0, full)]);
        let mut evil = RawRequest::new(OP_WRITE, id, u64::MAX - 2, &[seg(g[2], full, 0)]);
        evil.set_nr_segments(1);
        let slot = front.slot(front.req_prod);
        front.put(&good)?;
        front.publish()?;
        front
            .ring
            .write_bytes(slot + RESPONSE_SIZE, &evil.0[RESPONSE_SIZE..])?;
        let r = front.take(1)?[0];
        match (r.id == id, r.status) {
            (true, RSP_OKAY) => before += 1,
            (true, RSP_ERROR) => after += 1,
            _ => wrong.push((r.id, r.status)),
        }
    }
    report.check(
        "blk-rewrite-after-notify",
        wrong.is_empty(),
        format!("{REWRITE_ROUNDS} rounds: {before} copied before the rewrite (OKAY), {after} after (ERROR), other answers: {wrong:?}"),
    );

    // A producer index far ahead of the ring: the backend must drop this ring
    // (state Closing) and nothing else.
    front
        .ring
        .write_u32(REQ_PROD, front.req_prod.wrapping_add(FAR_AHEAD))?;
    front.evtchn.notify(front.port)?;
    let s = wait_state(&mut xs, &dev.back_dir, &[STATE_CLOSING, STATE_CLOSED]);
    let err = xs
        .try_read(&format!("{}/error", dev.back_dir))
        .ok()
        .flatten();
    report.check(
        "blk-producer-far-ahead",
        s.is_ok(),
        format!(
            "req_prod {FAR_AHEAD} ahead: backend state {s:?}, error node {:?}",
            err.map(|e| String::from_utf8_lossy(&e).into_owned())
        ),
    );
    drop(front);

    // The misbehaving frontend may start over, and then it is served again,
    // this time with persistent grants: a grant that cannot be mapped (never
    // granted, or read-only: persistent grants are mapped writable)
    // fails its request only, and the ring serves on.
    let recovered = (|| -> Result<()> {
        close(&mut xs, &dev)?;
        xs.write(
            &format!("{}/state", dev.front_dir),
            STATE_INITIALISING.to_string().as_bytes(),
        )?;
        let mut front = connect(&mut xs, &gnt, &dev, true)?;
        // (Not `freed`: this connection's new ring grant may reuse its number.)
        for (what, gref) in [
            ("never granted", NEVER_GRANTED),
            ("read-only", ro.refs()[0]),
        ] {
            let r = front.call(&RawRequest::new(OP_READ, 9, 0, &[seg(gref, 0, full)]))?;
            ensure!(
                r.status == RSP_ERROR,
                "persistent: read into a grant {what}: status {} (wanted ERROR)",
                r.status
            );
        }
        let pattern = fill(&data, 3, 0xa5)?;
        let w = front.call(&RawRequest::new(OP_WRITE, 7, 32, &[seg(g[3], 0, full)]))?;
        data.fill(4 * XEN_PAGE_SIZE, XEN_PAGE_SIZE, 0)?;
        let r = front.call(&RawRequest::new(OP_READ, 8, 32, &[seg(g[4], 0, full)]))?;
        let mut back = vec![0u8; XEN_PAGE_SIZE];
        data.read_bytes(4 * XEN_PAGE_SIZE, &mut back)?;
        ensure!(
            w.status == RSP_OKAY && r.status == RSP_OKAY,
            "write {} read {}",
            w.status,
            r.status
        );
        ensure!(back == pattern, "data read back differs");
        drop(front);
        close(&mut xs, &dev)
    })();
    let err = xs
        .try_read(&format!("{}/error", dev.back_dir))
        .ok()
        .flatten();
    report.check(
        "blk-reconnect",
        recovered.is_ok(),
        format!(
            "closed, reconnected with persistent grants, reads into grants never granted and read-only refused, write+read intact, closed: {recovered:?} (backend error node {:?})",
            err.map(|e| String::from_utf8_lossy(&e).into_owned())
        ),
    );
    Ok(())
}
