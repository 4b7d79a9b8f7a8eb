//! Name normalisation: from a raw name string to comparable tokens.
//!
//! Pipeline (the same for list names and query names, so both sides meet in the middle):
//! 1. clean the raw text: control characters become spaces; party labels (`SHIPPER:`,
//!    `MESSRS.`), `c/o …`, branch annotations, vessel ports and voyage numbers, and address
//!    tails (a comma segment with a 4+ digit run) are cut; former names (`(ex-X)`,
//!    `f.k.a. X`, `formerly X`) become separate names;
//! 2. split into words; each word is transliterated: NFKD and combining marks stripped,
//!    then `any_ascii` for other scripts (CJK and Hangul one syllable per token);
//!    apostrophes are dropped inside words; words from abjads (Hebrew, Arabic) are marked
//!    so they are compared on consonant skeletons;
//! 3. legal forms are recognised on the token sequence (longest match) and removed from the
//!    name into a separate list; runs of single letters are joined (`N.K.` = `N K` = `nk`)
//!    except in person names, where they stay initials;
//! 4. honorifics and vessel prefixes are dropped; `No.`/`Nr.` before a number is dropped;
//!    digits, Roman numerals and number words become numbers;
//! 5. each token gets a class (word, generic business word, stop word, number, initial) and
//!    two phonetic keys: `phon` (transliteration conventions folded: kh→h, w→v, q→k, y→i,
//!    doubled letters collapsed …) and `skel` (`phon` without vowels after the first
//!    letter).

use crate::legal::{self, LegalForm};
use crate::model::EntryKind;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Which writing system a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Latin,
    /// Transliterated from an alphabet (Cyrillic, Greek, Georgian, Armenian, Thai …).
    Translit,
    /// Transliterated from an abjad (Hebrew, Arabic): vowels are mostly not written.
    Abjad,
    /// One CJK or Hangul syllable.
    Syllabic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenClass {
    Word,
    Generic,
    Stop,
    Number,
    Initial,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub text: String,
    pub phon: String,
    pub skel: String,
    /// Abjad consonant skeleton (for Hebrew/Arabic against Latin).
    pub askel: String,
    pub class: TokenClass,
    pub origin: Origin,
    /// Written as an abbreviation (trailing `.`, or no vowel after the first letter).
    pub abbrev: bool,
    pub number: Option<u32>,
    /// The expansion of `text` when it is a known abbreviation (looked up once here, not
    /// on every comparison).
    pub expansion: Option<&'static str>,
    /// Hashes and letter sets of `text`, `phon`, `skel` and `askel`, for cheap rejection
    /// in token comparison.
    pub(crate) sig: TokenSig,
}

/// One string's fingerprint: a hash (different hashes mean different strings; equal ones
/// are confirmed on the strings) and the set of its bytes folded to 32 bits. One edit
/// (insertion, deletion, substitution, transposition) changes that set by at most two
/// bits, so `popcount(a ^ b) > 2k` proves an edit distance above `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StrSig {
    pub(crate) hash: u64,
    pub(crate) letters: u32,
    /// Long strings are compared by characters, not bytes (see `score::edit_distance`):
    /// the letter-set bound is not used for them.
    pub(crate) long: bool,
}

impl StrSig {
    pub(crate) fn of(s: &str) -> Self {
        let mut letters = 0u32;
        for b in s.bytes() {
            letters |= 1 << (b % 32);
        }
        Self {
            hash: crate::snapshot::fnv1a(s.as_bytes(), crate::snapshot::FNV_OFFSET),
            letters,
            long: s.len() >= crate::score::BYTE_DISTANCE_MAX,
        }
    }

