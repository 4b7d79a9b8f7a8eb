//! Evaluation of a scorer on labelled pairs: precision, recall, F1 at a threshold and ROC AUC.

use serde::Serialize;

/// One scored, labelled pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoredPair {
    pub score: f32,
    pub is_match: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub threshold: f32,
    pub pairs: usize,
    pub positives: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Area under the ROC curve (probability a random match outscores a random non-match;
    /// ties count half).
    pub auc: f64,
}

/// Computes the metrics; a pair is predicted a match when `score >= threshold`.
pub fn evaluate(pairs: &[ScoredPair], threshold: f32) -> Metrics {
    let mut tp = 0;
    let mut fp = 0;
    let mut fneg = 0;
    for p in pairs {
        match (p.score >= threshold, p.is_match) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            (false, false) => {}
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Metrics {
        threshold,
        pairs: pairs.len(),
        positives: tp + fneg,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fneg,
        precision,
        recall,
        f1,
        auc: roc_auc(pairs),
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged.
pub fn roc_auc(pairs: &[ScoredPair]) -> f64 {
    let mut sorted: Vec<ScoredPair> = pairs.to_vec();
    sorted.sort_by(|a, b| a.score.total_cmp(&b.score));
    let pos = sorted.iter().filter(|p| p.is_match).count();
    let neg = sorted.len() - pos;
    if pos == 0 || neg == 0 {
        return 0.0;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted.get(j).map(|p| p.score) == sorted.get(i).map(|p| p.score) {
            j += 1;
        }
        // Ranks i+1..=j share their average.
        let avg = (i + 1 + j) as f64 / 2.0;
        let pos_here = sorted
            .get(i..j)
            .map_or(0, |s| s.iter().filter(|p| p.is_match).count());
        rank_sum += avg * pos_here as f64;
        i = j;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_tied() {
        let p = |score, is_match| ScoredPair { score, is_match };
        let m = evaluate(&[p(0.9, true), p(0.1, false)], 0.5);
        assert_eq!((m.precision, m.recall, m.f1, m.auc), (1.0, 1.0, 1.0, 1.0));
        assert_eq!(roc_auc(&[p(0.5, true), p(0.5, false)]), 0.5);
        let m = evaluate(&[p(0.9, false), p(0.1, true)], 0.5);
        assert_eq!((m.f1, m.auc), (0.0, 0.0));
    }
}

/// A labelled pair read from a Cascade-style CSV
/// (`case_group,schema,name1,name2,is_match,quality,category,…`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelledPair {
    pub kind: crate::model::EntryKind,
    pub name1: String,
    pub name2: String,
    pub is_match: bool,
    pub category: String,
}

/// Reads labelled pairs (columns found by header name: `schema`, `name1`, `name2`,
/// `is_match`, `category`).
pub fn read_labelled_pairs(csv_text: &str) -> Result<Vec<LabelledPair>, String> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let h = r.headers().map_err(|e| e.to_string())?.clone();
    let col = |n: &str| {
        h.iter()
            .position(|x| x == n)
            .ok_or_else(|| format!("missing column {n}"))
    };
    let (schema, n1, n2, m, cat) = (
        col("schema")?,
        col("name1")?,
        col("name2")?,
        col("is_match")?,
        col("category")?,
    );
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        let f = |i: usize| rec.get(i).unwrap_or("").to_owned();
        out.push(LabelledPair {
            kind: if f(schema) == "Vessel" {
                crate::model::EntryKind::Vessel
            } else if f(schema) == "Person" {
                crate::model::EntryKind::Person
            } else {
                crate::model::EntryKind::Entity
            },
            name1: f(n1),
            name2: f(n2),
            is_match: f(m) == "true",
            category: f(cat),
        });
    }
    Ok(out)
}

/// Scores each pair with the engine's name scorer.
pub fn score_pairs(pairs: &[LabelledPair]) -> Vec<ScoredPair> {
    pairs
        .iter()
        .map(|p| ScoredPair {
            score: crate::score::score_names(&p.name1, &p.name2, p.kind),
            is_match: p.is_match,
        })
        .collect()
}

/// Reads `cross_script_pairs.csv` (`query,expected,min_score,description`, `#` comments)
/// and returns (query, expected) pairs.
pub fn read_cross_script_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.trim().to_owned(), f.next()?.trim().to_owned()))
        })
        .collect()
}
