//! Create Checkout and Get Payment Status through HTTP.

use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn a_merchant_creates_a_checkout_and_reads_its_status() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    body["customerAccountId"] = json!("CUST-1");
    body["customReferences"] = json!({"custom1": "a", "custom3": "c"});
    body["order"] = json!({"externalOrderReference": "123-333", "lines": [{"klarnaLineType": "Physical", "itemArticleId": "321456", "itemName": "tires A", "quantity": 2, "unitPrice": 125}]});
    let r = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let created: Value = r.json().await.unwrap();
    let id = created["transactionId"].as_str().unwrap();
    assert!(smartpay_domain::schema::is_uuid(id));
    let token = created["checkoutToken"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["paymentStatus"], "CREATED");
    assert_eq!(created["externalOrderReference"], "123-333");
    assert!(created["requestTime"].as_str().unwrap().ends_with('Z'));

    let r = app.status(&app.basic(m), id).await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["transactionId"], id);
    assert_eq!(s["paymentStatus"], "CREATED");
    assert_eq!(s["reconciliationReferenceId"], Value::Null);
    assert_eq!(s["description"], "Purchase 1x product ABC");
    assert_eq!(s["transactionOverview"]["amount"], json!(10.99));
    assert_eq!(s["transactionOverview"]["currencyCode"], "EUR");
    assert_eq!(s["transactionOverview"]["paymentMethod"], "CARDS");
    assert_eq!(s["transactionOverview"]["customerAccountId"], "CUST-1");
    assert_eq!(s["transactionOverview"]["mit"], false);
    assert_eq!(s["transactionOverview"]["customReferences"], json!({"custom1": "a", "custom3": "c"}));
    assert_eq!(s["modifications"], json!([]));
    assert_eq!(s["statusHistory"][0]["status"], "CREATED");
    assert_eq!(s["creationDate"], created["requestTime"]);
    assert!(s["lastStatusDate"].as_str().unwrap().len() == 24);
}

#[tokio::test]
async fn amounts_keep_the_currencys_precision_exactly() {
    let app = spawn_app().await;
    let m = &app.merchant;
    for (amount, currency, shown) in [
        ("800.2", "EUR", "800.20"),
        ("1e2", "JPY", "100"),
        ("1.234", "KWD", "1.234"),
        ("9999999999999999.99", "EUR", "9999999999999999.99"),
    ] {
        let body = app.body(m).to_string().replace("10.99", amount).replace("\"EUR\"", &format!("\"{currency}\""));
        let r = app.create_raw(&app.basic(m), &body, &[]).await;
        assert_eq!(r.status(), 200, "{amount} {currency}");
        let id = r.json::<Value>().await.unwrap()["transactionId"].as_str().unwrap().to_owned();
        let text = app.status(&app.basic(m), &id).await.text().await.unwrap();
        assert!(text.contains(&format!("\"amount\":{shown},")), "{amount} {currency}: {text}");
    }
}

#[tokio::test]
async fn every_violation_is_reported_at_once_with_its_property() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    body["payment"]["amount"] = json!(10.999);
    body["payment"]["currencyCode"] = json!("EUR");
    body["consumer"]["firstName"] = json!("x".repeat(61));
    body["billingAddress"]["countryCode"] = json!("XX");
    body["unknownThing"] = json!(true);
    let r = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        codes(&v),
        vec![
            ("invalid_amount_precision".into(), "payment.amount".into()),
            ("unsupported_country".into(), "billingAddress.countryCode".into()),
            ("value_too_long".into(), "consumer.firstName".into()),
        ]
    );
    assert_eq!(v["errors"][2]["context"]["maxLength"], 60);
    assert_eq!(v["ignoredProperties"], json!(["unknownThing"]));
    assert!(v["traceId"].as_str().unwrap().starts_with("00-"));
    assert_eq!(super::idempotency::stored_checkouts(&app), 0, "nothing was stored");
}

