//! Untrusted DTBs through the reader and the VM-spec check: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dtb) = toolstack::dtb::parse(data) {
        let _ = toolstack::dtb::vmspec::check_dtb(&dtb);
    }
});
