//! Arbitrary bytes, in data-chosen chunks, through the wire reassembler: every
//! message must re-encode to its bytes, framing errors must be sticky, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xenstore::wire::fuzz_decode(data);
});
