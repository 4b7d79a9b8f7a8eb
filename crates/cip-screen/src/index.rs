//! Candidate index and screening.
//!
//! Every list name is normalised once. Each non-stop token is posted under several keys:
//! its text, its phonetic key, its consonant skeleton, its abjad skeleton (so Hebrew and
//! Arabic queries find Latin names), its 1-deletion neighbourhood (tokens of 5+ letters:
//! typos), and adjacent token pairs concatenated (missing spaces). Numbers are posted by
//! value, so `3`, `III` and `three` meet. Identifiers are posted by normalised value.
//!
//! A query looks up the same keys, skips keys so common they carry no information
//! (document frequency above `MAX_DF_SHARE` of the names), and accumulates IDF per
//! candidate name; only the best `CANDIDATES` names are scored in full. No full scan.

use crate::error::ScreenError;
use crate::model::{BirthDate, EntryKind, IdentifierKind, ListEntry, ListId, NameKind};
use crate::normalize::{NormalizedName, Origin, TokenClass, normalize_name};
use crate::score::{NameExplanation, compare};
use crate::snapshot::{FNV_OFFSET, fnv1a};
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are already hashes: pass them through (mixed, see `write_u64`).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(bytes, self.0 ^ FNV_OFFSET);
    }
    fn write_u64(&mut self, n: u64) {
        // Keys carry their type tag in the top byte, which the hash table reads for its
        // in-group filter: mix it down so one tag does not make every slot look alike.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n >> 29);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// Version of the screening keys ([`PreparedQuery::screen_keys`], [`Index::lookup_keys`]).
/// Keys derived by one version are only comparable with keys of the same version: bump it
/// whenever normalisation or key derivation changes the keys a name or identifier gets, so
/// that keys stored under the earlier version are known to be stale and re-derived
/// (docs/design/0008-screening-service.md, "Keyed re-screen"). A test pins the keys of fixed
/// names to catch a change made without the bump.
pub const SCREEN_KEYS_VERSION: u32 = 3;

const CANDIDATES: usize = 24;

mod bound;
pub use bound::{BoundScratch, ChangeBound, YearMasks, YearSignature};
const MAX_DF_SHARE: f64 = 0.05;
const MAX_NAME_CHARS: usize = 1000;
const MAX_QUERY_NAMES: usize = 32;

/// Key = FNV-1a of the text, with the tag in the top byte so lookups know the key type.
fn key(tag: u8, s: &str) -> u64 {
    (fnv1a(s.as_bytes(), fnv1a(&[tag], FNV_OFFSET)) & 0x00FF_FFFF_FFFF_FFFF)
        | (u64::from(tag) << 56)
}

/// Document-frequency ceiling per key type, as a share of indexed names: coarse keys
/// (skeletons, deletion variants) stop carrying information sooner than exact tokens.
fn df_share(k: u64) -> f64 {
    match (k >> 56) as u8 {
        b't' | b'n' => MAX_DF_SHARE,
        b'p' => MAX_DF_SHARE / 2.0,
        _ => MAX_DF_SHARE / 8.0,
    }
}

/// Whether screening skips key `k` of an index of `names` names whose posting list has
/// `postings` items: a key that common carries no information (its document frequency is
/// above the ceiling of its type).
fn over_ceiling(k: u64, postings: usize, names: usize) -> bool {
    postings as f64 > (names as f64 * df_share(k)).max(8.0)
}

/// Which side of a lookup a name's keys are for: the index posts them, a query looks them up.
/// The two differ only in the abjad-skeleton keys (below).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Index,
    Query,
}

/// Keys of one token.
///
/// Abjad skeletons align two tokens only when one of them is written in an abjad
/// ([`token_similarity`](crate::score::token_similarity)), so their keys carry the origin: an
/// abjad token is posted under `A`, any other under `a`; an abjad query token looks up both,
/// any other only `A`. Two Latin tokens with the same skeleton (`mr`: Omar, Mario, Mary) then
/// share no key through it: that key could surface a candidate but never align its tokens.
fn token_keys(name: &NormalizedName, i: usize, side: Side, out: &mut Vec<u64>) {
    let Some(t) = name.tokens.get(i) else { return };
    if t.class == TokenClass::Stop {
        return;
    }
    word_keys(t, side, out);
}

/// The keys of one token as a word (`token_keys` without the stop-word rule; the threshold
/// bound posts them for a query's stop words, which align like any token).
fn word_keys(t: &crate::normalize::Token, side: Side, out: &mut Vec<u64>) {
    if let Some(n) = t.number {
        out.push(key(b'n', &n.to_string()));
        return;
    }
    out.push(key(b't', &t.text));
    out.push(key(b'p', &t.phon));
    if t.skel.len() >= 3 {
        out.push(key(b's', &t.skel));
    }
    if t.askel.len() >= 2 {
        let abjad = t.origin == Origin::Abjad;
        match side {
            Side::Index => out.push(key(if abjad { b'A' } else { b'a' }, &t.askel)),
            Side::Query => {
                out.push(key(b'A', &t.askel));
                if abjad {
                    out.push(key(b'a', &t.askel));
                }
            }
        }
    }
    if t.text.len() >= 5 && t.origin != Origin::Abjad {
        out.push(key(b'd', &t.text));
        for del in deletions(&t.text) {
            out.push(key(b'd', &del));
        }
    }
}

