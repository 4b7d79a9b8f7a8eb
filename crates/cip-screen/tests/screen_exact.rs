#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Regression guards for the screening fast path that are not timings:
//! - results (entry ids, scores bit for bit, explanations) on a fixed set of ~200 queries
//!   against OFAC SDN 2021 equal a snapshot taken before the speed work, so every pruning
//!   step is proven exact; regenerate only on purpose with `CIP_UPDATE_SCREEN_FIXTURE=1`;
//! - the number of name pairs fully scored per query stays under a bound.

mod common;

use common::sdn2021;

use cip_screen::{
    EntryKind, IdentifierKind, Index, ListEntry, PreparedQuery, Query, QueryIdentifier,
};
use std::fmt::Write as _;
use std::path::PathBuf;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SYLL: &[&str] = &[
    "ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "an", "is", "ber", "go", "li", "na", "mar",
    "tin", "es", "ko", "ru", "pe", "da", "ne", "vi", "ol", "han", "sen", "ter", "ga", "bri", "el",
];

fn random_name(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2);
    (0..n)
        .map(|_| {
            let k = 2 + rng.below(2);
            (0..k)
                .map(|_| SYLL[rng.below(SYLL.len())])
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn perturb(name: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = name.split_whitespace().map(str::to_owned).collect();
    match rng.below(4) {
        0 if words.len() > 1 => words.reverse(),
        1 => {
            let i = rng.below(words.len());
            if let Some(w) = words.get_mut(i)
                && w.len() > 4
                && w.is_ascii()
            {
                let p = 1 + rng.below(w.len() - 2);
                w.remove(p);
            }
        }
        2 => {
            let i = rng.below(words.len());
            if let Some(w) = words.get_mut(i)
                && w.len() > 4
                && w.is_ascii()
            {
                let p = 1 + rng.below(w.len() - 2);
                let c = (b'a' + rng.below(26) as u8) as char;
                w.replace_range(p..=p, &c.to_string());
            }
        }
        _ => {}
    }
    words.join(" ")
}

/// ~200 fixed queries: list names (exact, typo, reordered) with and without a kind, with
/// birth dates, countries and identifiers; random names; multi-name queries.
pub fn queries(entries: &[ListEntry]) -> Vec<Query> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let kinds = [
        None,
        Some(EntryKind::Person),
        Some(EntryKind::Entity),
        Some(EntryKind::Vessel),
    ];
    let mut out = Vec::new();
    for i in 0..140 {
        let e = &entries[rng.below(entries.len())];
        let n = &e.names[rng.below(e.names.len())].text;
        let mut q = Query {
            names: vec![perturb(n, &mut rng)],
            kind: if i % 3 == 0 { None } else { Some(e.kind) },
            ..Query::default()
        };
        if i % 7 == 0
            && let Some(d) = e.birth_dates.first()
        {
            q.birth_date = Some(format!("{}", d.years().0));
        }
        if i % 5 == 0
            && let Some(c) = e.countries.first()
        {
            q.countries.push(c.name.clone());
        }
        if i % 11 == 0
            && let Some(id) = e.identifiers.first()
        {
            q.identifiers.push(QueryIdentifier {
                kind: id.kind,
                value: id.value.clone(),
            });
        }
        if i % 13 == 0 && e.names.len() > 1 {
            q.names.push(e.names[1].text.clone());
        }
        out.push(q);
    }
    for i in 0..50 {
        out.push(Query {
            names: vec![random_name(&mut rng)],
            kind: kinds[i % kinds.len()],
            ..Query::default()
        });
    }
    // Very common tokens, short names, a wrong identifier.
    for n in [
        "Mohammed Ali",
        "Ali",
        "Al Hassan Trading Company",
        "General Trading LLC",
        "Bank",
        "Muhammad Abdullah Al Ahmad",
        "Sea Star 1",
        "International Import Export Co",
        "Ivan Ivanov",
        "Jose Maria Garcia Lopez",
    ] {
        out.push(Query {
            names: vec![n.to_owned()],
            ..Query::default()
        });
    }
    out.push(Query {
        names: vec!["Ahmed Hassan".into()],
        kind: Some(EntryKind::Person),
        identifiers: vec![QueryIdentifier {
            kind: IdentifierKind::Passport,
            value: "X0000000".into(),
        }],
        ..Query::default()
    });
    out
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn render(index: &Index, qs: &[Query]) -> String {
    let mut out = String::new();
    for (qi, q) in qs.iter().enumerate() {
        let Ok(pq) = PreparedQuery::new(q) else {
            writeln!(out, "{qi}\terror").unwrap();
            continue;
        };
        for (limit, min) in [(10, 0.8f32), (3, 0.6), (25, 0.4)] {
            for c in index.screen(&pq, limit, min) {
                let ex = serde_json::to_string(&c.explanation).unwrap();
                writeln!(
                    out,
                    "{qi}\t{limit}\t{min}\t{}\t{:08x}\t{:.4}\t{}\t{:016x}",
                    c.entry_id,
                    c.score.to_bits(),
                    c.score,
                    c.entry_name,
                    fnv(&ex)
                )
                .unwrap();
            }
        }
    }
    out
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/screen_sdn2021.tsv")
}

#[test]
fn screening_results_equal_the_snapshot() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let entries = sdn2021(&dir);
    let index = Index::build(&entries);
    let qs = queries(&entries);
    assert!(qs.len() >= 200, "{}", qs.len());
    let got = render(&index, &qs);
    let path = fixture();
    if std::env::var_os("CIP_UPDATE_SCREEN_FIXTURE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    for (a, b) in g.iter().zip(&w) {
        assert_eq!(a, b, "first difference against {}", path.display());
    }
    assert_eq!(g.len(), w.len(), "line count against {}", path.display());
    // Batch path gives the same as one by one, on any number of threads.
    let prepared: Vec<PreparedQuery> = qs
        .iter()
        .filter_map(|q| PreparedQuery::new(q).ok())
        .collect();
    let one: Vec<_> = prepared.iter().map(|q| index.screen(q, 10, 0.8)).collect();
    for threads in [1, 2, 3] {
        let mut many = prepared.clone();
        while many.len() < 300 {
            many.extend(prepared.iter().cloned());
        }
        let b = index.screen_batch(&many, 10, 0.8, threads);
        assert_eq!(b.len(), many.len());
        for (i, r) in b.iter().enumerate() {
            assert_eq!(
                r,
                &one[i % prepared.len()],
                "batch {threads} threads, query {i}"
            );
        }
    }
}

fn shared_index() -> Option<&'static (Vec<ListEntry>, Index)> {
    static INDEX: std::sync::OnceLock<Option<(Vec<ListEntry>, Index)>> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            let dir = common::data_dir()?;
            let entries = sdn2021(&dir);
            let index = Index::build(&entries);
            Some((entries, index))
        })
        .as_ref()
}

