//! Authentication matrix: Basic (RFC 7617), bearer tokens (RFC 6750, forgery and claims),
//! the token endpoint (RFC 6749), merchantKey binding and revocation.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use smartpay_server::auth::jwt::KeyPair;

use super::*;

fn b64(s: &[u8]) -> String {
    STANDARD.encode(s)
}

async fn active_key(app: &TestApp) -> KeyPair {
    let keys = app.state().store.signing_keys().await.unwrap();
    let k = keys.iter().find(|k| k.retired_at.is_none()).unwrap();
    let private = app.state().secrets.unseal(k.kid.as_bytes(), &k.private_enc).unwrap();
    KeyPair::from_private(k.kid.clone(), &private).unwrap()
}

fn now() -> i64 {
    smartpay_domain::Millis::now().0 / 1000
}

fn claims(app: &TestApp, c: &Creds) -> Value {
    json!({
        "iss": app.state().config.issuer(), "aud": "smartpay-api", "sub": c.client_id, "client_id": c.client_id,
        "merchant_key": c.merchant_key, "iat": now(), "exp": now() + 600, "jti": "j1"
    })
}

/// The same token with its ES256 signature (r, s) replaced by (r, n − s): a second valid
/// signature of the same content, which only a low-S rule tells apart.
fn with_high_s(token: &str) -> String {
    use p256::ecdsa::Signature;
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    assert!(sig.normalize_s().is_none(), "issued with a high s");
    let (r, s) = sig.split_scalars();
    let twin = Signature::from_scalars(r.to_bytes(), (-s).to_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()))
}

async fn status_with(app: &TestApp, auth: &str) -> reqwest::Response {
    app.status(auth, "00000000-0000-4000-8000-000000000000").await
}

#[tokio::test]
async fn basic_credentials_authenticate_and_malformed_ones_get_a_basic_challenge() {
    let app = spawn_app().await;
    let m = &app.merchant;
    assert_eq!(status_with(&app, &app.basic(m)).await.status(), 404, "valid Basic reaches the route");
    let lower = format!("basic {}", b64(format!("{}:{}", m.merchant_key, m.auth_key).as_bytes()));
    assert_eq!(status_with(&app, &lower).await.status(), 404, "the scheme is case-insensitive");
    let padded = format!("Basic   {}  ", b64(format!("{}:{}", m.merchant_key, m.auth_key).as_bytes()));
    assert_eq!(status_with(&app, &padded).await.status(), 404, "whitespace around the credentials");

    let bad = [
        format!("Basic {}", b64(m.merchant_key.as_bytes())),
        format!("Basic {}", b64(format!("{}:", m.merchant_key).as_bytes())),
        format!("Basic {}", b64(format!("{}:{}x", m.merchant_key, m.auth_key).as_bytes())),
        format!("Basic {}", b64(format!("{}:{}", app.other.merchant_key, m.auth_key).as_bytes())),
        format!("Basic {}", b64(format!("x:{}:{}", m.merchant_key, m.auth_key).as_bytes())),
        "Basic !!!!".to_owned(),
        format!("Basic {}", b64(b"\xff\xfe:\xff")),
        format!("Basic {}", "A".repeat(8000)),
    ];
    for auth in bad {
        let r = status_with(&app, &auth).await;
        assert_eq!(r.status(), 401, "{auth:.60}");
        let challenge = r.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
        assert_eq!(challenge, "Basic realm=\"SmartPay\", charset=\"UTF-8\"");
        let body: Value = r.json().await.unwrap();
        assert_eq!(codes(&body), vec![("unauthorized".into(), String::new())]);
        assert_eq!(body["errors"][0]["message"], "You are not authenticated to perform this request.");
    }
}

#[tokio::test]
async fn no_credentials_get_both_challenges_without_an_error_code() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/payment/status/00000000-0000-4000-8000-000000000000")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r.headers().get_all("www-authenticate").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(challenges, ["Basic realm=\"SmartPay\", charset=\"UTF-8\"", "Bearer realm=\"SmartPay\""]);
    let r = status_with(&app, "Digest abc").await;
    assert_eq!(r.status(), 401, "unknown schemes are treated as no credentials");
}

