//! The conformance suite: one set of behaviours every [`Store`] adapter must show.
//! `tests/conformance.rs` runs it against SQLite and against PostgreSQL.
//!
//! Each check returns `Err(description)` on the first broken expectation so the test output
//! names the behaviour that differs.

use std::sync::Arc;

use uuid::Uuid;

use crate::*;

type Check = std::result::Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn e<T: std::fmt::Debug>(what: &str) -> impl FnOnce(T) -> String + '_ {
    move |err| format!("{what}: {err:?}")
}

/// A named check: runs against a store and reports the first broken expectation.
pub type NamedCheck = (&'static str, fn(Arc<dyn Store>) -> futures_check::BoxCheck);

/// Every check, by name. Run them in order on one fresh store.
pub fn checks() -> Vec<NamedCheck> {
    vec![
        ("meta", |s| Box::pin(meta(s))),
        ("job_leases", |s| Box::pin(job_leases(s))),
        ("api_keys", |s| Box::pin(api_keys(s))),
        ("customers", |s| Box::pin(customers(s))),
        ("idempotency", |s| Box::pin(idempotency(s))),
        ("accounts", |s| Box::pin(accounts(s))),
        ("concurrent_updates", |s| Box::pin(concurrent_updates(s))),
        ("reseal", |s| Box::pin(reseal(s))),
        ("audit_chain", |s| Box::pin(audit_chain(s))),
        ("lifecycle_and_webhooks", |s| {
            Box::pin(lifecycle_and_webhooks(s))
        }),
        ("list_versions", |s| Box::pin(list_versions(s))),
        ("reviews", |s| Box::pin(reviews(s))),
        ("special_measures", |s| Box::pin(special_measures(s))),
        ("concurrent_measure_claims", |s| {
            Box::pin(concurrent_measure_claims(s))
        }),
        ("verification", |s| Box::pin(verification(s))),
        ("digests", |s| Box::pin(digests(s))),
        ("concurrent_otp_throttle", |s| {
            Box::pin(concurrent_otp_throttle(s))
        }),
        ("notices_and_history", |s| Box::pin(notices_and_history(s))),
        ("due_work", |s| Box::pin(due_work(s))),
        ("screen_keys", |s| Box::pin(screen_keys(s))),
    ]
}

pub mod futures_check {
    pub type BoxCheck =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;
}

/// Runs every check; returns the failures as `name: problem` lines.
pub async fn run_all(store: Arc<dyn Store>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, check) in checks() {
        if let Err(problem) = check(store.clone()).await {
            failures.push(format!("{name}: {problem}"));
        }
    }
    failures
}

pub fn draft(action: &str, record_id: Option<String>) -> AuditDraft {
    AuditDraft {
        at: crate::sqlite::now_micros(),
        actor: "conformance".into(),
        role: "admin".into(),
        action: action.into(),
        record_type: action.split('.').next().unwrap_or("x").into(),
        record_id,
        fields: vec!["/names".into()],
        request_id: Some("req-1".into()),
        purpose: None,
    }
}

fn customer_row(id: Uuid, version: i64, kind: &str, country: &str, key_id: u32) -> CustomerRow {
    CustomerRow {
        id,
        kind: kind.into(),
        version,
        created_at: 1_700_000_000_000_000 + i64::from(id.as_bytes()[15]),
        updated_at: 1_700_000_000_000_000,
        country: Some(country.into()),
        document: format!("sealed-{id}-{version}").into_bytes(),
        key_id,
        digest: Some(sealed_digest(&format!("{id}-{version}"))),
        screen_keys: None,
    }
}

fn sealed_digest(tag: &str) -> SealedDigest {
    SealedDigest {
        policy: format!("policy-{tag}").into_bytes(),
        screening: format!("screening-{tag}").into_bytes(),
    }
}

fn term(kind: &str, byte: u8) -> IndexTerm {
    IndexTerm {
        kind: kind.into(),
        hash: [byte; 32],
    }
}

fn write(row: CustomerRow, terms: Vec<IndexTerm>) -> CustomerWrite {
    let id = row.id.to_string();
    CustomerWrite {
        row,
        terms,
        audit: draft("customer.create", Some(id)),
        idempotency: None,
        extras: Default::default(),
    }
}

/// A job lease is held by one holder until it expires or is released; renewals by the holder
/// succeed, claims by others fail until then.
async fn job_leases(s: Arc<dyn Store>) -> Check {
    let claim = |who: &'static str, now: i64, until: i64| {
        let s = s.clone();
        async move { s.claim_job("rescreen:x:1", who, now, until).await }
    };
    ensure!(
        claim("a", 100, 200).await.map_err(e("claim"))?,
        "a free lease is taken"
    );
    ensure!(
        !claim("b", 150, 250).await.map_err(e("claim"))?,
        "a held lease is refused"
    );
    ensure!(
        claim("a", 150, 300).await.map_err(e("renew"))?,
        "the holder renews"
    );
    ensure!(
        !claim("b", 299, 400).await.map_err(e("claim"))?,
        "renewed until 300"
    );
    ensure!(
        claim("b", 300, 400).await.map_err(e("take over"))?,
        "an expired lease is taken over"
    );
    ensure!(!claim("a", 310, 500).await.map_err(e("claim"))?, "now b's");
    s.release_job("rescreen:x:1", "a")
        .await
        .map_err(e("release"))?;
    ensure!(
        !claim("a", 320, 500).await.map_err(e("claim"))?,
        "only the holder releases"
    );
    s.release_job("rescreen:x:1", "b")
        .await
        .map_err(e("release"))?;
    ensure!(
        claim("a", 330, 500).await.map_err(e("claim"))?,
        "a released lease is free"
    );
    ensure!(
        s.claim_job("other", "b", 330, 500)
            .await
            .map_err(e("claim"))?,
        "leases are per name"
    );
    Ok(())
}

async fn meta(s: Arc<dyn Store>) -> Check {
    ensure!(
        s.get_meta("x").await.map_err(e("get"))?.is_none(),
        "unset meta must read as None"
    );
    let first = s.init_meta("x", b"one").await.map_err(e("init"))?;
    let second = s.init_meta("x", b"two").await.map_err(e("init again"))?;
    ensure!(
        first == b"one" && second == b"one",
        "init_meta must keep the first value"
    );
    s.set_meta("x", b"three", draft("meta.set", None))
        .await
        .map_err(e("set"))?;
    ensure!(
        s.get_meta("x").await.map_err(e("get"))?.as_deref() == Some(&b"three"[..]),
        "set_meta must overwrite"
    );
    Ok(())
}

async fn api_keys(s: Arc<dyn Store>) -> Check {
    let key = ApiKeyRow {
        id: "k1".into(),
        role: "analyst".into(),
        secret_hash: [7; 32],
        label: Some("ops".into()),
        created_at: 1,
        revoked_at: None,
    };
    s.insert_api_key(key.clone(), draft("api_key.create", Some("k1".into())))
        .await
        .map_err(e("insert"))?;
    let dup = s
        .insert_api_key(key.clone(), draft("api_key.create", Some("k1".into())))
        .await;
    ensure!(
        matches!(dup, Err(StoreError::Duplicate { .. })),
        "duplicate key id must be refused, got {dup:?}"
    );
    ensure!(
        s.get_api_key("k1").await.map_err(e("get"))? == Some(key.clone()),
        "key must read back as written"
    );
    ensure!(
        s.revoke_api_key("k1", 5, draft("api_key.revoke", Some("k1".into())))
            .await
            .map_err(e("revoke"))?,
        "revoking a live key must report true"
    );
    ensure!(
        !s.revoke_api_key("k1", 6, draft("api_key.revoke", Some("k1".into())))
            .await
            .map_err(e("revoke again"))?,
        "revoking twice must report false"
    );
    let got = s.get_api_key("k1").await.map_err(e("get"))?;
    ensure!(
        got.and_then(|k| k.revoked_at) == Some(5),
        "revoked_at must be the first revocation time"
    );
    ensure!(
        s.list_api_keys().await.map_err(e("list"))?.len() == 1,
        "list must have one key"
    );
    Ok(())
}

async fn customers(s: Arc<dyn Store>) -> Check {
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (i, id) in ids.iter().enumerate() {
        let kind = if i % 2 == 0 { "individual" } else { "entity" };
        let country = if i < 3 { "DE" } else { "US" };
        s.insert_customer(write(
            customer_row(*id, 1, kind, country, 1),
            vec![term("email", i as u8), term("phone", 100)],
        ))
        .await
        .map_err(e("insert"))?;
    }
    let dup = s
        .insert_customer(write(
            customer_row(ids[0], 1, "individual", "DE", 1),
            vec![],
        ))
        .await;
    ensure!(
        matches!(dup, Err(StoreError::Duplicate { .. })),
        "duplicate customer id must be refused, got {dup:?}"
    );
    let got = s.get_customer(ids[2]).await.map_err(e("get"))?;
    ensure!(
        got == Some(customer_row(ids[2], 1, "individual", "DE", 1)),
        "customer must read back as written: {got:?}"
    );
    ensure!(
        s.get_customer(Uuid::now_v7())
            .await
            .map_err(e("get missing"))?
            .is_none(),
        "unknown id must read as None"
    );

    // Cursor pagination walks every row once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_customers(&CustomerFilter::default(), &PageRequest { after, limit: 2 })
            .await
            .map_err(e("list"))?;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    ensure!(
        seen == ids,
        "pagination must return every customer once in id order"
    );
    let entities = s
        .list_customers(
            &CustomerFilter {
                kind: Some("entity".into()),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .map_err(e("filter kind"))?;
    ensure!(
        entities.len() == 2,
        "kind filter: expected 2, got {}",
        entities.len()
    );
    let us = s
        .list_customers(
            &CustomerFilter {
                country: Some("US".into()),
                kind: Some("entity".into()),
                ..Default::default()
            },
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .map_err(e("filter country"))?;
    ensure!(
        us.len() == 1 && us[0].id == ids[3],
        "country+kind filter must combine"
    );

    // Exact lookups through blind-index terms.
    let by_email = s
        .find_customers_by_term("email", &[3; 32])
        .await
        .map_err(e("find"))?;
    ensure!(by_email == vec![ids[3]], "term lookup: got {by_email:?}");
    let by_phone = s
        .find_customers_by_term("phone", &[100; 32])
        .await
        .map_err(e("find"))?;
    ensure!(
        by_phone.len() == 5,
        "shared term must find all 5, got {}",
        by_phone.len()
    );
    ensure!(
        s.find_customers_by_term("email", &[100; 32])
            .await
            .map_err(e("find"))?
            .is_empty(),
        "kinds must not mix"
    );

    // Versioned update replaces the document and the terms.
    s.update_customer(
        write(
            customer_row(ids[0], 2, "individual", "FR", 1),
            vec![term("email", 200)],
        ),
        1,
    )
    .await
    .map_err(e("update"))?;
    let stale = s
        .update_customer(
            write(customer_row(ids[0], 2, "individual", "IT", 1), vec![]),
            1,
        )
        .await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 2 })),
        "stale update must conflict with current 2, got {stale:?}"
    );
    let missing = s
        .update_customer(
            write(
                customer_row(Uuid::now_v7(), 2, "individual", "IT", 1),
                vec![],
            ),
            1,
        )
        .await;
    ensure!(
        matches!(missing, Err(StoreError::NotFound)),
        "update of unknown id must be NotFound, got {missing:?}"
    );
    ensure!(
        s.find_customers_by_term("email", &[0; 32])
            .await
            .map_err(e("find"))?
            .is_empty(),
        "old terms must be gone after update"
    );
    ensure!(
        s.find_customers_by_term("email", &[200; 32])
            .await
            .map_err(e("find"))?
            == vec![ids[0]],
        "new terms must be found after update"
    );
    ensure!(
        s.count_customers().await.map_err(e("count"))? == 5,
        "count must be 5"
    );
    Ok(())
}

