//! DTO → domain: every field is parsed into its `cip_core` type, and *every* problem is
//! collected with its JSON pointer, so one rejected request lists all that is wrong with it.

use cip_core::model::*;
use cip_core::parse::{self, FieldError};
use jiff::civil::Date;

use super::dto::*;
use crate::error::FieldProblem;

/// Collects problems under a moving JSON-pointer path.
pub struct Problems {
    path: Vec<String>,
    pub list: Vec<FieldProblem>,
}

impl Problems {
    pub fn new() -> Self {
        Problems {
            path: Vec::new(),
            list: Vec::new(),
        }
    }

    fn pointer(&self, leaf: &str) -> String {
        // Segments are field names and indices chosen by this module, never user input, so
        // they need no RFC 6901 escaping; a leaf may name several segments ("emails/0").
        let mut p = String::new();
        for seg in self.path.iter().map(String::as_str).chain(leaf.split('/')) {
            if seg.is_empty() {
                continue;
            }
            p.push('/');
            p.push_str(seg);
        }
        p
    }

    pub fn add(&mut self, leaf: &str, code: &str, message: impl Into<String>) {
        let field = self.pointer(leaf);
        self.list.push(FieldProblem {
            field,
            code: code.to_string(),
            message: message.into(),
        });
    }

    fn field<T>(&mut self, leaf: &str, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(leaf, e.code, e.message);
                None
            }
        }
    }

    fn opt<T>(
        &mut self,
        leaf: &str,
        v: &Option<String>,
        f: impl Fn(&str) -> Result<T, FieldError>,
    ) -> Option<T> {
        v.as_deref().and_then(|s| self.field(leaf, f(s)))
    }

    fn enter(&mut self, seg: impl ToString) {
        self.path.push(seg.to_string());
    }

    fn leave(&mut self) {
        self.path.pop();
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Default for Problems {
    fn default() -> Self {
        Self::new()
    }
}

/// Limits that keep one record reasonable (and a request from being an attack).
const MAX_ITEMS: usize = 50;

fn check_len<T>(p: &mut Problems, leaf: &str, items: &[T]) {
    if items.len() > MAX_ITEMS {
        p.add(
            leaf,
            "too_many",
            format!("at most {MAX_ITEMS} entries are accepted"),
        );
    }
}

/// What the parse needs from outside: today's date, the ownership threshold of the policy,
/// and the keyed card fingerprint function (a full card number never leaves this call).
pub struct ParseContext<'a> {
    pub today: Date,
    /// Owners below this percentage need a control role to be beneficial owners.
    pub ownership_threshold_bp: u16,
    pub card_fingerprint: &'a dyn Fn(&str) -> String,
}

