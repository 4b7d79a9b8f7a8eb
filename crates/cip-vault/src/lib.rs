//! `cip-vault`: the cryptography of cip's records — field encryption under rotating data keys,
//! keys wrapped under a master key, keyed blind indexes for exact lookups, card fingerprints,
//! and the hash chain and signed checkpoints of the audit trail.
//!
//! Invariants: no IO, no database, no HTTP, no async runtime. Key material lives in
//! `Zeroizing` buffers and never appears in `Debug` output or error messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the master key does not match the one this data was protected with")]
    WrongMasterKey,
    #[error("no data key with id {0} is loaded; was the key material deleted?")]
    UnknownKeyId(u32),
    #[error("decryption failed: the ciphertext was altered or belongs to another field")]
    Decrypt,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("signature does not verify")]
    BadSignature,
    #[error("the operating system's random number generator failed")]
    Random,
}

fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| VaultError::Random)?;
    Ok(b)
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <HmacSha256 as hmac::KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// A fresh webhook signing secret: `whsec_` + 32 random bytes in URL-safe base64.
pub fn new_webhook_secret() -> Result<String, VaultError> {
    use base64::Engine;
    let bytes = random::<32>()?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The signature of a webhook delivery: lowercase hex of HMAC-SHA256 under the endpoint's
/// secret over `"<unix seconds>.<body>"` (the timestamp is signed so a captured delivery
/// cannot be replayed later with a fresh header). Sent as `Cip-Signature: t=<t>,v1=<hex>`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]);
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

fn aead(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// Seals `plain` under `key`: nonce ‖ ciphertext ‖ tag.
fn seal_raw(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    let nonce_bytes = random::<24>()?;
    let nonce = XNonce::from(nonce_bytes);
    let ct = aead(key)
        .encrypt(&nonce, Payload { msg: plain, aad })
        .map_err(|_| VaultError::Malformed("plaintext too long"))?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_raw(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if sealed.len() < 24 + 16 {
        return Err(VaultError::Malformed("ciphertext"));
    }
    let (nonce, ct) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce
        .try_into()
        .map_err(|_| VaultError::Malformed("nonce"))?;
    aead(key)
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt)
}

// ---------------------------------------------------------------- master key

/// The root secret of an installation. It only wraps other keys.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, VaultError> {
        Ok(MasterKey(Zeroizing::new(random()?)))
    }

    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(b))
    }

    /// Accepts `base64:<32 bytes in base64>` or 64 hex characters.
    pub fn parse(encoded: &str) -> Result<Self, VaultError> {
        let s = encoded.trim();
        let bytes = Zeroizing::new(if let Some(b64) = s.strip_prefix("base64:") {
            // Padding is optional: `=` is easy to lose when a key travels through env files.
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64.trim().trim_end_matches('='))
                .map_err(|_| VaultError::Malformed("master key: not valid base64"))?
        } else {
            hex::decode(s).map_err(|_| {
                VaultError::Malformed("master key: expected `base64:…` or 64 hex characters")
            })?
        });
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed("master key: must be exactly 32 bytes"))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    pub fn encode(&self) -> SecretString {
        SecretString::from(format!("base64:{}", STANDARD.encode(*self.0)))
    }

    /// Stored in the database at first start so a wrong master key is detected before any
    /// data is touched.
    pub fn check_value(&self) -> [u8; 32] {
        hmac(&*self.0, &[b"cip/master-key-check/v1"])
    }

    fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, VaultError> {
        seal_raw(&self.0, aad, secret)
    }

    fn unwrap32(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let plain = open_raw(&self.0, aad, wrapped).map_err(|e| match e {
            VaultError::Decrypt => VaultError::WrongMasterKey,
            other => other,
        })?;
        let arr: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed("wrapped key length"))?;
        Ok(Zeroizing::new(arr))
    }
}

// ---------------------------------------------------------------- data keys

/// A data-encryption key, identified by id so ciphertexts say which key sealed them.
pub struct DataKey {
    id: u32,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({}, ***)", self.id)
    }
}

