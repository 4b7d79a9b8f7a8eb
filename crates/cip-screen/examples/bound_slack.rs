#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Where the threshold bound of a list change is loose (docs/design/0008, "The threshold
//! bound"): `cargo run --release -p cip-screen --example bound_slack` draws `DIAG_N`
//! customers (default 100,000) from the realistic population of `cip bench rescreen`
//! (`crates/cip/src/bench_names.tsv`, drawn the same way; the bench lives in the binary crate,
//! so the draw is repeated here), bounds each against a 1 % change of the SDN 2021 list at
//! 0.8 and, for every customer the bound keeps, screens it: how many share a key, how many
//! (key, customer) pairs the lookup returns, how many are kept, and the histograms (tenths)
//! of their actual best score and of their name-only score. A kept customer scoring 0.3 is
//! the bound's slack; change `base` or add an alignment key and rerun to see what it buys
//! before paying for a million-customer bench. Needs `CIP_SHARED_DATA` or `../shared/data`.
#[path = "../tests/common/mod.rs"]
mod common;

use cip_screen::{BoundScratch, EntryKind, Index, PreparedQuery, Query, YearSignature};
use common::sdn2021;

struct Locale {
    share: u32,
    country: String,
    order: String,
    first: Vec<(f64, String)>,
    last: Vec<(f64, String)>,
}
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
fn load() -> (Vec<Locale>, u32) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cip/src/bench_names.tsv"
    ))
    .unwrap();
    let mut locales: Vec<(String, Locale)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["L", loc, share, country, order] => locales.push((
                loc.to_string(),
                Locale {
                    share: share.parse().unwrap(),
                    country: country.to_string(),
                    order: order.to_string(),
                    first: vec![],
                    last: vec![],
                },
            )),
            ["N", loc, kind, name, weight] => {
                let l = &mut locales.iter_mut().find(|(l, _)| l == loc).unwrap().1;
                let list = if *kind == "first" {
                    &mut l.first
                } else {
                    &mut l.last
                };
                let w: f64 = weight.parse().unwrap();
                let acc = list.last().map_or(0.0, |(a, _)| *a) + w;
                list.push((acc, name.to_string()));
            }
            _ => {}
        }
    }
    let locales: Vec<Locale> = locales.into_iter().map(|(_, l)| l).collect();
    let t = locales.iter().map(|l| l.share).sum();
    (locales, t)
}
fn draw(locales: &[Locale], total: u32, i: usize) -> (String, String) {
    let mut rng = SplitMix(i as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let mut pick = (rng.next() % u64::from(total)) as u32;
    let locale = locales
        .iter()
        .find(|l| {
            if pick < l.share {
                true
            } else {
                pick -= l.share;
                false
            }
        })
        .unwrap_or(&locales[0]);
    let choose = |list: &[(f64, String)], rng: &mut SplitMix| -> String {
        let total = list.last().map_or(1.0, |(a, _)| *a);
        let x = rng.unit() * total;
        let at = list.partition_point(|(a, _)| *a < x).min(list.len() - 1);
        list[at].1.clone()
    };
    let first = choose(&locale.first, &mut rng);
    let last = choose(&locale.last, &mut rng);
    let name = match locale.order.as_str() {
        "eastern" => format!("{last}{first}"),
        "spanish" => format!("{first} {last} {}", choose(&locale.last, &mut rng)),
        _ if rng.next().is_multiple_of(4) => {
            format!("{first} {} {last}", choose(&locale.first, &mut rng))
        }
        _ => format!("{first} {last}"),
    };
    (name, locale.country.clone())
}
fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                i += 1;
                j += 1
            }
        }
    }
    out
}
fn main() {
    let n: usize = std::env::var("DIAG_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Some(dir) = common::data_dir() else {
        eprintln!("bound_slack: set CIP_SHARED_DATA to the shared data folder and rerun");
        std::process::exit(2);
    };
    let entries = sdn2021(&dir);
    let full = Index::build(&entries);
    let ids: Vec<&str> = entries
        .iter()
        .step_by(100)
        .map(|e| e.entry_id.as_str())
        .collect();
    let subset = Index::build_subset(&entries, &ids).with_frequencies_of(&full);
    let bound = subset.change_bound(0.8);
    // The birth-date factor of the bound, with the server's kind of bucket (a keyed hash of
    // the year: collisions) and with exact buckets (the most it can give).
    let hashed = |y: u16| (u64::from(y).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as u8;
    let exact = |y: u16| (y % 64) as u8;
    let masks_hashed = bound.year_masks(hashed);
    let masks_exact = bound.year_masks(exact);
    let (mut kept_hashed, mut kept_exact) = (0, 0);
    let mut scratch = BoundScratch::default();
    let (locales, total) = load();
    let (mut sharing, mut kept, mut pairs) = (0, 0, 0usize);
    let mut hist_final = [0usize; 11];
    let mut hist_name = [0usize; 11];
    let mut kept_dob_entry = 0; // kept whose best name-only candidate has a birth date
    let mut samples = Vec::new();
    for i in 0..n {
        let (name, country) = draw(&locales, total, i);
        let q = Query {
            names: vec![name.clone()],
            kind: Some(EntryKind::Person),
            birth_date: Some(format!(
                "{}-{:02}-{:02}",
                1950 + i % 50,
                1 + i % 12,
                1 + i % 28
            )),
            countries: vec![country],
            identifiers: vec![],
        };
        let Ok(pq) = PreparedQuery::new(&q) else {
            continue;
        };
        let mut keys = pq.screen_keys();
        keys.extend(pq.alignment_keys());
        keys.sort_unstable();
        keys.dedup();
        let shared = intersect(&keys, bound.keys());
        if shared.is_empty() {
            continue;
        }
        sharing += 1;
        pairs += shared.len();
        if !bound.may_reach(&shared) {
            continue;
        }
        kept += 1;
        let sig = YearSignature::of([&pq], hashed);
        let sig_exact = YearSignature::of([&pq], exact);
        if bound.may_reach_with(&shared, Some((&masks_hashed, sig)), &mut scratch) {
            kept_hashed += 1;
        }
        if bound.may_reach_with(&shared, Some((&masks_exact, sig_exact)), &mut scratch) {
            kept_exact += 1;
        }
        let best = subset.screen(&pq, 1, 0.0).first().map_or(0.0, |c| c.score);
        let qn = Query {
            birth_date: None,
            countries: vec![],
            ..q.clone()
        };
        let pqn = PreparedQuery::new(&qn).unwrap();
        let cands = subset.screen(&pqn, 1, 0.0);
        let bn = cands.first().map_or(0.0, |c| c.score);
        if cands.first().is_some_and(|c| {
            entries
                .iter()
                .any(|e| e.entry_id == c.entry_id && !e.birth_dates.is_empty())
        }) {
            kept_dob_entry += 1;
        }
        hist_final[((best * 10.0) as usize).min(10)] += 1;
        hist_name[((bn * 10.0) as usize).min(10)] += 1;
        if samples.len() < 40 && i % 7 == 0 {
            samples.push(format!(
                "{name:?} final {best:.2} name {bn:.2} -> {:?}",
                cands.first().map(|c| c.entry_name.clone())
            ));
        }
    }
    eprintln!("keys {} pairs {pairs}", bound.keys().len());
    eprintln!(
        "n {n} sharing {sharing} ({:.1}%) kept {kept} ({:.1}%) of which the best name-only candidate has a birth date {kept_dob_entry}",
        sharing as f64 * 100.0 / n as f64,
        kept as f64 * 100.0 / n as f64
    );
    eprintln!(
        "kept with the birth-date factor: {kept_hashed} ({:.1}%) with hashed buckets, {kept_exact} ({:.1}%) with exact ones",
        kept_hashed as f64 * 100.0 / n as f64,
        kept_exact as f64 * 100.0 / n as f64
    );
    eprintln!("final hist {hist_final:?}\nname hist {hist_name:?}");
    for s in samples {
        eprintln!("{s}");
    }
}
