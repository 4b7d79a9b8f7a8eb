//! Demo data: a few dozen customers a newcomer can click through — individuals and entities,
//! U.S. and foreign, entities with beneficial owners, each with accounts. Everything goes
//! through the same parse → seal → store path as the API, so the demo exercises the real code.

use cip_store::{AccountRow, AccountWrite, AuditDraft, CustomerWrite};
use uuid::Uuid;

use crate::api::customers::prepare_customer;
use crate::error::ApiError;
use crate::records::dto::*;
use crate::state::AppState;
use crate::time::now_micros;

struct Person {
    first: &'static str,
    last: &'static str,
    country: &'static str,
    city: &'static str,
    phone: &'static str,
    birth: &'static str,
    id_type: &'static str,
    id_number: &'static str,
}

const PEOPLE: &[Person] = &[
    Person {
        first: "Anna",
        last: "Schmidt",
        country: "DE",
        city: "Berlin",
        phone: "+4930901820",
        birth: "1985-04-12",
        id_type: "passport",
        id_number: "C01X00T47",
    },
    Person {
        first: "James",
        last: "Miller",
        country: "US",
        city: "Austin",
        phone: "+12025550143",
        birth: "1979-11-02",
        id_type: "passport",
        id_number: "561234567",
    },
    Person {
        first: "Olivia",
        last: "Brown",
        country: "GB",
        city: "London",
        phone: "+442079460958",
        birth: "1990-06-23",
        id_type: "passport",
        id_number: "107185703",
    },
    Person {
        first: "Lucas",
        last: "Martin",
        country: "FR",
        city: "Paris",
        phone: "+33142685300",
        birth: "1988-01-30",
        id_type: "national_id",
        id_number: "880130751234",
    },
    Person {
        first: "Mariana",
        last: "Silva",
        country: "BR",
        city: "São Paulo",
        phone: "+5511912345678",
        birth: "1993-09-14",
        id_type: "tax_id",
        id_number: "12345678909",
    },
    Person {
        first: "Priya",
        last: "Sharma",
        country: "IN",
        city: "Bengaluru",
        phone: "+919876543210",
        birth: "1991-03-08",
        id_type: "passport",
        id_number: "J8369854",
    },
    Person {
        first: "Haruto",
        last: "Sato",
        country: "JP",
        city: "Tokyo",
        phone: "+81312345678",
        birth: "1984-12-19",
        id_type: "passport",
        id_number: "TK1234567",
    },
    Person {
        first: "Chinedu",
        last: "Okafor",
        country: "NG",
        city: "Lagos",
        phone: "+2348021234567",
        birth: "1987-07-07",
        id_type: "national_id",
        id_number: "12345678901",
    },
    Person {
        first: "Dmitri",
        last: "Volkov",
        country: "RU",
        city: "Moscow",
        phone: "+74951234567",
        birth: "1982-02-25",
        id_type: "passport",
        id_number: "720123456",
    },
    Person {
        first: "Wei",
        last: "Zhang",
        country: "CN",
        city: "Beijing",
        phone: "+861012345678",
        birth: "1989-10-01",
        id_type: "passport",
        id_number: "E12345678",
    },
    Person {
        first: "Emily",
        last: "Johnson",
        country: "US",
        city: "Seattle",
        phone: "+12065550172",
        birth: "1995-05-05",
        id_type: "drivers_license",
        id_number: "WDLABCD1234",
    },
    Person {
        first: "Sofia",
        last: "Rossi",
        country: "IT",
        city: "Milan",
        phone: "+390212345678",
        birth: "1992-08-18",
        id_type: "national_id",
        id_number: "CA00000AA",
    },
    Person {
        first: "Mateo",
        last: "García",
        country: "ES",
        city: "Madrid",
        phone: "+34912345678",
        birth: "1986-04-04",
        id_type: "national_id",
        id_number: "12345678Z",
    },
    Person {
        first: "Noah",
        last: "Williams",
        country: "US",
        city: "Chicago",
        phone: "+13125550199",
        birth: "1975-01-15",
        id_type: "passport",
        id_number: "488839667",
    },
    Person {
        first: "Eva",
        last: "Novak",
        country: "CZ",
        city: "Prague",
        phone: "+420212345678",
        birth: "1994-11-11",
        id_type: "national_id",
        id_number: "203456789",
    },
    Person {
        first: "Ahmed",
        last: "Hassan",
        country: "EG",
        city: "Cairo",
        phone: "+20227912345",
        birth: "1983-06-30",
        id_type: "passport",
        id_number: "A12345678",
    },
    Person {
        first: "Sophie",
        last: "Dubois",
        country: "BE",
        city: "Brussels",
        phone: "+3225551234",
        birth: "1990-02-14",
        id_type: "national_id",
        id_number: "90021412345",
    },
    Person {
        first: "Liam",
        last: "Murphy",
        country: "IE",
        city: "Dublin",
        phone: "+35312345678",
        birth: "1987-03-17",
        id_type: "passport",
        id_number: "PA1234567",
    },
    Person {
        first: "Yuki",
        last: "Tanaka",
        country: "JP",
        city: "Osaka",
        phone: "+81662345678",
        birth: "1996-07-21",
        id_type: "passport",
        id_number: "TR7654321",
    },
    Person {
        first: "Ava",
        last: "Davis",
        country: "US",
        city: "Denver",
        phone: "+13035550110",
        birth: "1998-12-01",
        id_type: "drivers_license",
        id_number: "CO123456789",
    },
    Person {
        first: "Oskar",
        last: "Nowak",
        country: "PL",
        city: "Warsaw",
        phone: "+48221234567",
        birth: "1981-09-09",
        id_type: "national_id",
        id_number: "ABA300000",
    },
    Person {
        first: "Fatima",
        last: "Al Mansouri",
        country: "AE",
        city: "Dubai",
        phone: "+97143123456",
        birth: "1993-04-22",
        id_type: "passport",
        id_number: "X1234567",
    },
    Person {
        first: "Ethan",
        last: "Wilson",
        country: "CA",
        city: "Toronto",
        phone: "+14165550123",
        birth: "1985-10-10",
        id_type: "passport",
        id_number: "AB123456",
    },
    Person {
        first: "Mia",
        last: "Jensen",
        country: "DK",
        city: "Copenhagen",
        phone: "+4533123456",
        birth: "1991-01-26",
        id_type: "passport",
        id_number: "206123456",
    },
];