impl DataKey {
    pub fn generate(id: u32) -> Result<Self, VaultError> {
        Ok(DataKey {
            id,
            key: Zeroizing::new(random()?),
        })
    }
    pub fn id(&self) -> u32 {
        self.id
    }
}

fn data_key_aad(id: u32) -> Vec<u8> {
    let mut aad = b"cip/data-key/v1/".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad
}

pub fn wrap_data_key(master: &MasterKey, key: &DataKey) -> Result<Vec<u8>, VaultError> {
    master.wrap(&data_key_aad(key.id), &*key.key)
}

pub fn unwrap_data_key(master: &MasterKey, id: u32, wrapped: &[u8]) -> Result<DataKey, VaultError> {
    Ok(DataKey {
        id,
        key: master.unwrap32(&data_key_aad(id), wrapped)?,
    })
}

/// Root of the blind-index and fingerprint keys.
pub struct IndexRootKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for IndexRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexRootKey(***)")
    }
}

impl IndexRootKey {
    pub fn generate() -> Result<Self, VaultError> {
        Ok(IndexRootKey(Zeroizing::new(random()?)))
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        IndexRootKey(Zeroizing::new(b))
    }
}

pub fn wrap_index_root(master: &MasterKey, key: &IndexRootKey) -> Result<Vec<u8>, VaultError> {
    master.wrap(b"cip/index-root/v1", &*key.0)
}

pub fn unwrap_index_root(master: &MasterKey, wrapped: &[u8]) -> Result<IndexRootKey, VaultError> {
    Ok(IndexRootKey(
        master.unwrap32(b"cip/index-root/v1", wrapped)?,
    ))
}

/// What a blind index is of; each kind has its own derived key, so equal values of different
/// kinds never share a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlindIndexKind {
    Email,
    Phone,
    NationalId,
    CardFingerprint,
    BankAccount,
    WalletAddress,
    ExternalId,
    Name,
    /// Free text of access events (principal, user agent, session, resource): the key of
    /// their per-segment dictionaries.
    AccessText,
    /// One-time verification codes (keyed with the challenge id, so equal codes of two
    /// challenges hash apart).
    OtpCode,
}

impl BlindIndexKind {
    pub const ALL: [BlindIndexKind; 10] = [
        BlindIndexKind::Email,
        BlindIndexKind::Phone,
        BlindIndexKind::NationalId,
        BlindIndexKind::CardFingerprint,
        BlindIndexKind::BankAccount,
        BlindIndexKind::WalletAddress,
        BlindIndexKind::ExternalId,
        BlindIndexKind::Name,
        BlindIndexKind::AccessText,
        BlindIndexKind::OtpCode,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BlindIndexKind::Email => "email",
            BlindIndexKind::Phone => "phone",
            BlindIndexKind::NationalId => "national_id",
            BlindIndexKind::CardFingerprint => "card_fingerprint",
            BlindIndexKind::BankAccount => "bank_account",
            BlindIndexKind::WalletAddress => "wallet_address",
            BlindIndexKind::ExternalId => "external_id",
            BlindIndexKind::Name => "name",
            BlindIndexKind::AccessText => "access_text",
            BlindIndexKind::OtpCode => "otp_code",
        }
    }
}

/// A keyed fingerprint of a card number: the same card gives the same fingerprint within one
/// installation; it cannot be reversed or compared across installations.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardFingerprint(pub [u8; 32]);

impl std::fmt::Debug for CardFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardFingerprint({})", self.to_hex())
    }
}

impl CardFingerprint {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse_hex(s: &str) -> Result<Self, VaultError> {
        let v = hex::decode(s).map_err(|_| VaultError::Malformed("fingerprint"))?;
        Ok(CardFingerprint(
            v.try_into()
                .map_err(|_| VaultError::Malformed("fingerprint"))?,
        ))
    }
}

/// The loaded keys: data keys by id (one active for sealing) and the derived index keys.
pub struct Keyring {
    active: u32,
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
    index_keys: BTreeMap<BlindIndexKind, Zeroizing<[u8; 32]>>,
    fingerprint_key: Zeroizing<[u8; 32]>,
    /// Blinds the screening keys of the keyed re-screen ([`Keyring::blind_screen_keys`]).
    screen_key: Zeroizing<[u8; 32]>,
    index_root: Zeroizing<[u8; 32]>,
}

