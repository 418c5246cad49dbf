//! The Xen hypervisor interface for a Linux dom0.
//!
//! ABI definitions, safe wrappers over the `/dev/xen` devices (privcmd, evtchn,
//! gntdev, gntalloc, xenbus_backend) and the shared-ring engine. All of rxen's
//! `unsafe` code lives in this crate.
