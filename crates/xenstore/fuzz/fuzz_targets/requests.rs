//! Request sequences (raw frames and structured requests from a token
//! dictionary) on three connections, one an unprivileged domain, against a fresh
//! server; the store must stay consistent and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xenstore::process::fuzz_requests(data);
});
