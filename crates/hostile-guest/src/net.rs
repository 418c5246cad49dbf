//! A hostile netif frontend: this program does the xenbus handshake of the
//! guest's NIC itself (tx and rx ring pages and data pages from
//! `/dev/xen/gntalloc`, one event channel from `/dev/xen/evtchn`; xen-netfront is
//! not loaded), then puts malformed packets on the tx ring and checks each answer,
//! posts a few rx buffers and never consumes what arrives in them, and at last
//! runs the producer index far ahead of the ring.
//!
//! Layout facts (xen/include/public/io/netif.h, ring.h): a 64-byte ring header
//! (`req_prod` @0, `req_event` @4, `rsp_prod` @8, `rsp_event` @12); tx slots of 12
//! bytes (a `netif_tx_request`, a `netif_extra_info`, or the 4-byte
//! `netif_tx_response` that overwrites its request's slot); rx slots of 8 bytes.

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use backends::net::abi::{
    RawExtraInfo, RxRequest, TxRequest, TxResponse, EXTRA_FLAG_MORE, EXTRA_TYPE_HASH,
    EXTRA_TYPE_MAX, GSO_TYPE_TCPV4, MAX_SLOTS_PER_PACKET, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
    RSP_ERROR, RSP_NULL, RSP_OKAY, RX_REQUEST_SIZE, TX_REQUEST_SIZE, TX_RESPONSE_SIZE,
};
use xen::abi::xen::{EvtchnPort, GrantRef, XEN_PAGE_SIZE};
use xen::ring::{init_shared, ring_size, RING_HEADER_SIZE};
use xen::{Evtchn, Gntalloc, GrantShare};
use xenstore::client::{Client, XsOps};

use crate::front::{
    read_str, wait_state, BACKEND_DOMID, BACKEND_TIMEOUT, FAR_AHEAD, NEVER_GRANTED, REQ_PROD,
    RSP_PROD, STATE_CLOSED, STATE_CLOSING, STATE_CONNECTED, STATE_INITIALISED, STATE_INIT_WAIT,
};
use crate::report::Report;

/// Data pages for tx packets.
const TX_PAGES: usize = 2;
/// Rx buffers posted (and never taken back).
const RX_POSTED: usize = 4;
/// ARP requests sent to make dom0 answer into the rx ring (more than posted).
const ARP_REQUESTS: usize = 16;
/// How long to leave dom0's answers to arrive in (and overflow) the rx buffers.
const RX_WAIT: Duration = Duration::from_secs(3);
/// Bytes of the ARP request frames (Ethernet minimum without FCS).
const ARP_FRAME_LEN: usize = 60;
/// EtherType of ARP.
const ETHERTYPE_ARP: u16 = 0x0806;

/// One shared ring as the frontend sees it.
struct Ring {
    page: GrantShare,
    entry: usize,
    size: u32,
    req_prod: u32,
    rsp_cons: u32,
}

impl Ring {
    fn new(gnt: &Gntalloc, entry: usize) -> Result<Self> {
        let page = gnt
            .share(BACKEND_DOMID, 1, true)
            .context("granting a ring page")?;
        init_shared(page.memory())?;
        Ok(Self {
            page,
            entry,
            size: ring_size(XEN_PAGE_SIZE, entry)?,
            req_prod: 0,
            rsp_cons: 0,
        })
    }

    fn slot(&self, idx: u32) -> usize {
        RING_HEADER_SIZE + (idx & (self.size - 1)) as usize * self.entry
    }

    /// Writes the next request slot (not yet visible to the backend).
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.page.write_bytes(self.slot(self.req_prod), bytes)?;
        self.req_prod = self.req_prod.wrapping_add(1);
        Ok(())
    }

    /// Publishes the producer index.
    fn publish(&mut self) -> Result<()> {
        fence(Ordering::Release);
        self.page.write_u32(REQ_PROD, self.req_prod)?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    fn rsp_prod(&self) -> Result<u32> {
        let p = self.page.read_u32(RSP_PROD)?;
        fence(Ordering::Acquire);
        Ok(p)
    }
}

