#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let list = cip_screen::ListId::new("fuzz");
    let src = cip_screen::parse::Source::new("fuzz", data);
    let _ = cip_screen::parse::un_xml::parse(&list, &src);
});
