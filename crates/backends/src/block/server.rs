//! Serving one blkif ring: copy each request out once, validate it
//! ([`super::request::parse`]), then do the I/O through the frontend's grants.

use std::sync::Arc;

use super::abi::*;
use super::disk::Disk;
use super::request::{parse, DiskLimits, Kind, Request};
use xen::abi::xen::{DomId, GrantRef, XEN_PAGE_SIZE};
use xen::{BackRing, Gntdev, GntdevError, RingError};

/// Copying between local buffers and a frontend's granted pages. The real one is
/// gntdev's grant copy (`IOCTL_GNTDEV_GRANT_COPY`: the hypervisor copies; nothing
/// is mapped into dom0); tests use the fakes.
pub trait GrantCopy {
    /// Copies `dst.len()` bytes at `offset` of grant `gref` into `dst`.
    fn copy_from(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        dst: &mut [u8],
    ) -> Result<(), GntdevError>;
    /// Copies `src` to `offset` of grant `gref`.
    fn copy_to(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        src: &[u8],
    ) -> Result<(), GntdevError>;
}

impl GrantCopy for Gntdev {
    fn copy_from(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        dst: &mut [u8],
    ) -> Result<(), GntdevError> {
        self.copy_from_grant(domid, gref, offset, dst)
    }
    fn copy_to(
        &self,
        domid: DomId,
        gref: GrantRef,
        offset: u16,
        src: &[u8],
    ) -> Result<(), GntdevError> {
        self.copy_to_grant(domid, gref, offset, src)
    }
}

/// Why a valid request failed during I/O (answered with `BLKIF_RSP_ERROR`).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("copying to or from grant {gref} failed")]
    Copy {
        gref: GrantRef,
        #[source]
        source: GntdevError,
    },
    #[error("disk I/O failed")]
    Disk(#[source] std::io::Error),
}

/// One ring of one device.
#[derive(Debug)]
pub struct BlkRing<G: GrantCopy> {
    ring: BackRing,
    grants: Arc<G>,
    domid: DomId,
    disk: Arc<Disk>,
    limits: DiskLimits,
    buf: Vec<u8>,
    /// Requests answered so far (for logs and tests).
    pub completed: u64,
}

impl<G: GrantCopy> BlkRing<G> {
    pub fn new(
        ring: BackRing,
        grants: Arc<G>,
        domid: DomId,
        disk: Arc<Disk>,
        discard: bool,
    ) -> Self {
        let limits = DiskLimits {
            sectors: disk.sectors(),
            read_only: disk.read_only(),
            discard: discard && disk.can_discard(),
        };
        Self {
            ring,
            grants,
            domid,
            disk,
            limits,
            buf: Vec::with_capacity(MAX_SEGMENTS * XEN_PAGE_SIZE),
            completed: 0,
        }
    }

    /// Answers every request on the ring; `Ok(true)` when the frontend must be
    /// notified. An error means the frontend broke the ring protocol: disconnect.
    pub fn process(&mut self) -> Result<bool, RingError> {
        let mut notify = false;
        let mut raw = RawRequest([0; REQUEST_SIZE]);
        loop {
            while self.ring.next_request(&mut raw.0)? {
                let rsp = self.handle(&raw);
                self.ring.put_response(&rsp.to_bytes())?;
                self.completed += 1;
            }
            notify |= self.ring.push_responses()?;
            if !self.ring.final_check_for_requests()? {
                return Ok(notify);
            }
        }
    }

    fn handle(&mut self, raw: &RawRequest) -> Response {
        let status = match parse(raw, &self.limits) {
            Err(e) => {
                tracing::debug!(id = raw.id(), "refused request: {e}");
                e.status()
            }
            Ok(req) => match self.execute(&req) {
                Ok(()) => RSP_OKAY,
                Err(e) => {
                    tracing::warn!(id = req.id, "request failed: {e}");
                    RSP_ERROR
                }
            },
        };
        Response {
            id: raw.id(),
            operation: raw.operation(),
            status,
        }
    }

    fn execute(&mut self, req: &Request) -> Result<(), IoError> {
        match req.kind {
            Kind::Read => {
                self.buf.resize(req.data_len(), 0);
                self.disk
                    .read_at(&mut self.buf, req.sector)
                    .map_err(IoError::Disk)?;
                let mut at = 0;
                for s in &req.segments {
                    let chunk = &self.buf[at..at + s.len()];
                    self.grants
                        .copy_to(self.domid, s.gref, s.offset() as u16, chunk)
                        .map_err(|source| IoError::Copy {
                            gref: s.gref,
                            source,
                        })?;
                    at += s.len();
                }
                Ok(())
            }
            Kind::Write => self.write(req),
            Kind::Flush => {
                if !req.segments.is_empty() {
                    self.write(req)?;
                }
                self.disk.flush().map_err(IoError::Disk)
            }
            Kind::Discard { nr_sectors } => self
                .disk
                .discard(req.sector, nr_sectors)
                .map_err(IoError::Disk),
        }
    }

    fn write(&mut self, req: &Request) -> Result<(), IoError> {
        self.buf.resize(req.data_len(), 0);
        let mut at = 0;
        for s in &req.segments {
            let chunk = &mut self.buf[at..at + s.len()];
            self.grants
                .copy_from(self.domid, s.gref, s.offset() as u16, chunk)
                .map_err(|source| IoError::Copy {
                    gref: s.gref,
                    source,
                })?;
            at += s.len();
        }
        self.disk
            .write_at(&self.buf, req.sector)
            .map_err(IoError::Disk)
    }
}

#[cfg(test)]
mod tests;