struct Company {
    name: &'static str,
    country: &'static str,
    subdivision: Option<&'static str>,
    entity_type: &'static str,
    registration: &'static str,
}

const COMPANIES: &[Company] = &[
    Company {
        name: "Northwind Hosting LLC",
        country: "US",
        subdivision: Some("US-DE"),
        entity_type: "LLC",
        registration: "7318245",
    },
    Company {
        name: "Blue Fjord Cloud AS",
        country: "NO",
        subdivision: None,
        entity_type: "AS",
        registration: "923609016",
    },
    Company {
        name: "Kestrel Analytics GmbH",
        country: "DE",
        subdivision: Some("DE-BY"),
        entity_type: "GmbH",
        registration: "HRB123456",
    },
    Company {
        name: "Lumen Render Studio Ltd",
        country: "GB",
        subdivision: None,
        entity_type: "Ltd",
        registration: "09876543",
    },
    Company {
        name: "Cobalt Ridge Inc",
        country: "US",
        subdivision: Some("US-CA"),
        entity_type: "Inc",
        registration: "C4123456",
    },
    Company {
        name: "Saffron Data Pvt Ltd",
        country: "IN",
        subdivision: None,
        entity_type: "Pvt Ltd",
        registration: "U72900KA2015PTC082988",
    },
    Company {
        name: "Tidewater Reseller BV",
        country: "NL",
        subdivision: None,
        entity_type: "BV",
        registration: "34123456",
    },
    Company {
        name: "Aurora Compute Oy",
        country: "FI",
        subdivision: None,
        entity_type: "Oy",
        registration: "28123456",
    },
    Company {
        name: "Granite Peak Systems Corp",
        country: "US",
        subdivision: Some("US-TX"),
        entity_type: "Corp",
        registration: "802345678",
    },
    Company {
        name: "Mistral Edge SAS",
        country: "FR",
        subdivision: None,
        entity_type: "SAS",
        registration: "552100554",
    },
    Company {
        name: "Pacific Lattice Pte Ltd",
        country: "SG",
        subdivision: None,
        entity_type: "Pte Ltd",
        registration: "201912345K",
    },
    Company {
        name: "Andes Stream SpA",
        country: "CL",
        subdivision: None,
        entity_type: "SpA",
        registration: "76123456",
    },
];

