//! Reads of a segment: its runs' blocks and address lists, and its tail, in one snapshot
//! ([`Readers::with`]); and `verify`.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::format::{self, Ev, Span};
use super::{Readers, Tail};
use crate::*;

/// A segment's runs: (id, first, last) event times.
pub(super) fn run_spans(conn: &Connection) -> Result<Vec<(i64, i64, i64)>> {
    Ok(conn
        .prepare_cached("SELECT id, first, last FROM runs ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<std::result::Result<_, _>>()?)
}

/// An account's events in the runs, with times in `[lo, hi)`, in key order.
pub(super) fn account_run_events(
    conn: &Connection,
    runs: &[(i64, i64, i64)],
    account: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<Ev>> {
    let mut out = Vec::new();
    for (run, first, last) in runs {
        if *last < lo || *first >= hi {
            continue;
        }
        for (_, evs) in blocks_between(conn, *run, account, account + 1)? {
            out.extend(evs.into_iter().filter(|e| lo <= e.t && e.t < hi));
        }
    }
    out.sort_unstable_by(|x, y| x.key().cmp(&y.key()));
    Ok(out)
}

/// The blocks of a run's accounts in `[lo, hi)`, by account: from the bucket keyed at or
/// before `lo` (it may hold `lo`) through the last keyed before `hi`.
pub(super) fn blocks_between(
    conn: &Connection,
    run: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<(i64, Vec<Ev>)>> {
    let from: i64 = conn
        .prepare_cached(
            "SELECT account FROM blocks WHERE run = ?1 AND account <= ?2 \
             ORDER BY account DESC LIMIT 1",
        )?
        .query_row(params![run, lo], |r| r.get(0))
        .optional()?
        .unwrap_or(lo);
    let mut st = conn.prepare_cached(
        "SELECT account, data FROM blocks WHERE run = ?1 AND account >= ?2 AND account < ?3",
    )?;
    let mut rows = st.query(params![run, from, hi])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let data: Vec<u8> = r.get(1)?;
        for (a, block) in format::split_block_bucket(r.get(0)?, &data)? {
            if lo <= a && a < hi {
                out.push((a, format::decode_block(block)?));
            }
        }
    }
    Ok(out)
}

fn account_id(conn: &Connection, account: Uuid) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM accounts WHERE uuid = ?1")?
        .query_row([account], |r| r.get(0))
        .optional()?)
}

/// An account's events in `[lo, hi)` of one segment: runs and tail, in key order.
fn events_of(conn: &Connection, tail: &Tail, account: i64, lo: i64, hi: i64) -> Result<Vec<Ev>> {
    let mut out = account_run_events(conn, &run_spans(conn)?, account, lo, hi)?;
    if let Some(v) = tail.accounts.get(&account) {
        let from_tail = v.iter().filter(|e| lo <= e.t && e.t < hi).cloned();
        if out.is_empty() {
            out.extend(from_tail);
        } else {
            out.extend(from_tail);
            out.sort_unstable_by(|x, y| x.key().cmp(&y.key()));
        }
    }
    Ok(out)
}

/// Addresses by id, each read once (per query, or per tail).
#[derive(Default)]
pub(super) struct Addresses(HashMap<i64, IpKey>);

impl Addresses {
    pub(super) fn get(&mut self, conn: &Connection, id: i64) -> Result<IpKey> {
        if let Some(k) = self.0.get(&id) {
            return Ok(*k);
        }
        let k = stored_ip(
            conn.prepare_cached("SELECT ip FROM ips WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?,
        )?;
        self.0.insert(id, k);
        Ok(k)
    }
}

/// Segments overlapping `[from, to)`, with the range in segment time.
fn overlapping(segments: &[i64], from: i64, to: i64) -> Vec<(i64, i64, i64)> {
    segments
        .iter()
        .copied()
        .filter(|s| {
            let (a, b) = (s * SEGMENT_MICROS, (s + 1) * SEGMENT_MICROS);
            a < to && from < b
        })
        .map(|s| {
            let base = s * SEGMENT_MICROS;
            (s, (from - base).max(0), (to - base).min(SEGMENT_MICROS))
        })
        .collect()
}

pub(super) struct Cursor {
    seg: i64,
    t: i64,
    ip: i64,
    principal: i64,
    action: i64,
    event_id: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}.{}",
            self.seg,
            self.t,
            self.ip,
            self.principal,
            self.action,
            hex(self.event_id.as_bytes())
        )
    }

    pub(super) fn decode(s: &str) -> Result<Cursor> {
        let parts: Vec<&str> = s.split('.').collect();
        let [seg, t, ip, principal, action, eid] = parts.as_slice() else {
            return Err(AccessError::BadCursor);
        };
        let n = |x: &str| x.parse::<i64>().map_err(|_| AccessError::BadCursor);
        Ok(Cursor {
            seg: n(seg)?,
            t: n(t)?,
            ip: n(ip)?,
            principal: n(principal)?,
            action: n(action)?,
            event_id: String::from_utf8(unhex(eid).ok_or(AccessError::BadCursor)?)
                .map_err(|_| AccessError::BadCursor)?,
        })
    }
}

