//! The threshold bound of a list change (docs/design/0008, "The threshold bound: alignment
//! keys"): which stored customers a change can give a candidate at or above the threshold,
//! from the keys they share with it alone, without reading them.
//!
//! [`Index::screen`] finds a candidate name only through a key the query shares with it; the
//! name is then scored by [`crate::score::compare`], whose token alignment also pairs tokens
//! that share no screening key (a typo of a short word, an initial, an abbreviation, a
//! compound, a plural). A name score is at most `0.75·ce + 0.25` (`compare` scores
//! `0.75·min(cq, ce) + 0.25·max(cq, ce)`; `ce` the share of the entry name's weight the
//! query's tokens align with), times the list name's factor; `Evidence::apply` adds at most
//! 0.03 (birth date) and 0.02 (country), multiplies by 0.8 on a kind mismatch, and only an
//! identifier match lifts a score further.
//!
//! So a customer needs, for some changed name, enough of that name's weight alignable. To
//! know which tokens a customer can align with without reading it, the stored key set holds,
//! beside the screening keys, **alignment keys** ([`PreparedQuery::alignment_keys`]) for the
//! paths of `token_similarity` and of the compound pass the screening keys do not cover: a
//! 4-letter token whole, joins of 2 to 4 adjacent tokens (text and phonetic key), the whole
//! name joined (spacing-only matches), one-edit keys of the skeletons of other scripts, and
//! flags for query tokens that align by a rule (initials, abbreviations, known
//! abbreviations' expansions, non-ASCII text), the query's kind and one-token names. The
//! entry side ([`Index::change_bound`]) maps each key it looks up to the tokens of the name
//! it makes alignable and how well; a token no shared key reaches keeps the best similarity
//! it can have with a token it shares no key with (`base`). The rest is arithmetic in
//! [`ChangeBound::may_reach`], proven against [`Index::screen`] in `tests/screen_keys.rs`:
//! **a new alignment path needs its key here and its similarity in `base`.**

use std::collections::HashMap;

use super::{Index, PreparedQuery, Side, key, token_keys};
use crate::model::EntryKind;
use crate::normalize::{NormalizedName, Origin, Token, TokenClass, phonetic_key_into};

/// Joins of up to this many adjacent tokens align with one token (`compound_pass`).
const MAX_JOIN: usize = 4;
/// Names with more tokens than this are not bounded (always read): token masks are 64 bits.
const MAX_BOUNDED_TOKENS: usize = 64;
/// Rounding margin of the bound.
const EPSILON: f32 = 1e-4;

/// Whether a token's typos all go through deletion keys: Latin, plain ASCII (byte deletions
/// are letter deletions), not a number.
fn plain(t: &Token) -> bool {
    t.origin == Origin::Latin && t.text.is_ascii() && t.number.is_none()
}

/// The deletion key screening does not post (`token_keys` posts them from 5 letters): a
/// 4-letter token whole, which a 5-letter token's deletions meet.
fn four_letter_key(t: &Token) -> Option<u64> {
    (plain(t) && t.text.len() == 4).then(|| key(b'd', &t.text))
}

/// Tags of the one-edit keys of a skeleton ([`edit_keys`]): the string and its deletions,
/// one letter replaced by `*`, two adjacent letters put in order.
const SKELETON_TAGS: [u8; 3] = [b'S', b'W', b'T'];
/// The same for an abjad consonant skeleton.
const ABJAD_TAGS: [u8; 3] = [b'B', b'V', b'U'];

/// Keys two strings of 3 letters or more (ASCII) share when they are one edit apart
/// (insertion, deletion, substitution, adjacent transposition): the string whole and, from 4
/// letters, its one-letter deletions (the shorter of two lengths meets the longer's
/// deletion); each letter replaced by a wildcard (a substitution); each pair of adjacent
/// letters sorted (a transposition). No key is shorter than 3 letters, so none is common the
/// way a two-letter deletion of a 3-letter skeleton would be.
fn edit_keys([whole, wild, swap]: [u8; 3], s: &str, out: &mut Vec<u64>) {
    if s.len() < 3 || !s.is_ascii() {
        return;
    }
    out.push(key(whole, s));
    if s.len() >= 4 {
        for del in super::deletions(s) {
            out.push(key(whole, &del));
        }
    }
    let b = s.as_bytes();
    let mut v = b.to_vec();
    for i in 0..b.len() {
        if let Some(x) = v.get_mut(i) {
            *x = b'*';
        }
        out.push(key(wild, std::str::from_utf8(&v).unwrap_or_default()));
        v.copy_from_slice(b);
        if let (Some(&x), Some(&y)) = (b.get(i), b.get(i + 1))
            && x != y
        {
            if let Some(pair) = v.get_mut(i..i + 2) {
                pair.copy_from_slice(&[x.min(y), x.max(y)]);
            }
            out.push(key(swap, std::str::from_utf8(&v).unwrap_or_default()));
            v.copy_from_slice(b);
        }
    }
}