async fn idempotency(s: Arc<dyn Store>) -> Check {
    let rec = IdempotencyRecord {
        principal: "k1".into(),
        key: "idem-1".into(),
        request_hash: [9; 32],
        status: 201,
        response: b"{\"id\":\"x\"}".to_vec(),
        created_at: 3,
    };
    let id = Uuid::now_v7();
    let mut w = write(customer_row(id, 1, "individual", "DE", 1), vec![]);
    w.idempotency = Some(rec.clone());
    s.insert_customer(w.clone()).await.map_err(e("first"))?;
    let mut again = write(
        customer_row(Uuid::now_v7(), 1, "individual", "DE", 1),
        vec![],
    );
    again.idempotency = Some(rec.clone());
    match s.insert_customer(again.clone()).await {
        Err(StoreError::IdempotencyReplay(found)) => {
            ensure!(*found == rec, "replay must return the stored record")
        }
        other => return Err(format!("second use of a key must replay, got {other:?}")),
    }
    ensure!(
        s.get_customer(again.row.id)
            .await
            .map_err(e("get"))?
            .is_none(),
        "a replayed request must write nothing"
    );
    // The same key from another principal is a different request.
    let mut other = write(
        customer_row(Uuid::now_v7(), 1, "individual", "DE", 1),
        vec![],
    );
    other.idempotency = Some(IdempotencyRecord {
        principal: "k2".into(),
        ..rec.clone()
    });
    s.insert_customer(other)
        .await
        .map_err(e("other principal"))?;
    ensure!(
        s.get_idempotency("k1", "idem-1").await.map_err(e("get"))? == Some(rec),
        "record must read back"
    );
    Ok(())
}

fn account_row(customer_id: Uuid, external: Option<&str>) -> AccountRow {
    AccountRow {
        id: Uuid::now_v7(),
        customer_id,
        external_id: external.map(str::to_string),
        product: "compute".into(),
        account_type: "standard".into(),
        status: "applied".into(),
        opened_at: None,
        closed_at: None,
        last_accessed_at: None,
        version: 1,
        created_at: 10,
        updated_at: 10,
    }
}

fn account_write(row: AccountRow) -> AccountWrite {
    let id = row.id.to_string();
    AccountWrite {
        row,
        audit: draft("account.create", Some(id)),
        idempotency: None,
        transition: None,
        events: vec![],
    }
}

async fn accounts(s: Arc<dyn Store>) -> Check {
    let cid = Uuid::now_v7();
    s.insert_customer(write(customer_row(cid, 1, "entity", "GB", 1), vec![]))
        .await
        .map_err(e("customer"))?;
    let orphan = s
        .insert_account(account_write(account_row(Uuid::now_v7(), None)))
        .await;
    ensure!(
        matches!(orphan, Err(StoreError::NotFound)),
        "account of unknown customer must be NotFound, got {orphan:?}"
    );
    let a = account_row(cid, Some("ext-1"));
    s.insert_account(account_write(a.clone()))
        .await
        .map_err(e("insert"))?;
    let dup = s
        .insert_account(account_write(account_row(cid, Some("ext-1"))))
        .await;
    ensure!(
        matches!(dup, Err(StoreError::Duplicate { .. })),
        "duplicate external id must be refused, got {dup:?}"
    );
    let b = account_row(cid, None);
    s.insert_account(account_write(b.clone()))
        .await
        .map_err(e("insert b"))?;
    ensure!(
        s.get_account(a.id).await.map_err(e("get"))? == Some(a.clone()),
        "account must read back"
    );
    let mut changed = a.clone();
    changed.status = "active".into();
    changed.version = 2;
    changed.opened_at = Some(20);
    s.update_account(account_write(changed.clone()), 1)
        .await
        .map_err(e("update"))?;
    let stale = s.update_account(account_write(changed.clone()), 1).await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 2 })),
        "stale account update must conflict, got {stale:?}"
    );
    let active = s
        .list_accounts(
            &AccountFilter {
                customer_id: Some(cid),
                status: Some("active".into()),
                account_type: None,
            },
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .map_err(e("list"))?;
    ensure!(
        active == vec![changed],
        "status filter must find the updated account"
    );
    let all = s
        .list_accounts(
            &AccountFilter {
                customer_id: Some(cid),
                ..Default::default()
            },
            &PageRequest {
                after: Some(a.id),
                limit: 10,
            },
        )
        .await
        .map_err(e("list after"))?;
    ensure!(
        all.len() == 1 && all[0].id == b.id,
        "cursor must skip up to and including `after`"
    );
    let by_ext = s
        .get_account_by_external_id("ext-1")
        .await
        .map_err(e("by external id"))?;
    ensure!(
        by_ext.map(|r| r.id) == Some(a.id),
        "lookup by external id must find the account"
    );
    ensure!(
        s.get_account_by_external_id("ext-none")
            .await
            .map_err(e("by unknown external id"))?
            .is_none(),
        "an unknown external id finds nothing"
    );
    // last_accessed_at only moves forward and leaves the version alone.
    s.touch_last_accessed(vec![(a.id, 500), (b.id, 700)])
        .await
        .map_err(e("touch"))?;
    s.touch_last_accessed(vec![(a.id, 300)])
        .await
        .map_err(e("touch back"))?;
    let a2 = s.get_account(a.id).await.map_err(e("get"))?;
    ensure!(
        a2.as_ref().map(|r| (r.last_accessed_at, r.version)) == Some((Some(500), 2)),
        "last_accessed_at must advance only, version unchanged: {a2:?}"
    );
    Ok(())
}

fn endpoint(events: &str) -> WebhookEndpointRow {
    WebhookEndpointRow {
        id: Uuid::now_v7(),
        url: "http://127.0.0.1:9/hook".into(),
        events: events.into(),
        secret: vec![7; 40],
        created_at: 5,
        disabled_at: None,
    }
}

fn event_draft(event_type: &str, at: i64) -> EventDraft {
    EventDraft {
        id: Uuid::now_v7(),
        event_type: event_type.into(),
        payload: format!("{{\"type\":\"{event_type}\"}}").into_bytes(),
        created_at: at,
    }
}

/// Transitions are stored with their change; events fan out to the enabled endpoints that
/// subscribed to their type; concurrent claims never hand out one delivery twice; outcomes
/// and retries land in the delivery log.
async fn lifecycle_and_webhooks(s: Arc<dyn Store>) -> Check {
    let all = endpoint("*");
    let created_only = endpoint("account.created");
    let changes = endpoint("account.created,account.status_changed");
    let disabled = endpoint("*");
    for ep in [&all, &created_only, &changes, &disabled] {
        s.insert_webhook_endpoint(ep.clone(), draft("webhook.create", Some(ep.id.to_string())))
            .await
            .map_err(e("endpoint"))?;
    }
    let off = s
        .disable_webhook_endpoint(disabled.id, 6, draft("webhook.disable", None))
        .await
        .map_err(e("disable"))?;
    let again = s
        .disable_webhook_endpoint(disabled.id, 7, draft("webhook.disable", None))
        .await
        .map_err(e("disable again"))?;
    ensure!(
        off && !again,
        "disable must succeed once, then report false"
    );
    let listed = s
        .list_webhook_endpoints()
        .await
        .map_err(e("list endpoints"))?;
    ensure!(
        listed.len() == 4
            && listed
                .iter()
                .any(|r| r.id == disabled.id && r.disabled_at == Some(6)),
        "endpoints must list with their disabled time: {listed:?}"
    );

    let cid = Uuid::now_v7();
    s.insert_customer(write(customer_row(cid, 1, "entity", "GB", 1), vec![]))
        .await
        .map_err(e("customer"))?;
    let a = account_row(cid, None);
    let mut w = account_write(a.clone());
    w.transition = Some(TransitionRow {
        account_id: a.id,
        version: 1,
        from_status: "none".into(),
        to_status: "applied".into(),
        reason: "account created".into(),
        actor: "k1".into(),
        at: 10,
    });
    w.events = vec![event_draft("account.created", 10)];
    s.insert_account(w).await.map_err(e("insert account"))?;
    let mut changed = a.clone();
    changed.status = "pending_verification".into();
    changed.version = 2;
    let mut w = account_write(changed.clone());
    w.transition = Some(TransitionRow {
        account_id: a.id,
        version: 2,
        from_status: "applied".into(),
        to_status: "pending_verification".into(),
        reason: "foreign beneficial owner".into(),
        actor: "k2".into(),
        at: 20,
    });
    w.events = vec![event_draft("account.status_changed", 20)];
    s.update_account(w.clone(), 1).await.map_err(e("update"))?;
    // A refused update writes no transition and no event.
    let stale = s.update_account(w, 1).await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { .. })),
        "stale update must conflict, got {stale:?}"
    );
    let ts = s.list_transitions(a.id).await.map_err(e("transitions"))?;
    ensure!(
        ts.len() == 2
            && ts[0].to_status == "applied"
            && ts[1].from_status == "applied"
            && ts[1].to_status == "pending_verification"
            && ts[1].actor == "k2",
        "transitions must be stored in order with their change: {ts:?}"
    );

    // created → all, created_only, changes (3); status_changed → all, changes (2).
    // Eight claimers at once: each delivery is handed out exactly once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_deliveries(100, 1_000, 2).await
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(
            t.await
                .map_err(|x| format!("claim task: {x}"))?
                .map_err(e("claim"))?,
        );
    }
    let mut keys: Vec<(Uuid, Uuid)> = claimed
        .iter()
        .map(|c| (c.event_id, c.endpoint_id))
        .collect();
    keys.sort();
    keys.dedup();
    ensure!(
        claimed.len() == 5 && keys.len() == 5,
        "5 deliveries must be claimed exactly once each, got {} ({} distinct)",
        claimed.len(),
        keys.len()
    );
    ensure!(
        claimed
            .iter()
            .all(|c| c.attempts == 1 && c.secret == vec![7; 40] && c.endpoint_id != disabled.id),
        "claims carry attempt 1 and the endpoint's secret, never a disabled endpoint"
    );
    ensure!(
        !claimed
            .iter()
            .any(|c| c.endpoint_id == created_only.id && c.event_type == "account.status_changed"),
        "an endpoint gets only the event types it subscribed to"
    );
    // While leased, nothing more is handed out; after the lease, unfinished ones come back.
    let none = s
        .claim_deliveries(500, 1_500, 10)
        .await
        .map_err(e("claim leased"))?;
    ensure!(
        none.is_empty(),
        "leased deliveries must not be claimed again: {none:?}"
    );
    for c in &claimed {
        let delivered = c.endpoint_id != all.id;
        s.finish_delivery(
            c.event_id,
            c.endpoint_id,
            DeliveryOutcome {
                state: if delivered { "delivered" } else { "pending" }.into(),
                status: Some(if delivered { 200 } else { 503 }),
                error: (!delivered).then(|| "receiver answered 503".into()),
                at: 200,
                next_attempt_at: if delivered { 200 } else { 5_000 },
            },
        )
        .await
        .map_err(e("finish"))?;
    }
    let early = s
        .claim_deliveries(4_999, 6_000, 10)
        .await
        .map_err(e("claim early"))?;
    ensure!(
        early.is_empty(),
        "a retry must wait for its next attempt time"
    );
    let retry = s
        .claim_deliveries(5_000, 6_000, 10)
        .await
        .map_err(e("claim retry"))?;
    ensure!(
        retry.len() == 2
            && retry
                .iter()
                .all(|c| c.endpoint_id == all.id && c.attempts == 2),
        "the two failed deliveries come back as attempt 2: {retry:?}"
    );
    let log = s.list_deliveries(all.id, 10).await.map_err(e("log"))?;
    ensure!(
        log.len() == 2
            && log
                .iter()
                .all(|d| d.state == "pending" && d.last_status == Some(503) && d.attempts == 2),
        "the delivery log shows attempts and the last outcome: {log:?}"
    );
    let log = s
        .list_deliveries(changes.id, 10)
        .await
        .map_err(e("log 2"))?;
    ensure!(
        log.len() == 2
            && log
                .iter()
                .all(|d| d.state == "delivered" && d.delivered_at == Some(200)),
        "delivered entries carry their time: {log:?}"
    );
    Ok(())
}