fn deletions(s: &str) -> impl Iterator<Item = String> + '_ {
    (0..s.len()).filter_map(move |i| {
        let mut d = String::with_capacity(s.len());
        d.push_str(s.get(..i)?);
        d.push_str(s.get(i + 1..)?);
        Some(d)
    })
}

fn name_keys(name: &NormalizedName, side: Side) -> Vec<Vec<u64>> {
    let mut per_token: Vec<Vec<u64>> = (0..name.tokens.len())
        .map(|i| {
            let mut v = Vec::new();
            token_keys(name, i, side, &mut v);
            v
        })
        .collect();
    // Adjacent pairs concatenated, posted under the first token: "wirra long" ~ "wirralong".
    for i in 0..name.tokens.len().saturating_sub(1) {
        if let (Some(a), Some(b)) = (name.tokens.get(i), name.tokens.get(i + 1)) {
            let k = key(b't', &format!("{}{}", a.text, b.text));
            if let Some(v) = per_token.get_mut(i) {
                v.push(k);
            }
        }
    }
    per_token
}

/// Per-thread accumulation buffers reused across queries (no per-query allocation of a
/// name-sized table).
#[derive(Default)]
struct Scratch {
    /// Per name: accumulated evidence and the last query token that added to it, side by
    /// side so one posting touches one cache line.
    acc: Vec<(f32, u32)>,
    touched: Vec<u32>,
    /// Keys already looked up for an earlier token of a multi-variant query.
    seen: std::collections::HashSet<u64, BuildHasherDefault<IdentityHasher>>,
}

impl Scratch {
    fn reset(&mut self, n: usize) {
        if self.acc.len() < n {
            self.acc.resize(n, (0.0, 0));
        }
        for &t in &self.touched {
            if let Some(a) = self.acc.get_mut(t as usize) {
                *a = (0.0, 0);
            }
        }
        self.touched.clear();
        self.seen.clear();
    }

    #[inline]
    fn add(&mut self, ni: u32, idf: f32, token_no: u32) {
        if let Some((s, l)) = self.acc.get_mut(ni as usize)
            && *l != token_no
        {
            if *s == 0.0 {
                self.touched.push(ni);
            }
            *s += idf;
            *l = token_no;
        }
    }