/// Opens sealed dictionary text, each id once per query.
struct Opener<'a> {
    vault: &'a dyn TextVault,
    seen: HashMap<i64, String>,
}

impl Opener<'_> {
    fn text(&mut self, conn: &Connection, id: Option<i64>) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(s) = self.seen.get(&id) {
            return Ok(Some(s.clone()));
        }
        let sealed: Vec<u8> = conn
            .prepare_cached("SELECT sealed FROM strings WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let s = self.vault.open(&sealed)?;
        self.seen.insert(id, s.clone());
        Ok(Some(s))
    }
}

pub(super) fn account_events(
    readers: &Readers,
    vault: &dyn TextVault,
    segments: &[i64],
    account: Uuid,
    (from, to): (i64, i64),
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    for (seg, lo, hi) in overlapping(segments, from, to) {
        if let Some(c) = &cursor
            && seg < c.seg
        {
            continue;
        }
        let want = limit as usize - out.len();
        if want == 0 {
            break;
        }
        let base = seg * SEGMENT_MICROS;
        let got = readers.with(seg, |conn, tail| {
            let Some(a) = account_id(conn, account)? else {
                return Ok(Vec::new());
            };
            let mut evs = events_of(conn, tail, a, lo, hi)?;
            if let Some(c) = &cursor
                && c.seg == seg
            {
                let after = (c.t, c.ip, c.principal, c.action, c.event_id.as_str());
                evs.retain(|e| {
                    let (t, ip, p, action, id) = e.key();
                    (t, ip, p, i64::from(action), id) > after
                });
            }
            evs.truncate(want);
            let mut open = Opener {
                vault,
                seen: HashMap::new(),
            };
            let mut addresses = Addresses::default();
            let mut v = Vec::with_capacity(evs.len());
            for e in evs {
                let cursor = Cursor {
                    seg,
                    t: e.t,
                    ip: e.ip,
                    principal: e.principal,
                    action: i64::from(e.action),
                    event_id: e.event_id.as_deref().unwrap_or("").to_string(),
                }
                .encode();
                v.push(StoredEvent {
                    event: AccessEvent {
                        account,
                        principal: open.text(conn, Some(e.principal))?.unwrap_or_default(),
                        ip: addresses.get(conn, e.ip)?,
                        at: base + e.t,
                        action: Action::from_code(i64::from(e.action)).ok_or_else(|| {
                            AccessError::Storage(format!("unknown action code {}", e.action))
                        })?,
                        user_agent: open.text(conn, e.user_agent)?,
                        session: open.text(conn, e.session)?,
                        resource: open.text(conn, e.resource)?,
                        event_id: e.event_id.map(String::from),
                    },
                    cursor,
                });
            }
            Ok(v)
        })?;
        out.extend(got.unwrap_or_default());
    }
    Ok(out)
}

