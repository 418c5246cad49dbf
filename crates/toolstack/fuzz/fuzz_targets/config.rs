//! xl.cfg text through parse, typed build and validation: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = toolstack::config::from_text(&text, "fuzz.cfg", &[]) {
        let _ = cfg.validate(Some(toolstack::config::GicVersion::V2));
    }
});
