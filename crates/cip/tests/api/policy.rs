//! `cip policy init|check`: a policy file is validated with line numbers and explained
//! against the stored customers before anything is applied.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

fn check_json(app: &crate::helpers::TestApp, file: &std::path::Path) -> Value {
    let out = app.cli(&["policy", "check", file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn policy_check_explains_a_file_before_it_is_applied(backend: Backend) {
    let app = spawn_app(backend).await;
    cip_server::demo::load(&app.state).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // `init` prints the policy in force; checking it changes nothing.
    let init = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(["policy", "init"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let builtin = String::from_utf8(init.stdout).unwrap();
    let same = dir.path().join("builtin.toml");
    std::fs::write(&same, &builtin).unwrap();
    let v = check_json(&app, &same);
    let accounts = v["accounts"].as_u64().unwrap();
    assert!(accounts > 10, "{v}");
    assert!(v["customers"].as_u64().unwrap() > 5, "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["verdicts_before"], v["verdicts_after"]);
    let before: u64 = v["verdicts_before"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(before, accounts, "every open account has one verdict");
    let not_required = v["verdicts_before"]["not_required"].as_u64().unwrap_or(0);
    assert!(not_required > 0, "the demo has U.S. customers: {v}");

    // Verifying U.S. persons too moves exactly those accounts to pending.
    let everyone = dir.path().join("everyone.toml");
    std::fs::write(
        &everyone,
        builtin
            .replace("verify_us_persons = false", "verify_us_persons = true")
            .replace("version = \"builtin\"", "version = \"2026-12-everyone\""),
    )
    .unwrap();
    let v = check_json(&app, &everyone);
    assert_eq!(v["proposed"], "2026-12-everyone");
    assert_eq!(
        v["moves"]["not_required -> pending"].as_u64(),
        Some(not_required),
        "{v}"
    );
    for c in v["changes"].as_array().unwrap() {
        assert_eq!(c["verdict_before"], "not_required", "{c}");
        assert_eq!(c["verdict_after"], "pending", "{c}");
    }

    // A jurisdiction factor raises the tier of the customers tied to it, only those.
    let risky = dir.path().join("risky.toml");
    let with_factor = builtin.replacen(
        "[[factors]]",
        "[[factors]]\nkind = \"jurisdiction\"\ncountries = [\"DE\", \"GB\", \"FR\", \"JP\", \"IN\", \"BR\", \"NG\", \"RU\", \"CN\"]\nraise = 1\n\n[[factors]]",
        1,
    );
    std::fs::write(&risky, &with_factor).unwrap();
    let v = check_json(&app, &risky);
    let tier_changes = v["tier_changes"].as_u64().unwrap();
    assert!(tier_changes > 0 && tier_changes < accounts, "{v}");

    // The bulk read of every record is audited.
    let entries = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.draft.action == "policy.check")
            .count(),
        3
    );

    // A refused file: every problem with its line, exit 6, nothing read or written.
    let head = app.audit_head().await;
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        builtin
            .replace("base_tier = \"standard\"", "base_tier = \"medium\"")
            .replace("raise = 1", "raise = 0")
            .replace(
                "verify_us_persons = false",
                "verify_us_persons = false\nverify_everything = 1",
            ),
    )
    .unwrap();
    let out = app.cli(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verify_everything"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    // Unknown keys stop the parse; fixed, the contradictions are all reported with lines.
    let bad2 = builtin
        .replace("base_tier = \"standard\"", "base_tier = \"medium\"")
        .replace("raise = 1", "raise = 0");
    std::fs::write(&bad, &bad2).unwrap();
    let out = app.cli(&["policy", "check", bad.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(6));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    let base_line = bad2
        .lines()
        .position(|l| l.starts_with("base_tier"))
        .unwrap()
        + 1;
    assert!(
        problems
            .iter()
            .any(|p| p["line"] == base_line && p["message"].as_str().unwrap().contains("medium")),
        "{v}"
    );
    assert_eq!(
        problems
            .iter()
            .filter(|p| p["message"].as_str().unwrap().contains("raise"))
            .count(),
        3,
        "{v}"
    );
    assert_eq!(
        app.audit_head().await,
        head,
        "a refused file reads and writes nothing"
    );
    app.cleanup().await;
}

/// `GET`/`PUT /v1/policy`: the built-in policy until one is applied; a refused file (422,
/// every problem with its line) changes nothing; an applied one is in force for the server and
/// for `cip policy check`; version labels are immutable.
async fn policy_is_applied_through_the_api(backend: Backend) {
    use cip_core::model::Role;
    let app = spawn_app(backend).await;
    let put = |token: String, text: String| {
        let req = app
            .client
            .put(format!("{}/v1/policy", app.base))
            .bearer_auth(token)
            .header("content-type", "application/toml")
            .body(text);
        async move { req.send().await.unwrap() }
    };
    let analyst = app.key(Role::Analyst).await;
    let v: Value = app.get("/v1/policy", &analyst).await.json().await.unwrap();
    assert_eq!(v["builtin"], true, "{v}");
    assert_eq!(v["version"], "builtin");
    let builtin = v["text"].as_str().unwrap().to_string();

    let head = app.audit_head().await;
    let bad = builtin.replace("base_tier = \"standard\"", "base_tier = \"medium\"");
    let resp = put(app.admin.clone(), bad.clone()).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("base_tier"))
        .unwrap()
        + 1;
    assert!(
        err["details"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("line {line}: ")),
        "{err}"
    );
    let resp = put(analyst.clone(), builtin.clone()).await;
    assert_eq!(resp.status(), 403, "only an admin applies a policy");
    assert_eq!(app.audit_head().await, head, "refusals write nothing");

    let everyone = builtin
        .replace("verify_us_persons = false", "verify_us_persons = true")
        .replace("version = \"builtin\"", "version = \"2026-12-a\"");
    let resp = put(app.admin.clone(), everyone.clone()).await;
    assert_eq!(resp.status(), 201);
    let resp = put(app.admin.clone(), everyone.clone()).await;
    assert_eq!(resp.status(), 200, "the version in force again: unchanged");
    let v: Value = app.get("/v1/policy", &analyst).await.json().await.unwrap();
    assert_eq!(v["builtin"], false);
    assert_eq!(v["version"], "2026-12-a");
    assert_eq!(v["verify_us_persons"], true);
    assert_eq!(v["text"], everyone.as_str());

    let reused = everyone.replace("max_failed_attempts = 3", "max_failed_attempts = 4");
    let resp = put(app.admin.clone(), reused).await;
    assert_eq!(resp.status(), 409);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "CIP-POLICY-0001");
    let v: Value = app.get("/v1/policy", &analyst).await.json().await.unwrap();
    assert_eq!(v["version"], "2026-12-a", "the policy in force stays");

    // The CLI checks against the policy in force.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, &builtin).unwrap();
    let v = check_json(&app, &file);
    assert_eq!(v["policy_in_force"], "2026-12-a");
    assert_eq!(v["proposed"], "builtin");

    let entries = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 1000)
        .await
        .unwrap();
    let applied: Vec<_> = entries
        .iter()
        .filter(|e| e.draft.action == "policy.apply")
        .collect();
    assert_eq!(applied.len(), 1);
    assert!(
        applied[0]
            .draft
            .fields
            .contains(&"version=2026-12-a".to_string())
    );
    app.cleanup().await;
}

/// Every open account whose status the policy in force no longer supports, with the move.
async fn moves_required(app: &crate::helpers::TestApp) -> Vec<(uuid::Uuid, &'static str)> {
    let store = app.state.store.as_ref();
    let (policy, _, _) = cip_server::policy::active(store).await.unwrap();
    let mut out = Vec::new();
    cip_server::policy::for_each_evaluable(store, &app.state.keyring(), &|_| {}, |e| {
        for a in e.accounts {
            let s = cip_server::policy::subject(e.facts, a.account_type, &a.product, e.passed, 0);
            let o = cip_core::policy::evaluate(&policy, &s);
            if let Some((to, _)) = cip_server::policy::required_move(&policy, a, &o) {
                out.push((a.id, to.as_str()));
            }
        }
    })
    .await
    .unwrap();
    out
}

async fn status_of(app: &crate::helpers::TestApp, id: uuid::Uuid) -> String {
    app.state
        .store
        .get_account(id)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// Applying a policy re-evaluates every open account once (the job, under a lease): accounts
/// the new policy no longer lets stand move by ordinary transitions citing the version, the
/// bulk read is audited, a second pass does nothing, and a policy relaxed again moves them back.
async fn applying_a_policy_moves_the_accounts_it_changes(backend: Backend) {
    use cip_server::jobs::Ran;
    use cip_server::policy::reevaluate_run_once;
    let app = spawn_app(backend).await;
    cip_server::demo::load(&app.state).await.unwrap();
    assert_eq!(
        reevaluate_run_once(&app.state).await.unwrap(),
        Ran::Idle,
        "the built-in policy in force since the install: nothing to re-evaluate"
    );
    let builtin = cip_server::policy_file::EXAMPLE.to_string();
    let apply = |text: String| {
        let store = app.state.store.clone();
        async move {
            cip_server::policy::apply(store.as_ref(), &text, |action, fields| {
                cip_store::AuditDraft {
                    at: cip_server::time::now_micros(),
                    actor: "test".into(),
                    role: "admin".into(),
                    action: action.into(),
                    record_type: "policy".into(),
                    record_id: None,
                    fields,
                    request_id: None,
                    purpose: None,
                }
            })
            .await
            .unwrap()
        }
    };

    // Verifying U.S. persons too: their active accounts must go back to pending.
    apply(
        builtin
            .replace("verify_us_persons = false", "verify_us_persons = true")
            .replace("version = \"builtin\"", "version = \"2026-12-everyone\""),
    )
    .await;
    let expected = moves_required(&app).await;
    assert!(
        expected.iter().any(|(_, to)| *to == "pending_verification"),
        "the demo has active U.S. accounts: {expected:?}"
    );
    let moved = match reevaluate_run_once(&app.state).await.unwrap() {
        Ran::Did(n) => n,
        Ran::Idle => panic!("a new policy must be re-evaluated"),
    };
    assert_eq!(moved as usize, expected.len());
    for (id, to) in &expected {
        assert_eq!(status_of(&app, *id).await, *to);
        let t = app.state.store.list_transitions(*id).await.unwrap();
        let last = t.last().unwrap();
        assert_eq!(last.actor, cip_server::policy::POLICY_ACTOR);
        assert!(last.reason.contains("2026-12-everyone"), "{}", last.reason);
    }
    assert!(
        moves_required(&app).await.is_empty(),
        "after the pass every account agrees with the policy in force"
    );
    assert_eq!(
        reevaluate_run_once(&app.state).await.unwrap(),
        Ran::Idle,
        "done once"
    );
    let entries = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap();
    let reevaluated: Vec<_> = entries
        .iter()
        .filter(|e| e.draft.action == "policy.reevaluate")
        .collect();
    assert_eq!(reevaluated.len(), 1);
    assert!(
        reevaluated[0]
            .draft
            .fields
            .contains(&format!("moved={}", expected.len())),
        "{:?}",
        reevaluated[0].draft.fields
    );

    // Relaxed again: the accounts that were moved only for the stricter policy come back.
    apply(builtin.replace("version = \"builtin\"", "version = \"2026-12-relaxed\"")).await;
    let back = moves_required(&app).await;
    assert!(
        !back.is_empty() && back.iter().all(|(_, to)| *to == "active"),
        "{back:?}"
    );
    assert!(
        expected
            .iter()
            .filter(|(_, to)| *to == "pending_verification")
            .any(|(id, _)| back.iter().any(|(b, _)| b == id)),
        "the U.S. accounts the stricter policy sent back to pending come back"
    );
    assert_eq!(
        reevaluate_run_once(&app.state).await.unwrap(),
        Ran::Did(back.len() as u64)
    );
    for (id, _) in &back {
        assert_eq!(status_of(&app, *id).await, "active");
    }
    assert!(moves_required(&app).await.is_empty());
    app.cleanup().await;
}

crate::both_backends!(
    policy_check_explains_a_file_before_it_is_applied,
    policy_is_applied_through_the_api,
    applying_a_policy_moves_the_accounts_it_changes
);
