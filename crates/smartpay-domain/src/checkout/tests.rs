use super::*;
use crate::json;
use serde_json::{Value as J, json};

fn base() -> J {
    json!({
        "merchantKey": "48c4e923-e88c-464b-a4e7-ccb2c6d3775e",
        "payment": {"amount": 10.99, "currencyCode": "EUR", "description": "Purchase 1x product ABC"},
        "consumer": {"firstName": "Butcher", "lastName": "Hells", "emailAddress": "hells.butcher_001@mail.com"},
        "billingAddress": {"addressLine1": "Anystreet", "number": "123", "city": "Anycity", "postCode": "12345", "countryCode": "DE"}
    })
}

fn run(body: &J) -> Result<ValidCheckout, (Vec<Violation>, Vec<String>)> {
    let text = serde_json::to_string(body).unwrap();
    validate(&json::parse(text.as_bytes()).unwrap())
}

fn run_text(text: &str) -> Result<ValidCheckout, (Vec<Violation>, Vec<String>)> {
    validate(&json::parse(text.as_bytes()).unwrap())
}

/// Sets `value` at a slash-separated path (creating objects on the way); `null` removes.
fn set(body: &mut J, path: &str, value: J) {
    let mut cur = body;
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts[..parts.len() - 1] {
        cur = if let Ok(i) = p.parse::<usize>() {
            &mut cur[i]
        } else {
            if cur.get(*p).is_none() {
                cur[*p] = json!({});
            }
            &mut cur[*p]
        };
    }
    let last = parts[parts.len() - 1];
    if value.is_null() {
        cur.as_object_mut().unwrap().remove(last);
    } else {
        cur[last] = value;
    }
}

fn long(n: usize) -> J {
    J::String("x".repeat(n))
}

#[test]
fn the_integration_guides_checkout_is_valid() {
    let v = run(&base()).unwrap();
    assert_eq!(v.amount.minor, 1099);
    assert_eq!(v.amount.currency.code(), "EUR");
    assert_eq!(v.description, "Purchase 1x product ABC");
    assert!(v.ignored.is_empty());
}

