//! Xenstore: the wire codec, the store, the client used by all of rxen, and the
//! server behind `rxenstored`.
pub mod client;
pub mod daemon;
pub mod process;
pub mod store;
pub mod wire;
