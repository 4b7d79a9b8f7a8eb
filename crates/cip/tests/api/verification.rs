//! Verification end to end: documents and one-time codes recorded as evidence that verify a
//! foreign customer (with the account's webhook observed), code brute force, throttling and
//! expiry, vendor callbacks (forged, replayed), failures failing the account, unverified
//! cases opened by the due-work job and resolved, and who may do what.

use std::time::Duration;

use cip_core::model::Role;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    foreign_individual_verified_by_passport_and_email_code,
    otp_brute_force_is_locked,
    otp_resend_is_throttled_and_codes_expire,
    vendor_callbacks_are_signed_and_idempotent,
    failed_checks_fail_the_account_and_open_a_case,
    unverified_case_opened_by_due_work_and_resolved,
    roles_are_checked,
    entity_verified_by_formation_document_and_its_foreign_owner,
    concurrent_resends_send_one_code,
);

/// A valid TD3 passport (expires 2032) matching [`swedish`].
const PASSPORT: &str =
    "P<SWEERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36SWE7408122F3204153ZE184226B<<<<<16";
/// The ICAO specimen: valid check digits, expired in 2012.
const EXPIRED: &str =
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";

fn swedish(tag: &str) -> Value {
    let mut body = individual(tag);
    body["identity"]["names"] = json!([{"kind": "legal", "full": "Anna María Eriksson"}]);
    body["identity"]["birth_date"] = json!("1974-08-12");
    body["identity"]["citizenships"] = json!(["SE"]);
    body
}

/// A customer with one account pending verification: (customer id, account id).
async fn pending(app: &TestApp, tag: &str) -> (String, String) {
    pending_with(app, &swedish(tag)).await
}

