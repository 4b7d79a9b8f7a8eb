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
use cip_store::{CustomerDigestRow, DigestPart, SealedDigest};
use cip_vault::{Keyring, VaultError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dto::CustomerDoc;
use super::seal;

/// The format of the sealed bytes; a reader refuses another. Format 1 was the single
/// ciphertext of migration 0007; format 2 seals each part on its own.
const FORMAT: u8 = 2;

/// A record's digest: the part policy evaluation reads and the part screening reads. Each
/// part is sealed and stored on its own (table `customer_digests`), so a bulk pass reads and
/// opens only the part it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub policy: PolicyPart,
    pub screening: ScreeningPart,
}

/// What policy evaluation needs of a record: codes only, ~150 bytes for a customer with four
/// owners. The facts carry no JSON pointer (the pass needs the status, not the reasons) and each
/// person's are sorted and deduplicated — the determination's status and whether it has
/// conflicts depend only on which (kind, country) facts there are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyPart {
    /// `individual` or `entity`.
    pub kind: String,
    /// Whether any means of payment is a crypto wallet (a policy risk factor).
    pub crypto_payment: bool,
    /// Determination facts of the customer.
    pub facts: Vec<Fact>,
    /// Determination facts of each beneficial owner, in record order.
    pub owners: Vec<Owner>,
}

/// What screening needs of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreeningPart {
    /// Screening queries: the customer first, then each beneficial owner in record order.
    pub queries: Vec<Query>,
}

/// One determination fact: its kind ([`kind_code`]) and country (ISO 3166-1 alpha-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fact {
    pub kind: u8,
    pub country: [u8; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub id: Uuid,
    pub facts: Vec<Fact>,
}

/// The stored code of an evidence kind. Stored in digests: never renumber, only add.
pub fn kind_code(k: EvidenceKind) -> u8 {
    match k {
        EvidenceKind::DeclaredCitizenship => 1,
        EvidenceKind::UsResidencePermit => 2,
        EvidenceKind::PlaceOfOrganization => 3,
        EvidenceKind::DocumentNationality => 4,
        EvidenceKind::AddressCountry => 5,
        EvidenceKind::PhoneCountry => 6,
        EvidenceKind::PaymentCountry => 7,
        EvidenceKind::IpGeolocation => 8,
    }
}

fn kind_of_code(c: u8) -> Option<EvidenceKind> {
    EvidenceKind::ALL.into_iter().find(|k| kind_code(*k) == c)
}

