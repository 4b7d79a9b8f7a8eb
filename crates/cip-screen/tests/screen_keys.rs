#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The screening keys (`PreparedQuery::screen_keys`, `Index::lookup_keys`) are what the
//! keyed re-screen after a list change relies on: a stored customer whose keys share nothing
//! with the keys of the changed entries' index is not read at all. That is only sound if
//! "no shared key" implies "screening against that index finds no candidate", at any
//! threshold. Proved here exhaustively over the real OFAC SDN 2021 list (1 % subsets, as a
//! daily change, and smaller ones; with the subset's own document frequencies and with the
//! whole list's, as the re-screen uses) with synthetic and list-derived customers, and by a
//! property test over arbitrary names.

mod common;

use common::sdn2021;

use cip_screen::model::BirthDate;
use cip_screen::{
    BoundScratch, EntryKind, Identifier, IdentifierKind, Index, ListEntry, ListId, NameKind,
    PreparedQuery, Query, QueryIdentifier, SCREEN_KEYS_VERSION, YearMasks, YearSignature,
};
use proptest::prelude::*;

/// Whether two sorted key lists share a key.
fn share(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

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

/// A typo, a dropped letter or reordered words, as a customer's name differs from a listed one.
fn perturb(name: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = name.split_whitespace().map(str::to_owned).collect();
    match rng.below(4) {
        0 if words.len() > 1 => words.reverse(),
        1 | 2 => {
            let i = rng.below(words.len());
            if let Some(w) = words.get_mut(i)
                && w.len() > 4
                && w.is_ascii()
            {
                let p = 1 + rng.below(w.len() - 2);
                if rng.below(2) == 0 {
                    w.remove(p);
                } else {
                    let c = (b'a' + rng.below(26) as u8) as char;
                    w.replace_range(p..=p, &c.to_string());
                }
            }
        }
        _ => {}
    }
    words.join(" ")
}

const FIRST: [&str; 16] = [
    "Anna", "Boris", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ines", "Jamal",
    "Katarina", "Luis", "Mei", "Nadia", "Omar", "Priya",
];
const LAST: [&str; 16] = [
    "Abernathy",
    "Brandvold",
    "Castellanos",
    "Dobrev",
    "Eriksen",
    "Fontaine",
    "Gulbrandsen",
    "Hakimi",
    "Ivanova",
    "Jankowski",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okonkwo",
    "Petrenko",
];

/// Customers as the re-screen sees them: the benchmark's synthetic individuals (every name
/// of `cip bench rescreen`), listed names as customers carry them (exact, with typos,
/// reordered; persons, entities, vessels, no kind), with birth dates, countries and
/// identifiers (some of them a listed entry's), and multi-name queries.
fn customers(entries: &[ListEntry]) -> Vec<Query> {
    let mut out = Vec::new();
    for i in 0..4096 {
        out.push(Query {
            names: vec![format!(
                "{} {} {}",
                FIRST[i % 16],
                LAST[(i / 16) % 16],
                LAST[(i / 256) % 16]
            )],
            kind: Some(EntryKind::Person),
            birth_date: Some(format!("{}", 1950 + i % 50)),
            countries: vec!["DE".into()],
            identifiers: vec![QueryIdentifier {
                kind: IdentifierKind::Email,
                value: format!("c{i}@example.com"),
            }],
        });
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let kinds = [
        None,
        Some(EntryKind::Person),
        Some(EntryKind::Entity),
        Some(EntryKind::Vessel),
    ];
    for i in 0..3000 {
        let e = &entries[rng.below(entries.len())];
        let n = &e.names[rng.below(e.names.len())].text;
        let mut q = Query {
            names: vec![if i % 2 == 0 {
                n.clone()
            } else {
                perturb(n, &mut rng)
            }],
            kind: if i % 5 == 0 {
                kinds[i % 4]
            } else {
                Some(e.kind)
            },
            ..Query::default()
        };
        if i % 7 == 0
            && let Some(id) = e.identifiers.first()
        {
            q.identifiers.push(QueryIdentifier {
                kind: id.kind,
                value: id.value.clone(),
            });
        }
        if i % 9 == 0 {
            let other = &entries[rng.below(entries.len())];
            q.names.push(other.primary_name().to_owned());
        }
        // Birth dates agreeing, near (one year off), conflicting, unrelated or absent, for
        // the bound's birth-date factor.
        let listed = e.birth_dates.first().map(|d| d.years().0);
        q.birth_date = match (i % 5, listed) {
            (0, _) => None,
            (1, Some(y)) => Some(y.to_string()),
            (2, Some(y)) => Some((y + 1).to_string()),
            (3, Some(y)) => Some(format!("{} to {}", y + 2, y + 4)),
            _ => Some((1930 + rng.below(70)).to_string()),
        };
        out.push(q);
    }
    // An identifier alone (no usable name), and common tokens.
    out.push(Query {
        names: vec!["..".into()],
        identifiers: vec![QueryIdentifier {
            kind: IdentifierKind::Passport,
            value: "X0000000".into(),
        }],
        ..Query::default()
    });
    for n in [
        "Mohammed Ali",
        "Ali",
        "General Trading LLC",
        "Ivan Ivanov",
        "Sea Star 1",
    ] {
        out.push(Query {
            names: vec![n.into()],
            ..Query::default()
        });
    }
    out
}

/// Changed-entry sets: four 1 % changes (every 100th entry, as `cip bench rescreen`), a 0.1 %
/// change and a handful of random entries.
fn changes(entries: &[ListEntry]) -> Vec<Vec<&str>> {
    let ids: Vec<&str> = entries.iter().map(|e| e.entry_id.as_str()).collect();
    let mut out: Vec<Vec<&str>> = (0..4)
        .map(|o| ids.iter().skip(o * 25).step_by(100).copied().collect())
        .collect();
    out.push(ids.iter().skip(3).step_by(1000).copied().collect());
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    out.push((0..12).map(|_| ids[rng.below(ids.len())]).collect());
    out
}

#[test]
fn no_shared_key_means_no_candidate_on_the_sdn_list() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let entries = sdn2021(&dir);
    let queries: Vec<(PreparedQuery, Vec<u64>)> = customers(&entries)
        .iter()
        // A name the engine refuses (nothing left after normalisation) is not screened.
        .filter_map(|q| PreparedQuery::new(q).ok())
        .map(|pq| {
            let keys = pq.screen_keys();
            (pq, keys)
        })
        .collect();
    let full = Index::build(&entries);
    let (mut disjoint, mut sharing, mut with_candidates) = (0usize, 0usize, 0usize);
    let mut bench_sharing = 0usize;
    // Hits at the default threshold of the subset with its own frequencies and with the
    // whole list's (what the re-screen uses): how much the frequencies change.
    let (mut hits_own, mut hits_full, mut hits_differ) = (0usize, 0usize, 0usize);
    for ids in changes(&entries) {
        let own = Index::build_subset(&entries, &ids);
        let listwide = Index::build_subset(&entries, &ids).with_frequencies_of(&full);
        for (pq, _) in &queries {
            let hits = |i: &Index| -> Vec<(String, String)> {
                i.screen(pq, 10, 0.8)
                    .into_iter()
                    .map(|c| (c.entry_id, c.explanation.name.query_name))
                    .collect()
            };
            let (a, b) = (hits(&own), hits(&listwide));
            hits_own += a.len();
            hits_full += b.len();
            if a != b {
                hits_differ += 1;
                eprintln!("differs: {a:?} / {b:?}");
            }
        }
    }
    eprintln!(
        "hits at 0.8: {hits_own} with the subset's own frequencies, {hits_full} with the \
         list's; {hits_differ} queries differ"
    );
    for (variant, ids) in changes(&entries)
        .into_iter()
        .flat_map(|ids| [(false, ids.clone()), (true, ids)])
    {
        let index = Index::build_subset(&entries, &ids);
        let index = if variant {
            index.with_frequencies_of(&full)
        } else {
            index
        };
        let keys = index.lookup_keys();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for (qi, (pq, qkeys)) in queries.iter().enumerate() {
            // Threshold 0: every candidate the index finds is returned.
            let found = index.screen(pq, 10, 0.0);
            if share(qkeys, &keys) {
                sharing += 1;
                if qi < 4096 {
                    bench_sharing += 1;
                }
            } else {
                disjoint += 1;
                assert!(
                    found.is_empty(),
                    "query {qi} shares no key with the change of {} entries but found {:?}",
                    ids.len(),
                    found.iter().map(|c| &c.entry_id).collect::<Vec<_>>()
                );
            }
            with_candidates += usize::from(!found.is_empty());
        }
    }
    eprintln!(
        "pairs: {disjoint} with no shared key, {sharing} sharing a key ({bench_sharing} of the \
         benchmark's customers), {with_candidates} with candidates"
    );
    // The property is not proved on an empty class.
    assert!(disjoint > 1000 && sharing > 1000 && with_candidates > 100);
}

/// The keys of a few fixed names and identifiers. Stored customer keys are only comparable
/// with a list change's keys of the same derivation: if this fails, normalisation or key
/// derivation changed, so bump `SCREEN_KEYS_VERSION` (stored keys are then re-derived) and
/// update the pinned value.
#[test]
fn screen_keys_are_pinned_to_their_version() {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, kind) in [
        ("Mohammed Ali HASSAN", Some(EntryKind::Person)),
        ("Acme Trading LLC", Some(EntryKind::Entity)),
        ("Sea Star 3", Some(EntryKind::Vessel)),
        ("Иван Петрович Сидоров", None),
        ("محمد علي", Some(EntryKind::Person)),
        ("Zelda Quixoteplain", Some(EntryKind::Person)),
    ] {
        let q = Query {
            names: vec![name.into()],
            kind,
            identifiers: vec![QueryIdentifier {
                kind: IdentifierKind::Passport,
                value: "AB 123-456".into(),
            }],
            ..Query::default()
        };
        // What a customer stores: screening and alignment keys.
        for k in stored(&PreparedQuery::new(&q).unwrap()) {
            h ^= k;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    assert_eq!(
        (SCREEN_KEYS_VERSION, h),
        (3, 17_660_370_632_060_273_835),
        "screening keys changed: bump SCREEN_KEYS_VERSION and pin the new value"
    );
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,9}",
        "[A-Z][a-z]{2,8}",
        "[а-я]{2,7}",
        "[ء-ي]{2,6}",
        "[0-9]{1,3}",
        Just("LLC".to_string()),
        Just("al".to_string()),
        Just("III".to_string()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..4).prop_map(|w| w.join(" "))
}

fn kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        Just(EntryKind::Person),
        Just(EntryKind::Entity),
        Just(EntryKind::Vessel),
        Just(EntryKind::Unknown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over arbitrary small lists and queries (names in several scripts, numbers, legal
    /// forms, identifiers), a query that shares no key with an index has no candidate in it.
    #[test]
    fn no_shared_key_means_no_candidate(
        list in prop::collection::vec((name(), prop::option::of(name()), kind(), prop::option::of("[A-Z]{1,2}[0-9]{3,6}")), 1..12),
        queries in prop::collection::vec((prop::collection::vec(name(), 1..3), prop::option::of(kind()), prop::option::of("[A-Z]{1,2}[0-9]{3,6}")), 1..12),
    ) {
        let entries: Vec<ListEntry> = list
            .iter()
            .enumerate()
            .map(|(i, (n, alias, k, id))| {
                let mut e = ListEntry::new(ListId::new("p"), i.to_string(), *k);
                e.push_name(n, NameKind::Primary);
                if let Some(a) = alias {
                    e.push_name(a, NameKind::Aka);
                }
                if let Some(id) = id {
                    e.push_identifier(Identifier::new(IdentifierKind::Passport, id));
                }
                e
            })
            .collect();
        let index = Index::build(&entries);
        let keys = index.lookup_keys();
        for (names, kind, id) in &queries {
            let q = Query {
                names: names.clone(),
                kind: *kind,
                identifiers: id
                    .iter()
                    .map(|v| QueryIdentifier { kind: IdentifierKind::Passport, value: v.clone() })
                    .collect(),
                ..Query::default()
            };
            let Ok(pq) = PreparedQuery::new(&q) else { continue };
            if !share(&pq.screen_keys(), &keys) {
                prop_assert!(index.screen(&pq, 10, 0.0).is_empty(), "{q:?}");
            }
        }
    }
}

/// A listed name as a customer may write it, by the alignment paths that share no screening
/// key: an initial, two words joined or one split, a plural, two typos in a long word, an
/// abbreviation, a typo in a short word, a dropped or an added word.
fn harder(name: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = name.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return name.to_owned();
    }
    for _ in 0..1 + rng.below(2) {
        let i = rng.below(words.len());
        let w = words[i].clone();
        let ascii = w.is_ascii() && w.len() >= 2;
        match rng.below(10) {
            0 if ascii => words[i] = w[..1].to_owned(),
            1 if ascii => words[i] = format!("{}.", &w[..2.min(w.len())]),
            2 if i + 1 < words.len() => {
                let next = words.remove(i + 1);
                words[i] = format!("{w}{next}");
            }
            3 if ascii && w.len() >= 6 => {
                let p = w.len() / 2;
                words[i] = w[..p].to_owned();
                words.insert(i + 1, w[p..].to_owned());
            }
            4 => words[i] = format!("{w}s"),
            5 if ascii && w.len() >= 9 => {
                let mut b = w.into_bytes();
                b[2] = b'q';
                let l = b.len();
                b[l - 2] = b'z';
                words[i] = String::from_utf8(b).unwrap();
            }
            6 if ascii && w.len() <= 4 => {
                let mut b = w.into_bytes();
                let p = rng.below(b.len());
                b[p] = b'x';
                words[i] = String::from_utf8(b).unwrap();
            }
            7 if words.len() > 1 => {
                words.remove(i);
            }
            8 => words.insert(i, ["al", "bin", "de", "Co", "the"][rng.below(5)].to_owned()),
            _ if ascii && w.len() >= 4 => {
                let mut b = w.into_bytes();
                b.swap(1, 2);
                words[i] = String::from_utf8(b).unwrap();
            }
            _ => {}
        }
    }
    words.join(" ")
}

/// The keys a stored customer posts for `q`, as `cip-server`'s `screen_keys::of_queries`.
/// A year's bucket of its own (years 64 apart aside).
fn exact_bucket(y: u16) -> u8 {
    (y % 64) as u8
}

/// Years in buckets by a hash, colliding as the server's blinded buckets do.
fn hashed_bucket(y: u16) -> u8 {
    (u64::from(y).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u8
}

fn stored(pq: &PreparedQuery) -> Vec<u64> {
    let mut k = pq.screen_keys();
    k.extend(pq.alignment_keys());
    k.sort_unstable();
    k.dedup();
    k
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The threshold bound (`Index::change_bound`, `ChangeBound::may_reach`) lets the keyed
/// re-screen skip a customer sharing keys with a change when no candidate of the change can
/// reach the threshold. Sound only if every customer that screening gives a candidate at or
/// above a threshold is one the bound keeps: checked over the SDN 1 % changes (with the
/// list's frequencies, as the re-screen builds them) for the customers above and, for each
/// change, its own names written the hard ways (`harder`), at several thresholds.
#[test]
fn the_threshold_bound_keeps_every_customer_with_a_hit() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let entries = sdn2021(&dir);
    let full = Index::build(&entries);
    let base: Vec<Query> = customers(&entries);
    let (mut pairs, mut sharing, mut kept, mut hits) = (0usize, 0usize, 0usize, 0usize);
    let mut kept_dated = 0usize;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut scratch = BoundScratch::default();
    for ids in changes(&entries) {
        let index = Index::build_subset(&entries, &ids).with_frequencies_of(&full);
        let bounds: Vec<(f32, cip_screen::ChangeBound)> = [0.5f32, 0.7, 0.8, 0.9]
            .into_iter()
            .map(|t| (t, index.change_bound(t)))
            .collect();
        for (_, b) in &bounds {
            assert!(
                b.keys().windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
        }
        let mut queries = base.clone();
        for e in entries
            .iter()
            .filter(|e| ids.contains(&e.entry_id.as_str()))
        {
            for n in &e.names {
                for _ in 0..3 {
                    queries.push(Query {
                        names: vec![harder(&n.text, &mut rng)],
                        kind: Some(e.kind),
                        birth_date: Some("1970".into()),
                        countries: e.countries.iter().filter_map(|c| c.code.clone()).collect(),
                        ..Query::default()
                    });
                }
            }
        }
        // The birth-date factor, with both kinds of bucket (every year its own, and years
        // sharing buckets as the server's blinded ones do).
        let masks: Vec<[YearMasks; 2]> = bounds
            .iter()
            .map(|(_, b)| [b.year_masks(exact_bucket), b.year_masks(hashed_bucket)])
            .collect();
        for q in &queries {
            let Ok(pq) = PreparedQuery::new(q) else {
                continue;
            };
            pairs += 1;
            let keys = stored(&pq);
            let signatures = [
                YearSignature::of([&pq], exact_bucket),
                YearSignature::of([&pq], hashed_bucket),
            ];
            if bounds
                .iter()
                .all(|(_, b)| intersect(&keys, b.keys()).is_empty())
            {
                continue;
            }
            sharing += 1;
            let best = index.screen(&pq, 1, 0.0).first().map_or(0.0, |c| c.score);
            for ((t, bound), masks) in bounds.iter().zip(&masks) {
                let t = *t;
                let shared = intersect(&keys, bound.keys());
                let may = bound.may_reach(&shared);
                let dated = masks
                    .iter()
                    .zip(signatures)
                    .map(|(m, sig)| bound.may_reach_with(&shared, Some((m, sig)), &mut scratch));
                let dated: Vec<bool> = dated.collect();
                kept += usize::from(may && t == 0.8);
                kept_dated += usize::from(dated.first() == Some(&true) && t == 0.8);
                assert!(
                    may || dated.iter().all(|d| !d),
                    "birth dates only lower the bound"
                );
                if best >= t {
                    hits += usize::from(t == 0.8);
                    assert!(
                        may && dated.iter().all(|d| *d),
                        "{q:?} scores {best} against the change but the bound at {t} skips it \
                         (without dates kept: {may}; with exact and hashed year buckets: {dated:?})"
                    );
                }
            }
        }
    }
    eprintln!(
        "{pairs} customer × change pairs, {sharing} sharing a key, {kept} kept by the bound at \
         0.8 ({kept_dated} with birth dates), {hits} with a hit at 0.8"
    );
    // Not proved on an empty class, and the bound must prune something to be worth it.
    assert!(hits > 500, "{hits} hits");
    assert!(kept < sharing, "the bound skipped nobody");
    assert!(kept_dated < kept, "the birth-date factor skipped nobody");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over arbitrary small lists (names in several scripts, numbers, legal forms) and
    /// queries written the hard ways from the listed names or made up: when the threshold
    /// bound skips a query, screening finds no candidate at that threshold.
    #[test]
    fn the_threshold_bound_never_skips_a_hit(
        list in prop::collection::vec(
            (name(), prop::option::of(name()), kind(), prop::option::of(1940u16..1990)),
            1..10,
        ),
        made_up in prop::collection::vec((name(), prop::option::of(kind())), 0..4),
        seed in 1u64..u64::MAX,
    ) {
        let entries: Vec<ListEntry> = list
            .iter()
            .enumerate()
            .map(|(i, (n, alias, k, born))| {
                let mut e = ListEntry::new(ListId::new("p"), i.to_string(), *k);
                e.push_name(n, NameKind::Primary);
                if let Some(a) = alias {
                    e.push_name(a, NameKind::Aka);
                }
                if let Some(y) = born {
                    e.birth_dates.push(BirthDate::Year { year: *y });
                    if i % 2 == 0 {
                        e.birth_dates.push(BirthDate::Range { from: y + 5, to: y + 7 });
                    }
                }
                e
            })
            .collect();
        let index = Index::build(&entries);
        let mut rng = Rng(seed);
        let mut queries: Vec<Query> = made_up
            .iter()
            .map(|(n, k)| Query { names: vec![n.clone()], kind: *k, ..Query::default() })
            .collect();
        for (n, alias, k, born) in &list {
            for source in std::iter::once(n).chain(alias.iter()) {
                for _ in 0..3 {
                    // Born in the listed year, one or two off, in a span, or not given.
                    let y = born.unwrap_or(1960);
                    let birth_date = match rng.below(6) {
                        0 => None,
                        1 => Some(y.to_string()),
                        2 => Some((y + 1).to_string()),
                        3 => Some((y + 2).to_string()),
                        4 => Some(format!("{} to {}", y - 4, y - 2)),
                        _ => Some(format!("{}-03-{:02}", y + 6, 1 + rng.below(28))),
                    };
                    queries.push(Query {
                        names: vec![harder(source, &mut rng)],
                        kind: if rng.below(3) == 0 { None } else { Some(*k) },
                        birth_date,
                        ..Query::default()
                    });
                }
            }
        }
        let mut scratch = BoundScratch::default();
        for t in [0.5f32, 0.8] {
            let bound = index.change_bound(t);
            let masks = [bound.year_masks(exact_bucket), bound.year_masks(hashed_bucket)];
            for q in &queries {
                let Ok(pq) = PreparedQuery::new(q) else { continue };
                let shared = intersect(&stored(&pq), bound.keys());
                let dated = masks.iter().zip([
                    YearSignature::of([&pq], exact_bucket),
                    YearSignature::of([&pq], hashed_bucket),
                ]);
                let dated: Vec<bool> = dated
                    .map(|(m, sig)| bound.may_reach_with(&shared, Some((m, sig)), &mut scratch))
                    .collect();
                if !bound.may_reach(&shared) || dated.iter().any(|d| !d) {
                    let found = index.screen(&pq, 10, t);
                    prop_assert!(
                        found.is_empty(),
                        "{q:?} at {t}: {:?} (dated {dated:?})",
                        found.first().map(|c| c.score)
                    );
                }
            }
        }
    }
}