/// The keys `token_keys` posts for a word, for a query's stop word (screening posts none for
/// it, but it aligns like any token).
fn stop_keys(t: &Token, out: &mut Vec<u64>) {
    if t.number.is_none() {
        super::word_keys(t, Side::Query, out);
    }
}

/// Text and phonetic key of each join of 2..=4 adjacent tokens, with the range joined.
fn joins(name: &NormalizedName, mut f: impl FnMut(u64, usize, usize)) {
    let mut joined = String::new();
    let mut phon = Vec::new();
    for i in 0..name.tokens.len() {
        joined.clear();
        for (j, t) in name.tokens.iter().enumerate().skip(i).take(MAX_JOIN) {
            joined.push_str(&t.text);
            if j > i {
                f(key(b't', &joined), i, j);
                phon_key(&joined, &mut phon, |k| f(k, i, j));
            }
        }
    }
}

fn phon_key(text: &str, buf: &mut Vec<u8>, mut f: impl FnMut(u64)) {
    phonetic_key_into(text.as_bytes(), buf);
    if let Ok(p) = std::str::from_utf8(buf) {
        f(key(b'p', p));
    }
}

/// The key of a whole name joined (`NormalizedName::joined`).
fn joined_key(name: &NormalizedName) -> Option<u64> {
    (!name.joined.is_empty()).then(|| key(b'j', &name.joined))
}

fn first_letter_key(tag: u8, t: &Token) -> Option<u64> {
    let c = *t.text.as_bytes().first()?;
    Some(key(tag, &(c as char).to_string()))
}

/// The kind of a query subject, for the kind-mismatch factor: `person`, `entity`, `vessel`,
/// or `any` (no kind, or unknown).
fn kind_key(kind: Option<EntryKind>) -> u64 {
    let k = match kind {
        None | Some(EntryKind::Unknown) => "any",
        Some(k) => match super::comparison_kind(k) {
            EntryKind::Person => "person",
            EntryKind::Vessel => "vessel",
            _ => "entity",
        },
    };
    key(b'k', k)
}

/// A query name of one token.
fn one_token_key() -> u64 {
    key(b'h', "1")
}

/// The flag of a query with a token whose text is not ASCII (no deletion key covers its
/// typos).
fn script_flag() -> u64 {
    key(b'f', "script")
}

