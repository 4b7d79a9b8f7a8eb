//! The record digest: what the bulk jobs need of a customer, computed from the plaintext when
//! the record is written and sealed as one ciphertext beside the document
//! (docs/design/0014-record-digest.md).
//!
//! Policy re-evaluation and re-screening after a list change read every customer. Opening the
//! document decrypts every leaf (dozens of AEAD calls, base64, a JSON tree) and then parses it
//! again into a `CustomerDoc`, only to derive a handful of country codes and the screened
//! names. The digest holds exactly that derived part — the determination facts (kinds,
//! country codes, JSON pointers) and the screening queries (names, birth date, citizenships,
//! identifiers) — encoded with postcard and sealed once. It is personal data (names,
//! identifiers), so it is sealed under the same keyring as the document and its associated
//! data binds it to the customer and the record version: a digest copied to another record,
//! or an old digest put back after an update, does not open.
//!
//! The document stays the record; the digest is derived and is rewritten with every write of
//! the document (create, update, key rotation). A record written before the digest existed
//! has none, and readers fall back to the document ([`of_row`]).

use cip_core::determination::{Evidence, EvidenceKind};
use cip_core::parse::CountryCode;
use cip_screen::Query;
use cip_store::CustomerDigestRow;
use cip_vault::{Keyring, VaultError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dto::CustomerDoc;
use super::seal;

/// The format of the sealed bytes; a reader refuses another.
const FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// `individual` or `entity`.
    pub kind: String,
    /// Whether any means of payment is a crypto wallet (a policy risk factor).
    pub crypto_payment: bool,
    /// Determination facts of the customer.
    pub facts: Vec<Fact>,
    /// Determination facts of each beneficial owner, in record order.
    pub owners: Vec<Owner>,
    /// Screening queries: the customer first, then each beneficial owner in record order.
    pub queries: Vec<Query>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub kind: String,
    pub country: String,
    /// JSON pointer of the fact in the record.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub id: Uuid,
    pub facts: Vec<Fact>,
}

fn fact(e: &Evidence) -> Fact {
    Fact {
        kind: e.kind.as_str().to_string(),
        country: e.country.as_str().to_string(),
        source: e.source.clone(),
    }
}

fn evidence(facts: &[Fact]) -> Vec<Evidence> {
    facts
        .iter()
        .filter_map(|f| {
            Some(Evidence::new(
                EvidenceKind::parse(&f.kind)?,
                CountryCode::parse(&f.country).ok()?,
                f.source.clone(),
            ))
        })
        .collect()
}

impl Digest {
    /// The digest of a plaintext record.
    pub fn of(doc: &CustomerDoc) -> Digest {
        let (customer, owners) = crate::api::determination::evidence_of(doc);
        Digest {
            kind: doc.kind.clone(),
            crypto_payment: doc
                .payment_methods
                .iter()
                .any(|p| p.crypto_wallet.is_some()),
            facts: customer.iter().map(fact).collect(),
            owners: owners
                .iter()
                .map(|(id, ev)| Owner {
                    id: *id,
                    facts: ev.iter().map(fact).collect(),
                })
                .collect(),
            queries: crate::reviews::subjects(doc)
                .into_iter()
                .map(|s| s.query)
                .collect(),
        }
    }

    /// The determination evidence of the customer and of each beneficial owner, as
    /// `api::determination::evidence_of` gives it for the document.
    pub fn evidence(&self) -> (Vec<Evidence>, Vec<(Uuid, Vec<Evidence>)>) {
        (
            evidence(&self.facts),
            self.owners
                .iter()
                .map(|o| (o.id, evidence(&o.facts)))
                .collect(),
        )
    }

    /// The screened subjects, as `reviews::subjects` gives them for the document.
    pub fn subjects(&self) -> Vec<crate::reviews::Subject> {
        self.queries
            .iter()
            .enumerate()
            .map(|(i, q)| crate::reviews::Subject {
                key: if i == 0 {
                    "customer".into()
                } else {
                    format!("owner/{}", i - 1)
                },
                query: q.clone(),
            })
            .collect()
    }
}

fn aad(id: Uuid, version: i64) -> String {
    format!("customer/{id}#digest@{version}")
}

/// Seals a digest for record `id` at `version` under the keyring's active key.
pub fn seal(
    keyring: &Keyring,
    id: Uuid,
    version: i64,
    digest: &Digest,
) -> Result<Vec<u8>, VaultError> {
    let mut plain = vec![FORMAT];
    plain.extend(postcard::to_allocvec(digest).map_err(|_| VaultError::Malformed("digest"))?);
    keyring.seal(aad(id, version).as_bytes(), &plain)
}

/// Opens a sealed digest of record `id` at `version`.
pub fn open(
    keyring: &Keyring,
    id: Uuid,
    version: i64,
    sealed: &[u8],
) -> Result<Digest, VaultError> {
    let plain = keyring.open(aad(id, version).as_bytes(), sealed)?;
    match plain.split_first() {
        Some((&FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|_| VaultError::Malformed("digest"))
        }
        _ => Err(VaultError::Malformed("digest format")),
    }
}

/// The digest of a scanned row: opened from the digest, or derived from the document for a
/// record written before digests existed.
pub fn of_row(keyring: &Keyring, row: &CustomerDigestRow) -> Result<Digest, String> {
    if let Some(sealed) = &row.digest {
        return open(keyring, row.id, row.version, sealed)
            .map_err(|e| format!("opening the digest of customer {}: {e}", row.id));
    }
    let document = row
        .document
        .as_deref()
        .ok_or_else(|| format!("customer {} has neither digest nor document", row.id))?;
    let (value, _) = seal::open_document(keyring, row.id, document, &seal::Projection::all())
        .map_err(|e| format!("opening customer {}: {e}", row.id))?;
    let doc: CustomerDoc =
        serde_json::from_value(value).map_err(|e| format!("customer {} document: {e}", row.id))?;
    Ok(Digest::of(&doc))
}

/// Maps `f` over `items` on two threads (the machine's cores; more would only queue behind the
/// server's own work), keeping their order. For the CPU part of a bulk pass over a page.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, String> + Sync,
) -> Result<Vec<R>, String> {
    let one = |items: &[T]| -> Result<Vec<R>, String> { items.iter().map(&f).collect() };
    if items.len() < 64 {
        return one(items);
    }
    let (a, b) = items.split_at(items.len() / 2);
    let (ra, rb) = std::thread::scope(|scope| {
        let h = scope.spawn(|| one(a));
        let rb = one(b);
        (h.join(), rb)
    });
    let mut out = ra.map_err(|_| "bulk pass thread panicked".to_string())??;
    out.extend(rb?);
    Ok(out)
}
