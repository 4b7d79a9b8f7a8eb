//! The bytes of a segment's log records, account blocks and address lists (format 2).
//!
//! Every number is an unsigned LEB128 varint. Times are microseconds from the segment's
//! start (never negative: an event lies in its segment). Dictionary ids (account, address,
//! free text) are the segment's own small integers.
//!
//! - event: `t` (absolute in a log record, the difference from the previous event in a
//!   block), `ip`, `principal`, one byte `action << 4 | flags`, then what the flags announce:
//!   bit 0 event id (length, UTF-8 bytes), bit 1 user agent, bit 2 session, bit 3 resource.
//! - log record (one commit): count, then per event its account id and the event.
//! - block (one account's events of a run, in key order): count, then the events.
//! - block bucket (format 4: consecutive accounts' blocks of a run in one row, keyed by its
//!   first account): count, then per account its difference from the previous account (from
//!   the row's key for the first), the length of its block and the block.
//! - address list (one address's accounts of a run, by account): count, then per account the
//!   difference from the previous account id, first time, last − first, number of events.
//! - address bucket (format 3: up to [`BUCKET_ADDRESSES`] consecutive addresses of a run in
//!   one row, keyed by its first address): count, then per address its difference from the
//!   previous address (from the row's key for the first; a 128-bit varint) and its list.

use crate::{AccessError, IpKey, Result};

/// One stored event, in dictionary ids. Its identity — the key — is (t, ip, principal,
/// action, event id) within its account; user agent, session and resource ride along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ev {
    pub t: i64,
    pub ip: i64,
    pub principal: i64,
    pub action: u8,
    pub event_id: Option<Box<str>>,
    pub user_agent: Option<i64>,
    pub session: Option<i64>,
    pub resource: Option<i64>,
}

pub(crate) type EvKey<'a> = (i64, i64, i64, u8, &'a str);

impl Ev {
    pub fn key(&self) -> EvKey<'_> {
        (
            self.t,
            self.ip,
            self.principal,
            self.action,
            self.event_id.as_deref().unwrap_or(""),
        )
    }
}

/// An (account, address) pair's use within a run: first and last time, number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub first: i64,
    pub last: i64,
    pub n: u64,
}

impl Span {
    pub fn of(t: i64) -> Span {
        Span {
            first: t,
            last: t,
            n: 1,
        }
    }

    pub fn add(&mut self, other: Span) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.n += other.n;
    }
}

fn put(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_i(buf: &mut Vec<u8>, v: i64) -> Result<()> {
    let v = u64::try_from(v).map_err(|_| corrupt("a negative number to encode"))?;
    put(buf, v);
    Ok(())
}

fn put_u128(buf: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn corrupt(what: &str) -> AccessError {
    AccessError::Storage(format!("access segment data is damaged: {what}"))
}

/// Reads what [`put`] wrote.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, i: 0 }
    }

    fn u(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.i)
                .ok_or_else(|| corrupt("truncated number"))?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("number longer than 64 bits"))
    }

    fn u128(&mut self) -> Result<u128> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let byte = *self
                .b
                .get(self.i)
                .ok_or_else(|| corrupt("truncated number"))?;
            self.i += 1;
            v |= u128::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("number longer than 128 bits"))
    }

    fn i(&mut self) -> Result<i64> {
        i64::try_from(self.u()?).map_err(|_| corrupt("number out of range"))
    }

    fn count(&mut self) -> Result<usize> {
        let n = self.u()?;
        // Every item takes at least one byte: a larger count cannot be honest.
        if n > (self.b.len() - self.i) as u64 {
            return Err(corrupt("count larger than the data"));
        }
        Ok(n as usize)
    }

    fn ev(&mut self, t: i64) -> Result<Ev> {
        let ip = self.i()?;
        let principal = self.i()?;
        let byte = *self
            .b
            .get(self.i)
            .ok_or_else(|| corrupt("truncated event"))?;
        self.i += 1;
        let (action, flags) = (byte >> 4, byte & 0x0f);
        let event_id = if flags & 1 != 0 {
            let n = self.count()?;
            let s = self
                .b
                .get(self.i..self.i + n)
                .ok_or_else(|| corrupt("truncated event id"))?;
            self.i += n;
            Some(
                std::str::from_utf8(s)
                    .map_err(|_| corrupt("event id is not UTF-8"))?
                    .into(),
            )
        } else {
            None
        };
        let mut opt = |bit: u8| -> Result<Option<i64>> {
            if flags & bit != 0 {
                Ok(Some(self.i()?))
            } else {
                Ok(None)
            }
        };
        let user_agent = opt(2)?;
        let session = opt(4)?;
        let resource = opt(8)?;
        Ok(Ev {
            t,
            ip,
            principal,
            action,
            event_id,
            user_agent,
            session,
            resource,
        })
    }

    pub fn is_done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn put_ev(buf: &mut Vec<u8>, e: &Ev, t: i64) -> Result<()> {
    put_i(buf, t)?;
    put_i(buf, e.ip)?;
    put_i(buf, e.principal)?;
    let flags = u8::from(e.event_id.is_some())
        | u8::from(e.user_agent.is_some()) << 1
        | u8::from(e.session.is_some()) << 2
        | u8::from(e.resource.is_some()) << 3;
    if e.action > 0x0f {
        return Err(corrupt("action code above 15"));
    }
    buf.push(e.action << 4 | flags);
    if let Some(id) = &e.event_id {
        put(buf, id.len() as u64);
        buf.extend_from_slice(id.as_bytes());
    }
    for v in [e.user_agent, e.session, e.resource].into_iter().flatten() {
        put_i(buf, v)?;
    }
    Ok(())
}

