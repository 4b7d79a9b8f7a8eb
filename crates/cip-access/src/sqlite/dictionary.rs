//! A segment writer's dictionaries: account uuids, addresses and sealed free text, each
//! mapped to the segment's small integer ids.
//!
//! Under the write lock (`BEGIN IMMEDIATE`) the maps are made complete for the file — caught
//! up from the rows past the highest id they know, which another process may have added — so
//! a value not in them is new: it gets the next id in memory, and its row is inserted at the
//! end of the commit with the other new values. Addresses, the dictionary with the most new
//! values (2.5 million a segment at the sizes), have no index but their id: their rows
//! append at the table's right edge. Accounts and free text keep a `UNIQUE` index (the
//! account query looks an account up by uuid); their rows go in key order, so a commit walks
//! each index once, left to right, instead of landing at random places in it. A failed
//! transaction drops the whole writer, and with it ids that were never committed.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::FastMap;
use crate::{IpKey, Result, TextVault};

#[derive(Default)]
pub(super) struct Dictionary {
    accounts: FastMap<Uuid, i64>,
    max_account: i64,
    ips: FastMap<IpKey, i64>,
    /// Address by id (ids are dense rowids).
    ip_of: Vec<Option<IpKey>>,
    max_ip: i64,
    /// Plaintext → id, filled as values are met (the table holds only hashes and sealed text).
    strings: FastMap<String, i64>,
    hashes: FastMap<[u8; 16], i64>,
    max_string: i64,
    new_accounts: Vec<(Uuid, i64)>,
    new_ips: Vec<(IpKey, i64)>,
    new_strings: Vec<([u8; 16], Vec<u8>, i64)>,
}

impl Dictionary {
    pub fn load(conn: &Connection) -> Result<Self> {
        let mut d = Dictionary::default();
        d.catch_up(conn)?;
        Ok(d)
    }

    /// Reads the rows past the highest ids known (all of them the first time).
    pub fn catch_up(&mut self, conn: &Connection) -> Result<()> {
        {
            let mut st = conn.prepare_cached("SELECT id, uuid FROM accounts WHERE id > ?1")?;
            let mut rows = st.query([self.max_account])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                self.accounts.insert(r.get(1)?, id);
                self.max_account = self.max_account.max(id);
            }
        }
        {
            let mut st = conn.prepare_cached("SELECT id, ip FROM ips WHERE id > ?1")?;
            let mut rows = st.query([self.max_ip])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let k = crate::stored_ip(r.get(1)?)?;
                self.ips.insert(k, id);
                remember_ip(&mut self.ip_of, id, k);
                self.max_ip = self.max_ip.max(id);
            }
        }
        let mut st = conn.prepare_cached("SELECT id, h FROM strings WHERE id > ?1")?;
        let mut rows = st.query([self.max_string])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let h: Vec<u8> = r.get(1)?;
            if let Ok(h) = <[u8; 16]>::try_from(h.as_slice()) {
                self.hashes.insert(h, id);
            }
            self.max_string = self.max_string.max(id);
        }
        Ok(())
    }

    pub fn account(&mut self, v: Uuid) -> i64 {
        if let Some(id) = self.accounts.get(&v) {
            return *id;
        }
        self.max_account += 1;
        let id = self.max_account;
        self.accounts.insert(v, id);
        self.new_accounts.push((v, id));
        id
    }

    pub fn ip(&mut self, v: IpKey) -> i64 {
        if let Some(id) = self.ips.get(&v) {
            return *id;
        }
        self.max_ip += 1;
        let id = self.max_ip;
        self.ips.insert(v, id);
        remember_ip(&mut self.ip_of, id, v);
        self.new_ips.push((v, id));
        id
    }

    pub fn string(&mut self, vault: &dyn TextVault, v: &str) -> Result<i64> {
        if let Some(id) = self.strings.get(v) {
            return Ok(*id);
        }
        let h = vault.blind(v);
        let id = match self.hashes.get(&h) {
            Some(id) => *id,
            None => {
                self.max_string += 1;
                let id = self.max_string;
                self.hashes.insert(h, id);
                self.new_strings.push((h, vault.seal(v)?, id));
                id
            }
        };
        self.strings.insert(v.to_string(), id);
        Ok(id)
    }

    pub fn ip_of(&self) -> &[Option<IpKey>] {
        &self.ip_of
    }

    /// Inserts the commit's new values: addresses by id, the others in key order.
    pub fn write_new(&mut self, conn: &Connection) -> Result<()> {
        self.new_accounts.sort_unstable();
        let mut st = conn.prepare_cached("INSERT INTO accounts (id, uuid) VALUES (?1, ?2)")?;
        for (uuid, id) in self.new_accounts.drain(..) {
            st.execute(params![id, uuid])?;
        }
        // In id order (as they were met): appended, no index to walk.
        let mut st = conn.prepare_cached("INSERT INTO ips (id, ip) VALUES (?1, ?2)")?;
        for (ip, id) in self.new_ips.drain(..) {
            st.execute(params![id, &ip[..]])?;
        }
        self.new_strings.sort_unstable_by_key(|s| s.0);
        let mut st =
            conn.prepare_cached("INSERT INTO strings (id, h, sealed) VALUES (?1, ?2, ?3)")?;
        for (h, sealed, id) in self.new_strings.drain(..) {
            st.execute(params![id, &h[..], sealed])?;
        }
        Ok(())
    }
}

pub(super) fn remember_ip(ip_of: &mut Vec<Option<IpKey>>, id: i64, k: IpKey) {
    if let Ok(i) = usize::try_from(id)
        && i < 1 << 32
    {
        if ip_of.len() <= i {
            ip_of.resize(i + 1, None);
        }
        ip_of[i] = Some(k);
    }
}

pub(super) fn ip_bytes(ip_of: &[Option<IpKey>], conn: &Connection, id: i64) -> Result<IpKey> {
    if let Some(Some(k)) = usize::try_from(id).ok().and_then(|i| ip_of.get(i)) {
        return Ok(*k);
    }
    crate::stored_ip(
        conn.prepare_cached("SELECT ip FROM ips WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?,
    )
}