async fn pending_with(app: &TestApp, body: &Value) -> (String, String) {
    let (cid, _) = app.create_customer(body).await;
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
        .json(&json!({"to": "pending_verification", "reason": "foreign customer: verify"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    (cid, aid)
}

async fn account_status(app: &TestApp, aid: &str) -> String {
    let a: Value = app
        .get(&format!("/v1/accounts/{aid}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    a["status"].as_str().unwrap().to_string()
}

async fn evidence(app: &TestApp, cid: &str) -> Vec<Value> {
    let resp = app
        .get(&format!("/v1/customers/{cid}/evidence"), &app.admin)
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Sends a code by email and reads it from the development sender's file.
async fn send_code(app: &TestApp, cid: &str) -> (String, String) {
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/otp"),
            &app.admin,
            &json!({"channel": "email"}),
        )
        .await;
    let status = resp.status();
    let c: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{c}");
    let id = c["challenge_id"].as_str().unwrap().to_string();
    let file = app.data_dir.join("otp-outbox").join(format!("{id}.json"));
    let m: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    (id, m["code"].as_str().unwrap().to_string())
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> reqwest::Response {
    app.post(
        &format!("/v1/otp/{challenge}/verify"),
        &app.admin,
        &json!({ "code": code }),
    )
    .await
}

async fn foreign_individual_verified_by_passport_and_email_code(b: Backend) {
    let app = spawn_app(b).await;
    let (url, mut hooks) = receiver().await;
    let resp = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "events": ["account.status_changed"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let (cid, aid) = pending(&app, "v1").await;

    // The passport, with a scan: a pass, but one non-documentary check is still missing.
    let scan = b"\x89PNG\r\n\x1a\nnot really a png";
    // base64 of `scan` (python3: base64.b64encode(...)).
    const SCAN_BASE64: &str = "iVBORw0KGgpub3QgcmVhbGx5IGEgcG5n";
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/documents"),
            &app.admin,
            &json!({"mrz": PASSPORT, "image": {"content_type": "image/png",
                "data_base64": SCAN_BASE64}}),
        )
        .await;
    let status = resp.status();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["method"], "document");
    assert_eq!(r["result"], "pass", "{r}");
    assert_eq!(r["verification"]["state"], "pending");
    // The built-in policy's rule for individuals: a document, and one of its
    // non-documentary methods.
    assert_eq!(
        r["verification"]["missing"],
        json!([
            "customer: a passing otp_email, otp_phone, payment_confirmation or vendor_non_documentary"
        ])
    );
    assert_eq!(r["verification"]["policy_version"], "builtin");
    assert_eq!(
        r["verification"]["tier"], "high",
        "crypto payment raises the tier"
    );
    assert_eq!(account_status(&app, &aid).await, "pending_verification");

    // The email code: read from the development sender's file, never from the log.
    let (challenge, code) = send_code(&app, &cid).await;
    let resp = verify(&app, &challenge, &code).await;
    let status = resp.status();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], "pass");
    assert_eq!(r["status"], "verified");
    assert_eq!(r["verification"]["state"], "verified", "{r}");
    assert_eq!(r["verification"]["accounts"][0]["account_id"], aid.as_str());
    assert_eq!(r["verification"]["accounts"][0]["to"], "active");
    assert_eq!(account_status(&app, &aid).await, "active");
    // A used code cannot be used again.
    assert_eq!(verify(&app, &challenge, &code).await.status(), 409);

    // The transition went out as a webhook, from the ordinary lifecycle machinery.
    let ev = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let ev = hooks.recv().await.expect("receiver open");
            if ev["data"]["to"] == "active" {
                return ev;
            }
        }
    })
    .await
    .expect("the status change is delivered within 30 s");
    assert_eq!(ev["type"], "account.status_changed");
    assert_eq!(ev["data"]["account_id"], aid.as_str());
    assert_eq!(ev["data"]["from"], "pending_verification");
    assert!(
        ev["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("verified"),
        "{ev}"
    );

    // The evidence, with who, when, and what was found; the scan by its hash.
    let head = app.audit_head().await;
    let ev = evidence(&app, &cid).await;
    assert_eq!(app.audit_head().await, head + 1, "the read is audited");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["method"], "document");
    assert_eq!(ev[0]["details"]["document"]["nationality_country"], "SE");
    assert_eq!(ev[0]["details"]["comparison"]["name"], "match");
    assert_eq!(ev[0]["details"]["image"]["size"], scan.len());
    assert_eq!(
        ev[0]["details"]["image"]["sha256"],
        <sha2::Sha256 as sha2::Digest>::digest(scan)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(ev[1]["method"], "otp_email");
    assert_eq!(ev[1]["result"], "pass");
    assert!(ev[1]["actor"].as_str().unwrap().len() == 16);
    let id: uuid::Uuid = ev[0]["id"].as_str().unwrap().parse().unwrap();
    let file = app
        .state
        .store
        .get_evidence_file(id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !file.content.windows(9).any(|w| w == b"not reall"),
        "the scan is stored encrypted"
    );
    app.cleanup().await;
}

async fn otp_brute_force_is_locked(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, aid) = pending(&app, "bf").await;
    let (challenge, code) = send_code(&app, &cid).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for left in (1..5).rev() {
        let r: Value = verify(&app, &challenge, wrong).await.json().await.unwrap();
        assert_eq!(r["result"], "fail");
        assert_eq!(r["status"], "pending");
        assert_eq!(r["attempts_left"], left);
    }
    let r: Value = verify(&app, &challenge, wrong).await.json().await.unwrap();
    assert_eq!(r["status"], "locked", "locked at the 5th wrong code: {r}");
    // Now even the right code is refused, and nothing more is counted.
    let head = app.audit_head().await;
    let resp = verify(&app, &challenge, &code).await;
    assert_eq!(resp.status(), 409);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "CIP-VERIFY-0002");
    assert_eq!(
        app.audit_head().await,
        head,
        "a refused attempt writes nothing"
    );
    // Malformed codes are not attempts.
    assert_eq!(verify(&app, &challenge, "12ab").await.status(), 422);
    let ev = evidence(&app, &cid).await;
    assert_eq!(ev.len(), 1, "the lock is a failed result: {ev:?}");
    assert_eq!(ev[0]["result"], "fail");
    assert_eq!(ev[0]["method"], "otp_email");
    assert_eq!(account_status(&app, &aid).await, "pending_verification");
    app.cleanup().await;
}

