//! Legal forms and the other words a name carries that say little about *which* party it is:
//! legal forms (with the jurisdictions where each is a native form), stop words, generic
//! business words, honorifics, vessel prefixes and common business abbreviations.

/// A legal form: its canonical spelling and the jurisdictions (ISO alpha-2) where it is a
/// native form. An empty jurisdiction list means a generic English form (`Ltd`, `LLC`,
/// `JSC`, `Co`) that translations of any national form use, so it never conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegalForm {
    pub canonical: &'static str,
    pub jurisdictions: &'static [&'static str],
}

impl LegalForm {
    /// Two forms conflict when both are national forms of disjoint jurisdictions
    /// (`GmbH` vs `Sdn Bhd`, `OOO` vs `Ltda`); a generic English form conflicts with nothing.
    pub fn conflicts_with(&self, other: &LegalForm) -> bool {
        !self.jurisdictions.is_empty()
            && !other.jurisdictions.is_empty()
            && !self
                .jurisdictions
                .iter()
                .any(|j| other.jurisdictions.contains(j))
    }
}

macro_rules! lf {
    ($c:expr) => {
        LegalForm {
            canonical: $c,
            jurisdictions: &[],
        }
    };
    ($c:expr, $($j:expr),+) => {
        LegalForm {
            canonical: $c,
            jurisdictions: &[$($j),+],
        }
    };
}

