//! The keyed index of screening keys (migration 0012; docs/design/0008-screening-service.md,
//! "Keyed re-screen"): for every customer, the blinded keys through which screening can find
//! a candidate for any of its subjects, so that a list change reads only the customers that
//! share a key with a changed entry instead of every customer.
//!
//! Two tables: `customer_screen_keys (key, customer_id)`, the lookup (primary key in that
//! order, `WITHOUT ROWID` on SQLite: one B-tree, no second index), and
//! `customer_screen_keysets (customer_id, generation, keys)`, one row per keyed customer with
//! its current key set — so an update deletes exactly the old keys (no index on
//! `customer_id` is needed) and writes only what changed, and so "every customer is keyed
//! under the current generation" is one count. The keys are blinded by the caller (a keyed
//! hash); the store sees only integers.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AuditDraft, CustomerDigestRow, Result};

/// A customer's blinded screening keys, written with every version of its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenKeys {
    /// The derivation the keys were made with (the engine's key version and the blinding
    /// key's): stored keys of another generation are stale.
    pub generation: i64,
    /// Sorted, without duplicates.
    pub keys: Vec<i64>,
    /// The birth-year signature of the customer's subjects (`cip_screen::YearSignature`,
    /// bits of blinded years; 0 when unknown), returned with every key it holds.
    pub born: i64,
}

/// One key a customer holds, as a list change's lookup returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyHolder {
    pub customer: Uuid,
    pub key: i64,
    /// The customer's birth-year signature ([`ScreenKeys::born`]).
    pub born: i64,
}

/// The keyed index's reads and the backfill's write. [`crate::Store`] requires it; the
/// keys of a customer write travel in `CustomerRow::screen_keys`.
#[async_trait]
pub trait ScreenKeyStore: Send + Sync {
    /// The customers having any of these blinded keys, in id order, each once.
    async fn customers_with_screen_keys(&self, keys: &[i64]) -> Result<Vec<Uuid>>;
    /// Each key of these a customer holds, with the customer's birth-year signature,
    /// ordered by customer then key: which keys each customer shares (the threshold bound of
    /// a list change needs them).
    async fn screen_key_holders(&self, keys: &[i64]) -> Result<Vec<KeyHolder>>;
    /// How many customers have their keys of `generation` stored.
    async fn count_screen_keyed(&self, generation: i64) -> Result<u64>;
    /// Customers after `after` (id order) without keys of `generation`: written before
    /// migration 0012, written without keys, or keyed under another generation.
    async fn customers_without_screen_keys(
        &self,
        generation: i64,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CustomerDigestRow>>;
    /// Stores keys derived by the backfill, each only if its customer is still at that
    /// version (a newer write brought its own keys), with one audit entry for the read of
    /// their screened data, in one transaction. Returns how many were stored.
    async fn put_screen_keys(
        &self,
        keys: Vec<(Uuid, i64, ScreenKeys)>,
        audit: AuditDraft,
    ) -> Result<u64>;
}

/// A key set as stored in `customer_screen_keysets.keys`: 8 bytes big-endian per key.
pub(crate) fn encode(keys: &[i64]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_be_bytes()).collect()
}

pub(crate) fn decode(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_be_bytes(b)
        })
        .collect()
}

/// A customer's stored key set: generation, birth-year signature, keys.
pub(crate) type StoredKeyset = (i64, i64, Vec<i64>);

/// What changes in `customer_screen_keys` when a customer's stored key set `old` becomes
/// `new`: (keys to delete, keys to insert). Both inputs sorted.
pub(crate) fn changes(old: Option<StoredKeyset>, new: Option<&ScreenKeys>) -> (Vec<i64>, Vec<i64>) {
    match (old, new) {
        (None, None) => (Vec::new(), Vec::new()),
        (None, Some(n)) => (Vec::new(), n.keys.clone()),
        (Some((_, _, o)), None) => (o, Vec::new()),
        (Some((g, b, o)), Some(n)) if g != n.generation || b != n.born => {
            // Another derivation: nothing carries over, even an equal integer. Another
            // birth-year signature (rare: a birth date changed): every row carries it.
            (o, n.keys.clone())
        }
        (Some((_, _, o)), Some(n)) => {
            let gone = o
                .iter()
                .filter(|k| n.keys.binary_search(k).is_err())
                .copied()
                .collect();
            let added = n
                .keys
                .iter()
                .filter(|k| o.binary_search(k).is_err())
                .copied()
                .collect();
            (gone, added)
        }
    }
}

