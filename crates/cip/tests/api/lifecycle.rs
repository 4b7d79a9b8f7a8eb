//! The account lifecycle end to end: transitions with reasons, illegal ones refused without
//! a trace, the decision, and signed webhooks observed by a real receiver (with a retry).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cip_core::model::Role;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    transitions_follow_the_table_and_are_recorded,
    decision_says_what_to_do,
    webhooks_are_signed_retried_and_logged,
    due_work_moves_each_account_once,
);

async fn transition(
    app: &TestApp,
    aid: &str,
    version: i64,
    to: &str,
    reason: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/accounts/{aid}/transitions")))
        .bearer_auth(&app.admin)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"to": to, "reason": reason}))
        .send()
        .await
        .unwrap()
}

async fn new_account(app: &TestApp, tag: &str) -> String {
    let (cid, _) = app.create_customer(&individual(tag)).await;
    let resp = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "product": "compute", "account_type": "standard"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let a: Value = resp.json().await.unwrap();
    a["id"].as_str().unwrap().to_string()
}

async fn transitions_follow_the_table_and_are_recorded(b: Backend) {
    let app = spawn_app(b).await;
    let aid = new_account(&app, "t1").await;

    let resp = transition(
        &app,
        &aid,
        1,
        "pending_verification",
        "foreign customer: verify",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["status"], "pending_verification");
    assert_eq!(a["version"], 2);
    assert!(a["opened_at"].is_string(), "opened for interim use: {a}");

    // Illegal: pending → reverification_due. Refused with the allowed ones; nothing written.
    let head = app.audit_head().await;
    let resp = transition(&app, &aid, 2, "reverification_due", "why not").await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"][0]["field"], "/to");
    assert_eq!(e["details"][0]["code"], "illegal_transition");
    let msg = e["details"][0]["message"].as_str().unwrap();
    assert!(msg.contains("active") && msg.contains("failed"), "{msg}");
    assert_eq!(
        app.audit_head().await,
        head,
        "a refused transition writes nothing"
    );

    // Bad input: unknown status and an empty reason are both reported.
    let resp = transition(&app, &aid, 2, "frozen", " ").await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["/to", "/reason"], "{e}");
    // Stale version.
    assert_eq!(transition(&app, &aid, 1, "failed", "x").await.status(), 409);

    assert_eq!(
        transition(&app, &aid, 2, "failed", "document forged")
            .await
            .status(),
        200
    );
    // failed → active is not allowed without a new verification round.
    assert_eq!(
        transition(&app, &aid, 3, "active", "oops").await.status(),
        422
    );
    // The same table guards PATCH.
    let resp = app
        .client
        .patch(app.url(&format!("/v1/accounts/{aid}")))
        .bearer_auth(&app.admin)
        .header("if-match", "\"3\"")
        .json(&json!({"status": "active"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["details"][0]["field"], "/status");

    let resp = transition(&app, &aid, 3, "closed", "closed after failed verification").await;
    assert_eq!(resp.status(), 200);
    let a: Value = resp.json().await.unwrap();
    assert!(a["closed_at"].is_string());
    let resp = transition(&app, &aid, 4, "active", "reopen").await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    assert!(
        e["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("final"),
        "{e}"
    );

    let history: Value = app
        .get(&format!("/v1/accounts/{aid}/transitions"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    let steps: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("none".into(), "applied".into()),
            ("applied".into(), "pending_verification".into()),
            ("pending_verification".into(), "failed".into()),
            ("failed".into(), "closed".into()),
        ]
    );
    assert_eq!(history[2]["reason"], "document forged");
    assert!(history[2]["actor"].is_string());

    // Roles: an auditor reads the history but cannot change status.
    let auditor = app.key(Role::Auditor).await;
    assert_eq!(
        app.get(&format!("/v1/accounts/{aid}/transitions"), &auditor)
            .await
            .status(),
        200
    );
    let resp = app
        .client
        .post(app.url(&format!("/v1/accounts/{aid}/transitions")))
        .bearer_auth(&auditor)
        .header("if-match", "\"4\"")
        .json(&json!({"to": "active", "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    app.cleanup().await;
}

async fn decision_says_what_to_do(b: Backend) {
    let app = spawn_app(b).await;
    // A German individual: not established as a U.S. person.
    let aid = new_account(&app, "d1").await;
    let head = app.audit_head().await;
    let d: Value = app
        .get(&format!("/v1/accounts/{aid}/decision"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "applied");
    assert_eq!(d["may_open"], true);
    assert_eq!(d["customer_requires_verification"], true);
    assert_eq!(d["open_as"], "pending_verification");
    assert_eq!(d["verification_needed"], true);
    assert!(
        app.audit_head().await > head,
        "the decision reads the record, so it is audited"
    );

    assert_eq!(
        transition(&app, &aid, 1, "pending_verification", "verify")
            .await
            .status(),
        200
    );
    let d: Value = app
        .get(&format!("/v1/accounts/{aid}/decision"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["usage"], "restricted");
    assert_eq!(d["must_restrict"], true);
    assert_eq!(d["may_use"], true);
    assert_eq!(d["may_open"], false);

    assert_eq!(
        transition(&app, &aid, 2, "failed", "no documents")
            .await
            .status(),
        200
    );
    let d: Value = app
        .get(&format!("/v1/accounts/{aid}/decision"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["usage"], "none");
    assert_eq!(d["may_use"], false);
    assert_eq!(d["must_close"], true);
    assert_eq!(
        d["next_statuses"],
        json!(["pending_verification", "closed"])
    );
    app.cleanup().await;
}

struct Received {
    event_id: String,
    signature: String,
    body: Vec<u8>,
}

/// A receiver on port 0: answers 503 to its first request, 200 afterwards, and hands every
/// request to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                let seen = seen.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let _ = tx.send(Received {
                        event_id: h("cip-event-id"),
                        signature: h("cip-signature"),
                        body: body.to_vec(),
                    });
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a delivery within 30 s")
        .expect("receiver open")
}

fn check_signature(secret: &str, r: &Received) -> Value {
    let (t, v1) = r.signature.split_once(",v1=").expect("t=…,v1=… header");
    let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    assert_eq!(
        v1,
        cip_vault::webhook_signature(secret, t, &r.body),
        "signature verifies"
    );
    assert_ne!(v1, cip_vault::webhook_signature("whsec_other", t, &r.body));
    serde_json::from_slice(&r.body).unwrap()
}

async fn webhooks_are_signed_retried_and_logged(b: Backend) {
    let app = spawn_app(b).await;
    let (url, mut rx) = receiver().await;

    // Only admins register endpoints; bad input is refused field by field.
    let integration = app.key(Role::Integration).await;
    assert_eq!(
        app.post(
            "/v1/webhooks",
            &integration,
            &json!({"url": url, "events": ["*"]})
        )
        .await
        .status(),
        403
    );
    let resp = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": "ftp://x", "events": ["account.deleted"]}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let e: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["/url", "/events/0"]);

    let resp = app
        .post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "events": ["account.created", "account.status_changed"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let hook: Value = resp.json().await.unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let listed: Value = app
        .get("/v1/webhooks", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once: {listed}"
    );

    // account.created: first attempt gets 503 from the receiver.
    let aid = new_account(&app, "w1").await;
    let first = next(&mut rx).await;
    let created = check_signature(&secret, &first);
    assert_eq!(created["type"], "account.created");
    assert_eq!(created["data"]["account_id"], aid.as_str());
    assert!(
        !String::from_utf8_lossy(&first.body).contains("Zelda"),
        "no personal data in events"
    );

    // The retry is due 10 s later; run the delivery job as if that time had come.
    let state = app.state.clone();
    let client = cip_server::webhooks::client();
    let later = cip_server::time::now_micros() + 60_000_000;
    while let cip_server::jobs::Ran::Did(_) =
        cip_server::webhooks::deliver_run_once(&state, &client, later, 10)
            .await
            .unwrap()
    {}
    let retried = next(&mut rx).await;
    assert_eq!(
        retried.event_id, first.event_id,
        "same event id: receivers deduplicate on it"
    );
    check_signature(&secret, &retried);

    // account.status_changed: delivered by the server's own job.
    assert_eq!(
        transition(&app, &aid, 1, "pending_verification", "verify")
            .await
            .status(),
        200
    );
    let changed = next(&mut rx).await;
    let ev = check_signature(&secret, &changed);
    assert_eq!(ev["type"], "account.status_changed");
    assert_eq!(ev["data"]["from"], "applied");
    assert_eq!(ev["data"]["to"], "pending_verification");
    assert_eq!(ev["data"]["decision"]["usage"], "restricted");

    // The log: both delivered, the first after two attempts with the 503 remembered.
    // The receiver has answered; the job records the outcome right after. Wait (bounded) for
    // the log to show it: a condition, not a fixed delay.
    let log = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let log: Value = app
                .get(&format!("/v1/webhooks/{hook_id}/deliveries"), &app.admin)
                .await
                .json()
                .await
                .unwrap();
            let items = log.as_array().unwrap();
            if items.len() == 2 && items.iter().all(|d| d["state"] == "delivered") {
                return log;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both deliveries logged as delivered within 30 s");
    let items = log.as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    let created_log = items
        .iter()
        .find(|d| d["event_type"] == "account.created")
        .unwrap();
    assert_eq!(created_log["state"], "delivered", "{log}");
    assert_eq!(created_log["attempts"], 2);
    let auditor = app.key(Role::Auditor).await;
    assert_eq!(
        app.get(&format!("/v1/webhooks/{hook_id}/deliveries"), &auditor)
            .await
            .status(),
        200
    );

    // Disabled endpoints get nothing new.
    let resp = app
        .client
        .delete(app.url(&format!("/v1/webhooks/{hook_id}")))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .client
        .delete(app.url(&format!("/v1/webhooks/{hook_id}")))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        transition(&app, &aid, 2, "active", "verified")
            .await
            .status(),
        200
    );
    let log: Value = app
        .get(&format!("/v1/webhooks/{hook_id}/deliveries"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        log.as_array().unwrap().len(),
        2,
        "no delivery to a disabled endpoint"
    );
    app.cleanup().await;
}

async fn due_work_moves_each_account_once(b: Backend) {
    use cip_server::jobs::{Ran, SYSTEM_ACTOR, lifecycle_run_once};
    let app = spawn_app(b).await;
    let mut pending = Vec::new();
    for i in 0..6 {
        let aid = new_account(&app, &format!("due{i}")).await;
        assert_eq!(
            transition(&app, &aid, 1, "pending_verification", "verify")
                .await
                .status(),
            200
        );
        pending.push(aid);
    }
    let active = new_account(&app, "due-active").await;
    assert_eq!(
        transition(&app, &active, 1, "active", "U.S. person")
            .await
            .status(),
        200
    );

    // The built-in policy: these customers pay with crypto, which raises them to the high
    // tier (14 days to verify, a reminder 7 days ahead, re-verified after 365 days).
    let day = 86_400_000_000i64;
    let now = cip_server::time::now_micros();
    // Long before the deadline nothing happens; within a week of it, a reminder each.
    assert_eq!(
        lifecycle_run_once(&app.state, now + 6 * day, 100)
            .await
            .unwrap(),
        Ran::Idle
    );
    assert_eq!(
        lifecycle_run_once(&app.state, now + 13 * day, 100)
            .await
            .unwrap(),
        Ran::Did(6),
        "six reminders"
    );
    for aid in &pending {
        let r = app
            .state
            .store
            .list_reminders(aid.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, "verification");
    }

    // Two passes at once (as two instances would run them): each account moves once.
    let (s1, s2) = (app.state.clone(), app.state.clone());
    let t = now + 15 * day;
    let (a, b2) = tokio::join!(
        lifecycle_run_once(&s1, t, 100),
        lifecycle_run_once(&s2, t, 100)
    );
    let moved = |r: Ran| match r {
        Ran::Did(n) => n,
        Ran::Idle => 0,
    };
    assert_eq!(
        moved(a.unwrap()) + moved(b2.unwrap()),
        6,
        "six pending accounts fail, once each"
    );
    for aid in &pending {
        let hist: Value = app
            .get(&format!("/v1/accounts/{aid}/transitions"), &app.admin)
            .await
            .json()
            .await
            .unwrap();
        let h = hist.as_array().unwrap();
        assert_eq!(h.len(), 3, "{hist}");
        assert_eq!(h[2]["to"], "failed");
        assert_eq!(h[2]["actor"], SYSTEM_ACTOR);
        assert_eq!(
            h[2]["reason"],
            "verification not completed by the policy deadline (policy builtin, tier high: 14 days)"
        );
    }
    // Failed accounts close after the closing period; the active one becomes due a year on.
    assert_eq!(
        lifecycle_run_once(&app.state, t + 8 * day, 100)
            .await
            .unwrap(),
        Ran::Did(6)
    );
    let a: Value = app
        .get(&format!("/v1/accounts/{}", pending[0]), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["status"], "closed");
    assert!(a["closed_at"].is_string());
    assert_eq!(
        lifecycle_run_once(&app.state, now + 366 * day, 100)
            .await
            .unwrap(),
        Ran::Did(1)
    );
    let a: Value = app
        .get(&format!("/v1/accounts/{active}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["status"], "reverification_due");
    assert_eq!(
        lifecycle_run_once(&app.state, now + 366 * day, 100)
            .await
            .unwrap(),
        Ran::Idle
    );
    app.cleanup().await;
}