/// Token sequences (after folding to lower-case ASCII and splitting on punctuation) that
/// spell a legal form. Longest sequences are tried first.
pub static LEGAL_FORMS: &[(&[&str], LegalForm)] = &[
    // English generic forms and their spelled-out variants.
    (&["limited", "liability", "company"], lf!("llc")),
    (&["limited", "liability", "co"], lf!("llc")),
    (&["l", "l", "c"], lf!("llc")),
    (&["llc"], lf!("llc")),
    (&["public", "limited", "company"], lf!("plc")),
    (&["plc"], lf!("plc")),
    (&["public", "joint", "stock", "company"], lf!("pjsc")),
    (&["pjsc"], lf!("pjsc")),
    (&["joint", "stock", "company"], lf!("jsc")),
    (&["jsc"], lf!("jsc")),
    (&["ojsc"], lf!("jsc")),
    (&["cjsc"], lf!("jsc")),
    (&["company", "limited"], lf!("ltd")),
    (&["co", "ltd"], lf!("ltd")),
    (&["co", "limited"], lf!("ltd")),
    (&["limited"], lf!("ltd")),
    (&["ltd"], lf!("ltd")),
    (&["company"], lf!("co")),
    (&["co"], lf!("co")),
    (&["llp"], lf!("llp")),
    (&["lp"], lf!("lp")),
    (&["establishment"], lf!("est")),
    (&["est"], lf!("est")),
    // North America (and the Philippines, which uses the same forms).
    (&["incorporated"], lf!("inc", "US", "CA", "PH")),
    (&["inc"], lf!("inc", "US", "CA", "PH")),
    (&["corporation"], lf!("corp", "US", "CA", "PH")),
    (&["corp"], lf!("corp", "US", "CA", "PH")),
    // South and South-East Asia, Oceania.
    (
        &["private", "limited"],
        lf!("pvt ltd", "IN", "PK", "BD", "LK", "NP"),
    ),
    (
        &["pvt", "ltd"],
        lf!("pvt ltd", "IN", "PK", "BD", "LK", "NP"),
    ),
    (&["pvt"], lf!("pvt ltd", "IN", "PK", "BD", "LK", "NP")),
    (&["private"], lf!("pvt ltd", "IN", "PK", "BD", "LK", "NP")),
    (&["pty", "ltd"], lf!("pty ltd", "AU", "ZA")),
    (&["pty", "limited"], lf!("pty ltd", "AU", "ZA")),
    (&["pty"], lf!("pty ltd", "AU", "ZA")),
    (&["pte", "ltd"], lf!("pte ltd", "SG")),
    (&["pte"], lf!("pte ltd", "SG")),
    (&["sendirian", "berhad"], lf!("sdn bhd", "MY")),
    (&["sdn", "bhd"], lf!("sdn bhd", "MY")),
    (&["berhad"], lf!("bhd", "MY")),
    (&["bhd"], lf!("bhd", "MY")),
    (&["perseroan", "terbatas"], lf!("pt", "ID")),
    (&["pt"], lf!("pt", "ID")),
    (&["commanditaire", "vennootschap"], lf!("cv", "ID", "NL")),
    (&["cv"], lf!("cv", "ID", "NL")),
    (&["kabushiki", "kaisha"], lf!("kk", "JP")),
    (&["kk"], lf!("kk", "JP")),
    (&["zhu", "shi", "hui", "she"], lf!("kk", "JP")),
    (&["ju", "sig", "hoe", "sa"], lf!("jusik hoesa", "KR")),
    (&["jusikhoesa"], lf!("jusik hoesa", "KR")),
    (&["gu", "fen", "you", "xian", "gong", "si"], lf!("ltd")),
    (&["you", "xian", "gong", "si"], lf!("ltd")),
    (&["kumpnilimitk"], lf!("ltd")),
    // Middle East.
    (&["fze"], lf!("fze", "AE")),
    (&["fzco"], lf!("fzco", "AE")),
    (&["fz", "llc"], lf!("fz llc", "AE")),
    (&["vm"], lf!("ltd")),
    (&["bm"], lf!("ltd")),
    (&["ltd", "sti"], lf!("ltd sti", "TR")),
    (&["limited", "sirketi"], lf!("ltd sti", "TR")),
    (&["sti"], lf!("ltd sti", "TR")),
    (&["a", "s"], lf!("as", "TR", "NO", "DK", "EE", "LV")),
    (&["as"], lf!("as", "TR", "NO", "DK", "EE", "LV")),
    // Europe.
    (
        &["gesellschaft", "mit", "beschrankter", "haftung"],
        lf!("gmbh", "DE", "AT", "CH"),
    ),
    (&["gmbh"], lf!("gmbh", "DE", "AT", "CH")),
    (&["ag"], lf!("ag", "DE", "AT", "CH")),
    (&["kg"], lf!("kg", "DE", "AT")),
    (&["korlatolt", "felelossegu", "tarsasag"], lf!("kft", "HU")),
    (&["kft"], lf!("kft", "HU")),
    (&["zrt"], lf!("zrt", "HU")),
    (
        &["spolka", "z", "ograniczona", "odpowiedzialnoscia"],
        lf!("sp z oo", "PL"),
    ),
    (&["sp", "z", "o", "o"], lf!("sp z oo", "PL")),
    (&["spolka", "komandytowo", "akcyjna"], lf!("ska", "PL")),
    (&["ska"], lf!("ska", "PL")),
    (&["s", "k", "a"], lf!("ska", "PL")),
    (&["spolka", "komandytowa"], lf!("sp k", "PL")),
    (&["sp", "k"], lf!("sp k", "PL")),
    (&["spolka", "jawna"], lf!("sp j", "PL")),
    (&["sp", "j"], lf!("sp j", "PL")),
    (&["spolka", "akcyjna"], lf!("sa", "PL")),
    (
        &["d", "o", "o"],
        lf!("doo", "SI", "HR", "RS", "BA", "ME", "MK"),
    ),
    (&["doo"], lf!("doo", "SI", "HR", "RS", "BA", "ME", "MK")),
    (&["d", "d"], lf!("dd", "SI", "HR", "BA")),
    (&["s", "r", "o"], lf!("sro", "CZ", "SK")),
    (&["sro"], lf!("sro", "CZ", "SK")),
    (&["eood"], lf!("eood", "BG")),
    (&["ood"], lf!("ood", "BG")),
    (&["ad"], lf!("ad", "BG", "RS", "MK")),
    (&["ou"], lf!("ou", "EE")),
    (&["uab"], lf!("uab", "LT")),
    (&["sia"], lf!("sia", "LV")),
    (&["oy"], lf!("oy", "FI")),
    (&["oyj"], lf!("oyj", "FI")),
    (&["ab"], lf!("ab", "SE")),
    (&["asa"], lf!("asa", "NO")),
    (&["aps"], lf!("aps", "DK")),
    (&["bv"], lf!("bv", "NL", "BE")),
    (&["nv"], lf!("nv", "NL", "BE")),
    (&["s", "r", "l"], lf!("srl", "IT", "RO", "BE")),
    (&["srl"], lf!("srl", "IT", "RO", "BE")),
    (&["s", "p", "a"], lf!("spa", "IT")),
    (&["spa"], lf!("spa", "IT")),
    (&["s", "a", "s"], lf!("sas", "IT", "FR", "CO")),
    (&["sas"], lf!("sas", "IT", "FR", "CO")),
    (&["s", "n", "c"], lf!("snc", "IT", "FR")),
    (&["snc"], lf!("snc", "IT", "FR")),
    (&["societa", "cooperativa"], lf!("coop", "IT")),
    (&["coop"], lf!("coop")),
    (&["cooperative"], lf!("coop")),
    (&["s", "a", "de", "c", "v"], lf!("sa de cv", "MX")),
    (&["sa", "de", "cv"], lf!("sa de cv", "MX")),
    (&["s", "a", "c"], lf!("sac", "PE")),
    (&["sac"], lf!("sac", "PE")),
    (&["ltda"], lf!("ltda", "BR", "PT", "CO", "CL")),
    (&["s", "l"], lf!("sl", "ES")),
    (&["sl"], lf!("sl", "ES")),
    (&["s", "a"], lf!("sa")),
    (&["sa"], lf!("sa")),
    (
        &["sarl"],
        lf!(
            "sarl", "FR", "LU", "MA", "CI", "SN", "CM", "ML", "BF", "LB", "CH"
        ),
    ),
    (&["suarl"], lf!("suarl", "FR", "CI", "SN", "ML", "BF", "TN")),
    (
        &["ets"],
        lf!("ets", "FR", "CI", "SN", "ML", "BF", "LB", "CM"),
    ),
    (&["gie"], lf!("gie", "FR", "CI", "SN", "ML", "BF", "CM")),
    // Former Soviet Union (transliterated from Cyrillic).
    (&["ooo"], lf!("ooo", "RU", "BY", "KZ")),
    (&["zao"], lf!("zao", "RU")),
    (&["oao"], lf!("oao", "RU")),
    (&["pao"], lf!("pao", "RU")),
    (&["ao"], lf!("ao", "RU", "KZ")),
    (&["tov"], lf!("tov", "UA")),
    (&["prat"], lf!("prat", "UA")),
    (&["chao"], lf!("prat", "UA", "RU")),
    (&["pat"], lf!("pat", "UA")),
    (&["fop"], lf!("fop", "UA")),
    (&["ip"], lf!("ip", "RU", "BY", "KZ")),
    // Armenian and Georgian LLC (transliterated).
    (&["spy"], lf!("llc")),
    (&["spe"], lf!("llc")),
    (&["shps"], lf!("llc")),
];

