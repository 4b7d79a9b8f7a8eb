//! The policy in force drives verification and the lifecycle: the outcome of new evidence
//! (`verification::settle`) and its `missing` list follow the applied policy; the lifecycle
//! job's deadlines follow each account's risk tier; reminders go out before deadlines, once
//! per account and due date even with two instances on one database.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    deadlines_and_reminders_follow_each_tier,
    settle_follows_the_applied_policy,
    two_instances_send_each_reminder_once,
    reverification_needs_evidence_of_its_own_round,
);

const DAY: i64 = 86_400_000_000;

/// A passport (TD3, check digits valid, expires 2032) matching [`swedish`].
const PASSPORT: &str =
    "P<SWEERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36SWE7408122F3204153ZE184226B<<<<<16";

fn swedish(tag: &str) -> Value {
    let mut body = individual(tag);
    body["identity"]["names"] = json!([{"kind": "legal", "full": "Anna María Eriksson"}]);
    body["identity"]["birth_date"] = json!("1974-08-12");
    body["identity"]["citizenships"] = json!(["SE"]);
    body
}

/// [`individual`] without the crypto wallet (the policies here raise the tier for crypto).
fn no_crypto(mut body: Value) -> Value {
    body["payment_methods"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["type"] != "crypto_wallet");
    body
}