async fn concurrent_updates(s: Arc<dyn Store>) -> Check {
    let id = Uuid::now_v7();
    s.insert_customer(write(customer_row(id, 1, "individual", "DE", 1), vec![]))
        .await
        .map_err(e("insert"))?;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut row = customer_row(id, 2, "individual", "DE", 1);
            row.document = format!("writer-{n}").into_bytes();
            s.update_customer(write(row, vec![]), 1).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.map_err(e("join"))? {
            Ok(()) => ok += 1,
            Err(StoreError::VersionConflict { current: 2 }) => conflicts += 1,
            Err(other) => return Err(format!("unexpected error: {other:?}")),
        }
    }
    ensure!(
        ok == 1 && conflicts == 7,
        "exactly one of 8 concurrent updates must win (won {ok}, conflicts {conflicts})"
    );
    Ok(())
}

async fn reseal(s: Arc<dyn Store>) -> Check {
    let before = s
        .customers_with_stale_key(99, 1000)
        .await
        .map_err(e("stale"))?
        .len();
    ensure!(before > 0, "all customers are under key 1, not 99");
    let id = Uuid::now_v7();
    s.insert_customer(write(customer_row(id, 1, "individual", "DE", 99), vec![]))
        .await
        .map_err(e("insert"))?;
    let stale = s
        .customers_with_stale_key(99, 1000)
        .await
        .map_err(e("stale"))?;
    ensure!(
        stale.len() == before && stale.iter().all(|r| r.key_id != 99),
        "stale listing must skip rows already under the active key"
    );
    let target = &stale[0];
    ensure!(
        s.reseal_customer(
            target.id,
            target.version,
            b"resealed".to_vec(),
            99,
            Some(sealed_digest("resealed"))
        )
        .await
        .map_err(e("reseal"))?,
        "reseal at the current version must succeed"
    );
    ensure!(
        !s.reseal_customer(target.id, target.version + 5, b"x".to_vec(), 99, None)
            .await
            .map_err(e("reseal stale"))?,
        "reseal at a stale version must report false"
    );
    let got = s
        .get_customer(target.id)
        .await
        .map_err(e("get"))?
        .ok_or("resealed customer vanished")?;
    ensure!(
        got.key_id == 99
            && got.document == b"resealed"
            && got.digest == Some(sealed_digest("resealed"))
            && got.version == target.version,
        "reseal must change document, digest and key id but not version"
    );
    Ok(())
}

async fn audit_chain(s: Arc<dyn Store>) -> Check {
    s.append_audit(vec![
        draft("customer.read", Some("r1".into())),
        draft("customer.read", Some("r2".into())),
    ])
    .await
    .map_err(e("append"))?;
    let (head_seq, head_hash) = s.audit_head().await.map_err(e("head"))?;
    ensure!(
        head_seq > 10,
        "every earlier write must have appended an entry (head {head_seq})"
    );
    let mut verifier = cip_vault::ChainVerifier::new();
    let mut from = 1;
    loop {
        let entries = s.audit_range(from, 7).await.map_err(e("range"))?;
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            verifier
                .push(
                    entry.seq as u64,
                    &canonical_audit_body(&entry.draft),
                    &entry.hash,
                    &entry.prev_hash,
                )
                .map_err(|b| format!("chain broken: {b}"))?;
        }
        from = entries.last().map(|x| x.seq + 1).unwrap_or(from);
    }
    ensure!(
        verifier.head() == (head_seq as u64, head_hash),
        "verifier head must equal store head"
    );
    let r1 = s
        .list_audit(
            &AuditFilter {
                record_id: Some("r1".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .map_err(e("list"))?;
    ensure!(
        r1.len() == 1 && r1[0].draft.action == "customer.read",
        "record filter must find the one read"
    );
    let after = s
        .list_audit(
            &AuditFilter {
                after_seq: Some(head_seq - 1),
                ..Default::default()
            },
            10,
        )
        .await
        .map_err(e("list after"))?;
    ensure!(
        after.len() == 1 && after[0].seq == head_seq,
        "after_seq cursor must return only later entries"
    );
    let cp = CheckpointRow {
        seq: head_seq,
        head_hash,
        at: 5,
        signature: vec![1; 64],
        public_key: [2; 32],
    };
    s.insert_checkpoint(cp.clone())
        .await
        .map_err(e("checkpoint"))?;
    ensure!(
        s.list_checkpoints().await.map_err(e("list cp"))? == vec![cp],
        "checkpoint must read back"
    );
    Ok(())
}

fn list_write(
    list: &str,
    version: i64,
    expected: Option<i64>,
    entries: Vec<u8>,
) -> ListVersionWrite {
    ListVersionWrite {
        row: ListVersionRow {
            meta: ListVersionMeta {
                list_id: list.into(),
                version,
                content_hash: format!("hash-{list}-{version}"),
                entry_count: version * 10,
                imported_at: 1_700_000_000_000_000 + version,
                source_format: "own_json".into(),
                added: version,
                changed: 1,
                removed: 0,
            },
            entries,
        },
        expected_active: expected,
        audit: draft("list.import", Some(list.into())),
    }
}

/// Versions are written and activated atomically; a stale importer is refused and leaves
/// nothing behind; every import carries its audit entry.
async fn list_versions(s: Arc<dyn Store>) -> Check {
    ensure!(
        s.list_lists().await.map_err(e("list_lists"))?.is_empty(),
        "no list at first"
    );
    ensure!(
        s.active_list_versions()
            .await
            .map_err(e("active"))?
            .is_empty(),
        "no active version at first"
    );
    let head = s.audit_head().await.map_err(e("head"))?.0;
    s.insert_list_version(list_write("sdn", 1, None, b"[1]".to_vec()))
        .await
        .map_err(e("insert v1"))?;
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "an import appends one audit entry"
    );
    // A second importer that also saw "no list yet" loses and writes nothing.
    let stale = s
        .insert_list_version(list_write("sdn", 1, None, b"[9]".to_vec()))
        .await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 1 })),
        "a stale import must be a version conflict, got {stale:?}"
    );
    // A version number that does not follow the expected one is refused too.
    let skip = s
        .insert_list_version(list_write("sdn", 5, Some(1), b"[5]".to_vec()))
        .await;
    ensure!(
        matches!(skip, Err(StoreError::VersionConflict { current: 1 })),
        "a version must follow the active one, got {skip:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "refused imports append no audit entry"
    );
    // Large entry blobs round-trip byte for byte.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    s.insert_list_version(list_write("sdn", 2, Some(1), big.clone()))
        .await
        .map_err(e("insert v2"))?;
    s.insert_list_version(list_write("own", 1, None, b"[]".to_vec()))
        .await
        .map_err(e("insert other list"))?;
    let lists = s.list_lists().await.map_err(e("list_lists"))?;
    ensure!(
        lists
            .iter()
            .map(|m| (m.list_id.as_str(), m.version))
            .collect::<Vec<_>>()
            == vec![("own", 1), ("sdn", 2)],
        "list_lists shows each list's active version, by id: {lists:?}"
    );
    ensure!(
        lists[1] == list_write("sdn", 2, None, vec![]).row.meta,
        "metadata round-trips: {:?}",
        lists[1]
    );
    let versions = s.list_versions("sdn").await.map_err(e("versions"))?;
    ensure!(
        versions.iter().map(|m| m.version).collect::<Vec<_>>() == vec![1, 2],
        "every version is kept, oldest first: {versions:?}"
    );
    let v1 = s
        .get_list_version("sdn", 1)
        .await
        .map_err(e("get v1"))?
        .ok_or("v1 missing")?;
    ensure!(v1.entries == b"[1]", "old versions keep their entries");
    ensure!(
        s.get_list_version("sdn", 3)
            .await
            .map_err(e("get v3"))?
            .is_none(),
        "an unknown version is None"
    );
    let active = s.active_list_versions().await.map_err(e("active"))?;
    ensure!(active.len() == 2, "one active version per list");
    let sdn = active
        .iter()
        .find(|r| r.meta.list_id == "sdn")
        .ok_or("sdn not active")?;
    ensure!(
        sdn.meta.version == 2 && sdn.entries == big,
        "the active version carries its entries"
    );
    Ok(())
}

fn review(customer_id: Uuid, entry: &str, entry_hash: &str, subject_hash: u8) -> ReviewRow {
    ReviewRow {
        id: Uuid::now_v7(),
        customer_id,
        subject: "customer".into(),
        list_id: "sdn".into(),
        entry_id: entry.into(),
        list_version: 1,
        entry_hash: entry_hash.into(),
        subject_hash: [subject_hash; 32],
        score_bp: 9_100,
        status: "open".into(),
        details: b"sealed".to_vec(),
        key_id: 1,
        created_at: 1_700_000_000_000_000,
        decided_at: None,
        decided_by: None,
        reason: None,
    }
}

