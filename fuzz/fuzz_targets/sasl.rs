#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ductstream_broker::fuzzing::sasl(data));