/// A commit's new events, each with its account id, encoded as they are met.
pub(crate) struct RecordWriter {
    count: u64,
    body: Vec<u8>,
}

impl RecordWriter {
    pub fn with_capacity(events: usize) -> Self {
        RecordWriter {
            count: 0,
            body: Vec::with_capacity(events * 12),
        }
    }

    pub fn push(&mut self, account: i64, e: &Ev) -> Result<()> {
        put_i(&mut self.body, account)?;
        put_ev(&mut self.body, e, e.t)?;
        self.count += 1;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Where the record ends now, for [`RecordWriter::truncate`].
    pub fn position(&self) -> (u64, usize) {
        (self.count, self.body.len())
    }

    /// Takes back the events pushed since `position`.
    pub fn truncate(&mut self, (count, bytes): (u64, usize)) {
        self.count = count;
        self.body.truncate(bytes);
    }

    pub fn finish(self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.body.len() + 5);
        put(&mut buf, self.count);
        buf.extend_from_slice(&self.body);
        buf
    }
}

#[cfg(test)]
pub(crate) fn encode_record(events: &[(i64, Ev)]) -> Result<Vec<u8>> {
    let mut w = RecordWriter::with_capacity(events.len());
    for (account, e) in events {
        w.push(*account, e)?;
    }
    Ok(w.finish())
}

pub(crate) fn decode_record(b: &[u8]) -> Result<Vec<(i64, Ev)>> {
    let mut r = Reader::new(b);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let account = r.i()?;
        let t = r.i()?;
        out.push((account, r.ev(t)?));
    }
    if !r.is_done() {
        return Err(corrupt("bytes after a log record"));
    }
    Ok(out)
}

/// One account's events, which must be in key order.
#[cfg(test)]
pub(crate) fn encode_block(events: &[Ev]) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(events.len() * 10 + 2);
    put_block(&mut buf, events)?;
    Ok(buf)
}

fn put_block(buf: &mut Vec<u8>, events: &[Ev]) -> Result<()> {
    put(buf, events.len() as u64);
    let mut prev = 0;
    for e in events {
        put_ev(buf, e, e.t - prev)?;
        prev = e.t;
    }
    Ok(())
}

/// Accounts a block bucket holds at most. A row per account was, after the address lists,
/// the largest cost of writing a run at 500,000 accounts (about a row per four events).
pub(crate) const BLOCK_BUCKET_ACCOUNTS: usize = 64;
/// Bytes of entries a bucket row takes at most, unless one entry alone is larger: SQLite keeps
/// up to 1,002 bytes of a row in a 4 KiB page and moves a longer one to an overflow page,
/// mostly empty (a packed segment's rows measured 48 B/event against 36 live before the cap
/// was enforced before adding an entry rather than after).
pub(crate) const BUCKET_BYTES: usize = 960;