fn decision(id: Uuid, status: &str) -> ReviewDecision {
    ReviewDecision {
        id,
        status: status.into(),
        reason: b"sealed reason".to_vec(),
        decided_by: "k1".into(),
        decided_at: 1_700_000_000_000_001,
        audit: draft("review.decide", Some(id.to_string())),
        actions: Vec::new(),
    }
}

/// One open item per subject and entry; a dismissal holds for the same subject data and
/// entry content only; decisions are final; removed entries close their open items.
async fn reviews(s: Arc<dyn Store>) -> Check {
    let c = Uuid::now_v7();
    let first = review(c, "E1", "h1", 1);
    let head = s.audit_head().await.map_err(e("head"))?.0;
    ensure!(
        s.open_review(first.clone(), draft("review.open", None))
            .await
            .map_err(e("open"))?,
        "a new hit opens an item"
    );
    ensure!(
        !s.open_review(review(c, "E1", "h1", 1), draft("review.open", None))
            .await
            .map_err(e("open again"))?,
        "an open item is not opened twice"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "only the opening is audited"
    );
    let got = s
        .get_review(first.id)
        .await
        .map_err(e("get"))?
        .ok_or("review missing")?;
    ensure!(got == first, "a review round-trips: {got:?}");
    s.decide_review(decision(first.id, "dismissed"))
        .await
        .map_err(e("dismiss"))?;
    let again = s.decide_review(decision(first.id, "confirmed")).await;
    ensure!(
        matches!(again, Err(StoreError::Duplicate { .. })),
        "a decided item cannot be decided again: {again:?}"
    );
    let missing = s.decide_review(decision(Uuid::now_v7(), "confirmed")).await;
    ensure!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    ensure!(
        !s.open_review(review(c, "E1", "h1", 1), draft("review.open", None))
            .await
            .map_err(e("reopen"))?,
        "a dismissal holds for the same subject data and entry content"
    );
    ensure!(
        s.open_review(review(c, "E1", "h2", 1), draft("review.open", None))
            .await
            .map_err(e("entry changed"))?,
        "a changed entry reopens"
    );
    let other = review(c, "E2", "h1", 1);
    s.open_review(other.clone(), draft("review.open", None))
        .await
        .map_err(e("open E2"))?;
    s.decide_review(decision(other.id, "dismissed"))
        .await
        .map_err(e("dismiss E2"))?;
    ensure!(
        s.open_review(review(c, "E2", "h1", 2), draft("review.open", None))
            .await
            .map_err(e("subject changed"))?,
        "changed subject data reopens"
    );
    let page = PageRequest {
        after: None,
        limit: 50,
    };
    let open = s
        .list_reviews(
            &ReviewFilter {
                status: Some("open".into()),
                customer_id: Some(c),
            },
            &page,
        )
        .await
        .map_err(e("list"))?;
    ensure!(open.len() == 2, "two open items: {open:?}");
    let closed = s
        .close_reviews_for_entries(
            "sdn",
            vec!["E1".into(), "E9".into()],
            5,
            draft("review.close", None),
        )
        .await
        .map_err(e("close"))?;
    ensure!(closed == 1, "one open item of E1 is closed, got {closed}");
    let all = s
        .list_reviews(
            &ReviewFilter {
                status: None,
                customer_id: Some(c),
            },
            &page,
        )
        .await
        .map_err(e("list all"))?;
    let statuses: Vec<&str> = all.iter().map(|r| r.status.as_str()).collect();
    ensure!(
        statuses == vec!["dismissed", "entry_removed", "dismissed", "open"],
        "statuses in id order: {statuses:?}"
    );

    // A confirmation and the policy actions it carries commit together, or neither does.
    let c2 = Uuid::now_v7();
    s.insert_customer(write(customer_row(c2, 1, "individual", "KP", 1), vec![]))
        .await
        .map_err(e("customer"))?;
    let account = account_row(c2, None);
    s.insert_account(account_write(account.clone()))
        .await
        .map_err(e("account"))?;
    let hit = review(c2, "E7", "h1", 3);
    s.open_review(hit.clone(), draft("review.open", None))
        .await
        .map_err(e("open E7"))?;
    let head = s.audit_head().await.map_err(e("head"))?.0;
    // The second action names an account that does not exist: its insert fails.
    let ghost = account_row(c2, None);
    let mut failing = decision(hit.id, "confirmed");
    failing.actions = vec![
        action_write(None, Some(hit.id), &account, 20),
        action_write(None, Some(hit.id), &ghost, 21),
    ];
    let failed = s.decide_review(failing).await;
    ensure!(
        failed.is_err(),
        "an action that cannot be stored fails the decision"
    );
    let still = s
        .get_review(hit.id)
        .await
        .map_err(e("get E7"))?
        .ok_or("E7 missing")?;
    ensure!(
        still.status == "open" && still.decided_at.is_none(),
        "a failed confirmation leaves the item open: {still:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head,
        "a failed confirmation appends no audit entry"
    );
    let recorded = |s: Arc<dyn Store>, account: Uuid| async move {
        s.list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(account),
        })
        .await
    };
    ensure!(
        recorded(s.clone(), account.id)
            .await
            .map_err(e("actions"))?
            .is_empty(),
        "a failed confirmation records no action"
    );
    let mut confirming = decision(hit.id, "confirmed");
    confirming.actions = vec![
        action_write(None, Some(hit.id), &account, 22),
        action_write(None, Some(hit.id), &account, 23),
    ];
    s.decide_review(confirming).await.map_err(e("confirm"))?;
    let done = s
        .get_review(hit.id)
        .await
        .map_err(e("get E7"))?
        .ok_or("E7 missing")?;
    ensure!(done.status == "confirmed", "confirmed: {done:?}");
    let actions = recorded(s.clone(), account.id)
        .await
        .map_err(e("actions"))?;
    ensure!(
        actions.len() == 1 && actions[0].at == 22,
        "the confirmation's action is recorded once: {actions:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 2,
        "the decision and its one action are audited"
    );
    Ok(())
}

fn measure_row(country: &str, effective_at: i64, expires_at: i64) -> MeasureRow {
    MeasureRow {
        id: Uuid::now_v7(),
        version: 1,
        target_kind: "jurisdiction".into(),
        country: Some(country.into()),
        list_id: None,
        effective_at,
        expires_at,
        revoked_at: None,
        created_at: 1,
        updated_at: 1,
        swept_at: None,
        document: format!("{{\"country\":\"{country}\"}}").into_bytes(),
    }
}

fn action_write(
    measure_id: Option<Uuid>,
    review_id: Option<Uuid>,
    account: &AccountRow,
    at: i64,
) -> MeasureActionWrite {
    MeasureActionWrite {
        row: MeasureActionRow {
            id: Uuid::now_v7(),
            measure_id,
            review_id,
            account_id: account.id,
            customer_id: account.customer_id,
            action: "close".into(),
            deadline: Some(at + 100),
            evidence: b"[{\"kind\":\"address_country\",\"country\":\"KP\"}]".to_vec(),
            cause: "measure_in_effect".into(),
            actor: "system:special-measures".into(),
            at,
            untied_at: None,
        },
        event: Some(event_draft("account.special_measure", at)),
        audit: draft("special_measure.apply", Some(account.id.to_string())),
    }
}

