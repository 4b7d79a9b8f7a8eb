use super::*;

/// One line per case: the input and either its canonical form or the expected error code.
fn check<T, F: Fn(&str) -> Result<T, FieldError>, S: Fn(&T) -> String>(
    parse: F,
    show: S,
    cases: &[(&str, Result<&str, &str>)],
) {
    for (input, want) in cases {
        match (parse(input), want) {
            (Ok(v), Ok(canon)) => assert_eq!(show(&v), *canon, "input {input:?}"),
            (Err(e), Err(code)) => assert_eq!(e.code, *code, "input {input:?}: {}", e.message),
            (Ok(v), Err(code)) => {
                panic!("input {input:?} should fail with {code}, got {}", show(&v))
            }
            (Err(e), Ok(_)) => panic!("input {input:?} should parse, got {e:?}"),
        }
    }
}

#[test]
fn countries() {
    check(
        CountryCode::parse,
        |c| c.as_str().to_string(),
        &[
            ("DE", Ok("DE")),
            (" us ", Ok("US")),
            ("gb", Ok("GB")),
            ("XK", Ok("XK")),
            ("XX", Err("invalid_country")),
            ("DEU", Err("invalid_country")),
            ("", Err("invalid_country")),
            ("U\u{0}S", Err("invalid_country")),
        ],
    );
    assert_eq!(CountryCode::parse("de").unwrap().alpha3(), "DEU");
    assert_eq!(CountryCode::from_alpha3("usa").unwrap().as_str(), "US");
    assert!(CountryCode::from_alpha3("XXX").is_err());
    check(
        Subdivision::parse,
        |s| s.as_str().to_string(),
        &[
            ("US-CA", Ok("US-CA")),
            ("us-dc", Ok("US-DC")),
            ("GB-ENG", Ok("GB-ENG")),
            ("FR-75C", Ok("FR-75C")),
            ("US-XX", Err("invalid_subdivision")),
            ("XX-CA", Err("invalid_subdivision")),
            ("USCA", Err("invalid_subdivision")),
            ("DE-ABCD", Err("invalid_subdivision")),
        ],
    );
}

#[test]
fn emails_and_phones() {
    check(
        Email::parse,
        |e| e.as_str().to_string(),
        &[
            ("Anna@Example.COM", Ok("Anna@example.com")),
            (" a.b+c@sub.example.org ", Ok("a.b+c@sub.example.org")),
            ("not-an-email", Err("invalid_email")),
            ("a@b", Err("invalid_email")),
            ("@example.com", Err("invalid_email")),
        ],
    );
    assert_eq!(
        Email::parse("Anna@Example.COM").unwrap().index_key(),
        "anna@example.com"
    );
    check(
        Phone::parse,
        |p| p.as_str().to_string(),
        &[
            ("+14155552671", Ok("+14155552671")),
            ("+44 20 7946 0958", Ok("+442079460958")),
            ("+49 (30) 901-820", Ok("+4930901820")),
            ("+1 555", Err("invalid_phone")),
            ("4155552671", Err("invalid_phone")),
            ("+1 415 555 2671 x", Err("invalid_phone")),
        ],
    );
    assert_eq!(
        Phone::parse("+442079460958")
            .unwrap()
            .country()
            .unwrap()
            .as_str(),
        "GB"
    );
    assert_eq!(
        Phone::parse("+14155552671")
            .unwrap()
            .country()
            .unwrap()
            .as_str(),
        "US"
    );
}

#[test]
fn ibans_and_cards() {
    check(
        Iban::parse,
        |i| i.as_str().to_string(),
        &[
            ("GB82 WEST 1234 5698 7654 32", Ok("GB82WEST12345698765432")),
            ("de89370400440532013000", Ok("DE89370400440532013000")),
            ("GB82 WEST 1234 5698 7654 33", Err("checksum_mismatch")),
            ("DE89 3704 0044 0532 0130 01", Err("checksum_mismatch")),
            ("hello", Err("invalid_iban")),
        ],
    );
    assert_eq!(
        Iban::parse("DE89370400440532013000")
            .unwrap()
            .country()
            .as_str(),
        "DE"
    );
    check(
        CardNumber::parse,
        |c| format!("{}/{}/{}", c.brand(), c.bin(), c.last4()),
        &[
            ("4111 1111 1111 1111", Ok("visa/41111111/1111")),
            ("5555-5555-5555-4444", Ok("mastercard/55555555/4444")),
            ("378282246310005", Ok("amex/378282/0005")),
            ("6011111111111117", Ok("discover/60111111/1117")),
            ("3530111333300000", Ok("jcb/35301113/0000")),
            ("4111 1111 1111 1112", Err("checksum_mismatch")),
            ("4111", Err("invalid_card_number")),
            ("4111x1111", Err("invalid_card_number")),
        ],
    );
    assert_eq!(
        format!("{:?}", CardNumber::parse("4111111111111111").unwrap()),
        "CardNumber(****1111)"
    );
    assert!(CardBin::parse("411111").is_ok() && CardBin::parse("41111").is_err());
    assert!(CardLast4::parse("1111").is_ok() && CardLast4::parse("111a").is_err());
    assert_eq!(
        CardBrand::parse("American Express").unwrap(),
        CardBrand::Amex
    );
}

