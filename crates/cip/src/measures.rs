//! `cip measures`: the special measures in the database and the report of one, read
//! directly from the data dir / database like `cip lists`.

use cip_server::api::special_measures::{build_report, measure_dto};
use cip_store::{AuditDraft, PageRequest};
use uuid::Uuid;

fn api_error(e: cip_server::error::ApiError) -> anyhow::Error {
    let (_, body) = e.into_body(None);
    anyhow::anyhow!("{}: {}", body.code, body.message)
}

pub async fn list(inst: &cip_server::install::Installation, json: bool) -> anyhow::Result<u8> {
    let now = cip_server::time::now_micros();
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = inst
            .store
            .list_measures(&PageRequest { after, limit: 500 })
            .await?;
        after = page.last().map(|m| m.id);
        let done = page.len() < 500;
        rows.extend(page);
        if done {
            break;
        }
    }
    let dtos = rows
        .iter()
        .map(|r| measure_dto(r, now))
        .collect::<Result<Vec<_>, _>>()
        .map_err(api_error)?;
    if json {
        crate::print_json(&serde_json::to_value(&dtos)?);
    } else if dtos.is_empty() {
        println!("no special measure is recorded (POST /v1/special-measures)");
    } else {
        println!(
            "{:<36} {:<10} {:<24} {:<11} {:<11} {:<11} LEGAL REFERENCE",
            "ID", "STATUS", "TARGET", "OPENING", "MAINTAINING", "EXPIRES"
        );
        for m in &dtos {
            let t = &m.measure.target;
            let target = match (&t.country, &t.list_id) {
                (Some(c), _) => format!(
                    "{c}{}",
                    t.subdivision
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
                (_, Some(l)) => format!("list {l}"),
                _ => "-".into(),
            };
            println!(
                "{:<36} {:<10} {:<24} {:<11} {:<11} {:<11} {}",
                m.id,
                m.status,
                target,
                m.measure.opening.as_deref().unwrap_or("-"),
                m.measure.maintaining.as_deref().unwrap_or("-"),
                m.measure.expiry_date.as_deref().unwrap_or("-"),
                m.measure.legal_reference
            );
        }
    }
    Ok(0)
}

/// The report reads evidence taken from customers' records: audited like the API's.
pub async fn report(
    inst: &cip_server::install::Installation,
    id: Uuid,
    json: bool,
) -> anyhow::Result<u8> {
    let report = build_report(inst.store.as_ref(), id, cip_server::time::now_micros())
        .await
        .map_err(api_error)?;
    inst.store
        .append_audit(vec![AuditDraft {
            at: cip_server::time::now_micros(),
            actor: "cli:measures".into(),
            role: "admin".into(),
            action: "special_measure.report".into(),
            record_type: "special_measure".into(),
            record_id: Some(id.to_string()),
            fields: vec![
                format!("accounts={}", report.accounts.len()),
                format!("refused_applications={}", report.refused_applications.len()),
                "/evidence".into(),
            ],
            request_id: None,
            purpose: None,
        }])
        .await?;
    if json {
        crate::print_json(&serde_json::to_value(&report)?);
        return Ok(0);
    }
    println!(
        "special measure {} ({}) — {}",
        report.measure.id, report.measure.measure.legal_reference, report.measure.status
    );
    if report.accounts.is_empty() {
        println!("no account was touched");
    } else {
        println!(
            "{:<36} {:<17} {:<18} {:<28} EVIDENCE",
            "ACCOUNT", "ACTION", "CAUSE", "DEADLINE"
        );
        for a in &report.accounts {
            println!(
                "{:<36} {:<17} {:<18} {:<28} {}",
                a.account_id,
                a.action,
                a.cause,
                a.deadline.as_deref().unwrap_or("-"),
                a.evidence
                    .iter()
                    .map(|e| format!("{} of {}", e.kind, e.subject))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if !report.refused_applications.is_empty() {
        println!();
        println!(
            "{:<36} {:<17} {:<14} {:<28} PRODUCT",
            "REFUSED APPLICATION OF", "ACCOUNT TYPE", "REASON", "REFUSED AT"
        );
        for r in &report.refused_applications {
            println!(
                "{:<36} {:<17} {:<14} {:<28} {}",
                r.customer_id, r.account_type, r.reason, r.refused_at, r.product
            );
        }
    }
    Ok(0)
}
