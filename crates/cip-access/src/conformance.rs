//! The behaviour every access engine must show, run against each by
//! `crates/cip-access/tests/conformance.rs`. Each check returns the problems it found, so one
//! run reports every disagreement at once.

use std::sync::Arc;

use uuid::Uuid;

use crate::*;

/// 2026-01-05T00:00:00Z, a Monday; the checks place events around it.
pub const T0: i64 = 1_767_571_200_000_000;
const HOUR: i64 = 3600 * 1_000_000;
const DAY: i64 = 24 * HOUR;

pub fn ip(s: &str) -> IpKey {
    ip_key(
        s.parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
    )
}

pub fn event(account: Uuid, ip_text: &str, at: i64, action: Action) -> AccessEvent {
    AccessEvent {
        account,
        principal: "alice".into(),
        ip: ip(ip_text),
        at,
        action,
        user_agent: Some("Mozilla/5.0".into()),
        session: None,
        resource: None,
        event_id: None,
    }
}

macro_rules! ensure {
    ($fails:expr, $cond:expr, $($msg:tt)*) => {
        if !$cond {
            $fails.push(format!($($msg)*));
        }
    };
}

/// Runs every check on a fresh store; returns the failures (empty when it conforms).
pub async fn run_all(store: Arc<dyn AccessStore>) -> Vec<String> {
    let mut fails = Vec::new();
    for (name, result) in [
        ("dedupe", dedupe(store.as_ref()).await),
        ("queries", queries(store.as_ref()).await),
        ("pagination", pagination(store.as_ref()).await),
        ("marks", marks(store.as_ref()).await),
        ("retention", retention(store.as_ref()).await),
        ("verify", verify(store.as_ref()).await),
        ("many_commits", many_commits(store.as_ref()).await),
    ] {
        match result {
            Ok(f) => fails.extend(f.into_iter().map(|m| format!("{name}: {m}"))),
            Err(e) => fails.push(format!("{name}: error {e}")),
        }
    }
    fails
}

async fn dedupe(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let a = Uuid::now_v7();
    let mut batch = vec![
        event(a, "192.0.2.1", T0 + HOUR, Action::Login),
        event(a, "192.0.2.1", T0 + 2 * HOUR, Action::Api),
        event(a, "2001:db8::1", T0 + 3 * HOUR, Action::Ssh),
    ];
    // Same content, two event ids: two events. Same id again: one.
    let mut with_id = event(a, "192.0.2.1", T0 + 4 * HOUR, Action::Admin);
    with_id.event_id = Some("evt-1".into());
    batch.push(with_id.clone());
    with_id.event_id = Some("evt-2".into());
    batch.push(with_id.clone());
    let first = s.ingest(batch.clone(), None).await?;
    ensure!(
        f,
        first
            == IngestOutcome {
                accepted: 5,
                duplicates: 0
            },
        "first ingest {first:?}"
    );
    // The same batch again (a retry), and a duplicate inside one batch.
    batch.push(batch[0].clone());
    let again = s.ingest(batch, None).await?;
    ensure!(
        f,
        again
            == IngestOutcome {
                accepted: 0,
                duplicates: 6
            },
        "re-sent batch {again:?}"
    );
    let ips = s.account_ips(a, T0, T0 + DAY).await?;
    let v4 = ips.iter().find(|u| u.ip == ip("192.0.2.1"));
    ensure!(f, ips.len() == 2, "distinct ips {}", ips.len());
    ensure!(
        f,
        v4.map(|u| (u.count, u.first_seen, u.last_seen)) == Some((4, T0 + HOUR, T0 + 4 * HOUR)),
        "summary of 192.0.2.1 after re-sends {v4:?}"
    );
    let events = s.account_events(a, T0, T0 + DAY, None, 100).await?;
    ensure!(f, events.len() == 5, "stored events {}", events.len());
    let ids: Vec<_> = events
        .iter()
        .filter_map(|e| e.event.event_id.clone())
        .collect();
    ensure!(f, ids.len() == 2, "event ids read back {ids:?}");
    ensure!(
        f,
        events.first().map(|e| &e.event) == Some(&event(a, "192.0.2.1", T0 + HOUR, Action::Login)),
        "first event read back {:?}",
        events.first()
    );
    Ok(f)
}

