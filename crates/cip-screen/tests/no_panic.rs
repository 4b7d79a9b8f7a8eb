#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property tests: parsers and screening never panic on arbitrary input, and errors are
//! typed.

use cip_screen::parse::ofac_legacy::{OfacFiles, parse as parse_ofac};
use cip_screen::parse::{Source, ftm_jsonl, own_csv, own_json, un_xml};
use cip_screen::{EntryKind, Index, ListEntry, ListId, NameKind, PreparedQuery};
use proptest::prelude::*;

fn list() -> ListId {
    ListId::new("p")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let src = Source::new("fuzz", &bytes);
        let _ = parse_ofac(&list(), &OfacFiles { primary: src, alt: Some(src), add: Some(src), comments: Some(src) });
        let _ = un_xml::parse(&list(), &src);
        let _ = ftm_jsonl::parse(&list(), &src);
        let _ = own_csv::parse(&list(), &src);
        let _ = own_json::parse(&list(), &src);
    }

    #[test]
    fn structured_garbage_never_panics(text in "[-0-9a-zA-Z,\" ;:()<>/=\\.\\n\u{0400}-\u{04ff}\u{05d0}-\u{05ea}\u{1a}]{0,400}") {
        let b = text.as_bytes();
        let src = Source::new("fuzz", b);
        let _ = parse_ofac(&list(), &OfacFiles { primary: src, alt: None, add: None, comments: None });
        let xml = format!("<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL>{text}</INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>");
        let _ = un_xml::parse(&list(), &Source::new("x", xml.as_bytes()));
        let csv = format!("id,kind,name,aliases,birth_date,countries,identifiers,remarks\n{text}");
        let _ = own_csv::parse(&list(), &Source::new("c", csv.as_bytes()));
    }

    #[test]
    fn screening_never_panics(name in "\\PC{0,80}", entry in "\\PC{1,60}") {
        let mut e = ListEntry::new(list(), "1", EntryKind::Entity);
        e.push_name(&entry, NameKind::Primary);
        let idx = Index::build(&[e]);
        match PreparedQuery::name(&name, None) {
            Ok(q) => {
                for c in idx.screen(&q, 5, 0.0) {
                    prop_assert!((0.0..=1.0).contains(&c.score));
                }
            }
            Err(err) => prop_assert!(err.code().starts_with("CIP-SCREEN-")),
        }
        let s = cip_screen::score::score_names(&name, &entry, EntryKind::Vessel);
        prop_assert!((0.0..=1.0).contains(&s));
    }
}
