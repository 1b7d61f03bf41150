//! Merchants, credentials, the auth epoch, token-signing keys, identity issuers and embedding
//! origins.

use smartpay_domain::Millis;
use smartpay_domain::modification::CaptureMode;
use smartpay_store::*;

use crate::support::*;

fn credential(id: &str, merchant: &str, kind: CredentialKind, client_id: Option<&str>, at: i64) -> Credential {
    Credential {
        id: id.into(),
        merchant_id: merchant.into(),
        kind,
        client_id: client_id.map(str::to_owned),
        secret_digest: vec![7; 32],
        label: format!("label {id}"),
        created_at: Millis(at),
        revoked_at: None,
    }
}

fn signing_key(kid: &str, at: i64) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        alg: "ES256".into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        private_enc: kid.as_bytes().to_vec(),
        created_at: Millis(at),
        retired_at: None,
    }
}

/// The store answers a ping when it can serve.
async fn a_store_answers_a_ping(store: &Shared) {
    store.ping().await.unwrap();
}
contract!(a_store_answers_a_ping);

/// Merchants are created once, listed in creation order, and their status and capture
/// policy change; every such change bumps the auth epoch.
async fn merchants_are_created_listed_and_changed(store: &Shared) {
    let epoch = store.auth_epoch().await.unwrap();
    let mut m2 = merchant_record("m2", 5);
    m2.capture_mode = CaptureMode::Delayed;
    m2.capture_delay_seconds = Some(3_600);
    m2.auto_cancel_seconds = Some(604_800);
    m2.identity_jwks = Some(r#"{"keys":[]}"#.into());
    store.create_merchant(m2).await.unwrap();
    store.create_merchant(merchant_record("m1", 9)).await.unwrap();
    let after_create = store.auth_epoch().await.unwrap();
    assert!(after_create > epoch, "creating a merchant bumps the auth epoch");
    assert!(matches!(store.create_merchant(merchant_record("m1", 10)).await, Err(StoreError::Conflict(_))));

    let m = store.merchant("m2").await.unwrap().unwrap();
    assert_eq!(
        (m.id.as_str(), m.name.as_str(), m.status, m.created_at),
        ("m2", "Shop m2", MerchantStatus::Active, Millis(5))
    );
    assert_eq!(
        (m.capture_mode, m.capture_delay_seconds, m.auto_cancel_seconds),
        (CaptureMode::Delayed, Some(3_600), Some(604_800))
    );
    assert_eq!(m.identity_jwks.as_deref(), Some(r#"{"keys":[]}"#));
    assert!(store.merchant("nobody").await.unwrap().is_none());
    let ids: Vec<String> = store.merchants().await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["m2", "m1"], "in creation order");

    store.set_merchant_status("m1", MerchantStatus::Disabled).await.unwrap();
    assert_eq!(store.merchant("m1").await.unwrap().unwrap().status, MerchantStatus::Disabled);
    assert!(store.auth_epoch().await.unwrap() > after_create, "a status change bumps the auth epoch");
    assert!(matches!(store.set_merchant_status("nobody", MerchantStatus::Active).await, Err(StoreError::NotFound)));

    store.set_capture_policy("m1", CaptureMode::Delayed, Some(60), None).await.unwrap();
    let m = store.merchant("m1").await.unwrap().unwrap();
    assert_eq!(
        (m.capture_mode, m.capture_delay_seconds, m.auto_cancel_seconds),
        (CaptureMode::Delayed, Some(60), None)
    );
    store.set_capture_policy("m1", CaptureMode::Auto, None, Some(120)).await.unwrap();
    let m = store.merchant("m1").await.unwrap().unwrap();
    assert_eq!((m.capture_mode, m.capture_delay_seconds, m.auto_cancel_seconds), (CaptureMode::Auto, None, Some(120)));
    assert!(matches!(
        store.set_capture_policy("nobody", CaptureMode::Auto, None, None).await,
        Err(StoreError::NotFound)
    ));
}
contract!(merchants_are_created_listed_and_changed);

/// Credentials are listed per merchant; only unrevoked ones of active merchants
/// authenticate; an OAuth client id is unique; revoking bumps the epoch once.
async fn credentials_authenticate_until_revoked_or_their_merchant_is_disabled(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    store.add_credential(credential("c2", "m1", CredentialKind::Basic, None, 2)).await.unwrap();
    store.add_credential(credential("c1", "m1", CredentialKind::Basic, None, 1)).await.unwrap();
    store.add_credential(credential("c3", "m1", CredentialKind::OAuth, Some("client"), 3)).await.unwrap();
    store.add_credential(credential("c4", "m2", CredentialKind::Basic, None, 4)).await.unwrap();
    assert!(matches!(
        store.add_credential(credential("c5", "m2", CredentialKind::OAuth, Some("client"), 5)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_credential(credential("c1", "m2", CredentialKind::Basic, None, 6)).await,
        Err(StoreError::Conflict(_))
    ));

    let listed = store.credentials("m1").await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c1", "c2", "c3"], "in creation order");
    let c3 = &listed[2];
    assert_eq!(
        (c3.kind, c3.client_id.as_deref(), c3.label.as_str()),
        (CredentialKind::OAuth, Some("client"), "label c3")
    );
    assert_eq!((c3.secret_digest.clone(), c3.created_at, c3.revoked_at), (vec![7; 32], Millis(3), None));

    let mut basic: Vec<String> =
        store.active_basic_credentials("m1").await.unwrap().into_iter().map(|c| c.id).collect();
    basic.sort();
    assert_eq!(basic, ["c1", "c2"]);
    let oauth = store.active_oauth_client("client").await.unwrap().unwrap();
    assert_eq!((oauth.id.as_str(), oauth.merchant_id.as_str()), ("c3", "m1"));
    assert!(store.active_oauth_client("other").await.unwrap().is_none());

    let before = store.auth_epoch().await.unwrap();
    store.revoke_credential("c3", Millis(10)).await.unwrap();
    let after = store.auth_epoch().await.unwrap();
    assert!(after > before, "revoking bumps the auth epoch");
    assert!(store.active_oauth_client("client").await.unwrap().is_none());
    assert_eq!(store.credentials("m1").await.unwrap()[2].revoked_at, Some(Millis(10)));
    assert!(matches!(store.revoke_credential("c3", Millis(11)).await, Err(StoreError::NotFound)));
    assert!(matches!(store.revoke_credential("nope", Millis(11)).await, Err(StoreError::NotFound)));
    assert_eq!(store.auth_epoch().await.unwrap(), after, "a refused revocation changes nothing");

    store.set_merchant_status("m1", MerchantStatus::Disabled).await.unwrap();
    assert!(store.active_basic_credentials("m1").await.unwrap().is_empty(), "a disabled merchant cannot authenticate");
    assert_eq!(store.active_basic_credentials("m2").await.unwrap().len(), 1);
}
contract!(credentials_authenticate_until_revoked_or_their_merchant_is_disabled);

/// Identity issuer settings are replaced together and bump the auth epoch; the JWK Set
/// alone can be set or cleared.
async fn identity_issuer_settings_are_replaced_together_and_bump_the_auth_epoch(store: &Shared) {
    merchant(store, "m1").await;
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(IdentityIssuer::default()));
    assert_eq!(store.identity_issuer("nobody").await.unwrap(), None);
    let before = store.auth_epoch().await.unwrap();
    let registered = IdentityIssuer {
        jwks: Some(r#"{"keys":[]}"#.into()),
        issuer: Some("https://id.shop.example".into()),
        audience: Some("smartpay".into()),
    };
    store.set_identity_issuer("m1", registered.clone()).await.unwrap();
    let after = store.auth_epoch().await.unwrap();
    assert!(after > before);
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(registered));
    assert_eq!(store.merchant("m1").await.unwrap().unwrap().identity_jwks.as_deref(), Some(r#"{"keys":[]}"#));
    store.set_identity_issuer("m1", IdentityIssuer::default()).await.unwrap();
    assert_eq!(store.identity_issuer("m1").await.unwrap(), Some(IdentityIssuer::default()));
    assert!(matches!(store.set_identity_issuer("nobody", IdentityIssuer::default()).await, Err(StoreError::NotFound)));

    let before = store.auth_epoch().await.unwrap();
    store.set_identity_jwks("m1", Some(r#"{"keys":[1]}"#.into())).await.unwrap();
    assert!(store.auth_epoch().await.unwrap() > before);
    assert_eq!(store.identity_issuer("m1").await.unwrap().unwrap().jwks.as_deref(), Some(r#"{"keys":[1]}"#));
    store.set_identity_jwks("m1", None).await.unwrap();
    assert_eq!(store.merchant("m1").await.unwrap().unwrap().identity_jwks, None);
    assert!(matches!(store.set_identity_jwks("nobody", None).await, Err(StoreError::NotFound)));
}
contract!(identity_issuer_settings_are_replaced_together_and_bump_the_auth_epoch);

/// A new signing key retires every active one at its creation; retired keys are deleted
/// once old enough; each change bumps the auth epoch.
async fn signing_keys_rotate_and_retired_ones_are_deleted(store: &Shared) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let e0 = store.auth_epoch().await.unwrap();
    store.rotate_signing_key(signing_key("k1", 100)).await.unwrap();
    let e1 = store.auth_epoch().await.unwrap();
    assert!(e1 > e0);
    store.rotate_signing_key(signing_key("k2", 200)).await.unwrap();
    store.rotate_signing_key(signing_key("k3", 300)).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    let view: Vec<(String, Option<Millis>)> = keys.iter().map(|k| (k.kid.clone(), k.retired_at)).collect();
    assert_eq!(
        view,
        [("k1".to_owned(), Some(Millis(200))), ("k2".to_owned(), Some(Millis(300))), ("k3".to_owned(), None)],
        "oldest first; each retired when the next was added"
    );
    let k3 = &keys[2];
    assert_eq!(
        (k3.alg.as_str(), k3.public_jwk.as_str(), k3.private_enc.as_slice(), k3.created_at),
        ("ES256", r#"{"kid":"k3"}"#, b"k3".as_slice(), Millis(300))
    );
    assert!(matches!(store.rotate_signing_key(signing_key("k3", 400)).await, Err(StoreError::Conflict(_))));
    assert_eq!(
        store.signing_keys().await.unwrap().iter().filter(|k| k.retired_at.is_none()).count(),
        1,
        "a refused rotation retires nothing"
    );

    let e2 = store.auth_epoch().await.unwrap();
    assert_eq!(store.delete_retired_signing_keys(Millis(200)).await.unwrap(), 0);
    assert_eq!(store.auth_epoch().await.unwrap(), e2, "deleting nothing changes nothing");
    assert_eq!(store.delete_retired_signing_keys(Millis(201)).await.unwrap(), 1);
    assert!(store.auth_epoch().await.unwrap() > e2);
    let left: Vec<String> = store.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(left, ["k2", "k3"]);
    assert_eq!(store.delete_retired_signing_keys(Millis(10_000)).await.unwrap(), 1, "the active key stays");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}
contract!(signing_keys_rotate_and_retired_ones_are_deleted);

/// Embedding origins are kept per merchant, added once, and removing a missing one is
/// `NotFound`; changes bump the auth epoch.
async fn embedding_origins_are_kept_per_merchant(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    let before = store.auth_epoch().await.unwrap();
    store.add_origin("m1", "https://shop.example", Millis(1)).await.unwrap();
    store.add_origin("m1", "https://shop.example", Millis(2)).await.unwrap();
    store.add_origin("m1", "https://a.example", Millis(3)).await.unwrap();
    assert!(store.auth_epoch().await.unwrap() > before);
    assert_eq!(store.origins("m1").await.unwrap(), ["https://a.example", "https://shop.example"]);
    assert!(store.origins("m2").await.unwrap().is_empty());
    let before = store.auth_epoch().await.unwrap();
    store.remove_origin("m1", "https://shop.example").await.unwrap();
    assert!(store.auth_epoch().await.unwrap() > before);
    assert!(matches!(store.remove_origin("m1", "https://shop.example").await, Err(StoreError::NotFound)));
    assert!(matches!(store.remove_origin("m2", "https://a.example").await, Err(StoreError::NotFound)));
    assert_eq!(store.origins("m1").await.unwrap(), ["https://a.example"]);
}
contract!(embedding_origins_are_kept_per_merchant);