pub(super) fn account_ips(
    readers: &Readers,
    segments: &[i64],
    account: Uuid,
    from: i64,
    to: i64,
) -> Result<Vec<IpUse>> {
    let mut merged: BTreeMap<IpKey, IpUse> = BTreeMap::new();
    for (seg, lo, hi) in overlapping(segments, from, to) {
        let base = seg * SEGMENT_MICROS;
        let got = readers.with(seg, |conn, tail| {
            let Some(a) = account_id(conn, account)? else {
                return Ok(Vec::new());
            };
            let mut by_ip: HashMap<i64, Span> = HashMap::new();
            for e in events_of(conn, tail, a, lo, hi)? {
                by_ip
                    .entry(e.ip)
                    .and_modify(|s| s.add(Span::of(e.t)))
                    .or_insert_with(|| Span::of(e.t));
            }
            let mut addresses = Addresses::default();
            let mut v = Vec::with_capacity(by_ip.len());
            for (ip, s) in by_ip {
                v.push(IpUse {
                    ip: addresses.get(conn, ip)?,
                    first_seen: base + s.first,
                    last_seen: base + s.last,
                    count: s.n,
                });
            }
            Ok(v)
        })?;
        for u in got.unwrap_or_default() {
            merge_use(&mut merged, u);
        }
    }
    Ok(merged.into_values().collect())
}

pub(super) fn ip_accounts(
    readers: &Readers,
    segments: &[i64],
    range: IpRange,
    from: i64,
    to: i64,
) -> Result<Vec<AccountUse>> {
    let mut merged: BTreeMap<(Uuid, IpKey), AccountUse> = BTreeMap::new();
    for (seg, lo, hi) in overlapping(segments, from, to) {
        let base = seg * SEGMENT_MICROS;
        let got = readers.with(seg, |conn, tail| {
            // (account id, address) → use in range.
            let mut found: HashMap<(i64, IpKey), Span> = HashMap::new();
            let mut add = |k: (i64, IpKey), s: Span| {
                found.entry(k).and_modify(|x| x.add(s)).or_insert(s);
            };
            let mut addresses = Addresses::default();
            let runs = run_spans(conn)?;
            for (run, first, last) in &runs {
                if *last < lo || *first >= hi {
                    continue;
                }
                // The range's first address may sit in a bucket keyed by an earlier one.
                let from: Vec<u8> = conn
                    .prepare_cached(
                        "SELECT ip FROM ip_runs WHERE run = ?1 AND ip <= ?2 \
                         ORDER BY ip DESC LIMIT 1",
                    )?
                    .query_row(params![run, &range.first[..]], |r| r.get(0))
                    .optional()?
                    .unwrap_or_else(|| range.first.to_vec());
                let mut st = conn.prepare_cached(
                    "SELECT ip, data FROM ip_runs WHERE run = ?1 AND ip BETWEEN ?2 AND ?3",
                )?;
                let mut rows = st.query(params![run, from, &range.last[..]])?;
                let mut lists = Vec::new();
                while let Some(r) = rows.next()? {
                    let key = stored_ip(r.get(0)?)?;
                    let data: Vec<u8> = r.get(1)?;
                    lists.extend(
                        format::decode_bucket(key, &data)?
                            .into_iter()
                            .filter(|(ip, _)| range.first <= *ip && *ip <= range.last),
                    );
                }
                for (ip, users) in lists {
                    for (a, s) in users {
                        if s.last < lo || s.first >= hi {
                            continue;
                        }
                        if lo <= s.first && s.last < hi {
                            add((a, ip), s);
                            continue;
                        }
                        // The pair's span crosses the range's edge: count its events inside,
                        // from the account's block of this run.
                        let evs = account_run_events(conn, &[(*run, *first, *last)], a, lo, hi)?;
                        let mut inside: Option<Span> = None;
                        for e in &evs {
                            if addresses.get(conn, e.ip)? != ip {
                                continue;
                            }
                            match &mut inside {
                                Some(x) => x.add(Span::of(e.t)),
                                None => inside = Some(Span::of(e.t)),
                            }
                        }
                        if let Some(s) = inside {
                            add((a, ip), s);
                        }
                    }
                }
            }
            for (ip, id, accounts) in tail.in_range(range.first, range.last) {
                for a in accounts {
                    for e in tail.accounts.get(a).into_iter().flatten() {
                        if e.ip == id && lo <= e.t && e.t < hi {
                            add((*a, ip), Span::of(e.t));
                        }
                    }
                }
            }
            let mut uuids: HashMap<i64, Uuid> = HashMap::new();
            let mut v = Vec::with_capacity(found.len());
            for ((a, ip), s) in found {
                let account = match uuids.get(&a) {
                    Some(u) => *u,
                    None => {
                        let u: Uuid = conn
                            .prepare_cached("SELECT uuid FROM accounts WHERE id = ?1")?
                            .query_row([a], |r| r.get(0))?;
                        uuids.insert(a, u);
                        u
                    }
                };
                v.push(AccountUse {
                    account,
                    ip,
                    first_seen: base + s.first,
                    last_seen: base + s.last,
                    count: s.n,
                });
            }
            Ok(v)
        })?;
        for u in got.unwrap_or_default() {
            merge_use(&mut merged, u);
        }
    }
    Ok(merged.into_values().collect())
}