impl PreparedQuery {
    /// The alignment keys of this query (module docs): stored with its screening keys, they
    /// let a list change bound the query's best score without reading it. Sorted, no
    /// duplicates.
    pub fn alignment_keys(&self) -> Vec<u64> {
        let mut out = vec![kind_key(self.kind)];
        for (_, names) in &self.variants {
            for (_, norm, _) in names {
                if norm.tokens.len() == 1 {
                    out.push(one_token_key());
                }
                for t in &norm.tokens {
                    out.extend(four_letter_key(t));
                    if t.class == TokenClass::Stop {
                        stop_keys(t, &mut out);
                    }
                    if t.class == TokenClass::Initial {
                        out.extend(first_letter_key(b'i', t));
                    }
                    if t.abbrev && t.text.len() >= 2 {
                        out.extend(first_letter_key(b'b', t));
                    }
                    if let Some(x) = t.expansion {
                        out.push(key(b'x', x));
                    }
                    match t.origin {
                        // One edit on the skeleton across alphabets (0.8), on the consonant
                        // skeleton against an abjad (0.7).
                        Origin::Translit | Origin::Syllabic => {
                            edit_keys(SKELETON_TAGS, &t.skel, &mut out);
                        }
                        Origin::Abjad => edit_keys(ABJAD_TAGS, &t.askel, &mut out),
                        Origin::Latin => {}
                    }
                    if !t.text.is_ascii() || !t.skel.is_ascii() || !t.askel.is_ascii() {
                        out.push(script_flag());
                    }
                    // A token the entry joins its tokens to match (`compound_pass`).
                    if t.text.len() >= 4 {
                        out.push(key(b't', &t.text));
                        out.push(key(b'p', &t.phon));
                    }
                }
                joins(norm, |k, _, _| out.push(k));
                out.extend(joined_key(norm));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// What a shared key tells about one name of the change.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// A screening key of the name (not skipped): through it, [`Index::screen`] can make the
    /// name a candidate. Only such names are bounded; the others are never scored.
    Candidate { name: u32 },
    /// The tokens of `mask` may align with similarity up to `sim`.
    Tokens { name: u32, mask: u64, sim: f32 },
    /// The whole name may match (spacing only, or a query token of another script).
    Name { name: u32 },
    /// A query subject of a kind the entry's does not mismatch (no ×0.8).
    KindOk { name: u32 },
    /// A query name with one token: a 2-token name's unaligned token may weigh half.
    Halves { name: u32 },
    /// An identifier of the entry: the identifier match lifts any name score.
    Identifier,
}

/// One changed name: its tokens' weights and the similarity each can reach with a query
/// token it shares no key with.
#[derive(Debug, Clone)]
struct NameBound {
    weights: Vec<f32>,
    base: Vec<f32>,
    /// Persons: an unaligned token of the longer name weighs half — always from 3 tokens,
    /// at 2 only against a query name of one token ([`Reach::Halves`]).
    halves: Halving,
    /// The list name's weight (`name_factor`: weak aliases, former names).
    factor: f32,
    /// What the entry's evidence can add: 0.03 with a birth date, 0.02 with a country.
    lift: f32,
    /// What a country in common adds (0.02 when the entry has a country): all the evidence
    /// adds when a birth date conflicts.
    country_lift: f32,
    /// The years a query's birth date must touch not to conflict with the entry's
    /// (`date_agreement`: years more than one apart conflict): each entry date's years
    /// widened by one on both sides. Empty when the entry has no birth date.
    windows: Vec<(u16, u16)>,
    /// Whether the entry's kind mismatches a query of another known kind (×0.8 unless a
    /// subject of a matching or unknown kind shares a key: [`Reach::KindOk`]).
    kind_checked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halving {
    Never,
    WithOneTokenQuery,
    Always,
}

/// The threshold bound of a change: the keys to look up and what each says.
#[derive(Debug, Clone)]
pub struct ChangeBound {
    keys: Vec<u64>,
    reach: HashMap<u64, Vec<Reach>>,
    names: Vec<NameBound>,
    /// The threshold the bound was built for: keys that cannot change the answer at it are
    /// left out.
    threshold: f32,
}

/// A name's state while the shared keys of one query are read.
#[derive(Debug)]
struct Touched {
    candidate: bool,
    /// The query's birth date conflicts with every birth date of the entry (×0.7).
    conflict: bool,
    whole: bool,
    kind_ok: bool,
    one_token_query: bool,
    u: Vec<f32>,
}

impl Touched {
    fn reset(&mut self, nb: &NameBound) {
        self.candidate = false;
        self.conflict = false;
        self.whole = false;
        self.kind_ok = false;
        self.one_token_query = false;
        self.u.clear();
        self.u.extend_from_slice(&nb.base);
    }

    fn new(nb: &NameBound) -> Self {
        Touched {
            candidate: false,
            conflict: false,
            whole: false,
            kind_ok: false,
            one_token_query: false,
            u: nb.base.clone(),
        }
    }

    fn apply(&mut self, r: Reach) {
        match r {
            Reach::Candidate { .. } => self.candidate = true,
            Reach::Name { .. } => self.whole = true,
            Reach::KindOk { .. } => self.kind_ok = true,
            Reach::Halves { .. } => self.one_token_query = true,
            Reach::Tokens { mask, sim, .. } => {
                for (i, x) in self.u.iter_mut().enumerate() {
                    if i < 64 && mask & (1 << i) != 0 && *x < sim {
                        *x = sim;
                    }
                }
            }
            Reach::Identifier => {}
        }
    }
}

impl ChangeBound {
    /// The keys to look up among the stored customers' keys: sorted, no duplicates.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Whether a query that shares exactly `shared` of [`ChangeBound::keys`] (screening and
    /// alignment keys) can get a candidate scoring the bound's threshold or more from the
    /// change. `false` is a proof that it cannot; `true` is not a promise that it does.
    pub fn may_reach(&self, shared: &[u64]) -> bool {
        self.may_reach_with(shared, None, &mut BoundScratch::default())
    }

    /// The birth-date windows of the changed names as [`YearSignature`] masks, with the
    /// bucket function the stored signatures were made with.
    pub fn year_masks(&self, bucket: impl Fn(u16) -> u8) -> YearMasks {
        YearMasks(
            self.names
                .iter()
                .map(|nb| {
                    nb.windows
                        .iter()
                        .flat_map(|&(a, b)| a..=b)
                        .fold(0u64, |m, y| m | 1u64 << (bucket(y) % 64))
                })
                .collect(),
        )
    }

    /// [`ChangeBound::may_reach`] with buffers reused from one query to the next and, when
    /// known, the query's [`YearSignature`] with the change's masks (from the same bucket
    /// function): a name whose entry has birth dates none of the query's can touch is
    /// bounded with the ×0.7 of a conflicting birth date.
    pub fn may_reach_with(
        &self,
        shared: &[u64],
        born: Option<(&YearMasks, YearSignature)>,
        scratch: &mut BoundScratch,
    ) -> bool {
        let BoundScratch { slots, used } = scratch;
        *used = 0;
        // (name, slot) of the names the shared keys reach; few per query, searched linearly.
        let mut index: Vec<(u32, usize)> = Vec::new();
        for k in shared {
            for r in self.reach.get(k).into_iter().flatten() {
                let name = match *r {
                    Reach::Identifier => return true,
                    Reach::Candidate { name }
                    | Reach::Tokens { name, .. }
                    | Reach::Name { name }
                    | Reach::KindOk { name }
                    | Reach::Halves { name } => name,
                };
                let Some(nb) = self.names.get(name as usize) else {
                    // Not a name of this change: never bounded away.
                    return true;
                };
                let slot = match index.iter().find(|(n, _)| *n == name) {
                    Some((_, slot)) => *slot,
                    None => {
                        let slot = *used;
                        *used += 1;
                        match slots.get_mut(slot) {
                            Some(t) => t.reset(nb),
                            None => slots.push(Touched::new(nb)),
                        }
                        if let (Some(t), Some((masks, sig))) = (slots.get_mut(slot), born) {
                            t.conflict = !nb.windows.is_empty()
                                && sig.0 != 0
                                && masks.0.get(name as usize).is_some_and(|m| m & sig.0 == 0);
                        }
                        index.push((name, slot));
                        slot
                    }
                };
                if let Some(t) = slots.get_mut(slot) {
                    t.apply(*r);
                }
            }
        }
        index.iter().any(|(name, slot)| {
            slots.get(*slot).is_some_and(|t| {
                t.candidate
                    && self
                        .names
                        .get(*name as usize)
                        .is_none_or(|nb| nb.score_bound(t) + EPSILON >= self.threshold)
            })
        })
    }
}

/// What a customer's stored keys tell of the birth years of its subjects, for the ×0.7 of a
/// conflicting birth date: one bit per year, in 64 buckets chosen by a function the caller
/// keeps (the server blinds the year, so the signature does not store it); 0 when unknown —
/// a subject without a birth date (its score is never lowered by one) or with a span of
/// years too wide to list. Buckets shared by several years only ever make a conflict look
/// like an agreement, never the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct YearSignature(pub u64);

/// Widest span of years a birth date may have to be listed in a [`YearSignature`].
const MAX_SIGNED_SPAN: u16 = 10;

impl YearSignature {
    /// The signature of the subjects `queries` (a customer and its beneficial owners):
    /// every year of every subject's birth date, or unknown (0) if any subject has none.
    pub fn of<'a>(
        queries: impl IntoIterator<Item = &'a PreparedQuery>,
        bucket: impl Fn(u16) -> u8,
    ) -> Self {
        let mut bits = 0u64;
        for q in queries {
            match q.birth_date.as_ref().map(crate::model::BirthDate::years) {
                Some((a, b)) if b >= a && b - a <= MAX_SIGNED_SPAN => {
                    for y in a..=b {
                        bits |= 1u64 << (bucket(y) % 64);
                    }
                }
                _ => return YearSignature(0),
            }
        }
        YearSignature(bits)
    }
}

/// The birth-date windows of a change's names as [`YearSignature`] bits
/// ([`ChangeBound::year_masks`]).
#[derive(Debug, Clone, Default)]
pub struct YearMasks(Vec<u64>);

/// Buffers of [`ChangeBound::may_reach_with`], reused across queries.
#[derive(Debug, Default)]
pub struct BoundScratch {
    slots: Vec<Touched>,
    used: usize,
}

impl NameBound {
    /// The best final score of the name with what the shared keys say (`t`): the best name
    /// score, through the evidence (`Evidence::apply`, non-decreasing in the name score).
    fn score_bound(&self, t: &Touched) -> f32 {
        let name = if t.whole || self.weights.len() > MAX_BOUNDED_TOKENS {
            // The whole name may match, or too many tokens to bound: any name score.
            1.0
        } else {
            self.name_bound(t)
        };
        let score = if t.conflict {
            (name * 0.7 + self.country_lift).min(1.0)
        } else {
            (name + self.lift).min(1.0)
        };
        if self.kind_checked && !t.kind_ok {
            score * 0.8
        } else {
            score
        }
    }

    /// The best name score of the name with what the shared keys say (`t`).
    fn name_bound(&self, t: &Touched) -> f32 {
        let u = &t.u;
        let halves = match self.halves {
            Halving::Always => true,
            Halving::WithOneTokenQuery => t.one_token_query,
            Halving::Never => false,
        };
        let h = if halves { 0.5 } else { 1.0 };
        // The coverage `Σ_S w·u / (Σ_S w + h·Σ_rest w)` over the aligned set S is largest for
        // S the tokens with the highest u (Dinkelbach: a token is in the best S iff its u
        // is above a level), so only those prefixes are tried.
        let total: f32 = self.weights.iter().sum();
        let mut order: Vec<(f32, f32)> = self
            .weights
            .iter()
            .zip(u)
            .filter(|(_, u)| **u > 0.0)
            .map(|(w, u)| (*u, *w))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut num, mut aligned) = (0.0f32, 0.0f32);
        let mut best = 0.0f32;
        for (ui, w) in order {
            num += w * ui;
            aligned += w;
            let den = aligned + h * (total - aligned);
            if den > 0.0 {
                best = best.max(num / den);
            }
        }
        (0.75 * best.min(1.0) + 0.25) * self.factor
    }
}

/// The similarity a token can reach with a query token that shares key `k` with it (and
/// perhaps other keys, each read on its own): by the key's tag, the path of
/// `token_similarity` that key stands for. Equal text 1.0, equal phonetic key 0.95, equal
/// skeleton 0.9, equal abjad skeleton 0.85, a shared deletion variant one or two edits (0.8
/// from 7 letters, 0.7 from 5, 0.5 at 4, 0.3 for a plural; the query token has at most one
/// letter more), a number 1.0.
fn key_sim(k: u64, t: &Token) -> f32 {
    match (k >> 56) as u8 {
        b'p' => 0.95,
        b's' => 0.9,
        b'a' | b'A' => 0.85,
        b'd' => match t.text.len() + 1 {
            l if l >= 7 => 0.8,
            l if l >= 5 => 0.7,
            l if l >= 4 => 0.5,
            _ => 0.3,
        },
        _ => 1.0,
    }
}

/// The similarity a token can reach with a query token it shares no screening or alignment
/// key with and no flag reaches (`score::token_similarity`, path by path).
fn base(t: &Token, skipped: bool) -> f32 {
    if skipped || t.class == TokenClass::Stop || t.origin != Origin::Latin || !t.text.is_ascii() {
        // A skipped key is not looked up; a stop word posts no key; other scripts align by
        // skeleton edits the query's keys do not cover.
        return 1.0;
    }
    if t.number.is_some() {
        // Numbers align only with the equal number, whose key is shared.
        return 0.0;
    }
    let len = t.text.len();
    let mut u: f32 = 0.0;
    if t.class == TokenClass::Initial {
        u = u.max(0.8);
    }
    if t.expansion.is_some() || (t.abbrev && len >= 2) {
        u = u.max(0.9);
    }
    // Typos no key covers: one edit between tokens of at most 4 letters (0.5: neither posts
    // its deletions), two edits from 9 letters (below).
    if (3..=4).contains(&len) {
        u = u.max(0.5);
    }
    if len >= 7 {
        u = u.max(0.6);
    }
    if len >= 2 {
        // A plural (`s`, `es`) of either.
        u = u.max(0.3);
    }
    u
}

impl Index {
    /// The threshold bound of this index (the changed entries of a list change, with the
    /// whole list's frequencies): see the module documentation.
    pub fn change_bound(&self, threshold: f32) -> ChangeBound {
        let mut reach: HashMap<u64, Vec<Reach>> = HashMap::new();
        let mut names = Vec::with_capacity(self.names.len());
        for (ni, n) in self.names.iter().enumerate() {
            let name = ni as u32;
            let mut local: Vec<(u64, Reach)> = Vec::new();
            let mut screening: Vec<u64> = Vec::new();
            let mut push = |k: u64, r: Reach| local.push((k, r));
            let tokens = &n.norm.tokens;
            let bit = |i: usize| if i < 64 { 1u64 << i } else { 0 };
            let kind = self
                .entries
                .get(n.entry as usize)
                .map_or(EntryKind::Unknown, |e| e.kind);
            let entry = self.entries.get(n.entry as usize);
            let person = super::comparison_kind(kind) == EntryKind::Person;
            let mut nb = NameBound {
                weights: tokens.iter().map(Token::weight).collect(),
                base: Vec::with_capacity(tokens.len()),
                halves: match tokens.len() {
                    _ if !person => Halving::Never,
                    0 | 1 => Halving::Never,
                    2 => Halving::WithOneTokenQuery,
                    _ => Halving::Always,
                },
                factor: super::name_factor(n.kind),
                lift: entry.map_or(0.05, |e| {
                    let dob = if e.birth_dates.is_empty() { 0.0 } else { 0.03 };
                    let country = if e.countries.is_empty() { 0.0 } else { 0.02 };
                    dob + country
                }),
                country_lift: entry
                    .map_or(0.02, |e| if e.countries.is_empty() { 0.0 } else { 0.02 }),
                windows: entry.map_or_else(Vec::new, |e| {
                    e.birth_dates
                        .iter()
                        .map(|d| {
                            let (a, b) = d.years();
                            (a.saturating_sub(1), b.saturating_add(1))
                        })
                        .collect()
                }),
                kind_checked: kind != EntryKind::Unknown,
            };
            if nb.halves == Halving::WithOneTokenQuery {
                push(one_token_key(), Reach::Halves { name });
            }
            if nb.kind_checked {
                // Person customers are most of a provider's: the person kind is not looked
                // up for a person entry (its names are bounded without the factor).
                if person {
                    nb.kind_checked = false;
                } else {
                    let own = match super::comparison_kind(kind) {
                        EntryKind::Vessel => Some(EntryKind::Vessel),
                        _ => Some(EntryKind::Entity),
                    };
                    push(kind_key(own), Reach::KindOk { name });
                    push(kind_key(None), Reach::KindOk { name });
                }
            }
            // The name's screening keys as the index posts them (tokens and adjacent pairs):
            // sharing one that is not skipped is how the name becomes a candidate.
            for (i, tkeys) in super::name_keys(&n.norm, Side::Index).iter().enumerate() {
                let mut skipped = false;
                for &k in tkeys {
                    let post = self.postings.get(&k).map_or(0, Vec::len);
                    if self.skips(k, post) {
                        skipped = true;
                    } else {
                        push(k, Reach::Candidate { name });
                        screening.push(k);
                    }
                }
                if let Some(t) = tokens.get(i) {
                    nb.base.push(base(t, skipped));
                }
            }
            let mut keys = Vec::new();
            for (i, t) in tokens.iter().enumerate() {
                if nb.base.get(i).is_none_or(|u| *u >= 1.0) {
                    // Nothing a shared key could add.
                    continue;
                }
                let tokens_reach = |sim: f32| Reach::Tokens {
                    name,
                    mask: bit(i),
                    sim,
                };
                keys.clear();
                token_keys(&n.norm, i, Side::Index, &mut keys);
                keys.extend(four_letter_key(t));
                // A query join equal to this token (`compound_pass`).
                if t.text.len() >= 4 {
                    keys.push(key(b't', &t.text));
                    keys.push(key(b'p', &t.phon));
                }
                for &k in &keys {
                    push(k, tokens_reach(key_sim(k, t)));
                }
                // Query tokens that align by a rule: initials, abbreviations, expansions,
                // skeleton edits across scripts.
                if let Some(k) = first_letter_key(b'i', t) {
                    push(k, tokens_reach(0.8));
                }
                if let Some(k) = first_letter_key(b'b', t) {
                    push(k, tokens_reach(0.85));
                }
                push(key(b'x', &t.text), tokens_reach(0.9));
                keys.clear();
                edit_keys(SKELETON_TAGS, &t.skel, &mut keys);
                for &k in &keys {
                    push(k, tokens_reach(0.8));
                }
                keys.clear();
                edit_keys(ABJAD_TAGS, &t.askel, &mut keys);
                for &k in &keys {
                    push(k, tokens_reach(0.7));
                }
            }
            // This name's joins equal to a query token.
            joins(&n.norm, |k, a, b| {
                let mask = (a..=b).fold(0u64, |m, i| m | bit(i));
                push(
                    k,
                    Reach::Tokens {
                        name,
                        mask,
                        sim: 1.0,
                    },
                );
            });
            if let Some(k) = joined_key(&n.norm) {
                push(k, Reach::Name { name });
            }
            push(script_flag(), Reach::Name { name });
            // Keys that cannot change the answer are not looked up: every key of a name any
            // candidate reaches the threshold with (a candidate shares a screening key, which
            // aligns a token fully), and a token reach no higher than the token's base.
            // A candidate shares at least one of the screening keys: if sharing any single one
            // (with everything that key says) reaches the threshold, every candidate does.
            screening.sort_unstable();
            screening.dedup();
            let always = screening.iter().all(|k| {
                let mut t = Touched::new(&nb);
                for (_, r) in local.iter().filter(|(lk, _)| lk == k) {
                    t.apply(*r);
                }
                // A query whose birth date conflicts is bounded lower: every candidate
                // must reach the threshold even then.
                t.conflict = !nb.windows.is_empty();
                nb.score_bound(&t) + EPSILON >= threshold
            });
            for (k, r) in local {
                let needed = match r {
                    Reach::Candidate { .. } => true,
                    _ if always => screening.binary_search(&k).is_ok(),
                    Reach::Tokens { mask, sim, .. } => nb
                        .base
                        .iter()
                        .enumerate()
                        .any(|(i, b)| i < 64 && mask & (1 << i) != 0 && sim > *b),
                    _ => true,
                };
                if needed {
                    reach.entry(k).or_default().push(r);
                }
            }
            names.push(nb);
        }
        for k in self.identifiers.keys() {
            reach.entry(*k).or_default().push(Reach::Identifier);
        }
        let mut keys: Vec<u64> = reach.keys().copied().collect();
        keys.sort_unstable();
        ChangeBound {
            keys,
            reach,
            names,
            threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ListEntry, ListId, NameKind, Query};

    fn stored(pq: &PreparedQuery) -> Vec<u64> {
        let mut k = pq.screen_keys();
        k.extend(pq.alignment_keys());
        k.sort_unstable();
        k.dedup();
        k
    }

    /// The keys of `pq`'s stored set the bound looks up.
    fn shared(pq: &PreparedQuery, bound: &ChangeBound) -> Vec<u64> {
        stored(pq)
            .into_iter()
            .filter(|k| bound.keys().binary_search(k).is_ok())
            .collect()
    }

    /// A candidate's screening key may align its token below 1 (here a shared phonetic key,
    /// 0.95): a name every candidate was assumed to reach the threshold with kept only its
    /// screening keys, and lost the kind key that lifts the ×0.8 of a kind mismatch. Found by
    /// the SDN proof in `tests/screen_keys.rs`.
    #[test]
    fn a_phonetic_candidate_of_the_same_kind_is_kept() {
        let mut e = ListEntry::new(ListId::new("x"), "1", EntryKind::Entity);
        e.push_name("LKCK", NameKind::Primary);
        let index = Index::build(&[e]);
        let bound = index.change_bound(0.8);
        let q = Query {
            names: vec!["LCKK".into()],
            kind: Some(EntryKind::Entity),
            ..Query::default()
        };
        let pq = PreparedQuery::new(&q).unwrap();
        let score = index.screen(&pq, 1, 0.0).first().map_or(0.0, |c| c.score);
        assert!(score >= 0.8, "{score}");
        assert!(bound.may_reach(&shared(&pq, &bound)));
    }

    /// The bound prunes: a person sharing only a first name with a three-token listed name
    /// whose other tokens are short cannot reach 0.8, and is skipped; the listed name
    /// itself is kept.
    #[test]
    fn a_shared_first_name_alone_is_skipped() {
        let mut e = ListEntry::new(ListId::new("x"), "1", EntryKind::Person);
        e.push_name("Omar Ali HASSAN", NameKind::Primary);
        let index = Index::build(&[e]);
        let bound = index.change_bound(0.8);
        let keys_and_score = |name: &str| {
            let q = Query {
                names: vec![name.into()],
                kind: Some(EntryKind::Person),
                ..Query::default()
            };
            let pq = PreparedQuery::new(&q).unwrap();
            (
                shared(&pq, &bound),
                index.screen(&pq, 1, 0.0).first().map_or(0.0, |c| c.score),
            )
        };
        let (s, score) = keys_and_score("Omar Hudson");
        assert!(!s.is_empty(), "shares the first name");
        assert!(score < 0.8 && !bound.may_reach(&s), "{score}");
        let (s, score) = keys_and_score("Omar Ali Hasan");
        assert!(score >= 0.8 && bound.may_reach(&s), "{score}");
    }

    /// A customer's signature lists the years of every subject, and is unknown when any
    /// subject has no birth date or too wide a span: a conflict is claimed only when every
    /// subject's birth date conflicts.
    #[test]
    fn a_signature_is_unknown_unless_every_subject_is_dated() {
        let q = |d: Option<&str>| {
            PreparedQuery::new(&Query {
                names: vec!["Omar Hassan".into()],
                birth_date: d.map(str::to_owned),
                ..Query::default()
            })
            .unwrap()
        };
        let b = |y: u16| (y % 64) as u8;
        let (a, c) = (q(Some("1970-05-01")), q(Some("1980 to 1981")));
        assert_eq!(YearSignature::of([&a], b), YearSignature(1 << (1970 % 64)));
        assert_eq!(
            YearSignature::of([&a, &c], b),
            YearSignature(1 << (1970 % 64) | 1 << (1980 % 64) | 1 << (1981 % 64))
        );
        assert_eq!(YearSignature::of([&a, &q(None)], b), YearSignature(0));
        assert_eq!(
            YearSignature::of([&q(Some("1900 to 1960"))], b),
            YearSignature(0)
        );
    }

    /// The ×0.7 of a conflicting birth date bounds away a listed person's own name written
    /// by a customer born a decade apart, and keeps it one year apart (near) or undated.
    #[test]
    fn a_conflicting_birth_date_is_bounded_away() {
        let mut e = ListEntry::new(ListId::new("x"), "1", EntryKind::Person);
        e.push_name("Omar Ali HASSAN", NameKind::Primary);
        e.birth_dates
            .push(crate::model::BirthDate::Year { year: 1970 });
        let index = Index::build(&[e]);
        let bound = index.change_bound(0.8);
        let bucket = |y: u16| (y % 64) as u8;
        let masks = bound.year_masks(bucket);
        let kept = |d: Option<&str>| {
            let q = Query {
                names: vec!["Omar Ali Hassan".into()],
                kind: Some(EntryKind::Person),
                birth_date: d.map(str::to_owned),
                ..Query::default()
            };
            let pq = PreparedQuery::new(&q).unwrap();
            let s = shared(&pq, &bound);
            let score = index.screen(&pq, 1, 0.0).first().map_or(0.0, |c| c.score);
            let sig = YearSignature::of([&pq], bucket);
            let may = bound.may_reach_with(&s, Some((&masks, sig)), &mut BoundScratch::default());
            (may, score)
        };
        let (may, score) = kept(Some("1980"));
        assert!(!may && score < 0.8, "{score}");
        for d in [Some("1971"), None] {
            let (may, score) = kept(d);
            assert!(may && score >= 0.8, "{d:?}: {score}");
        }
    }
}
