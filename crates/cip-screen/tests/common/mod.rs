#![allow(dead_code, clippy::panic)]
//! Finds the shared data directory: env `CIP_SHARED_DATA`, else an ancestor of the crate
//! holding `shared/data`, else `/work/shared/data`. Missing data fails under `CI`. Also the
//! loader of the real OFAC SDN 2021 files every test of the real list starts from.

use cip_screen::parse::Source;
use cip_screen::parse::ofac_legacy::{OfacFiles, parse as parse_ofac};
use cip_screen::{ListEntry, ListId};
use std::path::{Path, PathBuf};

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The SDN 2021 list (`watchlists/ofac_sdn_2021` under `dir`), parsed with its aliases,
/// addresses and comments.
pub fn sdn2021(dir: &Path) -> Vec<ListEntry> {
    ofac_legacy(
        &dir.join("watchlists/ofac_sdn_2021"),
        "ofac-sdn",
        ["sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv"],
    )
}

/// An OFAC list in its legacy CSV files in `d`: primary, aliases, addresses, comments.
pub fn ofac_legacy(d: &Path, list: &str, [p, a, ad, c]: [&str; 4]) -> Vec<ListEntry> {
    let bytes = [p, a, ad, c].map(|f| read(&d.join(f)));
    let [pb, ab, adb, cb] = &bytes;
    parse_ofac(
        &ListId::new(list),
        &OfacFiles {
            primary: Source::new(p, pb),
            alt: Some(Source::new(a, ab)),
            add: Some(Source::new(ad, adb)),
            comments: Some(Source::new(c, cb)),
        },
    )
    .unwrap_or_else(|e| panic!("{list} in {} does not parse: {e}", d.display()))
}

pub fn data_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CIP_SHARED_DATA") {
        let p = PathBuf::from(p);
        if p.is_dir() {
            return Some(p);
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for anc in manifest.ancestors() {
        let p = anc.join("shared/data");
        if p.is_dir() {
            return Some(p);
        }
    }
    let p = PathBuf::from("/work/shared/data");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("shared test data not found (set CIP_SHARED_DATA); CI must not skip");
    }
    eprintln!("note: shared test data not found; skipping");
    None
}
