//! Domains and devices: the xl.cfg parser, the ARM domain builder, device layouts
//! and the hotplug state machine behind `rxl`.

// Tests may unwrap: a panic there is a test failure with its message.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod arm;
pub mod builder;
pub mod config;
pub mod device;
pub mod domain;
pub mod dtb;
pub mod lifecycle;
pub mod memory;
pub mod monitor;
pub mod rand;
pub mod rename;
pub mod uptime;
pub mod vcpus;
