//! Special measures end to end (EO 13984 §2): measures refuse or condition new accounts,
//! flag existing ones when they take effect (webhook, decision, report), stop applying when
//! not yet effective, expired or revoked, and act on confirmed screening hits.

use std::time::Duration;

use cip_core::model::Role;
use cip_server::jobs::Ran;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    prohibited_jurisdiction_refuses_opening,
    conditioned_measure_attaches_conditions,
    measure_taking_effect_flags_existing_accounts,
    person_measure_and_confirmed_hit,
    bad_input_writes_nothing_and_roles_are_checked,
    cli_lists_and_reports_measures,
    an_instance_that_dies_holding_a_measure_is_taken_over,
    record_change_rechecks_measures,
    product_and_capacity_limits_are_enforced,
);

/// A date `days` from today (UTC), `YYYY-MM-DD`.
fn day(days: i64) -> String {
    let today = cip_server::time::today_utc();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

fn jurisdiction(country: &str, effective_in_days: i64, rest: Value) -> Value {
    let mut body = json!({
        "target": {"kind": "jurisdiction", "country": country},
        "legal_reference": format!("89 FR 0000 (test measure on {country})"),
        "determination_date": day(effective_in_days.min(0) - 30),
        "effective_date": day(effective_in_days),
    });
    for (k, v) in rest.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn create_measure(app: &TestApp, body: &Value) -> Value {
    let resp = app.post("/v1/special-measures", &app.admin, body).await;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

async fn open_account(app: &TestApp, customer_id: &str, account_type: &str) -> reqwest::Response {
    app.post(
        "/v1/accounts",
        &app.admin,
        &json!({"customer_id": customer_id, "product": "compute", "account_type": account_type}),
    )
    .await
}

async fn json_of(resp: reqwest::Response, want: u16) -> Value {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, want, "{v}");
    v
}

async fn decision(app: &TestApp, account_id: &str) -> Value {
    json_of(
        app.get(&format!("/v1/accounts/{account_id}/decision"), &app.admin)
            .await,
        200,
    )
    .await
}

async fn accounts_of(app: &TestApp, customer_id: &str) -> Vec<Value> {
    let v = json_of(
        app.get(
            &format!("/v1/accounts?customer_id={customer_id}"),
            &app.admin,
        )
        .await,
        200,
    )
    .await;
    v["items"].as_array().unwrap().clone()
}

fn kinds(evidence: &Value) -> Vec<String> {
    let mut k: Vec<String> = evidence
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k.dedup();
    k
}

/// Runs the special-measures job (at `now`) until the account carries an action of
/// `measure_id`. The server's own job may have claimed the measure first; then this waits
/// (bounded) for it to finish: a condition, not a fixed delay.
async fn sweep_until_flagged(app: &TestApp, now: i64, account_id: &str, measure_id: &str) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            cip_server::measures::measures_run_once(&app.state, now, 10)
                .await
                .unwrap();
            let actions = app
                .state
                .store
                .list_measure_actions(&cip_store::MeasureActionFilter {
                    measure_id: Some(measure_id.parse().unwrap()),
                    account_id: Some(account_id.parse().unwrap()),
                })
                .await
                .unwrap();
            if !actions.is_empty() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the measure is applied within 30 s");
}

async fn prohibited_jurisdiction_refuses_opening(b: Backend) {
    let app = spawn_app(b).await;
    // individual(): German address, passport, citizenship, phone, card and IBAN.
    let (tied, _) = app.create_customer(&individual("p1")).await;
    let (untied, _) = app.create_customer(&entity("p1")).await;
    let m = create_measure(
        &app,
        &jurisdiction("de", -1, json!({"opening": "prohibited"})),
    )
    .await;
    let mid = m["id"].as_str().unwrap();
    assert_eq!(m["status"], "in_force");
    assert_eq!(m["target"]["country"], "DE", "codes are normalised");
    assert_eq!(
        m["expiry_date"],
        day(364),
        "365 days from the effective date"
    );

    let head = app.audit_head().await;
    let e = json_of(open_account(&app, &tied, "standard").await, 422).await;
    assert_eq!(e["code"], "CIP-MEASURE-0001");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains(mid) && msg.contains("89 FR 0000"), "{msg}");
    assert_eq!(e["details"][0]["field"], "/customer_id");
    let why = e["details"][0]["message"].as_str().unwrap();
    for k in [
        "address_country",
        "nationality",
        "phone_country",
        "iban_country",
    ] {
        assert!(why.contains(k), "evidence {k} is cited: {why}");
    }
    // Nothing written but the audit entry of the record read the check needed.
    assert!(accounts_of(&app, &tied).await.is_empty());
    assert_eq!(app.audit_head().await, head + 1);
    let last = app
        .state
        .store
        .audit_range(head + 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(last.draft.action, "account.refused");
    assert!(last.draft.fields.contains(&format!("refused_by={mid}")));
    // The measure's report lists the refused application with its evidence.
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    let refused = report["refused_applications"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{report}");
    assert_eq!(refused[0]["customer_id"], tied.as_str());
    assert_eq!(refused[0]["reason"], "prohibited");
    assert!(kinds(&refused[0]["evidence"]).contains(&"nationality".to_string()));
    assert_eq!(report["accounts"], json!([]));

    // A customer with no tie to DE opens normally.
    let a = json_of(open_account(&app, &untied, "standard").await, 201).await;
    assert_eq!(a["special_measures"], json!([]));
    // The measure does not cover Reseller Accounts.
    json_of(open_account(&app, &tied, "reseller_account").await, 201).await;

    // Revoked: it no longer applies.
    let r = json_of(
        app.post(
            &format!("/v1/special-measures/{mid}/revoke"),
            &app.admin,
            &json!({"reason": "lifted by notice"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(r["status"], "revoked");
    json_of(open_account(&app, &tied, "standard").await, 201).await;
    app.cleanup().await;
}

async fn conditioned_measure_attaches_conditions(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&individual("c1")).await;
    let conditioned = create_measure(
        &app,
        &jurisdiction(
            "DE",
            0,
            json!({
                "opening": "conditioned",
                "conditions": [{"kind": "enhanced_verification"}, {"kind": "capacity_limit", "max_vcpus": 8}],
            }),
        ),
    )
    .await;
    let mid = conditioned["id"].as_str().unwrap();
    // A measure not yet effective and one that expired: neither applies.
    let future = create_measure(
        &app,
        &jurisdiction("DE", 10, json!({"opening": "prohibited"})),
    )
    .await;
    assert_eq!(future["status"], "scheduled");
    let expired = create_measure(
        &app,
        &jurisdiction(
            "DE",
            -400,
            json!({"opening": "prohibited", "expiry_date": day(-35)}),
        ),
    )
    .await;
    assert_eq!(expired["status"], "expired");

    let a = json_of(open_account(&app, &cid, "standard").await, 201).await;
    let aid = a["id"].as_str().unwrap();
    let sm = a["special_measures"].as_array().unwrap();
    assert_eq!(sm.len(), 1, "only the measure in force: {a}");
    assert_eq!(sm[0]["measure_id"], mid);
    assert_eq!(sm[0]["action"], "apply_conditions");
    assert_eq!(sm[0]["cause"], "opening");
    assert_eq!(
        sm[0]["conditions"],
        json!([{"kind": "enhanced_verification"}, {"kind": "capacity_limit", "max_vcpus": 8}])
    );
    assert_eq!(
        kinds(&sm[0]["evidence"]),
        vec![
            "address_country",
            "bank_account_country",
            "card_issuing_country",
            "iban_country",
            "national_id_issuing_country",
            "nationality",
            "phone_country"
        ]
    );
    // Visible when the account is read, and in its decision.
    let read = json_of(
        app.get(&format!("/v1/accounts/{aid}"), &app.admin).await,
        200,
    )
    .await;
    assert_eq!(read["special_measures"][0]["measure_id"], mid);
    let d = decision(&app, aid).await;
    assert_eq!(d["special_measures"].as_array().unwrap().len(), 1);
    assert_eq!(d["verification_needed"], true);
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains(mid)),
        "{d}"
    );
    // The report lists the account with its evidence.
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(report["accounts"][0]["account_id"], aid);
    assert_eq!(report["counts"]["apply_conditions"], 1);
    app.cleanup().await;
}

async fn measure_taking_effect_flags_existing_accounts(b: Backend) {
    let app = spawn_app(b).await;
    let (url, mut rx) = receiver().await;
    json_of(
        app.post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "events": ["account.special_measure"]}),
        )
        .await,
        201,
    )
    .await;
    let (tied, _) = app.create_customer(&individual("e1")).await;
    let (untied, _) = app.create_customer(&entity("e1")).await;
    let aid = json_of(open_account(&app, &tied, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = json_of(open_account(&app, &untied, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(decision(&app, &aid).await["special_measures"], json!([]));

    // An expired measure and one not yet effective are never applied by the job.
    let expired = create_measure(
        &app,
        &jurisdiction(
            "DE",
            -400,
            json!({"maintaining": "prohibited", "expiry_date": day(-35)}),
        ),
    )
    .await;
    let future = create_measure(
        &app,
        &jurisdiction(
            "DE",
            10,
            json!({"maintaining": "conditioned", "conditions": [{"kind": "no_reseller_accounts"}]}),
        ),
    )
    .await;
    let now = cip_server::time::now_micros();
    assert_eq!(
        cip_server::measures::measures_run_once(&app.state, now, 10)
            .await
            .unwrap(),
        Ran::Idle
    );

    // A measure prohibiting maintaining accounts takes effect.
    let m = create_measure(
        &app,
        &jurisdiction(
            "DE",
            0,
            json!({"maintaining": "prohibited", "compliance_days": 20}),
        ),
    )
    .await;
    let mid = m["id"].as_str().unwrap();
    sweep_until_flagged(&app, now, &aid, mid).await;
    let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a webhook within 30 s")
        .unwrap();
    assert_eq!(event["type"], "account.special_measure");
    assert_eq!(event["data"]["account_id"], aid.as_str());
    assert_eq!(event["data"]["measure_id"], mid);
    assert_eq!(event["data"]["action"], "close");
    assert!(event["data"]["deadline"].is_string());

    let d = decision(&app, &aid).await;
    assert_eq!(d["must_close"], true, "{d}");
    assert_eq!(d["may_use"], false);
    assert_eq!(d["usage"], "none");
    assert_eq!(d["special_measures"][0]["measure_id"], mid);
    assert_eq!(d["special_measures"][0]["action"], "close");
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("89 FR 0000")),
        "the decision cites the measure: {d}"
    );
    assert_eq!(decision(&app, &other).await["special_measures"], json!([]));

    // Applied once: another pass finds nothing, the report shows the one account.
    assert_eq!(
        cip_server::measures::measures_run_once(&app.state, now, 10)
            .await
            .unwrap(),
        Ran::Idle
    );
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(report["accounts"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["accounts"][0]["cause"], "measure_in_effect");
    assert!(report["measure"]["applied_to_existing_at"].is_string());
    assert!(kinds(&report["accounts"][0]["evidence"]).contains(&"nationality".to_string()));
    for gone in [&expired, &future] {
        let r = json_of(
            app.get(
                &format!(
                    "/v1/special-measures/{}/report",
                    gone["id"].as_str().unwrap()
                ),
                &app.admin,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(r["accounts"], json!([]), "{r}");
    }

    // The future measure applies once its day comes (the job run as of then) — and the
    // decision today still does not cite it, since it is not in force yet.
    let later = now + 11 * 86_400 * 1_000_000;
    let fid = future["id"].as_str().unwrap();
    sweep_until_flagged(&app, later, &aid, fid).await;
    let d = decision(&app, &aid).await;
    let cited: Vec<&str> = d["special_measures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["measure_id"].as_str().unwrap())
        .collect();
    assert_eq!(cited, vec![mid]);

    // Extended, then revoked: the decision stops citing it.
    let ext = json_of(
        app.post(
            &format!("/v1/special-measures/{mid}/extend"),
            &app.admin,
            &json!({"expiry_date": day(700), "reason": "extended by notice 2"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ext["expiry_date"], day(700));
    assert_eq!(ext["extensions"][0]["previous_expiry_date"], day(365));
    assert_eq!(ext["extensions"][0]["reason"], "extended by notice 2");
    json_of(
        app.post(
            &format!("/v1/special-measures/{mid}/revoke"),
            &app.admin,
            &json!({"reason": "revoked"}),
        )
        .await,
        200,
    )
    .await;
    let d = decision(&app, &aid).await;
    assert_eq!(d["special_measures"], json!([]), "{d}");
    assert_eq!(d["must_close"], false);
    // The account still shows what was done (not in force any more).
    let read = json_of(
        app.get(&format!("/v1/accounts/{aid}"), &app.admin).await,
        200,
    )
    .await;
    let on = read["special_measures"].as_array().unwrap();
    assert_eq!(on.len(), 2);
    assert!(on.iter().all(|m| m["in_force"] == false), "{read}");
    app.cleanup().await;
}

fn sanctions_list() -> Value {
    json!([
        {"id": "B-1", "kind": "person", "name": "Ivan Petrovich Sidorov", "birth_date": ["1961-04-12"], "countries": ["RU"]},
        {"id": "B-3", "kind": "person", "name": "Mohammed Al-Rashidi", "countries": ["SY"]}
    ])
}

async fn decide(app: &TestApp, token: &str, customer_id: &str) {
    let items = json_of(
        app.get(
            &format!("/v1/reviews?customer_id={customer_id}&status=open"),
            token,
        )
        .await,
        200,
    )
    .await;
    let rid = items["items"][0]["id"]
        .as_str()
        .expect("an open review item");
    json_of(
        app.post(
            &format!("/v1/reviews/{rid}/decision"),
            token,
            &json!({"decision": "confirm", "reason": "same person, documents match"}),
        )
        .await,
        200,
    )
    .await;
}

async fn person_measure_and_confirmed_hit(b: Backend) {
    let app = spawn_app(b).await;
    let analyst = app.key(Role::Analyst).await;
    let resp = app
        .client
        .post(app.url("/v1/lists/own/versions?format=own_json"))
        .bearer_auth(&app.admin)
        .body(serde_json::to_vec(&sanctions_list()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let m = create_measure(
        &app,
        &json!({
            "target": {"kind": "designated_persons", "list_id": "own", "entry_ids": ["B-1"]},
            "maintaining": "prohibited",
            "legal_reference": "Commerce designation 2026-7",
            "determination_date": day(-5),
            "effective_date": day(-1),
        }),
    )
    .await;
    let mid = m["id"].as_str().unwrap();

    // Screened at creation: review items open; no hit is confirmed yet, so nothing ties.
    let (ivan, _) = app
        .create_customer(&json!({
            "kind": "individual",
            "identity": {"names": [{"full": "Ivan P. Sidorov"}], "birth_date": "1961-04-12", "citizenships": ["RU"]}
        }))
        .await;
    let (owner_co, _) = app
        .create_customer(&json!({
            "kind": "entity",
            "identity": {"names": [{"full": "Harbour Supply GmbH"}], "addresses": [{"kind": "registered", "lines": ["1 Kai"], "country": "DE"}]},
            "beneficial_owners": [{"identity": {"names": [{"full": "Muhammad Al Rashidi"}], "citizenships": ["SY"]}, "ownership_percent": 60}]
        }))
        .await;
    let ivan_acct = json_of(open_account(&app, &ivan, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let co_acct = json_of(open_account(&app, &owner_co, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Confirming B-1: the measure targeting it applies to Ivan's account.
    decide(&app, &analyst, &ivan).await;
    let d = decision(&app, &ivan_acct).await;
    assert_eq!(d["must_close"], true, "{d}");
    assert_eq!(d["special_measures"][0]["measure_id"], mid);
    assert_eq!(d["special_measures"][0]["cause"], "confirmed_hit");
    assert_eq!(
        d["special_measures"][0]["evidence"][0]["kind"],
        "confirmed_screening_hit"
    );
    assert_eq!(d["special_measures"][0]["evidence"][0]["entry_id"], "B-1");
    // And a new application of Ivan's is refused, citing the measure.
    let e = json_of(open_account(&app, &ivan, "standard").await, 422).await;
    assert!(e["message"].as_str().unwrap().contains(mid), "{e}");

    // Confirming B-3 (no measure targets it): the default, restrict pending review.
    decide(&app, &analyst, &owner_co).await;
    let d = decision(&app, &co_acct).await;
    assert_eq!(d["must_restrict"], true, "{d}");
    assert_eq!(d["must_close"], false);
    assert_eq!(d["special_measures"][0]["action"], "restrict");
    assert!(d["special_measures"][0].get("measure_id").is_none());
    assert_eq!(
        d["special_measures"][0]["evidence"][0]["subject"],
        "owner/0"
    );

    // The measure's report lists Ivan's account only.
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &analyst)
            .await,
        200,
    )
    .await;
    let accts: Vec<&str> = report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(accts, vec![ivan_acct.as_str()]);
    app.cleanup().await;
}

async fn bad_input_writes_nothing_and_roles_are_checked(b: Backend) {
    let app = spawn_app(b).await;
    let analyst = app.key(Role::Analyst).await;
    let auditor = app.key(Role::Auditor).await;
    let integration = app.key(Role::Integration).await;
    let head = app.audit_head().await;
    let fields = |v: &Value| -> Vec<(String, String)> {
        v["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["field"].as_str().unwrap().to_string(),
                    d["code"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            jurisdiction("XX", 0, json!({"opening": "prohibited"})),
            vec![("/target/country", "invalid_country")],
        ),
        (
            jurisdiction(
                "KP",
                0,
                json!({"opening": "prohibited", "expiry_date": day(-3)}),
            ),
            vec![("/expiry_date", "before_effective")],
        ),
        (
            json!({
                "target": {"kind": "designated_persons", "list_id": "nosuchlist"},
                "opening": "prohibited",
                "legal_reference": "x",
                "determination_date": day(0),
                "effective_date": day(0),
            }),
            vec![("/target/list_id", "unknown_list")],
        ),
        (
            jurisdiction("KP", 0, json!({"opening": "prohibited", "colour": "red"})),
            vec![("/colour", "unknown_field")],
        ),
        (
            jurisdiction(
                "KP",
                0,
                json!({"opening": "conditioned", "conditions": [{"kind": "be_nice"}]}),
            ),
            vec![("/conditions/0/kind", "invalid_enum")],
        ),
    ];
    for (body, want) in cases {
        let resp = app.post("/v1/special-measures", &app.admin, &body).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{v}");
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect();
        assert_eq!(fields(&v), want, "{v}");
    }
    assert_eq!(
        app.audit_head().await,
        head,
        "a refused request writes nothing"
    );
    let listed = json_of(app.get("/v1/special-measures", &app.admin).await, 200).await;
    assert_eq!(listed["items"], json!([]));

    // Roles: admins create, extend and revoke; analysts and auditors read; integrations
    // do neither.
    let body = jurisdiction("KP", 0, json!({"opening": "prohibited"}));
    for token in [&analyst, &auditor, &integration] {
        assert_eq!(
            app.post("/v1/special-measures", token, &body)
                .await
                .status(),
            403
        );
    }
    let m = create_measure(&app, &body).await;
    let mid = m["id"].as_str().unwrap();
    for token in [&analyst, &auditor] {
        assert_eq!(app.get("/v1/special-measures", token).await.status(), 200);
        assert_eq!(
            app.get(&format!("/v1/special-measures/{mid}"), token)
                .await
                .status(),
            200
        );
        assert_eq!(
            app.get(&format!("/v1/special-measures/{mid}/report"), token)
                .await
                .status(),
            200
        );
        assert_eq!(
            app.post(
                &format!("/v1/special-measures/{mid}/extend"),
                token,
                &json!({"expiry_date": day(900), "reason": "r"})
            )
            .await
            .status(),
            403
        );
        assert_eq!(
            app.post(
                &format!("/v1/special-measures/{mid}/revoke"),
                token,
                &json!({"reason": "r"})
            )
            .await
            .status(),
            403
        );
    }
    assert_eq!(
        app.get("/v1/special-measures", &integration).await.status(),
        403
    );
    // An extension must move the expiry later; nothing changes otherwise.
    let v = json_of(
        app.post(
            &format!("/v1/special-measures/{mid}/extend"),
            &app.admin,
            &json!({"expiry_date": day(10), "reason": "shorter"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        fields(&v),
        vec![("/expiry_date".to_string(), "not_later".to_string())]
    );
    // Every problem of an extension is listed at once.
    let v = json_of(
        app.post(
            &format!("/v1/special-measures/{mid}/extend"),
            &app.admin,
            &json!({"expiry_date": "2027-02-30", "reason": " "}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        fields(&v),
        vec![
            ("/expiry_date".to_string(), "invalid_date".to_string()),
            ("/reason".to_string(), "invalid_reason".to_string())
        ]
    );
    let again = json_of(
        app.get(&format!("/v1/special-measures/{mid}"), &auditor)
            .await,
        200,
    )
    .await;
    assert_eq!(again["version"], 1);
    assert_eq!(again["extensions"], json!([]));
    // The creation was audited.
    let entries = app
        .state
        .store
        .list_audit(
            &cip_store::AuditFilter {
                record_id: Some(mid.to_string()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.draft.action == "special_measure.create")
    );
    app.cleanup().await;
}

/// `cip measures list|report --json` read the same database as the server.
async fn cli_lists_and_reports_measures(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&individual("cli")).await;
    let aid = json_of(open_account(&app, &cid, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = create_measure(
        &app,
        &jurisdiction("DE", 0, json!({"maintaining": "prohibited"})),
    )
    .await;
    let mid = m["id"].as_str().unwrap().to_string();
    sweep_until_flagged(&app, cip_server::time::now_micros(), &aid, &mid).await;

    let out = app.cli(&["measures", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["id"], mid.as_str());
    assert_eq!(list[0]["status"], "in_force");

    let head = app.audit_head().await;
    let out = app.cli(&["measures", "report", &mid, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accounts"][0]["account_id"], aid.as_str());
    assert_eq!(report["accounts"][0]["action"], "close");
    assert_eq!(report["counts"]["close"], 1);
    assert_eq!(
        app.audit_head().await,
        head + 1,
        "the report read is audited"
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let out = app.cli(&["measures", "report", &unknown, "--json"]);
    assert_eq!(out.status.code(), Some(1), "an unknown measure is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such special measure"));
    app.cleanup().await;
}

/// An instance that claimed a measure and died: while its lease runs no other pass takes
/// the measure; when it ends, the next pass applies it — once.
async fn an_instance_that_dies_holding_a_measure_is_taken_over(b: Backend) {
    let app = spawn_app(b).await;
    let (cid, _) = app.create_customer(&individual("lease")).await;
    let aid = json_of(open_account(&app, &cid, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = create_measure(
        &app,
        &jurisdiction("DE", 0, json!({"maintaining": "prohibited"})),
    )
    .await;
    let mid = m["id"].as_str().unwrap();
    let now = cip_server::time::now_micros();
    let minute = 60_000_000i64;
    let claimed = app
        .state
        .store
        .claim_measure_sweeps(now, now + 10 * minute, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the dying instance holds the measure");
    assert_eq!(claimed[0].id.to_string(), mid);
    assert_eq!(
        cip_server::measures::measures_run_once(&app.state, now + minute, 10)
            .await
            .unwrap(),
        Ran::Idle,
        "no pass takes a leased measure"
    );
    assert_eq!(
        cip_server::measures::measures_run_once(&app.state, now + 11 * minute, 10)
            .await
            .unwrap(),
        Ran::Did(1),
        "after the lease the next pass applies it"
    );
    assert_eq!(
        cip_server::measures::measures_run_once(&app.state, now + 30 * minute, 10)
            .await
            .unwrap(),
        Ran::Idle
    );
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    let accts: Vec<&str> = report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(accts, vec![aid.as_str()]);
    app.cleanup().await;
}

/// Runs the special-measures job until measure `mid` is applied to existing accounts (the
/// server's own job may be the one that does it: a condition, not a delay).
async fn swept(app: &TestApp, mid: &str) {
    let id: uuid::Uuid = mid.parse().unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            cip_server::measures::measures_run_once(&app.state, cip_server::time::now_micros(), 10)
                .await
                .unwrap();
            let row = app.state.store.get_measure(id).await.unwrap().unwrap();
            if row.swept_at.is_some() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the measure is applied within 30 s");
}

/// Replaces a customer's record at `version` (its current one).
async fn put_customer(app: &TestApp, id: &str, version: i64, body: &Value) {
    let resp = app
        .client
        .put(app.url(&format!("/v1/customers/{id}")))
        .bearer_auth(&app.admin)
        .header("if-match", format!("\"{version}\""))
        .json(body)
        .send()
        .await
        .unwrap();
    json_of(resp, 200).await;
}

fn with_address_in(mut body: Value, country: &str) -> Value {
    body["identity"]["addresses"] =
        json!([{"kind": "registered", "lines": ["1 Harbour Road"], "country": country}]);
    body
}

async fn actions_on(app: &TestApp, account_id: &str) -> Vec<Value> {
    json_of(
        app.get(&format!("/v1/accounts/{account_id}"), &app.admin)
            .await,
        200,
    )
    .await["special_measures"]
        .as_array()
        .unwrap()
        .clone()
}

async fn record_change_rechecks_measures(b: Backend) {
    let app = spawn_app(b).await;
    let (url, mut rx) = receiver().await;
    let hook = json_of(
        app.post(
            "/v1/webhooks",
            &app.admin,
            &json!({"url": url, "events": ["account.special_measure"]}),
        )
        .await,
        201,
    )
    .await;
    // entity(): organised in the U.S. with a U.S. address; one owner is Japanese.
    let (cid, _) = app.create_customer(&entity("rc1")).await;
    let aid = json_of(open_account(&app, &cid, "standard").await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = create_measure(
        &app,
        &jurisdiction(
            "DE",
            0,
            json!({"maintaining": "prohibited", "compliance_days": 10}),
        ),
    )
    .await;
    let mid = m["id"].as_str().unwrap();
    swept(&app, mid).await;
    assert!(actions_on(&app, &aid).await.is_empty(), "not tied yet");

    // The record now places the entity in Germany: the account gets the action, once.
    let german = with_address_in(entity("rc1"), "DE");
    put_customer(&app, &cid, 1, &german).await;
    let on = actions_on(&app, &aid).await;
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["measure_id"], mid);
    assert_eq!(on[0]["action"], "close");
    assert_eq!(on[0]["cause"], "record_changed");
    assert!(on[0]["deadline"].is_string());
    assert!(on[0].get("no_longer_tied_since").is_none());
    assert_eq!(kinds(&on[0]["evidence"]), vec!["address_country"]);
    let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a webhook within 30 s")
        .unwrap();
    assert_eq!(event["type"], "account.special_measure");
    assert_eq!(event["data"]["account_id"], aid.as_str());
    assert_eq!(event["data"]["cause"], "record_changed");
    assert_eq!(decision(&app, &aid).await["must_close"], true);

    // Another change that still ties it records nothing more.
    let mut still = german.clone();
    still["identity"]["emails"] = json!(["ops-rc1@vortex.example", "legal-rc1@vortex.example"]);
    put_customer(&app, &cid, 2, &still).await;
    assert_eq!(actions_on(&app, &aid).await.len(), 1);

    // Back to the U.S.: the action stays (an analyst lifts it), marked no longer tied.
    put_customer(&app, &cid, 3, &entity("rc1")).await;
    let on = actions_on(&app, &aid).await;
    assert_eq!(on.len(), 1);
    assert!(on[0]["no_longer_tied_since"].is_string(), "{on:?}");
    let d = decision(&app, &aid).await;
    assert_eq!(d["must_close"], true, "still in force until lifted: {d}");
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("no longer ties")),
        "{d}"
    );
    let untied = app
        .state
        .store
        .list_audit(
            &cip_store::AuditFilter {
                record_id: Some(aid.clone()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.draft.action == "special_measure.untied")
        .count();
    assert_eq!(untied, 1);

    // Tied again: the mark goes, still one action.
    put_customer(&app, &cid, 4, &german).await;
    let on = actions_on(&app, &aid).await;
    assert_eq!(on.len(), 1);
    assert!(on[0].get("no_longer_tied_since").is_none(), "{on:?}");

    // One event in all, and the report shows the account once.
    let deliveries = app
        .state
        .store
        .list_deliveries(hook["id"].as_str().unwrap().parse().unwrap(), 100)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(report["accounts"].as_array().unwrap().len(), 1, "{report}");
    app.cleanup().await;
}

async fn product_and_capacity_limits_are_enforced(b: Backend) {
    let app = spawn_app(b).await;
    let (tied, _) = app.create_customer(&individual("pl1")).await;
    let (untied, _) = app.create_customer(&entity("pl1")).await;
    let m = create_measure(
        &app,
        &jurisdiction(
            "DE",
            0,
            json!({
                "opening": "conditioned",
                "conditions": [
                    {"kind": "product_limit", "allowed_products": ["storage", "object-storage"]},
                    {"kind": "capacity_limit", "max_vcpus": 8}
                ],
            }),
        ),
    )
    .await;
    let mid = m["id"].as_str().unwrap();

    // A product outside the limit is refused, citing the measure; only the read is audited.
    let head = app.audit_head().await;
    let e = json_of(open_account(&app, &tied, "standard").await, 422).await;
    assert_eq!(e["code"], "CIP-MEASURE-0002", "{e}");
    assert!(e["message"].as_str().unwrap().contains(mid), "{e}");
    assert_eq!(e["details"][0]["field"], "/product");
    assert_eq!(e["details"][0]["code"], "outside_product_limit");
    assert!(
        e["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("storage, object-storage"),
        "{e}"
    );
    assert!(accounts_of(&app, &tied).await.is_empty());
    assert_eq!(app.audit_head().await, head + 1);
    let last = app
        .state
        .store
        .audit_range(head + 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(last.draft.action, "account.refused");
    let report = json_of(
        app.get(&format!("/v1/special-measures/{mid}/report"), &app.admin)
            .await,
        200,
    )
    .await;
    assert_eq!(report["refused_applications"][0]["reason"], "product_limit");
    assert_eq!(report["refused_applications"][0]["product"], "compute");

    // An allowed product (names compare without case) opens with the conditions.
    let a = json_of(
        app.post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": tied, "product": "Storage", "account_type": "standard", "status": "active"}),
        )
        .await,
        201,
    )
    .await;
    let aid = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["special_measures"][0]["measure_id"], mid);

    // The control plane asks about uses.
    let ask = |q: &str| {
        let (app, aid, q) = (&app, aid.clone(), q.to_string());
        async move {
            json_of(
                app.get(&format!("/v1/accounts/{aid}/decision?{q}"), &app.admin)
                    .await,
                200,
            )
            .await["use_check"]
                .clone()
        }
    };
    let u = ask("product=compute").await;
    assert_eq!(u["allowed"], false, "{u}");
    let product_limit = u["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "product_limit")
        .unwrap()
        .clone();
    assert_eq!(product_limit["permitted"], false);
    assert_eq!(product_limit["measure_id"], mid);
    assert!(
        u["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains(mid)),
        "{u}"
    );
    let u = ask("vcpus=4").await;
    assert_eq!(u["product"], "Storage", "the account's own product");
    assert_eq!(u["allowed"], true, "{u}");
    let u = ask("product=storage&vcpus=16").await;
    assert_eq!(u["allowed"], false, "{u}");
    let broken: Vec<&str> = u["limits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["permitted"] == false)
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(broken, vec!["capacity_limit"]);
    assert!(
        u["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("at most 8 vCPUs")),
        "{u}"
    );
    // An account not yet opened may not be used at all, limits or not.
    let applied = json_of(
        app.post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": tied, "product": "storage", "account_type": "standard"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = json_of(
        app.get(
            &format!("/v1/accounts/{applied}/decision?vcpus=1"),
            &app.admin,
        )
        .await,
        200,
    )
    .await["use_check"]
        .clone();
    assert_eq!(u["allowed"], false, "{u}");
    assert!(
        u["limits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["permitted"] == true)
    );
    // Without a use asked, no use_check; a bad one writes nothing.
    let d = decision(&app, &aid).await;
    assert!(d.get("use_check").is_none(), "{d}");
    let head = app.audit_head().await;
    let resp = app
        .get(&format!("/v1/accounts/{aid}/decision?vcpus=0"), &app.admin)
        .await;
    assert_eq!(resp.status(), 422);
    let resp = app
        .get(
            &format!("/v1/accounts/{aid}/decision?vcpus=many"),
            &app.admin,
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        app.audit_head().await,
        head,
        "refused queries write nothing"
    );

    // Changing the account to a product outside the limit is refused the same way.
    let patch = |product: &str| {
        let (app, aid, product) = (&app, aid.clone(), product.to_string());
        async move {
            app.client
                .patch(app.url(&format!("/v1/accounts/{aid}")))
                .bearer_auth(&app.admin)
                .header("if-match", "\"1\"")
                .json(&json!({ "product": product }))
                .send()
                .await
                .unwrap()
        }
    };
    let e = json_of(patch("compute").await, 422).await;
    assert_eq!(e["code"], "CIP-MEASURE-0002", "{e}");
    let read = json_of(
        app.get(&format!("/v1/accounts/{aid}"), &app.admin).await,
        200,
    )
    .await;
    assert_eq!(read["product"], "Storage");
    assert_eq!(read["version"], 1);
    let ok = json_of(patch("object-storage").await, 200).await;
    assert_eq!(ok["product"], "object-storage");

    // An account no measure limits may be used for anything.
    let other = json_of(
        app.post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": untied, "product": "compute", "account_type": "standard", "status": "active"}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = json_of(
        app.get(
            &format!("/v1/accounts/{other}/decision?product=compute&vcpus=512"),
            &app.admin,
        )
        .await,
        200,
    )
    .await["use_check"]
        .clone();
    assert_eq!(u["allowed"], true, "{u}");
    assert_eq!(u["limits"], json!([]));
    app.cleanup().await;
}