/// A random query derived from a list entry: a perturbed name, sometimes with the entry's
/// birth year or another one, a country, its identifier or a wrong one of the same kind,
/// or a kind that does not match.
fn random_query(entries: &[ListEntry], seed: u64) -> Query {
    let mut rng = Rng(seed | 1);
    let e = &entries[rng.below(entries.len())];
    let n = &e.names[rng.below(e.names.len())].text;
    let kinds = [
        None,
        Some(e.kind),
        Some(EntryKind::Person),
        Some(EntryKind::Entity),
        Some(EntryKind::Vessel),
    ];
    let mut q = Query {
        names: vec![if rng.below(5) == 0 {
            random_name(&mut rng)
        } else {
            perturb(n, &mut rng)
        }],
        kind: kinds[rng.below(kinds.len())],
        ..Query::default()
    };
    match rng.below(3) {
        0 => {
            if let Some(d) = e.birth_dates.first() {
                q.birth_date = Some(format!("{}", d.years().0));
            }
        }
        1 => q.birth_date = Some(format!("{}", 1930 + rng.below(75))),
        _ => {}
    }
    if rng.below(3) == 0
        && let Some(c) = e.countries.first()
    {
        q.countries.push(c.name.clone());
    }
    if let Some(id) = e.identifiers.first() {
        match rng.below(4) {
            0 => q.identifiers.push(QueryIdentifier {
                kind: id.kind,
                value: id.value.clone(),
            }),
            1 => q.identifiers.push(QueryIdentifier {
                kind: id.kind,
                value: format!("Z{}", rng.below(1_000_000)),
            }),
            _ => {}
        }
    }
    if rng.below(6) == 0 && e.names.len() > 1 {
        q.names.push(e.names[1].text.clone());
    }
    q
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 192, ..proptest::prelude::ProptestConfig::default() })]

    /// Pruning never changes a result: on random queries against the real list, at random
    /// thresholds and limits, the pruned screening returns exactly what aligning every
    /// candidate in full returns (same entries, scores bit for bit, explanations). In
    /// particular no pruned entry is one that would have reached the threshold.
    #[test]
    fn pruning_never_drops_a_candidate(seed in proptest::prelude::any::<u64>(), t in 0usize..6, l in 0usize..4) {
        let Some((entries, index)) = shared_index() else {
            return Ok(());
        };
        let q = random_query(entries, seed);
        let Ok(pq) = PreparedQuery::new(&q) else {
            return Ok(());
        };
        let min = [0.3f32, 0.5, 0.7, 0.75, 0.8, 0.9][t];
        let limit = [1usize, 3, 10, 25][l];
        let (pruned, work) = index.screen_counted(&pq, limit, min);
        let (full, full_work) = index.screen_unpruned(&pq, limit, min);
        proptest::prop_assert_eq!(&pruned, &full, "query {:?} at {} limit {}", q, min, limit);
        proptest::prop_assert_eq!(full_work.name_pairs_pruned, 0);
        // Every pair the full path aligns is either aligned or counted as pruned.
        proptest::prop_assert_eq!(
            work.name_pairs_scored + work.name_pairs_pruned,
            full_work.name_pairs_scored
        );
        proptest::prop_assert_eq!(index.screen(&pq, limit, min), pruned);
    }
}