#[tokio::test]
async fn malformed_authorization_is_an_invalid_request() {
    let app = spawn_app().await;
    for auth in ["Bearer", "Bearer a b", "Bearer ä"] {
        let r = status_with(&app, auth).await;
        assert_eq!(r.status(), 400, "{auth}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"SmartPay\", error=\"invalid_request\"");
    }
    let token = app.token(&app.merchant).await;
    let r = app
        .client
        .get(app.url(&format!("/payment/status/00000000-0000-4000-8000-000000000000?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "tokens in the query string are refused");
    let r = app
        .client
        .get(app.url("/payment/status/00000000-0000-4000-8000-000000000000"))
        .header("Authorization", app.basic(&app.merchant))
        .header("Authorization", app.basic(&app.merchant))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "two Authorization headers");
}

#[tokio::test]
async fn a_bearer_token_from_the_token_endpoint_authenticates() {
    let app = spawn_app().await;
    let token = app.token(&app.merchant).await;
    let created = app.create(&app.merchant).await;
    let r = app.status(&format!("Bearer {token}"), created["transactionId"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"] && k.get("d").is_none()));
}

#[tokio::test]
async fn forged_tokens_get_invalid_token() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let key = active_key(&app).await;
    let good = key.sign(&claims(&app, m).to_string());
    assert_eq!(status_with(&app, &format!("Bearer {good}")).await.status(), 404, "a correctly signed token passes");
    let parts: Vec<&str> = good.split('.').collect();
    let h = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let mut forged = vec![
        format!("{}.{}.", h(r#"{"alg":"none","typ":"at+jwt"}"#), parts[1]),
        format!("{}.{}.{}", h(&format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, key.kid)), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            h(&format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}","jku":"http://127.0.0.1:1/jwks"}}"#, key.kid)),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", h(r#"{"alg":"ES256","typ":"at+jwt","kid":"../../dev/null"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims(&app, &app.other).to_string()), parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        KeyPair::generate().unwrap().sign(&claims(&app, m).to_string()),
        // Beyond the 4 KiB the verifier reads, yet within the 16 KiB request head.
        "x".repeat(8 * 1024),
    ];
    let mut c = claims(&app, m);
    c["typ_note"] = json!("typ JWT");
    forged.push(format!(
        "{}.{}.{}",
        h(&format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid)),
        parts[1],
        parts[2]
    ));
    for t in forged {
        let r = status_with(&app, &format!("Bearer {t}")).await;
        assert_eq!(r.status(), 401, "accepted {t:.80}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"SmartPay\", error=\"invalid_token\"");
    }
}

#[tokio::test]
async fn the_high_s_twin_of_an_issued_token_is_refused() {
    let app = spawn_app().await;
    let token = app.token(&app.merchant).await;
    assert_eq!(status_with(&app, &format!("Bearer {token}")).await.status(), 404, "the issued token passes");
    let r = status_with(&app, &format!("Bearer {}", with_high_s(&token))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"SmartPay\", error=\"invalid_token\"");
}

#[tokio::test]
async fn claims_and_clock_skew_are_checked() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let key = active_key(&app).await;
    let leeway = 30;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&app, m);
        f(&mut c);
        format!("Bearer {}", key.sign(&c.to_string()))
    };
    let accepted = [
        with(&|c| c["exp"] = json!(now() - (leeway - 5))),
        with(&|c| c["aud"] = json!(["other", "smartpay-api"])),
        with(&|c| c["nbf"] = json!(now() + leeway - 5)),
    ];
    for a in &accepted {
        assert_eq!(status_with(&app, a).await.status(), 404, "{a:.40}");
    }
    let refused = [
        ("expired beyond leeway", with(&|c| c["exp"] = json!(now() - (leeway + 5)))),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no aud",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "no iss",
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "no sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "no client_id",
            with(&|c| {
                c.as_object_mut().unwrap().remove("client_id");
            }),
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("wrong aud", with(&|c| c["aud"] = json!("other-api"))),
        ("wrong iss", with(&|c| c["iss"] = json!("https://evil.example"))),
        ("iat in the future", with(&|c| c["iat"] = json!(now() + leeway + 60))),
        ("nbf in the future", with(&|c| c["nbf"] = json!(now() + leeway + 60))),
        ("lifetime too long", with(&|c| c["exp"] = json!(now() + 3600 * 5))),
        ("another merchant", with(&|c| c["merchant_key"] = json!(app.other.merchant_key))),
        ("sub differs from client_id", with(&|c| c["sub"] = json!("someone"))),
        (
            "unknown client",
            with(&|c| {
                c["sub"] = json!("nobody");
                c["client_id"] = json!("nobody");
            }),
        ),
    ];
    for (what, t) in refused {
        let r = status_with(&app, &t).await;
        assert_eq!(r.status(), 401, "accepted: {what}");
    }
}

#[tokio::test]
async fn the_token_endpoint_follows_rfc_6749() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let url = app.url("/oauth2/token");
    let form = |pairs: &[(&str, &str)]| app.client.post(&url).form(pairs);

    let r =
        form(&[("grant_type", "client_credentials"), ("client_id", &m.client_id), ("client_secret", &m.client_secret)])
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v.get("refresh_token").is_none());

    // Client authentication by Basic header instead of the body.
    let r = app
        .client
        .post(&url)
        .basic_auth(&m.client_id, Some(&m.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (form(&[("client_id", &m.client_id), ("client_secret", &m.client_secret)]), 400, "invalid_request"),
        (
            form(&[("grant_type", "password"), ("client_id", &m.client_id), ("client_secret", &m.client_secret)]),
            400,
            "unsupported_grant_type",
        ),
        (
            form(&[("grant_type", "client_credentials"), ("client_id", &m.client_id), ("client_secret", "wrong")]),
            401,
            "invalid_client",
        ),
        (
            form(&[("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", &m.client_secret)]),
            401,
            "invalid_client",
        ),
        (form(&[("grant_type", "client_credentials")]), 401, "invalid_client"),
        (
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &m.client_id),
                ("client_secret", &m.client_secret),
                ("scope", "admin"),
            ]),
            400,
            "invalid_scope",
        ),
        (app.client.post(&url).json(&json!({"grant_type": "client_credentials"})), 400, "invalid_request"),
        (
            app.client
                .post(&url)
                .basic_auth(&m.client_id, Some(&m.client_secret))
                .form(&[("grant_type", "client_credentials"), ("client_secret", m.client_secret.as_str())]),
            400,
            "invalid_request",
        ),
    ];
    for (rb, status, error) in cases {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), status, "{error}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], error);
    }
    let r = app
        .client
        .post(&url)
        .basic_auth(&m.client_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_body_merchant_key_of_another_merchant_is_forbidden() {
    let app = spawn_app().await;
    let body = app.body(&app.other);
    let r = app.create_raw(&app.basic(&app.merchant), &body.to_string(), &[]).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(codes(&v), vec![("merchant_key_mismatch".into(), "merchantKey".into())]);
}

async fn eventually_status(app: &TestApp, auth: &str, want: u16) {
    for _ in 0..100 {
        if status_with(app, auth).await.status() == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("status never became {want}");
}

#[tokio::test]
async fn revoked_credentials_and_disabled_merchants_stop_working_within_seconds() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let basic = app.basic(m);
    let bearer = format!("Bearer {}", app.token(m).await);
    assert_eq!(status_with(&app, &basic).await.status(), 404);
    assert_eq!(status_with(&app, &bearer).await.status(), 404);
    let store = &app.state().store;
    store.revoke_credential(&m.basic_id, smartpay_domain::Millis::now()).await.unwrap();
    eventually_status(&app, &basic, 401).await;
    assert_eq!(status_with(&app, &bearer).await.status(), 404, "revoking the Basic key leaves the OAuth client alone");
    store.revoke_credential(&m.oauth_id, smartpay_domain::Millis::now()).await.unwrap();
    eventually_status(&app, &bearer, 401).await;

    let o = &app.other;
    let other_basic = app.basic(o);
    assert_eq!(status_with(&app, &other_basic).await.status(), 404);
    store.set_merchant_status(&o.merchant_key, smartpay_store::MerchantStatus::Disabled).await.unwrap();
    eventually_status(&app, &other_basic, 401).await;
}

#[tokio::test]
async fn rotating_the_signing_key_keeps_issued_tokens_valid() {
    let app = spawn_app().await;
    let old = format!("Bearer {}", app.token(&app.merchant).await);
    let state = app.state();
    let before: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    smartpay_server::auth::rotate_signing_key(state.store.as_ref(), &state.secrets).await.unwrap();
    state.auth.refresh().await.unwrap();
    let after: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["keys"].as_array().unwrap().len(), before["keys"].as_array().unwrap().len() + 1);
    assert_eq!(status_with(&app, &old).await.status(), 404, "a token signed by the retired key still works");
    let new = app.token(&app.merchant).await;
    let kid_of = |t: &str| -> Value {
        serde_json::from_slice::<Value>(
            &URL_SAFE_NO_PAD.decode(t.trim_start_matches("Bearer ").split('.').next().unwrap()).unwrap(),
        )
        .unwrap()["kid"]
            .clone()
    };
    assert_ne!(kid_of(&new), kid_of(&old), "new tokens use the new key");
    assert_eq!(status_with(&app, &format!("Bearer {new}")).await.status(), 404);
}

