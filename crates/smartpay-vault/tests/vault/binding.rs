//! G2: a ciphertext opens only for its own row, and no single-byte change ever opens.

use smartpay_vault::{Field, RecordAad, Sealed, VaultError, open, seal};

use crate::{aad, kek, ring};

fn pan(i: usize) -> Vec<u8> {
    format!("4000{:012}", i).into_bytes()
}

#[test]
fn a_record_never_opens_under_another_records_binding() {
    let k = kek(0x11);
    let keys = ring(&k);
    let sealed: Vec<Sealed> = (0..100).map(|i| seal(&k, &aad(i), &pan(i)).unwrap()).collect();
    let mut opened = 0;
    for (i, s) in sealed.iter().enumerate() {
        assert_eq!(open(&keys, &aad(i), s).unwrap().as_slice(), pan(i).as_slice());
        for j in (0..100).filter(|&j| j != i) {
            assert_eq!(open(&keys, &aad(j), s).unwrap_err(), VaultError::Authentication, "{i} as {j}");
            opened += 1;
        }
    }
    assert_eq!(opened, 100 * 99);
}

#[test]
fn parts_swapped_between_records_never_open() {
    let k = kek(0x12);
    let keys = ring(&k);
    let sealed: Vec<Sealed> = (0..100).map(|i| seal(&k, &aad(i), &pan(i)).unwrap()).collect();
    for i in 0..100 {
        for j in (0..100).filter(|&j| j != i) {
            // i's data key with j's ciphertext, under either row's binding.
            let mixed = Sealed { ciphertext: sealed[j].ciphertext.clone(), ..sealed[i].clone() };
            assert!(open(&keys, &aad(i), &mixed).is_err(), "dek {i} + ciphertext {j}");
            assert!(open(&keys, &aad(j), &mixed).is_err(), "dek {i} + ciphertext {j} as {j}");
        }
    }
}

#[test]
fn every_part_of_the_binding_counts() {
    let k = kek(0x13);
    let keys = ring(&k);
    let base = RecordAad::new("m", "a", "o", Field::CardNumber);
    let sealed = seal(&k, &base, b"4111111111111111").unwrap();
    for other in [
        RecordAad::new("m2", "a", "o", Field::CardNumber),
        RecordAad::new("m", "a2", "o", Field::CardNumber),
        RecordAad::new("m", "a", "o2", Field::CardNumber),
        RecordAad::new("m", "a", "o", Field::HolderName),
        RecordAad::new("ma", "", "o", Field::CardNumber),
    ] {
        assert_eq!(open(&keys, &other, &sealed).unwrap_err(), VaultError::Authentication, "{other:?}");
    }
}

#[test]
fn flipping_any_byte_of_a_blob_never_opens() {
    let k = kek(0x14);
    let keys = ring(&k);
    let mut attempts = 0;
    for i in 0..100 {
        let blob = seal(&k, &aad(i), &pan(i)).unwrap().to_bytes();
        assert_eq!(open(&keys, &aad(i), &Sealed::from_bytes(&blob).unwrap()).unwrap().as_slice(), pan(i));
        for pos in 0..blob.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = blob.clone();
                flipped[pos] ^= mask;
                let result = Sealed::from_bytes(&flipped).and_then(|s| open(&keys, &aad(i), &s));
                assert!(result.is_err(), "record {i}, byte {pos}, mask {mask:#04x} opened");
                attempts += 1;
            }
        }
    }
    assert!(attempts > 100 * 100 * 3);
}

#[test]
fn flips_in_the_body_fail_authentication_and_in_the_header_fail_parsing_or_lookup() {
    let k = kek(0x15);
    let keys = ring(&k);
    let sealed = seal(&k, &aad(0), b"4111111111111111").unwrap();
    let blob = sealed.to_bytes();
    let header = 2 + 1 + sealed.kek_id.len() + 2;
    for pos in 0..blob.len() {
        let mut flipped = blob.clone();
        flipped[pos] ^= 0x01;
        let err = Sealed::from_bytes(&flipped).and_then(|s| open(&keys, &aad(0), &s)).unwrap_err();
        let in_ct_len = (header + 60..header + 64).contains(&pos);
        if pos < header || in_ct_len {
            assert!(matches!(err, VaultError::Malformed | VaultError::UnknownKey { .. }), "byte {pos}: {err:?}");
        } else {
            assert_eq!(err, VaultError::Authentication, "byte {pos}");
        }
    }
}