#[tokio::test]
async fn messages_follow_accept_language() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    body["consumer"]["lastName"] = json!("y".repeat(61));
    for (lang, expected) in [
        ("de-DE", "Wert ist zu lang. Höchstens 60 Zeichen sind erlaubt."),
        ("de", "Wert ist zu lang. Höchstens 60 Zeichen sind erlaubt."),
        ("en-US", "Value is too long. At most 60 characters are allowed."),
        ("fr-FR", "Value is too long. At most 60 characters are allowed."),
    ] {
        let r = app.create_raw(&app.basic(m), &body.to_string(), &[("Accept-Language", lang)]).await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["message"], expected, "{lang}");
    }
}

#[tokio::test]
async fn the_integration_guides_sample_is_answered_with_the_place_of_its_trailing_comma() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let sample = format!(
        "{{\n\"merchantKey\": \"{}\",\n\"payment\": {{\n\"amount\": 10.99,\n\"currencyCode\": \"EUR\",\n\"description\": \"Purchase 1x product ABC\"\n}},\n\"consumer\": {{\n\"firstName\": \"Butcher\",\n\"lastName\": \"Hells\",\n\"emailAddress\": \"hells.butcher_001@mail.com\",\n}},\n\"billingAddress\": {{\n\"addressLine1\": \"Anystreet\"\n}}\n}}",
        m.merchant_key
    );
    let r = app.create_raw(&app.basic(m), &sample, &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "malformed_json");
    assert_eq!(v["errors"][0]["context"]["line"], 12);
    assert_eq!(v["errors"][0]["context"]["column"], 1);
    assert_eq!(v["errors"][0]["message"], "Malformed JSON: trailing comma at line 12 column 1.");
    let fixed = sample.replace("mail.com\",\n}", "mail.com\"\n}").replace(
        "\"Anystreet\"\n",
        "\"Anystreet\", \"city\": \"Anycity\", \"postCode\": \"12345\", \"countryCode\": \"DE\"\n",
    );
    assert_eq!(app.create_raw(&app.basic(m), &fixed, &[]).await.status(), 200);
}