/// One kind of bucket row being built: a run's address lists (keyed by address) or its
/// blocks (keyed by account), keys pushed in ascending order.
pub(crate) trait Bucket: Sized {
    type Key: Copy;
    type Item: ?Sized;
    /// Entries a row holds at most.
    const ENTRIES: usize;
    /// The key column of the row's table.
    const KEY_COLUMN: &'static str;
    fn new(first: Self::Key) -> Self;
    /// Adds an entry. Returns false, adding nothing, when the row holds entries and this one
    /// would take it past [`BUCKET_BYTES`]; an empty row takes an entry of any size.
    fn push(&mut self, key: Self::Key, item: &Self::Item) -> Result<bool>;
    fn key(&self) -> Self::Key;
    fn row(&self) -> &RowBytes;
    fn into_row(self) -> RowBytes;

    fn is_full(&self) -> bool {
        self.row().n >= Self::ENTRIES || self.row().buf.len() >= BUCKET_BYTES
    }

    /// The row's bytes: the count, then the entries.
    fn finish(self) -> Vec<u8> {
        let row = self.into_row();
        let mut out = Vec::with_capacity(row.buf.len() + 2);
        put(&mut out, row.n as u64);
        out.extend_from_slice(&row.buf);
        out
    }
}

/// The entries of a bucket row being built: how many, and their bytes.
#[derive(Default)]
pub(crate) struct RowBytes {
    n: usize,
    buf: Vec<u8>,
}

impl RowBytes {
    /// Appends an entry made of `parts`, unless the row holds entries and it would take the
    /// row past [`BUCKET_BYTES`].
    fn append(&mut self, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.n > 0 && self.buf.len() + len > BUCKET_BYTES {
            return false;
        }
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.n += 1;
        true
    }
}

/// Builds one block-bucket row of a run.
pub(crate) struct BlockBucketWriter {
    key: i64,
    prev: i64,
    row: RowBytes,
    head: Vec<u8>,
    block: Vec<u8>,
}

impl Bucket for BlockBucketWriter {
    type Key = i64;
    type Item = [Ev];
    const ENTRIES: usize = BLOCK_BUCKET_ACCOUNTS;
    const KEY_COLUMN: &'static str = "account";

    fn new(first: i64) -> Self {
        BlockBucketWriter {
            key: first,
            prev: first,
            row: RowBytes::default(),
            head: Vec::new(),
            block: Vec::new(),
        }
    }

    /// An account's block (its events in key order): the difference from the previous
    /// account, the block's length, the block.
    fn push(&mut self, account: i64, events: &[Ev]) -> Result<bool> {
        if account < self.prev || (self.row.n > 0 && account == self.prev) {
            return Err(corrupt("blocks out of order"));
        }
        self.block.clear();
        put_block(&mut self.block, events)?;
        self.head.clear();
        put_i(&mut self.head, account - self.prev)?;
        put(&mut self.head, self.block.len() as u64);
        if !self.row.append(&[&self.head, &self.block]) {
            return Ok(false);
        }
        self.prev = account;
        Ok(true)
    }

    fn key(&self) -> i64 {
        self.key
    }

    fn row(&self) -> &RowBytes {
        &self.row
    }

    fn into_row(self) -> RowBytes {
        self.row
    }
}

/// A block bucket's accounts, ascending, each with its block's bytes (for [`decode_block`]).
pub(crate) fn split_block_bucket(key: i64, b: &[u8]) -> Result<Vec<(i64, &[u8])>> {
    let mut r = Reader::new(b);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    let mut account = key;
    for _ in 0..n {
        let d = r.i()?;
        if !out.is_empty() && d == 0 {
            return Err(corrupt("an account twice in a block bucket"));
        }
        account = account
            .checked_add(d)
            .ok_or_else(|| corrupt("account out of range"))?;
        let len = r.count()?;
        let block =
            r.b.get(r.i..r.i + len)
                .ok_or_else(|| corrupt("truncated block"))?;
        r.i += len;
        out.push((account, block));
    }
    if out.is_empty() {
        return Err(corrupt("an empty block bucket"));
    }
    if !r.is_done() {
        return Err(corrupt("bytes after a block bucket"));
    }
    Ok(out)
}

pub(crate) fn decode_block(b: &[u8]) -> Result<Vec<Ev>> {
    let mut r = Reader::new(b);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    let mut t = 0;
    for _ in 0..n {
        t += r.i()?;
        out.push(r.ev(t)?);
    }
    if !r.is_done() {
        return Err(corrupt("bytes after a block"));
    }
    Ok(out)
}

