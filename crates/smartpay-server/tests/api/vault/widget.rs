//! The widget's vault journeys (reference §1.2): guest, registered without and with stored
//! options; storing the card entered, paying with a stored one, deleting one and choosing the
//! default.

use super::*;

#[tokio::test]
async fn the_widget_offers_the_guest_journey_without_an_account_and_the_registered_one_with_it() {
    let (app, clock) = vault_app().await;
    let a = app.merchant.clone();
    let (_, guest) = app.checkout_for(&a, None).await;
    let g = app.widget_options(&guest).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.json()["journey"], "GUEST");
    assert_eq!(g.json()["options"], json!([]));
    assert_eq!(g.json()["canStore"], false, "a guest has no vault to store into");

    let (_, fresh) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_options(&fresh).await.json();
    assert_eq!((r["journey"].as_str(), r["options"].clone()), (Some("REGISTERED"), json!([])), "{r}");
    assert_eq!((r["canStore"].as_bool(), r["vaultUnavailable"].as_bool()), (Some(true), Some(false)), "{r}");

    let visa = app.stored(&a, ACCOUNT, VISA).await;
    clock.advance_ms(1_000);
    app.stored(&a, ACCOUNT, MASTERCARD).await;
    let (_, with_options) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_options(&with_options).await;
    assert_eq!(r.status, 200);
    let shown = r.json()["options"].clone();
    assert_eq!(shown, json!(app.options_of(&a, ACCOUNT).await), "the widget shows what the API lists");
    assert_eq!(shown[0]["reference"], json!(visa));
    assert_eq!(shown[0]["carrierNumber"], "411111****1111");
    assert!(!r.text().contains(VISA) && !r.text().contains(MASTERCARD), "masked only: {}", r.text());
    // The shopper's page never calls this itself: another origin is refused.
    let foreign = app
        .client
        .get(app.url("/widget/api/options"))
        .header("Origin", "https://evil.example")
        .header("X-Checkout-Token", &with_options)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}

#[tokio::test]
async fn a_card_the_shopper_chooses_to_store_is_kept_and_the_payment_is_captured_with_it() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["transactionStatus"], "CAPTURED", "{answer}");
    assert!(answer.get("storeError").is_none(), "{answer}");
    let reference = answer["storedPaymentOptionReference"].as_str().unwrap().to_owned();
    let listed = app.options_of(&a, ACCOUNT).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["reference"], json!(reference));
    assert_eq!(listed[0]["carrierNumber"], "411111****1111");
    assert_eq!(listed[0]["isDefault"], true);
    let status = app.view(&a, &id).await;
    assert_eq!(status["paymentStatus"], "CAPTURED", "{status}");
    assert_eq!(status["transactionOverview"]["customerAccountId"], ACCOUNT, "{status}");
    assert_eq!(status["transactionOverview"]["paymentMethod"], "VISA", "{status}");
    assert!(!status.to_string().contains(VISA), "{status}");

    // The next checkout of the account pays with it: no number, no CVC.
    let (next_id, next) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let shown = app.widget_options(&next).await.json();
    assert_eq!(shown["options"][0]["reference"], json!(reference), "{shown}");
    let before = app.calls();
    let paid = app.widget_pay(&next, json!({"storedPaymentOptionReference": reference})).await;
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert_eq!(paid.json()["transactionStatus"], "CAPTURED", "{}", paid.text());
    assert_eq!(paid.json()["storedPaymentOptionReference"], json!(reference));
    assert_eq!(app.calls().since(before).captures, 1, "captured at the provider");
    let status = app.view(&a, &next_id).await;
    assert_eq!(status["paymentStatus"], "CAPTURED", "{status}");
    assert_eq!(status["transactionOverview"]["customerAccountId"], ACCOUNT);
    assert_eq!(status["transactionOverview"]["paymentMethod"], "VISA");
    // Paid once: the checkout cannot be paid again with it.
    let again = app.widget_pay(&next, json!({"storedPaymentOptionReference": reference})).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(app.options_of(&a, ACCOUNT).await.len(), 1, "paying stores nothing more");
}

#[tokio::test]
async fn a_stored_card_the_provider_declines_declines_the_payment_it_was_stored_for() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, DECLINED, "737", true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["transactionStatus"], "AUTHORIZATION_FAILED", "{}", r.text());
    assert!(r.json().get("storedPaymentOptionReference").is_none(), "{}", r.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "AUTHORIZATION_FAILED");
    assert_eq!(app.options_of(&a, ACCOUNT).await, Vec::<Value>::new(), "a declined card is not kept");
    assert_eq!(options_in_store(&app).await, 0);
}

