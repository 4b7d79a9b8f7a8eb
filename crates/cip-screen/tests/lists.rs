#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The parsers on the real list files and the invalid fixtures; screening on the real list.

mod common;

use common::{read, sdn2021};

use cip_screen::parse::ofac_legacy::{OfacFiles, parse as parse_ofac};
use cip_screen::parse::{Source, un_xml};
use cip_screen::{EntryKind, IdentifierKind, Index, ListId, PreparedQuery, Query, QueryIdentifier};

#[test]
fn ofac_sdn_2021_parses_completely() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let entries = sdn2021(&dir);
    assert_eq!(entries.len(), 8976);
    let count = |k| entries.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(EntryKind::Person), 4620);
    assert_eq!(count(EntryKind::Vessel), 406);
    assert_eq!(count(EntryKind::Aircraft), 277);
    let names: usize = entries.iter().map(|e| e.names.len()).sum();
    assert!(names >= 20_000, "{names}");
    let wallets = entries
        .iter()
        .flat_map(|e| &e.identifiers)
        .filter(|i| i.kind == IdentifierKind::Wallet)
        .count();
    assert!(wallets > 50, "{wallets}");
    let yan = entries.iter().find(|e| e.entry_id == "25308").unwrap();
    assert!(
        yan.identifiers
            .iter()
            .any(|i| i.normalized == "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h")
    );
    assert!(!yan.birth_dates.is_empty());
}

#[test]
fn consolidated_and_un_lists_parse() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let cons = common::ofac_legacy(
        &dir.join("watchlists/ofac_consolidated_nonsdn"),
        "ofac-cons",
        [
            "cons_prim.csv",
            "cons_alt.csv",
            "cons_add.csv",
            "cons_comments.csv",
        ],
    );
    assert_eq!(cons.len(), 442);
    let un = read(&dir.join("watchlists/un_consolidated/UN_consolidated.xml"));
    let un = un_xml::parse(
        &ListId::new("un-sc"),
        &Source::new("UN_consolidated.xml", &un),
    )
    .unwrap();
    assert_eq!(un.len(), 1003);
    assert_eq!(
        un.iter().filter(|e| e.kind == EntryKind::Person).count(),
        730
    );
    assert!(un.iter().any(|e| {
        e.names
            .iter()
            .any(|n| n.kind == cip_screen::NameKind::OriginalScript)
    }));
}

#[test]
fn invalid_files_give_located_errors() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let d = dir.join("invalid");
    for (file, fields) in [
        ("sdn.csv", 12usize),
        ("alt.csv", 5),
        ("add.csv", 6),
        ("sdn_comments.csv", 2),
    ] {
        let bytes = read(&d.join(file));
        let primary_ok = read(&dir.join("watchlists/ofac_sdn_2019/sdn.csv"));
        let src = Source::new(file, &bytes);
        let files = match file {
            "sdn.csv" => OfacFiles {
                primary: src,
                alt: None,
                add: None,
                comments: None,
            },
            "alt.csv" => OfacFiles {
                primary: Source::new("sdn.csv", &primary_ok),
                alt: Some(src),
                add: None,
                comments: None,
            },
            "add.csv" => OfacFiles {
                primary: Source::new("sdn.csv", &primary_ok),
                alt: None,
                add: Some(src),
                comments: None,
            },
            _ => OfacFiles {
                primary: Source::new("sdn.csv", &primary_ok),
                alt: None,
                add: None,
                comments: Some(src),
            },
        };
        let err = parse_ofac(&ListId::new("x"), &files).unwrap_err();
        assert_eq!(err.file, file, "{err}");
        assert_eq!(err.code(), "CIP-SCREEN-PARSE-FIELD-COUNT", "{err}");
        assert!(
            matches!(err.problem, cip_screen::ParseProblem::FieldCount { expected, found: 1 } if expected == fields),
            "{err}"
        );
        println!("{file}: {err} [{}]", err.code());
    }
    // Truncated copies of a valid file must fail cleanly or parse a prefix, never panic.
    let un = read(&dir.join("watchlists/un_consolidated/UN_consolidated.xml"));
    let cut = &un[..un.len() / 3];
    let err = un_xml::parse(&ListId::new("un"), &Source::new("un.xml", cut)).unwrap_err();
    println!("truncated UN: {err} [{}]", err.code());
}

#[test]
fn screening_the_real_list() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let entries = sdn2021(&dir);
    let idx = Index::build(&entries);
    let check = |name: &str, kind: Option<EntryKind>, expect: &str| {
        let q = PreparedQuery::name(name, kind).unwrap();
        let hits = idx.screen(&q, 5, 0.5);
        assert!(
            hits.first().is_some_and(|h| h.entry_id == expect),
            "{name}: {:?}",
            hits.iter()
                .map(|h| (&h.entry_id, &h.entry_name, h.score))
                .collect::<Vec<_>>()
        );
    };
    check("Xiaobing Yan", Some(EntryKind::Person), "25308");
    check("YAN Xiao Bing", None, "25308");
    check("Paradzai Zimondy", Some(EntryKind::Person), "7555");
    check("Aero Caribbean Airlines", None, "36");
    // An identifier lifts a weak name match.
    let q = PreparedQuery::new(&Query {
        names: vec!["Yen Xiao".into()],
        identifiers: vec![QueryIdentifier {
            kind: IdentifierKind::Wallet,
            value: "12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h".into(),
        }],
        ..Query::default()
    })
    .unwrap();
    let hits = idx.screen(&q, 3, 0.8);
    assert_eq!(hits[0].entry_id, "25308");
    // A conflicting birth date sinks a strong name match.
    let with = |dob: &str| {
        let q = PreparedQuery::new(&Query {
            names: vec!["Paradzai Zimondi".into()],
            kind: Some(EntryKind::Person),
            birth_date: Some(dob.into()),
            ..Query::default()
        })
        .unwrap();
        idx.screen(&q, 1, 0.0)[0].score
    };
    assert!(with("1947-03-04") > cip_screen::DEFAULT_THRESHOLD);
    assert!(with("1990") < cip_screen::DEFAULT_THRESHOLD);
    // A subset index answers only for its entries.
    let sub = Index::build_subset(&entries, &["7555"]);
    assert_eq!(sub.len(), 1);
    let q = PreparedQuery::name("Paradzai Zimondi", None).unwrap();
    assert_eq!(sub.screen(&q, 5, 0.8).len(), 1);
}