/// One address's accounts in a run, by account id (ascending).
#[cfg(test)]
pub(crate) fn encode_users(users: &[(i64, Span)]) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(users.len() * 12 + 2);
    put_users(&mut buf, users)?;
    Ok(buf)
}

fn put_users(buf: &mut Vec<u8>, users: &[(i64, Span)]) -> Result<()> {
    put(buf, users.len() as u64);
    let mut prev = 0;
    for (account, s) in users {
        put_i(buf, account - prev)?;
        prev = *account;
        put_i(buf, s.first)?;
        put_i(buf, s.last - s.first)?;
        put(buf, s.n);
    }
    Ok(())
}

impl Reader<'_> {
    fn users(&mut self) -> Result<Vec<(i64, Span)>> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        let mut account = 0;
        for _ in 0..n {
            account += self.i()?;
            let first = self.i()?;
            let last = first + self.i()?;
            let n = self.u()?;
            out.push((account, Span { first, last, n }));
        }
        Ok(out)
    }
}

pub(crate) fn decode_users(b: &[u8]) -> Result<Vec<(i64, Span)>> {
    let mut r = Reader::new(b);
    let out = r.users()?;
    if !r.is_done() {
        return Err(corrupt("bytes after an address list"));
    }
    Ok(out)
}

/// Addresses a bucket row holds at most. A row per address was the largest cost of writing
/// a run at 500,000 accounts (a B-tree insert per address, about one per event); 64 to a row
/// keep a row near SQLite's in-page payload (~1,000 bytes) at the benchmark's density, and a
/// lookup decodes at most 64 lists.
pub(crate) const BUCKET_ADDRESSES: usize = 64;

/// Builds one bucket row of a run's address lists.
pub(crate) struct BucketWriter {
    key: IpKey,
    prev: u128,
    row: RowBytes,
    entry: Vec<u8>,
}

impl Bucket for BucketWriter {
    type Key = IpKey;
    type Item = [(i64, Span)];
    const ENTRIES: usize = BUCKET_ADDRESSES;
    const KEY_COLUMN: &'static str = "ip";

    fn new(first: IpKey) -> Self {
        BucketWriter {
            key: first,
            prev: u128::from_be_bytes(first),
            row: RowBytes::default(),
            entry: Vec::new(),
        }
    }

    /// An address's list: the difference from the previous address, the list.
    fn push(&mut self, ip: IpKey, users: &[(i64, Span)]) -> Result<bool> {
        let v = u128::from_be_bytes(ip);
        if v < self.prev || (self.row.n > 0 && v == self.prev) {
            return Err(corrupt("address lists out of order"));
        }
        self.entry.clear();
        put_u128(&mut self.entry, v - self.prev);
        put_users(&mut self.entry, users)?;
        if !self.row.append(&[&self.entry]) {
            return Ok(false);
        }
        self.prev = v;
        Ok(true)
    }

    fn key(&self) -> IpKey {
        self.key
    }

    fn row(&self) -> &RowBytes {
        &self.row
    }

    fn into_row(self) -> RowBytes {
        self.row
    }
}

/// An address's accounts in a run, by account id, each with its use.
pub(crate) type Users = Vec<(i64, Span)>;

