//! Cross-checks the MRZ parser against an independent implementation: the PyPI package `mrz`
//! generated the documents and judged every mutated copy (scripts/gen_mrz_fixtures.py). Our
//! verdict must equal the peer's on every line. CI regenerates a fresh set with a new seed and
//! points `CIP_MRZ_PEER_FIXTURE` at it; otherwise the committed set is used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cip_core::mrz::{self, MrzFormat};

#[test]
fn agrees_with_the_mrz_package() {
    let path = std::env::var("CIP_MRZ_PEER_FIXTURE").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mrz_peer.tsv").to_string()
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let mut checked = 0;
    for (n, row) in text.lines().enumerate() {
        let cols: Vec<&str> = row.split('\t').collect();
        let (verdict, kind, number, birth, lines) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let zone = lines.replace('|', "\n");
        let ours = mrz::parse(&zone);
        match (verdict, &ours) {
            ("valid", Ok(m)) => {
                if !kind.starts_with("mutated") {
                    let want = match kind {
                        "TD1" => MrzFormat::Td1,
                        "TD2" => MrzFormat::Td2,
                        "TD3" => MrzFormat::Td3,
                        "MRV-A" => MrzFormat::MrvA,
                        _ => MrzFormat::MrvB,
                    };
                    assert_eq!(m.format, want, "line {}", n + 1);
                    assert_eq!(m.document_number, number, "line {}", n + 1);
                    let b = m.birth_date.unwrap();
                    assert_eq!(
                        format!("{:02}{:02}{:02}", b.year() % 100, b.month(), b.day()),
                        birth,
                        "line {}",
                        n + 1
                    );
                }
            }
            ("invalid", Err(_)) => {}
            _ => panic!(
                "line {}: the peer says {verdict}, we say {ours:?}\n{zone}",
                n + 1
            ),
        }
        checked += 1;
    }
    assert!(checked >= 500, "only {checked} cases");
}
