//! Measures parse + validate of the integration guide's Create Checkout body.
//! `cargo run --release -p smartpay-domain --example validate_cost`
fn main() {
    let body = br#"{"merchantKey":"48c4e923-e88c-464b-a4e7-ccb2c6d3775e","payment":{"amount":10.99,"currencyCode":"EUR","description":"Purchase 1x product ABC"},"consumer":{"firstName":"Butcher","lastName":"Hells","emailAddress":"hells.butcher_001@mail.com"},"billingAddress":{"addressLine1":"Anystreet","number":"123","city":"Anycity","postCode":"12345","countryCode":"DE"}}"#;
    let n = 200_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let v = smartpay_domain::json::parse(body).ok();
        std::hint::black_box(&v);
    }
    let parse = t.elapsed() / n;
    let v = smartpay_domain::json::parse(body).ok();
    let t = std::time::Instant::now();
    for _ in 0..n {
        if let Some(v) = &v {
            std::hint::black_box(smartpay_domain::checkout::validate(v).is_ok());
        }
    }
    println!("parse {:?}/body, validate+canonical {:?}/body", parse, t.elapsed() / n);
}