/// One segment checked in one snapshot: every run's blocks decode, in key order, with the
/// counts and times the runs table gives; no event is stored twice (across runs and the tail);
/// the address lists say exactly what the blocks say; every id names a dictionary entry.
/// Problems name the segment and a count, never an account or address.
pub(super) fn verify_segment(
    conn: &Connection,
    tail: &Tail,
    seg: i64,
) -> Result<(u64, u64, Vec<String>)> {
    let ids = |sql: &str| -> Result<HashSet<i64>> {
        Ok(conn
            .prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?)
    };
    let (accounts, strings) = (
        ids("SELECT id FROM accounts")?,
        ids("SELECT id FROM strings")?,
    );
    let mut ips: HashMap<i64, IpKey> = HashMap::new();
    // The table has no UNIQUE index (the writer keeps the map): an address twice is a fault.
    let mut twice = 0;
    {
        let mut seen: HashSet<IpKey> = HashSet::new();
        let mut st = conn.prepare("SELECT id, ip FROM ips")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let k = stored_ip(r.get(1)?)?;
            twice += u64::from(!seen.insert(k));
            ips.insert(r.get(0)?, k);
        }
    }
    let mut problems: BTreeMap<&str, u64> = BTreeMap::new();
    if twice > 0 {
        problems.insert("an address twice in the dictionary", twice);
    }
    let mut problem = |what: &'static str| *problems.entry(what).or_default() += 1;
    let runs = run_spans(conn)?;
    let mut counted: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    // (run, address, account) → use, from the blocks.
    let mut uses: HashMap<(i64, IpKey, i64), Span> = HashMap::new();
    let mut pairs: HashSet<(i64, i64)> = HashSet::new();
    let mut events = 0u64;
    let max_account = accounts.iter().copied().max().unwrap_or(0);
    let mut lo = 0;
    while lo <= max_account {
        let hi = lo + super::ACCOUNT_CHUNK;
        let mut all: HashMap<i64, Vec<Ev>> = HashMap::new();
        for (run, _, _) in &runs {
            for (a, evs) in blocks_between(conn, *run, lo, hi)? {
                if evs.windows(2).any(|w| w[0].key() >= w[1].key()) {
                    problem("blocks not in key order");
                }
                let c = counted.entry(*run).or_insert((0, i64::MAX, i64::MIN));
                c.0 += evs.len() as i64;
                for e in &evs {
                    c.1 = c.1.min(e.t);
                    c.2 = c.2.max(e.t);
                    match ips.get(&e.ip) {
                        Some(k) => {
                            uses.entry((*run, *k, a))
                                .and_modify(|s| s.add(Span::of(e.t)))
                                .or_insert_with(|| Span::of(e.t));
                        }
                        None => problem("events naming a dictionary entry that does not exist"),
                    }
                }
                all.entry(a).or_default().extend(evs);
            }
        }
        for (a, v) in &tail.accounts {
            if (lo..hi).contains(a) {
                all.entry(*a).or_default().extend(v.iter().cloned());
            }
        }
        for (a, mut evs) in all {
            if !accounts.contains(&a) {
                problem("events naming a dictionary entry that does not exist");
            }
            evs.sort_unstable_by(|x, y| x.key().cmp(&y.key()));
            for w in evs.windows(2) {
                if w[0].key() == w[1].key() {
                    problem("events stored twice");
                }
            }
            for e in &evs {
                pairs.insert((a, e.ip));
                if !strings.contains(&e.principal)
                    || [e.user_agent, e.session, e.resource]
                        .into_iter()
                        .flatten()
                        .any(|s| !strings.contains(&s))
                {
                    problem("events naming a dictionary entry that does not exist");
                }
            }
            events += evs.len() as u64;
        }
        lo = hi;
    }
    {
        // A run's accounts ascend across its block buckets (the reads start from the bucket
        // keyed at or before the account they want).
        let mut st = conn.prepare("SELECT run, account, data FROM blocks ORDER BY run, account")?;
        let mut rows = st.query([])?;
        let mut previous: Option<(i64, i64)> = None;
        while let Some(r) = rows.next()? {
            let run: i64 = r.get(0)?;
            let data: Vec<u8> = r.get(2)?;
            for (a, _) in format::split_block_bucket(r.get(1)?, &data)? {
                if previous.is_some_and(|(r, p)| r == run && p >= a) {
                    problem("blocks out of order");
                }
                previous = Some((run, a));
            }
        }
    }
    for (run, first, last) in &runs {
        let want: (i64, i64, i64) = conn
            .prepare_cached("SELECT events, first, last FROM runs WHERE id = ?1")?
            .query_row([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let got = counted.get(run).copied().unwrap_or((0, i64::MAX, i64::MIN));
        if got != want || (want.1, want.2) != (*first, *last) {
            problem("runs whose events or times differ from their blocks");
        }
    }
    {
        // In key order: within a run, every bucket's addresses must come after the previous
        // bucket's (the IP query starts from the bucket keyed at or before its address).
        let mut st = conn.prepare("SELECT run, ip, data FROM ip_runs ORDER BY run, ip")?;
        let mut rows = st.query([])?;
        let mut previous: Option<(i64, IpKey)> = None;
        while let Some(r) = rows.next()? {
            let run: i64 = r.get(0)?;
            let key = stored_ip(r.get(1)?)?;
            let data: Vec<u8> = r.get(2)?;
            for (ip, users) in format::decode_bucket(key, &data)? {
                if previous.is_some_and(|(r, p)| r == run && p >= ip) {
                    problem("address lists out of order");
                }
                previous = Some((run, ip));
                for (a, s) in users {
                    match uses.remove(&(run, ip, a)) {
                        Some(x) if x == s => {}
                        Some(_) => {
                            problem("address lists counting a pair differently from the blocks")
                        }
                        None => problem("address list entries the blocks do not support"),
                    }
                }
            }
        }
    }
    for _ in uses {
        problem("(account, address) pairs of the blocks missing from the address lists");
    }
    if tail.events != tail.accounts.values().map(Vec::len).sum::<usize>() {
        problem("tail counts that differ from its events");
    }
    let problems = problems
        .into_iter()
        .map(|(what, n)| format!("segment {seg}: {n} {what}"))
        .collect();
    Ok((events, pairs.len() as u64, problems))
}
