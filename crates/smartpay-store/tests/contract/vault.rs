//! The vault: accounts, stored payment options (duplicates by fingerprint, exactly one
//! default), key versions, and key rotations with a resumable cursor and conditional reseals.

use smartpay_domain::Millis;
use smartpay_store::*;

use crate::support::*;

/// Opens `account` of `merchant` the way the API does: with a checkout naming it.
async fn account(store: &Shared, merchant: &str, account: &str) {
    let mut c = checkout(&format!("{merchant}-{account}-checkout"), merchant, vec![]);
    c.customer_account_id = Some(account.into());
    store.create_checkout(c).await.unwrap();
}

/// A card stored under m1's account `a1`, sealed under `k1`; its fingerprint is `card`.
fn option(reference: &str, card: &str, at: i64) -> StoredOption {
    StoredOption {
        reference: reference.into(),
        merchant_id: "m1".into(),
        account_id: "a1".into(),
        code: "VISA".into(),
        masked: "411111****1111".into(),
        expiry_month: 12,
        expiry_year: 2031,
        fingerprint: format!("fp-{card}").into_bytes(),
        kek_id: "k1".into(),
        pan_sealed: format!("pan-{reference}").into_bytes(),
        token_sealed: format!("tok-{reference}").into_bytes(),
        provider: "sandbox".into(),
        is_default: false,
        created_at: Millis(at),
    }
}

/// (reference, is_default) of an account's options, oldest first.
async fn defaults(store: &Shared) -> Vec<(String, bool)> {
    store.payment_options("m1", "a1").await.unwrap().into_iter().map(|o| (o.reference, o.is_default)).collect()
}

fn key(kek_id: &str, at: i64) -> VaultKey {
    VaultKey {
        kek_id: kek_id.into(),
        check_sealed: format!("check-{kek_id}").into_bytes(),
        retired: false,
        created_at: Millis(at),
    }
}

fn reseal(o: &StoredOption, expected: &[u8], to: &str) -> Reseal {
    Reseal {
        reference: o.reference.clone(),
        expected_pan_sealed: expected.to_vec(),
        kek_id: to.into(),
        pan_sealed: format!("pan-{}-{to}", o.reference).into_bytes(),
        token_sealed: format!("tok-{}-{to}", o.reference).into_bytes(),
    }
}