async fn special_measures(s: Arc<dyn Store>) -> Check {
    // Far-future times keep this check apart from measures other checks leave behind.
    let base = 4_000_000_000_000_000i64;
    let current = measure_row("KP", base, base + 1000);
    let future = measure_row("IR", base + 500, base + 1000);
    let expired = measure_row("SY", base - 1000, base - 1);
    let head = s.audit_head().await.map_err(e("head"))?.0;
    for m in [&current, &future, &expired] {
        s.insert_measure(
            m.clone(),
            draft("special_measure.create", Some(m.id.to_string())),
        )
        .await
        .map_err(e("insert measure"))?;
    }
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 3,
        "each measure is created with its audit entry"
    );
    let dup = s
        .insert_measure(current.clone(), draft("special_measure.create", None))
        .await;
    ensure!(
        matches!(dup, Err(StoreError::Duplicate { .. })),
        "a measure id is unique: {dup:?}"
    );
    let got = s
        .get_measure(current.id)
        .await
        .map_err(e("get"))?
        .ok_or("measure missing")?;
    ensure!(got == current, "a measure round-trips: {got:?}");
    let in_force: Vec<Uuid> = s
        .measures_in_force(base + 10)
        .await
        .map_err(e("in force"))?
        .into_iter()
        .map(|m| m.id)
        .collect();
    ensure!(
        in_force.contains(&current.id)
            && !in_force.contains(&future.id)
            && !in_force.contains(&expired.id),
        "only the effective, unexpired measure is in force: {in_force:?}"
    );
    let listed = s
        .list_measures(&PageRequest {
            after: None,
            limit: 500,
        })
        .await
        .map_err(e("list"))?;
    ensure!(
        [current.id, future.id, expired.id]
            .iter()
            .all(|id| listed.iter().any(|m| m.id == *id)),
        "every measure is listed"
    );

    // An extension replaces the row at the next version; a stale version is refused.
    let mut extended = current.clone();
    extended.version = 2;
    extended.expires_at = base + 2000;
    extended.updated_at = 2;
    s.update_measure(extended.clone(), 1, draft("special_measure.extend", None))
        .await
        .map_err(e("extend"))?;
    let stale = s
        .update_measure(extended.clone(), 1, draft("special_measure.extend", None))
        .await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 2 })),
        "a stale version is refused: {stale:?}"
    );
    let mut ghost = current.clone();
    ghost.id = Uuid::now_v7();
    let missing = s
        .update_measure(ghost, 1, draft("special_measure.extend", None))
        .await;
    ensure!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    ensure!(
        s.measures_in_force(base + 1500)
            .await
            .map_err(e("in force"))?
            .iter()
            .any(|m| m.id == current.id),
        "the extension keeps the measure in force longer"
    );

    // Sweeps: only measures in force and not swept are claimed, and once per lease.
    let claimed = s
        .claim_measure_sweeps(base + 10, base + 20, 100)
        .await
        .map_err(e("claim"))?;
    let ids: Vec<Uuid> = claimed.iter().map(|m| m.id).collect();
    ensure!(
        ids == vec![current.id],
        "only the measure in force is claimed: {ids:?}"
    );
    ensure!(
        s.claim_measure_sweeps(base + 11, base + 21, 100)
            .await
            .map_err(e("claim again"))?
            .is_empty(),
        "a leased measure is not claimed again"
    );
    ensure!(
        s.claim_measure_sweeps(base + 20, base + 30, 100)
            .await
            .map_err(e("claim after lease"))?
            .len()
            == 1,
        "a lease that ran out frees the measure again"
    );
    s.finish_measure_sweep(current.id, base + 21)
        .await
        .map_err(e("finish"))?;
    ensure!(
        s.claim_measure_sweeps(base + 40, base + 50, 100)
            .await
            .map_err(e("claim swept"))?
            .is_empty(),
        "a swept measure is not claimed again"
    );

    // Actions: once per (measure, account) and per (review, account), with event and entry.
    let cid = Uuid::now_v7();
    s.insert_customer(write(customer_row(cid, 1, "individual", "KP", 1), vec![]))
        .await
        .map_err(e("customer"))?;
    let account = account_row(cid, None);
    s.insert_account(account_write(account.clone()))
        .await
        .map_err(e("account"))?;
    let review_id = Uuid::now_v7();
    let head = s.audit_head().await.map_err(e("head"))?.0;
    let n = s
        .record_measure_actions(vec![
            action_write(Some(current.id), None, &account, 5),
            action_write(Some(current.id), None, &account, 6),
            action_write(None, Some(review_id), &account, 7),
            action_write(None, Some(review_id), &account, 8),
        ])
        .await
        .map_err(e("record"))?;
    ensure!(n == 2, "one action per measure and per review, got {n}");
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 2,
        "only recorded actions are audited"
    );
    let again = s
        .record_measure_actions(vec![action_write(Some(current.id), None, &account, 9)])
        .await
        .map_err(e("record again"))?;
    ensure!(again == 0, "a recorded action is not recorded twice");
    let by_measure = s
        .list_measure_actions(&MeasureActionFilter {
            measure_id: Some(current.id),
            account_id: None,
        })
        .await
        .map_err(e("list by measure"))?;
    ensure!(
        by_measure.len() == 1 && by_measure[0].at == 5 && by_measure[0].deadline == Some(105),
        "the first action stands: {by_measure:?}"
    );
    let by_account = s
        .list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(account.id),
        })
        .await
        .map_err(e("list by account"))?;
    ensure!(
        by_account.len() == 2 && by_account[1].review_id == Some(review_id),
        "both actions of the account: {by_account:?}"
    );

    // Opening under a measure: the account and its action commit together, or neither.
    let opened = account_row(cid, Some("sm-open"));
    s.insert_account_with_actions(
        account_write(opened.clone()),
        vec![action_write(Some(future.id), None, &opened, 10)],
    )
    .await
    .map_err(e("open with actions"))?;
    ensure!(
        s.list_measure_actions(&MeasureActionFilter {
            measure_id: Some(future.id),
            account_id: Some(opened.id),
        })
        .await
        .map_err(e("list opened"))?
        .len()
            == 1,
        "the opening's action is recorded"
    );
    let mut orphan = account_row(Uuid::now_v7(), None);
    orphan.external_id = None;
    let refused = s
        .insert_account_with_actions(
            account_write(orphan.clone()),
            vec![action_write(Some(future.id), None, &orphan, 11)],
        )
        .await;
    ensure!(
        matches!(refused, Err(StoreError::NotFound)),
        "an account of an unknown customer is refused: {refused:?}"
    );
    ensure!(
        s.list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(orphan.id),
        })
        .await
        .map_err(e("list orphan"))?
        .is_empty(),
        "a refused opening records no action"
    );

    // A change of the customer's record: the record, the actions it newly ties and the tie
    // changes of recorded actions commit together, or nothing does.
    let of_account = |s: Arc<dyn Store>, account: Uuid| async move {
        s.list_measure_actions(&MeasureActionFilter {
            measure_id: None,
            account_id: Some(account),
        })
        .await
    };
    let tied = by_measure[0].clone();
    let head = s.audit_head().await.map_err(e("head"))?.0;
    s.update_customer_with_actions(
        write(customer_row(cid, 2, "individual", "KP", 1), vec![]),
        1,
        vec![action_write(Some(expired.id), None, &account, 30)],
        vec![TieChange {
            action_id: tied.id,
            untied_at: Some(31),
            audit: draft("special_measure.untied", Some(account.id.to_string())),
        }],
    )
    .await
    .map_err(e("update with actions"))?;
    let now_on = of_account(s.clone(), account.id)
        .await
        .map_err(e("actions"))?;
    ensure!(
        now_on.len() == 3
            && now_on
                .iter()
                .any(|a| a.id == tied.id && a.untied_at == Some(31))
            && now_on
                .iter()
                .any(|a| a.measure_id == Some(expired.id) && a.untied_at.is_none()),
        "the new action is recorded and the old one marked untied: {now_on:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 3,
        "the update, the action and the tie change are audited"
    );
    let stale = s
        .update_customer_with_actions(
            write(customer_row(cid, 2, "individual", "KP", 1), vec![]),
            1,
            vec![action_write(Some(future.id), None, &account, 40)],
            vec![TieChange {
                action_id: tied.id,
                untied_at: None,
                audit: draft("special_measure.retied", Some(account.id.to_string())),
            }],
        )
        .await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 2 })),
        "a stale record version is refused: {stale:?}"
    );
    ensure!(
        of_account(s.clone(), account.id)
            .await
            .map_err(e("actions"))?
            == now_on,
        "a refused record change records no action and changes no tie"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 3,
        "a refused record change appends nothing"
    );

    // Refused applications: recorded with the refusal's audit entry, listed per measure.
    let refusal = |measure_id: Uuid, at: i64| RefusalRow {
        id: Uuid::now_v7(),
        measure_id,
        customer_id: cid,
        account_type: "standard".into(),
        product: "compute".into(),
        reason: "prohibited".into(),
        evidence: b"[]".to_vec(),
        actor: "k1".into(),
        at,
    };
    let head = s.audit_head().await.map_err(e("head"))?.0;
    let first = refusal(current.id, 50);
    s.record_refusals(
        vec![first.clone(), refusal(future.id, 50)],
        draft("account.refused", None),
    )
    .await
    .map_err(e("refusals"))?;
    ensure!(
        s.list_refusals(current.id)
            .await
            .map_err(e("list refusals"))?
            == vec![first],
        "a measure lists its refusals"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "one audit entry for the refusal"
    );
    let unknown = s
        .record_refusals(
            vec![refusal(Uuid::now_v7(), 51)],
            draft("account.refused", None),
        )
        .await;
    ensure!(unknown.is_err(), "a refusal must name a stored measure");
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "a failed refusal record appends nothing"
    );
    Ok(())
}

/// Eight claimers at once over measures due: each measure goes to exactly one of them.
async fn concurrent_measure_claims(s: Arc<dyn Store>) -> Check {
    let base = 5_000_000_000_000_000i64;
    let mut ids = Vec::new();
    for _ in 0..12 {
        let m = measure_row("CU", base, base + 1000);
        ids.push(m.id);
        s.insert_measure(m, draft("special_measure.create", None))
            .await
            .map_err(e("insert"))?;
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_measure_sweeps(base + 1, base + 100, 3).await
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        let claimed = t.await.map_err(e("join"))?.map_err(e("claim"))?;
        got.extend(claimed.into_iter().map(|m| m.id));
    }
    got.sort();
    let before = got.len();
    got.dedup();
    ensure!(before == got.len(), "a measure was claimed twice");
    ensure!(
        ids.iter().all(|id| got.contains(id)),
        "every due measure was claimed: {} of {}",
        got.len(),
        ids.len()
    );
    Ok(())
}

fn evidence(cid: Uuid, method: &str, result: &str, at: i64, source: Option<&str>) -> EvidenceRow {
    EvidenceRow {
        id: Uuid::now_v7(),
        customer_id: cid,
        beneficial_owner_id: None,
        method: method.into(),
        result: result.into(),
        at,
        actor: "k1".into(),
        source_key: source.map(str::to_string),
        details: format!("sealed-{method}-{at}").into_bytes(),
    }
}

fn otp(cid: Uuid, channel: &str, created_at: i64) -> OtpRow {
    OtpRow {
        id: Uuid::now_v7(),
        customer_id: cid,
        beneficial_owner_id: None,
        channel: channel.into(),
        destination_hash: [3; 32],
        code_hash: [4; 32],
        created_at,
        expires_at: created_at + 600_000_000,
        attempts: 0,
        max_attempts: 5,
        status: "pending".into(),
        version: 1,
    }
}