    /// The strings can be within `k` edits of each other.
    pub(crate) fn may_be_within(self, other: Self, k: u32) -> bool {
        self.long || other.long || (self.letters ^ other.letters).count_ones() <= 2 * k
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TokenSig {
    pub(crate) text: StrSig,
    pub(crate) phon: StrSig,
    pub(crate) skel: StrSig,
    pub(crate) askel: StrSig,
}

impl Token {
    /// Weight of the token in coverage: how much it says about *which* party this is.
    pub fn weight(&self) -> f32 {
        match self.class {
            TokenClass::Word | TokenClass::Number => 1.0,
            TokenClass::Initial => 0.6,
            TokenClass::Generic => 0.5,
            TokenClass::Stop => 0.1,
        }
    }
}

/// One normalised name.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedName {
    pub tokens: Vec<Token>,
    pub legal_forms: Vec<&'static LegalForm>,
    /// All tokens including legal forms, concatenated: catches missing spaces.
    pub joined: String,
    /// The name was announced as a former name (`ex-`, `f.k.a.`).
    pub former: bool,
}

impl NormalizedName {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Folds text to a lookup key: NFKD, marks stripped, lower case, non-alphanumerics to
/// single spaces. Used for country names and labels, not for name matching.
pub fn fold_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut space = true;
    for c in raw.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                out.push(l);
            }
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Normalises one raw name into one or more names (former names split off).
pub fn normalize_name(raw: &str, kind: EntryKind) -> Vec<NormalizedName> {
    let mut out = Vec::new();
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let (main, formers) = split_former_names(&cleaned);
    for (text, former) in
        std::iter::once((main, false)).chain(formers.into_iter().map(|f| (f, true)))
    {
        let text = clean_annotations(&text, kind);
        let name = tokenize(&text, kind, former);
        if !name.is_empty() || !name.legal_forms.is_empty() {
            out.push(name);
        }
    }
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    // Both are searched in ASCII-lowercase; `needle` is ASCII so byte offsets line up.
    let lower = hay.to_ascii_lowercase();
    lower.find(needle)
}

/// Splits `(ex-X)`, `(ex X)`, `(formerly X)`, `(f.k.a. X)` and unparenthesised
/// ` ex-X`, ` f.k.a. X`, ` formerly X` into separate former names.
fn split_former_names(text: &str) -> (String, Vec<String>) {
    let mut main = text.to_owned();
    let mut formers = Vec::new();
    for marker in ["(ex-", "(ex ", "(formerly ", "(f.k.a. ", "(fka ", "(f/k/a "] {
        while let Some(start) = find_ci(&main, marker) {
            let after = start + marker.len();
            let end = main
                .get(after..)
                .and_then(|r| r.find(')'))
                .map(|e| after + e);
            let (inner, cut_end) = match end {
                Some(e) => (main.get(after..e).unwrap_or(""), e + 1),
                None => (main.get(after..).unwrap_or(""), main.len()),
            };
            formers.extend(inner.split([',', ';']).map(|s| {
                let s = s.trim();
                s.strip_prefix("ex-")
                    .or_else(|| s.strip_prefix("ex "))
                    .unwrap_or(s)
                    .to_owned()
            }));
            main.replace_range(start..cut_end, " ");
        }
    }
    for marker in [" ex-", " f.k.a. ", " fka ", " formerly ", " f/k/a ", " ex "] {
        while let Some(start) = find_ci(&main, marker) {
            let rest = main.get(start + marker.len()..).unwrap_or("").to_owned();
            if rest.trim().is_empty() {
                break;
            }
            formers.push(rest);
            main.truncate(start);
        }
    }
    formers.retain(|f| !f.trim().is_empty());
    (main, formers)
}

const PARTY_LABELS: &[&str] = &[
    "beneficiary customer",
    "beneficiary",
    "consignee",
    "field 50",
    "field 59",
    "notify party",
    "ordering customer",
    "payee",
    "remitter",
    "shipper",
];

fn clean_annotations(text: &str, kind: EntryKind) -> String {
    let mut s = text.trim().to_owned();
    // Leading party labels from payment and shipping messages.
    if let Some(colon) = s.find(':') {
        let label = fold_key(s.get(..colon).unwrap_or(""));
        if PARTY_LABELS.contains(&label.as_str()) || label.starts_with("field ") {
            s = s.get(colon + 1..).unwrap_or("").trim().to_owned();
        }
    }
    for prefix in ["messrs. ", "messrs ", "m/s. ", "m/s "] {
        if s.to_ascii_lowercase().starts_with(prefix) {
            s = s.get(prefix.len()..).unwrap_or("").to_owned();
        }
    }
    if let Some(i) = find_ci(&s, "c/o ") {
        s.truncate(i);
    }
    // Parenthesised annotations: branches and flags always go; for vessels everything in
    // parentheses is an annotation (port, flag, operator).
    while let Some(open) = s.find('(') {
        let close = s.get(open..).and_then(|r| r.find(')')).map(|c| open + c);
        let Some(close) = close else {
            s.replace_range(open..open + 1, " ");
            continue;
        };
        let inner = s.get(open + 1..close).unwrap_or("").to_ascii_lowercase();
        let drop = kind == EntryKind::Vessel
            || inner.contains("branch")
            || inner.contains("flag")
            || inner.contains("office");
        if drop {
            s.replace_range(open..=close, " ");
        } else {
            s.replace_range(close..=close, " ");
            s.replace_range(open..=open, " ");
        }
    }
    // " - Malindi Branch" and ", Sukkur Branch".
    if let Some(i) = find_ci(&s, " - ")
        && s.get(i..)
            .is_some_and(|r| r.to_ascii_lowercase().contains("branch"))
    {
        s.truncate(i);
    }
    // Comma segments: the first always stays; a later segment that is a branch, a port, an
    // address (4+ digit run) or anything after a vessel name ends the name.
    let mut kept = String::new();
    for (i, seg) in s.split(',').enumerate() {
        let lower = seg.to_ascii_lowercase();
        let digits = longest_digit_run(seg);
        let ends = i > 0
            && (kind == EntryKind::Vessel
                || lower.contains("branch")
                || lower.trim_start().starts_with("port ")
                || digits >= 4);
        if ends {
            break;
        }
        if i > 0 {
            kept.push(' ');
        }
        kept.push_str(seg);
    }
    kept
}

fn longest_digit_run(s: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

fn is_abjad(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x05FF | 0xFB1D..=0xFB4F | 0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF)
}

fn is_syllabic(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F)
}

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '’' | '‘' | '`' | 'ʼ' | 'ʻ' | '´' | '׳' | '״' | '"' | 'ʿ' | 'ʾ'
    )
}