/// Work, counted rather than timed: every query scores at most the candidate cap of
/// entries (plus identifier hits), and pruning skips some alignments on queries whose
/// birth date conflicts with most candidates.
#[test]
fn work_per_query_is_bounded_and_pruning_saves_some() {
    let Some((entries, index)) = shared_index() else {
        return;
    };
    let mut pruned = 0;
    for q in queries(entries) {
        let Ok(pq) = PreparedQuery::new(&q) else {
            continue;
        };
        let (_, w) = index.screen_counted(&pq, 10, 0.8);
        assert!(
            w.entries_scored <= 24 + 24 * q.identifiers.len(),
            "{q:?}: {w:?}"
        );
        if q.identifiers.is_empty() {
            // At most the 24 candidate names, each against the query's name forms.
            assert!(
                w.name_pairs_scored <= 24 * 4 * q.names.len(),
                "{q:?}: {w:?}"
            );
        }
        pruned += w.name_pairs_pruned;
    }
    let mut q = Query {
        names: vec!["Mohammed Ali".into()],
        kind: Some(EntryKind::Person),
        birth_date: Some("1900".into()),
        ..Query::default()
    };
    let (hits, w) = index.screen_counted(&PreparedQuery::new(&q).unwrap(), 10, 0.8);
    assert!(w.name_pairs_pruned > 0, "{w:?}");
    q.birth_date = None;
    let (_, w2) = index.screen_counted(&PreparedQuery::new(&q).unwrap(), 10, 0.8);
    assert!(w2.name_pairs_scored > w.name_pairs_scored, "{w:?} {w2:?}");
    assert!(hits.iter().all(|c| c.score >= 0.8));
    assert!(pruned > 0);
}
