#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (q, e) = text.split_once('|').unwrap_or((text, "ACME TRADING LLC"));
        let _ = cip_screen::score::score_names(q, e, cip_screen::EntryKind::Entity);
        let _ = cip_screen::PreparedQuery::name(q, None);
    }
});
