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
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics are served only on the operators' listener");
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("smartpay_http_requests_total{method=\"POST\",route=\"/payment/creation\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("route=\"/payment/status/{transactionId}\",status=\"200\"} 1"));
    assert!(text.contains("smartpay_http_request_duration_seconds_bucket{route=\"/payment/creation\",le=\"+Inf\"} 1"));
    // The store's own figures come through the `metrics` facade, each backend its own.
    if app.db.is_none() {
        assert!(text.contains("# TYPE smartpay_store_batch_size histogram"), "SQLite's group commits: {text}");
        assert!(text.contains("smartpay_store_batch_size_bucket{le=\"1\"}"));
        assert!(text.contains("smartpay_store_commit_seconds_count"));
    } else {
        assert!(text.contains("smartpay_store_pool_connections{state=\"open\"}"), "PostgreSQL's pool: {text}");
        assert!(text.contains("smartpay_store_pool_waiting"));
    }
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

/// Reads from `conn` until `end` has arrived (or the peer closes), within five seconds.
async fn read_until(conn: &mut tokio::net::TcpStream, end: &[u8]) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !got.windows(end.len()).any(|w| w == end) {
            let n = conn.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read).await.expect("the server answered in time");
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_refuses_new_connections() {
    use tokio::io::AsyncWriteExt;
    let mut app = spawn_app().await;
    let addr = app.running.as_ref().unwrap().local_addr;
    let body = app.body(&app.merchant).to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /payment/creation HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.basic(&app.merchant),
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The server sends 100 Continue only when the handler starts reading the body: from here on
    // the request is in flight, and it cannot finish before the body below is sent.
    let interim = read_until(&mut conn, b"\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");

    let shutdown = tokio::spawn(app.running.take().unwrap().shutdown());
    // Shutdown has begun once the listener is closed.
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), refused).await.expect("new connections are refused");
    assert!(!shutdown.is_finished(), "shutdown waits for the request in flight");

    conn.write_all(body.as_bytes()).await.unwrap();
    let response = read_until(&mut conn, b"\"transactionId\"").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::timeout(std::time::Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown ends once the request is answered")
        .unwrap()
        .unwrap();
    assert_eq!(super::idempotency::stored_checkouts(&app), 1, "the request's checkout was stored");
}
