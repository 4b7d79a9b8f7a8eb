//! Field-level encryption of customer documents, and the blind-index terms for lookups.
//!
//! A stored document is the record's JSON with every string leaf sealed on its own
//! (XChaCha20-Poly1305 under the active data key), except an allow-list of leaves that are not
//! personal data on their own and that lists and reports need in clear (kinds, country codes,
//! card brand). The default is to encrypt: a new field is protected unless someone decides
//! otherwise here. Each ciphertext's associated data is `customer/<id><json-pointer>`, so a
//! ciphertext moved to another record or field does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use cip_core::model::*;
use cip_store::IndexTerm;
use cip_vault::{BlindIndexKind, Keyring, RecordSealer, VaultError};
use serde_json::Value;
use uuid::Uuid;

use super::dto::*;

/// Fields sealed one by one with their own nonce and header (format 1, still read).
const SEALED_PREFIX: &str = "enc:";
/// Fields sealed with the record's sealer: `e2:<field index>:<base64 ciphertext‖tag>`.
const RECORD_SEALED_PREFIX: &str = "e2:";
/// Top-level member naming the record sealer: `2.<key id>.<base64 nonce prefix>`.
const SEAL_HEADER: &str = "_seal";

/// Leaf keys kept in clear. Everything else that is a string is sealed.
const CLEAR_KEYS: &[&str] = &[
    "kind",
    "type",
    "country",
    "issuing_country",
    "place_of_organization",
    "brand",
    "chain",
    "id",
];

/// Seals every personal-data leaf of `doc` in place. Returns the JSON bytes to store.
pub fn seal_document(
    keyring: &Keyring,
    id: Uuid,
    doc: &CustomerDoc,
) -> Result<Vec<u8>, VaultError> {
    let mut value = serde_json::to_value(doc).map_err(|_| VaultError::Malformed("document"))?;
    let sealer = keyring.record_sealer()?;
    let mut ctx = SealCtx {
        sealer: &sealer,
        aad: format!("customer/{id}"),
        next: 0,
    };
    seal_value(&mut ctx, &mut value, None)?;
    if let Value::Object(map) = &mut value {
        map.insert(
            SEAL_HEADER.to_string(),
            Value::String(format!(
                "2.{}.{}",
                sealer.key_id(),
                STANDARD_NO_PAD.encode(sealer.prefix())
            )),
        );
    }
    serde_json::to_vec(&value).map_err(|_| VaultError::Malformed("document"))
}

struct SealCtx<'a> {
    sealer: &'a RecordSealer,
    /// `customer/<id>` followed by the JSON pointer of the current leaf.
    aad: String,
    next: u64,
}

