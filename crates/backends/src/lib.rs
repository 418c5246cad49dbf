//! Userspace PV backends: console, block and net, and the xenbus backend state
//! machine they share.

pub mod block;
pub mod console;
pub mod logging;
pub mod net;
pub mod xenbus;

#[cfg(test)]
mod test_xs;
