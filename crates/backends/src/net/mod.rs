//! rxnetback: the PV network backend (netif, xen/include/public/io/netif.h).
//!
//! So far: the ring layout ([`abi`]), the handshake nodes ([`frontend`]: the
//! features published before InitWait and the frontend's queues, rings and
//! event channels, bounded) and transmit-packet validation ([`request`]). The
//! TAP device is `xen::Tap`. Not written yet: the xenbus handler (the generic
//! `crate::xenbus` machinery reads blkif-shaped `ring-ref`s before `connect`, so
//! netif needs a per-kind frontend reader hook there), the grant-copy tx/rx data
//! path and the daemon.

pub mod abi;
pub mod frontend;
pub mod request;