pub fn customer(
    input: &CustomerIn,
    ctx: &ParseContext<'_>,
) -> Result<CustomerRecord, Vec<FieldProblem>> {
    let mut p = Problems::new();
    let kind = match CustomerKind::parse(&input.kind) {
        Some(k) => Some(k),
        None => {
            p.add("kind", "invalid_enum", "must be `individual` or `entity`");
            None
        }
    };
    let external_id = p.opt("external_id", &input.external_id, parse::ShortText::parse);
    p.enter("identity");
    let main_identity = identity(
        &mut p,
        &input.identity,
        ctx,
        kind == Some(CustomerKind::Entity),
    );
    p.leave();

    let entity = match (&input.entity, kind) {
        (Some(_), Some(CustomerKind::Individual)) => {
            p.add(
                "entity",
                "not_allowed",
                "only entity customers have entity details",
            );
            None
        }
        (Some(e), _) => {
            p.enter("entity");
            let place = p.opt(
                "place_of_organization",
                &e.place_of_organization,
                parse::CountryCode::parse,
            );
            let sub = p.opt(
                "organization_subdivision",
                &e.organization_subdivision,
                parse::Subdivision::parse,
            );
            if let (Some(place), Some(sub)) = (place, &sub)
                && sub.country() != place
            {
                p.add(
                    "organization_subdivision",
                    "inconsistent",
                    format!("subdivision {} is not in {}", sub.as_str(), place.as_str()),
                );
            }
            let entity_type = p.opt("entity_type", &e.entity_type, parse::ShortText::parse);
            p.leave();
            Some(EntityDetails {
                place_of_organization: place,
                organization_subdivision: sub,
                entity_type,
            })
        }
        (None, _) => None,
    };

    check_len(&mut p, "payment_methods", &input.payment_methods);
    p.enter("payment_methods");
    let mut payment_methods = Vec::new();
    for (i, pm) in input.payment_methods.iter().enumerate() {
        p.enter(i);
        if let Some(m) = payment_method(&mut p, pm, ctx) {
            payment_methods.push(m);
        }
        p.leave();
    }
    p.leave();

    if kind == Some(CustomerKind::Individual) && !input.beneficial_owners.is_empty() {
        p.add(
            "beneficial_owners",
            "not_allowed",
            "only entity customers have beneficial owners",
        );
    }
    check_len(&mut p, "beneficial_owners", &input.beneficial_owners);
    let mut owners = Vec::new();
    let mut total_bp: u32 = 0;
    p.enter("beneficial_owners");
    for (i, bo) in input.beneficial_owners.iter().enumerate() {
        p.enter(i);
        p.enter("identity");
        let ident = identity(&mut p, &bo.identity, ctx, false);
        p.leave();
        let ownership = match bo.ownership_percent {
            None => None,
            Some(v) => p.field("ownership_percent", parse::OwnershipPercent::from_f64(v)),
        };
        let control_role = p.opt("control_role", &bo.control_role, parse::ShortText::parse);
        if let Some(o) = ownership {
            total_bp += u32::from(o.basis_points());
        }
        let qualifies = ownership.is_some_and(|o| o.basis_points() >= ctx.ownership_threshold_bp)
            || control_role.is_some();
        if !qualifies && bo.ownership_percent.is_some_and(f64::is_finite) {
            p.add(
                "",
                "not_beneficial_owner",
                format!(
                    "a beneficial owner owns at least {}% or has a control_role",
                    f64::from(ctx.ownership_threshold_bp) / 100.0
                ),
            );
        } else if bo.ownership_percent.is_none() && bo.control_role.is_none() {
            p.add(
                "",
                "not_beneficial_owner",
                "give ownership_percent, control_role, or both",
            );
        }
        owners.push(BeneficialOwner {
            id: bo.id.unwrap_or_else(uuid::Uuid::now_v7),
            identity: ident,
            ownership,
            control_role,
        });
        p.leave();
    }
    p.leave();
    if total_bp > 10_000 {
        p.add(
            "beneficial_owners",
            "ownership_over_100",
            format!(
                "ownership percentages add up to {:.2}%, more than 100%",
                f64::from(total_bp) / 100.0
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, bo) in input.beneficial_owners.iter().enumerate() {
        if let Some(id) = bo.id
            && !seen.insert(id)
        {
            p.add(
                &format!("beneficial_owners/{i}/id"),
                "duplicate",
                "the same owner id is given twice",
            );
        }
    }

    match (p.is_empty(), kind) {
        (true, Some(kind)) => Ok(CustomerRecord {
            kind,
            external_id,
            identity: main_identity,
            entity,
            payment_methods,
            beneficial_owners: owners,
        }),
        _ => Err(p.list),
    }
}

fn identity(
    p: &mut Problems,
    d: &IdentityDto,
    ctx: &ParseContext<'_>,
    is_entity: bool,
) -> Identity {
    let mut out = Identity::default();
    if d.names.is_empty() {
        p.add("names", "required", "at least one name is required");
    }
    check_len(p, "names", &d.names);
    for (i, n) in d.names.iter().enumerate() {
        p.enter("names");
        p.enter(i);
        let kind = match n.kind.as_str() {
            "legal" => Some(NameKind::Legal),
            "other" => Some(NameKind::Other),
            "former" => Some(NameKind::Former),
            _ => {
                p.add(
                    "kind",
                    "invalid_enum",
                    "must be `legal`, `other` or `former`",
                );
                None
            }
        };
        let full = p.field("full", parse::PersonName::parse(&n.full));
        if let (Some(kind), Some(full)) = (kind, full) {
            out.names.push(Name { kind, full });
        }
        p.leave();
        p.leave();
    }
    if let Some(b) = &d.birth_date {
        if is_entity {
            p.add("birth_date", "not_allowed", "entities have no birth date");
        } else {
            out.birth_date = p.field("birth_date", parse::parse_birth_date(b, ctx.today));
        }
    }
    check_len(p, "citizenships", &d.citizenships);
    for (i, c) in d.citizenships.iter().enumerate() {
        if let Some(c) = p.field(&format!("citizenships/{i}"), parse::CountryCode::parse(c)) {
            out.citizenships.push(c);
        }
    }
    check_len(p, "national_ids", &d.national_ids);
    for (i, n) in d.national_ids.iter().enumerate() {
        p.enter("national_ids");
        p.enter(i);
        let id_type = match n.id_type.as_str() {
            "passport" => Some(NationalIdType::Passport),
            "national_id" => Some(NationalIdType::NationalId),
            "tax_id" => Some(NationalIdType::TaxId),
            "drivers_license" => Some(NationalIdType::DriversLicense),
            "residence_permit" => Some(NationalIdType::ResidencePermit),
            "registration" => Some(NationalIdType::Registration),
            "other" => Some(NationalIdType::Other),
            _ => {
                p.add("type", "invalid_enum", "must be one of passport, national_id, tax_id, drivers_license, residence_permit, registration, other");
                None
            }
        };
        let number = p.field("number", parse::NationalIdNumber::parse(&n.number));
        let country = p.field(
            "issuing_country",
            parse::CountryCode::parse(&n.issuing_country),
        );
        if let (Some(id_type), Some(number), Some(issuing_country)) = (id_type, number, country) {
            out.national_ids.push(NationalId {
                id_type,
                number,
                issuing_country,
            });
        }
        p.leave();
        p.leave();
    }
    check_len(p, "addresses", &d.addresses);
    for (i, a) in d.addresses.iter().enumerate() {
        p.enter("addresses");
        p.enter(i);
        if let Some(a) = address(p, a) {
            out.addresses.push(a);
        }
        p.leave();
        p.leave();
    }
    check_len(p, "emails", &d.emails);
    for (i, e) in d.emails.iter().enumerate() {
        if let Some(e) = p.field(&format!("emails/{i}"), parse::Email::parse(e)) {
            out.emails.push(e);
        }
    }
    check_len(p, "phones", &d.phones);
    for (i, ph) in d.phones.iter().enumerate() {
        if let Some(ph) = p.field(&format!("phones/{i}"), parse::Phone::parse(ph)) {
            out.phones.push(ph);
        }
    }
    out
}

fn address(p: &mut Problems, a: &AddressDto) -> Option<Address> {
    let kind = match a.kind.as_str() {
        "residential" => Some(AddressKind::Residential),
        "business" => Some(AddressKind::Business),
        "mailing" => Some(AddressKind::Mailing),
        "registered" => Some(AddressKind::Registered),
        _ => {
            p.add(
                "kind",
                "invalid_enum",
                "must be residential, business, mailing or registered",
            );
            None
        }
    };
    if a.lines.len() > 5 {
        p.add("lines", "too_many", "at most 5 address lines");
    }
    let mut lines = Vec::new();
    for (i, l) in a.lines.iter().enumerate() {
        if let Some(l) = p.field(&format!("lines/{i}"), parse::ShortText::parse(l)) {
            lines.push(l);
        }
    }
    let city = p.opt("city", &a.city, parse::ShortText::parse);
    let postal_code = p.opt("postal_code", &a.postal_code, parse::ShortText::parse);
    let subdivision = p.opt("subdivision", &a.subdivision, parse::Subdivision::parse);
    let country = p.field("country", parse::CountryCode::parse(&a.country));
    if let (Some(sub), Some(c)) = (&subdivision, country)
        && sub.country() != c
    {
        p.add(
            "subdivision",
            "inconsistent",
            format!("subdivision {} is not in {}", sub.as_str(), c.as_str()),
        );
    }
    Some(Address {
        kind: kind?,
        lines,
        city,
        postal_code,
        subdivision,
        country: country?,
    })
}

fn payment_method(
    p: &mut Problems,
    pm: &PaymentMethodIn,
    ctx: &ParseContext<'_>,
) -> Option<PaymentMethod> {
    let given: Vec<&str> = [
        ("card", pm.card.is_some()),
        ("bank_account", pm.bank_account.is_some()),
        ("crypto_wallet", pm.crypto_wallet.is_some()),
        ("other", pm.other.is_some()),
    ]
    .iter()
    .filter(|(_, g)| *g)
    .map(|(n, _)| *n)
    .collect();
    let instrument = match pm.method_type.as_str() {
        "card" | "bank_account" | "crypto_wallet" | "other" => {
            for extra in given.iter().filter(|g| **g != pm.method_type) {
                p.add(
                    extra,
                    "not_allowed",
                    format!("type is `{}`; remove `{extra}`", pm.method_type),
                );
            }
            match pm.method_type.as_str() {
                "card" => match &pm.card {
                    None => {
                        p.add("card", "required", "type `card` needs a `card` object");
                        None
                    }
                    Some(c) => {
                        p.enter("card");
                        let r = card(p, c, ctx);
                        p.leave();
                        r.map(PaymentInstrument::Card)
                    }
                },
                "bank_account" => match &pm.bank_account {
                    None => {
                        p.add(
                            "bank_account",
                            "required",
                            "type `bank_account` needs a `bank_account` object",
                        );
                        None
                    }
                    Some(b) => {
                        p.enter("bank_account");
                        let institution =
                            p.opt("institution", &b.institution, parse::ShortText::parse);
                        let iban = p.opt("iban", &b.iban, parse::Iban::parse);
                        let account_reference = p.opt(
                            "account_reference",
                            &b.account_reference,
                            parse::ShortText::parse,
                        );
                        let country = p.opt("country", &b.country, parse::CountryCode::parse);
                        if b.iban.is_none() && b.account_reference.is_none() {
                            p.add("", "required", "give `iban` or `account_reference`");
                        }
                        if let (Some(iban), Some(c)) = (&iban, country)
                            && iban.country() != c
                        {
                            p.add(
                                "country",
                                "inconsistent",
                                format!("the IBAN is from {}", iban.country().as_str()),
                            );
                        }
                        p.leave();
                        Some(PaymentInstrument::BankAccount(BankAccount {
                            country: country.or_else(|| iban.as_ref().map(|i| i.country())),
                            institution,
                            iban,
                            account_reference,
                        }))
                    }
                },
                "crypto_wallet" => match &pm.crypto_wallet {
                    None => {
                        p.add(
                            "crypto_wallet",
                            "required",
                            "type `crypto_wallet` needs a `crypto_wallet` object",
                        );
                        None
                    }
                    Some(w) => {
                        p.enter("crypto_wallet");
                        let chain = p.field("chain", parse::WalletChain::parse(&w.chain));
                        let addr = chain.and_then(|c| {
                            p.field("address", parse::WalletAddress::parse(&c, &w.address))
                        });
                        p.leave();
                        addr.map(PaymentInstrument::CryptoWallet)
                    }
                },
                _ => match &pm.other {
                    None => {
                        p.add("other", "required", "type `other` needs an `other` object");
                        None
                    }
                    Some(o) => {
                        p.enter("other");
                        let d = p.field("description", parse::ShortText::parse(&o.description));
                        p.leave();
                        d.map(|description| PaymentInstrument::Other { description })
                    }
                },
            }
        }
        _ => {
            p.add(
                "type",
                "invalid_enum",
                "must be card, bank_account, crypto_wallet or other",
            );
            None
        }
    };
    let source = p.opt("source", &pm.source, parse::ShortText::parse);
    let external_customer_id = p.opt(
        "external_customer_id",
        &pm.external_customer_id,
        parse::ShortText::parse,
    );
    check_len(p, "transaction_ids", &pm.transaction_ids);
    let mut transaction_ids = Vec::new();
    for (i, t) in pm.transaction_ids.iter().enumerate() {
        if let Some(t) = p.field(&format!("transaction_ids/{i}"), parse::ShortText::parse(t)) {
            transaction_ids.push(t);
        }
    }
    Some(PaymentMethod {
        instrument: instrument?,
        source,
        external_customer_id,
        transaction_ids,
    })
}

fn card(p: &mut Problems, c: &CardIn, ctx: &ParseContext<'_>) -> Option<CardFacts> {
    let issuing_country = p.opt(
        "issuing_country",
        &c.issuing_country,
        parse::CountryCode::parse,
    );
    let stated_brand = p.opt("brand", &c.brand, parse::CardBrand::parse);
    match &c.number {
        Some(number) => {
            if c.bin.is_some() || c.last4.is_some() {
                p.add(
                    "number",
                    "not_allowed",
                    "give either `number` or `bin` + `last4`, not both",
                );
            }
            let pan = p.field("number", parse::CardNumber::parse(number))?;
            let brand = pan.brand();
            if let Some(stated) = stated_brand
                && stated != brand
            {
                p.add(
                    "brand",
                    "inconsistent",
                    format!("the number is a {} card", brand.as_str()),
                );
            }
            let bin = p.field("number", parse::CardBin::parse(&pan.bin()))?;
            let last4 = p.field("number", parse::CardLast4::parse(&pan.last4()))?;
            Some(CardFacts {
                brand,
                bin,
                last4,
                issuing_country,
                fingerprint: Some((ctx.card_fingerprint)(pan.digits())),
            })
        }
        None => {
            if c.bin.is_none() {
                p.add("bin", "required", "give `number`, or `bin` and `last4`");
            }
            if c.last4.is_none() {
                p.add("last4", "required", "give `number`, or `bin` and `last4`");
            }
            let bin = p.opt("bin", &c.bin, parse::CardBin::parse);
            let last4 = p.opt("last4", &c.last4, parse::CardLast4::parse);
            let bin = bin?;
            let brand = stated_brand.unwrap_or_else(|| parse::CardBrand::detect(bin.as_str()));
            Some(CardFacts {
                brand,
                bin,
                last4: last4?,
                issuing_country,
                fingerprint: None,
            })
        }
    }
}
