use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(rejected_requests_write_nothing);

fn detail_fields(v: &Value) -> Vec<(String, String)> {
    v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_string(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn rejected_requests_write_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let head = app.audit_head().await;

    // Every semantic problem in one answer, each with its JSON pointer.
    let bad = json!({
        "kind": "entity",
        "identity": {
            "names": [{"full": "Bad Corp"}],
            "emails": ["not-an-email"],
            "phones": ["+1 555"],
            "addresses": [{"country": "XX"}, {"country": "US", "subdivision": "DE-BE"}],
            "national_ids": [{"type": "passport", "number": "", "issuing_country": "ZZ"}]
        },
        "payment_methods": [
            {"type": "card", "card": {"number": "4111 1111 1111 1112"}},
            {"type": "bank_account", "bank_account": {"iban": "DE89 3704 0044 0532 0130 01"}},
            {"type": "crypto_wallet", "crypto_wallet": {"chain": "ethereum", "address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}},
            {"type": "crypto_wallet", "crypto_wallet": {"chain": "bitcoin", "address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"}}
        ],
        "beneficial_owners": [
            {"identity": {"names": [{"full": "A"}], "birth_date": "2999-01-01"}, "ownership_percent": 70},
            {"identity": {"names": [{"full": "B"}], "birth_date": "1990-02-30"}, "ownership_percent": 40},
            {"identity": {"names": [{"full": "C"}]}, "ownership_percent": 10}
        ]
    });
    let resp = app.post("/v1/customers", &app.admin, &bad).await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "CIP-VALIDATION-0001");
    assert!(
        v["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "errors carry the request id: {v}"
    );
    let got = detail_fields(&v);
    for (field, code) in [
        ("/identity/emails/0", None),
        ("/identity/phones/0", None),
        ("/identity/addresses/0/country", None),
        ("/identity/addresses/1/subdivision", Some("inconsistent")),
        ("/identity/national_ids/0/number", None),
        ("/identity/national_ids/0/issuing_country", None),
        ("/payment_methods/0/card/number", None),
        ("/payment_methods/1/bank_account/iban", None),
        (
            "/payment_methods/2/crypto_wallet/address",
            Some("checksum_mismatch"),
        ),
        (
            "/payment_methods/3/crypto_wallet/address",
            Some("checksum_mismatch"),
        ),
        (
            "/beneficial_owners/0/identity/birth_date",
            Some("date_in_future"),
        ),
        ("/beneficial_owners/1/identity/birth_date", None),
        ("/beneficial_owners/2", Some("not_beneficial_owner")),
        ("/beneficial_owners", Some("ownership_over_100")),
    ] {
        assert!(
            got.iter()
                .any(|(f, c)| f == field && code.is_none_or(|code| c == code)),
            "missing problem at {field} ({code:?}) in {got:?}"
        );
    }

    // Structural problems: wrong types and unknown fields, all listed.
    let resp = app
        .post(
            "/v1/customers",
            &app.admin,
            &json!({"kind": 1, "identity": {"names": "x", "colour": 1}, "extra": true}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let got = detail_fields(&resp.json().await.unwrap());
    for f in ["/kind", "/identity/names", "/identity/colour", "/extra"] {
        assert!(got.iter().any(|(x, _)| x == f), "missing {f} in {got:?}");
    }

    // Malformed JSON: 400 with a position.
    let resp = app
        .client
        .post(app.url("/v1/customers"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"kind\": \"individual\",")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "CIP-REQUEST-0001");
    assert!(v["message"].as_str().unwrap().contains("line 1"), "{v}");

    // A huge body: 413 before it is read (the limit is 256 KiB in tests).
    let huge = format!(
        "{{\"kind\":\"individual\",\"external_id\":\"{}\"}}",
        "x".repeat(400 * 1024)
    );
    let resp = app
        .client
        .post(app.url("/v1/customers"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers()["connection"],
        "close",
        "the unread body must not poison the connection"
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "CIP-REQUEST-0003"
    );

    // Wrong content type.
    let resp = app
        .client
        .post(app.url("/v1/customers"))
        .bearer_auth(&app.admin)
        .body("kind=individual")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Individuals have no beneficial owners; entities no birth date.
    let mut wrong = individual("v1");
    wrong["beneficial_owners"] =
        json!([{"identity": {"names": [{"full": "X"}]}, "ownership_percent": 50}]);
    let resp = app.post("/v1/customers", &app.admin, &wrong).await;
    assert_eq!(resp.status(), 422);

    assert_eq!(
        app.customer_count().await,
        0,
        "rejected requests write nothing"
    );
    assert_eq!(
        app.audit_head().await,
        head,
        "rejected requests write no audit entry either"
    );
    app.cleanup().await;
}
