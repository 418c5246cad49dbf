//! The ARM domain builder's pure parts: the guest memory map and placement
//! ([`layout`]), kernel probing ([`loader`]), the device tree ([`fdt`]), and the
//! dry-run plan that ties them to a [`crate::config::DomainConfig`] ([`plan`]).

pub mod fdt;
pub mod layout;
pub mod loader;
pub mod plan;

/// A GIC version the guest actually gets (the config's "default" resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gic {
    V2,
    V3,
}

impl Gic {
    pub fn name(self) -> &'static str {
        match self {
            Gic::V2 => "GICv2",
            Gic::V3 => "GICv3",
        }
    }
}