async fn otp_resend_is_throttled_and_codes_expire(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = pending(&app, "rs").await;
    send_code(&app, &cid).await;
    let head = app.audit_head().await;
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/otp"),
            &app.admin,
            &json!({"channel": "email"}),
        )
        .await;
    assert_eq!(resp.status(), 429);
    let retry: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        app.audit_head().await,
        head,
        "a throttled send writes nothing"
    );
    // Another channel has its own budget; an index the record lacks names the field.
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/otp"),
            &app.admin,
            &json!({"channel": "phone", "index": 3}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"][0]["field"], "/index");

    // The hourly limit: five codes in the last hour (stored as if sent earlier).
    let store = &app.state.store;
    let keyring = app.state.keyring();
    let now = cip_server::time::now_micros();
    let (cid2, _) = pending(&app, "rs2").await;
    let customer2: uuid::Uuid = cid2.parse().unwrap();
    for i in 0..5 {
        let id = uuid::Uuid::now_v7();
        store
            .insert_otp(
                cip_store::OtpRow {
                    id,
                    customer_id: customer2,
                    beneficial_owner_id: None,
                    channel: "email".into(),
                    destination_hash: [0; 32],
                    code_hash: cip_server::verification::code_hash(&keyring, id, "123456"),
                    created_at: now - (50 - i * 10) * 60_000_000,
                    expires_at: now - 1,
                    attempts: 0,
                    max_attempts: 5,
                    status: "pending".into(),
                    version: 1,
                },
                cip_store::conformance::draft("otp.create", None),
            )
            .await
            .unwrap();
    }
    let resp = app
        .post(
            &format!("/v1/customers/{cid2}/otp"),
            &app.admin,
            &json!({"channel": "email"}),
        )
        .await;
    assert_eq!(resp.status(), 429);
    let retry: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (9 * 60..=10 * 60 + 1).contains(&retry),
        "the oldest of the five leaves the hour in 10 minutes: {retry}"
    );

    // An expired code: the latest challenge of customer 2 expired a moment ago.
    let latest = store
        .recent_otps(customer2, None, "email", 0)
        .await
        .unwrap()
        .remove(0);
    let resp = verify(&app, &latest.id.to_string(), "123456").await;
    assert_eq!(resp.status(), 410);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "CIP-VERIFY-0003");
    // A superseded one (customer 2's earlier challenges) is gone too.
    let older = store
        .recent_otps(customer2, None, "email", 0)
        .await
        .unwrap()
        .remove(1);
    assert_eq!(older.status, "superseded");
    assert_eq!(
        verify(&app, &older.id.to_string(), "123456").await.status(),
        410
    );
    assert!(evidence(&app, &cid2).await.is_empty());
    app.cleanup().await;
}

fn signed(secret: &str, t: i64, body: &Value) -> (String, Vec<u8>) {
    let raw = serde_json::to_vec(body).unwrap();
    let sig = cip_vault::webhook_signature(secret, t, &raw);
    (format!("t={t},v1={sig}"), raw)
}

async fn callback(
    app: &TestApp,
    vendor: &str,
    header: Option<&str>,
    raw: &[u8],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/vendor-callbacks/{vendor}")))
        .header("content-type", "application/json")
        .body(raw.to_vec());
    if let Some(h) = header {
        req = req.header("cip-signature", h);
    }
    req.send().await.unwrap()
}

