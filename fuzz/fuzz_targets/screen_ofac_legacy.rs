#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let list = cip_screen::ListId::new("fuzz");
    let src = cip_screen::parse::Source::new("fuzz", data);
    // The same bytes as every file of the set: exercises the joins as well.
    let files = cip_screen::parse::ofac_legacy::OfacFiles {
        primary: src,
        alt: Some(src),
        add: Some(src),
        comments: Some(src),
    };
    let _ = cip_screen::parse::ofac_legacy::parse(&list, &files);
});
