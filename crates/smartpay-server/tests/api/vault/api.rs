//! The account API (reference §3.10–§3.14): storing, listing, reading and deleting payment
//! options, and updating the account.

use super::*;

#[tokio::test]
async fn a_stored_card_is_answered_masked_with_its_reference_and_the_first_one_is_the_default() {
    let (app, clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let (y, m) = month_from_now(&app, 36);
    let r = app.store_option(&a, ACCOUNT, &store_body(VISA, (y, m))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let reference = v["storedPaymentOptionReference"].as_str().unwrap().to_owned();
    assert!(!reference.is_empty() && reference.len() <= 64, "{v}");
    let option = &v["result"][0];
    assert_eq!(option["reference"], json!(reference), "{v}");
    assert_eq!(option["carrierNumber"], "411111****1111", "{v}");
    assert_eq!(option["code"], "VISA", "{v}");
    assert_eq!(option["name"], "VISA", "{v}");
    assert_eq!(option["expiryDate"], format!("{m:02}/{y:04}"), "{v}");
    assert_eq!(option["isDefault"], true, "the account's first option is its default: {v}");
    assert_eq!(option["isExpired"], false, "{v}");
    assert_eq!(option["expiresSoon"], false, "{v}");
    assert!(!r.text().contains(VISA), "the number is never answered: {v}");

    clock.advance_ms(1_000);
    let second = app.store_option(&a, ACCOUNT, &store_body(MASTERCARD, (y, m))).await;
    assert_eq!(second.status, 201, "{}", second.text());
    let second = &second.json()["result"][0];
    assert_eq!(second["carrierNumber"], "555555****4444");
    assert_eq!((second["code"].as_str(), second["name"].as_str()), (Some("MSTRCRD"), Some("Mastercard")));
    assert_eq!(second["isDefault"], false, "only the first is the default");
    let listed = app.options_of(&a, ACCOUNT).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], *option, "Get All shows what Store answered");
    assert_eq!(&listed[1], second);
}

#[tokio::test]
async fn storing_a_card_the_account_holds_returns_its_option_instead_of_a_second_one() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let first = app.stored(&a, ACCOUNT, VISA).await;
    let again = app.stored(&a, ACCOUNT, VISA).await;
    assert_eq!(again, first, "the keyed fingerprint finds the card again");
    // Another expiry of the same card number is the same card.
    let r = app.store_option(&a, ACCOUNT, &store_body(VISA, month_from_now(&app, 48))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["storedPaymentOptionReference"], json!(first));
    let listed = app.options_of(&a, ACCOUNT).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(options_in_store(&app).await, 1);
    // Another account of the same merchant keeps its own copy.
    app.checkout_for(&a, Some("customer-0815")).await;
    let other = app.stored(&a, "customer-0815", VISA).await;
    assert_ne!(other, first);
    assert_eq!(options_in_store(&app).await, 2);
}

#[tokio::test]
async fn a_card_not_authenticated_by_3ds_or_with_invalid_data_is_refused_by_field_and_not_stored() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let valid = store_body(VISA, month_from_now(&app, 36));
    let status = "paymentOption.card.3DS.3DS2.transactionStatus";
    let number = "paymentOption.card.cardDetails.cardNumber";
    for (what, change, code, property) in [
        (
            "3DS N",
            json!({"paymentOption": {"card": {"3DS": {"3DS2": {"transactionStatus": "N"}}}}}),
            "invalid_value",
            status,
        ),
        (
            "3DS R",
            json!({"paymentOption": {"card": {"3DS": {"3DS2": {"transactionStatus": "R"}}}}}),
            "invalid_value",
            status,
        ),
        (
            "3DS C",
            json!({"paymentOption": {"card": {"3DS": {"3DS2": {"transactionStatus": "C"}}}}}),
            "invalid_value",
            status,
        ),
        (
            "3DS X",
            json!({"paymentOption": {"card": {"3DS": {"3DS2": {"transactionStatus": "X"}}}}}),
            "invalid_value",
            status,
        ),
        (
            "bad Luhn",
            json!({"paymentOption": {"card": {"cardDetails": {"cardNumber": "4111111111111112"}}}}),
            "invalid_value",
            number,
        ),
        (
            "spaces",
            json!({"paymentOption": {"card": {"cardDetails": {"cardNumber": "4111 1111 1111 1111"}}}}),
            "invalid_characters",
            number,
        ),
        (
            "brand",
            json!({"paymentOption": {"card": {"cardDetails": {"cardBrand": "MASTERCARD"}}}}),
            "invalid_value",
            "paymentOption.card.cardDetails.cardBrand",
        ),
        (
            "no country",
            json!({"billingAddress": {"countryCode": null}}),
            "missing_property",
            "billingAddress.countryCode",
        ),
        (
            "ISO-2 country",
            json!({"billingAddress": {"countryCode": "DE"}}),
            "value_too_short",
            "billingAddress.countryCode",
        ),
        (
            "USA without state",
            json!({"billingAddress": {"countryCode": "USA"}}),
            "missing_property",
            "billingAddress.state",
        ),
    ] {
        let mut body = valid.clone();
        merge(&mut body, &change);
        let r = app.store_option(&a, ACCOUNT, &body).await;
        let found = refused(&r, 400);
        assert!(found.contains(&(code.to_owned(), property.to_owned())), "{what}: {found:?}");
        assert!(!r.text().contains("4111111111111"), "{what}: no card number in errors: {}", r.text());
    }
    let mut us = valid.clone();
    merge(&mut us, &json!({"billingAddress": {"countryCode": "USA", "state": "CA"}}));
    let ok = app.store_option(&a, ACCOUNT, &us).await;
    assert_eq!(ok.status, 201, "a US address with its state: {}", ok.text());
    assert_eq!(options_in_store(&app).await, 1, "only the valid request stored a card");
}