/// An account holds its merchant's billing address and consumer; only its merchant sees it.
async fn accounts_are_updated_and_kept_per_merchant(store: &Shared) {
    merchant(store, "m1").await;
    merchant(store, "m2").await;
    account(store, "m1", "a1").await;
    assert!(store.account("m2", "a1").await.unwrap().is_none());
    store
        .update_account("m1", "a1", r#"{"city":"Berlin"}"#.into(), Some(r#"{"name":"Ann"}"#.into()), Millis(5_000))
        .await
        .unwrap();
    let a = store.account("m1", "a1").await.unwrap().unwrap();
    assert_eq!((a.merchant_id.as_str(), a.account_id.as_str()), ("m1", "a1"));
    assert_eq!(
        (a.billing_address.as_deref(), a.consumer.as_deref()),
        (Some(r#"{"city":"Berlin"}"#), Some(r#"{"name":"Ann"}"#))
    );
    assert_eq!((a.created_at, a.updated_at), (Millis(1_000), Millis(5_000)));
    store.update_account("m1", "a1", "{}".into(), None, Millis(6_000)).await.unwrap();
    assert_eq!(store.account("m1", "a1").await.unwrap().unwrap().consumer, None);
    assert!(matches!(store.update_account("m2", "a1", "{}".into(), None, Millis(1)).await, Err(StoreError::NotFound)));
}
contract!(accounts_are_updated_and_kept_per_merchant);

/// Options: the first is the default, a card already stored is a duplicate, a new
/// default replaces the old, deleting the default promotes the oldest remaining one.
async fn options_keep_exactly_one_default_and_refuse_duplicates(store: &Shared) {
    merchant(store, "m1").await;
    assert_eq!(store.add_payment_option(option("o1", "A", 10)).await.unwrap(), AddOption::NoAccount);
    account(store, "m1", "a1").await;
    assert_eq!(store.add_payment_option(option("o1", "A", 10)).await.unwrap(), AddOption::Added);
    assert_eq!(store.add_payment_option(option("o2", "B", 20)).await.unwrap(), AddOption::Added);
    assert_eq!(store.add_payment_option(option("o9", "A", 25)).await.unwrap(), AddOption::Duplicate("o1".into()));
    assert_eq!(defaults(store).await, [("o1".to_owned(), true), ("o2".to_owned(), false)]);
    let mut preferred = option("o3", "C", 30);
    preferred.is_default = true;
    assert_eq!(store.add_payment_option(preferred).await.unwrap(), AddOption::Added);
    assert_eq!(defaults(store).await, [("o1".to_owned(), false), ("o2".to_owned(), false), ("o3".to_owned(), true)]);

    let stored = store.payment_option("m1", "a1", "o2").await.unwrap().unwrap();
    assert_eq!(stored, option("o2", "B", 20), "every field round-trips");
    assert!(store.payment_option("m1", "other", "o2").await.unwrap().is_none());
    assert!(store.payment_option("m2", "a1", "o2").await.unwrap().is_none());

    assert!(store.set_default_option("m1", "a1", "o2").await.unwrap());
    assert_eq!(defaults(store).await, [("o1".to_owned(), false), ("o2".to_owned(), true), ("o3".to_owned(), false)]);
    assert!(!store.set_default_option("m1", "a1", "nope").await.unwrap());
    assert!(!store.set_default_option("m2", "a1", "o1").await.unwrap());

    assert!(store.delete_payment_option("m1", "a1", "o2").await.unwrap());
    assert_eq!(
        defaults(store).await,
        [("o1".to_owned(), true), ("o3".to_owned(), false)],
        "the oldest becomes the default"
    );
    assert!(!store.delete_payment_option("m1", "a1", "o2").await.unwrap());
    assert!(!store.delete_payment_option("m2", "a1", "o1").await.unwrap(), "another merchant's option");
    assert!(store.delete_payment_option("m1", "a1", "o3").await.unwrap());
    assert_eq!(defaults(store).await, [("o1".to_owned(), true)], "deleting another option keeps the default");
    // The deleted card may be stored again.
    assert_eq!(store.add_payment_option(option("o4", "B", 40)).await.unwrap(), AddOption::Added);
}
contract!(options_keep_exactly_one_default_and_refuse_duplicates);

/// Cards added at the same time (two tabs, two nodes): one default among them, and the
/// same card is stored once.
async fn concurrent_adds_keep_one_default_and_one_copy_of_a_card(store: &Shared) {
    merchant(store, "m1").await;
    account(store, "m1", "a1").await;
    let outcomes = concurrently(store, 12, |s, i| async move {
        s.add_payment_option(option(&format!("o{i:02}"), &format!("card-{i}"), 10)).await.unwrap()
    })
    .await;
    assert!(outcomes.iter().all(|o| *o == AddOption::Added), "{outcomes:?}");
    let options = defaults(store).await;
    assert_eq!(options.len(), 12);
    assert_eq!(options.iter().filter(|(_, d)| *d).count(), 1, "exactly one default: {options:?}");

    let outcomes = concurrently(store, 12, |s, i| async move {
        s.add_payment_option(option(&format!("same-{i:02}"), "same-card", 20)).await.unwrap()
    })
    .await;
    let added: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, o)| **o == AddOption::Added).map(|(i, _)| i).collect();
    assert_eq!(added.len(), 1, "{outcomes:?}");
    let winner = format!("same-{:02}", added[0]);
    for o in &outcomes {
        assert!(*o == AddOption::Added || *o == AddOption::Duplicate(winner.clone()), "{o:?}");
    }
    assert_eq!(defaults(store).await.len(), 13);

    // Racing default changes leave exactly one default.
    concurrently(store, 12, |s, i| async move {
        assert!(s.set_default_option("m1", "a1", &format!("o{i:02}")).await.unwrap());
    })
    .await;
    assert_eq!(defaults(store).await.iter().filter(|(_, d)| *d).count(), 1);
}
contract!(concurrent_adds_keep_one_default_and_one_copy_of_a_card);

/// Key versions are recorded once, listed oldest first and retired; options are counted
/// and paged per key.
async fn vault_keys_are_recorded_retired_and_counted(store: &Shared) {
    merchant(store, "m1").await;
    account(store, "m1", "a1").await;
    assert!(store.vault_keys().await.unwrap().is_empty());
    store.add_vault_key(key("k1", 10)).await.unwrap();
    store.add_vault_key(key("k2", 20)).await.unwrap();
    let mut changed = key("k1", 99);
    changed.check_sealed = b"other".to_vec();
    store.add_vault_key(changed).await.unwrap();
    assert_eq!(store.vault_keys().await.unwrap(), [key("k1", 10), key("k2", 20)], "a known key is left as it is");
    store.retire_vault_key("k1", Millis(30)).await.unwrap();
    let keys = store.vault_keys().await.unwrap();
    assert_eq!((keys[0].retired, keys[1].retired), (true, false));
    assert!(matches!(store.retire_vault_key("nope", Millis(30)).await, Err(StoreError::NotFound)));

    for (i, kek) in ["k1", "k2", "k1", "k1", "k2"].into_iter().enumerate() {
        let mut o = option(&format!("o{i}"), &format!("card-{i}"), 10 + i as i64);
        o.kek_id = kek.into();
        store.add_payment_option(o).await.unwrap();
    }
    assert_eq!(store.options_per_key().await.unwrap(), [("k1".to_owned(), 3), ("k2".to_owned(), 2)]);
    let refs = |v: Vec<StoredOption>| v.into_iter().map(|o| o.reference).collect::<Vec<_>>();
    assert_eq!(refs(store.options_after(None, "", 2).await.unwrap()), ["o0", "o1"]);
    assert_eq!(refs(store.options_after(None, "o1", 10).await.unwrap()), ["o2", "o3", "o4"]);
    assert_eq!(refs(store.options_after(Some("k1"), "", 10).await.unwrap()), ["o0", "o2", "o3"]);
    assert_eq!(refs(store.options_after(Some("k1"), "o2", 1).await.unwrap()), ["o3"]);
    assert!(store.options_after(Some("k9"), "", 10).await.unwrap().is_empty());
}
contract!(vault_keys_are_recorded_retired_and_counted);

/// One rotation at a time; reseal steps apply only to options that still hold the blob
/// they were computed from, and move the resumable cursor.
async fn a_rotation_reseals_conditionally_and_resumes_from_its_cursor(store: &Shared) {
    merchant(store, "m1").await;
    account(store, "m1", "a1").await;
    for (i, card) in ["A", "B", "C"].into_iter().enumerate() {
        store.add_payment_option(option(&format!("o{i}"), card, 10)).await.unwrap();
    }
    assert_eq!(store.open_rotation().await.unwrap(), None);
    let r = store.start_rotation(RotationKind::Kek, "k1", "k2", Millis(100)).await.unwrap();
    assert_eq!(
        (r.kind, r.from_kek.as_str(), r.to_kek.as_str(), r.cursor.as_str(), r.done, r.finished),
        (RotationKind::Kek, "k1", "k2", "", 0, false)
    );
    assert!(matches!(
        store.start_rotation(RotationKind::Dek, "k1", "k3", Millis(101)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.open_rotation().await.unwrap(), Some(r.clone()));

    let batch = store.options_after(Some("k1"), &r.cursor, 2).await.unwrap();
    let steps = vec![reseal(&batch[0], &batch[0].pan_sealed, "k2"), reseal(&batch[1], b"stale blob", "k2")];
    assert_eq!(
        store.reseal_options(r.id, steps, batch[1].reference.clone()).await.unwrap(),
        1,
        "the stale step is skipped"
    );
    let o0 = store.payment_option("m1", "a1", "o0").await.unwrap().unwrap();
    assert_eq!(
        (o0.kek_id.as_str(), o0.pan_sealed.as_slice(), o0.token_sealed.as_slice()),
        ("k2", b"pan-o0-k2".as_slice(), b"tok-o0-k2".as_slice())
    );
    assert_eq!(store.payment_option("m1", "a1", "o1").await.unwrap().unwrap().kek_id, "k1");
    let resumed = store.open_rotation().await.unwrap().unwrap();
    assert_eq!((resumed.id, resumed.cursor.as_str(), resumed.done), (r.id, "o1", 1));

    let rest = store.options_after(Some("k1"), &resumed.cursor, 10).await.unwrap();
    assert_eq!(rest.iter().map(|o| o.reference.as_str()).collect::<Vec<_>>(), ["o2"]);
    let steps = vec![reseal(&rest[0], &rest[0].pan_sealed, "k2")];
    assert_eq!(store.reseal_options(r.id, steps, "o2".into()).await.unwrap(), 1);
    // A step whose option was deleted meanwhile changes nothing.
    let o1 = store.payment_option("m1", "a1", "o1").await.unwrap().unwrap();
    store.delete_payment_option("m1", "a1", "o1").await.unwrap();
    assert_eq!(store.reseal_options(r.id, vec![reseal(&o1, &o1.pan_sealed, "k2")], "o2".into()).await.unwrap(), 0);
    assert_eq!(store.open_rotation().await.unwrap().unwrap().done, 2);
    assert_eq!(store.options_per_key().await.unwrap(), [("k2".to_owned(), 2)]);

    store.finish_rotation(r.id, Millis(200)).await.unwrap();
    assert_eq!(store.open_rotation().await.unwrap(), None);
    assert!(matches!(store.finish_rotation(r.id + 1_000, Millis(200)).await, Err(StoreError::NotFound)));
    let next = store.start_rotation(RotationKind::Dek, "k2", "k2", Millis(300)).await.unwrap();
    assert!(next.id != r.id && next.kind == RotationKind::Dek);
}
contract!(a_rotation_reseals_conditionally_and_resumes_from_its_cursor);

/// Two nodes starting a rotation at once: one starts it, the other is told it is open;
/// two nodes resealing the same option: it changes once.
async fn concurrent_rotations_start_once_and_reseal_each_option_once(store: &Shared) {
    merchant(store, "m1").await;
    account(store, "m1", "a1").await;
    store.add_payment_option(option("o1", "A", 10)).await.unwrap();
    let outcomes =
        concurrently(
            store,
            8,
            |s, _| async move { s.start_rotation(RotationKind::Kek, "k1", "k2", Millis(100)).await },
        )
        .await;
    let started: Vec<&Rotation> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(started.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(_) | Err(StoreError::Conflict(_)))), "{outcomes:?}");
    let id = started[0].id;
    let o1 = store.payment_option("m1", "a1", "o1").await.unwrap().unwrap();
    let changed = concurrently(store, 6, move |s, i| {
        let mut step = reseal(&o1, &o1.pan_sealed, "k2");
        step.pan_sealed = format!("pan-node-{i}").into_bytes();
        async move { s.reseal_options(id, vec![step], "o1".into()).await.unwrap() }
    })
    .await;
    assert_eq!(changed.iter().sum::<u64>(), 1, "{changed:?}");
    assert_eq!(store.open_rotation().await.unwrap().unwrap().done, 1);
}
contract!(concurrent_rotations_start_once_and_reseal_each_option_once);
