//! xl disk and vif specs: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = String::from_utf8_lossy(data);
    let _ = toolstack::config::parse_disk_spec(&spec);
    let _ = toolstack::config::parse_vif_spec(&spec);
});