#[tokio::test]
async fn an_expired_card_is_refused_and_one_expiring_this_month_expires_soon() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.store_option(&a, ACCOUNT, &store_body(VISA, month_from_now(&app, -1))).await;
    let found = refused(&r, 400);
    assert!(found.iter().any(|(_, p)| p.starts_with("paymentOption.card.cardDetails.cardExpiry")), "{found:?}");
    assert_eq!(options_in_store(&app).await, 0);
    // The clock is on the 15th: a card valid through this month expires within 30 days.
    let (y, m) = month_from_now(&app, 0);
    let r = app.store_option(&a, ACCOUNT, &store_body(VISA, (y, m))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let option = &r.json()["result"][0];
    assert_eq!((option["isExpired"].as_bool(), option["expiresSoon"].as_bool()), (Some(false), Some(true)), "{option}");
    assert_eq!(option["expiryDate"], format!("{m:02}/{y:04}"));
    // Two months ahead is more than 30 days away.
    let later = app.store_option(&a, ACCOUNT, &store_body(MASTERCARD, month_from_now(&app, 2))).await;
    assert_eq!(later.json()["result"][0]["expiresSoon"], false, "{}", later.text());
}

#[tokio::test]
async fn an_expired_stored_option_is_listed_as_expired_and_cannot_pay() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let state = app.state();
    // The API refuses expired cards: this one expired in the store, after it was stored.
    let (number, _) = smartpay_domain::card::CardNumber::parse(VISA).unwrap();
    let (y, m) = month_from_now(&app, -1);
    let expiry = smartpay_domain::card::Expiry { month: u8::try_from(m).unwrap(), year: u16::try_from(y).unwrap() };
    let reference = smartpay_server::vault::new_reference().unwrap();
    let option = state
        .vault
        .seal_option(
            &a.merchant_key,
            ACCOUNT,
            &reference,
            &number,
            "VISA",
            expiry,
            "tok_expired",
            "sandbox",
            state.now(),
        )
        .unwrap();
    assert!(matches!(state.store.add_payment_option(option).await.unwrap(), smartpay_store::AddOption::Added));
    let listed = app.options_of(&a, ACCOUNT).await;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["isExpired"].as_bool(), listed[0]["expiresSoon"].as_bool()), (Some(true), Some(false)));
    assert_eq!(listed[0]["expiryDate"], format!("{m:02}/{y:04}"));
    let before = app.calls();
    let r = app.widget_pay(&token, json!({"storedPaymentOptionReference": reference})).await;
    let found = refused(&r, 400);
    assert_eq!(found, vec![("card_expired".to_owned(), "storedPaymentOptionReference".to_owned())]);
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CREATED", "nothing was authorized");
    assert_eq!(app.calls(), before);
}