async fn queries(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // Over three weeks (three SQLite segments); b shares an address with a.
    let batch = vec![
        event(a, "198.51.100.10", T0 + DAY, Action::Login),
        event(a, "198.51.100.10", T0 + 8 * DAY, Action::Login),
        event(a, "198.51.100.10", T0 + 15 * DAY, Action::Login),
        event(a, "198.51.100.77", T0 + 9 * DAY, Action::Console),
        event(b, "198.51.100.10", T0 + 10 * DAY, Action::Api),
        event(b, "203.0.113.5", T0 + 10 * DAY, Action::Api),
        event(c, "2001:db8:1::5", T0 + 2 * DAY, Action::Billing),
    ];
    s.ingest(batch, None).await?;
    // Whole range.
    let ips = s.account_ips(a, T0, T0 + 30 * DAY).await?;
    let shown: Vec<_> = ips
        .iter()
        .map(|u| {
            (
                ip_from_key(u.ip).to_string(),
                u.count,
                u.first_seen,
                u.last_seen,
            )
        })
        .collect();
    ensure!(
        f,
        shown
            == vec![
                ("198.51.100.10".to_string(), 3, T0 + DAY, T0 + 15 * DAY),
                ("198.51.100.77".to_string(), 1, T0 + 9 * DAY, T0 + 9 * DAY)
            ],
        "account ips over 30 days {shown:?}"
    );
    // A range covering whole segments (read from the summaries) agrees.
    let wide = s.account_ips(a, 0, T0 + 400 * DAY).await?;
    let shown_wide: Vec<_> = wide
        .iter()
        .map(|u| {
            (
                ip_from_key(u.ip).to_string(),
                u.count,
                u.first_seen,
                u.last_seen,
            )
        })
        .collect();
    ensure!(
        f,
        shown_wide == shown,
        "account ips over whole segments {shown_wide:?}"
    );
    let users = s
        .ip_accounts(IpRange::single(ip("198.51.100.10")), 0, T0 + 400 * DAY)
        .await?;
    ensure!(
        f,
        users.len() == 2,
        "accounts of one ip over whole segments {users:?}"
    );
    // A range that cuts segments: only events inside it count.
    let ips = s.account_ips(a, T0 + 8 * DAY, T0 + 9 * DAY).await?;
    let shown: Vec<_> = ips
        .iter()
        .map(|u| (ip_from_key(u.ip).to_string(), u.count))
        .collect();
    ensure!(
        f,
        shown == vec![("198.51.100.10".to_string(), 1)],
        "account ips, one day {shown:?}"
    );
    // Which accounts used this address?
    let users = s
        .ip_accounts(IpRange::single(ip("198.51.100.10")), T0, T0 + 30 * DAY)
        .await?;
    let mut who: Vec<_> = users.iter().map(|u| (u.account, u.count)).collect();
    who.sort();
    let mut want = vec![(a, 3), (b, 1)];
    want.sort();
    ensure!(f, who == want, "accounts of one ip {who:?}");
    // A range cutting the pair's span: counts only the events inside.
    let users = s
        .ip_accounts(
            IpRange::single(ip("198.51.100.10")),
            T0 + 7 * DAY,
            T0 + 9 * DAY,
        )
        .await?;
    let who: Vec<_> = users
        .iter()
        .map(|u| (u.account, u.count, u.first_seen))
        .collect();
    ensure!(
        f,
        who == vec![(a, 1, T0 + 8 * DAY)],
        "accounts of one ip, two days {who:?}"
    );
    // A network.
    let net = IpRange::parse("198.51.100.0/24").map_err(AccessError::Storage)?;
    let users = s.ip_accounts(net, T0, T0 + 30 * DAY).await?;
    ensure!(f, users.len() == 3, "pairs in 198.51.100.0/24: {users:?}");
    let net6 = IpRange::parse("2001:db8:1::/48").map_err(AccessError::Storage)?;
    let users = s.ip_accounts(net6, T0, T0 + 30 * DAY).await?;
    ensure!(
        f,
        users.iter().map(|u| u.account).collect::<Vec<_>>() == vec![c],
        "accounts in 2001:db8:1::/48 {users:?}"
    );
    // Nothing outside the range.
    let none = s.account_ips(a, T0 + 40 * DAY, T0 + 50 * DAY).await?;
    ensure!(f, none.is_empty(), "ips outside the range {none:?}");
    Ok(f)
}