fn seal_value(ctx: &mut SealCtx<'_>, v: &mut Value, key: Option<&str>) -> Result<(), VaultError> {
    match v {
        Value::String(s) => {
            // Strings in arrays (emails, phones, lines, citizenships…) are sealed unless the
            // array itself is a clear key's list.
            let clear = key.is_some_and(|k| CLEAR_KEYS.contains(&k));
            if !clear {
                let index = ctx.next;
                ctx.next += 1;
                let sealed = ctx.sealer.seal(index, ctx.aad.as_bytes(), s.as_bytes())?;
                *s = format!(
                    "{RECORD_SEALED_PREFIX}{index}:{}",
                    STANDARD_NO_PAD.encode(sealed)
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = ctx.aad.len();
                ctx.aad.push('/');
                ctx.aad.push_str(&i.to_string());
                // Citizenships are country codes, but a list of them says more about a person
                // than one address country, so they stay sealed.
                seal_value(ctx, item, None)?;
                ctx.aad.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = ctx.aad.len();
                ctx.aad.push('/');
                ctx.aad.push_str(k);
                seal_value(ctx, item, Some(k))?;
                ctx.aad.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn record_opener(keyring: &Keyring, header: &str) -> Result<RecordSealer, VaultError> {
    let bad = || VaultError::Malformed("seal header");
    let mut parts = header.splitn(3, '.');
    if parts.next() != Some("2") {
        return Err(bad());
    }
    let key_id: u32 = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
    let prefix: [u8; 16] = parts
        .next()
        .and_then(|p| STANDARD_NO_PAD.decode(p).ok())
        .and_then(|p| p.try_into().ok())
        .ok_or_else(bad)?;
    keyring.record_opener(key_id, prefix)
}

/// Which parts of a record a reader asked for (top-level sections of the document).
#[derive(Debug, Clone)]
pub struct Projection {
    pub sections: Option<Vec<String>>,
}

impl Projection {
    pub fn all() -> Self {
        Projection { sections: None }
    }
    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == section))
    }
}

/// Opens a stored document. Sections the projection leaves out are dropped unopened.
/// Returns the document and the fields that were decrypted (JSON pointers with array indices
/// folded to `*`), which is what the audit entry of the read records.
pub fn open_document(
    keyring: &Keyring,
    id: Uuid,
    stored: &[u8],
    projection: &Projection,
) -> Result<(Value, Vec<String>), VaultError> {
    let mut value: Value =
        serde_json::from_slice(stored).map_err(|_| VaultError::Malformed("stored document"))?;
    let mut opener = None;
    if let Value::Object(map) = &mut value {
        if let Some(Value::String(header)) = map.remove(SEAL_HEADER) {
            opener = Some(record_opener(keyring, &header)?);
        }
        map.retain(|k, _| k == "kind" || projection.wants(k));
    }
    let mut ctx = OpenCtx {
        keyring,
        opener: opener.as_ref(),
        aad: format!("customer/{id}"),
        prefix_len: format!("customer/{id}").len(),
        fields: std::collections::BTreeSet::new(),
    };
    open_value(&mut ctx, &mut value)?;
    Ok((value, ctx.fields.into_iter().collect()))
}

struct OpenCtx<'a> {
    keyring: &'a Keyring,
    opener: Option<&'a RecordSealer>,
    aad: String,
    prefix_len: usize,
    fields: std::collections::BTreeSet<String>,
}

fn open_value(ctx: &mut OpenCtx<'_>, v: &mut Value) -> Result<(), VaultError> {
    match v {
        Value::String(s) => {
            let plain = if let Some(rest) = s.strip_prefix(RECORD_SEALED_PREFIX) {
                let (index, b64) = rest
                    .split_once(':')
                    .ok_or(VaultError::Malformed("sealed field"))?;
                let index: u64 = index
                    .parse()
                    .map_err(|_| VaultError::Malformed("sealed field"))?;
                let sealed = STANDARD_NO_PAD
                    .decode(b64)
                    .map_err(|_| VaultError::Malformed("sealed field"))?;
                let opener = ctx.opener.ok_or(VaultError::Malformed("seal header"))?;
                let bytes = opener.open(index, ctx.aad.as_bytes(), &sealed)?;
                Some(
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| VaultError::Malformed("utf-8"))?,
                )
            } else if let Some(b64) = s.strip_prefix(SEALED_PREFIX) {
                let sealed = STANDARD_NO_PAD
                    .decode(b64)
                    .map_err(|_| VaultError::Malformed("sealed field"))?;
                Some(
                    ctx.keyring
                        .open_str(ctx.aad.as_bytes(), &sealed)?
                        .to_string(),
                )
            } else {
                None
            };
            if let Some(plain) = plain {
                *s = plain;
                let pointer = &ctx.aad[ctx.prefix_len..];
                ctx.fields.insert(fold_indices(pointer));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = ctx.aad.len();
                ctx.aad.push('/');
                ctx.aad.push_str(&i.to_string());
                open_value(ctx, item)?;
                ctx.aad.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = ctx.aad.len();
                ctx.aad.push('/');
                ctx.aad.push_str(k);
                open_value(ctx, item)?;
                ctx.aad.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn fold_indices(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Re-seals a stored document under the keyring's active key (key rotation).
pub fn reseal_document(keyring: &Keyring, id: Uuid, stored: &[u8]) -> Result<Vec<u8>, VaultError> {
    let (value, _) = open_document(keyring, id, stored, &Projection::all())?;
    let doc: CustomerDoc =
        serde_json::from_value(value).map_err(|_| VaultError::Malformed("stored document"))?;
    seal_document(keyring, id, &doc)
}

/// The blind-index terms of a record: every value an exact lookup may ask for, normalised
/// the same way the lookup normalises its query. Beneficial owners' values point to the
/// customer too.
pub fn index_terms(keyring: &Keyring, r: &CustomerRecord) -> Vec<IndexTerm> {
    let mut terms = std::collections::BTreeSet::new();
    let mut add = |kind: BlindIndexKind, value: &str| {
        terms.insert((kind.as_str().to_string(), keyring.blind_index(kind, value)));
    };
    if let Some(x) = &r.external_id {
        add(BlindIndexKind::ExternalId, x.as_str());
    }
    let identities =
        std::iter::once(&r.identity).chain(r.beneficial_owners.iter().map(|b| &b.identity));
    for ident in identities {
        for e in &ident.emails {
            add(BlindIndexKind::Email, &e.index_key());
        }
        for ph in &ident.phones {
            add(BlindIndexKind::Phone, ph.as_str());
        }
        for n in &ident.national_ids {
            add(
                BlindIndexKind::NationalId,
                &national_id_key(n.issuing_country.as_str(), n.number.as_str()),
            );
        }
    }
    for pm in &r.payment_methods {
        match &pm.instrument {
            PaymentInstrument::Card(c) => {
                if let Some(f) = &c.fingerprint {
                    add(BlindIndexKind::CardFingerprint, f);
                }
            }
            PaymentInstrument::BankAccount(b) => {
                if let Some(iban) = &b.iban {
                    add(BlindIndexKind::BankAccount, iban.as_str());
                }
            }
            PaymentInstrument::CryptoWallet(w) => {
                add(BlindIndexKind::WalletAddress, &w.index_key())
            }
            PaymentInstrument::Other { .. } => {}
        }
    }
    terms
        .into_iter()
        .map(|(kind, hash)| IndexTerm { kind, hash })
        .collect()
}

pub fn national_id_key(country: &str, number: &str) -> String {
    format!("{country}:{number}")
}

/// Domain → the document shape that is sealed and stored (and returned on reads).
pub fn to_doc(r: &CustomerRecord) -> CustomerDoc {
    CustomerDoc {
        kind: r.kind.as_str().into(),
        external_id: r.external_id.as_ref().map(|x| x.as_str().into()),
        identity: identity_dto(&r.identity),
        entity: r.entity.as_ref().map(|e| EntityDto {
            place_of_organization: e.place_of_organization.map(|c| c.as_str().into()),
            organization_subdivision: e
                .organization_subdivision
                .as_ref()
                .map(|s| s.as_str().into()),
            entity_type: e.entity_type.as_ref().map(|t| t.as_str().into()),
        }),
        payment_methods: r.payment_methods.iter().map(payment_dto).collect(),
        beneficial_owners: r
            .beneficial_owners
            .iter()
            .map(|b| BeneficialOwnerOut {
                id: b.id,
                identity: identity_dto(&b.identity),
                ownership_percent: b.ownership.map(|o| o.as_f64()),
                control_role: b.control_role.as_ref().map(|c| c.as_str().into()),
            })
            .collect(),
    }
}

fn identity_dto(i: &Identity) -> IdentityDto {
    IdentityDto {
        names: i
            .names
            .iter()
            .map(|n| NameDto {
                kind: match n.kind {
                    NameKind::Legal => "legal",
                    NameKind::Other => "other",
                    NameKind::Former => "former",
                }
                .into(),
                full: n.full.as_str().into(),
            })
            .collect(),
        birth_date: i.birth_date.map(|d| d.to_string()),
        citizenships: i.citizenships.iter().map(|c| c.as_str().into()).collect(),
        national_ids: i
            .national_ids
            .iter()
            .map(|n| NationalIdDto {
                id_type: match n.id_type {
                    NationalIdType::Passport => "passport",
                    NationalIdType::NationalId => "national_id",
                    NationalIdType::TaxId => "tax_id",
                    NationalIdType::DriversLicense => "drivers_license",
                    NationalIdType::ResidencePermit => "residence_permit",
                    NationalIdType::Registration => "registration",
                    NationalIdType::Other => "other",
                }
                .into(),
                number: n.number.as_str().into(),
                issuing_country: n.issuing_country.as_str().into(),
            })
            .collect(),
        addresses: i
            .addresses
            .iter()
            .map(|a| AddressDto {
                kind: match a.kind {
                    AddressKind::Residential => "residential",
                    AddressKind::Business => "business",
                    AddressKind::Mailing => "mailing",
                    AddressKind::Registered => "registered",
                }
                .into(),
                lines: a.lines.iter().map(|l| l.as_str().into()).collect(),
                city: a.city.as_ref().map(|c| c.as_str().into()),
                postal_code: a.postal_code.as_ref().map(|c| c.as_str().into()),
                subdivision: a.subdivision.as_ref().map(|s| s.as_str().into()),
                country: a.country.as_str().into(),
            })
            .collect(),
        emails: i.emails.iter().map(|e| e.as_str().into()).collect(),
        phones: i.phones.iter().map(|p| p.as_str().into()).collect(),
    }
}

fn payment_dto(pm: &PaymentMethod) -> PaymentMethodOut {
    let mut out = PaymentMethodOut {
        method_type: String::new(),
        card: None,
        bank_account: None,
        crypto_wallet: None,
        other: None,
        source: pm.source.as_ref().map(|s| s.as_str().into()),
        external_customer_id: pm.external_customer_id.as_ref().map(|s| s.as_str().into()),
        transaction_ids: pm
            .transaction_ids
            .iter()
            .map(|t| t.as_str().into())
            .collect(),
    };
    match &pm.instrument {
        PaymentInstrument::Card(c) => {
            out.method_type = "card".into();
            out.card = Some(CardOut {
                brand: c.brand.as_str().into(),
                bin: c.bin.as_str().into(),
                last4: c.last4.as_str().into(),
                issuing_country: c.issuing_country.map(|x| x.as_str().into()),
                fingerprint: c.fingerprint.clone(),
            });
        }
        PaymentInstrument::BankAccount(b) => {
            out.method_type = "bank_account".into();
            out.bank_account = Some(BankAccountDto {
                institution: b.institution.as_ref().map(|x| x.as_str().into()),
                iban: b.iban.as_ref().map(|x| x.as_str().into()),
                account_reference: b.account_reference.as_ref().map(|x| x.as_str().into()),
                country: b.country.map(|x| x.as_str().into()),
            });
        }
        PaymentInstrument::CryptoWallet(w) => {
            out.method_type = "crypto_wallet".into();
            out.crypto_wallet = Some(CryptoWalletDto {
                chain: w.chain().as_str().into(),
                address: w.as_str().into(),
            });
        }
        PaymentInstrument::Other { description } => {
            out.method_type = "other".into();
            out.other = Some(OtherInstrumentDto {
                description: description.as_str().into(),
            });
        }
    }
    out
}

/// The country the clear `country` column holds: the place of organisation for entities,
/// else the first address's country.
pub fn primary_country(r: &CustomerRecord) -> Option<String> {
    r.entity
        .as_ref()
        .and_then(|e| e.place_of_organization)
        .or_else(|| r.identity.addresses.first().map(|a| a.country))
        .map(|c| c.as_str().to_string())
}

/// The leaf fields of a document as folded JSON pointers (`/identity/emails/*`): what an
/// audit entry of a change lists (the values themselves are never in the audit trail).
pub fn field_pointers(doc: &CustomerDoc) -> Vec<String> {
    fn walk(v: &Value, pointer: &mut String, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(k);
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for item in items {
                    let len = pointer.len();
                    pointer.push_str("/*");
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            _ => {
                out.insert(pointer.clone());
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    if let Ok(v) = serde_json::to_value(doc) {
        walk(&v, &mut String::new(), &mut out);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cip_vault::{DataKey, IndexRootKey};

    fn keyring() -> Keyring {
        Keyring::new(
            DataKey::generate(1).unwrap(),
            vec![],
            IndexRootKey::from_bytes([9; 32]),
        )
    }

    fn doc() -> CustomerDoc {
        serde_json::from_value(serde_json::json!({
            "kind": "individual",
            "identity": {
                "names": [{"full": "Anna Karenina"}],
                "birth_date": "1990-02-03",
                "citizenships": ["RU"],
                "emails": ["anna@example.org", "a.k@example.org"],
                "phones": ["+14155552671"]
            }
        }))
        .unwrap()
    }

    #[test]
    fn round_trip_seals_every_personal_leaf_and_binds_places() {
        let k = keyring();
        let id = Uuid::now_v7();
        let stored = seal_document(&k, id, &doc()).unwrap();
        let text = String::from_utf8(stored.clone()).unwrap();
        for plain in [
            "Anna Karenina",
            "1990-02-03",
            "anna@example.org",
            "+14155552671",
        ] {
            assert!(!text.contains(plain), "{plain} stored in clear");
        }
        let (value, fields) = open_document(&k, id, &stored, &Projection::all()).unwrap();
        assert!(
            value.get(SEAL_HEADER).is_none(),
            "the header is not part of the record"
        );
        let back: CustomerDoc = serde_json::from_value(value).unwrap();
        assert_eq!(back, doc());
        assert!(
            fields.contains(&"/identity/emails/*".to_string()),
            "{fields:?}"
        );

        // Another record id, or swapping two sealed fields, does not open.
        assert!(open_document(&k, Uuid::now_v7(), &stored, &Projection::all()).is_err());
        let mut v: Value = serde_json::from_slice(&stored).unwrap();
        let emails = v["identity"]["emails"].as_array_mut().unwrap();
        emails.swap(0, 1);
        let swapped = serde_json::to_vec(&v).unwrap();
        assert!(open_document(&k, id, &swapped, &Projection::all()).is_err());
        // A forged header (another nonce prefix) does not open either.
        let mut v: Value = serde_json::from_slice(&stored).unwrap();
        v[SEAL_HEADER] = Value::String(format!("2.1.{}", STANDARD_NO_PAD.encode([0u8; 16])));
        let forged = serde_json::to_vec(&v).unwrap();
        assert!(open_document(&k, id, &forged, &Projection::all()).is_err());
    }

    #[test]
    fn format_one_fields_still_open() {
        let k = keyring();
        let id = Uuid::now_v7();
        let aad = format!("customer/{id}/identity/emails/0");
        let old = k.seal_str(aad.as_bytes(), "old@example.org").unwrap();
        let stored = serde_json::to_vec(&serde_json::json!({
            "kind": "individual",
            "identity": {
                "names": [],
                "emails": [format!("{SEALED_PREFIX}{}", STANDARD_NO_PAD.encode(old))]
            }
        }))
        .unwrap();
        let (value, _) = open_document(&k, id, &stored, &Projection::all()).unwrap();
        assert_eq!(value["identity"]["emails"][0], "old@example.org");
    }
}
