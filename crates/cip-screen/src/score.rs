//! Name scoring: aligns the tokens of two normalised names and turns the alignment into a
//! score in [0, 1] with an explanation.
//!
//! score = min(cov_a, cov_b) + 0.25 · |cov_a − cov_b|, where cov_x is the weighted share of
//! x's tokens that aligned (weight: word 1, initial 0.6, generic business word 0.5, stop
//! word 0.1; times the alignment's similarity). Then multiplicative penalties: numbers that
//! disagree (sister ships, numbered SPVs) ×0.45; legal forms of disjoint jurisdictions
//! ×0.7; a vessel name against a name with a company legal form ×0.75. A name that is the
//! same string once spaces are removed scores at least 0.95.

use crate::model::EntryKind;
use crate::normalize::{NormalizedName, Origin, Token, TokenClass};
use serde::Serialize;

/// How two tokens were aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchHow {
    Exact,
    /// Same phonetic key or consonant skeleton (Mohammed/Muhammad, Khoury/Khouri).
    Phonetic,
    /// Across scripts: the transliterated skeletons agree.
    Transliteration,
    /// Abbreviation (Bros./Brothers, Mfg/Manufacturing).
    Abbreviation,
    /// An initial against a full name (R./Renzo).
    Initial,
    /// Typo: small edit distance.
    Edit,
    /// One token against several adjacent tokens written without spaces.
    Compound,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenAlignment {
    pub query: String,
    pub entry: String,
    pub how: MatchHow,
    pub similarity: f32,
}

/// Why a name pair scored what it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct NameExplanation {
    pub query_name: String,
    pub entry_name: String,
    pub aligned: Vec<TokenAlignment>,
    pub unmatched_query: Vec<String>,
    pub unmatched_entry: Vec<String>,
    /// Legal forms seen on each side (canonical spellings).
    pub query_legal_forms: Vec<String>,
    pub entry_legal_forms: Vec<String>,
    pub legal_form_conflict: bool,
    pub number_conflict: bool,
    /// One side is a vessel name and the other carries a company legal form.
    pub vessel_vs_company: bool,
    /// The names are equal once spaces and punctuation are removed.
    pub spacing_only: bool,
    pub score: f32,
}

/// Strings of this many bytes or more are compared by characters (`strsim`), shorter ones
/// by bytes.
pub(crate) const BYTE_DISTANCE_MAX: usize = 48;

/// Optimal-string-alignment distance on bytes, without allocation for short tokens.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    const N: usize = BYTE_DISTANCE_MAX;
    if a.len() >= N || b.len() >= N {
        return strsim::osa_distance(&String::from_utf8_lossy(a), &String::from_utf8_lossy(b));
    }
    let mut prev2 = [0usize; N];
    let mut prev = [0usize; N];
    let mut cur = [0usize; N];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        prev2 = prev;
        prev = cur;
    }
    prev[b.len()]
}

