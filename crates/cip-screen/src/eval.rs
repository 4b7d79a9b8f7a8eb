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
