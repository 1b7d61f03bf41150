//! Operations endpoints: health, metrics, OpenAPI and the docs page.

use serde_json::Value;

use super::*;

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let live: Value = app.client.get(app.url("/health/live")).send().await.unwrap().json().await.unwrap();
    assert_eq!(live["status"], "ok");
    let r = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_without_ids() {
    let app = spawn_app().await;
    let created = app.create(&app.merchant).await;
    let id = created["transactionId"].as_str().unwrap();
    assert_eq!(app.status(&app.basic(&app.merchant), id).await.status(), 200);
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("smartpay_http_requests_total{method=\"POST\",route=\"/payment/creation\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("route=\"/payment/status/{transactionId}\",status=\"200\"} 1"));
    assert!(text.contains("smartpay_http_request_duration_seconds_bucket{route=\"/payment/creation\",le=\"+Inf\"} 1"));
    assert!(text.contains("smartpay_store_batch_size_count"));
    assert!(text.contains("smartpay_checkouts_created_total 1"));
    assert!(!text.contains(id), "no ids in metrics");
    assert!(!text.contains(&app.merchant.merchant_key), "no merchant keys in metrics");
}

#[tokio::test]
async fn responses_carry_a_trace_id_and_security_headers() {
    let app = spawn_app().await;
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = app.client.get(app.url("/payment/status/x")).header("traceparent", parent).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let v: Value = r.json().await.unwrap();
    assert!(v["traceId"].as_str().unwrap().starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
}

#[tokio::test]
async fn unknown_routes_and_methods_get_error_bodies() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("not_found".into(), String::new())]);
    let r = app.client.delete(app.url("/payment/creation")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(codes(&r.json().await.unwrap()), vec![("method_not_allowed".into(), String::new())]);
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served_offline() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["components"]["schemas"]["CreateCheckoutRequest"].is_object());
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "the docs page is Swagger UI");
    assert!(!html.contains("https://"), "no asset comes from another host");
    let js = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("/openapi.json"), "{js}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app().await;
    let client = app.client.clone();
    let url = app.url("/payment/creation");
    let auth = app.basic(&app.merchant);
    let body = app.body(&app.merchant).to_string();
    let inflight: Vec<_> = (0..20)
        .map(|_| {
            let (client, url, auth, body) = (client.clone(), url.clone(), auth.clone(), body.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("Authorization", auth)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.running.take().unwrap().shutdown().await.unwrap();
    for t in inflight {
        // A request either completed, or was never accepted; none is cut off mid-way.
        if let Ok(status) = t.await.unwrap() {
            assert_eq!(status, 200);
        }
    }
}