/// [`edit_distance`] when it is at most `k`, else `None`; exact for every input, but stops
/// as soon as two consecutive rows of the table are all above `k` (no later cell can come
/// back under it: each cell is at least the minimum of the two rows above, plus one for
/// the transposition step). Rows are `u8` on the stack, rotated rather than copied.
pub(crate) fn edit_distance_within(a: &str, b: &str, k: usize) -> Option<usize> {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len().abs_diff(y.len()) > k {
        return None;
    }
    const N: usize = BYTE_DISTANCE_MAX;
    if x.len() >= N || y.len() >= N {
        let d = edit_distance(a, b);
        return (d <= k).then_some(d);
    }
    let m = y.len();
    let mut rows = [[0u8; N]; 3];
    for (j, c) in rows[0].iter_mut().enumerate().take(m + 1) {
        *c = j as u8;
    }
    let k8 = k.min(usize::from(u8::MAX - 1)) as u8;
    let mut prev_min: u8 = 0;
    for i in 1..=x.len() {
        let [r0, r1, r2] = &mut rows;
        // Row i lives in rows[i % 3]; rows i-1 and i-2 in the other two.
        let (cur, prev, prev2) = match i % 3 {
            0 => (r0, &*r2, &*r1),
            1 => (r1, &*r0, &*r2),
            _ => (r2, &*r1, &*r0),
        };
        cur[0] = i as u8;
        let mut row_min = cur[0];
        let xi = x[i - 1];
        for j in 1..=m {
            let cost = u8::from(xi != y[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && xi == y[j - 2] && x[i - 2] == y[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > k8 && prev_min > k8 {
            return None;
        }
        prev_min = row_min;
    }
    let d = usize::from(rows[x.len() % 3][m]);
    (d <= k).then_some(d)
}

/// Similarity of two single tokens, and how.
pub fn token_similarity(a: &Token, b: &Token) -> Option<(f32, MatchHow)> {
    if a.number.is_some() || b.number.is_some() {
        return (a.number == b.number).then_some((1.0, MatchHow::Exact));
    }
    let (sa, sb) = (&a.sig, &b.sig);
    if sa.text.hash == sb.text.hash && a.text == b.text {
        return Some((1.0, MatchHow::Exact));
    }
    let cross = a.origin != b.origin && (a.origin != Origin::Latin || b.origin != Origin::Latin);
    let how_phon = if cross {
        MatchHow::Transliteration
    } else {
        MatchHow::Phonetic
    };
    if sa.phon.hash == sb.phon.hash && a.phon == b.phon {
        return Some((0.95, how_phon));
    }
    let short = a.skel.len().min(b.skel.len());
    if short >= 3 && sa.skel.hash == sb.skel.hash && a.skel == b.skel {
        return Some((0.9, how_phon));
    }
    // Initials (persons) against a name starting with that letter.
    if (a.class == TokenClass::Initial || b.class == TokenClass::Initial)
        && a.text.as_bytes().first() == b.text.as_bytes().first()
    {
        return Some((0.8, MatchHow::Initial));
    }
    // Abbreviations.
    if let Some(s) = abbreviation(a, b).or_else(|| abbreviation(b, a)) {
        return Some((s, MatchHow::Abbreviation));
    }
    // Abjad transliterations: compare consonant skeletons.
    if a.origin == Origin::Abjad || b.origin == Origin::Abjad {
        let (ka, kb) = (&a.askel, &b.askel);
        if ka.len() >= 2 && sa.askel.hash == sb.askel.hash && ka == kb {
            return Some((0.85, MatchHow::Transliteration));
        }
        if ka.len().min(kb.len()) >= 3
            && ka.len().abs_diff(kb.len()) <= 1
            && sa.askel.may_be_within(sb.askel, 1)
            && edit_distance_within(ka, kb, 1) == Some(1)
        {
            return Some((0.7, MatchHow::Transliteration));
        }
        return None;
    }
    // Transliterated alphabets: allow one edit on the skeleton.
    if cross
        && short >= 3
        && a.skel.len().abs_diff(b.skel.len()) <= 1
        && sa.skel.may_be_within(sb.skel, 1)
        && edit_distance_within(&a.skel, &b.skel, 1).is_some()
    {
        return Some((0.8, MatchHow::Transliteration));
    }
    // Typos.
    let len = a.text.len().max(b.text.len());
    if len < 4 || a.text.len().abs_diff(b.text.len()) > 2 {
        return None;
    }
    // Plural/singular (Star/Stars, Espoir/Espoirs) names a different thing.
    let ends_s = |x: &str| x.as_bytes().last() == Some(&b's');
    if a.text.len() != b.text.len()
        && (ends_s(&a.text) || ends_s(&b.text))
        && (is_plural_of(&a.text, &b.text) || is_plural_of(&b.text, &a.text))
    {
        return Some((0.3, MatchHow::Edit));
    }
    // Only distances 1 (and 2 for long tokens) score; anything further is not computed.
    let k = if len >= 9 { 2 } else { 1 };
    let d = if sa.text.may_be_within(sb.text, k) {
        edit_distance_within(&a.text, &b.text, k as usize).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    let first_differs = a.text.as_bytes().first() != b.text.as_bytes().first();
    let s = match d {
        1 if len >= 7 => 0.8,
        1 if len >= 5 => 0.7,
        1 => 0.5,
        2 if len >= 9 => 0.6,
        _ => 0.0,
    };
    let s = if first_differs { s * 0.7 } else { s };
    (s > 0.0).then_some((s, MatchHow::Edit))
}

fn is_plural_of(long: &str, short: &str) -> bool {
    long.strip_suffix('s').is_some_and(|l| l == short)
        || long.strip_suffix("es").is_some_and(|l| l == short)
}

/// `short` abbreviates `long`: a known abbreviation, or written as one (trailing dot or no
/// vowels) and an ordered subsequence of `long` with the same first letter.
fn abbreviation(short: &Token, long: &Token) -> Option<f32> {
    if short.text.len() >= long.text.len() {
        return None;
    }
    if short.expansion == Some(long.text.as_str()) {
        return Some(0.9);
    }
    if !short.abbrev || short.text.len() < 2 {
        return None;
    }
    let (s, l) = (short.text.as_bytes(), long.text.as_bytes());
    if s.first() != l.first() {
        return None;
    }
    let mut it = l.iter();
    s.iter().all(|c| it.any(|x| x == c)).then_some(0.85)
}

/// Buffers one comparison needs, reused across comparisons on a thread so the hot path
/// does not allocate.
#[derive(Default)]
struct CompareScratch {
    q_sim: Vec<f32>,
    e_sim: Vec<f32>,
    q_used: Vec<bool>,
    e_used: Vec<bool>,
    pairs: Vec<(f32, usize, usize, MatchHow)>,
    joined: String,
    phon: Vec<u8>,
}

thread_local! {
    static COMPARE_SCRATCH: std::cell::RefCell<CompareScratch> =
        std::cell::RefCell::new(CompareScratch::default());
}

/// Compares two normalised names.
pub fn compare(
    q: &NormalizedName,
    e: &NormalizedName,
    kind: EntryKind,
    explain: bool,
) -> (f32, Option<NameExplanation>) {
    COMPARE_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => compare_with(q, e, kind, explain, &mut scratch),
        Err(_) => compare_with(q, e, kind, explain, &mut CompareScratch::default()),
    })
}

fn compare_with(
    q: &NormalizedName,
    e: &NormalizedName,
    kind: EntryKind,
    explain: bool,
    sc: &mut CompareScratch,
) -> (f32, Option<NameExplanation>) {
    let (n, m) = (q.tokens.len(), e.tokens.len());
    let CompareScratch {
        q_sim,
        e_sim,
        q_used,
        e_used,
        pairs,
        joined,
        phon,
    } = sc;
    q_sim.clear();
    q_sim.resize(n, 0.0);
    e_sim.clear();
    e_sim.resize(m, 0.0);
    q_used.clear();
    q_used.resize(n, false);
    e_used.clear();
    e_used.resize(m, false);
    pairs.clear();
    let mut aligned: Vec<TokenAlignment> = Vec::new();

    // Candidate pairs, best first (greedy alignment: names are short).
    for (i, a) in q.tokens.iter().enumerate() {
        for (j, b) in e.tokens.iter().enumerate() {
            if let Some((s, how)) = token_similarity(a, b) {
                // Prefer aligning tokens in the same position on ties.
                let order_bonus = if i == j { 1e-4 } else { 0.0 };
                pairs.push((s + order_bonus, i, j, how));
            }
        }
    }
    // Stable: pairs of equal similarity keep their (query, entry) order.
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    for &(s, i, j, how) in pairs.iter() {
        if q_used.get(i) == Some(&false) && e_used.get(j) == Some(&false) {
            let s = s.min(1.0);
            if let (Some(qu), Some(eu), Some(qs), Some(es)) = (
                q_used.get_mut(i),
                e_used.get_mut(j),
                q_sim.get_mut(i),
                e_sim.get_mut(j),
            ) {
                *qu = true;
                *eu = true;
                *qs = s;
                *es = s;
            }
            if explain && let (Some(a), Some(b)) = (q.tokens.get(i), e.tokens.get(j)) {
                aligned.push(TokenAlignment {
                    query: a.text.clone(),
                    entry: b.text.clone(),
                    how,
                    similarity: s,
                });
            }
        }
    }
    // Compounds: one unmatched token equal to several adjacent unmatched tokens of the other.
    let mut bufs = (joined, phon);
    compound_pass(
        Side {
            tokens: &q.tokens,
            used: q_used,
            sim: q_sim,
        },
        Side {
            tokens: &e.tokens,
            used: e_used,
            sim: e_sim,
        },
        explain.then_some(&mut aligned),
        false,
        &mut bufs,
    );
    compound_pass(
        Side {
            tokens: &e.tokens,
            used: e_used,
            sim: e_sim,
        },
        Side {
            tokens: &q.tokens,
            used: q_used,
            sim: q_sim,
        },
        explain.then_some(&mut aligned),
        true,
        &mut bufs,
    );

    let person = kind == EntryKind::Person;
    let cov = |tokens: &[Token], sims: &[f32], other_len: usize| -> f32 {
        let mut num = 0.0;
        let mut den = 0.0;
        for (t, s) in tokens.iter().zip(sims) {
            let mut w = t.weight();
            // Persons: an extra middle name on the longer side weighs half.
            if person && *s == 0.0 && tokens.len() > other_len {
                w *= 0.5;
            }
            num += w * s;
            den += w;
        }
        if den == 0.0 { 0.0 } else { num / den }
    };
    let cq = cov(&q.tokens, q_sim, m);
    let ce = cov(&e.tokens, e_sim, n);
    let mut score = cq.min(ce) + 0.25 * (cq - ce).abs();

    let spacing_only = !q.joined.is_empty() && q.joined == e.joined;
    if spacing_only {
        score = score.max(0.95);
    }
    let number_conflict = numbers_conflict(q, e);
    if number_conflict {
        score *= 0.45;
    }
    let legal_form_conflict = legal_forms_conflict(q, e);
    if legal_form_conflict {
        score *= 0.7;
    }
    let vessel_vs_company = vessel_vs_company(q, e, kind);
    if vessel_vs_company {
        score *= 0.75;
    }
    let score = score.clamp(0.0, 1.0);
    let explanation = explain.then(|| NameExplanation {
        query_name: String::new(),
        entry_name: String::new(),
        aligned,
        unmatched_query: unmatched(&q.tokens, q_used),
        unmatched_entry: unmatched(&e.tokens, e_used),
        query_legal_forms: q
            .legal_forms
            .iter()
            .map(|f| f.canonical.to_owned())
            .collect(),
        entry_legal_forms: e
            .legal_forms
            .iter()
            .map(|f| f.canonical.to_owned())
            .collect(),
        legal_form_conflict,
        number_conflict,
        vessel_vs_company,
        spacing_only,
        score,
    });
    (score, explanation)
}

/// Both names carry numbers and the multisets differ (sister ships, numbered SPVs).
pub(crate) fn numbers_conflict(q: &NormalizedName, e: &NormalizedName) -> bool {
    let has = |x: &NormalizedName| x.tokens.iter().any(|t| t.number.is_some());
    if !has(q) || !has(e) {
        return false;
    }
    let mut a: Vec<u32> = q.tokens.iter().filter_map(|t| t.number).collect();
    let mut b: Vec<u32> = e.tokens.iter().filter_map(|t| t.number).collect();
    a.sort_unstable();
    b.sort_unstable();
    a != b
}

/// Legal forms of disjoint jurisdictions only (no compatible pair).
pub(crate) fn legal_forms_conflict(q: &NormalizedName, e: &NormalizedName) -> bool {
    q.legal_forms
        .iter()
        .any(|a| e.legal_forms.iter().any(|b| a.conflicts_with(b)))
        && !q
            .legal_forms
            .iter()
            .any(|a| e.legal_forms.iter().any(|b| !a.conflicts_with(b)))
}

/// A vessel name against a name with a company legal form.
pub(crate) fn vessel_vs_company(q: &NormalizedName, e: &NormalizedName, kind: EntryKind) -> bool {
    kind == EntryKind::Vessel && (q.legal_forms.is_empty() != e.legal_forms.is_empty())
}

fn unmatched(tokens: &[Token], used: &[bool]) -> Vec<String> {
    tokens
        .iter()
        .zip(used)
        .filter(|(_, u)| !**u)
        .map(|(t, _)| t.text.clone())
        .collect()
}

/// One side of an alignment in progress.
struct Side<'a> {
    tokens: &'a [Token],
    used: &'a mut [bool],
    sim: &'a mut [f32],
}

fn compound_pass(
    a: Side<'_>,
    b: Side<'_>,
    mut aligned: Option<&mut Vec<TokenAlignment>>,
    swapped: bool,
    (joined, phon): &mut (&mut String, &mut Vec<u8>),
) {
    let Side {
        tokens: a,
        used: a_used,
        sim: a_sim,
    } = a;
    let Side {
        tokens: b,
        used: b_used,
        sim: b_sim,
    } = b;
    if !b_used.iter().any(|u| !*u) {
        return;
    }
    for (i, t) in a.iter().enumerate() {
        if a_used.get(i) != Some(&false) || t.text.len() < 4 {
            continue;
        }
        // Only worth trying when the other side's unmatched letters could add up to it.
        let spare: usize = b
            .iter()
            .zip(b_used.iter())
            .filter(|(_, u)| !**u)
            .map(|(x, _)| x.text.len())
            .sum();
        if spare < t.text.len().saturating_sub(2) {
            continue;
        }
        let (t_first_phon, t_text) = (t.phon.as_bytes().first(), t.text.as_str());
        'start: for j in 0..b.len() {
            // Every joined text from `j` starts with `b[j]`: it can only equal `t.text` if
            // that starts with `b[j].text`, and the first byte of a phonetic key depends on
            // the first two bytes of the text only, so (when `b[j]` has two) it is the first
            // byte of `b[j].phon`. Starts that can match neither are skipped.
            if let Some(bj) = b.get(j)
                && bj.text.len() >= 2
                && !t_text.starts_with(bj.text.as_str())
                && bj.phon.as_bytes().first() != t_first_phon
            {
                continue 'start;
            }
            joined.clear();
            for k in j..b.len().min(j + 4) {
                if b_used.get(k) != Some(&false) {
                    continue 'start;
                }
                let Some(bk) = b.get(k) else { continue 'start };
                joined.push_str(&bk.text);
                // A phonetic key is never longer than its text, so a joined text shorter
                // than `t.phon` cannot have `t.phon` as its key.
                if k > j
                    && (**joined == t.text
                        || (joined.len() >= t.phon.len() && {
                            crate::normalize::phonetic_key_into(joined.as_bytes(), phon);
                            std::str::from_utf8(phon).unwrap_or("") == t.phon
                        }))
                {
                    let s = if **joined == t.text { 0.95 } else { 0.85 };
                    if let Some(x) = a_used.get_mut(i) {
                        *x = true;
                    }
                    if let Some(x) = a_sim.get_mut(i) {
                        *x = s;
                    }
                    for kk in j..=k {
                        if let Some(x) = b_used.get_mut(kk) {
                            *x = true;
                        }
                        if let Some(x) = b_sim.get_mut(kk) {
                            *x = s;
                        }
                    }
                    if let Some(al) = aligned.as_deref_mut() {
                        let (qn, en) = if swapped {
                            (joined.to_string(), t.text.clone())
                        } else {
                            (t.text.clone(), joined.to_string())
                        };
                        al.push(TokenAlignment {
                            query: qn,
                            entry: en,
                            how: MatchHow::Compound,
                            similarity: s,
                        });
                    }
                    break 'start;
                }
                if joined.len() >= t.text.len() {
                    continue 'start;
                }
            }
        }
    }
}

/// Best score over all name pairs of two raw names (convenience for evaluation and tests).
pub fn score_names(a: &str, b: &str, kind: EntryKind) -> f32 {
    let na = crate::normalize::normalize_name(a, kind);
    let nb = crate::normalize::normalize_name(b, kind);
    let mut best = 0.0f32;
    for x in &na {
        for y in &nb {
            best = best.max(compare(x, y, kind, false).0);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: &str, b: &str, k: EntryKind) -> f32 {
        score_names(a, b, k)
    }

    #[test]
    fn basics() {
        let e = EntryKind::Entity;
        assert!(
            s(
                "Northgate Valve Supply Corp.",
                "Northgate Valve Supply Corporation",
                e
            ) > 0.9
        );
        assert!(s("Seif Feeder 12", "Seif Feeder 13", EntryKind::Vessel) < 0.6);
        assert!(
            s(
                "Korvessa Industrial GmbH",
                "Korvessa Industrial Sdn. Bhd.",
                e
            ) < 0.8
        );
        assert!(s("Mohammed Ali", "Muhammad Ali", EntryKind::Person) > 0.9);
        assert!(s("Ali Mohammed", "Muhammad Ali", EntryKind::Person) > 0.9);
        assert!(s("EtsSanogoetTraore", "Ets Sanogo et Traoré", e) > 0.9);
        assert!(
            s(
                "Amberlo General Trading LLC",
                "Dirwaz General Trading LLC",
                e
            ) < 0.6
        );
    }
}

#[cfg(test)]
mod bounded_edit_distance {
    use super::{edit_distance, edit_distance_within};
    use proptest::prelude::*;

    proptest! {
        /// The bounded distance is the full distance whenever that is within the bound, and
        /// `None` exactly when it is not (short alphabets make transpositions and near
        /// misses common; lengths cross the 48-byte fallback).
        #[test]
        fn equals_the_full_distance(a in "[abc]{0,12}|[a-z]{40,52}", b in "[abc]{0,12}|[a-z]{40,52}", k in 0usize..4) {
            let d = edit_distance(&a, &b);
            prop_assert_eq!(edit_distance_within(&a, &b, k), (d <= k).then_some(d));
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(edit_distance_within("mohammed", "mohamed", 1), Some(1));
        assert_eq!(edit_distance_within("abcd", "abdc", 1), Some(1));
        assert_eq!(edit_distance_within("kitten", "sitting", 2), None);
        assert_eq!(edit_distance_within("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance_within("", "", 0), Some(0));
    }
}