/// Version of the derivation of the screening-key blinding key (its label below). Stored
/// blinded keys name it (with the engine's key version), so changing it — a rotation of that
/// key — makes every stored key stale, to be re-derived (docs/design/0008, "Keyed re-screen").
pub const SCREEN_KEY_BLIND_VERSION: u32 = 1;

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

const SEALED_VERSION: u8 = 1;

impl Keyring {
    pub fn new(active: DataKey, others: Vec<DataKey>, index_root: IndexRootKey) -> Self {
        let mut keys = BTreeMap::new();
        for k in others {
            keys.insert(k.id, k.key);
        }
        let active_id = active.id;
        keys.insert(active.id, active.key);
        let index_keys = BlindIndexKind::ALL
            .iter()
            .map(|k| {
                let sub = hmac(
                    &*index_root.0,
                    &[b"cip/blind-index/v1/", k.as_str().as_bytes()],
                );
                (*k, Zeroizing::new(sub))
            })
            .collect();
        let fingerprint_key = Zeroizing::new(hmac(&*index_root.0, &[b"cip/card-fingerprint/v1"]));
        let screen_key = Zeroizing::new(hmac(&*index_root.0, &[b"cip/screen-keys/v1"]));
        Keyring {
            active: active_id,
            keys,
            index_keys,
            fingerprint_key,
            screen_key,
            index_root: index_root.0,
        }
    }