/// Reads a bucket row: its addresses, ascending, each with its list.
pub(crate) fn decode_bucket(key: IpKey, b: &[u8]) -> Result<Vec<(IpKey, Users)>> {
    let mut r = Reader::new(b);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    let mut ip = u128::from_be_bytes(key);
    for _ in 0..n {
        let d = r.u128()?;
        if !out.is_empty() && d == 0 {
            return Err(corrupt("an address twice in a bucket"));
        }
        ip = ip
            .checked_add(d)
            .ok_or_else(|| corrupt("address out of range"))?;
        out.push((ip.to_be_bytes(), r.users()?));
    }
    if out.is_empty() {
        return Err(corrupt("an empty address bucket"));
    }
    if !r.is_done() {
        return Err(corrupt("bytes after an address bucket"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, ip: i64, id: Option<&str>, ua: Option<i64>) -> Ev {
        Ev {
            t,
            ip,
            principal: 3,
            action: 4,
            event_id: id.map(Into::into),
            user_agent: ua,
            session: None,
            resource: ua.map(|x| x + 1),
        }
    }

    #[test]
    fn records_blocks_and_lists_read_back_what_was_written() {
        let evs = vec![
            ev(0, 1, None, None),
            ev(7_862_400_000_000, 300_000, Some("é-1"), Some(9)),
            ev(7_862_400_000_001, 2, Some(""), None),
        ];
        let block = encode_block(&evs).unwrap();
        assert_eq!(decode_block(&block).unwrap(), evs);
        let rec: Vec<(i64, Ev)> = evs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, e)| (i as i64 * 1000, e))
            .collect();
        assert_eq!(decode_record(&encode_record(&rec).unwrap()).unwrap(), rec);
        let users = vec![
            (
                1,
                Span {
                    first: 5,
                    last: 9,
                    n: 2,
                },
            ),
            (70_000, Span::of(0)),
        ];
        assert_eq!(decode_users(&encode_users(&users).unwrap()).unwrap(), users);
        let mut bb = BlockBucketWriter::new(7);
        assert!(bb.push(7, &evs).unwrap());
        assert!(bb.push(300_000, &evs[1..]).unwrap());
        assert!(bb.push(300_000, &evs).is_err(), "an account twice");
        let bucket = bb.finish();
        let split: Vec<(i64, Vec<Ev>)> = split_block_bucket(7, &bucket)
            .unwrap()
            .into_iter()
            .map(|(a, b)| (a, decode_block(b).unwrap()))
            .collect();
        assert_eq!(split, vec![(7, evs.clone()), (300_000, evs[1..].to_vec())]);
        for cut in 0..bucket.len() {
            assert!(
                split_block_bucket(7, &bucket[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let first = [0u8; 16];
        let mut last = [0xffu8; 16];
        last[0] = 0x20;
        let mut b = BucketWriter::new(first);
        assert!(b.push(first, &users).unwrap());
        assert!(b.push(last, &users[1..]).unwrap());
        assert!(b.push(last, &users).is_err(), "an address twice");
        assert_eq!(
            decode_bucket(first, &b.finish()).unwrap(),
            vec![(first, users.clone()), (last, users[1..].to_vec())]
        );
    }

    /// A bucket with entries refuses one that would take it past the byte cap (the caller
    /// starts a new row); an empty bucket takes an entry of any size.
    #[test]
    fn buckets_stay_under_the_in_page_size() {
        let big: Vec<Ev> = (0..200).map(|i| ev(i * 1_000_003, i, None, None)).collect();
        let mut bb = BlockBucketWriter::new(1);
        assert!(bb.push(1, &big[..60]).unwrap());
        assert!(!bb.push(2, &big[..100]).unwrap(), "past the cap");
        assert!(bb.push(2, &big[..5]).unwrap(), "a smaller one still fits");
        let row = bb.finish();
        assert!(row.len() <= BUCKET_BYTES + 2, "{} bytes", row.len());
        assert_eq!(split_block_bucket(1, &row).unwrap().len(), 2);
        let mut alone = BlockBucketWriter::new(5);
        assert!(
            alone.push(5, &big).unwrap(),
            "an empty bucket takes any entry"
        );
        assert!(alone.finish().len() > BUCKET_BYTES);
        let many: Vec<(i64, Span)> = (0..150).map(|a| (a * 1000, Span::of(a * 77_777))).collect();
        let mut b = BucketWriter::new([0; 16]);
        assert!(b.push([0; 16], &many[..40]).unwrap());
        assert!(!b.push([1; 16], &many).unwrap(), "past the cap");
        let row = b.finish();
        assert_eq!(decode_bucket([0; 16], &row).unwrap().len(), 1);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let block = encode_block(&[ev(5, 1, Some("abc"), Some(2))]).unwrap();
        for cut in 0..block.len() {
            assert!(decode_block(&block[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = block.clone();
        longer.push(0);
        assert!(decode_block(&longer).is_err());
        assert!(decode_users(&[0xff; 11]).is_err());
        let mut b = BucketWriter::new([1; 16]);
        b.push([1; 16], &[(3, Span::of(4))]).unwrap();
        b.push([2; 16], &[(3, Span::of(4)), (9, Span::of(1))])
            .unwrap();
        let bucket = b.finish();
        for cut in 0..bucket.len() {
            assert!(
                decode_bucket([1; 16], &bucket[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(
            decode_bucket([0xff; 16], &bucket).is_err(),
            "past the last address"
        );
        assert!(encode_block(&[ev(-1, 1, None, None)]).is_err());
    }
}