/// A raw word: transliterated text, origin, and whether a `.` followed it.
struct RawWord {
    text: String,
    origin: Origin,
    dotted: bool,
}

fn split_words(text: &str) -> Vec<RawWord> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut origin = Origin::Latin;
    let flush = |cur: &mut String, origin: &mut Origin, dotted: bool, words: &mut Vec<RawWord>| {
        if !cur.is_empty() {
            words.push(RawWord {
                text: std::mem::take(cur),
                origin: *origin,
                dotted,
            });
        }
        *origin = Origin::Latin;
    };
    for c in text.chars() {
        if is_syllabic(c) {
            flush(&mut cur, &mut origin, false, &mut words);
            let t = fold_ascii(any_ascii::any_ascii_char(c));
            if !t.is_empty() {
                words.push(RawWord {
                    text: t,
                    origin: Origin::Syllabic,
                    dotted: false,
                });
            }
        } else if c.is_alphanumeric() || is_combining_mark(c) {
            if c.is_ascii() {
                cur.push(c.to_ascii_lowercase());
            } else {
                if is_abjad(c) {
                    origin = Origin::Abjad;
                } else if origin == Origin::Latin && !is_latin_letter(c) {
                    origin = Origin::Translit;
                }
                transliterate_into(c, &mut cur);
            }
        } else if is_apostrophe(c) && !cur.is_empty() {
            // Inside a word: O'Doyle, d'Abidjan, Georgian and Hebrew transliteration marks.
        } else {
            flush(&mut cur, &mut origin, c == '.', &mut words);
        }
    }
    flush(&mut cur, &mut origin, false, &mut words);
    words
}

