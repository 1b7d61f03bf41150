//! Rotation primitives: KEK rotation re-wraps data keys, DEK rotation re-encrypts records.

use smartpay_vault::{KeyRing, VaultError, open, reencrypt, rewrap, seal};

use crate::{aad, kek, ring};

const PAN: &[u8] = b"5555555555554444";

#[test]
fn after_rewrap_the_new_kek_alone_opens_and_the_ciphertext_is_unchanged() {
    let (old, new) = (kek(0x41), kek(0x42));
    let sealed = seal(&old, &aad(0), PAN).unwrap();
    let during = KeyRing::rotating(new.clone(), old.clone());
    let rewrapped = rewrap(&during, &aad(0), &sealed, &new).unwrap();
    assert_eq!(rewrapped.kek_id, new.id());
    assert_eq!(rewrapped.ciphertext, sealed.ciphertext, "the data key, and so the ciphertext, stays");
    assert_ne!(rewrapped.wrapped_dek, sealed.wrapped_dek);
    // During the rotation both versions open.
    assert_eq!(open(&during, &aad(0), &sealed).unwrap().as_slice(), PAN);
    assert_eq!(open(&during, &aad(0), &rewrapped).unwrap().as_slice(), PAN);
    // Once the old key leaves the ring, only rewrapped records open.
    let after = ring(&new);
    assert_eq!(open(&after, &aad(0), &rewrapped).unwrap().as_slice(), PAN);
    assert_eq!(open(&after, &aad(0), &sealed).unwrap_err(), VaultError::UnknownKey { kek_id: old.id().into() });
    // The retired key cannot open the rewrapped record either.
    assert!(open(&ring(&old), &aad(0), &rewrapped).is_err());
}

#[test]
fn rewrap_is_bound_to_the_row_and_refuses_a_corrupt_record() {
    let (old, new) = (kek(0x43), kek(0x44));
    let during = KeyRing::rotating(new.clone(), old.clone());
    let sealed = seal(&old, &aad(0), PAN).unwrap();
    assert_eq!(rewrap(&during, &aad(1), &sealed, &new).unwrap_err(), VaultError::Authentication);
    let mut corrupt = sealed.clone();
    let last = corrupt.ciphertext.len() - 1;
    corrupt.ciphertext[last] ^= 1;
    assert_eq!(rewrap(&during, &aad(0), &corrupt, &new).unwrap_err(), VaultError::Authentication);
    // Rewrapping a record already under the new key (a resumed rotation) is harmless.
    let once = rewrap(&during, &aad(0), &sealed, &new).unwrap();
    let twice = rewrap(&during, &aad(0), &once, &new).unwrap();
    assert_eq!(open(&ring(&new), &aad(0), &twice).unwrap().as_slice(), PAN);
}

#[test]
fn reencrypt_draws_a_new_data_key_and_ciphertext() {
    let k = kek(0x45);
    let keys = ring(&k);
    let sealed = seal(&k, &aad(0), PAN).unwrap();
    let fresh = reencrypt(&keys, &aad(0), &sealed, &k).unwrap();
    assert_ne!(fresh.ciphertext, sealed.ciphertext);
    assert_ne!(fresh.wrapped_dek, sealed.wrapped_dek);
    assert_eq!(open(&keys, &aad(0), &fresh).unwrap().as_slice(), PAN);
    // The new ciphertext does not open under the old data key: they are different keys.
    let mixed = smartpay_vault::Sealed { wrapped_dek: sealed.wrapped_dek.clone(), ..fresh.clone() };
    assert_eq!(open(&keys, &aad(0), &mixed).unwrap_err(), VaultError::Authentication);
}

#[test]
fn reencrypt_can_move_records_to_a_new_kek() {
    let (old, new) = (kek(0x46), kek(0x47));
    let sealed = seal(&old, &aad(3), PAN).unwrap();
    let moved = reencrypt(&KeyRing::rotating(new.clone(), old.clone()), &aad(3), &sealed, &new).unwrap();
    assert_eq!(moved.kek_id, new.id());
    assert_eq!(open(&ring(&new), &aad(3), &moved).unwrap().as_slice(), PAN);
    assert_eq!(
        reencrypt(&ring(&new), &aad(3), &sealed, &new).unwrap_err(),
        VaultError::UnknownKey { kek_id: old.id().into() }
    );
}