async fn vendor_callbacks_are_signed_and_idempotent(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, aid) = pending(&app, "vd").await;
    let resp = app
        .post(
            "/v1/verification-requests",
            &app.admin,
            &json!({"vendor": "acme-id", "customer_id": cid}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let req: Value = resp.json().await.unwrap();
    let secret = req["secret"].as_str().unwrap().to_string();
    assert_eq!(req["callback_path"], "/v1/vendor-callbacks/acme-id");
    let body = json!({"request_id": req["id"], "event_id": "evt-1", "result": "pass",
        "method": "documentary", "details": {"score": 0.97}});
    let now = cip_server::time::now_micros() / 1_000_000;

    // Forged: another secret, no signature, a stale timestamp, the wrong vendor.
    let head = app.audit_head().await;
    let (forged, raw) = signed("vsec_not-the-secret", now, &body);
    assert_eq!(
        callback(&app, "acme-id", Some(&forged), &raw)
            .await
            .status(),
        401
    );
    assert_eq!(callback(&app, "acme-id", None, &raw).await.status(), 401);
    let (stale, raw) = signed(&secret, now - 600, &body);
    assert_eq!(
        callback(&app, "acme-id", Some(&stale), &raw).await.status(),
        401
    );
    let (good, raw) = signed(&secret, now, &body);
    assert_eq!(
        callback(&app, "other", Some(&good), &raw).await.status(),
        401
    );
    // A body changed after signing.
    let mut tampered = raw.clone();
    let at = tampered.windows(4).position(|w| w == b"pass").unwrap();
    tampered[at..at + 4].copy_from_slice(b"fail");
    let resp = callback(&app, "acme-id", Some(&good), &tampered).await;
    assert_eq!(resp.status(), 401);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "CIP-VERIFY-0008");
    assert_eq!(
        app.audit_head().await,
        head,
        "forged callbacks write nothing"
    );
    assert!(evidence(&app, &cid).await.is_empty());

    // The real one, then the same again (a retry by the vendor).
    let resp = callback(&app, "acme-id", Some(&good), &raw).await;
    let status = resp.status();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "recorded");
    let head = app.audit_head().await;
    let resp = callback(&app, "acme-id", Some(&good), &raw).await;
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["status"], "duplicate");
    assert_eq!(app.audit_head().await, head, "a replay writes nothing");
    let ev = evidence(&app, &cid).await;
    assert_eq!(ev.len(), 1, "recorded once: {ev:?}");
    assert_eq!(ev[0]["method"], "vendor_documentary");
    assert_eq!(ev[0]["actor"], "vendor:acme-id");
    assert_eq!(ev[0]["details"]["report"]["score"], 0.97);

    // A signed but invalid result names the field.
    let bad = json!({"request_id": req["id"], "event_id": "evt-2", "result": "maybe", "method": "documentary"});
    let (sig, raw) = signed(&secret, now, &bad);
    let resp = callback(&app, "acme-id", Some(&sig), &raw).await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"][0]["field"], "/result");

    // The billing system's payment confirmation completes the verification.
    let integration = app.key(Role::Integration).await;
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/evidence"),
            &integration,
            &json!({"method": "payment_confirmation", "result": "pass", "details": {"instrument": "card"}}),
        )
        .await;
    let status = resp.status();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["verification"]["state"], "verified");
    assert_eq!(account_status(&app, &aid).await, "active");
    app.cleanup().await;
}