async fn verification(s: Arc<dyn Store>) -> Check {
    let cid = Uuid::now_v7();
    s.insert_customer(write(customer_row(cid, 1, "individual", "DE", 1), vec![]))
        .await
        .map_err(e("customer"))?;

    // Evidence, with a file and the completion of a vendor request.
    let req = VerificationRequestRow {
        id: Uuid::now_v7(),
        customer_id: cid,
        beneficial_owner_id: None,
        vendor: "acme".into(),
        status: "open".into(),
        secret: b"sealed-secret".to_vec(),
        created_at: 5,
        completed_at: None,
        actor: "k1".into(),
    };
    s.insert_verification_request(req.clone(), draft("verification_request.create", None))
        .await
        .map_err(e("request"))?;
    let dup = s
        .insert_verification_request(req.clone(), draft("verification_request.create", None))
        .await;
    ensure!(
        matches!(dup, Err(StoreError::Duplicate { .. })),
        "a request id is stored once: {dup:?}"
    );
    let doc = evidence(cid, "document", "fail", 10, None);
    let file = EvidenceFile {
        sha256: [9; 32],
        content_type: "image/png".into(),
        size: 4,
        content: b"seal".to_vec(),
    };
    let stored = s
        .insert_evidence(EvidenceWrite {
            row: doc.clone(),
            file: Some(file.clone()),
            completes_request: None,
            audit: draft("evidence.create", None),
        })
        .await
        .map_err(e("evidence"))?;
    ensure!(stored, "new evidence must be stored");
    let vendor = evidence(cid, "vendor", "pass", 20, Some("vendor:acme:evt-1"));
    let stored = s
        .insert_evidence(EvidenceWrite {
            row: vendor.clone(),
            file: None,
            completes_request: Some(req.id),
            audit: draft("evidence.create", None),
        })
        .await
        .map_err(e("vendor evidence"))?;
    ensure!(stored, "vendor evidence must be stored");
    let head = s.audit_head().await.map_err(e("head"))?;
    let again = s
        .insert_evidence(EvidenceWrite {
            row: evidence(cid, "vendor", "fail", 30, Some("vendor:acme:evt-1")),
            file: None,
            completes_request: None,
            audit: draft("evidence.create", None),
        })
        .await
        .map_err(e("replayed evidence"))?;
    ensure!(!again, "a replayed source key must not be stored again");
    ensure!(
        s.audit_head().await.map_err(e("head"))? == head,
        "a replay writes no audit entry"
    );
    let listed = s.list_evidence(cid).await.map_err(e("list evidence"))?;
    ensure!(
        listed == vec![doc.clone(), vendor.clone()],
        "evidence lists oldest first, as stored: {listed:?}"
    );
    ensure!(
        s.get_evidence_file(doc.id).await.map_err(e("file"))? == Some(file),
        "the file must come back as stored"
    );
    ensure!(
        s.get_evidence_file(vendor.id)
            .await
            .map_err(e("no file"))?
            .is_none(),
        "evidence without a file has none"
    );
    let done = s
        .get_verification_request(req.id)
        .await
        .map_err(e("get request"))?
        .ok_or("request missing")?;
    ensure!(
        done.status == "completed" && done.completed_at == Some(20),
        "the result completes its request: {done:?}"
    );

    // One-time codes: a new challenge supersedes the pending one; updates are versioned.
    let first = otp(cid, "email", 100);
    s.insert_otp(first.clone(), draft("otp.create", None))
        .await
        .map_err(e("otp"))?;
    let phone = otp(cid, "phone", 150);
    s.insert_otp(phone.clone(), draft("otp.create", None))
        .await
        .map_err(e("otp phone"))?;
    let second = otp(cid, "email", 200);
    s.insert_otp(second.clone(), draft("otp.create", None))
        .await
        .map_err(e("otp 2"))?;
    let f = s
        .get_otp(first.id)
        .await
        .map_err(e("get otp"))?
        .ok_or("otp missing")?;
    ensure!(
        f.status == "superseded" && f.version == 2,
        "the earlier pending challenge is superseded: {f:?}"
    );
    let p = s.get_otp(phone.id).await.map_err(e("get otp"))?;
    ensure!(
        p == Some(phone.clone()),
        "another channel is untouched: {p:?}"
    );
    let recent = s
        .recent_otps(cid, None, "email", 150)
        .await
        .map_err(e("recent"))?;
    ensure!(
        recent == vec![second.clone()],
        "recent challenges since a time, newest first: {recent:?}"
    );
    let mut tried = second.clone();
    tried.attempts = 1;
    tried.version = 2;
    s.update_otp(OtpUpdate {
        row: tried.clone(),
        expected_version: 1,
        evidence: None,
        audit: draft("otp.attempt", None),
    })
    .await
    .map_err(e("attempt"))?;
    let stale = s
        .update_otp(OtpUpdate {
            row: tried.clone(),
            expected_version: 1,
            evidence: Some(evidence(cid, "otp_email", "pass", 300, None)),
            audit: draft("otp.attempt", None),
        })
        .await;
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { current: 2 })),
        "a stale attempt is a version conflict: {stale:?}"
    );
    let mut ok = tried.clone();
    ok.status = "verified".into();
    ok.version = 3;
    let pass = evidence(cid, "otp_email", "pass", 300, None);
    s.update_otp(OtpUpdate {
        row: ok.clone(),
        expected_version: 2,
        evidence: Some(pass.clone()),
        audit: draft("otp.verify", None),
    })
    .await
    .map_err(e("verify"))?;
    ensure!(
        s.get_otp(ok.id).await.map_err(e("get"))? == Some(ok.clone()),
        "the verified challenge is stored"
    );
    let listed = s.list_evidence(cid).await.map_err(e("list evidence"))?;
    ensure!(
        listed.len() == 3 && listed[2] == pass,
        "a stale attempt wrote no evidence; the pass did: {listed:?}"
    );
    let missing = s
        .update_otp(OtpUpdate {
            row: otp(cid, "email", 1),
            expected_version: 1,
            evidence: None,
            audit: draft("otp.attempt", None),
        })
        .await;
    ensure!(
        matches!(missing, Err(StoreError::NotFound)),
        "an unknown challenge is NotFound: {missing:?}"
    );

    // Unverified cases: one per transition to failed.
    let a = account_row(cid, None);
    s.insert_account(account_write(a.clone()))
        .await
        .map_err(e("account"))?;
    let mut failed = a.clone();
    failed.version = 2;
    failed.status = "failed".into();
    let mut w = account_write(failed.clone());
    w.transition = Some(TransitionRow {
        account_id: a.id,
        version: 2,
        from_status: a.status.clone(),
        to_status: "failed".into(),
        reason: "verification not completed by the policy deadline".into(),
        actor: "system:lifecycle".into(),
        at: 1_000,
    });
    s.update_account(w, 1).await.map_err(e("fail account"))?;
    let todo: Vec<UnverifiedTransition> = s
        .unverified_without_case(10_000)
        .await
        .map_err(e("unverified"))?
        .into_iter()
        .filter(|t| t.account_id == a.id)
        .collect();
    ensure!(
        todo.len() == 1 && todo[0].version == 2 && todo[0].customer_id == cid,
        "the transition to failed needs a case: {todo:?}"
    );
    let case = CaseRow {
        id: Uuid::now_v7(),
        account_id: a.id,
        customer_id: cid,
        transition_version: 2,
        reason: todo[0].reason.clone(),
        opened_at: 2_000,
        status: "open".into(),
        resolution: None,
        resolution_reason: None,
        resolved_by: None,
        resolved_at: None,
    };
    let n = s
        .open_cases(vec![(case.clone(), draft("case.open", None))])
        .await
        .map_err(e("open case"))?;
    let mut twin = case.clone();
    twin.id = Uuid::now_v7();
    let head = s.audit_head().await.map_err(e("head"))?;
    let n2 = s
        .open_cases(vec![(twin, draft("case.open", None))])
        .await
        .map_err(e("open twin"))?;
    ensure!(n == 1 && n2 == 0, "one case per transition: {n} then {n2}");
    ensure!(
        s.audit_head().await.map_err(e("head"))? == head,
        "a skipped case writes no audit entry"
    );
    let left = s
        .unverified_without_case(10_000)
        .await
        .map_err(e("unverified"))?;
    ensure!(
        !left.iter().any(|t| t.account_id == a.id),
        "a transition with a case is not listed again"
    );
    let page = PageRequest {
        after: None,
        limit: 100,
    };
    let open = s
        .list_cases(
            &CaseFilter {
                status: Some("open".into()),
                opened_from: Some(1_500),
                opened_to: Some(2_500),
            },
            &page,
        )
        .await
        .map_err(e("list cases"))?;
    ensure!(open == vec![case.clone()], "open cases in range: {open:?}");
    let outside = s
        .list_cases(
            &CaseFilter {
                status: None,
                opened_from: Some(2_001),
                opened_to: None,
            },
            &page,
        )
        .await
        .map_err(e("list cases"))?;
    ensure!(
        !outside.iter().any(|c| c.id == case.id),
        "the range filter excludes it"
    );
    let resolution = CaseResolution {
        id: case.id,
        resolution: "closed".into(),
        reason: b"sealed-reason".to_vec(),
        resolved_by: "k2".into(),
        resolved_at: 3_000,
        audit: draft("case.resolve", None),
    };
    s.resolve_case(resolution.clone())
        .await
        .map_err(e("resolve"))?;
    let again = s.resolve_case(resolution.clone()).await;
    ensure!(
        matches!(again, Err(StoreError::Duplicate { .. })),
        "a resolved case cannot be resolved again: {again:?}"
    );
    let mut unknown = resolution;
    unknown.id = Uuid::now_v7();
    let nf = s.resolve_case(unknown).await;
    ensure!(
        matches!(nf, Err(StoreError::NotFound)),
        "an unknown case is NotFound: {nf:?}"
    );
    let got = s
        .get_case(case.id)
        .await
        .map_err(e("get case"))?
        .ok_or("case missing")?;
    ensure!(
        got.status == "resolved"
            && got.resolution.as_deref() == Some("closed")
            && got.resolution_reason.as_deref() == Some(&b"sealed-reason"[..])
            && got.resolved_by.as_deref() == Some("k2")
            && got.resolved_at == Some(3_000),
        "the resolution is stored: {got:?}"
    );
    let resolved = s
        .list_cases(
            &CaseFilter {
                status: Some("open".into()),
                ..Default::default()
            },
            &page,
        )
        .await
        .map_err(e("list"))?;
    ensure!(
        !resolved.iter().any(|c| c.id == case.id),
        "a resolved case is not open"
    );
    Ok(())
}

/// The bulk pass: every customer once, in id order, with the part of its digest asked for —
/// or, for a record without one, its document; an update replaces the digest and one written
/// without a digest leaves none behind; evidence comes back for exactly the customers of an id
/// range.
async fn digests(s: Arc<dyn Store>) -> Result<(), String> {
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = Uuid::now_v7();
        let mut row = customer_row(id, 1, "individual", "FR", 1);
        if i == 3 {
            row.digest = None;
        }
        s.insert_customer(write(row, vec![]))
            .await
            .map_err(e("insert"))?;
        ids.push(id);
    }
    let mut updated = customer_row(ids[1], 2, "individual", "FR", 1);
    updated.digest = Some(sealed_digest("new"));
    s.update_customer(write(updated, vec![]), 1)
        .await
        .map_err(e("update"))?;
    // Written again without a digest: the old one must not survive beside version 2.
    let mut bare = customer_row(ids[5], 2, "individual", "FR", 1);
    bare.digest = None;
    s.update_customer(write(bare, vec![]), 1)
        .await
        .map_err(e("update without digest"))?;
    let got = s.get_customer(ids[1]).await.map_err(e("get"))?;
    ensure!(
        got.and_then(|r| r.digest) == Some(sealed_digest("new")),
        "a read returns both parts as written"
    );
    for part in [DigestPart::Policy, DigestPart::Screening] {
        let pick = |d: SealedDigest| match part {
            DigestPart::Policy => d.policy,
            DigestPart::Screening => d.screening,
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .scan_customer_digests(part, after, 2)
                .await
                .map_err(e("scan"))?;
            let Some(last) = page.last() else { break };
            ensure!(page.len() <= 2, "a page holds at most the limit");
            after = Some(last.id);
            seen.extend(page);
        }
        ensure!(
            seen.windows(2).all(|w| w[0].id < w[1].id),
            "the scan is in id order, each customer once"
        );
        let mine: Vec<_> = seen.iter().filter(|r| ids.contains(&r.id)).collect();
        ensure!(mine.len() == 6, "every customer is scanned: {}", mine.len());
        for r in &mine {
            let (expect_digest, version) = if r.id == ids[1] {
                (Some(pick(sealed_digest("new"))), 2)
            } else if r.id == ids[3] {
                (None, 1)
            } else if r.id == ids[5] {
                (None, 2)
            } else {
                (Some(pick(sealed_digest(&format!("{}-1", r.id)))), 1)
            };
            ensure!(
                r.digest == expect_digest,
                "{part:?} digest of {} as written",
                r.id
            );
            ensure!(
                r.document.is_some() == r.digest.is_none(),
                "the document comes only for a record without a digest"
            );
            ensure!(
                r.key_id == 1 && r.version == version,
                "key and version of {} as written",
                r.id
            );
        }
        ensure!(
            mine.iter()
                .find(|r| r.id == ids[3])
                .and_then(|r| r.document.clone())
                == Some(format!("sealed-{}-1", ids[3]).into_bytes()),
            "the fallback document is the stored one"
        );
    }
    for (i, id) in ids.iter().enumerate() {
        for n in 0..2 {
            s.insert_evidence(EvidenceWrite {
                row: evidence(*id, "otp_email", "pass", (i * 10 + n) as i64, None),
                file: None,
                completes_request: None,
                audit: draft("evidence.create", None),
            })
            .await
            .map_err(e("evidence"))?;
        }
    }
    let between = s
        .list_evidence_between(ids[1], ids[3])
        .await
        .map_err(e("evidence between"))?;
    ensure!(
        between.len() == 6
            && between
                .iter()
                .all(|r| r.customer_id >= ids[1] && r.customer_id <= ids[3]),
        "exactly the evidence of customers 1..=3: {between:?}"
    );
    ensure!(
        between
            .windows(2)
            .all(|w| (w[0].customer_id, w[0].at) <= (w[1].customer_id, w[1].at)),
        "in customer order, oldest first"
    );
    Ok(())
}

