//! Matrix row E1 for the vault: another merchant's accounts and options do not exist for the
//! caller, on every `/accounts` route and in the widget, and are left exactly as they were.

use super::*;

/// What merchant A holds, as A's API and the store show it.
async fn snapshot(app: &TestApp, a: &Creds) -> (Value, Option<String>, Option<String>) {
    let list = app.list_options(a, ACCOUNT).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let account = app.state().store.account(&a.merchant_key, ACCOUNT).await.unwrap().unwrap();
    (list.json(), account.billing_address, account.consumer)
}

/// Asserts a 404 whose body names nothing of A's.
fn assert_foreign(what: &str, r: &Reply, secrets: &[&str]) {
    assert_eq!(r.status, 404, "{what}: {}", r.text());
    assert_eq!(r.code(), "not_found", "{what}: {}", r.text());
    for s in secrets {
        assert!(!r.text().contains(s), "{what}: the answer names {s}: {}", r.text());
    }
}

#[tokio::test]
async fn another_merchant_gets_404_on_every_account_route_and_changes_nothing() {
    let (app, clock) = vault_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let visa = app.stored(&a, ACCOUNT, VISA).await;
    clock.advance_ms(1_000);
    let mc = app.stored(&a, ACCOUNT, MASTERCARD).await;
    assert_eq!(app.update_account(&a, ACCOUNT, &update_body()).await.status, 200);
    let before = snapshot(&app, &a).await;
    let secrets = [visa.as_str(), mc.as_str(), "411111", "555555", "Neue Strasse"];
    let store = store_body(VISA_2, month_from_now(&app, 36));
    let mut patch = update_body();
    patch["billingAddress"]["addressLine1"] = json!("Hijacked 1");

    // B has no account of that id, then B has its own account of the same id: both ways A's
    // account and options do not exist for B.
    for round in ["no account of B", "B's own account of the same id"] {
        for reference in [&visa, &mc] {
            assert_foreign(round, &app.get_option(&b, ACCOUNT, reference).await, &secrets);
            assert_foreign(round, &app.delete_option(&b, ACCOUNT, reference).await, &secrets);
        }
        if round == "no account of B" {
            assert_foreign(round, &app.list_options(&b, ACCOUNT).await, &secrets);
            assert_foreign(round, &app.store_option(&b, ACCOUNT, &store).await, &secrets);
            assert_foreign(round, &app.update_account(&b, ACCOUNT, &patch).await, &secrets);
            assert_eq!(snapshot(&app, &a).await, before, "{round}");
            app.checkout_for(&b, Some(ACCOUNT)).await;
        } else {
            // B's own, separate account: B sees only its own (none yet), and what B stores or
            // updates is B's.
            assert_eq!(app.options_of(&b, ACCOUNT).await, Vec::<Value>::new(), "{round}");
            let r = app.store_option(&b, ACCOUNT, &store).await;
            assert_eq!(r.status, 201, "{round}: {}", r.text());
            let theirs = r.json()["storedPaymentOptionReference"].as_str().unwrap().to_owned();
            assert_eq!(app.update_account(&b, ACCOUNT, &patch).await.status, 200, "{round}");
            assert_eq!(snapshot(&app, &a).await, before, "{round}");
            // And A cannot reach B's option either.
            assert_foreign(round, &app.get_option(&a, ACCOUNT, &theirs).await, &[&theirs, "401288"]);
            assert_foreign(round, &app.delete_option(&a, ACCOUNT, &theirs).await, &[&theirs, "401288"]);
            let b_list = app.options_of(&b, ACCOUNT).await;
            assert_eq!(b_list.len(), 1);
            assert_eq!(b_list[0]["reference"], json!(theirs));
        }
    }
    assert_eq!(snapshot(&app, &a).await, before, "A's options, address and consumer are unchanged");
    // A's options still pay.
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let paid = app.widget_pay(&token, json!({"storedPaymentOptionReference": mc})).await;
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert_eq!(app.view(&a, &id).await["paymentStatus"], "CAPTURED");
}

#[tokio::test]
async fn a_checkout_of_another_account_or_merchant_cannot_see_delete_default_or_pay_with_an_option() {
    let (app, clock) = vault_app().await;
    let (a, b) = (app.merchant.clone(), app.other.clone());
    app.checkout_for(&a, Some(ACCOUNT)).await;
    let visa = app.stored(&a, ACCOUNT, VISA).await;
    clock.advance_ms(1_000);
    let mc = app.stored(&a, ACCOUNT, MASTERCARD).await;
    let before = app.options_of(&a, ACCOUNT).await;
    let (other_account_id, other_account) = app.checkout_for(&a, Some("customer-0815")).await;
    let (_, other_merchant) = app.checkout_for(&b, Some(ACCOUNT)).await;
    let (guest_id, guest) = app.checkout_for(&a, None).await;
    for (what, token) in
        [("another account", &other_account), ("another merchant", &other_merchant), ("a guest", &guest)]
    {
        let seen = app.widget_options(token).await;
        assert_eq!(seen.status, 200, "{what}: {}", seen.text());
        assert_eq!(seen.json()["options"], json!([]), "{what}");
        for reference in [&visa, &mc] {
            assert_foreign(what, &app.widget_delete(token, reference).await, &[visa.as_str(), mc.as_str()]);
            assert_foreign(what, &app.widget_default(token, reference).await, &[visa.as_str(), mc.as_str()]);
        }
        let paid = app.widget_pay(token, json!({"storedPaymentOptionReference": mc})).await;
        assert_foreign(what, &paid, &[mc.as_str(), "555555"]);
    }
    assert_eq!(app.options_of(&a, ACCOUNT).await, before, "A's options are unchanged");
    for id in [&other_account_id, &guest_id] {
        assert_eq!(app.view(&a, id).await["paymentStatus"], "CREATED", "nothing was paid with A's card");
    }
}