/// Function words of the languages names are written in; they barely identify anything.
pub static STOP_WORDS: &[&str] = &[
    "a", "al", "and", "da", "das", "de", "degli", "dei", "del", "della", "der", "des", "di", "do",
    "dos", "du", "e", "el", "en", "et", "for", "i", "in", "la", "le", "les", "na", "of", "the",
    "und", "van", "von", "wa", "y", "z",
];

/// Words many unrelated businesses share: they count, but for half a distinctive word.
pub static GENERIC_WORDS: &[&str] = &[
    "agency",
    "associates",
    "association",
    "bank",
    "brothers",
    "business",
    "center",
    "centre",
    "commerce",
    "commercial",
    "compagnie",
    "corporate",
    "development",
    "enterprise",
    "enterprises",
    "export",
    "exports",
    "fils",
    "finance",
    "financial",
    "general",
    "global",
    "group",
    "groupe",
    "import",
    "imports",
    "industrial",
    "industries",
    "industry",
    "international",
    "investment",
    "investments",
    "logistics",
    "management",
    "marine",
    "maritime",
    "national",
    "partners",
    "products",
    "service",
    "services",
    "shipping",
    "sociedad",
    "societe",
    "solutions",
    "sons",
    "supplies",
    "supply",
    "systems",
    "technology",
    "trade",
    "traders",
    "trading",
    "transport",
    "united",
    "world",
    "worldwide",
];

