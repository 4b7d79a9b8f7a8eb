#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cip_core::mrz::parse_at(text, 2026);
    }
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').take(3).collect();
    let _ = cip_core::mrz::parse_lines(&lines, 2026);
});
