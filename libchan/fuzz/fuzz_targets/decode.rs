//! Fuzzes the frame decoder and body parsers (`libchan::wire::decode_all`).
//! Run with `cargo fuzz run decode` from libchan/; the seed corpus is in
//! corpus/decode and also runs as a normal test (tests/malformed.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = libchan::wire::decode_all(data, 1 << 16);
});