#[tokio::test]
async fn a_guest_checkout_stores_nothing_even_when_asked_to() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let (id, token) = app.checkout_for(&a, None).await;
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["transactionStatus"], "CAPTURED", "{answer}");
    assert!(answer.get("storedPaymentOptionReference").is_none() && answer.get("storeError").is_none(), "{answer}");
    assert_eq!(options_in_store(&app).await, 0);
    assert!(app.view(&a, &id).await["transactionOverview"]["customerAccountId"].is_null());
}

#[tokio::test]
async fn without_store_card_a_registered_shopper_pays_without_storing() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", false)).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    assert!(r.json().get("storedPaymentOptionReference").is_none());
    assert_eq!(app.options_of(&a, ACCOUNT).await, Vec::<Value>::new(), "storing is the shopper's explicit choice");
    assert_eq!(app.view(&a, &id).await["transactionOverview"]["customerAccountId"], ACCOUNT);
}

#[tokio::test]
async fn the_shopper_deletes_an_option_and_chooses_the_default_in_the_widget() {
    let (app, clock) = vault_app().await;
    let a = app.merchant.clone();
    let (_, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let visa = app.stored(&a, ACCOUNT, VISA).await;
    clock.advance_ms(1_000);
    let mc = app.stored(&a, ACCOUNT, MASTERCARD).await;
    let default_of = |v: &Value| {
        v["options"].as_array().unwrap().iter().find(|o| o["isDefault"] == true).map(|o| o["reference"].clone())
    };
    assert_eq!(default_of(&app.widget_options(&token).await.json()), Some(json!(visa)));
    let r = app.widget_default(&token, &mc).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "OK"})), "{}", r.text());
    let shown = app.widget_options(&token).await.json();
    assert_eq!(default_of(&shown), Some(json!(mc)));
    assert_eq!(shown["options"].as_array().unwrap().iter().filter(|o| o["isDefault"] == true).count(), 1);
    let listed = app.options_of(&a, ACCOUNT).await;
    assert_eq!(listed.iter().find(|o| o["isDefault"] == true).unwrap()["reference"], json!(mc), "the API agrees");

    let r = app.widget_delete(&token, &visa).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "OK"})), "{}", r.text());
    assert_eq!(app.get_option(&a, ACCOUNT, &visa).await.status, 404, "gone for the API too");
    assert_eq!(app.widget_delete(&token, &visa).await.status, 404, "deleted once");
    assert_eq!(app.widget_default(&token, &visa).await.status, 404);
    // The deleted option cannot pay.
    let paid = app.widget_pay(&token, json!({"storedPaymentOptionReference": visa})).await;
    assert_eq!(paid.status, 404, "{}", paid.text());
    let shown = app.widget_options(&token).await.json();
    assert_eq!(shown["options"].as_array().unwrap().len(), 1, "{shown}");
    // The widget's calls need the token of the account's checkout, from SmartPay's origin.
    let no_origin = app
        .client
        .delete(app.url(&format!("/widget/api/options/{mc}")))
        .header("X-Checkout-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403);
    assert_eq!(app.widget_delete(&"x".repeat(64), &mc).await.status, 404, "an unknown token");
    assert_eq!(app.options_of(&a, ACCOUNT).await.len(), 1);
}

#[tokio::test]
async fn entering_a_card_the_account_holds_again_keeps_its_one_option_even_when_declined() {
    let (app, _clock) = vault_app().await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    // Storing does not authorize: the card the acquirer declines can be on file already.
    let declined = app.stored(&a, ACCOUNT, DECLINED).await;
    let visa = app.stored(&a, ACCOUNT, VISA).await;
    let before = app.options_of(&a, ACCOUNT).await;
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, DECLINED, "737", true)).await;
    assert_eq!(r.json()["transactionStatus"], "AUTHORIZATION_FAILED", "{}", r.text());
    assert!(r.json().get("storedPaymentOptionReference").is_none(), "{}", r.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "AUTHORIZATION_FAILED");
    assert_eq!(app.options_of(&a, ACCOUNT).await, before, "the option the account held stays");
    assert_eq!(app.get_option(&a, ACCOUNT, &declined).await.status, 200);
    // An approved card entered again is the option it was: no second one.
    let (_, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", true)).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    assert_eq!(r.json()["storedPaymentOptionReference"], json!(visa));
    assert_eq!(app.options_of(&a, ACCOUNT).await, before);
}