#[test]
fn every_rule_is_enforced() {
    let line = json!({"klarnaLineType": "Physical", "itemArticleId": "321456", "itemName": "tires A"});
    // (path, value, code, property)
    let cases: Vec<(&str, J, &str, &str)> = vec![
        ("merchantKey", J::Null, "missing_property", "merchantKey"),
        ("merchantKey", json!("not-a-uuid"), "invalid_format", "merchantKey"),
        ("merchantKey", json!(42), "invalid_type", "merchantKey"),
        ("merchantKey", long(37), "value_too_long", "merchantKey"),
        ("partnerReference", long(65), "value_too_long", "partnerReference"),
        ("partnerReference", json!("ORDER 1"), "invalid_characters", "partnerReference"),
        ("partnerReference", json!("ORDER/1"), "invalid_characters", "partnerReference"),
        ("partnerReference", json!(""), "value_too_short", "partnerReference"),
        ("customerAccountId", long(256), "value_too_long", "customerAccountId"),
        ("3dsExemption", json!("XYZ"), "invalid_value", "3dsExemption"),
        ("3dsExemption", json!({"type": "XY"}), "invalid_value", "3dsExemption.type"),
        ("3dsExemption", json!({}), "missing_property", "3dsExemption.type"),
        ("3dsExemption", json!(5), "invalid_type", "3dsExemption"),
        ("shopCountry", json!("DEU"), "value_too_long", "shopCountry"),
        ("shopCountry", json!("XX"), "unsupported_country", "shopCountry"),
        ("shopCountry", json!("de"), "unsupported_country", "shopCountry"),
        ("payment", J::Null, "missing_property", "payment"),
        ("payment", json!([]), "invalid_type", "payment"),
        ("payment/amount", J::Null, "missing_property", "payment.amount"),
        ("payment/amount", json!("10.99"), "invalid_type", "payment.amount"),
        ("payment/amount", json!(0), "value_out_of_bounds", "payment.amount"),
        ("payment/amount", json!(-1), "value_out_of_bounds", "payment.amount"),
        ("payment/amount", json!(10.999), "invalid_amount_precision", "payment.amount"),
        ("payment/amount", json!(1e20), "value_out_of_bounds", "payment.amount"),
        ("payment/currencyCode", J::Null, "missing_property", "payment.currencyCode"),
        ("payment/currencyCode", json!("eur"), "invalid_format", "payment.currencyCode"),
        ("payment/currencyCode", json!("EURO"), "value_too_long", "payment.currencyCode"),
        ("payment/currencyCode", json!("ABC"), "unsupported_currency", "payment.currencyCode"),
        ("payment/currencyCode", json!("XAU"), "unsupported_currency", "payment.currencyCode"),
        ("payment/description", J::Null, "missing_property", "payment.description"),
        ("payment/description", long(128), "value_too_long", "payment.description"),
        ("payment/description", json!("a\u{0000}b"), "invalid_characters", "payment.description"),
        ("payment/description", json!("evil\u{202E}txt"), "invalid_characters", "payment.description"),
        ("billingAddress", J::Null, "missing_property", "billingAddress"),
        ("billingAddress/addressLine1", J::Null, "missing_property", "billingAddress.addressLine1"),
        ("billingAddress/addressLine1", long(61), "value_too_long", "billingAddress.addressLine1"),
        ("billingAddress/addressLine2", long(61), "value_too_long", "billingAddress.addressLine2"),
        ("billingAddress/addressLine3", long(61), "value_too_long", "billingAddress.addressLine3"),
        ("billingAddress/number", long(11), "value_too_long", "billingAddress.number"),
        ("billingAddress/city", J::Null, "missing_property", "billingAddress.city"),
        ("billingAddress/city", long(51), "value_too_long", "billingAddress.city"),
        ("billingAddress/postCode", J::Null, "missing_property", "billingAddress.postCode"),
        ("billingAddress/postCode", long(11), "value_too_long", "billingAddress.postCode"),
        ("billingAddress/countryCode", J::Null, "missing_property", "billingAddress.countryCode"),
        ("billingAddress/countryCode", json!("D"), "value_too_short", "billingAddress.countryCode"),
        ("billingAddress/countryCode", json!("ZZZ"), "unsupported_country", "billingAddress.countryCode"),
        ("billingAddress/countryCode", json!("US"), "missing_property", "billingAddress.state"),
        ("billingAddress/countryCode", json!("CAN"), "missing_property", "billingAddress.state"),
        ("billingAddress/state", long(4), "value_too_long", "billingAddress.state"),
        (
            "shippingAddress",
            json!({"addressLine1": "A", "city": "B", "postCode": "1", "countryCode": "USA"}),
            "missing_property",
            "shippingAddress.state",
        ),
        (
            "shippingAddress",
            json!({"city": "B", "postCode": "1", "countryCode": "DE"}),
            "missing_property",
            "shippingAddress.addressLine1",
        ),
        ("consumer", J::Null, "missing_property", "consumer"),
        ("consumer/firstName", J::Null, "missing_property", "consumer.firstName"),
        ("consumer/firstName", long(61), "value_too_long", "consumer.firstName"),
        ("consumer/lastName", J::Null, "missing_property", "consumer.lastName"),
        ("consumer/lastName", long(61), "value_too_long", "consumer.lastName"),
        ("consumer/middleName", long(61), "value_too_long", "consumer.middleName"),
        ("consumer/emailAddress", J::Null, "missing_property", "consumer.emailAddress"),
        ("consumer/emailAddress", json!("not an email"), "invalid_format", "consumer.emailAddress"),
        ("consumer/emailAddress", json!("a@b"), "invalid_format", "consumer.emailAddress"),
        (
            "consumer/emailAddress",
            J::String(format!("{}@example.com", "x".repeat(250))),
            "value_too_long",
            "consumer.emailAddress",
        ),
        ("consumer/title", json!("Dr"), "invalid_value", "consumer.title"),
        ("consumer/culture", json!("deDE"), "invalid_format", "consumer.culture"),
        ("consumer/culture", json!("de_DE"), "invalid_format", "consumer.culture"),
        ("consumer/dateOfBirth", json!("1980-02-30"), "invalid_format", "consumer.dateOfBirth"),
        ("consumer/dateOfBirth", json!("1899-12-31"), "value_out_of_bounds", "consumer.dateOfBirth"),
        ("consumer/dateOfBirth", json!("2999-01-01"), "value_out_of_bounds", "consumer.dateOfBirth"),
        ("consumer/gender", json!("X"), "invalid_value", "consumer.gender"),
        ("consumer/mobilePhone", long(31), "value_too_long", "consumer.mobilePhone"),
        ("consumer/taxId", long(31), "value_too_long", "consumer.taxId"),
        ("templateContext/templateId", json!("nope"), "invalid_format", "templateContext.templateId"),
        ("templateContext/templateName", long(101), "value_too_long", "templateContext.templateName"),
        (
            "templateContext/merchantLogoURL",
            json!("javascript:alert(1)"),
            "invalid_format",
            "templateContext.merchantLogoURL",
        ),
        ("order", json!({"lines": []}), "missing_property", "order.externalOrderReference"),
        ("order", json!({"externalOrderReference": "1"}), "missing_property", "order.lines"),
        (
            "order",
            json!({"externalOrderReference": "x".repeat(226), "lines": []}),
            "value_too_long",
            "order.externalOrderReference",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": vec![line.clone(); 101]}),
            "too_many_items",
            "order.lines",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"itemArticleId": "1", "itemName": "n"}]}),
            "missing_property",
            "order.lines[0].klarnaLineType",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Ghost", "itemArticleId": "1", "itemName": "n"}]}),
            "invalid_value",
            "order.lines[0].klarnaLineType",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "x".repeat(21), "itemName": "n"}]}),
            "value_too_long",
            "order.lines[0].itemArticleId",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "x".repeat(136)}]}),
            "value_too_long",
            "order.lines[0].itemName",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1"}]}),
            "missing_property",
            "order.lines[0].itemName",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "lineNumber": 0}]}),
            "value_out_of_bounds",
            "order.lines[0].lineNumber",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "lineType": "Other"}]}),
            "invalid_value",
            "order.lines[0].lineType",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "quantity": 1.5}]}),
            "invalid_type",
            "order.lines[0].quantity",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "unitPrice": 1.001}]}),
            "invalid_amount_precision",
            "order.lines[0].unitPrice",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "grossAmount": -1}]}),
            "value_out_of_bounds",
            "order.lines[0].grossAmount",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "vatPercent": 101}]}),
            "value_out_of_bounds",
            "order.lines[0].vatPercent",
        ),
        (
            "order",
            json!({"externalOrderReference": "1", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "1", "itemName": "n", "vatPercent": 19.001}]}),
            "invalid_amount_precision",
            "order.lines[0].vatPercent",
        ),
        ("extraInfo/productGroup", long(101), "value_too_long", "extraInfo.productGroup"),
        ("customReferences/custom1", long(256), "value_too_long", "customReferences.custom1"),
        ("customReferences/custom2", long(256), "value_too_long", "customReferences.custom2"),
        ("customReferences/custom3", json!(3), "invalid_type", "customReferences.custom3"),
        ("criteria", json!([{"key": "a"}]), "missing_property", "criteria[0].value"),
        ("criteria", json!({"key": "a"}), "invalid_type", "criteria"),
    ];
    for (path, value, code, property) in cases {
        let mut body = base();
        set(&mut body, path, value.clone());
        let (violations, _) = run(&body).expect_err(&format!("{path} = {value} was accepted"));
        assert!(
            violations.iter().any(|v| v.code.as_str() == code && v.property == property),
            "{path} = {value}: expected {code} on {property}, got {violations:?}"
        );
    }
}

