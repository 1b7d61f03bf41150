//! Capture, refund, cancel and cancelOrRefund over HTTP: the modification rules, replays of a
//! `modificationId`, provider refusals, and the money shown by Get Payment Status.

use serde_json::{Value, json};

use super::*;

impl TestApp {
    /// A payment authorized (manual capture) or captured (auto) with `card`.
    pub async fn paid(&self, card: &str, manual: bool) -> String {
        if manual {
            self.state()
                .store
                .set_capture_policy(
                    &self.merchant.merchant_key,
                    smartpay_domain::modification::CaptureMode::Manual,
                    None,
                    None,
                )
                .await
                .unwrap();
        }
        let created = self.create(&self.merchant).await;
        let (year, month, _) = smartpay_domain::Millis::now().date();
        let card = json!({"number": card, "expiry": format!("{month:02}/{:02}", (year + 3) % 100), "cvc": "737"});
        let r = self.submit(created["checkoutToken"].as_str().unwrap(), card).await;
        assert_eq!(r.status(), 200);
        created["transactionId"].as_str().unwrap().to_owned()
    }

    pub async fn modify(&self, op: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/payment/{op}")))
            .header("Authorization", self.basic(&self.merchant))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub fn mod_body(&self, id: &str, modification_id: &str, amount: Option<f64>) -> Value {
        let mut b =
            json!({"transactionId": id, "merchantKey": self.merchant.merchant_key, "modificationId": modification_id});
        if let Some(a) = amount {
            b["modifiedAmount"] = json!({"amount": a, "currencyCode": "EUR"});
        }
        b
    }
}

#[tokio::test]
async fn a_manual_payment_is_captured_in_parts_then_refunded_in_full() {
    let app = spawn_app().await;
    let id = app.paid("4111111111111111", true).await;
    let r = app.modify("capture", app.mod_body(&id, "cap-1", Some(4.0))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CAPTURED");
    assert_eq!(v["modification"]["modificationData"]["type"], "CAPTURE");
    assert_eq!(v["modification"]["status"], "CAPTURED");
    assert_eq!(v["amounts"]["capturable"], json!(6.99));
    let r = app.modify("capture", app.mod_body(&id, "cap-2", Some(7.0))).await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["code"], "amount_exceeds_capturable");
    assert_eq!(e["errors"][0]["context"]["remaining"], "6.99");
    assert_eq!(app.modify("capture", app.mod_body(&id, "cap-2", None)).await.status(), 200);
    let r = app.modify("refund", app.mod_body(&id, "ref-1", Some(10.0))).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CAPTURED", "{v}");
    let r = app.modify("refund", app.mod_body(&id, "ref-2", None)).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "REFUNDED", "{v}");
    let status: Value = app.status(&app.basic(&app.merchant), &id).await.json().await.unwrap();
    assert_eq!(status["modifications"].as_array().unwrap().len(), 4);
    assert_eq!(status["amounts"]["refunded"], json!(10.99));
    let report = smartpay_server::verify::verify_store(app.state().store.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

#[tokio::test]
async fn an_automatic_capture_is_a_capture_modification_and_a_refused_capture_is_reported_in_mod1() {
    let app = spawn_app().await;
    let id = app.paid("4111111111111111", false).await;
    let status: Value = app.status(&app.basic(&app.merchant), &id).await.json().await.unwrap();
    assert_eq!(status["paymentStatus"], "CAPTURED");
    assert_eq!(status["modifications"][0]["modificationData"]["type"], "CAPTURE");
    assert_eq!(status["modifications"][0]["modificationData"]["modificationId"], format!("auto-capture-{id}"));
    let failing = app.paid("4000000000000341", false).await;
    let status: Value = app.status(&app.basic(&app.merchant), &failing).await.json().await.unwrap();
    assert_eq!(status["paymentStatus"], "AUTHORIZATION_COMPLETED", "{status}");
    assert_eq!(status["modifications"][0]["status"], "CAPTURE_FAILED");
    assert!(status["modifications"][0]["errorDetails"]["gatewayDescription"].is_string(), "{status}");
}

#[tokio::test]
async fn a_modification_id_replays_its_first_answer_and_refuses_another_body() {
    let app = spawn_app().await;
    let id = app.paid("4111111111111111", true).await;
    let first = app.modify("capture", app.mod_body(&id, "same", Some(1.0))).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    let again = app.modify("capture", app.mod_body(&id, "same", Some(1.0))).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first);
    let other = app.modify("capture", app.mod_body(&id, "same", Some(2.0))).await;
    assert_eq!(other.status(), 409);
    let v: Value = other.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "idempotency_conflict");
}

#[tokio::test]
async fn a_cancel_releases_an_uncaptured_authorization() {
    let app = spawn_app().await;
    let id = app.paid("4111111111111111", true).await;
    let r = app.modify("cancelOrRefund", app.mod_body(&id, "c-1", None)).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CANCELLED", "{v}");
    assert_eq!(v["modification"]["modificationData"]["type"], "CANCELLATION");
    let r = app.modify("capture", app.mod_body(&id, "c-2", None)).await;
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn every_error_lists_the_unknown_properties_of_the_body() {
    let app = spawn_app().await;
    // 403 merchant_key_mismatch and 409 idempotency_conflict on Create Checkout.
    let mut body = app.body(&app.merchant);
    body["merchantKey"] = json!(app.other.merchant_key);
    body["shoeSize"] = json!(44);
    let r = app.create_raw(&app.basic(&app.merchant), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["ignoredProperties"], json!(["shoeSize"]));
    let mut body = app.body(&app.merchant);
    body["partnerReference"] = json!("ORDER-7");
    assert_eq!(app.create_raw(&app.basic(&app.merchant), &body.to_string(), &[]).await.status(), 200);
    body["payment"]["amount"] = json!(11.99);
    body["shoeSize"] = json!(44);
    let r = app.create_raw(&app.basic(&app.merchant), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["ignoredProperties"], json!(["shoeSize"]));
    // The modification endpoints: invalid state, too large, another merchant's key.
    let id = app.paid("4111111111111111", true).await;
    let mut refund = app.mod_body(&id, "r-1", None);
    refund["hatSize"] = json!(7);
    let r = app.modify("refund", refund).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["ignoredProperties"], json!(["hatSize"]));
    let mut capture = app.mod_body(&id, "c-1", Some(20.0));
    capture["hatSize"] = json!(7);
    let r = app.modify("capture", capture.clone()).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["ignoredProperties"], json!(["hatSize"]));
    capture["merchantKey"] = json!(app.other.merchant_key);
    let r = app.modify("capture", capture).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["ignoredProperties"], json!(["hatSize"]));
}

#[tokio::test]
async fn a_refused_refund_is_a_refund_failed_modification_and_the_payment_stays_captured() {
    let app = spawn_app().await;
    let id = app.paid("4000000000005126", false).await;
    let r = app.modify("refund", app.mod_body(&id, "r-1", Some(5.0))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["paymentStatus"], "CAPTURED");
    assert_eq!(v["modification"]["status"], "REFUND_FAILED");
    assert!(v["error"].as_str().unwrap().starts_with("payment_provider_"), "{v}");
    assert_eq!(v["amounts"]["refundable"], json!(10.99), "a failed refund leaves everything refundable");
    let report = smartpay_server::verify::verify_store(app.state().store.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}