    pub fn active_key_id(&self) -> u32 {
        self.active
    }

    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Output: version (1) ‖ key id (u32 BE) ‖ nonce (24) ‖ ciphertext ‖ tag (16).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or(VaultError::UnknownKeyId(self.active))?;
        let body = seal_raw(key, &self.full_aad(self.active, aad), plaintext)?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let id = sealed_key_id(sealed)?;
        let key = self.keys.get(&id).ok_or(VaultError::UnknownKeyId(id))?;
        open_raw(key, &self.full_aad(id, aad), &sealed[5..])
    }

    /// The key id is bound into the associated data so a header cannot be swapped.
    fn full_aad(&self, id: u32, aad: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(5 + aad.len());
        v.push(SEALED_VERSION);
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(aad);
        v
    }

    pub fn seal_str(&self, aad: &[u8], s: &str) -> Result<Vec<u8>, VaultError> {
        self.seal(aad, s.as_bytes())
    }

    pub fn open_str(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<String>, VaultError> {
        let bytes = self.open(aad, sealed)?;
        let s = std::str::from_utf8(&bytes).map_err(|_| VaultError::Malformed("utf-8"))?;
        Ok(Zeroizing::new(s.to_string()))
    }

    pub fn blind_index(&self, kind: BlindIndexKind, normalized_value: &str) -> [u8; 32] {
        match self.index_keys.get(&kind) {
            Some(k) => hmac(&**k, &[normalized_value.as_bytes()]),
            None => [0; 32],
        }
    }

    /// Blinds screening keys (the engine's 64-bit name and identifier keys, which are plain
    /// hashes of name tokens and identifiers) for storage: HMAC-SHA256 of the key under a key
    /// derived from the index root, first 8 bytes as a signed integer. Equal keys blind
    /// equally, so "shares a key" is preserved; without the index root the stored values
    /// reveal nothing (a dictionary of names cannot be hashed against them). Sorted, without
    /// duplicates. Two keys blinding alike (2^-64 per pair) only add a customer to a lookup.
    pub fn blind_screen_keys(&self, keys: &[u64]) -> Vec<i64> {
        let Ok(base) = <HmacSha256 as hmac::KeyInit>::new_from_slice(&*self.screen_key) else {
            return Vec::new();
        };
        let mut out: Vec<i64> = keys
            .iter()
            .map(|k| {
                let mut mac = base.clone();
                mac.update(&k.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                let mut first = [0u8; 8];
                first.copy_from_slice(&tag[..8]);
                i64::from_be_bytes(first)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn card_fingerprint(&self, pan_digits: &str) -> CardFingerprint {
        CardFingerprint(hmac(&*self.fingerprint_key, &[pan_digits.as_bytes()]))
    }

    /// A keyring with `new_active` added and made active; older keys stay for opening.
    pub fn with_active(&self, new_active: DataKey) -> Keyring {
        let others = self
            .keys
            .iter()
            .filter(|(id, _)| **id != new_active.id)
            .map(|(id, k)| DataKey {
                id: *id,
                key: k.clone(),
            })
            .collect();
        Keyring::new(new_active, others, IndexRootKey(self.index_root.clone()))
    }
}

/// Version byte bound into the associated data of record-sealed fields.
const RECORD_SEALED_VERSION: u8 = 2;

/// Seals the fields of one record compactly: one key and one random 16-byte nonce prefix per
/// record, field `i` under nonce `prefix ‖ i` (u64 big-endian), so a field costs only its
/// 16-byte tag instead of a 45-byte header+nonce+tag, and a record one call to the OS random
/// source instead of one per field. Nonces stay unique per key: the prefix is random (128
/// bits) and the index is unique within the record. The associated data binds the version,
/// the key id and the caller's context (record id and field pointer).
pub struct RecordSealer {
    key_id: u32,
    cipher: XChaCha20Poly1305,
    prefix: [u8; 16],
}

impl RecordSealer {
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn prefix(&self) -> [u8; 16] {
        self.prefix
    }

    /// Ciphertext ‖ tag of field `index`.
    pub fn seal(&self, index: u64, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.cipher
            .encrypt(
                &record_nonce(&self.prefix, index),
                Payload {
                    msg: plain,
                    aad: &record_aad(self.key_id, aad),
                },
            )
            .map_err(|_| VaultError::Malformed("plaintext too long"))
    }

    pub fn open(
        &self,
        index: u64,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < 16 {
            return Err(VaultError::Malformed("ciphertext"));
        }
        self.cipher
            .decrypt(
                &record_nonce(&self.prefix, index),
                Payload {
                    msg: sealed,
                    aad: &record_aad(self.key_id, aad),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Decrypt)
    }
}

fn record_nonce(prefix: &[u8; 16], index: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(prefix);
    n[16..].copy_from_slice(&index.to_be_bytes());
    XNonce::from(n)
}

fn record_aad(key_id: u32, aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + aad.len());
    v.push(RECORD_SEALED_VERSION);
    v.extend_from_slice(&key_id.to_be_bytes());
    v.extend_from_slice(aad);
    v
}

impl Keyring {
    /// A sealer for a new record under the active key, with a fresh random nonce prefix.
    pub fn record_sealer(&self) -> Result<RecordSealer, VaultError> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or(VaultError::UnknownKeyId(self.active))?;
        Ok(RecordSealer {
            key_id: self.active,
            cipher: aead(key),
            prefix: random::<16>()?,
        })
    }

    /// The sealer a stored record was sealed with, to open its fields.
    pub fn record_opener(&self, key_id: u32, prefix: [u8; 16]) -> Result<RecordSealer, VaultError> {
        let key = self
            .keys
            .get(&key_id)
            .ok_or(VaultError::UnknownKeyId(key_id))?;
        Ok(RecordSealer {
            key_id,
            cipher: aead(key),
            prefix,
        })
    }
}

/// Reads the key id of a ciphertext without opening it.
pub fn sealed_key_id(sealed: &[u8]) -> Result<u32, VaultError> {
    if sealed.len() < 5 + 24 + 16 || sealed[0] != SEALED_VERSION {
        return Err(VaultError::Malformed("sealed value"));
    }
    let id: [u8; 4] = sealed[1..5]
        .try_into()
        .map_err(|_| VaultError::Malformed("sealed value"))?;
    Ok(u32::from_be_bytes(id))
}

// ---------------------------------------------------------------- audit chain

pub const GENESIS: [u8; 32] = [0; 32];

/// entry_hash = SHA-256("cip/audit/v1" ‖ prev_hash ‖ seq (u64 BE) ‖ len(body) (u32 BE) ‖ body)
pub fn chain_hash(prev_hash: &[u8; 32], seq: u64, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cip/audit/v1");
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    h.update((body.len() as u32).to_be_bytes());
    h.update(body);
    h.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    Gap { expected_seq: u64, found_seq: u64 },
    PrevMismatch { seq: u64 },
    HashMismatch { seq: u64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Gap {
                expected_seq,
                found_seq,
            } => write!(
                f,
                "entry {expected_seq} is missing (the next entry found is {found_seq}): entries were deleted or reordered"
            ),
            ChainBreak::PrevMismatch { seq } => write!(
                f,
                "entry {seq} does not follow the entry before it: entries were deleted, inserted or reordered"
            ),
            ChainBreak::HashMismatch { seq } => write!(
                f,
                "entry {seq} was edited: its hash does not match its contents"
            ),
        }
    }
}

/// Checks entries fed in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: u64,
    prev: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev: GENESIS,
        }
    }

    pub fn push(
        &mut self,
        seq: u64,
        body: &[u8],
        stored_hash: &[u8; 32],
        stored_prev: &[u8; 32],
    ) -> Result<(), ChainBreak> {
        if seq != self.next_seq {
            return Err(ChainBreak::Gap {
                expected_seq: self.next_seq,
                found_seq: seq,
            });
        }
        if stored_prev != &self.prev {
            return Err(ChainBreak::PrevMismatch { seq });
        }
        if &chain_hash(stored_prev, seq, body) != stored_hash {
            return Err(ChainBreak::HashMismatch { seq });
        }
        self.prev = *stored_hash;
        self.next_seq += 1;
        Ok(())
    }

    /// (last verified seq, its hash); (0, GENESIS) before any entry.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.next_seq - 1, self.prev)
    }
}

