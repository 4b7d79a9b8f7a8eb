//! `cip policy init|check`: the provider's verification policy file. `check` reads the file,
//! refuses it with every problem and its line, or tells what it would change for each open
//! account compared with the policy in force, before anything is applied.

use std::path::Path;

use cip_core::policy::Policy;
use cip_server::policy_file;
use cip_store::AuditDraft;

/// Prints the built-in policy as a file to start from.
pub fn init() -> u8 {
    print!("{}", policy_file::EXAMPLE);
    0
}

/// Parses a policy file; on problems prints them as `FILE:LINE: message` and returns `None`.
pub fn read(file: &Path, json: bool) -> anyhow::Result<Option<Policy>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e}; give the path of a policy file (`cip policy init` prints one)",
            file.display()
        )
    })?;
    match policy_file::parse(&text) {
        Ok(p) => Ok(Some(p)),
        Err(problems) => {
            if json {
                let list: Vec<_> = problems
                    .iter()
                    .map(|p| serde_json::json!({"line": p.line, "message": p.message}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "file": file.display().to_string(),
                        "valid": false,
                        "problems": list,
                    }))?
                );
            } else {
                for p in &problems {
                    eprintln!("{}:{}: {}", file.display(), p.line, p.message);
                }
                eprintln!(
                    "error: the policy file was refused ({} problem(s)); nothing was changed",
                    problems.len()
                );
            }
            Ok(None)
        }
    }
}

pub async fn check(
    inst: &cip_server::install::Installation,
    proposed: Policy,
    json: bool,
) -> anyhow::Result<u8> {
    let (in_force, _, _) = cip_server::policy::active(inst.store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let total = inst
        .store
        .count_customers()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = crate::bench::progress_bar(total, "customers");
    let keyring = inst.keyring();
    let report =
        cip_server::policy::check(inst.store.as_ref(), &keyring, &in_force, &proposed, &|n| {
            bar.set_position(n)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    // Every customer record was opened: one audit entry for the bulk read.
    inst.store
        .append_audit(vec![AuditDraft {
            at: cip_server::time::now_micros(),
            actor: "cli".into(),
            role: "admin".into(),
            action: "policy.check".into(),
            record_type: "customer".into(),
            record_id: None,
            fields: vec![format!(
                "{} customers (determination facts)",
                report.customers
            )],
            request_id: None,
            purpose: Some(format!("policy check of {}", proposed.version)),
        }])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    println!(
        "policy {} (in force: {}): {} open accounts of {} customers evaluated",
        report.proposed, report.policy_in_force, report.accounts, report.customers
    );
    println!("  {:<16} {:>10} {:>10}", "verdict", "in force", "proposed");
    let mut verdicts: Vec<&str> = report
        .verdicts_before
        .keys()
        .chain(report.verdicts_after.keys())
        .copied()
        .collect();
    verdicts.sort_unstable();
    verdicts.dedup();
    for v in verdicts {
        println!(
            "  {:<16} {:>10} {:>10}",
            v,
            report.verdicts_before.get(v).copied().unwrap_or(0),
            report.verdicts_after.get(v).copied().unwrap_or(0)
        );
    }
    if report.moves.is_empty() && report.tier_changes == 0 {
        println!("no account would change");
    } else {
        for (m, n) in &report.moves {
            println!("  {n} account(s): {m}");
        }
        println!("  {} account(s) change risk tier", report.tier_changes);
        println!("  (--json lists every account that changes)");
    }
    Ok(0)
}