/// Another node created a signing key this node has not loaded (its periodic refresh is an hour
/// away here): the first token signed with it makes this node read the keys, so the token is
/// accepted at once, with no 401 for the client's retries to run into a lockout with. Tokens
/// naming unknown keys read them at most once per gap: a key created right after such a read
/// is known only once the gap has passed.
#[tokio::test]
async fn a_token_of_a_key_another_node_created_is_accepted_at_once() {
    use smartpay_domain::Millis;
    use smartpay_domain::time::ManualClock;
    use smartpay_server::auth::KEY_RELOAD_GAP_MS;
    let clock = Arc::new(ManualClock::new(Millis::now()));
    let app = spawn_app_with_clock(|c| c.auth_refresh_ms = 3_600_000, clock.clone()).await;
    let m = &app.merchant;
    let state = app.state();
    let another_node_rotates =
        || async { smartpay_server::auth::rotate_signing_key(state.store.as_ref(), &state.secrets).await.unwrap() };

    another_node_rotates().await;
    let their_key = active_key(&app).await;
    let theirs = format!("Bearer {}", their_key.sign(&claims(&app, m).to_string()));
    assert_eq!(status_with(&app, &theirs).await.status(), 404, "a token signed with the other node's new key");

    clock.advance_ms(KEY_RELOAD_GAP_MS);
    let made_up = format!("Bearer {}", KeyPair::generate().unwrap().sign(&claims(&app, m).to_string()));
    assert_eq!(status_with(&app, &made_up).await.status(), 401, "a key nobody created");
    another_node_rotates().await;
    let newer = format!("Bearer {}", active_key(&app).await.sign(&claims(&app, m).to_string()));
    assert_eq!(status_with(&app, &newer).await.status(), 401, "the keys are not read again within the gap");
    clock.advance_ms(KEY_RELOAD_GAP_MS);
    assert_eq!(status_with(&app, &newer).await.status(), 404, "after the gap, the next unknown key reads them");
    // Not the token verified above (cached): another one, signed with the key retired since.
    let mut later = claims(&app, m);
    later["jti"] = json!("j2");
    let retired = format!("Bearer {}", their_key.sign(&later.to_string()));
    assert_ne!(retired, theirs);
    assert_eq!(status_with(&app, &retired).await.status(), 404, "tokens of the retired key still work");
}