async fn failed_checks_fail_the_account_and_open_a_case(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, aid) = pending(&app, "fl").await;
    // Expired, broken check digits, garbage: each a failed result with its reasons, never an
    // error.
    let broken = PASSPORT.replace("3204153", "3204154");
    let mut reasons = Vec::new();
    for zone in [EXPIRED, broken.as_str()] {
        let resp = app
            .post(
                &format!("/v1/customers/{cid}/documents"),
                &app.admin,
                &json!({ "mrz": zone }),
            )
            .await;
        let status = resp.status();
        let r: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "{r}");
        assert_eq!(r["result"], "fail");
        assert_eq!(r["verification"]["state"], "pending");
        reasons.push(r["reasons"].to_string());
    }
    assert!(reasons[0].contains("expired"), "{reasons:?}");
    assert!(reasons[1].contains("check"), "{reasons:?}");
    assert_eq!(account_status(&app, &aid).await, "pending_verification");
    // Someone else's passport: the name does not match.
    let (other, _) = app.create_customer(&individual("fl-other")).await;
    let resp = app
        .post(
            &format!("/v1/customers/{other}/documents"),
            &app.admin,
            &json!({ "mrz": PASSPORT }),
        )
        .await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["result"], "fail");
    assert!(r["reasons"].to_string().contains("name"), "{r}");
    // Garbage is a failed result too: the third failure of this customer.
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/documents"),
            &app.admin,
            &json!({ "mrz": "P<GARBAGE" }),
        )
        .await;
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["result"], "fail");
    assert!(r["reasons"].to_string().contains("invalid"), "{r}");
    assert_eq!(r["verification"]["state"], "failed", "third failure: {r}");
    assert_eq!(r["verification"]["accounts"][0]["to"], "failed");
    assert_eq!(account_status(&app, &aid).await, "failed");
    let cases: Value = app
        .get("/v1/cases?status=open", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cases["items"].as_array().unwrap().len(), 1, "{cases}");
    assert_eq!(cases["items"][0]["account_id"], aid.as_str());
    assert!(
        cases["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("3 failed checks")
    );
    // Garbage is refused as input, not recorded.
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/documents"),
            &app.admin,
            &json!({ "mrz": PASSPORT, "formation": {"document_type": "x", "registry": "y", "number": "1", "jurisdiction": "GB"} }),
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(evidence(&app, &cid).await.len(), 3);
    app.cleanup().await;
}

