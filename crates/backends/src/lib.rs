//! Userspace PV backends: console, block and net, and the xenbus backend state
//! machine they share.
pub mod console;