#[tokio::test]
async fn the_x_access_token_header_must_be_a_short_jwt() {
    let app = spawn_app().await;
    let body = app.body(&app.merchant).to_string();
    let auth = app.basic(&app.merchant);
    let jwt_like =
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#), URL_SAFE_NO_PAD.encode(r#"{"sub":"u1"}"#));
    assert_eq!(app.create_raw(&auth, &body, &[("X-Access-Token", &jwt_like)]).await.status(), 200);
    for bad in
        ["not-a-jwt".to_owned(), format!("{jwt_like}.extra"), format!("{}.{}.sig", "a".repeat(300), "b".repeat(300))]
    {
        let r = app.create_raw(&auth, &body, &[("X-Access-Token", &bad)]).await;
        assert_eq!(r.status(), 400, "{bad:.40}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(codes(&v), vec![("invalid_header".into(), "X-Access-Token".into())]);
    }
}

#[tokio::test]
async fn an_x_access_token_is_verified_against_the_merchants_identity_issuer() {
    let app = spawn_app().await;
    let m = &app.merchant;
    let issuer = KeyPair::generate().unwrap();
    let jwks = json!({"keys": [smartpay_server::auth::jwt::public_jwk(&issuer.kid, &issuer.verifying_key())]});
    app.state().store.set_identity_jwks(&m.merchant_key, Some(jwks.to_string())).await.unwrap();
    app.state().auth.refresh().await.unwrap();
    let body = app.body(m).to_string();
    let auth = app.basic(m);

    let good = issuer.sign(&json!({"sub": "shopper-42", "exp": now() + 300}).to_string());
    let r = app.create_raw(&auth, &body, &[("X-Access-Token", &good)]).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["transactionId"].as_str().unwrap().to_owned();
    let p = app.state().store.payment(&m.merchant_key, &id).await.unwrap().unwrap();
    assert_eq!(p.identity_subject.as_deref(), Some("shopper-42"), "the subject is recorded");

    let expired = issuer.sign(&json!({"sub": "shopper-42", "exp": now() - 300}).to_string());
    let stranger = KeyPair::generate().unwrap();
    let foreign = KeyPair::from_private(issuer.kid.clone(), &stranger.private_bytes())
        .unwrap()
        .sign(&json!({"sub": "x", "exp": now() + 300}).to_string());
    let no_sub = issuer.sign(&json!({"exp": now() + 300}).to_string());
    for (what, t) in [("expired", expired), ("signed by another key", foreign), ("no subject", no_sub)] {
        let r = app.create_raw(&auth, &body, &[("X-Access-Token", &t)]).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(codes(&r.json().await.unwrap()), vec![("unauthorized".into(), "X-Access-Token".into())], "{what}");
    }
    // Another merchant without an issuer: the token's shape is all that is checked.
    let r =
        app.create_raw(&app.basic(&app.other), &app.body(&app.other).to_string(), &[("X-Access-Token", &good)]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_x_access_token_must_carry_the_issuer_and_audience_the_merchant_registered() {
    let app = spawn_app().await;
    let issuer = KeyPair::generate().unwrap();
    let jwks = json!({"keys": [smartpay_server::auth::jwt::public_jwk(&issuer.kid, &issuer.verifying_key())]});
    let register = |m: &Creds, iss: Option<&str>, aud: Option<&str>| {
        let registered = smartpay_store::IdentityIssuer {
            jwks: Some(jwks.to_string()),
            issuer: iss.map(str::to_owned),
            audience: aud.map(str::to_owned),
        };
        let store = app.state().store.clone();
        let merchant = m.merchant_key.clone();
        async move { store.set_identity_issuer(&merchant, registered).await.unwrap() }
    };
    register(&app.merchant, Some("https://id.shop.example"), Some("smartpay")).await;
    register(&app.other, None, None).await;
    app.state().auth.refresh().await.unwrap();
    let token = |claims: Value| issuer.sign(&claims.to_string());
    let exp = now() + 300;
    let right = token(json!({"sub": "s1", "exp": exp, "iss": "https://id.shop.example", "aud": "smartpay"}));
    let right_in_array =
        token(json!({"sub": "s2", "exp": exp, "iss": "https://id.shop.example", "aud": ["shop", "smartpay"]}));
    let wrong_iss = token(json!({"sub": "s3", "exp": exp, "iss": "https://evil.example", "aud": "smartpay"}));
    let wrong_aud = token(json!({"sub": "s4", "exp": exp, "iss": "https://id.shop.example", "aud": ["shop"]}));
    let neither = token(json!({"sub": "s5", "exp": exp}));

    let create = |m: &Creds, t: &str| {
        let (auth, body, t) = (app.basic(m), app.body(m).to_string(), t.to_owned());
        let app = &app;
        async move { app.create_raw(&auth, &body, &[("X-Access-Token", &t)]).await }
    };
    for (what, t, subject) in [("right iss and aud", &right, "s1"), ("aud as an array", &right_in_array, "s2")] {
        let r = create(&app.merchant, t).await;
        assert_eq!(r.status(), 200, "{what}");
        let id = r.json::<Value>().await.unwrap()["transactionId"].as_str().unwrap().to_owned();
        let p = app.state().store.payment(&app.merchant.merchant_key, &id).await.unwrap().unwrap();
        assert_eq!(p.identity_subject.as_deref(), Some(subject), "{what}");
    }
    for (what, t) in [
        ("wrong iss", &wrong_iss),
        ("wrong aud", &wrong_aud),
        ("no iss nor aud", &neither),
        ("high-S signature", &with_high_s(&right)),
    ] {
        let r = create(&app.merchant, t).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(codes(&r.json().await.unwrap()), vec![("unauthorized".into(), "X-Access-Token".into())], "{what}");
    }
    // Keys registered without an issuer or audience: any iss and aud, as before.
    for t in [&right, &wrong_iss, &wrong_aud, &neither] {
        assert_eq!(create(&app.other, t).await.status(), 200, "{t:.40}");
    }
}