/// Eight requests for a code at once: the throttle is checked in the writing transaction,
/// so exactly one is stored and the others are told when to retry; the hourly limit holds.
async fn concurrent_otp_throttle(s: Arc<dyn Store>) -> Check {
    let cid = Uuid::now_v7();
    s.insert_customer(write(customer_row(cid, 1, "individual", "DE", 1), vec![]))
        .await
        .map_err(e("customer"))?;
    let throttle = OtpThrottle {
        min_interval_micros: 60_000_000,
        max_per_hour: 2,
    };
    let base = 1_800_000_000_000_000i64;
    let head = s.audit_head().await.map_err(e("head"))?.0;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_otp_throttled(
                otp(cid, "email", base + i),
                throttle,
                draft("otp.create", None),
            )
            .await
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.map_err(e("join"))?.map_err(e("insert"))? {
            OtpOutcome::Stored => stored += 1,
            OtpOutcome::Throttled {
                limit: OtpLimit::Interval,
                retry_at,
            } => ensure!(
                (base + 60_000_000..=base + 60_000_007).contains(&retry_at),
                "retry after the interval from the stored code: {retry_at}"
            ),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    ensure!(stored == 1, "exactly one code is stored, got {stored}");
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 1,
        "only the stored code is audited"
    );
    let later = |at: i64| otp(cid, "email", at);
    ensure!(
        s.insert_otp_throttled(
            later(base + 61_000_000),
            throttle,
            draft("otp.create", None)
        )
        .await
        .map_err(e("second"))?
            == OtpOutcome::Stored,
        "after the interval a second code is stored"
    );
    let third = s
        .insert_otp_throttled(
            later(base + 200_000_000),
            throttle,
            draft("otp.create", None),
        )
        .await
        .map_err(e("third"))?;
    ensure!(
        matches!(third, OtpOutcome::Throttled { limit: OtpLimit::PerHour, retry_at } if retry_at >= base + 3_600_000_000),
        "the hourly limit holds: {third:?}"
    );
    ensure!(
        s.recent_otps(cid, None, "email", base - 1)
            .await
            .map_err(e("recent"))?
            .len()
            == 2,
        "two codes in all"
    );
    Ok(())
}

fn determination(cid: Uuid, status: &str, digest: u8) -> DeterminationRow {
    DeterminationRow {
        customer_id: cid,
        seq: 0,
        at: 5,
        cause: "customer_created".into(),
        record_version: 1,
        account_id: None,
        previous_status: None,
        status: status.into(),
        summary: format!("{{\"status\":\"{status}\"}}").into_bytes(),
        digest: [digest; 32],
    }
}

/// Notices go with a customer or on their own (unknown customer: nothing written); a
/// determination is appended only when its digest changes, numbered per customer with the
/// previous status; accounts are found by last access after a cursor.
async fn notices_and_history(s: Arc<dyn Store>) -> Check {
    let cid = Uuid::now_v7();
    let notice = |version: &str, shown_at: i64| NoticeRow {
        id: Uuid::now_v7(),
        customer_id: cid,
        policy_version: version.into(),
        shown_at,
        recorded_at: 9,
        actor: "k1".into(),
    };
    let mut w = write(customer_row(cid, 1, "individual", "DE", 1), vec![]);
    w.extras = CustomerExtras {
        notices: vec![notice("v1", 100)],
        determination: Some(determination(cid, "foreign_person", 1)),
    };
    s.insert_customer(w)
        .await
        .map_err(e("insert with extras"))?;
    let head = s.audit_head().await.map_err(e("head"))?.0;
    let orphan = s
        .insert_notices(
            vec![NoticeRow {
                customer_id: Uuid::now_v7(),
                ..notice("v1", 1)
            }],
            draft("notice.record", None),
        )
        .await;
    ensure!(
        matches!(orphan, Err(StoreError::NotFound)),
        "notice of an unknown customer: {orphan:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head,
        "a refused notice wrote an audit entry"
    );
    s.insert_notices(vec![notice("v2", 50)], draft("notice.record", None))
        .await
        .map_err(e("notice"))?;
    let n = s.list_notices(cid).await.map_err(e("list notices"))?;
    let versions: Vec<&str> = n.iter().map(|r| r.policy_version.as_str()).collect();
    ensure!(
        versions == ["v2", "v1"],
        "notices in shown order: {versions:?}"
    );

    let same = s
        .record_determination(determination(cid, "foreign_person", 1), None)
        .await
        .map_err(e("same"))?;
    ensure!(same.is_none(), "an unchanged determination was appended");
    let next = s
        .record_determination(
            determination(cid, "us_person", 2),
            Some(draft("determination.record", None)),
        )
        .await
        .map_err(e("next"))?;
    ensure!(
        next == Some(2),
        "second determination is seq 2, got {next:?}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 2,
        "the notice and the determination each append one audit entry"
    );
    let mut update = write(customer_row(cid, 2, "individual", "DE", 1), vec![]);
    update.extras.determination = Some(determination(cid, "foreign_person", 3));
    s.update_customer(update, 1).await.map_err(e("update"))?;
    let h = s
        .list_determinations(cid, 0, 10)
        .await
        .map_err(e("history"))?;
    let got: Vec<(i64, Option<&str>, &str)> = h
        .iter()
        .map(|r| (r.seq, r.previous_status.as_deref(), r.status.as_str()))
        .collect();
    ensure!(
        got == [
            (1, None, "foreign_person"),
            (2, Some("foreign_person"), "us_person"),
            (3, Some("us_person"), "foreign_person")
        ],
        "history: {got:?}"
    );
    ensure!(h[1].digest == [2; 32], "digest kept");
    let page = s.list_determinations(cid, 1, 1).await.map_err(e("page"))?;
    ensure!(
        page.len() == 1 && page[0].seq == 2,
        "page after 1: {page:?}"
    );

    let far = 9_000_000_000_000_000;
    let (a, b) = (account_row(cid, None), account_row(cid, None));
    for r in [&a, &b] {
        s.insert_account(account_write(r.clone()))
            .await
            .map_err(e("account"))?;
    }
    s.touch_last_accessed(vec![(a.id, far + 2), (b.id, far + 1)])
        .await
        .map_err(e("touch"))?;
    let found = s
        .accounts_accessed_after(far, Uuid::nil(), 10)
        .await
        .map_err(e("accessed after"))?;
    let ids: Vec<Uuid> = found.iter().map(|r| r.id).collect();
    ensure!(ids == [b.id, a.id], "by last access: {ids:?}");
    let rest = s
        .accounts_accessed_after(far + 1, b.id, 10)
        .await
        .map_err(e("accessed after cursor"))?;
    ensure!(
        rest.len() == 1 && rest[0].id == a.id,
        "after the cursor: {rest:?}"
    );
    Ok(())
}

/// The lifecycle job's reads and reminders (migration 0011): accounts in a status with the
/// time they entered it, paged by id; digests of a set of customers; each reminder (account,
/// kind, due date) recorded once with its event and audit entry, even when eight writers
/// record it at once.
async fn due_work(s: Arc<dyn Store>) -> Check {
    let (c1, c2) = (Uuid::now_v7(), Uuid::now_v7());
    s.insert_customer(write(customer_row(c1, 1, "individual", "DE", 1), vec![]))
        .await
        .map_err(e("customer 1"))?;
    let mut old = customer_row(c2, 1, "entity", "GB", 1);
    old.digest = None;
    s.insert_customer(write(old, vec![]))
        .await
        .map_err(e("customer 2"))?;
    for part in [DigestPart::Policy, DigestPart::Screening] {
        let digests = s
            .customer_digests(part, &[c2, Uuid::now_v7(), c1])
            .await
            .map_err(e("digests"))?;
        let want = sealed_digest(&format!("{c1}-1"));
        let want = match part {
            DigestPart::Policy => want.policy,
            DigestPart::Screening => want.screening,
        };
        ensure!(
            digests.len() == 2
                && digests.iter().any(|d| d.id == c1
                    && d.digest.as_deref() == Some(&want[..])
                    && d.document.is_none())
                && digests
                    .iter()
                    .any(|d| d.id == c2 && d.digest.is_none() && d.document.is_some()),
            "{part:?} digests of the known customers, the document only without a digest: \
             {digests:?}"
        );
    }
    ensure!(
        s.customer_digests(DigestPart::Policy, &[])
            .await
            .map_err(e("no ids"))?
            .is_empty(),
        "no ids, no rows"
    );

    // a1 entered pending at 200 (its latest transition); a2 has no transition (since its
    // last update, 10); a3 is active.
    let status = "pending_verification";
    let mut ids = Vec::new();
    for (i, at) in [(0, Some(200)), (1, None), (2, Some(50))] {
        let mut a = account_row(if i == 1 { c2 } else { c1 }, None);
        a.status = if i == 2 { "active" } else { status }.into();
        let mut w = account_write(a.clone());
        w.transition = at.map(|at| TransitionRow {
            account_id: a.id,
            version: 1,
            from_status: "none".into(),
            to_status: a.status.clone(),
            reason: "r".into(),
            actor: "k".into(),
            at,
        });
        s.insert_account(w).await.map_err(e("account"))?;
        ids.push(a.id);
    }
    let mine = |rows: Vec<AccountSince>| -> Vec<(Uuid, i64)> {
        rows.into_iter()
            .filter(|r| ids.contains(&r.account.id))
            .map(|r| (r.account.id, r.since))
            .collect()
    };
    let early = mine(
        s.accounts_entered_before(status, None, 150, 1000)
            .await
            .map_err(e("entered before 150"))?,
    );
    ensure!(
        early == vec![(ids[1], 10)],
        "only the account in the status since before 150: {early:?}"
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .accounts_entered_before(status, after, 300, 1)
            .await
            .map_err(e("page"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.account.id);
        paged.extend(page);
    }
    let paged = mine(paged);
    ensure!(
        paged == vec![(ids[0], 200), (ids[1], 10)],
        "pages walk the candidates in id order with their times: {paged:?}"
    );

    let hook = endpoint("account.reverification_reminder");
    s.insert_webhook_endpoint(hook.clone(), draft("webhook.create", None))
        .await
        .map_err(e("endpoint"))?;
    let reminder = |due_at: i64| {
        let ev = event_draft("account.reverification_reminder", 300);
        ReminderWrite {
            row: ReminderRow {
                account_id: ids[2],
                kind: "reverification".into(),
                due_at,
                sent_at: 300,
                event_id: ev.id,
            },
            event: ev,
            audit: draft("account.reminder", Some(ids[2].to_string())),
        }
    };
    let head = s.audit_head().await.map_err(e("head"))?.0;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, w) = (s.clone(), reminder(5_000));
        tasks.push(tokio::spawn(
            async move { s.record_reminders(vec![w]).await },
        ));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += t
            .await
            .map_err(|x| format!("reminder task: {x}"))?
            .map_err(e("record"))?;
    }
    ensure!(
        recorded == 1,
        "one reminder of eight recorded, got {recorded}"
    );
    let n = s
        .record_reminders(vec![reminder(5_000), reminder(9_000), reminder(9_000)])
        .await
        .map_err(e("record again"))?;
    ensure!(
        n == 1,
        "the known reminder is skipped, the new due date recorded once: {n}"
    );
    ensure!(
        s.audit_head().await.map_err(e("head"))?.0 == head + 2,
        "one audit entry per reminder recorded"
    );
    let log = s.list_deliveries(hook.id, 10).await.map_err(e("log"))?;
    ensure!(
        log.len() == 2
            && log
                .iter()
                .all(|d| d.event_type == "account.reverification_reminder"),
        "one event per reminder recorded: {log:?}"
    );
    let sent = s
        .reminders_sent("reverification", &[ids[0], ids[2]])
        .await
        .map_err(e("sent"))?;
    let mut due: Vec<i64> = sent.iter().map(|(_, d)| *d).collect();
    due.sort();
    ensure!(
        sent.iter().all(|(a, _)| *a == ids[2]) && due == vec![5_000, 9_000],
        "the due dates reminded: {sent:?}"
    );
    ensure!(
        s.reminders_sent("verification", &ids)
            .await
            .map_err(e("other kind"))?
            .is_empty(),
        "another kind has none"
    );
    let rows = s.list_reminders(ids[2]).await.map_err(e("list"))?;
    ensure!(
        rows.len() == 2 && rows[0].due_at == 5_000 && rows[0].kind == "reverification",
        "reminders listed: {rows:?}"
    );
    Ok(())
}