/// Titles and honorifics dropped from names.
pub static HONORIFICS: &[&str] = &[
    "dr", "hadji", "haji", "hajji", "messrs", "miss", "mr", "mrs", "ms", "prof", "sayed", "sayyid",
    "shaikh", "sheikh", "sir",
];

/// Prefixes that only say "this is a ship".
pub static VESSEL_PREFIXES: &[&str] = &["fv", "mfv", "msv", "mt", "mv", "my", "nm", "ss", "tb"];

/// Common business abbreviations and what they stand for.
pub static ABBREVIATIONS: &[(&str, &str)] = &[
    ("assoc", "associates"),
    ("bros", "brothers"),
    ("cia", "compania"),
    ("com", "comercio"),
    ("comm", "commendator"),
    ("dept", "department"),
    ("eng", "engineering"),
    ("engg", "engineering"),
    ("flli", "fratelli"),
    ("handl", "handlowe"),
    ("hldgs", "holdings"),
    ("ind", "industria"),
    ("intl", "international"),
    ("mfg", "manufacturing"),
    ("mgmt", "management"),
    ("natl", "national"),
    ("przeds", "przedsiebiorstwo"),
    ("svc", "service"),
    ("svcs", "services"),
    ("tech", "technology"),
];

pub fn is_stop(t: &str) -> bool {
    STOP_WORDS.binary_search(&t).is_ok()
}

pub fn is_generic(t: &str) -> bool {
    GENERIC_WORDS.binary_search(&t).is_ok()
}

pub fn is_honorific(t: &str) -> bool {
    HONORIFICS.binary_search(&t).is_ok()
}

pub fn is_vessel_prefix(t: &str) -> bool {
    VESSEL_PREFIXES.binary_search(&t).is_ok()
}

/// The expansion of a known abbreviation.
pub fn expand_abbreviation(t: &str) -> Option<&'static str> {
    ABBREVIATIONS
        .binary_search_by(|(a, _)| (*a).cmp(t))
        .ok()
        .and_then(|i| ABBREVIATIONS.get(i))
        .map(|(_, e)| *e)
}

/// Finds the longest legal-form sequence starting at `tokens[at]`.
pub fn legal_form_at(tokens: &[&str], at: usize) -> Option<(usize, &'static LegalForm)> {
    let rest = tokens.get(at..)?;
    let mut best: Option<(usize, &'static LegalForm)> = None;
    for (seq, form) in LEGAL_FORMS {
        if seq.len() <= rest.len()
            && rest.iter().zip(seq.iter()).all(|(a, b)| a == b)
            && best.is_none_or(|(n, _)| seq.len() > n)
        {
            best = Some((seq.len(), form));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        for list in [STOP_WORDS, GENERIC_WORDS, HONORIFICS, VESSEL_PREFIXES] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
        assert!(ABBREVIATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn conflicts() {
        let gmbh = legal_form_at(&["gmbh"], 0).map(|x| x.1).unwrap();
        let sdn = legal_form_at(&["sdn", "bhd"], 0).map(|x| x.1).unwrap();
        let ltd = legal_form_at(&["ltd"], 0).map(|x| x.1).unwrap();
        assert!(gmbh.conflicts_with(sdn));
        assert!(!gmbh.conflicts_with(ltd));
    }
}