/// The ed25519 key that signs audit checkpoints.
pub struct CheckpointKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CheckpointKey(public {})",
            hex::encode(self.verifying_key_bytes())
        )
    }
}

impl CheckpointKey {
    pub fn generate() -> Result<Self, VaultError> {
        let secret = Zeroizing::new(random::<32>()?);
        Ok(CheckpointKey(ed25519_dalek::SigningKey::from_bytes(
            &secret,
        )))
    }

    pub fn wrap(&self, master: &MasterKey) -> Result<Vec<u8>, VaultError> {
        let secret = Zeroizing::new(self.0.to_bytes());
        master.wrap(b"cip/checkpoint-key/v1", &*secret)
    }

    pub fn unwrap(master: &MasterKey, wrapped: &[u8]) -> Result<Self, VaultError> {
        let secret = master.unwrap32(b"cip/checkpoint-key/v1", wrapped)?;
        Ok(CheckpointKey(ed25519_dalek::SigningKey::from_bytes(
            &secret,
        )))
    }

    pub fn verifying_key_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
}

fn checkpoint_message(seq: u64, head_hash: &[u8; 32], at_unix_micros: i64) -> Vec<u8> {
    let mut m = b"cip/checkpoint/v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head_hash);
    m.extend_from_slice(&at_unix_micros.to_be_bytes());
    m
}

pub fn sign_checkpoint(
    key: &CheckpointKey,
    seq: u64,
    head_hash: &[u8; 32],
    at_unix_micros: i64,
) -> [u8; 64] {
    key.0
        .sign(&checkpoint_message(seq, head_hash, at_unix_micros))
        .to_bytes()
}

pub fn verify_checkpoint(
    verifying_key: &[u8; 32],
    seq: u64,
    head_hash: &[u8; 32],
    at_unix_micros: i64,
    sig: &[u8; 64],
) -> Result<(), VaultError> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(verifying_key)
        .map_err(|_| VaultError::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_bytes(sig);
    vk.verify_strict(&checkpoint_message(seq, head_hash, at_unix_micros), &sig)
        .map_err(|_| VaultError::BadSignature)
}

#[cfg(test)]
mod tests {