#[tokio::test]
async fn bodies_must_be_small_json() {
    let app = spawn_app().await;
    let auth = app.basic(&app.merchant);
    let r = app
        .client
        .post(app.url("/payment/creation"))
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("unsupported_media_type".into(), "Content-Type".into())]);
    let r =
        app.client.post(app.url("/payment/creation")).header("Authorization", &auth).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415, "no Content-Type");
    let mut body = app.body(&app.merchant);
    body["padding"] = json!("x".repeat(70 * 1024));
    let r = app.create_raw(&auth, &body.to_string(), &[]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["context"]["maxBytes"], 65536);
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let r = app.create_raw(&auth, &deep, &[]).await;
    assert_eq!(r.status(), 400);
    let r = app.create_raw(&auth, "{\"merchantKey\": \"a\", \"merchantKey\": \"b\"}", &[]).await;
    assert_eq!(r.status(), 400, "duplicate keys");
    let r = app
        .client
        .post(app.url("/payment/creation"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body(b"{\"a\":\"\xff\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "invalid UTF-8");
}

#[tokio::test]
async fn server_owned_fields_in_the_body_change_nothing_and_are_listed() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    body["paymentStatus"] = json!("CAPTURED");
    body["transactionId"] = json!("11111111-1111-4111-8111-111111111111");
    body["reconciliationReferenceId"] = json!("forged");
    body["capturedAmount"] = json!(10.99);
    let r = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["transactionId"], "11111111-1111-4111-8111-111111111111");
    let mut ignored: Vec<String> = serde_json::from_value(v["ignoredProperties"].clone()).unwrap();
    ignored.sort();
    assert_eq!(ignored, ["capturedAmount", "paymentStatus", "reconciliationReferenceId", "transactionId"]);
    let s: Value = app.status(&app.basic(m), v["transactionId"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(s["paymentStatus"], "CREATED");
    assert_eq!(s["reconciliationReferenceId"], Value::Null);
}

#[tokio::test]
async fn text_is_returned_verbatim_and_unicode_counts_characters() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let mut body = app.body(m);
    let description = format!("<script>alert(1)</script> Grüße 😀{}", "é".repeat(90));
    body["payment"]["description"] = json!(description);
    body["consumer"]["firstName"] = json!("😀".repeat(60));
    let v: Value = app.create_raw(&app.basic(m), &body.to_string(), &[]).await.json().await.unwrap();
    let s: Value = app.status(&app.basic(m), v["transactionId"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(s["description"], description);
    body["payment"]["description"] = json!("a\u{202E}b");
    let r = app.create_raw(&app.basic(m), &body.to_string(), &[]).await;
    assert_eq!(codes(&r.json().await.unwrap()), vec![("invalid_characters".into(), "payment.description".into())]);
}

#[tokio::test]
async fn another_merchants_payment_does_not_exist_for_the_caller() {
    let app = spawn_app().await;
    let created = app.create(&app.merchant).await;
    let id = created["transactionId"].as_str().unwrap();
    for auth in [app.basic(&app.other), format!("Bearer {}", app.token(&app.other).await)] {
        let r = app.status(&auth, id).await;
        assert_eq!(r.status(), 404);
        let text = r.text().await.unwrap();
        assert!(!text.contains(id), "the body names no foreign id");
    }
    let r = app.status(&app.basic(&app.other), "00000000-0000-4000-8000-000000000000").await;
    assert_eq!(r.status(), 404, "unknown ids look the same");
    let r = app.status(&app.basic(&app.merchant), &id.to_uppercase()).await;
    assert_eq!(r.status(), 200, "ids are case-insensitive");
}

#[tokio::test]
async fn a_malformed_transaction_id_is_a_bad_request() {
    let app = spawn_app().await;
    for bad in ["123", "not-a-uuid", "00000000-0000-4000-8000-00000000000g", "00000000000040008000000000000000"] {
        let r = app.status(&app.basic(&app.merchant), bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(codes(&r.json().await.unwrap()), vec![("invalid_format".into(), "transactionId".into())]);
    }
}

#[tokio::test]
async fn checkouts_past_their_lifetime_become_expired() {
    let app = spawn_app_with(|c| c.checkout_ttl_seconds = 1).await;
    let created = app.create(&app.merchant).await;
    let id = created["transactionId"].as_str().unwrap();
    let mut status = String::new();
    for _ in 0..60 {
        let s: Value = app.status(&app.basic(&app.merchant), id).await.json().await.unwrap();
        status = s["paymentStatus"].as_str().unwrap().to_owned();
        if status == "EXPIRED" {
            let history: Vec<&str> =
                s["statusHistory"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
            assert_eq!(history, ["CREATED", "EXPIRED"]);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "EXPIRED");
}

#[tokio::test]
async fn expiry_catches_up_after_a_restart() {
    let app = spawn_app_with(|c| c.checkout_ttl_seconds = 1).await;
    let created = app.create(&app.merchant).await;
    let id = created["transactionId"].as_str().unwrap().to_owned();
    let mut app = app;
    let state = app.running.take().unwrap();
    let config = state.state.config.clone();
    state.shutdown().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // A new process on the same database: the due checkout expires on its first sweep.
    let (store, secrets) = smartpay_server::connect_store(&config).await.unwrap();
    let state = AppState::new(config, store, secrets).await.unwrap();
    let expired = smartpay_server::workers::sweep_once(&state, smartpay_domain::Millis::now()).await.unwrap();
    assert_eq!(expired, 1);
    let p = state.store.payment(&app.merchant.merchant_key, &id).await.unwrap().unwrap();
    assert_eq!(p.status, smartpay_domain::PaymentStatus::Expired);
}