#[test]
fn business_consumer_can_replace_consumer() {
    let mut body = base();
    set(&mut body, "consumer", J::Null);
    set(
        &mut body,
        "businessConsumer",
        json!({"companyName": "ACME", "companyType": "GmbH", "emailAddress": "a@acme.example"}),
    );
    assert!(run(&body).is_ok());
    set(&mut body, "businessConsumer/companyType", J::Null);
    let (v, _) = run(&body).unwrap_err();
    assert_eq!(v[0].property, "businessConsumer.companyType");
}

#[test]
fn all_violations_are_reported_at_once() {
    let mut body = base();
    set(&mut body, "payment/amount", json!(1.001));
    set(&mut body, "consumer/firstName", J::Null);
    set(&mut body, "billingAddress/countryCode", json!("QQ"));
    let (v, _) = run(&body).unwrap_err();
    let props: Vec<&str> = v.iter().map(|v| v.property.as_str()).collect();
    assert_eq!(props, ["payment.amount", "billingAddress.countryCode", "consumer.firstName"]);
}

#[test]
fn amounts_follow_the_currencys_exponent() {
    for (amount, currency, minor) in
        [("10.99", "EUR", 1099), ("1e2", "JPY", 100), ("1.234", "KWD", 1234), ("800.2", "EUR", 80020)]
    {
        let text = serde_json::to_string(&base())
            .unwrap()
            .replace("10.99", amount)
            .replace("\"EUR\"", &format!("\"{currency}\""));
        assert_eq!(run_text(&text).unwrap().amount.minor, minor, "{amount} {currency}");
    }
    let text = serde_json::to_string(&base()).unwrap().replace("10.99", "12.5").replace("\"EUR\"", "\"JPY\"");
    let (v, _) = run_text(&text).unwrap_err();
    assert_eq!(v[0].code.as_str(), "invalid_amount_precision");
    assert_eq!(v[0].fact("maxDecimals"), Some(&Fact::Int(0)));
}