const CARDS: &[&str] = &[
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "3530111333300000",
];
const IBANS: &[&str] = &[
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
];
const WALLETS: &[(&str, &str)] = &[
    ("ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
    ("bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
];

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn person_identity(p: &Person) -> IdentityDto {
    IdentityDto {
        names: vec![NameDto {
            kind: "legal".into(),
            full: format!("{} {}", p.first, p.last),
        }],
        birth_date: Some(p.birth.into()),
        citizenships: vec![p.country.into()],
        national_ids: vec![NationalIdDto {
            id_type: p.id_type.into(),
            number: p.id_number.into(),
            issuing_country: p.country.into(),
        }],
        addresses: vec![AddressDto {
            kind: "residential".into(),
            lines: vec![format!("{} Example Street", 10 + p.first.len())],
            city: Some(p.city.into()),
            postal_code: Some("10001".into()),
            subdivision: None,
            country: p.country.into(),
        }],
        emails: vec![format!(
            "{}.{}@example.com",
            ascii_lower(p.first),
            ascii_lower(p.last)
        )],
        phones: vec![p.phone.into()],
    }
}

fn payment(i: usize) -> PaymentMethodIn {
    let base = PaymentMethodIn {
        method_type: String::new(),
        card: None,
        bank_account: None,
        crypto_wallet: None,
        other: None,
        source: None,
        external_customer_id: Some(format!("psp_cus_{i:04}")),
        transaction_ids: vec![format!("txn_{i:04}_1")],
    };
    match i % 4 {
        0 | 1 => PaymentMethodIn {
            method_type: "card".into(),
            card: Some(CardIn {
                number: Some(CARDS[i % CARDS.len()].into()),
                brand: None,
                bin: None,
                last4: None,
                issuing_country: None,
            }),
            ..base
        },
        2 => PaymentMethodIn {
            method_type: "bank_account".into(),
            bank_account: Some(BankAccountDto {
                institution: Some("Example Bank".into()),
                iban: Some(IBANS[i % IBANS.len()].into()),
                account_reference: None,
                country: None,
            }),
            ..base
        },
        _ => {
            let (chain, address) = WALLETS[i % WALLETS.len()];
            PaymentMethodIn {
                method_type: "crypto_wallet".into(),
                crypto_wallet: Some(CryptoWalletDto {
                    chain: chain.into(),
                    address: address.into(),
                }),
                ..base
            }
        }
    }
}

/// The demo customers as API inputs (deterministic).
pub fn customers() -> Vec<CustomerIn> {
    let mut out = Vec::new();
    for (i, p) in PEOPLE.iter().enumerate() {
        out.push(CustomerIn {
            kind: "individual".into(),
            external_id: Some(format!("demo-ind-{i:03}")),
            identity: person_identity(p),
            entity: None,
            payment_methods: vec![payment(i)],
            beneficial_owners: vec![],
            notice: None,
        });
    }
    for (i, c) in COMPANIES.iter().enumerate() {
        // Two owners each: the first from the company's own country where we have one, the
        // second foreign to it — so entities with one U.S. and one foreign owner appear.
        let owner_a = PEOPLE
            .iter()
            .find(|p| p.country == c.country)
            .unwrap_or(&PEOPLE[(i * 5) % PEOPLE.len()]);
        let owner_b = &PEOPLE[(i * 7 + 3) % PEOPLE.len()];
        let owner_b = if std::ptr::eq(owner_a, owner_b) {
            &PEOPLE[(i * 7 + 4) % PEOPLE.len()]
        } else {
            owner_b
        };
        out.push(CustomerIn {
            kind: "entity".into(),
            external_id: Some(format!("demo-ent-{i:03}")),
            identity: IdentityDto {
                names: vec![NameDto {
                    kind: "legal".into(),
                    full: c.name.into(),
                }],
                birth_date: None,
                citizenships: vec![],
                national_ids: vec![NationalIdDto {
                    id_type: "registration".into(),
                    number: c.registration.into(),
                    issuing_country: c.country.into(),
                }],
                addresses: vec![AddressDto {
                    kind: "registered".into(),
                    lines: vec!["1 Commerce Plaza".into()],
                    city: None,
                    postal_code: None,
                    subdivision: c.subdivision.map(str::to_string),
                    country: c.country.into(),
                }],
                emails: vec![format!("compliance@{}.example", ascii_lower(c.name))],
                phones: vec![owner_a.phone.into()],
            },
            entity: Some(EntityDto {
                place_of_organization: Some(c.country.into()),
                organization_subdivision: c.subdivision.map(str::to_string),
                entity_type: Some(c.entity_type.into()),
            }),
            payment_methods: vec![payment(i + 100)],
            beneficial_owners: vec![
                BeneficialOwnerIn {
                    id: None,
                    identity: person_identity(owner_a),
                    ownership_percent: Some(60.0),
                    control_role: Some("CEO".into()),
                },
                BeneficialOwnerIn {
                    id: None,
                    identity: person_identity(owner_b),
                    ownership_percent: Some(25.0 + (i % 3) as f64 * 5.0),
                    control_role: None,
                },
            ],
            notice: None,
        });
    }
    out
}

/// Loads the demo data unless the database already has customers. Returns how many were made.
pub async fn load(state: &AppState) -> Result<usize, ApiError> {
    if state.store.count_customers().await? > 0 {
        return Ok(0);
    }
    let products = [
        "compute",
        "object-storage",
        "gpu-cluster",
        "managed-kubernetes",
    ];
    let mut made = 0;
    for (i, input) in customers().into_iter().enumerate() {
        let id = Uuid::now_v7();
        let now = now_micros();
        let (row, terms, fields, doc) = prepare_customer(state, &input, id, 1, now)?;
        // Demo customers start their determination history like any other.
        let summary = crate::history::summarize(&doc, Vec::new());
        state
            .store
            .insert_customer(CustomerWrite {
                row,
                terms,
                audit: demo_audit("customer.create", "customer", id, fields),
                idempotency: None,
                extras: cip_store::CustomerExtras {
                    notices: Vec::new(),
                    determination: Some(crate::history::row(
                        id,
                        1,
                        crate::history::CUSTOMER_CREATED,
                        None,
                        &summary,
                        now,
                    )),
                },
            })
            .await?;
        let account_type = if input.kind == "entity" && i % 4 == 2 {
            "reseller_account"
        } else if i % 5 == 0 {
            "trial"
        } else {
            "standard"
        };
        let status = [
            "active",
            "pending_verification",
            "active",
            "restricted",
            "applied",
        ][i % 5];
        let aid = Uuid::now_v7();
        state
            .store
            .insert_account(AccountWrite {
                row: AccountRow {
                    id: aid,
                    customer_id: id,
                    external_id: Some(format!("acct-{i:04}")),
                    product: products[i % products.len()].into(),
                    account_type: account_type.into(),
                    status: status.into(),
                    opened_at: (status == "active" || status == "restricted").then_some(now),
                    closed_at: None,
                    last_accessed_at: (status == "active").then_some(now),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                },
                audit: demo_audit("account.create", "account", aid, vec!["/*".into()]),
                idempotency: None,
                transition: Some(cip_store::TransitionRow {
                    account_id: aid,
                    version: 1,
                    from_status: "none".into(),
                    to_status: status.into(),
                    reason: "demo data".into(),
                    actor: "demo".into(),
                    at: now,
                }),
                events: vec![],
            })
            .await?;
        made += 1;
    }
    demo_measure(state, now_micros()).await?;
    demo_watchlist(state).await?;
    Ok(made)
}

/// A small sample list (the provider's own format), so a newcomer sees screening at work:
/// two of its entries are demo customers, and the re-screen the server runs when it loads
/// the list at start opens review items for them in `/v1/reviews`.
async fn demo_watchlist(state: &AppState) -> Result<(), ApiError> {
    use crate::screening::{ImportRequest, ListFile, ListFormat, import};
    let entries = serde_json::json!([
        {"id": "DEMO-1", "kind": "person", "name": "Olivia Brown", "birth_date": ["1990-06-23"],
         "countries": ["GB"], "remarks": "DEMO — sample entry, not a real designation"},
        {"id": "DEMO-2", "kind": "organization", "name": "Tidewater Reseller B.V.",
         "countries": ["NL"], "remarks": "DEMO — sample entry, not a real designation"},
        {"id": "DEMO-3", "kind": "person", "name": "Viktor Demo Example", "birth_date": ["1970-01-01"],
         "countries": ["RU"], "remarks": "DEMO — matches no demo customer"}
    ]);
    import(
        state.store.as_ref(),
        ImportRequest {
            list: cip_screen::ListId::new("demo-watchlist"),
            format: ListFormat::OwnJson,
            files: vec![ListFile {
                name: "demo-watchlist.json".into(),
                part: None,
                bytes: serde_json::to_vec(&entries)
                    .map_err(|e| ApiError::Internal(format!("demo list: {e}")))?,
            }],
            force: false,
            actor: "system:demo".into(),
            role: "admin".into(),
            request_id: None,
        },
        &|_| {},
    )
    .await
    .map_err(|e| ApiError::Internal(format!("demo list: {e:?}")))?;
    Ok(())
}

/// One sample special measure, so a newcomer sees one at work: a made-up determination
/// conditioning accounts of customers tied to RU (enhanced verification, no Reseller
/// Accounts). The special-measures job applies it to the demo accounts within a minute.
async fn demo_measure(state: &AppState, now: i64) -> Result<(), ApiError> {
    use crate::measures::{
        ConditionDto, MeasureDoc, MeasureIn, TargetDto, day_start, input_of, wire_of,
    };
    let today = crate::time::today_utc();
    let input = MeasureIn {
        target: TargetDto {
            kind: "jurisdiction".into(),
            country: Some("RU".into()),
            ..Default::default()
        },
        opening: Some("conditioned".into()),
        maintaining: Some("conditioned".into()),
        conditions: vec![
            ConditionDto {
                kind: "enhanced_verification".into(),
                allowed_products: None,
                max_vcpus: None,
            },
            ConditionDto {
                kind: "no_reseller_accounts".into(),
                allowed_products: None,
                max_vcpus: None,
            },
        ],
        covers_reseller_accounts: true,
        legal_reference: "DEMO — sample determination, not a real measure".into(),
        determination_date: today.to_string(),
        effective_date: today.to_string(),
        expiry_date: None,
        compliance_days: None,
    };
    let measure = cip_core::special_measure::SpecialMeasure::parse(&input_of(&input))
        .map_err(|p| ApiError::Internal(format!("demo measure: {p:?}")))?;
    let doc = MeasureDoc {
        measure: wire_of(&measure),
        extensions: Vec::new(),
        revocation: None,
        created_by: "system:demo".into(),
    };
    let id = Uuid::now_v7();
    state
        .store
        .insert_measure(
            cip_store::MeasureRow {
                id,
                version: 1,
                target_kind: "jurisdiction".into(),
                country: Some("RU".into()),
                list_id: None,
                effective_at: day_start(measure.effective_date),
                expires_at: day_start(measure.expiry_date),
                revoked_at: None,
                created_at: now,
                updated_at: now,
                swept_at: None,
                document: serde_json::to_vec(&doc)
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            },
            demo_audit(
                "special_measure.create",
                "special_measure",
                id,
                vec!["/*".into()],
            ),
        )
        .await?;
    Ok(())
}

fn demo_audit(action: &str, record_type: &str, id: Uuid, fields: Vec<String>) -> AuditDraft {
    AuditDraft {
        at: now_micros(),
        actor: "system:demo".into(),
        role: "admin".into(),
        action: action.into(),
        record_type: record_type.into(),
        record_id: Some(id.to_string()),
        fields,
        request_id: None,
        purpose: Some("demo data".into()),
    }
}
