//! Without the right key material the vault fails closed: its routes answer 503
//! `vault_unavailable` while the rest of the API keeps serving (issue 9, matrix row G3).

use super::*;

const REFERENCE: &str = "0123456789abcdef0123456789abcdef";

/// Every `/accounts` route for `account` (a reference for the one-option routes), answered with
/// its `Retry-After`.
async fn account_routes(
    app: &TestApp,
    c: &Creds,
    account: &str,
    reference: &str,
) -> Vec<(String, Option<String>, Reply)> {
    let store = store_body(VISA_2, month_from_now(app, 36));
    let requests = [
        ("GET paymentOptions", reqwest::Method::GET, format!("{account}/paymentOptions"), None),
        ("POST paymentOptions", reqwest::Method::POST, format!("{account}/paymentOptions"), Some(store)),
        ("GET paymentOptions/{ref}", reqwest::Method::GET, format!("{account}/paymentOptions/{reference}"), None),
        ("DELETE paymentOptions/{ref}", reqwest::Method::DELETE, format!("{account}/paymentOptions/{reference}"), None),
        ("PATCH account", reqwest::Method::PATCH, account.to_owned(), Some(update_body())),
    ];
    let mut out = Vec::new();
    for (what, method, path, body) in requests {
        let mut rb = app.accounts_request(c, method, &path);
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let (retry, r) = with_retry_after(rb.send().await.unwrap()).await;
        out.push((what.to_owned(), retry, r));
    }
    out
}

/// Whether an answer is a 503 `vault_unavailable` with a `Retry-After`.
fn closed(retry: &Option<String>, r: &Reply) -> bool {
    r.status == 503 && r.code() == "vault_unavailable" && retry.as_deref().is_some_and(|s| s.parse::<u64>().is_ok())
}

/// Asserts that every `/accounts` route answers 503 `vault_unavailable` with `Retry-After`,
/// naming every route that does not.
async fn assert_every_route_unavailable(app: &TestApp, c: &Creds, account: &str, reference: &str) {
    let wrong: Vec<String> = account_routes(app, c, account, reference)
        .await
        .into_iter()
        .filter(|(_, retry, r)| !closed(retry, r))
        .map(|(what, retry, r)| format!("{what} → {} (Retry-After {retry:?})", r.text()))
        .collect();
    assert!(wrong.is_empty(), "routes that did not fail closed:\n{}", wrong.join("\n"));
}

/// The rest of the API serves: Create Checkout, Get Payment Status of `paid`, and a guest card
/// payment through the widget.
async fn assert_rest_serves(app: &TestApp, c: &Creds, paid: Option<&str>) {
    let (id, token) = app.checkout_for(c, None).await;
    let r = app.widget_pay(&token, card_entry(app, VISA, "737", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.view(c, &id).await["paymentStatus"], "CAPTURED");
    if let Some(p) = paid {
        assert_eq!(app.status(&app.basic(c), p).await.status(), 200);
    }
}

#[tokio::test]
async fn a_production_server_without_vault_keys_fails_closed_on_vault_routes_and_serves_the_rest() {
    let keys = tempfile::tempdir().unwrap();
    let master = keys.path().join("master.key");
    smartpay_server::secrets::ServerKeys::load_or_create(&master, true).unwrap();
    let app = vault_app_with(|c| {
        c.mode = smartpay_server::Mode::Production;
        c.master_key_file = Some(master.clone());
        c.sandbox_acquirer = Some(true);
        c.allow_sandbox_in_production = true;
    })
    .await;
    assert!(!app._dir.path().join("vault.kek").exists(), "production never makes up a key");
    let a = app.merchant.clone();
    // Create Checkout still creates the account; Get Payment Status serves.
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CREATED");
    assert_every_route_unavailable(&app, &a, ACCOUNT, REFERENCE).await;
    // The widget says so, and offers no storing.
    let shown = app.widget_options(&token).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    let shown = shown.json();
    assert_eq!(shown["journey"], "REGISTERED", "{shown}");
    assert_eq!(
        (shown["vaultUnavailable"].as_bool(), shown["canStore"].as_bool()),
        (Some(true), Some(false)),
        "{shown}"
    );
    assert_eq!(shown["options"], json!([]));
    for r in [app.widget_delete(&token, REFERENCE).await, app.widget_default(&token, REFERENCE).await] {
        assert_eq!((r.status, r.code()), (503, "vault_unavailable".to_owned()), "{}", r.text());
    }
    let stored = app.widget_pay(&token, json!({"storedPaymentOptionReference": REFERENCE})).await;
    assert_eq!((stored.status, stored.code()), (503, "vault_unavailable".to_owned()), "{}", stored.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CREATED", "nothing was authorized");
    // A card the shopper wanted stored still pays; storing it failed, and the widget is told.
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["transactionStatus"], "CAPTURED", "{answer}");
    assert_eq!(answer["storeError"], "ERROR_INIT_STORE_PAYMENT_OPTION", "{answer}");
    assert!(answer.get("storedPaymentOptionReference").is_none(), "{answer}");
    let status = app.view(&a, &id).await;
    assert_eq!(status["paymentStatus"], "CAPTURED");
    assert_eq!(status["transactionOverview"]["customerAccountId"], ACCOUNT);
    assert_eq!(options_in_store(&app).await, 0);
    assert_rest_serves(&app, &a, Some(&id)).await;
}

#[tokio::test]
async fn a_restart_with_another_key_fails_closed_and_the_right_key_opens_the_vault_again() {
    let keys = tempfile::tempdir().unwrap();
    let (first, second) = (key_file(keys.path(), "first.kek"), key_file(keys.path(), "second.kek"));
    let kek = first.clone();
    let mut app = vault_app_with(|c| c.vault_kek_file = Some(kek)).await;
    let a = app.merchant.clone();
    let (paid, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, VISA, "737", true)).await;
    let reference = r.json()["storedPaymentOptionReference"].as_str().unwrap().to_owned();
    let before = app.options_of(&a, ACCOUNT).await;

    // The same key: a restart changes nothing.
    restart(&mut app, |_| {}).await;
    assert_eq!(app.options_of(&a, ACCOUNT).await, before);

    // Another key cannot open what was stored: the vault is closed, the rest serves.
    let wrong = second.clone();
    restart(&mut app, |c| c.vault_kek_file = Some(wrong)).await;
    assert_every_route_unavailable(&app, &a, ACCOUNT, &reference).await;
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    assert_eq!(app.widget_options(&token).await.json()["vaultUnavailable"], true);
    let r = app.widget_pay(&token, json!({"storedPaymentOptionReference": reference})).await;
    assert_eq!((r.status, r.code()), (503, "vault_unavailable".to_owned()), "{}", r.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CREATED");
    assert_rest_serves(&app, &a, Some(&paid)).await;
    assert_eq!(options_in_store(&app).await, 1, "nothing was lost");

    // The right key again: everything is back, and the stored card pays.
    restart(&mut app, |c| c.vault_kek_file = Some(first)).await;
    assert_eq!(app.options_of(&a, ACCOUNT).await, before);
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, json!({"storedPaymentOptionReference": reference})).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CAPTURED");
}