#[test]
fn unknown_and_server_owned_fields_are_listed_and_have_no_effect() {
    let mut body = base();
    for (k, v) in [
        ("paymentStatus", json!("CAPTURED")),
        ("transactionId", json!("x")),
        ("capturedAmount", json!(5)),
        ("reconciliationReferenceId", json!("r")),
    ] {
        set(&mut body, k, v);
    }
    set(&mut body, "consumer/shoeSize", json!(44));
    let v = run(&body).unwrap();
    let mut ignored = v.ignored.clone();
    ignored.sort();
    assert_eq!(
        ignored,
        ["capturedAmount", "consumer.shoeSize", "paymentStatus", "reconciliationReferenceId", "transactionId"]
    );
    assert_eq!(v.canonical, run(&base()).unwrap().canonical, "ignored fields must not change the request");
}

#[test]
fn the_canonical_form_ignores_order_whitespace_and_amount_spelling() {
    let a = run_text(r#"{"merchantKey":"48c4e923-e88c-464b-a4e7-ccb2c6d3775e","payment":{"amount":10.99,"currencyCode":"EUR","description":"d"},"consumer":{"firstName":"A","lastName":"B","emailAddress":"a@b.de"},"billingAddress":{"addressLine1":"S","city":"C","postCode":"1","countryCode":"DE"}}"#).unwrap();
    let b = run_text(r#"{ "billingAddress": {"address":"S","city":"C","postCode":"1","countryCode":"DE"},
        "consumer":{"lastName":"B","firstName":"A","emailAddress":"a@b.de"},
        "payment":{"description":"d","currencyCode":"EUR","amount":1099e-2}, "merchantKey":"48c4e923-e88c-464b-a4e7-ccb2c6d3775e" }"#).unwrap();
    assert_eq!(a.canonical, b.canonical);
    let c = run_text(r#"{"merchantKey":"48c4e923-e88c-464b-a4e7-ccb2c6d3775e","payment":{"amount":11.99,"currencyCode":"EUR","description":"d"},"consumer":{"firstName":"A","lastName":"B","emailAddress":"a@b.de"},"billingAddress":{"addressLine1":"S","city":"C","postCode":"1","countryCode":"DE"}}"#).unwrap();
    assert_ne!(a.canonical, c.canonical);
}

#[test]
fn lengths_count_characters_not_bytes() {
    let mut body = base();
    set(&mut body, "consumer/firstName", J::String("😀".repeat(60)));
    assert!(run(&body).is_ok(), "60 four-byte characters fit a 60-character field");
    set(&mut body, "consumer/firstName", J::String("😀".repeat(61)));
    assert_eq!(run(&body).unwrap_err().0[0].code.as_str(), "value_too_long");
}

#[test]
fn text_is_kept_verbatim() {
    let mut body = base();
    set(&mut body, "payment/description", json!("<script>alert('x')</script> Ünïcødé"));
    assert_eq!(run(&body).unwrap().description, "<script>alert('x')</script> Ünïcødé");
}

#[test]
fn a_non_object_body_is_refused() {
    let (v, _) = validate(&json::parse(b"[1]").unwrap()).unwrap_err();
    assert_eq!(v[0].code.as_str(), "invalid_type");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn validation_never_panics_on_arbitrary_strings(s in "\\PC{0,80}", field in 0usize..6) {
            let paths = ["payment/description", "consumer/firstName", "billingAddress/countryCode", "partnerReference", "consumer/dateOfBirth", "consumer/emailAddress"];
            let mut body = base();
            set(&mut body, paths[field], J::String(s));
            let _ = run(&body);
        }
    }
}