async fn unverified_case_opened_by_due_work_and_resolved(b: Backend) {
    use cip_server::jobs::{Ran, lifecycle_run_once};
    let app = spawn_app(b).await;
    let (_, aid) = pending(&app, "uc").await;
    let now = cip_server::time::now_micros();
    let day = 86_400_000_000i64;
    assert_eq!(
        lifecycle_run_once(&app.state, now + 31 * day, 100)
            .await
            .unwrap(),
        Ran::Did(1)
    );
    assert_eq!(account_status(&app, &aid).await, "failed");
    let year = cip_server::time::today_utc().year();
    let cases: Value = app
        .get(&format!("/v1/cases?status=open&year={year}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let items = cases["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{cases}");
    assert_eq!(items[0]["account_id"], aid.as_str());
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("verification not completed by the policy deadline (policy builtin"),
        "{items:?}"
    );
    let case = items[0]["id"].as_str().unwrap().to_string();
    // A second pass opens nothing new.
    lifecycle_run_once(&app.state, now + 31 * day, 100)
        .await
        .unwrap();
    let other_year: Value = app
        .get(&format!("/v1/cases?year={}", year - 1), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(other_year["items"].as_array().unwrap().is_empty());

    let analyst = app.key(Role::Analyst).await;
    let auditor = app.key(Role::Auditor).await;
    let path = format!("/v1/cases/{case}/resolve");
    let body =
        json!({"resolution": "closed", "reason": "customer stopped answering; account closed"});
    assert_eq!(app.post(&path, &auditor, &body).await.status(), 403);
    let resp = app
        .post(
            &path,
            &analyst,
            &json!({"resolution": "forgotten", "reason": " "}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"].as_array().unwrap().len(), 2, "{e}");
    let resp = app.post(&path, &analyst, &body).await;
    let status = resp.status();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["resolution"], "closed");
    assert_eq!(app.post(&path, &analyst, &body).await.status(), 409);
    assert_eq!(
        app.post(
            &format!("/v1/cases/{}/resolve", uuid::Uuid::now_v7()),
            &analyst,
            &body
        )
        .await
        .status(),
        404
    );
    let resolved: Value = app
        .get(&format!("/v1/cases?status=resolved&year={year}"), &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resolved["items"][0]["id"], case.as_str());
    let open: Value = app
        .get("/v1/cases?status=open", &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert!(open["items"].as_array().unwrap().is_empty());
    // The reason is read back through an audited read only.
    let head = app.audit_head().await;
    let one: Value = app
        .get(&format!("/v1/cases/{case}"), &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["resolution_reason"],
        "customer stopped answering; account closed"
    );
    assert_eq!(app.audit_head().await, head + 1, "the read is audited");
    assert!(resolved["items"][0].get("resolution_reason").is_none());
    // The reason is sealed at rest.
    let stored = app
        .state
        .store
        .get_case(case.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(stored.resolution_reason.as_deref().unwrap())
            .contains("stopped answering")
    );
    app.cleanup().await;
}

async fn roles_are_checked(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = pending(&app, "rl").await;
    let auditor = app.key(Role::Auditor).await;
    let integration = app.key(Role::Integration).await;
    let analyst = app.key(Role::Analyst).await;
    let otp = format!("/v1/customers/{cid}/otp");
    let email = json!({"channel": "email"});
    assert_eq!(app.post(&otp, &auditor, &email).await.status(), 403);
    assert_eq!(
        app.post(
            &format!("/v1/customers/{cid}/documents"),
            &auditor,
            &json!({ "mrz": PASSPORT })
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.post(
            "/v1/verification-requests",
            &auditor,
            &json!({"vendor": "acme", "customer_id": cid})
        )
        .await
        .status(),
        403
    );
    // Auditors read evidence; integrations record it but do not list cases.
    assert_eq!(
        app.get(&format!("/v1/customers/{cid}/evidence"), &auditor)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/v1/cases", &integration).await.status(), 403);
    assert_eq!(app.get("/v1/cases", &analyst).await.status(), 200);
    assert_eq!(
        app.get("/v1/cases?status=maybe", &analyst).await.status(),
        400
    );
    let resp = app
        .post(
            &format!("/v1/customers/{cid}/evidence"),
            &integration,
            &json!({"method": "otp_email", "result": "pass"}),
        )
        .await;
    assert_eq!(
        resp.status(),
        422,
        "only payment confirmations are posted directly"
    );
    assert_eq!(app.post(&otp, &integration, &email).await.status(), 201);
    // Every route but the vendor callback needs an API key.
    let resp = app
        .client
        .get(app.url(&format!("/v1/customers/{cid}/evidence")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .client
        .post(app.url("/v1/otp/00000000-0000-0000-0000-000000000000/verify"))
        .json(&json!({"code": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    app.cleanup().await;
}

/// Kenji Watanabe's passport (generated: TD3, JPN, check digits computed per ICAO 9303).
const KENJI: &str =
    "P<JPNWATANABE<<KENJI<<<<<<<<<<<<<<<<<<<<<<<<\nTK99887763JPN8001014M3301018<<<<<<<<<<<<<<06";

async fn entity_verified_by_formation_document_and_its_foreign_owner(b: Backend) {
    let app = spawn_app(b).await;
    // A British company with one U.S. and one Japanese beneficial owner.
    let mut body = entity("ev");
    body["entity"] = json!({"place_of_organization": "GB", "entity_type": "Ltd"});
    body["identity"]["addresses"] = json!([{"kind": "registered", "lines": ["1 Fleet Street"], "city": "London", "country": "GB"}]);
    let (cid, aid) = pending_with(&app, &body).await;
    let customer: Value = app
        .get(&format!("/v1/customers/{cid}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let kenji = customer["beneficial_owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["identity"]["names"][0]["full"] == "Kenji Watanabe")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let docs = format!("/v1/customers/{cid}/documents");
    let formation = |jurisdiction: &str| {
        json!({"formation": {"document_type": "certificate_of_incorporation",
            "registry": "Companies House", "number": "01234567",
            "jurisdiction": jurisdiction, "entity_type": "LTD"}})
    };
    // Inconsistent with the record: a failed result naming the difference.
    let r: Value = app
        .post(&docs, &app.admin, &formation("US-DE"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["method"], "formation_document");
    assert_eq!(r["result"], "fail", "{r}");
    assert!(r["reasons"][0].as_str().unwrap().contains("GB"), "{r}");
    // Bad input is refused and recorded nowhere.
    let resp = app.post(&docs, &app.admin, &formation("XX")).await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"][0]["field"], "/formation/jurisdiction");

    let r: Value = app
        .post(&docs, &app.admin, &formation("GB"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"], "pass", "{r}");
    assert_eq!(r["verification"]["state"], "pending");
    let missing = r["verification"]["missing"].to_string();
    assert!(
        missing.contains(&kenji) && !missing.contains("entity"),
        "only the foreign owner is left: {missing}"
    );

    // The owner's passport, then the billing system confirms the owner's card.
    let r: Value = app
        .post(
            &docs,
            &app.admin,
            &json!({"mrz": KENJI, "beneficial_owner_id": kenji}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"], "pass", "{r}");
    assert_eq!(account_status(&app, &aid).await, "pending_verification");
    let integration = app.key(Role::Integration).await;
    let r: Value = app
        .post(
            &format!("/v1/customers/{cid}/evidence"),
            &integration,
            &json!({"method": "payment_confirmation", "result": "pass",
                "beneficial_owner_id": kenji, "details": {"instrument": "card"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["verification"]["state"], "verified", "{r}");
    assert_eq!(account_status(&app, &aid).await, "active");
    let ev = evidence(&app, &cid).await;
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[2]["beneficial_owner_id"], kenji.as_str());
    app.cleanup().await;
}

/// The HTTP sender (SMS gateway / email relay) signs what it posts like webhooks.
#[tokio::test]
async fn http_sender_signs_its_requests() {
    use cip_server::verification::{CodeMessage, CodeSender, HttpSender};
    let (tx, mut rx) = mpsc::unbounded_channel();
    let relay = axum::Router::new().route(
        "/send",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = headers
                        .get("cip-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send((sig, body.to_vec()));
                    axum::http::StatusCode::ACCEPTED
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, relay).await.unwrap() });
    let sender = HttpSender {
        url,
        secret: "relay-secret-0123456789".to_string().into(),
        client: cip_server::webhooks::client(),
    };
    let challenge = uuid::Uuid::now_v7();
    sender
        .send(&CodeMessage {
            challenge_id: challenge,
            channel: "phone".into(),
            to: "+4930901820".into(),
            code: "042917".into(),
            expires_at: 1_700_000_000_000_000,
        })
        .await
        .unwrap();
    let (sig, body) = rx.recv().await.unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert_eq!(
        v1,
        cip_vault::webhook_signature("relay-secret-0123456789", t, &body)
    );
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["code"], "042917");
    assert_eq!(m["to"], "+4930901820");
    assert_eq!(m["challenge_id"], challenge.to_string());
    // A relay that refuses is an error the route reports (502), not a silent loss.
    let refusing = HttpSender {
        url: "http://127.0.0.1:9/none".into(),
        secret: "relay-secret-0123456789".to_string().into(),
        client: cip_server::webhooks::client(),
    };
    let e = refusing
        .send(&CodeMessage {
            challenge_id: challenge,
            channel: "phone".into(),
            to: "+4930901820".into(),
            code: "042917".into(),
            expires_at: 0,
        })
        .await
        .unwrap_err();
    assert!(!e.contains("042917") && !e.contains("+4930901820"), "{e}");
}

/// Eight requests for a code at the same moment: the throttle is checked atomically with
/// the insert, so exactly one code is sent and stored; the others are told to wait.
async fn concurrent_resends_send_one_code(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = pending(&app, "cc1").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/v1/customers/{cid}/otp")),
            app.admin.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"channel": "email"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 429, 429, 429, 429, 429, 429, 429]);
    let stored = app
        .state
        .store
        .recent_otps(cid.parse().unwrap(), None, "email", 0)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "one code stored");
    let sent = std::fs::read_dir(app.data_dir.join("otp-outbox"))
        .unwrap()
        .count();
    assert_eq!(sent, 1, "one code sent");
    app.cleanup().await;
}
