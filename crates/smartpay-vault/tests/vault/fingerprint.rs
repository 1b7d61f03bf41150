//! G7: the card fingerprint is keyed.

use sha2::{Digest, Sha256, Sha512};
use smartpay_domain::card::CardNumber;
use smartpay_vault::{FingerprintKey, fingerprint};

fn card(n: &str) -> CardNumber {
    CardNumber::parse(n).unwrap().0
}

#[test]
fn the_same_card_under_the_same_key_has_the_same_fingerprint() {
    let key = FingerprintKey::from_bytes(&[0x31; 32]).unwrap();
    assert_eq!(fingerprint(&key, &card("4111111111111111")), fingerprint(&key, &card("4111 1111 1111 1111")));
    assert_ne!(fingerprint(&key, &card("4111111111111111")), fingerprint(&key, &card("5555555555554444")));
}

#[test]
fn the_fingerprint_changes_with_the_key() {
    let a = FingerprintKey::from_bytes(&[0x31; 32]).unwrap();
    let b = FingerprintKey::from_bytes(&[0x32; 32]).unwrap();
    let c = card("4111111111111111");
    assert_ne!(fingerprint(&a, &c), fingerprint(&b, &c));
}

#[test]
fn the_fingerprint_is_not_an_unkeyed_hash_of_the_number() {
    let key = FingerprintKey::from_bytes(&[0x33; 32]).unwrap();
    for n in ["4111111111111111", "378282246310005", "5555555555554444"] {
        let fp = fingerprint(&key, &card(n));
        let sha256: [u8; 32] = Sha256::digest(n.as_bytes()).into();
        let sha512 = Sha512::digest(n.as_bytes());
        assert_ne!(fp, sha256);
        assert_ne!(fp[..], sha512[..32]);
        assert_ne!(fp[..], sha512[32..]);
    }
}