#[test]
fn wallets() {
    let btc = WalletChain::parse("btc").unwrap();
    let eth = WalletChain::parse("ETH").unwrap();
    check(
        |s| WalletAddress::parse(&btc, s),
        |w| w.as_str().to_string(),
        &[
            (
                "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
                Ok("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
            ),
            (
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
                Ok("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
            ),
            (
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                Ok("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            ),
            (
                "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ",
                Ok("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            ),
            (
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
                Ok("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
            ),
            (
                "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
                Err("checksum_mismatch"),
            ),
            (
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr",
                Err("checksum_mismatch"),
            ),
            (
                "bc1Qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                Err("invalid_address"),
            ),
        ],
    );
    check(
        |s| WalletAddress::parse(&eth, s),
        |w| w.as_str().to_string(),
        &[
            (
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                Ok("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            ),
            (
                "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                Ok("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"),
            ),
            (
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
                Ok("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            ),
            (
                "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                Err("checksum_mismatch"),
            ),
            (
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
                Err("invalid_address"),
            ),
            (
                "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                Err("invalid_address"),
            ),
        ],
    );
    let a = WalletAddress::parse(&eth, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").unwrap();
    let b = WalletAddress::parse(&eth, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap();
    assert_eq!(a.index_key(), b.index_key());
    assert!(WalletChain::parse("Solana").is_ok() && WalletChain::parse("no spaces").is_err());
}

#[test]
fn text_dates_ownership() {
    check(
        PersonName::parse,
        |n| n.as_str().to_string(),
        &[
            ("  Anna   Maria  Schmidt ", Ok("Anna Maria Schmidt")),
            ("Zoë", Ok("Zoë")),
            ("Zoe\u{0308}", Ok("Zoë")),
            ("", Err("empty")),
            ("   ", Err("empty")),
            ("A\u{7}B", Err("control_character")),
        ],
    );
    assert_eq!(
        PersonName::parse(&"x".repeat(301)).unwrap_err().code,
        "too_long"
    );
    check(
        NationalIdNumber::parse,
        |n| n.as_str().to_string(),
        &[
            ("c01x-00t.47", Ok("C01X00T47")),
            ("", Err("empty")),
            ("ABC#1", Err("invalid_format")),
        ],
    );
    let today = jiff::civil::date(2026, 11, 24);
    check(
        |s| parse_birth_date(s, today),
        |d| d.to_string(),
        &[
            ("1985-04-12", Ok("1985-04-12")),
            ("2000-02-29", Ok("2000-02-29")),
            ("1990-02-30", Err("invalid_date")),
            ("1990-2-3", Err("invalid_date")),
            ("2999-01-01", Err("date_in_future")),
            ("1850-01-01", Err("out_of_range")),
        ],
    );
    assert_eq!(
        OwnershipPercent::from_f64(25.5).unwrap().basis_points(),
        2550
    );
    assert_eq!(OwnershipPercent::from_f64(100.0).unwrap().as_f64(), 100.0);
    for bad in [-1.0, 100.01, f64::NAN, f64::INFINITY] {
        assert!(OwnershipPercent::from_f64(bad).is_err(), "{bad}");
    }
    assert_eq!(
        OwnershipPercent::from_f64(33.333).unwrap_err().code,
        "too_precise"
    );
}

proptest::proptest! {
    #[test]
    fn no_parser_panics(s in "\\PC{0,80}") {
        let _ = CountryCode::parse(&s);
        let _ = Subdivision::parse(&s);
        let _ = Email::parse(&s);
        let _ = Phone::parse(&s);
        let _ = Iban::parse(&s);
        let _ = CardNumber::parse(&s);
        let _ = CardBrand::parse(&s);
        let _ = WalletAddress::parse(&WalletChain::Bitcoin, &s);
        let _ = WalletAddress::parse(&WalletChain::Ethereum, &s);
        let _ = NationalIdNumber::parse(&s);
        let _ = PersonName::parse(&s);
        let _ = parse_date(&s);
    }

    #[test]
    fn canonical_forms_round_trip(s in "[A-Za-z]{2}") {
        if let Ok(c) = CountryCode::parse(&s) {
            proptest::prop_assert_eq!(CountryCode::parse(c.as_str()).unwrap(), c);
        }
    }
}
