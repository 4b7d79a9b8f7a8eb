//! Wire shapes of identity records (JSON, documented in the OpenAPI spec). Inputs reject unknown
//! fields. These types carry no rules: parsing into `cip_core` types happens in `parse.rs`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NameDto {
    /// `legal` (default), `other` or `former`.
    #[serde(default = "legal")]
    pub kind: String,
    pub full: String,
}

fn legal() -> String {
    "legal".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NationalIdDto {
    /// `passport`, `national_id`, `tax_id`, `drivers_license`, `residence_permit`, `registration` or `other`.
    #[serde(rename = "type")]
    pub id_type: String,
    pub number: String,
    /// ISO 3166-1 alpha-2.
    pub issuing_country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    /// `residential` (default), `business`, `mailing` or `registered`.
    #[serde(default = "residential")]
    pub kind: String,
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-2, e.g. `US-CA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

fn residential() -> String {
    "residential".into()
}

/// Identity fields of a customer or of a beneficial owner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityDto {
    pub names: Vec<NameDto>,
    /// `YYYY-MM-DD` (individuals only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// ISO 3166-1 alpha-2 codes of declared citizenships.
    #[serde(default)]
    pub citizenships: Vec<String>,
    #[serde(default)]
    pub national_ids: Vec<NationalIdDto>,
    #[serde(default)]
    pub addresses: Vec<AddressDto>,
    #[serde(default)]
    pub emails: Vec<String>,
    /// E.164, e.g. `+14155552671`.
    #[serde(default)]
    pub phones: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EntityDto {
    /// Where the entity is organised (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_of_organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_subdivision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
}

/// A card as the provider sends it: either the full `number` (used once to derive brand, BIN,
/// last four and a keyed fingerprint, then discarded) or `bin` + `last4`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardIn {
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub bin: Option<String>,
    #[serde(default)]
    pub last4: Option<String>,
    #[serde(default)]
    pub issuing_country: Option<String>,
}

/// A card as cip keeps it: never the full number.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CardOut {
    pub brand: String,
    pub bin: String,
    pub last4: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_country: Option<String>,
    /// Keyed fingerprint of the full number, when it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct BankAccountDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CryptoWalletDto {
    /// `bitcoin`, `ethereum`, or another chain's name (no checksum check for others).
    pub chain: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtherInstrumentDto {
    pub description: String,
}

/// Means and source of payment. `type` says which one of `card`, `bank_account`,
/// `crypto_wallet`, `other` is given.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodIn {
    #[serde(rename = "type")]
    pub method_type: String,
    #[serde(default)]
    pub card: Option<CardIn>,
    #[serde(default)]
    pub bank_account: Option<BankAccountDto>,
    #[serde(default)]
    pub crypto_wallet: Option<CryptoWalletDto>,
    #[serde(default)]
    pub other: Option<OtherInstrumentDto>,
    /// Who pays, when it is not the customer ("employer", "parent company").
    #[serde(default)]
    pub source: Option<String>,
    /// The customer's identifier at the payment processor.
    #[serde(default)]
    pub external_customer_id: Option<String>,
    #[serde(default)]
    pub transaction_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PaymentMethodOut {
    #[serde(rename = "type")]
    pub method_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<BankAccountDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_wallet: Option<CryptoWalletDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<OtherInstrumentDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_customer_id: Option<String>,
    #[serde(default)]
    pub transaction_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeneficialOwnerIn {
    /// Give the id returned earlier to keep an owner's identity stable across updates.
    #[serde(default)]
    pub id: Option<Uuid>,
    pub identity: IdentityDto,
    /// Percentage owned, 0–100 (at most two decimals).
    #[serde(default)]
    pub ownership_percent: Option<f64>,
    /// Control role, e.g. "CEO", "managing director", "signatory".
    #[serde(default)]
    pub control_role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BeneficialOwnerOut {
    pub id: Uuid,
    pub identity: IdentityDto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_role: Option<String>,
}

/// A customer as the provider submits it (create, or full replacement with `PUT`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIn {
    /// `individual` or `entity`.
    pub kind: String,
    /// The provider's own identifier of this customer.
    #[serde(default)]
    pub external_id: Option<String>,
    pub identity: IdentityDto,
    /// Entity facts (entities only).
    #[serde(default)]
    pub entity: Option<EntityDto>,
    #[serde(default)]
    pub payment_methods: Vec<PaymentMethodIn>,
    /// Individuals owning ≥25 % or exercising control (entities only).
    #[serde(default)]
    pub beneficial_owners: Vec<BeneficialOwnerIn>,
    /// The policy notice the customer was shown at signup (recorded with the customer, not
    /// part of the record; see `POST /v1/customers/{id}/notices`).
    #[serde(default)]
    pub notice: Option<NoticeShownIn>,
}

/// What a customer was shown: a policy version's notice, and when.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeShownIn {
    /// The policy version whose notice was shown (see `GET /v1/policy/notice`).
    pub version: String,
    /// When it was shown (RFC 3339); default: now. Not more than 5 minutes ahead.
    #[serde(default)]
    pub shown_at: Option<String>,
}

/// The record part of a customer: what is sealed and stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CustomerDoc {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub identity: IdentityDto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntityDto>,
    #[serde(default)]
    pub payment_methods: Vec<PaymentMethodOut>,
    #[serde(default)]
    pub beneficial_owners: Vec<BeneficialOwnerOut>,
}

/// A stored customer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub id: Uuid,
    /// Increases with every change; send it back in `If-Match` to update.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub record: CustomerDoc,
}

/// A customer in a list: the clear columns only. Read one customer for its identity fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerSummary {
    pub id: Uuid,
    pub kind: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerPage {
    pub items: Vec<CustomerSummary>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    pub customer_id: Uuid,
    /// The provider's identifier of the account (unique).
    #[serde(default)]
    pub external_id: Option<String>,
    /// The IaaS product, e.g. "compute", "object-storage".
    pub product: String,
    /// `standard`, `trial` or `reseller_account`.
    pub account_type: String,
    /// Initial status; `applied` by default.
    #[serde(default)]
    pub status: Option<String>,
    /// Why the account starts in this status (kept as its first transition; default
    /// "account created").
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub opened_at: Option<String>,
    #[serde(default)]
    pub closed_at: Option<String>,
    #[serde(default)]
    pub last_accessed_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// Why the status changes (kept with the transition; default "status changed by update").
    /// `POST /v1/accounts/{id}/transitions` is the explicit way to change status.
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub opened_at: Option<String>,
    #[serde(default)]
    pub closed_at: Option<String>,
    #[serde(default)]
    pub last_accessed_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    pub customer_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub product: String,
    pub account_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed_at: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Special measures (and policy actions of confirmed screening hits) on this account,
    /// with their conditions, deadlines and evidence. Shown when one account is read or
    /// created, not in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_measures: Option<Vec<crate::measures::AccountMeasureDto>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<Account>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
