//! rxnetback: the PV network backend (netif, xen/include/public/io/netif.h).
//!
//! [`abi`]: the ring layout; [`frontend`]: the handshake nodes (features
//! published before InitWait, the frontend's queues, rings and event channels,
//! bounded); [`request`]: transmit-packet validation; [`offload`]: netif flags
//! and GSO to and from a TAP's `virtio_net_hdr`; [`server`]: one queue's tx and
//! rx data path by grant copy; [`device`]: the [`crate::xenbus::DeviceHandler`]
//! (TAP per NIC, one thread per connected NIC); [`stats`]: where a queue's
//! time goes.

pub mod abi;
pub mod device;
pub mod frontend;
pub mod offload;
pub mod request;
pub mod server;
pub mod stats;