/// The keyed index of screening keys (migration 0012): keys written with the record's insert
/// and update (the old version's removed), looked up by any key, read back by id; customers
/// without keys of a generation found for the backfill, whose write applies only to the
/// version it was derived from and carries its audit entry.
async fn screen_keys(s: Arc<dyn Store>) -> Check {
    // A generation no other check writes, so counts are this check's own.
    const GEN: i64 = 424_242;
    let keys = |k: &[i64]| {
        Some(ScreenKeys {
            generation: GEN,
            keys: k.to_vec(),
            born: 0,
        })
    };
    // Birth-year signatures: every bit survives, the top one too.
    let born = [0b1010, 0, i64::MIN | 1];
    let mut ids = Vec::new();
    for i in 0..4i64 {
        let id = Uuid::now_v7();
        let mut row = customer_row(id, 1, "individual", "DE", 1);
        row.screen_keys = match i {
            // Shares key -5 with customer 1; i64 extremes survive the round trip.
            0 => keys(&[-5, 10, i64::MAX]),
            1 => keys(&[-5, 20]),
            2 => keys(&[i64::MIN, 30]),
            _ => None,
        }
        .map(|k| ScreenKeys {
            born: born.get(i as usize).copied().unwrap_or(0),
            ..k
        });
        s.insert_customer(write(row, vec![]))
            .await
            .map_err(e("insert"))?;
        ids.push(id);
    }
    let found = |k: Vec<i64>| {
        let s = s.clone();
        async move { s.customers_with_screen_keys(&k).await }
    };
    ensure!(
        found(vec![-5]).await.map_err(e("lookup"))? == vec![ids[0], ids[1]],
        "a shared key finds both customers, in id order"
    );
    ensure!(
        found(vec![10, -5, 30, 999]).await.map_err(e("lookup"))? == vec![ids[0], ids[1], ids[2]],
        "several keys find each customer once"
    );
    ensure!(
        found(vec![i64::MAX]).await.map_err(e("lookup"))? == vec![ids[0]]
            && found(vec![i64::MIN]).await.map_err(e("lookup"))? == vec![ids[2]],
        "extreme keys round-trip"
    );
    ensure!(
        found(vec![]).await.map_err(e("lookup"))?.is_empty(),
        "no keys, no customers"
    );
    let holder = |c: usize, key: i64| KeyHolder {
        customer: ids[c],
        key,
        born: born[c],
    };
    ensure!(
        s.screen_key_holders(&[999, 30, -5, 10])
            .await
            .map_err(e("holders"))?
            == vec![holder(0, -5), holder(0, 10), holder(1, -5), holder(2, 30)],
        "each key a customer holds, with its birth-year signature, by customer then key"
    );
    ensure!(
        s.count_screen_keyed(GEN).await.map_err(e("count"))? == 3,
        "three customers keyed"
    );
    // An update replaces the keys: the old version's are gone, the new ones found.
    let mut row = customer_row(ids[1], 2, "individual", "DE", 1);
    row.screen_keys = keys(&[20, 21]);
    s.update_customer(write(row, vec![]), 1)
        .await
        .map_err(e("update"))?;
    ensure!(
        found(vec![-5]).await.map_err(e("lookup"))? == vec![ids[0]],
        "the old version's key no longer finds the customer"
    );
    ensure!(
        found(vec![21]).await.map_err(e("lookup"))? == vec![ids[1]]
            && found(vec![20]).await.map_err(e("lookup"))? == vec![ids[1]],
        "the new version's keys (kept and added) find it"
    );
    // The same keys with another birth-year signature: every row carries the new one.
    let mut row = customer_row(ids[1], 3, "individual", "DE", 1);
    row.screen_keys = Some(ScreenKeys {
        generation: GEN,
        keys: vec![20, 21],
        born: 0b11,
    });
    s.update_customer(write(row, vec![]), 2)
        .await
        .map_err(e("update"))?;
    let held = s
        .screen_key_holders(&[20, 21])
        .await
        .map_err(e("holders"))?;
    ensure!(
        held.len() == 2 && held.iter().all(|h| h.customer == ids[1] && h.born == 0b11),
        "a new signature reaches the kept keys too: {held:?}"
    );
    // An update without keys leaves the customer unkeyed (no stale keys).
    let row = customer_row(ids[2], 2, "individual", "DE", 1);
    s.update_customer(write(row, vec![]), 1)
        .await
        .map_err(e("update"))?;
    ensure!(
        found(vec![30, i64::MIN])
            .await
            .map_err(e("lookup"))?
            .is_empty(),
        "an update without keys removes the old ones"
    );
    ensure!(
        s.count_screen_keyed(GEN).await.map_err(e("count"))? == 2,
        "two customers keyed after that"
    );
    // Digests by id: in id order, unknown ids left out.
    let rows = s
        .customer_digests(DigestPart::Screening, &[ids[2], Uuid::now_v7(), ids[0]])
        .await
        .map_err(e("digests by id"))?;
    ensure!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>() == vec![ids[0], ids[2]],
        "digests by id, in id order"
    );
    ensure!(
        rows[0].digest == Some(sealed_digest(&format!("{}-1", ids[0])).screening)
            && rows[1].digest == Some(sealed_digest(&format!("{}-2", ids[2])).screening)
            && rows[1].version == 2
            && rows.iter().all(|r| r.document.is_none() && r.key_id == 1),
        "the rows are as the scan gives them"
    );
    // The backfill's view: customers without keys of the generation, after a cursor.
    let before_mine = Some(Uuid::from_u128(ids[0].as_u128() - 1));
    let unkeyed = s
        .customers_without_screen_keys(GEN, before_mine, 100)
        .await
        .map_err(e("without keys"))?;
    let unkeyed: Vec<Uuid> = unkeyed
        .iter()
        .map(|r| r.id)
        .filter(|id| ids.contains(id))
        .collect();
    ensure!(
        unkeyed == vec![ids[2], ids[3]],
        "customers 2 and 3 have no keys: {unkeyed:?}"
    );
    let page = s
        .customers_without_screen_keys(GEN, Some(ids[2]), 1)
        .await
        .map_err(e("without keys"))?;
    ensure!(
        page.len() == 1 && page[0].id == ids[3],
        "the cursor and the limit hold"
    );
    ensure!(
        s.customers_without_screen_keys(GEN + 1, before_mine, 100)
            .await
            .map_err(e("without keys"))?
            .iter()
            .filter(|r| ids.contains(&r.id))
            .count()
            == 4,
        "keys of another generation do not count"
    );
    // The backfill writes only the version it derived from, with its audit entry.
    let (_, head_before) = s.audit_head().await.map_err(e("head"))?;
    let stored = s
        .put_screen_keys(
            vec![
                (
                    ids[2],
                    2,
                    ScreenKeys {
                        generation: GEN,
                        keys: vec![31],
                        born: 0,
                    },
                ),
                (
                    ids[3],
                    7,
                    ScreenKeys {
                        generation: GEN,
                        keys: vec![40],
                        born: 0,
                    },
                ),
            ],
            draft("customer.screen_keys", None),
        )
        .await
        .map_err(e("put keys"))?;
    ensure!(stored == 1, "only the current version is keyed: {stored}");
    ensure!(
        found(vec![31, 40]).await.map_err(e("lookup"))? == vec![ids[2]],
        "the backfilled keys are found; the stale derivation was not stored"
    );
    let (_, head_after) = s.audit_head().await.map_err(e("head"))?;
    ensure!(
        head_after != head_before,
        "the backfill appends its audit entry"
    );
    ensure!(
        s.count_screen_keyed(GEN).await.map_err(e("count"))? == 3,
        "three keyed after the backfill"
    );
    // Keys of another generation replace the customer's whole key set.
    let mut row = customer_row(ids[0], 2, "individual", "DE", 1);
    row.screen_keys = Some(ScreenKeys {
        generation: GEN + 1,
        keys: vec![10, 11],
        born: 0,
    });
    s.update_customer(write(row, vec![]), 1)
        .await
        .map_err(e("update"))?;
    ensure!(
        found(vec![i64::MAX]).await.map_err(e("lookup"))?.is_empty()
            && found(vec![10]).await.map_err(e("lookup"))? == vec![ids[0]],
        "a new generation's keys replace the old ones"
    );
    ensure!(
        s.count_screen_keyed(GEN).await.map_err(e("count"))? == 2
            && s.count_screen_keyed(GEN + 1).await.map_err(e("count"))? == 1,
        "counted under its new generation"
    );
    Ok(())
}