#[tokio::test]
async fn options_are_listed_read_and_deleted_and_a_deleted_one_is_gone() {
    let (app, clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    assert_eq!(app.list_options(&a, ACCOUNT).await.json(), json!({"result": []}), "a new account has none");
    let visa = app.stored(&a, ACCOUNT, VISA).await;
    clock.advance_ms(1_000);
    let mc = app.stored(&a, ACCOUNT, MASTERCARD).await;
    let list = app.list_options(&a, ACCOUNT).await;
    assert_eq!(list.status, 200);
    let all = list.json();
    assert_eq!(all.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["result"], "{all}");
    let refs: Vec<_> = all["result"].as_array().unwrap().iter().map(|o| o["reference"].as_str().unwrap()).collect();
    assert_eq!(refs, vec![visa.as_str(), mc.as_str()], "oldest first");

    let one = app.get_option(&a, ACCOUNT, &mc).await;
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json(), json!({"result": [all["result"][1]]}));

    let deleted = app.delete_option(&a, ACCOUNT, &mc).await;
    assert_eq!((deleted.status, deleted.json()), (200, json!({"status": "OK"})));
    assert_eq!(refused(&app.get_option(&a, ACCOUNT, &mc).await, 404), vec![("not_found".into(), String::new())]);
    assert_eq!(app.delete_option(&a, ACCOUNT, &mc).await.status, 404, "deleted once");
    let left = app.options_of(&a, ACCOUNT).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["reference"], json!(visa));
    assert_eq!(left[0]["isDefault"], true, "deleting another option leaves the default alone");
    assert_eq!(options_in_store(&app).await, 1, "the row is gone, not hidden");
    // Malformed or unknown references are simply not found.
    for bad in ["0123456789abcdef0123456789abcdef", "x%20y", &"a".repeat(65)] {
        assert_eq!(app.get_option(&a, ACCOUNT, bad).await.status, 404, "{bad}");
        assert_eq!(app.delete_option(&a, ACCOUNT, bad).await.status, 404, "{bad}");
    }
}

#[tokio::test]
async fn deleting_the_default_makes_the_oldest_remaining_option_the_default() {
    let (app, clock) = vault_app().await;
    let a = app.merchant.clone();
    let (_, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let mut refs = Vec::new();
    for number in [VISA, VISA_2, MASTERCARD, "378282246310005"] {
        refs.push(app.stored(&a, ACCOUNT, number).await);
        clock.advance_ms(1_000);
    }
    let defaults = |list: &[Value]| -> Vec<String> {
        list.iter().filter(|o| o["isDefault"] == true).map(|o| o["reference"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(defaults(&app.options_of(&a, ACCOUNT).await), vec![refs[0].clone()]);
    assert_eq!(app.delete_option(&a, ACCOUNT, &refs[0]).await.status, 200);
    assert_eq!(defaults(&app.options_of(&a, ACCOUNT).await), vec![refs[1].clone()], "the oldest of the rest");
    // The shopper makes the newest the default, then deletes it.
    assert_eq!(app.widget_default(&token, &refs[3]).await.status, 200);
    assert_eq!(defaults(&app.options_of(&a, ACCOUNT).await), vec![refs[3].clone()], "exactly one default");
    assert_eq!(app.widget_delete(&token, &refs[3]).await.status, 200);
    assert_eq!(defaults(&app.options_of(&a, ACCOUNT).await), vec![refs[1].clone()]);
    assert_eq!(app.delete_option(&a, ACCOUNT, &refs[1]).await.status, 200);
    assert_eq!(defaults(&app.options_of(&a, ACCOUNT).await), vec![refs[2].clone()], "the last one left");
}

#[tokio::test]
async fn unknown_accounts_are_not_found_and_invalid_account_ids_are_bad_requests() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let body = store_body(VISA, month_from_now(&app, 36));
    // Never named by a checkout: no account.
    assert_eq!(app.list_options(&a, "nobody").await.status, 404);
    assert_eq!(app.store_option(&a, "nobody", &body).await.status, 404);
    assert_eq!(app.update_account(&a, "nobody", &update_body()).await.status, 404);
    assert_eq!(app.get_option(&a, "nobody", "0123456789abcdef0123456789abcdef").await.status, 404);
    assert_eq!(options_in_store(&app).await, 0);
    // 255 characters is the longest account id: the checkout creates it, the API finds it.
    let longest = "k".repeat(255);
    app.checkout_for(&a, Some(&longest)).await;
    assert_eq!(app.options_of(&a, &longest).await, Vec::<Value>::new());
    assert_eq!(app.store_option(&a, &longest, &body).await.status, 201);
    // 256 are refused by Create Checkout and by every route.
    let long = "k".repeat(256);
    let mut checkout = app.body(&a);
    checkout["customerAccountId"] = json!(long);
    let r = app.create_raw(&app.basic(&a), &checkout.to_string(), &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(codes(&v), vec![("value_too_long".to_owned(), "customerAccountId".to_owned())]);
    for r in [
        app.list_options(&a, &long).await,
        app.store_option(&a, &long, &body).await,
        app.update_account(&a, &long, &update_body()).await,
        app.get_option(&a, &long, "0123456789abcdef0123456789abcdef").await,
        app.delete_option(&a, &long, "0123456789abcdef0123456789abcdef").await,
    ] {
        let found = refused(&r, 400);
        assert!(found.iter().any(|(_, p)| p == "customerAccountId"), "{found:?}");
    }
}

#[tokio::test]
async fn update_account_stores_the_address_and_consumer_and_answers_ok() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.update_account(&a, ACCOUNT, &update_body()).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "OK"})), "{}", r.text());
    let account = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    let address: Value = serde_json::from_str(account.billing_address.as_deref().unwrap()).unwrap();
    assert_eq!(address["addressLine1"], "Neue Strasse");
    assert_eq!(address["countryCode"], "DEU");
    let consumer: Value = serde_json::from_str(account.consumer.as_deref().unwrap()).unwrap();
    assert_eq!(consumer["dateOfBirth"], "1990-01-31");
    // A US address needs its state.
    let mut us = update_body();
    us["billingAddress"]["countryCode"] = json!("USA");
    us["billingAddress"]["state"] = json!("CA");
    assert_eq!(app.update_account(&a, ACCOUNT, &us).await.status, 200);
    let account = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    assert!(account.billing_address.unwrap().contains("USA"));
}