    fn drain(&mut self) -> Vec<(u32, f32)> {
        self.touched
            .iter()
            .map(|&t| (t, self.acc.get(t as usize).map_or(0.0, |a| a.0)))
            .collect()
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

#[derive(Debug)]
struct IndexedName {
    entry: u32,
    kind: NameKind,
    text: String,
    norm: NormalizedName,
}

/// The candidate index over a set of list entries.
#[derive(Debug)]
pub struct Index {
    entries: Vec<ListEntry>,
    names: Vec<IndexedName>,
    /// Names of entry `e` are `names[entry_start[e]..entry_start[e + 1]]`.
    entry_start: Vec<u32>,
    postings: Map<Vec<u32>>,
    identifiers: Map<Vec<u32>>,
    /// Document frequencies taken from a larger index ([`Index::with_frequencies_of`]):
    /// the posting length there of each of this index's keys, and its name count.
    frequencies: Option<(Map<u32>, usize)>,
}

/// A query as the caller gives it.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct Query {
    /// One or several names of the party (primary name first).
    pub names: Vec<String>,
    pub kind: Option<EntryKind>,
    /// `1960-01-31`, `1960`, `01 Jan 1960`.
    pub birth_date: Option<String>,
    /// Country names or ISO codes.
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub identifiers: Vec<QueryIdentifier>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
pub struct QueryIdentifier {
    pub kind: IdentifierKind,
    pub value: String,
}

/// One normalised query name: index of the raw name, the name, its index keys per token.
type PreparedName = (usize, NormalizedName, Vec<Vec<u64>>);

/// A query normalised once, ready to screen against any index many times.
#[derive(Debug, Clone)]
pub struct PreparedQuery {
    raw_names: Vec<String>,
    kind: Option<EntryKind>,
    /// Normalised names per comparison kind (person / entity / vessel).
    variants: Vec<(EntryKind, Vec<PreparedName>)>,
    birth_date: Option<BirthDate>,
    countries: Vec<String>,
    identifiers: Vec<(IdentifierKind, String, u64)>,
}

fn comparison_kind(k: EntryKind) -> EntryKind {
    match k {
        EntryKind::Person => EntryKind::Person,
        EntryKind::Vessel => EntryKind::Vessel,
        _ => EntryKind::Entity,
    }
}

impl PreparedQuery {
    pub fn new(q: &Query) -> Result<Self, ScreenError> {
        if q.names.len() > MAX_QUERY_NAMES {
            return Err(ScreenError::TooManyNames {
                count: q.names.len(),
                max: MAX_QUERY_NAMES,
            });
        }
        for n in &q.names {
            let len = n.chars().count();
            if len > MAX_NAME_CHARS {
                return Err(ScreenError::NameTooLong {
                    len,
                    max: MAX_NAME_CHARS,
                });
            }
            if n.chars().any(char::is_control) {
                return Err(ScreenError::ControlCharacters);
            }
        }
        let kinds: Vec<EntryKind> = match q.kind {
            Some(k) => vec![comparison_kind(k)],
            None => vec![EntryKind::Person, EntryKind::Entity, EntryKind::Vessel],
        };
        let mut variants = Vec::new();
        let mut any = false;
        for k in kinds {
            let mut names = Vec::new();
            for (i, raw) in q.names.iter().enumerate() {
                for norm in normalize_name(raw, k) {
                    if norm.tokens.is_empty() {
                        continue;
                    }
                    any = true;
                    let keys = name_keys(&norm, Side::Query);
                    names.push((i, norm, keys));
                }
            }
            variants.push((k, names));
        }
        let identifiers: Vec<(IdentifierKind, String, u64)> = q
            .identifiers
            .iter()
            .map(|id| {
                let n = crate::model::normalize_identifier(id.kind, &id.value);
                let h = key(b'i', &n);
                (id.kind, n, h)
            })
            .filter(|(_, n, _)| !n.is_empty())
            .collect();
        if !any && identifiers.is_empty() {
            return Err(ScreenError::EmptyName);
        }
        let birth_date = match &q.birth_date {
            Some(d) if !d.trim().is_empty() => Some(BirthDate::parse_loose(d).ok_or_else(
                || ScreenError::InvalidField {
                    field: "birth_date".into(),
                    detail: format!("`{d}` is not a date or a year"),
                },
            )?),
            _ => None,
        };
        let countries = q
            .countries
            .iter()
            .filter_map(|c| crate::countries::to_alpha2(c).map(str::to_owned))
            .collect();
        Ok(Self {
            raw_names: q.names.clone(),
            kind: q.kind,
            variants,
            birth_date,
            countries,
            identifiers,
        })
    }

    /// Convenience: a name-only query.
    pub fn name(name: &str, kind: Option<EntryKind>) -> Result<Self, ScreenError> {
        Self::new(&Query {
            names: vec![name.to_owned()],
            kind,
            ..Query::default()
        })
    }

    /// Every key that screening this query looks up: the name keys of every token of every
    /// normalised name of every kind variant, and the identifier keys; sorted, without
    /// duplicates. Screening finds candidates only through these keys (postings and
    /// identifiers), so a query none of whose keys is among an index's
    /// [`Index::lookup_keys`] has no candidate in that index, whatever the threshold.
    pub fn screen_keys(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .variants
            .iter()
            .flat_map(|(_, names)| names.iter())
            .flat_map(|(_, _, keys)| keys.iter().flatten().copied())
            .chain(self.identifiers.iter().map(|(_, _, h)| *h))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn names_for(&self, k: EntryKind) -> &[PreparedName] {
        let ck = comparison_kind(k);
        self.variants
            .iter()
            .find(|(vk, _)| *vk == ck)
            .or_else(|| self.variants.first())
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    Agree,
    /// Close but not equal (birth year ±1, same year other day).
    Near,
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentifierEvidence {
    pub kind: IdentifierKind,
    pub query_value: String,
    pub entry_value: Option<String>,
    pub agreement: Agreement,
}

/// Why a candidate scored what it scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The best-aligned pair of names and how their tokens aligned.
    pub name: NameExplanation,
    /// Which kind of list name matched (primary, aka, fka, weak …).
    pub entry_name_kind: NameKind,
    pub name_score: f32,
    pub identifiers: Vec<IdentifierEvidence>,
    pub birth_date: Option<Agreement>,
    /// Query countries that the entry also has (ISO alpha-2).
    pub countries_in_common: Vec<String>,
    pub kind_mismatch: bool,
}

/// One ranked hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub list: ListId,
    pub entry_id: String,
    pub kind: EntryKind,
    pub entry_name: String,
    pub score: f32,
    pub explanation: Explanation,
}

impl Index {
    /// Indexes all entries.
    pub fn build(entries: &[ListEntry]) -> Self {
        Self::build_owned(entries.to_vec())
    }

    /// Indexes only the entries with the given ids (e.g. the changed entries of a diff), so
    /// re-screening customers against a small change is cheap.
    pub fn build_subset(entries: &[ListEntry], entry_ids: &[&str]) -> Self {
        let wanted: std::collections::HashSet<&str> = entry_ids.iter().copied().collect();
        Self::build_owned(
            entries
                .iter()
                .filter(|e| wanted.contains(e.entry_id.as_str()))
                .cloned()
                .collect(),
        )
    }

    pub fn build_owned(entries: Vec<ListEntry>) -> Self {
        let mut names = Vec::new();
        let mut postings: Map<Vec<u32>> = Map::default();
        let mut identifiers: Map<Vec<u32>> = Map::default();
        let mut entry_start: Vec<u32> = Vec::with_capacity(entries.len() + 1);
        for (ei, e) in entries.iter().enumerate() {
            let ei = u32::try_from(ei).unwrap_or(u32::MAX);
            entry_start.push(u32::try_from(names.len()).unwrap_or(u32::MAX));
            for n in &e.names {
                for norm in normalize_name(&n.text, comparison_kind(e.kind)) {
                    if norm.tokens.is_empty() {
                        continue;
                    }
                    let ni = u32::try_from(names.len()).unwrap_or(u32::MAX);
                    let mut keys: Vec<u64> = name_keys(&norm, Side::Index)
                        .into_iter()
                        .flatten()
                        .collect();
                    keys.sort_unstable();
                    keys.dedup();
                    for k in keys {
                        postings.entry(k).or_default().push(ni);
                    }
                    let kind = if norm.former { NameKind::Fka } else { n.kind };
                    names.push(IndexedName {
                        entry: ei,
                        kind,
                        text: n.text.clone(),
                        norm,
                    });
                }
            }
            for id in &e.identifiers {
                let list = identifiers.entry(key(b'i', &id.normalized)).or_default();
                if list.last() != Some(&ei) {
                    list.push(ei);
                }
            }
        }
        entry_start.push(u32::try_from(names.len()).unwrap_or(u32::MAX));
        Self {
            entries,
            names,
            entry_start,
            postings,
            identifiers,
            frequencies: None,
        }
    }

    /// This index (typically [`Index::build_subset`] of a list change) with the document
    /// frequencies of `full` (the index the entries are screened against otherwise): a key
    /// too common there to carry information is skipped here too. A subset of 90 names would
    /// otherwise look up every key, down to two-consonant skeletons that screening against
    /// the whole list skips, and find candidates that screening at creation would not.
    pub fn with_frequencies_of(mut self, full: &Index) -> Self {
        let lengths = self
            .postings
            .iter()
            .map(|(k, post)| (*k, full.postings.get(k).map_or(post.len(), Vec::len) as u32))
            .collect();
        self.frequencies = Some((lengths, full.names.len()));
        self
    }

    /// Whether screening skips key `k` whose posting list here has `postings` items.
    fn skips(&self, k: u64, postings: usize) -> bool {
        match &self.frequencies {
            Some((lengths, names)) => {
                over_ceiling(k, lengths.get(&k).map_or(postings, |n| *n as usize), *names)
            }
            None => over_ceiling(k, postings, self.names.len()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// Approximate heap bytes held by the index (strings, vectors, maps).
    pub fn heap_bytes(&self) -> usize {
        let s = |x: &String| x.capacity();
        let entry_bytes: usize = self
            .entries
            .iter()
            .map(|e| {
                std::mem::size_of::<ListEntry>()
                    + e.names.iter().map(|n| s(&n.text) + 32).sum::<usize>()
                    + e.identifiers
                        .iter()
                        .map(|i| s(&i.value) + s(&i.normalized) + 96)
                        .sum::<usize>()
                    + e.countries.iter().map(|c| s(&c.name) + 64).sum::<usize>()
                    + e.remarks.as_ref().map_or(0, s)
                    + e.programs.iter().map(|p| s(p) + 24).sum::<usize>()
            })
            .sum();
        let name_bytes: usize = self
            .names
            .iter()
            .map(|n| {
                std::mem::size_of::<IndexedName>()
                    + s(&n.text)
                    + s(&n.norm.joined)
                    + n.norm
                        .tokens
                        .iter()
                        .map(|t| s(&t.text) + s(&t.phon) + s(&t.skel) + std::mem::size_of_val(t))
                        .sum::<usize>()
                    + n.norm.legal_forms.capacity() * 8
            })
            .sum();
        let map_bytes = |m: &Map<Vec<u32>>| {
            m.capacity() * (8 + std::mem::size_of::<Vec<u32>>() + 1)
                + m.values().map(|v| v.capacity() * 4).sum::<usize>()
        };
        entry_bytes + name_bytes + map_bytes(&self.postings) + map_bytes(&self.identifiers)
    }

    /// The keys through which a query can find a candidate in this index: name keys whose
    /// postings are not over their frequency ceiling (screening skips the others) and
    /// identifier keys; sorted, without duplicates. A query that shares none of them
    /// ([`PreparedQuery::screen_keys`]) gets no candidate from [`Index::screen`]: used to find
    /// the stored customers a list change can concern without screening every customer.
    pub fn lookup_keys(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .postings
            .iter()
            .filter(|(k, post)| !self.skips(**k, post.len()))
            .map(|(k, _)| *k)
            .chain(self.identifiers.keys().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Screens one prepared query: up to `limit` candidates scoring at least `min_score`,
    /// best first.
    pub fn screen(&self, q: &PreparedQuery, limit: usize, min_score: f32) -> Vec<Candidate> {
        self.screen_counted(q, limit, min_score).0
    }

    /// [`Index::screen`], also counting the work done (for benchmarks and tests that
    /// bound the work per query without timing it).
    pub fn screen_counted(
        &self,
        q: &PreparedQuery,
        limit: usize,
        min_score: f32,
    ) -> (Vec<Candidate>, Work) {
        self.screen_mode(q, limit, min_score, true)
    }

    /// Reference path for tests and benchmarks: [`Index::screen_counted`] with every
    /// candidate entry's names aligned in full (no upper-bound pruning). Its results are
    /// the ones [`Index::screen`] must return.
    pub fn screen_unpruned(
        &self,
        q: &PreparedQuery,
        limit: usize,
        min_score: f32,
    ) -> (Vec<Candidate>, Work) {
        self.screen_mode(q, limit, min_score, false)
    }

    fn screen_mode(
        &self,
        q: &PreparedQuery,
        limit: usize,
        min_score: f32,
        prune: bool,
    ) -> (Vec<Candidate>, Work) {
        let mut work = Work::default();
        let bound = prune.then_some(min_score);
        let out = SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.screen_with(q, limit, min_score, bound, &mut scratch, &mut work)
            }
            Err(_) => self.screen_with(
                q,
                limit,
                min_score,
                bound,
                &mut Scratch::default(),
                &mut work,
            ),
        });
        (out, work)
    }

    fn screen_with(
        &self,
        q: &PreparedQuery,
        limit: usize,
        min_score: f32,
        prune_below: Option<f32>,
        scratch: &mut Scratch,
        work: &mut Work,
    ) -> Vec<Candidate> {
        let n_names = self.names.len().max(1) as f32;
        scratch.reset(self.names.len());
        let mut token_no: u32 = 0;
        let multi = q.variants.len() > 1;
        for (_, names) in &q.variants {
            for (_, norm, keys) in names {
                for (ti, tkeys) in keys.iter().enumerate() {
                    token_no += 1;
                    let weight = norm.tokens.get(ti).map_or(1.0, |t| t.weight());
                    for k in tkeys {
                        // The same key from another kind variant adds nothing new.
                        if multi && scratch.seen.contains(k) {
                            continue;
                        }
                        work.keys += 1;
                        let Some(post) = self.postings.get(k) else {
                            continue;
                        };
                        if self.skips(*k, post.len()) {
                            continue;
                        }
                        work.postings += post.len();
                        let idf = (n_names / post.len() as f32).ln().max(0.1) * weight;
                        for &ni in post {
                            scratch.add(ni, idf, token_no);
                        }
                    }
                    if multi {
                        scratch.seen.extend(tkeys.iter().copied());
                    }
                }
            }
        }
        let mut cands: Vec<(u32, f32)> = scratch.drain();
        work.names_touched += cands.len();
        // Names that share only a sliver of the best candidate's evidence are noise.
        let best = cands.iter().map(|c| c.1).fold(0.0f32, f32::max);
        cands.retain(|c| c.1 >= best * 0.3);
        if cands.len() > CANDIDATES {
            cands.select_nth_unstable_by(CANDIDATES, |a, b| b.1.total_cmp(&a.1));
            cands.truncate(CANDIDATES);
        }
        // Entries to score, with the names that surfaced them (an entry with 50 aliases is
        // compared on the few that share evidence with the query), plus identifier hits
        // (all their names).
        let mut by_entry: Vec<(u32, Option<u32>)> = cands
            .iter()
            .filter_map(|(ni, _)| self.names.get(*ni as usize).map(|n| (n.entry, Some(*ni))))
            .collect();
        for (_, _, h) in &q.identifiers {
            if let Some(list) = self.identifiers.get(h) {
                by_entry.extend(list.iter().take(CANDIDATES).map(|e| (*e, None)));
            }
        }
        by_entry.sort_unstable();
        by_entry.dedup();
        self.warm(by_entry.iter().filter_map(|(_, n)| *n));
        let mut out: Vec<Scored> = Vec::new();
        let mut only: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < by_entry.len() {
            let ei = by_entry.get(i).map_or(0, |x| x.0);
            let mut j = i;
            only.clear();
            let mut all = false;
            while let Some((e, n)) = by_entry.get(j).copied() {
                if e != ei {
                    break;
                }
                match n {
                    Some(n) => only.push(n),
                    None => all = true,
                }
                j += 1;
            }
            i = j;
            // `by_entry` is sorted, so `only` is in name order, as a walk over the entry's
            // names would visit them (ties between names go to the first).
            let names = if all { None } else { Some(only.as_slice()) };
            if let Some(c) = self.score_entry(q, ei, names, prune_below, work)
                && c.score >= min_score
            {
                out.push(c);
            }
        }
        let id = |c: &Scored| {
            self.entries
                .get(c.entry as usize)
                .map_or("", |e| e.entry_id.as_str())
        };
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| id(a).cmp(id(b))));
        out.truncate(limit);
        // Explanations (a second, explaining alignment) only for what is returned.
        out.into_iter()
            .filter_map(|c| self.candidate(q, c))
            .collect()
    }

    /// Screens many prepared queries on `threads` threads (std scoped threads; no runtime;
    /// `0` means one per available core). Threads take blocks of queries from a shared
    /// counter rather than fixed halves, so on a machine shared with other work a thread
    /// that is descheduled does not hold up the others. Results are in query order and
    /// equal to [`Index::screen`] on each query.
    pub fn screen_batch(
        &self,
        queries: &[PreparedQuery],
        limit: usize,
        min_score: f32,
        threads: usize,
    ) -> Vec<Vec<Candidate>> {
        const BLOCK: usize = 64;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        if threads == 1 || queries.len() <= BLOCK {
            return queries
                .iter()
                .map(|q| self.screen(q, limit, min_score))
                .collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let blocks: Vec<(usize, Vec<Vec<Candidate>>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads.min(queries.len().div_ceil(BLOCK)))
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let start = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
                            let Some(block) =
                                queries.get(start..(start + BLOCK).min(queries.len()))
                            else {
                                break;
                            };
                            if block.is_empty() {
                                break;
                            }
                            done.push((
                                start,
                                block
                                    .iter()
                                    .map(|q| self.screen(q, limit, min_score))
                                    .collect::<Vec<_>>(),
                            ));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut blocks = blocks;
        blocks.sort_unstable_by_key(|b| b.0);
        let out: Vec<Vec<Candidate>> = blocks.into_iter().flat_map(|b| b.1).collect();
        if out.len() == queries.len() {
            out
        } else {
            // A worker panicked (it cannot, short of a bug): screen in this thread instead
            // of returning results out of step with the queries.
            queries
                .iter()
                .map(|q| self.screen(q, limit, min_score))
                .collect()
        }
    }

    /// Reads the tokens of the names about to be aligned, all of them before any alignment
    /// starts. The list side's tokens are scattered over the heap and cold: read one after
    /// another inside the alignments, each miss waits for memory in turn; read here, the
    /// loads do not depend on each other and the CPU keeps many in flight at once.
    fn warm(&self, names: impl Iterator<Item = u32>) {
        let mut x = 0u64;
        for ni in names {
            if let Some(n) = self.names.get(ni as usize) {
                for t in &n.norm.tokens {
                    x ^= t.sig.text.hash
                        ^ t.sig.askel.hash
                        ^ u64::from(t.number.unwrap_or(0))
                        ^ t.text.len() as u64
                        ^ u64::from(t.text.as_bytes().first().copied().unwrap_or(0));
                }
            }
        }
        std::hint::black_box(x);
    }

    /// Index range of the names of entry `ei`.
    fn entry_name_range(&self, ei: u32) -> std::ops::Range<u32> {
        let start = self.entry_start.get(ei as usize).copied().unwrap_or(0);
        let end = self
            .entry_start
            .get(ei as usize + 1)
            .copied()
            .unwrap_or(start);
        start..end
    }

    /// Scores entry `ei` (on `only_names` of its names, else all of them) without building
    /// an explanation.
    ///
    /// With `prune_below`, skips alignments that cannot change the result, on two upper
    /// bounds (a name comparison scores at most 1, times the list name's factor):
    /// - the entry: if even a perfect name could not lift its final score (identifiers,
    ///   birth date, kind applied; `Evidence::apply` is non-decreasing) to `prune_below`,
    ///   it is not returned whatever its names score, so none is aligned (`None`);
    /// - a name pair: the best pair so far is replaced only by a strictly higher score, so
    ///   a pair whose bound (its name's factor) is not above the best is skipped.
    fn score_entry(
        &self,
        q: &PreparedQuery,
        ei: u32,
        only_names: Option<&[u32]>,
        prune_below: Option<f32>,
        work: &mut Work,
    ) -> Option<Scored> {
        let e = self.entries.get(ei as usize)?;
        work.entries_scored += 1;
        let qnames = q.names_for(e.kind);
        let ck = comparison_kind(e.kind);
        let range = self.entry_name_range(ei);
        let all: Vec<u32>;
        let names: &[u32] = match only_names {
            Some(only) => only,
            None => {
                all = range.collect();
                &all
            }
        };
        let evidence = Evidence::of(q, e);
        let pairs = names.len() * qnames.len();
        if let Some(floor) = prune_below
            && pairs > 0
        {
            let top = names
                .iter()
                .filter_map(|&ni| self.names.get(ni as usize))
                .map(|n| name_factor(n.kind))
                .fold(0.0f32, f32::max);
            if evidence.apply(top) < floor {
                work.name_pairs_pruned += pairs;
                return None;
            }
        }
        let mut best: Option<(f32, u32, usize)> = None;
        for &ni in names {
            let Some(n) = self.names.get(ni as usize) else {
                continue;
            };
            let factor = name_factor(n.kind);
            if prune_below.is_some()
                && let Some((b, _, _)) = best
                && factor <= b
            {
                work.name_pairs_pruned += qnames.len();
                continue;
            }
            for (qi, (_, qn, _)) in qnames.iter().enumerate() {
                work.name_pairs_scored += 1;
                let (s, _) = compare(qn, &n.norm, ck, false);
                let s = s * factor;
                if best.is_none_or(|(b, _, _)| s > b) {
                    best = Some((s, ni, qi));
                }
            }
        }
        let (name_score, name, qi) = match best {
            Some((s, n, qi)) => (s, Some(n), qi),
            None => (0.0, None, 0),
        };
        Some(Scored {
            entry: ei,
            score: evidence.apply(name_score),
            name_score,
            name,
            qi,
            evidence,
        })
    }

    /// The returned form of a scored entry, with its explanation.
    fn candidate(&self, q: &PreparedQuery, c: Scored) -> Option<Candidate> {
        let e = self.entries.get(c.entry as usize)?;
        let name = c.name.and_then(|ni| self.names.get(ni as usize));
        let qnames = q.names_for(e.kind);
        let name_expl = match (name, qnames.get(c.qi)) {
            (Some(n), Some((raw_i, qn, _))) => {
                let (_, ex) = compare(qn, &n.norm, comparison_kind(e.kind), true);
                let mut ex = ex.unwrap_or_default();
                ex.query_name = q.raw_names.get(*raw_i).cloned().unwrap_or_default();
                ex.entry_name = n.text.clone();
                ex
            }
            _ => NameExplanation::default(),
        };
        let ev = c.evidence;
        Some(Candidate {
            list: e.list.clone(),
            entry_id: e.entry_id.clone(),
            kind: e.kind,
            entry_name: name.map_or_else(|| e.primary_name().to_owned(), |n| n.text.clone()),
            score: c.score,
            explanation: Explanation {
                name: name_expl,
                entry_name_kind: name.map_or(NameKind::Primary, |n| n.kind),
                name_score: c.name_score,
                identifiers: ev.identifiers,
                birth_date: ev.birth_date,
                countries_in_common: ev.countries_in_common,
                kind_mismatch: ev.kind_mismatch,
            },
        })
    }
}

/// A list name's weight in the entry score: weak aliases and former names count a little
/// less than a primary name or a strong alias.
fn name_factor(kind: NameKind) -> f32 {
    match kind {
        NameKind::Weak => 0.9,
        NameKind::Fka => 0.97,
        _ => 1.0,
    }
}

/// Work done by one screening, counted (not timed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Work {
    /// Index keys looked up.
    pub keys: usize,
    /// Posting-list items accumulated (keys under their frequency ceiling).
    pub postings: usize,
    /// Distinct list names that shared some key with the query.
    pub names_touched: usize,
    /// Entries scored (at most the candidate cap, plus identifier hits).
    pub entries_scored: usize,
    /// (query name, list name) pairs aligned in full.
    pub name_pairs_scored: usize,
    /// Pairs skipped because their upper bound could not change the result.
    pub name_pairs_pruned: usize,
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, o: Self) {
        self.keys += o.keys;
        self.postings += o.postings;
        self.names_touched += o.names_touched;
        self.entries_scored += o.entries_scored;
        self.name_pairs_scored += o.name_pairs_scored;
        self.name_pairs_pruned += o.name_pairs_pruned;
    }
}

/// An entry scored but not yet explained.
struct Scored {
    entry: u32,
    /// Final score (name score with the evidence applied), in [0, 1].
    score: f32,
    name_score: f32,
    /// Best-aligned list name (index into `Index::names`) and query name (index into the
    /// query's names for the entry's kind).
    name: Option<u32>,
    qi: usize,
    evidence: Evidence,
}

/// What the query's identifiers, birth date, countries and kind say about one entry:
/// independent of the names, so computed once per entry.
struct Evidence {
    identifiers: Vec<IdentifierEvidence>,
    id_match: bool,
    id_conflict: bool,
    birth_date: Option<Agreement>,
    countries_in_common: Vec<String>,
    kind_mismatch: bool,
}

impl Evidence {
    fn of(q: &PreparedQuery, e: &ListEntry) -> Self {
        let mut ids = Vec::new();
        let mut id_match = false;
        let mut id_conflict = false;
        for (kind, value, _) in &q.identifiers {
            if let Some(hit) = e.identifiers.iter().find(|i| &i.normalized == value) {
                id_match = true;
                ids.push(IdentifierEvidence {
                    kind: *kind,
                    query_value: value.clone(),
                    entry_value: Some(hit.value.clone()),
                    agreement: Agreement::Agree,
                });
            } else if let Some(other) = e.identifiers.iter().find(|i| i.kind == *kind)
                && matches!(
                    kind,
                    IdentifierKind::Passport
                        | IdentifierKind::NationalId
                        | IdentifierKind::Imo
                        | IdentifierKind::Tax
                )
            {
                id_conflict = true;
                ids.push(IdentifierEvidence {
                    kind: *kind,
                    query_value: value.clone(),
                    entry_value: Some(other.value.clone()),
                    agreement: Agreement::Conflict,
                });
            }
        }
        let birth_date = match (&q.birth_date, e.birth_dates.is_empty()) {
            (Some(qd), false) => Some(date_agreement(qd, &e.birth_dates)),
            _ => None,
        };
        // Countries: agreement is mild evidence; disagreement is not evidence (people move).
        let countries_in_common: Vec<String> = q
            .countries
            .iter()
            .filter(|c| {
                e.countries
                    .iter()
                    .any(|ec| ec.code.as_deref() == Some(c.as_str()))
            })
            .cloned()
            .collect();
        let kind_mismatch = q.kind.is_some_and(|k| {
            k != EntryKind::Unknown
                && e.kind != EntryKind::Unknown
                && comparison_kind(k) != comparison_kind(e.kind)
        });
        Self {
            identifiers: ids,
            id_match,
            id_conflict,
            birth_date,
            countries_in_common,
            kind_mismatch,
        }
    }

    /// The final score from a name score. Non-decreasing in `name_score` (every step is a
    /// max, an addition, a product with a positive constant or a clamp), so it also turns
    /// an upper bound of the name score into an upper bound of the final score.
    fn apply(&self, name_score: f32) -> f32 {
        let mut score = name_score;
        if self.id_match {
            score = score.max(0.85 + 0.15 * score);
        } else if self.id_conflict {
            score *= 0.75;
        }
        match self.birth_date {
            Some(Agreement::Agree) => score = (score + 0.03).min(1.0),
            Some(Agreement::Near) => score *= 0.95,
            Some(Agreement::Conflict) if !self.id_match => score *= 0.7,
            _ => {}
        }
        if !self.countries_in_common.is_empty() {
            score = (score + 0.02).min(1.0);
        }
        if self.kind_mismatch && !self.id_match {
            score *= 0.8;
        }
        score.clamp(0.0, 1.0)
    }
}

fn date_agreement(q: &BirthDate, entry: &[BirthDate]) -> Agreement {
    let mut best = Agreement::Conflict;
    for d in entry {
        let a = match (q, d) {
            (BirthDate::Full { .. }, BirthDate::Full { .. }) if q == d => Agreement::Agree,
            (
                BirthDate::Full { year, month, .. } | BirthDate::Month { year, month },
                BirthDate::Full {
                    year: y2,
                    month: m2,
                    ..
                }
                | BirthDate::Month {
                    year: y2,
                    month: m2,
                },
            ) if year == y2 && month == m2 => Agreement::Agree,
            _ => {
                let (a0, a1) = q.years();
                let (b0, b1) = d.years();
                let exact_both =
                    matches!(q, BirthDate::Full { .. }) && matches!(d, BirthDate::Full { .. });
                if a0 <= b1 && b0 <= a1 && !exact_both {
                    Agreement::Agree
                } else if a0 <= b1.saturating_add(1) && b0 <= a1.saturating_add(1) {
                    Agreement::Near
                } else {
                    Agreement::Conflict
                }
            }
        };
        best = match (best, a) {
            (Agreement::Agree, _) | (_, Agreement::Agree) => Agreement::Agree,
            (Agreement::Near, _) | (_, Agreement::Near) => Agreement::Near,
            _ => Agreement::Conflict,
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, kind: EntryKind, name: &str) -> ListEntry {
        let mut e = ListEntry::new(ListId::new("t"), id, kind);
        e.push_name(name, NameKind::Primary);
        e
    }

    #[test]
    fn finds_and_explains() {
        let entries = vec![
            entry("1", EntryKind::Person, "Mohammed Ali HASSAN"),
            entry("2", EntryKind::Entity, "Acme Trading LLC"),
            entry("3", EntryKind::Vessel, "Sea Star 1"),
        ];
        let idx = Index::build(&entries);
        let q = PreparedQuery::name("Hassan Muhammad Ali", Some(EntryKind::Person)).unwrap();
        let hits = idx.screen(&q, 5, 0.5);
        assert_eq!(hits[0].entry_id, "1");
        assert!(hits[0].score > 0.85);
        assert!(!hits[0].explanation.name.aligned.is_empty());
        let q = PreparedQuery::name("Sea Star 2", Some(EntryKind::Vessel)).unwrap();
        assert!(idx.screen(&q, 5, 0.8).is_empty());
        assert_eq!(
            PreparedQuery::name("  ..  ", None).unwrap_err().code(),
            "CIP-SCREEN-EMPTY-NAME"
        );
        assert_eq!(
            PreparedQuery::name(&"a".repeat(10_000), None)
                .unwrap_err()
                .code(),
            "CIP-SCREEN-NAME-TOO-LONG"
        );
        assert_eq!(
            PreparedQuery::name("a\u{0}b", None).unwrap_err().code(),
            "CIP-SCREEN-CONTROL-CHARACTERS"
        );
    }
}