async fn pagination(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let a = Uuid::now_v7();
    let batch: Vec<AccessEvent> = (0..25)
        .map(|i| event(a, "192.0.2.200", T0 + i * DAY / 2, Action::Api))
        .collect();
    s.ingest(batch, None).await?;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = s
            .account_events(a, T0, T0 + 30 * DAY, cursor.as_deref(), 7)
            .await?;
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.cursor.clone());
        seen.extend(page.into_iter().map(|e| e.event.at));
    }
    let want: Vec<i64> = (0..25).map(|i| T0 + i * DAY / 2).collect();
    ensure!(f, seen == want, "paged times {seen:?}");
    ensure!(
        f,
        matches!(
            s.account_events(a, T0, T0 + DAY, Some("garbage"), 5).await,
            Err(AccessError::BadCursor)
        ),
        "a bad cursor is refused"
    );
    Ok(f)
}

async fn marks(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let key = [7u8; 32];
    ensure!(
        f,
        s.import_mark(key).await?.is_none(),
        "mark of an unknown file"
    );
    let a = Uuid::now_v7();
    let mark = ImportMark {
        file_key: key,
        offset: 4096,
        line: 12,
    };
    s.ingest(vec![event(a, "192.0.2.9", T0, Action::Login)], Some(mark))
        .await?;
    ensure!(
        f,
        s.import_mark(key).await? == Some(mark),
        "mark after a batch"
    );
    let later = ImportMark {
        offset: 8192,
        line: 30,
        ..mark
    };
    s.ingest(Vec::new(), Some(later)).await?;
    ensure!(f, s.import_mark(key).await? == Some(later), "mark moves on");
    Ok(f)
}

async fn retention(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let old = T0 - 6 * RETENTION_MICROS;
    let (closed, held, active) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // Its last_accessed_at lags (says long ago) but the record holds a recent event of it.
    let lagging = Uuid::now_v7();
    s.ingest(
        vec![
            event(closed, "192.0.2.50", old, Action::Login),
            event(
                lagging,
                "192.0.2.53",
                old + 6 * SEGMENT_MICROS,
                Action::Login,
            ),
            event(lagging, "192.0.2.53", T0 - DAY, Action::Login),
            event(held, "192.0.2.51", old + 3 * SEGMENT_MICROS, Action::Login),
            event(
                active,
                "192.0.2.52",
                old + 3 * SEGMENT_MICROS + 1,
                Action::Login,
            ),
        ],
        None,
    )
    .await?;
    s.set_legal_hold(held, true, T0).await?;
    let now = T0;
    let clock = |acct: Uuid| async move {
        Ok(Some(if acct == closed || acct == held || acct == lagging {
            AccountClock {
                closed_at: Some(old + DAY),
                last_accessed_at: Some(old + DAY),
            }
        } else if acct == active {
            AccountClock {
                closed_at: None,
                last_accessed_at: Some(now - DAY),
            }
        } else {
            // Accounts of the other checks: long closed.
            AccountClock {
                closed_at: Some(0),
                last_accessed_at: None,
            }
        }))
    };
    let dropped = retention_run_once(s, now, clock).await?;
    ensure!(f, dropped >= 1, "dropped {dropped} segments");
    ensure!(
        f,
        s.account_events(closed, 0, now, None, 10).await?.is_empty(),
        "events of the closed account are gone"
    );
    ensure!(
        f,
        s.account_events(held, 0, now, None, 10).await?.len() == 1,
        "events of the held account are kept"
    );
    ensure!(
        f,
        s.account_events(active, 0, now, None, 10).await?.len() == 1,
        "events of the active account are kept"
    );
    ensure!(
        f,
        s.account_events(lagging, 0, now, None, 10).await?.len() == 2,
        "an account's old events are kept while the record holds a recent one, whatever its \
         last_accessed_at says"
    );
    // Recent segments (of the other checks) are younger than two years: kept.
    ensure!(
        f,
        s.account_ips(Uuid::nil(), 0, 1).await.is_ok(),
        "queries still work after a drop"
    );
    // Lifting the hold lets its segment go too (the active account shares it: kept).
    s.set_legal_hold(held, false, now).await?;
    ensure!(f, s.legal_holds().await?.is_empty(), "hold lifted");
    let again = retention_run_once(s, now, clock).await?;
    ensure!(
        f,
        again == 0,
        "a segment with an active account is kept ({again} dropped)"
    );
    Ok(f)
}