/// The connected NIC.
struct Nic {
    tx: Ring,
    rx: Ring,
    evtchn: Evtchn,
    port: EvtchnPort,
    next_id: u16,
    /// Bad packets sent (each one the backend must count as a tx error).
    bad: u32,
}

impl Nic {
    fn notify(&self) -> Result<()> {
        self.evtchn.notify(self.port)?;
        Ok(())
    }

    /// Puts `slots` on the tx ring, publishes, notifies, and waits for one
    /// response per slot.
    fn send(&mut self, slots: &[[u8; TX_REQUEST_SIZE]]) -> Result<Vec<TxResponse>> {
        for s in slots {
            self.tx.put(s)?;
        }
        self.tx.publish()?;
        self.notify()?;
        let n = slots.len() as u32;
        let deadline = Instant::now() + BACKEND_TIMEOUT;
        loop {
            let have = self.tx.rsp_prod()?.wrapping_sub(self.tx.rsp_cons);
            if have >= n {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {have} of {n} tx responses after {BACKEND_TIMEOUT:?}");
            }
            while matches!(self.evtchn.pending(), Ok(Some(_))) {
                let _ = self.evtchn.unmask(self.port);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut out = Vec::with_capacity(slots.len());
        for _ in 0..n {
            let mut b = [0u8; TX_RESPONSE_SIZE];
            self.tx
                .page
                .read_bytes(self.tx.slot(self.tx.rsp_cons), &mut b)?;
            out.push(TxResponse::from_bytes(&b));
            self.tx.rsp_cons = self.tx.rsp_cons.wrapping_add(1);
        }
        Ok(out)
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// A tx request slot with a fresh id.
    fn req(&mut self, gref: GrantRef, offset: u16, flags: u16, size: u16) -> (u16, [u8; 12]) {
        let id = self.id();
        let r = TxRequest {
            gref,
            offset,
            flags,
            id,
            size,
        };
        (id, r.to_slot().0)
    }
}

fn extra_slot(e: RawExtraInfo) -> [u8; TX_REQUEST_SIZE] {
    e.to_slot().0
}

fn status_name(s: i16) -> String {
    match s {
        RSP_OKAY => "OKAY".into(),
        RSP_ERROR => "ERROR".into(),
        RSP_NULL => "NULL".into(),
        -2 => "DROPPED".into(),
        other => other.to_string(),
    }
}

/// Sends one chain of slots and checks every response: `want` per slot (the
/// request ids given in `ids`, `None` for an extra-info slot, which is answered
/// `RSP_NULL`).
fn expect(
    report: &mut Report,
    nic: &mut Nic,
    attack: &str,
    what: &str,
    slots: &[[u8; TX_REQUEST_SIZE]],
    ids: &[Option<u16>],
    want: i16,
) -> Result<()> {
    if want == RSP_ERROR {
        nic.bad += 1;
    }
    let got = nic.send(slots)?;
    let good = got.len() == ids.len()
        && got.iter().zip(ids).all(|(r, id)| match id {
            Some(id) => r.id == *id && r.status == want,
            None => r.status == RSP_NULL,
        });
    let shown: Vec<String> = got
        .iter()
        .map(|r| format!("{}#{}", status_name(r.status), r.id))
        .collect();
    report.check(
        attack,
        good,
        format!(
            "{what}: {} responses [{}] (wanted {} for each request, NULL for extra info)",
            got.len(),
            shown.join(" "),
            status_name(want)
        ),
    );
    Ok(())
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC {s:?}");
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s:?}"))?;
    }
    Ok(mac)
}

/// An ARP request (who has `target`? tell `me`) from `mac`, broadcast.
fn arp_request(mac: [u8; 6], me: Ipv4Addr, target: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&me.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// The handshake by hand: grant both rings, offer an event channel, move to
/// Initialised and wait for the backend to connect.
fn connect(xs: &mut Client, gnt: &Gntalloc, front: &str, back: &str) -> Result<Nic> {
    wait_state(xs, back, &[STATE_INIT_WAIT])?;
    let tx = Ring::new(gnt, TX_REQUEST_SIZE)?;
    let rx = Ring::new(gnt, RX_REQUEST_SIZE)?;
    let evtchn = Evtchn::open()?;
    let port = evtchn.bind_unbound_port(BACKEND_DOMID)?;
    for (k, v) in [
        ("tx-ring-ref", tx.page.refs()[0].to_string()),
        ("rx-ring-ref", rx.page.refs()[0].to_string()),
        ("event-channel", port.to_string()),
        ("request-rx-copy", "1".into()),
        ("feature-rx-notify", "1".into()),
        ("state", STATE_INITIALISED.to_string()),
    ] {
        xs.write(&format!("{front}/{k}"), v.as_bytes())?;
    }
    wait_state(xs, back, &[STATE_CONNECTED])?;
    xs.write(
        &format!("{front}/state"),
        STATE_CONNECTED.to_string().as_bytes(),
    )?;
    Ok(Nic {
        tx,
        rx,
        evtchn,
        port,
        next_id: 0,
        bad: 0,
    })
}

/// Every net attack on this guest's NIC `devid`; `me` and `peer` are the IPv4
/// addresses its ARP requests use (`peer` must answer: dom0's bridge).
pub fn run(report: &mut Report, devid: u32, me: Ipv4Addr, peer: Ipv4Addr) -> Result<()> {
    let mut xs = Client::open_path(std::path::Path::new(crate::xs::XENBUS_DEV))?;
    xs.set_timeout(Some(BACKEND_TIMEOUT));
    let front = format!("device/vif/{devid}");
    let back = read_str(&mut xs, &format!("{front}/backend"))?.context("no backend node")?;
    let mac = parse_mac(&read_str(&mut xs, &format!("{front}/mac"))?.context("no mac node")?)?;
    println!("HOSTILE: net attacks on {front} (backend {back})");
    let gnt = Gntalloc::open()?;
    let data = gnt
        .share(BACKEND_DOMID, TX_PAGES, true)
        .context("granting tx data pages")?;
    let rxbufs = gnt
        .share(BACKEND_DOMID, RX_POSTED, true)
        .context("granting rx buffers")?;
    let mut nic = connect(&mut xs, &gnt, &front, &back)?;
    // A grant given and taken back again.
    let freed: GrantRef = {
        let s = gnt.share(BACKEND_DOMID, 1, true)?;
        s.refs()[0]
    };
    report.ok(
        "net-handshake",
        format!(
            "connected by hand: tx-ring-ref {} rx-ring-ref {} event-channel {}",
            nic.tx.page.refs()[0],
            nic.rx.page.refs()[0],
            nic.port
        ),
    );
    let g = data.refs().to_vec();
    let frame = arp_request(mac, me, peer);
    data.write_bytes(0, &frame)?;
    let len = ARP_FRAME_LEN as u16;

    // Rx buffers posted once and never consumed: dom0's answers fill them, the
    // rest must be dropped by the backend (counted), not queued without bound.
    for (i, gref) in rxbufs.refs().iter().enumerate() {
        let r = RxRequest {
            id: i as u16,
            gref: *gref,
        };
        nic.rx.put(&r.to_bytes())?;
    }
    nic.rx.publish()?;
    nic.notify()?;

    // Valid packets first: the NIC works for this frontend (ARP requests that
    // dom0 answers into the rx buffers).
    let mut ok = 0;
    for _ in 0..ARP_REQUESTS {
        let (id, s) = nic.req(g[0], 0, 0, len);
        let r = nic.send(&[s])?;
        if r[0].id == id && r[0].status == RSP_OKAY {
            ok += 1;
        }
    }
    report.check(
        "net-valid",
        ok == ARP_REQUESTS,
        format!("{ok} of {ARP_REQUESTS} ARP requests for {peer} sent (OKAY)"),
    );

    // Slot counts over the limit: one more data slot than a packet may have.
    {
        let n = MAX_SLOTS_PER_PACKET + 1;
        let mut slots = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
            let size = if i == 0 { (n * 60) as u16 } else { 60 };
            let (id, s) = nic.req(g[i % TX_PAGES], 0, flags, size);
            slots.push(s);
            ids.push(Some(id));
        }
        expect(
            report,
            &mut nic,
            "net-too-many-slots",
            &format!("a packet of {n} slots"),
            &slots,
            &ids,
            RSP_ERROR,
        )?;
    }
    // Sizes that do not add up: a second slot larger than the whole packet.
    {
        let (a, s1) = nic.req(g[0], 0, NETTXF_MORE_DATA, 100);
        let (b, s2) = nic.req(g[1], 0, 0, 200);
        expect(
            report,
            &mut nic,
            "net-sizes-dont-add-up",
            "packet of 100 bytes with a 200-byte second slot",
            &[s1, s2],
            &[Some(a), Some(b)],
            RSP_ERROR,
        )?;
        let (c, s) = nic.req(g[0], 0, 0, 10);
        expect(
            report,
            &mut nic,
            "net-sizes-dont-add-up",
            "packet of 10 bytes (shorter than an Ethernet header)",
            &[s],
            &[Some(c)],
            RSP_ERROR,
        )?;
    }
    // Offsets past the page.
    {
        let (a, s) = nic.req(g[0], 4090, 0, len);
        expect(
            report,
            &mut nic,
            "net-offset-past-page",
            "60 bytes at offset 4090",
            &[s],
            &[Some(a)],
            RSP_ERROR,
        )?;
        let (b, s) = nic.req(g[0], 5000, 0, len);
        expect(
            report,
            &mut nic,
            "net-offset-past-page",
            "60 bytes at offset 5000",
            &[s],
            &[Some(b)],
            RSP_ERROR,
        )?;
        let (c, s1) = nic.req(g[0], 0, NETTXF_MORE_DATA, 300);
        let (d, s2) = nic.req(g[1], 4000, 0, 200);
        expect(
            report,
            &mut nic,
            "net-offset-past-page",
            "second slot of 200 bytes at offset 4000",
            &[s1, s2],
            &[Some(c), Some(d)],
            RSP_ERROR,
        )?;
    }
    // Unknown extra-info types (0 and past the last known one).
    for kind in [0, EXTRA_TYPE_MAX, 0xff] {
        let (a, s) = nic.req(g[0], 0, NETTXF_EXTRA_INFO, len);
        let e = extra_slot(RawExtraInfo::new(kind, 0));
        expect(
            report,
            &mut nic,
            "net-unknown-extra",
            &format!("extra info of type {kind}"),
            &[s, e],
            &[Some(a), None],
            RSP_ERROR,
        )?;
    }
    // Over-long extra-info chains: more extras than there are types (a type
    // repeated), and a GSO extra with size 0.
    {
        let (a, s) = nic.req(g[0], 0, NETTXF_EXTRA_INFO, len);
        let mut slots = vec![s];
        let mut ids = vec![Some(a)];
        let chain = 6;
        for i in 0..chain {
            let more = if i + 1 < chain { EXTRA_FLAG_MORE } else { 0 };
            slots.push(extra_slot(RawExtraInfo::new(EXTRA_TYPE_HASH, more)));
            ids.push(None);
        }
        expect(
            report,
            &mut nic,
            "net-extra-chain",
            &format!("a chain of {chain} extra-info slots"),
            &slots,
            &ids,
            RSP_ERROR,
        )?;
        let (b, s) = nic.req(g[0], 0, NETTXF_EXTRA_INFO, len);
        let e = extra_slot(RawExtraInfo::new_gso(0, 0, GSO_TYPE_TCPV4, 0));
        expect(
            report,
            &mut nic,
            "net-extra-chain",
            "GSO extra with size 0",
            &[s, e],
            &[Some(b), None],
            RSP_ERROR,
        )?;
        let (c, s) = nic.req(g[0], 0, NETTXF_EXTRA_INFO, len);
        let e1 = extra_slot(RawExtraInfo::new_gso(
            EXTRA_FLAG_MORE,
            1400,
            GSO_TYPE_TCPV4,
            0,
        ));
        let e2 = extra_slot(RawExtraInfo::new_gso(0, 1400, GSO_TYPE_TCPV4, 0));
        expect(
            report,
            &mut nic,
            "net-extra-chain",
            "two GSO extras",
            &[s, e1, e2],
            &[Some(c), None, None],
            RSP_ERROR,
        )?;
    }
    // Grant refs never granted, and one granted and taken back.
    for (gref, what) in [
        (NEVER_GRANTED, "a grant never given"),
        (freed, "a revoked grant"),
    ] {
        let (a, s) = nic.req(gref, 0, 0, len);
        expect(
            report,
            &mut nic,
            "net-never-granted",
            what,
            &[s],
            &[Some(a)],
            RSP_ERROR,
        )?;
        let (b, s1) = nic.req(g[0], 0, NETTXF_MORE_DATA, 120);
        let (c, s2) = nic.req(gref, 0, 0, 60);
        expect(
            report,
            &mut nic,
            "net-never-granted",
            &format!("{what} in a second slot"),
            &[s1, s2],
            &[Some(b), Some(c)],
            RSP_ERROR,
        )?;
    }
    // Still served after all of it.
    {
        let (a, s) = nic.req(g[0], 0, 0, len);
        expect(
            report,
            &mut nic,
            "net-still-served",
            "a valid ARP request after the bad packets",
            &[s],
            &[Some(a)],
            RSP_OKAY,
        )?;
    }

    println!(
        "HOSTILE: RXEN-HOSTILE-NET-BAD packets={} (each answered ERROR above)",
        nic.bad
    );

    // The rx buffers: dom0's answers went into them, never more than posted; the
    // responses stay unconsumed.
    std::thread::sleep(RX_WAIT);
    let filled = nic.rx.rsp_prod()?.wrapping_sub(nic.rx.rsp_cons);
    report.check(
        "net-unconsumed-rx",
        filled >= 1 && filled as usize <= RX_POSTED,
        format!(
            "{filled} rx responses for the {RX_POSTED} buffers posted (never consumed) after {ARP_REQUESTS} ARP requests; RXEN-HOSTILE-NET-RX filled={filled}"
        ),
    );

    // The producer index far ahead of the ring: this NIC only is disconnected.
    nic.tx.req_prod = nic.tx.req_prod.wrapping_add(FAR_AHEAD);
    nic.tx.publish()?;
    nic.notify()?;
    let s = wait_state(&mut xs, &back, &[STATE_CLOSING, STATE_CLOSED]);
    let err = read_str(&mut xs, &format!("{back}/error"))?;
    match s {
        Ok(s) => report.check(
            "net-producer-far-ahead",
            err.is_some(),
            format!("req_prod {FAR_AHEAD} ahead: backend state {s}, error {err:?}"),
        ),
        Err(e) => report.fail(
            "net-producer-far-ahead",
            format!("req_prod {FAR_AHEAD} ahead: {e:#}"),
        ),
    }
    // Close this end too; the backend lets go of the rings.
    xs.write(
        &format!("{front}/state"),
        STATE_CLOSED.to_string().as_bytes(),
    )?;
    let closed = wait_state(&mut xs, &back, &[STATE_CLOSED]);
    report.check(
        "net-closed",
        closed.is_ok(),
        format!("frontend Closed: backend {closed:?}"),
    );
    drop(nic);
    Ok(())
}