#[tokio::test]
async fn update_account_refuses_each_invalid_field_by_name_and_changes_nothing() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    assert_eq!(app.update_account(&a, ACCOUNT, &update_body()).await.status, 200);
    let before = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    let address = |field: &str, v: Value| json!({"billingAddress": {field: v}});
    let consumer = |field: &str, v: Value| json!({"consumer": {field: v}});
    for (change, code, property) in [
        (address("addressLine1", json!("x".repeat(61))), "value_too_long", "billingAddress.addressLine1"),
        (address("addressLine1", Value::Null), "missing_property", "billingAddress.addressLine1"),
        (address("addressLine2", json!("x".repeat(61))), "value_too_long", "billingAddress.addressLine2"),
        (address("city", json!("x".repeat(51))), "value_too_long", "billingAddress.city"),
        (address("city", Value::Null), "missing_property", "billingAddress.city"),
        (address("number", json!("x".repeat(11))), "value_too_long", "billingAddress.number"),
        (address("postCode", json!("x".repeat(11))), "value_too_long", "billingAddress.postCode"),
        (address("postCode", Value::Null), "missing_property", "billingAddress.postCode"),
        (address("countryCode", json!("DE")), "value_too_short", "billingAddress.countryCode"),
        (address("countryCode", json!("XYZ")), "unsupported_country", "billingAddress.countryCode"),
        (address("countryCode", Value::Null), "missing_property", "billingAddress.countryCode"),
        (address("countryCode", json!("USA")), "missing_property", "billingAddress.state"),
        (address("countryCode", json!("CAN")), "missing_property", "billingAddress.state"),
        (address("state", json!("ABCD")), "value_too_long", "billingAddress.state"),
        (consumer("culture", json!("deutsch")), "value_too_long", "consumer.culture"),
        (consumer("dateOfBirth", json!("1899-12-31")), "value_out_of_bounds", "consumer.dateOfBirth"),
        (consumer("dateOfBirth", json!("31.01.1990")), "invalid_format", "consumer.dateOfBirth"),
        (consumer("emailAddress", json!("not-an-address")), "invalid_format", "consumer.emailAddress"),
        (json!({"billingAddress": null}), "missing_property", "billingAddress"),
        (json!({"consumer": null}), "missing_property", "consumer"),
    ] {
        let mut body = update_body();
        merge(&mut body, &change);
        let found = refused(&app.update_account(&a, ACCOUNT, &body).await, 400);
        assert!(found.contains(&(code.to_owned(), property.to_owned())), "{change}: {found:?}");
    }
    // Every violation at once.
    let mut body = update_body();
    merge(
        &mut body,
        &json!({"billingAddress": {"city": null, "countryCode": "DE"}, "consumer": {"emailAddress": "x"}}),
    );
    let found = refused(&app.update_account(&a, ACCOUNT, &body).await, 400);
    let properties: Vec<_> = found.iter().map(|(_, p)| p.as_str()).collect();
    for p in ["billingAddress.city", "billingAddress.countryCode", "consumer.emailAddress"] {
        assert!(properties.contains(&p), "{p}: {found:?}");
    }
    let after = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    assert_eq!((after.billing_address, after.consumer), (before.billing_address, before.consumer));
}

/// Merges `change` into `body`: objects key by key, `null` removes the key, anything else
/// replaces.
pub fn merge(body: &mut Value, change: &Value) {
    let (Some(target), Some(changes)) = (body.as_object_mut(), change.as_object()) else {
        *body = change.clone();
        return;
    };
    for (k, v) in changes {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(_) if target.get(k).is_some_and(Value::is_object) => merge(target.get_mut(k).unwrap(), v),
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
}