/// `verify` recounts the summaries from the events: after batches spanning two segments,
/// with duplicates inside and across batches, it finds nothing wrong and counts every event
/// once.
async fn verify(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let before = s.verify().await?;
    ensure!(f, before.ok(), "before: {:?}", before.problems);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let edge = (T0 / SEGMENT_MICROS + 1) * SEGMENT_MICROS;
    let batch = vec![
        event(a, "192.0.2.1", edge - HOUR, Action::Login),
        event(a, "192.0.2.1", edge + HOUR, Action::Api),
        event(b, "192.0.2.1", edge + 2 * HOUR, Action::Api),
        event(b, "2001:db8::9", edge + 3 * HOUR, Action::Ssh),
        event(b, "2001:db8::9", edge + 3 * HOUR, Action::Ssh),
    ];
    let o1 = s.ingest(batch.clone(), None).await?;
    let o2 = s.ingest(batch[1..].to_vec(), None).await?;
    ensure!(
        f,
        (o1.accepted, o2.accepted) == (4, 0),
        "accepted {o1:?} then {o2:?}"
    );
    let after = s.verify().await?;
    ensure!(f, after.ok(), "after: {:?}", after.problems);
    ensure!(
        f,
        after.events == before.events + 4,
        "events counted {} then {}",
        before.events,
        after.events
    );
    ensure!(
        f,
        after.pairs == before.pairs + 4,
        "pairs counted {} then {}",
        before.pairs,
        after.pairs
    );
    Ok(f)
}

/// Many small commits into one segment (one event each, as a per-commit index layout would
/// see them): every event found once by each query, re-sends still duplicates, and the
/// indexes agree with the events.
async fn many_commits(s: &dyn AccessStore) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let start = T0 + 40 * DAY;
    let n = 70i64;
    let one = |i: i64| {
        let who = if i % 3 == 0 { b } else { a };
        let addr = if i % 2 == 0 {
            "198.51.100.7"
        } else {
            "2001:db8::70"
        };
        event(who, addr, start + i * HOUR, Action::Api)
    };
    for i in 0..n {
        let o = s.ingest(vec![one(i)], None).await?;
        ensure!(f, o.accepted == 1, "commit {i}: {o:?}");
    }
    let again = s.ingest((0..n).map(one).collect(), None).await?;
    ensure!(
        f,
        (again.accepted, again.duplicates) == (0, n as u64),
        "re-sent: {again:?}"
    );
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    let mut last = i64::MIN;
    loop {
        let page = s
            .account_events(a, start, start + n * HOUR, cursor.as_deref(), 9)
            .await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            ensure!(f, e.event.at > last, "out of order at {}", e.event.at);
            last = e.event.at;
        }
        seen += page.len();
        cursor = page.last().map(|e| e.cursor.clone());
    }
    let of_a = (0..n).filter(|i| i % 3 != 0).count();
    ensure!(f, seen == of_a, "paged {seen} events of a, want {of_a}");
    // A window inside the commits: the edge path of a segment.
    let (lo, hi) = (start + 10 * HOUR, start + 50 * HOUR);
    let in_window = |acct: Uuid, v6: bool| {
        (10..50)
            .filter(|i| (i % 3 == 0) == (acct == b) && (i % 2 != 0) == v6)
            .count() as u64
    };
    let ips = s.account_ips(a, lo, hi).await?;
    let counts: Vec<u64> = ips.iter().map(|u| u.count).collect();
    ensure!(
        f,
        counts == vec![in_window(a, true), in_window(a, false)]
            || counts == vec![in_window(a, false), in_window(a, true)],
        "account_ips counts {counts:?}"
    );
    let users = s
        .ip_accounts(IpRange::single(ip("198.51.100.7")), lo, hi)
        .await?;
    let mut got: Vec<(Uuid, u64)> = users.iter().map(|u| (u.account, u.count)).collect();
    got.sort();
    let mut want = vec![(a, in_window(a, false)), (b, in_window(b, false))];
    want.sort();
    ensure!(f, got == want, "ip_accounts {got:?}, want {want:?}");
    let v = s.verify().await?;
    ensure!(f, v.ok(), "verify: {:?}", v.problems);
    Ok(f)
}