#[tokio::test]
async fn the_key_from_two_components_opens_the_vault_and_one_component_alone_does_not() {
    let keys = tempfile::tempdir().unwrap();
    let (x, y) = smartpay_vault::generate_components().unwrap();
    let (first, second, stranger) =
        (keys.path().join("one.part"), keys.path().join("two.part"), keys.path().join("three.part"));
    smartpay_vault::write_key_file(&first, &x).unwrap();
    smartpay_vault::write_key_file(&second, &y).unwrap();
    smartpay_vault::write_key_file(&stranger, &smartpay_vault::generate_components().unwrap().0).unwrap();
    let parts = vec![first.clone(), second.clone()];
    let mut app = vault_app_with(|c| c.vault_kek_components = parts).await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let reference = app.stored(&a, ACCOUNT, VISA).await;
    let before = app.options_of(&a, ACCOUNT).await;

    // The same components in the other order make the same key.
    let swapped = vec![second.clone(), first.clone()];
    restart(&mut app, |c| c.vault_kek_components = swapped).await;
    assert_eq!(app.options_of(&a, ACCOUNT).await, before);

    // One component as the key, or with a stranger's: closed.
    let alone = first.clone();
    restart(&mut app, |c| {
        c.vault_kek_components = Vec::new();
        c.vault_kek_file = Some(alone);
    })
    .await;
    assert_every_route_unavailable(&app, &a, ACCOUNT, &reference).await;
    assert_rest_serves(&app, &a, None).await;
    let mixed = vec![first.clone(), stranger];
    restart(&mut app, |c| {
        c.vault_kek_file = None;
        c.vault_kek_components = mixed;
    })
    .await;
    assert_every_route_unavailable(&app, &a, ACCOUNT, &reference).await;
    assert_rest_serves(&app, &a, None).await;

    // Both again: open, and the stored card pays.
    let parts = vec![first, second];
    restart(&mut app, |c| c.vault_kek_components = parts).await;
    assert_eq!(app.options_of(&a, ACCOUNT).await, before);
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, json!({"storedPaymentOptionReference": reference})).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CAPTURED");
}

#[tokio::test]
async fn the_key_can_come_from_the_environment_value() {
    let key = smartpay_vault::generate_key().unwrap();
    let secret = smartpay_server::config::SecretText(key.clone());
    let mut app = vault_app_with(|c| c.vault_kek = Some(secret)).await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let reference = app.stored(&a, ACCOUNT, VISA).await;
    // The same value after a restart opens it; another value does not.
    restart(&mut app, |_| {}).await;
    assert_eq!(app.get_option(&a, ACCOUNT, &reference).await.status, 200);
    let other = smartpay_server::config::SecretText(smartpay_vault::generate_key().unwrap());
    restart(&mut app, |c| c.vault_kek = Some(other)).await;
    assert_every_route_unavailable(&app, &a, ACCOUNT, &reference).await;
}

#[tokio::test]
async fn update_account_fails_closed_too_when_the_vault_is_unavailable() {
    let keys = tempfile::tempdir().unwrap();
    let master = keys.path().join("master.key");
    smartpay_server::secrets::ServerKeys::load_or_create(&master, true).unwrap();
    let app = vault_app_with(|c| {
        c.mode = smartpay_server::Mode::Production;
        c.master_key_file = Some(master.clone());
    })
    .await;
    let a = app.merchant.clone();
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let rb = app.accounts_request(&a, reqwest::Method::PATCH, ACCOUNT).json(&update_body());
    let (retry, r) = with_retry_after(rb.send().await.unwrap()).await;
    assert!(closed(&retry, &r), "PATCH /accounts/{{id}} without vault keys: {} (Retry-After {retry:?})", r.text());
    let account = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    assert_eq!((account.billing_address, account.consumer), (None, None), "nothing was written");
}