async fn put_policy(app: &TestApp, text: &str) -> reqwest::Response {
    app.client
        .put(app.url("/v1/policy"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/toml")
        .body(text.to_string())
        .send()
        .await
        .unwrap()
}

/// An account of the customer moved to `to` (from `applied`): its id.
async fn account(app: &TestApp, cid: &str, to: &str) -> String {
    let resp = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "product": "compute", "account_type": "standard"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let a: Value = resp.json().await.unwrap();
    let aid = a["id"].as_str().unwrap().to_string();
    let resp = app
        .client
        .post(app.url(&format!("/v1/accounts/{aid}/transitions")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&json!({"to": to, "reason": "test setup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    aid
}

async fn status(app: &TestApp, aid: &str) -> String {
    let a: Value = app
        .get(&format!("/v1/accounts/{aid}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    a["status"].as_str().unwrap().to_string()
}

async fn last_reason(app: &TestApp, aid: &str) -> String {
    let h: Value = app
        .get(&format!("/v1/accounts/{aid}/transitions"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    h.as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn pass(app: &TestApp, now: i64) -> u64 {
    match cip_server::jobs::lifecycle_run_once(&app.state, now, 2)
        .await
        .unwrap()
    {
        cip_server::jobs::Ran::Did(n) => n,
        cip_server::jobs::Ran::Idle => 0,
    }
}

async fn hook(app: &TestApp, url: &str, events: &[&str]) -> String {
    let resp = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn deliveries(app: &TestApp, hook_id: &str) -> Vec<Value> {
    let v: Value = app
        .get(
            &format!("/v1/webhooks/{hook_id}/deliveries?limit=1000"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    v.as_array().unwrap().clone()
}

/// Two tiers: `low` (10 days to verify, re-verified after 100) and `high` (20 and 200),
/// crypto payment raising a customer to `high`; reminders 3 days before a verification
/// deadline and 30 before a re-verification; failed accounts closed after 5 days.
const TWO_TIERS: &str = r#"
version = "two-tiers"
notice = "We verify foreign customers (EO 13984)."
max_failed_attempts = 3
close_failed_after_days = 5
verification_reminder_days = 3
reverification_reminder_days = 30
base_tier = "low"

[[tiers]]
name = "low"
interim_use = "restricted"
verification_deadline_days = 10
reverify_days = 100

[[tiers]]
name = "high"
interim_use = "none"
verification_deadline_days = 20
reverify_days = 200

[[factors]]
kind = "crypto_payment"
raise = 1

[[rules]]
require = [["document", "vendor_documentary"], ["otp_email", "otp_phone"]]
"#;

async fn deadlines_and_reminders_follow_each_tier(b: Backend) {
    let app = spawn_app(b).await;
    // Bad values of the lifecycle keys are refused with their lines; nothing changes.
    let bad = TWO_TIERS
        .replace(
            "\nverification_reminder_days = 3\n",
            "\nverification_reminder_days = 15\n",
        )
        .replace("close_failed_after_days = 5", "close_failed_after_days = 0");
    let resp = put_policy(&app, &bad).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    let line = |key: &str| bad.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let messages: Vec<&str> = err["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{err}");
    assert!(
        messages[0].starts_with(&format!("line {}: close_failed_after_days", line("close_"))),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with(&format!(
            "line {}: verification_reminder_days (15)",
            line("verification_reminder")
        )) && messages[1].contains("tier 'low'"),
        "{messages:?}"
    );
    let v: Value = app
        .get("/v1/policy", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["version"], "builtin", "the policy in force stays");
    assert_eq!(v["close_failed_after_days"], 7);

    let resp = put_policy(&app, TWO_TIERS).await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["reverification_reminder_days"], 30);
    let (url, mut hooks) = receiver().await;
    let reminders = hook(
        &app,
        &url,
        &[
            "account.verification_reminder",
            "account.reverification_reminder",
        ],
    )
    .await;

    // `low`: no crypto; `high`: pays with crypto. Each has a pending and an active account.
    let (low, _) = app.create_customer(&no_crypto(individual("tl"))).await;
    let (high, _) = app.create_customer(&individual("th")).await;
    let low_pending = account(&app, &low, "pending_verification").await;
    let high_pending = account(&app, &high, "pending_verification").await;
    let low_active = account(&app, &low, "active").await;
    let high_active = account(&app, &high, "active").await;
    let now = cip_server::time::now_micros();

    assert_eq!(pass(&app, now + 6 * DAY).await, 0, "nothing is near yet");
    // Day 8: within 3 days of the low tier's deadline only.
    assert_eq!(pass(&app, now + 8 * DAY).await, 1);
    assert_eq!(
        pass(&app, now + 8 * DAY).await,
        0,
        "a reminder goes out once"
    );
    let r = app
        .state
        .store
        .list_reminders(low_pending.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].kind, "verification");
    let ev = tokio::time::timeout(Duration::from_secs(30), hooks.recv())
        .await
        .expect("the reminder is delivered within 30 s")
        .unwrap();
    assert_eq!(ev["type"], "account.verification_reminder");
    assert_eq!(ev["data"]["account_id"], low_pending.as_str());
    assert_eq!(ev["data"]["tier"], "low");
    assert_eq!(ev["data"]["policy_version"], "two-tiers");
    assert_eq!(ev["data"]["days_left"], 1);
    assert_eq!(
        ev["data"]["due_at"].as_str().unwrap(),
        cip_server::time::to_rfc3339(r[0].due_at)
    );

    // Day 11: the low tier's pending account fails; the high tier's has until day 20.
    assert_eq!(pass(&app, now + 11 * DAY).await, 1);
    assert_eq!(status(&app, &low_pending).await, "failed");
    assert_eq!(status(&app, &high_pending).await, "pending_verification");
    assert!(
        last_reason(&app, &low_pending)
            .await
            .ends_with("(policy two-tiers, tier low: 10 days)")
    );
    // Day 18: the high tier's reminder, and the low one (failed on day 11) is closed after
    // the policy's 5 days; day 21: the high tier's pending account fails.
    assert_eq!(pass(&app, now + 18 * DAY).await, 2);
    assert_eq!(status(&app, &low_pending).await, "closed");
    assert!(
        last_reason(&app, &low_pending)
            .await
            .ends_with("(policy two-tiers, 5 days)")
    );
    assert_eq!(pass(&app, now + 21 * DAY).await, 1);
    assert_eq!(status(&app, &high_pending).await, "failed");
    assert_eq!(status(&app, &low_active).await, "active");

    // Re-verification: reminded 30 days ahead, due after 100 (low) and 200 (high) days.
    assert_eq!(pass(&app, now + 27 * DAY).await, 1, "the high one closes");
    assert_eq!(
        pass(&app, now + 75 * DAY).await,
        1,
        "the low one's reminder"
    );
    assert_eq!(pass(&app, now + 101 * DAY).await, 1);
    assert_eq!(status(&app, &low_active).await, "reverification_due");
    assert_eq!(status(&app, &high_active).await, "active");
    assert_eq!(
        pass(&app, now + 171 * DAY).await,
        1,
        "the high one's reminder"
    );
    assert_eq!(pass(&app, now + 201 * DAY).await, 1);
    assert_eq!(status(&app, &high_active).await, "reverification_due");
    assert!(
        last_reason(&app, &high_active)
            .await
            .ends_with("(policy two-tiers, tier high: 200 days)")
    );
    assert_eq!(pass(&app, now + 400 * DAY).await, 0);

    let log = deliveries(&app, &reminders).await;
    let count = |t: &str| log.iter().filter(|d| d["event_type"] == t).count();
    assert_eq!(count("account.verification_reminder"), 2, "{log:?}");
    assert_eq!(count("account.reverification_reminder"), 2, "{log:?}");
    // Each reminder is audited; the tier reads of the digests are too.
    let entries = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.draft.action == "account.reminder")
            .count(),
        4
    );
    assert!(
        entries
            .iter()
            .any(|e| e.draft.action == "lifecycle.tier" && e.draft.actor == "system:lifecycle")
    );
    app.cleanup().await;
}

/// Sends an email code to the customer and verifies it: the settlement.
async fn email_code(app: &TestApp, cid: &str) -> Value {
    code(app, cid, "email").await
}

/// A one-time code sent on `channel` and entered: the verification state after it.
async fn code(app: &TestApp, cid: &str, channel: &str) -> Value {
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/otp"),
            &app.admin,
            &json!({"channel": channel}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let c: Value = resp.json().await.unwrap();
    let id = c["challenge_id"].as_str().unwrap();
    let file = app.data_dir.join("otp-outbox").join(format!("{id}.json"));
    let m: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let resp = app
        .post(
            &format!("/v1/otp/{id}/verify"),
            &app.admin,
            &json!({"code": m["code"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["result"], "pass");
    r["verification"].clone()
}

/// A policy that verifies by an email code alone, and fails an account at its first failed
/// check.
fn email_only(version: &str) -> String {
    format!(
        r#"
version = "{version}"
notice = "We verify foreign customers (EO 13984)."
max_failed_attempts = 1
base_tier = "only"

[[tiers]]
name = "only"
interim_use = "restricted"
verification_deadline_days = 30
reverify_days = 365

[[rules]]
require = [["otp_email"]]
"#
    )
}

async fn settle_follows_the_applied_policy(b: Backend) {
    use cip_server::jobs::Ran;
    let app = spawn_app(b).await;
    // Under the built-in policy an email code alone leaves the account pending.
    let (first, _) = app.create_customer(&no_crypto(individual("s1"))).await;
    let first_account = account(&app, &first, "pending_verification").await;
    let v = email_code(&app, &first).await;
    assert_eq!(v["state"], "pending", "{v}");
    assert_eq!(v["policy_version"], "builtin");
    assert_eq!(v["tier"], "standard");
    assert_eq!(
        v["missing"],
        json!(["customer: a passing document or vendor_documentary"])
    );
    assert_eq!(status(&app, &first_account).await, "pending_verification");

    assert_eq!(
        put_policy(&app, &email_only("email-only")).await.status(),
        201
    );
    // The same evidence under the applied policy verifies a new customer at once.
    let (second, _) = app.create_customer(&swedish("s2")).await;
    let second_account = account(&app, &second, "pending_verification").await;
    let v = email_code(&app, &second).await;
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["policy_version"], "email-only");
    assert_eq!(v["tier"], "only");
    assert_eq!(v["missing"], json!([]));
    assert_eq!(v["accounts"][0]["account_id"], second_account.as_str());
    assert_eq!(v["accounts"][0]["to"], "active");
    assert_eq!(status(&app, &second_account).await, "active");
    // The re-evaluation after the change agrees: the first customer's account moves too.
    assert_eq!(
        cip_server::policy::reevaluate_run_once(&app.state)
            .await
            .unwrap(),
        Ran::Did(1)
    );
    assert_eq!(status(&app, &first_account).await, "active");

    // The policy's failure limit: one failed check fails the account.
    let (third, _) = app.create_customer(&individual("s3")).await;
    let third_account = account(&app, &third, "pending_verification").await;
    let resp = app
        .post(
            &format!("/v1/customers/{third}/documents"),
            &app.admin,
            &json!({ "mrz": PASSPORT }),
        )
        .await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["result"], "fail", "another person's passport: {r}");
    assert_eq!(r["verification"]["state"], "failed", "{r}");
    assert!(
        r["verification"]["accounts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("1 failed checks (limit 1, policy email-only"),
        "{r}"
    );
    assert_eq!(status(&app, &third_account).await, "failed");

    // A stricter version: what is missing is what the rule names.
    let stricter = email_only("phone-or-email-and-document")
        .replace("max_failed_attempts = 1", "max_failed_attempts = 5")
        .replace(
            r#"require = [["otp_email"]]"#,
            r#"require = [["document"], ["otp_phone", "payment_confirmation"]]"#,
        );
    assert_eq!(put_policy(&app, &stricter).await.status(), 201);
    let (fourth, _) = app.create_customer(&swedish("s4")).await;
    account(&app, &fourth, "pending_verification").await;
    let v = email_code(&app, &fourth).await;
    assert_eq!(v["state"], "pending");
    assert_eq!(
        v["missing"],
        json!([
            "customer: a passing document",
            "customer: a passing otp_phone or payment_confirmation"
        ])
    );
    app.cleanup().await;
}

/// An account due for re-verification becomes active again only on evidence collected since it
/// fell due: the passes that verified it before do not count, a failed check of the round
/// counts towards the policy's limit, and `missing` names what the round still lacks.
async fn reverification_needs_evidence_of_its_own_round(b: Backend) {
    let app = spawn_app(b).await;
    let text = email_only("code-reverify")
        .replace("max_failed_attempts = 1", "max_failed_attempts = 3")
        .replace(r#"[["otp_email"]]"#, r#"[["otp_email", "otp_phone"]]"#);
    assert_eq!(put_policy(&app, &text).await.status(), 201);
    let (cid, _) = app.create_customer(&swedish("rv")).await;
    let aid = account(&app, &cid, "pending_verification").await;
    let v = email_code(&app, &cid).await;
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(status(&app, &aid).await, "active");

    // The re-verification interval elapses (an analyst's move here; the job's is tested above).
    let resp = app
        .client
        .post(app.url(&format!("/v1/accounts/{aid}/transitions")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"3\"")
        .json(&json!({"to": "reverification_due", "reason": "interval elapsed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // New evidence that is not a pass: the old email code does not re-verify the account.
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/documents"),
            &app.admin,
            &json!({ "mrz": PASSPORT.replace("ERIKSSON<<ANNA<MARIA", "ERIKSSON<<BRITT<<<<<") }),
        )
        .await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["result"], "fail", "another name on the passport: {r}");
    assert_eq!(r["verification"]["state"], "pending", "{r}");
    assert_eq!(
        r["verification"]["missing"],
        json!(["customer: a passing otp_email or otp_phone"]),
        "{r}"
    );
    assert_eq!(status(&app, &aid).await, "reverification_due");

    // A code of this round re-verifies it (by phone: the email channel's resend throttle
    // still runs).
    let v = code(&app, &cid, "phone").await;
    assert_eq!(v["state"], "verified", "{v}");
    assert_eq!(v["accounts"][0]["account_id"], aid.as_str());
    assert_eq!(v["accounts"][0]["to"], "active");
    assert_eq!(status(&app, &aid).await, "active");
    assert!(
        last_reason(&app, &aid).await.starts_with("re-verified"),
        "{}",
        last_reason(&app, &aid).await
    );
    app.cleanup().await;
}

/// Two instances over one database run the lifecycle pass at the same moment: each
/// reminder is recorded, sent and audited once, and each move is made once.
async fn two_instances_send_each_reminder_once(b: Backend) {
    let app = spawn_app(b).await;
    let pg = app.database_url.clone().map(|u| (u, String::new()));
    let app2 = spawn_app_in(b, app.data_dir.clone(), pg).await;
    let hook_id = hook(
        &app,
        "http://127.0.0.1:9/none",
        &["account.reverification_reminder"],
    )
    .await;
    let mut active = Vec::new();
    for i in 0..5 {
        let (cid, _) = app.create_customer(&individual(&format!("r{i}"))).await;
        active.push(account(&app, &cid, "active").await);
    }
    // Built-in policy, high tier (crypto): due after 365 days, reminded 30 days ahead.
    let now = cip_server::time::now_micros() + 340 * DAY;
    for round in 0..2 {
        let (a, b2) = tokio::join!(
            cip_server::jobs::lifecycle_run_once(&app.state, now, 2),
            cip_server::jobs::lifecycle_run_once(&app2.state, now, 2)
        );
        let n = |r: cip_server::jobs::Ran| match r {
            cip_server::jobs::Ran::Did(n) => n,
            cip_server::jobs::Ran::Idle => 0,
        };
        let total = n(a.unwrap()) + n(b2.unwrap());
        assert_eq!(total, if round == 0 { 5 } else { 0 }, "round {round}");
    }
    for aid in &active {
        let r = app
            .state
            .store
            .list_reminders(aid.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].kind, "reverification");
        assert_eq!(status(&app, aid).await, "active");
    }
    assert_eq!(deliveries(&app, &hook_id).await.len(), 5);
    let entries = app
        .state
        .store
        .list_audit(&cip_store::AuditFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.draft.action == "account.reminder")
            .count(),
        5
    );
    // Then both move them once, a year on.
    let later = now + 30 * DAY;
    let (a, b2) = tokio::join!(
        cip_server::jobs::lifecycle_run_once(&app.state, later, 2),
        cip_server::jobs::lifecycle_run_once(&app2.state, later, 2)
    );
    let n = |r: cip_server::jobs::Ran| match r {
        cip_server::jobs::Ran::Did(n) => n,
        cip_server::jobs::Ran::Idle => 0,
    };
    assert_eq!(n(a.unwrap()) + n(b2.unwrap()), 5);
    for aid in &active {
        assert_eq!(status(&app, aid).await, "reverification_due");
    }
    app2.cleanup().await;
    app.cleanup().await;
}
