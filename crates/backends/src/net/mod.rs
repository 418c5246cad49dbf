//! rxnetback: the PV network backend (netif, xen/include/public/io/netif.h).
//!
//! So far: the ring layout ([`abi`]) and transmit-packet validation
//! ([`request`]). The xenbus handler, grant-copy data path and TAP device are
//! not written yet.

pub mod abi;
pub mod request;