pub(crate) mod sql {
    pub(crate) const GET_KEYSET: &str =
        "SELECT generation, born, keys FROM customer_screen_keysets WHERE customer_id = $1";
    pub(crate) const PUT_KEYSET: &str = "INSERT INTO customer_screen_keysets (customer_id, \
         generation, keys, born) VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO UPDATE \
         SET generation = excluded.generation, keys = excluded.keys, born = excluded.born";
    pub(crate) const DELETE_KEYSET: &str =
        "DELETE FROM customer_screen_keysets WHERE customer_id = $1";
    pub(crate) const COUNT_KEYED: &str =
        "SELECT COUNT(*) AS n FROM customer_screen_keysets WHERE generation = $1";
    pub(crate) const CUSTOMER_VERSION: &str = "SELECT version FROM customers WHERE id = $1";
    /// Customers without keys of a generation, after a cursor (SQLite numbers parameters by
    /// first appearance: ascending here).
    /// Their screening digests (part 2, docs/design/0014), or the document without one.
    pub(crate) const WITHOUT_KEYS: &str = concat!(
        crate::sql::select_customer_digests!(),
        "WHERE c.id > $2 AND NOT EXISTS (SELECT 1 FROM customer_screen_keysets k \
         WHERE k.customer_id = c.id AND k.generation = $3) ORDER BY c.id LIMIT $4"
    );

    // SQLite: one row per statement (in process, prepared once).
    pub(crate) const INSERT_KEY: &str = "INSERT INTO customer_screen_keys (key, customer_id, \
         born) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    pub(crate) const DELETE_KEY: &str =
        "DELETE FROM customer_screen_keys WHERE key = $1 AND customer_id = $2";
    pub(crate) const CUSTOMERS_WITH_KEY: &str =
        "SELECT customer_id FROM customer_screen_keys WHERE key = $1";
    pub(crate) const KEY_HOLDERS: &str =
        "SELECT customer_id, born FROM customer_screen_keys WHERE key = $1";

    // PostgreSQL: whole arrays per statement (one round trip).
    pub(crate) const INSERT_KEYS_MANY: &str = "INSERT INTO customer_screen_keys (key, \
         customer_id, born) SELECT k, $2, $3 FROM UNNEST($1::bigint[]) AS k \
         ON CONFLICT DO NOTHING";
    pub(crate) const DELETE_KEYS_MANY: &str = "DELETE FROM customer_screen_keys \
         WHERE key = ANY($1::bigint[]) AND customer_id = $2";
    pub(crate) const KEY_HOLDERS_MANY: &str = "SELECT key, customer_id, born \
         FROM customer_screen_keys WHERE key = ANY($1::bigint[]) ORDER BY customer_id, key";
    pub(crate) const CUSTOMERS_WITH_KEYS_MANY: &str = "SELECT DISTINCT customer_id \
         FROM customer_screen_keys WHERE key = ANY($1::bigint[]) ORDER BY customer_id";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_touches_only_the_keys_that_changed() {
        let new = ScreenKeys {
            generation: 7,
            keys: vec![1, 3, 5],
            born: 0b100,
        };
        assert_eq!(changes(None, Some(&new)), (vec![], vec![1, 3, 5]));
        assert_eq!(
            changes(Some((7, 0b100, vec![1, 2, 5])), Some(&new)),
            (vec![2], vec![3])
        );
        assert_eq!(
            changes(Some((6, 0b100, vec![1, 2])), Some(&new)),
            (vec![1, 2], vec![1, 3, 5]),
            "another generation is replaced whole"
        );
        assert_eq!(
            changes(Some((7, 0b10, vec![1, 2, 5])), Some(&new)),
            (vec![1, 2, 5], vec![1, 3, 5]),
            "another birth-year signature is written on every row"
        );
        assert_eq!(changes(Some((7, 0, vec![4])), None), (vec![4], vec![]));
        assert_eq!(decode(&encode(&[-3, 0, i64::MAX])), vec![-3, 0, i64::MAX]);
    }
}