fn is_latin_letter(c: char) -> bool {
    matches!(c as u32, 0x00C0..=0x024F | 0x1E00..=0x1EFF)
}

fn fold_ascii(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn transliterate_into(c: char, out: &mut String) {
    let mut buf = [0u8; 4];
    for d in c.encode_utf8(&mut buf).nfkd() {
        if is_combining_mark(d) {
            continue;
        }
        if d.is_ascii() {
            if d.is_ascii_alphanumeric() {
                out.push(d.to_ascii_lowercase());
            }
        } else {
            for a in any_ascii::any_ascii_char(d).chars() {
                if a.is_ascii_alphanumeric() {
                    out.push(a.to_ascii_lowercase());
                }
            }
        }
    }
}

const NUMBER_WORDS: &[(&str, u32)] = &[
    ("eight", 8),
    ("eighteen", 18),
    ("eleven", 11),
    ("fifteen", 15),
    ("five", 5),
    ("four", 4),
    ("fourteen", 14),
    ("nine", 9),
    ("nineteen", 19),
    ("one", 1),
    ("seven", 7),
    ("seventeen", 17),
    ("six", 6),
    ("sixteen", 16),
    ("ten", 10),
    ("thirteen", 13),
    ("three", 3),
    ("twelve", 12),
    ("twenty", 20),
    ("two", 2),
];

fn roman(t: &str) -> Option<u32> {
    const R: &[&str] = &[
        "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv",
        "xv", "xvi", "xvii", "xviii", "xix", "xx",
    ];
    R.iter()
        .position(|r| *r == t)
        .and_then(|p| u32::try_from(p + 1).ok())
}

fn number_value(t: &str, allow_roman: bool) -> Option<u32> {
    if !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    if let Ok(i) = NUMBER_WORDS.binary_search_by(|(w, _)| (*w).cmp(t)) {
        return NUMBER_WORDS.get(i).map(|(_, n)| *n);
    }
    if allow_roman { roman(t) } else { None }
}

fn tokenize(text: &str, kind: EntryKind, former: bool) -> NormalizedName {
    let words = split_words(text);
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let mut joined = String::new();
    for t in &texts {
        joined.push_str(t);
    }
    // Legal forms (not for persons: "AS", "IP" are also initials and names).
    let mut legal_forms: Vec<&'static LegalForm> = Vec::new();
    let mut keep = vec![true; words.len()];
    if kind != EntryKind::Person {
        let mut i = 0;
        while i < texts.len() {
            // A lone non-Latin syllable should not eat a Latin-looking sequence.
            if let Some((n, form)) = legal::legal_form_at(&texts, i)
                && !(n == 1 && texts.len() == 1)
            {
                legal_forms.push(form);
                for k in keep.iter_mut().skip(i).take(n) {
                    *k = false;
                }
                i += n;
            } else {
                i += 1;
            }
        }
    }
    // Join runs of single letters in non-person names (N.K. = N K = nk).
    let mut merged: Vec<RawWord> = Vec::new();
    let mut run: Vec<&RawWord> = Vec::new();
    let flush_run = |run: &mut Vec<&RawWord>, merged: &mut Vec<RawWord>| {
        if run.len() >= 2 {
            merged.push(RawWord {
                text: run.iter().map(|w| w.text.as_str()).collect(),
                origin: Origin::Latin,
                dotted: true,
            });
        } else if let Some(w) = run.first() {
            merged.push(RawWord {
                text: w.text.clone(),
                origin: w.origin,
                dotted: w.dotted,
            });
        }
        run.clear();
    };
    for (w, k) in words.iter().zip(&keep) {
        if !*k {
            flush_run(&mut run, &mut merged);
            continue;
        }
        let single = w.text.len() == 1 && w.text.bytes().all(|b| b.is_ascii_alphabetic());
        if single && kind != EntryKind::Person && w.origin == Origin::Latin {
            run.push(w);
        } else {
            flush_run(&mut run, &mut merged);
            merged.push(RawWord {
                text: w.text.clone(),
                origin: w.origin,
                dotted: w.dotted,
            });
        }
    }
    flush_run(&mut run, &mut merged);
    // A joined run can itself be a legal form (S.A. → sa).
    if kind != EntryKind::Person {
        merged.retain(|w| {
            if w.text.len() <= 4
                && let Some((1, form)) = legal::legal_form_at(&[w.text.as_str()], 0)
                && w.dotted
            {
                legal_forms.push(form);
                return false;
            }
            true
        });
    }

    let mut tokens = Vec::with_capacity(merged.len());
    let n = merged.len();
    for (i, w) in merged.iter().enumerate() {
        let t = w.text.as_str();
        if legal::is_honorific(t) && n > 1 {
            continue;
        }
        if kind == EntryKind::Vessel && i == 0 && legal::is_vessel_prefix(t) && n > 1 {
            continue;
        }
        // Voyage numbers on vessels: "V.214W".
        if kind == EntryKind::Vessel
            && t == "v"
            && merged
                .get(i + 1)
                .is_some_and(|nx| nx.text.starts_with(|c: char| c.is_ascii_digit()))
        {
            continue;
        }
        if kind == EntryKind::Vessel
            && i > 0
            && merged.get(i - 1).is_some_and(|p| p.text == "v")
            && t.starts_with(|c: char| c.is_ascii_digit())
            && t.bytes().any(|b| b.is_ascii_alphabetic())
        {
            continue;
        }
        let next_is_number = merged
            .get(i + 1)
            .is_some_and(|nx| number_value(&nx.text, false).is_some());
        if matches!(t, "no" | "nr" | "num" | "number") && next_is_number {
            continue;
        }
        // "No8" written without a space.
        let t = if let Some(rest) = t.strip_prefix("no")
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit())
        {
            rest
        } else {
            t
        };
        let allow_roman = kind != EntryKind::Person && i > 0 && w.origin == Origin::Latin;
        let number = number_value(t, allow_roman);
        let class = if number.is_some() {
            TokenClass::Number
        } else if legal::is_stop(t) && n > 1 {
            TokenClass::Stop
        } else if t.len() == 1 && kind == EntryKind::Person {
            TokenClass::Initial
        } else if legal::is_generic(t) {
            TokenClass::Generic
        } else {
            TokenClass::Word
        };
        let abbrev = class == TokenClass::Word
            && w.origin == Origin::Latin
            && t.len() >= 2
            && (w.dotted || !t.bytes().skip(1).any(is_vowel));
        let phon = phonetic_key(t);
        let skel = skeleton(&phon);
        let askel = abjad_skeleton(t);
        let sig = TokenSig {
            text: StrSig::of(t),
            phon: StrSig::of(&phon),
            skel: StrSig::of(&skel),
            askel: StrSig::of(&askel),
        };
        tokens.push(Token {
            text: t.to_owned(),
            phon,
            skel,
            askel,
            class,
            origin: w.origin,
            abbrev,
            number,
            expansion: legal::expand_abbreviation(t),
            sig,
        });
    }
    NormalizedName {
        tokens,
        legal_forms,
        joined,
        former,
    }
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Folds common transliteration and spelling conventions so that variants of one name get
/// one key: kh/ch→h, ph→f, ck/q/c→k, w→v, y/j→i, zh→j, ou/oo/u→u, ee→i, doubled letters
/// collapsed, a trailing `h` after a vowel dropped.
pub fn phonetic_key(t: &str) -> String {
    let mut out = Vec::with_capacity(t.len());
    phonetic_key_into(t.as_bytes(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`phonetic_key`] into a reused buffer (cleared first): the scoring hot path calls it
/// without allocating.
pub(crate) fn phonetic_key_into(b: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        let n = b.get(i + 1).copied().unwrap_or(0);
        let (emit, step): (&[u8], usize) = match (c, n) {
            (b'k', b'h') | (b'c', b'h') => (b"h", 2),
            (b'z', b'h') => (b"j", 2),
            (b'p', b'h') => (b"f", 2),
            (b't', b'h') => (b"t", 2),
            (b'c', b'k') => (b"k", 2),
            (b'o', b'u') | (b'o', b'o') => (b"u", 2),
            (b'e', b'e') | (b'e', b'y') | (b'e', b'i') | (b'i', b'y') => (b"i", 2),
            (b'k', b's') => (b"x", 2),
            (b't', b'z') | (b't', b's') => (b"c", 2),
            (b'q', b'u') => (b"k", 2),
            (b'q', _) | (b'c', _) => (b"k", 1),
            (b'w', _) => (b"v", 1),
            (b'y', _) | (b'j', _) => (b"i", 1),
            _ => (std::slice::from_ref(&b[i]), 1),
        };
        for &e in emit {
            if out.last() != Some(&e) {
                out.push(e);
            }
        }
        i += step;
    }
    if out.len() > 2
        && out.last() == Some(&b'h')
        && out.get(out.len() - 2).is_some_and(|p| is_vowel(*p))
    {
        out.pop();
    }
}

/// The phonetic key without vowels after the first letter (Mohammed/Muhammad/Mohamad →
/// `mhmd`).
pub fn skeleton(phon: &str) -> String {
    let mut out = String::with_capacity(phon.len());
    for (i, c) in phon.bytes().enumerate() {
        if i == 0 || !is_vowel(c) {
            let ch = char::from(c);
            if !out.ends_with(ch) {
                out.push(ch);
            }
        }
    }
    out
}

/// Consonant skeleton for comparing an abjad transliteration (Hebrew, Arabic: vowels and
/// the weak letters v/y/w/h mostly unwritten or ambiguous) with a Latin spelling.
pub fn abjad_skeleton(t: &str) -> String {
    let b = t.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        let n = b.get(i + 1).copied().unwrap_or(0);
        let (e, step) = match (c, n) {
            (b's', b'h') | (b't', b's') | (b't', b'z') | (b'z', b'h') => (Some(b's'), 2),
            (b'k', b'h') | (b'c', b'h') => (Some(b'k'), 2),
            (b't', b'h') => (Some(b't'), 2),
            (b'd', b'h') => (Some(b'd'), 2),
            (b'g', b'h') => (Some(b'g'), 2),
            (b'p', b'h') => (Some(b'f'), 2),
            (b'z', _) | (b'x', _) => (Some(b's'), 1),
            (b'q', _) | (b'c', _) => (Some(b'k'), 1),
            (b'p', _) => (Some(b'f'), 1),
            (b'a' | b'e' | b'i' | b'o' | b'u' | b'y' | b'v' | b'w' | b'b' | b'h', _) => (None, 1),
            _ => (Some(c), 1),
        };
        if let Some(e) = e
            && out.last() != Some(&e)
        {
            out.push(e);
        }
        i += step;
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(raw: &str, kind: EntryKind) -> Vec<Vec<String>> {
        normalize_name(raw, kind)
            .into_iter()
            .map(|n| n.tokens.into_iter().map(|t| t.text).collect())
            .collect()
    }

    #[test]
    fn pipeline() {
        assert_eq!(
            texts(
                "SHIPPER: TRANSPORTES REFRIGERADOS DEL SURESTE SA DE CV",
                EntryKind::Entity
            ),
            vec![vec!["transportes", "refrigerados", "del", "sureste"]]
        );
        assert_eq!(
            texts("Ocean Pioneer (ex-Cape Diamond)", EntryKind::Vessel),
            vec![vec!["ocean", "pioneer"], vec!["cape", "diamond"]]
        );
        assert_eq!(
            texts("M.T. THONG NAWA 3 (Laem Chabang)", EntryKind::Vessel),
            vec![vec!["thong", "nawa", "3"]]
        );
        assert_eq!(
            texts(
                "HALVERSTONE SPIRIT V.214W (Marshall Islands flag)",
                EntryKind::Vessel
            ),
            vec![vec!["halverstone", "spirit"]]
        );
        assert_eq!(
            texts(
                "Tidewell Process Equipment Inc, 12250 Brevard Ln, Pasadena TX 77506",
                EntryKind::Entity
            ),
            vec![vec!["tidewell", "process", "equipment"]]
        );
        assert_eq!(
            texts("N.K. Bansal & Co.", EntryKind::Entity),
            vec![vec!["nk", "bansal"]]
        );
        assert_eq!(
            texts("Kalčić Trgovina d.o.o.", EntryKind::Entity),
            vec![vec!["kalcic", "trgovina"]]
        );
        assert_eq!(
            texts("Иван Иванов", EntryKind::Person),
            vec![vec!["ivan", "ivanov"]]
        );
        assert_eq!(
            texts("Seraphine Navigation II S.A.", EntryKind::Entity)[0][2],
            "ii"
        );
        let n = normalize_name("Seraphine Navigation II S.A.", EntryKind::Entity);
        assert_eq!(n[0].tokens[2].number, Some(2));
        assert_eq!(n[0].legal_forms.len(), 1);
    }

    #[test]
    fn phonetic_keys() {
        assert_eq!(
            skeleton(&phonetic_key("mohammed")),
            skeleton(&phonetic_key("muhammad"))
        );
        assert_eq!(phonetic_key("khouri"), phonetic_key("khoury"));
        assert_eq!(
            skeleton(&phonetic_key("rachamim")),
            skeleton(&phonetic_key("rakhamim"))
        );
        assert_eq!(abjad_skeleton("mhmd"), abjad_skeleton("mohamed"));
        assert_eq!(abjad_skeleton("sltyl"), abjad_skeleton("shaltiel"));
    }
}

#[cfg(test)]
mod signature_bound {
    use super::StrSig;
    use crate::score::edit_distance;
    use proptest::prelude::*;

    proptest! {
        /// The letter-set test never rejects a pair that is within `k` edits.
        #[test]
        fn never_rejects_a_close_pair(a in "[a-e]{0,10}|[a-z0-9]{0,60}", b in "[a-e]{0,10}|[a-z0-9]{0,60}", k in 0u32..4) {
            if edit_distance(&a, &b) <= k as usize {
                prop_assert!(StrSig::of(&a).may_be_within(StrSig::of(&b), k));
            }
        }

        /// Close pairs made by editing: one to three random edits of a word.
        #[test]
        fn edited_words_pass(a in "[a-z]{1,20}", edits in proptest::collection::vec((0usize..4, 0usize..20, b'a'..=b'z'), 1..4)) {
            let mut b: Vec<u8> = a.bytes().collect();
            for (op, at, c) in &edits {
                let at = at % (b.len() + 1);
                match op {
                    0 => b.insert(at, *c),
                    1 if at < b.len() => { b.remove(at); }
                    2 if at < b.len() => b[at] = *c,
                    3 if at + 1 < b.len() => b.swap(at, at + 1),
                    _ => {}
                }
            }
            let b = String::from_utf8(b).unwrap_or_default();
            let d = edit_distance(&a, &b);
            prop_assert!(StrSig::of(&a).may_be_within(StrSig::of(&b), d as u32));
        }
    }
}