    #[test]
    fn webhook_signature_matches_python_hmac() {
        // python3: hmac.new(b'whsec_test', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            webhook_signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        let a = new_webhook_secret().unwrap();
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43);
        assert_ne!(a, new_webhook_secret().unwrap());
    }

    use super::*;

    fn ring(id: u32) -> Keyring {
        Keyring::new(
            DataKey::generate(id).unwrap(),
            vec![],
            IndexRootKey::from_bytes([7; 32]),
        )
    }

    #[test]
    fn screen_keys_blind_equal_keys_equally_and_depend_on_the_index_root() {
        let k = ring(1);
        let a = k.blind_screen_keys(&[3, 1, 2, 3]);
        assert_eq!(a.len(), 3, "sorted and deduplicated");
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Shared keys stay shared, others do not collide.
        let b = k.blind_screen_keys(&[2, 9]);
        assert_eq!(a.iter().filter(|x| b.contains(x)).count(), 1);
        // Another data key (a rotation) blinds the same; another index root does not.
        assert_eq!(ring(2).blind_screen_keys(&[1, 2, 3]), a);
        let other = Keyring::new(
            DataKey::generate(1).unwrap(),
            vec![],
            IndexRootKey::from_bytes([8; 32]),
        );
        assert!(
            other
                .blind_screen_keys(&[1, 2, 3])
                .iter()
                .all(|x| !a.contains(x))
        );
        // Not the plain key, nor the name blind index of its text.
        assert!(!a.contains(&1) && !a.contains(&2));
    }

    #[test]
    fn record_sealer_binds_index_place_key_and_prefix() {
        let k = ring(3);
        let sealer = k.record_sealer().unwrap();
        let a = sealer.seal(0, b"customer/1/name", b"Anna").unwrap();
        let b = sealer.seal(1, b"customer/1/name", b"Anna").unwrap();
        assert_eq!(a.len(), 4 + 16, "a field costs its tag only");
        assert_ne!(a, b, "each field index has its own nonce");
        let opener = k.record_opener(3, sealer.prefix()).unwrap();
        assert_eq!(&*opener.open(0, b"customer/1/name", &a).unwrap(), b"Anna");
        assert!(opener.open(1, b"customer/1/name", &a).is_err(), "index");
        assert!(opener.open(0, b"customer/2/name", &a).is_err(), "place");
        let other = k.record_opener(3, [0; 16]).unwrap();
        assert!(other.open(0, b"customer/1/name", &a).is_err(), "prefix");
        assert!(k.record_opener(4, sealer.prefix()).is_err(), "unknown key");
        let fresh = k.record_sealer().unwrap();
        assert_ne!(fresh.prefix(), sealer.prefix(), "a fresh prefix per record");
        for i in 0..a.len() {
            let mut t = a.clone();
            t[i] ^= 1;
            assert!(opener.open(0, b"customer/1/name", &t).is_err(), "byte {i}");
        }
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = ring(1);
        let s = k.seal(b"customer/1/name", b"Anna").unwrap();
        assert_eq!(&*k.open(b"customer/1/name", &s).unwrap(), b"Anna");
        assert_ne!(
            s,
            k.seal(b"customer/1/name", b"Anna").unwrap(),
            "random nonces"
        );
        assert_eq!(
            k.open(b"customer/2/name", &s),
            Err(VaultError::Decrypt),
            "aad binds the place"
        );
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(
                k.open(b"customer/1/name", &t).is_err(),
                "flipping byte {i} must fail"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let k1 = ring(1);
        let s1 = k1.seal(b"a", b"x").unwrap();
        let k2 = k1.with_active(DataKey::generate(2).unwrap());
        assert_eq!(k2.active_key_id(), 2);
        assert_eq!(sealed_key_id(&s1).unwrap(), 1);
        assert_eq!(&*k2.open(b"a", &s1).unwrap(), b"x");
        let s2 = k2.seal(b"a", b"y").unwrap();
        assert_eq!(sealed_key_id(&s2).unwrap(), 2);
        assert_eq!(k1.open(b"a", &s2), Err(VaultError::UnknownKeyId(2)));
        assert_eq!(
            k1.blind_index(BlindIndexKind::Email, "e"),
            k2.blind_index(BlindIndexKind::Email, "e"),
            "rotation keeps lookups"
        );
    }

    #[test]
    fn wrapped_keys_need_the_right_master() {
        let m = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let dk = DataKey::generate(3).unwrap();
        let w = wrap_data_key(&m, &dk).unwrap();
        assert!(unwrap_data_key(&m, 3, &w).is_ok());
        assert_eq!(
            unwrap_data_key(&other, 3, &w).unwrap_err(),
            VaultError::WrongMasterKey
        );
        assert_eq!(
            unwrap_data_key(&m, 4, &w).unwrap_err(),
            VaultError::WrongMasterKey,
            "id is bound"
        );
        assert_ne!(m.check_value(), other.check_value());
        let parsed = MasterKey::parse(secrecy::ExposeSecret::expose_secret(&m.encode())).unwrap();
        assert_eq!(parsed.check_value(), m.check_value());
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert_eq!(format!("{m:?}"), "MasterKey(***)");
    }

    #[test]
    fn blind_indexes_are_per_kind_and_per_root() {
        let a = ring(1);
        let b = Keyring::new(
            DataKey::generate(1).unwrap(),
            vec![],
            IndexRootKey::from_bytes([8; 32]),
        );
        assert_eq!(
            a.blind_index(BlindIndexKind::Email, "x@y"),
            a.blind_index(BlindIndexKind::Email, "x@y")
        );
        assert_ne!(
            a.blind_index(BlindIndexKind::Email, "x@y"),
            a.blind_index(BlindIndexKind::Phone, "x@y")
        );
        assert_ne!(
            a.blind_index(BlindIndexKind::Email, "x@y"),
            b.blind_index(BlindIndexKind::Email, "x@y")
        );
        assert_eq!(
            a.card_fingerprint("4111111111111111"),
            a.card_fingerprint("4111111111111111")
        );
        assert_ne!(
            a.card_fingerprint("4111111111111111"),
            b.card_fingerprint("4111111111111111")
        );
    }

    /// (seq, body, hash, prev hash) of one stored entry.
    type Entry = (u64, Vec<u8>, [u8; 32], [u8; 32]);

    fn chain(n: u64) -> Vec<Entry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let body = format!("entry {seq}").into_bytes();
                let h = chain_hash(&prev, seq, &body);
                let e = (seq, body, h, prev);
                prev = h;
                e
            })
            .collect()
    }

    fn verify(entries: &[Entry]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::new();
        for (seq, body, h, p) in entries {
            v.push(*seq, body, h, p)?;
        }
        Ok(())
    }

    #[test]
    fn chain_detects_edit_delete_reorder() {
        let c = chain(100);
        assert_eq!(verify(&c), Ok(()));
        let mut edited = c.clone();
        edited[41].1 = b"changed".to_vec();
        assert_eq!(verify(&edited), Err(ChainBreak::HashMismatch { seq: 42 }));
        let mut deleted = c.clone();
        deleted.remove(10);
        assert_eq!(
            verify(&deleted),
            Err(ChainBreak::Gap {
                expected_seq: 11,
                found_seq: 12
            })
        );
        // Renumbering a swapped pair still breaks the links.
        let mut swapped2 = c.clone();
        let (a, b) = (swapped2[20].clone(), swapped2[21].clone());
        swapped2[20] = (21, b.1, b.2, b.3);
        swapped2[21] = (22, a.1, a.2, a.3);
        assert_eq!(verify(&swapped2), Err(ChainBreak::PrevMismatch { seq: 21 }));
    }

    #[test]
    fn checkpoints_sign_and_verify() {
        let k = CheckpointKey::generate().unwrap();
        let m = MasterKey::generate().unwrap();
        let k2 = CheckpointKey::unwrap(&m, &k.wrap(&m).unwrap()).unwrap();
        assert_eq!(k.verifying_key_bytes(), k2.verifying_key_bytes());
        let sig = sign_checkpoint(&k, 7, &[1; 32], 99);
        let vk = k.verifying_key_bytes();
        assert!(verify_checkpoint(&vk, 7, &[1; 32], 99, &sig).is_ok());
        assert!(verify_checkpoint(&vk, 8, &[1; 32], 99, &sig).is_err());
        assert!(verify_checkpoint(&vk, 7, &[2; 32], 99, &sig).is_err());
        assert!(verify_checkpoint(&vk, 7, &[1; 32], 100, &sig).is_err());
    }

    proptest::proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let k = ring(1);
            let _ = k.open(b"x", &bytes);
            let _ = sealed_key_id(&bytes);
        }
    }
}