/// A person's facts as stored: codes, sorted, each (kind, country) once.
fn facts(evidence: &[Evidence]) -> Vec<Fact> {
    let mut out: Vec<Fact> = evidence
        .iter()
        .filter_map(|e| {
            let b = e.country.as_str().as_bytes();
            Some(Fact {
                kind: kind_code(e.kind),
                country: [*b.first()?, *b.get(1)?],
            })
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Where the evidence rebuilt from a digest says it comes from (the digest keeps no pointers).
pub const DIGEST_SOURCE: &str = "record digest";

fn evidence(facts: &[Fact]) -> Vec<Evidence> {
    facts
        .iter()
        .filter_map(|f| {
            Some(Evidence::new(
                kind_of_code(f.kind)?,
                CountryCode::parse(std::str::from_utf8(&f.country).ok()?).ok()?,
                DIGEST_SOURCE,
            ))
        })
        .collect()
}

impl Digest {
    /// The digest of a plaintext record.
    pub fn of(doc: &CustomerDoc) -> Digest {
        let (customer, owners) = crate::api::determination::evidence_of(doc);
        Digest {
            policy: PolicyPart {
                kind: doc.kind.clone(),
                crypto_payment: doc
                    .payment_methods
                    .iter()
                    .any(|p| p.crypto_wallet.is_some()),
                facts: facts(&customer),
                owners: owners
                    .iter()
                    .map(|(id, ev)| Owner {
                        id: *id,
                        facts: facts(ev),
                    })
                    .collect(),
            },
            screening: ScreeningPart {
                queries: crate::reviews::subjects(doc)
                    .into_iter()
                    .map(|s| s.query)
                    .collect(),
            },
        }
    }
}

impl PolicyPart {
    /// The determination evidence of the customer and of each beneficial owner: the (kind,
    /// country) facts `api::determination::evidence_of` gives for the document, each once,
    /// without their pointers.
    pub fn evidence(&self) -> (Vec<Evidence>, Vec<(Uuid, Vec<Evidence>)>) {
        (
            evidence(&self.facts),
            self.owners
                .iter()
                .map(|o| (o.id, evidence(&o.facts)))
                .collect(),
        )
    }
}

impl ScreeningPart {
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

fn aad(id: Uuid, part: DigestPart, version: i64) -> String {
    let name = match part {
        DigestPart::Policy => "policy",
        DigestPart::Screening => "screening",
    };
    format!("customer/{id}#digest.{name}@{version}")
}

fn seal_part<T: Serialize>(
    keyring: &Keyring,
    id: Uuid,
    part: DigestPart,
    version: i64,
    value: &T,
) -> Result<Vec<u8>, VaultError> {
    let mut plain = vec![FORMAT];
    plain.extend(postcard::to_allocvec(value).map_err(|_| VaultError::Malformed("digest"))?);
    keyring.seal(aad(id, part, version).as_bytes(), &plain)
}

fn open_part<T: serde::de::DeserializeOwned>(
    keyring: &Keyring,
    id: Uuid,
    part: DigestPart,
    version: i64,
    sealed: &[u8],
) -> Result<T, VaultError> {
    let plain = keyring.open(aad(id, part, version).as_bytes(), sealed)?;
    match plain.split_first() {
        Some((&FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|_| VaultError::Malformed("digest"))
        }
        _ => Err(VaultError::Malformed("digest format")),
    }
}

/// Seals both parts of a digest for record `id` at `version` under the keyring's active key.
/// Each part's associated data names the record, the part and the version: a part moved to
/// another record, put in the other part's place, or kept from an older version does not open.
pub fn seal(
    keyring: &Keyring,
    id: Uuid,
    version: i64,
    digest: &Digest,
) -> Result<SealedDigest, VaultError> {
    Ok(SealedDigest {
        policy: seal_part(keyring, id, DigestPart::Policy, version, &digest.policy)?,
        screening: seal_part(
            keyring,
            id,
            DigestPart::Screening,
            version,
            &digest.screening,
        )?,
    })
}

/// Opens both parts of a sealed digest of record `id` at `version`.
pub fn open(
    keyring: &Keyring,
    id: Uuid,
    version: i64,
    sealed: &SealedDigest,
) -> Result<Digest, VaultError> {
    Ok(Digest {
        policy: open_part(keyring, id, DigestPart::Policy, version, &sealed.policy)?,
        screening: open_part(
            keyring,
            id,
            DigestPart::Screening,
            version,
            &sealed.screening,
        )?,
    })
}

/// The digest of a record without one (written before digests had a table of their own),
/// derived from its document.
fn of_document(keyring: &Keyring, row: &CustomerDigestRow) -> Result<Digest, String> {
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

/// The policy part of a row scanned with [`DigestPart::Policy`]: opened from the digest, or
/// derived from the document for a record without one.
pub fn policy_of_row(keyring: &Keyring, row: &CustomerDigestRow) -> Result<PolicyPart, String> {
    match &row.digest {
        Some(sealed) => open_part(keyring, row.id, DigestPart::Policy, row.version, sealed)
            .map_err(|e| format!("opening the digest of customer {}: {e}", row.id)),
        None => Ok(of_document(keyring, row)?.policy),
    }
}

/// The screening part of a row scanned with [`DigestPart::Screening`]: opened from the digest,
/// or derived from the document for a record without one.
pub fn screening_of_row(
    keyring: &Keyring,
    row: &CustomerDigestRow,
) -> Result<ScreeningPart, String> {
    match &row.digest {
        Some(sealed) => open_part(keyring, row.id, DigestPart::Screening, row.version, sealed)
            .map_err(|e| format!("opening the digest of customer {}: {e}", row.id)),
        None => Ok(of_document(keyring, row)?.screening),
    }
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
