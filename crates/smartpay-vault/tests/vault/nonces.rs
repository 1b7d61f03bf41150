//! G5-lite: nonces come from the CSPRNG and never repeat under one KEK.

use std::collections::HashSet;

use smartpay_vault::{Field, RecordAad, seal};

use crate::kek;

#[test]
fn a_hundred_thousand_seals_under_one_kek_repeat_no_nonce() {
    let k = kek(0x21);
    let aad = RecordAad::new("m", "a", "o", Field::CardNumber);
    let mut wrap_nonces = HashSet::new();
    let mut data_nonces = HashSet::new();
    let mut deks = HashSet::new();
    for _ in 0..100_000 {
        let s = seal(&k, &aad, b"4111111111111111").unwrap();
        assert!(wrap_nonces.insert(<[u8; 12]>::try_from(&s.wrapped_dek[..12]).unwrap()), "KEK nonce repeated");
        assert!(data_nonces.insert(<[u8; 12]>::try_from(&s.ciphertext[..12]).unwrap()), "DEK nonce repeated");
        // Distinct wrapped keys and ciphertexts of one plaintext show fresh DEKs too.
        assert!(deks.insert(s.ciphertext[12..].to_vec()), "ciphertext repeated");
    }
    assert_eq!(wrap_nonces.len(), 100_000);
}
