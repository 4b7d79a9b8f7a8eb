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
        ("api_keys", |s| Box::pin(api_keys(s))),
        ("customers", |s| Box::pin(customers(s))),
        ("idempotency", |s| Box::pin(idempotency(s))),
        ("accounts", |s| Box::pin(accounts(s))),
        ("concurrent_updates", |s| Box::pin(concurrent_updates(s))),
        ("reseal", |s| Box::pin(reseal(s))),
        ("audit_chain", |s| Box::pin(audit_chain(s))),
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
    }
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
        s.reseal_customer(target.id, target.version, b"resealed".to_vec(), 99)
            .await
            .map_err(e("reseal"))?,
        "reseal at the current version must succeed"
    );
    ensure!(
        !s.reseal_customer(target.id, target.version + 5, b"x".to_vec(), 99)
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
        got.key_id == 99 && got.document == b"resealed" && got.version == target.version,
        "reseal must change document and key id but not version"
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
